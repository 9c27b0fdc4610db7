//! ResNet-50 v1.5 (torchvision's `resnet50`) built directly in the graph IR, with deterministic synthetic
//! weights drawn from a seed.
//!
//! No ImageNet-trained ResNet-50 weights can be obtained on the project's machines, yet ResNet-50 is the
//! model the engine is built for: its real topology with weights of realistic statistics exercises the
//! engine, the scheduler, the exporter and the benchmarks exactly as trained weights would in everything
//! but the meaning of the labels.
//!
//! The network: stem 7×7 stride-2 convolution to 64 channels + BN + ReLU, 3×3 stride-2 max pooling (pad 1);
//! four stages of bottleneck blocks ([`RESNET50_STAGES`]: 3, 4, 6, 3 blocks of widths 64, 128, 256, 512),
//! each block 1×1 reduce + BN + ReLU, 3×3 + BN + ReLU (carrying the stage's stride: v1.5), 1×1 expand to
//! 4×width + BN, plus the shortcut — a 1×1 projection convolution + BN (with the stride) on each stage's
//! first block, the identity otherwise — then Add and ReLU; global average pooling, flatten to
//! `[batch, 2048]` and a fully connected layer (`Gemm`) to 1000 classes. 53 convolutions, 1 `Gemm`.
//!
//! Every BatchNorm is folded into the convolution before it, so each convolution carries a bias. Nodes are
//! named after torchvision's state-dict prefixes (`conv1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`,
//! …; ReLUs `relu`, `layer1.0.relu1`, `layer1.0.relu2`, the residual sum `layer1.0.add` and the block's final
//! ReLU `layer1.0.relu`), each node's output value has the node's name, weights are `<node>.weight` and
//! `<node>.bias`. The input is `x [batch, 3, 224, 224]`, the output `logits [batch, 1000]`.
//!
//! # The synthetic weights ([`SyntheticStats`], defaults [`SYNTHETIC_STATS`])
//!
//! All values come from one ChaCha8 stream seeded with the `u64` seed, drawn layer by layer in graph order
//! (weights, then the folded-BN scale and bias of each convolution), so a seed fixes every weight. Normal
//! samples use the Box–Muller transform in f64 rounded to f32 (bit-identical wherever the platform's `ln`,
//! `sin` and `cos` round alike, which is every platform the project targets in practice).
//!
//! * Convolution weights are He-normal, `N(0, 2/fan_in)` with `fan_in = in_channels·kh·kw`: this keeps the
//!   mean square of the activations constant through a convolution followed by ReLU.
//! * Each output channel is then multiplied by a folded-BN scale drawn uniformly near 1
//!   ([`SyntheticStats::scale`]) — a trained BN normalises its input and applies γ ≈ 1, and He-normal
//!   weights already give unit-scale pre-activations, so the product stands for `γ/σ·w`.
//! * The last BN of each residual branch (`conv3`) gets a small scale instead
//!   ([`SyntheticStats::residual_scale`], about 0.25), as trained ResNets have (and as zero-γ initialisation
//!   of those BNs produces): each block adds a small correction to the shortcut, so the activations do not
//!   grow through the 16 residual sums. The projection shortcuts use the normal scale, which resets the
//!   residual stream's scale at each stage's start.
//! * Folded biases are small, `N(0, bias_std²)`.
//! * The classifier's weights are `N(0, 1/2048)` (LeCun-normal: logits of the scale of the features),
//!   biases `N(0, fc_bias_std²)`; with features of RMS around 1 the logits spread by about 1, so the
//!   softmax is far from uniform.
//!
//! On an input of N(0, 1) pixels (the statistics of a normalised photo) the activations stay O(1) through
//! the whole network; `runtime/tests/resnet50.rs` measures and checks the RMS after each stage, and
//! docs/models.md records the figures.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::graph::{ConvAttrs, Graph, Op, PoolAttrs, ValueId};
use crate::models::efficientnet_lite::ModelError;

/// One stage of bottleneck blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Number of bottleneck blocks.
    pub blocks: usize,
    /// Width of the blocks' 1×1 reduce and 3×3 convolutions; the blocks output `width * EXPANSION` channels.
    pub width: usize,
    /// Stride of the stage's first block (on its 3×3 convolution and its projection shortcut).
    pub stride: usize,
}

/// ResNet-50's four stages (`layer1` … `layer4`): 3, 4, 6 and 3 blocks of widths 64, 128, 256 and 512.
pub const RESNET50_STAGES: [Stage; 4] = [
    Stage { blocks: 3, width: 64, stride: 1 },
    Stage { blocks: 4, width: 128, stride: 2 },
    Stage { blocks: 6, width: 256, stride: 2 },
    Stage { blocks: 3, width: 512, stride: 2 },
];

/// Output channels of a bottleneck block per unit of width.
pub const EXPANSION: usize = 4;
/// Output channels of the stem convolution.
pub const STEM_CHANNELS: usize = 64;
/// Side of the square input image.
pub const IMAGE_SIZE: usize = 224;
/// Number of classes of the classifier (ImageNet-1k).
pub const NUM_CLASSES: usize = 1000;

/// The statistics the synthetic weights are drawn with (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticStats {
    /// Range `[low, high)` of the uniform folded-BN scale of every convolution but a block's last one.
    pub scale: (f32, f32),
    /// Range `[low, high)` of the uniform folded-BN scale of each block's last convolution (`conv3`).
    pub residual_scale: (f32, f32),
    /// Standard deviation of the convolutions' folded-BN biases.
    pub bias_std: f32,
    /// Standard deviation of the classifier's bias.
    pub fc_bias_std: f32,
}

/// The default statistics: BN scales in [0.8, 1.2), residual-branch scales in [0.2, 0.3), biases of
/// standard deviation 0.05 (convolutions) and 0.01 (classifier).
pub const SYNTHETIC_STATS: SyntheticStats =
    SyntheticStats { scale: (0.8, 1.2), residual_scale: (0.2, 0.3), bias_std: 0.05, fc_bias_std: 0.01 };

/// Builds ResNet-50 v1.5 for `batch` images of 3×224×224 with synthetic weights drawn from `seed` with
/// [`SYNTHETIC_STATS`]: input `x [batch, 3, 224, 224]`, output `logits [batch, 1000]`.
pub fn resnet50_synthetic(seed: u64, batch: usize) -> Result<Graph, ModelError> {
    synthetic_resnet(&RESNET50_STAGES, &SYNTHETIC_STATS, seed, batch, IMAGE_SIZE, NUM_CLASSES)
}

/// Builds a bottleneck ResNet (v1.5) with the given stages, synthetic weights of the given statistics drawn
/// from `seed`, for `batch` square images of side `image` and `classes` classes. ResNet-50 is
/// `synthetic_resnet(&RESNET50_STAGES, &SYNTHETIC_STATS, seed, batch, 224, 1000)`; smaller stages or images
/// give cheap models of the same structure.
pub fn synthetic_resnet(
    stages: &[Stage],
    stats: &SyntheticStats,
    seed: u64,
    batch: usize,
    image: usize,
    classes: usize,
) -> Result<Graph, ModelError> {
    let bad = |detail: String| ModelError::Graph { node: "x".into(), detail };
    if batch == 0 || image == 0 || classes == 0 {
        return Err(bad(format!("batch {batch}, image {image} and classes {classes} must be positive")));
    }
    if let Some(s) = stages.iter().find(|s| s.blocks == 0 || s.width == 0 || s.stride == 0) {
        return Err(bad(format!("stage {s:?} needs at least one block, a width and a stride")));
    }
    let range = |(lo, hi): (f32, f32)| lo.is_finite() && hi.is_finite() && lo <= hi;
    let std = |s: f32| s.is_finite() && s >= 0.0;
    let valid = range(stats.scale) && range(stats.residual_scale) && std(stats.bias_std) && std(stats.fc_bias_std);
    if !valid {
        return Err(bad(format!("invalid weight statistics {stats:?}")));
    }
    let mut b = Builder { g: Graph::default(), rng: Normal::new(seed), stats: *stats };
    let x = b.g.add_value("x", vec![batch, 3, image, image], None);
    b.g.inputs.push(x);
    let mut h = b.conv("conv1", x, STEM_CHANNELS, 7, 2, 3, stats.scale)?;
    h = b.node("relu", Op::Relu, vec![h])?;
    let pool = PoolAttrs {
        kernel: vec![3, 3],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads_begin: vec![1, 1],
        pads_end: vec![1, 1],
        ceil_mode: false,
    };
    h = b.node("maxpool", Op::MaxPool(pool), vec![h])?;
    for (i, s) in stages.iter().enumerate() {
        for j in 0..s.blocks {
            let stride = if j == 0 { s.stride } else { 1 };
            h = b.bottleneck(&block_name(i, j), h, s.width, stride, j == 0)?;
        }
    }
    let features = b.channels(h);
    h = b.node("avgpool", Op::GlobalAveragePool, vec![h])?;
    h = b.node("flatten", Op::Reshape { shape: vec![batch, features] }, vec![h])?;
    let fc_w = b.normal_tensor(&[classes, features], (1.0 / features as f64).sqrt() as f32);
    let fc_w = b.g.add_value("fc.weight", vec![classes, features], Some(fc_w));
    let fc_b = b.normal_tensor(&[classes], stats.fc_bias_std);
    let fc_b = b.g.add_value("fc.bias", vec![classes], Some(fc_b));
    let gemm = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
    let logits = b.named_node("fc", gemm, vec![h, fc_w, fc_b], "logits")?;
    b.g.outputs.push(logits);
    Ok(b.g)
}

/// The torchvision name of block `block` of stage `stage` (both from 0): `layer{stage+1}.{block}`.
pub fn block_name(stage: usize, block: usize) -> String {
    format!("layer{}.{block}", stage + 1)
}

/// Names of the values after each part of the network, in order: the stem (`maxpool`), the output of each
/// stage's last block (`layer1.2.relu`, …), the pooled features (`avgpool`) and `logits`. For probing
/// activation statistics with [`crate::reference::run_values`].
pub fn stage_outputs(stages: &[Stage]) -> Vec<String> {
    let mut names = vec!["maxpool".to_string()];
    for (i, s) in stages.iter().enumerate() {
        names.push(format!("{}.relu", block_name(i, s.blocks.saturating_sub(1))));
    }
    names.extend(["avgpool".to_string(), "logits".to_string()]);
    names
}

/// Standard normal samples from a seeded ChaCha8 stream (Box–Muller, both outputs used).
struct Normal {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Normal { rng: ChaCha8Rng::seed_from_u64(seed), spare: None }
    }

    fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1: f64 = 1.0 - self.rng.gen::<f64>();
        let u2: f64 = self.rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    fn uniform(&mut self, (lo, hi): (f32, f32)) -> f32 {
        lo + (hi - lo) * self.rng.gen::<f32>()
    }
}

struct Builder {
    g: Graph,
    rng: Normal,
    stats: SyntheticStats,
}

impl Builder {
    fn channels(&self, v: ValueId) -> usize {
        self.g.values[v].shape.get(1).copied().unwrap_or(0)
    }

    fn normal_tensor(&mut self, shape: &[usize], std: f32) -> ArrayD<f32> {
        let std = f64::from(std);
        ArrayD::from_shape_simple_fn(IxDyn(shape), || (self.rng.sample() * std) as f32)
    }

    fn named_node(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, out: &str) -> Result<ValueId, ModelError> {
        self.g.add_node(name, op, inputs, out).map_err(|detail| ModelError::Graph { node: name.to_string(), detail })
    }

    fn node(&mut self, name: &str, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, ModelError> {
        self.named_node(name, op, inputs, name)
    }

    /// A `k×k` convolution to `cout` channels with folded BN: He-normal weights times a per-channel scale
    /// drawn from `scale`, and a small bias.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        scale: (f32, f32),
    ) -> Result<ValueId, ModelError> {
        let cin = self.channels(x);
        let fan_in = cin * k * k;
        let mut w = self.normal_tensor(&[cout, cin, k, k], (2.0 / fan_in.max(1) as f64).sqrt() as f32);
        for mut filter in w.outer_iter_mut() {
            let s = self.rng.uniform(scale);
            filter.mapv_inplace(|v| v * s);
        }
        let bias = self.normal_tensor(&[cout], self.stats.bias_std);
        let w = self.g.add_value(format!("{name}.weight"), vec![cout, cin, k, k], Some(w));
        let bias = self.g.add_value(format!("{name}.bias"), vec![cout], Some(bias));
        let attrs = ConvAttrs {
            kernel: vec![k, k],
            strides: vec![stride, stride],
            dilations: vec![1, 1],
            pads_begin: vec![pad, pad],
            pads_end: vec![pad, pad],
            group: 1,
        };
        self.node(name, Op::Conv(attrs), vec![x, w, bias])
    }

    /// One bottleneck block `p` (v1.5: the stride on the 3×3 convolution), with a projection shortcut if
    /// `project`.
    fn bottleneck(
        &mut self,
        p: &str,
        x: ValueId,
        width: usize,
        stride: usize,
        project: bool,
    ) -> Result<ValueId, ModelError> {
        let out = width * EXPANSION;
        let scale = self.stats.scale;
        let mut h = self.conv(&format!("{p}.conv1"), x, width, 1, 1, 0, scale)?;
        h = self.node(&format!("{p}.relu1"), Op::Relu, vec![h])?;
        h = self.conv(&format!("{p}.conv2"), h, width, 3, stride, 1, scale)?;
        h = self.node(&format!("{p}.relu2"), Op::Relu, vec![h])?;
        h = self.conv(&format!("{p}.conv3"), h, out, 1, 1, 0, self.stats.residual_scale)?;
        let shortcut = if project {
            self.conv(&format!("{p}.downsample.0"), x, out, 1, stride, 0, scale)?
        } else {
            if self.channels(x) != out || stride != 1 {
                return Err(ModelError::Graph {
                    node: p.to_string(),
                    detail: format!(
                        "identity shortcut from {:?} to {out} channels, stride {stride}",
                        self.g.values[x].shape
                    ),
                });
            }
            x
        };
        h = self.node(&format!("{p}.add"), Op::Add, vec![h, shortcut])?;
        self.node(&format!("{p}.relu"), Op::Relu, vec![h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_unit_variance() {
        let mut n = Normal::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| n.sample()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn small_network_builds_and_bad_arguments_are_errors() {
        let stages = [Stage { blocks: 1, width: 4, stride: 1 }, Stage { blocks: 2, width: 8, stride: 2 }];
        let g = synthetic_resnet(&stages, &SYNTHETIC_STATS, 1, 2, 32, 10).expect("build");
        assert_eq!(g.values[g.outputs[0]].shape, [2, 10]);
        // conv1, 3 convolutions per block, one projection per stage.
        let convs = g.nodes.iter().filter(|n| matches!(n.op, Op::Conv(_))).count();
        assert_eq!(convs, 1 + 3 * 3 + 2);
        assert!(synthetic_resnet(&stages, &SYNTHETIC_STATS, 1, 0, 32, 10).is_err());
        let empty = [Stage { blocks: 0, width: 4, stride: 1 }];
        assert!(synthetic_resnet(&empty, &SYNTHETIC_STATS, 1, 1, 32, 10).is_err());
        let nan = SyntheticStats { bias_std: f32::NAN, ..SYNTHETIC_STATS };
        assert!(synthetic_resnet(&stages, &nan, 1, 1, 32, 10).is_err());
    }
}
