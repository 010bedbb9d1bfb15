//! The embedded log: conformance, persistence, torn tails, corruption, segments.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use visionlog_log::*;

fn open(dir: &Path) -> FileLog {
    FileLog::open(dir, FileLogOptions::default()).unwrap()
}

fn rec(i: usize) -> Record {
    Record {
        key: Some(format!("task-{i}").into_bytes()),
        headers: vec![("i".into(), i.to_string().into_bytes())],
        value: vec![i as u8; 100 + i % 50],
    }
}

fn segment_files(dir: &Path, topic: &str, p: u32) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("topics").join(topic).join(p.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(std::sync::Arc::new(open(dir.path())), "t", true);
}

#[test]
fn survives_reopen_with_groups_and_topics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic("events", 2).unwrap();
        for i in 0..100 {
            log.append("events", (i % 2) as u32, &[rec(i)]).unwrap();
        }
        log.commit("g", "events", 1, &Position::at(42)).unwrap();
    }
    let log = open(dir.path());
    assert_eq!(log.partitions("events").unwrap(), 2);
    assert_eq!(log.end_offset("events", 0).unwrap(), 50);
    assert_eq!(log.committed("g", "events", 1).unwrap(), Some(Position::at(42)));
    let got = log.read("events", 1, 0, 1000).unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got[49].value, rec(99).value);
    assert_eq!(log.append("events", 1, &[rec(1)]).unwrap().first, 50);
}

#[test]
fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    assert!(matches!(FileLog::open(dir.path(), FileLogOptions::default()), Err(LogError::Locked(_))));
}

#[test]
fn a_torn_tail_is_cut_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic("t", 1).unwrap();
        log.append("t", 0, &[rec(0), rec(1)]).unwrap();
        log.append("t", 0, &[rec(2), rec(3), rec(4)]).unwrap();
    }
    let seg = &segment_files(dir.path(), "t", 0)[0];
    let len = std::fs::metadata(seg).unwrap().len();
    // a crash in the middle of the second batch's write: keep a prefix of it
    for cut in [len - 1, len - 50, len - 200] {
        let copy = tempfile::tempdir().unwrap();
        copy_log(dir.path(), copy.path());
        let seg2 = &segment_files(copy.path(), "t", 0)[0];
        std::fs::OpenOptions::new().write(true).open(seg2).unwrap().set_len(cut).unwrap();
        let log = open(copy.path());
        assert_eq!(log.end_offset("t", 0).unwrap(), 2, "cut at {cut}");
        assert_eq!(log.read("t", 0, 0, 10).unwrap().len(), 2);
        // and appends go on from there
        assert_eq!(log.append("t", 0, &[rec(9)]).unwrap().first, 2);
    }
    // a torn write that left garbage (not a prefix) in the last frame is cut too
    let mut f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    f.seek(SeekFrom::Start(len - 10)).unwrap();
    f.write_all(&[0xAB; 10]).unwrap();
    drop(f);
    let log = open(dir.path());
    assert_eq!(log.end_offset("t", 0).unwrap(), 2);
}

#[test]
fn corruption_before_the_tail_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic("t", 1).unwrap();
        for i in 0..10 {
            log.append("t", 0, &[rec(i)]).unwrap();
        }
    }
    let seg = &segment_files(dir.path(), "t", 0)[0];
    let mut f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    f.seek(SeekFrom::Start(40)).unwrap();
    f.write_all(&[0x55; 4]).unwrap();
    drop(f);
    match FileLog::open(dir.path(), FileLogOptions::default()) {
        Err(LogError::Corrupt { position, .. }) => assert_eq!(position, 0),
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption"),
    }
}

#[test]
fn corruption_found_while_reading_a_sealed_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileLogOptions { segment_bytes: 4096, ..FileLogOptions::default() };
    {
        let log = FileLog::open(dir.path(), options.clone()).unwrap();
        log.create_topic("t", 1).unwrap();
        for i in 0..200 {
            log.append("t", 0, &[rec(i)]).unwrap();
        }
    }
    let first = &segment_files(dir.path(), "t", 0)[0];
    let mut f = std::fs::OpenOptions::new().write(true).open(first).unwrap();
    f.seek(SeekFrom::Start(200)).unwrap();
    f.write_all(&[0x55; 8]).unwrap();
    drop(f);
    // sealed segments are not fully verified on open (that would cost O(history)), so the bad
    // frame is found when read, as an error
    let log = FileLog::open(dir.path(), options).unwrap();
    assert!(matches!(log.read("t", 0, 0, 1000), Err(LogError::Corrupt { .. })));
}

#[test]
fn segments_roll_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileLogOptions { segment_bytes: 4096, fsync: FsyncPolicy::Never };
    {
        let log = FileLog::open(dir.path(), options.clone()).unwrap();
        log.create_topic("t", 1).unwrap();
        for i in 0..500 {
            log.append("t", 0, &[rec(i), rec(i + 1)]).unwrap();
        }
    }
    assert!(segment_files(dir.path(), "t", 0).len() > 10);
    let log = FileLog::open(dir.path(), options).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 1000);
    for from in [0u64, 1, 37, 499, 998, 999] {
        let got = log.read("t", 0, from, 300).unwrap();
        assert_eq!(got[0].offset, from);
        assert!(got.windows(2).all(|w| w[1].offset == w[0].offset + 1));
        assert_eq!(got.len(), 300.min(1000 - from as usize));
    }
}

#[test]
fn oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", 1).unwrap();
    let big = Record { key: None, headers: vec![], value: vec![0; 65 * 1024 * 1024] };
    assert!(matches!(log.append("t", 0, &[big]), Err(LogError::BatchTooLarge { .. })));
    assert_eq!(log.append("t", 0, &[rec(1)]).unwrap().first, 0);
}

#[test]
fn urls_choose_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let log = visionlog_log::open(&url, FileLogOptions::default()).unwrap();
    log.create_topic("t", 1).unwrap();
    assert!(visionlog_log::open("ftp://x", FileLogOptions::default()).is_err());
    assert_eq!("250ms".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Interval(std::time::Duration::from_millis(250)));
}

fn copy_log(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        if rel == Path::new("LOCK") {
            continue;
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, dest).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn retention_drops_whole_segments_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileLogOptions { segment_bytes: 4096, ..FileLogOptions::default() };
    let log = FileLog::open(dir.path(), options.clone()).unwrap();
    log.create_topic("t", 1).unwrap();
    for i in 0..200 {
        log.append("t", 0, &[rec(i)]).unwrap();
    }
    assert_eq!(log.start_offset("t", 0).unwrap(), 0);
    let segments = segment_files(dir.path(), "t", 0).len();
    assert!(segments > 4, "{segments} segments");

    // dropping below 100 keeps the segment holding 100: the start is its base, at most 100
    let start = log.drop_before("t", 0, 100).unwrap();
    assert!(start <= 100 && start > 0, "start {start}");
    assert_eq!(log.start_offset("t", 0).unwrap(), start);
    let read = log.read("t", 0, 0, 10).unwrap();
    assert_eq!(read[0].offset, start, "a read below the start begins at the start");
    assert_eq!(log.read("t", 0, 150, 1).unwrap()[0], log.read("t", 0, start, 200).unwrap()[(150 - start) as usize]);

    // everything can go: the active segment is sealed and a new one starts at the end
    assert_eq!(log.drop_before("t", 0, 200).unwrap(), 200);
    assert!(log.read("t", 0, 0, 10).unwrap().is_empty());
    assert_eq!(log.end_offset("t", 0).unwrap(), 200);
    log.append("t", 0, &[rec(200)]).unwrap();
    drop(log);

    let log = FileLog::open(dir.path(), options).unwrap();
    assert_eq!((log.start_offset("t", 0).unwrap(), log.end_offset("t", 0).unwrap()), (200, 201));
    assert_eq!(log.read("t", 0, 0, 10).unwrap()[0].value, rec(200).value);
}
