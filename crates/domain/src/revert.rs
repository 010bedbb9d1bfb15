//! Undoing a faulty batch (seed 003): what a task would hold had the batch never happened.
//!
//! A batch is every event caused, directly or down the chain of commands, by one command: they
//! share its correlation id. The history is never edited; instead the task is folded again
//! without the batch's events and the difference is applied by one compensating event,
//! [`BatchReverted`](crate::BatchReverted), after which a new result is made of the objects.

use crate::command::RevertBatch;
use crate::event::TaskEvent;
use crate::state::{TaskState, evolve};
use crate::values::ResultSource;

/// One event of a task's history, with what `revert` needs of its envelope.
#[derive(Clone, Copy, Debug)]
pub struct Stamped<'a> {
    /// Its stream version.
    pub version: u64,
    /// The correlation id of the command chain that caused it.
    pub correlation_id: &'a str,
    /// The event.
    pub event: &'a TaskEvent,
}

/// Why a task of a batch is not reverted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotRevertible {
    /// None of the task's events belong to the batch.
    #[error("no event of the task belongs to the batch")]
    NotInBatch,
    /// The batch was undone on this task already.
    #[error("the batch was reverted on this task already")]
    AlreadyReverted,
    /// The batch created the task: there is nothing before it to go back to (cancel it instead).
    #[error("the batch created the task; there is no earlier state to restore (cancel the task instead)")]
    CreatedByBatch,
    /// Without the batch the task never had a result to go back to (resend it to an operator).
    #[error("without the batch the task has no result to restore (resend it to an operator instead)")]
    NoEarlierResult,
}

/// Folds `history` (a task's events in version order) without the events of `correlation_id`
/// and returns the command that restores what is left, or why there is nothing to restore.
pub fn revert<'a>(
    history: impl IntoIterator<Item = Stamped<'a>>,
    correlation_id: &str,
    reason: &str,
) -> Result<RevertBatch, NotRevertible> {
    let mut without: TaskState = None;
    let mut reverted_versions = Vec::new();
    for e in history {
        if let TaskEvent::BatchReverted(r) = e.event
            && r.correlation_id == correlation_id
        {
            return Err(NotRevertible::AlreadyReverted);
        }
        if e.correlation_id == correlation_id {
            reverted_versions.push(e.version);
        } else {
            without = evolve(without, e.event);
        }
    }
    if reverted_versions.is_empty() {
        return Err(NotRevertible::NotInBatch);
    }
    let task = without.ok_or(NotRevertible::CreatedByBatch)?;
    if task.result_revision == 0 {
        return Err(NotRevertible::NoEarlierResult);
    }
    Ok(RevertBatch {
        correlation_id: correlation_id.to_owned(),
        reason: reason.to_owned(),
        reverted_versions,
        objects: task.result_objects(),
        model: task.last_model.clone(),
        source: if task.operator_touched { ResultSource::Operator } else { ResultSource::Automatic },
    })
}
