//! The segment format: an Avro object container file (zstd blocks) of log records, byte for byte
//! as the log holds them, so the schema id in each value's wire format is kept. Any Avro reader
//! (fastavro, Spark, `avro-tools`) opens a segment; the container's metadata names its topic,
//! partition and offset range.
//!
//! The bytes of two encodings of the same records may differ (the container writes its metadata
//! map in no fixed order): a segment is compared with the hot log by its records, and checked
//! against its manifest entry by the SHA-256 of the bytes stored.

use apache_avro::types::Value;
use apache_avro::{Codec, Reader, Schema, Writer, ZstandardSettings};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use visionlog_log::{LogRecord, intern};

/// The record schema of a segment.
pub const SEGMENT_SCHEMA: &str = r#"{
  "type": "record", "name": "LogRecord", "namespace": "visionlog.tier",
  "doc": "One record of a log partition, as the log holds it (values keep their schema-registry wire format)",
  "fields": [
    {"name": "offset", "type": "long"},
    {"name": "timestamp_ms", "type": "long"},
    {"name": "key", "type": ["null", "bytes"], "default": null},
    {"name": "headers", "type": {"type": "array", "items": {"type": "record", "name": "Header",
      "fields": [{"name": "name", "type": "string"}, {"name": "value", "type": "bytes"}]}}},
    {"name": "value", "type": "bytes"}
  ]
}"#;

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
#[error("segment {key}: {reason}")]
pub struct SegmentError {
    /// The object key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(SEGMENT_SCHEMA).expect("the segment schema parses"))
}

/// Encodes records (contiguous offsets of one partition) as a segment.
pub fn encode(topic: &str, partition: u32, records: &[LogRecord]) -> Vec<u8> {
    let first = records.first().map_or(0, |r| r.offset);
    let last = records.last().map_or(0, |r| r.offset);
    let seed = Sha256::digest(format!("visionlog-tier/{topic}/{partition}/{first}").as_bytes());
    let mut marker = [0u8; 16];
    marker.copy_from_slice(&seed[..16]);
    let mut w = Writer::builder()
        .schema(schema())
        .writer(Vec::with_capacity(records.iter().map(|r| r.value.len() / 4).sum()))
        .codec(Codec::Zstandard(ZstandardSettings::new(3)))
        .block_size(1 << 20)
        .marker(marker)
        .build()
        .expect("a segment writer");
    for (k, v) in [
        ("visionlog.topic", topic.to_owned()),
        ("visionlog.partition", partition.to_string()),
        ("visionlog.first_offset", first.to_string()),
        ("visionlog.last_offset", last.to_string()),
    ] {
        w.add_user_metadata(k.to_owned(), v).expect("metadata before the first record");
    }
    for r in records {
        let headers = r
            .headers
            .iter()
            .map(|(n, v)| {
                Value::Record(vec![
                    ("name".into(), Value::String(n.to_string())),
                    ("value".into(), Value::Bytes(v.clone())),
                ])
            })
            .collect();
        let value = Value::Record(vec![
            ("offset".into(), Value::Long(r.offset as i64)),
            ("timestamp_ms".into(), Value::Long(r.timestamp_ms)),
            (
                "key".into(),
                Value::Union(u32::from(r.key.is_some()), Box::new(r.key.clone().map_or(Value::Null, Value::Bytes))),
            ),
            ("headers".into(), Value::Array(headers)),
            ("value".into(), Value::Bytes(r.value.clone())),
        ]);
        w.append_value_ref(&value).expect("a record matches the segment schema");
    }
    w.into_inner().expect("writing to memory")
}

fn field(fields: &mut [(String, Value)], i: usize) -> Value {
    std::mem::replace(&mut fields[i].1, Value::Null)
}

/// Decodes a segment back into log records.
pub fn decode(key: &str, bytes: &[u8]) -> Result<Vec<LogRecord>, SegmentError> {
    let bad = |reason: String| SegmentError { key: key.to_owned(), reason };
    let reader =
        Reader::builder(bytes).reader_schema(schema()).build().map_err(|e| bad(format!("not a segment: {e}")))?;
    let mut out = Vec::new();
    for value in reader {
        let Value::Record(mut f) = value.map_err(|e| bad(format!("damaged: {e}")))? else {
            return Err(bad("a value that is not a record".into()));
        };
        if f.len() != 5 {
            return Err(bad("a record of another shape".into()));
        }
        let (Value::Long(offset), Value::Long(timestamp_ms)) = (field(&mut f, 0), field(&mut f, 1)) else {
            return Err(bad("offset or timestamp is not a long".into()));
        };
        let key = match field(&mut f, 2) {
            Value::Union(_, b) => match *b {
                Value::Bytes(k) => Some(k),
                _ => None,
            },
            _ => None,
        };
        let Value::Array(hs) = field(&mut f, 3) else { return Err(bad("headers are not an array".into())) };
        let mut headers = Vec::with_capacity(hs.len());
        for h in hs {
            let Value::Record(mut hf) = h else { return Err(bad("a header is not a record".into())) };
            let (Value::String(n), Value::Bytes(v)) = (field(&mut hf, 0), field(&mut hf, 1)) else {
                return Err(bad("a header of another shape".into()));
            };
            headers.push((intern(&n), v));
        }
        let Value::Bytes(value) = field(&mut f, 4) else { return Err(bad("value is not bytes".into())) };
        out.push(LogRecord { offset: offset as u64, timestamp_ms, key, headers, value });
    }
    // contiguous on the embedded log; Kafka may leave holes (control records), never disorder
    if out.windows(2).any(|w| w[1].offset <= w[0].offset) {
        return Err(bad("offsets are not increasing".into()));
    }
    Ok(out)
}

/// The schema-registry ids of the values (Confluent wire format: magic 0, 4-byte id), sorted.
pub fn schema_ids(records: &[LogRecord]) -> Vec<u32> {
    let mut ids: Vec<u32> = records
        .iter()
        .filter(|r| r.value.len() >= 5 && r.value[0] == 0)
        .map(|r| u32::from_be_bytes([r.value[1], r.value[2], r.value[3], r.value[4]]))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64) -> LogRecord {
        LogRecord {
            offset,
            timestamp_ms: 1_700_000_000_000 + offset as i64,
            key: (!offset.is_multiple_of(3)).then(|| format!("task-{}", offset % 7).into_bytes()),
            headers: vec![
                ("vl.kind".into(), b"event".to_vec()),
                ("vl.version".into(), offset.to_string().into_bytes()),
            ],
            value: [&[0u8, 0, 0, 0, (offset % 4) as u8][..], &vec![offset as u8; 50][..]].concat(),
        }
    }

    #[test]
    fn segments_round_trip_and_refuse_damage() {
        let records: Vec<_> = (100..400).map(rec).collect();
        let bytes = encode("events", 3, &records);
        assert_eq!(decode("k", &bytes).unwrap(), records);
        assert_eq!(schema_ids(&records), vec![0, 1, 2, 3]);
        assert!(bytes.len() < records.iter().map(|r| r.value.len()).sum::<usize>() / 2, "compressed");
        let mut damaged = bytes.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0xff;
        assert!(decode("k", &damaged).is_err() || decode("k", &damaged).unwrap() != records);
        assert!(decode("k", b"not avro").is_err());
        assert!(decode("k", &encode("events", 3, &[])).unwrap().is_empty());
    }
}
