//! A small strict reader for the JSON-shaped text forms of our types (`{"A": 5}`,
//! `{"A": [10, 2]}`), and the JSON string writer (serde_json's). Strict means: JSON string and
//! integer syntax exactly, no fractions or exponents, no leading zeros, no trailing garbage.
//! Errors name the byte offset.

use super::error::{Error, ErrorKind, Result};

pub struct TextReader<'a> {
    input: &'a [u8],
    pos: usize,
    /// Type name used in error messages, e.g. "gcounter".
    type_name: &'static str,
}

impl<'a> TextReader<'a> {
    pub fn new(input: &'a str, type_name: &'static str) -> Self {
        TextReader {
            input: input.as_bytes(),
            pos: 0,
            type_name,
        }
    }

    /// An invalid-text error that quotes the input and names the current position.
    pub fn error(&self, what: impl AsRef<str>) -> Error {
        self.error_at(self.pos, what)
    }

    /// An invalid-text error that quotes the input and names byte `pos`.
    pub fn error_at(&self, pos: usize, what: impl AsRef<str>) -> Error {
        let shown: String = String::from_utf8_lossy(self.input)
            .chars()
            .take(200)
            .collect();
        Error::new(
            ErrorKind::InvalidText,
            format!(
                "invalid input syntax for type {}: \"{}\"",
                self.type_name, shown
            ),
        )
        .with_detail(format!("At byte {pos}: {}.", what.as_ref()))
    }

    pub fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.input.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, without consuming it.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.input.get(self.pos).copied()
    }

    pub fn require(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            let wanted = match byte {
                b'"' => "a double-quoted string".to_string(),
                other => format!("\"{}\"", other as char),
            };
            Err(self.error(format!("expected {wanted}")))
        }
    }

    /// Consumes `byte` if it is next; tells whether it did.
    pub fn accept(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect_end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("unexpected trailing characters")),
        }
    }

    /// A JSON string literal. `\u0000` is refused: PostgreSQL text cannot hold NUL.
    pub fn string(&mut self) -> Result<String> {
        self.require(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&b) = self.input.get(self.pos) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&esc) = self.input.get(self.pos) else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.pos += 1;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.error("invalid escape sequence")),
                    }
                }
                0x00..=0x1f => return Err(self.error("control character in string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in string"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .input
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("invalid \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\u escape"));
        }
        self.pos += 4;
        u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))
    }

    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            // A high surrogate must be followed by an escaped low surrogate.
            if self.input.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
        } else {
            first
        };
        if code == 0 {
            return Err(self.error("\\u0000 cannot be stored in text"));
        }
        char::from_u32(code).ok_or_else(|| self.error("unpaired surrogate in \\u escape"))
    }

    /// A JSON integer that fits in int8: optional minus, no leading zeros, no fraction or exponent.
    pub fn integer(&mut self) -> Result<i64> {
        self.skip_whitespace();
        let start = self.pos;
        if self.input.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let digits = &self.input[digits_start..self.pos];
        if digits.is_empty() {
            self.pos = start;
            return Err(self.error("expected an integer"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            self.pos = start;
            return Err(self.error("leading zeros are not allowed"));
        }
        if let Some(b'.' | b'e' | b'E') = self.input.get(self.pos) {
            self.pos = start;
            return Err(self.error("counts must be whole numbers"));
        }
        let text = std::str::from_utf8(&self.input[start..self.pos])
            .map_err(|_| self.error("expected an integer"))?;
        text.parse::<i64>().map_err(|_| {
            Error::new(
                ErrorKind::Overflow,
                format!("value {text} is out of range for type bigint"),
            )
        })
    }

    /// Opens the outer object of a value's text form; true when the whole input is `{}` (the
    /// empty value), false when a member follows the `{`.
    pub fn open_or_empty(&mut self) -> Result<bool> {
        self.skip_whitespace();
        self.require(b'{')?;
        self.skip_whitespace();
        if self.accept(b'}') {
            self.expect_end()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// `"name":` with blanks around, or an error pointing at the key that stands there instead.
    pub fn key(&mut self, name: &str) -> Result<()> {
        self.skip_whitespace();
        let at = self.position();
        if self.string()? != name {
            return Err(self.error_at(at, format!("expected the key \"{name}\" here")));
        }
        self.skip_whitespace();
        self.require(b':')?;
        self.skip_whitespace();
        Ok(())
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Skips one JSON value of any kind and returns its source text. Only its extent is
    /// checked here (strings and nesting); the caller validates the value itself (jsonb does,
    /// for registers). Nesting is bounded so that hostile input cannot exhaust the stack.
    pub fn skip_value(&mut self) -> Result<&'a str> {
        const MAX_DEPTH: usize = 1000;
        self.skip_whitespace();
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let Some(&b) = self.input.get(self.pos) else {
                return Err(self.error("unterminated value"));
            };
            match b {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(self.error(format!("values nest deeper than {MAX_DEPTH}")));
                    }
                    self.pos += 1;
                }
                b'}' | b']' => {
                    if depth == 0 {
                        return Err(self.error("expected a value"));
                    }
                    depth -= 1;
                    self.pos += 1;
                }
                b',' | b':' if depth > 0 => self.pos += 1,
                b' ' | b'\t' | b'\n' | b'\r' if depth > 0 => self.pos += 1,
                b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => {
                    while let Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z') =
                        self.input.get(self.pos)
                    {
                        self.pos += 1;
                    }
                }
                _ => return Err(self.error("expected a value")),
            }
            if depth == 0 && self.pos > start {
                break;
            }
        }
        std::str::from_utf8(&self.input[start..self.pos]).map_err(|_| self.error("invalid UTF-8"))
    }
}

/// Appends `s` as a JSON string literal, escaped as PostgreSQL's `json` output escapes it:
/// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx` (lower-case
/// hex), everything else as it is. serde_json escapes exactly so.
pub fn write_json_string(out: &mut String, s: &str) {
    // SAFETY: serde_json guarantees that serialization only feeds valid UTF-8 sequences to the
    // writer (its documentation of `to_writer`), so `out` stays UTF-8. Serializing a str into a
    // Vec has no error to report (a Vec's writes never fail), so the Result is empty.
    let bytes = unsafe { out.as_mut_vec() };
    let _infallible = serde_json::to_writer(bytes, s);
}

/// Appends the decimal text of `v` (as `v.to_string()` writes it, without the formatting
/// machinery: the outbox writes a few integers a row).
pub fn push_i64(out: &mut String, v: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = v.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    // SAFETY: ASCII digits.
    out.push_str(unsafe { std::str::from_utf8_unchecked(&digits[at..]) });
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_with_escapes() {
        for s in [
            "A",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}",
            "日本",
            "😀",
        ] {
            let mut out = String::new();
            write_json_string(&mut out, s);
            let mut r = TextReader::new(&out, "t");
            assert_eq!(r.string().unwrap(), s);
            r.expect_end().unwrap();
        }
    }

    #[test]
    fn integers_as_to_string_writes_them() {
        for v in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            99,
            100,
            12345,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let mut out = String::from("x");
            super::push_i64(&mut out, v);
            assert_eq!(out, format!("x{v}"));
        }
    }

    #[test]
    fn surrogate_pairs_and_bad_escapes() {
        assert_eq!(
            TextReader::new(r#""\ud83d\ude00""#, "t").string().unwrap(),
            "😀"
        );
        assert!(TextReader::new(r#""\ud83d""#, "t").string().is_err());
        assert!(TextReader::new(r#""\u0000""#, "t").string().is_err());
        assert!(TextReader::new(r#""\x""#, "t").string().is_err());
        assert!(TextReader::new("\"abc", "t").string().is_err());
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(TextReader::new(" 42", "t").integer().unwrap(), 42);
        assert_eq!(TextReader::new("-7", "t").integer().unwrap(), -7);
        assert_eq!(
            TextReader::new("9223372036854775807", "t")
                .integer()
                .unwrap(),
            i64::MAX
        );
        let overflow = TextReader::new("9223372036854775808", "t")
            .integer()
            .unwrap_err();
        assert_eq!(overflow.kind, ErrorKind::Overflow);
        for bad in ["", "-", "01", "1.5", "1e3", "+1", "x"] {
            assert_eq!(
                TextReader::new(bad, "t").integer().unwrap_err().kind,
                ErrorKind::InvalidText,
                "{bad}"
            );
        }
    }
}
