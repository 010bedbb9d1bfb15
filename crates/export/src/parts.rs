//! A dataset of a snapshot written as Parquet part files: per `date=` partition, files of at
//! most [`PART_ROWS`] rows, with at most [`BUFFERED_ROWS`] rows held in memory over all the
//! dataset's partitions (the largest partition is written out when more come). What an export
//! holds in memory is bounded by these, whatever the size of the history.

use crate::ExportError;
use crate::table::{Cell, Column, batch, parquet, schema};
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use visionlog_objects::Objects;

/// Rows of one part file at most.
pub(crate) const PART_ROWS: usize = 100_000;
/// Rows a dataset holds in memory at most before writing a part.
pub(crate) const BUFFERED_ROWS: usize = 100_000;
/// New rows of a partition gathered before they become one columnar batch (a batch per task
/// would cost kilobytes of buffers for a row or two).
const BATCH_ROWS: usize = 4_096;
/// The largest part file read back (bytes).
const MAX_PART_BYTES: u64 = 1 << 30;

/// One Parquet file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Its `date=` partition.
    pub date: String,
    /// Its object key.
    pub key: String,
    /// Rows in it.
    pub rows: u64,
}

/// The part files of one dataset being written.
pub(crate) struct Parts<'a> {
    objects: &'a Objects,
    folder: String,
    columns: &'static [Column],
    schema: SchemaRef,
    buffers: BTreeMap<String, (Vec<RecordBatch>, usize)>,
    /// New rows not yet in a batch, by date.
    rows: BTreeMap<String, Vec<Vec<Cell>>>,
    buffered: usize,
    next_part: BTreeMap<String, u32>,
    files: Vec<PartFile>,
}

impl<'a> Parts<'a> {
    /// Part files of `columns` under `folder` (`{snapshot}/{dataset}`).
    pub(crate) fn new(objects: &'a Objects, folder: String, columns: &'static [Column]) -> Self {
        Self {
            objects,
            folder,
            columns,
            schema: schema(columns),
            buffers: BTreeMap::new(),
            rows: BTreeMap::new(),
            buffered: 0,
            next_part: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Adds rows to the partition of `date`.
    pub(crate) fn push_rows(&mut self, date: String, rows: Vec<Vec<Cell>>) -> Result<(), ExportError> {
        let pending = self.rows.entry(date.clone()).or_default();
        pending.extend(rows);
        if pending.len() >= BATCH_ROWS {
            let rows = self.rows.remove(&date).unwrap_or_default();
            let b = batch(&self.schema, self.columns, &rows)?;
            self.push_batch(date, b)?;
        }
        Ok(())
    }

    /// Adds a batch of rows (read back from an earlier part) to the partition of `date`.
    pub(crate) fn push_batch(&mut self, date: String, b: RecordBatch) -> Result<(), ExportError> {
        let n = b.num_rows();
        if n == 0 {
            return Ok(());
        }
        let buffer = self.buffers.entry(date.clone()).or_default();
        buffer.0.push(b);
        buffer.1 += n;
        self.buffered += n;
        if buffer.1 >= PART_ROWS {
            self.write(&date)?;
        }
        while self.buffered > BUFFERED_ROWS {
            let largest = self.buffers.iter().max_by_key(|(_, (_, n))| *n).map(|(d, _)| d.clone());
            let Some(date) = largest else { break };
            self.write(&date)?;
        }
        Ok(())
    }

    fn write(&mut self, date: &str) -> Result<(), ExportError> {
        let Some((batches, rows)) = self.buffers.remove(date) else { return Ok(()) };
        self.buffered -= rows;
        let part = self.next_part.entry(date.to_owned()).or_default();
        let key = format!("{}/date={date}/part-{part:05}.parquet", self.folder);
        *part += 1;
        self.objects.put(&key, parquet(&self.schema, &batches)?)?;
        self.files.push(PartFile { date: date.to_owned(), key, rows: rows as u64 });
        Ok(())
    }

    /// Writes what is buffered; the files, by date then part.
    pub(crate) fn finish(mut self) -> Result<Vec<PartFile>, ExportError> {
        for (date, rows) in std::mem::take(&mut self.rows) {
            if !rows.is_empty() {
                let b = batch(&self.schema, self.columns, &rows)?;
                self.push_batch(date, b)?;
            }
        }
        let dates: Vec<String> = self.buffers.keys().cloned().collect();
        for date in dates {
            self.write(&date)?;
        }
        self.files.sort_by(|a, b| (&a.date, &a.key).cmp(&(&b.date, &b.key)));
        Ok(self.files)
    }
}

/// Copies the rows of an earlier part file into `parts`, leaving out those of `replaced` tasks
/// (their rows are folded again), a record batch at a time.
pub(crate) fn carry_over(
    objects: &Objects,
    file: &PartFile,
    replaced: &HashSet<String>,
    parts: &mut Parts<'_>,
) -> Result<u64, ExportError> {
    let bytes = objects.get(&file.key, MAX_PART_BYTES)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| ExportError::Parquet(format!("{}: {e}", file.key)))?
        .with_batch_size(8_192)
        .build()
        .map_err(|e| ExportError::Parquet(format!("{}: {e}", file.key)))?;
    let mut kept = 0;
    for b in reader {
        let b = b.map_err(|e| ExportError::Parquet(format!("{}: {e}", file.key)))?;
        let ids = b
            .column_by_name("task_id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| ExportError::Parquet(format!("{}: no task_id column", file.key)))?;
        let keep: BooleanArray =
            (0..ids.len()).map(|i| Some(ids.is_null(i) || !replaced.contains(ids.value(i)))).collect();
        let b =
            arrow_select::filter::filter_record_batch(&b, &keep).map_err(|e| ExportError::Parquet(e.to_string()))?;
        kept += b.num_rows() as u64;
        parts.push_batch(file.date.clone(), b)?;
    }
    Ok(kept)
}
