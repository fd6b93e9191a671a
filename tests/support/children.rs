//! Servers the tests start (etcd, rnacos, the `switchboard` binary) die with the test
//! process, however it ends. Their `Drop` kills them when a test ends, even on failure,
//! but a test run that is itself killed (SIGKILL, an interrupted `cargo test`, a CI
//! timeout) runs no destructor, and they would live on holding ports and temp dirs.
//!
//! So each is started through `setpriv --pdeathsig KILL` (util-linux), which asks the
//! kernel to SIGKILL it when its parent goes, then runs the server in its place (same
//! pid). Without `unsafe` the test cannot make that call itself between fork and exec.
//! The kernel's "parent" is the thread that spawned the child, not the process: a server
//! spawned from a test's thread, or from a tokio worker, would be killed when that thread
//! ends, which may be before the server is done with. So every child is spawned from one
//! thread kept for the life of the test process.

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;

/// A command running `program` that is SIGKILLed when the test process dies; spawn it
/// with [`spawn`].
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the thread that lives as long as the test process (see the
/// module docs); a `command` from [`command`] dies with the test process.
pub fn spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, received) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("child-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in received {
                    // The asking test may have given up; then the child is dropped
                    // unwaited, as a failed spawn would have been.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the thread that spawns test servers");
        requests
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .expect("the child-spawner thread runs for the whole test process");
    let spawned = answer.recv().expect("the child-spawner thread answers");
    assert!(
        spawned.is_ok() || on_path("setpriv").is_some(),
        "`setpriv` is not installed: run `make deps` (Debian package util-linux)"
    );
    spawned
}

/// `name` on `PATH`: `setpriv` would start a missing program only to fail, so the caller
/// checks first and can say what to install.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether process `pid` still runs (a zombie, killed and waiting to be reaped, does not).
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`; comm may hold spaces and parentheses, the state follows the
    // last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
