//! Decrypted FHIR resource versions kept in memory, keyed by row id and version.
//!
//! A version never changes once it is committed (an update or a delete makes a new version;
//! row ids are never reused: no statement deletes a `fhir_resource` row), so an entry can
//! never be stale and the cache needs no invalidation: a read first learns which version is
//! current — from the row it reads anyway — and takes that version from here when it is
//! present. What is put in is committed: versions read back by the read connections, and the
//! versions a write stored once the writer has committed and synced them. A write rolled back
//! (an error, or a failed precondition in its call) puts nothing in — its row id may be handed
//! out again.
//!
//! It exists for SQLite: a read connection's page cache is emptied whenever a read
//! transaction begins after another connection committed, so under a steady stream of writes
//! every read fetches its pages from the operating system again — about ten for the current
//! version of one resource, half of them for the version row. With this cache a hit costs
//! the resource row's pages only, and no decryption.
//!
//! It also keeps the row id of each resource it has seen by type and id, which never changes
//! either once committed (a delete keeps the row; an update re-creating the resource reuses
//! it), so a read by id can look its row up by row id instead of through the `(type, id)`
//! index.
//!
//! The cache is bounded by bytes (`resource_cache_mb`; 0 turns it off) and split into shards,
//! each a least-recently-used list under its own lock.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use hashlink::LruCache;

use crate::resources::StoredResource;

/// Shards (a power of two): reads on different resources rarely wait for one lock.
const SHARDS: usize = 16;

/// What an entry costs beyond its strings and content: the key, the map's links, the
/// struct.
const ENTRY_OVERHEAD: usize = 160;

/// What a row id entry costs beyond its key: the value, the map's links.
const RID_OVERHEAD: usize = 64;

/// The share of a shard's bytes its row ids may take (an eighth).
const RID_SHARE: usize = 8;

/// Resource versions by `(rid, version)`, bounded by bytes.
pub(crate) struct ResourceCache {
    shards: Vec<Mutex<Shard>>,
    /// Bytes each shard may hold; 0: the cache is off.
    shard_budget: usize,
    /// Picks the shard of a row id entry.
    hasher: RandomState,
}

/// Entries are shared (`Arc`): a lookup clones the pointer under the lock and the resource
/// after it, so a large resource does not hold up the shard.
struct Shard {
    entries: LruCache<(i64, i64), Arc<StoredResource>>,
    bytes: usize,
    /// Row ids by `type/id` (the slash cannot occur in either).
    rids: LruCache<String, i64>,
    rid_bytes: usize,
}

impl ResourceCache {
    /// A cache of at most `budget` bytes in all (0: off).
    pub(crate) fn new(budget: usize) -> Self {
        let shard_budget = budget / SHARDS;
        if shard_budget == 0 {
            return Self::off();
        }
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget,
            hasher: RandomState::new(),
        }
    }

    /// A cache that keeps nothing.
    pub(crate) fn off() -> Self {
        Self {
            shards: Vec::new(),
            shard_budget: 0,
            hasher: RandomState::new(),
        }
    }

    /// Whether the cache keeps anything.
    pub(crate) fn is_on(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The shard of a version: row ids are consecutive, their low bits spread them evenly.
    fn shard(&self, rid: i64) -> Option<&Mutex<Shard>> {
        self.shard_of(rid.unsigned_abs())
    }

    /// The shard `n` falls in (none when the cache is off).
    fn shard_of(&self, n: u64) -> Option<&Mutex<Shard>> {
        let count = u64::try_from(self.shards.len()).ok().filter(|c| *c > 0)?;
        self.shards.get(usize::try_from(n % count).ok()?)
    }

    /// Version `version` of the resource with row id `rid`, if it is kept.
    pub(crate) fn get(&self, rid: i64, version: i64) -> Option<StoredResource> {
        let found = {
            let mut shard = self
                .shard(rid)?
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            shard.entries.get(&(rid, version)).cloned()
        };
        found.map(|r| StoredResource::clone(&r))
    }

    /// Keeps `resource`, version `version` of row id `rid`, dropping the least recently used
    /// entries of its shard beyond the budget. A resource larger than a shard's budget is not
    /// kept.
    pub(crate) fn put(&self, rid: i64, version: i64, resource: &StoredResource) {
        let Some(shard) = self.shard(rid) else {
            return;
        };
        let size = cost(resource);
        if size > self.shard_budget {
            return;
        }
        let entry = Arc::new(resource.clone());
        // what leaves the cache is freed after the lock is released
        let mut dropped = Vec::new();
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = shard.entries.insert((rid, version), entry) {
            shard.bytes -= cost(&old);
            dropped.push(old);
        }
        shard.bytes += size;
        while shard.bytes > self.shard_budget {
            let Some((_, old)) = shard.entries.remove_lru() else {
                break;
            };
            shard.bytes -= cost(&old);
            dropped.push(old);
        }
        drop(shard);
        drop(dropped);
        self.put_rid(&resource.resource_type, &resource.id, rid);
    }

    /// The row id of `rtype`/`id`, if it is kept.
    pub(crate) fn rid_of(&self, rtype: &str, id: &str) -> Option<i64> {
        let key = rid_key(rtype, id);
        let mut shard = self
            .rid_shard(&key)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.rids.get(&key).copied()
    }

    /// Keeps the row id of `rtype`/`id` (committed: it never changes).
    fn put_rid(&self, rtype: &str, id: &str, rid: i64) {
        let key = rid_key(rtype, id);
        let Some(shard) = self.rid_shard(&key) else {
            return;
        };
        let budget = self.shard_budget / RID_SHARE;
        let size = RID_OVERHEAD + key.len();
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.rids.contains_key(&key) {
            return;
        }
        shard.rids.insert(key, rid);
        shard.rid_bytes += size;
        while shard.rid_bytes > budget {
            let Some((old, _)) = shard.rids.remove_lru() else {
                break;
            };
            shard.rid_bytes -= RID_OVERHEAD + old.len();
        }
    }

    /// The shard of a row id entry, by its key's hash.
    fn rid_shard(&self, key: &str) -> Option<&Mutex<Shard>> {
        self.shard_of(self.hasher.hash_one(key))
    }

    /// Drops every entry (the store closes: decrypted resources do not outlive it).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let entries = {
                let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                std::mem::take(&mut *shard)
            };
            drop(entries);
        }
    }

    /// Bytes held in all (for tests and figures).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            entries: LruCache::new_unbounded(),
            bytes: 0,
            rids: LruCache::new_unbounded(),
            rid_bytes: 0,
        }
    }
}

fn rid_key(rtype: &str, id: &str) -> String {
    let mut key = String::with_capacity(rtype.len() + 1 + id.len());
    key.push_str(rtype);
    key.push('/');
    key.push_str(id);
    key
}

/// The bytes an entry is counted for.
fn cost(r: &StoredResource) -> usize {
    ENTRY_OVERHEAD + r.resource_type.len() + r.id.len() + r.content.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::HistoryMethod;
    use crate::time::Timestamp;

    fn resource(id: &str, version: u64, size: usize) -> StoredResource {
        StoredResource {
            resource_type: "Patient".into(),
            id: id.into(),
            version,
            last_updated: Timestamp::from_micros(1),
            deleted: false,
            content: vec![b'x'; size],
            method: HistoryMethod::Create,
        }
    }

    #[test]
    fn keeps_versions_apart_and_within_its_budget() {
        let cache = ResourceCache::new(SHARDS * 10_000);
        assert!(cache.is_on());
        cache.put(1, 1, &resource("a", 1, 100));
        cache.put(1, 2, &resource("a", 2, 200));
        assert_eq!(cache.get(1, 1).map(|r| r.content.len()), Some(100));
        assert_eq!(cache.get(1, 2).map(|r| r.content.len()), Some(200));
        assert!(cache.get(1, 3).is_none());
        assert!(cache.get(2, 1).is_none());
        // the same key again replaces the entry and its size
        cache.put(1, 2, &resource("a", 2, 300));
        assert_eq!(cache.get(1, 2).map(|r| r.content.len()), Some(300));
        assert_eq!(cache.bytes(), 2 * (ENTRY_OVERHEAD + 8) + 100 + 300);

        // one shard (row ids 16 apart) filled past its budget drops its least recently used
        for n in 0..200 {
            cache.put(16 * n, 1, &resource("b", 1, 1_000));
            cache.get(1, 1); // row id 1 is in another shard: untouched
        }
        assert!(cache.bytes() <= SHARDS * 10_000);
        assert!(cache.get(16 * 199, 1).is_some(), "the newest is kept");
        assert!(cache.get(0, 1).is_none(), "the oldest is dropped");
        assert!(cache.get(1, 1).is_some());
        // larger than a shard's budget: not kept
        cache.put(5, 1, &resource("c", 1, 20_000));
        assert!(cache.get(5, 1).is_none());
        cache.clear();
        assert_eq!(cache.bytes(), 0);
        assert!(cache.get(1, 1).is_none());
    }

    #[test]
    fn keeps_row_ids_by_type_and_id_within_their_share() {
        let cache = ResourceCache::new(SHARDS * 8_000);
        assert_eq!(cache.rid_of("Patient", "a"), None);
        cache.put(7, 1, &resource("a", 1, 10));
        assert_eq!(cache.rid_of("Patient", "a"), Some(7));
        assert_eq!(cache.rid_of("Observation", "a"), None);
        // an eighth of each shard for row ids, 1,000 bytes: far fewer than 10,000 stay
        for n in 0..10_000 {
            cache.put_rid("Patient", &format!("id{n}"), n);
        }
        let kept = (0..10_000)
            .filter(|n| cache.rid_of("Patient", &format!("id{n}")) == Some(*n))
            .count();
        assert!(kept > 0 && kept <= SHARDS * 1_000 / RID_OVERHEAD, "{kept}");
        assert_eq!(
            cache.rid_of("Patient", "id9999"),
            Some(9999),
            "the newest is kept"
        );
        cache.clear();
        assert_eq!(cache.rid_of("Patient", "id9999"), None);
        assert_eq!(ResourceCache::off().rid_of("Patient", "a"), None);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = ResourceCache::new(0);
        assert!(!cache.is_on());
        cache.put(1, 1, &resource("a", 1, 10));
        assert!(cache.get(1, 1).is_none());
    }
}
