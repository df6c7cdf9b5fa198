//! Hashing SQL values of any type with the one portable hash (`common::hash`), over the
//! canonical byte encoding that DESIGN.md rule 1 fixes:
//! int2/int4/int8 widened to i64 little-endian; text, varchar and bytea by their bytes
//! (bpchar without its trailing blanks, as its equality ignores them); uuid by its 16 bytes;
//! any other type by its binary send form.
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
    /// int2, int4, int8: 8 bytes, i64 little-endian.
    Integer = 1,
    /// text, varchar, bpchar: UTF-8 bytes.
    Text = 2,
    Bytea = 3,
    Uuid = 4,
    /// Any other type: its binary send form.
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
    /// Text, varchar, bytea: the detoasted bytes.
    VarlenaBytes,
    /// bpchar: the bytes without trailing blanks.
    Bpchar,
    Uuid,
    /// Anything else: the type's send function.
    Send(pg_sys::FmgrInfo),
}

/// char(n) values are canonical without their padding blanks.
fn without_trailing_blanks(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

pub struct ValueHasher {
    type_oid: pg_sys::Oid,
    encoding: Encoding,
}

impl ValueHasher {
    /// A hasher for values of `type_oid`; lives in `context` (send-function lookups too).
    ///
    /// # Safety
    /// `context` must be a valid memory context that outlives the hasher's use.
    pub unsafe fn new(type_oid: pg_sys::Oid, context: pg_sys::MemoryContext) -> Self {
        let encoding = match type_oid {
            pg_sys::INT2OID => Encoding::Int2,
            pg_sys::INT4OID => Encoding::Int4,
            pg_sys::INT8OID => Encoding::Int8,
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BYTEAOID => Encoding::VarlenaBytes,
            pg_sys::BPCHAROID => Encoding::Bpchar,
            pg_sys::UUIDOID => Encoding::Uuid,
            _ => unsafe {
                let mut send_oid = pg_sys::InvalidOid;
                let mut is_varlena = false;
                pg_sys::getTypeBinaryOutputInfo(type_oid, &mut send_oid, &mut is_varlena);
                let mut info: pg_sys::FmgrInfo = std::mem::zeroed();
                pg_sys::fmgr_info_cxt(send_oid, &mut info, context);
                Encoding::Send(info)
            },
        };
        ValueHasher { type_oid, encoding }
    }

    pub fn type_oid(&self) -> pg_sys::Oid {
        self.type_oid
    }

    /// Calls `use_bytes` with the canonical bytes of one non-NULL value: the single place
    /// that defines the encoding, for hashing and for keys alike.
    ///
    /// # Safety
    /// `datum` must be a non-NULL value of the hasher's type.
    unsafe fn with_canonical_bytes<R>(
        &mut self,
        datum: pg_sys::Datum,
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> R {
        unsafe {
            let bpchar = matches!(self.encoding, Encoding::Bpchar);
            match &mut self.encoding {
                Encoding::Int2 | Encoding::Int4 | Encoding::Int8 => {
                    use_bytes(&self.integer(datum).unwrap_or_default().to_le_bytes())
                }
                Encoding::VarlenaBytes | Encoding::Bpchar => {
                    let raw = datum.cast_mut_ptr::<pg_sys::varlena>();
                    let detoasted = pg_sys::pg_detoast_datum_packed(raw);
                    let mut bytes = super::varlena::payload(detoasted);
                    if bpchar {
                        bytes = without_trailing_blanks(bytes);
                    }
                    let result = use_bytes(bytes);
                    if detoasted != raw {
                        pg_sys::pfree(detoasted.cast());
                    }
                    result
                }
                Encoding::Uuid => {
                    use_bytes(std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), 16))
                }
                Encoding::Send(info) => {
                    let sent = pg_sys::SendFunctionCall(info, datum);
                    let result = use_bytes(super::varlena::payload(sent.cast()));
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
        unsafe { self.with_canonical_bytes(datum, |bytes| out.extend_from_slice(bytes)) };
        match self.encoding {
            Encoding::Int2 | Encoding::Int4 | Encoding::Int8 => KeyKind::Integer,
            Encoding::VarlenaBytes if self.type_oid == pg_sys::BYTEAOID => KeyKind::Bytea,
            Encoding::VarlenaBytes | Encoding::Bpchar => KeyKind::Text,
            Encoding::Uuid => KeyKind::Uuid,
            Encoding::Send(_) => KeyKind::Other,
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
    /// uuid, or a text, varchar, bytea or char(n) stored inline and uncompressed. None for the
    /// rest (integers, which [`Self::integer`] serves; a TOAST pointer, a compressed value, a
    /// type hashed by its send function). It can neither fail nor call into PostgreSQL.
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
                Encoding::Int2 | Encoding::Int4 | Encoding::Int8 | Encoding::Send(_) => None,
            }
        }
    }

    /// The other types, kept out of line so that the integer path above inlines into the
    /// aggregates' transition functions.
    #[inline(never)]
    unsafe fn hash_canonical_bytes(&mut self, datum: pg_sys::Datum) -> u64 {
        unsafe { self.with_canonical_bytes(datum, hash_bytes) }
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
