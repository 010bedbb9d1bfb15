//! The webhook sink: every result (`TaskResultGenerated`) of a task with a callback URL is
//! POSTed there, and each try is recorded on the task as an event.
//!
//! - **Signed**: `Visionlog-Timestamp: <unix s>` and `Visionlog-Signature: t=<ts>,v1=<hex>`,
//!   the HMAC-SHA256 of `"<ts>.<body>"` under each of the tenant's secrets (newest first, so a
//!   receiver can rotate: see [`sign`] and docs/integration.md).
//! - **Idempotent**: `Idempotency-Key: <task id>:<revision>`, the same on every try and every
//!   redelivery of the same result.
//! - **Retried**: 5xx, 408, 429, timeouts and connection failures are tried again after an
//!   exponential backoff with jitter, up to [`WebhookConfig::max_attempts`]; other answers are
//!   final. Each try becomes `RecordReport` → `TaskReported` or `ReportFailed`, and the next
//!   try is driven by the `ReportFailed` event, so retries survive a restart. After the last
//!   try the result is dead-lettered.
//! - **Bounded**: at most [`WebhookConfig::per_endpoint`] requests in flight per endpoint
//!   (scheme, host, port) and process ([`Deliveries`] is shared by the partitions' sinks), so
//!   one slow receiver cannot take every connection.
//! - **Guarded**: the URL is checked by the SSRF guard ([`visionlog_netguard`]) at every try
//!   and the request goes to the addresses it checked; redirects are not followed.
//!
//! Deliveries run on the sink's own runtime, so a slow endpoint never blocks the partition;
//! the consumer does not commit its position while a delivery is in flight (at least once).

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use visionlog_codec::envelope::{CommandEnvelope, EventEnvelope};
use visionlog_domain::{RecordReport, TaskCommand, TaskEvent, TaskResultGenerated};
use visionlog_journal::{CommandBus, ConsumeError, EventHandler, HandledEvent, deterministic_id, now_ms};
use visionlog_netguard::UrlGuard;
use visionlog_store::{Put, ReadStore, Row};

/// The consumer group of the sink.
pub const GROUP: &str = "webhooks";

/// The read-store table of callback URLs by task (written when the sink sees a task created).
pub const CALLBACKS: &str = "webhook_callbacks";

/// The signature header.
pub const SIGNATURE_HEADER: &str = "visionlog-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "visionlog-timestamp";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A tenant's signing secrets, newest first.
pub type Secrets = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// Reads a task's events from the journal (for a task whose creation the sink has not seen).
pub type History = Box<dyn Fn(&str) -> Result<Vec<visionlog_journal::RecordedEvent>, String> + Send>;

/// A result the sink may have to deliver again: revision, body, and its (partition, offset).
type LatestResult = (u32, Arc<Vec<u8>>, (u32, u64));

/// Tries, backoff, timeouts and limits.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Tries per result.
    pub max_attempts: u32,
    /// The first backoff; doubled each try.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// How long one request may take.
    pub timeout: Duration,
    /// Requests in flight per endpoint.
    pub per_endpoint: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            per_endpoint: 4,
        }
    }
}

impl WebhookConfig {
    /// The wait before try `attempt + 1`: `base * 2^(attempt-1)`, capped, with jitter (a random
    /// point in its upper half), so that receivers coming back are not hit all at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let d = exp.min(self.max_backoff);
        let half = d / 2;
        half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis().max(1) as u64))
    }
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds): one `v1=` per
/// secret.
pub fn sign(secrets: &[String], timestamp: i64, body: &[u8]) -> String {
    let mut out = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(",v1=");
        out.push_str(&hex);
    }
    out
}

/// Whether a signature header is valid for `body` under `secret` and not older than
/// `tolerance_s` at `now_s` (what a receiver does; used by the tests).
pub fn verify(header: &str, secret: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let expected = sign(&[secret.to_owned()], t, body);
    let want = expected.rsplit("v1=").next().unwrap_or("");
    // constant-time comparison of equal-length hex strings
    sigs.iter()
        .any(|s| s.len() == want.len() && s.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
}

/// One delivery try.
#[derive(Clone, Debug)]
struct Job {
    task_id: String,
    tenant: String,
    revision: u32,
    attempt: u32,
    url: String,
    body: Arc<Vec<u8>>,
    /// The envelope of the event that asked for this try (its id makes the command ids).
    cause: EventEnvelope,
    /// Where the result lies in `events`, for the dead letter.
    result_at: (u32, u64),
    delay: Duration,
}

/// What the sink remembers of a task.
#[derive(Clone, Debug, Default)]
struct Known {
    callback: Option<String>,
    latest_revision: u32,
    /// The latest result's body and place, for retries.
    result: Option<LatestResult>,
}

/// Tasks remembered before the memory is cleared (the journal answers after that).
const MAX_KNOWN: usize = 100_000;

/// The sink: an [`EventHandler`] for the `webhooks` group, one per partition, all of a process
/// delivering through one [`Deliveries`].
pub struct WebhookSink {
    deliveries: Arc<Deliveries>,
    /// This partition's deliveries not yet recorded: its position is not committed past them.
    in_flight: Arc<AtomicUsize>,
    known: HashMap<String, Known>,
    store: Arc<dyn ReadStore>,
    history: History,
}

/// The delivery engine of a process: its own runtime, and the per-endpoint limits every
/// partition's sink shares.
pub struct Deliveries {
    inner: Arc<Inner>,
    /// Dropped from the thread that drops the engine, never from one of its own tasks.
    runtime: tokio::runtime::Runtime,
}

struct Inner {
    bus: CommandBus,
    guard: UrlGuard,
    config: WebhookConfig,
    secrets: Secrets,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    latest: Mutex<HashMap<String, u32>>,
}

impl Deliveries {
    /// An engine that sends through `bus`, guarded by `guard`, signing with `secrets`.
    pub fn new(
        bus: CommandBus,
        guard: UrlGuard,
        config: WebhookConfig,
        secrets: Secrets,
    ) -> std::io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("webhooks")
            .enable_all()
            .build()?;
        let inner =
            Arc::new(Inner { bus, guard, config, secrets, endpoints: Mutex::default(), latest: Mutex::default() });
        Ok(Arc::new(Self { inner, runtime }))
    }
}

/// The payload of a result.
fn payload(task_id: &str, tenant: &str, at: &EventEnvelope, e: &TaskResultGenerated) -> Vec<u8> {
    serde_json::json!({
        "type": "task.result", "task_id": task_id, "customer": tenant, "revision": e.revision,
        "source": e.source, "model": e.model, "objects": e.objects, "event_id": at.event_id,
        "recorded_at_ms": at.recorded_at_ms,
    })
    .to_string()
    .into_bytes()
}

impl WebhookSink {
    /// A partition's sink delivering through `deliveries`. It records each task's callback URL
    /// in `store` (`webhook_callbacks`) when it sees the task created, so after a restart it
    /// finds it with a point read; `history` reads a task's events back only for a retry whose
    /// result came before the process started.
    pub fn new(deliveries: Arc<Deliveries>, store: Arc<dyn ReadStore>, history: History) -> Self {
        Self { deliveries, in_flight: Arc::default(), known: HashMap::new(), store, history }
    }

    /// A sink that reads a task's history from the read side's per-task index and the journal's
    /// tail on `log` (in time proportional to the task).
    pub fn over_journal(
        deliveries: Arc<Deliveries>,
        store: Arc<dyn ReadStore>,
        log: Arc<dyn visionlog_log::EventLog>,
        codec: Arc<visionlog_codec::Codec>,
        topics: visionlog_journal::Topics,
    ) -> Self {
        let index = store.clone();
        let history = Box::new(move |task: &str| {
            let source = visionlog_views::HistorySource {
                log: log.as_ref(),
                codec: &codec,
                topics: &topics,
                store: index.as_ref(),
            };
            visionlog_views::task_history(source, task).map_err(|e| e.to_string())
        });
        Self::new(deliveries, store, history)
    }

    /// What the sink knows of the task of `e`, from memory, the store or (rarely) the journal;
    /// and whether `e` itself is already folded in (it is when the journal was read).
    fn known(&mut self, e: &HandledEvent<'_>) -> Result<(&mut Known, bool), ConsumeError> {
        let task_id = &e.envelope.task_id;
        let mut read_back = false;
        if !self.known.contains_key(task_id) {
            if self.known.len() >= MAX_KNOWN {
                self.known.clear();
            }
            let row = self.store.get(CALLBACKS, task_id, "").map_err(|e| ConsumeError::Transient(e.to_string()))?;
            let mut k =
                Known { callback: row.map(|r| String::from_utf8_lossy(&r.value).into_owned()), ..Known::default() };
            if k.callback.is_some() && !matches!(e.event, TaskEvent::TaskResultGenerated(_)) {
                // a retry of a result this process has not seen: read the task back
                for r in (self.history)(task_id).map_err(ConsumeError::Transient)? {
                    remember(&mut k, e.partition, r.offset, &r.envelope, &r.event);
                }
                read_back = true;
            }
            self.known.insert(task_id.clone(), k);
        }
        Ok((self.known.get_mut(task_id).expect("inserted above"), read_back))
    }

    fn start(&self, job: Job) {
        let (inner, in_flight) = (self.deliveries.inner.clone(), self.in_flight.clone());
        in_flight.fetch_add(1, Ordering::SeqCst);
        self.deliveries.runtime.spawn(async move {
            deliver(&inner, job).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Folds an event into what the sink knows of its task.
fn remember(k: &mut Known, partition: u32, offset: u64, env: &EventEnvelope, event: &TaskEvent) {
    match event {
        TaskEvent::TaskCreated(c) => k.callback = c.callback_url.clone(),
        TaskEvent::TaskResultGenerated(e) => {
            k.latest_revision = e.revision;
            // the body is kept only while it may have to be sent (again)
            k.result = k
                .callback
                .is_some()
                .then(|| (e.revision, Arc::new(payload(&env.task_id, &env.tenant, env, e)), (partition, offset)));
        }
        TaskEvent::TaskReported(_) => k.result = None,
        TaskEvent::ReportFailed(f) if f.last_attempt => k.result = None,
        _ => {}
    }
}

impl EventHandler for WebhookSink {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        let env = e.envelope;
        let interesting = matches!(
            e.event,
            TaskEvent::TaskCreated(_)
                | TaskEvent::TaskResultGenerated(_)
                | TaskEvent::ReportFailed(_)
                | TaskEvent::TaskReported(_)
        );
        if !interesting {
            return Ok(());
        }
        if let TaskEvent::TaskCreated(c) = e.event {
            // a new task: all there is to know is in its first event; the callback is recorded
            // before the position moves past it
            if let Some(url) = &c.callback_url {
                let row = Row {
                    partition: env.task_id.clone(),
                    clustering: String::new(),
                    version: 1,
                    value: url.clone().into_bytes(),
                };
                self.store
                    .put(&[Put { table: CALLBACKS.into(), row }])
                    .map_err(|e| ConsumeError::Transient(e.to_string()))?;
            }
            if self.known.len() >= MAX_KNOWN {
                self.known.clear();
            }
            let known = Known { callback: c.callback_url.clone(), ..Known::default() };
            self.known.insert(env.task_id.clone(), known);
            return Ok(());
        }
        let (k, read_back) = self.known(&e)?;
        if !read_back {
            remember(k, e.partition, e.offset, env, e.event);
        }
        let k = k.clone();
        let Some(url) = k.callback.clone() else { return Ok(()) };
        let next = match e.event {
            TaskEvent::TaskResultGenerated(r) => Some((r.revision, 1, Duration::ZERO)),
            TaskEvent::ReportFailed(f) if !f.last_attempt && f.revision == k.latest_revision => {
                Some((f.revision, f.attempt + 1, self.deliveries.inner.config.backoff(f.attempt)))
            }
            _ => None,
        };
        let Some((revision, attempt, delay)) = next else { return Ok(()) };
        let Some((rev, body, at)) = k.result.clone().filter(|(rev, ..)| *rev == revision) else { return Ok(()) };
        self.deliveries.inner.latest.lock().expect("latest revisions").insert(env.task_id.clone(), k.latest_revision);
        self.start(Job {
            task_id: env.task_id.clone(),
            tenant: env.tenant.clone(),
            revision: rev,
            attempt,
            url,
            body,
            cause: env.clone(),
            result_at: at,
            delay,
        });
        Ok(())
    }

    fn holding(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }
}

/// How one try ended.
enum Tried {
    Delivered(u16),
    /// Worth another try.
    Retry(Option<u16>, String),
    /// Not worth another try.
    Final(Option<u16>, String),
}

async fn deliver(shared: &Arc<Inner>, job: Job) {
    tokio::time::sleep(job.delay).await;
    let endpoint = endpoint_of(&job.url);
    let permits = shared
        .endpoints
        .lock()
        .expect("endpoint limits")
        .entry(endpoint)
        .or_insert_with(|| Arc::new(Semaphore::new(shared.config.per_endpoint)))
        .clone();
    let tried = {
        let _permit = permits.acquire().await.expect("the semaphore is never closed");
        try_once(shared, &job).await
    };
    let max = shared.config.max_attempts;
    let (delivered, status, error, last, outcome) = match tried {
        Tried::Delivered(s) => (true, Some(s), None, true, "delivered"),
        Tried::Retry(s, e) if job.attempt < max => (false, s, Some(e), false, "retry"),
        Tried::Retry(s, e) => (false, s, Some(format!("{e} (after {max} tries)")), true, "failed"),
        Tried::Final(s, e) => (false, s, Some(e), true, "failed"),
    };
    visionlog_telemetry::metrics::webhook_attempt(outcome, job.attempt);
    // a newer result supersedes this one: its own deliveries report on the task; a settled
    // delivery of the latest result forgets the task (the map holds only tasks in delivery)
    {
        let mut latest = shared.latest.lock().expect("latest revisions");
        let current = latest.get(&job.task_id).copied().unwrap_or(job.revision);
        if current != job.revision {
            return;
        }
        if last {
            latest.remove(&job.task_id);
        }
    }
    let shared2 = shared.clone();
    let record = tokio::task::spawn_blocking(move || record(&shared2, &job, delivered, status, error, last)).await;
    if let Ok(Err(e)) | Err(e) = record.map_err(|e| e.to_string()) {
        tracing::error!(error = %e, "webhooks: the try could not be recorded; the event will be handled again");
    }
}

/// The endpoint a URL's concurrency is limited by.
fn endpoint_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)),
        Err(_) => url.to_owned(),
    }
}

async fn try_once(shared: &Arc<Inner>, job: &Job) -> Tried {
    let guard = shared.guard.clone();
    let url = job.url.clone();
    let checked = match tokio::task::spawn_blocking(move || guard.check(&url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(refused)) => {
            tracing::warn!(task_id = job.task_id, url = job.url, %refused, "webhooks: callback URL refused");
            return Tried::Final(None, format!("refused: {refused}"));
        }
        Err(e) => return Tried::Retry(None, e.to_string()),
    };
    // connect to the addresses the guard checked, never to a second lookup
    // and never through a proxy named by the environment (HTTP(S)_PROXY, ALL_PROXY): it would
    // resolve and connect on its own, past the addresses the guard checked
    let client = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(shared.config.timeout)
        .resolve_to_addrs(&checked.host, &checked.addrs)
        .user_agent("visionlog-webhooks/1")
        .build()
    {
        Ok(c) => c,
        Err(e) => return Tried::Retry(None, e.to_string()),
    };
    let ts = now_ms() / 1000;
    let secrets = (shared.secrets)(&job.tenant);
    let mut request = client
        .post(checked.url.clone())
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(IDEMPOTENCY_HEADER, format!("{}:{}", job.task_id, job.revision))
        .header("visionlog-attempt", job.attempt.to_string())
        .body(job.body.as_ref().clone());
    if !secrets.is_empty() {
        request = request.header(SIGNATURE_HEADER, sign(&secrets, ts, &job.body));
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Tried::Delivered(r.status().as_u16()),
        Ok(r) => {
            let s = r.status();
            let why = format!("the receiver answered {s}");
            if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 {
                Tried::Retry(Some(s.as_u16()), why)
            } else {
                Tried::Final(Some(s.as_u16()), why)
            }
        }
        Err(e) if e.is_timeout() => Tried::Retry(None, format!("timed out after {:?}", shared.config.timeout)),
        Err(e) => Tried::Retry(None, format!("request failed: {e}")),
    }
}

/// Records the try on the task, and dead-letters the result after the last failed one.
fn record(
    shared: &Inner,
    job: &Job,
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
    last: bool,
) -> Result<(), String> {
    let command = TaskCommand::RecordReport(RecordReport {
        attempt: job.attempt,
        status_code: status.map(u32::from),
        delivered,
        error: error.clone().map(|e| e.chars().take(500).collect()),
        last_attempt: last && !delivered,
    });
    let envelope = CommandEnvelope {
        command_id: deterministic_id(&[&job.cause.event_id, GROUP, &job.attempt.to_string()]),
        task_id: job.task_id.clone(),
        command_type: command.type_name().into(),
        expected_version: None,
        actor: "service:webhooks".into(),
        tenant: job.tenant.clone(),
        correlation_id: job.cause.correlation_id.clone(),
        causation_id: Some(job.cause.event_id.clone()),
        issued_at_ms: now_ms(),
    };
    shared.bus.send(&envelope, &command).map_err(|e| e.to_string())?;
    if last && !delivered {
        let (p, offset) = job.result_at;
        let why = error.unwrap_or_default();
        shared.bus.dead_letter_event(p, offset, "webhook_failed", &why, GROUP).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_under_each_secret_and_expire() {
        let body = br#"{"task_id":"t-1"}"#;
        let header = sign(&["new".into(), "old".into()], 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.matches("v1=").count(), 2);
        assert!(verify(&header, "new", body, 1_700_000_010, 300));
        assert!(verify(&header, "old", body, 1_700_000_010, 300), "a receiver on the old secret still verifies");
        assert!(!verify(&header, "other", body, 1_700_000_010, 300));
        assert!(!verify(&header, "new", b"{}", 1_700_000_010, 300), "another body");
        assert!(!verify(&header, "new", body, 1_700_001_000, 300), "too old");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let c = WebhookConfig {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..Default::default()
        };
        for attempt in 1..=8 {
            let full = (100u64 << (attempt - 1)).min(1000);
            for _ in 0..50 {
                let d = c.backoff(attempt).as_millis() as u64;
                assert!((full / 2..=full).contains(&d), "attempt {attempt}: {d} ms not in [{}, {full}]", full / 2);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| c.backoff(3)).collect();
        assert!(spread.len() > 10, "jitter spreads the retries");
    }
}
