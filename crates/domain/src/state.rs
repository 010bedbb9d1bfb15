//! The state of a task, folded from its events by [`evolve`].

use crate::event::*;
use crate::ids::{CustomerId, ObjectId, OperatorId, SessionId};
use crate::values::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Where a task stands in its recipe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Accepted, nothing run yet.
    Created,
    /// Waiting for a detection model to answer.
    DetectionPending,
    /// A model answered with objects.
    Detected,
    /// Waiting for a recognition model to classify some objects.
    RecognitionPending,
    /// No model was deployed.
    ModelMissing,
    /// Waiting for an operator.
    AwaitingOperator(SessionPurpose),
    /// An operator works on it.
    InSession {
        /// The operator.
        operator: OperatorId,
        /// The open session.
        session_id: SessionId,
        /// Why.
        purpose: SessionPurpose,
    },
    /// An operator sealed an annotation session; the result can be generated.
    Annotated,
    /// A result exists (and may be reported or checked).
    ResultGenerated,
    /// The task manager asked for it to be processed again.
    ReprocessPending(ReprocessMode),
    /// Cancelled: no command but queries applies.
    Cancelled,
}

impl Stage {
    /// Returns a short lower-case name of the stage.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::DetectionPending => "detection_pending",
            Self::Detected => "detected",
            Self::RecognitionPending => "recognition_pending",
            Self::ModelMissing => "model_missing",
            Self::AwaitingOperator(SessionPurpose::Annotation) => "awaiting_operator",
            Self::AwaitingOperator(SessionPurpose::QualityCheck) => "awaiting_quality_check",
            Self::InSession { purpose: SessionPurpose::Annotation, .. } => "in_annotation",
            Self::InSession { purpose: SessionPurpose::QualityCheck, .. } => "in_quality_check",
            Self::Annotated => "annotated",
            Self::ResultGenerated => "result_generated",
            Self::ReprocessPending(_) => "reprocess_pending",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One object alive in a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskObject {
    /// Index of the image.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Its class, if known.
    pub class_id: Option<u32>,
    /// Model confidence, for model objects.
    pub score: Option<f32>,
    /// Who produced it.
    pub source: ObjectSource,
}

/// A task that exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The customer.
    pub customer: CustomerId,
    /// The task type.
    pub task_type: TaskType,
    /// The recipe.
    pub recipe: Recipe,
    /// The class group.
    pub class_group: ClassGroup,
    /// The images.
    pub images: Vec<ImageRef>,
    /// The callback URL.
    pub callback_url: Option<String>,
    /// Where it stands.
    pub stage: Stage,
    /// The objects alive now, by id.
    pub objects: BTreeMap<ObjectId, TaskObject>,
    /// How many detection runs were asked for.
    pub detection_attempts: u32,
    /// The last model that answered.
    pub last_model: Option<ModelRef>,
    /// How many operator sessions were opened.
    pub sessions_opened: u32,
    /// Whether an operator has worked on the current objects.
    pub operator_touched: bool,
    /// The current result revision (0 before any result).
    pub result_revision: u32,
    /// The revision last delivered to the callback.
    pub reported_revision: u32,
    /// Failed delivery tries of the current revision.
    pub report_failures: u32,
    /// Whether delivery was given up for the current revision.
    pub report_given_up: bool,
    /// Whether a quality check was requested on the current revision.
    pub quality_check_requested: bool,
    /// Whether operators changed the objects (added, removed, relabelled) since the latest
    /// result: a quality check that did makes a new result revision, one that did not, none.
    pub changed_since_result: bool,
    /// How many recognition runs were asked for.
    pub recognition_attempts: u32,
    /// The boxes no recognizer or operator has classified since they were drawn: what the
    /// recognition step of a recipe with recognition still owes (see [`Task::recognition_targets`]).
    pub unrecognized: BTreeSet<ObjectId>,
    /// The classes of the boxes removed in the open operator session: a box the tool removes
    /// and adds again under its id was moved, and one that comes back with the class it had
    /// was not classified by the operator (the tool carried the class over).
    pub removed_in_session: BTreeMap<ObjectId, Option<u32>>,
    /// The operator whose annotation session made the objects now, if one did: a quality check
    /// of them is another operator's.
    pub annotator: Option<OperatorId>,
}

/// The state of a task stream: `None` until `TaskCreated`.
pub type TaskState = Option<Task>;

/// Folds one event into the state.
///
/// Events are facts: `evolve` never fails. An event that does not fit the state (which
/// [`crate::decide`] never produces) leaves the state unchanged.
pub fn evolve(state: TaskState, event: &TaskEvent) -> TaskState {
    match (state, event) {
        (None, TaskEvent::TaskCreated(e)) => Some(Task {
            customer: e.customer.clone(),
            task_type: e.task_type,
            recipe: e.recipe,
            class_group: e.class_group.clone(),
            images: e.images.clone(),
            callback_url: e.callback_url.clone(),
            stage: Stage::Created,
            objects: BTreeMap::new(),
            detection_attempts: 0,
            last_model: None,
            sessions_opened: 0,
            operator_touched: false,
            result_revision: 0,
            reported_revision: 0,
            report_failures: 0,
            report_given_up: false,
            quality_check_requested: false,
            changed_since_result: false,
            recognition_attempts: 0,
            unrecognized: BTreeSet::new(),
            removed_in_session: BTreeMap::new(),
            annotator: None,
        }),
        (None, _) => None,
        (Some(mut task), event) => {
            apply(&mut task, event);
            Some(task)
        }
    }
}

fn apply(task: &mut Task, event: &TaskEvent) {
    match event {
        TaskEvent::TaskCreated(_) => {}
        TaskEvent::DetectionRequested(e) => {
            task.detection_attempts = e.attempt;
            task.stage = Stage::DetectionPending;
        }
        TaskEvent::ObjectsDetected(e) => {
            task.objects = e
                .objects
                .iter()
                .map(|o| {
                    let object = TaskObject {
                        image: o.image,
                        bbox: o.bbox,
                        class_id: o.class_id,
                        score: Some(o.score),
                        source: ObjectSource::Model,
                    };
                    (o.object_id.clone(), object)
                })
                .collect();
            task.unrecognized = task.objects.keys().cloned().collect();
            task.last_model = Some(e.model.clone());
            task.operator_touched = false;
            task.annotator = None;
            task.stage = Stage::Detected;
        }
        TaskEvent::RecognitionRequested(e) => {
            task.recognition_attempts = e.attempt;
            task.stage = Stage::RecognitionPending;
        }
        TaskEvent::ObjectsRecognized(e) => {
            for r in &e.objects {
                if let Some(o) = task.objects.get_mut(&r.object_id) {
                    o.class_id = Some(r.class_id);
                }
                task.unrecognized.remove(&r.object_id);
            }
            task.last_model = Some(e.model.clone());
            task.stage = if task.operator_touched { Stage::Annotated } else { Stage::Detected };
        }
        TaskEvent::ModelNotFound(e) => {
            if e.step == RECOGNITION_STEP {
                // the operators classify them instead
                task.unrecognized.clear();
            }
            task.stage = Stage::ModelMissing;
        }
        TaskEvent::AssistanceRequested(_) => {
            task.stage = Stage::AwaitingOperator(SessionPurpose::Annotation);
        }
        TaskEvent::OperatorAssigned(e) => {
            task.sessions_opened += 1;
            task.removed_in_session.clear();
            task.stage =
                Stage::InSession { operator: e.operator.clone(), session_id: e.session_id.clone(), purpose: e.purpose };
        }
        TaskEvent::OperatorReleased(_) => {
            if let Stage::InSession { purpose, .. } = task.stage {
                task.stage = Stage::AwaitingOperator(purpose);
            }
        }
        TaskEvent::ObjectsAdded(e) => {
            for o in &e.objects {
                let object = TaskObject {
                    image: o.image,
                    bbox: o.bbox,
                    class_id: o.class_id,
                    score: None,
                    source: ObjectSource::Operator,
                };
                // a box drawn without a class, or moved with the class it had, waits for the
                // recognition step; one the operator gave a class has it
                let moved = task.removed_in_session.remove(&o.object_id).is_some_and(|before| before == o.class_id);
                if o.class_id.is_none() || moved {
                    task.unrecognized.insert(o.object_id.clone());
                } else {
                    task.unrecognized.remove(&o.object_id);
                }
                task.objects.insert(o.object_id.clone(), object);
            }
            task.operator_touched = true;
            task.changed_since_result = true;
        }
        TaskEvent::ObjectsRemoved(e) => {
            for id in &e.object_ids {
                if let Some(o) = task.objects.remove(id) {
                    task.removed_in_session.insert(id.clone(), o.class_id);
                }
                task.unrecognized.remove(id);
            }
            task.operator_touched = true;
            task.changed_since_result = true;
        }
        TaskEvent::ObjectsLabeled(e) => {
            for label in &e.labels {
                if let Some(o) = task.objects.get_mut(&label.object_id) {
                    o.class_id = Some(label.class_id);
                }
                task.unrecognized.remove(&label.object_id);
            }
            task.operator_touched = true;
            task.changed_since_result = true;
        }
        TaskEvent::OperatorFinished(e) => {
            task.operator_touched = true;
            if e.purpose == SessionPurpose::Annotation {
                task.annotator = Some(e.operator.clone());
            }
            task.stage = match e.purpose {
                SessionPurpose::Annotation => Stage::Annotated,
                SessionPurpose::QualityCheck => Stage::ResultGenerated,
            };
        }
        TaskEvent::TaskResultGenerated(e) => {
            task.result_revision = e.revision;
            task.report_failures = 0;
            task.report_given_up = false;
            task.quality_check_requested = false;
            task.changed_since_result = false;
            task.stage = Stage::ResultGenerated;
        }
        TaskEvent::QualityCheckRequested(_) => {
            task.quality_check_requested = true;
            task.stage = Stage::AwaitingOperator(SessionPurpose::QualityCheck);
        }
        TaskEvent::TaskReported(e) => task.reported_revision = e.revision,
        TaskEvent::ReportFailed(e) => {
            task.report_failures += 1;
            task.report_given_up = e.last_attempt;
        }
        TaskEvent::RedeliveryRequested(_) => {
            task.report_failures = 0;
            task.report_given_up = false;
        }
        TaskEvent::TaskCancelled(_) => task.stage = Stage::Cancelled,
        TaskEvent::ReprocessRequested(e) => task.stage = Stage::ReprocessPending(e.mode),
        TaskEvent::BatchReverted(e) => {
            task.objects = e
                .objects
                .iter()
                .map(|o| {
                    let object = TaskObject {
                        image: o.image,
                        bbox: o.bbox,
                        class_id: o.class_id,
                        score: o.score,
                        source: o.source,
                    };
                    (o.object_id.clone(), object)
                })
                .collect();
            task.unrecognized =
                task.objects.iter().filter(|(_, o)| o.class_id.is_none()).map(|(id, _)| id.clone()).collect();
            task.last_model = e.model.clone();
            task.quality_check_requested = false;
            // the restored objects wait for their result, as after a model run or a sealed session
            (task.operator_touched, task.stage) = match e.source {
                ResultSource::Automatic => (false, Stage::Detected),
                ResultSource::Operator => (true, Stage::Annotated),
            };
        }
    }
}

/// The step name of recognition in `ModelNotFound` (detection's is `"detection"`).
pub const RECOGNITION_STEP: &str = Subtask::Recognition.name();
/// The step name of detection in `ModelNotFound`.
pub const DETECTION_STEP: &str = Subtask::Detection.name();

impl Task {
    /// The boxes the recognition step still owes, when the recipe has one: every box no
    /// recognizer or operator has classified since it was drawn. Empty for detection only.
    pub fn recognition_targets(&self) -> Vec<RecognitionTarget> {
        if self.recipe != Recipe::DetectionAndRecognition {
            return Vec::new();
        }
        self.unrecognized
            .iter()
            .filter_map(|id| {
                let o = self.objects.get(id)?;
                Some(RecognitionTarget { object_id: id.clone(), image: o.image, bbox: o.bbox })
            })
            .collect()
    }

    /// Returns the current objects as result objects, ordered by id.
    pub fn result_objects(&self) -> Vec<ResultObject> {
        self.objects
            .iter()
            .map(|(id, o)| ResultObject {
                object_id: id.clone(),
                image: o.image,
                bbox: o.bbox,
                class_id: o.class_id,
                score: o.score,
                source: o.source,
            })
            .collect()
    }
}
