//! # hdl: the systole engine in rust-hdl, exported to Verilog
//!
//! The engine's hardware, generated from an [`arch::EngineConfig`] and specified by the `arch` crate: its
//! golden model (`arch::golden`) is what every circuit here is tested against, bit for bit.
//! `docs/hardware.md` describes the design (block diagram, dataflow and why, timing, how to export).
//!
//! ## The compute core (issue 4, first part)
//!
//! * [`mod@array`]: the **weight-stationary systolic array** — `R × C` [`pe::ProcessingElement`]s multiplying
//!   BFP mantissas (sign-extended to 16 bits, exact 32-bit products and partial sums), cut into segments of
//!   `min(R, bs)` rows so each segment delivers the exact integer dot product of one block (or of an
//!   `R`-element slice, carried between passes when `bs > R`); below each segment an [`edge::EdgeCell`] with
//!   the block-product exponent adder (`e_a + e_w − 2·bias − 2·fraction_bits`) and an accumulator adder. It
//!   produces exactly the `arch::accum::Term` sequence the golden model feeds to `accumulate`, and the sums.
//!   Sizes 2×2, 4×4, 8×8, 16×16 and 32×32 are stamped out ([`array::STAMPED`]); mantissa widths 2..=8; any
//!   block size the segment list covers (8 to 64).
//! * [`accum`]: the **accumulator adder**, `arch::accum::accumulate` in RTL (exact sum, one nearest-even
//!   rounding with an unbounded exponent, flush below `2^−126`, saturation at `±f32::MAX`) in four stages
//!   (decode, align, add, round), registered as far as the configuration's `acc_latency` allows.
//! * [`export`]: **Verilog export** of the whole engine (`systole_engine_<R>x<C>_<format>`) or of the array
//!   and its adders alone (`systole_array_…`) as one top module ([`export::export_verilog`]), with a header
//!   recording the configuration and [`export::GENERATOR_VERSION`]; it passes `verilator --lint-only -Wall`
//!   with the waivers of [`export::verilator_waivers`] (each justified there) and Yosys synthesis (the
//!   `export` tests).
//! * [`tile`] and [`harness`]: running GEMM tiles through the simulated array cycle by cycle, on the cycle
//!   model's schedule; [`signed`]: the sign-extending cast rust-hdl lacks.
//!
//! ## The engine's units (issue 4, second part)
//!
//! Each is a stage unit or block with the port contract of `docs/hardware.md` ("The engine around the
//! array"), tested alone against the golden model, bit for bit and cycle for cycle:
//!
//! * [`buffer`]: the on-chip memories — simple dual-port RAMs with a registered read (the block-RAM
//!   template), banked by address so that the lanes of one cycle (consecutive entries) hit distinct banks;
//!   BFP buffers as an exponent plane and `bs` mantissa planes, the ACC buffer as `A` banks of `f32`.
//! * [`gemm`]: the GEMM sequencer — loop nests and strides, one weight block per cycle onto the array's load
//!   bus, one activation block per cycle, row-wide accumulator reads skewed into the columns and deskewed
//!   row-wide writes, the carried-partial-sum store for blocks longer than the array, on the cycle model's
//!   pass schedule.
//! * [`post`] and [`quant`]: the POST unit (bias, residual, ReLU/ReLU6 through the RTL accumulate rule, then
//!   the BFP quantizer or `f32` back to ACC), block column by block column so each bias is read once.
//! * [`dma`], [`load`], [`store`]: the memory port (the engine's host interface, and a host-memory model for
//!   test benches), and the LOAD and STORE units (padding, strides, both BFP planes in chunks of `B` entries,
//!   `f32` conversion, every error code the golden model raises for them).
//! * [`control`] and [`regfile`]: instruction fetch from the command ring, decode (masks generated from
//!   `arch::isa::layout`), in-order dispatch into the three stage queues, the dependency-token counters, the
//!   accumulator-port rule, FINISH, errors with their instruction index; and the BAR0 register file with its
//!   counters and interrupt.
//!
//! ## The whole engine
//!
//! [`engine`]: the front end, the four stage units, the four buffers and the array wired together, with
//! BAR0 and three memory channels as its ports ([`engine::build_engine`] for a preset). The `engine` tests
//! run whole programs (tiled layer programs of `arch::program`, a convolution using every opcode, failing
//! programs and recovery) submitted through BAR0 and compare host memory, every buffer entry, every counter
//! and the interrupt's cycle with the golden model. Its co-simulation with Verilator is the `sim` crate's.

//! ## rust-hdl 0.46, as used here
//! `#[hdl_gen]` kernels have no `let` (intermediates are `Local` signals); index expressions into arrays of
//! sub-blocks must be evaluable from loop variables and literals, so the array's update function is stamped
//! out per size by [`systolic_array!`]; nested arrays of blocks produce invalid Verilog, so PEs live in one
//! row-major `Vec`; the only multiplier is 16×16→32; `signed_bit_cast` recurses forever on the most negative
//! value ([`signed::signed_bit_cast_ext`] replaces it); the top module is named `top` unless visited under
//! another name ([`export::verilog_of`]); `bit_cast` arguments are evaluated outside the kernel's loops, so
//! they cannot use loop variables (lane arithmetic lives in sub-blocks with scalar ports); slicing an
//! expression (`(a * b).get_bits::<N>(0)`) writes invalid Verilog (slice a signal); `self.x + 1` expands to
//! `self.x + 1.into()` and does not compile in loop bounds (keep an extra field for `x + 1`).

#![warn(missing_docs)]

pub mod accum;
pub mod array;
pub mod board;
pub mod buffer;
pub mod control;
pub mod delay;
pub mod dma;
pub mod edge;
pub mod engine;
pub mod export;
pub mod gemm;
pub mod harness;
pub mod load;
pub mod pe;
pub mod post;
pub mod quant;
pub mod regfile;
pub mod signed;
pub mod store;
pub mod tile;
pub mod uart;

/// Why hardware could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HdlError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The configuration is valid but this generator does not build it yet.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// rust-hdl's circuit checks failed (an open input, a logic loop, a write to an input).
    #[error("circuit check failed: {0}")]
    Check(String),
}
