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
    /// Bytes of records per append: a batch closes once it holds this much (one decision may
    /// take it past).
    pub max_batch_bytes: usize,
    /// The largest journal record (an event with its headers) a decision may append; the log's
    /// own limit (a Kafka topic's `max.message.bytes`) lowers it. A command whose events would be
    /// larger is rejected with `event_too_large`.
    pub max_event_bytes: usize,
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
            max_batch_bytes: 1024 * 1024,
            max_event_bytes: 8 * 1024 * 1024,
            max_command_bytes: 4 * 1024 * 1024,
            dedup_per_task: 256,
            limits: Limits::default(),
        }
    }
}
