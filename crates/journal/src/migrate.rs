//! Growing the partition count: the journal copied into topics with more partitions.
//!
//! Partitions are fixed at creation and a task lives on the partition of its id, so a new count
//! means a new journal. [`copy_journal`] reads every partition of the old `events` through the
//! journal's rules (claims, epochs, torn decisions: only decisions in force are copied) and
//! appends each decision, whole and unchanged (events, envelopes, versions, command id, trace),
//! to the partition of its task on the new count, after a claim of its own in each new partition.
//! A task lives on one old partition, so its decisions keep their order. Rejections are copied too:
//! the aggregator's deduplication remembers rejected command ids. A copy carries
//! `vl.copied_from` and no command offset (its command was in the old `commands`), so the new
//! aggregator neither moves its position on the new `commands` by it nor publishes its outcome
//! again. [`verify_copy`] compares the two journals by counts and an order-independent digest of
//! every accepted event, and audits the new one (no version gap, no duplicate).
//!
//! A copy resumes: [`CopyState`] says, per old partition, where the next run goes on (the offset
//! after the last decision read whole, and the epoch in force there), and keeps a tally of what
//! was read from the old journal and what was read back from the new one. So most of the journal
//! is copied while the old installation runs (an online run: decisions not yet whole are left to
//! the next run), and the run during the producers' pause copies only the tail. A run cut short
//! between an append and the save of its state leaves copies the state does not know: the next
//! run reads the new journal from the ends the state recorded, counts those copies and does not
//! append them again.
//!
//! For the final run the old aggregators must have drained (`commands` all decided) and nothing
//! may send to the old `commands` meanwhile (docs/operations.md).

use crate::framing::{claim_record, copied_records};
use crate::reader::{DecisionBody, Entry, JournalReader};
use crate::{Topics, audit};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use visionlog_log::{EventLog, LogError, Record, partition_for};

/// Why a migration step refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The state of the topics does not allow it.
    #[error("{0}")]
    Refused(String),
}

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Copied {
    /// Decisions copied (accepted and rejected).
    pub decisions: u64,
    /// Events copied.
    pub events: u64,
    /// Rejections copied.
    pub rejections: u64,
    /// Decisions per new partition.
    pub per_partition: Vec<u64>,
}

/// Counts and a digest of accepted events (of a whole journal, or of what a copy read so far).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalDigest {
    /// Accepted events.
    pub events: u64,
    /// Decisions (accepted and rejected).
    pub decisions: u64,
    /// Sum (mod 2^128) of a hash of each event's task, version, event id and payload: equal for
    /// two journals holding the same events, whatever their partitions and order.
    pub digest: String,
}

impl JournalDigest {
    /// Adds a decision's events.
    fn add(&mut self, d: &crate::Decision) {
        let mut sum = u128::from_str_radix(&self.digest, 16).unwrap_or(0);
        self.decisions += 1;
        if let DecisionBody::Accepted(events) = &d.body {
            for e in events {
                let mut h = Sha256::new();
                for part in [e.envelope.task_id.as_bytes(), e.envelope.event_id.as_bytes()] {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part);
                }
                h.update(e.envelope.version.to_le_bytes());
                h.update(&e.payload);
                let bytes: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
                sum = sum.wrapping_add(u128::from_le_bytes(bytes));
                self.events += 1;
            }
        }
        self.digest = format!("{sum:032x}");
    }
}

/// The old and the new journal compared whole.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// The old journal.
    pub old: JournalDigest,
    /// The new one.
    pub new: JournalDigest,
    /// Version gaps in the new journal (must be 0).
    pub version_gaps: u64,
    /// Events decided twice in the new journal (must be 0).
    pub duplicate_events: u64,
}

impl Verification {
    /// Whether the new journal holds exactly the old one's events, in order per task.
    pub fn holds(&self) -> bool {
        self.old == self.new && self.version_gaps == 0 && self.duplicate_events == 0
    }
}

/// Where a copy stands (see the module): saved after every append, given to the next run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyState {
    /// Per old partition: the offset the next run reads from, and the epoch in force there.
    pub next: Vec<(u64, u64)>,
    /// Per new partition: its end when the state was saved.
    pub new_ends: Vec<u64>,
    /// What was read from the old journal.
    pub read: JournalDigest,
    /// What was read back from the new one.
    pub written: JournalDigest,
    /// What the runs did.
    pub copied: Copied,
    /// Saves so far (a version for the store that keeps the state).
    pub saves: u64,
}

impl CopyState {
    /// Whether the new journal holds exactly what was read from the old one.
    pub fn holds(&self) -> bool {
        self.read == self.written
    }
}

/// Reads partition `p` of `topic` (up to its end when called) through the journal's rules,
/// entry by entry; returns the records read.
fn for_each_entry(
    log: &dyn EventLog,
    topic: &str,
    p: u32,
    mut visit: impl FnMut(Entry) -> Result<(), MigrateError>,
) -> Result<u64, MigrateError> {
    let (mut reader, mut from, mut read) = (JournalReader::default(), 0, 0);
    let end = log.end_offset(topic, p)?;
    while from < end {
        let records = crate::read_held(log, topic, p, from, 2048)?;
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        for r in records.into_iter().filter(|r| r.offset < end) {
            read += 1;
            // records not in force (a superseded owner's, a torn decision's, foreign ones) give
            // no entry, or an error: they are left out
            if let Ok(Some(entry)) = reader.feed(r) {
                visit(entry)?;
            }
        }
    }
    Ok(read)
}

/// The epoch of the copier's claims and copies.
const EPOCH: u64 = 1;
/// Records appended per batch.
const BATCH_RECORDS: usize = 4096;

/// Copies the journal of `from` into `to` (see the module), from `state` (none: a first run,
/// which refuses a target that holds records, then claims each new partition for `owner`).
/// `save` keeps the state after every append; `progress` is told (old partition, decisions).
/// Returns the state after the run: give it to the next one.
pub fn copy_journal(
    log: &dyn EventLog,
    from: &Topics,
    to: &Topics,
    owner: &str,
    state: Option<CopyState>,
    save: &mut dyn FnMut(&CopyState) -> Result<(), MigrateError>,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<CopyState, MigrateError> {
    if from.events == to.events {
        return Err(MigrateError::Refused("the new journal must be another topic (a new topic prefix)".into()));
    }
    let old_partitions = log.partitions(&from.events)?;
    let mut state = match state {
        Some(s) => s,
        None => {
            to.create(log)?;
            for p in 0..to.partitions {
                if log.end_offset(&to.events, p)? > 0 {
                    return Err(MigrateError::Refused(format!(
                        "{} partition {p} is not empty and no copy state names it: delete the new topics and copy again",
                        to.events
                    )));
                }
            }
            let mut new_ends = Vec::new();
            for p in 0..to.partitions {
                new_ends.push(log.append(&to.events, p, &[claim_record(EPOCH, owner)])?.first + 1);
            }
            let copied = Copied { per_partition: vec![0; to.partitions as usize], ..Copied::default() };
            CopyState { next: vec![(0, 0); old_partitions as usize], new_ends, copied, ..CopyState::default() }
        }
    };
    let partitions = log.partitions(&to.events)?;
    if partitions != to.partitions || state.new_ends.len() != partitions as usize {
        return Err(MigrateError::Refused(format!("{} has {partitions} partitions, not {}", to.events, to.partitions)));
    }
    if state.next.len() != old_partitions as usize {
        return Err(MigrateError::Refused(format!(
            "{} has {old_partitions} partitions, the copy state another count",
            from.events
        )));
    }
    // copies appended after the state was saved (a run cut short): counted, never appended again
    let mut already = std::collections::HashSet::new();
    for p in 0..partitions {
        read_back(log, &to.events, p, &mut state, |d| {
            if let Some(f) = &d.copied_from {
                already.insert(f.clone());
            }
        })?;
    }
    if !already.is_empty() {
        save(&state)?;
    }
    for old in 0..old_partitions {
        let (offset, epoch) = state.next[old as usize];
        let mut reader = JournalReader::resume(offset, epoch);
        let end = log.end_offset(&from.events, old)?;
        let (mut at, mut pending, mut buffered) = (offset, BTreeMap::<u32, Vec<Record>>::new(), 0);
        while at < end {
            let records = crate::read_held(log, &from.events, old, at, 2048)?;
            let Some(last) = records.last() else { break };
            at = last.offset + 1;
            for r in records.into_iter().filter(|r| r.offset < end) {
                let Ok(Some(Entry::Decision(d))) = reader.feed(r) else { continue };
                state.read.add(&d);
                let here = format!("{}/{old}/{}", from.events, d.first_offset);
                if already.contains(&here) {
                    continue;
                }
                let new = partition_for(d.task_id.as_bytes(), partitions);
                let records = copied_records(&d, EPOCH, &here);
                match &d.body {
                    DecisionBody::Accepted(events) => state.copied.events += events.len() as u64,
                    DecisionBody::Rejected(_) => state.copied.rejections += 1,
                }
                state.copied.decisions += 1;
                state.copied.per_partition[new as usize] += 1;
                buffered += records.len();
                // a decision's records go in one append, so it stays whole and contiguous
                pending.entry(new).or_default().extend(records);
            }
            if buffered >= BATCH_RECORDS {
                flush(log, to, &mut pending, &mut state, &reader, old, save)?;
                buffered = 0;
                progress(old, state.copied.decisions);
            }
        }
        flush(log, to, &mut pending, &mut state, &reader, old, save)?;
        progress(old, state.copied.decisions);
    }
    Ok(state)
}

/// Appends what is pending, reads it back into the tally, and saves the state with old
/// partition `old` settled where `reader` is.
fn flush(
    log: &dyn EventLog,
    to: &Topics,
    pending: &mut BTreeMap<u32, Vec<Record>>,
    state: &mut CopyState,
    reader: &JournalReader,
    old: u32,
    save: &mut dyn FnMut(&CopyState) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let batches: Vec<(u32, Vec<Record>)> = std::mem::take(pending).into_iter().collect();
    if !batches.is_empty() {
        log.append_all(&to.events, &batches)?;
        for (p, _) in &batches {
            read_back(log, &to.events, *p, state, |_| {})?;
        }
    }
    state.next[old as usize] = (reader.settled_offset(), reader.epoch());
    state.saves += 1;
    save(state)
}

/// Reads new partition `p` from the end the state knows to its end, adding each copy to the
/// tally of what was written (and showing it to `seen`).
fn read_back(
    log: &dyn EventLog,
    topic: &str,
    p: u32,
    state: &mut CopyState,
    mut seen: impl FnMut(&crate::Decision),
) -> Result<(), MigrateError> {
    let (from, end) = (state.new_ends[p as usize], log.end_offset(topic, p)?);
    let mut reader = JournalReader::resume(from, EPOCH);
    let mut at = from;
    while at < end {
        let records = crate::read_held(log, topic, p, at, 2048)?;
        let Some(last) = records.last() else { break };
        at = last.offset + 1;
        for r in records.into_iter().filter(|r| r.offset < end) {
            if let Ok(Some(Entry::Decision(d))) = reader.feed(r) {
                state.written.add(&d);
                seen(&d);
            }
        }
    }
    state.new_ends[p as usize] = end;
    Ok(())
}

/// Counts and digests the accepted events of `topics`' journal.
pub fn digest_journal(log: &dyn EventLog, topics: &Topics) -> Result<JournalDigest, MigrateError> {
    let mut out = JournalDigest::default();
    for p in 0..log.partitions(&topics.events)? {
        for_each_entry(log, &topics.events, p, |entry| {
            if let Entry::Decision(d) = entry {
                out.add(&d);
            }
            Ok(())
        })?;
    }
    if out.digest.is_empty() {
        out.digest = format!("{:032x}", 0);
    }
    Ok(out)
}

/// Compares the journal of `from` with its copy in `to` (see the module).
pub fn verify_copy(log: &dyn EventLog, from: &Topics, to: &Topics) -> Result<Verification, MigrateError> {
    let (old, new) = (digest_journal(log, from)?, digest_journal(log, to)?);
    let a = audit(log, to)?;
    Ok(Verification { old, new, version_gaps: a.version_gaps, duplicate_events: a.duplicate_events })
}
