//! Records that are not commands or events: outcomes, dead letters, stored events.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What became of one command; published on the `outcomes` topic keyed by command id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The command.
    pub command_id: String,
    /// Its task.
    pub task_id: String,
    /// Its type.
    pub command_type: String,
    /// Whether events were appended.
    pub accepted: bool,
    /// First stream version appended, if accepted.
    pub first_version: Option<i64>,
    /// Last stream version appended, if accepted.
    pub last_version: Option<i64>,
    /// Stable rejection code, if rejected.
    pub rejection_code: Option<String>,
    /// Human-readable reason, if rejected.
    pub rejection_message: Option<String>,
    /// Whether this answers a redelivery of a command decided before.
    pub duplicate: bool,
    /// Partition of the `events` topic that holds the decision.
    pub events_partition: i32,
    /// Offset of the decision's first record there.
    pub events_offset: i64,
    /// When the decision was recorded.
    pub recorded_at_ms: i64,
}

/// A record that could not be decoded or handled, kept with the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic it was read from.
    pub source_topic: String,
    /// Partition it was read from.
    pub source_partition: i32,
    /// Offset it was read from.
    pub source_offset: i64,
    /// Its key.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub key: Option<Vec<u8>>,
    /// Its headers (values as UTF-8, lossy).
    pub headers: BTreeMap<String, String>,
    /// Its value, byte for byte.
    #[serde(with = "apache_avro::serde::bytes")]
    pub value: Vec<u8>,
    /// Stable error code.
    pub error_code: String,
    /// What went wrong.
    pub error_message: String,
    /// Which consumer gave up on it.
    pub consumer: String,
    /// When.
    pub recorded_at_ms: i64,
}

/// An event with its envelope, self-contained (for segments and exports, where there are no
/// record headers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Event id (UUIDv7).
    pub event_id: String,
    /// Task id.
    pub task_id: String,
    /// Stream version.
    pub version: i64,
    /// Event type name.
    pub event_type: String,
    /// When it happened (command time).
    pub occurred_at_ms: i64,
    /// When it was appended.
    pub recorded_at_ms: i64,
    /// Correlation id.
    pub correlation_id: String,
    /// Causation id (the command id).
    pub causation_id: String,
    /// Who caused it.
    pub actor: String,
    /// Tenant.
    pub tenant: String,
    /// Owner epoch that wrote it.
    pub epoch: i64,
    /// The event body in the wire format (schema id kept).
    #[serde(with = "apache_avro::serde::bytes")]
    pub payload: Vec<u8>,
}
