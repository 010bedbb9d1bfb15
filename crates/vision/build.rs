//! Binaries and tests that link libtorch find it at run time through an rpath to the libtorch
//! that torch-sys built against (`LIBTORCH`, installed by `scripts/install.sh`); the same path
//! is compiled in so that the CUDA half of libtorch can be loaded at start-up where it works.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=VISIONLOG_LIBTORCH_LIB={lib}");
        // crates that depend on this one emit the same rpath from this value
        println!("cargo:libtorch_lib={lib}");
    }
}
