//! G-Counter and PN-Counter state (pure Rust, no PostgreSQL).
//!
//! A counter is a set of slots, one per writer node, each holding that node's own running
//! total. Merge takes the per-slot maximum, which is commutative, associative and idempotent,
//! so replicas that exchange states in any order, any number of times, converge. A PN-Counter
//! is a pair of G-Counters (increments P, decrements N) sharing one slot per node.
//!
//! Canonical form: slots sorted by node id bytes, no all-zero slot. Equal states therefore
//! have identical bytes, which `=`, hashing and skip-if-unchanged merges rely on.
//!
//! Binary format, version 1 (little-endian; the same bytes on disk, in send/recv and in the
//! bytea cast):
//!
//! ```text
//! u8  format version (1)
//! u8  kind (1 = gcounter, 2 = pncounter)
//! u16 slot count (0..=4096)
//! per slot, ascending by node id bytes:
//!     u8  node id length (1..=63), then the node id (UTF-8, no NUL)
//!     i64 count (gcounter)  |  i64 p, i64 n (pncounter); each >= 0, not all zero
//! ```

use crate::common::error::{Error, ErrorKind, Result};
use crate::common::text::{TextReader, write_json_string};

pub const FORMAT_VERSION: u8 = 1;
pub const MAX_SLOTS: usize = 4096;
pub const MAX_NODE_ID_BYTES: usize = 63;
const HEADER_BYTES: usize = 4;

/// What one node's slot holds; implemented by the G-Counter and PN-Counter slot types.
pub trait Slot: Copy + Eq + Default + std::fmt::Debug {
    /// SQL type name, for messages.
    const TYPE_NAME: &'static str;
    /// Kind byte of the binary format.
    const KIND: u8;
    /// Encoded size of one slot's value.
    const VALUE_BYTES: usize;

    fn is_zero(&self) -> bool;
    /// Least upper bound: component-wise maximum.
    fn join(self, other: Self) -> Self;
    /// Lattice order: every component of `self` is at most that of `other`.
    fn le(&self, other: &Self) -> bool;
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes `VALUE_BYTES` bytes; counts must be non-negative.
    fn decode(bytes: &[u8]) -> std::result::Result<Self, &'static str>;
    fn write_text(&self, out: &mut String);
    fn read_text(reader: &mut TextReader) -> Result<Self>;
    /// Component-wise sum, `None` on overflow (used to fold a retired node's slot).
    fn checked_add(self, other: Self) -> Option<Self>;
}

/// G-Counter slot: the node's increment total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GSlot(pub i64);

/// PN-Counter slot: the node's increment and decrement totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PnSlot {
    pub p: i64,
    pub n: i64,
}

/// The little-endian i64 at the start of `bytes`.
fn read_i64(bytes: &[u8]) -> std::result::Result<i64, &'static str> {
    match bytes.get(..8).map(<[u8; 8]>::try_from) {
        Some(Ok(le)) => Ok(i64::from_le_bytes(le)),
        _ => Err("truncated count"),
    }
}

fn read_count(reader: &mut TextReader) -> Result<i64> {
    reader.skip_whitespace();
    let at = reader.position();
    let value = reader.integer()?;
    if value < 0 {
        return Err(reader.error_at(
            at,
            format!("count {value} is negative; counts must not be negative"),
        ));
    }
    Ok(value)
}

impl Slot for GSlot {
    const TYPE_NAME: &'static str = "gcounter";
    const KIND: u8 = 1;
    const VALUE_BYTES: usize = 8;

    fn is_zero(&self) -> bool {
        self.0 == 0
    }
    fn join(self, other: Self) -> Self {
        GSlot(self.0.max(other.0))
    }
    fn le(&self, other: &Self) -> bool {
        self.0 <= other.0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        let count = read_i64(bytes)?;
        if count < 0 {
            return Err("negative count");
        }
        Ok(GSlot(count))
    }
    fn write_text(&self, out: &mut String) {
        out.push_str(&self.0.to_string());
    }
    fn read_text(reader: &mut TextReader) -> Result<Self> {
        Ok(GSlot(read_count(reader)?))
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(GSlot)
    }
}

impl Slot for PnSlot {
    const TYPE_NAME: &'static str = "pncounter";
    const KIND: u8 = 2;
    const VALUE_BYTES: usize = 16;

    fn is_zero(&self) -> bool {
        self.p == 0 && self.n == 0
    }
    fn join(self, other: Self) -> Self {
        PnSlot {
            p: self.p.max(other.p),
            n: self.n.max(other.n),
        }
    }
    fn le(&self, other: &Self) -> bool {
        self.p <= other.p && self.n <= other.n
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.p.to_le_bytes());
        out.extend_from_slice(&self.n.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        let (p, n) = (
            read_i64(bytes)?,
            read_i64(bytes.get(8..).unwrap_or_default())?,
        );
        if p < 0 || n < 0 {
            return Err("negative count");
        }
        Ok(PnSlot { p, n })
    }
    fn write_text(&self, out: &mut String) {
        out.push_str(&format!("[{}, {}]", self.p, self.n));
    }
    fn read_text(reader: &mut TextReader) -> Result<Self> {
        reader.require(b'[')?;
        let p = read_count(reader)?;
        reader.require(b',')?;
        let n = read_count(reader)?;
        reader.require(b']')?;
        Ok(PnSlot { p, n })
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        Some(PnSlot {
            p: self.p.checked_add(other.p)?,
            n: self.n.checked_add(other.n)?,
        })
    }
}

/// Checks a node id: 1 to 63 bytes of UTF-8 without NUL (PostgreSQL text cannot hold NUL).
pub fn validate_node_id(node: &str) -> std::result::Result<(), String> {
    if node.is_empty() {
        return Err("node id must not be empty".into());
    }
    if node.len() > MAX_NODE_ID_BYTES {
        return Err(format!(
            "node id is {} bytes long; at most {MAX_NODE_ID_BYTES} are allowed",
            node.len()
        ));
    }
    if node.contains('\0') {
        return Err("node id must not contain NUL".into());
    }
    Ok(())
}

fn too_many_slots<S: Slot>(count: usize) -> Error {
    Error::new(
        ErrorKind::LimitExceeded,
        format!(
            "{} would have {count} node slots; at most {MAX_SLOTS} are allowed",
            S::TYPE_NAME
        ),
    )
}

/// A counter state in canonical form (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counter<S: Slot> {
    slots: Vec<(String, S)>,
}

pub type GCounter = Counter<GSlot>;
pub type PnCounter = Counter<PnSlot>;

impl<S: Slot> Counter<S> {
    pub fn new() -> Self {
        Counter { slots: Vec::new() }
    }

    /// Builds a canonical counter from slots in any order; zero slots are dropped.
    /// Errors on a duplicate or invalid node id, or too many slots.
    pub fn from_slots(mut slots: Vec<(String, S)>) -> Result<Self> {
        for (node, _) in &slots {
            validate_node_id(node).map_err(|m| Error::new(ErrorKind::InvalidParameter, m))?;
        }
        slots.retain(|(_, s)| !s.is_zero());
        slots.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if let Some(pair) = slots.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("duplicate node id \"{}\" in {}", pair[0].0, S::TYPE_NAME),
            ));
        }
        if slots.len() > MAX_SLOTS {
            return Err(too_many_slots::<S>(slots.len()));
        }
        Ok(Counter { slots })
    }

    pub fn slots(&self) -> &[(String, S)] {
        &self.slots
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, node: &str) -> S {
        match self.find(node) {
            Ok(i) => self.slots[i].1,
            Err(_) => S::default(),
        }
    }

    fn find(&self, node: &str) -> std::result::Result<usize, usize> {
        self.slots
            .binary_search_by(|(n, _)| n.as_bytes().cmp(node.as_bytes()))
    }

    /// Replaces `node`'s slot by `f(old)`, keeping the form canonical.
    fn update_slot(&mut self, node: &str, f: impl FnOnce(S) -> Result<S>) -> Result<()> {
        validate_node_id(node).map_err(|m| Error::new(ErrorKind::InvalidParameter, m))?;
        match self.find(node) {
            Ok(i) => {
                let new = f(self.slots[i].1)?;
                if new.is_zero() {
                    self.slots.remove(i);
                } else {
                    self.slots[i].1 = new;
                }
            }
            Err(i) => {
                let new = f(S::default())?;
                if !new.is_zero() {
                    if self.slots.len() >= MAX_SLOTS {
                        return Err(too_many_slots::<S>(self.slots.len() + 1));
                    }
                    self.slots.insert(i, (node.to_owned(), new));
                }
            }
        }
        Ok(())
    }

    /// Merges `other` into `self` (per-slot maximum).
    pub fn merge_from(&mut self, other: &Self) -> Result<()> {
        if other.slots.is_empty() {
            return Ok(());
        }
        if self.slots.is_empty() {
            self.slots = other.slots.clone();
            return Ok(());
        }
        // Both lists are sorted; sort the concatenation and join equal nodes.
        let mut merged = std::mem::take(&mut self.slots);
        merged.extend(other.slots.iter().cloned());
        merged.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        merged.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.join(later.1);
            }
            same
        });
        let count = merged.len();
        self.slots = merged;
        if count > MAX_SLOTS {
            return Err(too_many_slots::<S>(count));
        }
        Ok(())
    }

    pub fn merge(&self, other: &Self) -> Result<Self> {
        let mut out = self.clone();
        out.merge_from(other)?;
        Ok(out)
    }

    /// Lattice order: `other` includes everything `self` has seen.
    pub fn le(&self, other: &Self) -> bool {
        self.slots.iter().all(|(node, s)| s.le(&other.get(node)))
    }

    /// The slots of `newer` that grew past `older`, at their `newer` values:
    /// `older.merge(newer.delta_since(older)) == older.merge(newer)`.
    pub fn delta_since(&self, older: &Self) -> Self {
        let slots = self
            .slots
            .iter()
            .filter(|(node, s)| !s.le(&older.get(node)))
            .cloned()
            .collect();
        Counter { slots }
    }

    /// Folds the slot of `retired` (a node that will never write again) into the slot of
    /// `into`, keeping the value. Without a `retired` slot the counter is returned unchanged.
    pub fn fold_slot(&self, retired: &str, into: &str) -> Result<Self> {
        if retired == into {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("cannot fold node \"{retired}\" into itself"),
            ));
        }
        validate_node_id(into).map_err(|m| Error::new(ErrorKind::InvalidParameter, m))?;
        let Ok(index) = self.find(retired) else {
            return Ok(self.clone());
        };
        let mut out = self.clone();
        let (_, folded) = out.slots.remove(index);
        out.update_slot(into, |s| {
            s.checked_add(folded)
                .ok_or_else(|| out_of_range(&format!("{} slot", S::TYPE_NAME)))
        })?;
        Ok(out)
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES
            + self
                .slots
                .iter()
                .map(|(n, _)| 1 + n.len() + S::VALUE_BYTES)
                .sum::<usize>()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT_VERSION);
        out.push(S::KIND);
        out.extend_from_slice(&(self.slots.len() as u16).to_le_bytes());
        for (node, slot) in &self.slots {
            out.push(node.len() as u8);
            out.extend_from_slice(node.as_bytes());
            slot.encode(&mut out);
        }
        out
    }

    /// Decodes and fully validates the binary form. Anything but a canonical state is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |what: String| {
            Error::new(
                ErrorKind::InvalidBinary,
                format!("invalid binary data for type {}", S::TYPE_NAME),
            )
            .with_detail(what)
        };
        if bytes.len() < HEADER_BYTES {
            return Err(bad(format!(
                "{} bytes is shorter than the {HEADER_BYTES}-byte header",
                bytes.len()
            )));
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(bad(format!(
                "unknown format version {} (this build reads version {FORMAT_VERSION})",
                bytes[0]
            )));
        }
        if bytes[1] != S::KIND {
            let what = match bytes[1] {
                1 => "a gcounter".to_string(),
                2 => "a pncounter".to_string(),
                k => format!("unknown kind {k}"),
            };
            return Err(bad(format!(
                "the bytes hold {what}, not a {}",
                S::TYPE_NAME
            )));
        }
        let count = u16::from_le_bytes([bytes[2], bytes[3]]) as usize;
        if count > MAX_SLOTS {
            return Err(bad(format!(
                "{count} slots; at most {MAX_SLOTS} are allowed"
            )));
        }
        let mut slots: Vec<(String, S)> = Vec::with_capacity(count);
        let mut pos = HEADER_BYTES;
        for index in 0..count {
            let len = *bytes
                .get(pos)
                .ok_or_else(|| bad(format!("truncated at slot {index}")))?
                as usize;
            pos += 1;
            if len == 0 || len > MAX_NODE_ID_BYTES {
                return Err(bad(format!(
                    "slot {index} has a node id of {len} bytes (1 to {MAX_NODE_ID_BYTES} allowed)"
                )));
            }
            let end = pos + len + S::VALUE_BYTES;
            if end > bytes.len() {
                return Err(bad(format!("truncated at slot {index}")));
            }
            let node = std::str::from_utf8(&bytes[pos..pos + len])
                .map_err(|_| bad(format!("slot {index} has a node id that is not UTF-8")))?;
            if node.contains('\0') {
                return Err(bad(format!("slot {index} has a node id containing NUL")));
            }
            let slot = S::decode(&bytes[pos + len..end])
                .map_err(|m| bad(format!("slot {index} has a {m}")))?;
            if slot.is_zero() {
                return Err(bad(format!("slot {index} is all zero (not canonical)")));
            }
            if let Some((prev, _)) = slots.last() {
                if prev.as_bytes() >= node.as_bytes() {
                    return Err(bad(format!(
                        "slot {index}: node ids are not strictly ascending"
                    )));
                }
            }
            slots.push((node.to_owned(), slot));
            pos = end;
        }
        if pos != bytes.len() {
            return Err(bad(format!(
                "{} trailing bytes after the last slot",
                bytes.len() - pos
            )));
        }
        Ok(Counter { slots })
    }

    /// Canonical text: `{"A": 5, "B": 3}` (gcounter) or `{"A": [10, 2]}` (pncounter).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(2 + self.slots.len() * 16);
        out.push('{');
        for (i, (node, slot)) in self.slots.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_json_string(&mut out, node);
            out.push_str(": ");
            slot.write_text(&mut out);
        }
        out.push('}');
        out
    }

    /// Parses the text form strictly. Nodes may come in any order; duplicates are refused.
    pub fn parse_text(input: &str) -> Result<Self> {
        let mut reader = TextReader::new(input, S::TYPE_NAME);
        let mut slots: Vec<(String, S)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        reader.require(b'{')?;
        if !reader.accept(b'}') {
            loop {
                reader.skip_whitespace();
                let at = reader.position();
                let node = reader.string()?;
                if let Err(m) = validate_node_id(&node) {
                    return Err(reader.error_at(at, m));
                }
                if !seen.insert(node.clone()) {
                    return Err(reader.error_at(at, format!("duplicate node id \"{node}\"")));
                }
                reader.require(b':')?;
                let slot = S::read_text(&mut reader)?;
                slots.push((node, slot));
                if slots.len() > MAX_SLOTS {
                    return Err(too_many_slots::<S>(slots.len()));
                }
                if reader.accept(b'}') {
                    break;
                }
                if !reader.accept(b',') {
                    return Err(reader.error("expected \",\" or \"}\""));
                }
            }
        }
        reader.expect_end()?;
        Counter::from_slots(slots)
    }
}

fn out_of_range(type_name: &str) -> Error {
    Error::new(
        ErrorKind::Overflow,
        format!("{type_name} value is out of range for type bigint"),
    )
}

impl GCounter {
    /// Adds `by` (>= 0) to `node`'s slot.
    pub fn increment(&mut self, node: &str, by: i64) -> Result<()> {
        if by < 0 {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("gcounter increments must not be negative (got {by})"),
            )
            .with_detail("A gcounter only grows; use a pncounter to count down."));
        }
        self.update_slot(node, |s| {
            s.0.checked_add(by)
                .map(GSlot)
                .ok_or_else(|| out_of_range("gcounter slot"))
        })
    }

    /// The sum of all slots.
    pub fn value(&self) -> Result<i64> {
        let total: i128 = self.slots.iter().map(|(_, s)| s.0 as i128).sum();
        i64::try_from(total).map_err(|_| out_of_range("gcounter"))
    }
}

impl PnCounter {
    /// Adds `by` to `node`'s P when positive, or |by| to its N when negative.
    pub fn increment(&mut self, node: &str, by: i64) -> Result<()> {
        self.update_slot(node, |s| {
            let magnitude = by.unsigned_abs();
            let add = |v: i64| {
                i64::try_from(magnitude)
                    .ok()
                    .and_then(|m| v.checked_add(m))
                    .ok_or_else(|| out_of_range("pncounter slot"))
            };
            if by >= 0 {
                Ok(PnSlot {
                    p: add(s.p)?,
                    n: s.n,
                })
            } else {
                Ok(PnSlot {
                    p: s.p,
                    n: add(s.n)?,
                })
            }
        })
    }

    /// Sum of P minus sum of N.
    pub fn value(&self) -> Result<i64> {
        let total: i128 = self
            .slots
            .iter()
            .map(|(_, s)| s.p as i128 - s.n as i128)
            .sum();
        i64::try_from(total).map_err(|_| out_of_range("pncounter"))
    }
}

#[cfg(test)]
mod tests;
