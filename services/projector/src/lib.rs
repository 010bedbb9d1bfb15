//! The projector service: it folds `events` into the read models of `visionlog-views` and
//! writes their rows, version-guarded, into one generation of the view tables; and it rebuilds a
//! new generation from the whole history ([`rebuild`]) and switches readers over when it has
//! caught up. The extractor writes training crops before the index rows that name them.
//!
//! Writes are version-guarded: a row carries the stream version it reflects and is written only
//! over an older one, so redelivered and reordered events never move a view backwards.

pub mod extractor;
mod projector;
mod service;
mod tombstones;

pub use extractor::Extractor;
pub use projector::{BeforeRows, Projector, ProjectorStats};
pub use service::{ProjectorContext, REBUILD_BATCH, RebuildError, RebuildReport, rebuild, run_partition};
