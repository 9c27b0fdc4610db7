//! The GEMM stage unit (`hdl::gemm`) on the `tiny` preset, in rust-hdl simulation, against the golden model.
//!
//! Each test runs random GEMM instructions through [`hdl::gemm::GemmUnit4x4`] (and a few through
//! [`hdl::gemm::GemmUnit16x16`]) with **software models of the
//! buffers** in the bench (the ACT, WGT and ACC contents of an `arch::golden::Engine`, served with the buffer
//! port convention: registered reads, one cycle of latency; writes visible to the next cycle's reads). The same
//! instruction runs in the golden model (`Engine::run` on a one-instruction program), and the test compares:
//! every accumulator's bits, the saturation count (the sum of `sat_count` over the run), the `done` cycle
//! (`E − 1`, from `arch::timing::instruction_cycles`), that no ACC write happens after `done`, and for a range
//! error the `error` pulse, its code and that nothing was written.

mod common;

use arch::golden::{Engine, Fault};
use arch::isa::{Gemm, Instruction, Op};
use arch::EngineConfig;
use common::Regime;
use hdl::gemm::{GemmUnit16x16, GemmUnit4x4};
use hdl::harness::Harness;
use rand::{Rng, SeedableRng};
use rust_hdl::prelude::*;

/// The instruction's 256 bits as the unit's `inst` input.
fn inst_bits(inst: &Instruction) -> Bits<256> {
    let words = inst.encode().expect("a valid instruction");
    let mut b = Bits::<256>::default();
    for &w in words.iter().rev() {
        b = (b << 64_u64) | Bits::<256>::from(w);
    }
    b
}

/// Random buffer contents for a regime (as `common::random_tile` draws them).
fn fill(engine: &mut Engine, cfg: &EngineConfig, rng: &mut impl Rng, regime: Regime) {
    let f = cfg.format;
    let bs = f.block_size();
    let (lo, hi) = (f.min_mantissa_code(), f.max_mantissa());
    let max_code = (1i32 << f.exponent_bits()) - 2;
    let bias = f.exponent_bias();
    for buf in [&mut engine.act, &mut engine.wgt] {
        for e in 0..256 {
            let code = match regime {
                Regime::Typical => bias + rng.gen_range(-8..=8),
                Regime::Uniform => rng.gen_range(0..=max_code),
                Regime::Huge => max_code - rng.gen_range(0..=3),
                Regime::Tiny => rng.gen_range(0..=3),
                Regime::MostNegative => bias + rng.gen_range(-3..=3),
            };
            buf.exponents[e] = code.clamp(0, max_code) as u8;
            let kind = rng.gen_range(0..10);
            for i in 0..bs {
                buf.mantissas[e * bs + i] = match (regime, kind) {
                    (Regime::MostNegative, _) => lo,
                    (_, 0) => 0,
                    (_, 1) => {
                        if rng.gen_bool(0.5) {
                            lo
                        } else {
                            hi
                        }
                    }
                    _ => rng.gen_range(lo..=hi),
                } as i8;
            }
        }
    }
    for a in engine.acc.iter_mut().take(600) {
        let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        *a = match (regime, rng.gen_range(0..6)) {
            (_, 0) => 0.0,
            (Regime::Huge, _) => sign * f32::MAX * rng.gen_range(0.5f32..1.0),
            (Regime::Tiny, _) => sign * f32::MIN_POSITIVE * rng.gen_range(1.0f32..64.0),
            (Regime::Uniform, _) => f32::from_bits(rng.gen::<u32>() & 0x807f_ffff | rng.gen_range(1u32..255) << 23),
            _ => sign * rng.gen_range(0.001f32..100.0),
        };
    }
}

/// A random GEMM: loop counts small enough to simulate, strides that never alias accumulators, and now and
/// then an empty loop or a footprint beyond a buffer.
fn random_gemm(cfg: &EngineConfig, rng: &mut impl Rng) -> Gemm {
    let (m_outer, m_inner) = (rng.gen_range(1..=3u16), rng.gen_range(1..=5u16));
    let n_size = rng.gen_range(1..=9u16);
    let (k_outer, k_mid, k_inner) = (rng.gen_range(1..=2u8), rng.gen_range(1..=2u8), rng.gen_range(1..=2u16));
    let acc_m_inner_stride = n_size + rng.gen_range(0..3);
    let acc_m_outer_stride = m_inner * acc_m_inner_stride + rng.gen_range(0..3);
    let mut g = Gemm {
        reset: rng.gen_bool(0.3),
        act_base: rng.gen_range(0..40),
        wgt_base: rng.gen_range(0..40),
        acc_base: rng.gen_range(0..100),
        m_outer,
        m_inner,
        n_size,
        wgt_n_stride: rng.gen_range(0..10),
        act_m_outer_stride: rng.gen_range(0..12),
        act_m_inner_stride: rng.gen_range(0..6),
        acc_m_outer_stride,
        acc_m_inner_stride,
        k_outer,
        k_mid,
        k_inner,
        act_k_outer_stride: rng.gen_range(0..8),
        act_k_mid_stride: rng.gen_range(0..4),
    };
    match rng.gen_range(0..30) {
        0 => g.m_inner = 0,
        1 => g.k_mid = 0,
        2 => g.acc_base = (cfg.acc_entries - rng.gen_range(1..40)) as u16,
        3 => g.act_base = (cfg.act_entries - rng.gen_range(1..20)) as u16,
        4 => g.wgt_base = (cfg.wgt_entries - rng.gen_range(1..30)) as u16,
        _ => {}
    }
    g
}

/// What the unit did.
struct Outcome {
    /// Cycles in which `done` was high.
    done: Vec<u64>,
    error: Option<(u64, u64)>,
    saturations: u64,
    acc: Vec<f32>,
    late_writes: usize,
}

/// Drives a BFP read port's data inputs with one entry.
fn set_block(exp: &mut Signal<In, Bits<8>>, mant: &mut [Signal<In, Signed<8>>], (code, m): (u8, Vec<i8>)) {
    exp.next = (code as u64).into();
    for (s, &x) in mant.iter_mut().zip(&m) {
        s.next = Signed::<8>::from(x as i64);
    }
}

/// The bench for one stamped unit type (they have the same ports, but no common trait).
macro_rules! bench {
    ($module:ident, $unit:ty) => {
        mod $module {
            use super::*;

            type Unit = $unit;

            /// Runs instructions through the unit, each `(start cycle, instruction)`, with `engine`'s buffers as the
            /// memories; stops 24 cycles after the last instruction's `done` or an error.
            pub fn run_unit(
                h: &mut Harness<Unit>,
                engine: &Engine,
                starts: &[(u64, Instruction)],
                max_cycles: u64,
            ) -> Outcome {
                let cfg = *engine.config();
                let bs = cfg.format.block_size();
                let lanes = h.uut.acc_rd_en.len();
                let mut acc = engine.acc.clone();
                let (mut act_q, mut wgt_q) = (None::<usize>, None::<usize>);
                let mut acc_q: Vec<Option<usize>> = vec![None; lanes];
                let mut out =
                    Outcome { done: Vec::new(), error: None, saturations: 0, acc: Vec::new(), late_writes: 0 };
                let mut t = 0;
                while t < max_cycles {
                    // Read data of the reads issued last cycle.
                    let block = |buf: &arch::golden::BlockBuffer, e: Option<usize>| {
                        e.filter(|&e| e < buf.len())
                            .map_or((0, vec![0i8; bs]), |e| (buf.exponents[e], buf.block(e).to_vec()))
                    };
                    if let Some(e) = act_q {
                        set_block(&mut h.uut.act_rd_exp, &mut h.uut.act_rd_mant, block(&engine.act, Some(e)));
                    }
                    if let Some(e) = wgt_q {
                        set_block(&mut h.uut.wgt_rd_exp, &mut h.uut.wgt_rd_mant, block(&engine.wgt, Some(e)));
                    }
                    for (l, q) in acc_q.iter().enumerate() {
                        if let Some(a) = q {
                            h.uut.acc_rd_data[l].next = (acc.get(*a).map_or(0, |x| x.to_bits()) as u64).into();
                        }
                    }
                    let starting = starts.iter().find(|(s, _)| *s == t);
                    h.uut.start.next = starting.is_some();
                    h.uut.inst.next = starting.map_or(Bits::default(), |(_, inst)| inst_bits(inst));
                    h.settle();
                    // Outputs of this cycle.
                    out.saturations += h.uut.sat_count.val().to_u64();
                    act_q = h.uut.act_rd_en.val().then(|| h.uut.act_rd_addr.val().index());
                    wgt_q = h.uut.wgt_rd_en.val().then(|| h.uut.wgt_rd_addr.val().index());
                    for (l, q) in acc_q.iter_mut().enumerate() {
                        *q = h.uut.acc_rd_en[l].val().then(|| h.uut.acc_rd_addr[l].val().index());
                    }
                    for l in 0..lanes {
                        if h.uut.acc_wr_en[l].val() {
                            let a = h.uut.acc_wr_addr[l].val().index();
                            acc[a] = f32::from_bits(h.uut.acc_wr_data[l].val().to_u64() as u32);
                            if out.done.len() == starts.len() || out.error.is_some() {
                                out.late_writes += 1;
                            }
                        }
                    }
                    if h.uut.done.val() {
                        out.done.push(t);
                    }
                    if h.uut.error.val() {
                        out.error = Some((t, h.uut.error_code.val().to_u64()));
                    }
                    h.cycle();
                    t += 1;
                    // After done or an error, run a few more cycles to catch late writes.
                    let finished = if out.done.len() == starts.len() { out.done.last().copied() } else { None };
                    if let Some(end) = finished.or(out.error.map(|e| e.0)) {
                        if t > end + 24 {
                            break;
                        }
                    }
                }
                out.acc = acc;
                out
            }

            /// `count` random GEMMs on `cfg`, regimes round robin; returns (GEMMs run, saturations seen, errors seen).
            pub fn random_gemms(cfg: EngineConfig, seed: u64, count: usize) -> (usize, u64, usize) {
                let mut h =
                    Harness::new(Unit::new(&cfg).expect("a supported configuration"), |u: &mut Unit| &mut u.clock)
                        .expect("the unit passes rust-hdl's checks");
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let regimes = [Regime::Typical, Regime::Uniform, Regime::Huge, Regime::Tiny, Regime::MostNegative];
                let (mut sats, mut errors, mut run) = (0, 0, 0);
                let start = std::time::Instant::now();
                while run < count {
                    let regime = regimes[run % regimes.len()];
                    let mut engine = Engine::new(cfg);
                    fill(&mut engine, &cfg, &mut rng, regime);
                    let g = random_gemm(&cfg, &mut rng);
                    let inst = Instruction::new(Op::Gemm(g));
                    let mut golden = engine.clone();
                    let result = golden.run(&[inst, Instruction::new(Op::Finish)], &mut []);
                    if let Err(e) = &result {
                        if e.fault == Fault::Undefined {
                            continue; // not a program hardware is specified for
                        }
                    }
                    run += 1;
                    let cost = arch::timing::instruction_cycles(&cfg, &inst);
                    let what = format!("GEMM {run} ({regime:?}): {g:?}");
                    let got = run_unit(&mut h, &engine, &[(0, inst)], cost + 50);
                    assert_eq!(got.late_writes, 0, "{what}: ACC writes after done");
                    match result {
                        Ok(report) => {
                            assert_eq!(got.error, None, "{what}: unexpected error");
                            assert_eq!(got.done, [cost - 1], "{what}: done must be in E − 1 (cost {cost})");
                            for (i, (a, b)) in got.acc.iter().zip(&golden.acc).enumerate() {
                                assert_eq!(
                                    a.to_bits(),
                                    b.to_bits(),
                                    "{what}: accumulator {i}: unit {a:e}, golden {b:e}"
                                );
                            }
                            assert_eq!(got.saturations, report.counters.saturations, "{what}: saturations");
                            sats += got.saturations;
                        }
                        Err(e) => {
                            assert_eq!(e.fault, Fault::Engine(arch::regs::ErrorCode::BufferOutOfRange), "{what}: {e}");
                            assert_eq!(
                                got.error,
                                Some((1, arch::regs::ErrorCode::BufferOutOfRange as u64)),
                                "{what}: error"
                            );
                            assert!(got.done.is_empty(), "{what}: done after an error");
                            assert!(
                                got.acc.iter().zip(&engine.acc).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{what}: wrote"
                            );
                            errors += 1;
                        }
                    }
                }
                println!(
                    "{count} GEMMs ({errors} range errors, {sats} saturations), {} cycles in {:.1?}",
                    h.cycles(),
                    start.elapsed()
                );
                (run, sats, errors)
            }

            /// Back-to-back GEMMs: each starts in the cycle its predecessor ends (`E`), as the compute stage issues them;
            /// the accumulators (chained: later GEMMs read what earlier ones wrote), saturations and every `done` cycle must
            /// match the golden model run instruction by instruction.
            pub fn back_to_back(cfg: EngineConfig, seed: u64, programs: usize) {
                let mut h =
                    Harness::new(Unit::new(&cfg).expect("a supported configuration"), |u: &mut Unit| &mut u.clock)
                        .expect("the unit passes rust-hdl's checks");
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let regimes = [Regime::Typical, Regime::Uniform, Regime::Huge, Regime::MostNegative];
                let mut p = 0;
                while p < programs {
                    let mut engine = Engine::new(cfg);
                    fill(&mut engine, &cfg, &mut rng, regimes[p % regimes.len()]);
                    // Three GEMMs the golden model accepts, reusing the first one's accumulators half of the time.
                    let mut golden = engine.clone();
                    let (mut starts, mut t, mut sats) = (Vec::new(), 0, 0);
                    while starts.len() < 3 {
                        let mut g = random_gemm(&cfg, &mut rng);
                        if let Some((_, Instruction { op: Op::Gemm(first), .. })) = starts.first() {
                            if rng.gen_bool(0.5) {
                                g.acc_base = first.acc_base;
                            }
                        }
                        let inst = Instruction::new(Op::Gemm(g));
                        let mut trial = golden.clone();
                        if let Ok(report) = trial.run(&[inst, Instruction::new(Op::Finish)], &mut []) {
                            golden = trial;
                            sats += report.counters.saturations;
                            starts.push((t, inst));
                            t += arch::timing::instruction_cycles(&cfg, &inst);
                        }
                    }
                    let got = run_unit(&mut h, &engine, &starts, t + 50);
                    let what = format!("program {p}: {starts:?}");
                    assert_eq!(got.error, None, "{what}");
                    assert_eq!(got.late_writes, 0, "{what}: ACC writes after the last done");
                    let ends: Vec<u64> =
                        starts.iter().map(|(s, i)| s + arch::timing::instruction_cycles(&cfg, i) - 1).collect();
                    assert_eq!(got.done, ends, "{what}: done cycles");
                    for (i, (a, b)) in got.acc.iter().zip(&golden.acc).enumerate() {
                        assert_eq!(a.to_bits(), b.to_bits(), "{what}: accumulator {i}: unit {a:e}, golden {b:e}");
                    }
                    assert_eq!(got.saturations, sats, "{what}: saturations");
                    p += 1;
                }
            }
        }
    };
}

bench!(tiny, GemmUnit4x4<8>);
bench!(sixteen, GemmUnit16x16<8>);

/// Runs `f` on a thread with a large stack (rust-hdl's circuits are deep structures).
fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(256 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn random_gemms_on_tiny_part_1() {
    big_stack(|| {
        tiny::random_gemms(EngineConfig::tiny(), 21, 25);
    });
}

#[test]
fn random_gemms_on_tiny_part_2() {
    big_stack(|| {
        let (_, sats, _) = tiny::random_gemms(EngineConfig::tiny(), 22, 25);
        assert!(sats > 0, "the Huge regime should saturate");
    });
}

#[test]
fn back_to_back_gemms_on_tiny() {
    big_stack(|| tiny::back_to_back(EngineConfig::tiny(), 23, 8));
}

#[test]
fn spot_check_on_16x16() {
    // The 16x16 preset: one block per pass (no carried sums), 16 ACC lanes, P_min = 22. Slow in rust-hdl
    // (a 16x16 array), so a few GEMMs only.
    big_stack(|| {
        sixteen::random_gemms(EngineConfig::default_16x16(), 24, 4);
        sixteen::back_to_back(EngineConfig::default_16x16(), 25, 1);
    });
}

#[test]
fn unsupported_configurations_are_refused() {
    for spec in ["2x2", "16x16-bfp8m8", "32x32-msfp16"] {
        let cfg: EngineConfig = spec.parse().unwrap();
        assert!(
            matches!(hdl::gemm::GemmGeometry::for_config(&cfg), Err(hdl::HdlError::Unsupported(_))),
            "{spec} should be refused"
        );
    }
    for (_, cfg) in EngineConfig::presets() {
        hdl::gemm::GemmGeometry::for_config(&cfg).expect("every preset is supported");
    }
}
