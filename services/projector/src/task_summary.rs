//! The task summary view (seed 000 "Task Manager"): status, version, counts, timestamps.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use visionlog_domain::TaskEvent;
use visionlog_journal::{ConsumeError, EventHandler, HandledEvent};
use visionlog_store::{Put, ReadStore, Row, StoreError};

/// The table of the view.
pub const TABLE: &str = "task_summary";

/// One task, summarized.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task.
    pub task_id: String,
    /// Its customer.
    pub customer: String,
    /// Where it stands (the stage name).
    pub status: String,
    /// Stream version reflected.
    pub version: u64,
    /// Images.
    pub images: u32,
    /// Objects alive.
    pub objects: u32,
    /// Operator sessions opened.
    pub operator_sessions: u32,
    /// Result revisions generated.
    pub results: u32,
    /// Whether the result was delivered to the callback.
    pub reported: bool,
    /// When the task was created (command time, ms).
    pub created_at_ms: i64,
    /// When the last event was recorded (ms).
    pub updated_at_ms: i64,
    /// When the first result was generated (ms).
    pub completed_at_ms: Option<i64>,
    /// The last event type.
    pub last_event: String,
}

impl TaskSummary {
    /// Folds one event in.
    fn apply(&mut self, event: &TaskEvent, recorded_at_ms: i64) {
        let status = match event {
            TaskEvent::TaskCreated(e) => {
                self.customer = e.customer.to_string();
                self.images = e.images.len() as u32;
                self.created_at_ms = recorded_at_ms;
                "created"
            }
            TaskEvent::DetectionRequested(_) => "detection_pending",
            TaskEvent::ObjectsDetected(e) => {
                self.objects = e.objects.len() as u32;
                "detected"
            }
            TaskEvent::ModelNotFound(_) => "model_missing",
            TaskEvent::AssistanceRequested(_) => "awaiting_operator",
            TaskEvent::OperatorAssigned(_) => {
                self.operator_sessions += 1;
                "in_operator_session"
            }
            TaskEvent::OperatorReleased(_) => "awaiting_operator",
            TaskEvent::ObjectsAdded(e) => {
                self.objects += e.objects.len() as u32;
                &self.status.clone()
            }
            TaskEvent::ObjectsRemoved(e) => {
                self.objects = self.objects.saturating_sub(e.object_ids.len() as u32);
                &self.status.clone()
            }
            TaskEvent::ObjectsLabeled(_) => &self.status.clone(),
            TaskEvent::OperatorFinished(_) => "annotated",
            TaskEvent::TaskResultGenerated(e) => {
                self.results = e.revision;
                self.objects = e.objects.len() as u32;
                self.completed_at_ms.get_or_insert(recorded_at_ms);
                "result_generated"
            }
            TaskEvent::QualityCheckRequested(_) => "awaiting_quality_check",
            TaskEvent::TaskReported(_) => {
                self.reported = true;
                &self.status.clone()
            }
            TaskEvent::ReportFailed(_) => &self.status.clone(),
            TaskEvent::TaskCancelled(_) => "cancelled",
            TaskEvent::ReprocessRequested(_) => "reprocess_pending",
        };
        self.status = status.to_owned();
        self.updated_at_ms = recorded_at_ms;
        self.last_event = event.type_name().to_owned();
    }
}

/// Projects events into [`TaskSummary`] rows.
pub struct TaskSummaryProjector {
    store: Arc<dyn ReadStore>,
    pending: BTreeMap<String, TaskSummary>,
}

impl TaskSummaryProjector {
    /// Creates the projector.
    pub fn new(store: Arc<dyn ReadStore>) -> Self {
        Self { store, pending: BTreeMap::new() }
    }
}

fn store_err(e: StoreError) -> ConsumeError {
    ConsumeError::Transient(e.to_string())
}

/// Reads one task's summary.
pub fn summary(store: &dyn ReadStore, task_id: &str) -> Result<Option<TaskSummary>, StoreError> {
    Ok(store.get(TABLE, task_id, "")?.and_then(|row| serde_json::from_slice(&row.value).ok()))
}

/// Reads every summary, in task id order.
pub fn list_summaries(store: &dyn ReadStore) -> Result<Vec<TaskSummary>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.scan_table(TABLE, after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())), 1000)?;
        let Some(last) = page.last() else { return Ok(out) };
        after = Some((last.partition.clone(), last.clustering.clone()));
        out.extend(page.iter().filter_map(|r| serde_json::from_slice(&r.value).ok()));
    }
}

impl EventHandler for TaskSummaryProjector {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        let task_id = &e.envelope.task_id;
        let mut current = match self.pending.remove(task_id) {
            Some(s) => s,
            None => summary(self.store.as_ref(), task_id).map_err(store_err)?.unwrap_or_default(),
        };
        let version = e.envelope.version;
        if version <= current.version {
            self.pending.insert(task_id.clone(), current);
            return Ok(()); // redelivered: already in the view
        }
        if version != current.version + 1 {
            return Err(ConsumeError::Transient(format!(
                "task {task_id}: version {version} after {}",
                current.version
            )));
        }
        current.task_id = task_id.clone();
        current.apply(e.event, e.envelope.recorded_at_ms);
        current.version = version;
        self.pending.insert(task_id.clone(), current);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConsumeError> {
        let puts: Vec<_> = std::mem::take(&mut self.pending)
            .into_values()
            .map(|s| Put {
                table: TABLE.into(),
                row: Row {
                    partition: s.task_id.clone(),
                    clustering: String::new(),
                    version: s.version,
                    value: serde_json::to_vec(&s).expect("summary serializes"),
                },
            })
            .collect();
        if !puts.is_empty() {
            self.store.put(&puts).map_err(store_err)?;
        }
        Ok(())
    }
}
