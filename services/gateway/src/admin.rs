//! `/v1/admin/...`: the task manager for ops (seed 000): process tasks again, send them back to
//! operators, deliver given-up results again, undo a faulty batch. The same use cases as
//! `visionlog task ...` (`visionlog_task_manager`); admins only.

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use visionlog_domain::ReprocessMode;
use visionlog_http::problem::{ApiResult, Problem};
use visionlog_http::request::body;
use visionlog_http::{ApiState as Gw, principal};
use visionlog_task_manager::{Redelivery, Reprocessing, TaskManager, TaskManagerError, Undo};
use visionlog_tenants::Principal;

/// Admins only; the actor recorded on the events is the task manager acting for them.
fn admin(gw: &visionlog_http::Api, headers: &HeaderMap) -> ApiResult<String> {
    match principal(gw, headers)? {
        Principal::Admin(name) => Ok(name),
        _ => Err(Problem::forbidden("only ops may use the task manager")),
    }
}

fn manager(gw: &visionlog_http::Api) -> TaskManager<'_> {
    TaskManager { log: gw.log.as_ref(), codec: &gw.codec, topics: &gw.topics, bus: &gw.bus, store: gw.store.as_ref() }
}

/// A request that parses but cannot be carried out (422, as the other endpoints answer).
fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
}

fn problem(e: TaskManagerError) -> Problem {
    match e {
        TaskManagerError::Invalid(why) => invalid(why),
        TaskManagerError::UnknownTask(id) => {
            Problem::new(StatusCode::NOT_FOUND, "task_not_found", format!("no task {id}"))
        }
        TaskManagerError::UnknownBatch(id) => {
            Problem::new(StatusCode::NOT_FOUND, "batch_not_found", format!("no event has correlation id {id:?}"))
        }
        TaskManagerError::Backend(e) => Problem::internal(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReprocessRequest {
    task_ids: Vec<String>,
    /// `latest_models` (default) or `resend_to_operator`.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    expected_version: Option<u64>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// The largest batch one request may name.
const MAX_TASKS: usize = 10_000;

/// `POST /v1/admin/tasks/reprocess`: sends `Reprocess` for each task as one batch (one
/// correlation id, returned: the batch can be undone). 202: sent; the aggregator decides.
pub(crate) async fn reprocess(
    gw: Gw,
    headers: HeaderMap,
    req: Result<Json<ReprocessRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = admin(&gw, &headers)?;
    let req = body(req)?;
    let mode = match req.mode.as_deref() {
        None | Some("latest_models") => ReprocessMode::LatestModels,
        Some("resend_to_operator") => ReprocessMode::ResendToOperator,
        Some(other) => {
            return Err(invalid(format!("mode {other:?}: latest_models or resend_to_operator")));
        }
    };
    if req.task_ids.len() > MAX_TASKS {
        return Err(invalid(format!("at most {MAX_TASKS} tasks per request")));
    }
    let r = Reprocessing {
        task_ids: req.task_ids,
        mode,
        expected_version: req.expected_version,
        actor: "service:task-manager".into(),
        correlation_id: req.correlation_id,
    };
    let sent = gw.blocking(move |gw| manager(gw).reprocess(&r).map_err(problem)).await?;
    tracing::info!(admin = who, tasks = sent.len(), "task manager: reprocess sent");
    let correlation_id = sent.first().map(|s| s.correlation_id.clone());
    Ok((StatusCode::ACCEPTED, Json(json!({ "correlation_id": correlation_id, "sent": sent }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeliverRequest {
    /// The tasks, or none with `given_up`.
    #[serde(default)]
    task_ids: Vec<String>,
    /// Every result whose delivery was given up (from the dead letters).
    #[serde(default)]
    given_up: bool,
    /// With `given_up`: only this tenant's tasks.
    #[serde(default)]
    tenant: Option<String>,
    /// With `given_up`: only those given up since (ms since the epoch).
    #[serde(default)]
    since_ms: i64,
    reason: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// `POST /v1/admin/tasks/redeliver`: delivers again, in a new round of tries, the results whose
/// delivery was given up: the tasks named, or every one the dead letters name (`given_up`).
/// 202: sent; the aggregator decides (`nothing_to_redeliver` for a result delivered since).
pub(crate) async fn redeliver(
    gw: Gw,
    headers: HeaderMap,
    req: Result<Json<RedeliverRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = admin(&gw, &headers)?;
    let req = body(req)?;
    if req.given_up != req.task_ids.is_empty() {
        return Err(invalid("name task_ids, or set given_up (not both)"));
    }
    if !req.given_up && (req.tenant.is_some() || req.since_ms != 0) {
        return Err(invalid("tenant and since_ms go with given_up"));
    }
    if req.task_ids.len() > MAX_TASKS {
        return Err(invalid(format!("at most {MAX_TASKS} tasks per request")));
    }
    let (sent, given_up, next_since_ms) = gw
        .blocking(move |gw| {
            let tm = manager(gw);
            let mut given_up = match req.given_up {
                true => tm.given_up(req.tenant.as_deref(), req.since_ms).map_err(problem)?,
                false => Vec::new(),
            };
            // oldest first, at most MAX_TASKS a request; the next request starts where this
            // one ended (since_ms is inclusive: a task at that instant is refused, not resent)
            given_up.truncate(MAX_TASKS + 1);
            let next_since_ms = (given_up.len() > MAX_TASKS).then(|| given_up[MAX_TASKS].at_ms);
            given_up.truncate(MAX_TASKS);
            let task_ids = match req.given_up {
                true => given_up.iter().map(|g| g.task_id.clone()).collect(),
                false => req.task_ids,
            };
            if req.dry_run || task_ids.is_empty() {
                return Ok((Vec::new(), given_up, next_since_ms));
            }
            let r = Redelivery {
                task_ids,
                reason: req.reason,
                actor: "service:task-manager".into(),
                correlation_id: req.correlation_id,
            };
            Ok((tm.redeliver(&r).map_err(problem)?, given_up, next_since_ms))
        })
        .await?;
    tracing::info!(admin = who, tasks = sent.len(), "task manager: redeliver sent");
    let correlation_id = sent.first().map(|s| s.correlation_id.clone());
    let body = json!({
        "correlation_id": correlation_id, "sent": sent, "given_up": given_up, "next_since_ms": next_since_ms,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UndoRequest {
    reason: String,
    #[serde(default)]
    dry_run: bool,
    /// Seconds to wait for the aggregators' outcomes (at most 30; 0: send and return).
    #[serde(default)]
    wait_s: u64,
}

/// `POST /v1/admin/batches/{correlation_id}/undo`: undoes a batch on every task it touched
/// (compensating `RevertBatch` commands), or with `dry_run` says what it would do.
pub(crate) async fn undo(
    gw: Gw,
    headers: HeaderMap,
    Path(correlation_id): Path<String>,
    req: Result<Json<UndoRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = admin(&gw, &headers)?;
    let req = body(req)?;
    if req.reason.trim().is_empty() {
        return Err(invalid("a reason is required"));
    }
    let u = Undo {
        correlation_id,
        reason: req.reason,
        actor: "service:task-manager".into(),
        dry_run: req.dry_run,
        wait: Duration::from_secs(req.wait_s.min(30)),
    };
    let report = gw.blocking(move |gw| manager(gw).undo_batch(&u).map_err(problem)).await?;
    tracing::info!(admin = who, batch = report.batch, tasks = report.tasks.len(), "task manager: undo");
    let states = report.states();
    let skipped = report.skipped();
    Ok(Json(json!({
        "batch": report.batch, "undo_correlation_id": report.undo_correlation_id,
        "states": states, "skipped": skipped, "tasks": report.tasks,
    }))
    .into_response())
}
