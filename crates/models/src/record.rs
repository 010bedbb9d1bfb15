//! A model stream's event as it is stored on the `models` topic: Avro (`schemas/records/
//! model_record.v1.avsc`, registered with every other schema) in the Confluent wire format.
//! Records written before it, JSON with `"format": 1`, are still read (and never written).

use crate::stream::{ModelEvent, ModelKey};
use serde::{Deserialize, Serialize};
use visionlog_codec::{Codec, CodecError};

/// The record's full Avro name.
pub(crate) const MODEL_RECORD: &str = "visionlog.records.ModelRecord";

/// One event of one stream, with where it goes in the stream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stored {
    pub key: ModelKey,
    /// The stream version this event creates.
    pub version: u64,
    pub command_id: String,
    pub at_ms: i64,
    pub event: ModelEvent,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ModelEventType {
    #[default]
    ModelRegistered,
    TrainingRequested,
    ModelTrained,
    ModelBacktested,
    ModelPromoted,
    ModelRetired,
}

/// The Avro record, field for field.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ModelRecord {
    customer: String,
    class_group: String,
    kind: String,
    stream_version: i64,
    command_id: String,
    at_ms: i64,
    event_type: ModelEventType,
    model_version: Option<i32>,
    artifact: Option<String>,
    by: Option<String>,
    reason: Option<String>,
    examples: Option<i64>,
    tasks: Option<i64>,
    snapshot: Option<String>,
    seconds: Option<f64>,
    precision: Option<f64>,
    recall: Option<f64>,
    f1: Option<f64>,
    baseline_version: Option<i32>,
    baseline_f1: Option<f64>,
}

/// Why a record on the topic could not be read as a model event.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// Not Avro of a known schema (nor a legacy JSON record).
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A legacy JSON record that does not parse.
    #[error("legacy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A legacy record of another format.
    #[error("legacy record of format {0}")]
    Format(u32),
    /// The fields its type needs are missing.
    #[error("a {0} record without its {1}")]
    Missing(&'static str, &'static str),
}

/// Encodes an event for the topic.
pub(crate) fn encode(codec: &Codec, s: &Stored) -> Result<Vec<u8>, CodecError> {
    let mut r = ModelRecord {
        customer: s.key.customer.clone(),
        class_group: s.key.class_group.clone(),
        kind: s.key.kind.clone(),
        stream_version: s.version as i64,
        command_id: s.command_id.clone(),
        at_ms: s.at_ms,
        ..ModelRecord::default()
    };
    let v = |n: u32| Some(n as i32);
    match &s.event {
        ModelEvent::ModelRegistered { version, artifact, by } => {
            r.event_type = ModelEventType::ModelRegistered;
            (r.model_version, r.artifact, r.by) = (v(*version), Some(artifact.clone()), Some(by.clone()));
        }
        ModelEvent::TrainingRequested { by, reason } => {
            r.event_type = ModelEventType::TrainingRequested;
            (r.by, r.reason) = (Some(by.clone()), Some(reason.clone()));
        }
        ModelEvent::ModelTrained { version, artifact, examples, tasks, snapshot, seconds } => {
            r.event_type = ModelEventType::ModelTrained;
            (r.model_version, r.artifact, r.snapshot) = (v(*version), Some(artifact.clone()), Some(snapshot.clone()));
            (r.examples, r.tasks, r.seconds) = (Some(*examples as i64), Some(*tasks as i64), Some(*seconds));
        }
        ModelEvent::ModelBacktested { version, tasks, precision, recall, f1, baseline } => {
            r.event_type = ModelEventType::ModelBacktested;
            (r.model_version, r.tasks) = (v(*version), Some(*tasks as i64));
            (r.precision, r.recall, r.f1) = (Some(*precision), Some(*recall), Some(*f1));
            (r.baseline_version, r.baseline_f1) = (baseline.and_then(|b| v(b.0)), baseline.map(|b| b.1));
        }
        ModelEvent::ModelPromoted { version, reason } => {
            r.event_type = ModelEventType::ModelPromoted;
            (r.model_version, r.reason) = (v(*version), Some(reason.clone()));
        }
        ModelEvent::ModelRetired { version, reason } => {
            r.event_type = ModelEventType::ModelRetired;
            (r.model_version, r.reason) = (v(*version), Some(reason.clone()));
        }
    }
    codec.encode_record(MODEL_RECORD, &r)
}

/// Decodes a record of the topic: Avro, or a legacy JSON record.
pub(crate) fn decode(codec: &Codec, bytes: &[u8]) -> Result<Stored, RecordError> {
    if bytes.first() == Some(&b'{') {
        return legacy(bytes);
    }
    let r: ModelRecord = codec.decode_record(MODEL_RECORD, bytes)?;
    let name = |t: ModelEventType| match t {
        ModelEventType::ModelRegistered => "ModelRegistered",
        ModelEventType::TrainingRequested => "TrainingRequested",
        ModelEventType::ModelTrained => "ModelTrained",
        ModelEventType::ModelBacktested => "ModelBacktested",
        ModelEventType::ModelPromoted => "ModelPromoted",
        ModelEventType::ModelRetired => "ModelRetired",
    };
    let t = r.event_type;
    let need = |field: &'static str| RecordError::Missing(name(t), field);
    let version = || r.model_version.map(|v| v.max(0) as u32).ok_or_else(|| need("model_version"));
    let text = |v: &Option<String>, field: &'static str| v.clone().ok_or_else(|| need(field));
    let count = |v: Option<i64>, field: &'static str| v.map(|n| n.max(0) as u64).ok_or_else(|| need(field));
    let real = |v: Option<f64>, field: &'static str| v.ok_or_else(|| need(field));
    let event = match t {
        ModelEventType::ModelRegistered => ModelEvent::ModelRegistered {
            version: version()?,
            artifact: text(&r.artifact, "artifact")?,
            by: text(&r.by, "by")?,
        },
        ModelEventType::TrainingRequested => {
            ModelEvent::TrainingRequested { by: text(&r.by, "by")?, reason: text(&r.reason, "reason")? }
        }
        ModelEventType::ModelTrained => ModelEvent::ModelTrained {
            version: version()?,
            artifact: text(&r.artifact, "artifact")?,
            examples: count(r.examples, "examples")?,
            tasks: count(r.tasks, "tasks")?,
            snapshot: text(&r.snapshot, "snapshot")?,
            seconds: real(r.seconds, "seconds")?,
        },
        ModelEventType::ModelBacktested => ModelEvent::ModelBacktested {
            version: version()?,
            tasks: count(r.tasks, "tasks")?,
            precision: real(r.precision, "precision")?,
            recall: real(r.recall, "recall")?,
            f1: real(r.f1, "f1")?,
            baseline: r.baseline_version.zip(r.baseline_f1).map(|(v, f)| (v.max(0) as u32, f)),
        },
        ModelEventType::ModelPromoted => {
            ModelEvent::ModelPromoted { version: version()?, reason: text(&r.reason, "reason")? }
        }
        ModelEventType::ModelRetired => {
            ModelEvent::ModelRetired { version: version()?, reason: text(&r.reason, "reason")? }
        }
    };
    Ok(Stored {
        key: ModelKey { customer: r.customer, class_group: r.class_group, kind: r.kind },
        version: r.stream_version.max(0) as u64,
        command_id: r.command_id,
        at_ms: r.at_ms,
        event,
    })
}

/// The JSON records written before the Avro schema (`format` 1).
#[derive(Deserialize)]
struct LegacyEnvelope {
    format: u32,
    key: ModelKey,
    version: u64,
    command_id: String,
    at_ms: i64,
    event: ModelEvent,
}

fn legacy(bytes: &[u8]) -> Result<Stored, RecordError> {
    let env: LegacyEnvelope = serde_json::from_slice(bytes)?;
    if env.format != 1 {
        return Err(RecordError::Format(env.format));
    }
    Ok(Stored { key: env.key, version: env.version, command_id: env.command_id, at_ms: env.at_ms, event: env.event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn codec() -> Codec {
        let dir = tempfile::tempdir().unwrap();
        let registry = visionlog_codec::EmbeddedRegistry::open(&dir.path().join("registry.json")).unwrap();
        Codec::new(Arc::new(registry)).unwrap()
    }

    fn every_event() -> Vec<ModelEvent> {
        vec![
            ModelEvent::ModelRegistered { version: 1, artifact: "models/a/v1".into(), by: "admin".into() },
            ModelEvent::TrainingRequested { by: "operator:anna".into(), reason: "new labels".into() },
            ModelEvent::ModelTrained {
                version: 2,
                artifact: "models/a/v2".into(),
                examples: 120,
                tasks: 60,
                snapshot: "abc".into(),
                seconds: 3.5,
            },
            ModelEvent::ModelBacktested {
                version: 2,
                tasks: 40,
                precision: 0.9,
                recall: 0.8,
                f1: 0.85,
                baseline: Some((1, 0.7)),
            },
            ModelEvent::ModelBacktested {
                version: 1,
                tasks: 40,
                precision: 0.5,
                recall: 0.4,
                f1: 0.45,
                baseline: None,
            },
            ModelEvent::ModelPromoted { version: 2, reason: "better".into() },
            ModelEvent::ModelRetired { version: 1, reason: "drift".into() },
        ]
    }

    #[test]
    fn every_model_event_round_trips_through_its_avro_schema() {
        let codec = codec();
        for (i, event) in every_event().into_iter().enumerate() {
            let stored = Stored {
                key: ModelKey::detector("acme", "acme/ice-cream"),
                version: i as u64 + 1,
                command_id: format!("c{i}"),
                at_ms: 1_000 + i as i64,
                event,
            };
            let bytes = encode(&codec, &stored).unwrap();
            assert_eq!(bytes[0], visionlog_codec::MAGIC, "the Confluent wire format");
            assert_eq!(decode(&codec, &bytes).unwrap(), stored);
        }
    }

    #[test]
    fn legacy_json_records_are_still_read_and_junk_is_an_error() {
        let codec = codec();
        let json = br#"{"format":1,"key":{"customer":"acme","class_group":"g","kind":"detector"},"version":1,
            "command_id":"c1","at_ms":5,"event":{"type":"ModelPromoted","version":1,"reason":"first"}}"#;
        let s = decode(&codec, json).unwrap();
        assert_eq!(s.event, ModelEvent::ModelPromoted { version: 1, reason: "first".into() });
        assert!(matches!(decode(&codec, br#"{"format":2}"#), Err(RecordError::Json(_) | RecordError::Format(2))));
        assert!(decode(&codec, b"\0\0\0\0\x09junk").is_err());
        assert!(decode(&codec, b"{junk").is_err());
    }
}
