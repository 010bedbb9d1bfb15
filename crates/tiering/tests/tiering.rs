//! Tiering and the one history, on the embedded log with local files and with a real S3 server
//! (SeaweedFS on loopback, installed by `scripts/install.sh`).

use std::sync::Arc;
use visionlog_log::{EventLog, FileLog, FileLogOptions, FsyncPolicy, LogError, LogRecord, Record};
use visionlog_objects::{LocalS3, Objects};
use visionlog_tiering::manifest::{entry_key, segment_key};
use visionlog_tiering::{Manifest, Step, TierConfig, TierError, TieredLog, Tierer, segment};

const TOPIC: &str = "events";

fn log(dir: &std::path::Path) -> Arc<dyn EventLog> {
    // small files, so that dropping whole files drops something
    let options = FileLogOptions { fsync: FsyncPolicy::Never, segment_bytes: 16 << 10 };
    let log = FileLog::open(dir, options).unwrap();
    log.create_topic(TOPIC, 2).unwrap();
    Arc::new(log)
}

fn fill(log: &dyn EventLog, partition: u32, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                key: Some(format!("task-{}", i % 13).into_bytes()),
                headers: vec![("vl.kind".into(), b"event".to_vec())],
                value: [&[0u8, 0, 0, 0, 7][..], format!("event {i} of partition {partition}").as_bytes()].concat(),
            })
            .collect();
        log.append(TOPIC, partition, &records).unwrap();
    }
}

fn read_all(log: &dyn EventLog, partition: u32) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let batch = log.read(TOPIC, partition, from, 333).unwrap();
        let Some(last) = batch.last() else { return out };
        from = last.offset + 1;
        out.extend(batch);
    }
}

fn config(segment_records: usize) -> TierConfig {
    TierConfig { segment_records, ..TierConfig::new(TOPIC) }
}

/// Tier, drop, and read the same history back; what it checks on any object store.
fn tier_drop_and_replay(objects: Objects) {
    let dir = tempfile::tempdir().unwrap();
    let hot = log(dir.path());
    fill(hot.as_ref(), 0, 2_500);
    fill(hot.as_ref(), 1, 700);
    let before = [read_all(hot.as_ref(), 0), read_all(hot.as_ref(), 1)];

    let tierer = Tierer::new(hot.clone(), objects.clone(), config(1_000));
    // only closed ranges: two full segments of partition 0, nothing of partition 1 (700 new records)
    let steps = tierer.tier_all(false).unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps.iter().all(|s| matches!(s, Step::Written(_))));
    assert!(tierer.tier_all(false).unwrap().is_empty(), "tiering again writes nothing");
    // forced: the rest
    assert_eq!(tierer.tier_all(true).unwrap().len(), 2);
    let m0 = Manifest::load(&objects, TOPIC, 0).unwrap();
    assert_eq!((m0.len(), m0.end()), (3, 2_500));
    assert_eq!(m0.entries().map(|e| e.count).sum::<u64>(), 2_500);
    assert!(m0.entries().all(|e| e.schema_ids == vec![7] && e.sha256.len() == 64));

    // drop the hot copy of partition 0 below what is tiered; partition 1 keeps its hot copy
    let history = TieredLog::new(hot.clone(), objects.clone(), &[TOPIC]);
    let start = tierer.drop_hot(0).unwrap();
    assert_eq!(start, 2_500, "everything tiered is dropped (the open file is sealed first)");
    assert_eq!(hot.start_offset(TOPIC, 0).unwrap(), 2_500);
    assert!(hot.read(TOPIC, 0, 0, 10).unwrap().is_empty(), "the hot log holds nothing below its start");

    // the one history reads the same records, from anywhere, with reads of any size
    assert_eq!(read_all(&history, 0), before[0]);
    assert_eq!(read_all(&history, 1), before[1]);
    assert_eq!(history.start_offset(TOPIC, 0).unwrap(), 0);
    assert_eq!(history.read(TOPIC, 0, 1_999, 3).unwrap(), before[0][1_999..2_002].to_vec());
    // new events go on after the cold ones
    fill(hot.as_ref(), 0, 10);
    assert_eq!(history.read(TOPIC, 0, 2_500, 100).unwrap().len(), 10);
    assert_eq!(read_all(&history, 0).len(), 2_510);

    // dropping through the history never goes past what is cold
    assert_eq!(history.drop_before(TOPIC, 1, 10_000).unwrap(), 700);
    assert_eq!(read_all(&history, 1), before[1]);
    assert_eq!(history.drop_before(TOPIC, 0, 10_000).unwrap(), 2_500);
}

#[test]
fn tiered_segments_on_local_files_read_as_one_history() {
    let objects_dir = tempfile::tempdir().unwrap();
    tier_drop_and_replay(Objects::open(&format!("file://{}", objects_dir.path().display())).unwrap());
}

#[test]
fn tiered_segments_on_s3_read_as_one_history_and_an_outage_loses_nothing() {
    let mut s3 = LocalS3::start().expect("SeaweedFS (run ./scripts/install.sh)");
    tier_drop_and_replay(s3.objects("history").unwrap());

    // an outage: tiering and dropping fail, the hot log keeps everything; afterwards it goes on
    let dir = tempfile::tempdir().unwrap();
    let hot = log(dir.path());
    fill(hot.as_ref(), 0, 1_500);
    let objects = s3.objects("outage").unwrap();
    let tierer = Tierer::new(hot.clone(), objects.clone(), config(500));
    assert_eq!(tierer.tier_all(false).unwrap().len(), 3);
    fill(hot.as_ref(), 0, 500);
    s3.stop();
    assert!(matches!(tierer.tier_all(false), Err(TierError::Objects(_))));
    assert!(tierer.drop_hot(0).is_err());
    assert_eq!(hot.start_offset(TOPIC, 0).unwrap(), 0, "nothing dropped while the store is down");
    let history = TieredLog::new(hot.clone(), objects.clone(), &[TOPIC]);
    assert_eq!(read_all(&history, 0).len(), 2_000, "the hot log still serves everything");
    s3.restart().unwrap();
    assert_eq!(tierer.tier_all(false).unwrap().len(), 1);
    assert_eq!(tierer.drop_hot(0).unwrap(), 2_000);
    let m = Manifest::load(&objects, TOPIC, 0).unwrap();
    assert_eq!((m.len(), m.end()), (4, 2_000), "no gap, no duplicate");
    assert_eq!(read_all(&history, 0), {
        let mut v: Vec<_> = Vec::new();
        for e in m.entries() {
            v.extend(segment::decode(&e.segment, &objects.get(&e.segment, 1 << 30).unwrap()).unwrap());
        }
        v
    });

    // cold reads while the store is down fail loudly; they never return a short history
    s3.stop();
    let fresh = TieredLog::new(hot.clone(), objects, &[TOPIC]);
    assert!(matches!(fresh.read(TOPIC, 0, 0, 10), Err(LogError::Cold(_))));
    s3.restart().unwrap();
    assert_eq!(fresh.read(TOPIC, 0, 0, 10).unwrap().len(), 10);
}

#[test]
fn a_segment_left_by_a_crash_is_adopted_and_a_foreign_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let objects_dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&format!("file://{}", objects_dir.path().display())).unwrap();
    let hot = log(dir.path());
    fill(hot.as_ref(), 0, 300);
    // a tierer died after writing the segment of 0..=99 and before recording it
    let records = hot.read(TOPIC, 0, 0, 100).unwrap();
    assert!(objects.put_new(&segment_key(TOPIC, 0, 0), segment::encode(TOPIC, 0, &records)).unwrap());
    let tierer = Tierer::new(hot.clone(), objects.clone(), config(150));
    let Step::Adopted(entry) = tierer.tier_partition(0, false).unwrap() else { panic!("adopts") };
    assert_eq!((entry.first, entry.last), (0, 99), "the range that is there, not the configured one");
    let Step::Written(entry) = tierer.tier_partition(0, false).unwrap() else { panic!("writes") };
    assert_eq!((entry.first, entry.last), (100, 249));
    assert!(objects.exists(&entry_key(TOPIC, 0, 100)).unwrap());

    // a segment at the next key that does not hold what the hot log holds: refused, kept hot
    let mut wrong = hot.read(TOPIC, 0, 250, 50).unwrap();
    wrong[3].value = b"not what was written".to_vec();
    objects.put_new(&segment_key(TOPIC, 0, 250), segment::encode(TOPIC, 0, &wrong)).unwrap();
    assert!(matches!(tierer.tier_partition(0, true), Err(TierError::Conflict { .. })));
    assert_eq!(Manifest::load(&objects, TOPIC, 0).unwrap().end(), 250);

    // a recorded segment damaged in the store: the hot copy is not dropped
    let key = segment_key(TOPIC, 0, 100);
    let mut bytes = objects.get(&key, 1 << 30).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x55;
    objects.put(&key, bytes).unwrap();
    assert!(matches!(tierer.drop_hot(0), Err(TierError::Checksum { .. })));
    assert_eq!(hot.start_offset(TOPIC, 0).unwrap(), 0);
}

#[test]
fn two_tierers_racing_record_each_range_once() {
    let dir = tempfile::tempdir().unwrap();
    let objects_dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&format!("file://{}", objects_dir.path().display())).unwrap();
    let hot = log(dir.path());
    fill(hot.as_ref(), 0, 5_000);
    let a = Tierer::new(hot.clone(), objects.clone(), config(400));
    let b = Tierer::new(hot.clone(), objects.clone(), config(400));
    std::thread::scope(|s| {
        s.spawn(|| a.tier_all(true).unwrap());
        s.spawn(|| b.tier_all(true).unwrap());
    });
    let m = Manifest::load(&objects, TOPIC, 0).unwrap();
    assert_eq!(m.end(), 5_000);
    assert_eq!(m.entries().map(|e| e.count).sum::<u64>(), 5_000, "each record in exactly one segment");
    assert_eq!(objects.list(&format!("tier/{TOPIC}/00000/segments")).unwrap().len(), m.len());
}

/// `TieredLog` is an `EventLog` like the others: the log's conformance suite passes through it,
/// every topic of the suite declared tiered (nothing is cold yet: the hot path and the checks of
/// the hot start run on every read).
#[test]
fn the_tiered_log_passes_the_log_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&format!("file://{}", dir.path().join("objects").display())).unwrap();
    let tiered = ["tl-order", "tl-groups", "tl-meta", "tl-wait", "tl-group"];
    let log = TieredLog::new(log(&dir.path().join("hot")), objects, &tiered);
    visionlog_log::conformance::run(Arc::new(log), "tl", true);
}
