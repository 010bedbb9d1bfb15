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
    /// Partitions of `commands` and `events` (and of each tenant's topics).
    pub partitions: u32,
    /// The prefix the names are under (`""` for none).
    pub prefix: String,
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
            prefix: prefix.to_owned(),
            retention: TopicRetention::default(),
        }
    }

    fn tenant_topic(&self, tenant: &str, what: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("tenant.{tenant}.{what}"),
            prefix => format!("{prefix}.tenant.{tenant}.{what}"),
        }
    }

    /// The topic a tenant produces its commands to (`<prefix>.tenant.<id>.commands`): what
    /// arrives there is the tenant's, whatever its headers say. Keyed by task id, partitioned
    /// as `commands`.
    pub fn tenant_commands(&self, tenant: &str) -> String {
        self.tenant_topic(tenant, "commands")
    }

    /// The topic a tenant reads its tasks' events from (`<prefix>.tenant.<id>.events`): each
    /// event of its tasks once, in version order, and its commands' rejections; written in
    /// transactions. Keyed by task id, partitioned as `events`.
    pub fn tenant_events(&self, tenant: &str) -> String {
        self.tenant_topic(tenant, "events")
    }

    /// Creates a tenant's two topics where missing.
    pub fn create_tenant(&self, log: &dyn EventLog, tenant: &str) -> Result<(), LogError> {
        let commands = Retention::For(self.retention.commands);
        log.create_topic_retained(&self.tenant_commands(tenant), self.partitions, commands)?;
        log.create_topic(&self.tenant_events(tenant), self.partitions)
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
