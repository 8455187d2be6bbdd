//! The counts by bucket of `percentile2` and `histogram` values (SkyWalking's `DataTable` of
//! integer keys).
//!
//! L2 holds hundreds of thousands of percentile rows at once (every active endpoint, relation
//! and database, at minute, hour and day), each with a few dozen buckets. Kept sorted in one
//! exactly sized allocation, a bucket takes 16 bytes; the B-tree this replaces took about twice
//! that in node slack and headers, and merging two sorted tables is one linear pass.

use serde::{Deserialize, Serialize};

/// Counts by bucket, sorted by bucket, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset(Vec<(i64, i64)>);

impl Dataset {
    /// An empty table.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds `count` to `bucket`.
    pub fn add(&mut self, bucket: i64, count: i64) {
        match self.0.binary_search_by_key(&bucket, |&(key, _)| key) {
            Ok(at) => self.0[at].1 += count,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, (bucket, count));
            }
        }
    }

    /// Adds every count of `other`. Buckets this table already has are added in place, so a
    /// row that has seen its latencies merges without allocating.
    pub fn merge(&mut self, other: &Dataset) {
        let mut new = Vec::new();
        for &(bucket, count) in &other.0 {
            match self.0.binary_search_by_key(&bucket, |&(key, _)| key) {
                Ok(at) => self.0[at].1 += count,
                Err(_) => new.push((bucket, count)),
            }
        }
        if !new.is_empty() {
            self.0.reserve_exact(new.len());
            self.0.extend(new);
            self.0.sort_unstable_by_key(|&(bucket, _)| bucket);
        }
    }

    /// The buckets and their counts, in bucket order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().copied()
    }

    /// The sum of the counts.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|&(_, count)| count).sum()
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(i64, i64)> for Dataset {
    /// Counts of the same bucket add up.
    fn from_iter<I: IntoIterator<Item = (i64, i64)>>(entries: I) -> Self {
        let mut entries: Vec<(i64, i64)> = entries.into_iter().collect();
        entries.sort_unstable_by_key(|&(bucket, _)| bucket);
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 += later.1;
            }
            same
        });
        entries.shrink_to_fit();
        Self(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_stay_sorted_and_counts_add_up() {
        let mut dataset = Dataset::new();
        for bucket in [30, 10, 20, 10, 40, 30, 10] {
            dataset.add(bucket, 1);
        }
        assert_eq!(dataset.iter().collect::<Vec<_>>(), [(10, 3), (20, 1), (30, 2), (40, 1)]);
        assert_eq!(dataset.total(), 7);
        assert_eq!(dataset.len(), 4);
        assert_eq!(dataset.0.capacity(), 4, "exactly sized");
    }

    #[test]
    fn merging_adds_every_bucket_once_whatever_the_overlap() {
        let base: Dataset = [(10, 1), (30, 2)].into_iter().collect();
        let mut same = base.clone();
        same.merge(&[(30, 5), (10, 1)].into_iter().collect());
        assert_eq!(same.iter().collect::<Vec<_>>(), [(10, 2), (30, 7)]);
        let mut mixed = base.clone();
        mixed.merge(&[(0, 4), (20, 1), (30, 1), (50, 9)].into_iter().collect());
        assert_eq!(mixed.iter().collect::<Vec<_>>(), [(0, 4), (10, 1), (20, 1), (30, 3), (50, 9)]);
        assert_eq!(mixed.0.capacity(), 5, "exactly sized");
        let mut empty = Dataset::new();
        empty.merge(&base);
        assert_eq!(empty, base);
    }

    #[test]
    fn collecting_sorts_and_adds_duplicate_buckets() {
        let dataset: Dataset = [(5, 1), (1, 2), (5, 3)].into_iter().collect();
        assert_eq!(dataset.iter().collect::<Vec<_>>(), [(1, 2), (5, 4)]);
    }
}
