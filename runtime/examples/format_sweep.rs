//! Accuracy and cost of block-floating-point formats on a real model: ResNet-20 on the 200 real CIFAR-10 test
//! images of the data folder, every convolution and the classifier on the default 16×16 emulated engine
//! through the driver, the rest on the f32 reference path, one row per format against the f32 baseline.
//!
//! ```text
//! cargo run --release -p runtime --example format_sweep [FORMAT…]
//! ```
//!
//! FORMAT is any name `BfpFormat` parses (`msfp12`, `mxint8`, `bfp16m5`, `bfp32m6e8`, …); without any, the sweep
//! covers MSFP12, MSFP16, MXINT8 and `bfp16m4`..`bfp16m8`, `bfp32m4`..`bfp32m8` (each distinct format runs once: `bfp16m4` is MSFP12, `bfp16m8`
//! MSFP16, `bfp32m8` MXINT8). The data folder is
//! `$SYSTOLE_DATA`, or `../shared/data` beside the workspace. Formats run on all available cores, one engine per
//! format.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arch::bfp::BfpFormat;
use arch::config::EngineConfig;
use driver::{Accelerator, EmuBackend};
use ndarray::{ArrayD, ArrayViewD};
use runtime::compile;
use runtime::datasets;
use runtime::graph::Graph;
use runtime::onnx::{self, ImportOptions};
use runtime::reference;

/// The default sweep.
const FORMATS: [&str; 13] = [
    "msfp12", "msfp16", "mxint8", "bfp16m4", "bfp16m5", "bfp16m6", "bfp16m7", "bfp16m8", "bfp32m4", "bfp32m5",
    "bfp32m6", "bfp32m7", "bfp32m8",
];

/// One row of the table.
#[derive(Clone)]
struct Row {
    name: String,
    correct: usize,
    agree: usize,
    sqnr_db: f64,
    max_err: f32,
    engine_nodes: usize,
    cycles: u64,
    macs: u64,
    wall: Duration,
}

fn argmax(v: ArrayViewD<f32>) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

/// Compares `logits` with the f32 baseline and the labels.
fn score(name: String, logits: &ArrayD<f32>, baseline: &ArrayD<f32>, labels: &[usize]) -> Row {
    let (mut correct, mut agree) = (0, 0);
    for ((l, b), &label) in logits.outer_iter().zip(baseline.outer_iter()).zip(labels) {
        let (l, b) = (argmax(l.view()), argmax(b.view()));
        correct += (l == label) as usize;
        agree += (l == b) as usize;
    }
    let signal: f64 = baseline.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = baseline.iter().zip(logits).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let max_err = baseline.iter().zip(logits).map(|(&a, &b)| (a - b).abs()).fold(0.0, f32::max);
    let sqnr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
    let wall = Duration::ZERO;
    Row { name, correct, agree, sqnr_db, max_err, engine_nodes: 0, cycles: 0, macs: 0, wall }
}

/// Runs the graph with `format` on a fresh default 16×16 emulated engine.
fn run_format(format: BfpFormat, graph: &Graph, x: &ArrayD<f32>, baseline: &ArrayD<f32>, labels: &[usize]) -> Row {
    let config = EngineConfig::default().with_format(format);
    let mut acc = Accelerator::open(EmuBackend::new(config, 64 << 20).expect("emulator")).expect("accelerator");
    let t = Instant::now();
    let model = compile::compile(graph, &config).expect("compile");
    let run = model.run(&mut acc, std::slice::from_ref(x)).expect("engine run");
    let wall = t.elapsed();
    Row {
        engine_nodes: model.steps().iter().filter(|s| s.on_engine()).count(),
        cycles: run.steps.iter().map(|r| r.stats.counters.cycles).sum(),
        macs: run.steps.iter().map(|r| r.stats.counters.macs).sum(),
        wall,
        ..score(format.to_string(), &run.values[0], baseline, labels)
    }
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<String> = if names.is_empty() { FORMATS.iter().map(|s| s.to_string()).collect() } else { names };
    let formats: Vec<BfpFormat> =
        names.iter().map(|n| n.parse().unwrap_or_else(|e| panic!("format {n:?}: {e}"))).collect();
    let data = match std::env::var_os("SYSTOLE_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };

    let t = Instant::now();
    let (x, labels) = datasets::cifar10_ic01(&data.join("cifar10-ic01"))
        .unwrap_or_else(|e| panic!("CIFAR-10 images in {} (set SYSTOLE_DATA): {e}", data.display()));
    let x: ArrayD<f32> = x.into_dyn();
    let n = labels.len();
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: n }).expect("import");
    let baseline = reference::run(&graph, std::slice::from_ref(&x)).expect("f32 run").remove(0);
    let mut f32_row = score("f32".into(), &baseline, &baseline, &labels);
    f32_row.wall = t.elapsed();

    // One engine per distinct format (`bfp16m4` is MSFP12, …), formats shared out over the cores.
    let mut distinct: Vec<BfpFormat> = Vec::new();
    for f in &formats {
        if !distinct.contains(f) {
            distinct.push(*f);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(distinct.len()).max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; distinct.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&format) = distinct.get(i) else { break };
                let row = run_format(format, &graph, &x, &baseline, &labels);
                eprintln!("{:>10}: done in {:.1?}", row.name, row.wall);
                results.lock().unwrap()[i] = Some(row);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let rows: Vec<Row> = names
        .iter()
        .zip(&formats)
        .map(|(name, f)| {
            let mut row = results[distinct.iter().position(|d| d == f).unwrap()].clone().expect("every format ran");
            // Name the row as asked, noting a preset it equals (`bfp16m4 (=msfp12)`).
            row.name = match row.name.starts_with("bfp") || row.name == *name {
                true => name.clone(),
                false => format!("{name} (={})", row.name),
            };
            row
        })
        .collect();

    let config = EngineConfig::default();
    let lanes = config.macs() as f64;
    println!(
        "ResNet-20 on {n} real CIFAR-10 test images; convolutions and classifier on the emulated {}x{} engine \
         ({} threads), the rest in f32",
        config.rows, config.cols, threads
    );
    println!(
        "{:<18} {:>9} {:>9} {:>5} {:>10} {:>9} {:>7} {:>13} {:>7} {:>8}",
        "format", "correct", "agree", "lost", "SQNR dB", "max|err|", "engine", "cycles/image", "util %", "wall s"
    );
    let f32_correct = f32_row.correct;
    for r in std::iter::once(&f32_row).chain(&rows) {
        let engine = if r.name == "f32" { "-".to_string() } else { r.engine_nodes.to_string() };
        let (cycles, util) = if r.cycles == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.0}", r.cycles as f64 / n as f64),
                format!("{:.1}", 100.0 * r.macs as f64 / (r.cycles as f64 * lanes)),
            )
        };
        println!(
            "{:<18} {:>9} {:>9} {:>5} {:>10.1} {:>9.4} {:>7} {:>13} {:>7} {:>8.1}",
            r.name,
            format!("{}/{n}", r.correct),
            format!("{}/{n}", r.agree),
            f32_correct as i64 - r.correct as i64,
            r.sqnr_db,
            r.max_err,
            engine,
            cycles,
            util,
            r.wall.as_secs_f64(),
        );
    }
}
