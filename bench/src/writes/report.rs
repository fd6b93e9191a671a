//! The writes part's printed report: the registration runs against rnacos, the restart
//! storm against rnacos, propagation under load against a direct etcd watch, then the
//! checks. The two targets (registrations against rnacos, a large service against a
//! fresh one) are marked PASS or MISS; the counts that must come out exact (what was
//! acknowledged is listed, what was saved is restored, the last write wins) PASS or FAIL.

use std::fmt::Write as _;
use std::time::Duration;

use super::churn::{self, Churn};
use super::load::Throughput;
use super::restart::{self, Storm};
use super::{WritesResults, CLIENTS, MEASURED, PRELOADED, SERVICE, WARM_UP};
use crate::memory::mib;
use crate::report::{
    check, check_equal, check_header, format_latency, propagation_table, ratio, seconds,
};

/// Switchboard's registrations/s against rnacos's persistent ones.
pub const RNACOS_RATIO_TARGET: f64 = 2.0;
/// Registrations/s into a service of [`PRELOADED`] instances against a fresh one.
pub const PRELOADED_RATIO_TARGET: f64 = 0.8;

pub fn render(r: &WritesResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSwitchboard writes: servers pinned to core 0, the bench's clients on core 1 (tokio \
         tasks, one keep-alive connection each); every server starts fresh; the part took \
         {:.1?}",
        r.total
    );
    registrations(&mut out, r);
    storm(&mut out, &r.storm);
    churn(&mut out, &r.churn);

    let regs = &r.registrations;
    let fresh = regs.fresh.throughput.per_sec;
    check_header(&mut out);
    check(
        &mut out,
        "writes: switchboard / rnacos",
        ratio(fresh, regs.rnacos.per_sec),
        RNACOS_RATIO_TARGET,
        2,
    );
    check(
        &mut out,
        &format!("writes: {PRELOADED} in service / fresh"),
        ratio(regs.preloaded.throughput.per_sec, fresh),
        PRELOADED_RATIO_TARGET,
        2,
    );
    let n = restart::INSTANCES as u64;
    for (name, value, target) in [
        (
            "listed == acknowledged (fresh)",
            regs.fresh.listed as u64,
            regs.fresh.acknowledged as u64,
        ),
        (
            "listed == acknowledged (preloaded)",
            regs.preloaded.listed as u64,
            regs.preloaded.acknowledged as u64,
        ),
        ("restored by the restart", r.storm.restored as u64, n),
        (
            &format!("load: as etcd holds, in {:?}", churn::CONVERGE),
            r.churn.matching as u64,
            churn::INSTANCES as u64,
        ),
    ] {
        check_equal(&mut out, name, value, target);
    }
    out
}

fn registrations(out: &mut String, r: &WritesResults) {
    let regs = &r.registrations;
    let _ = writeln!(
        out,
        "\nRegistrations into one service ({SERVICE}), each a new endpoint: {CLIENTS} \
         clients, {MEASURED:?} measured after a {WARM_UP:?} warm-up\n"
    );
    let _ = writeln!(
        out,
        "{:<52} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "target", "requests/s", "mean", "p99", "listed", "bench CPU"
    );
    let row = |out: &mut String, name: &str, run: &Throughput, listed: Option<usize>| {
        let listed = listed.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{name:<52} {:>10.0} {:>10} {:>10} {listed:>8} {:>9}",
            run.per_sec,
            format_latency(run.mean),
            format_latency(run.p99),
            format!("{:.0}%", run.client_cpu * 100.0),
        );
    };
    row(
        out,
        "switchboard, fresh (POST /api/v1/instances)",
        &regs.fresh.throughput,
        Some(regs.fresh.listed),
    );
    row(
        out,
        &format!("switchboard, {PRELOADED} instances already in the service"),
        &regs.preloaded.throughput,
        Some(regs.preloaded.listed),
    );
    row(
        out,
        "rnacos, persistent (POST /nacos/v1/ns/instance)",
        &regs.rnacos,
        None,
    );
    let fresh = regs.fresh.throughput.per_sec;
    let preloaded = regs.preloaded.throughput.per_sec;
    for (name, value) in [
        (
            "ratio (switchboard / rnacos)".to_owned(),
            ratio(fresh, regs.rnacos.per_sec),
        ),
        (
            format!("ratio ({PRELOADED} already in the service / fresh)"),
            ratio(preloaded, fresh),
        ),
    ] {
        let _ = writeln!(out, "{name:<52} {:>10}", format!("{value:.2}x"));
    }
    let _ = writeln!(
        out,
        "(the untimed pre-load of {PRELOADED} instances, 64 clients: {}, {:.0}/s; bench \
         CPU: the clients' share of core 1, near 100% they set the pace)",
        seconds(regs.preload),
        PRELOADED as f64 / regs.preload.as_secs_f64()
    );
}

fn storm(out: &mut String, s: &Storm) {
    let n = restart::INSTANCES;
    let _ = writeln!(
        out,
        "\nRestart storm: {n} instances of one service (loaded in {}), Switchboard stopped \
         with SIGTERM and started on its data dir, then all {n} registered again (same ids) \
         by {} clients; rnacos takes the same {n} registrations fresh\n",
        seconds(s.preload),
        restart::CLIENTS
    );
    let _ = writeln!(out, "{:<52} {:>10} {:>10}", "step", "time", "writes/s");
    let per_sec = |time: Duration| format!("{:.0}", n as f64 / time.as_secs_f64());
    let rows = [
        ("switchboard: SIGTERM until it exited", s.stop, None),
        ("switchboard: restart until /ready", s.ready, None),
        (
            "switchboard: every re-registration acknowledged",
            s.acknowledged,
            Some(per_sec(s.acknowledged)),
        ),
        (
            "switchboard: every instance served as re-registered",
            s.served,
            Some(per_sec(s.served)),
        ),
        (
            "rnacos: every registration acknowledged",
            s.rnacos_acknowledged,
            Some(per_sec(s.rnacos_acknowledged)),
        ),
        (
            "rnacos: every instance listed",
            s.rnacos_listed,
            Some(per_sec(s.rnacos_listed)),
        ),
    ];
    for (name, time, rate) in rows {
        let row = format!(
            "{name:<52} {:>10} {:>10}",
            format_time(time),
            rate.unwrap_or_default()
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    let _ = writeln!(
        out,
        "{:<52} {:>10}",
        "ratio (switchboard / rnacos, writes/s until served)",
        format!(
            "{:.2}x",
            ratio(s.rnacos_listed.as_secs_f64(), s.served.as_secs_f64())
        )
    );
}

fn churn(out: &mut String, c: &Churn) {
    let _ = writeln!(
        out,
        "\nPropagation under load: an etcd source with one service ({}) of {} instances; \
         {} writes to random instances in {} ({:.0}/s{}), {} of them timed from just before \
         the put until seen{}\n",
        churn::SERVICE,
        churn::INSTANCES,
        c.writes,
        seconds(c.window),
        c.writes as f64 / c.window.as_secs_f64(),
        if c.skipped > 0 {
            format!("; {} writes skipped, etcd behind", c.skipped)
        } else {
            String::new()
        },
        c.latencies.switchboard.len(),
        if c.unseen > 0 {
            format!(
                "; {} never shown by switchboard, counted at the time the probe gave up \
                 (so its figures are lower bounds)",
                c.unseen
            )
        } else {
            String::new()
        }
    );
    propagation_table(out, &c.latencies, "direct etcd watch (the floor)", "watch");
    let share = |cpu: Duration| {
        format!(
            "{} ({:.0}% of a core)",
            seconds(cpu),
            100.0 * cpu.as_secs_f64() / c.window.as_secs_f64()
        )
    };
    let converged = c.converged.map_or_else(
        || format!("not within {:?}", churn::CONVERGE),
        |time| format!("after {}", format_latency(time)),
    );
    let _ = writeln!(out);
    for (name, value) in [
        ("switchboard CPU during the load", share(c.switchboard_cpu)),
        ("etcd CPU during the load", share(c.etcd_cpu)),
        (
            "probe's blocking-query answers (each the service)",
            format!("{} x {}", c.answers, mib(c.body_bytes as u64)),
        ),
        ("switchboard serves etcd's last writes", converged),
    ] {
        let _ = writeln!(out, "{name:<52} {value:>10}");
    }
}

/// [`format_latency`] below a second, else [`seconds`].
fn format_time(time: Duration) -> String {
    if time < Duration::from_secs(1) {
        format_latency(time)
    } else {
        seconds(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::Latencies;
    use crate::report::line;
    use crate::writes::{Registrations, Run};

    fn throughput(per_sec: f64) -> Throughput {
        Throughput {
            requests: (per_sec * 5.0) as usize,
            per_sec,
            mean: Duration::from_micros(800),
            p99: Duration::from_millis(3),
            total: 12_000,
            client_cpu: 0.31,
        }
    }

    fn results() -> WritesResults {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let run = |per_sec, listed| Run {
            throughput: throughput(per_sec),
            acknowledged: 12_000,
            listed,
        };
        WritesResults {
            registrations: Registrations {
                fresh: run(5000.0, 12_000),
                preloaded: run(3500.0, 11_999),
                rnacos: throughput(2000.0),
                preload: s(4),
            },
            storm: Storm {
                preload: s(3),
                stop: ms(120),
                ready: ms(900),
                restored: restart::INSTANCES,
                acknowledged: s(2),
                served: s(4),
                rnacos_acknowledged: s(5),
                rnacos_listed: s(6),
            },
            churn: Churn {
                latencies: Latencies {
                    switchboard: vec![ms(3), ms(4), ms(12)],
                    direct: vec![ms(1), ms(2), ms(3)],
                },
                unseen: 0,
                writes: 10_000,
                skipped: 0,
                window: s(10),
                switchboard_cpu: s(2),
                etcd_cpu: s(3),
                answers: 600,
                body_bytes: 4 * 1024 * 1024,
                matching: churn::INSTANCES,
                converged: Some(ms(40)),
            },
            total: s(150),
        }
    }

    #[test]
    fn marks_the_write_targets_and_exact_counts() {
        let text = render(&results());
        assert!(line(&text, "writes: switchboard / rnacos").contains("2.50"));
        assert!(line(&text, "writes: switchboard / rnacos").ends_with("PASS"));
        let preloaded = line(&text, "writes: 20000 in service / fresh");
        assert!(
            preloaded.contains("0.70") && preloaded.contains("MISS ("),
            "{preloaded}"
        );
        assert!(line(&text, "listed == acknowledged (fresh)").ends_with("PASS"));
        assert!(line(&text, "listed == acknowledged (preloaded)").ends_with("FAIL"));
        assert!(line(&text, "restored by the restart").ends_with("PASS"));
        assert!(line(&text, "load: as etcd holds, in 60s").ends_with("PASS"));
    }

    #[test]
    fn prints_each_run_beside_its_baseline() {
        let text = render(&results());
        let fresh = line(&text, "switchboard, fresh");
        assert!(
            fresh.contains(" 5000 ") && fresh.contains("800us"),
            "{fresh}"
        );
        assert!(fresh.ends_with("12000       31%"), "{fresh}");
        assert!(line(&text, "rnacos, persistent").ends_with(" -       31%"));
        assert!(line(&text, "ratio (switchboard / rnacos)").ends_with("2.50x"));
        assert!(line(&text, "ratio (20000 already").ends_with("0.70x"));
        assert!(text.contains("pre-load of 20000 instances, 64 clients: 4.00s, 5000/s;"));
        assert!(line(&text, "switchboard: SIGTERM").ends_with("120.00ms"));
        assert!(line(&text, "switchboard: every instance served").ends_with("4.00s       2500"));
        assert!(line(&text, "rnacos: every instance listed").ends_with("1667"));
        assert!(line(&text, "ratio (switchboard / rnacos, writes/s").ends_with("1.50x"));
        assert!(line(&text, "switchboard blocking query").contains("4.00ms"));
        assert!(line(&text, "difference (switchboard - watch)").ends_with("9.00ms"));
        assert!(line(&text, "switchboard CPU").ends_with("2.00s (20% of a core)"));
        assert!(line(&text, "probe's blocking-query answers").ends_with("600 x 4.0 MiB"));
        assert!(line(&text, "switchboard serves etcd's last").ends_with("after 40.00ms"));
        assert!(text.contains("10000 writes to random instances in 10.00s (1000/s)"));
    }
}
