//! The Operator Manager (seed 000): people who fix, check and annotate what the models could
//! not do, and the rules they work under.
//!
//! - **The queue** (`GET /v1/operator/queue`): the projector's `operator_queue` view, shown to an
//!   operator by its teams' customers, its skills, a project and whether anyone holds the task
//!   ([`rules::shown`]).
//! - **Assignment** (`POST .../assign`): version-guarded, so of two operators taking the same
//!   task one gets it and the other `409`; the operator must have the skill the task waits for
//!   ([`rules::may_take`]).
//! - **Leases** ([`leases`]): a session stays the operator's while the tool sends heartbeats; a
//!   [`leases::Reaper`] gives expired ones back to the queue.
//! - **Sessions** (`POST .../session`): the tool's actions in bulk, turned by the session
//!   summarizer into at most one remove, one add and one label command, decided here first by
//!   the domain's pure rules so a session is refused whole rather than half applied.
//! - **The annotation tool** (`/ui/`), a page of plain JavaScript over these endpoints.
//!
//! Quality-check sampling is decided where every next step of a task is, in the executor (per
//! customer, from the tenants file); the Operator Manager serves the checks it asks for.
//!
//! Its routes are served beside the gateway's on one port; the binary merges them
//! ([`router`]) and runs the reaper ([`reaper`]).

pub mod leases;
mod routes;
pub mod rules;

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use std::sync::Arc;
use visionlog_http::{Api, Background, limited};

const UI_HTML: &str = include_str!("../ui/index.html");
const UI_JS: &str = include_str!("../ui/app.js");

/// The routes: (method, path) as in the OpenAPI document (checked by a test of the binary).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/operator/queue"),
    ("get", "/v1/operator/tasks/{task_id}"),
    ("get", "/v1/operator/tasks/{task_id}/images/{index}"),
    ("post", "/v1/operator/tasks/{task_id}/assign"),
    ("post", "/v1/operator/tasks/{task_id}/heartbeat"),
    ("post", "/v1/operator/tasks/{task_id}/release"),
    ("post", "/v1/operator/tasks/{task_id}/session"),
];

/// The Operator Manager's routes, and the annotation tool.
pub fn router(api: &Api) -> Router<Arc<Api>> {
    let json_max = api.config.max_body_bytes;
    Router::new()
        .route("/v1/operator/queue", get(routes::queue))
        .route("/v1/operator/tasks/{task_id}", get(routes::task))
        .route("/v1/operator/tasks/{task_id}/images/{index}", get(routes::image))
        .route("/v1/operator/tasks/{task_id}/assign", limited(post(routes::assign), json_max))
        .route("/v1/operator/tasks/{task_id}/heartbeat", limited(post(routes::heartbeat), json_max))
        .route("/v1/operator/tasks/{task_id}/release", limited(post(routes::release), json_max))
        .route("/v1/operator/tasks/{task_id}/session", limited(post(routes::session), json_max))
        .route("/ui", get(|| async { axum::response::Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { axum::response::Html(UI_HTML) }))
        .route("/ui/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], UI_JS) }))
}

/// The lease reaper, to run beside the routes.
pub fn reaper(api: Arc<Api>) -> Background {
    Box::pin(leases::Reaper::new(api).run())
}
