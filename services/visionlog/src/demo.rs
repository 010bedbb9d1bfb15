//! `visionlog demo`: the whole pipeline in one process on the embedded backends.

use crate::runtime::{Backends, Runtime, Service, join, spawn};
use anyhow::{Context, bail};
use serde_json::json;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::TaskCommand;
use visionlog_journal::{audit, deterministic_id, now_ms};

/// Options of the demo.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Tasks to create.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Keep the data directory and go on from where a previous run stopped.
    #[arg(long)]
    resume: bool,
    /// Simulated operators.
    #[arg(long, default_value_t = 4)]
    operators: usize,
    /// The customer the tasks come from.
    #[arg(long, default_value = "acme")]
    customer: String,
    /// Do not upload the tasks' images (training crops are then recorded as not extractable).
    #[arg(long)]
    no_images: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// Tells whether the aggregators have decided every command sent so far (on a resumed run the
/// tasks are complete before the re-sent commands are answered).
fn commands_drained(rt: &Runtime) -> anyhow::Result<bool> {
    for p in 0..rt.topics.partitions {
        let end = rt.log.end_offset(&rt.topics.commands, p)?;
        let done = rt.log.committed(visionlog_aggregator::GROUP, &rt.topics.commands, p)?.map_or(0, |c| c.offset);
        if done < end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Tells whether a directory holds nothing or only visionlog's data, so it may be wiped.
fn is_ours(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return true };
    entries.filter_map(Result::ok).all(|e| {
        matches!(e.file_name().to_str(), Some("log" | "store.redb" | "registry.json" | "registry.json.tmp" | "objects"))
    })
}

pub(crate) fn run(backends: &Backends, args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &backends.data_dir;
    if !args.resume && dir.exists() {
        if !is_ours(dir) {
            bail!("{} holds files that are not visionlog's: give another --data-dir", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let rt = Runtime::open(backends)?;
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn(
        &rt,
        &[Service::Aggregator, Service::Executor, Service::Projector, Service::Operators],
        &stop,
        args.operators,
    );
    let started = Instant::now();
    for i in 0..args.tasks {
        let task_id = format!("task-{i:06}");
        let scenario = visionlog_operators::scenario::scenario(&task_id, &args.customer);
        if !args.no_images {
            // the customer's upload: synthetic shelf photos of the scenario's products
            for (key, png) in visionlog_operators::scenario::images(&scenario) {
                rt.objects.put(&key, png)?;
            }
        }
        let create = TaskCommand::CreateTask(scenario.create);
        let command_id = deterministic_id(&["demo", &task_id, "create"]);
        let envelope = CommandEnvelope {
            command_id: command_id.clone(),
            task_id,
            command_type: create.type_name().to_owned(),
            expected_version: None,
            actor: format!("customer:{}", args.customer),
            tenant: args.customer.clone(),
            correlation_id: command_id,
            causation_id: None,
            issued_at_ms: now_ms(),
        };
        rt.bus.send(&envelope, &create)?;
    }
    let progress = std::io::stderr().is_terminal() && !args.json;
    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut completed;
    loop {
        let summaries = visionlog_projector::list_summaries(rt.store.as_ref())?;
        completed = summaries.iter().filter(|s| s.completed_at_ms.is_some()).count();
        if progress {
            eprint!("\r{completed}/{} tasks completed, {:.1}s", args.tasks, started.elapsed().as_secs_f64());
        }
        if (completed >= args.tasks && commands_drained(&rt)?) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if progress {
        eprintln!();
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    join(threads)?;
    let a = audit(rt.log.as_ref(), &rt.topics)?;
    let dead_letters = rt.log.end_offset(&rt.topics.dead_letters, 0)?;
    let created = a.events_by_type.get("TaskCreated").copied().unwrap_or(0);
    let report = json!({
        "tasks_created": created,
        "tasks_completed": completed,
        "events_written": a.events,
        "events_per_task": if created > 0 { a.events as f64 / created as f64 } else { 0.0 },
        "version_gaps": a.version_gaps,
        "duplicate_events": a.duplicate_events,
        "rejected_commands": a.rejections,
        "commands_decided": a.decisions,
        "dead_letters": dead_letters,
        "owner_claims": a.claims,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "events_per_s": (a.events as f64 / elapsed).round(),
        "partitions": rt.topics.partitions,
        "data_dir": backends.data_dir.display().to_string(),
    });
    if args.json {
        crate::output::line(format!("{report}"));
    } else {
        crate::output::line(format!("visionlog demo: {} tasks through the new-project flow of seed 000", args.tasks));
        for key in [
            "tasks_created",
            "tasks_completed",
            "events_written",
            "events_per_task",
            "version_gaps",
            "duplicate_events",
            "rejected_commands",
            "dead_letters",
            "elapsed_s",
            "events_per_s",
        ] {
            crate::output::line(format!("  {key:<18} {}", report[key]));
        }
        crate::output::line(format!(
            "  try: visionlog task show task-000000 --data-dir {}",
            backends.data_dir.display()
        ));
    }
    if completed < args.tasks {
        bail!("only {completed} of {} tasks completed within {}s", args.tasks, args.timeout_s);
    }
    Ok(())
}
