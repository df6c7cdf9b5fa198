//! Writing one row of `distcount.outbox` without the executor: the heap insert and its btree
//! entries, as PostgreSQL's catalog code writes its own rows (`CatalogTupleInsert`).
//!
//! Through SPI, a row trigger's event spent more than half its instructions starting and
//! ending the saved INSERT plan's executor (projection set-up, a snapshot, the command counter)
//! for one row. This path does only the row's own work, and does it only for the outbox as the
//! extension makes it; anything that only the executor honours sends the caller back to the SPI
//! plan, which then behaves (and fails) as before:
//! - Citus in the database (its planner owns inserts into distributed tables);
//! - a trigger, check constraint, generated column, row-level security or partitioning that an
//!   administrator added, a column the extension does not know, a NOT NULL on a column left
//!   null, an index that is not a plain btree over columns;
//! - a caller without USAGE on the schema or INSERT on the event columns (the SPI plan then
//!   raises the usual error).
//!
//! The columns the relay trusts come from what their defaults say: `seq` from `nextval` of
//! `distcount.outbox_seq` (which checks the caller's USAGE, as the default does),
//! `txid` from the top transaction id, `created_at` from the clock. Varchar limits are enforced
//! by the `varchar` cast an INSERT applies.

use crate::common::tupdesc::attribute;
use crate::common::varlena::{detoast, payload};
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::pg_sys;
use std::ffi::CStr;

/// The event columns of one outbox row (datums in the current memory context).
pub struct OutboxRow {
    /// `uuid`
    pub id: pg_sys::Datum,
    /// `text`, each
    pub aggregate_type: pg_sys::Datum,
    pub aggregate_id: pg_sys::Datum,
    pub event_type: pg_sys::Datum,
    /// `jsonb`
    pub payload: Option<pg_sys::Datum>,
    /// `jsonb`
    pub headers: Option<pg_sys::Datum>,
    /// `text`
    pub tracing: Option<pg_sys::Datum>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    AggregateType,
    AggregateId,
    Type,
    Payload,
    Headers,
    Tracing,
    Seq,
    Txid,
    CreatedAt,
}

/// The outbox's columns: name, role, type (`outbox.sql`).
const COLUMNS: [(&CStr, Column, pg_sys::Oid); 10] = [
    (c"id", Column::Id, pg_sys::UUIDOID),
    (c"aggregatetype", Column::AggregateType, pg_sys::VARCHAROID),
    (c"aggregateid", Column::AggregateId, pg_sys::VARCHAROID),
    (c"type", Column::Type, pg_sys::VARCHAROID),
    (c"payload", Column::Payload, pg_sys::JSONBOID),
    (c"headers", Column::Headers, pg_sys::JSONBOID),
    (c"tracingspancontext", Column::Tracing, pg_sys::VARCHAROID),
    (c"seq", Column::Seq, pg_sys::INT8OID),
    (c"txid", Column::Txid, pg_sys::XID8OID),
    (c"created_at", Column::CreatedAt, pg_sys::TIMESTAMPTZOID),
];

/// The columns an INSERT of an event names (the caller needs INSERT on them).
const EVENT_COLUMNS: [Column; 7] = [
    Column::Id,
    Column::AggregateType,
    Column::AggregateId,
    Column::Type,
    Column::Payload,
    Column::Headers,
    Column::Tracing,
];

/// Inserts `row` into `distcount.outbox` directly; false (having written nothing) when the
/// outbox or the caller needs the executor's path.
pub fn insert_outbox_row(row: &OutboxRow) -> bool {
    match OutboxWriter::open() {
        Some(mut writer) => {
            writer.insert(row);
            writer.close();
            true
        }
        None => false,
    }
}

/// The outbox opened for direct inserts. (The statement trigger keeps its chunked INSERT: there
/// the executor's start-up is paid once per chunk, and writing its rows this way saved under
/// 1 % of their instructions.)
pub struct OutboxWriter {
    rel: pg_sys::Relation,
    layout: Layout,
    seqid: pg_sys::Oid,
    command: pg_sys::CommandId,
    slot: *mut pg_sys::TupleTableSlot,
}

impl OutboxWriter {
    /// The outbox, locked and opened with its indexes, or None when it or the caller needs
    /// the executor's path.
    pub fn open() -> Option<OutboxWriter> {
        unsafe {
            let catalog = pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE);
            if pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), catalog)
                != pg_sys::InvalidOid
            {
                return None;
            }
            let schema = pg_sys::get_namespace_oid(c"distcount".as_ptr(), true);
            if schema == pg_sys::InvalidOid {
                return None;
            }
            let relid = pg_sys::get_relname_relid(c"outbox".as_ptr(), schema);
            let seqid = pg_sys::get_relname_relid(c"outbox_seq".as_ptr(), schema);
            if relid == pg_sys::InvalidOid || seqid == pg_sys::InvalidOid {
                return None;
            }
            let user = pg_sys::GetUserId();
            if !schema_usage(schema, user) {
                return None;
            }
            let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let Some(layout) = Layout::of(rel, relid, user) else {
                // The lock stays to the end of the transaction, as an INSERT's does.
                pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                return None;
            };
            // What the executor checks before an INSERT into a table that is not temporary.
            pg_sys::PreventCommandIfReadOnly(c"INSERT".as_ptr());
            pg_sys::PreventCommandIfParallelMode(c"INSERT".as_ptr());
            Some(OutboxWriter {
                rel,
                layout,
                seqid,
                command: pg_sys::GetCurrentCommandId(true),
                slot: pg_sys::MakeSingleTupleTableSlot(
                    (*rel).rd_att,
                    &raw const pg_sys::TTSOpsHeapTuple,
                ),
            })
        }
    }

    /// Inserts one row: its heap tuple, then its entry in each index.
    pub fn insert(&mut self, row: &OutboxRow) {
        unsafe { self.insert_tuple(row) }
    }

    /// Closes the outbox and its indexes (their locks stay to the end of the transaction).
    pub fn close(self) {
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            close_indexes(&self.layout.indexes);
            pg_sys::table_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}

/// Whether `user` has USAGE on schema `schema`.
unsafe fn schema_usage(schema: pg_sys::Oid, user: pg_sys::Oid) -> bool {
    let usage = pg_sys::ACL_USAGE as pg_sys::AclMode;
    #[cfg(feature = "pg15")]
    let result = unsafe { pg_sys::pg_namespace_aclcheck(schema, user, usage) };
    // PostgreSQL 16 folded the per-kind checks into object_aclcheck.
    #[cfg(not(feature = "pg15"))]
    let result =
        unsafe { pg_sys::object_aclcheck(pg_sys::NamespaceRelationId, schema, user, usage) };
    result == pg_sys::AclResult::ACLCHECK_OK
}

/// Where each column is in the outbox's tuple descriptor, and its indexes, once the relation
/// and the caller qualify for the direct path.
struct Layout {
    /// Per attribute (by position), the column, or None for a dropped one.
    columns: Vec<Option<Column>>,
    /// Per attribute, its varchar length limit (typmod), if any.
    typmods: Vec<i32>,
    indexes: Vec<(pg_sys::Relation, *mut pg_sys::IndexInfo)>,
}

impl Layout {
    unsafe fn of(rel: pg_sys::Relation, relid: pg_sys::Oid, user: pg_sys::Oid) -> Option<Layout> {
        unsafe {
            let form = &*(*rel).rd_rel;
            if form.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
                || form.relam != pg_sys::HEAP_TABLE_AM_OID
                || form.relrowsecurity
                || form.relispartition
            {
                return None;
            }
            let triggers = (*rel).trigdesc;
            if !triggers.is_null() {
                let t = &*triggers;
                if t.trig_insert_before_row
                    || t.trig_insert_after_row
                    || t.trig_insert_instead_row
                    || t.trig_insert_before_statement
                    || t.trig_insert_after_statement
                    || t.trig_insert_new_table
                {
                    return None;
                }
            }
            let desc = (*rel).rd_att;
            let constr = (*desc).constr;
            if !constr.is_null() {
                let c = &*constr;
                #[cfg(feature = "pg18")]
                let virtual_generated = c.has_generated_virtual;
                #[cfg(not(feature = "pg18"))]
                let virtual_generated = false;
                if c.num_check > 0 || c.has_generated_stored || virtual_generated {
                    return None;
                }
            }
            let natts = (*desc).natts as usize;
            let mut columns = Vec::with_capacity(natts);
            let mut typmods = Vec::with_capacity(natts);
            let mut found = 0;
            let table_insert =
                pg_sys::pg_class_aclcheck(relid, user, pg_sys::ACL_INSERT as pg_sys::AclMode)
                    == pg_sys::AclResult::ACLCHECK_OK;
            for i in 0..natts {
                let att = attribute(desc, i);
                if att.attisdropped {
                    columns.push(None);
                    typmods.push(-1);
                    continue;
                }
                let name = CStr::from_ptr(att.attname.data.as_ptr());
                let (_, column, type_oid) = *COLUMNS.iter().find(|(n, _, _)| *n == name)?;
                if att.atttypid != type_oid {
                    return None;
                }
                // A column an event may leave null, made NOT NULL: the executor says which.
                if att.attnotnull && may_be_null(column) {
                    return None;
                }
                if !table_insert
                    && EVENT_COLUMNS.contains(&column)
                    && pg_sys::pg_attribute_aclcheck(
                        relid,
                        att.attnum,
                        user,
                        pg_sys::ACL_INSERT as pg_sys::AclMode,
                    ) != pg_sys::AclResult::ACLCHECK_OK
                {
                    return None;
                }
                columns.push(Some(column));
                typmods.push(att.atttypmod);
                found += 1;
            }
            if found != COLUMNS.len() {
                return None;
            }
            let indexes = open_indexes(rel)?;
            Some(Layout {
                columns,
                typmods,
                indexes,
            })
        }
    }
}

fn may_be_null(column: Column) -> bool {
    matches!(column, Column::Payload | Column::Headers | Column::Tracing)
}

impl OutboxRow {
    fn value(&self, column: Column) -> Option<pg_sys::Datum> {
        match column {
            Column::Id => Some(self.id),
            Column::AggregateType => Some(self.aggregate_type),
            Column::AggregateId => Some(self.aggregate_id),
            Column::Type => Some(self.event_type),
            Column::Payload => self.payload,
            Column::Headers => self.headers,
            Column::Tracing => self.tracing,
            Column::Seq | Column::Txid | Column::CreatedAt => None,
        }
    }
}

/// The outbox's indexes ready for inserts, opened, when each is a btree over plain columns
/// with an immediate unique check if any (else None, every index closed again).
unsafe fn open_indexes(
    rel: pg_sys::Relation,
) -> Option<Vec<(pg_sys::Relation, *mut pg_sys::IndexInfo)>> {
    unsafe {
        let list = pg_sys::RelationGetIndexList(rel);
        let n = if list.is_null() {
            0
        } else {
            (*list).length as usize
        };
        let mut opened = Vec::with_capacity(n);
        let mut usable = true;
        for i in 0..n {
            let oid = (*(*list).elements.add(i)).oid_value;
            let index = pg_sys::index_open(oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let info = pg_sys::BuildIndexInfo(index);
            let ii = &*info;
            if (*(*index).rd_rel).relam != pg_sys::BTREE_AM_OID
                || !ii.ii_Expressions.is_null()
                || !ii.ii_Predicate.is_null()
                || !ii.ii_ExclusionOps.is_null()
                || (ii.ii_Unique && !(*(*index).rd_index).indimmediate)
            {
                usable = false;
            }
            opened.push((index, info));
        }
        if !list.is_null() {
            pg_sys::list_free(list);
        }
        if usable {
            Some(opened)
        } else {
            close_indexes(&opened);
            None
        }
    }
}

unsafe fn close_indexes(indexes: &[(pg_sys::Relation, *mut pg_sys::IndexInfo)]) {
    for &(index, _) in indexes {
        unsafe { pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE) };
    }
}

impl OutboxWriter {
    unsafe fn insert_tuple(&mut self, row: &OutboxRow) {
        unsafe {
            let layout = &self.layout;
            let natts = layout.columns.len();
            let mut values = vec![pg_sys::Datum::from(0usize); natts];
            let mut nulls = vec![true; natts];
            for (i, column) in layout.columns.iter().enumerate() {
                let Some(column) = *column else { continue };
                let value = match column {
                    Column::Seq => direct_function_call_as_datum(
                        pg_sys::nextval_oid,
                        &[Some(pg_sys::Datum::from(self.seqid))],
                    ),
                    Column::Txid => {
                        Some(pg_sys::Datum::from(pg_sys::GetTopFullTransactionId().value))
                    }
                    Column::CreatedAt => Some(pg_sys::Datum::from(pg_sys::GetCurrentTimestamp())),
                    Column::AggregateType
                    | Column::AggregateId
                    | Column::Type
                    | Column::Tracing => {
                        row.value(column).map(|d| fit_varchar(d, layout.typmods[i]))
                    }
                    _ => row.value(column),
                };
                if let Some(v) = value {
                    values[i] = v;
                    nulls[i] = false;
                }
            }
            let rel = self.rel;
            let tuple =
                pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::heap_insert(rel, tuple, self.command, 0, std::ptr::null_mut());
            pg_sys::ExecStoreHeapTuple(tuple, self.slot, false);
            let mut key = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
            let mut key_nulls = [false; pg_sys::INDEX_MAX_KEYS as usize];
            for &(index, info) in &layout.indexes {
                if !(*info).ii_ReadyForInserts {
                    continue;
                }
                pg_sys::FormIndexDatum(
                    info,
                    self.slot,
                    std::ptr::null_mut(),
                    key.as_mut_ptr(),
                    key_nulls.as_mut_ptr(),
                );
                let check = if (*info).ii_Unique {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
                } else {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
                };
                pg_sys::index_insert(
                    index,
                    key.as_mut_ptr(),
                    key_nulls.as_mut_ptr(),
                    &mut (*tuple).t_self,
                    rel,
                    check,
                    false,
                    info,
                );
            }
            pg_sys::ExecClearTuple(self.slot);
            pg_sys::heap_freetuple(tuple);
        }
    }
}

/// `text` fitted to `varchar(n)` as an INSERT's assignment cast does (an error past n
/// characters unless the excess is spaces); a value of at most n bytes is returned as it is.
unsafe fn fit_varchar(value: pg_sys::Datum, typmod: i32) -> pg_sys::Datum {
    unsafe {
        let limit = typmod - pg_sys::VARHDRSZ as i32;
        if typmod < 0 {
            return value;
        }
        let bytes = payload(detoast(value));
        if bytes.len() as i32 <= limit {
            return value;
        }
        direct_function_call_as_datum(
            pg_sys::varchar,
            &[
                Some(value),
                Some(pg_sys::Datum::from(typmod)),
                Some(pg_sys::Datum::from(false)),
            ],
        )
        .unwrap_or(value)
    }
}
