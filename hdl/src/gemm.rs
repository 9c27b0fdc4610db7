//! The GEMM stage unit: the sequencer that walks a GEMM instruction's loop nests and streams it through the
//! systolic array, reading the ACT and WGT buffers and reading and writing the ACC buffer.
//!
//! [`GemmSequencer`] holds everything but the array (it is generic over the mantissa width only);
//! [`gemm_unit!`](crate::gemm_unit) stamps out, per array type, the stage unit that connects a sequencer to its
//! array and exposes the engine's stage and buffer ports ([`GemmUnit4x4`], [`GemmUnit8x8`], [`GemmUnit16x16`],
//! [`GemmUnit32x32`], one per preset).
//!
//! # Scope
//! One segment per column (`R ≤ bs`, so `S = R`), `C ≤ R` and `R ≥ 4`: the presets `tiny`, `16x16` and `32x32`.
//! [`GemmGeometry::for_config`] refuses anything else with [`HdlError::Unsupported`].
//!
//! # Stage handshake
//! `start` is high for one cycle `S` with the instruction on `inst`; the unit latches it. An empty GEMM (a zero
//! loop count) raises `done` in cycle `S` (cost 1). Otherwise the unit checks the buffer ranges of the
//! instruction in cycle `S + 1`, exactly as `arch::golden` does before any write (activation, weight and
//! accumulator footprints): out of range it pulses `error` with `ErrorCode::BufferOutOfRange` in `S + 1`,
//! writes nothing and goes idle. Else it raises `done` in cycle `E − 1`, `E = S + arch::timing::gemm_cycles`,
//! with every ACC write issued by then, whatever the data.
//!
//! # Schedule (cycle `S` is the start)
//! Passes go over column chunks of `C` outputs (`n0 = 0, C, …`) and, inside a chunk, over the reduction axis
//! in increasing `k`: block `kb` (walking `k_outer`/`k_mid`/`k_inner`), and inside a block its `SP = bs / R`
//! sub-passes of `R` elements each (`sp`). Pass `p` streams its `M` rows into the array from cycle
//! `t_p = S + 2 + p·P`, `P = arch::timing::pass_cycles(M) = max(M, P_min)` (idle cycles pad a short pass).
//!
//! * **Weights** (one WGT read per cycle, the array's load bus): pass `p`'s column `c` (block
//!   `wgt_base + (n0 + c)·wgt_n_stride + kb`, mantissas `sp·R … sp·R + R − 1`) is read in cycle `L_p + c` and
//!   loaded into the array's column in `L_p + c + 1`, with `L_0 = S` (the first read takes its address from
//!   `inst` directly) and `L_{p+1} = t_p + C − 1`, after column `c` captured pass `p`'s weights (`t_p + c`) and
//!   before it captures pass `p + 1`'s. Columns beyond `N` are loaded with zeros and not read. The cycle model
//!   charges an `R`-cycle preload; this one takes two cycles, and the `R − 2` cycles saved are what lets the
//!   last accumulator write (registered, below) land by `E − 1`.
//! * **Activations** (one ACT read per cycle): row `m = (mo, mi)` of pass `p` is read in `t_p + m − 1` at
//!   `act_base + mo·act_m_outer_stride + mi·act_m_inner_stride + ko·act_k_outer_stride + km·act_k_mid_stride +
//!   ki` and enters the array (`a_in[r]` = mantissa `sp·R + r`) in `t = t_p + m`, with its flags: `first`
//!   (row 0), `carry` (`sp > 0`: add the carried partial sums) and `last` (`sp = SP − 1`: the block is complete,
//!   add it to the accumulators).
//! * **Accumulators, row-wide, without forwarding** (the reason for `P_min`, see `arch::timing::min_pass_cycles`):
//!   the row's `C` accumulators at `acc_base + mo·acc_m_outer_stride + mi·acc_m_inner_stride + n0 + c` are read
//!   in one cycle through ACC read lanes `0 … C − 1` in `t + R` (not at all for a `reset` GEMM's first block,
//!   whose accumulators start at `+0`, nor for columns beyond `N`, which read `+0`), and lane `c` is delayed
//!   `c` cycles into `acc_in[c]` (the array reads it at `t + S + c + 1`). The array's results `acc_out[c]`
//!   (`t + R + c + 1 + acc_latency`) are delayed `C − c` cycles so that the whole row is written through ACC
//!   write lanes `0 … C − 1` in `t + R + C + acc_latency + 1`. The next pass reads the same row `P` cycles
//!   later, after the write since `P ≥ P_min`.
//! * **Carried partial sums** (`R < bs`): the array's `psum_out[c]` (`t + R + c + 1`) are deskewed the same way
//!   and written row-wide into the **carry store** in `t + R + C + 1`, at the row's accumulator addresses (a
//!   GEMM's accumulators never alias, so these key each `(m, n)` uniquely); the next sub-pass reads them
//!   row-wide in `t' = t + P` and skews lane `c` by `c` cycles into `psum_in[c]` (`t' + c + 1`). The store is a
//!   [`BankedRam`] with `C` lanes and the ACC buffer's depth.
//! * **Done**: the row walker (one cycle ahead of the rows) finishes the last pass in cycle `S + passes·P`;
//!   a counter adds `2R + C + acc_latency − 2` cycles, so `done` is in `E − 1`. The last ACC write is in
//!   `E − 1 − (R − 4)` at the latest (`M ≥ P_min`; earlier otherwise).
//!
//! `sat_count` is the number of saturated accumulator additions in the current cycle (the array's `acc_sat`,
//! summed over the columns; columns beyond `N` add zero to zero and never saturate).

use arch::isa::gemm as f;
use arch::regs::ErrorCode;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::array::{filled, ArrayGeometry};
use crate::buffer::{BankedRam, BufferLanes};
use crate::delay::DelayLine;
use crate::HdlError;

/// The shape of a GEMM unit, derived from a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmGeometry {
    /// The array's geometry.
    pub array: ArrayGeometry,
    /// ACC buffer lanes `A = max(C, B/4)` (the unit uses lanes `0 … C − 1`).
    pub acc_lanes: usize,
    /// Sub-passes per block, `SP = bs / R`.
    pub sub_passes: usize,
    /// The shortest pass, `arch::timing::min_pass_cycles`.
    pub min_pass: u64,
    /// Entries of the ACT, WGT and ACC buffers.
    pub entries: [usize; 3],
}

impl GemmGeometry {
    /// The GEMM unit of `cfg`, or why it is not built.
    pub fn for_config(cfg: &EngineConfig) -> Result<Self, HdlError> {
        let array = ArrayGeometry::for_config(cfg)?;
        let (r, c, bs) = (array.rows, array.cols, array.block_size);
        if r > bs {
            return Err(HdlError::Unsupported(format!(
                "{r} rows > block size {bs}: the GEMM unit handles one segment per column (R ≤ bs)"
            )));
        }
        if c > r || r < 4 {
            return Err(HdlError::Unsupported(format!(
                "a {r}x{c} array: the GEMM unit needs C ≤ R (one weight column loaded per cycle) and R ≥ 4 \
                 (the last accumulator write lands R − 4 cycles before the end)"
            )));
        }
        Ok(GemmGeometry {
            array,
            acc_lanes: BufferLanes::for_config(cfg).a,
            sub_passes: bs / r,
            min_pass: arch::timing::min_pass_cycles(cfg),
            entries: [cfg.act_entries, cfg.wgt_entries, cfg.acc_entries],
        })
    }
}

/// The GEMM sequencer: the stage unit without its array (see the module documentation). Its `a_*`, `w_*`,
/// `psum_in` and `acc_in` outputs drive the array's inputs of the same names; `arr_acc_out`, `arr_acc_sat` and
/// `arr_psum_out`, `arr_acc_valid` and `arr_psum_valid` take the array's outputs.
#[derive(LogicBlock)]
pub struct GemmSequencer<const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: the unit goes idle.
    pub reset: Signal<In, Bit>,
    /// Start the instruction on `inst` (one cycle).
    pub start: Signal<In, Bit>,
    /// The raw 256-bit instruction (bit `i` = bit `i % 64` of word `i / 64`).
    pub inst: Signal<In, Bits<256>>,
    /// The instruction ends next cycle (pulse in `E − 1`).
    pub done: Signal<Out, Bit>,
    /// The instruction failed (pulse); the unit is idle afterwards.
    pub error: Signal<Out, Bit>,
    /// `arch::regs::ErrorCode` of the failure.
    pub error_code: Signal<Out, Bits<4>>,
    /// Saturated accumulator additions this cycle.
    pub sat_count: Signal<Out, Bits<8>>,
    /// ACT read enable.
    pub act_rd_en: Signal<Out, Bit>,
    /// ACT read address.
    pub act_rd_addr: Signal<Out, Bits<16>>,
    /// ACT exponent code read (one cycle after the read).
    pub act_rd_exp: Signal<In, Bits<8>>,
    /// ACT mantissas read.
    pub act_rd_mant: Vec<Signal<In, Signed<M>>>,
    /// WGT read enable.
    pub wgt_rd_en: Signal<Out, Bit>,
    /// WGT read address.
    pub wgt_rd_addr: Signal<Out, Bits<16>>,
    /// WGT exponent code read.
    pub wgt_rd_exp: Signal<In, Bits<8>>,
    /// WGT mantissas read.
    pub wgt_rd_mant: Vec<Signal<In, Signed<M>>>,
    /// ACC read enables (`A` lanes).
    pub acc_rd_en: Vec<Signal<Out, Bit>>,
    /// ACC read addresses.
    pub acc_rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// ACC data read (one cycle after the read).
    pub acc_rd_data: Vec<Signal<In, Bits<32>>>,
    /// ACC write enables (`A` lanes).
    pub acc_wr_en: Vec<Signal<Out, Bit>>,
    /// ACC write addresses.
    pub acc_wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// ACC write data.
    pub acc_wr_data: Vec<Signal<Out, Bits<32>>>,
    /// To the array: activation mantissas of the row.
    pub a_in: Vec<Signal<Out, Signed<M>>>,
    /// To the array: the row's activation exponent code.
    pub a_exp: Signal<Out, Bits<8>>,
    /// To the array: the row is valid.
    pub a_valid: Signal<Out, Bit>,
    /// To the array: first row of a pass.
    pub a_first: Signal<Out, Bit>,
    /// To the array: add the carried partial sums.
    pub a_carry: Signal<Out, Bit>,
    /// To the array: the pass completes the block.
    pub a_last: Signal<Out, Bit>,
    /// To the array: the weight-load bus.
    pub w_in: Vec<Signal<Out, Signed<M>>>,
    /// To the array: the weight-load bus's exponent code.
    pub w_exp: Signal<Out, Bits<8>>,
    /// To the array: the column to load.
    pub w_load: Vec<Signal<Out, Bit>>,
    /// To the array: carried partial sums (skewed).
    pub psum_in: Vec<Signal<Out, Signed<32>>>,
    /// To the array: accumulator values (skewed).
    pub acc_in: Vec<Signal<Out, Bits<32>>>,
    /// From the array: `acc_out`.
    pub arr_acc_out: Vec<Signal<In, Bits<32>>>,
    /// From the array: `acc_sat`.
    pub arr_acc_sat: Vec<Signal<In, Bit>>,
    /// From the array: `psum_out`.
    pub arr_psum_out: Vec<Signal<In, Signed<32>>>,
    /// From the array: `acc_valid`.
    pub arr_acc_valid: Vec<Signal<In, Bit>>,
    /// From the array: `psum_valid`.
    pub arr_psum_valid: Vec<Signal<In, Bit>>,
    /// The carry store (carried partial sums between the sub-passes of a block).
    pub carry: BankedRam<Bits<32>>,
    // The instruction and its fields.
    inst_q: DFF<Bits<256>>,
    fd: Vec<Signal<Local, Bits<16>>>,
    fd_reset: Signal<Local, Bit>,
    // The fields used in the start cycle, from `inst`: wgt_base, m_outer, m_inner, n_size, wgt_n_stride, k_outer,
    // k_mid, k_inner.
    fs: Vec<Signal<Local, Bits<16>>>,
    k_lsb: Vec<Constant<Bits<16>>>,
    k_lsb_reset: Constant<Bits<16>>,
    empty: Signal<Local, Bit>,
    // Range check.
    kb_total: Signal<Local, Bits<32>>,
    kb_12: Signal<Local, Bits<32>>,
    act_hi: Signal<Local, Bits<40>>,
    wgt_hi: Signal<Local, Bits<40>>,
    acc_hi: Signal<Local, Bits<40>>,
    out_of_range: Signal<Local, Bit>,
    k_entries: Vec<Constant<Bits<40>>>,
    // Control.
    run: DFF<Bit>,
    chk: DFF<Bit>,
    drain: DFF<Bit>,
    dcnt: DFF<Bits<16>>,
    // Walker: rows of the pass.
    pc: DFF<Bits<16>>,
    rows_done: DFF<Bit>,
    mo: DFF<Bits<16>>,
    mi: DFF<Bits<16>>,
    act_mo_off: DFF<Bits<16>>,
    act_m_off: DFF<Bits<16>>,
    acc_mo_off: DFF<Bits<16>>,
    acc_m_off: DFF<Bits<16>>,
    // Walker: the pass.
    sp: DFF<Bits<8>>,
    kb: DFF<Bits<32>>,
    ko: DFF<Bits<8>>,
    km: DFF<Bits<8>>,
    ki: DFF<Bits<16>>,
    ko_off: DFF<Bits<16>>,
    km_off: DFF<Bits<16>>,
    koff: DFF<Bits<16>>,
    n0: DFF<Bits<16>>,
    nrem: DFF<Bits<16>>,
    issuing: Signal<Local, Bit>,
    mi_last: Signal<Local, Bit>,
    mo_last: Signal<Local, Bit>,
    rows_end: Signal<Local, Bit>,
    pass_end: Signal<Local, Bit>,
    last_block: Signal<Local, Bit>,
    last_pass: Signal<Local, Bit>,
    // The row entering the array (registered with the ACT read).
    row_info: DFF<Bits<36>>,
    row_sp: DFF<Bits<8>>,
    row_first: DFF<Bit>,
    info_in: Signal<Local, Bits<36>>,
    row1: DFF<Bits<17>>,
    d_acc_rd: DelayLine<Bits<35>>,
    acc1: DFF<Bits<17>>,
    d_carry_wr: DelayLine<Bits<34>>,
    d_acc_wr: DelayLine<Bits<34>>,
    lane_ok: Vec<Signal<Local, Bit>>,
    k_lane: Vec<Constant<Bits<16>>>,
    carry_data: Vec<Signal<Local, Bits<32>>>,
    acc_data: Vec<Signal<Local, Bits<32>>>,
    skew_carry: Vec<DelayLine<Bits<32>>>,
    skew_acc: Vec<DelayLine<Bits<32>>>,
    deskew_psum: Vec<DelayLine<Bits<32>>>,
    deskew_acc: Vec<DelayLine<Bits<32>>>,
    sat_sum: Vec<Signal<Local, Bits<8>>>,
    // Weight loader.
    ld_active: DFF<Bit>,
    ld_c: DFF<Bits<16>>,
    ld_addr: DFF<Bits<16>>,
    ld_chunk: DFF<Bits<16>>,
    ld_nbase: DFF<Bits<16>>,
    ld_nrem: DFF<Bits<16>>,
    ld_sp: DFF<Bits<8>>,
    ld_kb: DFF<Bits<32>>,
    ldq_load: DFF<Bit>,
    ldq_valid: DFF<Bit>,
    ldq_col: DFF<Bits<16>>,
    ldq_sp: DFF<Bits<8>>,
    // Constants.
    k_zero_m: Constant<Signed<M>>,
    k_zero32: Constant<Bits<32>>,
    k_pmin1: Constant<Bits<16>>,
    k_drain: Constant<Bits<16>>,
    k_c: Constant<Bits<16>>,
    k_cm1: Constant<Bits<16>>,
    k_log2c: Constant<Bits<16>>,
    k_spm1: Constant<Bits<8>>,
    k_err: Constant<Bits<4>>,
    _r: usize,
    _r_end: usize,
    _c: usize,
    _c_end: usize,
    _a: usize,
    _sp: usize,
    _bs: usize,
}

/// The GEMM fields the unit extracts, each into 16 bits (`k_outer` and `k_mid` are 8 bits wide, zero-extended):
/// `fd[i]` / `fs[i]` in the sequencer is field `FIELDS16[i]` (the update function indexes them by literals,
/// as rust-hdl requires).
const FIELDS16: [arch::isa::Field; 16] = [
    f::ACT_BASE,
    f::WGT_BASE,
    f::ACC_BASE,
    f::M_OUTER,
    f::M_INNER,
    f::N_SIZE,
    f::WGT_N_STRIDE,
    f::ACT_M_OUTER_STRIDE,
    f::ACT_M_INNER_STRIDE,
    f::ACC_M_OUTER_STRIDE,
    f::ACC_M_INNER_STRIDE,
    f::K_OUTER,
    f::K_MID,
    f::K_INNER,
    f::ACT_K_OUTER_STRIDE,
    f::ACT_K_MID_STRIDE,
];

impl<const M: usize> GemmSequencer<M> {
    /// The sequencer of `g` (built by [`GemmGeometry::for_config`]).
    pub fn new(g: &GemmGeometry) -> Self {
        let a = &g.array;
        let (r, c, bs) = (a.rows, a.cols, a.block_size);
        assert_eq!(a.mantissa_bits as usize, M, "wrong mantissa width");
        assert!(FIELDS16.iter().all(|x| x.width <= 16) && f::RESET.width == 1);
        let lat = a.acc_latency;
        let carry_entries = if g.sub_passes > 1 { g.entries[2] } else { c };
        let k16 = |x: u64| Constant::new(x.into());
        Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            inst: Default::default(),
            done: Default::default(),
            error: Default::default(),
            error_code: Default::default(),
            sat_count: Default::default(),
            act_rd_en: Default::default(),
            act_rd_addr: Default::default(),
            act_rd_exp: Default::default(),
            act_rd_mant: filled(bs),
            wgt_rd_en: Default::default(),
            wgt_rd_addr: Default::default(),
            wgt_rd_exp: Default::default(),
            wgt_rd_mant: filled(bs),
            acc_rd_en: filled(g.acc_lanes),
            acc_rd_addr: filled(g.acc_lanes),
            acc_rd_data: filled(g.acc_lanes),
            acc_wr_en: filled(g.acc_lanes),
            acc_wr_addr: filled(g.acc_lanes),
            acc_wr_data: filled(g.acc_lanes),
            a_in: filled(r),
            a_exp: Default::default(),
            a_valid: Default::default(),
            a_first: Default::default(),
            a_carry: Default::default(),
            a_last: Default::default(),
            w_in: filled(r),
            w_exp: Default::default(),
            w_load: filled(c),
            psum_in: filled(c),
            acc_in: filled(c),
            arr_acc_out: filled(c),
            arr_acc_sat: filled(c),
            arr_psum_out: filled(c),
            arr_acc_valid: filled(c),
            arr_psum_valid: filled(c),
            carry: BankedRam::new(carry_entries, c, c, c),
            inst_q: Default::default(),
            fd: filled(16),
            fd_reset: Default::default(),
            fs: filled(8),
            k_lsb: FIELDS16.iter().map(|x| k16(x.lsb as u64)).collect(),
            k_lsb_reset: k16(f::RESET.lsb as u64),
            empty: Default::default(),
            kb_total: Default::default(),
            kb_12: Default::default(),
            act_hi: Default::default(),
            wgt_hi: Default::default(),
            acc_hi: Default::default(),
            out_of_range: Default::default(),
            k_entries: g.entries.iter().map(|&e| Constant::new((e as u64).into())).collect(),
            run: Default::default(),
            chk: Default::default(),
            drain: Default::default(),
            dcnt: Default::default(),
            pc: Default::default(),
            rows_done: Default::default(),
            mo: Default::default(),
            mi: Default::default(),
            act_mo_off: Default::default(),
            act_m_off: Default::default(),
            acc_mo_off: Default::default(),
            acc_m_off: Default::default(),
            sp: Default::default(),
            kb: Default::default(),
            ko: Default::default(),
            km: Default::default(),
            ki: Default::default(),
            ko_off: Default::default(),
            km_off: Default::default(),
            koff: Default::default(),
            n0: Default::default(),
            nrem: Default::default(),
            issuing: Default::default(),
            mi_last: Default::default(),
            mo_last: Default::default(),
            rows_end: Default::default(),
            pass_end: Default::default(),
            last_block: Default::default(),
            last_pass: Default::default(),
            row_info: Default::default(),
            row_sp: Default::default(),
            row_first: Default::default(),
            info_in: Default::default(),
            row1: Default::default(),
            d_acc_rd: DelayLine::new(r),
            acc1: Default::default(),
            d_carry_wr: DelayLine::new(c + 1),
            d_acc_wr: DelayLine::new(lat),
            lane_ok: filled(4 * c),
            k_lane: (0..c).map(|l| k16(l as u64)).collect(),
            skew_carry: (1..c).map(DelayLine::new).collect(),
            skew_acc: (1..c).map(DelayLine::new).collect(),
            carry_data: filled(c),
            acc_data: filled(c),
            deskew_psum: (0..c).map(|l| DelayLine::new(c - l)).collect(),
            deskew_acc: (0..c).map(|l| DelayLine::new(c - l)).collect(),
            sat_sum: filled(c + 1),
            ld_active: Default::default(),
            ld_c: Default::default(),
            ld_addr: Default::default(),
            ld_chunk: Default::default(),
            ld_nbase: Default::default(),
            ld_nrem: Default::default(),
            ld_sp: Default::default(),
            ld_kb: Default::default(),
            ldq_load: Default::default(),
            ldq_valid: Default::default(),
            ldq_col: Default::default(),
            ldq_sp: Default::default(),
            k_zero_m: Constant::new(Signed::<M>::from(0i64)),
            k_zero32: Constant::new(0u64.into()),
            k_pmin1: k16(g.min_pass - 1),
            k_drain: k16((2 * r + c + lat - 3) as u64),
            k_c: k16(c as u64),
            k_cm1: k16(c as u64 - 1),
            k_log2c: k16(c.trailing_zeros() as u64),
            k_spm1: Constant::new((g.sub_passes as u64 - 1).into()),
            k_err: Constant::new((ErrorCode::BufferOutOfRange as u64).into()),
            _r: r,
            _r_end: r + 1,
            _c: c,
            _c_end: c + 1,
            _a: g.acc_lanes,
            _sp: g.sub_passes,
            _bs: bs,
        }
    }
}

// The row descriptor that travels beside a row (`row_info`), 36 bits: the row's first accumulator address
// [15:0], the columns left in the chunk `N − n0` [31:16], valid 32, last 33, zero 34 (a `reset` GEMM's first
// block: the accumulators start at +0), carry 35. The delay lines to the later taps carry only the low bits
// each tap needs (35: ACC read; 34: carry write and ACC write); `row1` and `acc1` hold a lane count and one
// enable bit for gating the read data.

impl<const M: usize> Logic for GemmSequencer<M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, inst_q, run, chk, drain, dcnt, pc, rows_done, mo, mi, act_mo_off, act_m_off, acc_mo_off,
            acc_m_off, sp, kb, ko, km, ki, ko_off, km_off, koff, n0, nrem, row_info, row_sp, row_first, row1, acc1,
            ld_active, ld_c, ld_addr, ld_chunk, ld_nbase, ld_nrem, ld_sp, ld_kb, ldq_load, ldq_valid, ldq_col, ldq_sp
        );
        self.carry.clock.next = self.clock.val();
        self.d_acc_rd.clock.next = self.clock.val();
        self.d_carry_wr.clock.next = self.clock.val();
        self.d_acc_wr.clock.next = self.clock.val();
        for l in 1..self._c {
            self.skew_carry[l - 1].clock.next = self.clock.val();
            self.skew_acc[l - 1].clock.next = self.clock.val();
        }
        for l in 0..self._c {
            self.deskew_psum[l].clock.next = self.clock.val();
            self.deskew_acc[l].clock.next = self.clock.val();
        }
        // Fields: of `inst` in the start cycle, of the latched instruction afterwards.
        self.fd_reset.next = self.inst_q.q.val().get_bit(self.k_lsb_reset.val().index());
        for i in 0..16 {
            self.fd[i].next = self.inst_q.q.val().get_bits::<16>(self.k_lsb[i].val().index());
        }
        // In the start cycle: the fields that decide emptiness and the first weight read, from `inst` itself.
        self.fs[0].next = self.inst.val().get_bits::<16>(self.k_lsb[1].val().index());
        self.fs[1].next = self.inst.val().get_bits::<16>(self.k_lsb[3].val().index());
        self.fs[2].next = self.inst.val().get_bits::<16>(self.k_lsb[4].val().index());
        self.fs[3].next = self.inst.val().get_bits::<16>(self.k_lsb[5].val().index());
        self.fs[4].next = self.inst.val().get_bits::<16>(self.k_lsb[6].val().index());
        self.fs[7].next = self.inst.val().get_bits::<16>(self.k_lsb[13].val().index());
        // k_outer and k_mid are 8 bits wide: keep their 8 bits.
        self.fs[5].next = bit_cast::<16, 8>(self.inst.val().get_bits::<8>(self.k_lsb[11].val().index()));
        self.fs[6].next = bit_cast::<16, 8>(self.inst.val().get_bits::<8>(self.k_lsb[12].val().index()));
        self.fd[11].next = bit_cast::<16, 8>(self.inst_q.q.val().get_bits::<8>(self.k_lsb[11].val().index()));
        self.fd[12].next = bit_cast::<16, 8>(self.inst_q.q.val().get_bits::<8>(self.k_lsb[12].val().index()));
        self.empty.next = (self.fs[1].val() == 0_u64)
            | (self.fs[2].val() == 0_u64)
            | (self.fs[3].val() == 0_u64)
            | (self.fs[5].val() == 0_u64)
            | (self.fs[6].val() == 0_u64)
            | (self.fs[7].val() == 0_u64);

        // Range check (valid in the cycle after the start): the golden model's footprints.
        // k_outer · k_mid < 2^16: the product's low half.
        self.kb_12.next = self.fd[11].val() * self.fd[12].val();
        self.kb_total.next = bit_cast::<16, 32>(self.kb_12.val()) * self.fd[13].val();
        self.act_hi.next = bit_cast::<40, 16>(self.fd[0].val())
            + bit_cast::<40, 32>((self.fd[3].val() - 1_u64) * self.fd[7].val())
            + bit_cast::<40, 32>((self.fd[4].val() - 1_u64) * self.fd[8].val())
            + bit_cast::<40, 32>((self.fd[11].val() - 1_u64) * self.fd[14].val())
            + bit_cast::<40, 32>((self.fd[12].val() - 1_u64) * self.fd[15].val())
            + bit_cast::<40, 16>(self.fd[13].val() - 1_u64);
        self.wgt_hi.next = bit_cast::<40, 16>(self.fd[1].val())
            + bit_cast::<40, 32>((self.fd[5].val() - 1_u64) * self.fd[6].val())
            + bit_cast::<40, 32>(self.kb_total.val())
            - 1_u64;
        self.acc_hi.next = bit_cast::<40, 16>(self.fd[2].val())
            + bit_cast::<40, 32>((self.fd[3].val() - 1_u64) * self.fd[9].val())
            + bit_cast::<40, 32>((self.fd[4].val() - 1_u64) * self.fd[10].val())
            + bit_cast::<40, 16>(self.fd[5].val() - 1_u64);
        self.out_of_range.next = (self.act_hi.val() >= self.k_entries[0].val())
            | (self.wgt_hi.val() >= self.k_entries[1].val())
            | (self.acc_hi.val() >= self.k_entries[2].val());
        self.error.next = self.chk.q.val() & self.out_of_range.val();
        self.error_code.next = self.k_err.val();
        self.chk.d.next = false;

        // Walker: one cycle ahead of the row entering the array.
        self.issuing.next = self.run.q.val() & !self.rows_done.q.val();
        self.mi_last.next = (self.mi.q.val() + 1_u64) == self.fd[4].val();
        self.mo_last.next = (self.mo.q.val() + 1_u64) == self.fd[3].val();
        self.rows_end.next = self.rows_done.q.val() | (self.issuing.val() & self.mi_last.val() & self.mo_last.val());
        self.pass_end.next = self.run.q.val() & self.rows_end.val() & (self.pc.q.val() >= self.k_pmin1.val());
        self.last_block.next = (self.kb.q.val() + 1_u64) == self.kb_total.val();
        self.last_pass.next =
            (self.nrem.q.val() <= self.k_c.val()) & self.last_block.val() & (self.sp.q.val() == self.k_spm1.val());
        self.act_rd_en.next = self.issuing.val();
        self.act_rd_addr.next = self.fd[0].val() + self.act_m_off.q.val() + self.koff.q.val();
        self.info_in.next = bit_cast::<36, 16>(self.fd[2].val() + self.acc_m_off.q.val() + self.n0.q.val())
            | (bit_cast::<36, 16>(self.nrem.q.val()) << 16_u64)
            | (bit_cast::<36, 1>((self.issuing.val() & !self.error.val()).into()) << 32_u64)
            | (bit_cast::<36, 1>((self.sp.q.val() == self.k_spm1.val()).into()) << 33_u64)
            | (bit_cast::<36, 1>((self.fd_reset.val() & (self.kb.q.val() == 0_u64)).into()) << 34_u64)
            | (bit_cast::<36, 1>((self.sp.q.val() != 0_u64).into()) << 35_u64);
        self.row_info.d.next = self.info_in.val();
        self.row_sp.d.next = self.sp.q.val();
        self.row_first.d.next = self.pc.q.val() == 0_u64;
        if self.run.q.val() & (self.pc.q.val() != 0xFFFF_u64) {
            self.pc.d.next = self.pc.q.val() + 1_u64;
        }
        if self.issuing.val() {
            if !self.mi_last.val() {
                self.mi.d.next = self.mi.q.val() + 1_u64;
                self.act_m_off.d.next = self.act_m_off.q.val() + self.fd[8].val();
                self.acc_m_off.d.next = self.acc_m_off.q.val() + self.fd[10].val();
            } else {
                self.mi.d.next = 0_u64.into();
                if !self.mo_last.val() {
                    self.mo.d.next = self.mo.q.val() + 1_u64;
                    self.act_mo_off.d.next = self.act_mo_off.q.val() + self.fd[7].val();
                    self.act_m_off.d.next = self.act_mo_off.q.val() + self.fd[7].val();
                    self.acc_mo_off.d.next = self.acc_mo_off.q.val() + self.fd[9].val();
                    self.acc_m_off.d.next = self.acc_mo_off.q.val() + self.fd[9].val();
                } else {
                    self.rows_done.d.next = true;
                }
            }
        }
        if self.pass_end.val() {
            self.pc.d.next = 0_u64.into();
            self.rows_done.d.next = false;
            self.mi.d.next = 0_u64.into();
            self.mo.d.next = 0_u64.into();
            self.act_mo_off.d.next = 0_u64.into();
            self.act_m_off.d.next = 0_u64.into();
            self.acc_mo_off.d.next = 0_u64.into();
            self.acc_m_off.d.next = 0_u64.into();
            if self.sp.q.val() != self.k_spm1.val() {
                self.sp.d.next = self.sp.q.val() + 1_u64;
            } else {
                self.sp.d.next = 0_u64.into();
                if !self.last_block.val() {
                    self.kb.d.next = self.kb.q.val() + 1_u64;
                    if (self.ki.q.val() + 1_u64) != self.fd[13].val() {
                        self.ki.d.next = self.ki.q.val() + 1_u64;
                        self.koff.d.next = self.koff.q.val() + 1_u64;
                    } else {
                        self.ki.d.next = 0_u64.into();
                        if (bit_cast::<16, 8>(self.km.q.val()) + 1_u64) != self.fd[12].val() {
                            self.km.d.next = self.km.q.val() + 1_u64;
                            self.km_off.d.next = self.km_off.q.val() + self.fd[15].val();
                            self.koff.d.next = self.km_off.q.val() + self.fd[15].val();
                        } else {
                            self.km.d.next = 0_u64.into();
                            self.ko.d.next = self.ko.q.val() + 1_u64;
                            self.ko_off.d.next = self.ko_off.q.val() + self.fd[14].val();
                            self.km_off.d.next = self.ko_off.q.val() + self.fd[14].val();
                            self.koff.d.next = self.ko_off.q.val() + self.fd[14].val();
                        }
                    }
                } else {
                    self.kb.d.next = 0_u64.into();
                    self.ki.d.next = 0_u64.into();
                    self.km.d.next = 0_u64.into();
                    self.ko.d.next = 0_u64.into();
                    self.koff.d.next = 0_u64.into();
                    self.km_off.d.next = 0_u64.into();
                    self.ko_off.d.next = 0_u64.into();
                    self.n0.d.next = self.n0.q.val() + self.k_c.val();
                    self.nrem.d.next = self.nrem.q.val() - self.k_c.val();
                }
            }
            if self.last_pass.val() {
                self.run.d.next = false;
                self.drain.d.next = true;
                self.dcnt.d.next = self.k_drain.val();
            }
        }
        // Done: a fixed drain after the last pass.
        self.done.next = false;
        if self.drain.q.val() {
            self.dcnt.d.next = self.dcnt.q.val() - 1_u64;
            if self.dcnt.q.val() == 0_u64 {
                self.done.next = true;
                self.drain.d.next = false;
            }
        }

        // Weight loader: one column per cycle, read in cycle L + c, loaded into the array in L + c + 1.
        self.wgt_rd_en.next = self.ld_active.q.val() & (self.ld_c.q.val() < self.ld_nrem.q.val());
        self.wgt_rd_addr.next = self.ld_addr.q.val();
        self.ldq_load.d.next = self.ld_active.q.val();
        self.ldq_valid.d.next = self.ld_active.q.val() & (self.ld_c.q.val() < self.ld_nrem.q.val());
        self.ldq_col.d.next = self.ld_c.q.val();
        self.ldq_sp.d.next = self.ld_sp.q.val();
        if self.ld_active.q.val() {
            self.ld_c.d.next = self.ld_c.q.val() + 1_u64;
            self.ld_addr.d.next = self.ld_addr.q.val() + self.fd[6].val();
            if self.ld_c.q.val() == self.k_cm1.val() {
                self.ld_active.d.next = false;
                if self.ld_sp.q.val() != self.k_spm1.val() {
                    self.ld_sp.d.next = self.ld_sp.q.val() + 1_u64;
                } else {
                    self.ld_sp.d.next = 0_u64.into();
                    if (self.ld_kb.q.val() + 1_u64) != self.kb_total.val() {
                        self.ld_kb.d.next = self.ld_kb.q.val() + 1_u64;
                        self.ld_chunk.d.next = self.ld_chunk.q.val() + 1_u64;
                    } else {
                        self.ld_kb.d.next = 0_u64.into();
                        self.ld_nbase.d.next = self.ld_nbase.q.val() + (self.fd[6].val() << self.k_log2c.val());
                        self.ld_chunk.d.next = self.ld_nbase.q.val() + (self.fd[6].val() << self.k_log2c.val());
                        self.ld_nrem.d.next = self.ld_nrem.q.val() - self.k_c.val();
                    }
                }
            }
        }
        // The next pass's weights, once every column has captured this pass's.
        if self.run.q.val() & (self.pc.q.val() == self.k_cm1.val()) & !self.last_pass.val() {
            self.ld_active.d.next = true;
            self.ld_c.d.next = 0_u64.into();
            self.ld_addr.d.next = self.ld_chunk.q.val();
        }
        for c in 0..self._c {
            self.w_load[c].next = self.ldq_load.q.val() & (self.ldq_col.q.val().index() == c);
        }
        self.w_exp.next = 0_u64.into();
        if self.ldq_valid.q.val() {
            self.w_exp.next = self.wgt_rd_exp.val();
        }
        for r in 0..self._r {
            self.w_in[r].next = self.k_zero_m.val();
            self.a_in[r].next = self.act_rd_mant[r].val();
        }
        // Sub-pass `s` uses mantissas `s·R … s·R + R − 1` (R enters the index through a one-value loop).
        for rr in self._r..self._r_end {
            for s in 0..self._sp {
                for r in 0..self._r {
                    if self.ldq_valid.q.val() & (self.ldq_sp.q.val().index() == s) {
                        self.w_in[r].next = self.wgt_rd_mant[s * rr + r].val();
                    }
                    if self.row_sp.q.val().index() == s {
                        self.a_in[r].next = self.act_rd_mant[s * rr + r].val();
                    }
                }
            }
        }

        // Start.
        if self.start.val() & !self.run.q.val() & !self.drain.q.val() & !self.empty.val() {
            self.inst_q.d.next = self.inst.val();
            self.run.d.next = true;
            self.chk.d.next = true;
            self.pc.d.next = 0_u64.into();
            self.rows_done.d.next = false;
            self.mi.d.next = 0_u64.into();
            self.mo.d.next = 0_u64.into();
            self.act_mo_off.d.next = 0_u64.into();
            self.act_m_off.d.next = 0_u64.into();
            self.acc_mo_off.d.next = 0_u64.into();
            self.acc_m_off.d.next = 0_u64.into();
            self.sp.d.next = 0_u64.into();
            self.kb.d.next = 0_u64.into();
            self.ko.d.next = 0_u64.into();
            self.km.d.next = 0_u64.into();
            self.ki.d.next = 0_u64.into();
            self.ko_off.d.next = 0_u64.into();
            self.km_off.d.next = 0_u64.into();
            self.koff.d.next = 0_u64.into();
            self.n0.d.next = 0_u64.into();
            self.nrem.d.next = self.fs[3].val();
            // The first pass's column 0 is read now, from the instruction itself.
            self.wgt_rd_en.next = true;
            self.wgt_rd_addr.next = self.fs[0].val();
            self.ldq_load.d.next = true;
            self.ldq_valid.d.next = true;
            self.ldq_col.d.next = 0_u64.into();
            self.ldq_sp.d.next = 0_u64.into();
            self.ld_active.d.next = true;
            self.ld_c.d.next = 1_u64.into();
            self.ld_addr.d.next = self.fs[0].val() + self.fs[4].val();
            self.ld_chunk.d.next = self.fs[0].val();
            self.ld_nbase.d.next = self.fs[0].val();
            self.ld_nrem.d.next = self.fs[3].val();
            self.ld_sp.d.next = 0_u64.into();
            self.ld_kb.d.next = 0_u64.into();
        }
        if self.start.val() & self.empty.val() {
            self.done.next = true;
        }
        // A range error: nothing was written; stop.
        if self.error.val() | self.reset.val() {
            self.run.d.next = false;
            self.drain.d.next = false;
            self.ld_active.d.next = false;
            self.ldq_load.d.next = false;
            self.ldq_valid.d.next = false;
        }
        if self.reset.val() {
            self.chk.d.next = false;
            self.row_info.d.next = 0_u64.into();
        }

        // The row in the array: activations, flags, carried partial sums (read now, skewed into psum_in).
        self.a_exp.next = self.act_rd_exp.val();
        self.a_valid.next = self.row_info.q.val().get_bit(32);
        self.a_carry.next = self.row_info.q.val().get_bit(35);
        self.a_last.next = self.row_info.q.val().get_bit(33);
        self.a_first.next = self.row_info.q.val().get_bit(32) & self.row_first.q.val();
        self.row1.d.next = bit_cast::<17, 16>(self.row_info.q.val().get_bits::<16>(16))
            | (bit_cast::<17, 1>((self.row_info.q.val().get_bit(32) & self.row_info.q.val().get_bit(35)).into())
                << 16_u64);
        self.d_acc_rd.din.next = self.row_info.q.val().get_bits::<35>(0);
        self.acc1.d.next = bit_cast::<17, 16>(self.d_acc_rd.dout.val().get_bits::<16>(16))
            | (bit_cast::<17, 1>(
                (self.d_acc_rd.dout.val().get_bit(32)
                    & self.d_acc_rd.dout.val().get_bit(33)
                    & !self.d_acc_rd.dout.val().get_bit(34))
                .into(),
            ) << 16_u64);
        self.d_carry_wr.din.next = self.d_acc_rd.dout.val().get_bits::<34>(0);
        self.d_acc_wr.din.next = self.d_carry_wr.dout.val();
        for l in 0..self._c {
            // Lane l holds a column within N: lane_ok[k·C + l] for the row at tap k.
            self.lane_ok[l].next = self.row_info.q.val().get_bits::<16>(16).index() > l;
            self.carry.rd_en[l].next =
                self.row_info.q.val().get_bit(32) & self.row_info.q.val().get_bit(35) & self.lane_ok[l].val();
            self.carry.rd_addr[l].next = self.row_info.q.val().get_bits::<16>(0) + self.k_lane[l].val();
            self.carry_data[l].next = self.k_zero32.val();
            if self.row1.q.val().get_bit(16) & (self.row1.q.val().get_bits::<16>(0).index() > l) {
                self.carry_data[l].next = self.carry.rd_data[l].val();
            }
        }
        // Lane 0 is not delayed; lane l by l cycles.
        self.psum_in[0].next = signed_cast(self.carry_data[0].val());
        for l in 1..self._c {
            self.skew_carry[l - 1].din.next = self.carry_data[l].val();
            self.psum_in[l].next = signed_cast(self.skew_carry[l - 1].dout.val());
        }
        // Accumulators: read row-wide at t + R, skewed into acc_in (+0 when not read).
        for a in 0..self._a {
            self.acc_rd_en[a].next = false;
            self.acc_rd_addr[a].next = self.d_acc_rd.dout.val().get_bits::<16>(0);
            self.acc_wr_en[a].next = false;
            self.acc_wr_addr[a].next = self.d_acc_wr.dout.val().get_bits::<16>(0);
            self.acc_wr_data[a].next = self.k_zero32.val();
        }
        for cc in self._c..self._c_end {
            for l in 0..self._c {
                self.lane_ok[cc + l].next = self.d_acc_rd.dout.val().get_bits::<16>(16).index() > l;
                self.acc_rd_en[l].next = self.d_acc_rd.dout.val().get_bit(32)
                    & self.d_acc_rd.dout.val().get_bit(33)
                    & !self.d_acc_rd.dout.val().get_bit(34)
                    & self.lane_ok[cc + l].val();
                self.acc_rd_addr[l].next = self.d_acc_rd.dout.val().get_bits::<16>(0) + self.k_lane[l].val();
                self.acc_data[l].next = self.k_zero32.val();
                if self.acc1.q.val().get_bit(16) & (self.acc1.q.val().get_bits::<16>(0).index() > l) {
                    self.acc_data[l].next = self.acc_rd_data[l].val();
                }
                // Carried partial sums: deskewed, written row-wide at t + R + C + 1.
                self.deskew_psum[l].din.next = self.k_zero32.val();
                if self.arr_psum_valid[l].val() {
                    self.deskew_psum[l].din.next = unsigned_cast(self.arr_psum_out[l].val());
                }
                self.lane_ok[2 * cc + l].next = self.d_carry_wr.dout.val().get_bits::<16>(16).index() > l;
                self.carry.wr_en[l].next = self.d_carry_wr.dout.val().get_bit(32)
                    & !self.d_carry_wr.dout.val().get_bit(33)
                    & self.lane_ok[2 * cc + l].val();
                self.carry.wr_addr[l].next = self.d_carry_wr.dout.val().get_bits::<16>(0) + self.k_lane[l].val();
                self.carry.wr_data[l].next = self.deskew_psum[l].dout.val();
                // New accumulators: deskewed, written row-wide at t + R + C + acc_latency + 1.
                self.deskew_acc[l].din.next = self.arr_acc_out[l].val();
                self.lane_ok[3 * cc + l].next = self.d_acc_wr.dout.val().get_bits::<16>(16).index() > l;
                self.acc_wr_en[l].next = self.d_acc_wr.dout.val().get_bit(32)
                    & self.d_acc_wr.dout.val().get_bit(33)
                    & self.lane_ok[3 * cc + l].val();
                self.acc_wr_addr[l].next = self.d_acc_wr.dout.val().get_bits::<16>(0) + self.k_lane[l].val();
                self.acc_wr_data[l].next = self.deskew_acc[l].dout.val();
            }
        }
        self.acc_in[0].next = self.acc_data[0].val();
        for l in 1..self._c {
            self.skew_acc[l - 1].din.next = self.acc_data[l].val();
            self.acc_in[l].next = self.skew_acc[l - 1].dout.val();
        }
        // Saturations this cycle.
        self.sat_sum[0].next = 0_u64.into();
        for l in 0..self._c {
            self.sat_sum[l + 1].next =
                self.sat_sum[l].val() + (self.arr_acc_sat[l].val() & self.arr_acc_valid[l].val());
        }
        for cc in self._c..self._c_end {
            self.sat_count.next = self.sat_sum[cc].val();
        }
    }
}

/// Stamps out the GEMM stage unit for one array type: a [`GemmSequencer`] wired to the array, with the stage
/// and buffer ports of the sequencer (see the module documentation).
#[macro_export]
macro_rules! gemm_unit {
    ($(#[$doc:meta])* $name:ident, $array:ident) => {
        $(#[$doc])*
        #[derive(LogicBlock)]
        pub struct $name<const M: usize> {
            /// The clock.
            pub clock: Signal<In, Clock>,
            /// Synchronous reset.
            pub reset: Signal<In, Bit>,
            /// Start (one cycle, with the instruction on `inst`).
            pub start: Signal<In, Bit>,
            /// The raw instruction.
            pub inst: Signal<In, Bits<256>>,
            /// Done (pulse in `E − 1`).
            pub done: Signal<Out, Bit>,
            /// Error (pulse).
            pub error: Signal<Out, Bit>,
            /// The error's `ErrorCode`.
            pub error_code: Signal<Out, Bits<4>>,
            /// Saturated additions this cycle.
            pub sat_count: Signal<Out, Bits<8>>,
            /// ACT read enable.
            pub act_rd_en: Signal<Out, Bit>,
            /// ACT read address.
            pub act_rd_addr: Signal<Out, Bits<16>>,
            /// ACT exponent code read.
            pub act_rd_exp: Signal<In, Bits<8>>,
            /// ACT mantissas read.
            pub act_rd_mant: Vec<Signal<In, Signed<M>>>,
            /// WGT read enable.
            pub wgt_rd_en: Signal<Out, Bit>,
            /// WGT read address.
            pub wgt_rd_addr: Signal<Out, Bits<16>>,
            /// WGT exponent code read.
            pub wgt_rd_exp: Signal<In, Bits<8>>,
            /// WGT mantissas read.
            pub wgt_rd_mant: Vec<Signal<In, Signed<M>>>,
            /// ACC read enables.
            pub acc_rd_en: Vec<Signal<Out, Bit>>,
            /// ACC read addresses.
            pub acc_rd_addr: Vec<Signal<Out, Bits<16>>>,
            /// ACC data read.
            pub acc_rd_data: Vec<Signal<In, Bits<32>>>,
            /// ACC write enables.
            pub acc_wr_en: Vec<Signal<Out, Bit>>,
            /// ACC write addresses.
            pub acc_wr_addr: Vec<Signal<Out, Bits<16>>>,
            /// ACC write data.
            pub acc_wr_data: Vec<Signal<Out, Bits<32>>>,
            /// The sequencer.
            pub seq: $crate::gemm::GemmSequencer<M>,
            /// The array.
            pub array: $crate::array::$array<M>,
            _r: usize,
            _c: usize,
            _a: usize,
            _bs: usize,
        }

        impl<const M: usize> $name<M> {
            /// The unit of `cfg` (its array must be this type's), boxed.
            pub fn new(cfg: &arch::EngineConfig) -> Result<Box<Self>, $crate::HdlError> {
                let g = $crate::gemm::GemmGeometry::for_config(cfg)?;
                let a = g.array;
                Ok(Box::new(Self {
                    clock: Default::default(),
                    reset: Default::default(),
                    start: Default::default(),
                    inst: Default::default(),
                    done: Default::default(),
                    error: Default::default(),
                    error_code: Default::default(),
                    sat_count: Default::default(),
                    act_rd_en: Default::default(),
                    act_rd_addr: Default::default(),
                    act_rd_exp: Default::default(),
                    act_rd_mant: $crate::array::filled(a.block_size),
                    wgt_rd_en: Default::default(),
                    wgt_rd_addr: Default::default(),
                    wgt_rd_exp: Default::default(),
                    wgt_rd_mant: $crate::array::filled(a.block_size),
                    acc_rd_en: $crate::array::filled(g.acc_lanes),
                    acc_rd_addr: $crate::array::filled(g.acc_lanes),
                    acc_rd_data: $crate::array::filled(g.acc_lanes),
                    acc_wr_en: $crate::array::filled(g.acc_lanes),
                    acc_wr_addr: $crate::array::filled(g.acc_lanes),
                    acc_wr_data: $crate::array::filled(g.acc_lanes),
                    seq: $crate::gemm::GemmSequencer::new(&g),
                    array: *$crate::array::$array::<M>::new(a),
                    _r: a.rows,
                    _c: a.cols,
                    _a: g.acc_lanes,
                    _bs: a.block_size,
                }))
            }
        }

        impl<const M: usize> Logic for $name<M> {
            #[hdl_gen]
            fn update(&mut self) {
                self.seq.clock.next = self.clock.val();
                self.array.clock.next = self.clock.val();
                self.seq.reset.next = self.reset.val();
                self.seq.start.next = self.start.val();
                self.seq.inst.next = self.inst.val();
                self.done.next = self.seq.done.val();
                self.error.next = self.seq.error.val();
                self.error_code.next = self.seq.error_code.val();
                self.sat_count.next = self.seq.sat_count.val();
                self.act_rd_en.next = self.seq.act_rd_en.val();
                self.act_rd_addr.next = self.seq.act_rd_addr.val();
                self.seq.act_rd_exp.next = self.act_rd_exp.val();
                self.wgt_rd_en.next = self.seq.wgt_rd_en.val();
                self.wgt_rd_addr.next = self.seq.wgt_rd_addr.val();
                self.seq.wgt_rd_exp.next = self.wgt_rd_exp.val();
                for i in 0..self._bs {
                    self.seq.act_rd_mant[i].next = self.act_rd_mant[i].val();
                    self.seq.wgt_rd_mant[i].next = self.wgt_rd_mant[i].val();
                }
                for l in 0..self._a {
                    self.acc_rd_en[l].next = self.seq.acc_rd_en[l].val();
                    self.acc_rd_addr[l].next = self.seq.acc_rd_addr[l].val();
                    self.seq.acc_rd_data[l].next = self.acc_rd_data[l].val();
                    self.acc_wr_en[l].next = self.seq.acc_wr_en[l].val();
                    self.acc_wr_addr[l].next = self.seq.acc_wr_addr[l].val();
                    self.acc_wr_data[l].next = self.seq.acc_wr_data[l].val();
                }
                // The array: one segment, so one activation and one weight exponent per row / bus.
                for r in 0..self._r {
                    self.array.a_in[r].next = self.seq.a_in[r].val();
                    self.array.w_in[r].next = self.seq.w_in[r].val();
                }
                self.array.a_exp_in[0].next = self.seq.a_exp.val();
                self.array.w_exp_in[0].next = self.seq.w_exp.val();
                self.array.a_valid.next = self.seq.a_valid.val();
                self.array.a_first.next = self.seq.a_first.val();
                self.array.a_carry.next = self.seq.a_carry.val();
                self.array.a_last.next = self.seq.a_last.val();
                for c in 0..self._c {
                    self.array.w_load[c].next = self.seq.w_load[c].val();
                    self.array.psum_in[c].next = self.seq.psum_in[c].val();
                    self.array.acc_in[c].next = self.seq.acc_in[c].val();
                    self.seq.arr_acc_out[c].next = self.array.acc_out[c].val();
                    self.seq.arr_acc_sat[c].next = self.array.acc_sat[c].val();
                    self.seq.arr_psum_out[c].next = self.array.psum_out[c].val();
                    self.seq.arr_acc_valid[c].next = self.array.acc_valid[c].val();
                    self.seq.arr_psum_valid[c].next = self.array.psum_valid[c].val();
                }
            }
        }
    };
}

gemm_unit!(
    /// The GEMM stage unit of the `tiny` preset (4×4 array, 4-row segments).
    GemmUnit4x4,
    SystolicArray4x4
);
gemm_unit!(
    /// The GEMM stage unit of the `8x8` engine (8×8 array, 8-row segments).
    GemmUnit8x8,
    SystolicArray8x8
);
gemm_unit!(
    /// The GEMM stage unit of the `16x16` preset (16×16 array, 16-row segments).
    GemmUnit16x16,
    SystolicArray16x16
);
gemm_unit!(
    /// The GEMM stage unit of the `32x32` preset (32×32 array, 32-row segments).
    GemmUnit32x32,
    SystolicArray32x32
);
