//! A deterministic mutation fuzzer for the decoders (as cms's): random bytes, valid encodings
//! with random and varint-aware mutations, splices, mutated text. Every input is refused with
//! the right error kind or accepted; an accepted one re-encodes to the same bytes and survives
//! every operation.
//!
//! ```text
//! DISTCOUNT_FUZZ_CASES=1000000 cargo test --release topk::summary::fuzz -- --nocapture
//! ```

use super::*;
use crate::common::fuzz_support::{SplitMix64, env_u64};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn corpus() -> Vec<Vec<u8>> {
    let mut rng = SplitMix64(5);
    let mut out = Vec::new();
    for capacity in [1i64, 2, 5, 40, 1000] {
        for magnitude in [1u64, 3, 1000, 1 << 40] {
            let mut s = TopK::new(capacity).unwrap();
            for _ in 0..rng.below(60) {
                let id = rng.below(25);
                let tag = 1 + rng.below(6) as u8;
                let key = if tag == 1 {
                    (id as i64 - 12)
                        .wrapping_mul(1 << rng.below(60))
                        .to_le_bytes()
                        .to_vec()
                } else {
                    let mut k = id.to_string().into_bytes();
                    if id == 3 {
                        k.extend(std::iter::repeat_n(b'k', 200));
                    }
                    k
                };
                let _ = s.add(&key, tag, 1 + (rng.next_u64() % magnitude) as i64);
            }
            out.push(s.encode());
        }
    }
    out
}

fn exercise(bytes: &[u8]) {
    match TopK::decode(bytes) {
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidBinary, "{e}"),
        Ok(s) => {
            assert_eq!(s.encode(), bytes, "accepted bytes must be canonical");
            let items: Vec<(Vec<u8>, u8)> =
                s.items().iter().map(|i| (i.key.to_vec(), i.tag)).collect();
            for (key, tag) in &items {
                let b = s.bounds(key, *tag);
                assert!(b.lower <= b.upper);
            }
            let _ = s.merged(&s);
            let mut t = s.clone_in(Arena::HEAP);
            let _ = t.add(b"new key", 2, 3);
            let _ = t.add(&items.first().map_or(vec![], |i| i.0.clone()), 2, 1);
            let text = s.to_text();
            assert_eq!(TopK::parse_text(&text).unwrap(), s);
        }
    }
}

#[test]
fn fuzz_decoders() {
    let cases = env_u64("DISTCOUNT_FUZZ_CASES", 20_000);
    let seed = env_u64("DISTCOUNT_FUZZ_SEED", 1);
    let corpus = corpus();
    let mut rng = SplitMix64(seed);
    let mut accepted = 0;
    for case in 0..cases {
        let mut input = match rng.below(10) {
            0 => (0..rng.below(40)).map(|_| rng.next_u64() as u8).collect(),
            1 => {
                let a = &corpus[rng.below(corpus.len())];
                let b = &corpus[rng.below(corpus.len())];
                let (i, j) = (rng.below(a.len() + 1), rng.below(b.len() + 1));
                [&a[..i], &b[j..]].concat()
            }
            _ => corpus[rng.below(corpus.len())].clone(),
        };
        for _ in 0..rng.below(4) {
            if input.is_empty() {
                break;
            }
            let at = rng.below(input.len());
            match rng.below(6) {
                0 => input[at] ^= 1 << rng.below(8),
                1 => input[at] = [0, 1, 2, 0x7f, 0x80, 0xff][rng.below(6)],
                2 => {
                    input.remove(at);
                }
                3 => input.insert(at, rng.next_u64() as u8),
                4 => input[at] = input[at].wrapping_add(1),
                _ => input[at] = input[at].wrapping_sub(1),
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| exercise(&input)));
        if result.is_err() {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("case {case} (seed {seed}) failed on {hex}");
        }
        if TopK::decode(&input).is_ok() {
            accepted += 1;
        }
        if rng.below(50) == 0 {
            let mut text = String::from(codec::TEXT_PREFIX);
            crate::common::base64::encode_into(&input, &mut text);
            if rng.below(2) == 0 && !text.is_empty() {
                let cut = rng.below(text.len());
                text.truncate(cut);
            }
            if let Err(e) = TopK::parse_text(&text) {
                assert_eq!(e.kind, ErrorKind::InvalidText);
            }
        }
    }
    assert!(
        accepted > cases / 20,
        "only {accepted} of {cases} inputs were valid"
    );
}
