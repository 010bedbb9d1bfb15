//! The one loop every service uses to consume `events`: fenced, whole decisions, decoded,
//! at least once, with its position and epoch committed after each batch.

use crate::reader::{Decision, DecisionBody, Entry, JournalReader};
use crate::topics::Topics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, DeadLetter};
use visionlog_domain::TaskEvent;
use visionlog_log::{EventLog, LogError, LogRecord, Position, Record};

/// One event handed to a service.
pub struct HandledEvent<'a> {
    /// Partition of `events`.
    pub partition: u32,
    /// Offset there.
    pub offset: u64,
    /// Its envelope.
    pub envelope: &'a EventEnvelope,
    /// The event.
    pub event: &'a TaskEvent,
    /// The event as the journal holds it (the wire format).
    pub payload: &'a [u8],
}

/// Why handling failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Transient: the loop pauses and retries from the last committed position.
    #[error("transient: {0}")]
    Transient(String),
    /// What the handler needs is not there yet (a read model behind the event it handles): the
    /// loop waits a little and hands the event again, quietly, as a healthy pipeline does all the
    /// time; only a wait longer than [`NOT_YET_PATIENCE`] is logged as a warning.
    #[error("not yet: {0}")]
    NotYet(String),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A service that reacts to events.
pub trait EventHandler {
    /// Handles one event. Must be idempotent: after a crash events are handed again.
    fn handle(&mut self, event: HandledEvent<'_>) -> Result<(), ConsumeError>;
    /// Called at the end of each batch, before the position is committed.
    fn flush(&mut self) -> Result<(), ConsumeError> {
        Ok(())
    }
    /// Tells whether the handler holds events it has not made durable, or could not apply yet
    /// (a gap in a stream): then the position is not committed past them.
    fn holding(&self) -> bool {
        false
    }
    /// Called when a bounded run ([`consume_until`]) reached its end: make everything durable.
    fn finish(&mut self) -> Result<(), ConsumeError> {
        self.flush()
    }
    /// Tells whether a flush that failed half-way (or a process that stopped during one) may
    /// have stored what the end of its batch implies, so that a flush after it must cover at
    /// least as far. The projector's does: it writes a task's rows for the state at the batch's
    /// end, and tombstones them later only if it folds that state again. Then the loop records
    /// each batch's end in the committed position's metadata before flushing, and after a restart
    /// reads on to that end before the next flush.
    fn flushes_whole_batches(&self) -> bool {
        false
    }
    /// Told where the loop (re)starts reading `partition`: the committed position, before the
    /// first event it hands from there. A handler that indexes what it is handed learns from
    /// which offset its index is whole.
    fn resumed_at(&mut self, partition: u32, offset: u64) {
        let _ = (partition, offset);
    }
    /// Told that the event of `envelope` at `offset` could not be decoded: it was dead-lettered
    /// with its reason and is not handed. A handler that folds a task's events in version order
    /// passes over it, never waits for it.
    fn undecodable(&mut self, partition: u32, offset: u64, envelope: &EventEnvelope) -> Result<(), ConsumeError> {
        let _ = (partition, offset, envelope);
        Ok(())
    }
    /// Handles a rejected command's decision (its encoded `Outcome`); most services act on
    /// events only. Must be idempotent, as [`EventHandler::handle`].
    fn rejected(&mut self, partition: u32, decision: &Decision, outcome: &[u8]) -> Result<(), ConsumeError> {
        let _ = (partition, decision, outcome);
        Ok(())
    }
}

/// The metadata of a position that records how far an attempted flush reached.
fn reach_metadata(offset: u64) -> String {
    format!("reach={offset}")
}

/// The reach recorded in a committed position's metadata (see [`reach_metadata`]).
fn reach_of(position: &Position) -> Option<u64> {
    position.metadata.strip_prefix("reach=")?.parse().ok()
}

/// How long a handler may wait for what it needs ([`ConsumeError::NotYet`]) before the wait is
/// logged as a warning.
pub(crate) const NOT_YET_PATIENCE: Duration = Duration::from_secs(30);

/// Events per batch of a live consumer: small, for latency.
pub const LIVE_BATCH: usize = 512;

/// Where a consumer reads: one partition of `events`, for one consumer group.
#[derive(Clone, Copy)]
pub struct Subscription<'a> {
    /// The log.
    pub log: &'a dyn EventLog,
    /// The codec.
    pub codec: &'a Codec,
    /// The topics.
    pub topics: &'a Topics,
    /// The consumer group.
    pub group: &'a str,
    /// The partition.
    pub partition: u32,
}

impl Subscription<'_> {
    /// Records a record of this partition that could not be decoded or handled.
    pub fn dead_letter(&self, record: &LogRecord, code: &str, message: &str) -> Result<(), LogError> {
        dead_letter(
            self.log,
            self.codec,
            self.topics,
            &self.topics.events,
            self.partition,
            record,
            code,
            message,
            self.group,
        )
    }
}

/// Consumes one partition of `events` until `stop` is set; transient failures of the handler
/// make it pause and start again from the last committed position.
pub fn consume_partition(
    sub: Subscription<'_>,
    handler: &mut dyn EventHandler,
    stop: &AtomicBool,
) -> Result<(), ConsumeError> {
    consume(sub, handler, stop, None, LIVE_BATCH)
}

/// Consumes one partition of `events` from the group's committed position up to `end` (an
/// offset), in batches of `batch` records, and returns with the position committed: how a
/// view is rebuilt, or caught up. Transient failures are retried as by [`consume_partition`].
pub fn consume_until(
    sub: Subscription<'_>,
    handler: &mut dyn EventHandler,
    end: u64,
    batch: usize,
    stop: &AtomicBool,
) -> Result<(), ConsumeError> {
    consume(sub, handler, stop, Some(end), batch)
}

/// Runs [`run`] until it ends, pausing and starting again from the last committed position
/// after a transient failure.
fn consume(
    sub: Subscription<'_>,
    handler: &mut dyn EventHandler,
    stop: &AtomicBool,
    until: Option<u64>,
    batch: usize,
) -> Result<(), ConsumeError> {
    // what the handler waits for, since when, and whether that was said
    let mut waiting: Option<(String, std::time::Instant, bool)> = None;
    while !stop.load(Ordering::Relaxed) {
        match run(sub, handler, stop, until, batch) {
            Ok(()) => return Ok(()),
            Err(ConsumeError::NotYet(why)) => {
                if waiting.as_ref().is_none_or(|(w, _, _)| *w != why) {
                    waiting = Some((why.clone(), std::time::Instant::now(), false));
                }
                let (_, since, warned) = waiting.as_mut().expect("set above");
                if since.elapsed() >= NOT_YET_PATIENCE && !*warned {
                    *warned = true;
                    let waited_s = since.elapsed().as_secs();
                    tracing::warn!(
                        group = sub.group,
                        partition = sub.partition,
                        waited_s,
                        why,
                        "still waiting for what an event needs"
                    );
                } else {
                    tracing::debug!(
                        group = sub.group,
                        partition = sub.partition,
                        why,
                        "waiting for what an event needs"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(ConsumeError::Transient(e)) => {
                tracing::warn!(group = sub.group, partition = sub.partition, error = %e, "handler failed; retrying from the last committed position");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn run(
    sub: Subscription<'_>,
    handler: &mut dyn EventHandler,
    stop: &AtomicBool,
    until: Option<u64>,
    batch: usize,
) -> Result<(), ConsumeError> {
    let Subscription { log, topics, group, partition, .. } = sub;
    let position = log.committed(group, &topics.events, partition)?;
    let start = position.as_ref().map_or(0, |p| p.offset);
    // the end of a batch whose flush may have stored part of what it implies: flush past it
    let reach = position.as_ref().and_then(reach_of).unwrap_or(0);
    let mut reader = JournalReader::resume_after(log, &topics.events, partition, start)?;
    handler.resumed_at(partition, start);
    let mut next = start;
    let mut committed = start;
    while !stop.load(Ordering::Relaxed) {
        let done = until.is_some_and(|end| next >= end);
        if done {
            handler.finish()?;
        } else {
            let Some(after) = feed_batch(sub, &mut reader, handler, next, batch)? else { continue };
            next = after;
            if next < reach {
                continue; // the handler holds what it folded until the batch reaches as far
            }
            if handler.flushes_whole_batches() {
                let attempt = Position { offset: committed, metadata: reach_metadata(next) };
                log.commit(group, &topics.events, partition, &attempt)?;
            }
            handler.flush()?;
        }
        let settled = reader.settled_offset();
        if settled != committed && !handler.holding() {
            log.commit(group, &topics.events, partition, &Position::at(settled))?;
            committed = settled;
        }
        if done {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads a batch from `next` and hands its accepted events to the handler (dead-lettering what
/// cannot be read); returns the offset to read next, or `None` after waiting a little when
/// there was nothing to read.
fn feed_batch(
    sub: Subscription<'_>,
    reader: &mut JournalReader,
    handler: &mut dyn EventHandler,
    mut next: u64,
    batch: usize,
) -> Result<Option<u64>, ConsumeError> {
    let Subscription { log, codec, topics, partition, .. } = sub;
    let records = log.read(&topics.events, partition, next, batch)?;
    if records.is_empty() {
        log.wait_for(&topics.events, partition, next, Duration::from_millis(100))?;
        return Ok(None);
    }
    for record in records {
        next = record.offset + 1;
        let entry = match reader.feed(record) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(e) => {
                let reason = e.reason;
                let refused = e.record.map(|r| *r).unwrap_or_else(|| LogRecord {
                    offset: e.offset,
                    timestamp_ms: 0,
                    key: None,
                    headers: Vec::new(),
                    value: Vec::new(),
                });
                sub.dead_letter(&refused, "not_a_journal_record", &reason)?;
                continue;
            }
        };
        let Entry::Decision(mut decision) = entry else { continue };
        let body = std::mem::replace(&mut decision.body, DecisionBody::Rejected(Vec::new()));
        let events = match body {
            DecisionBody::Accepted(events) => events,
            DecisionBody::Rejected(outcome) => {
                handler.rejected(partition, &decision, &outcome)?;
                continue;
            }
        };
        for e in events {
            match codec.decode_event(&e.payload) {
                Ok(event) => {
                    // the handling follows the event's trace; commands it sends carry this span's
                    let span = tracing::info_span!(
                        "handle",
                        otel.name = format!("{} {}", sub.group, e.envelope.event_type),
                        consumer = sub.group,
                        task_id = %e.envelope.task_id,
                        version = e.envelope.version,
                        partition,
                        offset = e.offset,
                    );
                    visionlog_telemetry::follow(&span, e.trace_parent.as_deref());
                    let _entered = span.enter();
                    handler.handle(HandledEvent {
                        partition,
                        offset: e.offset,
                        envelope: &e.envelope,
                        event: &event,
                        payload: &e.payload,
                    })?
                }
                Err(err) => {
                    let rec = LogRecord {
                        offset: e.offset,
                        timestamp_ms: e.envelope.recorded_at_ms,
                        key: None,
                        headers: Vec::new(),
                        value: e.payload,
                    };
                    sub.dead_letter(&rec, err.code(), &err.to_string())?;
                    handler.undecodable(partition, e.offset, &e.envelope)?;
                }
            }
        }
    }
    Ok(Some(next))
}

/// The most of a record's value a dead letter copies; the letter names where the whole record
/// stays (topic, partition, offset).
pub const DEAD_LETTER_VALUE_PREFIX: usize = 64 * 1024;
/// The most of the key, of each header value and of the error message a dead letter copies.
const DEAD_LETTER_FIELD: usize = 1024;
/// Headers a dead letter copies.
const DEAD_LETTER_HEADERS: usize = 64;

/// Records a record that could not be decoded or handled on the `dead-letters` topic.
///
/// The letter is bounded whatever the record's size: a prefix of the value (at most
/// [`DEAD_LETTER_VALUE_PREFIX`], and half of what the topic takes), the first headers, a key and
/// a message cut to a kilobyte or so. What was cut is said in the message, with the record's place.
#[allow(clippy::too_many_arguments)]
pub fn dead_letter(
    log: &dyn EventLog,
    codec: &Codec,
    topics: &Topics,
    source_topic: &str,
    partition: u32,
    record: &LogRecord,
    code: &str,
    message: &str,
    consumer: &str,
) -> Result<(), LogError> {
    tracing::warn!(source_topic, partition, offset = record.offset, code, message, consumer, "dead letter");
    let topic_max = log.max_record_bytes(&topics.dead_letters)?.unwrap_or(usize::MAX);
    let keep = DEAD_LETTER_VALUE_PREFIX.min(topic_max / 2);
    let mut error_message = cut(message, DEAD_LETTER_FIELD * 4).to_owned();
    if record.value.len() > keep {
        error_message.push_str(&format!(
            " (value cut to its first {keep} of {} bytes; the whole record stays at {source_topic}/{partition}@{})",
            record.value.len(),
            record.offset
        ));
    }
    let letter = DeadLetter {
        source_topic: source_topic.to_owned(),
        source_partition: partition as i32,
        source_offset: record.offset as i64,
        key: record.key.as_ref().map(|k| k[..k.len().min(DEAD_LETTER_FIELD)].to_vec()),
        headers: record
            .headers
            .iter()
            .take(DEAD_LETTER_HEADERS)
            .map(|(k, v)| {
                (cut(k, DEAD_LETTER_FIELD).to_owned(), cut(&String::from_utf8_lossy(v), DEAD_LETTER_FIELD).to_owned())
            })
            .collect(),
        value: record.value[..record.value.len().min(keep)].to_vec(),
        error_code: cut(code, DEAD_LETTER_FIELD).to_owned(),
        error_message,
        consumer: consumer.to_owned(),
        recorded_at_ms: crate::now_ms(),
    };
    let value = codec.encode_dead_letter(&letter).expect("a dead letter always encodes");
    let key = letter.key.clone();
    log.append(&topics.dead_letters, 0, &[Record { key, headers: Vec::new(), value }])?;
    Ok(())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
