//! One model key's stream: events, the fold and the decision.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kind of a detector's stream.
pub const DETECTOR: &str = "detector";
/// The kind of a crop recognizer's stream.
pub const RECOGNIZER: &str = "recognizer";

/// Names a model stream: whose, for which class group, doing what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    /// The customer (tenant).
    pub customer: String,
    /// The class group key.
    pub class_group: String,
    /// `detector` or `recognizer`.
    pub kind: String,
}

impl ModelKey {
    /// A detector's key.
    pub fn detector(customer: &str, class_group: &str) -> Self {
        Self { customer: customer.to_owned(), class_group: class_group.to_owned(), kind: DETECTOR.into() }
    }

    /// A crop recognizer's key.
    pub fn recognizer(customer: &str, class_group: &str) -> Self {
        Self { customer: customer.to_owned(), class_group: class_group.to_owned(), kind: RECOGNIZER.into() }
    }

    /// Whether this is a recognizer's stream.
    pub fn is_recognizer(&self) -> bool {
        self.kind == RECOGNIZER
    }

    /// The model id written on predictions, an id as the domain accepts them: the class
    /// group's key with its customer prefix (if any) left out, `/` as `:`, then the kind —
    /// `acme:ice-cream:detector` for customer `acme`, class group `acme/ice-cream`.
    pub fn model_id(&self) -> String {
        let group = self.class_group.strip_prefix(&format!("{}/", self.customer)).unwrap_or(&self.class_group);
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    '/' => ':',
                    c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') => c,
                    _ => '_',
                })
                .collect()
        };
        format!("{}:{}:{}", safe(&self.customer), safe(group), safe(&self.kind))
    }
}

/// What happened to a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ModelEvent {
    /// An artifact made elsewhere (a TorchScript module) became a version.
    ModelRegistered {
        /// The new version.
        version: u32,
        /// Object-store folder of the artifact (manifest and weights).
        artifact: String,
        /// Who registered it.
        by: String,
    },
    /// Someone asked for a model to be trained.
    TrainingRequested {
        /// Who asked (an operator, the policy).
        by: String,
        /// Why.
        reason: String,
    },
    /// A version was trained here.
    ModelTrained {
        /// The new version.
        version: u32,
        /// Object-store folder of the artifact.
        artifact: String,
        /// Photos trained on.
        examples: u64,
        /// Tasks they came from.
        tasks: u64,
        /// Digest of the (task, truth version) pairs: the data snapshot.
        snapshot: String,
        /// Training seconds.
        seconds: f64,
    },
    /// A version was scored on past examples against operator ground truth.
    ModelBacktested {
        /// The version scored.
        version: u32,
        /// Tasks scored on.
        tasks: u64,
        /// Its precision.
        precision: f64,
        /// Its recall.
        recall: f64,
        /// Its F1.
        f1: f64,
        /// The deployed version it was compared with, and that one's F1 on the same tasks.
        baseline: Option<(u32, f64)>,
    },
    /// A version now serves.
    ModelPromoted {
        /// The version.
        version: u32,
        /// Why.
        reason: String,
    },
    /// A version no longer serves.
    ModelRetired {
        /// The version.
        version: u32,
        /// Why.
        reason: String,
    },
}

/// What can be asked of a model stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ModelCommand {
    /// Register an imported artifact.
    Register {
        /// Its object-store folder.
        artifact: String,
        /// Who.
        by: String,
    },
    /// Ask for training.
    RequestTraining {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Record a version trained here (the event as it will be, the version filled in).
    RecordTraining(ModelEvent),
    /// Record a backtest of a version.
    RecordBacktest(ModelEvent),
    /// Deploy a version.
    Promote {
        /// The version.
        version: u32,
        /// Why.
        reason: String,
    },
    /// Stop serving a version.
    Retire {
        /// The version.
        version: u32,
        /// Why.
        reason: String,
    },
}

/// Where a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Registered or trained, not serving.
    Candidate,
    /// Serving.
    Deployed,
    /// Served once, no longer.
    Retired,
}

/// One version of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The version.
    pub version: u32,
    /// Object-store folder of the artifact.
    pub artifact: String,
    /// Trained here (else imported).
    pub trained: bool,
    /// Tasks it was trained on (0 for an imported one).
    pub tasks: u64,
    /// Where it stands.
    pub status: Status,
    /// The last backtest: (tasks, precision, recall, f1).
    pub backtest: Option<(u64, f64, f64, f64)>,
    /// The deployed version it was compared with in that backtest, and that one's F1.
    pub baseline: Option<(u32, f64)>,
    /// When it was made (ms).
    pub created_ms: i64,
}

/// The fold of one stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStream {
    /// Events folded in.
    pub version: u64,
    /// Every model version.
    pub versions: BTreeMap<u32, ModelVersion>,
    /// The version serving now.
    pub deployed: Option<u32>,
    /// Every change of the serving version: (ms, version or none).
    pub deployments: Vec<(i64, Option<u32>)>,
    /// Training requests not yet answered by a trained version: (by, reason).
    pub pending_training: Option<(String, String)>,
    /// Command ids decided, with the stream version each produced.
    pub commands: BTreeMap<String, u64>,
}

impl ModelStream {
    /// Folds one event in (`at_ms`: when it was recorded); see [`evolve`].
    fn apply(&mut self, event: &ModelEvent, at_ms: i64) {
        self.version += 1;
        let mut add = |version: u32, artifact: &str, trained: bool, tasks: u64| {
            self.versions.insert(
                version,
                ModelVersion {
                    version,
                    artifact: artifact.to_owned(),
                    trained,
                    tasks,
                    status: Status::Candidate,
                    backtest: None,
                    baseline: None,
                    created_ms: at_ms,
                },
            );
        };
        match event {
            ModelEvent::ModelRegistered { version, artifact, .. } => add(*version, artifact, false, 0),
            ModelEvent::ModelTrained { version, artifact, tasks, .. } => {
                add(*version, artifact, true, *tasks);
                self.pending_training = None;
            }
            ModelEvent::TrainingRequested { by, reason } => self.pending_training = Some((by.clone(), reason.clone())),
            ModelEvent::ModelBacktested { version, tasks, precision, recall, f1, baseline } => {
                if let Some(v) = self.versions.get_mut(version) {
                    v.backtest = Some((*tasks, *precision, *recall, *f1));
                    v.baseline = *baseline;
                }
            }
            ModelEvent::ModelPromoted { version, .. } => {
                if let Some(old) = self.deployed.and_then(|d| self.versions.get_mut(&d)) {
                    old.status = Status::Retired;
                }
                if let Some(v) = self.versions.get_mut(version) {
                    v.status = Status::Deployed;
                }
                self.deployed = Some(*version);
                self.deployments.push((at_ms, Some(*version)));
            }
            ModelEvent::ModelRetired { version, .. } => {
                if let Some(v) = self.versions.get_mut(version) {
                    v.status = Status::Retired;
                }
                if self.deployed == Some(*version) {
                    self.deployed = None;
                    self.deployments.push((at_ms, None));
                }
            }
        }
    }

    /// The version that served at `ms`, if any.
    pub fn deployed_at(&self, ms: i64) -> Option<u32> {
        self.deployments.iter().take_while(|(at, _)| *at <= ms).last().and_then(|(_, v)| *v)
    }

    /// Tasks the most recently trained version learnt from (0 if none was trained here).
    pub fn trained_tasks(&self) -> u64 {
        self.versions.values().filter(|v| v.trained).map(|v| v.tasks).next_back().unwrap_or(0)
    }

    /// The next version number.
    pub fn next_version(&self) -> u32 {
        self.versions.keys().next_back().map_or(1, |v| v + 1)
    }
}

/// Decides what a command means for a stream: the event to append, or why not.
pub fn decide(stream: &ModelStream, command: &ModelCommand) -> Result<ModelEvent, ModelRejection> {
    let known =
        |v: &u32| if stream.versions.contains_key(v) { Ok(()) } else { Err(ModelRejection::UnknownVersion(*v)) };
    Ok(match command {
        ModelCommand::Register { artifact, by } => {
            if artifact.is_empty() {
                return Err(ModelRejection::NoArtifact);
            }
            ModelEvent::ModelRegistered { version: stream.next_version(), artifact: artifact.clone(), by: by.clone() }
        }
        ModelCommand::RequestTraining { by, reason } => {
            if stream.pending_training.is_some() {
                return Err(ModelRejection::TrainingPending);
            }
            ModelEvent::TrainingRequested { by: by.clone(), reason: reason.clone() }
        }
        ModelCommand::RecordTraining(ModelEvent::ModelTrained {
            artifact, examples, tasks, snapshot, seconds, ..
        }) => ModelEvent::ModelTrained {
            version: stream.next_version(),
            artifact: artifact.clone(),
            examples: *examples,
            tasks: *tasks,
            snapshot: snapshot.clone(),
            seconds: *seconds,
        },
        ModelCommand::RecordBacktest(e @ ModelEvent::ModelBacktested { version, .. }) => {
            known(version)?;
            e.clone()
        }
        ModelCommand::RecordTraining(_) | ModelCommand::RecordBacktest(_) => {
            return Err(ModelRejection::Mismatch);
        }
        ModelCommand::Promote { version, reason } => {
            known(version)?;
            if stream.deployed == Some(*version) {
                return Err(ModelRejection::AlreadyDeployed(*version));
            }
            if stream.versions[version].status == Status::Retired {
                return Err(ModelRejection::Retired(*version));
            }
            ModelEvent::ModelPromoted { version: *version, reason: reason.clone() }
        }
        ModelCommand::Retire { version, reason } => {
            known(version)?;
            if stream.versions[version].status == Status::Retired {
                return Err(ModelRejection::AlreadyRetired(*version));
            }
            ModelEvent::ModelRetired { version: *version, reason: reason.clone() }
        }
    })
}

/// Folds one event into a stream (`at_ms`: when it was recorded) and returns the stream after it:
/// the model stream's `evolve`, as the task's.
pub fn evolve(mut stream: ModelStream, event: &ModelEvent, at_ms: i64) -> ModelStream {
    stream.apply(event, at_ms);
    stream
}

/// Why a model command was refused: a stable [`ModelRejection::code`] and a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelRejection {
    /// The command names a version the stream does not have.
    #[error("no version {0} of this model")]
    UnknownVersion(u32),
    /// A registration without an artifact.
    #[error("an artifact is required")]
    NoArtifact,
    /// Training was requested and not yet answered.
    #[error("training is already requested")]
    TrainingPending,
    /// A record command whose event is of another kind.
    #[error("the event does not match the command")]
    Mismatch,
    /// The version serves already.
    #[error("version {0} is deployed already")]
    AlreadyDeployed(u32),
    /// A retired version cannot be promoted.
    #[error("version {0} was retired")]
    Retired(u32),
    /// The version is retired already.
    #[error("version {0} is retired already")]
    AlreadyRetired(u32),
}

impl ModelRejection {
    /// The stable code (`unknown_version`, `training_pending`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownVersion(_) => "unknown_version",
            Self::NoArtifact => "no_artifact",
            Self::TrainingPending => "training_pending",
            Self::Mismatch => "event_mismatch",
            Self::AlreadyDeployed(_) => "already_deployed",
            Self::Retired(_) => "retired",
            Self::AlreadyRetired(_) => "already_retired",
        }
    }
}
