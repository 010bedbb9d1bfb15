//! Topic names and partition counts.

use visionlog_log::{EventLog, LogError};

/// The topics of one visionlog deployment.
#[derive(Clone, Debug)]
pub struct Topics {
    /// Every command, keyed by task id.
    pub commands: String,
    /// The journal of decisions, keyed by task id; same partitioning as `commands`.
    pub events: String,
    /// One outcome per command, keyed by command id.
    pub outcomes: String,
    /// Work for inference workers, keyed by model id.
    pub inference_jobs: String,
    /// What could not be decoded or handled.
    pub dead_letters: String,
    /// The model streams (one partition; see `visionlog_models`).
    pub models: String,
    /// The schema registry kept in the log (one partition; see `LogRegistry`).
    pub schemas: String,
    /// Facts of data protection, e.g. a subject's keys shredded (one partition).
    pub privacy: String,
    /// Partitions of `commands` and `events`.
    pub partitions: u32,
}

impl Topics {
    /// Names the topics under a prefix (`""` for none).
    pub fn new(prefix: &str, partitions: u32) -> Self {
        let name = |n: &str| {
            if prefix.is_empty() { n.to_owned() } else { format!("{prefix}.{n}") }
        };
        Self {
            commands: name("commands"),
            events: name("events"),
            outcomes: name("outcomes"),
            inference_jobs: name("inference-jobs"),
            dead_letters: name("dead-letters"),
            models: name("models"),
            schemas: name("schemas"),
            privacy: name("privacy"),
            partitions,
        }
    }

    /// Creates the topics where missing.
    pub fn create(&self, log: &dyn EventLog) -> Result<(), LogError> {
        log.create_topic(&self.commands, self.partitions)?;
        log.create_topic(&self.events, self.partitions)?;
        log.create_topic(&self.outcomes, self.partitions)?;
        log.create_topic(&self.inference_jobs, self.partitions)?;
        log.create_topic(&self.dead_letters, 1)?;
        log.create_topic(&self.models, 1)?;
        log.create_topic(&self.privacy, 1)?;
        Ok(())
    }
}
