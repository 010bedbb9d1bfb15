//! Tests of this crate link libtorch: the same rpath as the vision crate's.
fn main() {
    if let Ok(lib) = std::env::var("DEP_VISIONLOG_VISION_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
