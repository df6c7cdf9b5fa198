//! A deterministic mutation fuzzer for the hll decoders that runs on stable Rust (cargo-fuzz
//! needs nightly). It feeds [`Sketch::decode`], [`Sketch::merge_encoded`] and
//! [`Sketch::parse_text`] random bytes, random payloads behind valid headers, and valid
//! encodings mutated by bit flips, byte edits, truncation, extension, insertion, deletion,
//! header-field edits, varint continuation-bit edits and splices. It checks that nothing panics,
//! that every refusal is an error of the right kind that leaves a merge target unchanged, and
//! that whatever is accepted re-encodes to exactly the input (the canonical form), estimates
//! without NaN, and merges like its decoded value.
//!
//! `DISTCOUNT_FUZZ_CASES` sets the number of cases (default 20,000, a few seconds in a debug
//! build) and `DISTCOUNT_FUZZ_SEED` the seed. A long run:
//!
//! ```text
//! DISTCOUNT_FUZZ_CASES=1000000 cargo test --release fuzz_decoders -- --nocapture
//! ```

use super::tests::{SplitMix64, as_rewritten, legacy_dense, nibble_dense, tokens_sketch};
use super::*;
use crate::common::base64::encode_into as base64_encode;
use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn sketch_of(p: u8, seed: u64, n: usize) -> Sketch {
    let mut rng = SplitMix64::new(seed);
    Sketch::from_hashes(p, (0..n).map(|_| rng.next_u64())).unwrap()
}

/// Valid sketches of every form, from tiny to the largest. `large` are picked rarely so that
/// the default run stays fast in debug builds.
struct Corpus {
    small: Vec<Sketch>,
    large: Vec<Sketch>,
    small_bytes: Vec<Vec<u8>>,
    large_bytes: Vec<Vec<u8>>,
}

fn corpus() -> Corpus {
    let mut small = Vec::new();
    for p in [4u8, 10, 14, 18] {
        small.push(Sketch::new(p).unwrap());
    }
    // Hand-picked hashes: index 0 with every rank bit zero, the last index, kept and dropped
    // ranks (at 26 and at 32 bits), with enough others to be sparse.
    let mut picked = vec![0, u64::MAX, 1 << 38, 256 << 38, (256 << 38) | 1, 1 << 32];
    picked.extend([(1 << 46) | 1, 1 << 46, u64::MAX << 32, 3 << 45]);
    let mut rng = SplitMix64::new(31);
    picked.extend((0..130).map(|_| rng.next_u64()));
    small.push(Sketch::from_hashes(14, picked.iter().copied()).unwrap());
    small.push(Sketch::from_hashes(4, [0, 1 << 32]).unwrap());
    small.push(Sketch::from_hashes(4, [0]).unwrap());
    for (p, seed, n) in [
        (14u8, 1u64, 1usize),
        (14, 2, 2),
        (14, 3, 5),
        (14, 4, 20),
        (14, 5, 100),
        (12, 6, 300),
        (4, 7, 2),
        (4, 8, 3),
        (6, 9, 12),
        (8, 10, 40),
        (8, 11, 60),
        (10, 12, 250),
        (4, 13, 100),
        (4, 14, 10_000),
        (5, 15, 500),
        (6, 16, 2_000),
        (8, 17, 3_000),
        (10, 18, 5_000),
    ] {
        small.push(sketch_of(p, seed, n));
    }
    // Sketches imported from postgresql-hll (form 4): an explicit list, the storage spec's
    // sparse example, a full one at log2m 4.
    let mut explicit = vec![0x12, 0x8b, 0x7f];
    for hash in [-3_771_880_134_907_470_166i64, 1, 1 << 40] {
        explicit.extend_from_slice(&hash.to_be_bytes());
    }
    let sparse = vec![0x13, 0xab, 0x7f, 0x01, 0x63, 0x44, 0xb4, 0xc0];
    let mut full = vec![0x14, 0x84, 0x3f];
    full.extend((0..10).map(|i| [0x08, 0x42][i % 2]));
    for bytes in [explicit, sparse, full] {
        small.push(Sketch::from_postgresql_hll(&bytes, Arena::HEAP).unwrap());
    }
    // Dense sketches built by insertions carry a martingale count (forms 5 and 7); unions hold
    // the registers alone (forms 6 and 8). From p = 7 up the Huffman layout (forms 7 and 8) is
    // the shorter for random data; registers all equal take it at any precision.
    for (p, seed) in [(4u8, 19u64), (6, 23), (8, 24), (7, 25), (9, 26)] {
        let union = sketch_of(p, seed, 3_000).union(&sketch_of(p, seed + 100, 2_000));
        small.push(union.unwrap());
    }
    small.push(sketch_of(7, 27, 2_000));
    small.push(sketch_of(8, 28, 600));
    small.push(Sketch::decode(&[4, 8, 4, 26, 3, 3]).unwrap());
    // Sparse sets of 26-bit tokens, as values of versions 1 and 2 (form 1) hold them, and their
    // unions with sets of 32-bit tokens (form 9), which keep 26 bits.
    let mut rng = SplitMix64::new(29);
    let legacy_hashes: Vec<u64> = (0..300).map(|_| rng.next_u64()).collect();
    let legacy = tokens_sketch(14, &legacy_hashes);
    small.push(legacy.union(&sketch_of(14, 30, 400)).unwrap());
    small.push(legacy);
    small.push(tokens_sketch(10, &legacy_hashes[..100]));
    small.push(tokens_sketch(4, &legacy_hashes[..2]));
    small.push(tokens_sketch(
        14,
        &[0, u64::MAX, 1 << 38, 256 << 38, (256 << 38) | 1],
    ));
    small.push(Sketch::decode(&[4, 8, 5, 26, 60, 60]).unwrap());
    // In canonical form (a sketch of a few hashes may hold pending tokens that make it dense).
    small.iter_mut().for_each(Sketch::compact);
    let large = vec![
        sketch_of(14, 20, 1_000),
        sketch_of(14, 21, 50_000),
        sketch_of(18, 22, 400_000),
    ];
    let mut small_bytes: Vec<Vec<u8>> = small.iter().map(Sketch::encode).collect();
    // Version-1 values (every form but the explicit one), which this build reads too.
    let version_1: Vec<Vec<u8>> = small_bytes
        .iter()
        .filter(|bytes| bytes[1] <= 2)
        .map(|bytes| [&[1], &bytes[1..]].concat())
        .collect();
    small_bytes.extend(version_1);
    // The dense forms earlier builds wrote: form 2 of versions 1 and 2 (6 bits a register),
    // forms 5 and 6 of version 3 (4 bits).
    for s in small.iter().filter(|s| s.form() == Form::Dense) {
        small_bytes.push(legacy_dense(&s.without_martingale(), 2));
        small_bytes.push(legacy_dense(&s.without_martingale(), 1));
        small_bytes.push(nibble_dense(s));
        small_bytes.push(nibble_dense(&s.without_martingale()));
    }
    let large_bytes = large.iter().map(Sketch::encode).collect();
    Corpus {
        small,
        large,
        small_bytes,
        large_bytes,
    }
}

/// Bytes that sit on the edges of the format's fields.
const INTERESTING: [u8; 19] = [
    0, 1, 2, 3, 4, 5, 6, 9, 18, 19, 25, 26, 27, 32, 33, 39, 40, 0x7f, 0x80,
];

fn random_bytes(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn pick(rng: &mut SplitMix64, len: usize) -> usize {
    rng.below(len as u64) as usize
}

/// Applies one random mutation to `bytes`.
fn mutate(rng: &mut SplitMix64, bytes: &mut Vec<u8>, donors: &[Vec<u8>]) {
    let len = bytes.len();
    match rng.below(12) {
        0 if len > 0 => {
            let at = pick(rng, len);
            bytes[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = pick(rng, len);
            bytes[at] = INTERESTING[pick(rng, INTERESTING.len())];
        }
        2 if len > 0 => {
            let at = pick(rng, len);
            bytes[at] = rng.next_u64() as u8;
        }
        3 => bytes.truncate(pick(rng, len + 1)),
        4 => {
            let extra = 1 + pick(rng, 16);
            bytes.extend(random_bytes(rng, extra));
        }
        5 => {
            let at = pick(rng, len + 1);
            let extra = 1 + pick(rng, 4);
            let inserted = random_bytes(rng, extra);
            bytes.splice(at..at, inserted);
        }
        6 if len > 0 => {
            let start = pick(rng, len);
            let end = (start + 1 + pick(rng, 8)).min(len);
            bytes.drain(start..end);
        }
        7 if len > 0 => {
            // A header field: version, form, precision or sparse precision.
            let field = pick(rng, len.min(4));
            bytes[field] = match rng.below(3) {
                0 => bytes[field].wrapping_add(1),
                1 => bytes[field].wrapping_sub(1),
                _ => INTERESTING[pick(rng, INTERESTING.len())],
            };
        }
        8 if len > 1 => {
            let from = pick(rng, len);
            let to = pick(rng, len);
            let n = (1 + pick(rng, 8)).min(len - from).min(len - to);
            bytes.copy_within(from..from + n, to);
        }
        9 => {
            let donor = &donors[pick(rng, donors.len())];
            let keep = pick(rng, len + 1);
            let from = pick(rng, donor.len() + 1);
            bytes.truncate(keep);
            bytes.extend_from_slice(&donor[from..]);
        }
        10 if len > 4 => {
            // Varint continuation bits in a sparse payload.
            let at = 4 + pick(rng, len - 4);
            bytes[at] ^= 0x80;
        }
        11 if len > 1 => {
            let (a, b) = (pick(rng, len), pick(rng, len));
            bytes.swap(a, b);
        }
        _ => bytes.push(rng.next_u64() as u8),
    }
}

/// Characters a text mutation puts in: base64, padding, blanks, and some that never belong.
const TEXT_PIECES: [&str; 16] = [
    "A", "Q", "g", "z", "0", "9", "+", "/", "=", " ", "\n", "é", "-", "_", ":", "hll1:",
];

fn mutate_text(rng: &mut SplitMix64, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let len = chars.len();
        let piece: Vec<char> = TEXT_PIECES[pick(rng, TEXT_PIECES.len())].chars().collect();
        match rng.below(5) {
            0 if len > 0 => {
                let at = pick(rng, len);
                chars.splice(at..at + 1, piece);
            }
            1 => {
                let at = pick(rng, len + 1);
                chars.splice(at..at, piece);
            }
            2 if len > 0 => {
                chars.remove(pick(rng, len));
            }
            3 => chars.truncate(pick(rng, len + 1)),
            _ => {
                if let Some(c) = chars.get_mut(pick(rng, len.max(1))) {
                    *c = if c.is_ascii_uppercase() {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    };
                }
            }
        }
    }
    chars.into_iter().collect()
}

#[derive(Default)]
struct Stats {
    binary_accepted: u64,
    /// Accepted binary inputs by their form byte.
    accepted_by_form: [u64; 10],
    binary_refused: u64,
    text_accepted: u64,
    text_refused: u64,
}

fn check_binary(input: &[u8], partner: &Sketch, stats: &mut Stats) {
    let decoded = Sketch::decode(input);
    let mut target = partner.clone();
    let merged = target.merge_encoded(input);
    match decoded {
        Ok(sketch) => {
            stats.binary_accepted += 1;
            stats.accepted_by_form[usize::from(input[1])] += 1;
            assert_eq!(
                sketch.encode(),
                as_rewritten(input),
                "accepted bytes are not canonical: {input:02x?}"
            );
            assert_eq!(sketch.encoded_len(), as_rewritten(input).len());
            let b = sketch.estimate_with_bounds(0.95).unwrap();
            assert!(
                b.estimate.is_finite() && b.lower.is_finite() && b.upper.is_finite(),
                "{input:02x?}"
            );
            assert!(
                0.0 <= b.lower && b.lower <= b.estimate && b.estimate <= b.upper,
                "{b:?}"
            );
            if let Err(e) = sketch.count() {
                assert_eq!(e.kind, ErrorKind::Overflow);
            }
            // A union of an imported sketch and a native one (or of imported ones with other
            // parameters) is refused, by merge_encoded and union alike.
            match partner.union(&sketch) {
                Ok(expected) => {
                    assert!(
                        merged.is_ok(),
                        "merge_encoded refused what decode accepted: {input:02x?}"
                    );
                    assert_eq!(target, expected);
                    let union_bytes = target.encode();
                    assert_eq!(Sketch::decode(&union_bytes).unwrap().encode(), union_bytes);
                }
                Err(e) => {
                    assert!(sketch.is_foreign() || partner.is_foreign(), "{e}");
                    assert!(
                        matches!(
                            e.kind,
                            ErrorKind::HashFamilyMismatch | ErrorKind::InvalidParameter
                        ),
                        "{e}"
                    );
                    assert_eq!(merged.map_err(|m| m.kind), Err(e.kind));
                    assert_eq!(&target, partner, "a refused merge changed its target");
                }
            }
        }
        Err(e) => {
            stats.binary_refused += 1;
            assert_eq!(e.kind, ErrorKind::InvalidBinary, "{e}");
            assert!(e.detail.is_some());
            assert!(
                merged.is_err(),
                "merge_encoded accepted what decode refused: {input:02x?}"
            );
            assert_eq!(&target, partner, "a refused merge changed its target");
        }
    }
}

fn check_text(text: &str, stats: &mut Stats) {
    match Sketch::parse_text(text) {
        Ok(sketch) => {
            stats.text_accepted += 1;
            let written = sketch.to_text();
            // A version-1 value ("hll1:AQ...") comes back in version 2, a 6-bit dense one of
            // version 2 ("hll1:AgI...") and a 4-bit one of version 3 ("hll1:Aw...") in the
            // shorter dense layout.
            if written != text {
                assert!(
                    text.starts_with("hll1:AQ")
                        || text.starts_with("hll1:AgI")
                        || text.starts_with("hll1:Aw"),
                    "accepted text is not canonical"
                );
                assert_eq!(Sketch::parse_text(&written).unwrap(), sketch);
            }
        }
        Err(e) => {
            stats.text_refused += 1;
            assert_eq!(e.kind, ErrorKind::InvalidText, "{e}");
        }
    }
}

#[test]
fn fuzz_decoders() {
    let cases = env_u64("DISTCOUNT_FUZZ_CASES", 20_000);
    let seed = env_u64("DISTCOUNT_FUZZ_SEED", 0x5eed);
    let started = Instant::now();
    let corpus = corpus();
    let mut rng = SplitMix64::new(seed);
    let mut stats = Stats::default();
    for _ in 0..cases {
        let use_large = rng.below(256) == 0;
        let (sketches, encodings) = if use_large {
            (&corpus.large, &corpus.large_bytes)
        } else {
            (&corpus.small, &corpus.small_bytes)
        };
        let input = match rng.below(16) {
            0 => {
                let len = pick(&mut rng, 41);
                random_bytes(&mut rng, len)
            }
            1 => {
                // A valid header, then a random payload (for small p, sometimes of dense length).
                let (form, p) = (rng.below(10) as u8, 4 + rng.below(4) as u8);
                let count = if matches!(form, 5 | 7) { 8 } else { 0 };
                let len = if rng.below(2) == 0 {
                    match form {
                        // 4-bit registers (and a few escapes), after form 5's 8-byte count.
                        5 | 6 => count + 1 + (1 << (p - 1)) + pick(&mut rng, 3),
                        // Huffman codes: bounds, lengths, varints, about 3 bits a register.
                        7 | 8 => count + 2 + pick(&mut rng, 12) + (3 << (p - 3)),
                        _ => dense::packed_len(p),
                    }
                } else {
                    pick(&mut rng, 65)
                };
                let version = 1 + rng.below(u64::from(FORMAT_VERSION)) as u8;
                let sparse_precision = if form == 9 {
                    RICE_SPARSE_PRECISION
                } else {
                    SPARSE_PRECISION
                };
                let mut bytes = vec![version, form, p, sparse_precision];
                bytes.extend(random_bytes(&mut rng, len));
                bytes
            }
            _ => {
                let mut bytes = encodings[pick(&mut rng, encodings.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    mutate(&mut rng, &mut bytes, &corpus.small_bytes);
                }
                bytes
            }
        };
        let partner = &corpus.small[pick(&mut rng, corpus.small.len())];
        check_binary(&input, partner, &mut stats);

        // A quarter of the cases also exercise the text parser.
        match rng.below(8) {
            0 => {
                let text = sketches[pick(&mut rng, sketches.len())].to_text();
                check_text(&mutate_text(&mut rng, &text), &mut stats);
            }
            1 => {
                // The binary input behind a text prefix: the parser must agree with the decoder.
                let mut text = TEXT_PREFIX.to_string();
                base64_encode(&input, &mut text);
                let parsed = Sketch::parse_text(&text);
                assert_eq!(parsed.is_ok(), Sketch::decode(&input).is_ok(), "{text}");
                check_text(&text, &mut stats);
            }
            _ => {}
        }
    }
    println!(
        "fuzz_decoders: {cases} cases (seed {seed:#x}) in {:.1} s; binary {} accepted (by form {:?}) / {} refused, text {} accepted / {} refused",
        started.elapsed().as_secs_f64(),
        stats.binary_accepted,
        stats.accepted_by_form,
        stats.binary_refused,
        stats.text_accepted,
        stats.text_refused
    );
    // The mutations must reach both sides of the decoder, or the fuzzer tests nothing.
    if cases >= 1000 {
        assert!(stats.binary_accepted > 0 && stats.binary_refused > cases / 4);
        assert!(
            stats.accepted_by_form[5..].iter().all(|&n| n > 0),
            "{:?}",
            stats.accepted_by_form
        );
        assert!(stats.text_accepted > 0 && stats.text_refused > 0);
    }
}
