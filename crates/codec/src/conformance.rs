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

/// A registry that can be down (its lookups fail as unavailable, as an unreachable HTTP
/// registry's do) and counts its lookups: for tests of what readers do during an outage.
pub struct Outage<R> {
    /// The registry behind.
    pub inner: R,
    /// Whether lookups fail.
    pub down: std::sync::atomic::AtomicBool,
    /// Lookups asked for (failed ones included).
    pub lookups: std::sync::atomic::AtomicUsize,
}

impl<R> Outage<R> {
    /// `inner`, up.
    pub fn new(inner: R) -> Self {
        Self { inner, down: false.into(), lookups: 0.into() }
    }
}

impl<R: SchemaRegistry> SchemaRegistry for Outage<R> {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.inner.register(subject, schema)
    }

    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RegistryError::Unavailable("connection refused".into()));
        }
        self.inner.schema(id)
    }
}

/// Registers, under its subject, the current schema of message `full_name` with a `doc` added:
/// what a newer producer registers (the same fields), with an id `codec` has not seen yet.
pub fn register_newer_copy(registry: &dyn SchemaRegistry, codec: &crate::Codec, full_name: &str) -> u32 {
    let id = codec.schema_id(full_name).expect("a message of the catalog");
    let mut text: serde_json::Value = serde_json::from_str(&registry.schema(id).expect("its schema")).expect("json");
    text["doc"] = "registered by a newer producer".into();
    let newer = registry.register(&format!("{full_name}-v1"), &text.to_string()).expect("registered");
    assert_ne!(newer, id, "a new id for the documented copy");
    newer
}
