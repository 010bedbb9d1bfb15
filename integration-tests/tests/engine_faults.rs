//! Faults of the engines themselves, on the real ones (`scripts/engines.sh`): Apache Kafka killed
//! with SIGKILL and restarted on its log dir while commands flow, and the CQL node killed and
//! restarted while the projector writes. Every service reconnects by itself; afterwards every
//! command is decided once, no event is lost or doubled, and the views equal a rebuild.
//!
//! The tests here take turns: they stop engines that the others share.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use visionlog_integration_tests::{cql_store_url, engines, kafka_bootstrap, last_json, unique_name, view_rows_in};

/// Tasks per run: enough that an engine goes down mid-way (a debug build takes ~45 s for them).
const TASKS: u32 = 400;

/// `visionlog demo` on Apache Kafka and the CQL server, in the background.
fn demo(data: &Path, prefix: &str, store: &str, tasks: u32) -> Child {
    visionlog_integration_tests::visionlog(data)
        .args(["--log", &format!("kafka://{}", kafka_bootstrap()), "--topic-prefix", prefix, "--store", store])
        .args(["--fsync", "never", "demo", "--tasks", &tasks.to_string(), "--no-images", "--json"])
        .args(["--timeout-s", "420"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("visionlog demo starts")
}

/// Waits for the demo, and checks what it reports: every task done, no gap, no duplicate.
fn finished(child: Child, tasks: u32) -> serde_json::Value {
    let Output { status, stdout, stderr } = child.wait_with_output().expect("the demo ends");
    assert!(status.success(), "the demo failed: {}", String::from_utf8_lossy(&stderr));
    let report = last_json(&stdout);
    assert_eq!(report["tasks_completed"], tasks, "{report}");
    assert_eq!((report["version_gaps"].as_u64(), report["duplicate_events"].as_u64()), (Some(0), Some(0)), "{report}");
    report
}

/// Lets the demo get going: a few seconds after it started, with commands flowing.
fn mid_flow(started: Instant, after: Duration) {
    std::thread::sleep(after.saturating_sub(started.elapsed()));
}

/// Runs a demo into `data` with `engine` SIGKILLed a few seconds in and restarted 3 s later;
/// checks it completes; returns its topic prefix and store URL.
fn demo_with(engine: &str, data: &Path) -> (String, String) {
    let (prefix, store) = (unique_name(engine), cql_store_url(engine));
    let started = Instant::now();
    let run = demo(data, &prefix, &store, TASKS);
    mid_flow(started, Duration::from_secs(6));
    engines(&["kill", engine]);
    std::thread::sleep(Duration::from_secs(3));
    engines(&["up"]);
    let report = finished(run, TASKS);
    eprintln!("with {engine} killed: {report}");
    (prefix, store)
}

/// The tests of this file stop engines that the others use: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Apache Kafka SIGKILLed while commands flow, back on its log dir and port after 3 s.
///
/// It found a bug: a consumer resuming while its client reconnected read nothing where the
/// epoch in force is read, took epoch 0, passed over the decisions up to the next claim and
/// committed its position past them (views lost). `JournalReader::resume_after` now waits for
/// that record or fails (crates/journal/tests/reconnecting_log.rs pins it without a broker).
#[test]
fn a_kafka_broker_killed_under_load() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    demo_with("kafka", &dir.path().join("data"));
}

/// The CQL node SIGKILLed while the projector writes, back after 3 s: the demo completes and
/// every view equals a rebuild from the log.
#[test]
fn a_cql_node_killed_under_load() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (prefix, store) = demo_with("cassandra", &data);
    let out = visionlog_integration_tests::visionlog(&data)
        .args(["--log", &format!("kafka://{}", kafka_bootstrap()), "--topic-prefix", &prefix, "--store", &store])
        .args(["report", "rebuild", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "rebuild: {}", String::from_utf8_lossy(&out.stderr));
    let rebuilt = last_json(&out.stdout);
    assert_eq!(rebuilt["generation"].as_u64(), Some(2), "{rebuilt}");
    let cql = visionlog_store::ScyllaStore::connect(&store).expect("the CQL server");
    let (live, again) = (view_rows_in(&cql, 1), view_rows_in(&cql, 2));
    assert!(live.iter().any(|(_, rows)| !rows.is_empty()), "views were written");
    for ((table, live_rows), (_, rebuilt_rows)) in live.iter().zip(&again) {
        assert_eq!(live_rows.len(), rebuilt_rows.len(), "{table}: row counts");
        for (a, b) in live_rows.iter().zip(rebuilt_rows) {
            if a != b && *table == visionlog_views::views::TASK_STATE {
                // say what differs: the folded task, not its bytes
                let view =
                    |r: &visionlog_store::Row| visionlog_views::views::decode::<visionlog_views::TaskView>(&r.value);
                panic!(
                    "{table}: the live row (v{}) differs from the rebuilt one (v{}):\nlive {:#?}\nrebuilt {:#?}",
                    a.version,
                    b.version,
                    view(a),
                    view(b)
                );
            }
            assert_eq!(a, b, "{table}: the live row differs from the rebuilt one");
        }
    }
}

/// Credentials given in a backend URL never reach a log line or an error message.
#[test]
fn credentials_in_urls_are_never_shown() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // a CQL server that is not there: the error names the URL, without its secret
    let out = visionlog_integration_tests::visionlog(&dir.path().join("a"))
        .args(["--store", "scylla://app:s3cret-pw@127.0.0.1:1/views", "report", "tasks"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert!(stderr.contains("app:***@127.0.0.1:1"), "{stderr}");
    // the real server (it does not ask for credentials), with the pipeline's info logs on
    let store = cql_store_url("credentials").replacen("scylla://", "scylla://app:s3cret-pw@", 1);
    let run = visionlog_integration_tests::visionlog(&dir.path().join("b"))
        .args(["--store", &store, "--fsync", "never", "run"])
        .env("VISIONLOG_LOG_LEVEL", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backends open"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}
