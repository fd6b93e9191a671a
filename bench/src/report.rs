//! The printed result: one row per wrk run, then each target ratio marked PASS or MISS;
//! for the etcd part, both observers' latencies and the memory readings, likewise checked;
//! for the Consul part, the same propagation table and check against the double's own
//! blocking query. Missing a target is reported, not failed: machines differ, and the
//! numbers are what the reader needs.

use std::fmt::Write;
use std::time::Duration;

use crate::memory::{mib, Memory};
use crate::propagation::{percentile, Latencies};
use crate::wrk::{Load, Report};

/// Switchboard's reads should keep this share of a server doing no work at all.
pub const STATIC_RATIO_TARGET: f64 = 0.95;
/// Access control's check (a header, a hash, a table row) against a read that copies
/// pre-encoded bytes: at most a tenth of the throughput.
pub const GUARDED_RATIO_TARGET: f64 = 0.9;
/// The Consul door's `?passing` read against a static server answering its bytes.
pub const CONSUL_RATIO_TARGET: f64 = 0.9;
/// Switchboard's reads against rnacos's.
pub const RNACOS_RATIO_TARGET: f64 = 5.0;
/// Heartbeats per second one core should absorb.
pub const HEARTBEAT_TARGET: f64 = 20_000.0;
/// How much later than the registry's direct observer (an etcd watch, the Consul double's
/// blocking query; p99 against p99) a blocking query may return.
pub const PROPAGATION_TARGET: Duration = Duration::from_millis(5);
/// Resident bytes per instance cached from a source.
pub const BYTES_PER_INSTANCE_TARGET: f64 = 1024.0;
/// Fan-out: every parked watcher has its answer this soon after one change.
pub const FANOUT_ALL_TARGET: Duration = Duration::from_secs(1);
/// Name churn: resident bytes kept per service name that came and went (memory "back
/// near where it started": 100 000 names may leave under 1 MiB).
pub const BYTES_PER_GONE_NAME_TARGET: f64 = 10.0;
/// Fan-out: resident bytes per parked watcher.
pub const BYTES_PER_WATCHER_TARGET: f64 = 8.0 * 1024.0;

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
    /// The read with access control on; none for a build without it.
    pub guarded: Option<Row>,
    /// The Consul door's `?passing` read and the static server answering its bytes; none
    /// for a build without the door.
    pub consul: Option<(Row, Row)>,
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
    let rows = [
        Some(&results.switchboard),
        results.guarded.as_ref(),
        Some(&results.static_baseline),
        Some(&results.rnacos),
        Some(&results.heartbeat),
        results.consul.as_ref().map(|(door, _)| door),
        results.consul.as_ref().map(|(_, ceiling)| ceiling),
    ];
    for row in rows.iter().flatten() {
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
    for row in rows.iter().flatten() {
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
    if let Some(guarded) = &results.guarded {
        check(
            &mut out,
            "reads: with a token / without",
            ratio(guarded.report.requests_per_sec, switchboard),
            GUARDED_RATIO_TARGET,
            2,
        );
    }
    if let Some((door, ceiling)) = &results.consul {
        check(
            &mut out,
            "reads: consul door / static",
            ratio(
                door.report.requests_per_sec,
                ceiling.report.requests_per_sec,
            ),
            CONSUL_RATIO_TARGET,
            2,
        );
    }
    check(
        &mut out,
        "heartbeats: requests/s",
        results.heartbeat.report.requests_per_sec,
        HEARTBEAT_TARGET,
        0,
    );
    out
}

/// The etcd part: propagation latencies against the direct watch, then memory.
pub struct EtcdResults {
    pub latencies: Latencies,
    pub memory: Memory,
}

pub fn render_etcd(results: &EtcdResults) -> String {
    let mut out = String::new();
    let lat = &results.latencies;
    let _ = writeln!(
        out,
        "\nSwitchboard with an etcd source: etcd and Switchboard pinned to core 0, the bench's \
         clients to core 1\n\nPropagation: {} writes (put, delete alternating) under {}{}/, \
         timed from just before the write until seen\n",
        lat.switchboard.len(),
        crate::etcd::PREFIX,
        crate::propagation::etcd::SERVICE
    );
    propagation_table(&mut out, lat, "direct etcd watch (the floor)", "watch");

    let mem = &results.memory;
    let _ = writeln!(
        out,
        "\nMemory: {} instances ({} services x {}) from etcd; etcd load {:.2?}, all served \
         by switchboard after {:.2?}\n",
        mem.instances,
        crate::memory::SERVICES,
        crate::memory::PER_SERVICE,
        mem.load,
        mem.visible
    );
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>13}",
        "process", "RSS before", "RSS after", "per instance"
    );
    let per = |before: u64, after: u64| {
        format!(
            "{:.0} B",
            after.saturating_sub(before) as f64 / mem.instances as f64
        )
    };
    for (process, before, after) in [
        ("switchboard (VmRSS)", mem.rss_before, mem.rss_after),
        (
            "switchboard peak (VmHWM, over the whole run)",
            mem.rss_before,
            mem.peak,
        ),
        (
            "etcd, same keys (for scale)",
            mem.etcd_before,
            mem.etcd_after,
        ),
    ] {
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>10} {:>13}",
            process,
            mib(before),
            mib(after),
            per(before, after)
        );
    }

    check_header(&mut out);
    check_propagation(&mut out, lat, "watch");
    check_below(
        &mut out,
        "memory: RSS per cached instance",
        mem.per_instance(),
        Bound::Under(BYTES_PER_INSTANCE_TARGET),
        |bytes| format!("{bytes:.0} B"),
    );
    out
}

/// The fan-out part: per kind of watcher, the answer times after one change and the
/// memory per parked watcher.
pub fn render_fanout(results: &[crate::fanout::FanOut]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nWatch fan-out: Switchboard pinned to core 0, the watchers (plain sockets) on core \
         1; one change, timed from just before the registration that makes it\n"
    );
    let _ = writeln!(
        out,
        "{:<56} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11}",
        "watchers", "first", "median", "all", "RSS before", "RSS parked", "per watcher"
    );
    for result in results {
        let _ = writeln!(
            out,
            "{:<56} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11}",
            format!("{} x {}", result.watchers, result.kind.label()),
            seconds(result.first),
            seconds(result.median),
            seconds(result.all),
            mib(result.rss_before),
            mib(result.rss_parked),
            format!("{:.0} B", result.per_watcher())
        );
    }
    check_header(&mut out);
    for result in results {
        let name = match result.kind {
            crate::fanout::Kind::Blocking => "blocking",
            crate::fanout::Kind::Sse => "sse",
            crate::fanout::Kind::Consul => "consul",
        };
        check_below(
            &mut out,
            &format!("fan-out {name}: all answered"),
            result.all.as_secs_f64(),
            Bound::AtMost(FANOUT_ALL_TARGET.as_secs_f64()),
            |s| format!("{s:.2}s"),
        );
        check_below(
            &mut out,
            &format!("fan-out {name}: RSS per watcher"),
            result.per_watcher(),
            Bound::AtMost(BYTES_PER_WATCHER_TARGET),
            |bytes| format!("{bytes:.0} B"),
        );
    }
    out
}

/// The name-churn part: the memory left after short-lived names came and went.
pub fn render_churn(churn: &crate::name_churn::Churn) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nName churn: {} service names, each registered then deregistered by 16 clients, \
         in {:.2?}\n\n{:<44} {:>10} {:>10} {:>13}\n{:<44} {:>10} {:>10} {:>13}",
        churn.names,
        churn.took,
        "process",
        "RSS before",
        "RSS after",
        "per name",
        "switchboard (VmRSS)",
        mib(churn.rss_before),
        mib(churn.rss_after),
        format!("{:.0} B", churn.per_name())
    );
    check_header(&mut out);
    check_below(
        &mut out,
        "name churn: RSS kept per name",
        churn.per_name(),
        Bound::AtMost(BYTES_PER_GONE_NAME_TARGET),
        |bytes| format!("{bytes:.0} B"),
    );
    out
}

/// The Consul part: propagation latencies against the double's own blocking query.
pub fn render_consul(lat: &Latencies) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSwitchboard with a Consul source: Switchboard pinned to core 0, the Consul double \
         (in the bench's process) and the bench's clients on core 1\n\nPropagation: {} \
         writes (register, deregister alternating) of service {}, timed from just before the \
         write until seen\n",
        lat.switchboard.len(),
        crate::propagation::consul::SERVICE
    );
    propagation_table(
        &mut out,
        lat,
        "double's own blocking query (the floor)",
        "double",
    );
    check_header(&mut out);
    check_propagation(&mut out, lat, "double");
    out
}

/// The Nacos part: propagation latencies against a direct `nacos-sdk` subscriber.
pub fn render_nacos(lat: &Latencies) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSwitchboard with a Nacos source: rnacos and Switchboard pinned to core 0, the \
         bench's clients to core 1\n\nPropagation: {} writes (register, deregister \
         alternating) of service {}@@{}, timed from just before the write until seen\n",
        lat.switchboard.len(),
        crate::propagation::nacos::GROUP,
        crate::propagation::nacos::SERVICE
    );
    propagation_table(
        &mut out,
        lat,
        "direct nacos-sdk subscriber (the floor)",
        "sdk",
    );
    check_header(&mut out);
    check_propagation(&mut out, lat, "sdk");
    out
}

/// p50, p99 and max of the direct observer (`floor`, called `short` in the comparison
/// rows), of Switchboard, and of what Switchboard added per write; then how the two
/// observers' percentiles compare.
pub(crate) fn propagation_table(out: &mut String, lat: &Latencies, floor: &str, short: &str) {
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>10}",
        "observer", "p50", "p99", "max"
    );
    let added: Vec<Duration> = lat
        .switchboard
        .iter()
        .zip(&lat.direct)
        .map(|(sb, direct)| sb.saturating_sub(*direct))
        .collect();
    let rows: [(&str, &[Duration]); 3] = [
        (floor, &lat.direct),
        ("switchboard blocking query", &lat.switchboard),
        ("added by switchboard (per write)", &added),
    ];
    for (name, samples) in rows {
        let _ = writeln!(
            out,
            "{name:<44} {:>10} {:>10} {:>10}",
            format_latency(percentile(samples, 50.0)),
            format_latency(percentile(samples, 99.0)),
            format_latency(percentile(samples, 100.0)),
        );
    }
    let both = |p: f64| {
        (
            percentile(&lat.switchboard, p).as_secs_f64(),
            percentile(&lat.direct, p).as_secs_f64(),
        )
    };
    let difference = |p: f64| {
        let (sb, direct) = both(p);
        signed_latency(sb - direct)
    };
    let times = |p: f64| {
        let (sb, direct) = both(p);
        format!("{:.2}x", ratio(sb, direct))
    };
    for (name, p50, p99) in [
        (
            format!("difference (switchboard - {short})"),
            difference(50.0),
            difference(99.0),
        ),
        (
            format!("ratio (switchboard / {short})"),
            times(50.0),
            times(99.0),
        ),
    ] {
        let _ = writeln!(out, "{name:<44} {p50:>10} {p99:>10}");
    }
}

pub(crate) fn check_header(out: &mut String) {
    let _ = writeln!(
        out,
        "\n{:<36} {:>10} {:>10}  result",
        "check", "value", "target"
    );
}

/// A check that must come out exactly: PASS, or FAIL (not MISS, as it is not a target a
/// slower machine could miss but something that went wrong).
pub(crate) fn check_equal(out: &mut String, name: &str, value: u64, target: u64) {
    let verdict = if value == target { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "{name:<36} {value:>10} {:>10}  {verdict}",
        format!("== {target}")
    );
}

/// Switchboard's p99 over the direct observer's (`short`), against [`PROPAGATION_TARGET`].
fn check_propagation(out: &mut String, lat: &Latencies, short: &str) {
    let over = percentile(&lat.switchboard, 99.0).as_secs_f64()
        - percentile(&lat.direct, 99.0).as_secs_f64();
    check_below(
        out,
        &format!("propagation: p99 - {short} p99"),
        over,
        Bound::AtMost(PROPAGATION_TARGET.as_secs_f64()),
        signed_latency,
    );
}

/// The target of a lower-is-better check.
enum Bound {
    AtMost(f64),
    Under(f64),
}

fn check_below(
    out: &mut String,
    name: &str,
    value: f64,
    bound: Bound,
    show: impl Fn(f64) -> String,
) {
    let (passed, target, shown) = match bound {
        Bound::AtMost(target) => (value <= target, target, format!("<= {}", show(target))),
        Bound::Under(target) => (value < target, target, format!("< {}", show(target))),
    };
    let verdict = if passed {
        "PASS".to_owned()
    } else {
        format!("MISS ({:.0}% over)", (value / target - 1.0) * 100.0)
    };
    let _ = writeln!(out, "{name:<36} {:>10} {shown:>10}  {verdict}", show(value));
}

/// Seconds as [`format_latency`] shows them, with a minus sign when negative.
fn signed_latency(seconds: f64) -> String {
    let shown = format_latency(Duration::from_secs_f64(seconds.abs()));
    if seconds < 0.0 {
        format!("-{shown}")
    } else {
        shown
    }
}

pub(crate) fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        f64::INFINITY
    }
}

pub(crate) fn check(out: &mut String, name: &str, value: f64, target: f64, decimals: usize) {
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

/// A longer time, in seconds with two decimals.
pub(crate) fn seconds(time: Duration) -> String {
    format!("{:.2}s", time.as_secs_f64())
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

/// The first line of `text` that starts with `name` (for tests of printed reports).
#[cfg(test)]
pub(crate) fn line(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no line {name:?} in:\n{text}"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durations(unit: fn(u64) -> Duration, values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| unit(v)).collect()
    }

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
            switchboard: row("switchboard", 9_600.0),
            heartbeat: row("heartbeat", 25_000.0),
            static_baseline: row("static", 10_000.0),
            rnacos: row("rnacos", 3_000.0),
            guarded: Some(row("switchboard + token", 8_000.0)),
            consul: Some((row("consul", 9_500.0), row("consul static", 10_000.0))),
        };
        let load = Load {
            duration: "1s".into(),
            connections: 8,
        };
        let text = render(&results, &load, 3);
        assert!(line(&text, "reads: with a token / without").contains("0.83"));
        assert!(line(&text, "reads: with a token / without").ends_with("MISS (7% short)"));
        assert!(line(&text, "reads: switchboard / static").contains("0.96"));
        assert!(line(&text, "reads: switchboard / static").ends_with("PASS"));
        assert!(line(&text, "reads: switchboard / rnacos").contains("MISS (36% short)"));
        assert!(line(&text, "heartbeats").ends_with("PASS"));
        assert!(line(&text, "reads: consul door / static").contains("0.95"));
        assert!(text.contains("1.50ms"));
    }

    #[test]
    fn marks_the_etcd_targets() {
        let results = EtcdResults {
            latencies: Latencies {
                switchboard: durations(Duration::from_millis, &[3, 4, 12]),
                direct: durations(Duration::from_millis, &[1, 2, 3]),
            },
            memory: Memory {
                instances: 1000,
                rss_before: 1_000_000,
                rss_after: 3_000_000,
                peak: 4_000_000,
                etcd_before: 0,
                etcd_after: 0,
                load: Duration::from_secs(1),
                visible: Duration::from_secs(2),
            },
        };
        let text = render_etcd(&results);
        assert!(line(&text, "propagation").contains("9.00ms"));
        assert!(line(&text, "propagation").ends_with("MISS (80% over)"));
        assert!(line(&text, "memory").contains("2000 B"));
        assert!(line(&text, "memory").ends_with("MISS (95% over)"));
        assert!(line(&text, "difference (switchboard - watch)").contains("2.00ms"));
        assert!(line(&text, "ratio (switchboard / watch)").ends_with("4.00x"));
        assert!(line(&text, "added by switchboard").contains("9.00ms"));
    }

    #[test]
    fn compares_consul_propagation_with_the_doubles_own_query() {
        let latencies = Latencies {
            switchboard: durations(Duration::from_micros, &[900, 1000, 1500, 4000]),
            direct: durations(Duration::from_micros, &[300, 400, 500, 1000]),
        };
        let text = render_consul(&latencies);
        assert!(text.contains("4 writes (register, deregister alternating)"));
        assert!(line(&text, "double's own blocking query").contains("400us"));
        assert!(line(&text, "switchboard blocking query").contains("1.00ms"));
        let difference = line(&text, "difference (switchboard - double)");
        assert!(difference.contains("600us") && difference.ends_with("3.00ms"));
        let ratio = line(&text, "ratio (switchboard / double)");
        assert!(ratio.contains("2.50x") && ratio.ends_with("4.00x"));
        assert!(line(&text, "propagation: p99 - double p99").ends_with("PASS"));
    }

    #[test]
    fn formats_latency_like_wrk() {
        assert_eq!(format_latency(Duration::from_micros(850)), "850us");
        assert_eq!(format_latency(Duration::from_micros(2500)), "2.50ms");
    }

    #[test]
    fn compares_nacos_with_the_sdk_subscriber() {
        let ms = |values: &[u64]| durations(Duration::from_millis, values);
        let text = render_nacos(&Latencies {
            switchboard: ms(&[501, 602, 990]),
            direct: ms(&[500, 600, 980]),
        });
        assert!(text.contains("3 writes (register, deregister alternating)"));
        assert!(line(&text, "direct nacos-sdk subscriber").contains("600.00ms"));
        let difference = line(&text, "difference (switchboard - sdk)");
        assert!(difference.contains("2.00ms") && difference.ends_with("10.00ms"));
        assert!(line(&text, "ratio (switchboard / sdk)").ends_with("1.01x"));
        assert!(line(&text, "propagation: p99 - sdk p99").ends_with("MISS (100% over)"));
    }
}
