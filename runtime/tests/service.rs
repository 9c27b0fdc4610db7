//! Model packages as the runtime writes and loads them (`runtime::service`): a pipeline round-trips with its
//! engine weights, the loaded model runs exactly the packaged weights, and damaged or inconsistent packages
//! are clear errors.

use arch::config::EngineConfig;
use driver::{Accelerator, EmuBackend};
use ndarray::ArrayD;
use runtime::compile;
use runtime::models::resnet50::{synthetic_resnet, Stage, SYNTHETIC_STATS};
use runtime::package::{Package, PackageWriter};
use runtime::pipeline::Pipeline;
use runtime::preprocess::PreprocessConfig;
use runtime::service::{self, ServiceError};

/// A small bottleneck ResNet (the ResNet-50 structure, two stages, 32×32 images, 10 classes).
fn small_pipeline() -> Pipeline {
    let stages = [Stage { blocks: 1, width: 8, stride: 1 }, Stage { blocks: 1, width: 16, stride: 2 }];
    let graph = synthetic_resnet(&stages, &SYNTHETIC_STATS, 7, 1, 32, 10).expect("small ResNet");
    let preprocess =
        PreprocessConfig { resize_shorter: 36, crop_width: 32, crop_height: 32, ..PreprocessConfig::imagenet() };
    let labels = (0..10).map(|i| format!("class {i}")).collect();
    Pipeline::new("small-resnet", preprocess, graph, labels).expect("pipeline")
}

/// A PNG photo-like image: a colour gradient.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x + y) * 3) as u8]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode");
    bytes
}

fn run(model: &compile::CompiledModel, x: &ArrayD<f32>) -> Vec<u32> {
    let mut acc = Accelerator::open(EmuBackend::new(*model.config(), 16 << 20).unwrap()).unwrap();
    let out = model.run(&mut acc, std::slice::from_ref(x)).expect("engine run");
    out.values[0].iter().map(|v| v.to_bits()).collect()
}

/// Rewrites a package with `edit` applied to one entry's bytes (checksums recomputed: a valid package).
fn rewrite(from: &std::path::Path, to: &std::path::Path, entry: &str, edit: impl Fn(&mut Vec<u8>)) {
    let p = Package::open(from).expect("open");
    let m = p.manifest().clone();
    let mut w = PackageWriter::new(&m.name);
    for s in &m.stages {
        let mut bytes = p.entry(&s.entry).expect("entry").to_vec();
        if s.entry == entry {
            edit(&mut bytes);
        }
        w.add_stage(&s.kind, &s.entry, bytes, s.params.clone());
    }
    w.write(to).expect("write");
}

#[test]
fn a_package_round_trips_and_runs_exactly_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.systole");
    let pipeline = small_pipeline();
    let config: EngineConfig = "tiny-msfp12".parse().unwrap();
    let compiled = compile::compile(&pipeline.graph, &config).expect("compile");
    service::write(&path, &pipeline, &compiled).expect("write package");

    let loaded = service::load(&path).expect("load package");
    assert_eq!(loaded.pipeline.name, "small-resnet");
    assert_eq!(loaded.pipeline.labels, pipeline.labels);
    assert_eq!(loaded.pipeline.preprocess, pipeline.preprocess);
    assert_eq!(loaded.compiled.config(), &config);
    let weights = |m: &compile::CompiledModel| -> Vec<(String, Vec<Vec<i8>>)> {
        m.engine_weights()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.iter().map(|t| t.mantissas().to_vec()).collect()))
            .collect()
    };
    assert_eq!(weights(&loaded.compiled), weights(&compiled));
    let x = loaded.pipeline.input(&png()).expect("preprocess");
    assert_eq!(x, pipeline.input(&png()).unwrap());
    // The network came back through ONNX: the f32 path and the engine give the same bits as before.
    let f32_before = runtime::reference::run(&pipeline.graph, std::slice::from_ref(&x)).unwrap();
    let f32_after = runtime::reference::run(&loaded.pipeline.graph, std::slice::from_ref(&x)).unwrap();
    assert_eq!(f32_before, f32_after);
    assert_eq!(run(&loaded.compiled, &x), run(&compiled, &x));

    // A valid package whose engine weights differ from quantizing its network: the loaded model runs the
    // packaged weights, so its output changes.
    let edited = dir.path().join("edited.systole");
    rewrite(&path, &edited, "engine.bin", |b| {
        for v in b.iter_mut().take(4096) {
            *v = v.wrapping_add(1);
        }
    });
    let tampered = service::load(&edited).expect("a consistent package loads");
    assert_ne!(run(&tampered.compiled, &x), run(&compiled, &x));
}

#[test]
fn bad_packages_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.systole");
    let pipeline = small_pipeline();
    let compiled = compile::compile(&pipeline.graph, &EngineConfig::tiny()).expect("compile");
    service::write(&path, &pipeline, &compiled).expect("write package");

    // Truncated file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.systole");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = service::load(&cut).unwrap_err();
    assert!(matches!(err, ServiceError::Package(_)), "{err}");

    // Class names that do not match the network's outputs.
    let few = dir.path().join("few.systole");
    rewrite(&path, &few, "labels.txt", |b| *b = b"only\ntwo".to_vec());
    let err = service::load(&few).unwrap_err().to_string();
    assert!(err.contains("10 classes") && err.contains("2 class names"), "{err}");

    // Engine weights cut short.
    let short = dir.path().join("short.systole");
    rewrite(&path, &short, "engine.bin", |b| b.truncate(b.len() - 1));
    let err = service::load(&short).unwrap_err().to_string();
    assert!(err.contains("engine") && err.contains("outside engine.bin"), "{err}");

    // A model that is not ONNX.
    let junk = dir.path().join("junk.systole");
    rewrite(&path, &junk, "model.onnx", |b| *b = b"not a model".to_vec());
    let err = service::load(&junk).unwrap_err().to_string();
    assert!(err.starts_with("stage 'model'"), "{err}");

    // Preprocessing that is not valid JSON for a configuration.
    let pre = dir.path().join("pre.systole");
    rewrite(&path, &pre, "preprocess.json", |b| *b = br#"{"resize_shorter": 256}"#.to_vec());
    let err = service::load(&pre).unwrap_err().to_string();
    assert!(err.starts_with("stage 'preprocess'"), "{err}");
}
