//! Parquet exports for data scientists: datasets folded from the one history of events (cold
//! segments, then the hot log), written under an as-of snapshot with Hive-style `date=`
//! partitions and a dataset card.
//!
//! Layout, under the object store's prefix (`root` is `exports` by default):
//!
//! ```text
//! {root}/asof={ms}/dataset_card.json                 written last: the snapshot is complete
//! {root}/asof={ms}/{dataset}/date=YYYY-MM-DD/part-00000.parquet
//! {root}/latest.json                                  the newest complete snapshot
//! ```
//!
//! An as-of export holds only what was known at that instant (events recorded at or before
//! it), so a model trained on it can be evaluated on what came later without leakage.
//!
//! Incremental: each snapshot also writes `export_state.json` (its as-of instant, per partition
//! the offset from which later events were not folded, its part files). The next export of a
//! later instant reads the journal from there only, folds again just the tasks with events since
//! (each from the projector's per-task index, in time proportional to the task), and writes the
//! new snapshot as the earlier one's rows without those tasks' plus their rows folded anew: a
//! streaming merge, which compacts the parts too. Memory is bounded by the part writers
//! ([`parts`]) and the set of changed task ids, not by the history. An export of an instant
//! before the latest snapshot, or without one, folds every task (still one task at a time).

mod datasets;
mod parts;
mod table;

pub use datasets::{Dataset, Fold, OPERATOR_SESSIONS, PREDICTIONS, TASK_RESULTS, TRAINING_EXAMPLES};
pub use parts::PartFile;
pub use table::{Cell, Column, Kind, Table};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use visionlog_journal::accepted;
use visionlog_objects::Objects;
use visionlog_views::HistorySource;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The log (hot or cold) failed.
    #[error(transparent)]
    Log(#[from] visionlog_log::LogError),
    /// The object store failed.
    #[error(transparent)]
    Objects(#[from] visionlog_objects::ObjectsError),
    /// An accepted event could not be decoded.
    #[error("event at {partition}/{offset}: {reason}")]
    Decode {
        /// The partition.
        partition: u32,
        /// The offset.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(String),
    /// A complete snapshot of that instant exists already.
    #[error("a snapshot as of this instant exists already: {0} (export another instant, or under another --root)")]
    Exists(String),
    /// A task's history could not be read.
    #[error(transparent)]
    History(#[from] visionlog_views::HistoryReadError),
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// Only events recorded at or before this instant (ms since the epoch).
    pub as_of_ms: i64,
    /// Which datasets.
    pub datasets: Vec<Dataset>,
    /// The folder of the exports in the object store.
    pub root: String,
}

/// Where the events come from: the one history (cold segments, then hot) and the projector's
/// per-task index over it.
pub struct Source<'a> {
    /// The log, codec, topics and read store.
    pub history: HistorySource<'a>,
    /// What the log is (named in the card).
    pub log_url: &'a str,
}

/// What a snapshot leaves for the next export (`{snapshot}/export_state.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportState {
    /// The snapshot's as-of instant.
    pub as_of_ms: i64,
    /// The events topic read.
    pub topic: String,
    /// Per partition: the first offset whose event was not folded (recorded after the instant).
    pub next: Vec<u64>,
    /// The part files of each dataset.
    pub files: BTreeMap<String, Vec<PartFile>>,
}

/// The offsets of one partition an export read.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Covered {
    /// The partition.
    pub partition: u32,
    /// The first offset read.
    pub from: u64,
    /// The offset after the last one read (the end when the export started).
    pub to: u64,
    /// Accepted events folded (recorded at or before the as-of instant).
    pub events: u64,
    /// Accepted events left out (recorded after it).
    pub events_after_as_of: u64,
}

/// One dataset of a snapshot, as the card describes it.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetCard {
    /// The columns.
    pub schema: &'static [Column],
    /// All rows.
    pub rows: u64,
    /// Rows per `date=` partition.
    pub partitions: BTreeMap<String, u64>,
    /// The Parquet files (object keys).
    pub files: Vec<String>,
    /// The same as URLs (`s3://...` or `file://...`).
    pub urls: Vec<String>,
}

/// The dataset card of a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Card {
    /// The as-of instant.
    pub as_of_ms: i64,
    /// When the export ran.
    pub created_at_ms: i64,
    /// The snapshot's folder (object key).
    pub snapshot: String,
    /// The snapshot's folder as a URL (what pyarrow or duckdb open).
    pub snapshot_url: String,
    /// The log read.
    pub log: String,
    /// The events topic read.
    pub topic: String,
    /// The offsets read, per partition.
    pub covered: Vec<Covered>,
    /// The datasets.
    pub datasets: BTreeMap<&'static str, DatasetCard>,
    /// The snapshot this one was merged from (none: every task folded).
    pub base: Option<String>,
    /// Tasks folded for this snapshot (those with events since the base, or all).
    pub tasks_folded: u64,
    /// Rows carried over from the base unchanged.
    pub rows_carried: u64,
    /// How to read it.
    pub notes: &'static str,
}

const NOTES: &str = "Hive-style partitions (date=YYYY-MM-DD, UTC, of each row's own time). Point in time: only \
events recorded at or before as_of_ms are folded, and derived columns (ground truth, classes) are what was \
known then. Rows are in task-id order within a file. Boxes are in image pixels, origin top-left.";

/// The latest snapshot's state, if it can be the base of an export of `request` (an earlier
/// instant, another topic or other datasets: none, and every task is folded).
fn base(
    source: &Source<'_>,
    objects: &Objects,
    request: &ExportRequest,
) -> Result<Option<(String, ExportState)>, ExportError> {
    let root = request.root.trim_end_matches('/');
    let latest = match objects.get(&format!("{root}/latest.json"), 1 << 16) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
        Err(visionlog_objects::ObjectsError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(snapshot) = latest["snapshot"].as_str() else { return Ok(None) };
    let state = match objects.get(&format!("{snapshot}/export_state.json"), 64 << 20) {
        Ok(bytes) => serde_json::from_slice::<ExportState>(&bytes).ok(),
        Err(visionlog_objects::ObjectsError::NotFound(_)) => None, // written by an older build
        Err(e) => return Err(e.into()),
    };
    Ok(state
        .filter(|s| {
            s.as_of_ms <= request.as_of_ms
                && s.topic == source.history.topics.events
                && s.next.len() == source.history.topics.partitions as usize
                && request.datasets.iter().all(|d| s.files.contains_key(d.name()))
        })
        .map(|s| (snapshot.to_owned(), s)))
}

/// Exports the datasets of `request` from `source` into `objects`; `progress` is told
/// (records read, records to read) as it goes. Returns the card (also written to the store).
pub fn export(
    source: &Source<'_>,
    objects: &Objects,
    request: &ExportRequest,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Card, ExportError> {
    let h = source.history;
    let topic = h.topics.events.as_str();
    let snapshot = format!("{}/asof={}", request.root.trim_end_matches('/'), request.as_of_ms);
    // a complete snapshot of this instant is never rewritten (its folder is one dataset)
    if objects.exists(&format!("{snapshot}/dataset_card.json"))? {
        return Err(ExportError::Exists(snapshot));
    }
    let base = base(source, objects, request)?;
    let partitions = h.log.partitions(topic)?;
    let ends: Vec<u64> = (0..partitions).map(|p| h.log.end_offset(topic, p)).collect::<Result<_, _>>()?;
    let mut starts = Vec::new();
    for p in 0..partitions {
        starts.push(match &base {
            Some((_, state)) => state.next[p as usize],
            None => h.log.start_offset(topic, p)?,
        });
    }
    let total: u64 = ends.iter().zip(&starts).map(|(e, s)| e.saturating_sub(*s)).sum();
    // the tasks with events to fold: those since the base (or all), by partition
    let mut done = 0;
    let mut covered = Vec::new();
    let mut changed: Vec<BTreeSet<String>> = vec![BTreeSet::new(); partitions as usize];
    let mut next = Vec::new();
    for p in 0..partitions {
        let from = starts[p as usize];
        let mut c = Covered { partition: p, from, to: ends[p as usize], events: 0, events_after_as_of: 0 };
        let mut first_after = None;
        let mut events = accepted(h.log, topic, p, from..c.to);
        let mut shown = 0;
        while let Some(e) = events.next() {
            let e = e?;
            if events.records_read() != shown {
                shown = events.records_read();
                progress(done + shown, total);
            }
            if e.envelope.recorded_at_ms > request.as_of_ms {
                c.events_after_as_of += 1;
                first_after.get_or_insert(e.offset);
                continue;
            }
            c.events += 1;
            if !changed[p as usize].contains(&e.envelope.task_id) {
                changed[p as usize].insert(e.envelope.task_id);
            }
        }
        done += events.records_read();
        progress(done, total);
        next.push(first_after.unwrap_or(c.to));
        covered.push(c);
    }
    let mut parts: BTreeMap<Dataset, parts::Parts<'_>> = request
        .datasets
        .iter()
        .map(|d| (*d, parts::Parts::new(objects, format!("{snapshot}/{}", d.name()), d.columns())))
        .collect();
    // the base's rows, but those of the tasks folded again
    let mut rows_carried = 0;
    if let Some((_, state)) = &base {
        let replaced: HashSet<String> = changed.iter().flatten().cloned().collect();
        for (d, parts) in &mut parts {
            for file in &state.files[d.name()] {
                rows_carried += parts::carry_over(objects, file, &replaced, parts)?;
            }
        }
    }
    // the changed tasks, one at a time from the index (a partition the index does not hold
    // whole is folded from the journal, all its tasks at once, as before the index)
    let mut tasks_folded = 0;
    for (p, tasks) in changed.iter().enumerate() {
        let indexed = visionlog_views::history::indexed_from(h, p as u32)?
            .is_some_and(|from| from <= h.log.start_offset(topic, p as u32).unwrap_or(0) || from == 0);
        if indexed {
            for task_id in tasks {
                let mut fold = Fold::default();
                for e in visionlog_views::task_history(h, task_id)? {
                    if e.envelope.recorded_at_ms <= request.as_of_ms {
                        fold.apply(p as u32, e.offset, &e.envelope, &e.event);
                    }
                }
                write_fold(fold, objects, &mut parts)?;
                tasks_folded += 1;
            }
        } else {
            tracing::warn!(partition = p, "export: no per-task index holds the partition whole; folding it in memory");
            let mut fold = Fold::default();
            for e in accepted(h.log, topic, p as u32, 0..ends[p]) {
                let e = e?;
                if e.envelope.recorded_at_ms > request.as_of_ms || !tasks.contains(&e.envelope.task_id) {
                    continue;
                }
                let event = h.codec.decode_event(&e.payload).map_err(|err| ExportError::Decode {
                    partition: p as u32,
                    offset: e.offset,
                    reason: err.to_string(),
                })?;
                fold.apply(p as u32, e.offset, &e.envelope, &event);
            }
            write_fold(fold, objects, &mut parts)?;
            tasks_folded += tasks.len() as u64;
        }
    }
    let mut datasets = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (d, parts) in parts {
        let written = parts.finish()?;
        let mut partitions: BTreeMap<String, u64> = BTreeMap::new();
        for f in &written {
            *partitions.entry(f.date.clone()).or_default() += f.rows;
        }
        let card = DatasetCard {
            schema: d.columns(),
            rows: partitions.values().sum(),
            partitions,
            files: written.iter().map(|f| f.key.clone()).collect(),
            urls: written.iter().map(|f| objects.object_url(&f.key)).collect(),
        };
        datasets.insert(d.name(), card);
        files.insert(d.name().to_owned(), written);
    }
    let state = ExportState { as_of_ms: request.as_of_ms, topic: topic.to_owned(), next, files };
    objects.put(&format!("{snapshot}/export_state.json"), serde_json::to_vec(&state).expect("a state serializes"))?;
    let card = Card {
        as_of_ms: request.as_of_ms,
        created_at_ms: visionlog_journal::now_ms(),
        snapshot_url: objects.object_url(&snapshot),
        snapshot: snapshot.clone(),
        log: source.log_url.split('?').next().unwrap_or_default().to_owned(),
        topic: topic.to_owned(),
        covered,
        datasets,
        base: base.map(|(snapshot, _)| snapshot),
        tasks_folded,
        rows_carried,
        notes: NOTES,
    };
    let json = serde_json::to_vec_pretty(&card).expect("a card serializes");
    objects.put(&format!("{snapshot}/dataset_card.json"), json)?;
    // latest.json names the newest snapshot: an export of an earlier instant leaves it be
    let latest_key = format!("{}/latest.json", request.root.trim_end_matches('/'));
    let newer_there = match objects.get(&latest_key, 1 << 16) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["as_of_ms"].as_i64())
            .is_some_and(|t| t > request.as_of_ms),
        Err(visionlog_objects::ObjectsError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !newer_there {
        let latest = serde_json::json!({ "snapshot": snapshot, "as_of_ms": request.as_of_ms });
        objects.put(&latest_key, latest.to_string().into_bytes())?;
    }
    Ok(card)
}

/// Writes the rows of a fold into the datasets' parts.
fn write_fold(
    fold: Fold,
    objects: &Objects,
    parts: &mut BTreeMap<Dataset, parts::Parts<'_>>,
) -> Result<(), ExportError> {
    for (d, table) in fold.finish(objects) {
        if let Some(parts) = parts.get_mut(&d) {
            for (date, rows) in table.into_partitions() {
                parts.push_rows(date, rows)?;
            }
        }
    }
    Ok(())
}
