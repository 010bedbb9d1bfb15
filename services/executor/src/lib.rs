//! The task executor (seed 000 "Task Executor"): the recipe as a process manager.
//!
//! It reads `events` and, after each event, sends the command the recipe says comes next. It
//! never writes events. Command ids derive from the causing event id, so a redelivered event
//! yields the same command id, which the aggregator answers as a duplicate; and each command
//! expects the version of the event that caused it, so a task that moved on in the meantime
//! (cancelled, say) refuses it.
//!
//! Detection and recognition requests are answered by the inference workers
//! (`visionlog-inference`): with the deployed model's boxes or classes, or `ModelNotFound` for
//! a new project, after which the executor hands the task to an operator.
//!
//! Which step comes next is decided by the aggregate from the task's events (ADR 0021): after
//! a model run or an operator's annotation the executor asks for the result, and where the
//! recipe's recognition step still owes some boxes a class, the aggregate records
//! `RecognitionRequested` for exactly those boxes instead. So an operator's correction of the
//! boxes sends only the boxes it changed back to the recognizer, as often as it happens.

use visionlog_domain::{
    AssistanceReason, GenerateResult, ReprocessMode, RequestAssistance, RequestDetection, RequestQualityCheck,
    ResultSource, SessionPurpose, TaskCommand, TaskEvent,
};
use visionlog_journal::{CommandBus, ConsumeError, EventHandler, HandledEvent, caused_by, deterministic_id};

/// The consumer group of executors.
pub const GROUP: &str = "executor";

/// The quality-check policy: a customer's automatic results sampled for a check, per thousand.
pub type QcPolicy = std::sync::Arc<dyn Fn(&str) -> u32 + Send + Sync>;

/// Reacts to events with the recipe's next command.
pub struct Executor {
    bus: CommandBus,
    qc: QcPolicy,
}

/// Returns the command the recipe sends after an event, if any.
pub fn next_command(task_id: &str, version: u64, event: &TaskEvent, qc_per_mille: u32) -> Option<TaskCommand> {
    Some(match event {
        TaskEvent::TaskCreated(_) => TaskCommand::RequestDetection(RequestDetection {}),
        TaskEvent::ReprocessRequested(e) => match e.mode {
            ReprocessMode::LatestModels => TaskCommand::RequestDetection(RequestDetection {}),
            ReprocessMode::ResendToOperator => {
                TaskCommand::RequestAssistance(RequestAssistance { reason: AssistanceReason::Resend })
            }
        },
        TaskEvent::ModelNotFound(_) => {
            TaskCommand::RequestAssistance(RequestAssistance { reason: AssistanceReason::ModelNotFound })
        }
        // restored objects (an undone batch) make a new result, like a model run's objects; in
        // a recipe with recognition the aggregate answers GenerateResult with the recognition
        // request for the boxes that still need a class, and the recognizer's answer comes back
        // here for the result
        TaskEvent::ObjectsDetected(_) | TaskEvent::ObjectsRecognized(_) | TaskEvent::BatchReverted(_) => {
            TaskCommand::GenerateResult(GenerateResult {})
        }
        TaskEvent::OperatorFinished(e) if e.purpose == SessionPurpose::Annotation => {
            TaskCommand::GenerateResult(GenerateResult {})
        }
        // a sample of the models' results, and of the operators' first results (their
        // accuracy, checked by another operator); a check's own correction is not checked again
        TaskEvent::TaskResultGenerated(e)
            if (e.source == ResultSource::Automatic || e.revision == 1) && sampled(task_id, version, qc_per_mille) =>
        {
            TaskCommand::RequestQualityCheck(RequestQualityCheck {})
        }
        _ => return None,
    })
}

/// Deterministic sampling: the same task and version is always sampled the same way.
fn sampled(task_id: &str, version: u64, per_mille: u32) -> bool {
    let h = visionlog_journal::deterministic_id(&[task_id, &version.to_string(), "qc"]);
    let n = u32::from_str_radix(&h[..8], 16).unwrap_or(0);
    n % 1000 < per_mille
}

impl Executor {
    /// Creates an executor that samples each customer's automatic results at the rate `qc`
    /// gives for it.
    pub fn new(bus: CommandBus, qc: QcPolicy) -> Self {
        Self { bus, qc }
    }
}

impl EventHandler for Executor {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        let env = e.envelope;
        let qc_per_mille = (self.qc)(&env.tenant);
        let Some(command) = next_command(&env.task_id, env.version, e.event, qc_per_mille) else { return Ok(()) };
        let command_id = deterministic_id(&[&env.event_id, GROUP, command.type_name()]);
        let envelope = caused_by(env, command_id, &command, env.version, "service:executor".into());
        self.bus.send(&envelope, &command).map_err(|err| ConsumeError::Transient(err.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visionlog_domain::{
        BatchReverted, ClassGroup, DetectionRequested, ModelNotFound, OperatorFinished, Recipe, TaskCreated,
        TaskResultGenerated, TaskType,
    };

    #[test]
    fn the_new_project_recipe() {
        let created = TaskEvent::TaskCreated(TaskCreated {
            customer: "c".into(),
            task_type: TaskType::ProductDetection,
            recipe: Recipe::Detection,
            class_group: ClassGroup { key: "k".into(), classes: vec![] },
            images: vec![],
            callback_url: None,
            personal: None,
        });
        let next = |e: &TaskEvent| next_command("t", 1, e, 0).map(|c| c.type_name());
        assert_eq!(next(&created), Some("RequestDetection"));
        // the inference workers answer detection requests
        assert_eq!(next(&TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 })), None);
        let nf = TaskEvent::ModelNotFound(ModelNotFound { step: "detection".into(), class_group_key: "k".into() });
        assert_eq!(next(&nf), Some("RequestAssistance"));
        let fin = |purpose| {
            TaskEvent::OperatorFinished(OperatorFinished { operator: "o".into(), session_id: "s".into(), purpose })
        };
        assert_eq!(next(&fin(SessionPurpose::Annotation)), Some("GenerateResult"));
        assert_eq!(next(&fin(SessionPurpose::QualityCheck)), None);
        // an undone batch: the restored objects make a new result
        let reverted = TaskEvent::BatchReverted(BatchReverted {
            correlation_id: "batch".into(),
            reason: "bad model".into(),
            reverted_versions: vec![7, 8],
            objects: vec![],
            model: None,
            source: ResultSource::Operator,
        });
        assert_eq!(next(&reverted), Some("GenerateResult"));
    }

    #[test]
    fn quality_checks_sample_at_the_configured_rate() {
        let result = TaskEvent::TaskResultGenerated(TaskResultGenerated {
            revision: 1,
            source: ResultSource::Automatic,
            model: None,
            objects: vec![],
        });
        let sampled = (0..2000).filter(|i| next_command(&format!("t{i}"), 5, &result, 100).is_some()).count();
        assert!((150..250).contains(&sampled), "{sampled} of 2000 at 10%");
        assert!(next_command("t", 5, &result, 1000).is_some());
        assert!(next_command("t", 5, &result, 0).is_none());
    }
}
