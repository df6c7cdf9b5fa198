//! Strict, canonical base64 for the `hll1:` and `cms1:` text forms, on the `base64` crate.
//!
//! The engine is the RFC 4648 standard alphabet with `=` padding, padding required exactly as
//! encoding writes it and unused bits of the last character refused, so every byte string has
//! exactly one text and every text decodes to at most one byte string. The callers word their
//! own errors from [`Base64Error`], which names where the text went wrong in the terms their
//! messages always used (the four-character group, or the character).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use base64::{DecodeError, alphabet};

/// Standard alphabet, `=` padding written and required in canonical form, trailing bits refused.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_allow_trailing_bits(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Why a text is not canonical base64. Positions count bytes from the start of the base64 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// The length is not a multiple of 4.
    Length { len: usize },
    /// `=` ends the group starting at `group` that is not the last, or more than two do.
    MisplacedPadding { group: usize },
    /// The character at `at` is not in the alphabet (or is a `=` inside a group).
    InvalidCharacter { at: usize },
    /// The last character before the padding, at `at`, has unused bits set; `group` is the
    /// start of its group.
    NonZeroTrailingBits { group: usize, at: usize },
}

/// Appends the canonical base64 of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    STRICT.encode_string(bytes, out);
}

/// Decodes canonical base64; anything [`encode_into`] would not have written is an error.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    // The crate measures length in symbols after padding; the messages have always named a
    // text that is not whole groups of four first.
    if !text.len().is_multiple_of(4) {
        return Err(Base64Error::Length { len: text.len() });
    }
    STRICT.decode(text).map_err(|e| locate(text, e))
}

/// The crate's error in the terms of the text forms' messages. With whole groups of four the
/// crate reports the first byte, scanning left to right, that is outside the alphabet or a `=`
/// out of place (`InvalidByte`), or the last symbol when it has unused bits set
/// (`InvalidLastSymbol`); `InvalidLength` and `InvalidPadding` need a length that is not a
/// multiple of 4. A group that ends in `=` but is not the last, or ends in three or four, is
/// named as misplaced padding at its start, as the texts' messages always did.
fn locate(text: &[u8], e: DecodeError) -> Base64Error {
    match e {
        DecodeError::InvalidByte(at, _) => {
            let group = at - at % 4;
            let padding = text[group..group + 4]
                .iter()
                .rev()
                .take_while(|&&c| c == b'=')
                .count();
            if padding > 2 || (padding > 0 && group + 4 != text.len()) {
                Base64Error::MisplacedPadding { group }
            } else {
                Base64Error::InvalidCharacter { at }
            }
        }
        DecodeError::InvalidLastSymbol(at, _) => Base64Error::NonZeroTrailingBits {
            group: at - at % 4,
            at,
        },
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            Base64Error::Length { len: text.len() }
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rfc_4648_vectors() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "+/8="),
        ] {
            let mut out = String::from("x:");
            encode_into(bytes, &mut out);
            assert_eq!(out, format!("x:{text}"));
            assert_eq!(decode(text.as_bytes()).unwrap(), bytes);
        }
    }

    #[test]
    fn every_refusal_is_located() {
        use Base64Error::*;
        for (text, want) in [
            ("Zg=", Length { len: 3 }),
            ("Zm9vY", Length { len: 5 }),
            ("Zg==Zm9v", MisplacedPadding { group: 0 }),
            ("Zm9vZ===", MisplacedPadding { group: 4 }),
            ("====", MisplacedPadding { group: 0 }),
            ("!===", MisplacedPadding { group: 0 }),
            ("Zm9v Zg=", InvalidCharacter { at: 4 }),
            ("Z=9v", InvalidCharacter { at: 1 }),
            ("Zm=v", InvalidCharacter { at: 2 }),
            ("Zm=!", InvalidCharacter { at: 2 }),
            ("Z!==", InvalidCharacter { at: 1 }),
            ("Zm9vZh==", NonZeroTrailingBits { group: 4, at: 5 }),
            ("Zm9=", NonZeroTrailingBits { group: 0, at: 2 }),
            ("Zm9vYm\u{e9}", InvalidCharacter { at: 6 }),
        ] {
            assert_eq!(decode(text.as_bytes()), Err(want), "{text}");
        }
    }
}
