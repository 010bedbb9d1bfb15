//! `visionlog bench projections`: events projected per second, rebuild and live, against a
//! raw decode of the same events (and, on a CQL store, raw inserts of the same rows).

use super::workbench::*;
use crate::runtime::Backends;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use visionlog_codec::Codec;
use visionlog_journal::Topics;
use visionlog_log::{EventLog, FsyncPolicy};

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
    pub(crate) json: bool,
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

pub(super) fn run(backends: &Backends, b: &ProjectionsBench) -> anyhow::Result<()> {
    let w = Workbench::open(backends, FsyncPolicy::Never, b.partitions)?;
    let (log, codec, store, topics) = (w.log.clone(), w.codec.clone(), w.store.clone(), w.topics.clone());
    let a = history(&log, &codec, &store, &topics, b.tasks)?;

    let ctx = visionlog_projector::ProjectorContext {
        log: log.clone(),
        codec: codec.clone(),
        topics: topics.clone(),
        store: store.clone(),
        before_rows: None,
        tombstone_grace: None,
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
