//! `visionlog task ...`: a task's events and its state at any version (time travel).

use crate::runtime::{Backends, Runtime};
use anyhow::bail;
use serde_json::json;
use visionlog_domain::{ReprocessMode, TaskEvent};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum TaskCmd {
    /// Prints a task's events, decoded, one per line.
    Show {
        /// The task id.
        id: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Prints a task's state as of a version or an instant (default: the latest), read from
    /// the one history (cold segments, then the hot log).
    State {
        /// The task id.
        id: String,
        /// The stream version to stop at.
        #[arg(long)]
        version: Option<u64>,
        /// The instant to stop at (ms since the epoch): only events recorded by then.
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Task manager: processes tasks again with the latest deployed models.
    Reprocess(ReprocessArgs),
    /// Task manager: sends tasks back to an operator for cleaning and correction.
    Resend(ReprocessArgs),
    /// Task manager: delivers again results whose delivery to their callback URL was given up
    /// (the receiver was down past the retry window, or refused them until fixed): a new round
    /// of tries with a new window. Names tasks, or takes every given-up result from the dead
    /// letters (`--given-up`).
    Redeliver(RedeliverArgs),
    /// Task manager: undoes a faulty batch (every event of one correlation id) on every task it
    /// touched, with compensating events and new results; see `visionlog_domain::revert`.
    UndoBatch(crate::undo::UndoArgs),
    /// Lists the task summaries of the task manager view.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Which tasks to process again, and as which batch.
#[derive(clap::Args, Debug)]
pub(crate) struct ReprocessArgs {
    /// The task ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Refuse if the task moved past this version (one task only).
    #[arg(long)]
    expected_version: Option<u64>,
    /// Who asks (recorded on the event).
    #[arg(long, default_value = "service:task-manager")]
    actor: String,
    /// The correlation id of the batch: every event this causes carries it, so that
    /// `task undo-batch` can undo it (default: a new one, printed).
    #[arg(long)]
    correlation_id: Option<String>,
}

/// Which results to deliver again.
#[derive(clap::Args, Debug)]
pub(crate) struct RedeliverArgs {
    /// The task ids.
    #[arg(required_unless_present = "given_up", conflicts_with = "given_up")]
    ids: Vec<String>,
    /// Every result whose delivery was given up (from the dead letters, as far back as their
    /// retention), instead of named tasks.
    #[arg(long)]
    given_up: bool,
    /// With `--given-up`: only this tenant's tasks.
    #[arg(long, requires = "given_up")]
    tenant: Option<String>,
    /// With `--given-up`: only those given up since this instant (ms since the epoch).
    #[arg(long, requires = "given_up", default_value_t = 0)]
    since_ms: i64,
    /// Why (recorded on each task's `RedeliveryRequested`).
    #[arg(long)]
    reason: String,
    /// List the tasks, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who asks (recorded on the events): a service.
    #[arg(long, default_value = "service:task-manager")]
    actor: String,
    /// The correlation id of the batch (default: a new one, printed).
    #[arg(long)]
    correlation_id: Option<String>,
}

/// Sends the task manager's `RedeliverResult` commands, one batch; with `--given-up`, to
/// every task the dead letters name.
fn send_redeliver(rt: &Runtime, a: &RedeliverArgs) -> anyhow::Result<()> {
    let tm = rt.task_manager();
    let task_ids = if a.given_up {
        let found = tm.given_up(a.tenant.as_deref(), a.since_ms)?;
        for g in &found {
            crate::output::line(json!({
                "task_id": g.task_id, "tenant": g.tenant, "given_up_at_ms": g.at_ms, "error": g.error,
            }));
        }
        found.into_iter().map(|g| g.task_id).collect()
    } else {
        a.ids.clone()
    };
    if a.dry_run || task_ids.is_empty() {
        crate::output::line(json!({ "tasks": task_ids.len(), "sent": false }));
        return Ok(());
    }
    let sent = tm.redeliver(&visionlog_task_manager::Redelivery {
        task_ids,
        reason: a.reason.clone(),
        actor: a.actor.clone(),
        correlation_id: a.correlation_id.clone(),
    })?;
    for s in sent {
        crate::output::line(json!({
            "command_id": s.command_id, "task_id": s.task_id, "correlation_id": s.correlation_id, "sent": true,
        }));
    }
    Ok(())
}

/// Reads a task's stream: the read side's per-task index and the journal's tail.
fn events(rt: &Runtime, task_id: &str) -> anyhow::Result<Vec<visionlog_journal::RecordedEvent>> {
    let source = visionlog_views::HistorySource {
        log: rt.log.as_ref(),
        codec: &rt.codec,
        topics: &rt.topics,
        store: rt.store.as_ref(),
    };
    Ok(visionlog_views::task_history(source, task_id)?)
}

/// Sends the task manager's `Reprocess` commands, one batch under one correlation id; the
/// aggregator decides them (see `task show`).
fn send_reprocess(rt: &Runtime, a: &ReprocessArgs, mode: ReprocessMode) -> anyhow::Result<()> {
    let sent = rt.task_manager().reprocess(&visionlog_task_manager::Reprocessing {
        task_ids: a.ids.clone(),
        mode,
        expected_version: a.expected_version,
        actor: a.actor.clone(),
        correlation_id: a.correlation_id.clone(),
    })?;
    for s in sent {
        crate::output::line(json!({
            "command_id": s.command_id, "task_id": s.task_id, "correlation_id": s.correlation_id,
            "mode": mode, "sent": true,
        }));
    }
    Ok(())
}

pub(crate) fn run(backends: &Backends, cmd: &TaskCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    // the task manager's commands start a trace (with OTEL_EXPORTER_OTLP_ENDPOINT set)
    let name = match cmd {
        TaskCmd::Reprocess(_) => "task reprocess",
        TaskCmd::Resend(_) => "task resend",
        TaskCmd::Redeliver(_) => "task redeliver",
        TaskCmd::UndoBatch(_) => "task undo-batch",
        _ => "task query",
    };
    let _span = tracing::info_span!("task", otel.name = name).entered();
    match cmd {
        TaskCmd::Show { id, json } => {
            let evs = events(&rt, id)?;
            if evs.is_empty() {
                bail!("no task {id}");
            }
            let keys = visionlog_privacy::KeyStore::new(rt.store.clone());
            for e in evs {
                let body = serde_json::to_value(&e.event)?;
                let mut body = body.as_object().and_then(|o| o.values().next().cloned()).unwrap_or(body);
                // personal fields are opened for the reader, never stored open
                if let TaskEvent::TaskCreated(c) = &e.event
                    && let Some(sealed) = &c.personal
                {
                    body["personal"] = match keys.open(sealed, id) {
                        Ok(visionlog_privacy::Opened::Readable(p)) => serde_json::to_value(p)?,
                        Ok(visionlog_privacy::Opened::Shredded) => {
                            json!({ "subject": sealed.subject, "erased": "the subject's key was shredded" })
                        }
                        Err(err) => json!({ "subject": sealed.subject, "unreadable": err.to_string() }),
                    };
                }
                if *json {
                    let line = json!({
                        "version": e.envelope.version, "offset": e.offset, "event_id": e.envelope.event_id, "type": e.envelope.event_type,
                        "recorded_at_ms": e.envelope.recorded_at_ms, "actor": e.envelope.actor, "correlation_id": e.envelope.correlation_id,
                        "causation_id": e.envelope.causation_id, "event": body,
                    });
                    crate::output::line(format!("{line}"));
                } else {
                    let mut text = body.to_string();
                    if text.len() > 160 {
                        text.truncate(157);
                        text.push_str("...");
                    }
                    crate::output::line(format!(
                        "v{:<3} {:<22} {:<18} {text}",
                        e.envelope.version, e.envelope.event_type, e.envelope.actor
                    ));
                }
            }
        }
        TaskCmd::State { id, version, at_ms } => {
            let evs = events(&rt, id)?;
            let visionlog_journal::StateAsOf { state, version: at, recorded_at_ms } =
                visionlog_journal::state_as_of(&evs, *version, *at_ms);
            if state.is_none() {
                match (version, at_ms) {
                    (Some(v), _) => bail!("no task {id} at version {v}"),
                    (None, Some(t)) => bail!("no task {id} as of {t} ms (nothing recorded by then)"),
                    (None, None) => bail!("no task {id}"),
                }
            }
            crate::output::line(serde_json::to_string_pretty(
                &json!({ "task_id": id, "version": at, "recorded_at_ms": recorded_at_ms, "state": state }),
            )?);
        }
        TaskCmd::Reprocess(a) => send_reprocess(&rt, a, ReprocessMode::LatestModels)?,
        TaskCmd::Resend(a) => send_reprocess(&rt, a, ReprocessMode::ResendToOperator)?,
        TaskCmd::Redeliver(a) => send_redeliver(&rt, a)?,
        TaskCmd::UndoBatch(a) => crate::undo::run(&rt, a)?,
        TaskCmd::List { json } => {
            for s in visionlog_views::list_summaries(rt.store.as_ref())? {
                if *json {
                    crate::output::line(serde_json::to_string(&s)?);
                } else {
                    crate::output::line(format!(
                        "{:<14} {:<10} {:<22} v{:<3} objects {:<4} sessions {}",
                        s.task_id, s.customer, s.status, s.version, s.objects, s.operator_sessions
                    ));
                }
            }
        }
    }
    Ok(())
}
