//! Detection and recognition through the binary: a task of the two-step recipe is boxed by the
//! trained detector and classified by the trained recognizer, and when an operator corrects its
//! boxes (the HTTP operator tool: one box moved, one missed box drawn without a class) the
//! recognizer runs again on exactly those boxes, and the customer gets the new result.

use serde_json::{Value, json};
use std::time::Duration;
use visionlog_integration_tests::{last_json, run_with_gateway, visionlog};

const ANNA: &str = "anna-token";
const ACME: &str = "acme-token";
const OPS: &str = "ops-token";

fn types(events: &Value) -> Vec<String> {
    events["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_box_correction_sends_only_the_changed_boxes_back_to_the_recognizer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 30 tasks by operators train a detector and a recognizer; 10 more are done by the two
    let out = visionlog(&data)
        .args(["--fsync", "never", "demo", "--tasks", "40", "--train-after", "30", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let demo = last_json(&out.stdout);
    assert_eq!(demo["models_promoted"], 2, "{demo}");
    assert_eq!(demo["recognized_tasks"], 10, "{demo}");

    let (_run, api) = run_with_gateway(dir.path(), 0, &[]);
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
    assert_eq!(a.status, 200, "{a:?}");
    let queued = api.wait_for("/v1/operator/queue", ANNA, Duration::from_secs(30), |a| {
        a.body["tasks"].as_array().is_some_and(|t| t.iter().any(|r| r["task_id"] == task && r["operator"].is_null()))
    });
    let row = queued.body["tasks"].as_array().unwrap().iter().find(|r| r["task_id"] == task).unwrap().clone();
    let assigned =
        api.post(&format!("/v1/operator/tasks/{task}/assign"), ANNA, &json!({"version": row["version"].as_u64()}));
    assert_eq!(assigned.status, 200, "{assigned:?}");
    let session = assigned.body["session_id"].as_str().unwrap().to_owned();
    let view = api.get(&format!("/v1/operator/tasks/{task}"), ANNA);
    let moved = view.body["objects"][0].clone();
    let moved_id = moved["object_id"].as_str().unwrap().to_owned();
    let bbox = &moved["bbox"];
    let new_box = json!({"x": bbox["x"].as_f64().unwrap() + 2.0, "y": bbox["y"], "w": bbox["w"], "h": bbox["h"]});
    let actions = json!([
        {"op": "move", "object_id": moved_id, "bbox": new_box},
        {"op": "add", "object_id": "missed", "image": 0, "bbox": {"x": 1.0, "y": 1.0, "w": 30.0, "h": 60.0}},
    ]);
    let base = view.body["version"].as_u64().unwrap();
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
