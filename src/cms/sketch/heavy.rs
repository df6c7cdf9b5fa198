//! The heavy-hitter list: SpaceSaving candidates, tightened by the Count-Min counters beside
//! them, with a bound on every key they do not hold.
//!
//! # State
//!
//! At most `capacity` candidates, each a key (its canonical bytes, whole, plus the caller's
//! one-byte type tag) with a `count` and an `error`, and one `floor`. Under the strict-turnstile
//! premise of the sketch (no key's net count below zero) these invariants hold after every
//! operation, for every key `x` with true count `f(x)`:
//!
//! - `x` a candidate: `count − error ≤ f(x) ≤ count`, with `1 ≤ count` and `0 ≤ error ≤ count`;
//! - `x` not a candidate: `0 ≤ f(x) ≤ floor`, with `0 ≤ floor ≤ max(N, 0)`.
//!
//! The floor is stored rather than read off the smallest count (as plain SpaceSaving does)
//! because decrements, subtraction and re-scoring can lower counts below it. A sketch without a
//! list (capacity 0) stores floor 0 and bounds untracked keys by N instead.
//!
//! Candidates are ranked by count, higher first, then by key bytes and tag, ascending; this
//! total order decides evictions and truncations, so results never depend on hash-map order.
//!
//! # Update of key `x` by weight `c`, after the counters took it (estimate `m` of `x`)
//!
//! - `x` a candidate: `count ← min(count + c, m)`, `lower ← lower + c` (lower = count − error).
//!   A candidate whose count drops to 0 or below (negative weights) is removed: its true count is
//!   then 0.
//! - `x` new, `c > 0`: its count before was at most `floor`, so it is admitted with
//!   `count = min(floor + c, m)` and `lower = c`. With room it is inserted. When full it replaces
//!   the lowest-ranked candidate `y` if it ranks above it (then `floor ← max(floor, count(y))`),
//!   and is otherwise left out (then `floor ← max(floor, its count)`).
//! - `x` new, `c < 0`: nothing; its count only fell.
//!
//! Without the `m` cap this is SpaceSaving (Metwally, Agrawal, El Abbadi 2005), which on a
//! single stream of positive weights tracks every key with `f > N/capacity`; the cap keeps that
//! (counts only get smaller, so the smallest count stays ≤ N/capacity and the floor below it)
//! and gives newcomers their Count-Min estimate instead of `min + c`, so a tail key entering a
//! full list no longer pushes out a candidate that outweighs it.
//!
//! # Merge (union) of lists A and B, against the merged counters
//!
//! For every key in either list, `count = count_A + count_B` and `lower = lower_A + lower_B`,
//! where a key missing from one side takes `count = floor` and `lower = 0` from it (Parallel
//! Space Saving, Cafaro et al. 2016). Each count is then re-scored: `count ← min(count, m)` with
//! `m` the merged Count-Min estimate, which repairs the counts of keys some partitions did not
//! hold. The `capacity` (the larger of the two) best-ranked candidates stay; the floor becomes
//! `max(floor_A + floor_B, largest dropped count)`, capped at N.
//!
//! The merge is commutative and deterministic. It is not associative once truncation drops
//! candidates ((A+B)+C may keep other candidates than A+(B+C)), but in every order the
//! invariants hold. The encoding is canonical (candidates sorted by key bytes, then tag), so
//! equal lists have equal bytes.
//!
//! # Subtraction A − B (linear mode; B a part of A's stream)
//!
//! For a candidate `x` of A, B's bounds on `f_B(x)` are `[lower_B, count_B]` when B holds it
//! and `[0, floor_B]` otherwise; then `count ← count_A − lower_B`, `lower ← lower_A − upper_B`
//! (at least 0), re-scored against the difference of the counters. Keys that A does not hold
//! stay below `floor_A`, which is kept. So the list stays sound, but adding B and subtracting it
//! again leaves wider errors than before: the counters are restored exactly, the list is not.
//! In a long-running sliding window (add the new part, subtract the oldest) the floor therefore
//! only grows, up to N, and `guaranteed` top-k rows become rare; estimates and upper bounds stay
//! as good as a fresh union's, because every count is re-scored against the exact counters.

use crate::common::arena::{Arena, ArenaVec};
use crate::common::error::{Error, ErrorKind, Result};
use crate::common::hash::hash_bytes;
use std::cmp::Ordering;

/// The hash index lives in the list's arena too. Its keys are already uniform XXH3 hashes;
/// ahash with random keys per list (from the operating system) keeps crafted keys from piling
/// into one bucket. In memory only, never stored.
type HashMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState, Arena>;

/// Largest heavy-hitter capacity.
pub const MAX_HEAVY: u32 = 16_384;
/// Longest key the heavy-hitter list keeps (it never truncates).
pub const MAX_KEY_BYTES: usize = 16_384;

/// Marks the end of a same-hash chain.
const NONE: u32 = u32::MAX;

/// A candidate as the sketch shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub key: &'a [u8],
    pub tag: u8,
    /// `hash_bytes(key)`.
    pub hash: u64,
    /// Upper bound on the key's count.
    pub count: i64,
    /// `count − error` is a lower bound on the key's count.
    pub error: i64,
}

#[derive(Debug, Clone)]
struct Entry {
    key: ArenaVec<u8>,
    tag: u8,
    hash: u64,
    count: i64,
    error: i64,
    /// Where this entry sits in `HeavyList::heap`.
    heap_slot: u32,
    /// The next entry with the same hash, or `NONE`.
    next_same_hash: u32,
}

impl Entry {
    fn view(&self) -> Candidate<'_> {
        Candidate {
            key: &self.key,
            tag: self.tag,
            hash: self.hash,
            count: self.count,
            error: self.error,
        }
    }
}

/// Rank order: `Less` means `a` ranks above `b` (higher count, then smaller key, then tag).
fn rank(a_count: i64, a_key: &[u8], a_tag: u8, b_count: i64, b_key: &[u8], b_tag: u8) -> Ordering {
    b_count
        .cmp(&a_count)
        .then_with(|| a_key.cmp(b_key))
        .then(a_tag.cmp(&b_tag))
}

/// Canonical order of the encoding: key bytes, then tag.
fn key_order(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.key.cmp(b.key).then(a.tag.cmp(&b.tag))
}

/// The list itself. Entries live in `entries` in no particular order; `heap` is a binary heap
/// of their indexes with the lowest-ranked entry on top (the one to evict), and `by_hash` finds
/// an entry by its key's hash (entries sharing a hash are chained through `next_same_hash`).
#[derive(Debug, Clone)]
pub(super) struct HeavyList {
    capacity: u32,
    floor: i64,
    entries: ArenaVec<Entry>,
    heap: ArenaVec<u32>,
    by_hash: HashMap<u64, u32>,
}

impl PartialEq for HeavyList {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity
            && self.floor == other.floor
            && self.canonical() == other.canonical()
    }
}

impl Eq for HeavyList {}

/// `count` and `lower` brought back to the invariants and re-scored by the Count-Min
/// `estimate`; `None` when the key's count is certainly 0, so it need not be a candidate.
fn settle(count: i64, lower: i64, estimate: i64) -> Option<(i64, i64)> {
    let lower = lower.max(0);
    let count = count.min(estimate.max(lower));
    if count <= 0 {
        return None;
    }
    let lower = lower.min(count);
    Some((count, count - lower))
}

fn overflow() -> Error {
    Error::new(
        ErrorKind::Overflow,
        "cms heavy-hitter count is out of range for type bigint",
    )
}

impl HeavyList {
    pub(super) fn new(capacity: u32, arena: Arena) -> HeavyList {
        let by_hash = HashMap::with_hasher_in(ahash::RandomState::new(), arena);
        HeavyList {
            capacity,
            floor: 0,
            entries: arena.vec(),
            heap: arena.vec(),
            by_hash,
        }
    }

    /// Where the list's entries, keys and index live.
    pub(super) fn arena(&self) -> Arena {
        *self.entries.allocator()
    }

    /// A copy in `arena`.
    pub(super) fn clone_in(&self, arena: Arena) -> HeavyList {
        let parts = self
            .entries
            .iter()
            .map(|e| (&e.key[..], e.tag, e.count, e.error))
            .collect();
        HeavyList::from_parts(self.capacity, self.floor, parts, arena)
    }

    /// A list from candidates in any order, which must have distinct keys, satisfy the
    /// invariants and number at most `capacity` (the decoder and the merges check this).
    pub(super) fn from_parts(
        capacity: u32,
        floor: i64,
        candidates: Vec<(&[u8], u8, i64, i64)>,
        arena: Arena,
    ) -> HeavyList {
        debug_assert!(candidates.len() <= capacity as usize);
        let mut list = HeavyList::new(capacity, arena);
        list.floor = if capacity == 0 { 0 } else { floor };
        list.entries.reserve(candidates.len());
        list.entries.extend(
            candidates
                .into_iter()
                .map(|(key, tag, count, error)| Entry {
                    hash: hash_bytes(key),
                    key: arena.vec_from(key),
                    tag,
                    count,
                    error,
                    heap_slot: 0,
                    next_same_hash: NONE,
                }),
        );
        list.rebuild_index();
        list
    }

    pub(super) fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn floor(&self) -> i64 {
        self.floor
    }

    /// The candidates sorted by key bytes, then tag.
    pub(super) fn canonical(&self) -> Vec<Candidate<'_>> {
        let mut all: Vec<Candidate<'_>> = self.entries.iter().map(Entry::view).collect();
        all.sort_by(key_order);
        all
    }

    pub(super) fn get(&self, hash: u64, key: &[u8], tag: u8) -> Option<Candidate<'_>> {
        self.find(hash, key, tag)
            .map(|i| self.entries[i as usize].view())
    }

    fn find(&self, hash: u64, key: &[u8], tag: u8) -> Option<u32> {
        let mut at = *self.by_hash.get(&hash)?;
        while at != NONE {
            let entry = &self.entries[at as usize];
            if entry.tag == tag && entry.key == key {
                return Some(at);
            }
            at = entry.next_same_hash;
        }
        None
    }

    /// Records an update of weight `weight` (≠ 0) of `key`, whose Count-Min estimate after the
    /// update is `estimate`; `total` is N after it. See the module documentation.
    pub(super) fn observe(
        &mut self,
        hash: u64,
        key: &[u8],
        tag: u8,
        weight: i64,
        estimate: i64,
        total: i64,
    ) {
        if self.capacity == 0 {
            return;
        }
        if let Some(at) = self.find(hash, key, tag) {
            let entry = &self.entries[at as usize];
            let lower = (entry.count - entry.error).saturating_add(weight);
            match settle(entry.count.saturating_add(weight), lower, estimate) {
                Some((count, error)) => self.set_count(at, count, error),
                None => self.remove(at),
            }
        } else if weight > 0 {
            // Before this update the key's count was at most the floor.
            let count = self.floor.saturating_add(weight).min(estimate.max(weight));
            let error = count - weight;
            if self.entries.len() < self.capacity as usize {
                self.push(Entry {
                    key: self.arena().vec_from(key),
                    tag,
                    hash,
                    count,
                    error,
                    heap_slot: 0,
                    next_same_hash: NONE,
                });
            } else {
                let worst = &self.entries[self.heap[0] as usize];
                if rank(count, key, tag, worst.count, &worst.key, worst.tag) == Ordering::Less {
                    self.floor = self.floor.max(worst.count);
                    self.replace_worst(key, tag, hash, count, error);
                } else {
                    self.floor = self.floor.max(count);
                }
            }
        }
        self.floor = self.floor.min(total.max(0));
    }

    /// The union of two lists, re-scored by `estimate` (the merged Count-Min estimate of a
    /// hash); each side comes with its bound on untracked keys; `total` is the merged N.
    pub(super) fn merge(
        (a, floor_a): (&HeavyList, i64),
        (b, floor_b): (&HeavyList, i64),
        estimate: impl Fn(u64) -> i64,
        total: i64,
    ) -> Result<HeavyList> {
        let capacity = a.capacity.max(b.capacity);
        let arena = a.arena();
        if capacity == 0 {
            return Ok(HeavyList::new(0, arena));
        }
        let (list_a, list_b) = (a.canonical(), b.canonical());
        let mut merged: Vec<Candidate<'_>> = Vec::with_capacity(list_a.len() + list_b.len());
        // Walk both lists in key order; a key in both is one candidate.
        let (mut i, mut j) = (0, 0);
        while i < list_a.len() || j < list_b.len() {
            let order = match (list_a.get(i), list_b.get(j)) {
                (Some(x), Some(y)) => key_order(x, y),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (base, count, lower) = match order {
                Ordering::Less => {
                    let x = list_a[i];
                    i += 1;
                    (x, x.count.checked_add(floor_b), x.count - x.error)
                }
                Ordering::Greater => {
                    let y = list_b[j];
                    j += 1;
                    (y, y.count.checked_add(floor_a), y.count - y.error)
                }
                Ordering::Equal => {
                    let (x, y) = (list_a[i], list_b[j]);
                    i += 1;
                    j += 1;
                    let lower = (x.count - x.error).checked_add(y.count - y.error);
                    (x, x.count.checked_add(y.count), lower.ok_or_else(overflow)?)
                }
            };
            let count = count.ok_or_else(overflow)?;
            if let Some((count, error)) = settle(count, lower, estimate(base.hash)) {
                merged.push(Candidate {
                    count,
                    error,
                    ..base
                });
            }
        }
        let floor = floor_a.saturating_add(floor_b);
        Ok(HeavyList::keep_best(capacity, floor, merged, total, arena))
    }

    /// This list minus `other` (see the module documentation), re-scored by `estimate` (the
    /// Count-Min estimate of the difference); `other_floor` is `other`'s bound on untracked keys
    /// and `total` the N of the difference.
    pub(super) fn subtract(
        &self,
        other: &HeavyList,
        other_floor: i64,
        estimate: impl Fn(u64) -> i64,
        total: i64,
    ) -> Result<HeavyList> {
        if self.capacity == 0 {
            return Ok(HeavyList::new(0, self.arena()));
        }
        let mut kept = Vec::with_capacity(self.entries.len());
        for mine in self.canonical() {
            let (their_lower, their_upper) = match other.get(mine.hash, mine.key, mine.tag) {
                Some(theirs) => (theirs.count - theirs.error, theirs.count),
                None => (0, other_floor.max(0)),
            };
            // All four terms are ≥ 0, so neither difference overflows.
            let count = mine.count - their_lower;
            let lower = (mine.count - mine.error) - their_upper;
            if let Some((count, error)) = settle(count, lower, estimate(mine.hash)) {
                kept.push(Candidate {
                    count,
                    error,
                    ..mine
                });
            }
        }
        Ok(HeavyList::keep_best(
            self.capacity,
            self.floor,
            kept,
            total,
            self.arena(),
        ))
    }

    /// The `capacity` best-ranked of `candidates` (distinct keys); the floor rises to the largest
    /// dropped count and is capped at `max(total, 0)`.
    fn keep_best(
        capacity: u32,
        floor: i64,
        mut candidates: Vec<Candidate<'_>>,
        total: i64,
        arena: Arena,
    ) -> HeavyList {
        candidates.sort_by(|a, b| rank(a.count, a.key, a.tag, b.count, b.key, b.tag));
        let mut floor = floor;
        if let Some(first_dropped) = candidates.get(capacity as usize) {
            floor = floor.max(first_dropped.count);
        }
        candidates.truncate(capacity as usize);
        let parts = candidates
            .into_iter()
            .map(|c| (c.key, c.tag, c.count, c.error))
            .collect();
        HeavyList::from_parts(capacity, floor.min(total.max(0)), parts, arena)
    }

    // ---- the index: hash chains and the heap ------------------------------------------------

    /// Ranks entry `a` below entry `b`.
    fn below(&self, a: u32, b: u32) -> bool {
        let (x, y) = (&self.entries[a as usize], &self.entries[b as usize]);
        rank(x.count, &x.key, x.tag, y.count, &y.key, y.tag) == Ordering::Greater
    }

    fn swap_slots(&mut self, i: usize, j: usize) {
        self.heap.swap(i, j);
        self.entries[self.heap[i] as usize].heap_slot = i as u32;
        self.entries[self.heap[j] as usize].heap_slot = j as u32;
    }

    fn sift_up(&mut self, mut slot: usize) {
        while slot > 0 {
            let parent = (slot - 1) / 2;
            if !self.below(self.heap[slot], self.heap[parent]) {
                break;
            }
            self.swap_slots(slot, parent);
            slot = parent;
        }
    }

    fn sift_down(&mut self, mut slot: usize) {
        loop {
            let mut lowest = slot;
            for child in [2 * slot + 1, 2 * slot + 2] {
                if child < self.heap.len() && self.below(self.heap[child], self.heap[lowest]) {
                    lowest = child;
                }
            }
            if lowest == slot {
                return;
            }
            self.swap_slots(slot, lowest);
            slot = lowest;
        }
    }

    fn link_hash(&mut self, at: u32) {
        let hash = self.entries[at as usize].hash;
        let next = self.by_hash.insert(hash, at).unwrap_or(NONE);
        self.entries[at as usize].next_same_hash = next;
    }

    fn unlink_hash(&mut self, at: u32) {
        let (hash, next) = {
            let entry = &self.entries[at as usize];
            (entry.hash, entry.next_same_hash)
        };
        let Some(&head) = self.by_hash.get(&hash) else {
            return;
        };
        if head == at {
            if next == NONE {
                self.by_hash.remove(&hash);
            } else {
                self.by_hash.insert(hash, next);
            }
            return;
        }
        let mut prev = head;
        while prev != NONE {
            let following = self.entries[prev as usize].next_same_hash;
            if following == at {
                self.entries[prev as usize].next_same_hash = next;
                return;
            }
            prev = following;
        }
    }

    fn rebuild_index(&mut self) {
        let arena = self.arena();
        self.by_hash = HashMap::with_capacity_and_hasher_in(
            self.entries.len(),
            self.by_hash.hasher().clone(),
            arena,
        );
        self.heap = ArenaVec::with_capacity_in(self.entries.len(), arena);
        for at in 0..self.entries.len() as u32 {
            self.link_hash(at);
            self.heap.push(at);
            self.entries[at as usize].heap_slot = at;
            self.sift_up(at as usize);
        }
    }

    fn push(&mut self, entry: Entry) {
        let at = self.entries.len() as u32;
        self.entries.push(entry);
        self.link_hash(at);
        self.heap.push(at);
        self.entries[at as usize].heap_slot = at;
        self.sift_up(at as usize);
    }

    fn set_count(&mut self, at: u32, count: i64, error: i64) {
        let entry = &mut self.entries[at as usize];
        let grew = count > entry.count;
        entry.count = count;
        entry.error = error;
        let slot = entry.heap_slot as usize;
        // A larger count ranks higher, so the entry moves away from the top, and vice versa.
        if grew {
            self.sift_down(slot);
        } else {
            self.sift_up(slot);
        }
    }

    /// Reuses the slot of the lowest-ranked entry (the heap's top) for a new key.
    fn replace_worst(&mut self, key: &[u8], tag: u8, hash: u64, count: i64, error: i64) {
        let at = self.heap[0];
        self.unlink_hash(at);
        let entry = &mut self.entries[at as usize];
        entry.key.clear();
        entry.key.extend_from_slice(key);
        entry.tag = tag;
        entry.hash = hash;
        entry.count = count;
        entry.error = error;
        self.link_hash(at);
        self.sift_down(0);
    }

    /// Removes an entry (rare: only when negative weights zero a candidate), rebuilding the index.
    fn remove(&mut self, at: u32) {
        self.entries.swap_remove(at as usize);
        self.rebuild_index();
    }

    /// Checks the internal index against the entries (tests only).
    #[cfg(test)]
    pub(super) fn check_index(&self) {
        assert_eq!(self.heap.len(), self.entries.len());
        assert!(self.entries.len() <= self.capacity as usize);
        for (slot, &at) in self.heap.iter().enumerate() {
            assert_eq!(self.entries[at as usize].heap_slot as usize, slot);
            if slot > 0 {
                assert!(
                    !self.below(at, self.heap[(slot - 1) / 2]),
                    "heap order broken"
                );
            }
        }
        for (at, entry) in self.entries.iter().enumerate() {
            assert_eq!(
                self.find(entry.hash, &entry.key, entry.tag),
                Some(at as u32)
            );
            assert_eq!(entry.hash, hash_bytes(&entry.key));
            assert!(entry.count >= 1 && entry.error >= 0 && entry.error <= entry.count);
        }
        assert!(self.floor >= 0);
        if self.capacity == 0 {
            assert_eq!(self.floor, 0);
        }
    }
}
