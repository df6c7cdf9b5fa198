use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn set(ops: &[(&str, &str)]) -> OrSet {
    let mut s = OrSet::new();
    for (element, node) in ops {
        s.add(element, node).unwrap();
    }
    s
}

fn elements(s: &OrSet) -> Vec<&str> {
    s.elements().collect()
}

#[test]
fn concurrent_add_and_remove_keeps_the_add() {
    // Both replicas have seen "milk" added by a; then b removes it while a adds it again.
    let base = set(&[("milk", "a")]);
    let mut a = base.clone();
    let mut b = base.clone();
    b.remove("milk");
    a.add("milk", "a").unwrap();
    assert_eq!(elements(&a.merge(&b).unwrap()), ["milk"]);
    assert_eq!(elements(&b.merge(&a).unwrap()), ["milk"]);
    // A remove that observed the add removes it everywhere.
    let mut c = a.clone();
    c.remove("milk");
    assert_eq!(elements(&c.merge(&a).unwrap()), Vec::<&str>::new());
}

#[test]
fn a_remove_of_an_unseen_add_does_not_remove_it() {
    let mut a = OrSet::new();
    let mut b = OrSet::new();
    a.add("eggs", "a").unwrap();
    assert!(!b.remove("eggs")); // b never saw it
    assert_eq!(elements(&b.merge(&a).unwrap()), ["eggs"]);
}

#[test]
fn no_tombstones_and_clocks_merge() {
    let mut a = set(&[("x", "a"), ("y", "a"), ("z", "b")]);
    a.remove("x");
    a.remove("y");
    assert_eq!(a.len(), 1);
    assert_eq!(
        a.clock(),
        &BTreeMap::from([("a".into(), 2), ("b".into(), 1)])
    );
    assert_eq!(a.dots("z"), Some(&BTreeMap::from([("b".into(), 1)])));
    // Re-adding replaces the element's dots by one new dot.
    a.add("z", "a").unwrap();
    assert_eq!(a.dots("z"), Some(&BTreeMap::from([("a".into(), 3)])));
}

#[test]
fn limits_and_bad_input() {
    let mut s = OrSet::new();
    assert_eq!(
        s.add("x", "").unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        s.add("a\0b", "n").unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        s.add(&"x".repeat(MAX_ELEMENT_BYTES + 1), "n")
            .unwrap_err()
            .kind,
        ErrorKind::LimitExceeded
    );
    s.add(&"x".repeat(MAX_ELEMENT_BYTES), "n").unwrap();
    let mut many = OrSet::new();
    for i in 0..MAX_NODES {
        many.add("e", &format!("n{i}")).unwrap();
    }
    let before = many.clone();
    assert_eq!(
        many.add("e", "one-more").unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    assert_eq!(many, before);
    let mut other = OrSet::new();
    other.add("f", "another").unwrap();
    assert_eq!(
        many.merge_from(&other).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    assert_eq!(many, before);
}

/// An operation of the model test: add or remove an element at a replica, or deliver one
/// replica's state to another.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, u8),
    Remove(usize, u8),
    Deliver(usize, usize),
}

const REPLICAS: usize = 3;
const NODES: [&str; REPLICAS] = ["tokyo", "virginia", "frankfurt"];

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..REPLICAS, 0u8..5).prop_map(|(r, e)| Op::Add(r, e)),
        3 => (0..REPLICAS, 0u8..5).prop_map(|(r, e)| Op::Remove(r, e)),
        3 => (0..REPLICAS, 0..REPLICAS).prop_map(|(a, b)| Op::Deliver(a, b)),
    ]
}

/// The reference model (in the style of Riak's crdt_statem): every add gets a unique id; a
/// replica knows the adds it has seen and the add ids removes it has seen have removed. An
/// element is in a replica's set when it has seen an add of it that no remove it has seen
/// observed: add wins over any remove that did not see it.
#[derive(Clone, Default)]
struct Model {
    adds: BTreeSet<(u8, usize)>,
    removed: BTreeSet<usize>,
}

impl Model {
    fn present(&self) -> BTreeSet<u8> {
        self.adds
            .iter()
            .filter(|(_, id)| !self.removed.contains(id))
            .map(|(e, _)| *e)
            .collect()
    }
}

fn name(e: u8) -> String {
    format!("item-{e}")
}

fn names(s: &OrSet) -> BTreeSet<String> {
    s.elements().map(str::to_string).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replicas_agree_with_the_add_wins_model(ops in prop::collection::vec(op_strategy(), 0..60)) {
        let mut sets = vec![OrSet::new(); REPLICAS];
        let mut models = vec![Model::default(); REPLICAS];
        let mut next_id = 0usize;
        for op in &ops {
            match *op {
                Op::Add(r, e) => {
                    sets[r].add(&name(e), NODES[r]).unwrap();
                    // The new add supersedes this replica's seen adds of e (they are observed).
                    let seen: Vec<usize> = models[r].adds.iter().filter(|(x, _)| *x == e).map(|(_, id)| *id).collect();
                    models[r].removed.extend(seen);
                    models[r].adds.insert((e, next_id));
                    next_id += 1;
                }
                Op::Remove(r, e) => {
                    sets[r].remove(&name(e));
                    let seen: Vec<usize> = models[r].adds.iter().filter(|(x, _)| *x == e).map(|(_, id)| *id).collect();
                    models[r].removed.extend(seen);
                }
                Op::Deliver(from, to) => {
                    let state = sets[from].clone();
                    sets[to].merge_from(&state).unwrap();
                    let m = models[from].clone();
                    models[to].adds.extend(m.adds);
                    models[to].removed.extend(m.removed);
                }
            }
            for r in 0..REPLICAS {
                let expected: BTreeSet<String> = models[r].present().into_iter().map(name).collect();
                prop_assert_eq!(names(&sets[r]), expected, "replica {} after {:?}", r, op);
            }
        }
        // Everything delivered everywhere: all replicas hold the same state, the model's answer.
        let all = sets.iter().try_fold(OrSet::new(), |acc, s| acc.merge(s)).unwrap();
        let mut model = Model::default();
        for m in &models {
            model.adds.extend(m.adds.iter().copied());
            model.removed.extend(m.removed.iter().copied());
        }
        let expected: BTreeSet<String> = model.present().into_iter().map(name).collect();
        prop_assert_eq!(names(&all), expected);
        for s in &sets {
            prop_assert_eq!(&s.merge(&all).unwrap(), &all);
        }
    }

    #[test]
    fn merge_laws(a_ops in prop::collection::vec(op_strategy(), 0..30), b_ops in prop::collection::vec(op_strategy(), 0..30),
                  c_ops in prop::collection::vec(op_strategy(), 0..30)) {
        // Three replicas that share some history (each starts from a common state).
        let build = |ops: &[Op], common: &OrSet| {
            let mut s = common.clone();
            for op in ops {
                match *op {
                    Op::Add(r, e) => s.add(&name(e), NODES[r]).unwrap(),
                    Op::Remove(_, e) => { s.remove(&name(e)); }
                    Op::Deliver(..) => {}
                }
            }
            s
        };
        let mut common = OrSet::new();
        common.add("item-0", "shared").unwrap();
        // Each replica adds as its own node only (dots must be unique per node).
        let only = |ops: &[Op], r: usize| ops.iter().map(|op| match *op {
            Op::Add(_, e) => Op::Add(r, e),
            ref other => other.clone(),
        }).collect::<Vec<_>>();
        let a = build(&only(&a_ops, 0), &common);
        let b = build(&only(&b_ops, 1), &common);
        let c = build(&only(&c_ops, 2), &common);
        prop_assert_eq!(a.merge(&b).unwrap(), b.merge(&a).unwrap());
        prop_assert_eq!(a.merge(&b).unwrap().merge(&c).unwrap(), a.merge(&b.merge(&c).unwrap()).unwrap());
        prop_assert_eq!(a.merge(&a).unwrap(), a.clone());
        prop_assert_eq!(a.merge(&b).unwrap().merge(&b).unwrap(), a.merge(&b).unwrap());
    }
}

// ---- binary and text forms ---------------------------------------------------------------------

/// A state built by replicas trading adds, removes and merges.
fn replicated(ops: &[Op]) -> OrSet {
    let mut sets = vec![OrSet::new(); REPLICAS];
    for op in ops {
        match *op {
            Op::Add(r, e) => sets[r].add(&name(e), NODES[r]).unwrap(),
            Op::Remove(r, e) => {
                sets[r].remove(&name(e));
            }
            Op::Deliver(from, to) => {
                let state = sets[from].clone();
                sets[to].merge_from(&state).unwrap();
            }
        }
    }
    sets.swap_remove(0)
}

#[test]
fn worked_text_and_bytes() {
    let mut s = OrSet::new();
    s.add("milk", "a").unwrap();
    s.add("eggs", "b").unwrap();
    s.add("milk", "a").unwrap();
    assert_eq!(
        s.to_text(),
        r#"{"clock": {"a": 2, "b": 1}, "elements": {"eggs": {"b": 1}, "milk": {"a": 2}}}"#
    );
    assert_eq!(OrSet::parse_text(&s.to_text()).unwrap(), s);
    assert_eq!(OrSet::decode(&s.encode()).unwrap(), s);
    assert_eq!(OrSet::new().to_text(), "{}");
    assert_eq!(OrSet::new().encode(), [1, 0, 0, 0, 0, 0, 0]);
    // Removing everything keeps the clock: that is what stops a stale add coming back.
    s.remove("milk");
    s.remove("eggs");
    assert_eq!(
        s.to_text(),
        r#"{"clock": {"a": 2, "b": 1}, "elements": {}}"#
    );
    assert_eq!(OrSet::parse_text(&s.to_text()).unwrap(), s);
}

#[test]
fn text_is_strict() {
    for (text, why) in [
        (r#"{"elements": {}, "clock": {"a": 1}}"#, "key order"),
        (
            r#"{"clock": {"b": 1, "a": 1}, "elements": {}}"#,
            "node order",
        ),
        (
            r#"{"clock": {"a": 1, "a": 1}, "elements": {}}"#,
            "duplicate node",
        ),
        (r#"{"clock": {"a": 0}, "elements": {}}"#, "zero adds"),
        (r#"{"clock": {"a": -1}, "elements": {}}"#, "negative adds"),
        (
            r#"{"clock": {"a": 1}, "elements": {"x": {"a": 2}}}"#,
            "dot beyond the clock",
        ),
        (
            r#"{"clock": {"a": 1}, "elements": {"x": {"b": 1}}}"#,
            "dot of an unknown node",
        ),
        (
            r#"{"clock": {"a": 1}, "elements": {"x": {}}}"#,
            "element without a dot",
        ),
        (
            r#"{"clock": {}, "elements": {}}"#,
            "empty set not written {}",
        ),
        (r#"{"clock": {"": 1}, "elements": {}}"#, "empty node id"),
        (r#"{"clock": {"a": 1}, "elements": {}} x"#, "trailing text"),
        (r#"{"clock": {"a": 1.0}, "elements": {}}"#, "fraction"),
    ] {
        let error = OrSet::parse_text(text).expect_err(why);
        assert!(
            matches!(error.kind, ErrorKind::InvalidText | ErrorKind::Overflow),
            "{why}: {error:?}"
        );
    }
}

#[test]
fn decoder_refuses_what_the_encoder_would_not_write() {
    let s = replicated(&[
        Op::Add(0, 1),
        Op::Add(0, 2),
        Op::Remove(0, 1),
        Op::Add(0, 3),
    ]);
    let bytes = s.encode();
    assert_eq!(OrSet::decode(&bytes).unwrap(), s);
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        OrSet::decode(&longer).unwrap_err().kind,
        ErrorKind::InvalidBinary
    );
    for cut in 0..bytes.len() {
        assert_eq!(
            OrSet::decode(&bytes[..cut]).unwrap_err().kind,
            ErrorKind::InvalidBinary
        );
    }
    let mut version = bytes.clone();
    version[0] = 2;
    assert_eq!(
        OrSet::decode(&version).unwrap_err().kind,
        ErrorKind::InvalidBinary
    );
    // A forged element count cannot make the decoder allocate for it.
    let mut huge = vec![1u8, 0, 0];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        OrSet::decode(&huge).unwrap_err().kind,
        ErrorKind::InvalidBinary
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Forms round-trip, and equal states have identical bytes and text whatever the order
    /// of the merges that made them.
    #[test]
    fn forms_are_canonical(a_ops in prop::collection::vec(op_strategy(), 0..40),
                           b_ops in prop::collection::vec(op_strategy(), 0..40)) {
        let a = replicated(&a_ops);
        let b = replicated(&b_ops);
        for s in [&a, &b] {
            prop_assert_eq!(&OrSet::decode(&s.encode()).unwrap(), s);
            prop_assert_eq!(&OrSet::parse_text(&s.to_text()).unwrap(), s);
        }
        if let (Ok(ab), Ok(ba)) = (a.merge(&b), b.merge(&a)) {
            prop_assert_eq!(ab.encode(), ba.encode());
            prop_assert_eq!(ab.to_text(), ba.to_text());
        }
    }

    /// Mutated bytes never panic: they decode to a valid state (that re-encodes to the same
    /// bytes) or give an InvalidBinary error.
    #[test]
    fn decoder_survives_mutations(ops in prop::collection::vec(op_strategy(), 0..30),
                                  edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = replicated(&ops).encode();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        match OrSet::decode(&bytes) {
            Ok(s) => prop_assert_eq!(s.encode(), bytes),
            Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidBinary),
        }
    }
}
