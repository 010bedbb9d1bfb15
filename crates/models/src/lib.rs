//! Models are event-sourced (seed 002: a model is a materialized view over events). Each
//! model key — customer, class group and kind — has a stream on the `models` topic:
//! `ModelRegistered` (an artifact imported), `TrainingRequested` (the "Train" button),
//! `ModelTrained` (an artifact trained here, with its data snapshot), `ModelBacktested`
//! (metrics on past examples, with the model it was compared to), `ModelPromoted`,
//! `ModelRetired`. "Which model produced this result" is the `ModelRef` on the prediction
//! event; "what was deployed at time t" is [`ModelStream::deployed_at`].
//!
//! The log has no conditional append, so concurrency control is by log order: each record
//! names the stream version it expects to create, and when two writers race, the first in
//! the log wins and readers ignore the other. A writer reads back after appending to learn
//! whether it won ([`Registry::execute`]); a command id already in the stream is answered as
//! a duplicate. Records are Avro (`schemas/records/model_record.v1.avsc`) in the wire format
//! every other message uses, their schema registered with the others; the JSON records of
//! earlier builds are still read.
//!
//! The stream has the Task aggregate's shape: a pure [`decide`] (typed [`ModelRejection`]s) and
//! a pure [`evolve`].

mod import;
mod record;
mod registry;
mod stream;

pub use import::{ArtifactImport, ImportError, import_module};
pub use registry::{Outcome, Registry, RegistryError};
pub use stream::{
    DETECTOR, ModelCommand, ModelEvent, ModelKey, ModelRejection, ModelStream, ModelVersion, RECOGNIZER, Status,
    decide, evolve,
};
