//! The golden model: documented bits for a hand-computed GEMM, the fast kernel against the reference,
//! whole programs against an independent restatement of the ISA, the cycle model by hand, and every
//! error a program can make.

use arch::accum::{accumulate, Term};
use arch::bfp::{quantize_block_into, BfpFormat, BfpTensor, Rounding};
use arch::config::EngineConfig;
use arch::golden::{reference_gemm, Engine, ExecError, Fault, Kernel};
use arch::isa::{Activation, Buffer, Deps, Gemm, Instruction, Load, Op, Post, Stage, Store};
use arch::program::{dense_matmul, matmul, DmaWindow, Matmul, OutputKind, OutputLocation};
use arch::regs::ErrorCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PUSH_NEXT: Deps = Deps { pop_prev: false, pop_next: false, push_prev: false, push_next: true };
const POP_PREV: Deps = Deps { pop_prev: true, pop_next: false, push_prev: false, push_next: false };
const POP_PREV_PUSH_NEXT: Deps = Deps { pop_prev: true, pop_next: false, push_prev: false, push_next: true };

fn load(buffer: Buffer, sram_base: u16, y: u16, x: u16, dram: u32, exp: u32) -> Load {
    Load { buffer, sram_base, y_size: y, x_size: x, x_stride: x, dram_addr: dram, exp_addr: exp, pad: [0; 4] }
}

fn block(format: &BfpFormat, entries: &[(usize, i8)]) -> Vec<i8> {
    let mut b = vec![0i8; format.block_size()];
    for &(i, m) in entries {
        b[i] = m;
    }
    b
}

/// A GEMM over two blocks whose exponents differ, with the accumulator bits worked out by hand
/// (MSFP16: 16-element blocks, 8-bit mantissas with 6 fraction bits, exponent bias 127).
///
/// Activation row: block 0 = {64, −3} · 2^0, block 1 = {32 at 0, 127 at 3} · 2^1.
/// Column 0: block 0 = {64} · 2^0, block 1 = {16} · 2^2; accumulator starts at 2^24.
///   block 0: dot 4096, exponent 0+0−12 → 1.0; 2^24 + 1 is a tie between 2^24 and 2^24 + 2: even → 2^24.
///   block 1: dot 512, exponent 1+2−12 → 1.0; the same tie again → 2^24 (0x4B800000). The exact sum,
///   2^24 + 2, is representable: rounding after each block is part of the contract.
/// Column 1: block 0 = {32, 5} · 2^1, block 1 = {−100 at 3} · 2^2; accumulator starts at 0.
///   block 0: dot 64·32 − 3·5 = 2033, exponent 0+1−12 → 2033·2^−11 = 0.99267578125 (0x3F7E2000).
///   block 1: dot 127·(−100) = −12700, exponent 1+2−12 → −24.8046875; sum −23.81201171875 (0xC1BE7F00).
#[test]
fn hand_computed_gemm_over_two_blocks_with_different_exponents() {
    let cfg = EngineConfig::tiny();
    let f = cfg.format;
    assert_eq!(f, BfpFormat::MSFP16);
    let code = |e: i32| f.encode_exponent(e);
    let act = BfpTensor::from_parts(
        f,
        vec![code(0), code(1)],
        [block(&f, &[(0, 64), (1, -3)]), block(&f, &[(0, 32), (3, 127)])].concat(),
    )
    .unwrap();
    // Weight column n occupies blocks 2n, 2n+1.
    let wgt = BfpTensor::from_parts(
        f,
        vec![code(0), code(2), code(1), code(2)],
        [block(&f, &[(0, 64)]), block(&f, &[(0, 16)]), block(&f, &[(0, 32), (1, 5)]), block(&f, &[(3, -100)])].concat(),
    )
    .unwrap();
    let mut w = DmaWindow::default();
    let a = w.put_bfp(&act).unwrap();
    let b = w.put_bfp(&wgt).unwrap();
    let acc0 = w.put_f32(&[16777216.0, 0.0]).unwrap();
    let out = w.alloc(8, 64).unwrap();
    let program = [
        Instruction::new(Op::Load(load(Buffer::Act, 0, 1, 2, a.mantissas, a.exponents))),
        Instruction::new(Op::Load(load(Buffer::Wgt, 0, 2, 2, b.mantissas, b.exponents))),
        Instruction::new(Op::Load(load(Buffer::Acc, 0, 1, 2, acc0, 0))).with_deps(PUSH_NEXT),
        Instruction::new(Op::Gemm(Gemm::dense(1, 2, 2, false))).with_deps(POP_PREV_PUSH_NEXT),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Acc,
            sram_base: 0,
            y_size: 1,
            x_size: 2,
            x_stride: 2,
            dram_addr: out,
            exp_addr: 0,
        }))
        .with_deps(POP_PREV),
        Instruction::new(Op::Finish),
    ];
    for kernel in [Kernel::Reference, Kernel::Fast] {
        let mut engine = Engine::new(cfg);
        engine.set_kernel(kernel);
        let mut mem = w.bytes.clone();
        engine.run(&program, &mut mem).unwrap();
        let got = DmaWindow { bytes: mem }.get_f32(out, 2).unwrap();
        assert_eq!(got.map_bits(), [0x4B80_0000, 0xC1BE_7F00], "{kernel:?}");
    }
}

trait Bits {
    fn map_bits(&self) -> [u32; 2];
}
impl Bits for Vec<f32> {
    fn map_bits(&self) -> [u32; 2] {
        [self[0].to_bits(), self[1].to_bits()]
    }
}

/// Random buffer contents covering the corners: the most negative mantissa code, zero blocks, and
/// exponents at both ends of the range (which drive products into saturation and flush-to-zero).
fn fill_random(engine: &mut Engine, rng: &mut ChaCha8Rng) {
    let f = engine.config().format;
    let max_code = (1u32 << f.exponent_bits()) - 2;
    let lo = f.min_mantissa_code();
    let hi = f.max_mantissa();
    for buf in [&mut engine.act, &mut engine.wgt] {
        for e in 0..buf.len() {
            buf.exponents[e] = match rng.gen_range(0..10) {
                0 => 0,
                1 => max_code as u8,
                2 => rng.gen_range(max_code - 8..=max_code) as u8,
                _ => (f.exponent_bias() + rng.gen_range(-8..8)) as u8,
            };
            let zero = rng.gen_range(0..12) == 0;
            for m in &mut buf.mantissas[e * f.block_size()..(e + 1) * f.block_size()] {
                *m = if zero {
                    0
                } else if rng.gen_range(0..16) == 0 {
                    lo as i8
                } else {
                    rng.gen_range(lo..=hi) as i8
                };
            }
        }
    }
    for a in &mut engine.acc {
        *a = match rng.gen_range(0..8) {
            0 => 0.0,
            1 => f32::MAX * rng.gen_range(-1.0..1.0),
            _ => rng.gen_range(-100.0..100.0),
        };
    }
}

/// A random GEMM that fits the buffers, with loop nests and strides (not only dense ones).
fn random_gemm(cfg: &EngineConfig, rng: &mut ChaCha8Rng) -> Gemm {
    loop {
        let m_outer = rng.gen_range(1..4u16);
        let m_inner = rng.gen_range(1..9u16);
        let n_size = rng.gen_range(1..12u16);
        let (k_outer, k_mid, k_inner) = (rng.gen_range(1..4u8), rng.gen_range(1..4u8), rng.gen_range(1..5u16));
        let kb = k_outer as u16 * k_mid as u16 * k_inner;
        let g = Gemm {
            reset: rng.gen(),
            act_base: rng.gen_range(0..16),
            wgt_base: rng.gen_range(0..16),
            acc_base: rng.gen_range(0..16),
            m_outer,
            m_inner,
            n_size,
            wgt_n_stride: kb + rng.gen_range(0..3),
            act_m_outer_stride: rng.gen_range(0..40),
            act_m_inner_stride: rng.gen_range(0..12),
            acc_m_outer_stride: 0,
            acc_m_inner_stride: n_size + rng.gen_range(0..3),
            k_outer,
            k_mid,
            k_inner,
            act_k_outer_stride: rng.gen_range(0..20),
            act_k_mid_stride: rng.gen_range(0..8),
        };
        // Distinct (m, n) must map to distinct accumulators (aliasing is undefined behaviour).
        let g = Gemm { acc_m_outer_stride: m_inner * g.acc_m_inner_stride + rng.gen_range(0..4), ..g };
        let fits = |hi: usize, len: usize| hi < len;
        let act_hi = g.act_base as usize
            + (m_outer as usize - 1) * g.act_m_outer_stride as usize
            + (m_inner as usize - 1) * g.act_m_inner_stride as usize
            + (k_outer as usize - 1) * g.act_k_outer_stride as usize
            + (k_mid as usize - 1) * g.act_k_mid_stride as usize
            + k_inner as usize
            - 1;
        let wgt_hi = g.wgt_base as usize + (n_size as usize - 1) * g.wgt_n_stride as usize + kb as usize - 1;
        let acc_hi = g.acc_base as usize
            + (m_outer as usize - 1) * g.acc_m_outer_stride as usize
            + (m_inner as usize - 1) * g.acc_m_inner_stride as usize
            + n_size as usize;
        if fits(act_hi, cfg.act_entries) && fits(wgt_hi, cfg.wgt_entries) && fits(acc_hi, cfg.acc_entries) {
            return g;
        }
    }
}

#[test]
fn fast_kernel_is_bit_identical_to_the_reference_on_random_gemms() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut formats: Vec<BfpFormat> = BfpFormat::PRESETS.iter().map(|(_, f)| *f).collect();
    for _ in 0..6 {
        let bs = [8, 16, 32, 64][rng.gen_range(0..4)];
        formats.push(BfpFormat::new(bs, rng.gen_range(2..=8), rng.gen_range(4..=8)).unwrap());
    }
    let mut saturated = 0;
    let mut tiles = 0;
    for format in formats {
        let cfg = EngineConfig { act_entries: 512, wgt_entries: 512, acc_entries: 1024, ..EngineConfig::tiny() }
            .with_format(format);
        for _ in 0..150 {
            let mut engine = Engine::new(cfg);
            fill_random(&mut engine, &mut rng);
            let g = random_gemm(&cfg, &mut rng);
            let mut reference = engine.acc.clone();
            let mut fast = engine.acc.clone();
            let s_ref = reference_gemm(&format, &g, &engine.act, &engine.wgt, &mut reference);
            let s_fast = arch::fast::gemm(&format, &g, &engine.act, &engine.wgt, &mut fast);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&reference), bits(&fast), "{format} {g:?}");
            assert_eq!(s_ref, s_fast);
            saturated += s_ref;
            tiles += 1;
        }
    }
    assert!(tiles >= 1000);
    // The corner cases above really reach saturation.
    assert!(saturated > 0);
}

/// The ISA's matrix product restated over tensors, independently of the engine's buffers and loops: block
/// products accumulated in order, then the bias, then the residual element `mantissa · 2^(E − fraction bits)`,
/// then the activation.
fn expected_matmul(
    a: &BfpTensor,
    w: &BfpTensor,
    m: usize,
    n: usize,
    bias: &[f32],
    residual: Option<&BfpTensor>,
    act: Activation,
) -> Vec<f32> {
    let f = a.format();
    let kb = a.num_blocks() / m;
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for k in 0..kb {
                let (ab, wb) = (i * kb + k, j * kb + k);
                let dot: i32 =
                    a.block(ab).mantissas.iter().zip(&w.block(wb).mantissas).map(|(&x, &y)| x as i32 * y as i32).sum();
                let exponent = a.exponent(ab) + w.exponent(wb) - 2 * f.fraction_bits();
                acc = accumulate(acc, Term { mantissa: dot, exponent }).value;
            }
            acc = accumulate(acc, Term::from_f32(bias[j])).value;
            if let Some(r) = residual {
                let (block, lane) = ((i * n + j) / f.block_size(), j % f.block_size());
                let term = Term {
                    mantissa: r.block(block).mantissas[lane] as i32,
                    exponent: r.exponent(block) - f.fraction_bits(),
                };
                acc = accumulate(acc, term).value;
            }
            out[i * n + j] = arch::golden::activate(act, acc);
        }
    }
    out
}

fn random_values(rng: &mut ChaCha8Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0) * scale).collect()
}

#[test]
fn tiled_double_buffered_matmul_equals_the_isa_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let cases = [
        (EngineConfig::tiny(), 37, 64, 32, Activation::Relu),
        (EngineConfig::tiny().with_format(BfpFormat::MSFP12), 50, 32, 16, Activation::Relu6),
        (
            EngineConfig { act_entries: 64, acc_entries: 256, out_entries: 16, ..EngineConfig::tiny() },
            29,
            48,
            16,
            Activation::None,
        ),
        (EngineConfig::default_16x16().with_format(BfpFormat::MXINT8), 20, 128, 64, Activation::Relu),
        // Weights larger than the weight buffer: column chunks (32, 32, 32, 16) double-buffered in its halves.
        (EngineConfig::tiny(), 37, 256, 112, Activation::Relu),
        (EngineConfig { act_entries: 256, ..EngineConfig::tiny() }, 45, 320, 64, Activation::None),
    ];
    for (cfg, m, k, n, activation) in cases {
        let f = cfg.format;
        let a = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, m * k, 4.0)).unwrap();
        let w = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, n * k, 0.5)).unwrap();
        let bias = random_values(&mut rng, n, 1.0);
        let res = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, m * n, 2.0)).unwrap();
        for (residual, output) in [
            (None, OutputKind::F32),
            (None, OutputKind::Bfp),
            (Some(&res), OutputKind::F32),
            (Some(&res), OutputKind::Bfp),
        ] {
            let expected = expected_matmul(&a, &w, m, n, &bias, residual, activation);
            let spec = Matmul { a: &a, w: &w, m, n, bias: Some(&bias), residual, activation, output };
            let built = matmul(&cfg, &spec).unwrap();
            let mut results = Vec::new();
            for kernel in [Kernel::Reference, Kernel::Fast] {
                let mut engine = Engine::new(cfg);
                engine.set_kernel(kernel);
                let mut mem = built.window.bytes.clone();
                let report = engine.run(&built.program, &mut mem).unwrap();
                check_timeline(&cfg, &built.program, &report.timeline);
                // The scheduler's prediction is the cycle count of the run.
                assert_eq!(arch::timing::program_cycles(&cfg, &built.program), report.counters.cycles);
                let window = DmaWindow { bytes: mem };
                let got: Vec<u32> = match built.output {
                    OutputLocation::F32(at) => window.get_f32(at, m * n).unwrap().iter().map(|x| x.to_bits()).collect(),
                    OutputLocation::Bfp(p) => {
                        let t = window.get_bfp(f, p).unwrap();
                        let mut want = vec![0i8; m * n];
                        let mut codes = Vec::new();
                        for (vals, mants) in expected.chunks(f.block_size()).zip(want.chunks_mut(f.block_size())) {
                            codes.push(quantize_block_into(&f, Rounding::NearestEven, vals, mants).unwrap());
                        }
                        assert_eq!(t.exponent_codes(), &codes[..], "{cfg} {output:?}");
                        assert_eq!(t.mantissas(), &want[..], "{cfg} {output:?}");
                        t.mantissas().iter().map(|&x| x as u32).collect()
                    }
                };
                if output == OutputKind::F32 {
                    let want: Vec<u32> = expected.iter().map(|x| x.to_bits()).collect();
                    assert_eq!(got, want, "{cfg} {kernel:?}");
                }
                results.push((got, report.counters));
            }
            assert_eq!(results[0], results[1], "kernels differ in bits or counters");
            let c = results[0].1;
            assert_eq!(c.macs, (m * n * k) as u64);
            assert!(c.cycles > 0 && c.utilisation(&cfg) > 0.0 && c.utilisation(&cfg) <= 1.0);
        }
    }
}

/// Invariants of the cycle model that hold for every program.
fn check_timeline(cfg: &EngineConfig, program: &[Instruction], t: &[arch::timing::Timing]) {
    let mut last_in_stage: [Option<usize>; 3] = [None; 3];
    let mut history: [Vec<usize>; 3] = Default::default();
    for (i, (inst, ti)) in program.iter().zip(t).enumerate() {
        if i > 0 {
            assert!(ti.dispatch > t[i - 1].dispatch, "dispatch is in order, one per cycle");
        }
        assert!(ti.start >= ti.dispatch && ti.end == ti.start + arch::timing::instruction_cycles(cfg, inst));
        match inst.stage() {
            Some(s) => {
                if let Some(p) = last_in_stage[s as usize] {
                    assert!(ti.start >= t[p].end, "a stage runs one instruction at a time");
                }
                let h = &history[s as usize];
                if h.len() >= cfg.queue_depth {
                    assert!(ti.dispatch >= t[h[h.len() - cfg.queue_depth]].start, "queue depth respected");
                }
                last_in_stage[s as usize] = Some(i);
                history[s as usize].push(i);
            }
            None => assert!(t[..i].iter().all(|p| ti.start >= p.end), "FINISH waits for everything"),
        }
    }
}

/// The cycle model applied by hand to a short program on the tiny engine (4×4, MSFP16 = 17 bytes per
/// block, DMA 16 B/cycle with 16 cycles latency, bursts of 4, accumulator latency 4).
#[test]
fn cycle_count_of_a_short_program_matches_the_model_by_hand() {
    let cfg = EngineConfig::tiny();
    let program = [
        Instruction::new(Op::Load(load(Buffer::Wgt, 0, 4, 2, 0, 512))),
        Instruction::new(Op::Load(load(Buffer::Act, 0, 1, 2, 0, 512))).with_deps(PUSH_NEXT),
        Instruction::new(Op::Gemm(Gemm::dense(1, 4, 2, true))).with_deps(POP_PREV_PUSH_NEXT),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Acc,
            sram_base: 0,
            y_size: 1,
            x_size: 4,
            x_stride: 4,
            dram_addr: 1024,
            exp_addr: 0,
        }))
        .with_deps(POP_PREV),
        Instruction::new(Op::Finish),
    ];
    let mut mem = vec![0u8; 2048];
    let report = Engine::new(cfg).run(&program, &mut mem).unwrap();
    let times: Vec<(u64, u64, u64)> = report.timeline.iter().map(|t| (t.dispatch, t.start, t.end)).collect();
    // Burst 1 (4 instructions): 16 + 128/16 = 24 cycles; dispatched at 24, 25, 26, 27.
    // LOAD wgt: 4 rows of 2 blocks: 2 exponent bytes (1 beat) + 32 mantissa bytes (2 beats): 16 + 12 = 28
    // → [24, 52).
    // LOAD act: 1 row → 16 + 3 = 19, after the load stage frees at 52 → [52, 71).
    // GEMM: passes ⌈32/4⌉·⌈4/4⌉ = 8, each max(1, P_min) with P_min = max(R + C + 2, C + 4 + 2) = 10:
    // 4 + 8·10 + (4+4−1) + 4 = 95 → [71, 166).
    // STORE: 4 f32 = 16 bytes → 16 + 1 = 17 → [166, 183) (it borrows the accumulator port, and pops anyway).
    // Burst 2 requested at 28 (after the last dispatch), arrives 28 + 16 + 2 = 46; FINISH [183, 184).
    assert_eq!(times, vec![(24, 24, 52), (25, 52, 71), (26, 71, 166), (27, 166, 183), (46, 183, 184)]);
    assert_eq!(report.counters.cycles, 184);
    assert_eq!(report.counters.load_busy, 28 + 19);
    assert_eq!(report.counters.compute_busy, 95);
    assert_eq!(report.counters.store_busy, 17);
    assert_eq!(report.counters.load_bytes, (4 * 2 + 2) * 17);
    assert_eq!(report.counters.store_bytes, 16);
}

#[test]
fn a_full_queue_delays_dispatch() {
    // queue depth 2: the third compute instruction cannot be dispatched before the first one starts.
    let cfg = EngineConfig { queue_depth: 2, fetch_burst: 8, ..EngineConfig::tiny() };
    let long = Instruction::new(Op::Gemm(Gemm::dense(64, 4, 4, true)));
    let program = [long, long, long, Instruction::new(Op::Sync(Stage::Load)), Instruction::new(Op::Finish)];
    let report = Engine::new(cfg).run(&program, &mut []).unwrap();
    let t = &report.timeline;
    assert_eq!(t[1].start, t[0].end);
    assert_eq!(t[2].dispatch, t[0].start.max(t[1].dispatch + 1));
    // The fourth instruction (another stage) waits behind the third in the in-order dispatcher.
    let cfg = EngineConfig { queue_depth: 2, ..cfg };
    let program = [long, long, long, long, Instruction::new(Op::Sync(Stage::Load)), Instruction::new(Op::Finish)];
    let t = Engine::new(cfg).run(&program, &mut []).unwrap().timeline;
    assert_eq!(t[3].dispatch, t[1].start);
    assert_eq!(t[4].dispatch, t[3].dispatch + 1);
}

fn run_err(cfg: EngineConfig, program: &[Instruction], mem: &mut [u8]) -> ExecError {
    Engine::new(cfg).run(program, mem).expect_err("program must fail")
}

#[test]
fn token_errors_are_reported_with_the_failing_instruction() {
    let cfg = EngineConfig::tiny();
    let sync = |s| Instruction::new(Op::Sync(s));
    let e = run_err(cfg, &[sync(Stage::Compute).with_deps(POP_PREV), Instruction::new(Op::Finish)], &mut []);
    assert_eq!((e.fault, e.pc), (Fault::Engine(ErrorCode::TokenUnderflow), 0));
    let e = run_err(cfg, &[sync(Stage::Load).with_deps(PUSH_NEXT), Instruction::new(Op::Finish)], &mut []);
    assert_eq!((e.fault, e.pc), (Fault::Engine(ErrorCode::UnbalancedTokens), 1));
    // A pop that only a later push could satisfy is rejected even though hardware might not deadlock.
    let e = run_err(
        cfg,
        &[
            sync(Stage::Compute).with_deps(POP_PREV),
            sync(Stage::Load).with_deps(PUSH_NEXT),
            Instruction::new(Op::Finish),
        ],
        &mut [],
    );
    assert_eq!(e.fault, Fault::Engine(ErrorCode::TokenUnderflow));
    let e = run_err(cfg, &[sync(Stage::Load)], &mut []);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::IllegalInstruction));
    assert!(e.message.contains("FINISH"));
}

#[test]
fn memory_errors_name_what_was_out_of_range() {
    let cfg = EngineConfig::tiny();
    let fin = Instruction::new(Op::Finish);
    let e = run_err(cfg, &[Instruction::new(Op::Load(load(Buffer::Act, 0, 1, 1, 100, 0))), fin], &mut [0; 64]);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::DmaOutOfBounds));
    let e = run_err(cfg, &[Instruction::new(Op::Load(load(Buffer::Act, 1020, 1, 8, 0, 0))), fin], &mut [0; 4096]);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::BufferOutOfRange));
    assert!(e.message.contains("LOAD destination"), "{}", e.message);
    let e = run_err(cfg, &[Instruction::new(Op::Gemm(Gemm::dense(2000, 4, 1, true))), fin], &mut []);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::BufferOutOfRange));
    // NaN into the accumulators.
    let mut mem = f32::NAN.to_le_bytes().to_vec();
    let e = run_err(cfg, &[Instruction::new(Op::Load(load(Buffer::Acc, 0, 1, 1, 0, 0))), fin], &mut mem);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::NonFiniteInput));
    // The reserved exponent code 0xFF.
    let mut mem = vec![0u8; 32];
    mem[16] = 0xff;
    let e = run_err(cfg, &[Instruction::new(Op::Load(load(Buffer::Act, 0, 1, 1, 0, 16))), fin], &mut mem);
    assert_eq!(e.fault, Fault::Engine(ErrorCode::BadExponent));
}

#[test]
fn unsynchronised_and_aliasing_programs_are_refused() {
    let cfg = EngineConfig::tiny();
    let fin = Instruction::new(Op::Finish);
    // The load writes activations the GEMM reads, with no token between them.
    let program = [
        Instruction::new(Op::Load(load(Buffer::Act, 0, 4, 4, 0, 512))),
        Instruction::new(Op::Gemm(Gemm::dense(4, 4, 4, true))),
        fin,
    ];
    let e = run_err(cfg, &program, &mut [0; 1024]);
    assert_eq!(e.fault, Fault::Undefined);
    assert!(e.message.contains("without a dependency token"), "{}", e.message);
    // With the token it runs.
    let mut ok = program;
    ok[0] = ok[0].with_deps(PUSH_NEXT);
    ok[1] = ok[1].with_deps(POP_PREV);
    Engine::new(cfg).run(&ok, &mut [0; 1024]).unwrap();
    // Ordered only by this cycle model's timing (a long GEMM delays the reader past the load's end) is
    // still a race: with another DMA latency it would not be.
    let long = Gemm { act_base: 512, ..Gemm::dense(256, 4, 1, true) };
    let program = [
        Instruction::new(Op::Gemm(long)),
        Instruction::new(Op::Load(load(Buffer::Act, 0, 4, 4, 0, 512))),
        Instruction::new(Op::Gemm(Gemm::dense(4, 4, 4, true))),
        fin,
    ];
    let mut engine = Engine::new(cfg);
    let e = engine.run(&program, &mut [0; 1024]).unwrap_err();
    assert_eq!((e.fault, e.pc), (Fault::Undefined, 2));
    // Ordering through SYNC instructions' tokens is enough.
    let program = [
        Instruction::new(Op::Load(load(Buffer::Act, 0, 4, 4, 0, 512))),
        Instruction::new(Op::Sync(Stage::Load)).with_deps(PUSH_NEXT),
        Instruction::new(Op::Sync(Stage::Compute)).with_deps(POP_PREV),
        Instruction::new(Op::Gemm(Gemm::dense(4, 4, 4, true))),
        fin,
    ];
    Engine::new(cfg).run(&program, &mut [0; 1024]).unwrap();
    // Two rows mapped onto the same accumulators.
    let g = Gemm { acc_m_inner_stride: 0, ..Gemm::dense(2, 4, 1, true) };
    let e = run_err(cfg, &[Instruction::new(Op::Gemm(g)), fin], &mut []);
    assert_eq!(e.fault, Fault::Undefined);
    // Interleaved but distinct rows are fine.
    let g = Gemm { acc_m_inner_stride: 1, n_size: 1, ..Gemm::dense(3, 1, 1, true) };
    Engine::new(cfg).run(&[Instruction::new(Op::Gemm(g)), fin], &mut []).unwrap();
}

/// A POST whose result would depend on its processing order is undefined: overlapping output rows, or with
/// `to_acc` overlapping tile rows or a bias inside the tile. The same tiles laid out apart run.
#[test]
fn posts_that_write_what_they_read_or_write_twice_are_refused() {
    let cfg = EngineConfig::tiny(); // bs = 16
    let fin = Instruction::new(Op::Finish);
    let base = Post { m_size: 2, n_blocks: 2, acc_m_stride: 32, out_m_stride: 2, ..Post::default() };
    let run = |p: Post| Engine::new(cfg).run(&[Instruction::new(Op::Post(p)), fin], &mut []);
    run(base).unwrap();
    run(Post { to_acc: true, bias: true, bias_base: 64, ..base }).unwrap();
    // The bias sits in the gap between two tile rows: disjoint, so defined.
    run(Post { to_acc: true, bias: true, n_blocks: 1, bias_base: 16, ..base }).unwrap();
    for (p, says) in [
        (Post { out_m_stride: 1, ..base }, "output entries twice"),
        (Post { to_acc: true, acc_m_stride: 16, ..base }, "for the next row"),
        (Post { to_acc: true, bias: true, bias_base: 40, ..base }, "bias value"),
    ] {
        let e = run(p).unwrap_err();
        assert_eq!(e.fault, Fault::Undefined, "{p:?}");
        assert!(e.message.contains(says), "{}", e.message);
    }
}

#[test]
fn saturation_is_counted() {
    let cfg = EngineConfig::tiny();
    let f = cfg.format;
    let mut engine = Engine::new(cfg);
    engine.act.exponents[0] = f.encode_exponent(f.max_exponent());
    engine.wgt.exponents[0] = f.encode_exponent(f.max_exponent());
    engine.act.mantissas[0] = 127;
    engine.wgt.mantissas[0] = 127;
    let report = engine
        .run(&[Instruction::new(Op::Gemm(Gemm::dense(1, 1, 1, true))), Instruction::new(Op::Finish)], &mut [])
        .unwrap();
    assert_eq!(report.counters.saturations, 1);
    assert_eq!(engine.acc[0], f32::MAX);
}

#[test]
fn post_adds_residual_then_activates_and_requantizes() {
    let cfg = EngineConfig::tiny();
    let f = cfg.format;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let accs = random_values(&mut rng, 32, 8.0);
    let residual = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, 32, 4.0)).unwrap();
    let mut w = DmaWindow::default();
    let acc_at = w.put_f32(&accs).unwrap();
    let res = w.put_bfp(&residual).unwrap();
    let out_m = w.alloc(2 * f.mantissa_bytes(), 64).unwrap();
    let out_e = w.alloc(2, 64).unwrap();
    let post = Post {
        activation: Activation::Relu6,
        bias: false,
        residual: true,
        to_acc: false,
        round_away: true,
        acc_base: 0,
        out_base: 0,
        m_size: 2,
        n_blocks: 1,
        acc_m_stride: 16,
        out_m_stride: 1,
        bias_base: 0,
        res_base: 0,
        res_m_stride: 1,
    };
    let program = [
        Instruction::new(Op::Load(load(Buffer::Acc, 0, 1, 32, acc_at, 0))),
        Instruction::new(Op::Load(load(Buffer::Act, 0, 1, 2, res.mantissas, res.exponents))).with_deps(PUSH_NEXT),
        Instruction::new(Op::Post(post)).with_deps(POP_PREV_PUSH_NEXT),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Out,
            sram_base: 0,
            y_size: 2,
            x_size: 1,
            x_stride: 1,
            dram_addr: out_m,
            exp_addr: out_e,
        }))
        .with_deps(POP_PREV),
        Instruction::new(Op::Finish),
    ];
    let mut mem = w.bytes.clone();
    Engine::new(cfg).run(&program, &mut mem).unwrap();
    let got = DmaWindow { bytes: mem }
        .get_bfp(f, arch::program::BfpPlanes { mantissas: out_m, exponents: out_e, blocks: 2 })
        .unwrap();
    // Restated: x = acc ⊕ residual, ReLU6, quantize each row (one block) with ties away from zero.
    let r = residual.dequantize();
    let x: Vec<f32> =
        accs.iter().zip(&r).map(|(&a, &b)| accumulate(a, Term::from_f32(b)).value.clamp(0.0, 6.0)).collect();
    let want = BfpTensor::quantize(f, Rounding::NearestAway, &x).unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_program_in_a_wrapping_ring_gives_the_same_results() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let f = cfg.format;
    let a = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, 40 * 32, 1.0)).unwrap();
    let wt = BfpTensor::quantize(f, Rounding::NearestEven, &random_values(&mut rng, 16 * 32, 1.0)).unwrap();
    let built = dense_matmul(&cfg, &a, &wt, 40, 16, None, Activation::None, OutputKind::F32).unwrap();
    let mut direct = built.window.bytes.clone();
    Engine::new(cfg).run(&built.program, &mut direct).unwrap();

    // Place the program in a 64-slot ring starting 5 slots before the end, so it wraps.
    let mut window = built.window.clone();
    let ring = window.alloc(64 * 32, 64).unwrap();
    let (size, head) = (64u32, 59u32);
    for (i, inst) in built.program.iter().enumerate() {
        let slot = (head as usize + i) % size as usize;
        let at = ring as usize + slot * 32;
        window.bytes[at..at + 32].copy_from_slice(&inst.to_bytes().unwrap());
    }
    let tail = (head + built.program.len() as u32) % size;
    let mut mem = window.bytes.clone();
    Engine::new(cfg).run_ring(&mut mem, ring, size, head, tail).unwrap();
    let OutputLocation::F32(out) = built.output else { unreachable!() };
    assert_eq!(
        DmaWindow { bytes: mem.clone() }.get_f32(out, 40 * 16).unwrap(),
        DmaWindow { bytes: direct }.get_f32(out, 40 * 16).unwrap()
    );
    // A corrupted slot is an illegal instruction at its program index.
    let slot = (head as usize + 3) % size as usize;
    mem[ring as usize + slot * 32 + 31] = 0x80; // a reserved bit of word 3
    let e = Engine::new(cfg).run_ring(&mut mem, ring, size, head, tail).unwrap_err();
    assert_eq!((e.fault, e.pc), (Fault::Engine(ErrorCode::IllegalInstruction), 3));
}

#[test]
fn matmul_without_bias_on_the_full_size_presets() {
    // The 16×16 and 32×32 presets have 65536 accumulators, one more than a 16-bit address can name.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for cfg in [EngineConfig::default_16x16(), EngineConfig::large_32x32()] {
        let (m, k, n) = (10, 2 * cfg.format.block_size(), cfg.format.block_size());
        let a = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &random_values(&mut rng, m * k, 1.0)).unwrap();
        let w = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &random_values(&mut rng, n * k, 1.0)).unwrap();
        let built = dense_matmul(&cfg, &a, &w, m, n, None, Activation::None, OutputKind::F32).unwrap();
        let mut mem = built.window.bytes.clone();
        Engine::new(cfg).run(&built.program, &mut mem).unwrap();
        let OutputLocation::F32(at) = built.output else { unreachable!() };
        let got = DmaWindow { bytes: mem }.get_f32(at, m * n).unwrap();
        let want = expected_matmul(&a, &w, m, n, &vec![0.0; n], None, Activation::None);
        assert_eq!(got, want);
    }
}

/// LOAD with padding on every side and a row stride: data entries come from `y·x_stride + x`, padding
/// entries are zero (exponent code 0, zero mantissas; `+0` in the accumulators).
#[test]
fn padded_loads_place_data_and_zeros() {
    let cfg = EngineConfig::tiny(); // MSFP16: 16 mantissa bytes per block
    let (y, x, stride, pad) = (2usize, 2usize, 3usize, [1u8, 2, 2, 1]);
    let (rows, row) = (1 + y + 2, 2 + x + 1);
    let mut mem = vec![0u8; 1024];
    for h in 0..y * stride {
        mem[512 + h] = 100 + h as u8; // exponent codes
        mem[h * 16..h * 16 + 16].fill(h as u8 + 1); // mantissas
        mem[768 + 4 * h..768 + 4 * h + 4].copy_from_slice(&(h as f32 + 0.5).to_le_bytes());
    }
    let fin = Instruction::new(Op::Finish);
    let padded = |buffer, dram_addr, exp_addr| Load {
        buffer,
        sram_base: 3,
        y_size: y as u16,
        x_size: x as u16,
        x_stride: stride as u16,
        dram_addr,
        exp_addr,
        pad,
    };
    let mut engine = Engine::new(cfg);
    engine.run(&[Instruction::new(Op::Load(padded(Buffer::Act, 0, 512))), fin], &mut mem).unwrap();
    engine.run(&[Instruction::new(Op::Load(padded(Buffer::Acc, 768, 0))), fin], &mut mem).unwrap();
    for yy in 0..rows {
        for xx in 0..row {
            let e = 3 + yy * row + xx;
            let h = (yy >= 1 && yy < 1 + y && xx >= 2 && xx < 2 + x).then(|| (yy - 1) * stride + xx - 2);
            let (code, mant, acc) = match h {
                Some(h) => (100 + h as u8, h as i8 + 1, h as f32 + 0.5),
                None => (0, 0, 0.0),
            };
            assert_eq!(engine.act.exponents[e], code, "exponent of entry ({yy}, {xx})");
            assert!(engine.act.block(e).iter().all(|&v| v == mant), "mantissas of entry ({yy}, {xx})");
            assert_eq!(engine.acc[e].to_bits(), acc.to_bits(), "accumulator of entry ({yy}, {xx})");
        }
    }
}
