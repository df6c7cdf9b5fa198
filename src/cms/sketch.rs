//! Count-Min sketch with a mergeable heavy-hitter list (pure Rust, no PostgreSQL).
//!
//! # What it answers
//!
//! A sketch holds `depth` rows of `width` signed 64-bit counters, the total weight `N` of all
//! updates, and beside them a list of at most `heavy` candidate keys (SpaceSaving, see
//! [`heavy`]). It answers "how often did key X occur?" for any X ([`Sketch::bounds`]) and "which
//! keys occur most?" ([`Sketch::topk`]), merges exactly with other sketches of the same
//! dimensions, and in linear mode subtracts them (sliding windows).
//!
//! # Dimensions
//!
//! From the user's `epsilon` (error as a fraction of N) and `delta` (failure probability), both in
//! (0, 1), following Cormode and Muthukrishnan:
//!
//! - `width = ⌈e / epsilon⌉`, computed as one IEEE division and a ceiling;
//! - `depth = ⌈ln(1 / delta)⌉`, computed without `ln` (whose last bit differs between C
//!   libraries) as the smallest `d ≥ 1` for which `delta · e · e · … (d factors)` reaches 1,
//!   multiplying from the left in IEEE doubles. Both are exact IEEE operations, so every CPU
//!   derives the same dimensions from the same `(epsilon, delta)`, which the decoder checks.
//!
//! Defaults: epsilon 0.001, delta 0.01, giving 2719 × 5 counters. Counters are i64 in memory, and
//! dimensions needing more than 64 MiB of them are refused.
//!
//! # Hashing of rows (part of the on-disk contract)
//!
//! A key is hashed once, with [`hash_bytes`] (XXH3-64, seed 0) over its canonical bytes. The
//! column of the key in row `j` (0-based) is the `(j + 1)`-th output of SplitMix64 seeded with
//! that hash, reduced to `[0, width)` by a multiply-high:
//!
//! ```text
//! z = hash + (j + 1) · 0x9E3779B97F4A7C15            (wrapping u64)
//! z = (z ^ (z >> 30)) · 0xBF58476D1CE4E5B9
//! z = (z ^ (z >> 27)) · 0x94D049BB133111EB
//! z =  z ^ (z >> 31)
//! column = (z · width) >> 64                           (as u128)
//! ```
//!
//! Unlike Kirsch–Mitzenmacher `h1 + j·h2`, no key sees all its rows collapse onto one column when
//! `h2 ≡ 0 (mod width)`. Two keys with the same 64-bit hash share every counter; that is the one
//! collision the sketch cannot tell apart (probability about n²/2⁶⁵ for n distinct keys).
//!
//! # Modes and what the bounds mean
//!
//! - **linear** (default): every update adds its weight to one counter per row; weights may be
//!   negative and whole sketches may be subtracted. Every row then sums exactly to `N`. The
//!   estimate is the minimum over the rows. The guarantees below assume a *strict turnstile*:
//!   every key's net count is ≥ 0 when queried (true for windows made by subtracting an earlier
//!   part of the same stream, and for deletions of rows that were counted). If a key's net count
//!   goes negative, a counter it shares can be pulled below another key's truth and that key's
//!   estimate can undercount; the sketch cannot detect this in general. A negative counter does
//!   prove it ([`Sketch::has_negative_counters`]), since under the premise every counter is a
//!   sum of non-negative counts.
//!   Keys that truly go negative (net flows) need a Count sketch, which this is not.
//! - **conservative** (Estan–Varghese): an update of weight `c > 0` raises each of the key's
//!   counters to at most `min + c`. Overestimates are about halved; weights must be positive;
//!   subtraction is refused; the counters depend on the order of updates (the bounds do not).
//!
//! In both cases (under the strict-turnstile premise in linear mode), for a key with true count
//! `f` and estimate `f̂`:
//!
//! - `f ≤ f̂` always (the upper bound is deterministic);
//! - `f̂ ≤ f + ⌈ε'·N⌉` with probability ≥ 1 − δ', where `ε' = e / width ≤ epsilon` and
//!   `δ' = e^(−depth) ≤ delta` are the guarantees the chosen dimensions actually deliver. So
//!   [`Sketch::bounds`] reports `lower = max(0, f̂ − ⌈ε'N⌉)` (probabilistic) and `upper = f̂`.
//!
//! Overflow of any counter, of `N` or of a heavy count is an [`ErrorKind::Overflow`] error that
//! leaves the sketch as it was: updates and merges are all-or-nothing, never a wrap.
//!
//! # Merge, subtract and order
//!
//! Sketches merge when width, depth and mode are equal (the hashing depends on nothing else).
//! Counters and `N` add cell by cell, so on them merging is commutative and associative, and in
//! linear mode the merge of two sketches has exactly the counters and `N` of the sketch of the
//! concatenated streams. The heavy-hitter lists merge as described in [`heavy`]: commutative and
//! deterministic, not associative once truncation drops candidates, sound in every order.
//!
//! What depends on the order of updates: conservative counters, and the heavy-hitter list
//! (SpaceSaving keeps the keys it saw last when it must choose). So two parallel plans over the
//! same rows give the same linear counters but may give different lists, with the same
//! guarantees. Byte-for-byte equality of whole sketches holds in linear mode as long as the list
//! never had to drop a key (at most `heavy` distinct keys); the tests check both.
//!
//! The binary and text forms are described in [`codec`].

pub mod codec;
pub mod heavy;
mod layout;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use crate::common::arena::{Arena, ArenaVec, CloneIn};
use crate::common::error::{Error, ErrorKind, Result};
use crate::common::hash::hash_bytes;
use heavy::HeavyList;

pub use codec::{CounterLayout, FORMAT_VERSION, TEXT_PREFIX};
pub use heavy::{Candidate, MAX_HEAVY, MAX_KEY_BYTES};

pub const DEFAULT_EPSILON: f64 = 0.001;
pub const DEFAULT_DELTA: f64 = 0.01;
pub const DEFAULT_HEAVY: u32 = 64;
/// Largest size of the counters in memory (i64 each).
pub const MAX_COUNTER_BYTES: u64 = 64 * 1024 * 1024;
/// Largest number of counters, `MAX_COUNTER_BYTES / 8`.
pub const MAX_CELLS: u64 = MAX_COUNTER_BYTES / 8;

const E: f64 = std::f64::consts::E;
/// An upper bound of e as the fraction `E_NUMERATOR / E_DENOMINATOR`, so that `⌈e·N/width⌉` is
/// computed in integers, never below the true value.
const E_NUMERATOR: u128 = 2_718_281_828_459_046;
const E_DENOMINATOR: u128 = 1_000_000_000_000_000;

/// How updates touch the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Plain Count-Min: signed weights, subtraction allowed.
    Linear,
    /// Conservative update: positive weights only, no subtraction, smaller overestimates.
    Conservative,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Linear => "linear",
            Mode::Conservative => "conservative",
        }
    }

    /// Parses `linear` or `conservative` (ASCII case-insensitive).
    pub fn parse(text: &str) -> Result<Mode> {
        if text.eq_ignore_ascii_case("linear") {
            Ok(Mode::Linear)
        } else if text.eq_ignore_ascii_case("conservative") {
            Ok(Mode::Conservative)
        } else {
            Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("unknown cms mode \"{text}\""),
            )
            .with_detail("The mode is \"linear\" or \"conservative\"."))
        }
    }

    fn code(self) -> u8 {
        match self {
            Mode::Linear => 0,
            Mode::Conservative => 1,
        }
    }

    fn from_code(code: u8) -> Option<Mode> {
        match code {
            0 => Some(Mode::Linear),
            1 => Some(Mode::Conservative),
            _ => None,
        }
    }
}

/// The width and depth `(epsilon, delta)` call for (see the module documentation), or an
/// `InvalidParameter` error when either is outside (0, 1) or the counters would exceed
/// [`MAX_COUNTER_BYTES`].
pub fn dimensions(epsilon: f64, delta: f64) -> Result<(u32, u32)> {
    let open_unit = |x: f64| x > 0.0 && x < 1.0; // false for NaN too
    if !open_unit(epsilon) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!("cms epsilon must be between 0 and 1 exclusive (got {epsilon})"),
        )
        .with_detail("epsilon is the error as a fraction of the total count, e.g. 0.001."));
    }
    if !open_unit(delta) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!("cms delta must be between 0 and 1 exclusive (got {delta})"),
        )
        .with_detail(
            "delta is the probability that an estimate misses the error bound, e.g. 0.01.",
        ));
    }
    let width = (E / epsilon).ceil(); // > e, since epsilon < 1
    let mut depth: u64 = 0;
    let mut reach = delta;
    while reach < 1.0 {
        reach *= E;
        depth += 1;
    }
    // width may be huge or infinite for a tiny epsilon: compare before converting.
    if width > MAX_CELLS as f64 || (width as u64).saturating_mul(depth) > MAX_CELLS {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!("cms with epsilon {epsilon} and delta {delta} needs more than {} MB of counters", MAX_COUNTER_BYTES >> 20),
        )
        .with_detail(format!(
            "It would be {width} counters wide and {depth} deep; the limit is {MAX_CELLS} counters. Use a larger epsilon."
        )));
    }
    Ok((width as u32, depth as u32))
}

/// `⌈ε'·N⌉` for a sketch of `width` columns and total `total` (0 while N ≤ 0), in integers so it
/// is never below the true value.
fn error_bound(total: i64, width: u32) -> i64 {
    let Ok(n) = u128::try_from(total) else {
        return 0;
    };
    let denominator = E_DENOMINATOR * u128::from(width);
    let bound = (n * E_NUMERATOR).div_ceil(denominator);
    // n·e/width < n ≤ i64::MAX since width ≥ 3.
    i64::try_from(bound).unwrap_or(i64::MAX)
}

/// `max(0, estimate − error_bound)`, but never above the estimate itself.
fn count_min_lower(estimate: i64, error_bound: i64) -> i64 {
    estimate.saturating_sub(error_bound).max(0).min(estimate)
}

/// The counter column of a key's `hash` in `row` (see the module documentation).
#[inline]
pub fn row_column(hash: u64, row: u32, width: u32) -> u32 {
    let mut z = hash.wrapping_add((u64::from(row) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((u128::from(z) * u128::from(width)) >> 64) as u32
}

/// Index in the counters (rows one after the other) of a key's counter in `row`.
#[inline]
fn cell_index(hash: u64, row: u32, width: u32) -> usize {
    row as usize * width as usize + row_column(hash, row, width) as usize
}

/// Depths up to this keep a key's counter indexes on the stack during an update (the default
/// depth is 5); deeper sketches spill them to the heap.
const INLINE_DEPTH: usize = 16;

/// A point estimate with its bounds on the true count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The best single guess; equal to `upper`.
    pub estimate: i64,
    /// A lower bound on the true count (see the method that returned it for its confidence).
    pub lower: i64,
    /// An upper bound on the true count (deterministic under the strict-turnstile premise).
    pub upper: i64,
}

/// One row of [`Sketch::topk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopItem<'a> {
    /// The key's canonical bytes, whole.
    pub key: &'a [u8],
    /// The caller's tag for the key's type, as given to [`Sketch::add`].
    pub tag: u8,
    pub estimate: i64,
    /// The larger of the deterministic SpaceSaving bound and the Count-Min bound; the latter
    /// holds with probability ≥ 1 − δ'.
    pub lower: i64,
    pub upper: i64,
    /// The key certainly belongs to the top k: its deterministic lower bound reaches the upper
    /// bound of every key not returned, tracked or not (ties may be broken either way).
    pub guaranteed: bool,
}

/// A Count-Min sketch with its heavy-hitter list (see the module documentation).
#[derive(Debug, Clone)]
pub struct Sketch {
    mode: Mode,
    epsilon: f64,
    delta: f64,
    width: u32,
    depth: u32,
    /// Sum of all weights added, merged and subtracted (N).
    total: i64,
    /// `depth` rows of `width` counters, row after row.
    counters: ArenaVec<i64>,
    heavy: HeavyList,
}

impl PartialEq for Sketch {
    /// Equal states, hence equal canonical encodings.
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode
            && self.epsilon.to_bits() == other.epsilon.to_bits()
            && self.delta.to_bits() == other.delta.to_bits()
            && self.width == other.width
            && self.depth == other.depth
            && self.total == other.total
            && self.counters[..] == other.counters[..]
            && self.heavy == other.heavy
    }
}

impl Eq for Sketch {}

impl CloneIn for Sketch {
    fn clone_in(&self, arena: Arena) -> Sketch {
        Sketch {
            counters: arena.vec_from(&self.counters),
            heavy: self.heavy.clone_in(arena),
            ..*self
        }
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new(
            DEFAULT_EPSILON,
            DEFAULT_DELTA,
            i64::from(DEFAULT_HEAVY),
            Mode::Linear,
        )
        .expect("the defaults are valid")
    }
}

fn overflow(what: &str) -> Error {
    Error::new(
        ErrorKind::Overflow,
        format!("cms {what} is out of range for type bigint"),
    )
}

impl Sketch {
    /// An empty sketch. `heavy` is the capacity of the heavy-hitter list, 0 to [`MAX_HEAVY`].
    pub fn new(epsilon: f64, delta: f64, heavy: i64, mode: Mode) -> Result<Sketch> {
        Sketch::new_in(epsilon, delta, heavy, mode, Arena::HEAP)
    }

    /// [`Sketch::new`] with its buffers in `arena`.
    pub fn new_in(
        epsilon: f64,
        delta: f64,
        heavy: i64,
        mode: Mode,
        arena: Arena,
    ) -> Result<Sketch> {
        let (width, depth) = dimensions(epsilon, delta)?;
        let capacity = u32::try_from(heavy)
            .ok()
            .filter(|&c| c <= MAX_HEAVY)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidParameter,
                    format!("cms heavy must be between 0 and {MAX_HEAVY} (got {heavy})"),
                )
                .with_detail("heavy is how many candidate keys the sketch keeps for top-k queries.")
            })?;
        let cells = width as usize * depth as usize;
        Ok(Sketch {
            mode,
            epsilon,
            delta,
            width,
            depth,
            total: 0,
            counters: arena.vec_filled(0, cells),
            heavy: HeavyList::new(capacity, arena),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Where this sketch's buffers live.
    pub fn arena(&self) -> Arena {
        *self.counters.allocator()
    }
    /// The epsilon asked for; [`Sketch::epsilon_actual`] is what the width delivers.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }
    /// The delta asked for; [`Sketch::delta_actual`] is what the depth delivers.
    pub fn delta(&self) -> f64 {
        self.delta
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn depth(&self) -> u32 {
        self.depth
    }
    /// `e / width`, at most `epsilon`.
    pub fn epsilon_actual(&self) -> f64 {
        E / f64::from(self.width)
    }
    /// `e^(-depth)`, at most `delta` (for display: `exp` is not bit-exact across platforms).
    pub fn delta_actual(&self) -> f64 {
        (-f64::from(self.depth)).exp()
    }
    /// The total weight N.
    pub fn total(&self) -> i64 {
        self.total
    }
    pub fn heavy_capacity(&self) -> u32 {
        self.heavy.capacity()
    }
    /// How many candidates the heavy-hitter list holds now.
    pub fn heavy_len(&self) -> usize {
        self.heavy.len()
    }

    /// Whether the sketch has counted nothing: every counter zero, N zero, no candidate. Such a
    /// sketch is neutral in a union whatever its shape: an aggregate over zero rows cannot know
    /// the epsilon, delta and mode it was asked for.
    pub fn is_untouched(&self) -> bool {
        self.total == 0 && self.heavy.len() == 0 && self.counters.iter().all(|&c| c == 0)
    }
    /// An upper bound on the true count of every key the heavy-hitter list does not hold, or
    /// `None` when the sketch keeps no list.
    pub fn untracked_upper(&self) -> Option<i64> {
        (self.heavy.capacity() > 0).then(|| self.heavy_floor())
    }
    /// The heavy-hitter candidates in canonical order (ascending key bytes, then tag).
    pub fn candidates(&self) -> Vec<Candidate<'_>> {
        self.heavy.canonical()
    }

    /// `⌈ε'·N⌉`, the additive error that estimates stay within with probability ≥ 1 − δ'
    /// (0 while N ≤ 0).
    pub fn error_bound(&self) -> i64 {
        error_bound(self.total, self.width)
    }

    /// Whether any counter is negative, which proves that some key's net count went negative
    /// (linear mode only; see the module documentation).
    pub fn has_negative_counters(&self) -> bool {
        self.counters.iter().any(|&c| c < 0)
    }

    /// Whether the two sketches can be merged, or an error naming both shapes.
    pub fn check_compatible(&self, other: &Sketch) -> Result<()> {
        if self.width == other.width && self.depth == other.depth && self.mode == other.mode {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "cannot combine cms sketches of different shapes: {}x{} {} and {}x{} {}",
                self.width,
                self.depth,
                self.mode.name(),
                other.width,
                other.depth,
                other.mode.name()
            ),
        )
        .with_detail("Sketches combine only when width, depth and mode are equal; build them with the same epsilon, delta and mode."))
    }

    /// Adds `weight` occurrences of the key whose canonical bytes are `key`; `tag` is the
    /// caller's code for the key's type (kept in the heavy-hitter list, opaque here). The key is
    /// hashed with [`hash_bytes`]. Weight 0 changes nothing; a negative weight needs linear mode.
    /// All-or-nothing: on error the sketch is unchanged.
    pub fn add(&mut self, key: &[u8], tag: u8, weight: i64) -> Result<()> {
        if self.heavy.capacity() > 0 && key.len() > MAX_KEY_BYTES {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "cms key of {} bytes is too long for the heavy-hitter list (at most {MAX_KEY_BYTES})",
                    key.len()
                ),
            )
            .with_detail("Keys are kept whole, never truncated; use heavy => 0 to count long keys without top-k."));
        }
        let hash = hash_bytes(key);
        let estimate_after = self.update_counters(hash, weight)?;
        if let Some(estimate_after) = estimate_after {
            let total = self.total;
            self.heavy
                .observe(hash, key, tag, weight, estimate_after, total);
        }
        Ok(())
    }

    /// Adds `weight` to the counters of a key known only by its 64-bit hash. Only for sketches
    /// without a heavy-hitter list: a list that missed updates would lose its guarantees.
    pub fn add_hash(&mut self, hash: u64, weight: i64) -> Result<()> {
        if self.heavy.capacity() > 0 {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                "a cms sketch with a heavy-hitter list must be given the key, not only its hash",
            ));
        }
        self.update_counters(hash, weight).map(|_| ())
    }

    /// The counter update shared by `add` and `add_hash`. Returns the key's estimate after the
    /// update, or `None` when nothing changed (weight 0).
    fn update_counters(&mut self, hash: u64, weight: i64) -> Result<Option<i64>> {
        if weight == 0 {
            return Ok(None);
        }
        if weight < 0 && self.mode == Mode::Conservative {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("cms weight {weight} is negative; a conservative sketch takes positive weights only"),
            )
            .with_detail("Use mode => 'linear' for negative weights and subtraction."));
        }
        let total = self
            .total
            .checked_add(weight)
            .ok_or_else(|| overflow("total"))?;
        // Each key's counter index in every row, computed once for both passes below.
        let mut inline = [0usize; INLINE_DEPTH];
        let spilled: Vec<usize>;
        let cells: &[usize] = if self.depth as usize <= INLINE_DEPTH {
            for row in 0..self.depth {
                inline[row as usize] = cell_index(hash, row, self.width);
            }
            &inline[..self.depth as usize]
        } else {
            spilled = (0..self.depth)
                .map(|row| cell_index(hash, row, self.width))
                .collect();
            &spilled
        };
        // Check every counter before changing any, so that an overflow leaves no trace.
        let estimate = match self.mode {
            Mode::Linear => {
                let mut estimate = i64::MAX;
                for &cell in cells {
                    let after = self.counters[cell]
                        .checked_add(weight)
                        .ok_or_else(|| overflow("counter"))?;
                    estimate = estimate.min(after);
                }
                for &cell in cells {
                    self.counters[cell] += weight;
                }
                estimate
            }
            Mode::Conservative => {
                let minimum = cells
                    .iter()
                    .map(|&cell| self.counters[cell])
                    .min()
                    .unwrap_or(0);
                let estimate = minimum
                    .checked_add(weight)
                    .ok_or_else(|| overflow("counter"))?;
                for &cell in cells {
                    self.counters[cell] = self.counters[cell].max(estimate);
                }
                estimate
            }
        };
        self.total = total;
        Ok(Some(estimate))
    }

    /// The Count-Min estimate of a key's count: the minimum of its counters. Never below the
    /// truth (strict-turnstile premise in linear mode); above it by more than
    /// [`Sketch::error_bound`] with probability at most δ'.
    pub fn estimate(&self, hash: u64) -> i64 {
        (0..self.depth)
            .map(|row| self.counters[cell_index(hash, row, self.width)])
            .min()
            .unwrap_or(0)
    }

    /// The estimate with `lower = max(0, estimate − ⌈ε'N⌉)`, a bound that holds with
    /// probability ≥ 1 − δ', and `upper = estimate`, which always holds. The sketch knows the
    /// key only by its hash here; [`Sketch::key_bounds`] also consults the heavy-hitter list.
    pub fn bounds(&self, hash: u64) -> Bounds {
        let estimate = self.estimate(hash);
        Bounds {
            estimate,
            lower: self.count_min_lower(estimate),
            upper: estimate,
        }
    }

    /// Like [`Sketch::bounds`], tightened by the heavy-hitter list: a candidate's SpaceSaving
    /// bounds, or for a key not in the list the list's bound on untracked keys.
    pub fn key_bounds(&self, key: &[u8], tag: u8) -> Bounds {
        let hash = hash_bytes(key);
        let estimate = self.estimate(hash);
        let probable_lower = self.count_min_lower(estimate);
        match self.heavy.get(hash, key, tag) {
            Some(candidate) => {
                let (upper, sure_lower) =
                    self.candidate_bounds(candidate.count, candidate.error, estimate);
                Bounds {
                    estimate: upper,
                    lower: sure_lower.max(probable_lower).min(upper),
                    upper,
                }
            }
            None => {
                let upper = match self.untracked_upper() {
                    Some(floor) => estimate.min(floor.max(0)),
                    None => estimate,
                };
                Bounds {
                    estimate: upper,
                    lower: probable_lower.min(upper),
                    upper,
                }
            }
        }
    }

    /// Whether the key's count may exceed `threshold`: `estimate > threshold`. No false
    /// negatives; false positives when the overestimate crosses the threshold.
    pub fn exceeds(&self, hash: u64, threshold: i64) -> bool {
        self.estimate(hash) > threshold
    }

    /// Whether the key's count exceeds `threshold` with probability ≥ 1 − δ':
    /// `estimate − ⌈ε'N⌉ > threshold`. False negatives for counts within the error of it.
    pub fn exceeds_certainly(&self, hash: u64, threshold: i64) -> bool {
        self.estimate(hash).saturating_sub(self.error_bound()) > threshold
    }

    /// `max(0, estimate − ⌈ε'N⌉)`, but never above the estimate itself.
    fn count_min_lower(&self, estimate: i64) -> i64 {
        count_min_lower(estimate, self.error_bound())
    }

    /// `(upper, deterministic lower)` of a candidate with SpaceSaving `count` and `error` and
    /// Count-Min `estimate`.
    fn candidate_bounds(&self, count: i64, error: i64, estimate: i64) -> (i64, i64) {
        let sure_lower = count - error; // 0 ≤ error ≤ count
        (count.min(estimate.max(sure_lower)), sure_lower)
    }

    /// The heavy list's bound on untracked keys. A sketch without a list bounds nothing better
    /// than N.
    fn heavy_floor(&self) -> i64 {
        if self.heavy.capacity() == 0 {
            self.total.max(0)
        } else {
            self.heavy.floor()
        }
    }

    /// Every heavy-hitter candidate with its bounds, best first: by estimate, then lower bound,
    /// then key bytes and tag (ascending). `guaranteed` is computed as for [`Sketch::topk`]
    /// with k = the number of candidates.
    pub fn ranked(&self) -> Vec<TopItem<'_>> {
        self.topk(self.heavy.len())
    }

    /// [`Sketch::topk`], refusing a `k` the list cannot answer: fewer rows than asked for would
    /// read as "there are no more keys", which is only true when the list provably holds every
    /// key with a positive count (nothing was ever dropped from it).
    pub fn checked_topk(&self, k: usize) -> Result<Vec<TopItem<'_>>> {
        let held = self.heavy.len();
        let untracked = self.untracked_upper().unwrap_or(self.total).max(0);
        if k > held && untracked > 0 {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("cms_topk asked for {k} keys, but this sketch's heavy-hitter list holds {held}"),
            )
            .with_detail(format!(
                "The list keeps at most {} candidates (the sketch's heavy parameter) and keys outside it may have counts up to {untracked}: ask for at most {held} keys, or build the sketches with a larger heavy parameter, e.g. cms_agg(key, 0.001, 0.01, 256).",
                self.heavy.capacity()
            )));
        }
        Ok(self.topk(k))
    }

    /// The k candidates with the largest estimates (fewer when the list holds fewer), best
    /// first, each with its bounds and whether it is certainly among the true top k.
    pub fn topk(&self, k: usize) -> Vec<TopItem<'_>> {
        struct Scored<'a> {
            item: TopItem<'a>,
            sure_lower: i64,
        }
        let mut scored: Vec<Scored<'_>> = self
            .heavy
            .canonical()
            .into_iter()
            .map(|c| {
                let estimate = self.estimate(c.hash);
                let (upper, sure_lower) = self.candidate_bounds(c.count, c.error, estimate);
                let lower = sure_lower.max(self.count_min_lower(estimate)).min(upper);
                Scored {
                    item: TopItem {
                        key: c.key,
                        tag: c.tag,
                        estimate: upper,
                        lower,
                        upper,
                        guaranteed: false,
                    },
                    sure_lower,
                }
            })
            .collect();
        // Canonical order first, so equal ranks keep ascending key order (the sort is stable).
        scored.sort_by(|a, b| {
            b.item
                .estimate
                .cmp(&a.item.estimate)
                .then(b.item.lower.cmp(&a.item.lower))
        });
        let k = k.min(scored.len());
        // The largest count any key outside the first k could have.
        let outside = scored[k..]
            .iter()
            .map(|s| s.item.upper)
            .fold(self.heavy_floor(), i64::max);
        scored.truncate(k);
        scored
            .into_iter()
            .map(|s| TopItem {
                guaranteed: s.sure_lower >= outside,
                ..s.item
            })
            .collect()
    }

    /// Merges `other` into `self` (union). Counters and N add; the heavy-hitter lists merge
    /// and are re-scored against the merged counters (see [`heavy`]); the result keeps the larger
    /// heavy capacity and the smaller epsilon and delta of the two (both give these dimensions).
    /// An untouched side ([`Sketch::is_untouched`]) is neutral whatever its shape.
    /// All-or-nothing: on error `self` is unchanged.
    pub fn merge_from(&mut self, other: &Sketch) -> Result<()> {
        if other.is_untouched() {
            return Ok(()); // neutral, whatever its shape
        }
        if self.is_untouched() {
            *self = other.clone_in(self.arena());
            return Ok(());
        }
        self.check_compatible(other)?;
        let total = self
            .total
            .checked_add(other.total)
            .ok_or_else(|| overflow("total"))?;
        if self
            .counters
            .iter()
            .zip(&other.counters)
            .any(|(a, b)| a.checked_add(*b).is_none())
        {
            return Err(overflow("counter"));
        }
        // The list is re-scored against the sums before any counter is written, so that an
        // error in it leaves `self` untouched.
        let merged_estimate = |hash: u64| self.combined_estimate(other, hash, |a, b| a + b);
        let heavy = HeavyList::merge(
            (&self.heavy, self.heavy_floor()),
            (&other.heavy, other.heavy_floor()),
            merged_estimate,
            total,
        )?;
        for (a, b) in self.counters.iter_mut().zip(&other.counters) {
            *a += b;
        }
        self.total = total;
        self.heavy = heavy;
        self.epsilon = self.epsilon.min(other.epsilon);
        self.delta = self.delta.min(other.delta);
        Ok(())
    }

    /// The Count-Min estimate of `hash` in the counters `combine(self, other)` would give,
    /// cell by cell (the caller has checked that no cell overflows).
    fn combined_estimate(
        &self,
        other: &Sketch,
        hash: u64,
        combine: impl Fn(i64, i64) -> i64,
    ) -> i64 {
        (0..self.depth)
            .map(|row| {
                let cell = cell_index(hash, row, self.width);
                combine(self.counters[cell], other.counters[cell])
            })
            .min()
            .unwrap_or(0)
    }

    pub fn merge(&self, other: &Sketch) -> Result<Sketch> {
        let mut out = self.clone();
        out.merge_from(other)?;
        Ok(out)
    }

    /// Subtracts `other` from `self` (linear mode only), for sliding windows: `other` should
    /// be a part of the stream `self` counted, so that no key's net count goes negative. Counters
    /// and N subtract exactly, so `a.merge(b).subtract(b)` has the counters and N of `a`. The
    /// heavy-hitter list keeps its candidates with bounds widened by what `other` may have held
    /// (see [`heavy`]); it stays sound but is not restored exactly.
    pub fn subtract_from(&mut self, other: &Sketch) -> Result<()> {
        if self.mode != Mode::Linear {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                "cannot subtract conservative cms sketches",
            )
            .with_detail(
                "Conservative update is not reversible; use mode => 'linear' for subtraction.",
            ));
        }
        if other.is_untouched() {
            return Ok(());
        }
        self.check_compatible(other)?;
        let total = self
            .total
            .checked_sub(other.total)
            .ok_or_else(|| overflow("total"))?;
        if self
            .counters
            .iter()
            .zip(&other.counters)
            .any(|(a, b)| a.checked_sub(*b).is_none())
        {
            return Err(overflow("counter"));
        }
        let difference_estimate = |hash: u64| self.combined_estimate(other, hash, |a, b| a - b);
        let heavy = self.heavy.subtract(
            &other.heavy,
            other.heavy_floor(),
            difference_estimate,
            total,
        )?;
        for (a, b) in self.counters.iter_mut().zip(&other.counters) {
            *a -= b;
        }
        self.total = total;
        self.heavy = heavy;
        Ok(())
    }

    pub fn subtract(&self, other: &Sketch) -> Result<Sketch> {
        let mut out = self.clone();
        out.subtract_from(other)?;
        Ok(out)
    }
}
