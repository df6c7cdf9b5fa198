use super::*;
use proptest::prelude::*;

fn write(micros: i64, tick: u32, node: &str, value: &str) -> Register {
    Register(Some(
        Write::new(Stamp { micros, tick }, node, value).unwrap(),
    ))
}

#[test]
fn the_articles_example_and_ties() {
    // Node A writes ("Alice", 1000), node B writes ("Bob", 1002): Bob wins, either way round.
    let a = write(1000, 0, "a", "\"Alice\"");
    let b = write(1002, 0, "b", "\"Bob\"");
    assert_eq!(a.merge(&b), b);
    assert_eq!(b.merge(&a), b);
    let (merged, lost) = a.merge_report(&b);
    assert_eq!(
        (merged, lost.map(|w| w.value)),
        (b.clone(), Some("\"Alice\"".into()))
    );
    // Equal stamps: the node id decides, then the value bytes.
    let x = write(5, 0, "tokyo", "1");
    let y = write(5, 0, "virginia", "0");
    assert_eq!(x.merge(&y), y);
    let z = write(5, 0, "tokyo", "2");
    assert_eq!(x.merge(&z), z);
    // Same write on both sides: nothing discarded.
    assert_eq!(x.merge_report(&x.clone()).1, None);
    // Empty is neutral.
    assert_eq!(Register::default().merge(&x), x);
    assert_eq!(x.merge(&Register::default()), x);
}

#[test]
fn a_writer_with_a_slow_clock_still_wins_over_what_it_read() {
    let hour = 3_600_000_000i64;
    let read = write(10 * hour, 0, "tokyo", "\"old\"");
    // The writer's clock is an hour behind the stamp it read.
    let new = read.set("\"new\"", "virginia", 9 * hour).unwrap();
    let w = new.0.clone().unwrap();
    assert_eq!(
        w.stamp,
        Stamp {
            micros: 10 * hour,
            tick: 1
        }
    );
    assert_eq!(read.merge(&new), new);
    // A clock ahead of the stamp uses the clock.
    let later = read.set("\"later\"", "virginia", 11 * hour).unwrap();
    assert_eq!(
        later.0.unwrap().stamp,
        Stamp {
            micros: 11 * hour,
            tick: 0
        }
    );
    // The logical part carries into the microseconds when it runs out.
    let full = write(7, u32::MAX, "n", "0");
    assert_eq!(
        full.set("1", "n", 0).unwrap().0.unwrap().stamp,
        Stamp { micros: 8, tick: 0 }
    );
}

#[test]
fn set_at_uses_the_callers_clock_and_loses_to_a_later_write() {
    let current = write(100, 0, "a", "\"kept\"");
    assert_eq!(
        current
            .set_at(
                "\"older\"",
                "b",
                Stamp {
                    micros: 50,
                    tick: 0
                }
            )
            .unwrap(),
        current
    );
    let newer = current
        .set_at(
            "\"newer\"",
            "b",
            Stamp {
                micros: 150,
                tick: 0,
            },
        )
        .unwrap();
    assert_eq!(newer.0.unwrap().value, "\"newer\"");
}

#[test]
fn bytes_and_text_by_hand() {
    assert_eq!(Register::default().encode(), [1, 0]);
    assert_eq!(Register::default().to_text(), "{}");
    let r = write(0, 3, "n", "{\"a\": 1}");
    let mut expected = vec![1, 1];
    expected.extend_from_slice(&0i64.to_le_bytes());
    expected.extend_from_slice(&3u32.to_le_bytes());
    expected.extend_from_slice(&[1, b'n']);
    expected.extend_from_slice(&8u32.to_le_bytes());
    expected.extend_from_slice(b"{\"a\": 1}");
    assert_eq!(r.encode(), expected);
    assert_eq!(
        r.to_text(),
        r#"{"node": "n", "stamp": "2000-01-01T00:00:00.000000Z", "tick": 3, "value": {"a": 1}}"#
    );
    assert_eq!(Register::parse_text(&r.to_text()).unwrap(), r);
    assert_eq!(Register::parse_text(" { } ").unwrap(), Register::default());
}

#[test]
fn stamps_format_and_parse() {
    for (micros, text) in [
        (0, "2000-01-01T00:00:00.000000Z"),
        (-1, "1999-12-31T23:59:59.999999Z"),
        (MIN_STAMP, "0001-01-01T00:00:00.000000Z"),
        (MAX_STAMP, "9999-12-31T23:59:59.999999Z"),
        (89 * 86_400_000_000, "2000-03-30T00:00:00.000000Z"),
        (1_000_000_000_000_000 - 1, "2031-09-09T01:46:39.999999Z"),
    ] {
        assert_eq!(format_stamp(micros), text, "{micros}");
        assert_eq!(parse_stamp(text), Ok(micros), "{text}");
    }
    for bad in [
        "2000-01-01 00:00:00.000000Z",
        "2000-01-01T00:00:00Z",
        "2000-02-30T00:00:00.000000Z",
        "1900-02-29T00:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "2000-01-01T24:00:00.000000Z",
        "2000-13-01T00:00:00.000000Z",
        "+200-01-01T00:00:00.000000Z",
    ] {
        assert!(parse_stamp(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_stamp("2000-02-29T12:00:00.000000Z")
            .map(format_stamp)
            .as_deref(),
        Ok("2000-02-29T12:00:00.000000Z")
    );
}

#[test]
fn bad_input_is_refused() {
    for bad in [&[][..], &[2, 0], &[1, 2], &[1, 0, 0], &[1, 1, 0, 0]] {
        assert_eq!(
            Register::decode(bad).unwrap_err().kind,
            ErrorKind::InvalidBinary,
            "{bad:?}"
        );
    }
    let mut long_node = write(0, 0, "n", "1").encode();
    long_node[14] = 0; // node length 0
    assert!(Register::decode(&long_node).is_err());
    let mut out_of_range = write(0, 0, "n", "1").encode();
    out_of_range[2..10].copy_from_slice(&(MAX_STAMP + 1).to_le_bytes());
    assert!(Register::decode(&out_of_range).is_err());
    for bad in [
        "",
        "{",
        "{\"stamp\": \"2000-01-01T00:00:00.000000Z\", \"node\": \"n\", \"tick\": 0, \"value\": 1}",
        "{\"node\": \"\", \"stamp\": \"2000-01-01T00:00:00.000000Z\", \"tick\": 0, \"value\": 1}",
        "{\"node\": \"n\", \"stamp\": \"2000-01-01T00:00:00.000000Z\", \"tick\": -1, \"value\": 1}",
        "{\"node\": \"n\", \"stamp\": \"2000-01-01T00:00:00.000000Z\", \"tick\": 0, \"value\": }",
        "{\"node\": \"n\", \"stamp\": \"2000-01-01T00:00:00.000000Z\", \"tick\": 0, \"value\": [1, 2}",
        "{\"node\": \"n\", \"stamp\": \"2000-01-01T00:00:00.000000Z\", \"tick\": 0, \"value\": 1} x",
        "{} {}",
    ] {
        assert_eq!(
            Register::parse_text(bad).unwrap_err().kind,
            ErrorKind::InvalidText,
            "{bad}"
        );
    }
    assert!(Register::default().set("1", "", 0).is_err());
    assert!(
        Register::default()
            .set(&"x".repeat(MAX_VALUE_BYTES + 1), "n", 0)
            .is_err()
    );
}

fn register_strategy() -> impl Strategy<Value = Register> {
    prop_oneof![
        1 => Just(Register::default()),
        6 => (0i64..20, 0u32..3, prop::sample::select(vec!["a", "b", "c"]), prop::sample::select(vec!["1", "2", "\"x\""]))
            .prop_map(|(m, t, n, v)| write(m, t, n, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_laws(a in register_strategy(), b in register_strategy(), c in register_strategy()) {
        prop_assert_eq!(a.merge(&b).encode(), b.merge(&a).encode());
        prop_assert_eq!(a.merge(&b).merge(&c).encode(), a.merge(&b.merge(&c)).encode());
        prop_assert_eq!(a.merge(&a), a.clone());
        // What a merge reports discarded is the side that is not the result.
        let (merged, lost) = a.merge_report(&b);
        if let Some(lost) = lost {
            prop_assert!(Some(&lost) == a.0.as_ref() || Some(&lost) == b.0.as_ref());
            prop_assert!(merged.0.as_ref() > Some(&lost));
        }
    }

    #[test]
    fn any_delivery_order_with_duplicates_gives_the_same_bytes(states in prop::collection::vec(register_strategy(), 1..8), seed in any::<u64>()) {
        let straight = states.iter().fold(Register::default(), |acc, s| acc.merge(s));
        let mut shuffled = states.clone();
        shuffled.extend(states.iter().take(seed as usize % states.len()).cloned());
        let mut x = seed;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let other = shuffled.iter().rev().fold(Register::default(), |acc, s| s.merge(&acc));
        prop_assert_eq!(straight.encode(), other.encode());
    }

    #[test]
    fn a_write_never_loses_to_a_state_it_has_seen(seen in register_strategy(), now in -5i64..30, node in prop::sample::select(vec!["a", "b", "z"])) {
        let written = seen.set("\"w\"", node, now).unwrap();
        prop_assert_eq!(seen.merge(&written), written.clone());
        prop_assert_eq!(written.merge(&seen), written);
    }

    #[test]
    fn codecs_round_trip(r in register_strategy()) {
        prop_assert_eq!(Register::decode(&r.encode()).unwrap(), r.clone());
        prop_assert_eq!(Register::parse_text(&r.to_text()).unwrap(), r);
    }

    #[test]
    fn stamps_round_trip(micros in MIN_STAMP..=MAX_STAMP) {
        prop_assert_eq!(parse_stamp(&format_stamp(micros)), Ok(micros));
    }

    #[test]
    fn mutated_bytes_never_panic(r in register_strategy(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = r.encode();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = Register::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
