//! Read stores: where views (and the aggregator's snapshots) live.
//!
//! [`ReadStore`] is shaped like Scylla's data model: a table holds partitions (by partition key),
//! each a sorted run of rows (by clustering key). Every write carries the version of the source
//! it was derived from and is applied only if that version is newer than the stored one, so
//! redelivered and reordered events never move a view backwards (seed 000's "version
//! preconditions"). [`EmbeddedStore`] keeps the same model in one `redb` file; the Scylla
//! backend implements the same trait.
//!
//! Not here: what rows mean. Views encode their own values.

pub mod conformance;
mod embedded;

pub use embedded::EmbeddedStore;

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
pub trait ReadStore: Send + Sync {
    /// Applies conditional writes, all or none (a logged batch on Scylla, a transaction here).
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError>;
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
    /// Reads the rows of a whole table in (partition, clustering) order, after a row (for paging).
    fn scan_table(&self, table: &str, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<Row>, StoreError>;
}

/// Opens a store by URL: `embedded:///path/to/file.redb`. (`scylla://` arrives with its backend.)
pub fn open(url: &str) -> Result<Arc<dyn ReadStore>, StoreError> {
    let parsed = url::Url::parse(url).map_err(|e| StoreError::Config(format!("store url {url:?}: {e}")))?;
    match parsed.scheme() {
        "embedded" => Ok(Arc::new(EmbeddedStore::open(std::path::Path::new(parsed.path()))?)),
        other => Err(StoreError::Config(format!("unsupported store scheme {other:?} (supported: embedded)"))),
    }
}
