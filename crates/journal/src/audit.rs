//! Reading a whole journal back and checking its invariants.

use crate::reader::{DecisionBody, Entry, JournalReader};
use crate::topics::Topics;
use std::collections::{HashMap, HashSet};
use visionlog_log::{EventLog, LogError};

/// What a full read of the journal found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Events in force.
    pub events: u64,
    /// Streams (tasks) with at least one event.
    pub streams: u64,
    /// Commands decided (accepted or rejected).
    pub decisions: u64,
    /// Rejections.
    pub rejections: u64,
    /// Events whose version does not follow the previous one of their stream.
    pub version_gaps: u64,
    /// Events whose id appeared before, plus commands decided more than once.
    pub duplicate_events: u64,
    /// Claims in force.
    pub claims: u64,
    /// Records the reader refused (not journal records).
    pub foreign_records: u64,
    /// Ids of the commands accepted.
    pub accepted_commands: HashSet<String>,
    /// Stream version of each task.
    pub versions: HashMap<String, u64>,
    /// Events in force by type name.
    pub events_by_type: HashMap<String, u64>,
}

/// Reads every partition of the journal from the start.
pub fn audit(log: &dyn EventLog, topics: &Topics) -> Result<Audit, LogError> {
    let mut a = Audit::default();
    let mut decided = HashSet::new();
    let mut event_ids = HashSet::new();
    for p in 0..log.partitions(&topics.events)? {
        let mut reader = JournalReader::default();
        let mut from = 0;
        loop {
            let records = log.read(&topics.events, p, from, 4096)?;
            let Some(last) = records.last() else { break };
            from = last.offset + 1;
            for r in records {
                let d = match reader.feed(r) {
                    Ok(Some(Entry::Decision(d))) => d,
                    Ok(Some(Entry::Claim { .. })) => {
                        a.claims += 1;
                        continue;
                    }
                    Ok(None) => continue,
                    Err(_) => {
                        a.foreign_records += 1;
                        continue;
                    }
                };
                a.decisions += 1;
                if !decided.insert(d.command_id.clone()) {
                    a.duplicate_events += 1;
                }
                let DecisionBody::Accepted(events) = d.body else {
                    a.rejections += 1;
                    continue;
                };
                a.accepted_commands.insert(d.command_id);
                for e in events {
                    a.events += 1;
                    *a.events_by_type.entry(e.envelope.event_type.clone()).or_default() += 1;
                    if !event_ids.insert(e.envelope.event_id.clone()) {
                        a.duplicate_events += 1;
                    }
                    let version = a.versions.entry(e.envelope.task_id.clone()).or_default();
                    if e.envelope.version != *version + 1 {
                        a.version_gaps += 1;
                    }
                    *version = e.envelope.version;
                }
            }
        }
    }
    a.streams = a.versions.len() as u64;
    Ok(a)
}
