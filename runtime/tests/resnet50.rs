//! ResNet-50 v1.5 with deterministic synthetic weights (`runtime::models::resnet50`): its size, its topology
//! against the ONNX wheel's `light_resnet50.onnx`, the determinism of its weights, and the statistics of its
//! activations on the f32 reference path.

mod common;

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runtime::graph::{Graph, Op};
use runtime::models::resnet50::{self, resnet50_synthetic, RESNET50_STAGES};
use runtime::onnx::{self, ImportOptions};
use runtime::reference;

/// torchvision's published parameter count of `resnet50` (conv weights, BN γ and β, fc weight and bias).
const TORCHVISION_PARAMETERS: usize = 25_557_032;

/// Channels of all BatchNorms of ResNet-50: per stage, each block's 6·width (width, width, 4·width) plus the
/// projection's 4·width, and the stem's 64. Folding turns each BN's γ and β into one conv bias, so the
/// folded model has this many parameters fewer than torchvision counts.
fn bn_channels() -> usize {
    64 + RESNET50_STAGES.iter().map(|s| s.blocks * 6 * s.width + 4 * s.width).sum::<usize>()
}

fn parameters(g: &Graph) -> usize {
    g.values.iter().filter_map(|v| v.constant.as_ref()).map(|c| c.len()).sum()
}

/// (out channels, in channels, kernel, strides, pads begin, pads end) of every convolution, in graph order.
type ConvSig = (usize, usize, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

fn conv_signatures(g: &Graph) -> Vec<ConvSig> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv(a) => {
                let w = &g.values[n.inputs[1]].shape;
                Some((
                    w[0],
                    w[1] * a.group,
                    a.kernel.clone(),
                    a.strides.clone(),
                    a.pads_begin.clone(),
                    a.pads_end.clone(),
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn size_and_shape() {
    let g = resnet50_synthetic(0, 1).expect("build");
    let convs = g.nodes.iter().filter(|n| matches!(n.op, Op::Conv(_))).count();
    let gemms = g.nodes.iter().filter(|n| matches!(n.op, Op::Gemm { .. })).count();
    let adds = g.nodes.iter().filter(|n| matches!(n.op, Op::Add)).count();
    eprintln!("resnet50 ops: {:?}", g.op_counts());
    assert_eq!((convs, gemms, adds), (53, 1, 16));
    let params = parameters(&g);
    eprintln!(
        "resnet50: {params} parameters (torchvision {TORCHVISION_PARAMETERS} before folding {} BN channels)",
        bn_channels()
    );
    assert_eq!(params, TORCHVISION_PARAMETERS - bn_channels());
    assert_eq!(g.values[g.inputs[0]].name, "x");
    assert_eq!(g.values[g.inputs[0]].shape, [1, 3, 224, 224]);
    assert_eq!(g.values[g.outputs[0]].name, "logits");
    assert_eq!(g.values[g.outputs[0]].shape, [1, 1000]);
    // torchvision names: the stem, a projection, the classifier.
    for name in ["conv1", "layer1.0.downsample.0", "layer4.2.conv3", "fc"] {
        assert!(g.nodes.iter().any(|n| n.name == name), "no node '{name}'");
    }
}

#[test]
fn topology_matches_light_resnet50() {
    let Some(dir) = common::onnx_dir() else {
        eprintln!("SKIP: the onnx wheel's light_resnet50.onnx is not available");
        return;
    };
    let light = onnx::load(dir.join("backend/test/data/light/light_resnet50.onnx"), &ImportOptions::default())
        .expect("import light_resnet50");
    let ours = resnet50_synthetic(0, 1).expect("build");
    let (theirs, mine) = (conv_signatures(&light), conv_signatures(&ours));
    assert_eq!(theirs.len(), 53);
    // light_resnet50 (Caffe2's ResNet-50) puts the stride on the 3×3 convolution like v1.5: identical lists.
    for (i, (t, m)) in theirs.iter().zip(&mine).enumerate() {
        assert_eq!(
            t,
            m,
            "convolution {i} ('{}')",
            ours.nodes.iter().filter(|n| matches!(n.op, Op::Conv(_))).nth(i).map_or("?", |n| n.name.as_str())
        );
    }
    assert_eq!(theirs, mine);
    // Same pooling and classifier.
    let pools = |g: &Graph| {
        g.nodes
            .iter()
            .filter_map(|n| if let Op::MaxPool(p) = &n.op { Some(p.clone()) } else { None })
            .collect::<Vec<_>>()
    };
    assert_eq!(pools(&light), pools(&ours));
    let fc = |g: &Graph| {
        g.nodes.iter().find(|n| matches!(n.op, Op::Gemm { .. })).map(|n| g.values[n.inputs[1]].shape.clone())
    };
    assert_eq!(fc(&light), fc(&ours));
}

#[test]
fn weights_are_deterministic() {
    let a = resnet50_synthetic(42, 1).expect("build");
    let b = resnet50_synthetic(42, 1).expect("build");
    let c = resnet50_synthetic(43, 1).expect("build");
    let consts =
        |g: &Graph| g.values.iter().filter_map(|v| v.constant.clone().map(|c| (v.name.clone(), c))).collect::<Vec<_>>();
    let (ca, cb, cc) = (consts(&a), consts(&b), consts(&c));
    assert_eq!(ca.len(), cc.len());
    assert!(ca == cb, "same seed, different weights");
    for ((na, ta), (nc, tc)) in ca.iter().zip(&cc) {
        assert_eq!(na, nc);
        assert_ne!(ta, tc, "'{na}' is the same for seeds 42 and 43");
    }
}

fn rms(a: &ArrayD<f32>) -> f64 {
    (a.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / a.len() as f64).sqrt()
}

#[test]
fn reference_activations_stay_order_one() {
    let g = resnet50_synthetic(0, 1).expect("build");
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[1, 3, 224, 224]), || {
        use rand::Rng;
        let (u1, u2): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    });
    let names = resnet50::stage_outputs(&RESNET50_STAGES);
    let ids: Vec<usize> = names.iter().map(|n| g.find(n).unwrap_or_else(|| panic!("no value '{n}'"))).collect();
    let t = Instant::now();
    let out = reference::run_values(&g, &[x], &ids).expect("run");
    eprintln!("resnet50 f32 reference run: {:?}", t.elapsed());
    for (n, a) in names.iter().zip(&out) {
        let r = rms(a);
        eprintln!("  RMS {n:>14} {:?}: {r:.3}", a.shape());
        assert!((0.05..=50.0).contains(&r), "RMS of '{n}' is {r}");
    }
    let logits = out.last().expect("logits");
    assert!(logits.iter().all(|v| v.is_finite()));
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    let top1 = 1.0 / sum;
    let mean = logits.iter().map(|&v| f64::from(v)).sum::<f64>() / 1000.0;
    let std = (logits.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / 1000.0).sqrt();
    eprintln!("  logits: std {std:.3}, max {max:.3}, top-1 probability {top1:.4} (uniform 0.001)");
    assert!(top1 > 0.005, "top-1 probability {top1} is too close to uniform");
}
