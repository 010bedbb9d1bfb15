//! Schema registries: where schema ids come from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// Why a registry call failed.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// No schema has this id.
    #[error("no schema with id {0}")]
    NotFound(u32),
    /// The registry refused the schema (e.g. incompatible with the subject's history).
    #[error("registry refused schema for {subject}: {reason}")]
    Refused {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The registry could not be reached or stored to; may be transient.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
}

/// Registers schemas under subjects and resolves them by id, like a Confluent schema registry.
pub trait SchemaRegistry: Send + Sync {
    /// Registers a schema under a subject and returns its id; registering the same schema again
    /// returns the same id.
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;
    /// Returns the text of the schema with this id.
    fn schema(&self, id: u32) -> Result<String, RegistryError>;
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Stored {
    /// Schemas in id order; ids start at 1.
    schemas: Vec<StoredSchema>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct StoredSchema {
    id: u32,
    subject: String,
    schema: String,
}

/// Ids by (subject, schema text).
type SchemaIndex = HashMap<(String, String), u32>;

/// A schema registry in the process, persisted to one JSON file so that ids stay stable across
/// restarts (the ids are written into every message of the log).
pub struct EmbeddedRegistry {
    path: Option<PathBuf>,
    state: Mutex<(Stored, SchemaIndex)>,
}

impl EmbeddedRegistry {
    /// Opens (or creates) a registry persisted at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let stored: Stored = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Unavailable(format!("corrupt registry file {}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(RegistryError::Unavailable(e.to_string())),
        };
        let index = stored.schemas.iter().map(|s| ((s.subject.clone(), s.schema.clone()), s.id)).collect();
        Ok(Self { path: Some(path.to_owned()), state: Mutex::new((stored, index)) })
    }

    /// Creates a registry that lives only in memory (tests, benchmarks).
    pub fn in_memory() -> Self {
        Self { path: None, state: Mutex::new((Stored::default(), HashMap::new())) }
    }

    fn persist(&self, stored: &Stored) -> Result<(), RegistryError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |e: std::io::Error| RegistryError::Unavailable(format!("writing {}: {e}", path.display()));
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(stored).map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

impl SchemaRegistry for EmbeddedRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let mut guard = self.state.lock().expect("registry lock");
        let (stored, index) = &mut *guard;
        if let Some(id) = index.get(&(subject.to_owned(), schema.to_owned())) {
            return Ok(*id);
        }
        let id = stored.schemas.len() as u32 + 1;
        stored.schemas.push(StoredSchema { id, subject: subject.to_owned(), schema: schema.to_owned() });
        if let Err(e) = self.persist(stored) {
            stored.schemas.pop();
            return Err(e);
        }
        index.insert((subject.to_owned(), schema.to_owned()), id);
        Ok(id)
    }

    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let guard = self.state.lock().expect("registry lock");
        id.checked_sub(1)
            .and_then(|i| guard.0.schemas.get(i as usize))
            .map(|s| s.schema.clone())
            .ok_or(RegistryError::NotFound(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        let r = EmbeddedRegistry::open(&path).unwrap();
        let a = r.register("a-v1", "\"string\"").unwrap();
        let b = r.register("b-v1", "\"long\"").unwrap();
        assert_eq!(r.register("a-v1", "\"string\"").unwrap(), a);
        assert_ne!(a, b);
        drop(r);
        let r = EmbeddedRegistry::open(&path).unwrap();
        assert_eq!(r.register("b-v1", "\"long\"").unwrap(), b);
        assert_eq!(r.schema(a).unwrap(), "\"string\"");
        assert!(matches!(r.schema(99), Err(RegistryError::NotFound(99))));
        assert!(matches!(r.schema(0), Err(RegistryError::NotFound(0))));
    }
}
