//! `visionlog task undo-batch`: undoing a faulty batch (seed 003) without editing history.
//!
//! A batch is everything one command caused, down the chain of commands it led to: the events
//! share its correlation id (a bulk `task reprocess --correlation-id`, say, with a model that
//! turned out bad). Each task the batch touched is folded again without the batch's events
//! ([`visionlog_domain::revert`]); what is left is sent as one `RevertBatch` command expecting
//! the task's current version, so a task that moves on meanwhile refuses it and a rerun folds
//! it again. The aggregator records `BatchReverted`, the executor makes a new result of the
//! restored objects (reported to the callback like any result), and the projector's views
//! follow from the events, live or rebuilt.

use crate::runtime::Runtime;
use anyhow::bail;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{Actor, RevertBatch, Stamped, TaskCommand, TaskEvent, revert};
use visionlog_journal::{accepted, deterministic_id, now_ms};

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

/// A task's history, as `revert` reads it.
struct History {
    tenant: String,
    events: Vec<(u64, String, TaskEvent)>,
}

/// The tasks with at least one event of `correlation_id`, by partition.
fn touched(rt: &Runtime, correlation_id: &str) -> anyhow::Result<BTreeMap<u32, BTreeSet<String>>> {
    let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for p in 0..rt.topics.partitions {
        for e in accepted(rt.log.as_ref(), &rt.topics.events, p, 0..u64::MAX) {
            let e = e?;
            if e.envelope.correlation_id == correlation_id {
                out.entry(p).or_default().insert(e.envelope.task_id);
            }
        }
    }
    Ok(out)
}

/// The whole histories of `tasks`, read from partition `p` of the one history.
fn histories(rt: &Runtime, p: u32, tasks: &BTreeSet<String>) -> anyhow::Result<BTreeMap<String, History>> {
    let mut out: BTreeMap<String, History> = BTreeMap::new();
    for e in accepted(rt.log.as_ref(), &rt.topics.events, p, 0..u64::MAX) {
        let e = e?;
        if !tasks.contains(&e.envelope.task_id) {
            continue;
        }
        let event = rt.codec.decode_event(&e.payload)?;
        let env = e.envelope;
        let h = out.entry(env.task_id).or_insert_with(|| History { tenant: env.tenant, events: Vec::new() });
        h.events.push((env.version, env.correlation_id, event));
    }
    Ok(out)
}

struct Planned {
    task_id: String,
    version: u64,
    tenant: String,
    command: RevertBatch,
}

pub(crate) fn run(rt: &Runtime, a: &UndoArgs) -> anyhow::Result<()> {
    let actor: Actor = a.actor.parse().map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
    if !matches!(actor, Actor::Service(_)) {
        bail!("--actor: only a service may undo a batch, not {actor}");
    }
    let touched = touched(rt, &a.correlation_id)?;
    if touched.is_empty() {
        bail!("no event has correlation id {:?}", a.correlation_id);
    }
    let (mut planned, mut skipped) = (Vec::new(), Vec::new());
    for (p, tasks) in &touched {
        for (task_id, h) in histories(rt, *p, tasks)? {
            let version = h.events.last().map_or(0, |e| e.0);
            let stamped = h.events.iter().map(|(version, correlation_id, event)| Stamped {
                version: *version,
                correlation_id,
                event,
            });
            match revert(stamped, &a.correlation_id, &a.reason) {
                Ok(command) => planned.push(Planned { task_id, version, tenant: h.tenant, command }),
                Err(why) => skipped.push((task_id, why)),
            }
        }
    }
    // the undo is a batch too: one correlation id, which can itself be undone
    let undo_correlation = format!("undo-{}", uuid::Uuid::now_v7());
    let mut commands = Vec::with_capacity(planned.len());
    for t in &planned {
        let command = TaskCommand::RevertBatch(t.command.clone());
        // the same undo of the same task at the same version is the same command: deduplicated
        let command_id = deterministic_id(&["undo-batch", &a.correlation_id, &t.task_id, &t.version.to_string()]);
        let envelope = CommandEnvelope {
            command_id,
            task_id: t.task_id.clone(),
            command_type: command.type_name().to_owned(),
            expected_version: Some(t.version),
            actor: a.actor.clone(),
            tenant: t.tenant.clone(),
            correlation_id: undo_correlation.clone(),
            causation_id: None,
            issued_at_ms: now_ms(),
        };
        commands.push((envelope, command));
    }
    let mut outcomes = HashMap::new();
    if !a.dry_run && !commands.is_empty() {
        let marks = rt.bus.outcome_marks()?;
        rt.bus.send_batch(&commands)?;
        if a.wait_s > 0 {
            let ids: HashSet<String> = commands.iter().map(|(e, _)| e.command_id.clone()).collect();
            outcomes = rt.bus.await_outcomes(marks, &ids, Duration::from_secs(a.wait_s))?;
        }
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (t, (envelope, _)) in planned.iter().zip(&commands) {
        let (state, detail) = match (a.dry_run, outcomes.get(&envelope.command_id)) {
            (true, _) => ("would_revert", None),
            (false, None) if a.wait_s == 0 => ("sent", None),
            (false, None) => ("unanswered", Some("no aggregator decided it in time; it stays queued".to_owned())),
            (false, Some(o)) if o.accepted => ("reverted", None),
            (false, Some(o)) => (
                "rejected",
                Some(format!(
                    "{}: {} (run undo-batch again once the task is idle)",
                    o.rejection_code.as_deref().unwrap_or("rejected"),
                    o.rejection_message.as_deref().unwrap_or_default()
                )),
            ),
        };
        *counts.entry(state).or_default() += 1;
        let line = json!({
            "task_id": t.task_id, "state": state, "detail": detail, "expected_version": t.version,
            "reverted_versions": t.command.reverted_versions, "objects_restored": t.command.objects.len(),
        });
        print(a.json, &line);
    }
    let mut skipped_by: BTreeMap<String, u64> = BTreeMap::new();
    for (task_id, why) in &skipped {
        *skipped_by.entry(format!("{why:?}")).or_default() += 1;
        print(a.json, &json!({ "task_id": task_id, "state": "skipped", "detail": why.to_string() }));
    }
    let summary = json!({
        "batch": a.correlation_id,
        "undo_correlation_id": (!a.dry_run).then_some(&undo_correlation),
        "tasks": planned.len() + skipped.len(),
        "states": counts,
        "skipped": skipped_by,
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
