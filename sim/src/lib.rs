//! # sim: the exported engine under Verilator, behind the driver's device interface
//!
//! The `hdl` crate's Verilog of a whole engine, compiled to C++ by Verilator at build time (feature
//! `verilator`; `build.rs` regenerates the Verilog, nothing is copied by hand) and driven through a small C
//! shim that also serves the engine's three memory channels from host memory, by the protocol of
//! docs/hardware.md. [`VerilatorBackend`] puts such a model behind [`driver::Backend`], so the driver, the
//! runtime and every test run on the RTL by changing one argument: BAR0 reads and writes are register
//! accesses of the RTL (one clock cycle each), the DMA window is host memory the model reads and writes, and
//! waiting for the interrupt runs the clock.
//!
//! Which models exist is decided at build time: `SYSTOLE_SIM_MODELS` (default `tiny+trace,8x8,16x16`) lists engine
//! configurations, each optionally verilated multi-threaded (`16x16+t2`: Verilator's `--threads 2`) or with
//! waveform support (`tiny+trace`: [`VerilatorBackend::trace`] writes VCD); [`models`] tells what this build has.

pub mod rust_hdl;

pub use rust_hdl::{rust_hdl_backend, RustHdlBackend};

use std::ffi::{c_char, c_void, CString};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use arch::EngineConfig;
use driver::device::{DeviceSpec, EMU_WINDOW_BYTES};
use driver::{Backend, DriverError};

/// One verilated engine model: its name, configuration, variant and C entry points (from `build.rs`).
struct Model {
    name: &'static str,
    preset: &'static str,
    top: &'static str,
    threads: u32,
    trace: bool,
    new: unsafe extern "C" fn(u32) -> *mut c_void,
    delete: unsafe extern "C" fn(*mut c_void),
    set_memory: unsafe extern "C" fn(*mut c_void, *mut u8, u64, u64),
    bar_write: unsafe extern "C" fn(*mut c_void, u32, u32),
    bar_read: unsafe extern "C" fn(*mut c_void, u32) -> u32,
    run: unsafe extern "C" fn(*mut c_void, u64) -> u64,
    irq: unsafe extern "C" fn(*mut c_void) -> u8,
    cycle: unsafe extern "C" fn(*mut c_void) -> u64,
    faults: unsafe extern "C" fn(*mut c_void) -> u64,
    trace_to: unsafe extern "C" fn(*mut c_void, *const c_char, u64, u64) -> i32,
    instruction_events: unsafe extern "C" fn(*mut c_void, *mut u64, u64) -> u64,
}

include!(concat!(env!("OUT_DIR"), "/models.rs"));

/// What one verilated model of this build is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name [`VerilatorBackend::new`] takes (`16x16`, `16x16+t2`, `tiny+trace`).
    pub name: &'static str,
    /// The engine configuration it was built from (`tiny`, `8x8`, `16x16`, `32x32`).
    pub preset: &'static str,
    /// Its top module (`systole_engine_16x16_msfp16`).
    pub top: &'static str,
    /// Threads of Verilator's model (1: single-threaded).
    pub threads: u32,
    /// Whether it can write waveforms ([`VerilatorBackend::trace`]).
    pub trace: bool,
}

/// The models this build verilated (empty without the `verilator` feature).
pub fn models() -> Vec<ModelInfo> {
    MODELS
        .iter()
        .map(|m| ModelInfo { name: m.name, preset: m.preset, top: m.top, threads: m.threads, trace: m.trace })
        .collect()
}

/// Options of a simulated device.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// A VCD waveform of these clock cycles into this file ([`VerilatorBackend::trace`]).
    pub trace: Option<(std::path::PathBuf, Range<u64>)>,
}

/// Opens any device the user can name: the simulated engines here (`verilator:MODEL`, `rust-hdl:CONFIG`), the
/// others through the driver ([`DeviceSpec::open`]).
///
/// # Errors
/// The backend's, and [`DriverError::Unavailable`] for a waveform asked of a device that cannot write one.
pub fn open_device(spec: &DeviceSpec, options: &SimOptions) -> Result<Box<dyn Backend>, DriverError> {
    match spec {
        DeviceSpec::Verilator(model) => {
            let mut backend = VerilatorBackend::new(model, EMU_WINDOW_BYTES)?;
            if let Some((path, cycles)) = &options.trace {
                backend.trace(path, cycles.clone())?;
            }
            Ok(Box::new(backend))
        }
        _ if options.trace.is_some() => Err(DriverError::Unavailable(format!(
            "{spec} cannot write waveforms: use a Verilator model built with +trace (verilator:tiny+trace)"
        ))),
        DeviceSpec::RustHdl(cfg) => rust_hdl_backend(cfg, EMU_WINDOW_BYTES),
        other => other.open(),
    }
}

/// IOVA of the DMA window's first byte as the simulated engine sees it (not 0, so that an engine that forgot
/// to add `DMA_BASE` faults).
pub const WINDOW_IOVA: u64 = 0x10_0000_0000;

/// Clock cycles run per call into the model while waiting for an interrupt (the wall-clock timeout is
/// checked between calls).
const CYCLES_PER_CALL: u64 = 1 << 16;

/// A verilated engine behind the driver's device interface.
pub struct VerilatorBackend {
    model: &'static Model,
    sim: *mut c_void,
    /// The DMA window; its buffer never moves (the model holds a pointer into it).
    window: Box<[u8]>,
    config: EngineConfig,
}

// SAFETY: the model is plain C++ state owned by this value and touched only through `&mut self`; Verilator's
// single-threaded models have no thread affinity.
unsafe impl Send for VerilatorBackend {}

impl VerilatorBackend {
    /// A fresh engine of model `name` (see [`models`]; power-on reset done) with a DMA window of `window_bytes`.
    /// A configuration's name (`tiny`) picks this build's model of it with the fewest threads (`tiny+trace`).
    ///
    /// # Errors
    /// [`DriverError::Unavailable`] when this build has no model of that name (it names the ones it has and
    /// how to build others).
    pub fn new(name: &str, window_bytes: usize) -> Result<Self, DriverError> {
        // An exact name, else a configuration's name: its model with the fewest threads.
        let exact = MODELS.iter().find(|m| m.name == name);
        let model = exact.or_else(|| MODELS.iter().filter(|m| m.preset == name).min_by_key(|m| m.threads)).ok_or_else(
            || {
                DriverError::Unavailable(format!(
                    "no Verilator model `{name}` in this build (models: {:?}); build the sim crate with the \
                 `verilator` feature and SYSTOLE_SIM_MODELS={name}",
                    models().iter().map(|m| m.name).collect::<Vec<_>>()
                ))
            },
        )?;
        let preset = model.preset;
        let config: EngineConfig = preset.parse().map_err(|e| DriverError::Unavailable(format!("{preset}: {e}")))?;
        let mut window = vec![0u8; window_bytes].into_boxed_slice();
        // SAFETY: `new` returns a valid model; the window outlives it (dropped after `delete` in Drop) and its
        // heap buffer never moves.
        let sim = unsafe {
            let sim = (model.new)(config.dma_latency);
            (model.set_memory)(sim, window.as_mut_ptr(), window.len() as u64, WINDOW_IOVA);
            sim
        };
        Ok(VerilatorBackend { model, sim, window, config })
    }

    /// The engine configuration the model was built for.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Clock cycles simulated since power-on.
    pub fn cycles(&self) -> u64 {
        // SAFETY: `sim` is live for the lifetime of `self`.
        unsafe { (self.model.cycle)(self.sim) }
    }

    /// Writes a VCD waveform (every signal of the engine, openable in GTKWave) of clock cycles `cycles`
    /// (counted as [`VerilatorBackend::cycles`] counts them) to `path`; the file is complete once the window
    /// has been simulated or the backend is dropped. One cycle is 2 time units, the rising edge at the odd one.
    ///
    /// # Errors
    /// [`DriverError::Unavailable`] when the model was built without `+trace` or the file cannot be created.
    pub fn trace(&mut self, path: &Path, cycles: Range<u64>) -> Result<(), DriverError> {
        if !self.model.trace {
            let with = format!("{}+trace", self.model.preset);
            return Err(DriverError::Unavailable(format!(
                "the Verilator model `{}` was built without waveform support: build with SYSTOLE_SIM_MODELS={with} \
                 and use the model `{with}`",
                self.model.name
            )));
        }
        let c_path = CString::new(path.as_os_str().to_string_lossy().as_bytes())
            .map_err(|_| DriverError::Unavailable(format!("{}: a path with a NUL byte", path.display())))?;
        // SAFETY: `sim` is live; the path is a valid C string for the duration of the call (the shim copies it).
        match unsafe { (self.model.trace_to)(self.sim, c_path.as_ptr(), cycles.start, cycles.end) } {
            0 => Ok(()),
            _ => Err(DriverError::Unavailable(format!("cannot write the waveform {}", path.display()))),
        }
    }

    /// Memory-port protocol violations the bridge models saw (accesses outside host memory, zero-length
    /// requests, oversized writes). A correct engine leaves this at 0.
    pub fn protocol_faults(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (self.model.faults)(self.sim) }
    }
}

impl Drop for VerilatorBackend {
    fn drop(&mut self) {
        // SAFETY: `sim` came from `new` and is deleted once.
        unsafe { (self.model.delete)(self.sim) }
    }
}

impl Backend for VerilatorBackend {
    fn name(&self) -> String {
        format!("verilator:{} ({})", self.model.name, self.model.top)
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        // SAFETY: `sim` is live.
        Ok(unsafe { (self.model.bar_read)(self.sim, offset) })
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        // SAFETY: `sim` is live.
        unsafe { (self.model.bar_write)(self.sim, offset, value) };
        Ok(())
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.window
    }

    fn window_device_address(&self) -> u64 {
        WINDOW_IOVA
    }

    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        let start = Instant::now();
        loop {
            // SAFETY: `sim` is live; the window it writes is `self.window`, not borrowed elsewhere now.
            let irq = unsafe {
                (self.model.run)(self.sim, CYCLES_PER_CALL);
                (self.model.irq)(self.sim) != 0
            };
            if irq {
                return Ok(true);
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
        }
    }

    fn timeline(&mut self) -> Option<driver::Timeline> {
        // SAFETY: `sim` is live; the first call writes nothing (capacity 0), the second at most `n` words
        // into a buffer of `n`.
        let packed = unsafe {
            let n = (self.model.instruction_events)(self.sim, std::ptr::null_mut(), 0);
            let mut packed = vec![0u64; n as usize];
            let written = (self.model.instruction_events)(self.sim, packed.as_mut_ptr(), n);
            packed.truncate(written.min(n) as usize);
            packed
        };
        let events: Vec<_> =
            packed.iter().map(|&w| arch::trace::TraceEvent { cycle: w >> 16, bits: w as u16 }).collect();
        Some(arch::trace::timeline(&events))
    }
}
