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

use crate::settings::{NODE_ID, ON_NODE_COPY, OnNodeCopy};
use pgrx::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::RefCell;

thread_local! {
    /// The id once this backend has checked the fingerprint (a backend has one thread).
    static VERIFIED_NODE_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

const CHECK_QUERY: &str = "
    SELECT n.id,
           (f.system_identifier, f.timeline_id, f.database_oid, f.data_directory)
               IS NOT DISTINCT FROM
           (n.system_identifier, n.timeline_id, n.database_oid, n.data_directory) AS same_place,
           pg_catalog.format('system %s, timeline %s, database %s, data directory %s',
               n.system_identifier, n.timeline_id, n.database_oid, n.data_directory) AS made_on,
           pg_catalog.format('system %s, timeline %s, database %s, data directory %s',
               f.system_identifier, f.timeline_id, f.database_oid, f.data_directory) AS running_on,
           pg_catalog.pg_is_in_recovery() AS in_recovery
    FROM distcount.node n, distcount.node_fingerprint() f";

const ROTATE_QUERY: &str = "
    UPDATE distcount.node n
       SET previous_id = n.id,
           id = pg_catalog.gen_random_uuid()::text,
           (system_identifier, timeline_id, database_oid, data_directory) =
               (SELECT * FROM distcount.node_fingerprint()),
           created_at = pg_catalog.now()
     WHERE n.id = $1 OR $1 IS NULL
    RETURNING n.id";

fn rotate(client: &mut SpiClient<'_>, from: Option<&str>) -> Option<String> {
    let table = client
        .update(ROTATE_QUERY, Some(1), &[from.into()])
        .unwrap_or_else(|e| error!("could not rotate the node id: {e}"));
    table.first().get_one::<String>().unwrap_or(None)
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
    let id = Spi::connect_mut(|client| {
        let row = client
            .select(CHECK_QUERY, Some(1), &[])
            .unwrap_or_else(|e| error!("{e}"))
            .first();
        let Ok(Some(id)) = row.get_by_name::<String, _>("id") else {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "distcount.node holds no node id",
                "Recreate it with SELECT distcount.node_rotate()."
            );
        };
        let same_place = row
            .get_by_name::<bool, _>("same_place")
            .ok()
            .flatten()
            .unwrap_or(false);
        let in_recovery = row
            .get_by_name::<bool, _>("in_recovery")
            .ok()
            .flatten()
            .unwrap_or(false);
        if same_place || in_recovery {
            // A standby cannot write, so it has nothing to protect; check again after promotion.
            return (id, !in_recovery);
        }
        let made_on: String = row
            .get_by_name("made_on")
            .ok()
            .flatten()
            .unwrap_or_default();
        let running_on: String = row
            .get_by_name("running_on")
            .ok()
            .flatten()
            .unwrap_or_default();
        match ON_NODE_COPY.get() {
            OnNodeCopy::Error => {
                pgrx::pg_sys::panic::ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("this database is a copy of the one that made node id \"{id}\""),
                    "pg_distcount",
                )
                .set_detail(format!(
                    "The node id was made on {made_on}; this is {running_on}. Writing under the \
                     original's id would lose increments when the two merge."
                ))
                .set_hint(
                    "Give this copy an id of its own with SELECT distcount.node_rotate(), or set \
                     pg_distcount.on_node_copy = rotate to do so automatically.",
                )
                .report(PgLogLevel::ERROR);
                unreachable!()
            }
            OnNodeCopy::Rotate => {
                let new_id = rotate(client, Some(&id)).unwrap_or_else(|| {
                    // Another backend rotated first: use its id.
                    client
                        .select("SELECT id FROM distcount.node", Some(1), &[])
                        .ok()
                        .and_then(|t| t.first().get_one::<String>().ok().flatten())
                        .unwrap_or_else(|| error!("distcount.node holds no node id"))
                });
                warning!(
                    "pg_distcount: this database is a copy ({running_on}; the id was made on {made_on}); \
                     node id \"{id}\" rotated to \"{new_id}\""
                );
                (new_id, true)
            }
        }
    });
    let (id, cache) = id;
    if cache {
        VERIFIED_NODE_ID.set(Some(id.clone()));
    }
    id
}

/// Gives this database a new node id (and records the old one in `previous_id`).
#[pg_extern(sql = false)]
fn node_rotate() -> String {
    let id = Spi::connect_mut(|client| rotate(client, None))
        .unwrap_or_else(|| error!("distcount.node holds no node id"));
    VERIFIED_NODE_ID.set(Some(id.clone()));
    id
}
