//! HyperLogLog sketch (pure Rust, no PostgreSQL): approximate distinct counting in about 5,900
//! bytes at the default precision, exact for small sets.
//!
//! # What a sketch holds
//!
//! The input is a stream of 64-bit hashes (the SQL side hashes values with
//! [`crate::common::hash`]). At precision `p` (4 to 18, default 14) the sketch has `m = 2^p`
//! registers; each hash picks a register and offers it a *rank*:
//!
//! - register index: the **top** `p` bits of the hash, `hash >> (64 - p)`;
//! - rank: 1 + the number of leading zeros of the remaining `64 - p` bits (`hash << p`),
//!   or `65 - p` when they are all zero. Ranks therefore run from 1 to `65 - p` (61 at p = 4)
//!   and fit a 6-bit register.
//!
//! XXH3 mixes every output bit, so any bits would do; the top bits are used so that lowering
//! the precision ("folding", below) only moves index bits into the rank field. A register keeps
//! the highest rank offered; 0 means no hash reached it.
//!
//! # Forms
//!
//! - **Empty**: no hash seen.
//! - **Explicit**: the hashes themselves, for sets of at most 128 (fewer below precision 11,
//!   [`explicit::capacity`], so that this form is never longer than the dense one). Counted
//!   exactly: only two values with the same 64-bit hash would be counted once.
//! - **Sparse**: the set of *tokens* of the hashes seen, at the sparse precision
//!   `p' = 32` ([`RICE_SPARSE_PRECISION`]; 26, [`SPARSE_PRECISION`], in values of versions 1
//!   and 2 and the unions they take part in). A token is the top `p'` bits of the hash (its
//!   index at `p'`) plus, only when the low `p' - 18` bits of that index are all zero, its rank
//!   at `p'` (1 to 65 - p'). For any `p <= 18` the dense register of a hash follows from its
//!   token: index bits `p..p'` are the start of the rank field at `p`, and only when they are
//!   all zero is the rank at `p'` needed; likewise its 26-bit token follows from its 32-bit
//!   one, so a union with a 26-bit set folds the other side's tokens to 26 bits. Equal indexes
//!   keep the higher rank. Sets are counted by linear counting over `2^p'` buckets: at 32 bits
//!   two of `n` values share a token with probability about n²/2^33 (1,000 values: 1 set in
//!   8,600), so counts in the sparse range come out exact in practice (at 26 bits, n²/2^27:
//!   1 set of 1,000 values in 134 was one short).
//! - **Dense**: `2^p` registers, one byte each in memory. On disk each register by its Huffman
//!   code over the register values (format version 4: about 2.9 bits a register for random
//!   data, whatever n), or 4 bits each when that is shorter (version 3: offsets from the
//!   smallest register, with an escape byte for the few 15 or more above it; below p = 7, and
//!   for registers of unusual spread); 6 bits each in versions 1 and 2. While the sketch has
//!   only seen insertions since it turned dense, also a martingale count (below).
//!
//! **Canonical form.** A non-empty sketch is explicit while it holds at most
//! `explicit::capacity(p)` hashes; beyond that it is sparse exactly while it holds at most
//! `2^p/8` tokens of 32 bits (2,048 at p = 14, about 5,800 bytes in Rice codes, what a dense
//! sketch of random data takes in Huffman codes from a few `m` values up). A set of 26-bit
//! tokens (read from versions 1 and 2, or a union with one) keeps the rule of those versions:
//! sparse exactly when its sparse encoding (form 1) is no longer than the 6-bit dense form at
//! the sketch's precision. (A sketch read from format version 1, which had no explicit form,
//! holds tokens only, and stays sparse or dense.) Adding hashes never lowers the number of
//! tokens, nor shortens the form-1 encoding (a new token splits one gap in two: the larger
//! part is at least half the old gap, so its varint is at most one byte shorter, and the other
//! part takes at least one byte; a higher rank changes no length), so the form is a function
//! of the set of hashes seen (and of whether a 26-bit set took part):
//! every order of insertions and unions of the same hashes gives the same form and registers
//! (the martingale count of a dense sketch built by insertions depends on their order, its
//! expectation does not), and a union is never sparse when one of its inputs is dense.
//!
//! # Union and precision
//!
//! A union takes the per-register (per-token) maximum. Inputs of different precisions are
//! first folded to the smaller one; folding a dense sketch from `p` to `q` maps register `i` to
//! `i >> (p - q)` with the dropped index bits prepended to the rank field, which gives exactly
//! the sketch that would have been built at `q` from the same hashes. Union is therefore
//! commutative, associative and idempotent on the registers, and never fails.
//!
//! The martingale count of a union: two dense sketches may share values in ways their registers
//! cannot tell, so their union has none (nor has a fold). When one side is explicit or sparse,
//! its hashes or tokens are replayed into the other side's registers as insertions, in an order
//! drawn from their bits (see `replay_key`), so a dense side's count goes on; a union of small
//! sketches that turns dense starts a count from its tokens, like a sketch built directly. A
//! union with an empty sketch is the other sketch, count included. Unions are commutative byte
//! for byte; associative only on the registers (the count depends on when the union turned
//! dense). So the aggregates give the martingale estimate when one state took every row or
//! the partial states were small, and the registers' estimate when parallel workers or Citus
//! shards combine dense partial states.
//!
//! # Estimators
//!
//! - Dense, built by insertions: the martingale (HIP) count (Ting 2014; Cohen 2015; Ertl
//!   2017 §5; see `hip.rs`). Each insertion that raises a register adds `1/q`, where
//!   `q = (1/m)·Σ_i 2^-r_i` (a register at the largest rank counts 0) is the probability that
//!   a new distinct hash raises one. It starts when the sketch turns dense, from the sparse
//!   count, and needs the registers' history, so it lives only in sketches that saw nothing but
//!   insertions since (and unions with small sketches, whose values are replayed as insertions:
//!   see above). Relative standard error about `√(ln 2/m) = 0.833/√m`: 80 % of the
//!   registers' estimate below, in 8 more bytes.
//! - Dense otherwise (unions of dense sketches, folds, values of earlier versions): Ertl's improved raw estimator ("New cardinality estimation algorithms for
//!   HyperLogLog sketches", arXiv:1702.01284, algorithm 6) on the register histogram
//!   `C_0..C_{q+1}` with `q = 64 - p`:
//!   `n = α∞·m² / (m·σ(C_0/m) + Σ_{k=1..q} C_k·2^-k + m·τ(1 - C_{q+1}/m)·2^-q)`,
//!   `α∞ = 1/(2 ln 2)`. It needs no empirical bias tables and no switch to linear counting, so
//!   there is no bias bump near `n = 2.5·m`. Relative standard error about `1.04/√m`.
//! - Explicit: the number of hashes, with an interval of zero width.
//! - Sparse: linear counting over the `m' = 2^p'` token buckets, `n = -m'·ln(1 - k/m')` for
//!   `k` tokens. Its relative standard error at `n` tokens is `√(m'(e^t - t - 1))/n` with
//!   `t = n/m'`: at p' = 32 under 0.001 % in the sparse range, so counts come out exact.
//!
//! An estimate is never below the number of distinct values the sketch proves (hashes, tokens,
//! or non-zero registers), never NaN, and capped at 2^64 (the number of distinct hashes).
//! [`Sketch::estimate_with_bounds`] gives a two-sided normal interval: `z·σ` around the
//! estimate, with `σ` the standard errors above and `z` from the confidence (Acklam's inverse
//! normal CDF); the lower bound is never below the proven count.
//!
//! # Binary format, versions 2 to 4 (little-endian where it matters)
//!
//! ```text
//! u8  format version: 4 for forms 7, 8 and 9, 3 for forms 5 and 6, 2 for forms 0, 1, 3 and 4
//!     (1 is read too)
//! u8  form: 0 empty, 1 sparse in 26-bit tokens, 2 dense in 6 bits (versions 1 and 2 only,
//!     read but no longer written), 3 explicit (3 and 4 only from version 2), 4 imported
//!     from postgresql-hll, 5 dense in 4 bits with a martingale count, 6 dense in 4 bits
//!     (5 and 6 only in version 3), 7 dense in Huffman codes with a martingale count,
//!     8 dense in Huffman codes, 9 sparse in 32-bit tokens (7, 8 and 9 only in version 4)
//! u8  precision p (4..=18)
//! u8  sparse precision p': 32 in form 9, 26 in every other form
//! payload, by form:
//!   empty:  nothing (the whole value is 4 bytes)
//!   explicit: 1 to capacity(p) hashes, u64 little-endian each, strictly increasing;
//!           capacity(p) = min(128, 3·2^p/32), the 6-bit dense payload length over 8
//!   sparse (form 1, tokens at p' = 26): one entry per token, by strictly increasing index;
//!           for each entry
//!             varint  gap = index - previous index - 1 (the previous index of the first
//!                     entry is -1), LEB128: 7 bits a byte, low bits first, high bit set
//!                     on all but the last byte, at most 4 bytes, no overlong encodings
//!             u8      rank at p' (1..=39), present only when index & 0xFF == 0
//!           at least one entry; the value is at most as long as the dense form 2 would be
//!   sparse (form 9, tokens at p' = 32):
//!             varint  n, the number of tokens (LEB128 as above), 1 to 2^p/8
//!             n codes, by strictly increasing index, as one bit string, most significant
//!                     bit first, zero bits to the end of its last byte (nothing after it):
//!                     gap = index - previous index - 1 (the previous index of the first
//!                     token is -1) in the Rice code of parameter k: gap >> k zero bits and
//!                     a one bit, then the k low bits of gap; then, only when
//!                     index & 0x3FFF == 0, the rank at p' (1..=33) in 6 bits. k is the
//!                     largest integer with 2^k·(n + 1) <= 2977044472 (2^32·ln 2, about the
//!                     best parameter for gaps of mean 2^32/(n + 1)); indexes below 2^32
//!   dense in 6 bits (form 2): 2^p registers of 6 bits, 3·2^p/4 bytes; register i is bits
//!           6i..6i+5 of the payload read as a little-endian bit string (4 registers per
//!           3 bytes: r0 | r1 << 6 | r2 << 12 | r3 << 18 as a 24-bit little-endian integer);
//!           each register at most 65 - p, at least one non-zero
//!   dense (form 6): 2^p registers in 4 bits
//!             u8      base: the smallest register
//!             2^(p-1) bytes of nibbles, register 2i in the low half of byte i, 2i+1 in the
//!                     high half: register - base, or 15 (an escape) when that is 15 or more
//!             u8      for each escape, by register: register - base - 15
//!           each register at most 65 - p, at least one non-zero, at least one equal to base
//!   dense with a martingale count (form 5):
//!           f64     the count, at least the number of non-zero registers, at most 2^64
//!           the payload of form 6
//!   dense in Huffman codes (form 8), only when shorter than form 6 would be for the same
//!   registers (see huffman.rs for the code's construction):
//!             u8      low: the smallest register
//!             u8      high: the largest register (at least 1, at most 65 - p)
//!           when low == high (every register equal), nothing more; else
//!             high - low + 1 code lengths of 5 bits, of the values low..=high, most
//!                     significant bit first, zero bits to the end of a byte: 0 for a value
//!                     no register holds, else its length in Huffman's code of the registers'
//!                     histogram (low and high are held: their lengths are not 0)
//!             3 varints (LEB128, as in the sparse form) the bytes of streams 0, 1 and 2
//!             4 streams, stream k coding registers k·2^p/4 to (k+1)·2^p/4 - 1 in order,
//!                     each by the canonical code of its value, most significant bit first,
//!                     zero bits to the end of its last byte; stream 3 is the rest
//!   dense in Huffman codes with a martingale count (form 7):
//!           f64     the count, as in form 5
//!           the payload of form 8
//! ```
//!
//! Huffman's code of a histogram is fixed by the format: the values that occur are leaves,
//! ordered by count and then by value; the two lightest trees are joined until one is left, a
//! leaf before a joined tree of equal weight and joined trees in the order they were made; a
//! value's code length is its leaf's depth (at most 25 for 2^18 registers). Codes are assigned
//! canonically, as in DEFLATE: by length, then by value, each the previous plus one, shifted
//! left by the difference in length, the first all zeros. A value whose registers are all
//! equal needs no code.
//!
//! Sizes: empty 4 bytes; up to 128 values 4 + 8·n bytes (explicit); 1,000 values about 2,950
//! bytes (sparse in 32-bit tokens, about 2.9 bytes a token; up to 2,048 values at p = 14,
//! about 5,800 bytes; 26-bit sets of earlier versions yield to the dense form at the 6-bit
//! dense length, about 5,400 values); dense at p = 14 about 2,600 bytes just past the sparse
//! form, 4,150 at 10^4 values and 5,850 to 5,950 from 5·10^4 up (8 more with a martingale count; the 4-bit layout takes 8,197 plus
//! about a dozen escapes), about 94,000 at p = 18. The longest valid value, 393,228 bytes, is a
//! crafted p = 18 sketch whose registers are all escapes but one, in the 4-bit form that
//! builds of version 3 wrote (this build writes it in Huffman codes, 32,798 bytes). The
//! decoder accepts only the canonical form, so equal sketches have identical bytes; the
//! allowances are a sparse value with few tokens, which a sketch read from version 1 can
//! produce, and values of earlier versions (forms 2, 5 and 6 when the Huffman layout would be
//! shorter), which are written back in the current form.
//!
//! Version 1 is version 2 without the explicit form: the same header (version byte 1) and the
//! same empty, sparse and dense payloads. Version 3 adds forms 5 and 6, the dense forms in
//! 4 bits, and no longer writes form 2; forms 0, 1, 3 and 4 are still written in version 2,
//! so values of those forms keep their bytes and earlier builds read them. Version 4 adds
//! forms 7 and 8, the dense forms in Huffman codes, and form 9, the sparse form in 32-bit
//! tokens, which new sketches take instead of form 1 (form 1 is still written for sets of
//! 26-bit tokens read from earlier values); a dense sketch whose 4-bit form is no longer is
//! still written in version 3, which builds of version 3 read. This build reads versions 1
//! to 4 and writes 2, 3 and 4. A header of a later version on the forms of an
//! earlier one, or of an earlier version on the forms of a later one, is refused.
//!
//! # Text format, version 1
//!
//! `hll1:` followed by the binary form in standard base64 (RFC 4648 alphabet `A-Z a-z 0-9 + /`,
//! `=` padding to a multiple of 4 characters, no line breaks or blanks; unused bits of the last
//! character must be zero). The `1` names this text encoding; the binary version is inside.
//! The empty sketch at p = 14 is `hll1:AgAOGg==` (`hll1:AQAOGg==` in binary version 1). Parsing
//! is strict: anything that
//! [`Sketch::to_text`] would not have written is refused.

use crate::common::arena::{Arena, ArenaVec, CloneIn};
use crate::common::error::{Error, ErrorKind, Result};
use hip::Hip;
use postgresql_hll::PgHll;
use std::borrow::Cow;
use std::fmt;

mod codec;
mod dense;
mod estimate;
mod explicit;
mod hip;
mod huffman;
pub mod postgresql_hll;
mod sparse;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use codec::base64_detail;
pub use codec::{
    FORMAT_VERSION, MAX_ENCODED_LEN, NIBBLE_FORMAT_VERSION, PLAIN_FORMAT_VERSION, TEXT_PREFIX,
};
pub use estimate::{normal_quantile, z_for_confidence};

pub const MIN_PRECISION: u8 = 4;
pub const MAX_PRECISION: u8 = 18;
pub const DEFAULT_PRECISION: u8 = 14;
/// The sparse precision byte of the header of every form but 9, and the index bits of the
/// tokens of versions 1 and 2 (form 1; see the module documentation).
pub const SPARSE_PRECISION: u8 = sparse::LEGACY_PRECISION;
/// Index bits of the tokens of the sparse form this build writes (form 9), and its header's
/// sparse precision byte.
pub const RICE_SPARSE_PRECISION: u8 = sparse::PRECISION;

/// The representation a sketch is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Empty,
    Explicit,
    Sparse,
    Dense,
    /// Imported from postgresql-hll: its registers or hashes and its hash family.
    PostgresqlHll,
}

impl Form {
    /// Lower-case name, as `hll_info` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Form::Empty => "empty",
            Form::Explicit => "explicit",
            Form::Sparse => "sparse",
            Form::Dense => "dense",
            Form::PostgresqlHll => "postgresql-hll",
        }
    }
}

/// A point estimate with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Checks a precision given by a user (an SQL integer).
pub fn checked_precision(precision: i64) -> Result<u8> {
    if (MIN_PRECISION as i64..=MAX_PRECISION as i64).contains(&precision) {
        Ok(precision as u8)
    } else {
        Err(Error::new(ErrorKind::InvalidParameter, format!("hll precision {precision} is out of range")).with_detail(
            format!("The precision must be between {MIN_PRECISION} and {MAX_PRECISION} (default {DEFAULT_PRECISION})."),
        ))
    }
}

/// A HyperLogLog sketch, also usable as the aggregate transition state: it starts empty and
/// small, takes hashes cheaply in every form, and is canonicalised lazily (see [`Sketch::compact`]).
#[derive(Clone)]
pub struct Sketch {
    precision: u8,
    repr: Repr,
    /// The martingale count of a dense sketch that has only seen insertions since it turned
    /// dense; `None` in every other form and after a union or a fold.
    hip: Option<Hip>,
}

// An explicit tag byte: `Some(dense)` of an aggregate state is then one comparison on the
// aggregates' hot path (with the layout's niches it took two).
#[derive(Clone)]
#[repr(u8)]
enum Repr {
    /// Empty, or the strictly increasing hashes of a small set.
    Explicit(ArenaVec<u64>),
    /// Tokens: no longer the hashes themselves (see the module documentation).
    Sparse(sparse::SparseSet),
    /// `2^precision` registers, one byte each.
    Dense(ArenaVec<u8>),
    /// A postgresql-hll value (precision = its log2m): another hash family.
    Foreign(PgHll),
}

impl Repr {
    /// Where this sketch's buffers live; new ones go there too.
    fn arena(&self) -> Arena {
        match self {
            Repr::Explicit(hashes) => *hashes.allocator(),
            Repr::Sparse(set) => set.arena(),
            Repr::Dense(registers) => *registers.allocator(),
            Repr::Foreign(value) => value.arena(),
        }
    }
}

/// The `2^precision` registers of a dense sketch, borrowed for updates.
pub struct DenseRegisters<'a> {
    registers: &'a mut [u8],
    precision: u8,
    hip: &'a mut Option<Hip>,
}

impl DenseRegisters<'_> {
    /// Offers one hash to its register: the aggregates' innermost step.
    #[inline]
    pub fn add_hash(&mut self, hash: u64) {
        let index = (hash >> (64 - self.precision)) as usize;
        let rank = dense::rank(hash, self.precision);
        // SAFETY: a dense sketch has exactly 2^precision registers (every constructor of
        // `Repr::Dense` makes it so, and nothing resizes it), and `index` has `precision` bits.
        let register = unsafe { self.registers.get_unchecked_mut(index) };
        if *register < rank {
            if let Some(hip) = self.hip {
                hip.record(*register, rank, self.precision);
            }
            *register = rank;
        }
    }
}

impl DenseRegisters<'_> {
    /// Offers `rank` to register `index`, as an insertion would.
    #[inline]
    fn offer(&mut self, index: usize, rank: u8) {
        if let Some(register) = self.registers.get_mut(index)
            && *register < rank
        {
            if let Some(hip) = self.hip {
                hip.record(*register, rank, self.precision);
            }
            *register = rank;
        }
    }

    /// Inserts the hashes of an explicit sketch, in replay order when there is a count to keep.
    fn replay_hashes(&mut self, hashes: &[u64], arena: Arena) {
        if self.hip.is_none() {
            hashes.iter().for_each(|&hash| self.add_hash(hash));
            return;
        }
        let mut order = arena.vec_from(hashes);
        order.sort_unstable_by_key(|&hash| replay_key(hash));
        order.iter().for_each(|&hash| self.add_hash(hash));
    }

    /// Inserts the tokens of a sparse sketch (each one the register update of its hashes), in
    /// replay order when there is a count to keep.
    fn replay_tokens(&mut self, set: &sparse::SparseSet, arena: Arena) {
        if self.hip.is_none() {
            set.scatter_into(self.registers, self.precision);
            return;
        }
        let mut order = ArenaVec::with_capacity_in(set.all_tokens_len(), arena);
        order.extend(set.all_tokens());
        order.sort_unstable_by_key(|&token| replay_key(token));
        for &token in order.iter() {
            let (index, rank) = sparse::register(token, set.precision(), self.precision);
            self.offer(index, rank);
        }
    }
}

/// A dense side of a union at precision `p`: `(registers, their precision, their count)`
/// folded to `p`, then the other side replayed into it by `replay`.
fn replayed_into(
    (theirs, their_precision, their_hip): (&[u8], u8, Option<Hip>),
    p: u8,
    arena: Arena,
    replay: impl FnOnce(&mut DenseRegisters<'_>),
) -> (Repr, Option<Hip>) {
    let mut registers = arena.vec_filled(0u8, 1 << p);
    dense::merge_folded(&mut registers, p, theirs, their_precision);
    let mut hip = their_hip;
    replay(&mut DenseRegisters {
        registers: &mut registers,
        precision: p,
        hip: &mut hip,
    });
    (Repr::Dense(registers), hip)
}

/// The order in which a union replays hashes or tokens into a martingale count: by a mix of
/// their bits (MurmurHash3's finalizer). In the order of their values the registers would be
/// offered ranks index by index, and the count is unbiased only when each new value looks
/// uniformly random given the registers (the order DataSketches' unions replay coupons in is
/// likewise a hash table's).
#[inline]
fn replay_key(x: u64) -> u64 {
    let mut z = x ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

impl Default for Sketch {
    /// An empty sketch at the default precision.
    fn default() -> Self {
        Sketch {
            precision: DEFAULT_PRECISION,
            repr: Repr::Explicit(Arena::HEAP.vec()),
            hip: None,
        }
    }
}

impl CloneIn for Sketch {
    fn clone_in(&self, arena: Arena) -> Sketch {
        let repr = match &self.repr {
            Repr::Explicit(hashes) => Repr::Explicit(arena.vec_from(hashes)),
            Repr::Sparse(set) => Repr::Sparse(set.clone_in(arena)),
            Repr::Dense(registers) => Repr::Dense(arena.vec_from(registers)),
            Repr::Foreign(value) => Repr::Foreign(value.clone_in(arena)),
        };
        Sketch {
            precision: self.precision,
            repr,
            hip: self.hip,
        }
    }
}

impl Sketch {
    /// An empty sketch; errors when `precision` is outside 4..=18. Takes any integer type, so
    /// an SQL `integer` is checked as it is, never truncated first.
    pub fn new(precision: impl Into<i64>) -> Result<Self> {
        Sketch::new_in(precision, Arena::HEAP)
    }

    /// An empty sketch whose buffers live in `arena`.
    pub fn new_in(precision: impl Into<i64>, arena: Arena) -> Result<Self> {
        let precision = checked_precision(precision.into())?;
        Ok(Sketch {
            precision,
            repr: Repr::Explicit(arena.vec()),
            hip: None,
        })
    }

    /// Where this sketch's buffers live.
    pub fn arena(&self) -> Arena {
        self.repr.arena()
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// The canonical form (pending insertions included).
    pub fn form(&self) -> Form {
        match &self.normalized().repr {
            Repr::Explicit(hashes) if hashes.is_empty() => Form::Empty,
            Repr::Explicit(_) => Form::Explicit,
            Repr::Sparse(_) => Form::Sparse,
            Repr::Dense(_) => Form::Dense,
            Repr::Foreign(_) => Form::PostgresqlHll,
        }
    }

    /// True for a sketch imported from postgresql-hll (another hash family).
    pub fn is_foreign(&self) -> bool {
        matches!(self.repr, Repr::Foreign(_))
    }

    /// A postgresql-hll value (its storage format, schema version 1) as a sketch: an EMPTY
    /// one as the empty sketch at its log2m (at least 4), anything else as an imported
    /// sketch that counts as postgresql-hll did (see [`postgresql_hll`]).
    pub fn from_postgresql_hll(bytes: &[u8], arena: Arena) -> Result<Sketch> {
        match PgHll::import(bytes, arena)? {
            Some(value) => Ok(Sketch {
                precision: value.log2m(),
                repr: Repr::Foreign(value),
                hip: None,
            }),
            None => {
                let log2m = bytes.get(1).map_or(DEFAULT_PRECISION, |p| p & 0x1f);
                Sketch::new_in(log2m.clamp(MIN_PRECISION, MAX_PRECISION), arena)
            }
        }
    }

    /// The postgresql-hll bytes of an imported sketch, or of an empty sketch (EMPTY with
    /// postgresql-hll's default parameters at this precision, when it has one); None for a
    /// native sketch with values.
    pub fn to_postgresql_hll(&self) -> Option<Vec<u8>> {
        match &self.repr {
            Repr::Explicit(hashes)
                if hashes.is_empty() && self.precision <= postgresql_hll::MAX_LOG2M =>
            {
                Some(postgresql_hll::empty_with_defaults(self.precision).to_vec())
            }
            Repr::Foreign(value) => {
                let mut out = Vec::new();
                value.encode_into(&mut out);
                Some(out)
            }
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(&self.repr, Repr::Explicit(hashes) if hashes.is_empty())
    }

    /// Adds one hashed value. Cheap in every form: dense updates one register, sparse appends
    /// to a small buffer that is sorted into the token list in batches, explicit inserts into a
    /// list of at most 128 hashes.
    #[inline]
    pub fn add_hash(&mut self, hash: u64) {
        match &mut self.repr {
            Repr::Explicit(hashes) => {
                explicit::insert(hashes, hash);
                if hashes.len() > explicit::capacity(self.precision) {
                    self.compact();
                }
            }
            Repr::Dense(registers) => DenseRegisters {
                registers,
                precision: self.precision,
                hip: &mut self.hip,
            }
            .add_hash(hash),
            Repr::Sparse(set) => {
                if set.push_hash(hash) {
                    self.compact();
                }
            }
            // Our hashes mean nothing in postgresql-hll's family; the SQL functions refuse to
            // add to an imported sketch before they get here (and aggregates never hold one).
            Repr::Foreign(_) => debug_assert!(false, "add_hash on an imported sketch"),
        }
    }

    /// The registers of a dense sketch in an aggregate state (`None` before the first input),
    /// for the aggregates' fast path. One pattern, so that the check compiles to a single
    /// comparison of the layout's tag.
    #[inline]
    pub fn dense_registers_mut(state: &mut Option<Sketch>) -> Option<DenseRegisters<'_>> {
        match state {
            Some(Sketch {
                precision,
                repr: Repr::Dense(registers),
                hip,
            }) => {
                debug_assert_eq!(registers.len(), 1 << *precision);
                Some(DenseRegisters {
                    registers,
                    precision: *precision,
                    hip,
                })
            }
            _ => None,
        }
    }

    /// Brings the in-memory state to its canonical form: turns an explicit sketch with more
    /// hashes than its precision allows into tokens, sorts pending sparse tokens into the token
    /// list and turns the sketch dense if that is smaller. Observable behaviour does not
    /// change; call it before keeping a state for long (e.g. in a serial function).
    pub fn compact(&mut self) {
        if let Repr::Explicit(hashes) = &self.repr
            && hashes.len() > explicit::capacity(self.precision)
        {
            self.repr = Repr::Sparse(sparse::SparseSet::from_hashes(
                hashes,
                *hashes.allocator(),
                sparse::PRECISION,
            ));
        }
        if let Repr::Sparse(set) = &mut self.repr {
            set.flush();
            if set.outgrows(
                self.precision,
                codec::HEADER_LEN,
                codec::dense_encoded_len(self.precision),
            ) {
                let mut registers = set.arena().vec_filled(0u8, 1 << self.precision);
                set.scatter_into(&mut registers, self.precision);
                // The martingale starts here, from the tokens' count (see hip.rs): a union
                // that turns dense starts it too, as its tokens are those of the union.
                let start = estimate::sparse(set.len(), set.precision(), 0.0).estimate;
                self.hip = Some(Hip::start(&registers, self.precision, start));
                self.repr = Repr::Dense(registers);
            }
        }
    }

    /// The sketch in canonical form, copied only when that takes work.
    fn normalized(&self) -> Cow<'_, Sketch> {
        match &self.repr {
            Repr::Sparse(set) if set.has_pending() => {
                let mut copy = self.clone();
                copy.compact();
                Cow::Owned(copy)
            }
            _ => Cow::Borrowed(self),
        }
    }

    /// Merges `other` into `self` (set union). When the precisions differ, the result has the
    /// smaller one, except that an empty sketch takes no part in that: it holds no hash, so it
    /// is neutral whatever its precision (an aggregate over zero rows cannot know the precision
    /// it was asked for, and must not fold later unions down). Two empty sketches give the empty
    /// sketch of the smaller precision. Fails only when a sketch imported from postgresql-hll
    /// meets a native one (their hashes do not mix) or one with other parameters.
    pub fn merge_from(&mut self, other: &Sketch) -> Result<()> {
        if other.is_empty() && !self.is_empty() {
            return Ok(());
        }
        if self.is_empty() && !other.is_empty() {
            *self = other.clone_in(self.arena());
            return Ok(());
        }
        match (&mut self.repr, &other.repr) {
            (Repr::Foreign(mine), Repr::Foreign(theirs)) => return mine.merge_from(theirs),
            (Repr::Foreign(_), _) | (_, Repr::Foreign(_)) => return Err(mixed_families()),
            _ => {}
        }
        // Canonical forms first: a sketch with pending tokens that make it dense is dense (with
        // the count it starts then), as its bytes say, so that a union of states in memory and
        // one of their bytes agree.
        self.compact();
        let other = other.normalized();
        let other = other.as_ref();
        let arena = self.arena();
        if other.precision < self.precision {
            if matches!(self.repr, Repr::Dense(_)) {
                self.fold_in_place(other.precision);
            } else {
                // Hashes and tokens do not depend on the precision: the compaction after the
                // union sees the union's tokens, whichever side came first.
                self.precision = other.precision;
            }
        }
        let p = self.precision;
        // Which martingale count the union keeps (see the module documentation): a dense
        // side's, when the other side holds hashes or tokens that can be replayed into it as
        // insertions; a union that turns dense in `compact` starts one from its tokens; two
        // dense sides, whose values may overlap in ways their registers cannot tell, none.
        let their_hip = if other.precision == p {
            other.hip
        } else {
            None
        };
        match (&mut self.repr, &other.repr) {
            (Repr::Explicit(mine), Repr::Explicit(theirs)) => {
                explicit::merge(mine, theirs);
                self.compact();
            }
            (Repr::Sparse(mine), Repr::Explicit(theirs)) => {
                for &hash in theirs {
                    mine.push_hash(hash);
                }
                self.compact();
            }
            (Repr::Dense(registers), Repr::Explicit(theirs)) => DenseRegisters {
                registers,
                precision: p,
                hip: &mut self.hip,
            }
            .replay_hashes(theirs, arena),
            (Repr::Explicit(mine), Repr::Dense(theirs)) => {
                let start = (theirs.as_slice(), other.precision, their_hip);
                (self.repr, self.hip) =
                    replayed_into(start, p, arena, |r| r.replay_hashes(mine, arena));
            }
            (Repr::Explicit(mine), Repr::Sparse(theirs)) => {
                let mut set = sparse::SparseSet::from_hashes(mine, arena, theirs.precision());
                set.merge_from(theirs);
                self.repr = Repr::Sparse(set);
                self.compact();
            }
            (Repr::Dense(registers), Repr::Dense(theirs)) => {
                dense::merge_folded(registers, p, theirs, other.precision);
                self.hip = None;
            }
            (Repr::Dense(registers), Repr::Sparse(theirs)) => DenseRegisters {
                registers,
                precision: p,
                hip: &mut self.hip,
            }
            .replay_tokens(theirs, arena),
            (Repr::Sparse(mine), Repr::Dense(theirs)) => {
                let start = (theirs.as_slice(), other.precision, their_hip);
                (self.repr, self.hip) =
                    replayed_into(start, p, arena, |r| r.replay_tokens(mine, arena));
            }
            (Repr::Sparse(mine), Repr::Sparse(theirs)) => {
                mine.merge_from(theirs);
                self.compact();
            }
            (Repr::Foreign(_), _) | (_, Repr::Foreign(_)) => return Err(mixed_families()),
        }
        Ok(())
    }

    /// The union of two sketches, at the smaller precision of the two.
    pub fn union(&self, other: &Sketch) -> Result<Sketch> {
        // Start from the one that needs no folding, so the copy is the cheap part (an empty
        // side is neutral, see merge_from).
        let (mut out, rest) =
            if other.is_empty() || (!self.is_empty() && self.precision <= other.precision) {
                (self.clone(), other)
            } else {
                (other.clone(), self)
            };
        out.merge_from(rest)?;
        Ok(out)
    }

    /// The union for replicated state (CRDT merges): the registers' union without a martingale
    /// count. A union keeps a count that depends on the order of unions, so replicas that merged
    /// the same states in different orders would hold different bytes (and counts); without it
    /// the result is a function of the set of hashes alone: commutative, associative and
    /// idempotent byte for byte.
    pub fn crdt_merge(&self, other: &Sketch) -> Result<Sketch> {
        Ok(self.union(other)?.without_martingale())
    }

    /// This sketch at a lower (or the same) precision: what building it at `precision` from the
    /// same hashes would have given. Raising the precision is an error (the bits are gone).
    pub fn fold_to(&self, precision: impl Into<i64>) -> Result<Sketch> {
        let precision = checked_precision(precision.into())?;
        if self.is_foreign() && precision != self.precision {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("cannot change the precision of an hll imported from postgresql-hll (log2m {}) to {precision}", self.precision),
            )
            .with_detail("Its registers keep postgresql-hll's layout; store it in a column of the same precision or without one."));
        }
        if precision > self.precision {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("cannot raise the precision of an hll from {} to {precision}", self.precision),
            )
            .with_detail(
                "A sketch keeps nothing beyond its precision; fold to a lower precision or rebuild it from the data.",
            ));
        }
        let mut out = self.clone();
        out.fold_in_place(precision);
        Ok(out)
    }

    fn fold_in_place(&mut self, precision: u8) {
        debug_assert!(precision <= self.precision);
        if precision == self.precision {
            return;
        }
        let from = self.precision;
        self.precision = precision;
        match &mut self.repr {
            Repr::Dense(registers) => {
                let mut folded = registers.allocator().vec_filled(0u8, 1 << precision);
                dense::merge_folded(&mut folded, precision, registers, from);
                *registers = folded;
            }
            // Hashes and tokens do not depend on the precision; only the thresholds between
            // the forms do.
            Repr::Explicit(_) | Repr::Sparse(_) => self.compact(),
            Repr::Foreign(_) => {}
        }
        // The count saw the changes of the registers at the old precision, not the new one.
        self.hip = None;
    }

    /// The estimated number of distinct values (see the module documentation).
    pub fn estimate(&self) -> f64 {
        self.estimate_at(0.0).estimate
    }

    /// The estimate rounded to a whole number; an overflow error above int8's range (only a
    /// forged sketch gets there).
    pub fn count(&self) -> Result<i64> {
        let estimate = self.estimate().round();
        // 2^63 is the first f64 that does not fit in i64.
        if estimate >= 9_223_372_036_854_775_808.0 {
            return Err(Error::new(
                ErrorKind::Overflow,
                "hll estimate is out of range for type bigint",
            ));
        }
        Ok(estimate as i64)
    }

    /// The estimate with a two-sided interval at `confidence` (0 <= confidence < 1, e.g. 0.95).
    pub fn estimate_with_bounds(&self, confidence: f64) -> Result<Estimate> {
        Ok(self.estimate_at(z_for_confidence(confidence)?))
    }

    fn estimate_at(&self, z: f64) -> Estimate {
        let sketch = self.normalized();
        match &sketch.repr {
            Repr::Explicit(hashes) => estimate::exact(hashes.len()),
            Repr::Sparse(set) => estimate::sparse(set.len(), set.precision(), z),
            Repr::Dense(registers) => match &sketch.hip {
                Some(hip) => estimate::martingale(hip.count(), registers, sketch.precision, z),
                None => estimate::dense(&dense::histogram(registers), sketch.precision, z),
            },
            Repr::Foreign(value) if value.is_explicit() => estimate::exact(value.proven()),
            Repr::Foreign(value) => {
                let estimate = value.estimate();
                let margin = z * estimate::dense_relative_error(sketch.precision) * estimate;
                Estimate {
                    estimate,
                    lower: (estimate - margin).max(0.0),
                    upper: estimate + margin,
                }
            }
        }
    }

    /// Relative standard error of a dense sketch at this precision: `√(ln 2/m)` while it
    /// keeps a martingale count, `1.04/√m` otherwise.
    pub fn relative_standard_error(&self) -> f64 {
        if self.hip.is_some() {
            estimate::martingale_relative_error(self.precision)
        } else {
            estimate::dense_relative_error(self.precision)
        }
    }

    /// True when the estimate is the martingale count (a dense sketch that has only seen
    /// insertions since it turned dense).
    pub fn has_martingale(&self) -> bool {
        self.hip.is_some()
    }

    /// The same sketch with its martingale count dropped: the registers' estimate, as after a
    /// union (replicated state, `crdt_merge`; tests that compare unions and direct builds).
    pub fn without_martingale(&self) -> Sketch {
        let mut out = self.clone();
        // Pending tokens that turn it dense would start a count when compacted.
        out.compact();
        out.hip = None;
        out
    }

    /// Bytes of heap memory the in-memory state holds (for aggregate size hints).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Sketch>()
            + match &self.repr {
                Repr::Explicit(hashes) => hashes.capacity() * std::mem::size_of::<u64>(),
                Repr::Sparse(set) => set.memory_bytes(),
                Repr::Dense(registers) => registers.capacity(),
                Repr::Foreign(value) => value.memory_bytes(),
            }
    }

    /// Builds a sketch from hashes; a convenience for tests and callers holding a batch.
    pub fn from_hashes(
        precision: impl Into<i64>,
        hashes: impl IntoIterator<Item = u64>,
    ) -> Result<Sketch> {
        let mut sketch = Sketch::new(precision)?;
        for hash in hashes {
            sketch.add_hash(hash);
        }
        Ok(sketch)
    }
}

/// Equal when they hold the same canonical state (and so encode to the same bytes).
impl PartialEq for Sketch {
    fn eq(&self, other: &Self) -> bool {
        if self.precision != other.precision {
            return false;
        }
        let (a, b) = (self.normalized(), other.normalized());
        match (&a.repr, &b.repr) {
            (Repr::Explicit(x), Repr::Explicit(y)) => x[..] == y[..],
            (Repr::Sparse(x), Repr::Sparse(y)) => x.tokens() == y.tokens(),
            (Repr::Dense(x), Repr::Dense(y)) => x[..] == y[..] && a.hip == b.hip,
            (Repr::Foreign(x), Repr::Foreign(y)) => x == y,
            _ => false,
        }
    }
}

impl Eq for Sketch {}

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sketch = self.normalized();
        let mut out = f.debug_struct("Sketch");
        out.field("precision", &sketch.precision)
            .field("form", &sketch.form());
        match &sketch.repr {
            Repr::Explicit(hashes) => out.field("hashes", &hashes.len()),
            Repr::Sparse(set) => out.field("tokens", &set.len()),
            Repr::Dense(registers) => out.field(
                "nonzero_registers",
                &registers.iter().filter(|&&r| r != 0).count(),
            ),
            Repr::Foreign(value) => out.field("postgresql_hll", value),
        };
        out.field("estimate", &sketch.estimate()).finish()
    }
}

/// The error for a union of an imported postgresql-hll sketch with a native one.
fn mixed_families() -> Error {
    Error::new(
        ErrorKind::HashFamilyMismatch,
        "cannot merge an hll imported from postgresql-hll with a native hll",
    )
    .with_detail(
        "An imported sketch keeps postgresql-hll's hash family (MurmurHash3 of hll_hash_*, register index in the low bits), which native sketches do not share: their union would count every value twice. Union imported sketches only with each other, or rebuild the sketch from the raw values with distcount.hll_agg.",
    )
}
