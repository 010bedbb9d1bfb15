//! `/v1/operator/...`: the Operator Manager as the annotation tool uses it.

use crate::leases;
use crate::rules::{self, QueueFilter};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use visionlog_domain::subtasks::{check_session, operator_subtasks};
use visionlog_domain::summarizer::{SessionObject, UiAction, summarize};
use visionlog_domain::{
    Actor, AssignOperator, DecideContext, FinishOperatorSession, Limits, ObjectId, OperatorId, ReleaseOperator,
    SessionId, SessionPurpose, Stage, Subtask, Task, TaskCommand, TaskEvent, TaskState, decide, evolve,
};
use visionlog_http::problem::{ApiResult, Problem};
use visionlog_http::request::{body, decided, envelope, query};
use visionlog_http::{ApiState as Gw, principal};
use visionlog_journal::{RecordedEvent, deterministic_id, now_ms};
use visionlog_tenants::{Principal, Tenants};

/// An operator's id, or 403 for other tokens.
fn operator_of(who: &Principal) -> ApiResult<&str> {
    match who {
        Principal::Operator(o) => Ok(o),
        _ => Err(Problem::forbidden("only an operator's token may do this")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueQuery {
    /// A class group (project).
    project: Option<String>,
    /// One of the operator's teams.
    team: Option<String>,
    /// `annotation` or `quality_check`.
    skill: Option<String>,
    /// Only tasks nobody holds.
    #[serde(default)]
    waiting: bool,
    limit: Option<usize>,
}

/// `GET /v1/operator/queue`: the tasks of the operator's teams' customers that need one of its
/// skills, oldest first, with who holds each and until when.
pub(crate) async fn queue(
    gw: Gw,
    headers: HeaderMap,
    q: Result<Query<QueueQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    let q = query(q)?;
    gw.blocking(move |gw| {
        let op = gw.tenants.operator(&me).ok_or_else(|| Problem::forbidden("unknown operator"))?;
        if let Some(team) = &q.team
            && !op.teams.contains(team)
        {
            return Err(Problem::forbidden(format!("operator {me} is not in team {team}")));
        }
        let customers: Vec<String> = gw
            .tenants
            .customers_of(op)
            .into_iter()
            .filter(|c| {
                q.team.as_ref().is_none_or(|team| gw.tenants.tenant(c).and_then(|t| t.team.as_ref()) == Some(team))
            })
            .collect();
        let rows = visionlog_views::queries::queue(gw.store.as_ref(), &customers).map_err(Problem::internal)?;
        let limit = q.limit.unwrap_or(100).clamp(1, gw.config.max_page);
        let filter = QueueFilter { project: q.project, skill: q.skill, waiting: q.waiting };
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(Problem::internal)?;
            if !rules::shown(op, &row, &filter) {
                continue;
            }
            let expires = leases::expires_at(gw.store.as_ref(), &row, gw.config.lease).map_err(Problem::internal)?;
            let mut v = serde_json::to_value(&row).map_err(Problem::internal)?;
            v["lease_expires_at_ms"] = json!(expires);
            v["mine"] = json!(row.operator.as_deref() == Some(me.as_str()));
            out.push(v);
            if out.len() == limit {
                break;
            }
        }
        Ok(Json(json!({ "operator": me, "tasks": out })))
    })
    .await
}

/// The subtasks an operator's session on `task` shows: its customer's setting for the recipe,
/// read against the task's events (a subtask whose model is missing shows anyway).
fn subtasks_of(tenants: &Tenants, task: &Task, history: &[RecordedEvent]) -> Vec<Subtask> {
    let purpose = match &task.stage {
        Stage::InSession { purpose, .. } | Stage::AwaitingOperator(purpose) => *purpose,
        _ => SessionPurpose::Annotation,
    };
    let shown = tenants.operator_subtasks(task.customer.as_str(), task.recipe);
    operator_subtasks(task.recipe, shown, purpose, history.iter().map(|r| &r.event))
}

/// The task as the tool shows it: images, class group, objects now, the step and the session,
/// and which subtasks of its recipe the operator works on (`subtasks`) and which are left to
/// the models (`hidden`: the tool offers no classes where `recognition` is hidden, and no box
/// edits where `detection` is; in the detection recipe, detection includes the classes).
fn tool_view(task_id: &str, history: &[RecordedEvent], me: &str, tenants: &Tenants) -> ApiResult<Value> {
    let s = visionlog_journal::state_as_of(history, None, None);
    let Some(task) = s.state else { return Err(Problem::task_not_found(task_id)) };
    let subtasks = subtasks_of(tenants, &task, history);
    let session = match &task.stage {
        Stage::InSession { operator, session_id, purpose } => {
            json!({ "session_id": session_id, "operator": operator, "purpose": purpose })
        }
        _ => Value::Null,
    };
    let images: Vec<Value> = task
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            json!({ "index": i, "width": im.width, "height": im.height,
                    "url": format!("/v1/operator/tasks/{task_id}/images/{i}") })
        })
        .collect();
    let objects: Vec<Value> = task
        .objects
        .iter()
        .map(|(id, o)| {
            json!({ "object_id": id, "image": o.image, "bbox": o.bbox, "class_id": o.class_id,
                    "score": o.score, "source": o.source })
        })
        .collect();
    Ok(json!({
        "task_id": task_id, "version": s.version, "customer": task.customer, "class_group": task.class_group,
        "stage": task.stage.name(), "step": rules::step(&task, me), "session": session, "images": images,
        "recipe": task.recipe, "hidden": task.recipe.subtasks().iter().filter(|s| !subtasks.contains(s)).collect::<Vec<_>>(),
        "subtasks": subtasks,
        "objects": objects, "events": history.iter().map(|r| json!({"version": r.envelope.version, "type": r.envelope.event_type, "actor": r.envelope.actor})).collect::<Vec<_>>(),
    }))
}

/// `GET /v1/operator/tasks/{id}`: what the annotation tool shows.
pub(crate) async fn task(gw: Gw, headers: HeaderMap, Path(task_id): Path<String>) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        Ok(Json(tool_view(&task_id, &history, &me, &gw.tenants)?))
    })
    .await
}

/// `GET /v1/operator/tasks/{id}/images/{n}`: the task's photo (from the object store).
pub(crate) async fn image(
    gw: Gw,
    headers: HeaderMap,
    Path((task_id, index)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    operator_of(&who)?;
    let index: usize =
        index.parse().map_err(|_| Problem::bad_request("invalid_path", "the image index is a number from 0"))?;
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        let Some(TaskEvent::TaskCreated(created)) = history.first().map(|r| &r.event) else {
            return Err(Problem::task_not_found(&task_id));
        };
        let image = created.images.get(index).ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "no_such_image", format!("the task has no image {index}"))
        })?;
        let key = visionlog_objects::key_of_uri(&image.uri).map_err(|e| {
            Problem::new(StatusCode::NOT_FOUND, "image_not_stored", format!("{e}: open {} yourself", image.uri))
        })?;
        // only the customer's own photos leave the store this way (tasks made before the domain
        // refused other keys may still name them)
        if !key.starts_with(&visionlog_domain::image_folder(created.customer.as_str())) {
            return Err(Problem::new(StatusCode::NOT_FOUND, "image_not_stored", "not a photo of this task's customer"));
        }
        let bytes = gw
            .objects
            .get(key, visionlog_imaging::MAX_IMAGE_BYTES)
            .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "image_unreadable", e.to_string()))?;
        Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=3600")], bytes)
            .into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignRequest {
    /// The task version the operator saw in the queue.
    version: u64,
}

/// `POST /v1/operator/tasks/{id}/assign`: takes a waiting task. Expects the version the queue
/// showed, so of two operators taking the same task one gets it and the other `409`.
pub(crate) async fn assign(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    req: Result<Json<AssignRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    let req = body(req)?;
    let (who2, id) = (who.clone(), task_id.clone());
    let history = gw.blocking(move |gw| gw.history_for(&who2, &id)).await?;
    // the operator must have the skill the task waits for
    if let (Some(op), Some(task)) =
        (gw.tenants.operator(&me), visionlog_journal::state_as_of(&history, None, None).state)
    {
        rules::may_take(op, &task.stage).map_err(Problem::forbidden)?;
    }
    let tenant = history[0].envelope.tenant.clone();
    let session_id = rules::session_id(&me, req.version);
    let command = TaskCommand::AssignOperator(AssignOperator {
        operator: OperatorId(me.clone()),
        session_id: SessionId(session_id.clone()),
    });
    let command_id = deterministic_id(&[&task_id, &me, &req.version.to_string(), "assign"]);
    let env = envelope(&who, &tenant, &task_id, command_id, &command, Some(req.version));
    let response = decided(gw.send(vec![(env, command)]).await?, &format!("/v1/operator/tasks/{task_id}"))?;
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    let until = now_ms() + gw.config.lease.as_millis() as i64;
    let (t, s) = (task_id.clone(), session_id.clone());
    gw.blocking(move |gw| leases::extend(gw.store.as_ref(), &t, &s, &me, until).map_err(Problem::internal)).await?;
    let body = json!({ "task_id": task_id, "session_id": session_id, "lease_expires_at_ms": until });
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRef {
    session_id: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The task and its version if it is in `me`'s session `session_id`, else 409.
fn my_session(history: &[RecordedEvent], me: &str, session_id: &str) -> ApiResult<(u64, Task)> {
    let s = visionlog_journal::state_as_of(history, None, None);
    match s.state {
        Some(task) if rules::in_session_of(&task, me, session_id) => Ok((s.version, task)),
        _ => Err(Problem::new(
            StatusCode::CONFLICT,
            "not_your_session",
            "the task is not in this session of yours (the lease may have expired)",
        )),
    }
}

/// `POST /v1/operator/tasks/{id}/heartbeat`: keeps the lease of an open session.
pub(crate) async fn heartbeat(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    req: Result<Json<SessionRef>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    let req = body(req)?;
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        my_session(&history, &me, &req.session_id)?;
        let until = now_ms() + gw.config.lease.as_millis() as i64;
        leases::extend(gw.store.as_ref(), &task_id, &req.session_id, &me, until).map_err(Problem::internal)?;
        Ok(Json(json!({ "task_id": task_id, "session_id": req.session_id, "lease_expires_at_ms": until })))
    })
    .await
}

/// `POST /v1/operator/tasks/{id}/release`: gives a task back to the queue.
pub(crate) async fn release(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    req: Result<Json<SessionRef>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    let req = body(req)?;
    let (who2, id, s) = (who.clone(), task_id.clone(), req.session_id.clone());
    let (version, tenant) = gw
        .blocking(move |gw| {
            let history = gw.history_for(&who2, &id)?;
            Ok((my_session(&history, &me, &s)?.0, history[0].envelope.tenant.clone()))
        })
        .await?;
    let command = TaskCommand::ReleaseOperator(ReleaseOperator {
        session_id: SessionId(req.session_id),
        reason: req.reason.unwrap_or_else(|| "given back by the operator".into()),
    });
    let env = envelope(&who, &tenant, &task_id, uuid::Uuid::now_v7().to_string(), &command, Some(version));
    decided(gw.send(vec![(env, command)]).await?, &format!("/v1/operator/tasks/{task_id}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionUpload {
    session_id: String,
    /// The task version the tool started from.
    base_version: u64,
    /// Every change, in order, as the tool recorded it (offline included).
    actions: Vec<UiAction>,
    /// Seal the session (the result follows); false keeps it open.
    #[serde(default = "yes")]
    finish: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/operator/tasks/{id}/session`: the whole session in bulk. The session summarizer
/// turns the actions into at most one remove, one add and one label command (seed 000's
/// summarized commands), sent with chained expected versions from `base_version`, then the seal.
pub(crate) async fn session(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    req: Result<Json<SessionUpload>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let me = operator_of(&who)?.to_owned();
    let req = body(req)?;
    let (who2, id, s, me2) = (who.clone(), task_id.clone(), req.session_id.clone(), me.clone());
    let history = gw.blocking(move |gw| gw.history_for(&who2, &id)).await?;
    let (version, task) = my_session(&history, &me2, &s)?;
    if version != req.base_version {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "version_conflict",
            format!("the task is at version {version}, the session started from {}", req.base_version),
        ));
    }
    let initial: BTreeMap<ObjectId, SessionObject> = task
        .objects
        .iter()
        .map(|(id, o)| (id.clone(), SessionObject { image: o.image, bbox: o.bbox, class_id: o.class_id }))
        .collect();
    let summary = summarize(&initial, &req.actions)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_session", e.to_string()))?;
    // what the customer left to the models stays theirs
    let shown = subtasks_of(&gw.tenants, &task, &history);
    check_session(&summary, &initial, task.recipe, &shown)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "subtask_hidden", e))?;
    let counts =
        json!({ "removed": summary.removed.len(), "added": summary.added.len(), "labeled": summary.labeled.len() });
    let session_id = SessionId(req.session_id.clone());
    let mut commands = summary.into_commands(&session_id);
    if req.finish {
        commands.push(TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id }));
    }
    if commands.is_empty() {
        return Ok(Json(json!({ "status": "nothing to send", "version": version })).into_response());
    }
    // decided here first by the same pure rules the aggregator applies, so a session with a box
    // outside its image is refused whole instead of half applied
    let actor: Actor = format!("operator:{me}").parse().map_err(|e: String| Problem::forbidden(e))?;
    let limits = Limits::default();
    let tenant = task.customer.as_str().to_owned();
    let ctx = DecideContext { actor: &actor, tenant: &tenant, limits: &limits };
    let mut state: TaskState = Some(task);
    for c in &commands {
        match decide(&state, c, &ctx) {
            Ok(events) => state = events.iter().fold(state, evolve),
            Err(r) => return Err(Problem::rejected(r.code(), &r.to_string()).with(json!({ "command": c.type_name() }))),
        }
    }
    let batch: Vec<_> = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let id = deterministic_id(&[&task_id, &req.session_id, &version.to_string(), &i.to_string()]);
            (envelope(&who, &tenant, &task_id, id, &c, Some(version + i as u64)), c)
        })
        .collect();
    let sent = batch.len();
    let response = decided(gw.send(batch).await?, &format!("/v1/operator/tasks/{task_id}"))?;
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    Ok(Json(json!({ "status": "accepted", "commands": sent, "summary": counts, "actions": req.actions.len() }))
        .into_response())
}
