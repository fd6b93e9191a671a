//! Runs one block the way a reader pastes it into a terminal: `bash -euo pipefail`, in the
//! page's directory, with stdout and stderr in one stream, as a terminal shows them.
//!
//! The block runs in a process group of its own, killed when the block ends, runs out of
//! time or the test fails: whatever it left running in the background goes with it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Environment of the test runner that must not reach a block: it would configure the
/// `switchboard` and `etcdctl` the block runs instead of what the page shows.
const PRIVATE_PREFIXES: &[&str] = &["SWITCHBOARD_", "ETCDCTL_"];

/// What a block did.
pub struct Ran {
    /// `None` when it exited 0; else how it ended.
    pub failure: Option<String>,
    /// stdout and stderr, interleaved as written.
    pub output: String,
}

/// Runs `code` in `dir` with `env` set, giving it `deadline` to finish.
pub async fn run(code: &str, dir: &Path, env: &[(&str, &str)], deadline: Duration) -> Ran {
    let log_dir = tempfile::tempdir().expect("a directory for the block's output");
    let log_path = log_dir.path().join("output");
    let log = std::fs::File::create(&log_path).expect("create the block's output file");
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-e", "-u", "-o", "pipefail", "-c", code])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share the output file"))
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if PRIVATE_PREFIXES.iter().any(|p| key_text.starts_with(p)) {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let child = command.spawn();
    let mut child = child.unwrap_or_else(|err| panic!("cannot start bash: {err}"));
    let group = Group(child.id().expect("bash's pid"));
    let failure = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(format!("it failed ({status})")),
        Ok(Err(err)) => Some(format!("waiting for bash failed: {err}")),
        Err(_) => Some(format!("it did not finish within {deadline:?}")),
    };
    // Background jobs stop writing before the output is read.
    drop(group);
    let output = std::fs::read(&log_path).unwrap_or_default();
    Ran {
        failure,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}

/// A process group, killed on drop.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        // An error only means every process of the group has ended already.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}
