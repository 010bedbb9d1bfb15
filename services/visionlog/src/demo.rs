//! `visionlog demo`: the whole pipeline in one process on the embedded backends.

use crate::runtime::{Backends, Runtime, Service, join, spawn};
use anyhow::{Context, bail};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::{Recipe, TaskCommand};
use visionlog_journal::{audit, deterministic_id, now_ms};
use visionlog_models::ModelKey;

/// Options of the demo.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Tasks to create.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Keep the data directory and go on from where a previous run stopped.
    #[arg(long)]
    resume: bool,
    /// Simulated operators.
    #[arg(long, default_value_t = 4)]
    operators: usize,
    /// The customer the tasks come from.
    #[arg(long, default_value = "acme")]
    customer: String,
    /// Do not upload the tasks' images (training crops are then recorded as not extractable).
    #[arg(long)]
    no_images: bool,
    /// Tasks of the first wave: they go to operators (no model yet), their ground truth
    /// trains the first detector, and the rest are sent once it is promoted.
    #[arg(long, default_value_t = 60)]
    train_after: usize,
    /// No inference model is trained: every task takes the new-project path to an operator.
    #[arg(long)]
    no_training: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// The recipe of the tasks: `detection-and-recognition` (a detector boxes the products, a
    /// crop recognizer classifies them; both are trained from the first wave) or `detection`
    /// (one detector boxes and classifies).
    #[arg(long, default_value = "detection-and-recognition", value_parser = ["detection", "detection-and-recognition"])]
    recipe: String,
    /// Attach personal data to each task (a store contact and a note), sealed under one of ten
    /// data subjects `subject-0`..`subject-9` (task i belongs to subject i mod 10; its contact is
    /// "Store manager N", manager.N@store-N.example), for trying `visionlog subject shred`.
    #[arg(long)]
    personal_data: bool,
}

/// The personal data the demo attaches to task `i`: its subject and fields.
fn demo_personal(i: usize) -> (String, visionlog_privacy::Personal) {
    let n = i % 10;
    let personal = visionlog_privacy::Personal {
        contact_name: Some(format!("Store manager {n}")),
        contact_email: Some(format!("manager.{n}@store-{n}.example")),
        contact_phone: Some(format!("+44 20 7946 09{n:02}")),
        note: Some(format!("Shelf photos of store {n}, aisle {}", i % 7)),
    };
    (format!("subject-{n}"), personal)
}

/// Tells whether the pipeline is at rest: every service that acts on events has read them all,
/// and the aggregators have decided every command sent so far (on a resumed run the tasks are
/// complete before the re-sent commands are answered). A task with a result may still have work
/// coming (a sampled quality check, a new revision): stopping before the rest would leave the
/// views behind the log.
fn at_rest(rt: &Runtime) -> anyhow::Result<bool> {
    let serving = visionlog_views::generations::read(rt.store.as_ref())?.0.serving;
    let projector = visionlog_views::generations::group(serving);
    let readers =
        [visionlog_executor::GROUP, visionlog_simulated_operators::GROUP, visionlog_inference::GROUP, &projector];
    let events = &rt.topics.events;
    let mut ends = Vec::new();
    for p in 0..rt.topics.partitions {
        let end = rt.log.end_offset(events, p)?;
        for group in readers {
            if rt.log.committed(group, events, p)?.map_or(0, |c| c.offset) < end {
                return Ok(false);
            }
        }
        ends.push(end);
    }
    for p in 0..rt.topics.partitions {
        let end = rt.log.end_offset(&rt.topics.commands, p)?;
        let done = rt.log.committed(visionlog_aggregator::GROUP, &rt.topics.commands, p)?.map_or(0, |c| c.offset);
        if done < end {
            return Ok(false);
        }
    }
    // a command decided since the readers were looked at appended events they have not read
    for (p, end) in ends.into_iter().enumerate() {
        if rt.log.end_offset(events, p as u32)? != end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Tells whether a directory holds nothing or only visionlog's data, so it may be wiped.
fn is_ours(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return true };
    entries.filter_map(Result::ok).all(|e| {
        matches!(e.file_name().to_str(), Some("log" | "store.redb" | "registry.json" | "registry.json.tmp" | "objects"))
    })
}

pub(crate) fn run(backends: &Backends, args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &backends.data_dir;
    if !args.resume && dir.exists() {
        if !is_ours(dir) {
            bail!("{} holds files that are not visionlog's: give another --data-dir", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let rt = Runtime::open(backends)?;
    let stop = Arc::new(AtomicBool::new(false));
    // a model is trained when there is a second wave for it to serve
    let training = !args.no_training && !args.no_images && args.tasks > args.train_after;
    let mut services = vec![
        Service::Aggregator,
        Service::Executor,
        Service::Projector,
        Service::SimulatedOperators,
        Service::Inference,
    ];
    if training {
        services.push(Service::Trainer);
    }
    let mut trainer = rt.settings.trainer();
    // the first wave's training tasks trigger the first model (one task in five is held out)
    trainer.min_new_tasks = trainer.min_new_tasks.min((args.train_after as u64 * 3 / 4).max(1));
    let health =
        crate::health::Health::start(backends.health_addr, rt.settings.ready_max_lag, rt.log.clone(), stop.clone())?;
    let threads = spawn(&rt, &services, &stop, args.operators, &trainer, &health);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_s);
    let progress = crate::progress::Progress::bar("demo", "tasks completed", args.tasks as u64, args.json);
    let first_wave = if training { args.train_after.min(args.tasks) } else { args.tasks };
    submit(&rt, args, 0..first_wave)?;
    progress.say("by operators");
    let mut completed = wait_for(&rt, first_wave, deadline, &progress)?;
    let group = visionlog_simulated_operators::scenario::class_group_key(&args.customer);
    let key = ModelKey::detector(&args.customer, &group);
    let recognizer_key = ModelKey::recognizer(&args.customer, &group);
    // the models the second wave needs: the detector, and the recognizer where the recipe has one
    let mut needed = vec![key.clone()];
    if recipe(args) == Recipe::DetectionAndRecognition {
        needed.push(recognizer_key.clone());
    }
    if first_wave < args.tasks {
        // the trainer's policy sees the first wave's ground truth, trains, backtests, promotes
        progress.say("training the first models");
        loop {
            let mut deployed = true;
            for k in &needed {
                deployed &= rt.registry.stream(k)?.deployed.is_some();
            }
            if deployed || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        submit(&rt, args, first_wave..args.tasks)?;
        progress.say("by the model");
        completed = wait_for(&rt, args.tasks, deadline, &progress)?;
    }
    drop(progress);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    join(threads, &stop)?;
    let a = audit(rt.log.as_ref(), &rt.topics)?;
    let dead_letters = rt.log.end_offset(&rt.topics.dead_letters, 0)?;
    let created = a.events_by_type.get("TaskCreated").copied().unwrap_or(0);
    let count = |t: &str| a.events_by_type.get(t).copied().unwrap_or(0);
    let stream = rt.registry.stream(&key)?;
    let recognizers = rt.registry.stream(&recognizer_key)?;
    let promoted = [&stream, &recognizers]
        .iter()
        .map(|s| s.deployments.iter().filter(|(_, v)| v.is_some()).count())
        .sum::<usize>();
    let artifact = |s: &visionlog_models::ModelStream| s.deployed.map(|v| s.versions[&v].artifact.clone());
    let recognizer = artifact(&recognizers).filter(|_| needed.len() > 1);
    let held_out = match artifact(&stream) {
        Some(detector) if training => Some(held_out_score(&rt, &detector, recognizer.as_deref())?),
        _ => None,
    };
    // the operator monitor: each operator's accuracy where another operator checked its work
    let operator_accuracy: serde_json::Map<String, serde_json::Value> =
        visionlog_views::queries::operators(rt.store.as_ref(), None, None, None)?
            .into_iter()
            .filter_map(|l| {
                Some((l.operator, json!({"accuracy": l.accuracy?, "annotations_checked": l.annotations_rechecked})))
            })
            .collect();
    let report = json!({
        "tasks_created": created,
        "tasks_completed": completed,
        "events_written": a.events,
        "events_per_task": if created > 0 { a.events as f64 / created as f64 } else { 0.0 },
        "version_gaps": a.version_gaps,
        "duplicate_events": a.duplicate_events,
        "rejected_commands": a.rejections,
        "commands_decided": a.decisions,
        "dead_letters": dead_letters,
        "owner_claims": a.claims,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "events_per_s": (a.events as f64 / elapsed).round(),
        "partitions": rt.topics.partitions,
        "models_promoted": promoted,
        "deployed_model": stream.deployed.map(|v| format!("{}@v{v}", key.model_id())),
        "automatic_tasks": count("ObjectsDetected"),
        "assisted_tasks": count("AssistanceRequested"),
        "quality_checks": count("QualityCheckRequested"),
        "operator_accuracy": operator_accuracy,
        "recipe": args.recipe,
        "deployed_recognizer": recognizers.deployed.map(|v| format!("{}@v{v}", recognizer_key.model_id())),
        "recognized_tasks": count("ObjectsRecognized"),
        "held_out_precision": held_out.as_ref().map(|h| h.precision),
        "held_out_recall": held_out.as_ref().map(|h| h.recall),
        "held_out_recognition_accuracy": held_out.as_ref().and_then(|h| h.recognition_accuracy),
        "held_out_scenes": held_out.as_ref().map(|h| h.scenes),
        "per_class": held_out.as_ref().map(|h| &h.per_class),
        "data_dir": backends.data_dir.display().to_string(),
    });
    if args.json {
        crate::output::line(format!("{report}"));
    } else {
        crate::output::line(format!(
            "visionlog demo: {} tasks; the first {first_wave} by operators, the rest by the model they trained",
            args.tasks
        ));
        for key in [
            "tasks_created",
            "tasks_completed",
            "events_written",
            "events_per_task",
            "version_gaps",
            "duplicate_events",
            "rejected_commands",
            "dead_letters",
            "elapsed_s",
            "events_per_s",
            "models_promoted",
            "deployed_model",
            "automatic_tasks",
            "assisted_tasks",
            "quality_checks",
            "deployed_recognizer",
            "recognized_tasks",
            "held_out_precision",
            "held_out_recall",
            "held_out_recognition_accuracy",
        ] {
            crate::output::line(format!("  {key:<18} {}", report[key]));
        }
        // commands a newcomer can paste: this very binary (it need not be on the PATH), this data
        crate::output::line(format!("  try:  {} task show task-000000", paste_prefix(backends)));
        crate::output::line(format!("        {} report tasks", paste_prefix(backends)));
    }
    if completed < args.tasks {
        bail!("only {completed} of {} tasks completed within {}s", args.tasks, args.timeout_s);
    }
    Ok(())
}

/// Sends the CreateTask commands of tasks `range`, after uploading their photos.
fn submit(rt: &Runtime, args: &DemoArgs, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    for i in range {
        let task_id = format!("task-{i:06}");
        let scenario = visionlog_simulated_operators::scenario::scenario(&task_id, &args.customer);
        if !args.no_images {
            // the customer's upload: synthetic shelf photos of the scenario's products
            for (key, png) in visionlog_simulated_operators::scenario::images(&scenario) {
                rt.objects.put(&key, png)?;
            }
        }
        let mut create = scenario.create;
        create.recipe = recipe(args);
        if args.personal_data {
            // sealed here, at the edge: no topic ever holds the plaintext
            let (subject, personal) = demo_personal(i);
            create.personal =
                Some(visionlog_privacy::KeyStore::new(rt.store.clone()).seal(&subject, &task_id, &personal)?);
        }
        let create = TaskCommand::CreateTask(create);
        let command_id = deterministic_id(&["demo", &task_id, "create"]);
        let envelope = CommandEnvelope {
            command_id: command_id.clone(),
            task_id,
            command_type: create.type_name().to_owned(),
            expected_version: None,
            actor: format!("customer:{}", args.customer),
            tenant: args.customer.clone(),
            correlation_id: command_id,
            causation_id: None,
            issued_at_ms: now_ms(),
        };
        rt.bus.send(&envelope, &create)?;
    }
    Ok(())
}

/// Waits until `tasks` tasks have a result and the pipeline is at rest (or the deadline).
fn wait_for(
    rt: &Runtime,
    tasks: usize,
    deadline: Instant,
    progress: &crate::progress::Progress,
) -> anyhow::Result<usize> {
    let mut completed = 0;
    loop {
        // the store or the broker may be away for a while (a restarted node): the services
        // reconnect by themselves, and so does this wait; only the deadline ends it
        let check =
            visionlog_views::list_summaries(rt.store.as_ref()).map_err(anyhow::Error::from).and_then(|summaries| {
                completed = summaries.iter().filter(|s| s.completed_at_ms.is_some()).count();
                Ok(completed >= tasks && at_rest(rt)?)
            });
        let done = check.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "demo: progress unknown for now; asking again");
            false
        });
        progress.set(completed as u64);
        if done || Instant::now() > deadline {
            return Ok(completed);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The recipe the demo's tasks ask for.
fn recipe(args: &DemoArgs) -> Recipe {
    if args.recipe == "detection" { Recipe::Detection } else { Recipe::DetectionAndRecognition }
}

/// How the deployed models do on shelf scenes generated for this check alone (never a task's).
#[derive(Debug, serde::Serialize)]
struct HeldOut {
    /// Detection: boxes found (IoU >= 0.5; with the detector's own classes where there is no
    /// recognizer) over boxes predicted, and over true boxes.
    precision: f64,
    recall: f64,
    /// The recognizer's top-1 accuracy on the true boxes' crops.
    recognition_accuracy: Option<f64>,
    scenes: usize,
    /// Per class name: precision and recall of the final classes (detector boxes, recognizer
    /// classes) and the recognizer's accuracy on that class's true boxes.
    per_class: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Scores the deployed detector (and recognizer) on [`HeldOut`] scenes.
fn held_out_score(rt: &Runtime, detector: &str, recognizer: Option<&str>) -> anyhow::Result<HeldOut> {
    use visionlog_domain::scoring::{self, Counts, Placed};
    use visionlog_vision::{DETECTOR_INPUT, DecodeConfig, Detector, Expect, ModelKind, RECOGNIZER_INPUT, Recognizer};
    const SCENES: usize = 40;
    let device = visionlog_vision::device_choice().device;
    let classes = visionlog_simulated_operators::scenario::class_ids();
    let names: std::collections::BTreeMap<u32, String> =
        visionlog_simulated_operators::scenario::scenario("names", "acme")
            .create
            .class_group
            .classes
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
    let expect = Expect { kind: ModelKind::Detector, classes: classes.clone(), input: DETECTOR_INPUT };
    let det = Detector::load(&visionlog_inference::artifacts::get(&rt.objects, detector)?, &expect, device)?;
    let rec = match recognizer {
        Some(a) => {
            let expect = Expect { kind: ModelKind::Recognizer, classes: classes.clone(), input: RECOGNIZER_INPUT };
            Some(Recognizer::load(&visionlog_inference::artifacts::get(&rt.objects, a)?, &expect, device)?)
        }
        None => None,
    };
    let (mut boxes, mut final_classes) = (Counts::default(), std::collections::BTreeMap::<u32, Counts>::new());
    let mut recognized: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for i in 0..SCENES {
        let (photo, truth) = visionlog_simulated_operators::scenario::labelled_photo(&format!("demo-held-out/{i}"));
        let found = det.detect(&[&photo], &DecodeConfig::default())?.remove(0);
        let t: Vec<Placed> = truth.iter().map(|(b, c)| Placed { image: 0, bbox: *b, class_id: Some(*c) }).collect();
        let mut p: Vec<Placed> =
            found.iter().map(|d| Placed { image: 0, bbox: d.bbox, class_id: d.class_id }).collect();
        if let Some(rec) = &rec {
            // the recipe's two steps: the detector's boxes, the recognizer's classes
            let crops = found
                .iter()
                .map(|d| photo.crop(d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h))
                .collect::<Result<Vec<_>, _>>()?;
            let got = rec.classify(&crops.iter().collect::<Vec<_>>())?;
            for (p, (class, _)) in p.iter_mut().zip(got) {
                p.class_id = Some(class);
            }
            let unclassed: Vec<Placed> = p.iter().map(|p| Placed { class_id: None, ..*p }).collect();
            boxes.add(&scoring::total(&scoring::score(&unclassed, &t)));
            let crops = truth.iter().map(|(b, _)| photo.crop(b.x, b.y, b.w, b.h)).collect::<Result<Vec<_>, _>>()?;
            for ((_, want), (got, _)) in truth.iter().zip(rec.classify(&crops.iter().collect::<Vec<_>>())?) {
                let e = recognized.entry(*want).or_default();
                e.0 += u64::from(got == *want);
                e.1 += 1;
            }
        }
        let per_class = scoring::score(&p, &t);
        if rec.is_none() {
            boxes.add(&scoring::total(&per_class));
        }
        for (class, c) in per_class {
            final_classes.entry(class).or_default().add(&c);
        }
    }
    let round = |x: Option<f64>| (x.unwrap_or(0.0) * 1000.0).round() / 1000.0;
    let ratio = |(right, all): (u64, u64)| (all > 0).then(|| right as f64 / all as f64);
    let per_class = classes
        .iter()
        .map(|c| {
            let counts = final_classes.get(c).copied().unwrap_or_default();
            let value = json!({
                "class_id": c,
                "precision": round(counts.precision()),
                "recall": round(counts.recall()),
                "recognition_accuracy": rec.as_ref().map(|_| round(recognized.get(c).copied().and_then(ratio))),
                "true_boxes": counts.tp + counts.fn_,
            });
            (names.get(c).cloned().unwrap_or_else(|| c.to_string()), value)
        })
        .collect();
    let all = recognized.values().fold((0, 0), |a, (r, n)| (a.0 + r, a.1 + n));
    Ok(HeldOut {
        precision: round(boxes.precision()),
        recall: round(boxes.recall()),
        recognition_accuracy: rec.as_ref().map(|_| round(ratio(all))),
        scenes: SCENES,
        per_class,
    })
}

/// `<this binary> --data-dir <dir> [--log ...] [--store ...]`, shell-quoted where needed, with
/// credentials redacted: the start of a command that reads what the demo wrote.
fn paste_prefix(backends: &Backends) -> String {
    let quote = |s: &str| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@,".contains(c)) {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let exe = std::env::current_exe().map_or_else(|_| "visionlog".to_owned(), |p| p.display().to_string());
    let data = backends.data_dir.canonicalize().unwrap_or_else(|_| backends.data_dir.clone());
    let mut out = format!("{} --data-dir {}", quote(&exe), quote(&data.display().to_string()));
    for (flag, url) in [("--log", &backends.log), ("--store", &backends.store), ("--objects", &backends.objects)] {
        if let Some(url) = url {
            out.push_str(&format!(" {flag} {}", quote(&crate::runtime::redacted(url))));
        }
    }
    out
}
