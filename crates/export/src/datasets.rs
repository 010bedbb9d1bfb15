//! The four datasets and the fold of the event history that fills them.
//!
//! Point-in-time correct: only events recorded at or before the as-of instant are folded, and
//! every derived column (a prediction's ground truth, a training example's class) is what the
//! history said at that instant, never what was learned later.

use crate::table::{Cell, Column, Kind, Table};
use std::collections::HashMap;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_domain::{ObjectSource, ResultSource, SessionPurpose, TaskEvent, TaskState, evolve};
use visionlog_objects::Objects;
use visionlog_views::day;
use visionlog_views::views::crop_location;

macro_rules! col {
    ($name:literal, $kind:ident, $nullable:literal, $doc:literal) => {
        Column { name: $name, kind: Kind::$kind, nullable: $nullable, doc: $doc }
    };
}

/// Training examples: one row per labelled object of a task an operator annotated or checked.
pub const TRAINING_EXAMPLES: &[Column] = &[
    col!("task_id", String, false, "the source task"),
    col!("customer", String, false, "the customer (tenant)"),
    col!("class_group", String, false, "the class group of the task"),
    col!("object_id", String, false, "the object, stable across the task's events"),
    col!("image_index", UInt32, false, "index of the image in the task"),
    col!("image_uri", String, false, "the image the box is on"),
    col!("class_id", UInt32, false, "the product class"),
    col!("class_name", String, false, "its name in the task's class group"),
    col!("x", Float32, false, "box left edge, image pixels"),
    col!("y", Float32, false, "box top edge, image pixels"),
    col!("w", Float32, false, "box width, image pixels"),
    col!("h", Float32, false, "box height, image pixels"),
    col!("source", String, false, "MODEL (confirmed by an operator's check) or OPERATOR"),
    col!("annotator", String, true, "the operator who last drew or labelled it, if one did"),
    col!("crop_uri", String, false, "where the extractor writes the object's crop"),
    col!("labelled_at_ms", Int64, false, "when the result holding it was generated (ms since the epoch)"),
    col!("result_revision", UInt32, false, "the result revision it comes from"),
];

/// Prediction events: one row per object a model predicted — a detector's box, or a recognizer's
/// class for a box — with the ground truth that followed it: the objects as the first operator
/// session sealed after the prediction left them (not the task's final state, which later runs
/// and sessions may have changed).
pub const PREDICTIONS: &[Column] = &[
    col!("task_id", String, false, "the task"),
    col!("customer", String, false, "the customer (tenant)"),
    col!("class_group", String, false, "the class group"),
    col!("model_id", String, false, "the model"),
    col!("model_version", UInt32, false, "its version"),
    col!(
        "kind",
        String,
        false,
        "DETECTION (a box, with the detector's class if any) or RECOGNITION (a class for a box)"
    ),
    col!("attempt", UInt32, false, "the detection or recognition run of the task"),
    col!("object_id", String, false, "the predicted object"),
    col!("image_index", UInt32, false, "index of the image"),
    col!("class_id", UInt32, true, "the predicted class (null: box only)"),
    col!("class_name", String, true, "its name in the task's class group"),
    col!("score", Float32, false, "the model's confidence"),
    col!("x", Float32, false, "box left edge"),
    col!("y", Float32, false, "box top edge"),
    col!("w", Float32, false, "box width"),
    col!("h", Float32, false, "box height"),
    col!("predicted_at_ms", Int64, false, "when the prediction was recorded"),
    col!("reviewed", Bool, false, "an operator sealed a session on the task after this prediction (as of the export)"),
    col!("truth_kept", Bool, true, "reviewed: the object was in the objects that session sealed"),
    col!("truth_class_id", UInt32, true, "reviewed and kept: its class in the objects that session sealed"),
    col!("truth_class_name", String, true, "the name of that class"),
    col!("event_partition", UInt32, false, "partition of the event"),
    col!("event_offset", Int64, false, "offset of the event"),
];

/// Task results: one row per result generated.
pub const TASK_RESULTS: &[Column] = &[
    col!("task_id", String, false, "the task"),
    col!("customer", String, false, "the customer (tenant)"),
    col!("class_group", String, false, "the class group"),
    col!("revision", UInt32, false, "1 for the first result, more after re-processing"),
    col!("source", String, false, "AUTOMATIC or OPERATOR"),
    col!("model_id", String, true, "the last model that contributed"),
    col!("model_version", UInt32, true, "its version"),
    col!("objects", UInt32, false, "objects in the result"),
    col!("operator_objects", UInt32, false, "of which drawn by operators"),
    col!("images", UInt32, false, "images of the task"),
    col!("created_at_ms", Int64, false, "when the task was created"),
    col!("result_at_ms", Int64, false, "when the result was generated"),
    col!("event_partition", UInt32, false, "partition of the event"),
    col!("event_offset", Int64, false, "offset of the event"),
];

/// Operator sessions: one row per session opened.
pub const OPERATOR_SESSIONS: &[Column] = &[
    col!("session_id", String, false, "the session"),
    col!("task_id", String, false, "the task"),
    col!("customer", String, false, "the customer (tenant)"),
    col!("operator", String, false, "the operator"),
    col!("purpose", String, false, "ANNOTATION or QUALITY_CHECK"),
    col!("started_at_ms", Int64, false, "when the operator was assigned"),
    col!("ended_at_ms", Int64, true, "when the session was sealed or released (null: open at the as-of instant)"),
    col!("duration_ms", Int64, true, "ended - started"),
    col!("objects_added", UInt32, false, "boxes drawn"),
    col!("objects_removed", UInt32, false, "boxes removed"),
    col!("objects_labelled", UInt32, false, "labels set"),
    col!("outcome", String, false, "FINISHED, RELEASED or OPEN"),
];

/// A dataset of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// [`TRAINING_EXAMPLES`].
    TrainingExamples,
    /// [`PREDICTIONS`].
    Predictions,
    /// [`TASK_RESULTS`].
    TaskResults,
    /// [`OPERATOR_SESSIONS`].
    OperatorSessions,
}

impl Dataset {
    /// Every dataset.
    pub const ALL: [Dataset; 4] =
        [Dataset::TrainingExamples, Dataset::Predictions, Dataset::TaskResults, Dataset::OperatorSessions];

    /// Its folder name.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::TrainingExamples => "training_examples",
            Dataset::Predictions => "predictions",
            Dataset::TaskResults => "task_results",
            Dataset::OperatorSessions => "operator_sessions",
        }
    }

    /// Its columns.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Dataset::TrainingExamples => TRAINING_EXAMPLES,
            Dataset::Predictions => PREDICTIONS,
            Dataset::TaskResults => TASK_RESULTS,
            Dataset::OperatorSessions => OPERATOR_SESSIONS,
        }
    }
}

impl std::str::FromStr for Dataset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown dataset {s:?} (one of {})", Dataset::ALL.map(Dataset::name).join(", ")))
    }
}

struct Prediction {
    row: Vec<Cell>,
    object_id: String,
    date: String,
    /// The truth that followed: (kept, class) as the next sealed session left the object.
    truth: Option<(bool, Option<u32>)>,
}

struct Session {
    row: Vec<Cell>,
    started_at_ms: i64,
    added: u32,
    removed: u32,
    labelled: u32,
}

#[derive(Default)]
struct TaskFold {
    state: TaskState,
    created_at_ms: i64,
    annotators: HashMap<String, String>,
    predictions: Vec<Prediction>,
    /// How many of `predictions` have the truth that followed them.
    reviewed: usize,
    sessions: HashMap<String, Session>,
    last_result_at_ms: i64,
}

/// The fold of a history into the four datasets.
pub struct Fold {
    tasks: HashMap<String, TaskFold>,
    results: Table,
    sessions: Table,
}

impl Default for Fold {
    fn default() -> Self {
        Self { tasks: HashMap::new(), results: Table::new(TASK_RESULTS), sessions: Table::new(OPERATOR_SESSIONS) }
    }
}

fn s(v: impl Into<String>) -> Cell {
    Cell::S(Some(v.into()))
}

impl Fold {
    /// Folds one accepted event (in the order of its partition).
    pub fn apply(&mut self, partition: u32, offset: u64, envelope: &EventEnvelope, event: &TaskEvent) {
        let at = envelope.recorded_at_ms;
        let t = self.tasks.entry(envelope.task_id.clone()).or_default();
        if let TaskEvent::TaskCreated(_) = event {
            t.created_at_ms = at;
        }
        if let Some(task) = &t.state {
            let (task_id, customer, group) = (&envelope.task_id, task.customer.as_str(), task.class_group.key.as_str());
            match event {
                TaskEvent::ObjectsDetected(d) => {
                    for o in &d.objects {
                        let row = vec![
                            s(task_id),
                            s(customer),
                            s(group),
                            s(&d.model.model_id),
                            Cell::U(Some(d.model.version)),
                            s("DETECTION"),
                            Cell::U(Some(d.attempt)),
                            s(o.object_id.as_str()),
                            Cell::U(Some(o.image)),
                            Cell::U(o.class_id),
                            Cell::S(o.class_id.and_then(|c| class_name(task, c))),
                            Cell::F(Some(o.score)),
                            Cell::F(Some(o.bbox.x)),
                            Cell::F(Some(o.bbox.y)),
                            Cell::F(Some(o.bbox.w)),
                            Cell::F(Some(o.bbox.h)),
                            Cell::I(Some(at)),
                        ];
                        let tail = [Cell::U(Some(partition)), Cell::I(Some(offset as i64))];
                        t.predictions.push(Prediction {
                            row: row.into_iter().chain(tail).collect(),
                            object_id: o.object_id.as_str().to_owned(),
                            date: day(at),
                            truth: None,
                        });
                    }
                }
                TaskEvent::ObjectsRecognized(r) => {
                    for o in &r.objects {
                        let Some(placed) = task.objects.get(&o.object_id) else { continue };
                        let row = vec![
                            s(task_id),
                            s(customer),
                            s(group),
                            s(&r.model.model_id),
                            Cell::U(Some(r.model.version)),
                            s("RECOGNITION"),
                            Cell::U(Some(r.attempt)),
                            s(o.object_id.as_str()),
                            Cell::U(Some(placed.image)),
                            Cell::U(Some(o.class_id)),
                            Cell::S(class_name(task, o.class_id)),
                            Cell::F(Some(o.score)),
                            Cell::F(Some(placed.bbox.x)),
                            Cell::F(Some(placed.bbox.y)),
                            Cell::F(Some(placed.bbox.w)),
                            Cell::F(Some(placed.bbox.h)),
                            Cell::I(Some(at)),
                        ];
                        let tail = [Cell::U(Some(partition)), Cell::I(Some(offset as i64))];
                        t.predictions.push(Prediction {
                            row: row.into_iter().chain(tail).collect(),
                            object_id: o.object_id.as_str().to_owned(),
                            date: day(at),
                            truth: None,
                        });
                    }
                }
                TaskEvent::OperatorAssigned(a) => {
                    let purpose = match a.purpose {
                        SessionPurpose::Annotation => "ANNOTATION",
                        SessionPurpose::QualityCheck => "QUALITY_CHECK",
                    };
                    let row =
                        vec![s(a.session_id.as_str()), s(task_id), s(customer), s(a.operator.as_str()), s(purpose)];
                    let session = Session { row, started_at_ms: at, added: 0, removed: 0, labelled: 0 };
                    t.sessions.insert(a.session_id.as_str().to_owned(), session);
                }
                TaskEvent::ObjectsAdded(a) => {
                    for o in &a.objects {
                        t.annotators.insert(o.object_id.as_str().to_owned(), a.operator.as_str().to_owned());
                    }
                    if let Some(session) = t.sessions.get_mut(a.session_id.as_str()) {
                        session.added += a.objects.len() as u32;
                    }
                }
                TaskEvent::ObjectsRemoved(r) => {
                    if let Some(session) = t.sessions.get_mut(r.session_id.as_str()) {
                        session.removed += r.object_ids.len() as u32;
                    }
                }
                TaskEvent::ObjectsLabeled(l) => {
                    for label in &l.labels {
                        t.annotators.insert(label.object_id.as_str().to_owned(), l.operator.as_str().to_owned());
                    }
                    if let Some(session) = t.sessions.get_mut(l.session_id.as_str()) {
                        session.labelled += l.labels.len() as u32;
                    }
                }
                TaskEvent::OperatorFinished(f) => {
                    // a sealed session (annotation or quality check) is the truth of what the
                    // models said before it, as it leaves the objects
                    for p in &mut t.predictions[t.reviewed..] {
                        let o = task.objects.get(&visionlog_domain::ObjectId(p.object_id.clone()));
                        p.truth = Some((o.is_some(), o.and_then(|o| o.class_id)));
                    }
                    t.reviewed = t.predictions.len();
                    if let Some(session) = t.sessions.remove(f.session_id.as_str()) {
                        self.sessions.push(day(session.started_at_ms), session.row(Some(at), "FINISHED"));
                    }
                }
                TaskEvent::OperatorReleased(r) => {
                    if let Some(session) = t.sessions.remove(r.session_id.as_str()) {
                        self.sessions.push(day(session.started_at_ms), session.row(Some(at), "RELEASED"));
                    }
                }
                TaskEvent::TaskResultGenerated(r) => {
                    let operator_objects = r.objects.iter().filter(|o| o.source == ObjectSource::Operator).count();
                    let source = match r.source {
                        ResultSource::Automatic => "AUTOMATIC",
                        ResultSource::Operator => "OPERATOR",
                    };
                    let row = vec![
                        s(task_id),
                        s(customer),
                        s(group),
                        Cell::U(Some(r.revision)),
                        s(source),
                        Cell::S(r.model.as_ref().map(|m| m.model_id.clone())),
                        Cell::U(r.model.as_ref().map(|m| m.version)),
                        Cell::U(Some(r.objects.len() as u32)),
                        Cell::U(Some(operator_objects as u32)),
                        Cell::U(Some(task.images.len() as u32)),
                        Cell::I(Some(t.created_at_ms)),
                        Cell::I(Some(at)),
                        Cell::U(Some(partition)),
                        Cell::I(Some(offset as i64)),
                    ];
                    self.results.push(day(at), row);
                    t.last_result_at_ms = at;
                }
                _ => {}
            }
        }
        t.state = evolve(t.state.take(), event);
    }

    /// The datasets as of the end of the fold.
    pub fn finish(mut self, objects: &Objects) -> HashMap<Dataset, Table> {
        let mut examples = Table::new(TRAINING_EXAMPLES);
        let mut predictions = Table::new(PREDICTIONS);
        let mut tasks: Vec<_> = self.tasks.into_iter().collect();
        tasks.sort_by(|a, b| a.0.cmp(&b.0));
        for (task_id, t) in tasks {
            let Some(task) = &t.state else { continue };
            let mut open: Vec<_> = t.sessions.into_iter().collect();
            open.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, session) in open {
                self.sessions.push(day(session.started_at_ms), session.row(None, "OPEN"));
            }
            // a prediction is reviewed when an operator sealed a session after it
            for p in t.predictions {
                let mut row = p.row;
                let class = p.truth.and_then(|(_, c)| c);
                let tail = [
                    Cell::B(Some(p.truth.is_some())),
                    Cell::B(p.truth.map(|(kept, _)| kept)),
                    Cell::U(class),
                    Cell::S(class.and_then(|c| class_name(task, c))),
                ];
                let position = row.len() - 2;
                row.splice(position..position, tail);
                predictions.push(p.date, row);
            }
            if task.result_revision == 0 || !task.operator_touched {
                continue;
            }
            for (id, o) in &task.objects {
                let Some(class_id) = o.class_id else { continue };
                let image_uri = task.images.get(o.image as usize).map_or_else(String::new, |i| i.uri.clone());
                let source = match o.source {
                    ObjectSource::Model => "MODEL",
                    ObjectSource::Operator => "OPERATOR",
                };
                let crop =
                    crop_location(task.customer.as_str(), &task.class_group.key, class_id, &task_id, id.as_str());
                examples.push(
                    day(t.last_result_at_ms),
                    vec![
                        s(&task_id),
                        s(task.customer.as_str()),
                        s(&task.class_group.key),
                        s(id.as_str()),
                        Cell::U(Some(o.image)),
                        s(image_uri),
                        Cell::U(Some(class_id)),
                        Cell::S(class_name(task, class_id)),
                        Cell::F(Some(o.bbox.x)),
                        Cell::F(Some(o.bbox.y)),
                        Cell::F(Some(o.bbox.w)),
                        Cell::F(Some(o.bbox.h)),
                        s(source),
                        Cell::S(t.annotators.get(id.as_str()).cloned()),
                        s(objects.object_url(&crop)),
                        Cell::I(Some(t.last_result_at_ms)),
                        Cell::U(Some(task.result_revision)),
                    ],
                );
            }
        }
        HashMap::from([
            (Dataset::TrainingExamples, examples),
            (Dataset::Predictions, predictions),
            (Dataset::TaskResults, self.results),
            (Dataset::OperatorSessions, self.sessions),
        ])
    }
}

/// A class's name in the task's class group.
fn class_name(task: &visionlog_domain::Task, class_id: u32) -> Option<String> {
    task.class_group.classes.iter().find(|c| c.id == class_id).map(|c| c.name.clone())
}

impl Session {
    fn row(self, ended_at_ms: Option<i64>, outcome: &str) -> Vec<Cell> {
        let mut row = self.row;
        row.extend([
            Cell::I(Some(self.started_at_ms)),
            Cell::I(ended_at_ms),
            Cell::I(ended_at_ms.map(|e| e - self.started_at_ms)),
            Cell::U(Some(self.added)),
            Cell::U(Some(self.removed)),
            Cell::U(Some(self.labelled)),
            s(outcome),
        ]);
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visionlog_domain::{
        BoundingBox, ClassGroup, DetectedObject, ImageRef, ModelRef, ObjectId, ObjectLabel, ObjectsDetected,
        ObjectsLabeled, ObjectsRemoved, OperatorAssigned, OperatorFinished, OperatorId, ProductClass, Recipe,
        SessionId, TaskCreated, TaskType,
    };

    fn event(task: &str, version: u64, at: i64) -> EventEnvelope {
        EventEnvelope {
            event_id: format!("{task}-{version}"),
            task_id: task.into(),
            version,
            event_type: String::new(),
            occurred_at_ms: at,
            recorded_at_ms: at,
            correlation_id: String::new(),
            causation_id: String::new(),
            actor: String::new(),
            tenant: "acme".into(),
        }
    }

    fn bbox(x: f32) -> BoundingBox {
        BoundingBox { x, y: 10.0, w: 20.0, h: 20.0 }
    }

    /// A task detected by a model, then checked by an operator who removes one box and relabels
    /// another: the history the fold is checked on, with the instant of each event.
    fn history() -> Vec<(i64, TaskEvent)> {
        let group = ClassGroup {
            key: "acme/ice-cream".into(),
            classes: vec![ProductClass { id: 1, name: "a".into() }, ProductClass { id: 2, name: "b".into() }],
        };
        let detected = |id: &str, x, class| DetectedObject {
            object_id: ObjectId(id.into()),
            image: 0,
            bbox: bbox(x),
            class_id: Some(class),
            score: 0.9,
        };
        let op = OperatorId("op-1".into());
        let session = SessionId("s-1".into());
        vec![
            (
                1_000,
                TaskEvent::TaskCreated(TaskCreated {
                    customer: "acme".into(),
                    task_type: TaskType::ProductDetection,
                    recipe: Recipe::Detection,
                    class_group: group,
                    images: vec![ImageRef { uri: "store://i/0.png".into(), width: 640, height: 480 }],
                    callback_url: None,
                    personal: None,
                }),
            ),
            (
                2_000,
                TaskEvent::ObjectsDetected(ObjectsDetected {
                    attempt: 1,
                    model: ModelRef { model_id: "m".into(), version: 3 },
                    objects: vec![detected("o1", 0.0, 1), detected("o2", 50.0, 1), detected("o3", 100.0, 2)],
                }),
            ),
            (
                3_000,
                TaskEvent::OperatorAssigned(OperatorAssigned {
                    operator: op.clone(),
                    session_id: session.clone(),
                    purpose: SessionPurpose::QualityCheck,
                }),
            ),
            (
                4_000,
                TaskEvent::ObjectsRemoved(ObjectsRemoved {
                    operator: op.clone(),
                    session_id: session.clone(),
                    object_ids: vec![ObjectId("o2".into())],
                }),
            ),
            (
                5_000,
                TaskEvent::ObjectsLabeled(ObjectsLabeled {
                    operator: op.clone(),
                    session_id: session.clone(),
                    labels: vec![ObjectLabel { object_id: ObjectId("o3".into()), class_id: 1 }],
                }),
            ),
            (
                6_000,
                TaskEvent::OperatorFinished(OperatorFinished {
                    operator: op,
                    session_id: session,
                    purpose: SessionPurpose::QualityCheck,
                }),
            ),
        ]
    }

    fn fold(as_of: i64) -> HashMap<Dataset, Table> {
        let objects = Objects::open(&format!("file://{}", std::env::temp_dir().display())).unwrap();
        let mut fold = Fold::default();
        for (v, (at, e)) in history().into_iter().enumerate() {
            if at <= as_of {
                fold.apply(0, v as u64 + 1, &event("t1", v as u64 + 1, at), &e);
            }
        }
        fold.finish(&objects)
    }

    fn rows(t: &Table) -> Vec<Vec<Cell>> {
        t.rows().cloned().collect()
    }

    #[test]
    fn predictions_carry_the_ground_truth_known_at_the_as_of_instant() {
        let col = |name: &str| PREDICTIONS.iter().position(|c| c.name == name).unwrap();
        // after the check: o1 kept as class 1, o2 removed, o3 relabelled 2 -> 1
        let now = fold(i64::MAX);
        let p = rows(&now[&Dataset::Predictions]);
        assert_eq!(p.len(), 3);
        let truth: Vec<_> = p
            .iter()
            .map(|r| (r[col("reviewed")].clone(), r[col("truth_kept")].clone(), r[col("truth_class_id")].clone()))
            .collect();
        assert_eq!(
            truth,
            vec![
                (Cell::B(Some(true)), Cell::B(Some(true)), Cell::U(Some(1))),
                (Cell::B(Some(true)), Cell::B(Some(false)), Cell::U(None)),
                (Cell::B(Some(true)), Cell::B(Some(true)), Cell::U(Some(1))),
            ]
        );
        let sessions = rows(&now[&Dataset::OperatorSessions]);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0][OPERATOR_SESSIONS.len() - 1], Cell::S(Some("FINISHED".into())));
        assert_eq!(sessions[0][7], Cell::I(Some(3_000)), "duration");

        // as of 5,500 the check was under way: nothing reviewed yet, the session open
        let then = fold(5_500);
        let p = rows(&then[&Dataset::Predictions]);
        assert!(p.iter().all(|r| r[col("reviewed")] == Cell::B(Some(false)) && r[col("truth_kept")] == Cell::B(None)));
        let sessions = rows(&then[&Dataset::OperatorSessions]);
        assert_eq!(sessions[0][OPERATOR_SESSIONS.len() - 1], Cell::S(Some("OPEN".into())));
        assert_eq!(sessions[0][6], Cell::I(None), "no end yet");
        // no result was generated: no examples, no results (either instant)
        assert!(rows(&now[&Dataset::TaskResults]).is_empty());
        assert!(rows(&then[&Dataset::TrainingExamples]).is_empty());
    }

    #[test]
    fn a_prediction_is_labelled_by_the_truth_that_followed_it_not_by_the_final_state() {
        let col = |name: &str| PREDICTIONS.iter().position(|c| c.name == name).unwrap();
        // after the check, a recognizer classifies o1 again and a second session relabels it
        let (op, s2) = (OperatorId("op-2".into()), SessionId("s-2".into()));
        let later = [
            (
                7_000,
                TaskEvent::ObjectsRecognized(visionlog_domain::ObjectsRecognized {
                    attempt: 1,
                    model: ModelRef { model_id: "r".into(), version: 1 },
                    objects: vec![visionlog_domain::Recognition {
                        object_id: ObjectId("o1".into()),
                        class_id: 1,
                        score: 0.7,
                    }],
                }),
            ),
            (
                8_000,
                TaskEvent::OperatorAssigned(OperatorAssigned {
                    operator: op.clone(),
                    session_id: s2.clone(),
                    purpose: SessionPurpose::QualityCheck,
                }),
            ),
            (
                9_000,
                TaskEvent::ObjectsLabeled(ObjectsLabeled {
                    operator: op.clone(),
                    session_id: s2.clone(),
                    labels: vec![ObjectLabel { object_id: ObjectId("o1".into()), class_id: 2 }],
                }),
            ),
            (
                10_000,
                TaskEvent::OperatorFinished(OperatorFinished {
                    operator: op,
                    session_id: s2,
                    purpose: SessionPurpose::QualityCheck,
                }),
            ),
        ];
        let objects = Objects::open(&format!("file://{}", std::env::temp_dir().display())).unwrap();
        let mut fold = Fold::default();
        for (v, (at, e)) in history().into_iter().chain(later).enumerate() {
            fold.apply(0, v as u64 + 1, &event("t1", v as u64 + 1, at), &e);
        }
        let p = rows(&fold.finish(&objects)[&Dataset::Predictions]);
        let o1: Vec<_> = p
            .iter()
            .filter(|r| r[col("object_id")] == s("o1"))
            .map(|r| {
                (
                    r[col("kind")].clone(),
                    r[col("class_name")].clone(),
                    r[col("truth_class_id")].clone(),
                    r[col("truth_class_name")].clone(),
                )
            })
            .collect();
        assert_eq!(
            o1,
            [
                // the detector's o1 was class 1 by the first check, though the task's final state says 2
                (s("DETECTION"), s("a"), Cell::U(Some(1)), s("a")),
                // the recognizer's answer is labelled by the second check, which followed it
                (s("RECOGNITION"), s("a"), Cell::U(Some(2)), s("b")),
            ]
        );
    }

    #[test]
    fn a_table_writes_one_parquet_file_per_date() {
        let mut t = Table::new(TASK_RESULTS);
        let row = |task: &str| {
            vec![
                s(task),
                s("acme"),
                s("acme/ice-cream"),
                Cell::U(Some(1)),
                s("AUTOMATIC"),
                Cell::S(None),
                Cell::U(None),
                Cell::U(Some(3)),
                Cell::U(Some(0)),
                Cell::U(Some(1)),
                Cell::I(Some(1)),
                Cell::I(Some(2)),
                Cell::U(Some(0)),
                Cell::I(Some(7)),
            ]
        };
        t.push("2026-12-01".into(), row("t1"));
        t.push("2026-12-02".into(), row("t2"));
        t.push("2026-12-02".into(), row("t3"));
        let files = t.parquet().unwrap();
        assert_eq!(files.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(), ["2026-12-01", "2026-12-02"]);
        assert!(files.iter().all(|(_, b)| b.starts_with(b"PAR1") && b.ends_with(b"PAR1")));
        assert_eq!(t.counts().values().sum::<u64>(), 3);
    }
}
