//! Cold events: closed offset ranges of a log topic in immutable, checksummed segment objects
//! on an object store (S3, MinIO, SeaweedFS or local files), a manifest per partition, and one
//! history over cold and hot.
//!
//! - [`Tierer`]: the tiering service. Writes segments exactly once (conditional creates),
//!   verifies them, and drops the hot copy only below verified segments.
//! - [`TieredLog`]: an [`visionlog_log::EventLog`] that serves offsets below the hot log's start
//!   from the cold segments, so replays, read-model rebuilds and time travel read one history.
//! - [`segment`]: the segment format (an Avro container file, readable by any Avro reader).

mod history;
pub mod manifest;
pub mod segment;
mod tierer;

pub use history::TieredLog;
pub use manifest::{Manifest, SegmentEntry};
pub use segment::SegmentError;
pub use tierer::{PartitionStatus, Step, TierConfig, Tierer};

use visionlog_log::LogError;
use visionlog_objects::ObjectsError;

/// The largest segment object read back (a segment holds at most `segment_bytes` of values,
/// 64 MiB by default, compressed).
pub const MAX_SEGMENT_OBJECT: u64 = 1 << 30;

/// Why tiering or a cold read failed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The hot log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The object store failed (an outage pauses tiering).
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// A segment could not be decoded.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A manifest that cannot be right.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A segment that fails its check: the hot copy is kept.
    #[error("segment {key} fails its check: {reason}")]
    Checksum {
        /// The segment's key.
        key: String,
        /// What differs.
        reason: String,
    },
    /// Something else is recorded where this tierer would write.
    #[error("{key}: {reason}")]
    Conflict {
        /// The key.
        key: String,
        /// What differs.
        reason: String,
    },
    /// Records were dropped from the hot log before being tiered: history has a hole.
    #[error("partition {partition}: offset {offset} was dropped from the hot log and is in no cold segment")]
    Gap {
        /// The partition.
        partition: u32,
        /// The first missing offset.
        offset: u64,
    },
}

impl From<TierError> for LogError {
    fn from(e: TierError) -> Self {
        match e {
            TierError::Log(e) => e,
            other => LogError::Cold(other.to_string()),
        }
    }
}
