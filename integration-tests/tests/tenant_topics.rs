//! Tenants on Kafka's terms: the topic is the tenant. What a tenant produces to its command topic
//! is decided as that tenant's whatever its headers claim; the domain keeps tasks apart (another
//! tenant's commands, a customer's service commands, are recorded rejections); each tenant's
//! output topic holds its tasks' events once, in version order, and its commands' rejections,
//! also after a publisher restarts without its position. On the file log and on Apache Kafka
//! (transactions: a newer writer fences an older one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::{AggregatorConfig, spawn_owners};
use visionlog_codec::envelope::{CommandEnvelope, get, names};
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{
    CancelTask, ClassGroup, CreateTask, ImageRef, ProductClass, Recipe, RequestDetection, TaskCommand, TaskType,
};
use visionlog_journal::{Subscription, Topics, consume_until};
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy, KafkaLog, LogError, Position, Record};
use visionlog_store::{EmbeddedStore, ReadStore};
use visionlog_tenant_topics::{Ingress, JOURNAL_OFFSET, PUBLISHER_GROUP, Publisher};

const PARTITIONS: u32 = 2;
const TENANTS: [&str; 2] = ["acme", "globex"];

fn create(customer: &str) -> TaskCommand {
    TaskCommand::CreateTask(CreateTask {
        customer: customer.into(),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: "shelf".into(), classes: vec![ProductClass { id: 1, name: "cola".into() }] },
        images: vec![ImageRef { uri: "s3://b/1.jpg".into(), width: 100, height: 100 }],
        callback_url: None,
        personal: None,
    })
}

struct Rig {
    _dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    store: Arc<dyn ReadStore>,
    topics: Topics,
}

fn rig(kafka: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (log, prefix): (Arc<dyn EventLog>, String) = if kafka {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let log = KafkaLog::connect(&visionlog_log::conformance::kafka_bootstrap()).unwrap();
        (Arc::new(log), format!("tenants-{}-{}", std::process::id(), nanos % 1_000_000_000_000))
    } else {
        let options = FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() };
        (Arc::new(FileLog::open(&dir.path().join("log"), options).unwrap()), "t".to_owned())
    };
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let topics = Topics::new(&prefix, PARTITIONS);
    topics.create(log.as_ref()).unwrap();
    for t in TENANTS {
        topics.create_tenant(log.as_ref(), t).unwrap();
    }
    Rig { _dir: dir, log, codec, store, topics }
}

impl Rig {
    /// Produces a command to `tenant`'s topic as a retailer would, with whatever headers it likes.
    fn produce(&self, tenant: &str, task: &str, id: &str, actor: &str, claimed_tenant: &str, command: &TaskCommand) {
        let envelope = CommandEnvelope {
            command_id: id.into(),
            task_id: task.into(),
            command_type: command.type_name().into(),
            expected_version: None,
            actor: actor.into(),
            tenant: claimed_tenant.into(),
            correlation_id: id.into(),
            causation_id: None,
            issued_at_ms: 1,
        };
        let mut headers = Vec::new();
        envelope.write_headers(&mut headers);
        let value = self.codec.encode_command(command).unwrap();
        let record = Record { key: Some(task.as_bytes().to_vec()), headers, value };
        let p = visionlog_log::partition_for(task.as_bytes(), PARTITIONS);
        self.log.append(&self.topics.tenant_commands(tenant), p, &[record]).unwrap();
    }

    /// Runs ingress (every partition) until `done` says the journal has what it should.
    fn forward_until(&self, done: impl Fn() -> bool) {
        let ingress = Ingress::new(self.log.clone(), self.codec.clone(), self.topics.clone(), tenants());
        let mut positions = vec![[0u64; 2]; PARTITIONS as usize];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out forwarding");
            for (p, pos) in positions.iter_mut().enumerate() {
                for (t, tenant) in TENANTS.iter().enumerate() {
                    ingress.forward_once(tenant, p as u32, &mut pos[t]).unwrap();
                }
            }
        }
    }

    /// Publishes every partition of the journal up to its end.
    fn publish(&self) {
        let stop = AtomicBool::new(false);
        for p in 0..PARTITIONS {
            let end = self.log.end_offset(&self.topics.events, p).unwrap();
            let mut publisher = Publisher::new(self.log.clone(), self.topics.clone(), tenants());
            let sub = Subscription {
                log: self.log.as_ref(),
                codec: &self.codec,
                topics: &self.topics,
                group: PUBLISHER_GROUP,
                partition: p,
            };
            consume_until(sub, &mut publisher, end, 512, &stop).unwrap();
        }
    }

    /// What a tenant's output topic holds: (kind, task, version or code, journal offset).
    fn output(&self, tenant: &str) -> Vec<(String, String, String, u64)> {
        let mut out = Vec::new();
        for p in 0..PARTITIONS {
            let topic = self.topics.tenant_events(tenant);
            let end = self.log.end_offset(&topic, p).unwrap();
            let mut next = 0;
            while next < end {
                let records = self.log.read(&topic, p, next, 1000).unwrap();
                let Some(last) = records.last() else { break };
                next = last.offset + 1;
                for r in records {
                    let h = |n: &str| String::from_utf8(get(&r.headers, n).unwrap_or_default().to_vec()).unwrap();
                    let what = match h(names::KIND).as_str() {
                        "event" => format!("{}@{}", h(names::TYPE), h(names::VERSION)),
                        _ => self.codec.decode_outcome(&r.value).unwrap().rejection_code.unwrap(),
                    };
                    assert_eq!(r.key.as_deref(), Some(h(names::TASK_ID).as_bytes()), "keyed by task id");
                    out.push((h(names::KIND), h(names::TASK_ID), what, h(JOURNAL_OFFSET).parse().unwrap()));
                }
            }
        }
        out
    }

    fn journal_len(&self) -> u64 {
        (0..PARTITIONS).map(|p| self.log.end_offset(&self.topics.events, p).unwrap()).sum()
    }
}

fn tenants() -> Vec<String> {
    TENANTS.iter().map(|t| t.to_string()).collect()
}

fn a_tenant_topic_is_the_tenant(kafka: bool) {
    let rig = rig(kafka);
    let stop = Arc::new(AtomicBool::new(false));
    let config = AggregatorConfig { owner: "a".into(), ..Default::default() };
    let owners = spawn_owners(&rig.log, &rig.codec, &rig.store, &rig.topics, &config, &stop);
    // acme creates its task while claiming to be a service of another tenant: it is acme's
    rig.produce("acme", "t-a", "a1", "service:executor", "globex", &create("acme"));
    // a record without a key cannot be placed: a dead letter, and the partition flows on
    let p = visionlog_log::partition_for(b"t-a", PARTITIONS);
    let keyless = Record { key: None, headers: vec![], value: b"junk".to_vec() };
    rig.log.append(&rig.topics.tenant_commands("acme"), p, &[keyless]).unwrap();
    // a customer may not send a service's command, whatever actor it names
    let detect = TaskCommand::RequestDetection(RequestDetection {});
    rig.produce("acme", "t-a", "a2", "service:executor", "acme", &detect);
    // globex may not touch acme's task, nor create a task in acme's name
    let cancel = TaskCommand::CancelTask(CancelTask { reason: "mine".into() });
    rig.produce("globex", "t-a", "g1", "customer:acme", "acme", &cancel);
    rig.produce("globex", "t-g", "g2", "customer:globex", "globex", &create("acme"));
    rig.produce("globex", "t-g2", "g3", "customer:globex", "globex", &create("globex"));
    // acme cancels its own task
    rig.produce("acme", "t-a", "a3", "customer:acme", "acme", &cancel);
    // every command decided (6 decisions of one record each, after a claim per partition)
    rig.forward_until(|| rig.journal_len() >= PARTITIONS as u64 + 6);
    stop.store(true, Ordering::Relaxed);
    for o in owners {
        o.join().unwrap().unwrap();
    }
    rig.publish();
    let acme = rig.output("acme");
    let view: Vec<(&str, &str, &str)> = acme.iter().map(|(k, t, w, _)| (k.as_str(), t.as_str(), w.as_str())).collect();
    assert_eq!(
        view,
        [("event", "t-a", "TaskCreated@1"), ("rejection", "t-a", "not_permitted"), ("event", "t-a", "TaskCancelled@2"),],
        "acme's topic: its task's events in version order, its own rejection, nothing of globex"
    );
    let globex = rig.output("globex");
    let mut view: Vec<(&str, &str, &str)> =
        globex.iter().map(|(k, t, w, _)| (k.as_str(), t.as_str(), w.as_str())).collect();
    view.sort();
    assert_eq!(
        view,
        [
            ("event", "t-g2", "TaskCreated@1"),
            ("rejection", "t-a", "tenant_mismatch"),
            ("rejection", "t-g", "tenant_mismatch"),
        ],
        "globex's topic: its rejections (acme's task not named as acme's) and its own task"
    );
    // the events say whose they are, from the topic, not from the headers the retailer wrote
    let first = rig.log.read(&rig.topics.tenant_events("acme"), p, 0, 1).unwrap().remove(0);
    assert_eq!(get(&first.headers, names::TENANT), Some(&b"acme"[..]));
    assert_eq!(get(&first.headers, names::ACTOR), Some(&b"customer:acme"[..]));
    let letters = rig.log.read(&rig.topics.dead_letters, 0, 0, 100).unwrap();
    let letters: Vec<_> = letters.iter().map(|r| rig.codec.decode_dead_letter(&r.value).unwrap()).collect();
    assert!(
        letters.iter().any(|l| l.error_code == "no_key" && l.source_topic == rig.topics.tenant_commands("acme")),
        "{letters:?}"
    );

    // a publisher that restarts without its position (a crash after a flush, before the commit)
    // publishes nothing twice: it reads its topics' tails
    for p in 0..PARTITIONS {
        rig.log.commit(PUBLISHER_GROUP, &rig.topics.events, p, &Position::at(0)).unwrap();
    }
    rig.publish();
    assert_eq!(rig.output("acme"), acme, "nothing published twice");
    assert_eq!(rig.output("globex"), globex);
}

#[test]
fn a_tenant_topic_is_the_tenant_on_the_file_log() {
    a_tenant_topic_is_the_tenant(false);
}

#[test]
fn a_tenant_topic_is_the_tenant_on_kafka_with_transactions() {
    a_tenant_topic_is_the_tenant(true);
}

/// Two writers of one name on Apache Kafka: the newer fences the older, whose next transaction
/// fails (and stays failed) and of which nothing becomes visible.
#[test]
fn on_kafka_a_newer_writer_fences_an_older_one() {
    let bootstrap = visionlog_log::conformance::kafka_bootstrap();
    let rig = rig(true);
    let topic = rig.topics.tenant_events("acme");
    let record = |b: u8| Record { key: Some(b"k".to_vec()), headers: vec![], value: vec![b] };
    let old = KafkaLog::connect(&bootstrap).unwrap();
    let writer = format!("{}.writer", rig.topics.events);
    old.append_as(&writer, &[(&topic, 0, vec![record(1)])]).unwrap();
    let new = KafkaLog::connect(&bootstrap).unwrap();
    new.append_as(&writer, &[(&topic, 0, vec![record(2)])]).unwrap();
    for _ in 0..2 {
        let err = old.append_as(&writer, &[(&topic, 0, vec![record(3)])]).unwrap_err();
        assert!(matches!(err, LogError::Fenced(_)), "{err}");
    }
    new.append_as(&writer, &[(&topic, 0, vec![record(4)])]).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while values.len() < 3 && Instant::now() < deadline {
        let end = new.end_offset(&topic, 0).unwrap();
        values = new.read(&topic, 0, 0, end as usize).unwrap().into_iter().map(|r| r.value[0]).collect();
    }
    assert_eq!(values, [1, 2, 4], "the fenced writer's records never became visible");
}
