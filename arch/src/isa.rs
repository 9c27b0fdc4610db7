//! The instruction set: decoupled LOAD / GEMM+POST / STORE stages synchronised by dependency tokens.
//!
//! Every instruction is 256 bits, stored in host memory as four little-endian 64-bit words; bit `i` of the
//! instruction is bit `i % 64` of word `i / 64`. Bits 3:0 hold the opcode and bits 7:4 the dependency flags;
//! the rest is per opcode ([`layout`]). Reserved bits must be zero: a decoder rejects anything else, so that
//! future fields cannot be misread by old engines. `docs/architecture.md` documents every field, and a test
//! checks that document against [`layout`].
//!
//! # Stages and tokens
//! Instructions are fetched in order and dispatched to three stages that run concurrently: **load**
//! (LOAD), **compute** (GEMM, POST) and **store** (STORE); SYNC runs on the stage it names, FINISH after all of
//! them drain. Between neighbouring stages run four token queues, as in tvm-vta:
//! load→compute, compute→load, compute→store and store→compute. An instruction's `pop_prev`/`pop_next` flags
//! make it wait for (and consume) a token from its previous/next stage before it starts; `push_prev`/
//! `push_next` send a token to that stage when it completes. The load stage has no previous stage and the
//! store stage no next one; setting such a flag is a decode error.

use thiserror::Error;

/// Error decoding or encoding an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IsaError {
    /// Bits 3:0 hold no known opcode.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A bit outside every field of the opcode is set.
    #[error("{opcode}: reserved bits set (mask {mask:#018x} in word {word})")]
    ReservedBits {
        /// The instruction's mnemonic.
        opcode: &'static str,
        /// Index of the 64-bit word.
        word: usize,
        /// The offending bits.
        mask: u64,
    },
    /// A field holds a value the instruction does not allow.
    #[error("{opcode}: field {field} = {value} is invalid: {why}")]
    BadField {
        /// The instruction's mnemonic.
        opcode: &'static str,
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: u64,
        /// What is allowed.
        why: &'static str,
    },
}

/// Size of one encoded instruction in bytes.
pub const INSTRUCTION_BYTES: usize = 32;

/// One bit field of an encoded instruction: `width` bits starting at bit `lsb` (0..256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name as written in `docs/architecture.md`.
    pub name: &'static str,
    /// Position of the least significant bit in the 256-bit instruction.
    pub lsb: u32,
    /// Number of bits.
    pub width: u32,
}

impl Field {
    const fn new(name: &'static str, lsb: u32, width: u32) -> Field {
        Field { name, lsb, width }
    }

    /// The largest value the field holds.
    pub fn max(&self) -> u64 {
        if self.width == 64 {
            u64::MAX
        } else {
            (1 << self.width) - 1
        }
    }

    fn get(&self, w: &[u64; 4]) -> u64 {
        (w[(self.lsb / 64) as usize] >> (self.lsb % 64)) & self.max()
    }

    fn put(&self, w: &mut [u64; 4], value: u64) {
        debug_assert!(value <= self.max(), "{} = {value} overflows {} bits", self.name, self.width);
        w[(self.lsb / 64) as usize] |= (value & self.max()) << (self.lsb % 64);
    }
}

/// The header fields every instruction has.
pub mod header {
    use super::Field;
    /// Opcode, bits 3:0.
    pub const OPCODE: Field = Field::new("opcode", 0, 4);
    /// Wait for and consume a token from the previous stage before starting.
    pub const POP_PREV: Field = Field::new("pop_prev", 4, 1);
    /// Wait for and consume a token from the next stage before starting.
    pub const POP_NEXT: Field = Field::new("pop_next", 5, 1);
    /// Send a token to the previous stage on completion.
    pub const PUSH_PREV: Field = Field::new("push_prev", 6, 1);
    /// Send a token to the next stage on completion.
    pub const PUSH_NEXT: Field = Field::new("push_next", 7, 1);
    /// All header fields.
    pub const ALL: [Field; 5] = [OPCODE, POP_PREV, POP_NEXT, PUSH_PREV, PUSH_NEXT];
}

/// Fields of LOAD and STORE (STORE has no padding fields).
pub mod mem {
    use super::Field;
    /// On-chip buffer: 0 activation, 1 weight, 2 accumulator, 3 output.
    pub const BUFFER: Field = Field::new("buffer", 8, 2);
    /// First buffer entry.
    pub const SRAM_BASE: Field = Field::new("sram_base", 16, 16);
    /// Rows transferred from/to host memory.
    pub const Y_SIZE: Field = Field::new("y_size", 32, 16);
    /// Entries per row transferred from/to host memory.
    pub const X_SIZE: Field = Field::new("x_size", 48, 16);
    /// Byte offset in the DMA window of the mantissa plane (BFP) or of the `f32` data (accumulator).
    pub const DRAM_ADDR: Field = Field::new("dram_addr", 64, 32);
    /// Byte offset in the DMA window of the exponent plane (BFP buffers only; must be 0 otherwise).
    pub const EXP_ADDR: Field = Field::new("exp_addr", 96, 32);
    /// Entries between the starts of consecutive rows in host memory.
    pub const X_STRIDE: Field = Field::new("x_stride", 128, 16);
    /// Zero rows written above the data (LOAD only).
    pub const PAD_TOP: Field = Field::new("pad_top", 144, 4);
    /// Zero rows written below the data (LOAD only).
    pub const PAD_BOTTOM: Field = Field::new("pad_bottom", 148, 4);
    /// Zero entries written left of each row (LOAD only).
    pub const PAD_LEFT: Field = Field::new("pad_left", 152, 4);
    /// Zero entries written right of each row (LOAD only).
    pub const PAD_RIGHT: Field = Field::new("pad_right", 156, 4);
    /// The fields LOAD and STORE share, in bit order.
    pub const TRANSFER: [Field; 7] = [BUFFER, SRAM_BASE, Y_SIZE, X_SIZE, DRAM_ADDR, EXP_ADDR, X_STRIDE];
    /// LOAD's padding fields: top, bottom, left, right.
    pub const PADDING: [Field; 4] = [PAD_TOP, PAD_BOTTOM, PAD_LEFT, PAD_RIGHT];
}

/// Fields of GEMM.
pub mod gemm {
    use super::Field;
    /// Start the accumulators from `+0` instead of their current values.
    pub const RESET: Field = Field::new("reset", 8, 1);
    /// First activation-buffer entry.
    pub const ACT_BASE: Field = Field::new("act_base", 16, 16);
    /// First weight-buffer entry.
    pub const WGT_BASE: Field = Field::new("wgt_base", 32, 16);
    /// First accumulator.
    pub const ACC_BASE: Field = Field::new("acc_base", 48, 16);
    /// Outer row-loop count.
    pub const M_OUTER: Field = Field::new("m_outer", 64, 16);
    /// Inner row-loop count.
    pub const M_INNER: Field = Field::new("m_inner", 80, 16);
    /// Output columns (N).
    pub const N_SIZE: Field = Field::new("n_size", 96, 16);
    /// Weight-buffer entries between consecutive output columns.
    pub const WGT_N_STRIDE: Field = Field::new("wgt_n_stride", 112, 16);
    /// Activation entries per outer row step.
    pub const ACT_M_OUTER_STRIDE: Field = Field::new("act_m_outer_stride", 128, 16);
    /// Activation entries per inner row step.
    pub const ACT_M_INNER_STRIDE: Field = Field::new("act_m_inner_stride", 144, 16);
    /// Accumulators per outer row step.
    pub const ACC_M_OUTER_STRIDE: Field = Field::new("acc_m_outer_stride", 160, 16);
    /// Accumulators per inner row step.
    pub const ACC_M_INNER_STRIDE: Field = Field::new("acc_m_inner_stride", 176, 16);
    /// Outer reduction-loop count (e.g. kernel rows).
    pub const K_OUTER: Field = Field::new("k_outer", 192, 8);
    /// Middle reduction-loop count (e.g. kernel columns).
    pub const K_MID: Field = Field::new("k_mid", 200, 8);
    /// Inner reduction-loop count in blocks (e.g. input-channel blocks); activation stride 1.
    pub const K_INNER: Field = Field::new("k_inner", 208, 16);
    /// Activation entries per outer reduction step.
    pub const ACT_K_OUTER_STRIDE: Field = Field::new("act_k_outer_stride", 224, 16);
    /// Activation entries per middle reduction step.
    pub const ACT_K_MID_STRIDE: Field = Field::new("act_k_mid_stride", 240, 16);
}

/// Fields of POST.
pub mod post {
    use super::Field;
    /// Activation: 0 none, 1 ReLU, 2 ReLU6.
    pub const ACTIVATION: Field = Field::new("activation", 8, 2);
    /// Add `bias[n]` read from the accumulator buffer at `bias_base + n`.
    pub const BIAS: Field = Field::new("bias", 10, 1);
    /// Add a residual read from the activation buffer.
    pub const RESIDUAL: Field = Field::new("residual", 11, 1);
    /// Write `f32` results back to the accumulators instead of BFP blocks to the output buffer.
    pub const TO_ACC: Field = Field::new("to_acc", 12, 1);
    /// Re-quantize with round-half-away instead of round-half-even.
    pub const ROUND_AWAY: Field = Field::new("round_away", 13, 1);
    /// First accumulator of the tile.
    pub const ACC_BASE: Field = Field::new("acc_base", 16, 16);
    /// First output-buffer entry.
    pub const OUT_BASE: Field = Field::new("out_base", 32, 16);
    /// Rows of the tile.
    pub const M_SIZE: Field = Field::new("m_size", 48, 16);
    /// Blocks per row of the tile (columns = `n_blocks · block_size`).
    pub const N_BLOCKS: Field = Field::new("n_blocks", 64, 16);
    /// Accumulators between consecutive rows.
    pub const ACC_M_STRIDE: Field = Field::new("acc_m_stride", 80, 16);
    /// Output-buffer entries between consecutive rows.
    pub const OUT_M_STRIDE: Field = Field::new("out_m_stride", 96, 16);
    /// Accumulator-buffer address of `bias[0]`.
    pub const BIAS_BASE: Field = Field::new("bias_base", 112, 16);
    /// Activation-buffer entry of the residual's first block.
    pub const RES_BASE: Field = Field::new("res_base", 128, 16);
    /// Activation-buffer entries between consecutive residual rows.
    pub const RES_M_STRIDE: Field = Field::new("res_m_stride", 144, 16);
}

/// Fields of SYNC.
pub mod sync {
    use super::Field;
    /// The stage that executes it: 0 load, 1 compute, 2 store.
    pub const STAGE: Field = Field::new("stage", 8, 2);
}

/// Opcode values (bits 3:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Host memory → on-chip buffer.
    Load = 0,
    /// Matrix multiply-accumulate over buffer tiles.
    Gemm = 1,
    /// Bias, residual, activation and re-quantization of accumulators.
    Post = 2,
    /// On-chip buffer → host memory.
    Store = 3,
    /// Dependency tokens only.
    Sync = 4,
    /// End of program: wait for every stage, then signal completion.
    Finish = 5,
}

impl Opcode {
    /// Every opcode.
    pub const ALL: [Opcode; 6] =
        [Opcode::Load, Opcode::Gemm, Opcode::Post, Opcode::Store, Opcode::Sync, Opcode::Finish];

    /// The mnemonic used in documentation and disassembly.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Opcode::Load => "LOAD",
            Opcode::Gemm => "GEMM",
            Opcode::Post => "POST",
            Opcode::Store => "STORE",
            Opcode::Sync => "SYNC",
            Opcode::Finish => "FINISH",
        }
    }

    fn from_bits(v: u8) -> Result<Opcode, IsaError> {
        Opcode::ALL.into_iter().find(|o| *o as u8 == v).ok_or(IsaError::UnknownOpcode(v))
    }
}

/// The complete field layout of an opcode, header included: the single source of the encoding.
pub fn layout(op: Opcode) -> Vec<Field> {
    let mut f = header::ALL.to_vec();
    match op {
        Opcode::Load => f.extend(mem::TRANSFER.iter().chain(&mem::PADDING)),
        Opcode::Store => f.extend(mem::TRANSFER),
        Opcode::Gemm => f.extend([
            gemm::RESET,
            gemm::ACT_BASE,
            gemm::WGT_BASE,
            gemm::ACC_BASE,
            gemm::M_OUTER,
            gemm::M_INNER,
            gemm::N_SIZE,
            gemm::WGT_N_STRIDE,
            gemm::ACT_M_OUTER_STRIDE,
            gemm::ACT_M_INNER_STRIDE,
            gemm::ACC_M_OUTER_STRIDE,
            gemm::ACC_M_INNER_STRIDE,
            gemm::K_OUTER,
            gemm::K_MID,
            gemm::K_INNER,
            gemm::ACT_K_OUTER_STRIDE,
            gemm::ACT_K_MID_STRIDE,
        ]),
        Opcode::Post => f.extend([
            post::ACTIVATION,
            post::BIAS,
            post::RESIDUAL,
            post::TO_ACC,
            post::ROUND_AWAY,
            post::ACC_BASE,
            post::OUT_BASE,
            post::M_SIZE,
            post::N_BLOCKS,
            post::ACC_M_STRIDE,
            post::OUT_M_STRIDE,
            post::BIAS_BASE,
            post::RES_BASE,
            post::RES_M_STRIDE,
        ]),
        Opcode::Sync => f.push(sync::STAGE),
        Opcode::Finish => {}
    }
    f
}

/// The three execution stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Runs LOAD.
    Load = 0,
    /// Runs GEMM and POST.
    Compute = 1,
    /// Runs STORE.
    Store = 2,
}

impl Stage {
    /// The three stages in pipeline order.
    pub const ALL: [Stage; 3] = [Stage::Load, Stage::Compute, Stage::Store];

    fn from_bits(v: u64) -> Result<Stage, IsaError> {
        match v {
            0 => Ok(Stage::Load),
            1 => Ok(Stage::Compute),
            2 => Ok(Stage::Store),
            _ => {
                Err(IsaError::BadField { opcode: "SYNC", field: "stage", value: v, why: "0 load, 1 compute, 2 store" })
            }
        }
    }
}

/// The on-chip buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buffer {
    /// Activations (BFP blocks).
    Act = 0,
    /// Weights (BFP blocks).
    Wgt = 1,
    /// Accumulators (`f32`).
    Acc = 2,
    /// Outputs of POST (BFP blocks).
    Out = 3,
}

impl Buffer {
    fn from_bits(v: u64) -> Buffer {
        match v & 3 {
            0 => Buffer::Act,
            1 => Buffer::Wgt,
            2 => Buffer::Acc,
            _ => Buffer::Out,
        }
    }
}

/// Dependency-token flags of one instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Deps {
    /// Wait for and consume a token from the previous stage before starting.
    pub pop_prev: bool,
    /// Wait for and consume a token from the next stage before starting.
    pub pop_next: bool,
    /// Send a token to the previous stage on completion.
    pub push_prev: bool,
    /// Send a token to the next stage on completion.
    pub push_next: bool,
}

impl Deps {
    /// No tokens.
    pub const NONE: Deps = Deps { pop_prev: false, pop_next: false, push_prev: false, push_next: false };
}

/// LOAD: host memory → ACT, WGT or ACC buffer, with optional zero padding around a 2-D window.
///
/// Host entry `(y, x)` (for `y < y_size`, `x < x_size`) is read from `dram_addr + (y·x_stride + x)·bytes`
/// (and its exponent from `exp_addr + y·x_stride + x` for BFP buffers) and written to buffer entry
/// `sram_base + (pad_top + y)·row + pad_left + x`, where `row = pad_left + x_size + pad_right`. Every other
/// entry of the `(pad_top + y_size + pad_bottom) × row` window is written with zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Load {
    /// Destination buffer (not [`Buffer::Out`]).
    pub buffer: Buffer,
    /// First destination entry.
    pub sram_base: u16,
    /// Rows read from host memory.
    pub y_size: u16,
    /// Entries per row read from host memory.
    pub x_size: u16,
    /// Entries between row starts in host memory.
    pub x_stride: u16,
    /// Byte offset of the mantissa plane (BFP) or of the data (ACC) in the DMA window.
    pub dram_addr: u32,
    /// Byte offset of the exponent plane in the DMA window (BFP buffers; 0 for ACC).
    pub exp_addr: u32,
    /// Zero padding: top, bottom, left, right (each ≤ 15).
    pub pad: [u8; 4],
}

/// STORE: OUT or ACC buffer → host memory, the inverse of an unpadded LOAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    /// Source buffer ([`Buffer::Out`] or [`Buffer::Acc`]).
    pub buffer: Buffer,
    /// First source entry; entry `(y, x)` is `sram_base + y·x_size + x`.
    pub sram_base: u16,
    /// Rows written.
    pub y_size: u16,
    /// Entries per row written.
    pub x_size: u16,
    /// Entries between row starts in host memory.
    pub x_stride: u16,
    /// Byte offset of the mantissa plane (OUT) or of the data (ACC) in the DMA window.
    pub dram_addr: u32,
    /// Byte offset of the exponent plane (OUT; 0 for ACC).
    pub exp_addr: u32,
}

/// GEMM: `acc[m][n] ⊕= Σ_blocks act_block(m, k) · wgt_block(n, k)` over loop nests for rows and reduction.
///
/// Rows `m = (mo, mi)`, reduction blocks `k = (ko, km, ki)` taken in increasing lexicographic order:
/// * activation block: `act_base + mo·act_m_outer_stride + mi·act_m_inner_stride + ko·act_k_outer_stride
///   + km·act_k_mid_stride + ki`
/// * weight block: `wgt_base + n·wgt_n_stride + (ko·k_mid + km)·k_inner + ki`
/// * accumulator: `acc_base + mo·acc_m_outer_stride + mi·acc_m_inner_stride + n`
///
/// Each block product is an exact integer dot product scaled by both exponents, added with
/// [`crate::accum::accumulate`]. Accumulator addresses of distinct `(m, n)` must be distinct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gemm {
    /// Start from `+0` instead of the accumulators' values.
    pub reset: bool,
    /// First activation block.
    pub act_base: u16,
    /// First weight block.
    pub wgt_base: u16,
    /// First accumulator.
    pub acc_base: u16,
    /// Outer row count.
    pub m_outer: u16,
    /// Inner row count.
    pub m_inner: u16,
    /// Output columns.
    pub n_size: u16,
    /// Weight blocks between output columns.
    pub wgt_n_stride: u16,
    /// Activation blocks per outer row.
    pub act_m_outer_stride: u16,
    /// Activation blocks per inner row.
    pub act_m_inner_stride: u16,
    /// Accumulators per outer row.
    pub acc_m_outer_stride: u16,
    /// Accumulators per inner row.
    pub acc_m_inner_stride: u16,
    /// Outer reduction count.
    pub k_outer: u8,
    /// Middle reduction count.
    pub k_mid: u8,
    /// Inner reduction count (blocks).
    pub k_inner: u16,
    /// Activation blocks per outer reduction step.
    pub act_k_outer_stride: u16,
    /// Activation blocks per middle reduction step.
    pub act_k_mid_stride: u16,
}

impl Gemm {
    /// Rows `M = m_outer · m_inner`.
    pub fn rows(&self) -> u64 {
        self.m_outer as u64 * self.m_inner as u64
    }

    /// Reduction blocks `K_blocks = k_outer · k_mid · k_inner`.
    pub fn k_blocks(&self) -> u64 {
        self.k_outer as u64 * self.k_mid as u64 * self.k_inner as u64
    }

    /// A plain matrix product `acc[M×N] (⊕)= act[M×Kb blocks] · wgt[N×Kb blocks]ᵀ` with dense row-major
    /// operands: activation row `m` at `act_base + m·k_blocks`, weight column `n` at `wgt_base + n·k_blocks`,
    /// accumulator row `m` at `acc_base + m·n`.
    pub fn dense(m: u16, n: u16, k_blocks: u16, reset: bool) -> Gemm {
        Gemm {
            reset,
            act_base: 0,
            wgt_base: 0,
            acc_base: 0,
            m_outer: 1,
            m_inner: m,
            n_size: n,
            wgt_n_stride: k_blocks,
            act_m_outer_stride: 0,
            act_m_inner_stride: k_blocks,
            acc_m_outer_stride: 0,
            acc_m_inner_stride: n,
            k_outer: 1,
            k_mid: 1,
            k_inner: k_blocks,
            act_k_outer_stride: 0,
            act_k_mid_stride: 0,
        }
    }
}

/// The activation function applied by POST.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// Identity.
    #[default]
    None = 0,
    /// `max(x, 0)`.
    Relu = 1,
    /// `min(max(x, 0), 6)`.
    Relu6 = 2,
}

/// POST: for each row `m < m_size` and column `n < n_blocks·block_size`:
/// `x = acc[acc_base + m·acc_m_stride + n]`, then `x ⊕= bias[n]` (if `bias`), `x ⊕= residual(m, n)`
/// (if `residual`; element `n % block_size` of activation block `res_base + m·res_m_stride + n / block_size`),
/// then the activation; finally each run of `block_size` columns is quantized to one block written to
/// output entry `out_base + m·out_m_stride + n / block_size`, or (with `to_acc`) `x` is written back in place.
/// The default is an empty POST (no rows) with every feature off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Post {
    /// Activation function.
    pub activation: Activation,
    /// Add the bias vector.
    pub bias: bool,
    /// Add the residual.
    pub residual: bool,
    /// Write `f32` results back to the accumulators.
    pub to_acc: bool,
    /// Quantize with ties away from zero instead of ties to even.
    pub round_away: bool,
    /// First accumulator of the tile.
    pub acc_base: u16,
    /// First output block.
    pub out_base: u16,
    /// Rows.
    pub m_size: u16,
    /// Blocks per row.
    pub n_blocks: u16,
    /// Accumulators between rows.
    pub acc_m_stride: u16,
    /// Output blocks between rows.
    pub out_m_stride: u16,
    /// Accumulator address of `bias[0]`.
    pub bias_base: u16,
    /// Activation block of the residual's first block.
    pub res_base: u16,
    /// Activation blocks between residual rows.
    pub res_m_stride: u16,
}

/// The operation of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// See [`Load`].
    Load(Load),
    /// See [`Gemm`].
    Gemm(Gemm),
    /// See [`Post`].
    Post(Post),
    /// See [`Store`].
    Store(Store),
    /// Tokens only, on the given stage.
    Sync(Stage),
    /// End of program.
    Finish,
}

/// One instruction: an operation and its dependency flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instruction {
    /// What it does.
    pub op: Op,
    /// Which tokens it waits for and sends.
    pub deps: Deps,
}

impl Instruction {
    /// An instruction with no dependency flags.
    pub fn new(op: Op) -> Self {
        Instruction { op, deps: Deps::NONE }
    }

    /// The same instruction with the given flags.
    pub fn with_deps(self, deps: Deps) -> Self {
        Instruction { deps, ..self }
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        match self.op {
            Op::Load(_) => Opcode::Load,
            Op::Gemm(_) => Opcode::Gemm,
            Op::Post(_) => Opcode::Post,
            Op::Store(_) => Opcode::Store,
            Op::Sync(_) => Opcode::Sync,
            Op::Finish => Opcode::Finish,
        }
    }

    /// The stage that executes it (`None` for FINISH, which waits for all of them).
    pub fn stage(&self) -> Option<Stage> {
        match self.op {
            Op::Load(_) => Some(Stage::Load),
            Op::Gemm(_) | Op::Post(_) => Some(Stage::Compute),
            Op::Store(_) => Some(Stage::Store),
            Op::Sync(s) => Some(s),
            Op::Finish => None,
        }
    }

    /// Checks the rules that do not depend on an engine configuration: buffers each opcode may use,
    /// padding and dependency flags towards stages that exist.
    pub fn validate(&self) -> Result<(), IsaError> {
        let name = self.opcode().mnemonic();
        let bad = |field, value: u64, why| Err(IsaError::BadField { opcode: name, field, value, why });
        match &self.op {
            Op::Load(l) => {
                if l.buffer == Buffer::Out {
                    return bad("buffer", 3, "LOAD writes ACT, WGT or ACC");
                }
                for (f, p) in mem::PADDING.iter().zip(l.pad) {
                    if p as u64 > f.max() {
                        return bad(f.name, p as u64, "padding is at most 15");
                    }
                }
                if l.buffer == Buffer::Acc && l.exp_addr != 0 {
                    return bad("exp_addr", l.exp_addr as u64, "must be 0 for ACC");
                }
            }
            Op::Store(s) => {
                if !matches!(s.buffer, Buffer::Out | Buffer::Acc) {
                    return bad("buffer", s.buffer as u64, "STORE reads OUT or ACC");
                }
                if s.buffer == Buffer::Acc && s.exp_addr != 0 {
                    return bad("exp_addr", s.exp_addr as u64, "must be 0 for ACC");
                }
            }
            Op::Post(p) if p.activation as u8 > 2 => return bad("activation", p.activation as u64, "0, 1 or 2"),
            _ => {}
        }
        let d = self.deps;
        match self.stage() {
            Some(Stage::Load) if d.pop_prev || d.push_prev => {
                bad("pop_prev/push_prev", 1, "the load stage has no previous stage")
            }
            Some(Stage::Store) if d.pop_next || d.push_next => {
                bad("pop_next/push_next", 1, "the store stage has no next stage")
            }
            None if d != Deps::NONE => bad("deps", 1, "FINISH takes no tokens"),
            _ => Ok(()),
        }
    }

    /// Encodes to four little-endian words.
    pub fn encode(&self) -> Result<[u64; 4], IsaError> {
        self.validate()?;
        let mut w = [0u64; 4];
        header::OPCODE.put(&mut w, self.opcode() as u64);
        header::POP_PREV.put(&mut w, self.deps.pop_prev as u64);
        header::POP_NEXT.put(&mut w, self.deps.pop_next as u64);
        header::PUSH_PREV.put(&mut w, self.deps.push_prev as u64);
        header::PUSH_NEXT.put(&mut w, self.deps.push_next as u64);
        match &self.op {
            Op::Load(l) => {
                put_mem(&mut w, l.buffer, l.sram_base, l.y_size, l.x_size, l.x_stride, l.dram_addr, l.exp_addr);
                for (f, p) in mem::PADDING.iter().zip(l.pad) {
                    f.put(&mut w, p as u64);
                }
            }
            Op::Store(s) => {
                put_mem(&mut w, s.buffer, s.sram_base, s.y_size, s.x_size, s.x_stride, s.dram_addr, s.exp_addr)
            }
            Op::Gemm(g) => {
                use gemm::*;
                for (f, v) in [
                    (RESET, g.reset as u64),
                    (ACT_BASE, g.act_base as u64),
                    (WGT_BASE, g.wgt_base as u64),
                    (ACC_BASE, g.acc_base as u64),
                    (M_OUTER, g.m_outer as u64),
                    (M_INNER, g.m_inner as u64),
                    (N_SIZE, g.n_size as u64),
                    (WGT_N_STRIDE, g.wgt_n_stride as u64),
                    (ACT_M_OUTER_STRIDE, g.act_m_outer_stride as u64),
                    (ACT_M_INNER_STRIDE, g.act_m_inner_stride as u64),
                    (ACC_M_OUTER_STRIDE, g.acc_m_outer_stride as u64),
                    (ACC_M_INNER_STRIDE, g.acc_m_inner_stride as u64),
                    (K_OUTER, g.k_outer as u64),
                    (K_MID, g.k_mid as u64),
                    (K_INNER, g.k_inner as u64),
                    (ACT_K_OUTER_STRIDE, g.act_k_outer_stride as u64),
                    (ACT_K_MID_STRIDE, g.act_k_mid_stride as u64),
                ] {
                    f.put(&mut w, v);
                }
            }
            Op::Post(p) => {
                use post::*;
                for (f, v) in [
                    (ACTIVATION, p.activation as u64),
                    (BIAS, p.bias as u64),
                    (RESIDUAL, p.residual as u64),
                    (TO_ACC, p.to_acc as u64),
                    (ROUND_AWAY, p.round_away as u64),
                    (ACC_BASE, p.acc_base as u64),
                    (OUT_BASE, p.out_base as u64),
                    (M_SIZE, p.m_size as u64),
                    (N_BLOCKS, p.n_blocks as u64),
                    (ACC_M_STRIDE, p.acc_m_stride as u64),
                    (OUT_M_STRIDE, p.out_m_stride as u64),
                    (BIAS_BASE, p.bias_base as u64),
                    (RES_BASE, p.res_base as u64),
                    (RES_M_STRIDE, p.res_m_stride as u64),
                ] {
                    f.put(&mut w, v);
                }
            }
            Op::Sync(s) => sync::STAGE.put(&mut w, *s as u64),
            Op::Finish => {}
        }
        Ok(w)
    }

    /// Encodes to the 32 bytes the engine fetches from the command ring.
    pub fn to_bytes(&self) -> Result<[u8; INSTRUCTION_BYTES], IsaError> {
        let w = self.encode()?;
        let mut b = [0u8; INSTRUCTION_BYTES];
        for (chunk, word) in b.chunks_exact_mut(8).zip(w) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Ok(b)
    }

    /// Decodes 32 bytes from the command ring.
    pub fn from_bytes(bytes: &[u8; INSTRUCTION_BYTES]) -> Result<Self, IsaError> {
        let mut w = [0u64; 4];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Self::decode(&w)
    }

    /// Decodes four words, rejecting unknown opcodes, reserved bits and invalid field values.
    pub fn decode(w: &[u64; 4]) -> Result<Self, IsaError> {
        let opcode = Opcode::from_bits(header::OPCODE.get(w) as u8)?;
        let mut used = [0u64; 4];
        for f in layout(opcode) {
            f.put(&mut used, f.max());
        }
        for (i, (&word, &mask)) in w.iter().zip(&used).enumerate() {
            if word & !mask != 0 {
                return Err(IsaError::ReservedBits { opcode: opcode.mnemonic(), word: i, mask: word & !mask });
            }
        }
        let deps = Deps {
            pop_prev: header::POP_PREV.get(w) != 0,
            pop_next: header::POP_NEXT.get(w) != 0,
            push_prev: header::PUSH_PREV.get(w) != 0,
            push_next: header::PUSH_NEXT.get(w) != 0,
        };
        let g16 = |f: Field| f.get(w) as u16;
        let flag = |f: Field| f.get(w) != 0;
        let op = match opcode {
            Opcode::Load => Op::Load(Load {
                buffer: Buffer::from_bits(mem::BUFFER.get(w)),
                sram_base: g16(mem::SRAM_BASE),
                y_size: g16(mem::Y_SIZE),
                x_size: g16(mem::X_SIZE),
                x_stride: g16(mem::X_STRIDE),
                dram_addr: mem::DRAM_ADDR.get(w) as u32,
                exp_addr: mem::EXP_ADDR.get(w) as u32,
                pad: mem::PADDING.map(|f| f.get(w) as u8),
            }),
            Opcode::Store => Op::Store(Store {
                buffer: Buffer::from_bits(mem::BUFFER.get(w)),
                sram_base: g16(mem::SRAM_BASE),
                y_size: g16(mem::Y_SIZE),
                x_size: g16(mem::X_SIZE),
                x_stride: g16(mem::X_STRIDE),
                dram_addr: mem::DRAM_ADDR.get(w) as u32,
                exp_addr: mem::EXP_ADDR.get(w) as u32,
            }),
            Opcode::Gemm => Op::Gemm(Gemm {
                reset: flag(gemm::RESET),
                act_base: g16(gemm::ACT_BASE),
                wgt_base: g16(gemm::WGT_BASE),
                acc_base: g16(gemm::ACC_BASE),
                m_outer: g16(gemm::M_OUTER),
                m_inner: g16(gemm::M_INNER),
                n_size: g16(gemm::N_SIZE),
                wgt_n_stride: g16(gemm::WGT_N_STRIDE),
                act_m_outer_stride: g16(gemm::ACT_M_OUTER_STRIDE),
                act_m_inner_stride: g16(gemm::ACT_M_INNER_STRIDE),
                acc_m_outer_stride: g16(gemm::ACC_M_OUTER_STRIDE),
                acc_m_inner_stride: g16(gemm::ACC_M_INNER_STRIDE),
                k_outer: gemm::K_OUTER.get(w) as u8,
                k_mid: gemm::K_MID.get(w) as u8,
                k_inner: g16(gemm::K_INNER),
                act_k_outer_stride: g16(gemm::ACT_K_OUTER_STRIDE),
                act_k_mid_stride: g16(gemm::ACT_K_MID_STRIDE),
            }),
            Opcode::Post => Op::Post(Post {
                activation: match post::ACTIVATION.get(w) {
                    0 => Activation::None,
                    1 => Activation::Relu,
                    2 => Activation::Relu6,
                    v => {
                        return Err(IsaError::BadField {
                            opcode: "POST",
                            field: "activation",
                            value: v,
                            why: "0 none, 1 ReLU, 2 ReLU6",
                        })
                    }
                },
                bias: flag(post::BIAS),
                residual: flag(post::RESIDUAL),
                to_acc: flag(post::TO_ACC),
                round_away: flag(post::ROUND_AWAY),
                acc_base: g16(post::ACC_BASE),
                out_base: g16(post::OUT_BASE),
                m_size: g16(post::M_SIZE),
                n_blocks: g16(post::N_BLOCKS),
                acc_m_stride: g16(post::ACC_M_STRIDE),
                out_m_stride: g16(post::OUT_M_STRIDE),
                bias_base: g16(post::BIAS_BASE),
                res_base: g16(post::RES_BASE),
                res_m_stride: g16(post::RES_M_STRIDE),
            }),
            Opcode::Sync => Op::Sync(Stage::from_bits(sync::STAGE.get(w))?),
            Opcode::Finish => Op::Finish,
        };
        let inst = Instruction { op, deps };
        inst.validate()?;
        Ok(inst)
    }
}

#[allow(clippy::too_many_arguments)]
fn put_mem(
    w: &mut [u64; 4],
    buffer: Buffer,
    sram_base: u16,
    y_size: u16,
    x_size: u16,
    x_stride: u16,
    dram_addr: u32,
    exp_addr: u32,
) {
    mem::BUFFER.put(w, buffer as u64);
    mem::SRAM_BASE.put(w, sram_base as u64);
    mem::Y_SIZE.put(w, y_size as u64);
    mem::X_SIZE.put(w, x_size as u64);
    mem::X_STRIDE.put(w, x_stride as u64);
    mem::DRAM_ADDR.put(w, dram_addr as u64);
    mem::EXP_ADDR.put(w, exp_addr as u64);
}

/// Encodes a program to the bytes of a command ring (32 bytes per instruction).
pub fn assemble(program: &[Instruction]) -> Result<Vec<u8>, IsaError> {
    let mut out = Vec::with_capacity(program.len() * INSTRUCTION_BYTES);
    for inst in program {
        out.extend_from_slice(&inst.to_bytes()?);
    }
    Ok(out)
}

/// Decodes a command ring's bytes (a multiple of 32) back to instructions.
pub fn disassemble(bytes: &[u8]) -> Result<Vec<Instruction>, IsaError> {
    bytes
        .chunks(INSTRUCTION_BYTES)
        .map(|c| {
            let arr: &[u8; INSTRUCTION_BYTES] = c.try_into().map_err(|_| IsaError::BadField {
                opcode: "?",
                field: "length",
                value: c.len() as u64,
                why: "instructions are 32 bytes",
            })?;
            Instruction::from_bytes(arr)
        })
        .collect()
}
