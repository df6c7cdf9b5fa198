//! Dense registers: ranks, folding, the 6-bit and 4-bit layouts of the binary form, and the
//! choice between the 4-bit layout and the Huffman layout (`huffman.rs`).

use super::huffman;
use crate::common::arena::{Arena, ArenaVec};

/// Rank of `hash` at precision `p`: 1 + leading zeros of the `64 - p` bits below the index,
/// `65 - p` when they are all zero. Bit `p - 1` of the shifted hash is a sentinel: it lies
/// below every bit that can count, and stops the count at `64 - p` when they are all zero, so
/// the rank needs no branch.
#[inline]
pub fn rank(hash: u64, p: u8) -> u8 {
    debug_assert!((1..64).contains(&p));
    let below_index = hash << p | 1 << (p - 1);
    below_index.leading_zeros() as u8 + 1
}

/// The highest rank a register can hold at precision `p`.
pub fn max_rank(p: u8) -> u8 {
    65 - p
}

/// The rank at a lower precision of a hash whose index lost its `dropped_bits` low bits
/// (`dropped`) and had rank `rank_below` below them. Leading zeros of the dropped bits count
/// first; only when they are all zero does the old rank add on.
#[inline]
pub fn folded_rank(dropped: u32, dropped_bits: u32, rank_below: u8) -> u8 {
    if dropped != 0 {
        (dropped.leading_zeros() - (32 - dropped_bits) + 1) as u8
    } else {
        dropped_bits as u8 + rank_below
    }
}

/// Takes the maximum of `target` (precision `q`) and `source` (precision `p >= q`) folded
/// down to `q`, register by register.
pub fn merge_folded(target: &mut [u8], q: u8, source: &[u8], p: u8) {
    debug_assert!(p >= q);
    if p == q {
        // The hot loop of a union aggregate; simple enough for the compiler to vectorise.
        for (t, &s) in target.iter_mut().zip(source) {
            *t = (*t).max(s);
        }
        return;
    }
    let dropped_bits = (p - q) as u32;
    let dropped_mask = (1usize << dropped_bits) - 1;
    for (index, &rank) in source.iter().enumerate() {
        if rank == 0 {
            continue;
        }
        let folded = folded_rank((index & dropped_mask) as u32, dropped_bits, rank);
        if let Some(register) = target.get_mut(index >> dropped_bits) {
            *register = (*register).max(folded);
        }
    }
}

/// How many registers are not zero. Eight at a time: a byte's high bit, after adding 0x7f to
/// its low seven bits and ORing in the byte, is set exactly when the byte is not zero.
pub fn nonzero(registers: &[u8]) -> usize {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut chunks = registers.chunks_exact(8);
    let mut count = 0;
    for eight in &mut chunks {
        let x = u64::from_le_bytes(eight.try_into().unwrap_or_default());
        count += ((((x & LOW) + LOW) | x) & !LOW).count_ones() as usize;
    }
    count + chunks.remainder().iter().filter(|&&r| r != 0).count()
}

/// How many registers hold each value (values are at most 63).
pub fn histogram(registers: &[u8]) -> [u32; 64] {
    let mut counts = [0u32; 64];
    for &rank in registers {
        counts[(rank & 63) as usize] += 1;
    }
    counts
}

/// Bytes of packed registers at precision `p`.
pub fn packed_len(p: u8) -> usize {
    // 2^p is a multiple of 8 for p >= 3: eight 6-bit registers fill six bytes exactly.
    3 << (p - 2)
}

/// Appends the registers packed 6 bits each, little-endian bit order. Eight registers (one
/// byte each, at most 63) become six bytes by squeezing the bytes of a `u64` together: 6-bit
/// fields into 12-bit ones, those into 24-bit ones, those into 48 bits.
/// (The 6-bit form of versions 1 and 2, which this build reads but no longer writes: for tests.)
#[cfg(test)]
pub fn pack(registers: &[u8], out: &mut Vec<u8>) {
    for eight in registers.chunks_exact(8) {
        let bytes: [u8; 8] = eight.try_into().unwrap_or_default();
        let y = u64::from_le_bytes(bytes) & 0x3f3f_3f3f_3f3f_3f3f;
        let y = (y & 0x003f_003f_003f_003f) | (y & 0x3f00_3f00_3f00_3f00) >> 2;
        let y = (y & 0x0000_0fff_0000_0fff) | (y & 0x0fff_0000_0fff_0000) >> 4;
        let y = (y & 0x0000_0000_00ff_ffff) | (y & 0x00ff_ffff_0000_0000) >> 8;
        out.extend_from_slice(&y.to_le_bytes()[..6]);
    }
}

/// Unpacks packed registers into `out`, which holds eight registers per six bytes of `packed`
/// (the inverse of [`pack`]: 48 bits spread to two 24-bit lanes, four 12-bit, eight 6-bit).
/// Branch-free, so that it stays fast.
fn unpack_into(packed: &[u8], out: &mut [u8]) {
    for (eight, six) in out.chunks_exact_mut(8).zip(packed.chunks_exact(6)) {
        let x = u64::from_le_bytes([six[0], six[1], six[2], six[3], six[4], six[5], 0, 0]);
        let y = (x & 0x0000_0000_00ff_ffff) | (x & 0x0000_ffff_ff00_0000) << 8;
        let y = (y & 0x0000_0fff_0000_0fff) | (y & 0x00ff_f000_00ff_f000) << 4;
        let y = (y & 0x003f_003f_003f_003f) | (y & 0x0fc0_0fc0_0fc0_0fc0) << 2;
        eight.copy_from_slice(&y.to_le_bytes());
    }
}

/// What is wrong with packed registers.
#[derive(Debug, PartialEq, Eq)]
pub enum PackedError {
    /// The first register above the largest rank, by position.
    AboveMax(usize),
    /// Every register is zero: not canonical, the empty form says that.
    AllZero,
    /// 4-bit layout: fewer bytes than the base and the nibbles.
    Short { len: usize, needed: usize },
    /// 4-bit layout: the escape bytes do not match the escape nibbles.
    Escapes { escapes: usize, bytes: usize },
    /// 4-bit layout: no register equals the base (not canonical: it is the smallest).
    BaseNotSmallest(u8),
    /// Huffman layout: fewer bytes than the bounds, or than the bounds and code lengths.
    Truncated { len: usize, needed: usize },
    /// Huffman layout: the largest register above the largest rank.
    HighAboveMax(u8),
    /// Huffman layout: the smallest register above the largest.
    LowAboveHigh { low: u8, high: u8 },
    /// Huffman layout: a bound (the smallest or the largest register) without a code.
    BoundNotHeld(u8),
    /// Huffman layout: the code lengths do not make a complete prefix code.
    NotPrefixCode,
    /// Huffman layout: bytes after the bounds of registers that are all equal.
    AfterEqualBounds(usize),
    /// Huffman layout: the code lengths are not those of the registers' Huffman code.
    NotHuffman,
    /// Huffman layout: not shorter than the 4-bit layout of the same registers.
    NotShorter { len: usize, nibbles: usize },
    /// Huffman layout: non-zero bits after the code lengths.
    LengthsPadding,
    /// Huffman layout: the byte length of a stream is not readable or too long.
    StreamLength { stream: usize, what: String },
    /// Huffman layout: what is wrong at the end of stream `.0`.
    StreamEnd(usize, StreamEnd),
}

/// How a stream of the Huffman layout does not end where its codes do.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The codes run past its last byte.
    PastEnd,
    /// Bytes after the one of its last code (`used` bytes hold codes).
    TrailingBytes { bytes: usize, used: usize },
    /// Non-zero bits after its last code.
    PaddingBits,
}

/// Checks unpacked registers: errors on one above `max`, tells whether any is non-zero.
fn check(registers: &[u8], max: u8) -> Result<bool, PackedError> {
    // A plain maximum vectorises; the position is only looked for on the error path.
    let highest = registers.iter().copied().max().unwrap_or(0);
    if highest > max {
        let at = registers.iter().position(|&r| r > max).unwrap_or(0);
        return Err(PackedError::AboveMax(at));
    }
    Ok(highest != 0)
}

/// Unpacks and checks packed registers: each at most `max`, at least one non-zero.
pub fn unpack(packed: &[u8], max: u8, arena: Arena) -> Result<ArenaVec<u8>, PackedError> {
    let mut registers = arena.vec_filled(0u8, packed.len() / 6 * 8);
    unpack_into(packed, &mut registers);
    if check(&registers, max)? {
        Ok(registers)
    } else {
        Err(PackedError::AllZero)
    }
}

// ---- the 4-bit layout of format version 3 -------------------------------------------------
// A register is `base + nibble`, where `base` is the smallest register; a nibble of 15 is an
// escape, and the register is `base + 15 + e` with `e` the next escape byte (in register
// order). Random data leaves about a dozen escapes at p = 14 whatever n is: 4 bits a register
// where 6 held every value.

/// Escape nibble.
const ESCAPE: u8 = 15;

/// Bytes of the 4-bit layout of `m` registers (m >= 16) whose histogram is `counts`.
pub fn packed4_len_of(counts: &[u32; 64], m: usize) -> usize {
    let base = counts.iter().position(|&c| c != 0).unwrap_or(0);
    let escapes: u32 = counts.iter().skip(base + ESCAPE as usize).sum();
    1 + m / 2 + escapes as usize
}

/// How a dense sketch's registers are written: the shorter of the 4-bit layout (format
/// version 3) and the Huffman layout (version 4), the 4-bit one on a tie (earlier builds read
/// it). Both lengths follow from the histogram.
pub enum Layout {
    Nibbles,
    Huffman(huffman::Code),
}

/// The layout of `registers` (2^p of them, p >= 4) and its length in bytes.
pub fn layout(registers: &[u8]) -> (Layout, usize) {
    let (quarters, counts) = huffman::quarter_histograms(registers);
    let nibbles = packed4_len_of(&counts, registers.len());
    let code = huffman::Code::of_histograms(&quarters, &counts);
    match code.encoded_len() {
        len if len < nibbles => (Layout::Huffman(code), len),
        _ => (Layout::Nibbles, nibbles),
    }
}

/// Appends the 4-bit layout: the base, the nibbles (register 2i in the low half of byte i),
/// then the escape bytes.
pub fn pack4(registers: &[u8], out: &mut Vec<u8>) {
    let base = registers.iter().copied().min().unwrap_or(0);
    out.push(base);
    let nibble = |r: u8| (r - base).min(ESCAPE);
    out.extend(
        registers
            .chunks_exact(2)
            .map(|pair| nibble(pair[0]) | nibble(pair[1]) << 4),
    );
    out.extend(
        registers
            .iter()
            .filter(|&&r| r - base >= ESCAPE)
            .map(|&r| r - base - ESCAPE),
    );
}

/// Unpacks and checks a 4-bit layout of `2^p` registers that fills `payload` exactly: each
/// register at most `max`, the base the smallest, at least one non-zero.
pub fn unpack4(payload: &[u8], p: u8, max: u8, arena: Arena) -> Result<ArenaVec<u8>, PackedError> {
    let m = 1usize << p;
    let needed = 1 + m / 2;
    if payload.len() < needed {
        return Err(PackedError::Short {
            len: payload.len(),
            needed,
        });
    }
    let (base, rest) = (payload[0], &payload[1..]);
    let (nibbles, escapes) = rest.split_at(m / 2);
    let escape_count = nibbles
        .iter()
        .map(|&b| usize::from(b & 0x0f == ESCAPE) + usize::from(b >> 4 == ESCAPE))
        .sum::<usize>();
    if escape_count != escapes.len() {
        return Err(PackedError::Escapes {
            escapes: escape_count,
            bytes: escapes.len(),
        });
    }
    let mut registers = arena.vec_filled(0u8, m);
    let mut next_escape = escapes.iter();
    for (pair, &byte) in registers.chunks_exact_mut(2).zip(nibbles) {
        for (register, nibble) in pair.iter_mut().zip([byte & 0x0f, byte >> 4]) {
            let offset = if nibble == ESCAPE {
                // As many escape bytes as escape nibbles: checked above.
                ESCAPE.saturating_add(next_escape.next().copied().unwrap_or(0))
            } else {
                nibble
            };
            // Saturating: anything above 255 is above every largest rank too.
            *register = base.saturating_add(offset);
        }
    }
    if !check(&registers, max)? {
        return Err(PackedError::AllZero);
    }
    if !registers.contains(&base) {
        return Err(PackedError::BaseNotSmallest(base));
    }
    Ok(registers)
}
