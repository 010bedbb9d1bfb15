//! Errors of the log.

use thiserror::Error;

/// Why a log operation failed.
#[derive(Debug, Error)]
pub enum LogError {
    /// An I/O error; may be transient (disk full, broker down): retry or stop.
    #[error("log i/o on {path}: {source}")]
    Io {
        /// The file or endpoint.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Stored data fails its checksum or framing away from the tail: stop and investigate;
    /// nothing is read past it.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: String,
        /// Byte position.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// The topic exists with another partition count.
    #[error("topic {topic} has {existing} partitions, not {requested}")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Its count.
        existing: u32,
        /// The count asked for.
        requested: u32,
    },
    /// An append, or one record of it, is larger than the log takes (the embedded log's frame,
    /// a Kafka topic's `max.message.bytes`): sending it again fails again.
    #[error("{size} bytes exceed what the log takes{}", .max.map(|m| format!(" ({m} bytes)")).unwrap_or_default())]
    BatchTooLarge {
        /// Its size.
        size: usize,
        /// The limit, where known.
        max: Option<usize>,
    },
    /// Another process holds the log.
    #[error("the log at {0} is in use by another process")]
    Locked(String),
    /// A bad URL or option.
    #[error("log configuration: {0}")]
    Config(String),
    /// A newer writer of the same name took over ([`crate::EventLog::append_as`]): this one
    /// must stop writing (it is a zombie).
    #[error("writer {0} was fenced by a newer writer of the same name")]
    Fenced(String),
    /// Records below the hot log's start could not be read from the cold tier (object store
    /// down, a segment missing or failing its checksum).
    #[error("cold tier: {0}")]
    Cold(String),
}

impl LogError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io { path: path.to_string(), source }
    }
}
