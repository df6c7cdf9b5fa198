//! The martingale (HIP) estimate of a dense sketch that has only seen insertions since it
//! turned dense (Ting 2014, "Streamed approximate counting of distinct elements"; Cohen 2015,
//! "All-distances sketches, revisited: HIP estimators"; Ertl 2017, arXiv:1702.01284 §5).
//!
//! A new distinct hash changes the registers with probability `q = (1/m)·Σ_i P(rank > r_i)`,
//! with `P(rank > r) = 2^-r` below the largest rank and 0 at it. Each change adds `1/q`
//! (taken before the change) to the count, so the count grows by one per distinct value in
//! expectation whatever the registers are: it stays unbiased from any exactly known start.
//! A sketch starts it when it turns dense, from the sparse form's count (within about 0.01 %).
//! Its relative standard error is about `√(ln 2 / m)`, against `1.04/√m` for an estimate from
//! the registers alone. A union of two dense sketches (whose values may overlap) cannot keep
//! it; a union with a small sketch replays that one's values into it (see the parent module).

use super::dense;

/// The running count and `q` in fixed point: `q·2^64 = Σ_i P(rank > r_i)·2^(64-p)`, where
/// every term is a whole number (ranks below the largest are at most `64 - p`), so the sum is
/// exact however long the stream. It is below 2^64 as long as one register is non-zero, which
/// every dense sketch has.
#[derive(Clone, Copy, Debug)]
pub struct Hip {
    count: f64,
    kappa: u64,
}

/// `P(rank > r)·2^(64-p)` at precision `p`.
#[inline]
fn term(r: u8, p: u8) -> u64 {
    if r < dense::max_rank(p) {
        1u64 << (64 - u32::from(p) - u32::from(r))
    } else {
        0
    }
}

/// `√(ln 2)`: the relative standard error of the martingale estimate is this over `√m`.
pub const RELATIVE_ERROR_FACTOR: f64 = 0.832_554_611_157_697_7;

impl Hip {
    /// Starts the count at `count` for the registers as they are.
    pub fn start(registers: &[u8], p: u8, count: f64) -> Hip {
        Hip {
            count,
            kappa: registers
                .iter()
                .fold(0u64, |sum, &r| sum.saturating_add(term(r, p))),
        }
    }

    /// [`Hip::start`] for registers whose histogram is `counts` (the same sum, term by value).
    pub fn start_from_histogram(counts: &[u32; 64], p: u8, count: f64) -> Hip {
        Hip {
            count,
            kappa: (0..64u8).fold(0u64, |sum, r| {
                sum.saturating_add(u64::from(counts[r as usize]).saturating_mul(term(r, p)))
            }),
        }
    }

    /// A register of precision `p` goes from `old` to `new` (> `old`).
    #[inline]
    pub fn record(&mut self, old: u8, new: u8, p: u8) {
        // 1/q = 2^64/kappa; kappa > 0 here, as the changed register was below the largest rank.
        self.count += 18_446_744_073_709_551_616.0 / self.kappa as f64;
        self.kappa = self.kappa - term(old, p) + term(new, p);
    }

    pub fn count(&self) -> f64 {
        self.count
    }
}

/// Equal counts (bit for bit); `kappa` follows from the registers.
impl PartialEq for Hip {
    fn eq(&self, other: &Self) -> bool {
        self.count.to_bits() == other.count.to_bits()
    }
}
