//! Binaries and tests that link libtorch find it at run time through an rpath to the libtorch
//! that torch-sys built against (`LIBTORCH`, installed by `scripts/install.sh`).
//!
//! `VISIONLOG_CUDA=1` makes a GPU build: `libtorch_cuda.so` stays linked (`--no-as-needed`) so
//! that its CUDA backend registers when the process starts (see `src/device.rs`).
fn main() {
    println!("cargo:rerun-if-env-changed=VISIONLOG_CUDA");
    println!("cargo::rustc-check-cfg=cfg(visionlog_cuda)");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // crates that depend on this one emit the same link arguments from these values
    println!("cargo:libtorch_lib={lib}");
    if std::env::var("VISIONLOG_CUDA").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=visionlog_cuda");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-L{lib},-ltorch_cuda,--as-needed");
        println!("cargo:cuda=1");
    }
}
