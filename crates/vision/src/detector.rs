//! The single-stage detector: a small convolutional backbone at stride 8 and, per cell, one
//! heat-map channel per class (is a product of that class centred here?), the box size and
//! the centre's offset inside the cell (CenterNet's formulation: no anchors, no NMS beyond a
//! 3x3 peak test). Small enough to train on two CPU cores in minutes.
//!
//! The network's one output, `[n, classes + 4, h/8, w/8]`, is also the contract of an imported
//! TorchScript detector, so both are decoded and scored the same way.

use crate::VisionError;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};
use visionlog_domain::BoundingBox;

/// Output cells per input pixel.
pub const STRIDE: i64 = 8;
/// Sizes are predicted as `log(size / SIZE_UNIT)` in input pixels.
const SIZE_UNIT: f64 = 16.0;
/// The architecture name written in manifests.
pub const ARCHITECTURE: &str = "centernet-s8-v1";

/// The network: backbone and the three heads, as one module.
#[derive(Debug)]
pub struct DetectorNet {
    backbone: nn::Sequential,
    heads: nn::Conv2D,
}

fn conv(p: &nn::Path<'_>, name: &str, i: i64, o: i64, stride: i64, dilation: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig { stride, padding: dilation, dilation, ..Default::default() };
    nn::conv2d(p / name, i, o, 3, cfg)
}

impl DetectorNet {
    /// Builds the network's variables under `p`.
    pub fn new(p: &nn::Path<'_>, classes: i64) -> Self {
        let backbone = nn::seq()
            .add(conv(p, "c1", 3, 24, 2, 1))
            .add_fn(|x| x.relu())
            .add(conv(p, "c2", 24, 32, 2, 1))
            .add_fn(|x| x.relu())
            .add(conv(p, "c3", 32, 48, 1, 1))
            .add_fn(|x| x.relu())
            .add(conv(p, "c4", 48, 64, 2, 1))
            .add_fn(|x| x.relu())
            .add(conv(p, "c5", 64, 64, 1, 1))
            .add_fn(|x| x.relu())
            .add(conv(p, "c6", 64, 64, 1, 2))
            .add_fn(|x| x.relu())
            .add(conv(p, "c7", 64, 64, 1, 4))
            .add_fn(|x| x.relu());
        let heads = nn::conv2d(p / "heads", 64, classes + 4, 1, Default::default());
        // a low prior on "a product is centred here" keeps the first steps stable
        tch::no_grad(|| {
            if let Some(bias) = &heads.bs {
                let _ = bias.narrow(0, 0, classes).fill_(-2.19);
            }
        });
        Self { backbone, heads }
    }
}

impl Module for DetectorNet {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.heads.forward(&self.backbone.forward(xs))
    }
}

/// One box found, in photo pixels, with the channel of its class.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The box in the photo.
    pub bbox: BoundingBox,
    /// Index of the class in the model's class list.
    pub class_index: usize,
    /// Confidence.
    pub score: f32,
}

/// How detections are read off the heat map.
#[derive(Clone, Copy, Debug)]
pub struct DecodeConfig {
    /// Peaks below this are not products.
    pub threshold: f32,
    /// At most this many boxes per photo.
    pub max_boxes: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self { threshold: 0.3, max_boxes: 300 }
    }
}

/// Where a photo sits in a batch: photo px per input px, and the photo's size.
pub type Frame = ((f32, f32), (u32, u32));

/// Reads boxes off a batch's output `[n, classes + 4, gh, gw]`; `frames[i]` is photo i's
/// (photo px per input px, photo size). The peak test runs on the whole batch at once.
pub fn decode(
    out: &Tensor,
    classes: usize,
    frames: &[Frame],
    cfg: &DecodeConfig,
) -> Result<Vec<Vec<Found>>, VisionError> {
    let size = out.size();
    if size.len() != 4 || size[1] != classes as i64 + 4 || size[0] != frames.len() as i64 {
        return Err(VisionError::Input(format!(
            "detector output {size:?} for {} photos of {classes} classes",
            frames.len()
        )));
    }
    let (gh, gw) = (size[2] as usize, size[3] as usize);
    let heat = out.narrow(1, 0, classes as i64).sigmoid();
    let (best, best_class) = heat.max_dim(1, false);
    let peak = best.unsqueeze(1).max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false).squeeze_dim(1);
    let keep = best.eq_tensor(&peak).logical_and(&best.gt(f64::from(cfg.threshold)));
    let best: Vec<f32> = Vec::try_from(best.flatten(0, -1))?;
    let class: Vec<i64> = Vec::try_from(best_class.flatten(0, -1))?;
    let keep: Vec<bool> = Vec::try_from(keep.flatten(0, -1))?;
    let rest: Vec<f32> = Vec::try_from(out.narrow(1, classes as i64, 4).to_kind(Kind::Float).flatten(0, -1))?;
    let plane = gh * gw;
    let s = STRIDE as f32;
    let mut all = Vec::with_capacity(frames.len());
    for (i, &(scale, photo)) in frames.iter().enumerate() {
        let (base, rbase) = (i * plane, i * 4 * plane);
        let mut found = Vec::new();
        for cell in (0..plane).filter(|&c| keep[base + c]) {
            let (gy, gx) = ((cell / gw) as f32, (cell % gw) as f32);
            let r = |k: usize| rest[rbase + k * plane + cell];
            let (lw, lh, ox, oy) = (r(0), r(1), r(2), r(3));
            let (cx, cy) = ((gx + ox.clamp(0.0, 1.0)) * s * scale.0, (gy + oy.clamp(0.0, 1.0)) * s * scale.1);
            let w = (lw.clamp(-4.0, 4.0).exp() * SIZE_UNIT as f32 * scale.0).max(1.0);
            let h = (lh.clamp(-4.0, 4.0).exp() * SIZE_UNIT as f32 * scale.1).max(1.0);
            let (pw, ph) = (photo.0 as f32, photo.1 as f32);
            let x = (cx - w / 2.0).clamp(0.0, pw - 1.0);
            let y = (cy - h / 2.0).clamp(0.0, ph - 1.0);
            let bbox = BoundingBox { x, y, w: w.min(pw - x), h: h.min(ph - y) };
            found.push(Found { bbox, class_index: class[base + cell] as usize, score: best[base + cell] });
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(cfg.max_boxes);
        all.push(found);
    }
    Ok(all)
}

/// A true box in input pixels with its class index, for training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Centre x, input px.
    pub cx: f32,
    /// Centre y, input px.
    pub cy: f32,
    /// Width, input px.
    pub w: f32,
    /// Height, input px.
    pub h: f32,
    /// Index in the class list.
    pub class_index: usize,
}

/// The training targets of a batch: heat maps (elliptic Gaussians peaking at 1 on each centre
/// cell), sizes and offsets on the centre cells, and the mask of centre cells.
pub(crate) fn targets(batch: &[Vec<Target>], classes: usize, (gh, gw): (usize, usize)) -> (Tensor, Tensor, Tensor) {
    let n = batch.len();
    let plane = gh * gw;
    let mut heat = vec![0f32; n * classes * plane];
    let mut reg = vec![0f32; n * 4 * plane];
    let mut mask = vec![0f32; n * plane];
    let s = STRIDE as f32;
    for (b, boxes) in batch.iter().enumerate() {
        for t in boxes {
            let (gx, gy) = (t.cx / s, t.cy / s);
            let (ix, iy) = (gx.floor() as isize, gy.floor() as isize);
            if ix < 0 || iy < 0 || ix >= gw as isize || iy >= gh as isize || t.class_index >= classes {
                continue;
            }
            let (sx, sy) = ((t.w / s / 6.0).max(0.5), (t.h / s / 6.0).max(0.5));
            let base = (b * classes + t.class_index) * plane;
            let (rx, ry) = ((3.0 * sx).ceil() as isize, (3.0 * sy).ceil() as isize);
            for y in (iy - ry).max(0)..=(iy + ry).min(gh as isize - 1) {
                for x in (ix - rx).max(0)..=(ix + rx).min(gw as isize - 1) {
                    let (dx, dy) = ((x - ix) as f32, (y - iy) as f32);
                    let v = (-(dx * dx) / (2.0 * sx * sx) - (dy * dy) / (2.0 * sy * sy)).exp();
                    let cell = &mut heat[base + y as usize * gw + x as usize];
                    *cell = cell.max(v);
                }
            }
            let cell = iy as usize * gw + ix as usize;
            mask[b * plane + cell] = 1.0;
            let r = b * 4 * plane;
            reg[r + cell] = (f64::from(t.w) / SIZE_UNIT).ln() as f32;
            reg[r + plane + cell] = (f64::from(t.h) / SIZE_UNIT).ln() as f32;
            reg[r + 2 * plane + cell] = gx - gx.floor();
            reg[r + 3 * plane + cell] = gy - gy.floor();
        }
    }
    let (n, c, gh, gw) = (n as i64, classes as i64, gh as i64, gw as i64);
    (
        Tensor::from_slice(&heat).view([n, c, gh, gw]),
        Tensor::from_slice(&reg).view([n, 4, gh, gw]),
        Tensor::from_slice(&mask).view([n, 1, gh, gw]),
    )
}

/// The detector's loss on a batch output: focal loss on the heat maps, L1 on size and offset
/// at the centre cells, both per true box.
pub(crate) fn loss(out: &Tensor, classes: i64, heat: &Tensor, reg: &Tensor, mask: &Tensor) -> Tensor {
    let logits = out.narrow(1, 0, classes);
    let p = logits.sigmoid();
    let pos = heat.eq(1.0).to_kind(Kind::Float);
    let neg: Tensor = pos.ones_like() - &pos;
    let miss: Tensor = p.ones_like() - &p;
    let far: Tensor = heat.ones_like() - heat;
    let pos_loss = -(logits.log_sigmoid() * miss.pow_tensor_scalar(2) * &pos).sum(Kind::Float);
    let neg_loss =
        -(logits.neg().log_sigmoid() * p.pow_tensor_scalar(2) * far.pow_tensor_scalar(4) * neg).sum(Kind::Float);
    let n = pos.sum(Kind::Float).clamp_min(1.0);
    let pred = out.narrow(1, classes, 4);
    let reg_loss = ((pred - reg).abs() * mask).sum(Kind::Float);
    (pos_loss + neg_loss + reg_loss) / n
}
