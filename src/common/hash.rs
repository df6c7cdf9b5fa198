//! The one portable hash (DESIGN.md rule 1): XXH3-64 with seed 0 over a canonical byte
//! encoding of each value. Sketches are stored, shipped between servers and merged across
//! releases and CPUs, so these bits must never change: the golden vectors below pin them
//! (computed with the reference C implementation through Python's `xxhash` package).
//!
//! Canonical encodings (the SQL side chooses one per type):
//! - int2, int4, int8: widened to i64, 8 bytes little-endian, so 42::int4 and 42::int8 are
//!   the same item;
//! - text, varchar, bytea: their bytes;
//! - uuid: its 16 bytes;
//! - any other type: its binary send form.

use xxhash_rust::xxh3::xxh3_64;

/// Hash of an already-canonical byte string.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// Hash of an integer of any width (int2, int4 and int8 of equal value hash alike): XXH3-64
/// of its 8 little-endian bytes, written out for that one length (XXH3's 4-to-8-byte path with
/// the default secret and seed 0), since it is the aggregates' hottest line. The tests check
/// it against `xxh3_64` itself.
#[inline]
pub fn hash_int(value: i64) -> u64 {
    // readLE64(secret + 8) ^ readLE64(secret + 16) of XXH3's default secret.
    const BITFLIP: u64 = 0xc73a_b174_c5ec_d5a2;
    const PRIME_MX2: u64 = 0x9fb2_1c65_1e98_df25;
    // XXH3 reads the low and the high 4 bytes and puts the first read on top.
    let mut h = (value as u64).rotate_left(32) ^ BITFLIP;
    h ^= h.rotate_left(49) ^ h.rotate_left(24);
    h = h.wrapping_mul(PRIME_MX2);
    h ^= (h >> 35).wrapping_add(8);
    h = h.wrapping_mul(PRIME_MX2);
    h ^ (h >> 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_vectors() {
        assert_eq!(hash_bytes(b""), 0x2d06800538d394c2);
        assert_eq!(hash_bytes(b"a"), 0xe6c632b61e964e1f);
        assert_eq!(hash_bytes(b"abc"), 0x78af5f94892f3950);
        assert_eq!(hash_bytes("héllo wörld".as_bytes()), 0xca5aeb8da2d76864);
        let all_bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hash_bytes(&all_bytes), 0x9408a4433b952d71);
        assert_eq!(hash_int(42), 0xd5a6f8c838df27c8);
        assert_eq!(hash_int(-1), 0x5111c7e47d784413);
    }

    #[test]
    fn integers_hash_as_their_little_endian_bytes() {
        for v in [0i64, 1, -1, i64::MIN, i64::MAX, 1 << 40] {
            assert_eq!(hash_int(v), hash_bytes(&v.to_le_bytes()));
        }
        // And the written-out path agrees with xxh3_64 everywhere.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = x as i64;
            assert_eq!(hash_int(v), xxh3_64(&v.to_le_bytes()), "{v}");
        }
    }
}
