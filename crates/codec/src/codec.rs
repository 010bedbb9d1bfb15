//! The codec: typed messages to and from the wire format.

use crate::catalog::{Catalog, SchemaVersion};
use crate::error::CodecError;
use crate::messages::{DeadLetter, Outcome, StoredEvent};
use crate::registry::SchemaRegistry;
use crate::{upcast, wire};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use visionlog_domain::{TaskCommand, TaskEvent};

/// Largest allocation a decoded message may ask for: a hostile length prefix in an Avro body
/// must not make a consumer allocate gigabytes.
const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

const EVENTS: &str = "visionlog.events.";
const COMMANDS: &str = "visionlog.commands.";
const OUTCOME: &str = "visionlog.records.Outcome";
const DEAD_LETTER: &str = "visionlog.records.DeadLetter";
const STORED_EVENT: &str = "visionlog.records.StoredEvent";

/// A schema a message was written with, with its datum writer and reader built once (building
/// them resolves the schema's names, which cost more than encoding a small message).
struct WriterSchema {
    id: u32,
    full_name: String,
    version: u32,
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

impl WriterSchema {
    fn new(id: u32, full_name: String, version: u32, schema: &'static Schema) -> Result<Self, CodecError> {
        let writer = GenericDatumWriter::builder(schema).build()?;
        let reader = GenericDatumReader::builder(schema).build()?;
        Ok(Self { id, full_name, version, schema, writer, reader })
    }
}

/// Encodes and decodes visionlog's messages against a schema registry.
pub struct Codec {
    registry: Arc<dyn SchemaRegistry>,
    /// The current schema of each message, by full name.
    current: HashMap<String, Arc<WriterSchema>>,
    /// Every schema seen, by id (filled from the registry on first sight).
    by_id: RwLock<HashMap<u32, Arc<WriterSchema>>>,
    /// Ids the registry said it does not have, and when: asked again only after
    /// [`UNKNOWN_ID_TTL`], so a stream of junk ids does not make a registry request each (on the
    /// aggregator's single-writer thread), while an id registered later is still learnt.
    unknown: RwLock<HashMap<u32, std::time::Instant>>,
}

/// How long an id the registry does not have is answered from memory.
pub(crate) const UNKNOWN_ID_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The most unknown ids remembered (junk ids are unbounded; memory is not).
const MAX_UNKNOWN_IDS: usize = 10_000;

impl Codec {
    /// Registers every schema of the catalog (old versions first) and returns a codec.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Result<Self, CodecError> {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let catalog = Catalog::compiled()?;
        let mut current = HashMap::new();
        let mut by_id = HashMap::new();
        for v in catalog.all() {
            let id = registry.register(&v.subject(), &v.text)?;
            let w = Arc::new(WriterSchema::new(id, v.full_name.clone(), v.version, &v.schema)?);
            by_id.insert(id, w.clone());
            current.insert(v.full_name.clone(), w);
        }
        Ok(Self { registry, current, by_id: RwLock::new(by_id), unknown: RwLock::new(HashMap::new()) })
    }

    /// Returns the id of the current schema of a message.
    pub fn schema_id(&self, full_name: &str) -> Option<u32> {
        self.current.get(full_name).map(|w| w.id)
    }

    /// Encodes an event.
    pub fn encode_event(&self, event: &TaskEvent) -> Result<Vec<u8>, CodecError> {
        encode_event_dispatch(self, event)
    }

    /// Decodes an event, upcasting an old version.
    pub fn decode_event(&self, bytes: &[u8]) -> Result<TaskEvent, CodecError> {
        let (w, body) = self.writer_of(bytes)?;
        let name = short_name(&w, EVENTS, "event")?;
        decode_event_dispatch(self, &w, name, body)
    }

    /// Encodes a command.
    pub fn encode_command(&self, command: &TaskCommand) -> Result<Vec<u8>, CodecError> {
        encode_command_dispatch(self, command)
    }

    /// Decodes a command.
    pub fn decode_command(&self, bytes: &[u8]) -> Result<TaskCommand, CodecError> {
        let (w, body) = self.writer_of(bytes)?;
        let name = short_name(&w, COMMANDS, "command")?;
        decode_command_dispatch(self, &w, name, body)
    }

    /// Encodes an outcome.
    pub fn encode_outcome(&self, o: &Outcome) -> Result<Vec<u8>, CodecError> {
        self.encode(OUTCOME, o)
    }

    /// Decodes an outcome.
    pub fn decode_outcome(&self, bytes: &[u8]) -> Result<Outcome, CodecError> {
        self.decode_named(OUTCOME, bytes)
    }

    /// Encodes a dead letter.
    pub fn encode_dead_letter(&self, d: &DeadLetter) -> Result<Vec<u8>, CodecError> {
        self.encode(DEAD_LETTER, d)
    }

    /// Decodes a dead letter.
    pub fn decode_dead_letter(&self, bytes: &[u8]) -> Result<DeadLetter, CodecError> {
        self.decode_named(DEAD_LETTER, bytes)
    }

    /// Encodes a stored event.
    pub fn encode_stored_event(&self, e: &StoredEvent) -> Result<Vec<u8>, CodecError> {
        self.encode(STORED_EVENT, e)
    }

    /// Decodes a stored event.
    pub fn decode_stored_event(&self, bytes: &[u8]) -> Result<StoredEvent, CodecError> {
        self.decode_named(STORED_EVENT, bytes)
    }

    /// Encodes a record another crate defines (`visionlog.records.ModelRecord`) with the
    /// current schema of `full_name` from the catalog.
    pub fn encode_record<T: Serialize>(&self, full_name: &str, value: &T) -> Result<Vec<u8>, CodecError> {
        self.encode(full_name, value)
    }

    /// Decodes a record another crate defines; the writer's schema must be a version of `full_name`.
    pub fn decode_record<T: DeserializeOwned>(&self, full_name: &str, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_named(full_name, bytes)
    }

    /// Encodes a value with an explicit schema version (to write history in tests and tools).
    pub fn encode_with(
        &self,
        version: &SchemaVersion,
        value: &apache_avro::types::Value,
    ) -> Result<Vec<u8>, CodecError> {
        let id = self.registry.register(&version.subject(), &version.text)?;
        let body = GenericDatumWriter::builder(&version.schema).build()?.write_value_to_vec(value.clone())?;
        let mut out = wire::header(id, body.len());
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn encode<T: Serialize>(&self, full_name: &str, value: &T) -> Result<Vec<u8>, CodecError> {
        let w = self
            .current
            .get(full_name)
            .ok_or_else(|| CodecError::Schema { name: full_name.to_owned(), reason: "not in the catalog".into() })?;
        let mut out = wire::header(w.id, 64);
        w.writer.write_ser(&mut out, value)?;
        Ok(out)
    }

    fn decode_named<T: DeserializeOwned>(&self, full_name: &str, bytes: &[u8]) -> Result<T, CodecError> {
        let (w, body) = self.writer_of(bytes)?;
        if w.full_name != full_name {
            return Err(CodecError::UnexpectedMessage { expected: full_name.to_owned(), found: w.full_name.clone() });
        }
        self.read(&w, body)
    }

    fn writer_of<'b>(&self, bytes: &'b [u8]) -> Result<(Arc<WriterSchema>, &'b [u8]), CodecError> {
        let (id, body) = wire::split(bytes)?;
        if let Some(w) = self.by_id.read().expect("codec lock").get(&id) {
            return Ok((w.clone(), body));
        }
        if self.unknown.read().expect("codec lock").get(&id).is_some_and(|at| at.elapsed() < UNKNOWN_ID_TTL) {
            return Err(CodecError::UnknownSchemaId(id));
        }
        let text = match self.registry.schema(id) {
            Ok(text) => text,
            Err(crate::RegistryError::NotFound(_)) => {
                let mut unknown = self.unknown.write().expect("codec lock");
                if unknown.len() >= MAX_UNKNOWN_IDS {
                    unknown.retain(|_, at| at.elapsed() < UNKNOWN_ID_TTL);
                    if unknown.len() >= MAX_UNKNOWN_IDS {
                        unknown.clear();
                    }
                }
                unknown.insert(id, std::time::Instant::now());
                return Err(CodecError::UnknownSchemaId(id));
            }
            // unavailable: not remembered, the caller retries (`CodecError::is_transient`)
            Err(e) => return Err(e.into()),
        };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CodecError::Schema { name: id.to_string(), reason: e.to_string() })?;
        let schema =
            Schema::parse(&json).map_err(|e| CodecError::Schema { name: id.to_string(), reason: e.to_string() })?;
        let full_name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
        let version = json.get("visionlog.version").and_then(serde_json::Value::as_u64).unwrap_or(1) as u32;
        // a schema from the registry that this build does not know: kept for the life of the
        // process like the compiled ones (ids are few; unknown ids never get here)
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let w = Arc::new(WriterSchema::new(id, full_name, version, schema)?);
        self.by_id.write().expect("codec lock").insert(id, w.clone());
        Ok((w, body))
    }

    /// Reads a body written with `w` as the current version of its message.
    fn read<T: DeserializeOwned>(&self, w: &WriterSchema, mut body: &[u8]) -> Result<T, CodecError> {
        let current = self.current.get(&w.full_name).ok_or_else(|| CodecError::UnexpectedMessage {
            expected: "a known message".into(),
            found: w.full_name.clone(),
        })?;
        let value = if current.id == w.id {
            w.reader.read_deser::<T>(&mut body)?
        } else {
            let value = w.reader.read_value(&mut body)?;
            let value = upcast::run(&w.full_name, w.version, current.version, value)
                .map_err(|(from, reason)| CodecError::Upcast { name: w.full_name.clone(), from, reason })?;
            let value = value.resolve(current.schema)?;
            apache_avro::from_value::<T>(&value)?
        };
        if !body.is_empty() {
            return Err(CodecError::Malformed(format!("{} bytes after the end of the avro body", body.len())));
        }
        Ok(value)
    }
}

fn short_name<'w>(w: &'w WriterSchema, prefix: &str, kind: &str) -> Result<&'w str, CodecError> {
    w.full_name
        .strip_prefix(prefix)
        .ok_or_else(|| CodecError::UnexpectedMessage { expected: kind.to_owned(), found: w.full_name.clone() })
}

macro_rules! dispatch {
    ($encode:ident, $decode:ident, $enum:ident, $ns:literal, [$($variant:ident),* $(,)?]) => {
        fn $encode(codec: &Codec, value: &$enum) -> Result<Vec<u8>, CodecError> {
            match value {
                $($enum::$variant(x) => codec.encode(concat!($ns, stringify!($variant)), x),)*
            }
        }

        fn $decode(codec: &Codec, w: &WriterSchema, name: &str, body: &[u8]) -> Result<$enum, CodecError> {
            match name {
                $(stringify!($variant) => Ok($enum::$variant(codec.read(w, body)?)),)*
                other => Err(CodecError::UnexpectedMessage { expected: stringify!($enum).into(), found: other.to_owned() }),
            }
        }
    };
}

dispatch!(
    encode_event_dispatch,
    decode_event_dispatch,
    TaskEvent,
    "visionlog.events.",
    [
        TaskCreated,
        DetectionRequested,
        ObjectsDetected,
        RecognitionRequested,
        ObjectsRecognized,
        ModelNotFound,
        AssistanceRequested,
        OperatorAssigned,
        OperatorReleased,
        ObjectsAdded,
        ObjectsRemoved,
        ObjectsLabeled,
        OperatorFinished,
        TaskResultGenerated,
        QualityCheckRequested,
        TaskReported,
        ReportFailed,
        RedeliveryRequested,
        TaskCancelled,
        ReprocessRequested,
        BatchReverted,
    ]
);

dispatch!(
    encode_command_dispatch,
    decode_command_dispatch,
    TaskCommand,
    "visionlog.commands.",
    [
        CreateTask,
        RequestDetection,
        RecordDetections,
        RecordRecognitions,
        RecordModelNotFound,
        RequestAssistance,
        AssignOperator,
        ReleaseOperator,
        AddObjects,
        RemoveObjects,
        LabelObjects,
        FinishOperatorSession,
        GenerateResult,
        RequestQualityCheck,
        RecordReport,
        RedeliverResult,
        CancelTask,
        Reprocess,
        RevertBatch,
    ]
);
