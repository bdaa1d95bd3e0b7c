//! Write counters for [`crate::Store::stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::StoreStats;

/// Write counters, updated after each commit.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    items: AtomicU64,
    messages: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, commits: u64, items: u64, messages: u64) {
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        self.messages.fetch_add(messages, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
        }
    }
}
