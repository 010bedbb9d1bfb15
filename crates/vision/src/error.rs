//! Why a model could not be built, loaded, trained or run.

/// Errors of the vision crate.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An artifact that must not be deployed: wrong classes, wrong input size, a damaged file.
    #[error("artifact rejected: {0}")]
    Artifact(String),
    /// Input that cannot be fed to the model.
    #[error("bad input: {0}")]
    Input(String),
    /// A training run was stopped before its end (its model is not usable).
    #[error("training stopped at step {step}")]
    Stopped {
        /// The last step done.
        step: u64,
    },
    /// Files of an artifact.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl VisionError {
    pub(crate) fn artifact(reason: impl Into<String>) -> Self {
        Self::Artifact(reason.into())
    }
}
