//! The extractor (seed 000 "Data Extractor"): as operators seal a session, the crops of the
//! objects they annotated or checked are written to the training-data repository in the
//! object store, before the training index points at them.
//!
//! An object store has no version precondition, so (seed 000 "Read-copies where version checks
//! are not possible") a separate record per task, `training_extractions`, says which ground-truth
//! version its crops reflect; it is written after every crop of that version, and the index rows
//! are written after it. A failure half-way leaves the record at the older version, so the batch
//! is retried and rewrites the crops (same keys, same bytes). Crops of one object keep their key
//! across versions (a file per version would multiply the repository): a reader that finds the
//! record older than an index row's `truth_version` knows that task's crops are being replaced.

use crate::projector::BeforeRows;
use std::collections::BTreeMap;
use std::sync::Arc;
use visionlog_imaging::{MAX_IMAGE_BYTES, Rgb};
use visionlog_journal::ConsumeError;
use visionlog_objects::{Objects, ObjectsError, key_of_uri};
use visionlog_store::{Put, ReadStore, Row};
use visionlog_views::views::crop_location;
use visionlog_views::{EXTRACTIONS, Extraction, GroundTruth, TaskView};

/// Writes crops before the training index is written.
pub struct Extractor {
    objects: Objects,
    store: Arc<dyn ReadStore>,
}

enum Failed {
    /// The input is bad: record it.
    Input(String),
    /// The object store failed: retry the batch.
    Store(String),
}

impl From<ObjectsError> for Failed {
    fn from(e: ObjectsError) -> Self {
        match e {
            ObjectsError::Backend(m) => Failed::Store(m),
            e => Failed::Input(e.to_string()),
        }
    }
}

impl Extractor {
    /// Creates an extractor writing to `objects`, recording in `store`.
    pub fn new(objects: Objects, store: Arc<dyn ReadStore>) -> Self {
        Self { objects, store }
    }

    fn extract(&self, task: &TaskView, truth: &GroundTruth) -> Result<u32, Failed> {
        let mut by_image: BTreeMap<u32, Vec<_>> = BTreeMap::new();
        for o in truth.objects.iter().filter(|o| o.class_id.is_some()) {
            by_image.entry(o.image).or_default().push(o);
        }
        let mut crops = 0;
        for (image, objects) in by_image {
            let uri = &task.images.get(image as usize).ok_or_else(|| Failed::Input(format!("no image {image}")))?.uri;
            let bytes = self.objects.get(key_of_uri(uri)?, MAX_IMAGE_BYTES)?;
            let pixels = Rgb::from_png(&bytes).map_err(|e| Failed::Input(format!("{uri}: {e}")))?;
            for o in objects {
                let b = o.bbox;
                let crop =
                    pixels.crop(b.x, b.y, b.w, b.h).map_err(|e| Failed::Input(format!("{}: {e}", o.object_id)))?;
                let class_id = o.class_id.expect("filtered above");
                self.objects.put(
                    &crop_location(&task.customer, &task.class_group, class_id, &task.task_id, &o.object_id),
                    crop.to_png(),
                )?;
                crops += 1;
            }
        }
        Ok(crops)
    }
}

impl BeforeRows for Extractor {
    fn before_rows(&self, tasks: &[&TaskView]) -> Result<(), ConsumeError> {
        let mut records = Vec::new();
        for task in tasks {
            let Some(truth) = &task.truth else { continue };
            let stored =
                self.store.get(EXTRACTIONS, &task.task_id, "").map_err(|e| ConsumeError::Transient(e.to_string()))?;
            if stored.is_some_and(|r| r.version >= truth.version) {
                continue; // extracted already (a replay, or a rebuild)
            }
            let record = match self.extract(task, truth) {
                Ok(crops) => Extraction { truth_version: truth.version, crops, error: None },
                Err(Failed::Input(why)) => {
                    tracing::debug!(task = task.task_id, error = why, "no training crops");
                    Extraction { truth_version: truth.version, crops: 0, error: Some(why) }
                }
                Err(Failed::Store(why)) => return Err(ConsumeError::Transient(format!("writing crops: {why}"))),
            };
            let row = Row {
                partition: task.task_id.clone(),
                clustering: String::new(),
                version: truth.version,
                value: serde_json::to_vec(&record).expect("extraction serializes"),
            };
            records.push(Put { table: EXTRACTIONS.into(), row });
        }
        if !records.is_empty() {
            self.store.put(&records).map_err(|e| ConsumeError::Transient(e.to_string()))?;
        }
        Ok(())
    }
}
