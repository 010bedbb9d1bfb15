//! `visionlog bench trainer`: the trainer's peak memory on a class group of N labelled tasks and
//! on one of 10N (the same class group grown tenfold, photos in the object store). Each training
//! runs in a process of its own, so its peak RSS (`VmHWM`) is its own: once bounded by
//! `--memory-mb`, and once holding every prepared photo, the way the trainer trained before
//! (the baseline). `ratio` = the bounded trainer's peak at 10N ÷ its peak at N (flat is 1).

use super::exports::status_mb;
use super::workbench::{decide_all, envelope, rebuild_views, workload};
use crate::runtime::{Backends, Runtime};
use serde_json::{Value, json};
use std::time::Instant;
use visionlog_simulated_operators::scenario::{class_group_key, images, scenario};

#[derive(clap::Args, Debug)]
pub(crate) struct TrainerBench {
    /// Labelled tasks in the smaller class group (N); the larger one has 10N.
    #[arg(long, default_value_t = 300)]
    tasks: usize,
    /// The bounded trainer's memory for prepared photos (MB).
    #[arg(long, default_value_t = 64)]
    memory_mb: u64,
    /// Optimizer steps of each training run.
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Internal: train once on `--data-dir` with `--memory-mb` (0: unbounded) and report.
    #[arg(long, hide = true)]
    measure: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

const PARTITIONS: u32 = 2;

/// The child: one training run on the history in the data dir.
fn measure(backends: &Backends, b: &TrainerBench) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let mut config = visionlog_inference::TrainerConfig::default();
    config.train.steps = b.steps;
    config.memory_bytes = if b.memory_mb == 0 { usize::MAX } else { (b.memory_mb as usize) << 20 };
    let trainer = visionlog_inference::Trainer::new(rt.store.clone(), rt.objects.clone(), rt.registry.clone(), config);
    let before = status_mb("VmRSS:")?;
    let started = Instant::now();
    let run = trainer.train_and_promote(&visionlog_models::ModelKey::detector("acme", &class_group_key("acme")))?;
    let report = json!({
        "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM:")?, "seconds": started.elapsed().as_secs_f64(),
        "tasks": run.info.tasks, "photos": run.info.examples,
    });
    crate::output::line(report.to_string());
    Ok(())
}

/// Labels tasks `range` through the operators' flow and stores their photos.
fn label(rt: &Runtime, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    let ids: Vec<String> = range.map(|t| format!("task-{t:06}")).collect();
    for chunk in ids.chunks(500) {
        let mut commands = Vec::new();
        for id in chunk {
            for (key, png) in images(&scenario(id, "acme")) {
                rt.objects.put(&key, png)?;
            }
            for (step, (actor, command)) in workload(id).into_iter().enumerate() {
                commands.push((envelope(id, step, actor, &command), command));
            }
        }
        decide_all(&rt.log, &rt.codec, &rt.store, &rt.topics, &commands)?;
    }
    rebuild_views(rt)?;
    Ok(())
}

/// Runs one training in a child process; its report.
fn child(data_dir: &std::path::Path, b: &TrainerBench, memory_mb: u64) -> anyhow::Result<Value> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--partitions", &PARTITIONS.to_string(), "--fsync", "never", "bench", "trainer", "--measure"])
        .args(["--memory-mb", &memory_mb.to_string(), "--steps", &b.steps.to_string(), "--json"])
        .env_remove("VISIONLOG_LOG")
        .env_remove("VISIONLOG_STORE")
        .env_remove("VISIONLOG_OBJECTS")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "training run failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_str(stdout.lines().last().unwrap_or_default())?)
}

pub(super) fn run(backends: &Backends, b: &TrainerBench) -> anyhow::Result<()> {
    if b.measure {
        return measure(backends, b);
    }
    anyhow::ensure!(b.memory_mb > 0, "--memory-mb must be at least 1");
    let dir = tempfile::tempdir()?;
    let mut bk = backends.clone();
    bk.data_dir = dir.path().join("data");
    bk.partitions = PARTITIONS;
    bk.fsync = visionlog_log::FsyncPolicy::Never;
    bk.log = None;
    bk.store = None;
    bk.objects = None;
    let mut sizes = Vec::new();
    let mut labelled = 0;
    for tasks in [b.tasks, b.tasks * 10] {
        let started = Instant::now();
        {
            let rt = Runtime::open(&bk)?;
            label(&rt, labelled..tasks)?;
        } // closed: the training runs open it in turn
        labelled = tasks;
        let label_s = started.elapsed().as_secs_f64();
        let bounded = child(&bk.data_dir, b, b.memory_mb)?;
        let unbounded = child(&bk.data_dir, b, 0)?;
        tracing::info!(tasks, label_s, "bench trainer: class group measured");
        sizes.push(
            json!({ "labelled_tasks": tasks, "label_s": label_s, "bounded": bounded, "all_in_memory": unbounded }),
        );
    }
    let peak = |i: usize, which: &str| sizes[i][which]["peak_rss_mb"].as_f64().unwrap_or(0.0);
    let ratio = peak(1, "bounded") / peak(0, "bounded").max(1e-6);
    let baseline_ratio = peak(1, "all_in_memory") / peak(0, "all_in_memory").max(1e-6);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let report = json!({
        "bench": "trainer", "memory_mb": b.memory_mb, "steps": b.steps, "sizes": sizes,
        "baseline": "the same trainer holding every prepared photo (as before), same histories, same run",
        "baseline_ratio": round(baseline_ratio),
        "ratio": round(ratio),
    });
    if b.json {
        crate::output::line(report.to_string());
    } else {
        crate::output::line(serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
