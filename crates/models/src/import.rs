//! Importing a model artifact traced elsewhere: one use case for the CLI and the HTTP API.
//!
//! Checking an artifact means loading it, which needs libtorch; the gateway must not link it
//! (ADR 0014). So the check and the storing sit behind [`ArtifactImport`], which the process
//! that serves models implements (`visionlog_inference::TorchImport`) and the binary hands to
//! the gateway and the CLI. What is left here is the rule both follow: the class group must be
//! known, the artifact must fit it, and only then is it registered as a new version.

use crate::{ModelCommand, ModelKey};
use visionlog_store::{ReadStore, StoreError};

/// Checks an uploaded artifact and stores it (see the module's documentation).
pub trait ArtifactImport: Send + Sync {
    /// Checks `module` (a TorchScript module of the kind `key` names: a detector or a crop
    /// recognizer) against the class group's `group_classes` (`classes`: its outputs in
    /// order, the group's ascending if empty), stores it under the key's model id, and returns
    /// its folder, to be registered. Errs with why it does not fit.
    fn import_module(
        &self,
        key: &ModelKey,
        module: Vec<u8>,
        classes: Vec<u32>,
        group_classes: Vec<u32>,
    ) -> Result<String, String>;
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No task has used the class group: its classes are not known.
    #[error("no class group {0:?} is known (no task has used it)")]
    UnknownClassGroup(String),
    /// The artifact does not load, or does not fit the class group.
    #[error("invalid artifact: {0}")]
    Invalid(String),
    /// The read store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks and stores a module for `key` (its class group's detector or recognizer), and
/// returns the command that registers it (the caller executes it, with its own idempotency).
pub fn import_module(
    store: &dyn ReadStore,
    artifacts: &dyn ArtifactImport,
    key: &ModelKey,
    module: Vec<u8>,
    classes: Vec<u32>,
    by: &str,
) -> Result<ModelCommand, ImportError> {
    let group = visionlog_views::queries::class_group(store, &key.customer, &key.class_group)?
        .ok_or_else(|| ImportError::UnknownClassGroup(key.class_group.clone()))?;
    let group_classes: Vec<u32> = group.classes.keys().copied().collect();
    let folder = artifacts.import_module(key, module, classes, group_classes).map_err(ImportError::Invalid)?;
    Ok(ModelCommand::Register { artifact: folder, by: by.to_owned() })
}
