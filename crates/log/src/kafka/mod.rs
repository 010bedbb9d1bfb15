//! The log on Kafka (any Kafka-protocol broker), with `rdkafka`.
//!
//! Topics are created with the admin API when missing. Appends go through an idempotent
//! producer to an explicit partition (callers place keys with [`crate::partition_for`], Kafka's
//! own murmur2); the offsets come from the delivery reports. Reads assign a consumer to one
//! partition at an offset. Consumer-group positions are Kafka offset commits, with metadata.
//!
//! Some brokers report a wrong high watermark after multi-record batches (tansu 0.6 does), so
//! [`EventLog::end_offset`] takes the watermark only as a starting point and reads on from it.

use crate::{Appended, EventLog, GroupMember, HeaderName, LogError, LogRecord, Position, Rebalance, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod group;
mod options;

pub use options::{KafkaOptions, KafkaSecurity};

/// Readers of one partition: as many as have read it at the same time.
type ReaderPool = Vec<Arc<Mutex<Reader>>>;

/// A consumer assigned to one partition, and where it will read next.
struct Reader {
    consumer: BaseConsumer,
    next: Option<u64>,
}

/// How long one broker request may take before the call fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits for its first record.
const READ_PATIENCE: Duration = Duration::from_millis(200);
/// Once a read has records, how long it waits for the next before it returns what it has: the
/// consumer fetches ahead, so a gap this long means the fetched data is used up. Longer gaps
/// cost latency: a command waited for the batch around it to end (p50 355 ms at 50 ms here).
const READ_LINGER: Duration = Duration::from_millis(2);
/// How long the search for the true end waits for more (the watermark may lag).
const END_LINGER: Duration = Duration::from_millis(50);

/// The log on a Kafka cluster.
pub struct KafkaLog {
    bootstrap: String,
    options: KafkaOptions,
    producer: FutureProducer<Context>,
    admin: AdminClient<Context>,
    /// What the producer and admin clients last reported.
    context: Context,
    /// One consumer per group, for commits and committed offsets.
    consumers: Mutex<HashMap<String, BaseConsumer>>,
    /// Reading consumers per topic and partition: a read takes a free one, preferably one
    /// positioned where it reads (which keeps what it fetched ahead). Readers never wait for each
    /// other, and the pool is as large as the most concurrent reads of a partition, however
    /// many threads come and go (workers restart on every rebalance).
    readers: Mutex<HashMap<(String, u32), ReaderPool>>,
    /// Partition counts seen (partitions are only ever added, never removed).
    partition_counts: Mutex<HashMap<String, u32>>,
    /// Transactional producers, by `transactional.id` ([`EventLog::append_as`]).
    writers: Mutex<HashMap<String, Arc<FutureProducer<Context>>>>,
    /// The largest record each topic takes, as the broker reported it.
    /// (`None`: the broker answered without one; asked once, not on every append.)
    record_limits: Mutex<HashMap<String, Option<usize>>>,
}

/// Errors a consumer's queue carries while brokers are unreachable; the client reconnects by
/// itself and the position is unchanged.
fn connection_event(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(code, C::BrokerTransportFailure | C::AllBrokersDown | C::OperationTimedOut | C::Resolve)
}

/// Remembers what a client last reported: librdkafka reports failed authentication and TLS
/// handshakes here, while the call they broke only times out; a failed call then says why.
#[derive(Clone, Default)]
struct Context {
    last_error: Arc<Mutex<Option<(Instant, String)>>>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client");
        let mut last = self.last_error.lock().expect("last error");
        // "all brokers are down" follows the failure that says why: keep that one
        let summary = error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown);
        if !summary || last.as_ref().is_none_or(|(at, _)| at.elapsed().as_secs() >= 60) {
            *last = Some((Instant::now(), reason.to_owned()));
        }
    }
}

impl Context {
    /// A failed call's error, with what the client reported in the last minute (if anything).
    fn explain(&self, what: &str, e: KafkaError) -> LogError {
        let recent = self.last_error.lock().expect("last error").clone().filter(|(at, _)| at.elapsed().as_secs() < 60);
        match recent {
            Some((_, reason)) => LogError::Io {
                path: what.to_owned(),
                source: std::io::Error::other(format!("{e} (the client reports: {reason})")),
            },
            None => kafka_err(what, e),
        }
    }
}

fn kafka_err(what: &str, e: KafkaError) -> LogError {
    LogError::Io { path: what.to_owned(), source: std::io::Error::other(e.to_string()) }
}

/// A producer's settings on top of the client's: the shared producer and every writer's.
fn producer_config(mut config: rdkafka::ClientConfig) -> rdkafka::ClientConfig {
    config
        .set("enable.idempotence", "true")
        // acknowledged only once every in-sync replica has it (idempotence needs it too; said
        // explicitly so that no client default can weaken it)
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        // the topics' `max.message.bytes` bound records (the broker says; see `send`), not a
        // client default of 1 MB
        .set("message.max.bytes", PRODUCER_MAX_REQUEST.to_string());
    config
}

/// Whether a transactional producer was fenced by a newer one of its `transactional.id`.
fn fenced(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e {
        KafkaError::Transaction(rd) => rd.is_fatal() || matches!(rd.code(), C::ProducerFenced | C::Fenced),
        _ => matches!(e.rdkafka_error_code(), Some(C::ProducerFenced | C::Fenced)),
    }
}

/// The largest produce request the producer builds; topics bound single records lower.
const PRODUCER_MAX_REQUEST: usize = 64 * 1024 * 1024;

/// A failed produce: a record too large for the topic is [`LogError::BatchTooLarge`] (the
/// writer must not send it again), anything else a transient I/O error.
fn produce_err(topic: &str, record: &Record, e: KafkaError) -> LogError {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => {
            LogError::BatchTooLarge { size: record.wire_bytes(), max: None }
        }
        _ => kafka_err(topic, e),
    }
}

impl KafkaLog {
    /// Connects to `host:port[,host:port]` with default options.
    pub fn connect(bootstrap: &str) -> Result<Self, LogError> {
        Self::connect_with(bootstrap, KafkaOptions::default())
    }

    /// Connects to `host:port[,host:port]`.
    pub fn connect_with(bootstrap: &str, options: KafkaOptions) -> Result<Self, LogError> {
        let config = options::client_config(bootstrap, &options);
        let context = Context::default();
        let producer: FutureProducer<Context> = producer_config(config.clone())
            .create_with_context(context.clone())
            .map_err(|e| kafka_err("creating the producer", e))?;
        let admin =
            config.create_with_context(context.clone()).map_err(|e| kafka_err("creating the admin client", e))?;
        Ok(Self {
            bootstrap: bootstrap.to_owned(),
            options,
            producer,
            admin,
            context,
            consumers: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            partition_counts: Mutex::new(HashMap::new()),
            writers: Mutex::new(HashMap::new()),
            record_limits: Mutex::new(HashMap::new()),
        })
    }

    /// The transactional producer of `writer`, made and registered with the brokers (which
    /// fences any older producer of that id) on first use.
    fn writer(&self, writer: &str) -> Result<Arc<FutureProducer<Context>>, LogError> {
        if let Some(p) = self.writers.lock().expect("writers").get(writer) {
            return Ok(p.clone());
        }
        let producer: FutureProducer<Context> = producer_config(options::client_config(&self.bootstrap, &self.options))
            .set("transactional.id", writer)
            .set("transaction.timeout.ms", "60000")
            .create_with_context(self.context.clone())
            .map_err(|e| kafka_err("creating a transactional producer", e))?;
        producer.init_transactions(REQUEST_TIMEOUT * 3).map_err(|e| self.context.explain(writer, e))?;
        let producer = Arc::new(producer);
        self.writers.lock().expect("writers").insert(writer.to_owned(), producer.clone());
        Ok(producer)
    }

    /// One transaction of [`EventLog::append_as`]; on failure the caller aborts or drops it.
    fn transact(
        &self,
        producer: &FutureProducer<Context>,
        batches: &[(&str, u32, Vec<Record>)],
    ) -> Result<(), LogError> {
        let txn_err = |what: &str, e: KafkaError| {
            if fenced(&e) { LogError::Fenced(what.to_owned()) } else { kafka_err(what, e) }
        };
        producer.begin_transaction().map_err(|e| txn_err("beginning a transaction", e))?;
        let mut sent = Vec::with_capacity(batches.len());
        for (topic, partition, records) in batches.iter().filter(|(_, _, records)| !records.is_empty()) {
            self.fit(topic, records)?;
            sent.push((topic, *partition, self.send_via(producer, topic, *partition, records)?));
        }
        // commit flushes what is in flight first; a record that failed fails the commit
        producer.commit_transaction(REQUEST_TIMEOUT * 3).map_err(|e| txn_err("committing a transaction", e))?;
        for (topic, partition, deliveries) in sent {
            self.settle(topic, partition, deliveries)?;
        }
        Ok(())
    }

    /// A topic's configuration value as the broker reports it (`min.insync.replicas`, say).
    pub fn topic_config(&self, topic: &str, key: &str) -> Result<Option<String>, LogError> {
        use rdkafka::admin::ResourceSpecifier;
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results =
            futures_executor::block_on(self.admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
                .map_err(|e| self.context.explain("describing a topic", e))?;
        for r in results {
            let resource = r.map_err(|code| LogError::Config(format!("describing topic {topic}: {code}")))?;
            if let Some(entry) = resource.get(key) {
                return Ok(entry.value.clone());
            }
        }
        Ok(None)
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer, LogError> {
        options::client_config(&self.bootstrap, &self.options)
            .set("group.id", if group.is_empty() { "visionlog-reader" } else { group })
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "20")
            .set("session.timeout.ms", "6000")
            .create()
            .map_err(|e| kafka_err("creating a consumer", e))
    }

    /// Checks a partition exists, from the cache of partition counts when it can.
    fn check_partition(&self, topic: &str, partition: u32) -> Result<(), LogError> {
        let known = self.partition_counts.lock().expect("partition counts").get(topic).copied();
        let count = match known {
            Some(n) if partition < n => n,
            _ => {
                let n = self.partitions(topic)?;
                self.partition_counts.lock().expect("partition counts").insert(topic.to_owned(), n);
                n
            }
        };
        if partition >= count {
            return Err(LogError::UnknownPartition { topic: topic.to_owned(), partition });
        }
        Ok(())
    }

    fn with_consumer<T>(
        &self,
        group: &str,
        f: impl FnOnce(&BaseConsumer) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let mut consumers = self.consumers.lock().expect("consumers lock");
        if !consumers.contains_key(group) {
            let c = self.consumer(group)?;
            consumers.insert(group.to_owned(), c);
        }
        f(consumers.get(group).expect("just inserted"))
    }

    fn reader(&self, topic: &str, partition: u32, from: u64) -> Result<Arc<Mutex<Reader>>, LogError> {
        let mut readers = self.readers.lock().expect("readers lock");
        let pool = readers.entry((topic.to_owned(), partition)).or_default();
        let mut free = None;
        for r in pool.iter() {
            let Ok(reader) = r.try_lock() else { continue };
            if reader.next == Some(from) {
                return Ok(r.clone());
            }
            free.get_or_insert_with(|| r.clone());
        }
        if let Some(r) = free {
            return Ok(r);
        }
        let reader = Arc::new(Mutex::new(Reader { consumer: self.consumer("")?, next: None }));
        pool.push(reader.clone());
        Ok(reader)
    }

    /// Checks that each record fits the topic, before anything of an append is sent; returns
    /// what one request to the topic may hold, and whether all of `records` fit in one.
    fn fit(&self, topic: &str, records: &[Record]) -> Result<(usize, bool), LogError> {
        let Some(max) = self.max_record_bytes(topic)? else { return Ok((usize::MAX, true)) };
        let mut total = crate::BATCH_OVERHEAD;
        for r in records {
            let size = r.wire_bytes();
            if size + crate::BATCH_OVERHEAD > max {
                return Err(LogError::BatchTooLarge { size: size + crate::BATCH_OVERHEAD, max: Some(max) });
            }
            total += size;
        }
        Ok((max, total <= max))
    }

    /// Hands records to the producer; their delivery reports come later.
    fn send(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Vec<DeliveryFuture>, LogError> {
        self.send_via(&self.producer, topic, partition, records)
    }

    /// Hands records to `producer` (the shared one, or a writer's transactional one).
    fn send_via(
        &self,
        producer: &FutureProducer<Context>,
        topic: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<Vec<DeliveryFuture>, LogError> {
        self.check_partition(topic, partition)?;
        let mut deliveries = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                headers = headers.insert(Header { key: name, value: Some(value) });
            }
            let mut record =
                FutureRecord::<[u8], [u8]>::to(topic).partition(partition as i32).payload(&r.value).headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            deliveries.push(producer.send_result(record).map_err(|(e, _)| produce_err(topic, r, e))?);
        }
        Ok(deliveries)
    }

    /// Waits for the delivery reports of one append and says where it landed.
    fn settle(&self, topic: &str, partition: u32, deliveries: Vec<DeliveryFuture>) -> Result<Appended, LogError> {
        let mut offsets = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let delivered =
                futures_executor::block_on(d).map_err(|_| LogError::Config("producer dropped a delivery".into()))?;
            let delivery = delivered.map_err(|(e, m)| {
                let size = m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
                produce_err(topic, &Record { key: None, headers: Vec::new(), value: vec![0; size] }, e)
            })?;
            offsets.push(delivery.offset as u64);
        }
        match (offsets.first(), offsets.last()) {
            (Some(&first), Some(&last)) => Ok(Appended { first, last, count: offsets.len() as u64 }),
            _ => Ok(Appended::contiguous(self.end_offset(topic, partition)?, 0)),
        }
    }

    /// Reads from `from` until `max` records, or until none arrive for a while.
    fn read_from(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        patience: Duration,
        linger: Duration,
    ) -> Result<Vec<LogRecord>, LogError> {
        let reader = self.reader(topic, partition, from)?;
        let mut reader = reader.lock().expect("reader lock");
        if reader.next != Some(from) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition as i32, Offset::Offset(from as i64))
                .map_err(|e| kafka_err("assigning", e))?;
            reader.consumer.assign(&tpl).map_err(|e| kafka_err("assigning", e))?;
            reader.next = Some(from);
        }
        let mut out = Vec::new();
        let mut deadline = Instant::now() + patience;
        while out.len() < max {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some(message) = reader.consumer.poll(deadline - now) else { break };
            let m = match message {
                Ok(m) => m,
                // librdkafka reports a lost connection on every consumer's queue, and reconnects
                // by itself: not this read's failure (it returns what it has when time is up)
                Err(KafkaError::MessageConsumption(code)) if connection_event(code) => {
                    tracing::debug!(topic, partition, %code, "consumer connection event; reading on");
                    continue;
                }
                Err(e) => {
                    reader.next = None; // assign again on the next read
                    return Err(kafka_err(topic, e));
                }
            };
            if (m.offset() as u64) < from {
                continue;
            }
            let headers = m
                .headers()
                .map(|h| {
                    h.iter().map(|h| (crate::intern(h.key), h.value.unwrap_or_default().to_vec())).collect::<Vec<(
                        HeaderName,
                        Vec<u8>,
                    )>>(
                    )
                })
                .unwrap_or_default();
            out.push(LogRecord {
                offset: m.offset() as u64,
                timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                key: m.key().map(<[u8]>::to_vec),
                headers,
                value: m.payload().unwrap_or_default().to_vec(),
            });
            deadline = Instant::now() + linger;
        }
        reader.next = Some(out.last().map_or(from, |r| r.offset + 1));
        Ok(out)
    }
}

impl EventLog for KafkaLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        self.create_topic_retained(topic, partitions, crate::Retention::Forever)
    }

    fn create_topic_retained(&self, topic: &str, partitions: u32, retention: crate::Retention) -> Result<(), LogError> {
        match self.partitions(topic) {
            Ok(n) if n == partitions => return Ok(()),
            Ok(n) => {
                return Err(LogError::PartitionMismatch {
                    topic: topic.to_owned(),
                    existing: n,
                    requested: partitions,
                });
            }
            Err(LogError::UnknownTopic(_)) => {}
            // the brokers cannot be reached (or refuse us): say so, rather than create blindly
            Err(e) => return Err(e),
        }
        // the journal is the source of truth: Kafka must never delete it by age or size (tiering
        // to object storage, not retention, is how it shrinks), nor compact it; the topics that
        // are not (commands, outcomes, dead letters) say how long they are needed
        let min_insync = self.options.min_insync().to_string();
        let (retention_ms, policy) = match retention {
            crate::Retention::Forever => ("-1".to_owned(), "delete"),
            crate::Retention::For(d) => (d.as_millis().max(1).to_string(), "delete"),
            crate::Retention::Compacted => ("-1".to_owned(), "compact"),
        };
        let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(self.options.replication as i32))
            .set("retention.ms", &retention_ms)
            .set("retention.bytes", "-1")
            .set("cleanup.policy", policy)
            .set("min.insync.replicas", &min_insync);
        let max_message_bytes = self.options.max_message_bytes.map(|n| n.to_string());
        let new = match &max_message_bytes {
            Some(n) => new.set("max.message.bytes", n),
            None => new,
        };
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = futures_executor::block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| self.context.explain("creating a topic", e))?;
        for r in results {
            if let Err((name, code)) = r
                && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            {
                return Err(LogError::Config(format!("creating topic {name}: {code}")));
            }
        }
        // wait until the metadata shows it
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while self.partitions(topic).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.partitions(topic).map(|_| ())
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| self.context.explain(topic, e))?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as u32),
            _ => Err(LogError::UnknownTopic(topic.to_owned())),
        }
    }

    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, LogError> {
        if let Some(&max) = self.record_limits.lock().expect("record limits").get(topic) {
            return Ok(max);
        }
        // a broker without DescribeConfigs (tansu) leaves it unknown: it still refuses what is
        // too large, and the append fails
        let max = match self.topic_config(topic, "max.message.bytes") {
            Ok(Some(v)) => v.parse::<usize>().ok(),
            Ok(None) => None,
            Err(LogError::Config(reason)) => {
                tracing::debug!(topic, reason, "the broker does not say how large a record may be");
                None
            }
            Err(e) => return Err(e),
        };
        // what the broker answered is kept; a failure to ask (broker away) is asked again
        self.record_limits.lock().expect("record limits").insert(topic.to_owned(), max);
        Ok(max)
    }

    /// An append larger than the topic takes in one request goes in pieces that fit, each
    /// delivered before the next is sent (the producer would batch them into one too large);
    /// the usual append is one piece.
    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError> {
        let (max, _) = self.fit(topic, records)?;
        let mut landed: Option<Appended> = None;
        let mut rest = records;
        while !rest.is_empty() || landed.is_none() {
            let mut bytes = crate::BATCH_OVERHEAD;
            let fits = rest.iter().take_while(|r| {
                bytes += r.wire_bytes();
                bytes <= max
            });
            let n = fits.count().max(1).min(rest.len());
            let (piece, after) = rest.split_at(n);
            let deliveries = self.send(topic, partition, piece)?;
            let piece = self.settle(topic, partition, deliveries)?;
            landed = Some(match landed {
                None => piece,
                Some(a) => Appended { first: a.first, last: piece.last, count: a.count + piece.count },
            });
            rest = after;
        }
        Ok(landed.expect("at least one piece"))
    }

    fn append_as(&self, writer: &str, batches: &[(&str, u32, Vec<Record>)]) -> Result<(), LogError> {
        if batches.iter().all(|(_, _, records)| records.is_empty()) {
            return Ok(());
        }
        let producer = self.writer(writer)?;
        match self.transact(&producer, batches) {
            Ok(()) => Ok(()),
            Err(e) => {
                // nothing of it becomes visible. A fenced producer stays fenced (it is kept, so
                // every later call fails too: registering anew would fence the newer writer
                // back); another broken one is made anew by the next call
                if matches!(e, LogError::Fenced(_)) {
                    return Err(LogError::Fenced(writer.to_owned()));
                }
                if let Err(abort) = producer.abort_transaction(REQUEST_TIMEOUT) {
                    if fenced(&abort) {
                        return Err(LogError::Fenced(writer.to_owned()));
                    }
                    self.writers.lock().expect("writers").remove(writer);
                }
                Err(e)
            }
        }
    }

    fn append_all(&self, topic: &str, batches: &[(u32, Vec<Record>)]) -> Result<Vec<Appended>, LogError> {
        let mut one_piece_each = true;
        for (_, records) in batches {
            one_piece_each &= self.fit(topic, records)?.1;
        }
        if !one_piece_each {
            return batches.iter().map(|(p, records)| self.append(topic, *p, records)).collect();
        }
        // every batch in flight at once: one wait for all partitions, not one each
        let sent = batches.iter().map(|(p, records)| self.send(topic, *p, records)).collect::<Result<Vec<_>, _>>()?;
        batches.iter().zip(sent).map(|((p, _), deliveries)| self.settle(topic, *p, deliveries)).collect()
    }

    fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        self.check_partition(topic, partition)?;
        self.read_from(topic, partition, from, max, READ_PATIENCE, READ_LINGER)
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        self.check_partition(topic, partition)?;
        let (low, _) = self.with_consumer("", |c| {
            c.fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT).map_err(|e| kafka_err(topic, e))
        })?;
        Ok(low.max(0) as u64)
    }

    /// Kafka's DeleteRecords: the low watermark moves to `offset`; the broker frees whole
    /// segments below it.
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        self.check_partition(topic, partition)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition as i32, Offset::Offset(offset as i64))
            .map_err(|e| kafka_err(topic, e))?;
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let result = futures_executor::block_on(self.admin.delete_records(&tpl, &options))
            .map_err(|e| kafka_err("deleting records", e))?;
        for e in result.elements() {
            e.error().map_err(|e| kafka_err("deleting records", e))?;
        }
        self.start_offset(topic, partition)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let (_, high) = self.with_consumer("", |c| {
            c.fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT).map_err(|e| kafka_err(topic, e))
        })?;
        let high = high.max(0) as u64;
        // the watermark may lag the last batch: read on from the last record it admits
        let mut end = high.saturating_sub(1);
        let mut found = false;
        loop {
            let got = self.read_from(topic, partition, end, 4096, READ_PATIENCE, END_LINGER)?;
            let Some(last) = got.last() else { break };
            found = true;
            end = last.offset + 1;
            if got.len() < 4096 {
                break;
            }
        }
        Ok(if found { end } else { high })
    }

    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        Ok(!self.read_from(topic, partition, offset, 1, timeout, READ_LINGER)?.is_empty())
    }

    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), LogError> {
        self.with_consumer(group, |c| {
            let mut tpl = TopicPartitionList::new();
            let mut element = tpl.add_partition(topic, partition as i32);
            element.set_offset(Offset::Offset(position.offset as i64)).map_err(|e| kafka_err("commit", e))?;
            element.set_metadata(position.metadata.clone());
            c.commit(&tpl, CommitMode::Sync).map_err(|e| kafka_err("commit", e))
        })
    }

    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, LogError> {
        self.with_consumer(group, |c| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition as i32);
            let got = c.committed_offsets(tpl, REQUEST_TIMEOUT).map_err(|e| kafka_err("committed offsets", e))?;
            let element = got.find_partition(topic, partition as i32);
            Ok(element.and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(Position { offset: o as u64, metadata: e.metadata().to_owned() }),
                _ => None,
            }))
        })
    }

    fn flush(&self) -> Result<(), LogError> {
        self.producer.flush(REQUEST_TIMEOUT).map_err(|e| kafka_err("flush", e))
    }

    fn join_group(
        &self,
        group: &str,
        topic: &str,
        handler: Arc<dyn Rebalance>,
    ) -> Result<Box<dyn GroupMember>, LogError> {
        self.check_partition(topic, 0)?;
        group::join(&self.bootstrap, group, topic, &self.options, handler)
    }
}
