//! # driver: the systole user-space driver
//!
//! One device interface, [`Backend`], with backends for the emulated engine ([`emu`]) and real hardware
//! through VFIO ([`vfio`]); the Verilator model plugs in from the `sim` crate. [`Accelerator`] speaks the
//! engine's register protocol (`arch::regs`) over any of them: discovery, the DMA window, the command ring,
//! doorbell, completion by interrupt or polling with a timeout, counters and reset. See `docs/driver.md`.

pub mod accelerator;
pub mod backend;
pub mod device;
pub mod emu;
pub mod error;
pub mod model;
pub mod selftest;
pub mod vfio;
pub mod vfio_user;

pub use accelerator::{Accelerator, RunStats, TimedProgram, Timeline};
pub use backend::Backend;
pub use emu::EmuBackend;
pub use error::DriverError;
pub use selftest::{selftest, SelftestReport};
