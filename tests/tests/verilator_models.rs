//! A real network through the RTL: ResNet-20 on real CIFAR-10 images, compiled by the runtime and run through
//! the driver on the verilated `16x16` engine (`sim::VerilatorBackend`) and on the emulated `16x16` engine (the
//! golden model behind the same driver). Every logit must be bit-identical, every step's counters, cycles
//! included, equal, and every instruction dispatched, started and ended in the same cycle; the images must be classified as the emulated engine classifies them.
//!
//! Every distinct convolution of ResNet-20 (real weights) and ResNet-50 v1.5 (synthetic weights) runs alone on
//! the verilated and the emulated engines, on two array sizes: outputs bit-identical, counters (cycles
//! included) equal per layer, and every instruction dispatched, started and ended in the same cycle. ResNet-50's spatial sizes are cropped (its channel counts, kernels, strides and
//! paddings kept) so that the layers fit CI time.
//!
//! Needs the `sim/verilator` feature (scripts/test.sh enables it with Verilator installed) and the real data
//! (`SYSTOLE_DATA`, default `../shared/data`); skips saying why without them, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1`, where a missing model fails.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arch::config::EngineConfig;
use arch::isa::Activation;
use driver::{Accelerator, EmuBackend};
use ndarray::{Array4, ArrayD, Axis, Ix4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::engine::{conv2d, Conv2d};
use runtime::graph::{Graph, Op};
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

/// The verilated engine `model` behind the driver, or `None` (saying why) when this build has no such model.
fn verilated(model: &str) -> Option<Accelerator<VerilatorBackend>> {
    match VerilatorBackend::new(model, WINDOW) {
        Ok(backend) => {
            let mut rtl = Accelerator::open(backend).expect("the verilated engine identifies itself");
            rtl.set_timeout(Duration::from_secs(1800));
            Some(rtl)
        }
        Err(e) if std::env::var("SYSTOLE_REQUIRE_HDL_TOOLS").as_deref() == Ok("1") => {
            panic!("{e}, and SYSTOLE_REQUIRE_HDL_TOOLS=1 requires the Verilator models")
        }
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

#[test]
fn resnet20_through_the_verilated_engine_equals_the_emulated_engine() {
    let Some(data) = data_dir() else { return };
    let Some(mut rtl) = verilated("16x16") else { return };
    let (x, labels) = datasets::cifar10_ic01(&data.join("cifar10-ic01")).expect("CIFAR-10 images");
    let x: ArrayD<f32> = x.slice_axis(Axis(0), (0..IMAGES).into()).to_owned().into_dyn();
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: IMAGES }).expect("import");

    let cfg = *rtl.config();
    assert_eq!(cfg, EngineConfig::default_16x16());
    let mut emu = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emulated engine")).expect("open");
    let model = compile::compile(&graph, &cfg).expect("compile");
    rtl.record_timelines();
    emu.record_timelines();

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
    let timed = same_timelines(&mut rtl, &mut emu, "resnet20");
    let cycles: u64 = got.steps.iter().map(|s| s.stats.counters.cycles).sum();
    let classes: Vec<usize> = g.outer_iter().map(|v| argmax(v.view())).collect();
    eprintln!(
        "resnet20 on verilator:16x16, {IMAGES} CIFAR-10 images (labels {:?}): classes {classes:?}, logits and \
         counters identical to emu:16x16, {timed} instructions timed identically; {cycles} cycles in {rtl_wall:.1?} ({:.0} simulated cycles/s; the \
         emulated engine took {emu_wall:.1?})",
        &labels[..IMAGES],
        cycles as f64 / rtl_wall.as_secs_f64()
    );
    assert_eq!(rtl.backend_mut().protocol_faults(), 0);
}

/// Takes the timelines both engines recorded since the last call and asserts that the RTL dispatched, started
/// and ended every instruction of every program in the golden model's cycles; returns the instructions timed.
fn same_timelines(rtl: &mut Accelerator<VerilatorBackend>, emu: &mut Accelerator<EmuBackend>, what: &str) -> usize {
    let (rtl_programs, golden_programs) = (rtl.take_timelines(), emu.take_timelines());
    assert_eq!(rtl_programs.len(), golden_programs.len(), "{what}: programs timed");
    let mut timed = 0;
    for (k, (r, g)) in rtl_programs.into_iter().zip(golden_programs).enumerate() {
        let r = r.timeline.unwrap_or_else(|e| panic!("{what}, program {k}: {e}"));
        let g = g.timeline.expect("the golden model times completed programs");
        arch::trace::compare(&r, &g).unwrap_or_else(|e| panic!("{what}, program {k}: {e}"));
        timed += r.len();
    }
    timed
}

/// One distinct convolution of a network, with its weights from the graph.
struct ConvShape {
    /// The first node of this shape.
    node: String,
    /// O×(C/group)×KH×KW.
    weight: Array4<f32>,
    bias: Option<Vec<f32>>,
    geometry: Conv2d,
    /// The input's channels, height and width.
    input: [usize; 3],
}

/// The distinct 2-D convolutions of `graph` (input size, weight shape, strides, paddings, groups), first
/// occurrence of each.
fn distinct_convolutions(graph: &Graph) -> Vec<ConvShape> {
    let mut seen = HashSet::new();
    let mut shapes = Vec::new();
    for node in &graph.nodes {
        let Op::Conv(a) = &node.op else { continue };
        let x = &graph.values[node.inputs[0]].shape;
        let w = &graph.values[node.inputs[1]];
        if a.kernel.len() != 2 || !seen.insert(format!("{x:?} {:?} {a:?}", w.shape)) {
            continue;
        }
        let weight = w.constant.clone().expect("constant weights").into_dimensionality::<Ix4>().expect("4-D weights");
        let bias = node
            .inputs
            .get(2)
            .map(|&b| graph.values[b].constant.as_ref().expect("constant bias").iter().copied().collect());
        let geometry = Conv2d {
            stride: [a.strides[0], a.strides[1]],
            pads: [a.pads_begin[0], a.pads_begin[1], a.pads_end[0], a.pads_end[1]],
            dilation: [a.dilations[0], a.dilations[1]],
            group: a.group,
        };
        shapes.push(ConvShape { node: node.name.clone(), weight, bias, geometry, input: [x[1], x[2], x[3]] });
    }
    shapes
}

/// Runs every convolution of `shapes` on the verilated `model` and on the emulated engine, with a random input
/// cropped to at most `crop`×`crop`; outputs must be bit-identical, counters equal and every instruction's
/// dispatch, start and end cycle equal (the RTL's trace port against the golden model). Returns the cycles.
fn convolutions_match(model: &str, network: &str, shapes: &[ConvShape], crop: usize, seed: u64) -> Option<u64> {
    let mut rtl = verilated(model)?;
    let cfg = *rtl.config();
    let mut emu = Accelerator::open(EmuBackend::new(cfg, WINDOW).expect("emulated engine")).expect("open");
    rtl.record_timelines();
    emu.record_timelines();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut total, mut timed) = (0, 0);
    for s in shapes {
        let [c, h, w] = s.input;
        let (h, w) = (h.min(crop), w.min(crop));
        let x = Array4::from_shape_fn((1, c, h, w), |_| rng.gen_range(-1.0f32..1.0));
        let t = Instant::now();
        let run = |acc: &mut Accelerator<_>| {
            conv2d(acc, x.view(), s.weight.view(), s.bias.as_deref(), &s.geometry, Activation::Relu)
                .unwrap_or_else(|e| panic!("{network} {} on {model}: {e}", s.node))
        };
        let (got, got_stats) = run(&mut rtl);
        let rtl_wall = t.elapsed();
        let (want, want_stats) =
            conv2d(&mut emu, x.view(), s.weight.view(), s.bias.as_deref(), &s.geometry, Activation::Relu)
                .unwrap_or_else(|e| panic!("{network} {} on emu: {e}", s.node));
        let differing = got.iter().zip(want.iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        let what = format!("{network} {} ({c}x{h}x{w} * {:?}, {:?})", s.node, s.weight.dim(), s.geometry);
        assert_eq!(got.dim(), want.dim(), "{what}");
        assert_eq!(differing, 0, "{what} on {model}: {differing} outputs differ from the emulated engine's");
        assert_eq!(got_stats.counters, want_stats.counters, "{what} on {model}: counters");
        timed += same_timelines(&mut rtl, &mut emu, &format!("{what} on {model}"));
        let cycles = got_stats.counters.cycles;
        eprintln!("  {model}: {what}: {cycles} cycles identical ({rtl_wall:.1?})");
        total += cycles;
    }
    eprintln!("{network} on {model}: {timed} instructions timed by the RTL as the golden model times them");
    assert_eq!(rtl.backend_mut().protocol_faults(), 0);
    Some(total)
}

#[test]
fn every_resnet20_convolution_matches_the_emulated_engine_on_two_array_sizes() {
    let Some(data) = data_dir() else { return };
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: 1 }).expect("import");
    let shapes = distinct_convolutions(&graph);
    assert!(shapes.len() >= 5, "ResNet-20 has 3x3 convolutions at three widths, strided and not");
    // The 4×4 `tiny` engine's 1024-block weight buffer cannot hold a double-buffered chunk of a 3×3×64
    // convolution's columns (the runtime tiles columns, not the reduction): 8×8 is the second size.
    for model in ["8x8", "16x16"] {
        let Some(cycles) = convolutions_match(model, "resnet20", &shapes, usize::MAX, 20) else { return };
        eprintln!("resnet20: {} distinct convolutions on verilator:{model}: {cycles} cycles, identical", shapes.len());
    }
}

#[test]
fn every_resnet50_convolution_matches_the_emulated_engine_on_two_array_sizes() {
    let graph = runtime::models::resnet50::resnet50_synthetic(50, 1).expect("ResNet-50");
    let shapes = distinct_convolutions(&graph);
    assert!(shapes.len() >= 20, "ResNet-50 v1.5 has {} distinct convolutions", shapes.len());
    // Inputs cropped to 7x7: every layer's reduction and column tiling with a few output rows.
    for (model, crop) in [("16x16", 7), ("8x8", 7)] {
        let Some(cycles) = convolutions_match(model, "resnet50", &shapes, crop, 50) else { return };
        eprintln!(
            "resnet50: {} distinct convolutions (inputs cropped to {crop}x{crop}) on verilator:{model}: {cycles} \
             cycles, identical",
            shapes.len()
        );
    }
}
