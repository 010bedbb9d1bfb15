//! The webhook sink: every result (`TaskResultGenerated`) of a task with a callback URL is
//! POSTed there, and each try is recorded on the task as an event.
//!
//! - **Signed**: `Visionlog-Timestamp: <unix s>` and `Visionlog-Signature: t=<ts>,v1=<hex>`,
//!   the HMAC-SHA256 of `"<ts>.<body>"` under each of the tenant's secrets (newest first, so a
//!   receiver can rotate: see [`sign`] and docs/integration.md).
//! - **Idempotent**: `Idempotency-Key: <task id>:<revision>`, the same on every try and every
//!   redelivery of the same result.
//! - **Retried for a day**: 5xx, 408, 429, timeouts and connection failures are tried again
//!   after an exponential backoff with jitter (1 s doubling up to 1 h by default) for as long as
//!   [`WebhookConfig::retry_for`] from the result (24 h by default; at most
//!   [`WebhookConfig::max_attempts`] tries); other answers are final. Each try becomes
//!   `RecordReport` → `TaskReported` or `ReportFailed`; a `ReportFailed` that is not the last puts
//!   the next try in a **durable schedule** (the read-store table [`RETRIES`], per partition, by
//!   due time) before the position moves on, so a retry due in an hour neither holds the
//!   partition nor is lost in a restart; each partition's sink takes its due rows from there and
//!   reads the body back from the task's history. After the last try the result is
//!   dead-lettered; once the receiver is fixed, ops ask for it again (`RedeliverResult` →
//!   `RedeliveryRequested`, `visionlog task redeliver`), which starts a new round of tries
//!   with a new window.
//! - **Bounded memory**: at most [`WebhookConfig::max_queued`] bodies of a process wait or fly at
//!   once; a result beyond that goes to the schedule (due at once) instead of memory, so a slow
//!   receiver cannot make the queue grow without bound.
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
use visionlog_domain::{RecordReport, RedeliveryRequested, TaskCommand, TaskEvent, TaskResultGenerated};
use visionlog_journal::{
    CommandBus, ConsumeError, DELIVERY_GIVEN_UP, EventHandler, HandledEvent, deterministic_id, now_ms,
};
use visionlog_netguard::UrlGuard;
use visionlog_store::{Put, ReadStore, Row};

/// The consumer group of the sink.
pub const GROUP: &str = "webhooks";

/// The read-store table of callback URLs by task (written when the sink sees a task created).
pub const CALLBACKS: &str = "webhook_callbacks";

/// The durable schedule of tries: partition = the events partition, clustering =
/// `<due ms, 16 digits>:<task id>:<revision>:<attempt>`, value = a JSON [`Scheduled`].
pub const RETRIES: &str = "webhook_retries";

/// The signature header.
pub const SIGNATURE_HEADER: &str = "visionlog-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "visionlog-timestamp";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A tenant's signing secrets, newest first.
pub type Secrets = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// Reads a task's events from the journal (for a task whose creation the sink has not seen).
pub type History = Arc<dyn Fn(&str) -> Result<Vec<visionlog_journal::RecordedEvent>, String> + Send + Sync>;

/// A result the sink may have to deliver again.
#[derive(Clone, Debug)]
struct LatestResult {
    revision: u32,
    body: Arc<Vec<u8>>,
    /// Where it lies in `events` (partition, offset), for the dead letter.
    at: (u32, u64),
    /// When its round of tries began (the result, or a redelivery): tries go on until
    /// `retry_for` after it.
    recorded_at_ms: i64,
}

/// Tries, backoff, timeouts and limits.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Tries per result, at most.
    pub max_attempts: u32,
    /// How long after a result its delivery is tried again.
    pub retry_for: Duration,
    /// Bodies a process holds in memory at once (waiting for or in a try).
    pub max_queued: usize,
    /// How often each partition's sink looks for tries come due in the schedule.
    pub tick: Duration,
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
            max_attempts: 100,
            retry_for: Duration::from_secs(24 * 3600),
            max_queued: 1000,
            tick: Duration::from_millis(500),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            per_endpoint: 4,
        }
    }
}

impl WebhookConfig {
    /// The wait before try `attempt + 1`: `base * 2^(attempt-1)`, capped, with jitter (a random
    /// point in its upper half), so that receivers coming back are not hit all at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.jittered(attempt, rand::rng().random_range(0..=u32::MAX))
    }

    /// [`WebhookConfig::backoff`] with its jitter drawn from `seed` (the same for the same
    /// cause: a `ReportFailed` handled again after a restart schedules the same due time, so the
    /// same row).
    pub fn backoff_for(&self, attempt: u32, seed: &str) -> Duration {
        // FNV-1a: stable across processes and builds
        let mut h =
            seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        // and a finalizer (splitmix64's), so the last characters move the high bits too
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.jittered(attempt, ((h ^ (h >> 31)) >> 32) as u32)
    }

    fn jittered(&self, attempt: u32, draw: u32) -> Duration {
        let d = self.longest_backoff(attempt);
        let half = d / 2;
        let span = half.as_millis().max(1) as u64;
        half + Duration::from_millis(u64::from(draw) * span / u64::from(u32::MAX))
    }

    /// The longest the wait after try `attempt` may be (before jitter).
    fn longest_backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        exp.min(self.max_backoff)
    }

    /// Whether a failed try `attempt`, made at `now_ms` for a result recorded at
    /// `recorded_at_ms`, is the last: the tries are used up, or the next would fall after the
    /// retry window.
    pub fn last_try(&self, attempt: u32, now_ms: i64, recorded_at_ms: i64) -> bool {
        let next_at = now_ms.saturating_add(self.longest_backoff(attempt).as_millis() as i64);
        attempt >= self.max_attempts || next_at > recorded_at_ms.saturating_add(self.retry_for.as_millis() as i64)
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

/// A try waiting in the schedule ([`RETRIES`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scheduled {
    /// The task.
    pub task_id: String,
    /// Its customer.
    pub tenant: String,
    /// The result's revision.
    pub revision: u32,
    /// The try to make.
    pub attempt: u32,
    /// When it is due (unix ms).
    pub due_ms: i64,
    /// The event that asked for it (its id makes the command ids).
    pub cause_event_id: String,
    /// The correlation id of that event.
    pub correlation_id: String,
}

impl Scheduled {
    /// Its clustering key: by due time first.
    fn key(&self) -> String {
        format!("{:016}:{}:{}:{}", self.due_ms.max(0), self.task_id, self.revision, self.attempt)
    }
}

/// The event a try answers (its id makes the command ids).
#[derive(Clone, Debug)]
struct Cause {
    event_id: String,
    correlation_id: String,
}

/// One delivery try.
#[derive(Clone)]
struct Job {
    task_id: String,
    tenant: String,
    revision: u32,
    attempt: u32,
    url: String,
    body: Arc<Vec<u8>>,
    cause: Cause,
    /// Where the result lies in `events`, for the dead letter.
    result_at: (u32, u64),
    /// When the result was recorded (the retry window starts there).
    recorded_at_ms: i64,
    /// The schedule row the try came from, erased once the try is recorded.
    scheduled: Option<(Arc<dyn ReadStore>, String, String)>,
}

/// What the sink remembers of a task.
#[derive(Clone, Debug, Default)]
struct Known {
    callback: Option<String>,
    latest_revision: u32,
    /// The latest result's body and place, while it may have to be sent (again).
    result: Option<LatestResult>,
    /// The latest result, once its tries were given up: kept for a redelivery ops may ask for.
    given_up: Option<LatestResult>,
}

/// Tasks remembered before the memory is cleared (the journal answers after that).
const MAX_KNOWN: usize = 100_000;

/// The sink: an [`EventHandler`] for the `webhooks` group, one per partition, all of a process
/// delivering through one [`Deliveries`].
pub struct WebhookSink {
    deliveries: Arc<Deliveries>,
    /// This partition's first tries not yet recorded: its position is not committed past them.
    in_flight: Arc<AtomicUsize>,
    known: HashMap<String, Known>,
    store: Arc<dyn ReadStore>,
    history: History,
    /// Stops this partition's schedule reader when the sink goes.
    schedule_stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(stop) = &self.schedule_stop {
            stop.store(true, Ordering::SeqCst);
        }
    }
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
    /// Bodies held now (waiting for or in a try), of every partition.
    queued: AtomicUsize,
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
        let inner = Arc::new(Inner {
            bus,
            guard,
            config,
            secrets,
            endpoints: Mutex::default(),
            latest: Mutex::default(),
            queued: AtomicUsize::new(0),
        });
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
        Self { deliveries, in_flight: Arc::default(), known: HashMap::new(), store, history, schedule_stop: None }
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
        let history: History = Arc::new(move |task: &str| {
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

    /// The first try of a round (a new result, or a redelivery ops asked for): in memory while
    /// there is room, else in the schedule, due at once.
    fn first_try(
        &self,
        partition: u32,
        env: &EventEnvelope,
        k: &Known,
        url: String,
        result: LatestResult,
        cause: Cause,
    ) -> Result<(), ConsumeError> {
        let inner = &self.deliveries.inner;
        inner.latest.lock().expect("latest revisions").insert(env.task_id.clone(), k.latest_revision);
        if inner.queued.load(Ordering::SeqCst) >= inner.config.max_queued {
            // memory is full: the first try waits in the schedule, due at once
            let s = Scheduled {
                task_id: env.task_id.clone(),
                tenant: env.tenant.clone(),
                revision: result.revision,
                attempt: 1,
                due_ms: now_ms(),
                cause_event_id: cause.event_id,
                correlation_id: cause.correlation_id,
            };
            return self.schedule(partition, &s);
        }
        self.start(Job {
            task_id: env.task_id.clone(),
            tenant: env.tenant.clone(),
            revision: result.revision,
            attempt: 1,
            url,
            body: result.body,
            cause,
            result_at: result.at,
            recorded_at_ms: result.recorded_at_ms,
            scheduled: None,
        });
        Ok(())
    }

    /// Starts a first try in memory; the position is held until it is recorded.
    fn start(&self, job: Job) {
        let (inner, in_flight) = (self.deliveries.inner.clone(), self.in_flight.clone());
        in_flight.fetch_add(1, Ordering::SeqCst);
        inner.queued.fetch_add(1, Ordering::SeqCst);
        self.deliveries.runtime.spawn(async move {
            deliver(&inner, job).await;
            inner.queued.fetch_sub(1, Ordering::SeqCst);
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Puts a try in the durable schedule (before the position moves past its cause).
    fn schedule(&self, partition: u32, s: &Scheduled) -> Result<(), ConsumeError> {
        let value = serde_json::to_vec(s).expect("a schedule entry serializes");
        let row = Row { partition: partition.to_string(), clustering: s.key(), version: 1, value };
        self.store.put(&[Put { table: RETRIES.into(), row }]).map_err(|e| ConsumeError::Transient(e.to_string()))?;
        Ok(())
    }

    /// Starts reading this partition's schedule (once per sink).
    fn read_schedule(&mut self, partition: u32) {
        if self.schedule_stop.is_some() {
            return;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.schedule_stop = Some(stop.clone());
        let (inner, store, history) = (self.deliveries.inner.clone(), self.store.clone(), self.history.clone());
        self.deliveries.runtime.spawn(async move {
            // the rows whose try flies now: not started again until it has been recorded
            let flying: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(inner.config.tick).await;
                let room = inner.config.max_queued.saturating_sub(inner.queued.load(Ordering::SeqCst));
                if room == 0 {
                    continue;
                }
                let (s, h, i, f) = (store.clone(), history.clone(), inner.clone(), flying.clone());
                let due = tokio::task::spawn_blocking(move || {
                    let flying = f.lock().expect("flying tries").clone();
                    due_tries(&i, s, &h, partition, room, &flying)
                })
                .await;
                let jobs = match due {
                    Ok(Ok(jobs)) => jobs,
                    Ok(Err(e)) => {
                        tracing::warn!(partition, error = %e, "webhooks: the schedule could not be read; trying again");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(partition, error = %e, "webhooks: reading the schedule failed");
                        continue;
                    }
                };
                for job in jobs {
                    let key = job.scheduled.as_ref().map(|(_, _, k)| k.clone()).unwrap_or_default();
                    if !flying.lock().expect("flying tries").insert(key.clone()) {
                        continue;
                    }
                    let (inner, flying) = (inner.clone(), flying.clone());
                    inner.queued.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        deliver(&inner, job).await;
                        inner.queued.fetch_sub(1, Ordering::SeqCst);
                        flying.lock().expect("flying tries").remove(&key);
                    });
                }
            }
        });
    }
}

/// The tries of `partition` come due, at most `room`, each with its body read back from its
/// task's history; a row whose result was since delivered, given up or superseded is erased.
/// Rows in `flying` (their try is under way) are passed over.
fn due_tries(
    inner: &Inner,
    store: Arc<dyn ReadStore>,
    history: &History,
    partition: u32,
    room: usize,
    flying: &std::collections::HashSet<String>,
) -> Result<Vec<Job>, String> {
    let p = partition.to_string();
    let now = now_ms();
    let rows = store.scan_partition(RETRIES, &p, None, room + flying.len()).map_err(|e| e.to_string())?;
    let mut jobs = Vec::new();
    for row in rows.into_iter().filter(|r| !flying.contains(&r.clustering)) {
        if jobs.len() >= room {
            break;
        }
        let Ok(s) = serde_json::from_slice::<Scheduled>(&row.value) else {
            tracing::warn!(partition, key = row.clustering, "webhooks: an unreadable schedule row is dropped");
            store.erase(RETRIES, &p, &row.clustering).map_err(|e| e.to_string())?;
            continue;
        };
        if s.due_ms > now {
            break; // in due order: the rest are later
        }
        let mut k = Known::default();
        for r in history(&s.task_id)? {
            remember(&mut k, partition, r.offset, &r.envelope, &r.event);
        }
        let (Some(url), Some(result)) = (k.callback.clone(), k.result.filter(|r| r.revision == s.revision)) else {
            store.erase(RETRIES, &p, &row.clustering).map_err(|e| e.to_string())?;
            continue;
        };
        if inner.latest.lock().expect("latest revisions").get(&s.task_id).is_some_and(|l| *l > s.revision) {
            store.erase(RETRIES, &p, &row.clustering).map_err(|e| e.to_string())?;
            continue;
        }
        jobs.push(Job {
            task_id: s.task_id.clone(),
            tenant: s.tenant.clone(),
            revision: s.revision,
            attempt: s.attempt,
            url,
            body: result.body,
            cause: Cause { event_id: s.cause_event_id.clone(), correlation_id: s.correlation_id.clone() },
            result_at: result.at,
            recorded_at_ms: result.recorded_at_ms,
            scheduled: Some((store.clone(), p.clone(), row.clustering.clone())),
        });
    }
    Ok(jobs)
}

/// Folds an event into what the sink knows of its task.
fn remember(k: &mut Known, partition: u32, offset: u64, env: &EventEnvelope, event: &TaskEvent) {
    match event {
        TaskEvent::TaskCreated(c) => k.callback = c.callback_url.clone(),
        TaskEvent::TaskResultGenerated(e) => {
            k.latest_revision = e.revision;
            k.given_up = None;
            // the body is kept only while it may have to be sent (again)
            k.result = k.callback.is_some().then(|| LatestResult {
                revision: e.revision,
                body: Arc::new(payload(&env.task_id, &env.tenant, env, e)),
                at: (partition, offset),
                recorded_at_ms: env.recorded_at_ms,
            });
        }
        TaskEvent::TaskReported(_) => (k.result, k.given_up) = (None, None),
        TaskEvent::ReportFailed(f) if f.last_attempt => k.given_up = k.result.take(),
        TaskEvent::RedeliveryRequested(r) => {
            // a new round of tries, with a new window from the request
            if let Some(mut result) = k.given_up.take().filter(|g| g.revision == r.revision) {
                result.recorded_at_ms = env.recorded_at_ms;
                k.result = Some(result);
            }
        }
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
                | TaskEvent::RedeliveryRequested(_)
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
        let Some(result) = k.result.clone() else { return Ok(()) };
        let cause = Cause { event_id: env.event_id.clone(), correlation_id: env.correlation_id.clone() };
        match e.event {
            TaskEvent::TaskResultGenerated(TaskResultGenerated { revision, .. })
            | TaskEvent::RedeliveryRequested(RedeliveryRequested { revision, .. })
                if *revision == result.revision =>
            {
                self.first_try(e.partition, env, &k, url, result, cause)?;
            }
            TaskEvent::ReportFailed(f) if !f.last_attempt && f.revision == result.revision => {
                let delay = self.deliveries.inner.config.backoff_for(f.attempt, &env.event_id);
                let s = Scheduled {
                    task_id: env.task_id.clone(),
                    tenant: env.tenant.clone(),
                    revision: f.revision,
                    attempt: f.attempt + 1,
                    due_ms: env.recorded_at_ms + delay.as_millis() as i64,
                    cause_event_id: cause.event_id,
                    correlation_id: cause.correlation_id,
                };
                self.schedule(e.partition, &s)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn resumed_at(&mut self, partition: u32, _offset: u64) {
        self.read_schedule(partition);
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
    let last_try = shared.config.last_try(job.attempt, now_ms(), job.recorded_at_ms);
    let (delivered, status, error, last, outcome) = match tried {
        Tried::Delivered(s) => (true, Some(s), None, true, "delivered"),
        Tried::Retry(s, e) if !last_try => (false, s, Some(e), false, "retry"),
        Tried::Retry(s, e) => (false, s, Some(format!("{e} (after {} tries)", job.attempt)), true, "failed"),
        Tried::Final(s, e) => (false, s, Some(e), true, "failed"),
    };
    visionlog_telemetry::metrics::webhook_attempt(outcome, job.attempt);
    // a newer result supersedes this one: its own deliveries report on the task; a settled
    // delivery of the latest result forgets the task (the map holds only tasks in delivery)
    {
        let mut latest = shared.latest.lock().expect("latest revisions");
        let current = latest.get(&job.task_id).copied().unwrap_or(job.revision);
        if current != job.revision {
            if let Some((store, p, key)) = &job.scheduled
                && let Err(e) = store.erase(RETRIES, p, key)
            {
                tracing::warn!(error = %e, "webhooks: a superseded try stays in the schedule; it will be dropped later");
            }
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
    // recorded: its schedule row is done (a crash before this line tries once more, under the
    // same command id and idempotency key)
    if let Some((store, p, key)) = &job.scheduled {
        store.erase(RETRIES, p, key).map_err(|e| e.to_string())?;
    }
    if last && !delivered {
        let (p, offset) = job.result_at;
        let why = error.unwrap_or_default();
        shared.bus.dead_letter_event(p, offset, DELIVERY_GIVEN_UP, &why, GROUP).map_err(|e| e.to_string())?;
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
        let seeded: std::collections::HashSet<_> = (0..50).map(|i| c.backoff_for(3, &format!("ev-{i}"))).collect();
        assert!(seeded.len() > 10, "seeded jitter spreads too");
        assert_eq!(c.backoff_for(3, "ev-1"), c.backoff_for(3, "ev-1"), "the same cause, the same wait");
    }

    /// Tries go on for a day by default (about 35 of them: 1 s doubling to the hourly cap),
    /// and stop at the window or the cap on tries, whichever comes first.
    #[test]
    fn retries_last_the_window_then_stop() {
        let c = WebhookConfig::default();
        let (start, mut now, mut attempt) = (1_000_000i64, 1_000_000i64, 1u32);
        while !c.last_try(attempt, now, start) {
            now += c.longest_backoff(attempt).as_millis() as i64;
            attempt += 1;
        }
        let hours = (now - start) as f64 / 3_600_000.0;
        assert!((23.0..=24.0).contains(&hours), "the last try {hours:.1} h after the result");
        assert!((30..=40).contains(&attempt), "{attempt} tries in a day");
        let capped = WebhookConfig { max_attempts: 3, ..WebhookConfig::default() };
        assert!(!capped.last_try(2, start, start));
        assert!(capped.last_try(3, start, start));
        let short = WebhookConfig { retry_for: Duration::from_secs(10), ..WebhookConfig::default() };
        assert!(!short.last_try(1, start, start), "1 s later is inside 10 s");
        assert!(short.last_try(4, start + 5_000, start), "5 s + 8 s falls after 10 s");
    }
}
