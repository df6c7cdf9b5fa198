//! The frequent-items summary: SpaceSaving (Metwally, Agrawal, El Abbadi 2005) with the
//! mergeable bounds of Agarwal et al. 2012 ("Mergeable summaries") in the form of Parallel
//! Space Saving (Cafaro, Pulimeno, Tempesta 2016). Pure Rust, no PostgreSQL.
//!
//! # State
//!
//! At most `capacity` items, each a key (its canonical bytes, whole, and a one-byte type tag,
//! see `common::value_hash::KeyKind`) with a `count` and a `lower`; a `floor`; the total
//! weight `N` added. For every key `x` with true count `f(x)`, after every operation:
//!
//! - `x` held: `lower ≤ f(x) ≤ count`, with `1 ≤ lower ≤ count`; and `count ≥ floor`;
//! - `x` not held: `0 ≤ f(x) ≤ floor`.
//!
//! `floor` is 0 until the summary has had to drop a key: until then it is exact.
//!
//! # Add key `x` with weight `w > 0`
//!
//! - `x` held: `count += w`, `lower += w`.
//! - room left: `x` comes in with `count = floor + w`, `lower = w`.
//! - full: the lowest-ranked item `y` leaves, `floor ← count(y)`, and `x` comes in with
//!   `count = count(y) + w`, `lower = w` (SpaceSaving: its earlier count was at most the floor).
//!
//! Rank: higher `count` first, then higher `lower`, then tag and key bytes ascending. It is a
//! total order, so which item leaves never depends on hash-map order or memory.
//!
//! # Merge of A and B
//!
//! For every key in either: `count = count_A + count_B`, `lower = lower_A + lower_B`, where a
//! side that does not hold the key gives `count = floor` and `lower = 0`. The `capacity` (the
//! larger of the two) best-ranked stay; `floor = max(floor_A + floor_B, largest count dropped)`.
//!
//! # What depends on order
//!
//! A summary that never dropped a key (at most `capacity` distinct keys) is exact, and then
//! equal for every input order and every way of splitting and merging. Once keys are dropped,
//! which keys stay and their bounds depend on the order of the rows and on how partial
//! summaries were merged (SpaceSaving is order-sensitive; merge is commutative but not
//! associative once it drops keys), while the bounds above hold in every order.

pub mod codec;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use crate::common::arena::{Arena, ArenaVec, CloneIn};
use crate::common::error::{Error, ErrorKind, Result};
use std::cmp::Ordering;

/// Smallest, default and largest capacity.
pub const MIN_CAPACITY: u32 = 1;
pub const DEFAULT_CAPACITY: u32 = 1024;
pub const MAX_CAPACITY: u32 = 1 << 20;
/// Longest key kept (keys are never truncated).
pub const MAX_KEY_BYTES: usize = 16_384;
/// Counts and totals stay within int8, the SQL type that shows them.
pub const MAX_TOTAL: u64 = i64::MAX as u64;

/// One held item.
#[derive(Debug)]
struct Entry {
    key: ArenaVec<u8>,
    tag: u8,
    count: u64,
    lower: u64,
    /// Where the entry sits in the heap.
    pos: u32,
    /// The in-memory index hash (ahash, random per summary; never stored).
    hash: u64,
}

/// What a caller sees of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub key: &'a [u8],
    pub tag: u8,
    /// The upper bound: never below the truth.
    pub count: u64,
    /// Never above the truth.
    pub lower: u64,
}

impl Item<'_> {
    /// The estimate of a held item: the middle of its bounds (rounded down), off by at most
    /// half their width either way. SpaceSaving's count (the upper bound) overestimates by
    /// what the key inherited when it came in; on the Zipf benches the middle is off by a third
    /// as much on average and at most (tests/bench/cms_vs_datasketches.sh).
    pub fn estimate(&self) -> u64 {
        middle(self.lower, self.count)
    }
}

fn middle(lower: u64, upper: u64) -> u64 {
    lower + (upper - lower) / 2
}

/// Bounds on one key's count: `lower ≤ truth ≤ upper`. The estimate is the middle of the
/// bounds for a held key, and 0 for a key not held (most keys not held are rare ones; the
/// upper bound, the floor, says how frequent one could be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub estimate: u64,
    pub lower: u64,
    pub upper: u64,
}

pub struct TopK {
    capacity: u32,
    total: u64,
    floor: u64,
    entries: ArenaVec<Entry>,
    /// Entry indexes, a min-heap by rank: the root is the lowest-ranked entry.
    heap: ArenaVec<u32>,
    index: hashbrown::HashTable<u32, Arena>,
    hasher: ahash::RandomState,
    arena: Arena,
}

impl std::fmt::Debug for TopK {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopK")
            .field("capacity", &self.capacity)
            .field("total", &self.total)
            .field("floor", &self.floor)
            .field("items", &self.items())
            .finish()
    }
}

impl PartialEq for TopK {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity
            && self.total == other.total
            && self.floor == other.floor
            && self.items() == other.items()
    }
}

/// `a` ranks below `b`: lower count, then lower `lower`, then larger tag and key.
fn ranks_below(a: &Entry, b: &Entry) -> bool {
    rank_order(
        a.count, a.lower, a.tag, &a.key, b.count, b.lower, b.tag, &b.key,
    ) == Ordering::Greater
}

/// The rank order: `Less` when the first ranks higher (comes first in a listing).
#[allow(clippy::too_many_arguments)]
fn rank_order(
    count_a: u64,
    lower_a: u64,
    tag_a: u8,
    key_a: &[u8],
    count_b: u64,
    lower_b: u64,
    tag_b: u8,
    key_b: &[u8],
) -> Ordering {
    count_b
        .cmp(&count_a)
        .then(lower_b.cmp(&lower_a))
        .then(tag_a.cmp(&tag_b))
        .then_with(|| key_a.cmp(key_b))
}

pub fn capacity_error(capacity: i64) -> Error {
    Error::new(
        ErrorKind::InvalidParameter,
        format!("topk capacity must be between {MIN_CAPACITY} and {MAX_CAPACITY} (got {capacity})"),
    )
}

fn key_error(len: usize) -> Error {
    Error::new(
        ErrorKind::LimitExceeded,
        format!("topk keys are at most {MAX_KEY_BYTES} bytes (got {len})"),
    )
}

fn overflow() -> Error {
    Error::new(
        ErrorKind::Overflow,
        "topk total weight out of range for type bigint",
    )
}

impl Default for TopK {
    fn default() -> Self {
        TopK::empty_in(DEFAULT_CAPACITY, Arena::HEAP)
    }
}

impl CloneIn for TopK {
    fn clone_in(&self, arena: Arena) -> Self {
        let mut out = TopK::empty_in(self.capacity, arena);
        out.total = self.total;
        out.floor = self.floor;
        for e in self.entries.iter() {
            out.push_entry(&e.key, e.tag, e.count, e.lower);
        }
        out
    }
}

impl TopK {
    /// An empty summary of `capacity` items (validated).
    pub fn new_in(capacity: i64, arena: Arena) -> Result<TopK> {
        if capacity < i64::from(MIN_CAPACITY) || capacity > i64::from(MAX_CAPACITY) {
            return Err(capacity_error(capacity));
        }
        Ok(TopK::empty_in(capacity as u32, arena))
    }

    pub fn new(capacity: i64) -> Result<TopK> {
        TopK::new_in(capacity, Arena::HEAP)
    }

    fn empty_in(capacity: u32, arena: Arena) -> TopK {
        TopK {
            capacity,
            total: 0,
            floor: 0,
            entries: arena.vec(),
            heap: arena.vec(),
            index: hashbrown::HashTable::new_in(arena),
            hasher: ahash::RandomState::new(),
            arena,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    pub fn floor(&self) -> u64 {
        self.floor
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key_hash(&self, key: &[u8], tag: u8) -> u64 {
        self.hasher.hash_one((tag, key))
    }

    fn find(&self, key: &[u8], tag: u8, hash: u64) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&i| {
                let e = &entries[i as usize];
                e.tag == tag && e.key[..] == *key
            })
            .map(|&i| i as usize)
    }

    /// Appends an entry (room is known to be left, the key not held).
    fn push_entry(&mut self, key: &[u8], tag: u8, count: u64, lower: u64) {
        let hash = self.key_hash(key, tag);
        let slot = self.entries.len() as u32;
        self.entries.push(Entry {
            key: self.arena.vec_from(key),
            tag,
            count,
            lower,
            pos: self.heap.len() as u32,
            hash,
        });
        self.heap.push(slot);
        let entries = &self.entries;
        self.index
            .insert_unique(hash, slot, |&i| entries[i as usize].hash);
        self.sift_up(self.heap.len() - 1);
    }

    fn swap_heap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (ea, eb) = (self.heap[a] as usize, self.heap[b] as usize);
        self.entries[ea].pos = a as u32;
        self.entries[eb].pos = b as u32;
    }

    fn below(&self, a: usize, b: usize) -> bool {
        ranks_below(
            &self.entries[self.heap[a] as usize],
            &self.entries[self.heap[b] as usize],
        )
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.below(at, parent) {
                break;
            }
            self.swap_heap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * at + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.below(right, left) {
                right
            } else {
                left
            };
            if !self.below(child, at) {
                break;
            }
            self.swap_heap(at, child);
            at = child;
        }
    }

    /// Adds `weight` occurrences of a key (canonical bytes and tag). Weight 0 changes nothing;
    /// a negative one is an error (a frequent-items summary counts occurrences).
    pub fn add(&mut self, key: &[u8], tag: u8, weight: i64) -> Result<()> {
        if weight < 0 {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("topk weights must not be negative (got {weight})"),
            ));
        }
        if weight == 0 {
            return Ok(());
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(key_error(key.len()));
        }
        let w = weight as u64;
        let total = self.total.checked_add(w).filter(|&t| t <= MAX_TOTAL);
        self.total = total.ok_or_else(overflow)?;
        let hash = self.key_hash(key, tag);
        if let Some(i) = self.find(key, tag, hash) {
            let e = &mut self.entries[i];
            e.count += w;
            e.lower += w;
            let pos = e.pos as usize;
            self.sift_down(pos);
        } else if self.entries.len() < self.capacity as usize {
            // A key not held has a true count of at most floor (0 until one was dropped).
            self.push_entry(key, tag, self.floor + w, w);
        } else {
            // Replace the lowest-ranked entry, the heap's root.
            let slot = self.heap[0] as usize;
            let old_hash = self.entries[slot].hash;
            if let Ok(found) = self.index.find_entry(old_hash, |&i| i as usize == slot) {
                found.remove();
            }
            let e = &mut self.entries[slot];
            self.floor = self.floor.max(e.count);
            e.count += w;
            e.lower = w;
            e.tag = tag;
            e.key.clear();
            e.key.extend_from_slice(key);
            e.hash = hash;
            let entries = &self.entries;
            self.index
                .insert_unique(hash, slot as u32, |&i| entries[i as usize].hash);
            self.sift_down(0);
        }
        Ok(())
    }

    /// Bounds on the count of one key.
    pub fn bounds(&self, key: &[u8], tag: u8) -> Bounds {
        match self.find(key, tag, self.key_hash(key, tag)) {
            Some(i) => {
                let e = &self.entries[i];
                Bounds {
                    estimate: middle(e.lower, e.count),
                    lower: e.lower,
                    upper: e.count,
                }
            }
            None => Bounds {
                estimate: 0,
                lower: 0,
                upper: self.floor,
            },
        }
    }

    /// Every held item, best-ranked first.
    pub fn items(&self) -> Vec<Item<'_>> {
        let mut out: Vec<Item<'_>> = self
            .entries
            .iter()
            .map(|e| Item {
                key: &e.key,
                tag: e.tag,
                count: e.count,
                lower: e.lower,
            })
            .collect();
        out.sort_by(|a, b| {
            rank_order(
                a.count, a.lower, a.tag, a.key, b.count, b.lower, b.tag, b.key,
            )
        });
        out
    }

    /// Merges `other` into `self` (see the module documentation).
    pub fn merge_from(&mut self, other: &TopK) -> Result<()> {
        let total = self
            .total
            .checked_add(other.total)
            .filter(|&t| t <= MAX_TOTAL);
        let total = total.ok_or_else(overflow)?;
        // A summary that counted nothing is neutral, whatever its capacity (an aggregate over
        // zero rows gives one of the default capacity).
        // Two that counted nothing: the larger capacity, as for any other two.
        if other.total == 0 {
            if self.total == 0 {
                self.capacity = self.capacity.max(other.capacity);
            }
            return Ok(());
        }
        if self.total == 0 {
            *self = other.clone_in(self.arena);
            return Ok(());
        }
        // (key, tag, count, lower) of every key either side holds.
        let mut all: Vec<(&[u8], u8, u64, u64)> =
            Vec::with_capacity(self.entries.len() + other.entries.len());
        for e in self.entries.iter() {
            let b = other.bounds(&e.key, e.tag);
            let (count, lower) = match other.find(&e.key, e.tag, other.key_hash(&e.key, e.tag)) {
                Some(_) => (b.upper, b.lower),
                None => (other.floor, 0),
            };
            all.push((&e.key, e.tag, e.count + count, e.lower + lower));
        }
        for e in other.entries.iter() {
            if self
                .find(&e.key, e.tag, self.key_hash(&e.key, e.tag))
                .is_none()
            {
                all.push((&e.key, e.tag, e.count + self.floor, e.lower));
            }
        }
        all.sort_by(|a, b| rank_order(a.2, a.3, a.1, a.0, b.2, b.3, b.1, b.0));
        let capacity = self.capacity.max(other.capacity);
        let mut floor = self.floor + other.floor;
        if all.len() > capacity as usize {
            floor = floor.max(all[capacity as usize].2);
            all.truncate(capacity as usize);
        }
        let mut merged = TopK::empty_in(capacity, self.arena);
        merged.total = total;
        merged.floor = floor.min(total);
        for &(key, tag, count, lower) in &all {
            merged.push_entry(key, tag, count.min(total), lower);
        }
        *self = merged;
        Ok(())
    }

    /// The summary cut to `capacity` items (validated): the `capacity` best-ranked stay, with
    /// their bounds, and `floor = max(floor, largest count dropped)`, so every bound still holds
    /// (a dropped key's truth is at most its count, which is at most the new floor) and the
    /// result merges as any summary of that capacity. A capacity at or above the items held
    /// keeps them all and only sets the capacity. Merging summaries of a large capacity and then
    /// trimming the union keeps more of the true heavy hitters than merging summaries built at
    /// the small capacity (tests/bench/cms_vs_datasketches.sh).
    pub fn trimmed(&self, capacity: i64) -> Result<TopK> {
        if capacity < i64::from(MIN_CAPACITY) || capacity > i64::from(MAX_CAPACITY) {
            return Err(capacity_error(capacity));
        }
        let capacity = capacity as u32;
        let items = self.items();
        let mut out = TopK::empty_in(capacity, self.arena);
        out.total = self.total;
        out.floor = self.floor;
        if let Some(first_dropped) = items.get(capacity as usize) {
            out.floor = out.floor.max(first_dropped.count);
        }
        for item in items.iter().take(capacity as usize) {
            out.push_entry(item.key, item.tag, item.count, item.lower);
        }
        Ok(out)
    }

    /// A new summary, the merge of the two.
    pub fn merged(&self, other: &TopK) -> Result<TopK> {
        let mut out = self.clone_in(self.arena);
        out.merge_from(other)?;
        Ok(out)
    }

    /// Memory the summary holds (for the aggregate's SSPACE estimate and tests).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.entries.iter().map(|e| e.key.capacity()).sum::<usize>()
            + self.heap.capacity() * 4
            + self.index.capacity() * 5
    }
}
