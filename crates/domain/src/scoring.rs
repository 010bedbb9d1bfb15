//! Scoring predictions against ground truth: the one definition of a hit, used by the engine
//! monitor, the backtester and the model tests alike.

use crate::values::BoundingBox;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A prediction and a true box match when they overlap at least this much (and agree on the
/// class where the prediction has one).
pub const MATCH_IOU: f32 = 0.5;

/// A box on an image of a task, with its class if known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// The class, if known.
    pub class_id: Option<u32>,
}

/// TP / FP / FN of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Predictions matched to a ground-truth box of the same class.
    pub tp: u64,
    /// Predictions matched to nothing.
    pub fp: u64,
    /// Ground-truth boxes no prediction matched.
    pub fn_: u64,
}

impl Counts {
    /// Adds another's counts.
    pub fn add(&mut self, o: &Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }

    /// TP / (TP + FP), if any predictions.
    pub fn precision(&self) -> Option<f64> {
        (self.tp + self.fp > 0).then(|| self.tp as f64 / (self.tp + self.fp) as f64)
    }

    /// TP / (TP + FN), if any truth.
    pub fn recall(&self) -> Option<f64> {
        (self.tp + self.fn_ > 0).then(|| self.tp as f64 / (self.tp + self.fn_) as f64)
    }

    /// The harmonic mean of precision and recall (0 where either is missing).
    pub fn f1(&self) -> f64 {
        let denominator = 2 * self.tp + self.fp + self.fn_;
        if denominator == 0 { 0.0 } else { 2.0 * self.tp as f64 / denominator as f64 }
    }
}

/// Matches predictions to ground truth per image, greedily by overlap (pairs of the same
/// class, or any class for a prediction without one), and counts per class id (0: boxes the
/// model did not classify).
pub fn score(predictions: &[Placed], truth: &[Placed]) -> BTreeMap<u32, Counts> {
    let mut pairs = Vec::new();
    for (i, p) in predictions.iter().enumerate() {
        for (j, t) in truth.iter().enumerate() {
            if p.image != t.image || (p.class_id.is_some() && p.class_id != t.class_id) {
                continue;
            }
            let iou = p.bbox.iou(&t.bbox);
            if iou >= MATCH_IOU {
                pairs.push((iou, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut p_used, mut t_used) = (vec![false; predictions.len()], vec![false; truth.len()]);
    let mut counts: BTreeMap<u32, Counts> = BTreeMap::new();
    for (_, i, j) in pairs {
        if !p_used[i] && !t_used[j] {
            p_used[i] = true;
            t_used[j] = true;
            counts.entry(predictions[i].class_id.unwrap_or(0)).or_default().tp += 1;
        }
    }
    for (i, p) in predictions.iter().enumerate() {
        if !p_used[i] {
            counts.entry(p.class_id.unwrap_or(0)).or_default().fp += 1;
        }
    }
    let unclassified = !predictions.is_empty() && predictions.iter().all(|p| p.class_id.is_none());
    for (j, t) in truth.iter().enumerate() {
        if !t_used[j] {
            // a box the model did not classify is scored as class 0 when it is missed too
            counts.entry(if unclassified { 0 } else { t.class_id.unwrap_or(0) }).or_default().fn_ += 1;
        }
    }
    counts
}

/// Sums counts over classes.
pub fn total(counts: &BTreeMap<u32, Counts>) -> Counts {
    counts.values().fold(Counts::default(), |mut a, c| {
        a.add(c);
        a
    })
}
