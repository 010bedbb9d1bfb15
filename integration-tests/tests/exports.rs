//! Parquet exports read as a data scientist would: a training demo whose object store is S3
//! (SeaweedFS on loopback), exported now and as of an earlier instant, then read back from S3
//! with pyarrow and duckdb (`integration-tests/datasci/read_exports.py`); the row counts and
//! sample values must match what the log says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use visionlog_domain::{TaskEvent, TaskState, evolve};
use visionlog_integration_tests::{Leftovers, last_json, python};
use visionlog_journal::accepted;
use visionlog_objects::LocalS3;

fn visionlog(data: &Path, s3: &LocalS3) -> Command {
    visionlog_integration_tests::visionlog_on_s3(data, s3, "pipeline")
}

/// Every accepted event of the history: (recorded at, task, event).
fn history(data: &Path) -> Vec<(i64, String, TaskEvent)> {
    let left = Leftovers::open(data);
    let mut out = Vec::new();
    for p in 0..left.topics.partitions {
        for e in accepted(left.log.as_ref(), &left.topics.events, p, 0..u64::MAX) {
            let e = e.unwrap();
            let event = left.codec.decode_event(&e.payload).unwrap();
            out.push((e.envelope.recorded_at_ms, e.envelope.task_id, event));
        }
    }
    out
}

/// What the exports must hold as of `as_of`, computed here from the log.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    results: u64,
    first_result_objects: BTreeMap<String, u64>,
    predictions: u64,
    predictions_per_model: BTreeMap<String, u64>,
    sessions: u64,
    examples_per_task: BTreeMap<String, u64>,
}

fn expected(history: &[(i64, String, TaskEvent)], as_of: i64) -> Expected {
    let mut x = Expected::default();
    let mut states: BTreeMap<String, TaskState> = BTreeMap::new();
    for (_, task, event) in history.iter().filter(|(at, ..)| *at <= as_of) {
        match event {
            TaskEvent::TaskResultGenerated(r) => {
                x.results += 1;
                if r.revision == 1 {
                    x.first_result_objects.insert(task.clone(), r.objects.len() as u64);
                }
            }
            TaskEvent::ObjectsDetected(d) => {
                x.predictions += d.objects.len() as u64;
                *x.predictions_per_model.entry(format!("{}:{}", d.model.model_id, d.model.version)).or_default() +=
                    d.objects.len() as u64;
            }
            TaskEvent::ObjectsRecognized(r) => {
                x.predictions += r.objects.len() as u64;
                *x.predictions_per_model.entry(format!("{}:{}", r.model.model_id, r.model.version)).or_default() +=
                    r.objects.len() as u64;
            }
            TaskEvent::OperatorAssigned(_) => x.sessions += 1,
            _ => {}
        }
        let state = states.remove(task).flatten();
        states.insert(task.clone(), evolve(state, event));
    }
    for (task, state) in states {
        let Some(t) = state else { continue };
        if t.result_revision > 0 && t.operator_touched {
            let n = t.objects.values().filter(|o| o.class_id.is_some()).count() as u64;
            if n > 0 {
                x.examples_per_task.insert(task, n);
            }
        }
    }
    x
}

fn read_as_data_scientist(s3: &LocalS3, snapshot_url: &str) -> serde_json::Value {
    let script = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("datasci/read_exports.py");
    let out = Command::new(python()).arg(script).arg(&s3.endpoint).arg(snapshot_url).envs(s3.env()).output().unwrap();
    assert!(out.status.success(), "read_exports.py: {}", String::from_utf8_lossy(&out.stderr));
    last_json(&out.stdout)
}

fn check(card: &serde_json::Value, read: &serde_json::Value, x: &Expected) {
    let rows = |name: &str| card["datasets"][name]["rows"].as_u64().unwrap();
    let datasets = &read["datasets"];
    for name in ["training_examples", "predictions", "task_results", "operator_sessions"] {
        let d = &datasets[name];
        assert_eq!(d["pyarrow_rows"].as_u64(), Some(rows(name)), "{name}: pyarrow reads the card's rows");
        assert_eq!(d["duckdb_rows"].as_u64(), Some(rows(name)), "{name}: duckdb reads the card's rows");
        let card_dates: Vec<_> = card["datasets"][name]["partitions"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(d["dates"], serde_json::json!(card_dates), "{name}: the date= partitions");
    }
    assert_eq!(rows("task_results"), x.results);
    assert_eq!(rows("predictions"), x.predictions);
    assert_eq!(rows("operator_sessions"), x.sessions);
    assert_eq!(rows("training_examples"), x.examples_per_task.values().sum::<u64>());
    let first: BTreeMap<String, u64> =
        serde_json::from_value(datasets["task_results"]["per_task_objects"].clone()).unwrap();
    assert_eq!(first, x.first_result_objects, "objects per first result, task by task");
    // class names beside class ids, as the tasks' class group names them
    let names: BTreeMap<String, String> = visionlog_simulated_operators::scenario::scenario("names", "acme")
        .create
        .class_group
        .classes
        .into_iter()
        .map(|c| (c.id.to_string(), c.name))
        .collect();
    for name in ["training_examples", "predictions"] {
        let seen: BTreeMap<String, String> = serde_json::from_value(datasets[name]["class_names"].clone()).unwrap();
        assert!(!seen.is_empty() && seen.iter().all(|(id, n)| names.get(id) == Some(n)), "{name}: {seen:?}");
    }
    let kinds: BTreeMap<String, u64> = serde_json::from_value(datasets["predictions"]["per_kind"].clone()).unwrap();
    assert!(kinds.get("RECOGNITION").is_some_and(|n| *n > 0), "the recognizer's predictions: {kinds:?}");
    let examples: BTreeMap<String, u64> =
        serde_json::from_value(datasets["training_examples"]["per_task"].clone()).unwrap();
    assert_eq!(examples, x.examples_per_task, "training examples, task by task");
    let per_model: BTreeMap<String, u64> =
        serde_json::from_value(datasets["predictions"]["per_model"].clone()).unwrap();
    assert_eq!(per_model, x.predictions_per_model, "predictions per model version");
}

#[test]
fn exports_read_from_s3_by_pyarrow_and_duckdb_match_the_log_now_and_as_of_an_earlier_instant() {
    let s3 = LocalS3::start().expect("SeaweedFS (run ./scripts/install.sh)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data, &s3)
        .args(["--fsync", "never", "demo", "--tasks", "100", "--train-after", "50", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_json(&out.stdout)["models_promoted"], 2, "a detector and a recognizer predicted the second wave");
    let history = history(&data);

    // now
    let out = visionlog(&data, &s3).args(["export", "once", "--json"]).output().unwrap();
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let card = last_json(&out.stdout);
    let now = card["as_of_ms"].as_i64().unwrap();
    let x = expected(&history, now);
    // every task has its first result; a quality check that corrected one added a revision
    assert!(x.predictions > 0 && x.first_result_objects.len() == 100 && x.results >= 100, "{x:?}");
    assert!(!x.examples_per_task.is_empty(), "{x:?}");
    let covered: u64 = card["covered"].as_array().unwrap().iter().map(|c| c["events"].as_u64().unwrap()).sum();
    assert_eq!(covered, history.len() as u64, "the card names every event folded");
    let read = read_as_data_scientist(&s3, card["snapshot_url"].as_str().unwrap());
    check(&card, &read, &x);
    let read_predictions = &read["datasets"]["predictions"];
    assert!(read_predictions["reviewed"].as_u64().unwrap() > 0, "quality checks reviewed some predictions");
    assert!(read["datasets"]["training_examples"]["annotated"].as_u64().unwrap() > 0);

    // as of the instant of the 70th result: what was known then, nothing learned later
    let mut result_times: Vec<i64> =
        history.iter().filter(|(_, _, e)| matches!(e, TaskEvent::TaskResultGenerated(_))).map(|(at, ..)| *at).collect();
    result_times.sort_unstable();
    let as_of = result_times[69];
    let out =
        visionlog(&data, &s3).args(["export", "once", "--json", "--as-of-ms", &as_of.to_string()]).output().unwrap();
    assert!(out.status.success(), "export --as-of-ms: {}", String::from_utf8_lossy(&out.stderr));
    let earlier = last_json(&out.stdout);
    let x_then = expected(&history, as_of);
    assert!(x_then.results >= 70 && x_then.results < 100, "{}", x_then.results);
    let read_then = read_as_data_scientist(&s3, earlier["snapshot_url"].as_str().unwrap());
    check(&earlier, &read_then, &x_then);
    assert!(read_then["datasets"]["task_results"]["max_result_at_ms"].as_i64().unwrap() <= as_of);
    let after: u64 =
        earlier["covered"].as_array().unwrap().iter().map(|c| c["events_after_as_of"].as_u64().unwrap()).sum();
    assert_eq!(after, history.iter().filter(|(at, ..)| *at > as_of).count() as u64);
    // the newer snapshot stays the latest
    let latest = s3.objects("pipeline").unwrap().get("exports/latest.json", 1 << 16).unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(latest["as_of_ms"].as_i64(), Some(now));
}

/// Every row of each dataset of a snapshot folder, sorted (pyarrow, with its `date=` partitions).
fn snapshot_rows(folder: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
import pyarrow.dataset as ds
out = {}
for name in ["training_examples", "predictions", "task_results", "operator_sessions"]:
    rows = ds.dataset(f"{sys.argv[1]}/{name}", format="parquet", partitioning="hive").to_table().to_pylist()
    out[name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
print(json.dumps(out))
"#;
    let out = Command::new(python()).arg("-c").arg(script).arg(folder).output().unwrap();
    assert!(out.status.success(), "pyarrow: {}", String::from_utf8_lossy(&out.stderr));
    last_json(&out.stdout)
}

#[test]
fn an_incremental_export_holds_the_rows_of_a_full_one_and_folds_only_the_tasks_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = visionlog_integration_tests::visionlog(&data).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        last_json(&out.stdout)
    };
    let demo = run(&["--fsync", "never", "demo", "--tasks", "60", "--train-after", "30", "--json"]);
    assert_eq!(demo["models_promoted"], 2, "a detector and a recognizer predicted the second wave");
    let history = history(&data);
    let mut result_times: Vec<i64> =
        history.iter().filter(|(_, _, e)| matches!(e, TaskEvent::TaskResultGenerated(_))).map(|(at, ..)| *at).collect();
    result_times.sort_unstable();
    let (mid, end) = (result_times[39], *result_times.last().unwrap());
    let changed: std::collections::BTreeSet<&str> =
        history.iter().filter(|(at, ..)| *at > mid && *at <= end).map(|(_, t, _)| t.as_str()).collect();

    let first = run(&["export", "once", "--json", "--as-of-ms", &mid.to_string()]);
    assert!(first["base"].is_null(), "the first snapshot folds every task");
    let merged = run(&["export", "once", "--json", "--as-of-ms", &end.to_string()]);
    assert_eq!(merged["base"], first["snapshot"], "merged from the earlier snapshot");
    assert_eq!(merged["tasks_folded"], changed.len(), "only the tasks with events since were folded");
    assert!(merged["rows_carried"].as_u64().unwrap() > 0);
    let again = visionlog_integration_tests::visionlog(&data)
        .args(["export", "once", "--as-of-ms", &end.to_string()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a complete snapshot is never rewritten");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let full = run(&["export", "once", "--json", "--as-of-ms", &end.to_string(), "--root", "exports-full"]);
    assert!(full["base"].is_null(), "another root: every task folded");
    assert_eq!(full["tasks_folded"], 60);

    let objects = data.join("objects");
    let (merged_rows, full_rows) = (
        snapshot_rows(&objects.join(merged["snapshot"].as_str().unwrap())),
        snapshot_rows(&objects.join(full["snapshot"].as_str().unwrap())),
    );
    for name in ["training_examples", "predictions", "task_results", "operator_sessions"] {
        let n = merged_rows[name].as_array().unwrap().len();
        assert!(n > 0, "{name} is empty");
        assert_eq!(merged_rows[name], full_rows[name], "{name}: the merged snapshot holds the full one's rows");
        assert_eq!(merged["datasets"][name]["rows"], n, "{name}: the card counts its rows");
    }
}
