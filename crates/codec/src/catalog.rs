//! The schemas of `schemas/`, composed and parsed.
//!
//! Shared types live once in `schemas/types/`; a message schema names them (e.g.
//! `"visionlog.types.BoundingBox"`) and the catalog inlines each definition at its first use,
//! so every registered schema is self-contained (no registry references needed). Each message
//! schema carries its major version in the `visionlog.version` attribute; a breaking change is a
//! new major version, registered under its own subject and bridged by an upcaster.

use crate::error::CodecError;
use apache_avro::Schema;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// One version of one message schema.
#[derive(Clone, Debug)]
pub struct SchemaVersion {
    /// Full Avro name, e.g. `visionlog.events.TaskCreated`.
    pub full_name: String,
    /// Major version (the `visionlog.version` attribute).
    pub version: u32,
    /// The self-contained schema text registered.
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
}

impl SchemaVersion {
    /// Returns the registry subject of this version: the full name and the major version.
    pub fn subject(&self) -> String {
        subject(&self.full_name, self.version)
    }
}

/// Returns the registry subject of a message name and major version.
pub(crate) fn subject(full_name: &str, version: u32) -> String {
    format!("{full_name}-v{version}")
}

/// Every message schema, by full name, versions ascending.
#[derive(Clone, Debug)]
pub struct Catalog {
    messages: BTreeMap<String, Vec<SchemaVersion>>,
}

impl Catalog {
    /// Loads the schemas compiled into the crate.
    pub fn load() -> Result<Self, CodecError> {
        Self::from_files(SCHEMA_FILES)
    }

    /// Returns the schemas compiled into the crate, parsed once per process (codecs keep
    /// writers and readers that borrow them).
    pub fn compiled() -> Result<&'static Self, CodecError> {
        static COMPILED: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        if let Some(c) = COMPILED.get() {
            return Ok(c);
        }
        let catalog = Self::load()?;
        Ok(COMPILED.get_or_init(|| catalog))
    }

    pub(crate) fn from_files(files: &[(&str, &str)]) -> Result<Self, CodecError> {
        let invalid = |name: &str, reason: String| CodecError::Schema { name: name.to_owned(), reason };
        let mut types = HashMap::new();
        let mut messages = Vec::new();
        for (path, text) in files {
            let json: Value = serde_json::from_str(text).map_err(|e| invalid(path, e.to_string()))?;
            if path.starts_with("types/") {
                let name = full_name(&json).ok_or_else(|| invalid(path, "no name".into()))?;
                types.insert(name, json);
            } else {
                messages.push((*path, json));
            }
        }
        let mut by_name: BTreeMap<String, Vec<SchemaVersion>> = BTreeMap::new();
        for (path, mut json) in messages {
            let name = full_name(&json).ok_or_else(|| invalid(path, "no name".into()))?;
            let version =
                json.get("visionlog.version")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| invalid(path, "no visionlog.version attribute".into()))? as u32;
            let mut defined = HashSet::from([name.clone()]);
            inline(&mut json, &types, &mut defined);
            let text = json.to_string();
            let schema = Schema::parse_str(&text).map_err(|e| invalid(path, e.to_string()))?;
            by_name.entry(name.clone()).or_default().push(SchemaVersion { full_name: name, version, text, schema });
        }
        for versions in by_name.values_mut() {
            versions.sort_by_key(|v| v.version);
            if versions.windows(2).any(|w| w[0].version == w[1].version) {
                return Err(invalid(&versions[0].full_name, "two files with one version".into()));
            }
        }
        Ok(Self { messages: by_name })
    }

    /// Returns every version of every message, in registration order.
    pub fn all(&self) -> impl Iterator<Item = &SchemaVersion> {
        self.messages.values().flatten()
    }

    /// Returns the current (highest) version of a message.
    pub fn current(&self, full_name: &str) -> Option<&SchemaVersion> {
        self.messages.get(full_name).and_then(|v| v.last())
    }

    /// Returns one version of a message.
    pub fn version(&self, full_name: &str, version: u32) -> Option<&SchemaVersion> {
        self.messages.get(full_name)?.iter().find(|v| v.version == version)
    }
}

fn full_name(json: &Value) -> Option<String> {
    let name = json.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    match json.get("namespace").and_then(Value::as_str) {
        Some(ns) => Some(format!("{ns}.{name}")),
        None => Some(name.to_owned()),
    }
}

/// Replaces the first use of each shared type with its definition (Avro wants a definition
/// before any reference by name, in document order).
fn inline(v: &mut Value, types: &HashMap<String, Value>, defined: &mut HashSet<String>) {
    match v {
        Value::String(s) if types.contains_key(s.as_str()) && !defined.contains(s.as_str()) => {
            defined.insert(s.clone());
            let mut def = types[s.as_str()].clone();
            inline(&mut def, types, defined);
            *v = def;
        }
        Value::Array(items) => items.iter_mut().for_each(|x| inline(x, types, defined)),
        Value::Object(o) => {
            for key in ["type", "items", "values"] {
                if let Some(x) = o.get_mut(key) {
                    inline(x, types, defined);
                }
            }
            if let Some(Value::Array(fields)) = o.get_mut("fields") {
                fields.iter_mut().for_each(|f| inline(f, types, defined));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_is_self_contained() {
        let catalog = Catalog::load().unwrap();
        assert!(catalog.all().count() >= 37);
        for v in catalog.all() {
            // parsing alone, without the type files, proves the text is self-contained
            Schema::parse_str(&v.text).unwrap_or_else(|e| panic!("{}: {e}", v.full_name));
        }
        assert_eq!(catalog.current("visionlog.events.TaskCreated").unwrap().version, 2);
        assert!(catalog.version("visionlog.events.TaskCreated", 1).is_some());
    }
}
