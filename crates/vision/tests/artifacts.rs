//! Artifacts: saved and loaded to the same outputs, TorchScript imported and served, damaged
//! or mismatched artifacts refused with a clear reason.

mod common;

use common::{CLASSES, scenes};
use tch::{Device, Kind, Tensor};
use visionlog_vision::input::{batch, prepare};
use visionlog_vision::{
    Artifact, DETECTOR_INPUT, DecodeConfig, Detector, Expect, Manifest, ModelKind, VisionError, import_torchscript,
};

fn expect() -> Expect {
    Expect { kind: ModelKind::Detector, classes: CLASSES.to_vec(), input: DETECTOR_INPUT }
}

fn inputs() -> Tensor {
    let photos = scenes("artifacts", 3);
    let prepared: Vec<_> = photos.iter().map(|(img, _)| prepare(img, DETECTOR_INPUT).unwrap()).collect();
    batch(&prepared.iter().map(|p| &p.pixels).collect::<Vec<_>>())
}

fn rejected(artifact: &Artifact, expect: &Expect) -> String {
    match Detector::load(artifact, expect, Device::Cpu) {
        Err(VisionError::Artifact(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn save_then_load_gives_the_same_outputs() {
    let det = Detector::new(&CLASSES, DETECTOR_INPUT, Device::Cpu, 3).unwrap();
    let artifact = det.to_artifact(None, Default::default()).unwrap();
    assert_eq!(artifact.manifest.classes, CLASSES);
    // the manifest goes through JSON as it would through the object store
    let manifest = Manifest::parse(&artifact.manifest.to_json()).unwrap();
    let back =
        Detector::load(&Artifact { manifest, weights: artifact.weights.clone() }, &expect(), Device::Cpu).unwrap();
    let xs = inputs();
    let (a, b) = (det.forward(&xs).unwrap(), back.forward(&xs).unwrap());
    assert_eq!(a.size(), [3, CLASSES.len() as i64 + 4, 24, 32]);
    assert!(a.equal(&b), "outputs differ after a round trip");
    // and the same boxes
    let photos = scenes("artifacts", 2);
    let imgs: Vec<_> = photos.iter().map(|(i, _)| i).collect();
    let cfg = DecodeConfig { threshold: 0.05, max_boxes: 50 };
    assert_eq!(det.detect(&imgs, &cfg).unwrap(), back.detect(&imgs, &cfg).unwrap());
}

/// Traces a module as a data scientist's `torch.jit.trace` would, and returns its bytes.
fn traced(det: &mut Detector) -> Vec<u8> {
    det.freeze();
    let xs = Tensor::zeros([1, 3, DETECTOR_INPUT.1, DETECTOR_INPUT.0], (Kind::Float, Device::Cpu));
    let module =
        tch::CModule::create_by_tracing("Detector", "forward", &[xs], &mut |ins| vec![det.forward(&ins[0]).unwrap()])
            .unwrap();
    let file = tempfile::Builder::new().suffix(".pt").tempfile().unwrap();
    module.save(file.path()).unwrap();
    std::fs::read(file.path()).unwrap()
}

#[test]
fn a_torchscript_module_imports_and_serves_like_the_native_one() {
    let mut det = Detector::new(&CLASSES, DETECTOR_INPUT, Device::Cpu, 4).unwrap();
    let artifact = import_torchscript(traced(&mut det), ModelKind::Detector, CLASSES.to_vec());
    let scripted = Detector::load(&artifact, &expect(), Device::Cpu).unwrap();
    assert!(scripted.vars().is_none());
    let xs = inputs();
    let (a, b) = (det.forward(&xs).unwrap(), scripted.forward(&xs).unwrap());
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "scripted output differs by {diff}");
}

#[test]
fn damaged_or_mismatched_artifacts_are_refused() {
    let det = Detector::new(&CLASSES, DETECTOR_INPUT, Device::Cpu, 5).unwrap();
    let good = det.to_artifact(None, Default::default()).unwrap();
    assert!(Detector::load(&good, &expect(), Device::Cpu).is_ok());

    // truncated weights: the checksum says so
    let mut truncated = good.clone();
    truncated.weights.truncate(truncated.weights.len() / 2);
    assert!(rejected(&truncated, &expect()).contains("truncated or replaced"));
    // truncated, and a manifest rewritten to match: the file itself does not load
    truncated.manifest.weights_sha256 = visionlog_vision::sha256_hex(&truncated.weights);
    assert!(rejected(&truncated, &expect()).contains("weights do not load"));

    // another class group
    let other = Expect { classes: vec![1, 2, 3], ..expect() };
    assert!(rejected(&good, &other).contains("do not match the class group"));
    // another input size
    let bigger = Expect { input: (320, 240), ..expect() };
    assert!(rejected(&good, &bigger).contains("input size 256x192"));
    // another kind
    let recognizer = Expect { kind: ModelKind::Recognizer, ..expect() };
    assert!(rejected(&good, &recognizer).contains("cannot serve as a recognizer"));
    // a manifest that lies about the classes: the weights have 8 class channels, not 3
    let mut lying = good.clone();
    lying.manifest.classes = vec![1, 2, 3];
    assert!(rejected(&lying, &other).contains("weights do not load"));

    // a TorchScript module with fewer output channels than the classes it claims
    let mut small = Detector::new(&[1, 2], DETECTOR_INPUT, Device::Cpu, 6).unwrap();
    let wrong = import_torchscript(traced(&mut small), ModelKind::Detector, CLASSES.to_vec());
    assert!(rejected(&wrong, &expect()).contains("wrong classes or input size"));
    // bytes that are no TorchScript at all
    let junk = import_torchscript(b"not a module".to_vec(), ModelKind::Detector, CLASSES.to_vec());
    assert!(rejected(&junk, &expect()).contains("not a TorchScript module"));
    // an unknown architecture
    let mut alien = good.clone();
    alien.manifest.architecture = "yolo-v99".into();
    assert!(rejected(&alien, &expect()).contains("unknown architecture"));

    // manifests: not JSON, too large, another format
    assert!(matches!(Manifest::parse(b"{nope"), Err(VisionError::Artifact(r)) if r.contains("not valid")));
    assert!(Manifest::parse(&vec![b' '; 100_000]).is_err());
    let mut future = good.manifest.clone();
    future.format = 9;
    assert!(matches!(Manifest::parse(&future.to_json()), Err(VisionError::Artifact(r)) if r.contains("format 9")));
}
