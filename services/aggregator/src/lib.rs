//! The aggregator: the single writer of each partition of `events`.
//!
//! For each partition it owns, it restores task states (snapshots plus the journal since the
//! last checkpoint), claims the partition with a higher owner epoch, then reads `commands` in
//! order: a redelivered command id gets its earlier outcome, a wrong `expected_version` a
//! conflict, anything else `decide` on the task's state. Each batch of decisions is one append
//! to `events`; reading it back proves that no other owner claimed the partition meanwhile.
//! Outcomes go to `outcomes`; undecodable commands to `dead-letters` as well.
//!
//! Not here: what commands mean (the domain crate) and how the journal is framed (journal).

mod cache;
mod config;
mod handle;
mod partition;
mod record;

pub use config::AggregatorConfig;
pub use partition::{AggregatorError, PartitionAggregator, PartitionStats};
pub use record::{Decided, TaskRecord};
