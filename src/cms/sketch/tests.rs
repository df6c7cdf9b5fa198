use super::codec::base64_for_tests;
use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

// ---- helpers ---------------------------------------------------------------------------------

/// SplitMix64, the seeded generator of every random stream here.
pub(super) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Keys are decimal text, as a SQL text column of ids would give.
fn key(id: u32) -> Vec<u8> {
    id.to_string().into_bytes()
}

fn h(id: u32) -> u64 {
    hash_bytes(&key(id))
}

fn sketch(epsilon: f64, delta: f64, heavy: i64, mode: Mode) -> Sketch {
    Sketch::new(epsilon, delta, heavy, mode).unwrap()
}

fn feed(s: &mut Sketch, stream: &[(u32, i64)]) {
    for &(id, w) in stream {
        s.add(&key(id), 0, w).unwrap();
    }
}

fn truth_of(stream: &[(u32, i64)]) -> HashMap<u32, i64> {
    let mut truth = HashMap::new();
    for &(id, w) in stream {
        *truth.entry(id).or_insert(0) += w;
    }
    truth
}

/// Checks every bound the sketch promises against the true counts of keys `0..universe`:
/// estimates never below the truth, candidates within `[count − error, count]`, untracked keys
/// at most the floor, `guaranteed` top-k rows really above every key left out, and the index.
fn assert_sound(s: &Sketch, truth: &HashMap<u32, i64>, universe: u32) {
    s.heavy.check_index();
    let f = |id: u32| truth.get(&id).copied().unwrap_or(0);
    let tracked: HashMap<Vec<u8>, Candidate<'_>> = s
        .candidates()
        .into_iter()
        .map(|c| (c.key.to_vec(), c))
        .collect();
    for id in 0..universe {
        let true_count = f(id);
        assert!(
            s.estimate(h(id)) >= true_count,
            "key {id}: estimate {} below truth {true_count}",
            s.estimate(h(id))
        );
        let b = s.key_bounds(&key(id), 0);
        assert!(
            b.upper >= true_count && b.estimate == b.upper && b.lower <= b.upper,
            "key {id}: {b:?} vs {true_count}"
        );
        match tracked.get(&key(id)) {
            Some(c) => assert!(
                c.count - c.error <= true_count && true_count <= c.count,
                "candidate {id}: [{}, {}] misses {true_count}",
                c.count - c.error,
                c.count
            ),
            None => {
                if let Some(floor) = s.untracked_upper() {
                    assert!(
                        true_count <= floor,
                        "untracked {id}: {true_count} above floor {floor}"
                    );
                }
            }
        }
    }
    for k in [1, 3, 10] {
        let top = s.topk(k);
        let returned: Vec<u32> = top
            .iter()
            .map(|t| std::str::from_utf8(t.key).unwrap().parse().unwrap())
            .collect();
        let best_outside = (0..universe)
            .filter(|id| !returned.contains(id))
            .map(f)
            .max()
            .unwrap_or(0);
        for (item, id) in top.iter().zip(&returned) {
            if item.guaranteed {
                assert!(
                    f(*id) >= best_outside,
                    "top-{k} {id} flagged guaranteed with {} < {best_outside}",
                    f(*id)
                );
            }
            assert!(item.lower <= item.estimate && item.estimate == item.upper);
            assert!(
                f(*id) <= item.upper,
                "top-{k} {id} upper {} below truth {}",
                item.upper,
                f(*id)
            );
        }
    }
}

// ---- dimensions, hashing and the golden format --------------------------------------------

#[test]
fn dimensions_follow_the_formulas() {
    assert_eq!(dimensions(0.001, 0.01).unwrap(), (2719, 5));
    assert_eq!(dimensions(0.01, 0.05).unwrap(), (272, 3));
    assert_eq!(dimensions(0.005, 0.01).unwrap(), (544, 5));
    assert_eq!(dimensions(0.001, 0.001).unwrap(), (2719, 7));
    assert_eq!(dimensions(0.0001, 0.01).unwrap(), (27183, 5));
    assert_eq!(dimensions(0.999, 0.999).unwrap(), (3, 1));
    // delta = e^-5 sits on the boundary: in IEEE doubles delta·e·e·e·e·e stays just below 1,
    // so the depth is 6. The rule is exact arithmetic, so every platform agrees.
    assert_eq!(dimensions(0.5, (-5f64).exp()).unwrap().1, 6);
    assert_eq!(dimensions(0.5, 0.0068).unwrap().1, 5);
    assert_eq!(dimensions(0.5, 1e-300).unwrap().1, 691);
    assert_eq!(dimensions(0.5, f64::MIN_POSITIVE / 4.0).unwrap().1, 710);
    let s = Sketch::default();
    assert_eq!(
        (s.width(), s.depth(), s.heavy_capacity(), s.mode()),
        (2719, 5, 64, Mode::Linear)
    );
    assert!((s.epsilon_actual() - 0.000_999_735).abs() < 1e-9);
}

#[test]
fn bad_parameters_are_clear_errors() {
    for (epsilon, delta) in [
        (0.0, 0.01),
        (1.0, 0.01),
        (-0.1, 0.01),
        (f64::NAN, 0.01),
        (f64::INFINITY, 0.01),
        (0.01, 0.0),
        (0.01, 1.0),
        (0.01, f64::NAN),
    ] {
        let err = dimensions(epsilon, delta).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter, "{epsilon} {delta}");
        assert!(err.message.contains("between 0 and 1"), "{}", err.message);
    }
    // 64 MiB of i64 counters is 8,388,608 cells.
    let err = dimensions(1e-7, 0.01).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
    assert!(err.message.contains("64 MB"), "{}", err.message);
    assert!(dimensions(5e-320, 0.5).is_err()); // e/epsilon is infinite
    assert!(dimensions(E / 8_388_608.0, 0.5).is_ok()); // exactly the limit, one row
    assert!(dimensions(E / 8_388_608.0, 0.2).is_err()); // two rows
    assert_eq!(
        Sketch::new(0.01, 0.01, -1, Mode::Linear).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        Sketch::new(0.01, 0.01, 16_385, Mode::Linear)
            .unwrap_err()
            .kind,
        ErrorKind::InvalidParameter
    );
    assert!(Sketch::new(0.01, 0.01, 16_384, Mode::Linear).is_ok());
    assert_eq!(Mode::parse("Conservative").unwrap(), Mode::Conservative);
    assert_eq!(Mode::parse("LINEAR").unwrap(), Mode::Linear);
    assert_eq!(
        Mode::parse("cu").unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
}

#[test]
fn golden_row_columns() {
    // These pin the on-disk contract: changing them breaks every stored sketch.
    let columns = |hash: u64, width: u32| {
        (0..5)
            .map(|row| row_column(hash, row, width))
            .collect::<Vec<_>>()
    };
    // Cross-checked with an independent Python implementation of the documented formula.
    assert_eq!(
        columns(hash_bytes(b"a"), 2719),
        [2333, 1684, 36, 1076, 1557]
    );
    assert_eq!(
        columns(hash_bytes(b"42"), 2719),
        [389, 1207, 578, 2354, 779]
    );
    assert_eq!(columns(0, 2719), [2401, 1173, 71, 2639, 289]);
    assert_eq!(columns(u64::MAX, 3), [2, 2, 0, 1, 2]);
}

/// A version-1 encoding (every build before format version 2 wrote it): 6 x 1, 1-byte counters.
const GOLDEN_V1: &str = concat!(
    "010001",           // version 1, linear, 1-byte counters
    "000000000000e03f", // epsilon 0.5
    "000000000000e03f", // delta 0.5
    "06000000",
    "01000000",         // 6 x 1
    "02000000",         // heavy capacity 2
    "0600000000000000", // total 6
    "0100000000000000", // floor 1 ("b" was evicted by "c")
    "02000000",         // two candidates
    "000002000004",     // counters: "c" in column 2, "a" and "b" in column 5
    "01",
    "01000000",
    "61",
    "0300000000000000",
    "0000000000000000", // "a": 3, error 0
    "01",
    "01000000",
    "63",
    "0200000000000000",
    "0000000000000000", // "c": 2, error 0
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn golden_encoding() {
    let mut s = sketch(0.5, 0.5, 2, Mode::Linear); // 6 x 1
    s.add(b"a", 1, 3).unwrap();
    s.add(b"b", 1, 1).unwrap();
    s.add(b"c", 1, 2).unwrap();
    let bytes = s.encode();
    // Version 2: the same fields, then the counter section (no overflow entries here).
    let header_v1 = &GOLDEN_V1[..51 * 2];
    let rest_v1 = &GOLDEN_V1[51 * 2..];
    assert_eq!(
        hex(&bytes),
        format!("02{}00000000{rest_v1}", &header_v1[2..])
    );
    assert_eq!(s.to_text(), format!("cms1:{}", base64_for_tests(&bytes)));
    assert_eq!(Sketch::decode(&bytes).unwrap(), s);
    assert_eq!(Sketch::default().encode().len(), 55);
    // Version 1 still reads, to the same sketch, and point queries on it read the same counters.
    let v1 = unhex(GOLDEN_V1);
    assert_eq!(Sketch::decode(&v1).unwrap(), s);
    for id in 0..50 {
        assert_eq!(bounds_from_encoding(&v1, h(id), &mut 0), s.bounds(h(id)));
    }
    assert_eq!(header_total(&v1).unwrap(), 6);
    // An idle version-1 sketch is its 51-byte header alone.
    let mut idle_v1 = unhex(header_v1);
    idle_v1[2] = 0;
    idle_v1[31..51].fill(0);
    let idle = Sketch::decode(&idle_v1).unwrap();
    assert_eq!(idle, sketch(0.5, 0.5, 2, Mode::Linear));
    assert_eq!(bounds_from_encoding(&idle_v1, h(1), &mut 0).estimate, 0);
    // Version 1 cells hold any value of their size; there is no escape.
    let mut low = unhex(GOLDEN_V1);
    low[51..57].copy_from_slice(&[0x80, 0, 0, 0, 0, 0x80]); // -128 twice
    low[31..39].copy_from_slice(&(-256i64).to_le_bytes());
    low[39..47].fill(0);
    low[47..51].fill(0);
    low.truncate(57);
    let low = Sketch::decode(&low).unwrap();
    assert_eq!(low.total(), -256);
    assert_eq!(Sketch::decode(&low.encode()).unwrap(), low);
}

/// A default-shape sketch of 40,000 keys once each and "x" 1,000 times: 1-byte cells, too many
/// nonzero counters for a sparse section, and x's five cells escaped to the overflow list.
fn dense_with_overflow() -> Sketch {
    let mut s = Sketch::new(0.001, 0.01, 0, Mode::Linear).unwrap();
    for id in 0..40_000 {
        s.add(&key(id), 0, 1).unwrap();
    }
    s.add(b"x", 0, 1000).unwrap();
    assert_eq!(s.counter_form(), ("dense", 1, 5));
    s
}

#[test]
fn golden_sparse_and_overflow_forms() {
    // Sparse: 28 x 3, three keys. Each row: orders, bucket offsets, then Exp-Golomb codes.
    let mut s = sketch(0.1, 0.1, 0, Mode::Linear);
    s.add(b"a", 1, 3).unwrap();
    s.add(b"b", 1, 1).unwrap();
    s.add(b"c", 1, -2).unwrap();
    let bytes = s.encode();
    assert_eq!(s.counter_form(), ("sparse", 0, 0));
    assert_eq!(&hex(&bytes[..3]), "020080");
    assert_eq!(
        hex(&bytes[55..]),
        concat!(
            "030100001a00", // row 0: orders 3 and 1, codes at bits 0 to 26
            "02011a003100", // row 1: orders 2 and 1, bits 26 to 49
            "000031003b00", // row 2: orders 0 and 0, bits 49 to 59
            "49556a91396b6220",
        )
    );
    assert_eq!(Sketch::decode(&bytes).unwrap(), s);
    // Dense with an overflow list: x's cells hold the escape (-128), the list their counters.
    let s = dense_with_overflow();
    let bytes = s.encode();
    let cells = 2719 * 5;
    assert_eq!(bytes.len(), 55 + cells + 5 * 12);
    assert_eq!(
        hex(&bytes[55 + cells..]),
        concat!(
            "22090000f403000000000000", // cell 2338 (row 0): 1,012
            "9a110000f903000000000000", // cell 4506 (row 1): 1,017
            "97170000f203000000000000",
            "b8230000f703000000000000",
            "1e300000fa03000000000000", // cell 12318 (row 4): 1,018
        )
    );
    for row in 0..5 {
        let cell = row as usize * 2719 + row_column(hash_bytes(b"x"), row, 2719) as usize;
        assert_eq!(bytes[55 + cell], 0x80);
    }
    assert_eq!(Sketch::decode(&bytes).unwrap(), s);
}

/// The counter bytes of every form a sketch could be written in (dense ones only when their
/// overflow list is within bounds, sparse only within its limit and with at most half the
/// counters nonzero).
fn every_form_len(s: &Sketch) -> Vec<(String, usize)> {
    let cells = s.counters.len();
    let mut out = Vec::new();
    for bytes in [1u8, 2, 4] {
        let limit = (1u64 << (8 * bytes - 1)) - 1;
        let overflow = s
            .counters
            .iter()
            .filter(|c| c.unsigned_abs() > limit)
            .count();
        let mut raw = Vec::new();
        layout::write_dense(&s.counters, bytes, &mut raw);
        assert_eq!(raw.len(), cells * bytes as usize + 12 * overflow);
        if overflow <= 128 {
            out.push((format!("dense {bytes}"), raw.len()));
        }
    }
    out.push(("dense 8".into(), cells * 8));
    let nonzero = s.counters.iter().filter(|&&c| c != 0).count();
    if let Some(section) = layout::encode_sparse(&s.counters, s.width)
        && section.len() <= 8192
        && nonzero * 2 <= cells
    {
        out.push(("sparse".into(), section.len()));
    }
    out
}

#[test]
fn counter_form_is_the_smallest() {
    let mut rng = SplitMix64(7);
    let mut seen = std::collections::BTreeSet::new();
    for case in 0..300 {
        let epsilon = [0.5, 0.1, 0.01, 0.003][case % 4];
        let mut s = sketch(epsilon, 0.05, 0, Mode::Linear);
        let keys = [0u64, 3, 30, 300, 3000, 30_000][rng.below(6) as usize];
        let magnitude = [1u64, 10, 200, 40_000, 1 << 33][rng.below(5) as usize];
        for _ in 0..keys {
            let weight = 1 + rng.below(magnitude) as i64;
            let weight = if rng.below(8) == 0 { -weight } else { weight };
            s.add(&key(rng.below(keys * 2) as u32), 0, weight).unwrap();
        }
        if rng.below(3) == 0 {
            s.add(
                b"heavy",
                0,
                [1000i64, 100_000, 1 << 40][rng.below(3) as usize],
            )
            .unwrap();
        }
        let bytes = s.encode();
        let (name, cell_bytes, overflow) = s.counter_form();
        let stored = bytes.len() - 55;
        let smallest = every_form_len(&s)
            .iter()
            .map(|(_, len)| *len)
            .min()
            .unwrap();
        if name == "zero" {
            assert!(s.counters.iter().all(|&c| c == 0));
            assert_eq!(stored, 0);
        } else {
            assert_eq!(
                stored, smallest,
                "case {case}: {name} {cell_bytes} {overflow}"
            );
        }
        seen.insert(format!("{name} {cell_bytes} {}", overflow > 0));
        assert_eq!(Sketch::decode(&bytes).unwrap(), s);
    }
    for form in [
        "zero 0 false",
        "sparse 0 false",
        "dense 1 false",
        "dense 1 true",
        "dense 2 true",
        "dense 4 false",
        "dense 8 false",
    ] {
        assert!(seen.contains(form), "{form} never chosen: {seen:?}");
    }
}

// ---- estimates and bounds ------------------------------------------------------------------

#[test]
fn estimates_and_bounds() {
    let mut s = Sketch::default();
    s.add(b"x", 0, 5).unwrap();
    s.add(b"y", 0, 2).unwrap();
    assert_eq!(s.total(), 7);
    assert_eq!(s.estimate(hash_bytes(b"x")), 5);
    assert_eq!(
        s.bounds(hash_bytes(b"x")),
        Bounds {
            estimate: 5,
            lower: 4,
            upper: 5
        }
    );
    assert_eq!(s.error_bound(), 1);
    assert!(s.exceeds(hash_bytes(b"x"), 4) && !s.exceeds(hash_bytes(b"x"), 5));
    assert!(s.exceeds_certainly(hash_bytes(b"x"), 3) && !s.exceeds_certainly(hash_bytes(b"x"), 4));
    assert_eq!(
        s.key_bounds(b"x", 0),
        Bounds {
            estimate: 5,
            lower: 5,
            upper: 5
        }
    );
    assert_eq!(
        s.key_bounds(b"zz", 0),
        Bounds {
            estimate: 0,
            lower: 0,
            upper: 0
        }
    );
    assert_eq!(
        s.key_bounds(b"x", 7).upper,
        0,
        "the tag is part of the key in the list"
    );
    // ⌈N·e/2719⌉ at N = 10^6 is 1000.
    let mut big = Sketch::default();
    big.add_hash_unchecked_for_tests(1_000_000);
    assert_eq!(big.error_bound(), 1000);
    assert_eq!(Sketch::default().error_bound(), 0);
}

impl Sketch {
    /// Adds weight to N and to one counter per row, as one key would (tests only).
    fn add_hash_unchecked_for_tests(&mut self, weight: i64) {
        self.update_counters(12345, weight).unwrap();
    }
}

#[test]
fn add_hash_needs_a_sketch_without_list() {
    let mut s = Sketch::default();
    assert_eq!(
        s.add_hash(1, 1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    let mut plain = sketch(0.001, 0.01, 0, Mode::Linear);
    plain.add_hash(hash_bytes(b"k"), 3).unwrap();
    let mut by_key = sketch(0.001, 0.01, 0, Mode::Linear);
    by_key.add(b"k", 9, 3).unwrap();
    assert_eq!(plain, by_key);
    assert_eq!(plain.untracked_upper(), None);
    assert!(plain.topk(5).is_empty());
}

#[test]
fn long_keys_are_kept_whole_or_refused() {
    let mut s = Sketch::default();
    let long = vec![b'x'; MAX_KEY_BYTES];
    s.add(&long, 0, 2).unwrap();
    assert_eq!(s.topk(1)[0].key, long.as_slice());
    let err = s.add(&vec![b'x'; MAX_KEY_BYTES + 1], 0, 1).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    assert_eq!(s.total(), 2, "a refused key changes nothing");
    let mut no_list = sketch(0.01, 0.01, 0, Mode::Linear);
    no_list.add(&vec![b'x'; 1 << 20], 0, 1).unwrap();
    assert_eq!(Sketch::decode(&s.encode()).unwrap(), s);
}

#[test]
fn overflow_is_an_error_and_changes_nothing() {
    for mode in [Mode::Linear, Mode::Conservative] {
        let mut s = sketch(0.1, 0.1, 4, mode);
        s.add(b"a", 0, i64::MAX - 1).unwrap();
        let before = s.clone();
        assert_eq!(s.add(b"a", 0, 2).unwrap_err().kind, ErrorKind::Overflow);
        assert_eq!(s.add(b"b", 0, 2).unwrap_err().kind, ErrorKind::Overflow); // the total
        assert_eq!(s, before);
        assert_eq!(s.merge(&before).unwrap_err().kind, ErrorKind::Overflow);
        assert_eq!(s, before);
    }
    // A counter can overflow while the total does not, with negative weights elsewhere.
    let mut s = sketch(0.5, 0.5, 0, Mode::Linear);
    let other = (0..100u32)
        .find(|&id| row_column(h(id), 0, 6) != row_column(hash_bytes(b"a"), 0, 6))
        .unwrap();
    s.add(&key(other), 0, -10).unwrap();
    s.add(b"a", 0, i64::MAX).unwrap();
    let before = s.clone();
    assert_eq!(s.add(b"a", 0, 5).unwrap_err().kind, ErrorKind::Overflow);
    assert_eq!(s, before);
    let mut low = sketch(0.5, 0.5, 0, Mode::Linear);
    low.add(b"a", 0, i64::MIN).unwrap();
    assert_eq!(low.add(b"a", 0, -1).unwrap_err().kind, ErrorKind::Overflow);
    let mut one = sketch(0.5, 0.5, 0, Mode::Linear);
    one.add(b"a", 0, 1).unwrap();
    assert_eq!(low.subtract(&one).unwrap_err().kind, ErrorKind::Overflow);
}

#[test]
fn mode_rules() {
    let mut cu = sketch(0.01, 0.01, 8, Mode::Conservative);
    assert_eq!(
        cu.add(b"a", 0, -1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    cu.add(b"a", 0, 3).unwrap();
    assert_eq!(
        cu.subtract(&cu.clone()).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    // A sketch that counted nothing is neutral whatever its shape (zero-row aggregates)...
    let untouched = sketch(0.1, 0.2, 3, Mode::Linear);
    assert!(untouched.is_untouched());
    assert_eq!(cu.merge(&untouched).unwrap(), cu);
    assert_eq!(untouched.merge(&cu).unwrap(), cu);
    assert_eq!(
        cu.subtract(&untouched.clone()).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    // ...one that counted something merges only with its own shape and mode.
    let mut linear = sketch(0.01, 0.01, 8, Mode::Linear);
    linear.add(b"b", 0, 1).unwrap();
    let err = cu.merge(&linear).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
    assert!(
        err.message.contains("272x5 conservative and 272x5 linear"),
        "{}",
        err.message
    );
    let mut default_shape = Sketch::default();
    default_shape.add(b"c", 0, 1).unwrap();
    let err = linear.merge(&default_shape).unwrap_err();
    assert!(
        err.message.contains("272x5 linear and 2719x5 linear"),
        "{}",
        err.message
    );
    // Same dimensions from slightly different parameters merge; the smaller ones are kept.
    let mut a = sketch(0.01, 0.01, 8, Mode::Linear);
    a.add(b"a", 0, 1).unwrap();
    let mut b = sketch(0.009999, 0.009, 16, Mode::Linear);
    b.add(b"b", 0, 1).unwrap();
    a.merge_from(&b).unwrap();
    assert_eq!(
        (a.epsilon(), a.delta(), a.heavy_capacity()),
        (0.009999, 0.009, 16)
    );
    assert_eq!(Sketch::decode(&a.encode()).unwrap(), a);
}

#[test]
fn conservative_with_collisions_never_undercounts() {
    // Two keys sharing every counter: conservative still never undercounts.
    let mut s = sketch(0.999, 0.999, 0, Mode::Conservative); // 3 x 1
    let mut truth = HashMap::new();
    let mut rng = SplitMix64(7);
    for _ in 0..1000 {
        let id = rng.below(20) as u32;
        let w = 1 + rng.below(5) as i64;
        s.add(&key(id), 0, w).unwrap();
        *truth.entry(id).or_insert(0) += w;
    }
    assert_sound(&s, &truth, 20);
}

// ---- heavy hitters ---------------------------------------------------------------------------

#[test]
fn topk_on_a_small_stream_is_exact_and_guaranteed() {
    let mut s = Sketch::default();
    for (id, w) in [(1, 50), (2, 40), (3, 30), (4, 20), (5, 10)] {
        for _ in 0..w {
            s.add(&key(id), 0, 1).unwrap();
        }
    }
    let top = s.topk(3);
    let keys: Vec<&[u8]> = top.iter().map(|t| t.key).collect();
    assert_eq!(keys, [b"1".as_slice(), b"2", b"3"]);
    assert!(top.iter().all(|t| t.guaranteed && t.lower == t.upper));
    assert_eq!(top[0].estimate, 50);
    assert_eq!(s.topk(0), []);
    assert_eq!(s.topk(100).len(), 5);
    assert_eq!(s.ranked().len(), 5);
}

#[test]
fn full_list_keeps_the_heavy_keys() {
    // Capacity 4; keys 0..4 heavy, a long tail of single events in between.
    let mut s = sketch(0.001, 0.01, 4, Mode::Linear);
    let mut stream = Vec::new();
    for round in 0..200u32 {
        for id in 0..4 {
            stream.push((id, 1));
        }
        stream.push((1000 + round, 1));
    }
    feed(&mut s, &stream);
    let truth = truth_of(&stream);
    assert_sound(&s, &truth, 1200);
    let mut top: Vec<&[u8]> = s.topk(4).iter().map(|t| t.key).collect();
    top.sort();
    assert_eq!(top, [b"0".as_slice(), b"1", b"2", b"3"]);
    assert!(s.topk(4).iter().all(|t| t.guaranteed));
}

#[test]
fn negative_weights_keep_the_list_sound() {
    let mut s = sketch(0.05, 0.1, 3, Mode::Linear);
    let mut stream = vec![
        (1, 10),
        (2, 8),
        (3, 6),
        (4, 4),
        (5, 2),
        (1, -10),
        (3, -1),
        (6, 3),
    ];
    feed(&mut s, &stream);
    let truth = truth_of(&stream);
    assert_sound(&s, &truth, 10);
    assert!(
        s.candidates().iter().all(|c| c.key != b"1"),
        "a candidate at count 0 is dropped"
    );
    stream.push((2, -8));
    s.add(b"2", 0, -8).unwrap();
    assert_sound(&s, &truth_of(&stream), 10);
}

#[test]
fn bursts_and_steady_keys_survive_a_60_way_union() {
    // The shape of the research note's merge test (§B.4.3): each partition has Zipf traffic,
    // 10 partition-local bursts of 100 and 5 steady keys of 75 that are never a local top 10
    // but are in the global top 10.
    let mut rng = SplitMix64(2024);
    let zipf = Zipf::new(100_000, 1.1);
    let mut union: Option<Sketch> = None;
    let mut stream = Vec::new();
    for part in 0..60u32 {
        let mut events = Vec::new();
        for _ in 0..5000 {
            events.push((zipf.sample(&mut rng), 1));
        }
        for b in 0..10 {
            events.push((1_000_000 + part * 10 + b, 100));
        }
        for steady in 0..5 {
            events.push((2_000_000 + steady, 75));
        }
        let mut s = Sketch::default();
        feed(&mut s, &events);
        stream.extend(events);
        match &mut union {
            None => union = Some(s),
            Some(u) => u.merge_from(&s).unwrap(),
        }
    }
    let union = union.unwrap();
    let truth = truth_of(&stream);
    let mut counts: Vec<i64> = truth.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let tenth = counts[9];
    let top = union.topk(10);
    for item in &top {
        let id: u32 = std::str::from_utf8(item.key).unwrap().parse().unwrap();
        assert!(
            truth[&id] >= tenth,
            "{id} with {} is not in the top 10 (10th: {tenth})",
            truth[&id]
        );
    }
    // Some steady keys tie for the last places of the true top 10; they must be there.
    let steady_in_truth = (0..5).filter(|&k| truth[&(2_000_000 + k)] >= tenth).count();
    let steady_returned = top.iter().filter(|t| t.key.starts_with(b"200000")).count();
    assert!(steady_in_truth > 0);
    assert_eq!(
        steady_returned,
        steady_in_truth.min(10 - counts.iter().filter(|&&c| c > 4500).count())
    );
}

#[test]
fn sliding_window_by_add_and_subtract() {
    // 40 minutes; popularity drifts, so the window's top keys change. The window of the last 10
    // minutes is kept as the moving aggregate would: add the new minute, subtract the oldest.
    let zipf = Zipf::new(200, 1.2);
    let minute_stream = |minute: u32| {
        let mut rng = SplitMix64(u64::from(minute));
        (0..400)
            .map(|_| ((zipf.sample(&mut rng) + minute * 3) % 200, 1))
            .collect::<Vec<_>>()
    };
    let minutes: Vec<(Vec<(u32, i64)>, Sketch)> = (0..40)
        .map(|m| {
            let events = minute_stream(m);
            let mut s = sketch(0.01, 0.01, 16, Mode::Linear);
            feed(&mut s, &events);
            (events, s)
        })
        .collect();
    let mut window = sketch(0.01, 0.01, 16, Mode::Linear);
    for now in 0..40usize {
        window.merge_from(&minutes[now].1).unwrap();
        if now >= 10 {
            window.subtract_from(&minutes[now - 10].1).unwrap();
        }
        let from = now.saturating_sub(9);
        let events: Vec<(u32, i64)> = minutes[from..=now]
            .iter()
            .flat_map(|(e, _)| e.iter().copied())
            .collect();
        let truth = truth_of(&events);
        assert_sound(&window, &truth, 200);
        let mut fresh = sketch(0.01, 0.01, 16, Mode::Linear);
        for (_, s) in &minutes[from..=now] {
            fresh.merge_from(s).unwrap();
        }
        assert_eq!(window.counters, fresh.counters, "minute {now}");
        // The window's top 3 is found despite the subtractions, up to the sketch's error: a
        // returned key is at most ⌈ε'N⌉ below the true third.
        let mut counts: Vec<i64> = truth.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        for item in window.topk(3) {
            let id: u32 = std::str::from_utf8(item.key).unwrap().parse().unwrap();
            let slack = window.error_bound();
            assert!(
                truth[&id] + slack >= counts[2],
                "minute {now}: {id} has {} + {slack} < {}",
                truth[&id],
                counts[2]
            );
        }
    }
}

#[test]
fn sketches_of_different_capacities_merge_soundly() {
    let mut rng = SplitMix64(5);
    let stream: Vec<(u32, i64)> = (0..600)
        .map(|_| ((rng.below(30) as u32).min(rng.below(30) as u32), 1))
        .collect();
    let (a, b) = stream.split_at(300);
    for (heavy_a, heavy_b) in [(0, 4), (4, 0), (2, 8), (8, 2)] {
        let merged = built(a, heavy_a, Mode::Linear)
            .merge(&built(b, heavy_b, Mode::Linear))
            .unwrap();
        assert_eq!(merged.heavy_capacity(), heavy_a.max(heavy_b) as u32);
        assert_sound(&merged, &truth_of(&stream), 30);
        assert_eq!(Sketch::decode(&merged.encode()).unwrap(), merged);
    }
}

// ---- the Zipf stream -------------------------------------------------------------------------

/// Zipf(s) over ranks 0..n by inverse CDF.
pub(super) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u32, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / f64::from(rank).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf { cdf }
    }
    pub fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let u = rng.next_f64();
        self.cdf
            .partition_point(|&p| p <= u)
            .min(self.cdf.len() - 1) as u32
    }
}

/// What the Zipf run measured.
struct ZipfFigures {
    events: usize,
    epsilon_n: f64,
    max_over: i64,
    mean_over: f64,
    share_over_epsilon_n: f64,
    recall_one: usize,
    recall_union: usize,
    guaranteed_one: usize,
    guaranteed_union: usize,
    max_over_conservative: i64,
    /// `(epsilon, delta, share of keys over truth + epsilon·N)` for narrower sketches, where
    /// the share is not simply zero.
    narrow: Vec<(f64, f64, f64)>,
}

/// Tie-aware recall: how many of the returned keys have a true count ≥ the true 10th count.
fn top10_hits(top: &[TopItem<'_>], truth: &[i64], tenth: i64) -> usize {
    top.iter()
        .filter(|t| {
            let id: usize = std::str::from_utf8(t.key).unwrap().parse().unwrap();
            truth[id] >= tenth
        })
        .count()
}

fn zipf_run(events: usize, keys: u32, parts: usize, seed: u64) -> ZipfFigures {
    let zipf = Zipf::new(keys, 1.1);
    let mut rng = SplitMix64(seed);
    let stream: Vec<u32> = (0..events).map(|_| zipf.sample(&mut rng)).collect();
    let mut truth = vec![0i64; keys as usize];
    for &id in &stream {
        truth[id as usize] += 1;
    }
    let key_bytes: Vec<Vec<u8>> = (0..keys).map(key).collect();

    let mut one = Sketch::default();
    let mut conservative = sketch(DEFAULT_EPSILON, DEFAULT_DELTA, 64, Mode::Conservative);
    for &id in &stream {
        one.add(&key_bytes[id as usize], 0, 1).unwrap();
        conservative.add(&key_bytes[id as usize], 0, 1).unwrap();
    }
    let part_len = events.div_ceil(parts);
    let mut union = Sketch::default();
    for chunk in stream.chunks(part_len) {
        let mut part = Sketch::default();
        for &id in chunk {
            part.add(&key_bytes[id as usize], 0, 1).unwrap();
        }
        union.merge_from(&part).unwrap();
    }
    assert_eq!(
        union.counters, one.counters,
        "the union's counters equal the whole stream's"
    );
    assert_eq!(union.total(), events as i64);

    let epsilon_n = DEFAULT_EPSILON * events as f64;
    let (mut max_over, mut sum_over, mut over_epsilon_n, mut max_over_conservative) =
        (0, 0i64, 0usize, 0);
    for id in 0..keys {
        let hash = hash_bytes(&key_bytes[id as usize]);
        let over = one.estimate(hash) - truth[id as usize];
        assert!(over >= 0, "key {id} undercounted by {}", -over);
        let over_cu = conservative.estimate(hash) - truth[id as usize];
        assert!(
            over_cu >= 0,
            "conservative: key {id} undercounted by {}",
            -over_cu
        );
        assert!(
            over_cu <= over,
            "conservative update never estimates above linear on one stream"
        );
        max_over = max_over.max(over);
        max_over_conservative = max_over_conservative.max(over_cu);
        sum_over += over;
        if over as f64 > epsilon_n {
            over_epsilon_n += 1;
        }
    }
    let narrow = [(0.01, 0.5), (0.01, 0.1), (0.002, 0.05)]
        .into_iter()
        .map(|(epsilon, delta)| {
            let mut s = sketch(epsilon, delta, 0, Mode::Linear);
            for &id in &stream {
                s.add(&key_bytes[id as usize], 0, 1).unwrap();
            }
            let over = (0..keys)
                .filter(|&id| {
                    let excess =
                        s.estimate(hash_bytes(&key_bytes[id as usize])) - truth[id as usize];
                    assert!(excess >= 0);
                    excess as f64 > epsilon * events as f64
                })
                .count();
            (epsilon, delta, over as f64 / f64::from(keys))
        })
        .collect();
    let mut sorted = truth.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let tenth = sorted[9];
    let top_one = one.topk(10);
    let top_union = union.topk(10);
    ZipfFigures {
        events,
        epsilon_n,
        max_over,
        mean_over: sum_over as f64 / f64::from(keys),
        share_over_epsilon_n: over_epsilon_n as f64 / f64::from(keys),
        recall_one: top10_hits(&top_one, &truth, tenth),
        recall_union: top10_hits(&top_union, &truth, tenth),
        guaranteed_one: top_one.iter().filter(|t| t.guaranteed).count(),
        guaranteed_union: top_union.iter().filter(|t| t.guaranteed).count(),
        max_over_conservative,
        narrow,
    }
}

fn check_zipf(f: &ZipfFigures) {
    println!(
        "zipf: {} events, epsilon·N {}: max overestimate {} (conservative {}), mean {:.2}, share over epsilon·N {}; \
         top-10 recall {}/10 one sketch ({} guaranteed), {}/10 union of 60 ({} guaranteed)",
        f.events,
        f.epsilon_n,
        f.max_over,
        f.max_over_conservative,
        f.mean_over,
        f.share_over_epsilon_n,
        f.recall_one,
        f.guaranteed_one,
        f.recall_union,
        f.guaranteed_union
    );
    assert!(f.share_over_epsilon_n <= DEFAULT_DELTA);
    assert!(
        f.max_over as f64 <= f.epsilon_n,
        "no default-size estimate should miss by epsilon·N here"
    );
    for &(epsilon, delta, share) in &f.narrow {
        println!("zipf:   epsilon {epsilon}, delta {delta}: share over epsilon·N {share}");
        assert!(share <= delta, "epsilon {epsilon}, delta {delta}: {share}");
    }
    assert_eq!(f.recall_one, 10);
    assert_eq!(f.recall_union, 10);
}

/// A fifth of the stream, so that debug runs stay quick; the full one is below.
#[test]
fn zipf_200k_events() {
    check_zipf(&zipf_run(200_000, 100_000, 60, 1));
}

/// The proof: 1,000,000 Zipf events over 100,000 keys, one sketch and a 60-way union.
/// `cargo test --release -- --ignored zipf_1m --nocapture`
#[test]
#[ignore]
fn zipf_1m_events() {
    for seed in 1..=3 {
        check_zipf(&zipf_run(1_000_000, 100_000, 60, seed));
    }
}

// ---- text form -------------------------------------------------------------------------------

#[test]
fn text_form_is_strict() {
    let mut s = sketch(0.1, 0.1, 4, Mode::Conservative);
    s.add(b"hello", 3, 4).unwrap();
    let text = s.to_text();
    assert!(text.starts_with("cms1:"));
    assert_eq!(Sketch::parse_text(&text).unwrap(), s);
    let body = &text[5..];
    for bad in [
        String::new(),
        "cms1:".to_string(),
        format!("CMS1:{body}"),
        format!("cms2:{body}"),
        format!(" {text}"),
        format!("{text} "),
        format!("{text}\n"),
        format!("cms1: {body}"),
        format!("{text}="),
        format!("{text}AAAA"),
        format!("cms1:{}", &body[..body.len() - 1]),
        format!("cms1:{}", body.replace('A', "-")),
        "cms1:AA=A".to_string(),
        "cms1:A===".to_string(),
        "cms1:AB==".to_string(), // unused bits set
        "cms1:AQ==AQ==".to_string(),
        "é".to_string(),
    ] {
        let err = Sketch::parse_text(&bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidText, "{bad:?}");
        assert!(
            err.message.starts_with("invalid input syntax for type cms"),
            "{}",
            err.message
        );
    }
    let err = Sketch::parse_text(&format!("cms1:{}", base64_for_tests(&[1, 9]))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidText);
    assert!(err.detail.unwrap().contains("header"));
}

// ---- binary decoder ------------------------------------------------------------------------

fn sample_sketch() -> Sketch {
    let mut s = sketch(0.3, 0.2, 3, Mode::Linear); // 10 x 2
    for (id, w) in [(1, 300), (2, 5), (3, 2), (4, 1), (5, 7)] {
        s.add(&key(id), 2, w).unwrap();
    }
    s
}

#[test]
fn decoder_refuses_every_broken_field() {
    let s = sample_sketch();
    let good = s.encode();
    assert_eq!(s.counter_form().0, "sparse");
    assert_eq!(Sketch::decode(&good).unwrap(), s);
    for len in 0..good.len() {
        assert_eq!(
            Sketch::decode(&good[..len]).unwrap_err().kind,
            ErrorKind::InvalidBinary,
            "truncated to {len}"
        );
    }
    let mutated_in = |base: &[u8], at: usize, bytes: &[u8]| {
        let mut b = base.to_vec();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        Sketch::decode(&b).unwrap_err()
    };
    let mutated = |at: usize, bytes: &[u8]| mutated_in(&good, at, bytes);
    let detail = |e: Error| e.detail.unwrap();
    assert!(detail(mutated(0, &[3])).contains("version"));
    assert!(detail(mutated(1, &[2])).contains("mode"));
    assert!(detail(mutated(2, &[3])).contains("counter size"));
    assert!(detail(mutated(2, &[8])).contains("counter section"));
    assert!(detail(mutated(3, &0.31f64.to_le_bytes())).contains("do not follow"));
    assert!(detail(mutated(3, &f64::NAN.to_le_bytes())).contains("epsilon"));
    assert!(detail(mutated(11, &1.5f64.to_le_bytes())).contains("delta"));
    assert!(detail(mutated(19, &11u32.to_le_bytes())).contains("do not follow"));
    assert!(detail(mutated(27, &16_385u32.to_le_bytes())).contains("capacity"));
    assert!(detail(mutated(27, &1u32.to_le_bytes())).contains("exceed"));
    assert!(detail(mutated(31, &316i64.to_le_bytes())).contains("sums"));
    assert!(detail(mutated(39, &(-1i64).to_le_bytes())).contains("floor"));
    assert!(detail(mutated(39, &316i64.to_le_bytes())).contains("floor"));
    assert!(detail(mutated(47, &4u32.to_le_bytes())).contains("exceed"));
    assert!(detail(mutated(47, &2u32.to_le_bytes())).contains("trailing"));
    assert!(detail(mutated(51, &9000u32.to_le_bytes())).contains("counter section"));
    assert!(detail(mutated(51, &12u32.to_le_bytes())).contains("counter section"));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(detail(Sketch::decode(&trailing).unwrap_err()).contains("trailing"));

    // The sparse section: bucket offsets out of place, codes that do not add up.
    let section = 55;
    assert!(detail(mutated(section + 2, &[1, 0])).contains("bits"));
    assert!(detail(mutated(section + 4, &[0xff, 0xff])).contains("bits"));
    let codes = section + 12;
    let sparse_errors: Vec<String> = (0..8u8)
        .map(|bit| {
            let mut b = good.clone();
            b[codes] ^= 0x80 >> bit;
            detail(Sketch::decode(&b).unwrap_err())
        })
        .collect();
    assert!(
        sparse_errors
            .iter()
            .all(|e| e.contains("row") || e.contains("sums") || e.contains("canonical")),
        "{sparse_errors:?}"
    );
    // Orders other than the encoder's are not canonical.
    assert!(
        detail(mutated(section, &[9])).contains("canonical")
            || detail(mutated(section, &[9])).contains("row")
    );

    // Counters stored wider than needed are not canonical.
    let small = sketch(0.5, 0.5, 0, Mode::Linear);
    let mut wide = small.encode();
    wide[2] = 1;
    wide.extend_from_slice(&[0; 6]);
    assert!(detail(Sketch::decode(&wide).unwrap_err()).contains("not canonical"));

    // The overflow list: every escaped cell has its entry, in order, too large for a cell.
    let dense = dense_with_overflow().encode();
    let list = 55 + 2719 * 5;
    let (first_cell, _) = layout::read_overflow_entry(&dense[list..]);
    let escaped = 55 + first_cell as usize;
    assert!(detail(mutated_in(&dense, escaped, &[5])).contains("escaped"));
    assert!(detail(mutated_in(&dense, 55 + 7, &[0x80])).contains("escaped"));
    assert!(
        detail(mutated_in(&dense, list, &(first_cell + 1).to_le_bytes())).contains("names cell")
    );
    assert!(detail(mutated_in(&dense, list + 4, &100i64.to_le_bytes())).contains("fits"));
    assert!(detail(mutated_in(&dense, 51, &4u32.to_le_bytes())).contains("escaped"));
    assert!(detail(mutated_in(&dense, 51, &129u32.to_le_bytes())).contains("counter section"));
    // 2-byte cells where 1-byte ones with the same list would do are not canonical.
    let mut two = Sketch::new(0.001, 0.01, 0, Mode::Linear).unwrap();
    two.add(b"x", 0, 1000).unwrap();
    let mut forged = two.encode()[..55].to_vec();
    forged[2] = 2;
    forged[51..55].fill(0);
    let mut cells = vec![0u8; 2719 * 5 * 2];
    for row in 0..5 {
        let cell = row as usize * 2719 + row_column(hash_bytes(b"x"), row, 2719) as usize;
        cells[2 * cell..2 * cell + 2].copy_from_slice(&1000i16.to_le_bytes());
    }
    forged.extend_from_slice(&cells);
    assert!(detail(Sketch::decode(&forged).unwrap_err()).contains("not canonical"));

    // Candidates: order, counts, errors, key length.
    let candidates_at = good.len()
        - s.candidates()
            .iter()
            .map(|c| 21 + c.key.len())
            .sum::<usize>();
    let first_count = candidates_at + 1 + 4 + 1;
    assert!(detail(mutated(first_count, &0i64.to_le_bytes())).contains("count 0"));
    assert!(detail(mutated(first_count + 8, &(-1i64).to_le_bytes())).contains("error -1"));
    assert!(detail(mutated(first_count + 8, &i64::MAX.to_le_bytes())).contains("error"));
    assert!(detail(mutated(candidates_at + 1, &16_385u32.to_le_bytes())).contains("key of 16385"));
    assert!(detail(mutated(candidates_at + 1, &1000u32.to_le_bytes())).contains("truncated"));
    let second_key = candidates_at + 21 + 1 + 1 + 4;
    assert!(detail(mutated(second_key, b"0")).contains("ascending"));

    // A conservative sketch must not hold negative counters or a negative total.
    let mut cu = sketch(0.5, 0.5, 0, Mode::Conservative);
    cu.add(b"a", 0, 5).unwrap();
    let mut forged = cu.encode();
    forged[31..39].copy_from_slice(&(-5i64).to_le_bytes());
    assert!(detail(Sketch::decode(&forged).unwrap_err()).contains("negative total"));
}

// ---- properties ------------------------------------------------------------------------------

/// A stream over a small universe, so that small sketches see collisions and evictions.
fn stream_strategy(universe: u32, max_len: usize) -> impl Strategy<Value = Vec<(u32, i64)>> {
    prop::collection::vec(
        (0..universe, prop_oneof![4 => Just(1i64), 1 => 1i64..50]),
        0..max_len,
    )
}

/// A linear strict-turnstile stream: positive events, then deletions of some of them.
fn turnstile_strategy(universe: u32) -> impl Strategy<Value = Vec<(u32, i64)>> {
    (
        stream_strategy(universe, 120),
        prop::collection::vec(any::<prop::sample::Index>(), 0..60),
    )
        .prop_map(|(mut stream, picks)| {
            let positives = stream.clone();
            if !positives.is_empty() {
                for pick in picks {
                    let (id, w) = positives[pick.index(positives.len())];
                    let left: i64 = stream
                        .iter()
                        .filter(|(k, _)| *k == id)
                        .map(|(_, w)| w)
                        .sum();
                    if left >= w {
                        stream.push((id, -w));
                    }
                }
            }
            stream
        })
}

const UNIVERSE: u32 = 40;

fn small(heavy: i64, mode: Mode) -> Sketch {
    sketch(0.1, 0.1, heavy, mode) // 28 x 3
}

fn built(stream: &[(u32, i64)], heavy: i64, mode: Mode) -> Sketch {
    let mut s = small(heavy, mode);
    feed(&mut s, stream);
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_laws(a in stream_strategy(UNIVERSE, 80), b in stream_strategy(UNIVERSE, 80), c in stream_strategy(UNIVERSE, 80),
                  heavy in 0i64..6, conservative in any::<bool>()) {
        let mode = if conservative { Mode::Conservative } else { Mode::Linear };
        let (sa, sb, sc) = (built(&a, heavy, mode), built(&b, heavy, mode), built(&c, heavy, mode));
        // Commutative, whole state included.
        prop_assert_eq!(sa.merge(&sb).unwrap(), sb.merge(&sa).unwrap());
        prop_assert_eq!(sa.merge(&sb).unwrap().encode(), sb.merge(&sa).unwrap().encode());
        // Associative on the counters and N; the lists may differ but stay sound.
        let left = sa.merge(&sb).unwrap().merge(&sc).unwrap();
        let right = sa.merge(&sb.merge(&sc).unwrap()).unwrap();
        prop_assert_eq!(&left.counters, &right.counters);
        prop_assert_eq!(left.total(), right.total());
        let all: Vec<(u32, i64)> = a.iter().chain(&b).chain(&c).copied().collect();
        let truth = truth_of(&all);
        assert_sound(&left, &truth, UNIVERSE);
        assert_sound(&right, &truth, UNIVERSE);
        // Deterministic: the same inputs in the same order give the same bytes.
        prop_assert_eq!(left.encode(), sa.merge(&sb).unwrap().merge(&sc).unwrap().encode());
        // The empty sketch is a neutral element.
        prop_assert_eq!(sa.merge(&small(heavy, mode)).unwrap(), sa.clone());
        // Linear counters of a union are those of the concatenated stream; the whole sketch is,
        // byte for byte, as long as the list never had to drop a key.
        if mode == Mode::Linear {
            let whole = built(&all, heavy, mode);
            prop_assert_eq!(&left.counters, &whole.counters);
            if truth.len() <= heavy as usize {
                prop_assert_eq!(left.encode(), whole.encode());
                prop_assert_eq!(right.encode(), whole.encode());
            }
        }
    }

    #[test]
    fn add_then_subtract_restores_the_counters(a in turnstile_strategy(UNIVERSE), b in stream_strategy(UNIVERSE, 80), heavy in 0i64..6) {
        let (sa, sb) = (built(&a, heavy, Mode::Linear), built(&b, heavy, Mode::Linear));
        let back = sa.merge(&sb).unwrap().subtract(&sb).unwrap();
        prop_assert_eq!(&back.counters, &sa.counters);
        prop_assert_eq!(back.total(), sa.total());
        assert_sound(&back, &truth_of(&a), UNIVERSE);
        // A window: subtracting a prefix's sketch leaves the suffix.
        let cut = a.len() / 2;
        let (prefix, suffix) = a.split_at(cut);
        let prefix_truth = truth_of(prefix);
        if prefix_truth.values().all(|&v| v >= 0) && truth_of(suffix).values().all(|&v| v >= 0) {
            let window = sa.subtract(&built(prefix, heavy, Mode::Linear)).unwrap();
            prop_assert_eq!(&window.counters, &built(suffix, heavy, Mode::Linear).counters);
            assert_sound(&window, &truth_of(suffix), UNIVERSE);
        }
        prop_assert_eq!(Sketch::decode(&back.encode()).unwrap(), back);
    }

    #[test]
    fn strict_turnstile_streams_stay_sound(a in turnstile_strategy(UNIVERSE), heavy in 0i64..6) {
        let s = built(&a, heavy, Mode::Linear);
        assert_sound(&s, &truth_of(&a), UNIVERSE);
    }

    #[test]
    fn conservative_never_undercounts(a in stream_strategy(UNIVERSE, 200), b in stream_strategy(UNIVERSE, 100), heavy in 0i64..6) {
        let (sa, sb) = (built(&a, heavy, Mode::Conservative), built(&b, heavy, Mode::Conservative));
        assert_sound(&sa, &truth_of(&a), UNIVERSE);
        let both: Vec<(u32, i64)> = a.iter().chain(&b).copied().collect();
        assert_sound(&sa.merge(&sb).unwrap(), &truth_of(&both), UNIVERSE);
        // Never above the linear estimate of the same stream.
        let linear = built(&a, heavy, Mode::Linear);
        for id in 0..UNIVERSE {
            prop_assert!(sa.estimate(h(id)) <= linear.estimate(h(id)));
        }
    }

    #[test]
    fn codec_round_trips(a in turnstile_strategy(UNIVERSE), heavy in 0i64..6, conservative in any::<bool>(), tag in any::<u8>()) {
        let mode = if conservative { Mode::Conservative } else { Mode::Linear };
        let mut s = small(heavy, mode);
        for &(id, w) in &a {
            if w > 0 || mode == Mode::Linear {
                s.add(&key(id), tag, w).unwrap();
            }
        }
        let bytes = s.encode();
        prop_assert_eq!(bytes.len(), s.encoded_len());
        let back = Sketch::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.encode(), bytes.clone());
        prop_assert_eq!(Sketch::parse_text(&s.to_text()).unwrap(), s.clone());
        back.heavy.check_index();
        prop_assert_eq!(back.topk(5), s.topk(5));
        for id in 0..UNIVERSE {
            prop_assert_eq!(bounds_from_encoding(&bytes, h(id), &mut 0), s.bounds(h(id)));
        }
    }

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(s) = Sketch::decode(&bytes) {
            prop_assert_eq!(s.encode(), bytes.clone());
        }
        let _ = Sketch::parse_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn decode_never_panics_on_mutated_encodings(a in stream_strategy(UNIVERSE, 60), heavy in 0i64..6,
                                                 edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = built(&a, heavy, Mode::Linear).encode();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(s) = Sketch::decode(&bytes) {
            prop_assert_eq!(s.encode(), bytes.clone());
            s.heavy.check_index();
        }
        let text = format!("cms1:{}", base64_for_tests(&bytes));
        if let Ok(s) = Sketch::parse_text(&text) {
            prop_assert_eq!(s.to_text(), text);
        }
    }

    /// Point queries read the counters only, so every order and partition of one linear stream
    /// answers alike: a permutation fed to one sketch, or cut into parts whose sketches (some
    /// of them empty, of another shape) merge in any order.
    #[test]
    fn point_queries_do_not_depend_on_order_or_plan(stream in stream_strategy(UNIVERSE, 120), heavy in 0i64..6,
                                                    seed in any::<u64>(), parts in 1usize..6) {
        let whole = built(&stream, heavy, Mode::Linear);
        let mut rng = SplitMix64(seed);
        let mut shuffled = stream.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut pieces: Vec<Sketch> = (0..parts).map(|_| small(heavy, Mode::Linear)).collect();
        for (i, event) in shuffled.iter().enumerate() {
            feed(&mut pieces[(i * 7 + rng.below(3) as usize) % parts], std::slice::from_ref(event));
        }
        pieces.push(Sketch::default()); // a zero-row aggregate of the default shape
        while pieces.len() > 1 {
            let b = pieces.remove(rng.below(pieces.len() as u64) as usize);
            let a = pieces.remove(rng.below(pieces.len() as u64) as usize);
            pieces.push(a.merge(&b).unwrap());
        }
        let merged = &pieces[0];
        let mut one_by_one = small(heavy, Mode::Linear);
        feed(&mut one_by_one, &shuffled);
        for id in 0..UNIVERSE + 5 {
            prop_assert_eq!(merged.bounds(h(id)), whole.bounds(h(id)));
            prop_assert_eq!(one_by_one.bounds(h(id)), whole.bounds(h(id)));
        }
        prop_assert_eq!(merged.total(), whole.total());
    }
}

/// Reads the counters a point query needs from `bytes`, as the SQL functions do from a stored
/// value, and counts the bytes read.
fn bounds_from_encoding(bytes: &[u8], hash: u64, read_bytes: &mut usize) -> Bounds {
    let header = &bytes[..bytes.len().min(CounterLayout::HEADER_LEN)];
    let layout = CounterLayout::from_header(header, bytes.len()).unwrap();
    layout
        .bounds(hash, |offset, out| {
            out.copy_from_slice(&bytes[offset..offset + out.len()]);
            *read_bytes += out.len();
            Ok(())
        })
        .unwrap()
}

#[test]
fn point_queries_read_one_counter_per_row_of_the_encoding() {
    // Dense forms of every cell size, negative counters included: one cell a row, and for a key
    // with escaped cells the overflow list once.
    let mut rng = SplitMix64(3);
    for (heavy_weight, bulk) in [
        (1i64, 100i64),
        (-300, 100),
        (70_000, 300),
        (5_000_000_000, 1 << 40),
    ] {
        // Dense: too many nonzero counters for a sparse section.
        let mut s = sketch(0.001, 0.01, 4, Mode::Linear);
        for _ in 0..60_000 {
            s.add(
                &key(rng.below(30_000) as u32),
                0,
                1 + rng.below(bulk as u64) as i64,
            )
            .unwrap();
        }
        feed(&mut s, &[(1, heavy_weight), (2, 3), (3, 1)]);
        let (name, size, overflow) = s.counter_form();
        assert_eq!(name, "dense", "{heavy_weight} {bulk}");
        let bytes = s.encode();
        for id in 0..500 {
            let mut read = 0;
            assert_eq!(
                bounds_from_encoding(&bytes, h(id), &mut read),
                s.bounds(h(id))
            );
            let cells = s.depth() as usize * size as usize;
            assert!(
                read == cells || read == cells + overflow as usize * 12,
                "{read}"
            );
        }
    }
    // Zero and sparse forms.
    let mut s = sketch(0.01, 0.01, 4, Mode::Linear);
    let mut read = 0;
    assert_eq!(
        bounds_from_encoding(&s.encode(), h(1), &mut read).estimate,
        0
    );
    assert_eq!(read, 0);
    feed(&mut s, &[(1, 5), (2, -3), (3, 1_000_000)]);
    assert_eq!(s.counter_form().0, "sparse");
    let bytes = s.encode();
    for id in 0..500 {
        assert_eq!(bounds_from_encoding(&bytes, h(id), &mut 0), s.bounds(h(id)));
    }
    // The header must name counters that lie within the value.
    let bytes = sketch(0.01, 0.01, 4, Mode::Linear).encode();
    let mut s = sketch(0.01, 0.01, 0, Mode::Linear);
    feed(&mut s, &[(1, 1)]);
    let full = s.encode();
    let error =
        CounterLayout::from_header(&full[..CounterLayout::HEADER_LEN], full.len() - 1).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidBinary);
    assert!(CounterLayout::from_header(&bytes[..CounterLayout::HEADER_LEN], bytes.len()).is_ok());
    assert!(CounterLayout::from_header(&bytes[..20], bytes.len()).is_err());
}

#[test]
fn topk_beyond_the_list_is_refused_unless_the_list_is_complete() {
    // Three keys in a list of four: the list holds every key, so any k is answered in full.
    let mut few = sketch(0.01, 0.01, 4, Mode::Linear);
    feed(&mut few, &[(1, 5), (2, 3), (3, 1)]);
    assert_eq!(few.checked_topk(100).unwrap().len(), 3);
    assert_eq!(
        sketch(0.01, 0.01, 4, Mode::Linear)
            .checked_topk(10)
            .unwrap()
            .len(),
        0
    );
    // A hundred keys through a list of four: at most four rows can be given.
    let mut many = sketch(0.01, 0.01, 4, Mode::Linear);
    feed(
        &mut many,
        &(0..100)
            .map(|id| (id, 1 + i64::from(id % 7)))
            .collect::<Vec<_>>(),
    );
    assert_eq!(many.checked_topk(4).unwrap().len(), 4);
    let error = many.checked_topk(5).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidParameter);
    assert!(
        error.message.contains("asked for 5 keys") && error.message.contains("holds 4"),
        "{error}"
    );
    // No list at all: nothing can be listed once anything was counted.
    let mut none = sketch(0.01, 0.01, 0, Mode::Linear);
    feed(&mut none, &[(1, 1)]);
    assert_eq!(none.checked_topk(0).unwrap().len(), 0);
    assert!(none.checked_topk(1).is_err());
}

/// N of an encoded sketch read from its header alone, as `cms_total` reads a stored value.
fn header_total(bytes: &[u8]) -> Result<i64> {
    let header = &bytes[..bytes.len().min(CounterLayout::HEADER_LEN)];
    CounterLayout::from_header(header, bytes.len()).map(|layout| layout.total())
}

#[test]
fn total_is_read_from_the_header() {
    let mut s = sketch(0.01, 0.1, 4, Mode::Linear);
    assert_eq!(header_total(&s.encode()).unwrap(), 0);
    feed(&mut s, &[(1, 5), (2, -3), (3, 1_000_000)]);
    let bytes = s.encode();
    assert_eq!(header_total(&bytes).unwrap(), 1_000_002);
    assert_eq!(header_total(&bytes).unwrap(), s.total());
    // Bytes too short for a header, or of another version, are refused.
    for bad in [&bytes[..10], &[9u8; 60][..]] {
        let error = header_total(bad).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidBinary);
    }
}

// ---- sizes of the version-2 forms ---------------------------------------------------------------

/// A default sketch (as `cms_empty()` and `cms_agg(key)` make it: ε 0.001, δ 0.01, 64 heavy
/// hitters) of `events` Zipf(s) events over 200,000 bigint keys, keyed as SQL bigints are.
fn default_zipf_sketch(events: usize, s: f64, seed: u64) -> Sketch {
    let zipf = Zipf::new(200_000, s);
    let mut rng = SplitMix64(seed);
    let mut sketch = Sketch::default();
    for _ in 0..events {
        let id = i64::from(zipf.sample(&mut rng));
        sketch
            .add(
                &id.to_le_bytes(),
                crate::common::value_hash::KeyKind::Integer as u8,
                1,
            )
            .unwrap();
    }
    sketch
}

#[test]
fn small_and_skewed_sketches_are_small() {
    // Issue 18: 1,000 events in at most 5 kB (version 1 took 15.5 kB), whatever their skew,
    // distinct keys included.
    for (s, seed) in [(1.1, 1), (0.8, 2), (0.0, 3)] {
        let small = default_zipf_sketch(1000, s, seed);
        let len = small.encode().len();
        assert!(len <= 5 * 1024, "1,000 events at s = {s}: {len} bytes");
        assert_eq!(small.counter_form().0, "sparse");
    }
    let mut distinct = Sketch::default();
    for id in 0..1000i64 {
        distinct.add(&id.to_le_bytes(), 1, 1).unwrap();
    }
    let len = distinct.encode().len();
    assert!(len <= 5 * 1024, "1,000 distinct keys: {len} bytes");
}

#[test]
fn two_million_zipf_events_fit_in_32_kb() {
    // Issue 18: 2,000,000 Zipf events at the default shape in at most 32 kB (version 1: 56 kB,
    // 4-byte counters as soon as one passed 32,767).
    for (s, seed) in [(1.1, 1), (0.8, 1)] {
        let big = default_zipf_sketch(2_000_000, s, seed);
        let bytes = big.encode();
        assert!(bytes.len() <= 32 * 1024, "s = {s}: {} bytes", bytes.len());
        let (form, cell_bytes, _) = big.counter_form();
        assert_eq!((form, cell_bytes), ("dense", 2));
        let back = Sketch::decode(&bytes).unwrap();
        assert_eq!(back, big);
        for id in 0..2000u32 {
            let hash = hash_bytes(&i64::from(id).to_le_bytes());
            assert_eq!(bounds_from_encoding(&bytes, hash, &mut 0), big.bounds(hash));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Streams that cross every threshold of the forms (sparse to dense, cell sizes, the
    /// overflow list's bound): the encoding decodes to the same sketch, and every estimate read
    /// from the bytes equals the sketch's.
    #[test]
    fn every_form_round_trips(keys in 0u32..4000, magnitude in prop_oneof![Just(1u64), Just(120), Just(30_000), Just(1u64 << 31), Just(1u64 << 62)],
                              heavy_keys in 0u32..200, epsilon in prop_oneof![Just(0.1), Just(0.01), Just(0.002)],
                              conservative in any::<bool>(), seed in any::<u64>()) {
        let mode = if conservative { Mode::Conservative } else { Mode::Linear };
        let mut s = sketch(epsilon, 0.05, 8, mode);
        let mut rng = SplitMix64(seed);
        for _ in 0..keys {
            let weight = 1 + rng.below(4) as i64;
            let weight = if mode == Mode::Linear && rng.below(10) == 0 { -weight } else { weight };
            s.add(&key(rng.below(u64::from(keys) + 1) as u32), 0, weight).unwrap();
        }
        for id in 0..heavy_keys {
            let _ = s.add(&key(100_000 + id), 0, 1 + rng.below(magnitude) as i64);
        }
        let bytes = s.encode();
        prop_assert_eq!(bytes.len(), s.encoded_len());
        let back = Sketch::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(Sketch::parse_text(&s.to_text()).unwrap(), s.clone());
        for id in (0..keys + 50).chain(100_000..100_000 + heavy_keys) {
            let expected = s.bounds(h(id));
            prop_assert_eq!(back.bounds(h(id)), expected);
            prop_assert_eq!(bounds_from_encoding(&bytes, h(id), &mut 0), expected);
        }
    }
}

/// Sizes, forms and the cost of point queries on the encoding of default sketches of Zipf
/// streams: `cargo test --release --lib --no-default-features --features pg15,pg_test --
/// cms::sketch::tests::print_form_figures --ignored --nocapture`.
#[test]
#[ignore]
fn print_form_figures() {
    for (events, s) in [
        (1000, 1.1),
        (1000, 0.8),
        (1000, 0.0),
        (10_000, 1.1),
        (100_000, 1.1),
        (2_000_000, 1.1),
        (2_000_000, 0.8),
    ] {
        let sk = default_zipf_sketch(events, s, 1);
        let nonzero = sk.counters.iter().filter(|&&c| c != 0).count();
        let started = std::time::Instant::now();
        let bytes = sk.encode();
        let encode = started.elapsed();
        let started = std::time::Instant::now();
        let mut sum = 0i64;
        for id in 0..10_000u32 {
            sum += bounds_from_encoding(&bytes, h(id), &mut 0).estimate;
        }
        let per_query = started.elapsed() / 10_000;
        eprintln!(
            "{events} s={s}: {} bytes, form {:?}, nonzero {nonzero}, heavy {} bytes, encode {encode:?}, point query {per_query:?} ({sum})",
            bytes.len(),
            sk.counter_form(),
            sk.candidates()
                .iter()
                .map(|c| 21 + c.key.len())
                .sum::<usize>()
        );
    }
}

/// Version 1's layout of `s` (read, never written, by this build): the version 2 header without
/// its section field, every counter at the width of the widest, then the candidates.
fn encode_v1_for_tests(s: &Sketch) -> Vec<u8> {
    let v2 = s.encode();
    let (low, high) = s
        .counters
        .iter()
        .fold((0i64, 0i64), |(l, h), &c| (l.min(c), h.max(c)));
    let fits = |w: u32| {
        let limit = (1i128 << (8 * w - 1)) - 1;
        i128::from(low) >= -limit - 1 && i128::from(high) <= limit
    };
    let width = if low == 0 && high == 0 {
        0
    } else {
        [1u32, 2, 4, 8].into_iter().find(|&w| fits(w)).unwrap_or(8)
    };
    let candidates: usize = s.candidates().iter().map(|c| 21 + c.key.len()).sum();
    let mut out = vec![1u8, v2[1], width as u8];
    out.extend_from_slice(&v2[3..51]);
    for &c in s.counters.iter() {
        out.extend_from_slice(&c.to_le_bytes()[..width as usize]);
    }
    out.extend_from_slice(&v2[v2.len() - candidates..]);
    out
}

/// What `cms_add` (decode, add, encode) and `cms_union_agg` (decode, merge) cost on small stored
/// sketches (1,000 Zipf events, default shape), in version 2 (sparse) against version 1's layout
/// (every counter at the widest width; decoded by this build's version 1 path, encoded as
/// version 1 wrote): `cargo test --release --lib --no-default-features --features pg15,pg_test
/// -- --ignored encode_cost_report --nocapture`. Medians of 5 interleaved rounds.
#[test]
#[ignore]
fn encode_cost_report() {
    let small = default_zipf_sketch(1000, 1.1, 1);
    let v2 = small.encode();
    let v1 = encode_v1_for_tests(&small);
    assert_eq!(Sketch::decode(&v1).unwrap(), small);
    let parts: Vec<Sketch> = (0..200u64)
        .map(|seed| default_zipf_sketch(1000, 1.1, seed + 10))
        .collect();
    let parts_v2: Vec<Vec<u8>> = parts.iter().map(|p| p.encode()).collect();
    let parts_v1: Vec<Vec<u8>> = parts.iter().map(encode_v1_for_tests).collect();
    let key = 77i64.to_le_bytes();
    let rounds = 400;
    let per_call = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    };
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..5 {
        samples[0].push(per_call(&mut || {
            let mut s = Sketch::decode(std::hint::black_box(&v2)).unwrap();
            s.add(&key, 1, 1).unwrap();
            std::hint::black_box(s.encode());
        }));
        samples[1].push(per_call(&mut || {
            let mut s = Sketch::decode(std::hint::black_box(&v1)).unwrap();
            s.add(&key, 1, 1).unwrap();
            std::hint::black_box(encode_v1_for_tests(&s));
        }));
        samples[2].push(
            per_call(&mut || {
                let mut u = Sketch::default();
                for p in &parts_v2 {
                    u.merge_from(&Sketch::decode(p).unwrap()).unwrap();
                }
                std::hint::black_box(u.encode());
            }) / parts.len() as f64,
        );
        samples[3].push(
            per_call(&mut || {
                let mut u = Sketch::default();
                for p in &parts_v1 {
                    u.merge_from(&Sketch::decode(p).unwrap()).unwrap();
                }
                std::hint::black_box(encode_v1_for_tests(&u));
            }) / parts.len() as f64,
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [a2, a1, u2, u1] = samples.map(|mut v| median(&mut v));
    println!(
        "1,000-event sketch: version 2 {} bytes ({}), version 1 {} bytes",
        v2.len(),
        small.counter_form().0,
        v1.len()
    );
    println!(
        "cms_add (decode, add, encode): version 2 {a2:.1} us, version 1 {a1:.1} us ({:.2}x)",
        a2 / a1
    );
    println!(
        "cms_union_agg, per sketch merged: version 2 {u2:.1} us, version 1 {u1:.1} us ({:.2}x)",
        u2 / u1
    );
}
