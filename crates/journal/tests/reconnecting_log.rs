//! A log that cannot hand records over for a while (a Kafka client reconnecting to a restarted
//! broker answers reads with nothing): readers wait for the records the log holds, and never
//! take the silence for the end or guess the epoch in force.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{DetectionRequested, TaskEvent};
use visionlog_journal::{
    ConsumeError, DecisionOrigin, EventHandler, HandledEvent, Subscription, Topics, accepted, claim_record,
    consume_until, event_record,
};
use visionlog_log::conformance::CappedReads;
use visionlog_log::{EventLog, FileLog, FileLogOptions, Position, Record};

/// The file log, except that its next `silent` reads come back empty.
struct Reconnecting {
    log: CappedReads<FileLog>,
    silent: Arc<AtomicUsize>,
}

impl Reconnecting {
    fn new(inner: FileLog) -> Self {
        let silent = Arc::new(AtomicUsize::new(0));
        let counter = silent.clone();
        let cap = move |max| {
            let silenced = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if silenced { 0 } else { max }
        };
        Self { log: CappedReads { inner, cap: Box::new(cap) }, silent }
    }
}

/// A decision of owner epoch `epoch`: task `task` at version 1.
fn decision(codec: &Codec, epoch: u64, task: &str) -> Record {
    let envelope = EventEnvelope {
        event_id: format!("e-{task}"),
        task_id: task.into(),
        version: 1,
        event_type: "DetectionRequested".into(),
        occurred_at_ms: 0,
        recorded_at_ms: 0,
        correlation_id: task.into(),
        causation_id: task.into(),
        actor: "service:test".into(),
        tenant: "t".into(),
    };
    let payload = codec.encode_event(&TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 })).unwrap();
    let origin = DecisionOrigin {
        command_id: task,
        command_type: "RequestDetection",
        command_offset: 0,
        epoch,
        trace_parent: None,
    };
    event_record(&envelope, payload, origin, 0, 1)
}

struct Seen(Vec<String>);

impl EventHandler for Seen {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        self.0.push(e.envelope.task_id.clone());
        Ok(())
    }
}

/// Offsets: 0 claim of epoch 1, 1 task a, 2 task b, 3 task c, 4 claim of epoch 2, 5 task d; the
/// group's position is 2 (a consumer handled a before it stopped).
fn journal() -> (tempfile::TempDir, Reconnecting, Codec, Topics) {
    let dir = tempfile::tempdir().unwrap();
    let inner = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
    let codec = Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap();
    let topics = Topics::new("t", 1);
    topics.create(&inner).unwrap();
    let records = [
        claim_record(1, "a"),
        decision(&codec, 1, "a"),
        decision(&codec, 1, "b"),
        decision(&codec, 1, "c"),
        claim_record(2, "b"),
        decision(&codec, 2, "d"),
    ];
    inner.append(&topics.events, 0, &records).unwrap();
    inner.commit("g", &topics.events, 0, &Position::at(2)).unwrap();
    (dir, Reconnecting::new(inner), codec, topics)
}

#[test]
fn a_consumer_resuming_on_a_silent_log_hands_every_event_after_its_position() {
    let (_dir, reconnecting, codec, topics) = journal();
    let log = &reconnecting.log;
    // the read of the record before the position (its epoch) and the first reads after it
    reconnecting.silent.store(3, Ordering::SeqCst);
    let sub = Subscription { log, codec: &codec, topics: &topics, group: "g", partition: 0 };
    let mut seen = Seen(Vec::new());
    consume_until(sub, &mut seen, 6, 100, &AtomicBool::new(false)).unwrap();
    assert_eq!(seen.0, ["b", "c", "d"], "decisions of the owner in force before the next claim are events too");
    assert_eq!(log.committed("g", &topics.events, 0).unwrap(), Some(Position::at(6)));
}

#[test]
fn a_history_read_on_a_silent_log_is_whole() {
    let (_dir, reconnecting, _codec, topics) = journal();
    let log = &reconnecting.log;
    reconnecting.silent.store(2, Ordering::SeqCst);
    let tasks: Vec<String> =
        accepted(log, &topics.events, 0, 2..u64::MAX).map(|e| e.unwrap().envelope.task_id).collect();
    assert_eq!(tasks, ["b", "c", "d"]);
    reconnecting.silent.store(1, Ordering::SeqCst);
    let tasks: Vec<String> =
        accepted(log, &topics.events, 0, 0..u64::MAX).map(|e| e.unwrap().envelope.task_id).collect();
    assert_eq!(tasks, ["a", "b", "c", "d"], "an empty read below the end is not the end");
}
