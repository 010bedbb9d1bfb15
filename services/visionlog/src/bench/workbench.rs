//! What a bench runs on, and the history the aggregator and tiering benches decide.

use crate::runtime::{Backends, Runtime, open_log};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::AggregatorConfig;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{
    AddObjects, AssignOperator, AssistanceReason, Detection, FinishOperatorSession, GenerateResult, ModelRef, ObjectId,
    RecordDetections, RecordModelNotFound, RemoveObjects, RequestAssistance, RequestDetection, RequestQualityCheck,
    SessionId, TaskCommand,
};
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, FsyncPolicy};
use visionlog_simulated_operators::scenario::scenario;
use visionlog_store::{EmbeddedStore, ReadStore};

/// What a bench runs on: the log named by `--log` (embedded in a throw-away directory by
/// default, or a broker started for the run), an in-memory schema registry, the read store named
/// by `--store` in a keyspace of the run's own (else an embedded one), and topics of a run of
/// their own (so a shared broker's earlier runs stay apart).
pub(super) struct Workbench {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) log_url: String,
    pub(crate) codec: Arc<Codec>,
    pub(crate) store: Arc<dyn ReadStore>,
    /// The CQL store, when `--store` names one (the projections bench's baseline writes through it).
    pub(crate) cql: Option<Arc<visionlog_store::ScyllaStore>>,
    pub(crate) store_name: String,
    pub(crate) topics: Topics,
    _dir: tempfile::TempDir,
    /// Declared last: fields drop in order, so a broker started for the run stops after its clients.
    _broker: Option<visionlog_log::LocalBroker>,
}

impl Drop for Workbench {
    fn drop(&mut self) {
        if let Some(cql) = &self.cql
            && let Err(e) = cql.drop_keyspace()
        {
            tracing::warn!(error = %e, store = self.store_name, "dropping the bench's keyspace");
        }
    }
}

impl Workbench {
    pub(crate) fn open(backends: &Backends, fsync: FsyncPolicy, partitions: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (log, log_url, broker) = open_log(backends.log.as_deref(), dir.path(), fsync)?;
        let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory()))?);
        let run = visionlog_journal::now_ms();
        let (store, cql, store_name): (Arc<dyn ReadStore>, _, _) = match backends.store.as_deref() {
            Some(url) if url.starts_with("scylla://") => {
                // a keyspace of the run's own, dropped after it (see `Drop for Workbench`)
                let url = visionlog_store::with_keyspace(url, &format!("bench_{run}"))?;
                let cql = Arc::new(visionlog_store::ScyllaStore::connect(&url)?);
                (cql.clone(), Some(cql), crate::runtime::redacted(url.split('?').next().unwrap_or_default()))
            }
            Some(other) => anyhow::bail!("benches take --store scylla://... or no --store, not {other}"),
            None => (Arc::new(EmbeddedStore::open(&dir.path().join("store.redb"))?), None, "embedded".to_owned()),
        };
        let topics = Topics::new(&format!("bench-{run}"), partitions);
        topics.create(log.as_ref())?;
        Ok(Self { log, log_url, codec, store, cql, store_name, topics, _dir: dir, _broker: broker })
    }

    /// The log's URL without its options, for a report.
    pub(crate) fn log_name(&self) -> &str {
        self.log_url.split('?').next().unwrap_or_default()
    }
}

/// The commands of one task detected by a model and quality-checked (two boxes removed).
pub(super) fn checked_workload(task_id: &str) -> Vec<(&'static str, TaskCommand)> {
    let s = scenario(task_id, "acme");
    let session = SessionId::from("qc1");
    let detections: Vec<Detection> = s
        .truth
        .iter()
        .take(40)
        .map(|o| Detection { image: o.image, bbox: o.bbox, class_id: o.class_id, score: 0.9 })
        .collect();
    let model = ModelRef { model_id: "shelf-detector".into(), version: 3 };
    vec![
        ("customer:acme", TaskCommand::CreateTask(s.create)),
        ("service:executor", TaskCommand::RequestDetection(RequestDetection {})),
        ("service:detector", TaskCommand::RecordDetections(RecordDetections { model, detections })),
        ("service:executor", TaskCommand::GenerateResult(GenerateResult {})),
        ("service:executor", TaskCommand::RequestQualityCheck(RequestQualityCheck {})),
        (
            "operator:op-2",
            TaskCommand::AssignOperator(AssignOperator { operator: "op-2".into(), session_id: session.clone() }),
        ),
        (
            "operator:op-2",
            TaskCommand::RemoveObjects(RemoveObjects {
                session_id: session.clone(),
                object_ids: vec![ObjectId("d1.0".into()), ObjectId("d1.1".into())],
            }),
        ),
        ("operator:op-2", TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: session })),
    ]
}

/// The commands of one task through the new-project flow, with their actors.
pub(super) fn workload(task_id: &str) -> Vec<(&'static str, TaskCommand)> {
    let s = scenario(task_id, "acme");
    let session = SessionId::from("s1");
    let objects: Vec<_> = s.truth.iter().take(40).cloned().collect();
    vec![
        ("customer:acme", TaskCommand::CreateTask(s.create)),
        ("service:executor", TaskCommand::RequestDetection(RequestDetection {})),
        ("service:executor", TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() })),
        (
            "service:executor",
            TaskCommand::RequestAssistance(RequestAssistance { reason: AssistanceReason::ModelNotFound }),
        ),
        (
            "operator:op-1",
            TaskCommand::AssignOperator(AssignOperator { operator: "op-1".into(), session_id: session.clone() }),
        ),
        ("operator:op-1", TaskCommand::AddObjects(AddObjects { session_id: session.clone(), objects })),
        ("operator:op-1", TaskCommand::FinishOperatorSession(FinishOperatorSession { session_id: session })),
        ("service:executor", TaskCommand::GenerateResult(GenerateResult {})),
    ]
}

/// The envelope of a workload command: step `step` of its task's flow, expecting that version.
pub(super) fn envelope(task_id: &str, step: usize, actor: &str, command: &TaskCommand) -> CommandEnvelope {
    CommandEnvelope {
        command_id: format!("{task_id}/{step}"),
        task_id: task_id.to_owned(),
        command_type: command.type_name().to_owned(),
        expected_version: Some(step as u64),
        actor: actor.to_owned(),
        tenant: "acme".into(),
        correlation_id: task_id.to_owned(),
        causation_id: None,
        issued_at_ms: 0,
    }
}

/// Runs the aggregators over `commands` and waits until all are decided; returns the seconds.
pub(super) fn decide_all(
    log: &Arc<dyn EventLog>,
    codec: &Arc<Codec>,
    store: &Arc<dyn ReadStore>,
    topics: &Topics,
    commands: &[(CommandEnvelope, TaskCommand)],
) -> anyhow::Result<f64> {
    CommandBus::new(log.clone(), codec.clone(), topics.clone()).send_batch(commands)?;
    let ends = (0..topics.partitions).map(|p| log.end_offset(&topics.commands, p)).collect::<Result<Vec<_>, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads = visionlog_aggregator::spawn_owners(log, codec, store, topics, &AggregatorConfig::default(), &stop);
    while !(0..topics.partitions).all(|p| {
        log.committed(visionlog_aggregator::GROUP, &topics.commands, p)
            .ok()
            .flatten()
            .is_some_and(|pos| pos.offset >= ends[p as usize])
    }) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("aggregator thread")?;
    }
    Ok(elapsed)
}

/// Decides a history of `tasks` tasks (half annotated by operators, half detected and
/// quality-checked, 8 commands each) into `topics`; returns its audit.
pub(super) fn history(
    log: &Arc<dyn EventLog>,
    codec: &Arc<Codec>,
    store: &Arc<dyn ReadStore>,
    topics: &Topics,
    tasks: usize,
) -> anyhow::Result<visionlog_journal::Audit> {
    let mut commands = Vec::with_capacity(tasks * 8);
    let flows: Vec<_> = (0..tasks)
        .map(|t| {
            let id = format!("task-{t:06}");
            let flow = if t % 2 == 0 { workload(&id) } else { checked_workload(&id) };
            (id, flow)
        })
        .collect();
    for step in 0..8 {
        for (task_id, flow) in &flows {
            let (actor, command) = &flow[step];
            commands.push((envelope(task_id, step, actor, command), command.clone()));
        }
    }
    decide_all(log, codec, store, topics, &commands)?;
    Ok(audit(log.as_ref(), topics)?)
}

/// A runtime over a fresh data directory (with `tenants` as its tenants file) on the backends
/// of the command line, with `partitions` partitions; the embedded log does not fsync. The
/// directory lives as long as the returned guard.
pub(super) fn bench_runtime(
    backends: &Backends,
    partitions: u32,
    tenants: serde_json::Value,
) -> anyhow::Result<(tempfile::TempDir, Runtime)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tenants.json");
    std::fs::write(&file, tenants.to_string())?;
    let mut bk = backends.clone();
    bk.data_dir = dir.path().join("data");
    bk.tenants = Some(file);
    bk.partitions = partitions;
    if !bk.on_kafka() {
        bk.fsync = FsyncPolicy::Never;
    }
    let rt = Runtime::open(&bk)?;
    Ok((dir, rt))
}

/// Builds a new generation of the views (and the per-task index) from the whole history;
/// returns the seconds it took.
pub(super) fn rebuild_views(rt: &Runtime) -> anyhow::Result<f64> {
    let ctx = visionlog_projector::ProjectorContext {
        log: rt.log.clone(),
        codec: rt.codec.clone(),
        topics: rt.topics.clone(),
        store: rt.store.clone(),
        before_rows: None,
        tombstone_grace: None,
    };
    let started = Instant::now();
    visionlog_projector::rebuild(&ctx, false, &AtomicBool::new(false))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Tasks decided per batch of commands (bounds the memory the workload takes).
const CHUNK_TASKS: usize = 5_000;

/// The id of the bench's task `t`.
pub(super) fn task_id(t: usize) -> String {
    format!("task-{t:07}")
}

/// Decides tasks `range` (half annotated by operators, half detected and quality-checked; those
/// `waits` says stop when they ask for an operator), 8 events each.
pub(super) fn decide_tasks(
    rt: &Runtime,
    range: std::ops::Range<usize>,
    waits: impl Fn(usize) -> bool,
) -> anyhow::Result<()> {
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK_TASKS).min(range.end);
        let flows: Vec<_> = (start..end)
            .map(|t| {
                let id = task_id(t);
                let flow = if t % 2 == 0 { workload(&id) } else { checked_workload(&id) };
                (id, flow)
            })
            .collect();
        let mut commands = Vec::with_capacity(flows.len() * 8);
        for step in 0..8 {
            for (t, (id, flow)) in (start..end).zip(&flows) {
                if step >= 4 && waits(t) {
                    continue; // step 3 asked for an operator (the annotation flow)
                }
                let (actor, command) = &flow[step];
                commands.push((envelope(id, step, actor, command), command.clone()));
            }
        }
        decide_all(&rt.log, &rt.codec, &rt.store, &rt.topics, &commands)?;
        start = end;
    }
    Ok(())
}
