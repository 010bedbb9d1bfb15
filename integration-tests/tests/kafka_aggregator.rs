//! The single writer on a real Kafka-protocol broker: the same aggregator, the same journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::{AggregatorConfig, spawn_owners};
use visionlog_codec::{Codec, EmbeddedRegistry, Outcome};
use visionlog_domain::*;
use visionlog_integration_tests::{Broker, envelope, small_create_task};
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, KafkaLog, partition_for};
use visionlog_store::{EmbeddedStore, ReadStore};

fn outcome(log: &dyn EventLog, codec: &Codec, topics: &Topics, id: &str) -> Outcome {
    let p = partition_for(id.as_bytes(), topics.partitions);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = log
            .read(&topics.outcomes, p, 0, 100_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.key.as_deref() == Some(id.as_bytes()))
            .map(|r| codec.decode_outcome(&r.value).unwrap())
            .next_back();
        if let Some(o) = found {
            return o;
        }
        assert!(Instant::now() < deadline, "no outcome for {id}");
    }
}

#[test]
fn the_aggregator_decides_on_kafka() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(broker.address()).unwrap());
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let topics = Topics::new(&broker.name("k"), 2);
    topics.create(log.as_ref()).unwrap();
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn_owners(&log, &codec, &store, &topics, &AggregatorConfig::default(), &stop);
    let tasks = 6;
    for t in 0..tasks {
        let task = format!("task-{t}");
        let create = small_create_task();
        let detect = TaskCommand::RequestDetection(RequestDetection {});
        bus.send(&envelope(&task, &format!("c-{t}"), "customer:acme", Some(0), &create), &create).unwrap();
        bus.send(&envelope(&task, &format!("d-{t}"), "service:executor", Some(1), &detect), &detect).unwrap();
        // a redelivery and a stale expectation
        bus.send(&envelope(&task, &format!("c-{t}"), "customer:acme", Some(0), &create), &create).unwrap();
        bus.send(&envelope(&task, &format!("x-{t}"), "service:executor", Some(1), &detect), &detect).unwrap();
    }
    for t in 0..tasks {
        let d = outcome(log.as_ref(), &codec, &topics, &format!("d-{t}"));
        assert!(d.accepted);
        assert_eq!(d.first_version, Some(2));
        let x = outcome(log.as_ref(), &codec, &topics, &format!("x-{t}"));
        assert_eq!(x.rejection_code.as_deref(), Some("version_conflict"));
        let c = outcome(log.as_ref(), &codec, &topics, &format!("c-{t}"));
        assert!(c.accepted && c.duplicate, "{c:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let a = audit(log.as_ref(), &topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events, a.rejections), (2 * tasks, 0, 0, tasks));
}
