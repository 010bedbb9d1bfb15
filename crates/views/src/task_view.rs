//! What the read side knows of one task: its events folded into the facts every view needs.
//!
//! Each view is a pure function of this state ([`crate::views`]), so a view row always equals
//! what the task's events up to the row's version say, however the events were delivered.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use visionlog_domain::{BoundingBox, ImageRef, ModelRef, ObjectSource, Recipe, SessionId, SessionPurpose, TaskEvent};

/// An object as the read side keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewObject {
    /// Object id inside the task.
    pub object_id: String,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Its class, if known.
    pub class_id: Option<u32>,
    /// Model confidence, for model objects.
    pub score: Option<f32>,
    /// Whether a model (else an operator) produced it.
    pub by_model: bool,
}

/// One detection run: a model's prediction for the task (seed 002: predictions are events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionRun {
    /// Which run of the task.
    pub attempt: u32,
    /// The model that ran.
    pub model: ModelRef,
    /// When it was recorded (ms).
    pub at_ms: i64,
    /// The task version of the run.
    pub version: u64,
    /// What it predicted.
    pub predictions: Vec<ViewObject>,
}

/// One recognition run: a recognizer's classes for some of the task's objects (a prediction
/// event, like a detection run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecognitionRun {
    /// Which recognition run of the task.
    pub attempt: u32,
    /// The model that ran.
    pub model: ModelRef,
    /// When it was recorded (ms).
    pub at_ms: i64,
    /// The task version of the run.
    pub version: u64,
    /// Object id, class and probability, per object it classified.
    pub predictions: Vec<(String, u32, f32)>,
}

/// The objects as an operator left them when sealing a session: ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The task version of the seal.
    pub version: u64,
    /// When (ms).
    pub at_ms: i64,
    /// The session that produced it.
    pub session_id: String,
    /// The objects.
    pub objects: Vec<ViewObject>,
}

/// One operator session on the task (one task, many sessions: seed 000's one-to-many view).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSession {
    /// The session.
    pub session_id: String,
    /// The operator.
    pub operator: String,
    /// `annotation` or `quality_check`.
    pub purpose: String,
    /// When it opened (ms).
    pub started_ms: i64,
    /// When it was sealed or released (ms).
    pub ended_ms: Option<i64>,
    /// `open`, `finished` or `released`.
    pub outcome: String,
    /// Objects alive when it opened (what a quality check looks at).
    pub objects_at_start: u32,
    /// Objects added.
    pub added: u32,
    /// Objects removed.
    pub removed: u32,
    /// Objects (re)labelled.
    pub labeled: u32,
}

/// The read side's fold of one task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task.
    pub task_id: String,
    /// The stream version folded in.
    pub version: u64,
    /// The customer (tenant).
    pub customer: String,
    /// The recipe, as in the schemas (`DETECTION`, ...).
    pub recipe: String,
    /// The class group key.
    pub class_group: String,
    /// Class names of the group, by id.
    pub class_names: BTreeMap<u32, String>,
    /// The images.
    pub images: Vec<ImageRef>,
    /// Where it stands.
    pub status: String,
    /// The last event type.
    pub last_event: String,
    /// When it was created (ms).
    pub created_at_ms: i64,
    /// When its last event was recorded (ms).
    pub updated_at_ms: i64,
    /// When its first result was generated (ms).
    pub completed_at_ms: Option<i64>,
    /// The latest result revision.
    pub results: u32,
    /// Whether the latest result was delivered.
    pub reported: bool,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// The objects now, by id.
    pub objects: BTreeMap<String, ViewObject>,
    /// Every detection run.
    pub runs: Vec<DetectionRun>,
    /// The latest ground truth, if an operator sealed a session.
    pub truth: Option<GroundTruth>,
    /// Every operator session.
    pub sessions: Vec<OperatorSession>,
    /// Every recognition run (a view format change: deploying it means `views rebuild`).
    pub recognitions: Vec<RecognitionRun>,
}

fn purpose_name(p: SessionPurpose) -> &'static str {
    match p {
        SessionPurpose::Annotation => "annotation",
        SessionPurpose::QualityCheck => "quality_check",
    }
}

fn recipe_name(r: Recipe) -> &'static str {
    match r {
        Recipe::Detection => "DETECTION",
        Recipe::DetectionAndRecognition => "DETECTION_AND_RECOGNITION",
    }
}

impl TaskView {
    fn session(&mut self, id: &SessionId) -> Option<&mut OperatorSession> {
        self.sessions.iter_mut().rev().find(|s| s.session_id == id.as_str())
    }

    fn end_session(&mut self, id: &SessionId, outcome: &str, at_ms: i64) {
        if let Some(s) = self.session(id) {
            s.outcome = outcome.to_owned();
            s.ended_ms = Some(at_ms);
        }
    }

    /// Folds the event of `version`, recorded at `at_ms`, in.
    pub fn apply(&mut self, task_id: &str, version: u64, at_ms: i64, event: &TaskEvent) {
        self.task_id = task_id.to_owned();
        let status = match event {
            TaskEvent::TaskCreated(e) => {
                self.customer = e.customer.to_string();
                self.recipe = recipe_name(e.recipe).to_owned();
                self.class_group = e.class_group.key.clone();
                self.class_names = e.class_group.classes.iter().map(|c| (c.id, c.name.clone())).collect();
                self.images = e.images.clone();
                self.created_at_ms = at_ms;
                Some("created")
            }
            TaskEvent::DetectionRequested(_) => Some("detection_pending"),
            TaskEvent::ObjectsDetected(e) => {
                let predictions: Vec<ViewObject> = e
                    .objects
                    .iter()
                    .map(|o| ViewObject {
                        object_id: o.object_id.to_string(),
                        image: o.image,
                        bbox: o.bbox,
                        class_id: o.class_id,
                        score: Some(o.score),
                        by_model: true,
                    })
                    .collect();
                self.objects = predictions.iter().map(|o| (o.object_id.clone(), o.clone())).collect();
                self.runs.push(DetectionRun {
                    attempt: e.attempt,
                    model: e.model.clone(),
                    at_ms,
                    version,
                    predictions,
                });
                Some("detected")
            }
            TaskEvent::RecognitionRequested(_) => Some("recognition_pending"),
            TaskEvent::ObjectsRecognized(e) => {
                for r in &e.objects {
                    if let Some(o) = self.objects.get_mut(r.object_id.as_str()) {
                        o.class_id = Some(r.class_id);
                    }
                }
                self.recognitions.push(RecognitionRun {
                    attempt: e.attempt,
                    model: e.model.clone(),
                    at_ms,
                    version,
                    predictions: e.objects.iter().map(|r| (r.object_id.to_string(), r.class_id, r.score)).collect(),
                });
                Some("recognized")
            }
            TaskEvent::ModelNotFound(_) => Some("model_missing"),
            TaskEvent::AssistanceRequested(_) => Some("awaiting_operator"),
            TaskEvent::OperatorAssigned(e) => {
                self.sessions.push(OperatorSession {
                    session_id: e.session_id.to_string(),
                    operator: e.operator.to_string(),
                    purpose: purpose_name(e.purpose).to_owned(),
                    started_ms: at_ms,
                    ended_ms: None,
                    outcome: "open".into(),
                    objects_at_start: self.objects.len() as u32,
                    added: 0,
                    removed: 0,
                    labeled: 0,
                });
                Some(if e.purpose == SessionPurpose::Annotation { "in_annotation" } else { "in_quality_check" })
            }
            TaskEvent::OperatorReleased(e) => {
                self.end_session(&e.session_id, "released", at_ms);
                Some("awaiting_operator")
            }
            TaskEvent::ObjectsAdded(e) => {
                for o in &e.objects {
                    let object = ViewObject {
                        object_id: o.object_id.to_string(),
                        image: o.image,
                        bbox: o.bbox,
                        class_id: o.class_id,
                        score: None,
                        by_model: false,
                    };
                    self.objects.insert(object.object_id.clone(), object);
                }
                if let Some(s) = self.session(&e.session_id) {
                    s.added += e.objects.len() as u32;
                }
                None
            }
            TaskEvent::ObjectsRemoved(e) => {
                for id in &e.object_ids {
                    self.objects.remove(id.as_str());
                }
                if let Some(s) = self.session(&e.session_id) {
                    s.removed += e.object_ids.len() as u32;
                }
                None
            }
            TaskEvent::ObjectsLabeled(e) => {
                for l in &e.labels {
                    if let Some(o) = self.objects.get_mut(l.object_id.as_str()) {
                        o.class_id = Some(l.class_id);
                    }
                }
                if let Some(s) = self.session(&e.session_id) {
                    s.labeled += e.labels.len() as u32;
                }
                None
            }
            TaskEvent::OperatorFinished(e) => {
                self.end_session(&e.session_id, "finished", at_ms);
                self.truth = Some(GroundTruth {
                    version,
                    at_ms,
                    session_id: e.session_id.to_string(),
                    objects: self.objects.values().cloned().collect(),
                });
                Some(if e.purpose == SessionPurpose::Annotation { "annotated" } else { "quality_checked" })
            }
            TaskEvent::TaskResultGenerated(e) => {
                self.results = e.revision;
                self.reported = false;
                self.completed_at_ms.get_or_insert(at_ms);
                Some("result_generated")
            }
            TaskEvent::QualityCheckRequested(_) => Some("awaiting_quality_check"),
            TaskEvent::TaskReported(_) => {
                self.reported = true;
                None
            }
            TaskEvent::ReportFailed(_) | TaskEvent::RedeliveryRequested(_) => None,
            TaskEvent::TaskCancelled(_) => {
                self.cancelled = true;
                Some("cancelled")
            }
            TaskEvent::ReprocessRequested(_) => Some("reprocess_pending"),
            TaskEvent::BatchReverted(e) => {
                self.objects = e
                    .objects
                    .iter()
                    .map(|o| {
                        let object = ViewObject {
                            object_id: o.object_id.to_string(),
                            image: o.image,
                            bbox: o.bbox,
                            class_id: o.class_id,
                            score: o.score,
                            by_model: o.source == ObjectSource::Model,
                        };
                        (object.object_id.clone(), object)
                    })
                    .collect();
                Some("reverted")
            }
        };
        if let Some(status) = status {
            self.status = status.to_owned();
        }
        self.version = version;
        self.updated_at_ms = at_ms;
        self.last_event = event.type_name().to_owned();
    }

    /// Passes over the event of `version`, which could not be read (it was dead-lettered with
    /// its reason): the view counts it and changes nothing else, so the task's later events
    /// fold on instead of waiting for it for ever.
    pub fn pass(&mut self, task_id: &str, version: u64, at_ms: i64) {
        self.task_id = task_id.to_owned();
        self.version = version;
        self.updated_at_ms = at_ms;
    }
}

/// The civil date (year, month, day) of a time in ms since the epoch, in UTC.
pub fn civil_date(ms: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of a time in ms.
pub fn day(ms: i64) -> String {
    let (y, m, d) = civil_date(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM` of a time in ms.
pub fn month(ms: i64) -> String {
    let (y, m, _) = civil_date(ms);
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(951_782_400_000), "2000-02-29");
        assert_eq!(day(1_795_996_799_999), "2026-11-29");
        assert_eq!(day(1_795_996_800_000), "2026-11-30");
        assert_eq!(month(1_796_083_200_000), "2026-12");
        assert_eq!(day(-1), "1969-12-31");
    }
}
