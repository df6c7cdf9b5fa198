//! Hashing SQL values of any type with the one portable hash (`common::hash`), over a
//! canonical byte encoding per type, so that values equal under the type's default equality
//! hash alike (DESIGN.md rule 1) and no hash depends on the session's client_encoding. The
//! encodings (docs/design-notes.md, "Hashing SQL values", lists them for users):
//!
//! - int2, int4, int8: widened to i64, 8 bytes little-endian (`42::int4` = `42::int8`);
//! - text, varchar, bytea, json, xml, tsvector, tsquery, refcursor, pg_node_tree: the stored
//!   bytes (server encoding); name: its bytes up to the NUL; bpchar without trailing blanks;
//!   an enum value: its label's bytes; uuid: its 16 bytes;
//! - numeric: an integral value within int8's range as that integer (so `1.00::numeric` is
//!   the same item as `1::int8`); any other value as `N` and its shortest decimal text
//!   (no trailing fractional zeros: `N1.5`, `NNaN`, `NInfinity`, `N-Infinity`);
//! - float4, float8: `F` and the float8 value's 8 bytes little-endian, widened from float4,
//!   with -0 as 0 and every NaN as the one quiet NaN 0x7ff8000000000000;
//! - interval: `I` and the 16-byte little-endian span PostgreSQL compares intervals by
//!   ((months·30 + days)·86,400,000,000 + microseconds), so '1 day' = '24 hours';
//! - jsonb: `J` and a token stream (see [`jsonb_canonical`]) whose numbers are canonical
//!   numerics, so `{"a": 1.0}` = `{"a": 1}`;
//! - a domain: as its base type;
//! - other built-in types whose binary send form is canonical and free of the client encoding
//!   (bool, date, time, timestamps, inet, macaddr, bit strings, oids, ..., and arrays and
//!   ranges of such types): their send form, as in 0.1.0;
//! - any other type (citext and other extension types, composite types, arrays and ranges of
//!   the types above whose send form is not canonical) with a default hash operator class: `H`
//!   and the 8 little-endian bytes of its 64-bit extended hash function at seed 0, which
//!   respects the type's own equality (e.g. citext's case folding);
//! - the rest (types without a hash operator class, e.g. point): their send form.
//!
//! A [`ValueHasher`] is built once per call site and cached in `flinfo->fn_extra`. Sketches that
//! keep keys (Count-Min's heavy hitters) take the canonical bytes themselves, with a
//! [`KeyKind`] tag that says how to show them again.

use super::hash::{hash_bytes, hash_int};
use super::varlena::inline_payload;
use pgrx::pg_sys;

/// What kind of value a canonical key holds, so it can be shown as text again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeyKind {
    /// int2, int4, int8 and integral numerics: 8 bytes, i64 little-endian.
    Integer = 1,
    /// Text-like types: their bytes in the server encoding.
    Text = 2,
    Bytea = 3,
    Uuid = 4,
    /// Any other type: its canonical bytes (see the module documentation).
    Other = 5,
}

/// Shows a canonical key as text: integers in decimal, text as is, uuids in their usual
/// form, bytea and other types' send forms as `\x` hex.
pub fn render_key(key: &[u8], tag: u8) -> String {
    let hex = |bytes: &[u8]| {
        let mut out = String::from("\\x");
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        out
    };
    match tag {
        t if t == KeyKind::Integer as u8 => match <[u8; 8]>::try_from(key) {
            Ok(bytes) => i64::from_le_bytes(bytes).to_string(),
            Err(_) => hex(key),
        },
        t if t == KeyKind::Text as u8 => String::from_utf8_lossy(key).into_owned(),
        t if t == KeyKind::Uuid as u8 && key.len() == 16 => {
            let h: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        _ => hex(key),
    }
}

// An explicit tag byte, so that the hot paths test the encoding with one comparison.
#[repr(u8)]
enum Encoding {
    Int2,
    Int4,
    Int8,
    /// Text, varchar, bytea and the other text-like varlenas: the detoasted bytes.
    VarlenaBytes,
    /// bpchar: the bytes without trailing blanks.
    Bpchar,
    Uuid,
    /// name: the bytes before the NUL.
    Name,
    Numeric(pg_sys::FmgrInfo),
    Float4,
    Float8,
    Interval,
    Jsonb(pg_sys::FmgrInfo),
    /// An enum: the label that its output function gives.
    EnumLabel(pg_sys::FmgrInfo),
    /// The type's own 64-bit extended hash, called with `collation`.
    HashExtended(pg_sys::FmgrInfo, pg_sys::Oid),
    /// The type's send function.
    Send(pg_sys::FmgrInfo),
}

/// Tags that start the canonical bytes of the types whose encoding is not their plain bytes,
/// so that such a value never has the bytes of an integer (8 bytes) or of another family.
const TAG_NUMERIC: u8 = b'N';
const TAG_FLOAT: u8 = b'F';
const TAG_INTERVAL: u8 = b'I';
const TAG_JSONB: u8 = b'J';
const TAG_HASH_EXTENDED: u8 = b'H';

/// char(n) values are canonical without their padding blanks.
fn without_trailing_blanks(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

/// A numeric's shortest decimal text: `numeric_out`'s text without trailing fractional zeros
/// (numeric equality ignores the scale).
pub fn trim_numeric_text(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    // "-0.00" never comes from numeric_out (zero has no sign), but stay canonical anyway.
    if trimmed == "-0" { "0" } else { trimmed }
}

/// The canonical bytes of a numeric given its `numeric_out` text: an integer within i64 as its
/// 8 little-endian bytes (kind Integer), anything else as `N` + the shortest decimal text.
pub fn numeric_canonical(text: &str, out: &mut Vec<u8>) -> KeyKind {
    let trimmed = trim_numeric_text(text);
    out.clear();
    match trimmed.parse::<i64>() {
        Ok(value) => {
            out.extend_from_slice(&value.to_le_bytes());
            KeyKind::Integer
        }
        Err(_) => {
            out.push(TAG_NUMERIC);
            out.extend_from_slice(trimmed.as_bytes());
            KeyKind::Other
        }
    }
}

/// The canonical bytes of a float8 (or widened float4): -0 as 0, one NaN.
pub fn float_canonical(value: f64) -> [u8; 9] {
    let bits = if value.is_nan() {
        0x7ff8_0000_0000_0000u64
    } else if value == 0.0 {
        0
    } else {
        value.to_bits()
    };
    let mut out = [TAG_FLOAT; 9];
    out[1..].copy_from_slice(&bits.to_le_bytes());
    out
}

/// The canonical bytes of an interval: the 128-bit span PostgreSQL's interval_cmp_value
/// compares ((months·30 + days) days in microseconds, plus the time).
pub fn interval_canonical(time: i64, day: i32, month: i32) -> [u8; 17] {
    let days = i128::from(month) * 30 + i128::from(day);
    let span = days * 86_400_000_000 + i128::from(time);
    let mut out = [TAG_INTERVAL; 17];
    out[1..].copy_from_slice(&span.to_le_bytes());
    out
}

/// Is the binary send form of this built-in type canonical (equal values, equal bytes) and
/// free of the client encoding? Arrays, ranges and multiranges are when their elements are.
unsafe fn send_form_is_canonical(type_oid: pg_sys::Oid) -> bool {
    const CANONICAL: &[pg_sys::Oid] = &[
        pg_sys::BOOLOID,
        pg_sys::CHAROID,
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::BYTEAOID,
        pg_sys::UUIDOID,
        pg_sys::OIDOID,
        pg_sys::XIDOID,
        pg_sys::XID8OID,
        pg_sys::CIDOID,
        pg_sys::TIDOID,
        pg_sys::REGPROCOID,
        pg_sys::REGPROCEDUREOID,
        pg_sys::REGOPEROID,
        pg_sys::REGOPERATOROID,
        pg_sys::REGCLASSOID,
        pg_sys::REGTYPEOID,
        pg_sys::REGCONFIGOID,
        pg_sys::REGDICTIONARYOID,
        pg_sys::REGNAMESPACEOID,
        pg_sys::REGROLEOID,
        pg_sys::REGCOLLATIONOID,
        pg_sys::DATEOID,
        pg_sys::TIMEOID,
        pg_sys::TIMETZOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::TIMESTAMPTZOID,
        pg_sys::MONEYOID,
        pg_sys::INETOID,
        pg_sys::CIDROID,
        pg_sys::MACADDROID,
        pg_sys::MACADDR8OID,
        pg_sys::BITOID,
        pg_sys::VARBITOID,
        pg_sys::PG_LSNOID,
        pg_sys::INT2VECTOROID,
        pg_sys::OIDVECTOROID,
    ];
    unsafe {
        if CANONICAL.contains(&type_oid) {
            return true;
        }
        if u32::from(type_oid) >= pg_sys::FirstNormalObjectId {
            return false;
        }
        let element = pg_sys::get_element_type(type_oid);
        if element != pg_sys::InvalidOid {
            return send_form_is_canonical(element);
        }
        let subtype = pg_sys::get_range_subtype(type_oid);
        if subtype != pg_sys::InvalidOid {
            return send_form_is_canonical(subtype);
        }
        let range = pg_sys::get_multirange_range(type_oid);
        range != pg_sys::InvalidOid && send_form_is_canonical(range)
    }
}

/// A copy, in `context`, of the function `lookup` finds for `type_oid`.
unsafe fn function_info(fn_oid: pg_sys::Oid, context: pg_sys::MemoryContext) -> pg_sys::FmgrInfo {
    unsafe {
        let mut info: pg_sys::FmgrInfo = std::mem::zeroed();
        pg_sys::fmgr_info_cxt(fn_oid, &mut info, context);
        info
    }
}

unsafe fn output_function(
    type_oid: pg_sys::Oid,
    context: pg_sys::MemoryContext,
) -> pg_sys::FmgrInfo {
    unsafe {
        let mut out_oid = pg_sys::InvalidOid;
        let mut is_varlena = false;
        pg_sys::getTypeOutputInfo(type_oid, &mut out_oid, &mut is_varlena);
        function_info(out_oid, context)
    }
}

unsafe fn send_function(type_oid: pg_sys::Oid, context: pg_sys::MemoryContext) -> pg_sys::FmgrInfo {
    unsafe {
        let mut send_oid = pg_sys::InvalidOid;
        let mut is_varlena = false;
        pg_sys::getTypeBinaryOutputInfo(type_oid, &mut send_oid, &mut is_varlena);
        function_info(send_oid, context)
    }
}

/// The type's default hash opclass's extended hash function, if it has one.
unsafe fn hash_extended_function(
    type_oid: pg_sys::Oid,
    context: pg_sys::MemoryContext,
) -> Option<pg_sys::FmgrInfo> {
    unsafe {
        let entry =
            pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_HASH_EXTENDED_PROC_FINFO as i32);
        if entry.is_null() || (*entry).hash_extended_proc == pg_sys::InvalidOid {
            return None;
        }
        Some(function_info((*entry).hash_extended_proc, context))
    }
}

/// Calls `use_text` with the text an output function gives for `datum`.
unsafe fn with_output_text<R>(
    info: &mut pg_sys::FmgrInfo,
    datum: pg_sys::Datum,
    use_text: impl FnOnce(&[u8]) -> R,
) -> R {
    unsafe {
        let text = pg_sys::OutputFunctionCall(info, datum);
        let result = use_text(std::ffi::CStr::from_ptr(text).to_bytes());
        pg_sys::pfree(text.cast());
        result
    }
}

/// Appends a jsonb value's canonical token stream to `out`: `[` (`[r` for a bare scalar) and
/// `]`, `{` and `}`, `k` + key, `s` + string, `#` + number, each string or number as its
/// u32 little-endian length and bytes (numbers as canonical numeric text, see
/// [`numeric_canonical`]), `n` for null, `t` and `f`. Object keys come in jsonb's own
/// (canonical) order, so equal jsonb values give equal streams.
unsafe fn jsonb_canonical(
    datum: pg_sys::Datum,
    numeric_out: &mut pg_sys::FmgrInfo,
    out: &mut Vec<u8>,
) {
    use pg_sys::JsonbIteratorToken::*;
    use pg_sys::jbvType::*;
    unsafe {
        let raw = datum.cast_mut_ptr::<pg_sys::varlena>();
        let detoasted = pg_sys::pg_detoast_datum(raw) as *mut pg_sys::Jsonb;
        let mut iterator = pg_sys::JsonbIteratorInit(&mut (*detoasted).root);
        let mut value: pg_sys::JsonbValue = std::mem::zeroed();
        let mut number = Vec::new();
        let put_bytes = |out: &mut Vec<u8>, tag: u8, bytes: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        out.push(TAG_JSONB);
        loop {
            let token = pg_sys::JsonbIteratorNext(&mut iterator, &mut value, false);
            match token {
                WJB_DONE => break,
                WJB_BEGIN_ARRAY => {
                    out.push(b'[');
                    if value.val.array.rawScalar {
                        out.push(b'r');
                    }
                }
                WJB_END_ARRAY => out.push(b']'),
                WJB_BEGIN_OBJECT => out.push(b'{'),
                WJB_END_OBJECT => out.push(b'}'),
                _ => {
                    let string = |v: &pg_sys::JsonbValue| {
                        std::slice::from_raw_parts(
                            v.val.string.val as *const u8,
                            v.val.string.len as usize,
                        )
                    };
                    match (token, value.type_) {
                        (WJB_KEY, _) => put_bytes(out, b'k', string(&value)),
                        (_, t) if t == jbvString => put_bytes(out, b's', string(&value)),
                        (_, t) if t == jbvNumeric => {
                            let numeric = pg_sys::Datum::from(value.val.numeric);
                            with_output_text(numeric_out, numeric, |text| {
                                let text = std::str::from_utf8(text).unwrap_or_default();
                                number.clear();
                                number.extend_from_slice(trim_numeric_text(text).as_bytes());
                            });
                            put_bytes(out, b'#', &number);
                        }
                        (_, t) if t == jbvBool => {
                            out.push(if value.val.boolean { b't' } else { b'f' })
                        }
                        _ => out.push(b'n'),
                    }
                }
            }
        }
        if detoasted.cast() != raw {
            pg_sys::pfree(detoasted.cast());
        }
    }
}

pub struct ValueHasher {
    type_oid: pg_sys::Oid,
    /// The type itself, or a domain's base type.
    base_oid: pg_sys::Oid,
    encoding: Encoding,
    /// Reused for the canonical bytes of the types that build them.
    scratch: Vec<u8>,
}

impl ValueHasher {
    /// A hasher for values of `type_oid`; lives in `context` (function lookups too).
    ///
    /// # Safety
    /// `context` must be a valid memory context that outlives the hasher's use.
    pub unsafe fn new(type_oid: pg_sys::Oid, context: pg_sys::MemoryContext) -> Self {
        // A domain hashes as its base type: its values are the base type's values.
        let base = unsafe { pg_sys::getBaseType(type_oid) };
        let encoding = unsafe {
            match base {
                pg_sys::INT2OID => Encoding::Int2,
                pg_sys::INT4OID => Encoding::Int4,
                pg_sys::INT8OID => Encoding::Int8,
                pg_sys::TEXTOID
                | pg_sys::VARCHAROID
                | pg_sys::BYTEAOID
                | pg_sys::JSONOID
                | pg_sys::XMLOID
                | pg_sys::TSVECTOROID
                | pg_sys::TSQUERYOID
                | pg_sys::REFCURSOROID
                | pg_sys::PG_NODE_TREEOID => Encoding::VarlenaBytes,
                pg_sys::BPCHAROID => Encoding::Bpchar,
                pg_sys::UUIDOID => Encoding::Uuid,
                pg_sys::NAMEOID => Encoding::Name,
                pg_sys::NUMERICOID => Encoding::Numeric(output_function(base, context)),
                pg_sys::FLOAT4OID => Encoding::Float4,
                pg_sys::FLOAT8OID => Encoding::Float8,
                pg_sys::INTERVALOID => Encoding::Interval,
                pg_sys::JSONBOID => Encoding::Jsonb(output_function(pg_sys::NUMERICOID, context)),
                _ if pg_sys::get_typtype(base) as u8 == pg_sys::TYPTYPE_ENUM => {
                    Encoding::EnumLabel(output_function(base, context))
                }
                _ if send_form_is_canonical(base) => Encoding::Send(send_function(base, context)),
                _ => match hash_extended_function(base, context) {
                    Some(info) => Encoding::HashExtended(info, pg_sys::get_typcollation(base)),
                    None => Encoding::Send(send_function(base, context)),
                },
            }
        };
        ValueHasher {
            type_oid,
            base_oid: base,
            encoding,
            scratch: Vec::new(),
        }
    }

    pub fn type_oid(&self) -> pg_sys::Oid {
        self.type_oid
    }

    /// True when values hash as their plain stored bytes (text, varchar, ...): what the text
    /// overloads' fast path may do without asking the hasher. A citext column reaches those
    /// overloads too (relabelled as text) and is not hashed so.
    #[inline(always)]
    pub fn hashes_stored_bytes(&self) -> bool {
        matches!(self.encoding, Encoding::VarlenaBytes)
    }

    /// Calls `use_bytes` with the canonical bytes of one non-NULL value and their kind: the
    /// single place that defines the encoding, for hashing and for keys alike.
    ///
    /// # Safety
    /// `datum` must be a non-NULL value of the hasher's type.
    unsafe fn with_canonical_bytes<R>(
        &mut self,
        datum: pg_sys::Datum,
        use_bytes: impl FnOnce(&[u8], KeyKind) -> R,
    ) -> R {
        unsafe {
            let bpchar = matches!(self.encoding, Encoding::Bpchar);
            let text_kind = if self.base_oid == pg_sys::BYTEAOID {
                KeyKind::Bytea
            } else {
                KeyKind::Text
            };
            let scratch = &mut self.scratch;
            match &mut self.encoding {
                Encoding::Int2 | Encoding::Int4 | Encoding::Int8 => {
                    let value = match self.encoding {
                        Encoding::Int2 => datum.value() as i16 as i64,
                        Encoding::Int4 => datum.value() as i32 as i64,
                        _ => datum.value() as i64,
                    };
                    use_bytes(&value.to_le_bytes(), KeyKind::Integer)
                }
                Encoding::VarlenaBytes | Encoding::Bpchar => {
                    let raw = datum.cast_mut_ptr::<pg_sys::varlena>();
                    let detoasted = pg_sys::pg_detoast_datum_packed(raw);
                    let mut bytes = super::varlena::payload(detoasted);
                    if bpchar {
                        bytes = without_trailing_blanks(bytes);
                    }
                    let result = use_bytes(bytes, text_kind);
                    if detoasted != raw {
                        pg_sys::pfree(detoasted.cast());
                    }
                    result
                }
                Encoding::Uuid => use_bytes(
                    std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), 16),
                    KeyKind::Uuid,
                ),
                Encoding::Name => use_bytes(
                    std::ffi::CStr::from_ptr(datum.cast_mut_ptr()).to_bytes(),
                    KeyKind::Text,
                ),
                Encoding::EnumLabel(info) => {
                    with_output_text(info, datum, |label| use_bytes(label, KeyKind::Text))
                }
                Encoding::Numeric(info) => {
                    let kind = with_output_text(info, datum, |text| {
                        numeric_canonical(std::str::from_utf8(text).unwrap_or_default(), scratch)
                    });
                    use_bytes(scratch, kind)
                }
                Encoding::Float4 => {
                    let value = f32::from_bits(datum.value() as u32) as f64;
                    use_bytes(&float_canonical(value), KeyKind::Other)
                }
                Encoding::Float8 => {
                    let value = f64::from_bits(datum.value() as u64);
                    use_bytes(&float_canonical(value), KeyKind::Other)
                }
                Encoding::Interval => {
                    // Intervals are 16 bytes by reference; read unaligned like any stored field.
                    let interval =
                        std::ptr::read_unaligned(datum.cast_mut_ptr::<pg_sys::Interval>());
                    let bytes = interval_canonical(interval.time, interval.day, interval.month);
                    use_bytes(&bytes, KeyKind::Other)
                }
                Encoding::Jsonb(numeric_out) => {
                    scratch.clear();
                    jsonb_canonical(datum, numeric_out, scratch);
                    use_bytes(scratch, KeyKind::Other)
                }
                Encoding::HashExtended(info, collation) => {
                    let hash = pg_sys::FunctionCall2Coll(
                        info,
                        *collation,
                        datum,
                        pg_sys::Datum::from(0i64),
                    );
                    let mut bytes = [TAG_HASH_EXTENDED; 9];
                    bytes[1..].copy_from_slice(&(hash.value() as u64).to_le_bytes());
                    use_bytes(&bytes, KeyKind::Other)
                }
                Encoding::Send(info) => {
                    let sent = pg_sys::SendFunctionCall(info, datum);
                    let result = use_bytes(super::varlena::payload(sent.cast()), KeyKind::Other);
                    pg_sys::pfree(sent.cast());
                    result
                }
            }
        }
    }

    /// Writes the canonical bytes of one non-NULL value into `out` (cleared first) and says
    /// what kind of key they are. `hash_bytes(out)` equals `self.hash(datum)`.
    ///
    /// # Safety
    /// `datum` must be a non-NULL value of the hasher's type.
    pub unsafe fn encode_key(&mut self, datum: pg_sys::Datum, out: &mut Vec<u8>) -> KeyKind {
        out.clear();
        unsafe {
            self.with_canonical_bytes(datum, |bytes, kind| {
                out.extend_from_slice(bytes);
                kind
            })
        }
    }

    /// The hash of one non-NULL value.
    ///
    /// # Safety
    /// `datum` must be a non-NULL value of the hasher's type.
    #[inline]
    pub unsafe fn hash(&mut self, datum: pg_sys::Datum) -> u64 {
        // Integers skip the byte-slice detour (same bits: see hash_int).
        match self.integer(datum) {
            Some(value) => hash_int(value),
            None => unsafe { self.hash_canonical_bytes(datum) },
        }
    }

    /// The value of an int2, int4 or int8 datum widened to i64; None for other types.
    #[inline]
    pub fn integer(&self, datum: pg_sys::Datum) -> Option<i64> {
        match self.encoding {
            Encoding::Int2 => Some(datum.value() as i16 as i64),
            Encoding::Int4 => Some(datum.value() as i32 as i64),
            Encoding::Int8 => Some(datum.value() as i64),
            _ => None,
        }
    }

    /// The hash of a value hashed from its bytes that needs nothing from PostgreSQL to hash: a
    /// uuid, a float, or a text-like varlena or char(n) stored inline and uncompressed. None
    /// for the rest (integers, which [`Self::integer`] serves; a TOAST pointer, a compressed
    /// value, a type whose encoding calls a function). It can neither fail nor call into
    /// PostgreSQL.
    ///
    /// # Safety
    /// `datum` must be a non-null value of this hasher's type.
    #[inline(always)]
    pub unsafe fn pure_bytes_hash(&self, datum: pg_sys::Datum) -> Option<u64> {
        unsafe {
            match self.encoding {
                Encoding::VarlenaBytes => inline_payload(datum.cast_mut_ptr()).map(hash_bytes),
                Encoding::Bpchar => inline_payload(datum.cast_mut_ptr())
                    .map(|bytes| hash_bytes(without_trailing_blanks(bytes))),
                Encoding::Uuid => Some(hash_bytes(std::slice::from_raw_parts(
                    datum.cast_mut_ptr::<u8>(),
                    16,
                ))),
                Encoding::Float8 => Some(hash_bytes(&float_canonical(f64::from_bits(
                    datum.value() as u64,
                )))),
                _ => None,
            }
        }
    }

    /// The other types, kept out of line so that the integer path above inlines into the
    /// aggregates' transition functions.
    #[inline(never)]
    unsafe fn hash_canonical_bytes(&mut self, datum: pg_sys::Datum) -> u64 {
        unsafe { self.with_canonical_bytes(datum, |bytes, _| hash_bytes(bytes)) }
    }
}

/// The hasher already cached in `fcinfo->flinfo->fn_extra`, if any (no allocation, no call
/// into PostgreSQL).
///
/// # Safety
/// `fcinfo` must be a valid call whose `fn_extra` is only ever set by [`cached_hasher`].
#[inline]
pub unsafe fn existing_hasher<'a>(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'a ValueHasher> {
    unsafe { ((*(*fcinfo).flinfo).fn_extra as *const ValueHasher).as_ref() }
}

/// The hasher cached in `fcinfo->flinfo->fn_extra` for argument `arg`, built on first use.
///
/// # Safety
/// `fcinfo` must be a valid call whose argument `arg` is polymorphic (its type resolvable).
#[inline]
pub unsafe fn cached_hasher<'a>(fcinfo: pg_sys::FunctionCallInfo, arg: i32) -> &'a mut ValueHasher {
    unsafe {
        let existing = (*(*fcinfo).flinfo).fn_extra as *mut ValueHasher;
        if !existing.is_null() {
            return &mut *existing;
        }
        new_cached_hasher(fcinfo, arg)
    }
}

/// What a call site keeps in `fn_extra` when it needs more than the key hasher: the hasher's
/// slot (which [`cached_hasher`] fills) and the site's own state.
struct SiteWithHasher<T> {
    hasher: *mut std::ffi::c_void,
    state: T,
}

/// The key hasher for argument `arg` and this call site's own state, made by `init` in the
/// call's memory context on first use (point queries keep there what they last read).
///
/// # Safety
/// `fcinfo` must be a valid call whose argument `arg` is polymorphic and whose `fn_extra` is
/// only ever set through this function, always with the same `T`.
pub unsafe fn site_state_and_hasher<'a, T>(
    fcinfo: pg_sys::FunctionCallInfo,
    arg: i32,
    init: impl FnOnce(pg_sys::MemoryContext) -> T,
) -> (&'a mut ValueHasher, &'a mut T) {
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            let state = init((*flinfo).fn_mcxt);
            let site = pg_sys::MemoryContextAlloc(
                (*flinfo).fn_mcxt,
                std::mem::size_of::<SiteWithHasher<T>>(),
            ) as *mut SiteWithHasher<T>;
            site.write(SiteWithHasher {
                hasher: std::ptr::null_mut(),
                state,
            });
            (*flinfo).fn_extra = site.cast();
        }
        let site = (*flinfo).fn_extra as *mut SiteWithHasher<T>;
        // Lend cached_hasher the slot: it finds or makes its hasher there. Making one is the
        // only step that can fail, before the slot is written, so an error leaves fn_extra null
        // and a later call on this site starts afresh instead of misreading the slot. Nothing
        // else runs while the slot is lent.
        (*flinfo).fn_extra = (*site).hasher;
        let hasher: *mut ValueHasher = cached_hasher(fcinfo, arg);
        (*site).hasher = (*flinfo).fn_extra;
        (*flinfo).fn_extra = site.cast();
        (&mut *hasher, &mut (*site).state)
    }
}

#[cold]
unsafe fn new_cached_hasher<'a>(fcinfo: pg_sys::FunctionCallInfo, arg: i32) -> &'a mut ValueHasher {
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let mut type_oid = pg_sys::get_fn_expr_argtype(flinfo, arg);
        if type_oid == pg_sys::InvalidOid {
            // No call expression (Citus calls transition functions without one): the declared
            // type, unless it is polymorphic.
            type_oid = declared_argument_type((*flinfo).fn_oid, arg);
        }
        if let Some(original) = aggregate_argument_type(fcinfo, arg, type_oid) {
            type_oid = original;
        }
        if type_oid == pg_sys::InvalidOid {
            pgrx::error!("could not determine the type of the value to hash");
        }
        let context = (*flinfo).fn_mcxt;
        let slot = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<ValueHasher>())
            as *mut ValueHasher;
        slot.write(ValueHasher::new(type_oid, context));
        (*flinfo).fn_extra = slot.cast();
        &mut *slot
    }
}

/// In an aggregate's transition function, the type of the value the aggregate was given for
/// argument `arg` (the aggregate's argument `arg - 1`), looking through binary-coercible casts:
/// `approx_count_distinct(c)` on a citext column resolves to the text overload, with the
/// column relabelled as text, but must hash by citext's equality. None outside an aggregate,
/// and None unless that argument has the type the function is called with (`passed`): Citus
/// calls transition functions from inside its own aggregate (worker_partial_agg), whose
/// Aggref is not ours.
unsafe fn aggregate_argument_type(
    fcinfo: pg_sys::FunctionCallInfo,
    arg: i32,
    passed: pg_sys::Oid,
) -> Option<pg_sys::Oid> {
    unsafe {
        let aggref = pg_sys::AggGetAggref(fcinfo);
        if aggref.is_null() || arg < 1 {
            return None;
        }
        let args = (*aggref).args;
        if args.is_null() || (*args).length < arg {
            return None;
        }
        let entry = (*(*args).elements.add(arg as usize - 1)).ptr_value as *mut pg_sys::TargetEntry;
        let mut expr = (*entry).expr as *mut pg_sys::Node;
        if expr.is_null() || pg_sys::exprType(expr) != passed {
            return None;
        }
        while !expr.is_null() && (*expr).type_ == pg_sys::NodeTag::T_RelabelType {
            expr = (*(expr as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        (!expr.is_null()).then(|| pg_sys::exprType(expr))
    }
}

/// The declared type of argument `arg` of function `fn_oid`; InvalidOid if it is polymorphic.
unsafe fn declared_argument_type(fn_oid: pg_sys::Oid, arg: i32) -> pg_sys::Oid {
    unsafe {
        let mut types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut count = 0;
        pg_sys::get_func_signature(fn_oid, &mut types, &mut count);
        if arg < 0 || arg >= count {
            return pg_sys::InvalidOid;
        }
        let declared = *types.add(arg as usize);
        let polymorphic = matches!(
            declared,
            pg_sys::ANYELEMENTOID
                | pg_sys::ANYOID
                | pg_sys::ANYNONARRAYOID
                | pg_sys::ANYCOMPATIBLEOID
                | pg_sys::ANYCOMPATIBLENONARRAYOID
        );
        if polymorphic {
            pg_sys::InvalidOid
        } else {
            declared
        }
    }
}
