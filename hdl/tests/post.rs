//! The BFP quantizer and the POST unit in RTL against `arch` (the golden model), bit for bit and cycle for
//! cycle.

mod common;

use arch::bfp::{quantize_block_into, BfpFormat, Rounding};
use arch::golden::{Engine, Fault};
use arch::isa::{Activation, Instruction, Op, Post};
use arch::regs::ErrorCode;
use arch::timing::post_cycles;
use arch::EngineConfig;
use hdl::export::verilog_of;
use hdl::harness::Harness;
use hdl::post::PostUnit;
use hdl::quant::{BlockQuantizer, QuantizeCore};
use hdl::HdlError;
use rand::{Rng, SeedableRng};
use rust_hdl::prelude::*;

type Rng8 = rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------------------
// Quantizer
// ---------------------------------------------------------------------------------------------------------

/// A random `+0`-or-normal `f32` with `floor(log2 |x|) = e` (`−126 ≤ e ≤ 127`), random sign.
fn normal_with_exponent(rng: &mut impl Rng, e: i32) -> f32 {
    let e = e.clamp(-126, 127);
    let bits = ((e + 127) as u32) << 23 | rng.gen::<u32>() & 0x7f_ffff | if rng.gen() { 1 << 31 } else { 0 };
    f32::from_bits(bits)
}

/// A random normal `f32` with `floor(log2 |x|)` in `e − below + 1 ..= e` (clamped to the normal range).
fn normal_near(rng: &mut impl Rng, e: i32, below: i32) -> f32 {
    let e = e - rng.gen_range(0..below);
    normal_with_exponent(rng, e)
}

/// `(q + 1/2) · 2^(E − fraction_bits)`, a tie of the rounding when the block's shared exponent is `E`.
fn tie(format: &BfpFormat, rng: &mut impl Rng, e: i32) -> f32 {
    let q = rng.gen_range(0..format.max_mantissa()) as f64;
    let v = (q + 0.5) * 2f64.powi(e - format.fraction_bits());
    let v = if rng.gen() { -v } else { v };
    if (v as f32).abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        v as f32
    }
}

/// A random block of `+0` and normal values, drawn from one of several regimes that reach every corner of
/// the rule: ties, saturating maxima, values near powers of two, values below `E_min`, zero blocks, one
/// nonzero value, exponents beyond `E_max` (narrow exponents).
fn random_block(format: &BfpFormat, rng: &mut impl Rng) -> Vec<f32> {
    let bs = format.block_size();
    let (e_min, e_max) = (format.min_exponent(), format.max_exponent());
    let regime = rng.gen_range(0..9);
    let anchor = match rng.gen_range(0..4) {
        0 => rng.gen_range(e_min.max(-126)..=e_max.min(127)),
        1 => rng.gen_range(-126..=127),
        2 => e_min + rng.gen_range(-5..=2),
        _ => e_max + rng.gen_range(-2..=5),
    }
    .clamp(-126, 127);
    let mut v: Vec<f32> = (0..bs)
        .map(|_| match regime {
            // Spread below the anchor: many elements round to small mantissas or zero.
            0 => normal_near(rng, anchor, 12),
            // Ties of the rounding at the anchor's exponent.
            1 => tie(format, rng, anchor.clamp(e_min, e_max)),
            // Near powers of two: significands all ones or all zeros.
            2 => {
                let x = normal_near(rng, anchor, 3);
                let frac = if rng.gen() { 0x7f_ffff } else { 0 };
                f32::from_bits(x.to_bits() & !0x7f_ffff | frac)
            }
            // Zeros mixed in.
            3 => {
                if rng.gen_bool(0.5) {
                    0.0
                } else {
                    normal_near(rng, anchor, 4)
                }
            }
            // All zero (one element is set below for regime 5).
            4 | 5 => 0.0,
            // Tiny values, below E_min for narrow exponents.
            6 => normal_near(rng, e_min, 8),
            // Values spanning the whole f32 range.
            _ => normal_near(rng, 127, 254),
        })
        .collect();
    if regime == 5 {
        let i = rng.gen_range(0..bs);
        v[i] = normal_with_exponent(rng, anchor);
    }
    if regime == 2 && rng.gen() {
        // A maximum that rounds up to 2^(m−1) and saturates: significand all ones at the top exponent.
        let i = rng.gen_range(0..bs);
        v[i] = f32::from_bits(normal_with_exponent(rng, anchor).to_bits() | 0x7f_ffff);
    }
    v
}

/// Hand-picked blocks: all zero, one nonzero, exact ties, saturating maxima, the format's extreme exponents.
fn extreme_blocks(format: &BfpFormat) -> Vec<Vec<f32>> {
    let bs = format.block_size();
    let fb = format.fraction_bits();
    let step = |e: i32| 2f32.powi(e - fb);
    let mut out = vec![vec![0.0; bs]];
    let mut one = vec![0.0; bs];
    one[bs - 1] = -1.0;
    out.push(one);
    // Ties at E = 0: (q + 1/2)·step for q = 0, 1, 2, and the saturating maximum 2 − ulp.
    let mut ties = vec![0.0; bs];
    ties[0] = 1.0;
    for (i, q) in (1..bs).zip(0..) {
        ties[i] = (q as f32 % 4.0 + 0.5) * step(0) * if i % 2 == 0 { 1.0 } else { -1.0 };
    }
    out.push(ties);
    let mut sat = vec![0.0; bs];
    sat[0] = 2.0 - f32::EPSILON;
    sat[1] = -(2.0 - f32::EPSILON);
    sat[2] = 2.0 - 0.5 * step(0);
    sat[3] = -(2.0 - 1.5 * step(0));
    out.push(sat);
    for e in [format.min_exponent(), format.max_exponent(), -126, 127] {
        let e = e.clamp(-126, 127);
        let b: Vec<f32> = (0..bs).map(|i| 2f32.powi(e) * (1.0 + i as f32 / bs as f32)).collect();
        out.push(b);
        let b: Vec<f32> = (0..bs).map(|i| if i == 0 { f32::MAX } else { -2f32.powi(e) }).collect();
        out.push(b);
        let b: Vec<f32> = (0..bs).map(|i| if i == 0 { f32::MIN_POSITIVE } else { 2f32.powi(e - i as i32) }).collect();
        out.push(b.into_iter().map(|x| if x.is_normal() { x } else { 0.0 }).collect());
    }
    out
}

/// The blocks every quantizer test runs: the extremes and `random` random ones.
fn test_blocks(format: &BfpFormat, rng: &mut impl Rng, random: usize) -> Vec<Vec<f32>> {
    let mut blocks = extreme_blocks(format);
    blocks.extend((0..random).map(|_| random_block(format, rng)));
    blocks
}

/// The golden quantizer's answer: exponent code and mantissas.
fn golden_block(format: &BfpFormat, rounding: Rounding, values: &[f32]) -> (u8, Vec<i8>) {
    let mut m = vec![0i8; format.block_size()];
    let code = quantize_block_into(format, rounding, values, &mut m).expect("finite values");
    (code, m)
}

fn signed_value<const M: usize>(x: Signed<M>) -> i64 {
    i64::try_from(x.bigint()).expect("fits in i64")
}

/// Runs the combinational quantizer on every test block with both roundings.
fn check_core<const M: usize>(format: BfpFormat, seed: u64, random: usize) {
    let mut rng = Rng8::seed_from_u64(seed);
    let mut core = Box::new(QuantizeCore::<M>::new(&format));
    core.connect_all();
    check_all(core.as_ref()).expect("the quantizer passes rust-hdl's checks");
    let (mut saturated, mut zero_blocks, mut ties) = (0, 0, 0);
    for values in test_blocks(&format, &mut rng, random) {
        for rounding in [Rounding::NearestEven, Rounding::NearestAway] {
            for (i, v) in values.iter().enumerate() {
                core.values[i].next = (v.to_bits() as u64).into();
            }
            core.round_away.next = rounding == Rounding::NearestAway;
            assert!(simulate(core.as_mut(), 1000), "the quantizer settles");
            let (code, mants) = golden_block(&format, rounding, &values);
            let got: Vec<i8> = core.mant.iter().map(|m| signed_value(m.val()) as i8).collect();
            assert_eq!(
                (core.exp_code.val().to_u32() as u8, got),
                (code, mants.clone()),
                "{format} {rounding:?} block {values:?}"
            );
            saturated += mants.iter().filter(|m| m.unsigned_abs() as i32 == format.max_mantissa()).count();
            zero_blocks += values.iter().all(|&v| v == 0.0) as usize;
            if rounding == Rounding::NearestEven {
                let (_, away) = golden_block(&format, Rounding::NearestAway, &values);
                ties += mants.iter().zip(&away).filter(|(a, b)| a != b).count();
            }
        }
    }
    println!("{format}: {saturated} mantissas at ±max, {zero_blocks} zero blocks, {ties} ties");
    assert!(saturated > 0 && zero_blocks > 0 && ties > 0, "the sample reaches saturation, zero blocks and ties");
}

#[test]
fn quantizer_matches_arch_msfp16() {
    check_core::<8>(BfpFormat::MSFP16, 1, 600);
}

#[test]
fn quantizer_matches_arch_mxint8() {
    check_core::<8>(BfpFormat::MXINT8, 2, 300);
}

#[test]
fn quantizer_matches_arch_msfp12() {
    check_core::<4>(BfpFormat::MSFP12, 3, 600);
}

#[test]
fn quantizer_matches_arch_narrow_exponent_and_odd_widths() {
    // k = 4 (E in [−7, 7]): blocks above E_max saturate, values below E_min round towards zero.
    check_core::<6>("bfp8m6e4".parse().unwrap(), 4, 800);
    check_core::<2>("bfp8m2e5".parse().unwrap(), 5, 400);
    check_core::<5>("bfp32m5e6".parse().unwrap(), 6, 200);
}

#[test]
fn block_quantizer_collects_chunks_and_answers_the_next_cycle() {
    // MSFP16 blocks arriving 4 values per cycle (the tiny engine's C), back to back and with gaps.
    let format = BfpFormat::MSFP16;
    let lanes = 4;
    let chunks = format.block_size() / lanes;
    let mut rng = Rng8::seed_from_u64(7);
    let blocks = test_blocks(&format, &mut rng, 120);
    let mut h = Harness::new(Box::new(BlockQuantizer::<8>::new(&format, lanes)), |q| &mut q.clock).expect("checks");
    let mut checked = 0;
    for (b, values) in blocks.iter().enumerate() {
        let rounding = if b % 3 == 0 { Rounding::NearestAway } else { Rounding::NearestEven };
        for k in 0..chunks {
            let q = &mut h.uut;
            q.in_valid.next = true;
            q.in_chunk.next = (k as u64).into();
            for l in 0..lanes {
                q.in_values[l].next = (values[k * lanes + l].to_bits() as u64).into();
            }
            q.round_away.next = rounding == Rounding::NearestAway;
            h.cycle();
            // After the clock edge: the next cycle, in which the answer to a completed block is valid.
            let q = &h.uut;
            if k == chunks - 1 {
                assert!(q.out_valid.val(), "block {b}: out_valid the cycle after its last chunk");
                let got: Vec<i8> = q.mant.iter().map(|m| signed_value(m.val()) as i8).collect();
                let expect = golden_block(&format, rounding, values);
                assert_eq!((q.exp_code.val().to_u32() as u8, got), expect, "block {b}");
                checked += 1;
            } else {
                assert!(!q.out_valid.val(), "block {b} chunk {k}: no output before the block is complete");
            }
        }
        if b % 5 == 4 {
            // A gap: nothing valid.
            h.uut.in_valid.next = false;
            h.cycle();
            assert!(!h.uut.out_valid.val());
        }
    }
    assert_eq!(checked, blocks.len());
}

// ---------------------------------------------------------------------------------------------------------
// POST unit
// ---------------------------------------------------------------------------------------------------------

/// The buffers a POST touches, as the test bench's memories (registered read, write visible next cycle).
#[derive(Clone, Debug, PartialEq)]
struct Buffers {
    acc: Vec<u32>,
    act_exp: Vec<u8>,
    act_mant: Vec<i8>,
    out_exp: Vec<u8>,
    out_mant: Vec<i8>,
}

impl Buffers {
    /// The golden engine's buffers after `inst` runs on a copy of these, or its error.
    fn golden(&self, cfg: &EngineConfig, inst: &Post) -> Result<(Buffers, u64), Fault> {
        let mut e = Engine::new(*cfg);
        e.acc = self.acc.iter().map(|&b| f32::from_bits(b)).collect();
        e.act.exponents.copy_from_slice(&self.act_exp);
        e.act.mantissas.copy_from_slice(&self.act_mant);
        e.out.exponents.copy_from_slice(&self.out_exp);
        e.out.mantissas.copy_from_slice(&self.out_mant);
        let program = [Instruction::new(Op::Post(*inst)), Instruction::new(Op::Finish)];
        let report = e.run(&program, &mut []).map_err(|err| err.fault)?;
        let after = Buffers {
            acc: e.acc.iter().map(|x| x.to_bits()).collect(),
            act_exp: e.act.exponents.clone(),
            act_mant: e.act.mantissas.clone(),
            out_exp: e.out.exponents.clone(),
            out_mant: e.out.mantissas.clone(),
        };
        Ok((after, report.counters.saturations))
    }
}

/// The 256-bit instruction bus value of a POST.
fn inst_bits(p: &Post) -> Bits<256> {
    let w = Instruction::new(Op::Post(*p)).encode().expect("a valid POST");
    let mut b = Bits::<256>::default();
    for i in 0..256 {
        if (w[i / 64] >> (i % 64)) & 1 == 1 {
            b = b.replace_bit(i, true);
        }
    }
    b
}

/// What the RTL did with one instruction, in cycles relative to its start `S`.
#[derive(Debug, Default)]
struct Observed {
    done: Vec<u64>,
    errors: Vec<(u64, u64)>,
    saturations: u64,
    last_write: Option<u64>,
    last_read: Option<u64>,
}

/// Runs one POST on the unit from its idle state: `start` in relative cycle 0, then `cycles − 1` more cycles,
/// with the buffers modelled as registered-read memories.
fn run_post<const M: usize>(h: &mut Harness<PostUnit<M>>, p: &Post, buf: &mut Buffers, cycles: u64) -> Observed {
    let bs = buf.act_mant.len() / buf.act_exp.len();
    let lanes = h.uut.acc_rd_en.len();
    let mut obs = Observed::default();
    // Read data presented in the cycle after the read (None: no read issued).
    let mut acc_data: Vec<Option<u32>> = vec![None; lanes];
    let mut act_data: Option<(u8, Vec<i8>)> = None;
    let bus = inst_bits(p);
    for t in 0..cycles {
        let u = &mut h.uut;
        u.start.next = t == 0;
        u.inst.next = bus;
        for (port, data) in u.acc_rd_data.iter_mut().zip(&acc_data) {
            // Lanes without a read get a poison pattern (a NaN): the unit must not use them.
            port.next = (data.unwrap_or(0x7fc0_dead) as u64).into();
        }
        let (exp, mants) = act_data.clone().unwrap_or((0xee, vec![-1; bs]));
        u.act_rd_exp[0].next = (exp as u64).into();
        for (i, &m) in mants.iter().enumerate() {
            u.act_rd_mant[i].next = (m as i64).into();
        }
        h.settle();
        let u = &h.uut;
        // Reads (sampled before this cycle's writes: a same-cycle write is seen by the next read only).
        for (l, slot) in acc_data.iter_mut().enumerate() {
            *slot = u.acc_rd_en[l].val().then(|| {
                obs.last_read = Some(t);
                buf.acc[u.acc_rd_addr[l].val().index()]
            });
        }
        act_data = u.act_rd_en[0].val().then(|| {
            let e = u.act_rd_addr[0].val().index();
            (buf.act_exp[e], buf.act_mant[e * bs..(e + 1) * bs].to_vec())
        });
        if u.done.val() {
            obs.done.push(t);
        }
        if u.error.val() {
            obs.errors.push((t, u.error_code.val().to_u64()));
        }
        obs.saturations += u.sat_count.val().to_u64();
        for l in 0..lanes {
            if u.acc_wr_en[l].val() {
                buf.acc[u.acc_wr_addr[l].val().index()] = u.acc_wr_data[l].val().to_u32();
                obs.last_write = Some(t);
            }
        }
        if u.out_wr_en[0].val() {
            let e = u.out_wr_addr[0].val().index();
            buf.out_exp[e] = u.out_wr_exp[0].val().to_u32() as u8;
            for i in 0..bs {
                buf.out_mant[e * bs + i] = signed_value(u.out_wr_mant[i].val()) as i8;
            }
            obs.last_write = Some(t);
        }
        h.cycle();
    }
    obs
}

/// A random accumulator value for a regime: typical, huge (saturation), tiny (flush), ties, zero.
fn acc_value(format: &BfpFormat, rng: &mut impl Rng, regime: u32) -> f32 {
    let sign = if rng.gen() { 1.0 } else { -1.0 };
    match (regime, rng.gen_range(0..8)) {
        (_, 0) => 0.0,
        (1, _) => sign * f32::MAX * rng.gen_range(0.5f32..1.0),
        (2, _) => sign * f32::MIN_POSITIVE * rng.gen_range(1.0f32..8.0),
        (3, _) => {
            let e = rng.gen_range(-3..3);
            tie(format, rng, e)
        }
        (4, _) => normal_near(rng, 127, 254),
        _ => sign * rng.gen_range(0.001f32..100.0),
    }
}

/// A random POST on the tiny engine, usually in range, with a non-aliasing layout (see `hdl::post`).
fn random_post(cfg: &EngineConfig, rng: &mut impl Rng) -> Post {
    let bs = cfg.format.block_size();
    let m_size: u16 = if rng.gen_ratio(1, 30) { 0 } else { rng.gen_range(1..=4) };
    let n_blocks: u16 = if rng.gen_ratio(1, 30) { 0 } else { rng.gen_range(1..=3) };
    let (m, nb) = (m_size.max(1) as usize, n_blocks.max(1) as usize);
    let acc_m_stride = (nb * bs + rng.gen_range(0..20)) as u16;
    let out_m_stride = (nb + rng.gen_range(0..3)) as u16;
    let res_m_stride = rng.gen_range(0..=5u16);
    let half_acc = cfg.acc_entries / 2;
    let span = |stride: u16, width: usize| (m - 1) * stride as usize + width;
    let mut p = Post {
        activation: [Activation::None, Activation::Relu, Activation::Relu6][rng.gen_range(0..3)],
        bias: rng.gen(),
        residual: rng.gen(),
        to_acc: rng.gen(),
        round_away: rng.gen(),
        m_size,
        n_blocks,
        acc_m_stride,
        out_m_stride,
        res_m_stride,
        // The tile in the lower half of ACC, the bias in the upper half: never aliased.
        acc_base: rng.gen_range(0..=half_acc - span(acc_m_stride, nb * bs)) as u16,
        bias_base: rng.gen_range(half_acc..=cfg.acc_entries - nb * bs) as u16,
        res_base: rng.gen_range(0..=cfg.act_entries - span(res_m_stride, nb)) as u16,
        out_base: rng.gen_range(0..=cfg.out_entries - span(out_m_stride, nb)) as u16,
    };
    if rng.gen_ratio(1, 8) {
        // Out of range by a few entries, in one of the four checks.
        let over = rng.gen_range(1..=8);
        match rng.gen_range(0..6) {
            0 => p.acc_base = (cfg.acc_entries - span(acc_m_stride, nb * bs) + over) as u16,
            1 => p.bias_base = (cfg.acc_entries - nb * bs + over) as u16,
            2 => p.res_base = (cfg.act_entries - span(res_m_stride, nb) + over) as u16,
            3 => p.out_base = (cfg.out_entries - span(out_m_stride, nb) + over) as u16,
            // Ends far beyond 16 bits (the checks must not wrap): the largest strides and bases.
            4 => (p.acc_m_stride, p.res_m_stride) = (u16::MAX, u16::MAX),
            _ => (p.out_m_stride, p.acc_base, p.bias_base) = (u16::MAX, u16::MAX, u16::MAX),
        }
    }
    p
}

/// Random buffer contents for one POST: accumulators and bias by a regime, residual blocks with codes that
/// reach saturation and extreme mantissas.
fn random_buffers(cfg: &EngineConfig, rng: &mut impl Rng) -> Buffers {
    let f = cfg.format;
    let bs = f.block_size();
    let tile_regime = rng.gen_range(0..6);
    let bias_regime = rng.gen_range(0..6);
    let half = cfg.acc_entries / 2;
    let acc = (0..cfg.acc_entries)
        .map(|i| acc_value(&f, rng, if i < half { tile_regime } else { bias_regime }).to_bits())
        .collect();
    let max_code = (1u32 << f.exponent_bits()) - 1; // includes the reserved code: POST reads it as a number
    let bias = f.exponent_bias() as u32;
    let code_regime = rng.gen_range(0..4);
    let act_exp: Vec<u8> = (0..cfg.act_entries)
        .map(|_| match code_regime {
            0 => rng.gen_range(0..=max_code),
            1 => max_code - rng.gen_range(0..4),
            2 => rng.gen_range(0..4),
            _ => bias + rng.gen_range(0..12) - 6,
        } as u8)
        .collect();
    let (lo, hi) = (f.min_mantissa_code(), f.max_mantissa());
    let act_mant = (0..cfg.act_entries * bs)
        .map(|_| match rng.gen_range(0..6) {
            0 => lo,
            1 => hi,
            2 => 0,
            _ => rng.gen_range(lo..=hi),
        } as i8)
        .collect();
    let out_exp = (0..cfg.out_entries).map(|_| rng.gen()).collect();
    let out_mant = (0..cfg.out_entries * bs).map(|_| rng.gen_range(lo..=hi) as i8).collect();
    Buffers { acc, act_exp, act_mant, out_exp, out_mant }
}

/// Runs `count` random POSTs through one unit, back to back or with idle gaps, each against the golden model.
fn check_random_posts<const M: usize>(cfg: EngineConfig, seed: u64, count: usize) {
    let mut rng = Rng8::seed_from_u64(seed);
    let uut = PostUnit::<M>::new(&cfg).expect("a supported configuration");
    let mut h = Harness::new(uut, |u| &mut u.clock).expect("the unit passes rust-hdl's checks");
    let (mut errors, mut saturations, mut empty, mut cycles, mut to_acc) = (0, 0, 0, 0, 0);
    let mut buf = random_buffers(&cfg, &mut rng);
    for i in 0..count {
        if i % 8 == 0 {
            buf = random_buffers(&cfg, &mut rng);
        }
        let p = random_post(&cfg, &mut rng);
        let cost = post_cycles(&cfg, &p);
        let golden = buf.golden(&cfg, &p);
        let before = buf.clone();
        // The next instruction starts at E (back to back) or after a gap; the gap cycles are checked idle.
        let gap = if rng.gen() { 0 } else { rng.gen_range(1..4) };
        let obs = run_post(&mut h, &p, &mut buf, cost + gap);
        cycles += cost + gap;
        match golden {
            Err(Fault::Engine(ErrorCode::BufferOutOfRange)) => {
                errors += 1;
                assert_eq!(obs.errors, vec![(1, ErrorCode::BufferOutOfRange as u64)], "{i}: {p:?}");
                assert!(obs.done.is_empty() && obs.last_write.is_none() && obs.last_read.is_none(), "{i}: {obs:?}");
                assert_eq!(buf, before, "{i}: an erroneous POST changes nothing");
            }
            Err(other) => panic!("{i}: the golden model failed unexpectedly: {other:?} for {p:?}"),
            Ok((after, sats)) => {
                assert!(obs.errors.is_empty(), "{i}: {obs:?}");
                assert_eq!(obs.done, vec![cost - 1], "{i}: done in E − 1 exactly ({p:?})");
                if let Some(w) = obs.last_write {
                    assert!(w < cost, "{i}: a write after E − 1");
                }
                assert_eq!(obs.saturations, sats, "{i}: saturation count ({p:?})");
                if buf != after {
                    let acc_diff: Vec<_> = (0..buf.acc.len()).filter(|&a| buf.acc[a] != after.acc[a]).take(8).collect();
                    let out_diff: Vec<_> = (0..buf.out_exp.len())
                        .filter(|&e| {
                            let bs = cfg.format.block_size();
                            buf.out_exp[e] != after.out_exp[e]
                                || buf.out_mant[e * bs..(e + 1) * bs] != after.out_mant[e * bs..(e + 1) * bs]
                        })
                        .take(8)
                        .collect();
                    panic!("{i}: buffers differ from the golden model: ACC {acc_diff:?}, OUT {out_diff:?} for {p:?}");
                }
                saturations += sats;
                empty += (p.m_size == 0 || p.n_blocks == 0) as usize;
                to_acc += p.to_acc as usize;
            }
        }
    }
    println!(
        "{count} POSTs, {cycles} cycles: {errors} range errors, {empty} empty, {to_acc} to ACC, {saturations} saturations"
    );
    assert!(errors > 0 && empty > 0 && saturations > 0 && to_acc > 0, "the sample reaches every case");
}

#[test]
fn post_unit_matches_the_golden_model_on_tiny() {
    check_random_posts::<8>(EngineConfig::tiny(), 11, 300);
}

#[test]
fn post_unit_matches_the_golden_model_on_16x16_and_32x32() {
    // One chunk per block (C = bs): the quantizer sees a whole block per cycle, blocks back to back.
    check_random_posts::<8>(EngineConfig::default_16x16(), 12, 100);
    check_random_posts::<8>(EngineConfig::large_32x32(), 13, 50);
}

#[test]
fn post_unit_refuses_what_it_cannot_build() {
    let too_short = EngineConfig { post_latency: 2, ..EngineConfig::tiny() };
    assert!(matches!(PostUnit::<8>::new(&too_short), Err(HdlError::Unsupported(_))));
    let two_segments: EngineConfig = "32x32-msfp16".parse().unwrap();
    assert!(matches!(PostUnit::<8>::new(&two_segments), Err(HdlError::Unsupported(_))));
    assert!(matches!(PostUnit::<4>::new(&EngineConfig::tiny()), Err(HdlError::Config(_))));
}

#[test]
fn reset_abandons_a_post_and_the_unit_runs_the_next_one() {
    let cfg = EngineConfig::tiny();
    let mut rng = Rng8::seed_from_u64(21);
    let mut h = Harness::new(PostUnit::<8>::new(&cfg).expect("tiny"), |u| &mut u.clock).expect("checks");
    let mut buf = random_buffers(&cfg, &mut rng);
    let p = Post { m_size: 4, n_blocks: 2, acc_m_stride: 40, out_m_stride: 2, bias: true, ..Post::default() };
    // Start it, run a few cycles (reads issued, no writes yet), then reset for one cycle.
    let before = buf.clone();
    let obs = run_post(&mut h, &p, &mut buf, 3);
    assert!(obs.last_read.is_some() && obs.last_write.is_none() && obs.done.is_empty());
    h.uut.reset.next = true;
    h.uut.start.next = false;
    h.cycle();
    h.uut.reset.next = false;
    // Idle afterwards: no reads, writes or done.
    h.settle();
    let u = &h.uut;
    let active = u.acc_rd_en.iter().chain(&u.acc_wr_en).chain(&u.out_wr_en).any(|s| s.val()) || u.done.val();
    assert!(!active, "the unit is idle after reset");
    assert_eq!(buf, before);
    // A new POST runs normally.
    let p = Post { to_acc: false, activation: Activation::Relu, ..p };
    let (after, sats) = buf.golden(&cfg, &p).expect("in range");
    let obs = run_post(&mut h, &p, &mut buf, post_cycles(&cfg, &p));
    assert_eq!(obs.done, vec![post_cycles(&cfg, &p) - 1]);
    assert_eq!((buf, obs.saturations), (after, sats));
}

#[test]
fn post_unit_verilog_passes_verilator_lint() {
    let Some(verilator) = common::tool("verilator") else { return };
    let dir = common::scratch_dir("post-lint");
    for (name, cfg) in [("tiny", EngineConfig::tiny()), ("16x16", EngineConfig::default_16x16())] {
        let top = format!("systole_post_{name}");
        let mut uut = PostUnit::<8>::new(&cfg).expect("supported");
        let verilog = verilog_of(uut.as_mut(), &top).expect("rust-hdl's checks pass");
        common::verilator_lint(&verilator, &dir, &top, &verilog);
    }
}
