//! Simulation speed: simulated clock cycles per second of the whole engine in rust-hdl's simulator and in
//! every Verilator model of this build (single- and multi-threaded), on the same layer program through the
//! same driver, with the golden model's emulated engine for scale; and, on request, a whole ResNet-50 image
//! through the RTL (projected from the measured speed, then measured), bit-checked against the emulated engine.
//!
//! ```text
//! SYSTOLE_SIM_MODELS=8x8,8x8+t2,16x16,16x16+t2,32x32,32x32+t2 \
//!   cargo bench -p sim --features verilator --bench speed
//! cargo bench -p sim --features verilator --bench speed -- --resnet50 16x16+t2   # + ResNet-50 (minutes)
//! cargo bench -p sim --features verilator --bench speed -- --no-rust-hdl         # skip rust-hdl (slow)
//! ```
//!
//! The ratio against rust-hdl, run in the same command, is the figure to quote: machines here are shared.

use std::time::{Duration, Instant};

use arch::bfp::{BfpTensor, Rounding};
use arch::isa::Activation;
use arch::program::{matmul, Matmul, MatmulProgram, OutputKind};
use arch::EngineConfig;
use driver::{Accelerator, Backend, EmuBackend};
use sim::{models, rust_hdl_backend, VerilatorBackend};

/// Bytes of every device's DMA window.
const WINDOW: usize = 64 << 20;
/// Wall time each Verilator and emulated measurement runs for at least.
const MIN_WALL: Duration = Duration::from_millis(1500);

/// Deterministic values in [-1, 1) (a linear congruential generator: the bench needs no statistics).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The benchmark layer of an engine: `rows` rows, a reduction of 2 blocks and `cols` output columns, with
/// bias and ReLU, its output re-quantized to BFP (every stage of the engine works).
fn layer(cfg: &EngineConfig) -> MatmulProgram {
    let bs = cfg.format.block_size();
    let (m, k, n) = (cfg.rows.max(8), 2 * bs, cfg.cols.max(bs));
    let q = |v: Vec<f32>| BfpTensor::quantize(cfg.format, Rounding::NearestEven, &v).expect("quantize");
    let (a, w) = (q(values(m * k, 1)), q(values(n * k, 2)));
    let bias = values(n, 3);
    let spec = Matmul {
        a: &a,
        w: &w,
        m,
        n,
        bias: Some(&bias),
        residual: None,
        activation: Activation::Relu,
        output: OutputKind::Bfp,
    };
    matmul(cfg, &spec).expect("the benchmark layer fits")
}

/// One measurement: simulated cycles (device cycles of the runs) and the wall time they took. Repeated runs of
/// one program need not take the same cycles (the program's place in the command ring moves), so means over
/// different numbers of runs can differ by a cycle between simulators; run for run they are equal (the tests
/// compare them).
struct Speed {
    runs: u64,
    cycles: u64,
    wall: Duration,
}

impl Speed {
    fn per_second(&self) -> f64 {
        self.cycles as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `layer` on `acc` once, then (unless `once`) again until [`MIN_WALL`] has passed.
fn measure<B: Backend>(acc: &mut Accelerator<B>, layer: &MatmulProgram, once: bool) -> Speed {
    acc.set_timeout(Duration::from_secs(3600));
    let mut s = Speed { runs: 0, cycles: 0, wall: Duration::ZERO };
    while s.runs == 0 || (!once && s.wall < MIN_WALL) {
        acc.write_data(&layer.window.bytes).expect("the layer fits the window");
        let t = Instant::now();
        let stats = acc.run(&layer.program).expect("the layer runs");
        s.wall += t.elapsed();
        s.cycles += stats.counters.cycles;
        s.runs += 1;
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rust_hdl = !args.iter().any(|a| a == "--no-rust-hdl");
    let resnet50 = args.iter().position(|a| a == "--resnet50").map(|i| args.get(i + 1).cloned());
    if models().is_empty() {
        eprintln!("no Verilator models in this build: run with --features verilator (and SYSTOLE_SIM_MODELS)");
    }
    let mut presets: Vec<&str> = models().iter().map(|m| m.preset).collect();
    presets.dedup();

    println!("Simulated cycles per second of the whole engine, one benchmark layer (rows x 2 blocks x cols, bias,");
    println!("ReLU, BFP output) through the driver; ratios against rust-hdl's simulator of the same engine.\n");
    println!(
        "| engine | simulator | threads | mean cycles per run | runs | wall | cycles/s | vs rust-hdl |\n|---|---|---|---|---|---|---|---|"
    );
    let mut best_16x16: Option<(String, f64)> = None;
    for preset in presets {
        let cfg: EngineConfig = preset.parse().expect("a preset");
        let layer = layer(&cfg);
        let mut baseline = None;
        let row = |sim: &str, threads: u32, s: &Speed, baseline: Option<f64>| {
            let ratio = baseline.map_or("-".to_string(), |b| format!("{:.0}x", s.per_second() / b));
            println!(
                "| {preset} | {sim} | {threads} | {} | {} | {:.2?} | {:.0} | {ratio} |",
                s.cycles / s.runs,
                s.runs,
                s.wall,
                s.per_second(),
            );
        };
        if rust_hdl {
            let backend = rust_hdl_backend(&cfg, WINDOW).expect("a rust-hdl engine");
            let mut acc = Accelerator::open(backend).expect("open");
            let s = measure(&mut acc, &layer, true);
            baseline = Some(s.per_second());
            row("rust-hdl", 1, &s, baseline);
        }
        for m in models().iter().filter(|m| m.preset == preset) {
            let mut acc = Accelerator::open(VerilatorBackend::new(m.name, WINDOW).expect("model")).expect("open");
            let s = measure(&mut acc, &layer, false);
            row("Verilator", m.threads, &s, baseline);
            if preset == "16x16" && best_16x16.as_ref().is_none_or(|b| s.per_second() > b.1) {
                best_16x16 = Some((m.name.to_string(), s.per_second()));
            }
        }
        let mut acc = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emu")).expect("open");
        let s = measure(&mut acc, &layer, false);
        row("golden model (emu)", 1, &s, baseline);
    }

    if let Some(model) = resnet50 {
        let model = model.or_else(|| best_16x16.as_ref().map(|b| b.0.clone())).unwrap_or_else(|| "16x16".into());
        let speed = best_16x16.as_ref().map(|b| b.1);
        resnet50_through_the_rtl(&model, speed);
    }
}

/// ResNet-50 v1.5 (synthetic weights, one 224×224 image) compiled for the model's engine: the golden model's
/// cycle count, the projected RTL wall time at `speed` cycles/s, and the measured RTL run, whose logits and
/// per-layer counters must equal the emulated engine's.
fn resnet50_through_the_rtl(model: &str, speed: Option<f64>) {
    use runtime::compile;
    use runtime::models::resnet50;
    let graph = resnet50::resnet50_synthetic(0, 1).expect("ResNet-50");
    let mut rtl = Accelerator::open(VerilatorBackend::new(model, WINDOW).expect("model")).expect("open");
    rtl.set_timeout(Duration::from_secs(7200));
    let cfg = *rtl.config();
    let mut emu = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emu")).expect("open");
    let compiled = compile::compile(&graph, &cfg).expect("compile");
    let x = ndarray::ArrayD::from_shape_vec(vec![1, 3, 224, 224], values(3 * 224 * 224, 4)).expect("input");
    let t = Instant::now();
    let want = compiled.run(&mut emu, std::slice::from_ref(&x)).expect("emulated run");
    let emu_wall = t.elapsed();
    let cycles: u64 = want.steps.iter().map(|s| s.stats.counters.cycles).sum();
    println!("\nResNet-50 v1.5, one image, on verilator:{model}:");
    println!("- golden model: {cycles} cycles (emulated engine {emu_wall:.1?})");
    if let Some(speed) = speed {
        println!("- projected at {speed:.0} cycles/s (the benchmark layer): {:.0} s", cycles as f64 / speed);
    }
    let t = Instant::now();
    let got = compiled.run(&mut rtl, std::slice::from_ref(&x)).expect("RTL run");
    let wall = t.elapsed();
    let same_bits = got.values[0].iter().zip(want.values[0].iter()).all(|(a, b)| a.to_bits() == b.to_bits());
    let same_counters = got.steps.iter().zip(&want.steps).all(|(g, w)| g.stats.counters == w.stats.counters);
    println!(
        "- measured: {wall:.1?} ({:.0} cycles/s); logits bit-identical to the emulated engine: {same_bits}; every \
         layer's counters equal: {same_counters}",
        cycles as f64 / wall.as_secs_f64()
    );
    assert!(same_bits && same_counters, "the RTL differs from the golden model on ResNet-50");
}
