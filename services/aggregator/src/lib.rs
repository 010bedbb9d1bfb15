//! The aggregator: the single writer of each partition of `events`.
//!
//! For each partition it owns, it restores task states (snapshots plus the journal since the
//! last checkpoint), claims the partition with a higher owner epoch, then reads `commands` in
//! order: a redelivered command id gets its earlier outcome, a wrong `expected_version` a
//! conflict, anything else `decide` on the task's state. Each batch of decisions is one append
//! to `events`; reading it back proves that no other owner claimed the partition meanwhile.
//! Outcomes go to `outcomes`; undecodable commands to `dead-letters` as well.
//!
//! Not here: what commands mean (the domain crate) and how the journal is framed (journal).

mod cache;
mod config;
mod handle;
mod partition;
mod record;

pub use config::AggregatorConfig;
pub use partition::{AggregatorError, GROUP, PartitionAggregator, PartitionStats};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use visionlog_codec::Codec;
use visionlog_journal::Topics;
use visionlog_log::EventLog;
use visionlog_store::ReadStore;

/// Runs one owner per partition of `topics`, each on its own thread, until `stop` is set.
pub fn spawn_owners(
    log: &Arc<dyn EventLog>,
    codec: &Arc<Codec>,
    store: &Arc<dyn ReadStore>,
    topics: &Topics,
    config: &AggregatorConfig,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<Result<PartitionStats, AggregatorError>>> {
    (0..topics.partitions)
        .map(|p| {
            let agg =
                PartitionAggregator::new(log.clone(), codec.clone(), store.clone(), topics.clone(), config.clone(), p);
            let stop = stop.clone();
            std::thread::spawn(move || agg.run(&stop))
        })
        .collect()
}
pub use record::{Decided, TaskRecord};
