//! The trainer: the "Train" button and the policy, training, backtest and promotion.

use crate::artifacts;
use crate::worker::load_image;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use visionlog_domain::BoundingBox;
use visionlog_domain::scoring::{self, Counts};
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_models::{ModelCommand, ModelEvent, ModelKey, Outcome, Registry};
use visionlog_objects::Objects;
use visionlog_store::ReadStore;
use visionlog_views::queries::{self, Backtest};
use visionlog_views::views::{LabelledRow, score, sealed_before};
use visionlog_vision::train::{ExamplePool, Flow, TrainConfig, TrainingImage, evaluate, train_from, training_image};
use visionlog_vision::{
    DETECTOR_INPUT, DecodeConfig, Detector, Expect, ModelKind, RECOGNIZER_INPUT, Recognizer, TrainingInfo,
};

/// Why a training run did not end in a recorded version.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// The read store failed: retry later.
    #[error("read store: {0}")]
    Store(#[from] visionlog_store::StoreError),
    /// The model streams' log failed: retry later.
    #[error("model registry: {0}")]
    Registry(#[from] visionlog_models::RegistryError),
    /// The object store failed, or a stored artifact is unreadable.
    #[error("artifact: {0}")]
    Artifact(#[from] artifacts::ArtifactError),
    /// libtorch or the model refused: not retried until the data changes.
    #[error("model: {0}")]
    Vision(#[from] visionlog_vision::VisionError),
    /// Nothing to train on (no readable photos): not retried until the data changes.
    #[error("no training data: {0}")]
    NoData(String),
    /// The model stream refused what the trainer recorded.
    #[error("model stream refused the {0}")]
    Refused(String),
    /// The process is stopping: the run was given up between two labelled tasks.
    #[error("stopped: the process is shutting down")]
    Stopped,
}

/// When and how to train.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Train by policy when this many labelled training tasks exist beyond the last model's.
    pub min_new_tasks: u64,
    /// A candidate is promoted only with at least this F1 on the backtest.
    pub min_f1: f64,
    /// The training run.
    pub train: TrainConfig,
    /// How often to look for work.
    pub poll: Duration,
    /// Bytes of prepared photos a training run keeps in memory; a larger training set streams
    /// through a pool of this size.
    pub memory_bytes: usize,
    /// Drift triggers training: when every day of this many days (today included) has checked
    /// runs of a deployed model below its backtest (the engine monitor's drift), a training
    /// request is recorded with the figures as its reason. `None`: never.
    pub drift_window_days: Option<u32>,
    /// How often the engine monitor is read for drift (it is a scan of the monitor's rows).
    pub drift_every: Duration,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            min_new_tasks: 40,
            min_f1: 0.5,
            train: TrainConfig::default(),
            poll: Duration::from_secs(2),
            memory_bytes: 1 << 30,
            drift_window_days: Some(3),
            drift_every: Duration::from_secs(600),
        }
    }
}

impl Trainer {
    /// The deployed version's F1 on the held-out tasks (seed 002): where it already predicted a
    /// task, its recorded prediction event is scored against the ground truth; the other tasks'
    /// photos are run through it, a few at a time. An artifact that no longer loads scores 0.
    fn deployed_f1(&self, key: &ModelKey, version: u32, artifact: &str, expect: &Expect) -> Result<f64, TrainerError> {
        let model = visionlog_domain::ModelRef { model_id: key.model_id(), version };
        let mut total = Counts::default();
        let (mut replayed, mut rerun) = (0u64, 0u64);
        let mut current = None;
        let mut photos = Vec::new();
        for row in self.rows(key, true)? {
            let row = row?;
            let view = queries::task_view(self.store.as_ref(), &row.task_id)?;
            let truth = view.as_ref().and_then(|v| v.truth.as_ref().map(|t| (v, t)));
            if let Some((view, truth)) = truth
                && let Some(run) = view.runs.iter().rev().find(|r| r.model == model && r.version < truth.version)
            {
                let boxes: Vec<_> = run
                    .predictions
                    .iter()
                    .map(|p| visionlog_views::ViewObject { class_id: None, ..p.clone() })
                    .collect();
                total.add(&scoring::total(&score(&boxes, &truth.objects)));
                replayed += 1;
                continue;
            }
            rerun += 1;
            if current.is_none() {
                let loaded = artifacts::get(&self.objects, artifact).map_err(|e| e.to_string()).and_then(|a| {
                    Detector::load(&a, expect, visionlog_vision::device_choice().device).map_err(|e| e.to_string())
                });
                match loaded {
                    Ok(d) => current = Some(d),
                    Err(e) => {
                        tracing::warn!(
                            model = model.model_id,
                            version,
                            error = e,
                            "trainer: the deployed artifact does not load; it scores 0"
                        );
                        return Ok(0.0);
                    }
                }
            }
            photos.extend(self.photos(&row));
            if photos.len() >= EVAL_BATCH {
                let det = current.as_ref().expect("loaded above");
                total.add(&evaluate(det, &std::mem::take(&mut photos), EVAL_BATCH, &DecodeConfig::default())?.boxes);
            }
        }
        if let (Some(det), false) = (&current, photos.is_empty()) {
            total.add(&evaluate(det, &photos, EVAL_BATCH, &DecodeConfig::default())?.boxes);
        }
        tracing::info!(
            model = model.model_id,
            version,
            replayed,
            rerun,
            f1 = total.f1(),
            "trainer: deployed version scored"
        );
        Ok(total.f1())
    }

    /// The labelled rows of a model's class group, the held-out ones or the training ones,
    /// streamed a page at a time. Once the process is stopping the next row is
    /// [`TrainerError::Stopped`]: every pass over the rows (counting, filling the photo pool,
    /// cropping, backtesting) reads a photo per row, and a class group of thousands of tasks
    /// must not hold SIGTERM for as long as one pass takes.
    fn rows<'a>(
        &'a self,
        key: &ModelKey,
        held: bool,
    ) -> Result<impl Iterator<Item = Result<LabelledRow, TrainerError>> + 'a, TrainerError> {
        let rows = queries::labelled(self.store.as_ref(), &key.customer, &key.class_group, None)?;
        Ok(rows
            .map(|r| if self.stopping() { Err(TrainerError::Stopped) } else { r.map_err(TrainerError::from) })
            .filter(move |r| r.as_ref().map_or(true, |r| held_out(&r.task_id) == held)))
    }

    /// Whether the process is stopping.
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// A labelled task's readable photos with their classified boxes (unreadable ones are skipped).
    fn photos(&self, row: &LabelledRow) -> Vec<(visionlog_imaging::Rgb, Vec<(BoundingBox, u32)>)> {
        let mut out = Vec::new();
        for (i, uri) in row.images.iter().enumerate() {
            match load_image(&self.objects, uri) {
                Ok(px) => {
                    let boxes = row.boxes.iter().filter(|(image, ..)| *image == i as u32).map(|(_, b, c)| (*b, *c));
                    out.push((px, boxes.collect()));
                }
                Err(e) => tracing::debug!(task = row.task_id, error = e, "trainer: photo skipped"),
            }
        }
        out
    }
}

/// Photos scored per batch in a backtest.
const EVAL_BATCH: usize = 8;

/// Whether a task is held out of training, to backtest on (one in five, by task id).
pub fn held_out(task_id: &str) -> bool {
    let h = deterministic_id(&[task_id, "held-out"]);
    u32::from_str_radix(&h[..8], 16).unwrap_or(0).is_multiple_of(5)
}

/// What one training run did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingRun {
    /// The model.
    pub model_id: String,
    /// The version trained.
    pub version: u32,
    /// Training.
    pub info: TrainingInfo,
    /// Backtest of the candidate: precision, recall, F1, tasks.
    pub backtest: (f64, f64, f64, u64),
    /// The deployed version it was compared with and its F1.
    pub baseline: Option<(u32, f64)>,
    /// Whether it was promoted.
    pub promoted: bool,
}

/// Trains, backtests and promotes detectors.
pub struct Trainer {
    store: Arc<dyn ReadStore>,
    objects: Objects,
    registry: Arc<Registry>,
    config: TrainerConfig,
    /// Per model: the new labels (count, newest seal) at which training last failed; not
    /// tried again until more ground truth arrives (or the process restarts).
    failed_at: std::sync::Mutex<BTreeMap<ModelKey, (u64, Option<i64>)>>,
    /// Set when the process shuts down: a run in progress stops within 10 steps.
    stop: Option<Arc<AtomicBool>>,
}

impl Trainer {
    /// Creates a trainer.
    pub fn new(store: Arc<dyn ReadStore>, objects: Objects, registry: Arc<Registry>, config: TrainerConfig) -> Self {
        Self { store, objects, registry, config, failed_at: Default::default(), stop: None }
    }

    /// Stops a training run in progress when `stop` is set (SIGTERM must not wait for it).
    pub fn stop_with(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Looks for work until `stop` is set: a training request, or enough new ground truth.
    pub fn run(&self, class_groups: &dyn Fn() -> Vec<(String, String)>, stop: &AtomicBool) {
        let mut drift_checked: Option<std::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let check_drift = drift_checked.is_none_or(|t| t.elapsed() >= self.config.drift_every);
            if check_drift {
                drift_checked = Some(std::time::Instant::now());
            }
            for (customer, class_group) in class_groups() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for key in [ModelKey::detector(&customer, &class_group), ModelKey::recognizer(&customer, &class_group)]
                {
                    if check_drift && let Err(e) = self.request_on_drift(&key, now_ms()) {
                        tracing::warn!(model = key.model_id(), error = %e, "trainer: drift unread; will try again");
                    }
                    match self.consider_key(&key) {
                        Err(TrainerError::Stopped) => return,
                        Err(e) => tracing::warn!(model = key.model_id(), error = %e, "trainer: will try again"),
                        Ok(_) => {}
                    }
                }
            }
            std::thread::sleep(self.config.poll);
        }
    }

    /// [`Trainer::run`] over the class groups the read models know.
    pub fn run_over_views(&self, stop: &AtomicBool) {
        let store = self.store.clone();
        let groups = move || {
            queries::class_groups(store.as_ref()).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "trainer: class groups unreadable");
                Vec::new()
            })
        };
        self.run(&groups, stop);
    }

    /// Records a training request for the deployed version of `key` when the engine monitor's
    /// drift held over the whole window ending at `now_ms`: every day of it has checked runs,
    /// and on each the precision or the recall is more than the tolerance below the version's
    /// backtest. Not asked again while a request is pending, nor when a version was trained
    /// since the window began (its answer stands until the drift outlasts a window after it).
    /// Returns the reason recorded, if any.
    pub fn request_on_drift(&self, key: &ModelKey, now_ms: i64) -> Result<Option<String>, TrainerError> {
        const DAY_MS: i64 = 86_400_000;
        let Some(window) = self.config.drift_window_days.filter(|w| *w > 0) else { return Ok(None) };
        let stream = self.registry.stream(key)?;
        let Some(version) = stream.deployed else { return Ok(None) };
        let start_ms = (now_ms / DAY_MS - i64::from(window) + 1) * DAY_MS;
        if stream.pending_training.is_some() || stream.versions.values().any(|v| v.trained && v.created_ms >= start_ms)
        {
            return Ok(None);
        }
        let model = format!("{}@{version}", key.model_id());
        let (from, to) = (visionlog_views::day(start_ms), visionlog_views::day(now_ms));
        let Some(m) = queries::accuracy(self.store.as_ref(), Some(&model), Some(&from), Some(&to))?.pop() else {
            return Ok(None);
        };
        let Some(b) = m.backtest else { return Ok(None) };
        let below = |l: &queries::AccuracyLine| {
            l.precision.is_some_and(|p| p < b.precision - queries::DRIFT_TOLERANCE)
                || l.recall.is_some_and(|r| r < b.recall - queries::DRIFT_TOLERANCE)
        };
        if m.days.len() < window as usize || !m.days.iter().all(below) {
            return Ok(None);
        }
        let pct = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"));
        let reason = format!(
            "drift: precision {} recall {} on {} checked runs from {from} to {to}, every day below the backtest's {:.3} / {:.3}",
            pct(m.total.precision),
            pct(m.total.recall),
            m.total.runs,
            b.precision,
            b.recall
        );
        let command = ModelCommand::RequestTraining { by: "engine-monitor".into(), reason: reason.clone() };
        let id = deterministic_id(&[&model, "drift", &from]);
        match self.registry.execute(key, &id, &command, now_ms)? {
            Outcome::Appended(..) => {
                tracing::warn!(model, reason, "trainer: drift; training requested");
                Ok(Some(reason))
            }
            _ => Ok(None),
        }
    }

    /// Trains a class group's detector if asked to or if the policy says so: at least
    /// `min_new_tasks` training tasks labelled since the last version trained here. It reads
    /// the labels sealed since then (a range of the `labelled` view), never the whole repository.
    pub fn consider(&self, customer: &str, class_group: &str) -> Result<Option<TrainingRun>, TrainerError> {
        self.consider_key(&ModelKey::detector(customer, class_group))
    }

    /// Trains a class group's crop recognizer by the same policy, from the same labels.
    pub fn consider_recognizer(&self, customer: &str, class_group: &str) -> Result<Option<TrainingRun>, TrainerError> {
        self.consider_key(&ModelKey::recognizer(customer, class_group))
    }

    fn consider_key(&self, key: &ModelKey) -> Result<Option<TrainingRun>, TrainerError> {
        let stream = self.registry.stream(key)?;
        let last_trained = stream.versions.values().filter(|v| v.trained).map(|v| v.created_ms).max();
        let after = last_trained.map(sealed_before);
        let (mut new, mut newest) = (0u64, None);
        for row in queries::labelled(self.store.as_ref(), &key.customer, &key.class_group, after)? {
            let row = row?;
            if !held_out(&row.task_id) {
                new += 1;
                newest = Some(row.sealed_at_ms);
            }
        }
        let asked = stream.pending_training.is_some();
        let policy = new >= self.config.min_new_tasks;
        if !(asked || policy) {
            return Ok(None);
        }
        if new == 0 && self.rows(key, false)?.next().is_none() {
            return Ok(None); // asked, but nothing is labelled yet
        }
        let mark = (new, newest);
        if self.failed_at.lock().expect("trainer lock").get(key) == Some(&mark) {
            return Ok(None);
        }
        tracing::info!(model = key.model_id(), new_labels = new, asked, "trainer: training");
        let run = if key.is_recognizer() { self.train_recognizer(key) } else { self.train_and_promote(key) };
        if run.is_err() {
            self.failed_at.lock().expect("trainer lock").insert(key.clone(), mark);
        }
        run.map(Some)
    }

    /// Trains a candidate on the non-held-out labelled tasks, backtests it and the deployed
    /// version on the held-out ones, records both, and promotes the candidate if it is better.
    /// The labels are streamed from the read store and the photos from the object store: a
    /// first pass over the rows (classes, snapshot, counts), then the photos through a pool of
    /// at most `memory_bytes`, then the held-out photos a batch at a time.
    pub fn train_and_promote(&self, key: &ModelKey) -> Result<TrainingRun, TrainerError> {
        let TrainingSet { classes, snapshot, training_tasks, held_tasks } = self.training_set(key)?;
        let mut pool = PhotoPool::fill(self, key, &classes, self.config.memory_bytes, self.config.train.batch)?;
        if pool.examples.is_empty() {
            return Err(TrainerError::NoData("no readable training photos".into()));
        }
        let device = visionlog_vision::device_choice().device;
        let seed = i64::from_str_radix(&snapshot[..8], 16).unwrap_or(0);
        let det = Detector::new(&classes, DETECTOR_INPUT, device, seed)?;
        let model_id = key.model_id();
        tracing::info!(
            model = model_id,
            training_tasks,
            in_memory = pool.examples.len(),
            streamed = !pool.whole,
            "trainer: training"
        );
        let mut info = train_from(&det, &mut pool, &self.config.train, &mut |p| {
            if p.step % 50 == 0 || p.step == p.steps {
                tracing::info!(
                    model = model_id,
                    step = p.step,
                    steps = p.steps,
                    loss = p.loss,
                    images_per_s = p.images_per_second,
                    "trainer: training"
                );
            }
            if self.stopping() { Flow::Stop } else { Flow::Continue }
        })?;
        drop(pool);
        info.tasks = training_tasks;
        info.snapshot = snapshot.clone();

        // backtest: the candidate and the deployed model on the same held-out tasks
        let decode = DecodeConfig::default();
        // a detector is scored on its boxes (in the two-step recipe a recognizer gives the
        // classes); its own classes' scores go into the artifact's metrics beside
        let (mut score, mut classed, mut photos) = (Counts::default(), Counts::default(), Vec::new());
        for row in self.rows(key, true)? {
            photos.extend(self.photos(&row?));
            if photos.len() >= EVAL_BATCH {
                let e = evaluate(&det, &std::mem::take(&mut photos), EVAL_BATCH, &decode)?;
                score.add(&e.boxes);
                classed.add(&e.total);
            }
        }
        if !photos.is_empty() {
            let e = evaluate(&det, &photos, EVAL_BATCH, &decode)?;
            score.add(&e.boxes);
            classed.add(&e.total);
        }
        let (p, r, f1) = (score.precision().unwrap_or(0.0), score.recall().unwrap_or(0.0), score.f1());
        let stream = self.registry.stream(key)?;
        let expect = Expect { kind: ModelKind::Detector, classes: classes.clone(), input: DETECTOR_INPUT };
        let baseline = match stream.deployed {
            Some(v) => Some((v, self.deployed_f1(key, v, &stream.versions[&v].artifact, &expect)?)),
            None => None,
        };

        let mut metrics = BTreeMap::new();
        metrics.insert("backtest_precision".to_owned(), p);
        metrics.insert("backtest_recall".to_owned(), r);
        metrics.insert("backtest_f1".to_owned(), f1);
        metrics.insert("backtest_class_precision".to_owned(), classed.precision().unwrap_or(0.0));
        metrics.insert("backtest_class_recall".to_owned(), classed.recall().unwrap_or(0.0));
        metrics.insert("backtest_class_f1".to_owned(), classed.f1());
        let artifact = det.to_artifact(Some(info.clone()), metrics)?;
        self.record_and_promote(key, &artifact, info, snapshot, held_tasks, (p, r, f1), baseline, "F1")
    }

    /// What a training run trains on: the classes, a digest of the labelled tasks and versions
    /// (the data snapshot), and how many tasks train and how many are held out.
    fn training_set(&self, key: &ModelKey) -> Result<TrainingSet, TrainerError> {
        let (mut classes, mut hasher, mut training_tasks) = (BTreeSet::new(), Sha256::new(), 0u64);
        for row in self.rows(key, false)? {
            let row = row?;
            classes.extend(row.classes.iter().copied());
            hasher.update(format!("{}@{}\n", row.task_id, row.truth_version).as_bytes());
            training_tasks += 1;
        }
        let held_tasks = self.rows(key, true)?.count() as u64;
        let snapshot: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(TrainingSet { classes: classes.into_iter().collect(), snapshot, training_tasks, held_tasks })
    }

    /// Stores a candidate's artifact, records its training and backtest on the model stream
    /// (and for the engine monitor), and promotes it if it scores at least `min_f1` and beats
    /// the deployed version's score on the same held-out tasks. `measure` names the score.
    #[allow(clippy::too_many_arguments)]
    fn record_and_promote(
        &self,
        key: &ModelKey,
        artifact: &visionlog_vision::Artifact,
        info: TrainingInfo,
        snapshot: String,
        held_tasks: u64,
        (p, r, f1): (f64, f64, f64),
        baseline: Option<(u32, f64)>,
        measure: &str,
    ) -> Result<TrainingRun, TrainerError> {
        let model_id = key.model_id();
        let folder = artifacts::folder(&model_id, &format!("{}-{}", &snapshot[..16], self.config.train.steps));
        artifacts::put(&self.objects, &folder, artifact)?;

        let exec = |id: &str, c: ModelCommand| -> Result<Outcome, TrainerError> {
            Ok(self.registry.execute(key, &deterministic_id(&[&model_id, &folder, id]), &c, now_ms())?)
        };
        let trained = ModelEvent::ModelTrained {
            version: 0,
            artifact: folder.clone(),
            examples: info.examples,
            tasks: info.tasks,
            snapshot,
            seconds: info.seconds,
        };
        let version = match exec("trained", ModelCommand::RecordTraining(trained))? {
            Outcome::Appended(ModelEvent::ModelTrained { version, .. }, _) => version,
            Outcome::Duplicate(_) => {
                let s = self.registry.stream(key)?;
                s.versions
                    .values()
                    .find(|v| v.artifact == folder)
                    .map(|v| v.version)
                    .ok_or_else(|| TrainerError::Refused("training: recorded, then not found".into()))?
            }
            other => return Err(TrainerError::Refused(format!("training: {other:?}"))),
        };
        let backtested =
            ModelEvent::ModelBacktested { version, tasks: held_tasks, precision: p, recall: r, f1, baseline };
        exec("backtested", ModelCommand::RecordBacktest(backtested))?;
        // the engine monitor's reference for drift, under its name for the version (a later
        // backtest of the same version replaces it)
        let monitored = format!("{model_id}@{version}");
        let backtest = Backtest { precision: p, recall: r };
        queries::record_backtest(self.store.as_ref(), &monitored, now_ms() as u64, &backtest)?;
        let better = f1 >= self.config.min_f1 && baseline.is_none_or(|(_, b)| f1 > b);
        if better {
            let reason = match baseline {
                Some((v, b)) => format!("{measure} {f1:.3} on {held_tasks} held-out tasks beats version {v}'s {b:.3}"),
                None => format!("{measure} {f1:.3} on {held_tasks} held-out tasks, first model"),
            };
            exec("promoted", ModelCommand::Promote { version, reason })?;
        }
        tracing::info!(
            model = model_id,
            version,
            precision = p,
            recall = r,
            f1,
            ?baseline,
            promoted = better,
            "trainer: backtested"
        );
        Ok(TrainingRun { model_id, version, info, backtest: (p, r, f1, held_tasks), baseline, promoted: better })
    }
}

/// What a training run trains on (see [`Trainer::training_set`]).
struct TrainingSet {
    classes: Vec<u32>,
    snapshot: String,
    training_tasks: u64,
    held_tasks: u64,
}

/// Crops per batch when a recognizer is scored.
const CROP_BATCH: usize = 256;

impl Trainer {
    /// The labelled boxes of a row's photos, cropped, with their classes.
    fn crops(&self, row: &LabelledRow) -> Vec<(visionlog_imaging::Rgb, u32)> {
        let mut out = Vec::new();
        for (px, boxes) in self.photos(row) {
            for (b, class) in boxes {
                match px.crop(b.x, b.y, b.w, b.h) {
                    Ok(c) => out.push((c, class)),
                    Err(e) => tracing::debug!(task = row.task_id, error = %e, "trainer: box not cropped"),
                }
            }
        }
        out
    }

    /// Trains a crop recognizer on the labelled boxes of the training tasks (as many crops as
    /// `memory_bytes` holds, in seal order), scores it on every held-out task's boxes (top-1
    /// accuracy), scores the deployed recognizer on the same boxes — replaying its recorded
    /// `ObjectsRecognized` where it already classified a task before the truth was sealed —
    /// and promotes the candidate if it is better (seed 002).
    pub fn train_recognizer(&self, key: &ModelKey) -> Result<TrainingRun, TrainerError> {
        let TrainingSet { classes, snapshot, training_tasks, held_tasks } = self.training_set(key)?;
        let mut crops = Vec::new();
        let mut bytes = 0usize;
        for row in self.rows(key, false)? {
            for c in self.crops(&row?) {
                bytes += c.0.pixels.len();
                crops.push(c);
            }
            if bytes >= self.config.memory_bytes {
                break;
            }
        }
        if crops.is_empty() {
            return Err(TrainerError::NoData("no readable labelled boxes".into()));
        }
        let device = visionlog_vision::device_choice().device;
        let seed = i64::from_str_radix(&snapshot[..8], 16).unwrap_or(0);
        let mut rec = Recognizer::new(&classes, device, seed)?;
        let cfg = TrainConfig { batch: 32, ..self.config.train };
        let model_id = key.model_id();
        tracing::info!(model = model_id, training_tasks, crops = crops.len(), "trainer: training a recognizer");
        let mut info = rec.train(&crops, &cfg)?;
        drop(crops);
        info.tasks = training_tasks;
        info.snapshot = snapshot.clone();

        let (mut right, mut total) = (0u64, 0u64);
        let mut batch = Vec::new();
        for row in self.rows(key, true)? {
            batch.extend(self.crops(&row?));
            if batch.len() >= CROP_BATCH {
                let (r, t) = accuracy(&rec, &std::mem::take(&mut batch))?;
                (right, total) = (right + r, total + t);
            }
        }
        let (r, t) = accuracy(&rec, &batch)?;
        (right, total) = (right + r, total + t);
        let acc = if total == 0 { 0.0 } else { right as f64 / total as f64 };
        let stream = self.registry.stream(key)?;
        let expect = Expect { kind: ModelKind::Recognizer, classes: classes.clone(), input: RECOGNIZER_INPUT };
        let baseline = match stream.deployed {
            Some(v) => Some((v, self.deployed_accuracy(key, v, &stream.versions[&v].artifact, &expect)?)),
            None => None,
        };
        let mut metrics = BTreeMap::new();
        metrics.insert("backtest_accuracy".to_owned(), acc);
        metrics.insert("backtest_crops".to_owned(), total as f64);
        let artifact = rec.to_artifact(Some(info.clone()), metrics)?;
        // one class per box: micro-averaged precision, recall and F1 all equal the accuracy
        self.record_and_promote(key, &artifact, info, snapshot, held_tasks, (acc, acc, acc), baseline, "accuracy")
    }

    /// The deployed recognizer's accuracy on the held-out tasks' boxes: its recorded answers
    /// where it classified a task's boxes before their truth was sealed (matched by object id),
    /// else its answers now on the boxes' crops. An artifact that no longer loads scores 0.
    fn deployed_accuracy(
        &self,
        key: &ModelKey,
        version: u32,
        artifact: &str,
        expect: &Expect,
    ) -> Result<f64, TrainerError> {
        let model = visionlog_domain::ModelRef { model_id: key.model_id(), version };
        let (mut right, mut total, mut replayed, mut rerun) = (0u64, 0u64, 0u64, 0u64);
        let mut current: Option<Recognizer> = None;
        let mut batch = Vec::new();
        for row in self.rows(key, true)? {
            let row = row?;
            let view = queries::task_view(self.store.as_ref(), &row.task_id)?;
            let truth = view.as_ref().and_then(|v| v.truth.as_ref().map(|t| (v, t)));
            if let Some((view, truth)) = truth
                && let Some(run) =
                    view.recognitions.iter().rev().find(|r| r.model == model && r.version < truth.version)
            {
                let classes: BTreeMap<&str, u32> =
                    truth.objects.iter().filter_map(|o| Some((o.object_id.as_str(), o.class_id?))).collect();
                for (object, class, _) in &run.predictions {
                    if let Some(want) = classes.get(object.as_str()) {
                        total += 1;
                        right += u64::from(want == class);
                    }
                }
                replayed += 1;
                continue;
            }
            rerun += 1;
            if current.is_none() {
                let loaded = artifacts::get(&self.objects, artifact).map_err(|e| e.to_string()).and_then(|a| {
                    Recognizer::load(&a, expect, visionlog_vision::device_choice().device).map_err(|e| e.to_string())
                });
                match loaded {
                    Ok(r) => current = Some(r),
                    Err(e) => {
                        tracing::warn!(
                            model = model.model_id,
                            version,
                            error = e,
                            "trainer: the deployed artifact does not load; it scores 0"
                        );
                        return Ok(0.0);
                    }
                }
            }
            batch.extend(self.crops(&row));
            if batch.len() >= CROP_BATCH {
                let (r, t) = accuracy(current.as_ref().expect("loaded above"), &std::mem::take(&mut batch))?;
                (right, total) = (right + r, total + t);
            }
        }
        if let Some(rec) = &current {
            let (r, t) = accuracy(rec, &batch)?;
            (right, total) = (right + r, total + t);
        }
        let acc = if total == 0 { 0.0 } else { right as f64 / total as f64 };
        tracing::info!(
            model = model.model_id,
            version,
            replayed,
            rerun,
            accuracy = acc,
            "trainer: deployed recognizer scored"
        );
        Ok(acc)
    }
}

/// How many of the crops a recognizer classifies right, of how many.
fn accuracy(rec: &Recognizer, crops: &[(visionlog_imaging::Rgb, u32)]) -> Result<(u64, u64), TrainerError> {
    if crops.is_empty() {
        return Ok((0, 0));
    }
    let refs: Vec<_> = crops.iter().map(|(c, _)| c).collect();
    let got = rec.classify(&refs)?;
    let right = got.iter().zip(crops).filter(|((g, _), (_, want))| g == want).count();
    Ok((right as u64, crops.len() as u64))
}

/// The photos a training run draws from: prepared photos up to a memory bound; when the
/// training set is larger, each step swaps a few of them (in turn) for the next ones of a
/// stream that cycles through the labelled rows, so every photo is seen and memory stays flat.
struct PhotoPool<'a> {
    trainer: &'a Trainer,
    key: &'a ModelKey,
    classes: &'a [u32],
    examples: Vec<TrainingImage>,
    /// Every photo fitted: nothing to stream.
    whole: bool,
    /// The rows not yet read in this pass, and the photos of the row being read.
    rows: Option<Box<dyn Iterator<Item = Result<LabelledRow, TrainerError>> + 'a>>,
    pending: std::collections::VecDeque<TrainingImage>,
    /// The slot the next streamed photo replaces, and how many per step.
    next_slot: usize,
    per_step: usize,
    distinct: u64,
    first_pass: bool,
}

impl<'a> PhotoPool<'a> {
    fn fill(
        trainer: &'a Trainer,
        key: &'a ModelKey,
        classes: &'a [u32],
        memory_bytes: usize,
        batch: usize,
    ) -> Result<Self, TrainerError> {
        let mut pool = Self {
            trainer,
            key,
            classes,
            examples: Vec::new(),
            whole: false,
            rows: None,
            pending: Default::default(),
            next_slot: 0,
            per_step: (batch / 2).max(1),
            distinct: 0,
            first_pass: true,
        };
        let mut bytes = 0;
        loop {
            match pool.next_photo(false)? {
                Some(photo) => {
                    bytes += photo.bytes();
                    pool.examples.push(photo);
                    if bytes >= memory_bytes {
                        break;
                    }
                }
                None => {
                    pool.whole = true;
                    break;
                }
            }
        }
        Ok(pool)
    }

    /// The stream's next prepared photo; at the end of the rows, none if `cycle` is off, else
    /// the first of a new pass.
    fn next_photo(&mut self, cycle: bool) -> Result<Option<TrainingImage>, TrainerError> {
        let mut restarted = false;
        loop {
            if let Some(photo) = self.pending.pop_front() {
                return Ok(Some(photo));
            }
            if self.rows.is_none() {
                self.rows = Some(Box::new(self.trainer.rows(self.key, false)?));
            }
            match self.rows.as_mut().expect("set above").next() {
                Some(row) => {
                    for (px, truth) in self.trainer.photos(&row?) {
                        self.pending.push_back(training_image(&px, &truth, self.classes, DETECTOR_INPUT)?);
                        if self.first_pass {
                            self.distinct += 1;
                        }
                    }
                }
                None if cycle && !restarted => {
                    self.rows = None;
                    self.first_pass = false;
                    restarted = true;
                }
                None => return Ok(None),
            }
        }
    }
}

impl ExamplePool for PhotoPool<'_> {
    fn examples(&self) -> &[TrainingImage] {
        &self.examples
    }

    fn refresh(&mut self) -> Result<(), visionlog_vision::VisionError> {
        if self.whole {
            return Ok(());
        }
        for _ in 0..self.per_step {
            let next = self.next_photo(true).map_err(|e| visionlog_vision::VisionError::Input(e.to_string()))?;
            let Some(photo) = next else { return Ok(()) };
            let slot = self.next_slot % self.examples.len();
            self.examples[slot] = photo;
            self.next_slot = slot + 1;
        }
        Ok(())
    }

    fn distinct(&self) -> u64 {
        self.distinct
    }
}
