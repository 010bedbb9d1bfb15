//! The inference worker: detection and recognition requests in, the deployed models' boxes and
//! classes out. Requests of many tasks are batched per model: a detector's forward pass takes
//! photos of several tasks, a recognizer's the crops of several tasks' boxes.

use crate::artifacts;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use visionlog_codec::envelope::EventEnvelope;
use visionlog_domain::{
    DETECTION_STEP, Detection, ImageRef, ModelRef, RECOGNITION_STEP, Recognition, RecognitionTarget, RecordDetections,
    RecordModelNotFound, RecordRecognitions, TaskCommand, TaskEvent,
};
use visionlog_imaging::Rgb;
use visionlog_journal::{CommandBus, ConsumeError, EventHandler, HandledEvent, caused_by, deterministic_id};
use visionlog_models::{ModelKey, Registry};
use visionlog_objects::{Objects, key_of_uri};
use visionlog_store::ReadStore;
use visionlog_vision::{DETECTOR_INPUT, DecodeConfig, Detector, Expect, ModelKind, RECOGNIZER_INPUT, Recognizer};

/// How the worker batches and reads boxes.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// At most this many photos per forward pass.
    pub max_batch: usize,
    /// How boxes are read off the model's output.
    pub decode: DecodeConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { max_batch: 16, decode: DecodeConfig::default() }
    }
}

/// Reads a task's photo from the object store (bounded, PNG).
pub fn load_image(objects: &Objects, uri: &str) -> Result<Rgb, String> {
    let key = key_of_uri(uri).map_err(|e| e.to_string())?;
    let bytes = objects.get(key, visionlog_imaging::MAX_IMAGE_BYTES).map_err(|e| format!("{uri}: {e}"))?;
    Rgb::from_png(&bytes).map_err(|e| format!("{uri}: {e}"))
}

/// One detection or recognition request waiting for its batch.
#[derive(Clone, Debug)]
struct Job {
    partition: u32,
    offset: u64,
    cause: EventEnvelope,
    key: ModelKey,
    classes: Vec<u32>,
    images: Vec<ImageRef>,
    /// The boxes to classify (recognition); none for detection.
    targets: Vec<RecognitionTarget>,
}

impl Job {
    fn step(&self) -> &'static str {
        if self.key.is_recognizer() { RECOGNITION_STEP } else { DETECTION_STEP }
    }
}

/// Crops per recognizer forward pass, for each photo a detector's pass takes.
const CROPS_PER_PHOTO: usize = 16;

/// Answers `DetectionRequested` with the deployed detector of the task's class group, and
/// `RecognitionRequested` with its deployed recognizer.
pub struct InferenceWorker {
    bus: CommandBus,
    store: Arc<dyn ReadStore>,
    objects: Objects,
    registry: Arc<Registry>,
    config: WorkerConfig,
    pending: Vec<Job>,
    seen: HashSet<String>,
    models: HashMap<(ModelKey, u32), Rc<Detector>>,
    recognizers: HashMap<(ModelKey, u32), Rc<Recognizer>>,
    /// Photos run, forward passes made (for logs and benches).
    pub stats: (u64, u64),
    /// Crops classified, recognizer forward passes made.
    pub recognition_stats: (u64, u64),
}

impl InferenceWorker {
    /// Creates a worker.
    pub fn new(
        bus: CommandBus,
        store: Arc<dyn ReadStore>,
        objects: Objects,
        registry: Arc<Registry>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            bus,
            store,
            objects,
            registry,
            config,
            pending: Vec::new(),
            seen: HashSet::new(),
            models: HashMap::new(),
            recognizers: HashMap::new(),
            stats: (0, 0),
            recognition_stats: (0, 0),
        }
    }

    fn send(&self, job: &Job, command: &TaskCommand) -> Result<(), ConsumeError> {
        let command_id = deterministic_id(&[&job.cause.event_id, crate::GROUP, command.type_name()]);
        let envelope = caused_by(&job.cause, command_id, command, job.cause.version, "service:inference".into());
        self.bus.send(&envelope, command).map_err(|e| ConsumeError::Transient(e.to_string()))?;
        Ok(())
    }

    fn not_found(&self, job: &Job) -> Result<(), ConsumeError> {
        self.send(job, &TaskCommand::RecordModelNotFound(RecordModelNotFound { step: job.step().into() }))
    }

    /// A recorded rejection of a job's request (an unreadable photo, a box that cannot be
    /// cropped): its event is dead-lettered with the reason, and the task goes to an operator.
    fn refuse(&self, job: &Job, reason: &str, detail: &str) -> Result<(), ConsumeError> {
        self.bus
            .dead_letter_event(job.partition, job.offset, reason, detail, crate::GROUP)
            .map_err(|err| ConsumeError::Transient(err.to_string()))
    }

    /// The deployed recognizer of a key, loaded once per version; `None` if its artifact is
    /// refused (never used then: the operators give the classes).
    fn recognizer(&mut self, key: &ModelKey, version: u32, artifact: &str, classes: &[u32]) -> Option<Rc<Recognizer>> {
        if let Some(r) = self.recognizers.get(&(key.clone(), version)) {
            return Some(r.clone());
        }
        let expect = Expect { kind: ModelKind::Recognizer, classes: classes.to_vec(), input: RECOGNIZER_INPUT };
        let loaded = artifacts::get(&self.objects, artifact).map_err(|e| e.to_string()).and_then(|a| {
            Recognizer::load(&a, &expect, visionlog_vision::device_choice().device).map_err(|e| e.to_string())
        });
        match loaded {
            Ok(r) => {
                tracing::info!(model = key.model_id(), version, "inference: recognizer loaded");
                let r = Rc::new(r);
                self.recognizers.insert((key.clone(), version), r.clone());
                Some(r)
            }
            Err(e) => {
                tracing::error!(model = key.model_id(), version, error = e, "inference: deployed artifact refused");
                None
            }
        }
    }

    /// Answers recognition requests: each job's boxes cropped from its photos, the crops of
    /// many tasks classified together per deployed recognizer, one `RecordRecognitions` per task.
    fn recognize(&mut self, jobs: Vec<Job>) -> Result<(), ConsumeError> {
        let streams = self.registry.streams().map_err(|e| ConsumeError::Transient(e.to_string()))?;
        let mut by_model: BTreeMap<(ModelKey, u32), (Rc<Recognizer>, Vec<Job>)> = BTreeMap::new();
        for job in jobs {
            let deployed = streams.get(&job.key).and_then(|s| s.deployed.map(|v| (v, s.versions[&v].artifact.clone())));
            let model = deployed.and_then(|(v, art)| Some((v, self.recognizer(&job.key, v, &art, &job.classes)?)));
            match model {
                None => self.not_found(&job)?,
                Some((v, r)) => by_model.entry((job.key.clone(), v)).or_insert_with(|| (r, Vec::new())).1.push(job),
            }
        }
        let per_pass = (self.config.max_batch * CROPS_PER_PHOTO).max(1);
        for ((key, version), (recognizer, jobs)) in by_model {
            let model = ModelRef { model_id: key.model_id(), version };
            // a job's photos are read one at a time and dropped once cropped; the crops are
            // held at their boxes' size (a few KB each) until their forward pass
            let mut crops: Vec<(usize, visionlog_domain::ObjectId, Rgb)> = Vec::new();
            let mut ok = vec![true; jobs.len()];
            for (j, job) in jobs.iter().enumerate() {
                let mut images: Vec<u32> = job.targets.iter().map(|t| t.image).collect();
                images.sort_unstable();
                images.dedup();
                'photos: for image in images {
                    let photo = job
                        .images
                        .get(image as usize)
                        .ok_or_else(|| format!("image {image} is not the task's"))
                        .and_then(|i| load_image(&self.objects, &i.uri));
                    let photo = match photo {
                        Ok(px) => px,
                        Err(e) => {
                            self.refuse(job, "unreadable_image", &e)?;
                            ok[j] = false;
                            break 'photos;
                        }
                    };
                    for t in job.targets.iter().filter(|t| t.image == image) {
                        match photo.crop(t.bbox.x, t.bbox.y, t.bbox.w, t.bbox.h) {
                            Ok(crop) => crops.push((j, t.object_id.clone(), crop)),
                            Err(e) => {
                                self.refuse(job, "invalid_box", &format!("{}: {e}", t.object_id))?;
                                ok[j] = false;
                                break 'photos;
                            }
                        }
                    }
                }
            }
            crops.retain(|(j, ..)| ok[*j]);
            let mut found: Vec<Vec<Recognition>> = vec![Vec::new(); jobs.len()];
            for chunk in crops.chunks(per_pass) {
                let refs: Vec<&Rgb> = chunk.iter().map(|(_, _, c)| c).collect();
                let classes =
                    recognizer.classify(&refs).map_err(|e| ConsumeError::Transient(format!("recognition: {e}")))?;
                self.recognition_stats.0 += refs.len() as u64;
                self.recognition_stats.1 += 1;
                for ((j, object_id, _), (class_id, score)) in chunk.iter().zip(classes) {
                    found[*j].push(Recognition {
                        object_id: object_id.clone(),
                        class_id,
                        score: score.clamp(0.0, 1.0),
                    });
                }
            }
            for ((job, recognitions), ok) in jobs.iter().zip(found).zip(ok) {
                if !ok {
                    self.not_found(job)?;
                    continue;
                }
                let command = RecordRecognitions { model: model.clone(), recognitions };
                self.send(job, &TaskCommand::RecordRecognitions(command))?;
            }
        }
        Ok(())
    }

    /// The deployed detector of a key, loaded once per version; `None` if nothing serves or
    /// the artifact is refused (it is then never used: the task goes to an operator).
    fn detector(&mut self, key: &ModelKey, version: u32, artifact: &str, classes: &[u32]) -> Option<Rc<Detector>> {
        if let Some(d) = self.models.get(&(key.clone(), version)) {
            return Some(d.clone());
        }
        let expect = Expect { kind: ModelKind::Detector, classes: classes.to_vec(), input: DETECTOR_INPUT };
        let loaded = artifacts::get(&self.objects, artifact).map_err(|e| e.to_string()).and_then(|a| {
            Detector::load(&a, &expect, visionlog_vision::device_choice().device).map_err(|e| e.to_string())
        });
        match loaded {
            Ok(mut d) => {
                d.freeze();
                tracing::info!(model = key.model_id(), version, "inference: model loaded");
                let d = Rc::new(d);
                self.models.insert((key.clone(), version), d.clone());
                Some(d)
            }
            Err(e) => {
                tracing::error!(model = key.model_id(), version, error = e, "inference: deployed artifact refused");
                None
            }
        }
    }

    fn run(&mut self, jobs: Vec<Job>) -> Result<(), ConsumeError> {
        let (recognition, detection): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.key.is_recognizer());
        self.detect(detection)?;
        self.recognize(recognition)
    }

    /// Answers detection requests, the photos of many tasks per forward pass of each detector.
    fn detect(&mut self, jobs: Vec<Job>) -> Result<(), ConsumeError> {
        let streams = self.registry.streams().map_err(|e| ConsumeError::Transient(e.to_string()))?;
        let mut by_model: BTreeMap<(ModelKey, u32), (Rc<Detector>, Vec<Job>)> = BTreeMap::new();
        for job in jobs {
            let deployed = streams.get(&job.key).and_then(|s| s.deployed.map(|v| (v, s.versions[&v].artifact.clone())));
            let detector = deployed.and_then(|(v, art)| Some((v, self.detector(&job.key, v, &art, &job.classes)?)));
            match detector {
                None => self.not_found(&job)?,
                Some((v, d)) => by_model.entry((job.key.clone(), v)).or_insert_with(|| (d, Vec::new())).1.push(job),
            }
        }
        for ((key, version), (detector, jobs)) in by_model {
            // the photos are decoded a batch at a time (never every job's at once: a batch of
            // jobs of 8192-pixel photos would hold gigabytes); a job with an unreadable photo
            // goes to an operator
            let places: Vec<(usize, u32)> = jobs
                .iter()
                .enumerate()
                .flat_map(|(j, job)| (0..job.images.len() as u32).map(move |i| (j, i)))
                .collect();
            let mut ok = vec![true; jobs.len()];
            let mut found: Vec<Vec<Detection>> = vec![Vec::new(); jobs.len()];
            for chunk in places.chunks(self.config.max_batch.max(1)) {
                let mut photos: Vec<(usize, u32, Rgb)> = Vec::with_capacity(chunk.len());
                for &(j, i) in chunk {
                    if !ok[j] {
                        continue;
                    }
                    match load_image(&self.objects, &jobs[j].images[i as usize].uri) {
                        Ok(px) => photos.push((j, i, px)),
                        Err(e) => {
                            self.refuse(&jobs[j], "unreadable_image", &e)?;
                            ok[j] = false;
                        }
                    }
                }
                photos.retain(|(j, _, _)| ok[*j]);
                if photos.is_empty() {
                    continue;
                }
                let images: Vec<&Rgb> = photos.iter().map(|(_, _, px)| px).collect();
                let out = detector
                    .detect(&images, &self.config.decode)
                    .map_err(|e| ConsumeError::Transient(format!("inference: {e}")))?;
                self.stats.0 += images.len() as u64;
                self.stats.1 += 1;
                visionlog_telemetry::metrics::inference_batch(images.len());
                for ((j, image, _), dets) in photos.iter().zip(out) {
                    found[*j].extend(dets.into_iter().map(|d| Detection { image: *image, ..d }));
                }
            }
            let model = ModelRef { model_id: key.model_id(), version };
            for ((job, detections), ok) in jobs.iter().zip(found).zip(ok) {
                if !ok {
                    self.not_found(job)?;
                    continue;
                }
                self.send(job, &TaskCommand::RecordDetections(RecordDetections { model: model.clone(), detections }))?;
            }
        }
        Ok(())
    }
}

impl EventHandler for InferenceWorker {
    fn handle(&mut self, e: HandledEvent<'_>) -> Result<(), ConsumeError> {
        let targets = match e.event {
            TaskEvent::DetectionRequested(_) => None,
            TaskEvent::RecognitionRequested(r) => Some(r.objects.clone()),
            _ => return Ok(()),
        };
        let env = e.envelope;
        if !self.seen.insert(env.event_id.clone()) {
            return Ok(());
        }
        // the task's photos and class group are fixed at creation: any projected version has them
        // an event not taken up must not stay seen: the loop hands it again after a pause (the
        // store unreachable once left it seen, and the retry skipped it: a request never answered)
        let view = match visionlog_views::queries::task_view(self.store.as_ref(), &env.task_id) {
            Ok(Some(view)) => view,
            Ok(None) => {
                self.seen.remove(&env.event_id);
                return Err(ConsumeError::NotYet(format!("task {} is not projected yet", env.task_id)));
            }
            Err(err) => {
                self.seen.remove(&env.event_id);
                return Err(ConsumeError::Transient(err.to_string()));
            }
        };
        let key = match targets {
            Some(_) => ModelKey::recognizer(&view.customer, &view.class_group),
            None => ModelKey::detector(&view.customer, &view.class_group),
        };
        self.pending.push(Job {
            partition: e.partition,
            offset: e.offset,
            cause: env.clone(),
            key,
            classes: view.class_names.keys().copied().collect(),
            images: view.images,
            targets: targets.unwrap_or_default(),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConsumeError> {
        let jobs = std::mem::take(&mut self.pending);
        let result = self.run(jobs);
        self.seen.clear();
        result
    }
}
