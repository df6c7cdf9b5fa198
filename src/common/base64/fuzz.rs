//! A deterministic differential fuzzer for [`super::decode`]: every input gets the same answer,
//! and the `hll1:` and `cms1:` text forms the same error message, as from the hand-written
//! decoders the crate replaced (kept below, verbatim but for their names, as the reference).
//!
//! `DISTCOUNT_FUZZ_CASES` sets the number of cases (default 20,000) and `DISTCOUNT_FUZZ_SEED`
//! the seed. A long run:
//!
//! ```text
//! DISTCOUNT_FUZZ_CASES=1000000 cargo pgrx test pg15 fuzz_base64
//! ```

use super::*;
use crate::common::fuzz_support::{SplitMix64, env_u64};

// ---- The reference: the decoders of src/cms/sketch/codec.rs and src/hll/sketch/codec.rs
// ---- before the base64 crate (main at fe9de5b).

fn base64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn cms_reference(text: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(4) {
        return Err(format!(
            "base64 text of {} characters is not a multiple of 4 long",
            text.len()
        ));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let groups = text.len() / 4;
    for (g, group) in text.chunks_exact(4).enumerate() {
        let padding = group.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && g + 1 != groups) {
            return Err(format!("misplaced \"=\" in base64 at character {}", g * 4));
        }
        let mut n = 0u32;
        for (i, &c) in group[..4 - padding].iter().enumerate() {
            let v = base64_value(c)
                .ok_or_else(|| format!("invalid base64 character at character {}", g * 4 + i))?;
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - padding;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err(format!(
                "non-canonical base64 padding at character {}",
                g * 4
            ));
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

fn hll_reference(text: &[u8]) -> std::result::Result<Vec<u8>, (usize, &'static str)> {
    if !text.len().is_multiple_of(4) {
        return Err((
            text.len(),
            "base64 text must have a multiple of 4 characters",
        ));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (quad_index, quad) in text.chunks_exact(4).enumerate() {
        let at = quad_index * 4;
        let is_last = at + 4 == text.len();
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !is_last) {
            return Err((at, "misplaced \"=\" padding"));
        }
        let mut word = 0u32;
        for (k, &c) in quad[..4 - padding].iter().enumerate() {
            let value = base64_value(c).ok_or((at + k, "not a base64 character"))?;
            word |= value << (18 - 6 * k);
        }
        let bytes = word.to_be_bytes();
        let kept = 3 - padding;
        if word & ((1u32 << (8 * padding)) - 1) != 0 {
            return Err((
                at + 3 - padding,
                "non-zero bits in the final base64 character",
            ));
        }
        out.extend_from_slice(&bytes[1..1 + kept]);
    }
    Ok(out)
}

// ---- Inputs.

/// Characters a mutation puts in: alphabet, padding, blanks, URL-safe and other strangers,
/// NUL, a lone continuation byte and the start of a two-byte sequence.
const STRANGERS: &[u8] = b"AQgw+/=9Zaz= \n\t-_.!*\0\x80\xc3";

fn random_text(rng: &mut SplitMix64) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(13),
        _ => 4 * rng.below(6),
    };
    (0..len)
        .map(|_| STRANGERS[rng.below(STRANGERS.len())])
        .collect()
}

fn mutated_encoding(rng: &mut SplitMix64) -> Vec<u8> {
    let len = rng.below(40);
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let mut text = String::new();
    encode_into(&bytes, &mut text);
    let mut text = text.into_bytes();
    for _ in 0..rng.below(4) {
        let pos = if text.is_empty() {
            0
        } else {
            rng.below(text.len())
        };
        // Edits favour the end, where padding and trailing bits live.
        let pos = if rng.below(2) == 0 {
            text.len().saturating_sub(1 + rng.below(4))
        } else {
            pos
        };
        let stranger = STRANGERS[rng.below(STRANGERS.len())];
        let symbol =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rng.below(64)];
        match rng.below(7) {
            0 if pos < text.len() => text[pos] = stranger,
            1 if pos < text.len() => text[pos] = symbol,
            2 => text.insert(pos.min(text.len()), stranger),
            3 if pos < text.len() => {
                text.remove(pos);
            }
            4 => text.truncate(pos),
            5 => text.extend_from_slice(&b"===="[..1 + rng.below(4)]),
            _ => {
                let n = rng.below(5);
                text.splice(
                    pos.min(text.len())..pos.min(text.len()),
                    (0..n).map(|_| symbol),
                );
            }
        }
    }
    text
}

#[test]
fn fuzz_base64() {
    let cases = env_u64("DISTCOUNT_FUZZ_CASES", 20_000);
    let seed = env_u64("DISTCOUNT_FUZZ_SEED", 0xba5e_64);
    let mut rng = SplitMix64(seed);
    let (mut accepted, mut refused) = (0u64, 0u64);
    for case in 0..cases {
        let text = if rng.below(3) == 0 {
            random_text(&mut rng)
        } else {
            mutated_encoding(&mut rng)
        };
        let new = decode(&text);
        let cms_new = new
            .clone()
            .map_err(crate::cms::sketch::codec::base64_detail);
        let hll_new = new.clone().map_err(crate::hll::sketch::base64_detail);
        assert_eq!(cms_new, cms_reference(&text), "case {case}: {text:?}");
        assert_eq!(hll_new, hll_reference(&text), "case {case}: {text:?}");
        match new {
            Ok(bytes) => {
                let mut again = String::new();
                encode_into(&bytes, &mut again);
                assert_eq!(again.as_bytes(), &text[..], "case {case}: not canonical");
                accepted += 1;
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "fuzz_base64: {cases} cases (seed {seed:#x}): {accepted} accepted, {refused} refused, all as the reference"
    );
    assert!(accepted > cases / 20 && refused > cases / 4);
}
