//! The verilated engine behind the driver (`sim::VerilatorBackend`) against the emulated engine (the golden
//! model behind the same interface): the driver's self-test, random layer programs and a failing program,
//! compared bit for bit in the DMA window and counter for counter (cycles included).
//!
//! Without the `verilator` feature there are no models and these tests skip with a message, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1` (set by `scripts/test.sh` when Verilator is installed, together with the
//! feature), where a missing model fails.

use std::time::Duration;

use arch::bfp::BfpTensor;
use arch::isa::{Activation, Buffer, Op};
use arch::program::{matmul, Matmul, OutputKind};
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

#[test]
fn random_layers_match_the_emulated_engine_bit_for_bit() {
    let Some(mut rtl) = verilated("tiny") else { return };
    let cfg = *rtl.config();
    let mut emu = emulated(&cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let bs = cfg.format.block_size();
    let mut cycles = 0;
    for i in 0..20 {
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
        assert!(rtl_data == emu_data, "layer {i} ({m}x{kb}x{n}): the DMA windows differ");
        assert_eq!(got.counters, want.counters, "layer {i} ({m}x{kb}x{n}): counters");
        cycles += got.counters.cycles;
    }
    assert_eq!(rtl.backend_mut().protocol_faults(), 0);
    eprintln!("20 layers, {cycles} cycles, identical");
}

#[test]
fn a_failing_program_reports_the_emulated_error_and_the_engine_recovers() {
    let Some(mut rtl) = verilated("tiny") else { return };
    let cfg = *rtl.config();
    let mut emu = emulated(&cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(52);
    let a = random_bfp(&cfg, &mut rng, 8);
    let w = random_bfp(&cfg, &mut rng, 16);
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
    let p = matmul(&cfg, &spec).expect("layer");
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
