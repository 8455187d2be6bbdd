//! State split into one shard per producing thread, so analysing threads on different cores
//! never contend: each works in its own shard (a mutex that only a collector, a few times a
//! minute at most, also takes), and a collector visits them all. L1 and the top-N buffers are
//! built on it. The per-thread slots are `thread_local::ThreadLocal`'s.

use std::sync::{Mutex, MutexGuard};

use thread_local::ThreadLocal;

/// A `T` per thread that works in it. A thread that exits leaves its shard, with what it holds, to
/// the next thread that starts; nothing in it is lost.
pub struct Sharded<T: Send> {
    shards: ThreadLocal<Mutex<T>>,
}

impl<T: Default + Send> Default for Sharded<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default + Send> Sharded<T> {
    /// No shards yet; a thread gets its own the first time it works.
    pub fn new() -> Self {
        Self { shards: ThreadLocal::new() }
    }

    /// Runs `work` on this thread's shard.
    pub fn with<R>(&self, work: impl FnOnce(&mut T) -> R) -> R {
        work(&mut lock(self.shards.get_or_default()))
    }

    /// Visits every thread's shard in turn.
    pub fn each(&self, mut visit: impl FnMut(&mut T)) {
        for shard in &self.shards {
            visit(&mut lock(shard));
        }
    }
}

/// A poisoned shard only means a producer panicked mid-update of plain data; it is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn each_thread_works_in_its_own_shard_and_each_visits_them_all() {
        let counts = Arc::new(Sharded::<Vec<usize>>::new());
        // All three alive at once: a thread that has exited may hand its shard to a new one.
        let together = Arc::new(std::sync::Barrier::new(3));
        let threads: Vec<_> = (0..3)
            .map(|thread| {
                let (counts, together) = (counts.clone(), together.clone());
                std::thread::spawn(move || {
                    for _ in 0..=thread {
                        counts.with(|shard| shard.push(thread));
                    }
                    together.wait();
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
