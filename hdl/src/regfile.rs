//! The BAR0 register file (`arch::regs`, docs/architecture.md "Register map") and its counters, and
//! [`ControlRegs`], the register file wired to the [`crate::control::Control`]: the engine's host-facing
//! front end.
//!
//! # Access
//! 32-bit registers on [`BarPort`] `bar`: a write is `bar.wr_en` with `bar.wr_addr` (byte offset, `Bits<12>`)
//! and `bar.wr_data` in one cycle; a read is `bar.rd_en` with `bar.rd_addr`, its value on `bar.rd_data` in the
//! next cycle.
//! Unlisted offsets read as zero and ignore writes. Offsets, the configuration words
//! ([`arch::regs::encode_config`]), bits and error codes all come from `arch::regs`.
//!
//! # Behaviour
//! * `DOORBELL` written while `STATUS.BUSY` (or while stopped on an error) is ignored; otherwise it stores
//!   the tail and rings the control **in the cycle of the write**, so cycle 0 of the program (the control's
//!   first busy cycle) is the cycle after the write.
//! * `CTRL.RESET` (self-clearing) resets the control (aborting the program, clearing the error, the tokens and
//!   `CQ_HEAD`; [`RegFile::engine_reset`] goes to the units too) and clears the counters. The ring, window and
//!   interrupt registers keep their values; only the `reset` input clears everything.
//! * `IRQ_STATUS.DONE` is set when FINISH completes, `IRQ_STATUS.ERROR` when the control stops on an error;
//!   writing ones clears them; `irq` is `IRQ_STATUS & IRQ_ENABLE` non-zero.
//! * 64-bit counters: reading `_LO` returns the low half and latches the high half, which a read of `_HI`
//!   returns (one latch per counter). `CYCLES` counts busy cycles, `INSTRUCTIONS` retired instructions, the
//!   `*_BUSY` counters the cycles each stage executes, `MACS` adds `M·N·K_blocks·bs` of each GEMM started
//!   and `LOAD_BYTES`/`STORE_BYTES` `y_size·x_size·entry_bytes` of each LOAD/STORE started (both computed
//!   from the instruction's fields by pipelines of 16×16 multipliers, three and two cycles after the start,
//!   always before the program's end). `SATURATIONS` adds `sat_count` every cycle and sticks at
//!   `0xFFFF_FFFF`.

use arch::isa::{gemm, mem, Buffer, Opcode};
use arch::regs;
use arch::timing::entry_bytes;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::control::{Control, STAGES};
use crate::dma::DmaReadPort;
use crate::HdlError;

/// The 64-bit counters, in register-map order (`CYCLES_LO` + 8·i is counter i's low half).
pub const COUNTERS: [(u32, u32); 8] = [
    (regs::CYCLES_LO, regs::CYCLES_HI),
    (regs::INSTRUCTIONS_LO, regs::INSTRUCTIONS_HI),
    (regs::MACS_LO, regs::MACS_HI),
    (regs::LOAD_BYTES_LO, regs::LOAD_BYTES_HI),
    (regs::STORE_BYTES_LO, regs::STORE_BYTES_HI),
    (regs::LOAD_BUSY_LO, regs::LOAD_BUSY_HI),
    (regs::COMPUTE_BUSY_LO, regs::COMPUTE_BUSY_HI),
    (regs::STORE_BUSY_LO, regs::STORE_BUSY_HI),
];

/// The host's port into BAR0: 32-bit register writes and reads at byte offsets (see the module documentation
/// for the timing). The register file, the front end and the engine all expose it under the name `bar`.
#[derive(LogicInterface, Default)]
pub struct BarPort {
    /// Write strobe.
    pub wr_en: Signal<In, Bit>,
    /// Write byte offset.
    pub wr_addr: Signal<In, Bits<12>>,
    /// Write data.
    pub wr_data: Signal<In, Bits<32>>,
    /// Read strobe.
    pub rd_en: Signal<In, Bit>,
    /// Read byte offset.
    pub rd_addr: Signal<In, Bits<12>>,
    /// Read data, the cycle after `rd_en`.
    pub rd_data: Signal<Out, Bits<32>>,
}

/// The BAR0 register file (see the [module documentation](self)).
#[derive(LogicBlock)]
pub struct RegFile {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Power-on reset: clears every register.
    pub reset: Signal<In, Bit>,
    /// BAR0.
    pub bar: BarPort,
    /// Interrupt: `IRQ_STATUS & IRQ_ENABLE` is not zero.
    pub irq: Signal<Out, Bit>,
    /// To the control and the units: reset (the `reset` input or `CTRL.RESET`).
    pub engine_reset: Signal<Out, Bit>,
    /// To the control: the doorbell (a `DOORBELL` write while idle).
    pub doorbell: Signal<Out, Bit>,
    /// To the control: the tail written with the doorbell.
    pub tail: Signal<Out, Bits<32>>,
    /// To the control: `DMA_BASE`.
    pub dma_base: Signal<Out, Bits<64>>,
    /// To the control: `DMA_SIZE`.
    pub dma_size: Signal<Out, Bits<32>>,
    /// To the control: `CQ_BASE`.
    pub cq_base: Signal<Out, Bits<32>>,
    /// To the control: `CQ_SIZE`.
    pub cq_size: Signal<Out, Bits<32>>,
    /// From the control: busy.
    pub busy: Signal<In, Bit>,
    /// From the control: FINISH completed (pulse).
    pub finished: Signal<In, Bit>,
    /// From the control: stopped on an error (pulse).
    pub error: Signal<In, Bit>,
    /// From the control: in error.
    pub errored: Signal<In, Bit>,
    /// From the control: `ERROR_CODE`.
    pub error_code: Signal<In, Bits<4>>,
    /// From the control: `ERROR_PC`.
    pub error_pc: Signal<In, Bits<32>>,
    /// From the control: `CQ_HEAD`.
    pub cq_head: Signal<In, Bits<32>>,
    /// From the control: instructions retired this cycle.
    pub retired: Signal<In, Bits<3>>,
    /// From the control: each stage executes this cycle.
    pub stage_active: Vec<Signal<In, Bit>>,
    /// From the control: each stage's start pulse (to count MACs and bytes).
    pub stage_start: Vec<Signal<In, Bit>>,
    /// From the control: each stage's instruction (with its start).
    pub stage_inst: Vec<Signal<In, Bits<256>>>,
    /// From the compute units: saturated accumulator additions this cycle.
    pub sat_count: Signal<In, Bits<16>>,

    irq_enable: DFF<Bits<2>>,
    irq_status: DFF<Bits<2>>,
    dma_base_lo: DFF<Bits<32>>,
    dma_base_hi: DFF<Bits<32>>,
    dma_size_r: DFF<Bits<32>>,
    cq_base_r: DFF<Bits<32>>,
    cq_size_r: DFF<Bits<32>>,
    tail_r: DFF<Bits<32>>,
    counters: Vec<DFF<Bits<64>>>,
    latches: Vec<DFF<Bits<32>>>,
    saturations: DFF<Bits<32>>,
    rd_data: DFF<Bits<32>>,
    // MAC pipeline (GEMM starts on the compute stage).
    ma_valid: DFF<Bit>,
    ma_m: DFF<Bits<32>>,
    ma_kk: DFF<Bits<32>>,
    ma_n: DFF<Bits<16>>,
    ma_ki: DFF<Bits<16>>,
    mb_valid: DFF<Bit>,
    mb_mn: DFF<Bits<64>>,
    mb_k: DFF<Bits<32>>,
    // Byte pipelines (LOAD and STORE starts): y·x, then ·entry_bytes.
    ba_valid: Vec<DFF<Bit>>,
    ba_yx: Vec<DFF<Bits<32>>>,
    ba_eb: Vec<DFF<Bits<16>>>,

    k_id: Constant<Bits<32>>,
    k_version: Constant<Bits<32>>,
    k_config: Vec<Constant<Bits<32>>>,
    k_config_off: Vec<Constant<Bits<12>>>,
    k_ctrl: Constant<Bits<12>>,
    k_status: Constant<Bits<12>>,
    k_error_code: Constant<Bits<12>>,
    k_error_pc: Constant<Bits<12>>,
    k_irq_enable: Constant<Bits<12>>,
    k_irq_status: Constant<Bits<12>>,
    k_dma_base_lo: Constant<Bits<12>>,
    k_dma_base_hi: Constant<Bits<12>>,
    k_dma_size: Constant<Bits<12>>,
    k_cq_base: Constant<Bits<12>>,
    k_cq_size: Constant<Bits<12>>,
    k_cq_head: Constant<Bits<12>>,
    k_doorbell: Constant<Bits<12>>,
    k_id_off: Constant<Bits<12>>,
    k_version_off: Constant<Bits<12>>,
    k_counters: Constant<Bits<12>>,
    k_counters_end: Constant<Bits<12>>,
    k_saturations: Constant<Bits<12>>,
    k_ctrl_reset: Constant<Bits<32>>,
    k_busy_bit: Constant<Bits<32>>,
    k_idle_bit: Constant<Bits<32>>,
    k_error_bit: Constant<Bits<32>>,
    k_irq_done: Constant<Bits<2>>,
    k_irq_error: Constant<Bits<2>>,
    k_one8: Constant<Bits<8>>,
    k_op_gemm: Constant<Bits<4>>,
    k_op_load: Constant<Bits<4>>,
    k_op_store: Constant<Bits<4>>,
    k_opcode_lsb: Constant<Bits<16>>,
    k_m_outer: Constant<Bits<16>>,
    k_m_inner: Constant<Bits<16>>,
    k_n_size: Constant<Bits<16>>,
    k_k_outer: Constant<Bits<16>>,
    k_k_mid: Constant<Bits<16>>,
    k_k_inner: Constant<Bits<16>>,
    k_log2_bs: Constant<Bits<8>>,
    k_buffer_lsb: Constant<Bits<16>>,
    k_y_size: Constant<Bits<16>>,
    k_x_size: Constant<Bits<16>>,
    k_buf_acc: Constant<Bits<2>>,
    k_eb_acc: Constant<Bits<16>>,
    k_eb_bfp: Constant<Bits<16>>,
    k_sat_max: Constant<Bits<64>>,

    soft_reset: Signal<Local, Bit>,
    wr_sel: Signal<Local, Bits<12>>,
    cnt_sel: Signal<Local, Bits<8>>,
    cnt_oh: Signal<Local, Bits<8>>,
    in_counters: Signal<Local, Bit>,
    rd_value: Signal<Local, Bits<32>>,
    status: Signal<Local, Bits<32>>,
    sat_sum: Signal<Local, Bits<64>>,
    mc_mn0: Signal<Local, Bits<16>>,
    mc_mn1: Signal<Local, Bits<16>>,
    mc_mn2: Signal<Local, Bits<16>>,
    mc_k0: Signal<Local, Bits<16>>,
    mc_k1: Signal<Local, Bits<16>>,
    mc_prod: Signal<Local, Bits<64>>,
    bb_load: Signal<Local, Bits<64>>,
    bb_store: Signal<Local, Bits<64>>,
    inc: Vec<Signal<Local, Bits<64>>>,
}

fn lsb(f: arch::isa::Field) -> Constant<Bits<16>> {
    Constant::new((f.lsb as u64).into())
}

fn off(offset: u32) -> Constant<Bits<12>> {
    Constant::new((offset as u64).into())
}

fn word(v: u64) -> Constant<Bits<32>> {
    Constant::new(v.into())
}

impl RegFile {
    /// The register file of an engine built for `cfg`.
    pub fn new(cfg: &EngineConfig) -> Result<Self, HdlError> {
        cfg.validate().map_err(|e| HdlError::Config(e.to_string()))?;
        let bs = cfg.format.block_size();
        if !bs.is_power_of_two() {
            return Err(HdlError::Unsupported(format!("block size {bs}: MACS multiplies by shifting")));
        }
        for (i, (lo, hi)) in COUNTERS.iter().enumerate() {
            assert_eq!((*lo, *hi), (regs::CYCLES_LO + 8 * i as u32, regs::CYCLES_LO + 8 * i as u32 + 4));
        }
        // The fields the multipliers take are at most 16 bits wide.
        for f in [gemm::M_OUTER, gemm::M_INNER, gemm::N_SIZE, gemm::K_INNER, mem::Y_SIZE, mem::X_SIZE] {
            assert_eq!(f.width, 16, "{}", f.name);
        }
        for f in [gemm::K_OUTER, gemm::K_MID] {
            assert_eq!(f.width, 8, "{}", f.name);
        }
        let config = regs::encode_config(cfg);
        use crate::array::filled as v;
        Ok(Self {
            clock: Default::default(),
            reset: Default::default(),
            bar: Default::default(),
            irq: Default::default(),
            engine_reset: Default::default(),
            doorbell: Default::default(),
            tail: Default::default(),
            dma_base: Default::default(),
            dma_size: Default::default(),
            cq_base: Default::default(),
            cq_size: Default::default(),
            busy: Default::default(),
            finished: Default::default(),
            error: Default::default(),
            errored: Default::default(),
            error_code: Default::default(),
            error_pc: Default::default(),
            cq_head: Default::default(),
            retired: Default::default(),
            stage_active: v(STAGES),
            stage_start: v(STAGES),
            stage_inst: v(STAGES),
            sat_count: Default::default(),
            irq_enable: Default::default(),
            irq_status: Default::default(),
            dma_base_lo: Default::default(),
            dma_base_hi: Default::default(),
            dma_size_r: Default::default(),
            cq_base_r: Default::default(),
            cq_size_r: Default::default(),
            tail_r: Default::default(),
            counters: v(COUNTERS.len()),
            latches: v(COUNTERS.len()),
            saturations: Default::default(),
            rd_data: Default::default(),
            ma_valid: Default::default(),
            ma_m: Default::default(),
            ma_kk: Default::default(),
            ma_n: Default::default(),
            ma_ki: Default::default(),
            mb_valid: Default::default(),
            mb_mn: Default::default(),
            mb_k: Default::default(),
            ba_valid: v(STAGES),
            ba_yx: v(STAGES),
            ba_eb: v(STAGES),
            k_id: word(regs::ID_MAGIC as u64),
            k_version: word(regs::VERSION as u64),
            k_config: config.iter().map(|(_, val)| word(*val as u64)).collect(),
            k_config_off: config.iter().map(|(o, _)| off(*o)).collect(),
            k_ctrl: off(regs::CTRL),
            k_status: off(regs::STATUS),
            k_error_code: off(regs::ERROR_CODE),
            k_error_pc: off(regs::ERROR_PC),
            k_irq_enable: off(regs::IRQ_ENABLE),
            k_irq_status: off(regs::IRQ_STATUS),
            k_dma_base_lo: off(regs::DMA_BASE_LO),
            k_dma_base_hi: off(regs::DMA_BASE_HI),
            k_dma_size: off(regs::DMA_SIZE),
            k_cq_base: off(regs::CQ_BASE),
            k_cq_size: off(regs::CQ_SIZE),
            k_cq_head: off(regs::CQ_HEAD),
            k_doorbell: off(regs::DOORBELL),
            k_id_off: off(regs::ID),
            k_version_off: off(regs::VERSION_REG),
            k_counters: off(regs::CYCLES_LO),
            k_counters_end: off(regs::CYCLES_LO + 8 * COUNTERS.len() as u32),
            k_saturations: off(regs::SATURATIONS),
            k_ctrl_reset: word(regs::CTRL_RESET as u64),
            k_busy_bit: word(regs::STATUS_BUSY as u64),
            k_idle_bit: word(regs::STATUS_IDLE as u64),
            k_error_bit: word(regs::STATUS_ERROR as u64),
            k_irq_done: Constant::new((regs::IRQ_DONE as u64).into()),
            k_irq_error: Constant::new((regs::IRQ_ERROR as u64).into()),
            k_one8: Constant::new(1u64.into()),
            k_op_gemm: Constant::new((Opcode::Gemm as u64).into()),
            k_op_load: Constant::new((Opcode::Load as u64).into()),
            k_op_store: Constant::new((Opcode::Store as u64).into()),
            k_opcode_lsb: lsb(arch::isa::header::OPCODE),
            k_m_outer: lsb(gemm::M_OUTER),
            k_m_inner: lsb(gemm::M_INNER),
            k_n_size: lsb(gemm::N_SIZE),
            k_k_outer: lsb(gemm::K_OUTER),
            k_k_mid: lsb(gemm::K_MID),
            k_k_inner: lsb(gemm::K_INNER),
            k_log2_bs: Constant::new((bs.trailing_zeros() as u64).into()),
            k_buffer_lsb: lsb(mem::BUFFER),
            k_y_size: lsb(mem::Y_SIZE),
            k_x_size: lsb(mem::X_SIZE),
            k_buf_acc: Constant::new((Buffer::Acc as u64).into()),
            k_eb_acc: Constant::new(entry_bytes(cfg, Buffer::Acc).into()),
            k_eb_bfp: Constant::new(entry_bytes(cfg, Buffer::Out).into()),
            k_sat_max: Constant::new((u32::MAX as u64).into()),
            soft_reset: Default::default(),
            wr_sel: Default::default(),
            cnt_sel: Default::default(),
            cnt_oh: Default::default(),
            in_counters: Default::default(),
            rd_value: Default::default(),
            status: Default::default(),
            sat_sum: Default::default(),
            mc_mn0: Default::default(),
            mc_mn1: Default::default(),
            mc_mn2: Default::default(),
            mc_k0: Default::default(),
            mc_k1: Default::default(),
            mc_prod: Default::default(),
            bb_load: Default::default(),
            bb_store: Default::default(),
            inc: v(COUNTERS.len()),
        })
    }
}

impl Logic for RegFile {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            irq_enable,
            irq_status,
            dma_base_lo,
            dma_base_hi,
            dma_size_r,
            cq_base_r,
            cq_size_r,
            tail_r,
            saturations,
            rd_data,
            ma_valid,
            ma_m,
            ma_kk,
            ma_n,
            ma_ki,
            mb_valid,
            mb_mn,
            mb_k
        );
        for i in 0..8 {
            self.counters[i].clock.next = self.clock.val();
            self.latches[i].clock.next = self.clock.val();
            self.counters[i].d.next = self.counters[i].q.val();
            self.latches[i].d.next = self.latches[i].q.val();
            self.inc[i].next = 0.into();
        }
        for s in 0..3 {
            self.ba_valid[s].clock.next = self.clock.val();
            self.ba_yx[s].clock.next = self.clock.val();
            self.ba_eb[s].clock.next = self.clock.val();
            self.ba_valid[s].d.next = false;
            self.ba_yx[s].d.next = self.ba_yx[s].q.val();
            self.ba_eb[s].d.next = self.ba_eb[s].q.val();
        }

        // ---- Writes.
        self.soft_reset.next = false;
        self.doorbell.next = false;
        self.wr_sel.next = self.bar.wr_addr.val();
        if self.bar.wr_en.val() {
            if self.wr_sel.val() == self.k_ctrl.val() {
                self.soft_reset.next = (self.bar.wr_data.val() & self.k_ctrl_reset.val()).any();
            }
            if self.wr_sel.val() == self.k_irq_enable.val() {
                self.irq_enable.d.next = self.bar.wr_data.val().get_bits::<2>(0);
            }
            if self.wr_sel.val() == self.k_dma_base_lo.val() {
                self.dma_base_lo.d.next = self.bar.wr_data.val();
            }
            if self.wr_sel.val() == self.k_dma_base_hi.val() {
                self.dma_base_hi.d.next = self.bar.wr_data.val();
            }
            if self.wr_sel.val() == self.k_dma_size.val() {
                self.dma_size_r.d.next = self.bar.wr_data.val();
            }
            if self.wr_sel.val() == self.k_cq_base.val() {
                self.cq_base_r.d.next = self.bar.wr_data.val();
            }
            if self.wr_sel.val() == self.k_cq_size.val() {
                self.cq_size_r.d.next = self.bar.wr_data.val();
            }
            if (self.wr_sel.val() == self.k_doorbell.val()) & !self.busy.val() & !self.errored.val() {
                self.tail_r.d.next = self.bar.wr_data.val();
                self.doorbell.next = true;
            }
        }
        self.engine_reset.next = self.reset.val() | self.soft_reset.val();
        self.tail.next = self.bar.wr_data.val();
        self.dma_base.next =
            (bit_cast::<64, 32>(self.dma_base_hi.q.val()) << 32) | bit_cast::<64, 32>(self.dma_base_lo.q.val());
        self.dma_size.next = self.dma_size_r.q.val();
        self.cq_base.next = self.cq_base_r.q.val();
        self.cq_size.next = self.cq_size_r.q.val();

        // ---- Interrupts: set by the control's events, cleared by writing ones.
        if self.bar.wr_en.val() & (self.wr_sel.val() == self.k_irq_status.val()) {
            self.irq_status.d.next = self.irq_status.q.val() & !self.bar.wr_data.val().get_bits::<2>(0);
        }
        if self.finished.val() {
            self.irq_status.d.next = self.irq_status.d.val() | self.k_irq_done.val();
        }
        if self.error.val() {
            self.irq_status.d.next = self.irq_status.d.val() | self.k_irq_error.val();
        }
        self.irq.next = (self.irq_status.q.val() & self.irq_enable.q.val()).any();

        // ---- Counters.
        self.inc[0].next = bit_cast::<64, 1>(self.busy.val().into());
        self.inc[1].next = bit_cast::<64, 3>(self.retired.val());
        // (rust-hdl evaluates `bit_cast` arguments outside loops: no loop variables in them.)
        self.inc[5].next = bit_cast::<64, 1>(self.stage_active[0].val().into());
        self.inc[6].next = bit_cast::<64, 1>(self.stage_active[1].val().into());
        self.inc[7].next = bit_cast::<64, 1>(self.stage_active[2].val().into());
        // MACs of a GEMM: M = m_outer·m_inner, K = k_outer·k_mid·k_inner, then M·N, then (M·N)·K·bs.
        self.ma_valid.d.next = self.stage_start[1].val()
            & (self.stage_inst[1].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_gemm.val());
        self.ma_m.d.next = self.stage_inst[1].val().get_bits::<16>(self.k_m_outer.val().index())
            * self.stage_inst[1].val().get_bits::<16>(self.k_m_inner.val().index());
        self.ma_kk.d.next = bit_cast::<16, 8>(self.stage_inst[1].val().get_bits::<8>(self.k_k_outer.val().index()))
            * bit_cast::<16, 8>(self.stage_inst[1].val().get_bits::<8>(self.k_k_mid.val().index()));
        self.ma_n.d.next = self.stage_inst[1].val().get_bits::<16>(self.k_n_size.val().index());
        self.ma_ki.d.next = self.stage_inst[1].val().get_bits::<16>(self.k_k_inner.val().index());
        self.mb_valid.d.next = self.ma_valid.q.val();
        self.mb_k.d.next = self.ma_kk.q.val().get_bits::<16>(0) * self.ma_ki.q.val();
        self.mb_mn.d.next = bit_cast::<64, 32>(self.ma_m.q.val().get_bits::<16>(0) * self.ma_n.q.val())
            + (bit_cast::<64, 32>(self.ma_m.q.val().get_bits::<16>(16) * self.ma_n.q.val()) << 16);
        self.mc_mn0.next = self.mb_mn.q.val().get_bits::<16>(0);
        self.mc_mn1.next = self.mb_mn.q.val().get_bits::<16>(16);
        self.mc_mn2.next = self.mb_mn.q.val().get_bits::<16>(32);
        self.mc_k0.next = self.mb_k.q.val().get_bits::<16>(0);
        self.mc_k1.next = self.mb_k.q.val().get_bits::<16>(16);
        self.mc_prod.next = bit_cast::<64, 32>(self.mc_mn0.val() * self.mc_k0.val())
            + (bit_cast::<64, 32>(self.mc_mn0.val() * self.mc_k1.val()) << 16)
            + (bit_cast::<64, 32>(self.mc_mn1.val() * self.mc_k0.val()) << 16)
            + (bit_cast::<64, 32>(self.mc_mn1.val() * self.mc_k1.val()) << 32)
            + (bit_cast::<64, 32>(self.mc_mn2.val() * self.mc_k0.val()) << 32)
            + (bit_cast::<64, 32>(self.mc_mn2.val() * self.mc_k1.val()) << 48);
        if self.mb_valid.q.val() {
            self.inc[2].next = self.mc_prod.val() << self.k_log2_bs.val();
        }
        // Bytes of a LOAD (stage 0) or STORE (stage 2): y_size·x_size, then ·entry_bytes.
        for s in 0..3 {
            self.ba_yx[s].d.next = self.stage_inst[s].val().get_bits::<16>(self.k_y_size.val().index())
                * self.stage_inst[s].val().get_bits::<16>(self.k_x_size.val().index());
            self.ba_eb[s].d.next = self.k_eb_bfp.val();
            if self.stage_inst[s].val().get_bits::<2>(self.k_buffer_lsb.val().index()) == self.k_buf_acc.val() {
                self.ba_eb[s].d.next = self.k_eb_acc.val();
            }
        }
        self.bb_load.next = bit_cast::<64, 32>(self.ba_yx[0].q.val().get_bits::<16>(0) * self.ba_eb[0].q.val())
            + (bit_cast::<64, 32>(self.ba_yx[0].q.val().get_bits::<16>(16) * self.ba_eb[0].q.val()) << 16);
        self.bb_store.next = bit_cast::<64, 32>(self.ba_yx[2].q.val().get_bits::<16>(0) * self.ba_eb[2].q.val())
            + (bit_cast::<64, 32>(self.ba_yx[2].q.val().get_bits::<16>(16) * self.ba_eb[2].q.val()) << 16);
        self.ba_valid[0].d.next = self.stage_start[0].val()
            & (self.stage_inst[0].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_load.val());
        self.ba_valid[2].d.next = self.stage_start[2].val()
            & (self.stage_inst[2].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_store.val());
        if self.ba_valid[0].q.val() {
            self.inc[3].next = self.bb_load.val();
        }
        if self.ba_valid[2].q.val() {
            self.inc[4].next = self.bb_store.val();
        }
        for i in 0..8 {
            self.counters[i].d.next = self.counters[i].q.val() + self.inc[i].val();
        }
        self.sat_sum.next = bit_cast::<64, 32>(self.saturations.q.val()) + bit_cast::<64, 16>(self.sat_count.val());
        self.saturations.d.next = bit_cast::<32, 64>(self.sat_sum.val());
        if self.sat_sum.val() > self.k_sat_max.val() {
            self.saturations.d.next = bit_cast::<32, 64>(self.k_sat_max.val());
        }

        // ---- Reads (registered).
        self.status.next = 0.into();
        if self.busy.val() {
            self.status.next = self.status.val() | self.k_busy_bit.val();
        }
        if !self.busy.val() & !self.errored.val() {
            self.status.next = self.status.val() | self.k_idle_bit.val();
        }
        if self.errored.val() {
            self.status.next = self.status.val() | self.k_error_bit.val();
        }
        self.rd_value.next = 0.into();
        if self.bar.rd_addr.val() == self.k_id_off.val() {
            self.rd_value.next = self.k_id.val();
        }
        if self.bar.rd_addr.val() == self.k_version_off.val() {
            self.rd_value.next = self.k_version.val();
        }
        for i in 0..5 {
            if self.bar.rd_addr.val() == self.k_config_off[i].val() {
                self.rd_value.next = self.k_config[i].val();
            }
        }
        if self.bar.rd_addr.val() == self.k_status.val() {
            self.rd_value.next = self.status.val();
        }
        if self.bar.rd_addr.val() == self.k_error_code.val() {
            self.rd_value.next = bit_cast::<32, 4>(self.error_code.val());
        }
        if self.bar.rd_addr.val() == self.k_error_pc.val() {
            self.rd_value.next = self.error_pc.val();
        }
        if self.bar.rd_addr.val() == self.k_irq_enable.val() {
            self.rd_value.next = bit_cast::<32, 2>(self.irq_enable.q.val());
        }
        if self.bar.rd_addr.val() == self.k_irq_status.val() {
            self.rd_value.next = bit_cast::<32, 2>(self.irq_status.q.val());
        }
        if self.bar.rd_addr.val() == self.k_dma_base_lo.val() {
            self.rd_value.next = self.dma_base_lo.q.val();
        }
        if self.bar.rd_addr.val() == self.k_dma_base_hi.val() {
            self.rd_value.next = self.dma_base_hi.q.val();
        }
        if self.bar.rd_addr.val() == self.k_dma_size.val() {
            self.rd_value.next = self.dma_size_r.q.val();
        }
        if self.bar.rd_addr.val() == self.k_cq_base.val() {
            self.rd_value.next = self.cq_base_r.q.val();
        }
        if self.bar.rd_addr.val() == self.k_cq_size.val() {
            self.rd_value.next = self.cq_size_r.q.val();
        }
        if self.bar.rd_addr.val() == self.k_cq_head.val() {
            self.rd_value.next = self.cq_head.val();
        }
        if self.bar.rd_addr.val() == self.k_doorbell.val() {
            self.rd_value.next = self.tail_r.q.val();
        }
        if self.bar.rd_addr.val() == self.k_saturations.val() {
            self.rd_value.next = self.saturations.q.val();
        }
        // Counters: LO returns the low half and latches the high half; HI returns the latch.
        self.in_counters.next =
            (self.bar.rd_addr.val() >= self.k_counters.val()) & (self.bar.rd_addr.val() < self.k_counters_end.val());
        self.cnt_sel.next = bit_cast::<8, 12>((self.bar.rd_addr.val() - self.k_counters.val()) >> 3);
        self.cnt_oh.next = self.k_one8.val() << self.cnt_sel.val();
        for i in 0..8 {
            if self.in_counters.val() & self.cnt_oh.val().get_bit(i) {
                if self.bar.rd_addr.val().get_bit(2) {
                    self.rd_value.next = self.latches[i].q.val();
                } else {
                    self.rd_value.next = self.counters[i].q.val().get_bits::<32>(0);
                    if self.bar.rd_en.val() {
                        self.latches[i].d.next = self.counters[i].q.val().get_bits::<32>(32);
                    }
                }
            }
        }
        if self.bar.rd_en.val() {
            self.rd_data.d.next = self.rd_value.val();
        }
        self.bar.rd_data.next = self.rd_data.q.val();

        // ---- Reset: CTRL.RESET clears the counters; the reset input everything.
        if self.soft_reset.val() | self.reset.val() {
            self.saturations.d.next = 0.into();
            self.ma_valid.d.next = false;
            self.mb_valid.d.next = false;
            for i in 0..8 {
                self.counters[i].d.next = 0.into();
                self.latches[i].d.next = 0.into();
            }
            for s in 0..3 {
                self.ba_valid[s].d.next = false;
            }
        }
        if self.reset.val() {
            self.irq_enable.d.next = 0.into();
            self.irq_status.d.next = 0.into();
            self.dma_base_lo.d.next = 0.into();
            self.dma_base_hi.d.next = 0.into();
            self.dma_size_r.d.next = 0.into();
            self.cq_base_r.d.next = 0.into();
            self.cq_size_r.d.next = 0.into();
            self.tail_r.d.next = 0.into();
            self.rd_data.d.next = 0.into();
        }
    }
}

/// The engine's front end: the [`RegFile`] wired to a [`Control`] (`W`, `F` as for the control). The host
/// sees BAR0 and the interrupt; the memory system sees the fetch channel; the stage units see the stage
/// ports (and drive `sat_count`).
#[derive(LogicBlock)]
pub struct ControlRegs<const W: usize, const F: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Power-on reset.
    pub reset: Signal<In, Bit>,
    /// BAR0.
    pub bar: BarPort,
    /// Interrupt.
    pub irq: Signal<Out, Bit>,
    /// Reset for the stage units (`reset` or `CTRL.RESET`).
    pub engine_reset: Signal<Out, Bit>,
    /// `DMA_BASE` (for the LOAD and STORE units, which add it to their DMA-window offsets).
    pub dma_base: Signal<Out, Bits<64>>,
    /// `DMA_SIZE` (for the LOAD and STORE units' window checks).
    pub dma_size: Signal<Out, Bits<32>>,
    /// The instruction-fetch read channel.
    pub fetch: DmaReadPort<W>,
    /// Per stage: start pulse.
    pub stage_start: Vec<Signal<Out, Bit>>,
    /// Per stage: the instruction started.
    pub stage_inst: Vec<Signal<Out, Bits<256>>>,
    /// Per stage: done (cycle `E − 1`).
    pub stage_done: Vec<Signal<In, Bit>>,
    /// Per stage: error pulse.
    pub stage_error: Vec<Signal<In, Bit>>,
    /// Per stage: error code.
    pub stage_error_code: Vec<Signal<In, Bits<4>>>,
    /// Saturations this cycle (from the compute units).
    pub sat_count: Signal<In, Bits<16>>,
    /// The control's instruction-trace port (`arch::trace`).
    pub trace: Signal<Out, Bits<16>>,
    /// The register file.
    pub regs: RegFile,
    /// The control.
    pub control: Control<W, F>,
}

impl<const W: usize, const F: usize> ControlRegs<W, F> {
    /// The front end for `cfg`.
    pub fn new(cfg: &EngineConfig) -> Result<Self, HdlError> {
        use crate::array::filled as v;
        Ok(Self {
            clock: Default::default(),
            reset: Default::default(),
            bar: Default::default(),
            irq: Default::default(),
            engine_reset: Default::default(),
            dma_base: Default::default(),
            dma_size: Default::default(),
            fetch: Default::default(),
            stage_start: v(STAGES),
            stage_inst: v(STAGES),
            stage_done: v(STAGES),
            stage_error: v(STAGES),
            stage_error_code: v(STAGES),
            sat_count: Default::default(),
            trace: Default::default(),
            regs: RegFile::new(cfg)?,
            control: Control::new(cfg)?,
        })
    }
}

impl<const W: usize, const F: usize> Logic for ControlRegs<W, F> {
    #[hdl_gen]
    fn update(&mut self) {
        self.regs.clock.next = self.clock.val();
        self.control.clock.next = self.clock.val();
        self.regs.reset.next = self.reset.val();
        BarPort::link(&mut self.bar, &mut self.regs.bar);
        self.irq.next = self.regs.irq.val();
        self.engine_reset.next = self.regs.engine_reset.val();
        self.trace.next = self.control.trace.val();
        self.dma_base.next = self.regs.dma_base.val();
        self.dma_size.next = self.regs.dma_size.val();
        self.regs.sat_count.next = self.sat_count.val();
        // Register file → control.
        self.control.reset.next = self.regs.engine_reset.val();
        self.control.doorbell.next = self.regs.doorbell.val();
        self.control.tail.next = self.regs.tail.val();
        self.control.dma_base.next = self.regs.dma_base.val();
        self.control.dma_size.next = self.regs.dma_size.val();
        self.control.cq_base.next = self.regs.cq_base.val();
        self.control.cq_size.next = self.regs.cq_size.val();
        // Control → register file.
        self.regs.busy.next = self.control.busy.val();
        self.regs.finished.next = self.control.finished.val();
        self.regs.error.next = self.control.error.val();
        self.regs.errored.next = self.control.errored.val();
        self.regs.error_code.next = self.control.error_code.val();
        self.regs.error_pc.next = self.control.error_pc.val();
        self.regs.cq_head.next = self.control.cq_head.val();
        self.regs.retired.next = self.control.retired.val();
        // Fetch channel.
        self.fetch.rd_req_valid.next = self.control.fetch_req_valid.val();
        self.fetch.rd_req_addr.next = self.control.fetch_req_addr.val();
        self.fetch.rd_req_len.next = self.control.fetch_req_len.val();
        self.control.fetch_beat_valid.next = self.fetch.rd_beat_valid.val();
        self.control.fetch_beat_data.next = self.fetch.rd_beat_data.val();
        // Stages.
        for s in 0..3 {
            self.stage_start[s].next = self.control.stage_start[s].val();
            self.stage_inst[s].next = self.control.stage_inst[s].val();
            self.control.stage_done[s].next = self.stage_done[s].val();
            self.control.stage_error[s].next = self.stage_error[s].val();
            self.control.stage_error_code[s].next = self.stage_error_code[s].val();
            self.regs.stage_active[s].next = self.control.stage_active[s].val();
            self.regs.stage_start[s].next = self.control.stage_start[s].val();
            self.regs.stage_inst[s].next = self.control.stage_inst[s].val();
        }
    }
}
