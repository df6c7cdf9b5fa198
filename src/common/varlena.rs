//! Hand-made varlena types: the Rust side of a `CREATE TYPE` that this extension writes itself.
//!
//! [`sql_varlena_type!`] declares a Rust handle for one SQL type. A handle points at a
//! detoasted varlena in the current memory context (arguments) or at a fresh palloc'd one
//! (results); its payload is the type's own byte format. Stored varlenas are only 4-byte
//! aligned (or 1-byte with a short header), so formats read their fields byte-wise.

use crate::common::toast::ChunkReader;
use pgrx::pg_sys;

/// Detoasts (and decompresses) a varlena datum; short-header values may stay in place.
///
/// # Safety
/// `datum` must be a non-null varlena datum.
pub unsafe fn detoast(datum: pg_sys::Datum) -> *mut pg_sys::varlena {
    unsafe { pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()) }
}

/// The payload of a detoasted varlena, after its header.
///
/// # Safety
/// `ptr` must point at a detoasted varlena that outlives the returned slice.
pub unsafe fn payload<'a>(ptr: *const pg_sys::varlena) -> &'a [u8] {
    unsafe {
        let len = pgrx::varlena::varsize_any_exhdr(ptr);
        let data = pgrx::varlena::vardata_any(ptr) as *const u8;
        std::slice::from_raw_parts(data, len)
    }
}

/// The payload of a varlena that is stored inline and uncompressed (a short 1-byte header, or a
/// plain 4-byte one), read in place; None for a TOAST pointer or a compressed value, which need
/// PostgreSQL to detoast. Never calls into PostgreSQL.
///
/// # Safety
/// `ptr` must point at a varlena datum (little-endian header layout, as on every platform
/// PostgreSQL 15 builds for that this extension supports).
#[inline]
pub unsafe fn inline_payload<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    unsafe {
        let first = *ptr;
        if first & 0x01 == 0x01 {
            // 1-byte header; exactly 0x01 marks a TOAST pointer.
            if first == 0x01 {
                return None;
            }
            let len = (first >> 1) as usize;
            return Some(std::slice::from_raw_parts(
                ptr.add(1),
                len.saturating_sub(1),
            ));
        }
        let header = u32::from_le_bytes([*ptr, *ptr.add(1), *ptr.add(2), *ptr.add(3)]);
        if header & 0x03 != 0 {
            return None; // compressed inline
        }
        let len = (header >> 2) as usize;
        Some(std::slice::from_raw_parts(
            ptr.add(4),
            len.saturating_sub(4),
        ))
    }
}

/// A varlena argument read a few bytes at a time, for functions that need little of a large
/// value (a Count-Min point query reads the header and one counter per row). A value stored out
/// of line without compression is read chunk by chunk (see [`crate::common::toast`]): only the
/// chunks holding the bytes asked for are fetched, through one open TOAST relation and index
/// scan, so the cost does not grow with the value; any other value (in memory, inline,
/// compressed) is detoasted once and read in place.
pub struct PieceReader<'a> {
    source: PieceSource<'a>,
    len: usize,
}

enum PieceSource<'a> {
    InPlace(&'a [u8]),
    /// A heap TOAST value, read by chunks.
    Chunks(std::cell::RefCell<ChunkReader>),
    /// A TOAST value of another table access method, read by `pg_detoast_datum_slice`.
    Slices(*mut pg_sys::varlena),
}

impl PieceReader<'_> {
    /// Values stored out of line up to this size (about eight TOAST chunks) are fetched whole.
    pub const WHOLE_UP_TO: usize = 16 * 1024;

    /// A reader of `datum`. With `last`, the caller's memory of the last stored value it read
    /// (one per call site): a value fetched whole is kept until another comes, and a large one
    /// read by chunks is fetched whole when it comes a second time in a row. So many point
    /// queries against one sketch read memory after the first two, and a different sketch on
    /// every call costs only its chunks.
    ///
    /// # Safety
    /// `datum` must be a non-null varlena datum that stays valid while the reader is used.
    pub unsafe fn new(datum: pg_sys::Datum, last: Option<&mut LastStoredValue>) -> Self {
        unsafe {
            let in_place = |ptr: *mut pg_sys::varlena| {
                let bytes = payload(ptr);
                PieceReader {
                    source: PieceSource::InPlace(bytes),
                    len: bytes.len(),
                }
            };
            let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
            let Some(stored) = stored_out_of_line(ptr) else {
                return in_place(detoast(datum)); // in memory or inline: nothing to fetch
            };
            // Reading by chunks costs an index lookup and a page visit per chunk: a value of a
            // few chunks is cheaper to fetch whole, and a compressed one can only be read whole.
            let whole_fetch = stored.compressed || stored.len <= PieceReader::WHOLE_UP_TO;
            let by_chunks = || PieceReader {
                source: match ChunkReader::open(stored.toast_relid, stored.value_id, stored.len) {
                    Some(chunks) => PieceSource::Chunks(std::cell::RefCell::new(chunks)),
                    None => PieceSource::Slices(ptr),
                },
                len: stored.len,
            };
            let Some(last) = last else {
                return if whole_fetch {
                    in_place(detoast(datum))
                } else {
                    by_chunks()
                };
            };
            let same = (last.toast_relid, last.value_id) == (stored.toast_relid, stored.value_id);
            if !same {
                if !last.whole.is_null() {
                    pg_sys::pfree(last.whole.cast());
                    last.whole = std::ptr::null_mut();
                }
                last.toast_relid = stored.toast_relid;
                last.value_id = stored.value_id;
                if !whole_fetch {
                    return by_chunks(); // seen once: maybe the only time
                }
            }
            if last.whole.is_null() {
                let caller = pg_sys::MemoryContextSwitchTo(last.context);
                last.whole = detoast(datum);
                pg_sys::MemoryContextSwitchTo(caller);
            }
            in_place(last.whole)
        }
    }

    /// The length of the value's payload.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Fills `out` with the payload bytes at `offset`; a read past the end is an error (the
    /// callers check their offsets against [`PieceReader::len`], so it means corrupt bytes).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> crate::common::error::Result<()> {
        let past_end = || {
            crate::common::error::Error::new(
                crate::common::error::ErrorKind::InvalidBinary,
                format!(
                    "read of {} bytes at {offset} is past the end of a {}-byte value",
                    out.len(),
                    self.len
                ),
            )
        };
        let end = offset.checked_add(out.len()).filter(|&end| end <= self.len);
        let Some(end) = end else {
            return Err(past_end());
        };
        match self.source {
            PieceSource::InPlace(bytes) => out.copy_from_slice(&bytes[offset..end]),
            PieceSource::Chunks(ref chunks) => chunks.borrow_mut().read(offset, out),
            PieceSource::Slices(ptr) => unsafe {
                // len came from the TOAST pointer, so both fit in i32 (values are < 1 GB).
                let slice = pg_sys::pg_detoast_datum_slice(ptr, offset as i32, out.len() as i32);
                let piece = payload(slice);
                if piece.len() != out.len() {
                    return Err(past_end());
                }
                out.copy_from_slice(piece);
                pg_sys::pfree(slice.cast());
            },
        }
        Ok(())
    }
}

/// A value stored out of line: its payload length, whether its chunks hold it compressed, and
/// its TOAST identity.
struct StoredValue {
    len: usize,
    compressed: bool,
    toast_relid: pg_sys::Oid,
    value_id: pg_sys::Oid,
}

/// What a call site remembers for [`PieceReader::new`]: the TOAST identity of the last stored
/// value it read, and a whole copy of it (in `context`) once it came twice in a row. TOAST value
/// ids are unique within their TOAST table while the value exists, so within one query (the
/// life of a call site's `fn_mcxt`, where callers keep this) the identity names one value.
pub struct LastStoredValue {
    toast_relid: pg_sys::Oid,
    value_id: pg_sys::Oid,
    whole: *mut pg_sys::varlena,
    context: pg_sys::MemoryContext,
}

impl LastStoredValue {
    /// Nothing read yet; copies will live in `context`.
    pub fn new(context: pg_sys::MemoryContext) -> Self {
        LastStoredValue {
            toast_relid: pg_sys::InvalidOid,
            value_id: pg_sys::InvalidOid,
            whole: std::ptr::null_mut(),
            context,
        }
    }
}

/// The value behind a TOAST pointer to on-disk chunks, or None for anything else (in memory,
/// inline).
///
/// # Safety
/// `ptr` must point at a varlena datum.
unsafe fn stored_out_of_line(ptr: *const pg_sys::varlena) -> Option<StoredValue> {
    unsafe {
        if !pgrx::varlena::varatt_is_1b_e(ptr)
            || u32::from(pgrx::varlena::vartag_external(ptr))
                != pg_sys::vartag_external::VARTAG_ONDISK as u32
        {
            return None;
        }
        // The pointer's fields follow the 2-byte external header, unaligned.
        let pointer: pg_sys::varatt_external =
            std::ptr::read_unaligned(pgrx::varlena::vardata_1b_e(ptr).cast());
        // VARLENA_EXTSIZE_MASK: the low 30 bits are the stored size, the top 2 the compression.
        let stored = (pointer.va_extinfo & 0x3fff_ffff) as usize;
        let len = usize::try_from(pointer.va_rawsize)
            .ok()?
            .checked_sub(pg_sys::VARHDRSZ)?;
        Some(StoredValue {
            len,
            compressed: stored < len,
            toast_relid: pointer.va_toastrelid,
            value_id: pointer.va_valueid,
        })
    }
}

/// A new varlena in the current memory context holding `bytes` as its payload.
pub fn palloc_varlena(bytes: &[u8]) -> *mut pg_sys::varlena {
    let total = bytes.len() + pg_sys::VARHDRSZ;
    // PostgreSQL's MaxAllocSize (1 GB - 1), the largest varlena it can palloc.
    const MAX_ALLOC_SIZE: usize = 0x3fff_ffff;
    if total > MAX_ALLOC_SIZE {
        pgrx::error!("value of {} bytes is too large", bytes.len());
    }
    unsafe {
        let ptr = pg_sys::palloc(total) as *mut pg_sys::varlena;
        pgrx::varlena::set_varsize_4b(ptr, total as i32);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            pgrx::varlena::vardata_4b(ptr) as *mut u8,
            bytes.len(),
        );
        ptr
    }
}

/// The rest of a binary-receive buffer (the argument of a type's `recv` function), consumed:
/// the whole remaining message is the value's bytes.
pub fn take_recv_bytes<'a>(buf: pgrx::Internal) -> &'a [u8] {
    let Some(datum) = pgrx::IntoDatum::into_datum(buf) else {
        pgrx::error!("receive function called without a buffer")
    };
    unsafe {
        let info = &mut *datum.cast_mut_ptr::<pg_sys::StringInfoData>();
        let (start, end) = (info.cursor as usize, info.len as usize);
        info.cursor = info.len;
        std::slice::from_raw_parts((info.data as *const u8).add(start), end - start)
    }
}

/// A type's text output as a C string; text forms never hold NUL, so one is an internal error.
pub fn to_cstring(text: String) -> std::ffi::CString {
    std::ffi::CString::new(text).unwrap_or_else(|_| pgrx::error!("text output holds a NUL byte"))
}

/// The `jsonb` datum of JSON text, in the current memory context (`jsonb_in` raises 22P02 on
/// bad JSON).
pub fn jsonb_from_text(json: &str) -> pg_sys::Datum {
    let text = to_cstring(json.to_string());
    unsafe {
        pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
    }
    .unwrap_or_else(|| pgrx::error!("jsonb_in returned NULL"))
}

/// The text `jsonb_out` prints for a `jsonb` datum (its canonical form), as a Rust string.
pub fn jsonb_to_text(jsonb: pg_sys::Datum) -> String {
    unsafe {
        let out = pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(jsonb)])
            .map(|d| d.cast_mut_ptr::<std::ffi::c_char>())
            .filter(|p| !p.is_null())
            .unwrap_or_else(|| pgrx::error!("jsonb_out returned NULL"));
        std::ffi::CStr::from_ptr(out).to_string_lossy().into_owned()
    }
}

/// The OID of a type of this extension, looked up by its qualified name.
pub fn type_oid_of(qualified_name: &std::ffi::CStr) -> pg_sys::Oid {
    unsafe {
        pgrx::direct_function_call::<pg_sys::Oid>(
            pg_sys::regtypein,
            &[pgrx::IntoDatum::into_datum(qualified_name)],
        )
        .unwrap_or(pg_sys::InvalidOid)
    }
}

/// Declares `pub struct $name`, the Rust handle of the SQL type `distcount.$sql` (created by
/// the family's hand-written SQL script), usable as a `#[pg_extern(sql = false)]` argument and
/// result.
#[macro_export]
macro_rules! sql_varlena_type {
    ($(#[$meta:meta])* $name:ident, $sql:literal) => {
        $(#[$meta])*
        pub struct $name {
            ptr: *mut ::pgrx::pg_sys::varlena,
        }

        impl $name {
            /// A new value holding `bytes` (already in the type's format) in the current memory context.
            pub fn from_bytes(bytes: &[u8]) -> Self {
                Self { ptr: $crate::common::varlena::palloc_varlena(bytes) }
            }

            /// The value's bytes, in the type's format (not yet validated).
            pub fn bytes(&self) -> &[u8] {
                unsafe { $crate::common::varlena::payload(self.ptr) }
            }
        }

        impl ::pgrx::datum::FromDatum for $name {
            unsafe fn from_polymorphic_datum(
                datum: ::pgrx::pg_sys::Datum,
                is_null: bool,
                _typoid: ::pgrx::pg_sys::Oid,
            ) -> Option<Self> {
                if is_null || datum.is_null() {
                    None
                } else {
                    Some(Self { ptr: unsafe { $crate::common::varlena::detoast(datum) } })
                }
            }
        }

        impl ::pgrx::datum::IntoDatum for $name {
            fn into_datum(self) -> Option<::pgrx::pg_sys::Datum> {
                Some(::pgrx::pg_sys::Datum::from(self.ptr))
            }
            fn type_oid() -> ::pgrx::pg_sys::Oid {
                $crate::common::varlena::type_oid_of(
                    match ::std::ffi::CStr::from_bytes_with_nul(concat!("distcount.", $sql, "\0").as_bytes()) {
                        Ok(name) => name,
                        Err(_) => unreachable!(),
                    },
                )
            }
        }

        unsafe impl ::pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $name {
            const TYPE_IDENT: &'static str = ::pgrx::pgrx_resolved_type!($name);
            const TYPE_ORIGIN: ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                // "External" to pgrx's SQL generator: the type is declared in our hand-written SQL.
                ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
            const ARGUMENT_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::As($sql));
            const RETURN_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::As($sql),
            ));
        }

        unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for $name {
            unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| panic!("argument {index} must not be null"))
            }
            unsafe fn unbox_nullable_arg(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> ::pgrx::nullable::Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }

        unsafe impl ::pgrx::callconv::BoxRet for $name {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut ::pgrx::callconv::FcInfo<'fcx>,
            ) -> ::pgrx::datum::Datum<'fcx> {
                unsafe { fcinfo.return_raw_datum(::pgrx::pg_sys::Datum::from(self.ptr)) }
            }
        }
    };
}

/// An argument of `T`'s SQL type handed over as the raw datum, not detoasted, for functions
/// that read a few bytes of it with a [`PieceReader`].
pub struct Unread<T> {
    datum: pg_sys::Datum,
    _type: std::marker::PhantomData<T>,
}

impl<T> Unread<T> {
    /// A reader of the value (see [`PieceReader::new`] for `last`).
    pub fn reader(&self, last: Option<&mut LastStoredValue>) -> PieceReader<'_> {
        unsafe { PieceReader::new(self.datum, last) }
    }

    /// The TOAST identity (TOAST relation, value id) of a value stored out of line, which names
    /// one value within a query (see [`LastStoredValue`]); None for any other value.
    pub fn stored_identity(&self) -> Option<(pg_sys::Oid, pg_sys::Oid)> {
        unsafe {
            stored_out_of_line(self.datum.cast_mut_ptr())
                .map(|stored| (stored.toast_relid, stored.value_id))
        }
    }

    /// The value's payload, detoasted in the current memory context.
    pub fn detoasted(&self) -> &[u8] {
        unsafe { payload(detoast(self.datum)) }
    }
}

impl<T> pgrx::datum::FromDatum for Unread<T> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null && !datum.is_null()).then_some(Unread {
            datum,
            _type: std::marker::PhantomData,
        })
    }
}

unsafe impl<T: pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable>
    pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for Unread<T>
{
    const TYPE_IDENT: &'static str = T::TYPE_IDENT;
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin = T::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
        pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
    > = T::ARGUMENT_SQL;
    const RETURN_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
    > = T::RETURN_SQL;
}

unsafe impl<'fcx, T> pgrx::callconv::ArgAbi<'fcx> for Unread<T> {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
    unsafe fn unbox_nullable_arg(
        arg: pgrx::callconv::Arg<'_, 'fcx>,
    ) -> pgrx::nullable::Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}
