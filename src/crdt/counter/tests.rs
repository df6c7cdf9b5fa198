use super::*;
use proptest::prelude::*;

fn g(pairs: &[(&str, i64)]) -> GCounter {
    GCounter::from_slots(
        pairs
            .iter()
            .map(|(n, c)| (n.to_string(), GSlot(*c)))
            .collect(),
    )
    .unwrap()
}

fn pn(pairs: &[(&str, i64, i64)]) -> PnCounter {
    PnCounter::from_slots(
        pairs
            .iter()
            .map(|(n, p, q)| (n.to_string(), PnSlot { p: *p, n: *q }))
            .collect(),
    )
    .unwrap()
}

#[test]
fn worked_example_gcounter() {
    // Node A increments to 5, B to 3, C to 7, each on its own replica.
    let mut a = GCounter::new();
    a.increment("A", 5).unwrap();
    let mut b = GCounter::new();
    b.increment("B", 3).unwrap();
    let mut c = GCounter::new();
    for _ in 0..7 {
        c.increment("C", 1).unwrap();
    }
    let merged = a.merge(&b).unwrap().merge(&c).unwrap();
    assert_eq!(merged.to_text(), r#"{"A": 5, "B": 3, "C": 7}"#);
    assert_eq!(merged.value().unwrap(), 15);
}

#[test]
fn worked_example_pncounter() {
    let c = pn(&[("A", 10, 2), ("B", 5, 1), ("C", 8, 0)]);
    assert_eq!(c.value().unwrap(), 20);
    assert_eq!(c.to_text(), r#"{"A": [10, 2], "B": [5, 1], "C": [8, 0]}"#);
}

#[test]
fn pncounter_negative_increment_goes_to_n() {
    let mut c = PnCounter::new();
    c.increment("x", 10).unwrap();
    c.increment("x", -3).unwrap();
    assert_eq!(c.get("x"), PnSlot { p: 10, n: 3 });
    assert_eq!(c.value().unwrap(), 7);
    assert_eq!(
        c.increment("x", i64::MIN).unwrap_err().kind,
        ErrorKind::Overflow
    );
}

#[test]
fn gcounter_rejects_negative_and_overflow() {
    let mut c = g(&[("A", i64::MAX)]);
    assert_eq!(
        c.increment("A", -1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(c.increment("A", 1).unwrap_err().kind, ErrorKind::Overflow);
    let two = g(&[("A", i64::MAX), ("B", 1)]);
    assert_eq!(two.value().unwrap_err().kind, ErrorKind::Overflow);
}

#[test]
fn zero_increment_keeps_canonical_form() {
    let mut c = GCounter::new();
    c.increment("A", 0).unwrap();
    assert!(c.is_empty());
    assert_eq!(c.encode(), GCounter::new().encode());
}

#[test]
fn node_id_limits() {
    let mut c = GCounter::new();
    assert_eq!(
        c.increment("", 1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        c.increment(&"x".repeat(64), 1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    c.increment(&"x".repeat(63), 1).unwrap();
}

#[test]
fn slot_limit() {
    let slots: Vec<_> = (0..MAX_SLOTS)
        .map(|i| (format!("n{i}"), GSlot(1)))
        .collect();
    let mut full = GCounter::from_slots(slots).unwrap();
    assert_eq!(
        full.increment("another", 1).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    full.increment("n0", 1).unwrap(); // an existing slot still grows
    let other = g(&[("zzz", 1)]);
    assert_eq!(
        full.merge(&other).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    let decoded = GCounter::decode(&full.encode()).unwrap();
    assert_eq!(decoded, full);
}

#[test]
fn text_parsing_is_strict() {
    let ok = GCounter::parse_text(r#" { "B" : 3 ,"A":5 } "#).unwrap();
    assert_eq!(ok.to_text(), r#"{"A": 5, "B": 3}"#);
    assert!(GCounter::parse_text("{}").unwrap().is_empty());
    let cases = [
        ("", ErrorKind::InvalidText),
        ("{", ErrorKind::InvalidText),
        (r#"{"A": 5,}"#, ErrorKind::InvalidText),
        (r#"{"A": 5} x"#, ErrorKind::InvalidText),
        (r#"{"A": -1}"#, ErrorKind::InvalidText),
        (r#"{"A": 1.5}"#, ErrorKind::InvalidText),
        (r#"{"A": "5"}"#, ErrorKind::InvalidText),
        (r#"{"A": 1, "A": 2}"#, ErrorKind::InvalidText),
        (r#"{"": 1}"#, ErrorKind::InvalidText),
        (r#"{A: 1}"#, ErrorKind::InvalidText),
        (r#"{"A": 9223372036854775808}"#, ErrorKind::Overflow),
    ];
    for (text, kind) in cases {
        assert_eq!(GCounter::parse_text(text).unwrap_err().kind, kind, "{text}");
    }
    let long = format!(r#"{{"{}": 1}}"#, "x".repeat(64));
    assert_eq!(
        GCounter::parse_text(&long).unwrap_err().kind,
        ErrorKind::InvalidText
    );
    assert!(PnCounter::parse_text(r#"{"A": 5}"#).is_err());
    assert!(PnCounter::parse_text(r#"{"A": [5]}"#).is_err());
    assert!(PnCounter::parse_text(r#"{"A": [5, -1]}"#).is_err());
    assert_eq!(
        PnCounter::parse_text(r#"{"A": [0, 0]}"#).unwrap(),
        PnCounter::new()
    );
}

#[test]
fn binary_decoder_refuses_non_canonical_and_foreign_bytes() {
    let good = g(&[("A", 5), ("B", 3)]).encode();
    assert!(GCounter::decode(&good).is_ok());
    // A gcounter's bytes are not a pncounter.
    assert_eq!(
        PnCounter::decode(&good).unwrap_err().kind,
        ErrorKind::InvalidBinary
    );
    // Every truncation fails.
    for len in 0..good.len() {
        assert!(
            GCounter::decode(&good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Trailing bytes, a wrong version, swapped order, zero and negative slots fail.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(GCounter::decode(&trailing).is_err());
    let mut version = good.clone();
    version[0] = 2;
    assert!(GCounter::decode(&version).is_err());
    let mut two = vec![1u8, 1, 2, 0];
    two.extend_from_slice(&[1, b'B']);
    two.extend_from_slice(&5i64.to_le_bytes());
    two.extend_from_slice(&[1, b'A']);
    two.extend_from_slice(&3i64.to_le_bytes());
    assert!(GCounter::decode(&two).is_err());
    let mut zero = vec![1u8, 1, 1, 0, 1, b'A'];
    zero.extend_from_slice(&0i64.to_le_bytes());
    assert!(GCounter::decode(&zero).is_err());
    let mut negative = vec![1u8, 1, 1, 0, 1, b'A'];
    negative.extend_from_slice(&(-5i64).to_le_bytes());
    assert!(GCounter::decode(&negative).is_err());
    let mut nul = vec![1u8, 1, 1, 0, 1, 0];
    nul.extend_from_slice(&5i64.to_le_bytes());
    assert!(GCounter::decode(&nul).is_err());
}

#[test]
fn lattice_order_and_delta() {
    let older = g(&[("A", 5), ("B", 3)]);
    let newer = g(&[("A", 7), ("B", 3), ("C", 1)]);
    assert!(older.le(&newer));
    assert!(!newer.le(&older));
    let delta = newer.delta_since(&older);
    assert_eq!(delta, g(&[("A", 7), ("C", 1)]));
    assert_eq!(older.merge(&delta).unwrap(), older.merge(&newer).unwrap());
}

#[test]
fn fold_slot_keeps_the_value() {
    let c = g(&[("old", 4), ("new", 6), ("other", 1)]);
    let folded = c.fold_slot("old", "new").unwrap();
    assert_eq!(folded, g(&[("new", 10), ("other", 1)]));
    assert_eq!(folded.value().unwrap(), c.value().unwrap());
    assert_eq!(c.fold_slot("absent", "new").unwrap(), c);
    assert_eq!(
        c.fold_slot("old", "fresh").unwrap(),
        g(&[("fresh", 4), ("new", 6), ("other", 1)])
    );
    assert_eq!(
        c.fold_slot("old", "old").unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    let big = g(&[("old", i64::MAX), ("new", 1)]);
    assert_eq!(
        big.fold_slot("old", "new").unwrap_err().kind,
        ErrorKind::Overflow
    );
    let p = pn(&[("old", 3, 1), ("new", 2, 2)]);
    assert_eq!(p.fold_slot("old", "new").unwrap(), pn(&[("new", 5, 3)]));
}

// ---- property tests -------------------------------------------------------------------------

fn node_strategy() -> impl Strategy<Value = String> {
    // A small alphabet makes collisions between replicas likely; some multi-byte ids too.
    prop_oneof!["[a-e]{1,3}", "[a-zA-Z0-9_é日\"\\\\]{1,20}",]
}

fn gcounter_strategy() -> impl Strategy<Value = GCounter> {
    prop::collection::btree_map(node_strategy(), 0i64..1_000_000, 0..12).prop_map(|m| {
        GCounter::from_slots(m.into_iter().map(|(k, v)| (k, GSlot(v))).collect()).unwrap()
    })
}

fn pncounter_strategy() -> impl Strategy<Value = PnCounter> {
    prop::collection::btree_map(node_strategy(), (0i64..1_000_000, 0i64..1_000_000), 0..12)
        .prop_map(|m| {
            PnCounter::from_slots(
                m.into_iter()
                    .map(|(k, (p, n))| (k, PnSlot { p, n }))
                    .collect(),
            )
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gcounter_merge_laws(a in gcounter_strategy(), b in gcounter_strategy(), c in gcounter_strategy()) {
        // commutative, associative, idempotent
        prop_assert_eq!(a.merge(&b).unwrap().encode(), b.merge(&a).unwrap().encode());
        prop_assert_eq!(a.merge(&b).unwrap().merge(&c).unwrap(), a.merge(&b.merge(&c).unwrap()).unwrap());
        prop_assert_eq!(a.merge(&a).unwrap(), a.clone());
        // inflationary: value never decreases, and both inputs are below the merge
        let m = a.merge(&b).unwrap();
        prop_assert!(m.value().unwrap() >= a.value().unwrap().max(b.value().unwrap()));
        prop_assert!(a.le(&m) && b.le(&m));
    }

    #[test]
    fn pncounter_merge_laws(a in pncounter_strategy(), b in pncounter_strategy(), c in pncounter_strategy()) {
        prop_assert_eq!(a.merge(&b).unwrap().encode(), b.merge(&a).unwrap().encode());
        prop_assert_eq!(a.merge(&b).unwrap().merge(&c).unwrap(), a.merge(&b.merge(&c).unwrap()).unwrap());
        prop_assert_eq!(a.merge(&a).unwrap(), a.clone());
        let m = a.merge(&b).unwrap();
        prop_assert!(a.le(&m) && b.le(&m));
    }

    #[test]
    fn any_permutation_of_replica_states_merges_to_identical_bytes(
        states in prop::collection::vec(gcounter_strategy(), 1..6),
        seed in any::<u64>(),
    ) {
        let forward = states.iter().fold(GCounter::new(), |acc, s| acc.merge(s).unwrap());
        let mut shuffled = states.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        // Duplicated deliveries change nothing either.
        shuffled.extend(states.iter().take(2).cloned());
        let other = shuffled.iter().fold(GCounter::new(), |acc, s| acc.merge(s).unwrap());
        prop_assert_eq!(forward.encode(), other.encode());
    }

    #[test]
    fn gcounter_round_trips(a in gcounter_strategy()) {
        prop_assert_eq!(GCounter::decode(&a.encode()).unwrap(), a.clone());
        prop_assert_eq!(GCounter::parse_text(&a.to_text()).unwrap(), a.clone());
        prop_assert_eq!(a.encode().len(), a.encoded_len());
    }

    #[test]
    fn pncounter_round_trips(a in pncounter_strategy()) {
        prop_assert_eq!(PnCounter::decode(&a.encode()).unwrap(), a.clone());
        prop_assert_eq!(PnCounter::parse_text(&a.to_text()).unwrap(), a.clone());
    }

    #[test]
    fn delta_law(a in gcounter_strategy(), b in gcounter_strategy()) {
        let newer = a.merge(&b).unwrap();
        let delta = newer.delta_since(&a);
        prop_assert_eq!(a.merge(&delta).unwrap(), a.merge(&newer).unwrap());
    }

    /// The decoders never panic, whatever the bytes; what they accept re-encodes to the same bytes.
    #[test]
    fn decoders_survive_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(c) = GCounter::decode(&bytes) { prop_assert_eq!(c.encode(), bytes.clone()); }
        if let Ok(c) = PnCounter::decode(&bytes) { prop_assert_eq!(c.encode(), bytes.clone()); }
    }

    #[test]
    fn decoders_survive_mutations(a in gcounter_strategy(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = a.encode();
        for (at, v) in flips { let n = bytes.len(); bytes[at % n] = v; }
        if let Ok(c) = GCounter::decode(&bytes) { prop_assert_eq!(c.encode(), bytes); }
    }

    #[test]
    fn text_parser_survives_garbage(text in "\\PC{0,60}") {
        if let Ok(c) = GCounter::parse_text(&text) { prop_assert_eq!(GCounter::parse_text(&c.to_text()).unwrap(), c); }
        if let Ok(c) = PnCounter::parse_text(&text) { prop_assert_eq!(PnCounter::parse_text(&c.to_text()).unwrap(), c); }
    }
}
