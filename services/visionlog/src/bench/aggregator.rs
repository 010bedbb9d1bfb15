//! `visionlog bench aggregator`: commands decided per second against raw produce of the same
//! bytes, and command -> outcome latency.

use super::workbench::*;
use crate::runtime::Backends;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::AggregatorConfig;
use visionlog_codec::Codec;
use visionlog_codec::envelope::names;
use visionlog_domain::{BoundingBox, DetectedObject, ModelRef, ObjectId, ObjectsDetected, TaskCommand, TaskEvent};
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, FsyncPolicy, LogRecord, Record};
use visionlog_simulated_operators::scenario::scenario;

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
    pub(crate) json: bool,
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

pub(super) fn run(backends: &Backends, b: &AggregatorBench) -> anyhow::Result<()> {
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
