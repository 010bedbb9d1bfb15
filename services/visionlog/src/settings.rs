//! The services' settings: one place, each a flag with its `VISIONLOG_*` variable, shown by
//! `--help` under its service's heading, parsed and checked by clap. A malformed value stops the
//! start, naming the variable and the value ([`explain`]); nothing else reads the environment for
//! settings (libraries take them as values).

use clap::builder::RangedU64ValueParser;
use std::time::Duration;
use visionlog_tiering::TierConfig;

/// Milliseconds between rounds of the tiering service.
pub(crate) const TIER_INTERVAL_MS: u64 = 5_000;

/// Settings of the gateway, the webhook sink, the trainer, the health probes and the URL guard.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Settings {
    /// Seconds an operator's lease lasts without a heartbeat.
    #[arg(long, env = "VISIONLOG_LEASE_S", default_value_t = 120, global = true, help_heading = "Gateway",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=86_400))]
    pub(crate) lease_s: u64,
    /// Seconds a tombstone of a view (a row a task stopped producing) is kept before the projector
    /// erases it: longer than a consumer session and a batch, so no former owner of a partition
    /// can still write an older row (0 erases at the next batch; for tests).
    #[arg(long, env = "VISIONLOG_TOMBSTONE_GRACE_S", default_value_t = 600, global = true, help_heading = "Projector",
          value_parser = RangedU64ValueParser::<u64>::new().range(0..=2_678_400))]
    pub(crate) tombstone_grace_s: u64,
    /// Hours the `commands` topic keeps a command (set when the topic is created): longer than
    /// the aggregators may ever be down, or unread commands are lost to retention.
    #[arg(long, env = "VISIONLOG_COMMANDS_RETENTION_H", default_value_t = 168, global = true, help_heading = "Topics",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=87_600))]
    pub(crate) commands_retention_h: u64,
    /// Hours the `outcomes` topic keeps an outcome (set when the topic is created): longer than
    /// any sender waits for one.
    #[arg(long, env = "VISIONLOG_OUTCOMES_RETENTION_H", default_value_t = 168, global = true, help_heading = "Topics",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=87_600))]
    pub(crate) outcomes_retention_h: u64,
    /// Hours the `dead-letters` topic keeps a record (set when the topic is created).
    #[arg(long, env = "VISIONLOG_DEAD_LETTERS_RETENTION_H", default_value_t = 720, global = true,
          help_heading = "Topics", value_parser = RangedU64ValueParser::<u64>::new().range(1..=87_600))]
    pub(crate) dead_letters_retention_h: u64,
    /// Most live event streams (SSE) the gateway holds open at once, in all.
    #[arg(long, env = "VISIONLOG_MAX_STREAMS", default_value_t = 256, global = true, help_heading = "Gateway",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=100_000))]
    pub(crate) max_streams: u64,
    /// Most live event streams one caller (a tenant, an operator, an admin) holds open at once.
    #[arg(long, env = "VISIONLOG_MAX_STREAMS_PER_CALLER", default_value_t = 32, global = true,
          help_heading = "Gateway", value_parser = RangedU64ValueParser::<u64>::new().range(1..=100_000))]
    pub(crate) max_streams_per_caller: u64,
    /// Largest JSON body the gateway accepts, in bytes.
    #[arg(long, env = "VISIONLOG_MAX_BODY_BYTES", default_value_t = 1 << 20, global = true, help_heading = "Gateway",
          value_parser = RangedU64ValueParser::<u64>::new().range(1024..=(1 << 30)))]
    pub(crate) max_body_bytes: u64,
    /// Tries per result delivered to a callback URL, at most (the retry window usually ends
    /// them first).
    #[arg(long, env = "VISIONLOG_WEBHOOK_ATTEMPTS", default_value_t = 100, global = true, help_heading = "Webhooks",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=1000))]
    pub(crate) webhook_attempts: u64,
    /// How long after a result its delivery is tried again, in seconds (default a day).
    #[arg(long, env = "VISIONLOG_WEBHOOK_RETRY_FOR_S", default_value_t = 86_400, global = true,
          help_heading = "Webhooks", value_parser = RangedU64ValueParser::<u64>::new().range(0..=30 * 86_400))]
    pub(crate) webhook_retry_for_s: u64,
    /// Result bodies a process holds in memory at once; more wait in the durable schedule.
    #[arg(long, env = "VISIONLOG_WEBHOOK_MAX_QUEUED", default_value_t = 1000, global = true,
          help_heading = "Webhooks", value_parser = RangedU64ValueParser::<u64>::new().range(1..=1_000_000))]
    pub(crate) webhook_max_queued: u64,
    /// The first wait between tries, in ms; doubled each try.
    #[arg(
        long,
        env = "VISIONLOG_WEBHOOK_BACKOFF_MS",
        default_value_t = 1_000,
        global = true,
        help_heading = "Webhooks"
    )]
    pub(crate) webhook_backoff_ms: u64,
    /// The longest wait between tries, in ms.
    #[arg(
        long,
        env = "VISIONLOG_WEBHOOK_MAX_BACKOFF_MS",
        default_value_t = 3_600_000,
        global = true,
        help_heading = "Webhooks"
    )]
    pub(crate) webhook_max_backoff_ms: u64,
    /// Refuse to start the webhook sink while a tenant has no webhook_secrets in the tenants
    /// file (without it such tenants get unsigned deliveries and a warning at every start;
    /// the variable takes 1/0, true/false, yes/no).
    #[arg(long, env = "VISIONLOG_WEBHOOK_REQUIRE_SIGNATURES", global = true, help_heading = "Webhooks",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) webhook_require_signatures: bool,
    /// How long one delivery may take, in ms.
    #[arg(long, env = "VISIONLOG_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, global = true, help_heading = "Webhooks",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub(crate) webhook_timeout_ms: u64,
    /// Deliveries in flight per callback endpoint.
    #[arg(long, env = "VISIONLOG_WEBHOOK_CONCURRENCY", default_value_t = 4, global = true, help_heading = "Webhooks",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=1024))]
    pub(crate) webhook_concurrency: u64,
    /// Address space of the child process that checks an uploaded TorchScript module, in MiB.
    #[arg(long, env = "VISIONLOG_MODULE_CHECK_MEMORY_MB", default_value_t = 8192, global = true,
          help_heading = "Gateway", value_parser = RangedU64ValueParser::<u64>::new().range(16..=1 << 20))]
    pub(crate) module_check_memory_mb: u64,
    /// How long the check of an uploaded TorchScript module may take, in ms.
    #[arg(long, env = "VISIONLOG_MODULE_CHECK_TIMEOUT_MS", default_value_t = 60_000, global = true,
          help_heading = "Gateway", value_parser = RangedU64ValueParser::<u64>::new().range(1..=3_600_000))]
    pub(crate) module_check_timeout_ms: u64,
    /// Optimizer steps of one training run.
    #[arg(long, env = "VISIONLOG_TRAIN_STEPS", default_value_t = 300, global = true, help_heading = "Trainer",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=1_000_000))]
    pub(crate) train_steps: u64,
    /// New labelled tasks of a class group that start a training run.
    #[arg(long, env = "VISIONLOG_TRAIN_MIN_TASKS", default_value_t = 40, global = true, help_heading = "Trainer",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub(crate) train_min_tasks: u64,
    /// Megabytes of prepared photos a training run keeps in memory; a larger training set
    /// streams through a pool of this size (set the trainer pod's memory limit above it).
    #[arg(long, env = "VISIONLOG_TRAIN_MEMORY_MB", default_value_t = 1024, global = true, help_heading = "Trainer",
          value_parser = RangedU64ValueParser::<u64>::new().range(16..=1_048_576))]
    pub(crate) train_memory_mb: u64,
    /// Drift triggers training: days (today included) on each of which a deployed model's
    /// quality-checked runs fell below its backtest before a training request is recorded with
    /// the figures as its reason; 0: never.
    #[arg(long, env = "VISIONLOG_DRIFT_WINDOW_DAYS", default_value_t = 3, global = true, help_heading = "Trainer",
          value_parser = RangedU64ValueParser::<u32>::new().range(0..=365))]
    pub(crate) drift_window_days: u32,
    /// `GET /readyz` answers 503 while a service lags more than this many records behind.
    #[arg(long, env = "VISIONLOG_READY_MAX_LAG", default_value_t = 1_000, global = true, help_heading = "Health")]
    pub(crate) ready_max_lag: u64,
    /// Networks or addresses that callback and image URLs may reach although private
    /// (comma-separated CIDRs or IPs, e.g. `10.0.0.0/8,127.0.0.1`); none by default.
    #[arg(long, env = "VISIONLOG_URL_ALLOW", global = true, help_heading = "Security")]
    pub(crate) url_allow: Option<String>,
    /// Which logs to show: a tracing filter (`warn`, `info`, `visionlog_journal=debug,info`).
    #[arg(long, env = "VISIONLOG_LOG_LEVEL", default_value = "warn", global = true, help_heading = "Logging")]
    pub(crate) log_level: String,
    /// Records per cold segment of the log.
    #[arg(long, env = "VISIONLOG_TIER_SEGMENT_RECORDS", default_value_t = TierConfig::SEGMENT_RECORDS, global = true,
          help_heading = "Tiering", value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) segment_records: usize,
    /// A shorter range is tiered once its newest record is this many seconds old.
    #[arg(long, env = "VISIONLOG_TIER_CLOSE_AFTER_S", default_value_t = TierConfig::CLOSE_AFTER.as_secs(),
          global = true, help_heading = "Tiering")]
    pub(crate) close_after_s: u64,
    /// Drop the hot copy below the verified segments (the variable takes 1/0, true/false, yes/no).
    #[arg(long = "drop-hot", env = "VISIONLOG_TIER_DROP_HOT", global = true, help_heading = "Tiering",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) tier_drop_hot: bool,
    /// `cpu` runs the models on the CPU although a GPU is there.
    #[arg(long, env = "VISIONLOG_DEVICE", global = true, help_heading = "Models",
          value_parser = ["cpu", "auto"])]
    pub(crate) device: Option<String>,
    /// CPU threads of libtorch's operators (0: libtorch's own choice, one per core). Where
    /// several model processes share a few cores, 1 each keeps their thread pools from
    /// spinning against each other.
    #[arg(long, env = "VISIONLOG_TORCH_THREADS", default_value_t = 0, global = true, help_heading = "Models",
          value_parser = RangedU64ValueParser::<u32>::new().range(0..=1024))]
    pub(crate) torch_threads: u32,
}

impl Settings {
    /// How long the topics that are not the source of truth keep their records.
    pub(crate) fn topic_retention(&self) -> visionlog_journal::TopicRetention {
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        visionlog_journal::TopicRetention {
            commands: hours(self.commands_retention_h),
            outcomes: hours(self.outcomes_retention_h),
            dead_letters: hours(self.dead_letters_retention_h),
        }
    }

    /// The HTTP surfaces' settings (gateway and Operator Manager).
    pub(crate) fn http(&self) -> visionlog_http::ApiConfig {
        visionlog_http::ApiConfig {
            lease: Duration::from_secs(self.lease_s),
            max_body_bytes: self.max_body_bytes as usize,
            max_streams: self.max_streams as usize,
            max_streams_per_caller: self.max_streams_per_caller as usize,
            ..visionlog_http::ApiConfig::default()
        }
    }

    /// The webhook sink's settings.
    pub(crate) fn webhooks(&self) -> visionlog_webhooks::WebhookConfig {
        visionlog_webhooks::WebhookConfig {
            max_attempts: self.webhook_attempts as u32,
            retry_for: Duration::from_secs(self.webhook_retry_for_s),
            max_queued: self.webhook_max_queued as usize,
            tick: Duration::from_millis(500),
            base_backoff: Duration::from_millis(self.webhook_backoff_ms),
            max_backoff: Duration::from_millis(self.webhook_max_backoff_ms.max(self.webhook_backoff_ms)),
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            per_endpoint: self.webhook_concurrency as usize,
        }
    }

    /// The trainer's settings.
    pub(crate) fn trainer(&self) -> visionlog_inference::TrainerConfig {
        let mut c = visionlog_inference::TrainerConfig::default();
        c.train.steps = self.train_steps;
        c.min_new_tasks = self.train_min_tasks;
        c.memory_bytes = (self.train_memory_mb as usize) << 20;
        c.drift_window_days = Some(self.drift_window_days).filter(|d| *d > 0);
        c
    }

    /// The tierer's settings for `topic`.
    pub(crate) fn tier_config(&self, topic: &str) -> TierConfig {
        TierConfig {
            segment_records: self.segment_records,
            close_after: Duration::from_secs(self.close_after_s),
            ..TierConfig::new(topic)
        }
    }

    /// The SSRF guard for callback and image URLs.
    pub(crate) fn url_guard(&self) -> anyhow::Result<visionlog_netguard::UrlGuard> {
        let Some(allow) = &self.url_allow else { return Ok(visionlog_netguard::UrlGuard::strict()) };
        let nets: Vec<&str> = allow.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        visionlog_netguard::UrlGuard::allowing(&nets)
            .map_err(|e| anyhow::anyhow!("VISIONLOG_URL_ALLOW / --url-allow {allow:?}: {e}"))
    }
}

/// A clap error about a value that came from a `VISIONLOG_*` variable (not from the command
/// line), told with the variable's name and value: clap names only the flag, and an operator who
/// never typed the flag would look for it in vain.
pub(crate) fn explain(command: &clap::Command, error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(error.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else { return None };
    let long = flag.trim_start_matches("--").split([' ', '=']).next().unwrap_or_default();
    let given_on_line = std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    let env = all_args(command).into_iter().find(|a| a.get_long() == Some(long))?.get_env()?.to_str()?.to_owned();
    let value = std::env::var(&env).ok().filter(|_| !given_on_line)?;
    let why = error.to_string();
    let why = why.lines().next().unwrap_or_default().trim_start_matches("error: ");
    Some(format!("{env}={value:?} is not a valid setting ({why}); fix or unset the variable"))
}

/// Every argument of a command and its subcommands.
pub(crate) fn all_args(command: &clap::Command) -> Vec<&clap::Arg> {
    let mut out: Vec<&clap::Arg> = command.get_arguments().collect();
    for sub in command.get_subcommands() {
        out.extend(all_args(sub));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every `VISIONLOG_*` name the code reads shows in some `--help` (as a flag's variable or in
    /// a flag's text); the exceptions are read by builds and scripts, or are test hooks.
    #[test]
    fn every_visionlog_variable_shows_in_some_help() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut names = std::collections::BTreeSet::new();
        for dir in ["crates", "services"] {
            collect(&root.join(dir), &mut names);
        }
        let mut help = String::new();
        render(&mut crate::Cli::command(), &mut help);
        // read by build scripts (CUDA, libtorch's path), install.sh, or a fault-injection hook of the tiering tests
        let elsewhere =
            ["VISIONLOG_CUDA", "VISIONLOG_VISION_LIBTORCH_LIB", "VISIONLOG_BENCH_DEPS", "VISIONLOG_TIER_FAIL_AT"];
        let missing: Vec<&String> =
            names.iter().filter(|n| !elsewhere.contains(&n.as_str()) && !help.contains(n.as_str())).collect();
        assert!(names.len() > 20, "the scan found {names:?}");
        assert!(missing.is_empty(), "read by the code but in no --help: {missing:?}");
    }

    fn render(command: &mut clap::Command, out: &mut String) {
        out.push_str(&command.render_long_help().to_string());
        for sub in command.get_subcommands_mut() {
            render(sub, out);
        }
    }

    fn collect(dir: &std::path::Path, names: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") && !path.ends_with("tests") {
                collect(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("VISIONLOG_") {
                    let name: String = text[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    names.insert(name.trim_end_matches('_').to_owned());
                }
            }
        }
    }
}
