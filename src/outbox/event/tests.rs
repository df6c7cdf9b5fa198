use super::*;
use proptest::prelude::*;

fn parse(args: &[&str]) -> Result<TriggerConfig, Error> {
    TriggerConfig::parse(args)
}

#[test]
fn defaults_name_events_like_the_event_router_examples() {
    let c = parse(&["Order", "id"]).unwrap();
    assert_eq!(c.key_columns, vec!["id"]);
    assert_eq!(c.mode, None);
    assert_eq!(c.payload, PayloadShape::New);
    assert_eq!(c.event_type(Op::Insert, "orders"), "OrderCreated");
    assert_eq!(c.event_type(Op::Update, "orders"), "OrderUpdated");
    assert_eq!(c.event_type(Op::Delete, "orders"), "OrderDeleted");
}

#[test]
fn every_argument_is_read() {
    let c = parse(&["Order", " tenant , id ", "both", "{table}.{op}", "old_new"]).unwrap();
    assert_eq!(c.key_columns, vec!["tenant", "id"]);
    assert_eq!(c.mode, Some(Mode::Both));
    assert_eq!(c.payload, PayloadShape::OldNew);
    assert_eq!(c.event_type(Op::Delete, "orders"), "orders.d");
    assert_eq!(parse(&["Order", "id", "default"]).unwrap().mode, None);
    assert_eq!(
        parse(&["Order", "id", "message"]).unwrap().mode,
        Some(Mode::Message)
    );
}

#[test]
fn bad_arguments_are_refused_with_the_usage() {
    for args in [
        &["Order"][..],
        &[
            "Order",
            "id",
            "table",
            "{aggregatetype}{Op}",
            "new",
            "extra",
        ],
        &["", "id"],
        &["Order", ""],
        &["Order", "id,,x"],
        &["Order", "id", "kafka"],
        &["Order", "id", "table", "{Aggregate}"],
        &["Order", "id", "table", "{aggregatetype}{Op}", "diff"],
    ] {
        let err = parse(args).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter, "{args:?}");
        assert!(err.detail.is_some(), "{args:?}");
    }
    let long = "x".repeat(256);
    assert!(parse(&[&long, "id"]).is_err());
}

#[test]
fn one_key_is_its_value_and_several_are_a_json_array() {
    assert_eq!(aggregate_id(&["42"]), "42");
    assert_eq!(aggregate_id(&["acme", "4\"2"]), r#"["acme", "4\"2"]"#);
}

#[test]
fn uuid_has_version_and_variant_bits() {
    let (bytes, text) = uuid_v4([0xff; 16]);
    assert_eq!(text, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_eq!(bytes[6] >> 4, 4);
    let (_, zero) = uuid_v4([0; 16]);
    assert_eq!(zero, "00000000-0000-4000-8000-000000000000");
}

#[test]
fn envelope_uses_the_router_field_names() {
    let body = Envelope {
        id: "u",
        aggregate_type: "Order",
        aggregate_id: "7",
        event_type: "OrderCreated",
        payload: Some(r#"{"id":7}"#),
        headers: None,
        tracing_span_context: Some("00-abc-01"),
    }
    .to_json();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["aggregatetype"], "Order");
    assert_eq!(v["aggregateid"], "7");
    assert_eq!(v["type"], "OrderCreated");
    assert_eq!(v["payload"]["id"], 7);
    assert!(v["headers"].is_null());
    assert_eq!(v["tracingspancontext"], "00-abc-01");
}

proptest! {
    // Whatever the strings hold (quotes, backslashes, control characters, any Unicode), the
    // body is valid JSON and gives the same strings back.
    #[test]
    fn envelope_is_valid_json_for_any_strings(
        agg in any::<String>(), id in any::<String>(), ty in any::<String>(),
        trace in proptest::option::of(any::<String>()), keys in proptest::collection::vec(any::<String>(), 2..4),
    ) {
        let body = Envelope {
            id: &id, aggregate_type: &agg, aggregate_id: &id, event_type: &ty,
            payload: Some("[1,{\"a\":null}]"), headers: Some("{\"k\":\"v\"}"),
            tracing_span_context: trace.as_deref(),
        }.to_json();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(v["aggregatetype"].as_str().unwrap(), agg.as_str());
        prop_assert_eq!(v["type"].as_str().unwrap(), ty.as_str());
        prop_assert_eq!(v["tracingspancontext"].as_str(), trace.as_deref());
        let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        let array: Vec<String> = serde_json::from_str(&aggregate_id(&refs)).unwrap();
        prop_assert_eq!(array, keys);
    }

    #[test]
    fn type_format_never_panics(format in any::<String>()) {
        let _ = parse(&["Order", "id", "table", &format]);
    }
}

fn attachment() -> Attachment {
    Attachment {
        for_each_row: true,
        after: true,
        insert: true,
        update: true,
        delete: true,
        truncate: false,
        new_table: false,
        old_table: false,
    }
}

#[test]
fn row_form_must_be_after_for_each_row() {
    let config = parse(&["Order", "id"]).unwrap();
    assert!(check_attachment(Form::Row, &attachment(), &config).is_ok());
    let before = Attachment {
        after: false,
        ..attachment()
    };
    let statement = Attachment {
        for_each_row: false,
        ..attachment()
    };
    for a in [before, statement] {
        let err = check_attachment(Form::Row, &a, &config).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TriggerMisuse);
    }
}

#[test]
fn statement_form_needs_one_event_and_its_transition_table() {
    let config = parse(&["Order", "id"]).unwrap();
    let insert = Attachment {
        for_each_row: false,
        update: false,
        delete: false,
        new_table: true,
        ..attachment()
    };
    assert!(check_attachment(Form::Statement, &insert, &config).is_ok());
    let no_table = Attachment {
        new_table: false,
        ..insert
    };
    let two_events = Attachment {
        update: true,
        ..insert
    };
    let row = Attachment {
        for_each_row: true,
        ..insert
    };
    let delete_without_old = Attachment {
        insert: false,
        delete: true,
        ..insert
    };
    for a in [no_table, two_events, row, delete_without_old] {
        let err = check_attachment(Form::Statement, &a, &config).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TriggerMisuse, "{a:?}");
    }
    let old_new = parse(&["Order", "id", "table", "{aggregatetype}{Op}", "old_new"]).unwrap();
    let err = check_attachment(Form::Statement, &insert, &old_new).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
}

#[test]
fn missing_key_column_is_named() {
    let config = parse(&["Order", "tenant,id"]).unwrap();
    assert!(check_key_columns(&config, "orders", |c| c == "tenant" || c == "id").is_ok());
    let err = check_key_columns(&config, "orders", |c| c == "id").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UndefinedColumn);
    assert!(err.message.contains("\"tenant\""));
}

#[test]
fn ids_are_distinct_version_4_uuids() {
    let mut ids = IdGenerator::from_seed([7; 32]);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let (bytes, text) = uuid_v4(ids.next_bytes());
        assert_eq!(bytes[6] >> 4, 4);
        assert_eq!(bytes[8] >> 6, 2);
        assert_eq!(text.len(), 36);
        assert!(seen.insert(text));
    }
    // Different seeds, different streams; an all-zero seed still moves.
    let a = IdGenerator::from_seed([1; 32]).next_bytes();
    let b = IdGenerator::from_seed([2; 32]).next_bytes();
    assert_ne!(a, b);
    let mut zero = IdGenerator::from_seed([0; 32]);
    assert_ne!(zero.next_bytes(), zero.next_bytes());
}

#[test]
fn id_stream_is_the_hand_written_generators() {
    // The first four words of the xoshiro256** written here before rand_xoshiro, from the seed
    // bytes 0, 1, ..., 31: the same ids from the same seed.
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut ids = IdGenerator::from_seed(seed);
    let words = [
        0xbc25_8ef8_61cb_354d_u64,
        0x258e_f861_cb34_9eb5,
        0x013c_0ee1_b61e_1c2d,
        0x60e9_8016_51ad_191d,
    ];
    for pair in words.chunks(2) {
        let mut want = [0u8; 16];
        want[..8].copy_from_slice(&pair[0].to_le_bytes());
        want[8..].copy_from_slice(&pair[1].to_le_bytes());
        assert_eq!(ids.next_bytes(), want);
    }
    // The text form as before: version and variant over the random bytes, lower-case hex.
    let (bytes, text) =
        uuid_v4(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10");
    assert_eq!(text, "01234567-89ab-4def-bedc-ba9876543210");
    assert_eq!(bytes[6], 0x4d);
    assert_eq!(bytes[8], 0xbe);
}

#[test]
fn timed_ids_grow_and_are_version_7_with_the_variant() {
    let mut ids = TimedIds::new(IdGenerator::from_seed([9; 32]));
    let mut last = [0u8; 16];
    let mut seen = std::collections::HashSet::new();
    // 10,000 ids in one millisecond overflow the 12-bit counter: the millisecond moves on.
    let now: u64 = 1_764_900_000_000;
    for i in 0..10_000u64 {
        let clock = if i == 5_000 {
            now - 10
        } else {
            now + i / 9_000
        };
        let bytes = ids.next_bytes(clock);
        assert_eq!(bytes[6] >> 4, 7);
        assert_eq!(bytes[8] >> 6, 2);
        assert!(bytes > last, "id {i} does not grow");
        last = bytes;
        assert!(seen.insert(bytes));
    }
    let first = TimedIds::new(IdGenerator::from_seed([9; 32])).next_bytes(now);
    assert_eq!(&first[..6], &now.to_be_bytes()[2..]);
    assert_eq!(first[6] & 0xf8, 0x70, "the counter starts below 2,048");
    let text = uuid_text(&first);
    assert_eq!(text.len(), 36);
    assert_eq!(
        format!("{}{}", &text[..8], &text[9..13]),
        format!("{now:012x}")
    );
    assert_eq!(&text[13..15], "-7");
    // The text is the canonical form, as of any id.
    assert_eq!(text, uuid::Uuid::from_bytes(first).hyphenated().to_string());
}

#[test]
fn event_types_are_rendered_per_operation() {
    let c = parse(&["Order", "id", "table", "{table}:{op}:{Op}"]).unwrap();
    assert_eq!(
        c.event_types("orders"),
        ["orders:c:Created", "orders:u:Updated", "orders:d:Deleted"]
    );
    assert_eq!(Op::Delete.index(), 2);
}
