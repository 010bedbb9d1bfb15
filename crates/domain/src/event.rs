//! Events of the Task stream: the source of truth.

use crate::ids::{CustomerId, ObjectId, OperatorId, SessionId};
use crate::values::*;
use serde::{Deserialize, Serialize};

/// A task was accepted, with everything needed to process it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    /// The customer (tenant).
    pub customer: CustomerId,
    /// What kind of visual task.
    pub task_type: TaskType,
    /// Which steps to take.
    pub recipe: Recipe,
    /// The products to look for.
    pub class_group: ClassGroup,
    /// The images.
    pub images: Vec<ImageRef>,
    /// Where to post the result, if anywhere.
    pub callback_url: Option<String>,
    /// Personal data, sealed under its subject's key (see [`Sealed`]).
    #[serde(default)]
    pub personal: Option<Sealed>,
}

/// The detection step was asked to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionRequested {
    /// 1 for the first run, more for re-processing.
    pub attempt: u32,
}

/// A model found objects (a fat event: up to thousands of boxes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectsDetected {
    /// Which detection run this answers.
    pub attempt: u32,
    /// The model that ran.
    pub model: ModelRef,
    /// What it found.
    pub objects: Vec<DetectedObject>,
}

/// The recognition step was asked to classify these objects: the boxes that no recognizer or
/// operator has classified since they were drawn (all of a detector's boxes after a model run;
/// only the boxes an operator added, moved or redrew after a correction).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecognitionRequested {
    /// 1 for the first recognition run of the task, more for later ones.
    pub attempt: u32,
    /// The objects to classify.
    pub objects: Vec<RecognitionTarget>,
}

/// A recognizer classified the objects of a recognition request (a prediction event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectsRecognized {
    /// Which recognition run this answers.
    pub attempt: u32,
    /// The model that ran.
    pub model: ModelRef,
    /// The class and score per object.
    pub objects: Vec<Recognition>,
}

/// No model is deployed for a step of the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelNotFound {
    /// Which step.
    pub step: String,
    /// The class group looked for.
    pub class_group_key: String,
}

/// The task waits for a human operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceRequested {
    /// Why.
    pub reason: AssistanceReason,
}

/// An operator took the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAssigned {
    /// The operator.
    pub operator: OperatorId,
    /// The session opened.
    pub session_id: SessionId,
    /// Annotation or quality check.
    pub purpose: SessionPurpose,
}

/// The task was taken back from an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorReleased {
    /// The operator.
    pub operator: OperatorId,
    /// The session closed.
    pub session_id: SessionId,
    /// Why.
    pub reason: String,
}

/// An operator added objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectsAdded {
    /// The operator.
    pub operator: OperatorId,
    /// The session.
    pub session_id: SessionId,
    /// The boxes.
    pub objects: Vec<AnnotatedObject>,
}

/// An operator removed objects (false positives, in a quality check).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsRemoved {
    /// The operator.
    pub operator: OperatorId,
    /// The session.
    pub session_id: SessionId,
    /// The boxes removed.
    pub object_ids: Vec<ObjectId>,
}

/// An operator labelled objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsLabeled {
    /// The operator.
    pub operator: OperatorId,
    /// The session.
    pub session_id: SessionId,
    /// The labels.
    pub labels: Vec<ObjectLabel>,
}

/// An operator sealed a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorFinished {
    /// The operator.
    pub operator: OperatorId,
    /// The session.
    pub session_id: SessionId,
    /// Annotation or quality check.
    pub purpose: SessionPurpose,
}

/// The task result was generated from the steps' results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResultGenerated {
    /// 1 for the first result, more after re-processing.
    pub revision: u32,
    /// Who produced it.
    pub source: ResultSource,
    /// The last model that contributed, if any.
    pub model: Option<ModelRef>,
    /// The objects.
    pub objects: Vec<ResultObject>,
}

/// An automatic result was sampled for a quality check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityCheckRequested {
    /// The result revision to check.
    pub revision: u32,
}

/// The result was delivered to the callback URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReported {
    /// Which result revision.
    pub revision: u32,
    /// Which try.
    pub attempt: u32,
    /// HTTP status of the receiver.
    pub status_code: Option<u32>,
}

/// A delivery try failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFailed {
    /// Which result revision.
    pub revision: u32,
    /// Which try.
    pub attempt: u32,
    /// HTTP status, if any.
    pub status_code: Option<u32>,
    /// Why.
    pub error: String,
    /// Whether no more tries will be made.
    pub last_attempt: bool,
}

/// Ops asked for a result whose delivery was given up to be delivered again: the tries start
/// over (from try 1, with a new retry window from this event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliveryRequested {
    /// Which result revision (the latest).
    pub revision: u32,
    /// Why.
    pub reason: String,
}

/// The task was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCancelled {
    /// Why.
    pub reason: String,
}

/// The task manager asked for the task to be processed again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprocessRequested {
    /// What to do again.
    pub mode: ReprocessMode,
}

/// The events of a faulty batch were undone: the task holds the objects it had without them
/// (a compensating event; the batch's events stay in the history).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchReverted {
    /// The correlation id of the batch.
    pub correlation_id: String,
    /// Why.
    pub reason: String,
    /// The versions of the task's events the batch caused.
    #[serde(with = "crate::values::versions_as_long")]
    pub reverted_versions: Vec<u64>,
    /// The objects restored.
    pub objects: Vec<ResultObject>,
    /// The last model that contributed to them, if any.
    pub model: Option<ModelRef>,
    /// Who produced them.
    pub source: ResultSource,
}

/// Every event of the Task stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskEvent {
    /// See [`TaskCreated`].
    TaskCreated(TaskCreated),
    /// See [`DetectionRequested`].
    DetectionRequested(DetectionRequested),
    /// See [`ObjectsDetected`].
    ObjectsDetected(ObjectsDetected),
    /// See [`RecognitionRequested`].
    RecognitionRequested(RecognitionRequested),
    /// See [`ObjectsRecognized`].
    ObjectsRecognized(ObjectsRecognized),
    /// See [`ModelNotFound`].
    ModelNotFound(ModelNotFound),
    /// See [`AssistanceRequested`].
    AssistanceRequested(AssistanceRequested),
    /// See [`OperatorAssigned`].
    OperatorAssigned(OperatorAssigned),
    /// See [`OperatorReleased`].
    OperatorReleased(OperatorReleased),
    /// See [`ObjectsAdded`].
    ObjectsAdded(ObjectsAdded),
    /// See [`ObjectsRemoved`].
    ObjectsRemoved(ObjectsRemoved),
    /// See [`ObjectsLabeled`].
    ObjectsLabeled(ObjectsLabeled),
    /// See [`OperatorFinished`].
    OperatorFinished(OperatorFinished),
    /// See [`TaskResultGenerated`].
    TaskResultGenerated(TaskResultGenerated),
    /// See [`QualityCheckRequested`].
    QualityCheckRequested(QualityCheckRequested),
    /// See [`TaskReported`].
    TaskReported(TaskReported),
    /// See [`ReportFailed`].
    ReportFailed(ReportFailed),
    /// See [`RedeliveryRequested`].
    RedeliveryRequested(RedeliveryRequested),
    /// See [`TaskCancelled`].
    TaskCancelled(TaskCancelled),
    /// See [`ReprocessRequested`].
    ReprocessRequested(ReprocessRequested),
    /// See [`BatchReverted`].
    BatchReverted(BatchReverted),
}

impl TaskEvent {
    /// Returns the event's type name, as used in schemas and headers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::TaskCreated(_) => "TaskCreated",
            Self::DetectionRequested(_) => "DetectionRequested",
            Self::ObjectsDetected(_) => "ObjectsDetected",
            Self::RecognitionRequested(_) => "RecognitionRequested",
            Self::ObjectsRecognized(_) => "ObjectsRecognized",
            Self::ModelNotFound(_) => "ModelNotFound",
            Self::AssistanceRequested(_) => "AssistanceRequested",
            Self::OperatorAssigned(_) => "OperatorAssigned",
            Self::OperatorReleased(_) => "OperatorReleased",
            Self::ObjectsAdded(_) => "ObjectsAdded",
            Self::ObjectsRemoved(_) => "ObjectsRemoved",
            Self::ObjectsLabeled(_) => "ObjectsLabeled",
            Self::OperatorFinished(_) => "OperatorFinished",
            Self::TaskResultGenerated(_) => "TaskResultGenerated",
            Self::QualityCheckRequested(_) => "QualityCheckRequested",
            Self::TaskReported(_) => "TaskReported",
            Self::ReportFailed(_) => "ReportFailed",
            Self::RedeliveryRequested(_) => "RedeliveryRequested",
            Self::TaskCancelled(_) => "TaskCancelled",
            Self::ReprocessRequested(_) => "ReprocessRequested",
            Self::BatchReverted(_) => "BatchReverted",
        }
    }
}
