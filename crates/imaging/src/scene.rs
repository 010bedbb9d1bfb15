//! Synthetic retail scenes with exact ground truth: shelves of product packages whose look
//! depends on their class (colour and print), at several scales, partly hidden by price tags,
//! under uneven light, among distractors (other brands' packages, shelf labels).
//!
//! Same seed, same scene, same pixels, on every machine: the demo's customer, the simulated
//! operators and the model tests all draw from here.

use crate::Rgb;

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from a string (FNV-1a, then mixed by the generator).
    pub fn from_key(key: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }

    /// Returns the next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Returns a float in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * (hi - lo)
    }
}

/// One package on a shelf. `class_id` 0 is a distractor: a product outside the class group,
/// painted but not part of the ground truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Package {
    /// Left edge, px.
    pub x: f32,
    /// Top edge, px.
    pub y: f32,
    /// Width, px.
    pub w: f32,
    /// Height, px.
    pub h: f32,
    /// Class in the class group, or 0 for another brand's package.
    pub class_id: u32,
}

/// A shelf photo's content.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Every package, distractors included, in painting order.
    pub packages: Vec<Package>,
    /// Price tags that hide the lower part of some packages: (x, y, w, h).
    pub tags: Vec<(f32, f32, f32, f32)>,
    /// The light: brightness at the left and right edge, in per cent.
    pub light: (f32, f32),
    /// Seed of the sensor noise.
    pub noise_seed: u64,
}

impl Scene {
    /// The ground truth: the packages of the class group.
    pub fn truth(&self) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(|p| p.class_id != 0)
    }

    /// Paints the photo.
    pub fn render(&self) -> Rgb {
        let mut img = Rgb::filled(self.width, self.height, [206, 204, 198]);
        // shelf boards under each row of packages
        let mut boards: Vec<u32> = self.packages.iter().map(|p| (p.y + p.h) as u32).collect();
        boards.sort_unstable();
        boards.dedup();
        for y in boards {
            img.fill_rect(0, y + 1, self.width, 6, [120, 92, 60]);
        }
        for p in &self.packages {
            paint_package(&mut img, p);
        }
        for &(x, y, w, h) in &self.tags {
            let (x, y, w, h) = (x as u32, y as u32, w as u32, h as u32);
            img.fill_rect(x, y, w, h, [250, 250, 244]);
            img.fill_rect(x + 2, y + h / 2, w.saturating_sub(4), 2, [30, 30, 30]);
        }
        light_and_noise(&mut img, self.light, self.noise_seed);
        img
    }
}

/// The print of a class: a base colour and a pattern, so that classes differ in more than hue.
fn paint_package(img: &mut Rgb, p: &Package) {
    let (x, y, w, h) = (p.x.max(0.0) as u32, p.y.max(0.0) as u32, p.w.max(4.0) as u32, p.h.max(4.0) as u32);
    if p.class_id == 0 {
        // another brand: a muted package with a plain label
        img.fill_rect(x, y, w, h, [150, 146, 140]);
        img.fill_rect(x + w / 5, y + h / 3, w * 3 / 5, h / 4, [236, 236, 236]);
        return;
    }
    img.fill_rect(x, y, w, h, [36, 36, 36]);
    let (bx, by, bw, bh) = (x + 2, y + 2, w.saturating_sub(4), h.saturating_sub(4));
    let base = crate::class_color(p.class_id);
    img.fill_rect(bx, by, bw, bh, base);
    let ink = [255 - base[0], 255 - base[1], 255 - base[2]];
    match p.class_id % 4 {
        // horizontal bands
        0 => (0..4).for_each(|i| img.fill_rect(bx, by + i * bh / 4 + bh / 16, bw, (bh / 12).max(1), ink)),
        // a vertical stripe
        1 => img.fill_rect(bx + bw / 3, by, (bw / 3).max(1), bh, ink),
        // a logo block at the top
        2 => img.fill_rect(bx + bw / 6, by + bh / 8, bw * 2 / 3, (bh / 5).max(1), ink),
        // a band at the bottom
        _ => img.fill_rect(bx, by + bh * 2 / 3, bw, (bh / 6).max(1), ink),
    }
}

/// Uneven light (a left-to-right ramp) and mild sensor noise.
fn light_and_noise(img: &mut Rgb, (left, right): (f32, f32), seed: u64) {
    let width = img.width as usize;
    let mut rng = Rng(seed);
    let mut noise = 0u64;
    for (i, px) in img.pixels.chunks_exact_mut(3).enumerate() {
        let x = (i % width) as f32 / width as f32;
        let gain = (left + (right - left) * x) / 100.0;
        if i % 16 == 0 {
            noise = rng.next_u64();
        }
        for (c, v) in px.iter_mut().enumerate() {
            let n = ((noise >> ((i % 16) * 4 + c) & 0x7) as f32) - 3.5;
            *v = (f32::from(*v) * gain + n).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Generates a scene: 2 to 4 shelves, each with a row of one class's packages at one scale,
/// sometimes with other brands' packages in the row and price tags over the packages' feet.
pub fn generate(key: &str, width: u32, height: u32, classes: u32) -> Scene {
    let mut rng = Rng::from_key(key);
    let shelves = 2 + rng.below(3) as u32;
    let row_h = height as f32 / shelves as f32;
    let mut packages = Vec::new();
    let mut tags = Vec::new();
    for shelf in 0..shelves {
        let scale = rng.range(0.55, 0.9);
        let h = (row_h - 10.0) * scale;
        let w = (h * rng.range(0.3, 0.6)).clamp(18.0, width as f32 / 6.0);
        let gap = rng.range(3.0, 10.0);
        let class_id = 1 + rng.below(u64::from(classes.max(1))) as u32;
        let y = shelf as f32 * row_h + (row_h - 8.0 - h);
        let mut x = rng.range(4.0, 30.0);
        while x + w < width as f32 - 4.0 {
            let distractor = rng.below(7) == 0;
            let p = Package { x, y, w, h, class_id: if distractor { 0 } else { class_id } };
            packages.push(p);
            if rng.below(5) == 0 {
                // a price tag over the package's foot hides at most a fifth of it
                let tag_h = (h * 0.18).min(14.0);
                tags.push((x + w * 0.2, y + h - tag_h, w * 0.6, tag_h));
            }
            x += w + gap;
            if rng.below(9) == 0 {
                x += w; // a gap in the row: something sold out
            }
        }
    }
    let left = rng.range(75.0, 110.0);
    let right = rng.range(75.0, 110.0);
    Scene { width, height, packages, tags, light: (left, right), noise_seed: rng.next_u64() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_deterministic_and_their_truth_is_inside_the_image() {
        let a = generate("t-1/0", 640, 480, 8);
        assert_eq!(a, generate("t-1/0", 640, 480, 8));
        assert_eq!(a.render(), generate("t-1/0", 640, 480, 8).render());
        assert_ne!(a, generate("t-2/0", 640, 480, 8));
        assert!(a.truth().count() >= 4);
        for p in &a.packages {
            assert!(p.x >= 0.0 && p.y >= 0.0 && p.x + p.w <= 640.0 && p.y + p.h <= 480.0, "{p:?}");
        }
        // packages do not overlap: every true box can be found on its own
        for (i, p) in a.packages.iter().enumerate() {
            for q in &a.packages[i + 1..] {
                assert!(p.x + p.w <= q.x || q.x + q.w <= p.x || p.y + p.h <= q.y || q.y + q.h <= p.y);
            }
        }
    }

    #[test]
    fn a_class_is_painted_in_its_colour_and_print() {
        let p = Package { x: 10.0, y: 10.0, w: 40.0, h: 80.0, class_id: 5 };
        let scene =
            Scene { width: 64, height: 100, packages: vec![p], tags: vec![], light: (100.0, 100.0), noise_seed: 1 };
        let img = scene.render();
        let at = |x: u32, y: u32| {
            let i = ((y * img.width + x) * 3) as usize;
            [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
        };
        let base = crate::class_color(5);
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() <= 4);
        assert!(near(at(14, 50), base), "{:?} vs {base:?}", at(14, 50));
        let ink = [255 - base[0], 255 - base[1], 255 - base[2]];
        assert!(near(at(30, 50), ink), "class 5 has a vertical stripe");
    }
}
