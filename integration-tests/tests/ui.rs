//! The annotation tool end to end in headless Chromium (Debian's, driven by playwright-core
//! from npm; see integration-tests/ui/annotate.mjs): an operator takes a task from the queue,
//! draws, labels, deletes, undoes, moves, works offline across a reload, submits; the result
//! shows up in the task's events. The screenshot lands in the test's output directory.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use visionlog_integration_tests::{run_with_gateway, task_request};

#[test]
fn an_operator_annotates_a_task_in_the_browser() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    assert!(
        ui.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
        "run ./scripts/install.sh: it installs Debian's chromium and playwright-core"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_run, api) = run_with_gateway(dir.path(), 0, &[]);
    let (photo, _) = visionlog_simulated_operators::scenario::labelled_photo("ui-test");
    let uploaded = api.send_bytes("/v1/images", "acme-token", "image/png", photo.to_png());
    let uri = uploaded.body["uri"].as_str().unwrap().to_owned();
    let created = api.call(
        "POST",
        "/v1/tasks",
        Some("acme-token"),
        Some(&task_request(&uri, None).to_string()),
        &[("idempotency-key", "ui-1")],
    );
    let task = created.body["task_id"].as_str().unwrap().to_owned();
    api.wait_for("/v1/operator/queue", "anna-token", Duration::from_secs(30), |a| {
        a.body["tasks"].as_array().is_some_and(|t| t.iter().any(|r| r["task_id"] == task.as_str()))
    });

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("annotate.png");
    let run = std::process::Command::new("node")
        .arg(ui.join("annotate.mjs"))
        .args([&format!("http://{}", api.addr), &task, &shot.to_string_lossy().into_owned()])
        .current_dir(&ui)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot of the tool");
    assert_eq!(seen["pending_before_offline"], "9 change(s) not sent", "{seen}");
    assert_eq!(seen["button_after_reload"], "Open", "the task is still the operator's: {seen}");
    assert_eq!(seen["pending_after_reload"], "9 change(s) not sent", "the session survived the reload: {seen}");
    assert_eq!(seen["step_after"], "done", "the workflow moves on: {seen}");

    let result =
        api.wait_for(&format!("/v1/tasks/{task}/result"), "acme-token", Duration::from_secs(30), |a| a.status == 200);
    let mut boxes: Vec<(u64, u64, f64, f64, f64, f64)> = result.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let b = &o["bbox"];
            let f = |k: &str| b[k].as_f64().unwrap();
            (o["image"].as_u64().unwrap(), o["class_id"].as_u64().unwrap(), f("x"), f("y"), f("w"), f("h"))
        })
        .collect();
    boxes.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        boxes,
        [(0, 2, 110.0, 105.0, 100.0, 160.0), (0, 3, 300.0, 120.0, 80.0, 140.0), (1, 1, 40.0, 40.0, 100.0, 160.0)],
        "drawn, labelled, moved; the deleted mistake is not there"
    );
    let events = api.get(&format!("/v1/tasks/{task}/events?limit=500"), "acme-token");
    let evs = events.body["events"].as_array().unwrap();
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.ends_with(&["OperatorAssigned", "ObjectsAdded", "OperatorFinished", "TaskResultGenerated"]),
        "{types:?}"
    );
    let added = evs.iter().find(|e| e["type"] == "ObjectsAdded").unwrap();
    assert_eq!(added["actor"], "operator:anna");
    assert_eq!(added["event"]["objects"].as_array().unwrap().len(), 3, "nine actions summarized into one AddObjects");
}
