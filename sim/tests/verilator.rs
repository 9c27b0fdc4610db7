//! The verilated engine behind the driver (`sim::VerilatorBackend`) against the emulated engine (the golden
//! model behind the same interface): the driver's self-test, random layer programs and a failing program,
//! compared bit for bit in the DMA window, counter for counter (cycles included) and instruction by
//! instruction (dispatch, start and end cycles).
//!
//! Without the `verilator` feature there are no models and these tests skip with a message, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1` (set by `scripts/test.sh` when Verilator is installed, together with the
//! feature), where a missing model fails.

use std::time::Duration;

use arch::bfp::BfpTensor;
use arch::isa::{Activation, Buffer, Op};
use arch::program::{matmul, Matmul, MatmulProgram, OutputKind};
use arch::EngineConfig;
use driver::{selftest, Accelerator, Backend, DriverError, EmuBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::VerilatorBackend;

/// Bytes of the DMA window of both backends.
const WINDOW: usize = 1 << 20;

/// The verilated `preset`, or `None` (with a message) when this build has no such model.
fn verilated(preset: &str) -> Option<Accelerator<VerilatorBackend>> {
    match VerilatorBackend::new(preset, WINDOW) {
        Ok(backend) => {
            let mut acc = Accelerator::open(backend).expect("the verilated engine identifies itself");
            acc.set_timeout(Duration::from_secs(600));
            Some(acc)
        }
        Err(e) => {
            if std::env::var("SYSTOLE_REQUIRE_HDL_TOOLS").as_deref() == Ok("1") {
                panic!("{e}, and SYSTOLE_REQUIRE_HDL_TOOLS=1 requires the Verilator models");
            }
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn emulated(cfg: &EngineConfig) -> Accelerator<EmuBackend> {
    Accelerator::open(EmuBackend::new(*cfg, WINDOW).expect("emulated engine")).expect("open")
}

/// A random BFP tensor with zero blocks, most-negative mantissas and exponent codes at both ends.
fn random_bfp(cfg: &EngineConfig, rng: &mut ChaCha8Rng, blocks: usize) -> BfpTensor {
    let f = cfg.format;
    let max_code = (1i32 << f.exponent_bits()) - 2;
    let mut exps = Vec::new();
    let mut mants = Vec::new();
    for _ in 0..blocks {
        let code = match rng.gen_range(0..10) {
            0 => max_code - rng.gen_range(0..2),
            1 => rng.gen_range(0..2),
            _ => f.exponent_bias() + rng.gen_range(-6..=6),
        };
        exps.push(code.clamp(0, max_code) as u8);
        let kind = rng.gen_range(0..8);
        for _ in 0..f.block_size() {
            mants.push(match kind {
                0 => 0,
                1 => f.min_mantissa_code(),
                _ => rng.gen_range(f.min_mantissa_code()..=f.max_mantissa()),
            } as i8);
        }
    }
    BfpTensor::from_parts(f, exps, mants).expect("valid blocks")
}

/// One device's run of a program: its outcome and its data window afterwards.
type Outcome = (Result<driver::RunStats, DriverError>, Vec<u8>);

/// Runs the same image and program on both devices; returns the RTL's outcome and the emulated one's.
fn run_both<B: Backend>(
    rtl: &mut Accelerator<B>,
    emu: &mut Accelerator<EmuBackend>,
    image: &[u8],
    program: &[arch::isa::Instruction],
) -> (Outcome, Outcome) {
    rtl.write_data(image).expect("image fits");
    emu.write_data(image).expect("image fits");
    let got = rtl.run(program);
    let want = emu.run(program);
    ((got, rtl.data()[..image.len()].to_vec()), (want, emu.data()[..image.len()].to_vec()))
}

#[test]
fn the_driver_self_test_passes_on_the_verilated_engine() {
    let Some(mut acc) = verilated("tiny") else { return };
    let report = selftest(&mut acc).expect("self-test runs");
    assert_eq!(report.mismatched_bytes, 0, "{report:?}");
    assert_eq!(report.device, report.golden, "counters, cycles included");
    assert!(report.passed());
    assert_eq!(acc.backend_mut().protocol_faults(), 0);
    eprintln!("self-test: {} bytes, {} cycles, identical", report.bytes_compared, report.device.cycles);
}

/// Random layer programs on the verilated `model` until they hold at least `min_gemms` GEMM instructions,
/// each compared with the emulated engine: the whole DMA window bit for bit, every counter (cycles included)
/// and every instruction's dispatch, start and end cycle (the RTL's trace port against the golden model).
/// Returns (programs, GEMM instructions, MACs, cycles).
fn random_layers_match(model: &str, seed: u64, min_gemms: usize) -> Option<(usize, usize, u64, u64)> {
    let mut rtl = verilated(model)?;
    let cfg = *rtl.config();
    let mut emu = emulated(&cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bs = cfg.format.block_size();
    let (mut programs, mut gemms, mut macs, mut cycles, mut timed) = (0, 0, 0, 0, 0);
    let start = std::time::Instant::now();
    while gemms < min_gemms {
        // Rows from one to a few tiles, reductions of one to four blocks, one to three blocks of columns:
        // tiled, double-buffered layers with every POST option.
        let (m, kb, n) = (rng.gen_range(1..=80), rng.gen_range(1..=4), bs * rng.gen_range(1..=3));
        let a = random_bfp(&cfg, &mut rng, m * kb);
        let w = random_bfp(&cfg, &mut rng, n * kb);
        let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-50.0f32..50.0)).collect();
        let residual = random_bfp(&cfg, &mut rng, m * n / bs);
        let output = if rng.gen_bool(0.5) { OutputKind::Bfp } else { OutputKind::F32 };
        let spec = Matmul {
            a: &a,
            w: &w,
            m,
            n,
            bias: rng.gen_bool(0.7).then_some(&bias[..]),
            residual: (output == OutputKind::Bfp && rng.gen_bool(0.5)).then_some(&residual),
            activation: [Activation::None, Activation::Relu, Activation::Relu6][rng.gen_range(0..3)],
            output,
        };
        let p = matmul(&cfg, &spec).expect("a layer that fits");
        let ((got, rtl_data), (want, emu_data)) = run_both(&mut rtl, &mut emu, &p.window.bytes, &p.program);
        let (got, want) = (got.expect("RTL run"), want.expect("emulated run"));
        let what = format!("{model} program {programs} ({m}x{kb}x{n})");
        assert!(rtl_data == emu_data, "{what}: the DMA windows differ");
        assert_eq!(got.counters, want.counters, "{what}: counters");
        let rtl_timeline = rtl.timeline().expect("observed").unwrap_or_else(|e| panic!("{what}: {e}"));
        let golden_timeline = emu.timeline().expect("observed").expect("completed");
        arch::trace::compare(&rtl_timeline, &golden_timeline).unwrap_or_else(|e| panic!("{what}: timeline: {e}"));
        timed += rtl_timeline.len();
        programs += 1;
        gemms += p.program.iter().filter(|i| matches!(i.op, Op::Gemm(_))).count();
        macs += got.counters.macs;
        cycles += got.counters.cycles;
    }
    assert_eq!(rtl.backend_mut().protocol_faults(), 0);
    eprintln!(
        "{model}: {programs} random layer programs, {gemms} GEMM instructions, {macs} MACs, {cycles} cycles: \
         identical to the emulated engine; {timed} instructions timed as the golden model times them ({:.1?})",
        start.elapsed()
    );
    Some((programs, gemms, macs, cycles))
}

/// GEMM instructions of random layers per array size: 10,000 over the two sizes of the default build.
const RANDOM_GEMMS_PER_SIZE: usize = 5_000;

#[test]
fn random_layers_match_the_emulated_engine_bit_for_bit_on_the_4x4_engine() {
    random_layers_match("tiny", 51, RANDOM_GEMMS_PER_SIZE);
}

#[test]
fn random_layers_match_the_emulated_engine_bit_for_bit_on_the_16x16_engine() {
    random_layers_match("16x16", 53, RANDOM_GEMMS_PER_SIZE);
}

/// A plain 8-row, one-block, 16-column layer of random blocks (no bias, no activation, BFP output).
fn small_layer(cfg: &EngineConfig, seed: u64) -> MatmulProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (a, w) = (random_bfp(cfg, &mut rng, 8), random_bfp(cfg, &mut rng, 16));
    let spec = Matmul {
        a: &a,
        w: &w,
        m: 8,
        n: 16,
        bias: None,
        residual: None,
        activation: Activation::None,
        output: OutputKind::Bfp,
    };
    matmul(cfg, &spec).expect("layer")
}

#[test]
fn a_failing_program_reports_the_emulated_error_and_the_engine_recovers() {
    let Some(mut rtl) = verilated("tiny") else { return };
    let cfg = *rtl.config();
    let mut emu = emulated(&cfg);
    let p = small_layer(&cfg, 52);
    let mut broken = p.window.bytes.clone();
    let act = p.program.iter().find_map(|i| match i.op {
        Op::Load(l) if l.buffer == Buffer::Act => Some(l),
        _ => None,
    });
    broken[act.expect("an activation LOAD").exp_addr as usize] = 0xff; // a reserved exponent code
    let ((got, _), (want, _)) = run_both(&mut rtl, &mut emu, &broken, &p.program);
    match (got, want) {
        (Err(DriverError::Engine { code, pc, .. }), Err(DriverError::Engine { code: c2, pc: p2, .. })) => {
            assert_eq!((code, pc), (c2, p2), "error code and instruction");
        }
        other => panic!("both must fail with an engine error: {other:?}"),
    }
    // The driver reset the engine; the intact program now runs identically.
    let ((got, rtl_data), (want, emu_data)) = run_both(&mut rtl, &mut emu, &p.window.bytes, &p.program);
    assert!(rtl_data == emu_data, "after the error: the DMA windows differ");
    assert_eq!(got.expect("RTL").counters, want.expect("emulated").counters);
}

#[test]
fn a_waveform_of_a_window_of_cycles_is_written_as_vcd() {
    let Some(mut rtl) = verilated("tiny+trace") else { return };
    let cfg = *rtl.config();
    let p = small_layer(&cfg, 54);
    let dir = std::env::temp_dir().join(format!("systole-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("layer.vcd");
    let start = rtl.backend_mut().cycles();
    let window = start + 100..start + 300;
    rtl.backend_mut().trace(&path, window.clone()).expect("a +trace model writes waveforms");
    rtl.write_data(&p.window.bytes).expect("fits");
    let stats = rtl.run(&p.program).expect("runs");
    assert!(stats.counters.cycles > 300, "the layer outlasts the window");
    drop(rtl);
    let vcd = std::fs::read_to_string(&path).expect("the waveform");
    for signal in ["clock", "irq", "bar$wr_en", "fetch$rd_req_valid"] {
        assert!(
            vcd.lines().any(|l| l.trim_start().starts_with("$var") && l.split_whitespace().nth(4) == Some(signal)),
            "the waveform has the engine's `{signal}`"
        );
    }
    let times: Vec<u64> = vcd.lines().filter_map(|l| l.strip_prefix('#')?.parse().ok()).collect();
    assert_eq!(times.len(), 2 * 200, "two time steps per cycle of the window");
    assert_eq!((times[0], *times.last().unwrap()), (2 * window.start, 2 * window.end - 1));
    assert!(vcd.len() > 10_000, "values change in the window");
    std::fs::remove_dir_all(&dir).ok();
    // A model built without waveform support says how to get one.
    if let Some(mut plain) = verilated("16x16") {
        match plain.backend_mut().trace(&path, 0..10) {
            Err(DriverError::Unavailable(why)) => assert!(why.contains("16x16+trace"), "{why}"),
            other => panic!("16x16 has no waveforms: {other:?}"),
        }
    }
}
