//! The extension's settings (GUCs), all under the reserved prefix `pg_distcount.`.

use pgrx::PostgresGucEnum;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Overrides the local node id of `distcount.node_id()`. Superuser-only: two writers sharing
/// one id silently lose increments, so choosing an id is an administrator's decision.
pub static NODE_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// What `node_id()` does in a copied data directory (see `crdt::node`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnNodeCopy {
    #[name = c"error"]
    Error,
    #[name = c"rotate"]
    Rotate,
}

pub static ON_NODE_COPY: GucSetting<OnNodeCopy> = GucSetting::<OnNodeCopy>::new(OnNodeCopy::Error);

/// Shard count of a counter that `counter_add` creates on first use.
pub static DEFAULT_SHARDS: GucSetting<i32> = GucSetting::<i32>::new(16);

/// Milliseconds between two roll-up passes of the background worker; 0 pauses it.
pub static ROLLUP_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// Database the roll-up worker connects to (it runs only with shared_preload_libraries).
pub static ROLLUP_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// Where `outbox_trigger` and `outbox_emit` write when their mode argument is absent.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutboxMode {
    #[name = c"table"]
    Table,
    #[name = c"message"]
    Message,
    #[name = c"both"]
    Both,
}

pub static OUTBOX_MODE: GucSetting<OutboxMode> = GucSetting::<OutboxMode>::new(OutboxMode::Table);

/// Prefix of the outbox's logical decoding messages.
pub static OUTBOX_MESSAGE_PREFIX: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"distcount.outbox"));

/// Claims of one event after which the relay dead-letters it.
pub static OUTBOX_MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(5);

/// JSON object copied into each event's `headers` (set per transaction with SET LOCAL).
pub static OUTBOX_HEADERS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Trace context copied into each event's `tracingspancontext` (set with SET LOCAL).
pub static OUTBOX_TRACING: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Whether a transaction that writes outbox rows sends the relay's wake-up notification.
pub static OUTBOX_NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn register() {
    GucRegistry::define_string_guc(
        c"pg_distcount.node_id",
        c"Node id that gcounter_inc and pncounter_inc write under (1 to 63 bytes).",
        c"Empty means the id kept in distcount.node, made at CREATE EXTENSION.",
        &NODE_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_distcount.on_node_copy",
        c"What node_id() does when this database is a copy of the one that made its node id.",
        c"error refuses to write under the original's id; rotate makes a new id automatically.",
        &ON_NODE_COPY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_distcount.default_shards",
        c"Shard count of a sharded counter that counter_add creates on first use (1 to 1024).",
        c"Pick at least the number of sessions that write one counter at the same time.",
        &DEFAULT_SHARDS,
        1,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_distcount.rollup_interval",
        c"Time between two passes of the sharded-counter roll-up worker; 0 pauses it.",
        c"The worker runs only when pg_distcount is in shared_preload_libraries.",
        &ROLLUP_INTERVAL,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_enum_guc(
        c"pg_distcount.outbox_mode",
        c"Where outbox events go when the trigger or outbox_emit names no mode.",
        c"table: a row in distcount.outbox; message: a logical decoding message; both.",
        &OUTBOX_MODE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pg_distcount.outbox_message_prefix",
        c"Prefix of the logical decoding messages the outbox writes.",
        c"CDC tools filter messages by prefix (Debezium: message.prefix.include.list).",
        &OUTBOX_MESSAGE_PREFIX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_distcount.outbox_max_attempts",
        c"Claims of one event after which the outbox relay dead-letters it.",
        c"Each outbox_claim of an event counts as one attempt.",
        &OUTBOX_MAX_ATTEMPTS,
        1,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pg_distcount.outbox_headers",
        c"JSON object written into the headers of each outbox event.",
        c"Set it per transaction with SET LOCAL; empty means no headers.",
        &OUTBOX_HEADERS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pg_distcount.outbox_tracingspancontext",
        c"Trace context written into the tracingspancontext of each outbox event.",
        c"Set it per transaction with SET LOCAL (Debezium's tracing.span.context.field).",
        &OUTBOX_TRACING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_distcount.outbox_notify",
        c"Sends NOTIFY distcount_outbox once per transaction that writes outbox rows while a relay waits.",
        c"A relay that LISTENs on the channel and calls distcount.outbox_relay_idle(true) \
          before it waits need not poll. Each notifying commit takes PostgreSQL's notification \
          lock; off sends none even then.",
        &OUTBOX_NOTIFY,
        GucContext::Userset,
        GucFlags::default(),
    );
    // PostgreSQL accepts postmaster-context settings only from shared_preload_libraries,
    // which is also the only case in which the worker exists.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_string_guc(
            c"pg_distcount.rollup_database",
            c"Database in which the sharded-counter roll-up worker runs counter_rollup().",
            c"The worker runs only when pg_distcount is in shared_preload_libraries.",
            &ROLLUP_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_distcount".as_ptr()) };
}
