//! Property tests of the summary: bounds, merge laws, capacity, codec round trips; and an
//! accuracy check on Zipf streams.

use super::*;
use crate::common::fuzz_support::SplitMix64;
use proptest::prelude::*;
use std::collections::HashMap;

const TEXT: u8 = 2;
const INTEGER: u8 = 1;

fn key_of(k: u32) -> Vec<u8> {
    k.to_string().into_bytes()
}

fn fed(capacity: i64, stream: &[(u32, i64)]) -> (TopK, HashMap<u32, u64>) {
    let mut s = TopK::new(capacity).unwrap();
    let mut truth = HashMap::new();
    for &(k, w) in stream {
        s.add(&key_of(k), TEXT, w).unwrap();
        *truth.entry(k).or_insert(0) += w as u64;
    }
    (s, truth)
}

/// Every invariant of the module documentation, against the true counts.
fn check_bounds(s: &TopK, truth: &HashMap<u32, u64>, universe: u32) {
    assert!(s.len() <= s.capacity() as usize);
    assert_eq!(s.total(), truth.values().sum::<u64>());
    for item in s.items() {
        assert!(item.lower >= 1 && item.lower <= item.count, "{item:?}");
        assert!(
            item.count >= s.floor(),
            "{item:?} below floor {}",
            s.floor()
        );
    }
    for k in 0..universe {
        let f = truth.get(&k).copied().unwrap_or(0);
        let b = s.bounds(&key_of(k), TEXT);
        assert!(b.lower <= f && f <= b.upper, "key {k}: {f} not in {b:?}");
        assert!(b.lower <= b.estimate && b.estimate <= b.upper, "{b:?}");
        if b.lower == 0 {
            assert_eq!(b.estimate, 0);
        }
    }
    let round = TopK::decode(&s.encode()).unwrap();
    assert_eq!(&round, s);
    assert_eq!(round.encode(), s.encode());
}

fn stream_strategy() -> impl Strategy<Value = Vec<(u32, i64)>> {
    prop::collection::vec(
        (0u32..40, prop_oneof![4 => Just(1i64), 1 => 1i64..50]),
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bounds_hold_on_one_stream(capacity in 1i64..12, stream in stream_strategy()) {
        let (s, truth) = fed(capacity, &stream);
        check_bounds(&s, &truth, 40);
    }

    #[test]
    fn bounds_hold_after_merges_in_any_tree(
        capacity in 1i64..12,
        stream in stream_strategy(),
        parts in 1usize..6,
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix64(seed);
        let mut pieces: Vec<Vec<(u32, i64)>> = vec![Vec::new(); parts];
        for &event in &stream {
            pieces[rng.below(parts)].push(event);
        }
        let mut sketches: Vec<TopK> = pieces.iter().map(|p| fed(capacity, p).0).collect();
        while sketches.len() > 1 {
            let a = sketches.remove(rng.below(sketches.len()));
            let b = sketches.remove(rng.below(sketches.len()));
            sketches.push(a.merged(&b).unwrap());
        }
        let truth = fed(1_000, &stream).1;
        check_bounds(&sketches[0], &truth, 40);
    }

    #[test]
    fn merge_is_commutative_and_empty_is_neutral(
        capacity in 1i64..12, a in stream_strategy(), b in stream_strategy(),
    ) {
        let (x, _) = fed(capacity, &a);
        let (y, _) = fed(capacity, &b);
        prop_assert_eq!(x.merged(&y).unwrap().encode(), y.merged(&x).unwrap().encode());
        // Whatever its capacity: an aggregate over no rows gives the default one.
        let empties = if x.total() > 0 { vec![TopK::new(capacity).unwrap(), TopK::default()] } else { vec![] };
        for empty in empties {
            prop_assert_eq!(&x.merged(&empty).unwrap(), &x);
            prop_assert_eq!(&empty.merged(&x).unwrap(), &x);
        }
    }

    /// A trimmed summary keeps every bound, holds at most its new capacity (the best-ranked
    /// items, unchanged), round-trips, and merges as any other: bounds hold after trimming a
    /// union and after merging trimmed summaries.
    #[test]
    fn trim_keeps_bounds_and_merges(
        capacity in 1i64..12,
        to in 1i64..14,
        a in stream_strategy(),
        b in stream_strategy(),
    ) {
        let (x, truth_a) = fed(capacity, &a);
        let (y, _) = fed(capacity, &b);
        let t = x.trimmed(to).unwrap();
        prop_assert_eq!(t.capacity(), to as u32);
        prop_assert_eq!(t.total(), x.total());
        prop_assert_eq!(t.len(), x.len().min(to as usize));
        prop_assert_eq!(&t.items()[..], &x.items()[..t.len()]);
        prop_assert!(t.floor() >= x.floor());
        if t.len() == x.len() {
            prop_assert_eq!(t.floor(), x.floor());
        }
        check_bounds(&t, &truth_a, 40);
        let truth = fed(1_000, &a.iter().chain(&b).copied().collect::<Vec<_>>()).1;
        check_bounds(&x.merged(&y).unwrap().trimmed(to).unwrap(), &truth, 40);
        check_bounds(&t.merged(&y.trimmed(to).unwrap()).unwrap(), &truth, 40);
        // Trimming twice to the same capacity changes nothing more.
        prop_assert_eq!(t.trimmed(to).unwrap().encode(), t.encode());
    }

    /// While nothing is dropped (at most capacity distinct keys) the summary is exact: the same
    /// for every order and grouping.
    #[test]
    fn exact_and_order_free_below_capacity(
        a in stream_strategy(), b in stream_strategy(), c in stream_strategy(), seed in any::<u64>(),
    ) {
        let (x, _) = fed(40, &a);
        let (y, _) = fed(40, &b);
        let (z, _) = fed(40, &c);
        let left = x.merged(&y).unwrap().merged(&z).unwrap();
        let right = x.merged(&y.merged(&z).unwrap()).unwrap();
        prop_assert_eq!(left.encode(), right.encode());
        let mut all: Vec<(u32, i64)> = a.iter().chain(&b).chain(&c).copied().collect();
        let mut rng = SplitMix64(seed);
        for i in (1..all.len()).rev() {
            all.swap(i, rng.below(i + 1));
        }
        let (whole, truth) = fed(40, &all);
        prop_assert_eq!(whole.encode(), left.encode());
        prop_assert_eq!(whole.floor(), 0);
        for item in whole.items() {
            let k: u32 = std::str::from_utf8(item.key).unwrap().parse().unwrap();
            prop_assert_eq!(item.count, truth[&k]);
            prop_assert_eq!(item.lower, truth[&k]);
        }
    }
}

#[test]
fn trim_refuses_bad_capacities() {
    let (s, _) = fed(4, &[(1, 1), (2, 1)]);
    for bad in [0, -1, i64::from(MAX_CAPACITY) + 1] {
        let e = s.trimmed(bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter, "{bad}");
    }
    assert_eq!(s.trimmed(i64::from(MAX_CAPACITY)).unwrap().len(), 2);
}

/// Union of 50 partitions: built at the small capacity, against built at a large one, merged,
/// and trimmed to the small one (`topk_trim`): recall of the true top 100 over seeds.
/// `cargo test --lib ... -- --ignored zipf_trim_report --nocapture` (TOPK_S, TOPK_SMALL, TOPK_LARGE).
#[test]
#[ignore]
fn zipf_trim_report() {
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let s = env("TOPK_S", 0.8);
    let small = env("TOPK_SMALL", 1050.0) as i64;
    let large = env("TOPK_LARGE", 2500.0) as i64;
    for seed in 1..=3u64 {
        let events = zipf_stream(2_000_000, 200_000, s, seed);
        let mut truth = vec![0u64; 200_000];
        for &k in &events {
            truth[k as usize] += 1;
        }
        let mut order: Vec<u32> = (0..200_000).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(truth[k as usize]));
        let union = |cap: i64| {
            let mut parts: Vec<TopK> = (0..50).map(|_| TopK::new(cap).unwrap()).collect();
            for (i, &k) in events.iter().enumerate() {
                parts[i % 50].add(&key_of(k), TEXT, 1).unwrap();
            }
            let mut merged = TopK::new(cap).unwrap();
            for p in &parts {
                merged.merge_from(p).unwrap();
            }
            merged
        };
        let recall = |sk: &TopK| {
            let ranked: Vec<u32> = sk.items()[..100]
                .iter()
                .map(|i| std::str::from_utf8(i.key).unwrap().parse().unwrap())
                .collect();
            order[..100].iter().filter(|x| ranked.contains(x)).count()
        };
        let at_small = union(small);
        let trimmed = union(large).trimmed(small).unwrap();
        println!(
            "s {s} seed {seed}: small {small}: {} ({} bytes); large {large} trimmed: {} ({} bytes)",
            recall(&at_small),
            at_small.encode().len(),
            recall(&trimmed),
            trimmed.encode().len()
        );
    }
}

#[test]
fn integer_and_other_keys_round_trip() {
    let mut s = TopK::new(20).unwrap();
    for v in [0i64, -1, 1, i64::MIN, i64::MAX, 300, -300] {
        s.add(&v.to_le_bytes(), INTEGER, 2).unwrap();
    }
    s.add(b"", TEXT, 1).unwrap();
    s.add(&[0, 1, 2], 3, 1).unwrap();
    s.add(b"Nabc", 5, 4).unwrap();
    s.add(b"-1.5", 6, 4).unwrap();
    let bytes = s.encode();
    assert_eq!(TopK::decode(&bytes).unwrap(), s);
    assert_eq!(TopK::parse_text(&s.to_text()).unwrap(), s);
    assert_eq!(s.bounds(&i64::MIN.to_le_bytes(), INTEGER).estimate, 2);
    assert_eq!(
        s.bounds(&7i64.to_le_bytes(), INTEGER),
        Bounds {
            estimate: 0,
            lower: 0,
            upper: 0
        }
    );
}

#[test]
fn bad_arguments_are_errors() {
    assert_eq!(TopK::new(0).unwrap_err().kind, ErrorKind::InvalidParameter);
    assert_eq!(
        TopK::new(i64::from(MAX_CAPACITY) + 1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    let mut s = TopK::new(3).unwrap();
    assert_eq!(
        s.add(b"a", TEXT, -1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    let long = vec![b'x'; MAX_KEY_BYTES + 1];
    assert_eq!(
        s.add(&long, TEXT, 1).unwrap_err().kind,
        ErrorKind::LimitExceeded
    );
    s.add(b"a", TEXT, i64::MAX).unwrap();
    assert_eq!(s.add(b"b", TEXT, 1).unwrap_err().kind, ErrorKind::Overflow);
    let other = s.clone_in(Arena::HEAP);
    assert_eq!(s.merged(&other).unwrap_err().kind, ErrorKind::Overflow);
    s.add(b"a", TEXT, 0).unwrap();
    assert_eq!(s.total(), i64::MAX as u64);
}

#[test]
fn decoder_refuses_forged_fields() {
    let mut s = TopK::new(4).unwrap();
    for (k, w) in [("a", 5), ("b", 3), ("c", 1)] {
        s.add(k.as_bytes(), TEXT, w).unwrap();
    }
    let good = s.encode();
    assert_eq!(
        good,
        [
            1, 4, 9, 0, 3, 5, 0, 10, b'a', 2, 0, 10, b'b', 2, 0, 10, b'c'
        ]
    );
    let refused = |bytes: &[u8], detail: &str| {
        let e = TopK::decode(bytes).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidBinary);
        let d = e.detail.unwrap();
        assert!(d.contains(detail), "{d:?} lacks {detail:?}");
    };
    let with = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        b
    };
    refused(&with(0, 2), "unknown format version 2");
    refused(&with(1, 0), "capacity 0");
    refused(&with(3, 10), "floor 10 exceeds the total 9");
    refused(&with(4, 5), "5 items exceed the capacity 4");
    refused(&with(9, 0), "add up");
    refused(&with(13, 3), "outside");
    refused(
        &[1, 4, 2, 0, 2, 1, 0, 10, b'b', 0, 0, 10, b'a'],
        "out of order",
    );
    refused(&[1, 4, 2, 0, 2, 1, 0, 10, b'a', 0, 0, 10, b'a'], "repeats");
    refused(&with(10, 6), "lower bound below 1");
    refused(&with(11, 0x0f), "unknown key tag 7");
    refused(&[1, 4, 1, 0, 1, 1, 0, 14, b' '], "not a number");
    refused(&good[..good.len() - 1], "truncated");
    refused(&[good.as_slice(), &[0]].concat(), "trailing");
    refused(&[1, 0x84, 0x00, 0, 0, 0], "shortest form");
    refused(&[1, 4, 2, 0, 1, 3, 0, 10, b'a'], "outside");
    refused(&[1, 4, 2, 0, 1, 2, 0, 10, 0], "NUL");
    refused(&[1, 4, 2, 0, 2, 2, 0, 10, b'a', 0, 0, 10, b'b'], "add up");
    refused(&[1, 4, 1, 0, 1, 1, 0, 9, 2], "no length");
    let text = TopK::parse_text("topk1:AQ==").unwrap_err();
    assert_eq!(text.kind, ErrorKind::InvalidText);
    assert_eq!(
        TopK::parse_text("cms1:AQ==").unwrap_err().kind,
        ErrorKind::InvalidText
    );
}

/// Keys drawn with P(rank r) ~ r^-s over `keys` keys (inverse CDF on a SplitMix64).
pub fn zipf_stream(events: usize, keys: usize, s: f64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(keys);
    let mut sum = 0.0;
    for r in 1..=keys {
        sum += (r as f64).powf(-s);
        cdf.push(sum);
    }
    let mut rng = SplitMix64(seed);
    (0..events)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * sum;
            cdf.partition_point(|&c| c < u).min(keys - 1) as u32
        })
        .collect()
}

/// On Zipf streams the true top 100 is found, single and merged from 50 partitions, and no
/// held estimate is off by more than the floor (the accuracy bench is
/// tests/bench/cms_vs_datasketches.sh; this keeps a regression from passing silently).
#[test]
fn zipf_top_keys_are_found_single_and_merged() {
    let events = zipf_stream(200_000, 20_000, 1.1, 7);
    let mut truth = vec![0u64; 20_000];
    let mut whole = TopK::new(500).unwrap();
    let mut parts: Vec<TopK> = (0..50).map(|_| TopK::new(500).unwrap()).collect();
    for (i, &k) in events.iter().enumerate() {
        truth[k as usize] += 1;
        whole.add(&key_of(k), TEXT, 1).unwrap();
        parts[i % 50].add(&key_of(k), TEXT, 1).unwrap();
    }
    let mut merged = TopK::new(500).unwrap();
    for p in &parts {
        merged.merge_from(p).unwrap();
    }
    let mut order: Vec<u32> = (0..20_000).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(truth[k as usize]));
    for s in [&whole, &merged] {
        let ranked: Vec<u32> = s.items()[..100]
            .iter()
            .map(|i| std::str::from_utf8(i.key).unwrap().parse().unwrap())
            .collect();
        let found = order[..100].iter().filter(|k| ranked.contains(k)).count();
        assert!(found >= 97, "recall {found}/100, floor {}", s.floor());
        let map: HashMap<u32, u64> = (0..20_000).map(|k| (k, truth[k as usize])).collect();
        check_bounds(s, &map, 20_000);
    }
}

/// Bytes, recall and errors on the bench's stream shape, for choosing capacities by hand:
/// `cargo test --lib ... -- --ignored zipf_report --nocapture` (TOPK_CAPACITIES, TOPK_S).
#[test]
#[ignore]
fn zipf_report() {
    let s: f64 = std::env::var("TOPK_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.1);
    let caps = std::env::var("TOPK_CAPACITIES").unwrap_or("1000,1500,2000".into());
    let events = zipf_stream(2_000_000, 200_000, s, 1);
    let mut truth = vec![0u64; 200_000];
    for &k in &events {
        truth[k as usize] += 1;
    }
    let mut order: Vec<u32> = (0..200_000).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(truth[k as usize]));
    for cap in caps.split(',').map(|c| c.parse::<i64>().unwrap()) {
        let mut whole = TopK::new(cap).unwrap();
        let mut parts: Vec<TopK> = (0..50).map(|_| TopK::new(cap).unwrap()).collect();
        for (i, &k) in events.iter().enumerate() {
            let key = key_of(k);
            whole.add(&key, TEXT, 1).unwrap();
            parts[i % 50].add(&key, TEXT, 1).unwrap();
        }
        let mut merged = TopK::new(cap).unwrap();
        for p in &parts {
            merged.merge_from(p).unwrap();
        }
        for (name, sk) in [("one", &whole), ("union", &merged)] {
            let ranked: Vec<u32> = sk
                .items()
                .iter()
                .map(|i| std::str::from_utf8(i.key).unwrap().parse().unwrap())
                .collect();
            let recall = |k: usize| {
                order[..k]
                    .iter()
                    .filter(|x| ranked[..k.min(ranked.len())].contains(x))
                    .count() as f64
                    / k as f64
            };
            for (label, pick) in [("upper", 0u8), ("lower", 1), ("mid", 2), ("mid0", 3)] {
                let errs: Vec<i64> = (0..200_000u32)
                    .filter(|&k| truth[k as usize] >= 100)
                    .map(|k| {
                        let b = sk.bounds(&key_of(k), TEXT);
                        let e = match pick {
                            0 => b.upper,
                            1 => b.lower,
                            3 if b.lower == 0 => 0,
                            _ => (b.lower + b.upper) / 2,
                        };
                        e as i64 - truth[k as usize] as i64
                    })
                    .collect();
                println!(
                    "    {label}: max {} mean {:.1} abs {:.1}",
                    errs.iter().max().unwrap(),
                    errs.iter().sum::<i64>() as f64 / errs.len() as f64,
                    errs.iter().map(|e| e.abs()).sum::<i64>() as f64 / errs.len() as f64
                );
            }
            let errs: Vec<i64> = (0..200_000u32)
                .filter(|&k| truth[k as usize] >= 100)
                .map(|k| sk.bounds(&key_of(k), TEXT).estimate as i64 - truth[k as usize] as i64)
                .collect();
            println!(
                "s {s} cap {cap} {name}: bytes {} top10 {:.2} top100 {:.2} err max {} mean {:.1} floor {}",
                sk.encode().len(),
                recall(10),
                recall(100),
                errs.iter().max().unwrap(),
                errs.iter().sum::<i64>() as f64 / errs.len() as f64,
                sk.floor()
            );
        }
    }
}
