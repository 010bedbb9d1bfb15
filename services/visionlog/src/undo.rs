//! `visionlog task undo-batch`: undoing a faulty batch (seed 003) without editing history; the
//! use case is the task manager's (`visionlog_task_manager`), shared with the HTTP API.

use crate::runtime::Runtime;
use serde_json::json;
use std::time::Duration;

/// `task undo-batch` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct UndoArgs {
    /// The correlation id of the batch (as `task show --json` prints it on each event).
    correlation_id: String,
    /// Why it is undone (recorded on each task's BatchReverted event).
    #[arg(long)]
    reason: String,
    /// Who asks: a service (operators and customers may not undo batches).
    #[arg(long, default_value = "service:task-manager")]
    actor: String,
    /// Print what would be reverted, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Seconds to wait for the aggregators' outcomes (0: send and return). Useful where the
    /// services run beside this command (Kafka); the embedded log is one process's at a time.
    #[arg(long, default_value_t = 0)]
    wait_s: u64,
    /// One JSON object per task, and a summary object as the last line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(rt: &Runtime, a: &UndoArgs) -> anyhow::Result<()> {
    let progress = crate::progress::Progress::spinner("undo-batch", a.json);
    progress.say(format!("finding and compensating batch {}", a.correlation_id));
    let report = rt.task_manager().undo_batch(&visionlog_task_manager::Undo {
        correlation_id: a.correlation_id.clone(),
        reason: a.reason.clone(),
        actor: a.actor.clone(),
        dry_run: a.dry_run,
        wait: Duration::from_secs(a.wait_s),
    })?;
    drop(progress);
    for t in &report.tasks {
        let mut line = serde_json::to_value(t)?;
        if let Some(o) = line.as_object_mut() {
            o.remove("skipped_because");
        }
        print(a.json, &line);
    }
    let summary = json!({
        "batch": report.batch,
        "undo_correlation_id": report.undo_correlation_id,
        "tasks": report.tasks.len(),
        "states": report.states(),
        "skipped": report.skipped(),
    });
    crate::output::line(format!("{summary}"));
    Ok(())
}

fn print(json: bool, line: &serde_json::Value) {
    if json {
        crate::output::line(format!("{line}"));
    } else {
        let detail = line["detail"].as_str().unwrap_or_default();
        crate::output::line(format!(
            "{:<14} {:<13} {}",
            line["task_id"].as_str().unwrap_or_default(),
            line["state"].as_str().unwrap_or_default(),
            detail
        ));
    }
}
