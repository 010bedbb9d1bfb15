//! Generations of the views (blue/green): readers read the serving generation while a rebuild
//! writes the next one from the whole history; the rebuild switches readers over when it has
//! caught up, and the previous generation is kept until the next switch, for a rollback.

use serde::{Deserialize, Serialize};
use visionlog_store::{Put, PutOutcome, ReadStore, Row, StoreError};

/// The table of the generation record (one row; its version counts the changes).
pub const GENERATIONS: &str = "projection_generations";

/// Which generations of the views exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generations {
    /// The one readers read and the live projector maintains.
    pub serving: u32,
    /// One being rebuilt, if any.
    pub building: Option<u32>,
    /// The one served before the last switch (kept for a rollback).
    pub previous: Option<u32>,
}

impl Default for Generations {
    fn default() -> Self {
        Self { serving: 1, building: None, previous: None }
    }
}

/// The table of a view in a generation.
pub fn table(base: &str, generation: u32) -> String {
    format!("{base}_g{generation}")
}

/// The consumer group of the projector: `<PROJECTOR_GROUP>.g<generation>` keeps each
/// generation's position in `events`.
pub const PROJECTOR_GROUP: &str = "projector";

/// The consumer group that keeps a generation's position in `events`.
pub fn group(generation: u32) -> String {
    format!("{PROJECTOR_GROUP}.g{generation}")
}

/// Reads the generations and the version of their record (0 before the first change).
pub fn read(store: &dyn ReadStore) -> Result<(Generations, u64), StoreError> {
    Ok(match store.get(GENERATIONS, "views", "")? {
        Some(row) => (
            serde_json::from_slice(&row.value).map_err(|e| StoreError::Backend(format!("generations: {e}")))?,
            row.version,
        ),
        None => (Generations::default(), 0),
    })
}

/// Writes the generations if their record is still at `seen` (compare and set); tells whether
/// it was.
pub fn write(store: &dyn ReadStore, g: &Generations, seen: u64) -> Result<bool, StoreError> {
    let row = Row {
        partition: "views".into(),
        clustering: String::new(),
        version: seen + 1,
        value: serde_json::to_vec(g).expect("generations serialize"),
    };
    Ok(store.put(&[Put { table: GENERATIONS.into(), row }])? == [PutOutcome::Applied])
}
