use super::sparse::SparseSet;
use super::*;
use crate::common::hash::hash_int;
use proptest::prelude::*;

// ---- helpers ----------------------------------------------------------------------------------

/// Seeded splitmix64: distinct outputs for distinct states, so a stream never repeats a hash
/// (and the streams of two seeds do not meet within the lengths used here).
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        SplitMix64(seed << 32)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform below `bound` (> 0), near enough for tests.
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

/// The first `n` hashes of `seed`'s stream.
fn hashes(seed: u64, n: usize) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.next_u64()).collect()
}

fn sketch(p: u8, hashes: &[u64]) -> Sketch {
    Sketch::from_hashes(p, hashes.iter().copied()).unwrap()
}

/// A set of 26-bit tokens of `hashes` as a sketch, whatever their number: what a sparse value
/// of format version 1 or 2 (form 1) decodes to (earlier builds wrote those; this build makes
/// sets of up to 128 hashes explicit and larger ones sparse in 32-bit tokens).
pub(super) fn tokens_sketch(p: u8, hashes: &[u64]) -> Sketch {
    let mut s = Sketch {
        precision: p,
        repr: Repr::Sparse(SparseSet::from_hashes(
            hashes,
            Arena::HEAP,
            sparse::LEGACY_PRECISION,
        )),
        hip: None,
    };
    s.compact();
    s
}

/// What this build writes for dense registers at precision `p` (with a martingale count or
/// not): the 4-bit layout (version 3, form 5 or 6) or the Huffman layout (version 4, form 7
/// or 8), whichever is shorter, the 4-bit one on a tie.
pub(super) fn dense_bytes(p: u8, registers: &[u8], count: Option<f64>) -> Vec<u8> {
    let mut nibbles = Vec::new();
    dense::pack4(registers, &mut nibbles);
    let (quarters, total) = huffman::quarter_histograms(registers);
    let mut coded = Vec::new();
    huffman::pack(
        registers,
        &huffman::Code::of_histograms(&quarters, &total),
        &mut coded,
    );
    let (version, form, payload) = if coded.len() < nibbles.len() {
        (FORMAT_VERSION, 7, coded)
    } else {
        (NIBBLE_FORMAT_VERSION, 5, nibbles)
    };
    let mut out = vec![
        version,
        form + u8::from(count.is_none()),
        p,
        SPARSE_PRECISION,
    ];
    if let Some(count) = count {
        out.extend_from_slice(&count.to_le_bytes());
    }
    out.extend_from_slice(&payload);
    out
}

/// What this build writes back for bytes it accepted: the same bytes, a version-1 value in
/// version 2 (it differs in its first byte only), the dense forms of earlier builds (form 2
/// of versions 1 and 2 in 6 bits, forms 5 and 6 of version 3 in 4 bits) in the shorter of
/// the 4-bit and the Huffman layouts.
pub(super) fn as_rewritten(bytes: &[u8]) -> Vec<u8> {
    match *bytes {
        [1 | 2, 2, p, ..] => {
            let registers = dense::unpack(&bytes[4..], dense::max_rank(p), Arena::HEAP).unwrap();
            dense_bytes(p, &registers, None)
        }
        [3, form @ (5 | 6), p, ..] => {
            let (count, packed) = if form == 5 {
                let count = f64::from_le_bytes(bytes[4..12].try_into().unwrap());
                (Some(count), &bytes[12..])
            } else {
                (None, &bytes[4..])
            };
            let registers = dense::unpack4(packed, p, dense::max_rank(p), Arena::HEAP).unwrap();
            dense_bytes(p, &registers, count)
        }
        _ => {
            let mut out = bytes.to_vec();
            if let Some(version) = out.first_mut().filter(|v| **v == 1) {
                *version = PLAIN_FORMAT_VERSION;
            }
            out
        }
    }
}

/// The 4-bit form (version 3, form 5 with a count or 6) of a dense sketch's registers, as
/// builds of version 3 wrote every dense sketch.
pub(super) fn nibble_dense(s: &Sketch) -> Vec<u8> {
    let Repr::Dense(registers) = &s.repr else {
        panic!("dense expected")
    };
    let form = if s.hip.is_some() { 5 } else { 6 };
    let mut out = vec![NIBBLE_FORMAT_VERSION, form, s.precision, SPARSE_PRECISION];
    if let Some(hip) = &s.hip {
        out.extend_from_slice(&hip.count().to_le_bytes());
    }
    dense::pack4(registers, &mut out);
    out
}

/// The 6-bit dense form 2 of version 2 (or 1) of a dense sketch's registers: what earlier
/// builds wrote.
pub(super) fn legacy_dense(s: &Sketch, version: u8) -> Vec<u8> {
    let Repr::Dense(registers) = &s.repr else {
        panic!("dense expected")
    };
    let mut out = vec![version, 2, s.precision, SPARSE_PRECISION];
    dense::pack(registers, &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mean relative error and RMS relative error over `seeds` of the registers' estimate (what a
/// union gives; the martingale count has its own tests below).
fn bias_and_rms(p: u8, n: usize, seeds: std::ops::Range<u64>) -> (f64, f64) {
    let (mut sum, mut sum_sq, mut runs) = (0.0, 0.0, 0.0);
    for seed in seeds {
        let mut rng = SplitMix64::new(seed);
        let mut s = Sketch::new(p).unwrap();
        for _ in 0..n {
            s.add_hash(rng.next_u64());
        }
        let error = s.without_martingale().estimate() / n as f64 - 1.0;
        sum += error;
        sum_sq += error * error;
        runs += 1.0;
    }
    (sum / runs, (sum_sq / runs).sqrt())
}

// ---- formats, pinned by hand -----------------------------------------------------------------

#[test]
fn empty_sketch_bytes_and_text() {
    let empty = Sketch::new(14).unwrap();
    assert_eq!(empty.encode(), [2, 0, 14, 26]);
    assert_eq!(empty.to_text(), "hll1:AgAOGg==");
    assert_eq!(empty.form(), Form::Empty);
    assert_eq!(empty.estimate(), 0.0);
    assert_eq!(empty.count().unwrap(), 0);
    assert_eq!(
        empty.estimate_with_bounds(0.95).unwrap(),
        Estimate {
            estimate: 0.0,
            lower: 0.0,
            upper: 0.0
        }
    );
    assert_eq!(Sketch::default(), empty);
    assert_eq!(Sketch::decode(&[2, 0, 4, 26]).unwrap().precision(), 4);
    // Version 1 is read too.
    assert_eq!(Sketch::decode(&[1, 0, 14, 26]).unwrap(), empty);
    assert_eq!(Sketch::parse_text("hll1:AQAOGg==").unwrap(), empty);
}

#[test]
fn explicit_bytes_by_hand() {
    // Hashes in increasing order, 8 bytes little-endian each; duplicates kept once.
    let mut expected = vec![2, 3, 14, 26];
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    let s = sketch(14, &[u64::MAX - 1, 3, 3]);
    assert_eq!(s.form(), Form::Explicit);
    assert_eq!(s.encode(), expected);
    assert_eq!(Sketch::decode(&expected).unwrap(), s);
    // Two hashes with the same 26-bit sparse index are still two values.
    let same_index = [5u64 << 40, (5u64 << 40) | 1];
    assert_eq!(sketch(14, &same_index).count().unwrap(), 2);
    assert_eq!(tokens_sketch(14, &same_index).count().unwrap(), 1);
    // Capacity: 128 hashes from precision 11 up, fewer below so that dense stays the longest.
    for (p, capacity) in [
        (4u8, 1usize),
        (5, 3),
        (8, 24),
        (10, 96),
        (11, 128),
        (18, 128),
    ] {
        let at = sketch(p, &hashes(u64::from(p), capacity));
        assert_eq!(at.form(), Form::Explicit, "p {p}");
        assert_eq!(at.encoded_len(), 4 + 8 * capacity);
        assert!(at.encoded_len() <= codec::dense_encoded_len(p));
        let past = sketch(p, &hashes(u64::from(p), capacity + 1));
        assert_ne!(past.form(), Form::Explicit, "p {p}");
    }
}

#[test]
fn sparse_bytes_by_hand() {
    // Token sets (version-1 sketches, or more than 128 hashes) written by hand.
    // Hash 0: index 0 (low 8 bits zero, so the rank is kept), all 38 rank bits zero: rank 39.
    assert_eq!(tokens_sketch(14, &[0]).encode(), [2, 1, 14, 26, 0x00, 39]);
    // Index 1: gap 0 after index 0, no rank byte (index & 0xff != 0).
    let index_one = 1u64 << 38;
    assert_eq!(
        tokens_sketch(14, &[index_one, 0]).encode(),
        [2, 1, 14, 26, 0x00, 39, 0x00]
    );
    // Alone, index 1 is the first entry: its gap from the virtual index -1 is 1 - (-1) - 1 = 1.
    assert_eq!(
        tokens_sketch(14, &[index_one]).encode(),
        [2, 1, 14, 26, 0x01]
    );
    // Index 256 keeps its rank; bit 37 set makes the rank 1. Gap 256 = varint 80 02.
    let index_256 = (256u64 << 38) | (1 << 37);
    assert_eq!(
        tokens_sketch(14, &[index_256]).encode(),
        [2, 1, 14, 26, 0x80, 0x02, 1]
    );
    // The same index seen with a higher rank keeps the higher one.
    let index_256_rank_3 = (256u64 << 38) | (1 << 35);
    assert_eq!(
        tokens_sketch(14, &[index_256, index_256_rank_3]).encode(),
        [2, 1, 14, 26, 0x80, 0x02, 3]
    );
    assert_eq!(
        tokens_sketch(14, &[index_256_rank_3, index_256]).encode(),
        [2, 1, 14, 26, 0x80, 0x02, 3]
    );
    // The same bytes in version 1 decode to the same sketch.
    let v1 = [1, 1, 14, 26, 0x80, 0x02, 3];
    assert_eq!(Sketch::decode(&v1).unwrap().encode(), as_rewritten(&v1));
    assert_eq!(Sketch::decode(&v1).unwrap().form(), Form::Sparse);
}

#[test]
fn rice_sparse_bytes_by_hand() {
    // Form 9 (version 4, sparse precision 32) at p = 4, where two hashes are sparse: the
    // explicit form holds one, the sparse form 2^4/8 = 2 tokens.
    // Hash 0: index 0, its low 14 bits zero, so it keeps its rank, 33 (every bit zero).
    // Hash 1 << 32: index 1, no rank. n = 2: Rice parameter 29 (2^29·3 <= 2^32·ln 2 < 2^30·3).
    // Token 0: gap 0 = quotient 0 ("1") and 29 zero bits, then rank 33 in 6 bits (100001).
    // Token 1: gap 1 - 0 - 1 = 0: "1" and 29 zero bits. 66 bits, zero-padded to 9 bytes.
    assert_eq!(sparse::rice_parameter(2), 29);
    let s = sketch(4, &[1 << 32, 0]);
    assert_eq!(s.form(), Form::Sparse);
    let expected = [4, 9, 4, 32, 2, 0x80, 0, 0, 0x02, 0x18, 0, 0, 0, 0];
    assert_eq!(s.encode(), expected);
    assert_eq!(s.encoded_len(), expected.len());
    assert_eq!(Sketch::decode(&expected).unwrap(), s);
    assert_eq!(s.count().unwrap(), 2);
    // A third hash turns it dense.
    assert_eq!(sketch(4, &[1 << 32, 0, 2 << 32]).form(), Form::Dense);
    // Refused: a non-zero padding bit, a byte too many, a count above 2^p/8, rank 0, the
    // form in another version or with another sparse precision.
    let mut padding = expected;
    padding[13] = 1;
    let mut rank_0 = expected;
    rank_0[3 + 5] = 0x00;
    rank_0[4 + 5] = 0x08;
    let mut three = expected.to_vec();
    three[4] = 3;
    let mut version_2 = expected;
    version_2[0] = 2;
    let mut sparse_26 = expected;
    sparse_26[3] = 26;
    for (what, bytes, detail) in [
        (
            "padding",
            padding.to_vec(),
            "non-zero bits after the last code",
        ),
        ("long", [&expected[..], &[0]].concat(), "end in byte"),
        ("count", three, "a sparse hll of 3 tokens"),
        ("rank 0", rank_0.to_vec(), "rank 0 is out of range"),
        ("version", version_2.to_vec(), "has no form 9"),
        (
            "sparse precision",
            sparse_26.to_vec(),
            "sparse precision 26",
        ),
    ] {
        let e = Sketch::decode(&bytes).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidBinary, "{what}");
        let shown = e.detail.unwrap_or_default();
        assert!(shown.contains(detail), "{what}: {shown}");
    }
    for cut in 4..expected.len() {
        assert!(Sketch::decode(&expected[..cut]).is_err(), "cut {cut}");
    }
}

/// The sparse form keeps 32 bits of each hash: two values whose hashes share their top 26
/// bits (one token in the 26-bit tokens of versions 1 and 2) are two.
#[test]
fn sparse_tokens_keep_32_bits() {
    let mut all = hashes(5, 200);
    all.push(7 << 40);
    all.push((7 << 40) | (1 << 32));
    let s = sketch(14, &all);
    assert_eq!(s.form(), Form::Sparse);
    assert_eq!(s.count().unwrap(), 202);
    assert_eq!(tokens_sketch(14, &all).count().unwrap(), 201);
    // Sets of 1,000 and 2,000 values count exactly (no two of these share a 32-bit token).
    for n in [1000usize, 2000] {
        for seed in 0..100 {
            let s = sketch(14, &hashes(seed, n));
            assert_eq!(s.form(), Form::Sparse, "n {n}");
            assert_eq!(s.count().unwrap(), n as i64, "n {n}, seed {seed}");
        }
    }
    // 2^14/8 = 2,048 tokens are the most a sparse sketch holds at p = 14.
    assert_eq!(sketch(14, &hashes(3, 2048)).form(), Form::Sparse);
    assert_eq!(sketch(14, &hashes(3, 2049)).form(), Form::Dense);
}

/// A union with a set of 26-bit tokens (a value of version 1 or 2) keeps 26 bits: the tokens
/// of the other side are folded, as if they had been made at 26 bits.
#[test]
fn unions_with_legacy_tokens_fold_to_26_bits() {
    let (a, b) = (hashes(11, 500), hashes(12, 700));
    let legacy = tokens_sketch(14, &a);
    let new = sketch(14, &b);
    assert_eq!(new.form(), Form::Sparse);
    let both: Vec<u64> = a.iter().chain(&b).copied().collect();
    let expected = tokens_sketch(14, &both);
    assert_eq!(legacy.union(&new).unwrap(), expected);
    assert_eq!(new.union(&legacy).unwrap(), expected);
    assert_eq!(expected.encode()[..2], [PLAIN_FORMAT_VERSION, 1]);
    // An explicit side joins the 26-bit tokens too.
    let small = sketch(14, &hashes(13, 50));
    let with_small: Vec<u64> = a.iter().chain(&hashes(13, 50)).copied().collect();
    assert_eq!(
        small.union(&legacy).unwrap(),
        tokens_sketch(14, &with_small)
    );
    // And a union of the two kinds that outgrows the 26-bit rule turns dense with the
    // registers of every hash.
    let big = tokens_sketch(14, &hashes(14, 5000));
    let union = big.union(&sketch(14, &hashes(15, 2000))).unwrap();
    assert_eq!(union.form(), Form::Dense);
    let all: Vec<u64> = hashes(14, 5000)
        .into_iter()
        .chain(hashes(15, 2000))
        .collect();
    assert_eq!(
        union.without_martingale(),
        sketch(14, &all).without_martingale()
    );
}

#[test]
fn dense_bytes_by_hand() {
    // Version 2, form 2, p = 4: 16 registers in 12 bytes. Registers 0..4 = 1, 2, 3, 4 pack to
    // 0x103081 (LE).
    let mut bytes = vec![2, 2, 4, 26, 0x81, 0x30, 0x10];
    bytes.resize(16, 0);
    let s = Sketch::decode(&bytes).unwrap();
    let Repr::Dense(registers) = &s.repr else {
        panic!("dense expected")
    };
    assert_eq!(&registers[..5], &[1, 2, 3, 4, 0]);
    // Written back in version 3, form 6: base 0, then a nibble a register, low half first.
    let mut v3 = vec![3, 6, 4, 26, 0, 0x21, 0x43];
    v3.resize(13, 0);
    assert_eq!(s.encode(), v3);
    assert_eq!(Sketch::decode(&v3).unwrap(), s);
    // Register 15 (bits 90..95: the top 6 bits of byte 11) at 61, the largest rank at p = 4;
    // in 4 bits an escape (the high nibble of the last byte) and the escape byte 61 - 15.
    bytes[15] = 61 << 2;
    let s = Sketch::decode(&bytes).unwrap();
    let Repr::Dense(registers) = &s.repr else {
        panic!("dense expected")
    };
    assert_eq!(registers[15], 61);
    v3[12] = 0xf0;
    v3.push(46);
    assert_eq!(s.encode(), v3);
    assert_eq!(Sketch::decode(&v3).unwrap(), s);
    // A base above 0: registers 3..=5 and one 40 store as base 3, nibbles 0..=2, one escape.
    let dense4 = |registers: &[u8]| Sketch {
        precision: 4,
        repr: Repr::Dense(Arena::HEAP.vec_from(registers)),
        hip: None,
    };
    let mut registers = vec![3u8, 4, 5, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 40];
    assert_eq!(
        dense4(&registers).encode(),
        [3, 6, 4, 26, 3, 0x10, 0x02, 0, 0, 0, 0, 0, 0xf0, 40 - 3 - 15]
    );
    registers[15] = 17; // base + 14: no escape
    assert_eq!(
        dense4(&registers).encode(),
        [3, 6, 4, 26, 3, 0x10, 0x02, 0, 0, 0, 0, 0, 0xe0]
    );
    bytes[15] = 62 << 2;
    assert!(
        Sketch::decode(&bytes)
            .unwrap_err()
            .detail
            .unwrap()
            .contains("register 15 is above 61")
    );
}

#[test]
fn huffman_bytes_by_hand() {
    let dense = |p: u8, registers: &[u8]| Sketch {
        precision: p,
        repr: Repr::Dense(Arena::HEAP.vec_from(registers)),
        hip: None,
    };
    // Every register equal: the bounds alone (the 4-bit layout would take 9 bytes).
    let all_three = dense(4, &[3; 16]);
    assert_eq!(all_three.encode(), [4, 8, 4, 26, 3, 3]);
    assert_eq!(Sketch::decode(&[4, 8, 4, 26, 3, 3]).unwrap(), all_three);
    // p = 6, 64 registers: 32 of 3, 16 of 1 and 16 of 7, each quarter 3 × 8, 1 × 4, 7 × 4.
    // Huffman: the leaves by (count, value) are 1, 7, 3; 1 and 7 join first (16), then 3 (a
    // leaf, before the joined tree of equal weight) and that tree: lengths 2, 1 and 2.
    // Canonical codes: 3 is "0", 1 is "10", 7 is "11".
    let quarter = [3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 7, 7, 7, 7];
    let registers: Vec<u8> = quarter.iter().copied().cycle().take(64).collect();
    let expected = [
        &[4, 8, 6, 26][..],
        // low 1, high 7; the lengths of 1..=7 in 5 bits: 2 0 1 0 0 0 2, then 5 zero bits
        &[1, 7, 0x10, 0x02, 0x00, 0x00, 0x40],
        // streams 0 to 2 take 3 bytes each (24 bits: 8 × "0", 4 × "10", 4 × "11")
        &[3, 3, 3],
        &[
            0x00, 0xaa, 0xff, 0x00, 0xaa, 0xff, 0x00, 0xaa, 0xff, 0x00, 0xaa, 0xff,
        ],
    ]
    .concat();
    let s = dense(6, &registers);
    assert_eq!(s.encode(), expected);
    assert_eq!(s.encoded_len(), expected.len());
    assert_eq!(Sketch::decode(&expected).unwrap(), s);
    // The 4-bit layout of these registers takes 4 + 33 bytes: the Huffman one is shorter.
    assert_eq!(nibble_dense(&s).len(), 37);
    // With a martingale count (form 7), the count first, as in form 5.
    let counted = Sketch {
        hip: Some(hip::Hip::start(&registers, 6, 500.0)),
        ..s.clone()
    };
    let with_count = [&[4, 7, 6, 26][..], &500f64.to_le_bytes(), &expected[4..]].concat();
    assert_eq!(counted.encode(), with_count);
    assert_eq!(Sketch::decode(&with_count).unwrap(), counted);
    assert_eq!(Sketch::decode(&with_count).unwrap().estimate(), 500.0);
    // At p = 4 the 4-bit layout (9 bytes) is shorter than a Huffman layout with its lengths,
    // varints and four streams, unless the registers are all equal.
    let mixed = dense(4, &[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    assert_eq!(mixed.encode()[..2], [3, 6]);
}

#[test]
fn longest_huffman_code() {
    // The deepest Huffman tree of a given weight is that of the Fibonacci numbers: 25 values
    // of counts 1, 1, 2, 3, 5, ... (196,417 registers), the rest in the last, at p = 18.
    let mut counts = [0u32; 64];
    let (mut a, mut b) = (1u32, 1u32);
    for c in counts.iter_mut().take(25) {
        *c = a;
        (a, b) = (b, a + b);
    }
    counts[24] += (1 << 18) - counts.iter().sum::<u32>();
    let lengths = huffman::code_lengths(&counts);
    assert_eq!(lengths.iter().max(), Some(&24));
    // Such registers round-trip (the Huffman layout, 5-bit lengths up to 31, codes up to 24).
    let registers: Vec<u8> = counts
        .iter()
        .enumerate()
        .flat_map(|(value, &c)| std::iter::repeat_n(value as u8 + 1, c as usize))
        .collect();
    let s = Sketch {
        precision: 18,
        repr: Repr::Dense(Arena::HEAP.vec_from(&registers)),
        hip: None,
    };
    let bytes = s.encode();
    assert_eq!(bytes[..2], [FORMAT_VERSION, 8]);
    assert_eq!(Sketch::decode(&bytes).unwrap(), s);
}

#[test]
fn golden_huffman_encoding() {
    // The registers of 1..=2000 at p = 8 (a union's form 8), encoded by a separate Python
    // implementation of the layout (xxhash.xxh3_64 of each i64 little-endian, the registers,
    // the two-queue Huffman lengths, canonical codes, four streams): 104 bytes of layout
    // where the 4-bit one takes 129.
    let s = sketch(8, &(1..=2000).map(hash_int).collect::<Vec<_>>()).without_martingale();
    assert_eq!(s.to_text(), GOLDEN_HUFFMAN_TEXT);
    assert_eq!(s.encoded_len(), 4 + 104);
    assert_eq!(Sketch::parse_text(GOLDEN_HUFFMAN_TEXT).unwrap(), s);
}

const GOLDEN_HUFFMAN_TEXT: &str = "hll1:BAgIGgELMMQhjIU6EBgWFgeV/FhP7Xj0lHk7Gw3vX3x8rOVIgxVagMEmqS2njCVP+QhGDcg1loiwDm/rQsCN0Hl117Ojootbp9XEjT5ESyHDhJfIHPrbIF7YG3+kj0JfQqkJLwWm8u/L8lpQ";

#[test]
fn golden_encodings() {
    // Pins the whole path from XXH3 to bytes; a change here breaks every stored sketch.
    let small: Vec<u64> = (1..=5).map(hash_int).collect();
    assert_eq!(hex(&sketch(14, &small).encode()), GOLDEN_EXPLICIT);
    assert_eq!(hex(&tokens_sketch(14, &small).encode()), GOLDEN_SPARSE);
    // Form 9: 100 values at p = 10 (the explicit form holds 96 there), 32-bit tokens in Rice
    // codes; encoded by a separate Python implementation of the layout.
    let hundred: Vec<u64> = (1..=100).map(hash_int).collect();
    let rice = sketch(10, &hundred);
    assert_eq!(rice.to_text(), GOLDEN_RICE_SPARSE_TEXT);
    assert_eq!(rice.encoded_len(), 344);
    assert_eq!(Sketch::parse_text(GOLDEN_RICE_SPARSE_TEXT).unwrap(), rice);
    assert_eq!(rice.count().unwrap(), 100);
    let dense: Vec<u64> = (1..=100).map(hash_int).collect();
    let s = sketch(4, &dense);
    assert_eq!(s.form(), Form::Dense);
    assert_eq!(s.to_text(), GOLDEN_MARTINGALE_TEXT);
    // The registers alone (what a union holds): form 6, base 2 and a nibble a register.
    let registers = s.without_martingale();
    assert_eq!(registers.to_text(), GOLDEN_DENSE4_TEXT);
    // Values of earlier builds read back as the same registers, with the registers' estimate.
    for old in [GOLDEN_DENSE_TEXT, GOLDEN_DENSE_TEXT_V1] {
        let read = Sketch::parse_text(old).unwrap();
        assert_eq!(read, registers);
        assert!(!read.has_martingale());
        assert_eq!(read.estimate(), registers.estimate());
    }
    // The martingale count: the linear count of the hashes' 66 tokens of 32 bits (at the 66th
    // hash the token buffer fills and the sketch turns dense), then 2^64/kappa for each later
    // hash that raised a register.
    let bytes = s.encode();
    let count = f64::from_le_bytes(bytes[4..12].try_into().unwrap());
    assert_eq!(count, GOLDEN_MARTINGALE_COUNT);
    assert_eq!(s.estimate(), count);
}

// Computed independently in Python (xxhash.xxh3_64 of each i64 little-endian, the tokens'
// linear count over 2^32 buckets at 66 hashes, then the HIP sum over hashes 67 to 100).
// Builds with 26-bit tokens counted 88.788_949_964_487_91 (the linear count over 2^26).
const GOLDEN_MARTINGALE_COUNT: f64 = 88.788_918_016_842_7;
const GOLDEN_RICE_SPARSE_TEXT: &str = "hll1:BAkKIGQc70enp8wbBXxykoTmB6g6RbwwgkbNLY/25UUuRGH/Kpgix1fgBBM/s7PZkAU+GfC7Eu3lLPs59viBMY4EVggcR6EnsTjSdLbVGcu/bNfWO5ShbwWZvnABlNCCl9SyImeFYG3UEA+K76uQkxF3QGeaJSyaOWHxtQWZr1yII34yhgsHsRag9RKU/MFsbU21tGgNcbBALGrr0T+s4AoSOs15nTzDFGsDczAa0pR63NmRzqadhqwrDKs4wWLo0pUcAnAphtyLjaWSPwn0DfIUdG66uDcZYszoYl8lYnNzFZLkFXPvg0NM91OIGtMWkYZE62yxfwB+tIiLV004E4X9I75mygHDYJ1Q5sMEErkwXPZOTB1OAooG0IZX+abmJ+ybPLFQT74OQmsmhUNhxHNrReVzlWqbmxuh3f2sSr60KTuK9fvAzgHj8m8Aytd9AW6a+vSxSwA=";
const GOLDEN_MARTINGALE_TEXT: &str = "hll1:AwUEGiJk/qF9MlZAAhEjgRECAiID";
const GOLDEN_DENSE_TEXT_V1: &str = "hll1:AQIEGsNQEIMyDIRACARRCA==";
const GOLDEN_DENSE4_TEXT: &str = "hll1:AwYEGgIRI4ERAgIiAw==";

// Computed with the reference C implementation (Python xxhash: xxh3_64 of each i64 LE, sorted).
const GOLDEN_EXPLICIT: &str =
    "02030e1a43e2ee915cc686202e79db643559bc2f7d2ef4c12920924d8ca7aa39aae9038e78715ed90a2922ca";
// The version-1 value of an earlier build, with its first byte changed to 2.
const GOLDEN_SPARSE: &str = "02010e1a99b68804caacf3019baedd03a58e8708fdf1c107";
// The version-1 value of an earlier build was "hll1:AQIEGsNQEIMyDIRACARRCA==".
const GOLDEN_DENSE_TEXT: &str = "hll1:AgIEGsNQEIMyDIRACARRCA==";

// ---- precision and parameters ----------------------------------------------------------------

#[test]
fn precision_range() {
    for p in [0, 3, 19, 255] {
        assert_eq!(
            Sketch::new(p).unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }
    for p in [-1i64, 3, 19, i64::MAX, i64::MIN] {
        assert_eq!(
            checked_precision(p).unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }
    // An SQL integer is checked whole: 270 is not 14 after truncation to a byte.
    assert_eq!(
        Sketch::new(270i32).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        Sketch::new(-242i32).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    for p in MIN_PRECISION..=MAX_PRECISION {
        let s = sketch(p, &hashes(p as u64, 3000));
        assert_eq!(s.precision(), p);
        assert_eq!(Sketch::decode(&s.encode()).unwrap(), s);
    }
    let dense18 = sketch(18, &hashes(1, 200_000));
    assert_eq!(dense18.form(), Form::Dense);
    // The longest value: every register but the base an escape, with a count, in the 4-bit
    // form that builds of version 3 wrote (crafted: random data never gets there). This build
    // writes it in the Huffman layout, 1 bit a register.
    let mut registers = vec![15u8; 1 << 18];
    registers[0] = 0;
    let longest = Sketch {
        precision: 18,
        hip: Some(hip::Hip::start(&registers, 18, 1e9)),
        repr: Repr::Dense(Arena::HEAP.vec_from(&registers)),
    };
    let bytes = nibble_dense(&longest);
    assert_eq!(bytes.len(), MAX_ENCODED_LEN);
    assert_eq!(Sketch::decode(&bytes).unwrap(), longest);
    // header, count, bounds 0 and 15, 16 lengths of 5 bits, 3 varints of 8,192
    assert_eq!(longest.encoded_len(), 4 + 8 + 2 + 10 + 6 + 4 * (1 << 13));
    assert_eq!(longest.encode().len(), longest.encoded_len());
    assert_eq!(Sketch::decode(&longest.encode()).unwrap(), longest);
}

#[test]
fn fold_to_refuses_raising_and_bad_precision() {
    let s = sketch(12, &hashes(1, 100));
    assert_eq!(s.fold_to(14).unwrap_err().kind, ErrorKind::InvalidParameter);
    assert_eq!(s.fold_to(3).unwrap_err().kind, ErrorKind::InvalidParameter);
    assert_eq!(s.fold_to(12).unwrap(), s);
}

#[test]
fn confidence_range_and_quantiles() {
    let s = sketch(14, &hashes(1, 100));
    for bad in [f64::NAN, -0.1, 1.0, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            s.estimate_with_bounds(bad).unwrap_err().kind,
            ErrorKind::InvalidParameter,
            "{bad}"
        );
    }
    let cases = [
        (0.5, 0.0),
        (0.975, 1.959_963_984_540_054),
        (0.995, 2.575_829_303_548_901),
        (0.01, -2.326_347_874_040_841),
        (0.841_344_746_068_542_9, 1.0),
        (1e-10, -6.361_340_902_404_056),
        (1.0 - 1e-10, 6.361_340_889_697_422), // 1 - 1e-10 is not exact in f64
    ];
    for (p, z) in cases {
        let got = normal_quantile(p);
        assert!(
            (got - z).abs() <= 1e-8 * z.abs().max(1.0),
            "Φ⁻¹({p}) = {got}, expected {z}"
        );
    }
    assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(normal_quantile(1.0), f64::INFINITY);
    assert!(normal_quantile(f64::NAN).is_nan());
    assert_eq!(z_for_confidence(0.0).unwrap(), 0.0);
    assert!((z_for_confidence(0.95).unwrap() - 1.959_963_985).abs() < 1e-8);
    assert!(
        z_for_confidence(0.999_999_999_999_999_9)
            .unwrap()
            .is_finite()
    );
}

// ---- small sets: sparse and exact -------------------------------------------------------------

#[test]
fn small_counts_are_exact() {
    for seed in 0..20 {
        let all = hashes(seed, 128);
        let mut s = Sketch::new(14).unwrap();
        for (i, &h) in all.iter().enumerate() {
            s.add_hash(h);
            s.add_hash(h); // duplicates change nothing
            assert_eq!(s.count().unwrap(), i as i64 + 1, "seed {seed}");
        }
        let bounds = s.estimate_with_bounds(0.95).unwrap();
        assert_eq!(
            (bounds.lower, bounds.estimate, bounds.upper),
            (128.0, 128.0, 128.0)
        );
        // The 129th value makes it sparse, where linear counting is nearly exact.
        s.add_hash(hashes(seed + 1000, 1)[0]);
        assert_eq!(s.form(), Form::Sparse);
        let bounds = s.estimate_with_bounds(0.95).unwrap();
        assert_eq!(bounds.lower, 129.0);
        assert!(bounds.upper - 129.0 < 0.1, "{bounds:?}");
    }
}

#[test]
fn a_few_hundred_within_a_tenth_of_a_percent() {
    for n in [200usize, 500, 1000, 2000] {
        let mut total_error = 0.0;
        for seed in 0..20 {
            let s = sketch(14, &hashes(seed, n));
            assert_eq!(s.form(), Form::Sparse, "n = {n}");
            total_error += (s.estimate() / n as f64 - 1.0).abs();
        }
        assert!(
            total_error / 20.0 < 0.001,
            "n = {n}: mean |error| {}",
            total_error / 20.0
        );
    }
}

#[test]
fn sizes() {
    let thousand = sketch(14, &hashes(7, 1000));
    assert_eq!(thousand.form(), Form::Sparse);
    assert!(thousand.encoded_len() <= 4000, "{}", thousand.encoded_len());
    // Dense: the Huffman layout (format version 4), about 2.9 bits a register from a few m
    // values up (5,200 to 6,000 bytes at p = 14) and fewer just past the sparse form; the
    // 4-bit layout of the same registers takes 8,197 bytes and an escape byte for each
    // register 15 or more above the smallest. Built by insertions, 8 more for the martingale
    // count.
    for (n, range) in [
        (6_000, 3_300..3_600),
        (20_000, 5_100..5_400),
        (1_000_000, 5_750..6_000),
    ] {
        let mut dense = sketch(14, &hashes(7, n));
        dense.compact();
        assert_eq!(dense.form(), Form::Dense);
        assert!(dense.has_martingale());
        let len = dense.encoded_len();
        assert!(range.contains(&len), "n {n}: {len} bytes");
        let bytes = dense.encode();
        assert_eq!(bytes.len(), len);
        assert_eq!(bytes[..2], [FORMAT_VERSION, 7]);
        assert!(len < nibble_dense(&dense).len() * 3 / 4);
        let union = dense.union(&sketch(14, &hashes(8, 10_000))).unwrap();
        assert!(!union.has_martingale());
        let len = union.encoded_len();
        assert!((4_900..6_000).contains(&len), "n {n}: {len} bytes");
        let bytes = union.encode();
        assert_eq!(bytes.len(), len);
        assert_eq!(bytes[..2], [FORMAT_VERSION, 8]);
    }
}

#[test]
fn small_aggregate_states_stay_small() {
    let mut s = Sketch::new(14).unwrap();
    for h in hashes(3, 10) {
        s.add_hash(h);
    }
    // (24 bytes of each are the room for a dense sketch's martingale count)
    assert!(s.memory_bytes() <= 264, "{}", s.memory_bytes());
    // A run of one value does not grow the state.
    let mut same = Sketch::new(14).unwrap();
    for _ in 0..10_000 {
        same.add_hash(42);
    }
    assert!(same.memory_bytes() <= 152, "{}", same.memory_bytes());
    assert_eq!(same.count().unwrap(), 1);
}

/// `start` growing by `hs`, hash by hash: after each, the sketch in canonical form, the
/// length its set of tokens at sparse precision `sp` would have in the sparse form, and their
/// number. Checks on the way that a dense sketch never turns sparse again and that compacting
/// changes nothing observable.
fn growing(start: Sketch, sp: u8, hs: &[u64]) -> Vec<(Sketch, usize, usize)> {
    let mut s = start;
    let mut tokens = SparseSet::new_in(Arena::HEAP, sp);
    let mut was_dense = false;
    let mut out = Vec::new();
    for &h in hs {
        s.add_hash(h);
        tokens.push_hash(h);
        tokens.flush();
        let sparse_len = codec::HEADER_LEN + tokens.encoded_payload_len();
        let mut compacted = s.clone();
        compacted.compact();
        let is_dense = matches!(compacted.repr, Repr::Dense(_));
        assert!(!was_dense || is_dense, "dense turned sparse");
        assert_eq!(compacted, s);
        was_dense = is_dense;
        out.push((compacted, sparse_len, tokens.len()));
    }
    assert!(was_dense, "never became dense");
    out
}

#[test]
fn form_follows_the_size_rule_while_growing() {
    for p in [4u8, 6, 8, 10, 12] {
        let steps = growing(
            Sketch::new(p).unwrap(),
            sparse::PRECISION,
            &hashes(p as u64, 3000),
        );
        for (i, (compacted, sparse_len, tokens)) in steps.into_iter().enumerate() {
            if i < explicit::capacity(p) {
                assert_eq!(compacted.form(), Form::Explicit, "p {p}, {} hashes", i + 1);
                assert_eq!(compacted.encoded_len(), codec::HEADER_LEN + 8 * (i + 1));
                continue;
            }
            // Sparse up to 2^p/8 tokens of 32 bits.
            let is_dense = compacted.form() == Form::Dense;
            assert_eq!(
                is_dense,
                tokens > sparse::max_tokens(p),
                "p {p}, {} hashes",
                i + 1
            );
            // A dense sketch built by insertions also holds its 8-byte martingale count.
            assert_eq!(compacted.has_martingale(), is_dense);
            let expected = if is_dense {
                compacted.encode().len()
            } else {
                sparse_len
            };
            assert_eq!(compacted.encoded_len(), expected);
        }
    }
}

/// Sets of 26-bit tokens (read from versions 1 and 2) keep the rule of those versions: sparse
/// while no longer than the 6-bit dense form, so that their values stay canonical.
#[test]
fn legacy_tokens_follow_the_old_size_rule() {
    for p in [4u8, 6, 8, 10] {
        let dense_len = codec::dense_encoded_len(p);
        let start = tokens_sketch(p, &hashes(u64::from(p), 1));
        let steps = growing(start, sparse::LEGACY_PRECISION, &hashes(u64::from(p), 2000));
        for (compacted, sparse_len, _) in steps {
            let is_dense = compacted.form() == Form::Dense;
            assert_eq!(is_dense, sparse_len > dense_len, "p {p}");
            if !is_dense {
                let bytes = compacted.encode();
                assert_eq!(bytes[..4], [PLAIN_FORMAT_VERSION, 1, p, SPARSE_PRECISION]);
                assert_eq!(bytes.len(), sparse_len);
                assert_eq!(Sketch::decode(&bytes).unwrap(), compacted);
            }
        }
    }
}

// ---- accuracy ------------------------------------------------------------------------------------

/// The default-run accuracy check (debug builds too): p = 14 around the classic estimator's
/// bias bump and p = 10 over the whole range. The larger runs are in `accuracy_table`.
#[test]
fn accuracy_default_run() {
    let rse14 = 1.04 / 128.0;
    for (n, seeds) in [(10_000usize, 40u64), (44_236, 40), (100_000, 20)] {
        let (bias, rms) = bias_and_rms(14, n, 0..seeds);
        assert!(
            bias.abs() < 0.004,
            "p 14, n {n}: bias {:.3} %",
            bias * 100.0
        );
        assert!(
            rms < 0.010,
            "p 14, n {n}: rms {:.3} % (theory {:.3} %)",
            rms * 100.0,
            rse14 * 100.0
        );
    }
    // A sanity check of the large range (8 seeds say little about the RMS error).
    let (bias, rms) = bias_and_rms(14, 1_000_000, 0..8);
    assert!(
        bias.abs() < 0.01 && rms < 0.015,
        "p 14, n 1e6: bias {:.3} %, rms {:.3} %",
        bias * 100.0,
        rms * 100.0
    );
    let rse10 = 1.04 / 32.0;
    for factor in [0.5, 1.0, 2.7, 5.0, 10.0] {
        let n = (factor * 1024.0) as usize;
        let (bias, rms) = bias_and_rms(10, n, 100..300);
        assert!(
            bias.abs() < 0.005,
            "p 10, n {n}: bias {:.3} %",
            bias * 100.0
        );
        assert!(rms < 1.15 * rse10, "p 10, n {n}: rms {:.3} %", rms * 100.0);
    }
}

/// XXH3 hashes of integers, 40 disjoint value ranges, as the SQL side will feed them.
#[test]
fn accuracy_with_the_real_hash() {
    let n = 44_236i64;
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for range in 0..40i64 {
        let mut s = Sketch::new(14).unwrap();
        for v in range * 10_000_000..range * 10_000_000 + n {
            s.add_hash(hash_int(v));
        }
        let error = s.estimate() / n as f64 - 1.0;
        sum += error;
        sum_sq += error * error;
    }
    let (bias, rms) = (sum / 40.0, (sum_sq / 40.0).sqrt());
    assert!(bias.abs() < 0.004, "bias {:.3} %", bias * 100.0);
    assert!(rms < 0.0102, "rms {:.3} %", rms * 100.0);
}

/// Bias and RMS error per precision and n, over many seeds. Slow in debug builds; run with
/// `cargo test --release accuracy_table -- --ignored --nocapture` (HLL_ACCURACY_SEEDS sets the
/// number of seeds, default 100; HLL_ACCURACY_LARGE_SEEDS those of n > 100·m, default 40).
#[test]
#[ignore]
fn accuracy_table() {
    let seeds: u64 = std::env::var("HLL_ACCURACY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let large_seeds: u64 = std::env::var("HLL_ACCURACY_LARGE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    // HLL_ACCURACY_P=16 and HLL_ACCURACY_MIN_FACTOR=1000 narrow the table to one corner.
    let only_p: Option<u8> = std::env::var("HLL_ACCURACY_P")
        .ok()
        .and_then(|v| v.parse().ok());
    let min_factor: f64 = std::env::var("HLL_ACCURACY_MIN_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    println!("p      n        n/m   bias %   rms %   1.04/√m %  rms/theory");
    let mut worst_bias: f64 = 0.0;
    for p in [10u8, 12, 14, 16] {
        if only_p.is_some_and(|only| only != p) {
            continue;
        }
        let m = (1u64 << p) as f64;
        let theory = 1.04 / m.sqrt();
        let mut sizes: Vec<usize> = [0.5, 1.0, 2.0, 2.7, 5.0, 10.0, 100.0, 1000.0]
            .iter()
            .map(|f| (f * m) as usize)
            .collect();
        if p == 14 {
            sizes.extend([100, 1000, 10_000, 44_236, 100_000, 1_000_000]);
            sizes.sort_unstable();
            sizes.dedup();
        }
        for n in sizes.into_iter().filter(|&n| n as f64 >= min_factor * m) {
            // Fewer seeds for the largest runs keep the table under a few minutes
            // (HLL_ACCURACY_LARGE_SEEDS, default 40).
            let runs = if n as f64 > 100.0 * m && p >= 14 {
                large_seeds.min(seeds)
            } else {
                seeds
            };
            let (bias, rms) = bias_and_rms(p, n, 1000..1000 + runs);
            if n as f64 >= 0.5 * m {
                worst_bias = worst_bias.max(bias.abs());
            }
            println!(
                "{p:<3} {n:>10} {:>8.3} {:>8.3} {:>7.3} {:>9.3} {:>8.2}  ({runs} seeds)",
                n as f64 / m,
                bias * 100.0,
                rms * 100.0,
                theory * 100.0,
                rms / theory
            );
        }
    }
    println!("worst |bias| for n >= m/2: {:.3} %", worst_bias * 100.0);
}

/// Bias and RMS relative error of the martingale count and, on the same sketches, of the
/// registers' estimate (what a union of them would give): `(bias, rms)` twice.
fn martingale_and_registers(p: u8, n: usize, seeds: std::ops::Range<u64>) -> [(f64, f64); 2] {
    accuracy_and_bytes(p, n, seeds).errors
}

/// What [`accuracy_and_bytes`] finds.
struct Accuracy {
    /// `(bias, rms)` of the martingale count and of the registers' estimate.
    errors: [(f64, f64); 2],
    /// Mean bytes of the sketches and of their registers alone (a union's), as written, and in
    /// the 4-bit layout of format version 3 (the same as written while not dense).
    bytes: [f64; 2],
    nibble_bytes: [f64; 2],
}

/// [`martingale_and_registers`], with the mean sizes of the sketches.
fn accuracy_and_bytes(p: u8, n: usize, seeds: std::ops::Range<u64>) -> Accuracy {
    let mut sums = [(0.0, 0.0); 2];
    let mut bytes = [0.0; 4];
    let runs = seeds.end.saturating_sub(seeds.start) as f64;
    for seed in seeds {
        let mut rng = SplitMix64::new(seed);
        let mut s = Sketch::new(p).unwrap();
        for _ in 0..n {
            s.add_hash(rng.next_u64());
        }
        s.compact();
        let registers = s.without_martingale();
        for (sum, estimate) in sums.iter_mut().zip([s.estimate(), registers.estimate()]) {
            let error = estimate / n as f64 - 1.0;
            sum.0 += error;
            sum.1 += error * error;
        }
        let nibbles = |s: &Sketch| match s.repr {
            Repr::Dense(_) => nibble_dense(s).len(),
            _ => s.encoded_len(),
        };
        let sizes = [
            s.encoded_len(),
            registers.encoded_len(),
            nibbles(&s),
            nibbles(&registers),
        ];
        for (total, size) in bytes.iter_mut().zip(sizes) {
            *total += size as f64 / runs;
        }
    }
    Accuracy {
        errors: sums.map(|(sum, sum_sq)| (sum / runs, (sum_sq / runs).sqrt())),
        bytes: [bytes[0], bytes[1]],
        nibble_bytes: [bytes[2], bytes[3]],
    }
}

/// The default-run check of the martingale count (p = 10 keeps it fast in debug builds): far
/// past the sparse form it is unbiased, its RMS error near √(ln 2/m), and clearly below the
/// registers' estimate of the same sketches.
#[test]
fn martingale_beats_the_registers() {
    let theory = hip::RELATIVE_ERROR_FACTOR / 32.0;
    for n in [3_000usize, 20_000, 200_000] {
        let seeds = if n > 100_000 { 60 } else { 300 };
        let [(bias, rms), (_, registers_rms)] = martingale_and_registers(10, n, 0..seeds);
        check_martingale(&format!("n {n}"), seeds, (bias, rms), registers_rms, theory);
    }
}

/// A martingale count's bias within 3 standard errors of its mean over `runs`, its RMS error
/// within 20 % of `theory` and clearly below the registers' of the same sketches.
fn check_martingale(
    what: &str,
    runs: u64,
    (bias, rms): (f64, f64),
    registers_rms: f64,
    theory: f64,
) {
    let bias_bound = 3.0 * rms / (runs as f64).sqrt();
    assert!(
        bias.abs() < bias_bound,
        "{what}: bias {:.3} %",
        bias * 100.0
    );
    assert!(rms < 1.2 * theory, "{what}: rms {:.3} %", rms * 100.0);
    assert!(
        rms < 0.93 * registers_rms,
        "{what}: rms {:.3} % against the registers' {:.3} %",
        rms * 100.0,
        registers_rms * 100.0
    );
}

/// A union keeps a martingale count when one side holds hashes or tokens (they are replayed
/// into the other as insertions) and starts one when a union of small sketches turns dense:
/// a union of 16 sparse sketches is as accurate as one sketch built directly, unbiased, and
/// well below the registers' error.
#[test]
fn unions_of_small_sketches_keep_a_count() {
    let (p, parts, n) = (12u8, 16usize, 8_000usize);
    let theory = hip::RELATIVE_ERROR_FACTOR / 64.0;
    let (mut sum, mut sum_sq, mut registers_sq) = (0.0, 0.0, 0.0);
    let runs = 200;
    for seed in 0..runs {
        let hs = hashes(seed, n);
        let mut union = Sketch::new(p).unwrap();
        for part in hs.chunks(n / parts) {
            let part = sketch(p, part);
            assert_ne!(part.form(), Form::Dense);
            union.merge_from(&part).unwrap();
        }
        assert!(union.has_martingale());
        assert_eq!(
            union.without_martingale(),
            sketch(p, &hs).without_martingale()
        );
        let error = union.estimate() / n as f64 - 1.0;
        sum += error;
        sum_sq += error * error;
        registers_sq += (union.without_martingale().estimate() / n as f64 - 1.0).powi(2);
    }
    let (bias, rms) = (sum / runs as f64, (sum_sq / runs as f64).sqrt());
    let registers_rms = (registers_sq / runs as f64).sqrt();
    check_martingale("16 unions", runs, (bias, rms), registers_rms, theory);
    // A dense side keeps its count when the other is small, in either order.
    let big = sketch(p, &hashes(1, 20_000));
    let small = sketch(p, &hashes(2, 300));
    assert_eq!(small.form(), Form::Sparse);
    let (a, b) = (big.union(&small).unwrap(), small.union(&big).unwrap());
    assert!(a.has_martingale());
    assert_eq!(a.encode(), b.encode());
    assert!(a.estimate() > big.estimate());
    // Two dense sides keep none.
    assert!(
        !big.union(&sketch(p, &hashes(3, 20_000)))
            .unwrap()
            .has_martingale()
    );
}

/// The accuracy table of the martingale count at p = 14 over 1,000 seeds (HLL_ACCURACY_SEEDS;
/// HLL_ACCURACY_LARGE_SEEDS, default 100, for n = 10^7, HLL_ACCURACY_HUGE_SEEDS, default 10,
/// for 10^8), beside the registers' estimate of the same sketches, with their mean bytes and
/// RMS × √bytes, in the layout written (format version 4's Huffman codes once dense) and in
/// the 4-bit layout of version 3. Fails on a bias above 0.3 % or an RMS error more than 10 %
/// above √(ln 2/m). Run with
/// `cargo test --lib --no-default-features --features pg15,pg_test martingale_accuracy_table -- --ignored --nocapture`
/// (a few minutes in a debug build; `--release` runs the same arithmetic about 20 times faster).
#[test]
#[ignore]
fn martingale_accuracy_table() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seeds, large_seeds, huge_seeds) = (
        env("HLL_ACCURACY_SEEDS", 1000),
        env("HLL_ACCURACY_LARGE_SEEDS", 100),
        env("HLL_ACCURACY_HUGE_SEEDS", 10),
    );
    // HLL_ACCURACY_MIN_N=10000000 leaves out the smaller rows, HLL_ACCURACY_MAX_N the larger.
    let min_n = env("HLL_ACCURACY_MIN_N", 0) as usize;
    let max_n = env("HLL_ACCURACY_MAX_N", u64::MAX) as usize;
    let p = 14;
    let theory = hip::RELATIVE_ERROR_FACTOR / 128.0;
    println!(
        "{:<11} {:>5}  {:>28}  {:>28}  {:>26}",
        "",
        "",
        "martingale (built directly)",
        "registers (after a union)",
        "4-bit layout (version 3)"
    );
    println!(
        "{:<11} {:>5}  {:>7} {:>6} {:>6} {:>6}  {:>7} {:>6} {:>6} {:>6}  {:>6} {:>6} {:>6} {:>6}",
        "n",
        "seeds",
        "bias %",
        "rms %",
        "bytes",
        "×√b",
        "bias %",
        "rms %",
        "bytes",
        "×√b",
        "bytes",
        "×√b",
        "bytes",
        "×√b"
    );
    for n in [
        1_000usize,
        2_000,
        3_000,
        5_000,
        10_000,
        30_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ] {
        let runs = match n {
            ..=1_000_000 => seeds,
            ..=10_000_000 => large_seeds,
            _ => huge_seeds,
        };
        if runs == 0 || n < min_n || n > max_n {
            continue;
        }
        let Accuracy {
            errors: [(bias, rms), (registers_bias, registers_rms)],
            bytes,
            nibble_bytes,
        } = accuracy_and_bytes(p, n, 5000..5000 + runs);
        let per_byte = |rms: f64, bytes: f64| rms * 100.0 * bytes.sqrt();
        println!(
            "{n:<11} {runs:>5}  {:>+7.3} {:>6.3} {:>6.0} {:>6.1}  {:>+7.3} {:>6.3} {:>6.0} {:>6.1}  {:>6.0} {:>6.1} {:>6.0} {:>6.1}",
            bias * 100.0,
            rms * 100.0,
            bytes[0],
            per_byte(rms, bytes[0]),
            registers_bias * 100.0,
            registers_rms * 100.0,
            bytes[1],
            per_byte(registers_rms, bytes[1]),
            nibble_bytes[0],
            per_byte(rms, nibble_bytes[0]),
            nibble_bytes[1],
            per_byte(registers_rms, nibble_bytes[1]),
        );
        assert!(bias.abs() < 0.003, "n {n}: bias {:.3} %", bias * 100.0);
        assert!(rms < 1.1 * theory, "n {n}: rms {:.3} %", rms * 100.0);
    }
}

/// How often `[lower, upper]` holds the true count, over 200 seeds.
fn coverage(p: u8, n: usize, confidence: f64) -> usize {
    (0..200)
        .filter(|&seed| {
            let s = sketch(p, &hashes(seed, n));
            let b = s.estimate_with_bounds(confidence).unwrap();
            assert!(b.lower <= b.estimate && b.estimate <= b.upper);
            b.lower <= n as f64 && n as f64 <= b.upper
        })
        .count()
}

#[test]
fn bounds_cover_the_truth_about_as_often_as_promised() {
    // Far above m the error is 1.04/√m and a 90 % interval covers about 180 of 200.
    let far = coverage(8, 100 * 256, 0.9);
    assert!(
        (165..=195).contains(&far),
        "{far} of 200 at 90 %, n = 100·m"
    );
    // Nearer m the error is smaller than 1.04/√m, so the interval is cautious.
    let near = coverage(10, 5 * 1024, 0.9);
    assert!(near >= 175, "{near} of 200 at 90 %, n = 5·m");
}

#[test]
fn forged_extremes_never_give_nan() {
    // Every register at its maximum: the estimator's denominator is 0.
    let mut bytes = vec![1, 2, 4, 26];
    let max = 61u32;
    let word = max | max << 6 | max << 12 | max << 18;
    for _ in 0..4 {
        bytes.extend_from_slice(&word.to_le_bytes()[..3]);
    }
    let s = Sketch::decode(&bytes).unwrap();
    assert_eq!(s.estimate(), 18_446_744_073_709_551_616.0);
    assert_eq!(s.count().unwrap_err().kind, ErrorKind::Overflow);
    let b = s.estimate_with_bounds(0.99).unwrap();
    assert!(b.lower.is_finite() && b.upper.is_finite() && b.lower <= b.upper);
    // One register set to 1 and the rest zero.
    let mut one = vec![1, 2, 4, 26, 1];
    one.resize(16, 0);
    let s = Sketch::decode(&one).unwrap();
    assert!(s.estimate() >= 1.0 && s.estimate().is_finite());
    assert_eq!(s.estimate_with_bounds(0.99).unwrap().lower, 1.0);
}

// ---- decoder and parser rejections -------------------------------------------------------------

#[test]
fn decoder_rejects_each_broken_field() {
    let sparse_bytes = sketch(14, &hashes(1, 300)).encode();
    let explicit_bytes = sketch(14, &hashes(1, 10)).encode();
    let built = sketch(4, &hashes(1, 100));
    let martingale_bytes = built.encode();
    assert_eq!(martingale_bytes[..2], [3, 5]);
    let dense_bytes = built.without_martingale().encode();
    assert_eq!(dense_bytes[..2], [3, 6]);
    let legacy_bytes = legacy_dense(&built, 2);
    assert_eq!(legacy_bytes.len(), 16);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing", vec![]),
        ("short header", vec![2, 0, 14]),
        ("version 0", vec![0, 0, 14, 26]),
        ("version 5", vec![5, 0, 14, 26]),
        ("empty form in version 4", vec![4, 0, 14, 26]),
        ("empty form in version 3", vec![3, 0, 14, 26]),
        ("form 6", vec![3, 6, 14, 26]),
        ("form 4", vec![2, 4, 14, 26]),
        ("explicit form in version 1", {
            let mut b = vec![1, 3, 14, 26];
            b.extend_from_slice(&7u64.to_le_bytes());
            b
        }),
        ("explicit without hashes", vec![2, 3, 14, 26]),
        (
            "explicit with a partial hash",
            vec![2, 3, 14, 26, 1, 2, 3, 4, 5, 6, 7],
        ),
        ("explicit hashes out of order", {
            let mut b = vec![2, 3, 14, 26];
            b.extend_from_slice(&9u64.to_le_bytes());
            b.extend_from_slice(&7u64.to_le_bytes());
            b
        }),
        ("explicit hash repeated", {
            let mut b = vec![2, 3, 14, 26];
            b.extend_from_slice(&7u64.to_le_bytes());
            b.extend_from_slice(&7u64.to_le_bytes());
            b
        }),
        ("explicit beyond its capacity at p = 4", {
            let mut b = vec![2, 3, 4, 26];
            b.extend_from_slice(&7u64.to_le_bytes());
            b.extend_from_slice(&9u64.to_le_bytes());
            b
        }),
        ("precision 3", vec![2, 0, 3, 26]),
        ("precision 19", vec![2, 0, 19, 26]),
        ("sparse precision 25", vec![2, 0, 14, 25]),
        ("empty with payload", vec![2, 0, 14, 26, 0]),
        ("sparse without tokens", vec![2, 1, 14, 26]),
        ("overlong varint", vec![2, 1, 14, 26, 0x81, 0x00]),
        (
            "5-byte varint",
            vec![2, 1, 14, 26, 0x81, 0x80, 0x80, 0x80, 0x01],
        ),
        ("truncated varint", vec![2, 1, 14, 26, 0x81]),
        ("index 2^26", vec![2, 1, 14, 26, 0x80, 0x80, 0x80, 0x20]),
        ("missing rank byte", vec![2, 1, 14, 26, 0x00]),
        ("rank 0", vec![2, 1, 14, 26, 0x00, 0]),
        ("rank 40", vec![2, 1, 14, 26, 0x00, 40]),
        (
            "too long for anything",
            vec![2, 2, 18, 26]
                .into_iter()
                .chain(std::iter::repeat_n(0, MAX_ENCODED_LEN))
                .collect(),
        ),
        ("all-zero dense", {
            let mut b = vec![2, 2, 4, 26];
            b.resize(16, 0);
            b
        }),
    ];
    // Index 2^26 - 2, then a gap of 1: two entries that add up past the last index.
    cases.push((
        "index overflow",
        vec![2, 1, 14, 26, 0xfe, 0xff, 0xff, 0x1f, 0x01],
    ));
    // Sparse form longer than the dense one at p = 4 (16 bytes).
    let long_sparse = tokens_sketch(18, &hashes(2, 8)).encode();
    let mut as_p4 = long_sparse.clone();
    as_p4[2] = 4;
    assert!(as_p4.len() > 16);
    cases.push(("sparse longer than dense", as_p4));
    for cut in 0..sparse_bytes.len() - 1 {
        let truncated = sparse_bytes[..cut].to_vec();
        // Cutting after a whole entry leaves a valid, shorter sketch: skip those.
        if Sketch::decode(&truncated).is_err() {
            cases.push(("truncated sparse", truncated));
        }
    }
    for cut in 0..explicit_bytes.len() - 1 {
        let truncated = explicit_bytes[..cut].to_vec();
        // Cutting after a whole hash leaves a valid, shorter sketch: skip those.
        if Sketch::decode(&truncated).is_err() {
            cases.push(("truncated explicit", truncated));
        }
    }
    for (truncated, trailing, bytes) in [
        (
            "truncated 6-bit dense",
            "6-bit dense with a trailing byte",
            &legacy_bytes,
        ),
        (
            "truncated dense",
            "dense with a trailing byte",
            &dense_bytes,
        ),
        (
            "truncated martingale",
            "martingale with a trailing byte",
            &martingale_bytes,
        ),
    ] {
        for cut in 0..bytes.len() {
            cases.push((truncated, bytes[..cut].to_vec()));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        cases.push((trailing, longer));
    }
    let mut too_high = legacy_bytes.clone();
    too_high[4] |= 63; // register 0 = 63 > 61
    cases.push(("register above the maximum", too_high));
    // Forms 5 and 6: version 3 only, 4-bit registers whose base is the smallest, an escape
    // byte per escape nibble, a count between the non-zero registers and 2^64.
    for (what, bytes) in [
        ("martingale form in version 2", &martingale_bytes),
        ("4-bit dense form in version 2", &dense_bytes),
    ] {
        let mut in_version_2 = bytes.clone();
        in_version_2[0] = 2;
        cases.push((what, in_version_2));
    }
    let mut legacy_in_version_3 = legacy_bytes.clone();
    legacy_in_version_3[0] = 3;
    cases.push(("6-bit dense form in version 3", legacy_in_version_3));
    let p4 = |payload: &[u8]| [&[3, 6, 4, 26][..], payload].concat();
    cases.push((
        "base not the smallest",
        p4(&[1, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11]),
    ));
    cases.push(("base above the maximum", p4(&[62, 0, 0, 0, 0, 0, 0, 0, 0])));
    cases.push(("escape bytes missing", p4(&[0, 0xff, 0, 0, 0, 0, 0, 0, 0])));
    cases.push((
        "escape byte without escape",
        p4(&[0, 0x01, 0, 0, 0, 0, 0, 0, 0, 3]),
    ));
    cases.push((
        "escape above the maximum",
        p4(&[0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 47]),
    ));
    cases.push(("nibbles truncated", p4(&[0, 0x01, 0, 0, 0, 0, 0, 0])));
    cases.push(("all-zero 4-bit dense", p4(&[0, 0, 0, 0, 0, 0, 0, 0, 0])));
    cases.push(("martingale without its count", vec![3, 5, 4, 26, 0, 0, 0]));
    for (what, count) in [
        ("martingale NaN", f64::NAN),
        ("martingale +inf", f64::INFINITY),
        ("martingale negative", -1.0),
        ("martingale zero", 0.0),
        ("martingale below the non-zero registers", 1.5),
        ("martingale above 2^64", 3.0e19),
    ] {
        let mut b = martingale_bytes.clone();
        b[4..12].copy_from_slice(&count.to_le_bytes());
        cases.push((what, b));
    }
    let mut too_high = martingale_bytes.clone();
    too_high[12] = 62; // the base
    cases.push(("martingale register above the maximum", too_high));
    let mut all_zero = martingale_bytes[..12].to_vec();
    all_zero.resize(12 + 9, 0);
    cases.push(("all-zero martingale", all_zero));
    assert_refused(cases);
}

/// Each case is refused as invalid binary data with a detail, by `decode` and by
/// `merge_encoded`, which leaves its target unchanged.
fn assert_refused(cases: Vec<(&str, Vec<u8>)>) {
    for (what, bytes) in cases {
        let error = Sketch::decode(&bytes).expect_err(what);
        assert_eq!(error.kind, ErrorKind::InvalidBinary, "{what}");
        assert_eq!(error.message, "invalid binary data for type hll");
        assert!(error.detail.is_some(), "{what}");
        let mut target = sketch(4, &hashes(9, 100));
        let before = target.encode();
        assert!(target.merge_encoded(&bytes).is_err(), "{what}");
        assert_eq!(
            target.encode(),
            before,
            "{what}: merge_encoded changed the target"
        );
    }
}

/// The Huffman layout of `registers` at precision `p` (form 8) under the code of `lengths`,
/// whatever those are: forged values.
fn forged_huffman(p: u8, registers: &[u8], lengths: Option<[u8; 64]>) -> Vec<u8> {
    let (quarters, total) = huffman::quarter_histograms(registers);
    let mut code = huffman::Code::of_histograms(&quarters, &total);
    if let Some(lengths) = lengths {
        code = code.with_lengths(lengths, registers);
    }
    let mut out = vec![FORMAT_VERSION, 8, p, SPARSE_PRECISION];
    huffman::pack(registers, &code, &mut out);
    out
}

#[test]
fn decoder_rejects_broken_huffman_layouts() {
    // The p = 6 value of huffman_bytes_by_hand, with a twist: stream k's quarter is 9 × 3,
    // 4 × 1, 3 × 7 (23 bits, 3 bytes with a padding bit). Lengths 3: 1, 1: 2, 7: 2.
    let quarter = [3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 7, 7, 7];
    let registers: Vec<u8> = quarter.iter().copied().cycle().take(64).collect();
    let good = forged_huffman(6, &registers, None);
    assert_eq!(good[4..14], [1, 7, 0x10, 0x02, 0x00, 0x00, 0x40, 3, 3, 3]);
    assert_eq!(good.len(), 14 + 12);
    let s = Sketch::decode(&good).unwrap();
    assert_eq!(s.encode(), good);
    let built = sketch(10, &hashes(4, 20_000));
    let with_count = built.encode();
    assert_eq!(with_count[..2], [4, 7]);
    let lengths = |pairs: &[(usize, u8)]| {
        let mut l = [0u8; 64];
        pairs.iter().for_each(|&(s, len)| l[s] = len);
        l
    };
    let with = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        b
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("form 8 in version 3", with(0, 3)),
        ("form 7 in version 3", {
            let mut b = with_count.clone();
            b[0] = 3;
            b
        }),
        ("form 6 in version 4", {
            let mut b = nibble_dense(&s);
            b[0] = 4;
            b
        }),
        ("form 9", with(1, 9)),
        ("no bounds", good[..4].to_vec()),
        ("one bound", good[..5].to_vec()),
        ("all registers zero", vec![4, 8, 6, 26, 0, 0]),
        (
            "every register above the maximum",
            vec![4, 8, 6, 26, 60, 60],
        ),
        ("largest register above the maximum", with(5, 60)),
        ("smallest above the largest", with(4, 8)),
        // High 8 with a zero length for 8: the 5 more bits fit the padding of the lengths.
        ("largest bound held by no register", with(5, 8)),
        // Low 0 with a zero length for 0: the lengths 0 2 0 1 0 0 0 2, 40 bits.
        ("smallest bound held by no register", {
            let mut b = good.clone();
            b[4] = 0;
            b.splice(6..11, [0x00, 0x80, 0x10, 0x00, 0x02]);
            b
        }),
        (
            "equal registers with a byte after",
            vec![4, 8, 4, 26, 3, 3, 0],
        ),
        ("lengths truncated", good[..8].to_vec()),
        ("non-zero bits after the lengths", with(10, 0x41)),
        // 1: 2 -> 3: the code no longer fills the tree
        ("incomplete code", with(6, 0x18)),
        // 1: 2 -> 1: more codes than the tree holds
        ("over-full code", with(6, 0x08)),
        ("every length 31", {
            let mut b = good.clone();
            b[6..10].fill(0xff);
            b[10] = 0xe0;
            b
        }),
        (
            "overlong varint",
            [&good[..11], &[0x83, 0x00, 3, 3], &good[14..]].concat(),
        ),
        ("truncated varint", good[..12].to_vec()),
        ("stream longer than the value", with(11, 0x7f)),
        ("streams 0 and 1 split elsewhere", with(11, 2)),
        ("trailing byte", [&good[..], &[0]].concat()),
        ("non-zero padding bit", {
            let mut b = good.clone();
            *b.last_mut().unwrap() |= 1;
            b
        }),
        // A complete prefix code, but not the registers' Huffman code: 7 gets "0".
        (
            "not the Huffman code",
            forged_huffman(6, &registers, Some(lengths(&[(1, 2), (3, 2), (7, 1)]))),
        ),
        // A complete code with a code for 2, which no register holds.
        (
            "a code for an absent value",
            forged_huffman(
                6,
                &registers,
                Some(lengths(&[(1, 2), (2, 3), (3, 1), (7, 3)])),
            ),
        ),
        // The 4-bit layout of these p = 4 registers is shorter (9 bytes).
        (
            "Huffman layout not shorter",
            forged_huffman(4, &[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], None),
        ),
        (
            "martingale form without its count",
            vec![4, 7, 6, 26, 1, 2, 3],
        ),
    ];
    for cut in 0..good.len() {
        cases.push(("truncated", good[..cut].to_vec()));
    }
    for cut in [5, 12, 13, 14, 20, 100, with_count.len() - 1] {
        cases.push(("truncated martingale", with_count[..cut].to_vec()));
    }
    for (what, count) in [
        ("martingale NaN", f64::NAN),
        ("martingale below the non-zero registers", 1.5),
        ("martingale above 2^64", 3.0e19),
    ] {
        let mut b = with_count.clone();
        b[4..12].copy_from_slice(&count.to_le_bytes());
        cases.push((what, b));
    }
    assert_refused(cases);
}

#[test]
fn text_parser_is_strict() {
    let s = sketch(14, &hashes(3, 50));
    let text = s.to_text();
    assert_eq!(Sketch::parse_text(&text).unwrap(), s);
    let body = &text[TEXT_PREFIX.len()..];
    let bad = [
        String::new(),
        "hll1:".to_string(),
        body.to_string(),
        format!("HLL1:{body}"),
        format!("hll2:{body}"),
        format!(" {text}"),
        format!("{text} "),
        format!("{text}\n"),
        format!("hll1: {body}"),
        format!("{text}===="),
        text[..text.len() - 1].to_string(),
        "hll1:AQAOGg=".to_string(),
        "hll1:AQAOGg".to_string(),
        "hll1:AQAOGh==".to_string(), // non-zero unused bits
        "hll1:AQA=Ggaa".to_string(), // padding in the middle
        "hll1:AQAOG===".to_string(),
        "hll1:AQAOGg-=".to_string(),
        "hll1:AQAOGgé=".to_string(),
        "hll1:AwAOGg==".to_string(), // version 3
        "hll1:AQAEGgA=".to_string(), // empty with a payload byte
    ];
    for input in &bad {
        let e = Sketch::parse_text(input).expect_err(input);
        assert_eq!(e.kind, ErrorKind::InvalidText, "{input:?}");
        assert!(
            e.message.starts_with("invalid input syntax for type hll"),
            "{input:?}"
        );
        assert!(e.detail.is_some(), "{input:?}");
    }
    // The empty sketch at p = 15 differs in one character and is fine, in either version.
    for text in ["hll1:AgAPGg==", "hll1:AQAPGg=="] {
        assert_eq!(Sketch::parse_text(text).unwrap(), Sketch::new(15).unwrap());
    }
    let huge = format!("hll1:{}", "A".repeat(400_000));
    assert_eq!(
        Sketch::parse_text(&huge).unwrap_err().kind,
        ErrorKind::InvalidText
    );
}

// ---- merge and fold laws -----------------------------------------------------------------------

#[test]
fn union_of_mixed_forms_and_precisions() {
    let a = sketch(14, &hashes(1, 20_000)); // dense
    let b = sketch(12, &hashes(2, 300)); // sparse
    let c = sketch(10, &[]); // empty
    assert_eq!(
        (a.form(), b.form(), c.form()),
        (Form::Dense, Form::Sparse, Form::Empty)
    );
    let ab = a.union(&b).unwrap();
    assert_eq!(ab.precision(), 12);
    let mut all = hashes(1, 20_000);
    all.extend(hashes(2, 300));
    assert_eq!(ab, sketch(12, &all).without_martingale());
    // An empty sketch is neutral: it does not fold the other side to its precision.
    assert_eq!(ab.union(&c).unwrap(), ab);
    assert_eq!(c.union(&b).unwrap(), b);
    assert_eq!(c.union(&sketch(16, &[])).unwrap(), c);
    assert_eq!(sketch(16, &[]).union(&c).unwrap(), c);
    let mut merged = b.clone();
    merged.merge_encoded(&a.encode()).unwrap();
    assert_eq!(merged, ab);
}

#[test]
fn merge_encoded_matches_union() {
    for p in [4u8, 10, 14] {
        let mut target = sketch(p, &hashes(1, 30_000));
        let other = sketch(p, &hashes(2, 30_000));
        assert_eq!((target.form(), other.form()), (Form::Dense, Form::Dense));
        let expected = target.union(&other).unwrap();
        target.merge_encoded(&other.encode()).unwrap();
        assert_eq!(target, expected);
    }
}

fn tokens_payload_len(hashes: &[u64]) -> usize {
    let mut set = SparseSet::new_in(Arena::HEAP, sparse::LEGACY_PRECISION);
    for &h in hashes {
        set.push_hash(h);
    }
    set.flush();
    set.encoded_payload_len()
}

/// A strategy for sketches that reach every form: a precision, a stream seed shared by all
/// three sketches of a case (so their hash sets overlap), and a slice of that stream.
fn sketch_params() -> impl Strategy<Value = (u8, usize, usize)> {
    (4u8..=11, 0usize..400, prop_oneof![0usize..40, 0usize..700])
}

fn build((p, start, len): (u8, usize, usize), stream: &[u64]) -> (Sketch, Vec<u64>) {
    let slice = stream[start..start + len].to_vec();
    (sketch(p, &slice), slice)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_laws(seed in 0u64..1000, a in sketch_params(), b in sketch_params(), c in sketch_params()) {
        let stream = hashes(seed, 1100);
        let (a, ha) = build(a, &stream);
        let (b, hb) = build(b, &stream);
        let (c, _) = build(c, &stream);
        let ab = a.union(&b).unwrap();
        // commutative, associative, idempotent, with identical bytes
        prop_assert_eq!(ab.encode(), b.union(&a).unwrap().encode());
        // (associative on the registers: the martingale count a union keeps depends on the
        // order its inputs turned dense in)
        prop_assert_eq!(ab.union(&c).unwrap().without_martingale().encode(), a.union(&b.union(&c).unwrap()).unwrap().without_martingale().encode());
        // (a union holds the registers alone: no martingale count)
        prop_assert_eq!(a.union(&a).unwrap().encode(), a.without_martingale().encode());
        prop_assert_eq!(ab.union(&b).unwrap().without_martingale().encode(), ab.without_martingale().encode());
        // a homomorphism: the union is the sketch of the union of the hashes
        let both: Vec<u64> = ha.iter().chain(&hb).copied().collect();
        // (an empty side takes no part in the precision)
        let p = match (ha.is_empty(), hb.is_empty()) {
            (true, false) => b.precision(),
            (false, true) => a.precision(),
            _ => a.precision().min(b.precision()),
        };
        prop_assert_eq!(ab.without_martingale().encode(), sketch(p, &both).without_martingale().encode());
        // in-place merge and merge from bytes agree with union
        let mut in_place = a.clone();
        in_place.merge_from(&b).unwrap();
        prop_assert_eq!(&in_place, &ab);
        let mut from_bytes = a.clone();
        from_bytes.merge_encoded(&b.encode()).unwrap();
        prop_assert_eq!(&from_bytes, &ab);
    }

    #[test]
    fn fold_equals_building_at_the_lower_precision(seed in any::<u64>(), n in prop_oneof![0usize..50, 0usize..3000], p in 4u8..=18, q in 4u8..=18) {
        let (high, low) = (p.max(q), p.min(q));
        let hs = hashes(seed, n);
        let folded = sketch(high, &hs).fold_to(low).unwrap();
        prop_assert_eq!(folded.without_martingale().encode(), sketch(low, &hs).without_martingale().encode());
    }

    #[test]
    fn round_trips(seed in any::<u64>(), p in 4u8..=16, n in prop_oneof![0usize..20, 0usize..500, 0usize..6000]) {
        let s = sketch(p, &hashes(seed, n));
        let bytes = s.encode();
        prop_assert_eq!(bytes.len(), s.encoded_len());
        let decoded = Sketch::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &s);
        prop_assert_eq!(decoded.encode(), bytes);
        let text = s.to_text();
        prop_assert_eq!(Sketch::parse_text(&text).unwrap().to_text(), text);
        prop_assert_eq!(decoded.form(), s.form());
        prop_assert_eq!(decoded.estimate(), s.estimate());
    }

    /// A 32-bit token knows its hash's 26-bit token and its dense register at every precision.
    #[test]
    fn tokens_fold_and_scatter_like_their_hashes(hash in any::<u64>(), p in 4u8..=18) {
        // Also with the index bits below p = 18 zero (the token keeps its rank), and more.
        let cleared = |bits: u32| hash & !(((1u64 << bits) - 1) << 32);
        for hash in [hash, cleared(14), cleared(20), cleared(32), hash & (u64::MAX << 46), hash >> 30] {
            let token = sparse::token(hash, sparse::PRECISION);
            prop_assert_eq!(
                sparse::fold_token(token, sparse::PRECISION, sparse::LEGACY_PRECISION),
                sparse::token(hash, sparse::LEGACY_PRECISION)
            );
            let dense = ((hash >> (64 - p)) as usize, dense::rank(hash, p));
            prop_assert_eq!(sparse::register(token, sparse::PRECISION, p), dense);
            let legacy = sparse::token(hash, sparse::LEGACY_PRECISION);
            prop_assert_eq!(sparse::register(legacy, sparse::LEGACY_PRECISION, p), dense);
        }
    }

    /// Sets of 32-bit tokens (form 9) read back as themselves, whatever their spread.
    #[test]
    fn rice_tokens_round_trip(seed in any::<u64>(), p in 4u8..=14, n in 1usize..2048, spread in 0u32..32) {
        let n = n.min(sparse::max_tokens(p));
        // Hashes in a range of 2^(32 - spread) tokens: close ones have small gaps.
        let hs: Vec<u64> = hashes(seed, n).into_iter().map(|h| h >> spread).collect();
        let s = Sketch {
            precision: p,
            repr: Repr::Sparse(SparseSet::from_hashes(&hs, Arena::HEAP, sparse::PRECISION)),
            hip: None,
        };
        let bytes = s.encode();
        prop_assert_eq!(bytes.len(), s.encoded_len());
        prop_assert_eq!(bytes[..4].to_vec(), vec![FORMAT_VERSION, 9, p, RICE_SPARSE_PRECISION]);
        let decoded = Sketch::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &s);
        prop_assert_eq!(decoded.encode(), bytes);
    }

    /// The canonical-form rule of 26-bit token sets relies on this: more tokens never make
    /// their sparse form shorter.
    #[test]
    fn sparse_payload_only_grows(seed in any::<u64>(), n in 0usize..300, extra in 1usize..50) {
        let hs = hashes(seed, n + extra);
        prop_assert!(tokens_payload_len(&hs[..n]) <= tokens_payload_len(&hs));
    }

    #[test]
    fn estimates_are_sane(seed in any::<u64>(), p in 4u8..=14, n in 0usize..5000, confidence in 0.0f64..0.9999) {
        let s = sketch(p, &hashes(seed, n));
        let b = s.estimate_with_bounds(confidence).unwrap();
        prop_assert!(b.estimate.is_finite() && b.lower.is_finite() && b.upper.is_finite());
        prop_assert!(0.0 <= b.lower && b.lower <= b.estimate && b.estimate <= b.upper);
        prop_assert_eq!(b.estimate, s.estimate());
        prop_assert_eq!(n == 0, b.estimate == 0.0);
    }

    /// The decoders never panic; whatever they accept re-encodes to the same bytes.
    #[test]
    fn decoder_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(s) = Sketch::decode(&bytes) { prop_assert_eq!(s.encode(), as_rewritten(&bytes)); }
    }

    /// A dense sketch is written in the shorter of the 4-bit and Huffman layouts (the 4-bit one
    /// on a tie), decodes to the same sketch, and the 4-bit bytes earlier builds wrote for the
    /// same registers read back as that sketch too, with the same estimate to the bit.
    #[test]
    fn dense_layout_is_the_shorter_and_changes_no_estimate(seed in any::<u64>(), p in 4u8..=14, n in prop_oneof![0usize..3000, 0usize..60_000], other in prop_oneof![Just(0usize), 0usize..30_000]) {
        let mut s = sketch(p, &hashes(seed, n));
        if other > 0 {
            s = s.union(&sketch(p, &hashes(seed ^ 0x5555, other))).unwrap();
        }
        s.compact();
        let Repr::Dense(registers) = &s.repr else { return Ok(()) };
        let bytes = s.encode();
        let count = s.hip.map(|h| h.count());
        prop_assert_eq!(&bytes, &dense_bytes(p, registers, count));
        prop_assert_eq!(bytes.len(), s.encoded_len());
        let old = nibble_dense(&s);
        prop_assert!(bytes.len() <= old.len());
        for input in [&bytes, &old] {
            let read = Sketch::decode(input).unwrap();
            prop_assert_eq!(&read, &s);
            prop_assert_eq!(read.encode(), bytes.clone());
            prop_assert_eq!(read.estimate().to_bits(), s.estimate().to_bits());
            let (a, b) = (read.estimate_with_bounds(0.95).unwrap(), s.estimate_with_bounds(0.95).unwrap());
            prop_assert_eq!((a.lower.to_bits(), a.upper.to_bits()), (b.lower.to_bits(), b.upper.to_bits()));
            prop_assert_eq!(read.count().unwrap(), s.count().unwrap());
            // The count goes on alike (the decoder's q, from the histogram, is the same sum).
            let (mut more_read, mut more_s) = (read.clone(), s.clone());
            for hash in hashes(seed ^ 0xabcd, 2_000) {
                more_read.add_hash(hash);
                more_s.add_hash(hash);
            }
            prop_assert_eq!(more_read.estimate().to_bits(), more_s.estimate().to_bits());
        }
    }

    /// Registers of any distribution (forged ones too) round-trip through the layout chosen.
    #[test]
    fn any_registers_round_trip(p in 4u8..=10, low in 0u8..40, spread in 0u8..25, skew in 0u32..4, seed in any::<u64>()) {
        let max = dense::max_rank(p);
        let mut rng = SplitMix64::new(seed);
        let registers: Vec<u8> = (0..1usize << p)
            .map(|_| {
                // Offsets from `low`, more often small ones when skewed.
                let mut offset = rng.below(u64::from(spread) + 1) as u8;
                for _ in 0..skew {
                    offset = offset.min(rng.below(u64::from(spread) + 1) as u8);
                }
                (low + offset).min(max)
            })
            .collect();
        if registers.iter().all(|&r| r == 0) {
            return Ok(());
        }
        let s = Sketch { precision: p, repr: Repr::Dense(Arena::HEAP.vec_from(&registers)), hip: None };
        let bytes = s.encode();
        prop_assert_eq!(&bytes, &dense_bytes(p, &registers, None));
        prop_assert_eq!(&Sketch::decode(&bytes).unwrap(), &s);
        prop_assert_eq!(Sketch::decode(&nibble_dense(&s)).unwrap().encode(), bytes);
    }

    /// The format's Huffman procedure gives an optimal code: as many bits as Huffman's cost
    /// (the sum of the weights of the joined trees, by a heap), and a complete one.
    #[test]
    fn code_lengths_are_optimal(counts in prop::collection::vec(prop_oneof![Just(0u32), 1u32..5, 1u32..100_000], 64)) {
        let counts: [u32; 64] = counts.try_into().unwrap();
        let lengths = huffman::code_lengths(&counts);
        let occurring = counts.iter().filter(|&&c| c > 0).count();
        let bits: u64 = counts.iter().zip(&lengths).map(|(&c, &l)| u64::from(c) * u64::from(l)).sum();
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<u64>> =
            counts.iter().filter(|&&c| c > 0).map(|&c| std::cmp::Reverse(u64::from(c))).collect();
        let mut cost = 0;
        while heap.len() > 1 {
            let (a, b) = (heap.pop().unwrap().0, heap.pop().unwrap().0);
            cost += a + b;
            heap.push(std::cmp::Reverse(a + b));
        }
        prop_assert_eq!(bits, cost);
        if occurring >= 2 {
            let kraft: f64 = lengths.iter().filter(|&&l| l > 0).map(|&l| 0.5f64.powi(l.into())).sum();
            prop_assert_eq!(kraft, 1.0);
            prop_assert!(counts.iter().zip(&lengths).all(|(&c, &l)| (c > 0) == (l > 0)));
        } else {
            prop_assert!(lengths.iter().all(|&l| l == 0));
        }
    }

    #[test]
    fn decoder_survives_garbage_after_a_valid_header(version in 1u8..=4, form in 0u8..9, p in 4u8..=6, payload in prop::collection::vec(any::<u8>(), 0..60)) {
        let mut bytes = vec![version, form, p, 26];
        bytes.extend(payload);
        if let Ok(s) = Sketch::decode(&bytes) { prop_assert_eq!(s.encode(), as_rewritten(&bytes)); }
    }

    #[test]
    fn decoder_survives_mutations(seed in any::<u64>(), p in 4u8..=12, n in 0usize..400, edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = sketch(p, &hashes(seed, n)).encode();
        for (at, value) in edits {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        // (An edit of the version byte can make a valid version-1 value, written back as 2.)
        if let Ok(s) = Sketch::decode(&bytes) { prop_assert_eq!(s.encode(), as_rewritten(&bytes)); }
    }

    #[test]
    fn text_parser_survives_garbage(text in "(hll1:)?[A-Za-z0-9+/=]{0,40}|\\PC{0,40}") {
        if let Ok(s) = Sketch::parse_text(&text) { prop_assert_eq!(s.to_text(), text); }
    }
}

#[test]
fn nonzero_registers_eight_at_a_time() {
    let mut rng = SplitMix64::new(3);
    for len in [0usize, 1, 7, 8, 9, 16, 100, 1 << 14] {
        for density in [0u64, 1, 2, 8] {
            let registers: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(8) < density {
                        rng.below(256) as u8
                    } else {
                        0
                    }
                })
                .collect();
            let expected = registers.iter().filter(|&&r| r != 0).count();
            assert_eq!(dense::nonzero(&registers), expected, "len {len}");
        }
    }
    assert_eq!(dense::nonzero(&[0x80, 0x7f, 1, 0, 0xff, 0, 0, 0, 0x01]), 5);
}

#[test]
fn rank_is_one_plus_the_leading_zeros_below_the_index() {
    // The branch-free rank (a sentinel bit under the counted ones) against the definition.
    let by_definition = |hash: u64, p: u8| {
        let below_index = hash << p;
        if below_index == 0 {
            65 - p
        } else {
            below_index.leading_zeros() as u8 + 1
        }
    };
    for p in [
        MIN_PRECISION,
        10,
        DEFAULT_PRECISION,
        MAX_PRECISION,
        SPARSE_PRECISION,
    ] {
        let shift = 64 - u32::from(p);
        let edges = [
            0,
            1,
            u64::MAX,
            u64::MAX << shift,
            1u64 << shift,
            (1u64 << shift) - 1,
        ];
        for hash in edges.into_iter().chain((0..100_000).map(hash_int)) {
            assert_eq!(
                super::dense::rank(hash, p),
                by_definition(hash, p),
                "p {p}, hash {hash:#x}"
            );
        }
    }
}

/// Decoding and encoding times of the two dense layouts at p = 14 (the fastest of 500 runs
/// each, in microseconds): what a stored value costs to read and write. Run with
/// `cargo test --release --lib --no-default-features --features pg15,pg_test dense_layout_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn dense_layout_speed() {
    use std::time::Instant;
    let fastest = |f: &mut dyn FnMut()| {
        (0..500)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e6
            })
            .fold(f64::MAX, f64::min)
    };
    println!("n          4-bit bytes  decode  encode   Huffman bytes  decode  encode");
    for n in [10_000usize, 100_000, 1_000_000, 10_000_000] {
        let s = sketch(14, &hashes(9, n)).without_martingale();
        let Repr::Dense(registers) = &s.repr else {
            panic!("dense expected")
        };
        let nibbles = nibble_dense(&s);
        let huffman = s.encode();
        assert_eq!(huffman[..2], [FORMAT_VERSION, 8]);
        let decode = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            fastest(&mut || {
                std::hint::black_box(Sketch::decode(std::hint::black_box(&bytes)).unwrap());
            })
        };
        let encode_nibbles = fastest(&mut || {
            let mut out = Vec::new();
            dense::pack4(std::hint::black_box(registers), &mut out);
            std::hint::black_box(out);
        });
        let encode_huffman = fastest(&mut || {
            std::hint::black_box(std::hint::black_box(&s).encode());
        });
        println!(
            "{n:<10} {:>11} {:>7.1} {:>7.1}   {:>13} {:>7.1} {:>7.1}",
            nibbles.len(),
            decode(&nibbles),
            encode_nibbles,
            huffman.len(),
            decode(&huffman),
            encode_huffman
        );
    }
}
