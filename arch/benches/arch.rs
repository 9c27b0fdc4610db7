//! Benchmarks of the `arch` crate's hot paths, each next to a baseline measured in the same group.
//!
//! * `quantize`: [`BfpTensor::quantize`] of 1 Mi `f32` values (MSFP12, MSFP16, MXINT8) and MSFP16
//!   dequantization, against `half`'s slice conversion `f32 → f16` of the same values.
//! * `gemm`: the reference GEMM loop ([`golden::reference_gemm`]) and the fast kernel ([`fast::gemm`]) over an
//!   engine's buffers (MSFP16), against an `ndarray` `f32` matrix product of the same shape. Throughput is in
//!   MACs (`M·N·K`) per second.
//! * `engine`: a whole [`Engine::run`] of a [`program::dense_matmul`] program with each kernel.
//!
//! `cargo bench -p arch` runs everything in well under three minutes on two cores; the
//! `throughput` example (`cargo run --release -p arch --example throughput`) prints the same
//! measurements as one table with ratios.

use std::hint::black_box;
use std::time::Duration;

use arch::bfp::{BfpFormat, BfpTensor, Rounding};
use arch::config::EngineConfig;
use arch::fast;
use arch::golden::{self, Engine, Kernel};
use arch::isa::{Activation, Gemm};
use arch::program::{self, OutputKind};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Values quantized per `quantize` iteration (a whole number of blocks of every preset).
const QUANTIZE_VALUES: usize = 1 << 20;

/// GEMM shapes `(M, K, N)`: a small tile, a ResNet-ish 3×3 convolution tile (K = 3·3·128) and a deep,
/// narrow reduction (K = 3·3·512). All fit the 16-bit GEMM fields and 64 Ki-entry buffers unscaled.
const GEMM_SHAPES: [(usize, usize, usize); 3] = [(64, 256, 64), (196, 1152, 128), (49, 4608, 32)];

/// The whole-program shape of the `engine` group.
const ENGINE_SHAPE: (usize, usize, usize) = (196, 1152, 128);

/// Deterministic, roughly standard-normal values (Box–Muller over a seeded ChaCha8 stream).
fn normal_values(len: usize, seed: u64) -> Vec<f32> {
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

fn shape_name((m, k, n): (usize, usize, usize)) -> String {
    format!("{m}x{k}x{n}")
}

/// An MSFP16 engine with every buffer at the ISA's 64 Ki-entry maximum.
fn big_config() -> EngineConfig {
    EngineConfig { act_entries: 65536, wgt_entries: 65536, acc_entries: 65536, ..EngineConfig::default_16x16() }
}

/// One GEMM problem: `A` (M×K, row-major) and `W` (N×K, one row per output column) in `f32`, and an engine
/// whose activation and weight buffers hold them quantized, dense from entry 0.
struct GemmCase {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    w: Vec<f32>,
    engine: Engine,
    gemm: Gemm,
}

impl GemmCase {
    fn new((m, k, n): (usize, usize, usize), seed: u64) -> Self {
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
        GemmCase { m, k, n, a, w, engine, gemm }
    }

    fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }

    fn reference(&mut self) -> u64 {
        let e = &mut self.engine;
        let format = e.config().format;
        golden::reference_gemm(&format, &self.gemm, &e.act, &e.wgt, &mut e.acc)
    }

    fn fast(&mut self) -> u64 {
        let e = &mut self.engine;
        let format = e.config().format;
        fast::gemm(&format, &self.gemm, &e.act, &e.wgt, &mut e.acc)
    }

    /// True when both kernels leave the same accumulator bits and saturation count.
    fn kernels_agree(&mut self) -> bool {
        let mn = self.m * self.n;
        self.engine.acc[..mn].fill(12345.0);
        let sat_fast = self.fast();
        let fast: Vec<u32> = self.engine.acc[..mn].iter().map(|x| x.to_bits()).collect();
        self.engine.acc[..mn].fill(12345.0);
        let sat_ref = self.reference();
        sat_fast == sat_ref && self.engine.acc[..mn].iter().map(|x| x.to_bits()).eq(fast)
    }

    /// The baseline's operands: `A` as M×K and `Wᵀ` as a standard-layout K×N matrix.
    fn ndarray_operands(&self) -> (Array2<f32>, Array2<f32>) {
        let a = Array2::from_shape_vec((self.m, self.k), self.a.clone()).expect("shape");
        let w = Array2::from_shape_vec((self.n, self.k), self.w.clone()).expect("shape");
        (a, w.t().as_standard_layout().into_owned())
    }
}

fn bench_quantize(c: &mut Criterion) {
    let values = normal_values(QUANTIZE_VALUES, 1);
    let mut group = c.benchmark_group("quantize");
    group
        .throughput(Throughput::Elements(QUANTIZE_VALUES as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let mut halves = vec![f16::ZERO; values.len()];
    group.bench_function("f16_convert_baseline", |b| b.iter(|| halves.convert_from_f32_slice(black_box(&values))));
    black_box(&halves);
    for (name, format) in BfpFormat::PRESETS {
        group.bench_function(name, |b| {
            b.iter(|| BfpTensor::quantize(format, Rounding::NearestEven, black_box(&values)))
        });
    }
    let msfp16 = BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &values).expect("finite");
    group.bench_function("dequantize_msfp16", |b| b.iter(|| black_box(&msfp16).dequantize()));
    group.finish();
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    // The reference loop takes ~20 ms per call on the largest shape: flat sampling keeps each benchmark near
    // its measurement time instead of criterion's 55-iteration minimum of linear sampling.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (i, &shape) in GEMM_SHAPES.iter().enumerate() {
        let mut case = GemmCase::new(shape, 100 + 2 * i as u64);
        let id = shape_name(shape);
        assert!(case.kernels_agree(), "{id}: fast::gemm and reference_gemm differ");
        group.throughput(Throughput::Elements(case.macs()));
        let (a, b_mat) = case.ndarray_operands();
        group.bench_with_input(BenchmarkId::new("ndarray_f32_baseline", &id), &(), |b, _| {
            b.iter(|| black_box(&a).dot(black_box(&b_mat)))
        });
        group.bench_with_input(BenchmarkId::new("fast", &id), &(), |b, _| b.iter(|| case.fast()));
        group.bench_with_input(BenchmarkId::new("reference", &id), &(), |b, _| b.iter(|| case.reference()));
    }
    group.finish();
}

fn bench_engine(c: &mut Criterion) {
    let (m, k, n) = ENGINE_SHAPE;
    let cfg = big_config();
    let a = normal_values(m * k, 200);
    let w = normal_values(n * k, 201);
    let qa = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &a).expect("finite");
    let qw = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &w).expect("finite");
    // A bias and ReLU, as in a convolution layer.
    let bias = normal_values(n, 202);
    let prog = program::dense_matmul(&cfg, &qa, &qw, m, n, Some(&bias), Activation::Relu, OutputKind::Bfp)
        .expect("program fits the engine");

    let mut group = c.benchmark_group("engine");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((m * k * n) as u64));
    for (name, kernel) in [("fast", Kernel::Fast), ("reference", Kernel::Reference)] {
        let mut engine = Engine::new(cfg);
        engine.set_kernel(kernel);
        let mut mem = prog.window.bytes.clone();
        group.bench_with_input(
            BenchmarkId::new(format!("dense_matmul_msfp16_{name}"), shape_name(ENGINE_SHAPE)),
            &(),
            |b, _| b.iter(|| engine.run(&prog.program, &mut mem).expect("program runs")),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_quantize, bench_gemm, bench_engine);
criterion_main!(benches);
