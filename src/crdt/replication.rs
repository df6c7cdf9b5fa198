//! Merge-on-arrival for native logical replication. A subscription overwrites rows of the
//! table it fills (the *inbox*, one per origin server); the `crdt_merge_into` trigger on the
//! inbox merges each arriving row into the application's table instead. The merge statement
//! comes from `distcount.crdt_merge_statement` (replication.sql) and is prepared once per
//! backend and inbox, since the apply worker runs it for every replicated row.

use ahash::AHashMap as HashMap;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgOid, PgSqlErrorCode};
use std::cell::RefCell;

thread_local! {
    /// Prepared merge statements by inbox OID and target name (the trigger's argument).
    static MERGE_STATEMENTS: RefCell<HashMap<(pg_sys::Oid, String), OwnedPreparedStatement>> =
        RefCell::new(HashMap::new());
}

fn bad_trigger(message: String) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
        message
    );
}

#[pg_trigger(sql = false)]
fn crdt_merge_into<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if !matches!(trigger.when()?, PgTriggerWhen::After)
        || !matches!(trigger.level(), PgTriggerLevel::Row)
    {
        bad_trigger("crdt_merge_into must be an AFTER ... FOR EACH ROW trigger".into());
    }
    let args = trigger.extra_args()?;
    let [target] = args.as_slice() else {
        bad_trigger(format!(
            "crdt_merge_into takes one argument, the target table; trigger \"{}\" gives {}",
            trigger.name()?,
            args.len()
        ));
    };
    if !matches!(
        trigger.op()?,
        PgTriggerOperation::Insert | PgTriggerOperation::Update
    ) {
        return Ok(None); // Deleting an inbox row withdraws nothing: merged state only grows.
    }
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let inbox = trigger.relation()?;
    let inbox_oid = inbox.oid();
    let row_type = unsafe { (*inbox.rd_rel).reltype };
    let Some(row) = new.into_composite_datum() else {
        bad_trigger("crdt_merge_into: the arriving row could not be read".into());
    };

    Spi::connect_mut(|client| {
        MERGE_STATEMENTS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let key = (inbox_oid, target.clone());
            if !cache.contains_key(&key) {
                let target_oid = client
                    .select(
                        "SELECT pg_catalog.to_regclass($1)::oid",
                        Some(1),
                        &[target.as_str().into()],
                    )
                    .and_then(|t| t.first().get_one::<pg_sys::Oid>())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| {
                        bad_trigger(format!(
                            "crdt_merge_into: target table \"{target}\" does not exist"
                        ))
                    });
                let sql = client
                    .select(
                        "SELECT distcount.crdt_merge_statement($1, $2)",
                        Some(1),
                        &[inbox_oid.into(), target_oid.into()],
                    )
                    .and_then(|t| t.first().get_one::<String>())
                    .unwrap_or_else(|e| error!("{e}"))
                    .unwrap_or_else(|| error!("crdt_merge_statement returned NULL"));
                let statement = client
                    .prepare_mut(sql.as_str(), &[PgOid::from(row_type)])
                    .unwrap_or_else(|e| error!("could not prepare the merge into {target}: {e}"))
                    .keep();
                cache.insert(key.clone(), statement);
            }
            let arg = unsafe { pgrx::datum::DatumWithOid::new(row, row_type) };
            client
                .update(&cache[&key], None, &[arg])
                .unwrap_or_else(|e| error!("{e}"));
        });
    });
    Ok(None)
}
