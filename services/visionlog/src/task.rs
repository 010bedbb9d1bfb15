//! `visionlog task ...`: a task's events and its state at any version (time travel).

use crate::runtime::{Backends, Runtime};
use anyhow::bail;
use serde_json::json;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{Reprocess, ReprocessMode, TaskCommand, TaskEvent, TaskState, evolve};
use visionlog_journal::now_ms;
use visionlog_journal::{DecisionBody, Entry, JournalReader};
use visionlog_log::partition_for;

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
    /// Task manager: processes a task again with the latest deployed models.
    Reprocess {
        /// The task id.
        id: String,
        /// Refuse if the task moved past this version.
        #[arg(long)]
        expected_version: Option<u64>,
        /// Who asks (recorded on the event).
        #[arg(long, default_value = "service:task-manager")]
        actor: String,
    },
    /// Task manager: sends a task back to an operator for cleaning and correction.
    Resend {
        /// The task id.
        id: String,
        /// Refuse if the task moved past this version.
        #[arg(long)]
        expected_version: Option<u64>,
        /// Who asks (recorded on the event).
        #[arg(long, default_value = "service:task-manager")]
        actor: String,
    },
    /// Lists the task summaries of the task manager view.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

struct Loaded {
    version: u64,
    offset: u64,
    envelope: visionlog_codec::envelope::EventEnvelope,
    event: TaskEvent,
}

/// Reads a task's stream from its partition of the journal.
fn events(rt: &Runtime, task_id: &str) -> anyhow::Result<Vec<Loaded>> {
    let p = partition_for(task_id.as_bytes(), rt.topics.partitions);
    let mut reader = JournalReader::default();
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let records = rt.log.read(&rt.topics.events, p, from, 4096)?;
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        for r in records {
            if r.key.as_deref().is_some_and(|k| k != task_id.as_bytes()) {
                continue; // another task's record (claims have no key and are read)
            }
            let Ok(Some(Entry::Decision(d))) = reader.feed(r) else { continue };
            if let DecisionBody::Accepted(evs) = d.body {
                for e in evs {
                    let event = rt.codec.decode_event(&e.payload)?;
                    out.push(Loaded { version: e.envelope.version, offset: e.offset, envelope: e.envelope, event });
                }
            }
        }
    }
    Ok(out)
}

/// Sends the task manager's `Reprocess` command; the aggregator decides it (see `task show`).
fn send_reprocess(
    rt: &Runtime,
    id: &str,
    expected_version: Option<u64>,
    actor: &str,
    mode: ReprocessMode,
) -> anyhow::Result<()> {
    actor.parse::<visionlog_domain::Actor>().map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
    let Some(summary) = visionlog_projector::summary(rt.store.as_ref(), id)? else {
        bail!("no task {id} in the task manager view");
    };
    let command = TaskCommand::Reprocess(Reprocess { mode });
    let command_id = uuid::Uuid::now_v7().to_string();
    let envelope = CommandEnvelope {
        command_id: command_id.clone(),
        task_id: id.to_owned(),
        command_type: command.type_name().to_owned(),
        expected_version,
        actor: actor.to_owned(),
        tenant: summary.customer.clone(),
        correlation_id: command_id.clone(),
        causation_id: None,
        issued_at_ms: now_ms(),
    };
    rt.bus.send(&envelope, &command)?;
    crate::output::line(json!({ "command_id": command_id, "task_id": id, "mode": mode, "sent": true }));
    Ok(())
}

pub(crate) fn run(backends: &Backends, cmd: &TaskCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
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
                        "version": e.version, "offset": e.offset, "event_id": e.envelope.event_id, "type": e.envelope.event_type,
                        "recorded_at_ms": e.envelope.recorded_at_ms, "actor": e.envelope.actor, "causation_id": e.envelope.causation_id, "event": body,
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
                        e.version, e.envelope.event_type, e.envelope.actor
                    ));
                }
            }
        }
        TaskCmd::State { id, version, at_ms } => {
            let evs = events(&rt, id)?;
            let upto = version.unwrap_or(u64::MAX);
            let until = at_ms.unwrap_or(i64::MAX);
            let mut at = 0;
            let mut recorded_at_ms = None;
            let state: TaskState =
                evs.iter().filter(|e| e.version <= upto && e.envelope.recorded_at_ms <= until).fold(None, |s, e| {
                    at = e.version;
                    recorded_at_ms = Some(e.envelope.recorded_at_ms);
                    evolve(s, &e.event)
                });
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
        TaskCmd::Reprocess { id, expected_version, actor } => {
            send_reprocess(&rt, id, *expected_version, actor, ReprocessMode::LatestModels)?
        }
        TaskCmd::Resend { id, expected_version, actor } => {
            send_reprocess(&rt, id, *expected_version, actor, ReprocessMode::ResendToOperator)?
        }
        TaskCmd::List { json } => {
            for s in visionlog_projector::list_summaries(rt.store.as_ref())? {
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
