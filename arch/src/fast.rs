//! The fast GEMM kernel: bit-identical to [`crate::golden::reference_gemm`], built for speed.
//!
//! The arithmetic is the same ([`crate::accum::accumulate`] after each exact integer block product, blocks in
//! increasing `k` order); only the data movement and the instruction mix differ:
//!
//! * The weights are packed once per call into groups of [`LANES`] output columns, widened to `i16` and laid
//!   out so that one block's products for all the group's columns are lane-parallel: for each pair of
//!   positions `(2p, 2p+1)` in a block, the group's `LANES` pairs of weights are adjacent. The block dot
//!   products of a row then need no horizontal reductions: each broadcast pair of activations multiplies a
//!   vector of weight pairs (`pmaddwd`-shaped) straight into the `LANES` column sums.
//! * The accumulators of a group are kept as `f64` (every accumulator value is exact in `f64`) and advanced by
//!   [`accumulate_lanes`], a branch-free transcription of [`crate::accum::accumulate`] over `LANES`
//!   independent columns that the compiler turns into SIMD; saturations are counted per lane without
//!   branches. Unit tests below hold it equal to `accumulate` on random and extreme operands.
//! * On x86-64 CPUs with AVX2 (detected at run time) the same code is compiled a second time with AVX2
//!   enabled; otherwise the baseline (SSE2) build runs. Both are the same Rust source, so the same bits.
//!
//! Rows are split across threads (`std::thread::scope`) when the product is large enough to pay for them. The
//! tests in `arch/tests/golden_model.rs` hold it bit-identical to the reference on random GEMMs and programs.

use crate::bfp::BfpFormat;
use crate::golden::BlockBuffer;
use crate::isa::Gemm;

/// Output columns processed together: their block products and accumulations run lane-parallel.
const LANES: usize = 16;

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
    // Exponent of a block product = e_act + e_wgt − 2·bias − 2·fraction_bits; each side takes half the offset.
    let offset = format.exponent_bias() + format.fraction_bits();
    let packed = PackedWeights::new(bs, kb, n_size, offset, g, wgt);
    let ctx = Ctx { bs, kb, n_size, offset, act, k_offsets: &k_offsets, packed: &packed, avx2: avx2_available() };

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

/// The weights of one GEMM, packed for lane-parallel block products (see the module documentation).
struct PackedWeights {
    /// `[group][k][p][lane][2]` for `p < bs/2`: weights `2p` and `2p+1` of block `k` of column
    /// `group·LANES + lane`, widened to `i16`. Padding columns past `n_size` hold zeros.
    mant: Vec<i16>,
    /// `[group][k][lane]`: the weight block's exponent code minus the per-operand offset (0 in padding).
    exp: Vec<i32>,
}

impl PackedWeights {
    fn new(bs: usize, kb: usize, n_size: usize, offset: i32, g: &Gemm, wgt: &BlockBuffer) -> Self {
        let groups = n_size.div_ceil(LANES);
        let mut mant = vec![0i16; groups * kb * bs * LANES];
        let mut exp = vec![0i32; groups * kb * LANES];
        for n in 0..n_size {
            let (group, lane) = (n / LANES, n % LANES);
            let w0 = g.wgt_base as usize + n * g.wgt_n_stride as usize;
            for k in 0..kb {
                let base = (group * kb + k) * bs * LANES;
                for (i, &w) in wgt.block(w0 + k).iter().enumerate() {
                    mant[base + (i / 2) * 2 * LANES + lane * 2 + i % 2] = w as i16;
                }
                exp[(group * kb + k) * LANES + lane] = wgt.exponents[w0 + k] as i32 - offset;
            }
        }
        PackedWeights { mant, exp }
    }
}

struct Ctx<'a> {
    bs: usize,
    kb: usize,
    n_size: usize,
    offset: i32,
    act: &'a BlockBuffer,
    k_offsets: &'a [usize],
    packed: &'a PackedWeights,
    avx2: bool,
}

impl Ctx<'_> {
    /// Computes the given rows into `out` (`rows.len() × n_size`, seeded with starting values).
    fn rows(&self, rows: &[(usize, usize)], out: &mut [f32]) -> u64 {
        let (bs, kb) = (self.bs, self.kb);
        let mut a_mant = vec![0i16; kb * bs];
        let mut a_exp = vec![0i32; kb];
        let mut saturations = 0;
        for (&(act_row, _), out_row) in rows.iter().zip(out.chunks_exact_mut(self.n_size)) {
            for (k, &off) in self.k_offsets.iter().enumerate() {
                let e = act_row + off;
                for (d, &s) in a_mant[k * bs..(k + 1) * bs].iter_mut().zip(self.act.block(e)) {
                    *d = s as i16;
                }
                a_exp[k] = self.act.exponents[e] as i32 - self.offset;
            }
            for (group, slots) in out_row.chunks_mut(LANES).enumerate() {
                // Accumulators as f64: `+0` or normal f32 values, exact. Padding lanes start (and stay) at +0.
                let mut acc = [0.0f64; LANES];
                for (a, &s) in acc.iter_mut().zip(slots.iter()) {
                    *a = s as f64;
                }
                let w = &self.packed.mant[group * kb * bs * LANES..(group + 1) * kb * bs * LANES];
                let w_exp = &self.packed.exp[group * kb * LANES..(group + 1) * kb * LANES];
                saturations += group_pass(self.avx2, bs, &a_mant, &a_exp, w, w_exp, &mut acc);
                for (s, &a) in slots.iter_mut().zip(&acc) {
                    // Exact: every lane value is +0, ±f32::MAX or a 24-bit significand in f32's normal range.
                    *s = a as f32;
                }
            }
        }
        saturations
    }
}

/// Whether the AVX2 build of [`group_kernel`] may run on this CPU.
fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs one row's whole reduction for one group of [`LANES`] columns; returns the saturation count.
#[inline]
fn group_pass(
    avx2: bool,
    bs: usize,
    a_mant: &[i16],
    a_exp: &[i32],
    w: &[i16],
    w_exp: &[i32],
    acc: &mut [f64; LANES],
) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` comes from `avx2_available`, i.e. the running CPU supports AVX2, which is the only
        // requirement of a `#[target_feature(enable = "avx2")]` function; its body is safe Rust.
        return unsafe { group_kernel_avx2(bs, a_mant, a_exp, w, w_exp, acc) };
    }
    let _ = avx2;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return group_kernel_dispatch(bs, a_mant, a_exp, w, w_exp, acc, block_dot_sse2);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return group_kernel_dispatch(bs, a_mant, a_exp, w, w_exp, acc, block_dot_portable);
}

/// The exact products of one activation block `a` (`bs` values) with the packed weight blocks `w`
/// (`bs·LANES` values, pair-interleaved) of the group's columns. Exact in `i32`: `|products| ≤ 2^14`, at most
/// 64 of them. The reference version, used where no SIMD version applies and by the tests.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn block_dot_portable(a: &[i16], w: &[i16]) -> [i32; LANES] {
    let mut dot = [0i32; LANES];
    for (pair, wp) in a.chunks_exact(2).zip(w.chunks_exact(2 * LANES)) {
        let (a0, a1) = (pair[0] as i32, pair[1] as i32);
        for (j, d) in dot.iter_mut().enumerate() {
            *d += a0 * wp[2 * j] as i32 + a1 * wp[2 * j + 1] as i32;
        }
    }
    dot
}

/// [`block_dot_portable`] with SSE2 (part of the x86-64 baseline): one `pmaddwd` multiplies a broadcast pair of
/// activations with four columns' weight pairs and adds each column's two products.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn block_dot_sse2(a: &[i16], w: &[i16]) -> [i32; LANES] {
    use std::arch::x86_64::*;
    const V: usize = LANES / 4;
    let mut dot = [0i32; LANES];
    // SAFETY: SSE2 is part of the x86-64 baseline (every x86-64 CPU has it; this function is compiled only for
    // x86-64), which is all the intrinsics require. The memory accesses: `wp` holds 2·LANES = 8·V `i16`s and
    // `v < V`, so the 8 `i16`s loaded from `8v` are in bounds; `dot` holds LANES = 4·V `i32`s, so the 4
    // stored from `4v` are in bounds; unaligned loads and stores have no alignment requirement.
    unsafe {
        let mut sums = [_mm_setzero_si128(); V];
        for (pair, wp) in a.chunks_exact(2).zip(w.chunks_exact(2 * LANES)) {
            let ap = _mm_set1_epi32((pair[0] as u16 as u32 | (pair[1] as u16 as u32) << 16) as i32);
            for (v, s) in sums.iter_mut().enumerate() {
                let wv = _mm_loadu_si128(wp.as_ptr().add(8 * v).cast());
                *s = _mm_add_epi32(*s, _mm_madd_epi16(ap, wv));
            }
        }
        for (v, s) in sums.iter().enumerate() {
            _mm_storeu_si128(dot.as_mut_ptr().add(4 * v).cast(), *s);
        }
    }
    dot
}

/// [`block_dot_sse2`] with 256-bit AVX2 vectors (eight columns per `vpmaddwd`).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_dot_avx2(a: &[i16], w: &[i16]) -> [i32; LANES] {
    use std::arch::x86_64::*;
    const V: usize = LANES / 8;
    let mut sums = [_mm256_setzero_si256(); V];
    for (pair, wp) in a.chunks_exact(2).zip(w.chunks_exact(2 * LANES)) {
        let ap = _mm256_set1_epi32((pair[0] as u16 as u32 | (pair[1] as u16 as u32) << 16) as i32);
        for (v, s) in sums.iter_mut().enumerate() {
            // SAFETY: `wp` holds 2·LANES = 16·V `i16`s and `v < V`, so the 16 `i16`s read from `16v` are in
            // bounds; `_mm256_loadu_si256` has no alignment requirement.
            let wv = unsafe { _mm256_loadu_si256(wp.as_ptr().add(16 * v).cast()) };
            *s = _mm256_add_epi32(*s, _mm256_madd_epi16(ap, wv));
        }
    }
    let mut dot = [0i32; LANES];
    for (v, s) in sums.iter().enumerate() {
        // SAFETY: `dot` holds LANES = 8·V `i32`s and `v < V`, so the 8 written from `8v` are in bounds;
        // `_mm256_storeu_si256` has no alignment requirement.
        unsafe { _mm256_storeu_si256(dot.as_mut_ptr().add(8 * v).cast(), *s) };
    }
    dot
}

/// [`group_kernel_dispatch`] compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn group_kernel_avx2(
    bs: usize,
    a_mant: &[i16],
    a_exp: &[i32],
    w: &[i16],
    w_exp: &[i32],
    acc: &mut [f64; LANES],
) -> u64 {
    group_kernel_dispatch(bs, a_mant, a_exp, w, w_exp, acc, |a, w| {
        // SAFETY: this closure runs only inside `group_kernel_avx2`, which runs only on CPUs with AVX2.
        unsafe { block_dot_avx2(a, w) }
    })
}

/// Dispatches on the block size so that each supported size gets a fully unrolled, vectorised kernel.
#[inline(always)]
fn group_kernel_dispatch(
    bs: usize,
    a_mant: &[i16],
    a_exp: &[i32],
    w: &[i16],
    w_exp: &[i32],
    acc: &mut [f64; LANES],
    block_dot: impl Fn(&[i16], &[i16]) -> [i32; LANES] + Copy,
) -> u64 {
    match bs {
        8 => group_kernel(8, a_mant, a_exp, w, w_exp, acc, block_dot),
        16 => group_kernel(16, a_mant, a_exp, w, w_exp, acc, block_dot),
        32 => group_kernel(32, a_mant, a_exp, w, w_exp, acc, block_dot),
        64 => group_kernel(64, a_mant, a_exp, w, w_exp, acc, block_dot),
        _ => group_kernel(bs, a_mant, a_exp, w, w_exp, acc, block_dot),
    }
}

/// For each block `k` in order: the exact block products of the `LANES` columns, scaled to terms, added to
/// the accumulators by [`accumulate_lanes`].
#[inline(always)]
fn group_kernel(
    bs: usize,
    a_mant: &[i16],
    a_exp: &[i32],
    w: &[i16],
    w_exp: &[i32],
    acc: &mut [f64; LANES],
    block_dot: impl Fn(&[i16], &[i16]) -> [i32; LANES],
) -> u64 {
    let mut saturations = [0u64; LANES];
    let blocks = a_mant.chunks_exact(bs).zip(a_exp).zip(w.chunks_exact(bs * LANES)).zip(w_exp.chunks_exact(LANES));
    for (((ab, &ae), wb), we) in blocks {
        let dot = block_dot(ab, wb);
        let mut terms = [0.0f64; LANES];
        for ((t, &d), &e) in terms.iter_mut().zip(&dot).zip(we) {
            *t = term_f64(d, ae + e);
        }
        accumulate_lanes(acc, &terms, &mut saturations);
    }
    saturations.iter().sum()
}

/// `mantissa · 2^exponent` as an `f64`, exactly as [`crate::accum::Term::to_f64`] computes it; the power of two
/// is built from the exponent bits (valid for `exponent` in `−1022..=1023`, far wider than the engine's range).
#[inline(always)]
fn term_f64(mantissa: i32, exponent: i32) -> f64 {
    mantissa as f64 * f64::from_bits(((exponent + 1023) as u64) << 52)
}

/// [`crate::accum::accumulate`] on `LANES` independent accumulators at once, with accumulators and results
/// held as `f64` (exact) and terms given as their exact `f64` values; `saturations[j]` is incremented when lane
/// `j` saturates. The same formula as [`crate::accum::round_to_accumulator`], with its `if` chain turned into
/// selects so the compiler can vectorise across lanes:
/// the magnitude's fraction is rounded to 23 bits nearest-even by integer arithmetic; a rounded magnitude below
/// `2^−126` gives `+0`; above `f32::MAX` gives `±f32::MAX` and a saturation; otherwise the rounded value.
#[inline(always)]
fn accumulate_lanes(acc: &mut [f64; LANES], terms: &[f64; LANES], saturations: &mut [u64; LANES]) {
    const SIGN: u64 = 1 << 63;
    const DROP: u32 = 52 - 23;
    const HALF: u64 = 1 << (DROP - 1);
    const LOW: u64 = (1 << DROP) - 1;
    const MIN: f64 = f32::MIN_POSITIVE as f64;
    const MAX: f64 = f32::MAX as f64;
    for ((a, &t), s) in acc.iter_mut().zip(terms).zip(saturations.iter_mut()) {
        let bits = (*a + t).to_bits();
        let sign = bits & SIGN;
        let mag = bits & !SIGN;
        let lsb = (mag >> DROP) & 1;
        let rounded = f64::from_bits((mag + (HALF - 1) + lsb) & !LOW);
        let saturated = rounded > MAX;
        let clamped = if saturated { MAX } else { rounded };
        // `rounded` is never NaN, so `!(rounded < MIN)` is `rounded >= MIN`; the flush also clears the sign.
        let keep = if rounded >= MIN { u64::MAX } else { 0 };
        *a = f64::from_bits((clamped.to_bits() | sign) & keep);
        *s += saturated as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accum::{accumulate, Term};
    use rand::{Rng, SeedableRng};

    /// Runs `accumulate_lanes` on the pairs and checks each lane against the scalar rule.
    fn check(pairs: &[(f32, Term)]) {
        for chunk in pairs.chunks(LANES) {
            let mut acc = [0.0f64; LANES];
            let mut terms = [0.0f64; LANES];
            for (j, &(a, t)) in chunk.iter().enumerate() {
                acc[j] = a as f64;
                terms[j] = term_f64(t.mantissa, t.exponent);
                assert_eq!(terms[j], t.to_f64());
            }
            let mut sats = [0u64; LANES];
            accumulate_lanes(&mut acc, &terms, &mut sats);
            for (j, &(a, t)) in chunk.iter().enumerate() {
                let want = accumulate(a, t);
                assert_eq!(acc[j].to_bits(), (want.value as f64).to_bits(), "acc {a:e} term {t:?}");
                assert_eq!((acc[j] as f32).to_bits(), want.value.to_bits(), "acc {a:e} term {t:?}");
                assert_eq!(sats[j], want.saturated as u64, "acc {a:e} term {t:?}");
            }
        }
    }

    fn random_acc(rng: &mut impl Rng) -> f32 {
        match rng.gen_range(0..10) {
            0 => 0.0,
            1 => f32::MIN_POSITIVE * rng.gen_range(1.0..4.0) * if rng.gen() { 1.0 } else { -1.0 },
            2 => f32::MAX * rng.gen_range(0.5..1.0) * if rng.gen() { 1.0 } else { -1.0 },
            _ => f32::from_bits(rng.gen::<u32>() & 0x807f_ffff | (rng.gen_range(1u32..255) << 23)),
        }
    }

    #[test]
    fn lanes_match_accumulate_on_random_operands() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let pairs: Vec<(f32, Term)> = (0..400_000)
            .map(|i| {
                let acc = random_acc(&mut rng);
                let anchor = if acc == 0.0 { 0 } else { crate::bfp::floor_log2(acc) };
                let exponent = match i % 3 {
                    0 => anchor - 21 + rng.gen_range(-30..30),
                    _ => rng.gen_range(-266..=254),
                };
                let mantissa = match i % 5 {
                    0 => rng.gen_range(-(1 << 20)..=(1 << 20)),
                    1 => rng.gen_range(-8..=8),
                    _ => rng.gen_range(-(1 << 23) + 1..(1 << 23)),
                };
                (acc, Term { mantissa, exponent })
            })
            .collect();
        check(&pairs);
    }

    #[test]
    fn lanes_match_accumulate_on_extreme_operands() {
        let t = |mantissa, exponent| Term { mantissa, exponent };
        let pairs = [
            // ties to even, both directions, and carries into the exponent
            (1.0, t(1, -24)),
            (1.0, t(3, -24)),
            (1.0, t(-1, -25)),
            (-1.0, t(-1, -24)),
            (-1.0, t(-3, -24)),
            (f32::from_bits(0x3fff_ffff), t(1, -23)),
            (f32::from_bits(0x3fff_ffff), t(1, -24)),
            (1.5, t((1 << 23) - 1, -47)),
            // flush boundary: just below, at, rounding up to 2^-126, negative, and exact cancellation
            (0.0, t(-1, -127)),
            (0.0, t(1, -127)),
            (0.0, t(1, -126)),
            (0.0, t(-1, -126)),
            (f32::MIN_POSITIVE, t(-1, -151)),
            (f32::MIN_POSITIVE, t(-1, -150)),
            (-f32::MIN_POSITIVE, t(1, -151)),
            (-f32::MIN_POSITIVE, t(1, -150)),
            (f32::MIN_POSITIVE, t(-1, -126)),
            (-2.5, t(5, -1)),
            (0.0, t(0, 0)),
            (0.0, t(0, -266)),
            (f32::MIN_POSITIVE * 2.0, t(-3, -127)),
            (0.0, t((1 << 24) - 1, -150)),
            (0.0, t((1 << 24) - 1, -151)),
            // saturation: above, just at the rounding threshold, just below, negative, huge terms
            (f32::MAX, t(1, 104)),
            (f32::MAX, t(1, 103)),
            (f32::MAX, t(1, 102)),
            (-f32::MAX, t(-1, 103)),
            (-f32::MAX, t(-(1 << 20), 200)),
            (0.0, t((1 << 24) - 1, 104)),
            (0.0, t((1 << 24) - 1, 105)),
            (0.0, t(-(1 << 23), 105)),
            (f32::MAX, t(-(1 << 23), 105)),
            (1.0, t(1, 254)),
            (-1.0, t(-1, 254)),
        ];
        check(&pairs);
    }

    #[test]
    fn packed_block_products_are_exact() {
        // Extremes of i8 in every position, for every supported block size.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for bs in crate::bfp::BLOCK_SIZES {
            let kb = 3;
            let a: Vec<i16> = (0..kb * bs).map(|i| if i % 3 == 0 { -128 } else { rng.gen::<i8>() as i16 }).collect();
            let w: Vec<i16> =
                (0..kb * bs * LANES).map(|i| if i % 5 == 0 { -128 } else { rng.gen::<i8>() as i16 }).collect();
            // Exponents chosen so each term is the dot product itself and the accumulator stays exact.
            let a_exp = vec![0i32; kb];
            let w_exp = vec![0i32; kb * LANES];
            let mut acc = [0.0f64; LANES];
            for avx2 in [false, avx2_available()] {
                acc.fill(0.0);
                assert_eq!(group_pass(avx2, bs, &a, &a_exp, &w, &w_exp, &mut acc), 0);
                for (j, &got) in acc.iter().enumerate() {
                    let mut want = 0i64;
                    for k in 0..kb {
                        for i in 0..bs {
                            want += a[k * bs + i] as i64 * w[(k * bs + (i / 2) * 2) * LANES + 2 * j + i % 2] as i64;
                        }
                    }
                    assert_eq!(got, want as f64, "bs {bs} lane {j}");
                }
            }
        }
    }

    #[test]
    fn every_kernel_build_matches_the_scalar_rule() {
        // Random blocks, exponents over the engine's whole range and random starting accumulators: the SSE2 (or
        // portable) and AVX2 builds of the group kernel against `block_dot_portable` + `accumulate`, bit for bit.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for case in 0..300 {
            let bs = crate::bfp::BLOCK_SIZES[case % 4];
            let kb = rng.gen_range(1..12);
            let a: Vec<i16> = (0..kb * bs).map(|_| rng.gen::<i8>() as i16).collect();
            let w: Vec<i16> = (0..kb * bs * LANES).map(|_| rng.gen::<i8>() as i16).collect();
            let wide = case % 3 == 0;
            let exp = |rng: &mut rand_chacha::ChaCha8Rng| {
                if wide {
                    rng.gen_range(-133..=122)
                } else {
                    rng.gen_range(-8..=8)
                }
            };
            let a_exp: Vec<i32> = (0..kb).map(|_| exp(&mut rng)).collect();
            let w_exp: Vec<i32> = (0..kb * LANES).map(|_| exp(&mut rng)).collect();
            let start: Vec<f32> =
                (0..LANES).map(|_| if wide { random_acc(&mut rng) } else { rng.gen_range(-1e3..1e3) }).collect();
            let mut want = start.clone();
            let mut want_sats = 0;
            for k in 0..kb {
                let dot = block_dot_portable(&a[k * bs..(k + 1) * bs], &w[k * bs * LANES..(k + 1) * bs * LANES]);
                for (j, v) in want.iter_mut().enumerate() {
                    let s = accumulate(*v, Term { mantissa: dot[j], exponent: a_exp[k] + w_exp[k * LANES + j] });
                    want_sats += s.saturated as u64;
                    *v = s.value;
                }
            }
            for avx2 in [false, avx2_available()] {
                let mut acc = [0.0f64; LANES];
                for (x, &s) in acc.iter_mut().zip(&start) {
                    *x = s as f64;
                }
                let sats = group_pass(avx2, bs, &a, &a_exp, &w, &w_exp, &mut acc);
                assert_eq!(sats, want_sats, "case {case} avx2 {avx2}");
                for (j, (&got, &v)) in acc.iter().zip(&want).enumerate() {
                    assert_eq!((got as f32).to_bits(), v.to_bits(), "case {case} avx2 {avx2} lane {j}");
                }
            }
        }
    }
}
