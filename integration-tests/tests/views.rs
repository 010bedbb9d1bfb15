//! The read models end to end: a 10,000-task demo, the task manager's commands on a running
//! pipeline, the whole history tiered to S3 (SeaweedFS on loopback) and dropped from the hot
//! log, and a rebuild of every view from the cold history that gives exactly the views built
//! live.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use visionlog_integration_tests::{last_json, terminate, view_rows};
use visionlog_objects::LocalS3;
use visionlog_store::Row;

/// `visionlog` on a data directory, with the object store on S3.
fn visionlog(data: &Path, s3: &LocalS3) -> Command {
    visionlog_integration_tests::visionlog_on_s3(data, s3, "views")
}

fn report(data: &Path, s3: &LocalS3, args: &[&str]) -> Vec<serde_json::Value> {
    let out = visionlog(data, s3).arg("report").args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "report {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_rebuild_of_a_10000_task_history_from_cold_segments_gives_the_live_views() {
    let s3 = LocalS3::start().expect("SeaweedFS (run ./scripts/install.sh)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data, &s3)
        .args(["--fsync", "never", "demo", "--tasks", "10000", "--no-images", "--timeout-s", "1800", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_json(&out.stdout)["tasks_completed"], 10000);

    // the task manager's commands, sent while the pipeline is down (the embedded log and store
    // belong to one process at a time), then decided and projected by a running pipeline; a
    // quality check that corrected an operator's result already made a second result of some
    // tasks, so each re-done task is counted against its own results before
    let results = |tasks: &[&str]| -> Vec<u64> {
        let all = report(&data, &s3, &["tasks", "--limit", "0"]);
        let of = |id: &str| all.iter().find(|t| t["task_id"] == id).map_or(0, |t| t["results"].as_u64().unwrap());
        tasks.iter().map(|id| of(id)).collect()
    };
    let redo = [("resend", "task-000007"), ("reprocess", "task-000042"), ("resend", "task-009999")];
    let ids: Vec<&str> = redo.iter().map(|(_, task)| *task).collect();
    let before = results(&ids);
    let sessions_before = sessions(&data, &s3);
    for (command, task) in redo {
        let out = visionlog(&data, &s3).args(["task", command, task]).output().unwrap();
        assert!(out.status.success(), "task {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let want: Vec<u64> = before.iter().map(|n| n + 1).collect();
    let mut now = before.clone();
    // (each run is given longer: opening a 10,000-task data directory alone takes seconds)
    for i in 0..12 {
        let mut run = visionlog(&data, &s3).args(["--fsync", "never", "run", "--operators", "3"]).spawn().unwrap();
        std::thread::sleep(Duration::from_secs(5 + 2 * i));
        assert!(terminate(&mut run, Duration::from_secs(30)).success());
        now = results(&ids);
        if now.iter().zip(&want).all(|(n, w)| n >= w) {
            break;
        }
    }
    // (a re-processed task goes to an operator, whose result may be checked and corrected: a
    // result more)
    let done = now.iter().zip(&want).all(|(n, w)| n >= w);
    assert!(done, "the re-sent and re-processed tasks got a result more each ({ids:?}): {before:?} -> {now:?}");
    // sessions: one more per re-done task (and any quality check the demo left waiting)
    assert!(sessions(&data, &s3) >= sessions_before + 3);

    let live = view_rows(&data, 1);
    let summaries = &live.iter().find(|(t, _)| *t == "task_summary").unwrap().1;
    assert_eq!(summaries.len(), 10_000);

    // the whole history goes cold: tiered to S3, then dropped from the hot log
    let ends = hot_ends(&data);
    let out = visionlog(&data, &s3)
        .args(["tier", "once", "--force", "--drop-hot", "--segment-records", "5000", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tier once: {}", String::from_utf8_lossy(&out.stderr));
    let tiered = last_json(&out.stdout);
    // (the tiering service of `visionlog run` above has tiered the closed ranges already)
    assert!(tiered["records"].as_u64().unwrap() > 0, "{tiered}");
    assert_eq!(tiered["hot_starts"], serde_json::json!(ends), "nothing is left hot");
    let out = visionlog(&data, &s3).args(["tier", "status", "--json"]).output().unwrap();
    for (p, line) in String::from_utf8_lossy(&out.stdout).lines().enumerate() {
        let s: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (s["hot_start"].as_u64(), s["tiered_end"].as_u64(), s["backlog"].as_u64()),
            (Some(ends[p]), Some(ends[p]), Some(0))
        );
    }
    // time travel from the cold history: a task's first state, and its state before it existed
    let out = visionlog(&data, &s3).args(["task", "state", "task-000042", "--version", "1"]).output().unwrap();
    assert!(out.status.success(), "task state: {}", String::from_utf8_lossy(&out.stderr));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["version"], 1);
    let before = (first["recorded_at_ms"].as_i64().unwrap() - 1).to_string();
    let out = visionlog(&data, &s3).args(["task", "state", "task-000042", "--at-ms", &before]).output().unwrap();
    assert!(!out.status.success(), "no state before the task was created");
    let out = visionlog(&data, &s3).args(["task", "show", "task-000042", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 4, "its events, read from cold");

    let out = visionlog(&data, &s3).args(["report", "rebuild", "--json"]).output().unwrap();
    assert!(out.status.success(), "rebuild: {}", String::from_utf8_lossy(&out.stderr));
    let rebuilt = last_json(&out.stdout);
    assert_eq!((rebuilt["generation"].as_u64(), rebuilt["replaced"].as_u64()), (Some(2), Some(1)));
    let generations =
        String::from_utf8(visionlog(&data, &s3).args(["report", "generations"]).output().unwrap().stdout).unwrap();
    let generations: serde_json::Value = serde_json::from_str(generations.trim()).unwrap();
    assert_eq!((generations["serving"].as_u64(), generations["previous"].as_u64()), (Some(2), Some(1)));

    let again = view_rows(&data, 2);
    for ((table, live_rows), (_, rebuilt_rows)) in live.iter().zip(&again) {
        assert_eq!(live_rows.len(), rebuilt_rows.len(), "{table}: row counts");
        for (a, b) in live_rows.iter().zip(rebuilt_rows) {
            assert_eq!(a, b, "{table}: the rebuilt row differs from the live one");
        }
    }
    // readers now read generation 2: the same answers
    let billing = report(&data, &s3, &["billing", "--customer", "acme", "--month", &billing_month(summaries)]);
    let tasks: u64 = billing.iter().map(|l| l["tasks"].as_u64().unwrap()).sum();
    assert_eq!(tasks, 10_000);
}

/// The operator sessions opened, over every operator.
fn sessions(data: &Path, s3: &LocalS3) -> u64 {
    report(data, s3, &["operators"]).iter().map(|o| o["sessions"].as_u64().unwrap()).sum()
}

/// The end offset of each partition of the events topic.
fn hot_ends(data: &Path) -> Vec<u64> {
    let left = visionlog_integration_tests::Leftovers::open(data);
    (0..left.topics.partitions).map(|p| left.log.end_offset(&left.topics.events, p).unwrap()).collect()
}

/// The month of the first task's creation.
fn billing_month(summaries: &[Row]) -> String {
    let s: visionlog_views::TaskSummary = visionlog_views::views::decode(&summaries[0].value).unwrap();
    visionlog_views::month(s.created_at_ms)
}
