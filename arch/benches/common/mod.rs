//! Setup shared by the criterion benchmarks (`benches/arch.rs`, as `mod common;`) and the `throughput`
//! example (`examples/throughput.rs`, through `#[path]`), so both measure the same values, shapes and programs.
//! Every item here is used by both, so neither sees dead code.

use arch::bfp::{BfpTensor, Rounding};
use arch::config::EngineConfig;
use arch::fast;
use arch::golden::{self, Engine, Kernel};
use arch::isa::{Activation, Gemm};
use arch::program::{self, MatmulProgram, OutputKind};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Values quantized per `quantize` call (a whole number of blocks of every preset).
pub const QUANTIZE_VALUES: usize = 1 << 20;

/// GEMM shapes `(M, K, N)`: a small tile, a ResNet-ish 3×3 convolution tile (K = 3·3·128) and a deep,
/// narrow reduction (K = 3·3·512). All fit the 16-bit GEMM fields and 64 Ki-entry buffers unscaled.
pub const GEMM_SHAPES: [(usize, usize, usize); 3] = [(64, 256, 64), (196, 1152, 128), (49, 4608, 32)];

/// The whole-program (`engine`) shape: one of [`GEMM_SHAPES`], so the example shares that shape's baseline.
pub const ENGINE_SHAPE: (usize, usize, usize) = (196, 1152, 128);

/// Deterministic, roughly standard-normal values (Box–Muller over a seeded ChaCha8 stream).
pub fn normal_values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(len + 1);
    while v.len() < len {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        v.push((r * t.cos()) as f32);
        v.push((r * t.sin()) as f32);
    }
    v.truncate(len);
    v
}

/// A shape's label, `MxKxN`, as used in benchmark ids and table rows.
pub fn shape_name((m, k, n): (usize, usize, usize)) -> String {
    format!("{m}x{k}x{n}")
}

/// An MSFP16 engine with every buffer at the ISA's 64 Ki-entry maximum.
pub fn big_config() -> EngineConfig {
    EngineConfig { act_entries: 65536, wgt_entries: 65536, acc_entries: 65536, ..EngineConfig::default_16x16() }
}

/// One GEMM problem: `A` (M×K, row-major) and `W` (N×K, one row per output column) in `f32` and quantized
/// to [`big_config`]'s format, and an engine whose activation and weight buffers hold the quantized
/// operands, dense from entry 0.
pub struct GemmCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Vec<f32>,
    pub w: Vec<f32>,
    pub qa: BfpTensor,
    pub qw: BfpTensor,
    pub engine: Engine,
    pub gemm: Gemm,
}

impl GemmCase {
    /// Builds the problem of `shape` with `A` from `seed` and `W` from `seed + 1` (see [`normal_values`]).
    pub fn new((m, k, n): (usize, usize, usize), seed: u64) -> Self {
        let cfg = big_config();
        let format = cfg.format;
        let bs = format.block_size();
        assert_eq!(k % bs, 0, "K must be a whole number of blocks");
        let kb = k / bs;
        assert!(m * kb <= cfg.act_entries && n * kb <= cfg.wgt_entries && m * n <= cfg.acc_entries);
        let a = normal_values(m * k, seed);
        let w = normal_values(n * k, seed + 1);
        let qa = BfpTensor::quantize(format, Rounding::NearestEven, &a).expect("finite");
        let qw = BfpTensor::quantize(format, Rounding::NearestEven, &w).expect("finite");
        let mut engine = Engine::new(cfg);
        engine.act.exponents[..qa.num_blocks()].copy_from_slice(qa.exponent_codes());
        engine.act.mantissas[..qa.len()].copy_from_slice(qa.mantissas());
        engine.wgt.exponents[..qw.num_blocks()].copy_from_slice(qw.exponent_codes());
        engine.wgt.mantissas[..qw.len()].copy_from_slice(qw.mantissas());
        let field = |v: usize| u16::try_from(v).expect("fits a 16-bit GEMM field");
        let gemm = Gemm::dense(field(m), field(n), field(kb), true);
        GemmCase { m, k, n, a, w, qa, qw, engine, gemm }
    }

    /// Multiply–accumulates per GEMM (`M·N·K`), the unit of throughput.
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }

    /// Runs [`golden::reference_gemm`] on the engine's buffers; returns the saturation count.
    pub fn reference(&mut self) -> u64 {
        let e = &mut self.engine;
        let format = e.config().format;
        golden::reference_gemm(&format, &self.gemm, &e.act, &e.wgt, &mut e.acc)
    }

    /// Runs [`fast::gemm`] on the engine's buffers; returns the saturation count.
    pub fn fast(&mut self) -> u64 {
        let e = &mut self.engine;
        let format = e.config().format;
        fast::gemm(&format, &self.gemm, &e.act, &e.wgt, &mut e.acc)
    }

    /// Runs a kernel on accumulators poisoned with a sentinel; returns the result's bits and saturations.
    pub fn run_checked(&mut self, kernel: Kernel) -> (Vec<u32>, u64) {
        let mn = self.m * self.n;
        self.engine.acc[..mn].fill(12345.0);
        let saturations = match kernel {
            Kernel::Reference => self.reference(),
            Kernel::Fast => self.fast(),
        };
        let bits = self.engine.acc[..mn].iter().map(|x| x.to_bits()).collect();
        (bits, saturations)
    }

    /// The baseline's operands: `A` as M×K and `Wᵀ` as a standard-layout K×N matrix.
    pub fn ndarray_operands(&self) -> (Array2<f32>, Array2<f32>) {
        let a = Array2::from_shape_vec((self.m, self.k), self.a.clone()).expect("shape");
        let w = Array2::from_shape_vec((self.n, self.k), self.w.clone()).expect("shape");
        (a, w.t().as_standard_layout().into_owned())
    }
}

/// The kernels a whole-program run is measured with, and their labels.
pub const KERNELS: [(&str, Kernel); 2] = [("fast", Kernel::Fast), ("reference", Kernel::Reference)];

/// The `engine` workload on [`big_config`]: a [`program::dense_matmul`] of [`ENGINE_SHAPE`] with `A` and `W`
/// from seeds 200 and 201 and a bias from seed 202 followed by ReLU, as in a convolution layer; output BFP.
pub fn engine_program() -> (EngineConfig, MatmulProgram) {
    let cfg = big_config();
    let case = GemmCase::new(ENGINE_SHAPE, 200);
    let bias = normal_values(case.n, 202);
    let prog =
        program::dense_matmul(&cfg, &case.qa, &case.qw, case.m, case.n, Some(&bias), Activation::Relu, OutputKind::Bfp)
            .expect("program fits the engine");
    (cfg, prog)
}
