//! Shelf scenes with their ground truth, for the model tests.

use visionlog_domain::BoundingBox;
use visionlog_imaging::Rgb;
use visionlog_imaging::scene;

pub(crate) const CLASSES: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Renders scenes `prefix/0..n` at the demo's photo size, with their truth.
pub(crate) fn scenes(prefix: &str, n: usize) -> Vec<(Rgb, Vec<(BoundingBox, u32)>)> {
    (0..n)
        .map(|i| {
            let s = scene::generate(&format!("{prefix}/{i}"), 640, 480, CLASSES.len() as u32);
            let truth = s.truth().map(|p| (BoundingBox { x: p.x, y: p.y, w: p.w, h: p.h }, p.class_id)).collect();
            (s.render(), truth)
        })
        .collect()
}
