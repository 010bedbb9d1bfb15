//! The object store: images customers send, crops of the training-data repository, cold
//! segments of the log, exports.
//!
//! Chosen by URL: `file:///path` (local files, the embedded default) or
//! `s3://bucket[/prefix][?endpoint=http://host:port&region=R&allow_http=true&storage_class=C]`
//! (AWS S3, MinIO, SeaweedFS; credentials from the usual `AWS_*` environment variables, never
//! from the URL). Calls are blocking: the services are threads; the S3 client's I/O runs on a
//! small runtime of this crate's own.
//!
//! S3-only features come from the same client (`object_store`'s `AmazonS3`): storage classes
//! for archive tiers and presigned URLs for data scientists. See ADR 0008 for why not
//! `aws-sdk-s3` as well.

pub mod conformance;
mod local_s3;

pub use local_s3::{LocalS3, weed_binary};

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why an object-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// No object at that key.
    #[error("no object at {0}")]
    NotFound(String),
    /// A key that is not a clean relative path.
    #[error("bad object key {0:?}: {1}")]
    BadKey(String, String),
    /// An object larger than the caller accepts.
    #[error("object {0} is {1} bytes, over the limit of {2}")]
    TooLarge(String, u64, u64),
    /// A bad URL.
    #[error("object store configuration: {0}")]
    Config(String),
    /// The store does not offer this (e.g. presigned URLs on local files).
    #[error("object store: {0} is not supported by this store")]
    Unsupported(&'static str),
    /// The store failed (unreachable, refused, timed out): worth retrying later.
    #[error("object store: {0}")]
    Backend(String),
}

/// What an object listing returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The key (relative to the store's prefix).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A blocking handle on an object store.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The S3 client and the prefix of this store inside its bucket, for presigned URLs.
    s3: Option<(Arc<object_store::aws::AmazonS3>, String)>,
    /// Storage class for archive writes (`put_archive`), from `?storage_class=`.
    storage_class: Option<String>,
    url: String,
}

/// The runtime the S3 client's futures run on (the local store needs none, but shares it).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("objects-io")
            .enable_all()
            .build()
            .expect("a tokio runtime for the object store")
    })
}

fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

fn key(k: &str) -> Result<Path, ObjectsError> {
    if k.is_empty() || k.starts_with('/') || k.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ObjectsError::BadKey(k.into(), "a relative path without empty, . or .. segments".into()));
    }
    Path::parse(k).map_err(|e| ObjectsError::BadKey(k.into(), e.to_string()))
}

fn backend(k: &str, e: object_store::Error) -> ObjectsError {
    match e {
        object_store::Error::NotFound { .. } => ObjectsError::NotFound(k.into()),
        e => ObjectsError::Backend(format!("{k}: {e}")),
    }
}

impl Objects {
    /// Opens a store by URL: `file:///path/to/dir` or `s3://bucket[/prefix][?query]`.
    pub fn open(url: &str) -> Result<Self, ObjectsError> {
        let parsed = url::Url::parse(url).map_err(|e| ObjectsError::Config(format!("{url:?}: {e}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = std::path::Path::new(parsed.path());
                std::fs::create_dir_all(dir).map_err(|e| ObjectsError::Config(format!("{}: {e}", dir.display())))?;
                let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| ObjectsError::Config(e.to_string()))?;
                Ok(Self { store: Arc::new(store), s3: None, storage_class: None, url: url.to_owned() })
            }
            "s3" => Self::open_s3(&parsed, url, AmazonS3Builder::from_env()),
            other => {
                Err(ObjectsError::Config(format!("unsupported object store scheme {other:?} (supported: file, s3)")))
            }
        }
    }

    /// Opens an `s3://` store with these credentials instead of the `AWS_*` environment
    /// variables (for tools and tests that start their own server).
    pub fn open_with_keys(url: &str, access_key: &str, secret: &str) -> Result<Self, ObjectsError> {
        let parsed = url::Url::parse(url).map_err(|e| ObjectsError::Config(format!("{url:?}: {e}")))?;
        if parsed.scheme() != "s3" {
            return Err(ObjectsError::Config(format!("{url:?}: credentials are for s3:// stores")));
        }
        let builder = AmazonS3Builder::from_env().with_access_key_id(access_key).with_secret_access_key(secret);
        Self::open_s3(&parsed, url, builder)
    }

    fn open_s3(parsed: &url::Url, url: &str, builder: AmazonS3Builder) -> Result<Self, ObjectsError> {
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ObjectsError::Config(format!("{url:?}: s3 URLs name a bucket: s3://bucket[/prefix]")))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        if !prefix.is_empty() {
            key(&prefix)?;
        }
        // an unreachable store fails a call within seconds (the caller retries later: tiering
        // pauses) instead of the client's default of retrying for minutes
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..object_store::RetryConfig::default()
        };
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(60));
        let mut builder = builder.with_bucket_name(bucket).with_retry(retry).with_client_options(client);
        let mut storage_class = None;
        for (k, v) in parsed.query_pairs() {
            builder = match k.as_ref() {
                "endpoint" => {
                    let allow_http = v.starts_with("http://");
                    builder.with_endpoint(v.as_ref()).with_allow_http(allow_http)
                }
                "region" => builder.with_region(v.as_ref()),
                "allow_http" => builder.with_allow_http(v == "true"),
                "storage_class" => {
                    storage_class = Some(v.into_owned());
                    builder
                }
                other => return Err(ObjectsError::Config(format!("{url:?}: unknown s3 option {other:?}"))),
            };
        }
        let s3 = Arc::new(builder.build().map_err(|e| ObjectsError::Config(format!("{url:?}: {e}")))?);
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { s3.clone() } else { Arc::new(PrefixStore::new(s3.clone(), prefix.as_str())) };
        Ok(Self { store, s3: Some((s3, prefix)), storage_class, url: url.to_owned() })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes an object (whole, replacing any).
    pub fn put(&self, k: &str, bytes: Vec<u8>) -> Result<(), ObjectsError> {
        let path = key(k)?;
        block_on(self.store.put(&path, bytes.into())).map(|_| ()).map_err(|e| backend(k, e))
    }

    /// Writes an object only if none is at its key (an atomic conditional create, `If-None-Match: *`
    /// on S3); tells whether this call created it. Under concurrent writers exactly one wins.
    pub fn put_new(&self, k: &str, bytes: Vec<u8>) -> Result<bool, ObjectsError> {
        self.create(k, bytes, Attributes::new())
    }

    /// [`Objects::put_new`] in the archive storage class (`?storage_class=` of an S3 URL; the
    /// store's default where none is set).
    pub fn put_new_archive(&self, k: &str, bytes: Vec<u8>) -> Result<bool, ObjectsError> {
        let mut attributes = Attributes::new();
        if let Some(class) = &self.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
        self.create(k, bytes, attributes)
    }

    fn create(&self, k: &str, bytes: Vec<u8>, attributes: Attributes) -> Result<bool, ObjectsError> {
        let path = key(k)?;
        let options = PutOptions { mode: PutMode::Create, attributes, ..PutOptions::default() };
        match block_on(self.store.put_opts(&path, bytes.into(), options)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            // some S3 servers answer a lost If-None-Match race with 409 or 412
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(backend(k, e)),
        }
    }

    /// Reads an object, refusing one larger than `max_bytes`.
    pub fn get(&self, k: &str, max_bytes: u64) -> Result<Vec<u8>, ObjectsError> {
        let path = key(k)?;
        block_on(async {
            let got = self.store.get(&path).await.map_err(|e| backend(k, e))?;
            if got.meta.size > max_bytes {
                return Err(ObjectsError::TooLarge(k.into(), got.meta.size, max_bytes));
            }
            Ok(got.bytes().await.map_err(|e| backend(k, e))?.to_vec())
        })
    }

    /// Tells whether an object exists.
    pub fn exists(&self, k: &str) -> Result<bool, ObjectsError> {
        let path = key(k)?;
        match block_on(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(k, e)),
        }
    }

    /// Lists the objects under a folder (recursively), in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, ObjectsError> {
        let path = key(prefix)?;
        let mut out = block_on(async {
            use futures_util::TryStreamExt;
            self.store
                .list(Some(&path))
                .map_ok(|m| Listed { key: m.location.to_string(), size: m.size })
                .try_collect::<Vec<_>>()
                .await
        })
        .map_err(|e| backend(prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes an object (no error if there is none).
    pub fn delete(&self, k: &str) -> Result<(), ObjectsError> {
        let path = key(k)?;
        match block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(k, e)),
        }
    }

    /// A presigned GET URL for an object, valid for `ttl` (S3 only): what a data scientist
    /// downloads an export with, without credentials of their own.
    pub fn presigned_get(&self, k: &str, ttl: Duration) -> Result<String, ObjectsError> {
        let (s3, prefix) = self.s3.as_ref().ok_or(ObjectsError::Unsupported("a presigned URL"))?;
        key(k)?;
        let full = if prefix.is_empty() { k.to_owned() } else { format!("{prefix}/{k}") };
        let url = block_on(s3.signed_url(http::Method::GET, &Path::from(full), ttl)).map_err(|e| backend(k, e))?;
        Ok(url.to_string())
    }

    /// The URL of an object for a client of the same store (`s3://bucket/prefix/key` or a
    /// `file://` path): what an export's dataset card names.
    pub fn object_url(&self, k: &str) -> String {
        format!("{}/{k}", self.url.split('?').next().unwrap_or_default().trim_end_matches('/'))
    }
}

/// The hex SHA-256 of bytes: how objects are named by content (uploaded images) and checked
/// (cold segments).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
        assert!(matches!(o.get("a/b.png", 2), Err(ObjectsError::TooLarge(..))));
        for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", ""] {
            assert!(matches!(o.put(bad, vec![]), Err(ObjectsError::BadKey(..))), "{bad}");
        }
        assert_eq!(key_of_uri("store://images/t/0.png").unwrap(), "images/t/0.png");
        assert!(key_of_uri("https://evil.example/x.png").is_err());
        assert!(key_of_uri("store://../x").is_err());
        assert!(Objects::open("ftp://x/y").is_err());
        assert!(Objects::open("s3:///no-bucket").is_err());
        assert!(Objects::open("s3://b?secret=x").is_err());
        assert!(matches!(o.presigned_get("a/b.png", Duration::from_secs(60)), Err(ObjectsError::Unsupported(_))));
    }

    #[test]
    fn conditional_create_list_and_delete_on_local_files() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::open(&format!("file://{}", dir.path().display())).unwrap();
        crate::conformance::run(&o);
    }
}
