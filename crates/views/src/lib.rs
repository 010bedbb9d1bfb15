//! The read side: the fold of a task's events into a [`TaskView`], every view as a pure
//! function of it ([`views`]), the queries over the view tables ([`queries`]), the generations
//! those tables live in ([`generations`]), and the extractor's records ([`extractions`]).
//!
//! Seed 000's read models (task manager, engine monitor, operator monitor, billing, training-data
//! index). The projector service writes them, version-guarded, from `events`; the gateway, the
//! trainer, the exporter and the CLI read them through this crate. Nothing here writes a view:
//! that is the projector's. One reader also reads the log: a task's [`history`], from the
//! projector's per-task index and the journal's tail beyond what it has projected.

pub mod extractions;
pub mod generations;
pub mod history;
pub mod queries;
mod task_view;
pub mod views;

pub use extractions::{EXTRACTIONS, Extraction, extraction};
pub use history::{HistoryReadError, HistorySource, batch_tasks, task_history};
pub use queries::{list_summaries, summary};
pub use task_view::{
    DetectionRun, GroundTruth, OperatorSession, RecognitionRun, TaskView, ViewObject, civil_date, day, month,
};
pub use views::TaskSummary;
