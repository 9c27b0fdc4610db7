//! `systole arch demo`: one quantized dense layer on the golden model.

use anyhow::{bail, ensure, Context, Result};
use arch::golden::{Engine, RunReport};
use arch::isa::{self, Opcode};
use arch::program::{self, DmaWindow, MatmulProgram, OutputKind, OutputLocation};
use arch::{BfpTensor, EngineConfig, Rounding};

use crate::info::rate;
use crate::layer::{ErrorStats, Layer, BIAS_STD};
use crate::{DemoArgs, KernelArg};

/// The most elements the demo allocates for one matrix (A, W or the output): 2^26 `f32` values, 256 MiB.
pub const MAX_ELEMENTS: usize = 1 << 26;

/// Checks the layer's shape against the format before anything is allocated.
fn check_shape(cfg: &EngineConfig, m: usize, k: usize, n: usize) -> Result<()> {
    let bs = cfg.format.block_size();
    ensure!(m >= 1, "--m {m}: M must be at least 1");
    ensure!(
        k >= bs && k.is_multiple_of(bs),
        "--k {k}: K must be a positive multiple of the block size {bs} of {} (BFP blocks run along K)",
        cfg.format
    );
    ensure!(
        n >= bs && n.is_multiple_of(bs),
        "--n {n}: N must be a positive multiple of the block size {bs} of {} (outputs are post-processed \
         in whole blocks of columns)",
        cfg.format
    );
    for (what, a, b) in [("A (M x K)", m, k), ("W (N x K)", n, k), ("the output (M x N)", m, n)] {
        let elements = a.saturating_mul(b);
        ensure!(
            elements <= MAX_ELEMENTS,
            "{what} would have {a} x {b} elements; the demo allows at most {MAX_ELEMENTS}"
        );
    }
    Ok(())
}

/// Runs the program on a fresh engine with `kernel`, on a copy of the program's DMA window, and returns the
/// run's report and the `M × N` output.
fn run_on_engine(
    cfg: &EngineConfig,
    prog: &MatmulProgram,
    kernel: KernelArg,
    outputs: usize,
) -> Result<(RunReport, Vec<f32>)> {
    let mut engine = Engine::new(*cfg);
    engine.set_kernel(kernel.kernel());
    let mut window = DmaWindow { bytes: prog.window.bytes.clone() };
    let report = engine
        .run(&prog.program, &mut window.bytes)
        .with_context(|| format!("the golden model ({} kernel) rejected the program", kernel.name()))?;
    let OutputLocation::F32(offset) = prog.output else {
        bail!("the program left a BFP output, but the demo asked for f32");
    };
    let out = window.get_f32(offset, outputs).context("reading the output from the DMA window")?;
    Ok((report, out))
}

/// Where two outputs first differ in their bits, and how many values differ.
fn first_difference(a: &[f32], b: &[f32]) -> Option<(usize, usize)> {
    let mut first = None;
    let mut count = 0;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.to_bits() != y.to_bits() {
            first.get_or_insert(i);
            count += 1;
        }
    }
    first.map(|i| (i, count))
}

/// Runs the demo and prints its report; fails if the two kernels disagree.
pub fn run(args: &DemoArgs) -> Result<()> {
    let cfg = args.config;
    let (m, k, n) = (args.m, args.k, args.n);
    check_shape(&cfg, m, k, n)?;
    let activation = args.activation.activation();
    let fmt = cfg.format;

    let layer = Layer::random(m, k, n, args.seed);
    let qa = BfpTensor::quantize(fmt, Rounding::NearestEven, &layer.a).context("quantizing A")?;
    let qw = BfpTensor::quantize(fmt, Rounding::NearestEven, &layer.w).context("quantizing W")?;
    let prog = program::dense_matmul(&cfg, &qa, &qw, m, n, Some(&layer.bias), activation, OutputKind::F32)
        .context("building the program")?;
    let encoded = isa::assemble(&prog.program).context("encoding the program")?;

    println!("systole arch demo: one quantized dense layer on the golden model (no FPGA involved)");
    println!();
    println!("engine      {cfg}");
    println!("layer       out[{m}x{n}] = {}(A[{m}x{k}] * W^T + bias), seed {}", args.activation.name(), args.seed);
    println!("data        A = max(0, N(0,1)) (post-ReLU-like), W ~ N(0, sqrt(2/K)) (He), bias ~ N(0, {BIAS_STD})");
    println!(
        "quantized   A: {} blocks, W: {} blocks of {fmt} (round to nearest, ties to even)",
        qa.num_blocks(),
        qw.num_blocks()
    );
    println!();

    let counts: Vec<String> = Opcode::ALL
        .iter()
        .map(|&op| {
            let c = prog.program.iter().filter(|i| i.opcode() == op).count();
            format!("{} {c}", op.mnemonic())
        })
        .collect();
    let tiles = m.div_ceil(prog.tile_rows);
    println!(
        "program     {} instructions ({} bytes), {} rows per tile, {tiles} tile{}",
        prog.program.len(),
        encoded.len(),
        prog.tile_rows,
        if tiles == 1 { "" } else { "s" }
    );
    println!("            {}", counts.join(", "));
    println!("            DMA window {} bytes", prog.window.bytes.len());
    println!();

    let (report, out) = run_on_engine(&cfg, &prog, args.kernel, m * n)?;
    let c = report.counters;
    let pct = |busy: u64| 100.0 * busy as f64 / c.cycles.max(1) as f64;
    let seconds = c.cycles as f64 / (cfg.clock_mhz as f64 * 1e6);
    println!("timing      ({} kernel; the cycle model does not depend on the kernel)", args.kernel.name());
    println!("  cycles              {}", c.cycles);
    println!("  load busy           {} cycles ({:.1} % of all)", c.load_busy, pct(c.load_busy));
    println!("  compute busy        {} cycles ({:.1} % of all)", c.compute_busy, pct(c.compute_busy));
    println!("  store busy          {} cycles ({:.1} % of all)", c.store_busy, pct(c.store_busy));
    println!("  MACs                {}", c.macs);
    println!("  MAC utilisation     {:.1} %", 100.0 * c.utilisation(&cfg));
    println!("  latency             {:.2} us at {} MHz", seconds * 1e6, cfg.clock_mhz);
    println!(
        "  throughput          {} (peak {})",
        rate(c.macs as f64 / seconds.max(f64::MIN_POSITIVE), "MAC/s"),
        rate(cfg.peak_macs_per_second(), "MAC/s")
    );
    println!("  load / store bytes  {} / {}", c.load_bytes, c.store_bytes);
    println!("  saturations         {}", c.saturations);
    println!();

    let exact = layer.reference(&layer.a, &layer.w, activation);
    let stats = ErrorStats::compare(&exact, &out);
    println!("accuracy    vs the f32 layer on the original inputs (f64 accumulation)");
    println!("  SQNR                {:.2} dB", stats.sqnr_db);
    println!("  max abs error       {:.6}", stats.max_abs);
    println!("  mean abs error      {:.6}", stats.mean_abs);
    let on_quantized = layer.reference(&qa.dequantize(), &qw.dequantize(), activation);
    let arith = ErrorStats::compare(&on_quantized, &out);
    println!("  arithmetic only     max abs error {:.3e} vs the exact product of the quantized inputs", arith.max_abs);
    println!();

    let other = args.kernel.other();
    let (other_report, other_out) = run_on_engine(&cfg, &prog, other, m * n)?;
    let difference = first_difference(&out, &other_out);
    let label = format!("{} vs {}", args.kernel.name(), other.name());
    match difference {
        None => println!("kernels     {label}: bit-identical ({} values)", out.len()),
        Some((i, count)) => println!(
            "kernels     {label}: DIFFERENT in {count} of {} values (first at row {}, column {}: {:e} vs {:e})",
            out.len(),
            i / n,
            i % n,
            out[i],
            other_out[i]
        ),
    }
    if let Some((_, count)) = difference {
        bail!(
            "the {} and {} kernels disagree on {count} output values; they must be bit-identical",
            args.kernel.name(),
            other.name()
        );
    }
    ensure!(
        other_report.counters == report.counters,
        "the {} and {} kernels give different counters: {:?} vs {:?}",
        args.kernel.name(),
        other.name(),
        report.counters,
        other_report.counters
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_before_allocation() {
        let cfg = EngineConfig::tiny();
        assert!(check_shape(&cfg, 8, 64, 32).is_ok());
        for (m, k, n) in [(0, 64, 32), (8, 30, 32), (8, 0, 32), (8, 64, 8), (usize::MAX, 64, 16)] {
            let err = check_shape(&cfg, m, k, n).unwrap_err().to_string();
            assert!(!err.is_empty(), "{m} {k} {n}");
        }
    }

    #[test]
    fn differences_are_found() {
        assert_eq!(first_difference(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(first_difference(&[0.0, 2.0, 3.0], &[-0.0, 2.0, 4.0]), Some((0, 2)));
    }
}
