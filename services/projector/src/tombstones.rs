//! Garbage collection of the tombstones a live projector writes.
//!
//! A row a task stops producing (it left the operator queue, it changed status) becomes a
//! tombstone at the task's new version, so that an older write of it cannot bring it back. Kept
//! for ever, tombstones make a partition read (the operator queue, a status list) cost the whole
//! history. The rule for erasing one:
//!
//! - the older writes a tombstone guards against come only from a projector of the same
//!   generation folding an older state of the same task, and a task's rows are written only by
//!   the projector that owns the task's partition of `events`;
//! - that projector never writes an older state once a newer one is stored: it folds from the
//!   stored state and skips events it already reflects (redelivery is a duplicate, not a write);
//! - so the only older write left is a former owner of the partition still finishing a batch
//!   after the partition moved (a zombie consumer), which lasts at most a consumer session;
//! - hence a tombstone is erased once `grace` (longer than a session and a batch: 10 minutes by
//!   default) has passed since it was written, by the owner of its partition, in the same thread
//!   as its writes, and only if the row is still that tombstone (a newer live row is kept).
//!
//! A rebuild needs none of this: its generation has one writer per partition and no readers, so
//! it erases rows at once (see `Projector::for_rebuild`). The list lives in the generation's
//! `tombstones` table: one row per write batch that tombstoned something, partitioned by the
//! partition of `events`, clustered by the time it was written, so collecting reads only what is
//! due, oldest first. A crash between the tombstones and their entry leaves a tombstone that is
//! never erased; that costs a row, never a wrong answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use visionlog_store::{Put, ReadStore, Row, RowPlace, StoreError};
use visionlog_views::views::{decode, encode};

/// Entries read per collection.
const COLLECT_BATCH: usize = 256;
/// The least time between two collections.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// A listed tombstone: its place and its version.
type Listed = (String, String, String, u64);

/// The tombstones of one projector: the list it appends to, and when it last collected.
pub(crate) struct Tombstones {
    table: String,
    grace: Duration,
    seq: u64,
    collected_at: Option<SystemTime>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Tombstones {
    pub(crate) fn new(table: String, grace: Duration) -> Self {
        Self { table, grace, seq: 0, collected_at: None }
    }

    /// The list's entry for the tombstones of one write batch, if there are any.
    pub(crate) fn listed(&mut self, partition: u32, tombstones: Vec<(RowPlace, u64)>) -> Option<Put> {
        if tombstones.is_empty() {
            return None;
        }
        self.seq += 1;
        let listed: Vec<Listed> =
            tombstones.into_iter().map(|(p, v)| (p.table, p.partition, p.clustering, v)).collect();
        let row = Row {
            partition: partition.to_string(),
            clustering: format!("{:016}|{:012}", millis(SystemTime::now()), self.seq),
            version: 1,
            value: encode(&listed),
        };
        Some(Put { table: self.table.clone(), row })
    }

    /// Erases the tombstones of `partition` whose grace has passed (at most one round a second).
    /// Returns how many tombstones it erased.
    pub(crate) fn collect(&mut self, store: &dyn ReadStore, partition: u32) -> Result<usize, StoreError> {
        let now = SystemTime::now();
        if self.collected_at.is_some_and(|at| now.duration_since(at).unwrap_or_default() < COLLECT_EVERY) {
            return Ok(0);
        }
        self.collected_at = Some(now);
        let due = millis(now).saturating_sub(self.grace.as_millis() as u64);
        let partition = partition.to_string();
        let mut erase = Vec::new();
        let mut erased = 0;
        for entry in store.scan_partition(&self.table, &partition, None, COLLECT_BATCH)? {
            let written: u64 = entry.clustering.split('|').next().and_then(|t| t.parse().ok()).unwrap_or(0);
            if written > due {
                break; // clustered by time: the rest are younger
            }
            for (table, p, c, version) in decode::<Vec<Listed>>(&entry.value).unwrap_or_default() {
                let still = store.get(&table, &p, &c)?.is_some_and(|r| r.is_tombstone() && r.version == version);
                if still {
                    erase.push(RowPlace { table, partition: p, clustering: c });
                    erased += 1;
                }
            }
            erase.push(RowPlace {
                table: self.table.clone(),
                partition: partition.clone(),
                clustering: entry.clustering,
            });
        }
        if !erase.is_empty() {
            store.erase_many(&erase)?;
        }
        Ok(erased)
    }
}
