//! Throughput of the `arch` crate's hot paths, as one table with ratios against baselines run in the same
//! command. The criterion benchmarks (`cargo bench -p arch`) measure the same operations; this is the quick,
//! dependency-free version whose output goes into notes.
//!
//! ```text
//! cargo run --release -p arch --example throughput
//! ```
//!
//! Each operation is repeated until at least 0.5 s has passed, three times; the best of the three mean times
//! per call is reported. Before anything is timed, the fast GEMM kernel and the reference loop are checked to
//! produce identical bits on every shape, and whole-program runs with each kernel identical DMA windows.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use arch::bfp::{BfpFormat, BfpTensor, Rounding};
use arch::golden::{Engine, Kernel};
use common::{
    engine_program, normal_values, shape_name, GemmCase, ENGINE_SHAPE, GEMM_SHAPES, KERNELS, QUANTIZE_VALUES,
};
use half::f16;
use half::slice::HalfFloatSliceExt;

const MIN_ROUND: Duration = Duration::from_millis(500);
const ROUNDS: usize = 3;

/// Best-of-[`ROUNDS`] mean seconds per call, each round repeating `f` for at least [`MIN_ROUND`].
fn measure<R>(mut f: impl FnMut() -> R) -> f64 {
    black_box(f()); // warm caches, page in buffers, start threads once
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut calls = 0u32;
        let elapsed = loop {
            black_box(f());
            calls += 1;
            let e = start.elapsed();
            if e >= MIN_ROUND {
                break e;
            }
        };
        best = best.min(elapsed.as_secs_f64() / calls as f64);
    }
    best
}

/// The example's extra check on top of the shared [`GemmCase`].
impl GemmCase {
    /// Asserts fast and reference give identical bits, and that they compute `A·Wᵀ` of the quantized
    /// operands (so the benchmark times the intended product, not a mis-laid-out one).
    fn check(&mut self) {
        let (reference, ref_sat) = self.run_checked(Kernel::Reference);
        let (fast, fast_sat) = self.run_checked(Kernel::Fast);
        assert_eq!(ref_sat, fast_sat, "saturation counts differ");
        if let Some(i) = (0..reference.len()).find(|&i| reference[i] != fast[i]) {
            panic!(
                "{}: fast and reference GEMM differ at accumulator {i}: {:#010x} vs {:#010x}",
                shape_name((self.m, self.k, self.n)),
                fast[i],
                reference[i]
            );
        }
        let (a, w) = (self.qa.dequantize(), self.qw.dequantize());
        for (idx, &bits) in reference.iter().enumerate().step_by(97) {
            let (row, col) = (idx / self.n, idx % self.n);
            let (ar, wr) = (&a[row * self.k..(row + 1) * self.k], &w[col * self.k..(col + 1) * self.k]);
            let exact: f64 = ar.iter().zip(wr).map(|(&x, &y)| x as f64 * y as f64).sum();
            let scale: f64 = ar.iter().zip(wr).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
            let got = f32::from_bits(bits) as f64;
            assert!((got - exact).abs() <= 1e-5 * scale, "accumulator {idx}: {got} vs exact {exact}");
        }
    }
}

/// One line of the table.
struct Row {
    group: &'static str,
    op: String,
    shape: String,
    secs: f64,
    /// Values (quantize) or MACs (gemm, engine) per call.
    work: u64,
    unit: &'static str,
    /// Seconds per call of the group's baseline on the same work.
    baseline_secs: f64,
}

fn si(x: f64) -> String {
    let (v, p) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{v:7.2} {p}")
}

fn time_str(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:8.3} s ")
    } else if s >= 1e-3 {
        format!("{:8.3} ms", s * 1e3)
    } else {
        format!("{:8.1} µs", s * 1e6)
    }
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows: Vec<Row> = Vec::new();

    // ---- quantize -------------------------------------------------------------------------------------
    let values = normal_values(QUANTIZE_VALUES, 1);
    let n = QUANTIZE_VALUES as u64;
    let qshape = format!("{} Mi f32", QUANTIZE_VALUES >> 20);
    let mut halves = vec![f16::ZERO; values.len()];
    let f16_secs = measure(|| halves.convert_from_f32_slice(black_box(&values)));
    let quant_row = |op: String, secs: f64| Row {
        group: "quantize",
        op,
        shape: qshape.clone(),
        secs,
        work: n,
        unit: "values/s",
        baseline_secs: f16_secs,
    };
    rows.push(quant_row("f16 convert (baseline)".into(), f16_secs));
    for (name, format) in BfpFormat::PRESETS {
        let secs = measure(|| BfpTensor::quantize(format, Rounding::NearestEven, black_box(&values)));
        rows.push(quant_row(format!("quantize {name}"), secs));
    }
    let msfp16 = BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &values).expect("finite");
    let secs = measure(|| black_box(&msfp16).dequantize());
    rows.push(quant_row("dequantize msfp16".into(), secs));

    // ---- gemm -----------------------------------------------------------------------------------------
    let mut engine_baseline = None;
    for (i, &shape) in GEMM_SHAPES.iter().enumerate() {
        let mut case = GemmCase::new(shape, 100 + 2 * i as u64);
        case.check();
        let (a, b) = case.ndarray_operands();
        let base = measure(|| black_box(&a).dot(black_box(&b)));
        let fast = measure(|| case.fast());
        let reference = measure(|| case.reference());
        if shape == ENGINE_SHAPE {
            engine_baseline = Some(base);
        }
        for (op, secs) in
            [("ndarray f32 dot (baseline)", base), ("fast::gemm msfp16", fast), ("reference_gemm msfp16", reference)]
        {
            rows.push(Row {
                group: "gemm",
                op: op.into(),
                shape: shape_name(shape),
                secs,
                work: case.macs(),
                unit: "MAC/s",
                baseline_secs: base,
            });
        }
    }

    // ---- engine ---------------------------------------------------------------------------------------
    let (m, k, nn) = ENGINE_SHAPE;
    let (cfg, prog) = engine_program();
    let mut windows = Vec::new();
    let mut modelled_cycles = 0;
    for (name, kernel) in KERNELS {
        let mut engine = Engine::new(cfg);
        engine.set_kernel(kernel);
        let mut mem = prog.window.bytes.clone();
        let report = engine.run(&prog.program, &mut mem).expect("program runs");
        modelled_cycles = report.counters.cycles;
        windows.push(mem.clone());
        let secs = measure(|| engine.run(&prog.program, &mut mem).expect("program runs"));
        rows.push(Row {
            group: "engine",
            op: format!("Engine::run dense_matmul ({name})"),
            shape: shape_name(ENGINE_SHAPE),
            secs,
            work: (m * k * nn) as u64,
            unit: "MAC/s",
            baseline_secs: engine_baseline.expect("engine shape is a gemm shape"),
        });
    }
    assert!(
        windows[0] == windows[1],
        "whole-program runs with the fast and reference kernels left different DMA windows"
    );

    // ---- report ---------------------------------------------------------------------------------------
    println!(
        "arch throughput: best of {ROUNDS} rounds of ≥{} ms each; {threads} hardware thread(s)",
        MIN_ROUND.as_millis()
    );
    println!(
        "checked: fast::gemm == reference_gemm bit for bit on {} shapes; Engine::run leaves identical DMA windows with both kernels",
        GEMM_SHAPES.len()
    );
    println!();
    let header = ["group", "operation", "shape", "time/call", "throughput", "vs baseline"];
    let mut table: Vec<[String; 6]> = vec![header.map(String::from)];
    for r in &rows {
        table.push([
            r.group.to_string(),
            r.op.clone(),
            r.shape.clone(),
            time_str(r.secs).trim().to_string(),
            format!("{}{}", si(r.work as f64 / r.secs).trim_start(), r.unit),
            format!("{:.3}x", r.baseline_secs / r.secs),
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| if c < 3 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        println!("| {} |", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| if c < 3 { "-".repeat(w) } else { format!("{}:", "-".repeat(w - 1)) })
                .collect();
            println!("| {} |", rule.join(" | "));
        }
    }
    println!();
    println!("baselines: quantize rows vs `half` f32→f16 slice conversion of the same 1 Mi values;");
    println!("           gemm and engine rows vs ndarray f32 `dot` (matrixmultiply, one thread) of the same M×K·K×N.");
    println!("shapes are M×K×N; gemm throughput counts M·N·K MACs; all GEMMs are MSFP16 (block 16).");
    println!("fast::gemm spreads rows over threads for products ≥ 2^21 MACs (here: every shape but 64x256x64).");
    let speedup = |shape: &str| {
        let get =
            |op: &str| rows.iter().find(|r| r.shape == shape && r.op.starts_with(op)).map(|r| r.secs).expect("row");
        get("reference_gemm") / get("fast::gemm")
    };
    let list: Vec<String> =
        GEMM_SHAPES.iter().map(|&s| format!("{} {:.1}x", shape_name(s), speedup(&shape_name(s)))).collect();
    println!("fast vs reference kernel: {}", list.join(", "));
    let engine_fast = rows.iter().find(|r| r.group == "engine").map(|r| r.secs).expect("engine row");
    println!(
        "modelled hardware ({}x{} @ {} MHz): {} cycles = {}; the emulation with the fast kernel takes {} ({:.0}x slower than the modelled FPGA)",
        cfg.rows,
        cfg.cols,
        cfg.clock_mhz,
        modelled_cycles,
        time_str(modelled_cycles as f64 / (cfg.clock_mhz as f64 * 1e6)).trim(),
        time_str(engine_fast).trim(),
        engine_fast * cfg.clock_mhz as f64 * 1e6 / modelled_cycles as f64
    );
}
