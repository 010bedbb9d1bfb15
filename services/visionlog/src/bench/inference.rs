//! `visionlog bench inference`: photos/s of the inference worker's path (scale, forward, read
//! boxes) with a TorchScript detector, against Python PyTorch running the same module on the
//! same photos with the same steps (`scripts/bench_inference.py`), in the same run; batch
//! sizes 1, 8 and 32. Also the training photos/s of the detector, and the crop recognizer's
//! crops/s on the same path as the worker's (scale to 32x32, forward, best class), one box per
//! call against the worker's batches of boxes across tasks.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};
use visionlog_vision::train::{Flow, TrainConfig, train, training_image};
use visionlog_vision::{
    DETECTOR_INPUT, DecodeConfig, Detector, Expect, ModelKind, RECOGNIZER_INPUT, Recognizer, import_torchscript,
};

#[derive(clap::Args, Debug)]
pub(crate) struct InferenceBench {
    /// Photos in the workload (640x480 shelf scenes).
    #[arg(long, default_value_t = 64)]
    photos: usize,
    /// Training steps before measuring (so the model finds real boxes).
    #[arg(long, default_value_t = 100)]
    train_steps: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// A Python with the full `torch==2.13.0` (`VISIONLOG_BENCH_DEPS=1 ./scripts/install.sh`).
    #[arg(long, env = "VISIONLOG_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

const BATCHES: [usize; 3] = [1, 8, 32];

/// Crops per recognizer call: one box at a time, and the worker's batches across tasks.
const CROP_BATCHES: [usize; 4] = [1, 8, 32, 128];

fn measure(seconds: f64, photos: usize, batch: usize, mut run: impl FnMut(std::ops::Range<usize>)) -> f64 {
    run(0..batch); // warm-up
    let (mut images, started) = (0usize, Instant::now());
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        let mut i = 0;
        while i + batch <= photos {
            run(i..i + batch);
            images += batch;
            i += batch;
        }
    }
    images as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn run(b: &InferenceBench) -> anyhow::Result<()> {
    let rt = visionlog_vision::device_choice();
    // the baseline's Python, looked for before anything is measured
    let python = b.python.clone().or_else(|| {
        let p = PathBuf::from(std::env::var("HOME").ok()?).join(".cache/visionlog/torch-py/bin/python");
        p.exists().then_some(p)
    });
    if let Some(python) = python.as_ref().filter(|p| !p.exists()) {
        bail!(
            "no Python at {} for the baseline: `VISIONLOG_BENCH_DEPS=1 ./scripts/install.sh` installs one \
             with torch, or unset VISIONLOG_BENCH_PYTHON to measure without it",
            python.display()
        );
    }
    let (w, h) = visionlog_simulated_operators::scenario::IMAGE_SIZE;
    let classes = visionlog_simulated_operators::scenario::class_ids();
    let scenes: Vec<_> =
        (0..b.photos).map(|i| visionlog_simulated_operators::scenario::labelled_photo(&format!("bench/{i}"))).collect();

    // train briefly: training photos/s, and a model whose output has real peaks to read
    let mut det = Detector::new(&classes, DETECTOR_INPUT, rt.device, 11)?;
    let data =
        scenes.iter().map(|(px, t)| training_image(px, t, &classes, DETECTOR_INPUT)).collect::<Result<Vec<_>, _>>()?;
    let info =
        train(&det, &data, &TrainConfig { steps: b.train_steps, ..Default::default() }, &mut |_| Flow::Continue)?;
    det.freeze();

    // the same module for both sides: traced to TorchScript, imported as a data scientist's would be
    let dir = tempfile::tempdir()?;
    let pt = dir.path().join("detector.pt");
    let probe = Tensor::zeros([1, 3, DETECTOR_INPUT.1, DETECTOR_INPUT.0], (Kind::Float, rt.device));
    let module = tch::CModule::create_by_tracing("Detector", "forward", &[probe], &mut |ins| {
        vec![det.forward(&ins[0]).expect("forward")]
    })?;
    module.save(&pt)?;
    let artifact = import_torchscript(std::fs::read(&pt)?, ModelKind::Detector, classes.clone());
    let expect = Expect { kind: ModelKind::Detector, classes: classes.clone(), input: DETECTOR_INPUT };
    let scripted = Detector::load(&artifact, &expect, rt.device)?;
    let photos: Vec<_> = scenes.iter().map(|(px, _)| px).collect();
    let cfg = DecodeConfig::default();
    let boxes_on_8: usize = scripted.detect(&photos[..8.min(photos.len())], &cfg)?.iter().map(Vec::len).sum();

    let mut ours = serde_json::Map::new();
    let mut native = serde_json::Map::new();
    for batch in BATCHES {
        let ips = measure(b.seconds, photos.len(), batch, |r| {
            scripted.detect(&photos[r], &cfg).expect("detect");
        });
        ours.insert(batch.to_string(), json!((ips * 10.0).round() / 10.0));
        let ips = measure(b.seconds, photos.len(), batch, |r| {
            det.detect(&photos[r], &cfg).expect("detect");
        });
        native.insert(batch.to_string(), json!((ips * 10.0).round() / 10.0));
    }

    let (mut recognizer, rec_pt, rec_boxes) = recognizer(b, &scenes, &classes, rt.device, dir.path())?;

    // Python PyTorch, same module, same photos, same steps
    let baseline = match &python {
        Some(python) => {
            let boxes_json = dir.path().join("boxes.json");
            std::fs::write(&boxes_json, serde_json::to_vec(&rec_boxes)?)?;
            let raw = dir.path().join("photos.u8");
            std::fs::write(&raw, scenes.iter().flat_map(|(px, _)| px.pixels.iter().copied()).collect::<Vec<u8>>())?;
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench_inference.py");
            let out = std::process::Command::new(python)
                .arg(script)
                .args(["--model", &pt.display().to_string(), "--images", &raw.display().to_string()])
                .args(["--count", &b.photos.to_string(), "--height", &h.to_string(), "--width", &w.to_string()])
                .args(["--classes", &classes.len().to_string(), "--threads", &rt.threads.to_string()])
                .args(["--seconds", &b.seconds.to_string()])
                .args(["--recognizer", &rec_pt.display().to_string(), "--boxes", &boxes_json.display().to_string()])
                .output()
                .with_context(|| format!("running {}", python.display()))?;
            if !out.status.success() {
                bail!("the Python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let line = String::from_utf8_lossy(&out.stdout);
            Some(serde_json::from_str::<Value>(line.lines().last().unwrap_or_default())?)
        }
        None => None,
    };
    let ours_per_s = Value::Object(ours.clone());
    let ratios = baseline.as_ref().map(|py| ratios_by_batch(&BATCHES, &ours_per_s, py));
    // the headline ratio: the geometric mean over the batch sizes
    let ratio = ratios.as_ref().map(geometric_mean);
    if let Some(py) = baseline.as_ref().map(|py| &py["recognizer"]) {
        let by_batch = ratios_by_batch(&CROP_BATCHES, &recognizer["crops_per_s"], py);
        recognizer["python_crops_per_s"] = py.clone();
        recognizer["ratio"] = json!(geometric_mean(&by_batch));
        recognizer["ratio_by_batch"] = Value::Object(by_batch);
    }
    let report = json!({
        "bench": "inference",
        "device": format!("{:?}", rt.device),
        "threads": rt.threads,
        "photos": b.photos,
        "photo_size": [w, h],
        "model_input": [DETECTOR_INPUT.0, DETECTOR_INPUT.1],
        "boxes_on_8_photos": boxes_on_8,
        "images_per_s": ours,
        "images_per_s_native": native,
        "python_images_per_s": baseline,
        "ratio_by_batch": ratios,
        "ratio": ratio,
        "baseline": if python.is_some() { "python torch 2.13.0, same TorchScript module, same photos" } else { "none: no Python with torch (VISIONLOG_BENCH_DEPS=1 ./scripts/install.sh)" },
        "training_images_per_s": (info.images_per_second * 10.0).round() / 10.0,
        "training_steps": info.steps,
        "recognizer": recognizer,
    });
    if !b.json {
        crate::output::line(format!(
            "inference on {:?}, {} threads, {} photos of {w}x{h}",
            rt.device, rt.threads, b.photos
        ));
        for batch in BATCHES {
            let k = batch.to_string();
            crate::output::line(format!(
                "  batch {batch:>2}: ours {} images/s, python {} images/s",
                report["images_per_s"][&k], report["python_images_per_s"][&k]
            ));
        }
        crate::output::line(format!("  training: {} images/s", report["training_images_per_s"]));
        let r = &report["recognizer"];
        crate::output::line(format!(
            "  recognizer: {} crops/s one at a time, {} in batches of 128 ({}x); accuracy {}",
            r["crops_per_s"]["1"], r["crops_per_s"]["128"], r["batch_ratio"], r["accuracy_on_trained_crops"]
        ));
    }
    crate::output::line(report.to_string());
    Ok(())
}

/// Ours over Python's items/s per batch size, to three places.
fn ratios_by_batch(batches: &[usize], ours: &Value, python: &Value) -> serde_json::Map<String, Value> {
    batches
        .iter()
        .map(|b| {
            let k = b.to_string();
            let r = ours[&k].as_f64().unwrap_or(0.0) / python[&k].as_f64().unwrap_or(f64::NAN);
            (k, json!((r * 1000.0).round() / 1000.0))
        })
        .collect()
}

/// The geometric mean of ratios, to three places.
fn geometric_mean(r: &serde_json::Map<String, Value>) -> f64 {
    let logs: f64 = r.values().filter_map(Value::as_f64).map(f64::ln).sum();
    ((logs / r.len() as f64).exp() * 1000.0).round() / 1000.0
}

/// The crop recognizer, trained briefly on the scenes' true boxes, traced to TorchScript and
/// imported as the worker serves it: crops/s per batch size, and batches of 128 against one
/// crop per call (what serving each box, or each small task, alone would cost). Also its
/// TorchScript file and the boxes in whole pixels `[photo, x0, y0, x1, y1]` (as [`Rgb::crop`]
/// cuts them), for the Python baseline.
///
/// [`Rgb::crop`]: visionlog_imaging::Rgb::crop
fn recognizer(
    b: &InferenceBench,
    scenes: &[(visionlog_imaging::Rgb, Vec<(visionlog_domain::BoundingBox, u32)>)],
    classes: &[u32],
    device: tch::Device,
    dir: &std::path::Path,
) -> anyhow::Result<(Value, PathBuf, Vec<[u32; 5]>)> {
    let (mut labelled, mut boxes) = (Vec::new(), Vec::new());
    for (i, (photo, truth)) in scenes.iter().enumerate() {
        for (bbox, class) in truth {
            labelled.push((photo.crop(bbox.x, bbox.y, bbox.w, bbox.h)?, *class));
            let (x1, y1) = ((bbox.x + bbox.w).ceil() as u32, (bbox.y + bbox.h).ceil() as u32);
            boxes.push([
                i as u32,
                bbox.x.floor() as u32,
                bbox.y.floor() as u32,
                x1.min(photo.width),
                y1.min(photo.height),
            ]);
        }
    }
    let mut rec = Recognizer::new(classes, device, 13)?;
    let info = rec.train(&labelled, &TrainConfig { steps: b.train_steps, ..Default::default() })?;
    rec.freeze();
    let pt = dir.join("recognizer.pt");
    let probe = Tensor::zeros([1, 3, RECOGNIZER_INPUT.1, RECOGNIZER_INPUT.0], (Kind::Float, device));
    let module = tch::CModule::create_by_tracing("Recognizer", "forward", &[probe], &mut |ins| {
        vec![rec.forward(&ins[0]).expect("forward")]
    })?;
    module.save(&pt)?;
    let artifact = import_torchscript(std::fs::read(&pt)?, ModelKind::Recognizer, classes.to_vec());
    let expect = Expect { kind: ModelKind::Recognizer, classes: classes.to_vec(), input: RECOGNIZER_INPUT };
    let scripted = Recognizer::load(&artifact, &expect, device)?;
    let crops: Vec<_> = labelled.iter().map(|(c, _)| c).collect();
    let right = scripted.classify(&crops)?.iter().zip(&labelled).filter(|((got, _), (_, want))| got == want).count();
    let mut per_s = serde_json::Map::new();
    for batch in CROP_BATCHES {
        let cps = measure(b.seconds, crops.len(), batch, |r| {
            scripted.classify(&crops[r]).expect("classify");
        });
        per_s.insert(batch.to_string(), json!((cps * 10.0).round() / 10.0));
    }
    let at = |k: &str| per_s[k].as_f64().unwrap_or(f64::NAN);
    let report = json!({
        "crops": crops.len(),
        "crop_input": [RECOGNIZER_INPUT.0, RECOGNIZER_INPUT.1],
        "crops_per_s": per_s,
        "batch_ratio": ((at("128") / at("1")) * 1000.0).round() / 1000.0,
        "batch_baseline": "the same imported module, one crop per call",
        "accuracy_on_trained_crops": ((right as f64 / crops.len().max(1) as f64) * 1000.0).round() / 1000.0,
        "training_crops_per_s": (info.images_per_second * 10.0).round() / 10.0,
    });
    Ok((report, pt, boxes))
}
