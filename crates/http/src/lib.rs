//! What every HTTP surface of visionlog shares.
//!
//! visionlog answers HTTP on one port with the routes of several services: the gateway's
//! (tasks, images, models, the task manager for ops, the OpenAPI document) and the Operator
//! Manager's (queue, assignment, leases, sessions, the annotation tool). The binary merges their
//! routers and starts one [`Server`]; this crate is what those routes stand on:
//!
//! - [`Api`]: the backends they read and write, the tenants, limits and timings;
//! - authentication ([`principal`]): every `/v1` request carries `Authorization: Bearer
//!   <token>`; tokens name a tenant, an operator or an admin ([`visionlog_tenants`]). A tenant
//!   sees only its own tasks: another tenant's task is answered 404 exactly like a missing one
//!   ([`Api::history_for`]);
//! - errors as problem details with stable codes ([`problem`]);
//! - commands sent and their outcome awaited ([`Api::send`], [`outcomes`]): an HTTP surface
//!   writes nothing but commands, and every change goes through the aggregator;
//! - request parts and answers ([`request`]), body limits ([`limited`]), a span per request.

pub mod outcomes;
pub mod problem;
pub mod request;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use problem::{ApiResult, Problem};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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

/// Limits and timings.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest upload (an image, a TorchScript module).
    pub max_upload_bytes: usize,
    /// How long a request waits for the aggregator's outcome before answering 202.
    pub outcome_wait: Duration,
    /// How long an operator's lease lasts without a heartbeat.
    pub lease: Duration,
    /// Most events (or rows) per page.
    pub max_page: usize,
    /// Most live event streams (SSE) open at once, in all; each holds a thread of the blocking pool.
    pub max_streams: usize,
    /// Most live event streams one tenant (or operator, or admin) holds open at once.
    pub max_streams_per_caller: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_upload_bytes: 64 << 20,
            outcome_wait: Duration::from_secs(10),
            lease: Duration::from_secs(120),
            max_page: 500,
            max_streams: 256,
            max_streams_per_caller: 32,
        }
    }
}

/// What the HTTP surfaces read and write.
pub struct Api {
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
    pub config: ApiConfig,
    /// The outcome reader.
    pub outcomes: Outcomes,
    /// Set when the process stops (ends live streams and background loops).
    pub stop: Arc<AtomicBool>,
    /// The live streams open, in all and per caller.
    pub streams: StreamSlots,
}

/// Counts the live streams open, in all and per caller, against [`ApiConfig::max_streams`] and
/// [`ApiConfig::max_streams_per_caller`].
#[derive(Default)]
pub struct StreamSlots {
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// One open stream; dropping it frees the slot.
pub struct StreamSlot {
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    caller: String,
}

impl StreamSlots {
    /// Takes a slot for `caller`, or says which limit is reached.
    pub fn take(&self, caller: &str, config: &ApiConfig) -> Result<StreamSlot, Problem> {
        let mut open = self.open.lock().expect("stream slots");
        let total: usize = open.values().sum();
        let mine = open.get(caller).copied().unwrap_or(0);
        if total >= config.max_streams || mine >= config.max_streams_per_caller {
            let which = if mine >= config.max_streams_per_caller { "of this caller" } else { "in all" };
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("the most live streams {which} are open; close one or poll GET /v1/tasks/{{id}}/events"),
            ));
        }
        *open.entry(caller.to_owned()).or_default() += 1;
        Ok(StreamSlot { open: self.open.clone(), caller: caller.to_owned() })
    }

    /// The streams open now, in all.
    pub fn open(&self) -> usize {
        self.open.lock().expect("stream slots").values().sum()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("stream slots");
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// The state every handler extracts.
pub type ApiState = State<Arc<Api>>;

/// The caller, from `Authorization: Bearer <token>`.
pub fn principal(api: &Api, headers: &HeaderMap) -> ApiResult<Principal> {
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
    api.tenants
        .authenticate(token)
        .cloned()
        .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "invalid_token", "the token is not known"))
}

/// What a command's sending came to.
pub enum Sent {
    /// The aggregator decided it.
    Decided(visionlog_codec::Outcome),
    /// No outcome within the wait: it is in the log and will be decided.
    Pending,
}

impl Api {
    /// Runs blocking backend work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Api) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || f(&api)).await.map_err(Problem::internal)?
    }

    /// Sends commands (in order, one partition) and waits for the last one's outcome, and the
    /// first rejection before it if any.
    pub async fn send(self: &Arc<Self>, commands: Vec<(CommandEnvelope, TaskCommand)>) -> ApiResult<Sent> {
        let pending: Vec<_> = commands.iter().map(|(e, _)| self.outcomes.register(&e.command_id)).collect();
        self.blocking(move |api| api.bus.send_batch(&commands).map(|_| ()).map_err(Problem::internal)).await?;
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
    pub fn history_for(&self, who: &Principal, task_id: &str) -> ApiResult<Vec<RecordedEvent>> {
        if !visionlog_domain::is_valid_task_id(task_id, 128) {
            return Err(Problem::task_not_found(task_id));
        }
        let history = visionlog_views::task_history(self.history_source(), task_id).map_err(Problem::internal)?;
        let Some(first) = history.first() else { return Err(Problem::task_not_found(task_id)) };
        if !self.may_see(who, &first.envelope.tenant) {
            return Err(Problem::task_not_found(task_id));
        }
        Ok(history)
    }

    /// Where task histories are read: the read side's per-task index and the journal's tail.
    pub fn history_source(&self) -> visionlog_views::HistorySource<'_> {
        visionlog_views::HistorySource {
            log: self.log.as_ref(),
            codec: &self.codec,
            topics: &self.topics,
            store: self.store.as_ref(),
        }
    }

    /// Whether `who` may see a task of `customer`.
    pub fn may_see(&self, who: &Principal, customer: &str) -> bool {
        match who {
            Principal::Tenant(t) => t == customer,
            Principal::Admin(_) => true,
            Principal::Operator(o) => {
                self.tenants.operator(o).is_some_and(|op| self.tenants.customers_of(op).iter().any(|c| c == customer))
            }
        }
    }
}

/// A route whose body is limited to `max` bytes: a declared length over the limit is refused
/// before the body is read; a body that turns out longer than it says is cut at the limit while
/// it is read.
pub fn limited(route: MethodRouter<Arc<Api>>, max: usize) -> MethodRouter<Arc<Api>> {
    route.layer(DefaultBodyLimit::max(max)).layer(axum::middleware::from_fn_with_state(max, refuse_oversized))
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

/// The app: `routes` (the services' routers, merged), with problem answers for unknown paths
/// and methods and a span per request.
pub fn app(api: Arc<Api>, routes: Router<Arc<Api>>) -> Router {
    routes
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "the endpoint does not take this method")
        })
        .layer(axum::middleware::from_fn(traced))
        .with_state(api)
}

/// A loop a service runs beside its routes while the server runs (the Operator Manager's lease
/// reaper); it ends when [`Api::stop`] is set.
pub type Background = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running HTTP server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` and serves `routes` until `api.stop` is set (in-flight requests finish; live
    /// streams end), running `background` beside them.
    pub fn start(
        api: Arc<Api>,
        routes: Router<Arc<Api>>,
        background: Vec<Background>,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("http").enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            let stop = api.stop.clone();
            for job in background {
                runtime.spawn(job);
            }
            let app = app(api, routes);
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
        tracing::info!(%addr, "HTTP listening");
        Ok(Self { addr, thread })
    }

    /// Waits for it to stop.
    pub fn join(self) -> std::io::Result<()> {
        self.thread.join().map_err(|_| std::io::Error::other("the HTTP server panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_stable_codes_and_statuses() {
        assert_eq!(Problem::rejected("version_conflict", "x").status, StatusCode::CONFLICT);
        assert_eq!(Problem::rejected("invalid_box", "x").code, "invalid_box");
        assert_eq!(Problem::rejected("something_new", "x").code, "rejected");
        assert_eq!(Problem::task_not_found("t").status, StatusCode::NOT_FOUND);
    }
}
