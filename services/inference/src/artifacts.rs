//! Artifacts in the object store: `models/<model id>/<folder>/manifest.json` and the weights
//! file next to it (`weights.safetensors`, or `model.pt` for an imported TorchScript module).

use visionlog_models::ModelKey;
use visionlog_objects::{Objects, ObjectsError};
use visionlog_vision::{
    Artifact, Detector, Expect, MAX_MANIFEST_BYTES, Manifest, ModelKind, Recognizer, TORCHSCRIPT, VisionError,
    import_torchscript,
};

/// Weights files larger than this are refused.
pub const MAX_WEIGHTS_BYTES: u64 = 512 << 20;

/// Why an artifact could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The object store.
    #[error("object store: {0}")]
    Objects(#[from] ObjectsError),
    /// The artifact itself.
    #[error(transparent)]
    Vision(#[from] VisionError),
}

fn segment(id: &str) -> String {
    visionlog_views::views::path_segment(id)
}

/// The folder of an artifact of a model.
pub fn folder(model_id: &str, name: &str) -> String {
    format!("models/{}/{}", segment(model_id), segment(name))
}

fn weights_file(m: &Manifest) -> &'static str {
    if m.architecture == TORCHSCRIPT { "model.pt" } else { "weights.safetensors" }
}

/// Writes an artifact: weights first, then the manifest that names them.
pub fn put(objects: &Objects, folder: &str, a: &Artifact) -> Result<(), ArtifactError> {
    objects.put(&format!("{folder}/{}", weights_file(&a.manifest)), a.weights.clone())?;
    objects.put(&format!("{folder}/manifest.json"), a.manifest.to_json())?;
    Ok(())
}

/// Reads an artifact (bounded); checking it is [`Detector::load`]'s or [`Recognizer::load`]'s job.
pub fn get(objects: &Objects, folder: &str) -> Result<Artifact, ArtifactError> {
    let manifest = Manifest::parse(&objects.get(&format!("{folder}/manifest.json"), MAX_MANIFEST_BYTES as u64)?)?;
    let weights = objects.get(&format!("{folder}/{}", weights_file(&manifest)), MAX_WEIGHTS_BYTES)?;
    Ok(Artifact { manifest, weights })
}

/// Checks a TorchScript module traced elsewhere, a detector or a recognizer, against its class
/// group (`group_classes`; `classes` in output order, the group's ascending if empty) by
/// loading it and making a probe pass, in this process.
pub fn check_module(
    bytes: Vec<u8>,
    kind: ModelKind,
    classes: Vec<u32>,
    group_classes: Vec<u32>,
) -> Result<Artifact, ArtifactError> {
    let classes = if classes.is_empty() { group_classes.clone() } else { classes };
    let artifact = import_torchscript(bytes, kind, classes);
    let expect = Expect { kind, classes: group_classes, input: artifact.manifest.input };
    match kind {
        ModelKind::Detector => drop(Detector::load(&artifact, &expect, tch::Device::Cpu)?),
        ModelKind::Recognizer => drop(Recognizer::load(&artifact, &expect, tch::Device::Cpu)?),
    }
    Ok(artifact)
}

/// Checks a TorchScript module ([`check_module`]) and stores it as an artifact of `model_id`;
/// returns its folder, to be registered.
pub fn import_module(
    objects: &Objects,
    model_id: &str,
    bytes: Vec<u8>,
    kind: ModelKind,
    classes: Vec<u32>,
    group_classes: Vec<u32>,
) -> Result<String, ArtifactError> {
    let artifact = check_module(bytes, kind, classes, group_classes)?;
    store_imported(objects, model_id, &artifact)
}

/// The kind of model a stream holds.
pub fn kind_of(key: &ModelKey) -> ModelKind {
    if key.is_recognizer() { ModelKind::Recognizer } else { ModelKind::Detector }
}

/// Stores an imported artifact that was checked; returns its folder.
fn store_imported(objects: &Objects, model_id: &str, artifact: &Artifact) -> Result<String, ArtifactError> {
    let folder = folder(model_id, &format!("import-{}", &artifact.manifest.weights_sha256[..16]));
    put(objects, &folder, artifact)?;
    Ok(folder)
}

/// Runs the check of an uploaded module in another process (a module is code: loading and
/// running it in the gateway would let it take the gateway's memory, time or address space).
/// The binary supplies it: it runs `check(module file, kind, classes, group classes)` in a
/// child with a time and a memory limit, and answers why it was refused.
pub type IsolatedCheck =
    std::sync::Arc<dyn Fn(&std::path::Path, ModelKind, &[u32], &[u32]) -> Result<(), String> + Send + Sync>;

/// The libtorch check of imported artifacts, for the gateway and the CLI (they hold it as a
/// [`visionlog_models::ArtifactImport`]).
pub struct TorchImport {
    /// Where artifacts are stored.
    pub objects: Objects,
    /// Where the check runs: another process (the gateway), or this one (`None`: the CLI, run
    /// by an operator on a file of their own).
    pub isolated: Option<IsolatedCheck>,
}

impl visionlog_models::ArtifactImport for TorchImport {
    fn import_module(
        &self,
        key: &ModelKey,
        module: Vec<u8>,
        classes: Vec<u32>,
        group_classes: Vec<u32>,
    ) -> Result<String, String> {
        let (model_id, kind) = (key.model_id(), kind_of(key));
        let Some(check) = &self.isolated else {
            return import_module(&self.objects, &model_id, module, kind, classes, group_classes)
                .map_err(|e| e.to_string());
        };
        let file = tempfile::NamedTempFile::new().map_err(|e| format!("a file for the check: {e}"))?;
        std::fs::write(file.path(), &module).map_err(|e| format!("a file for the check: {e}"))?;
        check(file.path(), kind, &classes, &group_classes)?;
        // checked in the child: stored here without loading it
        let classes = if classes.is_empty() { group_classes } else { classes };
        let artifact = import_torchscript(module, kind, classes);
        store_imported(&self.objects, &model_id, &artifact).map_err(|e| e.to_string())
    }
}
