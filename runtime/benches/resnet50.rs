//! ResNet-50 at batch 1: latency of the emulated engine against onnxruntime (f32) and our f32 reference path,
//! measured in the same run on the same machine, and the modelled MAC utilisation of every layer on a 16×16
//! and a 32×32 array.
//!
//! ```text
//! cargo bench -p runtime --bench resnet50              # 5 timed runs per path
//! cargo bench -p runtime --bench resnet50 -- --runs 10
//! ```
//!
//! The network is ResNet-50 v1.5 with deterministic synthetic weights ([`runtime::models::resnet50`]); it is
//! exported to ONNX for onnxruntime (Python `onnxruntime`, found through `python3`; the row is skipped with a
//! message when it is not installed). Latencies are medians of the timed runs after one warm-up run; the
//! ratios against onnxruntime are the figures to quote, since machines here are shared and noisy.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use arch::config::EngineConfig;
use driver::{Accelerator, EmuBackend};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use runtime::compile::{self, CompiledModel, StepKind};
use runtime::graph::Graph;
use runtime::models::resnet50;
use runtime::reference;
use runtime::report::{self, LayerRow};

/// Median of some durations.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `f` once to warm up, then `runs` times; returns the median.
fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// onnxruntime's median latency for the model at `onnx` on the input at `input` (raw little-endian f32), or
/// why it could not be measured.
fn onnxruntime(
    onnx: &std::path::Path,
    input: &std::path::Path,
    shape: &[usize],
    runs: usize,
) -> Result<Duration, String> {
    let code = r#"
import sys, time, statistics
import numpy as np
import onnxruntime as ort
model, data, shape, runs = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(',')], int(sys.argv[4])
x = np.fromfile(data, dtype='<f4').reshape(shape)
s = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
name = s.get_inputs()[0].name
s.run(None, {name: x})
t = []
for _ in range(runs):
    t0 = time.perf_counter(); s.run(None, {name: x}); t.append(time.perf_counter() - t0)
print(statistics.median(t))
"#;
    let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
    let out = Command::new("python3")
        .args(["-c", code])
        .arg(onnx)
        .arg(input)
        .arg(shape.join(","))
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("python3 failed").to_string());
    }
    let secs: f64 =
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("onnxruntime output: {e}"))?;
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the compiled model once on a fresh emulated engine and returns the per-step report rows.
fn layer_rows(graph: &Graph, config: EngineConfig, x: &ArrayD<f32>) -> (CompiledModel, Vec<LayerRow>) {
    let model = compile::compile(graph, &config).expect("compile");
    let mut acc = Accelerator::open(EmuBackend::new(config, 256 << 20).expect("emulator")).expect("accelerator");
    let run = model.run(&mut acc, std::slice::from_ref(x)).expect("engine run");
    let rows = model.steps().iter().zip(&run.steps).map(|(s, c)| model.row(s, c, None, None)).collect();
    (model, rows)
}

fn main() {
    let mut runs = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N");
        }
    }
    let graph = resnet50::resnet50_synthetic(0, 1).expect("ResNet-50");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 3, 224, 224]), |_| rng.gen_range(-2.0f32..2.0));

    // --- Latency, batch 1 ---
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let onnx_path = dir.join("resnet50-synthetic.onnx");
    let input_path = dir.join("resnet50-input.f32");
    std::fs::write(&onnx_path, runtime::onnx::export::export_model(&graph, 17).expect("export")).expect("write onnx");
    let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, raw).expect("write input");

    let config = EngineConfig::default_16x16();
    let model = compile::compile(&graph, &config).expect("compile");
    let mut acc = Accelerator::open(EmuBackend::new(config, 256 << 20).expect("emulator")).expect("accelerator");
    let mut modelled = 0u64;
    let engine = time(runs, || {
        let run = model.run(&mut acc, std::slice::from_ref(&x)).expect("engine run");
        modelled = run.steps.iter().map(|s| s.stats.counters.cycles).sum();
    });
    let compile_time = time(1, || drop(compile::compile(&graph, &config).expect("compile")));
    let f32_path = time(runs, || drop(reference::run(&graph, std::slice::from_ref(&x)).expect("f32 run")));
    let ort = onnxruntime(&onnx_path, &input_path, &[1, 3, 224, 224], runs);

    println!("ResNet-50 v1.5 (synthetic weights), batch 1, median of {runs} runs after a warm-up");
    println!("{:<46} {:>12} {:>16}", "path", "latency ms", "vs onnxruntime");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |d: Duration| match &ort {
        Ok(o) => format!("{:.2}x", d.as_secs_f64() / o.as_secs_f64()),
        Err(_) => "-".into(),
    };
    match &ort {
        Ok(o) => println!("{:<46} {:>12.1} {:>16}", "onnxruntime f32 (CPU)", ms(*o), "1.00x"),
        Err(e) => println!("{:<46} {:>12} {:>16}  ({e})", "onnxruntime f32 (CPU)", "unavailable", "-"),
    }
    println!("{:<46} {:>12.1} {:>16}", "systole f32 reference path", ms(f32_path), ratio(f32_path));
    let name = |c: &EngineConfig| c.spec().unwrap_or_else(|| c.to_string());
    println!(
        "{:<46} {:>12.1} {:>16}",
        format!("systole emulated engine ({})", name(&config)),
        ms(engine),
        ratio(engine)
    );
    let at_clock = Duration::from_secs_f64(modelled as f64 / (config.clock_mhz as f64 * 1e6));
    println!(
        "{:<46} {:>12.2} {:>16}",
        format!("  modelled engine time at {} MHz", config.clock_mhz),
        ms(at_clock),
        ratio(at_clock)
    );
    println!("{:<46} {:>12.1}", "  compile (quantize weights once)", ms(compile_time));

    // --- Modelled MAC utilisation per layer ---
    let configs = [EngineConfig::default_16x16(), EngineConfig::large_32x32()];
    let results: Vec<_> = configs.iter().map(|c| layer_rows(&graph, *c, &x)).collect();
    println!();
    println!("Modelled MAC utilisation per engine layer (cycles from the golden model's cycle model)");
    print!("{:<4} {:<28} {:<16} {:<26} {:>9}", "#", "layer", "op", "shape", "MMAC");
    for c in &configs {
        print!(" {:>11} {:>6}", format!("cyc {}x{}", c.rows, c.cols), "util");
    }
    println!();
    for (i, step) in results[0].0.steps().iter().enumerate() {
        if !step.on_engine() {
            continue;
        }
        let row = &results[0].1[i];
        print!("{:<4} {:<28} {:<16} {:<26} {:>9.1}", i, row.name, row.op, row.note, row.macs as f64 / 1e6);
        for (_, rows) in &results {
            print!(" {:>11} {:>5.1}%", rows[i].cycles, 100.0 * rows[i].utilisation.unwrap_or(0.0));
        }
        println!();
    }
    for (c, (model, rows)) in configs.iter().zip(&results) {
        let convs: Vec<LayerRow> = model
            .steps()
            .iter()
            .zip(rows)
            .filter(|(s, _)| matches!(s.kind, StepKind::Conv { .. }))
            .map(|(_, r)| r.clone())
            .collect();
        let all = report::weighted_utilisation(rows, c.macs() as u64).unwrap_or(0.0);
        let conv = report::weighted_utilisation(&convs, c.macs() as u64).unwrap_or(0.0);
        let cycles: u64 = rows.iter().map(|r| r.cycles).sum();
        println!(
            "{}: weighted utilisation {:.1} % over convolutions ({} layers), {:.1} % over all engine layers; {} \
             cycles = {:.2} ms at {} MHz",
            c.spec().unwrap_or_else(|| c.to_string()),
            100.0 * conv,
            convs.len(),
            100.0 * all,
            cycles,
            cycles as f64 / (c.clock_mhz as f64 * 1e3),
            c.clock_mhz
        );
    }
}
