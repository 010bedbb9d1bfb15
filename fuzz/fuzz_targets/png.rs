//! Any bytes as an uploaded PNG: a decoded image within the limits, or an error; never a panic,
//! and never an image over the side limit (a small file claiming 12,000 x 12,000).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = visionlog_imaging::Rgb::from_png(data) {
        let (w, h) = (image.width, image.height);
        assert!(w <= visionlog_imaging::MAX_SIDE && h <= visionlog_imaging::MAX_SIDE, "{w}x{h}");
        assert_eq!(image.pixels.len(), w as usize * h as usize * 3, "RGB, whole");
    }
});
