//! Order: one client's register, deregister, re-register and endpoint takeover of the same
//! id, each read back the moment it is acknowledged, while other clients register and
//! deregister other ids in the same service. Every acknowledged step is what the registry
//! and discovery serve next, and the other clients' last steps hold at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Client;

use super::{
    deregister, discovery_view, pooled_client, register, registry_view, set_status, str_of,
    REGISTER_STATUSES, STATUSES,
};
use crate::support::{test_config, TestServer};

const SERVICE: &str = "ordered";
const ROUNDS: usize = 20;
const HAMMERS: usize = 6;
/// Ids each hammering client cycles through.
const HAMMER_IDS: usize = 5;

/// Fails unless `id` is served by the registry and discovery exactly as `want` says:
/// `Some((status, address))`, or `None` for absent.
async fn expect(client: &Client, base: &str, id: &str, want: Option<(&str, &str)>, step: &str) {
    let own = registry_view(client, base, id).await.unwrap();
    let served = discovery_view(client, base, SERVICE).await.unwrap();
    let served = served.get(id);
    let seen = |view: Option<&serde_json::Value>| {
        view.map(|view| (str_of(view, "status"), str_of(view, "address")))
    };
    let want = want.map(|(status, address)| (status.to_owned(), address.to_owned()));
    assert_eq!(seen(own.as_ref()), want, "registry, {step}");
    assert_eq!(seen(served), want, "discovery, {step}");
}

/// The ids discovery serves at `address`.
async fn ids_at(client: &Client, base: &str, address: &str) -> Vec<String> {
    let served = discovery_view(client, base, SERVICE).await.unwrap();
    served
        .into_iter()
        .filter(|(_, view)| view["address"] == address)
        .map(|(id, _)| id)
        .collect()
}

/// Id and endpoint of a hammering client's `k`th id.
fn noise(me: usize, k: usize) -> (String, String) {
    (format!("noise-{me}-{k}"), format!("10.61.{me}.{k}:7000"))
}

/// Registers, changes and deregisters its own ids until `stop`, checking each reply
/// against what its previous steps left. Returns each id's last acknowledged status
/// (`None`: absent) and how many steps it took.
async fn hammer(
    base: String,
    me: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<(Vec<Option<String>>, usize), String> {
    let client = pooled_client();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut states: Vec<Option<String>> = vec![None; HAMMER_IDS];
    let mut steps = 0;
    while steps == 0 || !stop.load(Ordering::SeqCst) {
        steps += 1;
        let k = rng.gen_range(0..HAMMER_IDS);
        let (id, address) = noise(me, k);
        let was = states[k].clone();
        // The reply expected from what this client's own earlier steps left.
        let ((status, reply), want_code, now) = match rng.gen_range(0..3) {
            0 => {
                let status = REGISTER_STATUSES[rng.gen_range(0..REGISTER_STATUSES.len())];
                let reply = register(&client, &base, &id, SERVICE, &address, status).await?;
                let code = if was.is_some() { 200 } else { 201 };
                (reply, code, Some(status.to_owned()))
            }
            1 => {
                let code = if was.is_some() { 200 } else { 404 };
                (deregister(&client, &base, &id).await?, code, None)
            }
            _ => {
                let status = STATUSES[rng.gen_range(0..STATUSES.len())];
                let code = if was.is_some() { 200 } else { 404 };
                let now = was.as_ref().map(|_| status.to_owned());
                (set_status(&client, &base, &id, status).await?, code, now)
            }
        };
        let replied = (status == 200 || status == 201).then(|| str_of(&reply, "status"));
        if status != want_code || (now.is_some() && replied != now) {
            return Err(format!(
                "{id}, left {was:?}: expected {want_code} leaving {now:?}, got {status} {reply}"
            ));
        }
        states[k] = now;
    }
    Ok((states, steps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_and_deregistrations_of_one_id_keep_their_order() {
    let seed: u64 = rand::random();
    println!("order seed: {seed}");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let base = server.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let hammers: Vec<_> = (0..HAMMERS)
        .map(|me| {
            let seed = seed.wrapping_add(me as u64);
            tokio::spawn(hammer(base.clone(), me, seed, stop.clone()))
        })
        .collect();

    let started = Instant::now();
    let client = pooled_client();
    for round in 0..ROUNDS {
        let address = format!("10.60.0.{}:7000", round + 1);
        let address = address.as_str();
        let (solo, heir) = (format!("solo-{round}"), format!("heir-{round}"));
        let status = REGISTER_STATUSES[round % REGISTER_STATUSES.len()];
        let step = |what: &str| format!("round {round}: {what}");

        let (code, reply) = register(&client, &base, &solo, SERVICE, address, status)
            .await
            .unwrap();
        assert_eq!(code, 201, "{}: {reply}", step("register"));
        expect(
            &client,
            &base,
            &solo,
            Some((status, address)),
            &step("registered"),
        )
        .await;

        let (code, reply) = deregister(&client, &base, &solo).await.unwrap();
        assert_eq!(code, 200, "{}: {reply}", step("deregister"));
        expect(&client, &base, &solo, None, &step("deregistered")).await;

        let (code, reply) = register(&client, &base, &solo, SERVICE, address, "maintenance")
            .await
            .unwrap();
        assert_eq!(code, 201, "{}: {reply}", step("register again"));
        let again = Some(("maintenance", address));
        expect(&client, &base, &solo, again, &step("registered again")).await;

        // A new id at the endpoint takes it over: the old id is gone at once.
        let (code, reply) = register(&client, &base, &heir, SERVICE, address, status)
            .await
            .unwrap();
        assert_eq!(code, 201, "{}: {reply}", step("take over"));
        expect(
            &client,
            &base,
            &heir,
            Some((status, address)),
            &step("taken over"),
        )
        .await;
        expect(&client, &base, &solo, None, &step("taken over")).await;
        assert_eq!(ids_at(&client, &base, address).await, vec![heir.as_str()]);
        let (code, reply) = deregister(&client, &base, &solo).await.unwrap();
        assert_eq!(code, 404, "{}: {reply}", step("deregister the replaced id"));
        assert_eq!(reply["code"], "instance_not_found");

        let (code, reply) = deregister(&client, &base, &heir).await.unwrap();
        assert_eq!(code, 200, "{}: {reply}", step("deregister the heir"));
        expect(&client, &base, &heir, None, &step("heir deregistered")).await;
        assert_eq!(ids_at(&client, &base, address).await, Vec::<String>::new());
    }
    let rounds_took = started.elapsed();

    stop.store(true, Ordering::SeqCst);
    let mut hammered = 0;
    for (me, hammer) in hammers.into_iter().enumerate() {
        let (states, steps) = hammer.await.unwrap().unwrap_or_else(|err| panic!("{err}"));
        hammered += steps;
        for (k, state) in states.iter().enumerate() {
            let (id, address) = noise(me, k);
            let want = state.as_deref().map(|status| (status, address.as_str()));
            expect(&client, &base, &id, want, "after the hammering").await;
        }
    }
    println!("{ROUNDS} rounds in {rounds_took:?}, beside {hammered} writes to other ids");
}
