//! Training a detector on photos with ground truth, and scoring one on held-out photos.

use crate::VisionError;
use crate::artifact::TrainingInfo;
use crate::detector::{self, DecodeConfig, STRIDE, Target};
use crate::input::{batch, prepare};
use crate::servable::Detector;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::Tensor;
use tch::nn::{self, OptimizerConfig};
use visionlog_domain::BoundingBox;
use visionlog_domain::scoring::{self, Counts, Placed};
use visionlog_imaging::Rgb;
use visionlog_imaging::scene::Rng;

/// One photo prepared for training: pixels at the model's input size and the true boxes there.
#[derive(Debug)]
pub struct TrainingImage {
    pixels: Tensor,
    targets: Vec<Target>,
}

/// Prepares a photo and its ground truth (boxes in photo pixels, class ids) for a detector
/// with these classes; boxes of other classes are left out.
pub fn training_image(
    photo: &Rgb,
    truth: &[(BoundingBox, u32)],
    classes: &[u32],
    input: (i64, i64),
) -> Result<TrainingImage, VisionError> {
    let p = prepare(photo, input)?;
    let targets = truth
        .iter()
        .filter_map(|(b, class)| {
            let class_index = classes.iter().position(|c| c == class)?;
            Some(Target {
                cx: (b.x + b.w / 2.0) / p.scale_x,
                cy: (b.y + b.h / 2.0) / p.scale_y,
                w: b.w / p.scale_x,
                h: b.h / p.scale_y,
                class_index,
            })
        })
        .collect();
    Ok(TrainingImage { pixels: p.pixels, targets })
}

/// How long and how to train.
#[derive(Clone, Copy, Debug)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Photos per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Seed of the batch order and the augmentation.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { steps: 400, batch: 16, learning_rate: 2e-3, seed: 7 }
    }
}

/// Where a training run is.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// Steps in all.
    pub steps: u64,
    /// Loss of the last step.
    pub loss: f64,
    /// Photos per second so far.
    pub images_per_second: f64,
}

/// What the progress callback tells the training loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop now (the process is shutting down); the run ends in [`VisionError::Stopped`].
    Stop,
}

/// The photos a training run draws its mini-batches from: all of them in memory, or a bounded
/// pool that a stream refreshes between steps (a training set larger than the memory allowed).
pub trait ExamplePool {
    /// The photos in memory now.
    fn examples(&self) -> &[TrainingImage];
    /// Called after each step: swap some photos for the stream's next ones (or nothing).
    fn refresh(&mut self) -> Result<(), VisionError>;
    /// Distinct photos the run has drawn from so far.
    fn distinct(&self) -> u64;
}

/// Every photo in memory.
struct InMemory<'a>(&'a [TrainingImage]);

impl ExamplePool for InMemory<'_> {
    fn examples(&self) -> &[TrainingImage] {
        self.0
    }
    fn refresh(&mut self) -> Result<(), VisionError> {
        Ok(())
    }
    fn distinct(&self) -> u64 {
        self.0.len() as u64
    }
}

impl TrainingImage {
    /// Bytes its pixels take (what a pool counts against its memory).
    pub fn bytes(&self) -> usize {
        self.pixels.numel() + self.targets.len() * std::mem::size_of::<Target>()
    }
}

/// Trains a detector made by [`Detector::new`] in place (the callback is asked every 10 steps): mini-batches drawn at random, flipped
/// left-right half the time, brighter or darker by up to a fifth.
pub fn train(
    det: &Detector,
    data: &[TrainingImage],
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<TrainingInfo, VisionError> {
    train_from(det, &mut InMemory(data), cfg, progress)
}

/// [`train`] drawing from a pool of photos, refreshed after each step.
pub fn train_from(
    det: &Detector,
    pool: &mut dyn ExamplePool,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<TrainingInfo, VisionError> {
    let vs = det.vars().ok_or_else(|| VisionError::Input("an imported module is not trained here".into()))?;
    if pool.examples().is_empty() {
        return Err(VisionError::Input("no training photos".into()));
    }
    let classes = det.manifest().classes.len();
    let (w, h) = det.manifest().input;
    let grid = ((h / STRIDE) as usize, (w / STRIDE) as usize);
    let mut opt = nn::Adam::default().build(vs, cfg.learning_rate)?;
    let mut rng = Rng::from_key(&format!("train/{}", cfg.seed));
    let started = Instant::now();
    let mut seen = 0u64;
    for step in 1..=cfg.steps {
        // cosine decay to a tenth of the rate
        let t = step as f64 / cfg.steps as f64;
        opt.set_lr(cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())));
        let mut pixels = Vec::with_capacity(cfg.batch);
        let mut targets = Vec::with_capacity(cfg.batch);
        let data = pool.examples();
        for _ in 0..cfg.batch {
            let img = &data[rng.below(data.len() as u64) as usize];
            if rng.below(2) == 0 {
                pixels.push(img.pixels.flip([2]));
                targets.push(img.targets.iter().map(|t| Target { cx: w as f32 - t.cx, ..*t }).collect());
            } else {
                pixels.push(img.pixels.shallow_clone());
                targets.push(img.targets.clone());
            }
        }
        let refs: Vec<&Tensor> = pixels.iter().collect();
        let gains: Vec<f32> = (0..cfg.batch).map(|_| rng.range(0.8, 1.2)).collect();
        let gain = Tensor::from_slice(&gains).view([cfg.batch as i64, 1, 1, 1]);
        let xs = ((batch(&refs) + 0.5) * gain - 0.5).to_device(det.device());
        let (heat, reg, mask) = detector::targets(&targets, classes, grid);
        let out = det.forward(&xs)?;
        let loss = detector::loss(
            &out,
            classes as i64,
            &heat.to_device(det.device()),
            &reg.to_device(det.device()),
            &mask.to_device(det.device()),
        );
        opt.backward_step(&loss);
        seen += cfg.batch as u64;
        pool.refresh()?;
        if step % 10 == 0 || step == cfg.steps {
            let secs = started.elapsed().as_secs_f64();
            let flow = progress(&Progress {
                step,
                steps: cfg.steps,
                loss: loss.double_value(&[]),
                images_per_second: seen as f64 / secs.max(1e-9),
            });
            if flow == Flow::Stop {
                return Err(VisionError::Stopped { step });
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TrainingInfo {
        examples: pool.distinct(),
        steps: cfg.steps,
        seconds,
        images_per_second: seen as f64 / seconds.max(1e-9),
        ..Default::default()
    })
}

/// A detector's counts on photos with ground truth, per class and in total.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Per class id.
    pub classes: BTreeMap<u32, Counts>,
    /// Over all classes.
    pub total: Counts,
    /// The boxes alone, whatever their class (what a detector owes a recipe whose recognizer
    /// gives the classes).
    pub boxes: Counts,
}

/// Scores a detector on photos with their ground truth (in photo pixels), in batches.
pub fn evaluate(
    det: &Detector,
    photos: &[(Rgb, Vec<(BoundingBox, u32)>)],
    batch_size: usize,
    cfg: &DecodeConfig,
) -> Result<Evaluation, VisionError> {
    let mut classes: BTreeMap<u32, Counts> = BTreeMap::new();
    let mut boxes = Counts::default();
    for chunk in photos.chunks(batch_size.max(1)) {
        let images: Vec<&Rgb> = chunk.iter().map(|(p, _)| p).collect();
        let found = det.detect(&images, cfg)?;
        for ((_, truth), found) in chunk.iter().zip(found) {
            let p: Vec<Placed> =
                found.iter().map(|d| Placed { image: 0, bbox: d.bbox, class_id: d.class_id }).collect();
            let t: Vec<Placed> = truth.iter().map(|(b, c)| Placed { image: 0, bbox: *b, class_id: Some(*c) }).collect();
            for (class, c) in scoring::score(&p, &t) {
                classes.entry(class).or_default().add(&c);
            }
            let unclassed: Vec<Placed> = p.iter().map(|p| Placed { class_id: None, ..*p }).collect();
            boxes.add(&scoring::total(&scoring::score(&unclassed, &t)));
        }
    }
    let total = scoring::total(&classes);
    Ok(Evaluation { classes, total, boxes })
}
