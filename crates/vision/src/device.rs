//! Where models run: CUDA when a GPU is there and libtorch's CUDA half is linked, else the CPU.
//! Chosen once per process, at first use, and logged.
//!
//! The CPU build links only `libtorch_cpu.so` (the linker drops `libtorch_cuda.so`, whose
//! symbols nothing names). A GPU build is made with `VISIONLOG_CUDA=1` at build time (see
//! `build.rs`): it keeps `libtorch_cuda.so` linked, so its CUDA backend registers at start-up;
//! it then needs the CUDA libraries of the full `torch` install, and still runs on the CPU of
//! a machine without a GPU. `--device cpu` (`VISIONLOG_DEVICE=cpu`) forces the CPU ([`force_cpu`]).

use std::sync::OnceLock;
use tch::Device;

/// The device choice of this process.
#[derive(Clone, Copy, Debug)]
pub struct DeviceChoice {
    /// Where models are put.
    pub device: Device,
    /// CUDA devices seen.
    pub cuda_devices: usize,
    /// CPU threads libtorch uses.
    pub threads: i32,
}

static FORCED_CPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the models of this process run on the CPU although a GPU is there (`--device cpu`);
/// call it before the first model runs.
pub fn force_cpu() {
    FORCED_CPU.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Returns (and on first call chooses and logs) the device of this process.
pub fn device_choice() -> &'static DeviceChoice {
    static CHOICE: OnceLock<DeviceChoice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let forced_cpu = FORCED_CPU.load(std::sync::atomic::Ordering::Relaxed);
        let cuda_devices = if forced_cpu { 0 } else { tch::Cuda::device_count().max(0) as usize };
        let device = if cuda_devices > 0 { Device::Cuda(0) } else { Device::Cpu };
        let threads = tch::get_num_threads();
        let r = DeviceChoice { device, cuda_devices, threads };
        tracing::info!(
            device = ?r.device,
            cuda_devices,
            cuda_linked = cfg!(visionlog_cuda),
            threads,
            forced_cpu,
            "vision: models run on {}",
            if cuda_devices > 0 { "CUDA" } else { "the CPU" }
        );
        r
    })
}
