//! A deterministic differential fuzzer for the JSON pieces of the text forms, with serde_json as
//! the reference reader and the hand-written escaper that serde_json replaced as the reference
//! writer:
//!
//! - [`TextReader::string`] accepts a string literal exactly when serde_json does (but for
//!   `\u0000`, which PostgreSQL text cannot hold and which it refuses with its own message),
//!   with the same value and the same end;
//! - [`TextReader::integer`] followed by [`TextReader::expect_end`] accepts exactly what
//!   serde_json reads as an `i64` (but for `-0`, which serde_json reads as a float), with the
//!   same value;
//! - [`write_json_string`] writes the same bytes as the escaper it replaced, and reads back.
//!
//! `DISTCOUNT_FUZZ_CASES` sets the number of cases of each (default 20,000) and
//! `DISTCOUNT_FUZZ_SEED` the seed. A long run:
//!
//! ```text
//! DISTCOUNT_FUZZ_CASES=1000000 cargo pgrx test pg15 fuzz_json
//! ```

use super::*;
use crate::common::fuzz_support::{SplitMix64, env_u64};

/// The escaper of src/common/text.rs before serde_json (main at fe9de5b), the reference.
fn reference_write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run_start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run_start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

const HEX: &[u8] = b"0123456789abcdefABCDEFxg";

/// Pieces of a string literal's body, well and badly formed.
fn body_piece(rng: &mut SplitMix64, out: &mut String) {
    match rng.below(10) {
        0..=2 => {
            out.push_str(rng.pick(&["a", "Z", "0", " ", "é", "日本", "😀", "/", "'", "\u{7f}"]))
        }
        3 => out.push_str(rng.pick(&["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])),
        4 => {
            // \uXXXX, often a surrogate or NUL, sometimes cut short or not hex.
            out.push_str("\\u");
            let code: u32 = match rng.below(6) {
                0 => 0,
                1 => 0xd800 + rng.below(0x400) as u32,
                2 => 0xdc00 + rng.below(0x400) as u32,
                3 => rng.below(0x80) as u32,
                _ => rng.next_u64() as u32 & 0xffff,
            };
            let mut digits: Vec<u8> = format!("{code:04x}").into_bytes();
            if rng.below(2) == 0 {
                digits.make_ascii_uppercase();
            }
            if rng.below(8) == 0 {
                let at = rng.below(4);
                digits[at] = HEX[rng.below(HEX.len())];
            }
            if rng.below(10) == 0 {
                digits.truncate(rng.below(4));
            }
            out.push_str(std::str::from_utf8(&digits).unwrap());
        }
        5 => {
            // A surrogate pair, sometimes broken.
            let high = 0xd800 + rng.below(0x400) as u32;
            let low = match rng.below(4) {
                0 => rng.next_u64() as u32 & 0xffff,
                _ => 0xdc00 + rng.below(0x400) as u32,
            };
            let between = rng.pick(&["", "", "", "x", "\\n", "\\"]);
            out.push_str(&format!("\\u{high:04x}{between}\\u{low:04X}"));
        }
        6 => out.push_str(rng.pick(&["\\x", "\\U", "\\'", "\\0", "\\ ", "\\"])),
        7 => out.push(char::from(rng.below(0x20) as u8)),
        _ => out.push_str(rng.pick(&["\"", "\\\"", "a"])),
    }
}

fn string_case(rng: &mut SplitMix64) -> String {
    let mut text = String::new();
    text.push_str(rng.pick(&["", "", "", " ", "\n\t", "x", "'"]));
    if rng.below(16) != 0 {
        text.push('"');
    }
    for _ in 0..rng.below(8) {
        body_piece(rng, &mut text);
    }
    if rng.below(12) != 0 {
        text.push('"');
    }
    text.push_str(rng.pick(&["", "", "", ": 1}", " ", ",", "\"", "x"]));
    text
}

fn integer_case(rng: &mut SplitMix64) -> String {
    let mut text = String::new();
    text.push_str(rng.pick(&["", "", "", " ", "\n", "\t "]));
    text.push_str(rng.pick(&["", "", "", "-", "-", "+", "--", "."]));
    match rng.below(5) {
        0 => text.push_str(rng.pick(&[
            "0",
            "00",
            "01",
            "9223372036854775807",
            "9223372036854775808",
            "9223372036854775806",
            "18446744073709551616",
            "99999999999999999999999",
        ])),
        1 => text.push_str(&(rng.next_u64() >> rng.below(64)).to_string()),
        _ => {
            for _ in 0..1 + rng.below(6) {
                text.push(char::from(b'0' + rng.below(10) as u8));
            }
        }
    }
    text.push_str(rng.pick(&[
        "", "", "", "", " ", ".5", "e3", "E-1", "1", "x", ",", "}", " 1", ".",
    ]));
    text
}

fn unicode_case(rng: &mut SplitMix64) -> String {
    (0..rng.below(12))
        .map(|_| match rng.below(4) {
            0 => char::from(rng.below(0x20) as u8),
            1 => rng
                .pick(&["\"", "\\", "/", "\u{7f}", "\u{80}", "\u{2028}"])
                .chars()
                .next()
                .unwrap(),
            2 => char::from_u32(rng.next_u64() as u32 % 0x11_0000).unwrap_or('\u{fffd}'),
            _ => char::from(b' ' + rng.below(95) as u8),
        })
        .collect()
}

#[test]
fn fuzz_json() {
    let cases = env_u64("DISTCOUNT_FUZZ_CASES", 20_000);
    let seed = env_u64("DISTCOUNT_FUZZ_SEED", 0x15_0e);
    let mut rng = SplitMix64(seed);
    let (mut strings_ok, mut strings_refused) = (0u64, 0u64);
    let (mut integers_ok, mut integers_refused) = (0u64, 0u64);
    for case in 0..cases {
        // String literals.
        let text = string_case(&mut rng);
        let mut ours = TextReader::new(&text, "t");
        let ours_value = ours.string();
        let mut theirs = serde_json::Deserializer::from_str(&text).into_iter::<String>();
        let theirs_value = theirs.next();
        match (&ours_value, &theirs_value) {
            (Ok(v), Some(Ok(w))) => {
                assert_eq!(v, w, "case {case}: {text:?}");
                assert_eq!(
                    ours.position(),
                    theirs.byte_offset(),
                    "case {case}: {text:?}"
                );
                strings_ok += 1;
            }
            (Err(e), Some(Ok(w))) => {
                assert!(
                    w.contains('\0')
                        && e.detail
                            .as_deref()
                            .unwrap_or("")
                            .ends_with("\\u0000 cannot be stored in text."),
                    "case {case}: {text:?} refused ({e:?}) but serde_json reads {w:?}"
                );
                strings_refused += 1;
            }
            (Ok(v), _) => panic!("case {case}: {text:?} read as {v:?} but serde_json refuses it"),
            (Err(e), _) => {
                assert_eq!(e.kind, ErrorKind::InvalidText, "case {case}: {text:?}");
                strings_refused += 1;
            }
        }

        // Integers, the whole input.
        let text = integer_case(&mut rng);
        let mut ours = TextReader::new(&text, "t");
        let ours_value = ours.integer().and_then(|v| ours.expect_end().map(|()| v));
        let theirs_value = serde_json::from_str::<i64>(&text);
        match (&ours_value, &theirs_value) {
            (Ok(v), Ok(w)) => {
                assert_eq!(v, w, "case {case}: {text:?}");
                integers_ok += 1;
            }
            (Ok(0), Err(_)) if text.trim() == "-0" => integers_ok += 1,
            (Ok(v), Err(e)) => panic!("case {case}: {text:?} read as {v} but serde_json: {e}"),
            (Err(e), Ok(w)) => {
                panic!("case {case}: {text:?} refused ({e:?}) but serde_json reads {w}")
            }
            (Err(e), Err(_)) => {
                // Out of range (22003) only for a well-formed JSON number, else 22P02.
                if e.kind == ErrorKind::Overflow {
                    let token: String = text
                        .trim_start()
                        .chars()
                        .take_while(|&c| c == '-' || c.is_ascii_digit())
                        .collect();
                    assert!(
                        serde_json::from_str::<serde_json::Value>(&token)
                            .is_ok_and(|v| v.is_number()),
                        "case {case}: {text:?}"
                    );
                } else {
                    assert_eq!(e.kind, ErrorKind::InvalidText, "case {case}: {text:?}");
                }
                integers_refused += 1;
            }
        }

        // The writer: the old escaper's bytes, and they read back.
        let s = unicode_case(&mut rng);
        let (mut new, mut old) = (String::from("x"), String::from("x"));
        write_json_string(&mut new, &s);
        reference_write_json_string(&mut old, &s);
        assert_eq!(new, old, "case {case}: {s:?}");
        if !s.contains('\0') {
            assert_eq!(TextReader::new(&new[1..], "t").string().unwrap(), s);
        }
    }
    eprintln!(
        "fuzz_json: {cases} cases of each (seed {seed:#x}): strings {strings_ok} read, \
         {strings_refused} refused; integers {integers_ok} read, {integers_refused} refused; \
         {cases} strings written as before"
    );
    assert!(strings_ok > cases / 10 && strings_refused > cases / 10);
    assert!(integers_ok > cases / 10 && integers_refused > cases / 10);
}
