//! postgresql-hll's values (its storage specification, schema version 1), imported as they are:
//! its registers or its explicit hash list, its parameters, and its own estimator, so that an
//! imported value counts exactly what postgresql-hll's `#` (`hll_cardinality`) said.
//!
//! Its hash family is not ours: values went in through `hll_hash_*` (MurmurHash3 x64-128,
//! seed 0 unless the user chose another), the register index is the **low** `log2m` bits of the
//! hash and the rank is 1 + the trailing zeros of the rest, capped at `2^regwidth - 1`. So an
//! imported value can be united with other imported values (with the same parameters, as in
//! postgresql-hll), never with a native sketch, and takes no new values.
//!
//! # The bytes (STORAGE.markdown of postgresql-hll)
//!
//! ```text
//! byte 0  schema version (1) << 4 | type: 0 undefined, 1 EMPTY, 2 EXPLICIT, 3 SPARSE, 4 FULL
//! byte 1  (regwidth - 1) << 5 | log2m
//! byte 2  0 (padding bit) | sparseon << 6 | explicit cutoff (0 off, 63 auto, c: up to 2^(c-1))
//! EXPLICIT  sorted (as signed), distinct int64 hashes, 8 bytes big-endian each
//! SPARSE    (log2m + regwidth)-bit words, index high and value low, by ascending index,
//!           packed high bits first; fewer than 8 zero padding bits at the end
//! FULL      2^log2m regwidth-bit registers packed high bits first; zero padding to a byte
//! ```
//!
//! What this module accepts: schema version 1; log2m 4 to 17 (what postgresql-hll itself can
//! unpack; its estimator refuses fewer than 16 registers); regwidth 1 to 8; a cutoff of 0 to 31
//! or 63 with the padding bit clear; at most 16,383 explicit hashes (its limit), strictly
//! increasing; sparse indexes strictly increasing; register values from 1 (sparse) up to the
//! largest rank a hash can have, `min(2^regwidth - 1, 64 - log2m)`; zero padding. The
//! UNDEFINED type is refused (postgresql-hll's `#` gives NULL for it). Anything else is an
//! error, never a panic (fuzzed in `fuzz.rs`).

use crate::common::arena::{Arena, ArenaVec, CloneIn};
use crate::common::error::{Error, ErrorKind, Result};

const SCHEMA_VERSION: u8 = 1;
const TYPE_UNDEFINED: u8 = 0;
const TYPE_EMPTY: u8 = 1;
const TYPE_EXPLICIT: u8 = 2;
const TYPE_SPARSE: u8 = 3;
const TYPE_FULL: u8 = 4;
pub const HEADER_LEN: usize = 3;
pub const MIN_LOG2M: u8 = 4;
pub const MAX_LOG2M: u8 = 17;
/// postgresql-hll keeps an explicit list in 128 KiB less an 8-byte count.
const MAX_EXPLICIT: usize = 16_383;
const CUTOFF_AUTO: u8 = 63;

/// A non-empty postgresql-hll value (an EMPTY one imports as a native empty sketch).
#[derive(Clone, Debug)]
pub struct PgHll {
    log2m: u8,
    regwidth: u8,
    /// Byte 2 as it came: sparseon and the explicit cutoff, kept for unions and re-export.
    cutoff: u8,
    data: Data,
}

#[derive(Clone, Debug)]
enum Data {
    /// The hashes, sorted as signed integers (postgresql-hll's order).
    Explicit(ArenaVec<i64>),
    /// `2^log2m` registers, one byte each.
    Registers(ArenaVec<u8>),
}

impl PartialEq for PgHll {
    fn eq(&self, other: &Self) -> bool {
        (self.log2m, self.regwidth, self.cutoff) == (other.log2m, other.regwidth, other.cutoff)
            && match (&self.data, &other.data) {
                (Data::Explicit(a), Data::Explicit(b)) => a[..] == b[..],
                (Data::Registers(a), Data::Registers(b)) => a[..] == b[..],
                _ => false,
            }
    }
}

impl Eq for PgHll {}

impl CloneIn for PgHll {
    fn clone_in(&self, arena: Arena) -> PgHll {
        let data = match &self.data {
            Data::Explicit(hashes) => Data::Explicit(arena.vec_from(hashes)),
            Data::Registers(registers) => Data::Registers(arena.vec_from(registers)),
        };
        PgHll { data, ..*self }
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidBinary, "invalid postgresql-hll value").with_detail(detail)
}

/// `bits` bits (at most 32) of `data` from bit `at`, high bits first; zeros past the end.
fn read_bits(data: &[u8], at: usize, bits: u32) -> u32 {
    let mut window = 0u64;
    for i in 0..8 {
        window = (window << 8) | u64::from(data.get(at / 8 + i).copied().unwrap_or(0));
    }
    let shift = 64 - (at % 8) as u32 - bits;
    ((window >> shift) & ((1u64 << bits) - 1)) as u32
}

/// Packs words high bits first, as postgresql-hll's bitstream_pack does.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    pending: u64,
    pending_bits: u32,
}

impl BitWriter<'_> {
    fn push(&mut self, value: u32, bits: u32) {
        self.pending = (self.pending << bits) | u64::from(value);
        self.pending_bits += bits;
        while self.pending_bits >= 8 {
            self.pending_bits -= 8;
            self.out.push((self.pending >> self.pending_bits) as u8);
        }
        self.pending &= (1u64 << self.pending_bits) - 1;
    }

    fn finish(self) {
        if self.pending_bits > 0 {
            self.out
                .push((self.pending << (8 - self.pending_bits)) as u8);
        }
    }
}

impl PgHll {
    /// Reads a postgresql-hll value; `None` for an EMPTY one (or an EXPLICIT one with no
    /// hashes, which it also counts as 0). Validates every field (module documentation).
    pub fn import(bytes: &[u8], arena: Arena) -> Result<Option<PgHll>> {
        let &[first, parameters, cutoff, ..] = bytes else {
            return Err(invalid(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        };
        let (version, kind) = (first >> 4, first & 0x0f);
        if version != SCHEMA_VERSION {
            return Err(invalid(format!(
                "schema version {version} is not supported (only version {SCHEMA_VERSION} exists)"
            )));
        }
        let regwidth = (parameters >> 5) + 1;
        let log2m = parameters & 0x1f;
        if !(MIN_LOG2M..=MAX_LOG2M).contains(&log2m) {
            return Err(invalid(format!(
                "log2m {log2m} is out of range ({MIN_LOG2M} to {MAX_LOG2M}, what postgresql-hll reads)"
            )));
        }
        if cutoff & 0x80 != 0 {
            return Err(invalid("the padding bit of the cutoff byte is set"));
        }
        if !(cutoff & 0x3f <= 31 || cutoff & 0x3f == CUTOFF_AUTO) {
            return Err(invalid(format!(
                "explicit cutoff {} is not 0 to 31 or 63",
                cutoff & 0x3f
            )));
        }
        let payload = &bytes[HEADER_LEN..];
        let mut value = PgHll {
            log2m,
            regwidth,
            cutoff,
            data: Data::Explicit(arena.vec()),
        };
        value.data = match kind {
            TYPE_UNDEFINED => {
                return Err(invalid(
                    "an UNDEFINED value has no count (postgresql-hll's # gives NULL for it)",
                ));
            }
            TYPE_EMPTY if payload.is_empty() => return Ok(None),
            TYPE_EMPTY => {
                return Err(invalid(format!(
                    "an EMPTY value has no data, but {} bytes follow the header",
                    payload.len()
                )));
            }
            TYPE_EXPLICIT => match decode_explicit(payload, arena)? {
                Some(hashes) => Data::Explicit(hashes),
                None => return Ok(None),
            },
            TYPE_SPARSE => Data::Registers(value.decode_sparse(payload, arena)?),
            TYPE_FULL => Data::Registers(value.decode_full(payload, arena)?),
            other => {
                return Err(invalid(format!(
                    "unknown type {other} (1 EMPTY, 2 EXPLICIT, 3 SPARSE, 4 FULL)"
                )));
            }
        };
        Ok(Some(value))
    }

    /// Reads the copy kept inside a pg_distcount value: a non-empty value in canonical form
    /// (the bytes [`Self::encode_into`] writes), so equal sketches keep identical bytes.
    pub fn decode_canonical(bytes: &[u8], arena: Arena) -> Result<PgHll> {
        let value = PgHll::import(bytes, arena)?
            .ok_or_else(|| invalid("an empty value is stored as a native empty hll"))?;
        let mut again = Vec::with_capacity(bytes.len());
        value.encode_into(&mut again);
        if again != bytes {
            return Err(invalid(
                "not in canonical form (the form postgresql-hll itself would write: EXPLICIT, or SPARSE exactly when sparse is on and smaller than FULL)",
            ));
        }
        Ok(value)
    }

    /// Where its buffer lives.
    pub fn arena(&self) -> Arena {
        match &self.data {
            Data::Explicit(hashes) => *hashes.allocator(),
            Data::Registers(registers) => *registers.allocator(),
        }
    }

    pub fn log2m(&self) -> u8 {
        self.log2m
    }

    pub fn regwidth(&self) -> u8 {
        self.regwidth
    }

    /// True while it holds the hashes themselves (its count is exact).
    pub fn is_explicit(&self) -> bool {
        matches!(self.data, Data::Explicit(_))
    }

    fn sparse_on(&self) -> bool {
        self.cutoff & 0x40 != 0
    }

    /// The largest register value a hash can give: the rank is 1 + the trailing zeros of the
    /// `64 - log2m` bits above the index, capped at `2^regwidth - 1`.
    fn max_rank(&self) -> u8 {
        let cap = (1u16 << self.regwidth) - 1;
        cap.min(u16::from(64 - self.log2m)) as u8
    }

    /// How many hashes an explicit list may hold before it becomes registers
    /// (postgresql-hll's expthresh_value).
    fn explicit_limit(&self) -> usize {
        let limit = match self.cutoff & 0x3f {
            0 => 0,
            CUTOFF_AUTO => (usize::from(self.regwidth) * (1usize << self.log2m)).div_ceil(8) / 8,
            c => 1usize << (c - 1),
        };
        limit.min(MAX_EXPLICIT)
    }

    fn register_count(&self) -> usize {
        1 << self.log2m
    }

    fn check_register(&self, index: usize, value: u32) -> Result<u8> {
        if value > u32::from(self.max_rank()) {
            return Err(invalid(format!(
                "register {index} holds {value}, above {}, the largest rank at log2m {} and regwidth {}",
                self.max_rank(),
                self.log2m,
                self.regwidth
            )));
        }
        Ok(value as u8)
    }

    fn decode_full(&self, payload: &[u8], arena: Arena) -> Result<ArenaVec<u8>> {
        let width = u32::from(self.regwidth);
        let bits = self.register_count() * width as usize;
        if payload.len() != bits.div_ceil(8) {
            return Err(invalid(format!(
                "a FULL value at log2m {} and regwidth {} has {} data bytes, not {}",
                self.log2m,
                self.regwidth,
                payload.len(),
                bits.div_ceil(8)
            )));
        }
        check_padding(payload, bits)?;
        let mut registers = arena.vec_filled(0u8, self.register_count());
        for (index, register) in registers.iter_mut().enumerate() {
            *register =
                self.check_register(index, read_bits(payload, index * width as usize, width))?;
        }
        Ok(registers)
    }

    fn decode_sparse(&self, payload: &[u8], arena: Arena) -> Result<ArenaVec<u8>> {
        let width = u32::from(self.regwidth);
        let word = u32::from(self.log2m) + width;
        let word_bits = word as usize;
        let bits = payload.len() * 8;
        let mut words = bits / word as usize;
        // With words narrower than a byte, the zero padding can hold a whole word: drop it.
        while words > 0
            && bits - (words - 1) * word_bits < 8
            && read_bits(payload, (words - 1) * word_bits, word) == 0
        {
            words -= 1;
        }
        let used = words * word as usize;
        if bits - used >= 8 {
            return Err(invalid(format!(
                "a SPARSE value has {} padding bits (fewer than 8 allowed)",
                bits - used
            )));
        }
        check_padding(payload, used)?;
        let mut registers = arena.vec_filled(0u8, self.register_count());
        let mut previous: Option<usize> = None;
        for entry in 0..words {
            let bits = read_bits(payload, entry * word as usize, word);
            let index = (bits >> width) as usize;
            let value = bits & ((1 << width) - 1);
            if previous.is_some_and(|p| index <= p) {
                return Err(invalid(format!(
                    "sparse entry {entry}: register index {index} does not follow {} in ascending order",
                    previous.unwrap_or_default()
                )));
            }
            if value == 0 {
                return Err(invalid(format!(
                    "sparse entry {entry}: register {index} is listed with value 0"
                )));
            }
            registers[index] = self.check_register(index, value)?;
            previous = Some(index);
        }
        Ok(registers)
    }

    /// The canonical bytes: what postgresql-hll's multiset_pack writes for this value (with
    /// `hll_set_max_sparse` at its default, -1).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let parameters = ((self.regwidth - 1) << 5) | self.log2m;
        match &self.data {
            Data::Explicit(hashes) => {
                out.extend_from_slice(&[
                    SCHEMA_VERSION << 4 | TYPE_EXPLICIT,
                    parameters,
                    self.cutoff,
                ]);
                hashes
                    .iter()
                    .for_each(|h| out.extend_from_slice(&h.to_be_bytes()));
            }
            Data::Registers(registers) => {
                let width = u32::from(self.regwidth);
                let filled = registers.iter().filter(|&&r| r != 0).count();
                let sparse_bits = filled * (usize::from(self.log2m) + width as usize);
                let sparse = self.sparse_on() && sparse_bits < registers.len() * width as usize;
                let kind = if sparse { TYPE_SPARSE } else { TYPE_FULL };
                out.extend_from_slice(&[SCHEMA_VERSION << 4 | kind, parameters, self.cutoff]);
                let mut writer = BitWriter {
                    out,
                    pending: 0,
                    pending_bits: 0,
                };
                for (index, &register) in registers.iter().enumerate() {
                    if !sparse {
                        writer.push(u32::from(register), width);
                    } else if register != 0 {
                        writer.push(
                            ((index as u32) << width) | u32::from(register),
                            width + u32::from(self.log2m),
                        );
                    }
                }
                writer.finish();
            }
        }
    }

    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out.len()
    }

    /// postgresql-hll's multiset_card, operation for operation, so the result is the same
    /// float8: the explicit count; else Flajolet's raw estimate α·m²/Σ2^-M, linear counting
    /// m·ln(m/V) below 5m/2 when V registers are zero, and its large-range correction above
    /// 2^L/30 with L = 2^regwidth - 2 + log2m. For regwidth 6 and over, L is 64 or more and
    /// postgresql-hll's `1ULL << L` overflows (its NaN counts, issues #15 and #160): here 2^L
    /// is taken as meant, which leaves the raw estimate.
    pub fn estimate(&self) -> f64 {
        let registers = match &self.data {
            Data::Explicit(hashes) => return hashes.len() as f64,
            Data::Registers(registers) => registers,
        };
        let m = registers.len() as f64;
        let mut sum = 0.0;
        let mut zeros = 0u32;
        for &register in registers.iter() {
            sum += 1.0 / (1u64 << register) as f64;
            zeros += u32::from(register == 0);
        }
        let alpha_m_squared = match registers.len() {
            16 => 0.673 * m * m,
            32 => 0.697 * m * m,
            64 => 0.709 * m * m,
            _ => (0.7213 / (1.0 + 1.079 / m)) * m * m,
        };
        let estimator = alpha_m_squared / sum;
        if zeros != 0 && estimator < 5.0 * m / 2.0 {
            return m * (m / f64::from(zeros)).ln();
        }
        let total_bits = (1u32 << self.regwidth) - 2 + u32::from(self.log2m);
        if total_bits >= 63 {
            return estimator;
        }
        let two_to_l = 1u64 << total_bits;
        if estimator <= two_to_l as f64 / 30.0 {
            estimator
        } else {
            (-(two_to_l as i64)) as f64 * (1.0 - estimator / two_to_l as f64).ln()
        }
    }

    /// Adds explicit hashes to registers, as postgresql-hll's compressed_add: index = the low
    /// log2m bits, rank = 1 + the trailing zeros of the rest (0 if the rest is 0), capped.
    fn add_hashes(log2m: u8, regwidth: u8, registers: &mut [u8], hashes: &[i64]) {
        let mask = (1u64 << log2m) - 1;
        let cap = (1u32 << regwidth) - 1;
        for &hash in hashes {
            let hash = hash as u64;
            let rest = hash >> log2m;
            let rank = if rest == 0 {
                0
            } else {
                rest.trailing_zeros() + 1
            };
            let register = &mut registers[(hash & mask) as usize];
            *register = (*register).max(rank.min(cap) as u8);
        }
    }

    /// The union, as postgresql-hll's `||`: both must have the same parameters (it refuses
    /// others too); an explicit list stays one while the union fits its limit.
    pub fn merge_from(&mut self, other: &PgHll) -> Result<()> {
        if (self.log2m, self.regwidth, self.cutoff) != (other.log2m, other.regwidth, other.cutoff) {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                "cannot union postgresql-hll sketches with different parameters",
            )
            .with_detail(format!(
                "One has log2m {}, regwidth {}, cutoff byte {}; the other log2m {}, regwidth {}, cutoff byte {}. postgresql-hll's own || refuses them too.",
                self.log2m, self.regwidth, self.cutoff, other.log2m, other.regwidth, other.cutoff
            )));
        }
        let arena = self.arena();
        let (log2m, regwidth, limit) = (self.log2m, self.regwidth, self.explicit_limit());
        let merged = match (&mut self.data, &other.data) {
            (Data::Registers(mine), Data::Registers(theirs)) => {
                mine.iter_mut()
                    .zip(theirs.iter())
                    .for_each(|(a, &b)| *a = (*a).max(b));
                return Ok(());
            }
            (Data::Registers(mine), Data::Explicit(theirs)) => {
                PgHll::add_hashes(log2m, regwidth, mine, theirs);
                return Ok(());
            }
            (Data::Explicit(mine), Data::Registers(theirs)) => {
                let mut registers = arena.vec_from(theirs);
                PgHll::add_hashes(log2m, regwidth, &mut registers, mine);
                Data::Registers(registers)
            }
            (Data::Explicit(mine), Data::Explicit(theirs)) => {
                let mut union = ArenaVec::with_capacity_in(mine.len() + theirs.len(), arena);
                union.extend_from_slice(mine);
                union.extend_from_slice(theirs);
                union.sort_unstable();
                union.dedup();
                if union.len() <= limit {
                    Data::Explicit(union)
                } else {
                    let mut registers = arena.vec_filled(0u8, 1usize << log2m);
                    PgHll::add_hashes(log2m, regwidth, &mut registers, &union);
                    Data::Registers(registers)
                }
            }
        };
        self.data = merged;
        Ok(())
    }

    /// Bytes of heap memory held.
    pub fn memory_bytes(&self) -> usize {
        match &self.data {
            Data::Explicit(hashes) => hashes.capacity() * 8,
            Data::Registers(registers) => registers.capacity(),
        }
    }

    /// Hashes held (explicit) or non-zero registers: what the value proves at least.
    pub fn proven(&self) -> usize {
        match &self.data {
            Data::Explicit(hashes) => hashes.len(),
            Data::Registers(registers) => registers.iter().filter(|&&r| r != 0).count(),
        }
    }
}

/// postgresql-hll's EMPTY value at `log2m` with its default settings (regwidth 5, explicit
/// cutoff auto, sparse on).
pub fn empty_with_defaults(log2m: u8) -> [u8; HEADER_LEN] {
    [
        SCHEMA_VERSION << 4 | TYPE_EMPTY,
        (4 << 5) | log2m,
        0x40 | CUTOFF_AUTO,
    ]
}

/// The bits from `used` to the end must be zero.
fn check_padding(payload: &[u8], used: usize) -> Result<()> {
    let bits = payload.len() * 8;
    if used < bits && read_bits(payload, used, (bits - used) as u32) != 0 {
        return Err(invalid("non-zero padding bits after the last register"));
    }
    Ok(())
}

/// The hashes of an EXPLICIT payload; None for none.
fn decode_explicit(payload: &[u8], arena: Arena) -> Result<Option<ArenaVec<i64>>> {
    if payload.len() % 8 != 0 {
        return Err(invalid(format!(
            "an EXPLICIT value holds whole 8-byte hashes, but has {} data bytes",
            payload.len()
        )));
    }
    let count = payload.len() / 8;
    if count > MAX_EXPLICIT {
        return Err(invalid(format!(
            "an EXPLICIT value of {count} hashes is longer than postgresql-hll allows ({MAX_EXPLICIT})"
        )));
    }
    if count == 0 {
        return Ok(None);
    }
    let mut hashes = ArenaVec::with_capacity_in(count, arena);
    hashes.extend(
        payload
            .chunks_exact(8)
            .map(|word| i64::from_be_bytes(word.try_into().unwrap_or_default())),
    );
    if let Some(at) = hashes.windows(2).position(|pair| pair[0] >= pair[1]) {
        return Err(invalid(format!(
            "explicit hashes {at} and {} are not strictly increasing (as signed integers)",
            at + 1
        )));
    }
    Ok(Some(hashes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::fuzz_support::{SplitMix64, env_u64};
    use crate::hll::sketch::Sketch;

    fn import(bytes: &[u8]) -> Result<Option<PgHll>> {
        PgHll::import(bytes, Arena::HEAP)
    }

    fn encoded(value: &PgHll) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode_into(&mut out);
        out
    }

    /// The examples of postgresql-hll's STORAGE.markdown, with a header around them.
    #[test]
    fn storage_spec_examples() {
        // SPARSE, log2m 11, regwidth 6: (11, 6) and (1099, 19). The spec's binary line gives
        // 0x016344B4C0; its hex line says 0x0163445BC0, a typo (0b10110100 is 0xB4).
        let sparse = [0x13, 0xab, 0x7f, 0x01, 0x63, 0x44, 0xb4, 0xc0];
        let value = import(&sparse).unwrap().unwrap();
        let Data::Registers(registers) = &value.data else {
            panic!("not registers")
        };
        assert_eq!((registers[11], registers[1099]), (6, 19));
        assert_eq!(registers.iter().filter(|&&r| r != 0).count(), 2);
        assert_eq!(encoded(&value), sparse);
        // EXPLICIT: two hashes, 0xCBA79700677CDEAA0000000000000001.
        let mut explicit = vec![0x12, 0x8b, 0x7f];
        explicit.extend_from_slice(&0xCBA7_9700_677C_DEAAu64.to_be_bytes());
        explicit.extend_from_slice(&1u64.to_be_bytes());
        let value = import(&explicit).unwrap().unwrap();
        let Data::Explicit(hashes) = &value.data else {
            panic!("not explicit")
        };
        // (The spec's decimal for that hex, -5451491901947305642, is another typo.)
        assert_eq!(hashes[..], [0xCBA7_9700_677C_DEAAu64 as i64, 1]);
        assert_eq!(hashes[0], -3_771_880_134_907_470_166);
        assert_eq!(value.estimate(), 2.0);
        assert_eq!(encoded(&value), explicit);
        // EMPTY imports as nothing.
        assert!(import(&[0x11, 0x8b, 0x7f]).unwrap().is_none());
    }

    /// A FULL value at log2m 4: the header, then 16 registers of `width` bits.
    fn full(width: u8, cutoff: u8, register: impl Fn(u32) -> u32) -> Vec<u8> {
        let mut bytes = vec![0x14, ((width - 1) << 5) | 4, cutoff];
        let mut writer = BitWriter {
            out: &mut bytes,
            pending: 0,
            pending_bits: 0,
        };
        (0..16).for_each(|i| writer.push(register(i), u32::from(width)));
        writer.finish();
        bytes
    }

    /// FULL round-trips; with sparse on it stays FULL while SPARSE would be longer.
    #[test]
    fn full_and_sparse_forms() {
        let bytes = full(5, 63, |i| i % 7);
        let value = import(&bytes).unwrap().unwrap();
        assert_eq!(encoded(&value), bytes);
        let value = import(&full(5, 0x40 | 63, |i| i % 7)).unwrap().unwrap();
        // 14 non-zero registers of 9 bits are 126 bits, more than 80: still FULL.
        assert_eq!(encoded(&value)[0], 0x14);
        // One non-zero register with sparse on is SPARSE (9 bits against 80).
        let value = import(&full(5, 0x40 | 63, |i| u32::from(i == 3)))
            .unwrap()
            .unwrap();
        assert_eq!(encoded(&value), [0x13, 0x84, 0x40 | 63, 0x30, 0x80]);
        // 31 = 2^5 - 1 is a reachable rank at log2m 4; 61 (8-bit registers) is not (60 at most).
        assert!(import(&full(5, 63, |i| if i == 3 { 31 } else { 0 })).is_ok());
        let too_high = full(8, 63, |i| if i == 3 { 61 } else { 0 });
        assert_eq!(
            import(&too_high).unwrap_err().kind,
            ErrorKind::InvalidBinary
        );
    }

    /// An explicit union beyond the cutoff becomes registers, as in postgresql-hll.
    #[test]
    fn explicit_union_promotes_past_the_cutoff() {
        // cutoff code 2: at most 2 explicit hashes.
        let list = |hashes: &[i64]| {
            let mut bytes = vec![0x12, (4 << 5) | 11, 0x40 | 2];
            hashes
                .iter()
                .for_each(|h| bytes.extend_from_slice(&h.to_be_bytes()));
            import(&bytes).unwrap().unwrap()
        };
        let mut a = list(&[5, 1 << 11]);
        a.merge_from(&list(&[5])).unwrap();
        assert!(a.is_explicit());
        a.merge_from(&list(&[3 << 11])).unwrap();
        assert!(!a.is_explicit());
        let Data::Registers(registers) = &a.data else {
            panic!()
        };
        // 1 << 11: register 0, rank 1; 5: register 5, rest 0, rank 0; 3 << 11: register 0, rank 1.
        assert_eq!((registers[0], registers[5]), (1, 0));
        let other = {
            let mut bytes = vec![0x11, (4 << 5) | 12, 0x40 | 2];
            bytes.truncate(3);
            bytes
        };
        assert!(import(&other).unwrap().is_none());
        let different = list(&[7]);
        let mut wider = different.clone();
        wider.regwidth = 6;
        assert_eq!(
            wider.merge_from(&different).unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }

    fn valid_values() -> Vec<Vec<u8>> {
        let mut rng = SplitMix64(17);
        let mut out = vec![vec![0x11, 0x8b, 0x7f]];
        for (log2m, regwidth, n, cutoff) in [
            (11u8, 5u8, 5usize, 0x7fu8),
            (11, 5, 300, 0x7f),
            (11, 5, 3000, 0x7f),
            (4, 5, 100, 0x7f),
            (10, 4, 200, 0x3f),
            (14, 6, 20, 0x40),
            (6, 1, 50, 0x41),
            (17, 8, 2, 0x7f),
        ] {
            let mut value = PgHll {
                log2m,
                regwidth,
                cutoff,
                data: Data::Explicit(Arena::HEAP.vec()),
            };
            for _ in 0..n {
                let mut one = Arena::HEAP.vec();
                one.push(rng.next_u64() as i64);
                let single = PgHll {
                    data: Data::Explicit(one),
                    ..value.clone()
                };
                value.merge_from(&single).unwrap();
            }
            out.push(encoded(&value));
        }
        out
    }

    /// Forged bytes: an error of the right kind, never a panic; whatever is accepted encodes
    /// canonically, estimates a finite non-negative count, and survives our own format.
    #[test]
    fn fuzz_postgresql_hll_import() {
        let cases = env_u64("DISTCOUNT_FUZZ_CASES", 20_000);
        let mut rng = SplitMix64(env_u64("DISTCOUNT_FUZZ_SEED", 4242));
        let corpus = valid_values();
        let (mut accepted, mut refused) = (0u64, 0u64);
        for case in 0..cases {
            let mut bytes = corpus[rng.below(corpus.len())].clone();
            match rng.below(6) {
                0 => {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next_u64() as u8;
                }
                2 => bytes.truncate(rng.below(bytes.len() + 1)),
                3 => (0..1 + rng.below(9)).for_each(|_| bytes.push(rng.next_u64() as u8)),
                4 => {
                    let at = rng.below(3);
                    bytes[at] = rng.next_u64() as u8;
                }
                _ => {
                    let len = rng.below(40);
                    bytes = (0..len).map(|_| rng.next_u64() as u8).collect();
                }
            }
            match Sketch::from_postgresql_hll(&bytes, Arena::HEAP) {
                Ok(sketch) => {
                    accepted += 1;
                    let estimate = sketch.estimate();
                    assert!(
                        estimate.is_finite() && estimate >= 0.0,
                        "case {case}: {bytes:02x?}"
                    );
                    let ours = sketch.encode();
                    assert_eq!(Sketch::decode(&ours).unwrap(), sketch, "case {case}");
                    if let Some(back) = sketch.to_postgresql_hll() {
                        let again = import(&back).unwrap();
                        if let Some(again) = again {
                            assert_eq!(encoded(&again), back, "case {case}: not canonical");
                            assert_eq!(again.estimate().to_bits(), estimate.to_bits());
                        }
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.kind, ErrorKind::InvalidBinary, "case {case}: {e}");
                    assert!(e.detail.is_some());
                }
            }
        }
        assert!(
            accepted > 0 && refused > 0,
            "{accepted} accepted, {refused} refused"
        );
    }
}
