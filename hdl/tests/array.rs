//! The systolic array with its accumulator adders, simulated in rust-hdl, against the golden model.
//!
//! Every tile runs through [`hdl::tile::run_tile`] (which only moves data; the circuit computes) and is
//! compared bit for bit with `arch::golden::reference_gemm`: the accumulators, the number of saturated
//! additions, the sequence of block terms each output received (`Term`s in increasing `k`), and the cycle of
//! the last result against the cycle model (`arch::timing::gemm_cycles`).

mod common;

use arch::isa::Gemm;
use arch::timing::gemm_cycles;
use arch::EngineConfig;
use common::{golden, golden_terms, random_tile, Regime};
use hdl::export::build_array;
use hdl::harness::Harness;
use hdl::tile::{run_tile, Tile};
use rand::{Rng, SeedableRng};

/// Runs `tile` and checks everything against the golden model; returns the golden saturation count.
fn check_tile(h: &mut Harness<dyn hdl::array::SystolicArray>, cfg: &EngineConfig, tile: &Tile, what: &str) -> u64 {
    let got = run_tile(h, &cfg.format, tile);
    let (want, saturations) = golden(cfg, tile);
    for (i, (g, w)) in got.acc.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: accumulator ({}, {}): array {g:e}, golden {w:e}",
            i / tile.n,
            i % tile.n
        );
    }
    assert_eq!(got.saturations, saturations, "{what}: saturated additions");
    for m in 0..tile.m {
        for n in 0..tile.n {
            assert_eq!(got.terms[m * tile.n + n], golden_terms(cfg, tile, m, n), "{what}: terms of ({m}, {n})");
        }
    }
    // The cycle model charges every pass `max(M, P_min)` cycles and the full drain through `C` columns; the last
    // result comes out earlier by the idle rows of the last pass and by the unused columns of the last chunk.
    let model = gemm_cycles(cfg, &Gemm::dense(tile.m as u16, tile.n as u16, tile.k_blocks as u16, false));
    let idle_rows = arch::timing::pass_cycles(cfg, tile.m as u64) - tile.m as u64;
    let unused_cols = (cfg.cols - 1 - (tile.n - 1) % cfg.cols) as u64;
    assert_eq!(got.last_result_cycle, model - idle_rows - unused_cols, "{what}: cycles against the cycle model");
    saturations
}

/// `count` random tiles of up to `max_m × max_n × max_kb` on `cfg`, in the given regimes (round robin).
fn random_tiles(
    cfg: &EngineConfig,
    seed: u64,
    count: usize,
    (max_m, max_n, max_kb): (usize, usize, usize),
    regimes: &[Regime],
) {
    let mut h =
        Harness::array(build_array(cfg).expect("a stamped configuration")).expect("the array passes rust-hdl's checks");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut saturations = 0;
    let start = std::time::Instant::now();
    for i in 0..count {
        let regime = regimes[i % regimes.len()];
        let (m, n, kb) = (rng.gen_range(1..=max_m), rng.gen_range(1..=max_n), rng.gen_range(1..=max_kb));
        let tile = random_tile(cfg, &mut rng, m, n, kb, regime);
        saturations += check_tile(&mut h, cfg, &tile, &format!("{cfg} tile {i} ({m}x{n}x{kb}, {regime:?})"));
    }
    println!(
        "{}x{} {}: {count} tiles bit-exact, {saturations} saturations, {} cycles in {:.1?}",
        cfg.rows,
        cfg.cols,
        cfg.format,
        h.cycles(),
        start.elapsed()
    );
}

// The `tiny` preset (4×4, MSFP16: blocks of 16 span four passes, partial sums carried between them):
// 1000 tiles over four tests (so they run in parallel), each regime in each.
const TINY_REGIMES: [Regime; 5] = [Regime::Typical, Regime::Uniform, Regime::Huge, Regime::Tiny, Regime::MostNegative];

#[test]
fn tiny_4x4_random_tiles_part_1() {
    random_tiles(&EngineConfig::tiny(), 1, 250, (4, 4, 2), &TINY_REGIMES);
}

#[test]
fn tiny_4x4_random_tiles_part_2() {
    random_tiles(&EngineConfig::tiny(), 2, 250, (4, 4, 2), &TINY_REGIMES);
}

#[test]
fn tiny_4x4_random_tiles_part_3() {
    random_tiles(&EngineConfig::tiny(), 3, 250, (5, 6, 2), &TINY_REGIMES);
}

#[test]
fn tiny_4x4_random_tiles_part_4() {
    random_tiles(&EngineConfig::tiny(), 4, 250, (6, 9, 3), &TINY_REGIMES);
}

#[test]
fn mantissa_widths_4_to_8_on_4x4() {
    for format in ["msfp12", "bfp16m5", "bfp16m6", "bfp16m7", "bfp32m8e6", "bfp8m4e4"] {
        let cfg: EngineConfig = format!("4x4-{format}").parse().expect("a valid configuration");
        random_tiles(&cfg, 5, 12, (5, 6, 2), &TINY_REGIMES);
    }
}

#[test]
fn larger_arrays_sampled() {
    // 8×8 (block 16 over two passes), 16×16 (one block per pass), 16×16 with block 8 (two chained adders).
    random_tiles(&"8x8".parse().unwrap(), 6, 8, (9, 10, 2), &TINY_REGIMES);
    random_tiles(&EngineConfig::default_16x16(), 7, 5, (17, 18, 2), &TINY_REGIMES);
    random_tiles(&"16x16-bfp8m8".parse().unwrap(), 8, 5, (16, 17, 3), &TINY_REGIMES);
}

#[test]
fn thirty_two_by_thirty_two_sampled() {
    // The 32×32 preset (MXINT8, block 32) and 32×32 MSFP12 (block 16: two chained adders per column).
    random_tiles(&EngineConfig::large_32x32(), 9, 2, (3, 33, 1), &[Regime::MostNegative, Regime::Huge]);
    random_tiles(&"32x32-msfp12".parse().unwrap(), 10, 2, (3, 20, 1), &[Regime::Typical, Regime::Uniform]);
}
