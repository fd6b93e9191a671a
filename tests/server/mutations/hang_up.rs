//! Hang-ups: thousands of concurrent registrations, deregistrations and status changes,
//! a share of them cut off by their client at a random moment (the connection dropped
//! mid-request, anywhere from before it is sent to after it is answered). Afterwards the
//! registry and discovery agree on every id, acknowledged outcomes hold, and restarts
//! (graceful, then `kill -9`) bring back nothing that was gone, lose nothing that was there
//! and keep every status: a cut-off mutation happened in the store, in memory and in the
//! catalog, or in none of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Client;
use serde_json::json;

use super::{
    deregister, discovery_view, one_shot_client, pooled_client, register, registry_view, send,
    set_status, str_of, REGISTER_STATUSES, STATUSES,
};
use crate::support::{poll, BinaryServer, DEADLINE};

const SERVICES: usize = 5;
const IDS: usize = 300;
const CLIENTS: usize = 48;
/// Per client; 2 976 requests in all.
const OPERATIONS_PER_CLIENT: usize = 62;
/// Share of requests sent with a short patience; most of them are cut off. Every third id
/// is only ever written patiently, so its last acknowledged op is exact.
const IMPATIENT_SHARE: f64 = 0.4;
/// A patience is drawn from 0 to this, or to 1.5 times the client's last acknowledged
/// round trip when that is longer: under load a request waits its turn far longer than
/// 5 ms, and a hang-up must be able to land while it is being written, not only while it
/// waits.
const MIN_PATIENCE_CEILING: Duration = Duration::from_millis(5);
/// Frequent sweeps, so one runs soon after each restart.
const FAST_SWEEPS: &[(&str, &str)] = &[
    ("SWITCHBOARD_REGISTRY__EXPIRY_INTERVAL", "50ms"),
    ("SWITCHBOARD_REGISTRY__HEARTBEAT_FLUSH_INTERVAL", "100ms"),
];

/// An id's state: its status while registered, `None` while absent.
type State = Option<String>;

/// Every id's state, read back from the server.
type World = BTreeMap<String, State>;

#[derive(Clone, Copy, Debug)]
enum Op {
    Register(&'static str),
    Deregister,
    SetStatus(&'static str),
}

impl Op {
    fn random(rng: &mut StdRng) -> Op {
        match rng.gen_range(0..10) {
            0..=3 => Op::Register(REGISTER_STATUSES[rng.gen_range(0..REGISTER_STATUSES.len())]),
            4..=6 => Op::Deregister,
            _ => Op::SetStatus(STATUSES[rng.gen_range(0..STATUSES.len())]),
        }
    }

    /// The state this op leaves when it applies to `state`.
    fn apply(self, state: &State) -> State {
        match self {
            Op::Register(status) => Some(status.to_owned()),
            Op::Deregister => None,
            Op::SetStatus(status) => state.as_ref().map(|_| status.to_owned()),
        }
    }
}

#[derive(Clone, Debug)]
enum Outcome {
    /// The server answered; the state its reply says.
    Acked(State),
    /// The client hung up first: applied or not, nobody was told.
    CutOff,
}

/// One id, always in the same service at the same endpoint (no endpoint takeovers here).
struct Target {
    id: String,
    service: String,
    address: String,
}

fn targets() -> Vec<Target> {
    (0..IDS)
        .map(|i| Target {
            id: format!("hang-up-{i}"),
            service: format!("hang-up-svc-{}", i % SERVICES),
            address: format!("10.40.{}.{}:8080", i / 200, i % 200),
        })
        .collect()
}

/// Sends `op` and checks the reply; `Ok` is the state it acknowledges.
async fn perform(client: &Client, base: &str, target: &Target, op: Op) -> Result<State, String> {
    let id = target.id.as_str();
    let (status, body) = match op {
        Op::Register(status) => {
            register(client, base, id, &target.service, &target.address, status).await?
        }
        Op::Deregister => deregister(client, base, id).await?,
        Op::SetStatus(status) => set_status(client, base, id, status).await?,
    };
    match (op, status) {
        (Op::Register(want), 200 | 201) | (Op::SetStatus(want), 200)
            if body["id"] == id && body["status"] == want =>
        {
            Ok(Some(want.to_owned()))
        }
        (Op::Deregister, 200) if body["id"] == id => Ok(None),
        (Op::Deregister | Op::SetStatus(_), 404) if body["code"] == "instance_not_found" => {
            Ok(None)
        }
        _ => Err(format!("{op:?} {id} answered {status} {body}")),
    }
}

/// One client: `OPERATIONS_PER_CLIENT` random ops on its own ids, one at a time, so each
/// id's ops are sent in a known order. Returns (id index, op, outcome) in that order.
async fn run_client(
    base: String,
    targets: Arc<Vec<Target>>,
    mine: Vec<usize>,
    seed: u64,
) -> Result<Vec<(usize, Op, Outcome)>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let client = one_shot_client();
    let mut log = Vec::with_capacity(OPERATIONS_PER_CLIENT);
    let mut round_trip = Duration::ZERO;
    for _ in 0..OPERATIONS_PER_CLIENT {
        let index = mine[rng.gen_range(0..mine.len())];
        let op = Op::random(&mut rng);
        let attempt = perform(&client, &base, &targets[index], op);
        let outcome = if index % 3 != 0 && rng.gen_bool(IMPATIENT_SHARE) {
            let ceiling = MIN_PATIENCE_CEILING.max(round_trip * 3 / 2);
            let patience = rng.gen_range(Duration::ZERO..=ceiling);
            match tokio::time::timeout(patience, attempt).await {
                Ok(acked) => Outcome::Acked(acked?),
                // The request future is dropped, and with it its connection: whatever the
                // server had received of it, the client is gone.
                Err(_) => Outcome::CutOff,
            }
        } else {
            let sent = Instant::now();
            let acked = attempt.await?;
            round_trip = sent.elapsed();
            Outcome::Acked(acked)
        };
        log.push((index, op, outcome));
    }
    Ok(log)
}

/// Every id as the registry sees it, `Err` naming each id on which discovery disagrees.
async fn read_world(client: &Client, base: &str, targets: &[Target]) -> Result<World, String> {
    let mut listed = BTreeMap::new();
    for service in 0..SERVICES {
        let service = format!("hang-up-svc-{service}");
        listed.extend(discovery_view(client, base, &service).await?);
    }
    let mut world = World::new();
    let mut disagreements = Vec::new();
    for target in targets {
        let own = registry_view(client, base, &target.id).await?;
        let served = listed.remove(&target.id);
        for (what, view) in [("registry", &own), ("discovery", &served)] {
            if let Some(view) = view.as_ref().filter(|view| {
                view["service"] != target.service.as_str()
                    || view["address"] != target.address.as_str()
            }) {
                disagreements.push(format!("{}: the {what} serves {view}", target.id));
            }
        }
        let own = own.map(|view| str_of(&view, "status"));
        let served = served.map(|view| str_of(&view, "status"));
        if own != served {
            disagreements.push(format!(
                "{}: registry says {own:?}, discovery says {served:?}",
                target.id
            ));
        }
        world.insert(target.id.clone(), own);
    }
    disagreements.extend(
        listed
            .keys()
            .map(|id| format!("{id}: served, never registered")),
    );
    if disagreements.is_empty() {
        Ok(world)
    } else {
        Err(format!("{disagreements:#?}"))
    }
}

/// The world once the registry and discovery agree and two reads in a row are the same
/// (a request the server was still finishing has finished).
async fn settled(base: &str, targets: &[Target], when: &str) -> World {
    let client = pooled_client();
    let what = format!("the registry and discovery to agree and hold still {when}");
    poll(&what, DEADLINE, || async {
        let first = read_world(&client, base, targets).await?;
        let second = read_world(&client, base, targets).await?;
        if first == second {
            Ok(first)
        } else {
            Err("the state was still changing".to_owned())
        }
    })
    .await
}

/// The states `acked` can turn into if ops cut off before it are applied after it. A
/// client that hung up cannot know when the server got its request: one it gave up on may
/// land after its next, acknowledged one (on another connection). Empty `cut_off`: only
/// `acked` itself.
fn reachable(acked: &State, cut_off: &[Op]) -> BTreeSet<State> {
    let mut states = BTreeSet::from([acked.clone()]);
    loop {
        let more: Vec<State> = states
            .iter()
            .flat_map(|state| cut_off.iter().map(move |op| op.apply(state)))
            .filter(|state| !states.contains(state))
            .collect();
        if more.is_empty() {
            return states;
        }
        states.extend(more);
    }
}

/// Ids whose last op was acknowledged are in the state it acknowledged (or, when earlier
/// ops of theirs were cut off, in one those could still lead to).
fn check_acknowledged(targets: &[Target], histories: &[Vec<(Op, Outcome)>], world: &World) {
    let (mut exact, mut loose, mut late) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (target, history) in targets.iter().zip(histories) {
        let Some(((last, Outcome::Acked(acked)), earlier)) = history.split_last() else {
            continue;
        };
        let cut_off: Vec<Op> = earlier
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::CutOff))
            .map(|(op, _)| *op)
            .collect();
        if cut_off.is_empty() {
            exact += 1;
        } else {
            loose += 1;
        }
        let now = &world[&target.id];
        if !reachable(acked, &cut_off).contains(now) {
            wrong.push(format!(
                "{}: {last:?} acknowledged {acked:?} (earlier cut off: {cut_off:?}), now {now:?}",
                target.id
            ));
        } else if now != acked {
            late += 1;
        }
    }
    println!(
        "acknowledged last ops: {exact} ids checked exactly, {loose} after earlier \
         hang-ups ({late} of those changed by a cut-off op applied late)"
    );
    assert!(
        wrong.is_empty(),
        "{} ids are not in the state their last acknowledged op left: {wrong:#?}",
        wrong.len()
    );
}

/// Fails naming every id that a restart brought back, lost, or changed, with the ops sent
/// for it (last ones last).
fn assert_kept(before: &World, after: &World, how: &str, histories: &[Vec<(Op, Outcome)>]) {
    let changed: Vec<String> = before
        .iter()
        .filter(|(id, was)| after[*id] != **was)
        .map(|(id, was)| {
            let now = &after[id];
            let what = match (was, now) {
                (None, Some(_)) => "came back",
                (Some(_), None) => "was lost",
                _ => "changed status",
            };
            let index: usize = id["hang-up-".len()..].parse().expect("a target id");
            let sent = &histories[index];
            let recent = &sent[sent.len().saturating_sub(4)..];
            format!("{id} {what}: {was:?} before, {now:?} after; its last ops: {recent:?}")
        })
        .collect();
    assert!(
        changed.is_empty(),
        "after {how}, {} of {} ids differ from before: {changed:#?}",
        changed.len(),
        before.len()
    );
}

/// Registers an instance with a 1 s TTL in a service of its own; after a restart it has
/// one TTL of grace, so seeing it expire proves a sweep ran on the restored registry.
async fn register_canary(base: &str, id: &str, address: &str) {
    let body = json!({"id": id, "service": "hang-up-canary", "address": address, "ttl_seconds": 1});
    let request = pooled_client().post(format!("{base}/api/v1/instances"));
    let (status, reply) = send(request.json(&body)).await.unwrap();
    assert_eq!(status, 201, "register the canary {id}: {reply}");
}

async fn wait_for_a_sweep(base: &str, canary: &str) {
    let client = pooled_client();
    poll("a sweep to expire the canary", DEADLINE, || async {
        let view = registry_view(&client, base, canary).await?;
        let status = view.as_ref().map(|view| str_of(view, "status"));
        match status.as_deref() {
            Some("offline") => Ok(()),
            _ => Err(format!("canary {status:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_cut_off_by_a_client_hang_up_happen_entirely_or_not_at_all() {
    // The real binary: each restart below is a process exiting (on SIGTERM, then on
    // SIGKILL) and a new one opening the same data dir, as in production. An in-process
    // server cannot be killed without its runtime running drop and shutdown code.
    let seed: u64 = rand::random();
    println!("hang-up seed: {seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start_with_env(dir.path(), FAST_SWEEPS).await;
    let targets = Arc::new(targets());

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mine = (c..IDS).step_by(CLIENTS).collect();
            let seed = seed.wrapping_add(c as u64);
            tokio::spawn(run_client(server.base.clone(), targets.clone(), mine, seed))
        })
        .collect();
    let mut histories: Vec<Vec<(Op, Outcome)>> = vec![Vec::new(); IDS];
    for client in clients {
        let log = client.await.unwrap().unwrap_or_else(|err| panic!("{err}"));
        for (index, op, outcome) in log {
            histories[index].push((op, outcome));
        }
    }
    let outcomes = histories.iter().flatten().map(|(_, outcome)| outcome);
    let cut_off = outcomes
        .filter(|outcome| matches!(outcome, Outcome::CutOff))
        .count();
    let sent = CLIENTS * OPERATIONS_PER_CLIENT;
    println!(
        "{sent} requests in {:?}: {} acknowledged, {cut_off} cut off by a hang-up",
        started.elapsed(),
        sent - cut_off
    );
    assert!(
        cut_off > 0,
        "no request was cut off; the test proved nothing"
    );

    let before = settled(&server.base, &targets, "after the hang-ups").await;
    check_acknowledged(&targets, &histories, &before);
    let present = before.values().filter(|state| state.is_some()).count();
    println!("{present} of {IDS} ids registered before the restarts");

    register_canary(&server.base, "canary-graceful", "10.41.0.1:80").await;
    server.stop().await;
    let mut server = BinaryServer::start_with_env(dir.path(), FAST_SWEEPS).await;
    wait_for_a_sweep(&server.base, "canary-graceful").await;
    let after = settled(&server.base, &targets, "after a graceful restart").await;
    assert_kept(&before, &after, "a graceful restart", &histories);

    register_canary(&server.base, "canary-killed", "10.41.0.2:80").await;
    server.kill_9();
    let server = BinaryServer::start_with_env(dir.path(), FAST_SWEEPS).await;
    wait_for_a_sweep(&server.base, "canary-killed").await;
    let after = settled(&server.base, &targets, "after kill -9 and a restart").await;
    assert_kept(&before, &after, "kill -9 and a restart", &histories);
}
