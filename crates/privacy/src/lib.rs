//! GDPR erasure by crypto-shredding (seed 004).
//!
//! Personal fields of a task (store contact details, free text the customer sends) are sealed
//! with XChaCha20-Poly1305 under a key of their data subject before the command is sent, so the
//! commands and events topics, the cold segments, the views and the exports only ever hold
//! ciphertext. The keys live in a key store (a table of the read store: Scylla in production,
//! the embedded store on one machine), one row per key. [`KeyStore::shred`] destroys every key of
//! a subject: from then on that data is unreadable everywhere, while the history itself, and
//! everything else in it, replays unchanged.
//!
//! The associated data binds a ciphertext to its subject, key and task, so it cannot be moved to
//! another task and read there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use visionlog_domain::Sealed;
use visionlog_store::{Put, ReadStore, Row, read_partition};
use zeroize::Zeroizing;

/// The key store's table: partition = subject, clustering = key id.
pub const KEYS_TABLE: &str = "subject_keys";
/// The clustering key of a subject's shredding record.
const SHREDDED: &str = "~shredded";
/// Version of a key row (written once, erased when shredded).
const LIVE: u64 = 1;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] visionlog_store::StoreError),
    /// A sealed value that is not authentic (altered, or moved to another task).
    #[error("sealed personal data of {subject} is not authentic: {reason}")]
    NotAuthentic {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },
    /// No randomness from the operating system.
    #[error("no randomness: {0}")]
    Random(String),
}

/// The personal fields of a task, in the clear (only ever in memory).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Personal {
    /// A contact at the store.
    pub contact_name: Option<String>,
    /// Their e-mail.
    pub contact_email: Option<String>,
    /// Their phone.
    pub contact_phone: Option<String>,
    /// Free text the customer sent with the task.
    pub note: Option<String>,
}

/// What opening sealed data gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The key is there: the fields.
    Readable(Personal),
    /// The subject's key was shredded: the data is gone for good.
    Shredded,
}

/// The record of a shredding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shredded {
    /// The subject.
    pub subject: String,
    /// How many keys were destroyed.
    pub keys_destroyed: u32,
    /// When.
    pub at_ms: i64,
    /// Who asked, and why.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// Keys per data subject, in a table of the read store.
#[derive(Clone)]
pub struct KeyStore {
    store: Arc<dyn ReadStore>,
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, PrivacyError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|e| PrivacyError::Random(e.to_string()))?;
    Ok(bytes)
}

fn aad(subject: &str, key_id: &str, task_id: &str) -> Vec<u8> {
    format!("visionlog/personal/v1\n{subject}\n{key_id}\n{task_id}").into_bytes()
}

impl KeyStore {
    /// A key store in `store`.
    pub fn new(store: Arc<dyn ReadStore>) -> Self {
        Self { store }
    }

    fn live_keys(&self, subject: &str) -> Result<Vec<Row>, PrivacyError> {
        Ok(read_partition(self.store.as_ref(), KEYS_TABLE, subject)?
            .into_iter()
            .filter(|r| r.clustering != SHREDDED && !r.is_tombstone() && r.value.len() == 32)
            .collect())
    }

    /// The subject's current key, made if it has none (a first task, or one after a shredding).
    fn key_for(&self, subject: &str) -> Result<(String, Zeroizing<[u8; 32]>), PrivacyError> {
        if let Some(row) = self.live_keys(subject)?.into_iter().next() {
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&row.value);
            return Ok((row.clustering, key));
        }
        let id = random::<12>()?;
        let key_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let key = random::<32>()?;
        let row = Row { partition: subject.to_owned(), clustering: key_id.clone(), version: LIVE, value: key.to_vec() };
        self.store.put(&[Put { table: KEYS_TABLE.to_owned(), row }])?;
        Ok((key_id, key))
    }

    /// Seals `personal` for `task_id` under the subject's key.
    pub fn seal(&self, subject: &str, task_id: &str, personal: &Personal) -> Result<Sealed, PrivacyError> {
        let (key_id, key) = self.key_for(subject)?;
        let nonce = random::<24>()?;
        let plaintext = Zeroizing::new(serde_json::to_vec(personal).expect("personal fields serialize"));
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        let aad = aad(subject, &key_id, task_id);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(nonce.as_ref()), Payload { msg: &plaintext, aad: &aad })
            .map_err(|e| PrivacyError::NotAuthentic { subject: subject.to_owned(), reason: e.to_string() })?;
        Ok(Sealed {
            subject: subject.to_owned(),
            key_id,
            nonce: B64.encode(nonce.as_ref()),
            ciphertext: B64.encode(ciphertext),
        })
    }

    /// Opens what was sealed for `task_id`: the fields, or [`Opened::Shredded`] once the key is gone.
    pub fn open(&self, sealed: &Sealed, task_id: &str) -> Result<Opened, PrivacyError> {
        let bad = |reason: String| PrivacyError::NotAuthentic { subject: sealed.subject.clone(), reason };
        let Some(row) = self.store.get(KEYS_TABLE, &sealed.subject, &sealed.key_id)? else {
            return Ok(Opened::Shredded);
        };
        if row.is_tombstone() || row.value.len() != 32 {
            return Ok(Opened::Shredded);
        }
        let nonce = B64.decode(&sealed.nonce).map_err(|e| bad(format!("nonce: {e}")))?;
        let ciphertext = B64.decode(&sealed.ciphertext).map_err(|e| bad(format!("ciphertext: {e}")))?;
        if nonce.len() != 24 {
            return Err(bad("a nonce of another length".into()));
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&row.value));
        let aad = aad(&sealed.subject, &sealed.key_id, task_id);
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad })
                .map_err(|_| bad("the tag does not verify".into()))?,
        );
        serde_json::from_slice(&plaintext).map(Opened::Readable).map_err(|e| bad(format!("fields: {e}")))
    }

    /// Destroys every key of `subject` and records the fact in the key store; returns the record
    /// (the caller also writes it to the log). Shredding twice destroys nothing more.
    pub fn shred(&self, subject: &str, actor: &str, reason: &str, at_ms: i64) -> Result<Shredded, PrivacyError> {
        let keys = self.live_keys(subject)?;
        // the key rows are deleted, not overwritten with an empty value: nothing of a key may stay
        // (a key id is random and never written again, so no tombstone is needed to keep it out)
        for key in &keys {
            self.store.erase(KEYS_TABLE, subject, &key.clustering)?;
        }
        let record = Shredded {
            subject: subject.to_owned(),
            keys_destroyed: keys.len() as u32,
            at_ms,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
        };
        let row = Row {
            partition: subject.to_owned(),
            clustering: SHREDDED.to_owned(),
            version: at_ms.max(1) as u64,
            value: serde_json::to_vec(&record).expect("a record serializes"),
        };
        self.store.put(&[Put { table: KEYS_TABLE.to_owned(), row }])?;
        Ok(record)
    }

    /// The last shredding of a subject, if any.
    pub fn shredded(&self, subject: &str) -> Result<Option<Shredded>, PrivacyError> {
        Ok(self
            .store
            .get(KEYS_TABLE, subject, SHREDDED)?
            .filter(|r| !r.is_tombstone())
            .and_then(|r| serde_json::from_slice(&r.value).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_until_its_subject_is_shredded_on_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        shredding(Arc::new(visionlog_store::EmbeddedStore::open(&dir.path().join("s.redb")).unwrap()));
    }

    #[test]
    fn sealed_data_opens_until_its_subject_is_shredded_on_the_cql_server() {
        shredding(Arc::new(visionlog_store::conformance::cql_test_store("privacy")));
    }

    fn shredding(store: Arc<dyn ReadStore>) {
        let keys = KeyStore::new(store.clone());
        let p = Personal {
            contact_name: Some("Ada Lovelace".into()),
            contact_email: Some("ada@store.example".into()),
            note: Some("the freezer aisle".into()),
            ..Personal::default()
        };
        let sealed = keys.seal("subject-1", "task-1", &p).unwrap();
        assert!(!sealed.ciphertext.contains("Ada") && !sealed.ciphertext.contains("ada@"));
        assert_eq!(keys.open(&sealed, "task-1").unwrap(), Opened::Readable(p.clone()));
        // bound to its task, and to its bytes
        assert!(matches!(keys.open(&sealed, "task-2"), Err(PrivacyError::NotAuthentic { .. })));
        let mut altered = sealed.clone();
        altered.ciphertext = B64.encode(vec![7u8; B64.decode(&sealed.ciphertext).unwrap().len()]);
        assert!(matches!(keys.open(&altered, "task-1"), Err(PrivacyError::NotAuthentic { .. })));
        // one key per subject, reused
        let other = keys.seal("subject-1", "task-3", &p).unwrap();
        assert_eq!(other.key_id, sealed.key_id);
        assert_ne!(other.nonce, sealed.nonce);
        let bystander = keys.seal("subject-2", "task-4", &p).unwrap();

        let record = keys.shred("subject-1", "operator:dpo", "erasure request", 1_700_000_000_000).unwrap();
        assert_eq!(record.keys_destroyed, 1);
        assert_eq!(keys.open(&sealed, "task-1").unwrap(), Opened::Shredded);
        assert_eq!(keys.open(&other, "task-3").unwrap(), Opened::Shredded);
        assert_eq!(keys.open(&bystander, "task-4").unwrap(), Opened::Readable(p.clone()), "others unaffected");
        assert_eq!(keys.shredded("subject-1").unwrap(), Some(record));
        // the key's row is gone, not kept as an empty value
        let rows = store.scan_partition(KEYS_TABLE, "subject-1", None, 100).unwrap();
        assert!(
            rows.iter().all(|r| r.clustering != sealed.key_id),
            "the destroyed key's row is still stored: {rows:?}"
        );
        // a later task of the subject gets a new key; the old data stays unreadable
        let later = keys.seal("subject-1", "task-5", &p).unwrap();
        assert_ne!(later.key_id, sealed.key_id);
        assert_eq!(keys.open(&sealed, "task-1").unwrap(), Opened::Shredded);
        assert_eq!(keys.open(&later, "task-5").unwrap(), Opened::Readable(p));
        assert_eq!(keys.shred("subject-1", "operator:dpo", "again", 1_700_000_000_001).unwrap().keys_destroyed, 1);
    }
}
