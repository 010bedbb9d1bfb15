//! The crop recognizer: which class of the group is this package? A small CNN on 32x32 crops
//! of the boxes a detector (or an operator) drew — seed 000's second model of the
//! detection-and-recognition recipe. Trained on the crops of the training-data repository.

use crate::VisionError;
pub use crate::artifact::RECOGNIZER_INPUT;
use crate::artifact::{
    Artifact, Expect, MANIFEST_FORMAT, Manifest, ModelKind, TORCHSCRIPT, TrainingInfo, load_torchscript, load_weights,
    save_weights, sha256_hex,
};
use crate::train::TrainConfig;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use visionlog_imaging::Rgb;
use visionlog_imaging::scene::Rng;

/// The architecture name written in manifests.
pub const RECOGNIZER_ARCHITECTURE: &str = "crop-cnn-v1";

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

enum Net {
    Native { vs: nn::VarStore, net: nn::Sequential },
    Script(tch::CModule),
}

/// A crop recognizer and its manifest: trained here (weights in safetensors) or imported
/// (TorchScript, traced elsewhere: `[n, 3, 32, 32]` crops centred on zero in, `[n, classes]`
/// logits out).
pub struct Recognizer {
    manifest: Manifest,
    net: Net,
    device: Device,
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
        let net = Net::Native { vs, net };
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
        Ok(Self { manifest, net, device })
    }

    /// Loads an artifact, checked like a detector's: whole, what `expect` says, and a probe
    /// pass gives one score per class.
    pub fn load(artifact: &Artifact, expect: &Expect, device: Device) -> Result<Self, VisionError> {
        artifact.check(expect)?;
        let m = &artifact.manifest;
        let net = match m.architecture.as_str() {
            RECOGNIZER_ARCHITECTURE => {
                let mut vs = nn::VarStore::new(device);
                let net = net(&vs.root(), m.classes.len() as i64);
                load_weights(&mut vs, &artifact.weights)?;
                Net::Native { vs, net }
            }
            TORCHSCRIPT => Net::Script(load_torchscript(&artifact.weights, device)?),
            other => return Err(VisionError::artifact(format!("unknown architecture {other:?}"))),
        };
        let r = Self { manifest: m.clone(), net, device };
        r.probe()?;
        Ok(r)
    }

    /// One pass on a blank crop: the output must be `[1, classes]`.
    fn probe(&self) -> Result<(), VisionError> {
        let (w, h) = RECOGNIZER_INPUT;
        let x = Tensor::zeros([1, 3, h, w], (Kind::Float, self.device));
        let out =
            tch::no_grad(|| self.forward(&x)).map_err(|e| VisionError::artifact(format!("a probe pass fails: {e}")))?;
        let want = [1, self.manifest.classes.len() as i64];
        if out.size() != want {
            return Err(VisionError::artifact(format!(
                "output {:?} on a {w}x{h} crop, not {want:?}: wrong classes or not a recognizer",
                out.size()
            )));
        }
        Ok(())
    }

    /// The raw scores (logits) on a float batch of crops `[n, 3, 32, 32]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, VisionError> {
        Ok(match &self.net {
            Net::Native { net, .. } => net.forward(xs),
            Net::Script(m) => m.forward_ts(&[xs])?,
        })
    }

    /// Stops tracking gradients: for serving, and for tracing into TorchScript.
    pub fn freeze(&mut self) {
        if let Net::Native { vs, .. } = &mut self.net {
            vs.freeze();
        }
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
        let xs = crops_batch(crops, self.device)?;
        let probs = tch::no_grad(|| self.forward(&xs))?.softmax(-1, Kind::Float).to_device(Device::Cpu);
        let (p, i) = probs.max_dim(1, false);
        let (p, i): (Vec<f32>, Vec<i64>) = (Vec::try_from(p)?, Vec::try_from(i)?);
        Ok(i.into_iter().zip(p).map(|(i, p)| (self.manifest.classes[i as usize], p)).collect())
    }

    /// Trains on labelled crops (class ids of the group), in place.
    pub fn train(&mut self, crops: &[(Rgb, u32)], cfg: &TrainConfig) -> Result<TrainingInfo, VisionError> {
        let Net::Native { vs, net } = &self.net else {
            return Err(VisionError::Input("an imported module is served as it was imported, not trained".into()));
        };
        let labelled: Vec<(&Rgb, i64)> = crops
            .iter()
            .filter_map(|(c, class)| Some((c, self.manifest.classes.iter().position(|k| k == class)? as i64)))
            .collect();
        if labelled.is_empty() {
            return Err(VisionError::Input("no crops of the recognizer's classes".into()));
        }
        let device = self.device;
        let all = crops_batch(&labelled.iter().map(|(c, _)| *c).collect::<Vec<_>>(), Device::Cpu)?;
        let labels = Tensor::from_slice(&labelled.iter().map(|(_, l)| *l).collect::<Vec<_>>());
        let mut opt = nn::Adam::default().build(vs, cfg.learning_rate)?;
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
            let loss = net.forward(&xs).cross_entropy_for_logits(&labels.index_select(0, &idx).to_device(device));
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
        let Net::Native { vs, .. } = &self.net else {
            return Err(VisionError::artifact("an imported module is stored as it was imported"));
        };
        let weights = save_weights(vs)?;
        let manifest = Manifest { weights_sha256: sha256_hex(&weights), training, metrics, ..self.manifest.clone() };
        Ok(Artifact { manifest, weights })
    }
}
