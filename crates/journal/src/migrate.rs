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
//! The old aggregators must have drained (`commands` all decided) and nothing may send to the old
//! `commands` meanwhile: the copy is of a journal that no longer moves (docs/operations.md).

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
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    /// Decisions copied (accepted and rejected).
    pub decisions: u64,
    /// Events copied.
    pub events: u64,
    /// Rejections copied.
    pub rejections: u64,
    /// Records of the old journal not in force (superseded owners, torn decisions), left out.
    pub left_out: u64,
    /// Decisions per new partition.
    pub per_partition: Vec<u64>,
}

/// Counts and a digest of every accepted event of one journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JournalDigest {
    /// Accepted events.
    pub events: u64,
    /// Decisions (accepted and rejected).
    pub decisions: u64,
    /// Sum (mod 2^128) of a hash of each event's task, version, event id and payload: equal for
    /// two journals holding the same events, whatever their partitions and order.
    pub digest: String,
}

/// The old and the new journal compared.
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

/// Copies the journal of `from` into `to` (see the module); `owner` names the claims it writes.
/// Refuses when a partition of `to.events` already holds records (a copy is not resumed: delete
/// the new topics and copy again). `progress` is told (old partition, decisions so far).
pub fn copy_journal(
    log: &dyn EventLog,
    from: &Topics,
    to: &Topics,
    owner: &str,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<Copied, MigrateError> {
    if from.events == to.events {
        return Err(MigrateError::Refused("the new journal must be another topic (a new topic prefix)".into()));
    }
    to.create(log)?;
    let partitions = log.partitions(&to.events)?;
    if partitions != to.partitions {
        return Err(MigrateError::Refused(format!("{} has {partitions} partitions, not {}", to.events, to.partitions)));
    }
    for p in 0..partitions {
        if log.end_offset(&to.events, p)? > 0 {
            return Err(MigrateError::Refused(format!(
                "{} partition {p} is not empty: a copy is not resumed; delete the new topics and copy again",
                to.events
            )));
        }
    }
    const EPOCH: u64 = 1;
    for p in 0..partitions {
        log.append(&to.events, p, &[claim_record(EPOCH, owner)])?;
    }
    let mut copied = Copied { per_partition: vec![0; partitions as usize], ..Copied::default() };
    let mut pending: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    let flush = |pending: &mut BTreeMap<u32, Vec<Record>>| -> Result<(), MigrateError> {
        let batches: Vec<(u32, Vec<Record>)> = std::mem::take(pending).into_iter().collect();
        if !batches.is_empty() {
            log.append_all(&to.events, &batches)?;
        }
        Ok(())
    };
    for old in 0..log.partitions(&from.events)? {
        let (mut buffered, mut used) = (0, 0u64);
        let read = for_each_entry(log, &from.events, old, |entry| {
            let Entry::Decision(d) = entry else {
                used += 1; // a claim
                return Ok(());
            };
            let new = partition_for(d.task_id.as_bytes(), partitions);
            let records = copied_records(&d, EPOCH, &format!("{}/{old}/{}", from.events, d.first_offset));
            match &d.body {
                DecisionBody::Accepted(events) => copied.events += events.len() as u64,
                DecisionBody::Rejected(_) => copied.rejections += 1,
            }
            copied.decisions += 1;
            copied.per_partition[new as usize] += 1;
            used += records.len() as u64;
            buffered += records.len();
            // a decision's records go in one append, so it stays whole and contiguous
            pending.entry(new).or_default().extend(records);
            if buffered >= 4096 {
                flush(&mut pending)?;
                buffered = 0;
                progress(old, copied.decisions);
            }
            Ok(())
        })?;
        flush(&mut pending)?;
        copied.left_out += read - used;
        progress(old, copied.decisions);
    }
    Ok(copied)
}

/// Counts and digests the accepted events of `topics`' journal.
pub fn digest_journal(log: &dyn EventLog, topics: &Topics) -> Result<JournalDigest, MigrateError> {
    let (mut sum, mut out) = (0u128, JournalDigest::default());
    for p in 0..log.partitions(&topics.events)? {
        for_each_entry(log, &topics.events, p, |entry| {
            let Entry::Decision(d) = entry else { return Ok(()) };
            out.decisions += 1;
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
                    out.events += 1;
                }
            }
            Ok(())
        })?;
    }
    out.digest = format!("{sum:032x}");
    Ok(out)
}

/// Compares the journal of `from` with its copy in `to` (see the module).
pub fn verify_copy(log: &dyn EventLog, from: &Topics, to: &Topics) -> Result<Verification, MigrateError> {
    let (old, new) = (digest_journal(log, from)?, digest_journal(log, to)?);
    let a = audit(log, to)?;
    Ok(Verification { old, new, version_gaps: a.version_gaps, duplicate_events: a.duplicate_events })
}
