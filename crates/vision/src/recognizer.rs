//! The crop recognizer: which class of the group is this package? A small CNN on 32x32 crops
//! of the boxes a detector (or an operator) drew — seed 000's second model of the
//! detection-and-recognition recipe. Trained on the crops of the training-data repository.

use crate::VisionError;
use crate::artifact::{Artifact, Expect, MANIFEST_FORMAT, Manifest, ModelKind, TrainingInfo, sha256_hex};
use crate::servable::{load_weights, save_weights};
use crate::train::TrainConfig;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use visionlog_imaging::Rgb;
use visionlog_imaging::scene::Rng;

/// The architecture name written in manifests.
pub const RECOGNIZER_ARCHITECTURE: &str = "crop-cnn-v1";
/// The crop size the recognizer reads.
pub const RECOGNIZER_INPUT: (i64, i64) = (32, 32);

fn net(p: &nn::Path<'_>, classes: i64) -> nn::Sequential {
    let conv = |name: &str, i, o| nn::conv2d(p / name, i, o, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    nn::seq()
        .add(conv("c1", 3, 16))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv("c2", 16, 32))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv("c3", 32, 64))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        .add(nn::linear(p / "fc", 64, classes, Default::default()))
}

/// A crop recognizer and its manifest.
pub struct Recognizer {
    manifest: Manifest,
    vs: nn::VarStore,
    net: nn::Sequential,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer").field("manifest", &self.manifest).finish()
    }
}

/// Crops scaled to the recognizer's input, as a float batch centred on zero.
fn crops_batch(crops: &[&Rgb], device: Device) -> Result<Tensor, VisionError> {
    let (w, h) = RECOGNIZER_INPUT;
    let prepared = crops.iter().map(|c| crate::input::prepare(c, (w, h))).collect::<Result<Vec<_>, _>>()?;
    Ok(crate::input::batch(&prepared.iter().map(|p| &p.pixels).collect::<Vec<_>>()).to_device(device))
}

impl Recognizer {
    /// A new, untrained recognizer for these classes.
    pub fn new(classes: &[u32], device: Device, seed: i64) -> Result<Self, VisionError> {
        if classes.is_empty() {
            return Err(VisionError::Input("a recognizer needs classes".into()));
        }
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let net = net(&vs.root(), classes.len() as i64);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            kind: ModelKind::Recognizer,
            architecture: RECOGNIZER_ARCHITECTURE.to_owned(),
            classes: classes.to_vec(),
            input: RECOGNIZER_INPUT,
            weights_sha256: String::new(),
            training: None,
            metrics: BTreeMap::new(),
        };
        Ok(Self { manifest, vs, net })
    }

    /// Loads an artifact, checked like a detector's.
    pub fn load(artifact: &Artifact, expect: &Expect, device: Device) -> Result<Self, VisionError> {
        artifact.check(expect)?;
        if artifact.manifest.architecture != RECOGNIZER_ARCHITECTURE {
            return Err(VisionError::artifact(format!("unknown architecture {:?}", artifact.manifest.architecture)));
        }
        let mut r = Self::new(&artifact.manifest.classes, device, 0)?;
        load_weights(&mut r.vs, &artifact.weights)?;
        r.manifest = artifact.manifest.clone();
        Ok(r)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The class of each crop and its probability.
    pub fn classify(&self, crops: &[&Rgb]) -> Result<Vec<(u32, f32)>, VisionError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let xs = crops_batch(crops, self.vs.device())?;
        let probs = tch::no_grad(|| self.net.forward(&xs).softmax(-1, Kind::Float)).to_device(Device::Cpu);
        let (p, i) = probs.max_dim(1, false);
        let (p, i): (Vec<f32>, Vec<i64>) = (Vec::try_from(p)?, Vec::try_from(i)?);
        Ok(i.into_iter().zip(p).map(|(i, p)| (self.manifest.classes[i as usize], p)).collect())
    }

    /// Trains on labelled crops (class ids of the group), in place.
    pub fn train(&mut self, crops: &[(Rgb, u32)], cfg: &TrainConfig) -> Result<TrainingInfo, VisionError> {
        let labelled: Vec<(&Rgb, i64)> = crops
            .iter()
            .filter_map(|(c, class)| Some((c, self.manifest.classes.iter().position(|k| k == class)? as i64)))
            .collect();
        if labelled.is_empty() {
            return Err(VisionError::Input("no crops of the recognizer's classes".into()));
        }
        let device = self.vs.device();
        let all = crops_batch(&labelled.iter().map(|(c, _)| *c).collect::<Vec<_>>(), Device::Cpu)?;
        let labels = Tensor::from_slice(&labelled.iter().map(|(_, l)| *l).collect::<Vec<_>>());
        let mut opt = nn::Adam::default().build(&self.vs, cfg.learning_rate)?;
        let mut rng = Rng::from_key(&format!("recognizer/{}", cfg.seed));
        let started = Instant::now();
        for _ in 0..cfg.steps {
            let pick: Vec<i64> = (0..cfg.batch).map(|_| rng.below(labelled.len() as u64) as i64).collect();
            let idx = Tensor::from_slice(&pick);
            let mut xs = all.index_select(0, &idx);
            if rng.below(2) == 0 {
                xs = xs.flip([3]);
            }
            let gain = f64::from(rng.range(0.8, 1.2));
            let xs = ((xs + 0.5) * gain - 0.5).to_device(device);
            let loss = self.net.forward(&xs).cross_entropy_for_logits(&labels.index_select(0, &idx).to_device(device));
            opt.backward_step(&loss);
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(TrainingInfo {
            examples: labelled.len() as u64,
            steps: cfg.steps,
            seconds,
            images_per_second: (cfg.steps * cfg.batch as u64) as f64 / seconds.max(1e-9),
            ..Default::default()
        })
    }

    /// The artifact.
    pub fn to_artifact(
        &self,
        training: Option<TrainingInfo>,
        metrics: BTreeMap<String, f64>,
    ) -> Result<Artifact, VisionError> {
        let weights = save_weights(&self.vs)?;
        let manifest = Manifest { weights_sha256: sha256_hex(&weights), training, metrics, ..self.manifest.clone() };
        Ok(Artifact { manifest, weights })
    }
}
