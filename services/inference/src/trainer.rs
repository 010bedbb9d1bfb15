//! The trainer: the "Train" button and the policy, training, backtest and promotion.

use crate::artifacts;
use crate::worker::load_image;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use visionlog_domain::BoundingBox;
use visionlog_domain::scoring::{self, Counts};
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_models::{ModelCommand, ModelEvent, ModelKey, Outcome, Registry};
use visionlog_objects::Objects;
use visionlog_store::ReadStore;
use visionlog_views::TaskView;
use visionlog_views::queries::{self, Backtest};
use visionlog_views::views::score;
use visionlog_vision::train::{Flow, TrainConfig, evaluate, train, training_image};
use visionlog_vision::{DETECTOR_INPUT, DecodeConfig, Detector, Expect, ModelKind, TrainingInfo, sha256_hex};

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
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self { min_new_tasks: 40, min_f1: 0.5, train: TrainConfig::default(), poll: Duration::from_secs(2) }
    }
}

impl Trainer {
    /// The deployed version's F1 on the held-out tasks (seed 002): where it already predicted a
    /// task, its recorded prediction event is scored against the ground truth; the other tasks'
    /// photos are run through it. An artifact that no longer loads scores 0.
    fn deployed_f1(
        &self,
        key: &ModelKey,
        version: u32,
        artifact: &str,
        held: &[&TaskView],
        expect: &Expect,
    ) -> Result<f64, TrainerError> {
        let model = visionlog_domain::ModelRef { model_id: key.model_id(), version };
        let mut total = Counts::default();
        let mut rerun = Vec::new();
        for t in held {
            let Some(truth) = &t.truth else { continue };
            match t.runs.iter().rev().find(|r| r.model == model && r.version < truth.version) {
                Some(run) => total.add(&scoring::total(&score(&run.predictions, &truth.objects))),
                None => rerun.push(*t),
            }
        }
        let replayed = held.len() - rerun.len();
        if !rerun.is_empty() {
            let photos = self.photos(&rerun);
            let loaded = artifacts::get(&self.objects, artifact).map_err(|e| e.to_string()).and_then(|a| {
                Detector::load(&a, expect, visionlog_vision::device_choice().device).map_err(|e| e.to_string())
            });
            match loaded {
                Ok(current) => {
                    let e = evaluate(&current, &photos, 8, &DecodeConfig::default())?;
                    total.add(&e.total);
                }
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
        tracing::info!(
            model = model.model_id,
            version,
            replayed,
            rerun = rerun.len(),
            f1 = total.f1(),
            "trainer: deployed version scored"
        );
        Ok(total.f1())
    }
}

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
    /// Per model: the labelled-task count at which training last failed; not tried again
    /// until more ground truth arrives (or the process restarts).
    failed_at: std::sync::Mutex<BTreeMap<ModelKey, u64>>,
    /// Set when the process shuts down: a run in progress stops within 10 steps.
    stop: Option<Arc<AtomicBool>>,
}

type Photos = Vec<(visionlog_imaging::Rgb, Vec<(BoundingBox, u32)>)>;

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
        while !stop.load(Ordering::Relaxed) {
            for (customer, class_group) in class_groups() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = self.consider(&customer, &class_group) {
                    tracing::warn!(customer, class_group, error = %e, "trainer: will try again");
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

    /// Trains a class group's detector if asked to or if the policy says so.
    pub fn consider(&self, customer: &str, class_group: &str) -> Result<Option<TrainingRun>, TrainerError> {
        let key = ModelKey::detector(customer, class_group);
        let stream = self.registry.stream(&key)?;
        let tasks = queries::labelled_tasks(self.store.as_ref(), class_group)?;
        let tasks: Vec<TaskView> = tasks.into_iter().filter(|t| t.customer == customer).collect();
        let trainable = tasks.iter().filter(|t| !held_out(&t.task_id)).count() as u64;
        let last_trained = stream.versions.values().filter(|v| v.trained).count();
        let trained_on = stream.trained_tasks();
        let asked = stream.pending_training.is_some();
        let policy = trainable >= trained_on + self.config.min_new_tasks;
        if !(asked || policy) || trainable == 0 {
            return Ok(None);
        }
        if self.failed_at.lock().expect("trainer lock").get(&key) == Some(&trainable) {
            return Ok(None);
        }
        tracing::info!(
            model = key.model_id(),
            trainable,
            trained_on,
            asked,
            models_trained = last_trained,
            "trainer: training a detector"
        );
        let run = self.train_and_promote(&key, &tasks);
        if run.is_err() {
            self.failed_at.lock().expect("trainer lock").insert(key, trainable);
        }
        run.map(Some)
    }

    fn photos(&self, tasks: &[&TaskView]) -> Photos {
        let mut out = Vec::new();
        for t in tasks {
            let Some(truth) = &t.truth else { continue };
            for (i, image) in t.images.iter().enumerate() {
                match load_image(&self.objects, &image.uri) {
                    Ok(px) => {
                        let boxes = truth
                            .objects
                            .iter()
                            .filter(|o| o.image == i as u32)
                            .filter_map(|o| Some((o.bbox, o.class_id?)))
                            .collect();
                        out.push((px, boxes));
                    }
                    Err(e) => tracing::debug!(task = t.task_id, error = e, "trainer: photo skipped"),
                }
            }
        }
        out
    }

    /// Trains a candidate on the non-held-out tasks, backtests it and the deployed version on
    /// the held-out ones, records both, and promotes the candidate if it is better.
    pub fn train_and_promote(&self, key: &ModelKey, tasks: &[TaskView]) -> Result<TrainingRun, TrainerError> {
        let classes: Vec<u32> = tasks
            .iter()
            .flat_map(|t| t.class_names.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (held, training): (Vec<&TaskView>, Vec<&TaskView>) = tasks.iter().partition(|t| held_out(&t.task_id));
        let snapshot = {
            let mut pairs: Vec<String> = training
                .iter()
                .map(|t| format!("{}@{}", t.task_id, t.truth.as_ref().map_or(0, |g| g.version)))
                .collect();
            pairs.sort();
            sha256_hex(pairs.join("\n").as_bytes())
        };
        let photos = self.photos(&training);
        if photos.is_empty() {
            return Err(TrainerError::NoData("no readable training photos".into()));
        }
        let data = photos
            .iter()
            .map(|(px, truth)| training_image(px, truth, &classes, DETECTOR_INPUT))
            .collect::<Result<Vec<_>, _>>()?;
        let device = visionlog_vision::device_choice().device;
        let seed = i64::from_str_radix(&snapshot[..8], 16).unwrap_or(0);
        let det = Detector::new(&classes, DETECTOR_INPUT, device, seed)?;
        let model_id = key.model_id();
        let mut info = train(&det, &data, &self.config.train, &mut |p| {
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
            if self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) { Flow::Stop } else { Flow::Continue }
        })?;
        info.tasks = training.len() as u64;
        info.snapshot = snapshot.clone();

        // backtest: the candidate and the deployed model on the same held-out tasks
        let held_photos = self.photos(&held);
        let decode = DecodeConfig::default();
        let score = evaluate(&det, &held_photos, 8, &decode)?.total;
        let (p, r, f1) = (score.precision().unwrap_or(0.0), score.recall().unwrap_or(0.0), score.f1());
        let stream = self.registry.stream(key)?;
        let expect = Expect { kind: ModelKind::Detector, classes: classes.clone(), input: DETECTOR_INPUT };
        let baseline = match stream.deployed {
            Some(v) => Some((v, self.deployed_f1(key, v, &stream.versions[&v].artifact, &held, &expect)?)),
            None => None,
        };

        let mut metrics = BTreeMap::new();
        metrics.insert("backtest_precision".to_owned(), p);
        metrics.insert("backtest_recall".to_owned(), r);
        metrics.insert("backtest_f1".to_owned(), f1);
        let artifact = det.to_artifact(Some(info.clone()), metrics)?;
        let folder = artifacts::folder(&model_id, &format!("{}-{}", &snapshot[..16], self.config.train.steps));
        artifacts::put(&self.objects, &folder, &artifact)?;

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
            ModelEvent::ModelBacktested { version, tasks: held.len() as u64, precision: p, recall: r, f1, baseline };
        exec("backtested", ModelCommand::RecordBacktest(backtested))?;
        // the engine monitor's reference for drift, under its name for the version (a later
        // backtest of the same version replaces it)
        let monitored = format!("{model_id}@{version}");
        let backtest = Backtest { precision: p, recall: r };
        queries::record_backtest(self.store.as_ref(), &monitored, now_ms() as u64, &backtest)?;
        let better = f1 >= self.config.min_f1 && baseline.is_none_or(|(_, b)| f1 > b);
        if better {
            let reason = match baseline {
                Some((v, b)) => format!("F1 {f1:.3} on {} held-out tasks beats version {v}'s {b:.3}", held.len()),
                None => format!("F1 {f1:.3} on {} held-out tasks, first model", held.len()),
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
        Ok(TrainingRun { model_id, version, info, backtest: (p, r, f1, held.len() as u64), baseline, promoted: better })
    }
}
