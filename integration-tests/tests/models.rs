//! Models through the binary: a TorchScript detector imported (a mismatched one refused),
//! promoted, serving a re-processed task; a deployed artifact damaged afterwards is refused by
//! the workers, and the task goes to an operator instead; a TorchScript recognizer imported
//! over HTTP and classifying the boxes of the detection-and-recognition recipe.

use std::path::Path;
use visionlog_integration_tests::{
    Leftovers, last_json, run_until_with, traced_detector as traced, traced_recognizer, visionlog,
};

fn events(data: &Path, task: &str) -> String {
    let out = visionlog(data).args(["task", "show", task]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_imported_torchscript_detector_serves_until_its_artifact_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // no quality checks (acme's rate is 0 in the tests' tenants file): the results counted below
    // are the operators' and the model's alone
    let tenants = visionlog_integration_tests::write_tenants(dir.path());
    let tenants = tenants.to_str().unwrap();
    let no_checks = [("VISIONLOG_TENANTS", tenants)];
    let run_until = |done: &dyn Fn() -> bool| run_until_with(&data, 2, &no_checks, done);
    let out = visionlog(&data)
        .env("VISIONLOG_TENANTS", tenants)
        .args(["demo", "--tasks", "12", "--no-training", "--recipe", "detection", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_json(&out.stdout)["models_promoted"], 0);
    let which = ["--customer", "acme", "--class-group", "acme/ice-cream"];

    // a module traced for 3 classes is not a detector of the 8-class group: refused, not registered
    let small = dir.path().join("small.pt");
    traced(&[1, 2, 3], &small);
    let out = visionlog(&data).args(["model", "import"]).args(which).arg("--file").arg(&small).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong classes or input size"), "{err}");
    let out = visionlog(&data).args(["model", "list", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "nothing registered");
    // a truncated file: refused
    let good = dir.path().join("good.pt");
    traced(&[1, 2, 3, 4, 5, 6, 7, 8], &good);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let out = visionlog(&data).args(["model", "import"]).args(which).arg("--file").arg(&cut).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a TorchScript module"));

    // the right one: registered as version 1, promoted by hand
    let out = visionlog(&data).args(["model", "import"]).args(which).arg("--file").arg(&good).output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    let out = visionlog(&data).args(["model", "promote"]).args(which).args(["--version", "1"]).output().unwrap();
    assert!(out.status.success(), "promote: {}", String::from_utf8_lossy(&out.stderr));
    let out = visionlog(&data).args(["model", "promote"]).args(which).args(["--version", "1"]).output().unwrap();
    assert!(!out.status.success(), "promoting the deployed version again is refused");
    let list = last_json(&visionlog(&data).args(["model", "list", "--json"]).output().unwrap().stdout);
    assert_eq!((list["model_id"].as_str(), list["deployed"].as_u64()), (Some("acme:ice-cream:detector"), Some(1)));

    // a re-processed task is now detected by the imported model; one whose photo the customer
    // replaced with junk is refused with a recorded reason (a dead letter) and goes to an operator
    std::fs::write(data.join("objects/images/acme/task-000007/0.png"), b"not a png").unwrap();
    for task in ["task-000003", "task-000007"] {
        assert!(visionlog(&data).args(["task", "reprocess", task]).status().unwrap().success());
    }
    run_until(&|| {
        events(&data, "task-000003").contains("ObjectsDetected")
            && events(&data, "task-000007").matches("TaskResultGenerated").count() == 2
    });
    let text = events(&data, "task-000003");
    assert!(text.contains("acme:ice-cream:detector"), "{text}");
    let text = events(&data, "task-000007");
    assert!(!text.contains("ObjectsDetected"), "{text}");
    let left = Leftovers::open(&data);
    let letters = left.log.read(&left.topics.dead_letters, 0, 0, 100).unwrap();
    let letters: Vec<_> = letters.iter().map(|r| left.codec.decode_dead_letter(&r.value).unwrap()).collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].error_code.as_str(), letters[0].consumer.as_str()), ("unreadable_image", "inference"));
    assert!(letters[0].error_message.contains("task-000007/0.png"), "{letters:?}");
    drop(left);

    // the artifact is damaged in the object store: the workers refuse it, the task goes to an operator
    let stream: serde_json::Value =
        serde_json::from_slice(&visionlog(&data).args(["model", "show"]).args(which).output().unwrap().stdout).unwrap();
    let weights = data.join("objects").join(stream["versions"]["1"]["artifact"].as_str().unwrap()).join("model.pt");
    assert!(weights.exists(), "the stored module at {}", weights.display());
    std::fs::write(&weights, b"damaged").unwrap();
    assert!(visionlog(&data).args(["task", "reprocess", "task-000005"]).status().unwrap().success());
    run_until(&|| events(&data, "task-000005").matches("TaskResultGenerated").count() == 2);
    let text = events(&data, "task-000005");
    assert!(!text.contains("ObjectsDetected"), "{text}");
    assert_eq!(text.matches("ModelNotFound").count(), 2, "{text}");
}

/// An uploaded module is code: the gateway checks it in a child process (`model check-module`)
/// under an address-space limit and a deadline, never in itself; what the child says is the
/// answer, and a check that runs out of memory or time refuses the module.
#[test]
fn an_uploaded_module_is_checked_in_a_child_process_under_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data).args(["demo", "--tasks", "4", "--no-training", "--json"]).output().unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let (good, small) = (dir.path().join("good.pt"), dir.path().join("small.pt"));
    traced(&[1, 2, 3, 4, 5, 6, 7, 8], &good);
    traced(&[1, 2, 3], &small);
    let path = "/v1/models/acme%2Fice-cream/artifacts?customer=acme";
    let upload = |api: &visionlog_integration_tests::Api, file: &Path| {
        api.send_bytes(path, "ops-token", "application/octet-stream", std::fs::read(file).unwrap())
    };
    let refused = |a: &visionlog_integration_tests::Answer, why: &str| {
        assert_eq!((a.status, a.body["code"].as_str()), (422, Some("invalid_artifact")), "{a:?}");
        assert!(a.body["detail"].as_str().unwrap_or_default().contains(why), "{why}: {a:?}");
    };
    {
        let (_run, api) =
            visionlog_integration_tests::run_with_gateway(&data, 0, &[("VISIONLOG_MODULE_CHECK_TIMEOUT_MS", "1")]);
        refused(&upload(&api, &good), "took longer than");
    }
    {
        let (_run, api) =
            visionlog_integration_tests::run_with_gateway(&data, 0, &[("VISIONLOG_MODULE_CHECK_MEMORY_MB", "64")]);
        refused(&upload(&api, &good), "address-space limit");
    }
    let (run, api) = visionlog_integration_tests::run_with_gateway(&data, 0, &[]);
    refused(&upload(&api, &small), "wrong classes or input size");
    let a = upload(&api, &good);
    assert_eq!((a.status, a.body["status"].as_str()), (200, Some("appended")), "{a:?}");
    drop(run);
    let list = last_json(&visionlog(&data).args(["model", "list", "--json"]).output().unwrap().stdout);
    assert_eq!(list["model_id"].as_str(), Some("acme:ice-cream:detector"), "registered after the child's check");
}

/// A crop recognizer traced elsewhere is imported like a detector (`?kind=recognizer`, checked
/// in the child process), a detector offered as a recognizer is refused by its probe, and once
/// promoted it classifies the boxes the imported detector finds on a re-processed task.
#[test]
fn an_imported_torchscript_recognizer_classifies_the_detected_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tenants = visionlog_integration_tests::write_tenants(dir.path());
    let tenants = tenants.to_str().unwrap();
    let no_checks = [("VISIONLOG_TENANTS", tenants)];
    let out = visionlog(&data)
        .env("VISIONLOG_TENANTS", tenants)
        .args(["demo", "--tasks", "6", "--no-training", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let classes = [1, 2, 3, 4, 5, 6, 7, 8];
    let (detector, recognizer) = (dir.path().join("detector.pt"), dir.path().join("recognizer.pt"));
    traced(&classes, &detector);
    traced_recognizer(&classes, &recognizer);
    let which = ["--customer", "acme", "--class-group", "acme/ice-cream"];
    let as_recognizer = ["--kind", "recognizer"];

    // the CLI: a detector is not a recognizer
    let out = visionlog(&data)
        .args(["model", "import"])
        .args(which)
        .args(as_recognizer)
        .arg("--file")
        .arg(&detector)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a recognizer"), "{err}");
    // over HTTP, checked in the child: an unknown kind is a bad query, the recognizer goes in
    {
        let (_run, api) = visionlog_integration_tests::run_with_gateway(&data, 0, &[]);
        let upload = |kind: &str| {
            let path = format!("/v1/models/acme%2Fice-cream/artifacts?customer=acme&kind={kind}");
            api.send_bytes(&path, "ops-token", "application/octet-stream", std::fs::read(&recognizer).unwrap())
        };
        let a = upload("segmenter");
        assert_eq!((a.status, a.body["code"].as_str()), (400, Some("invalid_query")), "{a:?}");
        let a = upload("detector");
        assert_eq!((a.status, a.body["code"].as_str()), (422, Some("invalid_artifact")), "{a:?}");
        let a = upload("recognizer");
        assert_eq!((a.status, a.body["status"].as_str()), (200, Some("appended")), "{a:?}");
        let a = api.get("/v1/models/acme%2Fice-cream?customer=acme&kind=recognizer", "ops-token");
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.body["versions"]["1"]["artifact"].as_str().unwrap().contains("recognizer"), "{a:?}");
    }
    let out = visionlog(&data).args(["model", "import"]).args(which).arg("--file").arg(&detector).output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    for kind in ["detector", "recognizer"] {
        let out =
            visionlog(&data).args(["model", "promote"]).args(which).args(["--kind", kind, "--version", "1"]).output();
        assert!(out.as_ref().unwrap().status.success(), "promote {kind}: {out:?}");
    }

    // a re-processed task: the imported detector's boxes, then the imported recognizer's classes
    assert!(visionlog(&data).args(["task", "reprocess", "task-000003"]).status().unwrap().success());
    run_until_with(&data, 0, &no_checks, || events(&data, "task-000003").matches("TaskResultGenerated").count() == 2);
    let text = events(&data, "task-000003");
    let after = &text[text.find("ReprocessRequested").unwrap_or(0)..];
    assert!(after.contains("ObjectsDetected") && after.contains("acme:ice-cream:detector"), "{text}");
    assert!(after.contains("ObjectsRecognized") && after.contains("acme:ice-cream:recognizer"), "{text}");
}
