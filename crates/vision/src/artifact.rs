//! Model artifacts: weights (safetensors, or a TorchScript module traced elsewhere) and a
//! manifest that says what they are. An artifact is checked whole before it may serve: the
//! manifest, the weights' checksum, the classes and input size against what it is deployed
//! for, and a probe forward pass that must give the output the manifest promises.

use crate::VisionError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tch::nn;

/// Manifests larger than this are not read.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// The manifest format this build reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// The architecture name of an imported TorchScript module.
pub const TORCHSCRIPT: &str = "torchscript";

/// What the model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Boxes and classes on a shelf photo.
    Detector,
    /// The class of one crop.
    Recognizer,
}

/// The input size our workers feed detectors: 256x192 (4:3, like the shelf photos).
pub const DETECTOR_INPUT: (i64, i64) = (256, 192);
/// The crop size the recognizer reads.
pub const RECOGNIZER_INPUT: (i64, i64) = (32, 32);

impl ModelKind {
    /// The input our workers feed this kind: [`DETECTOR_INPUT`] photos, [`RECOGNIZER_INPUT`] crops.
    pub fn input(self) -> (i64, i64) {
        match self {
            Self::Detector => DETECTOR_INPUT,
            Self::Recognizer => RECOGNIZER_INPUT,
        }
    }

    /// The name used in model keys and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Detector => "detector",
            Self::Recognizer => "recognizer",
        }
    }
}

/// What data a model was trained on and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Photos (detector) or crops (recognizer) trained on.
    pub examples: u64,
    /// Tasks they came from.
    pub tasks: u64,
    /// A digest of the (task, ground-truth version) pairs trained on: the data snapshot.
    pub snapshot: String,
    /// Optimizer steps.
    pub steps: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Images per second during training.
    pub images_per_second: f64,
}

/// The manifest of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// What the model does.
    pub kind: ModelKind,
    /// The network (`centernet-s8-v1`, `crop-cnn-v1`, or `torchscript`).
    pub architecture: String,
    /// Class ids, in output-channel order.
    pub classes: Vec<u32>,
    /// Input width and height, pixels.
    pub input: (i64, i64),
    /// SHA-256 of the weights file, hex.
    pub weights_sha256: String,
    /// Training data and run, for models trained here.
    pub training: Option<TrainingInfo>,
    /// Metrics measured when it was made (e.g. held-out precision and recall).
    pub metrics: BTreeMap<String, f64>,
}

/// An artifact as stored: manifest and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// The manifest.
    pub manifest: Manifest,
    /// The weights file's bytes.
    pub weights: Vec<u8>,
}

/// What an artifact must be to serve a deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// What it must do.
    pub kind: ModelKind,
    /// The class group's class ids, in any order.
    pub classes: Vec<u32>,
    /// The input size the workers feed.
    pub input: (i64, i64),
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Reads a manifest, bounded.
    pub fn parse(bytes: &[u8]) -> Result<Self, VisionError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(VisionError::artifact(format!(
                "manifest of {} bytes is over {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| VisionError::artifact(format!("manifest is not valid: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(VisionError::artifact(format!(
                "manifest format {} (this build reads {MANIFEST_FORMAT})",
                m.format
            )));
        }
        Ok(m)
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serializes")
    }
}

impl Artifact {
    /// Checks everything that can be checked without running it: checksum, kind, classes, input.
    pub fn check(&self, expect: &Expect) -> Result<(), VisionError> {
        let m = &self.manifest;
        let sum = sha256_hex(&self.weights);
        if sum != m.weights_sha256 {
            return Err(VisionError::artifact(format!(
                "weights do not match the manifest's checksum ({} bytes, sha256 {sum}, manifest {}): truncated or replaced",
                self.weights.len(),
                m.weights_sha256
            )));
        }
        if m.kind != expect.kind {
            return Err(VisionError::artifact(format!("a {} cannot serve as a {}", m.kind.name(), expect.kind.name())));
        }
        let (mut have, mut want) = (m.classes.clone(), expect.classes.clone());
        have.sort_unstable();
        want.sort_unstable();
        if have != want || have.windows(2).any(|w| w[0] == w[1]) {
            return Err(VisionError::artifact(format!(
                "classes {:?} do not match the class group's {:?}",
                m.classes, expect.classes
            )));
        }
        if m.input != expect.input {
            return Err(VisionError::artifact(format!(
                "input size {}x{} is not the {}x{} the workers feed",
                m.input.0, m.input.1, expect.input.0, expect.input.1
            )));
        }
        Ok(())
    }
}

/// The variables as a safetensors file's bytes.
pub(crate) fn save_weights(vs: &nn::VarStore) -> Result<Vec<u8>, VisionError> {
    let file = tempfile::Builder::new().suffix(".safetensors").tempfile()?;
    vs.save(file.path())?;
    Ok(std::fs::read(file.path())?)
}

/// A TorchScript module from a `.pt` file's bytes, on `device`, in evaluation mode.
pub(crate) fn load_torchscript(weights: &[u8], device: tch::Device) -> Result<tch::CModule, VisionError> {
    let mut module = tch::CModule::load_data_on_device(&mut std::io::Cursor::new(weights), device)
        .map_err(|e| VisionError::artifact(format!("not a TorchScript module: {e}")))?;
    module.set_eval();
    Ok(module)
}

/// Loads a safetensors file's bytes into the variables; every variable must be there, in its shape.
pub(crate) fn load_weights(vs: &mut nn::VarStore, weights: &[u8]) -> Result<(), VisionError> {
    let file = tempfile::Builder::new().suffix(".safetensors").tempfile()?;
    std::fs::write(file.path(), weights)?;
    vs.load(file.path()).map_err(|e| VisionError::artifact(format!("weights do not load: {e}")))
}

/// The artifact of a TorchScript module traced elsewhere, a detector or a recognizer: its
/// manifest says the classes (in output order) and the input our workers feed that kind
/// ([`ModelKind::input`]); [`crate::Detector::load`] and [`crate::Recognizer::load`] check them
/// with a probe pass.
pub fn import_torchscript(module: Vec<u8>, kind: ModelKind, classes: Vec<u32>) -> Artifact {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        kind,
        architecture: TORCHSCRIPT.to_owned(),
        classes,
        input: kind.input(),
        weights_sha256: sha256_hex(&module),
        training: None,
        metrics: BTreeMap::new(),
    };
    Artifact { manifest, weights: module }
}
