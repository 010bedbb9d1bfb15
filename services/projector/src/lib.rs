//! Read models, each a projection of `events` into the read store, rebuildable from the log.
//!
//! Seed 000's read side (task manager, engine monitor, operator monitor, billing, training-data
//! index) as views of one fold per task ([`TaskView`]). Writes are version-guarded: a row
//! carries the stream version it reflects and is written only over an older one, so
//! redelivered and reordered events never move a view backwards. Views live in generations:
//! [`rebuild`] writes a new one from the whole history and switches readers over when it has
//! caught up.

pub mod extractor;
pub mod generations;
mod projector;
pub mod queries;
mod service;
mod task_view;
pub mod views;

/// The consumer group of the projector.
pub const GROUP: &str = "projector";

pub use extractor::{Extraction, Extractor, extraction};
pub use projector::{BeforeRows, Projector, ProjectorStats};
pub use queries::{list_summaries, summary};
pub use service::{ProjectorContext, REBUILD_BATCH, RebuildError, RebuildReport, rebuild, run_partition};
pub use task_view::{DetectionRun, GroundTruth, OperatorSession, TaskView, ViewObject, civil_date, day, month};
pub use views::TaskSummary;
