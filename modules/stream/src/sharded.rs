//! State split into one shard per producing thread, so analysing threads on different cores
//! never contend: each works in its own shard (a mutex that only a collector, a few times a
//! minute at most, also takes), and a collector visits them all. L1 and the top-N buffers are
//! built on it.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

static NEXT_NUMBER: AtomicU64 = AtomicU64::new(1);

/// A shard as a thread holds it, its type erased so one list serves every kind of state.
type AnyShard = Arc<dyn Any + Send + Sync>;

thread_local! {
    /// This thread's shard of every live [`Sharded`], by its number.
    static SHARDS: RefCell<Vec<(u64, AnyShard)>> = const { RefCell::new(Vec::new()) };
}

/// A `T` per thread that works in it.
pub struct Sharded<T> {
    number: u64,
    shards: Mutex<Vec<Arc<Mutex<T>>>>,
}

impl<T: Default + Send + 'static> Default for Sharded<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default + Send + 'static> Sharded<T> {
    /// No shards yet; a thread gets its own the first time it works.
    pub fn new() -> Self {
        Self { number: NEXT_NUMBER.fetch_add(1, Ordering::Relaxed), shards: Mutex::new(Vec::new()) }
    }

    /// Runs `work` on this thread's shard. `work` must not enter another `Sharded`.
    pub fn with<R>(&self, work: impl FnOnce(&mut T) -> R) -> R {
        SHARDS.with_borrow_mut(|shards| {
            let at = match shards.iter().position(|(number, _)| *number == self.number) {
                Some(at) => at,
                None => {
                    // Shards of `Sharded`s that are gone are held only here: let them go.
                    shards.retain(|(_, shard)| Arc::strong_count(shard) > 1);
                    let shard = Arc::new(Mutex::new(T::default()));
                    lock(&self.shards).push(shard.clone());
                    shards.push((self.number, shard));
                    shards.len() - 1
                }
            };
            let shard: &dyn Any = &*shards[at].1;
            match shard.downcast_ref::<Mutex<T>>() {
                Some(shard) => work(&mut lock(shard)),
                None => unreachable!("a shard is stored under the number of the Sharded that made it"),
            }
        })
    }

    /// Visits every thread's shard in turn.
    pub fn each(&self, mut visit: impl FnMut(&mut T)) {
        let shards: Vec<Arc<Mutex<T>>> = lock(&self.shards).clone();
        for shard in shards {
            visit(&mut lock(&shard));
        }
    }
}

/// A poisoned shard only means a producer panicked mid-update of plain data; it is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_works_in_its_own_shard_and_each_visits_them_all() {
        let counts = Arc::new(Sharded::<Vec<usize>>::new());
        let threads: Vec<_> = (0..3)
            .map(|thread| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    for _ in 0..=thread {
                        counts.with(|shard| shard.push(thread));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let mut shards = Vec::new();
        counts.each(|shard| shards.push(std::mem::take(shard)));
        shards.sort();
        assert_eq!(shards, [vec![0], vec![1, 1], vec![2, 2, 2]]);
    }

    #[test]
    fn two_sharded_values_on_one_thread_keep_apart() {
        let numbers = Sharded::<Vec<u32>>::new();
        let words = Sharded::<Vec<&'static str>>::new();
        numbers.with(|shard| shard.push(1));
        words.with(|shard| shard.push("one"));
        numbers.with(|shard| shard.push(2));
        let (mut seen_numbers, mut seen_words) = (Vec::new(), Vec::new());
        numbers.each(|shard| seen_numbers.extend(shard.iter().copied()));
        words.each(|shard| seen_words.extend(shard.iter().copied()));
        assert_eq!((seen_numbers, seen_words), (vec![1, 2], vec!["one"]));
    }
}
