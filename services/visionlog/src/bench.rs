//! `visionlog bench ...`: throughput against a baseline measured in the same run.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::AggregatorConfig;
use visionlog_codec::envelope::{CommandEnvelope, names};
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::*;
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy, LogRecord, Record};
use visionlog_operators::scenario::scenario;
use visionlog_store::{EmbeddedStore, ReadStore};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// The aggregator's events/s against raw appends of the same bytes to the same log.
    Aggregator(AggregatorBench),
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
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: &BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Aggregator(b) => aggregator(b),
    }
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

fn aggregator(b: &AggregatorBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log: Arc<dyn EventLog> = Arc::new(FileLog::open(
        &dir.path().join("log"),
        FileLogOptions { fsync: b.fsync, ..FileLogOptions::default() },
    )?);
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory()))?);
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb"))?);
    let topics = Topics::new("bench", b.partitions);
    topics.create(log.as_ref())?;

    // the workload, written before the clock starts: per partition, in task order per step
    let flows: Vec<_> = (0..b.tasks).map(|t| (format!("task-{t:06}"), workload(&format!("task-{t:06}")))).collect();
    let mut commands = Vec::with_capacity(flows.len() * 8);
    for step in 0..8 {
        for (task_id, flow) in &flows {
            let (actor, command) = &flow[step];
            let envelope = CommandEnvelope {
                command_id: format!("{task_id}/{step}"),
                task_id: task_id.clone(),
                command_type: command.type_name().to_owned(),
                expected_version: Some(step as u64),
                actor: (*actor).to_owned(),
                tenant: "acme".into(),
                correlation_id: task_id.clone(),
                causation_id: None,
                issued_at_ms: 0,
            };
            commands.push((envelope, command.clone()));
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
            log.committed("aggregator", &topics.commands, p)
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
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("aggregator thread")?;
    }
    let a = audit(log.as_ref(), &topics)?;
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
        "ratio": (events_per_s / baseline_per_s * 1000.0).round() / 1000.0,
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
            "fat ObjectsDetected (1000 boxes): avro {avro} B, json {json_len} B ({})",
            report["avro_json_ratio"]
        ));
    }
    crate::output::line(format!("{report}"));
    Ok(())
}
