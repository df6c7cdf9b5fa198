//! Sparse tokens and the token set (see the parent module for the format).
//!
//! In memory a token is a `u32`: `index << 6 | rank`, with the index at the sparse precision
//! (26 bits) and the rank at that precision (1..=39) kept only when the low 8 bits of the index
//! are zero, 0 otherwise. Dropping the rank where no precision needs it gives hashes that no
//! sketch could tell apart the same token, so equal states have equal token lists. Sorting the
//! `u32`s sorts by index and, within an index, by rank.

use super::{MAX_PRECISION, dense};
use crate::common::arena::{Arena, ArenaVec};

pub const SPARSE_PRECISION: u32 = 26;
const RANK_BITS: u32 = 6;
const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
/// Index bits below the largest dense precision: when they are all zero the dense rank at
/// any precision runs past them into the hash bits the index does not hold, so the token keeps
/// its rank.
const RANK_KEPT_MASK: u32 = (1 << (SPARSE_PRECISION - MAX_PRECISION as u32)) - 1;
/// The number of distinct token indexes.
pub const SPARSE_BUCKETS: u32 = 1 << SPARSE_PRECISION;
/// The highest rank at the sparse precision.
pub const MAX_SPARSE_RANK: u8 = (65 - SPARSE_PRECISION) as u8;
/// Tokens buffered unsorted before a flush: at least this many, and an eighth of the sorted
/// list once that is longer, so a flush (a merge of the two) costs a few steps per insertion
/// while the buffer adds at most an eighth to the memory the list takes.
const MIN_PENDING: usize = 64;
const PENDING_SHARE: usize = 8;

#[inline]
pub fn token(hash: u64) -> u32 {
    let index = (hash >> (64 - SPARSE_PRECISION)) as u32;
    let rank = if keeps_rank(index) {
        dense::rank(hash, SPARSE_PRECISION as u8) as u32
    } else {
        0
    };
    index << RANK_BITS | rank
}

/// Builds a token from decoded parts; `rank` must be 0 unless [`keeps_rank`]`(index)`.
pub fn token_from_parts(index: u32, rank: u8) -> u32 {
    index << RANK_BITS | rank as u32
}

#[inline]
pub fn index_of(token: u32) -> u32 {
    token >> RANK_BITS
}

#[inline]
pub fn rank_of(token: u32) -> u8 {
    (token & RANK_MASK) as u8
}

#[inline]
pub fn keeps_rank(index: u32) -> bool {
    index & RANK_KEPT_MASK == 0
}

/// The dense register `(index, rank)` at precision `p` (<= 18) that the token's hash updates.
#[inline]
pub fn register(token: u32, p: u8) -> (usize, u8) {
    let index = index_of(token);
    let dropped_bits = SPARSE_PRECISION - p as u32;
    let dropped = index & ((1 << dropped_bits) - 1);
    let rank = dense::folded_rank(dropped, dropped_bits, rank_of(token));
    ((index >> dropped_bits) as usize, rank)
}

/// Bytes of a LEB128 varint.
#[inline]
pub fn varint_len(value: u32) -> usize {
    match value {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

/// Encoded bytes of one entry: the gap varint, plus the rank byte where kept.
#[inline]
pub fn entry_len(previous: Option<u32>, index: u32) -> usize {
    varint_len(gap(previous, index)) + usize::from(keeps_rank(index))
}

/// `index - previous - 1`, with -1 as the previous index of the first entry.
#[inline]
pub fn gap(previous: Option<u32>, index: u32) -> u32 {
    match previous {
        None => index,
        Some(previous) => index - previous - 1,
    }
}

/// A set of tokens: a sorted list with one token per index, plus unsorted recent insertions.
#[derive(Clone)]
pub struct SparseSet {
    /// Strictly increasing indexes, each with the highest rank seen.
    sorted: ArenaVec<u32>,
    /// Encoded payload bytes of `sorted`.
    sorted_bytes: usize,
    /// Tokens not yet in `sorted`, in arrival order, possibly repeated.
    pending: ArenaVec<u32>,
}

impl SparseSet {
    /// A set from tokens already sorted and deduplicated (the decoder checks that).
    pub fn from_sorted(sorted: ArenaVec<u32>) -> Self {
        let sorted_bytes = payload_len(&sorted);
        let pending = sorted.allocator().vec();
        SparseSet {
            sorted,
            sorted_bytes,
            pending,
        }
    }

    /// The tokens of `hashes` (an explicit sketch turning sparse), in `arena`.
    pub fn from_hashes(hashes: &[u64], arena: Arena) -> Self {
        let mut pending = ArenaVec::with_capacity_in(hashes.len(), arena);
        pending.extend(hashes.iter().map(|&hash| token(hash)));
        let mut set = SparseSet {
            pending,
            ..SparseSet::new_in(arena)
        };
        set.flush();
        set
    }

    /// An empty set in `arena`.
    pub fn new_in(arena: Arena) -> Self {
        SparseSet {
            sorted: arena.vec(),
            sorted_bytes: 0,
            pending: arena.vec(),
        }
    }

    /// Where the token lists live.
    pub fn arena(&self) -> Arena {
        *self.sorted.allocator()
    }

    pub fn clone_in(&self, arena: Arena) -> Self {
        SparseSet {
            sorted: arena.vec_from(&self.sorted),
            sorted_bytes: self.sorted_bytes,
            pending: arena.vec_from(&self.pending),
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Buffers a token; tells whether the buffer is due for a flush.
    #[inline]
    pub fn push(&mut self, token: u32) -> bool {
        // Runs of one value (a GROUP BY over a constant) should not fill the buffer.
        if self.pending.last() != Some(&token) {
            self.pending.push(token);
        }
        self.pending.len() >= MIN_PENDING.max(self.sorted.len() / PENDING_SHARE)
    }

    /// Sorts the pending tokens into the list.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let arena = self.arena();
        let mut pending = std::mem::replace(&mut self.pending, arena.vec());
        sort_and_dedup(&mut pending);
        if self.sorted.is_empty() {
            self.sorted = pending;
            self.sorted_bytes = payload_len(&self.sorted);
            return;
        }
        self.merge_sorted(&pending);
        // Keep the buffer's allocation for the next batch.
        pending.clear();
        self.pending = pending;
    }

    /// Adds every token of `other`.
    pub fn merge_from(&mut self, other: &SparseSet) {
        self.flush();
        if !other.sorted.is_empty() {
            if self.sorted.is_empty() {
                self.sorted = self.arena().vec_from(&other.sorted);
                self.sorted_bytes = other.sorted_bytes;
            } else {
                self.merge_sorted(&other.sorted);
            }
        }
        if !other.pending.is_empty() {
            self.pending.extend_from_slice(&other.pending);
            self.flush();
        }
    }

    /// Merges a sorted, deduplicated token list into `sorted`, keeping the higher rank.
    fn merge_sorted(&mut self, other: &[u32]) {
        let arena = self.arena();
        let mine = std::mem::replace(&mut self.sorted, arena.vec());
        let mut merged = ArenaVec::with_capacity_in(mine.len() + other.len(), arena);
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < other.len() {
            let (a, b) = (mine[i], other[j]);
            match index_of(a).cmp(&index_of(b)) {
                std::cmp::Ordering::Less => {
                    merged.push(a);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(b);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(a.max(b));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&mine[i..]);
        merged.extend_from_slice(&other[j..]);
        self.sorted_bytes = payload_len(&merged);
        self.sorted = merged;
    }

    /// The sorted tokens; pending ones are not included (flush first).
    pub fn tokens(&self) -> &[u32] {
        debug_assert!(self.pending.is_empty());
        &self.sorted
    }

    /// Number of distinct indexes (after a flush).
    pub fn len(&self) -> usize {
        debug_assert!(self.pending.is_empty());
        self.sorted.len()
    }

    /// Payload bytes of the binary form (after a flush).
    pub fn encoded_payload_len(&self) -> usize {
        debug_assert!(self.pending.is_empty());
        self.sorted_bytes
    }

    /// Applies every token, pending ones included, to dense registers at precision `p`.
    /// Every token, pending ones included (unsorted, perhaps repeated).
    pub fn all_tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.sorted.iter().chain(&self.pending).copied()
    }

    /// The number of tokens [`SparseSet::all_tokens`] yields.
    pub fn all_tokens_len(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    pub fn scatter_into(&self, registers: &mut [u8], p: u8) {
        for &token in self.sorted.iter().chain(&self.pending) {
            let (index, rank) = register(token, p);
            if let Some(register) = registers.get_mut(index) {
                *register = (*register).max(rank);
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        (self.sorted.capacity() + self.pending.capacity()) * std::mem::size_of::<u32>()
    }
}

/// Sorts tokens and keeps one per index, the one with the highest rank.
fn sort_and_dedup(tokens: &mut ArenaVec<u32>) {
    tokens.sort_unstable();
    // Equal indexes are adjacent and ordered by rank, so the last of each run wins.
    let mut kept = 0;
    for i in 0..tokens.len() {
        let token = tokens[i];
        if kept > 0 && index_of(tokens[kept - 1]) == index_of(token) {
            tokens[kept - 1] = token;
        } else {
            tokens[kept] = token;
            kept += 1;
        }
    }
    tokens.truncate(kept);
}

/// Encoded payload bytes of a sorted, deduplicated token list.
fn payload_len(sorted: &[u32]) -> usize {
    let mut previous = None;
    let mut total = 0;
    for &token in sorted {
        let index = index_of(token);
        total += entry_len(previous, index);
        previous = Some(index);
    }
    total
}
