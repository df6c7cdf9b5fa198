//! The outbox: an event written in the same transaction as the business row, as a row in
//! `distcount.outbox` and/or as a transactional logical decoding message, for CDC tools
//! (Debezium, wal2json, pgoutput) or the built-in relay.
//!
//! `event` is the pure part (trigger arguments, event naming, message body); `emit` writes one
//! event; `sql` holds the trigger functions and other entry points; `outbox.sql` the tables,
//! the relay (PL/pgSQL) and the views; `citus.sql` the relay over the nodes of a Citus cluster.

mod direct;
mod emit;
pub mod event;
mod row_json;
mod sql;
mod statement;

pgrx::extension_sql_file!("outbox.sql", name = "outbox");
pgrx::extension_sql_file!("citus.sql", name = "outbox_citus", requires = ["outbox"]);
