//! The single writer on a real Kafka-protocol broker: the same aggregator, the same journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::{AggregatorConfig, spawn_owners};
use visionlog_codec::{Codec, EmbeddedRegistry, Outcome};
use visionlog_domain::{ProductClass, RequestDetection, TaskCommand};
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

/// A topic that takes small records (`max.message.bytes` of 16 KiB, as a broker with a small
/// `message.max.bytes` gives every topic): a command whose event would be larger is rejected
/// with `event_too_large`, a huge malformed command becomes a dead letter that fits the topic,
/// and the partition goes on deciding.
#[test]
fn records_larger_than_the_journal_takes_are_rejections_not_a_stalled_partition() {
    const MAX: usize = 16 * 1024;
    let broker = Broker::start();
    let a = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let small = visionlog_log::open(&format!("kafka://{a}?max_message_bytes={MAX}"), Default::default()).unwrap();
    let roomy: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(a).unwrap());
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let topics = Topics::new(&broker.name("small"), 1);
    // commands as large as a roomy topic takes; the journal, outcomes and dead letters small
    roomy.create_topic(&topics.commands, 1).unwrap();
    topics.create(small.as_ref()).unwrap();
    assert_eq!(small.max_record_bytes(&topics.events).unwrap(), Some(MAX));
    let bus = CommandBus::new(roomy.clone(), codec.clone(), topics.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn_owners(&small, &codec, &store, &topics, &AggregatorConfig::default(), &stop);

    let TaskCommand::CreateTask(mut big) = small_create_task() else { unreachable!() };
    big.class_group.classes = (1..=200).map(|id| ProductClass { id, name: format!("{id:0>120}") }).collect();
    let big = TaskCommand::CreateTask(big);
    bus.send(&envelope("t-big", "big", "customer:acme", Some(0), &big), &big).unwrap();
    let mut headers = Vec::new();
    envelope("t-junk", "junk", "customer:acme", Some(0), &big).write_headers(&mut headers);
    bus.send_raw("t-junk", headers, vec![0xff; 100_000]).unwrap();
    let create = small_create_task();
    bus.send(&envelope("t-big", "small", "customer:acme", Some(0), &create), &create).unwrap();
    bus.send(&envelope("t-next", "next", "customer:acme", Some(0), &create), &create).unwrap();

    let refused = outcome(small.as_ref(), &codec, &topics, "big");
    assert_eq!(refused.rejection_code.as_deref(), Some("event_too_large"), "{refused:?}");
    let message = refused.rejection_message.unwrap();
    assert!(message.contains("TaskCreated") && message.contains(&MAX.to_string()), "{message}");
    for id in ["small", "next"] {
        let o = outcome(small.as_ref(), &codec, &topics, id);
        assert!(o.accepted && o.first_version == Some(1), "the partition goes on: {o:?}");
    }
    let junk = outcome(small.as_ref(), &codec, &topics, "junk");
    assert!(!junk.accepted, "{junk:?}");
    let letters = small.read(&topics.dead_letters, 0, 0, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].value.len() < MAX, "the dead letter fits the topic: {} bytes", letters[0].value.len());
    let letter = codec.decode_dead_letter(&letters[0].value).unwrap();
    assert_eq!((letter.source_topic.as_str(), letter.value.len()), (topics.commands.as_str(), MAX / 2));
    assert!(letter.error_message.contains("of 100000 bytes"), "{}", letter.error_message);

    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let a = audit(small.as_ref(), &topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (2, 0, 0), "{a:?}");
}
