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
            let records = match self.log.read(self.topic, self.partition, self.next, READ_BATCH) {
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
