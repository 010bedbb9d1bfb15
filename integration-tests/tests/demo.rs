//! The demo, run as a newcomer would, and killed and restarted as a crash would.

use std::time::Duration;
use visionlog_integration_tests::{Leftovers, last_json, terminate, visionlog};
use visionlog_journal::audit;

/// `visionlog demo --tasks 200 --json` runs the whole loop with a clean journal: the first 60
/// tasks go to operators, their ground truth trains a detector and a crop recognizer on the
/// CPU, both are backtested and promoted, and the other 140 are done by the two models in the
/// detection-and-recognition recipe (a sample checked by operators).
#[test]
fn the_demo_completes_200_tasks_with_no_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = visionlog(&data).args(["demo", "--tasks", "200", "--json"]).output().unwrap();
    assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));
    // a healthy run says nothing alarming: services wait for the views quietly
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(warnings.is_empty(), "a healthy demo logged:\n{}", warnings.join("\n"));
    // no progress bar off a terminal (nor with --json)
    assert!(!stderr.contains('\r') && !stderr.contains("tasks completed"), "progress drawn: {stderr}");
    let report = last_json(&out.stdout);
    assert_eq!(report["tasks_created"], 200);
    assert_eq!(report["tasks_completed"], 200);
    assert_eq!(report["version_gaps"], 0);
    assert_eq!(report["duplicate_events"], 0);
    assert_eq!(report["rejected_commands"], 0);
    assert_eq!(report["dead_letters"], 0);
    assert_eq!(report["models_promoted"], 2, "{report}");
    assert_eq!(report["deployed_model"], "acme:ice-cream:detector@v1");
    assert_eq!(report["deployed_recognizer"], "acme:ice-cream:recognizer@v1");
    assert_eq!(report["recognized_tasks"], 140, "{report}");
    assert_eq!(report["assisted_tasks"], 60, "{report}");
    assert_eq!(report["automatic_tasks"], 140, "{report}");
    assert!(report["quality_checks"].as_u64().unwrap() > 0, "{report}");
    // the promoted models on scenes no task ever showed (classes in pairs that differ by shade
    // and small print, look-alike distractors, signs and tags over the packages): the detector's
    // boxes, and the recognizer's classes on the true boxes; chance is 1/8
    let (p, r) = (report["held_out_precision"].as_f64().unwrap(), report["held_out_recall"].as_f64().unwrap());
    assert!(p >= 0.7 && r >= 0.6, "held-out precision {p} recall {r}");
    let accuracy = report["held_out_recognition_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.8, "held-out recognition accuracy {accuracy}");
    let per_class = report["per_class"].as_object().unwrap();
    assert_eq!(per_class.len(), 8, "{report}");
    for (name, c) in per_class {
        assert!(c["true_boxes"].as_u64().unwrap() > 0, "{name}: {c}");
        for figure in ["precision", "recall", "recognition_accuracy"] {
            assert!(c[figure].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)), "{name}.{figure}: {c}");
        }
    }
    // an automatic task: boxed by the detector, classified by the recognizer, no operator
    let out = visionlog(&data).args(["task", "show", "task-000150"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let types: Vec<_> = text.lines().map(|l| l.split_whitespace().nth(1).unwrap_or_default()).collect();
    assert_eq!(
        types[..6],
        [
            "TaskCreated",
            "DetectionRequested",
            "ObjectsDetected",
            "RecognitionRequested",
            "ObjectsRecognized",
            "TaskResultGenerated"
        ],
        "{text}"
    );
    assert!(text.contains("acme:ice-cream:detector") && text.contains("acme:ice-cream:recognizer"), "{text}");
    // the model stream says what was trained, backtested and promoted
    let out = visionlog(&data).args(["model", "list", "--json"]).output().unwrap();
    let models: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<_> = models.iter().map(|m| (m["model_id"].as_str().unwrap(), m["deployed"].as_u64())).collect();
    assert_eq!(ids, [("acme:ice-cream:detector", Some(1)), ("acme:ice-cream:recognizer", Some(1))], "{models:?}");
    // the engine monitor: every quality check scores the model's run against the corrected truth,
    // next to the trainer's backtest
    // (the detector on its boxes; the recognizer per class, both next to their backtests)
    // quality checks sample the models' results and the operators' first results: each check
    // of a model's result is a run on the engine monitor, each of an operator's a sample of its
    // accuracy on the operator monitor (op-N overlooks about N * 4 % of the products)
    let operators = report["operator_accuracy"].as_object().unwrap();
    assert!(operators.values().all(|o| (0.5..=1.0).contains(&o["accuracy"].as_f64().unwrap())), "{report}");
    // the checks finished by the end (one requested last may still wait for its operator): of
    // the operator monitor's finished quality-check sessions, those that followed an annotation
    // checked an operator, the others a model's result
    let out = visionlog(&data).args(["report", "operators", "--json"]).output().unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sum = |field: &str| lines.iter().map(|l| l[field].as_u64().unwrap()).sum::<u64>();
    let (finished_checks, operator_checks) = (sum("quality_check_sessions"), sum("annotations_rechecked"));
    assert!(operator_checks > 0 && finished_checks <= report["quality_checks"].as_u64().unwrap(), "{lines:?}");
    let model_checks = finished_checks - operator_checks;
    assert!(model_checks > 0, "{report}");
    for model in ["acme:ice-cream:detector@1", "acme:ice-cream:recognizer@1"] {
        let out = visionlog(&data).args(["report", "accuracy", "--json", "--model", model]).output().unwrap();
        let accuracy = last_json(&out.stdout);
        assert_eq!(accuracy["model"], model, "{accuracy}");
        assert_eq!(accuracy["total"]["runs"], model_checks, "{accuracy}");
        assert!(accuracy["total"]["precision"].as_f64().unwrap() >= 0.7, "{accuracy}");
        assert!(accuracy["backtest"]["recall"].as_f64().unwrap() >= 0.6, "{accuracy}");
    }
    // the "Train" button: a second version, backtested against the deployed one on the same
    // held-out tasks (its quality-checked ones by their recorded predictions), promoted only if better
    let which = ["--customer", "acme", "--class-group", "acme/ice-cream"];
    let out = visionlog(&data).args(["model", "train"]).args(which).output().unwrap();
    assert!(out.status.success(), "train: {}", String::from_utf8_lossy(&out.stderr));
    let mut stream = serde_json::Value::Null;
    // (a run that stops mid-training trains anew the next time: each run is given longer, as
    // 60 steps took over 40 s in CI beside the other demos of this file)
    for seconds in [20, 40, 80, 120] {
        let mut run = visionlog(&data).env("VISIONLOG_TRAIN_STEPS", "60").args(["run"]).spawn().unwrap();
        std::thread::sleep(Duration::from_secs(seconds));
        assert!(terminate(&mut run, Duration::from_secs(60)).success());
        let out = visionlog(&data).args(["model", "show"]).args(which).output().unwrap();
        stream = serde_json::from_slice(&out.stdout).unwrap();
        if stream["versions"]["2"]["backtest"].is_array() {
            break;
        }
    }
    let v2 = &stream["versions"]["2"];
    assert_eq!(v2["baseline"][0], 1, "compared with the deployed version: {stream}");
    let (f1, baseline_f1) = (v2["backtest"][3].as_f64().unwrap(), v2["baseline"][1].as_f64().unwrap());
    let deployed = stream["deployed"].as_u64().unwrap();
    assert_eq!(deployed, if f1 > baseline_f1 && f1 >= 0.5 { 2 } else { 1 }, "{stream}");
    assert!(stream["pending_training"].is_null(), "the request was answered: {stream}");
    // time travel: the state of a task as of version 4 is still waiting for an operator
    let out = visionlog(&data).args(["task", "state", "task-000042", "--version", "4"]).output().unwrap();
    assert!(out.status.success());
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["version"], 4);
    assert_eq!(state["state"]["stage"]["AwaitingOperator"], "ANNOTATION");
    let out = visionlog(&data).args(["task", "show", "task-000042"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let types: Vec<_> = text.lines().map(|l| l.split_whitespace().nth(1).unwrap_or_default()).collect();
    // (a quality check of the operator's result may follow: a sample of them is checked)
    assert_eq!(
        types[..8.min(types.len())],
        [
            "TaskCreated",
            "DetectionRequested",
            "ModelNotFound",
            "AssistanceRequested",
            "OperatorAssigned",
            "ObjectsAdded",
            "OperatorFinished",
            "TaskResultGenerated"
        ]
    );
}

/// SIGKILL the demo mid-run several times and restart it: no accepted command is lost, no event
/// is duplicated, every stream's versions are contiguous, and every task completes.
#[test]
fn killing_the_demo_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tasks = "1500";
    let mut killed_mid_run = 0;
    for (round, delay_ms) in [250u64, 400, 150, 600, 300].into_iter().enumerate() {
        let mut args = vec!["demo", "--tasks", tasks, "--json", "--no-training"];
        if round > 0 {
            args.push("--resume");
        }
        let mut child = visionlog(&data)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // the kill lands `delay_ms` into the work, not into the start-up (loading libtorch alone
        // takes a few hundred ms in a debug build): the log's directory marks the backends open
        // open (a resumed run's log is there already: it gets a start-up allowance instead)
        let started = std::time::Instant::now();
        while !data.join("log").exists() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let allowance = if round > 0 { 500 } else { 0 };
        std::thread::sleep(Duration::from_millis(delay_ms + allowance));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed_mid_run >= 3, "the demo finished before it could be killed ({killed_mid_run} kills)");

    // after the crashes, the journal is whole and consistent with every outcome published
    {
        let left = Leftovers::open(&data);
        let a = audit(left.log.as_ref(), &left.topics).unwrap();
        assert_eq!((a.version_gaps, a.duplicate_events), (0, 0), "after the crashes");
        for o in left.outcomes().iter().filter(|o| o.accepted) {
            assert!(a.accepted_commands.contains(&o.command_id), "accepted command {} has no events", o.command_id);
        }
    }

    let out =
        visionlog(&data).args(["demo", "--tasks", tasks, "--json", "--resume", "--no-training"]).output().unwrap();
    assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = last_json(&out.stdout);
    assert_eq!(report["tasks_completed"], 1500, "{report}");
    assert_eq!(report["tasks_created"], 1500, "{report}");
    assert_eq!(report["version_gaps"], 0, "{report}");
    assert_eq!(report["duplicate_events"], 0, "{report}");
    assert!(report["owner_claims"].as_u64().unwrap() > 4, "owners restarted: {report}");
    let left = Leftovers::open(&data);
    let a = audit(left.log.as_ref(), &left.topics).unwrap();
    // every task's new-project flow once (8 events), and a sample of the operators' results
    // checked by another operator: one assignment and one seal per check, a new result where
    // the check corrected the annotator
    let n = |t: &str| a.events_by_type.get(t).copied().unwrap_or(0);
    for t in ["TaskCreated", "DetectionRequested", "ModelNotFound", "AssistanceRequested"] {
        assert_eq!(n(t), 1500, "{t}: {:?}", a.events_by_type);
    }
    let checks = n("QualityCheckRequested");
    assert!(checks > 0, "{:?}", a.events_by_type);
    assert_eq!(
        (n("OperatorAssigned"), n("OperatorFinished")),
        (1500 + checks, 1500 + checks),
        "{:?}",
        a.events_by_type
    );
    assert!((1500..=1500 + checks).contains(&n("TaskResultGenerated")), "{:?}", a.events_by_type);
    assert_eq!(report["events_written"], a.events, "{report}");
    let outcomes = left.outcomes();
    for o in outcomes.iter().filter(|o| o.accepted) {
        assert!(a.accepted_commands.contains(&o.command_id), "accepted command {} has no events", o.command_id);
    }
    // every command in the journal has an outcome
    let answered: std::collections::HashSet<_> = outcomes.iter().map(|o| o.command_id.clone()).collect();
    assert!(a.accepted_commands.iter().all(|c| answered.contains(c)));
}

/// On a terminal the demo shows a progress bar on standard error (here a pseudo-terminal made
/// by `script`); its report is the same.
#[test]
fn the_demo_shows_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let command = format!(
        "'{}' --data-dir '{}' demo --tasks 6 --no-training --no-images",
        visionlog_integration_tests::binary().display(),
        data.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux runs a command on a pseudo-terminal");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo on a terminal failed: {terminal}");
    assert!(terminal.contains("tasks completed"), "no progress bar on a terminal: {terminal}");
    assert!(terminal.contains("tasks_completed"), "no report: {terminal}");
}
