//! The manifest of a partition's cold tier: one small immutable object per segment, created with
//! a conditional put, so two tierers (or one restarted mid-segment) never both record a range.
//!
//! Keys, under the object store's prefix:
//! - `tier/{topic}/{partition:05}/segments/{first:020}.avro`: the segment (see [`crate::segment`]);
//! - `tier/{topic}/{partition:05}/manifest/{first:020}.json`: its [`SegmentEntry`].
//!
//! Zero-padded offsets make a listing come back in offset order.

use crate::TierError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use visionlog_objects::Objects;

/// The largest manifest entry read back (they are a few hundred bytes).
const MAX_ENTRY_BYTES: u64 = 64 << 10;

/// One cold segment: which records it holds and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset held.
    pub first: u64,
    /// The last offset held.
    pub last: u64,
    /// How many records (fewer than `last - first + 1` only where Kafka left holes).
    pub count: u64,
    /// The segment's size in bytes.
    pub bytes: u64,
    /// The hex SHA-256 of the segment's bytes.
    pub sha256: String,
    /// The oldest and newest record timestamps (ms since the epoch).
    pub min_timestamp_ms: i64,
    /// See `min_timestamp_ms`.
    pub max_timestamp_ms: i64,
    /// The schema-registry ids of the values in it.
    pub schema_ids: Vec<u32>,
    /// The segment's object key.
    pub segment: String,
    /// When the entry was written.
    pub created_at_ms: i64,
    /// Who wrote it (host and process).
    pub writer: String,
}

/// The folder of a partition's cold tier.
pub fn partition_prefix(topic: &str, partition: u32) -> String {
    format!("tier/{topic}/{partition:05}")
}

/// The key of the segment starting at `first`.
pub fn segment_key(topic: &str, partition: u32, first: u64) -> String {
    format!("{}/segments/{first:020}.avro", partition_prefix(topic, partition))
}

/// The key of the manifest entry of the segment starting at `first`.
pub fn entry_key(topic: &str, partition: u32, first: u64) -> String {
    format!("{}/manifest/{first:020}.json", partition_prefix(topic, partition))
}

/// A partition's manifest: its segments by first offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: BTreeMap<u64, SegmentEntry>,
}

impl Manifest {
    /// Reads a partition's manifest from the object store, refusing one with overlapping
    /// segments (which conditional creates rule out: a sign of a foreign writer).
    pub fn load(objects: &Objects, topic: &str, partition: u32) -> Result<Self, TierError> {
        let mut entries = BTreeMap::new();
        for listed in objects.list(&format!("{}/manifest", partition_prefix(topic, partition)))? {
            if !listed.key.ends_with(".json") {
                continue;
            }
            let entry = read_entry(objects, &listed.key)?;
            entries.insert(entry.first, entry);
        }
        let manifest = Self { entries };
        manifest.check(topic, partition)?;
        Ok(manifest)
    }

    fn check(&self, topic: &str, partition: u32) -> Result<(), TierError> {
        let mut next = None;
        for e in self.entries.values() {
            if e.topic != topic || e.partition != partition || e.last < e.first {
                return Err(TierError::Manifest(format!("entry at {} of {topic}/{partition} is not its own", e.first)));
            }
            if next.is_some_and(|n| e.first != n) {
                return Err(TierError::Manifest(format!(
                    "{topic}/{partition}: segment at {} does not follow the one before (expected {})",
                    e.first,
                    next.unwrap_or_default()
                )));
            }
            next = Some(e.last + 1);
        }
        Ok(())
    }

    /// Adds an entry written (or adopted) by this process.
    pub(crate) fn insert(&mut self, entry: SegmentEntry) {
        self.entries.insert(entry.first, entry);
    }

    /// The offset after the last tiered record: where the next segment starts (0 if none).
    pub fn end(&self) -> u64 {
        self.entries.values().next_back().map_or(0, |e| e.last + 1)
    }

    /// The first tiered offset, if any.
    pub fn start(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }

    /// The segment holding `offset`, or the first one after it (a Kafka hole).
    pub fn find(&self, offset: u64) -> Option<&SegmentEntry> {
        match self.entries.range(..=offset).next_back() {
            Some((_, e)) if e.last >= offset => Some(e),
            _ => self.entries.range(offset..).next().map(|(_, e)| e),
        }
    }

    /// The segments, in offset order.
    pub fn entries(&self) -> impl Iterator<Item = &SegmentEntry> {
        self.entries.values()
    }

    /// How many segments.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no segment is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reads one manifest entry.
pub(crate) fn read_entry(objects: &Objects, key: &str) -> Result<SegmentEntry, TierError> {
    let bytes = objects.get(key, MAX_ENTRY_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| TierError::Manifest(format!("{key}: {e}")))
}
