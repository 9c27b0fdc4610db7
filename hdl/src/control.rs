//! The engine's control: instruction fetch, decode, in-order dispatch into three stage queues, dependency
//! tokens, the accumulator-port rule and FINISH — `arch::timing::Clock` in RTL.
//!
//! # Cycle 0
//! The doorbell is a one-cycle pulse on [`Control::doorbell`] (with the ring registers on their inputs);
//! **cycle 0 is the cycle after it**, the first cycle [`Control::busy`] is high and the cycle the first fetch
//! burst is requested. Every cycle number below (and in `arch::timing`) counts from there. `busy` stays high
//! through cycle `E − 1`, `E` being FINISH's end, so a counter of `busy` cycles equals the golden model's
//! `cycles`; [`Control::finished`] pulses in cycle `E − 1`.
//!
//! # Fetch
//! The ring is read through the control's own DMA read channel (`fetch_*`, the memory-port convention of
//! the engine: requests accepted every cycle, the beats of a request back to back, `L` cycles after the
//! request for the first one). A burst of `n = min(fetch_burst, instructions left, slots before the ring's
//! end, slots left in the DMA window)` instructions is requested in cycle 0 and then in the cycle after the
//! previous burst's last instruction was dispatched; its `⌈32n / B⌉` beats shift into a fetch buffer, and
//! the first instruction is dispatched in the cycle after the last beat (`L + ⌈32n/B⌉` after the request).
//! A burst that would start outside the DMA window fails with `DmaOutOfBounds` at that instruction's index
//! (the golden model checks every slot; for valid programs the window term never limits a burst).
//!
//! # Decode and dispatch
//! One instruction per cycle, in order. Decoding follows docs/architecture.md "Encoding": unknown opcode,
//! reserved bits (the masks are built from [`arch::isa::layout`]), bad field values and illegal token flags
//! (the buffer, padding, activation and stage rules are sampled from [`arch::isa::Instruction::validate`],
//! the flag rules from [`arch::timing::token_queue`]) are `IllegalInstruction`; so is a FINISH before the
//! last slot or a last slot that is not FINISH (reported, like the golden model, at the last index). Then
//! the program-order token counters check `TokenUnderflow` (a pop with no earlier push) and, at FINISH,
//! `UnbalancedTokens`. A valid instruction enters its stage's queue ([`StageQueue`], `queue_depth` entries)
//! when the queue has room or its oldest entry starts in the same cycle (the queue-slot rule); a stalled
//! instruction stalls all later ones.
//!
//! # Start and end
//! A queued instruction starts (its stage's `stage_start` pulse, the instruction on `stage_inst`) in the
//! first cycle in which its stage is idle, every queue it pops holds a token, and — for users of the
//! accumulator port — every earlier port user in program order has ended. The port users are the compute
//! stage's instructions and LOAD into / STORE from ACC ([`arch::timing::uses_acc_port`]); they take tickets
//! in program order at dispatch and start only when the count of ended port users equals their ticket,
//! which is exactly the rule of the timing module. An instruction may start in its dispatch cycle (the queue
//! is bypassed). It ends when its unit raises `stage_done` (in cycle `E − 1`); its stage is free, its pushes
//! are visible and the port moves on in cycle `E`. SYNC is executed here: it ends one cycle after it starts.
//! FINISH starts when every queue is empty and every stage idle (and it has been dispatched).
//!
//! # Tokens
//! Two sets of four counters, indexed like `arch::timing::QUEUE_NAMES`: *program-order* counters, updated
//! at dispatch (underflow, unbalanced), and *real-time* counters, incremented at ends and decremented at
//! starts (pops wait for them). A real-time counter above `2^16 − 1` (`arch::regs::TOKEN_COUNTER_BITS`)
//! sets a sticky overflow that FINISH reports as `TokenOverflow`, after the unbalanced check, as the golden
//! model does; the counters themselves are 32 bits wide so that the program still runs exactly as the golden
//! model times it (programs are shorter than `2^32` instructions).
//!
//! # Errors
//! The first error stops the control: nothing more is dispatched or started, `error` pulses with
//! `error_code` (`arch::regs::ErrorCode`) and `error_pc` (the instruction's index from the doorbell's head),
//! `errored` stays high and `busy` drops, until `reset`. Errors of one cycle are ordered by index. A bad ring
//! (size not a power of two, head or tail not below it, base not 32-byte aligned) or an empty program is
//! `IllegalInstruction` at index 0 in cycle 0. Stage units report their own errors (`stage_error`), at the
//! index of the instruction they run.

use arch::isa::{
    self, header, layout, mem, post, sync, Activation, Buffer, Gemm, Instruction, Load, Op, Opcode, Stage,
};
use arch::regs::ErrorCode;
use arch::timing::{token_queue, uses_acc_port};
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::HdlError;

/// Largest `queue_depth` the control is built for (its queues' occupancy is a 32-bit thermometer code).
pub const MAX_QUEUE_DEPTH: usize = 32;

/// The stages, in the order of `arch::isa::Stage` (the index of the `stage_*` port vectors).
pub const STAGES: usize = 3;

/// The token queues, in the order of `arch::timing::QUEUE_NAMES`.
pub const TOKEN_QUEUES: usize = 4;

/// One stage's instruction queue: a first-in first-out shift register of `depth` instructions with their
/// tags, the oldest always in entry 0 (so the start logic looks at one fixed entry).
///
/// `push` writes the first free entry (after this cycle's `pop`, so a full queue accepts a push in the
/// cycle its head leaves); `pop` shifts every entry down one. Outputs are registered state only.
#[derive(LogicBlock)]
pub struct StageQueue {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: empties the queue.
    pub reset: Signal<In, Bit>,
    /// Append `push_inst` / `push_tag`.
    pub push: Signal<In, Bit>,
    /// The instruction to append.
    pub push_inst: Signal<In, Bits<256>>,
    /// Its tag: the instruction's index (bits 31..0) and its accumulator-port ticket (bits 47..32).
    pub push_tag: Signal<In, Bits<48>>,
    /// Remove the head.
    pub pop: Signal<In, Bit>,
    /// The queue is not empty.
    pub head_valid: Signal<Out, Bit>,
    /// The oldest instruction.
    pub head_inst: Signal<Out, Bits<256>>,
    /// The oldest instruction's tag.
    pub head_tag: Signal<Out, Bits<48>>,
    /// All `depth` entries are taken.
    pub full: Signal<Out, Bit>,
    inst: Vec<DFF<Bits<256>>>,
    tag: Vec<DFF<Bits<48>>>,
    occ: DFF<Bits<32>>,
    occ_s: Signal<Local, Bits<32>>,
    k_last: Constant<Bits<32>>,
    _depth: usize,
}

impl StageQueue {
    /// A queue of `depth` entries (`2 ≤ depth ≤` [`MAX_QUEUE_DEPTH`]).
    pub fn new(depth: usize) -> Self {
        assert!((1..=MAX_QUEUE_DEPTH).contains(&depth), "queue depth {depth}");
        Self {
            clock: Default::default(),
            reset: Default::default(),
            push: Default::default(),
            push_inst: Default::default(),
            push_tag: Default::default(),
            pop: Default::default(),
            head_valid: Default::default(),
            head_inst: Default::default(),
            head_tag: Default::default(),
            full: Default::default(),
            inst: (0..depth).map(|_| Default::default()).collect(),
            tag: (0..depth).map(|_| Default::default()).collect(),
            occ: Default::default(),
            occ_s: Default::default(),
            k_last: Constant::new((1u64 << (depth - 1)).into()),
            _depth: depth,
        }
    }
}

impl Logic for StageQueue {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, occ);
        for i in 0..self._depth {
            self.inst[i].clock.next = self.clock.val();
            self.tag[i].clock.next = self.clock.val();
            self.inst[i].d.next = self.inst[i].q.val();
            self.tag[i].d.next = self.tag[i].q.val();
        }
        // Occupancy is a thermometer code: bit i set when entry i holds an instruction.
        self.occ_s.next = self.occ.q.val();
        if self.pop.val() {
            self.occ_s.next = self.occ.q.val() >> 1;
            for i in 1..self._depth {
                self.inst[i - 1].d.next = self.inst[i].q.val();
                self.tag[i - 1].d.next = self.tag[i].q.val();
            }
        }
        self.occ.d.next = self.occ_s.val();
        if self.push.val() {
            if !self.occ_s.val().get_bit(0) {
                self.inst[0].d.next = self.push_inst.val();
                self.tag[0].d.next = self.push_tag.val();
            }
            for i in 1..self._depth {
                if self.occ_s.val().get_bit(i - 1) & !self.occ_s.val().get_bit(i) {
                    self.inst[i].d.next = self.push_inst.val();
                    self.tag[i].d.next = self.push_tag.val();
                }
            }
            self.occ.d.next = (self.occ_s.val() << 1) | 1;
        }
        if self.reset.val() {
            self.occ.d.next = 0.into();
        }
        self.head_valid.next = self.occ.q.val().get_bit(0);
        self.head_inst.next = self.inst[0].q.val();
        self.head_tag.next = self.tag[0].q.val();
        self.full.next = (self.occ.q.val() & self.k_last.val()).any();
    }
}

/// The fetch geometry of a configuration: beat width and fetch-buffer size the [`Control`] type needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchGeometry {
    /// Bits per memory beat, `8·B` (the `W` parameter of [`Control`]).
    pub beat_bits: usize,
    /// Bits of the fetch buffer: a burst's beats rounded up, `⌈32·fetch_burst / B⌉ · 8B` (the `F` parameter).
    pub buffer_bits: usize,
}

impl FetchGeometry {
    /// The geometry of `cfg`, or why the control cannot be built for it.
    pub fn for_config(cfg: &EngineConfig) -> Result<Self, HdlError> {
        cfg.validate().map_err(|e| HdlError::Config(e.to_string()))?;
        if cfg.queue_depth > MAX_QUEUE_DEPTH {
            return Err(HdlError::Unsupported(format!(
                "queue_depth {} exceeds the control's {MAX_QUEUE_DEPTH}-entry queues",
                cfg.queue_depth
            )));
        }
        if cfg.dma_latency < 1 {
            return Err(HdlError::Unsupported("dma_latency 0: fetch beats are registered".into()));
        }
        let b = cfg.dma_bytes_per_cycle;
        let burst_bytes = (cfg.fetch_burst * isa::INSTRUCTION_BYTES).div_ceil(b) * b;
        Ok(FetchGeometry { beat_bits: 8 * b, buffer_bits: 8 * burst_bytes })
    }
}

/// The control for the `tiny` preset (16-byte beats, bursts of 4).
pub type ControlTiny = Control<128, 1024>;

/// The control for the `16x16` and `32x32` presets (64-byte beats, bursts of 8).
pub type ControlWide = Control<512, 2048>;

/// The control unit: fetch, decode, dispatch, tokens, FINISH (see the [module documentation](self)).
///
/// `W` is the memory beat width in bits (`8·B`) and `F` the fetch buffer's width; [`FetchGeometry`] gives
/// both for a configuration, [`Control::new`] checks them. Stage ports are vectors indexed by
/// `arch::isa::Stage as usize` (0 load, 1 compute, 2 store).
#[derive(LogicBlock)]
pub struct Control<const W: usize, const F: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (`CTRL.RESET`): aborts the program, clears the error, tokens and `cq_head`.
    pub reset: Signal<In, Bit>,
    /// Doorbell pulse: start the program in slots `cq_head .. tail` (ignored while busy or in error).
    pub doorbell: Signal<In, Bit>,
    /// The ring index one past the program's FINISH (with `doorbell`).
    pub tail: Signal<In, Bits<32>>,
    /// `DMA_BASE`: IOVA of the DMA window (sampled at the doorbell).
    pub dma_base: Signal<In, Bits<64>>,
    /// `DMA_SIZE`: bytes of the DMA window (sampled at the doorbell).
    pub dma_size: Signal<In, Bits<32>>,
    /// `CQ_BASE`: byte offset of the ring in the window (sampled at the doorbell).
    pub cq_base: Signal<In, Bits<32>>,
    /// `CQ_SIZE`: ring slots (sampled at the doorbell).
    pub cq_size: Signal<In, Bits<32>>,
    /// Executing a program (cycles 0 to FINISH's end − 1).
    pub busy: Signal<Out, Bit>,
    /// FINISH's last cycle (the program completed): set `IRQ_STATUS.DONE` on it.
    pub finished: Signal<Out, Bit>,
    /// An error stopped the program this cycle.
    pub error: Signal<Out, Bit>,
    /// Stopped on an error (until reset).
    pub errored: Signal<Out, Bit>,
    /// The error's `ErrorCode` (held while `errored`).
    pub error_code: Signal<Out, Bits<4>>,
    /// The failing instruction's index from the doorbell's head (held while `errored`).
    pub error_pc: Signal<Out, Bits<32>>,
    /// `CQ_HEAD`: the next ring slot to fetch.
    pub cq_head: Signal<Out, Bits<32>>,
    /// Fetch channel: a read request this cycle.
    pub fetch_req_valid: Signal<Out, Bit>,
    /// Fetch channel: the request's byte IOVA.
    pub fetch_req_addr: Signal<Out, Bits<64>>,
    /// Fetch channel: the request's length in bytes.
    pub fetch_req_len: Signal<Out, Bits<32>>,
    /// Fetch channel: a data beat arrives.
    pub fetch_beat_valid: Signal<In, Bit>,
    /// Fetch channel: the beat (byte i at bits 8i+7..8i).
    pub fetch_beat_data: Signal<In, Bits<W>>,
    /// Per stage: start the instruction on `stage_inst` (one-cycle pulse).
    pub stage_start: Vec<Signal<Out, Bit>>,
    /// Per stage: the instruction being started (valid with `stage_start`).
    pub stage_inst: Vec<Signal<Out, Bits<256>>>,
    /// Per stage: the unit's instruction ends next cycle (its cycle `E − 1`).
    pub stage_done: Vec<Signal<In, Bit>>,
    /// Per stage: the unit's instruction failed.
    pub stage_error: Vec<Signal<In, Bit>>,
    /// Per stage: the failure's `ErrorCode`.
    pub stage_error_code: Vec<Signal<In, Bits<4>>>,
    /// Per stage: the stage executes an instruction this cycle (for the `*_BUSY` counters).
    pub stage_active: Vec<Signal<Out, Bit>>,
    /// Instructions ending this cycle, FINISH included (for `INSTRUCTIONS`).
    pub retired: Signal<Out, Bits<3>>,
    /// An instruction is dispatched this cycle (observability: the timeline's dispatch cycles).
    pub dispatched: Signal<Out, Bit>,
    /// The index of the instruction dispatched (valid with `dispatched`).
    pub dispatch_pc: Signal<Out, Bits<32>>,
    /// The instruction-trace port (`arch::trace`): this cycle's dispatch, starts, ends and FINISH, so that a
    /// simulator times every instruction; nothing in the engine reads it.
    pub trace: Signal<Out, Bits<16>>,

    // Program state.
    running: DFF<Bit>,
    ring_bad: DFF<Bit>,
    err: DFF<Bit>,
    err_code: DFF<Bits<4>>,
    err_pc: DFF<Bits<32>>,
    dma_base_r: DFF<Bits<64>>,
    win_r: DFF<Bits<32>>,
    base_r: DFF<Bits<32>>,
    mask_r: DFF<Bits<32>>,
    head: DFF<Bits<32>>,
    count: DFF<Bits<32>>,
    fleft: DFF<Bits<32>>,
    fpc: DFF<Bits<32>>,
    dpc: DFF<Bits<32>>,
    need_req: DFF<Bit>,
    bleft: DFF<Bits<16>>,
    dleft: DFF<Bits<16>>,
    off: DFF<Bits<16>>,
    fbuf: DFF<Bits<F>>,
    fin_pending: DFF<Bit>,
    ovf: DFF<Bit>,
    port_issue: DFF<Bits<16>>,
    port_done: DFF<Bits<16>>,
    po: Vec<DFF<Bits<32>>>,
    rt: Vec<DFF<Bits<32>>>,
    sbusy: Vec<DFF<Bit>>,
    run_push: Vec<DFF<Bits<4>>>,
    run_port: Vec<DFF<Bit>>,
    run_pc: Vec<DFF<Bits<32>>>,
    queues: Vec<StageQueue>,

    // Constants generated from `arch`.
    k_opcode_lsb: Constant<Bits<16>>,
    k_pop_prev_lsb: Constant<Bits<16>>,
    k_pop_next_lsb: Constant<Bits<16>>,
    k_push_prev_lsb: Constant<Bits<16>>,
    k_push_next_lsb: Constant<Bits<16>>,
    k_buffer_lsb: Constant<Bits<16>>,
    k_exp_addr_lsb: Constant<Bits<16>>,
    k_activation_lsb: Constant<Bits<16>>,
    k_sync_stage_lsb: Constant<Bits<16>>,
    k_op_load: Constant<Bits<4>>,
    k_op_gemm: Constant<Bits<4>>,
    k_op_post: Constant<Bits<4>>,
    k_op_store: Constant<Bits<4>>,
    k_op_sync: Constant<Bits<4>>,
    k_op_finish: Constant<Bits<4>>,
    k_known_ops: Constant<Bits<16>>,
    k_used_load: Constant<Bits<256>>,
    k_used_gemm: Constant<Bits<256>>,
    k_used_post: Constant<Bits<256>>,
    k_used_store: Constant<Bits<256>>,
    k_used_sync: Constant<Bits<256>>,
    k_used_finish: Constant<Bits<256>>,
    k_stage_of_op: Constant<Bits<64>>,
    k_load_bufs: Constant<Bits<4>>,
    k_store_bufs: Constant<Bits<4>>,
    k_load_exp_zero: Constant<Bits<4>>,
    k_store_exp_zero: Constant<Bits<4>>,
    k_load_port_bufs: Constant<Bits<4>>,
    k_store_port_bufs: Constant<Bits<4>>,
    k_activations: Constant<Bits<4>>,
    k_sync_stages: Constant<Bits<4>>,
    k_one4: Constant<Bits<4>>,
    k_pop_prev_q: Constant<Bits<16>>,
    k_pop_next_q: Constant<Bits<16>>,
    k_push_prev_q: Constant<Bits<16>>,
    k_push_next_q: Constant<Bits<16>>,
    k_port_stages: Constant<Bits<4>>,
    k_burst: Constant<Bits<64>>,
    k_beat_mask: Constant<Bits<64>>,
    k_log2_beat: Constant<Bits<8>>,
    k_fbits: Constant<Bits<64>>,
    k_w: Constant<Bits<16>>,
    k_f_minus_w: Constant<Bits<16>>,
    k_code_illegal: Constant<Bits<4>>,
    k_code_dma: Constant<Bits<4>>,
    k_code_underflow: Constant<Bits<4>>,
    k_code_overflow: Constant<Bits<4>>,
    k_code_unbalanced: Constant<Bits<4>>,

    // Combinational intermediates.
    f_at: Signal<Local, Bits<64>>,
    f_win: Signal<Local, Bits<64>>,
    f_n: Signal<Local, Bits<64>>,
    f_ring: Signal<Local, Bits<64>>,
    f_bytes: Signal<Local, Bits<64>>,
    f_round: Signal<Local, Bits<64>>,
    req_fire: Signal<Local, Bit>,
    fshift: Signal<Local, Bits<F>>,
    c_valid: Signal<Local, Bit>,
    c_inst: Signal<Local, Bits<256>>,
    c_tag: Signal<Local, Bits<48>>,
    c_op: Signal<Local, Bits<4>>,
    c_used: Signal<Local, Bits<256>>,
    c_buf: Signal<Local, Bits<2>>,
    c_soff: Signal<Local, Bits<8>>,
    c_soh: Signal<Local, Bits<4>>,
    c_sync: Signal<Local, Bit>,
    c_fin: Signal<Local, Bit>,
    c_port: Signal<Local, Bit>,
    c_popm: Signal<Local, Bits<4>>,
    c_pushm: Signal<Local, Bits<4>>,
    c_illegal: Signal<Local, Bit>,
    c_last: Signal<Local, Bit>,
    c_full: Signal<Local, Bit>,
    c_count_m1: Signal<Local, Bits<32>>,
    disp_fire: Signal<Local, Bit>,
    po_nz: Signal<Local, Bits<4>>,
    rt_nz: Signal<Local, Bits<4>>,
    hv_inst: Vec<Signal<Local, Bits<256>>>,
    hv_tag: Vec<Signal<Local, Bits<48>>>,
    h_sync: Vec<Signal<Local, Bit>>,
    h_port: Vec<Signal<Local, Bit>>,
    h_popm: Vec<Signal<Local, Bits<4>>>,
    h_pushm: Vec<Signal<Local, Bits<4>>>,
    conds: Vec<Signal<Local, Bit>>,
    start_q: Vec<Signal<Local, Bit>>,
    start: Vec<Signal<Local, Bit>>,
    end: Vec<Signal<Local, Bit>>,
    s_pc: Vec<Signal<Local, Bits<32>>>,
    push_now: Signal<Local, Bits<4>>,
    pop_now: Signal<Local, Bits<4>>,
    port_end: Signal<Local, Bit>,
    all_idle: Signal<Local, Bit>,
    fin_go: Signal<Local, Bit>,
    retired_l: Signal<Local, Bits<3>>,
    trace_l: Signal<Local, Bits<16>>,
    e_valid: Signal<Local, Bit>,
    e_code: Signal<Local, Bits<4>>,
    e_pc: Signal<Local, Bits<32>>,
    _cfg: EngineConfig,
    _queue_depth: usize,
}

/// A 256-bit instruction as rust-hdl bits from its four little-endian words (`Instruction::encode()`).
pub fn inst_bits(words: [u64; 4]) -> Bits<256> {
    words.iter().enumerate().fold(Bits::<256>::default(), |acc, (i, &w)| {
        acc | (bit_cast::<256, 64>(Bits::<64>::from(w)) << (64 * i as u64))
    })
}

/// The four words of a 256-bit instruction.
pub fn inst_words(bits: Bits<256>) -> [u64; 4] {
    std::array::from_fn(|i| bits.get_bits::<64>(64 * i).to_u64())
}

/// `N` bits holding `bytes` (byte i at bits 8i+7..8i; missing bytes are zero): a memory beat.
pub fn bits_from_bytes<const N: usize>(bytes: &[u8]) -> Bits<N> {
    bytes.chunks(8).enumerate().fold(Bits::<N>::default(), |acc, (i, chunk)| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        acc | (bit_cast::<N, 64>(Bits::<64>::from(u64::from_le_bytes(word))) << (64 * i as u64))
    })
}

/// The 256-bit mask of every field of `op` (the complement is the reserved bits).
fn used_mask(op: Opcode) -> Bits<256> {
    let mut w = [0u64; 4];
    for f in layout(op) {
        let m = if f.width == 64 { u64::MAX } else { ((1u64 << f.width) - 1) << (f.lsb % 64) };
        w[(f.lsb / 64) as usize] |= m;
    }
    inst_bits(w)
}

/// The bit position of a field, checking that the width the RTL slices matches `arch`.
fn lsb(f: isa::Field, width: u32) -> Constant<Bits<16>> {
    assert_eq!(f.width, width, "field {} changed width", f.name);
    Constant::new((f.lsb as u64).into())
}

fn constant<const N: usize>(v: u64) -> Constant<Bits<N>> {
    Constant::new(v.into())
}

/// A sample instruction of each opcode, for sampling `arch`'s rules.
fn sample(op: Opcode, buffer: Buffer, exp_addr: u32) -> Instruction {
    let load = Load { buffer, sram_base: 0, y_size: 0, x_size: 0, x_stride: 0, dram_addr: 0, exp_addr, pad: [0; 4] };
    let store = isa::Store { buffer, sram_base: 0, y_size: 0, x_size: 0, x_stride: 0, dram_addr: 0, exp_addr };
    Instruction::new(match op {
        Opcode::Load => Op::Load(load),
        Opcode::Gemm => Op::Gemm(Gemm::dense(0, 0, 0, false)),
        Opcode::Post => Op::Post(isa::Post::default()),
        Opcode::Store => Op::Store(store),
        Opcode::Sync => Op::Sync(Stage::Load),
        Opcode::Finish => Op::Finish,
    })
}

const BUFFERS: [Buffer; 4] = [Buffer::Act, Buffer::Wgt, Buffer::Acc, Buffer::Out];

/// Bit `b` set where `pred(BUFFERS[b])`.
fn buffer_mask(pred: impl Fn(Buffer) -> bool) -> Constant<Bits<4>> {
    constant(BUFFERS.iter().enumerate().filter(|(_, b)| pred(**b)).fold(0, |m, (i, _)| m | 1 << i))
}

/// 4 bits per stage: the one-hot token queue that `(prev, pop)` selects for each stage.
fn queue_table(prev: bool, pop: bool) -> Constant<Bits<16>> {
    constant(
        Stage::ALL
            .iter()
            .map(|&s| (s as usize, token_queue(s, prev, pop)))
            .fold(0, |m, (s, q)| m | q.map_or(0, |q| 1u64 << q) << (4 * s)),
    )
}

impl<const W: usize, const F: usize> Control<W, F> {
    /// The control for `cfg`, whose beat and fetch-buffer widths must be `W` and `F` ([`FetchGeometry`]).
    pub fn new(cfg: &EngineConfig) -> Result<Self, HdlError> {
        let g = FetchGeometry::for_config(cfg)?;
        if (g.beat_bits, g.buffer_bits) != (W, F) {
            return Err(HdlError::Unsupported(format!(
                "this control type has {W}-bit beats and a {F}-bit fetch buffer; the configuration needs {} and {}",
                g.beat_bits, g.buffer_bits
            )));
        }
        let q = cfg.queue_depth;
        let b = cfg.dma_bytes_per_cycle as u64;
        let stage_of = Opcode::ALL.iter().fold(0u64, |m, &op| {
            let onehot = match (op, sample(op, Buffer::Out, 0).stage()) {
                (Opcode::Sync, _) => 0, // from the instruction's `stage` field
                (_, Some(s)) => 1 << s as usize,
                (_, None) => 1 << STAGES,
            };
            m | onehot << (4 * op as u64)
        });
        let valid = |op: Opcode, exp: u32| move |b: Buffer| sample(op, b, exp).validate().is_ok();
        let exp_zero = |op: Opcode| move |b: Buffer| valid(op, 0)(b) && !valid(op, 1)(b);
        let port = |op: Opcode| move |b: Buffer| uses_acc_port(&sample(op, b, 0));
        use crate::array::filled as v;
        Ok(Self {
            clock: Default::default(),
            reset: Default::default(),
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
            fetch_req_valid: Default::default(),
            fetch_req_addr: Default::default(),
            fetch_req_len: Default::default(),
            fetch_beat_valid: Default::default(),
            fetch_beat_data: Default::default(),
            stage_start: v(STAGES),
            stage_inst: v(STAGES),
            stage_done: v(STAGES),
            stage_error: v(STAGES),
            stage_error_code: v(STAGES),
            stage_active: v(STAGES),
            retired: Default::default(),
            dispatched: Default::default(),
            dispatch_pc: Default::default(),
            trace: Default::default(),
            running: Default::default(),
            ring_bad: Default::default(),
            err: Default::default(),
            err_code: Default::default(),
            err_pc: Default::default(),
            dma_base_r: Default::default(),
            win_r: Default::default(),
            base_r: Default::default(),
            mask_r: Default::default(),
            head: Default::default(),
            count: Default::default(),
            fleft: Default::default(),
            fpc: Default::default(),
            dpc: Default::default(),
            need_req: Default::default(),
            bleft: Default::default(),
            dleft: Default::default(),
            off: Default::default(),
            fbuf: Default::default(),
            fin_pending: Default::default(),
            ovf: Default::default(),
            port_issue: Default::default(),
            port_done: Default::default(),
            po: v(TOKEN_QUEUES),
            rt: v(TOKEN_QUEUES),
            sbusy: v(STAGES),
            run_push: v(STAGES),
            run_port: v(STAGES),
            run_pc: v(STAGES),
            queues: (0..STAGES).map(|_| StageQueue::new(q)).collect(),
            k_opcode_lsb: lsb(header::OPCODE, 4),
            k_pop_prev_lsb: lsb(header::POP_PREV, 1),
            k_pop_next_lsb: lsb(header::POP_NEXT, 1),
            k_push_prev_lsb: lsb(header::PUSH_PREV, 1),
            k_push_next_lsb: lsb(header::PUSH_NEXT, 1),
            k_buffer_lsb: lsb(mem::BUFFER, 2),
            k_exp_addr_lsb: lsb(mem::EXP_ADDR, 32),
            k_activation_lsb: lsb(post::ACTIVATION, 2),
            k_sync_stage_lsb: lsb(sync::STAGE, 2),
            k_op_load: constant(Opcode::Load as u64),
            k_op_gemm: constant(Opcode::Gemm as u64),
            k_op_post: constant(Opcode::Post as u64),
            k_op_store: constant(Opcode::Store as u64),
            k_op_sync: constant(Opcode::Sync as u64),
            k_op_finish: constant(Opcode::Finish as u64),
            k_known_ops: constant(Opcode::ALL.iter().fold(0, |m, &op| m | 1 << op as u64)),
            k_used_load: Constant::new(used_mask(Opcode::Load)),
            k_used_gemm: Constant::new(used_mask(Opcode::Gemm)),
            k_used_post: Constant::new(used_mask(Opcode::Post)),
            k_used_store: Constant::new(used_mask(Opcode::Store)),
            k_used_sync: Constant::new(used_mask(Opcode::Sync)),
            k_used_finish: Constant::new(used_mask(Opcode::Finish)),
            k_stage_of_op: constant(stage_of),
            k_load_bufs: buffer_mask(valid(Opcode::Load, 0)),
            k_store_bufs: buffer_mask(valid(Opcode::Store, 0)),
            k_load_exp_zero: buffer_mask(exp_zero(Opcode::Load)),
            k_store_exp_zero: buffer_mask(exp_zero(Opcode::Store)),
            k_load_port_bufs: buffer_mask(port(Opcode::Load)),
            k_store_port_bufs: buffer_mask(port(Opcode::Store)),
            k_activations: constant(
                [Activation::None, Activation::Relu, Activation::Relu6].iter().fold(0, |m, &a| m | 1 << a as u64),
            ),
            k_sync_stages: constant(Stage::ALL.iter().fold(0, |m, &s| m | 1 << s as u64)),
            k_one4: constant(1),
            k_pop_prev_q: queue_table(true, true),
            k_pop_next_q: queue_table(false, true),
            k_push_prev_q: queue_table(true, false),
            k_push_next_q: queue_table(false, false),
            k_port_stages: constant(1 << Stage::Compute as u64),
            k_burst: constant(cfg.fetch_burst as u64),
            k_beat_mask: constant(b - 1),
            k_log2_beat: constant(b.trailing_zeros() as u64),
            k_fbits: constant(F as u64),
            k_w: constant(W as u64),
            k_f_minus_w: constant((F - W) as u64),
            k_code_illegal: constant(ErrorCode::IllegalInstruction as u64),
            k_code_dma: constant(ErrorCode::DmaOutOfBounds as u64),
            k_code_underflow: constant(ErrorCode::TokenUnderflow as u64),
            k_code_overflow: constant(ErrorCode::TokenOverflow as u64),
            k_code_unbalanced: constant(ErrorCode::UnbalancedTokens as u64),
            f_at: Default::default(),
            f_win: Default::default(),
            f_n: Default::default(),
            f_ring: Default::default(),
            f_bytes: Default::default(),
            f_round: Default::default(),
            req_fire: Default::default(),
            fshift: Default::default(),
            c_valid: Default::default(),
            c_inst: Default::default(),
            c_tag: Default::default(),
            c_op: Default::default(),
            c_used: Default::default(),
            c_buf: Default::default(),
            c_soff: Default::default(),
            c_soh: Default::default(),
            c_sync: Default::default(),
            c_fin: Default::default(),
            c_port: Default::default(),
            c_popm: Default::default(),
            c_pushm: Default::default(),
            c_illegal: Default::default(),
            c_last: Default::default(),
            c_full: Default::default(),
            c_count_m1: Default::default(),
            disp_fire: Default::default(),
            po_nz: Default::default(),
            rt_nz: Default::default(),
            hv_inst: v(STAGES),
            hv_tag: v(STAGES),
            h_sync: v(STAGES),
            h_port: v(STAGES),
            h_popm: v(STAGES),
            h_pushm: v(STAGES),
            conds: v(STAGES),
            start_q: v(STAGES),
            start: v(STAGES),
            end: v(STAGES),
            s_pc: v(STAGES),
            push_now: Default::default(),
            pop_now: Default::default(),
            port_end: Default::default(),
            all_idle: Default::default(),
            fin_go: Default::default(),
            retired_l: Default::default(),
            trace_l: Default::default(),
            e_valid: Default::default(),
            e_code: Default::default(),
            e_pc: Default::default(),
            _cfg: *cfg,
            _queue_depth: q,
        })
    }

    /// The configuration the control was built for.
    pub fn config(&self) -> &EngineConfig {
        &self._cfg
    }
}

impl<const W: usize, const F: usize> Logic for Control<W, F> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            running,
            ring_bad,
            err,
            err_code,
            err_pc,
            dma_base_r,
            win_r,
            base_r,
            mask_r,
            head,
            count,
            fleft,
            fpc,
            dpc,
            need_req,
            bleft,
            dleft,
            off,
            fbuf,
            fin_pending,
            ovf,
            port_issue,
            port_done
        );
        for q in 0..4 {
            self.po[q].clock.next = self.clock.val();
            self.rt[q].clock.next = self.clock.val();
            self.po[q].d.next = self.po[q].q.val();
            self.rt[q].d.next = self.rt[q].q.val();
        }
        for s in 0..3 {
            self.sbusy[s].clock.next = self.clock.val();
            self.run_push[s].clock.next = self.clock.val();
            self.run_port[s].clock.next = self.clock.val();
            self.run_pc[s].clock.next = self.clock.val();
            self.sbusy[s].d.next = self.sbusy[s].q.val();
            self.run_push[s].d.next = self.run_push[s].q.val();
            self.run_port[s].d.next = self.run_port[s].q.val();
            self.run_pc[s].d.next = self.run_pc[s].q.val();
            self.queues[s].clock.next = self.clock.val();
            self.queues[s].reset.next = self.reset.val();
        }

        // ---- Token counters: which are non-zero (program order and real time).
        self.po_nz.next = 0.into();
        self.rt_nz.next = 0.into();
        for q in 0..4 {
            if self.po[q].q.val().any() {
                self.po_nz.next = self.po_nz.val().replace_bit(q, true);
            }
            if self.rt[q].q.val().any() {
                self.rt_nz.next = self.rt_nz.val().replace_bit(q, true);
            }
        }

        // ---- Fetch: the next burst's size n = min(burst, left, slots before the ring's end, in the window).
        self.f_at.next = bit_cast::<64, 32>(self.base_r.q.val()) + (bit_cast::<64, 32>(self.head.q.val()) << 5);
        self.f_win.next = 0.into();
        if (self.f_at.val() + 32) <= bit_cast::<64, 32>(self.win_r.q.val()) {
            self.f_win.next = (bit_cast::<64, 32>(self.win_r.q.val()) - self.f_at.val()) >> 5;
        }
        self.f_n.next = self.k_burst.val();
        if bit_cast::<64, 32>(self.fleft.q.val()) < self.f_n.val() {
            self.f_n.next = bit_cast::<64, 32>(self.fleft.q.val());
        }
        self.f_ring.next = bit_cast::<64, 32>(self.mask_r.q.val()) + 1 - bit_cast::<64, 32>(self.head.q.val());
        if self.f_ring.val() < self.f_n.val() {
            self.f_n.next = self.f_ring.val();
        }
        if self.f_win.val() < self.f_n.val() {
            self.f_n.next = self.f_win.val();
        }
        self.f_bytes.next = self.f_n.val() << 5;
        self.f_round.next = (self.f_bytes.val() + self.k_beat_mask.val()) & !self.k_beat_mask.val();
        self.req_fire.next = self.running.q.val()
            & !self.err.q.val()
            & !self.ring_bad.q.val()
            & self.need_req.q.val()
            & self.f_n.val().any();
        self.fetch_req_valid.next = self.req_fire.val();
        self.fetch_req_addr.next = self.dma_base_r.q.val() + self.f_at.val();
        self.fetch_req_len.next = bit_cast::<32, 64>(self.f_bytes.val());
        if self.req_fire.val() {
            self.need_req.d.next = false;
            self.bleft.d.next = bit_cast::<16, 64>(self.f_round.val() >> self.k_log2_beat.val());
            self.dleft.d.next = bit_cast::<16, 64>(self.f_n.val());
            self.off.d.next = bit_cast::<16, 64>(self.k_fbits.val() - (self.f_round.val() << 3));
            self.head.d.next = (self.head.q.val() + bit_cast::<32, 64>(self.f_n.val())) & self.mask_r.q.val();
            self.fleft.d.next = self.fleft.q.val() - bit_cast::<32, 64>(self.f_n.val());
            self.fpc.d.next = self.fpc.q.val() + bit_cast::<32, 64>(self.f_n.val());
        }
        // Beats shift into the top of the fetch buffer.
        if self.fetch_beat_valid.val() & self.bleft.q.val().any() {
            self.fbuf.d.next = (self.fbuf.q.val() >> self.k_w.val())
                | (bit_cast::<F, W>(self.fetch_beat_data.val()) << self.k_f_minus_w.val());
            self.bleft.d.next = self.bleft.q.val() - 1;
        }

        // ---- Decode the dispatch candidate (the oldest fetched instruction).
        self.fshift.next = self.fbuf.q.val() >> self.off.q.val();
        self.c_inst.next = self.fshift.val().get_bits::<256>(0);
        self.c_valid.next = self.running.q.val()
            & !self.err.q.val()
            & !self.ring_bad.q.val()
            & !self.fin_pending.q.val()
            & self.dleft.q.val().any()
            & !self.bleft.q.val().any();
        self.c_op.next = self.c_inst.val().get_bits::<4>(self.k_opcode_lsb.val().index());
        self.c_buf.next = self.c_inst.val().get_bits::<2>(self.k_buffer_lsb.val().index());
        self.c_sync.next = self.c_op.val() == self.k_op_sync.val();
        self.c_fin.next = self.c_op.val() == self.k_op_finish.val();
        self.c_soff.next = bit_cast::<8, 4>(self.c_op.val()) << 2;
        self.c_soh.next = self.k_stage_of_op.val().get_bits::<4>(self.c_soff.val().index());
        if self.c_sync.val() {
            self.c_soh.next = self.k_one4.val() << self.c_inst.val().get_bits::<2>(self.k_sync_stage_lsb.val().index());
        }
        self.c_used.next = self.k_used_finish.val();
        self.c_illegal.next = !self.k_known_ops.val().get_bit(self.c_op.val().index());
        if self.c_op.val() == self.k_op_load.val() {
            self.c_used.next = self.k_used_load.val();
            self.c_illegal.next = !self.k_load_bufs.val().get_bit(self.c_buf.val().index())
                | (self.k_load_exp_zero.val().get_bit(self.c_buf.val().index())
                    & self.c_inst.val().get_bits::<32>(self.k_exp_addr_lsb.val().index()).any());
        }
        if self.c_op.val() == self.k_op_store.val() {
            self.c_used.next = self.k_used_store.val();
            self.c_illegal.next = !self.k_store_bufs.val().get_bit(self.c_buf.val().index())
                | (self.k_store_exp_zero.val().get_bit(self.c_buf.val().index())
                    & self.c_inst.val().get_bits::<32>(self.k_exp_addr_lsb.val().index()).any());
        }
        if self.c_op.val() == self.k_op_gemm.val() {
            self.c_used.next = self.k_used_gemm.val();
        }
        if self.c_op.val() == self.k_op_post.val() {
            self.c_used.next = self.k_used_post.val();
            self.c_illegal.next = !self
                .k_activations
                .val()
                .get_bit(self.c_inst.val().get_bits::<2>(self.k_activation_lsb.val().index()).index());
        }
        if self.c_sync.val() {
            self.c_used.next = self.k_used_sync.val();
            self.c_illegal.next = !self
                .k_sync_stages
                .val()
                .get_bit(self.c_inst.val().get_bits::<2>(self.k_sync_stage_lsb.val().index()).index());
        }
        if (self.c_inst.val() & !self.c_used.val()).any() {
            self.c_illegal.next = true;
        }
        // Token flags: the queues they select for the candidate's stage; a flag with no queue is illegal.
        self.c_popm.next = 0.into();
        self.c_pushm.next = 0.into();
        self.c_port.next = false;
        for s in 0..3 {
            if self.c_soh.val().get_bit(s) {
                if self.c_inst.val().get_bit(self.k_pop_prev_lsb.val().index()) {
                    self.c_popm.next = self.c_popm.val() | self.k_pop_prev_q.val().get_bits::<4>(s * 4);
                    if !self.k_pop_prev_q.val().get_bits::<4>(s * 4).any() {
                        self.c_illegal.next = true;
                    }
                }
                if self.c_inst.val().get_bit(self.k_pop_next_lsb.val().index()) {
                    self.c_popm.next = self.c_popm.val() | self.k_pop_next_q.val().get_bits::<4>(s * 4);
                    if !self.k_pop_next_q.val().get_bits::<4>(s * 4).any() {
                        self.c_illegal.next = true;
                    }
                }
                if self.c_inst.val().get_bit(self.k_push_prev_lsb.val().index()) {
                    self.c_pushm.next = self.c_pushm.val() | self.k_push_prev_q.val().get_bits::<4>(s * 4);
                    if !self.k_push_prev_q.val().get_bits::<4>(s * 4).any() {
                        self.c_illegal.next = true;
                    }
                }
                if self.c_inst.val().get_bit(self.k_push_next_lsb.val().index()) {
                    self.c_pushm.next = self.c_pushm.val() | self.k_push_next_q.val().get_bits::<4>(s * 4);
                    if !self.k_push_next_q.val().get_bits::<4>(s * 4).any() {
                        self.c_illegal.next = true;
                    }
                }
                if self.k_port_stages.val().get_bit(s) {
                    self.c_port.next = true;
                }
            }
        }
        if self.c_fin.val()
            & (self.c_inst.val().get_bit(self.k_pop_prev_lsb.val().index())
                | self.c_inst.val().get_bit(self.k_pop_next_lsb.val().index())
                | self.c_inst.val().get_bit(self.k_push_prev_lsb.val().index())
                | self.c_inst.val().get_bit(self.k_push_next_lsb.val().index()))
        {
            self.c_illegal.next = true;
        }
        if (self.c_op.val() == self.k_op_load.val()) & self.k_load_port_bufs.val().get_bit(self.c_buf.val().index()) {
            self.c_port.next = true;
        }
        if (self.c_op.val() == self.k_op_store.val()) & self.k_store_port_bufs.val().get_bit(self.c_buf.val().index()) {
            self.c_port.next = true;
        }
        self.c_count_m1.next = self.count.q.val() - 1;
        self.c_last.next = self.dpc.q.val() == self.c_count_m1.val();
        self.c_tag.next = (bit_cast::<48, 16>(self.port_issue.q.val()) << 32) | bit_cast::<48, 32>(self.dpc.q.val());

        // ---- Per stage: the head (queued, or the candidate bypassing an empty queue) and whether it may start.
        for s in 0..3 {
            self.hv_inst[s].next = self.c_inst.val();
            self.hv_tag[s].next = self.c_tag.val();
            if self.queues[s].head_valid.val() {
                self.hv_inst[s].next = self.queues[s].head_inst.val();
                self.hv_tag[s].next = self.queues[s].head_tag.val();
            }
            self.h_sync[s].next =
                self.hv_inst[s].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_sync.val();
            self.h_popm[s].next = 0.into();
            self.h_pushm[s].next = 0.into();
            if self.hv_inst[s].val().get_bit(self.k_pop_prev_lsb.val().index()) {
                self.h_popm[s].next = self.h_popm[s].val() | self.k_pop_prev_q.val().get_bits::<4>(s * 4);
            }
            if self.hv_inst[s].val().get_bit(self.k_pop_next_lsb.val().index()) {
                self.h_popm[s].next = self.h_popm[s].val() | self.k_pop_next_q.val().get_bits::<4>(s * 4);
            }
            if self.hv_inst[s].val().get_bit(self.k_push_prev_lsb.val().index()) {
                self.h_pushm[s].next = self.h_pushm[s].val() | self.k_push_prev_q.val().get_bits::<4>(s * 4);
            }
            if self.hv_inst[s].val().get_bit(self.k_push_next_lsb.val().index()) {
                self.h_pushm[s].next = self.h_pushm[s].val() | self.k_push_next_q.val().get_bits::<4>(s * 4);
            }
            // Port users: every instruction of the compute stage; LOAD/STORE by their buffer.
            self.h_port[s].next = self.k_port_stages.val().get_bit(s);
            if (self.hv_inst[s].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_load.val())
                & self
                    .k_load_port_bufs
                    .val()
                    .get_bit(self.hv_inst[s].val().get_bits::<2>(self.k_buffer_lsb.val().index()).index())
            {
                self.h_port[s].next = true;
            }
            if (self.hv_inst[s].val().get_bits::<4>(self.k_opcode_lsb.val().index()) == self.k_op_store.val())
                & self
                    .k_store_port_bufs
                    .val()
                    .get_bit(self.hv_inst[s].val().get_bits::<2>(self.k_buffer_lsb.val().index()).index())
            {
                self.h_port[s].next = true;
            }
            self.conds[s].next = self.running.q.val()
                & !self.err.q.val()
                & !self.sbusy[s].q.val()
                & !(self.h_popm[s].val() & !self.rt_nz.val()).any()
                & (!self.h_port[s].val() | (self.hv_tag[s].val().get_bits::<16>(32) == self.port_done.q.val()));
            self.start_q[s].next = self.queues[s].head_valid.val() & self.conds[s].val();
        }

        // ---- Dispatch: the candidate enters its queue (or FINISH waits) if legal and there is room.
        self.c_full.next = false;
        for s in 0..3 {
            if self.c_soh.val().get_bit(s) & self.queues[s].full.val() & !self.start_q[s].val() {
                self.c_full.next = true;
            }
        }
        self.disp_fire.next = self.c_valid.val()
            & !self.c_illegal.val()
            & !(self.c_fin.val() ^ self.c_last.val())
            & !(self.c_popm.val() & !self.po_nz.val()).any()
            & !(self.c_fin.val() & self.po_nz.val().any())
            & !self.c_full.val();
        self.dispatched.next = self.disp_fire.val();
        self.dispatch_pc.next = self.dpc.q.val();
        if self.disp_fire.val() {
            self.dleft.d.next = self.dleft.q.val() - 1;
            self.dpc.d.next = self.dpc.q.val() + 1;
            self.fbuf.d.next = self.fbuf.q.val() >> 256;
            if (self.dleft.q.val() == 1) & self.fleft.q.val().any() {
                self.need_req.d.next = true;
            }
            if self.c_port.val() {
                self.port_issue.d.next = self.port_issue.q.val() + 1;
            }
            if self.c_fin.val() {
                self.fin_pending.d.next = true;
            }
            for q in 0..4 {
                if self.c_pushm.val().get_bit(q) {
                    self.po[q].d.next = self.po[q].q.val() + 1;
                }
                if self.c_popm.val().get_bit(q) {
                    self.po[q].d.next = self.po[q].q.val() - 1;
                }
            }
        }

        // ---- Start, end, tokens.
        self.push_now.next = 0.into();
        self.pop_now.next = 0.into();
        self.port_end.next = false;
        self.retired_l.next = 0.into();
        self.all_idle.next = true;
        for s in 0..3 {
            self.start[s].next = self.conds[s].val()
                & (self.queues[s].head_valid.val() | (self.disp_fire.val() & self.c_soh.val().get_bit(s)));
            self.queues[s].pop.next = self.start[s].val() & self.queues[s].head_valid.val();
            self.queues[s].push.next = self.disp_fire.val()
                & self.c_soh.val().get_bit(s)
                & !(self.start[s].val() & !self.queues[s].head_valid.val());
            self.queues[s].push_inst.next = self.c_inst.val();
            self.queues[s].push_tag.next = self.c_tag.val();
            self.stage_start[s].next = self.start[s].val() & !self.h_sync[s].val();
            self.stage_inst[s].next = self.hv_inst[s].val();
            self.stage_active[s].next = self.sbusy[s].q.val() | self.start[s].val();
            self.end[s].next = self.stage_done[s].val() | (self.start[s].val() & self.h_sync[s].val());
            if self.start[s].val() {
                self.run_push[s].d.next = self.h_pushm[s].val();
                self.run_port[s].d.next = self.h_port[s].val();
                self.run_pc[s].d.next = self.hv_tag[s].val().get_bits::<32>(0);
                self.pop_now.next = self.pop_now.val() | self.h_popm[s].val();
            }
            self.sbusy[s].d.next = (self.sbusy[s].q.val() | self.start[s].val()) & !self.end[s].val();
            if self.end[s].val() {
                self.retired_l.next = self.retired_l.val() + 1;
                if self.sbusy[s].q.val() {
                    self.push_now.next = self.push_now.val() | self.run_push[s].q.val();
                    self.port_end.next = self.port_end.val() | self.run_port[s].q.val();
                } else {
                    self.push_now.next = self.push_now.val() | self.h_pushm[s].val();
                    self.port_end.next = self.port_end.val() | self.h_port[s].val();
                }
            }
            if self.queues[s].head_valid.val() | self.sbusy[s].q.val() {
                self.all_idle.next = false;
            }
        }
        if self.port_end.val() {
            self.port_done.d.next = self.port_done.q.val() + 1;
        }
        for q in 0..4 {
            if self.push_now.val().get_bit(q) & !self.pop_now.val().get_bit(q) {
                self.rt[q].d.next = self.rt[q].q.val() + 1;
            }
            if !self.push_now.val().get_bit(q) & self.pop_now.val().get_bit(q) {
                self.rt[q].d.next = self.rt[q].q.val() - 1;
            }
            // More than 2^16 − 1 outstanding (pushes of a cycle count before its pops).
            if self.rt[q].q.val().get_bits::<16>(16).any() {
                self.ovf.d.next = true;
            }
        }

        // ---- FINISH: once dispatched, starts when everything before it has ended; one cycle.
        self.fin_go.next = self.running.q.val()
            & !self.err.q.val()
            & self.all_idle.val()
            & (self.fin_pending.q.val() | (self.disp_fire.val() & self.c_fin.val()));
        self.finished.next = self.fin_go.val() & !self.ovf.q.val();
        if self.fin_go.val() & !self.ovf.q.val() {
            self.running.d.next = false;
            self.fin_pending.d.next = false;
            self.retired_l.next = self.retired_l.val() + 1;
        }
        self.retired.next = self.retired_l.val();

        // ---- The instruction-trace port, bit for bit as `arch::trace` lays it out (checked below the block).
        self.trace_l.next = 0.into();
        self.trace_l.next = self.trace_l.val().replace_bit(0, self.running.q.val());
        self.trace_l.next = self.trace_l.val().replace_bit(1, self.disp_fire.val());
        for s in 0..3 {
            self.trace_l.next =
                self.trace_l.val().replace_bit(2 + s, self.disp_fire.val() & self.c_soh.val().get_bit(s));
            self.trace_l.next = self.trace_l.val().replace_bit(5 + s, self.start[s].val());
            self.trace_l.next = self.trace_l.val().replace_bit(8 + s, self.end[s].val());
        }
        self.trace_l.next = self.trace_l.val().replace_bit(11, self.fin_go.val() & !self.ovf.q.val());
        self.trace.next = self.trace_l.val();

        // ---- Errors: the lowest index among this cycle's.
        self.e_valid.next = false;
        self.e_code.next = 0.into();
        self.e_pc.next = 0.into();
        if self.running.q.val() & self.ring_bad.q.val() & !self.err.q.val() {
            self.e_valid.next = true;
            self.e_code.next = self.k_code_illegal.val();
            self.e_pc.next = 0.into();
        }
        if self.running.q.val()
            & !self.err.q.val()
            & !self.ring_bad.q.val()
            & self.need_req.q.val()
            & !self.f_n.val().any()
        {
            self.e_valid.next = true;
            self.e_code.next = self.k_code_dma.val();
            self.e_pc.next = self.fpc.q.val();
        }
        if self.c_valid.val() {
            if self.c_illegal.val() {
                self.e_valid.next = true;
                self.e_code.next = self.k_code_illegal.val();
                self.e_pc.next = self.dpc.q.val();
            } else if self.c_fin.val() ^ self.c_last.val() {
                self.e_valid.next = true;
                self.e_code.next = self.k_code_illegal.val();
                self.e_pc.next = self.c_count_m1.val();
            } else if (self.c_popm.val() & !self.po_nz.val()).any() {
                self.e_valid.next = true;
                self.e_code.next = self.k_code_underflow.val();
                self.e_pc.next = self.dpc.q.val();
            } else if self.c_fin.val() & self.po_nz.val().any() {
                self.e_valid.next = true;
                self.e_code.next = self.k_code_unbalanced.val();
                self.e_pc.next = self.dpc.q.val();
            }
        }
        for s in 0..3 {
            self.s_pc[s].next = self.hv_tag[s].val().get_bits::<32>(0);
            if self.sbusy[s].q.val() {
                self.s_pc[s].next = self.run_pc[s].q.val();
            }
            if self.running.q.val()
                & !self.err.q.val()
                & self.stage_error[s].val()
                & (self.sbusy[s].q.val() | self.start[s].val())
                & (!self.e_valid.val() | (self.s_pc[s].val() < self.e_pc.val()))
            {
                self.e_valid.next = true;
                self.e_code.next = self.stage_error_code[s].val();
                self.e_pc.next = self.s_pc[s].val();
            }
        }
        if self.fin_go.val() & self.ovf.q.val() {
            self.e_valid.next = true;
            self.e_code.next = self.k_code_overflow.val();
            self.e_pc.next = self.c_count_m1.val();
        }
        self.error.next = self.e_valid.val();
        if self.e_valid.val() {
            self.err.d.next = true;
            self.err_code.d.next = self.e_code.val();
            self.err_pc.d.next = self.e_pc.val();
            self.running.d.next = false;
        }

        // ---- Doorbell: sample the ring; cycle 0 is the next one.
        if self.doorbell.val() & !self.running.q.val() & !self.err.q.val() {
            self.running.d.next = true;
            self.dma_base_r.d.next = self.dma_base.val();
            self.win_r.d.next = self.dma_size.val();
            self.base_r.d.next = self.cq_base.val();
            self.mask_r.d.next = self.cq_size.val() - 1;
            self.count.d.next = (self.tail.val() - self.head.q.val()) & (self.cq_size.val() - 1);
            self.fleft.d.next = (self.tail.val() - self.head.q.val()) & (self.cq_size.val() - 1);
            self.fpc.d.next = 0.into();
            self.dpc.d.next = 0.into();
            self.need_req.d.next = true;
            self.bleft.d.next = 0.into();
            self.dleft.d.next = 0.into();
            self.fin_pending.d.next = false;
            self.ring_bad.d.next = !self.cq_size.val().any()
                | (self.cq_size.val() & (self.cq_size.val() - 1)).any()
                | (self.head.q.val() >= self.cq_size.val())
                | (self.tail.val() >= self.cq_size.val())
                | self.cq_base.val().get_bits::<5>(0).any()
                | (self.tail.val() == self.head.q.val());
        }

        // ---- Outputs and reset.
        self.busy.next = self.running.q.val();
        self.errored.next = self.err.q.val();
        self.error_code.next = self.err_code.q.val();
        self.error_pc.next = self.err_pc.q.val();
        self.cq_head.next = self.head.q.val();
        if self.reset.val() {
            self.running.d.next = false;
            self.ring_bad.d.next = false;
            self.err.d.next = false;
            self.err_code.d.next = 0.into();
            self.err_pc.d.next = 0.into();
            self.head.d.next = 0.into();
            self.need_req.d.next = false;
            self.bleft.d.next = 0.into();
            self.dleft.d.next = 0.into();
            self.fin_pending.d.next = false;
            self.ovf.d.next = false;
            self.port_issue.d.next = 0.into();
            self.port_done.d.next = 0.into();
            for q in 0..4 {
                self.po[q].d.next = 0.into();
                self.rt[q].d.next = 0.into();
            }
            for s in 0..3 {
                self.sbusy[s].d.next = false;
            }
        }
    }
}

// The trace port's bit positions written as literals in `update` (its generator wants literal indices) are
// `arch::trace`'s.
const _: () = assert!(
    arch::trace::RUNNING == 1 << 0
        && arch::trace::DISPATCH == 1 << 1
        && arch::trace::DISPATCH_STAGE_LSB == 2
        && arch::trace::START_LSB == 5
        && arch::trace::END_LSB == 8
        && arch::trace::FINISH == 1 << 11
);
