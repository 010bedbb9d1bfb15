//! `GET /healthz` and `GET /readyz` of a service process, on `--health-addr`
//! (`VISIONLOG_HEALTH_ADDR`), for Kubernetes probes.
//!
//! Alive: every service of the process still runs (a failed one makes the pod restart; `run`
//! stops the whole process when one of its services fails). A partition whose worker failed is
//! started again with a back-off by its service (see `visionlog_journal::serve_partitions`):
//! `/healthz` stays 200 (a restart would not bring a broker back) but lists it under
//! `failing_partitions`.
//! Ready: every partitioned service has joined its group and, on each partition the group gave
//! it, runs (none failing) within `VISIONLOG_READY_MAX_LAG` records (default 1000) of the end; the loops
//! (trainer, tiering, exporter) are ready while they run. After SIGTERM nothing is ready, so
//! traffic and rebalances move away while the process drains.

use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use visionlog_journal::Assignment;
use visionlog_log::EventLog;

enum Watched {
    /// A consumer group: ready when joined and caught up on what it was given. `_lags` feeds
    /// the `visionlog.consumer.lag` gauge for as long as it is held.
    Group {
        group: &'static str,
        topic: String,
        assignment: Arc<Assignment>,
        _lags: Arc<visionlog_telemetry::metrics::LagSource>,
    },
    /// A loop: ready while it runs.
    Loop { running: Arc<AtomicBool> },
}

struct Service {
    name: String,
    watched: Watched,
}

/// What the probes report, shared by the services of a process.
pub(crate) struct Health {
    log: Arc<dyn EventLog>,
    services: Mutex<Vec<Service>>,
    failed: Mutex<Vec<String>>,
    stop: Arc<AtomicBool>,
    max_lag: u64,
}

impl Health {
    /// Health of a process that stops when `stop` is set; serves the probes on `addr` if given.
    pub(crate) fn start(
        addr: Option<SocketAddr>,
        max_lag: u64,
        log: Arc<dyn EventLog>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Arc<Self>> {
        let health = Arc::new(Self { log, services: Mutex::default(), failed: Mutex::default(), stop, max_lag });
        if let Some(addr) = addr {
            serve(addr, health.clone())?;
        }
        Ok(health)
    }

    /// Watches a service that consumes `topic` in `group`.
    pub(crate) fn watch_group(&self, name: &str, group: &'static str, topic: &str) -> Arc<Assignment> {
        let assignment = Arc::new(Assignment::default());
        let lags: Arc<visionlog_telemetry::metrics::LagSource> = {
            let (log, topic, held) = (self.log.clone(), topic.to_owned(), assignment.clone());
            Arc::new(move || {
                let lag = |p| lag(log.as_ref(), group, &topic, p).ok().map(|l| (p, l));
                held.partitions().into_iter().filter_map(lag).collect()
            })
        };
        visionlog_telemetry::metrics::observe_lag(group, topic, &lags);
        let watched = Watched::Group { group, topic: topic.to_owned(), assignment: assignment.clone(), _lags: lags };
        self.services.lock().expect("health lock").push(Service { name: name.to_owned(), watched });
        assignment
    }

    /// Watches a loop; it runs until the flag returned is cleared.
    pub(crate) fn watch_loop(&self, name: &str) -> Arc<AtomicBool> {
        let running = Arc::new(AtomicBool::new(true));
        let watched = Watched::Loop { running: running.clone() };
        self.services.lock().expect("health lock").push(Service { name: name.to_owned(), watched });
        running
    }

    /// Records that a service ended with an error: the process is no longer alive.
    pub(crate) fn failed(&self, name: &str, error: &anyhow::Error) {
        self.failed.lock().expect("health lock").push(format!("{name}: {error:#}"));
    }

    /// `/healthz`: (alive, body).
    pub(crate) fn liveness(&self) -> (bool, serde_json::Value) {
        let failed = self.failed.lock().expect("health lock").clone();
        let mut failing = Vec::new();
        for s in self.services.lock().expect("health lock").iter() {
            if let Watched::Group { assignment, .. } = &s.watched {
                failing.extend(assignment.failing().iter().map(|f| failing_json(&s.name, f)));
            }
        }
        (failed.is_empty(), json!({ "alive": failed.is_empty(), "failed": failed, "failing_partitions": failing }))
    }

    /// `/readyz`: (ready, body with each service's partitions and lags).
    pub(crate) fn readiness(&self) -> (bool, serde_json::Value) {
        let stopping = self.stop.load(Ordering::Relaxed);
        let mut all_ready = !stopping && self.liveness().0;
        let mut report = Vec::new();
        for s in self.services.lock().expect("health lock").iter() {
            let (ready, detail) = match &s.watched {
                Watched::Loop { running } => (running.load(Ordering::Relaxed), json!({})),
                Watched::Group { group, topic, assignment, .. } => self.group(group, topic, assignment),
            };
            all_ready &= ready;
            report.push(json!({ "service": s.name, "ready": ready, "detail": detail }));
        }
        (all_ready, json!({ "ready": all_ready, "stopping": stopping, "services": report }))
    }

    fn group(&self, group: &str, topic: &str, assignment: &Assignment) -> (bool, serde_json::Value) {
        if !assignment.joined() {
            return (false, json!({ "joined": false }));
        }
        let failing = assignment.failing();
        let mut ready = failing.is_empty();
        let mut partitions = Vec::new();
        for p in assignment.partitions() {
            match lag(self.log.as_ref(), group, topic, p) {
                Ok(lag) => {
                    ready &= lag <= self.max_lag;
                    partitions.push(json!({ "partition": p, "lag": lag }));
                }
                Err(e) => {
                    ready = false;
                    partitions.push(json!({ "partition": p, "error": e.to_string() }));
                }
            }
        }
        let failing: Vec<_> = failing.iter().map(|f| failing_json(&format!("{group} on {topic}"), f)).collect();
        (ready, json!({ "joined": true, "group": group, "topic": topic, "partitions": partitions, "failing": failing }))
    }
}

fn failing_json(who: &str, f: &visionlog_journal::Failing) -> serde_json::Value {
    json!({ "service": who, "partition": f.partition, "failures_in_a_row": f.failures, "error": f.error })
}

/// Records between `group`'s committed position on partition `p` of `topic` and its end.
fn lag(log: &dyn EventLog, group: &str, topic: &str, p: u32) -> Result<u64, visionlog_log::LogError> {
    let end = log.end_offset(topic, p)?;
    let at = log.committed(group, topic, p)?.map_or(0, |c| c.offset);
    Ok(end.saturating_sub(at))
}

/// Serves the probes from a thread of their own (a small tokio runtime), for the process's life.
fn serve(addr: SocketAddr, health: Arc<Health>) -> anyhow::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--health-addr {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    let status = |ok: bool| if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let (live, ready) = (health.clone(), health);
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || async move {
                let (ok, body) = live.liveness();
                (status(ok), axum::Json(body))
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let health = ready.clone();
                async move {
                    // the lag is read from the log, which may block: off the runtime's thread
                    let (ok, body) = tokio::task::spawn_blocking(move || health.readiness())
                        .await
                        .unwrap_or_else(|e| (false, json!({ "error": e.to_string() })));
                    (status(ok), axum::Json(body))
                }
            }),
        );
    std::thread::Builder::new().name("health".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the health server stopped");
            }
        });
    })?;
    tracing::info!(%addr, "serving /healthz and /readyz");
    Ok(())
}
