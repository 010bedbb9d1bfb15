//! A Confluent-compatible schema registry over HTTP (Confluent, Karapace, Apicurio's ccompat API,
//! Redpanda), with `schema_registry_converter`'s blocking client.
//!
//! Same subjects and same wire format as the embedded registry: only where ids come from
//! changes. Ids and schema texts are cached (both are immutable in a registry), so the registry
//! is called once per schema per process.

use crate::registry::{RegistryError, SchemaRegistry};
use schema_registry_converter::blocking::schema_registry::{SrSettings, get_schema_by_id, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

/// A registry at `http(s)://host:port[/path]`.
pub struct HttpRegistry {
    url: String,
    settings: SrSettings,
    ids: RwLock<HashMap<(String, String), u32>>,
    schemas: RwLock<HashMap<u32, String>>,
}

impl HttpRegistry {
    /// A client of the registry at `url` (http or https, no credentials in the URL: use
    /// `SCHEMA_REGISTRY_BASIC_AUTH=user:secret` for basic authentication).
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let bad = |why: &str| RegistryError::Unavailable(format!("schema registry url {url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("only http and https are supported"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials do not belong in the URL"));
        }
        let mut builder = SrSettings::new_builder(url.trim_end_matches('/').to_owned());
        builder.set_timeout(Duration::from_secs(10));
        if let Ok(auth) = std::env::var("SCHEMA_REGISTRY_BASIC_AUTH")
            && let Some((user, secret)) = auth.split_once(':')
        {
            builder.set_basic_authorization(user, Some(secret));
        }
        let settings = builder.build().map_err(|e| bad(&e.error))?;
        Ok(Self { url: url.to_owned(), settings, ids: RwLock::default(), schemas: RwLock::default() })
    }

    /// The registry's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn unavailable(url: &str, e: &SRCError) -> RegistryError {
    RegistryError::Unavailable(format!(
        "{url}: {}{}",
        e.error,
        e.cause.as_ref().map_or(String::new(), |c| format!(" ({c})"))
    ))
}

impl SchemaRegistry for HttpRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.ids.read().expect("ids lock").get(&key) {
            return Ok(*id);
        }
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        let registered = post_schema(&self.settings, subject.to_owned(), supplied).map_err(|e| {
            if e.retriable {
                unavailable(&self.url, &e)
            } else {
                RegistryError::Refused { subject: subject.to_owned(), reason: e.error.clone() }
            }
        })?;
        self.ids.write().expect("ids lock").insert(key, registered.id);
        self.schemas.write().expect("schemas lock").insert(registered.id, schema.to_owned());
        Ok(registered.id)
    }

    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        if let Some(text) = self.schemas.read().expect("schemas lock").get(&id) {
            return Ok(text.clone());
        }
        let registered = get_schema_by_id(id, &self.settings).map_err(|e| {
            let status_404 = e.cause.as_deref().unwrap_or_default().contains("404") || e.error.contains("404");
            if status_404 { RegistryError::NotFound(id) } else { unavailable(&self.url, &e) }
        })?;
        self.schemas.write().expect("schemas lock").insert(id, registered.schema.clone());
        Ok(registered.schema)
    }
}
