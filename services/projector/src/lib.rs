//! Read models, each a projection of `events` into the read store, rebuildable from the log.
//!
//! Writes are version-guarded: a view row carries the stream version it reflects and is written
//! only over an older one, so redelivered events change nothing.

mod task_summary;

/// The consumer group of the projector.
pub const GROUP: &str = "projector";

pub use task_summary::{TABLE as TASK_SUMMARY_TABLE, TaskSummary, TaskSummaryProjector, list_summaries, summary};
