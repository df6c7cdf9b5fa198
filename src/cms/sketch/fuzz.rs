//! A deterministic mutation fuzzer for the decoders (stable Rust has no cargo-fuzz).
//!
//! It feeds [`Sketch::decode`] and [`Sketch::parse_text`] random bytes, valid encodings with
//! random and field-aware mutations, splices of two encodings, and mutated text forms. Every
//! input must be refused with the right error kind or accepted; an accepted input must re-encode
//! to exactly the same bytes (or text), and the sketch it gives must survive every operation
//! (queries, top-k, merge, subtract, add) without a panic.
//!
//! ```text
//! DISTCOUNT_FUZZ_CASES=1000000 cargo test --release fuzz_decoders -- --nocapture
//! ```
//!
//! `DISTCOUNT_FUZZ_CASES` (default 20,000) sets the number of cases and `DISTCOUNT_FUZZ_SEED`
//! the seed; a failure prints the case number and the input in hex.

use super::heavy::HeavyList;
use super::tests::SplitMix64;
use super::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

const INTERESTING_U8: [u8; 8] = [0, 1, 2, 4, 8, 0x7f, 0x80, 0xff];
const INTERESTING_I64: [i64; 12] = [
    0,
    1,
    -1,
    2,
    6,
    127,
    128,
    16_384,
    16_385,
    i64::MAX,
    i64::MIN,
    u32::MAX as i64,
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Valid sketches of many shapes: every counter form (zero, sparse, dense of each cell size,
/// with and without overflow lists), both modes, empty and full lists, floors, errors, long
/// keys, many tags.
fn corpus() -> Vec<Vec<u8>> {
    let mut rng = SplitMix64(99);
    let mut out = Vec::new();
    let shapes = [(0.5, 0.5), (0.3, 0.2), (0.1, 0.1), (0.05, 0.05)];
    for (i, &(epsilon, delta)) in shapes.iter().enumerate() {
        for mode in [Mode::Linear, Mode::Conservative] {
            for heavy in [0i64, 1, 3, 8] {
                for magnitude in [0i64, 1, 100, 1000, 100_000, 1 << 40] {
                    let mut s = Sketch::new(epsilon, delta, heavy, mode).unwrap();
                    let events = 1 + rng.below(30);
                    for _ in 0..events {
                        let id = rng.below(12 + i as u64 * 4);
                        let mut key = id.to_string().into_bytes();
                        if id == 3 {
                            key.extend(std::iter::repeat_n(b'k', 300));
                        }
                        let weight = if magnitude == 0 {
                            0
                        } else {
                            1 + rng.below(magnitude as u64) as i64
                        };
                        let weight = if mode == Mode::Linear && rng.below(5) == 0 {
                            -weight
                        } else {
                            weight
                        };
                        let _ = s.add(&key, rng.below(3) as u8, weight);
                    }
                    out.push(s.encode());
                }
            }
        }
    }
    out.push(Sketch::default().encode());
    // Dense forms with overflow lists (1-, 2- and 4-byte cells): most counters used, a few keys
    // far above the rest.
    for (bulk, heavy) in [(3u64, 1000i64), (200, 100_000), (1 << 20, 1 << 40)] {
        for mode in [Mode::Linear, Mode::Conservative] {
            let mut s = Sketch::new(0.05, 0.05, 4, mode).unwrap();
            for _ in 0..400 {
                let id = rng.below(300).to_string();
                let _ = s.add(id.as_bytes(), 2, 1 + rng.below(bulk) as i64);
            }
            let _ = s.add(b"heavy", 2, heavy);
            out.push(s.encode());
        }
    }
    out
}

fn mutate(bytes: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut SplitMix64) {
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let len = bytes.len() as u64;
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len) as usize;
                bytes[at] = INTERESTING_U8[rng.below(8) as usize];
            }
            2 if len > 0 => {
                let at = rng.below(len) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            3 | 4 if len >= 8 => {
                // An interesting integer over a field-sized window; header fields sit at fixed
                // offsets, so aim there half the time.
                let value = INTERESTING_I64[rng.below(12) as usize].to_le_bytes();
                let size = if rng.below(2) == 0 { 4 } else { 8 };
                let fields = [1usize, 2, 3, 11, 19, 23, 27, 31, 39, 47, 51, 55];
                let field = fields[rng.below(12) as usize];
                let at = if rng.below(2) == 0 && field < bytes.len() {
                    field
                } else {
                    rng.below(len - 7) as usize
                };
                let end = (at + size).min(bytes.len());
                bytes[at..end].copy_from_slice(&value[..end - at]);
            }
            5 => {
                let at = rng.below(len + 1) as usize;
                bytes.truncate(at);
            }
            6 => {
                let extra = 1 + rng.below(24);
                bytes.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
            7 => {
                let at = rng.below(len + 1) as usize;
                bytes.insert(at, rng.next_u64() as u8);
            }
            8 if len > 0 => {
                let at = rng.below(len) as usize;
                let end = (at + 1 + rng.below(16) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            9 if len > 0 => {
                // Duplicate a range in place.
                let at = rng.below(len) as usize;
                let end = (at + 1 + rng.below(32) as usize).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.splice(to..to, piece);
            }
            _ => {
                // Splice: a prefix of this input and a suffix of another.
                let other = &corpus[rng.below(corpus.len() as u64) as usize];
                let cut = rng.below(len + 1) as usize;
                let from = rng.below(other.len() as u64 + 1) as usize;
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
}

/// A valid but unusual state: weight moved between two counters of one row (which keeps linear
/// row sums), candidate counts, errors and the floor set anywhere the decoder allows. Such
/// states (counts above the estimate, negative counters, odd floors) are what forged but
/// well-formed bytes can produce.
fn twist(bytes: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut s = Sketch::decode(bytes).expect("corpus entries are valid");
    let width = s.width as usize;
    let row = rng.below(u64::from(s.depth)) as usize;
    let (from, to) = (
        row * width + rng.below(width as u64) as usize,
        row * width + rng.below(width as u64) as usize,
    );
    let amount = INTERESTING_I64[rng.below(12) as usize] / (1 + rng.below(3) as i64);
    if let (Some(a), Some(b)) = (
        s.counters[from].checked_sub(amount),
        s.counters[to].checked_add(amount),
    ) {
        s.counters[from] = a;
        s.counters[to] = b;
    }
    let floor = if s.total > 0 {
        rng.below(s.total as u64 + 1) as i64
    } else {
        0
    };
    let parts = s
        .candidates()
        .iter()
        .map(|c| {
            let count = 1 + rng.below(
                (c.count as u64)
                    .saturating_mul(2)
                    .saturating_add(5)
                    .min(1 << 62),
            ) as i64;
            (c.key, c.tag, count, rng.below(count as u64 + 1) as i64)
        })
        .collect();
    s.heavy = HeavyList::from_parts(s.heavy.capacity(), floor, parts, Arena::HEAP);
    s.encode()
}

/// Everything a caller may do with a decoded sketch; errors are fine, panics are not.
fn exercise(s: &Sketch) {
    s.heavy.check_index();
    for c in s.candidates() {
        let b = s.key_bounds(c.key, c.tag);
        assert!(b.lower <= b.upper);
        let _ = s.bounds(c.hash);
        let _ = s.exceeds_certainly(c.hash, 10);
    }
    let top = s.topk(3);
    assert!(top.len() <= 3);
    assert!(top.iter().all(|t| t.lower <= t.upper));
    let _ = s.error_bound();
    let _ = s.has_negative_counters();
    if let Ok(doubled) = s.merge(s) {
        doubled.heavy.check_index();
        assert_eq!(Sketch::decode(&doubled.encode()).as_ref(), Ok(&doubled));
    }
    if let Ok(zero) = s.subtract(s) {
        zero.heavy.check_index();
        assert_eq!(zero.total(), 0);
        assert_eq!(Sketch::decode(&zero.encode()).as_ref(), Ok(&zero));
    }
    let mut grown = s.clone();
    if grown.add(b"fuzz", 1, 3).is_ok() {
        grown.heavy.check_index();
        assert_eq!(Sketch::decode(&grown.encode()).as_ref(), Ok(&grown));
    }
}

/// The point query of stored sketches, which reads the header and one counter per row of
/// whatever bytes it is given: never a panic nor a read outside them, and on bytes the decoder
/// accepts, the decoded sketch's bounds. Returns the bounds of a few hashes when it read them.
fn point_queries(bytes: &[u8]) -> Option<Vec<Bounds>> {
    let header = &bytes[..bytes.len().min(CounterLayout::HEADER_LEN)];
    let layout = CounterLayout::from_header(header, bytes.len()).ok()?;
    let read = |offset: usize, out: &mut [u8]| {
        let piece = bytes
            .get(offset..offset + out.len())
            .expect("reads stay within the value");
        out.copy_from_slice(piece);
        Ok(())
    };
    // Bytes the decoder refuses may make it fail, never panic nor read outside them.
    (0..4u64)
        .map(|i| layout.bounds(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), read))
        .collect::<Result<Vec<_>>>()
        .ok()
}

/// Whether the bytes were accepted.
fn check_binary(bytes: &[u8]) -> bool {
    let pointwise = point_queries(bytes);
    match Sketch::decode(bytes) {
        Ok(s) => {
            let encoded = s.encode();
            if bytes[0] == 1 {
                // Version 1 is read, never written: it re-encodes as version 2, which must
                // read back to the same sketch (and then re-encode to itself).
                let again = Sketch::decode(&encoded).expect("a re-encoded version 1 value reads");
                assert_eq!(
                    again.encode(),
                    encoded,
                    "version 1 re-encoded must be canonical"
                );
                assert!(again == s, "version 1 must read to the same sketch");
            } else {
                assert_eq!(encoded, bytes, "accepted input must re-encode to itself");
            }
            assert_eq!(s.encoded_len(), encoded.len());
            let whole: Vec<Bounds> = (0..4u64)
                .map(|i| s.bounds(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                .collect();
            assert_eq!(
                pointwise,
                Some(whole),
                "a point query must read what the decoder reads"
            );
            exercise(&s);
            true
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidBinary, "{e}");
            false
        }
    }
}

fn check_text(text: &str) {
    match Sketch::parse_text(text) {
        Ok(s) => assert_eq!(s.to_text(), text, "accepted text must re-encode to itself"),
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidText, "{e}"),
    }
}

#[test]
fn fuzz_decoders() {
    let cases = env_number("DISTCOUNT_FUZZ_CASES", 20_000);
    let seed = env_number("DISTCOUNT_FUZZ_SEED", 0x00c0_ffee);
    let corpus = corpus();
    let forms: std::collections::BTreeSet<(u8, bool)> =
        corpus.iter().map(|b| (b[2], b[51..55] != [0; 4])).collect();
    for form in [
        (0, false),
        (0x80, true),
        (1, false),
        (1, true),
        (2, true),
        (4, true),
        (8, false),
    ] {
        assert!(
            forms.contains(&form),
            "no corpus entry of form {form:?}: {forms:?}"
        );
    }
    let texts: Vec<Vec<u8>> = corpus
        .iter()
        .map(|b| Sketch::decode(b).unwrap().to_text().into_bytes())
        .collect();
    for text in &texts {
        check_text(std::str::from_utf8(text).unwrap());
    }
    let mut rng = SplitMix64(seed);
    let mut accepted = 0u64;
    let started = std::time::Instant::now();
    for case in 0..cases {
        let choice = rng.below(100);
        let pick = rng.below(corpus.len() as u64) as usize;
        let base = &corpus[pick];
        let bytes = match choice {
            0..8 => (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
            8..25 => twist(base, &mut rng),
            _ => {
                let mut bytes = base.clone();
                mutate(&mut bytes, &corpus, &mut rng);
                bytes
            }
        };
        let text = if choice >= 90 {
            let mut text = texts[pick].clone();
            mutate(&mut text, &texts, &mut rng);
            Some(String::from_utf8_lossy(&text).into_owned())
        } else {
            None
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Some(text) = &text {
                check_text(text);
                return false;
            }
            if choice.is_multiple_of(10) {
                let mut text = String::from(TEXT_PREFIX);
                text.push_str(&super::codec::base64_for_tests(&bytes));
                check_text(&text);
            }
            check_binary(&bytes)
        }));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => {
                let shown = match &text {
                    Some(t) => format!("text {t:?}"),
                    None => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                };
                panic!("fuzz case {case} (seed {seed}) failed on input {shown}");
            }
        }
    }
    println!(
        "fuzz_decoders: {cases} cases, {accepted} accepted, seed {seed}, {:.1?}",
        started.elapsed()
    );
}
