//! Add-wins observed-remove set without tombstones (pure Rust, no PostgreSQL): the optimized
//! OR-Set ("ORSWOT", Bieniusa et al. 2012, "An optimized conflict-free replicated set"; the
//! design of Riak's riak_dt_orswot and Akka's ORSet). Groundwork for the `orset` SQL type.
//!
//! # State
//!
//! - a version vector `clock`: per node, how many adds it has made (every add of that node up
//!   to that count has been seen here);
//! - per live element, its *dots*: the (node, counter) of the adds that put it there and that no
//!   remove seen here has observed. An add by node `n` takes the dot `(n, clock[n] + 1)` and
//!   replaces the element's dots (the older ones are covered by the clock anyway).
//!
//! A remove drops the element's dots. Nothing else is kept: the clock remembers that those dots
//! were seen, so a merge with a replica that still holds one of them can tell "removed here"
//! from "not yet seen here". The state grows with live elements and nodes only.
//!
//! # Merge
//!
//! For each element, a dot survives if both sides hold it, or if one side holds it and the
//! other's clock has not seen it (a concurrent add the other side could not have removed). An
//! element lives while any dot survives; clocks merge by per-node maximum. A remove concurrent
//! with an add therefore keeps the add (add wins), and a remove only removes what it observed.
//! Merge is commutative, associative and idempotent on the whole state.

use crate::common::error::{Error, ErrorKind, Result};
use crate::crdt::counter::validate_node_id;
use std::collections::BTreeMap;

/// At most this many nodes in a set's clock (as the counters' 4,096 slots).
pub const MAX_NODES: usize = 4096;
/// At most this many live elements.
pub const MAX_ELEMENTS: usize = 65_536;
/// The longest element, in bytes.
pub const MAX_ELEMENT_BYTES: usize = 4096;

/// One add: the node that made it and that node's count of adds when it did.
pub type Dot = (String, u64);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrSet {
    clock: BTreeMap<String, u64>,
    /// Live elements and their dots (node → counter; at most one dot per node and element).
    entries: BTreeMap<String, BTreeMap<String, u64>>,
}

fn limit(what: String) -> Error {
    Error::new(ErrorKind::LimitExceeded, what)
}

fn check_element(element: &str) -> Result<()> {
    if element.len() > MAX_ELEMENT_BYTES {
        return Err(limit(format!(
            "orset element is {} bytes; at most {MAX_ELEMENT_BYTES} are allowed",
            element.len()
        )));
    }
    if element.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            "orset element must not contain NUL",
        ));
    }
    Ok(())
}

/// The size limits, for a set that would have `nodes` nodes and `elements` elements.
fn check_size(nodes: usize, elements: usize) -> Result<()> {
    if nodes > MAX_NODES {
        return Err(limit(format!(
            "orset would have {nodes} nodes; at most {MAX_NODES} are allowed"
        )));
    }
    if elements > MAX_ELEMENTS {
        return Err(limit(format!(
            "orset would have {elements} elements; at most {MAX_ELEMENTS} are allowed"
        )));
    }
    Ok(())
}

impl OrSet {
    pub fn new() -> OrSet {
        OrSet::default()
    }

    /// Adds `element` as `node`: a new dot, which replaces the element's observed dots.
    pub fn add(&mut self, element: &str, node: &str) -> Result<()> {
        check_element(element)?;
        validate_node_id(node).map_err(|m| Error::new(ErrorKind::InvalidParameter, m))?;
        check_size(
            self.clock.len() + usize::from(!self.clock.contains_key(node)),
            self.entries.len() + usize::from(!self.entries.contains_key(element)),
        )?;
        let counter = self.clock.get(node).copied().unwrap_or(0);
        let counter = counter
            .checked_add(1)
            .ok_or_else(|| Error::new(ErrorKind::Overflow, "orset node counter overflow"))?;
        self.clock.insert(node.to_string(), counter);
        self.entries.insert(
            element.to_string(),
            BTreeMap::from([(node.to_string(), counter)]),
        );
        Ok(())
    }

    /// Removes `element` as observed here (its dots); a concurrent add elsewhere survives.
    /// Returns whether it was present.
    pub fn remove(&mut self, element: &str) -> bool {
        self.entries.remove(element).is_some()
    }

    pub fn contains(&self, element: &str) -> bool {
        self.entries.contains_key(element)
    }

    /// The live elements, in byte order.
    pub fn elements(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The version vector: per node, how many of its adds this state has seen.
    pub fn clock(&self) -> &BTreeMap<String, u64> {
        &self.clock
    }

    /// The dots of an element, by node.
    pub fn dots(&self, element: &str) -> Option<&BTreeMap<String, u64>> {
        self.entries.get(element)
    }

    fn seen(clock: &BTreeMap<String, u64>, node: &str, counter: u64) -> bool {
        clock.get(node).is_some_and(|&c| counter <= c)
    }

    /// Merges `other` into `self` (see the module documentation). All-or-nothing: on error
    /// (a limit) `self` is unchanged.
    pub fn merge_from(&mut self, other: &OrSet) -> Result<()> {
        let mut entries: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let keys: std::collections::BTreeSet<&String> =
            self.entries.keys().chain(other.entries.keys()).collect();
        let empty = BTreeMap::new();
        for element in keys {
            let mine = self.entries.get(element).unwrap_or(&empty);
            let theirs = other.entries.get(element).unwrap_or(&empty);
            let mut dots = BTreeMap::new();
            for (node, &c) in mine {
                if theirs.get(node) == Some(&c) || !Self::seen(&other.clock, node, c) {
                    dots.insert(node.clone(), c);
                }
            }
            for (node, &c) in theirs {
                if !Self::seen(&self.clock, node, c) {
                    // A node's dot of one element is its latest add of it: keep the greater.
                    let slot = dots.entry(node.clone()).or_insert(c);
                    *slot = (*slot).max(c);
                }
            }
            if !dots.is_empty() {
                entries.insert(element.clone(), dots);
            }
        }
        let mut clock = self.clock.clone();
        for (node, &c) in &other.clock {
            let slot = clock.entry(node.clone()).or_insert(0);
            *slot = (*slot).max(c);
        }
        check_size(clock.len(), entries.len())?;
        self.clock = clock;
        self.entries = entries;
        Ok(())
    }

    pub fn merge(&self, other: &OrSet) -> Result<OrSet> {
        let mut out = self.clone();
        out.merge_from(other)?;
        Ok(out)
    }
}

mod codec;
pub use codec::FORMAT_VERSION;

#[cfg(test)]
mod tests;
