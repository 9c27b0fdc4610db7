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
//! Which models exist is decided at build time: `SYSTOLE_SIM_MODELS` (default `tiny,16x16`) lists engine presets;
//! [`models`] tells what this build has.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use arch::EngineConfig;
use driver::{Backend, DriverError};

/// One verilated engine model: its preset and its C entry points (from `build.rs`).
struct Model {
    preset: &'static str,
    top: &'static str,
    new: unsafe extern "C" fn(u32) -> *mut c_void,
    delete: unsafe extern "C" fn(*mut c_void),
    set_memory: unsafe extern "C" fn(*mut c_void, *mut u8, u64, u64),
    bar_write: unsafe extern "C" fn(*mut c_void, u32, u32),
    bar_read: unsafe extern "C" fn(*mut c_void, u32) -> u32,
    run: unsafe extern "C" fn(*mut c_void, u64) -> u64,
    irq: unsafe extern "C" fn(*mut c_void) -> u8,
    cycle: unsafe extern "C" fn(*mut c_void) -> u64,
    faults: unsafe extern "C" fn(*mut c_void) -> u64,
}

include!(concat!(env!("OUT_DIR"), "/models.rs"));

/// The engine presets this build verilated (empty without the `verilator` feature), with their top modules.
pub fn models() -> Vec<(&'static str, &'static str)> {
    MODELS.iter().map(|m| (m.preset, m.top)).collect()
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
    /// A fresh engine of preset `preset` (power-on reset done) with a DMA window of `window_bytes`.
    ///
    /// # Errors
    /// [`DriverError::Unsupported`] when this build has no model of that preset (it names the ones it has and
    /// how to build others).
    pub fn new(preset: &str, window_bytes: usize) -> Result<Self, DriverError> {
        let model = MODELS.iter().find(|m| m.preset == preset).ok_or_else(|| {
            DriverError::Unavailable(format!(
                "no Verilator model of `{preset}` in this build (models: {:?}); build the sim crate with the \
                 `verilator` feature and SYSTOLE_SIM_MODELS={preset}",
                models().iter().map(|m| m.0).collect::<Vec<_>>()
            ))
        })?;
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
        format!("verilator:{} ({})", self.model.preset, self.model.top)
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
}
