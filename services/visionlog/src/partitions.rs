//! `visionlog partitions ...`: growing the partition count by copying the journal into topics of
//! a new prefix (see `visionlog_journal::migrate` and docs/operations.md, "Scaling partitions").

use crate::runtime::{Backends, Runtime};
use std::time::{Duration, Instant};
use visionlog_journal::Topics;
use visionlog_journal::migrate::{CopyState, MigrateError, copy_journal, verify_copy};
use visionlog_store::{Put, ReadStore, Row};

/// Where a copy's state is kept between runs: partition `{old events}>{new events}`.
const MIGRATIONS: &str = "partition_migrations";

#[derive(clap::Subcommand, Debug)]
pub(crate) enum PartitionsCmd {
    /// Copies the journal (`events`) into topics of a new prefix with a new partition count,
    /// each task on the partition of its id, versions and command ids intact, and verifies the
    /// copy. With `--online` it copies what is decided so far while the installation runs (run
    /// it as often as you like); without, it is the final run: it waits for the aggregators to
    /// drain, copies the tail and verifies. Then start every service with the new prefix and
    /// count (the runbook's procedure).
    Migrate {
        /// The new partition count.
        #[arg(long)]
        to: u32,
        /// The new topic prefix (the new installation's `--topic-prefix`).
        #[arg(long)]
        to_prefix: String,
        /// How long to wait for the aggregators to decide every command sent (final run).
        #[arg(long, default_value_t = 60)]
        drain_s: u64,
        /// Copy while the installation runs: no drain, the copy goes on at the next run.
        #[arg(long)]
        online: bool,
        /// Also compare both journals whole (reads them both; for an online run, not the pause).
        #[arg(long)]
        verify_all: bool,
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

fn load(store: &dyn ReadStore, key: &str) -> anyhow::Result<Option<CopyState>> {
    Ok(match store.get(MIGRATIONS, key, "")? {
        Some(row) if !row.is_tombstone() => Some(serde_json::from_slice(&row.value)?),
        _ => None,
    })
}

fn save(store: &dyn ReadStore, key: &str, state: &CopyState) -> Result<(), MigrateError> {
    let row = Row {
        partition: key.to_owned(),
        clustering: String::new(),
        version: state.saves,
        value: serde_json::to_vec(state).expect("a copy state serializes"),
    };
    store
        .put(&[Put { table: MIGRATIONS.into(), row }])
        .map_err(|e| MigrateError::Refused(format!("saving the copy state: {e}")))?;
    Ok(())
}

pub(crate) fn run(backends: &Backends, cmd: &PartitionsCmd) -> anyhow::Result<()> {
    let PartitionsCmd::Migrate { to, to_prefix, drain_s, online, verify_all, json } = cmd;
    anyhow::ensure!(*to > 0, "--to must be at least 1");
    let rt = Runtime::open(backends)?;
    anyhow::ensure!(
        *to_prefix != backends.topic_prefix,
        "--to-prefix must differ from the current prefix {:?}",
        backends.topic_prefix
    );
    if !online {
        let behind = drained(&rt, Duration::from_secs(*drain_s))?;
        anyhow::ensure!(
            behind.is_empty(),
            "the aggregators have not decided every command (partition, decided, sent): {behind:?}; stop the \
             producers and let the aggregators drain first"
        );
    }
    let mut target = Topics::new(to_prefix, *to);
    target.retention = rt.settings.topic_retention();
    let key = format!("{}>{}", rt.topics.events, target.events);
    let resumed = load(rt.store.as_ref(), &key)?;
    let first_run = resumed.is_none();
    let before = resumed.as_ref().map_or(0, |s| s.copied.decisions);
    let started = Instant::now();
    let progress = crate::progress::Progress::bar("copy", "decisions", 0, *json);
    let owner = format!("migration-{}", std::process::id());
    let store = rt.store.clone();
    let state = copy_journal(
        rt.log.as_ref(),
        &rt.topics,
        &target,
        &owner,
        resumed,
        &mut |s| save(store.as_ref(), &key, s),
        &mut |_, n| progress.set(n),
    )?;
    drop(progress);
    let copy_s = started.elapsed().as_secs_f64();
    let whole = if *verify_all { Some(verify_copy(rt.log.as_ref(), &rt.topics, &target)?) } else { None };
    let holds = state.holds() && whole.as_ref().is_none_or(|v| v.holds());
    let report = serde_json::json!({
        "from": { "events": rt.topics.events, "partitions": rt.topics.partitions },
        "to": { "events": target.events, "partitions": target.partitions },
        "online": online, "first_run": first_run, "decisions_this_run": state.copied.decisions - before,
        "copy_s": copy_s, "copied": state.copied, "read": state.read, "written": state.written,
        "verify_all": whole, "holds": holds,
        "next": if *online {
            "run it again at will; at the switch, stop the producers and run it without --online".to_owned()
        } else {
            format!("start every service with --topic-prefix {to_prefix} --partitions {to} (their own store, or run \
                     `visionlog --topic-prefix {to_prefix} --partitions {to} report rebuild`), then point the \
                     producers at the new commands topic")
        },
    });
    crate::output::line(if *json { report.to_string() } else { serde_json::to_string_pretty(&report)? });
    anyhow::ensure!(holds, "the copy does not match the journal: do not switch over");
    Ok(())
}
