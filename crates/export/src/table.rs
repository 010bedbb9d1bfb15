//! Typed columns built row by row and written as one Parquet file (zstd) per date partition.

use crate::ExportError;
use arrow_array::{ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit unsigned integer.
    UInt32,
    /// 32-bit float.
    Float32,
    /// Boolean.
    Bool,
}

/// One column of a dataset, as the dataset card describes it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Column {
    /// The name.
    pub name: &'static str,
    /// The type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Whether it may be null.
    pub nullable: bool,
    /// What it holds.
    pub doc: &'static str,
}

/// A cell of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    S(Option<String>),
    /// Integer.
    I(Option<i64>),
    /// Unsigned integer.
    U(Option<u32>),
    /// Float.
    F(Option<f32>),
    /// Boolean.
    B(Option<bool>),
}

/// Rows of one dataset, grouped by their `date=` partition.
pub struct Table {
    columns: &'static [Column],
    partitions: BTreeMap<String, Vec<Vec<Cell>>>,
}

impl Table {
    /// An empty table of these columns.
    pub fn new(columns: &'static [Column]) -> Self {
        Self { columns, partitions: BTreeMap::new() }
    }

    /// Adds a row to the partition of `date` (`YYYY-MM-DD`).
    pub fn push(&mut self, date: String, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.partitions.entry(date).or_default().push(row);
    }

    /// The columns.
    pub fn columns(&self) -> &'static [Column] {
        self.columns
    }

    /// Every row, partition by partition (dates in order).
    pub fn rows(&self) -> impl Iterator<Item = &Vec<Cell>> {
        self.partitions.values().flatten()
    }

    /// Rows per date partition.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.partitions.iter().map(|(d, rows)| (d.clone(), rows.len() as u64)).collect()
    }

    /// The rows, by date partition.
    pub fn into_partitions(self) -> BTreeMap<String, Vec<Vec<Cell>>> {
        self.partitions
    }

    /// Each partition's Parquet file, by date.
    pub fn parquet(&self) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
        let schema = schema(self.columns);
        let mut out = Vec::new();
        for (date, rows) in &self.partitions {
            out.push((date.clone(), parquet(&schema, &[batch(&schema, self.columns, rows)?])?));
        }
        Ok(out)
    }
}

/// The Arrow schema of some columns (each with its doc).
pub(crate) fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| {
                let t = match c.kind {
                    Kind::String => DataType::Utf8,
                    Kind::Int64 => DataType::Int64,
                    Kind::UInt32 => DataType::UInt32,
                    Kind::Float32 => DataType::Float32,
                    Kind::Bool => DataType::Boolean,
                };
                Field::new(c.name, t, c.nullable).with_metadata(HashMap::from([("doc".to_owned(), c.doc.to_owned())]))
            })
            .collect::<Vec<_>>(),
    ))
}

/// Rows as one record batch.
pub(crate) fn batch(schema: &SchemaRef, columns: &[Column], rows: &[Vec<Cell>]) -> Result<RecordBatch, ExportError> {
    let arrays: Vec<ArrayRef> = (0..columns.len()).map(|i| column(rows, i, columns[i].kind)).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ExportError::Parquet(e.to_string()))
}

/// Record batches as one Parquet file (zstd).
pub(crate) fn parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ExportError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("a zstd level")))
        .set_created_by("visionlog export".into())
        .build();
    let mut bytes = Vec::new();
    let mut w = ArrowWriter::try_new(&mut bytes, schema.clone(), Some(props))
        .map_err(|e| ExportError::Parquet(e.to_string()))?;
    for b in batches {
        // the schema of our columns (a batch read back carries the file's)
        let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())
            .map_err(|e| ExportError::Parquet(e.to_string()))?;
        w.write(&b).map_err(|e| ExportError::Parquet(e.to_string()))?;
    }
    w.close().map_err(|e| ExportError::Parquet(e.to_string()))?;
    Ok(bytes)
}

fn column(rows: &[Vec<Cell>], i: usize, kind: Kind) -> ArrayRef {
    macro_rules! collect {
        ($variant:ident, $array:ty) => {
            Arc::new(
                rows.iter()
                    .map(|r| match &r[i] {
                        Cell::$variant(v) => v.clone(),
                        other => panic!("column {i} is {kind:?}, a row holds {other:?}"),
                    })
                    .collect::<$array>(),
            )
        };
    }
    match kind {
        Kind::String => collect!(S, StringArray),
        Kind::Int64 => collect!(I, Int64Array),
        Kind::UInt32 => collect!(U, UInt32Array),
        Kind::Float32 => collect!(F, Float32Array),
        Kind::Bool => collect!(B, BooleanArray),
    }
}
