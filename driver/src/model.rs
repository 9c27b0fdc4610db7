//! The engine as a device: the golden model behind the BAR0 register file of `arch::regs`.
//!
//! [`EngineModel`] is the device side of the register protocol, as the hardware implements it: reset,
//! discovery, the DMA window, the command ring and doorbell, status, errors, interrupts and counters. It
//! executes each doorbell's program at once with [`arch::golden::Engine`] (the fast kernel by default), so
//! from the driver's side a program has completed by the time the doorbell write returns. The emulated backend
//! ([`crate::emu`]) wraps it around host memory; device servers (vfio-user) can wrap it around another
//! process's memory.

use arch::config::EngineConfig;
use arch::golden::{Counters, Engine, ExecError, Fault, Kernel};
use arch::regs::{self, ErrorCode};

/// The engine's register file and state, over the golden model.
#[derive(Debug)]
pub struct EngineModel {
    engine: Engine,
    kernel: Kernel,
    irq_enable: u32,
    irq_status: u32,
    error: Option<(u32, u32)>,
    dma_base: u64,
    dma_size: u32,
    cq_base: u32,
    cq_size: u32,
    cq_head: u32,
    cq_tail: u32,
    latched_hi: u32,
    last_error: Option<ExecError>,
    timeline: Option<Vec<arch::timing::Timing>>,
}

impl EngineModel {
    /// A freshly reset engine of the given configuration, using the fast GEMM kernel.
    pub fn new(config: EngineConfig) -> Result<Self, arch::config::ConfigError> {
        let mut engine = Engine::try_new(config)?;
        engine.set_kernel(Kernel::Fast);
        Ok(EngineModel {
            engine,
            kernel: Kernel::Fast,
            irq_enable: 0,
            irq_status: 0,
            error: None,
            dma_base: 0,
            dma_size: 0,
            cq_base: 0,
            cq_size: 0,
            cq_head: 0,
            cq_tail: 0,
            latched_hi: 0,
            last_error: None,
            timeline: None,
        })
    }

    /// The configuration the engine reports.
    pub fn config(&self) -> &EngineConfig {
        self.engine.config()
    }

    /// Chooses the golden model's GEMM kernel (both are bit-identical).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
        self.engine.set_kernel(kernel);
    }

    /// True while an enabled interrupt is pending (the interrupt line).
    pub fn interrupt_pending(&self) -> bool {
        self.irq_status & self.irq_enable != 0
    }

    /// The golden model's explanation of the last error, which hardware cannot give.
    pub fn last_error(&self) -> Option<&ExecError> {
        self.last_error.as_ref()
    }

    /// The golden model's timeline of the last program, when it completed (`None` after an error or before
    /// the first doorbell).
    pub fn timeline(&self) -> Option<&[arch::timing::Timing]> {
        self.timeline.as_deref()
    }

    /// Reads a register. Unlisted offsets read as zero, as the register map specifies; `None` only for an
    /// offset outside BAR0 or not 4-byte aligned.
    pub fn read32(&mut self, offset: u32) -> Option<u32> {
        if offset >= regs::BAR0_SIZE || !offset.is_multiple_of(4) {
            return None;
        }
        let c = &self.engine.counters;
        let counter = |v: u64, hi: &mut u32| {
            *hi = (v >> 32) as u32;
            v as u32
        };
        if let Some((_, v)) = regs::encode_config(self.engine.config()).into_iter().find(|(r, _)| *r == offset) {
            return Some(v);
        }
        Some(match offset {
            regs::ID => regs::ID_MAGIC,
            regs::VERSION_REG => regs::VERSION,
            regs::STATUS => match self.error {
                Some(_) => regs::STATUS_ERROR,
                None => regs::STATUS_IDLE,
            },
            regs::ERROR_CODE => self.error.map_or(0, |(code, _)| code),
            regs::ERROR_PC => self.error.map_or(0, |(_, pc)| pc),
            regs::IRQ_ENABLE => self.irq_enable,
            regs::IRQ_STATUS => self.irq_status,
            regs::DMA_BASE_LO => self.dma_base as u32,
            regs::DMA_BASE_HI => (self.dma_base >> 32) as u32,
            regs::DMA_SIZE => self.dma_size,
            regs::CQ_BASE => self.cq_base,
            regs::CQ_SIZE => self.cq_size,
            regs::CQ_HEAD => self.cq_head,
            regs::DOORBELL => self.cq_tail,
            regs::CYCLES_LO => counter(c.cycles, &mut self.latched_hi),
            regs::INSTRUCTIONS_LO => counter(c.instructions, &mut self.latched_hi),
            regs::MACS_LO => counter(c.macs, &mut self.latched_hi),
            regs::LOAD_BYTES_LO => counter(c.load_bytes, &mut self.latched_hi),
            regs::STORE_BYTES_LO => counter(c.store_bytes, &mut self.latched_hi),
            regs::LOAD_BUSY_LO => counter(c.load_busy, &mut self.latched_hi),
            regs::COMPUTE_BUSY_LO => counter(c.compute_busy, &mut self.latched_hi),
            regs::STORE_BUSY_LO => counter(c.store_busy, &mut self.latched_hi),
            regs::CYCLES_HI
            | regs::INSTRUCTIONS_HI
            | regs::MACS_HI
            | regs::LOAD_BYTES_HI
            | regs::STORE_BYTES_HI
            | regs::LOAD_BUSY_HI
            | regs::COMPUTE_BUSY_HI
            | regs::STORE_BUSY_HI => self.latched_hi,
            regs::SATURATIONS => c.saturations.min(u32::MAX as u64) as u32,
            _ => 0,
        })
    }

    /// Writes a register; `memory` is the DMA window as the device sees it (offset 0 = `DMA_BASE`). A doorbell
    /// runs the submitted program to completion before returning. Returns `false` only for an offset outside
    /// BAR0 or not 4-byte aligned; writes to read-only or unlisted registers are ignored.
    pub fn write32(&mut self, offset: u32, value: u32, memory: &mut [u8]) -> bool {
        if offset >= regs::BAR0_SIZE || !offset.is_multiple_of(4) {
            return false;
        }
        match offset {
            regs::CTRL if value & regs::CTRL_RESET != 0 => self.reset(),
            regs::IRQ_ENABLE => self.irq_enable = value & (regs::IRQ_DONE | regs::IRQ_ERROR),
            regs::IRQ_STATUS => self.irq_status &= !value,
            regs::DMA_BASE_LO => self.dma_base = (self.dma_base & !0xffff_ffff) | value as u64,
            regs::DMA_BASE_HI => self.dma_base = (self.dma_base & 0xffff_ffff) | (value as u64) << 32,
            regs::DMA_SIZE => self.dma_size = value,
            regs::CQ_BASE => self.cq_base = value,
            regs::CQ_SIZE => self.cq_size = value,
            regs::DOORBELL if self.error.is_none() => self.doorbell(value, memory),
            _ => {}
        }
        true
    }

    fn reset(&mut self) {
        let kernel = self.kernel;
        *self = EngineModel::new(*self.engine.config()).expect("configuration validated at creation");
        self.set_kernel(kernel);
    }

    fn doorbell(&mut self, tail: u32, memory: &mut [u8]) {
        self.cq_tail = tail;
        let window_len = (self.dma_size as usize).min(memory.len());
        let result = self.engine.run_ring(&mut memory[..window_len], self.cq_base, self.cq_size, self.cq_head, tail);
        self.timeline = None;
        match result {
            Ok(report) => {
                self.timeline = Some(report.timeline);
                self.cq_head = tail;
                self.irq_status |= regs::IRQ_DONE;
            }
            Err(e) => {
                // Undefined behaviour is something hardware cannot detect; the model stops with an internal error
                // rather than return timing-dependent results, and explains it through `last_error`.
                let code = match e.fault {
                    Fault::Engine(c) => c as u32,
                    Fault::Undefined => ErrorCode::Internal as u32,
                };
                self.error = Some((code, e.pc as u32));
                self.irq_status |= regs::IRQ_ERROR;
                self.last_error = Some(e);
            }
        }
    }

    /// The counters accumulated since reset.
    pub fn counters(&self) -> Counters {
        self.engine.counters
    }
}
