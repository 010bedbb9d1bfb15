//! A schema registry kept in the log itself, as Confluent's registry keeps its `_schemas` topic:
//! one partition of (subject, schema) records, where a schema's id is its rank among the
//! distinct pairs in log order. Every process that reads the topic computes the same ids, so
//! services on one Kafka cluster share ids without an HTTP registry; two processes registering
//! the same new schema at once both get the id of whichever record landed first.
//!
//! The topic must never lose records (ids are positions): visionlog creates its topics with
//! unlimited retention and it must never be compacted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use visionlog_codec::{RegistryError, SchemaRegistry};
use visionlog_log::{EventLog, LogError, Record};

/// How long a read waits for records the topic's end offset says are there.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Known {
    /// Schema texts by id - 1.
    schemas: Vec<String>,
    ids: HashMap<(String, String), u32>,
    /// The next offset of the topic to read.
    next: u64,
}

/// The registry on a topic of the log.
pub struct LogRegistry {
    log: Arc<dyn EventLog>,
    topic: String,
    known: Mutex<Known>,
}

fn unavailable(e: LogError) -> RegistryError {
    RegistryError::Unavailable(format!("schema topic: {e}"))
}

impl LogRegistry {
    /// Opens the registry on `topic` (one partition, created when missing) and reads it.
    pub fn open(log: Arc<dyn EventLog>, topic: &str) -> Result<Self, RegistryError> {
        log.create_topic(topic, 1).map_err(unavailable)?;
        let registry = Self { log, topic: topic.to_owned(), known: Mutex::new(Known::default()) };
        registry.refresh(&mut registry.known.lock().expect("registry lock"))?;
        Ok(registry)
    }

    /// Reads what was registered up to the end of the topic now.
    fn refresh(&self, known: &mut Known) -> Result<(), RegistryError> {
        let end = self.log.end_offset(&self.topic, 0).map_err(unavailable)?;
        self.read_to(known, end)
    }

    /// Reads the topic until `end` (exclusive); records there are waited for, up to a limit.
    fn read_to(&self, known: &mut Known, end: u64) -> Result<(), RegistryError> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while known.next < end {
            let records = self.log.read(&self.topic, 0, known.next, 4096).map_err(unavailable)?;
            if records.is_empty() && Instant::now() > deadline {
                return Err(RegistryError::Unavailable(format!("schema topic: offset {end} not readable")));
            }
            for r in records {
                known.next = r.offset + 1;
                let (Some(subject), Ok(schema)) =
                    (r.key.and_then(|k| String::from_utf8(k).ok()), String::from_utf8(r.value))
                else {
                    // not a registration: it takes no id, in every process alike
                    tracing::warn!(topic = self.topic, offset = r.offset, "skipping a record that is not a schema");
                    continue;
                };
                if let std::collections::hash_map::Entry::Vacant(slot) = known.ids.entry((subject, schema.clone())) {
                    known.schemas.push(schema);
                    slot.insert(known.schemas.len() as u32);
                }
            }
        }
        Ok(())
    }
}

impl SchemaRegistry for LogRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        let mut known = self.known.lock().expect("registry lock");
        if let Some(id) = known.ids.get(&key) {
            return Ok(*id);
        }
        // append without looking first: if another process registered it meanwhile, its record
        // comes first and gives the id; ours is a harmless repeat
        let record =
            Record { key: Some(subject.as_bytes().to_vec()), headers: Vec::new(), value: schema.as_bytes().to_vec() };
        let at = self.log.append(&self.topic, 0, &[record]).map_err(unavailable)?.first;
        self.read_to(&mut known, at + 1)?;
        known
            .ids
            .get(&key)
            .copied()
            .ok_or_else(|| RegistryError::Unavailable("a registration read back differently".into()))
    }

    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let mut known = self.known.lock().expect("registry lock");
        if id == 0 || id as usize > known.schemas.len() {
            self.refresh(&mut known)?;
        }
        id.checked_sub(1).and_then(|i| known.schemas.get(i as usize)).cloned().ok_or(RegistryError::NotFound(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visionlog_log::{FileLog, FileLogOptions, FsyncPolicy};

    #[test]
    fn the_topic_registry_passes_the_registry_suite() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() };
        let log: Arc<dyn EventLog> = Arc::new(FileLog::open(dir.path(), options).unwrap());
        visionlog_codec::conformance::run(&LogRegistry::open(log, "schemas").unwrap(), "topic");
    }

    #[test]
    fn every_reader_of_the_topic_agrees_on_the_ids() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileLogOptions { fsync: FsyncPolicy::Never, ..Default::default() };
        let log: Arc<dyn EventLog> = Arc::new(FileLog::open(dir.path(), options).unwrap());
        let a = LogRegistry::open(log.clone(), "schemas").unwrap();
        let b = LogRegistry::open(log.clone(), "schemas").unwrap();
        assert_eq!(a.register("x-v1", "\"string\"").unwrap(), 1);
        assert_eq!(b.register("y-v1", "\"long\"").unwrap(), 2);
        // b learned of a's schema when it read its own registration back
        assert_eq!(b.register("x-v1", "\"string\"").unwrap(), 1);
        // a had not read b's: it writes a repeat, which keeps b's id
        assert_eq!(a.register("y-v1", "\"long\"").unwrap(), 2);
        assert_eq!(a.schema(2).unwrap(), "\"long\"");
        assert!(matches!(a.schema(3), Err(RegistryError::NotFound(3))));
        assert_eq!(log.end_offset("schemas", 0).unwrap(), 3);
        // known pairs are never written again
        a.register("x-v1", "\"string\"").unwrap();
        b.register("y-v1", "\"long\"").unwrap();
        assert_eq!(log.end_offset("schemas", 0).unwrap(), 3);
        // the same pair written twice (two processes racing) keeps the first id; a stranger
        // record takes none
        log.append(
            "schemas",
            0,
            &[Record { key: Some(b"x-v1".to_vec()), headers: vec![], value: b"\"string\"".to_vec() }],
        )
        .unwrap();
        log.append("schemas", 0, &[Record { key: None, headers: vec![], value: b"junk".to_vec() }]).unwrap();
        let c = LogRegistry::open(log, "schemas").unwrap();
        assert_eq!(c.register("z-v1", "\"int\"").unwrap(), 3);
        assert_eq!(a.schema(3).unwrap(), "\"int\"", "an unknown id is looked up in the topic");
        assert_eq!(c.schema(1).unwrap(), "\"string\"");
    }
}
