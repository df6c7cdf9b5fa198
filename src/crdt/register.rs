//! LWW-Register on a hybrid logical clock (pure Rust, no PostgreSQL).
//!
//! A register holds one value (the canonical text of a jsonb, checked and canonicalised by the
//! SQL binding), the stamp of the write that put it there, and the writing node. Merge keeps the
//! greater write in the order (stamp, node bytes, value bytes), so merge is commutative,
//! associative and idempotent, and every replica that has seen the same writes holds the same
//! bytes.
//!
//! # Why a hybrid logical clock
//!
//! Wall-clock LWW silently drops writes under clock skew: a writer whose clock is behind loses
//! to the value it has just read and replaced. Here a write stamps
//! `max(now, stamp of the state it replaces + 1 tick)`: the physical part is microseconds, and
//! when the clock has not passed the stamp it read, the write keeps that physical part and adds
//! one to the logical part (`tick`). So a write always beats every state it has seen, whatever
//! the writer's clock says; only truly concurrent writes (neither saw the other) are decided by
//! their stamps, then by node id, then by value bytes.
//!
//! # Binary format, version 1 (little-endian)
//!
//! ```text
//! u8  format version (1)
//! u8  0 empty register (nothing follows), 1 a value follows:
//! i64 stamp: microseconds since 2000-01-01 00:00:00 UTC, years 1 to 9999
//! u32 tick (logical part)
//! u8  node id length (1..=63), then the node id (UTF-8, no NUL)
//! u32 value length (at most MAX_VALUE_BYTES), then the value: the canonical text of a jsonb
//! ```
//!
//! # Text format
//!
//! `{}` for the empty register, else exactly
//! `{"node": "tokyo", "stamp": "2026-12-04T19:40:00.123456Z", "tick": 0, "value": <json>}`
//! (keys in this order, the stamp with six fraction digits and `Z`).

use crate::common::bytes::ByteReader;
use crate::common::error::{Error, ErrorKind, Result};
use crate::common::text::{TextReader, write_json_string};
use crate::crdt::counter::validate_node_id;
use std::cmp::Ordering;

pub const FORMAT_VERSION: u8 = 1;
/// The largest value a register holds, in bytes of its canonical jsonb text.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// 0001-01-01 00:00:00 UTC and 9999-12-31 23:59:59.999999 UTC, in microseconds since 2000.
pub const MIN_STAMP: i64 = -63_082_281_600_000_000;
pub const MAX_STAMP: i64 = 252_455_615_999_999_999;

const TYPE_NAME: &str = "lwwreg";

/// A point of the hybrid logical clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's timestamptz).
    pub micros: i64,
    /// Logical part: writes that saw a stamp at or ahead of their clock count up from it.
    pub tick: u32,
}

impl Stamp {
    /// The stamp of a write made at wall-clock `now` by a writer that has seen `seen`: later
    /// than `seen` even when `now` is not.
    pub fn after(seen: Option<Stamp>, now: i64) -> Result<Stamp> {
        let next = match seen {
            Some(s) if s.micros >= now => match s.tick.checked_add(1) {
                Some(tick) => Stamp {
                    micros: s.micros,
                    tick,
                },
                None => Stamp {
                    micros: s.micros + 1,
                    tick: 0,
                },
            },
            _ => Stamp {
                micros: now,
                tick: 0,
            },
        };
        check_micros(next.micros)?;
        Ok(next)
    }
}

/// One write: its stamp, the node that made it, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub stamp: Stamp,
    pub node: String,
    /// Canonical jsonb text.
    pub value: String,
}

impl Write {
    pub fn new(stamp: Stamp, node: &str, value: &str) -> Result<Write> {
        check_micros(stamp.micros)?;
        validate_node_id(node).map_err(|m| Error::new(ErrorKind::InvalidParameter, m))?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "lwwreg value is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
                    value.len()
                ),
            ));
        }
        Ok(Write {
            stamp,
            node: node.to_string(),
            value: value.to_string(),
        })
    }
}

/// The total order that decides a merge: stamp, then node id bytes, then value bytes.
impl Ord for Write {
    fn cmp(&self, other: &Self) -> Ordering {
        self.stamp
            .cmp(&other.stamp)
            .then_with(|| self.node.as_bytes().cmp(other.node.as_bytes()))
            .then_with(|| self.value.as_bytes().cmp(other.value.as_bytes()))
    }
}

impl PartialOrd for Write {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A register: empty, or the winning write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Register(pub Option<Write>);

impl Register {
    /// A write by `node` at wall-clock `now` (microseconds since 2000) replacing this state.
    pub fn set(&self, value: &str, node: &str, now: i64) -> Result<Register> {
        let stamp = Stamp::after(self.0.as_ref().map(|w| w.stamp), now)?;
        Ok(Register(Some(Write::new(stamp, node, value)?)))
    }

    /// A write stamped by the caller's own clock: it wins only if it is the greater write.
    pub fn set_at(&self, value: &str, node: &str, stamp: Stamp) -> Result<Register> {
        Ok(self.merge(&Register(Some(Write::new(stamp, node, value)?))))
    }

    /// The greater of the two writes (an empty side is neutral).
    pub fn merge(&self, other: &Register) -> Register {
        self.merge_report(other).0
    }

    /// The merge, and the write it discarded (None when both sides hold the same write or one
    /// is empty).
    pub fn merge_report(&self, other: &Register) -> (Register, Option<Write>) {
        match (&self.0, &other.0) {
            (None, _) => (other.clone(), None),
            (_, None) => (self.clone(), None),
            (Some(a), Some(b)) => match a.cmp(b) {
                Ordering::Equal => (self.clone(), None),
                Ordering::Greater => (self.clone(), Some(b.clone())),
                Ordering::Less => (other.clone(), Some(a.clone())),
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        match &self.0 {
            None => out.push(0),
            Some(w) => {
                out.push(1);
                out.extend_from_slice(&w.stamp.micros.to_le_bytes());
                out.extend_from_slice(&w.stamp.tick.to_le_bytes());
                out.push(w.node.len() as u8);
                out.extend_from_slice(w.node.as_bytes());
                out.extend_from_slice(&(w.value.len() as u32).to_le_bytes());
                out.extend_from_slice(w.value.as_bytes());
            }
        }
        out
    }

    /// Decodes the binary form, checking every field (the value's jsonb syntax is the SQL
    /// binding's to check).
    pub fn decode(bytes: &[u8]) -> Result<Register> {
        let mut r = ByteReader::new(bytes, TYPE_NAME);
        let version = r.u8("version")?;
        if version != FORMAT_VERSION {
            return Err(r.invalid(format!("unknown format version {version}")));
        }
        let register = match r.u8("form")? {
            0 => Register(None),
            1 => {
                let micros = r.i64("stamp")?;
                let tick = r.u32("tick")?;
                let node_len = r.u8("node id length")? as usize;
                let node = r.str(node_len, "node id")?;
                let value_len = r.u32("value length")? as usize;
                let value = r.str(value_len, "value")?;
                let write = Write::new(Stamp { micros, tick }, node, value)
                    .map_err(|e| r.invalid(e.message))?;
                Register(Some(write))
            }
            other => return Err(r.invalid(format!("unknown form {other}"))),
        };
        r.finish()?;
        Ok(register)
    }

    /// The text form (see the module documentation).
    pub fn to_text(&self) -> String {
        let Some(w) = &self.0 else {
            return "{}".into();
        };
        let mut out = String::with_capacity(w.value.len() + w.node.len() + 64);
        out.push_str("{\"node\": ");
        write_json_string(&mut out, &w.node);
        out.push_str(", \"stamp\": \"");
        out.push_str(&format_stamp(w.stamp.micros));
        out.push_str(&format!("\", \"tick\": {}, \"value\": ", w.stamp.tick));
        out.push_str(&w.value);
        out.push('}');
        out
    }

    /// Parses the text form strictly; returns the register with its value text as written (the
    /// SQL binding canonicalises it through jsonb and checks that it was canonical).
    pub fn parse_text(text: &str) -> Result<Register> {
        let mut r = TextReader::new(text, TYPE_NAME);
        if r.open_or_empty()? {
            return Ok(Register(None));
        }
        let key = |r: &mut TextReader<'_>, name: &str, first: bool| -> Result<()> {
            if !first {
                r.skip_whitespace();
                r.require(b',')?;
            }
            r.key(name)
        };
        key(&mut r, "node", true)?;
        let node = r.string()?;
        key(&mut r, "stamp", false)?;
        let at = r.position();
        let micros = parse_stamp(&r.string()?).map_err(|m| r.error_at(at, m))?;
        key(&mut r, "tick", false)?;
        let at = r.position();
        let tick = u32::try_from(r.integer()?)
            .map_err(|_| r.error_at(at, "the tick must be 0 to 4294967295"))?;
        key(&mut r, "value", false)?;
        let value = r.skip_value()?;
        r.skip_whitespace();
        r.require(b'}')?;
        r.expect_end()?;
        let write = Write::new(Stamp { micros, tick }, &node, value).map_err(|e| {
            let mut err = r.error(e.message);
            err.kind = ErrorKind::InvalidText;
            err
        })?;
        Ok(Register(Some(write)))
    }
}

fn check_micros(micros: i64) -> Result<()> {
    if !(MIN_STAMP..=MAX_STAMP).contains(&micros) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            "lwwreg stamps must lie in the years 1 to 9999",
        ));
    }
    Ok(())
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 0000-03-01 (the start of Hinnant's eras) to 2000-01-01, proleptic Gregorian.
const DAYS_TO_2000: i64 = 730_425;

/// Days since 2000-01-01 of a civil date (Hinnant's days_from_civil, shifted).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - DAYS_TO_2000
}

/// The civil date of a day count since 2000-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + DAYS_TO_2000;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` of a stamp in range.
pub fn format_stamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = rest / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        rest % 1_000_000
    )
}

/// Parses exactly what [`format_stamp`] writes.
pub fn parse_stamp(text: &str) -> std::result::Result<i64, String> {
    let b = text.as_bytes();
    let shape = b"0000-00-00T00:00:00.000000Z";
    let fits = b.len() == shape.len()
        && b.iter().zip(shape).all(|(&c, &s)| {
            if s == b'0' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        });
    if !fits {
        return Err(format!(
            "the stamp \"{text}\" is not of the form YYYY-MM-DDTHH:MM:SS.ffffffZ"
        ));
    }
    let num = |from: usize, to: usize| -> i64 {
        b[from..to]
            .iter()
            .fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second, micro) = (num(11, 13), num(14, 16), num(17, 19), num(20, 26));
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    };
    if year < 1 || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(format!("the stamp \"{text}\" is not a valid date and time"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * MICROS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micro)
}

#[cfg(test)]
mod tests;
