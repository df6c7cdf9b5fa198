//! Estimators and error bounds (formulas in the parent module's documentation).

use super::Estimate;
use crate::common::error::{Error, ErrorKind, Result};

/// α∞ = 1 / (2 ln 2), the bias constant of the improved estimator for m → ∞.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// No sketch can tell apart more than 2^64 distinct hashes.
pub const MAX_ESTIMATE: f64 = 18_446_744_073_709_551_616.0;

const ZERO: Estimate = Estimate {
    estimate: 0.0,
    lower: 0.0,
    upper: 0.0,
};

/// The count of an explicit sketch: its number of hashes, with no uncertainty.
pub fn exact(hashes: usize) -> Estimate {
    let count = hashes as f64;
    Estimate {
        estimate: count,
        lower: count,
        upper: count,
    }
}

/// Linear counting over the `2^sp` buckets of sparse precision `sp` for `tokens` occupied
/// ones, with the normal interval `± z·σ`; the lower bound never drops below `tokens`, the
/// proven count.
pub fn sparse(tokens: usize, sp: u8, z: f64) -> Estimate {
    if tokens == 0 {
        return ZERO;
    }
    let buckets = super::sparse::buckets(sp) as f64;
    let proven = tokens as f64;
    // -m·ln(1 - k/m); a valid sparse sketch has k far below m, so this is finite.
    let estimate = (-buckets * (-proven / buckets).ln_1p()).clamp(proven, MAX_ESTIMATE);
    // Variance of linear counting (Whang et al. 1990): m·(e^t - t - 1), t = n/m.
    let load = estimate / buckets;
    let std_dev = (buckets * (load.exp_m1() - load)).max(0.0).sqrt();
    Estimate {
        estimate,
        lower: (estimate - z * std_dev).max(proven),
        upper: estimate + z * std_dev,
    }
}

/// `1.04/√m`, the relative standard error of a dense sketch (Ertl's improved estimator has
/// √(3 ln 2 - 1) ≈ 1.039 for large m; 1.04 is the conventional, slightly cautious figure).
pub fn dense_relative_error(p: u8) -> f64 {
    1.04 / ((1u64 << p) as f64).sqrt()
}

/// `√(ln 2/m)`, the relative standard error of the martingale count (see hip.rs).
pub fn martingale_relative_error(p: u8) -> f64 {
    super::hip::RELATIVE_ERROR_FACTOR / ((1u64 << p) as f64).sqrt()
}

/// The martingale count of a dense sketch with the interval `count·(1 ± z·√(ln 2/m))`, never
/// below the number of non-zero registers (a decoded count is checked to be at least that).
pub fn martingale(count: f64, registers: &[u8], p: u8, z: f64) -> Estimate {
    let proven = super::dense::nonzero(registers) as f64;
    relative_interval(count, proven, z * martingale_relative_error(p))
}

/// `estimate` (capped to `proven..=2^64`) with the interval `estimate·(1 ± margin)`, whose
/// lower end is never below `proven`.
fn relative_interval(estimate: f64, proven: f64, margin: f64) -> Estimate {
    let estimate = estimate.clamp(proven, MAX_ESTIMATE);
    Estimate {
        estimate,
        lower: (estimate * (1.0 - margin)).max(proven),
        upper: estimate * (1.0 + margin),
    }
}

/// Ertl's improved estimator on the register histogram at precision `p`, with the interval
/// `estimate·(1 ± z·1.04/√m)`. Never below the number of non-zero registers.
pub fn dense(histogram: &[u32; 64], p: u8, z: f64) -> Estimate {
    let m = (1u64 << p) as f64;
    let zero_registers = histogram[0] as f64;
    if zero_registers >= m {
        return ZERO;
    }
    let proven = m - zero_registers;
    let q = 64 - p as usize;
    // The denominator, built from the top of the histogram down as in algorithm 6.
    let mut denominator = m * tau(1.0 - histogram[q + 1] as f64 / m);
    for k in (1..=q).rev() {
        denominator = 0.5 * (denominator + histogram[k] as f64);
    }
    denominator += m * sigma(zero_registers / m);
    // A denominator of 0 (every register at its maximum, only in forged data) gives +inf,
    // which the cap turns into 2^64.
    let raw = ALPHA_INF * m * m / denominator;
    relative_interval(raw, proven, z * dense_relative_error(p))
}

/// σ(x) = x + Σ_{k≥1} x^(2^k)·2^(k-1), for 0 <= x < 1 (infinite at 1).
fn sigma(x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut power, mut weight, mut sum) = (x, 1.0, x);
    // x^(2^k) underflows to 0 within about 70 squarings for any x < 1.
    for _ in 0..128 {
        power *= power;
        let previous = sum;
        sum += power * weight;
        weight += weight;
        if sum == previous {
            break;
        }
    }
    sum
}

/// τ(x) = (1 - x - Σ_{k≥1} (1 - x^(2^-k))²·2^-k) / 3, for 0 <= x <= 1.
fn tau(x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut root, mut weight, mut sum) = (x, 1.0, 1.0 - x);
    // Square roots approach 1 and the weights halve; converges within about 60 steps.
    for _ in 0..128 {
        root = root.sqrt();
        let previous = sum;
        weight *= 0.5;
        sum -= (1.0 - root) * (1.0 - root) * weight;
        if sum == previous {
            break;
        }
    }
    sum / 3.0
}

/// `z` such that a standard normal variable lies in `[-z, z]` with probability `confidence`.
/// Errors unless 0 <= confidence < 1.
pub fn z_for_confidence(confidence: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&confidence) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!("confidence {confidence} is out of range"),
        )
        .with_detail("The confidence must be at least 0 and less than 1, e.g. 0.95."));
    }
    // From the lower tail: (1 - confidence)/2 keeps its digits where 0.5 + confidence/2 would
    // round to 1 (and give an infinite z) for confidences within 2^-53 of 1.
    Ok((-normal_quantile((1.0 - confidence) / 2.0)).max(0.0))
}

/// The standard normal quantile Φ⁻¹(p) by Acklam's rational approximation (relative error
/// below 1.2e-9). `p` at or beyond 0 or 1 gives ∓∞; NaN gives NaN.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;

    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    // The tails use a rational function of √(-2 ln p); the centre one of (p - 1/2)².
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}
