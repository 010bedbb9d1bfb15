//! A task's history read from the projector's per-task index and the journal's tail: whole and
//! in order whether the projector is caught up, behind, or started on a generation projected
//! before the index existed; and reading it costs the task's events, not the partition's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use visionlog_codec::envelope::EventEnvelope;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::{
    ClassGroup, CustomerId, DetectionRequested, ImageRef, ProductClass, Recipe, TaskCreated, TaskEvent, TaskType,
};
use visionlog_journal::{DecisionOrigin, Subscription, Topics, claim_record, consume_until, event_record};
use visionlog_log::conformance::CappedReads;
use visionlog_log::{EventLog, FileLog, FileLogOptions, Position, Record};
use visionlog_projector::Projector;
use visionlog_store::{EmbeddedStore, ReadStore};
use visionlog_views::generations::{group, table};
use visionlog_views::history::{BATCH_TASKS, HISTORY_FROM, TASK_EVENTS};
use visionlog_views::{HistorySource, batch_tasks, task_history};

struct Journal {
    _dir: tempfile::TempDir,
    /// The file log, counting the reads made of it.
    log: CappedReads<FileLog>,
    reads: Arc<AtomicUsize>,
    codec: Codec,
    topics: Topics,
    store: Arc<dyn ReadStore>,
    versions: std::collections::HashMap<String, u64>,
    /// The correlation id of the events appended (each task's own id when none).
    batch: Option<String>,
}

fn event(task: &str, version: u64) -> TaskEvent {
    if version == 1 {
        TaskEvent::TaskCreated(TaskCreated {
            customer: CustomerId::from("acme"),
            task_type: TaskType::ProductDetection,
            recipe: Recipe::Detection,
            class_group: ClassGroup {
                key: "acme/ice-cream".into(),
                classes: vec![ProductClass { id: 1, name: "vanilla".into() }],
            },
            images: vec![ImageRef { uri: format!("store://images/{task}.png"), width: 64, height: 64 }],
            callback_url: None,
            personal: None,
        })
    } else {
        TaskEvent::DetectionRequested(DetectionRequested { attempt: version as u32 - 1 })
    }
}

impl Journal {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inner = FileLog::open(&dir.path().join("log"), FileLogOptions::default()).unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let count = reads.clone();
        // reads of at most 16 records: a scan of the partition shows in the count
        let cap = Box::new(move |max: usize| {
            count.fetch_add(1, Ordering::SeqCst);
            max.min(16)
        });
        let log = CappedReads { inner, cap };
        let codec = Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap();
        let topics = Topics::new("h", 1);
        topics.create(&log).unwrap();
        log.append(&topics.events, 0, &[claim_record(1, "owner")]).unwrap();
        let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
        Self { _dir: dir, log, reads, codec, topics, store, versions: Default::default(), batch: None }
    }

    /// Appends the next event of each task, in the order given (one decision each).
    fn append(&mut self, tasks: &[&str]) {
        let records: Vec<Record> = tasks
            .iter()
            .map(|task| {
                let version = self.versions.entry(task.to_string()).or_default();
                *version += 1;
                let envelope = EventEnvelope {
                    event_id: format!("e-{task}-{version}"),
                    task_id: task.to_string(),
                    version: *version,
                    event_type: if *version == 1 { "TaskCreated" } else { "DetectionRequested" }.into(),
                    occurred_at_ms: 1_000,
                    recorded_at_ms: 1_000 + *version as i64,
                    correlation_id: self.batch.clone().unwrap_or_else(|| task.to_string()),
                    causation_id: format!("c-{task}-{version}"),
                    actor: "service:test".into(),
                    tenant: "acme".into(),
                };
                let payload = self.codec.encode_event(&event(task, *version)).unwrap();
                let command_id = format!("c-{task}-{version}");
                let origin = DecisionOrigin {
                    command_id: &command_id,
                    command_type: "Test",
                    command_offset: 0,
                    epoch: 1,
                    trace_parent: None,
                };
                event_record(&envelope, payload, origin, 0, 1)
            })
            .collect();
        self.log.append(&self.topics.events, 0, &records).unwrap();
    }

    /// Projects generation 1 up to the log's end and commits there.
    fn project(&self) {
        let end = self.log.end_offset(&self.topics.events, 0).unwrap();
        let sub =
            Subscription { log: &self.log, codec: &self.codec, topics: &self.topics, group: &group(1), partition: 0 };
        let mut projector = Projector::new(self.store.clone(), 1);
        consume_until(sub, &mut projector, end, 100, &AtomicBool::new(false)).unwrap();
    }

    fn history(&self, task: &str) -> Vec<(u64, String)> {
        let source =
            HistorySource { log: &self.log, codec: &self.codec, topics: &self.topics, store: self.store.as_ref() };
        task_history(source, task).unwrap().into_iter().map(|e| (e.envelope.version, e.envelope.event_type)).collect()
    }

    fn batch(&self, correlation_id: &str) -> Vec<String> {
        let source =
            HistorySource { log: &self.log, codec: &self.codec, topics: &self.topics, store: self.store.as_ref() };
        batch_tasks(source, correlation_id).unwrap().into_values().flatten().collect()
    }

    fn indexed(&self, task: &str) -> usize {
        visionlog_store::read_partition(self.store.as_ref(), &table(TASK_EVENTS, 1), task).unwrap().len()
    }
}

fn versions(n: u64) -> Vec<(u64, String)> {
    (1..=n).map(|v| (v, if v == 1 { "TaskCreated" } else { "DetectionRequested" }.to_string())).collect()
}

#[test]
fn a_task_read_after_its_events_were_accepted_sees_them_all_whether_projected_or_not() {
    let mut j = Journal::new();
    // never projected: the journal is read (there is no index yet)
    j.append(&["a", "b", "a"]);
    assert_eq!(j.history("a"), versions(2));
    j.project();
    assert_eq!(j.indexed("a"), 2, "the projector indexed a's events");
    // accepted after the projector's position: read from the journal's tail
    j.append(&["a", "b", "a"]);
    assert_eq!(j.indexed("a"), 2);
    assert_eq!(j.history("a"), versions(4), "read-your-writes: events the projector has not seen yet");
    assert_eq!(j.history("b"), versions(2));
    j.project();
    assert_eq!(j.indexed("a"), 4);
    assert_eq!(j.history("a"), versions(4), "the index and the tail never show an event twice");
}

#[test]
fn a_caught_up_read_touches_the_tasks_rows_and_not_the_partition() {
    let mut j = Journal::new();
    for _ in 0..50 {
        j.append(&["busy-1", "busy-2", "busy-3", "busy-4"]);
    }
    j.append(&["mine", "mine"]);
    for _ in 0..50 {
        j.append(&["busy-1", "busy-2", "busy-3", "busy-4"]);
    }
    j.project();
    j.reads.store(0, Ordering::SeqCst);
    assert_eq!(j.history("mine"), versions(2));
    let reads = j.reads.load(Ordering::SeqCst);
    assert!(reads <= 2, "{reads} log reads for a task whose events are all indexed (the tail is empty)");
    // the journal fold it replaces reads the whole partition (over 400 records, 16 a read)
    j.reads.store(0, Ordering::SeqCst);
    let folded = visionlog_journal::task_events(&j.log, &j.codec, &j.topics, "mine", 0).unwrap();
    assert_eq!(folded.len(), 2);
    assert!(j.reads.load(Ordering::SeqCst) > 25, "the fold reads the partition");
}

#[test]
fn a_generation_projected_before_the_index_existed_is_read_whole_from_the_journal_below_it() {
    let mut j = Journal::new();
    j.append(&["a", "b", "a", "b"]);
    // an older projector got this far without indexing: this one resumes there
    let resume_at = j.log.end_offset(&j.topics.events, 0).unwrap();
    j.log.commit(&group(1), &j.topics.events, 0, &Position::at(resume_at)).unwrap();
    j.append(&["a", "b", "a"]);
    j.project();
    let from = j.store.get(&table(HISTORY_FROM, 1), "0", "").unwrap().expect("history_from written");
    assert_eq!(u64::MAX - from.version, resume_at, "the index holds the partition from where it resumed");
    assert_eq!(j.indexed("a"), 2, "only what this projector saw is indexed");
    assert_eq!(j.history("a"), versions(4), "the rest is read from the journal below the index");
    assert_eq!(j.history("b"), versions(3));
}

#[test]
fn the_tasks_of_a_batch_are_found_by_its_correlation_id_projected_or_not_without_reading_the_partition() {
    let mut j = Journal::new();
    for _ in 0..50 {
        j.append(&["busy-1", "busy-2", "busy-3", "busy-4"]);
    }
    j.batch = Some("bulk-1".into());
    j.append(&["x", "y", "x"]);
    j.batch = None;
    for _ in 0..50 {
        j.append(&["busy-1", "busy-2", "busy-3", "busy-4"]);
    }
    assert_eq!(j.batch("bulk-1"), ["x", "y"], "never projected: the partition is read");
    j.project();
    let rows = visionlog_store::read_partition(j.store.as_ref(), &table(BATCH_TASKS, 1), "bulk-1").unwrap();
    assert_eq!(rows.iter().map(|r| (r.clustering.as_str(), r.version)).collect::<Vec<_>>(), [("x", 2), ("y", 1)]);
    j.reads.store(0, Ordering::SeqCst);
    assert_eq!(j.batch("bulk-1"), ["x", "y"]);
    let reads = j.reads.load(Ordering::SeqCst);
    assert!(reads <= 2, "{reads} log reads for a batch that is all indexed (the tail is empty)");
    // accepted after the projector's position: found in the journal's tail (read-your-writes)
    j.batch = Some("bulk-1".into());
    j.append(&["z"]);
    j.batch = Some("bulk-2".into());
    j.append(&["x"]);
    assert_eq!(j.batch("bulk-1"), ["x", "y", "z"]);
    assert_eq!(j.batch("bulk-2"), ["x"]);
    assert!(j.batch("no-such-batch").is_empty());
}
