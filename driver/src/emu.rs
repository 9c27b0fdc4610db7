//! The emulated backend: the engine model ([`crate::model`]) in this process, over a DMA window in host memory.
//!
//! It is the default backend when no FPGA is present, bit-exact with the golden model by construction (it *is*
//! the golden model, with the fast kernel), and it explains errors that hardware can only report as a code.

use std::time::Duration;

use arch::config::EngineConfig;
use arch::golden::Kernel;

use crate::backend::Backend;
use crate::model::EngineModel;
use crate::DriverError;

/// The device address the emulated engine gives the window (any value works; this one is recognisable).
pub const EMU_WINDOW_ADDRESS: u64 = 0x5157_0000_0000;

/// An emulated engine with its own DMA window.
#[derive(Debug)]
pub struct EmuBackend {
    model: EngineModel,
    window: Vec<u8>,
}

impl EmuBackend {
    /// An emulated engine of the given configuration with a DMA window of `window_bytes`.
    pub fn new(config: EngineConfig, window_bytes: usize) -> Result<Self, DriverError> {
        Ok(EmuBackend { model: EngineModel::new(config)?, window: vec![0; window_bytes] })
    }

    /// Chooses the golden model's GEMM kernel (both are bit-identical; `Fast` is the default).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.model.set_kernel(kernel);
    }
}

impl Backend for EmuBackend {
    fn name(&self) -> String {
        format!("emu ({})", self.model.config())
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        self.model.read32(offset).ok_or(DriverError::Register { offset })
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        if self.model.write32(offset, value, &mut self.window) {
            Ok(())
        } else {
            Err(DriverError::Register { offset })
        }
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.window
    }

    fn window_device_address(&self) -> u64 {
        EMU_WINDOW_ADDRESS
    }

    fn wait_interrupt(&mut self, _timeout: Duration) -> Result<bool, DriverError> {
        // The model completes a program inside the doorbell write, so an interrupt is either pending now or
        // will never come.
        Ok(self.model.interrupt_pending())
    }

    fn diagnostics(&mut self) -> Option<String> {
        self.model.last_error().map(|e| e.message.clone())
    }

    fn timeline(&mut self) -> Option<crate::Timeline> {
        Some(
            self.model.timeline().map(<[_]>::to_vec).ok_or_else(|| arch::trace::TraceError {
                cycle: 0,
                message: "the last program did not complete".into(),
            }),
        )
    }
}
