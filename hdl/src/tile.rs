//! Running a dense GEMM tile through the simulated array, as the compute stage will sequence it.
//!
//! [`run_tile`] plays the part of the (still to come) GEMM sequencer and buffers around the array: it streams
//! the activation rows of every pass, loads each pass's weights into the array's columns, one column per cycle, during the `R` cycles
//! before the pass, keeps the accumulators (the ACC buffer) and the carried partial sums of blocks longer than
//! the array in plain memory, and writes back whatever the array outputs, at the cycles the array's interface
//! defines ([`crate::array`]). It performs no arithmetic of its own: every sum is computed by the circuit.
//!
//! The schedule is the cycle model's (`arch::timing::gemm_cycles`): cycles `0 .. R` preload the first pass's
//! weights (column `c` at cycle `c`); pass `p` streams its `M` rows from cycle `R + p·P` (`P = arch::timing::pass_cycles`); passes go over column chunks of `C`
//! outputs and, inside each, over the reduction axis in increasing `k`, `R` elements per pass.

use arch::accum::Term;
use arch::BfpFormat;

use crate::array::{RowFlags, SystolicArray};
use crate::harness::Harness;

/// A dense GEMM tile `acc[m][n] ⊕= Σ_k act(m, k) · wgt(n, k)` over whole BFP blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// Rows `M`.
    pub m: usize,
    /// Output columns `N`.
    pub n: usize,
    /// Reduction blocks `K_blocks`.
    pub k_blocks: usize,
    /// Activation exponent codes, `m · k_blocks` (row-major: block `(m, k)` at `m·k_blocks + k`).
    pub act_exp: Vec<u8>,
    /// Activation mantissas, `bs` per block, blocks in the order of `act_exp`.
    pub act_mant: Vec<i8>,
    /// Weight exponent codes, `n · k_blocks` (block `(n, k)` at `n·k_blocks + k`).
    pub wgt_exp: Vec<u8>,
    /// Weight mantissas, `bs` per block.
    pub wgt_mant: Vec<i8>,
    /// The accumulators before the GEMM, `m · n` (row-major), `+0` or normal.
    pub acc: Vec<f32>,
}

/// What the array computed for a tile.
#[derive(Clone, Debug, PartialEq)]
pub struct TileResult {
    /// The accumulators after the GEMM, `m · n`.
    pub acc: Vec<f32>,
    /// Saturated accumulator additions.
    pub saturations: u64,
    /// The terms each `(m, n)` received, in the order its adder received them (row-major over `(m, n)`).
    pub terms: Vec<Vec<Term>>,
    /// The cycle in which the last accumulator result was on the outputs (cycle 0 is the first weight-preload
    /// cycle), comparable with `arch::timing::gemm_cycles`.
    pub last_result_cycle: u64,
}

/// One pass of the schedule.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// First output column of the pass's column chunk.
    n0: usize,
    /// First element of the flattened reduction axis (`k_block · bs + element`).
    k0: usize,
    flags: RowFlags,
}

/// Streams `tile` through the array in `h` and collects its outputs.
///
/// # Panics
/// If the tile's vectors do not match its sizes and the array's format, or the array outputs a value at a
/// cycle where the schedule expects none (a timing bug).
pub fn run_tile(h: &mut Harness<dyn SystolicArray>, format: &BfpFormat, tile: &Tile) -> TileResult {
    let g = h.uut.geometry();
    let (rr, cc, s, groups, lat) = (g.rows, g.cols, g.segment, g.groups, g.acc_latency);
    let bs = format.block_size();
    assert_eq!(bs, g.block_size);
    let (m_rows, n_cols, kb) = (tile.m, tile.n, tile.k_blocks);
    assert_eq!(tile.act_exp.len(), m_rows * kb);
    assert_eq!(tile.act_mant.len(), m_rows * kb * bs);
    assert_eq!(tile.wgt_exp.len(), n_cols * kb);
    assert_eq!(tile.wgt_mant.len(), n_cols * kb * bs);
    assert_eq!(tile.acc.len(), m_rows * n_cols);

    // The schedule: column chunks, then the reduction axis in passes of R elements.
    let k_passes = (kb * bs).div_ceil(rr);
    let mut passes = Vec::new();
    for n0 in (0..n_cols).step_by(cc) {
        for j in 0..k_passes {
            let k0 = j * rr;
            let flags = if rr >= bs {
                RowFlags { valid: true, first: false, carry: false, last: true }
            } else {
                let sub = bs / rr;
                RowFlags { valid: true, first: false, carry: j % sub != 0, last: j % sub == sub - 1 }
            };
            passes.push(Pass { n0, k0, flags });
        }
    }
    // The cycle model's pass length (`arch::timing::pass_cycles`) depends only on these parameters.
    let timing_cfg = arch::EngineConfig {
        rows: rr,
        cols: cc,
        format: *format,
        acc_latency: lat as _,
        ..arch::EngineConfig::default_16x16()
    };
    let period = arch::timing::pass_cycles(&timing_cfg, m_rows as u64) as usize;
    let start = |p: usize| rr + p * period;
    let end = start(passes.len() - 1) + m_rows + rr + cc + lat + 1;

    // Element `k` (flattened) of activation row `m` / weight column `n`; zero beyond the reduction axis.
    let act = |m: usize, k: usize| if k < kb * bs { tile.act_mant[m * kb * bs + k] as i32 } else { 0 };
    let wgt = |n: usize, k: usize| if n < n_cols && k < kb * bs { tile.wgt_mant[n * kb * bs + k] as i32 } else { 0 };
    let act_code = |m: usize, b: usize| if b < kb { tile.act_exp[m * kb + b] } else { 0 };
    let wgt_code = |n: usize, b: usize| if n < n_cols && b < kb { tile.wgt_exp[n * kb + b] } else { 0 };
    // The (pass, row) whose activations entered at cycle `t`, if any.
    let row_at = |t: i64| -> Option<(usize, usize)> {
        let u = usize::try_from(t - rr as i64).ok()?;
        let (p, m) = (u / period, u % period);
        (p < passes.len() && m < m_rows).then_some((p, m))
    };

    let mut acc = tile.acc.clone();
    let mut psum = vec![0i32; m_rows * n_cols];
    let mut terms = vec![Vec::new(); m_rows * n_cols];
    let mut saturations = 0;
    let mut last_result_cycle = 0;
    let mut a = vec![0i32; rr];
    let mut a_exp = vec![0u8; groups];
    let mut w = vec![0i32; rr];
    let mut w_exp = vec![0u8; groups];
    for t in 0..end as i64 {
        // Outputs visible in this cycle.
        for c in 0..cc {
            for gi in 0..groups {
                if let Some((mant, exponent)) = h.uut.term(gi, c) {
                    let (p, m) = row_at(t - ((gi + 1) * s + c + 1) as i64).expect("a term outside the schedule");
                    let n = passes[p].n0 + c;
                    let block = (passes[p].k0 + gi * s) / bs;
                    if n < n_cols && block < kb {
                        terms[m * n_cols + n].push(Term { mantissa: mant, exponent });
                    }
                }
                let sat_row = row_at(t - ((gi + 1) * s + c + 1 + lat) as i64);
                if h.uut.acc_sat(gi, c) {
                    let (p, _) = sat_row.expect("a saturation outside the schedule");
                    if passes[p].n0 + c < n_cols {
                        saturations += 1;
                    }
                }
            }
            if let Some(bits) = h.uut.acc_out(c) {
                let (p, m) = row_at(t - g.acc_out_delay(c) as i64).expect("an accumulator outside the schedule");
                let n = passes[p].n0 + c;
                if n < n_cols {
                    acc[m * n_cols + n] = f32::from_bits(bits);
                    last_result_cycle = t as u64;
                }
            }
            if let Some(v) = h.uut.psum_out(c) {
                let (p, m) = row_at(t - g.psum_out_delay(c) as i64).expect("a partial sum outside the schedule");
                let n = passes[p].n0 + c;
                if n < n_cols {
                    psum[m * n_cols + n] = v;
                }
            }
        }
        // Inputs for this cycle: the activation row.
        match row_at(t) {
            Some((p, m)) => {
                let pass = passes[p];
                for (r, x) in a.iter_mut().enumerate() {
                    *x = act(m, pass.k0 + r);
                }
                for (gi, e) in a_exp.iter_mut().enumerate() {
                    *e = act_code(m, (pass.k0 + gi * s) / bs);
                }
                h.uut.set_row(&a, &a_exp, RowFlags { first: m == 0, ..pass.flags });
            }
            None => h.uut.set_row(&vec![0; rr], &vec![0; groups], RowFlags::default()),
        }
        // The weights of the pass that starts within the next R cycles: column c at `start − R + c`.
        w.fill(0);
        w_exp.fill(0);
        let mut load = None;
        if let Some(p) = (0..passes.len()).find(|&p| (start(p) as i64 - rr as i64..start(p) as i64).contains(&t)) {
            let c = t as usize + rr - start(p);
            if c < cc {
                let pass = passes[p];
                for (r, x) in w.iter_mut().enumerate() {
                    *x = wgt(pass.n0 + c, pass.k0 + r);
                }
                for (gi, e) in w_exp.iter_mut().enumerate() {
                    *e = wgt_code(pass.n0 + c, (pass.k0 + gi * s) / bs);
                }
                load = Some(c);
            }
        }
        h.uut.set_weights(load, &w, &w_exp);
        // Carried partial sums and accumulators, at the cycles their columns read them.
        for c in 0..cc {
            let carried = row_at(t - g.psum_in_delay(c) as i64)
                .filter(|&(p, _)| passes[p].flags.carry && passes[p].n0 + c < n_cols)
                .map_or(0, |(p, m)| psum[m * n_cols + passes[p].n0 + c]);
            h.uut.set_psum_in(c, carried);
            let acc_value = row_at(t - g.acc_in_delay(c) as i64)
                .filter(|&(p, _)| passes[p].n0 + c < n_cols)
                .map_or(0, |(p, m)| acc[m * n_cols + passes[p].n0 + c].to_bits());
            h.uut.set_acc_in(c, acc_value);
        }
        h.cycle();
    }
    TileResult { acc, saturations, terms, last_result_cycle }
}
