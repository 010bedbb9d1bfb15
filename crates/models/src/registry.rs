//! The model streams on the log: one partition of the `models` topic, read by everyone,
//! appended to with log-order concurrency control.

use crate::record::{self, Stored};
use crate::stream::{ModelCommand, ModelEvent, ModelKey, ModelRejection, ModelStream, decide, evolve};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use visionlog_codec::{Codec, CodecError};
use visionlog_log::{EventLog, LogError, Record};
/// A writer that loses this many races in a row gives up.
const MAX_RACES: usize = 5;

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// An event could not be encoded.
    #[error("encoding a model event: {0}")]
    Codec(#[from] CodecError),
    /// Other writers kept winning.
    #[error("lost {MAX_RACES} races to other writers of {0}")]
    Contended(String),
}

/// What became of a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The event was appended as this stream version.
    Appended(ModelEvent, u64),
    /// The command id was decided before, at this stream version.
    Duplicate(u64),
    /// Refused, and why.
    Rejected(ModelRejection),
}

#[derive(Default)]
struct Folded {
    next_offset: u64,
    streams: BTreeMap<ModelKey, ModelStream>,
}

/// Every model stream, folded from the `models` topic.
pub struct Registry {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    topic: String,
    folded: Mutex<Folded>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("topic", &self.topic).finish()
    }
}

impl Registry {
    /// Opens (creating the topic where missing) the registry; records are encoded with `codec`.
    pub fn open(log: Arc<dyn EventLog>, codec: Arc<Codec>, topic: &str) -> Result<Self, RegistryError> {
        log.create_topic(topic, 1)?;
        Ok(Self { log, codec, topic: topic.to_owned(), folded: Mutex::new(Folded::default()) })
    }

    /// Folds what was appended since the last look; returns the end offset.
    fn refresh(&self, folded: &mut Folded) -> Result<(), RegistryError> {
        loop {
            let records = self.log.read(&self.topic, 0, folded.next_offset, 512)?;
            let Some(last) = records.last() else { return Ok(()) };
            folded.next_offset = last.offset + 1;
            for r in &records {
                let env = match record::decode(&self.codec, &r.value) {
                    Ok(env) => env,
                    Err(e) => {
                        tracing::warn!(offset = r.offset, error = %e, "models: an unreadable record is skipped");
                        continue;
                    }
                };
                let stream = folded.streams.entry(env.key).or_default();
                // the first record to claim a version wins; a racing writer's is ignored
                if env.version != stream.version + 1 || stream.commands.contains_key(&env.command_id) {
                    continue;
                }
                *stream = evolve(std::mem::take(stream), &env.event, env.at_ms);
                stream.commands.insert(env.command_id, stream.version);
            }
        }
    }

    /// Every stream, up to date.
    pub fn streams(&self) -> Result<BTreeMap<ModelKey, ModelStream>, RegistryError> {
        let mut folded = self.folded.lock().expect("registry lock");
        self.refresh(&mut folded)?;
        Ok(folded.streams.clone())
    }

    /// One stream, up to date (empty if it has no events).
    pub fn stream(&self, key: &ModelKey) -> Result<ModelStream, RegistryError> {
        let mut folded = self.folded.lock().expect("registry lock");
        self.refresh(&mut folded)?;
        Ok(folded.streams.get(key).cloned().unwrap_or_default())
    }

    /// Decides a command on a stream and appends its event; `command_id` makes it idempotent.
    pub fn execute(
        &self,
        key: &ModelKey,
        command_id: &str,
        command: &ModelCommand,
        at_ms: i64,
    ) -> Result<Outcome, RegistryError> {
        for _ in 0..MAX_RACES {
            let mut folded = self.folded.lock().expect("registry lock");
            self.refresh(&mut folded)?;
            let stream = folded.streams.get(key).cloned().unwrap_or_default();
            if let Some(v) = stream.commands.get(command_id) {
                return Ok(Outcome::Duplicate(*v));
            }
            let event = match decide(&stream, command) {
                Ok(e) => e,
                Err(reason) => return Ok(Outcome::Rejected(reason)),
            };
            let env = Stored {
                key: key.clone(),
                version: stream.version + 1,
                command_id: command_id.to_owned(),
                at_ms,
                event: event.clone(),
            };
            let value = record::encode(&self.codec, &env)?;
            let record = Record { key: Some(key.model_id().into_bytes()), headers: Vec::new(), value };
            self.log.append(&self.topic, 0, &[record])?;
            self.log.flush()?;
            self.refresh(&mut folded)?;
            if let Some(v) = folded.streams.get(key).and_then(|s| s.commands.get(command_id)) {
                return Ok(Outcome::Appended(event, *v));
            }
            // another writer's event took this version: decide again on the new state
        }
        Err(RegistryError::Contended(key.model_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visionlog_log::FileLogOptions;

    fn codec(dir: &std::path::Path) -> Arc<Codec> {
        let registry = visionlog_codec::EmbeddedRegistry::open(&dir.join("registry.json")).unwrap();
        Arc::new(Codec::new(Arc::new(registry)).unwrap())
    }

    fn registry(dir: &std::path::Path) -> Registry {
        let log = visionlog_log::open(&format!("file://{}", dir.display()), FileLogOptions::default()).unwrap();
        Registry::open(log, codec(dir), "models").unwrap()
    }

    #[test]
    fn a_model_lives_through_its_events_and_answers_what_was_deployed_when() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let key = ModelKey::detector("acme", "acme/ice-cream");
        assert_eq!(key.model_id(), "acme:ice-cream:detector");
        assert_eq!(ModelKey::detector("b c", "x/y").model_id(), "b_c:x:y:detector");
        let train = |artifact: &str| {
            ModelCommand::RecordTraining(ModelEvent::ModelTrained {
                version: 0,
                artifact: artifact.into(),
                examples: 10,
                tasks: 5,
                snapshot: "s".into(),
                seconds: 1.0,
            })
        };
        let ok = |o: Outcome| match o {
            Outcome::Appended(e, v) => (e, v),
            other => panic!("{other:?}"),
        };
        ok(reg
            .execute(&key, "c1", &ModelCommand::RequestTraining { by: "op".into(), reason: "r".into() }, 10)
            .unwrap());
        assert!(reg.stream(&key).unwrap().pending_training.is_some());
        let (e, _) = ok(reg.execute(&key, "c2", &train("models/a/v1"), 20).unwrap());
        assert!(matches!(e, ModelEvent::ModelTrained { version: 1, .. }));
        assert!(reg.stream(&key).unwrap().pending_training.is_none());
        // the same command again is a duplicate, not a second version
        assert_eq!(reg.execute(&key, "c2", &train("models/a/v1"), 21).unwrap(), Outcome::Duplicate(2));
        ok(reg.execute(&key, "c3", &ModelCommand::Promote { version: 1, reason: "first".into() }, 30).unwrap());
        ok(reg.execute(&key, "c4", &train("models/a/v2"), 40).unwrap());
        ok(reg.execute(&key, "c5", &ModelCommand::Promote { version: 2, reason: "better".into() }, 50).unwrap());
        assert!(matches!(
            reg.execute(&key, "c6", &ModelCommand::Promote { version: 9, reason: "".into() }, 60).unwrap(),
            Outcome::Rejected(ModelRejection::UnknownVersion(9))
        ));
        ok(reg.execute(&key, "c7", &ModelCommand::Retire { version: 2, reason: "drift".into() }, 70).unwrap());
        // a fresh reader folds the same history
        drop(reg);
        let s = registry(dir.path()).stream(&key).unwrap();
        assert_eq!(s.deployed, None);
        assert_eq!(s.deployed_at(5), None);
        assert_eq!(s.deployed_at(35), Some(1));
        assert_eq!(s.deployed_at(55), Some(2));
        assert_eq!(s.deployed_at(75), None);
        assert_eq!(s.versions[&1].status, crate::Status::Retired);
    }

    #[test]
    fn racing_writers_never_fork_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let log = visionlog_log::open(&format!("file://{}", dir.path().display()), FileLogOptions::default()).unwrap();
        let key = ModelKey::detector("acme", "acme/ice-cream");
        // two registries over one log, each with its own view: both register at version 1
        let codec = codec(dir.path());
        let open = || Registry::open(log.clone(), codec.clone(), "models").unwrap();
        let (a, b) = (open(), open());
        a.stream(&key).unwrap();
        b.stream(&key).unwrap();
        // b appends a record that claims the version a is about to claim: written behind a's
        // back, as a racing process would
        let env = Stored {
            key: key.clone(),
            version: 1,
            command_id: "b1".into(),
            at_ms: 1,
            event: ModelEvent::ModelRegistered { version: 1, artifact: "x".into(), by: "b".into() },
        };
        let value = record::encode(&codec, &env).unwrap();
        log.append("models", 0, &[Record { key: None, headers: vec![], value }]).unwrap();
        // a's command is decided again on the new state and lands as version 2
        let out = a.execute(&key, "a1", &ModelCommand::Register { artifact: "y".into(), by: "a".into() }, 2).unwrap();
        assert!(matches!(out, Outcome::Appended(ModelEvent::ModelRegistered { version: 2, .. }, 2)), "{out:?}");
        // junk on the topic is skipped, not fatal
        log.append("models", 0, &[Record { key: None, headers: vec![], value: b"{junk".to_vec() }]).unwrap();
        let s = b.stream(&key).unwrap();
        assert_eq!(s.versions.len(), 2);
        assert_eq!(s.versions[&1].artifact, "x");
        assert_eq!(s.versions[&2].artifact, "y");
    }
}
