//! Detection and recognition through the binary: a task of the two-step recipe is boxed by the
//! trained detector and classified by the trained recognizer, and when an operator corrects its
//! boxes (the HTTP operator tool: one box moved, one missed box drawn without a class) the
//! recognizer runs again on exactly those boxes, and the customer gets the new result. The
//! customer leaves the classes to the recognizer (`operator_subtasks`), so the tool shows the
//! operator the boxes only and refuses a class given by hand.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use visionlog_integration_tests::{last_json, run_with_tenants, visionlog, write_tenants};

const ANNA: &str = "anna-token";
const ACME: &str = "acme-token";
const OPS: &str = "ops-token";

fn types(events: &Value) -> Vec<String> {
    let list = events["events"].as_array().unwrap_or_else(|| panic!("no events: {events}"));
    list.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

/// 30 tasks by operators train a detector and a recognizer; 10 more are done by the two.
fn trained_models(data: &std::path::Path) {
    let out = visionlog(data)
        .args(["--fsync", "never", "demo", "--tasks", "40", "--train-after", "30", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let demo = last_json(&out.stdout);
    assert_eq!(demo["models_promoted"], 2, "{demo}");
    assert_eq!(demo["recognized_tasks"], 10, "{demo}");
}

/// One demo trains the models (two demos training at once on a small machine starve each
/// other's libtorch threads), then each part runs `visionlog run` on its data.
#[test]
fn recognition_runs_again_on_corrected_boxes_and_checked_results_are_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    trained_models(&data);
    a_box_correction_sends_only_the_changed_boxes_back_to_the_recognizer(&data);
    a_quality_check_correction_is_delivered_as_a_new_revision(dir.path(), &data);
}

fn a_box_correction_sends_only_the_changed_boxes_back_to_the_recognizer(data: &std::path::Path) {
    // the tests' tenants, where acme's operators annotate only the boxes of its two-step tasks
    let tenants = write_tenants(data);
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&tenants).unwrap()).unwrap();
    file["tenants"][0]["operator_subtasks"] = json!({"DETECTION_AND_RECOGNITION": ["detection"]});
    std::fs::write(&tenants, file.to_string()).unwrap();
    let (_run, api) = run_with_tenants(data, &tenants, 0, &[]);
    let task = "task-000035";
    let events = api.get(&format!("/v1/tasks/{task}/events"), ACME);
    assert_eq!(
        types(&events.body)[..6],
        [
            "TaskCreated",
            "DetectionRequested",
            "ObjectsDetected",
            "RecognitionRequested",
            "ObjectsRecognized",
            "TaskResultGenerated"
        ],
        "{events:?}"
    );
    // the result's objects carry the recognizer's classes
    let result = api.get(&format!("/v1/tasks/{task}/result"), ACME);
    assert_eq!(result.status, 200, "{result:?}");
    let objects = result.body["objects"].as_array().unwrap().clone();
    assert!(objects.len() >= 4, "{result:?}");
    assert!(objects.iter().all(|o| o["class_id"].as_u64().is_some_and(|c| (1..=8).contains(&c))), "{result:?}");
    assert!(result.body.to_string().contains("acme:ice-cream:recognizer"), "{result:?}");

    // ops send it back to an operator, who moves one box and draws a missed one without a class
    let a = api.post("/v1/admin/tasks/reprocess", OPS, &json!({"task_ids": [task], "mode": "resend_to_operator"}));
    assert_eq!(a.status, 202, "sent: {a:?}");
    let queued = api.wait_for("/v1/operator/queue", ANNA, Duration::from_secs(30), |a| {
        a.body["tasks"].as_array().is_some_and(|t| t.iter().any(|r| r["task_id"] == task && r["operator"].is_null()))
    });
    let row = queued.body["tasks"].as_array().unwrap().iter().find(|r| r["task_id"] == task).unwrap().clone();
    let assigned =
        api.post(&format!("/v1/operator/tasks/{task}/assign"), ANNA, &json!({"version": row["version"].as_u64()}));
    assert_eq!(assigned.status, 200, "{assigned:?}");
    let session = assigned.body["session_id"].as_str().unwrap().to_owned();
    let view = api.get(&format!("/v1/operator/tasks/{task}"), ANNA);
    assert_eq!(
        (&view.body["subtasks"], &view.body["hidden"]),
        (&json!(["detection"]), &json!(["recognition"])),
        "{view:?}"
    );
    let moved = view.body["objects"][0].clone();
    let moved_id = moved["object_id"].as_str().unwrap().to_owned();
    let bbox = &moved["bbox"];
    let new_box = json!({"x": bbox["x"].as_f64().unwrap() + 2.0, "y": bbox["y"], "w": bbox["w"], "h": bbox["h"]});
    let actions = json!([
        {"op": "move", "object_id": moved_id, "bbox": new_box},
        {"op": "add", "object_id": "missed", "image": 0, "bbox": {"x": 1.0, "y": 1.0, "w": 30.0, "h": 60.0}},
    ]);
    let base = view.body["version"].as_u64().unwrap();
    // a class given by hand is refused whole: relabelling a box, or drawing one with a class
    let other = view.body["objects"][1]["object_id"].clone();
    let by_hand = [
        json!([{"op": "label", "object_id": other, "class_id": 1}]),
        json!([{"op": "add", "object_id": "classed", "image": 0, "bbox": {"x": 1.0, "y": 1.0, "w": 30.0, "h": 60.0}, "class_id": 1}]),
    ];
    for refused in by_hand {
        let sent = api.post(
            &format!("/v1/operator/tasks/{task}/session"),
            ANNA,
            &json!({"session_id": session, "base_version": base, "actions": refused, "finish": true}),
        );
        assert_eq!((sent.status, sent.body["code"].as_str()), (422, Some("subtask_hidden")), "{sent:?}");
    }
    let sent = api.post(
        &format!("/v1/operator/tasks/{task}/session"),
        ANNA,
        &json!({"session_id": session, "base_version": base, "actions": actions, "finish": true}),
    );
    assert_eq!(sent.status, 200, "{sent:?}");

    // the recognizer runs again on those two boxes only, and a second result follows
    let done = api.wait_for(&format!("/v1/tasks/{task}/events"), ACME, Duration::from_secs(60), |a| {
        types(&a.body).iter().filter(|t| *t == "TaskResultGenerated").count() == 2
    });
    let all = done.body["events"].as_array().unwrap();
    let requests: Vec<&Value> = all.iter().filter(|e| e["type"] == "RecognitionRequested").collect();
    assert_eq!(requests.len(), 2, "{done:?}");
    let mut asked: Vec<&str> =
        requests[1]["event"]["objects"].as_array().unwrap().iter().map(|o| o["object_id"].as_str().unwrap()).collect();
    asked.sort_unstable();
    let mut want = vec![moved_id.as_str(), "missed"];
    want.sort_unstable();
    assert_eq!(asked, want, "only the moved and the new box go back to the recognizer");
    let tail: Vec<String> = types(&done.body).into_iter().rev().take(3).collect();
    assert_eq!(tail, ["TaskResultGenerated", "ObjectsRecognized", "RecognitionRequested"], "{done:?}");
    let result = api.get(&format!("/v1/tasks/{task}/result"), ACME);
    assert_eq!(result.body["revision"], 2, "{result:?}");
    let objects = result.body["objects"].as_array().unwrap();
    assert_eq!(objects.len(), view.body["objects"].as_array().unwrap().len() + 1, "{result:?}");
    assert!(objects.iter().all(|o| o["class_id"].as_u64().is_some()), "every box has a class: {result:?}");
}

/// A receiver on loopback that answers 200 and keeps each body it got.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim_end().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                log.lock().unwrap().push(v);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// A quality check that corrects a model's result makes a second revision, and the customer's
/// webhook gets it after the first.
fn a_quality_check_correction_is_delivered_as_a_new_revision(dir: &std::path::Path, data: &std::path::Path) {
    // acme has every automatic result checked; one simulated operator does the checks (it
    // corrects the result to the scenario's truth of the task id, which this photo is not)
    let t = visionlog_tenants::token_entry;
    let tenants = dir.join("qc-tenants.json");
    let json = json!({
        "tenants": [{"id": "acme", "team": "shelves", "tokens": [t(ACME)], "webhook_secrets": ["whsec-qc"], "qc_per_mille": 1000}],
        "admins": [{"id": "ops", "tokens": [t(OPS)]}]
    });
    std::fs::write(&tenants, json.to_string()).unwrap();
    let (_run, api) = run_with_tenants(data, &tenants, 1, &[("VISIONLOG_URL_ALLOW", "127.0.0.0/8")]);
    let (url, got) = receiver();
    let (photo, _) = visionlog_simulated_operators::scenario::labelled_photo("qc-webhook");
    let uploaded = api.send_bytes("/v1/images", ACME, "image/png", photo.to_png());
    assert_eq!(uploaded.status, 201, "{uploaded:?}");
    let mut body = visionlog_integration_tests::task_request(uploaded.body["uri"].as_str().unwrap(), Some(&url));
    // three images, as the scenario the simulated checker corrects to may draw on three
    body["recipe"] = json!("DETECTION_AND_RECOGNITION");
    let created = api.post("/v1/tasks", ACME, &body);
    assert_eq!(created.status, 201, "{created:?}");
    let task = created.body["task_id"].as_str().unwrap().to_owned();

    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let delivered = loop {
        let mine: Vec<Value> = got.lock().unwrap().iter().filter(|b| b["task_id"] == task.as_str()).cloned().collect();
        if mine.len() >= 2 || std::time::Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let events = api.get(&format!("/v1/tasks/{task}/events"), ACME);
    let revisions: Vec<_> = delivered.iter().map(|b| (b["revision"].as_u64(), b["source"].as_str())).collect();
    assert_eq!(revisions, [(Some(1), Some("AUTOMATIC")), (Some(2), Some("OPERATOR"))], "{events:?}");
    let seen = types(&events.body);
    let checked = seen.iter().position(|t| t == "QualityCheckRequested").expect("sampled for a check");
    assert!(seen[checked..].iter().any(|t| t == "OperatorFinished"), "{seen:?}");
    // what the customer reads now is the corrected revision, as delivered
    let result = api.get(&format!("/v1/tasks/{task}/result"), ACME);
    assert_eq!(result.body["revision"], 2, "{result:?}");
    assert_eq!(result.body["objects"], delivered[1]["objects"], "{result:?}");
    assert_ne!(delivered[0]["objects"], delivered[1]["objects"], "the check changed the result");
}

/// The ping-pong between servers and operators (seed 000), with no model yet: a customer who
/// leaves the classes to the recognizer (`operator_subtasks`) gets each task boxed by an
/// operator without classes, sent to the servers for the classes (no recognizer:
/// `ModelNotFound` for recognition), and back to an operator, who now sees the classes too and
/// gives them; every step decided from the task's events.
#[test]
fn with_recognition_hidden_a_task_goes_to_an_operator_for_boxes_and_back_for_classes() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.json");
    let file = json!({"tenants": [{"id": "acme", "qc_per_mille": 0,
        "operator_subtasks": {"DETECTION_AND_RECOGNITION": ["detection"]}}]});
    std::fs::write(&tenants, file.to_string()).unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data)
        .args(["--tenants", tenants.to_str().unwrap(), "--fsync", "never"])
        .args(["demo", "--tasks", "4", "--no-training", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let demo = last_json(&out.stdout);
    assert_eq!((demo["tasks_completed"].as_u64(), demo["version_gaps"].as_u64()), (Some(4), Some(0)), "{demo}");
    for i in 0..4 {
        let task = format!("task-{i:06}");
        let out = visionlog(&data).args(["task", "show", &task, "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let steps: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "ModelNotFound")
            .map(|e| e["event"]["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["detection", "recognition"], "{task}: {types:?}");
        let sessions: Vec<usize> =
            types.iter().enumerate().filter(|(_, t)| **t == "OperatorAssigned").map(|(i, _)| i).collect();
        assert_eq!(sessions.len(), 2, "{task}: two annotation sessions: {types:?}");
        let (first, second) = (&events[sessions[0]..sessions[1]], &events[sessions[1]..]);
        // the first session draws the boxes and gives no class, the servers are asked for them
        let drawn: Vec<&Value> = first
            .iter()
            .filter(|e| e["type"] == "ObjectsAdded")
            .flat_map(|e| e["event"]["objects"].as_array().unwrap())
            .collect();
        assert!(!drawn.is_empty(), "{task}: {types:?}");
        assert!(drawn.iter().all(|o| o["class_id"].is_null()), "{task}: a class given where it is hidden: {drawn:?}");
        assert!(first.iter().all(|e| e["type"] != "ObjectsLabeled"), "{task}: {types:?}");
        let asked = first.iter().find(|e| e["type"] == "RecognitionRequested").expect("recognition asked for");
        assert_eq!(asked["event"]["objects"].as_array().map(Vec::len), Some(drawn.len()), "{asked}");
        // no recognizer: the second session gives every drawn box its class, then the result
        let labelled: std::collections::BTreeSet<&str> = second
            .iter()
            .filter(|e| e["type"] == "ObjectsLabeled")
            .flat_map(|e| e["event"]["labels"].as_array().unwrap())
            .map(|l| l["object_id"].as_str().unwrap())
            .collect();
        assert!(drawn.iter().all(|o| labelled.contains(o["object_id"].as_str().unwrap())), "{task}: {labelled:?}");
        assert!(second.iter().any(|e| e["type"] == "TaskResultGenerated"), "{task}: {types:?}");
        assert!(
            first.iter().all(|e| e["type"] != "TaskResultGenerated"),
            "{task}: a result before the classes: {types:?}"
        );
    }
}
