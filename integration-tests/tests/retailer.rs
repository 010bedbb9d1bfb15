//! A retailer's view: a task created and read back with a plain Kafka client in Python
//! (confluent-kafka with the murmur2 partitioner, Confluent-framed Avro via fastavro), against
//! `visionlog run` on a real broker. The client is `integration-tests/retailer/retailer.py`.

use std::path::PathBuf;
use std::process::Stdio;
use visionlog_integration_tests::{Broker, python, terminate, visionlog};
use visionlog_journal::Topics;
use visionlog_log::{EventLog, KafkaLog, partition_for};

#[test]
fn a_retailer_creates_a_task_and_reads_its_events_with_its_own_kafka_client() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = broker.name("retail");
    Topics::new(&prefix, 4).create(&KafkaLog::connect(broker.address()).unwrap() as &dyn EventLog).unwrap();

    // what a retailer gets from the schema registry (on Kafka, the one kept in the `schemas` topic)
    let log = format!("kafka://{}", broker.address());
    let schemas =
        visionlog(&data).args(["--log", &log, "--topic-prefix", &prefix, "schema", "list", "--json"]).output().unwrap();
    assert!(schemas.status.success(), "{}", String::from_utf8_lossy(&schemas.stderr));
    let schemas_file = dir.path().join("schemas.json");
    std::fs::write(&schemas_file, &schemas.stdout).unwrap();

    let mut service = visionlog(&data)
        .args(["--log", &log, "--topic-prefix", &prefix, "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let task_id = "acme-store-7-shelf-3";
    let out = std::process::Command::new(python())
        // read at run time: a test binary may outlive the checkout it was built in
        .arg(PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("retailer/retailer.py"))
        .args(["--bootstrap", broker.address(), "--prefix", &prefix, "--task-id", task_id, "--timeout-s", "90"])
        .arg("--schemas")
        .arg(&schemas_file)
        .output()
        .unwrap();
    // SIGTERM: the services drain, leave their groups and exit cleanly
    let status = terminate(&mut service, std::time::Duration::from_secs(30));
    assert!(status.success(), "visionlog run exited with {status} on SIGTERM");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the retailer's client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // the client's murmur2 put the task where visionlog's does
    let produced = lines.iter().find_map(|l| l.get("produced")).expect("produced");
    let partition = partition_for(task_id.as_bytes(), 4);
    assert_eq!(produced["partition"], partition);
    let outcome = lines.iter().find_map(|l| l.get("outcome")).expect("outcome");
    assert_eq!(outcome["accepted"], true, "{outcome}");
    assert_eq!(outcome["first_version"], 1, "{outcome}");
    let events: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("event")).collect();
    let created = events.iter().find(|e| e["name"] == "visionlog.events.TaskCreated").expect("TaskCreated read back");
    assert_eq!(created["version"], 1);
    assert_eq!(created["partition"], partition);
    assert_eq!(created["body"]["customer"], "acme");
    assert_eq!(created["body"]["class_group"]["classes"][1]["name"], "water 1l");
}
