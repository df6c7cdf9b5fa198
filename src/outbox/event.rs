//! The pure part of the outbox: what a trigger's arguments mean, how an event's type is named,
//! and the JSON body of a logical decoding message. No pgrx here.
//!
//! The message body uses the column names of Debezium's outbox event router (`id`,
//! `aggregatetype`, `aggregateid`, `type`, `payload`, plus `headers` and `tracingspancontext`),
//! so the router consumes table rows and messages with the same settings.

use crate::common::error::{Error, ErrorKind};
use crate::common::text::write_json_string;
use rand_xoshiro::Xoshiro256StarStar;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A row in `distcount.outbox` (read by CDC of that table, or by the relay).
    Table,
    /// A transactional logical decoding message; nothing is stored.
    Message,
    /// Both, with the same event id.
    Both,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, Error> {
        match text {
            "table" => Ok(Mode::Table),
            "message" => Ok(Mode::Message),
            "both" => Ok(Mode::Both),
            other => Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("unknown outbox mode \"{other}\""),
            )
            .with_detail("The mode is one of table, message, both (or default).")),
        }
    }

    pub fn writes_table(self) -> bool {
        matches!(self, Mode::Table | Mode::Both)
    }

    pub fn writes_message(self) -> bool {
        matches!(self, Mode::Message | Mode::Both)
    }
}

/// What goes into `payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadShape {
    /// The new row (the old row for a delete).
    New,
    /// `{"old": …, "new": …}`, with null for the side an insert or delete lacks.
    OldNew,
}

/// The operation that fired the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    /// Index into [`TriggerConfig::event_types`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// `Created`, `Updated`, `Deleted`: the `{Op}` placeholder.
    pub fn past_tense(self) -> &'static str {
        match self {
            Op::Insert => "Created",
            Op::Update => "Updated",
            Op::Delete => "Deleted",
        }
    }

    /// Debezium's operation codes `c`, `u`, `d`: the `{op}` placeholder.
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

pub const DEFAULT_TYPE_FORMAT: &str = "{aggregatetype}{Op}";

/// The arguments of `outbox_trigger(aggregatetype, keys [, mode [, type_format [, payload]]])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    pub aggregate_type: String,
    /// Key column names, in the order their values make the aggregate id.
    pub key_columns: Vec<String>,
    /// `None`: the setting `pg_distcount.outbox_mode`, read at each event.
    pub mode: Option<Mode>,
    pub type_format: String,
    pub payload: PayloadShape,
}

pub const TRIGGER_USAGE: &str = "Usage: outbox_trigger(aggregatetype, 'key_column[,key_column...]' \
     [, mode table|message|both|default [, type_format [, payload new|old_new]]]).";

fn bad_argument(message: String) -> Error {
    Error::new(ErrorKind::InvalidParameter, message).with_detail(TRIGGER_USAGE)
}

impl TriggerConfig {
    /// Parses the trigger's arguments (`CREATE TRIGGER … EXECUTE FUNCTION f(args)`).
    pub fn parse(args: &[&str]) -> Result<TriggerConfig, Error> {
        if args.len() < 2 || args.len() > 5 {
            return Err(bad_argument(format!(
                "outbox trigger takes 2 to 5 arguments, got {}",
                args.len()
            )));
        }
        let aggregate_type = args[0].trim();
        if aggregate_type.is_empty() || aggregate_type.len() > 255 {
            return Err(bad_argument(
                "outbox trigger: the aggregate type must be 1 to 255 bytes".into(),
            ));
        }
        let key_columns: Vec<String> = args[1].split(',').map(|c| c.trim().to_string()).collect();
        if key_columns.iter().any(|c| c.is_empty()) {
            return Err(bad_argument(format!(
                "outbox trigger: bad key column list \"{}\"",
                args[1]
            )));
        }
        let mode = match args.get(2).map(|m| m.trim()) {
            None | Some("") | Some("default") => None,
            Some(m) => Some(Mode::parse(m).map_err(|e| e.with_detail(TRIGGER_USAGE))?),
        };
        let type_format = match args.get(3) {
            None | Some(&"") => DEFAULT_TYPE_FORMAT.to_string(),
            Some(f) => (*f).to_string(),
        };
        check_type_format(&type_format)?;
        let payload = match args.get(4).map(|p| p.trim()) {
            None | Some("") | Some("new") => PayloadShape::New,
            Some("old_new") => PayloadShape::OldNew,
            Some(other) => {
                return Err(bad_argument(format!(
                    "outbox trigger: unknown payload shape \"{other}\" (new or old_new)"
                )));
            }
        };
        Ok(TriggerConfig {
            aggregate_type: aggregate_type.to_string(),
            key_columns,
            mode,
            type_format,
            payload,
        })
    }

    /// The event type, e.g. `OrderCreated` from the default format.
    pub fn event_type(&self, op: Op, table: &str) -> String {
        render_type(&self.type_format, &self.aggregate_type, op, table)
    }

    /// The event types of insert, update and delete, rendered once per trigger.
    pub fn event_types(&self, table: &str) -> [String; 3] {
        [Op::Insert, Op::Update, Op::Delete].map(|op| self.event_type(op, table))
    }
}

const PLACEHOLDERS: [&str; 4] = ["{aggregatetype}", "{Op}", "{op}", "{table}"];

fn check_type_format(format: &str) -> Result<(), Error> {
    let mut rest = format;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        match PLACEHOLDERS.iter().find(|p| tail.starts_with(*p)) {
            Some(p) => rest = &tail[p.len()..],
            None => {
                return Err(bad_argument(format!(
                    "outbox trigger: unknown placeholder in type format \"{format}\""
                ))
                .with_detail(
                    "Placeholders: {aggregatetype}, {Op} (Created/Updated/Deleted), \
                     {op} (c/u/d), {table}.",
                ));
            }
        }
    }
    if format.is_empty() || render_type(format, "x", Op::Insert, "t").is_empty() {
        return Err(bad_argument("outbox trigger: empty type format".into()));
    }
    Ok(())
}

fn render_type(format: &str, aggregate_type: &str, op: Op, table: &str) -> String {
    format
        .replace("{aggregatetype}", aggregate_type)
        .replace("{Op}", op.past_tense())
        .replace("{op}", op.code())
        .replace("{table}", table)
}

/// The aggregate id from the key values: the value itself for one key column, a JSON array of
/// strings for several (`["acme", "42"]`, spaced as PostgreSQL's `json_build_array` prints it,
/// so the row and statement triggers give the same id).
pub fn aggregate_id(values: &[&str]) -> String {
    if let [single] = values {
        return (*single).to_string();
    }
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_json_string(&mut out, v);
    }
    out.push(']');
    out
}

/// The fields of one event, as the message body carries them.
pub struct Envelope<'a> {
    pub id: &'a str,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub event_type: &'a str,
    /// JSON text of the payload (already valid JSON), or None for null.
    pub payload: Option<&'a str>,
    /// JSON text of the headers object (already valid JSON), or None for null.
    pub headers: Option<&'a str>,
    pub tracing_span_context: Option<&'a str>,
}

impl Envelope<'_> {
    /// The message body: one JSON object with the event router's field names.
    pub fn to_json(&self) -> String {
        let payload = self.payload.unwrap_or("null");
        let headers = self.headers.unwrap_or("null");
        let mut out = String::with_capacity(
            120 + self.aggregate_type.len() + self.aggregate_id.len() + payload.len(),
        );
        out.push_str("{\"id\":");
        write_json_string(&mut out, self.id);
        out.push_str(",\"aggregatetype\":");
        write_json_string(&mut out, self.aggregate_type);
        out.push_str(",\"aggregateid\":");
        write_json_string(&mut out, self.aggregate_id);
        out.push_str(",\"type\":");
        write_json_string(&mut out, self.event_type);
        out.push_str(",\"payload\":");
        out.push_str(payload);
        out.push_str(",\"headers\":");
        out.push_str(headers);
        out.push_str(",\"tracingspancontext\":");
        match self.tracing_span_context {
            Some(t) => write_json_string(&mut out, t),
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

/// `{"old": …, "new": …}` from the JSON texts of the two rows.
pub fn old_new_payload(old: Option<&str>, new: Option<&str>) -> String {
    format!(
        "{{\"old\":{},\"new\":{}}}",
        old.unwrap_or("null"),
        new.unwrap_or("null")
    )
}

/// A version 4 UUID from 16 random bytes (the version and variant bits set over them), in the
/// canonical text form.
#[cfg(test)]
pub fn uuid_v4(bytes: [u8; 16]) -> ([u8; 16], String) {
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text).to_string();
    (id.into_bytes(), text)
}

/// Random event ids without a system call each: xoshiro256** (Blackman and Vigna, from
/// `rand_xoshiro`), seeded once per session from the operating system's strong random source.
/// Two sessions' 122-bit ids collide as rarely as independent random ones.
pub struct IdGenerator {
    rng: Xoshiro256StarStar,
}

impl IdGenerator {
    /// The seed's four little-endian words are the state; an all-zero seed, the one state
    /// xoshiro cannot leave, is replaced by a fixed non-zero one.
    pub fn from_seed(seed: [u8; 32]) -> IdGenerator {
        IdGenerator {
            rng: Xoshiro256StarStar::from_seed(seed),
        }
    }

    pub fn next_bytes(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        out
    }
}

/// Time-ordered event ids, version 7 UUIDs of RFC 9562 (method 1, a dedicated counter): 48
/// bits of Unix time in milliseconds (big-endian), the version nibble 7, a 12-bit counter that
/// orders the ids a session makes within one millisecond (from a random start below 2,048),
/// the variant bits and 62 bits from the session's random generator. A session's ids only
/// grow (a clock that steps back is ignored; a counter that overflows moves its millisecond on
/// by one), so an index on `id` appends at its right edge instead of writing to a random leaf.
/// (Version 7, not 4: a version 4 UUID promises random bits where these carry the time.) Two ids collide only with the same millisecond,
/// the same counter and the same 62 random bits.
pub struct TimedIds {
    random: IdGenerator,
    last_ms: u64,
    counter: u16,
}

impl TimedIds {
    pub fn new(random: IdGenerator) -> TimedIds {
        TimedIds {
            random,
            last_ms: 0,
            counter: 0,
        }
    }

    /// Where the counter starts in a new millisecond: a random value below 2,048 (RFC 9562's
    /// guarded random start), so that sessions sharing a millisecond rarely share a counter.
    fn random_start(&mut self) -> u16 {
        (self.random.rng.next_u64() & 0x07ff) as u16
    }

    /// The next id's 16 bytes at Unix time `now_ms` (version and variant bits included).
    pub fn next_bytes(&mut self, now_ms: u64) -> [u8; 16] {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = self.random_start();
        } else if self.counter == 0x0fff {
            self.last_ms += 1;
            self.counter = self.random_start();
        } else {
            self.counter += 1;
        }
        let mut out = self.random.next_bytes();
        let ms = (self.last_ms & 0xffff_ffff_ffff).to_be_bytes();
        out[..6].copy_from_slice(&ms[2..]);
        out[6] = 0x70 | (self.counter >> 8) as u8;
        out[7] = self.counter as u8;
        out[8] = 0x80 | (out[8] & 0x3f);
        out
    }
}

/// The canonical text form of an id's 16 bytes.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::from_bytes(*bytes)
        .hyphenated()
        .encode_lower(&mut text)
        .to_string()
}

/// Which of the two trigger functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `outbox_trigger()`: AFTER … FOR EACH ROW.
    Row,
    /// `outbox_statement_trigger()`: AFTER … FOR EACH STATEMENT with a transition table.
    Statement,
}

/// How a trigger is attached: from `pg_trigger.tgtype` at CREATE TRIGGER, or from the firing
/// event at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub for_each_row: bool,
    pub after: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
    pub new_table: bool,
    pub old_table: bool,
}

/// Refuses an attachment that would lose or garble events.
pub fn check_attachment(form: Form, a: &Attachment, config: &TriggerConfig) -> Result<(), Error> {
    let misuse =
        |m: &str, hint: &str| Err(Error::new(ErrorKind::TriggerMisuse, m).with_detail(hint));
    match form {
        Form::Row => {
            if !a.after || !a.for_each_row {
                return misuse(
                    "distcount.outbox_trigger() must be fired AFTER INSERT, UPDATE or DELETE FOR EACH ROW",
                    "A BEFORE trigger could write an event for a row that a later trigger changes or \
                     skips. For one pass over a bulk statement use distcount.outbox_statement_trigger().",
                );
            }
            if a.truncate {
                return misuse(
                    "distcount.outbox_trigger() cannot be fired by TRUNCATE",
                    "TRUNCATE has no rows to turn into events.",
                );
            }
        }
        Form::Statement => {
            if !a.after || a.for_each_row {
                return misuse(
                    "distcount.outbox_statement_trigger() must be fired AFTER ... FOR EACH STATEMENT",
                    "For FOR EACH ROW use distcount.outbox_trigger().",
                );
            }
            let events = [a.insert, a.update, a.delete, a.truncate]
                .iter()
                .filter(|e| **e)
                .count();
            if events != 1 || a.truncate {
                return misuse(
                    "distcount.outbox_statement_trigger() must be fired by exactly one of INSERT, UPDATE, DELETE",
                    "PostgreSQL allows transition tables only on single-event triggers: create one trigger per event.",
                );
            }
            let needs_new = a.insert || a.update;
            if (needs_new && !a.new_table) || (a.delete && !a.old_table) {
                let clause = if needs_new { "NEW TABLE" } else { "OLD TABLE" };
                return misuse(
                    &format!(
                        "distcount.outbox_statement_trigger() needs REFERENCING {clause} AS <name>"
                    ),
                    "The transition table holds the rows the statement changed.",
                );
            }
            if config.payload == PayloadShape::OldNew {
                return Err(bad_argument(
                    "payload shape old_new needs the row form, distcount.outbox_trigger()".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that every key column exists, given a lookup of the table's column names.
pub fn check_key_columns(
    config: &TriggerConfig,
    table: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(), Error> {
    for column in &config.key_columns {
        if !exists(column) {
            return Err(Error::new(
                ErrorKind::UndefinedColumn,
                format!(
                    "outbox trigger: key column \"{column}\" does not exist in table \"{table}\""
                ),
            )
            .with_detail(TRIGGER_USAGE));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
