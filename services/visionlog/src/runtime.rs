//! Wiring: backends chosen by URL, and the services started as threads.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use visionlog_aggregator::PartitionAggregator;
use visionlog_codec::{Codec, EmbeddedRegistry, HttpRegistry, SchemaRegistry};
use visionlog_journal::{
    CommandBus, EventHandler, LogRegistry, Subscription, Topics, Work, consume_partition, serve_partitions,
};
use visionlog_log::{EventLog, FileLogOptions, FsyncPolicy, LocalBroker};
use visionlog_store::ReadStore;
use visionlog_tiering::TieredLog;

use crate::health::Health;

/// Where the data lives and which backends serve it.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Backends {
    /// Data directory of the embedded backends.
    #[arg(long, env = "VISIONLOG_DATA_DIR", default_value = ".visionlog/data", global = true)]
    pub(crate) data_dir: PathBuf,
    /// The log: `file:///path` (embedded, default: DATA_DIR/log), `kafka://host:port[,host:port]`,
    /// or `kafka` alone for a local broker started for this run (tansu, in memory). Kafka options
    /// go in the query (`?replication=3&min_insync_replicas=2&max_message_bytes=N&security_protocol=
    /// sasl_ssl&sasl_mechanism=SCRAM-SHA-512&ssl_ca_location=ca.pem`) or in VISIONLOG_KAFKA_<OPTION>
    /// (VISIONLOG_KAFKA_SECURITY_PROTOCOL, VISIONLOG_KAFKA_SASL_MECHANISM, ...); SASL credentials
    /// in `kafka://USER:PASSWORD@...` or VISIONLOG_KAFKA_USERNAME and VISIONLOG_KAFKA_PASSWORD.
    #[arg(long, env = "VISIONLOG_LOG", global = true)]
    pub(crate) log: Option<String>,
    /// The read store: `embedded:///path.redb[?cache_mb=N]` (default: DATA_DIR/store.redb;
    /// its page cache grows to 1 GiB unless `cache_mb` bounds it) or
    /// `scylla://host:port[,host:port]/keyspace[?consistency=local_quorum&replication=3&dc=NAME]`.
    #[arg(long, env = "VISIONLOG_STORE", global = true)]
    pub(crate) store: Option<String>,
    /// The object store (images, training crops, cold segments of the log, exports):
    /// `file:///dir` (default: DATA_DIR/objects) or
    /// `s3://bucket[/prefix]?endpoint=http://host:port&region=R&allow_http=true&storage_class=C`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "VISIONLOG_OBJECTS", global = true)]
    pub(crate) objects: Option<String>,
    /// When the embedded log fsyncs: always, never or `<N>ms`.
    #[arg(long, env = "VISIONLOG_FSYNC", default_value = "always", global = true)]
    pub(crate) fsync: FsyncPolicy,
    /// Partitions of `commands` and `events` (when creating them).
    #[arg(long, env = "VISIONLOG_PARTITIONS", default_value_t = 4, global = true)]
    pub(crate) partitions: u32,
    /// The schema registry, by URL like the other backends: `http(s)://host:port` (a
    /// Confluent-compatible registry; basic auth from SCHEMA_REGISTRY_BASIC_AUTH=user:secret),
    /// `topic` (the `schemas` topic of the log), or `embedded:///path/registry.json`. Default: the
    /// `schemas` topic on Kafka, DATA_DIR/registry.json on the embedded log.
    #[arg(long, env = "VISIONLOG_SCHEMA_REGISTRY", global = true)]
    pub(crate) schema_registry: Option<String>,
    /// Prefix of the topic names.
    #[arg(long, env = "VISIONLOG_TOPIC_PREFIX", default_value = "", global = true)]
    pub(crate) topic_prefix: String,
    /// Where a service process serves `GET /healthz` and `GET /readyz` (e.g. 0.0.0.0:8080);
    /// none by default.
    #[arg(long, env = "VISIONLOG_HEALTH_ADDR", global = true)]
    pub(crate) health_addr: Option<std::net::SocketAddr>,
    /// The tenants file: API tokens, webhook secrets, QC policy, operators (see
    /// `visionlog_tenants`); none: no tokens, default policies.
    #[arg(long, env = "VISIONLOG_TENANTS", global = true)]
    pub(crate) tenants: Option<PathBuf>,
    /// The services' own settings.
    #[command(flatten)]
    pub(crate) settings: crate::settings::Settings,
}

impl Backends {
    /// Whether `--log` names Kafka (an address, or `kafka` alone for a local broker).
    pub(crate) fn on_kafka(&self) -> bool {
        self.log.as_deref().is_some_and(|l| l == "kafka" || l.starts_with("kafka://"))
    }
}

/// The opened backends.
pub(crate) struct Runtime {
    /// One history: the hot log, with the `events` topic read below its start from the cold
    /// segments (see `visionlog tier`).
    pub(crate) log: Arc<dyn EventLog>,
    /// The hot log alone (what the tierer reads and drops).
    pub(crate) hot: Arc<dyn EventLog>,
    /// The log's URL.
    pub(crate) log_url: String,
    pub(crate) codec: Arc<Codec>,
    pub(crate) store: Arc<dyn ReadStore>,
    pub(crate) objects: visionlog_objects::Objects,
    pub(crate) topics: Topics,
    pub(crate) bus: CommandBus,
    /// The model streams.
    pub(crate) registry: Arc<visionlog_models::Registry>,
    /// Who may use visionlog, and their policies.
    pub(crate) tenants: Arc<visionlog_tenants::Tenants>,
    /// The SSRF guard (`--url-allow`).
    pub(crate) guard: visionlog_netguard::UrlGuard,
    /// The services' settings.
    pub(crate) settings: crate::settings::Settings,
    /// The broker started for `--log kafka`, if any. Declared last: fields drop in order, so it
    /// stops after everything that talks to it.
    _broker: Option<LocalBroker>,
}

impl Runtime {
    pub(crate) fn open(b: &Backends) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&b.data_dir).with_context(|| format!("creating {}", b.data_dir.display()))?;
        let data = b.data_dir.canonicalize()?;
        let (hot, log_url, broker) = open_log(b.log.as_deref(), &data, b.fsync)?;
        let store_url = b.store.clone().unwrap_or_else(|| format!("embedded://{}", data.join("store.redb").display()));
        let store_url_shown = redacted(&store_url);
        let store =
            visionlog_store::open(&store_url).with_context(|| format!("opening the store {store_url_shown}"))?;
        let objects_url = b.objects.clone().unwrap_or_else(|| format!("file://{}", data.join("objects").display()));
        let objects = visionlog_objects::Objects::open(&objects_url)
            .with_context(|| format!("opening the object store {}", redacted(&objects_url)))?;
        let mut topics = Topics::new(&b.topic_prefix, b.partitions);
        topics.retention = b.settings.topic_retention();
        if let Ok(existing) = hot.partitions(&topics.commands) {
            topics.partitions = existing;
        }
        topics.create(hot.as_ref())?;
        let log: Arc<dyn EventLog> = Arc::new(TieredLog::new(hot.clone(), objects.clone(), &[&topics.events]));
        let kafka = b.on_kafka().then_some((&log, &topics));
        let codec = Arc::new(Codec::new(open_registry(b, &data, kafka)?)?);
        let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());
        let registry = Arc::new(visionlog_models::Registry::open(log.clone(), codec.clone(), &topics.models)?);
        let tenants = Arc::new(match &b.tenants {
            Some(path) => visionlog_tenants::Tenants::load(&path.to_string_lossy())?,
            None => visionlog_tenants::Tenants::default(),
        });
        // each tenant's own topics (its commands in, its tasks' events out)
        for tenant in tenants.tenant_ids() {
            topics.create_tenant(hot.as_ref(), &tenant)?;
        }
        let guard = b.settings.url_guard()?;
        tracing::info!(log = log_url, store = store_url_shown, partitions = topics.partitions, "backends open");
        let settings = b.settings.clone();
        Ok(Self {
            log,
            hot,
            log_url,
            codec,
            store,
            objects,
            topics,
            bus,
            registry,
            tenants,
            guard,
            settings,
            _broker: broker,
        })
    }
}

impl Runtime {
    /// The task manager over these backends (reprocess, resend, undo a batch).
    pub(crate) fn task_manager(&self) -> visionlog_task_manager::TaskManager<'_> {
        visionlog_task_manager::TaskManager {
            log: self.log.as_ref(),
            codec: &self.codec,
            topics: &self.topics,
            bus: &self.bus,
            store: self.store.as_ref(),
        }
    }

    /// What the projector (and its rebuild) reads and writes.
    pub(crate) fn projector_context(&self) -> visionlog_projector::ProjectorContext {
        visionlog_projector::ProjectorContext {
            log: self.log.clone(),
            codec: self.codec.clone(),
            topics: self.topics.clone(),
            store: self.store.clone(),
            before_rows: Some(Arc::new(visionlog_projector::Extractor::new(self.objects.clone(), self.store.clone()))),
            tombstone_grace: Some(std::time::Duration::from_secs(self.settings.tombstone_grace_s)),
        }
    }
}

/// Opens the log named by `--log` (the embedded one under `data` by default); `kafka` alone
/// starts a local broker, returned to be held for as long as the log is used.
pub(crate) fn open_log(
    url: Option<&str>,
    data: &std::path::Path,
    fsync: FsyncPolicy,
) -> anyhow::Result<(Arc<dyn EventLog>, String, Option<LocalBroker>)> {
    let (url, broker) = match url {
        Some("kafka") => {
            let broker = LocalBroker::start().context("starting a local broker for --log kafka")?;
            (format!("kafka://{}", broker.address), Some(broker))
        }
        Some(url) => (url.to_owned(), None),
        None => (format!("file://{}", data.join("log").display()), None),
    };
    let shown = redacted(&url);
    let log = visionlog_log::open(&url, FileLogOptions { fsync, ..FileLogOptions::default() })
        .with_context(|| format!("opening the log {shown}"))?;
    Ok((log, shown, broker))
}

/// A backend URL fit for logs, reports and error messages: the secret of `user:secret@` and the
/// values of query options that name a password, secret or token are replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    format!("{user}:***@{hosts}")
                }
                None => authority.to_owned(),
            };
            match path {
                Some(p) => format!("{scheme}://{authority}/{p}"),
                None => format!("{scheme}://{authority}"),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if ["password", "secret", "token"].iter().any(|w| k.to_ascii_lowercase().contains(w)) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{out}?{}", pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted;

    #[test]
    fn urls_lose_their_secrets_and_keep_the_rest() {
        assert_eq!(
            redacted("scylla://app:s3cret@h1:9042,h2:9042/views?replication=3"),
            "scylla://app:***@h1:9042,h2:9042/views?replication=3"
        );
        assert_eq!(
            redacted("kafka://b:9093?sasl_username=app&sasl_password=p4ss&security_protocol=sasl_ssl"),
            "kafka://b:9093?sasl_username=app&sasl_password=***&security_protocol=sasl_ssl"
        );
        assert_eq!(redacted("s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(redacted("file:///data/log"), "file:///data/log");
        assert_eq!(redacted("kafka://u:p@b:9092"), "kafka://u:***@b:9092");
    }
}

/// The schema registry: `--schema-registry` over HTTP if given; on Kafka, the registry kept in
/// the `schemas` topic (so every process of a cluster shares its ids); else the embedded one
/// under `data` (the embedded log has one process).
pub(crate) fn open_registry(
    b: &Backends,
    data: &std::path::Path,
    kafka: Option<(&Arc<dyn EventLog>, &Topics)>,
) -> anyhow::Result<Arc<dyn SchemaRegistry>> {
    let topic = |log: &Arc<dyn EventLog>, topics: &Topics| -> anyhow::Result<Arc<dyn SchemaRegistry>> {
        Ok(Arc::new(LogRegistry::open(log.clone(), &topics.schemas)?))
    };
    Ok(match (b.schema_registry.as_deref(), kafka) {
        (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => {
            Arc::new(HttpRegistry::new(url)?)
        }
        (Some("topic"), Some((log, topics))) => topic(log, topics)?,
        (Some("topic"), None) => anyhow::bail!("--schema-registry topic: the `schemas` topic needs --log kafka://..."),
        (Some(url), _) if url.starts_with("embedded://") => {
            let path = std::path::Path::new(url.trim_start_matches("embedded://"));
            anyhow::ensure!(path.is_absolute(), "--schema-registry {url}: embedded:///absolute/path/registry.json");
            Arc::new(EmbeddedRegistry::open(path)?)
        }
        (Some(other), _) => {
            anyhow::bail!("--schema-registry {other:?}: http(s)://host:port, topic, or embedded:///path/registry.json")
        }
        (None, Some((log, topics))) => topic(log, topics)?,
        (None, None) => Arc::new(EmbeddedRegistry::open(&data.join("registry.json"))?),
    })
}

/// A service of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Service {
    Aggregator,
    Executor,
    Projector,
    SimulatedOperators,
    Inference,
    Trainer,
    Tiering,
    Webhooks,
    /// Each tenant's command topic into `commands`, as the tenant's.
    TenantIngress,
    /// The journal into each tenant's output topic.
    TenantPublisher,
}

impl Service {
    /// The consumer group of the service: the membership that shares out partitions and the
    /// positions it commits.
    fn group(self) -> &'static str {
        match self {
            Service::Aggregator => visionlog_aggregator::GROUP,
            Service::Executor => visionlog_executor::GROUP,
            Service::Projector => visionlog_views::generations::PROJECTOR_GROUP,
            Service::SimulatedOperators => visionlog_simulated_operators::GROUP,
            Service::Inference => visionlog_inference::GROUP,
            Service::Webhooks => visionlog_webhooks::GROUP,
            Service::TenantIngress => visionlog_tenant_topics::INGRESS_GROUP,
            Service::TenantPublisher => visionlog_tenant_topics::PUBLISHER_GROUP,
            Service::Trainer => "trainer",
            Service::Tiering => "tiering",
        }
    }

    /// The work on one partition.
    fn work(self, rt: &Runtime, operators: usize) -> Arc<Work> {
        let (log, codec, topics, store, bus) =
            (rt.log.clone(), rt.codec.clone(), rt.topics.clone(), rt.store.clone(), rt.bus.clone());
        let (objects, registry, tenants) = (rt.objects.clone(), rt.registry.clone(), rt.tenants.clone());
        // one delivery engine per process: the per-endpoint limits hold across its partitions
        let deliveries = if self == Service::Webhooks {
            let tenants = tenants.clone();
            let secrets: visionlog_webhooks::Secrets =
                Arc::new(move |customer| tenants.webhook_secrets(customer).to_vec());
            let config = rt.settings.webhooks();
            let engine = visionlog_webhooks::Deliveries::new(bus.clone(), rt.guard.clone(), config, secrets);
            Some(engine.expect("starting the webhook delivery runtime"))
        } else {
            None
        };
        if self == Service::Projector {
            let ctx = rt.projector_context();
            return Arc::new(move |p, stop: &AtomicBool| Ok(visionlog_projector::run_partition(&ctx, p, stop)?));
        }
        if self == Service::TenantIngress {
            let ingress = visionlog_tenant_topics::Ingress::new(log, codec, topics, tenants.tenant_ids());
            return Arc::new(move |p, stop: &AtomicBool| Ok(ingress.serve_partition(p, stop)?));
        }
        if self == Service::Aggregator {
            return Arc::new(move |p, stop: &AtomicBool| {
                let (log, codec, store, topics) = (log.clone(), codec.clone(), store.clone(), topics.clone());
                Ok(PartitionAggregator::serve_partition(log, codec, store, topics, p, stop)?)
            });
        }
        Arc::new(move |p, stop: &AtomicBool| {
            let mut handler: Box<dyn EventHandler> = match self {
                Service::Executor => {
                    let tenants = tenants.clone();
                    let qc: visionlog_executor::QcPolicy = Arc::new(move |customer| tenants.qc_per_mille(customer));
                    Box::new(visionlog_executor::Executor::new(bus.clone(), qc))
                }
                Service::Webhooks => {
                    let deliveries = deliveries.clone().expect("made for the webhooks service");
                    let (log, codec, topics) = (log.clone(), codec.clone(), topics.clone());
                    Box::new(visionlog_webhooks::WebhookSink::over_journal(
                        deliveries,
                        store.clone(),
                        log,
                        codec,
                        topics,
                    ))
                }
                Service::SimulatedOperators => Box::new(
                    visionlog_simulated_operators::SimulatedOperators::new(bus.clone(), operators)
                        .seeing_views(store.clone())
                        .with_hidden(hidden_subtasks(&log, &codec, &topics, &store, &tenants)),
                ),
                Service::Inference => Box::new(visionlog_inference::InferenceWorker::new(
                    bus.clone(),
                    store.clone(),
                    objects.clone(),
                    registry.clone(),
                    Default::default(),
                )),
                Service::TenantPublisher => {
                    Box::new(visionlog_tenant_topics::Publisher::new(log.clone(), topics.clone(), tenants.tenant_ids()))
                }
                Service::Aggregator
                | Service::Projector
                | Service::Trainer
                | Service::Tiering
                | Service::TenantIngress => {
                    unreachable!("handled elsewhere")
                }
            };
            let sub =
                Subscription { log: log.as_ref(), codec: &codec, topics: &topics, group: self.group(), partition: p };
            consume_partition(sub, handler.as_mut(), stop)?;
            Ok(())
        })
    }
}

/// Tenants whose webhook deliveries would go unsigned (no `webhook_secrets`): a receiver cannot
/// tell them from a forgery. With the webhook sink among `services`, refused by
/// `--webhook-require-signatures`, else warned at every start.
pub(crate) fn check_signing(rt: &Runtime, services: &[Service]) -> anyhow::Result<()> {
    if !services.contains(&Service::Webhooks) {
        return Ok(());
    }
    let tenants = &rt.tenants;
    let unsigned: Vec<String> =
        tenants.tenant_ids().into_iter().filter(|t| tenants.webhook_secrets(t).is_empty()).collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    if rt.settings.webhook_require_signatures {
        anyhow::bail!(
            "tenants {unsigned:?} have no webhook_secrets in the tenants file and VISIONLOG_WEBHOOK_REQUIRE_SIGNATURES \
             is set: add a secret for each, or leave the setting off to deliver to them unsigned"
        );
    }
    tracing::warn!(
        ?unsigned,
        "webhooks: these tenants have no webhook_secrets in the tenants file; their deliveries are NOT signed"
    );
    Ok(())
}

/// The subtasks a simulated operator's session leaves to the models, as the operator tool
/// reckons them for a person: the customer's setting for the recipe, read against the task's
/// events up to the assignment (a subtask whose model is missing is worked on anyway).
fn hidden_subtasks(
    log: &Arc<dyn EventLog>,
    codec: &Arc<Codec>,
    topics: &Topics,
    store: &Arc<dyn ReadStore>,
    tenants: &Arc<visionlog_tenants::Tenants>,
) -> visionlog_simulated_operators::HiddenSubtasks {
    use visionlog_domain::TaskEvent;
    let (log, codec, topics, store, tenants) =
        (log.clone(), codec.clone(), topics.clone(), store.clone(), tenants.clone());
    Box::new(move |task_id, version, purpose| {
        // a check shows every subtask, and so does every session where no customer names any:
        // no history read
        if purpose != visionlog_domain::SessionPurpose::Annotation || !tenants.limits_operator_subtasks() {
            return Ok(Vec::new());
        }
        let src = visionlog_views::HistorySource {
            log: log.as_ref(),
            codec: codec.as_ref(),
            topics: &topics,
            store: store.as_ref(),
        };
        let history = visionlog_views::task_history(src, task_id).map_err(|e| e.to_string())?;
        let events: Vec<&TaskEvent> =
            history.iter().filter(|r| r.envelope.version <= version).map(|r| &r.event).collect();
        let Some(TaskEvent::TaskCreated(created)) = events.first() else {
            return Err(format!("task {task_id}: its history does not start with TaskCreated"));
        };
        let shown = tenants.operator_subtasks(created.customer.as_str(), created.recipe);
        let works =
            visionlog_domain::subtasks::operator_subtasks(created.recipe, shown, purpose, events.iter().copied());
        Ok(created.recipe.subtasks().iter().copied().filter(|s| !works.contains(s)).collect())
    })
}

/// Starts services; each joins its consumer group and runs one thread per partition it is
/// given, until `stop` is set. `health` watches each (assignment, lag, failure).
pub(crate) fn spawn(
    rt: &Runtime,
    services: &[Service],
    stop: &Arc<AtomicBool>,
    operators: usize,
    trainer: &visionlog_inference::TrainerConfig,
    health: &Arc<Health>,
) -> Vec<(String, JoinHandle<anyhow::Result<()>>)> {
    let mut threads = Vec::new();
    for service in services {
        let name = format!("{service:?}").to_lowercase();
        let run: Box<dyn FnOnce() -> anyhow::Result<()> + Send> = match service {
            Service::Trainer => spawn_trainer(rt, stop, trainer.clone()),
            Service::Tiering => {
                let (hot, objects, stop) = (rt.hot.clone(), rt.objects.clone(), stop.clone());
                let (config, drop_hot) = (rt.settings.tier_config(&rt.topics.events), rt.settings.tier_drop_hot);
                let interval = std::time::Duration::from_millis(crate::settings::TIER_INTERVAL_MS);
                Box::new(move || {
                    visionlog_tiering::Tierer::new(hot, objects, config).run(&stop, interval, drop_hot);
                    Ok(())
                })
            }
            _ => {
                let topic = match service {
                    Service::Aggregator | Service::TenantIngress => rt.topics.commands.clone(),
                    _ => rt.topics.events.clone(),
                };
                let (log, work, stop) = (rt.log.clone(), service.work(rt, operators), stop.clone());
                let (group, thread_name) = (service.group(), name.clone());
                let assignment = health.watch_group(&name, group, &topic);
                Box::new(move || {
                    serve_partitions(log.as_ref(), group, &topic, &thread_name, work, &stop, assignment)
                        .map_err(|e| anyhow::anyhow!(e))
                })
            }
        };
        // the loops are ready while they run; a consumer group's readiness is its assignment
        let running = matches!(service, Service::Trainer | Service::Tiering).then(|| health.watch_loop(&name));
        let (health, thread_name) = (health.clone(), name.clone());
        let handle = std::thread::Builder::new()
            .name(format!("{name}-service"))
            .spawn(move || {
                let result = run();
                if let Some(running) = running {
                    running.store(false, std::sync::atomic::Ordering::Relaxed);
                }
                if let Err(e) = &result {
                    health.failed(&thread_name, e);
                }
                result
            })
            .expect("spawning a service thread");
        threads.push((name, handle));
    }
    threads
}

/// The trainer: one loop (not per partition) over the class groups in the read store.
fn spawn_trainer(
    rt: &Runtime,
    stop: &Arc<AtomicBool>,
    config: visionlog_inference::TrainerConfig,
) -> Box<dyn FnOnce() -> anyhow::Result<()> + Send> {
    let trainer = visionlog_inference::Trainer::new(rt.store.clone(), rt.objects.clone(), rt.registry.clone(), config)
        .stop_with(stop.clone());
    let stop = stop.clone();
    Box::new(move || {
        trainer.run_over_views(&stop);
        Ok(())
    })
}

/// Waits for the services to stop and reports the first failure. A service that ends with an
/// error or a panic while the others run sets `stop`: the process stops as a whole (and exits
/// non-zero) instead of staying up with, say, nothing deciding; its supervisor starts it again.
pub(crate) fn join(threads: Vec<(String, JoinHandle<anyhow::Result<()>>)>, stop: &AtomicBool) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    let mut first = Ok(());
    let mut left = threads;
    while !left.is_empty() {
        let (done, running): (Vec<_>, Vec<_>) = left.into_iter().partition(|(_, t)| t.is_finished());
        left = running;
        for (name, t) in done {
            let result = t
                .join()
                .map_err(|_| anyhow::anyhow!("{name} panicked"))
                .and_then(|r| r.with_context(|| format!("{name} failed")));
            if let Err(e) = result {
                if !stop.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = format!("{e:#}"), "a service failed: stopping the process");
                }
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        if !left.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    first
}

#[cfg(test)]
mod supervision_tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// One service failing stops the others (they run until `stop`), and the failure is what
    /// the process reports.
    #[test]
    fn a_failed_service_stops_the_process() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for name in ["executor", "projector"] {
            let stop = stop.clone();
            let t = std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Ok(())
            });
            threads.push((name.to_owned(), t));
        }
        let failing = std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            Err(anyhow::anyhow!("the group could not be joined"))
        });
        threads.insert(0, ("aggregator".to_owned(), failing));
        let err = join(threads, &stop).unwrap_err();
        assert!(stop.load(Ordering::Relaxed));
        assert!(format!("{err:#}").contains("aggregator failed: the group could not be joined"), "{err:#}");
    }
}
