//! The binary and text forms (specified in the parent module's documentation).

use super::dense::Layout;
use super::estimate::MAX_ESTIMATE;
use super::hip::Hip;
use super::postgresql_hll::PgHll;
use super::sparse::{self, SparseSet};
use super::{
    MAX_PRECISION, MIN_PRECISION, RICE_SPARSE_PRECISION, Repr, SPARSE_PRECISION, Sketch, dense,
    explicit, huffman,
};
use crate::common::arena::{Arena, ArenaVec};
use crate::common::base64::{self, Base64Error};
use crate::common::error::{Error, ErrorKind, Result};

/// The newest version this build writes: 4 for the dense forms in the Huffman layout, which
/// came with it (7 with a martingale count, 8 without), and for the sparse form of 32-bit
/// tokens in Rice codes (9). A dense sketch is written in the shorter of the Huffman layout
/// and the 4-bit layout of version 3 (forms 5 and 6); the empty, explicit and imported forms,
/// and sparse sets of 26-bit tokens read from earlier values, in version 2, byte for byte as
/// before, so that stored values keep their bytes. It reads version 1 too (the same forms but
/// the explicit one), and the 6-bit dense form 2 of versions 1 and 2.
pub const FORMAT_VERSION: u8 = 4;
/// The version of the 4-bit dense forms 5 and 6.
pub const NIBBLE_FORMAT_VERSION: u8 = 3;
/// The version of forms 0 to 4.
pub const PLAIN_FORMAT_VERSION: u8 = 2;
const FIRST_FORMAT_VERSION: u8 = 1;
/// Prefix of the text form; the digit is the version of the text encoding.
pub const TEXT_PREFIX: &str = "hll1:";
pub const HEADER_LEN: usize = 4;
/// Bytes of the martingale count of form 5 (an f64).
const COUNT_LEN: usize = 8;
/// The longest valid binary value: dense with a count at the largest precision in the 4-bit
/// layout, every register but the base an escape (only crafted inputs come near; random ones
/// take about 0.36·2^p bytes in the Huffman layout, which is written only when shorter).
pub const MAX_ENCODED_LEN: usize =
    HEADER_LEN + COUNT_LEN + 1 + (1 << (MAX_PRECISION - 1)) + (1 << MAX_PRECISION) - 1;
/// The longest valid text value.
const MAX_TEXT_LEN: usize = TEXT_PREFIX.len() + MAX_ENCODED_LEN.div_ceil(3) * 4;

const FORM_EMPTY: u8 = 0;
const FORM_SPARSE: u8 = 1;
const FORM_DENSE: u8 = 2;
const FORM_EXPLICIT: u8 = 3;
const FORM_POSTGRESQL_HLL: u8 = 4;
const FORM_DENSE_MARTINGALE: u8 = 5;
const FORM_DENSE4: u8 = 6;
const FORM_HUFFMAN_MARTINGALE: u8 = 7;
const FORM_HUFFMAN: u8 = 8;
const FORM_SPARSE_RICE: u8 = 9;
/// The longest gap varint: gaps are below 2^26, 7 bits a byte.
const MAX_VARINT_BYTES: usize = 4;

/// Bytes of the 6-bit dense form 2 of versions 1 and 2 (read only). The sparse form yields to
/// the dense one beyond this length, as it always has, so that the forms of values stored
/// before version 3 are still canonical.
pub fn dense_encoded_len(p: u8) -> usize {
    HEADER_LEN + dense::packed_len(p)
}

fn invalid_binary(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidBinary, "invalid binary data for type hll").with_detail(detail)
}

fn invalid_registers(error: dense::PackedError, precision: u8) -> Error {
    match error {
        dense::PackedError::AboveMax(at) => invalid_binary(format!(
            "register {at} is above {}, the largest rank at precision {precision}",
            dense::max_rank(precision)
        )),
        dense::PackedError::AllZero => invalid_binary(
            "a dense hll with every register zero (not canonical: use the empty form)",
        ),
        dense::PackedError::Short { len, needed } => invalid_binary(format!(
            "the 4-bit registers at precision {precision} take at least {needed} bytes, not {len}"
        )),
        dense::PackedError::Escapes { escapes, bytes } => invalid_binary(format!(
            "{escapes} escaped registers need as many escape bytes, but {bytes} bytes follow the registers"
        )),
        dense::PackedError::BaseNotSmallest(base) => invalid_binary(format!(
            "no register equals the base {base} (not canonical: the base is the smallest register)"
        )),
        dense::PackedError::Truncated { len, needed } => invalid_binary(format!(
            "the Huffman layout at precision {precision} takes at least {needed} bytes, not {len}"
        )),
        dense::PackedError::HighAboveMax(high) => invalid_binary(format!(
            "the largest register {high} is above {}, the largest rank at precision {precision}",
            dense::max_rank(precision)
        )),
        dense::PackedError::LowAboveHigh { low, high } => invalid_binary(format!(
            "the smallest register {low} is above the largest {high}"
        )),
        dense::PackedError::BoundNotHeld(bound) => invalid_binary(format!(
            "no register holds the bound {bound} (its code length is 0; not canonical: the bounds are the smallest and the largest register)"
        )),
        dense::PackedError::NotPrefixCode => {
            invalid_binary("the Huffman code lengths do not make a complete prefix code")
        }
        dense::PackedError::AfterEqualBounds(bytes) => invalid_binary(format!(
            "{bytes} bytes follow the bounds of registers that are all equal (not canonical: nothing follows them)"
        )),
        dense::PackedError::NotHuffman => invalid_binary(
            "the code lengths are not those of the registers' Huffman code (not canonical)",
        ),
        dense::PackedError::LengthsPadding => {
            invalid_binary("non-zero bits after the Huffman code lengths")
        }
        dense::PackedError::StreamLength { stream, what } => {
            invalid_binary(format!("the length of Huffman stream {stream}: {what}"))
        }
        dense::PackedError::StreamEnd(stream, end) => invalid_binary(match end {
            dense::StreamEnd::PastEnd => {
                format!("the Huffman codes of stream {stream} run past its end")
            }
            dense::StreamEnd::TrailingBytes { bytes, used } => format!(
                "Huffman stream {stream} has {bytes} bytes, but its codes end in byte {used} (not canonical: a stream ends with its last code)"
            ),
            dense::StreamEnd::PaddingBits => format!(
                "non-zero bits after the last code of Huffman stream {stream} (not canonical: zero bits fill its last byte)"
            ),
        }),
        dense::PackedError::NotShorter { len, nibbles } => invalid_binary(format!(
            "the Huffman layout takes {len} bytes, the 4-bit layout of the same registers {nibbles} (not canonical: a value is in the Huffman layout only when that is shorter)"
        )),
    }
}

/// The fields of a header that passed validation.
struct Header {
    form: u8,
    precision: u8,
}

fn read_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(invalid_binary(format!(
            "{} bytes is longer than any hll ({MAX_ENCODED_LEN} bytes at most)",
            bytes.len()
        )));
    }
    let &[version, form, precision, sparse_precision, ..] = bytes else {
        return Err(invalid_binary(format!(
            "{} bytes is shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    };
    if !(FIRST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(invalid_binary(format!(
            "unknown format version {version} (this build reads versions {FIRST_FORMAT_VERSION} to {FORMAT_VERSION})"
        )));
    }
    if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
        return Err(invalid_binary(format!(
            "precision {precision} is out of range ({MIN_PRECISION} to {MAX_PRECISION})"
        )));
    }
    if form == FORM_SPARSE_RICE {
        if sparse_precision != RICE_SPARSE_PRECISION {
            return Err(invalid_binary(format!(
                "sparse precision {sparse_precision} is not supported (form {FORM_SPARSE_RICE} uses {RICE_SPARSE_PRECISION})"
            )));
        }
    } else if sparse_precision != SPARSE_PRECISION {
        return Err(invalid_binary(format!(
            "sparse precision {sparse_precision} is not supported (format version {version} uses {SPARSE_PRECISION})"
        )));
    }
    let payload = bytes.len() - HEADER_LEN;
    match form {
        FORM_EMPTY if payload != 0 => Err(invalid_binary(format!(
            "an empty hll has no payload, but {payload} bytes follow the header"
        ))),
        FORM_SPARSE if payload == 0 => Err(invalid_binary(
            "a sparse hll has no tokens (not canonical: use the empty form)",
        )),
        FORM_SPARSE if bytes.len() > dense_encoded_len(precision) => Err(invalid_binary(format!(
            "a sparse hll of {} bytes is longer than the dense form ({} bytes at precision {precision}); not canonical",
            bytes.len(),
            dense_encoded_len(precision)
        ))),
        FORM_DENSE if bytes.len() != dense_encoded_len(precision) => Err(invalid_binary(format!(
            "a dense hll at precision {precision} has {} bytes, not {}",
            bytes.len(),
            dense_encoded_len(precision)
        ))),
        FORM_EXPLICIT if version == FIRST_FORMAT_VERSION => Err(invalid_binary(
            "format version 1 has no explicit form (form 3 came with version 2)",
        )),
        FORM_EXPLICIT if payload == 0 || payload % 8 != 0 => Err(invalid_binary(format!(
            "an explicit hll holds whole 8-byte hashes, at least one, but has {payload} payload bytes"
        ))),
        FORM_EXPLICIT if payload / 8 > explicit::capacity(precision) => {
            Err(invalid_binary(format!(
                "an explicit hll of {} hashes is longer than precision {precision} allows ({}); not canonical",
                payload / 8,
                explicit::capacity(precision)
            )))
        }
        FORM_POSTGRESQL_HLL if version == FIRST_FORMAT_VERSION => Err(invalid_binary(
            "format version 1 has no postgresql-hll form (form 4 came with version 2)",
        )),
        FORM_DENSE_MARTINGALE | FORM_DENSE4 if version != NIBBLE_FORMAT_VERSION => {
            Err(invalid_binary(format!(
                "format version {version} has no form {form} (forms 5 and 6 came with version {NIBBLE_FORMAT_VERSION})"
            )))
        }
        FORM_HUFFMAN_MARTINGALE | FORM_HUFFMAN if version != FORMAT_VERSION => {
            Err(invalid_binary(format!(
                "format version {version} has no form {form} (forms 7 and 8 came with version {FORMAT_VERSION})"
            )))
        }
        FORM_SPARSE_RICE if version != FORMAT_VERSION => Err(invalid_binary(format!(
            "format version {version} has no form {form} (form 9 came with version {FORMAT_VERSION})"
        ))),
        FORM_SPARSE_RICE if payload == 0 => Err(invalid_binary(
            "a sparse hll has no tokens (not canonical: use the empty form)",
        )),
        FORM_DENSE_MARTINGALE | FORM_HUFFMAN_MARTINGALE if payload < COUNT_LEN => {
            Err(invalid_binary(format!(
                "a dense hll with a martingale count has {payload} payload bytes, fewer than its {COUNT_LEN}-byte count"
            )))
        }
        FORM_EMPTY | FORM_SPARSE | FORM_DENSE | FORM_EXPLICIT | FORM_POSTGRESQL_HLL
            if version > PLAIN_FORMAT_VERSION =>
        {
            Err(invalid_binary(format!(
                "form {form} belongs to format version {PLAIN_FORMAT_VERSION} or older, not {version} (not canonical)"
            )))
        }
        FORM_EMPTY
        | FORM_SPARSE
        | FORM_DENSE
        | FORM_EXPLICIT
        | FORM_POSTGRESQL_HLL
        | FORM_DENSE_MARTINGALE
        | FORM_DENSE4
        | FORM_HUFFMAN_MARTINGALE
        | FORM_HUFFMAN
        | FORM_SPARSE_RICE => Ok(Header { form, precision }),
        other => Err(invalid_binary(format!(
            "unknown form {other} (0 empty, 1 sparse in 26-bit tokens, 2 dense in 6 bits, 3 explicit, 4 postgresql-hll, 5 and 6 dense in 4 bits, 7 and 8 dense in Huffman codes, 9 sparse in 32-bit tokens; 5 and 7 with a martingale count)"
        ))),
    }
}

/// The martingale count of a decoded form-5 value: a number no smaller than the non-zero
/// registers (every change of a register adds at least 1) and no larger than 2^64.
fn checked_martingale(count: f64, counts: &[u32; 64], precision: u8) -> Result<Hip> {
    let proven = ((1u32 << precision) - counts[0]) as f64;
    if !(proven..=MAX_ESTIMATE).contains(&count) {
        return Err(invalid_binary(format!(
            "martingale count {count} is not between {proven} (the non-zero registers) and 2^64"
        )));
    }
    Ok(Hip::start_from_histogram(counts, precision, count))
}

/// Decodes a Rice-coded sparse payload (form 9) at precision `p`, checking every field: the
/// token count (1 to `max_tokens(p)`), each token's index below 2^32 and rank in range, and
/// that the stream ends in its last byte with zero bits after the last code.
fn decode_rice_tokens(payload: &[u8], precision: u8, arena: Arena) -> Result<ArenaVec<u64>> {
    let sp = RICE_SPARSE_PRECISION;
    let (n, used) =
        read_varint(payload).map_err(|what| invalid_binary(format!("the token count: {what}")))?;
    let n = n as usize;
    let max = sparse::max_tokens(precision);
    if n == 0 || n > max {
        return Err(invalid_binary(format!(
            "a sparse hll of {n} tokens (1 to {max} at precision {precision}; not canonical beyond: the dense form)"
        )));
    }
    let stream = &payload[used..];
    // Every token takes at least one bit.
    if n > stream.len() * 8 {
        return Err(invalid_binary(format!(
            "{n} tokens cannot fit in {} bytes of codes",
            stream.len()
        )));
    }
    let k = sparse::rice_parameter(n);
    let mut bits = BitReader::new(stream);
    let mut tokens = ArenaVec::with_capacity_in(n, arena);
    let mut previous: Option<u64> = None;
    for entry in 0..n {
        let truncated = || invalid_binary(format!("token {entry}: the codes run past the end"));
        let quotient = bits.unary().ok_or_else(truncated)?;
        let low = bits.take(k).ok_or_else(truncated)?;
        let index = (quotient << k | low)
            .checked_add(previous.map_or(0, |previous| previous + 1))
            .filter(|&index| index < sparse::buckets(sp))
            .ok_or_else(|| {
                invalid_binary(format!(
                    "token {entry}: index out of range (at most {})",
                    sparse::buckets(sp) - 1
                ))
            })?;
        let rank = if sparse::keeps_rank(index, sp) {
            let rank = bits.take(sparse::RICE_RANK_BITS).ok_or_else(truncated)? as u8;
            checked_rank(entry, rank, sp)?
        } else {
            0
        };
        tokens.push(sparse::token_from_parts(index, rank));
        previous = Some(index);
    }
    let used = bits.position.div_ceil(8);
    if used != stream.len() {
        return Err(invalid_binary(format!(
            "the codes of the sparse tokens end in byte {used} of {} (not canonical: the stream ends with its last code)",
            stream.len()
        )));
    }
    if !bits.position.is_multiple_of(8) && stream[used - 1] & (0xff >> (bits.position % 8)) != 0 {
        return Err(invalid_binary(
            "non-zero bits after the last code of the sparse tokens (not canonical: zero bits fill the last byte)",
        ));
    }
    Ok(tokens)
}

/// The rank of token `entry` at sparse precision `sp`, if in range (1 to 65 - sp).
fn checked_rank(entry: usize, rank: u8, sp: u8) -> Result<u8> {
    if rank == 0 || rank > sparse::max_rank(sp) {
        return Err(invalid_binary(format!(
            "token {entry}: rank {rank} is out of range (1 to {})",
            sparse::max_rank(sp)
        )));
    }
    Ok(rank)
}

/// Reads a bit stream most significant bit first.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bits read so far.
    position: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, position: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.bytes.get(self.position / 8)?;
        let bit = byte >> (7 - self.position % 8) & 1 == 1;
        self.position += 1;
        Some(bit)
    }

    /// The number of zero bits before the next one bit (which it takes too).
    fn unary(&mut self) -> Option<u64> {
        let mut zeros = 0u64;
        // Whole zero bytes at once, then bit by bit.
        while self.position.is_multiple_of(8) && self.bytes.get(self.position / 8) == Some(&0) {
            zeros += 8;
            self.position += 8;
        }
        while !self.bit()? {
            zeros += 1;
            if self.position.is_multiple_of(8) {
                while self.bytes.get(self.position / 8) == Some(&0) {
                    zeros += 8;
                    self.position += 8;
                }
            }
        }
        Some(zeros)
    }

    /// The next `count` (at most 32) bits as a number.
    fn take(&mut self, count: u32) -> Option<u64> {
        if self.position + count as usize > self.bytes.len() * 8 {
            return None;
        }
        let mut value = 0u64;
        for _ in 0..count {
            value = value << 1 | u64::from(self.bit()?);
        }
        Some(value)
    }
}

/// Writes a bit stream most significant bit first, zero bits to the end of the last byte.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bits waiting for a byte, in the low `pending` bits.
    acc: u64,
    pending: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Writes the low `count` (at most 32) bits of `value`.
    fn put(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 32);
        self.acc = self.acc << count | (value & ((1u64 << count) - 1));
        self.pending += count;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
    }

    fn zeros(&mut self, mut count: u64) {
        while count > 0 {
            let now = count.min(32) as u32;
            self.put(0, now);
            count -= u64::from(now);
        }
    }

    fn finish(self) {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
    }
}

/// Appends the form-9 payload of a sorted token list at p' = 32: the token count as a varint,
/// then the Rice-coded stream (see the parent module).
fn encode_rice_tokens(tokens: &[u64], out: &mut Vec<u8>) {
    write_varint(tokens.len() as u32, out);
    let k = sparse::rice_parameter(tokens.len());
    let mut bits = BitWriter::new(out);
    let mut previous = None;
    for &token in tokens {
        let index = sparse::index_of(token);
        let gap = sparse::gap(previous, index);
        bits.zeros(gap >> k);
        bits.put(1, 1);
        bits.put(gap, k);
        if sparse::keeps_rank(index, RICE_SPARSE_PRECISION) {
            bits.put(u64::from(sparse::rank_of(token)), sparse::RICE_RANK_BITS);
        }
        previous = Some(index);
    }
    bits.finish();
}

/// Decodes the token entries of a sparse payload of form 1 (26-bit tokens), checking every
/// field.
fn decode_tokens(payload: &[u8], arena: Arena) -> Result<ArenaVec<u64>> {
    // Every entry takes at least one byte, so the payload length bounds the allocation.
    let mut tokens = ArenaVec::with_capacity_in(payload.len(), arena);
    let mut pos = 0;
    let mut previous: Option<u64> = None;
    while pos < payload.len() {
        let entry = tokens.len();
        let (gap, used) = read_varint(&payload[pos..]).map_err(|what| {
            invalid_binary(format!("token {entry} at payload byte {pos}: {what}"))
        })?;
        pos += used;
        let buckets = sparse::buckets(SPARSE_PRECISION);
        let index = match previous {
            None => u64::from(gap),
            Some(previous) => previous + 1 + u64::from(gap),
        };
        if index >= buckets {
            return Err(invalid_binary(format!(
                "token {entry}: index out of range (at most {})",
                buckets - 1
            )));
        }
        let rank = if sparse::keeps_rank(index, SPARSE_PRECISION) {
            let Some(&rank) = payload.get(pos) else {
                return Err(invalid_binary(format!(
                    "token {entry}: truncated before its rank byte"
                )));
            };
            pos += 1;
            checked_rank(entry, rank, SPARSE_PRECISION)?
        } else {
            0
        };
        tokens.push(sparse::token_from_parts(index, rank));
        previous = Some(index);
    }
    Ok(tokens)
}

/// Decodes the hashes of an explicit payload (whole 8-byte words, checked by the header),
/// which must be strictly increasing.
fn decode_hashes(payload: &[u8], arena: Arena) -> Result<ArenaVec<u64>> {
    let mut hashes = ArenaVec::with_capacity_in(payload.len() / 8, arena);
    hashes.extend(
        payload
            .chunks_exact(8)
            .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default())),
    );
    match hashes.windows(2).position(|pair| pair[0] >= pair[1]) {
        Some(at) => Err(invalid_binary(format!(
            "explicit hashes {at} and {} are not strictly increasing",
            at + 1
        ))),
        None => Ok(hashes),
    }
}

/// Reads a LEB128 varint of at most 4 bytes with no overlong encoding. Returns the value and
/// the bytes it took.
pub(super) fn read_varint(bytes: &[u8]) -> std::result::Result<(u32, usize), &'static str> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_BYTES) {
        value |= ((byte & 0x7f) as u32) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err("overlong varint");
            }
            return Ok((value, i + 1));
        }
    }
    if bytes.len() < MAX_VARINT_BYTES {
        Err("truncated varint")
    } else {
        Err("varint longer than 4 bytes")
    }
}

pub(super) fn write_varint(mut value: u32, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Sketch {
    /// Bytes of the canonical binary form.
    pub fn encoded_len(&self) -> usize {
        let sketch = self.normalized();
        match &sketch.repr {
            Repr::Explicit(hashes) => HEADER_LEN + 8 * hashes.len(),
            Repr::Sparse(set) => HEADER_LEN + set.encoded_payload_len(),
            Repr::Dense(registers) => {
                let count = if sketch.hip.is_some() { COUNT_LEN } else { 0 };
                HEADER_LEN + count + dense::layout(registers).1
            }
            Repr::Foreign(value) => HEADER_LEN + value.encoded_len(),
        }
    }

    /// The canonical binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical binary form to `out` (e.g. after a varlena header).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let sketch = self.normalized();
        // A dense sketch's layout, chosen once: it takes a pass over the registers.
        let layout = match &sketch.repr {
            Repr::Dense(registers) => Some(dense::layout(registers)),
            _ => None,
        };
        let (form, version) = match (&sketch.repr, &layout, sketch.hip.is_some()) {
            (Repr::Explicit(hashes), ..) if hashes.is_empty() => (FORM_EMPTY, PLAIN_FORMAT_VERSION),
            (Repr::Explicit(_), ..) => (FORM_EXPLICIT, PLAIN_FORMAT_VERSION),
            (Repr::Sparse(set), ..) if set.precision() == RICE_SPARSE_PRECISION => {
                (FORM_SPARSE_RICE, FORMAT_VERSION)
            }
            (Repr::Sparse(_), ..) => (FORM_SPARSE, PLAIN_FORMAT_VERSION),
            (Repr::Foreign(_), ..) => (FORM_POSTGRESQL_HLL, PLAIN_FORMAT_VERSION),
            (_, Some((Layout::Huffman(_), _)), true) => (FORM_HUFFMAN_MARTINGALE, FORMAT_VERSION),
            (_, Some((Layout::Huffman(_), _)), false) => (FORM_HUFFMAN, FORMAT_VERSION),
            (_, _, true) => (FORM_DENSE_MARTINGALE, NIBBLE_FORMAT_VERSION),
            (_, _, false) => (FORM_DENSE4, NIBBLE_FORMAT_VERSION),
        };
        match &layout {
            Some((_, len)) => out.reserve(HEADER_LEN + COUNT_LEN + len),
            None => out.reserve(sketch.encoded_len()),
        }
        let sparse_precision = if form == FORM_SPARSE_RICE {
            RICE_SPARSE_PRECISION
        } else {
            SPARSE_PRECISION
        };
        out.extend_from_slice(&[version, form, sketch.precision, sparse_precision]);
        if let Some(hip) = &sketch.hip {
            out.extend_from_slice(&hip.count().to_le_bytes());
        }
        match (&sketch.repr, &layout) {
            (Repr::Explicit(hashes), _) => {
                hashes
                    .iter()
                    .for_each(|hash| out.extend_from_slice(&hash.to_le_bytes()));
            }
            (Repr::Sparse(set), _) if set.precision() == RICE_SPARSE_PRECISION => {
                encode_rice_tokens(set.tokens(), out)
            }
            (Repr::Sparse(set), _) => {
                let mut previous = None;
                for &token in set.tokens() {
                    let index = sparse::index_of(token);
                    write_varint(sparse::gap(previous, index) as u32, out);
                    if sparse::keeps_rank(index, SPARSE_PRECISION) {
                        out.push(sparse::rank_of(token));
                    }
                    previous = Some(index);
                }
            }
            (Repr::Dense(registers), Some((Layout::Huffman(code), _))) => {
                huffman::pack(registers, code, out)
            }
            (Repr::Dense(registers), _) => dense::pack4(registers, out),
            (Repr::Foreign(value), _) => value.encode_into(out),
        }
    }

    /// Decodes and fully validates the binary form; anything but a canonical value is refused.
    /// Never panics, and allocates at most about four times the input length.
    pub fn decode(bytes: &[u8]) -> Result<Sketch> {
        Sketch::decode_in(bytes, Arena::HEAP)
    }

    /// [`Sketch::decode`] into buffers in `arena`.
    pub fn decode_in(bytes: &[u8], arena: Arena) -> Result<Sketch> {
        let header = read_header(bytes)?;
        let precision = header.precision;
        let payload = &bytes[HEADER_LEN..];
        let mut hip = None;
        let repr = match header.form {
            FORM_EMPTY => Repr::Explicit(arena.vec()),
            FORM_EXPLICIT => Repr::Explicit(decode_hashes(payload, arena)?),
            FORM_SPARSE => Repr::Sparse(SparseSet::from_sorted(
                decode_tokens(payload, arena)?,
                SPARSE_PRECISION,
            )),
            FORM_SPARSE_RICE => Repr::Sparse(SparseSet::from_sorted(
                decode_rice_tokens(payload, precision, arena)?,
                RICE_SPARSE_PRECISION,
            )),
            FORM_POSTGRESQL_HLL => {
                let value = PgHll::decode_canonical(payload, arena).map_err(|e| {
                    invalid_binary(format!(
                        "the postgresql-hll value inside: {}",
                        e.detail.unwrap_or(e.message)
                    ))
                })?;
                if value.log2m() != precision {
                    return Err(invalid_binary(format!(
                        "precision {precision} differs from the log2m {} of the postgresql-hll value inside",
                        value.log2m()
                    )));
                }
                Repr::Foreign(value)
            }
            FORM_DENSE_MARTINGALE | FORM_DENSE4 | FORM_HUFFMAN_MARTINGALE | FORM_HUFFMAN => {
                // The header checked that forms 5 and 7 have their count.
                let with_count =
                    matches!(header.form, FORM_DENSE_MARTINGALE | FORM_HUFFMAN_MARTINGALE);
                let (count, packed) = payload.split_at(if with_count { COUNT_LEN } else { 0 });
                let max = dense::max_rank(precision);
                let (registers, counts) =
                    if matches!(header.form, FORM_DENSE_MARTINGALE | FORM_DENSE4) {
                        dense::unpack4(packed, precision, max, arena)
                            .map(|registers| (registers, None))
                    } else {
                        huffman::unpack(packed, precision, max, arena)
                            .map(|(registers, counts)| (registers, Some(counts)))
                    }
                    .map_err(|e| invalid_registers(e, precision))?;
                if with_count {
                    let count = f64::from_le_bytes(count.try_into().unwrap_or_default());
                    let counts = counts.unwrap_or_else(|| dense::histogram(&registers));
                    hip = Some(checked_martingale(count, &counts, precision)?);
                }
                Repr::Dense(registers)
            }
            _ => Repr::Dense(
                dense::unpack(payload, dense::max_rank(precision), arena)
                    .map_err(|e| invalid_registers(e, precision))?,
            ),
        };
        Ok(Sketch {
            precision,
            repr,
            hip,
        })
    }

    /// Merges an encoded sketch into `self`: `merge_from(&Sketch::decode(bytes)?)`. On error
    /// `self` is unchanged.
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<()> {
        self.merge_from(&Sketch::decode_in(bytes, self.arena())?)
    }

    /// The text form: `hll1:` and the binary form in base64.
    pub fn to_text(&self) -> String {
        Sketch::text_of_bytes(&self.encode())
    }

    /// The text form of valid binary bytes, as they are: a stored value of an earlier format
    /// version prints in that version (and reads back as the same sketch).
    pub fn text_of_bytes(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
        out.push_str(TEXT_PREFIX);
        base64::encode_into(bytes, &mut out);
        out
    }

    /// Parses the text form strictly (prefix, canonical base64, then the binary checks).
    pub fn parse_text(text: &str) -> Result<Sketch> {
        let invalid = |detail: String| {
            let shown: String = text.chars().take(60).collect();
            let ellipsis = if text.chars().nth(60).is_some() {
                "..."
            } else {
                ""
            };
            Error::new(
                ErrorKind::InvalidText,
                format!("invalid input syntax for type hll: \"{shown}{ellipsis}\""),
            )
            .with_detail(detail)
        };
        let Some(encoded) = text.strip_prefix(TEXT_PREFIX) else {
            return Err(invalid(format!(
                "An hll in text starts with \"{TEXT_PREFIX}\"."
            )));
        };
        if text.len() > MAX_TEXT_LEN {
            return Err(invalid(format!(
                "{} characters is longer than any hll ({MAX_TEXT_LEN} at most).",
                text.len()
            )));
        }
        let bytes = base64::decode(encoded.as_bytes()).map_err(|e| {
            let (at, what) = base64_detail(e);
            invalid(format!("At character {}: {what}.", at + TEXT_PREFIX.len()))
        })?;
        Sketch::decode(&bytes).map_err(|e| {
            let detail = e.detail.unwrap_or(e.message);
            invalid(format!("The decoded bytes are not a valid hll: {detail}."))
        })
    }
}

/// Where a text's base64 is not canonical (counted from the start of the base64) and why, as
/// hll has always worded it.
pub(crate) fn base64_detail(e: Base64Error) -> (usize, &'static str) {
    match e {
        Base64Error::Length { len } => (len, "base64 text must have a multiple of 4 characters"),
        Base64Error::MisplacedPadding { group } => (group, "misplaced \"=\" padding"),
        Base64Error::InvalidCharacter { at } => (at, "not a base64 character"),
        Base64Error::NonZeroTrailingBits { at, .. } => {
            (at, "non-zero bits in the final base64 character")
        }
    }
}
