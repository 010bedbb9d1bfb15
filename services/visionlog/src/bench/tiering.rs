//! `visionlog bench tiering`: the tierer's MB/s against raw object-store puts of the same bytes,
//! and a replay of the history from cold segments against one from the hot log.

use super::workbench::{Workbench, history};
use crate::runtime::Backends;
use serde_json::json;
use std::time::Instant;
use visionlog_journal::Topics;
use visionlog_log::{EventLog, FsyncPolicy};
use visionlog_objects::{LocalS3, Objects};
use visionlog_tiering::{Manifest, Step, TierConfig, TieredLog, Tierer};

#[derive(clap::Args, Debug)]
pub(crate) struct TieringBench {
    /// Tasks in the history (8 commands each; about 8 events each).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Partitions of the history.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Records per segment.
    #[arg(long, default_value_t = 10_000)]
    segment_records: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Reads every record of the events topic; returns how many, and their bytes as the log holds
/// them (value, key, headers).
fn replay(log: &dyn EventLog, topics: &Topics) -> anyhow::Result<(u64, u64)> {
    let (mut n, mut bytes) = (0, 0);
    for p in 0..topics.partitions {
        let mut from = 0;
        loop {
            let batch = log.read(&topics.events, p, from, 4096)?;
            let Some(last) = batch.last() else { break };
            from = last.offset + 1;
            n += batch.len() as u64;
            for r in &batch {
                let headers: usize = r.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
                bytes += (r.value.len() + r.key.as_ref().map_or(0, Vec::len) + headers) as u64;
            }
        }
    }
    Ok((n, bytes))
}

pub(crate) fn run(backends: &Backends, b: &TieringBench) -> anyhow::Result<()> {
    let w = Workbench::open(backends, FsyncPolicy::Never, b.partitions)?;
    let (log, codec, store, topics) = (w.log.clone(), w.codec.clone(), w.store.clone(), w.topics.clone());
    // the object store: --objects if given, else a SeaweedFS on loopback for this run
    let mut _s3 = None;
    let objects = match &backends.objects {
        Some(url) => Objects::open(url)?,
        None => {
            let s3 = LocalS3::start()?;
            let objects = s3.objects("bench")?;
            _s3 = Some(s3);
            objects
        }
    };
    let a = history(&log, &codec, &store, &topics, b.tasks)?;
    let ends: Vec<u64> = (0..topics.partitions).map(|p| log.end_offset(&topics.events, p)).collect::<Result<_, _>>()?;
    let records: u64 = ends.iter().sum();

    // hot replay first (the baseline of the cold one)
    let started = Instant::now();
    let (replayed, hot_bytes) = replay(log.as_ref(), &topics)?;
    assert_eq!(replayed, records);
    let hot_replay_s = started.elapsed().as_secs_f64();

    // tiering: read hot, encode, put, read back and check, record; everything, forced
    let config = TierConfig { segment_records: b.segment_records, ..TierConfig::new(&topics.events) };
    let tierer = Tierer::new(log.clone(), objects.clone(), config);
    let started = Instant::now();
    let steps = tierer.tier_all(true)?;
    let tier_s = started.elapsed().as_secs_f64();
    let segments: Vec<_> = steps.iter().filter_map(|s| if let Step::Written(e) = s { Some(e) } else { None }).collect();
    let cold_bytes: u64 = segments.iter().map(|e| e.bytes).sum();

    // baseline: the same segment bytes put raw, one object each
    let mut raw = Vec::new();
    for e in &segments {
        raw.push(objects.get(&e.segment, visionlog_tiering::MAX_SEGMENT_OBJECT)?);
    }
    let started = Instant::now();
    for (i, bytes) in raw.into_iter().enumerate() {
        objects.put(&format!("raw-baseline/{i:06}"), bytes)?;
    }
    let raw_s = started.elapsed().as_secs_f64();

    // drop the hot copy, then replay from cold with a fresh reader (nothing cached)
    for p in 0..topics.partitions {
        tierer.drop_hot(p)?;
    }
    let hot_left: u64 = (0..topics.partitions)
        .map(|p| Ok(ends[p as usize] - log.start_offset(&topics.events, p)?))
        .sum::<anyhow::Result<u64>>()?;
    let cold = TieredLog::new(log.clone(), objects.clone(), &[&topics.events]);
    let started = Instant::now();
    assert_eq!(replay(&cold, &topics)?, (records, hot_bytes), "the cold history is the hot one");
    let cold_replay_s = started.elapsed().as_secs_f64();
    let manifest_segments: usize = (0..topics.partitions)
        .map(|p| Manifest::load(&objects, &topics.events, p).map(|m| m.len()))
        .sum::<Result<_, _>>()?;

    let mb = |bytes: u64, s: f64| bytes as f64 / 1e6 / s.max(1e-9);
    let tier_mb_s = mb(cold_bytes, tier_s);
    let raw_mb_s = mb(cold_bytes, raw_s);
    let report = json!({
        "bench": "tiering",
        "log": w.log_name(),
        "objects": objects.url().split('?').next().unwrap_or_default(),
        "tasks": b.tasks,
        "partitions": b.partitions,
        "events": a.events,
        "records": records,
        "segments": segments.len(),
        "manifest_segments": manifest_segments,
        "hot_bytes": hot_bytes,
        "cold_bytes": cold_bytes,
        "compression": (hot_bytes as f64 / cold_bytes.max(1) as f64 * 100.0).round() / 100.0,
        "records_left_hot": hot_left,
        "tier_s": (tier_s * 1000.0).round() / 1000.0,
        "tier_mb_s": (tier_mb_s * 100.0).round() / 100.0,
        "tier_hot_mb_s": (mb(hot_bytes, tier_s) * 100.0).round() / 100.0,
        "raw_put_mb_s": (raw_mb_s * 100.0).round() / 100.0,
        "ratio": (tier_mb_s / raw_mb_s * 1000.0).round() / 1000.0,
        "replay_hot_records_per_s": (records as f64 / hot_replay_s).round(),
        "replay_cold_records_per_s": (records as f64 / cold_replay_s).round(),
        "replay_ratio": (hot_replay_s / cold_replay_s * 1000.0).round() / 1000.0,
    });
    if !b.json {
        crate::output::line(format!(
            "tiered {} records ({} MB hot, {} MB cold) in {} segments: {:.1} MB/s vs raw puts {:.1} MB/s (ratio {}); replay cold {} vs hot {} records/s",
            records,
            hot_bytes / 1_000_000,
            cold_bytes / 1_000_000,
            segments.len(),
            tier_mb_s,
            raw_mb_s,
            report["ratio"],
            report["replay_cold_records_per_s"],
            report["replay_hot_records_per_s"],
        ));
    }
    crate::output::line(report);
    Ok(())
}
