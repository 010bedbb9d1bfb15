//! A retailer's view: a task created and its whole life read back with a plain Kafka client in
//! Python (confluent-kafka with the murmur2 partitioner, Confluent-framed Avro via fastavro),
//! against `visionlog run` on a real broker that authorizes by ACL. The retailer is a SCRAM user
//! named after its tenant; ops granted it its own two topics (`integration-tests/retailer/grant.py`).
//! The client is `integration-tests/retailer/retailer.py`: it writes its command topic and reads
//! its output topic, and the broker refuses it another tenant's topic and the internal `commands`.

use std::path::PathBuf;
use std::process::Stdio;
use visionlog_integration_tests::{Broker, python, terminate, visionlog};
use visionlog_journal::Topics;
use visionlog_log::{EventLog, KafkaLog, partition_for};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: start the engines (scripts/engines.sh up)"))
}

fn script(name: &str) -> PathBuf {
    // read at run time: a test binary may outlive the checkout it was built in
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("retailer").join(name)
}

#[test]
fn a_retailer_reads_its_tasks_whole_life_from_its_own_topic_and_nothing_else() {
    let broker = Broker::start();
    let (sasl, ca) = (var("KAFKA_SASL_BOOTSTRAP"), var("KAFKA_SASL_CA"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = broker.name("retail");
    let topics = Topics::new(&prefix, 4);
    let log = KafkaLog::connect(broker.address()).unwrap();
    topics.create(&log as &dyn EventLog).unwrap();
    let tenants = dir.path().join("tenants.json");
    let file = serde_json::json!({
        // no quality checks: the flow below ends at the operator's result
        "tenants": [{"id": "acme", "team": "shelves", "qc_per_mille": 0}, {"id": "globex", "team": "shelves", "qc_per_mille": 0}],
        "operators": [{"id": "op-1", "teams": ["shelves"], "skills": ["annotation"]}],
    });
    std::fs::write(&tenants, file.to_string()).unwrap();

    // what a retailer gets from the schema registry (on Kafka, the one kept in the `schemas` topic)
    let url = format!("kafka://{}", broker.address());
    let schemas =
        visionlog(&data).args(["--log", &url, "--topic-prefix", &prefix, "schema", "list", "--json"]).output().unwrap();
    assert!(schemas.status.success(), "{}", String::from_utf8_lossy(&schemas.stderr));
    let schemas_file = dir.path().join("schemas.json");
    std::fs::write(&schemas_file, &schemas.stdout).unwrap();

    let mut service = visionlog(&data)
        .args(["--log", &url, "--topic-prefix", &prefix, "--tenants"])
        .arg(&tenants)
        .args(["run", "--operators", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the service creates each tenant's topics; then ops grants each retailer its own
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while log.partitions(&topics.tenant_events("globex")).is_err() {
        assert!(std::time::Instant::now() < deadline, "the tenants' topics were not created");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let passwords = [("acme", "acme-secret-1234"), ("globex", "globex-secret-1234")];
    for (tenant, password) in passwords {
        let out = std::process::Command::new(python())
            .arg(script("grant.py"))
            .args(["--bootstrap", broker.address(), "--prefix", &prefix, "--tenant", tenant, "--password", password])
            .output()
            .unwrap();
        assert!(out.status.success(), "granting {tenant}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let task_id = "acme-store-7-shelf-3";
    // the products and photos the simulated operator annotates (what it finds is drawn per task)
    let scenario = visionlog_simulated_operators::scenario::scenario(task_id, "acme");
    let task = serde_json::json!({"class_group": scenario.create.class_group, "images": scenario.create.images});
    let out = std::process::Command::new(python())
        .arg(script("retailer.py"))
        .args(["--bootstrap", &sasl, "--ca", &ca, "--tenant", "acme", "--password", passwords[0].1])
        .args(["--prefix", &prefix, "--task-id", task_id, "--other-tenant", "globex", "--timeout-s", "120"])
        .args(["--task-json", &task.to_string()])
        .arg("--schemas")
        .arg(&schemas_file)
        .output()
        .unwrap();
    // SIGTERM: the services drain, leave their groups and exit cleanly
    let status = terminate(&mut service, std::time::Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the retailer's client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(status.success(), "visionlog run exited with {status} on SIGTERM");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // the client's murmur2 put the task where visionlog's does, on its topic and on the output
    let produced = lines.iter().find_map(|l| l.get("produced")).expect("produced");
    let partition = partition_for(task_id.as_bytes(), 4);
    assert_eq!(produced["partition"], partition);
    let events: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("event")).collect();
    assert!(lines.iter().all(|l| l.get("rejection").is_none()), "nothing of the flow refused: {stdout}");
    // the whole life, each event once, in version order, from creation to the result
    let versions: Vec<u64> = events.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>(), "{stdout}");
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"visionlog.events.TaskCreated"), "{names:?}");
    assert_eq!(names.last(), Some(&"visionlog.events.TaskResultGenerated"), "{names:?}");
    assert!(names.contains(&"visionlog.events.OperatorFinished"), "annotated by the operator: {names:?}");
    assert!(events.iter().all(|e| e["partition"] == partition && e["tenant"] == "acme"), "{stdout}");
    let created = &events[0]["body"];
    assert_eq!(
        (created["customer"].as_str(), created["class_group"]["classes"][1]["name"].as_str()),
        (Some("acme"), Some("cocoa-bar"))
    );
    let result = &events.last().unwrap()["body"];
    assert!(!result["objects"].as_array().unwrap().is_empty(), "{result}");
    // and the broker refuses it the rest
    let refused = lines.iter().find_map(|l| l.get("refused")).expect("refused");
    assert_eq!(refused["read_other_tenant"], "TOPIC_AUTHORIZATION_FAILED", "{refused}");
    assert_eq!(refused["write_commands"], "TOPIC_AUTHORIZATION_FAILED", "{refused}");
}
