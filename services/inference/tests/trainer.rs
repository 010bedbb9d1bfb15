//! The trainer reads its labels from the `labelled` view and its photos from the object store:
//! a training set larger than its memory bound streams through a pool (every photo is seen,
//! the pool never holds more than the bound), and the policy counts only the labels sealed
//! since the last version trained.

use std::sync::Arc;
use visionlog_codec::{Codec, EmbeddedRegistry};
use visionlog_domain::BoundingBox;
use visionlog_imaging::scene;
use visionlog_inference::{Trainer, TrainerConfig, held_out};
use visionlog_journal::Topics;
use visionlog_log::{EventLog, FileLog, FileLogOptions};
use visionlog_models::{ModelKey, Registry};
use visionlog_objects::Objects;
use visionlog_store::{EmbeddedStore, Put, ReadStore, Row};
use visionlog_views::generations::table;
use visionlog_views::views::{LABELLED, LabelledRow, encode};
use visionlog_vision::train::TrainConfig;

const CLASSES: u32 = 3;

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn ReadStore>,
    objects: Objects,
    registry: Arc<Registry>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ReadStore> = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let objects = Objects::open(&format!("file://{}", dir.path().join("objects").display())).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(FileLog::open(&dir.path().join("log"), FileLogOptions::default()).unwrap());
    let codec = Arc::new(Codec::new(Arc::new(EmbeddedRegistry::in_memory())).unwrap());
    let topics = Topics::new("t", 1);
    topics.create(log.as_ref()).unwrap();
    let registry = Arc::new(Registry::open(log, codec, &topics.models).unwrap());
    World { dir, store, objects, registry }
}

impl World {
    /// Labels task `n`: one small shelf photo in the object store, its row in `labelled`.
    fn label(&self, n: usize, sealed_at_ms: i64) -> String {
        let task_id = format!("task-{n:04}");
        let s = scene::generate(&task_id, 128, 96, CLASSES);
        let key = format!("images/{task_id}/0.png");
        self.objects.put(&key, s.render().to_png()).unwrap();
        let boxes =
            s.truth().map(|p| (0, BoundingBox { x: p.x, y: p.y, w: p.w, h: p.h }, p.class_id)).collect::<Vec<_>>();
        let row = LabelledRow {
            task_id: task_id.clone(),
            truth_version: 7,
            sealed_at_ms,
            images: vec![format!("store://{key}")],
            boxes,
            classes: (1..=CLASSES).collect(),
        };
        let row = Row {
            partition: "acme|acme/shelves".into(),
            clustering: format!("{sealed_at_ms:015}|{task_id}"),
            version: 7,
            value: encode(&row),
        };
        self.store.put(&[Put { table: table(LABELLED, 1), row }]).unwrap();
        task_id
    }

    fn trainer(&self, memory_bytes: usize) -> Trainer {
        let config = TrainerConfig {
            min_new_tasks: 10,
            min_f1: 0.0,
            train: TrainConfig { steps: 20, batch: 4, ..TrainConfig::default() },
            memory_bytes,
            ..TrainerConfig::default()
        };
        Trainer::new(self.store.clone(), self.objects.clone(), self.registry.clone(), config)
    }
}

#[test]
fn a_training_set_larger_than_the_memory_bound_streams_through_it_and_every_photo_is_seen() {
    let w = world();
    let tasks: Vec<String> = (0..40).map(|n| w.label(n, 1_000 + n as i64)).collect();
    let training = tasks.iter().filter(|t| !held_out(t)).count() as u64;
    let held = tasks.len() as u64 - training;
    assert!(training > 12 && held > 0, "{training} training tasks, {held} held out");
    // a prepared photo takes 256x192x3 bytes: the bound holds 6 of them
    let bound = 6 * 256 * 192 * 3;
    let run = w.trainer(bound).consider("acme", "acme/shelves").unwrap().expect("40 new labels start a run");
    assert_eq!(run.info.tasks, training, "trained on every training task");
    assert_eq!(run.info.examples, training, "every photo went through the pool (20 steps, 2 swaps each)");
    assert_eq!(run.backtest.3, held, "backtested on every held-out task");
    let stream = w.registry.stream(&ModelKey::detector("acme", "acme/shelves")).unwrap();
    assert_eq!(stream.versions[&run.version].tasks, training);
    let _ = &w.dir;
}

#[test]
fn the_policy_counts_the_labels_sealed_since_the_last_trained_version() {
    let w = world();
    for n in 0..30 {
        w.label(n, 1_000 + n as i64);
    }
    let trainer = w.trainer(64 << 20);
    let first = trainer.consider("acme", "acme/shelves").unwrap().expect("30 new labels start a run");
    assert!(trainer.consider("acme", "acme/shelves").unwrap().is_none(), "no label since");
    // labels sealed after the first version was recorded: a run once 10 of them train
    let after =
        w.registry.stream(&ModelKey::detector("acme", "acme/shelves")).unwrap().versions[&first.version].created_ms;
    let mut n = 100;
    let mut new_training = 0;
    while new_training < 9 {
        new_training += u64::from(!held_out(&w.label(n, after + n as i64)));
        n += 1;
    }
    assert!(trainer.consider("acme", "acme/shelves").unwrap().is_none(), "9 new labels are not enough");
    while !held_out(&format!("task-{n:04}")) {
        n += 1;
    }
    w.label(n, after + n as i64);
    assert!(trainer.consider("acme", "acme/shelves").unwrap().is_none(), "a held-out label does not count");
    n += 1;
    while held_out(&format!("task-{n:04}")) {
        n += 1;
    }
    w.label(n, after + n as i64);
    let second = trainer.consider("acme", "acme/shelves").unwrap();
    let second = second.expect("the tenth new training label starts a run");
    assert!(second.version > first.version);
    assert!(second.info.tasks > first.info.tasks, "trained on the old labels and the new");
}

/// Drift triggers training: a deployed version whose checked runs fell below its backtest on
/// every day of the window gets a training request with the figures as its reason, once; a
/// window with a good day, or a pending request, asks nothing.
#[test]
fn drift_held_over_the_window_records_a_training_request_once() {
    use visionlog_models::{ModelCommand, Outcome};
    use visionlog_views::queries::{Backtest, record_backtest};
    use visionlog_views::views::{Counts, ENGINE_MONITOR, RunScore};
    const DAY: i64 = 86_400_000;
    let w = world();
    let key = ModelKey::recognizer("acme", "acme/shelves");
    let now = 1_796_083_200_000 + 12 * 3_600_000; // 2026-12-01T12:00Z
    let exec = |id: &str, c: ModelCommand| w.registry.execute(&key, id, &c, now - 10 * DAY).unwrap();
    assert!(matches!(
        exec("r", ModelCommand::Register { artifact: "a/1".into(), by: "t".into() }),
        Outcome::Appended(..)
    ));
    exec("p", ModelCommand::Promote { version: 1, reason: "first".into() });
    let model = format!("{}@1", key.model_id());
    record_backtest(w.store.as_ref(), &model, 1, &Backtest { precision: 0.95, recall: 0.95 }).unwrap();
    // checked runs: right 6 of 10 (precision and recall 0.6) on each of the last three days
    let run = |n: usize, at: i64, right: u64| {
        let day = visionlog_views::day(at);
        let counts = Counts { tp: right, fp: 10 - right, fn_: 10 - right };
        let value = RunScore {
            task_id: format!("t{n}"),
            attempt: 1,
            model: model.clone(),
            day: day.clone(),
            classes: [(1, counts)].into(),
        };
        let row = Row {
            partition: format!("{model}|{day}"),
            clustering: format!("t{n}|000001"),
            version: 1,
            value: encode(&value),
        };
        w.store.put(&[Put { table: table(ENGINE_MONITOR, 1), row }]).unwrap();
    };
    let trainer = w.trainer(1 << 30);
    run(0, now - 2 * DAY, 6);
    run(1, now - DAY, 6);
    assert_eq!(trainer.request_on_drift(&key, now).unwrap(), None, "two days of drift, not three");
    run(2, now, 9);
    assert_eq!(trainer.request_on_drift(&key, now).unwrap(), None, "today's runs are good");
    run(3, now, 1);
    let reason = trainer.request_on_drift(&key, now).unwrap().expect("three days below the backtest");
    assert!(
        reason.starts_with("drift: precision 0.550 recall 0.550 on 4 checked runs from 2026-11-29 to 2026-12-01"),
        "{reason}"
    );
    let stream = w.registry.stream(&key).unwrap();
    assert_eq!(stream.pending_training, Some(("engine-monitor".to_owned(), reason)));
    assert_eq!(trainer.request_on_drift(&key, now).unwrap(), None, "a pending request is not asked again");
}
