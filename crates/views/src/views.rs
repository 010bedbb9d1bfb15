//! The views: each a pure function from a task's [`TaskView`] to rows of its table.
//!
//! Cardinalities (seed 000, "Different cardinalities on read models"):
//! - one-to-one: `task_summary` (one row per task);
//! - one-to-many: `operator_sessions` (a row per session), `training_index` (a row per class
//!   of the task's ground truth), `engine_monitor` (a row per detection run);
//! - many-to-one: `billing` (a customer-month partition gathers its tasks' rows; the query sums
//!   them), `class_groups` (the last task's definition of a class group wins).
//!
//! Every row but `class_groups`' belongs to exactly one task and carries that task's version,
//! so the version guard of the store makes it idempotent under redelivery and reordering; rows a
//! task no longer produces become tombstones at the new version. Aggregates are summed at read
//! time over one partition, which keeps every write idempotent (a counter would not be).

use crate::task_view::{TaskView, ViewObject, day, month};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use visionlog_domain::BoundingBox;
use visionlog_domain::scoring::Placed;

/// The projector's list of the tombstones it wrote, by partition of `events`, so that it can
/// erase them once no older write can arrive (see the projector's `tombstones` module). Not a
/// view: only the projector reads it; it lives and dies with its generation.
pub const TOMBSTONES: &str = "tombstones";

/// The tables of the views (without their generation suffix).
pub const VIEW_TABLES: [&str; 11] = [
    TASK_STATE,
    TASK_SUMMARY,
    TASKS_BY_STATUS,
    OPERATOR_QUEUE,
    HELD_TASKS,
    ENGINE_MONITOR,
    OPERATOR_SESSIONS,
    BILLING,
    TRAINING_INDEX,
    LABELLED,
    CLASS_GROUPS,
];
/// The projector's own fold of each task (what the views are computed from).
pub const TASK_STATE: &str = "task_state";
/// Task manager: one row per task.
pub const TASK_SUMMARY: &str = "task_summary";
/// Task manager: tasks by customer and status, oldest first.
pub const TASKS_BY_STATUS: &str = "tasks_by_status";
/// Operator manager: the tasks that wait for an operator or have one, per customer, oldest first.
pub const OPERATOR_QUEUE: &str = "operator_queue";
/// Operator manager: the tasks an operator holds, per customer (what the lease reaper reads:
/// as many rows as operators at work, however long the queue).
pub const HELD_TASKS: &str = "held_tasks";
/// Engine monitor: TP/FP/FN of each detection run against operator ground truth.
pub const ENGINE_MONITOR: &str = "engine_monitor";
/// Operator monitor: one row per operator session.
pub const OPERATOR_SESSIONS: &str = "operator_sessions";
/// Billing: a row per task in its customer-month partition.
pub const BILLING: &str = "billing";
/// Training data: the crops of each class, per task.
pub const TRAINING_INDEX: &str = "training_index";
/// The trainer's repository: a row per labelled task of a customer's class group, in the order
/// its ground truth was sealed (partition = `customer|class group`, clustering =
/// `sealed at|task id`), so "labels since the last training" is a range read.
pub const LABELLED: &str = "labelled";
/// The last definition of each class group.
pub const CLASS_GROUPS: &str = "class_groups";

pub use visionlog_domain::scoring::MATCH_IOU;

/// One row a view wants, before its generation and version are known.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewRow {
    /// The view's table.
    pub table: &'static str,
    /// The partition key.
    pub partition: String,
    /// The clustering key.
    pub clustering: String,
    /// A version of its own, for rows not owned by one task (else the task's).
    pub version: Option<u64>,
    /// The encoded value.
    pub value: Vec<u8>,
}

/// Encodes a view value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("view values serialize")
}

/// Decodes a view value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

/// Zero-padded, so that clustering keys sort by time.
fn ts(ms: i64) -> String {
    format!("{:015}", ms.max(0))
}

/// The task manager's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task.
    pub task_id: String,
    /// Its customer.
    pub customer: String,
    /// Its recipe.
    pub recipe: String,
    /// Where it stands.
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
    /// Whether the latest result was delivered to the callback.
    pub reported: bool,
    /// When the task was created (ms).
    pub created_at_ms: i64,
    /// When its last event was recorded (ms).
    pub updated_at_ms: i64,
    /// When its first result was generated (ms).
    pub completed_at_ms: Option<i64>,
    /// The last event type.
    pub last_event: String,
}

pub use visionlog_domain::scoring::Counts;

/// The operator manager's row: a task that waits for an operator, or is in an operator's hands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    /// The task.
    pub task_id: String,
    /// Its customer.
    pub customer: String,
    /// Its class group (the project).
    pub class_group: String,
    /// Its recipe.
    pub recipe: String,
    /// The skill it needs: `annotation` or `quality_check`.
    pub skill: String,
    /// The task version the row reflects: what an assignment expects.
    pub version: u64,
    /// Images.
    pub images: u32,
    /// Objects alive.
    pub objects: u32,
    /// When the task was created (ms).
    pub created_at_ms: i64,
    /// When its last event was recorded (ms).
    pub updated_at_ms: i64,
    /// The operator holding it, if assigned.
    pub operator: Option<String>,
    /// The open session, if assigned.
    pub session_id: Option<String>,
    /// When the session opened (ms): where its lease starts.
    pub session_started_ms: Option<i64>,
}

/// The engine monitor's row: one detection run scored against the ground truth after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunScore {
    /// The task.
    pub task_id: String,
    /// The run.
    pub attempt: u32,
    /// The model, `id@version`.
    pub model: String,
    /// The day of the run.
    pub day: String,
    /// Counts per class id (0: boxes the model did not classify).
    pub classes: BTreeMap<u32, Counts>,
}

/// The operator monitor's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// The task.
    pub task_id: String,
    /// The session.
    pub session: crate::task_view::OperatorSession,
    /// For an annotation session another operator's quality check followed: what the check
    /// found (the annotator's accuracy sample).
    pub checked: Option<Checked>,
}

/// What a quality check found of the annotation session before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The checking operator.
    pub checker: String,
    /// Objects the check started from (the annotator's).
    pub objects: u32,
    /// Its corrections: boxes added, removed and relabelled.
    pub corrections: u32,
}

/// The billing row of one task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRow {
    /// The task.
    pub task_id: String,
    /// Its recipe.
    pub recipe: String,
    /// Its images.
    pub images: u32,
    /// Whether it is billed: a result was generated and it was not cancelled.
    pub billable: bool,
}

/// One crop of the training-data repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crop {
    /// The object.
    pub object_id: String,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Where the crop is (a key of the object store).
    pub location: String,
}

/// The training index row: the crops of one class in one task's ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    /// The task.
    pub task_id: String,
    /// The task version of the ground truth.
    pub truth_version: u64,
    /// The crops.
    pub crops: Vec<Crop>,
}

/// The trainer's row of a labelled task: its photos and its ground truth's classified boxes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelledRow {
    /// The task.
    pub task_id: String,
    /// The task version of the ground truth.
    pub truth_version: u64,
    /// When the ground truth was sealed (ms).
    pub sealed_at_ms: i64,
    /// The photos' URIs, by image index.
    pub images: Vec<String>,
    /// The boxes with a class: (image index, box, class id).
    pub boxes: Vec<(u32, BoundingBox, u32)>,
    /// The class ids of the task's class group.
    pub classes: Vec<u32>,
}

/// A paging key of the `labelled` rows after every row sealed before `at_ms` (the task ids
/// that follow the fixed-width time all sort before U+10FFFF).
pub fn sealed_before(at_ms: i64) -> String {
    format!("{}|\u{10FFFF}", ts(at_ms.saturating_sub(1)))
}

/// Bits of a task id's hash that break ties between class-group definitions of one millisecond.
const CLASS_GROUP_TIE_BITS: u32 = 21;

/// The last definition of a class group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassGroupRow {
    /// The key.
    pub key: String,
    /// Class names by id.
    pub classes: BTreeMap<u32, String>,
    /// The task that defined it last.
    pub task_id: String,
}

/// Makes an object-store path segment of an id: `[A-Za-z0-9_-]` kept, the rest `%XX`, so no
/// id can climb out of its folder.
pub use visionlog_domain::path_segment;

/// A class group as it names rows: its key within its customer's namespace. Keys are the
/// customer's own names, so two customers may use one key; every row keyed by a class group
/// (its definition, labels, training crops) is keyed by this, and never by the key alone.
/// Customer ids hold no `|`, so no two (customer, key) pairs meet.
pub fn class_group_scope(customer: &str, key: &str) -> String {
    format!("{customer}|{key}")
}

/// Where the crop of an object lives in the training-data repository: under its customer, then
/// its class group.
pub fn crop_location(customer: &str, class_group: &str, class_id: u32, task_id: &str, object_id: &str) -> String {
    format!(
        "training/{}/{}/{class_id}/{}/{}.png",
        path_segment(customer),
        path_segment(class_group),
        path_segment(task_id),
        path_segment(object_id)
    )
}

/// Matches predictions to ground truth per image: pairs of the same class (or any class, for a
/// prediction without one) with IoU >= 0.5, best IoU first, each box matched at most once.
pub fn score(predictions: &[ViewObject], truth: &[ViewObject]) -> BTreeMap<u32, Counts> {
    let placed = |o: &ViewObject| Placed { image: o.image, bbox: o.bbox, class_id: o.class_id };
    let (p, t): (Vec<_>, Vec<_>) = (predictions.iter().map(placed).collect(), truth.iter().map(placed).collect());
    visionlog_domain::scoring::score(&p, &t)
}

impl TaskView {
    /// The task manager's summary.
    pub fn summary(&self) -> TaskSummary {
        TaskSummary {
            task_id: self.task_id.clone(),
            customer: self.customer.clone(),
            recipe: self.recipe.clone(),
            status: self.status.clone(),
            version: self.version,
            images: self.images.len() as u32,
            objects: self.objects.len() as u32,
            operator_sessions: self.sessions.len() as u32,
            results: self.results,
            reported: self.reported,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            completed_at_ms: self.completed_at_ms,
            last_event: self.last_event.clone(),
        }
    }

    /// The operator queue's row, while the task waits for an operator or has one.
    pub fn queue_row(&self) -> Option<QueueRow> {
        let open = self.sessions.last().filter(|s| s.outcome == "open");
        let skill = match (self.status.as_str(), open) {
            ("in_annotation" | "in_quality_check", Some(s)) => s.purpose.clone(),
            ("awaiting_operator", _) => match self.sessions.last() {
                // a released quality check waits for another checker
                Some(s) if s.outcome == "released" && s.purpose == "quality_check" => s.purpose.clone(),
                _ => "annotation".into(),
            },
            ("awaiting_quality_check", _) => "quality_check".into(),
            _ => return None,
        };
        Some(QueueRow {
            task_id: self.task_id.clone(),
            customer: self.customer.clone(),
            class_group: self.class_group.clone(),
            recipe: self.recipe.clone(),
            skill,
            version: self.version,
            images: self.images.len() as u32,
            objects: self.objects.len() as u32,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            operator: open.map(|s| s.operator.clone()),
            session_id: open.map(|s| s.session_id.clone()),
            session_started_ms: open.map(|s| s.started_ms),
        })
    }

    /// Every view row of the task, in a stable order.
    pub fn rows(&self) -> Vec<ViewRow> {
        let row = |table, partition: String, clustering: String, value: Vec<u8>| ViewRow {
            table,
            partition,
            clustering,
            version: None,
            value,
        };
        let mut out = Vec::new();
        if self.version == 0 || self.customer.is_empty() {
            return out; // events of a task whose creation was not seen: nothing to show
        }
        let summary = encode(&self.summary());
        out.push(row(TASK_SUMMARY, self.task_id.clone(), String::new(), summary.clone()));
        out.push(row(
            TASKS_BY_STATUS,
            format!("{}|{}", self.customer, self.status),
            format!("{}|{}", ts(self.created_at_ms), self.task_id),
            summary,
        ));
        if let Some(queued) = self.queue_row() {
            let value = encode(&queued);
            if queued.operator.is_some() {
                out.push(row(HELD_TASKS, self.customer.clone(), self.task_id.clone(), value.clone()));
            }
            out.push(row(
                OPERATOR_QUEUE,
                self.customer.clone(),
                format!("{}|{}", ts(self.created_at_ms), self.task_id),
                value,
            ));
        }
        // engine monitor: every run before the latest ground truth is scored against it; in the
        // two-step recipe a detector owes the boxes (the recognizer's runs are scored below), so
        // its boxes are scored whatever their class, as its backtest is
        if let Some(truth) = &self.truth {
            let boxes_only = self.recipe == "DETECTION_AND_RECOGNITION";
            for run in self.runs.iter().filter(|r| r.version < truth.version) {
                let model = format!("{}@{}", run.model.model_id, run.model.version);
                let day = day(run.at_ms);
                let classes = if boxes_only {
                    let unclassed: Vec<ViewObject> =
                        run.predictions.iter().map(|p| ViewObject { class_id: None, ..p.clone() }).collect();
                    score(&unclassed, &truth.objects)
                } else {
                    score(&run.predictions, &truth.objects)
                };
                let value = RunScore {
                    task_id: self.task_id.clone(),
                    attempt: run.attempt,
                    model: model.clone(),
                    day: day.clone(),
                    classes,
                };
                out.push(row(
                    ENGINE_MONITOR,
                    format!("{model}|{day}"),
                    format!("{}|{:06}", self.task_id, run.attempt),
                    encode(&value),
                ));
            }
        }
        // and every recognition run before it, on the boxes the truth kept (matched by object
        // id): a right class is a hit of that class, a wrong one a false positive of the class
        // said and a miss of the class true
        if let Some(truth) = &self.truth {
            let classes: BTreeMap<&str, u32> =
                truth.objects.iter().filter_map(|o| Some((o.object_id.as_str(), o.class_id?))).collect();
            for run in self.recognitions.iter().filter(|r| r.version < truth.version) {
                let model = format!("{}@{}", run.model.model_id, run.model.version);
                let day = day(run.at_ms);
                let mut counts: BTreeMap<u32, Counts> = BTreeMap::new();
                for (object, said, _) in &run.predictions {
                    let Some(&want) = classes.get(object.as_str()) else { continue };
                    if *said == want {
                        counts.entry(want).or_default().tp += 1;
                    } else {
                        counts.entry(*said).or_default().fp += 1;
                        counts.entry(want).or_default().fn_ += 1;
                    }
                }
                let value = RunScore {
                    task_id: self.task_id.clone(),
                    attempt: run.attempt,
                    model: model.clone(),
                    day: day.clone(),
                    classes: counts,
                };
                out.push(row(
                    ENGINE_MONITOR,
                    format!("{model}|{day}"),
                    format!("{}|{:06}", self.task_id, run.attempt),
                    encode(&value),
                ));
            }
        }
        for (i, s) in self.sessions.iter().enumerate() {
            // an annotation sealed, then the next session a finished check by someone else
            let check = self.sessions.get(i + 1).filter(|q| {
                s.purpose == "annotation"
                    && s.outcome == "finished"
                    && q.purpose == "quality_check"
                    && q.outcome == "finished"
                    && q.operator != s.operator
            });
            let checked = check.map(|q| Checked {
                checker: q.operator.clone(),
                objects: q.objects_at_start,
                corrections: q.added + q.removed + q.labeled,
            });
            let value = SessionRow { task_id: self.task_id.clone(), session: s.clone(), checked };
            out.push(row(
                OPERATOR_SESSIONS,
                format!("{}|{}", s.operator, day(s.started_ms)),
                format!("{}|{}|{}", ts(s.started_ms), self.task_id, s.session_id),
                encode(&value),
            ));
        }
        let billing = BillingRow {
            task_id: self.task_id.clone(),
            recipe: self.recipe.clone(),
            images: self.images.len() as u32,
            billable: self.completed_at_ms.is_some() && !self.cancelled,
        };
        out.push(row(
            BILLING,
            format!("{}|{}", self.customer, month(self.created_at_ms)),
            self.task_id.clone(),
            encode(&billing),
        ));
        if let Some(truth) = self.truth.as_ref().filter(|_| !self.cancelled) {
            let labelled = LabelledRow {
                task_id: self.task_id.clone(),
                truth_version: truth.version,
                sealed_at_ms: truth.at_ms,
                images: self.images.iter().map(|i| i.uri.clone()).collect(),
                boxes: truth.objects.iter().filter_map(|o| Some((o.image, o.bbox, o.class_id?))).collect(),
                classes: self.class_names.keys().copied().collect(),
            };
            out.push(row(
                LABELLED,
                class_group_scope(&self.customer, &self.class_group),
                format!("{}|{}", ts(truth.at_ms), self.task_id),
                encode(&labelled),
            ));
        }
        if let Some(truth) = &self.truth {
            let mut by_class: BTreeMap<u32, Vec<Crop>> = BTreeMap::new();
            for o in &truth.objects {
                let Some(class_id) = o.class_id else { continue };
                by_class.entry(class_id).or_default().push(Crop {
                    object_id: o.object_id.clone(),
                    image: o.image,
                    bbox: o.bbox,
                    location: crop_location(&self.customer, &self.class_group, class_id, &self.task_id, &o.object_id),
                });
            }
            for (class_id, crops) in by_class {
                let value = TrainingRow { task_id: self.task_id.clone(), truth_version: truth.version, crops };
                out.push(row(
                    TRAINING_INDEX,
                    format!("{}|{class_id}", class_group_scope(&self.customer, &self.class_group)),
                    self.task_id.clone(),
                    encode(&value),
                ));
            }
        }
        // many-to-one: the class group as the latest task defined it; the version orders
        // definitions by creation time, ties broken by a hash of the task id, the same on every
        // replay. The store keeps the first of two writes at one version, so a tie between two
        // tasks created in the same millisecond would make the winner depend on the order the
        // partitions were folded in (a 10,000-task demo creates a dozen tasks a millisecond:
        // with 1,000 tie values a live view and its rebuild disagreed about once in 70 runs).
        // 21 bits of hash under 42 bits of milliseconds (until 2109) stay inside CQL's i64.
        let tie = u64::from(crc32c::crc32c(self.task_id.as_bytes()) >> (32 - CLASS_GROUP_TIE_BITS));
        let millis = (self.created_at_ms.max(0) as u64).min((1 << 42) - 1);
        let group = ClassGroupRow {
            key: self.class_group.clone(),
            classes: self.class_names.clone(),
            task_id: self.task_id.clone(),
        };
        out.push(ViewRow {
            table: CLASS_GROUPS,
            partition: class_group_scope(&self.customer, &self.class_group),
            clustering: String::new(),
            version: Some(millis << CLASS_GROUP_TIE_BITS | tie),
            value: encode(&group),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(image: u32, x: f32, class_id: Option<u32>) -> ViewObject {
        ViewObject {
            object_id: format!("o{x}"),
            image,
            bbox: BoundingBox { x, y: 0.0, w: 10.0, h: 10.0 },
            class_id,
            score: None,
            by_model: true,
        }
    }

    #[test]
    fn scoring_matches_same_class_boxes_once() {
        let truth = [obj(0, 0.0, Some(1)), obj(0, 100.0, Some(2)), obj(1, 0.0, Some(1))];
        let predictions = [
            obj(0, 1.0, Some(1)),   // TP class 1 (IoU 0.82)
            obj(0, 2.0, Some(1)),   // FP: the truth box is taken
            obj(0, 100.0, Some(3)), // FP class 3, and truth class 2 is missed
            obj(1, 0.0, Some(1)),   // TP on image 1
        ];
        let c = score(&predictions, &truth);
        assert_eq!(c[&1], Counts { tp: 2, fp: 1, fn_: 0 });
        assert_eq!(c[&2], Counts { tp: 0, fp: 0, fn_: 1 });
        assert_eq!(c[&3], Counts { tp: 0, fp: 1, fn_: 0 });
    }

    #[test]
    fn class_group_definitions_are_ordered_by_creation_then_by_task_id_hash() {
        let version = |task: &str, at: i64| {
            let view = TaskView {
                task_id: task.into(),
                class_group: "acme/ice".into(),
                customer: "acme".into(),
                version: 1,
                created_at_ms: at,
                ..TaskView::default()
            };
            view.rows().into_iter().find(|r| r.table == CLASS_GROUPS).and_then(|r| r.version).unwrap()
        };
        let at = 1_796_430_065_945;
        // the pair that tied under 1,000 tie values, created in the same millisecond
        assert_ne!(version("task-009982", at), version("task-009996", at));
        let same_ms: std::collections::BTreeSet<u64> = (0..200).map(|i| version(&format!("task-{i:06}"), at)).collect();
        assert_eq!(same_ms.len(), 200, "no two of 200 tasks of one millisecond tie");
        assert!(same_ms.iter().all(|v| *v < version("task-000000", at + 1)), "a later task wins");
        assert!(version("t", 1 << 50) <= i64::MAX as u64, "inside CQL's bigint");
    }

    #[test]
    fn path_segments_cannot_climb() {
        assert_eq!(path_segment("../etc/passwd"), "%2E%2E%2Fetc%2Fpasswd");
        assert_eq!(crop_location("acme", "acme/ice", 3, "t-1", "s1.0"), "training/acme/acme%2Fice/3/t-1/s1%2E0.png");
    }

    #[test]
    fn a_labelled_task_has_a_row_in_the_trainers_repository_in_the_order_it_was_sealed() {
        let mut view = TaskView {
            task_id: "t-1".into(),
            version: 9,
            customer: "acme".into(),
            class_group: "acme/shelves".into(),
            class_names: [(1, "cola".to_owned()), (2, "lime".to_owned())].into(),
            images: vec![visionlog_domain::ImageRef { uri: "store://images/t-1/0.png".into(), width: 64, height: 48 }],
            truth: Some(crate::GroundTruth {
                version: 8,
                at_ms: 1_234,
                session_id: "s1".into(),
                objects: vec![obj(0, 1.0, Some(2)), obj(0, 30.0, None)],
            }),
            ..TaskView::default()
        };
        let labelled: Vec<ViewRow> = view.rows().into_iter().filter(|r| r.table == LABELLED).collect();
        assert_eq!(labelled.len(), 1);
        assert_eq!(
            (labelled[0].partition.as_str(), labelled[0].clustering.as_str()),
            ("acme|acme/shelves", "000000000001234|t-1")
        );
        let row: LabelledRow = decode(&labelled[0].value).unwrap();
        assert_eq!((row.truth_version, row.sealed_at_ms, row.classes.as_slice()), (8, 1_234, &[1, 2][..]));
        assert_eq!(row.boxes, [(0, obj(0, 1.0, None).bbox, 2)], "boxes without a class are not training data");
        assert_eq!(row.images, ["store://images/t-1/0.png"]);
        assert!(sealed_before(1_234) < labelled[0].clustering && sealed_before(1_235) > labelled[0].clustering);
        view.cancelled = true;
        assert!(view.rows().iter().all(|r| r.table != LABELLED), "a cancelled task is no training data");
    }
}
