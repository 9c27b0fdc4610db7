//! A real network through the RTL: ResNet-20 on real CIFAR-10 images, compiled by the runtime and run through
//! the driver on the verilated `16x16` engine (`sim::VerilatorBackend`) and on the emulated `16x16` engine (the
//! golden model behind the same driver). Every logit must be bit-identical and every step's counters, cycles
//! included, equal; the images must be classified as the emulated engine classifies them.
//!
//! Needs the `sim/verilator` feature (scripts/test.sh enables it with Verilator installed) and the real data
//! (`SYSTOLE_DATA`, default `../shared/data`); skips saying why without them, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1`, where a missing model fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arch::config::EngineConfig;
use driver::{Accelerator, EmuBackend};
use ndarray::{ArrayD, Axis};
use runtime::onnx::{self, ImportOptions};
use runtime::{compile, datasets};
use sim::VerilatorBackend;

/// Images classified through the RTL (about a quarter of a million cycles each on the 16×16 engine).
const IMAGES: usize = 2;
/// Bytes of the DMA window of both engines.
const WINDOW: usize = 64 << 20;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SYSTOLE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: data folder {} not found (set SYSTOLE_DATA; CI always has it)", dir.display());
        None
    }
}

fn argmax(v: ndarray::ArrayViewD<f32>) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

#[test]
fn resnet20_through_the_verilated_engine_equals_the_emulated_engine() {
    let Some(data) = data_dir() else { return };
    let backend = match VerilatorBackend::new("16x16", WINDOW) {
        Ok(b) => b,
        Err(e) if std::env::var("SYSTOLE_REQUIRE_HDL_TOOLS").as_deref() == Ok("1") => {
            panic!("{e}, and SYSTOLE_REQUIRE_HDL_TOOLS=1 requires the Verilator models")
        }
        Err(e) => {
            eprintln!("SKIP: {e}");
            return;
        }
    };
    let (x, labels) = datasets::cifar10_ic01(&data.join("cifar10-ic01")).expect("CIFAR-10 images");
    let x: ArrayD<f32> = x.slice_axis(Axis(0), (0..IMAGES).into()).to_owned().into_dyn();
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: IMAGES }).expect("import");

    let mut rtl = Accelerator::open(backend).expect("the verilated engine identifies itself");
    rtl.set_timeout(Duration::from_secs(1800));
    let cfg = *rtl.config();
    assert_eq!(cfg, EngineConfig::default_16x16());
    let mut emu = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emulated engine")).expect("open");
    let model = compile::compile(&graph, &cfg).expect("compile");

    let t = Instant::now();
    let want = model.run(&mut emu, std::slice::from_ref(&x)).expect("emulated run");
    let emu_wall = t.elapsed();
    let t = Instant::now();
    let got = model.run(&mut rtl, std::slice::from_ref(&x)).expect("RTL run");
    let rtl_wall = t.elapsed();

    let (g, w) = (&got.values[0], &want.values[0]);
    assert_eq!(g.shape(), w.shape());
    let differing = g.iter().zip(w.iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(differing, 0, "logits differ from the emulated engine's in {differing} places");
    for (i, (gs, ws)) in got.steps.iter().zip(&want.steps).enumerate() {
        assert_eq!(gs.stats.counters, ws.stats.counters, "step {i}: counters");
    }
    let cycles: u64 = got.steps.iter().map(|s| s.stats.counters.cycles).sum();
    let classes: Vec<usize> = g.outer_iter().map(|v| argmax(v.view())).collect();
    eprintln!(
        "resnet20 on verilator:16x16, {IMAGES} CIFAR-10 images (labels {:?}): classes {classes:?}, logits and \
         counters identical to emu:16x16; {cycles} cycles in {rtl_wall:.1?} ({:.0} simulated cycles/s; the \
         emulated engine took {emu_wall:.1?})",
        &labels[..IMAGES],
        cycles as f64 / rtl_wall.as_secs_f64()
    );
    assert_eq!(rtl.backend_mut().protocol_faults(), 0);
}
