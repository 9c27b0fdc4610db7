//! The driver's errors: each says what went wrong and, where there is one, what the user can do.

use std::time::Duration;

use arch::config::ConfigError;
use arch::isa::IsaError;
use arch::regs::ErrorCode;
use thiserror::Error;

/// Everything that can go wrong between the runtime and an engine.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The device at the other end is not a systole engine.
    #[error("the device is not a systole engine: ID register reads {found:#010x}, expected {expected:#010x}")]
    WrongIdentity {
        /// What the ID register holds.
        found: u32,
        /// [`arch::regs::ID_MAGIC`].
        expected: u32,
    },
    /// The engine speaks another major version of the register map and ISA.
    #[error(
        "incompatible engine version {}.{}.{} (this driver speaks {}.x): load a matching bitstream or driver",
        engine >> 16, (engine >> 8) & 0xff, engine & 0xff, driver >> 16
    )]
    IncompatibleVersion {
        /// The engine's `VERSION_REG`.
        engine: u32,
        /// [`arch::regs::VERSION`].
        driver: u32,
    },
    /// The engine reports a configuration this driver cannot use.
    #[error("the engine reports an invalid configuration: {0}")]
    BadConfiguration(#[from] ConfigError),
    /// A register access outside BAR0 or misaligned.
    #[error("register access at {offset:#x} is outside BAR0 or not 4-byte aligned")]
    Register {
        /// The offending offset.
        offset: u32,
    },
    /// The engine stopped on an error; the driver has reset it.
    #[error("the engine stopped at instruction {pc} with {}{}", describe(*code), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Engine {
        /// `ERROR_CODE` as read.
        code: u32,
        /// `ERROR_PC`: the instruction's index in its program.
        pc: u32,
        /// More detail where the backend has it (the emulator explains every error).
        detail: Option<String>,
    },
    /// The engine did not finish in time; the driver has reset it.
    #[error("the engine did not finish within {after:?} (STATUS {status:#x}); it was reset")]
    Timeout {
        /// How long the driver waited.
        after: Duration,
        /// `STATUS` when the driver gave up.
        status: u32,
    },
    /// A program does not fit the command ring.
    #[error("a program of {len} instructions does not fit the command ring ({capacity} at most)")]
    ProgramTooLong {
        /// Instructions in the program.
        len: usize,
        /// The ring's capacity.
        capacity: usize,
    },
    /// Data does not fit the DMA window.
    #[error("{need} bytes do not fit the DMA window's {have} data bytes")]
    WindowTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The VFIO layer failed (opening, mapping, DMA or interrupts of a real device).
    #[error(transparent)]
    Vfio(#[from] crate::vfio::VfioError),
    /// The self-test could not be set up.
    /// The requested device is not available in this build or on this machine (the message says why and
    /// what would provide it).
    #[error("{0}")]
    Unavailable(String),
    #[error("self-test: {0}")]
    Selftest(String),
    /// An instruction could not be encoded.
    #[error("cannot encode the program: {0}")]
    Isa(#[from] IsaError),
    /// The vfio-user transport failed: the device server could not be reached, went away, or answered
    /// something unexpected. The message names the socket and says what to check (typically: is the server
    /// still running, is the path right), after which the device can be reopened.
    #[error("vfio-user: {0}")]
    VfioUser(String),
}

fn describe(code: u32) -> String {
    match ErrorCode::from_u32(code) {
        Some(c) => format!("{c:?} (code {code})"),
        None => format!("unknown error code {code}"),
    }
}
