//! `visionlog bench reads`: latency of the per-task reads over HTTP (summary, events, state at a
//! version, result) and of the operator queue, on a history of N events and on one of 10N, in
//! the same run on the same machine (one task in 20 stays in the operator queue, so its backlog
//! grows tenfold too); `ratio` is the worst endpoint's p50 at 10N over its p50 at N
//! (a read that costs what the task costs stays near 1). The journal fold every read cost
//! before the per-task index is measured beside them at both sizes. `undo_plan` is a dry-run
//! undo of one task's batch (`POST /v1/admin/batches/{id}/undo`): finding the batch's tasks
//! through the correlation-id index and folding each.

use super::workbench::{decide_tasks, rebuild_views, task_id};
use crate::runtime::{Backends, Runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(crate) struct ReadsBench {
    /// Events in the smaller history (N, 8 per task); the larger one has 10N.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Tasks read per endpoint and history (the same tasks at N and at 10N).
    #[arg(long, default_value_t = 200)]
    reads: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Whether task `t` stays in the operator queue (one in 20, none of the sampled ones): the
/// queue's backlog grows with the history, as a busy retailer's does.
fn waits(t: usize, sample_step: usize) -> bool {
    t % 20 == 10 && !t.is_multiple_of(sample_step)
}

/// p50 and p99 of `ms`.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1))).copied().unwrap_or(0.0);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    (round(at(0.5)), round(at(0.99)))
}

/// The endpoints read, with the token that reads them.
const ENDPOINTS: [(&str, &str); 6] = [
    ("summary", "/v1/tasks/{id}"),
    ("events", "/v1/tasks/{id}/events"),
    ("state_at_version", "/v1/tasks/{id}/state?version=3"),
    ("result", "/v1/tasks/{id}/result"),
    ("operator_queue", "/v1/operator/queue?limit=50"),
    ("undo_plan", "/v1/admin/batches/{id}/undo"),
];

/// p50/p99 (ms) of each endpoint over the sample tasks, and of the journal fold.
fn measure(rt: &Runtime, addr: std::net::SocketAddr, sample: &[String], folds: usize) -> anyhow::Result<Value> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut out = serde_json::Map::new();
    for (name, path) in ENDPOINTS {
        let token = match name {
            "operator_queue" => "op-token",
            "undo_plan" => "ops-token",
            _ => "acme-token",
        };
        let mut ms = Vec::with_capacity(sample.len());
        for id in sample {
            let url = format!("http://{addr}{}", path.replace("{id}", id));
            let request = if name == "undo_plan" {
                client.post(&url).json(&json!({ "reason": "bench", "dry_run": true }))
            } else {
                client.get(&url)
            };
            let t = Instant::now();
            let response = request.bearer_auth(token).send()?;
            let status = response.status();
            let body = response.bytes()?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status.is_success(), "{url}: {status}: {}", String::from_utf8_lossy(&body));
        }
        let (p50, p99) = percentiles(ms);
        out.insert(name.to_owned(), json!({ "p50_ms": p50, "p99_ms": p99 }));
    }
    // what every per-task read cost before the index: a fold of the task's whole partition
    let mut ms = Vec::new();
    for id in sample.iter().take(folds) {
        let t = Instant::now();
        let events = visionlog_journal::task_events(rt.log.as_ref(), &rt.codec, &rt.topics, id, 0)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(!events.is_empty(), "{id} has no events");
    }
    let (p50, p99) = percentiles(ms);
    out.insert("journal_fold".into(), json!({ "p50_ms": p50, "p99_ms": p99 }));
    Ok(Value::Object(out))
}

pub(super) fn run(backends: &Backends, b: &ReadsBench) -> anyhow::Result<()> {
    let tenants = json!({
        "tenants": [{ "id": "acme", "team": "shelves", "tokens": ["acme-token"], "qc_per_mille": 0 }],
        "operators": [{ "id": "op-bench", "teams": ["shelves"], "tokens": ["op-token"] }],
        "admins": [{ "id": "ops", "tokens": ["ops-token"] }],
    });
    let (_dir, rt) = super::workbench::bench_runtime(backends, b.partitions, tenants)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = crate::gateway::start(&rt, "127.0.0.1:0".parse()?, &stop)?;
    let n_tasks = (b.events / 8).max(1) as usize;
    // the same tasks are read at both sizes: spread over the first history
    let step = (n_tasks / b.reads.max(1)).max(1);
    let sample: Vec<String> = (0..n_tasks).step_by(step).take(b.reads).map(task_id).collect();
    let folds = 5.min(sample.len());
    let mut sizes = Vec::new();
    let mut decided = 0;
    for tasks in [n_tasks, n_tasks * 10] {
        let started = Instant::now();
        decide_tasks(&rt, decided..tasks, |t| waits(t, step))?;
        decided = tasks;
        let decide_s = started.elapsed().as_secs_f64();
        let project_s = rebuild_views(&rt)?;
        let events: u64 = (0..rt.topics.partitions)
            .map(|p| rt.log.end_offset(&rt.topics.events, p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .sum();
        let reads = measure(&rt, server.addr, &sample, folds)?;
        tracing::info!(tasks, events, decide_s, project_s, "bench reads: history measured");
        let waiting = (0..tasks).filter(|t| waits(*t, step)).count();
        sizes.push(json!({ "tasks": tasks, "waiting_for_an_operator": waiting, "journal_records": events, "decide_s": decide_s, "rebuild_s": project_s, "reads": reads }));
    }
    stop.store(true, Ordering::Relaxed);
    server.join()?;
    let mut ratios = serde_json::Map::new();
    let mut worst: (f64, &str) = (0.0, "");
    for (name, _) in ENDPOINTS {
        let p50 = |i: usize| sizes[i]["reads"][name]["p50_ms"].as_f64().unwrap_or(0.0);
        let r = p50(1) / p50(0).max(1e-6);
        ratios.insert(name.to_owned(), json!((r * 1000.0).round() / 1000.0));
        if r > worst.0 {
            worst = (r, name);
        }
    }
    let fold = |i: usize| sizes[i]["reads"]["journal_fold"]["p50_ms"].as_f64().unwrap_or(0.0);
    let report = json!({
        "bench": "reads", "log": rt.log_url.split('?').next().unwrap_or_default(), "partitions": b.partitions,
        "events_n": b.events, "sample_tasks": sample.len(), "sizes": sizes, "ratios": ratios,
        "worst_endpoint": worst.1, "journal_fold_ratio": ((fold(1) / fold(0).max(1e-6)) * 1000.0).round() / 1000.0,
        "baseline": "the same endpoint's p50 on the history of N events, same run",
        "ratio": (worst.0 * 1000.0).round() / 1000.0,
    });
    if b.json {
        crate::output::line(report.to_string());
    } else {
        crate::output::line(serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
