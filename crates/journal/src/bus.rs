//! Sending commands.

use crate::topics::Topics;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use visionlog_codec::envelope::{CommandEnvelope, EventEnvelope};
use visionlog_codec::{Codec, CodecError, Outcome};
use visionlog_domain::TaskCommand;
use visionlog_log::{EventLog, LogError, Record, partition_for};

/// The dead-letter code of a result whose delivery to its callback URL was given up (the
/// webhook sink writes it; the task manager finds results to deliver again by it).
pub const DELIVERY_GIVEN_UP: &str = "webhook_failed";

/// Commands per append in [`CommandBus::send_batch`].
const BATCH: usize = 100;

/// Sends commands to the `commands` topic, on the partition of their task.
#[derive(Clone)]
pub struct CommandBus {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    topics: Topics,
}

/// Why a command could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// It could not be encoded (a bug, or a value the schema cannot carry).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The log refused it; may be transient.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The envelope of a command a service sends because of an event: same task, tenant and
/// correlation, caused by the event, expecting `expected_version`.
pub fn caused_by(
    cause: &EventEnvelope,
    command_id: String,
    command: &TaskCommand,
    expected_version: u64,
    actor: String,
) -> CommandEnvelope {
    CommandEnvelope {
        command_id,
        task_id: cause.task_id.clone(),
        command_type: command.type_name().to_owned(),
        expected_version: Some(expected_version),
        actor,
        tenant: cause.tenant.clone(),
        correlation_id: cause.correlation_id.clone(),
        causation_id: Some(cause.event_id.clone()),
        issued_at_ms: crate::now_ms(),
    }
}

impl CommandBus {
    /// Creates a bus.
    pub fn new(log: Arc<dyn EventLog>, codec: Arc<Codec>, topics: Topics) -> Self {
        Self { log, codec, topics }
    }

    /// Files a dead letter for the event at `offset` of `events` partition `partition` that a
    /// service could not act on: the event stays in the journal, the letter says why.
    pub fn dead_letter_event(
        &self,
        partition: u32,
        offset: u64,
        code: &str,
        message: &str,
        consumer: &str,
    ) -> Result<(), LogError> {
        let records = self.log.read(&self.topics.events, partition, offset, 1)?;
        let Some(record) = records.into_iter().find(|r| r.offset == offset) else { return Ok(()) };
        let events = &self.topics.events;
        crate::dead_letter(
            self.log.as_ref(),
            &self.codec,
            &self.topics,
            events,
            partition,
            &record,
            code,
            message,
            consumer,
        )
    }

    /// Sends a command; returns its partition and offset.
    pub fn send(&self, envelope: &CommandEnvelope, command: &TaskCommand) -> Result<(u32, u64), SendError> {
        let value = self.codec.encode_command(command)?;
        let mut headers = Vec::with_capacity(11);
        envelope.write_headers(&mut headers);
        visionlog_telemetry::inject(&mut headers);
        Ok(self.send_raw(&envelope.task_id, headers, value)?)
    }

    /// Sends many commands, appended per partition in batches of about what a Kafka producer
    /// puts in one request; returns how many were sent.
    pub fn send_batch(&self, commands: &[(CommandEnvelope, TaskCommand)]) -> Result<usize, SendError> {
        let mut per_partition: Vec<Vec<Record>> = vec![Vec::new(); self.topics.partitions as usize];
        for (envelope, command) in commands {
            let mut headers = Vec::with_capacity(11);
            envelope.write_headers(&mut headers);
            visionlog_telemetry::inject(&mut headers);
            let key = envelope.task_id.as_bytes();
            let record = Record { key: Some(key.to_vec()), headers, value: self.codec.encode_command(command)? };
            per_partition[partition_for(key, self.topics.partitions) as usize].push(record);
        }
        for (p, records) in per_partition.iter().enumerate() {
            for chunk in records.chunks(BATCH) {
                self.log.append(&self.topics.commands, p as u32, chunk)?;
            }
        }
        Ok(commands.len())
    }

    /// Where each partition of `outcomes` ends now: take it before sending commands whose
    /// outcomes [`Self::await_outcomes`] is to wait for.
    pub fn outcome_marks(&self) -> Result<Vec<u64>, LogError> {
        (0..self.topics.partitions).map(|p| self.log.end_offset(&self.topics.outcomes, p)).collect()
    }

    /// Waits up to `timeout` for the aggregators' outcomes of `command_ids`, reading `outcomes`
    /// from `marks`; returns the ones that came (a missing one: no aggregator decided it yet).
    pub fn await_outcomes(
        &self,
        mut marks: Vec<u64>,
        command_ids: &HashSet<String>,
        timeout: Duration,
    ) -> Result<HashMap<String, Outcome>, LogError> {
        let deadline = Instant::now() + timeout;
        let mut found = HashMap::new();
        while found.len() < command_ids.len() {
            let mut read_any = false;
            for (p, next) in marks.iter_mut().enumerate() {
                for r in self.log.read(&self.topics.outcomes, p as u32, *next, 4096)? {
                    *next = r.offset + 1;
                    read_any = true;
                    // outcomes are keyed by command id; one that does not decode is not ours to judge
                    let Ok(outcome) = self.codec.decode_outcome(&r.value) else { continue };
                    if command_ids.contains(&outcome.command_id) {
                        found.insert(outcome.command_id.clone(), outcome);
                    }
                }
            }
            if found.len() == command_ids.len() || Instant::now() >= deadline {
                break;
            }
            if !read_any {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(found)
    }

    /// Sends a command record as given (for integrations and tests of bad input).
    pub fn send_raw(
        &self,
        task_id: &str,
        headers: visionlog_log::Headers,
        value: Vec<u8>,
    ) -> Result<(u32, u64), LogError> {
        let partition = partition_for(task_id.as_bytes(), self.topics.partitions);
        let record = Record { key: Some(task_id.as_bytes().to_vec()), headers, value };
        let offset = self.log.append(&self.topics.commands, partition, &[record])?.first;
        Ok((partition, offset))
    }
}

/// Derives a stable id from its parts (UUIDv5), so that a redelivered event leads to the same
/// command id and the aggregator answers it as a duplicate.
pub fn deterministic_id(parts: &[&str]) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2a4e_8d3b_4c5a_9e7f_1b2c_3d4e_5f60);
    uuid::Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes()).to_string()
}
