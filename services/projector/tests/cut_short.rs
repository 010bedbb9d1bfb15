//! A projector write cut short (the store failed after the rows of a batch, before its states),
//! then retried in smaller batches, as a Kafka client hands them when records arrive slowly:
//! no row of a state the task has left stays in the views.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{
    ClassGroup, CustomerId, DetectionRequested, ImageRef, ModelNotFound, ProductClass, Recipe, TaskCancelled,
    TaskCreated, TaskEvent, TaskType,
};
use visionlog_journal::{DecisionOrigin, Subscription, Topics, claim_record, consume_until, event_record};
use visionlog_log::conformance::CappedReads;
use visionlog_log::{EventLog, FileLog, FileLogOptions, Record};
use visionlog_projector::Projector;
use visionlog_store::conformance::FaultyPuts;
use visionlog_store::{EmbeddedStore, Put, for_each_row};
use visionlog_views::generations::table;
use visionlog_views::views::{TASK_STATE, TASKS_BY_STATUS};

/// The file log, handing at most the next of `caps` records per read (then any number).
fn trickle(inner: FileLog, caps: &[usize]) -> CappedReads<FileLog> {
    let caps = Mutex::new(VecDeque::from(caps.to_vec()));
    let cap = move |max: usize| if max > 1 { caps.lock().unwrap().pop_front().unwrap_or(max) } else { max };
    CappedReads { inner, cap: Box::new(cap) }
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

fn created() -> TaskEvent {
    TaskEvent::TaskCreated(TaskCreated {
        customer: CustomerId::from("acme"),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: "k".into(), classes: vec![ProductClass { id: 1, name: "a".into() }] },
        images: vec![ImageRef { uri: "store://images/acme/a.png".into(), width: 10, height: 10 }],
        callback_url: None,
        personal: None,
    })
}

#[test]
fn a_write_cut_short_and_retried_in_smaller_batches_leaves_no_stale_row() {
    let dir = tempfile::tempdir().unwrap();
    let codec = Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap();
    let topics = Topics::new("t", 1);
    let inner = FileLog::open(&dir.path().join("log"), FileLogOptions::default()).unwrap();
    topics.create(&inner).unwrap();
    let created = created();
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
    let log = trickle(inner, &[4, 3]);
    // the first call that writes task states fails (after the call with the batch's rows went through)
    let failed = Arc::new(AtomicBool::new(false));
    let fail_once = failed.clone();
    let store = Arc::new(FaultyPuts {
        inner: Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap()),
        fault: Box::new(move |puts: &[Put]| {
            let states = puts.iter().any(|p| p.table == table(TASK_STATE, 1));
            (states && !fail_once.swap(true, Ordering::SeqCst)).then(|| (Vec::new(), "the CQL node went away".into()))
        }),
    });
    let mut projector = Projector::new(store.clone(), 1);
    let sub = Subscription { log: &log, codec: &codec, topics: &topics, group: "projector.g1", partition: 0 };
    consume_until(sub, &mut projector, 5, 512, &AtomicBool::new(false)).unwrap();
    assert!(failed.load(Ordering::SeqCst), "the states' write failed once");

    let mut by_status = Vec::new();
    for_each_row(store.as_ref(), &table(TASKS_BY_STATUS, 1), |r| {
        by_status.push(r.partition);
        Ok(())
    })
    .unwrap();
    assert_eq!(by_status, ["acme|cancelled"], "only the status the task is in");
}

/// An event the codec cannot read (an unknown schema id) in the middle of a task's stream is
/// dead-lettered with its reason and passed over: the task's later events fold on, and the
/// position moves to the end (before, they waited for it for ever and nothing was committed).
#[test]
fn an_undecodable_event_is_dead_lettered_and_its_task_and_partition_flow_on() {
    let dir = tempfile::tempdir().unwrap();
    let codec = Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap();
    let topics = Topics::new("t", 1);
    let log = FileLog::open(&dir.path().join("log"), FileLogOptions::default()).unwrap();
    topics.create(&log).unwrap();
    let created = created();
    let mut poisoned = event(&codec, 2, &TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }));
    poisoned.value = vec![0, 0, 0, 0x7f, 0x7f, 1, 2, 3]; // Confluent framing of a schema id nobody has
    let records = vec![
        claim_record(1, "a"),
        event(&codec, 1, &created),
        poisoned,
        event(
            &codec,
            3,
            &TaskEvent::ModelNotFound(ModelNotFound { step: "detection".into(), class_group_key: "k".into() }),
        ),
        event(&codec, 4, &TaskEvent::TaskCancelled(TaskCancelled { reason: "no model".into() })),
    ];
    log.append(&topics.events, 0, &records).unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let mut projector = Projector::new(store.clone(), 1);
    let sub = Subscription { log: &log, codec: &codec, topics: &topics, group: "projector.g1", partition: 0 };
    consume_until(sub, &mut projector, 5, 512, &AtomicBool::new(false)).unwrap();
    assert_eq!(projector.stats().undecodable, 1);
    assert_eq!(
        log.committed("projector.g1", &topics.events, 0).unwrap().map(|p| p.offset),
        Some(5),
        "the position moved to the end"
    );
    let mut by_status = Vec::new();
    for_each_row(store.as_ref(), &table(TASKS_BY_STATUS, 1), |r| {
        by_status.push(r.partition);
        Ok(())
    })
    .unwrap();
    assert_eq!(by_status, ["acme|cancelled"], "the events after the unreadable one were folded in");
    let letters = log.read(&topics.dead_letters, 0, 0, 10).unwrap();
    let letter = codec.decode_dead_letter(&letters[0].value).unwrap();
    assert_eq!((letters.len(), letter.source_offset), (1, 2), "{letter:?}");
    assert!(letter.error_code.contains("schema"), "{}", letter.error_code);
}
