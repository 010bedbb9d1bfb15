//! GDPR erasure by crypto-shredding, end to end: tasks carry personal data sealed at the edge;
//! it is readable through `task show` until `subject shred`, and afterwards unreadable; no file
//! of the data directory (hot log, cold segments, read store, exports) ever holds the plaintext;
//! the history still replays and the views rebuild.

use std::path::Path;
use visionlog_integration_tests::{Leftovers, last_json, visionlog};

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

fn show(data: &Path, task: &str) -> serde_json::Value {
    let out = visionlog(data).args(["task", "show", task, "--json"]).output().unwrap();
    assert!(out.status.success(), "task show: {}", String::from_utf8_lossy(&out.stderr));
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap().to_owned();
    serde_json::from_str::<serde_json::Value>(&first).unwrap()["event"]["personal"].clone()
}

fn ok(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = visionlog(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    last_json(&out.stdout)
}

#[test]
fn a_shredded_subject_is_unreadable_everywhere_and_the_history_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = ok(
        &data,
        &["--fsync", "never", "demo", "--tasks", "120", "--no-images", "--no-training", "--personal-data", "--json"],
    );
    assert_eq!(demo["tasks_completed"], 120);
    // part of the history cold (segments of 100 records), all of it still hot too; an export
    ok(&data, &["tier", "once", "--segment-records", "100", "--close-after-s", "100000", "--json"]);
    ok(&data, &["export", "once", "--json"]);
    assert!(!files_containing(&data.join("objects/tier"), "avro.codec").is_empty(), "cold segments exist");

    // task 13 belongs to subject-3, task 14 to subject-4 (see `demo --personal-data`)
    let plaintexts = ["manager.3@store-3.example", "Store manager 3", "+44 20 7946 0903", "Shelf photos of store 3"];
    assert_eq!(show(&data, "task-000013")["contact_email"], plaintexts[0], "readable before the shredding");
    for p in plaintexts.iter().chain(&["manager.4@store-4.example"]) {
        assert!(files_containing(&data, p).is_empty(), "{p:?} is stored in the clear");
    }

    let record =
        ok(&data, &["subject", "shred", "subject-3", "--reason", "erasure request", "--actor", "operator:dpo"]);
    assert_eq!(record["keys_destroyed"], 1);

    // unreadable wherever it is read from; the other subjects untouched
    for task in ["task-000003", "task-000013", "task-000113"] {
        let personal = show(&data, task);
        assert_eq!(personal["subject"], "subject-3");
        assert!(personal["erased"].is_string(), "{task}: {personal}");
    }
    assert_eq!(show(&data, "task-000014")["contact_email"], "manager.4@store-4.example");
    ok(&data, &["export", "once", "--json"]);
    for p in plaintexts {
        assert!(files_containing(&data, p).is_empty(), "{p:?} is stored in the clear");
    }

    // the history replays: a task's state, a rebuild of every view, an audit with no gap
    let state = visionlog(&data).args(["task", "state", "task-000013"]).output().unwrap();
    assert!(state.status.success());
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert!(state["version"].as_u64().unwrap() >= 7, "{state}");
    let rebuilt = ok(&data, &["report", "rebuild", "--json"]);
    assert!(rebuilt["events"].as_u64().unwrap() >= 120 * 7);
    let summaries = visionlog(&data).args(["task", "list", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&summaries.stdout).lines().count(), 120);

    // the fact is recorded: in the key store and on the privacy topic
    assert_eq!(ok(&data, &["subject", "show", "subject-3"])["shredded"]["reason"], "erasure request");
    assert!(ok(&data, &["subject", "show", "subject-4"])["shredded"].is_null());
    let left = Leftovers::open(&data);
    let facts = left.log.read(&left.topics.privacy, 0, 0, 10).unwrap();
    assert_eq!(facts.len(), 1);
    let fact: serde_json::Value = serde_json::from_slice(&facts[0].value).unwrap();
    assert_eq!(
        (fact["type"].as_str(), fact["record"]["subject"].as_str()),
        (Some("SubjectShredded"), Some("subject-3"))
    );
}
