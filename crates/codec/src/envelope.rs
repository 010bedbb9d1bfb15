//! Envelopes: the metadata of commands and events, carried as record headers.
//!
//! Headers keep the fields people query on readable without decoding the Avro body (seed 000
//! put them in EventStoreDB metadata for the same reason).

use crate::error::CodecError;

/// A header name: borrowed for the names visionlog writes, so headers cost no allocation for them.
pub type HeaderName = std::borrow::Cow<'static, str>;

/// Record headers: name and raw value, in order.
pub type Headers = Vec<(HeaderName, Vec<u8>)>;

/// Header names.
pub mod names {
    /// Kind of record on the events topic: `event`, `rejection` or `claim`.
    pub const KIND: &str = "vl.kind";
    /// Event id (UUIDv7).
    pub const EVENT_ID: &str = "vl.event_id";
    /// Task id.
    pub const TASK_ID: &str = "vl.task_id";
    /// Stream version of an event.
    pub const VERSION: &str = "vl.version";
    /// Event or command type name.
    pub const TYPE: &str = "vl.type";
    /// When the command was issued (ms since the epoch).
    pub const OCCURRED_AT: &str = "vl.occurred_at";
    /// When the event was appended (ms since the epoch).
    pub const RECORDED_AT: &str = "vl.recorded_at";
    /// Correlation id (the first command of a chain).
    pub const CORRELATION_ID: &str = "vl.correlation_id";
    /// Causation id (the command, or for a command the event, that caused it).
    pub const CAUSATION_ID: &str = "vl.causation_id";
    /// Who sent the command (`customer:ID`, `operator:ID`, `service:NAME`).
    pub const ACTOR: &str = "vl.actor";
    /// Tenant.
    pub const TENANT: &str = "vl.tenant";
    /// Command id.
    pub const COMMAND_ID: &str = "vl.command_id";
    /// Expected stream version of a command.
    pub const EXPECTED_VERSION: &str = "vl.expected_version";
}

/// Returns the value of a header, if present.
pub fn get<'h>(headers: &'h [(HeaderName, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

fn text(headers: &[(HeaderName, Vec<u8>)], name: &str) -> Result<String, CodecError> {
    let v = get(headers, name).ok_or_else(|| CodecError::Malformed(format!("missing header {name}")))?;
    String::from_utf8(v.to_vec()).map_err(|_| CodecError::Malformed(format!("header {name} is not utf-8")))
}

fn number<T: std::str::FromStr>(headers: &[(HeaderName, Vec<u8>)], name: &str) -> Result<T, CodecError> {
    text(headers, name)?.parse().map_err(|_| CodecError::Malformed(format!("header {name} is not a number")))
}

fn put(headers: &mut Headers, name: &'static str, value: impl ToString) {
    headers.push((HeaderName::Borrowed(name), value.to_string().into_bytes()));
}

/// The metadata of one event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventEnvelope {
    /// Event id (UUIDv7).
    pub event_id: String,
    /// Task id.
    pub task_id: String,
    /// Stream version (1 for TaskCreated).
    pub version: u64,
    /// Event type name.
    pub event_type: String,
    /// When the causing command was issued.
    pub occurred_at_ms: i64,
    /// When the event was appended.
    pub recorded_at_ms: i64,
    /// Correlation id.
    pub correlation_id: String,
    /// Causation id: the command id.
    pub causation_id: String,
    /// Who sent the command.
    pub actor: String,
    /// Tenant.
    pub tenant: String,
}

impl EventEnvelope {
    /// Appends the envelope's headers.
    pub fn write_headers(&self, h: &mut Headers) {
        put(h, names::EVENT_ID, &self.event_id);
        put(h, names::TASK_ID, &self.task_id);
        put(h, names::VERSION, self.version);
        put(h, names::TYPE, &self.event_type);
        put(h, names::OCCURRED_AT, self.occurred_at_ms);
        put(h, names::RECORDED_AT, self.recorded_at_ms);
        put(h, names::CORRELATION_ID, &self.correlation_id);
        put(h, names::CAUSATION_ID, &self.causation_id);
        put(h, names::ACTOR, &self.actor);
        put(h, names::TENANT, &self.tenant);
    }

    /// Reads an envelope from headers.
    pub fn from_headers(h: &[(HeaderName, Vec<u8>)]) -> Result<Self, CodecError> {
        Ok(Self {
            event_id: text(h, names::EVENT_ID)?,
            task_id: text(h, names::TASK_ID)?,
            version: number(h, names::VERSION)?,
            event_type: text(h, names::TYPE)?,
            occurred_at_ms: number(h, names::OCCURRED_AT)?,
            recorded_at_ms: number(h, names::RECORDED_AT)?,
            correlation_id: text(h, names::CORRELATION_ID)?,
            causation_id: text(h, names::CAUSATION_ID)?,
            actor: text(h, names::ACTOR)?,
            tenant: text(h, names::TENANT)?,
        })
    }
}

/// The metadata of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandEnvelope {
    /// Command id: the idempotency key.
    pub command_id: String,
    /// Task id (also the record key).
    pub task_id: String,
    /// Command type name.
    pub command_type: String,
    /// The stream version the sender expects, if it cares.
    pub expected_version: Option<u64>,
    /// Who sends it (`customer:ID`, `operator:ID`, `service:NAME`).
    pub actor: String,
    /// Tenant.
    pub tenant: String,
    /// Correlation id.
    pub correlation_id: String,
    /// The event that caused it, for commands sent by services.
    pub causation_id: Option<String>,
    /// When it was issued.
    pub issued_at_ms: i64,
}

impl CommandEnvelope {
    /// Appends the envelope's headers.
    pub fn write_headers(&self, h: &mut Headers) {
        put(h, names::COMMAND_ID, &self.command_id);
        put(h, names::TASK_ID, &self.task_id);
        put(h, names::TYPE, &self.command_type);
        if let Some(v) = self.expected_version {
            put(h, names::EXPECTED_VERSION, v);
        }
        put(h, names::ACTOR, &self.actor);
        put(h, names::TENANT, &self.tenant);
        put(h, names::CORRELATION_ID, &self.correlation_id);
        if let Some(c) = &self.causation_id {
            put(h, names::CAUSATION_ID, c);
        }
        put(h, names::OCCURRED_AT, self.issued_at_ms);
    }

    /// Reads an envelope from headers.
    pub fn from_headers(h: &[(HeaderName, Vec<u8>)]) -> Result<Self, CodecError> {
        let expected_version = match get(h, names::EXPECTED_VERSION) {
            Some(_) => Some(number(h, names::EXPECTED_VERSION)?),
            None => None,
        };
        let causation_id = match get(h, names::CAUSATION_ID) {
            Some(_) => Some(text(h, names::CAUSATION_ID)?),
            None => None,
        };
        Ok(Self {
            command_id: text(h, names::COMMAND_ID)?,
            task_id: text(h, names::TASK_ID)?,
            command_type: text(h, names::TYPE)?,
            expected_version,
            actor: text(h, names::ACTOR)?,
            tenant: text(h, names::TENANT)?,
            correlation_id: text(h, names::CORRELATION_ID)?,
            causation_id,
            issued_at_ms: number(h, names::OCCURRED_AT)?,
        })
    }
}
