//! Whole models on the emulated engine through the driver: ResNet-20 on 200 real CIFAR-10 images with every
//! convolution and the classifier on the engine (MSFP16), against the f32 reference path.

mod common;

use std::time::Instant;

use arch::config::EngineConfig;
use driver::{Accelerator, EmuBackend};
use ndarray::ArrayD;
use runtime::compile;
use runtime::datasets;
use runtime::onnx::{self, ImportOptions};
use runtime::preprocess::{preprocess, PreprocessConfig};
use runtime::reference;

fn argmax(v: ndarray::ArrayViewD<f32>) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

#[test]
fn resnet20_on_the_emulated_engine_through_the_driver() {
    let Some(data) = common::data_dir() else { return };
    let (x, labels) = datasets::cifar10_ic01(&data.join("cifar10-ic01")).expect("CIFAR-10 images");
    let x: ArrayD<f32> = x.into_dyn();
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: labels.len() }).expect("import");
    let f32_logits = reference::run(&graph, std::slice::from_ref(&x)).expect("f32 run").remove(0);

    let mut acc = Accelerator::open(EmuBackend::new(EngineConfig::default(), 64 << 20).unwrap()).unwrap();
    let t = Instant::now();
    let model = compile::compile(&graph, acc.config()).expect("compile");
    let run = model.run(&mut acc, &[x]).expect("engine run");
    let wall = t.elapsed();
    let logits = &run.values[0];

    let (mut f32_correct, mut engine_correct, mut agree) = (0, 0, 0);
    for ((e, f), label) in logits.outer_iter().zip(f32_logits.outer_iter()).zip(&labels) {
        let (e, f) = (argmax(e.view()), argmax(f.view()));
        f32_correct += (f == *label) as usize;
        engine_correct += (e == *label) as usize;
        agree += (e == f) as usize;
    }
    let signal: f64 = f32_logits.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = f32_logits.iter().zip(logits.iter()).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let steps = model.steps();
    let engine_steps = steps.iter().filter(|s| s.on_engine()).count();
    let cycles: u64 = run.steps.iter().map(|r| r.stats.counters.cycles).sum();
    let macs: u64 = run.steps.iter().map(|r| r.stats.counters.macs).sum();
    eprintln!(
        "resnet20 on emu (16x16 msfp16): {engine_correct}/200 correct (f32 {f32_correct}/200), top-1 agrees on \
         {agree}/200, logits SQNR {:.1} dB; {engine_steps} of {} steps on the engine, {macs} MACs in {cycles} \
         modelled cycles ({:.1} % utilisation); wall {wall:?}",
        10.0 * (signal / noise).log10(),
        steps.len(),
        100.0 * macs as f64 / (cycles as f64 * 256.0),
    );
    for s in steps.iter().filter(|s| !s.on_engine()).take(3) {
        eprintln!("  on the host: {} ({}): {:?}", s.name, s.label(), s.kind);
    }
    assert_eq!(f32_correct, 180);
    // Issue 3: the engine with MSFP16 loses at most one image against f32.
    assert!(engine_correct + 1 >= f32_correct, "engine {engine_correct}/200 vs f32 {f32_correct}/200");
    // All 19 convolutions and the classifier ran on the engine, with every ReLU and the 9 residual adds fused
    // into POST: no Add or Relu is left on the host.
    let labels: Vec<String> = steps.iter().filter(|s| s.on_engine()).map(|s| s.label()).collect();
    assert_eq!(engine_steps, 20, "{labels:?}");
    assert_eq!(labels.iter().filter(|l| l.as_str() == "Conv+Add+Relu").count(), 9, "{labels:?}");
    assert_eq!(labels.iter().filter(|l| l.as_str() == "Conv+Relu").count(), 10, "{labels:?}");
    assert!(steps.iter().all(|s| s.on_engine() || !matches!(s.ops[0], "Add" | "Relu")), "{steps:?}");
}

/// Issue 3: EfficientNet-Lite0 with real ImageNet weights, every ungrouped convolution and the classifier on
/// the emulated engine (MSFP16): its top-1 class equals the f32 path's on every real photo of the test data,
/// and it names what the photos show.
#[test]
fn efficientnet_on_the_engine_agrees_with_f32_on_real_photos() {
    let Some(data) = common::data_dir() else { return };
    let photos = data.join("imagenet-photos");
    let names = std::fs::read_to_string(photos.join("classification_classes_ILSVRC2012.txt")).expect("class names");
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 1000);
    let graph = onnx::load(data.join("efficientnet-lite0-imagenet.onnx"), &ImportOptions { batch: 1 }).expect("import");
    let mut acc = Accelerator::open(EmuBackend::new(EngineConfig::default(), 64 << 20).unwrap()).unwrap();
    let model = compile::compile(&graph, acc.config()).expect("compile");
    let mut jpegs: Vec<_> = std::fs::read_dir(&photos)
        .expect("photos")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    assert!(jpegs.len() >= 3, "{jpegs:?}");
    let mut top1 = Vec::new();
    for path in &jpegs {
        let bytes = std::fs::read(path).expect("photo");
        let x = preprocess(&bytes, &PreprocessConfig::efficientnet_lite0()).expect("preprocess").into_dyn();
        let f32_logits = reference::run(&graph, std::slice::from_ref(&x)).expect("f32 run").remove(0);
        let run = model.run(&mut acc, &[x]).expect("engine run");
        let (e, f) = (argmax(run.values[0].view()), argmax(f32_logits.view()));
        let (sqnr, _) = compile::error_stats(&f32_logits, &run.values[0]);
        eprintln!(
            "{}: engine top-1 '{}', f32 top-1 '{}', logits SQNR {sqnr:.1} dB",
            path.file_name().unwrap().to_string_lossy(),
            names[e],
            names[f]
        );
        assert_eq!(e, f, "{}: engine '{}' vs f32 '{}'", path.display(), names[e], names[f]);
        top1.push(names[e]);
    }
    // What the data README says the photos show (parrot → macaw, hot dog → hotdog, cat → Egyptian cat).
    for want in ["macaw", "hotdog", "Egyptian cat"] {
        assert!(top1.iter().any(|t| t.contains(want)), "no photo classified as '{want}': {top1:?}");
    }
}

/// Prints the per-layer report of a ResNet-50 run on the emulated engine and checks what must hold for any
/// weights: every convolution and the classifier on the engine with the residual adds and ReLUs fused, the
/// f32 reference path agreeing with the engine to the given SQNR at the logits, and every layer measured.
fn resnet50_on_the_engine(title: &str, graph: &runtime::graph::Graph, x: ArrayD<f32>, min_logits_sqnr: f64) {
    let config = EngineConfig::default_16x16();
    let model = compile::compile(graph, &config).expect("compile");
    let mut acc = Accelerator::open(EmuBackend::new(config, 256 << 20).unwrap()).unwrap();
    let t = Instant::now();
    let cmp = model.compare(&mut acc, &[x]).expect("engine and reference runs");
    let summary = model.summary(title, &cmp.rows);
    eprintln!("{}", runtime::report::table(&summary, &cmp.rows));
    eprintln!("{title}: engine and f32 runs took {:?}", t.elapsed());
    let labels: Vec<String> = model.steps().iter().filter(|s| s.on_engine()).map(|s| s.label()).collect();
    assert_eq!(labels.len(), 54, "53 convolutions and the classifier on the engine: {labels:?}");
    assert_eq!(labels.iter().filter(|l| l.as_str() == "Conv+Add+Relu").count(), 16, "{labels:?}");
    assert!(model.steps().iter().all(|s| s.on_engine() || !matches!(s.ops[0], "Conv" | "Add" | "Relu" | "Gemm")));
    assert!(cmp.rows.iter().all(|r| r.sqnr_db.is_some() && r.max_abs_err.is_some()));
    let (sqnr, _) = compile::error_stats(&cmp.reference[0], &cmp.engine.values[0]);
    eprintln!("{title}: logits SQNR {sqnr:.1} dB against f32");
    assert!(sqnr >= min_logits_sqnr, "{title}: logits SQNR {sqnr:.1} dB < {min_logits_sqnr} dB");
}

/// Issue 3: ResNet-50 v1.5 with deterministic synthetic weights runs end to end on the emulated engine, with
/// its per-layer SQNR printed.
#[test]
fn resnet50_synthetic_on_the_emulated_engine() {
    let graph = runtime::models::resnet50::resnet50_synthetic(0, 1).expect("ResNet-50");
    let photo = common::data_dir().map(|d| d.join("imagenet-photos/parrot.jpg"));
    let x = match photo.as_deref().map(std::fs::read) {
        Some(Ok(bytes)) => preprocess(&bytes, &PreprocessConfig::imagenet()).expect("preprocess").into_dyn(),
        _ => ndarray::Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
            ((c + y * 3 + x * 7) % 17) as f32 / 8.0 - 1.0
        })
        .into_dyn(),
    };
    resnet50_on_the_engine("ResNet-50 synthetic", &graph, x, 25.0);
}

/// Issue 3: the ONNX backend tests' `light_resnet50.onnx` (the real ResNet-50 topology) runs end to end on the
/// emulated engine, with its per-layer SQNR printed.
#[test]
fn light_resnet50_on_the_emulated_engine() {
    let Some(dir) = common::onnx_dir() else { return };
    let model = dir.join("backend/test/data/light/light_resnet50.onnx");
    let graph = onnx::load(model, &ImportOptions { batch: 1 }).expect("import");
    // The input of the ONNX reference output: a ramp over [0, 1).
    let shape = graph.values[graph.inputs[0]].shape.clone();
    let n: usize = shape.iter().product();
    let x = ArrayD::from_shape_vec(shape, (0..n).map(|i| (i as f64 / n as f64) as f32).collect()).expect("shape");
    resnet50_on_the_engine("light_resnet50", &graph, x, 20.0);
}
