//! The explicit form: the full 64-bit hashes of a small set, so that its count is exact (two
//! distinct values share a hash with probability about n²/2^65, never in practice). Sparse
//! tokens keep 32 bits of each hash and can merge two values (45 in 2^32 for a 10-value set).

use super::{MAX_PRECISION, dense};
use crate::common::arena::ArenaVec;

/// The most hashes an explicit sketch holds at precisions 11 and above (1 KiB of payload).
pub const MAX_HASHES: usize = 128;

/// The most hashes an explicit sketch holds at precision `p`: [`MAX_HASHES`], or fewer at
/// precisions below 11 so that the explicit form is never longer than the dense one.
pub fn capacity(p: u8) -> usize {
    debug_assert!(p <= MAX_PRECISION);
    MAX_HASHES.min(dense::packed_len(p) / 8)
}

/// Inserts `hash` into a strictly increasing list, unless it is there already.
#[inline]
pub fn insert(hashes: &mut ArenaVec<u64>, hash: u64) {
    if let Err(at) = hashes.binary_search(&hash) {
        hashes.insert(at, hash);
    }
}

/// Merges a strictly increasing list into another, keeping it strictly increasing.
pub fn merge(hashes: &mut ArenaVec<u64>, other: &[u64]) {
    let arena = *hashes.allocator();
    let mine = std::mem::replace(hashes, arena.vec());
    let mut merged = ArenaVec::with_capacity_in(mine.len() + other.len(), arena);
    let (mut i, mut j) = (0, 0);
    while i < mine.len() && j < other.len() {
        let (a, b) = (mine[i], other[j]);
        merged.push(a.min(b));
        i += usize::from(a <= b);
        j += usize::from(b <= a);
    }
    merged.extend_from_slice(&mine[i..]);
    merged.extend_from_slice(&other[j..]);
    *hashes = merged;
}
