//! `visionlog bench exports`: the exporter's peak memory and time on a history of N events and
//! on one of 10N (the same history grown tenfold), each export in a process of its own (peak
//! RSS from `/proc/self/status`); then an incremental export after 1% more tasks, against a
//! full export of the same instant. `ratio` = the full export's peak RSS at 10N ÷ at N (flat
//! is 1); `incremental_speedup` = the full export's seconds ÷ the incremental one's.

use super::workbench::{decide_tasks, rebuild_views};
use crate::runtime::{Backends, Runtime};
use serde_json::{Value, json};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct ExportsBench {
    /// Events in the smaller history (N, 8 per task); the larger one has 10N.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// The measured processes' embedded-store page cache (MB; redb's default is 1,024).
    #[arg(long, default_value_t = 64)]
    store_cache_mb: u64,
    /// Internal: export once on `--data-dir` under `--root` and report.
    #[arg(long, hide = true)]
    measure: bool,
    /// Internal: the export's folder.
    #[arg(long, hide = true, default_value = "exports")]
    root: String,
    /// Internal: the export's as-of instant.
    #[arg(long, hide = true, default_value_t = 0)]
    as_of_ms: i64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

const PARTITIONS: u32 = 2;

/// A field of `/proc/self/status`, in MB.
pub(super) fn status_mb(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(field)).ok_or_else(|| anyhow::anyhow!("no {field}"))?;
    let kb: f64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok((kb / 1024.0 * 10.0).round() / 10.0)
}

/// The child: one export of the history in the data dir.
fn measure(backends: &Backends, b: &ExportsBench) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let before = status_mb("VmRSS:")?;
    let started = Instant::now();
    let card = crate::export::snapshot_all(&rt, &b.root, b.as_of_ms)?;
    let rows: u64 = card.datasets.values().map(|d| d.rows).sum();
    let report = json!({
        "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM:")?, "seconds": started.elapsed().as_secs_f64(),
        "rows": rows, "tasks_folded": card.tasks_folded, "rows_carried": card.rows_carried,
        "incremental": card.base.is_some(),
    });
    crate::output::line(report.to_string());
    Ok(())
}

/// Runs one export in a child process; its report.
fn child(data_dir: &std::path::Path, b: &ExportsBench, root: &str, as_of_ms: i64) -> anyhow::Result<Value> {
    let store = format!("embedded://{}?cache_mb={}", data_dir.join("store.redb").display(), b.store_cache_mb);
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--store", &store])
        .args(["--partitions", &PARTITIONS.to_string(), "--fsync", "never", "bench", "exports", "--measure"])
        .args(["--root", root, "--as-of-ms", &as_of_ms.to_string(), "--json"])
        .env_remove("VISIONLOG_LOG")
        .env_remove("VISIONLOG_STORE")
        .env_remove("VISIONLOG_OBJECTS")
        .output()?;
    anyhow::ensure!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(stdout.lines().last().unwrap_or_default())?)
}

/// Decides tasks `range` and rebuilds the views (and the per-task index) over the history.
fn grow(bk: &Backends, range: std::ops::Range<usize>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let rt = Runtime::open(bk)?;
    decide_tasks(&rt, range, |t| t % 20 == 10)?;
    rebuild_views(&rt)?;
    Ok(started.elapsed().as_secs_f64())
}

pub(super) fn run(backends: &Backends, b: &ExportsBench) -> anyhow::Result<()> {
    if b.measure {
        return measure(backends, b);
    }
    let dir = tempfile::tempdir()?;
    let mut bk = backends.clone();
    bk.data_dir = dir.path().join("data");
    bk.partitions = PARTITIONS;
    bk.fsync = visionlog_log::FsyncPolicy::Never;
    (bk.log, bk.store, bk.objects) = (None, None, None);
    let n_tasks = (b.events / 8).max(1) as usize;
    let mut sizes = Vec::new();
    let mut decided = 0;
    for (i, tasks) in [n_tasks, n_tasks * 10].into_iter().enumerate() {
        let build_s = grow(&bk, decided..tasks)?;
        decided = tasks;
        let full = child(&bk.data_dir, b, &format!("exports-{i}"), visionlog_journal::now_ms())?;
        tracing::info!(tasks, build_s, "bench exports: history exported");
        sizes.push(json!({ "tasks": tasks, "build_s": build_s, "full": full }));
    }
    // 1% more tasks, then the same instant exported incrementally (from the 10N snapshot) and whole
    let more = n_tasks / 10;
    grow(&bk, decided..decided + more)?;
    let as_of = visionlog_journal::now_ms();
    let incremental = child(&bk.data_dir, b, "exports-1", as_of)?;
    let full = child(&bk.data_dir, b, "exports-whole", as_of)?;
    anyhow::ensure!(incremental["rows"] == full["rows"], "incremental {incremental} and full {full} differ in rows");
    let peak = |i: usize| sizes[i]["full"]["peak_rss_mb"].as_f64().unwrap_or(0.0);
    let secs = |v: &Value| v["seconds"].as_f64().unwrap_or(0.0);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let report = json!({
        "bench": "exports", "events_n": b.events, "store_cache_mb": b.store_cache_mb, "sizes": sizes,
        "after_1_percent_more": { "tasks_added": more, "incremental": incremental, "full": full },
        "incremental_speedup": round(secs(&full) / secs(&incremental).max(1e-9)),
        "baseline": "the same export's peak RSS on the history of N events, same run",
        "ratio": round(peak(1) / peak(0).max(1e-6)),
    });
    if b.json {
        crate::output::line(report.to_string());
    } else {
        crate::output::line(serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
