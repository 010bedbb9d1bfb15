//! The journal, as each tenant's output topic of its tasks' events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use visionlog_codec::envelope::names;
use visionlog_journal::{ConsumeError, Decision, EventHandler, HandledEvent, Topics};
use visionlog_log::{EventLog, LogError, Record};

/// The consumer group whose positions say how far the journal was published.
pub const PUBLISHER_GROUP: &str = "tenant-publisher";

/// Header of each published record: the offset in `events` it comes from.
pub const JOURNAL_OFFSET: &str = "vl.journal_offset";

/// How far back a tail is searched at first (it doubles until a record names its offset).
const TAIL_WINDOW: u64 = 64;

/// Publishes one partition of the journal to the tenants' output topics.
pub struct Publisher {
    log: Arc<dyn EventLog>,
    topics: Topics,
    tenants: HashSet<String>,
    partition: u32,
    /// The journal offset each tenant's topic holds last, once read from its tail.
    published: Option<HashMap<String, u64>>,
    /// Records to write at the next flush, by tenant, with the journal offset of the last.
    pending: BTreeMap<String, (Vec<Record>, u64)>,
}

/// The journal offset of the last record of `topic`'s partition that names one, reading back
/// from its end (markers of committed transactions take offsets too).
pub fn last_published(log: &dyn EventLog, topic: &str, partition: u32) -> Result<Option<u64>, LogError> {
    let (start, end) = (log.start_offset(topic, partition)?, log.end_offset(topic, partition)?);
    let mut window = TAIL_WINDOW;
    let mut to = end;
    while to > start {
        let from = to.saturating_sub(window).max(start);
        let mut last = None;
        let mut next = from;
        while next < to {
            // not `read_held`: the offsets up to the end may all be transaction markers
            let records = log.read(topic, partition, next, (to - next) as usize)?;
            let Some(r) = records.last() else { break };
            next = r.offset + 1;
            for r in records.iter().filter(|r| r.offset < to) {
                if let Some(v) = visionlog_codec::envelope::get(&r.headers, JOURNAL_OFFSET) {
                    let offset = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                    last = offset.or(last);
                }
            }
        }
        if last.is_some() {
            return Ok(last);
        }
        to = from;
        window *= 2;
    }
    Ok(None)
}

impl Publisher {
    /// Publishes the tasks of `tenants` (ids of the tenants file); others are not published.
    pub fn new(log: Arc<dyn EventLog>, topics: Topics, tenants: impl IntoIterator<Item = String>) -> Self {
        Self {
            log,
            topics,
            tenants: tenants.into_iter().collect(),
            partition: 0,
            published: None,
            pending: BTreeMap::new(),
        }
    }

    /// The writer name of this partition's flushes: one per journal topic and partition.
    fn writer(&self) -> String {
        format!("{}.tenant-publisher.{}", self.topics.events, self.partition)
    }

    /// Whether the journal record at `offset` goes to `tenant`'s topic: a declared tenant whose
    /// topic does not hold it yet.
    fn wanted(&mut self, tenant: &str, offset: u64) -> Result<bool, ConsumeError> {
        if !self.tenants.contains(tenant) {
            return Ok(false);
        }
        if self.published.is_none() {
            let mut published = HashMap::new();
            for t in &self.tenants {
                let topic = self.topics.tenant_events(t);
                if let Some(offset) = last_published(self.log.as_ref(), &topic, self.partition)? {
                    published.insert(t.clone(), offset);
                }
            }
            self.published = Some(published);
        }
        let held = self.published.as_ref().and_then(|p| p.get(tenant)).copied();
        Ok(held.is_none_or(|held| offset > held))
    }
}

impl Publisher {
    /// Queues a record of `tenant`'s topic, from journal offset `offset`, for the next flush.
    fn queue(&mut self, tenant: &str, record: Record, offset: u64) {
        let (records, last) = self.pending.entry(tenant.to_owned()).or_default();
        records.push(record);
        *last = offset;
    }
}

impl EventHandler for Publisher {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        if !self.wanted(&e.envelope.tenant, e.offset)? {
            return Ok(());
        }
        let mut headers: visionlog_log::Headers = vec![(names::KIND.into(), b"event".to_vec())];
        e.envelope.write_headers(&mut headers);
        headers.push((JOURNAL_OFFSET.into(), e.offset.to_string().into_bytes()));
        let record = Record { key: Some(e.envelope.task_id.as_bytes().to_vec()), headers, value: e.payload.to_vec() };
        self.queue(&e.envelope.tenant, record, e.offset);
        Ok(())
    }

    fn rejected(&mut self, _partition: u32, d: &Decision, outcome: &[u8]) -> Result<(), ConsumeError> {
        let Some(tenant) = d.tenant.clone() else { return Ok(()) };
        if !self.wanted(&tenant, d.first_offset)? {
            return Ok(());
        }
        let headers = vec![
            (names::KIND.into(), b"rejection".to_vec()),
            (names::TASK_ID.into(), d.task_id.as_bytes().to_vec()),
            (names::COMMAND_ID.into(), d.command_id.as_bytes().to_vec()),
            (names::TYPE.into(), d.command_type.as_bytes().to_vec()),
            (JOURNAL_OFFSET.into(), d.first_offset.to_string().into_bytes()),
        ];
        let record = Record { key: Some(d.task_id.as_bytes().to_vec()), headers, value: outcome.to_vec() };
        self.queue(&tenant, record, d.first_offset);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConsumeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let topics: Vec<String> = pending.keys().map(|t| self.topics.tenant_events(t)).collect();
        let (lasts, batches): (Vec<(String, u64)>, Vec<_>) = topics
            .iter()
            .zip(pending)
            .map(|(topic, (tenant, (records, last)))| ((tenant, last), (topic.as_str(), self.partition, records)))
            .unzip();
        match self.log.append_as(&self.writer(), &batches) {
            Ok(()) => {}
            // a newer publisher of this partition took over: this one stops
            Err(e @ LogError::Fenced(_)) => return Err(ConsumeError::Log(e)),
            // nothing (Kafka) or a prefix (one process) landed: read the tails again, go again
            Err(e) => {
                self.published = None;
                return Err(ConsumeError::Transient(format!("publishing to the tenants' topics: {e}")));
            }
        }
        self.published.get_or_insert_with(HashMap::new).extend(lasts);
        Ok(())
    }

    fn holding(&self) -> bool {
        !self.pending.is_empty()
    }

    fn resumed_at(&mut self, partition: u32, _offset: u64) {
        // the tails are read again (lazily) whenever the loop starts over
        self.partition = partition;
        self.published = None;
        self.pending.clear();
    }
}
