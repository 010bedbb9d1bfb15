//! Failover on a real broker: two aggregator processes in one consumer group, one killed with
//! SIGKILL in the middle of the work, and the survivor takes its partitions over; and one
//! aggregator stopped with SIGTERM under load, which drains, commits and leaves its group, so
//! that its successor decides the rest with no command lost or decided twice.

use std::collections::HashSet;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use visionlog_aggregator::GROUP;
use visionlog_codec::Codec;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{RequestDetection, TaskCommand};
use visionlog_integration_tests::{
    Broker, envelope, free_loopback_addr, http_get, small_create_task, terminate, visionlog,
};
use visionlog_journal::{CommandBus, LogRegistry, Topics, audit};
use visionlog_log::{EventLog, KafkaLog};

const TASKS: usize = 10_000;
const PARTITIONS: u32 = 8;

fn commands(range: std::ops::Range<usize>) -> Vec<(CommandEnvelope, TaskCommand)> {
    let mut out = Vec::new();
    for t in range {
        let task = format!("task-{t:05}");
        let create = small_create_task();
        let detect = TaskCommand::RequestDetection(RequestDetection {});
        // the customer creates; a service asks for detection (a customer may not)
        for (step, (actor, command)) in
            [("customer:acme", create), ("service:executor", detect)].into_iter().enumerate()
        {
            let id = format!("{task}/{step}");
            out.push((envelope(&task, &id, actor, Some(step as u64), &command), command));
        }
    }
    out
}

/// Commands decided so far, by the group's committed positions.
fn decided(log: &dyn EventLog, topics: &Topics) -> u64 {
    (0..PARTITIONS).map(|p| log.committed(GROUP, &topics.commands, p).unwrap().map_or(0, |c| c.offset)).sum()
}

fn aggregator(address: &str, prefix: &str, data: &std::path::Path) -> Child {
    aggregator_with(address, prefix, data, &[])
}

fn aggregator_with(address: &str, prefix: &str, data: &std::path::Path, args: &[&str]) -> Child {
    visionlog(data)
        .args(["--log", &format!("kafka://{address}"), "--topic-prefix", prefix, "--partitions", "8"])
        .args(args)
        .arg("aggregator")
        .env("VISIONLOG_LOG_LEVEL", "info")
        .stderr(std::fs::File::create(data.with_extension("log")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_aggregator_s_partitions_move_to_the_survivor() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // VISIONLOG_KEEP_TEST_DATA=DIR keeps the processes' data and logs for a look afterwards
    let root = std::env::var_os("VISIONLOG_KEEP_TEST_DATA").map_or(dir.path().to_owned(), std::path::PathBuf::from);
    let prefix = broker.name("failover");
    let log: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(broker.address()).unwrap());
    let topics = Topics::new(&prefix, PARTITIONS);
    topics.create(log.as_ref()).unwrap();
    // the registry the services share: the cluster's `schemas` topic
    let codec = Arc::new(Codec::new(Arc::new(LogRegistry::open(log.clone(), &topics.schemas).unwrap())).unwrap());
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());

    let mut first = aggregator(broker.address(), &prefix, &root.join("a"));
    let mut second = aggregator(broker.address(), &prefix, &root.join("b"));
    // the first half, then kill one member while it decides the second half
    bus.send_batch(&commands(0..TASKS / 2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while decided(log.as_ref(), &topics) < (TASKS / 2) as u64 {
        assert!(Instant::now() < deadline, "the group did not decide the first half");
        std::thread::sleep(Duration::from_millis(100));
    }
    // the second half arrives paced, and one member dies while it does: what comes after can
    // only be decided by the survivor, on its own partitions and on those it takes over
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (bus, sent) = (bus.clone(), sent.clone());
        std::thread::spawn(move || {
            for chunk in commands(TASKS / 2..TASKS).chunks(250) {
                bus.send_batch(chunk).unwrap();
                sent.fetch_add(chunk.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    while sent.load(Ordering::Relaxed) < TASKS / 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    sender.join().unwrap();
    let total = (2 * TASKS) as u64;
    let deadline = Instant::now() + Duration::from_secs(180);
    while decided(log.as_ref(), &topics) < total {
        assert!(second.try_wait().unwrap().is_none(), "the survivor died");
        if Instant::now() > deadline {
            let positions: Vec<_> = (0..PARTITIONS)
                .map(|p| {
                    let done = log.committed(GROUP, &topics.commands, p).unwrap().map_or(0, |c| c.offset);
                    (p, done, log.end_offset(&topics.commands, p).unwrap(), log.end_offset(&topics.events, p).unwrap())
                })
                .collect();
            panic!("the survivor did not take over: (partition, decided, commands, events): {positions:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = terminate(&mut second, Duration::from_secs(30));
    assert!(status.success(), "the survivor exited with {status} on SIGTERM");

    let a = audit(log.as_ref(), &topics).unwrap();
    assert_eq!(a.events, total, "every accepted command has exactly one set of events");
    assert_eq!((a.version_gaps, a.duplicate_events, a.rejections), (0, 0, 0));
    assert_eq!(a.accepted_commands.len() as u64, total);
    assert!(a.claims > PARTITIONS as u64, "the survivor claimed what it took over: {} claims", a.claims);
    // every command has an outcome (some more than one: a redelivery is answered again)
    assert_eq!(answered(log.as_ref(), &topics).len() as u64, total);
}

/// A service process that a failing test does not leave behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every command key answered on `outcomes`.
fn answered(log: &dyn EventLog, topics: &Topics) -> HashSet<Vec<u8>> {
    let mut answered = HashSet::new();
    for p in 0..PARTITIONS {
        let end = log.end_offset(&topics.outcomes, p).unwrap();
        let mut at = 0;
        while at < end {
            let records = log.read(&topics.outcomes, p, at, 10_000).unwrap();
            at = records.last().map_or(end, |r| r.offset + 1);
            answered.extend(records.into_iter().filter_map(|r| r.key));
        }
    }
    answered
}

#[test]
fn an_aggregator_stopped_with_sigterm_under_load_drains_and_hands_over() {
    // two commands per task
    const SENT_TASKS: usize = 1_000;
    let total = (2 * SENT_TASKS) as u64;
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = broker.name("sigterm");
    let log: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(broker.address()).unwrap());
    let topics = Topics::new(&prefix, PARTITIONS);
    topics.create(log.as_ref()).unwrap();
    let codec = Arc::new(Codec::new(Arc::new(LogRegistry::open(log.clone(), &topics.schemas).unwrap())).unwrap());
    let bus = CommandBus::new(log.clone(), codec.clone(), topics.clone());

    let health = free_loopback_addr();
    let addr = health.to_string();
    let first = aggregator_with(broker.address(), &prefix, &dir.path().join("a"), &["--health-addr", &addr]);
    let mut first = KillOnDrop(first);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the aggregator never became ready");
        // ready, and the group gave its one member every partition
        if let Some((200, body)) = http_get(health, "/readyz") {
            let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
            let partitions = ready["services"][0]["detail"]["partitions"].as_array().unwrap().len();
            if partitions == PARTITIONS as usize {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(health, "/healthz").map(|(s, _)| s), Some(200));

    // commands arrive paced; SIGTERM lands while the aggregator decides them
    let sender = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for chunk in commands(0..SENT_TASKS).chunks(50) {
                bus.send_batch(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    while decided(log.as_ref(), &topics) < total / 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = terminate(&mut first.0, Duration::from_secs(30));
    assert!(status.success(), "the aggregator exited with {status} on SIGTERM");
    assert_eq!(http_get(health, "/healthz"), None, "the health server went with the process");
    sender.join().unwrap();

    // what it decided it committed: the journal holds exactly the decisions the positions say
    let at_exit = audit(log.as_ref(), &topics).unwrap();
    assert_eq!(at_exit.decisions, decided(log.as_ref(), &topics), "every decision committed before leaving");
    assert!(at_exit.decisions < total, "stopped before the end of the work");

    // a successor takes over at once (the group was left, no session timeout) and finishes
    let mut second = KillOnDrop(aggregator(broker.address(), &prefix, &dir.path().join("b")));
    let deadline = Instant::now() + Duration::from_secs(120);
    while decided(log.as_ref(), &topics) < total {
        assert!(Instant::now() < deadline, "the successor did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(terminate(&mut second.0, Duration::from_secs(30)).success());
    let a = audit(log.as_ref(), &topics).unwrap();
    assert_eq!((a.decisions, a.events, a.accepted_commands.len() as u64), (total, total, total));
    assert_eq!((a.version_gaps, a.duplicate_events, a.rejections), (0, 0, 0));
    assert_eq!(answered(log.as_ref(), &topics).len() as u64, total, "every command has an outcome");
}
