//! Synthetic retail scenes with exact ground truth: shelves of product packages whose look
//! depends on their class, at several scales, partly hidden by price tags and hanging signs,
//! under uneven light, among distractors (other brands' packages, and look-alikes painted in a
//! class's colours with another print).
//!
//! Classes come in pairs that share a colour and a print: the second of a pair is a darker
//! shade with a small badge in its top corner (a "light" and a "dark" variant of one product,
//! as real ranges have), and the packages of one shelf row mix both, so telling a class needs
//! the shade and the small print, not only the colour — under light that varies across the photo.
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
/// painted but not part of the ground truth (`look` says how).
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
    /// For a distractor: 0 for another brand's muted package, else the class whose colours a
    /// look-alike wears (with a plain label instead of the class's print).
    pub look: u32,
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
    /// Signs hanging from the shelf above that hide the top of some packages: (x, y, w, h).
    pub hangers: Vec<(f32, f32, f32, f32)>,
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
        for &(x, y, w, h) in &self.hangers {
            let (x, y, w, h) = (x as u32, y as u32, w as u32, h as u32);
            img.fill_rect(x, y, w, h, [240, 200, 40]);
            img.fill_rect(x + 3, y + h / 3, w.saturating_sub(6), (h / 4).max(1), [180, 20, 20]);
        }
        light_and_noise(&mut img, self.light, self.noise_seed);
        img
    }
}

/// The colour of a class: its pair's colour, darker for the second of the pair.
pub fn package_color(class_id: u32) -> [u8; 3] {
    let family = (class_id.max(1) - 1) / 2;
    let base = crate::class_color(family + 1);
    if (class_id.max(1) - 1).is_multiple_of(2) { base } else { base.map(|c| (f32::from(c) * 0.86) as u8) }
}

/// The print of a class: its pair's colour and pattern; the second of a pair is a darker shade
/// with a small badge in its top-right corner.
fn paint_package(img: &mut Rgb, p: &Package) {
    let (x, y, w, h) = (p.x.max(0.0) as u32, p.y.max(0.0) as u32, p.w.max(4.0) as u32, p.h.max(4.0) as u32);
    if p.class_id == 0 && p.look == 0 {
        // another brand: a muted package with a plain label
        img.fill_rect(x, y, w, h, [150, 146, 140]);
        img.fill_rect(x + w / 5, y + h / 3, w * 3 / 5, h / 4, [236, 236, 236]);
        return;
    }
    img.fill_rect(x, y, w, h, [36, 36, 36]);
    let (bx, by, bw, bh) = (x + 2, y + 2, w.saturating_sub(4), h.saturating_sub(4));
    let class = if p.class_id == 0 { p.look } else { p.class_id };
    let base = package_color(class);
    img.fill_rect(bx, by, bw, bh, base);
    if p.class_id == 0 {
        // a look-alike: the class's colours with a plain white label
        img.fill_rect(bx + bw / 6, by + bh * 2 / 5, bw * 2 / 3, bh / 5, [236, 236, 236]);
        return;
    }
    let ink = [255 - base[0], 255 - base[1], 255 - base[2]];
    let family = (p.class_id - 1) / 2;
    match family % 4 {
        // horizontal bands
        0 => (0..4).for_each(|i| img.fill_rect(bx, by + i * bh / 4 + bh / 16, bw, (bh / 12).max(1), ink)),
        // a vertical stripe
        1 => img.fill_rect(bx + bw / 3, by, (bw / 3).max(1), bh, ink),
        // a logo block at the top
        2 => img.fill_rect(bx + bw / 6, by + bh / 8, bw * 2 / 3, (bh / 5).max(1), ink),
        // a band at the bottom
        _ => img.fill_rect(bx, by + bh * 2 / 3, bw, (bh / 6).max(1), ink),
    }
    if !(p.class_id - 1).is_multiple_of(2) {
        // the dark variant's badge: small print in the top-right corner
        let side = (bw / 6).max(3);
        img.fill_rect(bx + bw - side - 1, by + 1, side, side, [250, 250, 250]);
        img.fill_rect(bx + bw - side / 2 - 2, by + side / 3 + 1, (side / 3).max(1), (side / 3).max(1), [20, 20, 20]);
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

/// Generates a scene: 2 to 4 shelves, each with a row of one pair's packages (both variants,
/// mixed) at one scale, sometimes with other brands' packages or look-alikes in the row, price
/// tags over the packages' feet and signs over their tops.
pub fn generate(key: &str, width: u32, height: u32, classes: u32) -> Scene {
    let mut rng = Rng::from_key(key);
    let shelves = 2 + rng.below(3) as u32;
    let row_h = height as f32 / shelves as f32;
    let classes = classes.max(1);
    let pairs = u64::from(classes.div_ceil(2));
    let mut packages = Vec::new();
    let mut tags = Vec::new();
    let mut hangers = Vec::new();
    for shelf in 0..shelves {
        let scale = rng.range(0.55, 0.9);
        let h = (row_h - 10.0) * scale;
        let w = (h * rng.range(0.3, 0.6)).clamp(18.0, width as f32 / 6.0);
        let gap = rng.range(3.0, 10.0);
        let first = 1 + 2 * rng.below(pairs) as u32;
        let y = shelf as f32 * row_h + (row_h - 8.0 - h);
        let mut x = rng.range(4.0, 30.0);
        while x + w < width as f32 - 4.0 {
            let class_id = (first + rng.below(2) as u32).min(classes);
            let p = match rng.below(12) {
                0 => Package { x, y, w, h, class_id: 0, look: 0 },
                1 => Package { x, y, w, h, class_id: 0, look: class_id },
                _ => Package { x, y, w, h, class_id, look: 0 },
            };
            packages.push(p);
            if rng.below(5) == 0 {
                // a price tag over the package's foot hides at most a fifth of it
                let tag_h = (h * 0.18).min(14.0);
                tags.push((x + w * 0.2, y + h - tag_h, w * 0.6, tag_h));
            } else if rng.below(6) == 0 {
                // a sign hanging over its top hides up to a quarter of it
                let sign_h = h * rng.range(0.12, 0.25);
                hangers.push((x + w * 0.1, y, w * 0.8, sign_h));
            }
            x += w + gap;
            if rng.below(9) == 0 {
                x += w; // a gap in the row: something sold out
            }
        }
    }
    let left = rng.range(75.0, 110.0);
    let right = rng.range(75.0, 110.0);
    Scene { width, height, packages, tags, hangers, light: (left, right), noise_seed: rng.next_u64() }
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
        let scene = |class_id, look| Scene {
            width: 64,
            height: 100,
            packages: vec![Package { x: 10.0, y: 10.0, w: 40.0, h: 80.0, class_id, look }],
            tags: vec![],
            hangers: vec![],
            light: (100.0, 100.0),
            noise_seed: 1,
        };
        let at = |img: &Rgb, x: u32, y: u32| {
            let i = ((y * img.width + x) * 3) as usize;
            [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
        };
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() <= 4);
        // class 3: the second pair's colour, with its vertical stripe
        let img = scene(3, 0).render();
        let base = package_color(3);
        assert_eq!(base, crate::class_color(2));
        assert!(near(at(&img, 14, 50), base), "{:?} vs {base:?}", at(&img, 14, 50));
        let ink = [255 - base[0], 255 - base[1], 255 - base[2]];
        assert!(near(at(&img, 30, 50), ink), "class 3 has a vertical stripe");
        // class 4: the same print in a darker shade, and a badge in its top-right corner
        let dark = scene(4, 0).render();
        assert!(near(at(&dark, 14, 50), package_color(4)));
        assert!(package_color(4).iter().zip(base).all(|(d, b)| *d < b || b == 0), "darker");
        assert!(near(at(&dark, 45, 14), [250, 250, 250]), "badge: {:?}", at(&dark, 45, 14));
        assert!(near(at(&img, 45, 14), base), "no badge on the light variant");
        // a look-alike of class 3: its colour, no stripe, a white label
        let fake = scene(0, 3).render();
        assert!(near(at(&fake, 14, 20), base));
        assert!(!near(at(&fake, 30, 20), ink), "no stripe");
        assert!(near(at(&fake, 30, 50), [236, 236, 236]), "a plain label");
    }
}
