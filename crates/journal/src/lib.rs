//! The `events` topic as the journal of the aggregator's decisions.
//!
//! Every command the aggregator handles leaves one **decision** in the `events` partition of its
//! task: the events it caused (accepted) or one rejection record. The records of a decision are
//! framed (`vl.batch = i/n`) so that a decision torn by a crash is never read, on any log.
//! An aggregator that takes a partition first appends a **claim** with a higher owner epoch;
//! every reader ignores records of an epoch that a later claim superseded, so a zombie owner
//! can write but is never believed. This needs neither broker transactions nor a correct high
//! watermark.
//!
//! [`JournalReader`] applies those rules; every service reads `events` through it, by way of
//! [`consume_partition`]. [`CommandBus`] sends commands to the `commands` topic.

mod audit;
mod bus;
mod consume;
mod framing;
mod history;
mod membership;
pub mod migrate;
mod reader;
mod schemas;
mod topics;

pub use audit::{Audit, audit};
pub use bus::SendError;
pub use bus::{CommandBus, DELIVERY_GIVEN_UP, caused_by, deterministic_id};
pub use consume::{
    ConsumeError, DEAD_LETTER_VALUE_PREFIX, EventHandler, HandledEvent, LIVE_BATCH, Subscription, consume_partition,
    consume_until, dead_letter,
};
pub use framing::{DecisionOrigin, claim_record, copied_records, event_record, rejection_record};
pub use history::{Accepted, HistoryError, RecordedEvent, StateAsOf, accepted, state_as_of, task_events};
pub use membership::{Assignment, Failing, Work, WorkError, serve_partitions};
pub use reader::{Decision, DecisionBody, Entry, JournalError, JournalEvent, JournalReader, read_held};
pub use schemas::LogRegistry;
pub use topics::{TopicRetention, Topics};

pub use visionlog_log::now_ms;
