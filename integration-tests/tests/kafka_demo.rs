//! The whole pipeline on the real engines: `visionlog --log kafka://... --store scylla://... demo`
//! on Apache Kafka and the CQL server (the projector's views and the aggregator's snapshots there).

use visionlog_integration_tests::{Broker, cql_store_url, last_json, visionlog};

#[test]
fn the_demo_runs_on_kafka_and_cql_and_resumes_without_duplicates() {
    let broker = Broker::start();
    let store = cql_store_url("demo");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = format!("kafka://{}", broker.address());
    let prefix = broker.name("demo");
    let run = |resume: bool| {
        let mut args = vec![
            "--log",
            log.as_str(),
            "--topic-prefix",
            prefix.as_str(),
            "--store",
            store.as_str(),
            "demo",
            "--tasks",
            "100",
            "--json",
            "--timeout-s",
            "240",
        ];
        if resume {
            args.push("--resume");
        }
        let out = visionlog(&data).args(&args).output().unwrap();
        assert!(out.status.success(), "demo on kafka failed: {}", String::from_utf8_lossy(&out.stderr));
        last_json(&out.stdout)
    };
    let first = run(false);
    assert_eq!(first["tasks_completed"], 100, "{first}");
    assert_eq!((first["version_gaps"].as_u64(), first["duplicate_events"].as_u64()), (Some(0), Some(0)), "{first}");
    // the whole loop on the broker: 60 tasks by operators, a model trained and promoted (its
    // stream on the `models` topic), 40 tasks by the model
    assert_eq!(first["models_promoted"], 2, "a detector and a recognizer: {first}");
    assert_eq!((first["assisted_tasks"].as_u64(), first["automatic_tasks"].as_u64()), (Some(60), Some(40)), "{first}");
    assert_eq!(first["rejected_commands"], 0, "{first}");
    // a second run on the same broker: new owners claim, every consumer resumes from its position,
    // the re-sent CreateTask commands are answered as duplicates
    let second = run(true);
    assert_eq!(second["events_written"], first["events_written"], "{second}");
    assert_eq!(second["models_promoted"], 2, "the model streams resume too: {second}");
    assert_eq!((second["version_gaps"].as_u64(), second["duplicate_events"].as_u64()), (Some(0), Some(0)), "{second}");
    assert!(second["owner_claims"].as_u64().unwrap() > first["owner_claims"].as_u64().unwrap());
}

/// `--log kafka` alone starts a broker for the run (tansu, for a quick try) and stops it after.
#[test]
fn a_bare_kafka_log_starts_a_local_broker() {
    let dir = tempfile::tempdir().unwrap();
    let out = visionlog(&dir.path().join("data"))
        .args(["--log", "kafka", "demo", "--tasks", "20", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = last_json(&out.stdout);
    assert_eq!(report["tasks_completed"], 20, "{report}");
    assert_eq!(report["version_gaps"], 0, "{report}");
}
