//! The entropy-coded dense layout of format version 4 (forms 7 and 8): every register by its
//! canonical Huffman code over the register values, the code given by its lengths.
//!
//! Register values of a random set are concentrated: at `n` distinct values most registers
//! lie within a few ranks of `log2(n/m)`, with a distribution that hardly depends on `n`
//! (entropy about 2.83 bits at any n above a few `m`, 2.0 bits at `n = 0.6·m`). A Huffman code
//! over the values that occur takes about 2.86 bits a register: about 5,880 bytes at p = 14
//! where the 4-bit layout takes 8,200. The code is Huffman's code of the registers' own
//! histogram, so it fits any registers, forged or not, and its lengths, 5 bits a value, are all
//! the table a value needs.
//!
//! ```text
//! u8   low: the smallest register
//! u8   high: the largest register (low <= high <= 65 - p, high > 0)
//! when low < high:
//!      high - low + 1 code lengths of 5 bits, for the values low..=high (0: no register holds
//!      the value; else 1 to 31), most significant bit first, zero bits to the end of a byte
//!      3 varints (LEB128, as the sparse form's): the bytes of streams 0, 1 and 2
//!      4 streams: stream k codes registers k·2^p/4 to (k+1)·2^p/4 - 1 in order, each by the
//!      code of its value, most significant bit first; zero bits to the end of its last byte.
//!      Stream 3 takes the rest of the value.
//! when low == high (every register equal), nothing more
//! ```
//!
//! The code lengths are those of [`code_lengths`] for the registers' histogram, and codes are
//! assigned canonically, as in DEFLATE: by increasing length, values of one length by
//! increasing value, each code the previous one plus 1, shifted left by the difference in
//! length (the first code is all zeros). Four streams let a decoder follow four chains of
//! codes at once (one stream is a single chain: where a code ends is known only once it is
//! decoded). A value is written in this layout only when it is shorter than the 4-bit layout
//! of the same registers; the decoder refuses anything else (another code, other stream
//! lengths, overlong varints, trailing bits or bytes), so the bytes are canonical.

use super::codec::{read_varint, write_varint};
use super::dense::{self, PackedError, StreamEnd};
use super::sparse::varint_len;
use crate::common::arena::{Arena, ArenaVec};

/// The longest code length a length field holds. Huffman's code of at most 2^18 registers
/// never needs more than 25 bits (the lightest trees that reach depth `d` are those of the
/// Fibonacci weights, which add up to `F(d + 3) - 1`, and `F(29) - 1 > 2^18`).
const MAX_CODE_LEN: u32 = 31;
/// Bits of a code length field.
const LENGTH_BITS: u32 = 5;
/// Bytes of `low` and `high`.
const BOUNDS_LEN: usize = 2;
/// The registers are coded in this many streams, one quarter each.
const STREAMS: usize = 4;
/// Codes up to this length are decoded by table lookups; longer ones (rare values) by the
/// canonical code's arithmetic.
const TABLE_BITS: u32 = 11;
/// Symbols decoded by one lookup at most.
const PER_LOOKUP: u32 = 3;

/// Huffman's code of a register histogram, and the bytes of the streams it gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    low: u8,
    high: u8,
    /// By value: 0 for a value that no register holds, and for the value of registers that
    /// are all equal.
    lengths: [u8; 64],
    stream_bytes: [usize; STREAMS],
}

/// The histograms of the four quarters of `registers` (each value at most 63), and their sum.
pub fn quarter_histograms(registers: &[u8]) -> ([[u32; 64]; STREAMS], [u32; 64]) {
    let mut counts = [[0u32; 64]; STREAMS];
    let q = registers.len() / STREAMS;
    // Four tables filled side by side: no increment waits for the one before.
    let (a, rest) = registers.split_at(q);
    let (b, rest) = rest.split_at(q);
    let (c, d) = rest.split_at(q);
    for (((&a, &b), &c), &d) in a.iter().zip(b).zip(c).zip(d) {
        counts[0][(a & 63) as usize] += 1;
        counts[1][(b & 63) as usize] += 1;
        counts[2][(c & 63) as usize] += 1;
        counts[3][(d & 63) as usize] += 1;
    }
    let mut total = [0u32; 64];
    for quarter in &counts {
        for (t, &c) in total.iter_mut().zip(quarter) {
            *t += c;
        }
    }
    (counts, total)
}

impl Code {
    /// The code of registers whose quarters have the histograms `quarters` (adding up to
    /// `total`, at least one register).
    pub fn of_histograms(quarters: &[[u32; 64]; STREAMS], total: &[u32; 64]) -> Code {
        let low = total.iter().position(|&c| c != 0).unwrap_or(0) as u8;
        let high = total.iter().rposition(|&c| c != 0).unwrap_or(0) as u8;
        let lengths = code_lengths(total);
        Code {
            low,
            high,
            lengths,
            stream_bytes: stream_bytes(quarters, &lengths),
        }
    }

    /// This code with other lengths (for tests that forge values), the streams' bytes
    /// recomputed for `registers`.
    #[cfg(test)]
    pub fn with_lengths(self, lengths: [u8; 64], registers: &[u8]) -> Code {
        let (quarters, _) = quarter_histograms(registers);
        Code {
            lengths,
            stream_bytes: stream_bytes(&quarters, &lengths),
            ..self
        }
    }

    /// Bytes of the layout.
    pub fn encoded_len(&self) -> usize {
        if self.low == self.high {
            return BOUNDS_LEN;
        }
        BOUNDS_LEN
            + lengths_len(self.low, self.high)
            + self.stream_bytes[..STREAMS - 1]
                .iter()
                .map(|&b| varint_len(b as u32))
                .sum::<usize>()
            + self.stream_bytes.iter().sum::<usize>()
    }
}

/// The bytes of each stream: the codes of its quarter's registers, to a whole byte.
fn stream_bytes(quarters: &[[u32; 64]; STREAMS], lengths: &[u8; 64]) -> [usize; STREAMS] {
    quarters.map(|counts| {
        let bits: u64 = counts
            .iter()
            .zip(lengths)
            .map(|(&c, &l)| u64::from(c) * u64::from(l))
            .sum();
        bits.div_ceil(8) as usize
    })
}

/// Bytes of the code lengths of the values `low..=high`.
fn lengths_len(low: u8, high: u8) -> usize {
    (LENGTH_BITS as usize * (usize::from(high - low) + 1)).div_ceil(8)
}

/// The code lengths of Huffman's code for `counts`: symbol `s` occurs `counts[s]` times;
/// symbols that do not occur get 0, and so does a symbol that occurs alone (it needs no bits).
///
/// The procedure is part of the format (the decoder checks that a value's lengths are these):
/// the symbols that occur are leaves, ordered by count and, among equal counts, by symbol.
/// The two lightest trees are joined until one is left, a leaf before a joined tree of the
/// same weight, joined trees in the order they were made (the two-queue form of Huffman's
/// algorithm). A symbol's length is the depth of its leaf.
pub fn code_lengths(counts: &[u32; 64]) -> [u8; 64] {
    let mut lengths = [0u8; 64];
    // Leaves: the symbols that occur, by (count, symbol). Insertion sort keeps equal counts in
    // symbol order; at most 64 of them.
    let mut leaves = [0u8; 64];
    let mut n = 0;
    for (symbol, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mut at = n;
        while at > 0 && counts[leaves[at - 1] as usize] > count {
            leaves[at] = leaves[at - 1];
            at -= 1;
        }
        leaves[at] = symbol as u8;
        n += 1;
    }
    if n < 2 {
        return lengths;
    }
    // Nodes 0..n are the leaves in that order, n.. the joined trees as they are made.
    let mut weight = [0u64; 128];
    let mut parent = [0u8; 128];
    for (w, &symbol) in weight.iter_mut().zip(&leaves[..n]) {
        *w = u64::from(counts[symbol as usize]);
    }
    let (mut next_leaf, mut next_joined, mut made) = (0, n, n);
    for _ in 1..n {
        let mut lightest = [0usize; 2];
        for pick in &mut lightest {
            let take_leaf =
                next_leaf < n && (next_joined == made || weight[next_leaf] <= weight[next_joined]);
            *pick = if take_leaf {
                next_leaf += 1;
                next_leaf - 1
            } else {
                next_joined += 1;
                next_joined - 1
            };
        }
        weight[made] = weight[lightest[0]] + weight[lightest[1]];
        parent[lightest[0]] = made as u8;
        parent[lightest[1]] = made as u8;
        made += 1;
    }
    // Every parent is made after its children: depths from the root (the last node) down.
    let mut depth = [0u8; 128];
    for node in (0..made - 1).rev() {
        depth[node] = depth[parent[node] as usize] + 1;
    }
    for (i, &symbol) in leaves[..n].iter().enumerate() {
        lengths[symbol as usize] = depth[i];
    }
    lengths
}

/// The canonical codes of `lengths` (right-aligned, the length of each in `lengths`), or None
/// when the lengths do not make a complete prefix code (Kraft's sum is not exactly 1).
fn canonical_codes(lengths: &[u8; 64]) -> Option<[u32; 64]> {
    let mut per_length = [0u32; MAX_CODE_LEN as usize + 1];
    for &l in lengths {
        *per_length.get_mut(l as usize)? += 1;
    }
    per_length[0] = 0;
    // Kraft's sum in units of 2^-31: exactly 2^31 for a complete code.
    let kraft: u64 = (1..=MAX_CODE_LEN)
        .map(|l| u64::from(per_length[l as usize]) << (MAX_CODE_LEN - l))
        .sum();
    if kraft != 1 << MAX_CODE_LEN {
        return None;
    }
    let mut next = [0u32; MAX_CODE_LEN as usize + 1];
    let mut code = 0u32;
    for l in 1..=MAX_CODE_LEN as usize {
        code = (code + per_length[l - 1]) << 1;
        next[l] = code;
    }
    let mut codes = [0u32; 64];
    for (symbol, &l) in lengths.iter().enumerate() {
        if l != 0 {
            codes[symbol] = next[l as usize];
            next[l as usize] += 1;
        }
    }
    Some(codes)
}

/// Writes bits most significant first into a slice of exactly the right length.
struct BitWriter<'a> {
    out: &'a mut [u8],
    at: usize,
    acc: u64,
    pending: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        BitWriter {
            out,
            at: 0,
            acc: 0,
            pending: 0,
        }
    }

    /// The low `count` (at most 32) bits of `value`.
    #[inline]
    fn put(&mut self, value: u32, count: u32) {
        self.acc = (self.acc << count) | u64::from(value);
        self.pending += count;
        if self.pending >= 32 {
            self.pending -= 32;
            let word = ((self.acc >> self.pending) as u32).to_be_bytes();
            if let Some(four) = self.out.get_mut(self.at..self.at + 4) {
                four.copy_from_slice(&word);
            }
            self.at += 4;
        }
    }

    /// Writes the bits left, zero bits to the end of the last byte.
    fn finish(mut self) {
        while self.pending > 0 {
            let take = self.pending.min(8);
            let byte = ((self.acc << (8 - take)) >> (self.pending - take)) as u8;
            if let Some(b) = self.out.get_mut(self.at) {
                *b = byte;
            }
            self.at += 1;
            self.pending -= take;
        }
        debug_assert_eq!(self.at, self.out.len());
    }
}

/// Appends the layout of `registers` under `code` (which must be the code of their histogram).
pub fn pack(registers: &[u8], code: &Code, out: &mut Vec<u8>) {
    out.reserve(code.encoded_len());
    out.extend_from_slice(&[code.low, code.high]);
    if code.low == code.high {
        return;
    }
    let mut lengths = [0u8; 40];
    let lengths = &mut lengths[..lengths_len(code.low, code.high)];
    let mut bits = BitWriter::new(lengths);
    for &l in &code.lengths[code.low as usize..=code.high as usize] {
        bits.put(u32::from(l), LENGTH_BITS);
    }
    bits.finish();
    out.extend_from_slice(lengths);
    for &bytes in &code.stream_bytes[..STREAMS - 1] {
        write_varint(bytes as u32, out);
    }
    let start = out.len();
    out.resize(start + code.stream_bytes.iter().sum::<usize>(), 0);
    let rest = &mut out[start..];
    let codes = canonical_codes(&code.lengths).unwrap_or([0; 64]);
    // (code, length) by value, in one word for one load a register.
    let mut table = [0u64; 64];
    for (entry, (&c, &l)) in table.iter_mut().zip(codes.iter().zip(&code.lengths)) {
        *entry = u64::from(c) << 8 | u64::from(l);
    }
    let (out0, rest) = rest.split_at_mut(code.stream_bytes[0]);
    let (out1, rest) = rest.split_at_mut(code.stream_bytes[1]);
    let (out2, out3) = rest.split_at_mut(code.stream_bytes[2]);
    let mut writers = [out0, out1, out2, out3].map(BitWriter::new);
    let q = registers.len() / STREAMS;
    // The four streams side by side: four chains of bit arithmetic at once.
    for i in 0..q {
        for (k, writer) in writers.iter_mut().enumerate() {
            let entry = table[(registers[k * q + i] & 63) as usize];
            writer.put((entry >> 8) as u32, (entry & 0xff) as u32);
        }
    }
    writers.into_iter().for_each(BitWriter::finish);
}

/// The 64 bits from byte `at` of `bytes` (big-endian), zeros past the end.
#[inline]
fn load(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(eight) => u64::from_be_bytes(eight.try_into().unwrap_or_default()),
        None => {
            let mut eight = [0u8; 8];
            let rest = bytes.get(at..).unwrap_or_default();
            eight[..rest.len()].copy_from_slice(rest);
            u64::from_be_bytes(eight)
        }
    }
}

/// Reads bits most significant first, zeros past the end: `window` holds the next `valid`
/// bits at its top. A refill ORs in the next 8 bytes below them and counts the whole bytes
/// that fit; the bits of the byte that did not fit are ORed in again, in the same place, by
/// the next refill (F. Giesen, "Reading bits in far too many ways", variant 4).
#[derive(Clone, Copy)]
struct BitReader<'a> {
    bytes: &'a [u8],
    window: u64,
    valid: u32,
    /// The next byte to load.
    next: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            window: 0,
            valid: 0,
            next: 0,
        }
    }

    /// At least 56 valid bits afterwards.
    #[inline]
    fn refill(&mut self) {
        self.window |= load(self.bytes, self.next) >> self.valid;
        let took = (63 - self.valid) >> 3;
        self.next += took as usize;
        self.valid += took * 8;
    }

    #[inline]
    fn consume(&mut self, bits: u32) {
        self.window <<= bits;
        self.valid -= bits;
    }

    /// Checks that the bits read so far end in the last byte, the rest of which is zero bits.
    fn check_end(&self) -> Result<(), StreamEnd> {
        let pos = self.next * 8 - self.valid as usize;
        let (len, used) = (self.bytes.len(), pos.div_ceil(8));
        if used > len {
            Err(StreamEnd::PastEnd)
        } else if used < len {
            Err(StreamEnd::TrailingBytes { bytes: len, used })
        } else if (load(self.bytes, pos / 8) << (pos % 8)) >> 56 != 0 {
            Err(StreamEnd::PaddingBits)
        } else {
            Ok(())
        }
    }
}

/// What decoding needs of a canonical code: tables indexed by the next `table_bits` bits, and
/// for the codes longer than that (rare values) the first code and the position among the
/// sorted symbols of each length.
struct Decoder {
    table_bits: u32,
    /// `symbol << 8 | length` of the code that starts the bits, 0 where a longer code starts.
    single: [u16; 1 << TABLE_BITS],
    /// Up to three codes that lie within the bits: their symbols in bytes 0 to 2, then the
    /// number of symbols (bits 24 and 25) and their total length (bits 27 to 31); 0 where a
    /// longer code starts.
    multi: [u32; 1 << TABLE_BITS],
    longest: u32,
    first: [u32; MAX_CODE_LEN as usize + 1],
    count: [u32; MAX_CODE_LEN as usize + 1],
    offset: [u32; MAX_CODE_LEN as usize + 1],
    /// Symbols by (length, symbol).
    sorted: [u8; 64],
}

impl Decoder {
    /// `table_bits` (at most [`TABLE_BITS`]) sets the size of the tables, which take
    /// `2^table_bits` steps to fill: small sketches get small ones. (Inlined: its 12 KB are
    /// then built where they stay, not copied there.)
    #[inline(always)]
    fn new(lengths: &[u8; 64], codes: &[u32; 64], table_bits: u32) -> Decoder {
        let longest = lengths.iter().copied().max().unwrap_or(0) as u32;
        let table_bits = longest.min(table_bits).max(1);
        let mut decoder = Decoder {
            table_bits,
            single: [0; 1 << TABLE_BITS],
            multi: [0; 1 << TABLE_BITS],
            longest,
            first: [0; MAX_CODE_LEN as usize + 1],
            count: [0; MAX_CODE_LEN as usize + 1],
            offset: [0; MAX_CODE_LEN as usize + 1],
            sorted: [0; 64],
        };
        for &l in lengths.iter().filter(|&&l| l != 0) {
            decoder.count[l as usize] += 1;
        }
        let mut at = 0;
        for l in 1..=MAX_CODE_LEN as usize {
            decoder.offset[l] = at;
            at += decoder.count[l];
        }
        let mut placed = decoder.offset;
        // The codes that fit the tables, for the entries of several codes.
        let mut short = [(0u8, 0u32, 0u32); 64];
        let mut shorts = 0;
        for (symbol, &l) in lengths.iter().enumerate() {
            let l = u32::from(l);
            if l == 0 {
                continue;
            }
            let code = codes[symbol];
            let slot = &mut placed[l as usize];
            decoder.sorted[*slot as usize] = symbol as u8;
            if *slot == decoder.offset[l as usize] {
                decoder.first[l as usize] = code;
            }
            *slot += 1;
            if l <= table_bits {
                let start = (code << (table_bits - l)) as usize;
                let entry = (symbol as u16) << 8 | l as u16;
                decoder.single[start..start + (1 << (table_bits - l))].fill(entry);
                short[shorts] = (symbol as u8, l, code);
                shorts += 1;
            }
        }
        decoder.fill_multi(&short[..shorts], 0, table_bits, 0, 0);
        decoder
    }

    /// Fills the entries `start..start + 2^width` of the multi-symbol table, whose bits begin
    /// with the codes of `entry` (`symbols` of them): with those, and then the entries of each
    /// code that fits in the `width` bits left (the entries that no code fits keep these).
    fn fill_multi(
        &mut self,
        short: &[(u8, u32, u32)],
        start: usize,
        width: u32,
        entry: u32,
        symbols: u32,
    ) {
        if symbols > 0 {
            let total = self.table_bits - width;
            self.multi[start..start + (1 << width)].fill(entry | symbols << 24 | total << 27);
        }
        if symbols == PER_LOOKUP {
            return;
        }
        for &(symbol, length, code) in short {
            if length <= width {
                let at = start + ((code as usize) << (width - length));
                let entry = entry | u32::from(symbol) << (8 * symbols);
                self.fill_multi(short, at, width - length, entry, symbols + 1);
            }
        }
    }

    /// The index into the tables for the next bits.
    #[inline]
    fn index(&self, bits: &BitReader<'_>) -> usize {
        (bits.window >> (64 - self.table_bits)) as usize
    }

    /// The next symbol (at least `longest` valid bits in `bits`).
    #[inline]
    fn symbol(&self, bits: &mut BitReader<'_>) -> u8 {
        let entry = self.single[self.index(bits)];
        let (symbol, length) = if entry != 0 {
            ((entry >> 8) as u8, u32::from(entry & 0xff))
        } else {
            self.long_symbol(bits.window)
        };
        bits.consume(length);
        symbol
    }

    /// A code longer than the tables: the canonical code's arithmetic, length by length.
    #[cold]
    fn long_symbol(&self, window: u64) -> (u8, u32) {
        for l in self.table_bits + 1..=self.longest {
            let code = (window >> (64 - l)) as u32;
            let index = code.wrapping_sub(self.first[l as usize]);
            if index < self.count[l as usize] {
                let at = self.offset[l as usize] + index;
                return (self.sorted[at as usize], l);
            }
        }
        // Unreachable for a complete code: every bit string starts with a code.
        (0, self.longest.max(1))
    }

    /// Decodes the four streams into the four quarters of `registers`.
    fn decode(&self, streams: &mut [BitReader<'_>; STREAMS], registers: &mut [u8]) {
        let q = registers.len() / STREAMS;
        let mut at = [0, q, 2 * q, 3 * q];
        let end = [q, 2 * q, 3 * q, 4 * q];
        // Rounds of up to three lookups a stream, while every stream has room for a 4-byte
        // store. After a refill there are 56 bits: two lookups of at most `table_bits` (11)
        // and a long code (31) at most, which ends the stream's round.
        while (0..STREAMS).all(|k| at[k] + 4 <= end[k]) {
            for (k, bits) in streams.iter_mut().enumerate() {
                bits.refill();
                for _ in 0..PER_LOOKUP {
                    let entry = self.multi[self.index(bits)];
                    if entry == 0 {
                        registers[at[k]] = self.symbol(bits);
                        at[k] += 1;
                        break;
                    }
                    // Four bytes at once: the ones past the symbols are overwritten later.
                    registers[at[k]..at[k] + 4].copy_from_slice(&entry.to_le_bytes());
                    at[k] += ((entry >> 24) & 3) as usize;
                    bits.consume(entry >> 27);
                    if at[k] + 4 > end[k] {
                        break;
                    }
                }
            }
        }
        for (k, bits) in streams.iter_mut().enumerate() {
            while at[k] < end[k] {
                bits.refill();
                registers[at[k]] = self.symbol(bits);
                at[k] += 1;
            }
        }
    }
}

/// Decodes and checks a layout of `2^p` registers that fills `payload` exactly, each register
/// at most `max`: refuses anything the encoder would not have written. Gives the registers and
/// their histogram.
pub fn unpack(
    payload: &[u8],
    p: u8,
    max: u8,
    arena: Arena,
) -> Result<(ArenaVec<u8>, [u32; 64]), PackedError> {
    let m = 1usize << p;
    let &[low, high, ..] = payload else {
        return Err(PackedError::Truncated {
            len: payload.len(),
            needed: BOUNDS_LEN,
        });
    };
    if high == 0 {
        return Err(PackedError::AllZero);
    }
    if high > max {
        return Err(PackedError::HighAboveMax(high));
    }
    if low > high {
        return Err(PackedError::LowAboveHigh { low, high });
    }
    let rest = &payload[BOUNDS_LEN..];
    if low == high {
        if !rest.is_empty() {
            return Err(PackedError::AfterEqualBounds(rest.len()));
        }
        let mut counts = [0u32; 64];
        counts[low as usize] = m as u32;
        return Ok((arena.vec_filled(low, m), counts));
    }
    let lengths_bytes = lengths_len(low, high);
    let Some((lengths_in, mut rest)) = rest.split_at_checked(lengths_bytes) else {
        return Err(PackedError::Truncated {
            len: payload.len(),
            needed: BOUNDS_LEN + lengths_bytes,
        });
    };
    let mut bits = BitReader::new(lengths_in);
    bits.refill();
    let mut lengths = [0u8; 64];
    for length in &mut lengths[low as usize..=high as usize] {
        if bits.valid < LENGTH_BITS {
            bits.refill();
        }
        *length = (bits.window >> (64 - LENGTH_BITS)) as u8;
        bits.consume(LENGTH_BITS);
    }
    bits.check_end().map_err(|_| PackedError::LengthsPadding)?;
    // The bounds are the smallest and the largest register: registers hold them (whether the
    // other lengths are those of the registers is checked once they are decoded).
    for bound in [low, high] {
        if lengths[bound as usize] == 0 {
            return Err(PackedError::BoundNotHeld(bound));
        }
    }
    let codes = canonical_codes(&lengths).ok_or(PackedError::NotPrefixCode)?;
    let mut sizes = [0usize; STREAMS];
    for (k, size) in sizes[..STREAMS - 1].iter_mut().enumerate() {
        let (bytes, used) = read_varint(rest).map_err(|what| PackedError::StreamLength {
            stream: k,
            what: what.to_string(),
        })?;
        rest = &rest[used..];
        *size = bytes as usize;
    }
    sizes[STREAMS - 1] = rest.len().saturating_sub(sizes[..STREAMS - 1].iter().sum());
    let mut streams = [BitReader::new(&[]); STREAMS];
    for (k, (stream, &size)) in streams.iter_mut().zip(&sizes).enumerate() {
        let Some((mine, after)) = rest.split_at_checked(size) else {
            return Err(PackedError::StreamLength {
                stream: k,
                what: format!("{size} bytes, but only {} follow", rest.len()),
            });
        };
        *stream = BitReader::new(mine);
        rest = after;
    }
    let decoder = Decoder::new(&lengths, &codes, (u32::from(p) - 3).min(TABLE_BITS));
    let mut registers = arena.vec_filled(0u8, m);
    decoder.decode(&mut streams, &mut registers);
    for (k, stream) in streams.iter().enumerate() {
        stream
            .check_end()
            .map_err(|e| PackedError::StreamEnd(k, e))?;
    }
    let (_, counts) = quarter_histograms(&registers);
    if code_lengths(&counts) != lengths {
        return Err(PackedError::NotHuffman);
    }
    let huffman_len = payload.len();
    let nibbles_len = dense::packed4_len_of(&counts, m);
    if huffman_len >= nibbles_len {
        return Err(PackedError::NotShorter {
            len: huffman_len,
            nibbles: nibbles_len,
        });
    }
    Ok((registers, counts))
}
