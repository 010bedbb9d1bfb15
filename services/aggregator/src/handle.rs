//! Deciding one command: envelope checks, deduplication, expected version, `decide`.

use crate::config::AggregatorConfig;
use crate::record::{Decided, TaskRecord};
use visionlog_codec::envelope::{CommandEnvelope, EventEnvelope, get};
use visionlog_codec::{Codec, Outcome};
use visionlog_domain::{Actor, DecideContext, TaskCommand, decide, evolve, is_valid_task_id};
use visionlog_journal::{DecisionOrigin, event_record, now_ms, rejection_record};
use visionlog_log::{LogRecord, Record};

/// What a command came to.
pub(crate) enum Handled {
    /// Records to append (events or a rejection), with the outcome to publish after.
    Decided { task_id: String, records: Vec<Record>, outcome: Outcome },
    /// A command id decided before: its earlier outcome, nothing appended.
    Duplicate(Outcome),
    /// The command cannot be decided now (the schema registry is unavailable): nothing is
    /// decided, rejected or dead-lettered; the partition stops and is started again after a
    /// back-off, and reads the command again.
    Retry(String),
}

/// A rejection before or instead of `decide`.
struct Refusal {
    code: String,
    message: String,
    /// Also dead-letter the record (it is bad input, not a business refusal).
    dead_letter: bool,
    /// Not a refusal: the command cannot be read now, and may be later (see [`Handled::Retry`]).
    transient: bool,
}

impl Refusal {
    fn input(code: &str, message: String) -> Self {
        Self { code: code.to_owned(), message, dead_letter: true, transient: false }
    }

    fn business(code: String, message: String) -> Self {
        Self { code, message, dead_letter: false, transient: false }
    }
}

pub(crate) struct Handler<'a> {
    pub(crate) config: &'a AggregatorConfig,
    pub(crate) codec: &'a Codec,
    pub(crate) partition: u32,
    pub(crate) epoch: u64,
    /// The largest record the journal takes (see [`AggregatorConfig::max_event_bytes`]).
    pub(crate) max_record_bytes: usize,
}

/// Returns the outcome that a remembered decision answers a redelivery with.
pub(crate) fn outcome_of(command_id: &str, task_id: &str, partition: u32, d: &Decided, duplicate: bool) -> Outcome {
    Outcome {
        command_id: command_id.to_owned(),
        task_id: task_id.to_owned(),
        command_type: d.command_type.clone(),
        accepted: d.accepted,
        first_version: d.accepted.then_some(d.first_version as i64),
        last_version: d.accepted.then_some(d.last_version as i64),
        rejection_code: d.code.clone(),
        rejection_message: d.message.clone(),
        duplicate,
        events_partition: partition as i32,
        events_offset: d.events_offset as i64,
        recorded_at_ms: now_ms(),
    }
}

impl Handler<'_> {
    /// Reads and checks a command's envelope; a record without a usable one is only a dead letter.
    /// Errs with the dead letter's message.
    pub(crate) fn envelope(&self, cmd: &LogRecord) -> Result<CommandEnvelope, String> {
        let envelope = CommandEnvelope::from_headers(&cmd.headers).map_err(|e| e.to_string())?;
        let ids_ok = is_valid_task_id(&envelope.task_id, self.config.limits.max_id)
            && !envelope.command_id.is_empty()
            && envelope.command_id.len() <= self.config.limits.max_id;
        if !ids_ok {
            let message =
                "task id or command id is empty, too long or has characters outside [A-Za-z0-9._:-]".to_owned();
            return Err(message);
        }
        Ok(envelope)
    }

    /// Decides one command on its task's record; `events_offset` is where the decision's first
    /// record will land. Returns the step and, for bad input, a dead letter's code and message.
    pub(crate) fn decide(
        &self,
        cmd: &LogRecord,
        envelope: CommandEnvelope,
        record: &mut TaskRecord,
        events_offset: u64,
    ) -> Result<(Handled, Option<(String, String)>), String> {
        // the decision follows the trace of whoever sent the command
        let span = tracing::info_span!(
            "decide",
            otel.name = format!("decide {}", envelope.command_type),
            task_id = %envelope.task_id,
            command_id = %envelope.command_id,
            partition = self.partition,
            offset = cmd.offset,
        );
        visionlog_telemetry::follow(&span, get(&cmd.headers, visionlog_telemetry::TRACEPARENT));
        let _entered = span.enter();
        if let Some(d) = record.decided(&envelope.command_id) {
            return Ok((
                Handled::Duplicate(outcome_of(&envelope.command_id, &envelope.task_id, self.partition, d, true)),
                None,
            ));
        }
        let result = self.check(cmd, &envelope, record).and_then(|(actor, command)| {
            let ctx = DecideContext { actor: &actor, tenant: &envelope.tenant, limits: &self.config.limits };
            decide(&record.state, &command, &ctx)
                .map(|events| (command, events))
                .map_err(|r| Refusal::business(r.code().to_owned(), r.to_string()))
        });
        let (command, events) = match result {
            Ok(decision) => decision,
            Err(refusal) if refusal.transient => return Ok((Handled::Retry(refusal.message), None)),
            Err(refusal) => return self.reject(cmd, envelope, refusal, record, events_offset),
        };
        match self.accept(&envelope, command, events, record, events_offset, cmd)? {
            Ok(step) => Ok((step, None)),
            Err(refusal) => self.reject(cmd, envelope, refusal, record, events_offset),
        }
    }

    fn reject(
        &self,
        cmd: &LogRecord,
        envelope: CommandEnvelope,
        refusal: Refusal,
        record: &mut TaskRecord,
        events_offset: u64,
    ) -> Result<(Handled, Option<(String, String)>), String> {
        let dead = refusal.dead_letter.then(|| (refusal.code.clone(), refusal.message.clone()));
        let decided = Decided {
            command_type: envelope.command_type.clone(),
            accepted: false,
            first_version: 0,
            last_version: 0,
            code: Some(refusal.code),
            message: Some(refusal.message),
            events_offset,
        };
        let outcome = outcome_of(&envelope.command_id, &envelope.task_id, self.partition, &decided, false);
        let latency = now_ms() - envelope.issued_at_ms;
        let code = outcome.rejection_code.as_deref().unwrap_or("rejected");
        visionlog_telemetry::metrics::command_decided(&envelope.command_type, code, latency);
        let bytes = self.codec.encode_outcome(&outcome).map_err(|e| e.to_string())?;
        let trace_parent = visionlog_telemetry::propagate(get(&cmd.headers, visionlog_telemetry::TRACEPARENT));
        let origin = DecisionOrigin {
            command_id: &envelope.command_id,
            command_type: &envelope.command_type,
            command_offset: cmd.offset,
            epoch: self.epoch,
            trace_parent: trace_parent.as_deref(),
        };
        let records = vec![rejection_record(&envelope.task_id, Some(&envelope.tenant), bytes, origin)];
        record.applied_offset = events_offset + 1;
        record.remember(envelope.command_id.clone(), decided, self.config.dedup_per_task);
        Ok((Handled::Decided { task_id: envelope.task_id, records, outcome }, dead))
    }

    fn check(
        &self,
        cmd: &LogRecord,
        envelope: &CommandEnvelope,
        record: &TaskRecord,
    ) -> Result<(Actor, TaskCommand), Refusal> {
        if cmd.value.len() > self.config.max_command_bytes {
            let message =
                format!("command of {} bytes exceeds the limit of {}", cmd.value.len(), self.config.max_command_bytes);
            return Err(Refusal::input("oversized", message));
        }
        if cmd.key.as_deref() != Some(envelope.task_id.as_bytes()) {
            return Err(Refusal::input("key_mismatch", "the record key is not the task id of the envelope".into()));
        }
        let actor: Actor = envelope.actor.parse().map_err(|e: String| Refusal::input("invalid_actor", e))?;
        let command = self.codec.decode_command(&cmd.value).map_err(|e| match e.is_transient() {
            true => Refusal { transient: true, ..Refusal::input(e.code(), e.to_string()) },
            false => Refusal::input(e.code(), e.to_string()),
        })?;
        if command.type_name() != envelope.command_type {
            return Err(Refusal::input(
                "type_mismatch",
                format!("header says {}, body is {}", envelope.command_type, command.type_name()),
            ));
        }
        if let Some(expected) = envelope.expected_version
            && expected != record.version
        {
            return Err(Refusal::business(
                "version_conflict".into(),
                format!("expected version {expected}, the stream is at {}", record.version),
            ));
        }
        Ok((actor, command))
    }

    fn accept(
        &self,
        envelope: &CommandEnvelope,
        command: TaskCommand,
        events: Vec<visionlog_domain::TaskEvent>,
        record: &mut TaskRecord,
        events_offset: u64,
        cmd: &LogRecord,
    ) -> Result<Result<Handled, Refusal>, String> {
        let (recorded_at_ms, command_offset) = (now_ms(), cmd.offset);
        let trace_parent = visionlog_telemetry::propagate(get(&cmd.headers, visionlog_telemetry::TRACEPARENT));
        let n = events.len();
        let first_version = record.version + 1;
        let mut records = Vec::with_capacity(n);
        for (i, event) in events.iter().enumerate() {
            let env = EventEnvelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                task_id: envelope.task_id.clone(),
                version: first_version + i as u64,
                event_type: event.type_name().to_owned(),
                occurred_at_ms: envelope.issued_at_ms,
                recorded_at_ms,
                correlation_id: envelope.correlation_id.clone(),
                causation_id: envelope.command_id.clone(),
                actor: envelope.actor.clone(),
                tenant: envelope.tenant.clone(),
            };
            let payload = self.codec.encode_event(event).map_err(|e| format!("encoding {}: {e}", event.type_name()))?;
            let origin = DecisionOrigin {
                command_id: &envelope.command_id,
                command_type: command.type_name(),
                command_offset,
                epoch: self.epoch,
                trace_parent: trace_parent.as_deref(),
            };
            records.push(event_record(&env, payload, origin, i, n));
        }
        // a record the journal would refuse is this command's rejection, never a partition that
        // fails on the same append forever
        let sizes = records.iter().map(|r| r.wire_bytes() + visionlog_log::BATCH_OVERHEAD);
        if let Some((i, size)) = sizes.enumerate().find(|(_, size)| *size > self.max_record_bytes) {
            let message = format!(
                "its {} event would take {size} bytes; the journal takes at most {} per record",
                events[i].type_name(),
                self.max_record_bytes
            );
            return Ok(Err(Refusal::business("event_too_large".into(), message)));
        }
        visionlog_telemetry::metrics::command_decided(
            command.type_name(),
            "accepted",
            recorded_at_ms - envelope.issued_at_ms,
        );
        let mut state = record.state.take();
        for event in &events {
            state = evolve(state, event);
        }
        record.state = state;
        record.version += n as u64;
        record.applied_offset = events_offset + n as u64;
        let decided = Decided {
            command_type: command.type_name().to_owned(),
            accepted: true,
            first_version,
            last_version: record.version,
            code: None,
            message: None,
            events_offset,
        };
        let outcome = outcome_of(&envelope.command_id, &envelope.task_id, self.partition, &decided, false);
        record.remember(envelope.command_id.clone(), decided, self.config.dedup_per_task);
        Ok(Ok(Handled::Decided { task_id: envelope.task_id.clone(), records, outcome }))
    }
}
