//! `visionlog export ...`: Parquet datasets for data scientists, once or on a schedule.

use crate::progress::Progress;
use crate::runtime::{Backends, Runtime};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use visionlog_export::{Dataset, ExportRequest, Source};

/// What to export and where.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ExportArgs {
    /// Datasets (repeat; default: all): training_examples, predictions, task_results,
    /// operator_sessions.
    #[arg(long = "dataset")]
    datasets: Vec<Dataset>,
    /// The folder of the exports in the object store.
    #[arg(long, default_value = "exports")]
    root: String,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum ExportCmd {
    /// Exports a snapshot as of an instant (default: now) and prints its dataset card.
    Once {
        #[command(flatten)]
        args: ExportArgs,
        /// Only what was known at this instant (ms since the epoch).
        #[arg(long)]
        as_of_ms: Option<i64>,
        /// Also print presigned GET URLs of the card and files, valid this many seconds (S3).
        #[arg(long)]
        presign_s: Option<u64>,
        /// Print the card as one JSON line (no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// The scheduled exporter: a snapshot every interval until SIGTERM.
    Run {
        #[command(flatten)]
        args: ExportArgs,
        /// Seconds between snapshots.
        #[arg(long, default_value_t = 3600)]
        every_s: u64,
    },
}

fn snapshot(rt: &Runtime, args: &ExportArgs, as_of_ms: i64, json: bool) -> anyhow::Result<visionlog_export::Card> {
    let datasets = if args.datasets.is_empty() { Dataset::ALL.to_vec() } else { args.datasets.clone() };
    let request = ExportRequest { as_of_ms, datasets, root: args.root.clone() };
    let log_url = rt.log_url.clone();
    let history = visionlog_views::HistorySource {
        log: rt.log.as_ref(),
        codec: &rt.codec,
        topics: &rt.topics,
        store: rt.store.as_ref(),
    };
    let source = Source { history, log_url: &log_url };
    let progress = Progress::bar("export", "records", 0, json);
    let mut report = |done: u64, total: u64| {
        progress.set_total(total);
        progress.set(done);
    };
    Ok(visionlog_export::export(&source, &rt.objects, &request, &mut report)?)
}

/// One snapshot of every dataset under `root` (what `export once` writes), for the bench.
pub(crate) fn snapshot_all(rt: &Runtime, root: &str, as_of_ms: i64) -> anyhow::Result<visionlog_export::Card> {
    let args = ExportArgs { datasets: Vec::new(), root: root.to_owned() };
    snapshot(rt, &args, as_of_ms, true)
}

pub(crate) fn run(backends: &Backends, cmd: &ExportCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    match cmd {
        ExportCmd::Once { args, as_of_ms, presign_s, json } => {
            let card = snapshot(&rt, args, as_of_ms.unwrap_or_else(visionlog_journal::now_ms), *json)?;
            let mut out = serde_json::to_value(&card)?;
            if let Some(ttl) = presign_s {
                let ttl = Duration::from_secs(*ttl);
                let mut urls = vec![rt.objects.presigned_get(&format!("{}/dataset_card.json", card.snapshot), ttl)?];
                for d in card.datasets.values() {
                    for key in &d.files {
                        urls.push(rt.objects.presigned_get(key, ttl)?);
                    }
                }
                out["presigned"] = serde_json::json!(urls);
            }
            crate::output::line(if *json { out.to_string() } else { serde_json::to_string_pretty(&out)? });
        }
        ExportCmd::Run { args, every_s } => {
            let stop = crate::stop_on_signals()?;
            let health = crate::health::Health::start(
                backends.health_addr,
                rt.settings.ready_max_lag,
                rt.log.clone(),
                stop.clone(),
            )?;
            let running = health.watch_loop("exporter");
            while !stop.load(Ordering::Relaxed) {
                match snapshot(&rt, args, visionlog_journal::now_ms(), true) {
                    Ok(card) => {
                        let rows: u64 = card.datasets.values().map(|d| d.rows).sum();
                        tracing::info!(snapshot = card.snapshot, rows, "exported");
                    }
                    // an outage of the store or the log: the next round tries again
                    Err(e) => tracing::warn!(error = %e, "export failed"),
                }
                let until = Instant::now() + Duration::from_secs(*every_s);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            running.store(false, Ordering::Relaxed);
        }
    }
    Ok(())
}
