//! The error every pure algorithm returns. It carries the *kind* of failure so that the SQL
//! binding can pick the matching SQLSTATE without the algorithm knowing about PostgreSQL.

use std::fmt;

/// What went wrong, in the categories PostgreSQL users see as SQLSTATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed text input (22P02 invalid_text_representation).
    InvalidText,
    /// Malformed, truncated or forged bytes (22P03 invalid_binary_representation).
    InvalidBinary,
    /// A function argument out of its domain (22023 invalid_parameter_value).
    InvalidParameter,
    /// A count that does not fit in int8 (22003 numeric_value_out_of_range).
    Overflow,
    /// A documented size limit was reached (54000 program_limit_exceeded).
    LimitExceeded,
    /// A trigger function attached the wrong way (39P01 trigger_protocol_violated).
    TriggerMisuse,
    /// A column named in an argument does not exist (42703 undefined_column).
    UndefinedColumn,
    /// Values of two hash families that must not be combined, e.g. a sketch imported from
    /// postgresql-hll and a native one (42804 datatype_mismatch).
    HashFamilyMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Optional extra context for the user (PostgreSQL's DETAIL line).
    pub detail: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The same failure reported as another kind: a check shared by the text and binary
    /// decoders (say, "node ids must be sorted") is a text error on one path, a binary one on the other.
    pub fn as_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
