//! A task's history, read in time proportional to the task rather than to its partition.
//!
//! The projector keeps every accepted event of every task in `task_events` of its generation
//! (one row per event: partition = task id, clustering = version, value = the event's offset,
//! envelope and payload as the journal holds it), and, per partition of `events`, the offset
//! from which it holds them all (`history_from`). [`task_history`] reads, in this order:
//!
//! 1. the serving generation's committed position in the task's partition (everything before
//!    it is in the rows: the projector commits a position only after writing what lies before);
//! 2. the task's rows;
//! 3. the journal from that position to its end, through the journal's rules — the projector's
//!    lag, a few hundred records in a healthy pipeline — keeping this task's events.
//!
//! Every event accepted before the read began is in (2) or (3), so a caller that was told a
//! command was accepted reads its events (read-your-writes) whether or not the projector has
//! caught up. A generation projected before this index existed has `history_from` at the offset
//! its projector resumed from: events below it are read from the journal (the old cost) until
//! `visionlog report rebuild` builds a generation that holds them all. With no `history_from`
//! at all (the projector never ran on the partition) the journal is read whole, as before.
//!
//! The same rows answer "which tasks did batch X touch" (undoing a batch, seed 003): per
//! correlation id, one row per task with an event of it (`batch_tasks`), read by
//! [`batch_tasks`] with the same journal tail, so an undo costs the batch, not the history.

use crate::generations::{self, table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use visionlog_codec::Codec;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_journal::{RecordedEvent, Topics, accepted};
use visionlog_log::EventLog;
use visionlog_store::{ReadStore, Row, StoreError};

/// Every event of every task: partition = task id, clustering = version (20 digits).
pub const TASK_EVENTS: &str = "task_events";
/// Per partition of `events`: the offset from which `task_events` holds every accepted event
/// (the row's version is `u64::MAX - offset`, so the lowest offset ever written stays).
pub const HISTORY_FROM: &str = "history_from";
/// The tasks of each batch: partition = correlation id, clustering = task id, version = the
/// newest version of the task's events in the batch (so a rewrite of an older one is a no-op).
pub const BATCH_TASKS: &str = "batch_tasks";
/// The tables of the history index, in each generation beside the views.
pub const HISTORY_TABLES: [&str; 3] = [TASK_EVENTS, HISTORY_FROM, BATCH_TASKS];

/// Why a task's history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryReadError {
    /// The read store failed.
    #[error("read store: {0}")]
    Store(#[from] StoreError),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] visionlog_journal::HistoryError),
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] visionlog_log::LogError),
    /// An event does not decode.
    #[error(transparent)]
    Codec(#[from] visionlog_codec::CodecError),
    /// A row of the index is not one.
    #[error("task_events row {0}/{1} is unreadable")]
    Corrupt(String, String),
}

#[derive(Serialize)]
struct IndexedRef<'a> {
    offset: u64,
    envelope: &'a EventEnvelope,
    payload: &'a [u8],
}

#[derive(Deserialize)]
struct Indexed {
    offset: u64,
    envelope: EventEnvelope,
    payload: Vec<u8>,
}

/// The row of one event (its version guards it: rewriting it is a no-op).
pub fn event_row(offset: u64, envelope: &EventEnvelope, payload: &[u8]) -> Row {
    let value = postcard::to_allocvec(&IndexedRef { offset, envelope, payload }).expect("an event row serializes");
    Row {
        partition: envelope.task_id.clone(),
        clustering: format!("{:020}", envelope.version),
        version: envelope.version,
        value,
    }
}

/// The row saying task `task_id` has an event of batch `correlation_id` at `version`.
pub fn batch_row(correlation_id: &str, task_id: &str, version: u64) -> Row {
    // the value repeats the version: an empty one would be a tombstone
    Row {
        partition: correlation_id.to_owned(),
        clustering: task_id.to_owned(),
        version,
        value: version.to_string().into_bytes(),
    }
}

/// The row saying `task_events` holds partition `partition`'s events from `offset` on.
pub fn history_from_row(partition: u32, offset: u64) -> Row {
    Row { partition: partition.to_string(), clustering: String::new(), version: u64::MAX - offset, value: Vec::new() }
}

/// What a history read needs.
#[derive(Clone, Copy)]
pub struct HistorySource<'a> {
    /// The log (hot and cold).
    pub log: &'a dyn EventLog,
    /// The codec.
    pub codec: &'a Codec,
    /// The topics.
    pub topics: &'a Topics,
    /// The read store.
    pub store: &'a dyn ReadStore,
}

/// The offsets of partition `p` that the index does not cover, as of now: below where it
/// starts and from the serving generation's committed position on — or the whole partition
/// where the projector never ran on it.
fn uncovered(src: HistorySource<'_>, serving: u32, p: u32) -> Result<[std::ops::Range<u64>; 2], HistoryReadError> {
    let Some(from) = history_from(src, serving, p)? else { return Ok([0..u64::MAX, 0..0]) };
    uncovered_from(src, serving, p, from)
}

/// [`uncovered`] where the index holds the partition from `from` on.
fn uncovered_from(
    src: HistorySource<'_>,
    serving: u32,
    p: u32,
    from: u64,
) -> Result<[std::ops::Range<u64>; 2], HistoryReadError> {
    // the position first: rows written after it only add to what the journal tail holds
    let position = src.log.committed(&generations::group(serving), &src.topics.events, p)?.map_or(0, |c| c.offset);
    // the rows hold every event of [from, position); the journal the rest: below `from` (a
    // generation projected before the index existed) and from `position` on (the lag)
    Ok(if position <= from { [0..u64::MAX, 0..0] } else { [0..from, position..u64::MAX] })
}

/// The offset of partition `p` from which the serving generation's index holds every event,
/// if it holds any (a reader that needs the whole partition reads the journal below it).
pub fn indexed_from(src: HistorySource<'_>, p: u32) -> Result<Option<u64>, HistoryReadError> {
    history_from(src, generations::read(src.store)?.0.serving, p)
}

/// Generation `serving`'s `history_from` of partition `p`.
fn history_from(src: HistorySource<'_>, serving: u32, p: u32) -> Result<Option<u64>, HistoryReadError> {
    Ok(src.store.get(&table(HISTORY_FROM, serving), &p.to_string(), "")?.map(|r| u64::MAX - r.version))
}

/// Every event of task `task_id` accepted before the call, in version order (see the module).
pub fn task_history(src: HistorySource<'_>, task_id: &str) -> Result<Vec<RecordedEvent>, HistoryReadError> {
    let p = visionlog_log::partition_for(task_id.as_bytes(), src.topics.partitions);
    let (g, _) = generations::read(src.store)?;
    let Some(from) = history_from(src, g.serving, p)? else {
        return Ok(visionlog_journal::task_events(src.log, src.codec, src.topics, task_id, 0)?);
    };
    let ranges = uncovered_from(src, g.serving, p, from)?;
    let mut events = BTreeMap::new();
    for row in visionlog_store::read_partition(src.store, &table(TASK_EVENTS, g.serving), task_id)? {
        let Ok(i) = postcard::from_bytes::<Indexed>(&row.value) else {
            return Err(HistoryReadError::Corrupt(row.partition, row.clustering));
        };
        let event = src.codec.decode_event(&i.payload)?;
        events.insert(i.envelope.version, RecordedEvent { offset: i.offset, envelope: i.envelope, event });
    }
    for range in ranges.into_iter().filter(|r| !r.is_empty()) {
        for e in accepted(src.log, &src.topics.events, p, range) {
            let e = e?;
            if e.envelope.task_id != task_id || events.contains_key(&e.envelope.version) {
                continue;
            }
            let event = src.codec.decode_event(&e.payload)?;
            events.insert(e.envelope.version, RecordedEvent { offset: e.offset, envelope: e.envelope, event });
        }
    }
    Ok(events.into_values().collect())
}

/// The tasks with an event of batch `correlation_id` accepted before the call, by partition of
/// `events`: the batch's rows, then the journal where the index does not cover it (the
/// projector's lag; a partition it never ran on is read whole). Costs the batch plus the lag.
pub fn batch_tasks(
    src: HistorySource<'_>,
    correlation_id: &str,
) -> Result<BTreeMap<u32, std::collections::BTreeSet<String>>, HistoryReadError> {
    let (g, _) = generations::read(src.store)?;
    let mut ranges = Vec::with_capacity(src.topics.partitions as usize);
    for p in 0..src.topics.partitions {
        ranges.push(uncovered(src, g.serving, p)?); // before the rows, like a task's history
    }
    let mut out: BTreeMap<u32, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in visionlog_store::read_partition(src.store, &table(BATCH_TASKS, g.serving), correlation_id)? {
        let p = visionlog_log::partition_for(row.clustering.as_bytes(), src.topics.partitions);
        out.entry(p).or_default().insert(row.clustering);
    }
    for (p, ranges) in (0..src.topics.partitions).zip(ranges) {
        for range in ranges.into_iter().filter(|r| !r.is_empty()) {
            for e in accepted(src.log, &src.topics.events, p, range) {
                let e = e?;
                if e.envelope.correlation_id == correlation_id {
                    out.entry(p).or_default().insert(e.envelope.task_id);
                }
            }
        }
    }
    Ok(out)
}
