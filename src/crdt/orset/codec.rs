//! The binary and text forms of an [`OrSet`]. Both are canonical: equal states have identical
//! bytes and text, and every decoder refuses what the encoder would not have written.
//!
//! # Binary format, version 1 (little-endian)
//!
//! ```text
//! u8   format version (1)
//! u16  node count N (0 to 4,096)
//! N ×  u8 node id length (1 to 63), node id (UTF-8, no NUL; strictly ascending by bytes),
//!      u64 adds of that node seen (at least 1)
//! u32  element count E (0 to 65,536)
//! E ×  u32 element length (0 to 4,096), element (UTF-8, no NUL; strictly ascending by bytes),
//!      u16 dot count D (1 to N), D × (u16 node index into the list above, strictly
//!      ascending; u64 counter, 1 to that node's adds seen)
//! ```
//!
//! # Text form
//!
//! `{}` for the empty set (no element, no add seen), otherwise
//! `{"clock": {"a": 2, "b": 1}, "elements": {"eggs": {"b": 1}, "milk": {"a": 2}}}`: keys in
//! byte order, one space after each `:` and `,`, as written by [`OrSet::to_text`].

use super::{MAX_ELEMENT_BYTES, MAX_ELEMENTS, MAX_NODES, OrSet};
use crate::common::bytes::ByteReader;
use crate::common::error::{Error, ErrorKind, Result};
use crate::common::text::{TextReader, write_json_string};
use crate::crdt::counter::validate_node_id;
use std::collections::BTreeMap;

pub const FORMAT_VERSION: u8 = 1;
const TYPE_NAME: &str = "orset";

type Dots = BTreeMap<String, u64>;

impl OrSet {
    /// A set from its parts, checking every invariant: valid node ids and elements, the limits,
    /// counters of at least 1, and every dot covered by the clock. The problem is the error's
    /// message (the decoders wrap it).
    pub fn from_parts(
        clock: BTreeMap<String, u64>,
        entries: BTreeMap<String, Dots>,
    ) -> Result<OrSet> {
        let invalid = |what: String| Error::new(ErrorKind::InvalidParameter, what);
        super::check_size(clock.len(), entries.len())?;
        for (node, &adds) in &clock {
            validate_node_id(node).map_err(&invalid)?;
            if adds == 0 {
                return Err(invalid(format!(
                    "node \"{node}\" has 0 adds in the clock (left out when 0)"
                )));
            }
        }
        for (element, dots) in &entries {
            super::check_element(element)?;
            if dots.is_empty() {
                return Err(invalid(format!("element \"{element}\" has no dot")));
            }
            for (node, &counter) in dots {
                match clock.get(node) {
                    Some(&adds) if (1..=adds).contains(&counter) => {}
                    _ => {
                        return Err(invalid(format!(
                            "element \"{element}\" has the dot ({node}, {counter}), which the clock does not cover"
                        )));
                    }
                }
            }
        }
        Ok(OrSet { clock, entries })
    }

    /// The canonical binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        out.extend_from_slice(&(self.clock.len() as u16).to_le_bytes());
        let mut index = BTreeMap::new();
        for (i, (node, adds)) in self.clock.iter().enumerate() {
            out.push(node.len() as u8);
            out.extend_from_slice(node.as_bytes());
            out.extend_from_slice(&adds.to_le_bytes());
            index.insert(node.as_str(), i as u16);
        }
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (element, dots) in &self.entries {
            out.extend_from_slice(&(element.len() as u32).to_le_bytes());
            out.extend_from_slice(element.as_bytes());
            out.extend_from_slice(&(dots.len() as u16).to_le_bytes());
            // Node ids ascend in both maps, so their indexes ascend too.
            for (node, counter) in dots {
                out.extend_from_slice(&index[node.as_str()].to_le_bytes());
                out.extend_from_slice(&counter.to_le_bytes());
            }
        }
        out
    }

    /// Decodes and fully validates the binary form. Allocates at most in proportion to the input.
    pub fn decode(bytes: &[u8]) -> Result<OrSet> {
        let mut r = ByteReader::new(bytes, TYPE_NAME);
        let version = r.u8("version")?;
        if version != FORMAT_VERSION {
            return Err(r.invalid(format!(
                "unknown format version {version} (this build reads {FORMAT_VERSION})"
            )));
        }
        let node_count = r.u16("node count")? as usize;
        if node_count > MAX_NODES {
            return Err(r.invalid(format!(
                "{node_count} nodes; at most {MAX_NODES} are allowed"
            )));
        }
        let mut nodes: Vec<&str> = Vec::with_capacity(node_count);
        let mut clock = BTreeMap::new();
        for i in 0..node_count {
            let len = r.u8("node id length")? as usize;
            let node = r.str(len, "node id")?;
            if nodes.last().is_some_and(|&previous| previous >= node) {
                return Err(r.invalid(format!("node {i}: node ids are not strictly ascending")));
            }
            nodes.push(node);
            clock.insert(node.to_string(), r.u64("clock")?);
        }
        let element_count = r.u32("element count")? as usize;
        if element_count > MAX_ELEMENTS {
            return Err(r.invalid(format!(
                "{element_count} elements; at most {MAX_ELEMENTS} are allowed"
            )));
        }
        let mut entries = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for e in 0..element_count {
            let len = r.u32("element length")? as usize;
            if len > MAX_ELEMENT_BYTES {
                return Err(r.invalid(format!(
                    "element {e} is {len} bytes; at most {MAX_ELEMENT_BYTES} are allowed"
                )));
            }
            let element = r.str(len, "element")?;
            if previous.is_some_and(|p| p >= element) {
                return Err(r.invalid(format!("element {e}: elements are not strictly ascending")));
            }
            previous = Some(element);
            let dot_count = r.u16("dot count")? as usize;
            if dot_count == 0 || dot_count > node_count {
                return Err(r.invalid(format!(
                    "element {e} has {dot_count} dots (1 to {node_count})"
                )));
            }
            let mut dots = BTreeMap::new();
            let mut last_index: Option<usize> = None;
            for _ in 0..dot_count {
                let index = r.u16("dot")? as usize;
                if index >= node_count || last_index.is_some_and(|l| l >= index) {
                    return Err(r.invalid(format!(
                        "element {e}: dot node indexes must ascend below {node_count}"
                    )));
                }
                last_index = Some(index);
                dots.insert(nodes[index].to_string(), r.u64("dot")?);
            }
            entries.insert(element.to_string(), dots);
        }
        r.finish()?;
        OrSet::from_parts(clock, entries).map_err(|e| r.invalid(e.message))
    }

    /// The text form (see the module documentation).
    pub fn to_text(&self) -> String {
        if self.clock.is_empty() {
            return "{}".into();
        }
        let mut out = String::from("{\"clock\": {");
        for (i, (node, adds)) in self.clock.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_json_string(&mut out, node);
            out.push_str(&format!(": {adds}"));
        }
        out.push_str("}, \"elements\": {");
        for (i, (element, dots)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_json_string(&mut out, element);
            out.push_str(": {");
            for (j, (node, counter)) in dots.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                write_json_string(&mut out, node);
                out.push_str(&format!(": {counter}"));
            }
            out.push('}');
        }
        out.push_str("}}");
        out
    }

    /// Parses the text form strictly: only what [`OrSet::to_text`] writes is accepted (keys in
    /// order, no duplicates), with the error's position for anything else.
    pub fn parse_text(text: &str) -> Result<OrSet> {
        let mut r = TextReader::new(text, TYPE_NAME);
        if r.open_or_empty()? {
            return Ok(OrSet::new());
        }
        // An object of strictly ascending string keys, each value read by `value`.
        fn object<T>(
            r: &mut TextReader<'_>,
            mut value: impl FnMut(&mut TextReader<'_>) -> Result<T>,
        ) -> Result<BTreeMap<String, T>> {
            let mut out = BTreeMap::new();
            r.require(b'{')?;
            r.skip_whitespace();
            if r.accept(b'}') {
                return Ok(out);
            }
            loop {
                r.skip_whitespace();
                let at = r.position();
                let name = r.string()?;
                if out
                    .keys()
                    .next_back()
                    .is_some_and(|last: &String| *last >= name)
                {
                    return Err(r.error_at(at, "keys must be unique and in ascending byte order"));
                }
                r.skip_whitespace();
                r.require(b':')?;
                r.skip_whitespace();
                let v = value(r)?;
                out.insert(name, v);
                r.skip_whitespace();
                if r.accept(b'}') {
                    return Ok(out);
                }
                r.require(b',')?;
            }
        }
        let count = |r: &mut TextReader<'_>| -> Result<u64> {
            let at = r.position();
            let n = r.integer()?;
            u64::try_from(n).map_err(|_| r.error_at(at, "counts are not negative"))
        };
        r.key("clock")?;
        let clock = object(&mut r, count)?;
        r.skip_whitespace();
        r.require(b',')?;
        r.key("elements")?;
        let entries = object(&mut r, |r| object(r, count))?;
        r.skip_whitespace();
        r.require(b'}')?;
        r.expect_end()?;
        if clock.is_empty() && entries.is_empty() {
            return Err(r.error("the empty set is written {}"));
        }
        OrSet::from_parts(clock, entries).map_err(|e| {
            let mut err = r.error(e.message);
            err.kind = ErrorKind::InvalidText;
            err
        })
    }
}
