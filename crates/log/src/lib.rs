//! The log: partitioned, ordered, append-only topics of keyed records with headers.
//!
//! [`EventLog`] is the trait every backend implements: the embedded [`FileLog`] (the default on
//! one machine, crash-safe) and Kafka (production). Backends are chosen by URL with [`open`].
//! Records are placed on partitions by Kafka's murmur2 partitioner ([`partition_for`]), so a
//! retailer's Java producer and visionlog agree on where a task lives.
//!
//! Not here: what the records mean. Fencing, decisions and envelopes live in the services that
//! write them.

pub mod conformance;
mod error;
mod file;
mod group;
mod intern;
mod kafka;
mod local_broker;
mod partitioner;

pub use error::LogError;
pub use file::{FileLog, FileLogOptions, FsyncPolicy};
pub use group::{GroupMember, Rebalance};
pub use intern::intern;
pub use kafka::{KafkaLog, KafkaOptions, KafkaSecurity};
pub use local_broker::{LocalBroker, tansu_binary};
pub use partitioner::{murmur2, partition_for};

use std::sync::Arc;
use std::time::Duration;

/// Returns the time now in ms since the epoch (outside the pure domain, time comes from here;
/// the journal re-exports it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A header name: borrowed where it is a constant, interned when read back (see [`intern`]).
pub type HeaderName = std::borrow::Cow<'static, str>;

/// Record headers: name and raw value, in order.
pub type Headers = Vec<(HeaderName, Vec<u8>)>;

/// A record to append.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
    /// Value.
    pub value: Vec<u8>,
}

impl Record {
    /// The bytes this record takes in a broker's batch, a little over the exact figure: key,
    /// value, headers, and the per-record framing (lengths, offsets, timestamps as varints).
    pub fn wire_bytes(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        self.key.as_ref().map_or(0, Vec::len) + self.value.len() + headers + RECORD_OVERHEAD
    }
}

/// Per-record framing over key, value and headers (Kafka's record format v2: at most ~30 bytes).
pub const RECORD_OVERHEAD: usize = 32;
/// What a batch adds around its records (Kafka: 61 bytes of batch header).
pub const BATCH_OVERHEAD: usize = 64;

/// A record read back, with its place in the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Offset in the partition.
    pub offset: u64,
    /// When it was appended (ms since the epoch).
    pub timestamp_ms: i64,
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
    /// Value.
    pub value: Vec<u8>,
}

/// A consumer group's position in a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The next offset to read.
    pub offset: u64,
    /// What the consumer needs to resume there (e.g. the owner epoch in force).
    pub metadata: String,
}

impl Position {
    /// A position with no metadata.
    pub fn at(offset: u64) -> Self {
        Self { offset, metadata: String::new() }
    }
}

/// Where an append landed: the offsets of its first and last records.
///
/// Over Kafka another producer may write between the records of one append, so they are
/// contiguous only where the partition has a single writer; [`Appended::is_contiguous`] tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record.
    pub first: u64,
    /// Offset of the last record.
    pub last: u64,
    /// How many records were appended.
    pub count: u64,
}

impl Appended {
    /// `count` records at offsets `first..first + count`.
    pub fn contiguous(first: u64, count: u64) -> Self {
        Self { first, last: (first + count).saturating_sub(1).max(first), count }
    }

    /// Whether no other producer's record landed between ours.
    pub fn is_contiguous(&self) -> bool {
        self.count == 0 || self.last - self.first + 1 == self.count
    }

    /// The offset after the last record.
    pub fn next(&self) -> u64 {
        if self.count == 0 { self.first } else { self.last + 1 }
    }
}

/// How long a topic keeps its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// For ever: the source of truth (`events`) and what cannot be derived again.
    Forever,
    /// At least this long; then the log may drop them (Kafka: `retention.ms`).
    For(Duration),
    /// The last record of each key is kept for ever, older ones may go (Kafka:
    /// `cleanup.policy=compact`).
    Compacted,
}

/// A partitioned, append-only log.
///
/// Offsets of a partition start at 0 and are contiguous. An append of several records is
/// all-or-nothing in the embedded log; readers that need atomic groups over Kafka frame them
/// themselves (the aggregator's decisions do).
pub trait EventLog: Send + Sync {
    /// Creates a topic with `partitions` partitions; does nothing if it exists with that count.
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError>;
    /// Creates a topic like [`EventLog::create_topic`], keeping its records as `retention` says.
    /// A topic that exists keeps the retention it has (change it with the broker's tools). A
    /// log without retention (the embedded one) keeps everything, which is always safe.
    fn create_topic_retained(&self, topic: &str, partitions: u32, retention: Retention) -> Result<(), LogError> {
        let _ = retention;
        self.create_topic(topic, partitions)
    }
    /// Returns the partition count of a topic.
    fn partitions(&self, topic: &str) -> Result<u32, LogError>;
    /// The largest record a topic takes ([`Record::wire_bytes`] plus [`BATCH_OVERHEAD`]), where
    /// the backend knows (Kafka: the topic's `max.message.bytes` as the broker reports it).
    /// Larger records fail their append with [`LogError::BatchTooLarge`]; writers that decide
    /// what to append (the aggregator) refuse them before.
    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, LogError>;
    /// Appends records to a partition and returns where they landed.
    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError>;
    /// Appends batches to several partitions of a topic (each batch as [`EventLog::append`]);
    /// a backend with round trips overlaps them.
    fn append_all(&self, topic: &str, batches: &[(u32, Vec<Record>)]) -> Result<Vec<Appended>, LogError> {
        batches.iter().map(|(p, records)| self.append(topic, *p, records)).collect()
    }
    /// Appends batches to partitions of any topics as one writer, `writer` (a stable name: one
    /// process at a time writes as it). On Kafka this is a transaction (`transactional.id` =
    /// `writer`): every record or none becomes visible to `read_committed` readers (every reader
    /// of visionlog's, and librdkafka's default), and a newer writer of the same name fences an
    /// older one, whose later calls fail. A backend of one process (the file log) has no older
    /// writer to fence and appends the batches one after another: a crash between them leaves a
    /// prefix, which callers that resume from the tails of what they wrote cover.
    fn append_as(&self, writer: &str, batches: &[(&str, u32, Vec<Record>)]) -> Result<(), LogError> {
        let _ = writer;
        for (topic, partition, records) in batches {
            if !records.is_empty() {
                self.append(topic, *partition, records)?;
            }
        }
        Ok(())
    }
    /// Reads up to `max` records from offset `from` on: fewer at the end of the partition, and
    /// a backend that fetches over the network may return fewer before it (Kafka: what its
    /// fetches brought within a short linger, none while it reconnects); read on (see
    /// `visionlog_journal::read_held` for reads of records known to be there).
    fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError>;
    /// Returns the offset the next append will get.
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError>;
    /// Returns the first offset still held (0 until retention drops records; Kafka's low
    /// watermark). Reads below it return what is held from it on.
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError>;
    /// Drops the records below `offset` (retention, once they are safe elsewhere: see the
    /// tiering service); a backend may keep a few more (whole segments). Returns the new start.
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, LogError>;
    /// Waits until the partition has a record at `offset` (or the timeout); tells which.
    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, LogError>;
    /// Stores a consumer group's position (the next offset to read) with opaque metadata (as
    /// Kafka's offset commit does).
    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), LogError>;
    /// Returns a consumer group's stored position.
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, LogError>;
    /// Makes every append so far durable (whatever the fsync policy).
    fn flush(&self) -> Result<(), LogError>;
    /// Joins `group` as a member sharing the partitions of `topic` (see [`GroupMember`]).
    fn join_group(
        &self,
        group: &str,
        topic: &str,
        handler: Arc<dyn Rebalance>,
    ) -> Result<Box<dyn GroupMember>, LogError>;
}

/// Opens a log by URL: `file:///path` for the embedded log, `kafka://host:port[,host:port]`.
pub fn open(url: &str, options: FileLogOptions) -> Result<Arc<dyn EventLog>, LogError> {
    // kafka URLs hold several host:port pairs, which a URL parser refuses: split them by hand
    if let Some(rest) = url.strip_prefix("kafka://") {
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        // kafka://user[:password]@host:port,...: SASL credentials (percent-encoded)
        let (userinfo, hosts) = match hosts.rsplit_once('@') {
            Some((info, hosts)) => {
                let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
                let (user, password) = info.split_once(':').map_or((info, None), |(u, p)| (u, Some(p)));
                (Some((decode(user), password.map(decode))), hosts)
            }
            None => (None, hosts),
        };
        if hosts.is_empty()
            || hosts.split(',').any(|h| h.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()))
        {
            return Err(LogError::Config(format!("kafka url {url:?}: needs host:port[,host:port]")));
        }
        let pairs = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()));
        let options = KafkaOptions::from_url(userinfo, pairs, |name| std::env::var(name).ok())?;
        return Ok(Arc::new(KafkaLog::connect_with(hosts, options)?));
    }
    let parsed = url::Url::parse(url).map_err(|e| LogError::Config(format!("log url {url:?}: {e}")))?;
    match parsed.scheme() {
        "file" => {
            let path =
                parsed.to_file_path().map_err(|()| LogError::Config(format!("log url {url:?} has no usable path")))?;
            Ok(Arc::new(FileLog::open(&path, options)?))
        }
        other => Err(LogError::Config(format!("unsupported log scheme {other:?} (supported: file, kafka)"))),
    }
}
