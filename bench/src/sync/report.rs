//! The sync part's printed report: times and write rates of the job against the direct
//! client, where the CPU went, and the checks on the job's `writes` counter.

use std::fmt::Write as _;
use std::time::Duration;

use super::{SyncResults, INSTANCES, PER_SERVICE, SERVICES, SOURCE_DEADLINE};
use crate::report::{check_equal, check_header, format_latency, seconds};

fn per_second(time: Duration) -> f64 {
    INSTANCES as f64 / time.as_secs_f64()
}

pub fn render(r: &SyncResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSwitchboard sync-back: a job copying {INSTANCES} instances ({SERVICES} services x \
         {PER_SERVICE}) from etcd into rnacos (persistent, HTTP OpenAPI); etcd, rnacos and \
         Switchboard pinned to core 0, the bench's clients to core 1\n\nLoaded into etcd in \
         {:.2?}, all served by switchboard after {:.2?}; the part took {:.1?} in all\n",
        r.etcd_load, r.catalog_ready, r.total
    );
    let _ = writeln!(
        out,
        "{:<52} {:>10} {:>10} {:>11}",
        "writer", "time", "writes/s", "rnacos CPU"
    );
    let [before, after] = r.baselines;
    let rows = [
        (
            "direct client, one at a time: before the job",
            before.time,
            Some(before.rnacos_cpu),
        ),
        (
            "direct client, one at a time: after the job",
            after.time,
            Some(after.rnacos_cpu),
        ),
        (
            "switchboard job: status synced, nothing pending",
            r.synced,
            None,
        ),
        (
            "switchboard job: rnacos lists them all",
            r.listed,
            Some(r.sync_rnacos_cpu),
        ),
    ];
    for (name, time, cpu) in rows {
        let row = format!(
            "{name:<52} {:>10} {:>10.0} {:>11}",
            seconds(time),
            per_second(time),
            cpu.map(seconds).unwrap_or_default()
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    let floor = r.baseline();
    let ratio = |time: Duration| format!("{:.2}x", time.as_secs_f64() / floor.as_secs_f64());
    let source_view = r
        .source_view
        .map_or_else(|| format!("not within {SOURCE_DEADLINE:?}"), seconds);
    for (name, value) in [
        ("ratio (job synced / faster direct run)", ratio(r.synced)),
        (
            "ratio (rnacos lists all / faster direct run)",
            ratio(r.listed),
        ),
        (
            "switchboard CPU during the job (until all listed)",
            seconds(r.sync_switchboard_cpu),
        ),
        ("switchboard's nacos source serves every copy", source_view),
        (
            "one change in etcd until rnacos lists it",
            format_latency(r.one_change),
        ),
    ] {
        let _ = writeln!(out, "{name:<52} {value:>10}");
    }

    check_header(&mut out);
    let n = INSTANCES as u64;
    for (name, value, target) in [
        ("writes == instances (at sync)", r.writes_at_sync, n),
        ("writes == instances (settled)", r.writes_settled, n),
        ("rnacos lists every copy", r.exact_listed as u64, n),
        ("writes after one change", r.writes_after_change, n + 1),
        ("job errors", r.errors, 0),
    ] {
        check_equal(&mut out, name, value, target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::line;
    use crate::sync::rnacos::Baseline;

    #[test]
    fn marks_the_sync_checks() {
        let s = Duration::from_secs;
        let results = SyncResults {
            etcd_load: s(1),
            catalog_ready: s(2),
            baselines: [
                Baseline {
                    time: s(12),
                    rnacos_cpu: s(9),
                },
                Baseline {
                    time: s(10),
                    rnacos_cpu: s(3),
                },
            ],
            synced: s(20),
            listed: s(20),
            sync_switchboard_cpu: s(4),
            sync_rnacos_cpu: s(5),
            source_view: None,
            exact_listed: INSTANCES,
            writes_at_sync: 10_000,
            writes_settled: 10_000,
            one_change: Duration::from_millis(150),
            writes_after_change: 10_002,
            errors: 0,
            total: s(60),
        };
        let text = render(&results);
        assert!(line(&text, "ratio (job synced / faster").ends_with("2.00x"));
        let after = line(&text, "direct client, one at a time: after");
        assert!(
            after.contains(" 1000 ") && after.ends_with("3.00s"),
            "{after}"
        );
        assert!(line(&text, "switchboard job: status").ends_with("500"));
        assert!(line(&text, "switchboard job: rnacos").ends_with("5.00s"));
        assert!(line(&text, "switchboard CPU").ends_with("4.00s"));
        assert!(line(&text, "switchboard's nacos source").contains("not within"));
        assert!(line(&text, "one change").ends_with("150.00ms"));
        assert!(line(&text, "writes == instances (settled)").ends_with("PASS"));
        assert!(line(&text, "writes after one change").ends_with("FAIL"));
        assert!(line(&text, "job errors").ends_with("PASS"));
    }
}
