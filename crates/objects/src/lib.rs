//! The object store: images customers send, crops of the training-data repository, exports.
//!
//! Chosen by URL: `file:///path` (local files, the embedded default). S3 and MinIO
//! (`s3://bucket`) come with the tiering work. Calls are blocking: the services are threads.

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

/// Why an object-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// No object at that key.
    #[error("no object at {0}")]
    NotFound(String),
    /// A key that is not a clean relative path.
    #[error("bad object key {0:?}: {1}")]
    BadKey(String, String),
    /// A bad URL.
    #[error("object store configuration: {0}")]
    Config(String),
    /// The store failed.
    #[error("object store: {0}")]
    Backend(String),
}

/// A blocking handle on an object store.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    url: String,
}

fn key(k: &str) -> Result<Path, ObjectsError> {
    if k.is_empty() || k.starts_with('/') || k.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ObjectsError::BadKey(k.into(), "a relative path without empty, . or .. segments".into()));
    }
    Path::parse(k).map_err(|e| ObjectsError::BadKey(k.into(), e.to_string()))
}

impl Objects {
    /// Opens a store by URL: `file:///path/to/dir`.
    pub fn open(url: &str) -> Result<Self, ObjectsError> {
        let parsed = url::Url::parse(url).map_err(|e| ObjectsError::Config(format!("{url:?}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = std::path::Path::new(parsed.path());
                std::fs::create_dir_all(dir).map_err(|e| ObjectsError::Config(format!("{}: {e}", dir.display())))?;
                Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(|e| ObjectsError::Config(e.to_string()))?)
            }
            other => {
                return Err(ObjectsError::Config(format!(
                    "unsupported object store scheme {other:?} (supported: file; s3 comes with tiering)"
                )));
            }
        };
        Ok(Self { store, url: url.to_owned() })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes an object (whole, replacing any).
    pub fn put(&self, k: &str, bytes: Vec<u8>) -> Result<(), ObjectsError> {
        let path = key(k)?;
        futures_executor::block_on(self.store.put(&path, bytes.into()))
            .map(|_| ())
            .map_err(|e| ObjectsError::Backend(e.to_string()))
    }

    /// Reads an object, refusing one larger than `max_bytes`.
    pub fn get(&self, k: &str, max_bytes: u64) -> Result<Vec<u8>, ObjectsError> {
        let path = key(k)?;
        futures_executor::block_on(async {
            let got = self.store.get(&path).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => ObjectsError::NotFound(k.into()),
                e => ObjectsError::Backend(e.to_string()),
            })?;
            if got.meta.size > max_bytes {
                return Err(ObjectsError::BadKey(
                    k.into(),
                    format!("{} bytes, over the limit of {max_bytes}", got.meta.size),
                ));
            }
            Ok(got.bytes().await.map_err(|e| ObjectsError::Backend(e.to_string()))?.to_vec())
        })
    }

    /// Tells whether an object exists.
    pub fn exists(&self, k: &str) -> Result<bool, ObjectsError> {
        let path = key(k)?;
        match futures_executor::block_on(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ObjectsError::Backend(e.to_string())),
        }
    }
}

/// The object key an image URI names: `store://<key>` is a key of this store; other schemes
/// are not fetched by visionlog (the customer's own storage is not reached from here).
pub fn key_of_uri(uri: &str) -> Result<&str, ObjectsError> {
    uri.strip_prefix("store://")
        .filter(|k| key(k).is_ok())
        .ok_or_else(|| ObjectsError::BadKey(uri.into(), "only store://<key> images are read".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_keys_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::open(&format!("file://{}", dir.path().display())).unwrap();
        o.put("a/b.png", b"png".to_vec()).unwrap();
        assert_eq!(o.get("a/b.png", 10).unwrap(), b"png");
        assert!(o.exists("a/b.png").unwrap() && !o.exists("a/c.png").unwrap());
        assert!(matches!(o.get("a/c.png", 10), Err(ObjectsError::NotFound(_))));
        assert!(matches!(o.get("a/b.png", 2), Err(ObjectsError::BadKey(..))));
        for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", ""] {
            assert!(matches!(o.put(bad, vec![]), Err(ObjectsError::BadKey(..))), "{bad}");
        }
        assert_eq!(key_of_uri("store://images/t/0.png").unwrap(), "images/t/0.png");
        assert!(key_of_uri("https://evil.example/x.png").is_err());
        assert!(key_of_uri("store://../x").is_err());
        assert!(Objects::open("ftp://x/y").is_err());
    }
}
