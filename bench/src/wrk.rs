//! Driving `wrk` pinned to core 1 (the servers own core 0) and reading its report.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

/// How hard and how long to load each target.
#[derive(Clone, Debug)]
pub struct Load {
    /// A wrk duration such as `10s` or `1m`.
    pub duration: String,
    pub connections: u32,
}

/// What the bench reads from one wrk run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub requests_per_sec: f64,
    pub p99: Duration,
    pub requests: u64,
    /// wrk prints the line only when some responses were not 2xx or 3xx.
    pub non_2xx: u64,
    /// wrk's socket error line, when it printed one.
    pub socket_errors: Option<String>,
}

/// Runs `wrk -t1` against `url`, optionally with a Lua script and a header on every
/// request. One wrk thread on its own core is enough to saturate a server confined to
/// the other one.
pub async fn run(
    load: &Load,
    duration: &str,
    url: &str,
    script: Option<&Path>,
    header: Option<&str>,
) -> anyhow::Result<Report> {
    let mut command = tokio::process::Command::new("taskset");
    command
        .args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{duration}"))
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    if let Some(header) = header {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(url)
        .stdin(Stdio::null())
        // An interrupted bench drops this future; wrk must not outlive it.
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk against {url} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout.trim()
        );
    }
    parse(&stdout).with_context(|| format!("cannot read wrk's report for {url}:\n{stdout}"))
}

/// Reads requests/s, the 99th percentile and the error lines from wrk's `--latency` report.
pub fn parse(output: &str) -> anyhow::Result<Report> {
    let mut requests_per_sec = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = None;
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(value.trim().parse::<f64>()?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99 = Some(parse_latency(value.trim())?);
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = value.trim().parse()?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            socket_errors = Some(value.trim().to_owned());
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(Report {
        requests_per_sec: requests_per_sec.context("no `Requests/sec:` line")?,
        p99: p99.context("no `99%` latency line (was --latency given?)")?,
        requests: requests.context("no `N requests in` line")?,
        non_2xx,
        socket_errors,
    })
}

/// Reads wrk's latency notation: a decimal number followed by `us`, `ms`, `s`, `m` or `h`.
pub fn parse_latency(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("bad latency {text:?}"))?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("latency {text:?} has an unknown unit"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A wrk script sending `PUT /api/v1/instances/{id}/heartbeat` round-robin over `ids`.
pub fn heartbeat_script(ids: &[String]) -> anyhow::Result<String> {
    let mut quoted = Vec::with_capacity(ids.len());
    for id in ids {
        // Ids go into a Lua string and a URL path unescaped, so only allow what needs no
        // escaping in either.
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            bail!("instance id {id:?} has characters the heartbeat script cannot carry");
        }
        quoted.push(format!("  \"{id}\","));
    }
    Ok(format!(
        "local ids = {{\n{}\n}}\nlocal i = 0\n\
         request = function()\n  \
           i = i % #ids + 1\n  \
           return wrk.format(\"PUT\", \"/api/v1/instances/\" .. ids[i] .. \"/heartbeat\")\n\
         end\n",
        quoted.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
Running 5s test @ http://127.0.0.1:40000/api/v1/services/bench-svc/instances
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  320.11us   9.87ms   91.00%
    Req/Sec    52.10k     1.20k   54.00k    80.00%
  Latency Distribution
     50%    1.15ms
     75%    1.30ms
     90%    1.50ms
     99%  850.00us
  259000 requests in 5.00s, 1.20GB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  51800.25
Transfer/sec:    245.00MB
";

    #[test]
    fn reads_a_latency_report() {
        let report = parse(REPORT).unwrap();
        assert_eq!(report.requests_per_sec, 51800.25);
        assert_eq!(report.p99, Duration::from_micros(850));
        assert_eq!(report.requests, 259000);
        assert_eq!(report.non_2xx, 7);
        assert_eq!(
            report.socket_errors.as_deref(),
            Some("connect 0, read 3, write 0, timeout 0")
        );
    }

    #[test]
    fn a_clean_run_has_no_error_lines() {
        let clean: String = REPORT
            .lines()
            .filter(|line| !line.contains("errors") && !line.contains("Non-2xx"))
            .map(|line| format!("{line}\n"))
            .collect();
        let report = parse(&clean).unwrap();
        assert_eq!(report.non_2xx, 0);
        assert_eq!(report.socket_errors, None);
    }

    #[test]
    fn a_report_without_latency_is_an_error() {
        assert!(parse("Requests/sec: 10.0\n").is_err());
    }

    #[test]
    fn reads_every_latency_unit() {
        assert_eq!(
            parse_latency("12.50us").unwrap(),
            Duration::from_nanos(12_500)
        );
        assert_eq!(parse_latency("3.00ms").unwrap(), Duration::from_millis(3));
        assert_eq!(parse_latency("1.50s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_latency("2.00m").unwrap(), Duration::from_secs(120));
        assert!(parse_latency("3.00").is_err());
        assert!(parse_latency("3.00xs").is_err());
    }

    #[test]
    fn the_heartbeat_script_rotates_over_the_ids() {
        let script = heartbeat_script(&["a-1".into(), "b-2".into()]).unwrap();
        assert!(script.contains("\"a-1\",\n  \"b-2\","));
        assert!(script.contains("wrk.format(\"PUT\""));
        assert!(heartbeat_script(&["bad\"id".into()]).is_err());
    }
}
