//! A detector ready to serve: trained here (weights in safetensors) or imported (TorchScript).

use crate::VisionError;
pub use crate::artifact::DETECTOR_INPUT;
use crate::artifact::{
    Artifact, Expect, MANIFEST_FORMAT, Manifest, ModelKind, TORCHSCRIPT, TrainingInfo, load_torchscript, load_weights,
    save_weights, sha256_hex,
};
use crate::detector::{self, ARCHITECTURE, DecodeConfig, DetectorNet, STRIDE};
use crate::input::{batch, prepare, prepare_batch};
use std::collections::BTreeMap;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use visionlog_domain::Detection;
use visionlog_imaging::Rgb;

enum Net {
    Native { vs: nn::VarStore, net: Box<DetectorNet> },
    Script(tch::CModule),
}

/// A detector and its manifest.
pub struct Detector {
    manifest: Manifest,
    net: Net,
    device: Device,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("manifest", &self.manifest).field("device", &self.device).finish()
    }
}

impl Detector {
    /// A new, untrained detector for these classes (weights from `seed`).
    pub fn new(classes: &[u32], input: (i64, i64), device: Device, seed: i64) -> Result<Self, VisionError> {
        if classes.is_empty() || input.0 % STRIDE != 0 || input.1 % STRIDE != 0 {
            return Err(VisionError::Input(format!("{} classes at {}x{}", classes.len(), input.0, input.1)));
        }
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let net = DetectorNet::new(&vs.root(), classes.len() as i64);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            kind: ModelKind::Detector,
            architecture: ARCHITECTURE.to_owned(),
            classes: classes.to_vec(),
            input,
            weights_sha256: String::new(),
            training: None,
            metrics: BTreeMap::new(),
        };
        Ok(Self { manifest, net: Net::Native { vs, net: Box::new(net) }, device })
    }

    /// Loads an artifact for a deployment: refused unless it is whole, it is what `expect`
    /// says, and a probe pass gives the output its manifest promises.
    pub fn load(artifact: &Artifact, expect: &Expect, device: Device) -> Result<Self, VisionError> {
        artifact.check(expect)?;
        let m = &artifact.manifest;
        let net = match m.architecture.as_str() {
            ARCHITECTURE => {
                let mut vs = nn::VarStore::new(device);
                let net = DetectorNet::new(&vs.root(), m.classes.len() as i64);
                load_weights(&mut vs, &artifact.weights)?;
                Net::Native { vs, net: Box::new(net) }
            }
            TORCHSCRIPT => Net::Script(load_torchscript(&artifact.weights, device)?),
            other => return Err(VisionError::artifact(format!("unknown architecture {other:?}"))),
        };
        let det = Self { manifest: m.clone(), net, device };
        det.probe()?;
        Ok(det)
    }

    /// One pass on a blank input: the output must be `[1, classes + 4, h/8, w/8]`.
    fn probe(&self) -> Result<(), VisionError> {
        let (w, h) = self.manifest.input;
        let x = Tensor::zeros([1, 3, h, w], (Kind::Float, self.device));
        let out =
            tch::no_grad(|| self.forward(&x)).map_err(|e| VisionError::artifact(format!("a probe pass fails: {e}")))?;
        let want = [1, self.manifest.classes.len() as i64 + 4, h / STRIDE, w / STRIDE];
        if out.size() != want {
            return Err(VisionError::artifact(format!(
                "output {:?} on a {w}x{h} input, not {want:?}: wrong classes or input size",
                out.size()
            )));
        }
        Ok(())
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The trainable variables (models trained here only).
    pub fn vars(&self) -> Option<&nn::VarStore> {
        match &self.net {
            Net::Native { vs, .. } => Some(vs),
            Net::Script(_) => None,
        }
    }

    /// Stops tracking gradients: for serving, and for tracing into TorchScript.
    pub fn freeze(&mut self) {
        if let Net::Native { vs, .. } = &mut self.net {
            vs.freeze();
        }
    }

    /// The raw output on a float batch `[n, 3, h, w]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, VisionError> {
        Ok(match &self.net {
            Net::Native { net, .. } => net.forward(xs),
            Net::Script(m) => m.forward_ts(&[xs])?,
        })
    }

    /// Detects products on photos, as one batch; boxes in each photo's pixels.
    pub fn detect(&self, photos: &[&Rgb], cfg: &DecodeConfig) -> Result<Vec<Vec<Detection>>, VisionError> {
        if photos.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.manifest.input;
        let same_size = photos.iter().all(|p| (p.width, p.height) == (photos[0].width, photos[0].height));
        let (xs, frames) = if same_size {
            let (xs, scale) = prepare_batch(photos, input)?;
            (xs, photos.iter().map(|p| (scale, (p.width, p.height))).collect::<Vec<_>>())
        } else {
            let prepared = photos.iter().map(|p| prepare(p, input)).collect::<Result<Vec<_>, _>>()?;
            let frames =
                prepared.iter().zip(photos).map(|(p, ph)| ((p.scale_x, p.scale_y), (ph.width, ph.height))).collect();
            (batch(&prepared.iter().map(|p| &p.pixels).collect::<Vec<_>>()), frames)
        };
        let out = tch::no_grad(|| self.forward(&xs.to_device(self.device)))?.to_device(Device::Cpu);
        let found = detector::decode(&out, self.manifest.classes.len(), &frames, cfg)?;
        Ok(found
            .into_iter()
            .map(|f| {
                f.into_iter()
                    .map(|f| Detection {
                        image: 0,
                        bbox: f.bbox,
                        class_id: Some(self.manifest.classes[f.class_index]),
                        score: f.score,
                    })
                    .collect()
            })
            .collect())
    }

    /// The artifact of a detector trained here.
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
