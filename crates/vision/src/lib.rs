//! Models of visionlog on libtorch (`tch`): the single-stage detector, its training and
//! scoring, the crop recognizer, artifacts (safetensors + manifest, or an imported TorchScript module), and the
//! choice of device.

mod artifact;
pub mod detector;
mod device;
mod error;
pub mod input;
pub mod recognizer;
mod servable;
pub mod train;

pub use artifact::{
    Artifact, Expect, MANIFEST_FORMAT, MAX_MANIFEST_BYTES, Manifest, ModelKind, TORCHSCRIPT, TrainingInfo,
    import_torchscript, sha256_hex,
};
pub use detector::{ARCHITECTURE, DecodeConfig};
pub use device::{DeviceChoice, device_choice, force_cpu};
pub use error::VisionError;
pub use recognizer::{RECOGNIZER_INPUT, Recognizer};
pub use servable::{DETECTOR_INPUT, Detector};
