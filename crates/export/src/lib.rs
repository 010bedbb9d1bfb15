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

mod datasets;
mod table;

pub use datasets::{Dataset, Fold, OPERATOR_SESSIONS, PREDICTIONS, TASK_RESULTS, TRAINING_EXAMPLES};
pub use table::{Cell, Column, Kind, Table};

use serde::Serialize;
use std::collections::BTreeMap;
use visionlog_codec::Codec;
use visionlog_journal::accepted;
use visionlog_log::EventLog;
use visionlog_objects::Objects;

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

/// Where the events come from.
pub struct Source<'a> {
    /// The log: one history (cold segments, then hot).
    pub log: &'a dyn EventLog,
    /// The codec of the events.
    pub codec: &'a Codec,
    /// The events topic.
    pub topic: &'a str,
    /// What the log is (named in the card).
    pub log_url: &'a str,
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
    /// How to read it.
    pub notes: &'static str,
}

const NOTES: &str = "Hive-style partitions (date=YYYY-MM-DD, UTC, of each row's own time). Point in time: only \
events recorded at or before as_of_ms are folded, and derived columns (ground truth, classes) are what was \
known then. Rows are in task-id order within a file. Boxes are in image pixels, origin top-left.";

/// Exports the datasets of `request` from `source` into `objects`; `progress` is told
/// (records read, records to read) as it goes. Returns the card (also written to the store).
pub fn export(
    source: &Source<'_>,
    objects: &Objects,
    request: &ExportRequest,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Card, ExportError> {
    let partitions = source.log.partitions(source.topic)?;
    let ends: Vec<u64> = (0..partitions).map(|p| source.log.end_offset(source.topic, p)).collect::<Result<_, _>>()?;
    let total: u64 = ends.iter().sum();
    let mut done = 0;
    let mut fold = Fold::default();
    let mut covered = Vec::new();
    for p in 0..partitions {
        let from = source.log.start_offset(source.topic, p)?;
        let mut c = Covered { partition: p, from, to: ends[p as usize], events: 0, events_after_as_of: 0 };
        let mut events = accepted(source.log, source.topic, p, from..c.to);
        let mut shown = 0;
        while let Some(e) = events.next() {
            let e = e?;
            if events.records_read() != shown {
                shown = events.records_read();
                progress(done + shown, total);
            }
            if e.envelope.recorded_at_ms > request.as_of_ms {
                c.events_after_as_of += 1;
                continue;
            }
            let event = source.codec.decode_event(&e.payload).map_err(|err| ExportError::Decode {
                partition: p,
                offset: e.offset,
                reason: err.to_string(),
            })?;
            fold.apply(p, &e, &event);
            c.events += 1;
        }
        done += events.records_read();
        progress(done, total);
        covered.push(c);
    }
    let snapshot = format!("{}/asof={}", request.root.trim_end_matches('/'), request.as_of_ms);
    let mut tables = fold.finish(objects);
    let mut datasets = BTreeMap::new();
    for d in &request.datasets {
        let table = tables.remove(d).expect("every dataset is folded");
        let (mut files, mut urls) = (Vec::new(), Vec::new());
        for (date, bytes) in table.parquet()? {
            let key = format!("{snapshot}/{}/date={date}/part-00000.parquet", d.name());
            objects.put(&key, bytes)?;
            urls.push(objects.object_url(&key));
            files.push(key);
        }
        let partitions = table.counts();
        let rows = partitions.values().sum();
        datasets.insert(d.name(), DatasetCard { schema: table.columns(), rows, partitions, files, urls });
    }
    let card = Card {
        as_of_ms: request.as_of_ms,
        created_at_ms: visionlog_journal::now_ms(),
        snapshot_url: objects.object_url(&snapshot),
        snapshot: snapshot.clone(),
        log: source.log_url.split('?').next().unwrap_or_default().to_owned(),
        topic: source.topic.to_owned(),
        covered,
        datasets,
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
