//! The tiering service as a process: killed between writing a segment and recording it, and
//! SIGKILLed at arbitrary moments, it leaves no duplicate and no gap; the segments it leaves are
//! Avro files a data scientist's reader (fastavro) opens.

use std::path::Path;
use std::time::Duration;
use visionlog_integration_tests::{Leftovers, last_json, python, visionlog};
use visionlog_log::{EventLog, LogRecord};
use visionlog_objects::Objects;
use visionlog_tiering::{Manifest, TieredLog};

fn read_all(log: &dyn EventLog, topic: &str, partition: u32) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let batch = log.read(topic, partition, from, 1000).unwrap();
        let Some(last) = batch.last() else { return out };
        from = last.offset + 1;
        out.extend(batch);
    }
}

fn objects(data: &Path) -> Objects {
    Objects::open(&format!("file://{}", data.join("objects").display())).unwrap()
}

#[test]
fn a_tierer_killed_mid_segment_leaves_no_duplicate_and_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data)
        .args(["--fsync", "never", "demo", "--tasks", "300", "--no-images", "--no-training", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let (topic, partitions, before) = {
        let left = Leftovers::open(&data);
        let before: Vec<_> =
            (0..left.topics.partitions).map(|p| read_all(left.log.as_ref(), &left.topics.events, p)).collect();
        (left.topics.events.clone(), left.topics.partitions, before)
    };
    assert!(before.iter().all(|p| p.len() > 300), "a few hundred events per partition");

    // killed after writing its first segment, before recording it
    let out = visionlog(&data)
        .env("VISIONLOG_TIER_FAIL_AT", "after-segment")
        .args(["tier", "once", "--force", "--segment-records", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fail point stops it");
    // partitions are tiered in parallel: the abort leaves one segment (or a few, of partitions
    // that raced it) and records none
    let mut orphans = Vec::new();
    for p in 0..partitions {
        assert!(Manifest::load(&objects(&data), &topic, p).unwrap().is_empty(), "no segment is recorded");
        for listed in objects(&data).list(&format!("tier/{topic}/{p:05}/segments")).unwrap() {
            orphans.push((p, listed.key));
        }
    }
    assert!(!orphans.is_empty(), "the aborted run wrote a segment first");

    // SIGKILLed while tiering, at a few moments, with another segment length each time
    for (delay_ms, records) in [(150, "37"), (400, "64"), (900, "29")] {
        let mut child = visionlog(&data)
            .args(["tier", "run", "--segment-records", records, "--close-after-s", "0", "--interval-ms", "20"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // a last run finishes the work and drops the hot copy
    let out = visionlog(&data)
        .args(["tier", "once", "--force", "--drop-hot", "--segment-records", "100", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tier once: {}", String::from_utf8_lossy(&out.stderr));
    let ends: Vec<u64> = before.iter().map(|p| p.last().unwrap().offset + 1).collect();
    assert_eq!(last_json(&out.stdout)["hot_starts"], serde_json::json!(ends));

    let objects = objects(&data);
    let left = Leftovers::open(&data);
    let history = TieredLog::new(left.log.clone(), objects.clone(), &[&topic]);
    for p in 0..partitions {
        // Manifest::load refuses overlapping or non-contiguous entries
        let m = Manifest::load(&objects, &topic, p).unwrap();
        assert_eq!((m.start(), m.end()), (Some(0), ends[p as usize]), "partition {p}: the whole range, no gap");
        assert_eq!(m.entries().map(|e| e.count).sum::<u64>(), ends[p as usize], "partition {p}: no duplicate");
        let segments = objects.list(&format!("tier/{topic}/{p:05}/segments")).unwrap();
        assert_eq!(segments.len(), m.len(), "partition {p}: no segment left unrecorded");
        assert!(left.log.read(&topic, p, 0, 10).unwrap().is_empty(), "partition {p}: dropped from the hot log");
        assert_eq!(read_all(&history, &topic, p), before[p as usize], "partition {p}: the same history");
    }
    // the segments the aborted run left were adopted by a later run rather than written again
    for (p, key) in &orphans {
        let first = Manifest::load(&objects, &topic, *p).unwrap().entries().next().cloned().unwrap();
        assert_eq!((first.first, first.last, &first.segment), (0, 99, key), "partition {p}: the orphan adopted");
    }
    let first = Manifest::load(&objects, &topic, orphans[0].0).unwrap().entries().next().cloned().unwrap();

    // fastavro opens a segment and finds its records and metadata
    let path = data.join("objects").join(&first.segment);
    let script = "import fastavro, sys\n\
        with open(sys.argv[1], 'rb') as f:\n\
        \x20   r = fastavro.reader(f)\n\
        \x20   rows = list(r)\n\
        \x20   print(len(rows), r.metadata['visionlog.first_offset'], r.metadata['visionlog.last_offset'], rows[5]['offset'], rows[5]['value'][0])\n";
    let out = std::process::Command::new(python()).arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(out.status.success(), "fastavro: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100 0 99 5 0", "Confluent wire format kept (magic 0)");
}
