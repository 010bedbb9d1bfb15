//! `visionlog bench ...`: throughput against a baseline measured in the same run.

use crate::runtime::{Backends, open_log};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::AggregatorConfig;
use visionlog_codec::envelope::{CommandEnvelope, names};
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::*;
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, FsyncPolicy, LogRecord, Record};
use visionlog_operators::scenario::scenario;
use visionlog_store::{EmbeddedStore, ReadStore};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// The aggregator's events/s against raw appends of the same bytes to the same log.
    Aggregator(AggregatorBench),
    /// Live projection and rebuild of every view, against a raw decode of the same events.
    Projections(ProjectionsBench),
    /// Inference photos/s of a TorchScript detector, against Python PyTorch on the same photos.
    Inference(crate::bench_inference::InferenceBench),
    /// Tiering MB/s against raw object-store puts of the same bytes; replay from cold vs hot.
    Tiering(crate::bench_tiering::TieringBench),
    /// Task creates/s and p99 through the HTTP gateway, against a static endpoint of the same server.
    Gateway(crate::bench_gateway::GatewayBench),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ProjectionsBench {
    /// Tasks in the workload (8 events each; every other one detected and quality-checked).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Partitions (one projector thread each).
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct AggregatorBench {
    /// Tasks in the workload (8 commands and 8 events each).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Partitions (one aggregator thread each).
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// fsync policy of the log: always, never or `<N>ms`.
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// Commands sent one at a time after the throughput run, for command -> outcome latency.
    #[arg(long, default_value_t = 500)]
    latency_commands: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// What a bench runs on: the log named by `--log` (embedded in a throw-away directory by
/// default, or a broker started for the run), an in-memory schema registry, the read store named
/// by `--store` in a keyspace of the run's own (else an embedded one), and topics of a run of
/// their own (so a shared broker's earlier runs stay apart).
pub(crate) struct Workbench {
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

pub(crate) fn run(backends: &Backends, cmd: &BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Aggregator(b) => aggregator(backends, b),
        BenchCmd::Projections(b) => projections(backends, b),
        BenchCmd::Inference(b) => crate::bench_inference::run(b),
        BenchCmd::Tiering(b) => crate::bench_tiering::run(backends, b),
        BenchCmd::Gateway(b) => crate::bench_gateway::run(backends, b),
    }
}

/// The commands of one task detected by a model and quality-checked (two boxes removed).
fn checked_workload(task_id: &str) -> Vec<(&'static str, TaskCommand)> {
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
fn workload(task_id: &str) -> Vec<(&'static str, TaskCommand)> {
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
fn envelope(task_id: &str, step: usize, actor: &str, command: &TaskCommand) -> CommandEnvelope {
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

fn fat_detection(boxes: usize) -> TaskEvent {
    TaskEvent::ObjectsDetected(ObjectsDetected {
        attempt: 1,
        model: ModelRef { model_id: "retail-detector".into(), version: 12 },
        objects: (0..boxes)
            .map(|i| DetectedObject {
                object_id: ObjectId(format!("d1.{i}")),
                image: (i % 3) as u32,
                bbox: BoundingBox {
                    x: (i % 40) as f32 * 31.5 + 0.25,
                    y: (i / 40) as f32 * 37.75 + 0.5,
                    w: 28.125,
                    h: 34.375,
                },
                class_id: Some((i % 57) as u32 + 1),
                score: 0.5 + (i % 50) as f32 / 100.0,
            })
            .collect(),
    })
}

fn aggregator(backends: &Backends, b: &AggregatorBench) -> anyhow::Result<()> {
    let w = Workbench::open(backends, b.fsync, b.partitions)?;
    let (log, codec, store, topics) = (w.log.clone(), w.codec.clone(), w.store.clone(), w.topics.clone());

    // the workload, written before the clock starts: per partition, in task order per step
    let flows: Vec<_> = (0..b.tasks).map(|t| (format!("task-{t:06}"), workload(&format!("task-{t:06}")))).collect();
    let mut commands = Vec::with_capacity(flows.len() * 8);
    for step in 0..8 {
        for (task_id, flow) in &flows {
            let (actor, command) = &flow[step];
            commands.push((envelope(task_id, step, actor, command), command.clone()));
        }
    }
    CommandBus::new(log.clone(), codec.clone(), topics.clone()).send_batch(&commands)?;
    let command_ends = (0..b.partitions).map(|p| log.end_offset(&topics.commands, p)).collect::<Result<Vec<_>, _>>()?;

    // the aggregators, timed until every command is decided
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads =
        visionlog_aggregator::spawn_owners(&log, &codec, &store, &topics, &AggregatorConfig::default(), &stop);
    loop {
        let done = (0..b.partitions).all(|p| {
            log.committed(visionlog_aggregator::GROUP, &topics.commands, p)
                .ok()
                .flatten()
                .is_some_and(|pos| pos.offset >= command_ends[p as usize])
        });
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency = latency(&log, &codec, &topics, b.latency_commands)?;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("aggregator thread")?;
    }
    let mut a = audit(log.as_ref(), &topics)?;
    // the throughput figures are of the workload alone
    let latency_tasks = a.events_by_type.get("TaskCreated").copied().unwrap_or(0).saturating_sub(b.tasks as u64);
    a.events -= latency_tasks;
    a.decisions -= latency_tasks;
    let events_per_s = a.events as f64 / elapsed;

    // the baseline: the same event records appended raw to the same log, same threads, same batches
    let base = Topics::new("baseline", b.partitions);
    base.create(log.as_ref())?;
    let mut batches: Vec<Vec<Vec<Record>>> = Vec::new();
    let mut baseline_events = 0u64;
    for p in 0..b.partitions {
        let records: Vec<LogRecord> = log.read(&topics.events, p, 0, usize::MAX)?;
        let events: Vec<Record> = records
            .into_iter()
            .filter(|r| visionlog_codec::envelope::get(&r.headers, names::KIND) == Some(b"event"))
            .map(|r| Record { key: r.key, headers: r.headers, value: r.value })
            .collect();
        baseline_events += events.len() as u64;
        // the aggregator appends one batch per 500 commands: one event per command here
        batches.push(events.chunks(AggregatorConfig::default().max_batch).map(<[Record]>::to_vec).collect());
    }
    let started = Instant::now();
    std::thread::scope(|s| {
        for (p, chunks) in batches.iter().enumerate() {
            let (log, base) = (&log, &base);
            s.spawn(move || {
                for chunk in chunks {
                    log.append(&base.events, p as u32, chunk).expect("baseline append");
                }
            });
        }
    });
    let baseline_per_s = baseline_events as f64 / started.elapsed().as_secs_f64();

    let fat = fat_detection(1000);
    let avro = codec.encode_event(&fat)?.len();
    let json_len = serde_json::to_vec(&fat)?.len();
    let report = json!({
        "bench": "aggregator",
        "log": w.log_name(),
        "tasks": b.tasks,
        "partitions": b.partitions,
        "fsync": format!("{:?}", b.fsync),
        "commands": a.decisions,
        "events": a.events,
        "version_gaps": a.version_gaps,
        "duplicate_events": a.duplicate_events,
        "rejections": a.rejections,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "events_per_s": events_per_s.round(),
        "baseline_events_per_s": baseline_per_s.round(),
        "commands_per_s": (a.decisions as f64 / elapsed).round(),
        "ratio": (events_per_s / baseline_per_s * 1000.0).round() / 1000.0,
        "latency_commands": latency.len(),
        "latency_p50_ms": percentile(&latency, 0.50),
        "latency_p99_ms": percentile(&latency, 0.99),
        "avro_bytes_per_event": avro,
        "json_bytes_per_event": json_len,
        "avro_json_ratio": (avro as f64 / json_len as f64 * 1000.0).round() / 1000.0,
    });
    if !b.json {
        crate::output::line(format!(
            "aggregator: {:.0} events/s ({} events in {:.2}s) vs raw append {:.0} events/s: ratio {}",
            events_per_s, a.events, elapsed, baseline_per_s, report["ratio"]
        ));
        crate::output::line(format!(
            "command -> outcome latency, {} commands one at a time: p50 {} ms, p99 {} ms",
            latency.len(),
            report["latency_p50_ms"],
            report["latency_p99_ms"]
        ));
        crate::output::line(format!(
            "fat ObjectsDetected (1000 boxes): avro {avro} B, json {json_len} B ({})",
            report["avro_json_ratio"]
        ));
    }
    crate::output::line(format!("{report}"));
    // the log's clients go before a broker started for this run
    drop(log);
    Ok(())
}

/// Sends `n` CreateTask commands one at a time (each waits for the log's acknowledgement, then
/// a millisecond) while the aggregators run, and returns each one's command -> outcome latency
/// in ms, from the log's record timestamps.
fn latency(log: &Arc<dyn EventLog>, codec: &Arc<Codec>, topics: &Topics, n: usize) -> anyhow::Result<Vec<i64>> {
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());
    let outcome_starts =
        (0..topics.partitions).map(|p| log.end_offset(&topics.outcomes, p)).collect::<Result<Vec<_>, _>>()?;
    let mut sent = std::collections::HashMap::new();
    for i in 0..n {
        let task_id = format!("latency-{i:06}");
        let command = TaskCommand::CreateTask(scenario(&task_id, "acme").create);
        let envelope = envelope(&task_id, 0, "customer:acme", &command);
        let (partition, offset) = bus.send(&envelope, &command)?;
        sent.insert(envelope.command_id, (partition, offset));
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answered = std::collections::HashMap::new();
    let mut next = outcome_starts;
    while answered.len() < sent.len() && Instant::now() < deadline {
        for p in 0..topics.partitions {
            for r in log.read(&topics.outcomes, p, next[p as usize], 4096)? {
                next[p as usize] = r.offset + 1;
                if let Some(key) = r.key.and_then(|k| String::from_utf8(k).ok()) {
                    answered.entry(key).or_insert(r.timestamp_ms);
                }
            }
        }
    }
    let mut latencies = Vec::with_capacity(sent.len());
    for (command_id, (partition, offset)) in sent {
        let Some(done) = answered.get(&command_id) else { anyhow::bail!("no outcome for {command_id} within 120 s") };
        let command = log.read(&topics.commands, partition, offset, 1)?;
        let sent_at = command.first().map_or(*done, |r| r.timestamp_ms);
        latencies.push(done - sent_at);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs the aggregators over `commands` and waits until all are decided; returns the seconds.
fn decide_all(
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
pub(crate) fn history(
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

/// Decodes every event of `events` as a projector reads them (journal rules, Avro), one thread
/// per partition, doing nothing else: the baseline of the projection figures.
fn raw_decode(log: &Arc<dyn EventLog>, codec: &Codec, topics: &Topics) -> anyhow::Result<u64> {
    let counts: Vec<anyhow::Result<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..topics.partitions)
            .map(|p| {
                s.spawn(move || {
                    let mut reader = visionlog_journal::JournalReader::default();
                    let (mut next, mut n) = (0, 0u64);
                    loop {
                        let records = log.read(&topics.events, p, next, visionlog_projector::REBUILD_BATCH)?;
                        let Some(last) = records.last() else { return Ok(n) };
                        next = last.offset + 1;
                        for r in records {
                            let Ok(Some(visionlog_journal::Entry::Decision(d))) = reader.feed(r) else { continue };
                            if let visionlog_journal::DecisionBody::Accepted(events) = d.body {
                                for e in events {
                                    std::hint::black_box(codec.decode_event(&e.payload)?);
                                    n += 1;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("decode thread")).collect()
    });
    counts.into_iter().sum()
}

fn projections(backends: &Backends, b: &ProjectionsBench) -> anyhow::Result<()> {
    let w = Workbench::open(backends, FsyncPolicy::Never, b.partitions)?;
    let (log, codec, store, topics) = (w.log.clone(), w.codec.clone(), w.store.clone(), w.topics.clone());
    let a = history(&log, &codec, &store, &topics, b.tasks)?;

    let ctx = visionlog_projector::ProjectorContext {
        log: log.clone(),
        codec: codec.clone(),
        topics: topics.clone(),
        store: store.clone(),
        before_rows: None,
    };
    let stop = AtomicBool::new(false);
    // baseline: decode only
    let started = Instant::now();
    let decoded = raw_decode(&log, &codec, &topics)?;
    let decode_per_s = decoded as f64 / started.elapsed().as_secs_f64();
    // live: the serving generation, batches of a live consumer
    let started = Instant::now();
    let ends = (0..topics.partitions).map(|p| log.end_offset(&topics.events, p)).collect::<Result<Vec<_>, _>>()?;
    let live_events: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..topics.partitions)
            .map(|p| {
                let (ctx, stop, end) = (&ctx, &stop, ends[p as usize]);
                s.spawn(move || {
                    let mut projector = visionlog_projector::Projector::new(ctx.store.clone(), 1);
                    let group = visionlog_views::generations::group(1);
                    let sub = visionlog_journal::Subscription {
                        log: ctx.log.as_ref(),
                        codec: &ctx.codec,
                        topics: &ctx.topics,
                        group: &group,
                        partition: p,
                    };
                    visionlog_journal::consume_until(sub, &mut projector, end, visionlog_journal::LIVE_BATCH, stop)
                        .map(|()| projector.stats().events)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("projector thread")).sum::<Result<u64, _>>()
    })?;
    let live_s = started.elapsed().as_secs_f64();
    // rebuild: a new generation from the whole history, switched in
    let rebuilt = visionlog_projector::rebuild(&ctx, false, &stop)?;
    let project_per_s = live_events as f64 / live_s;
    let rebuild_per_s = rebuilt.stats.events as f64 / rebuilt.elapsed_s;
    let rebuild_rows_per_s = rebuilt.stats.rows_applied as f64 / rebuilt.elapsed_s;
    let mut report = json!({
        "bench": "projections",
        "log": w.log_name(),
        "store": w.store_name,
        "tasks": b.tasks,
        "partitions": b.partitions,
        "events": a.events,
        "rejections": a.rejections,
        "project_events": live_events,
        "project_events_per_s": project_per_s.round(),
        "rebuild_events": rebuilt.stats.events,
        "rebuild_rows_written": rebuilt.stats.rows_applied,
        "rebuild_s": (rebuilt.elapsed_s * 1000.0).round() / 1000.0,
        "rebuild_events_per_s": rebuild_per_s.round(),
        "rebuild_write_s": rebuilt.stats.write_us as f64 / 1e6,
        "rebuild_store_s": rebuilt.stats.store_us as f64 / 1e6,
        "decode_events_per_s": decode_per_s.round(),
        "project_ratio": (project_per_s / decode_per_s * 1000.0).round() / 1000.0,
        "ratio": (rebuild_per_s / decode_per_s * 1000.0).round() / 1000.0,
    });
    if let Some(cql) = &w.cql {
        // on a CQL server the baseline is the same rows written by plain prepared INSERTs through
        // the same driver and session (no lightweight transaction, no fold): what the cluster can
        // take; the ratio is the rebuild's rows/s against it
        let generation = rebuilt.generation;
        let mut rows = Vec::new();
        for t in visionlog_views::views::VIEW_TABLES {
            visionlog_store::for_each_row(store.as_ref(), &visionlog_views::generations::table(t, generation), |r| {
                rows.push(r);
                Ok(())
            })?;
        }
        let started = Instant::now();
        cql.insert_unconditionally("bench_raw_rows", &rows)?;
        let raw_rows_per_s = rows.len() as f64 / started.elapsed().as_secs_f64();
        report["baseline"] = json!("raw prepared INSERTs of the rebuilt rows, same driver");
        report["rebuild_rows_per_s"] = json!(rebuild_rows_per_s.round());
        report["raw_insert_rows"] = json!(rows.len());
        report["raw_insert_rows_per_s"] = json!(raw_rows_per_s.round());
        report["ratio"] = json!((rebuild_rows_per_s / raw_rows_per_s * 1000.0).round() / 1000.0);
    }
    if !b.json {
        crate::output::line(format!(
            "projections of {} events on {}: live {:.0} events/s, rebuild {:.0} events/s; raw decode {:.0} events/s; ratio {}",
            a.events, w.store_name, project_per_s, rebuild_per_s, decode_per_s, report["ratio"]
        ));
    }
    crate::output::line(format!("{report}"));
    drop(ctx);
    drop(log);
    Ok(())
}
