//! The tiering service: closed offset ranges of each partition go to immutable segment objects,
//! each recorded by a manifest entry; the hot copy is dropped only below verified segments.
//!
//! Exactly once, without a lock: the segment and its entry are both created with a conditional
//! put at keys derived from the first offset. A tierer that finds a segment already there (its
//! own, from before a crash, or a peer's) reads it back, checks it against the hot log and
//! adopts it; so killing a tierer at any point leaves no duplicate and no gap.

use crate::manifest::{Manifest, SegmentEntry, entry_key, segment_key};
use crate::segment;
use crate::{MAX_SEGMENT_OBJECT, TierError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use visionlog_log::{EventLog, LogRecord, now_ms};
use visionlog_objects::Objects;
use visionlog_objects::sha256_hex;

/// What the tierer tiers and when a range is closed.
#[derive(Clone, Debug)]
pub struct TierConfig {
    /// The topic (the `events` topic).
    pub topic: String,
    /// Records per segment: a range this long is closed.
    pub segment_records: usize,
    /// Bytes of values per segment: a range this large is closed, however few its records.
    pub segment_bytes: usize,
    /// A shorter range is closed once its newest record is this old.
    pub close_after: Duration,
    /// Recorded on each manifest entry.
    pub writer: String,
}

impl TierConfig {
    /// Records per segment by default.
    pub const SEGMENT_RECORDS: usize = 10_000;
    /// How long a shorter range waits by default before it is closed.
    pub const CLOSE_AFTER: Duration = Duration::from_secs(600);

    /// Defaults for `topic`: 10,000 records or 64 MiB per segment, ranges closed after 10 minutes.
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            segment_records: Self::SEGMENT_RECORDS,
            segment_bytes: 64 << 20,
            close_after: Self::CLOSE_AFTER,
            writer: format!(
                "{}/{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
                std::process::id()
            ),
        }
    }
}

/// What one step of a partition did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Wrote a segment and its entry.
    Written(SegmentEntry),
    /// Found a segment a crashed run (or a peer) had written, checked it and recorded it.
    Adopted(SegmentEntry),
    /// No closed range to tier.
    Idle,
}

/// Where a partition stands.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The first offset still in the hot log.
    pub hot_start: u64,
    /// The log's end offset.
    pub end: u64,
    /// The offset after the last tiered record.
    pub tiered_end: u64,
    /// Cold segments.
    pub segments: usize,
    /// Bytes in cold segments.
    pub cold_bytes: u64,
    /// Records not tiered yet.
    pub backlog: u64,
}

/// The steps of each partition one worker tiered.
type PartitionSteps = Vec<(u32, Vec<Step>)>;

/// Writes closed ranges of a topic's partitions to the object store.
pub struct Tierer {
    log: Arc<dyn EventLog>,
    objects: Objects,
    config: TierConfig,
    manifests: Mutex<HashMap<u32, Manifest>>,
}

impl Tierer {
    /// A tierer of `config.topic` on `log` (the hot log itself, not a [`crate::TieredLog`]).
    pub fn new(log: Arc<dyn EventLog>, objects: Objects, config: TierConfig) -> Self {
        Self { log, objects, config, manifests: Mutex::new(HashMap::new()) }
    }

    /// The configuration.
    pub fn config(&self) -> &TierConfig {
        &self.config
    }

    fn manifest(&self, partition: u32) -> Result<Manifest, TierError> {
        if let Some(m) = self.manifests.lock().expect("manifests").get(&partition) {
            return Ok(m.clone());
        }
        let m = Manifest::load(&self.objects, &self.config.topic, partition)?;
        self.manifests.lock().expect("manifests").insert(partition, m.clone());
        Ok(m)
    }

    fn note(&self, partition: u32, entry: SegmentEntry) {
        if let Some(m) = self.manifests.lock().expect("manifests").get_mut(&partition) {
            m.insert(entry);
        }
    }

    /// Reads the hot records from `from` on: up to `max` records or a segment's bytes of values;
    /// or, with `until`, the whole range up to it (inclusive).
    fn read_hot(&self, partition: u32, from: u64, until: Option<u64>, max: usize) -> Result<Vec<LogRecord>, TierError> {
        let topic = &self.config.topic;
        let cap = if until.is_some() { usize::MAX } else { self.config.segment_bytes };
        let mut out: Vec<LogRecord> = Vec::new();
        let mut bytes = 0;
        let mut next = from;
        while out.len() < max && bytes < cap && until.is_none_or(|u| next <= u) {
            let batch = self.log.read(topic, partition, next, (max - out.len()).min(4096))?;
            let Some(first) = batch.first() else { break };
            if first.offset > next && out.is_empty() && self.log.start_offset(topic, partition)? > next {
                return Err(TierError::Gap { partition, offset: next });
            }
            for r in batch {
                if until.is_some_and(|u| r.offset > u) || out.len() == max || bytes >= cap {
                    return Ok(out);
                }
                next = r.offset + 1;
                bytes += r.value.len();
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The next closed range of a partition, if any.
    fn closed_range(&self, partition: u32, from: u64, force: bool) -> Result<Option<Vec<LogRecord>>, TierError> {
        if self.log.end_offset(&self.config.topic, partition)? <= from {
            return Ok(None);
        }
        let records = self.read_hot(partition, from, None, self.config.segment_records)?;
        let Some(newest) = records.last() else { return Ok(None) };
        let full = records.len() >= self.config.segment_records
            || records.iter().map(|r| r.value.len()).sum::<usize>() >= self.config.segment_bytes;
        let quiet = newest.timestamp_ms + (self.config.close_after.as_millis() as i64) <= now_ms();
        Ok((full || quiet || force).then_some(records))
    }

    /// Tiers the next closed range of a partition (`force`: whatever is there, closed or not).
    pub fn tier_partition(&self, partition: u32, force: bool) -> Result<Step, TierError> {
        let topic = &self.config.topic;
        let from = self.manifest(partition)?.end();
        let Some(records) = self.closed_range(partition, from, force)? else { return Ok(Step::Idle) };
        let bytes = segment::encode(topic, partition, &records);
        let key = segment_key(topic, partition, from);
        let (entry, written) = if self.objects.put_new_archive(&key, bytes.clone())? {
            // read after write: what the store holds is what was meant
            let stored = self.objects.get(&key, MAX_SEGMENT_OBJECT)?;
            if sha256_hex(&stored) != sha256_hex(&bytes) {
                return Err(TierError::Checksum { key, reason: "read back after writing, it differs".into() });
            }
            (self.entry(partition, &key, &records, &bytes), true)
        } else {
            // a segment is there already: written before a crash, or by a peer. Adopt it if it
            // holds exactly what the hot log holds over its range.
            let stored = self.objects.get(&key, MAX_SEGMENT_OBJECT)?;
            let cold = segment::decode(&key, &stored)?;
            let last = cold.last().map_or(from, |r| r.offset);
            let hot = self.read_hot(partition, from, Some(last), usize::MAX)?;
            if cold.is_empty() || hot != cold {
                return Err(TierError::Conflict {
                    key,
                    reason: "the segment there does not hold what the hot log holds".into(),
                });
            }
            (self.entry(partition, &key, &cold, &stored), false)
        };
        fail_point("after-segment");
        let entry_key = entry_key(topic, partition, from);
        let json = serde_json::to_vec_pretty(&entry).expect("an entry serializes");
        let entry = if self.objects.put_new(&entry_key, json)? {
            entry
        } else {
            let there = crate::manifest::read_entry(&self.objects, &entry_key)?;
            if (there.first, there.last, &there.sha256) != (entry.first, entry.last, &entry.sha256) {
                return Err(TierError::Conflict { key: entry_key, reason: "another entry is recorded there".into() });
            }
            there
        };
        tracing::info!(partition, first = entry.first, last = entry.last, bytes = entry.bytes, written, "tiered");
        self.note(partition, entry.clone());
        Ok(if written { Step::Written(entry) } else { Step::Adopted(entry) })
    }

    fn entry(&self, partition: u32, key: &str, records: &[LogRecord], bytes: &[u8]) -> SegmentEntry {
        SegmentEntry {
            topic: self.config.topic.clone(),
            partition,
            first: records.first().map_or(0, |r| r.offset),
            last: records.last().map_or(0, |r| r.offset),
            count: records.len() as u64,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            min_timestamp_ms: records.iter().map(|r| r.timestamp_ms).min().unwrap_or_default(),
            max_timestamp_ms: records.iter().map(|r| r.timestamp_ms).max().unwrap_or_default(),
            schema_ids: segment::schema_ids(records),
            segment: key.to_owned(),
            created_at_ms: now_ms(),
            writer: self.config.writer.clone(),
        }
    }

    /// Tiers every closed range of every partition, the partitions in parallel (encoding and
    /// compression are CPU-bound); returns the steps that wrote or adopted, by partition.
    pub fn tier_all(&self, force: bool) -> Result<Vec<Step>, TierError> {
        let partitions = self.log.partitions(&self.config.topic)?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(partitions as usize).max(1);
        let per_worker: Vec<Result<PartitionSteps, TierError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || {
                        let mut done = Vec::new();
                        for partition in (0..partitions).filter(|p| *p as usize % workers == w) {
                            let mut steps = Vec::new();
                            loop {
                                match self.tier_partition(partition, force)? {
                                    Step::Idle => break,
                                    step => steps.push(step),
                                }
                            }
                            done.push((partition, steps));
                        }
                        Ok(done)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a tiering thread")).collect()
        });
        let mut by_partition = Vec::new();
        for r in per_worker {
            by_partition.extend(r?);
        }
        by_partition.sort_by_key(|(p, _)| *p);
        Ok(by_partition.into_iter().flat_map(|(_, steps)| steps).collect())
    }

    /// Drops a partition's hot records below its tiered end, after checking every segment still
    /// hot: its bytes against the entry's checksum and count, its records against the hot log.
    /// Returns the new hot start (the backend may keep a little more: whole files).
    pub fn drop_hot(&self, partition: u32) -> Result<u64, TierError> {
        let topic = &self.config.topic;
        let hot_start = self.log.start_offset(topic, partition)?;
        // nothing tiered past the hot start that this tierer knows of: no store round trips (the
        // service calls this every round; its own tiering keeps what it knows up to date)
        if self.manifest(partition)?.end() <= hot_start {
            return Ok(hot_start);
        }
        // the store's manifest, not the cached one: drop only below what is recorded there
        let manifest = Manifest::load(&self.objects, topic, partition)?;
        for entry in manifest.entries().filter(|e| e.last >= hot_start) {
            let cold = verify(&self.objects, entry)?;
            let hot = self.read_hot(partition, entry.first, Some(entry.last), usize::MAX)?;
            if hot != cold {
                return Err(TierError::Checksum {
                    key: entry.segment.clone(),
                    reason: "its records differ from the hot log's".into(),
                });
            }
        }
        if manifest.end() <= hot_start {
            return Ok(hot_start);
        }
        Ok(self.log.drop_before(topic, partition, manifest.end())?)
    }

    /// Where each partition stands.
    pub fn status(&self) -> Result<Vec<PartitionStatus>, TierError> {
        let topic = &self.config.topic;
        (0..self.log.partitions(topic)?)
            .map(|partition| {
                let manifest = Manifest::load(&self.objects, topic, partition)?;
                let end = self.log.end_offset(topic, partition)?;
                Ok(PartitionStatus {
                    partition,
                    hot_start: self.log.start_offset(topic, partition)?,
                    end,
                    tiered_end: manifest.end(),
                    segments: manifest.len(),
                    cold_bytes: manifest.entries().map(|e| e.bytes).sum(),
                    backlog: end.saturating_sub(manifest.end()),
                })
            })
            .collect()
    }

    /// Reports each partition's records not yet tiered (`visionlog.tiering.backlog`), from the
    /// manifests the tierer holds.
    fn report_backlog(&self) {
        let topic = &self.config.topic;
        let Ok(partitions) = self.log.partitions(topic) else { return };
        for p in 0..partitions {
            let tiered = self.manifests.lock().expect("manifests").get(&p).map(Manifest::end);
            if let (Some(tiered), Ok(end)) = (tiered, self.log.end_offset(topic, p)) {
                visionlog_telemetry::metrics::tiering_backlog(topic, p, end.saturating_sub(tiered));
            }
        }
    }

    /// Tiers until `stop`: every `interval`, every closed range, then (with `drop_hot`) the hot
    /// copy below it. An object-store outage pauses it (backing off up to a minute) and loses
    /// nothing: the hot log is dropped only below segments read back and checked.
    pub fn run(&self, stop: &AtomicBool, interval: Duration, drop_hot: bool) {
        let mut backoff = interval;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = self.tier_all(false).and_then(|_| {
                if drop_hot {
                    for p in 0..self.log.partitions(&self.config.topic)? {
                        self.drop_hot(p)?;
                    }
                }
                Ok(())
            });
            let wait = match result {
                Ok(()) => {
                    self.report_backlog();
                    backoff = interval;
                    interval
                }
                Err(e) => {
                    // the cached manifests may be behind a peer's: read them again next time
                    self.manifests.lock().expect("manifests").clear();
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "tiering paused");
                    backoff
                }
            };
            let until = started + wait;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
            }
        }
    }
}

/// Reads a segment back and checks it against its entry; returns its records.
pub(crate) fn verify(objects: &Objects, entry: &SegmentEntry) -> Result<Vec<LogRecord>, TierError> {
    let bytes = objects.get(&entry.segment, MAX_SEGMENT_OBJECT)?;
    if bytes.len() as u64 != entry.bytes || sha256_hex(&bytes) != entry.sha256 {
        return Err(TierError::Checksum {
            key: entry.segment.clone(),
            reason: "its SHA-256 differs from the manifest's".into(),
        });
    }
    let records = segment::decode(&entry.segment, &bytes)?;
    let (first, last) = (records.first().map(|r| r.offset), records.last().map(|r| r.offset));
    if records.len() as u64 != entry.count || first != Some(entry.first) || last != Some(entry.last) {
        return Err(TierError::Checksum { key: entry.segment.clone(), reason: "it holds another range".into() });
    }
    Ok(records)
}

/// `VISIONLOG_TIER_FAIL_AT=<point>` aborts the process there, as a kill would: how the tests
/// stop a tierer between writing a segment and recording it.
fn fail_point(point: &str) {
    if std::env::var("VISIONLOG_TIER_FAIL_AT").is_ok_and(|p| p == point) {
        eprintln!("visionlog: failing at tiering point {point:?} (VISIONLOG_TIER_FAIL_AT)");
        std::process::abort();
    }
}
