//! The printed result: one row per wrk run, then each target ratio marked PASS or MISS.
//! Missing a target is reported, not failed: machines differ, and the numbers are what
//! the reader needs.

use std::fmt::Write;
use std::time::Duration;

use crate::wrk::{Load, Report};

/// Switchboard's reads should keep this share of a server doing no work at all.
pub const STATIC_RATIO_TARGET: f64 = 0.8;
/// Switchboard's reads against rnacos's.
pub const RNACOS_RATIO_TARGET: f64 = 5.0;
/// Heartbeats per second one core should absorb.
pub const HEARTBEAT_TARGET: f64 = 20_000.0;

/// One measured run.
pub struct Row {
    pub target: &'static str,
    pub request: &'static str,
    /// Size of one response body, where every response is the same.
    pub body_bytes: Option<usize>,
    pub report: Report,
}

pub struct Results {
    pub switchboard: Row,
    pub heartbeat: Row,
    pub static_baseline: Row,
    pub rnacos: Row,
}

pub fn render(results: &Results, load: &Load, rounds: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSwitchboard bench: {} instances of one service; servers pinned to core 0, \
         `wrk -t1 -c{} -d{}` pinned to core 1; reads: median of {rounds} alternating rounds\n",
        crate::servers::INSTANCES,
        load.connections,
        load.duration
    );
    let _ = writeln!(
        out,
        "{:<22} {:<46} {:>8} {:>12} {:>10}",
        "target", "request", "body", "requests/s", "p99"
    );
    for row in [
        &results.switchboard,
        &results.static_baseline,
        &results.rnacos,
        &results.heartbeat,
    ] {
        let body = row
            .body_bytes
            .map_or_else(|| "-".to_owned(), |bytes| format!("{bytes} B"));
        let _ = writeln!(
            out,
            "{:<22} {:<46} {:>8} {:>12.0} {:>10}",
            row.target,
            row.request,
            body,
            row.report.requests_per_sec,
            format_latency(row.report.p99)
        );
    }
    for row in [
        &results.switchboard,
        &results.static_baseline,
        &results.rnacos,
        &results.heartbeat,
    ] {
        if let Some(errors) = &row.report.socket_errors {
            let _ = writeln!(out, "  note: {} socket errors: {errors}", row.target);
        }
    }

    let switchboard = results.switchboard.report.requests_per_sec;
    let _ = writeln!(
        out,
        "\n{:<36} {:>10} {:>10}  result",
        "check", "value", "target"
    );
    check(
        &mut out,
        "reads: switchboard / static",
        ratio(switchboard, results.static_baseline.report.requests_per_sec),
        STATIC_RATIO_TARGET,
        2,
    );
    check(
        &mut out,
        "reads: switchboard / rnacos",
        ratio(switchboard, results.rnacos.report.requests_per_sec),
        RNACOS_RATIO_TARGET,
        2,
    );
    check(
        &mut out,
        "heartbeats: requests/s",
        results.heartbeat.report.requests_per_sec,
        HEARTBEAT_TARGET,
        0,
    );
    out
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        f64::INFINITY
    }
}

fn check(out: &mut String, name: &str, value: f64, target: f64, decimals: usize) {
    let verdict = if value >= target {
        "PASS".to_owned()
    } else {
        format!("MISS ({:.0}% short)", (1.0 - value / target) * 100.0)
    };
    let _ = writeln!(
        out,
        "{name:<36} {value:>10.decimals$} {:>10}  {verdict}",
        format!(">= {target:.decimals$}")
    );
}

/// Microseconds below a millisecond, else milliseconds, like wrk.
pub fn format_latency(latency: Duration) -> String {
    let micros = latency.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0}us")
    } else {
        format!("{:.2}ms", micros / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &'static str, requests_per_sec: f64) -> Row {
        Row {
            target,
            request: "GET /",
            body_bytes: Some(10),
            report: Report {
                requests_per_sec,
                p99: Duration::from_micros(1500),
                requests: 1,
                non_2xx: 0,
                socket_errors: None,
            },
        }
    }

    #[test]
    fn marks_each_target() {
        let results = Results {
            switchboard: row("switchboard", 9_000.0),
            heartbeat: row("heartbeat", 25_000.0),
            static_baseline: row("static", 10_000.0),
            rnacos: row("rnacos", 3_000.0),
        };
        let load = Load {
            duration: "1s".into(),
            connections: 8,
        };
        let text = render(&results, &load, 3);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_owned()
        };
        assert!(line("reads: switchboard / static").contains("0.90"));
        assert!(line("reads: switchboard / static").ends_with("PASS"));
        assert!(line("reads: switchboard / rnacos").contains("MISS (40% short)"));
        assert!(line("heartbeats").ends_with("PASS"));
        assert!(text.contains("1.50ms"));
    }

    #[test]
    fn formats_latency_like_wrk() {
        assert_eq!(format_latency(Duration::from_micros(850)), "850us");
        assert_eq!(format_latency(Duration::from_micros(2500)), "2.50ms");
    }
}
