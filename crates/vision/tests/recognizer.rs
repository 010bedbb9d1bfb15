//! The crop recognizer tells the classes of packages it never saw, and survives a round trip.

mod common;

use common::{CLASSES, scenes};
use tch::Device;
use visionlog_vision::train::TrainConfig;
use visionlog_vision::{Expect, ModelKind, RECOGNIZER_INPUT, Recognizer, VisionError};

fn crops(prefix: &str, n: usize) -> Vec<(visionlog_imaging::Rgb, u32)> {
    scenes(prefix, n)
        .into_iter()
        .flat_map(|(img, truth)| {
            truth.into_iter().map(move |(b, class)| (img.crop(b.x, b.y, b.w, b.h).unwrap(), class)).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn recognizes_held_out_crops_and_round_trips() {
    let train_set = crops("rec-train", 40);
    let held_out = crops("rec-held-out", 12);
    let mut rec = Recognizer::new(&CLASSES, Device::Cpu, 2).unwrap();
    let accuracy = |rec: &Recognizer| {
        let refs: Vec<_> = held_out.iter().map(|(c, _)| c).collect();
        let got = rec.classify(&refs).unwrap();
        got.iter().zip(&held_out).filter(|((g, _), (_, want))| g == want).count() as f64 / held_out.len() as f64
    };
    let before = accuracy(&rec);
    let info = rec.train(&train_set, &TrainConfig { steps: 150, batch: 32, ..Default::default() }).unwrap();
    let after = accuracy(&rec);
    eprintln!(
        "recognizer: {} training crops, {} held-out; accuracy {before:.3} -> {after:.3} in {:.1} s ({:.0} crops/s)",
        train_set.len(),
        held_out.len(),
        info.seconds,
        info.images_per_second
    );
    // the classes come in pairs that differ by shade and a small badge only (the synthetic
    // world's hard part): 0.8 is the bar the demo's recognizer is held to
    assert!(after >= 0.8, "held-out accuracy {after:.3} (chance 0.125)");

    let artifact = rec.to_artifact(Some(info), Default::default()).unwrap();
    let expect = Expect { kind: ModelKind::Recognizer, classes: CLASSES.to_vec(), input: RECOGNIZER_INPUT };
    let back = Recognizer::load(&artifact, &expect, Device::Cpu).unwrap();
    let refs: Vec<_> = held_out.iter().take(20).map(|(c, _)| c).collect();
    assert_eq!(rec.classify(&refs).unwrap(), back.classify(&refs).unwrap());
    // a detector's expectations do not take a recognizer
    let as_detector = Expect { kind: ModelKind::Detector, ..expect };
    assert!(matches!(Recognizer::load(&artifact, &as_detector, Device::Cpu), Err(VisionError::Artifact(_))));
}
