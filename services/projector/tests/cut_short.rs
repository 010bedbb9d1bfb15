//! A projector write cut short (the store failed after the rows of a batch, before its states),
//! then retried in smaller batches, as a Kafka client hands them when records arrive slowly:
//! no row of a state the task has left stays in the views.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::*;
use visionlog_journal::{DecisionOrigin, Subscription, Topics, claim_record, consume_until, event_record};
use visionlog_log::{
    Appended, EventLog, FileLog, FileLogOptions, GroupMember, LogError, LogRecord, Position, Rebalance, Record,
};
use visionlog_projector::Projector;
use visionlog_store::{EmbeddedStore, Put, PutOutcome, ReadStore, Row, StoreError, for_each_row};
use visionlog_views::generations::table;
use visionlog_views::views::{TASK_STATE, TASKS_BY_STATUS};

/// The file log, handing at most the next of `caps` records per read (then any number).
struct Trickle {
    inner: FileLog,
    caps: Mutex<VecDeque<usize>>,
}

impl EventLog for Trickle {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        self.inner.create_topic(topic, partitions)
    }
    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        self.inner.partitions(topic)
    }
    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, LogError> {
        self.inner.max_record_bytes(topic)
    }
    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError> {
        self.inner.append(topic, partition, records)
    }
    fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        let cap = if max > 1 { self.caps.lock().unwrap().pop_front().unwrap_or(max) } else { max };
        self.inner.read(topic, partition, from, max.min(cap))
    }
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        self.inner.end_offset(topic, partition)
    }
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        self.inner.start_offset(topic, partition)
    }
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        self.inner.drop_before(topic, partition, offset)
    }
    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        self.inner.wait_for(topic, partition, offset, timeout)
    }
    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), LogError> {
        self.inner.commit(group, topic, partition, position)
    }
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, LogError> {
        self.inner.committed(group, topic, partition)
    }
    fn flush(&self) -> Result<(), LogError> {
        self.inner.flush()
    }
    fn join_group(&self, group: &str, topic: &str, h: Arc<dyn Rebalance>) -> Result<Box<dyn GroupMember>, LogError> {
        self.inner.join_group(group, topic, h)
    }
}

/// The embedded store, failing the first call that writes task states (after the call with the
/// batch's rows went through).
struct FailsStatesOnce {
    inner: EmbeddedStore,
    failed: Mutex<bool>,
}

impl ReadStore for FailsStatesOnce {
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        let states = puts.iter().any(|p| p.table == table(TASK_STATE, 1));
        let mut failed = self.failed.lock().unwrap();
        if states && !*failed {
            *failed = true;
            return Err(StoreError::Backend("the CQL node went away".into()));
        }
        self.inner.put(puts)
    }
    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError> {
        self.inner.get(table, partition, clustering)
    }
    fn scan_partition(&self, t: &str, p: &str, after: Option<&str>, n: usize) -> Result<Vec<Row>, StoreError> {
        self.inner.scan_partition(t, p, after, n)
    }
    fn scan_table(&self, t: &str, after: Option<(&str, &str)>, n: usize) -> Result<Vec<Row>, StoreError> {
        self.inner.scan_table(t, after, n)
    }
    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError> {
        self.inner.erase(table, partition, clustering)
    }
    fn drop_table(&self, table: &str) -> Result<(), StoreError> {
        self.inner.drop_table(table)
    }
}

fn event(codec: &Codec, version: u64, event: &TaskEvent) -> Record {
    let envelope = EventEnvelope {
        event_id: format!("e{version}"),
        task_id: "t1".into(),
        version,
        event_type: event.type_name().into(),
        occurred_at_ms: 1_000,
        recorded_at_ms: 1_000 + version as i64,
        correlation_id: "c".into(),
        causation_id: format!("c{version}"),
        actor: "service:test".into(),
        tenant: "acme".into(),
    };
    let command_id = format!("c{version}");
    let origin = DecisionOrigin {
        command_id: &command_id,
        command_type: "X",
        command_offset: version,
        epoch: 1,
        trace_parent: None,
    };
    event_record(&envelope, codec.encode_event(event).unwrap(), origin, 0, 1)
}

#[test]
fn a_write_cut_short_and_retried_in_smaller_batches_leaves_no_stale_row() {
    let dir = tempfile::tempdir().unwrap();
    let codec = Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap();
    let topics = Topics::new("t", 1);
    let inner = FileLog::open(&dir.path().join("log"), FileLogOptions::default()).unwrap();
    topics.create(&inner).unwrap();
    let created = TaskEvent::TaskCreated(TaskCreated {
        customer: CustomerId::from("acme"),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: "k".into(), classes: vec![ProductClass { id: 1, name: "a".into() }] },
        images: vec![ImageRef { uri: "store://images/a.png".into(), width: 10, height: 10 }],
        callback_url: None,
        personal: None,
    });
    let events = [
        created,
        TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }),
        TaskEvent::ModelNotFound(ModelNotFound { step: "detection".into(), class_group_key: "k".into() }),
        TaskEvent::TaskCancelled(TaskCancelled { reason: "no model".into() }),
    ];
    let mut records = vec![claim_record(1, "a")];
    records.extend(events.iter().enumerate().map(|(i, e)| event(&codec, i as u64 + 1, e)));
    inner.append(&topics.events, 0, &records).unwrap();
    // the first read reaches the third event (its rows are written, its state is not); the
    // retry reads three records, then the rest
    let log = Trickle { inner, caps: Mutex::new(VecDeque::from([4, 3])) };
    let store = Arc::new(FailsStatesOnce {
        inner: EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
        failed: Mutex::new(false),
    });
    let mut projector = Projector::new(store.clone(), 1);
    let sub = Subscription { log: &log, codec: &codec, topics: &topics, group: "projector.g1", partition: 0 };
    consume_until(sub, &mut projector, 5, 512, &AtomicBool::new(false)).unwrap();
    assert!(*store.failed.lock().unwrap(), "the states' write failed once");

    let mut by_status = Vec::new();
    for_each_row(store.as_ref(), &table(TASKS_BY_STATUS, 1), |r| {
        by_status.push(r.partition);
        Ok(())
    })
    .unwrap();
    assert_eq!(by_status, ["acme|cancelled"], "only the status the task is in");
}
