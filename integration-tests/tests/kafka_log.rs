//! The log conformance suite against Apache Kafka (the reference) and tansu (a second
//! Kafka-protocol broker, kept as a compatibility check).

use visionlog_integration_tests::Broker;
use visionlog_log::{EventLog, KafkaLog, Record, conformance};

#[test]
fn kafka_log_conformance_on_apache_kafka() {
    log_conformance(Broker::start(), true);
}

#[test]
fn kafka_log_conformance_on_tansu() {
    // not `group_offset_metadata_is_kept`: tansu 0.6 returns committed offsets with empty
    // metadata (measured here); nothing of visionlog depends on it (journal consumers find
    // their epoch in the record before their position)
    log_conformance(Broker::tansu(), false);
}

fn log_conformance(broker: Broker, offset_metadata: bool) {
    let log = KafkaLog::connect(broker.address()).unwrap();
    conformance::run(std::sync::Arc::new(log), &broker.name("conf"), offset_metadata);
}

/// Multi-record appends: offsets come from the delivery reports, and the end offset is right
/// even where the broker's high watermark is not.
#[test]
fn batches_get_contiguous_offsets_and_a_true_end() {
    let broker = Broker::start();
    let log = KafkaLog::connect(broker.address()).unwrap();
    let topic = broker.name("batches");
    log.create_topic(&topic, 2).unwrap();
    let batch: Vec<Record> =
        (0..25).map(|i| Record { key: Some(b"k".to_vec()), headers: vec![], value: vec![i as u8; 64] }).collect();
    for round in 0..4u64 {
        assert_eq!(log.append(&topic, 1, &batch).unwrap().first, round * 25);
    }
    assert_eq!(log.end_offset(&topic, 1).unwrap(), 100);
    let all = log.read(&topic, 1, 37, 1000).unwrap();
    assert_eq!(all.first().map(|r| r.offset), Some(37));
    assert_eq!(all.len(), 63);
    assert_eq!(all[0].value, vec![12u8; 64]);
}

/// `kafka://host:port[,host:port]?options`: several bootstrap hosts, known options only.
#[test]
fn kafka_urls_take_several_hosts_and_options() {
    let broker = Broker::start();
    let options = visionlog_log::FileLogOptions::default;
    let a = broker.address();
    let url = format!("kafka://{a},{a}?replication=1&min_insync_replicas=1&session_timeout_ms=7000");
    let log = visionlog_log::open(&url, options()).unwrap();
    let topic = broker.name("several-hosts");
    log.create_topic(&topic, 1).unwrap();
    assert_eq!(log.partitions(&topic).unwrap(), 1);
    // the topic as the broker keeps it: never aged out, appends acknowledged by min.insync.replicas
    let kafka = KafkaLog::connect(a).unwrap();
    assert_eq!(kafka.topic_config(&topic, "min.insync.replicas").unwrap().as_deref(), Some("1"));
    assert_eq!(kafka.topic_config(&topic, "retention.ms").unwrap().as_deref(), Some("-1"));
    let err = visionlog_log::open(&format!("kafka://{a}?replication=1&min_insync_replicas=2"), options())
        .err()
        .expect("more in-sync replicas than replicas")
        .to_string();
    assert!(err.contains("min_insync_replicas"), "{err}");
    let err =
        visionlog_log::open(&format!("kafka://{a}?acks=0"), options()).err().expect("an unknown option").to_string();
    assert!(err.contains("unknown kafka option"), "{err}");
    assert!(visionlog_log::open("kafka://", options()).is_err());
}

/// Tiering on Kafka: closed ranges go cold and the one history reads every record from offset 0.
/// The hot copy goes with DeleteRecords on Apache Kafka; tansu 0.6 has no DeleteRecords
/// (measured: it drops the connection), so there the drop fails and the hot copy stays whole,
/// which is what an unsafe drop must never do the other way round.
#[test]
fn kafka_partitions_tier_drop_and_read_as_one_history() {
    tier_drop_and_read_as_one_history(Broker::start());
}

#[test]
fn on_tansu_a_refused_drop_keeps_the_hot_copy_whole() {
    tier_drop_and_read_as_one_history(Broker::tansu());
}

fn tier_drop_and_read_as_one_history(broker: Broker) {
    let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(KafkaLog::connect(broker.address()).unwrap());
    let topic = broker.name("tiered");
    log.create_topic(&topic, 1).unwrap();
    for round in 0..5u8 {
        let batch: Vec<Record> = (0..100)
            .map(|i| Record { key: Some(b"k".to_vec()), headers: vec![], value: vec![round, i as u8] })
            .collect();
        log.append(&topic, 0, &batch).unwrap();
    }
    let before = log.read(&topic, 0, 0, 1000).unwrap();
    assert_eq!(before.len(), 500);
    let objects_dir = tempfile::tempdir().unwrap();
    let objects = visionlog_objects::Objects::open(&format!("file://{}", objects_dir.path().display())).unwrap();
    let config = visionlog_tiering::TierConfig { segment_records: 200, ..visionlog_tiering::TierConfig::new(&topic) };
    let tierer = visionlog_tiering::Tierer::new(log.clone(), objects.clone(), config);
    assert_eq!(tierer.tier_all(false).unwrap().len(), 2, "two closed ranges of 200");
    match &broker {
        Broker::External(_) => {
            assert_eq!(tierer.drop_hot(0).unwrap(), 400, "the low watermark moved");
            assert_eq!(log.start_offset(&topic, 0).unwrap(), 400);
        }
        Broker::Local(_) => {
            assert!(tierer.drop_hot(0).is_err(), "tansu refuses DeleteRecords");
            assert_eq!(log.start_offset(&topic, 0).unwrap(), 0, "nothing dropped");
        }
    }
    let history = visionlog_tiering::TieredLog::new(log.clone(), objects, &[&topic]);
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let batch = history.read(&topic, 0, from, 150).unwrap();
        let Some(last) = batch.last() else { break };
        from = last.offset + 1;
        all.extend(batch);
    }
    assert_eq!(all, before);
}

/// The broker's SASL_SSL listener (scripts/engines.sh: a throwaway CA, a broker certificate for
/// 127.0.0.1, a SCRAM-SHA-512 user and the same user for PLAIN), reached through the URL.
fn sasl_listener() -> (String, String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: scripts/engines.sh up prints it"))
    };
    (var("KAFKA_SASL_BOOTSTRAP"), var("KAFKA_SASL_CA"), var("KAFKA_SASL_USER"), var("KAFKA_SASL_PASSWORD"))
}

#[test]
fn the_log_works_over_tls_with_scram_and_plain() {
    let (address, ca, user, password) = sasl_listener();
    let broker = Broker::start();
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let url = format!("kafka://{user}:{password}@{address}?sasl_mechanism={mechanism}&ssl_ca_location={ca}");
        let log = visionlog_log::open(&url, Default::default()).unwrap();
        // every client of the backend (producer, admin, readers, group members) over the listener
        conformance::run(log, &broker.name(&format!("sasl-{}", mechanism.to_ascii_lowercase())), true);
    }
}

/// A wrong password, or a broker certificate the client does not trust, is a clear error in
/// bounded time, never a hang or a silent plaintext fallback.
#[test]
fn a_wrong_password_or_an_untrusted_broker_is_refused() {
    let (address, ca, user, password) = sasl_listener();
    let broker = Broker::start();
    let topic = broker.name("sasl-refused");
    let try_url = |url: String| {
        let started = std::time::Instant::now();
        let result = visionlog_log::open(&url, Default::default()).and_then(|log| log.create_topic(&topic, 1));
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "bounded: {:?}", started.elapsed());
        result.expect_err("refused").to_string()
    };
    let wrong = try_url(format!("kafka://{user}:not-{password}@{address}?ssl_ca_location={ca}"));
    assert!(wrong.contains("invalid credentials") && !wrong.contains(&password), "{wrong}");
    let untrusted = try_url(format!("kafka://{user}:{password}@{address}"));
    assert!(untrusted.contains("certificate verify failed") && !untrusted.contains(&password), "{untrusted}");
    // the right settings on the same listener work (the refusals were the settings' doing)
    let log =
        visionlog_log::open(&format!("kafka://{user}:{password}@{address}?ssl_ca_location={ca}"), Default::default())
            .unwrap();
    log.create_topic(&topic, 1).unwrap();
}

/// A topic created with `?max_message_bytes=`: a record larger than it takes is refused before
/// anything is sent; an append of many records larger in all goes in pieces, contiguous.
#[test]
fn records_too_large_for_a_topic_are_refused_and_large_appends_go_in_pieces() {
    let broker = Broker::start();
    let url = format!("kafka://{}?max_message_bytes=8192", broker.address());
    let log = visionlog_log::open(&url, Default::default()).unwrap();
    let topic = broker.name("pieces");
    log.create_topic(&topic, 1).unwrap();
    assert_eq!(log.max_record_bytes(&topic).unwrap(), Some(8192));
    let record = |size: usize, b: u8| Record { key: Some(b"k".to_vec()), headers: vec![], value: vec![b; size] };
    let err = log.append(&topic, 0, &[record(100, 1), record(20_000, 2)]).unwrap_err();
    assert!(matches!(err, visionlog_log::LogError::BatchTooLarge { max: Some(8192), .. }), "{err}");
    assert_eq!(log.end_offset(&topic, 0).unwrap(), 0, "nothing of a refused append was sent");
    let many: Vec<Record> = (0..12).map(|i| record(3000, i)).collect();
    let landed = log.append(&topic, 0, &many).unwrap();
    assert_eq!((landed.first, landed.count, landed.is_contiguous()), (0, 12, true));
    // a Kafka read returns what its fetches brought within a short linger (here the pieces are
    // six batches of two): read on until the end, as every reader of the log does
    let mut back = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while back.len() < 12 && std::time::Instant::now() < deadline {
        back.extend(log.read(&topic, 0, back.len() as u64, 100).unwrap());
    }
    assert_eq!(back.iter().map(|r| r.value[0]).collect::<Vec<_>>(), (0..12).collect::<Vec<u8>>());
}

/// The `schemas` topic as the registry, on Apache Kafka: the registry suite passes.
#[test]
fn the_topic_registry_passes_the_registry_suite_on_apache_kafka() {
    let broker = Broker::start();
    let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(KafkaLog::connect(broker.address()).unwrap());
    let registry = visionlog_journal::LogRegistry::open(log, &broker.name("schemas")).unwrap();
    visionlog_codec::conformance::run(&registry, "kafka");
}

/// The topics that are not the source of truth are created with their retention, the privacy
/// facts compacted, and the journal kept for ever, as Apache Kafka reports them.
#[test]
fn topics_are_created_with_their_retention_on_apache_kafka() {
    let broker = Broker::start();
    let log = KafkaLog::connect(broker.address()).unwrap();
    let mut topics = visionlog_journal::Topics::new(&broker.name("retained"), 2);
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    topics.retention =
        visionlog_journal::TopicRetention { commands: hours(48), outcomes: hours(24), dead_letters: hours(720) };
    topics.create(&log).unwrap();
    let config = |topic: &str, key: &str| log.topic_config(topic, key).unwrap().unwrap_or_default();
    assert_eq!(config(&topics.commands, "retention.ms"), (48 * 3_600_000u64).to_string());
    assert_eq!(config(&topics.outcomes, "retention.ms"), (24 * 3_600_000u64).to_string());
    assert_eq!(config(&topics.dead_letters, "retention.ms"), (720 * 3_600_000u64).to_string());
    for t in [&topics.commands, &topics.outcomes, &topics.dead_letters, &topics.events] {
        assert_eq!(config(t, "cleanup.policy"), "delete", "{t}");
    }
    assert_eq!(config(&topics.events, "retention.ms"), "-1", "the journal is kept for ever");
    assert_eq!(config(&topics.models, "retention.ms"), "-1");
    assert_eq!(config(&topics.privacy, "cleanup.policy"), "compact");
    // created again (every start does): nothing changes, nothing fails
    topics.create(&log).unwrap();
    assert_eq!(config(&topics.commands, "retention.ms"), (48 * 3_600_000u64).to_string());
}
