//! A table row as JSON text, the same text PostgreSQL's `row_to_json` gives, without its
//! per-call catalog lookups: the column list, each column's JSON category and output function
//! are looked up once per row type and kept for the session. Rows with a column this does not
//! handle (arrays, composites, user-defined types, which may have casts to json) go through
//! `row_to_json` itself.

use crate::common::text::write_json_string;
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
    /// Output function (Number, Json, Other), in TopMemoryContext.
    output: Box<pg_sys::FmgrInfo>,
}

/// What is known about one row type: its live columns, or None when `row_to_json` is needed.
struct RowShape {
    natts: usize,
    /// (attribute index, column) of the columns that are not dropped.
    columns: Option<Vec<(usize, Column)>>,
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
                    category,
                    output,
                },
            ));
        }
        RowShape {
            natts,
            columns: Some(columns),
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
            let text = pg_sys::OutputFunctionCall(&mut *column.output, datum);
            CStr::from_ptr(text).to_string_lossy().into_owned()
        };
        match column.category {
            Category::Bool => out.push_str(if datum.value() != 0 { "true" } else { "false" }),
            Category::Int2 => out.push_str(&(datum.value() as i16).to_string()),
            Category::Int4 => out.push_str(&(datum.value() as i32).to_string()),
            Category::Int8 => out.push_str(&(datum.value() as i64).to_string()),
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

/// `row_to_json` of `tuple` (a row of `tupdesc`).
pub unsafe fn row_json(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> String {
    unsafe {
        match row_json_cached(tuple, tupdesc) {
            Some(json) => json,
            None => {
                let row = pg_sys::heap_copy_tuple_as_datum(tuple, tupdesc);
                match direct_function_call_as_datum(pg_sys::row_to_json, &[Some(row)]) {
                    Some(json) => {
                        let text = pg_sys::text_to_cstring(json.cast_mut_ptr());
                        CStr::from_ptr(text).to_string_lossy().into_owned()
                    }
                    None => "null".to_string(),
                }
            }
        }
    }
}

/// `to_jsonb` of `tuple`, built as `to_jsonb` builds it (the same categories and number
/// rules) from the cached column information, without its catalog lookups; rows with a json
/// or jsonb column, or a column `row_to_json` handles itself, go through their JSON text and
/// `jsonb_in` (a type with a cast to json but another to jsonb is the one case that differs).
pub unsafe fn row_jsonb(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> pg_sys::Datum {
    unsafe {
        if let Some(datum) = row_jsonb_cached(tuple, tupdesc) {
            return datum;
        }
        let text = crate::common::varlena::to_cstring(row_json(tuple, tupdesc));
        direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
        .unwrap_or(pg_sys::Datum::from(0usize))
    }
}

unsafe fn row_jsonb_cached(
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
) -> Option<pg_sys::Datum> {
    unsafe {
        with_columns(tuple, tupdesc, |columns, values, nulls| {
            if columns
                .iter()
                .any(|(_, c)| matches!(c.category, Category::Json))
            {
                return None;
            }
            // pushJsonbValue keeps pointers to string bytes until JsonbValueToJsonb: the texts
            // made here live in `texts` until then.
            let mut texts: Vec<String> = Vec::new();
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            let push = |state: &mut *mut pg_sys::JsonbParseState,
                        token,
                        value: Option<pg_sys::JsonbValue>| {
                let mut value = value;
                let ptr = value
                    .as_mut()
                    .map_or(std::ptr::null_mut(), |v| v as *mut pg_sys::JsonbValue);
                pg_sys::pushJsonbValue(state, token, ptr)
            };
            let string = |bytes: *const u8, len: usize| {
                let mut v: pg_sys::JsonbValue = std::mem::zeroed();
                v.type_ = pg_sys::jbvType::jbvString;
                v.val.string.len = len as i32;
                v.val.string.val = bytes as *mut std::ffi::c_char;
                v
            };
            let numeric = |n: pg_sys::Numeric| {
                let mut v: pg_sys::JsonbValue = std::mem::zeroed();
                v.type_ = pg_sys::jbvType::jbvNumeric;
                v.val.numeric = n;
                v
            };
            push(
                &mut state,
                pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT,
                None,
            );
            for (i, column) in columns.iter_mut() {
                push(
                    &mut state,
                    pg_sys::JsonbIteratorToken::WJB_KEY,
                    Some(string(column.name.as_ptr(), column.name.len())),
                );
                let datum = values[*i];
                let value = if nulls[*i] {
                    let mut v: pg_sys::JsonbValue = std::mem::zeroed();
                    v.type_ = pg_sys::jbvType::jbvNull;
                    v
                } else {
                    match column.category {
                        Category::Bool => {
                            let mut v: pg_sys::JsonbValue = std::mem::zeroed();
                            v.type_ = pg_sys::jbvType::jbvBool;
                            v.val.boolean = datum.value() != 0;
                            v
                        }
                        Category::Int2 => {
                            numeric(pg_sys::int64_to_numeric(datum.value() as i16 as i64))
                        }
                        Category::Int4 => {
                            numeric(pg_sys::int64_to_numeric(datum.value() as i32 as i64))
                        }
                        Category::Int8 => numeric(pg_sys::int64_to_numeric(datum.value() as i64)),
                        Category::Text => {
                            let text = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
                            let bytes = crate::common::varlena::payload(text);
                            string(bytes.as_ptr(), bytes.len())
                        }
                        _ => {
                            let raw = unescaped_output(column, datum);
                            // to_jsonb's rule: a number category's text that is a JSON
                            // number becomes a jsonb number, anything else a string.
                            if matches!(column.category, Category::Number) && is_json_number(&raw) {
                                let c = crate::common::varlena::to_cstring(raw);
                                numeric(
                                    direct_function_call_as_datum(
                                        pg_sys::numeric_in,
                                        &[
                                            Some(pg_sys::Datum::from(c.as_ptr())),
                                            Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                                            Some(pg_sys::Datum::from(-1i32)),
                                        ],
                                    )?
                                    .cast_mut_ptr(),
                                )
                            } else {
                                let v = string(raw.as_ptr(), raw.len());
                                texts.push(raw);
                                v
                            }
                        }
                    }
                };
                push(
                    &mut state,
                    pg_sys::JsonbIteratorToken::WJB_VALUE,
                    Some(value),
                );
            }
            let result = push(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, None);
            let jsonb = pg_sys::JsonbValueToJsonb(result);
            drop(texts);
            Some(pg_sys::Datum::from(jsonb))
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
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
    f: impl FnOnce(&mut Vec<(usize, Column)>, &[pg_sys::Datum], &[bool]) -> Option<T>,
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
            let natts = shape.natts;
            let mut values = vec![pg_sys::Datum::from(0usize); natts];
            let mut nulls = vec![false; natts];
            pg_sys::heap_deform_tuple(tuple, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
            f(columns, &values, &nulls)
        })
    }
}

/// The row's JSON from the cached column information, or None when the row type needs
/// `row_to_json` (see the module comment).
unsafe fn row_json_cached(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> Option<String> {
    unsafe {
        with_columns(tuple, tupdesc, |columns, values, nulls| {
            let mut out = String::with_capacity(32 * columns.len());
            out.push('{');
            for (n, (i, column)) in columns.iter_mut().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&column.key);
                if nulls[*i] {
                    out.push_str("null");
                } else {
                    push_value(&mut out, column, values[*i]);
                }
            }
            out.push('}');
            Some(out)
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
