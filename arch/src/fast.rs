//! The fast GEMM kernel: bit-identical to [`crate::golden::reference_gemm`], built for speed.
//!
//! The arithmetic is the same ([`crate::accum::accumulate`] after each exact integer block product, blocks in
//! increasing `k` order); only the data movement differs. Per output row the activation blocks of the whole
//! reduction are gathered once into a contiguous scratch row, each output column's weights are already
//! contiguous, and the block dot products run over contiguous `i8` slices the compiler vectorises. Rows are
//! split across threads (`std::thread::scope`) when the product is large enough to pay for them. The tests in
//! `arch/tests/golden_model.rs` hold it bit-identical to the reference on random GEMMs and whole programs.

use crate::accum::{accumulate, Term};
use crate::bfp::BfpFormat;
use crate::golden::BlockBuffer;
use crate::isa::Gemm;

/// Output columns whose accumulations are interleaved.
const LANES: usize = 8;

/// Products below this many MACs run on the calling thread only.
const PARALLEL_THRESHOLD_MACS: u64 = 1 << 21;

/// Runs one GEMM instruction (already range-checked) over the engine's buffers. Returns the number of
/// saturated accumulator additions.
pub fn gemm(format: &BfpFormat, g: &Gemm, act: &BlockBuffer, wgt: &BlockBuffer, acc: &mut [f32]) -> u64 {
    let bs = format.block_size();
    let (m_total, n_size, kb) = (g.rows() as usize, g.n_size as usize, g.k_blocks() as usize);
    if m_total == 0 || n_size == 0 || kb == 0 {
        return 0;
    }
    // Activation entry offsets of the reduction, relative to a row's base, in k order.
    let mut k_offsets = Vec::with_capacity(kb);
    for ko in 0..g.k_outer as usize {
        for km in 0..g.k_mid as usize {
            let base = ko * g.act_k_outer_stride as usize + km * g.act_k_mid_stride as usize;
            k_offsets.extend((0..g.k_inner as usize).map(|ki| base + ki));
        }
    }
    // Row m's activation base and accumulator index (row-major over (mo, mi)).
    let rows: Vec<(usize, usize)> = (0..g.m_outer as usize)
        .flat_map(|mo| {
            (0..g.m_inner as usize).map(move |mi| {
                (
                    g.act_base as usize + mo * g.act_m_outer_stride as usize + mi * g.act_m_inner_stride as usize,
                    g.acc_base as usize + mo * g.acc_m_outer_stride as usize + mi * g.acc_m_inner_stride as usize,
                )
            })
        })
        .collect();
    // Weight exponents pre-biased: exponent of product = e_act + e_wgt − 2·bias − 2·fraction_bits.
    let offset = 2 * format.exponent_bias() + 2 * format.fraction_bits();
    let ctx = Ctx { bs, kb, n_size, offset, g, act, wgt, k_offsets: &k_offsets };

    // Results go to a dense M×N scratch, seeded with the accumulators' values, then back to the buffer.
    let mut out = vec![0.0f32; m_total * n_size];
    if !g.reset {
        for (row, &(_, acc_row)) in out.chunks_exact_mut(n_size).zip(&rows) {
            row.copy_from_slice(&acc[acc_row..acc_row + n_size]);
        }
    }
    let macs = (m_total * n_size * kb * bs) as u64;
    let threads = if macs >= PARALLEL_THRESHOLD_MACS {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(m_total)
    } else {
        1
    };
    let saturations = if threads <= 1 {
        ctx.rows(&rows, &mut out)
    } else {
        let per = m_total.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = out
                .chunks_mut(per * n_size)
                .zip(rows.chunks(per))
                .map(|(o, r)| {
                    let ctx = &ctx;
                    s.spawn(move || ctx.rows(r, o))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("GEMM worker panicked")).sum()
        })
    };
    for (row, &(_, acc_row)) in out.chunks_exact(n_size).zip(&rows) {
        acc[acc_row..acc_row + n_size].copy_from_slice(row);
    }
    saturations
}

struct Ctx<'a> {
    bs: usize,
    kb: usize,
    n_size: usize,
    offset: i32,
    g: &'a Gemm,
    act: &'a BlockBuffer,
    wgt: &'a BlockBuffer,
    k_offsets: &'a [usize],
}

impl Ctx<'_> {
    /// Computes the given rows into `out` (`rows.len() × n_size`, seeded with starting values).
    fn rows(&self, rows: &[(usize, usize)], out: &mut [f32]) -> u64 {
        let (bs, kb) = (self.bs, self.kb);
        let mut a_mant = vec![0i8; kb * bs];
        let mut a_exp = vec![0i32; kb];
        let mut dots = vec![0i32; kb * LANES];
        let mut saturations = 0;
        for (&(act_row, _), out_row) in rows.iter().zip(out.chunks_exact_mut(self.n_size)) {
            for (k, &off) in self.k_offsets.iter().enumerate() {
                let e = act_row + off;
                a_mant[k * bs..(k + 1) * bs].copy_from_slice(self.act.block(e));
                a_exp[k] = self.act.exponents[e] as i32 - self.offset;
            }
            // Columns go in groups of LANES whose accumulations interleave: each column still adds its terms
            // in increasing k, but the independent dependency chains overlap in the CPU's pipeline.
            for (group, slots) in out_row.chunks_mut(LANES).enumerate() {
                let mut w_exp: [&[u8]; LANES] = [&[]; LANES];
                for (j, exps) in w_exp.iter_mut().enumerate().take(slots.len()) {
                    let w0 = self.g.wgt_base as usize + (group * LANES + j) * self.g.wgt_n_stride as usize;
                    block_dots(
                        bs,
                        &a_mant,
                        &self.wgt.mantissas[w0 * bs..(w0 + kb) * bs],
                        &mut dots[j * kb..(j + 1) * kb],
                    );
                    *exps = &self.wgt.exponents[w0..w0 + kb];
                }
                for k in 0..kb {
                    for (j, slot) in slots.iter_mut().enumerate() {
                        let term = Term { mantissa: dots[j * kb + k], exponent: a_exp[k] + w_exp[j][k] as i32 };
                        let s = accumulate(*slot, term);
                        saturations += s.saturated as u64;
                        *slot = s.value;
                    }
                }
            }
        }
        saturations
    }
}

/// `dots[k] = Σ_i a[k·bs + i] · w[k·bs + i]`, exactly, for every block `k`.
#[inline]
fn block_dots(bs: usize, a: &[i8], w: &[i8], dots: &mut [i32]) {
    // Dispatching on the block size lets the compiler unroll and vectorise a fixed-length inner loop.
    match bs {
        8 => dots_fixed::<8>(a, w, dots),
        16 => dots_fixed::<16>(a, w, dots),
        32 => dots_fixed::<32>(a, w, dots),
        64 => dots_fixed::<64>(a, w, dots),
        _ => {
            for ((d, ab), wb) in dots.iter_mut().zip(a.chunks_exact(bs)).zip(w.chunks_exact(bs)) {
                *d = ab.iter().zip(wb).map(|(&x, &y)| x as i32 * y as i32).sum();
            }
        }
    }
}

#[inline]
fn dots_fixed<const BS: usize>(a: &[i8], w: &[i8], dots: &mut [i32]) {
    for ((d, ab), wb) in dots.iter_mut().zip(a.chunks_exact(BS)).zip(w.chunks_exact(BS)) {
        let ab: &[i8; BS] = ab.try_into().expect("block");
        let wb: &[i8; BS] = wb.try_into().expect("block");
        let mut s = 0i32;
        for i in 0..BS {
            s += ab[i] as i16 as i32 * wb[i] as i16 as i32;
        }
        *d = s;
    }
}
