//! A server a test starts does not outlive a test process that is killed: this binary runs
//! itself again as a helper that starts one server, the test SIGKILLs the helper (no
//! destructor runs), and the server must be gone soon after (see `support::children`).

use std::any::Any;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::etcd::EtcdServer;
use crate::support::rnacos::RnacosServer;
use crate::support::{children, wait_until, BinaryServer, DEADLINE};

/// The helper's full test name, as libtest filters it.
const HELPER: &str = "orphans::helper_starts_a_server_and_waits_to_be_killed";

/// Which server the helper starts; unset, the helper does nothing.
const SERVER_ENV: &str = "SWITCHBOARD_TEST_ORPHAN_SERVER";

/// The line on which the helper tells the server's pid.
const PID_PREFIX: &str = "orphan-test-server-pid=";

/// How long the helper may take to start its server (rnacos retries a failed start).
const HELPER_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn etcd_dies_with_a_killed_test_process() {
    assert_dies_with_its_test_process("etcd").await;
}

#[tokio::test]
async fn rnacos_dies_with_a_killed_test_process() {
    assert_dies_with_its_test_process("rnacos").await;
}

#[tokio::test]
async fn the_switchboard_binary_dies_with_a_killed_test_process() {
    assert_dies_with_its_test_process("switchboard").await;
}

async fn assert_dies_with_its_test_process(server: &str) {
    let exe = std::env::current_exe().expect("this test binary's path");
    let mut command = children::command(exe);
    command
        .args([
            HELPER,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVER_ENV, server)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut helper = children::spawn(command).expect("start the helper test process");
    let pid = read_pid(&mut helper, server).await;
    assert!(children::is_running(pid), "{server} (pid {pid}) runs");

    // As `kill -9` of a test run, or a CI timeout: the helper's destructors never run.
    helper.kill().expect("kill -9 the helper");
    helper.wait().expect("reap the helper");
    let what = format!("{server} (pid {pid}) to die with the killed test process");
    wait_until(&what, DEADLINE, || async {
        (!children::is_running(pid)).then_some(())
    })
    .await;
}

/// The pid the helper prints once its server is up; kills the helper if none comes.
async fn read_pid(helper: &mut Child, server: &str) -> u32 {
    let stdout = helper.stdout.take().expect("the helper's stdout is piped");
    let reading = tokio::task::spawn_blocking(move || {
        let lines = BufReader::new(stdout).lines().map_while(Result::ok);
        for line in lines {
            // libtest may have begun the line ("test ... ").
            if let Some((_, pid)) = line.split_once(PID_PREFIX) {
                return pid.trim().parse::<u32>().ok();
            }
        }
        None
    });
    let pid = tokio::time::timeout(HELPER_DEADLINE, reading).await;
    match pid {
        Ok(Ok(Some(pid))) => pid,
        failed => {
            // Ends the blocked read too: the pipe closes.
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("the helper did not start {server}: {failed:?}");
        }
    }
}

/// Not a test of its own: run by the tests above, in a child process, with
/// [`SERVER_ENV`] set. Starts that server, prints its pid and waits, holding the server,
/// until killed (or until its stdin closes, should the test that started it be gone).
#[test]
#[ignore = "a helper the orphan tests run in a child process"]
fn helper_starts_a_server_and_waits_to_be_killed() {
    let Ok(server) = std::env::var(SERVER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    // Whichever server it is, held (not dropped, which would kill it) until the end.
    let (pid, held): (u32, Box<dyn Any>) = runtime.block_on(async {
        match server.as_str() {
            "etcd" => {
                let etcd = EtcdServer::start().await;
                (etcd.pid().unwrap(), Box::new(etcd) as Box<dyn Any>)
            }
            "rnacos" => {
                let rnacos = RnacosServer::start().await;
                (rnacos.pid().unwrap(), Box::new(rnacos) as Box<dyn Any>)
            }
            "switchboard" => {
                let binary = BinaryServer::start(data_dir.path()).await;
                (binary.pid(), Box::new(binary) as Box<dyn Any>)
            }
            other => panic!("no such server: {other}"),
        }
    });
    println!("{PID_PREFIX}{pid}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(held);
}
