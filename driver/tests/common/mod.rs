//! Fixtures shared by the driver's backend tests: one program with its golden-model result, and one program
//! that fails, so that every backend is held to the same expectations.

#![allow(dead_code)]

use arch::bfp::{BfpTensor, Rounding};
use arch::config::EngineConfig;
use arch::golden::{Counters, Engine};
use arch::isa::{Activation, Deps, Instruction, Op, Stage};
use arch::program::{dense_matmul, MatmulProgram, OutputKind, OutputLocation};
use rand::{Rng, SeedableRng};

/// A tiled matmul (45×64 · 64×32, bias, ReLU, f32 output) built for `cfg`, with what the golden model makes of
/// it: the whole DMA window after the run, its counters, and the byte range of the output.
pub struct GoldenMatmul {
    /// The program and its DMA-window image.
    pub built: MatmulProgram,
    /// The DMA window after the golden model ran the program.
    pub memory: Vec<u8>,
    /// The golden model's counters for the run.
    pub counters: Counters,
    /// Bytes of the window holding the f32 output.
    pub output: std::ops::Range<usize>,
}

/// Builds the matmul from deterministic random data and runs it on the golden model.
pub fn golden_matmul(cfg: EngineConfig) -> GoldenMatmul {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut random = |n: usize| (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let (m, k, n) = (45, 64, 32);
    let a = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &random(m * k)).unwrap();
    let w = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &random(n * k)).unwrap();
    let bias = random(n);
    let built = dense_matmul(&cfg, &a, &w, m, n, Some(&bias), Activation::Relu, OutputKind::F32).unwrap();
    let OutputLocation::F32(out) = built.output else { unreachable!("f32 output was asked for") };
    let mut memory = built.window.bytes.clone();
    let counters = Engine::new(cfg).run(&built.program, &mut memory).unwrap().counters;
    GoldenMatmul { built, memory, counters, output: out as usize..out as usize + m * n * 4 }
}

/// A program whose second instruction pops a token nobody pushed: the engine stops with `TokenUnderflow` at 1.
pub fn token_underflow() -> [Instruction; 3] {
    [
        Instruction::new(Op::Sync(Stage::Load)),
        Instruction::new(Op::Sync(Stage::Compute)).with_deps(Deps { pop_prev: true, ..Deps::NONE }),
        Instruction::new(Op::Finish),
    ]
}
