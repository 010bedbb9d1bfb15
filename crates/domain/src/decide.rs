//! `decide`: the only place where commands become events.

use crate::command::*;
use crate::event::*;
use crate::ids::{ObjectId, OperatorId, SessionId};
use crate::limits::{ALLOWED_CALLBACK_SCHEMES, Limits};
use crate::rejection::Rejection;
use crate::state::{DETECTION_STEP, RECOGNITION_STEP, Stage, Task, TaskState};
use crate::validate;
use crate::values::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Who sends a command; carried by the envelope and checked by the aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A customer (through the API or a topic).
    Customer(String),
    /// A human operator.
    Operator(String),
    /// One of visionlog's services.
    Service(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Customer(c) => write!(f, "customer:{c}"),
            Self::Operator(o) => write!(f, "operator:{o}"),
            Self::Service(s) => write!(f, "service:{s}"),
        }
    }
}

impl std::str::FromStr for Actor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("customer", c)) => Ok(Self::Customer(c.to_owned())),
            Some(("operator", o)) => Ok(Self::Operator(o.to_owned())),
            Some(("service", v)) => Ok(Self::Service(v.to_owned())),
            _ => Err(format!("actor must be customer:ID, operator:ID or service:NAME, not {s:?}")),
        }
    }
}

/// What `decide` needs besides the state and the command.
#[derive(Clone, Debug)]
pub struct DecideContext<'a> {
    /// Who sent the command.
    pub actor: &'a Actor,
    /// The tenant it came from: the topic or token it arrived through, never a field the
    /// sender chose. A task is its customer's alone.
    pub tenant: &'a str,
    /// The size limits in force.
    pub limits: &'a Limits,
}

/// Decides what a command means for a task: the events to append, or why not.
///
/// Pure: no I/O, no clock, no randomness. Object ids of model detections are derived from the
/// detection attempt and their position, so deciding twice gives the same events.
pub fn decide(state: &TaskState, command: &TaskCommand, ctx: &DecideContext<'_>) -> Result<Vec<TaskEvent>, Rejection> {
    authorize(state, command, ctx)?;
    let task = match (state, command) {
        (None, TaskCommand::CreateTask(c)) => return create(c, ctx.limits),
        (Some(_), TaskCommand::CreateTask(_)) => return Err(Rejection::TaskAlreadyExists),
        (None, _) => return Err(Rejection::TaskNotFound),
        (Some(task), _) => task,
    };
    if task.stage == Stage::Cancelled {
        return Err(Rejection::TaskCancelled);
    }
    let limits = ctx.limits;
    let wrong_stage =
        || Rejection::InvalidStage { command: command.type_name().to_owned(), stage: task.stage.name().to_owned() };
    let event = match command {
        TaskCommand::CreateTask(_) => unreachable!("handled above"),
        TaskCommand::RequestDetection(_) => match task.stage {
            Stage::Created | Stage::ReprocessPending(ReprocessMode::LatestModels) => {
                TaskEvent::DetectionRequested(DetectionRequested { attempt: task.detection_attempts + 1 })
            }
            _ => return Err(wrong_stage()),
        },
        TaskCommand::RecordDetections(c) => {
            if task.stage != Stage::DetectionPending {
                return Err(wrong_stage());
            }
            record_detections(task, c, limits)?
        }
        TaskCommand::RecordRecognitions(c) => {
            if task.stage != Stage::RecognitionPending {
                return Err(wrong_stage());
            }
            record_recognitions(task, c, limits)?
        }
        TaskCommand::RecordModelNotFound(c) => {
            let step = match task.stage {
                Stage::DetectionPending => DETECTION_STEP,
                Stage::RecognitionPending => RECOGNITION_STEP,
                _ => return Err(wrong_stage()),
            };
            validate::non_empty("step", &c.step, limits.max_string)?;
            if c.step != step {
                // the step pending is the one whose model is missing: a late answer of another
                // step's worker is refused, not recorded against the wrong step
                return Err(Rejection::InvalidField { field: "step".to_owned() });
            }
            TaskEvent::ModelNotFound(ModelNotFound {
                step: step.to_owned(),
                class_group_key: task.class_group.key.clone(),
            })
        }
        TaskCommand::RequestAssistance(c) => match (&task.stage, c.reason) {
            (Stage::ModelMissing, AssistanceReason::ModelNotFound)
            | (Stage::ReprocessPending(ReprocessMode::ResendToOperator), AssistanceReason::Resend) => {
                TaskEvent::AssistanceRequested(AssistanceRequested { reason: c.reason })
            }
            _ => return Err(wrong_stage()),
        },
        TaskCommand::AssignOperator(c) => {
            validate::id("operator", c.operator.as_str(), limits)?;
            validate::id("session_id", c.session_id.as_str(), limits)?;
            match (&task.stage, ctx.actor) {
                (_, Actor::Operator(me)) if me != c.operator.as_str() => {
                    return Err(Rejection::NotAssigned { actor: ctx.actor.to_string() });
                }
                (_, Actor::Customer(_)) => {
                    return Err(Rejection::NotAssigned { actor: ctx.actor.to_string() });
                }
                (Stage::AwaitingOperator(SessionPurpose::QualityCheck), _)
                    if task.annotator.as_ref() == Some(&c.operator) =>
                {
                    return Err(Rejection::OwnWork { operator: c.operator.to_string() });
                }
                (Stage::AwaitingOperator(purpose), _) => TaskEvent::OperatorAssigned(OperatorAssigned {
                    operator: c.operator.clone(),
                    session_id: c.session_id.clone(),
                    purpose: *purpose,
                }),
                (Stage::InSession { operator, .. }, _) => {
                    return Err(Rejection::AlreadyAssigned { operator: operator.to_string() });
                }
                _ => return Err(wrong_stage()),
            }
        }
        TaskCommand::ReleaseOperator(c) => {
            validate::string("reason", &c.reason, limits.max_string)?;
            let Stage::InSession { operator, session_id, .. } = &task.stage else {
                return Err(wrong_stage());
            };
            let allowed = match ctx.actor {
                Actor::Operator(me) => me == operator.as_str(),
                Actor::Service(_) => true,
                Actor::Customer(_) => false,
            };
            if !allowed {
                return Err(Rejection::NotAssigned { actor: ctx.actor.to_string() });
            }
            if *session_id != c.session_id {
                return Err(Rejection::SessionMismatch { given: c.session_id.to_string() });
            }
            TaskEvent::OperatorReleased(OperatorReleased {
                operator: operator.clone(),
                session_id: session_id.clone(),
                reason: c.reason.clone(),
            })
        }
        TaskCommand::AddObjects(c) => {
            let (operator, session_id, _) = open_session(task, ctx.actor, &c.session_id)?;
            add_objects(task, c, limits)?;
            TaskEvent::ObjectsAdded(ObjectsAdded { operator, session_id, objects: c.objects.clone() })
        }
        TaskCommand::RemoveObjects(c) => {
            let (operator, session_id, _) = open_session(task, ctx.actor, &c.session_id)?;
            if c.object_ids.is_empty() {
                return Err(Rejection::EmptyCommand);
            }
            validate::count("objects", c.object_ids.len(), limits.max_objects_per_command)?;
            let mut seen = HashSet::with_capacity(c.object_ids.len());
            for id in &c.object_ids {
                if !task.objects.contains_key(id) || !seen.insert(id) {
                    return Err(Rejection::UnknownObject { object_id: id.to_string() });
                }
            }
            TaskEvent::ObjectsRemoved(ObjectsRemoved { operator, session_id, object_ids: c.object_ids.clone() })
        }
        TaskCommand::LabelObjects(c) => {
            let (operator, session_id, _) = open_session(task, ctx.actor, &c.session_id)?;
            if c.labels.is_empty() {
                return Err(Rejection::EmptyCommand);
            }
            validate::count("labels", c.labels.len(), limits.max_objects_per_command)?;
            let mut seen = HashSet::with_capacity(c.labels.len());
            for label in &c.labels {
                if !task.objects.contains_key(&label.object_id) {
                    return Err(Rejection::UnknownObject { object_id: label.object_id.to_string() });
                }
                if !seen.insert(&label.object_id) {
                    return Err(Rejection::DuplicateObject { object_id: label.object_id.to_string() });
                }
                validate::class(&task.class_group, Some(label.class_id))?;
            }
            TaskEvent::ObjectsLabeled(ObjectsLabeled { operator, session_id, labels: c.labels.clone() })
        }
        TaskCommand::FinishOperatorSession(c) => {
            let (operator, session_id, purpose) = open_session(task, ctx.actor, &c.session_id)?;
            let finished = TaskEvent::OperatorFinished(OperatorFinished { operator, session_id, purpose });
            if purpose == SessionPurpose::QualityCheck && task.changed_since_result {
                // a quality check that corrected the result makes a new revision at once (the
                // customer gets it by webhook and GET .../result); one that changed nothing
                // leaves the result as it was
                let corrected = TaskEvent::TaskResultGenerated(TaskResultGenerated {
                    revision: task.result_revision + 1,
                    source: ResultSource::Operator,
                    model: task.last_model.clone(),
                    objects: task.result_objects(),
                });
                return Ok(vec![finished, corrected]);
            }
            finished
        }
        TaskCommand::GenerateResult(_) => {
            let source = match task.stage {
                Stage::Detected => ResultSource::Automatic,
                Stage::Annotated => ResultSource::Operator,
                _ => return Err(wrong_stage()),
            };
            // the recipe's recognition step runs first on the boxes it still owes (a model run's
            // boxes, or only those an operator drew or redrew without a class)
            let targets = task.recognition_targets();
            if !targets.is_empty() {
                return Ok(vec![TaskEvent::RecognitionRequested(RecognitionRequested {
                    attempt: task.recognition_attempts + 1,
                    objects: targets,
                })]);
            }
            TaskEvent::TaskResultGenerated(TaskResultGenerated {
                revision: task.result_revision + 1,
                source,
                model: task.last_model.clone(),
                objects: task.result_objects(),
            })
        }
        TaskCommand::RequestQualityCheck(_) => {
            if task.stage != Stage::ResultGenerated || task.quality_check_requested {
                return Err(wrong_stage());
            }
            TaskEvent::QualityCheckRequested(QualityCheckRequested { revision: task.result_revision })
        }
        TaskCommand::RecordReport(c) => record_report(task, c, limits).ok_or_else(wrong_stage)??,
        TaskCommand::RedeliverResult(c) => redeliver(task, c, ctx)?,
        TaskCommand::CancelTask(c) => {
            validate::string("reason", &c.reason, limits.max_string)?;
            if task.result_revision > 0 {
                return Err(wrong_stage());
            }
            TaskEvent::TaskCancelled(TaskCancelled { reason: c.reason.clone() })
        }
        TaskCommand::Reprocess(c) => match task.stage {
            Stage::ResultGenerated
            | Stage::ModelMissing
            | Stage::Detected
            | Stage::Annotated
            | Stage::AwaitingOperator(_) => TaskEvent::ReprocessRequested(ReprocessRequested { mode: c.mode }),
            _ => return Err(wrong_stage()),
        },
        TaskCommand::RevertBatch(c) => {
            if !matches!(ctx.actor, Actor::Service(_)) {
                return Err(Rejection::NotAssigned { actor: ctx.actor.to_string() });
            }
            // a model run or an operator session in flight finishes first; the task manager retries
            if matches!(
                task.stage,
                Stage::Created | Stage::DetectionPending | Stage::RecognitionPending | Stage::InSession { .. }
            ) {
                return Err(wrong_stage());
            }
            revert_batch(task, c, limits)?
        }
    };
    Ok(vec![event])
}

/// The commands a customer may send: its own tasks' creation, cancellation and reprocessing.
/// Everything else is sent by visionlog's services or by operators.
pub fn is_customer_command(command: &TaskCommand) -> bool {
    matches!(command, TaskCommand::CreateTask(_) | TaskCommand::CancelTask(_) | TaskCommand::Reprocess(_))
}

/// Who may send what, whatever the task's stage: a command of another tenant than the task's
/// customer is refused, and a customer may send only [`is_customer_command`]s, as itself.
fn authorize(state: &TaskState, command: &TaskCommand, ctx: &DecideContext<'_>) -> Result<(), Rejection> {
    let customer = match (state, command) {
        (_, TaskCommand::CreateTask(c)) => Some(c.customer.as_str()),
        (Some(task), _) => Some(task.customer.as_str()),
        (None, _) => None,
    };
    if customer.is_some_and(|c| c != ctx.tenant) {
        return Err(Rejection::TenantMismatch { tenant: ctx.tenant.to_owned() });
    }
    if let Actor::Customer(me) = ctx.actor {
        if me != ctx.tenant {
            return Err(Rejection::TenantMismatch { tenant: ctx.tenant.to_owned() });
        }
        if !is_customer_command(command) {
            return Err(Rejection::NotPermitted {
                actor: ctx.actor.to_string(),
                command: command.type_name().to_owned(),
            });
        }
    }
    Ok(())
}

fn create(c: &CreateTask, limits: &Limits) -> Result<Vec<TaskEvent>, Rejection> {
    validate::id("customer", c.customer.as_str(), limits)?;
    if c.task_type != TaskType::ProductDetection {
        return Err(Rejection::InvalidField { field: "task_type".to_owned() });
    }
    validate::class_group(&c.class_group, limits)?;
    validate::images(&c.images, c.customer.as_str(), limits)?;
    if let Some(url) = &c.callback_url {
        validate::uri("callback_url", url, ALLOWED_CALLBACK_SCHEMES, limits)?;
    }
    if let Some(p) = &c.personal {
        validate::id("personal.subject", &p.subject, limits)?;
        validate::id("personal.key_id", &p.key_id, limits)?;
        validate::non_empty("personal.nonce", &p.nonce, limits.max_id)?;
        validate::non_empty("personal.ciphertext", &p.ciphertext, limits.max_string)?;
    }
    Ok(vec![TaskEvent::TaskCreated(TaskCreated {
        customer: c.customer.clone(),
        task_type: c.task_type,
        recipe: c.recipe,
        class_group: c.class_group.clone(),
        images: c.images.clone(),
        callback_url: c.callback_url.clone(),
        personal: c.personal.clone(),
    })])
}

fn record_detections(task: &Task, c: &RecordDetections, limits: &Limits) -> Result<TaskEvent, Rejection> {
    validate::id("model.model_id", &c.model.model_id, limits)?;
    validate::count("objects", c.detections.len(), limits.max_objects_per_command)?;
    validate::count("objects", c.detections.len(), limits.max_objects_per_task)?;
    let attempt = task.detection_attempts;
    let mut objects = Vec::with_capacity(c.detections.len());
    for (i, d) in c.detections.iter().enumerate() {
        let name = i.to_string();
        validate::placed_box(&name, d.image, &d.bbox, &task.images)?;
        validate::class(&task.class_group, d.class_id)?;
        if !(d.score.is_finite() && (0.0..=1.0).contains(&d.score)) {
            return Err(Rejection::InvalidScore { object: name });
        }
        objects.push(DetectedObject {
            object_id: ObjectId(format!("d{attempt}.{i}")),
            image: d.image,
            bbox: d.bbox,
            class_id: d.class_id,
            score: d.score,
        });
    }
    Ok(TaskEvent::ObjectsDetected(ObjectsDetected { attempt, model: c.model.clone(), objects }))
}

/// Checks a recognizer's answer: one class of the group, with a probability, for each object
/// of the pending request, and nothing else.
fn record_recognitions(task: &Task, c: &RecordRecognitions, limits: &Limits) -> Result<TaskEvent, Rejection> {
    validate::id("model.model_id", &c.model.model_id, limits)?;
    validate::count("recognitions", c.recognitions.len(), limits.max_objects_per_command)?;
    let mut seen = HashSet::with_capacity(c.recognitions.len());
    for r in &c.recognitions {
        if !task.unrecognized.contains(&r.object_id) {
            return Err(Rejection::UnknownObject { object_id: r.object_id.to_string() });
        }
        if !seen.insert(&r.object_id) {
            return Err(Rejection::DuplicateObject { object_id: r.object_id.to_string() });
        }
        validate::class(&task.class_group, Some(r.class_id))?;
        if !(r.score.is_finite() && (0.0..=1.0).contains(&r.score)) {
            return Err(Rejection::InvalidScore { object: r.object_id.to_string() });
        }
    }
    if seen.len() != task.unrecognized.len() {
        // an answer for part of the request would leave the rest owed, and asked for again
        return Err(Rejection::InvalidField { field: "recognitions".to_owned() });
    }
    Ok(TaskEvent::ObjectsRecognized(ObjectsRecognized {
        attempt: task.recognition_attempts,
        model: c.model.clone(),
        objects: c.recognitions.clone(),
    }))
}

fn add_objects(task: &Task, c: &AddObjects, limits: &Limits) -> Result<(), Rejection> {
    if c.objects.is_empty() {
        return Err(Rejection::EmptyCommand);
    }
    validate::count("objects", c.objects.len(), limits.max_objects_per_command)?;
    validate::count("objects", task.objects.len() + c.objects.len(), limits.max_objects_per_task)?;
    let mut seen = HashSet::with_capacity(c.objects.len());
    for o in &c.objects {
        validate::id("object_id", o.object_id.as_str(), limits)?;
        if task.objects.contains_key(&o.object_id) || !seen.insert(&o.object_id) {
            return Err(Rejection::DuplicateObject { object_id: o.object_id.to_string() });
        }
        validate::placed_box(o.object_id.as_str(), o.image, &o.bbox, &task.images)?;
        validate::class(&task.class_group, o.class_id)?;
    }
    Ok(())
}

fn revert_batch(task: &Task, c: &RevertBatch, limits: &Limits) -> Result<TaskEvent, Rejection> {
    validate::id("correlation_id", &c.correlation_id, limits)?;
    validate::string("reason", &c.reason, limits.max_string)?;
    if c.reverted_versions.is_empty() {
        return Err(Rejection::EmptyCommand);
    }
    validate::count("reverted_versions", c.reverted_versions.len(), limits.max_objects_per_command)?;
    validate::count("objects", c.objects.len(), limits.max_objects_per_task)?;
    if let Some(m) = &c.model {
        validate::id("model.model_id", &m.model_id, limits)?;
    }
    let mut seen = HashSet::with_capacity(c.objects.len());
    for o in &c.objects {
        validate::id("object_id", o.object_id.as_str(), limits)?;
        if !seen.insert(&o.object_id) {
            return Err(Rejection::DuplicateObject { object_id: o.object_id.to_string() });
        }
        validate::placed_box(o.object_id.as_str(), o.image, &o.bbox, &task.images)?;
        validate::class(&task.class_group, o.class_id)?;
        if o.score.is_some_and(|s| !(s.is_finite() && (0.0..=1.0).contains(&s))) {
            return Err(Rejection::InvalidScore { object: o.object_id.to_string() });
        }
    }
    Ok(TaskEvent::BatchReverted(BatchReverted {
        correlation_id: c.correlation_id.clone(),
        reason: c.reason.clone(),
        reverted_versions: c.reverted_versions.clone(),
        objects: c.objects.clone(),
        model: c.model.clone(),
        source: c.source,
    }))
}

fn record_report(task: &Task, c: &RecordReport, limits: &Limits) -> Option<Result<TaskEvent, Rejection>> {
    let revision = task.result_revision;
    if revision == 0 || task.callback_url.is_none() || task.reported_revision == revision || task.report_given_up {
        return None;
    }
    if let Some(error) = &c.error
        && let Err(e) = validate::string("error", error, limits.max_string)
    {
        return Some(Err(e));
    }
    let event = if c.delivered {
        TaskEvent::TaskReported(TaskReported { revision, attempt: c.attempt, status_code: c.status_code })
    } else {
        TaskEvent::ReportFailed(ReportFailed {
            revision,
            attempt: c.attempt,
            status_code: c.status_code,
            error: c.error.clone().unwrap_or_default(),
            last_attempt: c.last_attempt,
        })
    };
    Some(Ok(event))
}

/// Starts the deliveries of the latest result over, once they were given up; only visionlog's
/// services send it (the task manager, for ops).
fn redeliver(task: &Task, c: &RedeliverResult, ctx: &DecideContext<'_>) -> Result<TaskEvent, Rejection> {
    if !matches!(ctx.actor, Actor::Service(_)) {
        return Err(Rejection::NotPermitted { actor: ctx.actor.to_string(), command: "RedeliverResult".to_owned() });
    }
    validate::non_empty("reason", &c.reason, ctx.limits.max_string)?;
    let revision = task.result_revision;
    let why = if revision == 0 {
        Some("the task has no result yet")
    } else if task.callback_url.is_none() {
        Some("the task has no callback URL")
    } else if task.reported_revision == revision {
        Some("the latest result was delivered")
    } else if !task.report_given_up {
        Some("the latest result is still being delivered")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Rejection::NothingToRedeliver { why: why.to_owned() });
    }
    Ok(TaskEvent::RedeliveryRequested(RedeliveryRequested { revision, reason: c.reason.clone() }))
}

/// Checks that the actor is the operator of the open session named, and returns it.
fn open_session(
    task: &Task,
    actor: &Actor,
    session: &SessionId,
) -> Result<(OperatorId, SessionId, SessionPurpose), Rejection> {
    let Stage::InSession { operator, session_id, purpose } = &task.stage else {
        return Err(Rejection::NotAssigned { actor: actor.to_string() });
    };
    match actor {
        Actor::Operator(me) if me == operator.as_str() => {}
        _ => {
            return Err(Rejection::NotAssigned { actor: actor.to_string() });
        }
    }
    if session_id != session {
        return Err(Rejection::SessionMismatch { given: session.to_string() });
    }
    Ok((operator.clone(), session_id.clone(), *purpose))
}
