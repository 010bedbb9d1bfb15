//! Pixels into tensors: a photo scaled to the model's input, a batch of them.

use crate::VisionError;
use tch::{Kind, Tensor};
use visionlog_imaging::Rgb;

/// A photo prepared for a model: `[3, h, w]` bytes at the model's input size, and the factors
/// that take model pixels back to the photo's.
#[derive(Debug)]
pub struct Prepared {
    /// `[3, h, w]`, `u8`.
    pub pixels: Tensor,
    /// Photo width / input width.
    pub scale_x: f32,
    /// Photo height / input height.
    pub scale_y: f32,
}

/// Scales a photo to `(w, h)` (area averaging) and keeps it as bytes.
pub fn prepare(image: &Rgb, (w, h): (i64, i64)) -> Result<Prepared, VisionError> {
    if image.width == 0 || image.height == 0 || image.pixels.len() != (image.width * image.height * 3) as usize {
        return Err(VisionError::Input(format!(
            "a {}x{} image with {} bytes",
            image.width,
            image.height,
            image.pixels.len()
        )));
    }
    let t = Tensor::from_slice(&image.pixels)
        .view([i64::from(image.height), i64::from(image.width), 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        .unsqueeze(0)
        .adaptive_avg_pool2d([h, w])
        .squeeze_dim(0)
        .round()
        .to_kind(Kind::Uint8);
    Ok(Prepared { pixels: t, scale_x: image.width as f32 / w as f32, scale_y: image.height as f32 / h as f32 })
}

/// Stacks prepared photos into a float batch `[n, 3, h, w]` centred on zero.
pub fn batch(items: &[&Tensor]) -> Tensor {
    Tensor::stack(items, 0).to_kind(Kind::Float) / 255.0 - 0.5
}

/// Scales photos of one size to `(w, h)` as one float batch `[n, 3, h, w]` centred on zero
/// (the same values as [`prepare`] then [`batch`], in one pass), with photo px per input px.
pub fn prepare_batch(photos: &[&Rgb], (w, h): (i64, i64)) -> Result<(Tensor, (f32, f32)), VisionError> {
    let Some(first) = photos.first() else { return Err(VisionError::Input("no photos".into())) };
    let (pw, ph) = (first.width, first.height);
    if photos.iter().any(|p| p.width != pw || p.height != ph || p.pixels.len() != (pw * ph * 3) as usize)
        || pw == 0
        || ph == 0
    {
        return Err(VisionError::Input("photos of one batch must have one size".into()));
    }
    let mut bytes = Vec::with_capacity(photos.len() * first.pixels.len());
    for p in photos {
        bytes.extend_from_slice(&p.pixels);
    }
    let t = Tensor::from_slice(&bytes)
        .view([photos.len() as i64, i64::from(ph), i64::from(pw), 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        .adaptive_avg_pool2d([h, w])
        .round()
        / 255.0
        - 0.5;
    Ok((t, (pw as f32 / w as f32, ph as f32 / h as f32)))
}
