//! # arch: the systole hardware/software contract
//!
//! Everything that the engine's hardware and its software must agree on, defined once:
//!
//! * [`bfp`]: block-floating-point formats and the one quantizer;
//! * [`accum`]: the accumulator arithmetic (how block products and biases are added, bit for bit);
//! * [`config`]: the parameters of an engine build;
//! * [`isa`]: the instruction set and its binary encoding;
//! * [`regs`]: the BAR0 register map;
//! * [`timing`]: the cycle model;
//! * [`trace`]: the engine's instruction-trace port, from which simulators time every instruction;
//! * [`golden`]: the golden model, a plain interpreter that is exact to the bit and to the cycle;
//! * [`program`]: building programs (a DMA-window image and a tiled, double-buffered matrix product);
//! * [`fast`]: the fast, bit-identical GEMM kernel the runtime's emulated engine uses.
//!
//! `docs/architecture.md` is the human-readable specification of the same contract; tests keep it in step
//! with this crate.

pub mod accum;
pub mod bfp;
pub mod bridge;
pub mod config;
pub mod fast;
pub mod golden;
pub mod isa;
pub mod program;
pub mod regs;
pub mod timing;
pub mod trace;

pub use bfp::{BfpFormat, BfpTensor, Rounding};
pub use config::EngineConfig;
pub use golden::Engine;
pub use isa::Instruction;
