//! One partition's owner: restore, claim, serve, checkpoint.

use crate::cache::{Checkpoint, TaskCache};
use crate::config::AggregatorConfig;
use crate::handle::{Handled, Handler, outcome_of};
use crate::record::{Decided, TaskRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use visionlog_codec::{Codec, Outcome};
use visionlog_domain::evolve;
use visionlog_journal::{Decision, DecisionBody, Entry, JournalReader, Topics, claim_record, dead_letter, read_held};
use visionlog_log::{EventLog, LogError, LogRecord, Position, Record, partition_for};
use visionlog_store::{ReadStore, StoreError};

/// The consumer group of aggregators on `commands`.
pub const GROUP: &str = "aggregator";

/// Why an owner stopped.
#[derive(Debug, Error)]
pub enum AggregatorError {
    /// The log failed; restart the partition (it restores from the journal).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The snapshot store failed; restart the partition.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another owner claimed the partition: this one must stop writing (and did).
    #[error("partition {partition} was claimed by another owner (epoch {epoch})")]
    Fenced {
        /// The partition.
        partition: u32,
        /// The epoch that superseded ours.
        epoch: u64,
    },
    /// A superseded owner's records landed between our reads and our append: our decisions are
    /// valid but not where we predicted; restore again (internal, never returned by `run`).
    #[error("records of a superseded owner interleaved in partition {partition}")]
    Interleaved {
        /// The partition.
        partition: u32,
    },
    /// A command cannot be read now (the schema registry is unavailable): restart the partition
    /// after a back-off; nothing was decided for it.
    #[error("partition {partition} waits for the schema registry: {reason}")]
    Unavailable {
        /// The partition.
        partition: u32,
        /// Why.
        reason: String,
    },
    /// The journal holds something this code cannot fold (a bug or lost schemas): stop.
    #[error("journal of partition {partition} at offset {offset}: {reason}")]
    Journal {
        /// The partition.
        partition: u32,
        /// Where.
        offset: u64,
        /// What.
        reason: String,
    },
}

/// Counters of one owner's run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// Commands read.
    pub commands: u64,
    /// Events appended.
    pub events: u64,
    /// Commands rejected.
    pub rejections: u64,
    /// Redelivered commands answered from memory.
    pub duplicates: u64,
    /// Records sent to dead letters.
    pub dead_letters: u64,
    /// Decisions folded while restoring.
    pub restored_decisions: u64,
    /// Task snapshots loaded.
    pub snapshot_loads: u64,
    /// The epoch this owner held.
    pub epoch: u64,
}

/// Owns one partition of `commands` and `events`.
pub struct PartitionAggregator {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    store: Arc<dyn ReadStore>,
    topics: Topics,
    config: AggregatorConfig,
    partition: u32,
}

struct Owner<'a> {
    agg: &'a PartitionAggregator,
    cache: TaskCache<'a>,
    reader: JournalReader,
    /// Offset after the last journal record read or written.
    events_end: u64,
    /// Next command offset to decide.
    command_pos: u64,
    epoch: u64,
    /// Claims in force that we know of: (epoch, offset), ascending.
    claims: Vec<(u64, u64)>,
    since_checkpoint: u64,
    stats: PartitionStats,
    /// The command position last committed to the group, and when.
    committed: (u64, Instant),
    /// The largest journal record to append: the config's, the log's, or lower once the log
    /// refused one.
    record_limit: usize,
}

/// How often a busy owner commits its command position (an idle one commits at once). The
/// position is only a hint: a new owner finds the decided commands in the journal.
const COMMIT_EVERY: Duration = Duration::from_millis(100);

/// Claims remembered in checkpoints (enough to judge any snapshot written since).
const CLAIMS_KEPT: usize = 64;

/// Below this, a log that refuses records is misconfigured, not strict: the owner stops.
const MIN_RECORD_LIMIT: usize = 4096;

impl PartitionAggregator {
    /// Creates the owner of a partition (it takes the partition when run).
    pub fn new(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        store: Arc<dyn ReadStore>,
        topics: Topics,
        config: AggregatorConfig,
        partition: u32,
    ) -> Self {
        Self { log, codec, store, topics, config, partition }
    }

    /// The owner of `partition` in this process, named for people reading the journal's claims
    /// (the pod from `HOSTNAME`, the process and the partition), serving until `stop` is set;
    /// a partition given up to a newer owner is not a failure.
    pub fn serve_partition(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        store: Arc<dyn ReadStore>,
        topics: Topics,
        partition: u32,
        stop: &AtomicBool,
    ) -> Result<(), AggregatorError> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let owner = format!("aggregator-{host}-{}-{partition}", std::process::id());
        let config = AggregatorConfig { owner, ..Default::default() };
        match Self::new(log, codec, store, topics, config, partition).run(stop) {
            Ok(stats) => {
                tracing::info!(partition, ?stats, "aggregator stopped");
                Ok(())
            }
            Err(e @ AggregatorError::Fenced { .. }) => {
                tracing::warn!(partition, error = %e, "aggregator gave the partition up");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the partition and serves it until `stop` is set, or another owner claims it.
    pub fn run(&self, stop: &AtomicBool) -> Result<PartitionStats, AggregatorError> {
        let mut totals = PartitionStats::default();
        // a record the log refused although it looked small enough: records that large are
        // refused from now on (so the partition moves on instead of failing on it forever)
        let mut refused_at: Option<usize> = None;
        loop {
            let mut owner = Owner {
                agg: self,
                cache: TaskCache::new(
                    self.store.as_ref(),
                    &self.topics.events,
                    self.partition,
                    self.config.cache_capacity,
                ),
                reader: JournalReader::default(),
                events_end: 0,
                command_pos: 0,
                epoch: 0,
                claims: Vec::new(),
                since_checkpoint: 0,
                stats: PartitionStats::default(),
                committed: (0, Instant::now()),
                record_limit: refused_at.map_or(self.config.max_event_bytes, |n| n.saturating_sub(1)),
            };
            // a superseded owner must not write a last checkpoint: check the fence first
            let result = owner.restore().and_then(|()| owner.serve(stop)).and_then(|()| owner.check_fence());
            if result.is_ok() {
                owner.checkpoint()?;
            }
            totals.add(&owner.stats, owner.cache.loads, owner.epoch);
            match result {
                Err(AggregatorError::Interleaved { .. }) => {
                    tracing::warn!(partition = self.partition, "a superseded owner wrote meanwhile; restoring again");
                }
                Err(AggregatorError::Log(LogError::BatchTooLarge { size, max }))
                    if refused_at.is_none_or(|r| size < r) && size > MIN_RECORD_LIMIT =>
                {
                    tracing::warn!(
                        partition = self.partition,
                        size,
                        max,
                        "the log refused a record as too large; restoring, and refusing commands whose records are that large"
                    );
                    refused_at = Some(size);
                }
                Ok(()) => return Ok(totals),
                Err(e) => return Err(e),
            }
        }
    }
}

impl PartitionStats {
    fn add(&mut self, run: &PartitionStats, loads: u64, epoch: u64) {
        self.commands += run.commands;
        self.events += run.events;
        self.rejections += run.rejections;
        self.duplicates += run.duplicates;
        self.dead_letters += run.dead_letters;
        self.restored_decisions += run.restored_decisions;
        self.snapshot_loads += loads;
        self.epoch = epoch;
    }
}

/// Folds a decision into a task's record; returns what to remember of it.
fn fold_into(codec: &Codec, partition: u32, record: &mut TaskRecord, d: &Decision) -> Result<Decided, AggregatorError> {
    let journal = |offset: u64, reason: String| AggregatorError::Journal { partition, offset, reason };
    let decided = match &d.body {
        DecisionBody::Accepted(events) => {
            let first_version = record.version + 1;
            let mut state = record.state.take();
            for e in events {
                if e.envelope.version != record.version + 1 {
                    return Err(journal(
                        e.offset,
                        format!("version {} follows {}", e.envelope.version, record.version),
                    ));
                }
                let event = codec.decode_event(&e.payload).map_err(|err| journal(e.offset, err.to_string()))?;
                state = evolve(state, &event);
                record.version += 1;
            }
            record.state = state;
            record.applied_offset = events.last().map_or(d.first_offset, |e| e.offset) + 1;
            Decided {
                command_type: d.command_type.clone(),
                accepted: true,
                first_version,
                last_version: record.version,
                code: None,
                message: None,
                events_offset: d.first_offset,
            }
        }
        DecisionBody::Rejected(bytes) => {
            let o = codec.decode_outcome(bytes).map_err(|err| journal(d.first_offset, err.to_string()))?;
            record.applied_offset = d.first_offset + 1;
            Decided {
                command_type: d.command_type.clone(),
                accepted: false,
                first_version: 0,
                last_version: 0,
                code: o.rejection_code,
                message: o.rejection_message,
                events_offset: d.first_offset,
            }
        }
    };
    Ok(decided)
}

impl Owner<'_> {
    fn restore(&mut self) -> Result<(), AggregatorError> {
        let agg = self.agg;
        let cp = self.cache.checkpoint()?;
        self.reader = JournalReader::resume(cp.events_offset, cp.epoch);
        self.events_end = cp.events_offset;
        self.command_pos = cp.command_offset;
        if let Some(p) = agg.log.committed(GROUP, &agg.topics.commands, agg.partition)? {
            self.command_pos = self.command_pos.max(p.offset);
        }
        self.claims = cp.claims;
        if let Some(max) = agg.log.max_record_bytes(&agg.topics.events)? {
            self.record_limit = self.record_limit.min(max);
        }
        self.collect_claims(cp.events_offset, cp.epoch)?;
        self.replay(None)?;
        // claim with a higher epoch and read until our claim: if another claimant got in first
        // with the same epoch, ours is not in force and we claim again above theirs
        for _ in 0..16 {
            let epoch = self.reader.epoch() + 1;
            let at =
                agg.log.append(&agg.topics.events, agg.partition, &[claim_record(epoch, &agg.config.owner)])?.first;
            // judge snapshots against our claim while reading up to it (if it loses the race,
            // we only distrust more snapshots than needed and rebuild those tasks)
            self.note_claim(epoch, at);
            self.replay(Some(at))?;
            if self.reader.claim_in_force() == Some(at) {
                self.epoch = epoch;
                tracing::info!(
                    partition = agg.partition,
                    epoch,
                    events = self.events_end,
                    commands = self.command_pos,
                    restored = self.stats.restored_decisions,
                    "partition claimed"
                );
                self.checkpoint()?;
                // commands a previous owner decided without committing them are decided: say so
                // (lag is measured on this position)
                self.commit_position(true)?;
                return Ok(());
            }
        }
        Err(AggregatorError::Fenced { partition: agg.partition, epoch: self.reader.epoch() })
    }

    /// Reads the journal from `events_end` to its end (or past `until`), folding every
    /// decision of the owners in force.
    fn replay(&mut self, until: Option<u64>) -> Result<(), AggregatorError> {
        let agg = self.agg;
        loop {
            let records = agg.log.read(&agg.topics.events, agg.partition, self.events_end, 1024)?;
            if records.is_empty() {
                match until {
                    Some(u) if self.events_end <= u => {
                        agg.log.wait_for(
                            &agg.topics.events,
                            agg.partition,
                            self.events_end,
                            Duration::from_millis(100),
                        )?;
                        continue;
                    }
                    _ => return Ok(()),
                }
            }
            let mut outcomes = Vec::new();
            for record in records {
                self.events_end = record.offset + 1;
                match self.reader.feed(record) {
                    Ok(Some(Entry::Decision(d))) => outcomes.extend(self.fold(d)?),
                    // claims met while restoring judge snapshots too, ours included
                    Ok(Some(Entry::Claim { epoch, offset, .. })) => self.note_claim(epoch, offset),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(partition = agg.partition, error = %e, "skipping a record that is not part of the journal")
                    }
                }
            }
            // an outcome may not have been published before a crash: publish again (same content)
            self.publish(&outcomes)?;
            if until.is_some_and(|u| self.events_end > u) {
                return Ok(());
            }
        }
    }

    /// Folds a decision read from the journal (while restoring, or written by a previous owner)
    /// and returns its outcome, unless the snapshot held it already.
    fn fold(&mut self, d: Decision) -> Result<Option<Outcome>, AggregatorError> {
        let agg = self.agg;
        // a decision copied from another journal (a partition migration) says nothing of this
        // `commands` topic, and its outcome was published where it was decided
        let copied = d.command_offset.is_none();
        if let Some(offset) = d.command_offset {
            self.command_pos = self.command_pos.max(offset + 1);
        }
        let record = self.record(&d.task_id)?;
        if d.first_offset < record.applied_offset {
            return Ok(None); // already in the snapshot
        }
        let decided = fold_into(&agg.codec, agg.partition, record, &d)?;
        let outcome = outcome_of(&d.command_id, &d.task_id, agg.partition, &decided, false);
        record.remember(d.command_id, decided, agg.config.dedup_per_task);
        self.cache.mark_dirty(&d.task_id);
        self.stats.restored_decisions += 1;
        Ok((!copied).then_some(outcome))
    }

    /// Returns a task's record: cached, else its snapshot if an owner in force wrote it, else
    /// rebuilt from the journal.
    fn record(&mut self, task_id: &str) -> Result<&mut TaskRecord, AggregatorError> {
        if self.cache.get_mut(task_id).is_none() {
            let record = match self.cache.load(task_id)? {
                Some(Ok(snapshot)) if self.trusted(&snapshot) => snapshot,
                Some(Err(why)) => {
                    tracing::warn!(
                        partition = self.agg.partition,
                        task_id,
                        why,
                        "snapshot unreadable; rebuilding from the journal"
                    );
                    self.rebuild(task_id)?
                }
                Some(Ok(snapshot)) => {
                    tracing::warn!(
                        partition = self.agg.partition,
                        task_id,
                        epoch = snapshot.epoch,
                        "snapshot written by a superseded owner; rebuilding from the journal"
                    );
                    self.rebuild(task_id)?
                }
                None => TaskRecord::default(),
            };
            return Ok(self.cache.insert(task_id, record));
        }
        Ok(self.cache.get_mut(task_id).expect("cached"))
    }

    /// Tells whether a snapshot holds only decisions in force: its owner was not superseded
    /// before the last decision it folded.
    fn trusted(&self, snapshot: &TaskRecord) -> bool {
        let superseded_at = self.claims.iter().filter(|(e, _)| *e > snapshot.epoch).map(|(_, o)| *o).min();
        superseded_at.is_none_or(|at| snapshot.applied_offset <= at)
    }

    /// Rebuilds one task from the whole journal (rare: after a zombie wrote its snapshot).
    fn rebuild(&self, task_id: &str) -> Result<TaskRecord, AggregatorError> {
        let agg = self.agg;
        let mut record = TaskRecord::default();
        let mut reader = JournalReader::default();
        let mut from = 0;
        while from < self.events_end {
            let records = read_held(agg.log.as_ref(), &agg.topics.events, agg.partition, from, 4096)?;
            let Some(last) = records.last() else { break };
            from = last.offset + 1;
            for r in records.into_iter().filter(|r| r.offset < self.events_end) {
                if let Ok(Some(Entry::Decision(d))) = reader.feed(r)
                    && d.task_id == task_id
                {
                    let decided = fold_into(&agg.codec, agg.partition, &mut record, &d)?;
                    record.remember(d.command_id, decided, agg.config.dedup_per_task);
                }
            }
        }
        Ok(record)
    }

    /// Reads the claims in force from `from` to the end, before folding anything, so that
    /// snapshots can be judged.
    fn collect_claims(&mut self, from: u64, epoch: u64) -> Result<(), AggregatorError> {
        let agg = self.agg;
        let mut reader = JournalReader::resume(from, epoch);
        let mut next = from;
        // to the end as it is now (the claim we write next is read by `replay`)
        let end = agg.log.end_offset(&agg.topics.events, agg.partition)?;
        while next < end {
            let records = read_held(agg.log.as_ref(), &agg.topics.events, agg.partition, next, 4096)?;
            let Some(last) = records.last() else { return Ok(()) };
            next = last.offset + 1;
            for r in records {
                if visionlog_codec::envelope::get(&r.headers, visionlog_codec::envelope::names::KIND) != Some(b"claim")
                {
                    continue;
                }
                if let Ok(Some(Entry::Claim { epoch, offset, .. })) = reader.feed(r) {
                    self.note_claim(epoch, offset);
                }
            }
        }
        Ok(())
    }

    /// Remembers a claim; for one epoch the earliest claim is the one in force.
    fn note_claim(&mut self, epoch: u64, offset: u64) {
        match self.claims.binary_search_by_key(&epoch, |(e, _)| *e) {
            Ok(i) => self.claims[i].1 = self.claims[i].1.min(offset),
            Err(i) => self.claims.insert(i, (epoch, offset)),
        }
        if self.claims.len() > CLAIMS_KEPT {
            self.claims.remove(0);
        }
    }

    fn serve(&mut self, stop: &AtomicBool) -> Result<(), AggregatorError> {
        let agg = self.agg;
        while !stop.load(Ordering::Relaxed) {
            let commands = agg.log.read(&agg.topics.commands, agg.partition, self.command_pos, agg.config.max_batch)?;
            if commands.is_empty() {
                self.check_fence()?;
                if self.since_checkpoint > 0 {
                    self.checkpoint()?;
                }
                self.commit_position(true)?;
                agg.log.wait_for(&agg.topics.commands, agg.partition, self.command_pos, Duration::from_millis(100))?;
                continue;
            }
            if let Err(e) = self.decide_batch(&commands) {
                self.cache.clear(); // it may hold decisions that were never appended
                return Err(e);
            }
        }
        Ok(())
    }

    fn decide_batch(&mut self, commands: &[LogRecord]) -> Result<(), AggregatorError> {
        let agg = self.agg;
        let handler = Handler {
            config: &agg.config,
            codec: &agg.codec,
            partition: agg.partition,
            epoch: self.epoch,
            max_record_bytes: self.record_limit,
        };
        let mut to_append: Vec<Record> = Vec::new();
        let mut batch_bytes = 0;
        let mut outcomes = Vec::with_capacity(commands.len());
        let mut dead = Vec::new();
        // the batch closes once it holds max_batch_bytes; the rest is read again
        let mut decided = 0;
        for cmd in commands {
            if batch_bytes >= agg.config.max_batch_bytes {
                break;
            }
            decided += 1;
            self.stats.commands += 1;
            let envelope = match handler.envelope(cmd) {
                Ok(e) => e,
                Err(message) => {
                    dead.push((cmd, "invalid_envelope".to_owned(), message));
                    continue;
                }
            };
            let events_offset = self.events_end + to_append.len() as u64;
            let record = self.record(&envelope.task_id)?;
            let (step, dead_letter) = handler.decide(cmd, envelope, record, events_offset).map_err(|reason| {
                AggregatorError::Journal { partition: agg.partition, offset: events_offset, reason }
            })?;
            if let Some((code, message)) = dead_letter {
                dead.push((cmd, code, message));
            }
            match step {
                Handled::Decided { task_id, records, outcome } => {
                    self.cache.mark_dirty(&task_id);
                    if outcome.accepted {
                        self.stats.events += records.len() as u64;
                    } else {
                        self.stats.rejections += 1;
                    }
                    self.since_checkpoint += records.len() as u64;
                    batch_bytes += records.iter().map(Record::wire_bytes).sum::<usize>();
                    to_append.extend(records);
                    outcomes.push(outcome);
                }
                Handled::Duplicate(outcome) => {
                    self.stats.duplicates += 1;
                    outcomes.push(outcome);
                }
                // nothing of this batch is appended or published; the restart reads it again
                Handled::Retry(reason) => {
                    return Err(AggregatorError::Unavailable { partition: agg.partition, reason });
                }
            }
        }
        if !to_append.is_empty() {
            let appended = agg.log.append(&agg.topics.events, agg.partition, &to_append)?;
            if appended.first != self.events_end || !appended.is_contiguous() {
                return Err(self.explain_interleaving(appended.next()));
            }
            self.events_end = appended.next();
            self.reader = JournalReader::resume(self.events_end, self.epoch);
        }
        for (cmd, code, message) in dead {
            self.stats.dead_letters += 1;
            dead_letter(
                agg.log.as_ref(),
                &agg.codec,
                &agg.topics,
                &agg.topics.commands,
                agg.partition,
                cmd,
                &code,
                &message,
                GROUP,
            )?;
        }
        self.publish(&outcomes)?;
        self.command_pos = commands[..decided].last().map_or(self.command_pos, |c| c.offset + 1);
        self.commit_position(false)?;
        if self.since_checkpoint >= agg.config.snapshot_every {
            self.checkpoint()?;
        }
        self.cache.trim(&self.current_checkpoint())?;
        Ok(())
    }

    /// Someone else appended before or among the records of our last append (which ends before
    /// `end`): a claim in force means we were superseded (our records are void); a superseded
    /// owner's records only shifted or tore ours, and restoring again reads past them.
    fn explain_interleaving(&mut self, end: u64) -> AggregatorError {
        let agg = self.agg;
        let foreign =
            match agg.log.read(&agg.topics.events, agg.partition, self.events_end, (end - self.events_end) as usize) {
                Ok(records) => records,
                Err(e) => return e.into(),
            };
        for record in foreign {
            if let Ok(Some(Entry::Claim { epoch, .. })) = self.reader.feed(record) {
                return AggregatorError::Fenced { partition: agg.partition, epoch };
            }
        }
        AggregatorError::Interleaved { partition: agg.partition }
    }

    /// Commits the command position to the group if it moved, at most every [`COMMIT_EVERY`]
    /// unless `now`.
    fn commit_position(&mut self, now: bool) -> Result<(), AggregatorError> {
        let (position, at) = self.committed;
        if position != self.command_pos && (now || at.elapsed() >= COMMIT_EVERY) {
            let agg = self.agg;
            agg.log.commit(GROUP, &agg.topics.commands, agg.partition, &Position::at(self.command_pos))?;
            self.committed = (self.command_pos, Instant::now());
        }
        Ok(())
    }

    /// Reads journal records written since our last append: any is another owner's claim.
    fn check_fence(&mut self) -> Result<(), AggregatorError> {
        let agg = self.agg;
        loop {
            let newer = agg.log.read(&agg.topics.events, agg.partition, self.events_end, 256)?;
            if newer.is_empty() {
                return Ok(());
            }
            for record in newer {
                self.events_end = record.offset + 1;
                if let Ok(Some(Entry::Claim { epoch, owner, .. })) = self.reader.feed(record) {
                    tracing::warn!(
                        partition = agg.partition,
                        epoch,
                        owner,
                        "partition claimed by another owner; stopping"
                    );
                    self.cache.clear();
                    return Err(AggregatorError::Fenced { partition: agg.partition, epoch });
                }
            }
        }
    }

    fn publish(&self, outcomes: &[Outcome]) -> Result<(), AggregatorError> {
        let agg = self.agg;
        let mut by_partition: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
        for o in outcomes {
            let value = agg.codec.encode_outcome(o).expect("an outcome always encodes");
            let key = o.command_id.as_bytes().to_vec();
            by_partition.entry(partition_for(&key, agg.topics.partitions)).or_default().push(Record {
                key: Some(key),
                headers: Vec::new(),
                value,
            });
        }
        let batches: Vec<(u32, Vec<Record>)> = by_partition.into_iter().collect();
        agg.log.append_all(&agg.topics.outcomes, &batches)?;
        Ok(())
    }

    fn current_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            events_offset: self.events_end,
            command_offset: self.command_pos,
            epoch: self.epoch,
            claims: self.claims.clone(),
        }
    }

    fn checkpoint(&mut self) -> Result<(), AggregatorError> {
        let cp = self.current_checkpoint();
        self.cache.flush(&cp)?;
        self.since_checkpoint = 0;
        self.commit_position(true)
    }
}
