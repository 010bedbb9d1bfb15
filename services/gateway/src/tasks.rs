//! `/v1/tasks`: what a retailer's integration does over HTTP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;
use visionlog_domain::{
    CancelTask, ClassGroup, CreateTask, CustomerId, ImageRef, Recipe, TaskCommand, TaskCreated, TaskEvent, TaskType,
};
use visionlog_http::problem::{ApiResult, Problem};
use visionlog_http::request::{accepted_pending, body, decided, envelope, query, upload};
use visionlog_http::{Api, ApiState as Gw, Sent, principal};
use visionlog_journal::{RecordedEvent, deterministic_id};
use visionlog_tenants::Principal;

/// The header that makes a create idempotent.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The tenant a retailer's request is from (operators and admins do not create tasks).
fn tenant_of(who: &Principal) -> ApiResult<&str> {
    match who {
        Principal::Tenant(t) => Ok(t),
        _ => Err(Problem::forbidden("only a tenant's token may do this")),
    }
}

/// What a retailer sends to create a task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    #[serde(default = "product_detection")]
    task_type: TaskType,
    recipe: Recipe,
    class_group: ClassGroup,
    images: Vec<ImageRef>,
    #[serde(default)]
    callback_url: Option<String>,
    /// Personal data of the task (a store contact, a note): sealed here under its data
    /// subject's key before it is sent, so no topic, segment, view or export holds it in clear.
    #[serde(default)]
    personal: Option<PersonalRequest>,
}

/// Personal fields and the data subject they belong to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonalRequest {
    /// The data subject (an id the tenant gives; erasure shreds by it).
    subject: String,
    #[serde(flatten)]
    fields: visionlog_privacy::Personal,
}

fn product_detection() -> TaskType {
    TaskType::ProductDetection
}

/// `POST /v1/tasks`: creates a task. The task id derives from the tenant and the
/// `Idempotency-Key` (a fresh one if absent), and so does the command id: a retried create is a
/// duplicate the aggregator answers with the first outcome; the same key with another body is
/// refused.
pub(crate) async fn create(
    gw: Gw,
    headers: HeaderMap,
    req: Result<Json<CreateRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let tenant = tenant_of(&who)?.to_owned();
    let req = body(req)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(v) => {
            let k = v.to_str().unwrap_or("");
            if k.is_empty() || k.len() > 200 {
                return Err(Problem::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key: 1 to 200 visible characters",
                ));
            }
            k.to_owned()
        }
        None => uuid::Uuid::now_v7().to_string(),
    };
    // outbound URLs are checked where they are given (and again where they are used)
    let urls = req.callback_url.iter().chain(req.images.iter().map(|i| &i.uri).filter(|u| u.starts_with("http")));
    for url in urls.cloned().collect::<Vec<_>>() {
        let guard = gw.guard.clone();
        let checked = tokio::task::spawn_blocking(move || guard.check(&url)).await.map_err(Problem::internal)?;
        if let Err(refused) = checked {
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed", refused.to_string())
                .with(json!({ "reason": refused.code() })));
        }
    }
    let task_id = format!("t-{}", deterministic_id(&["gateway", &tenant, &key]));
    // subjects are the tenant's: `acme:store-7-manager`
    let personal = match req.personal {
        None => None,
        Some(p) if !visionlog_domain::is_valid_task_id(&p.subject, 100) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "personal.subject: 1 to 100 characters of [A-Za-z0-9._:-]",
            ));
        }
        Some(p) => {
            let (subject, id) = (format!("{tenant}:{}", p.subject), task_id.clone());
            let sealed = gw
                .blocking(move |gw| {
                    visionlog_privacy::KeyStore::new(gw.store.clone())
                        .seal(&subject, &id, &p.fields)
                        .map_err(Problem::internal)
                })
                .await?;
            Some(sealed)
        }
    };
    let command = TaskCommand::CreateTask(CreateTask {
        customer: CustomerId(tenant.clone()),
        task_type: req.task_type,
        recipe: req.recipe,
        class_group: req.class_group,
        images: req.images,
        callback_url: req.callback_url,
        personal,
    });
    let command_id = deterministic_id(&["gateway", &tenant, &key, "CreateTask"]);
    let env = envelope(&who, &tenant, &task_id, command_id, &command, Some(0));
    let location = format!("/v1/tasks/{task_id}");
    let outcome = match gw.send(vec![(env, command.clone())]).await? {
        Sent::Pending => return Ok(accepted_pending(&location)),
        Sent::Decided(o) => o,
    };
    if !outcome.accepted {
        let code = outcome.rejection_code.as_deref().unwrap_or("rejected");
        return Err(Problem::rejected(code, outcome.rejection_message.as_deref().unwrap_or("")));
    }
    if outcome.duplicate {
        // the same key again: the same task, if it is the same request
        let (who2, id) = (who.clone(), task_id.clone());
        let history = gw.blocking(move |gw| gw.history_for(&who2, &id)).await?;
        let same = matches!((history.first().map(|r| &r.event), &command),
            (Some(TaskEvent::TaskCreated(e)), TaskCommand::CreateTask(c))
                if e.task_type == c.task_type && e.recipe == c.recipe && e.class_group == c.class_group
                    && e.images == c.images && e.callback_url == c.callback_url
                    && e.personal.as_ref().map(|p| &p.subject) == c.personal.as_ref().map(|p| &p.subject));
        if !same {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key created a task from a different request",
            ));
        }
    }
    let status = if outcome.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let body = json!({
        "task_id": task_id, "version": outcome.last_version, "status": "created",
        "idempotent_replay": outcome.duplicate, "location": location,
    });
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `GET /v1/tasks/{id}`: the task manager's summary, folded from the task's events (so it is
/// current even where the read side lags).
pub(crate) async fn summary(gw: Gw, headers: HeaderMap, Path(task_id): Path<String>) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        let mut view = visionlog_views::TaskView::default();
        for r in &history {
            view.apply(&task_id, r.envelope.version, r.envelope.recorded_at_ms, &r.event);
        }
        let mut out = serde_json::to_value(view.summary()).map_err(Problem::internal)?;
        out["class_group"] = json!(view.class_group);
        Ok(Json(out))
    })
    .await
}

/// One event as the API shows it.
pub(crate) fn event_json(r: &RecordedEvent) -> Value {
    let body = serde_json::to_value(&r.event).unwrap_or(Value::Null);
    let mut body = body.as_object().and_then(|o| o.values().next().cloned()).unwrap_or(body);
    // sealed personal data is shown as what it is, without its ciphertext
    if let TaskEvent::TaskCreated(TaskCreated { personal: Some(sealed), .. }) = &r.event {
        body["personal"] = json!({ "subject": sealed.subject, "sealed": true });
    }
    json!({
        "version": r.envelope.version, "type": r.envelope.event_type, "event_id": r.envelope.event_id,
        "recorded_at_ms": r.envelope.recorded_at_ms, "actor": r.envelope.actor,
        "correlation_id": r.envelope.correlation_id, "causation_id": r.envelope.causation_id, "event": body,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    #[serde(default)]
    after_version: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/tasks/{id}/events?after_version=N&limit=M`: the task's events, oldest first.
pub(crate) async fn events(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let page = query(page)?;
    let limit = page.limit.unwrap_or(100).clamp(1, gw.config.max_page);
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        let after: Vec<&RecordedEvent> = history.iter().filter(|r| r.envelope.version > page.after_version).collect();
        let shown: Vec<Value> = after.iter().take(limit).map(|r| event_json(r)).collect();
        let next = (after.len() > limit).then(|| after[limit - 1].envelope.version);
        Ok(Json(json!({ "task_id": task_id, "events": shown, "next_after_version": next })))
    })
    .await
}

/// `GET /v1/tasks/{id}/events/stream`: the task's events as Server-Sent Events, from
/// `after_version` (or the `Last-Event-ID` a reconnecting client sends), then live. Each event's
/// `id` is its version.
pub(crate) async fn stream(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let page = query(page)?;
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let after = last_id.unwrap_or(page.after_version);
    // each stream holds a thread of the blocking pool while it lives: bounded per caller and in all
    let slot = gw.streams.take(&visionlog_http::request::actor_of(&who), &gw.config)?;
    let (who2, id) = (who.clone(), task_id.clone());
    // where the live part starts is read before the history, so nothing falls between them
    let (history, from) = gw
        .blocking(move |gw| {
            let p = visionlog_log::partition_for(id.as_bytes(), gw.topics.partitions);
            let from = gw.log.end_offset(&gw.topics.events, p).map_err(Problem::internal)?;
            Ok((gw.history_for(&who2, &id)?, from))
        })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let gw2 = gw.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot; // freed when the client goes (the tail ends) or the process stops
        tail(&gw2, &task_id, history, from, after, tx)
    });
    let events =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))).into_response())
}

/// Feeds a stream: the history after `after`, then every new event of the task from offset
/// `from` of its partition (the end when the history was read: the live part reads what the
/// partition receives from then on, not what it held before), until the client goes away or
/// the gateway stops.
fn tail(
    gw: &Api,
    task_id: &str,
    history: Vec<RecordedEvent>,
    from: u64,
    after: u64,
    tx: tokio::sync::mpsc::Sender<Event>,
) {
    let p = visionlog_log::partition_for(task_id.as_bytes(), gw.topics.partitions);
    let mut next = from;
    let mut last_version = after;
    let mut send = |r: &RecordedEvent| -> bool {
        if r.envelope.version <= last_version {
            return true;
        }
        last_version = r.envelope.version;
        let e = Event::default()
            .id(r.envelope.version.to_string())
            .event(r.envelope.event_type.clone())
            .data(event_json(r).to_string());
        tx.blocking_send(e).is_ok()
    };
    if !history.iter().all(&mut send) {
        return;
    }
    while !gw.stop.load(Ordering::Relaxed) && !tx.is_closed() {
        let end = match gw.log.end_offset(&gw.topics.events, p) {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(error = %e, "gateway: event stream cannot read the log");
                return;
            }
        };
        if end > next {
            match visionlog_journal::task_events(gw.log.as_ref(), &gw.codec, &gw.topics, task_id, next) {
                Ok(new) => {
                    if !new.iter().all(&mut send) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gateway: event stream cannot read the log");
                    return;
                }
            }
            next = end;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOf {
    version: Option<u64>,
    at_ms: Option<i64>,
}

/// `GET /v1/tasks/{id}/state?version=V&at_ms=T`: the aggregate's state as of a version or an
/// instant (default: now).
pub(crate) async fn state(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    q: Result<Query<AsOf>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let q = query(q)?;
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        let s = visionlog_journal::state_as_of(&history, q.version, q.at_ms);
        if s.state.is_none() {
            return Err(Problem::new(StatusCode::NOT_FOUND, "no_state_then", "the task did not exist then"));
        }
        Ok(Json(json!({
            "task_id": task_id, "version": s.version, "recorded_at_ms": s.recorded_at_ms, "state": s.state,
        })))
    })
    .await
}

/// `GET /v1/tasks/{id}/result`: the latest result revision and whether it was delivered.
pub(crate) async fn result(gw: Gw, headers: HeaderMap, Path(task_id): Path<String>) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    gw.blocking(move |gw| {
        let history = gw.history_for(&who, &task_id)?;
        let Some((r, e)) = history.iter().rev().find_map(|r| match &r.event {
            TaskEvent::TaskResultGenerated(e) => Some((r, e)),
            _ => None,
        }) else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "no_result", "the task has no result yet"));
        };
        let reported =
            history.iter().any(|h| matches!(&h.event, TaskEvent::TaskReported(t) if t.revision == e.revision));
        Ok(Json(json!({
            "task_id": task_id, "revision": e.revision, "version": r.envelope.version,
            "recorded_at_ms": r.envelope.recorded_at_ms, "source": e.source, "model": e.model,
            "objects": e.objects, "reported": reported,
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    reason: String,
}

/// `POST /v1/tasks/{id}/cancel`: cancels a task that has no result yet.
pub(crate) async fn cancel(
    gw: Gw,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    req: Result<Json<CancelRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let tenant = tenant_of(&who)?.to_owned();
    let req = body(req)?;
    let (who2, id) = (who.clone(), task_id.clone());
    gw.blocking(move |gw| gw.history_for(&who2, &id)).await?;
    let command = TaskCommand::CancelTask(CancelTask { reason: req.reason });
    let env = envelope(&who, &tenant, &task_id, uuid::Uuid::now_v7().to_string(), &command, None);
    decided(gw.send(vec![(env, command)]).await?, &format!("/v1/tasks/{task_id}"))
}

/// `POST /v1/images` (a PNG body): stores a photo for the tenant's tasks; answers the
/// `store://` URI and the size to put in a task.
pub(crate) async fn upload_image(
    gw: Gw,
    headers: HeaderMap,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let tenant = tenant_of(&who)?.to_owned();
    let bytes = upload(bytes)?;
    let digest = visionlog_objects::sha256_hex(&bytes);
    let key = format!("{}{digest}.png", visionlog_domain::image_folder(&tenant));
    let (k, data) = (key.clone(), bytes.to_vec());
    // decoding a photo of up to 8192 pixels a side takes a while: off the async threads
    let (width, height) = gw
        .blocking(move |gw| {
            let image = visionlog_imaging::Rgb::from_png(&data).map_err(|e| {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", format!("not a PNG: {e}"))
            })?;
            gw.objects.put_new(&k, data).map_err(Problem::internal)?;
            Ok((image.width, image.height))
        })
        .await?;
    let body = json!({ "uri": format!("store://{key}"), "width": width, "height": height });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
