//! Commands sent to the Task aggregate.

use crate::ids::{CustomerId, ObjectId, OperatorId, SessionId};
use crate::values::*;
use serde::{Deserialize, Serialize};

/// Creates a task (seed 000 "Create Task").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateTask {
    /// The customer (tenant) sending it.
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

/// Asks the detection step to run (sent by the executor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDetection {}

/// Records the boxes a detection model found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordDetections {
    /// The model that ran.
    pub model: ModelRef,
    /// What it found.
    pub detections: Vec<Detection>,
}

/// Records the classes a recognition model gave the objects of the pending recognition
/// request (sent by the inference workers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordRecognitions {
    /// The model that ran.
    pub model: ModelRef,
    /// One per requested object.
    pub recognitions: Vec<Recognition>,
}

/// Records that no model is deployed for the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordModelNotFound {
    /// Which step had no model (e.g. `"detection"`).
    pub step: String,
}

/// Hands the task to a human operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAssistance {
    /// Why.
    pub reason: AssistanceReason,
}

/// Assigns an operator to a task that awaits one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignOperator {
    /// The operator.
    pub operator: OperatorId,
    /// The session this assignment opens.
    pub session_id: SessionId,
}

/// Takes the task back from an operator (gave up, disappeared or lease expired).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOperator {
    /// The session to close.
    pub session_id: SessionId,
    /// Why.
    pub reason: String,
}

/// Adds the boxes an operator drew in a session (summarized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddObjects {
    /// The session.
    pub session_id: SessionId,
    /// The boxes.
    pub objects: Vec<AnnotatedObject>,
}

/// Removes boxes in a session (summarized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveObjects {
    /// The session.
    pub session_id: SessionId,
    /// The boxes to remove.
    pub object_ids: Vec<ObjectId>,
}

/// Relabels boxes in a session (summarized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelObjects {
    /// The session.
    pub session_id: SessionId,
    /// The new labels.
    pub labels: Vec<ObjectLabel>,
}

/// Seals an operator session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishOperatorSession {
    /// The session.
    pub session_id: SessionId,
}

/// Combines the results of the steps into the task result. In a recipe with recognition, while
/// some boxes have no class from a recognizer or an operator, the step still owed runs first:
/// the aggregate answers with `RecognitionRequested` for those boxes only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateResult {}

/// Samples an automatic result for a quality check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestQualityCheck {}

/// Records the outcome of posting the result to the callback URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordReport {
    /// Which try this was (1-based).
    pub attempt: u32,
    /// HTTP status, if a response came.
    pub status_code: Option<u32>,
    /// Whether the receiver accepted it.
    pub delivered: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Whether no more tries will be made.
    pub last_attempt: bool,
}

/// Asks for the latest result to be delivered again after its delivery was given up (the
/// receiver was down for longer than the retry window, or answered with a final error that
/// is fixed now). Sent by ops through the task manager; the webhook sink starts a new round
/// of tries, with a new retry window, when it reads the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliverResult {
    /// Why (kept on the event).
    pub reason: String,
}

/// Cancels a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelTask {
    /// Why.
    pub reason: String,
}

/// Re-processes a task (seed 000 Task Manager: latest models, or re-send to an operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reprocess {
    /// What to do again.
    pub mode: ReprocessMode,
}

/// Undoes what one faulty batch did to a task (seed 003) with a compensating event: the task
/// gets back the objects it had without the batch's events, and a new result is made of them.
///
/// The sender (the task manager's `undo-batch`) computes `objects`, `model` and `source` by
/// folding the task's history without the events of `correlation_id` (see [`crate::revert`]);
/// it sends the command with the version it folded as the expected version, so a task that
/// moved on in the meantime refuses it and is folded again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevertBatch {
    /// The correlation id of the batch.
    pub correlation_id: String,
    /// Why the batch is undone.
    pub reason: String,
    /// The versions of the task's events the batch caused.
    #[serde(with = "crate::values::versions_as_long")]
    pub reverted_versions: Vec<u64>,
    /// The objects the task had without the batch.
    pub objects: Vec<ResultObject>,
    /// The last model that contributed to them, if any.
    pub model: Option<ModelRef>,
    /// Who produced them: models only, or an operator.
    pub source: ResultSource,
}

/// Every command the Task aggregate accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskCommand {
    /// See [`CreateTask`].
    CreateTask(CreateTask),
    /// See [`RequestDetection`].
    RequestDetection(RequestDetection),
    /// See [`RecordDetections`].
    RecordDetections(RecordDetections),
    /// See [`RecordRecognitions`].
    RecordRecognitions(RecordRecognitions),
    /// See [`RecordModelNotFound`].
    RecordModelNotFound(RecordModelNotFound),
    /// See [`RequestAssistance`].
    RequestAssistance(RequestAssistance),
    /// See [`AssignOperator`].
    AssignOperator(AssignOperator),
    /// See [`ReleaseOperator`].
    ReleaseOperator(ReleaseOperator),
    /// See [`AddObjects`].
    AddObjects(AddObjects),
    /// See [`RemoveObjects`].
    RemoveObjects(RemoveObjects),
    /// See [`LabelObjects`].
    LabelObjects(LabelObjects),
    /// See [`FinishOperatorSession`].
    FinishOperatorSession(FinishOperatorSession),
    /// See [`GenerateResult`].
    GenerateResult(GenerateResult),
    /// See [`RequestQualityCheck`].
    RequestQualityCheck(RequestQualityCheck),
    /// See [`RecordReport`].
    RecordReport(RecordReport),
    /// See [`RedeliverResult`].
    RedeliverResult(RedeliverResult),
    /// See [`CancelTask`].
    CancelTask(CancelTask),
    /// See [`Reprocess`].
    Reprocess(Reprocess),
    /// See [`RevertBatch`].
    RevertBatch(RevertBatch),
}

impl TaskCommand {
    /// Returns the command's type name, as used in schemas and headers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::CreateTask(_) => "CreateTask",
            Self::RequestDetection(_) => "RequestDetection",
            Self::RecordDetections(_) => "RecordDetections",
            Self::RecordRecognitions(_) => "RecordRecognitions",
            Self::RecordModelNotFound(_) => "RecordModelNotFound",
            Self::RequestAssistance(_) => "RequestAssistance",
            Self::AssignOperator(_) => "AssignOperator",
            Self::ReleaseOperator(_) => "ReleaseOperator",
            Self::AddObjects(_) => "AddObjects",
            Self::RemoveObjects(_) => "RemoveObjects",
            Self::LabelObjects(_) => "LabelObjects",
            Self::FinishOperatorSession(_) => "FinishOperatorSession",
            Self::GenerateResult(_) => "GenerateResult",
            Self::RequestQualityCheck(_) => "RequestQualityCheck",
            Self::RecordReport(_) => "RecordReport",
            Self::RedeliverResult(_) => "RedeliverResult",
            Self::CancelTask(_) => "CancelTask",
            Self::Reprocess(_) => "Reprocess",
            Self::RevertBatch(_) => "RevertBatch",
        }
    }
}
