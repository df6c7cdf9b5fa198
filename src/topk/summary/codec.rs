//! The stored form of a `topk` (binary, little-endian where fixed, mostly LEB128 varints):
//!
//! ```text
//! u8      format version (1)
//! varint  capacity            1 ..= MAX_CAPACITY
//! varint  total N             ..= i64::MAX
//! varint  floor               ..= N
//! varint  item count n        ..= capacity
//! n items, best-ranked first (count descending, then lower descending, then tag and key
//! ascending; strictly, so no key comes twice):
//!   varint  count: the first item's count; after it, the previous count minus this one
//!   varint  count - lower     (lower >= 1)
//!   varint  (length << 3) | tag, tag 1 ..= 5 (common::value_hash::KeyKind), or 6 for a
//!           numeric that is not an integer (its shortest decimal text, without the 'N' that
//!           starts its canonical bytes)
//!   key     integer keys (tag 1): length 0, then the value as a zigzag varint;
//!           any other: length bytes
//! ```
//!
//! Varints are canonical (no redundant high bytes), so one summary has exactly one encoding;
//! every field is checked on the way in. The text form is `topk1:` and the base64 of these
//! bytes.

use super::{MAX_CAPACITY, MAX_KEY_BYTES, MAX_TOTAL, MIN_CAPACITY, TopK, rank_order};
use crate::common::arena::Arena;
use crate::common::base64::{self, Base64Error};
use crate::common::bytes::ByteReader;
use crate::common::error::{Error, ErrorKind, Result};

pub const FORMAT_VERSION: u8 = 1;
pub const TEXT_PREFIX: &str = "topk1:";
const TAG_INTEGER: u8 = 1;
const TAG_TEXT: u8 = 2;
pub const TAG_DECIMAL: u8 = 6;
const MAX_TAG: u8 = 6;

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(r: &mut ByteReader<'_>, what: &str) -> Result<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = r.u8(what)?;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return Err(r.invalid(format!("the {what} is out of range")));
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(r.invalid(format!("the {what} is not in its shortest form")));
            }
            return Ok(value);
        }
    }
    Err(r.invalid(format!("the {what} is out of range")))
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

impl TopK {
    pub fn encode(&self) -> Vec<u8> {
        let items = self.items();
        let mut out = Vec::with_capacity(16 + items.iter().map(|i| i.key.len() + 4).sum::<usize>());
        out.push(FORMAT_VERSION);
        put_varint(&mut out, u64::from(self.capacity));
        put_varint(&mut out, self.total);
        put_varint(&mut out, self.floor);
        put_varint(&mut out, items.len() as u64);
        let mut previous = None;
        for item in &items {
            put_varint(
                &mut out,
                previous.map_or(item.count, |p: u64| p - item.count),
            );
            previous = Some(item.count);
            put_varint(&mut out, item.count - item.lower);
            match <[u8; 8]>::try_from(item.key) {
                Ok(bytes) if item.tag == TAG_INTEGER => {
                    put_varint(&mut out, u64::from(TAG_INTEGER));
                    put_varint(&mut out, zigzag(i64::from_le_bytes(bytes)));
                }
                _ => {
                    put_varint(
                        &mut out,
                        ((item.key.len() as u64) << 3) | u64::from(item.tag),
                    );
                    out.extend_from_slice(item.key);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TopK> {
        TopK::decode_in(bytes, Arena::HEAP)
    }

    /// Decodes and validates stored bytes; every problem is an `InvalidBinary` error.
    pub fn decode_in(bytes: &[u8], arena: Arena) -> Result<TopK> {
        let mut r = ByteReader::new(bytes, "topk");
        let version = r.u8("format version")?;
        if version != FORMAT_VERSION {
            return Err(r.invalid(format!(
                "unknown format version {version} (this build reads version {FORMAT_VERSION})"
            )));
        }
        let capacity = varint(&mut r, "capacity")?;
        if capacity < u64::from(MIN_CAPACITY) || capacity > u64::from(MAX_CAPACITY) {
            return Err(r.invalid(format!(
                "capacity {capacity} is not between {MIN_CAPACITY} and {MAX_CAPACITY}"
            )));
        }
        let total = varint(&mut r, "total")?;
        if total > MAX_TOTAL {
            return Err(r.invalid("the total is out of range for bigint"));
        }
        let floor = varint(&mut r, "floor")?;
        if floor > total {
            return Err(r.invalid(format!("floor {floor} exceeds the total {total}")));
        }
        let n = varint(&mut r, "item count")?;
        if n > capacity {
            return Err(r.invalid(format!("{n} items exceed the capacity {capacity}")));
        }
        let mut out = TopK::empty_in(capacity as u32, arena);
        out.total = total;
        out.floor = floor;
        let mut previous: Option<(u64, u64, u8, Vec<u8>)> = None;
        let mut lower_sum = 0u64;
        let mut key = Vec::new();
        for i in 0..n {
            let first = varint(&mut r, "item count")?;
            let count = match &previous {
                None => first,
                Some((p, ..)) => p
                    .checked_sub(first)
                    .ok_or_else(|| r.invalid(format!("item {i}: its count is below zero")))?,
            };
            if count > total || count < floor.max(1) {
                return Err(r.invalid(format!(
                    "item {i}: count {count} is outside [max(floor, 1), total] = [{}, {total}]",
                    floor.max(1)
                )));
            }
            let gap = varint(&mut r, "item error")?;
            if gap >= count {
                return Err(r.invalid(format!(
                    "item {i}: its error {gap} leaves a lower bound below 1 (count {count})"
                )));
            }
            let lower = count - gap;
            lower_sum += lower;
            if lower_sum > total {
                return Err(r.invalid("the lower bounds add up to more than the total"));
            }
            let head = varint(&mut r, "item key header")?;
            let tag = (head & 7) as u8;
            let len = head >> 3;
            if tag == 0 || tag > MAX_TAG {
                return Err(r.invalid(format!("item {i}: unknown key tag {tag}")));
            }
            key.clear();
            if tag == TAG_INTEGER {
                if len != 0 {
                    return Err(r.invalid(format!("item {i}: an integer key has no length")));
                }
                let value = unzigzag(varint(&mut r, "integer key")?);
                key.extend_from_slice(&value.to_le_bytes());
            } else {
                if len > MAX_KEY_BYTES as u64 {
                    return Err(r.invalid(format!(
                        "item {i}: a key of {len} bytes is longer than {MAX_KEY_BYTES}"
                    )));
                }
                key.extend_from_slice(r.take(len as usize, "item key")?);
                if tag == TAG_TEXT && key.contains(&0) {
                    return Err(r.invalid(format!("item {i}: a text key holds a NUL byte")));
                }
                let decimal = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
                if tag == TAG_DECIMAL && (key.is_empty() || !key.iter().all(decimal)) {
                    return Err(r.invalid(format!("item {i}: a numeric key is not a number")));
                }
            }
            if let Some((pc, pl, pt, pk)) = &previous {
                if rank_order(*pc, *pl, *pt, pk, count, lower, tag, &key).is_ge() {
                    return Err(r.invalid(format!(
                        "item {i} is out of order or repeats an earlier key"
                    )));
                }
            }
            out.push_entry(&key, tag, count, lower);
            previous = Some((count, lower, tag, key.clone()));
        }
        r.finish()?;
        Ok(out)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::from(TEXT_PREFIX);
        base64::encode_into(&self.encode(), &mut out);
        out
    }

    /// Parses the text form strictly; errors are `InvalidText`.
    pub fn parse_text(text: &str) -> Result<TopK> {
        let invalid = |what: String| {
            let shown: String = text.chars().take(40).collect();
            let ellipsis = if text.chars().count() > 40 { "..." } else { "" };
            Error::new(
                ErrorKind::InvalidText,
                format!("invalid input syntax for type topk: \"{shown}{ellipsis}\""),
            )
            .with_detail(what)
        };
        let Some(body) = text.strip_prefix(TEXT_PREFIX) else {
            return Err(invalid(format!(
                "A topk value starts with \"{TEXT_PREFIX}\"."
            )));
        };
        let bytes = base64::decode(body.as_bytes()).map_err(|e| {
            invalid(match e {
                Base64Error::Length { len } => {
                    format!("base64 text of {len} characters is not a multiple of 4 long.")
                }
                Base64Error::MisplacedPadding { group } => {
                    format!("misplaced \"=\" in base64 at character {group}.")
                }
                Base64Error::InvalidCharacter { at } => {
                    format!("invalid base64 character at character {at}.")
                }
                Base64Error::NonZeroTrailingBits { group, .. } => {
                    format!("non-canonical base64 padding at character {group}.")
                }
            })
        })?;
        TopK::decode(&bytes).map_err(|e| invalid(e.detail.unwrap_or(e.message)))
    }
}
