//! The POST stage unit: bias, residual, activation, then quantization to OUT or `f32` back to ACC.
//!
//! It executes one `arch::isa::Post` instruction as `arch::golden` defines it, bit for bit, in exactly
//! `arch::timing::post_cycles` cycles: `post_latency + (m_size + bias) · n_blocks · bs/C`.
//!
//! # Order of work (one buffer read per cycle)
//! For each block column `j < n_blocks`: if `bias`, `bs/C` cycles read the bias `bias_base + j·bs + k·C + l`
//! (ACC read lanes `l < C`, chunk `k`) into a bias register of `bs` values; then for each row `m < m_size`,
//! `bs/C` cycles each read `C` accumulators `acc_base + m·acc_m_stride + j·bs + k·C + l` and the row's
//! residual block `res_base + m·res_m_stride + j` (the same ACT entry in each of the row's cycles: the ACT read
//! port is free during POST, and reading it again saves a register of `bs` mantissas). This is the cycle
//! model's count: `(m_size + bias)` reads of `bs/C` cycles per block column.
//!
//! # Pipeline (read issued in cycle `t`)
//! * `t`: ACC (and ACT) reads issued.
//! * `t + 1`: the data arrives; per lane `x ⊕ bias` ([`BiasAdd`]) and `⊕ residual` then the activation
//!   ([`ResidualAct`]), each `⊕` an [`AccumulateCore`] (the accumulator rule, `arch::accum::accumulate`, in
//!   RTL); saturated additions are counted on `sat_count` in this cycle. The results enter the [`BlockQuantizer`] (or, with `to_acc`, the
//!   ACC write registers).
//! * `t + 2`: with `to_acc`, the `C` results are written back in place (ACC write lanes `l < C`); otherwise,
//!   after a block's last chunk, the quantized block is written to OUT `out_base + m·out_m_stride + j`.
//!
//! The instruction is latched in its start cycle `S`; reads run from `S + 1` to `S + X`
//! (`X = (m_size + bias)·n_blocks·bs/C`), the last write is issued in `S + X + 2`, and `done` is raised in
//! `E − 1 = S + post_latency + X − 1`, so the unit needs `post_latency ≥ 3` (the presets have 4).
//!
//! # Errors
//! As the golden model, before any read or write: `BufferOutOfRange` if the tile's accumulators, the bias
//! (with `bias`), the residual blocks (with `residual`) or the output blocks (without `to_acc`) extend past
//! their buffers. The check is made in cycle `S + 1` from the latched fields: `error` pulses there with
//! `error_code`, nothing is read or written, `done` is not raised and the unit is idle again from `S + 2`.
//! An empty POST (`m_size = 0` or `n_blocks = 0`) checks nothing and only waits for its latency.
//!
//! # Layouts the ISA leaves open
//! The golden model processes rows in the outer loop; this unit processes block columns outermost (so each
//! bias is read once). The two agree whenever the instruction's writes do not alias its other accesses: no
//! two `(m, j)` write the same OUT entry, and with `to_acc` no written accumulator is read again as another
//! row's input or as bias. `arch::golden` does not reject aliasing POSTs today (unlike aliasing GEMMs); the
//! tests use non-aliasing layouts.
//!
//! The activation field's value 3 is rejected by instruction decode (`IsaError::BadField`); this unit, which
//! never sees it, would treat it as ReLU.
//!
//! # rust-hdl notes
//! The per-lane arithmetic lives in sub-blocks ([`BiasAdd`], [`ResidualAct`]) with scalar ports: rust-hdl
//! evaluates `bit_cast` arguments outside the kernel's loops, so they cannot index a lane, and Verilator finds
//! no false combinational loop through a lane this way. Chunk placement (`bias[k·C + l]`) binds `C` to a loop
//! variable with a one-iteration loop, as in [`crate::quant`].

use arch::isa::{post as field, Field};
use arch::regs::ErrorCode;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::accum::{AccumulateCore, EXP_BIAS};
use crate::quant::BlockQuantizer;
use crate::signed::signed_bit_cast_ext;
use crate::HdlError;

/// The sizes of one POST unit, derived from an [`EngineConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostGeometry {
    /// Values processed per cycle: the array's columns `C`.
    pub lanes: usize,
    /// The BFP block size `bs`.
    pub block_size: usize,
    /// Cycles per block, `bs / C`.
    pub chunks: usize,
    /// Lanes of the ACC ports, `A = max(C, B/4)`.
    pub acc_lanes: usize,
    /// Mantissa width in bits, sign included.
    pub mantissa_bits: u32,
}

impl PostGeometry {
    /// The unit a configuration needs, or why this generator cannot build it.
    pub fn for_config(cfg: &EngineConfig) -> Result<Self, HdlError> {
        cfg.validate().map_err(|e| HdlError::Config(e.to_string()))?;
        let bs = cfg.format.block_size();
        if cfg.rows > bs {
            return Err(HdlError::Unsupported(format!(
                "{} rows exceed the block size {bs}: the engine RTL supports one segment (R ≤ bs)",
                cfg.rows
            )));
        }
        if cfg.cols > cfg.rows {
            return Err(HdlError::Unsupported(format!("{} columns exceed the {} rows (C ≤ R)", cfg.cols, cfg.rows)));
        }
        if cfg.post_latency < 3 {
            return Err(HdlError::Unsupported(format!(
                "post_latency {}: the POST pipeline needs 3 cycles (read, add and quantize, write)",
                cfg.post_latency
            )));
        }
        Ok(PostGeometry {
            lanes: cfg.cols,
            block_size: bs,
            chunks: bs / cfg.cols,
            acc_lanes: cfg.cols.max(cfg.dma_bytes_per_cycle / 4),
            mantissa_bits: cfg.format.mantissa_bits(),
        })
    }
}

/// The position of an instruction field, checked to have the width the unit extracts.
fn lsb(f: Field, width: u32) -> Constant<Bits<9>> {
    assert_eq!(f.width, width, "POST field {} is {} bits wide, the unit extracts {width}", f.name, f.width);
    Constant::new((f.lsb as u64).into())
}

/// `y = x ⊕ bias` (the accumulator rule, an [`AccumulateCore`]) when `enable`, else `y = x`; `sat` flags a
/// saturated addition when `enable & count`. The bias is an `f32` (`+0` or normal), added as the exact term
/// `±(1.frac · 2^23) · 2^(b − 150)`.
#[derive(LogicBlock)]
pub struct BiasAdd {
    /// The accumulator value (`f32` bits, `+0` or normal).
    pub x: Signal<In, Bits<32>>,
    /// The bias value (`f32` bits, `+0` or normal).
    pub bias: Signal<In, Bits<32>>,
    /// Add the bias.
    pub enable: Signal<In, Bit>,
    /// Count a saturation on `sat` (the inputs are a real element).
    pub count: Signal<In, Bit>,
    /// The result.
    pub y: Signal<Out, Bits<32>>,
    /// The addition saturated (and was enabled and counted).
    pub sat: Signal<Out, Bit>,
    adder: AccumulateCore,
    k_frac: Constant<Bits<32>>,
    k_hidden: Constant<Bits<32>>,
    k_zero8: Constant<Bits<8>>,
    k_zero32: Constant<Bits<32>>,
    k_one32: Constant<Bits<32>>,
    k_term_exp: Constant<Bits<12>>,
    mag: Signal<Local, Bits<32>>,
}

impl Default for BiasAdd {
    fn default() -> Self {
        Self {
            x: Default::default(),
            bias: Default::default(),
            enable: Default::default(),
            count: Default::default(),
            y: Default::default(),
            sat: Default::default(),
            adder: Default::default(),
            k_frac: Constant::new(0x7f_ffff.into()),
            k_hidden: Constant::new(0x80_0000.into()),
            k_zero8: Constant::new(0.into()),
            k_zero32: Constant::new(0.into()),
            k_one32: Constant::new(1.into()),
            // An f32 with exponent field b is (1.frac · 2^23) · 2^(b − 150).
            k_term_exp: Constant::new(((EXP_BIAS - 150) as u64).into()),
            mag: Default::default(),
        }
    }
}

impl Logic for BiasAdd {
    #[hdl_gen]
    fn update(&mut self) {
        self.mag.next = (self.bias.val() & self.k_frac.val()) | self.k_hidden.val();
        if self.bias.val().get_bits::<8>(23) == self.k_zero8.val() {
            self.mag.next = self.k_zero32.val();
        }
        self.adder.acc.next = self.x.val();
        self.adder.mant.next = self.mag.val();
        if self.bias.val().get_bit(31) {
            self.adder.mant.next = (!self.mag.val()) + self.k_one32.val();
        }
        self.adder.exp.next = bit_cast::<12, 8>(self.bias.val().get_bits::<8>(23)) + self.k_term_exp.val();
        self.y.next = self.x.val();
        if self.enable.val() {
            self.y.next = self.adder.sum.val();
        }
        self.sat.next = self.enable.val() & self.count.val() & self.adder.saturated.val();
    }
}

/// `y = act(x ⊕ residual)`: the residual element `mantissa · 2^(code − bias − fraction_bits)` added by the
/// accumulator rule when `enable`, then the activation (0 none, 1 ReLU, 2 ReLU6) on the `+0`-or-normal
/// result, by its bit pattern. `sat` flags a saturated addition when `enable & count`.
#[derive(LogicBlock)]
pub struct ResidualAct<const M: usize> {
    /// The value so far (`f32` bits, `+0` or normal).
    pub x: Signal<In, Bits<32>>,
    /// The residual element's mantissa.
    pub res_mant: Signal<In, Signed<M>>,
    /// The residual block's exponent code.
    pub res_exp: Signal<In, Bits<8>>,
    /// Add the residual.
    pub enable: Signal<In, Bit>,
    /// The activation: 0 none, 1 ReLU, 2 ReLU6.
    pub activation: Signal<In, Bits<2>>,
    /// Count a saturation on `sat` (the inputs are a real element).
    pub count: Signal<In, Bit>,
    /// The result (`f32` bits, `+0` or normal).
    pub y: Signal<Out, Bits<32>>,
    /// The addition saturated (and was enabled and counted).
    pub sat: Signal<Out, Bit>,
    adder: AccumulateCore,
    k_zero32: Constant<Bits<32>>,
    k_term_exp: Constant<Bits<12>>,
    k_six: Constant<Bits<32>>,
    r32: Signal<Local, Signed<32>>,
    y2: Signal<Local, Bits<32>>,
}

impl<const M: usize> ResidualAct<M> {
    /// The residual adder for `format` (whose mantissa width must be `M`).
    pub fn new(format: &arch::bfp::BfpFormat) -> Self {
        assert_eq!(format.mantissa_bits() as usize, M, "ResidualAct<{M}> for {format}");
        Self {
            x: Default::default(),
            res_mant: Default::default(),
            res_exp: Default::default(),
            enable: Default::default(),
            activation: Default::default(),
            count: Default::default(),
            y: Default::default(),
            sat: Default::default(),
            adder: Default::default(),
            k_zero32: Constant::new(0.into()),
            // A residual element is mantissa · 2^(code − bias − fraction_bits).
            k_term_exp: Constant::new(((EXP_BIAS - format.exponent_bias() - format.fraction_bits()) as u64).into()),
            k_six: Constant::new((6.0f32.to_bits() as u64).into()),
            r32: Default::default(),
            y2: Default::default(),
        }
    }
}

impl<const M: usize> Logic for ResidualAct<M> {
    #[hdl_gen]
    fn update(&mut self) {
        self.r32.next = signed_bit_cast_ext::<32, M>(self.res_mant.val());
        self.adder.acc.next = self.x.val();
        self.adder.mant.next = unsigned_cast(self.r32.val());
        self.adder.exp.next = bit_cast::<12, 8>(self.res_exp.val()) + self.k_term_exp.val();
        self.y2.next = self.x.val();
        if self.enable.val() {
            self.y2.next = self.adder.sum.val();
        }
        self.y.next = self.y2.val();
        if (self.activation.val() != bits::<2>(0)) & self.y2.val().get_bit(31) {
            self.y.next = self.k_zero32.val();
        }
        if (self.activation.val() == bits::<2>(2)) & !self.y2.val().get_bit(31) & (self.y2.val() > self.k_six.val()) {
            self.y.next = self.k_six.val();
        }
        self.sat.next = self.enable.val() & self.count.val() & self.adder.saturated.val();
    }
}

/// Sequencer states.
const IDLE: u64 = 0;
const RUN: u64 = 1;
const DRAIN: u64 = 2;

/// The POST unit for `M`-bit mantissas (see the module documentation).
///
/// Ports follow the engine's stage-unit and buffer-port conventions: `start` with the raw instruction on
/// `inst` for one cycle; registered-read buffer ports (data on the read-data inputs the cycle after `rd_en`);
/// writes visible to reads issued the next cycle.
#[derive(LogicBlock)]
pub struct PostUnit<const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: back to idle, pending writes dropped.
    pub reset: Signal<In, Bit>,
    /// Start the instruction on `inst` (one cycle; ignored unless idle).
    pub start: Signal<In, Bit>,
    /// The 256-bit instruction (bit `i` is bit `i % 64` of word `i / 64`).
    pub inst: Signal<In, Bits<256>>,
    /// The instruction ends after this cycle (one-cycle pulse in `E − 1`).
    pub done: Signal<Out, Bit>,
    /// An error was detected (one-cycle pulse); the unit is idle afterwards.
    pub error: Signal<Out, Bit>,
    /// The `arch::regs::ErrorCode` of `error`.
    pub error_code: Signal<Out, Bits<4>>,
    /// Saturated bias and residual additions in this cycle.
    pub sat_count: Signal<Out, Bits<8>>,
    /// ACC read enables, one per lane (`A` lanes; lane `l` reads `base + l`).
    pub acc_rd_en: Vec<Signal<Out, Bit>>,
    /// ACC read addresses.
    pub acc_rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// ACC read data (`f32` bits), the cycle after the read.
    pub acc_rd_data: Vec<Signal<In, Bits<32>>>,
    /// ACC write enables, one per lane.
    pub acc_wr_en: Vec<Signal<Out, Bit>>,
    /// ACC write addresses.
    pub acc_wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// ACC write data (`f32` bits).
    pub acc_wr_data: Vec<Signal<Out, Bits<32>>>,
    /// ACT read enable (one lane).
    pub act_rd_en: Vec<Signal<Out, Bit>>,
    /// ACT read address.
    pub act_rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// ACT read data: exponent code.
    pub act_rd_exp: Vec<Signal<In, Bits<8>>>,
    /// ACT read data: the `bs` mantissas.
    pub act_rd_mant: Vec<Signal<In, Signed<M>>>,
    /// OUT write enable (one lane).
    pub out_wr_en: Vec<Signal<Out, Bit>>,
    /// OUT write address.
    pub out_wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// OUT write data: exponent code.
    pub out_wr_exp: Vec<Signal<Out, Bits<8>>>,
    /// OUT write data: the `bs` mantissas.
    pub out_wr_mant: Vec<Signal<Out, Signed<M>>>,
    // Field positions in the instruction (from `arch::isa::post`).
    k_lsb_activation: Constant<Bits<9>>,
    k_lsb_bias: Constant<Bits<9>>,
    k_lsb_residual: Constant<Bits<9>>,
    k_lsb_to_acc: Constant<Bits<9>>,
    k_lsb_round_away: Constant<Bits<9>>,
    k_lsb_acc_base: Constant<Bits<9>>,
    k_lsb_out_base: Constant<Bits<9>>,
    k_lsb_m_size: Constant<Bits<9>>,
    k_lsb_n_blocks: Constant<Bits<9>>,
    k_lsb_acc_m_stride: Constant<Bits<9>>,
    k_lsb_out_m_stride: Constant<Bits<9>>,
    k_lsb_bias_base: Constant<Bits<9>>,
    k_lsb_res_base: Constant<Bits<9>>,
    k_lsb_res_m_stride: Constant<Bits<9>>,
    // Other constants.
    k_idle: Constant<Bits<2>>,
    k_run: Constant<Bits<2>>,
    k_drain: Constant<Bits<2>>,
    k_last_chunk: Constant<Bits<8>>,
    k_lanes: Constant<Bits<16>>,
    k_bs: Constant<Bits<16>>,
    k_log_bs: Constant<Bits<8>>,
    k_acc_entries: Constant<Bits<40>>,
    k_act_entries: Constant<Bits<40>>,
    k_out_entries: Constant<Bits<40>>,
    k_drain_run: Constant<Bits<8>>,
    k_drain_empty: Constant<Bits<8>>,
    k_err_range: Constant<Bits<4>>,
    k_zero16: Constant<Bits<16>>,
    k_zero8: Constant<Bits<8>>,
    k_one8: Constant<Bits<8>>,
    // The latched instruction.
    f_activation: DFF<Bits<2>>,
    f_bias: DFF<Bit>,
    f_residual: DFF<Bit>,
    f_to_acc: DFF<Bit>,
    f_round_away: DFF<Bit>,
    f_acc_base: DFF<Bits<16>>,
    f_out_base: DFF<Bits<16>>,
    f_m_size: DFF<Bits<16>>,
    f_n_blocks: DFF<Bits<16>>,
    f_acc_m_stride: DFF<Bits<16>>,
    f_out_m_stride: DFF<Bits<16>>,
    f_bias_base: DFF<Bits<16>>,
    f_res_base: DFF<Bits<16>>,
    f_res_m_stride: DFF<Bits<16>>,
    // Sequencer: state, block column j, row m (or the bias phase), chunk k, running addresses.
    state: DFF<Bits<2>>,
    first: DFF<Bit>,
    drain: DFF<Bits<8>>,
    j: DFF<Bits<16>>,
    m: DFF<Bits<16>>,
    k: DFF<Bits<8>>,
    in_bias: DFF<Bit>,
    col_off: DFF<Bits<16>>,
    chunk_off: DFF<Bits<16>>,
    acc_row: DFF<Bits<16>>,
    res_row: DFF<Bits<16>>,
    out_row: DFF<Bits<16>>,
    // Stage 1: what the data arriving this cycle is.
    p1_valid: DFF<Bit>,
    p1_bias: DFF<Bit>,
    p1_k: DFF<Bits<8>>,
    p1_last: DFF<Bit>,
    p1_acc_addr: DFF<Bits<16>>,
    p1_out_addr: DFF<Bits<16>>,
    bias_reg: Vec<DFF<Bits<32>>>,
    // Stage 2: the writes.
    wr_valid: DFF<Bit>,
    wr_addr: DFF<Bits<16>>,
    wr_data: Vec<DFF<Bits<32>>>,
    out_addr: DFF<Bits<16>>,
    quant: BlockQuantizer<M>,
    bias_add: Vec<BiasAdd>,
    res_act: Vec<ResidualAct<M>>,
    // Combinational intermediates.
    issue: Signal<Local, Bit>,
    empty: Signal<Local, Bit>,
    range_bad: Signal<Local, Bit>,
    mm1: Signal<Local, Bits<16>>,
    cols: Signal<Local, Bits<40>>,
    acc_end: Signal<Local, Bits<40>>,
    bias_end: Signal<Local, Bits<40>>,
    res_end: Signal<Local, Bits<40>>,
    out_end: Signal<Local, Bits<40>>,
    rd_base: Signal<Local, Bits<16>>,
    tile_addr: Signal<Local, Bits<16>>,
    rows_pending: Signal<Local, Bit>,
    bsel: Vec<Signal<Local, Bits<32>>>,
    rsel: Vec<Signal<Local, Signed<M>>>,
    sat_mid: Vec<Signal<Local, Bits<8>>>,
    sat_run: Vec<Signal<Local, Bits<8>>>,
    _lanes: usize,
    _lanes_end: usize,
    _acc_lanes: usize,
    _chunks: usize,
    _bs: usize,
}

fn v<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

impl<const M: usize> PostUnit<M> {
    /// The POST unit of an engine configuration (whose mantissa width must be `M`), boxed: its signals are
    /// large.
    pub fn new(cfg: &EngineConfig) -> Result<Box<Self>, HdlError> {
        let g = PostGeometry::for_config(cfg)?;
        if g.mantissa_bits as usize != M {
            return Err(HdlError::Config(format!("PostUnit<{M}> for {}-bit mantissas", g.mantissa_bits)));
        }
        let f = cfg.format;
        let (c, bs, a) = (g.lanes, g.block_size, g.acc_lanes);
        let k40 = |n: usize| Constant::new((n as u64).into());
        Ok(Box::new(Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            inst: Default::default(),
            done: Default::default(),
            error: Default::default(),
            error_code: Default::default(),
            sat_count: Default::default(),
            acc_rd_en: v(a),
            acc_rd_addr: v(a),
            acc_rd_data: v(a),
            acc_wr_en: v(a),
            acc_wr_addr: v(a),
            acc_wr_data: v(a),
            act_rd_en: v(1),
            act_rd_addr: v(1),
            act_rd_exp: v(1),
            act_rd_mant: v(bs),
            out_wr_en: v(1),
            out_wr_addr: v(1),
            out_wr_exp: v(1),
            out_wr_mant: v(bs),
            k_lsb_activation: lsb(field::ACTIVATION, 2),
            k_lsb_bias: lsb(field::BIAS, 1),
            k_lsb_residual: lsb(field::RESIDUAL, 1),
            k_lsb_to_acc: lsb(field::TO_ACC, 1),
            k_lsb_round_away: lsb(field::ROUND_AWAY, 1),
            k_lsb_acc_base: lsb(field::ACC_BASE, 16),
            k_lsb_out_base: lsb(field::OUT_BASE, 16),
            k_lsb_m_size: lsb(field::M_SIZE, 16),
            k_lsb_n_blocks: lsb(field::N_BLOCKS, 16),
            k_lsb_acc_m_stride: lsb(field::ACC_M_STRIDE, 16),
            k_lsb_out_m_stride: lsb(field::OUT_M_STRIDE, 16),
            k_lsb_bias_base: lsb(field::BIAS_BASE, 16),
            k_lsb_res_base: lsb(field::RES_BASE, 16),
            k_lsb_res_m_stride: lsb(field::RES_M_STRIDE, 16),
            k_idle: Constant::new(IDLE.into()),
            k_run: Constant::new(RUN.into()),
            k_drain: Constant::new(DRAIN.into()),
            k_last_chunk: Constant::new(((g.chunks - 1) as u64).into()),
            k_lanes: Constant::new((c as u64).into()),
            k_bs: Constant::new((bs as u64).into()),
            k_log_bs: Constant::new((bs.trailing_zeros() as u64).into()),
            k_acc_entries: k40(cfg.acc_entries),
            k_act_entries: k40(cfg.act_entries),
            k_out_entries: k40(cfg.out_entries),
            // Done in E − 1: post_latency − 1 cycles after the last read (drain counts down to 0 from
            // post_latency − 2), or post_latency − 1 cycles after the start of an empty POST.
            k_drain_run: Constant::new(((cfg.post_latency - 2) as u64).into()),
            k_drain_empty: Constant::new(((cfg.post_latency - 3) as u64).into()),
            k_err_range: Constant::new((ErrorCode::BufferOutOfRange as u64).into()),
            k_zero16: Constant::new(0.into()),
            k_zero8: Constant::new(0.into()),
            k_one8: Constant::new(1.into()),
            f_activation: Default::default(),
            f_bias: Default::default(),
            f_residual: Default::default(),
            f_to_acc: Default::default(),
            f_round_away: Default::default(),
            f_acc_base: Default::default(),
            f_out_base: Default::default(),
            f_m_size: Default::default(),
            f_n_blocks: Default::default(),
            f_acc_m_stride: Default::default(),
            f_out_m_stride: Default::default(),
            f_bias_base: Default::default(),
            f_res_base: Default::default(),
            f_res_m_stride: Default::default(),
            state: Default::default(),
            first: Default::default(),
            drain: Default::default(),
            j: Default::default(),
            m: Default::default(),
            k: Default::default(),
            in_bias: Default::default(),
            col_off: Default::default(),
            chunk_off: Default::default(),
            acc_row: Default::default(),
            res_row: Default::default(),
            out_row: Default::default(),
            p1_valid: Default::default(),
            p1_bias: Default::default(),
            p1_k: Default::default(),
            p1_last: Default::default(),
            p1_acc_addr: Default::default(),
            p1_out_addr: Default::default(),
            bias_reg: v(bs),
            wr_valid: Default::default(),
            wr_addr: Default::default(),
            wr_data: v(c),
            out_addr: Default::default(),
            quant: BlockQuantizer::new(&f, c),
            bias_add: v(c),
            res_act: (0..c).map(|_| ResidualAct::new(&f)).collect(),
            issue: Default::default(),
            empty: Default::default(),
            range_bad: Default::default(),
            mm1: Default::default(),
            cols: Default::default(),
            acc_end: Default::default(),
            bias_end: Default::default(),
            res_end: Default::default(),
            out_end: Default::default(),
            rd_base: Default::default(),
            tile_addr: Default::default(),
            rows_pending: Default::default(),
            bsel: v(c),
            rsel: v(c),
            sat_mid: v(c),
            sat_run: v(c + 1),
            _lanes: c,
            _lanes_end: c + 1,
            _acc_lanes: a,
            _chunks: g.chunks,
            _bs: bs,
        }))
    }
}

impl<const M: usize> Logic for PostUnit<M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            f_activation,
            f_bias,
            f_residual,
            f_to_acc,
            f_round_away,
            f_acc_base,
            f_out_base,
            f_m_size,
            f_n_blocks,
            f_acc_m_stride,
            f_out_m_stride,
            f_bias_base,
            f_res_base,
            f_res_m_stride,
            state,
            first,
            drain,
            j,
            m,
            k,
            in_bias,
            col_off,
            chunk_off,
            acc_row,
            res_row,
            out_row,
            p1_valid,
            p1_bias,
            p1_k,
            p1_last,
            p1_acc_addr,
            p1_out_addr,
            wr_valid,
            wr_addr,
            out_addr
        );
        for i in 0..self._bs {
            self.bias_reg[i].clock.next = self.clock.val();
            self.bias_reg[i].d.next = self.bias_reg[i].q.val();
        }
        for l in 0..self._lanes {
            self.wr_data[l].clock.next = self.clock.val();
            self.wr_data[l].d.next = self.wr_data[l].q.val();
        }
        self.quant.clock.next = self.clock.val();
        self.quant.reset.next = self.reset.val();
        self.done.next = false;
        self.error.next = false;
        self.error_code.next = 0.into();

        // Start: latch the instruction's fields and set the sequencer to its first read.
        if self.start.val() & (self.state.q.val() == self.k_idle.val()) {
            self.f_activation.d.next = self.inst.val().get_bits::<2>(self.k_lsb_activation.val().index());
            self.f_bias.d.next = self.inst.val().get_bit(self.k_lsb_bias.val().index());
            self.f_residual.d.next = self.inst.val().get_bit(self.k_lsb_residual.val().index());
            self.f_to_acc.d.next = self.inst.val().get_bit(self.k_lsb_to_acc.val().index());
            self.f_round_away.d.next = self.inst.val().get_bit(self.k_lsb_round_away.val().index());
            self.f_acc_base.d.next = self.inst.val().get_bits::<16>(self.k_lsb_acc_base.val().index());
            self.f_out_base.d.next = self.inst.val().get_bits::<16>(self.k_lsb_out_base.val().index());
            self.f_m_size.d.next = self.inst.val().get_bits::<16>(self.k_lsb_m_size.val().index());
            self.f_n_blocks.d.next = self.inst.val().get_bits::<16>(self.k_lsb_n_blocks.val().index());
            self.f_acc_m_stride.d.next = self.inst.val().get_bits::<16>(self.k_lsb_acc_m_stride.val().index());
            self.f_out_m_stride.d.next = self.inst.val().get_bits::<16>(self.k_lsb_out_m_stride.val().index());
            self.f_bias_base.d.next = self.inst.val().get_bits::<16>(self.k_lsb_bias_base.val().index());
            self.f_res_base.d.next = self.inst.val().get_bits::<16>(self.k_lsb_res_base.val().index());
            self.f_res_m_stride.d.next = self.inst.val().get_bits::<16>(self.k_lsb_res_m_stride.val().index());
            self.state.d.next = self.k_run.val();
            self.first.d.next = true;
            self.j.d.next = self.k_zero16.val();
            self.m.d.next = self.k_zero16.val();
            self.k.d.next = self.k_zero8.val();
            self.col_off.d.next = self.k_zero16.val();
            self.chunk_off.d.next = self.k_zero16.val();
            self.in_bias.d.next = self.inst.val().get_bit(self.k_lsb_bias.val().index());
            self.acc_row.d.next = self.inst.val().get_bits::<16>(self.k_lsb_acc_base.val().index());
            self.res_row.d.next = self.inst.val().get_bits::<16>(self.k_lsb_res_base.val().index());
            self.out_row.d.next = self.inst.val().get_bits::<16>(self.k_lsb_out_base.val().index());
        }

        // The golden model's range checks (before anything is read or written), from the latched fields.
        self.mm1.next = self.f_m_size.q.val() - bits::<16>(1);
        self.cols.next = bit_cast::<40, 16>(self.f_n_blocks.q.val()) << self.k_log_bs.val();
        self.acc_end.next = bit_cast::<40, 16>(self.f_acc_base.q.val())
            + bit_cast::<40, 32>(self.mm1.val() * self.f_acc_m_stride.q.val())
            + self.cols.val();
        self.bias_end.next = bit_cast::<40, 16>(self.f_bias_base.q.val()) + self.cols.val();
        self.res_end.next = bit_cast::<40, 16>(self.f_res_base.q.val())
            + bit_cast::<40, 32>(self.mm1.val() * self.f_res_m_stride.q.val())
            + bit_cast::<40, 16>(self.f_n_blocks.q.val());
        self.out_end.next = bit_cast::<40, 16>(self.f_out_base.q.val())
            + bit_cast::<40, 32>(self.mm1.val() * self.f_out_m_stride.q.val())
            + bit_cast::<40, 16>(self.f_n_blocks.q.val());
        self.empty.next =
            (self.f_m_size.q.val() == self.k_zero16.val()) | (self.f_n_blocks.q.val() == self.k_zero16.val());
        self.range_bad.next = (self.acc_end.val() > self.k_acc_entries.val())
            | (self.f_bias.q.val() & (self.bias_end.val() > self.k_acc_entries.val()))
            | (self.f_residual.q.val() & (self.res_end.val() > self.k_act_entries.val()))
            | (!self.f_to_acc.q.val() & (self.out_end.val() > self.k_out_entries.val()));

        // Run: one chunk read per cycle.
        self.issue.next = (self.state.q.val() == self.k_run.val())
            & !(self.first.q.val() & (self.empty.val() | self.range_bad.val()));
        if (self.state.q.val() == self.k_run.val()) & self.first.q.val() {
            self.first.d.next = false;
            if self.empty.val() {
                self.state.d.next = self.k_drain.val();
                self.drain.d.next = self.k_drain_empty.val();
            } else if self.range_bad.val() {
                self.state.d.next = self.k_idle.val();
                self.error.next = true;
                self.error_code.next = self.k_err_range.val();
            }
        }
        self.tile_addr.next = self.acc_row.q.val() + self.col_off.q.val() + self.chunk_off.q.val();
        self.rd_base.next = self.tile_addr.val();
        if self.in_bias.q.val() {
            self.rd_base.next = self.f_bias_base.q.val() + self.col_off.q.val() + self.chunk_off.q.val();
        }
        for l in 0..self._lanes {
            self.acc_rd_en[l].next = self.issue.val();
            self.acc_rd_addr[l].next = self.rd_base.val() + l.to_bits();
        }
        for l in self._lanes..self._acc_lanes {
            self.acc_rd_en[l].next = false;
            self.acc_rd_addr[l].next = self.k_zero16.val();
        }
        self.act_rd_en[0].next = self.issue.val() & self.f_residual.q.val() & !self.in_bias.q.val();
        self.act_rd_addr[0].next = self.res_row.q.val() + self.j.q.val();
        self.p1_valid.d.next = self.issue.val();
        self.p1_bias.d.next = self.in_bias.q.val();
        self.p1_k.d.next = self.k.q.val();
        self.p1_last.d.next = self.k.q.val() == self.k_last_chunk.val();
        self.p1_acc_addr.d.next = self.tile_addr.val();
        self.p1_out_addr.d.next = self.out_row.q.val() + self.j.q.val();
        // Advance: chunk, then bias phase or row, then block column.
        self.rows_pending.next = self.m.q.val() != self.mm1.val();
        if self.issue.val() {
            self.k.d.next = self.k.q.val() + self.k_one8.val();
            self.chunk_off.d.next = self.chunk_off.q.val() + self.k_lanes.val();
            if self.k.q.val() == self.k_last_chunk.val() {
                self.k.d.next = self.k_zero8.val();
                self.chunk_off.d.next = self.k_zero16.val();
                if self.in_bias.q.val() {
                    self.in_bias.d.next = false;
                } else if self.rows_pending.val() {
                    self.m.d.next = self.m.q.val() + bits::<16>(1);
                    self.acc_row.d.next = self.acc_row.q.val() + self.f_acc_m_stride.q.val();
                    self.res_row.d.next = self.res_row.q.val() + self.f_res_m_stride.q.val();
                    self.out_row.d.next = self.out_row.q.val() + self.f_out_m_stride.q.val();
                } else {
                    self.m.d.next = self.k_zero16.val();
                    self.acc_row.d.next = self.f_acc_base.q.val();
                    self.res_row.d.next = self.f_res_base.q.val();
                    self.out_row.d.next = self.f_out_base.q.val();
                    self.j.d.next = self.j.q.val() + bits::<16>(1);
                    self.col_off.d.next = self.col_off.q.val() + self.k_bs.val();
                    self.in_bias.d.next = self.f_bias.q.val();
                    if self.j.q.val() == (self.f_n_blocks.q.val() - bits::<16>(1)) {
                        self.state.d.next = self.k_drain.val();
                        self.drain.d.next = self.k_drain_run.val();
                    }
                }
            }
        }
        // Drain: wait for the pipeline and the cycle count, then done in E − 1.
        if self.state.q.val() == self.k_drain.val() {
            if self.drain.q.val() == self.k_zero8.val() {
                self.done.next = true;
                self.state.d.next = self.k_idle.val();
            } else {
                self.drain.d.next = self.drain.q.val() - self.k_one8.val();
            }
        }

        // Stage 1: the data of the reads issued last cycle. Element k·C + l of a block is lane l of chunk k
        // (`cc` is C, bound by a one-iteration loop so that rust-hdl can evaluate the index).
        for l in 0..self._lanes {
            self.bsel[l].next = self.bias_reg[l].q.val();
            self.rsel[l].next = self.act_rd_mant[l].val();
        }
        for cc in self._lanes..self._lanes_end {
            for kk in 0..self._chunks {
                for l in 0..self._lanes {
                    if self.p1_k.q.val() == kk.to_bits() {
                        self.bsel[l].next = self.bias_reg[kk * cc + l].q.val();
                        self.rsel[l].next = self.act_rd_mant[kk * cc + l].val();
                        if self.p1_valid.q.val() & self.p1_bias.q.val() {
                            self.bias_reg[kk * cc + l].d.next = self.acc_rd_data[l].val();
                        }
                    }
                }
            }
        }
        self.sat_run[0].next = self.k_zero8.val();
        for l in 0..self._lanes {
            self.bias_add[l].x.next = self.acc_rd_data[l].val();
            self.bias_add[l].bias.next = self.bsel[l].val();
            self.bias_add[l].enable.next = self.f_bias.q.val();
            self.res_act[l].x.next = self.bias_add[l].y.val();
            self.res_act[l].res_mant.next = self.rsel[l].val();
            self.res_act[l].res_exp.next = self.act_rd_exp[0].val();
            self.res_act[l].enable.next = self.f_residual.q.val();
            self.res_act[l].activation.next = self.f_activation.q.val();
            // Saturated additions of rows (not of the bias phase) are counted.
            self.bias_add[l].count.next = self.p1_valid.q.val() & !self.p1_bias.q.val();
            self.res_act[l].count.next = self.p1_valid.q.val() & !self.p1_bias.q.val();
            self.sat_mid[l].next = self.sat_run[l].val();
            if self.bias_add[l].sat.val() {
                self.sat_mid[l].next = self.sat_run[l].val() + self.k_one8.val();
            }
            self.sat_run[l + 1].next = self.sat_mid[l].val();
            if self.res_act[l].sat.val() {
                self.sat_run[l + 1].next = self.sat_mid[l].val() + self.k_one8.val();
            }
            self.wr_data[l].d.next = self.res_act[l].y.val();
            self.quant.in_values[l].next = self.res_act[l].y.val();
        }
        self.sat_count.next = self.sat_run[0].val();
        for l in 0..self._lanes {
            self.sat_count.next = self.sat_run[l + 1].val();
        }
        self.wr_valid.d.next = self.p1_valid.q.val() & !self.p1_bias.q.val() & self.f_to_acc.q.val();
        self.wr_addr.d.next = self.p1_acc_addr.q.val();
        self.quant.in_valid.next = self.p1_valid.q.val() & !self.p1_bias.q.val() & !self.f_to_acc.q.val();
        self.quant.in_chunk.next = self.p1_k.q.val();
        self.quant.round_away.next = self.f_round_away.q.val();
        if self.p1_valid.q.val() & !self.p1_bias.q.val() & self.p1_last.q.val() {
            self.out_addr.d.next = self.p1_out_addr.q.val();
        }

        // Stage 2: the writes.
        for l in 0..self._lanes {
            self.acc_wr_en[l].next = self.wr_valid.q.val();
            self.acc_wr_addr[l].next = self.wr_addr.q.val() + l.to_bits();
            self.acc_wr_data[l].next = self.wr_data[l].q.val();
        }
        for l in self._lanes..self._acc_lanes {
            self.acc_wr_en[l].next = false;
            self.acc_wr_addr[l].next = self.k_zero16.val();
            self.acc_wr_data[l].next = self.wr_data[0].q.val();
        }
        self.out_wr_en[0].next = self.quant.out_valid.val();
        self.out_wr_addr[0].next = self.out_addr.q.val();
        self.out_wr_exp[0].next = self.quant.exp_code.val();
        for i in 0..self._bs {
            self.out_wr_mant[i].next = self.quant.mant[i].val();
        }

        if self.reset.val() {
            self.state.d.next = self.k_idle.val();
            self.first.d.next = false;
            self.p1_valid.d.next = false;
            self.wr_valid.d.next = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_configuration() {
        for (name, cfg) in EngineConfig::presets() {
            let g = PostGeometry::for_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(g.lanes * g.chunks, cfg.format.block_size(), "{name}");
            assert_eq!(g.acc_lanes, cfg.cols.max(cfg.dma_bytes_per_cycle / 4), "{name}");
            assert!(g.acc_lanes >= g.lanes, "{name}");
        }
        let wide = EngineConfig { rows: 8, cols: 16, ..EngineConfig::tiny() };
        assert!(matches!(PostGeometry::for_config(&wide), Err(HdlError::Unsupported(_))));
    }
}
