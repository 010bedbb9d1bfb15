//! Seed 000's Task Manager: process tasks again with the latest models, send them back to an
//! operator, deliver a given-up result again, and undo a faulty batch (seed 003) — the use
//! cases the CLI (`visionlog task ...`) and the HTTP API (`/v1/admin/...`) both run. Each
//! sends commands; the aggregator decides them.
//!
//! Undoing a batch: a batch is everything one command caused, down the chain of commands it led
//! to: the events share its correlation id (a bulk reprocess with a model that turned out bad,
//! say). Each task the batch touched is folded again without the batch's events
//! ([`visionlog_domain::revert`]); what is left is sent as one `RevertBatch` command expecting the
//! task's current version, so a task that moves on meanwhile refuses it and a rerun folds it
//! again. The aggregator records `BatchReverted`, the executor makes a new result of the restored
//! objects, and the views follow from the events.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use visionlog_codec::Codec;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{
    Actor, RedeliverResult, Reprocess, ReprocessMode, RevertBatch, Stamped, TaskCommand, TaskEvent, revert,
};
use visionlog_journal::{CommandBus, DELIVERY_GIVEN_UP, Topics, deterministic_id, now_ms};
use visionlog_log::EventLog;
use visionlog_store::ReadStore;
use visionlog_views::{HistorySource, task_history};

/// Why a task manager request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskManagerError {
    /// The request itself is wrong (an actor who may not, an option that does not apply).
    #[error("{0}")]
    Invalid(String),
    /// A task the request names is not in the task manager view.
    #[error("no task {0} in the task manager view")]
    UnknownTask(String),
    /// No event carries the batch's correlation id.
    #[error("no event has correlation id {0:?}")]
    UnknownBatch(String),
    /// The log, the store or the codec failed.
    #[error("{0}")]
    Backend(String),
}

fn backend(e: impl std::fmt::Display) -> TaskManagerError {
    TaskManagerError::Backend(e.to_string())
}

/// What the task manager reads and where it sends.
pub struct TaskManager<'a> {
    /// The one history (hot and cold).
    pub log: &'a dyn EventLog,
    /// The codec.
    pub codec: &'a Codec,
    /// The topics.
    pub topics: &'a Topics,
    /// Where commands go.
    pub bus: &'a CommandBus,
    /// The read models (the task manager view).
    pub store: &'a dyn ReadStore,
}

/// Tasks to process again, as one batch.
#[derive(Clone, Debug)]
pub struct Reprocessing {
    /// The tasks.
    pub task_ids: Vec<String>,
    /// Latest models, or back to an operator.
    pub mode: ReprocessMode,
    /// Refuse if the task moved past this version (one task only).
    pub expected_version: Option<u64>,
    /// Who asks (recorded on the events).
    pub actor: String,
    /// The batch's correlation id (a new one if none).
    pub correlation_id: Option<String>,
}

/// Results whose delivery was given up, to deliver again, as one batch.
#[derive(Clone, Debug)]
pub struct Redelivery {
    /// The tasks.
    pub task_ids: Vec<String>,
    /// Why (recorded on each task's `RedeliveryRequested`).
    pub reason: String,
    /// Who asks: a service (the task manager acting for ops).
    pub actor: String,
    /// The batch's correlation id (a new one if none).
    pub correlation_id: Option<String>,
}

/// A result whose delivery was given up, as its dead letter tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GivenUp {
    /// The task.
    pub task_id: String,
    /// Its customer.
    pub tenant: String,
    /// Why the last try failed.
    pub error: String,
    /// When it was given up (unix ms).
    pub at_ms: i64,
}

/// A command sent for a task.
#[derive(Clone, Debug, Serialize)]
pub struct Sent {
    /// The command's id (its outcome on `outcomes` carries it).
    pub command_id: String,
    /// The task.
    pub task_id: String,
    /// The batch.
    pub correlation_id: String,
}

/// A batch to undo.
#[derive(Clone, Debug)]
pub struct Undo {
    /// The batch's correlation id.
    pub correlation_id: String,
    /// Why (recorded on each task's `BatchReverted`).
    pub reason: String,
    /// Who asks: a service.
    pub actor: String,
    /// Plan only, send nothing.
    pub dry_run: bool,
    /// How long to wait for the aggregators' outcomes (zero: send and return).
    pub wait: Duration,
}

/// What became of one task of an undo.
#[derive(Clone, Debug, Serialize)]
pub struct UndoneTask {
    /// The task.
    pub task_id: String,
    /// `would_revert`, `sent`, `reverted`, `rejected`, `unanswered` or `skipped`.
    pub state: &'static str,
    /// Why, where it was not reverted.
    pub detail: Option<String>,
    /// Why it was skipped, as a name (`AlreadyReverted`, ...).
    pub skipped_because: Option<String>,
    /// The version the revert expected (none when skipped).
    pub expected_version: Option<u64>,
    /// The versions whose events are undone.
    pub reverted_versions: Vec<u64>,
    /// Objects the task is left with.
    pub objects_restored: usize,
}

/// What an undo did.
#[derive(Clone, Debug, Serialize)]
pub struct UndoReport {
    /// The batch undone.
    pub batch: String,
    /// The undo's own correlation id (it can be undone in turn); none for a dry run.
    pub undo_correlation_id: Option<String>,
    /// Every task the batch touched.
    pub tasks: Vec<UndoneTask>,
}

impl UndoReport {
    /// Tasks per state, the skipped ones aside.
    pub fn states(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for t in self.tasks.iter().filter(|t| t.state != "skipped") {
            *counts.entry(t.state).or_default() += 1;
        }
        counts
    }

    /// Skipped tasks per reason.
    pub fn skipped(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for reason in self.tasks.iter().filter_map(|t| t.skipped_because.clone()) {
            *counts.entry(reason).or_default() += 1;
        }
        counts
    }
}

impl TaskManager<'_> {
    /// Sends `Reprocess` for each task, one batch under one correlation id.
    pub fn reprocess(&self, r: &Reprocessing) -> Result<Vec<Sent>, TaskManagerError> {
        r.actor.parse::<Actor>().map_err(|e| TaskManagerError::Invalid(format!("actor: {e}")))?;
        if r.expected_version.is_some() && r.task_ids.len() > 1 {
            return Err(TaskManagerError::Invalid(format!(
                "an expected version applies to one task, not {}",
                r.task_ids.len()
            )));
        }
        let command = TaskCommand::Reprocess(Reprocess { mode: r.mode });
        self.send_each(&r.task_ids, &command, r.expected_version, &r.actor, r.correlation_id.clone())
    }

    /// Sends `RedeliverResult` for each task, one batch under one correlation id. The
    /// aggregator refuses it (`nothing_to_redeliver`) for a task whose latest result was
    /// delivered or is still being tried.
    pub fn redeliver(&self, r: &Redelivery) -> Result<Vec<Sent>, TaskManagerError> {
        let actor: Actor = r.actor.parse().map_err(|e| TaskManagerError::Invalid(format!("actor: {e}")))?;
        if !matches!(actor, Actor::Service(_)) {
            return Err(TaskManagerError::Invalid(format!("only a service may ask for a redelivery, not {actor}")));
        }
        if r.reason.trim().is_empty() {
            return Err(TaskManagerError::Invalid("a reason is required".into()));
        }
        let command = TaskCommand::RedeliverResult(RedeliverResult { reason: r.reason.clone() });
        self.send_each(&r.task_ids, &command, None, &r.actor, r.correlation_id.clone())
    }

    /// The results whose delivery was given up since `since_ms` (of `tenant`, or of every
    /// tenant), newest give-up per task, oldest first, from the dead letters the webhook sink
    /// wrote; as far back as the dead-letters topic's retention. A task delivered since may be
    /// among them: a redelivery of it is refused, and nothing is sent twice.
    pub fn given_up(&self, tenant: Option<&str>, since_ms: i64) -> Result<Vec<GivenUp>, TaskManagerError> {
        let topic = &self.topics.dead_letters;
        let (mut at, end) =
            (self.log.start_offset(topic, 0).map_err(backend)?, self.log.end_offset(topic, 0).map_err(backend)?);
        let mut found: BTreeMap<String, GivenUp> = BTreeMap::new();
        while at < end {
            let records = visionlog_journal::read_held(self.log, topic, 0, at, 1000).map_err(backend)?;
            let Some(last) = records.last() else { break };
            at = last.offset + 1;
            for r in records {
                let Ok(d) = self.codec.decode_dead_letter(&r.value) else { continue };
                if d.error_code != DELIVERY_GIVEN_UP || d.recorded_at_ms < since_ms {
                    continue;
                }
                let task_tenant = d.headers.get(visionlog_codec::envelope::names::TENANT).cloned().unwrap_or_default();
                if tenant.is_some_and(|t| t != task_tenant) {
                    continue;
                }
                let Some(task_id) = d.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()) else { continue };
                let g = GivenUp {
                    task_id: task_id.clone(),
                    tenant: task_tenant,
                    error: d.error_message,
                    at_ms: d.recorded_at_ms,
                };
                found.insert(task_id, g);
            }
        }
        let mut found: Vec<GivenUp> = found.into_values().collect();
        found.sort_by(|a, b| (a.at_ms, &a.task_id).cmp(&(b.at_ms, &b.task_id)));
        Ok(found)
    }

    /// Sends `command` to each task (its tenant from the task manager view), one batch under
    /// one correlation id.
    fn send_each(
        &self,
        task_ids: &[String],
        command: &TaskCommand,
        expected_version: Option<u64>,
        actor: &str,
        correlation_id: Option<String>,
    ) -> Result<Vec<Sent>, TaskManagerError> {
        if task_ids.is_empty() {
            return Err(TaskManagerError::Invalid("no task ids".into()));
        }
        let correlation_id = correlation_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let mut commands = Vec::with_capacity(task_ids.len());
        for id in task_ids {
            let summary = visionlog_views::summary(self.store, id)
                .map_err(backend)?
                .ok_or_else(|| TaskManagerError::UnknownTask(id.clone()))?;
            let envelope = CommandEnvelope {
                command_id: uuid::Uuid::now_v7().to_string(),
                task_id: id.to_owned(),
                command_type: command.type_name().to_owned(),
                expected_version,
                actor: actor.to_owned(),
                tenant: summary.customer.clone(),
                correlation_id: correlation_id.clone(),
                causation_id: None,
                issued_at_ms: now_ms(),
            };
            commands.push((envelope, command.clone()));
        }
        self.bus.send_batch(&commands).map_err(backend)?;
        Ok(commands
            .into_iter()
            .map(|(e, _)| Sent { command_id: e.command_id, task_id: e.task_id, correlation_id: correlation_id.clone() })
            .collect())
    }

    /// Undoes a batch on every task it touched (see the crate's documentation).
    pub fn undo_batch(&self, u: &Undo) -> Result<UndoReport, TaskManagerError> {
        let actor: Actor = u.actor.parse().map_err(|e| TaskManagerError::Invalid(format!("actor: {e}")))?;
        if !matches!(actor, Actor::Service(_)) {
            return Err(TaskManagerError::Invalid(format!("only a service may undo a batch, not {actor}")));
        }
        let touched = self.touched(&u.correlation_id)?;
        if touched.is_empty() {
            return Err(TaskManagerError::UnknownBatch(u.correlation_id.clone()));
        }
        let (mut planned, mut skipped) = (Vec::new(), Vec::new());
        for tasks in touched.values() {
            for (task_id, h) in self.histories(tasks)? {
                let version = h.events.last().map_or(0, |e| e.0);
                let stamped = h.events.iter().map(|(version, correlation_id, event)| Stamped {
                    version: *version,
                    correlation_id,
                    event,
                });
                match revert(stamped, &u.correlation_id, &u.reason) {
                    Ok(command) => planned.push((task_id, version, h.tenant, command)),
                    Err(why) => skipped.push((task_id, why.to_string(), format!("{why:?}"))),
                }
            }
        }
        // the undo is a batch too: one correlation id, which can itself be undone
        let undo_correlation = format!("undo-{}", uuid::Uuid::now_v7());
        let commands: Vec<(CommandEnvelope, TaskCommand)> = planned
            .iter()
            .map(|(task_id, version, tenant, revert): &(String, u64, String, RevertBatch)| {
                let command = TaskCommand::RevertBatch(revert.clone());
                // the same undo of the same task at the same version is the same command
                let command_id = deterministic_id(&["undo-batch", &u.correlation_id, task_id, &version.to_string()]);
                let envelope = CommandEnvelope {
                    command_id,
                    task_id: task_id.clone(),
                    command_type: command.type_name().to_owned(),
                    expected_version: Some(*version),
                    actor: u.actor.clone(),
                    tenant: tenant.clone(),
                    correlation_id: undo_correlation.clone(),
                    causation_id: None,
                    issued_at_ms: now_ms(),
                };
                (envelope, command)
            })
            .collect();
        let mut outcomes = HashMap::new();
        if !u.dry_run && !commands.is_empty() {
            let marks = self.bus.outcome_marks().map_err(backend)?;
            self.bus.send_batch(&commands).map_err(backend)?;
            if !u.wait.is_zero() {
                let ids: HashSet<String> = commands.iter().map(|(e, _)| e.command_id.clone()).collect();
                outcomes = self.bus.await_outcomes(marks, &ids, u.wait).map_err(backend)?;
            }
        }
        let mut tasks = Vec::new();
        for ((task_id, version, _, revert), (envelope, _)) in planned.iter().zip(&commands) {
            let (state, detail) = match (u.dry_run, outcomes.get(&envelope.command_id)) {
                (true, _) => ("would_revert", None),
                (false, None) if u.wait.is_zero() => ("sent", None),
                (false, None) => ("unanswered", Some("no aggregator decided it in time; it stays queued".to_owned())),
                (false, Some(o)) if o.accepted => ("reverted", None),
                (false, Some(o)) => (
                    "rejected",
                    Some(format!(
                        "{}: {} (undo the batch again once the task is idle)",
                        o.rejection_code.as_deref().unwrap_or("rejected"),
                        o.rejection_message.as_deref().unwrap_or_default()
                    )),
                ),
            };
            tasks.push(UndoneTask {
                task_id: task_id.clone(),
                state,
                detail,
                skipped_because: None,
                expected_version: Some(*version),
                reverted_versions: revert.reverted_versions.clone(),
                objects_restored: revert.objects.len(),
            });
        }
        for (task_id, why, name) in skipped {
            tasks.push(UndoneTask {
                task_id,
                state: "skipped",
                detail: Some(why),
                skipped_because: Some(name),
                expected_version: None,
                reverted_versions: Vec::new(),
                objects_restored: 0,
            });
        }
        Ok(UndoReport {
            batch: u.correlation_id.clone(),
            undo_correlation_id: (!u.dry_run).then_some(undo_correlation),
            tasks,
        })
    }

    fn source(&self) -> HistorySource<'_> {
        HistorySource { log: self.log, codec: self.codec, topics: self.topics, store: self.store }
    }

    /// The tasks with at least one event of `correlation_id`, by partition: the batch index and
    /// the journal's tail (see [`visionlog_views::batch_tasks`]), the batch's size, not the history's.
    fn touched(&self, correlation_id: &str) -> Result<BTreeMap<u32, BTreeSet<String>>, TaskManagerError> {
        visionlog_views::batch_tasks(self.source(), correlation_id).map_err(backend)
    }

    /// The whole histories of `tasks`, each read from the per-task index and the journal's tail.
    fn histories(&self, tasks: &BTreeSet<String>) -> Result<BTreeMap<String, History>, TaskManagerError> {
        let mut out: BTreeMap<String, History> = BTreeMap::new();
        for task_id in tasks {
            let events = task_history(self.source(), task_id).map_err(backend)?;
            let Some(first) = events.first() else { continue };
            let tenant = first.envelope.tenant.clone();
            let events = events.into_iter().map(|e| (e.envelope.version, e.envelope.correlation_id, e.event)).collect();
            out.insert(task_id.clone(), History { tenant, events });
        }
        Ok(out)
    }
}

/// A task's history, as `revert` reads it.
struct History {
    tenant: String,
    events: Vec<(u64, String, TaskEvent)>,
}
