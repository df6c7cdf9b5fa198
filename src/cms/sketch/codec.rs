//! The binary and text forms of a sketch.
//!
//! # Binary format, version 2
//!
//! The same bytes on disk, in send/recv, in the bytea cast and in the serialized aggregate
//! state. Little-endian, no alignment (stored varlenas are only 4-byte aligned):
//!
//! ```text
//! offset  size  field
//!      0     1  format version (2)
//!      1     1  mode: 0 linear, 1 conservative
//!      2     1  counter form: 0 zero (none stored), 1, 2, 4 or 8 dense (bytes a cell), 128 sparse
//!      3     8  epsilon, f64 (IEEE 754 bits)
//!     11     8  delta, f64
//!     19     4  width, u32     = ⌈e / epsilon⌉ as computed in `dimensions`
//!     23     4  depth, u32     = ⌈ln(1 / delta)⌉ as computed in `dimensions`
//!     27     4  heavy capacity, u32 (0 to 16384)
//!     31     8  total N, i64
//!     39     8  heavy floor, i64 (bound on keys the list does not hold; 0 when capacity is 0)
//!     47     4  candidate count, u32 (at most the capacity)
//!     51     4  counter section, u32: overflow entries of a dense form of 1, 2 or 4 bytes (at
//!               most 128), bytes of a sparse section (at most 8192), else 0
//!     55        counters in their form (see `layout`): dense cells row after row and the
//!               overflow list, or the sparse section
//!               candidates, strictly ascending by key bytes, then tag, each:
//!                   u8 tag, u32 key length (at most 16384), the key bytes, i64 count, i64 error
//! ```
//!
//! The form is the smallest for the counters (`layout::choose`): an idle sketch is 55 bytes, a
//! small one keeps only its nonzero counters (Exp-Golomb coded), and a large one a fixed-size
//! cell per counter, as narrow as most counters allow, the few larger ones in an overflow list,
//! so that a point query reads one cell a row. The decoder accepts only canonical bytes, so
//! decoding and re-encoding gives back the input: besides the ranges above it checks that the
//! dimensions follow from epsilon and delta, that the form is the one the encoder picks (and
//! its codes the encoder's), that every row sums to N (linear) or to at most N with no
//! negative counter (conservative), that `1 ≤ count`, `0 ≤ error ≤ count` and
//! `0 ≤ floor ≤ max(N, 0)`, and that nothing follows the last candidate. Candidate hashes are not
//! stored; they are recomputed from the keys. Lengths are checked against the input before any
//! allocation, so forged lengths cannot make it allocate more than the input and the counters of
//! the dimensions it names (at most 64 MiB).
//!
//! # Binary format, version 1 (read, never written)
//!
//! Written by 0.1.0 and by builds before format version 2, and still stored in tables: the header above
//! without the counter section field (51 bytes), byte 2 the size of every counter (0, 1, 2, 4
//! or 8, the smallest whose signed range holds them all), then the counters, all of that size,
//! and the candidates. A version-1 value reads to the same sketch, and point queries on it read
//! the same counters; it is written back as version 2 the next time it is stored.
//!
//! # Text format, version 1
//!
//! `cms1:` followed by the binary form in base64 (RFC 4648 standard alphabet, `=` padding),
//! with nothing before or after. Parsing is strict: the prefix is case-sensitive, no
//! whitespace, padding exactly as encoding produces it and unused bits zero, so every sketch has
//! exactly one text form. The text version names the wrapping; the binary version inside names
//! the layout.

use super::heavy::{HeavyList, MAX_HEAVY, MAX_KEY_BYTES};
use super::layout::{
    self, FORM_SPARSE, Form, MAX_OVERFLOW, OVERFLOW_ENTRY_BYTES, SPARSE_MAX_BYTES,
};
use super::{Bounds, Mode, Sketch, count_min_lower, dimensions, error_bound, row_column};
use crate::common::arena::Arena;
use crate::common::base64::{self, Base64Error};
use crate::common::bytes::ByteReader;
use crate::common::error::{Error, ErrorKind, Result};

pub const FORMAT_VERSION: u8 = 2;
pub const TEXT_PREFIX: &str = "cms1:";
/// Header bytes of version 1, which had no section field.
const HEADER_BYTES_V1: usize = 51;
const HEADER_BYTES: usize = 55;
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

/// The fixed-size header of the binary form, every field checked on its own and against the
/// others; what the counters and candidates must agree with is checked by the decoder.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    version: u8,
    mode: Mode,
    /// Version 1: the counter size. Version 2: the [`Form`] code.
    form: u8,
    epsilon: f64,
    delta: f64,
    width: u32,
    depth: u32,
    capacity: u32,
    total: i64,
    floor: i64,
    candidate_count: u32,
    /// Version 2: overflow entries (dense forms) or section bytes (sparse); 0 in version 1.
    section: u32,
}

impl Header {
    fn read(r: &mut ByteReader<'_>) -> Result<Header> {
        let version = r.u8("version")?;
        if !matches!(version, 1 | FORMAT_VERSION) {
            return Err(bad(format!(
                "unknown format version {version} (this build reads versions 1 and {FORMAT_VERSION})"
            )));
        }
        let mode_code = r.u8("mode")?;
        let mode =
            Mode::from_code(mode_code).ok_or_else(|| bad(format!("unknown mode {mode_code}")))?;
        let form = r.u8("counter size")?;
        if !(matches!(form, 0 | 1 | 2 | 4 | 8) || (version > 1 && form == FORM_SPARSE)) {
            return Err(bad(format!(
                "counter size {form} (0, 1, 2, 4 or 8 allowed{})",
                if version > 1 {
                    ", or 128 for sparse"
                } else {
                    ""
                }
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
        let section = if version == 1 {
            0
        } else {
            r.u32("counter section")?
        };
        let section_ok = match form {
            0 | 8 => section == 0,
            FORM_SPARSE => {
                section as usize > layout::table_len(width, depth)
                    && section as usize <= SPARSE_MAX_BYTES
            }
            _ => section <= MAX_OVERFLOW,
        };
        if !section_ok {
            return Err(bad(format!(
                "counter section {section} does not fit counter form {form} (overflow lists hold at most {MAX_OVERFLOW} entries, sparse sections more than their {} bytes of tables and at most {SPARSE_MAX_BYTES})",
                layout::table_len(width, depth)
            )));
        }
        Ok(Header {
            version,
            mode,
            form,
            epsilon,
            delta,
            width,
            depth,
            capacity,
            total,
            floor,
            candidate_count,
            section,
        })
    }

    fn len(&self) -> usize {
        if self.version == 1 {
            HEADER_BYTES_V1
        } else {
            HEADER_BYTES
        }
    }

    fn cells(&self) -> usize {
        self.width as usize * self.depth as usize
    }

    /// Bytes of the counters after the header.
    fn counters_len(&self) -> usize {
        match self.form {
            FORM_SPARSE => self.section as usize,
            bytes => layout::dense_len(self.cells(), bytes, self.section),
        }
    }
}

/// Where the counters of an encoded sketch are, read from its header alone. A point query needs
/// only the header and one counter per row, so on a stored sketch it can fetch those few bytes
/// (TOAST chunks) instead of detoasting and decoding the whole value: its cost does not grow
/// with the sketch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterLayout(Header);

impl CounterLayout {
    /// Bytes of the header [`CounterLayout::from_header`] reads at most (version 1 has 51).
    pub const HEADER_LEN: usize = HEADER_BYTES;

    /// The layout named by `header` (the first [`CounterLayout::HEADER_LEN`] bytes, or all of
    /// a shorter value) of an encoded sketch of `encoded_len` bytes. It checks what finding
    /// counters relies on (version, counter form, dimensions, and that the counters lie within
    /// the value); the rest was validated when the value came in.
    pub fn from_header(header: &[u8], encoded_len: usize) -> Result<CounterLayout> {
        let h = Header::read(&mut ByteReader::new(header, "cms"))?;
        if h.len() + h.counters_len() > encoded_len {
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

    /// The value's format version.
    pub fn version(&self) -> u8 {
        self.0.version
    }

    /// How the value stores its counters: the form (`zero`, `dense` or `sparse`; version 1
    /// values are all dense or zero), the bytes of a dense cell (0 for the others) and the
    /// entries of a dense form's overflow list.
    pub fn counter_form(&self) -> (&'static str, u8, u32) {
        match self.0.form {
            0 => ("zero", 0, 0),
            FORM_SPARSE => ("sparse", 0, 0),
            bytes => ("dense", bytes, self.0.section),
        }
    }

    /// The same bounds as [`Sketch::bounds`], reading each row's counter with
    /// `read(offset, buffer)`, which fills `buffer` with the bytes at `offset` of the value.
    /// Dense forms read one cell a row (and the overflow list once if a cell is escaped);
    /// the sparse form reads a row's table and one bucket of codes.
    pub fn bounds(
        &self,
        hash: u64,
        mut read: impl FnMut(usize, &mut [u8]) -> Result<()>,
    ) -> Result<Bounds> {
        let h = &self.0;
        let start = h.len();
        let mut estimate = 0i64;
        if h.form != 0 {
            estimate = i64::MAX;
            let mut overflow: Option<Vec<u8>> = None;
            for row in 0..h.depth {
                let column = row_column(hash, row, h.width);
                let counter = if h.form == FORM_SPARSE {
                    self.sparse_counter(row, column, &mut read)?
                } else {
                    let size = h.form as usize;
                    let cell = row as usize * h.width as usize + column as usize;
                    let mut word = [0u8; 8];
                    read(start + cell * size, &mut word[..size])?;
                    let counter = layout::read_cell(&word[..size]);
                    if h.version > 1 && layout::is_escape(counter, h.form) {
                        let list = match &mut overflow {
                            Some(list) => list,
                            None => {
                                let mut list = vec![0u8; h.section as usize * OVERFLOW_ENTRY_BYTES];
                                read(start + h.cells() * size, &mut list)?;
                                overflow.insert(list)
                            }
                        };
                        overflow_counter(list, cell)?
                    } else {
                        counter
                    }
                };
                estimate = estimate.min(counter);
            }
        }
        Ok(Bounds {
            estimate,
            lower: count_min_lower(estimate, error_bound(h.total, h.width)),
            upper: estimate,
        })
    }

    /// The counter at `column` of `row` of a sparse section: the row's table, then its bucket.
    fn sparse_counter(
        &self,
        row: u32,
        column: u32,
        read: &mut impl FnMut(usize, &mut [u8]) -> Result<()>,
    ) -> Result<i64> {
        let h = &self.0;
        let section = h.len();
        let table_bytes = layout::row_table_len(h.width);
        // At most 64 buckets a row: the table fits on the stack.
        let mut table = [0u8; layout::MAX_ROW_TABLE_LEN];
        let table = &mut table[..table_bytes];
        read(section + row as usize * table_bytes, table)?;
        let bucket = (column >> layout::bucket_shift(h.width)) as usize;
        let (orders, first_bit, end_bit) = layout::bucket_bounds(table, bucket);
        let codes_at = section + layout::table_len(h.width, h.depth);
        let codes_len =
            h.section as usize - layout::table_len(h.width, h.depth).min(h.section as usize);
        if first_bit > end_bit || end_bit.div_ceil(8) > codes_len {
            return Err(bad(format!(
                "row {row} has codes at bits {first_bit} to {end_bit}, beyond the section"
            )));
        }
        // Nine zero bytes after the codes let the decoder read whole words.
        let len = end_bit.div_ceil(8) - first_bit / 8;
        let mut codes = vec![0u8; len + 9];
        read(codes_at + first_bit / 8, &mut codes[..len])?;
        let skip = first_bit % 8;
        layout::sparse_counter(
            &codes,
            skip,
            skip + end_bit - first_bit,
            orders,
            h.width,
            column,
        )
        .map_err(|e| bad(format!("row {row}: {e}")))
    }
}

/// The counter of the escaped `cell` in an overflow list (ascending by cell index).
fn overflow_counter(list: &[u8], cell: usize) -> Result<i64> {
    let entries: Vec<&[u8]> = list.chunks_exact(OVERFLOW_ENTRY_BYTES).collect();
    entries
        .binary_search_by_key(&cell, |raw| layout::read_overflow_entry(raw).0 as usize)
        .map(|at| layout::read_overflow_entry(entries[at]).1)
        .map_err(|_| {
            bad(format!(
                "escaped cell {cell} is missing from the overflow list"
            ))
        })
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidBinary, "invalid binary data for type cms").with_detail(what)
}

impl Sketch {
    /// How the encoding lays out the counters: its form (`zero`, `dense` or `sparse`), the
    /// bytes of a dense cell (0 for the others) and the overflow entries of a dense form.
    pub fn counter_form(&self) -> (&'static str, u8, u32) {
        match layout::choose(&self.counters, self.width) {
            Form::Zero => ("zero", 0, 0),
            Form::Dense { bytes, overflow } => ("dense", bytes, overflow),
            Form::Sparse(_) => ("sparse", 0, 0),
        }
    }

    /// The length of [`Sketch::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len_with(&layout::choose(&self.counters, self.width))
    }

    fn encoded_len_with(&self, form: &Form) -> usize {
        let keys: usize = self.candidates().iter().map(|c| c.key.len()).sum();
        HEADER_BYTES + form.len(self.counters.len()) + self.heavy_len() * MIN_CANDIDATE_BYTES + keys
    }

    /// The canonical binary form (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let form = layout::choose(&self.counters, self.width);
        let candidates = self.candidates();
        let mut out = Vec::with_capacity(self.encoded_len_with(&form));
        out.push(FORMAT_VERSION);
        out.push(self.mode.code());
        out.push(form.code());
        out.extend_from_slice(&self.epsilon.to_le_bytes());
        out.extend_from_slice(&self.delta.to_le_bytes());
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.depth.to_le_bytes());
        out.extend_from_slice(&self.heavy.capacity().to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&self.heavy.floor().to_le_bytes());
        out.extend_from_slice(&(candidates.len() as u32).to_le_bytes());
        out.extend_from_slice(&form.section().to_le_bytes());
        match &form {
            Form::Zero => {}
            Form::Dense { bytes, .. } => layout::write_dense(&self.counters, *bytes, &mut out),
            Form::Sparse(section) => out.extend_from_slice(section),
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
        if bytes.len() < HEADER_BYTES_V1 {
            return Err(bad(format!(
                "{} bytes is shorter than a header ({HEADER_BYTES_V1} bytes in version 1, {HEADER_BYTES} in version 2)",
                bytes.len()
            )));
        }
        let mut r = ByteReader::new(bytes, "cms");
        let header = Header::read(&mut r)?;
        let Header {
            version,
            mode,
            form,
            epsilon,
            delta,
            width,
            depth,
            capacity,
            total,
            floor,
            candidate_count,
            section,
        } = header;

        // dimensions() bounds the cells by MAX_CELLS, so this neither overflows nor is absurd;
        // the length check comes before the allocation.
        let cells = header.cells();
        let raw = r.take(header.counters_len(), "counters")?;
        let mut counters = arena.vec_filled(0i64, cells);
        if version == 1 {
            // Version 1 has no escape: every cell is its counter.
            for (counter, cell) in counters
                .iter_mut()
                .zip(raw.chunks_exact(form.max(1) as usize))
            {
                *counter = layout::read_cell(cell);
            }
            let widest = counter_bytes_of(&counters);
            if widest != form {
                return Err(bad(format!(
                    "counters stored in {form} bytes fit in {widest} (not canonical)"
                )));
            }
        } else {
            match form {
                0 => {}
                FORM_SPARSE => {
                    layout::read_sparse(raw, width, depth, &mut counters).map_err(bad)?
                }
                bytes => {
                    let (cells_raw, overflow) = raw.split_at(cells * bytes as usize);
                    layout::read_dense(cells_raw, bytes, overflow, &mut counters).map_err(bad)?
                }
            }
            // Only the smallest form is canonical (read_sparse checked the codes themselves).
            if form == FORM_SPARSE {
                if !layout::sparse_is_chosen(&counters, width, raw.len()) {
                    let canonical = layout::choose(&counters, width);
                    return Err(bad(format!(
                        "a sparse section of {section} bytes is not canonical: the smallest form is {} with section {}",
                        canonical.code(),
                        canonical.section()
                    )));
                }
            } else {
                let canonical = layout::choose(&counters, width);
                if canonical.code() != form || canonical.section() != section {
                    return Err(bad(format!(
                        "counters stored in form {form} with section {section} (not canonical: the smallest form is {} with section {})",
                        canonical.code(),
                        canonical.section()
                    )));
                }
            }
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
        text_of(&self.encode())
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

/// The text form of an encoded sketch as it is (of any version the decoder accepts).
pub fn text_of(bytes: &[u8]) -> String {
    let mut out = String::from(TEXT_PREFIX);
    base64::encode_into(bytes, &mut out);
    out
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
