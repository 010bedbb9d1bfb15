//! Undoing a faulty batch (seed 003) through the binary: operators annotate twelve tasks, an
//! untrained detector is promoted and six tasks are re-processed with it under one correlation
//! id (the faulty batch); `task undo-batch` reverts those six with compensating events, each
//! gets a new result equal to its result before the batch, the other six are untouched, a
//! second undo finds nothing left to do, and a rebuild of the views equals the live views.

use serde_json::Value;
use std::path::Path;
use visionlog_integration_tests::{last_json, run_until_with, traced_detector, view_rows, visionlog};

const BATCH: &str = "reprocess-2026-12-03-bad-detector";

/// A task's events as `task show --json` prints them.
fn events(data: &Path, task: &str) -> Vec<Value> {
    let out = visionlog(data).args(["task", "show", task, "--json"]).output().unwrap();
    assert!(out.status.success(), "task show: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The objects of each result of a task, in revision order, as (object id, box, class, source).
fn results(events: &[Value]) -> Vec<Vec<(String, String, Value, Value)>> {
    events
        .iter()
        .filter(|e| e["type"] == "TaskResultGenerated")
        .map(|e| {
            let objects = e["event"]["objects"].as_array().unwrap();
            objects
                .iter()
                .map(|o| {
                    (o["object_id"].to_string(), o["bbox"].to_string(), o["class_id"].clone(), o["source"].clone())
                })
                .collect()
        })
        .collect()
}

fn reverted(events: &[Value]) -> bool {
    let Some(i) = events.iter().position(|e| e["type"] == "BatchReverted") else { return false };
    events[i..].iter().any(|e| e["type"] == "TaskResultGenerated")
}

fn undo(data: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    let out = visionlog(data)
        .args(["task", "undo-batch", BATCH, "--reason", "detector v1 was never trained", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "undo-batch: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (summary, tasks) = lines.split_last().unwrap();
    (tasks.to_vec(), summary.clone())
}

#[test]
fn a_faulty_reprocess_batch_is_undone_and_the_views_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // no quality checks (acme's rate is 0 in the tests' tenants file): one result per task,
    // and the batch's results are the bad model's alone
    let tenants = visionlog_integration_tests::write_tenants(dir.path());
    let tenants = tenants.to_str().unwrap();
    let no_checks = [("VISIONLOG_TENANTS", tenants)];
    let run_until = |done: &dyn Fn() -> bool| run_until_with(&data, 2, &no_checks, done);
    // the detection recipe: the faulty detector's boxes make the results by themselves
    let out = visionlog(&data)
        .env("VISIONLOG_TENANTS", tenants)
        .args(["demo", "--tasks", "12", "--no-training", "--recipe", "detection", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_json(&out.stdout)["tasks_completed"], 12);
    let tasks: Vec<String> = (0..12).map(|i| format!("task-{i:06}")).collect();
    let (batch, others) = tasks.split_at(6);
    let before: Vec<_> = tasks.iter().map(|t| results(&events(&data, t))).collect();
    for r in &before {
        assert_eq!(r.len(), 1, "one operator result per task before the batch");
    }

    // the faulty batch: an untrained detector promoted, six tasks re-processed with it
    let which = ["--customer", "acme", "--class-group", "acme/ice-cream"];
    let module = dir.path().join("untrained.pt");
    traced_detector(&[1, 2, 3, 4, 5, 6, 7, 8], &module);
    let out = visionlog(&data).args(["model", "import"]).args(which).arg("--file").arg(&module).output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    let out = visionlog(&data).args(["model", "promote"]).args(which).args(["--version", "1"]).output().unwrap();
    assert!(out.status.success(), "promote: {}", String::from_utf8_lossy(&out.stderr));
    let out = visionlog(&data).args(["task", "reprocess", "--correlation-id", BATCH]).args(batch).output().unwrap();
    assert!(out.status.success(), "reprocess: {}", String::from_utf8_lossy(&out.stderr));
    run_until(&|| batch.iter().all(|t| results(&events(&data, t)).len() >= 2));
    for t in batch {
        let evs = events(&data, t);
        let detected = evs.iter().find(|e| e["type"] == "ObjectsDetected").expect("the bad model ran");
        assert_eq!(detected["correlation_id"], BATCH, "the model's run belongs to the batch");
        assert_ne!(results(&evs)[1], results(&evs)[0], "{t}: the batch changed the result");
    }

    // an operator may not undo batches; a dry run sends nothing
    let out = visionlog(&data)
        .args(["task", "undo-batch", BATCH, "--reason", "x", "--actor", "operator:ann"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only a service"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (planned, summary) = undo(&data, &["--dry-run"]);
    assert_eq!(summary["tasks"], 6, "{summary}");
    assert_eq!(summary["states"]["would_revert"], 6, "{summary}");
    assert!(planned.iter().all(|p| p["reverted_versions"].as_array().unwrap().len() >= 4), "{planned:?}");
    assert!(events(&data, &batch[0]).iter().all(|e| e["type"] != "BatchReverted"));

    // the undo, decided by a running pipeline; a task an operator held then is undone by a rerun
    let mut sent = 0;
    for round in 0.. {
        let (_, summary) = undo(&data, &[]);
        let pending = summary["states"]["sent"].as_u64().unwrap_or(0);
        if pending == 0 {
            break;
        }
        assert!(round < 10, "the undo is still refused after 10 rounds: {summary}");
        sent += pending;
        run_until(&|| true);
    }
    assert!(sent >= 6, "one RevertBatch per task of the batch at least");
    run_until(&|| batch.iter().all(|t| reverted(&events(&data, t))));
    for (i, t) in batch.iter().enumerate() {
        let evs = events(&data, t);
        assert!(reverted(&evs), "{t} was reverted");
        let r = results(&evs);
        assert_eq!(r.last(), Some(&before[i][0]), "{t}: the new result is the one before the batch");
        let revert = evs.iter().find(|e| e["type"] == "BatchReverted").unwrap();
        assert_eq!(revert["event"]["correlation_id"], BATCH);
        assert_eq!(revert["event"]["reason"], "detector v1 was never trained");
        // every event of the batch is named, none of the others
        let of_batch: Vec<&Value> =
            evs.iter().filter(|e| e["correlation_id"] == BATCH).map(|e| &e["version"]).collect();
        let named: Vec<&Value> = revert["event"]["reverted_versions"].as_array().unwrap().iter().collect();
        assert_eq!(named, of_batch, "{t}");
        // the history keeps the batch: nothing was deleted
        assert!(evs.iter().any(|e| e["type"] == "ObjectsDetected"));
    }
    for (i, t) in others.iter().enumerate() {
        let evs = events(&data, t);
        assert!(evs.iter().all(|e| e["type"] != "BatchReverted" && e["type"] != "ReprocessRequested"));
        assert_eq!(results(&evs), before[6 + i], "{t} is untouched");
    }

    // undone once: a second undo has nothing to send
    let (tasks_again, summary) = undo(&data, &[]);
    assert_eq!(summary["skipped"]["AlreadyReverted"], 6, "{summary}");
    assert!(tasks_again.iter().all(|t| t["state"] == "skipped"), "{tasks_again:?}");

    // the views: each re-done task shows its restored objects; a rebuild equals the live views
    let out = visionlog(&data).args(["task", "list", "--json"]).output().unwrap();
    let list: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (i, t) in tasks.iter().enumerate() {
        let s = list.iter().find(|s| s["task_id"] == t.as_str()).unwrap();
        assert_eq!(s["objects"].as_u64(), Some(before[i][0].len() as u64), "{t}: {s}");
        assert_eq!(s["status"], "result_generated", "{t}: {s}");
    }
    let live = view_rows(&data, 1);
    let out = visionlog(&data).args(["report", "rebuild", "--json"]).output().unwrap();
    assert!(out.status.success(), "rebuild: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_json(&out.stdout)["generation"], 2);
    for ((name, live_rows), (_, rebuilt)) in live.iter().zip(&view_rows(&data, 2)) {
        assert_eq!(live_rows, rebuilt, "{name}: the rebuilt view differs from the live one");
    }
}
