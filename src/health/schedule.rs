//! When each check runs next. A binary heap of next-run times, so a tick looks only at
//! the checks that are due, never at every check. Each scheduled check has a slot
//! number; a heap entry names the slot it was pushed for, so entries of checks removed
//! or redefined since are skipped when they come up instead of being searched for.
//!
//! A new check first runs after a random stagger of at most min(interval, 1 s); later
//! runs follow the end of the previous one by the interval ±10%, so checks registered
//! together drift apart instead of running in lockstep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::registry::CheckedInstance;
use crate::store::{CheckDefinition, Probe};

/// A check of an instance: (instance id, check id).
pub type Key = (String, String);

/// A check the runner runs (HTTP or TCP; TTL checks are the registry's).
#[derive(Debug)]
pub struct Scheduled {
    pub definition: CheckDefinition,
    pub slot: u64,
    /// A run is in flight; the next is scheduled when it ends.
    pub running: bool,
    /// When the check's results turned critical (cleared by any other result).
    pub critical_since: Option<Instant>,
}

/// A run that is due: which check, for which slot, and what to run.
#[derive(Debug)]
pub struct Due {
    pub key: Key,
    pub slot: u64,
    pub definition: CheckDefinition,
}

#[derive(Default)]
pub struct Schedule {
    checks: HashMap<Key, Scheduled>,
    heap: BinaryHeap<Reverse<(Instant, u64, Key)>>,
    next_slot: u64,
}

/// The wait before a new check's first run: random, at most min(interval, 1 s).
pub fn stagger(interval: Duration, rng: &mut impl Rng) -> Duration {
    let most = interval.min(Duration::from_secs(1));
    most.mul_f64(rng.gen_range(0.0..=1.0))
}

/// The wait between the end of a run and the next: the interval ±10%.
pub fn jittered(interval: Duration, rng: &mut impl Rng) -> Duration {
    interval.mul_f64(rng.gen_range(0.9..=1.1))
}

fn interval_of(definition: &CheckDefinition) -> Duration {
    definition
        .interval
        .unwrap_or(crate::registry::checks::MIN_INTERVAL)
}

impl Schedule {
    /// Makes the schedule hold exactly the HTTP and TCP checks of `instances`: new or
    /// redefined checks are scheduled afresh (soon), unchanged ones keep their times and
    /// state, and the others are dropped. Returns how many checks are scheduled.
    pub fn reconcile(&mut self, instances: Vec<CheckedInstance>, now: Instant) -> usize {
        let mut wanted: HashMap<Key, CheckDefinition> = HashMap::new();
        for instance in instances {
            for definition in instance.checks {
                if !matches!(definition.probe, Probe::Ttl { .. }) {
                    wanted.insert((instance.id.clone(), definition.id.clone()), definition);
                }
            }
        }
        self.checks.retain(|key, _| wanted.contains_key(key));
        let mut rng = rand::thread_rng();
        for (key, definition) in wanted {
            if (self.checks.get(&key)).is_some_and(|old| old.definition == definition) {
                continue;
            }
            let at = now + stagger(interval_of(&definition), &mut rng);
            self.insert(key, definition, at);
        }
        self.checks.len()
    }

    fn insert(&mut self, key: Key, definition: CheckDefinition, at: Instant) {
        self.next_slot += 1;
        let slot = self.next_slot;
        self.heap.push(Reverse((at, slot, key.clone())));
        let scheduled = Scheduled {
            definition,
            slot,
            running: false,
            critical_since: None,
        };
        self.checks.insert(key, scheduled);
    }

    /// When the earliest entry comes up (possibly a stale one: waking for it is cheap).
    pub fn next_wake(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the runs due at `now`, marking their checks running.
    pub fn take_due(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        while let Some(Reverse((at, slot, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let slot = *slot;
            let Some(Reverse((_, _, key))) = self.heap.pop() else {
                break;
            };
            let Some(scheduled) = self.checks.get_mut(&key) else {
                continue;
            };
            if scheduled.slot != slot || scheduled.running {
                continue;
            }
            scheduled.running = true;
            let definition = scheduled.definition.clone();
            due.push(Due {
                key,
                slot,
                definition,
            });
        }
        due
    }

    /// Ends a run of `key` in `slot` at `now` and schedules the next one; `None` when
    /// the check was removed or redefined while it ran.
    pub fn finish(&mut self, key: &Key, slot: u64, now: Instant) -> Option<&mut Scheduled> {
        let scheduled = self.checks.get_mut(key)?;
        if scheduled.slot != slot {
            return None;
        }
        scheduled.running = false;
        let at = now + jittered(interval_of(&scheduled.definition), &mut rand::thread_rng());
        self.heap.push(Reverse((at, slot, key.clone())));
        Some(scheduled)
    }

    /// Drops check `key` if it is still in `slot`.
    pub fn remove(&mut self, key: &Key, slot: u64) {
        if self.checks.get(key).is_some_and(|s| s.slot == slot) {
            self.checks.remove(key);
        }
    }

    /// Drops every check of instance `id`.
    pub fn remove_instance(&mut self, id: &str) {
        self.checks.retain(|(instance, _), _| instance != id);
    }

    pub fn get(&self, key: &Key) -> Option<&Scheduled> {
        self.checks.get(key)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn check(id: &str, interval: u64) -> CheckDefinition {
        CheckDefinition {
            id: id.to_owned(),
            name: id.to_owned(),
            probe: Probe::Tcp {
                address: "127.0.0.1:1".to_owned(),
            },
            interval: Some(Duration::from_secs(interval)),
            timeout: None,
            deregister_critical_after: None,
            notes: String::new(),
        }
    }

    fn instance(id: &str, checks: Vec<CheckDefinition>) -> CheckedInstance {
        CheckedInstance {
            id: id.to_owned(),
            checks,
        }
    }

    #[test]
    fn stagger_and_jitter_stay_in_their_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let first = stagger(Duration::from_secs(10), &mut rng);
            assert!(first <= Duration::from_secs(1), "{first:?}");
            let short = stagger(Duration::from_millis(300), &mut rng);
            assert!(short <= Duration::from_millis(300), "{short:?}");
            let next = jittered(Duration::from_secs(10), &mut rng);
            assert!(
                (Duration::from_secs(9)..=Duration::from_secs(11)).contains(&next),
                "{next:?}"
            );
        }
        // Spread, not a constant.
        let a = jittered(Duration::from_secs(10), &mut rng);
        let spread = (0..20).any(|_| jittered(Duration::from_secs(10), &mut rng) != a);
        assert!(spread);
    }

    #[test]
    fn only_due_checks_come_up_once_each_and_ttl_checks_never() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        let ttl = CheckDefinition {
            probe: Probe::Ttl {
                ttl: Duration::from_secs(5),
            },
            interval: None,
            ..check("ttl", 1)
        };
        let scheduled = schedule.reconcile(
            vec![
                instance("a", vec![check("a1", 10), ttl]),
                instance("b", vec![check("b1", 10)]),
            ],
            start,
        );
        assert_eq!(scheduled, 2);
        assert!(schedule
            .take_due(start - Duration::from_millis(1))
            .is_empty());
        let due = schedule.take_due(start + Duration::from_secs(1));
        let mut keys: Vec<_> = due.iter().map(|d| d.key.1.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["a1", "b1"]);
        // Running: not due again until it finishes.
        assert!(schedule
            .take_due(start + Duration::from_secs(100))
            .is_empty());
        let done = start + Duration::from_secs(2);
        let first = &due[0];
        assert!(schedule.finish(&first.key, first.slot, done).is_some());
        assert!(schedule.take_due(done + Duration::from_secs(8)).is_empty());
        let again = schedule.take_due(done + Duration::from_secs(11));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].key, first.key);
    }

    #[test]
    fn reconcile_keeps_unchanged_checks_and_reschedules_redefined_ones() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.reconcile(vec![instance("a", vec![check("a1", 10)])], start);
        let due = schedule.take_due(start + Duration::from_secs(1));
        let key = due[0].key.clone();
        let slot = due[0].slot;
        schedule.reconcile(vec![instance("a", vec![check("a1", 10)])], start);
        assert_eq!(
            schedule.get(&key).unwrap().slot,
            slot,
            "unchanged: same slot"
        );
        assert!(schedule.get(&key).unwrap().running);

        schedule.reconcile(vec![instance("a", vec![check("a1", 20)])], start);
        let redefined = schedule.get(&key).unwrap().slot;
        assert_ne!(redefined, slot);
        // The old run's end schedules nothing; the new definition runs soon.
        assert!(schedule.finish(&key, slot, start).is_none());
        let due = schedule.take_due(start + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].slot, redefined);

        schedule.reconcile(vec![], start);
        assert!(schedule.checks.is_empty());
        assert!(schedule
            .take_due(start + Duration::from_secs(100))
            .is_empty());
    }

    #[test]
    fn removal_needs_the_current_slot() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.reconcile(
            vec![instance("a", vec![check("a1", 1), check("a2", 1)])],
            start,
        );
        let key = ("a".to_owned(), "a1".to_owned());
        let slot = schedule.get(&key).unwrap().slot;
        schedule.remove(&key, slot + 100);
        assert_eq!(schedule.checks.len(), 2);
        schedule.remove(&key, slot);
        assert_eq!(schedule.checks.len(), 1);
        schedule.remove_instance("a");
        assert!(schedule.checks.is_empty());
    }
}
