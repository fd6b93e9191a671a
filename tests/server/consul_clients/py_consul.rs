//! py-consul 1.8.0 against the Consul API; each script runs its named checks in order
//! and reports every one that failed with the last HTTP exchange (see `common.py`).

use super::harness::{Door, Switchboard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_reads_catalog_health_status_and_agent_info_with_blocking_queries() {
    let switchboard = Switchboard::start("", &[], Door::Main).await;
    switchboard.run_checks("py_consul_reads.py", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_registers_with_checks_updates_ttls_maintains_and_deregisters() {
    let switchboard = Switchboard::start("", &[], Door::Main).await;
    switchboard.run_checks("py_consul_agent.py", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_raises_acl_permission_denied_for_bad_tokens_and_missing_roles() {
    let switchboard = Switchboard::start(
        "",
        &[("SWITCHBOARD_AUTH__ENABLED", "true")],
        Door::OwnListener,
    )
    .await;
    let secret = std::fs::read_to_string(
        (switchboard.dir.path().join("data")).join(switchboard::auth::BOOTSTRAP_FILE),
    )
    .expect("access control on with no token writes the bootstrap token");
    switchboard
        .run_checks("py_consul_acl.py", &[("SB_ADMIN", secret.trim())])
        .await;
}
