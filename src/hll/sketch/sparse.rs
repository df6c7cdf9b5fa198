//! Sparse tokens and the token set (see the parent module for the format).
//!
//! In memory a token is a `u64`: `index << 6 | rank`, with the index at the set's sparse
//! precision `p'` (32 for sets this build makes, 26 for those read from values of format
//! versions 1 and 2 and their unions) and the rank at that precision kept only when the low
//! `p' - 18` bits of the index are zero, 0 otherwise. Dropping the rank where no precision
//! needs it gives hashes that no sketch could tell apart the same token, so equal states have
//! equal token lists. Sorting the `u64`s sorts by index and, within an index, by rank.

use super::{MAX_PRECISION, dense};
use crate::common::arena::{Arena, ArenaVec};

/// The sparse precision of the sets this build makes (format version 4, form 9): two values
/// share a token with probability about n²/2^33 (about 1 in 8,600 sets of 1,000 values).
pub const PRECISION: u8 = 32;
/// The sparse precision of versions 1 and 2 (form 1), still read, and of unions with them.
pub const LEGACY_PRECISION: u8 = 26;
const RANK_BITS: u32 = 6;
const RANK_MASK: u64 = (1 << RANK_BITS) - 1;
/// Bits of a rank in the Rice-coded layout (ranks at p' = 32 run from 1 to 33).
pub const RICE_RANK_BITS: u32 = 6;
/// Tokens buffered unsorted before a flush: at least this many, and an eighth of the sorted
/// list once that is longer, so a flush (a merge of the two) costs a few steps per insertion
/// while the buffer adds at most an eighth to the memory the list takes.
const MIN_PENDING: usize = 64;
const PENDING_SHARE: usize = 8;

/// The token of `hash` at sparse precision `sp` (26 or 32).
#[inline]
pub fn token(hash: u64, sp: u8) -> u64 {
    let index = hash >> (64 - sp);
    let rank = if keeps_rank(index, sp) {
        dense::rank(hash, sp) as u64
    } else {
        0
    };
    index << RANK_BITS | rank
}

/// Builds a token from decoded parts; `rank` must be 0 unless [`keeps_rank`]`(index, sp)`.
pub fn token_from_parts(index: u64, rank: u8) -> u64 {
    index << RANK_BITS | rank as u64
}

#[inline]
pub fn index_of(token: u64) -> u64 {
    token >> RANK_BITS
}

#[inline]
pub fn rank_of(token: u64) -> u8 {
    (token & RANK_MASK) as u8
}

/// True when a token of this index keeps its rank: the index bits below the largest dense
/// precision are all zero, so the dense rank at any precision runs past them into the hash
/// bits the index does not hold.
#[inline]
pub fn keeps_rank(index: u64, sp: u8) -> bool {
    index & ((1 << (sp - MAX_PRECISION)) - 1) == 0
}

/// The number of distinct token indexes at sparse precision `sp`.
pub fn buckets(sp: u8) -> u64 {
    1 << sp
}

/// The highest rank at sparse precision `sp`.
pub fn max_rank(sp: u8) -> u8 {
    65 - sp
}

/// The most tokens a sparse set of this build's precision holds at precision `p`: `2^p/8`
/// (2,048 at p = 14), about as many bytes in the Rice-coded layout as a dense sketch of
/// random data takes (2.8 bytes a token there against 0.36·2^p bytes; see the parent module).
pub fn max_tokens(p: u8) -> usize {
    1 << (p - 3)
}

/// The Rice parameter of a set of `n` (>= 1) tokens at p' = 32: the largest `k` with
/// `2^k·(n + 1) <= 2^32·ln 2`, near the best for gaps of mean `2^32/(n + 1)`.
pub fn rice_parameter(n: usize) -> u32 {
    // 2^32·ln 2, rounded.
    const SCALE: u64 = 2_977_044_472;
    let quotient = (SCALE / (n as u64 + 1)).max(1);
    63 - quotient.leading_zeros()
}

/// The dense register `(index, rank)` at precision `p` (<= 18) that the token's hash updates.
#[inline]
pub fn register(token: u64, sp: u8, p: u8) -> (usize, u8) {
    let index = index_of(token);
    let dropped_bits = u32::from(sp - p);
    let dropped = (index & ((1 << dropped_bits) - 1)) as u32;
    let rank = dense::folded_rank(dropped, dropped_bits, rank_of(token));
    ((index >> dropped_bits) as usize, rank)
}

/// The token at sparse precision `to` of a token at precision `from` (>= `to`): what the
/// token of the same hash at `to` is.
pub fn fold_token(token: u64, from: u8, to: u8) -> u64 {
    let index = index_of(token);
    let dropped_bits = u32::from(from - to);
    let folded = index >> dropped_bits;
    let rank = if keeps_rank(folded, to) {
        let dropped = (index & ((1 << dropped_bits) - 1)) as u32;
        dense::folded_rank(dropped, dropped_bits, rank_of(token))
    } else {
        0
    };
    token_from_parts(folded, rank)
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

/// `index - previous - 1`, with -1 as the previous index of the first entry.
#[inline]
pub fn gap(previous: Option<u64>, index: u64) -> u64 {
    match previous {
        None => index,
        Some(previous) => index - previous - 1,
    }
}

/// A set of tokens: a sorted list with one token per index, plus unsorted recent insertions.
#[derive(Clone)]
pub struct SparseSet {
    /// The sparse precision of the tokens: [`PRECISION`] or [`LEGACY_PRECISION`].
    precision: u8,
    /// Strictly increasing indexes, each with the highest rank seen.
    sorted: ArenaVec<u64>,
    /// Encoded payload bytes of `sorted`.
    sorted_bytes: usize,
    /// Tokens not yet in `sorted`, in arrival order, possibly repeated.
    pending: ArenaVec<u64>,
}

impl SparseSet {
    /// A set from tokens at sparse precision `sp`, already sorted and deduplicated (the
    /// decoder checks that).
    pub fn from_sorted(sorted: ArenaVec<u64>, sp: u8) -> Self {
        let sorted_bytes = payload_len(&sorted, sp);
        let pending = sorted.allocator().vec();
        SparseSet {
            precision: sp,
            sorted,
            sorted_bytes,
            pending,
        }
    }

    /// The tokens of `hashes` (an explicit sketch turning sparse) at sparse precision `sp`, in
    /// `arena`.
    pub fn from_hashes(hashes: &[u64], arena: Arena, sp: u8) -> Self {
        let mut pending = ArenaVec::with_capacity_in(hashes.len(), arena);
        pending.extend(hashes.iter().map(|&hash| token(hash, sp)));
        let mut set = SparseSet {
            pending,
            ..SparseSet::new_in(arena, sp)
        };
        set.flush();
        set
    }

    /// An empty set at sparse precision `sp` in `arena`.
    pub fn new_in(arena: Arena, sp: u8) -> Self {
        SparseSet {
            precision: sp,
            sorted: arena.vec(),
            sorted_bytes: 0,
            pending: arena.vec(),
        }
    }

    /// The sparse precision of the tokens.
    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Where the token lists live.
    pub fn arena(&self) -> Arena {
        *self.sorted.allocator()
    }

    pub fn clone_in(&self, arena: Arena) -> Self {
        SparseSet {
            precision: self.precision,
            sorted: arena.vec_from(&self.sorted),
            sorted_bytes: self.sorted_bytes,
            pending: arena.vec_from(&self.pending),
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Buffers the token of `hash`; tells whether the buffer is due for a flush.
    #[inline]
    pub fn push_hash(&mut self, hash: u64) -> bool {
        self.push(token(hash, self.precision))
    }

    /// Buffers a token of the set's precision; tells whether the buffer is due for a flush.
    #[inline]
    pub fn push(&mut self, token: u64) -> bool {
        // Runs of one value (a GROUP BY over a constant) should not fill the buffer.
        if self.pending.last() != Some(&token) {
            self.pending.push(token);
        }
        self.pending.len() >= MIN_PENDING.max(self.sorted.len() / PENDING_SHARE)
    }

    /// True when the set has outgrown the sparse form at precision `p` (after a flush): for
    /// this build's tokens, more than [`max_tokens`]; for tokens at the legacy precision, a
    /// value longer than `dense_len` (the 6-bit dense form, the rule of versions 1 and 2, so
    /// that their values stay canonical).
    pub fn outgrows(&self, p: u8, header_len: usize, dense_len: usize) -> bool {
        debug_assert!(self.pending.is_empty());
        if self.precision == PRECISION {
            self.sorted.len() > max_tokens(p)
        } else {
            header_len + self.sorted_bytes > dense_len
        }
    }

    /// Lowers the tokens to sparse precision `sp` (no higher than theirs).
    pub fn fold_to(&mut self, sp: u8) {
        if sp == self.precision {
            return;
        }
        let from = self.precision;
        let arena = self.arena();
        let mut tokens = ArenaVec::with_capacity_in(self.all_tokens_len(), arena);
        tokens.extend(self.all_tokens().map(|t| fold_token(t, from, sp)));
        *self = SparseSet {
            pending: tokens,
            ..SparseSet::new_in(arena, sp)
        };
        self.flush();
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
            self.sorted_bytes = payload_len(&self.sorted, self.precision);
            return;
        }
        self.merge_sorted(&pending);
        // Keep the buffer's allocation for the next batch.
        pending.clear();
        self.pending = pending;
    }

    /// Adds every token of `other`; at the lower sparse precision of the two when they differ
    /// (a union with a set read from version 1 or 2 keeps 26 bits of every hash).
    pub fn merge_from(&mut self, other: &SparseSet) {
        if other.precision < self.precision {
            self.fold_to(other.precision);
        }
        if other.precision > self.precision {
            let sp = self.precision;
            self.pending.extend(
                other
                    .all_tokens()
                    .map(|t| fold_token(t, other.precision, sp)),
            );
            self.flush();
            return;
        }
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
    fn merge_sorted(&mut self, other: &[u64]) {
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
        self.sorted_bytes = payload_len(&merged, self.precision);
        self.sorted = merged;
    }

    /// The sorted tokens; pending ones are not included (flush first).
    pub fn tokens(&self) -> &[u64] {
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

    /// Every token, pending ones included (unsorted, perhaps repeated).
    pub fn all_tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.sorted.iter().chain(&self.pending).copied()
    }

    /// The number of tokens [`SparseSet::all_tokens`] yields.
    pub fn all_tokens_len(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    /// Applies every token, pending ones included, to dense registers at precision `p`.
    pub fn scatter_into(&self, registers: &mut [u8], p: u8) {
        for token in self.all_tokens() {
            let (index, rank) = register(token, self.precision, p);
            if let Some(register) = registers.get_mut(index) {
                *register = (*register).max(rank);
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        (self.sorted.capacity() + self.pending.capacity()) * std::mem::size_of::<u64>()
    }
}

/// Sorts tokens and keeps one per index, the one with the highest rank.
fn sort_and_dedup(tokens: &mut ArenaVec<u64>) {
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

/// Encoded payload bytes of a sorted, deduplicated token list at sparse precision `sp`: gap
/// varints and rank bytes at the legacy precision (form 1), the token count and the
/// Rice-coded bit stream at this build's (form 9).
fn payload_len(sorted: &[u64], sp: u8) -> usize {
    if sp == PRECISION {
        if sorted.is_empty() {
            return 0;
        }
        return varint_len(sorted.len() as u32) + rice_bits(sorted).div_ceil(8);
    }
    let mut previous = None;
    let mut total = 0;
    for &token in sorted {
        let index = index_of(token);
        total += varint_len(gap(previous, index) as u32) + usize::from(keeps_rank(index, sp));
        previous = Some(index);
    }
    total
}

/// Bits of the Rice-coded stream of a non-empty token list at p' = 32: per token, the gap's
/// quotient in unary (`gap >> k` zeros and a one), its `k` low bits, and 6 rank bits where
/// the token keeps its rank.
pub fn rice_bits(sorted: &[u64]) -> usize {
    let k = rice_parameter(sorted.len());
    let mut previous = None;
    let mut total = 0;
    for &token in sorted {
        let index = index_of(token);
        let kept = usize::from(keeps_rank(index, PRECISION));
        total +=
            (gap(previous, index) >> k) as usize + 1 + k as usize + kept * RICE_RANK_BITS as usize;
        previous = Some(index);
    }
    total
}
