//! `visionlog partitions ...`: growing the partition count by copying the journal into topics of
//! a new prefix (see `visionlog_journal::migrate` and docs/operations.md, "Scaling partitions").

use crate::runtime::{Backends, Runtime};
use std::time::{Duration, Instant};
use visionlog_journal::Topics;
use visionlog_journal::migrate::{copy_journal, verify_copy};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum PartitionsCmd {
    /// Copies the journal (`events`) into topics of a new prefix with a new partition count,
    /// each task on the partition of its id, versions and command ids intact, then verifies the
    /// copy. Run it while nothing sends commands and after the aggregators drained; then start
    /// every service with the new prefix and count (the runbook's procedure).
    Migrate {
        /// The new partition count.
        #[arg(long)]
        to: u32,
        /// The new topic prefix (the new installation's `--topic-prefix`).
        #[arg(long)]
        to_prefix: String,
        /// How long to wait for the aggregators to decide every command sent.
        #[arg(long, default_value_t = 60)]
        drain_s: u64,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Waits until the aggregators decided every command of `topics.commands` (their group's
/// position at the end of each partition); the partitions still behind, if time runs out.
fn drained(rt: &Runtime, within: Duration) -> anyhow::Result<Vec<(u32, u64, u64)>> {
    let deadline = Instant::now() + within;
    loop {
        let mut behind = Vec::new();
        for p in 0..rt.topics.partitions {
            let end = rt.log.end_offset(&rt.topics.commands, p)?;
            let at = rt.log.committed(visionlog_aggregator::GROUP, &rt.topics.commands, p)?.map_or(0, |c| c.offset);
            if at < end {
                behind.push((p, at, end));
            }
        }
        if behind.is_empty() || Instant::now() >= deadline {
            return Ok(behind);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn run(backends: &Backends, cmd: &PartitionsCmd) -> anyhow::Result<()> {
    let PartitionsCmd::Migrate { to, to_prefix, drain_s, json } = cmd;
    anyhow::ensure!(*to > 0, "--to must be at least 1");
    let rt = Runtime::open(backends)?;
    anyhow::ensure!(
        *to_prefix != backends.topic_prefix,
        "--to-prefix must differ from the current prefix {:?}",
        backends.topic_prefix
    );
    let behind = drained(&rt, Duration::from_secs(*drain_s))?;
    anyhow::ensure!(
        behind.is_empty(),
        "the aggregators have not decided every command (partition, decided, sent): {behind:?}; stop the \
         producers and let the aggregators drain first"
    );
    let mut target = Topics::new(to_prefix, *to);
    target.retention = rt.settings.topic_retention();
    let started = Instant::now();
    let progress = crate::progress::Progress::bar("copy", "decisions", 0, *json);
    let copied = copy_journal(
        rt.log.as_ref(),
        &rt.topics,
        &target,
        &format!("migration-{}", std::process::id()),
        &mut |_, n| progress.set(n),
    )?;
    drop(progress);
    let copy_s = started.elapsed().as_secs_f64();
    let verification = verify_copy(rt.log.as_ref(), &rt.topics, &target)?;
    let report = serde_json::json!({
        "from": { "events": rt.topics.events, "partitions": rt.topics.partitions },
        "to": { "events": target.events, "partitions": target.partitions },
        "copied": copied, "copy_s": copy_s, "verification": verification, "holds": verification.holds(),
        "next": format!("start every service with --topic-prefix {to_prefix} --partitions {to}, run `visionlog \
                         --topic-prefix {to_prefix} --partitions {to} report rebuild`, then point the producers at \
                         the new commands topic"),
    });
    crate::output::line(if *json { report.to_string() } else { serde_json::to_string_pretty(&report)? });
    anyhow::ensure!(verification.holds(), "the copy does not match the journal: do not switch over");
    Ok(())
}
