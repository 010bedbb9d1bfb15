//! The behaviour every [`EventLog`] backend must show. A backend's tests call [`run`] (every
//! check, on topics named with a prefix), as the store's and the object store's suites are run;
//! the checks are public for a backend that must leave one out (and says why).
//!
//! The embedded log, `TieredLog` over it, Apache Kafka (plaintext and SASL over TLS) and tansu
//! run it.

use crate::{Appended, EventLog, Position, Record};
use std::time::Duration;

fn record(key: &str, value: &str) -> Record {
    Record {
        key: Some(key.as_bytes().to_vec()),
        headers: vec![("h".into(), value.as_bytes().to_vec()), ("empty".into(), Vec::new())],
        value: value.as_bytes().to_vec(),
    }
}

/// Every check of the suite, on topics named `<prefix>-...` (`offset_metadata`: whether the
/// backend keeps the metadata of committed positions; tansu 0.6 does not).
pub fn run(log: std::sync::Arc<dyn EventLog>, prefix: &str, offset_metadata: bool) {
    appends_read_back_in_order(log.as_ref(), &format!("{prefix}-order"));
    group_offsets_are_kept(log.as_ref(), &format!("{prefix}-groups"));
    if offset_metadata {
        group_offset_metadata_is_kept(log.as_ref(), &format!("{prefix}-meta"));
    }
    // the last two run threads that outlive this call's borrows: the log and names live on
    let log: &'static std::sync::Arc<dyn EventLog> = Box::leak(Box::new(log));
    waiters_wake_on_append(log.as_ref(), format!("{prefix}-wait").leak());
    group_members_share_partitions(log.as_ref(), format!("{prefix}-group").leak());
}

/// Appends get contiguous offsets from 0 and read back byte for byte, keys and headers included.
pub fn appends_read_back_in_order(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 3).unwrap();
    log.create_topic(topic, 3).unwrap();
    assert_eq!(log.partitions(topic).unwrap(), 3);
    assert!(log.create_topic(topic, 4).is_err());
    let first = log.append(topic, 1, &[record("a", "1"), record("b", "2")]).unwrap();
    assert_eq!(first, Appended { first: 0, last: 1, count: 2 });
    let second = log.append(topic, 1, &[Record { key: None, headers: vec![], value: b"3".to_vec() }]).unwrap();
    assert_eq!(second.first, 2);
    assert_eq!(log.end_offset(topic, 1).unwrap(), 3);
    assert_eq!(log.end_offset(topic, 0).unwrap(), 0);
    let all = log.read(topic, 1, 0, 100).unwrap();
    assert_eq!(all.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(all[0].key.as_deref(), Some(&b"a"[..]));
    assert_eq!(all[1].headers, record("b", "2").headers);
    assert_eq!(all[2].key, None);
    assert_eq!(all[2].value, b"3");
    assert_eq!(log.read(topic, 1, 1, 1).unwrap().len(), 1);
    assert_eq!(log.read(topic, 1, 1, 1).unwrap()[0].offset, 1);
    assert!(log.read(topic, 1, 3, 10).unwrap().is_empty());
    assert!(log.read(topic, 7, 0, 10).is_err());
    assert!(log.read("no-such-topic", 0, 0, 10).is_err());
    // several partitions at once: each batch lands whole on its own partition
    let batches = vec![(0, vec![record("c", "4"), record("d", "5")]), (1, vec![record("e", "6")])];
    let landed = log.append_all(topic, &batches).unwrap();
    assert_eq!(landed, [Appended { first: 0, last: 1, count: 2 }, Appended { first: 3, last: 3, count: 1 }]);
    assert_eq!(log.read(topic, 0, 0, 10).unwrap()[1].value, b"5");
    assert_eq!(log.read(topic, 1, 3, 10).unwrap()[0].value, b"6");
}

/// Consumer group positions are stored per group and partition.
pub fn group_offsets_are_kept(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 2).unwrap();
    assert_eq!(log.committed("g1", topic, 0).unwrap(), None);
    log.commit("g1", topic, 0, &Position::at(5)).unwrap();
    log.commit("g2", topic, 0, &Position::at(7)).unwrap();
    assert_eq!(log.committed("g1", topic, 0).unwrap().map(|p| p.offset), Some(5));
    assert_eq!(log.committed("g2", topic, 0).unwrap().map(|p| p.offset), Some(7));
    assert_eq!(log.committed("g1", topic, 1).unwrap(), None);
}

/// A position's metadata comes back with it (the journal keeps the owner epoch there).
pub fn group_offset_metadata_is_kept(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 1).unwrap();
    let with_meta = Position { offset: 7, metadata: "epoch=3".into() };
    log.commit("g3", topic, 0, &with_meta).unwrap();
    assert_eq!(log.committed("g3", topic, 0).unwrap(), Some(with_meta));
}

/// A reader waiting for the next offset wakes when it is appended, and times out otherwise.
pub fn waiters_wake_on_append(log: &'static dyn EventLog, topic: &'static str) {
    log.create_topic(topic, 1).unwrap();
    assert!(!log.wait_for(topic, 0, 0, Duration::from_millis(20)).unwrap());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        log.append(topic, 0, &[record("k", "v")]).unwrap();
    });
    assert!(log.wait_for(topic, 0, 0, Duration::from_secs(10)).unwrap());
    writer.join().unwrap();
}

/// Who owns which partition, as the members' handlers report it; a partition assigned while
/// another member still owns it is a violation (kept, not panicked on: handlers run inside
/// the client library's callbacks).
#[derive(Default)]
struct Ownership {
    owners: std::collections::BTreeMap<u32, &'static str>,
    violations: Vec<String>,
}

struct Recorder {
    member: &'static str,
    shared: std::sync::Arc<std::sync::Mutex<Ownership>>,
}

impl crate::Rebalance for Recorder {
    fn assigned(&self, partitions: &[u32]) {
        let mut o = self.shared.lock().unwrap();
        for p in partitions {
            if let Some(other) = o.owners.insert(*p, self.member) {
                o.violations.push(format!("{p} given to {} while {other} owned it", self.member));
            }
        }
    }

    fn revoked(&self, partitions: &[u32]) {
        let mut o = self.shared.lock().unwrap();
        for p in partitions {
            if o.owners.get(p) == Some(&self.member) {
                o.owners.remove(p);
            }
        }
    }
}

/// A member polling on its own thread until `stop`, then leaving.
fn member_thread(
    log: &'static dyn EventLog,
    group: &'static str,
    topic: &'static str,
    member: &'static str,
    shared: &std::sync::Arc<std::sync::Mutex<Ownership>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let handler = std::sync::Arc::new(Recorder { member, shared: shared.clone() });
    std::thread::spawn(move || {
        let mut m = log.join_group(group, topic, handler).unwrap();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            m.poll(Duration::from_millis(50)).unwrap();
        }
    })
}

fn wait_until(what: &str, shared: &std::sync::Mutex<Ownership>, f: impl Fn(&Ownership) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !f(&shared.lock().unwrap()) {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Members of a group share a topic's partitions: each partition has one owner at a time, a
/// newcomer gets a share, and a member that leaves hands its partitions to the others.
pub fn group_members_share_partitions(log: &'static dyn EventLog, topic: &'static str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    log.create_topic(topic, 4).unwrap();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Ownership::default()));
    let (stop_a, stop_b) = (std::sync::Arc::new(AtomicBool::new(false)), std::sync::Arc::new(AtomicBool::new(false)));
    let a = member_thread(log, "owners", topic, "a", &shared, stop_a.clone());
    wait_until("a owns all four", &shared, |o| o.owners.len() == 4 && o.owners.values().all(|m| *m == "a"));
    let b = member_thread(log, "owners", topic, "b", &shared, stop_b.clone());
    wait_until("a and b share them", &shared, |o| {
        o.owners.len() == 4 && o.owners.values().any(|m| *m == "a") && o.owners.values().any(|m| *m == "b")
    });
    stop_b.store(true, Ordering::Relaxed);
    b.join().unwrap();
    wait_until("a owns all four again", &shared, |o| o.owners.len() == 4 && o.owners.values().all(|m| *m == "a"));
    stop_a.store(true, Ordering::Relaxed);
    a.join().unwrap();
    let o = shared.lock().unwrap();
    assert!(o.owners.is_empty(), "a member that left still owns {:?}", o.owners);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

/// Apache Kafka of the test suite: `KAFKA_BOOTSTRAP` (`scripts/engines.sh up` prints it;
/// `scripts/test.sh` starts it). A test that needs it fails when it is not set: it never passes
/// without having run.
pub fn kafka_bootstrap() -> String {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(address) if !address.is_empty() => address,
        _ => panic!(
            "KAFKA_BOOTSTRAP is not set: this test needs Apache Kafka (`eval $(scripts/engines.sh up)` starts one; \
             scripts/test.sh does it for you)"
        ),
    }
}

/// A log whose reads answer at most `cap(max)` records (`0`: none, as a Kafka client still
/// reconnecting answers), everything else being `inner`'s: for tests of readers that must not
/// take a short or empty answer for the end.
pub struct CappedReads<L> {
    /// The log underneath.
    pub inner: L,
    /// How many records a read asking for `max` may answer.
    pub cap: Box<dyn Fn(usize) -> usize + Send + Sync>,
}

impl<L: EventLog> EventLog for CappedReads<L> {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), crate::LogError> {
        self.inner.create_topic(topic, partitions)
    }
    fn create_topic_retained(&self, topic: &str, partitions: u32, r: crate::Retention) -> Result<(), crate::LogError> {
        self.inner.create_topic_retained(topic, partitions, r)
    }
    fn partitions(&self, topic: &str) -> Result<u32, crate::LogError> {
        self.inner.partitions(topic)
    }
    fn max_record_bytes(&self, topic: &str) -> Result<Option<usize>, crate::LogError> {
        self.inner.max_record_bytes(topic)
    }
    fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Appended, crate::LogError> {
        self.inner.append(topic, partition, records)
    }
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<crate::LogRecord>, crate::LogError> {
        match (self.cap)(max).min(max) {
            0 => Ok(Vec::new()),
            n => self.inner.read(topic, partition, from, n),
        }
    }
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, crate::LogError> {
        self.inner.end_offset(topic, partition)
    }
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, crate::LogError> {
        self.inner.start_offset(topic, partition)
    }
    fn drop_before(&self, topic: &str, partition: u32, offset: u64) -> Result<u64, crate::LogError> {
        self.inner.drop_before(topic, partition, offset)
    }
    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration) -> Result<bool, crate::LogError> {
        self.inner.wait_for(topic, partition, offset, timeout)
    }
    fn commit(&self, group: &str, topic: &str, partition: u32, position: &Position) -> Result<(), crate::LogError> {
        self.inner.commit(group, topic, partition, position)
    }
    fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Position>, crate::LogError> {
        self.inner.committed(group, topic, partition)
    }
    fn flush(&self) -> Result<(), crate::LogError> {
        self.inner.flush()
    }
    fn join_group(
        &self,
        group: &str,
        topic: &str,
        handler: std::sync::Arc<dyn crate::Rebalance>,
    ) -> Result<Box<dyn crate::GroupMember>, crate::LogError> {
        self.inner.join_group(group, topic, handler)
    }
}
