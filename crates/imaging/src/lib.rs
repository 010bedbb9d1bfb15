//! Pixels: RGB images in and out of PNG (with bounds, for images from outside), crops of boxes,
//! and the synthetic shelf images the demo's customer sends.

use std::io::Cursor;

pub mod scene;

/// The largest image accepted, per side.
pub const MAX_SIDE: u32 = 8192;

/// The largest source image read from an object store or a URL, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// Why an image could not be read or cut.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not a PNG this reads.
    #[error("not a readable PNG: {0}")]
    Decode(String),
    /// Too large.
    #[error("image of {0}x{1} is over the limit of {MAX_SIDE} per side")]
    TooLarge(u32, u32),
    /// A box outside the image or empty.
    #[error("box ({x}, {y}, {w}, {h}) is not inside the {iw}x{ih} image")]
    BadBox {
        /// Left.
        x: f32,
        /// Top.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
        /// Image width.
        iw: u32,
        /// Image height.
        ih: u32,
    },
}

/// An 8-bit RGB image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Rows of `width * 3` bytes.
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// A plain image.
    pub fn filled(width: u32, height: u32, color: [u8; 3]) -> Self {
        Self { width, height, pixels: color.repeat((width * height) as usize) }
    }

    /// Paints a rectangle (clipped to the image).
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        let (x2, y2) = ((x + w).min(self.width), (y + h).min(self.height));
        for row in y.min(self.height)..y2 {
            let start = ((row * self.width + x.min(self.width)) * 3) as usize;
            let end = ((row * self.width + x2) * 3) as usize;
            for px in self.pixels[start..end].chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
    }

    /// The pixels of a box (`x, y, w, h` in pixels, rounded outwards to whole pixels).
    pub fn crop(&self, x: f32, y: f32, w: f32, h: f32) -> Result<Rgb, ImageError> {
        let bad = || ImageError::BadBox { x, y, w, h, iw: self.width, ih: self.height };
        if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite())
            || x < 0.0
            || y < 0.0
            || w <= 0.0
            || h <= 0.0
        {
            return Err(bad());
        }
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (x1, y1) = (((x + w).ceil() as u32).min(self.width), ((y + h).ceil() as u32).min(self.height));
        if x0 >= x1 || y0 >= y1 {
            return Err(bad());
        }
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut pixels = Vec::with_capacity((cw * ch * 3) as usize);
        for row in y0..y1 {
            let start = ((row * self.width + x0) * 3) as usize;
            pixels.extend_from_slice(&self.pixels[start..start + (cw * 3) as usize]);
        }
        Ok(Rgb { width: cw, height: ch, pixels })
    }

    /// Encodes as PNG (fast compression: crops and synthetic images are flat).
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().expect("PNG header to memory");
        writer.write_image_data(&self.pixels).expect("PNG data to memory");
        writer.finish().expect("PNG end to memory");
        out
    }

    /// Decodes a PNG (8-bit RGB or RGBA; alpha dropped), refusing images over [`MAX_SIDE`].
    pub fn from_png(bytes: &[u8]) -> Result<Rgb, ImageError> {
        let decode = |e: png::DecodingError| ImageError::Decode(e.to_string());
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(decode)?;
        let (width, height) = (reader.info().width, reader.info().height);
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(ImageError::TooLarge(width, height));
        }
        let size = reader.output_buffer_size().ok_or_else(|| ImageError::Decode("image too large".into()))?;
        let mut buf = vec![0; size];
        let info = reader.next_frame(&mut buf).map_err(decode)?;
        buf.truncate(info.buffer_size());
        let pixels = match info.color_type {
            png::ColorType::Rgb => buf,
            png::ColorType::Rgba => buf.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            png::ColorType::Grayscale => buf.iter().flat_map(|g| [*g, *g, *g]).collect(),
            png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
            png::ColorType::Indexed => return Err(ImageError::Decode("indexed colour left unexpanded".into())),
        };
        Ok(Rgb { width, height, pixels })
    }
}

/// The colour of a product class on synthetic shelves.
pub fn class_color(class_id: u32) -> [u8; 3] {
    let h = class_id.wrapping_mul(2_654_435_761);
    [64 + (h >> 24) as u8 % 192, 64 + (h >> 16) as u8 % 192, 64 + (h >> 8) as u8 % 192]
}

/// Paints a synthetic shelf photo: grey shelves, each product a box of its class's colour.
pub fn render_shelf(width: u32, height: u32, products: &[(f32, f32, f32, f32, u32)]) -> Rgb {
    let mut img = Rgb::filled(width, height, [200, 200, 196]);
    for &(x, y, w, h, class_id) in products {
        let (x, y, w, h) = (x.max(0.0) as u32, y.max(0.0) as u32, w.max(1.0) as u32, h.max(1.0) as u32);
        img.fill_rect(x, y, w, h, [40, 40, 40]);
        img.fill_rect(x + 2, y + 2, w.saturating_sub(4), h.saturating_sub(4), class_color(class_id));
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_and_crops_cut_the_box() {
        let img = render_shelf(320, 240, &[(10.0, 20.0, 50.0, 60.0, 3)]);
        let back = Rgb::from_png(&img.to_png()).unwrap();
        assert_eq!(back, img);
        let crop = back.crop(10.0, 20.0, 50.0, 60.0).unwrap();
        assert_eq!((crop.width, crop.height), (50, 60));
        assert_eq!(&crop.pixels[..3], &[40, 40, 40], "the border");
        let inner = ((5 * 50 + 5) * 3) as usize;
        assert_eq!(&crop.pixels[inner..inner + 3], &class_color(3));
        // a box that runs off the edge is clipped; one outside is refused
        assert_eq!(back.crop(300.0, 200.0, 50.0, 50.0).unwrap().width, 20);
        assert!(back.crop(400.0, 0.0, 5.0, 5.0).is_err());
        assert!(back.crop(0.0, 0.0, f32::NAN, 5.0).is_err());
        assert!(back.crop(-1.0, 0.0, 5.0, 5.0).is_err());
    }

    #[test]
    fn hostile_bytes_are_clear_errors() {
        assert!(matches!(Rgb::from_png(b"not a png"), Err(ImageError::Decode(_))));
        let mut png = render_shelf(8, 8, &[]).to_png();
        png.truncate(png.len() / 2);
        assert!(Rgb::from_png(&png).is_err());
    }
}
