//! Reading the journal: fencing by epoch and whole decisions only.

use crate::framing::{headers, kinds};
use thiserror::Error;
use visionlog_codec::envelope::{EventEnvelope, get, names};
use visionlog_log::LogRecord;

/// A record that does not belong in the journal (foreign or damaged); skip and dead-letter it.
#[derive(Debug, Error)]
#[error("record {offset} is not a journal record: {reason}")]
pub struct JournalError {
    /// Its offset.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// The record itself, handed back for a dead letter (so readers need not keep a copy).
    pub record: Option<Box<LogRecord>>,
}

/// One event of an accepted decision.
#[derive(Clone, Debug)]
pub struct JournalEvent {
    /// Offset in the `events` partition.
    pub offset: u64,
    /// Its envelope.
    pub envelope: EventEnvelope,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// The trace context the aggregator wrote on it (W3C `traceparent`), if any.
    pub trace_parent: Option<Vec<u8>>,
}

/// What a decision holds.
#[derive(Clone, Debug)]
pub enum DecisionBody {
    /// The events appended, in stream order.
    Accepted(Vec<JournalEvent>),
    /// The encoded `Outcome` of a rejected command.
    Rejected(Vec<u8>),
}

/// The whole result of one command.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The command.
    pub command_id: String,
    /// Its type.
    pub command_type: String,
    /// Its task.
    pub task_id: String,
    /// Its offset in `commands`; none for a decision copied from another journal (a partition
    /// migration), whose command was in another `commands` topic.
    pub command_offset: Option<u64>,
    /// Offset of the decision's first record.
    pub first_offset: u64,
    /// For a decision copied from another journal (a partition migration): where it was,
    /// `topic/partition/offset`.
    pub copied_from: Option<String>,
    /// The tenant the command came from: its events' tenant, or the one its rejection names
    /// (none on rejections written before rejections named it).
    pub tenant: Option<String>,
    /// Events or rejection.
    pub body: DecisionBody,
}

/// What the journal says, in order.
#[derive(Clone, Debug)]
pub enum Entry {
    /// An owner took the partition.
    Claim {
        /// Offset of the claim.
        offset: u64,
        /// Its epoch.
        epoch: u64,
        /// Who.
        owner: String,
    },
    /// A whole decision of the owner in force.
    Decision(Decision),
}

struct Framed {
    record: LogRecord,
    command_id: String,
    index: usize,
}

/// Reads one partition of the journal, record by record, applying the fencing rules.
#[derive(Default)]
pub struct JournalReader {
    epoch: u64,
    pending: Vec<Framed>,
    next_offset: u64,
    /// The offset after the last record in force that is not part of a pending decision.
    settled: u64,
    /// Where the claim in force is, if this reader read it.
    claim: Option<u64>,
}

fn text<'r>(r: &'r LogRecord, name: &str) -> Result<&'r str, String> {
    let v = get(&r.headers, name).ok_or_else(|| format!("missing header {name}"))?;
    std::str::from_utf8(v).map_err(|_| format!("header {name} is not utf-8"))
}

fn number(r: &LogRecord, name: &str) -> Result<u64, String> {
    text(r, name)?.parse().map_err(|_| format!("header {name} is not a number"))
}

impl JournalReader {
    /// Starts reading at `offset` with the epoch in force there (0 at the start of a partition).
    pub fn resume(offset: u64, epoch: u64) -> Self {
        Self { epoch, pending: Vec::new(), next_offset: offset, settled: offset, claim: None }
    }

    /// Starts reading at a position taken from [`Self::settled_offset`]: the record just before
    /// it was in force, so its epoch is the epoch in force there (one read, no stored metadata).
    ///
    /// That record must be read: an epoch guessed as 0 would pass over every decision up to the
    /// next claim as a zombie's, and a consumer would commit its position past them (views lost
    /// after a Kafka broker restart, when the first read of a reconnecting client came back
    /// empty). A log that cannot hand it over is an error, after [`read_held`]'s patience.
    pub fn resume_after(
        log: &dyn visionlog_log::EventLog,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Self, visionlog_log::LogError> {
        let Some(before) = offset.checked_sub(1) else { return Ok(Self::resume(0, 0)) };
        let record = read_held(log, topic, partition, before, 1)?.into_iter().next().filter(|r| r.offset == before);
        let Some(record) = record else {
            return Err(visionlog_log::LogError::Io {
                path: format!("{topic}/{partition}@{before}"),
                source: std::io::Error::other(
                    "the record before the position is not held (its epoch says which records are in force)",
                ),
            });
        };
        Ok(Self::resume(offset, number(&record, headers::EPOCH).unwrap_or(0)))
    }

    /// The position to store for [`Self::resume_after`]: after the last record in force that
    /// completed something (a claim, a whole decision). Records after it are read again on
    /// resume; the ones not in force are ignored again.
    pub fn settled_offset(&self) -> u64 {
        self.settled
    }

    /// The owner epoch in force.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The offset of the claim in force, if this reader read it. Two claimants may write the
    /// same epoch; only the first is in force, so a claimant checks the offset, not the epoch.
    pub fn claim_in_force(&self) -> Option<u64> {
        self.claim
    }

    /// Feeds the next record of the partition; returns an entry when one is complete.
    pub fn feed(&mut self, record: LogRecord) -> Result<Option<Entry>, JournalError> {
        self.next_offset = record.offset + 1;
        match parse(&record) {
            Ok(parsed) => self.apply(parsed, record),
            Err(reason) => Err(JournalError { offset: record.offset, reason, record: Some(Box::new(record)) }),
        }
    }

    fn apply(&mut self, parsed: Parsed, record: LogRecord) -> Result<Option<Entry>, JournalError> {
        match parsed {
            Parsed::Claim { epoch, owner } => {
                if epoch <= self.epoch {
                    return Ok(None); // lost a race for the partition: not in force
                }
                self.epoch = epoch;
                self.claim = Some(record.offset);
                self.pending.clear(); // a decision cut short by a change of owner never happened
                self.settled = record.offset + 1;
                Ok(Some(Entry::Claim { offset: record.offset, epoch, owner }))
            }
            Parsed::Decision { epoch, command_id, index, count } => {
                if epoch != self.epoch {
                    return Ok(None); // written by a superseded owner (a zombie)
                }
                let continues = self.pending.last().is_some_and(|p| p.command_id == command_id && p.index + 1 == index);
                if !continues {
                    self.pending.clear(); // an incomplete decision followed by another: it never completed
                }
                if index != self.pending.len() {
                    return Ok(None);
                }
                self.pending.push(Framed { record, command_id, index });
                if self.pending.len() < count {
                    return Ok(None);
                }
                let framed = std::mem::take(&mut self.pending);
                let entry = self.complete(framed)?;
                self.settled = self.next_offset;
                Ok(Some(entry))
            }
        }
    }

    fn complete(&self, framed: Vec<Framed>) -> Result<Entry, JournalError> {
        let refuse = |framed: Vec<Framed>, offset: u64, reason: String| {
            let record = framed.into_iter().map(|f| f.record).find(|r| r.offset == offset).map(Box::new);
            JournalError { offset, reason, record }
        };
        let first = &framed[0].record;
        let first_offset = first.offset;
        let copied_from = get(&first.headers, headers::COPIED_FROM).map(|v| String::from_utf8_lossy(v).into_owned());
        let offset = match copied_from {
            Some(_) => Ok(None),
            None => number(first, headers::COMMAND_OFFSET).map(Some),
        };
        let head = offset.and_then(|o| Ok((o, text(first, headers::COMMAND_TYPE)?.to_owned())));
        let (command_offset, command_type) = match head {
            Ok(head) => head,
            Err(reason) => return Err(refuse(framed, first_offset, reason)),
        };
        let command_id = framed[0].command_id.clone();
        if get(&first.headers, names::KIND) == Some(kinds::REJECTION) {
            let task_id = match text(first, names::TASK_ID) {
                Ok(t) => t.to_owned(),
                Err(reason) => return Err(refuse(framed, first_offset, reason)),
            };
            let tenant = get(&first.headers, names::TENANT).map(|v| String::from_utf8_lossy(v).into_owned());
            let body = DecisionBody::Rejected(framed.into_iter().next().expect("one record").record.value);
            return Ok(Entry::Decision(Decision {
                command_id,
                command_type,
                task_id,
                command_offset,
                first_offset,
                copied_from,
                tenant,
                body,
            }));
        }
        if let Some((offset, e)) = framed
            .iter()
            .find_map(|f| EventEnvelope::from_headers(&f.record.headers).err().map(|e| (f.record.offset, e)))
        {
            return Err(refuse(framed, offset, e.to_string()));
        }
        let events: Vec<_> = framed
            .into_iter()
            .map(|f| {
                let envelope = EventEnvelope::from_headers(&f.record.headers).expect("checked above");
                let trace_parent = get(&f.record.headers, visionlog_telemetry::TRACEPARENT).map(<[u8]>::to_vec);
                JournalEvent { offset: f.record.offset, envelope, payload: f.record.value, trace_parent }
            })
            .collect();
        let task_id = events[0].envelope.task_id.clone();
        let tenant = Some(events[0].envelope.tenant.clone());
        Ok(Entry::Decision(Decision {
            command_id,
            command_type,
            task_id,
            command_offset,
            first_offset,
            copied_from,
            tenant,
            body: DecisionBody::Accepted(events),
        }))
    }
}

/// What a record's headers say, before the fencing rules apply.
enum Parsed {
    Claim { epoch: u64, owner: String },
    Decision { epoch: u64, command_id: String, index: usize, count: usize },
}

fn parse(r: &LogRecord) -> Result<Parsed, String> {
    let kind = get(&r.headers, names::KIND).ok_or("no vl.kind header")?;
    let epoch = number(r, headers::EPOCH)?;
    if kind == kinds::CLAIM {
        return Ok(Parsed::Claim { epoch, owner: text(r, headers::OWNER)?.to_owned() });
    }
    if kind != kinds::EVENT && kind != kinds::REJECTION {
        return Err("unknown record kind".into());
    }
    let command_id = text(r, names::COMMAND_ID)?.to_owned();
    let (index, count) = text(r, headers::BATCH)?
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(i, n)| i < n)
        .ok_or("bad vl.batch header")?;
    Ok(Parsed::Decision { epoch, command_id, index, count })
}

/// How long [`read_held`] waits for records the log holds but cannot hand over yet.
const HELD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads up to `max` records from `from`, where the log is known to hold records (below an end
/// read before, or a position committed earlier). An empty answer there is a log that cannot
/// answer yet (a Kafka client reconnecting to a restarted broker), never the end of the
/// partition: it waits and asks again, and fails after [`HELD_PATIENCE`]. Readers that took an
/// empty answer for the end lost records silently.
pub fn read_held(
    log: &dyn visionlog_log::EventLog,
    topic: &str,
    partition: u32,
    from: u64,
    max: usize,
) -> Result<Vec<LogRecord>, visionlog_log::LogError> {
    let deadline = std::time::Instant::now() + HELD_PATIENCE;
    loop {
        let records = log.read(topic, partition, from, max)?;
        if !records.is_empty() {
            return Ok(records);
        }
        if std::time::Instant::now() >= deadline {
            return Err(visionlog_log::LogError::Io {
                path: format!("{topic}/{partition}@{from}"),
                source: std::io::Error::other(format!(
                    "records the log holds could not be read within {HELD_PATIENCE:?}"
                )),
            });
        }
        tracing::debug!(topic, partition, from, "the log holds records here but handed none over; asking again");
        log.wait_for(topic, partition, from, std::time::Duration::from_millis(500))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{DecisionOrigin, claim_record, event_record, rejection_record};

    fn origin(cmd: &str, epoch: u64) -> DecisionOrigin<'_> {
        DecisionOrigin { command_id: cmd, command_type: "X", command_offset: 0, epoch, trace_parent: None }
    }
    use visionlog_log::Record;

    fn env(task: &str, cmd: &str, version: u64) -> EventEnvelope {
        EventEnvelope {
            event_id: format!("{cmd}-{version}"),
            task_id: task.into(),
            version,
            event_type: "X".into(),
            occurred_at_ms: 0,
            recorded_at_ms: 0,
            correlation_id: cmd.into(),
            causation_id: cmd.into(),
            actor: "service:test".into(),
            tenant: "t".into(),
        }
    }

    fn decision(epoch: u64, cmd: &str, n: usize) -> Vec<Record> {
        (0..n).map(|i| event_record(&env("t1", cmd, i as u64 + 1), vec![], origin(cmd, epoch), i, n)).collect()
    }

    fn read(records: Vec<Record>) -> Vec<Entry> {
        let mut reader = JournalReader::default();
        records
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let rec =
                    LogRecord { offset: i as u64, timestamp_ms: 0, key: r.key, headers: r.headers, value: r.value };
                reader.feed(rec).unwrap()
            })
            .collect()
    }

    fn decided(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Decision(d) => Some(d.command_id.clone()),
                Entry::Claim { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_zombie_owner_is_never_believed() {
        let mut log = vec![claim_record(1, "a")];
        log.extend(decision(1, "c1", 2));
        log.push(claim_record(2, "b"));
        log.extend(decision(1, "zombie", 1)); // a writes after b took over
        log.extend(decision(2, "c2", 1));
        assert_eq!(decided(&read(log)), ["c1", "c2"]);
    }

    #[test]
    fn a_torn_decision_is_never_read() {
        let mut log = vec![claim_record(1, "a")];
        log.extend(decision(1, "c1", 3).into_iter().take(2)); // crashed after 2 of 3 records
        log.push(claim_record(2, "a"));
        log.extend(decision(2, "c1", 3)); // the command decided again, whole
        let entries = read(log);
        assert_eq!(decided(&entries), ["c1"]);
        let Entry::Decision(d) = entries.last().unwrap() else { panic!() };
        assert_eq!(d.first_offset, 4);
        // also when another decision follows without a claim
        let mut log = vec![claim_record(1, "a")];
        log.extend(decision(1, "c1", 3).into_iter().take(1));
        log.push(rejection_record("t1", Some("acme"), vec![1], origin("c2", 1)));
        assert_eq!(decided(&read(log)), ["c2"]);
    }

    #[test]
    fn a_claim_that_lost_the_race_is_not_in_force() {
        let mut log = vec![claim_record(1, "a"), claim_record(2, "b"), claim_record(2, "c")];
        log.extend(decision(2, "from-b-or-c", 1));
        let entries = read(log);
        let claims: Vec<_> = entries
            .iter()
            .filter_map(|e| if let Entry::Claim { owner, .. } = e { Some(owner.as_str()) } else { None })
            .collect();
        assert_eq!(claims, ["a", "b"]);
    }

    #[test]
    fn the_settled_offset_follows_a_record_in_force() {
        let mut log = vec![claim_record(1, "a")];
        log.extend(decision(1, "c1", 2));
        log.push(claim_record(2, "b"));
        log.extend(decision(1, "zombie", 1));
        log.extend(decision(2, "c2", 2).into_iter().take(1)); // pending
        let mut reader = JournalReader::default();
        for (i, r) in log.into_iter().enumerate() {
            reader
                .feed(LogRecord { offset: i as u64, timestamp_ms: 0, key: r.key, headers: r.headers, value: r.value })
                .unwrap();
        }
        // after b's claim (offset 3): the zombie record and the pending decision are read again
        assert_eq!(reader.settled_offset(), 4);
        assert_eq!(reader.epoch(), 2);
    }

    #[test]
    fn a_foreign_record_is_refused_and_handed_back() {
        let mut reader = JournalReader::default();
        let foreign = LogRecord { offset: 0, timestamp_ms: 0, key: None, headers: vec![], value: b"not ours".to_vec() };
        let err = reader.feed(foreign).unwrap_err();
        assert_eq!(err.record.map(|r| r.value), Some(b"not ours".to_vec()));
        // it settles nothing: after a restart it is read (and dead-lettered) again
        assert_eq!(reader.settled_offset(), 0);
    }

    /// Two claimants that both read an empty partition write the same epoch: the first claim is
    /// in force, and the second claimant can tell by the offset (the epoch alone matches both).
    #[test]
    fn of_two_claims_with_one_epoch_the_first_is_in_force() {
        let mut reader = JournalReader::default();
        for (offset, owner) in [(0u64, "a"), (1, "b")] {
            let r = claim_record(1, owner);
            reader.feed(LogRecord { offset, timestamp_ms: 0, key: r.key, headers: r.headers, value: r.value }).unwrap();
        }
        assert_eq!((reader.epoch(), reader.claim_in_force()), (1, Some(0)));
    }
}
