//! Node identity: the id under which this database writes counter slots.
//!
//! The id is the setting `pg_distcount.node_id` when set, else the row of `distcount.node`,
//! which also records a fingerprint of where the id was made (system identifier, WAL
//! timeline, database OID, data directory). A data directory that was restored, cloned or
//! promoted from a standby carries the same row but runs under another fingerprint; writing
//! under the original's id would silently lose increments when the two merge (merge keeps
//! the per-slot maximum). `pg_distcount.on_node_copy` decides what happens then.
//!
//! A backend caches the id once its fingerprint has matched: the system identifier, database
//! and data directory of a running backend cannot change, and a timeline change (promotion)
//! happens only while in recovery, when nothing is cached.

use crate::settings::NODE_ID;
use pgrx::PgSqlErrorCode;
use pgrx::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// The id once this backend has checked the fingerprint (a backend has one thread).
    static VERIFIED_NODE_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

// The check runs with the owner's rights (distcount.node_check is SECURITY DEFINER): the
// fingerprint names the data directory, which the caller may not read. The statement names
// its one function in full and uses no operator, so the caller's search_path resolves nothing.
const CHECK_QUERY: &str =
    "SELECT c.id, c.previous_id, c.verdict, c.differs FROM distcount.node_check() AS c";

const ROTATE_QUERY: &str = "
    UPDATE distcount.node n
       SET previous_id = n.id,
           id = pg_catalog.gen_random_uuid()::text,
           (system_identifier, timeline_id, database_oid, data_directory) =
               (SELECT * FROM distcount.node_fingerprint()),
           created_at = pg_catalog.now()
    RETURNING n.id";

fn column(row: &pgrx::spi::SpiTupleTable<'_>, name: &str) -> Option<String> {
    row.get_by_name::<String, _>(name).ok().flatten()
}

/// The local node id, verified against the fingerprint of this database.
#[pg_extern(sql = false)]
fn node_id() -> String {
    if let Some(id) = NODE_ID.get() {
        let id = id.to_string_lossy().into_owned();
        if !id.is_empty() {
            return id;
        }
    }
    if let Some(id) = VERIFIED_NODE_ID.with_borrow(Clone::clone) {
        return id;
    }
    let (id, previous, verdict, differs) = Spi::connect(|client| {
        let row = client
            .select(CHECK_QUERY, Some(1), &[])
            .unwrap_or_else(|e| error!("{e}"))
            .first();
        (
            column(&row, "id"),
            column(&row, "previous_id"),
            column(&row, "verdict").unwrap_or_default(),
            column(&row, "differs").unwrap_or_default(),
        )
    });
    let Some(id) = id else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "distcount.node holds no node id",
            "Recreate it with SELECT distcount.node_rotate()."
        );
    };
    match verdict.as_str() {
        // A standby cannot write, so it has nothing to protect; check again after promotion.
        "recovery" => return id,
        "ok" => {}
        "rotated" => warning!(
            "pg_distcount: this database is a copy (its {differs} changed since the id was \
             made); node id \"{}\" rotated to \"{id}\"",
            previous.unwrap_or_default()
        ),
        _ => {
            pgrx::pg_sys::panic::ErrorReport::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("this database is a copy of the one that made node id \"{id}\""),
                "pg_distcount",
            )
            .set_detail(format!(
                "This database's {differs} changed since the node id was made (distcount.node \
                 holds both). Writing under the original's id would lose increments when the two \
                 merge."
            ))
            .set_hint(
                "Give this copy an id of its own with SELECT distcount.node_rotate(), or set \
                 pg_distcount.on_node_copy = rotate to do so automatically.",
            )
            .report(PgLogLevel::ERROR);
            unreachable!()
        }
    }
    VERIFIED_NODE_ID.set(Some(id.clone()));
    id
}

/// Gives this database a new node id (and records the old one in `previous_id`).
#[pg_extern(sql = false)]
fn node_rotate() -> String {
    let id = Spi::connect_mut(|client| {
        client
            .update(ROTATE_QUERY, Some(1), &[])
            .unwrap_or_else(|e| error!("could not rotate the node id: {e}"))
            .first()
            .get_one::<String>()
            .ok()
            .flatten()
    })
    .unwrap_or_else(|| error!("distcount.node holds no node id"));
    VERIFIED_NODE_ID.set(Some(id.clone()));
    id
}

/// A node id argument of a write; NULL is refused (22004) with where the default comes from.
pub(super) fn node_or_raise(node: Option<&str>) -> &str {
    node.unwrap_or_else(|| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "node id must not be NULL",
            "Set pg_distcount.node_id or pass a node id; distcount.node_id() is the default."
        );
    })
}
