//! The projector's promises: any delivery order with redelivery gives the view of in-order
//! delivery, and the engine monitor's counts are the hand-computed ones.

use proptest::prelude::*;
use std::sync::Arc;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_domain::{
    AnnotatedObject, AssistanceReason, AssistanceRequested, BoundingBox, ClassGroup, CustomerId, DetectedObject,
    DetectionRequested, ImageRef, ModelNotFound, ModelRef, ObjectId, ObjectLabel, ObjectsAdded, ObjectsDetected,
    ObjectsLabeled, ObjectsRemoved, OperatorAssigned, OperatorFinished, OperatorId, ProductClass,
    QualityCheckRequested, Recipe, ReprocessMode, ReprocessRequested, ResultSource, SessionId, SessionPurpose,
    TaskCancelled, TaskCreated, TaskEvent, TaskResultGenerated, TaskType,
};
use visionlog_journal::{EventHandler, HandledEvent};
use visionlog_projector::Projector;
use visionlog_store::{EmbeddedStore, ReadStore, Row, for_each_row};
use visionlog_views::day;
use visionlog_views::generations::table;
use visionlog_views::queries::{self, Backtest};
use visionlog_views::views::{Counts, VIEW_TABLES};

const DAY_MS: i64 = 86_400_000;
/// 2026-11-10T00:00:00Z
const T0: i64 = 1_794_268_800_000;

fn bbox(x: f32, y: f32) -> BoundingBox {
    BoundingBox { x, y, w: 40.0, h: 60.0 }
}

/// Both customers call their class group `acme/ice-cream` (a key is the customer's own name),
/// with classes of their own names.
fn classes(customer: &str) -> ClassGroup {
    let prefix = if customer == "acme" { "product" } else { "gx" };
    ClassGroup {
        key: "acme/ice-cream".into(),
        classes: (1..=3).map(|id| ProductClass { id, name: format!("{prefix}-{id}") }).collect(),
    }
}

fn created(customer: &str) -> TaskEvent {
    TaskEvent::TaskCreated(TaskCreated {
        customer: CustomerId::from(customer),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: classes(customer),
        images: vec![ImageRef { uri: "store://images/a.jpg".into(), width: 640, height: 480 }],
        callback_url: None,
        personal: None,
    })
}

fn detected(attempt: u32, model_version: u32, boxes: &[(f32, f32, u32)]) -> TaskEvent {
    TaskEvent::ObjectsDetected(ObjectsDetected {
        attempt,
        model: ModelRef { model_id: "shelf-detector".into(), version: model_version },
        objects: boxes
            .iter()
            .enumerate()
            .map(|(i, (x, y, c))| DetectedObject {
                object_id: ObjectId(format!("m{attempt}.{i}")),
                image: 0,
                bbox: bbox(*x, *y),
                class_id: Some(*c),
                score: 0.9,
            })
            .collect(),
    })
}

fn assigned(op: &str, session: &str, purpose: SessionPurpose) -> TaskEvent {
    TaskEvent::OperatorAssigned(OperatorAssigned {
        operator: OperatorId(op.into()),
        session_id: SessionId(session.into()),
        purpose,
    })
}

fn finished(op: &str, session: &str, purpose: SessionPurpose) -> TaskEvent {
    TaskEvent::OperatorFinished(OperatorFinished {
        operator: OperatorId(op.into()),
        session_id: SessionId(session.into()),
        purpose,
    })
}

fn result(revision: u32) -> TaskEvent {
    TaskEvent::TaskResultGenerated(TaskResultGenerated {
        revision,
        source: ResultSource::Automatic,
        model: None,
        objects: Vec::new(),
    })
}

/// A task's stream, chosen by `kind`: annotated by an operator, detected and quality-checked
/// with corrections, re-processed by a newer model, or cancelled.
fn stream(task: usize, kind: u8) -> Vec<TaskEvent> {
    let op = format!("op-{}", task % 3);
    let s = |n: u32| format!("s{task}-{n}");
    let mut evs = vec![created(if task.is_multiple_of(2) { "acme" } else { "globex" })];
    evs.push(TaskEvent::DetectionRequested(DetectionRequested { attempt: 1 }));
    match kind % 4 {
        0 => {
            evs.push(TaskEvent::ModelNotFound(ModelNotFound { step: "detection".into(), class_group_key: "k".into() }));
            evs.push(TaskEvent::AssistanceRequested(AssistanceRequested { reason: AssistanceReason::ModelNotFound }));
            evs.push(assigned(&op, &s(1), SessionPurpose::Annotation));
            evs.push(TaskEvent::ObjectsAdded(ObjectsAdded {
                operator: OperatorId(op.clone()),
                session_id: SessionId(s(1)),
                objects: (0..3)
                    .map(|i| AnnotatedObject {
                        object_id: ObjectId(format!("a{i}")),
                        image: 0,
                        bbox: bbox(i as f32 * 50.0, 0.0),
                        class_id: Some(1 + i % 3),
                    })
                    .collect(),
            }));
            evs.push(finished(&op, &s(1), SessionPurpose::Annotation));
            evs.push(result(1));
        }
        1 | 2 => {
            evs.push(detected(1, 1, &[(0.0, 0.0, 1), (100.0, 0.0, 2), (200.0, 0.0, 2)]));
            evs.push(result(1));
            evs.push(TaskEvent::QualityCheckRequested(QualityCheckRequested { revision: 1 }));
            evs.push(assigned(&op, &s(2), SessionPurpose::QualityCheck));
            evs.push(TaskEvent::ObjectsRemoved(ObjectsRemoved {
                operator: OperatorId(op.clone()),
                session_id: SessionId(s(2)),
                object_ids: vec![ObjectId("m1.2".into())],
            }));
            evs.push(TaskEvent::ObjectsLabeled(ObjectsLabeled {
                operator: OperatorId(op.clone()),
                session_id: SessionId(s(2)),
                labels: vec![ObjectLabel { object_id: ObjectId("m1.1".into()), class_id: 3 }],
            }));
            evs.push(finished(&op, &s(2), SessionPurpose::QualityCheck));
            evs.push(result(2));
            if kind % 4 == 2 {
                evs.push(TaskEvent::ReprocessRequested(ReprocessRequested { mode: ReprocessMode::LatestModels }));
                evs.push(TaskEvent::DetectionRequested(DetectionRequested { attempt: 2 }));
                evs.push(detected(2, 2, &[(0.0, 0.0, 1), (100.0, 0.0, 3)]));
                evs.push(result(3));
                evs.push(TaskEvent::QualityCheckRequested(QualityCheckRequested { revision: 3 }));
                evs.push(assigned(&op, &s(3), SessionPurpose::QualityCheck));
                evs.push(finished(&op, &s(3), SessionPurpose::QualityCheck));
            }
        }
        _ => evs.push(TaskEvent::TaskCancelled(TaskCancelled { reason: "customer asked".into() })),
    }
    evs
}

struct Delivered {
    envelope: EventEnvelope,
    event: TaskEvent,
}

fn envelopes(tasks: usize, kinds: &[u8]) -> Vec<Delivered> {
    let mut out = Vec::new();
    for t in 0..tasks {
        let task_id = format!("task-{t:03}");
        for (i, event) in stream(t, kinds[t % kinds.len()]).into_iter().enumerate() {
            let version = i as u64 + 1;
            let at = T0 + (t as i64 % 3) * DAY_MS + version as i64 * 1000;
            out.push(Delivered {
                envelope: EventEnvelope {
                    event_id: format!("{task_id}/{version}"),
                    task_id: task_id.clone(),
                    version,
                    event_type: event.type_name().into(),
                    occurred_at_ms: at,
                    recorded_at_ms: at,
                    correlation_id: task_id.clone(),
                    causation_id: format!("c{version}"),
                    actor: "service:test".into(),
                    tenant: "acme".into(),
                },
                event,
            });
        }
    }
    // interleave the tasks as a partition would
    out.sort_by_key(|d| (d.envelope.version, d.envelope.task_id.clone()));
    out
}

fn deliver(projector: &mut Projector, events: &[&Delivered], batch: usize) {
    for (i, d) in events.iter().enumerate() {
        projector
            .handle(HandledEvent {
                partition: 0,
                offset: i as u64,
                envelope: &d.envelope,
                event: &d.event,
                payload: &[],
            })
            .unwrap();
        if (i + 1).is_multiple_of(batch) {
            projector.flush().unwrap();
        }
    }
    projector.flush().unwrap();
}

/// Every live row of every view of generation 1.
fn dump(store: &dyn ReadStore) -> Vec<(String, Row)> {
    let mut out = Vec::new();
    for t in VIEW_TABLES {
        let name = table(t, 1);
        for_each_row(store, &name, |r| {
            out.push((name.clone(), r));
            Ok(())
        })
        .unwrap();
    }
    out
}

fn fresh() -> (tempfile::TempDir, Arc<dyn ReadStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("views.redb")).unwrap());
    (dir, store)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Redelivering and shuffling the events of a partition gives the view of in-order delivery.
    #[test]
    fn shuffled_and_redelivered_events_give_the_in_order_view(
        kinds in proptest::collection::vec(0u8..4, 1..6),
        tasks in 1usize..12,
        order in any::<u64>(),
        redeliveries in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        batch in 1usize..20,
    ) {
        let events = envelopes(tasks, &kinds);
        let (_d1, in_order) = fresh();
        let mut p = Projector::new(in_order.clone(), 1);
        deliver(&mut p, &events.iter().collect::<Vec<_>>(), 512);
        prop_assert!(!p.holding_anything());

        let (_d2, shuffled) = fresh();
        let mut mixed: Vec<&Delivered> = events.iter().collect();
        mixed.extend(redeliveries.iter().map(|i| &events[i.index(events.len())]));
        // a deterministic shuffle from `order`
        let mut state = order | 1;
        for i in (1..mixed.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            mixed.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut q = Projector::new(shuffled.clone(), 1);
        deliver(&mut q, &mixed, batch);
        prop_assert!(!q.holding_anything());
        prop_assert_eq!(dump(in_order.as_ref()), dump(shuffled.as_ref()));
    }
}

/// Extension for the tests: whether events wait for a predecessor.
trait Holding {
    fn holding_anything(&self) -> bool;
}

impl Holding for Projector {
    fn holding_anything(&self) -> bool {
        EventHandler::holding(self)
    }
}

/// The fixed scenario, by hand. Ground truth after the QC of task-001 (kind 1): m1.0 (class 1
/// at x=0), m1.1 relabelled to class 3 (x=100); m1.2 removed.
/// - run 1 of model v1 predicted class 1 at x=0 (TP), class 2 at x=100 (FP: truth is class 3)
///   and class 2 at x=200 (FP: removed): class 1 TP 1; class 2 FP 2; class 3 FN 1.
/// - task-002 (kind 2) scores run 1 the same against its first QC; run 2 of model v2 (class 1
///   at 0, class 3 at 100) against the second QC (same truth): class 1 TP 1, class 3 TP 1.
#[test]
fn the_engine_monitor_matches_a_hand_computed_scenario() {
    let events = envelopes(3, &[0, 1, 2]);
    let (_d, store) = fresh();
    let mut p = Projector::new(store.clone(), 1);
    deliver(&mut p, &events.iter().collect::<Vec<_>>(), 7);
    let report = queries::accuracy(store.as_ref(), None, None, None).unwrap();
    assert_eq!(report.iter().map(|m| m.model.as_str()).collect::<Vec<_>>(), ["shelf-detector@1", "shelf-detector@2"]);
    let v1 = &report[0];
    // two tasks' first runs, each: class 1 TP 1, class 2 FP 2, class 3 FN 1
    assert_eq!((v1.total.tp, v1.total.fp, v1.total.fn_, v1.total.runs), (2, 4, 2, 2));
    let class = |m: &queries::ModelAccuracy, c: u32| {
        let l = m.classes.iter().find(|l| l.class_id == Some(c)).unwrap();
        Counts { tp: l.tp, fp: l.fp, fn_: l.fn_ }
    };
    assert_eq!(class(v1, 1), Counts { tp: 2, fp: 0, fn_: 0 });
    assert_eq!(class(v1, 2), Counts { tp: 0, fp: 4, fn_: 0 });
    assert_eq!(class(v1, 3), Counts { tp: 0, fp: 0, fn_: 2 });
    assert_eq!(v1.total.precision, Some(2.0 / 6.0));
    assert_eq!(v1.total.recall, Some(2.0 / 4.0));
    // task-001 ran on day 2 of the fixture, task-002 on day 3
    assert_eq!(v1.days.iter().map(|d| d.day.clone()).collect::<Vec<_>>(), [day(T0 + DAY_MS), day(T0 + 2 * DAY_MS)]);
    let v2 = &report[1];
    assert_eq!((v2.total.tp, v2.total.fp, v2.total.fn_), (2, 0, 0));
    assert_eq!(v2.drift, None, "no backtest recorded");
    // drift: v1 was backtested at 90% precision; production shows 33%
    queries::record_backtest(store.as_ref(), "shelf-detector@1", 1, &Backtest { precision: 0.9, recall: 0.5 }).unwrap();
    queries::record_backtest(store.as_ref(), "shelf-detector@2", 1, &Backtest { precision: 0.95, recall: 0.97 })
        .unwrap();
    let report = queries::accuracy(store.as_ref(), None, None, None).unwrap();
    assert_eq!(report[0].drift, Some(true));
    assert_eq!(report[1].drift, Some(false));
    // one day only
    let day3 = day(T0 + 2 * DAY_MS);
    let only = queries::accuracy(store.as_ref(), Some("shelf-detector@1"), Some(&day3), Some(&day3)).unwrap();
    assert_eq!(only[0].total.runs, 1);
}

/// The other views on the same fixture: operators, billing, training data, tasks by status.
#[test]
fn the_other_views_answer_their_queries() {
    let events = envelopes(8, &[0, 1, 2, 3]);
    let (_d, store) = fresh();
    let mut p = Projector::new(store.clone(), 1);
    deliver(&mut p, &events.iter().collect::<Vec<_>>(), 5);
    let s = store.as_ref();
    // billing: acme has tasks 0, 2, 4, 6 (kinds 0, 2, 0, 2): all billable
    let month = visionlog_views::month(T0);
    let bill = queries::billing(s, "acme", &month).unwrap();
    assert_eq!((bill.len(), bill[0].tasks, bill[0].billable_tasks, bill[0].billable_images), (1, 4, 4, 4));
    // globex: tasks 1, 3, 5, 7 (kinds 1, 3, 1, 3): the cancelled ones are not billed
    let bill = queries::billing(s, "globex", &month).unwrap();
    assert_eq!((bill[0].tasks, bill[0].billable_tasks), (4, 2));
    // tasks by status
    let filter = queries::TaskFilter { status: Some("cancelled".into()), ..Default::default() };
    let cancelled = queries::tasks(s, &filter).unwrap();
    assert_eq!(cancelled.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), ["task-003", "task-007"]);
    let filter = queries::TaskFilter {
        customer: Some("acme".into()),
        status: Some("result_generated".into()),
        ..Default::default()
    };
    assert_eq!(queries::tasks(s, &filter).unwrap().len(), 2, "tasks 0 and 4; 2 and 6 end quality-checked");
    // operators: annotation sessions draw 3 objects; QC sessions of kind 1 correct 2 of 3
    let ops = queries::operators(s, None, None, None).unwrap();
    let total_annotated: u64 = ops.iter().map(|o| o.objects_annotated).sum();
    assert_eq!(total_annotated, 6, "tasks 0 and 4 annotated 3 objects each");
    let checked: u64 = ops.iter().map(|o| o.objects_checked).sum();
    let corrections: u64 = ops.iter().map(|o| o.corrections).sum();
    // kind 1 and 2 first QC: 3 objects, 2 corrections; kind 2 second QC: 2 objects, none
    assert_eq!((checked, corrections), (4 * 3 + 2 * 2, 4 * 2));
    // training data: ground truth of annotated and quality-checked tasks, by class, each
    // customer's own though both use one class group key
    let training = queries::training(s, Some("acme"), Some("acme/ice-cream")).unwrap();
    let examples: u64 = training.iter().map(|l| l.examples).sum();
    assert_eq!(examples, 2 * 3 + 2 * 2, "acme: 2 annotated tasks of 3 objects, 2 checked tasks of 2");
    assert_eq!(training[0].class_name.as_deref(), Some("product-1"));
    let theirs = queries::training(s, Some("globex"), Some("acme/ice-cream")).unwrap();
    assert_eq!(theirs.iter().map(|l| l.examples).sum::<u64>(), 2 * 2, "globex: 2 checked tasks of 2");
    assert!(
        theirs.iter().all(|l| l.customer == "globex" && l.class_name.as_deref().is_some_and(|n| n.starts_with("gx-")))
    );
    assert_eq!(queries::training(s, None, None).unwrap().iter().map(|l| l.examples).sum::<u64>(), 14);
    let crops = queries::training_examples(s, "acme", "acme/ice-cream", 3).unwrap();
    assert!(crops.iter().all(|r| r.crops.iter().all(|c| c.location.starts_with("training/acme/acme%2Fice-cream/3/"))));
    let globex_crops = queries::training_examples(s, "globex", "acme/ice-cream", 3).unwrap();
    assert!(!globex_crops.is_empty() && globex_crops.iter().all(|r| r.task_id.ends_with(['1', '3', '5', '7'])));
    assert!(crops.iter().all(|r| r.task_id.ends_with(['0', '2', '4', '6'])), "acme's crops are acme's tasks'");
    // one class-group key, two tenants: each its own definition, labels and training set
    let acme = queries::class_group(s, "acme", "acme/ice-cream").unwrap().unwrap();
    let globex = queries::class_group(s, "globex", "acme/ice-cream").unwrap().unwrap();
    assert_eq!((acme.classes[&1].as_str(), globex.classes[&1].as_str()), ("product-1", "gx-1"));
    let mut groups = queries::class_groups(s).unwrap();
    groups.sort();
    let key = "acme/ice-cream".to_owned();
    assert_eq!(groups, [("acme".to_owned(), key.clone()), ("globex".to_owned(), key)]);
    for (customer, tasks) in [("acme", ['0', '2', '4', '6']), ("globex", ['1', '3', '5', '7'])] {
        let labelled: Vec<_> =
            queries::labelled(s, customer, "acme/ice-cream", None).unwrap().map(|r| r.unwrap()).collect();
        assert!(!labelled.is_empty(), "{customer}");
        assert!(labelled.iter().all(|r| r.task_id.ends_with(tasks)), "{customer}: only its own labels");
    }
    // the relabelled object left class 2 (tombstoned) and appears in class 3
    let class2 = queries::training_examples(s, "acme", "acme/ice-cream", 2).unwrap();
    assert!(class2.iter().all(|r| r.crops.iter().all(|c| c.object_id != "m1.1")));
}

/// The extractor writes every crop before the training index names it; a write failing half-way
/// leaves no index row and no extraction record, and the retry completes both; a missing image
/// is recorded and does not block the partition.
#[test]
fn crops_are_written_before_the_index_even_across_a_failure() {
    use visionlog_projector::Extractor;
    use visionlog_views::extraction;
    let (_d, store) = fresh();
    let dir = tempfile::tempdir().unwrap();
    let objects = visionlog_objects::Objects::open(&format!("file://{}", dir.path().display())).unwrap();
    // task-000 (kind 0) is annotated: objects a0 (class 1, x=0), a1 (class 2, x=50), a2 (class 3, x=100)
    let image = visionlog_imaging::render_shelf(
        640,
        480,
        &[(0.0, 0.0, 40.0, 60.0, 1), (50.0, 0.0, 40.0, 60.0, 2), (100.0, 0.0, 40.0, 60.0, 3)],
    );
    objects.put("images/a.jpg", image.to_png()).unwrap();
    // class 2's folder cannot be made: a file sits where it goes
    let blocker = dir.path().join("training/acme/acme%2Fice-cream/2");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();

    let events = envelopes(2, &[0, 3]); // task-001 is cancelled before any truth
    let all: Vec<&Delivered> = events.iter().collect();
    let hook = Arc::new(Extractor::new(objects.clone(), store.clone()));
    let mut p = Projector::new(store.clone(), 1).with_before_rows(hook.clone());
    for (i, d) in all.iter().enumerate() {
        p.handle(HandledEvent { partition: 0, offset: i as u64, envelope: &d.envelope, event: &d.event, payload: &[] })
            .unwrap();
    }
    assert!(p.flush().is_err(), "the crop of class 2 could not be written");
    assert!(extraction(store.as_ref(), "task-000").unwrap().is_none());
    assert!(queries::training(store.as_ref(), None, None).unwrap().is_empty(), "no index row before its crops");

    // the consumer retries from its position: the same events again, now with room for class 2
    std::fs::remove_file(&blocker).unwrap();
    let mut p = Projector::new(store.clone(), 1).with_before_rows(hook);
    deliver(&mut p, &all, 512);
    let record = extraction(store.as_ref(), "task-000").unwrap().unwrap();
    assert_eq!((record.crops, record.error), (3, None));
    for class_id in 1..=3 {
        let rows = queries::training_examples(store.as_ref(), "acme", "acme/ice-cream", class_id).unwrap();
        let crop = &rows[0].crops[0];
        let png = objects.get(&crop.location, 1 << 20).unwrap();
        let pixels = visionlog_imaging::Rgb::from_png(&png).unwrap();
        assert_eq!((pixels.width, pixels.height), (40, 60));
        let centre = ((30 * 40 + 20) * 3) as usize;
        assert_eq!(&pixels.pixels[centre..centre + 3], &visionlog_imaging::class_color(class_id));
    }

    // a task whose image is missing: recorded, and the partition goes on
    let (_d2, store2) = fresh();
    let empty = tempfile::tempdir().unwrap();
    let none = visionlog_objects::Objects::open(&format!("file://{}", empty.path().display())).unwrap();
    let mut p = Projector::new(store2.clone(), 1).with_before_rows(Arc::new(Extractor::new(none, store2.clone())));
    deliver(&mut p, &all, 3);
    let record = extraction(store2.as_ref(), "task-000").unwrap().unwrap();
    assert_eq!(record.crops, 0);
    assert!(record.error.unwrap().contains("no object at images/a.jpg"));
    assert_eq!(queries::training(store2.as_ref(), None, None).unwrap().len(), 3, "the index still lists the examples");
}

/// A store whose first write of the `task_state` table fails (after the view rows of the same
/// batch were stored): a crash-free failure half-way.
struct StateWriteFails {
    inner: Arc<dyn ReadStore>,
    armed: std::sync::atomic::AtomicBool,
}

impl ReadStore for StateWriteFails {
    fn put(
        &self,
        puts: &[visionlog_store::Put],
    ) -> Result<Vec<visionlog_store::PutOutcome>, visionlog_store::StoreError> {
        if puts.iter().any(|p| p.table.starts_with("task_state"))
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(visionlog_store::StoreError::Backend("injected: the state write failed".into()));
        }
        self.inner.put(puts)
    }
    fn get(&self, t: &str, p: &str, c: &str) -> Result<Option<Row>, visionlog_store::StoreError> {
        self.inner.get(t, p, c)
    }
    fn scan_partition(
        &self,
        t: &str,
        p: &str,
        a: Option<&str>,
        n: usize,
    ) -> Result<Vec<Row>, visionlog_store::StoreError> {
        self.inner.scan_partition(t, p, a, n)
    }
    fn scan_table(&self, t: &str, a: Option<(&str, &str)>, n: usize) -> Result<Vec<Row>, visionlog_store::StoreError> {
        self.inner.scan_table(t, a, n)
    }
    fn erase(&self, t: &str, p: &str, c: &str) -> Result<(), visionlog_store::StoreError> {
        self.inner.erase(t, p, c)
    }
    fn drop_table(&self, t: &str) -> Result<(), visionlog_store::StoreError> {
        self.inner.drop_table(t)
    }
}

/// A batch whose rows were stored but whose state write failed is handed again from an earlier
/// position with more events (as the consume loop does after a transient failure): the rows of
/// the failed attempt that the task no longer produces are tombstoned, so every view equals the
/// one of a clean run (found on Cassandra: a node restart left tasks under two statuses).
#[test]
fn rows_of_a_failed_write_are_not_left_behind_by_the_retry() {
    let events = envelopes(6, &[0, 1, 2, 3]);
    let all: Vec<&Delivered> = events.iter().collect();
    let (_d1, clean) = fresh();
    deliver(&mut Projector::new(clean.clone(), 1), &all, 512);

    let (_d2, inner) = fresh();
    let failing = Arc::new(StateWriteFails { inner: inner.clone(), armed: true.into() });
    let mut p = Projector::new(failing.clone(), 1);
    // the first events of every task (up to version 2), stored but for their states...
    let first: Vec<&Delivered> = all.iter().copied().filter(|d| d.envelope.version <= 2).collect();
    let mut failed = false;
    for (i, d) in first.iter().enumerate() {
        p.handle(HandledEvent { partition: 0, offset: i as u64, envelope: &d.envelope, event: &d.event, payload: &[] })
            .unwrap();
    }
    if p.flush().is_err() {
        failed = true;
    }
    assert!(failed, "the state write was made to fail");
    // ...then everything again from the start, as a retry from the last committed position
    deliver(&mut p, &all, 512);
    assert_eq!(dump(inner.as_ref()), dump(clean.as_ref()));

    // the same when the process stops between the rows and the state, and a new one resumes
    let (_d3, inner) = fresh();
    let failing = Arc::new(StateWriteFails { inner: inner.clone(), armed: true.into() });
    let mut p = Projector::new(failing.clone(), 1);
    for (i, d) in first.iter().enumerate() {
        p.handle(HandledEvent { partition: 0, offset: i as u64, envelope: &d.envelope, event: &d.event, payload: &[] })
            .unwrap();
    }
    assert!(p.flush().is_err());
    drop(p);
    deliver(&mut Projector::new(failing, 1), &all, 512);
    assert_eq!(dump(inner.as_ref()), dump(clean.as_ref()));
}

/// Tombstones (rows a task stopped producing) of every view table of generation 1.
fn tombstones(store: &dyn ReadStore) -> usize {
    let mut n = 0;
    for t in VIEW_TABLES {
        let name = table(t, 1);
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store.scan_table(&name, after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())), 1000).unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.partition.clone(), last.clustering.clone()));
            n += page.iter().filter(|r| r.is_tombstone()).count();
        }
    }
    n
}

/// The rule of `tombstones.rs`: a live projector keeps a tombstone for its grace and then erases
/// it, never a live row written at the same place since; a rebuild leaves none. The views read
/// the same throughout.
#[test]
fn tombstones_are_erased_after_their_grace_and_never_a_live_row() {
    let events = envelopes(8, &[0, 1, 2, 3]);
    let all: Vec<&Delivered> = events.iter().collect();
    let (_d, kept) = fresh();
    let mut p = Projector::new(kept.clone(), 1).with_tombstone_grace(std::time::Duration::from_secs(3600));
    deliver(&mut p, &all, 5);
    let views = dump(kept.as_ref());
    let left = tombstones(kept.as_ref());
    assert!(left > 8, "tasks left the queue and changed status: {left} tombstones");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    deliver(&mut p, &all[..1], 1); // a redelivery: a write round, nothing new
    assert_eq!(tombstones(kept.as_ref()), left, "within the grace, every tombstone stays");

    let (_d, collected) = fresh();
    let mut p = Projector::new(collected.clone(), 1).with_tombstone_grace(std::time::Duration::ZERO);
    deliver(&mut p, &all, 5);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    deliver(&mut p, &all[..1], 1);
    assert_eq!(tombstones(collected.as_ref()), 0, "past the grace, none stays");
    assert_eq!(dump(collected.as_ref()), views, "and the views are the same");
    let list = collected.scan_partition(&table("tombstones", 1), "0", None, 10).unwrap();
    assert!(list.is_empty(), "the list is emptied as it is collected");

    let (_d, rebuilt) = fresh();
    let mut p = Projector::for_rebuild(rebuilt.clone(), 1, 2);
    deliver(&mut p, &all, 5);
    p.finish().unwrap();
    assert_eq!(tombstones(rebuilt.as_ref()), 0, "a rebuild erases at once");
    assert_eq!(dump(rebuilt.as_ref()), views);

    // a task leaves the quality-check queue, its tombstone is due, and it comes back to the same
    // place in the queue before the collection: the live row stays
    let events = envelopes(1, &[2]);
    let back: Vec<&Delivered> = events.iter().take(events.len() - 2).collect();
    let (_d, store) = fresh();
    let mut p = Projector::new(store.clone(), 1).with_tombstone_grace(std::time::Duration::ZERO);
    deliver(&mut p, &back, 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    deliver(&mut p, &back[..1], 1);
    let queue: Vec<_> = queries::queue(store.as_ref(), &["acme".to_string()]).unwrap().map(Result::unwrap).collect();
    assert_eq!(queue.len(), 1, "the task waits for its second check");
    assert_eq!(queue[0].skill, "quality_check");
}
