//! The behaviour every [`EventLog`] backend must show, as functions a backend's tests call.
//!
//! The embedded log runs them in its unit tests; the Kafka backend runs the same ones against a
//! real broker.

use crate::{Appended, EventLog, Position, Record};
use std::time::Duration;

fn record(key: &str, value: &str) -> Record {
    Record {
        key: Some(key.as_bytes().to_vec()),
        headers: vec![("h".into(), value.as_bytes().to_vec()), ("empty".into(), Vec::new())],
        value: value.as_bytes().to_vec(),
    }
}

/// Appends get contiguous offsets from 0 and read back byte for byte, keys and headers included.
pub fn appends_read_back_in_order(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 3).unwrap();
    log.create_topic(topic, 3).unwrap();
    assert_eq!(log.partitions(topic).unwrap(), 3);
    assert!(log.create_topic(topic, 4).is_err());
    let first = log.append(topic, 1, &[record("a", "1"), record("b", "2")]).unwrap();
    assert_eq!(first, Appended { first: 0, last: 1, count: 2 });
    let second = log.append(topic, 1, &[Record { key: None, headers: vec![], value: b"3".to_vec() }]).unwrap();
    assert_eq!(second.first, 2);
    assert_eq!(log.end_offset(topic, 1).unwrap(), 3);
    assert_eq!(log.end_offset(topic, 0).unwrap(), 0);
    let all = log.read(topic, 1, 0, 100).unwrap();
    assert_eq!(all.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(all[0].key.as_deref(), Some(&b"a"[..]));
    assert_eq!(all[1].headers, record("b", "2").headers);
    assert_eq!(all[2].key, None);
    assert_eq!(all[2].value, b"3");
    assert_eq!(log.read(topic, 1, 1, 1).unwrap().len(), 1);
    assert_eq!(log.read(topic, 1, 1, 1).unwrap()[0].offset, 1);
    assert!(log.read(topic, 1, 3, 10).unwrap().is_empty());
    assert!(log.read(topic, 7, 0, 10).is_err());
    assert!(log.read("no-such-topic", 0, 0, 10).is_err());
}

/// Consumer group positions are stored per group and partition.
pub fn group_offsets_are_kept(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 2).unwrap();
    assert_eq!(log.committed("g1", topic, 0).unwrap(), None);
    log.commit("g1", topic, 0, &Position::at(5)).unwrap();
    log.commit("g2", topic, 0, &Position::at(7)).unwrap();
    assert_eq!(log.committed("g1", topic, 0).unwrap().map(|p| p.offset), Some(5));
    assert_eq!(log.committed("g2", topic, 0).unwrap().map(|p| p.offset), Some(7));
    assert_eq!(log.committed("g1", topic, 1).unwrap(), None);
}

/// A position's metadata comes back with it (the journal keeps the owner epoch there).
pub fn group_offset_metadata_is_kept(log: &dyn EventLog, topic: &str) {
    log.create_topic(topic, 1).unwrap();
    let with_meta = Position { offset: 7, metadata: "epoch=3".into() };
    log.commit("g3", topic, 0, &with_meta).unwrap();
    assert_eq!(log.committed("g3", topic, 0).unwrap(), Some(with_meta));
}

/// A reader waiting for the next offset wakes when it is appended, and times out otherwise.
pub fn waiters_wake_on_append(log: &'static dyn EventLog, topic: &'static str) {
    log.create_topic(topic, 1).unwrap();
    assert!(!log.wait_for(topic, 0, 0, Duration::from_millis(20)).unwrap());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        log.append(topic, 0, &[record("k", "v")]).unwrap();
    });
    assert!(log.wait_for(topic, 0, 0, Duration::from_secs(10)).unwrap());
    writer.join().unwrap();
}
