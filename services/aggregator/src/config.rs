//! Configuration of the aggregator.

use visionlog_domain::Limits;

/// How an aggregator runs.
#[derive(Clone, Debug)]
pub struct AggregatorConfig {
    /// Who this owner is (written in claims).
    pub owner: String,
    /// Task states kept in memory per partition.
    pub cache_capacity: usize,
    /// Checkpoint (snapshots of changed tasks) after this many events.
    pub snapshot_every: u64,
    /// Commands decided per append.
    pub max_batch: usize,
    /// Commands larger than this are rejected without decoding.
    pub max_command_bytes: usize,
    /// Decided command ids remembered per task, for deduplication.
    pub dedup_per_task: usize,
    /// The domain's size limits.
    pub limits: Limits,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            owner: format!("aggregator-{}", std::process::id()),
            cache_capacity: 10_000,
            snapshot_every: 20_000,
            max_batch: 500,
            max_command_bytes: 4 * 1024 * 1024,
            dedup_per_task: 256,
            limits: Limits::default(),
        }
    }
}
