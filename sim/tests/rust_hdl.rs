//! The engine's circuit in rust-hdl's simulator behind the driver (`sim::rust_hdl_backend`): a layer run
//! through the driver leaves the same DMA window and counters as the emulated engine; configurations without
//! a stamped engine are refused with a message.

use std::time::Duration;

use arch::bfp::{BfpTensor, Rounding};
use arch::isa::Activation;
use arch::program::{matmul, Matmul, MatmulProgram, OutputKind};
use arch::EngineConfig;
use driver::device::DeviceSpec;
use driver::{Accelerator, Backend, DriverError, EmuBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WINDOW: usize = 1 << 20;

/// Runs `p` on `acc`: its counters and the DMA window afterwards.
fn run_layer<B: Backend>(acc: &mut Accelerator<B>, p: &MatmulProgram) -> (arch::golden::Counters, Vec<u8>) {
    acc.write_data(&p.window.bytes).expect("fits");
    let stats = acc.run(&p.program).expect("runs");
    (stats.counters, acc.data()[..p.window.bytes.len()].to_vec())
}

#[test]
fn a_layer_through_the_driver_equals_the_emulated_engine() {
    let cfg = EngineConfig::tiny();
    let mut rtl = Accelerator::open(sim::rust_hdl_backend(&cfg, WINDOW).expect("tiny engine")).expect("open");
    rtl.set_timeout(Duration::from_secs(600));
    assert!(rtl.name().starts_with("rust-hdl:tiny"), "{}", rtl.name());
    let mut emu = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emu")).expect("open");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (m, k, n) = (6, 32, 16);
    let mut q = |len: usize| {
        let v: Vec<f32> = (0..len).map(|_| rng.gen_range(-4.0f32..4.0)).collect();
        BfpTensor::quantize(cfg.format, Rounding::NearestEven, &v).expect("quantize")
    };
    let (a, w) = (q(m * k), q(n * k));
    let bias: Vec<f32> = (0..n).map(|i| i as f32 - 8.0).collect();
    let spec = Matmul {
        a: &a,
        w: &w,
        m,
        n,
        bias: Some(&bias),
        residual: None,
        activation: Activation::Relu6,
        output: OutputKind::Bfp,
    };
    let p = matmul(&cfg, &spec).expect("layer");
    let (got, got_data) = run_layer(&mut rtl, &p);
    let (want, want_data) = run_layer(&mut emu, &p);
    assert!(got_data == want_data, "the DMA windows differ");
    assert_eq!(got, want, "counters, cycles included");
    eprintln!("rust-hdl:tiny: {} cycles, identical to the emulated engine", got.cycles);
}

#[test]
fn unstamped_configurations_and_misplaced_waveforms_are_refused() {
    match sim::rust_hdl_backend(&"2x2".parse().unwrap(), WINDOW) {
        Err(DriverError::Unavailable(why)) => assert!(why.contains("2x2"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("no 2x2 engine is stamped"),
    }
    let options = sim::SimOptions { trace: Some(("/tmp/never.vcd".into(), 0..10)) };
    match sim::open_device(&DeviceSpec::Emu(EngineConfig::tiny()), &options) {
        Err(DriverError::Unavailable(why)) => assert!(why.contains("+trace"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the emulated engine writes no waveform"),
    }
}
