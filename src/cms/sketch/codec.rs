//! The binary and text forms of a sketch.
//!
//! # Binary format, version 1
//!
//! The same bytes on disk, in send/recv, in the bytea cast and in the serialized aggregate
//! state. Little-endian, no alignment (stored varlenas are only 4-byte aligned):
//!
//! ```text
//! offset  size  field
//!      0     1  format version (1)
//!      1     1  mode: 0 linear, 1 conservative
//!      2     1  counter bytes: 0 (every counter is 0, none stored), 1, 2, 4 or 8
//!      3     8  epsilon, f64 (IEEE 754 bits)
//!     11     8  delta, f64
//!     19     4  width, u32     = ⌈e / epsilon⌉ as computed in `dimensions`
//!     23     4  depth, u32     = ⌈ln(1 / delta)⌉ as computed in `dimensions`
//!     27     4  heavy capacity, u32 (0 to 16384)
//!     31     8  total N, i64
//!     39     8  heavy floor, i64 (bound on keys the list does not hold; 0 when capacity is 0)
//!     47     4  candidate count, u32 (at most the capacity)
//!     51        counters: depth rows of width signed integers of `counter bytes` each, row 0 first
//!               candidates, strictly ascending by key bytes, then tag, each:
//!                   u8 tag, u32 key length (at most 16384), the key bytes, i64 count, i64 error
//! ```
//!
//! The counter size is the smallest of 0, 1, 2, 4 and 8 bytes whose signed range holds every
//! counter, so an idle sketch is 51 bytes and a quiet one takes a byte a counter. The decoder
//! accepts only canonical bytes, so decoding and re-encoding gives back the input: besides the
//! ranges above it checks that the dimensions follow from epsilon and delta, that the counter
//! size is the smallest that fits, that every row sums to N (linear) or to at most N with no
//! negative counter (conservative), that `1 ≤ count`, `0 ≤ error ≤ count` and
//! `0 ≤ floor ≤ max(N, 0)`, and that nothing follows the last candidate. Candidate hashes are not
//! stored; they are recomputed from the keys. Lengths are checked against the input before any
//! allocation, so forged lengths cannot make it allocate more than the input and the counters of
//! the dimensions it names (at most 64 MiB).
//!
//! # Text format, version 1
//!
//! `cms1:` followed by the binary form in base64 (RFC 4648 standard alphabet, `=` padding),
//! with nothing before or after. Parsing is strict: the prefix is case-sensitive, no
//! whitespace, padding exactly as encoding produces it and unused bits zero, so every sketch has
//! exactly one text form. The text version names the wrapping; the binary version inside names
//! the layout.

use super::heavy::{HeavyList, MAX_HEAVY, MAX_KEY_BYTES};
use super::{Bounds, Mode, Sketch, count_min_lower, dimensions, error_bound, row_column};
use crate::common::arena::Arena;
use crate::common::base64::{self, Base64Error};
use crate::common::bytes::ByteReader;
use crate::common::error::{Error, ErrorKind, Result};

pub const FORMAT_VERSION: u8 = 1;
pub const TEXT_PREFIX: &str = "cms1:";
const HEADER_BYTES: usize = 51;
/// Tag, key length, count and error of a candidate with an empty key.
const MIN_CANDIDATE_BYTES: usize = 1 + 4 + 8 + 8;

/// The smallest of 1, 2, 4 and 8 bytes holding `value` as a signed integer; 0 for zero.
fn bytes_needed(value: i64) -> u8 {
    if value == 0 {
        0
    } else if i8::try_from(value).is_ok() {
        1
    } else if i16::try_from(value).is_ok() {
        2
    } else if i32::try_from(value).is_ok() {
        4
    } else {
        8
    }
}

/// The fewest bytes holding every one of `counters`: those of the two extremes.
fn counter_bytes_of(counters: &[i64]) -> u8 {
    let (low, high) = counters
        .iter()
        .fold((0i64, 0i64), |(low, high), &c| (low.min(c), high.max(c)));
    bytes_needed(low).max(bytes_needed(high))
}

/// Encodes counters as `N` little-endian bytes each with `narrow`.
fn write_counters<const N: usize>(counters: &[i64], raw: &mut [u8], narrow: fn(i64) -> [u8; N]) {
    for (chunk, &counter) in raw.chunks_exact_mut(N).zip(counters) {
        chunk.copy_from_slice(&narrow(counter));
    }
}

/// Decodes little-endian counters of `N` bytes each with `widen`.
fn read_counters<const N: usize>(raw: &[u8], counters: &mut [i64], widen: fn([u8; N]) -> i64) {
    for (counter, chunk) in counters.iter_mut().zip(raw.chunks_exact(N)) {
        let mut word = [0u8; N];
        word.copy_from_slice(chunk);
        *counter = widen(word);
    }
}

/// The fixed-size header of the binary form, every field checked on its own and against the
/// others; what the counters and candidates must agree with is checked by the decoder.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    mode: Mode,
    counter_bytes: u8,
    epsilon: f64,
    delta: f64,
    width: u32,
    depth: u32,
    capacity: u32,
    total: i64,
    floor: i64,
    candidate_count: u32,
}

impl Header {
    fn read(r: &mut ByteReader<'_>) -> Result<Header> {
        let version = r.u8("version")?;
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "unknown format version {version} (this build reads version {FORMAT_VERSION})"
            )));
        }
        let mode_code = r.u8("mode")?;
        let mode =
            Mode::from_code(mode_code).ok_or_else(|| bad(format!("unknown mode {mode_code}")))?;
        let counter_bytes = r.u8("counter size")?;
        if !matches!(counter_bytes, 0 | 1 | 2 | 4 | 8) {
            return Err(bad(format!(
                "counter size {counter_bytes} (0, 1, 2, 4 or 8 allowed)"
            )));
        }
        let epsilon = r.f64("epsilon")?;
        let delta = r.f64("delta")?;
        let width = r.u32("width")?;
        let depth = r.u32("depth")?;
        let (want_width, want_depth) = dimensions(epsilon, delta).map_err(|e| bad(e.message))?;
        if (width, depth) != (want_width, want_depth) {
            return Err(bad(format!(
                "dimensions {width}x{depth} do not follow from epsilon {epsilon} and delta {delta}, which give {want_width}x{want_depth}"
            )));
        }
        let capacity = r.u32("heavy capacity")?;
        if capacity > MAX_HEAVY {
            return Err(bad(format!(
                "heavy capacity {capacity} (at most {MAX_HEAVY})"
            )));
        }
        let total = r.i64("total")?;
        if mode == Mode::Conservative && total < 0 {
            return Err(bad(format!(
                "negative total {total} in a conservative sketch"
            )));
        }
        let floor = r.i64("heavy floor")?;
        if floor < 0 || floor > total.max(0) || (capacity == 0 && floor != 0) {
            return Err(bad(format!(
                "heavy floor {floor} is out of range for total {total} and capacity {capacity}"
            )));
        }
        let candidate_count = r.u32("candidate count")?;
        if candidate_count > capacity {
            return Err(bad(format!(
                "{candidate_count} candidates exceed the heavy capacity {capacity}"
            )));
        }
        Ok(Header {
            mode,
            counter_bytes,
            epsilon,
            delta,
            width,
            depth,
            capacity,
            total,
            floor,
            candidate_count,
        })
    }
}

/// Where the counters of an encoded sketch are, read from its header alone. A point query needs
/// only the header and one counter per row, so on a stored sketch it can fetch those few bytes
/// (TOAST slices) instead of detoasting and decoding the whole value: its cost does not grow
/// with the sketch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterLayout(Header);

impl CounterLayout {
    /// Bytes of the header [`CounterLayout::from_header`] reads.
    pub const HEADER_LEN: usize = HEADER_BYTES;

    /// The layout named by `header` (the first [`CounterLayout::HEADER_LEN`] bytes) of an
    /// encoded sketch of `encoded_len` bytes. It checks what finding counters relies on
    /// (version, counter size, dimensions, and that the counters lie within the value); the rest
    /// was validated when the value came in.
    pub fn from_header(header: &[u8], encoded_len: usize) -> Result<CounterLayout> {
        let h = Header::read(&mut ByteReader::new(header, "cms"))?;
        let counters_end =
            HEADER_BYTES + h.width as usize * h.depth as usize * h.counter_bytes as usize;
        if counters_end > encoded_len {
            return Err(bad(format!(
                "truncated: {encoded_len} bytes cannot hold the {}x{} counters",
                h.width, h.depth
            )));
        }
        Ok(CounterLayout(h))
    }

    /// N, the total weight added.
    pub fn total(&self) -> i64 {
        self.0.total
    }

    /// The same bounds as [`Sketch::bounds`], reading each row's counter with
    /// `read(offset, buffer)`, which fills `buffer` with the bytes at `offset` of the value.
    pub fn bounds(
        &self,
        hash: u64,
        mut read: impl FnMut(usize, &mut [u8]) -> Result<()>,
    ) -> Result<Bounds> {
        let Header {
            width,
            depth,
            counter_bytes,
            total,
            ..
        } = self.0;
        let size = counter_bytes as usize;
        let mut estimate = 0i64;
        if size > 0 {
            estimate = i64::MAX;
            let mut word = [0u8; 8];
            for row in 0..depth {
                let cell = row as usize * width as usize + row_column(hash, row, width) as usize;
                read(HEADER_BYTES + cell * size, &mut word[..size])?;
                // Sign-extend the little-endian counter of `size` bytes.
                let shift = 64 - 8 * size as u32;
                let counter = (i64::from_le_bytes(word) << shift) >> shift;
                estimate = estimate.min(counter);
            }
        }
        Ok(Bounds {
            estimate,
            lower: count_min_lower(estimate, error_bound(total, width)),
            upper: estimate,
        })
    }
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidBinary, "invalid binary data for type cms").with_detail(what)
}

impl Sketch {
    /// The bytes per counter the encoding uses (0, 1, 2, 4 or 8): the fewest that hold every
    /// counter.
    pub fn counter_bytes(&self) -> u8 {
        counter_bytes_of(&self.counters)
    }

    /// The length of [`Sketch::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len_with(self.counter_bytes())
    }

    fn encoded_len_with(&self, counter_bytes: u8) -> usize {
        let keys: usize = self.candidates().iter().map(|c| c.key.len()).sum();
        HEADER_BYTES
            + self.counters.len() * counter_bytes as usize
            + self.heavy_len() * MIN_CANDIDATE_BYTES
            + keys
    }

    /// The canonical binary form (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let counter_bytes = self.counter_bytes();
        let candidates = self.candidates();
        let mut out = Vec::with_capacity(self.encoded_len_with(counter_bytes));
        out.push(FORMAT_VERSION);
        out.push(self.mode.code());
        out.push(counter_bytes);
        out.extend_from_slice(&self.epsilon.to_le_bytes());
        out.extend_from_slice(&self.delta.to_le_bytes());
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.depth.to_le_bytes());
        out.extend_from_slice(&self.heavy.capacity().to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&self.heavy.floor().to_le_bytes());
        out.extend_from_slice(&(candidates.len() as u32).to_le_bytes());
        let start = out.len();
        out.resize(start + self.counters.len() * counter_bytes as usize, 0);
        let raw = &mut out[start..];
        // The narrowing casts keep every value: counter_bytes holds the extremes.
        match counter_bytes {
            0 => {}
            1 => write_counters::<1>(&self.counters, raw, |c| (c as i8).to_le_bytes()),
            2 => write_counters::<2>(&self.counters, raw, |c| (c as i16).to_le_bytes()),
            4 => write_counters::<4>(&self.counters, raw, |c| (c as i32).to_le_bytes()),
            _ => write_counters::<8>(&self.counters, raw, i64::to_le_bytes),
        }
        for c in &candidates {
            out.push(c.tag);
            out.extend_from_slice(&(c.key.len() as u32).to_le_bytes());
            out.extend_from_slice(c.key);
            out.extend_from_slice(&c.count.to_le_bytes());
            out.extend_from_slice(&c.error.to_le_bytes());
        }
        out
    }

    /// Decodes and fully validates the binary form; anything but canonical bytes is an
    /// `InvalidBinary` error.
    pub fn decode(bytes: &[u8]) -> Result<Sketch> {
        Sketch::decode_in(bytes, Arena::HEAP)
    }

    /// [`Sketch::decode`] into buffers in `arena`.
    pub fn decode_in(bytes: &[u8], arena: Arena) -> Result<Sketch> {
        if bytes.len() < HEADER_BYTES {
            return Err(bad(format!(
                "{} bytes is shorter than the {HEADER_BYTES}-byte header",
                bytes.len()
            )));
        }
        let mut r = ByteReader::new(bytes, "cms");
        let Header {
            mode,
            counter_bytes,
            epsilon,
            delta,
            width,
            depth,
            capacity,
            total,
            floor,
            candidate_count,
        } = Header::read(&mut r)?;

        // dimensions() bounds the cells by MAX_CELLS, so this neither overflows nor is absurd;
        // the length check comes before the allocation.
        let cells = width as usize * depth as usize;
        let raw = r.take(cells * counter_bytes as usize, "counters")?;
        let mut counters = arena.vec_filled(0i64, cells);
        match counter_bytes {
            0 => {}
            1 => read_counters::<1>(raw, &mut counters, |b| i64::from(i8::from_le_bytes(b))),
            2 => read_counters::<2>(raw, &mut counters, |b| i64::from(i16::from_le_bytes(b))),
            4 => read_counters::<4>(raw, &mut counters, |b| i64::from(i32::from_le_bytes(b))),
            _ => read_counters::<8>(raw, &mut counters, i64::from_le_bytes),
        }
        let widest = counter_bytes_of(&counters);
        if widest != counter_bytes {
            return Err(bad(format!(
                "counters stored in {counter_bytes} bytes fit in {widest} (not canonical)"
            )));
        }
        for (row, counters) in counters.chunks_exact(width as usize).enumerate() {
            let sum: i128 = counters.iter().map(|&c| i128::from(c)).sum();
            match mode {
                Mode::Linear if sum != i128::from(total) => {
                    return Err(bad(format!(
                        "row {row} sums to {sum}, not to the total {total}"
                    )));
                }
                Mode::Conservative if counters.iter().any(|&c| c < 0) => {
                    return Err(bad(format!(
                        "row {row} of a conservative sketch has a negative counter"
                    )));
                }
                Mode::Conservative if sum > i128::from(total) => {
                    return Err(bad(format!(
                        "row {row} sums to {sum}, above the total {total} of a conservative sketch"
                    )));
                }
                _ => {}
            }
        }

        if r.remaining() / MIN_CANDIDATE_BYTES < candidate_count as usize {
            return Err(bad(format!(
                "truncated: {candidate_count} candidates cannot fit in {} bytes",
                r.remaining()
            )));
        }
        let mut candidates: Vec<(&[u8], u8, i64, i64)> =
            Vec::with_capacity(candidate_count as usize);
        for index in 0..candidate_count {
            let what = format!("candidate {index}");
            let tag = r.u8(&what)?;
            let key_len = r.u32(&what)? as usize;
            if key_len > MAX_KEY_BYTES {
                return Err(bad(format!(
                    "{what} has a key of {key_len} bytes (at most {MAX_KEY_BYTES})"
                )));
            }
            let key = r.take(key_len, &what)?;
            check_key(key, tag).map_err(|problem| bad(format!("{what} {problem}")))?;
            let count = r.i64(&what)?;
            let error = r.i64(&what)?;
            if count < 1 || error < 0 || error > count {
                return Err(bad(format!(
                    "{what} has count {count} and error {error} (need 1 ≤ count, 0 ≤ error ≤ count)"
                )));
            }
            if let Some((prev_key, prev_tag, _, _)) = candidates.last()
                && (*prev_key, *prev_tag) >= (key, tag)
            {
                return Err(bad(format!(
                    "{what}: candidates are not strictly ascending by key and tag"
                )));
            }
            candidates.push((key, tag, count, error));
        }
        if r.remaining() != 0 {
            return Err(bad(format!(
                "{} trailing bytes after the last candidate",
                r.remaining()
            )));
        }
        Ok(Sketch {
            mode,
            epsilon,
            delta,
            width,
            depth,
            total,
            counters,
            heavy: HeavyList::from_parts(capacity, floor, candidates, arena),
        })
    }

    /// The canonical text form: `cms1:` and the binary form in base64.
    pub fn to_text(&self) -> String {
        let mut out = String::from(TEXT_PREFIX);
        base64::encode_into(&self.encode(), &mut out);
        out
    }

    /// Parses the text form strictly; errors are `InvalidText`.
    pub fn parse_text(text: &str) -> Result<Sketch> {
        let invalid = |what: String| {
            let shown: String = text.chars().take(40).collect();
            let ellipsis = if text.chars().count() > 40 { "..." } else { "" };
            Error::new(
                ErrorKind::InvalidText,
                format!("invalid input syntax for type cms: \"{shown}{ellipsis}\""),
            )
            .with_detail(what)
        };
        let Some(body) = text.strip_prefix(TEXT_PREFIX) else {
            return Err(invalid(format!(
                "A cms value starts with \"{TEXT_PREFIX}\"."
            )));
        };
        let bytes = base64::decode(body.as_bytes())
            .map_err(|e| invalid(format!("{}.", base64_detail(e))))?;
        Sketch::decode(&bytes).map_err(|e| invalid(e.detail.unwrap_or(e.message)))
    }
}

/// A text key (tag 2, `common::value_hash::KeyKind::Text`) must not hold a NUL byte: SQL text
/// cannot, and a forged one would show as a shorter, different string. Whether text keys are
/// valid in the server encoding is checked where that is known, in the SQL binding.
fn check_key(key: &[u8], tag: u8) -> std::result::Result<(), String> {
    if tag == 2 && key.contains(&0) {
        return Err("is a text key holding a NUL byte".into());
    }
    Ok(())
}

/// The detail of a text whose base64 is not canonical, as cms has always worded it.
pub(crate) fn base64_detail(e: Base64Error) -> String {
    match e {
        Base64Error::Length { len } => {
            format!("base64 text of {len} characters is not a multiple of 4 long")
        }
        Base64Error::MisplacedPadding { group } => {
            format!("misplaced \"=\" in base64 at character {group}")
        }
        Base64Error::InvalidCharacter { at } => {
            format!("invalid base64 character at character {at}")
        }
        Base64Error::NonZeroTrailingBits { group, .. } => {
            format!("non-canonical base64 padding at character {group}")
        }
    }
}

#[cfg(test)]
pub(super) fn base64_for_tests(bytes: &[u8]) -> String {
    let mut out = String::new();
    base64::encode_into(bytes, &mut out);
    out
}
