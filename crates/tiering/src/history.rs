//! One history: a log whose tiered topics read below the hot start from the cold segments.

use crate::TierError;
use crate::manifest::{Manifest, SegmentEntry};
use crate::tierer::verify;
use lru::LruCache;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use visionlog_log::{Appended, EventLog, GroupMember, LogError, LogRecord, Position, Rebalance, Record, Retention};
use visionlog_objects::Objects;

/// Decoded segments kept in memory (each at most a segment's records).
const CACHED_SEGMENTS: usize = 8;

/// An [`EventLog`] over a hot log and the cold segments of some of its topics.
///
/// Reads of a tiered topic below the hot log's start are served from the segments (each checked
/// against its manifest checksum when loaded), so a reader from offset 0 sees the whole history
/// whatever has been dropped; everything else goes to the hot log. Dropping records
/// ([`EventLog::drop_before`]) never goes past what the manifest records as cold.
pub struct TieredLog {
    hot: Arc<dyn EventLog>,
    objects: Objects,
    tiered: HashSet<String>,
    manifests: Mutex<HashMap<(String, u32), Manifest>>,
    /// The hot start last seen per partition (it only grows).
    hot_starts: Mutex<HashMap<(String, u32), u64>>,
    segments: Mutex<LruCache<String, Arc<Vec<LogRecord>>>>,
}

impl TieredLog {
    /// `hot`, with the topics in `tiered` read through their cold segments in `objects`.
    pub fn new(hot: Arc<dyn EventLog>, objects: Objects, tiered: &[&str]) -> Self {
        Self {
            hot,
            objects,
            tiered: tiered.iter().map(|t| (*t).to_owned()).collect(),
            manifests: Mutex::new(HashMap::new()),
            hot_starts: Mutex::new(HashMap::new()),
            segments: Mutex::new(LruCache::new(NonZeroUsize::new(CACHED_SEGMENTS).expect("non-zero"))),
        }
    }

    /// The hot log under it.
    pub fn hot(&self) -> &Arc<dyn EventLog> {
        &self.hot
    }

    /// The manifest of a partition, read again from the store when `fresh` or when it does not
    /// reach `offset` yet.
    fn manifest(&self, topic: &str, partition: u32, offset: Option<u64>) -> Result<Manifest, TierError> {
        let k = (topic.to_owned(), partition);
        if let Some(m) = self.manifests.lock().expect("manifests").get(&k)
            && offset.is_some_and(|o| o < m.end())
        {
            return Ok(m.clone());
        }
        let m = Manifest::load(&self.objects, topic, partition)?;
        self.manifests.lock().expect("manifests").insert(k, m.clone());
        Ok(m)
    }

    fn hot_start(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let start = self.hot.start_offset(topic, partition)?;
        self.hot_starts.lock().expect("hot starts").insert((topic.to_owned(), partition), start);
        Ok(start)
    }

    fn segment(&self, entry: &SegmentEntry) -> Result<Arc<Vec<LogRecord>>, TierError> {
        if let Some(s) = self.segments.lock().expect("segments").get(&entry.segment) {
            return Ok(s.clone());
        }
        let records = Arc::new(verify(&self.objects, entry)?);
        self.segments.lock().expect("segments").put(entry.segment.clone(), records.clone());
        Ok(records)
    }

    /// Reads from the cold segments from `from` on, up to `max` records and no further than the
    /// hot start (what is hot is read there).
    fn read_cold(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        hot_start: u64,
    ) -> Result<Vec<LogRecord>, TierError> {
        let manifest = self.manifest(topic, partition, Some(from))?;
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < max && next < hot_start {
            let Some(entry) = manifest.find(next) else { break };
            let records = self.segment(entry)?;
            let at = records.partition_point(|r| r.offset < next);
            out.extend(records[at..].iter().take(max - out.len()).cloned());
            next = entry.last + 1;
        }
        if out.is_empty() {
            return Err(TierError::Gap { partition, offset: from });
        }
        Ok(out)
    }
}

impl EventLog for TieredLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        self.hot.create_topic(topic, partitions)
    }

    fn create_topic_retained(&self, topic: &str, partitions: u32, r: Retention) -> Result<(), LogError> {
        self.hot.create_topic_retained(topic, partitions, r)
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        self.hot.partitions(topic)
    }

    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, LogError> {
        self.hot.max_record_bytes(topic)
    }

    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError> {
        self.hot.append(topic, partition, records)
    }

    fn append_all(&self, topic: &str, batches: &[(u32, Vec<Record>)]) -> Result<Vec<Appended>, LogError> {
        self.hot.append_all(topic, batches)
    }

    fn append_as(&self, writer: &str, batches: &[(&str, u32, Vec<Record>)]) -> Result<(), LogError> {
        self.hot.append_as(writer, batches)
    }

    /// Below the hot start last seen: cold. Else hot (the common case costs nothing more); a hot
    /// read that comes back empty or starting past `from` asks the hot log where it starts now,
    /// and reads below that from the cold tier.
    fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        if !self.tiered.contains(topic) {
            return self.hot.read(topic, partition, from, max);
        }
        let known = self.hot_starts.lock().expect("hot starts").get(&(topic.to_owned(), partition)).copied();
        // what the hot log said, when it was asked first (a broker may refuse a read below its
        // low watermark rather than skip ahead: that is an answer too)
        let mut tried = None;
        if known.is_none_or(|s| from >= s) {
            match self.hot.read(topic, partition, from, max) {
                Ok(hot) if hot.first().is_some_and(|r| r.offset == from) => return Ok(hot),
                other => tried = Some(other),
            }
        }
        let hot_start = self.hot_start(topic, partition)?;
        if from >= hot_start {
            return tried.unwrap_or_else(|| self.hot.read(topic, partition, from, max));
        }
        Ok(self.read_cold(topic, partition, from, max, hot_start)?)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        self.hot.end_offset(topic, partition)
    }

    /// Where the whole history starts: the first cold offset if any.
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let hot = self.hot.start_offset(topic, partition)?;
        if !self.tiered.contains(topic) || hot == 0 {
            return Ok(hot);
        }
        Ok(self.manifest(topic, partition, None)?.start().map_or(hot, |s| s.min(hot)))
    }

    /// Drops hot records, never past the end of what the cold tier records.
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        let offset =
            if self.tiered.contains(topic) { offset.min(self.manifest(topic, partition, None)?.end()) } else { offset };
        self.hot.drop_before(topic, partition, offset)
    }

    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        self.hot.wait_for(topic, partition, offset, timeout)
    }

    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), LogError> {
        self.hot.commit(group, topic, partition, position)
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, LogError> {
        self.hot.committed(group, topic, partition)
    }

    fn flush(&self) -> Result<(), LogError> {
        self.hot.flush()
    }

    fn join_group(
        &self,
        group: &str,
        topic: &str,
        handler: Arc<dyn Rebalance>,
    ) -> Result<Box<dyn GroupMember>, LogError> {
        self.hot.join_group(group, topic, handler)
    }
}
