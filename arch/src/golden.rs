//! The golden model: a plain interpreter of engine programs, exact to the bit and to the cycle.
//!
//! [`Engine`] holds the on-chip buffers and executes a program against a DMA window (a byte slice standing for
//! host memory). It is the specification the RTL is tested against, so it is written to be read: each
//! instruction is one small function that follows the ISA documentation line by line. Functional effects are
//! applied in program order; timing follows [`crate::timing`]. Because real stages overlap, the model also
//! checks that a program's tokens order every conflicting buffer access between stages: an unsynchronised
//! program would give timing-dependent results on hardware, so it is rejected here rather than "working".
//!
//! The GEMM inner loop exists twice: the plain loop in this file (the reference) and the fast kernel in
//! [`crate::fast`], which the runtime uses. [`Engine::set_kernel`] picks one; tests hold them bit-identical.

use std::collections::VecDeque;

use thiserror::Error;

use crate::accum::{accumulate, accumulator_input, Term};
use crate::bfp::{pack_block_mantissas, quantize_block_into, unpack_block_mantissas, BfpFormat, Rounding};
use crate::config::{ConfigError, EngineConfig};
use crate::isa::{Activation, Buffer, Gemm, Instruction, IsaError, Load, Op, Post, Stage, Store, INSTRUCTION_BYTES};
use crate::regs::ErrorCode;
use crate::timing::{self, token_queue, Timing};

/// What went wrong in a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// An error the engine itself detects and reports in `ERROR_CODE`.
    Engine(ErrorCode),
    /// Behaviour the ISA leaves undefined and hardware does not detect (a data race between stages,
    /// aliasing accumulators); the golden model refuses such programs.
    Undefined,
}

/// A failed program: the fault, the index of the instruction, and an explanation.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("instruction {pc}: {message}")]
pub struct ExecError {
    /// Kind of fault.
    pub fault: Fault,
    /// Program index of the failing instruction.
    pub pc: usize,
    /// What happened, for a person.
    pub message: String,
}

/// Performance counters, as in the register map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Cycles from the doorbell to FINISH's end.
    pub cycles: u64,
    /// Instructions retired.
    pub instructions: u64,
    /// Useful MACs (element products) of GEMM.
    pub macs: u64,
    /// Bytes read from host memory by LOAD.
    pub load_bytes: u64,
    /// Bytes written to host memory by STORE.
    pub store_bytes: u64,
    /// Cycles the load stage executed.
    pub load_busy: u64,
    /// Cycles the compute stage executed.
    pub compute_busy: u64,
    /// Cycles the store stage executed.
    pub store_busy: u64,
    /// Saturated accumulator additions.
    pub saturations: u64,
}

impl std::ops::AddAssign for Counters {
    /// Sums two sets of counters (e.g. over several runs).
    fn add_assign(&mut self, r: Counters) {
        self.cycles += r.cycles;
        self.instructions += r.instructions;
        self.macs += r.macs;
        self.load_bytes += r.load_bytes;
        self.store_bytes += r.store_bytes;
        self.load_busy += r.load_busy;
        self.compute_busy += r.compute_busy;
        self.store_busy += r.store_busy;
        self.saturations += r.saturations;
    }
}

impl std::ops::Sub for Counters {
    type Output = Counters;

    /// The increments from `earlier` to `self` (counters only grow between resets).
    fn sub(self, earlier: Counters) -> Counters {
        Counters {
            cycles: self.cycles - earlier.cycles,
            instructions: self.instructions - earlier.instructions,
            macs: self.macs - earlier.macs,
            load_bytes: self.load_bytes - earlier.load_bytes,
            store_bytes: self.store_bytes - earlier.store_bytes,
            load_busy: self.load_busy - earlier.load_busy,
            compute_busy: self.compute_busy - earlier.compute_busy,
            store_busy: self.store_busy - earlier.store_busy,
            saturations: self.saturations - earlier.saturations,
        }
    }
}

impl Counters {
    /// Fraction of the array's peak MACs used over the program.
    pub fn utilisation(&self, cfg: &EngineConfig) -> f64 {
        if self.cycles == 0 {
            0.0
        } else {
            self.macs as f64 / (self.cycles as f64 * cfg.macs() as f64)
        }
    }
}

/// The result of a program run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Counters accumulated by this run.
    pub counters: Counters,
    /// Dispatch, start and end cycle of every instruction, in program order.
    pub timeline: Vec<Timing>,
}

/// Which GEMM kernel the engine uses. Both give identical bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    /// The plain loop nest in this module: the reference.
    #[default]
    Reference,
    /// [`crate::fast`]'s kernel.
    Fast,
}

/// A buffer of BFP blocks: `entries` exponent codes and `entries · block_size` mantissas.
#[derive(Clone, Debug)]
pub struct BlockBuffer {
    block_size: usize,
    /// Exponent code of each entry.
    pub exponents: Vec<u8>,
    /// Mantissas, entry after entry.
    pub mantissas: Vec<i8>,
}

impl BlockBuffer {
    fn new(entries: usize, block_size: usize) -> Self {
        BlockBuffer { block_size, exponents: vec![0; entries], mantissas: vec![0; entries * block_size] }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.exponents.len()
    }

    /// True for a zero-sized buffer.
    pub fn is_empty(&self) -> bool {
        self.exponents.is_empty()
    }

    /// The mantissas of entry `e`.
    pub fn block(&self, e: usize) -> &[i8] {
        &self.mantissas[e * self.block_size..(e + 1) * self.block_size]
    }

    fn block_mut(&mut self, e: usize) -> &mut [i8] {
        &mut self.mantissas[e * self.block_size..(e + 1) * self.block_size]
    }

    fn clear(&mut self) {
        self.exponents.fill(0);
        self.mantissas.fill(0);
    }
}

/// The engine: configuration, on-chip buffers and counters.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    kernel: Kernel,
    /// Activation buffer.
    pub act: BlockBuffer,
    /// Weight buffer.
    pub wgt: BlockBuffer,
    /// Output buffer.
    pub out: BlockBuffer,
    /// Accumulator buffer.
    pub acc: Vec<f32>,
    /// Counters since the last reset (summed over runs).
    pub counters: Counters,
}

type Fallible<T> = Result<T, (Fault, String)>;

fn engine_fault<T>(code: ErrorCode, message: String) -> Fallible<T> {
    Err((Fault::Engine(code), message))
}

impl Engine {
    /// A reset engine for a configuration already known to be valid (a preset, or one parsed or validated).
    ///
    /// # Panics
    /// If the configuration is invalid; use [`Engine::try_new`] for configurations from users.
    pub fn new(config: EngineConfig) -> Self {
        Self::try_new(config).expect("valid engine configuration")
    }

    /// A reset engine, or the reason the configuration cannot be built.
    pub fn try_new(config: EngineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let bs = config.format.block_size();
        Ok(Engine {
            config,
            kernel: Kernel::Reference,
            act: BlockBuffer::new(config.act_entries, bs),
            wgt: BlockBuffer::new(config.wgt_entries, bs),
            out: BlockBuffer::new(config.out_entries, bs),
            acc: vec![0.0; config.acc_entries],
            counters: Counters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Chooses the GEMM kernel.
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
    }

    /// Clears buffers and counters (as `CTRL.RESET` plus zeroed memories).
    pub fn reset(&mut self) {
        self.act.clear();
        self.wgt.clear();
        self.out.clear();
        self.acc.fill(0.0);
        self.counters = Counters::default();
    }

    /// Runs a program that ends with its only FINISH, against the DMA window `mem`, as if it were placed at
    /// the start of a command ring of unlimited size.
    pub fn run(&mut self, program: &[Instruction], mem: &mut [u8]) -> Result<RunReport, ExecError> {
        self.execute(program, usize::MAX, 0, mem)
    }

    /// Fetches and runs the program in ring slots `head..tail` (wrapping at `cq_size`) of the command ring at
    /// byte offset `cq_base` of the DMA window, as the engine does after a doorbell.
    pub fn run_ring(
        &mut self,
        mem: &mut [u8],
        cq_base: u32,
        cq_size: u32,
        head: u32,
        tail: u32,
    ) -> Result<RunReport, ExecError> {
        let err = |pc: usize, code, message: String| ExecError { fault: Fault::Engine(code), pc, message };
        if !cq_size.is_power_of_two() || head >= cq_size || tail >= cq_size || !cq_base.is_multiple_of(32) {
            return Err(err(
                0,
                ErrorCode::IllegalInstruction,
                format!("bad ring: base {cq_base:#x} (32-byte aligned), size {cq_size} (a power of two), head {head}, tail {tail}"),
            ));
        }
        let count = ((tail + cq_size - head) % cq_size) as usize;
        let mut program = Vec::with_capacity(count);
        for i in 0..count {
            let slot = (head as usize + i) % cq_size as usize;
            let at = cq_base as usize + slot * INSTRUCTION_BYTES;
            let bytes: &[u8; INSTRUCTION_BYTES] =
                mem.get(at..at + INSTRUCTION_BYTES).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                    err(i, ErrorCode::DmaOutOfBounds, format!("ring slot {slot} at {at:#x} is outside the DMA window"))
                })?;
            let inst = Instruction::from_bytes(bytes)
                .map_err(|e: IsaError| err(i, ErrorCode::IllegalInstruction, e.to_string()))?;
            program.push(inst);
        }
        self.execute(&program, cq_size as usize, head as usize, mem)
    }

    fn execute(
        &mut self,
        program: &[Instruction],
        ring_size: usize,
        head: usize,
        mem: &mut [u8],
    ) -> Result<RunReport, ExecError> {
        let at = |pc: usize| move |(fault, message): (Fault, String)| ExecError { fault, pc, message };
        match program.iter().position(|i| i.op == Op::Finish) {
            Some(p) if p + 1 == program.len() => {}
            _ => {
                return Err(ExecError {
                    fault: Fault::Engine(ErrorCode::IllegalInstruction),
                    pc: program.len().saturating_sub(1),
                    message: "a program must end with its only FINISH".into(),
                })
            }
        }
        let mut clock = timing::Clock::new(self.config, program.len(), ring_size, head);
        let mut races = RaceChecker::default();
        let mut report = RunReport { counters: Counters::default(), timeline: Vec::with_capacity(program.len()) };
        for (pc, inst) in program.iter().enumerate() {
            inst.validate().map_err(|e| ExecError {
                fault: Fault::Engine(ErrorCode::IllegalInstruction),
                pc,
                message: e.to_string(),
            })?;
            let t = clock.schedule(inst).map_err(|(code, m)| at(pc)((Fault::Engine(code), m)))?;
            if let Some(stage) = inst.stage() {
                races.check(pc, inst, stage, &self.footprint(inst)).map_err(at(pc))?;
            }
            self.apply(inst, mem, &mut report.counters).map_err(at(pc))?;
            let cost = t.end - t.start;
            match inst.stage() {
                Some(Stage::Load) => report.counters.load_busy += cost,
                Some(Stage::Compute) => report.counters.compute_busy += cost,
                Some(Stage::Store) => report.counters.store_busy += cost,
                None => {}
            }
            report.counters.instructions += 1;
            report.timeline.push(t);
        }
        clock.check_token_capacity().map_err(|(code, m)| at(program.len() - 1)((Fault::Engine(code), m)))?;
        report.counters.cycles = report.timeline.last().map_or(0, |t| t.end);
        self.counters += report.counters;
        Ok(report)
    }

    /// Applies one instruction's effect on buffers and memory.
    fn apply(&mut self, inst: &Instruction, mem: &mut [u8], counters: &mut Counters) -> Fallible<()> {
        match &inst.op {
            Op::Load(l) => self.load(l, mem, counters),
            Op::Store(s) => self.store(s, mem, counters),
            Op::Gemm(g) => self.gemm(g, counters),
            Op::Post(p) => self.post(p, counters),
            Op::Sync(_) | Op::Finish => Ok(()),
        }
    }

    fn buffer_len(&self, b: Buffer) -> usize {
        match b {
            Buffer::Act => self.act.len(),
            Buffer::Wgt => self.wgt.len(),
            Buffer::Acc => self.acc.len(),
            Buffer::Out => self.out.len(),
        }
    }

    fn block_buffer_mut(&mut self, b: Buffer) -> &mut BlockBuffer {
        match b {
            Buffer::Act => &mut self.act,
            Buffer::Wgt => &mut self.wgt,
            Buffer::Out => &mut self.out,
            Buffer::Acc => unreachable!("the accumulator buffer holds f32, not blocks"),
        }
    }

    fn load(&mut self, l: &Load, mem: &[u8], counters: &mut Counters) -> Fallible<()> {
        let [top, bottom, left, right] = l.pad.map(usize::from);
        let row = left + l.x_size as usize + right;
        let rows = top + l.y_size as usize + bottom;
        check_range(self.buffer_len(l.buffer), l.sram_base as usize, rows * row, "LOAD destination")?;
        let format = self.config.format;
        let mb = format.mantissa_bytes();
        for yy in 0..rows {
            for xx in 0..row {
                let entry = l.sram_base as usize + yy * row + xx;
                let data =
                    (top..top + l.y_size as usize).contains(&yy) && (left..left + l.x_size as usize).contains(&xx);
                // The host entry of a data entry (padding entries have none: computing one would underflow).
                let host = if data { ((yy - top) * l.x_stride as usize + (xx - left)) as u64 } else { 0 };
                if l.buffer == Buffer::Acc {
                    self.acc[entry] = if data {
                        let raw = dma_read(mem, l.dram_addr as u64 + host * 4, 4)?;
                        let x = f32::from_le_bytes(raw.try_into().expect("4 bytes"));
                        accumulator_input(x).ok_or((
                            Fault::Engine(ErrorCode::NonFiniteInput),
                            format!("LOAD read {x} into the accumulator buffer (entry {entry})"),
                        ))?
                    } else {
                        0.0
                    };
                    continue;
                }
                let buf = self.block_buffer_mut(l.buffer);
                if data {
                    let code = dma_read(mem, l.exp_addr as u64 + host, 1)?[0];
                    format.decode_exponent(code).map_err(|e| (Fault::Engine(ErrorCode::BadExponent), e.to_string()))?;
                    let src = dma_read(mem, l.dram_addr as u64 + host * mb as u64, mb)?;
                    buf.exponents[entry] = code;
                    unpack_block_mantissas(&format, src, buf.block_mut(entry));
                } else {
                    buf.exponents[entry] = 0;
                    buf.block_mut(entry).fill(0);
                }
            }
        }
        counters.load_bytes += l.y_size as u64 * l.x_size as u64 * timing::entry_bytes(&self.config, l.buffer);
        Ok(())
    }

    fn store(&mut self, s: &Store, mem: &mut [u8], counters: &mut Counters) -> Fallible<()> {
        let (y, x) = (s.y_size as usize, s.x_size as usize);
        check_range(self.buffer_len(s.buffer), s.sram_base as usize, y * x, "STORE source")?;
        let format = self.config.format;
        let mb = format.mantissa_bytes();
        let mut packed = vec![0u8; mb];
        for yy in 0..y {
            for xx in 0..x {
                let entry = s.sram_base as usize + yy * x + xx;
                let host = (yy * s.x_stride as usize + xx) as u64;
                if s.buffer == Buffer::Acc {
                    dma_write(mem, s.dram_addr as u64 + host * 4, &self.acc[entry].to_le_bytes())?;
                } else {
                    pack_block_mantissas(&format, self.out.block(entry), &mut packed);
                    dma_write(mem, s.dram_addr as u64 + host * mb as u64, &packed)?;
                    dma_write(mem, s.exp_addr as u64 + host, &[self.out.exponents[entry]])?;
                }
            }
        }
        counters.store_bytes += (y * x) as u64 * timing::entry_bytes(&self.config, s.buffer);
        Ok(())
    }

    fn gemm(&mut self, g: &Gemm, counters: &mut Counters) -> Fallible<()> {
        if g.rows() == 0 || g.n_size == 0 || g.k_blocks() == 0 {
            return Ok(());
        }
        let fp = gemm_footprint(g);
        check_range(self.act.len(), fp.act.0, fp.act.1 - fp.act.0, "GEMM activations")?;
        check_range(self.wgt.len(), fp.wgt.0, fp.wgt.1 - fp.wgt.0, "GEMM weights")?;
        check_range(self.acc.len(), fp.acc.0, fp.acc.1 - fp.acc.0, "GEMM accumulators")?;
        check_no_alias(g, self.acc.len())?;
        counters.saturations += match self.kernel {
            Kernel::Reference => reference_gemm(&self.config.format, g, &self.act, &self.wgt, &mut self.acc),
            Kernel::Fast => crate::fast::gemm(&self.config.format, g, &self.act, &self.wgt, &mut self.acc),
        };
        counters.macs += timing::gemm_macs(&self.config, g);
        Ok(())
    }

    fn post(&mut self, p: &Post, counters: &mut Counters) -> Fallible<()> {
        let format = self.config.format;
        let bs = format.block_size();
        let (m_size, nb) = (p.m_size as usize, p.n_blocks as usize);
        if m_size == 0 || nb == 0 {
            return Ok(());
        }
        let cols = nb * bs;
        let span = |base: u16, stride: u16, width: usize| (m_size - 1) * stride as usize + width + base as usize;
        check_range(self.acc.len(), p.acc_base as usize, span(0, p.acc_m_stride, cols), "POST accumulators")?;
        if p.bias {
            check_range(self.acc.len(), p.bias_base as usize, cols, "POST bias")?;
        }
        if p.residual {
            check_range(self.act.len(), p.res_base as usize, span(0, p.res_m_stride, nb), "POST residual")?;
        }
        if !p.to_acc {
            check_range(self.out.len(), p.out_base as usize, span(0, p.out_m_stride, nb), "POST output")?;
        }
        check_post_no_alias(p, bs)?;
        let rounding = if p.round_away { Rounding::NearestAway } else { Rounding::NearestEven };
        let mut values = vec![0.0f32; bs];
        let mut mantissas = vec![0i8; bs];
        for m in 0..m_size {
            for b in 0..nb {
                for (i, v) in values.iter_mut().enumerate() {
                    let n = b * bs + i;
                    let mut x = self.acc[p.acc_base as usize + m * p.acc_m_stride as usize + n];
                    if p.bias {
                        let s = accumulate(x, Term::from_f32(self.acc[p.bias_base as usize + n]));
                        counters.saturations += s.saturated as u64;
                        x = s.value;
                    }
                    if p.residual {
                        let e = p.res_base as usize + m * p.res_m_stride as usize + b;
                        let s = accumulate(x, residual_term(&format, self.act.exponents[e], self.act.block(e)[i]));
                        counters.saturations += s.saturated as u64;
                        x = s.value;
                    }
                    *v = activate(p.activation, x);
                }
                if p.to_acc {
                    let row = p.acc_base as usize + m * p.acc_m_stride as usize + b * bs;
                    self.acc[row..row + bs].copy_from_slice(&values);
                } else {
                    let code = quantize_block_into(&format, rounding, &values, &mut mantissas)
                        .map_err(|e| (Fault::Engine(ErrorCode::Internal), e.to_string()))?;
                    let e = p.out_base as usize + m * p.out_m_stride as usize + b;
                    self.out.exponents[e] = code;
                    self.out.block_mut(e).copy_from_slice(&mantissas);
                }
            }
        }
        Ok(())
    }

    /// The buffer ranges an instruction reads and writes, for the race check.
    fn footprint(&self, inst: &Instruction) -> Vec<Access> {
        let bs = self.config.format.block_size();
        let mut v = Vec::new();
        let mut add = |buffer, lo: usize, len: usize, write| {
            if len > 0 {
                v.push(Access { buffer, lo, hi: lo + len, write });
            }
        };
        match &inst.op {
            Op::Load(l) => {
                let [t, b, le, r] = l.pad.map(usize::from);
                add(l.buffer, l.sram_base as usize, (t + l.y_size as usize + b) * (le + l.x_size as usize + r), true);
            }
            Op::Store(s) => add(s.buffer, s.sram_base as usize, s.y_size as usize * s.x_size as usize, false),
            Op::Gemm(g) if g.rows() > 0 && g.n_size > 0 && g.k_blocks() > 0 => {
                let fp = gemm_footprint(g);
                add(Buffer::Act, fp.act.0, fp.act.1 - fp.act.0, false);
                add(Buffer::Wgt, fp.wgt.0, fp.wgt.1 - fp.wgt.0, false);
                add(Buffer::Acc, fp.acc.0, fp.acc.1 - fp.acc.0, true);
            }
            Op::Post(p) if p.m_size > 0 && p.n_blocks > 0 => {
                let (m, nb) = (p.m_size as usize - 1, p.n_blocks as usize);
                add(Buffer::Acc, p.acc_base as usize, m * p.acc_m_stride as usize + nb * bs, p.to_acc);
                if p.bias {
                    add(Buffer::Acc, p.bias_base as usize, nb * bs, false);
                }
                if p.residual {
                    add(Buffer::Act, p.res_base as usize, m * p.res_m_stride as usize + nb, false);
                }
                if !p.to_acc {
                    add(Buffer::Out, p.out_base as usize, m * p.out_m_stride as usize + nb, true);
                }
            }
            _ => {}
        }
        v
    }
}

/// The residual element `mantissa · 2^(E − fraction_bits)` as an accumulator term.
fn residual_term(format: &BfpFormat, code: u8, mantissa: i8) -> Term {
    let e = code as i32 - format.exponent_bias();
    Term { mantissa: mantissa as i32, exponent: e - format.fraction_bits() }
}

/// Applies POST's activation function.
pub fn activate(a: Activation, x: f32) -> f32 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
    }
}

/// The half-open index ranges `[lo, hi)` a non-empty GEMM touches in each buffer.
pub(crate) struct GemmFootprint {
    pub act: (usize, usize),
    pub wgt: (usize, usize),
    pub acc: (usize, usize),
}

pub(crate) fn gemm_footprint(g: &Gemm) -> GemmFootprint {
    let last = |n: u64| n as usize - 1;
    let (mo, mi, n) = (last(g.m_outer as u64), last(g.m_inner as u64), last(g.n_size as u64));
    let (ko, km, ki) = (last(g.k_outer as u64), last(g.k_mid as u64), last(g.k_inner as u64));
    let act_hi = g.act_base as usize
        + mo * g.act_m_outer_stride as usize
        + mi * g.act_m_inner_stride as usize
        + ko * g.act_k_outer_stride as usize
        + km * g.act_k_mid_stride as usize
        + ki;
    let wgt_hi = g.wgt_base as usize + n * g.wgt_n_stride as usize + g.k_blocks() as usize - 1;
    let acc_hi = g.acc_base as usize + mo * g.acc_m_outer_stride as usize + mi * g.acc_m_inner_stride as usize + n;
    GemmFootprint {
        act: (g.act_base as usize, act_hi + 1),
        wgt: (g.wgt_base as usize, wgt_hi + 1),
        acc: (g.acc_base as usize, acc_hi + 1),
    }
}

/// The reference GEMM: the ISA's definition as a loop nest. Returns the number of saturated additions.
pub fn reference_gemm(format: &BfpFormat, g: &Gemm, act: &BlockBuffer, wgt: &BlockBuffer, acc: &mut [f32]) -> u64 {
    let two_fraction = 2 * format.fraction_bits();
    let bias = format.exponent_bias();
    let mut saturations = 0;
    for mo in 0..g.m_outer as usize {
        for mi in 0..g.m_inner as usize {
            for n in 0..g.n_size as usize {
                let a_idx =
                    g.acc_base as usize + mo * g.acc_m_outer_stride as usize + mi * g.acc_m_inner_stride as usize + n;
                let mut sum = if g.reset { 0.0 } else { acc[a_idx] };
                let mut k = 0;
                for ko in 0..g.k_outer as usize {
                    for km in 0..g.k_mid as usize {
                        for ki in 0..g.k_inner as usize {
                            let ae = g.act_base as usize
                                + mo * g.act_m_outer_stride as usize
                                + mi * g.act_m_inner_stride as usize
                                + ko * g.act_k_outer_stride as usize
                                + km * g.act_k_mid_stride as usize
                                + ki;
                            let we = g.wgt_base as usize + n * g.wgt_n_stride as usize + k;
                            k += 1;
                            let dot: i32 =
                                act.block(ae).iter().zip(wgt.block(we)).map(|(&a, &w)| a as i32 * w as i32).sum();
                            let exponent =
                                act.exponents[ae] as i32 + wgt.exponents[we] as i32 - 2 * bias - two_fraction;
                            let s = accumulate(sum, Term { mantissa: dot, exponent });
                            saturations += s.saturated as u64;
                            sum = s.value;
                        }
                    }
                }
                acc[a_idx] = sum;
            }
        }
    }
    saturations
}

fn check_range(len: usize, base: usize, count: usize, what: &str) -> Fallible<()> {
    if base + count > len {
        return engine_fault(
            ErrorCode::BufferOutOfRange,
            format!("{what}: entries {base}..{} exceed the buffer's {len} entries", base + count),
        );
    }
    Ok(())
}

/// Rejects a GEMM in which two `(m, n)` pairs share an accumulator (their order would be undefined).
fn check_no_alias(g: &Gemm, acc_len: usize) -> Fallible<()> {
    let rows_disjoint = |count: u16, stride: u16, width: usize| count <= 1 || stride as usize >= width;
    let inner_width = (g.m_inner as usize - 1) * g.acc_m_inner_stride as usize + g.n_size as usize;
    if rows_disjoint(g.m_inner, g.acc_m_inner_stride, g.n_size as usize)
        && rows_disjoint(g.m_outer, g.acc_m_outer_stride, inner_width)
    {
        return Ok(());
    }
    // Interleaved layouts can still be injective: check exactly.
    let mut seen = vec![false; acc_len];
    for mo in 0..g.m_outer as usize {
        for mi in 0..g.m_inner as usize {
            for n in 0..g.n_size as usize {
                let i =
                    g.acc_base as usize + mo * g.acc_m_outer_stride as usize + mi * g.acc_m_inner_stride as usize + n;
                if std::mem::replace(&mut seen[i], true) {
                    return Err((Fault::Undefined, format!("GEMM writes accumulator {i} twice (aliasing rows)")));
                }
            }
        }
    }
    Ok(())
}

/// Rejects a POST whose result would depend on the order in which it processes its elements: one that
/// writes an output entry twice (overlapping OUT rows), or with `to_acc` writes an accumulator that it reads
/// for another element (overlapping tile rows, or a bias inside the tile). Hardware may process a tile in any
/// order (the RTL goes block column by block column, to read each bias once).
fn check_post_no_alias(p: &Post, bs: usize) -> Fallible<()> {
    let (rows, nb) = (p.m_size as usize, p.n_blocks as usize);
    let cols = nb * bs;
    let undefined = |what: String| Err((Fault::Undefined, what));
    if !p.to_acc && rows > 1 && (p.out_m_stride as usize) < nb {
        return undefined(format!(
            "POST writes output entries twice: rows of {nb} blocks {} entries apart",
            p.out_m_stride
        ));
    }
    if p.to_acc && rows > 1 && (p.acc_m_stride as usize) < cols {
        return undefined(format!(
            "POST writes accumulators it reads for the next row: rows of {cols} values {} apart",
            p.acc_m_stride
        ));
    }
    if p.to_acc && p.bias {
        let (base, stride) = (p.acc_base as usize, p.acc_m_stride as usize);
        let in_tile = |i: usize| {
            i >= base && {
                let d = i - base;
                match stride {
                    0 => d < cols,
                    _ => d / stride < rows && d % stride < cols,
                }
            }
        };
        if let Some(i) = (p.bias_base as usize..p.bias_base as usize + cols).find(|&i| in_tile(i)) {
            return undefined(format!("POST writes accumulator {i}, which holds a bias value it reads"));
        }
    }
    Ok(())
}

fn dma_read(mem: &[u8], addr: u64, len: usize) -> Fallible<&[u8]> {
    let start = usize::try_from(addr).unwrap_or(usize::MAX);
    match start.checked_add(len).and_then(|end| mem.get(start..end)) {
        Some(s) => Ok(s),
        None => engine_fault(
            ErrorCode::DmaOutOfBounds,
            format!("DMA read of {len} bytes at {addr:#x} is outside the {}-byte window", mem.len()),
        ),
    }
}

fn dma_write(mem: &mut [u8], addr: u64, data: &[u8]) -> Fallible<()> {
    let window = mem.len();
    let start = usize::try_from(addr).unwrap_or(usize::MAX);
    match start.checked_add(data.len()).and_then(|end| mem.get_mut(start..end)) {
        Some(s) => {
            s.copy_from_slice(data);
            Ok(())
        }
        None => engine_fault(
            ErrorCode::DmaOutOfBounds,
            format!("DMA write of {} bytes at {addr:#x} is outside the {window}-byte window", data.len()),
        ),
    }
}

/// One buffer range an instruction reads or writes.
#[derive(Clone, Copy, Debug)]
struct Access {
    buffer: Buffer,
    lo: usize,
    hi: usize,
    write: bool,
}

/// Finds conflicting buffer accesses between stages that the program's dependency tokens do not order.
///
/// It tracks happens-before with vector clocks: `clock[s]` counts, for each stage, how many of that stage's
/// instructions are ordered before the current one (by program order within a stage, and through the tokens
/// popped). Two accesses conflict when their buffer ranges overlap and one writes; a conflict between stages is
/// a race unless the earlier access happens-before the later one. The verdict does not depend on timing, so a
/// program that passes is correct for any DMA latency. Ranges are the hulls of each instruction's accesses, so
/// the check is conservative for interleaved strided accesses that are not ordered.
#[derive(Default)]
struct RaceChecker {
    /// The vector clock of each stage's latest instruction.
    stage_clock: [[u64; 3]; 3],
    /// Vector clocks carried by the tokens in each queue, oldest first.
    tokens: [VecDeque<[u64; 3]>; 4],
    /// Accesses that some stage is not yet ordered after: (access, stage, sequence number in stage, pc).
    live: Vec<(Access, Stage, u64, usize)>,
}

impl RaceChecker {
    fn check(&mut self, pc: usize, inst: &Instruction, stage: Stage, accesses: &[Access]) -> Fallible<()> {
        let mut clock = self.stage_clock[stage as usize];
        clock[stage as usize] += 1;
        let d = inst.deps;
        for (flag, prev) in [(d.pop_prev, true), (d.pop_next, false)] {
            if let Some(q) = token_queue(stage, prev, true).filter(|_| flag) {
                // The cycle model has already rejected pops without a token.
                if let Some(t) = self.tokens[q].pop_front() {
                    for s in 0..3 {
                        clock[s] = clock[s].max(t[s]);
                    }
                }
            }
        }
        for a in accesses {
            for (b, b_stage, b_seq, b_pc) in &self.live {
                let overlap = a.buffer == b.buffer && a.lo < b.hi && b.lo < a.hi && (a.write || b.write);
                if overlap && *b_stage != stage && clock[*b_stage as usize] < *b_seq {
                    return Err((
                        Fault::Undefined,
                        format!(
                            "{:?} buffer entries {}..{} are accessed by instruction {b_pc} ({b_stage:?} stage) and by \
                             this one ({stage:?} stage) without a dependency token ordering them",
                            a.buffer,
                            a.lo.max(b.lo),
                            a.hi.min(b.hi),
                        ),
                    ));
                }
            }
        }
        for (flag, prev) in [(d.push_prev, true), (d.push_next, false)] {
            if let Some(q) = token_queue(stage, prev, false).filter(|_| flag) {
                self.tokens[q].push_back(clock);
            }
        }
        self.stage_clock[stage as usize] = clock;
        self.live.extend(accesses.iter().map(|&a| (a, stage, clock[stage as usize], pc)));
        // An access every stage is already ordered after can never race again.
        let ordered = self.stage_clock;
        self.live.retain(|(_, s, seq, _)| ordered.iter().any(|c| c[*s as usize] < *seq));
        Ok(())
    }
}
