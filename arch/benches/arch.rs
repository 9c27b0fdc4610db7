//! Benchmarks of the `arch` crate's hot paths, each next to a baseline measured in the same group.
//!
//! * `quantize`: [`BfpTensor::quantize`] of 1 Mi `f32` values (MSFP12, MSFP16, MXINT8) and MSFP16
//!   dequantization, against `half`'s slice conversion `f32 → f16` of the same values.
//! * `gemm`: the reference GEMM loop ([`golden::reference_gemm`](arch::golden::reference_gemm)) and the fast
//!   kernel ([`fast::gemm`](arch::fast::gemm)) over an engine's buffers (MSFP16), against an `ndarray` `f32`
//!   matrix product of the same shape. Throughput is in MACs (`M·N·K`) per second.
//! * `engine`: a whole [`Engine::run`] of a [`program::dense_matmul`](arch::program::dense_matmul) program
//!   with each kernel.
//!
//! `cargo bench -p arch` runs everything in well under three minutes on two cores; the
//! `throughput` example (`cargo run --release -p arch --example throughput`) prints the same
//! measurements as one table with ratios. Their shared setup is in `common/mod.rs`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use arch::bfp::{BfpFormat, BfpTensor, Rounding};
use arch::golden::{Engine, Kernel};
use common::{
    engine_program, normal_values, shape_name, GemmCase, ENGINE_SHAPE, GEMM_SHAPES, KERNELS, QUANTIZE_VALUES,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use half::f16;
use half::slice::HalfFloatSliceExt;

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
        // Both kernels must leave the same accumulator bits and saturation count.
        let agree = case.run_checked(Kernel::Fast) == case.run_checked(Kernel::Reference);
        assert!(agree, "{id}: fast::gemm and reference_gemm differ");
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
    let (cfg, prog) = engine_program();

    let mut group = c.benchmark_group("engine");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((m * k * n) as u64));
    for (name, kernel) in KERNELS {
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
