//! Encoding of visionlog's commands, events and records.
//!
//! Every message is Avro in the Confluent wire format (magic byte 0, a 4-byte big-endian schema
//! id, the Avro body), with its schema taken from `schemas/` and registered in a
//! [`SchemaRegistry`] (the embedded one by default, a Confluent-compatible one over HTTP in
//! production). Decoding resolves the writer's schema by id and, for an old version of a message,
//! runs the [`upcast`] chain in one place so that the rest of the code only sees current types.
//!
//! Envelopes (event id, task id, version, actor, ...) travel as record headers; see [`envelope`].
//!
//! Not here: how records are stored or sent (the log crate), or what the messages mean (the
//! domain crate).

mod catalog;
mod codec;
pub mod conformance;
pub mod envelope;
mod error;
mod http_registry;
mod messages;
mod registry;
pub mod upcast;
mod wire;

pub use catalog::{Catalog, SchemaVersion};
pub use codec::Codec;
pub use error::CodecError;
pub use http_registry::HttpRegistry;
pub use messages::{DeadLetter, Outcome, StoredEvent};
pub use registry::{EmbeddedRegistry, RegistryError, SchemaRegistry};
pub use wire::{MAGIC, split as split_wire};
