//! A table row as JSON text, the same text PostgreSQL's `row_to_json` gives, without its
//! per-call catalog lookups: the column list, each column's JSON category and output function
//! are looked up once per row type and kept for the session. Rows with a column this does not
//! handle (arrays, composites, user-defined types, which may have casts to json) go through
//! `row_to_json` itself.

use crate::common::text::{push_i64, write_json_string};
use crate::common::tupdesc::attribute;
use ahash::AHashMap as HashMap;
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::ffi::CStr;

/// PostgreSQL's JSON categories (utils/adt/json.c) of the types handled here.
enum Category {
    Bool,
    Int2,
    Int4,
    Int8,
    /// Other numbers: the output text when it is a JSON number, else a string (NaN, Infinity).
    Number,
    /// date, timestamp, timestamptz: ISO 8601 as `JsonEncodeDateTime` writes it.
    DateTime(pg_sys::Oid),
    /// json and jsonb: the output text as is.
    Json,
    /// text and varchar: the bytes, escaped.
    Text,
    /// Everything else built in: the output text, escaped.
    Other,
}

struct Column {
    /// `"name":`, escaped.
    key: String,
    name: Vec<u8>,
    type_oid: pg_sys::Oid,
    category: Category,
    /// numeric or a domain over it: a finite value goes into jsonb as the datum itself, the
    /// value `numeric_in` would read back from its output text.
    numeric: bool,
    /// Output function (Number, Json, Other), in TopMemoryContext.
    output: Box<pg_sys::FmgrInfo>,
}

/// What is known about one row type: its live columns, or None when `row_to_json` is needed.
struct RowShape {
    natts: usize,
    /// (attribute index, column) of the columns that are not dropped.
    columns: Option<Vec<(usize, Column)>>,
    /// A row's deformed values and null flags, reused from row to row.
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Positions in `columns` in the order of jsonb's object keys: shorter names first, then
    /// bytewise (`lengthCompareJsonbString`).
    jsonb_order: Vec<usize>,
}

thread_local! {
    static SHAPES: RefCell<HashMap<pg_sys::Oid, RowShape>> = RefCell::new(HashMap::new());
}

unsafe fn categorize(type_oid: pg_sys::Oid) -> Option<Category> {
    unsafe {
        let base = pg_sys::getBaseType(type_oid);
        Some(match base {
            pg_sys::BOOLOID => Category::Bool,
            pg_sys::INT2OID if base == type_oid => Category::Int2,
            pg_sys::INT4OID if base == type_oid => Category::Int4,
            pg_sys::INT8OID if base == type_oid => Category::Int8,
            pg_sys::INT2OID
            | pg_sys::INT4OID
            | pg_sys::INT8OID
            | pg_sys::FLOAT4OID
            | pg_sys::FLOAT8OID
            | pg_sys::NUMERICOID => Category::Number,
            pg_sys::DATEOID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => {
                Category::DateTime(base)
            }
            pg_sys::JSONOID | pg_sys::JSONBOID => Category::Json,
            pg_sys::TEXTOID | pg_sys::VARCHAROID if base == type_oid => Category::Text,
            _ if u32::from(base) >= pg_sys::FirstNormalObjectId => return None,
            _ if pg_sys::get_element_type(base) != pg_sys::InvalidOid
                || pg_sys::type_is_rowtype(base) =>
            {
                return None;
            }
            _ => Category::Other,
        })
    }
}

unsafe fn build_shape(tupdesc: pg_sys::TupleDesc) -> RowShape {
    unsafe {
        let natts = (*tupdesc).natts as usize;
        let mut columns = Vec::with_capacity(natts);
        for i in 0..natts {
            let att = attribute(tupdesc, i);
            if att.attisdropped {
                continue;
            }
            let Some(category) = categorize(att.atttypid) else {
                return RowShape {
                    natts,
                    columns: None,
                    values: Vec::new(),
                    nulls: Vec::new(),
                    jsonb_order: Vec::new(),
                };
            };
            let name = CStr::from_ptr(att.attname.data.as_ptr());
            let mut key = String::new();
            write_json_string(&mut key, &name.to_string_lossy());
            key.push(':');
            let mut output: Box<pg_sys::FmgrInfo> = Box::new(std::mem::zeroed());
            let mut output_oid = pg_sys::InvalidOid;
            let mut is_varlena = false;
            pg_sys::getTypeOutputInfo(att.atttypid, &mut output_oid, &mut is_varlena);
            pg_sys::fmgr_info_cxt(output_oid, &mut *output, pg_sys::TopMemoryContext);
            columns.push((
                i,
                Column {
                    key,
                    name: name.to_bytes().to_vec(),
                    type_oid: att.atttypid,
                    numeric: pg_sys::getBaseType(att.atttypid) == pg_sys::NUMERICOID,
                    category,
                    output,
                },
            ));
        }
        let mut jsonb_order: Vec<usize> = (0..columns.len()).collect();
        jsonb_order.sort_by(|&a, &b| {
            let (a, b) = (&columns[a].1.name, &columns[b].1.name);
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        });
        RowShape {
            natts,
            columns: Some(columns),
            values: vec![pg_sys::Datum::from(0usize); natts],
            nulls: vec![false; natts],
            jsonb_order,
        }
    }
}

/// The cached shape still describes `tupdesc` (ALTER TABLE can add, drop, rename or retype
/// columns under the same row type).
unsafe fn shape_matches(shape: &RowShape, tupdesc: pg_sys::TupleDesc) -> bool {
    unsafe {
        if shape.natts != (*tupdesc).natts as usize {
            return false;
        }
        let Some(columns) = &shape.columns else {
            return true;
        };
        let live = (0..shape.natts)
            .filter(|&i| !attribute(tupdesc, i).attisdropped)
            .count();
        live == columns.len()
            && columns.iter().all(|(i, c)| {
                let att = attribute(tupdesc, *i);
                !att.attisdropped
                    && att.atttypid == c.type_oid
                    && CStr::from_ptr(att.attname.data.as_ptr()).to_bytes() == c.name.as_slice()
            })
    }
}

/// A JSON number as PostgreSQL's `IsValidJsonNumber` accepts it.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

unsafe fn push_value(out: &mut String, column: &mut Column, datum: pg_sys::Datum) {
    unsafe {
        let output_text = |column: &mut Column| {
            // In the caller's memory context (the statement trigger resets it per row).
            let text = pg_sys::OutputFunctionCall(&mut *column.output, datum);
            CStr::from_ptr(text).to_string_lossy()
        };
        match column.category {
            Category::Bool => out.push_str(if datum.value() != 0 { "true" } else { "false" }),
            Category::Int2 => push_i64(out, datum.value() as i16 as i64),
            Category::Int4 => push_i64(out, datum.value() as i32 as i64),
            Category::Int8 => push_i64(out, datum.value() as i64),
            Category::Number => {
                let text = output_text(column);
                if is_json_number(&text) {
                    out.push_str(&text);
                } else {
                    write_json_string(out, &text);
                }
            }
            Category::DateTime(_) => {
                // ISO 8601 needs no escaping.
                out.push('"');
                out.push_str(&unescaped_output(column, datum));
                out.push('"');
            }
            Category::Json => out.push_str(&output_text(column)),
            Category::Text => {
                let text = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
                let bytes = crate::common::varlena::payload(text);
                write_json_string(out, &String::from_utf8_lossy(bytes));
            }
            Category::Other => write_json_string(out, &output_text(column)),
        }
    }
}

/// A row: a heap tuple, or its values and null flags already deformed (a slot's, one per
/// attribute of the row type).
#[derive(Clone, Copy)]
pub enum Row<'a> {
    Heap(pg_sys::HeapTuple),
    Deformed(&'a [pg_sys::Datum], &'a [bool]),
}

impl Row<'_> {
    /// The row as a heap tuple (formed from deformed values, for the `row_to_json` fallback).
    unsafe fn heap_tuple(self, tupdesc: pg_sys::TupleDesc) -> pg_sys::HeapTuple {
        unsafe {
            match self {
                Row::Heap(tuple) => tuple,
                Row::Deformed(values, nulls) => pg_sys::heap_form_tuple(
                    tupdesc,
                    values.as_ptr() as *mut pg_sys::Datum,
                    nulls.as_ptr() as *mut bool,
                ),
            }
        }
    }
}

/// `row_to_json` of `tuple` (a row of `tupdesc`).
pub unsafe fn row_json(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> String {
    let mut out = String::new();
    unsafe { row_json_into(&mut out, Row::Heap(tuple), tupdesc) };
    out
}

/// `row_to_json` of `row` (a row of `tupdesc`), appended to `out`.
pub unsafe fn row_json_into(out: &mut String, row: Row, tupdesc: pg_sys::TupleDesc) {
    unsafe {
        if row_json_cached(out, row, tupdesc).is_some() {
            return;
        }
        let datum = pg_sys::heap_copy_tuple_as_datum(row.heap_tuple(tupdesc), tupdesc);
        match direct_function_call_as_datum(pg_sys::row_to_json, &[Some(datum)]) {
            Some(json) => {
                let text = pg_sys::text_to_cstring(json.cast_mut_ptr());
                out.push_str(&CStr::from_ptr(text).to_string_lossy());
            }
            None => out.push_str("null"),
        }
    }
}

/// `to_jsonb` of `tuple`, built as `to_jsonb` builds it (the same categories and number
/// rules) from the cached column information, without its catalog lookups; rows with a json
/// or jsonb column, or a column `row_to_json` handles itself, go through their JSON text and
/// `jsonb_in` (a type with a cast to json but another to jsonb is the one case that differs).
pub unsafe fn row_jsonb(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> pg_sys::Datum {
    unsafe { row_jsonb_of(Row::Heap(tuple), tupdesc) }
}

/// `row_jsonb` of `row`.
pub unsafe fn row_jsonb_of(row: Row, tupdesc: pg_sys::TupleDesc) -> pg_sys::Datum {
    unsafe {
        if let Some(datum) = row_jsonb_cached(row, tupdesc) {
            return datum;
        }
        let mut text = String::new();
        row_json_into(&mut text, row, tupdesc);
        crate::common::varlena::jsonb_from_text(&text)
    }
}

// jsonb's on-disk layout (utils/jsonb.h): a container header, one JEntry per key then one per
// value, then the keys' bytes and the values' data.
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JENTRY_OFFLENMASK: usize = 0x0fff_ffff;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;

/// Appends a numeric (its whole varlena, 4-byte header) at an int-aligned offset of `buf`,
/// the padding counting as its data, as `convertJsonbScalar` does.
unsafe fn push_numeric(buf: &mut Vec<u8>, numeric: pg_sys::Datum) {
    unsafe {
        buf.resize(buf.len().next_multiple_of(4), 0);
        let ptr = numeric.cast_mut_ptr::<pg_sys::varlena>();
        let len = pgrx::varlena::varsize_any(ptr);
        buf.extend_from_slice(std::slice::from_raw_parts(ptr as *const u8, len));
    }
}

/// Appends `v` as `int64_to_numeric` makes it (at an int-aligned offset, as `push_numeric`),
/// without a call and a palloc: numeric's short format (numeric.c), a 4-byte varlena header,
/// the 16-bit header (short, sign, scale 0, weight), then the base-10,000 digits from the most
/// significant, trailing zero digits dropped; zero has no digits.
fn push_int_numeric(buf: &mut Vec<u8>, v: i64) {
    const NUMERIC_SHORT: u16 = 0x8000;
    const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
    buf.resize(buf.len().next_multiple_of(4), 0);
    let mut digits = [0u16; 5];
    let mut n = 0;
    let mut rest = v.unsigned_abs();
    while rest > 0 {
        digits[n] = (rest % 10_000) as u16;
        rest /= 10_000;
        n += 1;
    }
    let low = digits[..n].iter().take_while(|d| **d == 0).count();
    let header = match n - low {
        0 => NUMERIC_SHORT,
        _ if v < 0 => NUMERIC_SHORT | NUMERIC_SHORT_SIGN_MASK | (n as u16 - 1),
        _ => NUMERIC_SHORT | (n as u16 - 1),
    };
    push_varsize_4b(buf, pg_sys::VARHDRSZ + 2 + 2 * (n - low));
    buf.extend_from_slice(&header.to_ne_bytes());
    for d in digits[low..n].iter().rev() {
        buf.extend_from_slice(&d.to_ne_bytes());
    }
}

/// The bytes of a varlena datum after its header: in place when it is inline and
/// uncompressed, else detoasted (into the current memory context).
unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    unsafe {
        match crate::common::varlena::inline_payload(datum.cast_mut_ptr::<u8>()) {
            Some(bytes) => bytes,
            None => crate::common::varlena::payload(pg_sys::pg_detoast_datum_packed(
                datum.cast_mut_ptr(),
            )),
        }
    }
}

/// Appends a numeric datum (with a 4-byte header, as jsonb stores it) like `push_numeric`;
/// false, and nothing appended, for NaN and the infinities (which `to_jsonb` makes strings).
unsafe fn push_finite_numeric(buf: &mut Vec<u8>, datum: pg_sys::Datum) -> bool {
    unsafe {
        let bytes = varlena_bytes(datum);
        // NUMERIC_IS_SPECIAL: the two top bits of the first 16-bit word are set.
        if bytes.len() < 2 || u16::from_ne_bytes([bytes[0], bytes[1]]) & 0xc000 == 0xc000 {
            return false;
        }
        buf.resize(buf.len().next_multiple_of(4), 0);
        push_varsize_4b(buf, pg_sys::VARHDRSZ + bytes.len());
        buf.extend_from_slice(bytes);
        true
    }
}

/// SET_VARSIZE of a 4-byte varlena header of `len` bytes in all, appended to `buf`.
fn push_varsize_4b(buf: &mut Vec<u8>, len: usize) {
    #[cfg(target_endian = "little")]
    buf.extend_from_slice(&((len as u32) << 2).to_ne_bytes());
    #[cfg(target_endian = "big")]
    buf.extend_from_slice(&((len as u32) & 0x3fff_ffff).to_ne_bytes());
}

/// The jsonb object of the row, written in jsonb's binary layout directly: the keys in the
/// order jsonb keeps them (shorter first, then bytewise; sorted once per row type), each
/// value as `to_jsonb` makes it. None when a json column needs the text path.
unsafe fn row_jsonb_cached(row: Row, tupdesc: pg_sys::TupleDesc) -> Option<pg_sys::Datum> {
    unsafe {
        with_columns(row, tupdesc, |columns, sorted, values, nulls| {
            let n = columns.len();
            if columns
                .iter()
                .any(|(_, c)| matches!(c.category, Category::Json))
            {
                return None;
            }
            // The container's payload (after the varlena header, which is 4 bytes, so int
            // alignment is the same counted from here).
            let mut buf: Vec<u8> = Vec::with_capacity(4 + 8 * n + 24 * n);
            buf.extend_from_slice(&(n as u32 | JB_FOBJECT).to_ne_bytes());
            buf.resize(4 + 8 * n, 0);
            let data_start = buf.len();
            let set_entry = |buf: &mut Vec<u8>, index: usize, kind: u32, len: usize, end: usize| {
                let meta = if index % JB_OFFSET_STRIDE == 0 {
                    kind | (end - data_start) as u32 | JENTRY_HAS_OFF
                } else {
                    kind | len as u32
                };
                buf[4 + 4 * index..8 + 4 * index].copy_from_slice(&meta.to_ne_bytes());
            };
            for (k, &c) in sorted.iter().enumerate() {
                let name = &columns[c].1.name;
                buf.extend_from_slice(name);
                let end = buf.len();
                set_entry(&mut buf, k, JENTRY_ISSTRING, name.len(), end);
            }
            for (k, &c) in sorted.iter().enumerate() {
                let (i, column) = &mut columns[c];
                let start = buf.len();
                let datum = values[*i];
                let kind = if nulls[*i] {
                    JENTRY_ISNULL
                } else if column.numeric && push_finite_numeric(&mut buf, datum) {
                    JENTRY_ISNUMERIC
                } else {
                    match column.category {
                        Category::Bool if datum.value() != 0 => JENTRY_ISBOOL_TRUE,
                        Category::Bool => JENTRY_ISBOOL_FALSE,
                        Category::Int2 | Category::Int4 | Category::Int8 => {
                            let v = match column.category {
                                Category::Int2 => datum.value() as i16 as i64,
                                Category::Int4 => datum.value() as i32 as i64,
                                _ => datum.value() as i64,
                            };
                            push_int_numeric(&mut buf, v);
                            JENTRY_ISNUMERIC
                        }
                        Category::Text => {
                            buf.extend_from_slice(varlena_bytes(datum));
                            JENTRY_ISSTRING
                        }
                        _ => {
                            let raw = unescaped_output(column, datum);
                            // to_jsonb's rule: a number category's text that is a JSON
                            // number becomes a jsonb number, anything else a string.
                            if matches!(column.category, Category::Number) && is_json_number(&raw) {
                                let c = crate::common::varlena::to_cstring(raw);
                                let numeric = direct_function_call_as_datum(
                                    pg_sys::numeric_in,
                                    &[
                                        Some(pg_sys::Datum::from(c.as_ptr())),
                                        Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                                        Some(pg_sys::Datum::from(-1i32)),
                                    ],
                                )?;
                                push_numeric(&mut buf, numeric);
                                JENTRY_ISNUMERIC
                            } else {
                                buf.extend_from_slice(raw.as_bytes());
                                JENTRY_ISSTRING
                            }
                        }
                    }
                };
                let end = buf.len();
                set_entry(&mut buf, n + k, kind, end - start, end);
            }
            // Larger than a jsonb object can hold: the text path raises jsonb's error.
            if buf.len() - data_start > JENTRY_OFFLENMASK {
                return None;
            }
            Some(pg_sys::Datum::from(crate::common::varlena::palloc_varlena(
                &buf,
            )))
        })
    }
}

/// The string a non-numeric scalar becomes in jsonb: the date/time text `to_jsonb` writes, or
/// the type's output text (for a number that is no JSON number, e.g. NaN).
unsafe fn unescaped_output(column: &mut Column, datum: pg_sys::Datum) -> String {
    unsafe {
        match column.category {
            Category::DateTime(type_oid) => {
                let text = pg_sys::JsonEncodeDateTime(
                    std::ptr::null_mut(),
                    datum,
                    type_oid,
                    std::ptr::null(),
                );
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
            _ => {
                let text = pg_sys::OutputFunctionCall(&mut *column.output, datum);
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        }
    }
}

/// Runs `f` over the row type's cached live columns and the row's deformed values and null
/// flags; None when the row type needs `row_to_json`.
unsafe fn with_columns<T>(
    row: Row,
    tupdesc: pg_sys::TupleDesc,
    f: impl FnOnce(&mut Vec<(usize, Column)>, &[usize], &[pg_sys::Datum], &[bool]) -> Option<T>,
) -> Option<T> {
    unsafe {
        let rowtype = (*tupdesc).tdtypeid;
        SHAPES.with(|shapes| {
            let mut shapes = shapes.borrow_mut();
            let stale = shapes
                .get(&rowtype)
                .is_none_or(|shape| !shape_matches(shape, tupdesc));
            if stale {
                shapes.insert(rowtype, build_shape(tupdesc));
            }
            let shape = shapes.get_mut(&rowtype)?;
            let columns = shape.columns.as_mut()?;
            match row {
                Row::Deformed(values, nulls)
                    if values.len() >= shape.natts && nulls.len() >= shape.natts =>
                {
                    f(columns, &shape.jsonb_order, values, nulls)
                }
                _ => {
                    let (values, nulls) = (&mut shape.values, &mut shape.nulls);
                    pg_sys::heap_deform_tuple(
                        row.heap_tuple(tupdesc),
                        tupdesc,
                        values.as_mut_ptr(),
                        nulls.as_mut_ptr(),
                    );
                    f(columns, &shape.jsonb_order, values, nulls)
                }
            }
        })
    }
}

/// The row's JSON from the cached column information appended to `out`, or None (and `out`
/// unchanged) when the row type needs `row_to_json` (see the module comment).
unsafe fn row_json_cached(out: &mut String, row: Row, tupdesc: pg_sys::TupleDesc) -> Option<()> {
    unsafe {
        with_columns(row, tupdesc, |columns, _, values, nulls| {
            out.reserve(32 * columns.len());
            out.push('{');
            for (n, (i, column)) in columns.iter_mut().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&column.key);
                if nulls[*i] {
                    out.push_str("null");
                } else {
                    push_value(out, column, values[*i]);
                }
            }
            out.push('}');
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_json_number;

    #[test]
    fn json_numbers_as_postgresql_checks_them() {
        for ok in [
            "0",
            "-1",
            "10.50",
            "1e+100",
            "1.5E-7",
            "123456789012345678901234567890",
        ] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "01x",
            "1e+",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
