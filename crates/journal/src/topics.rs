//! Topic names and partition counts.

use std::time::Duration;
use visionlog_log::{EventLog, LogError, Retention};

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
    /// How long the topics that are not the source of truth keep their records.
    pub retention: TopicRetention,
}

/// How long `commands`, `outcomes` and `dead-letters` keep their records (set when they are
/// created). None of them is the source of truth, and the aggregator's deduplication does not
/// read them: it remembers a task's last command ids in the task's record, folded from
/// `events`. What each must outlive is in docs/operations.md ("Retention").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicRetention {
    /// Longer than the longest the aggregators may be down: an unread command past it is lost
    /// (its sender sees no outcome and sends it again, under the same command id).
    pub commands: Duration,
    /// Longer than any sender waits for an outcome.
    pub outcomes: Duration,
    /// Longer than the on-call takes to look at what failed.
    pub dead_letters: Duration,
}

impl Default for TopicRetention {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(86_400);
        Self { commands: 7 * DAY, outcomes: 7 * DAY, dead_letters: 30 * DAY }
    }
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
            retention: TopicRetention::default(),
        }
    }

    /// Creates the topics where missing.
    pub fn create(&self, log: &dyn EventLog) -> Result<(), LogError> {
        let r = &self.retention;
        log.create_topic_retained(&self.commands, self.partitions, Retention::For(r.commands))?;
        log.create_topic(&self.events, self.partitions)?;
        log.create_topic_retained(&self.outcomes, self.partitions, Retention::For(r.outcomes))?;
        log.create_topic(&self.inference_jobs, self.partitions)?;
        log.create_topic_retained(&self.dead_letters, 1, Retention::For(r.dead_letters))?;
        log.create_topic(&self.models, 1)?;
        // facts keyed by subject: the last one of each subject is what counts
        log.create_topic_retained(&self.privacy, 1, Retention::Compacted)?;
        Ok(())
    }
}
