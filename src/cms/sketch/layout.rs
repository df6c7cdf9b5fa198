//! How the binary form (version 2) lays out the counters: the smallest of four forms, chosen
//! when the sketch is encoded (see [`choose`]).
//!
//! - **zero**: every counter is 0; nothing is stored.
//! - **dense, 1, 2 or 4 bytes a cell**: the counters row after row, each a signed cell of that
//!   size. A counter beyond ±(2^(8·size − 1) − 1) leaves the cell's most negative value (the
//!   escape) and is kept in the overflow list after the cells: a u32 cell index and the i64
//!   counter, ascending by index, at most [`MAX_OVERFLOW`] entries. A skewed stream's few large
//!   counters no longer widen every cell, and every counter keeps a fixed offset, so a point query
//!   reads one cell per row and, for an escaped cell, the list in one more read.
//! - **dense, 8 bytes a cell**: every counter as an i64, no escape.
//! - **sparse**: only the nonzero counters, as Exp-Golomb codes (see below). For small sketches
//!   only: at most [`SPARSE_MAX_BYTES`], a size that a stored value is fetched whole at anyway.
//!
//! # The sparse section
//!
//! Each row is cut into buckets of `2^shift` columns, `shift = max(7, ⌈log2 width⌉ − 6)` (at most
//! 64 buckets a row). The section holds, row after row, a table: the u8 Exp-Golomb order of the
//! row's gaps, the u8 order of its values, and `buckets + 1` u16 bit offsets into the codes (where
//! each bucket's codes start; the last one is where the row's end). Then the codes: every nonzero
//! counter of a bucket, by ascending column, as two codes: the gap (its column less the column
//! after the previous nonzero counter of the bucket, or less the bucket's first column) and its
//! value (v > 0 as 2(v − 1), v < 0 as 2|v| − 1). Codes are written most significant bit first
//! and the last byte is padded with zero bits. A point query decodes one bucket a row.
//!
//! Exp-Golomb of order k codes n ≥ 0 as m = n + 2^k written in binary, preceded by as many zero
//! bits as m has bits beyond k + 1. Each row's orders are those that minimize its length as
//! estimated from the bit lengths of its numbers (see [`order_for`]), so the choice is a function
//! of the counters and every sketch has one encoding.

/// Most entries of an overflow list: 1,536 bytes, which a point query reads in one piece.
pub const MAX_OVERFLOW: u32 = 128;
/// Bytes of an overflow entry: u32 cell index, i64 counter.
pub const OVERFLOW_ENTRY_BYTES: usize = 12;
/// Largest sparse section: above it, or when a dense form is no larger, the counters are dense.
pub const SPARSE_MAX_BYTES: usize = 8192;
/// The form byte of the sparse form (the dense forms are named by their cell size).
pub const FORM_SPARSE: u8 = 0x80;

/// The layout of a sketch's counters in the binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    Zero,
    Dense { bytes: u8, overflow: u32 },
    Sparse(Vec<u8>),
}

impl Form {
    /// The form byte of the header.
    pub fn code(&self) -> u8 {
        match self {
            Form::Zero => 0,
            Form::Dense { bytes, .. } => *bytes,
            Form::Sparse(_) => FORM_SPARSE,
        }
    }

    /// The header's section field: overflow entries (dense) or section bytes (sparse).
    pub fn section(&self) -> u32 {
        match self {
            Form::Zero => 0,
            Form::Dense { overflow, .. } => *overflow,
            Form::Sparse(section) => section.len() as u32,
        }
    }

    /// Bytes of the counters of `cells` cells in this form.
    pub fn len(&self, cells: usize) -> usize {
        match self {
            Form::Zero => 0,
            Form::Dense { bytes, overflow } => dense_len(cells, *bytes, *overflow),
            Form::Sparse(section) => section.len(),
        }
    }
}

pub fn dense_len(cells: usize, bytes: u8, overflow: u32) -> usize {
    cells * bytes as usize + overflow as usize * OVERFLOW_ENTRY_BYTES
}

/// The largest magnitude a cell of `bytes` bytes (1, 2 or 4) holds; its most negative value is
/// the escape.
fn cell_limit(bytes: u8) -> u64 {
    (1u64 << (8 * u32::from(bytes) - 1)) - 1
}

/// What the choice of form needs to know of the counters, in one pass.
struct Census {
    nonzero: usize,
    /// A lower bound on the sparse codes: a gap takes a bit, a value at least its number's bits.
    least_bits: usize,
    /// Counters beyond a cell of 1, 2 and 4 bytes.
    beyond: [usize; 3],
}

fn census(counters: &[i64]) -> Census {
    let mut census = Census {
        nonzero: 0,
        least_bits: 0,
        beyond: [0; 3],
    };
    for &c in counters {
        if c != 0 {
            census.nonzero += 1;
            census.least_bits += 1 + bit_length(value_number(c)).max(1);
            let magnitude = c.unsigned_abs();
            for (count, bytes) in census.beyond.iter_mut().zip([1u8, 2, 4]) {
                *count += usize::from(magnitude > cell_limit(bytes));
            }
        }
    }
    census
}

/// The smallest dense form (the narrowest on ties) and its length.
fn best_dense(census: &Census, cells: usize) -> (Form, usize) {
    let mut best = Form::Dense {
        bytes: 8,
        overflow: 0,
    };
    let mut best_len = cells * 8;
    for (bytes, overflow) in [1u8, 2, 4].into_iter().zip(census.beyond) {
        let len = dense_len(cells, bytes, overflow as u32);
        if overflow <= MAX_OVERFLOW as usize && len < best_len {
            best = Form::Dense {
                bytes,
                overflow: overflow as u32,
            };
            best_len = len;
        }
    }
    (best, best_len)
}

/// The length a sparse section must stay below to be chosen, or None when it cannot be: more
/// than half the counters nonzero (a point query would decode long buckets), or codes that
/// cannot be small enough.
fn sparse_bound(census: &Census, width: u32, cells: usize, dense_len: usize) -> Option<usize> {
    let bound = dense_len.min(SPARSE_MAX_BYTES + 1);
    let depth = (cells / width as usize) as u32;
    (census.nonzero * 2 <= cells && census.least_bits.div_ceil(8) + table_len(width, depth) < bound)
        .then_some(bound)
}

/// The smallest form of `counters` (rows of `width`): zero if every counter is; else the
/// narrowest of the smallest dense forms, unless the sparse section is smaller still, within
/// [`SPARSE_MAX_BYTES`], and at most half the counters are nonzero. Ties go to dense, whose
/// point queries read less.
pub fn choose(counters: &[i64], width: u32) -> Form {
    let census = census(counters);
    if census.nonzero == 0 {
        return Form::Zero;
    }
    let (best, best_len) = best_dense(&census, counters.len());
    if let Some(bound) = sparse_bound(&census, width, counters.len(), best_len)
        && let Some(section) = encode_sparse(counters, width)
        && section.len() < bound
    {
        return Form::Sparse(section);
    }
    best
}

/// Whether a sparse section of `len` bytes holding `counters` is the form [`choose`] gives,
/// once [`read_sparse`] has checked that the codes are the encoder's (so the length is too).
pub fn sparse_is_chosen(counters: &[i64], width: u32, len: usize) -> bool {
    let census = census(counters);
    let (_, best_len) = best_dense(&census, counters.len());
    census.nonzero > 0
        && sparse_bound(&census, width, counters.len(), best_len).is_some_and(|bound| len < bound)
}

// ---- dense -----------------------------------------------------------------------------------

/// Appends the cells and overflow list of `counters` with cells of `bytes` bytes.
pub fn write_dense(counters: &[i64], bytes: u8, out: &mut Vec<u8>) {
    let size = bytes as usize;
    if bytes == 8 {
        for &c in counters {
            out.extend_from_slice(&c.to_le_bytes());
        }
        return;
    }
    let limit = cell_limit(bytes);
    let escape = -(limit as i64) - 1;
    let mut overflow = Vec::new();
    for (index, &c) in counters.iter().enumerate() {
        let cell = if c.unsigned_abs() > limit {
            overflow.push((index as u32, c));
            escape
        } else {
            c
        };
        out.extend_from_slice(&cell.to_le_bytes()[..size]);
    }
    for (index, c) in overflow {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&c.to_le_bytes());
    }
}

/// The signed little-endian cell of `raw.len()` bytes (1 to 8).
pub fn read_cell(raw: &[u8]) -> i64 {
    let mut word = [0u8; 8];
    word[..raw.len()].copy_from_slice(raw);
    let shift = 64 - 8 * raw.len() as u32;
    (i64::from_le_bytes(word) << shift) >> shift
}

/// Whether a cell of `bytes` bytes holding `cell` sends the reader to the overflow list.
pub fn is_escape(cell: i64, bytes: u8) -> bool {
    bytes < 8 && cell == -(cell_limit(bytes) as i64) - 1
}

/// One overflow entry: cell index and counter.
pub fn read_overflow_entry(raw: &[u8]) -> (u32, i64) {
    let mut index = [0u8; 4];
    let mut value = [0u8; 8];
    index.copy_from_slice(&raw[..4]);
    value.copy_from_slice(&raw[4..12]);
    (u32::from_le_bytes(index), i64::from_le_bytes(value))
}

/// Fills `counters` from `cells` of `bytes` bytes each and the overflow list `overflow`,
/// checking that every escaped cell has its entry, in order, holding a counter too large for
/// a cell.
pub fn read_dense(
    cells: &[u8],
    bytes: u8,
    overflow: &[u8],
    counters: &mut [i64],
) -> Result<(), String> {
    let mut escaped = Vec::new();
    for (index, (counter, raw)) in counters
        .iter_mut()
        .zip(cells.chunks_exact(bytes as usize))
        .enumerate()
    {
        *counter = read_cell(raw);
        if is_escape(*counter, bytes) {
            escaped.push(index);
        }
    }
    let entries = overflow.len() / OVERFLOW_ENTRY_BYTES;
    if escaped.len() != entries {
        return Err(format!(
            "{} cells are escaped but the overflow list holds {entries} entries",
            escaped.len()
        ));
    }
    let limit = if bytes < 8 { cell_limit(bytes) } else { 0 };
    for (entry, (raw, &cell)) in overflow
        .chunks_exact(OVERFLOW_ENTRY_BYTES)
        .zip(&escaped)
        .enumerate()
    {
        let (index, value) = read_overflow_entry(raw);
        if index as usize != cell {
            return Err(format!(
                "overflow entry {entry} names cell {index}, not the escaped cell {cell}"
            ));
        }
        if value.unsigned_abs() <= limit {
            return Err(format!(
                "overflow entry {entry} holds {value}, which fits a {bytes}-byte cell (not canonical)"
            ));
        }
        counters[cell] = value;
    }
    Ok(())
}

// ---- sparse ----------------------------------------------------------------------------------

/// log2 of the columns of a bucket: at most 64 buckets a row, at least 128 columns each.
pub fn bucket_shift(width: u32) -> u32 {
    let log = 32 - width.saturating_sub(1).leading_zeros();
    log.saturating_sub(6).max(7)
}

fn buckets(width: u32) -> usize {
    (width as usize).div_ceil(1 << bucket_shift(width))
}

/// The largest row table: at most 64 buckets (see [`bucket_shift`]).
pub const MAX_ROW_TABLE_LEN: usize = 2 + 2 * 65;

/// Bytes of one row's table: two orders and `buckets + 1` u16 offsets.
pub fn row_table_len(width: u32) -> usize {
    2 + 2 * (buckets(width) + 1)
}

/// Bytes of all the rows' tables, before the codes.
pub fn table_len(width: u32, depth: u32) -> usize {
    depth as usize * row_table_len(width)
}

fn bit_length(n: u64) -> usize {
    64 - n.leading_zeros() as usize
}

/// The Exp-Golomb order for numbers whose bit lengths are counted in `lengths`: the one with
/// the fewest bits when an n of b bits is taken to cost max(k + 1, 2b − k − 1) bits (exact up to
/// the carry of n + 2^k), ties to the smaller order.
fn order_for(lengths: &[u64; 65]) -> u8 {
    let cost = |k: usize| -> u128 {
        lengths
            .iter()
            .enumerate()
            .map(|(b, &count)| {
                u128::from(count) * (k + 1).max((2 * b).saturating_sub(k + 1)) as u128
            })
            .sum()
    };
    (0..64).min_by_key(|&k| (cost(k), k)).unwrap_or(0) as u8
}

/// A value as a non-negative code number (0 is never coded).
fn value_number(v: i64) -> u64 {
    if v > 0 {
        2 * (v as u64 - 1)
    } else {
        (v.unsigned_abs() - 1) * 2 + 1
    }
}

fn number_value(n: u64) -> Option<i64> {
    let v = if n % 2 == 0 {
        i128::from(n / 2) + 1
    } else {
        -(i128::from(n / 2) + 1)
    };
    i64::try_from(v).ok()
}

/// Writes bits most significant first.
struct BitWriter {
    bytes: Vec<u8>,
    /// The last `pending` bits written, not yet a whole byte (fewer than 8).
    acc: u64,
    pending: u32,
    /// Bits written.
    bits: usize,
}

impl BitWriter {
    fn new() -> Self {
        BitWriter {
            bytes: Vec::new(),
            acc: 0,
            pending: 0,
            bits: 0,
        }
    }

    /// The low `count` (at most 32) bits of `value`.
    fn put(&mut self, value: u64, count: u32) {
        self.acc = (self.acc << count) | value;
        self.pending += count;
        self.bits += count as usize;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1 << self.pending) - 1;
    }

    /// The low `count` bits of `value`, in pieces of at most 32.
    fn put_wide(&mut self, value: u128, count: u32) {
        let mut left = count;
        while left > 0 {
            let piece = left.min(32);
            left -= piece;
            self.put(((value >> left) as u64) & ((1 << piece) - 1), piece);
        }
    }

    fn exp_golomb(&mut self, n: u64, k: u8) {
        let m = u128::from(n) + (1u128 << k);
        let len = 128 - m.leading_zeros();
        // len − k − 1 zeros, then m: the zeros are m's own leading bits in a field twice as wide.
        self.put_wide(m, 2 * len - u32::from(k) - 1);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.bytes.push((self.acc << (8 - self.pending)) as u8);
        }
        self.bytes
    }
}

/// Reads bits `pos..end` of `bytes`, most significant first.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8], pos: usize, end: usize) -> Self {
        BitReader { bytes, pos, end }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    fn bit(&mut self) -> Result<bool, String> {
        let byte = match self.bytes.get(self.pos / 8) {
            Some(&byte) if self.pos < self.end => byte,
            _ => return Err("a code runs past the end of its bucket".into()),
        };
        let one = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Ok(one)
    }

    /// The 64 bits from the current position, zeros past the end of the bytes.
    fn peek(&self) -> u64 {
        let at = self.pos / 8;
        let shift = self.pos % 8;
        // Nine whole bytes in the common case (callers pad their buffers), fewer at the end.
        let mut word = [0u8; 9];
        match self.bytes.get(at..at + 9) {
            Some(nine) => word.copy_from_slice(nine),
            None => {
                let rest = self.bytes.get(at..).unwrap_or_default();
                word[..rest.len()].copy_from_slice(rest);
            }
        }
        let mut high = [0u8; 8];
        high.copy_from_slice(&word[..8]);
        let high = u64::from_be_bytes(high);
        if shift == 0 {
            high
        } else {
            (high << shift) | u64::from(word[8] >> (8 - shift))
        }
    }

    fn exp_golomb(&mut self, k: u8) -> Result<u64, String> {
        if k > 63 {
            return Err(format!("Exp-Golomb order {k} (at most 63)"));
        }
        // The common case: the whole code within the next 64 bits.
        let word = self.peek();
        let zeros = word.leading_zeros();
        let len = 2 * zeros + u32::from(k) + 1;
        if len <= 64 {
            if self.pos + len as usize > self.end {
                return Err("a code runs past the end of its bucket".into());
            }
            let m = (word << zeros) >> (64 - (zeros + u32::from(k) + 1));
            self.pos += len as usize;
            return Ok(m - (1u64 << k));
        }
        self.exp_golomb_long(k)
    }

    fn exp_golomb_long(&mut self, k: u8) -> Result<u64, String> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros + u32::from(k) >= 65 {
                return Err("a code is longer than 64 bits".into());
            }
        }
        let mut m: u128 = 1;
        for _ in 0..zeros + u32::from(k) {
            m = (m << 1) | u128::from(self.bit()?);
        }
        u64::try_from(m - (1u128 << k)).map_err(|_| "a code is longer than 64 bits".into())
    }
}

/// Decodes the codes of one bucket whose first column is `first` and which ends before column
/// `stop`, giving each nonzero counter's column and value.
pub fn decode_bucket(
    reader: &mut BitReader<'_>,
    orders: (u8, u8),
    first: usize,
    stop: usize,
    mut each: impl FnMut(usize, i64) -> bool,
) -> Result<(), String> {
    let mut next = first;
    while !reader.at_end() {
        let gap = reader.exp_golomb(orders.0)?;
        let column = usize::try_from(gap)
            .ok()
            .and_then(|gap| next.checked_add(gap))
            .filter(|&column| column < stop)
            .ok_or_else(|| format!("a gap of {gap} leads past column {stop}"))?;
        let value = number_value(reader.exp_golomb(orders.1)?)
            .ok_or_else(|| "a value is out of range for type bigint".to_string())?;
        if !each(column, value) {
            return Ok(());
        }
        next = column + 1;
    }
    Ok(())
}

/// The sparse section of `counters`, or None if its codes pass the u16 bit offsets.
pub fn encode_sparse(counters: &[i64], width: u32) -> Option<Vec<u8>> {
    let shift = bucket_shift(width);
    let width = width as usize;
    let depth = counters.len() / width;
    let mut out = Vec::with_capacity(table_len(width as u32, depth as u32));
    let mut codes = BitWriter::new();
    for row in counters.chunks_exact(width) {
        // The numbers each bucket will code, for the row's orders.
        let (mut gaps, mut values) = ([0u64; 65], [0u64; 65]);
        for cells in row.chunks(1 << shift) {
            let mut next = 0;
            for (column, &c) in cells.iter().enumerate() {
                if c != 0 {
                    gaps[bit_length((column - next) as u64)] += 1;
                    values[bit_length(value_number(c))] += 1;
                    next = column + 1;
                }
            }
        }
        let orders = (order_for(&gaps), order_for(&values));
        out.extend_from_slice(&[orders.0, orders.1]);
        for cells in row.chunks(1 << shift) {
            out.extend_from_slice(&u16::try_from(codes.bits).ok()?.to_le_bytes());
            let mut next = 0;
            for (column, &c) in cells.iter().enumerate() {
                if c != 0 {
                    codes.exp_golomb((column - next) as u64, orders.0);
                    codes.exp_golomb(value_number(c), orders.1);
                    next = column + 1;
                }
            }
        }
        out.extend_from_slice(&u16::try_from(codes.bits).ok()?.to_le_bytes());
    }
    out.extend_from_slice(&codes.finish());
    Some(out)
}

/// One row's table: its orders and the bit offsets of bucket `bucket` and the next.
pub fn bucket_bounds(table: &[u8], bucket: usize) -> ((u8, u8), usize, usize) {
    let offset = |i: usize| usize::from(u16::from_le_bytes([table[2 + 2 * i], table[3 + 2 * i]]));
    ((table[0], table[1]), offset(bucket), offset(bucket + 1))
}

/// Fills `counters` (zeros) from a sparse `section`, checking that the section is the one the
/// encoder writes for them: buckets one after the other, the encoder's orders, zero padding
/// (Exp-Golomb codes are prefix-free and each number has one, so the codes follow). Whether the
/// sparse form is the one to choose is [`sparse_is_chosen`].
pub fn read_sparse(
    section: &[u8],
    width: u32,
    depth: u32,
    counters: &mut [i64],
) -> Result<(), String> {
    let tables = table_len(width, depth);
    if section.len() < tables {
        return Err(format!(
            "a sparse section of {} bytes cannot hold its {tables} bytes of tables",
            section.len()
        ));
    }
    let codes = &section[tables..];
    let shift = bucket_shift(width);
    let width = width as usize;
    let table_bytes = row_table_len(width as u32);
    // Each bucket's codes start where the previous bucket's end, so no bit is decoded twice.
    let mut expected = 0;
    for (row, table) in section[..tables].chunks_exact(table_bytes).enumerate() {
        let (mut gaps, mut values) = ([0u64; 65], [0u64; 65]);
        for bucket in 0..buckets(width as u32) {
            let (orders, start, end) = bucket_bounds(table, bucket);
            if start != expected || start > end || end > codes.len() * 8 {
                return Err(format!(
                    "row {row} bucket {bucket} has codes at bits {start} to {end}, not from bit {expected} within {}",
                    codes.len() * 8
                ));
            }
            expected = end;
            let first = bucket << shift;
            let stop = (first + (1 << shift)).min(width);
            let cells = &mut counters[row * width..(row + 1) * width];
            let mut next = first;
            decode_bucket(
                &mut BitReader::new(codes, start, end),
                orders,
                first,
                stop,
                |column, value| {
                    cells[column] = value;
                    gaps[bit_length((column - next) as u64)] += 1;
                    values[bit_length(value_number(value))] += 1;
                    next = column + 1;
                    true
                },
            )
            .map_err(|e| format!("row {row} bucket {bucket}: {e}"))?;
        }
        let canonical = (order_for(&gaps), order_for(&values));
        if (table[0], table[1]) != canonical {
            return Err(format!(
                "row {row} has Exp-Golomb orders {} and {}, not the encoder's {} and {} (not canonical)",
                table[0], table[1], canonical.0, canonical.1
            ));
        }
    }
    let padding = codes
        .last()
        .map_or(0, |&last| last & (0xff >> (expected % 8)));
    if expected.div_ceil(8) != codes.len() || (expected % 8 != 0 && padding != 0) {
        return Err(format!(
            "the codes end at bit {expected} of a {}-byte section with padding {padding:#x} (not canonical)",
            codes.len()
        ));
    }
    Ok(())
}

/// The counter at `column` of a row from its sparse bucket: the bytes `codes` hold bits
/// `start..end` of that bucket, from bit `skip`.
pub fn sparse_counter(
    codes: &[u8],
    skip: usize,
    end: usize,
    orders: (u8, u8),
    width: u32,
    column: u32,
) -> Result<i64, String> {
    let shift = bucket_shift(width);
    let first = ((column >> shift) << shift) as usize;
    let stop = (first + (1 << shift)).min(width as usize);
    let mut found = 0;
    decode_bucket(
        &mut BitReader::new(codes, skip, end),
        orders,
        first,
        stop,
        |at, value| {
            if at == column as usize {
                found = value;
            }
            at < column as usize
        },
    )?;
    Ok(found)
}
