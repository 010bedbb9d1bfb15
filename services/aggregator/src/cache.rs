//! The bounded cache of task records over the snapshot table, with checkpoints.

use crate::record::TaskRecord;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use visionlog_store::{Put, ReadStore, Row, StoreError};

const SNAPSHOTS: &str = "aggregate_snapshots";
const CHECKPOINTS: &str = "aggregate_checkpoints";

/// Where a partition's snapshots stand: everything before `events_offset` is in them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) events_offset: u64,
    pub(crate) command_offset: u64,
    pub(crate) epoch: u64,
    /// Recent claims in force: (epoch, offset), ascending.
    pub(crate) claims: Vec<(u64, u64)>,
}

/// Orders writes by owner epoch first: a superseded owner's late write never wins.
fn fenced_version(epoch: u64, offset: u64) -> u64 {
    (epoch << 40) | (offset & ((1 << 40) - 1))
}

pub(crate) struct TaskCache<'s> {
    store: &'s dyn ReadStore,
    partition_key: String,
    /// Prefixes the snapshots' keys (empty for the unprefixed topic).
    namespace: String,
    lru: LruCache<String, TaskRecord>,
    capacity: usize,
    dirty: HashSet<String>,
    pub(crate) loads: u64,
}

impl<'s> TaskCache<'s> {
    /// The cache of partition `partition` of the journal topic `events`. Snapshots and the
    /// checkpoint are keyed by the topic too, so two installations (topic prefixes) sharing a
    /// store never read each other's; the unprefixed topic keeps the keys it always had.
    pub(crate) fn new(store: &'s dyn ReadStore, events: &str, partition: u32, capacity: usize) -> Self {
        let namespace = if events == "events" { String::new() } else { format!("{events}/") };
        Self {
            store,
            partition_key: format!("{namespace}p{partition}"),
            namespace,
            lru: LruCache::unbounded(),
            capacity: capacity.max(1),
            dirty: HashSet::new(),
            loads: 0,
        }
    }

    pub(crate) fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        Ok(self
            .store
            .get(CHECKPOINTS, &self.partition_key, "")?
            .and_then(|row| postcard::from_bytes(&row.value).ok())
            .unwrap_or_default())
    }

    /// Returns a cached record.
    pub(crate) fn get_mut(&mut self, task_id: &str) -> Option<&mut TaskRecord> {
        self.lru.get_mut(task_id)
    }

    /// Reads a task's snapshot from the store: none, or the record, or why it cannot be read.
    pub(crate) fn load(&mut self, task_id: &str) -> Result<Option<Result<TaskRecord, String>>, StoreError> {
        self.loads += 1;
        let key = format!("{}{task_id}", self.namespace);
        Ok(self.store.get(SNAPSHOTS, &key, "")?.map(|row| TaskRecord::from_snapshot(&row.value)))
    }

    /// Caches a record. Never evicts: records may hold decisions not appended yet; [`Self::trim`]
    /// evicts once they are.
    pub(crate) fn insert(&mut self, task_id: &str, record: TaskRecord) -> &mut TaskRecord {
        self.lru.put(task_id.to_owned(), record);
        self.lru.get_mut(task_id).expect("just inserted")
    }

    /// Evicts the least recently used records beyond the capacity, checkpointing first if a
    /// changed one would leave. Call only when every decision in the cache is appended.
    pub(crate) fn trim(&mut self, cp: &Checkpoint) -> Result<(), StoreError> {
        let excess = self.lru.len().saturating_sub(self.capacity);
        if excess == 0 {
            return Ok(());
        }
        if self.lru.iter().rev().take(excess).any(|(k, _)| self.dirty.contains(k)) {
            self.flush(cp)?;
        }
        for _ in 0..excess {
            self.lru.pop_lru();
        }
        Ok(())
    }

    /// Forgets every record (after losing the partition, or a failed append).
    pub(crate) fn clear(&mut self) {
        self.lru.clear();
        self.dirty.clear();
    }

    pub(crate) fn mark_dirty(&mut self, task_id: &str) {
        if !self.dirty.contains(task_id) {
            self.dirty.insert(task_id.to_owned());
        }
    }

    /// Writes every changed record, then the checkpoint that covers them: two store calls, the
    /// second only after the first succeeded. A store call is not atomic across rows (Scylla sends
    /// its writes concurrently), so in one call the checkpoint could land while a snapshot failed,
    /// and the next owner would start past decisions whose state was never saved. A record stays
    /// changed until its snapshot is written.
    pub(crate) fn flush(&mut self, cp: &Checkpoint) -> Result<(), StoreError> {
        let mut snapshots = Vec::with_capacity(self.dirty.len());
        for task_id in &self.dirty {
            if let Some(record) = self.lru.peek_mut(task_id) {
                record.epoch = cp.epoch;
                let version = fenced_version(cp.epoch, record.applied_offset);
                let partition = format!("{}{task_id}", self.namespace);
                let row = Row { partition, clustering: String::new(), version, value: record.to_snapshot() };
                snapshots.push(Put { table: SNAPSHOTS.into(), row });
            }
        }
        if !snapshots.is_empty() {
            self.store.put(&snapshots)?;
        }
        self.dirty.clear();
        let row = Row {
            partition: self.partition_key.clone(),
            clustering: String::new(),
            version: fenced_version(cp.epoch, cp.events_offset),
            value: postcard::to_stdvec(cp).expect("checkpoint serializes"),
        };
        self.store.put(&[Put { table: CHECKPOINTS.into(), row }])?;
        Ok(())
    }
}
