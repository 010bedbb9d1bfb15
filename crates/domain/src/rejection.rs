//! Typed reasons why the Task aggregate refuses a command.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a command was refused. None of these is retryable as is: the caller must change the
/// command (or wait for the task to reach another stage).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Rejection {
    /// A task with this id exists already.
    #[error("task already exists")]
    TaskAlreadyExists,
    /// No task with this id exists.
    #[error("task not found")]
    TaskNotFound,
    /// The task was cancelled.
    #[error("task is cancelled")]
    TaskCancelled,
    /// The command does not fit the task's stage.
    #[error("{command} is not allowed while the task is {stage}")]
    InvalidStage {
        /// The command type.
        command: String,
        /// The task's stage.
        stage: String,
    },
    /// A box is degenerate, not finite or outside its image.
    #[error("invalid box for object {object}: {reason}")]
    InvalidBox {
        /// Index or id of the object.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// An object refers to an image the task does not have.
    #[error("object {object} refers to image {image}, the task has {images}")]
    ImageOutOfRange {
        /// Index or id of the object.
        object: String,
        /// The image index given.
        image: u32,
        /// How many images the task has.
        images: u32,
    },
    /// An image has a zero size.
    #[error("image {image} has an invalid size")]
    InvalidImageSize {
        /// The image index.
        image: u32,
    },
    /// A class is not part of the task's class group.
    #[error("class {class_id} is not in the class group")]
    UnknownClass {
        /// The class given.
        class_id: u32,
    },
    /// A class id appears twice in a class group.
    #[error("class {class_id} appears twice in the class group")]
    DuplicateClass {
        /// The class id.
        class_id: u32,
    },
    /// A score is outside `[0, 1]` or not finite.
    #[error("score of object {object} is outside [0, 1]")]
    InvalidScore {
        /// Index of the object.
        object: String,
    },
    /// Too many items of some kind.
    #[error("too many {what}: {count} > {max}")]
    TooMany {
        /// What was counted.
        what: String,
        /// How many were sent.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A string field is too long.
    #[error("{field} is too long: {len} > {max} bytes")]
    StringTooLong {
        /// The field.
        field: String,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A required field is empty or malformed.
    #[error("{field} is empty or malformed")]
    InvalidField {
        /// The field.
        field: String,
    },
    /// A URI has a scheme that is not allowed there.
    #[error("{field} has a scheme that is not allowed: {scheme}")]
    DisallowedUriScheme {
        /// The field.
        field: String,
        /// The scheme found.
        scheme: String,
    },
    /// A URI does not parse.
    #[error("{field} is not a valid uri: {reason}")]
    InvalidUri {
        /// The field.
        field: String,
        /// The parser's reason.
        reason: String,
    },
    /// The command was sent by someone who is not the operator assigned to the task.
    #[error("the task is not assigned to {actor}")]
    NotAssigned {
        /// Who sent it.
        actor: String,
    },
    /// The command names another session than the open one.
    #[error("session {given} is not the open session")]
    SessionMismatch {
        /// The session named.
        given: String,
    },
    /// The task is already assigned to an operator.
    #[error("the task is already assigned to {operator}")]
    AlreadyAssigned {
        /// The operator holding it.
        operator: String,
    },
    /// An operator may not quality-check the annotation it made itself.
    #[error("{operator} annotated this result and may not check it")]
    OwnWork {
        /// The operator.
        operator: String,
    },
    /// An object id is unknown.
    #[error("object {object_id} does not exist")]
    UnknownObject {
        /// The id.
        object_id: String,
    },
    /// An object id exists already (or twice in the command).
    #[error("object {object_id} exists already")]
    DuplicateObject {
        /// The id.
        object_id: String,
    },
    /// The command changes nothing.
    #[error("the command is empty")]
    EmptyCommand,
    /// There is no given-up delivery to start again: no result, no callback URL, the result
    /// was delivered, or its tries are still going on.
    #[error("nothing to redeliver: {why}")]
    NothingToRedeliver {
        /// Which of those.
        why: String,
    },
    /// The command came from another tenant than the task's customer (or, for a customer, under
    /// another name than its own). Which tenant owns the task is not told.
    #[error("the task is not a task of tenant {tenant}")]
    TenantMismatch {
        /// The tenant the command came from.
        tenant: String,
    },
    /// The sender may not send this kind of command at all (a customer sends only creation,
    /// cancellation and reprocessing of its own tasks).
    #[error("{actor} may not send {command}")]
    NotPermitted {
        /// Who sent it.
        actor: String,
        /// The command type.
        command: String,
    },
}

impl Rejection {
    /// Returns a stable machine-readable code for the rejection.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TaskAlreadyExists => "task_already_exists",
            Self::TaskNotFound => "task_not_found",
            Self::TaskCancelled => "task_cancelled",
            Self::InvalidStage { .. } => "invalid_stage",
            Self::InvalidBox { .. } => "invalid_box",
            Self::ImageOutOfRange { .. } => "image_out_of_range",
            Self::InvalidImageSize { .. } => "invalid_image_size",
            Self::UnknownClass { .. } => "unknown_class",
            Self::DuplicateClass { .. } => "duplicate_class",
            Self::InvalidScore { .. } => "invalid_score",
            Self::TooMany { .. } => "too_many",
            Self::StringTooLong { .. } => "string_too_long",
            Self::InvalidField { .. } => "invalid_field",
            Self::DisallowedUriScheme { .. } => "disallowed_uri_scheme",
            Self::InvalidUri { .. } => "invalid_uri",
            Self::NotAssigned { .. } => "not_assigned",
            Self::SessionMismatch { .. } => "session_mismatch",
            Self::AlreadyAssigned { .. } => "already_assigned",
            Self::UnknownObject { .. } => "unknown_object",
            Self::DuplicateObject { .. } => "duplicate_object",
            Self::EmptyCommand => "empty_command",
            Self::NothingToRedeliver { .. } => "nothing_to_redeliver",
            Self::OwnWork { .. } => "own_work",
            Self::TenantMismatch { .. } => "tenant_mismatch",
            Self::NotPermitted { .. } => "not_permitted",
        }
    }
}
