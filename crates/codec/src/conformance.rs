//! The behaviour every [`SchemaRegistry`] must show: the embedded file, the `schemas` topic of
//! the log (`visionlog_journal::LogRegistry`), and a Confluent-compatible registry over HTTP.
//! A backend's tests call [`run`], as the log's, the store's and the object store's suites are run.

use crate::{RegistryError, SchemaRegistry};

/// A record schema named after `prefix` (registries that check Avro need a valid one).
fn record(prefix: &str, name: &str, field_type: &str) -> String {
    let namespace: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!(
        r#"{{"type":"record","name":"{name}","namespace":"conformance.{namespace}","fields":[{{"name":"x","type":"{field_type}"}}]}}"#
    )
}

/// Every check of the suite, on subjects named `<prefix>-...`.
pub fn run(registry: &dyn SchemaRegistry, prefix: &str) {
    let (a, b) = (record(prefix, "A", "long"), record(prefix, "B", "string"));
    let (subject_a, subject_b) = (format!("{prefix}-a-v1"), format!("{prefix}-b-v1"));
    // registering is idempotent: the same schema under the same subject keeps its id
    let id_a = registry.register(&subject_a, &a).unwrap();
    assert_eq!(registry.register(&subject_a, &a).unwrap(), id_a, "the same schema again, the same id");
    let id_b = registry.register(&subject_b, &b).unwrap();
    assert_ne!(id_a, id_b, "two schemas, two ids");
    // an id gives its schema back (compared as Avro: a registry may store the canonical form)
    for (id, text) in [(id_a, &a), (id_b, &b)] {
        let back = registry.schema(id).unwrap();
        let parsed = apache_avro::Schema::parse_str(&back).expect("the registry gives back valid Avro");
        assert_eq!(parsed, apache_avro::Schema::parse_str(text).unwrap(), "schema {id}");
    }
    // an id no one registered is an error that says so, never another schema
    let unknown = id_a.max(id_b) + 100_000;
    assert!(matches!(registry.schema(unknown), Err(RegistryError::NotFound(n)) if n == unknown));
}
