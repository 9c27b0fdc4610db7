//! Shared by the integration tests: random tiles and the golden model's answer for them.
#![allow(dead_code)]

use arch::accum::Term;
use arch::golden::{reference_gemm, Engine};
use arch::isa::Gemm;
use arch::EngineConfig;
use hdl::tile::Tile;
use rand::Rng;

/// The golden model's accumulators and saturation count for a tile (`reference_gemm` on a dense GEMM).
pub fn golden(cfg: &EngineConfig, tile: &Tile) -> (Vec<f32>, u64) {
    let mut engine = Engine::new(*cfg);
    let bs = cfg.format.block_size();
    let blocks = tile.m * tile.k_blocks;
    engine.act.exponents[..blocks].copy_from_slice(&tile.act_exp);
    engine.act.mantissas[..blocks * bs].copy_from_slice(&tile.act_mant);
    let blocks = tile.n * tile.k_blocks;
    engine.wgt.exponents[..blocks].copy_from_slice(&tile.wgt_exp);
    engine.wgt.mantissas[..blocks * bs].copy_from_slice(&tile.wgt_mant);
    let mut acc = tile.acc.clone();
    let g = Gemm::dense(tile.m as u16, tile.n as u16, tile.k_blocks as u16, false);
    let sat = reference_gemm(&cfg.format, &g, &engine.act, &engine.wgt, &mut acc);
    (acc, sat)
}

/// The terms the golden model adds for `(m, n)`, in increasing `k` (its loop's `Term`s, restated).
pub fn golden_terms(cfg: &EngineConfig, tile: &Tile, m: usize, n: usize) -> Vec<Term> {
    let f = cfg.format;
    let bs = f.block_size();
    (0..tile.k_blocks)
        .map(|k| {
            let a = &tile.act_mant[(m * tile.k_blocks + k) * bs..][..bs];
            let w = &tile.wgt_mant[(n * tile.k_blocks + k) * bs..][..bs];
            let dot = a.iter().zip(w).map(|(&x, &y)| x as i32 * y as i32).sum();
            let exponent = tile.act_exp[m * tile.k_blocks + k] as i32 + tile.wgt_exp[n * tile.k_blocks + k] as i32
                - 2 * f.exponent_bias()
                - 2 * f.fraction_bits();
            Term { mantissa: dot, exponent }
        })
        .collect()
}

/// How a random tile's values are drawn.
#[derive(Clone, Copy, Debug)]
pub enum Regime {
    /// Exponent codes near the bias, moderate accumulators.
    Typical,
    /// Exponent codes anywhere in the format's range, accumulators anywhere.
    Uniform,
    /// Codes at the top of the range and accumulators near `f32::MAX`: saturation.
    Huge,
    /// Codes at the bottom of the range and tiny accumulators: flush to zero.
    Tiny,
    /// Every mantissa at the most negative code `−2^(m−1)`.
    MostNegative,
}

/// A random tile of the given sizes; some blocks are all zero, some mantissas the most negative code.
pub fn random_tile(
    cfg: &EngineConfig,
    rng: &mut impl Rng,
    m: usize,
    n: usize,
    k_blocks: usize,
    regime: Regime,
) -> Tile {
    let f = cfg.format;
    let bs = f.block_size();
    let lo = f.min_mantissa_code();
    let hi = f.max_mantissa();
    let max_code = (1i32 << f.exponent_bits()) - 2;
    let bias = f.exponent_bias();
    let code = |rng: &mut dyn rand::RngCore| -> u8 {
        let c = match regime {
            Regime::Typical => bias + rng.gen_range(-8..=8),
            Regime::Uniform => rng.gen_range(0..=max_code),
            Regime::Huge => max_code - rng.gen_range(0..=3),
            Regime::Tiny => rng.gen_range(0..=3),
            Regime::MostNegative => bias + rng.gen_range(-3..=3),
        };
        c.clamp(0, max_code) as u8
    };
    let blocks = |rng: &mut dyn rand::RngCore, count: usize| -> (Vec<u8>, Vec<i8>) {
        let mut exps = Vec::with_capacity(count);
        let mut mants = Vec::with_capacity(count * bs);
        for _ in 0..count {
            exps.push(code(rng));
            let kind = rng.gen_range(0..10);
            for _ in 0..bs {
                mants.push(match (regime, kind) {
                    (Regime::MostNegative, _) => lo,
                    (_, 0) => 0, // a zero block
                    (_, 1) => {
                        if rng.gen_bool(0.5) {
                            lo
                        } else {
                            hi
                        }
                    } // extremes only
                    _ => rng.gen_range(lo..=hi),
                } as i8);
            }
        }
        (exps, mants)
    };
    let (act_exp, act_mant) = blocks(rng, m * k_blocks);
    let (wgt_exp, wgt_mant) = blocks(rng, n * k_blocks);
    let acc = (0..m * n)
        .map(|_| {
            let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            match (regime, rng.gen_range(0..6)) {
                (_, 0) => 0.0,
                (Regime::Huge, _) => sign * f32::MAX * rng.gen_range(0.5f32..1.0),
                (Regime::Tiny, _) => sign * f32::MIN_POSITIVE * rng.gen_range(1.0f32..64.0),
                (Regime::Uniform, _) => f32::from_bits(rng.gen::<u32>() & 0x807f_ffff | rng.gen_range(1u32..255) << 23),
                _ => sign * rng.gen_range(0.001f32..100.0),
            }
        })
        .collect();
    Tile { m, n, k_blocks, act_exp, act_mant, wgt_exp, wgt_mant, acc }
}

/// The path of an external tool the test needs, or `None` (with a message) when it is not installed.
///
/// # Panics
/// When the tool is missing and `SYSTOLE_REQUIRE_HDL_TOOLS=1` (as `scripts/test.sh` sets it): there the tool
/// must have been installed, and a skip would hide a failure.
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        let why = format!("`{name}` is not installed (Debian: apt-get install {name})");
        if std::env::var("SYSTOLE_REQUIRE_HDL_TOOLS").as_deref() == Ok("1") {
            panic!("{why}, and SYSTOLE_REQUIRE_HDL_TOOLS=1 requires it");
        }
        eprintln!("skipping: {why}");
    }
    found
}

/// A fresh directory for a test's files, under the target directory's `tmp`.
pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hdl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// Lints `verilog` (top module `top`) with `verilator --lint-only -Wall` and the documented waivers
/// (`hdl::export::verilator_waivers`), writing both files to `dir`; panics with Verilator's messages unless
/// it is clean, and prints how long it took.
pub fn verilator_lint(verilator: &std::path::Path, dir: &std::path::Path, top: &str, verilog: &str) {
    let start = std::time::Instant::now();
    let (waivers, path) = (dir.join("hdl-waivers.vlt"), dir.join(format!("{top}.v")));
    std::fs::write(&waivers, hdl::export::verilator_waivers()).expect("write the waivers");
    std::fs::write(&path, verilog).expect("write the Verilog");
    let out = std::process::Command::new(verilator)
        .args(["--lint-only", "-Wall", "--top-module", top])
        .arg(&waivers)
        .arg(&path)
        .output()
        .expect("run verilator");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verilator --lint-only -Wall failed on {top}:\n{log}");
    println!("{top}: verilator --lint-only -Wall clean in {:.1?}", start.elapsed());
}
