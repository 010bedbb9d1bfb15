//! The extractor's record per task (see the projector's extractor): which ground-truth version
//! the training crops in the object store reflect.

use serde::{Deserialize, Serialize};
use visionlog_store::{ReadStore, StoreError};

/// The table of extraction records (one per task; not per generation: crops are files).
pub const EXTRACTIONS: &str = "training_extractions";

/// What the extractor did for one task's ground truth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extraction {
    /// The ground-truth version the crops reflect.
    pub truth_version: u64,
    /// Crops written.
    pub crops: u32,
    /// Why no crops could be cut (a missing or unreadable image, a box outside it); recorded,
    /// not retried: the input will not change.
    pub error: Option<String>,
}

/// Reads a task's extraction record.
pub fn extraction(store: &dyn ReadStore, task_id: &str) -> Result<Option<Extraction>, StoreError> {
    Ok(store.get(EXTRACTIONS, task_id, "")?.and_then(|r| serde_json::from_slice(&r.value).ok()))
}
