//! Errors of encoding and decoding.

use crate::registry::RegistryError;
use thiserror::Error;

/// Why a message could not be encoded or decoded. `Malformed`, `UnknownSchemaId`,
/// `UnexpectedMessage` and `Avro` on decode mean the input is bad: dead-letter it and move on.
/// `Registry` may be transient: retry.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The bytes are not in the wire format.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No schema is registered under this id.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// The schema id names another kind of message than the one expected.
    #[error("expected a {expected} message, found {found}")]
    UnexpectedMessage {
        /// What the caller expected (e.g. `"event"`).
        expected: String,
        /// The message name found.
        found: String,
    },
    /// The Avro body does not match its schema, or the value does not fit the type.
    #[error("avro: {0}")]
    Avro(String),
    /// A schema file is invalid (a bug in `schemas/`).
    #[error("schema {name}: {reason}")]
    Schema {
        /// The schema.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An upcaster failed on an old message.
    #[error("upcasting {name} from v{from}: {reason}")]
    Upcast {
        /// The message name.
        name: String,
        /// The version upcast from.
        from: u32,
        /// What went wrong.
        reason: String,
    },
    /// The schema registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl CodecError {
    /// Whether the same bytes may decode later: the registry could not be reached. Everything
    /// else (malformed bytes, an id the registry does not have, a body that does not match) is
    /// permanent, and the record is rejected or dead-lettered with its reason.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(RegistryError::Unavailable(_)))
    }

    /// Returns a stable code for rejections and dead letters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownSchemaId(_) => "unknown_schema_id",
            Self::UnexpectedMessage { .. } => "unexpected_message",
            Self::Avro(_) => "invalid_avro",
            Self::Schema { .. } => "invalid_schema",
            Self::Upcast { .. } => "upcast_failed",
            Self::Registry(_) => "registry",
        }
    }
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        Self::Avro(e.to_string())
    }
}
