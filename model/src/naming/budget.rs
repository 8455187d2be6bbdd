//! A bound on the distinct names a service may have (its ungrouped endpoint names, its
//! instances), so that no agent — careless or hostile — can make the server hold an unbounded
//! number of entities, each with its metrics in L1, L2 and the stores.
//!
//! A service admits names until it holds `limit` of them; a name past that is refused, and the
//! caller replaces it with [`ABANDONED`] (SkyWalking's `maxHttpUrisNumberPerService` rule).
//! Unlike SkyWalking, names once admitted stay admitted while they are in use, and names idle
//! for two generations (ten minutes each) are forgotten, which frees their places: the set of a
//! generation is kept while the next one fills, a name seen in the old set moves to the new
//! one, and the old set is dropped at the next turn. Memory: at most `limit` names per service.
//!
//! On the hot path a name is looked up by one 64-bit hash in a set of the calling thread's own
//! (the names it saw admitted in this generation), with no lock and no string compared; only a
//! name new to the thread takes the shared, locked path. (Two names whose hashes collide, one in
//! 2^64, would let the second pass unbudgeted: a name more, never a name lost.)

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use hashbrown::{DefaultHashBuilder, HashSet};

/// What a name past its service's budget becomes.
pub const ABANDONED: &str = "_abandoned";

/// The most hashes a thread remembers before it starts over.
const MEMO_LIMIT: usize = 1 << 16;

/// Gives every budget its own id, so that a thread's memo tells them apart.
static BUDGET_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Hashes of (budget, generation, service, name) this thread saw admitted.
    static ADMITTED: RefCell<(DefaultHashBuilder, HashSet<u64>)> = RefCell::default();
}

/// How long a generation of names lasts.
pub const GENERATION_MS: i64 = 10 * 60_000;

/// The names of one service.
#[derive(Debug, Default)]
struct Names {
    generation: u64,
    current: HashSet<Box<str>>,
    previous: HashSet<Box<str>>,
    overflowed: bool,
}

/// What became of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The name is (now) one of the service's.
    Admitted,
    /// The service is full; the name is refused.
    Refused {
        /// Whether this is the service's first refusal (to be logged once).
        first: bool,
    },
}

/// Per-service name budgets.
#[derive(Debug)]
pub struct NameBudget {
    id: u64,
    limit: usize,
    /// What it holds, as its log line says: "service has more {what}".
    what: &'static str,
    generation: AtomicU64,
    refused: AtomicU64,
    services: DashMap<Box<str>, Names, DefaultHashBuilder>,
}

impl NameBudget {
    /// At most `limit` names per service; `what` completes the line logged when a service first
    /// has too many ("service has more {what}").
    pub fn new(limit: usize, what: &'static str) -> Self {
        Self {
            id: BUDGET_IDS.fetch_add(1, Ordering::Relaxed),
            limit,
            what,
            generation: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            services: DashMap::default(),
        }
    }

    /// `name` if `service`'s budget admits it, else [`ABANDONED`] (logged the first time).
    pub fn name<'a>(&self, service: &str, name: &'a str) -> &'a str {
        match self.admit(service, name) {
            Admission::Admitted => name,
            Admission::Refused { first } => {
                if first {
                    tracing::warn!(
                        service,
                        limit = self.limit,
                        "service has more {}; further ones are recorded as `{ABANDONED}`",
                        self.what
                    );
                }
                ABANDONED
            }
        }
    }

    /// The limit per service.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Names refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Moves the budgets to the generation of `now_ms`.
    pub fn turn(&self, now_ms: i64) {
        let generation = u64::try_from(now_ms / GENERATION_MS).unwrap_or(0);
        self.generation.fetch_max(generation, Ordering::Relaxed);
    }

    /// Admits `name` into `service`'s budget, or refuses it.
    pub fn admit(&self, service: &str, name: &str) -> Admission {
        let generation = self.generation.load(Ordering::Relaxed);
        ADMITTED.with_borrow_mut(|(hasher, seen)| {
            let key = hasher.hash_one((self.id, generation, service, name));
            if seen.contains(&key) {
                return Admission::Admitted;
            }
            let admission = self.admit_shared(generation, service, name);
            if admission == Admission::Admitted {
                if seen.len() >= MEMO_LIMIT {
                    seen.clear();
                }
                seen.insert(key);
            }
            admission
        })
    }

    /// [`NameBudget::admit`] through the shared, locked table.
    fn admit_shared(&self, generation: u64, service: &str, name: &str) -> Admission {
        let mut names = match self.services.get_mut(service) {
            Some(names) => names,
            None => self.services.entry(service.into()).or_default(),
        };
        if names.generation != generation {
            let previous =
                if names.generation + 1 == generation { std::mem::take(&mut names.current) } else { HashSet::new() };
            names.previous = previous;
            names.current.clear();
            names.generation = generation;
        }
        if names.current.contains(name) {
            return Admission::Admitted;
        }
        if let Some(known) = names.previous.take(name) {
            names.current.insert(known);
            return Admission::Admitted;
        }
        if names.current.len() + names.previous.len() < self.limit {
            names.current.insert(name.into());
            return Admission::Admitted;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let first = !std::mem::replace(&mut names.overflowed, true);
        Admission::Refused { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_holds_at_most_its_limit_and_keeps_the_names_it_uses() {
        let budget = NameBudget::new(3, "names");
        for name in ["a", "b", "c", "a", "b"] {
            assert_eq!(budget.admit("s", name), Admission::Admitted);
        }
        assert_eq!(budget.admit("s", "d"), Admission::Refused { first: true });
        assert_eq!(budget.admit("s", "e"), Admission::Refused { first: false });
        assert_eq!(budget.admit("s", "c"), Admission::Admitted, "an admitted name stays");
        assert_eq!(budget.admit("other", "d"), Admission::Admitted, "budgets are per service");
        assert_eq!(budget.refused(), 2);
    }

    #[test]
    fn names_idle_for_two_generations_free_their_places() {
        let budget = NameBudget::new(2, "names");
        budget.admit("s", "a");
        budget.admit("s", "b");
        budget.turn(GENERATION_MS);
        assert_eq!(budget.admit("s", "a"), Admission::Admitted, "a moves on to the new generation");
        assert!(matches!(budget.admit("s", "c"), Admission::Refused { .. }), "b still holds its place");
        budget.turn(2 * GENERATION_MS);
        assert_eq!(budget.admit("s", "c"), Admission::Admitted, "b was idle for a whole generation");
        assert_eq!(budget.admit("s", "a"), Admission::Admitted);
        assert!(matches!(budget.admit("s", "b"), Admission::Refused { .. }));
        budget.turn(10 * GENERATION_MS);
        assert_eq!(budget.admit("s", "b"), Admission::Admitted, "after a long gap everything is forgotten");
    }
}
