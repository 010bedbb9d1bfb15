//! The HTTP gateway (axum): the surface retailers, operators and ops use.
//!
//! - **Tasks** (`/v1/tasks...`): create with an idempotency key, summary, events (paged, and
//!   live as Server-Sent Events), state as of a version or an instant, result.
//! - **Operators** (`/v1/operator/...`): the queue (the projector's `operator_queue` view, by
//!   project, team and skill), version-guarded assignment, leases kept alive by heartbeats and
//!   released when they expire ([`leases`]), the task as the annotation tool needs it, and the
//!   whole session sent in bulk through the session summarizer.
//! - **Models** (`/v1/models...`): list, register a TorchScript artifact, train, promote.
//! - **The annotation tool** (`/ui/`), and the OpenAPI document (`/openapi.json`, checked in as
//!   `services/gateway/openapi.json`).
//!
//! Every `/v1` request carries `Authorization: Bearer <token>`; tokens name a tenant, an
//! operator or an admin ([`visionlog_tenants`]). A tenant sees and changes only its own tasks
//! and models: another tenant's task is answered 404 exactly like a missing one. Errors are
//! problem details with stable codes ([`problem`]). Bodies are limited in size.
//!
//! The gateway writes nothing but commands: every change goes through the aggregator, whose
//! outcome it waits for ([`outcomes`]).

mod admin;
pub mod leases;
mod models;
mod operators;
pub mod outcomes;
pub mod problem;
mod tasks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use problem::{ApiResult, Problem};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use visionlog_codec::Codec;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::TaskCommand;
use visionlog_journal::{CommandBus, RecordedEvent, Topics};
use visionlog_log::EventLog;
use visionlog_store::ReadStore;
use visionlog_tenants::{Principal, Tenants};

pub use outcomes::Outcomes;

/// The OpenAPI document, as checked in.
pub const OPENAPI: &str = include_str!("../openapi.json");
const UI_HTML: &str = include_str!("../ui/index.html");
const UI_JS: &str = include_str!("../ui/app.js");

/// Limits and timings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest upload (an image, a TorchScript module).
    pub max_upload_bytes: usize,
    /// How long a request waits for the aggregator's outcome before answering 202.
    pub outcome_wait: Duration,
    /// How long an operator's lease lasts without a heartbeat.
    pub lease: Duration,
    /// Most events per page.
    pub max_page: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_upload_bytes: 64 << 20,
            outcome_wait: Duration::from_secs(10),
            lease: Duration::from_secs(120),
            max_page: 500,
        }
    }
}

/// What the gateway reads and writes.
pub struct Gateway {
    /// The log (one history: hot and cold).
    pub log: Arc<dyn EventLog>,
    /// The codec.
    pub codec: Arc<Codec>,
    /// The topics.
    pub topics: Topics,
    /// Where commands go.
    pub bus: CommandBus,
    /// The read models.
    pub store: Arc<dyn ReadStore>,
    /// Images and artifacts.
    pub objects: visionlog_objects::Objects,
    /// The model streams.
    pub registry: Arc<visionlog_models::Registry>,
    /// Checks and stores imported model artifacts (libtorch lives behind it, not here).
    pub artifacts: Arc<dyn visionlog_models::ArtifactImport>,
    /// Who may call.
    pub tenants: Arc<Tenants>,
    /// The SSRF guard for callback and image URLs.
    pub guard: visionlog_netguard::UrlGuard,
    /// Limits and timings.
    pub config: GatewayConfig,
    /// The outcome reader.
    pub outcomes: Outcomes,
    /// Set when the process stops (ends live streams).
    pub stop: Arc<AtomicBool>,
}

type Gw = State<Arc<Gateway>>;

/// The routes: (method, path) as in the OpenAPI document (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/ping"),
    ("post", "/v1/admin/tasks/reprocess"),
    ("post", "/v1/admin/batches/{correlation_id}/undo"),
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks/{task_id}"),
    ("get", "/v1/tasks/{task_id}/events"),
    ("get", "/v1/tasks/{task_id}/events/stream"),
    ("get", "/v1/tasks/{task_id}/state"),
    ("get", "/v1/tasks/{task_id}/result"),
    ("post", "/v1/tasks/{task_id}/cancel"),
    ("post", "/v1/images"),
    ("get", "/v1/operator/queue"),
    ("get", "/v1/operator/tasks/{task_id}"),
    ("get", "/v1/operator/tasks/{task_id}/images/{index}"),
    ("post", "/v1/operator/tasks/{task_id}/assign"),
    ("post", "/v1/operator/tasks/{task_id}/heartbeat"),
    ("post", "/v1/operator/tasks/{task_id}/release"),
    ("post", "/v1/operator/tasks/{task_id}/session"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{class_group}"),
    ("post", "/v1/models/{class_group}/artifacts"),
    ("post", "/v1/models/{class_group}/train"),
    ("post", "/v1/models/{class_group}/promote"),
];

/// The router of the gateway.
pub fn router(gw: Arc<Gateway>) -> Router {
    // a declared length over the limit is refused before the body is read; a body that turns
    // out longer than it says is cut at the limit while it is read
    let (json_max, upload_max) = (gw.config.max_body_bytes, gw.config.max_upload_bytes);
    let limit = |max: usize| {
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(max, refuse_oversized))
            .layer(DefaultBodyLimit::max(max))
    };
    Router::new()
        .route("/v1/ping", get(|| async { axum::Json(serde_json::json!({ "ok": true })) }))
        .route("/v1/tasks", post(tasks::create).layer(limit(json_max)))
        .route("/v1/tasks/{task_id}", get(tasks::summary))
        .route("/v1/tasks/{task_id}/events", get(tasks::events))
        .route("/v1/tasks/{task_id}/events/stream", get(tasks::stream))
        .route("/v1/tasks/{task_id}/state", get(tasks::state))
        .route("/v1/tasks/{task_id}/result", get(tasks::result))
        .route("/v1/tasks/{task_id}/cancel", post(tasks::cancel).layer(limit(json_max)))
        .route("/v1/images", post(tasks::upload_image).layer(limit(upload_max)))
        .route("/v1/operator/queue", get(operators::queue))
        .route("/v1/operator/tasks/{task_id}", get(operators::task))
        .route("/v1/operator/tasks/{task_id}/images/{index}", get(operators::image))
        .route("/v1/operator/tasks/{task_id}/assign", post(operators::assign).layer(limit(json_max)))
        .route("/v1/operator/tasks/{task_id}/heartbeat", post(operators::heartbeat).layer(limit(json_max)))
        .route("/v1/operator/tasks/{task_id}/release", post(operators::release).layer(limit(json_max)))
        .route("/v1/operator/tasks/{task_id}/session", post(operators::session).layer(limit(json_max)))
        .route("/v1/admin/tasks/reprocess", post(admin::reprocess).layer(limit(json_max)))
        .route("/v1/admin/batches/{correlation_id}/undo", post(admin::undo).layer(limit(json_max)))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{class_group}", get(models::show))
        .route("/v1/models/{class_group}/artifacts", post(models::register).layer(limit(upload_max)))
        .route("/v1/models/{class_group}/train", post(models::train).layer(limit(json_max)))
        .route("/v1/models/{class_group}/promote", post(models::promote).layer(limit(json_max)))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/ui", get(|| async { axum::response::Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { axum::response::Html(UI_HTML) }))
        .route("/ui/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], UI_JS) }))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "the endpoint does not take this method")
        })
        .layer(axum::middleware::from_fn(traced))
        .with_state(gw)
}

/// `413` for a request whose `Content-Length` exceeds `max`, without reading its body.
async fn refuse_oversized(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is {len} bytes; at most {max} are accepted here"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

/// Each request in a span of its own (commands sent inside carry its trace context).
async fn traced(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!("http", otel.name = %format!("{} {}", req.method(), req.uri().path()));
    next.run(req).instrument(span).await
}

/// The caller, from `Authorization: Bearer <token>`.
fn principal(gw: &Gateway, headers: &HeaderMap) -> ApiResult<Principal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "send Authorization: Bearer <token>"));
    };
    // the scheme is case-insensitive (RFC 9110)
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
        .map(str::trim)
        .unwrap_or("");
    gw.tenants
        .authenticate(token)
        .cloned()
        .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "invalid_token", "the token is not known"))
}

/// What a command's sending came to.
pub(crate) enum Sent {
    /// The aggregator decided it.
    Decided(visionlog_codec::Outcome),
    /// No outcome within the wait: it is in the log and will be decided.
    Pending,
}

impl Gateway {
    /// Runs blocking backend work off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Gateway) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let gw = self.clone();
        tokio::task::spawn_blocking(move || f(&gw)).await.map_err(Problem::internal)?
    }

    /// Sends commands (in order, one partition) and waits for the last one's outcome, and the
    /// first rejection before it if any.
    pub(crate) async fn send(self: &Arc<Self>, commands: Vec<(CommandEnvelope, TaskCommand)>) -> ApiResult<Sent> {
        let pending: Vec<_> = commands.iter().map(|(e, _)| self.outcomes.register(&e.command_id)).collect();
        self.blocking(move |gw| gw.bus.send_batch(&commands).map(|_| ()).map_err(Problem::internal)).await?;
        let deadline = tokio::time::Instant::now() + self.config.outcome_wait;
        let mut last = None;
        for p in pending {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match p.wait(left).await {
                Some(o) if !o.accepted => return Ok(Sent::Decided(o)),
                Some(o) => last = Some(o),
                None => return Ok(Sent::Pending),
            }
        }
        Ok(last.map_or(Sent::Pending, Sent::Decided))
    }

    /// A task's history, if the caller may see it (else the same 404 as a missing task).
    pub(crate) fn history_for(&self, who: &Principal, task_id: &str) -> ApiResult<Vec<RecordedEvent>> {
        if !visionlog_domain::is_valid_task_id(task_id, 128) {
            return Err(Problem::task_not_found(task_id));
        }
        let history = visionlog_journal::task_events(self.log.as_ref(), &self.codec, &self.topics, task_id, 0)
            .map_err(Problem::internal)?;
        let Some(first) = history.first() else { return Err(Problem::task_not_found(task_id)) };
        if !self.may_see(who, &first.envelope.tenant) {
            return Err(Problem::task_not_found(task_id));
        }
        Ok(history)
    }

    /// Whether `who` may see a task of `customer`.
    pub(crate) fn may_see(&self, who: &Principal, customer: &str) -> bool {
        match who {
            Principal::Tenant(t) => t == customer,
            Principal::Admin(_) => true,
            Principal::Operator(o) => {
                self.tenants.operator(o).is_some_and(|op| self.tenants.customers_of(op).iter().any(|c| c == customer))
            }
        }
    }
}

/// A running gateway.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` and serves until `gw.stop` is set (in-flight requests finish; live streams
    /// end). Also runs the lease reaper ([`leases::Reaper`]).
    pub fn start(gw: Arc<Gateway>, addr: SocketAddr) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let reaper = leases::Reaper::new(gw.clone());
        let thread = std::thread::Builder::new().name("gateway".into()).spawn(move || {
            let stop = gw.stop.clone();
            runtime.spawn(reaper.run());
            let app = router(gw);
            let result = runtime.block_on(async move {
                // small answers go out at once (no Nagle delay behind a client's delayed ACK)
                use axum::serve::ListenerExt;
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        while !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    })
                    .await
            });
            runtime.shutdown_timeout(Duration::from_secs(5));
            result
        })?;
        tracing::info!(%addr, "gateway listening");
        Ok(Self { addr, thread })
    }

    /// Waits for it to stop.
    pub fn join(self) -> std::io::Result<()> {
        self.thread.join().map_err(|_| std::io::Error::other("the gateway panicked"))?
    }
}

/// The answer for a command the aggregator has not decided within the wait.
pub(crate) fn accepted_pending(location: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.to_owned())],
        axum::Json(serde_json::json!({ "status": "pending", "location": location })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), p.clone())))
            .collect();
        let mut routed: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        // every reference resolves
        let text = OPENAPI.to_owned();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is referenced but not defined");
        }
    }

    #[test]
    fn problems_carry_stable_codes_and_statuses() {
        assert_eq!(Problem::rejected("version_conflict", "x").status, StatusCode::CONFLICT);
        assert_eq!(Problem::rejected("invalid_box", "x").code, "invalid_box");
        assert_eq!(Problem::rejected("something_new", "x").code, "rejected");
        assert_eq!(Problem::task_not_found("t").status, StatusCode::NOT_FOUND);
    }
}
