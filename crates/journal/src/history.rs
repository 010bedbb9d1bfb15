//! Reading the accepted events of a journal partition, one after the other.

use crate::reader::{DecisionBody, Entry, JournalEvent, JournalReader};
use std::collections::VecDeque;
use std::ops::Range;
use visionlog_log::{EventLog, LogError, LogRecord};

/// Records read from the log at a time.
const READ_BATCH: usize = 4096;

/// The events of the accepted decisions of one partition, in order, read through the journal's
/// rules ([`JournalReader`]); claims, rejections and records that are not journal records are
/// passed over. For the readers of a whole history (time travel, exports, audits, undoing a
/// batch); live services read through [`crate::consume_partition`], which also dead-letters.
pub struct Accepted<'l> {
    log: &'l dyn EventLog,
    topic: &'l str,
    partition: u32,
    /// Made on the first read, with the epoch in force where the range starts.
    reader: Option<JournalReader>,
    next: u64,
    end: u64,
    records: VecDeque<LogRecord>,
    events: VecDeque<JournalEvent>,
    records_read: u64,
    failed: bool,
}

/// Reads the accepted events of `partition` of `topic` whose records lie in `range` (an end
/// past the log's end reads to the end as it is then).
pub fn accepted<'l>(log: &'l dyn EventLog, topic: &'l str, partition: u32, range: Range<u64>) -> Accepted<'l> {
    Accepted {
        log,
        topic,
        partition,
        reader: None,
        next: range.start,
        end: range.end,
        records: VecDeque::new(),
        events: VecDeque::new(),
        records_read: 0,
        failed: false,
    }
}

impl Accepted<'_> {
    /// Records read from the log so far (for progress bars).
    pub fn records_read(&self) -> u64 {
        self.records_read
    }
}

impl Iterator for Accepted<'_> {
    type Item = Result<JournalEvent, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(Ok(e));
            }
            // records are only read once the reader is made
            if let Some(reader) = self.reader.as_mut()
                && let Some(record) = self.records.pop_front()
            {
                if let Ok(Some(Entry::Decision(d))) = reader.feed(record)
                    && let DecisionBody::Accepted(events) = d.body
                {
                    self.events.extend(events);
                }
                continue;
            }
            if self.failed || self.next >= self.end {
                return None;
            }
            if self.reader.is_none() {
                // the epoch in force where the range starts is the one of the record before it
                match JournalReader::resume_after(self.log, self.topic, self.partition, self.next) {
                    Ok(reader) => self.reader = Some(reader),
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
            // an empty read below the log's end is a log that cannot answer yet, not the end
            let records = match self.log.read(self.topic, self.partition, self.next, READ_BATCH).and_then(|r| {
                if !r.is_empty() || self.next >= self.log.end_offset(self.topic, self.partition)? {
                    return Ok(r);
                }
                crate::reader::read_held(self.log, self.topic, self.partition, self.next, READ_BATCH)
            }) {
                Ok(records) => records,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            let Some(last) = records.last() else {
                self.next = self.end;
                return None;
            };
            self.next = last.offset + 1;
            self.records_read += records.len() as u64;
            self.records.extend(records.into_iter().filter(|r| r.offset < self.end));
        }
    }
}

/// One event of a task's stream, decoded.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// Offset in its `events` partition.
    pub offset: u64,
    /// Its envelope.
    pub envelope: visionlog_codec::envelope::EventEnvelope,
    /// The event.
    pub event: visionlog_domain::TaskEvent,
}

/// Why a task's history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An accepted event does not decode.
    #[error(transparent)]
    Codec(#[from] visionlog_codec::CodecError),
}

/// Reads the events of task `task_id` recorded at or after offset `from` of its partition of
/// `events`, up to the end as it is now. The partition is scanned: a task's events lie among
/// those of every task hashed to it (the read side's views answer the hot questions).
pub fn task_events(
    log: &dyn EventLog,
    codec: &visionlog_codec::Codec,
    topics: &crate::Topics,
    task_id: &str,
    from: u64,
) -> Result<Vec<RecordedEvent>, HistoryError> {
    let p = visionlog_log::partition_for(task_id.as_bytes(), topics.partitions);
    let mut out = Vec::new();
    for e in accepted(log, &topics.events, p, from..u64::MAX) {
        let e = e?;
        if e.envelope.task_id != task_id {
            continue;
        }
        let event = codec.decode_event(&e.payload)?;
        out.push(RecordedEvent { offset: e.offset, envelope: e.envelope, event });
    }
    Ok(out)
}

/// A task's state folded from its history as of a version or an instant (time travel).
#[derive(Clone, Debug)]
pub struct StateAsOf {
    /// The state (`None`: the task did not exist then).
    pub state: visionlog_domain::TaskState,
    /// The version folded up to.
    pub version: u64,
    /// When that version was recorded (ms).
    pub recorded_at_ms: Option<i64>,
}

/// Folds `history` up to `version` and to what was recorded by `at_ms` (each: no limit if none).
pub fn state_as_of(history: &[RecordedEvent], version: Option<u64>, at_ms: Option<i64>) -> StateAsOf {
    let (upto, until) = (version.unwrap_or(u64::MAX), at_ms.unwrap_or(i64::MAX));
    let mut out = StateAsOf { state: None, version: 0, recorded_at_ms: None };
    for e in history.iter().filter(|e| e.envelope.version <= upto && e.envelope.recorded_at_ms <= until) {
        out.version = e.envelope.version;
        out.recorded_at_ms = Some(e.envelope.recorded_at_ms);
        out.state = visionlog_domain::evolve(out.state.take(), &e.event);
    }
    out
}
