//! Read stores: where views (and the aggregator's snapshots) live.
//!
//! [`ReadStore`] is shaped like Scylla's data model: a table holds partitions (by partition key),
//! each a sorted run of rows (by clustering key). Every write carries the version of the source
//! it was derived from and is applied only if that version is newer than the stored one, so
//! redelivered and reordered events never move a view backwards (seed 000's "version
//! preconditions"). A row with an empty value is a tombstone: deleted, but keeping its version
//! so that a late, older write cannot bring it back. [`EmbeddedStore`] keeps the same model in
//! one `redb` file; [`ScyllaStore`] keeps it in Scylla (CQL in `schemas/cql/`).
//!
//! Not here: what rows mean. Views encode their own values.

pub mod conformance;
mod embedded;
mod scylla;

pub use embedded::EmbeddedStore;
pub use scylla::{ScyllaStore, with_keyspace};

use std::sync::Arc;
use thiserror::Error;

/// A row of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The partition key.
    pub partition: String,
    /// The clustering key.
    pub clustering: String,
    /// The source version it was written at.
    pub version: u64,
    /// The encoded value.
    pub value: Vec<u8>,
}

impl Row {
    /// A row that deletes what is stored at its keys, as of `version`.
    pub fn tombstone(partition: impl Into<String>, clustering: impl Into<String>, version: u64) -> Self {
        Self { partition: partition.into(), clustering: clustering.into(), version, value: Vec::new() }
    }

    /// Tells whether the row is a tombstone (readers skip those).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_empty()
    }
}

/// Where a row lives: table, partition, clustering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowPlace {
    /// The table.
    pub table: String,
    /// The partition key.
    pub partition: String,
    /// The clustering key.
    pub clustering: String,
}

/// A conditional write: applied only if `version` is newer than the stored row's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    /// The table.
    pub table: String,
    /// The row, with the version it carries.
    pub row: Row,
}

/// What became of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written.
    Applied,
    /// Skipped: the stored row has this version, equal or newer.
    Stale(u64),
}

/// Why a store call failed. All are worth a retry after a pause except `Config`.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("read store: {0}")]
    Backend(String),
    /// A bad URL or option.
    #[error("read store configuration: {0}")]
    Config(String),
}

/// A store with Scylla's data model and version-guarded writes.
///
/// Table names are lower-case identifiers (`[a-z][a-z0-9_]*`, at most 48 characters); tables
/// come into being at their first write. Each conditional write is atomic on its own row;
/// a call is not atomic across rows (on Scylla, a conditional batch may span one partition
/// only), so writers must be correct when a call fails half-way: a retry re-applies the rest
/// and skips what was applied, by version.
pub trait ReadStore: Send + Sync {
    /// Applies conditional writes, each only over an older version of its row; durable when
    /// it returns.
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError>;
    /// Like [`ReadStore::put`], but what it wrote may be lost in a crash until the next
    /// [`ReadStore::sync`]: for rows a crash makes void anyway (a generation being rebuilt,
    /// which a crash makes start over). Scylla's writes are durable either way.
    fn put_unsynced(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        self.put(puts)
    }
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Reads one row.
    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError>;
    /// Reads the rows of a partition in clustering order, after `after` (for paging).
    fn scan_partition(
        &self,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError>;
    /// Reads the rows of a whole table, after a row (for paging): partitions in the backend's
    /// order (by key here, by token on Scylla), each partition's rows in clustering order.
    fn scan_table(&self, table: &str, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<Row>, StoreError>;
    /// Removes one row for good, version and all (erasure: nothing of its value may stay behind,
    /// not even as a tombstone). Only for rows that no writer will ever write again (a destroyed
    /// key, whose id is never reused): a view deletes with a tombstone, which keeps its version
    /// so that a late, older write cannot bring the row back. Absent rows are fine.
    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError>;
    /// Erases many rows for good, like [`ReadStore::erase`] each (one transaction where the
    /// backend has them; a crash may leave some erased and some not, and a retry erases the rest).
    fn erase_many(&self, keys: &[RowPlace]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.erase(&k.table, &k.partition, &k.clustering))
    }
    /// Drops a table and its rows (a retired generation of a view); absent tables are fine.
    fn drop_table(&self, table: &str) -> Result<(), StoreError>;
}

/// Checks a table name: a lower-case identifier that CQL accepts unquoted.
pub fn check_table_name(table: &str) -> Result<(), StoreError> {
    let mut chars = table.chars();
    let ok = table.len() <= 48
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!("bad table name {table:?}: use [a-z][a-z0-9_]*, at most 48")))
    }
}

/// Reads every live row of a partition (tombstones skipped), page by page.
pub fn read_partition(store: &dyn ReadStore, table: &str, partition: &str) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan_partition(table, partition, after.as_deref(), 1000)?;
        let full = page.len() == 1000;
        after = page.last().map(|r| r.clustering.clone());
        out.extend(page.into_iter().filter(|r| !r.is_tombstone()));
        if !full {
            return Ok(out);
        }
    }
}

/// Visits every live row of a table (tombstones skipped), page by page.
pub fn for_each_row(
    store: &dyn ReadStore,
    table: &str,
    mut visit: impl FnMut(Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.scan_table(table, after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())), 1000)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some((last.partition.clone(), last.clustering.clone()));
        for row in page {
            if !row.is_tombstone() {
                visit(row)?;
            }
        }
    }
}

/// Opens a store by URL: `embedded:///path/to/file.redb`, or
/// `scylla://host:port[,host:port]/keyspace[?consistency=local_quorum&replication=3]`.
pub fn open(url: &str) -> Result<Arc<dyn ReadStore>, StoreError> {
    if url.starts_with("scylla://") {
        return Ok(Arc::new(ScyllaStore::connect(url)?));
    }
    let parsed = url::Url::parse(url).map_err(|e| StoreError::Config(format!("store url {url:?}: {e}")))?;
    match parsed.scheme() {
        "embedded" => {
            // `?cache_mb=N` bounds redb's page cache (default 1 GiB)
            let mut cache = None;
            for (k, v) in parsed.query_pairs() {
                match (k.as_ref(), v.parse::<usize>()) {
                    ("cache_mb", Ok(mb)) if mb > 0 => cache = Some(mb << 20),
                    _ => {
                        return Err(StoreError::Config(format!(
                            "store url {url:?}: unknown option {k}={v} (cache_mb=N)"
                        )));
                    }
                }
            }
            Ok(Arc::new(EmbeddedStore::open_with_cache(std::path::Path::new(parsed.path()), cache)?))
        }
        other => Err(StoreError::Config(format!("unsupported store scheme {other:?} (supported: embedded, scylla)"))),
    }
}
