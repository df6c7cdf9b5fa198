//! Dense registers: ranks, folding, and the 6-bit packing of the binary form.

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

/// Bytes of the 4-bit layout of `registers` (2^p of them, p >= 4).
pub fn packed4_len(registers: &[u8]) -> usize {
    let base = registers.iter().copied().min().unwrap_or(0);
    1 + registers.len() / 2 + registers.iter().filter(|&&r| r - base >= ESCAPE).count()
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
