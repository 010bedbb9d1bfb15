//! The model services (seed 000's detection service and "Train" button; seed 002's models as
//! views over prediction events):
//!
//! - [`InferenceWorker`]: reads `DetectionRequested` from `events` (its own consumer group),
//!   batches the photos of the tasks of a consumed batch per model, runs the deployed detector
//!   and sends `RecordDetections` with the model id and version — or `RecordModelNotFound`
//!   when nothing is deployed for the customer's class group.
//! - [`Trainer`]: trains a detector when asked (`TrainingRequested` on the model stream) or
//!   when enough new ground truth exists, backtests it against the deployed one on held-out
//!   tasks, and promotes it only if it is better.
//! - [`artifacts`]: where artifacts live in the object store.

pub mod artifacts;
mod trainer;
mod worker;

pub use artifacts::{IsolatedCheck, TorchImport};
pub use trainer::{Trainer, TrainerConfig, TrainerError, TrainingRun, held_out};
pub use worker::{InferenceWorker, WorkerConfig, load_image};

/// The consumer group of the inference workers.
pub const GROUP: &str = "inference";
