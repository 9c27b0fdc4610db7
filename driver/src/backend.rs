//! The seam between the driver and a device: 32-bit BAR0 registers, a DMA window, and interrupts.
//!
//! Every way of reaching an engine implements [`Backend`]: the emulated engine ([`crate::emu`]), real
//! hardware through VFIO ([`crate::vfio`]), and the Verilator model (in the `sim` crate). The driver
//! ([`crate::Accelerator`]) and everything above it are written against this trait only, so a test that runs
//! on `emu` runs on any other backend by changing one argument.

use std::time::Duration;

use crate::DriverError;

/// A device as the driver sees it.
pub trait Backend: Send {
    /// A short name for messages and `systole device list` (e.g. `emu`, `vfio 0000:01:00.0`).
    fn name(&self) -> String;

    /// Reads the 32-bit register at byte `offset` of BAR0.
    fn read32(&mut self, offset: u32) -> Result<u32, DriverError>;

    /// Writes the 32-bit register at byte `offset` of BAR0.
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError>;

    /// The host's view of the DMA window: memory the device reads and writes by DMA.
    fn window(&mut self) -> &mut [u8];

    /// The address the device uses for byte 0 of the window (an IOVA on real hardware); the driver writes it
    /// to `DMA_BASE`.
    fn window_device_address(&self) -> u64;

    /// Waits until the device raises an interrupt or `timeout` passes. Returns `Ok(true)` on an interrupt,
    /// `Ok(false)` on timeout. Backends without interrupts return `Ok(false)` at once and the driver polls.
    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError>;

    /// A human explanation of the device's last error beyond its error code, where the backend has one (the
    /// emulator does: it runs the golden model). Hardware backends return `None`.
    fn diagnostics(&mut self) -> Option<String> {
        None
    }

    /// When every instruction of the last program was dispatched, started and ended (cycles from the
    /// doorbell, in program order), where the backend observes it: the emulator from the golden model, the
    /// simulated RTL from the engine's instruction-trace port (`arch::trace`). `None` where it cannot be
    /// observed (hardware); an error when the last program did not complete or its trace breaks the port's
    /// rules.
    fn timeline(&mut self) -> Option<crate::Timeline> {
        None
    }
}

/// A boxed backend is a backend, so that one `Accelerator<Box<dyn Backend>>` can hold whichever the user chose.
impl Backend for Box<dyn Backend> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        (**self).read32(offset)
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        (**self).write32(offset, value)
    }

    fn window(&mut self) -> &mut [u8] {
        (**self).window()
    }

    fn window_device_address(&self) -> u64 {
        (**self).window_device_address()
    }

    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        (**self).wait_interrupt(timeout)
    }

    fn diagnostics(&mut self) -> Option<String> {
        (**self).diagnostics()
    }

    fn timeline(&mut self) -> Option<crate::Timeline> {
        (**self).timeline()
    }
}
