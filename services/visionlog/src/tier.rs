//! `visionlog tier ...`: the tiering service and its one-shot commands.

use crate::health::Health;
use crate::runtime::{Backends, Runtime};
use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use visionlog_tiering::{Step, TierConfig, Tierer};

/// When a range is closed and what happens to the hot copy.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct TierSettings {
    /// Records per segment.
    #[arg(long, env = "VISIONLOG_TIER_SEGMENT_RECORDS", default_value_t = TierConfig::SEGMENT_RECORDS)]
    segment_records: usize,
    /// A shorter range is tiered once its newest record is this many seconds old.
    #[arg(long, env = "VISIONLOG_TIER_CLOSE_AFTER_S", default_value_t = TierConfig::CLOSE_AFTER.as_secs())]
    close_after_s: u64,
    /// Drop the hot copy below the verified segments (the variable takes 1/0, true/false, yes/no).
    #[arg(long, env = "VISIONLOG_TIER_DROP_HOT", value_parser = clap::builder::BoolishValueParser::new())]
    drop_hot: bool,
}

impl TierSettings {
    fn config(&self, topic: &str) -> TierConfig {
        TierConfig {
            segment_records: self.segment_records.max(1),
            close_after: Duration::from_secs(self.close_after_s),
            ..TierConfig::new(topic)
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum TierCmd {
    /// Tiers until SIGTERM: every interval, every closed range (an object-store outage pauses it
    /// and loses nothing).
    Run {
        #[command(flatten)]
        settings: TierSettings,
        /// Milliseconds between rounds.
        #[arg(long, default_value_t = INTERVAL_MS)]
        interval_ms: u64,
    },
    /// Tiers every closed range once (`--force`: everything, closed or not) and prints a summary.
    Once {
        #[command(flatten)]
        settings: TierSettings,
        /// Tier whatever is there, closed or not.
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Where each partition stands: hot start, end, tiered end, segments, backlog.
    Status {
        /// One JSON object per partition.
        #[arg(long)]
        json: bool,
    },
}

/// Milliseconds between rounds of the tiering service.
const INTERVAL_MS: u64 = 5_000;

/// [`TierSettings`] read from the environment alone (`VISIONLOG_TIER_*`), as the flags are.
#[derive(clap::Parser)]
struct FromEnv {
    #[command(flatten)]
    settings: TierSettings,
}

/// The tiering service of `visionlog run`: settings from the environment (VISIONLOG_TIER_*).
pub(crate) fn service(rt: &Runtime, stop: &Arc<AtomicBool>) -> Box<dyn FnOnce() -> anyhow::Result<()> + Send> {
    let (hot, objects, topic, stop) = (rt.hot.clone(), rt.objects.clone(), rt.topics.events.clone(), stop.clone());
    Box::new(move || {
        let settings = match <FromEnv as clap::Parser>::try_parse_from(["tiering"]) {
            Ok(parsed) => parsed.settings,
            Err(e) => {
                tracing::error!(error = %e, "tiering not started: bad VISIONLOG_TIER_* settings");
                return Err(anyhow::anyhow!("the tiering service's VISIONLOG_TIER_* settings: {e}"));
            }
        };
        Tierer::new(hot, objects, settings.config(&topic)).run(
            &stop,
            Duration::from_millis(INTERVAL_MS),
            settings.drop_hot,
        );
        Ok(())
    })
}

pub(crate) fn run(backends: &Backends, cmd: &TierCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let tierer =
        |settings: &TierSettings| Tierer::new(rt.hot.clone(), rt.objects.clone(), settings.config(&rt.topics.events));
    match cmd {
        TierCmd::Run { settings, interval_ms } => {
            let stop = crate::stop_on_signals()?;
            let health = Health::start(backends.health_addr, rt.settings.ready_max_lag, rt.log.clone(), stop.clone())?;
            let running = health.watch_loop("tiering");
            tierer(settings).run(&stop, Duration::from_millis(*interval_ms), settings.drop_hot);
            running.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        TierCmd::Once { settings, force, json } => {
            let tierer = tierer(settings);
            let steps = tierer.tier_all(*force).context("tiering")?;
            let mut hot_starts = Vec::new();
            if settings.drop_hot {
                for p in 0..rt.topics.partitions {
                    hot_starts.push(tierer.drop_hot(p).with_context(|| format!("dropping the hot copy of {p}"))?);
                }
            }
            let (mut written, mut adopted, mut records, mut bytes) = (0, 0, 0, 0);
            for step in &steps {
                let (Step::Written(e) | Step::Adopted(e)) = step else { continue };
                if matches!(step, Step::Written(_)) {
                    written += 1
                } else {
                    adopted += 1
                }
                records += e.count;
                bytes += e.bytes;
            }
            let out = json!({
                "segments_written": written, "segments_adopted": adopted, "records": records,
                "bytes": bytes, "hot_starts": hot_starts,
            });
            crate::output::line(if *json { out.to_string() } else { serde_json::to_string_pretty(&out)? });
        }
        TierCmd::Status { json } => {
            let config = TierConfig::new(&rt.topics.events);
            for s in Tierer::new(rt.hot.clone(), rt.objects.clone(), config).status()? {
                if *json {
                    crate::output::line(serde_json::to_string(&s)?);
                } else {
                    crate::output::line(format!(
                        "partition {:<3} hot {:>9}..{:<9} tiered ..{:<9} segments {:<5} cold {:>10} B  backlog {}",
                        s.partition, s.hot_start, s.end, s.tiered_end, s.segments, s.cold_bytes, s.backlog
                    ));
                }
            }
        }
    }
    Ok(())
}
