//! The HTTP gateway (axum): the surface retailers and ops use.
//!
//! - **Tasks** (`/v1/tasks...`): create with an idempotency key, summary, events (paged, and
//!   live as Server-Sent Events), state as of a version or an instant, result, cancel; image
//!   uploads (`/v1/images`).
//! - **Models** (`/v1/models...`): list, register a TorchScript artifact, train, promote.
//! - **The task manager for ops** (`/v1/admin/...`): process tasks again, send them back to
//!   operators, undo a faulty batch.
//! - **The OpenAPI document** (`/openapi.json`, checked in as `services/gateway/openapi.json`),
//!   which also describes the Operator Manager's `/v1/operator/...` routes served beside these.
//!
//! Authentication, problem details, body limits and the wait for the aggregator's outcome are
//! the HTTP kit's ([`visionlog_http`]); a tenant sees and changes only its own tasks and models.

mod admin;
mod models;
mod tasks;

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use std::sync::Arc;
use visionlog_http::{Api, limited};

/// The OpenAPI document of every route served (the gateway's and the Operator Manager's).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The routes: (method, path) as in the OpenAPI document (checked by a test of the binary).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/ping"),
    ("post", "/v1/admin/tasks/reprocess"),
    ("post", "/v1/admin/tasks/redeliver"),
    ("post", "/v1/admin/batches/{correlation_id}/undo"),
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks/{task_id}"),
    ("get", "/v1/tasks/{task_id}/events"),
    ("get", "/v1/tasks/{task_id}/events/stream"),
    ("get", "/v1/tasks/{task_id}/state"),
    ("get", "/v1/tasks/{task_id}/result"),
    ("post", "/v1/tasks/{task_id}/cancel"),
    ("post", "/v1/images"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{class_group}"),
    ("post", "/v1/models/{class_group}/artifacts"),
    ("post", "/v1/models/{class_group}/train"),
    ("post", "/v1/models/{class_group}/promote"),
];

/// The gateway's routes.
pub fn router(api: &Api) -> Router<Arc<Api>> {
    let (json_max, upload_max) = (api.config.max_body_bytes, api.config.max_upload_bytes);
    Router::new()
        .route("/v1/ping", get(|| async { axum::Json(serde_json::json!({ "ok": true })) }))
        .route("/v1/tasks", limited(post(tasks::create), json_max))
        .route("/v1/tasks/{task_id}", get(tasks::summary))
        .route("/v1/tasks/{task_id}/events", get(tasks::events))
        .route("/v1/tasks/{task_id}/events/stream", get(tasks::stream))
        .route("/v1/tasks/{task_id}/state", get(tasks::state))
        .route("/v1/tasks/{task_id}/result", get(tasks::result))
        .route("/v1/tasks/{task_id}/cancel", limited(post(tasks::cancel), json_max))
        .route("/v1/images", limited(post(tasks::upload_image), upload_max))
        .route("/v1/admin/tasks/reprocess", limited(post(admin::reprocess), json_max))
        .route("/v1/admin/tasks/redeliver", limited(post(admin::redeliver), json_max))
        .route("/v1/admin/batches/{correlation_id}/undo", limited(post(admin::undo), json_max))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{class_group}", get(models::show))
        .route("/v1/models/{class_group}/artifacts", limited(post(models::register), upload_max))
        .route("/v1/models/{class_group}/train", limited(post(models::train), json_max))
        .route("/v1/models/{class_group}/promote", limited(post(models::promote), json_max))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
}
