//! `visionlog tier ...`: the tiering service and its one-shot commands.

use crate::health::Health;
use crate::runtime::{Backends, Runtime};
use anyhow::Context;
use serde_json::json;
use std::time::Duration;
use visionlog_tiering::{Step, TierConfig, Tierer};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum TierCmd {
    /// Tiers until SIGTERM: every interval, every closed range (an object-store outage pauses it
    /// and loses nothing).
    Run {
        /// Milliseconds between rounds.
        #[arg(long, default_value_t = crate::settings::TIER_INTERVAL_MS)]
        interval_ms: u64,
    },
    /// Tiers every closed range once (`--force`: everything, closed or not) and prints a summary.
    Once {
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

pub(crate) fn run(backends: &Backends, cmd: &TierCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let settings = &rt.settings;
    let tierer = || Tierer::new(rt.hot.clone(), rt.objects.clone(), settings.tier_config(&rt.topics.events));
    match cmd {
        TierCmd::Run { interval_ms } => {
            let stop = crate::stop_on_signals()?;
            let health = Health::start(backends.health_addr, rt.settings.ready_max_lag, rt.log.clone(), stop.clone())?;
            let running = health.watch_loop("tiering");
            tierer().run(&stop, Duration::from_millis(*interval_ms), settings.tier_drop_hot);
            running.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        TierCmd::Once { force, json } => {
            let progress = crate::progress::Progress::spinner("tier", *json);
            progress.say("writing closed ranges to the object store");
            let tierer = tierer();
            let steps = tierer.tier_all(*force).context("tiering")?;
            let mut hot_starts = Vec::new();
            if settings.tier_drop_hot {
                for p in 0..rt.topics.partitions {
                    progress.say(format!("dropping the hot copy of partition {p}"));
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
            drop(progress);
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
