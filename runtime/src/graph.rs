//! The typed graph IR: what the ONNX importer produces and what the reference path (and later the engine
//! scheduler) consumes.
//!
//! A [`Graph`] is a list of [`Value`]s (every tensor, each with a static shape, constants carrying their f32
//! data) and a list of [`Node`]s in topological order, each applying one [`Op`] to input values and
//! producing one output value. Shapes are fully static: the importer resolves the batch dimension and
//! constant-folds all shape arithmetic, so every operator's attributes are plain numbers here.

use ndarray::ArrayD;

/// Index of a [`Value`] in [`Graph::values`].
pub type ValueId = usize;

/// One tensor of the graph: a graph input, a constant (weights) or a node's output.
#[derive(Debug, Clone)]
pub struct Value {
    /// The ONNX name of the tensor (for error messages and for matching outputs).
    pub name: String,
    /// Its static shape.
    pub shape: Vec<usize>,
    /// Its data, if it is a constant (initializer or folded at import).
    pub constant: Option<ArrayD<f32>>,
}

/// One operation: `outputs = op(inputs)`.
#[derive(Debug, Clone)]
pub struct Node {
    /// The ONNX node name (or `#<index>` if the node had none), for error messages and reports.
    pub name: String,
    /// The operator with its parsed attributes.
    pub op: Op,
    /// Input values, in the operator's order (see each [`Op`] variant).
    pub inputs: Vec<ValueId>,
    /// The output value.
    pub output: ValueId,
}

/// Attributes of a convolution, resolved for the input's spatial rank (1 or 2).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvAttrs {
    /// Kernel size per spatial axis.
    pub kernel: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Dilation per spatial axis.
    pub dilations: Vec<usize>,
    /// Zero padding at the start of each spatial axis.
    pub pads_begin: Vec<usize>,
    /// Zero padding at the end of each spatial axis.
    pub pads_end: Vec<usize>,
    /// Number of groups (1: dense, = channels: depthwise).
    pub group: usize,
}

/// Attributes of a pooling window (MaxPool, AveragePool), resolved for the input's spatial rank (1 or 2).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolAttrs {
    /// Window size per spatial axis.
    pub kernel: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Dilation per spatial axis.
    pub dilations: Vec<usize>,
    /// Padding at the start of each spatial axis.
    pub pads_begin: Vec<usize>,
    /// Padding at the end of each spatial axis.
    pub pads_end: Vec<usize>,
    /// Whether the output size rounds up (ONNX `ceil_mode`).
    pub ceil_mode: bool,
}

/// The selection of one axis by a [`Op::Slice`]: element `i` of the output is element `start + i*step` of
/// the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceRange {
    /// First selected index.
    pub start: usize,
    /// Step between selected indices (negative steps walk backwards).
    pub step: isize,
    /// Number of selected indices (the output's size on this axis).
    pub len: usize,
}

/// The supported operators, with their attributes parsed and resolved to static values.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Convolution. Inputs: `x [N, C, spatial…]`, `w [M, C/group, kernel…]`, optional `bias [M]`.
    Conv(ConvAttrs),
    /// Inference-mode batch normalization over axis 1 (kept only when it could not be folded into a
    /// convolution). Inputs: `x, scale, bias, mean, var`.
    BatchNorm {
        /// Added to the variance before the square root.
        epsilon: f32,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)` (ReLU6 is `Clip { min: 0, max: 6 }`).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Max pooling (padding never wins the max).
    MaxPool(PoolAttrs),
    /// Average pooling.
    AveragePool {
        /// The window.
        pool: PoolAttrs,
        /// Whether padded positions count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over all spatial positions, keeping them as size-1 axes: `[N, C, …] → [N, C, 1, …]`.
    GlobalAveragePool,
    /// Element-wise sum of two inputs with numpy broadcasting.
    Add,
    /// `alpha * op(A) · op(B) + beta * C`, with `op` an optional transpose; `C` (optional) broadcasts.
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of `C`.
        beta: f32,
        /// Transpose `A` first.
        trans_a: bool,
        /// Transpose `B` first.
        trans_b: bool,
    },
    /// numpy `matmul` (batched, broadcasting, 1-D operands promoted).
    MatMul,
    /// Same data in row-major order, new shape (also Flatten, Squeeze and Unsqueeze).
    Reshape {
        /// The output shape.
        shape: Vec<usize>,
    },
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Constant-mode padding of every axis.
    Pad {
        /// Elements added before each axis.
        pads_begin: Vec<usize>,
        /// Elements added after each axis.
        pads_end: Vec<usize>,
        /// The padding value.
        value: f32,
    },
    /// Strided selection, one [`SliceRange`] per input axis.
    Slice {
        /// The selection of every axis.
        ranges: Vec<SliceRange>,
    },
    /// Concatenation of all inputs along one axis.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Softmax along `axis`; with `coerce_2d` (opset < 13) over all axes from `axis` on, as one row.
    Softmax {
        /// The (first) axis.
        axis: usize,
        /// Opset < 13 semantics: flatten to 2-D at `axis` and normalise each row.
        coerce_2d: bool,
    },
}

impl Op {
    /// The ONNX-style name of the operator (for reports and error messages).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Add => "Add",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Pad { .. } => "Pad",
            Op::Slice { .. } => "Slice",
            Op::Concat { .. } => "Concat",
            Op::Softmax { .. } => "Softmax",
        }
    }

    /// The output shape for the given input shapes, or a description of why the inputs do not fit.
    ///
    /// The importer uses this to give every value a static shape and to refuse inconsistent models.
    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let arity = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&inputs.len()) {
                Ok(())
            } else {
                Err(format!("expects {n:?} inputs, has {}", inputs.len()))
            }
        };
        match self {
            Op::Conv(a) => {
                arity(2..=3)?;
                let (x, w) = (inputs[0], inputs[1]);
                let sr = a.kernel.len();
                if x.len() != sr + 2 || w.len() != sr + 2 {
                    return Err(format!("input {x:?} and weight {w:?} do not have {} spatial axes", sr));
                }
                if a.group == 0 || x[1] % a.group != 0 || w[0] % a.group != 0 || w[1] * a.group != x[1] {
                    return Err(format!("input {x:?}, weight {w:?} and group {} do not match", a.group));
                }
                if w[2..] != a.kernel[..] {
                    return Err(format!("weight {w:?} does not match kernel_shape {:?}", a.kernel));
                }
                if inputs.len() == 3 && inputs[2] != [w[0]] {
                    return Err(format!("bias {:?} does not match {} output channels", inputs[2], w[0]));
                }
                let mut out = vec![x[0], w[0]];
                for i in 0..sr {
                    out.push(window_count(
                        x[2 + i],
                        a.kernel[i],
                        a.strides[i],
                        a.dilations[i],
                        a.pads_begin[i],
                        a.pads_end[i],
                        false,
                    )?);
                }
                Ok(out)
            }
            Op::BatchNorm { .. } => {
                arity(5..=5)?;
                let x = inputs[0];
                if x.len() < 2 || inputs[1..].iter().any(|s| *s != [x[1]]) {
                    return Err(format!("parameters {:?} do not match input {x:?}", &inputs[1..]));
                }
                Ok(x.to_vec())
            }
            Op::Relu | Op::Clip { .. } => {
                arity(1..=1)?;
                Ok(inputs[0].to_vec())
            }
            Op::MaxPool(p) | Op::AveragePool { pool: p, .. } => {
                arity(1..=1)?;
                let x = inputs[0];
                let sr = p.kernel.len();
                if x.len() != sr + 2 {
                    return Err(format!("input {x:?} does not have {sr} spatial axes"));
                }
                let mut out = x[..2].to_vec();
                for i in 0..sr {
                    out.push(window_count(
                        x[2 + i],
                        p.kernel[i],
                        p.strides[i],
                        p.dilations[i],
                        p.pads_begin[i],
                        p.pads_end[i],
                        p.ceil_mode,
                    )?);
                }
                Ok(out)
            }
            Op::GlobalAveragePool => {
                arity(1..=1)?;
                let x = inputs[0];
                if x.len() < 3 {
                    return Err(format!("input {x:?} has no spatial axes"));
                }
                Ok(x.iter().enumerate().map(|(i, &d)| if i < 2 { d } else { 1 }).collect())
            }
            Op::Add => {
                arity(2..=2)?;
                broadcast_shapes(inputs[0], inputs[1])
            }
            Op::Gemm { trans_a, trans_b, .. } => {
                arity(2..=3)?;
                let (a, b) = (inputs[0], inputs[1]);
                if a.len() != 2 || b.len() != 2 {
                    return Err(format!("A {a:?} and B {b:?} must be matrices"));
                }
                let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
                let (k2, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
                if k != k2 {
                    return Err(format!("A {a:?} and B {b:?} have different inner sizes"));
                }
                if inputs.len() == 3 && broadcast_shapes(inputs[2], &[m, n])? != [m, n] {
                    return Err(format!("C {:?} does not broadcast to [{m}, {n}]", inputs[2]));
                }
                Ok(vec![m, n])
            }
            Op::MatMul => {
                arity(2..=2)?;
                matmul_shape(inputs[0], inputs[1])
            }
            Op::Reshape { shape } => {
                arity(1..=1)?;
                if shape.iter().product::<usize>() != inputs[0].iter().product::<usize>() {
                    return Err(format!("cannot reshape {:?} to {shape:?}", inputs[0]));
                }
                Ok(shape.clone())
            }
            Op::Transpose { perm } => {
                arity(1..=1)?;
                let x = inputs[0];
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() || perm.iter().any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!("perm {perm:?} is not a permutation of the axes of {x:?}"));
                }
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            Op::Pad { pads_begin, pads_end, .. } => {
                arity(1..=1)?;
                let x = inputs[0];
                if pads_begin.len() != x.len() || pads_end.len() != x.len() {
                    return Err(format!("pads {pads_begin:?}/{pads_end:?} do not match the rank of {x:?}"));
                }
                Ok(x.iter().zip(pads_begin).zip(pads_end).map(|((d, b), e)| d + b + e).collect())
            }
            Op::Slice { ranges } => {
                arity(1..=1)?;
                let x = inputs[0];
                if ranges.len() != x.len() {
                    return Err(format!("{} ranges for input {x:?}", ranges.len()));
                }
                for (r, &d) in ranges.iter().zip(x) {
                    let last = r.start as isize + (r.len as isize - 1) * r.step;
                    if r.len > 0 && (r.start >= d || last < 0 || last >= d as isize) {
                        return Err(format!("range {r:?} is out of bounds for input {x:?}"));
                    }
                }
                Ok(ranges.iter().map(|r| r.len).collect())
            }
            Op::Concat { axis } => {
                if inputs.is_empty() {
                    return Err("expects at least one input".into());
                }
                let first = inputs[0];
                if *axis >= first.len() {
                    return Err(format!("axis {axis} out of range for {first:?}"));
                }
                let mut out = first.to_vec();
                out[*axis] = 0;
                for s in inputs {
                    let same = s.len() == first.len()
                        && s.iter().zip(first).enumerate().all(|(i, (a, b))| i == *axis || a == b);
                    if !same {
                        return Err(format!("inputs {inputs:?} differ outside axis {axis}"));
                    }
                    out[*axis] += s[*axis];
                }
                Ok(out)
            }
            Op::Softmax { axis, .. } => {
                arity(1..=1)?;
                if *axis >= inputs[0].len() {
                    return Err(format!("axis {axis} out of range for {:?}", inputs[0]));
                }
                Ok(inputs[0].to_vec())
            }
        }
    }
}

/// Number of window positions along one axis (ONNX convolution/pooling output size), or an error if the
/// window does not fit at all.
pub fn window_count(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Result<usize, String> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err("kernel, stride and dilation must be positive".into());
    }
    let span = (kernel - 1) * dilation + 1;
    let padded = input + pad_begin + pad_end;
    if padded < span {
        return Err(format!("window of {span} does not fit in {input} + padding {pad_begin}+{pad_end}"));
    }
    let mut out = if ceil_mode { (padded - span).div_ceil(stride) + 1 } else { (padded - span) / stride + 1 };
    // With ceil_mode a last window that would start in the end padding is dropped (ONNX, PyTorch).
    if ceil_mode && (out - 1) * stride >= input + pad_begin {
        out -= 1;
    }
    Ok(out)
}

/// numpy broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Output shape of numpy `matmul`.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    if a.is_empty() || b.is_empty() {
        return Err("matmul of a scalar".into());
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(format!("matmul of {a:?} and {b:?}: inner sizes differ"));
    }
    let mut out = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(out)
}

/// A whole model: values, nodes in topological order, and which values are inputs and outputs.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Every tensor of the graph, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// The nodes, each only using values that are graph inputs, constants or outputs of earlier nodes.
    pub nodes: Vec<Node>,
    /// The runtime inputs, in the order [`crate::reference::run`] expects them.
    pub inputs: Vec<ValueId>,
    /// The graph outputs, in ONNX order.
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Adds a value and returns its id.
    pub fn add_value(&mut self, name: impl Into<String>, shape: Vec<usize>, constant: Option<ArrayD<f32>>) -> ValueId {
        self.values.push(Value { name: name.into(), shape, constant });
        self.values.len() - 1
    }

    /// Appends a node named `name` computing `op` on `inputs` into a new value named `output`, whose shape is
    /// inferred from the inputs' ([`Op::output_shape`]); returns the new value, or why the shapes do not fit.
    /// Model builders use it to grow a graph in topological order.
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, output: &str) -> Result<ValueId, String> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| self.values[i].shape.as_slice()).collect();
        let shape = op.output_shape(&shapes)?;
        let out = self.add_value(output, shape, None);
        self.nodes.push(Node { name: name.to_string(), op, inputs, output: out });
        Ok(out)
    }

    /// Looks a value up by its ONNX name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name)
    }

    /// How many operators of each kind the graph contains, in first-appearance order (for reports).
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for node in &self.nodes {
            match counts.iter_mut().find(|(n, _)| *n == node.op.name()) {
                Some((_, c)) => *c += 1,
                None => counts.push((node.op.name(), 1)),
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_count_matches_onnx() {
        // 32 wide, 3x3, stride 1, pad 1: same size.
        assert_eq!(window_count(32, 3, 1, 1, 1, 1, false), Ok(32));
        // 224, 7x7, stride 2, pad 3: 112.
        assert_eq!(window_count(224, 7, 2, 1, 3, 3, false), Ok(112));
        // ceil mode: 32, 3, stride 2, no pad: floor 15, ceil 16.
        assert_eq!(window_count(32, 3, 2, 1, 0, 0, false), Ok(15));
        assert_eq!(window_count(32, 3, 2, 1, 0, 0, true), Ok(16));
        assert!(window_count(2, 3, 1, 1, 0, 0, false).is_err());
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[2, 3, 4], &[4]), Ok(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Ok(vec![2, 3, 4]));
        assert!(broadcast_shapes(&[2, 3], &[4]).is_err());
        assert_eq!(matmul_shape(&[2, 3, 4], &[4, 5]), Ok(vec![2, 3, 5]));
        assert_eq!(matmul_shape(&[4], &[4, 5]), Ok(vec![5]));
    }
}
