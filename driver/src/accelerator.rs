//! The driver proper: discovery, the DMA window, the command ring, submission and completion.
//!
//! [`Accelerator`] speaks the register protocol of `arch::regs` to any [`Backend`]. It owns the layout of the
//! DMA window: data at the bottom (offset 0 is what programs built by `arch::program` call address 0) and the
//! command ring at the top.
//!
//! ```text
//! window offset 0                                       cq_base            window end
//! | program data (operands, weights, results) ...       | ring: slots × 32 B |
//! ```

use std::time::{Duration, Instant};

use arch::config::EngineConfig;
use arch::golden::Counters;
use arch::isa::{Instruction, INSTRUCTION_BYTES};
use arch::regs;

use crate::backend::Backend;
use crate::DriverError;

/// Command-ring slots the driver sets up: a program may have up to one fewer instructions.
pub const RING_SLOTS: u32 = 1 << 14;

/// How long [`Accelerator::run`] waits by default before resetting the engine.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one program run cost, read from the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Counter increments during the run (cycles, instructions, MACs, bytes, busy cycles, saturations).
    pub counters: Counters,
    /// Wall time from the doorbell to completion as seen by the host.
    pub wall: Duration,
}

impl std::ops::AddAssign for RunStats {
    /// Sums the costs of several runs (e.g. the programs of one layer).
    fn add_assign(&mut self, other: RunStats) {
        self.counters += other.counters;
        self.wall += other.wall;
    }
}

/// An engine, discovered and set up, behind any backend.
pub struct Accelerator<B: Backend> {
    backend: B,
    config: EngineConfig,
    cq_base: u32,
    head: u32,
    timeout: Duration,
    observer: Option<RunObserver>,
    timelines: Option<Vec<TimedProgram>>,
}

/// One program's per-instruction timing as [`Backend::timeline`] gives it.
pub type Timeline = Result<Vec<arch::timing::Timing>, arch::trace::TraceError>;

/// A completed program and its timeline, as [`Accelerator::record_timelines`] keeps them.
#[derive(Clone, Debug)]
pub struct TimedProgram {
    /// The program, in program order.
    pub program: Vec<Instruction>,
    /// When each of its instructions was dispatched, started and ended.
    pub timeline: Timeline,
}

/// What [`Accelerator::observe`] calls after every completed program.
type RunObserver = Box<dyn FnMut(&RunStats) + Send>;

impl<B: Backend> Accelerator<B> {
    /// Discovers the engine behind `backend` (identity, version, configuration), resets it, and programs the DMA
    /// window and the command ring.
    pub fn open(mut backend: B) -> Result<Self, DriverError> {
        let id = backend.read32(regs::ID)?;
        if id != regs::ID_MAGIC {
            return Err(DriverError::WrongIdentity { found: id, expected: regs::ID_MAGIC });
        }
        let version = backend.read32(regs::VERSION_REG)?;
        if version >> 16 != regs::VERSION >> 16 {
            return Err(DriverError::IncompatibleVersion { engine: version, driver: regs::VERSION });
        }
        let mut values = Vec::new();
        for (offset, _) in regs::encode_config(&EngineConfig::tiny()) {
            values.push((offset, backend.read32(offset)?));
        }
        let config = regs::decode_config(|o| values.iter().find(|(r, _)| *r == o).map_or(0, |(_, v)| *v))?;
        let window_len = backend.window().len();
        let ring_bytes = RING_SLOTS as usize * INSTRUCTION_BYTES;
        let window_len = u32::try_from(window_len).unwrap_or(u32::MAX) as usize & !(INSTRUCTION_BYTES - 1);
        if window_len < 2 * ring_bytes {
            return Err(DriverError::WindowTooSmall { need: 2 * ring_bytes, have: window_len });
        }
        let cq_base = (window_len - ring_bytes) as u32;
        let mut acc = Accelerator {
            backend,
            config,
            cq_base,
            head: 0,
            timeout: DEFAULT_TIMEOUT,
            observer: None,
            timelines: None,
        };
        acc.reset()?;
        Ok(acc)
    }

    /// Resets the engine and programs the window, the ring and the interrupts again.
    pub fn reset(&mut self) -> Result<(), DriverError> {
        let b = &mut self.backend;
        b.write32(regs::CTRL, regs::CTRL_RESET)?;
        let addr = b.window_device_address();
        b.write32(regs::DMA_BASE_LO, addr as u32)?;
        b.write32(regs::DMA_BASE_HI, (addr >> 32) as u32)?;
        b.write32(regs::DMA_SIZE, self.cq_base + RING_SLOTS * INSTRUCTION_BYTES as u32)?;
        b.write32(regs::CQ_BASE, self.cq_base)?;
        b.write32(regs::CQ_SIZE, RING_SLOTS)?;
        b.write32(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR)?;
        b.write32(regs::IRQ_STATUS, regs::IRQ_DONE | regs::IRQ_ERROR)?;
        self.head = b.read32(regs::CQ_HEAD)?;
        Ok(())
    }

    /// The engine's configuration, as it reported it.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The backend's name.
    pub fn name(&self) -> String {
        self.backend.name()
    }

    /// When every instruction of the last program was dispatched, started and ended, where the backend
    /// observes it ([`Backend::timeline`]).
    pub fn timeline(&mut self) -> Option<Timeline> {
        self.backend.timeline()
    }

    /// The backend, for backend-specific controls.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Sets how long [`Accelerator::run`] waits before it resets the engine and fails.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The data part of the DMA window: programs address it from offset 0.
    pub fn data(&mut self) -> &mut [u8] {
        let end = self.cq_base as usize;
        &mut self.backend.window()[..end]
    }

    /// Copies `image` to the start of the data region (e.g. an `arch::program::DmaWindow`'s bytes).
    pub fn write_data(&mut self, image: &[u8]) -> Result<(), DriverError> {
        let data = self.data();
        if image.len() > data.len() {
            return Err(DriverError::WindowTooSmall { need: image.len(), have: data.len() });
        }
        data[..image.len()].copy_from_slice(image);
        Ok(())
    }

    /// Reads the engine's counters (64-bit pairs read low half first, as the register map requires).
    pub fn counters(&mut self) -> Result<Counters, DriverError> {
        let mut pair = |lo: u32| -> Result<u64, DriverError> {
            let low = self.backend.read32(lo)?;
            Ok(low as u64 | (self.backend.read32(lo + 4)? as u64) << 32)
        };
        Ok(Counters {
            cycles: pair(regs::CYCLES_LO)?,
            instructions: pair(regs::INSTRUCTIONS_LO)?,
            macs: pair(regs::MACS_LO)?,
            load_bytes: pair(regs::LOAD_BYTES_LO)?,
            store_bytes: pair(regs::STORE_BYTES_LO)?,
            load_busy: pair(regs::LOAD_BUSY_LO)?,
            compute_busy: pair(regs::COMPUTE_BUSY_LO)?,
            store_busy: pair(regs::STORE_BUSY_LO)?,
            saturations: self.backend.read32(regs::SATURATIONS)? as u64,
        })
    }

    /// Runs one program (ending with its only FINISH) against the data already in the window, waiting for
    /// completion by interrupt, or by polling where the backend has none. On an engine error or a timeout the
    /// engine is reset and the error says what happened.
    pub fn run(&mut self, program: &[Instruction]) -> Result<RunStats, DriverError> {
        let capacity = RING_SLOTS as usize - 1;
        if program.len() > capacity {
            return Err(DriverError::ProgramTooLong { len: program.len(), capacity });
        }
        let before = self.counters()?;
        let (cq_base, head) = (self.cq_base as usize, self.head as usize);
        let window = self.backend.window();
        for (i, inst) in program.iter().enumerate() {
            let at = cq_base + ((head + i) % RING_SLOTS as usize) * INSTRUCTION_BYTES;
            window[at..at + INSTRUCTION_BYTES].copy_from_slice(&inst.to_bytes()?);
        }
        let tail = ((head + program.len()) % RING_SLOTS as usize) as u32;
        let start = Instant::now();
        self.backend.write32(regs::DOORBELL, tail)?;
        self.wait(start)?;
        let wall = start.elapsed();
        self.head = tail;
        let after = self.counters()?;
        let stats = RunStats { counters: after - before, wall };
        if let Some(observe) = &mut self.observer {
            observe(&stats);
        }
        if let Some(kept) = &mut self.timelines {
            if let Some(timeline) = self.backend.timeline() {
                kept.push(TimedProgram { program: program.to_vec(), timeline });
            }
        }
        Ok(stats)
    }

    /// From now on, keeps the timeline ([`Backend::timeline`]) of every program that completes, for
    /// [`Accelerator::take_timelines`]: per-instruction cycle accounting across the many programs of a layer
    /// or a network. Backends that cannot observe timelines add nothing.
    pub fn record_timelines(&mut self) {
        self.timelines.get_or_insert_with(Vec::new);
    }

    /// The timelines kept since [`Accelerator::record_timelines`] or the last call, in program order
    /// (recording goes on).
    pub fn take_timelines(&mut self) -> Vec<TimedProgram> {
        self.timelines.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Calls `observe` with the statistics of every program that completes from now on: progress displays
    /// of long runs (simulated engines) use it, whatever layer of the software runs the programs.
    pub fn observe(&mut self, observe: impl FnMut(&RunStats) + Send + 'static) {
        self.observer = Some(Box::new(observe));
    }

    /// Waits for DONE or ERROR.
    fn wait(&mut self, start: Instant) -> Result<(), DriverError> {
        let mut poll = Duration::from_micros(10);
        loop {
            let status = self.backend.read32(regs::STATUS)?;
            if status & regs::STATUS_ERROR != 0 {
                let code = self.backend.read32(regs::ERROR_CODE)?;
                let pc = self.backend.read32(regs::ERROR_PC)?;
                let detail = self.backend.diagnostics();
                self.reset()?;
                return Err(DriverError::Engine { code, pc, detail });
            }
            let irq = self.backend.read32(regs::IRQ_STATUS)?;
            if irq & regs::IRQ_DONE != 0 && status & regs::STATUS_BUSY == 0 {
                self.backend.write32(regs::IRQ_STATUS, regs::IRQ_DONE)?;
                return Ok(());
            }
            let left = self.timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                self.reset()?;
                return Err(DriverError::Timeout { after: self.timeout, status });
            }
            if !self.backend.wait_interrupt(left.min(Duration::from_millis(100)))? {
                std::thread::sleep(poll.min(left));
                poll = (poll * 2).min(Duration::from_millis(10));
            }
        }
    }
}
