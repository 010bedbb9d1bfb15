//! The single writer against the embedded log: flow, idempotence, concurrency, restart,
//! bad input, and two owners racing for one partition. The last two also run on a real
//! Apache Kafka (`KAFKA_BOOTSTRAP`, from `scripts/engines.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use visionlog_aggregator::*;
use visionlog_codec::envelope::{CommandEnvelope, names};
use visionlog_codec::{Codec, EmbeddedRegistry, Outcome};
use visionlog_domain::{
    BoundingBox, CancelTask, ClassGroup, CreateTask, Detection, GenerateResult, ImageRef, ModelRef, ProductClass,
    Recipe, RecordDetections, RecordModelNotFound, RequestDetection, TaskCommand, TaskType,
};
use visionlog_journal::{CommandBus, Topics, audit};
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy, KafkaLog, partition_for};
use visionlog_store::conformance::FaultyPuts;
use visionlog_store::{EmbeddedStore, Put, ReadStore};

struct Rig {
    _dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    store: Arc<dyn ReadStore>,
    topics: Topics,
    bus: CommandBus,
}

#[derive(Clone, Copy)]
enum On {
    FileLog,
    Kafka,
}

fn rig(partitions: u32) -> Rig {
    rig_on(On::FileLog, partitions)
}

fn rig_on(on: On, partitions: u32) -> Rig {
    rig_with(on, partitions, None)
}

/// A rig whose snapshots and checkpoints go to `store` (else an embedded store of its own).
fn rig_with(on: On, partitions: u32, store: Option<Arc<dyn ReadStore>>) -> Rig {
    // VISIONLOG_LOG_LEVEL=info shows what the owners do
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("VISIONLOG_LOG_LEVEL") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = match on {
        On::FileLog => Arc::new(
            FileLog::open(&dir.path().join("log"), FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() })
                .unwrap(),
        ),
        On::Kafka => Arc::new(KafkaLog::connect(&visionlog_log::conformance::kafka_bootstrap()).unwrap()),
    };
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let store: Arc<dyn ReadStore> =
        store.unwrap_or_else(|| Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap()));
    // Apache Kafka is shared by the tests: topics of their own
    let prefix = match on {
        On::FileLog => "t".to_owned(),
        On::Kafka => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            format!("agg-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
        }
    };
    let topics = Topics::new(&prefix, partitions);
    topics.create(log.as_ref()).unwrap();
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());
    Rig { _dir: dir, log, codec, store, topics, bus }
}

struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<PartitionStats, AggregatorError>>>,
}

impl Running {
    fn stop(self) -> Vec<Result<PartitionStats, AggregatorError>> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

impl Rig {
    /// Another installation (topic prefix) on the same log and store.
    fn beside(&self, prefix: &str, partitions: u32) -> Rig {
        let topics = Topics::new(prefix, partitions);
        topics.create(self.log.as_ref()).unwrap();
        let bus = CommandBus::new(self.log.clone(), self.codec.clone(), topics.clone());
        Rig {
            _dir: tempfile::tempdir().unwrap(),
            log: self.log.clone(),
            codec: self.codec.clone(),
            store: self.store.clone(),
            topics,
            bus,
        }
    }

    fn start(&self, owner: &str, config: AggregatorConfig) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let config = AggregatorConfig { owner: owner.into(), ..config };
        let threads = spawn_owners(&self.log, &self.codec, &self.store, &self.topics, &config, &stop);
        Running { stop, threads }
    }

    fn send(&self, task: &str, command_id: &str, actor: &str, expected: Option<u64>, command: &TaskCommand) {
        self.bus.send(&envelope(task, command_id, actor, expected, command), command).unwrap();
    }

    /// Waits for the outcome of a command (the last one published for it).
    fn outcome(&self, command_id: &str) -> Outcome {
        self.try_outcome(command_id, Duration::from_secs(20)).unwrap_or_else(|| panic!("no outcome for {command_id}"))
    }

    fn try_outcome(&self, command_id: &str, wait: Duration) -> Option<Outcome> {
        let p = partition_for(command_id.as_bytes(), self.topics.partitions);
        let deadline = Instant::now() + wait;
        loop {
            let found = self
                .log
                .read(&self.topics.outcomes, p, 0, 1_000_000)
                .unwrap()
                .into_iter()
                .filter(|r| r.key.as_deref() == Some(command_id.as_bytes()))
                .map(|r| self.codec.decode_outcome(&r.value).unwrap())
                .next_back();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn dead_letters(&self) -> Vec<visionlog_codec::DeadLetter> {
        let records = self.log.read(&self.topics.dead_letters, 0, 0, 10_000).unwrap();
        records.iter().map(|r| self.codec.decode_dead_letter(&r.value).unwrap()).collect()
    }
}

fn envelope(
    task: &str,
    command_id: &str,
    actor: &str,
    expected: Option<u64>,
    command: &TaskCommand,
) -> CommandEnvelope {
    CommandEnvelope {
        command_id: command_id.into(),
        task_id: task.into(),
        command_type: command.type_name().into(),
        expected_version: expected,
        actor: actor.into(),
        tenant: "acme".into(),
        correlation_id: command_id.into(),
        causation_id: None,
        issued_at_ms: 1,
    }
}

fn create() -> TaskCommand {
    TaskCommand::CreateTask(CreateTask {
        customer: "acme".into(),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup {
            key: "acme/ice".into(),
            classes: vec![ProductClass { id: 1, name: "vanilla".into() }],
        },
        images: vec![ImageRef { uri: "s3://b/1.jpg".into(), width: 100, height: 100 }],
        callback_url: None,
        personal: None,
    })
}

const EXECUTOR: &str = "service:executor";
const CUSTOMER: &str = "customer:acme";

#[test]
fn commands_become_versioned_events_with_outcomes() {
    let rig = rig(2);
    let run = rig.start("a", AggregatorConfig::default());
    rig.send("task-1", "c1", CUSTOMER, Some(0), &create());
    rig.send("task-1", "c2", EXECUTOR, Some(1), &TaskCommand::RequestDetection(RequestDetection {}));
    let o1 = rig.outcome("c1");
    assert!(o1.accepted);
    assert_eq!((o1.first_version, o1.last_version), (Some(1), Some(1)));
    let o2 = rig.outcome("c2");
    assert_eq!((o2.first_version, o2.last_version, o2.duplicate), (Some(2), Some(2), false));
    // a wrong expected version is a conflict, not a second event
    rig.send(
        "task-1",
        "c3",
        EXECUTOR,
        Some(1),
        &TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() }),
    );
    let o3 = rig.outcome("c3");
    assert!(!o3.accepted);
    assert_eq!(o3.rejection_code.as_deref(), Some("version_conflict"));
    // a domain rule
    rig.send("task-1", "c4", EXECUTOR, None, &TaskCommand::GenerateResult(GenerateResult {}));
    assert_eq!(rig.outcome("c4").rejection_code.as_deref(), Some("invalid_stage"));
    for r in run.stop() {
        r.unwrap();
    }
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events, a.rejections), (2, 0, 0, 2));
}

/// An append holds at most `max_batch_bytes` of records (one decision may take it past): with a
/// bound below one event, every decision is an append of its own, and nothing is lost or doubled.
#[test]
fn appends_are_bounded_in_bytes_and_the_rest_of_a_read_is_decided_next() {
    let rig = rig(1);
    let tasks = 40;
    for t in 0..tasks {
        rig.send(&format!("task-{t}"), &format!("c{t}"), CUSTOMER, Some(0), &create());
    }
    let run = rig.start("a", AggregatorConfig { max_batch_bytes: 1, ..AggregatorConfig::default() });
    for t in 0..tasks {
        assert!(rig.outcome(&format!("c{t}")).accepted);
    }
    for r in run.stop() {
        r.unwrap();
    }
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.decisions, a.version_gaps, a.duplicate_events), (tasks, tasks, 0, 0));
    // one append per decision: each record's batch has one event (the file log frames an append)
    assert_eq!(rig.log.end_offset(&rig.topics.events, 0).unwrap(), tasks + 1, "the claim and one event each");
}

/// A command whose event is larger than the journal takes (`max_event_bytes`, or the log's own
/// limit) is rejected with `event_too_large`; the next command of the task is decided as usual.
#[test]
fn a_command_whose_event_would_be_too_large_is_rejected() {
    let rig = rig(1);
    let run = rig.start("a", AggregatorConfig { max_event_bytes: 4096, ..AggregatorConfig::default() });
    let TaskCommand::CreateTask(mut big) = create() else { unreachable!() };
    big.class_group.classes = (1..=100).map(|id| ProductClass { id, name: format!("{id:0>64}") }).collect();
    rig.send("task-1", "big", CUSTOMER, Some(0), &TaskCommand::CreateTask(big));
    rig.send("task-1", "small", CUSTOMER, Some(0), &create());
    let refused = rig.outcome("big");
    assert_eq!(refused.rejection_code.as_deref(), Some("event_too_large"), "{refused:?}");
    assert_eq!(rig.outcome("small").first_version, Some(1));
    for r in run.stop() {
        r.unwrap();
    }
}

#[test]
fn a_redelivered_command_returns_its_earlier_outcome_and_writes_nothing() {
    let rig = rig(1);
    let run = rig.start("a", AggregatorConfig::default());
    rig.send("task-1", "c1", CUSTOMER, None, &create());
    let first = rig.outcome("c1");
    rig.send("task-1", "c1", CUSTOMER, None, &create());
    rig.send("task-1", "c2", CUSTOMER, None, &TaskCommand::CancelTask(CancelTask { reason: "x".into() }));
    rig.outcome("c2");
    let again = rig.outcome("c1");
    assert!(again.duplicate);
    assert_eq!(
        (again.accepted, again.first_version, again.events_offset),
        (true, first.first_version, first.events_offset)
    );
    run.stop();
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.duplicate_events, a.decisions), (2, 0, 2));
}

#[test]
fn a_restart_restores_state_from_snapshots_and_the_journal() {
    let rig = rig(1);
    // checkpoint often, so the restart needs both snapshots and the journal tail
    let config = AggregatorConfig { snapshot_every: 3, cache_capacity: 2, ..AggregatorConfig::default() };
    let run = rig.start("a", config.clone());
    for t in 0..6 {
        rig.send(&format!("task-{t}"), &format!("create-{t}"), CUSTOMER, None, &create());
        rig.send(
            &format!("task-{t}"),
            &format!("detect-{t}"),
            EXECUTOR,
            None,
            &TaskCommand::RequestDetection(RequestDetection {}),
        );
    }
    rig.outcome("detect-5");
    let stats = run.stop();
    assert_eq!(stats[0].as_ref().unwrap().events, 12);
    let run = rig.start("b", config);
    for t in 0..6 {
        // the state survived: this is only legal after DetectionRequested
        let cmd = TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() });
        rig.send(&format!("task-{t}"), &format!("nf-{t}"), EXECUTOR, Some(2), &cmd);
        // and so did deduplication
        rig.send(&format!("task-{t}"), &format!("create-{t}"), CUSTOMER, None, &create());
    }
    for t in 0..6 {
        let o = rig.outcome(&format!("nf-{t}"));
        assert!(o.accepted, "{o:?}");
        assert_eq!(o.first_version, Some(3));
        assert!(rig.outcome(&format!("create-{t}")).duplicate);
    }
    let stats = run.stop().pop().unwrap().unwrap();
    assert!(stats.epoch >= 2);
    assert!(stats.snapshot_loads > 0);
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (18, 0, 0));
}

/// A snapshot this build cannot read (another format, damaged bytes) is never taken for "no
/// task": the task is rebuilt from the journal, so a CreateTask sent again is refused, not
/// accepted at version 1 a second time.
#[test]
fn an_unreadable_snapshot_is_rebuilt_from_the_journal_not_taken_for_a_new_task() {
    let rig = rig(1);
    let config = AggregatorConfig { snapshot_every: 1, cache_capacity: 1, ..AggregatorConfig::default() };
    let run = rig.start("a", config.clone());
    for t in 0..2 {
        rig.send(&format!("task-{t}"), &format!("create-{t}"), CUSTOMER, None, &create());
    }
    rig.outcome("create-1");
    run.stop();
    // one snapshot of a format this build does not know, one whose bytes are damaged
    for (t, value) in [vec![9u8, 1, 2, 3], vec![1u8, 0xff, 0xff, 0xff, 0xff]].into_iter().enumerate() {
        let key = format!("{}/task-{t}", rig.topics.events);
        assert!(rig.store.get("aggregate_snapshots", &key, "").unwrap().is_some(), "a snapshot to damage");
        let row = visionlog_store::Row { partition: key, clustering: String::new(), version: 1_000_000, value };
        rig.store.put(&[Put { table: "aggregate_snapshots".into(), row }]).unwrap();
    }
    let run = rig.start("b", config);
    for t in 0..2 {
        rig.send(&format!("task-{t}"), &format!("again-{t}"), CUSTOMER, None, &create());
    }
    for t in 0..2 {
        let o = rig.outcome(&format!("again-{t}"));
        assert_eq!((o.accepted, o.rejection_code.as_deref()), (false, Some("task_already_exists")), "{o:?}");
    }
    run.stop();
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (2, 0, 0));
}

/// A command the codec cannot read while the schema registry is down is neither rejected nor
/// dead-lettered: the partition stops (to be started again after a back-off) with nothing of
/// its batch appended, and decides the command once the registry is back.
#[test]
fn a_registry_outage_holds_the_partition_instead_of_rejecting() {
    use std::sync::atomic::Ordering::SeqCst;
    let base = rig(1);
    let registry = Arc::new(visionlog_codec::conformance::Outage::new(EmbeddedRegistry::in_memory()));
    let codec = Arc::new(Codec::new(registry.clone()).unwrap());
    let rig = Rig {
        codec: codec.clone(),
        bus: CommandBus::new(base.log.clone(), codec.clone(), base.topics.clone()),
        ..base
    };
    // a newer producer's CreateTask: an id this aggregator has to look up
    let newer =
        visionlog_codec::conformance::register_newer_copy(&registry.inner, &codec, "visionlog.commands.CreateTask");
    let mut value = codec.encode_command(&create()).unwrap();
    value[1..5].copy_from_slice(&newer.to_be_bytes());
    let mut headers = Vec::new();
    envelope("task-1", "c1", CUSTOMER, Some(0), &create()).write_headers(&mut headers);
    let p = partition_for(b"task-1", 1);
    let record = visionlog_log::Record { key: Some(b"task-1".to_vec()), headers, value };
    rig.log.append(&rig.topics.commands, p, &[record]).unwrap();
    registry.down.store(true, SeqCst);
    let run = rig.start("a", AggregatorConfig::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run.threads.iter().all(|t| t.is_finished()) {
        assert!(Instant::now() < deadline, "the partition did not stop for the registry");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = run.stop();
    assert!(matches!(stopped[0], Err(AggregatorError::Unavailable { .. })), "{:?}", stopped[0]);
    assert!(rig.try_outcome("c1", Duration::from_millis(200)).is_none(), "no outcome: not decided");
    assert!(rig.dead_letters().is_empty(), "nothing dead-lettered");
    registry.down.store(false, SeqCst);
    let run = rig.start("b", AggregatorConfig::default());
    let o = rig.outcome("c1");
    assert!(o.accepted, "{o:?}");
    run.stop();
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.decisions), (1, 1));
}

/// Two installations (topic prefixes) on one log and one store: each restores its own
/// snapshots and checkpoint, never the other's, for the same task id.
#[test]
fn two_installations_sharing_a_store_keep_their_snapshots_and_checkpoints_apart() {
    let a = rig(1);
    let b = a.beside("other", 1);
    let config = AggregatorConfig { snapshot_every: 1, cache_capacity: 1, ..AggregatorConfig::default() };
    // installation a takes the task three versions further than b
    let run = a.start("a", config.clone());
    a.send("task-1", "a-create", CUSTOMER, None, &create());
    a.send("task-1", "a-detect", EXECUTOR, Some(1), &TaskCommand::RequestDetection(RequestDetection {}));
    let nf = TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() });
    a.send("task-1", "a-nf", EXECUTOR, Some(2), &nf);
    assert!(a.outcome("a-nf").accepted);
    run.stop();
    let run = b.start("b", config.clone());
    b.send("task-1", "b-create", CUSTOMER, None, &create());
    assert_eq!(
        b.outcome("b-create").first_version,
        Some(1),
        "b's task starts at version 1: {:?}",
        b.outcome("b-create")
    );
    run.stop();
    // restarted, each owner restores its own state from the shared store
    let (run_a, run_b) = (a.start("a2", config.clone()), b.start("b2", config));
    b.send("task-1", "b-detect", EXECUTOR, Some(1), &TaskCommand::RequestDetection(RequestDetection {}));
    a.send("task-1", "a-detect-again", EXECUTOR, Some(3), &TaskCommand::RequestDetection(RequestDetection {}));
    let (ob, oa) = (b.outcome("b-detect"), a.outcome("a-detect-again"));
    assert!(ob.accepted && ob.first_version == Some(2), "{ob:?}");
    assert!(!oa.accepted, "a's task is past detection (model not found): {oa:?}");
    for (rig, run, events) in [(&a, run_a, 3), (&b, run_b, 2)] {
        run.stop();
        let audit = audit(rig.log.as_ref(), &rig.topics).unwrap();
        assert_eq!((audit.events, audit.version_gaps, audit.duplicate_events), (events, 0, 0));
    }
}

/// A store that, once armed with a task, applies every row of a call but that task's snapshot
/// and then fails the call: what a Scylla store call does when one of its concurrent writes
/// fails. Returns it and the arming (`None` once the snapshot write was tried).
fn failing_snapshot_of(store: Arc<dyn ReadStore>, task: &str) -> (Arc<FaultyPuts>, Arc<Mutex<Option<String>>>) {
    let armed = Arc::new(Mutex::new(Some(task.to_owned())));
    let arming = armed.clone();
    let fault = move |puts: &[Put]| {
        let mut armed = arming.lock().unwrap();
        // the aggregator's snapshot table (keys `topic/task`)
        let i = armed.as_ref().and_then(|task| {
            puts.iter().position(|p| p.table == "aggregate_snapshots" && p.row.partition.ends_with(&format!("/{task}")))
        })?;
        let task = armed.take().unwrap();
        let rest: Vec<Put> = puts.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.clone()).collect();
        Some((rest, format!("injected: the snapshot write of {task} failed")))
    };
    (Arc::new(FaultyPuts { inner: store, fault: Box::new(fault) }), armed)
}

/// A checkpoint never lands while a snapshot it covers failed: the next owner restores the task
/// from the journal, so versions are not used twice and a redelivered command stays a duplicate.
fn snapshots_are_durable_before_their_checkpoint(store: Arc<dyn ReadStore>) {
    let (failing, armed) = failing_snapshot_of(store, "task-1");
    let rig = rig_with(On::FileLog, 1, Some(failing.clone()));
    let config = AggregatorConfig { snapshot_every: 2, ..AggregatorConfig::default() };
    let run = rig.start("a", config.clone());
    rig.send("task-0", "create-0", CUSTOMER, None, &create());
    rig.send("task-1", "create-1", CUSTOMER, None, &create());
    rig.outcome("create-1");
    let results = run.stop();
    assert!(armed.lock().unwrap().is_none(), "the snapshot write was never tried");
    assert!(matches!(results[0], Err(AggregatorError::Store(_))), "{:?}", results[0]);
    // a new owner, the store healthy again
    let run = rig.start("b", config);
    rig.send("task-1", "create-1", CUSTOMER, None, &create()); // redelivered
    rig.send("task-1", "detect-1", EXECUTOR, Some(1), &TaskCommand::RequestDetection(RequestDetection {}));
    let detect = rig.outcome("detect-1");
    assert!(detect.accepted, "task-1's state was lost: {detect:?}");
    assert_eq!(detect.first_version, Some(2));
    assert!(rig.outcome("create-1").duplicate, "the redelivered create was decided again");
    for r in run.stop() {
        r.unwrap();
    }
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (3, 0, 0));
}

#[test]
fn snapshots_are_durable_before_their_checkpoint_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    snapshots_are_durable_before_their_checkpoint(Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap()));
}

#[test]
fn snapshots_are_durable_before_their_checkpoint_on_the_cql_server() {
    snapshots_are_durable_before_their_checkpoint(Arc::new(visionlog_store::conformance::cql_test_store("snapshots")));
}

#[test]
fn bad_input_is_rejected_or_dead_lettered_and_the_partition_keeps_flowing() {
    bad_input(On::FileLog);
}

#[test]
fn on_kafka_bad_input_is_rejected_or_dead_lettered_and_the_partition_keeps_flowing() {
    bad_input(On::Kafka);
}

fn bad_input(on: On) {
    let rig = rig_on(on, 1);
    let run = rig.start("a", AggregatorConfig { max_command_bytes: 64 * 1024, ..AggregatorConfig::default() });
    let headers = |id: &str, ty: &str| {
        let mut h = Vec::new();
        envelope("task-1", id, CUSTOMER, None, &create()).write_headers(&mut h);
        h.retain(|(n, _)| n != names::TYPE);
        h.push((names::TYPE.into(), ty.as_bytes().to_vec()));
        h
    };
    // malformed bytes
    rig.bus.send_raw("task-1", headers("bad-bytes", "CreateTask"), b"\x00\x00\x00\x00\x01garbage".to_vec()).unwrap();
    // an unknown schema id
    let mut unknown = rig.codec.encode_command(&create()).unwrap();
    unknown[1..5].copy_from_slice(&4242u32.to_be_bytes());
    rig.bus.send_raw("task-1", headers("bad-schema", "CreateTask"), unknown).unwrap();
    // oversized
    rig.bus.send_raw("task-1", headers("too-big", "CreateTask"), vec![0; 100 * 1024]).unwrap();
    // no envelope at all
    rig.bus.send_raw("task-1", vec![], b"hello".to_vec()).unwrap();
    // the task, then an invalid box and an unknown class
    rig.send("task-1", "create", CUSTOMER, None, &create());
    let svc = |id: &str, cmd: &TaskCommand| rig.send("task-1", id, EXECUTOR, None, cmd);
    svc("detect", &TaskCommand::RequestDetection(RequestDetection {}));
    let det = |b: BoundingBox, class_id| {
        TaskCommand::RecordDetections(RecordDetections {
            model: ModelRef { model_id: "m".into(), version: 1 },
            detections: vec![Detection { image: 0, bbox: b, class_id, score: 0.9 }],
        })
    };
    svc("bad-box", &det(BoundingBox { x: 90.0, y: 90.0, w: 50.0, h: 50.0 }, Some(1)));
    svc("bad-class", &det(BoundingBox { x: 1.0, y: 1.0, w: 5.0, h: 5.0 }, Some(77)));
    svc("good", &det(BoundingBox { x: 1.0, y: 1.0, w: 5.0, h: 5.0 }, Some(1)));
    let code = |id: &str| rig.outcome(id).rejection_code;
    assert_eq!(code("bad-bytes").as_deref(), Some("invalid_avro"));
    assert_eq!(code("bad-schema").as_deref(), Some("unknown_schema_id"));
    assert_eq!(code("too-big").as_deref(), Some("oversized"));
    assert_eq!(code("bad-box").as_deref(), Some("invalid_box"));
    assert_eq!(code("bad-class").as_deref(), Some("unknown_class"));
    assert!(rig.outcome("good").accepted, "the partition kept flowing");
    let stats = run.stop().pop().unwrap().unwrap();
    let dead = rig.dead_letters();
    let codes: Vec<_> = dead.iter().map(|d| d.error_code.as_str()).collect();
    assert_eq!(codes, ["invalid_avro", "unknown_schema_id", "oversized", "invalid_envelope"]);
    assert_eq!(dead[3].value, b"hello", "the original bytes are kept");
    assert_eq!(stats.dead_letters, 4);
    let a = audit(rig.log.as_ref(), &rig.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (3, 0, 0));
}

/// Two owners take the same partition while commands flow. Whatever the interleaving, the
/// journal holds each command decided once, contiguous versions, and a superseded owner stops:
/// what the older one writes after the newer one's claim (a zombie) is believed by no reader.
#[test]
fn two_owners_racing_for_a_partition_never_corrupt_the_journal() {
    two_owners(On::FileLog, 5);
}

#[test]
fn on_kafka_a_zombie_owner_is_ignored_by_every_reader() {
    two_owners(On::Kafka, 3);
}

fn two_owners(on: On, rounds: u64) {
    for round in 0..rounds {
        let rig = rig_on(on, 1);
        let tasks = 40;
        let sender = {
            let bus = rig.bus.clone();
            std::thread::spawn(move || {
                for t in 0..tasks {
                    let task = format!("task-{t}");
                    let c = create();
                    bus.send(&envelope(&task, &format!("create-{t}"), CUSTOMER, None, &c), &c).unwrap();
                    let d = TaskCommand::RequestDetection(RequestDetection {});
                    bus.send(&envelope(&task, &format!("detect-{t}"), EXECUTOR, None, &d), &d).unwrap();
                    if t % 7 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        let a = rig.start("owner-a", AggregatorConfig { max_batch: 3, ..AggregatorConfig::default() });
        std::thread::sleep(Duration::from_millis(round * 3));
        let b = rig.start("owner-b", AggregatorConfig { max_batch: 3, ..AggregatorConfig::default() });
        sender.join().unwrap();
        // every command is decided by whoever holds the partition now
        let missing: Vec<_> =
            (0..tasks).filter(|t| rig.try_outcome(&format!("detect-{t}"), Duration::from_secs(20)).is_none()).collect();
        // stop the later-started owner first: its claim then exists before the other checks its fence
        let (newer, older) = (b.stop(), a.stop());
        assert!(
            missing.is_empty(),
            "round {round}: no outcome for tasks {missing:?}; newer {newer:?}, older {older:?}"
        );
        for t in 0..tasks {
            assert!(rig.outcome(&format!("detect-{t}")).accepted, "round {round}");
        }
        // whoever claimed last served to the end; the other was fenced (during its run, or by the
        // fence check it makes before its last checkpoint)
        let results: Vec<_> = newer.into_iter().chain(older).collect();
        let served = results.iter().filter(|r| r.is_ok()).count();
        let fenced = results.iter().filter(|r| matches!(r, Err(AggregatorError::Fenced { .. }))).count();
        assert_eq!((served, fenced), (1, 1), "round {round}: {results:?}");
        let audit = audit(rig.log.as_ref(), &rig.topics).unwrap();
        assert_eq!(audit.version_gaps, 0, "round {round}");
        assert_eq!(audit.duplicate_events, 0, "round {round}");
        assert_eq!(audit.events, 2 * tasks, "round {round}");
        assert!(audit.versions.values().all(|v| *v == 2));
    }
}

/// Growing from 4 to 8 partitions under load (the runbook's procedure): commands flow while the
/// old aggregators decide them; the producers pause and the aggregators drain; the journal is
/// copied into topics of 8 partitions and verified; the new aggregators take the new topics and
/// commands flow again. Every command is decided once, versions go on where they were, commands
/// sent again after the move are duplicates, and no outcome of the old journal is published again.
#[test]
fn the_journal_moves_from_4_to_8_partitions_under_load_and_no_command_is_lost_or_decided_twice() {
    grow_partitions(On::FileLog);
}

#[test]
fn on_kafka_the_journal_moves_from_4_to_8_partitions_under_load() {
    grow_partitions(On::Kafka);
}

fn grow_partitions(on: On) {
    use visionlog_journal::migrate::{CopyState, MigrateError, copy_journal, verify_copy};
    let old = rig_on(on, 4);
    let new = old.beside(&format!("{}-grown", old.topics.events.trim_end_matches(".events")), 8);
    let config = AggregatorConfig { snapshot_every: 25, cache_capacity: 16, ..AggregatorConfig::default() };
    let not_found = TaskCommand::RecordModelNotFound(RecordModelNotFound { step: "detection".into() });
    let detect = TaskCommand::RequestDetection(RequestDetection {});

    // before: 120 tasks created and sent to detection, 40 of them found without a model; half
    // way, while the old aggregators decide, the journal is copied online for the first time
    let run = old.start("old", config.clone());
    let saved = std::cell::RefCell::new(None);
    let mut keep = |s: &CopyState| -> Result<(), MigrateError> {
        *saved.borrow_mut() = Some(s.clone());
        Ok(())
    };
    let mut online = None;
    for t in 0..120 {
        old.send(&format!("task-{t}"), &format!("c-{t}"), CUSTOMER, None, &create());
        old.send(&format!("task-{t}"), &format!("d-{t}"), EXECUTOR, Some(1), &detect);
        if t < 40 {
            old.send(&format!("task-{t}"), &format!("n-{t}"), EXECUTOR, Some(2), &not_found);
        }
        if t == 60 {
            // the aggregators of every partition are deciding: the first 31 tasks' creations and
            // requests (62 decisions at least) are decided (one outcome alone proved it of one
            // partition only: CI once copied 40, the other aggregators not yet started)
            for d in 0..=30 {
                old.outcome(&format!("d-{d}"));
            }
            let s =
                copy_journal(old.log.as_ref(), &old.topics, &new.topics, "migration", None, &mut keep, &mut |_, _| {});
            online = Some(s.unwrap());
        }
    }
    let online = online.unwrap();
    assert!(online.holds() && online.copied.decisions > 60, "the online run copied what was decided: {online:?}");
    old.send("task-7", "refused", EXECUTOR, Some(9), &detect); // a wrong version: rejected
    // the pause: nothing more is sent to the old topics; they drain, and the final run copies the tail
    assert!(!old.outcome("refused").accepted);
    for t in 0..120 {
        assert!(old.outcome(&format!("d-{t}")).accepted);
        if t < 40 {
            assert!(old.outcome(&format!("n-{t}")).accepted);
        }
    }
    run.stop();
    let last = saved.borrow().clone().unwrap();
    assert_eq!(last, online, "the state of the online run was saved");
    let fin =
        copy_journal(old.log.as_ref(), &old.topics, &new.topics, "migration", Some(last), &mut keep, &mut |_, _| {})
            .unwrap();
    let copied = &fin.copied;
    assert_eq!((copied.decisions, copied.events, copied.rejections), (281, 280, 1));
    assert!(fin.holds(), "{fin:?}");
    assert!(
        copied.decisions - online.copied.decisions < 281 - 60,
        "the pause copied the tail only: {} of 281",
        copied.decisions - online.copied.decisions
    );
    assert!(copied.per_partition.iter().all(|n| *n > 0), "every new partition holds tasks: {copied:?}");
    let v = verify_copy(old.log.as_ref(), &old.topics, &new.topics).unwrap();
    assert!(v.holds(), "{v:?}");
    assert!(
        copy_journal(old.log.as_ref(), &old.topics, &new.topics, "again", None, &mut keep, &mut |_, _| {}).is_err(),
        "a first copy into a journal that holds one is refused"
    );

    // after: the new aggregators on 8 partitions, commands flowing again
    let run = new.start("new", config);
    let mut sent = 0;
    for t in 40..120 {
        new.send(&format!("task-{t}"), &format!("n-{t}"), EXECUTOR, Some(2), &not_found);
        sent += 1;
    }
    for t in 0..40 {
        new.send(&format!("task-{t}"), &format!("n-{t}"), EXECUTOR, Some(2), &not_found); // sent again
        sent += 1;
    }
    for t in 120..160 {
        new.send(&format!("task-{t}"), &format!("c-{t}"), CUSTOMER, None, &create());
        sent += 1;
    }
    new.send("task-0", "stale", EXECUTOR, Some(2), &detect);
    new.send("task-7", "refused", EXECUTOR, Some(9), &detect); // sent again
    sent += 2;
    for t in 40..120 {
        let o = new.outcome(&format!("n-{t}"));
        assert!(o.accepted && o.first_version == Some(3), "the state moved with the journal: {o:?}");
    }
    for t in 0..40 {
        assert!(new.outcome(&format!("n-{t}")).duplicate, "a command decided before the move stays decided");
    }
    for t in 120..160 {
        assert_eq!(new.outcome(&format!("c-{t}")).first_version, Some(1));
    }
    assert!(!new.outcome("stale").accepted, "task-0 is at version 3 since before the move");
    let refused = new.outcome("refused");
    assert!(refused.duplicate && !refused.accepted, "a rejection moved too: {refused:?}");
    run.stop();
    let outcomes: usize = (0..8).map(|p| new.log.read(&new.topics.outcomes, p, 0, 100_000).unwrap().len()).sum();
    assert_eq!(outcomes, sent, "one outcome per command sent after the move, none republished from the copy");
    let a = audit(new.log.as_ref(), &new.topics).unwrap();
    assert_eq!((a.events, a.version_gaps, a.duplicate_events), (280 + 80 + 40, 0, 0));
}

/// A copy cut short between an append and the save of its state goes on from the last state
/// saved: the copies the state does not know are counted, never appended twice.
#[test]
fn a_copy_cut_short_goes_on_from_its_last_saved_state_without_copying_twice() {
    use visionlog_journal::migrate::{CopyState, MigrateError, copy_journal, verify_copy};
    let old = rig(4);
    let new = old.beside("cut", 3);
    let run = old.start("old", AggregatorConfig::default());
    for t in 0..50 {
        old.send(&format!("task-{t}"), &format!("c-{t}"), CUSTOMER, None, &create());
    }
    for t in 0..50 {
        old.outcome(&format!("c-{t}"));
    }
    run.stop();
    // the state is saved after each old partition's append; the second save fails
    let mut saved: Option<CopyState> = None;
    let mut saves = 0;
    let mut failing = |s: &CopyState| -> Result<(), MigrateError> {
        saves += 1;
        if saves == 2 {
            return Err(MigrateError::Refused("injected: the store is gone".into()));
        }
        saved = Some(s.clone());
        Ok(())
    };
    let cut = copy_journal(old.log.as_ref(), &old.topics, &new.topics, "m", None, &mut failing, &mut |_, _| {});
    assert!(cut.is_err(), "the run stops where its state could not be saved");
    let last = saved.clone().expect("the first save");
    let mut keep = |_: &CopyState| -> Result<(), MigrateError> { Ok(()) };
    let state =
        copy_journal(old.log.as_ref(), &old.topics, &new.topics, "m", Some(last), &mut keep, &mut |_, _| {}).unwrap();
    assert!(state.holds(), "{state:?}");
    assert_eq!(state.read.decisions, 50);
    let v = verify_copy(old.log.as_ref(), &old.topics, &new.topics).unwrap();
    assert!(v.holds() && v.new.events == 50, "no copy twice: {v:?}");
}
