//! Layers on the engine: matrix products and convolutions lowered to engine programs and run on a device.
//!
//! This is the first, plain lowering: a convolution becomes an explicit im2col matrix on the host, with the
//! reduction axis ordered (kernel row, kernel column, input channel) so that BFP blocks run along channels,
//! and every product becomes `arch::program::dense_matmul` programs run through the driver on any backend.
//! K is padded with zeros to whole blocks, N with zero weight columns to whole blocks (their outputs are
//! dropped), and N is split into chunks whose weights fit the weight buffer. Bias and ReLU/ReLU6 run in the
//! engine's POST stage; results come back as `f32`.
//!
//! [`run`] executes a whole imported graph this way: convolutions and matrix products on the engine, every
//! other operator on the host's f32 reference path, with a report of where each node ran and why.
//!
//! Still to come (issue 3): implicit GEMM through the GEMM instruction's loop nests instead of host im2col,
//! weights quantized once per model rather than per call, residual adds in POST, and BFP outputs chained from
//! layer to layer.

use crate::error::RuntimeError;
use crate::graph::{Graph, Op};
use crate::reference;
use arch::bfp::{BfpError, BfpTensor, Rounding};
use arch::isa::Activation;
use arch::program::{dense_matmul, OutputKind, OutputLocation, ProgramError};
use driver::{Accelerator, Backend, DriverError, RunStats};
use ndarray::{s, Array2, Array4, ArrayD, ArrayView2, ArrayView4, Axis, Ix2, Ix4};
use thiserror::Error;

/// Why a layer could not run on the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The operands' shapes do not fit together.
    #[error("layer shapes: {0}")]
    Shape(String),
    /// A value could not be quantized (NaN or infinity in the layer's input or weights).
    #[error("quantizing the layer: {0}")]
    Bfp(#[from] BfpError),
    /// The layer does not fit the engine's buffers.
    #[error("building the engine program: {0}")]
    Program(#[from] ProgramError),
    /// The device failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Geometry of a 2-D convolution (as ONNX's Conv attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right (ONNX `pads` order).
    pub pads: [usize; 4],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Groups (input and output channels are split into this many independent convolutions).
    pub group: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d { stride: [1, 1], pads: [0; 4], dilation: [1, 1], group: 1 }
    }
}

/// Where one node of a graph ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the engine, as engine programs.
    Engine,
    /// On the host's f32 reference path, and why.
    Host(String),
}

/// What one node cost and where it ran.
#[derive(Clone, Debug)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// Its operator.
    pub op: &'static str,
    /// Engine or host (with the reason).
    pub placement: Placement,
    /// Counters of the engine programs it ran (zero on the host).
    pub stats: RunStats,
}

/// Runs a graph with every ungrouped 2-D convolution and every `Gemm` of the form `A · Bᵀ + c` on the engine behind
/// `acc`, and the other operators on the host's f32 reference path; returns the graph outputs and one report
/// per node. A batch is run one item at a time (the engine runs batch 1).
pub fn run<B: Backend>(
    acc: &mut Accelerator<B>,
    graph: &Graph,
    inputs: &[ArrayD<f32>],
) -> Result<(Vec<ArrayD<f32>>, Vec<NodeReport>), RuntimeError> {
    let mut reports = Vec::with_capacity(graph.nodes.len());
    let outputs = reference::run_values_with(graph, inputs, &graph.outputs, |node, args| {
        let (out, placement, stats) = match engine_node(acc, &node.op, args).map_err(|e| e.to_string())? {
            Some((out, stats)) => (out, Placement::Engine, stats),
            None => {
                (reference::eval(&node.op, args)?, Placement::Host(host_reason(&node.op, args)), RunStats::default())
            }
        };
        reports.push(NodeReport { node: node.name.clone(), op: node.op.name(), placement, stats });
        Ok(out)
    })?;
    Ok((outputs, reports))
}

/// Why an operator runs on the host.
fn host_reason(op: &Op, args: &[&ArrayD<f32>]) -> String {
    match op {
        Op::Conv(a) if a.kernel.len() != 2 => "only 2-D convolutions are lowered to the engine".into(),
        Op::Conv(a) if a.group > 1 => format!(
            "grouped convolution ({} groups): lowered group by group it would use one array column in 16; it runs \
             on the host until a depthwise lowering lands",
            a.group
        ),
        Op::Gemm { .. } => "only Gemm with alpha = beta = 1, A untransposed, B transposed is lowered".into(),
        _ if args.is_empty() => "no inputs".into(),
        other => format!("{} has no engine lowering yet (bias/ReLU fusion and pooling are to come)", other.name()),
    }
}

/// Runs `op` on the engine if it has a lowering, `Ok(None)` if it belongs on the host.
fn engine_node<B: Backend>(
    acc: &mut Accelerator<B>,
    op: &Op,
    args: &[&ArrayD<f32>],
) -> Result<Option<(ArrayD<f32>, RunStats)>, EngineError> {
    match op {
        Op::Conv(a) if a.kernel.len() == 2 && a.group == 1 && args.len() >= 2 && args[0].ndim() == 4 => {
            let shape = |e: ndarray::ShapeError| EngineError::Shape(e.to_string());
            let x = args[0].view().into_dimensionality::<Ix4>().map_err(shape)?;
            let w = args[1].view().into_dimensionality::<Ix4>().map_err(shape)?;
            let bias = args.get(2).map(|b| b.iter().copied().collect::<Vec<f32>>());
            let geometry = Conv2d {
                stride: [a.strides[0], a.strides[1]],
                pads: [a.pads_begin[0], a.pads_begin[1], a.pads_end[0], a.pads_end[1]],
                dilation: [a.dilations[0], a.dilations[1]],
                group: a.group,
            };
            let mut total = RunStats::default();
            let mut items = Vec::with_capacity(x.len_of(Axis(0)));
            for item in x.axis_chunks_iter(Axis(0), 1) {
                let (y, stats) = conv2d(acc, item, w, bias.as_deref(), &geometry, Activation::None)?;
                total += stats;
                items.push(y);
            }
            let views: Vec<_> = items.iter().map(|y| y.view()).collect();
            let out = ndarray::concatenate(Axis(0), &views).map_err(|e| EngineError::Shape(e.to_string()))?;
            Ok(Some((out.into_dyn(), total)))
        }
        Op::Gemm { alpha, beta, trans_a: false, trans_b: true }
            if *alpha == 1.0 && *beta == 1.0 && args.len() >= 2 && args[0].ndim() == 2 && args[1].ndim() == 2 =>
        {
            let shape = |e: ndarray::ShapeError| EngineError::Shape(e.to_string());
            let a = args[0].view().into_dimensionality::<Ix2>().map_err(shape)?;
            let b = args[1].view().into_dimensionality::<Ix2>().map_err(shape)?;
            let bias: Option<Vec<f32>> = match args.get(2) {
                Some(c) if c.len() == b.nrows() => Some(c.iter().copied().collect()),
                Some(_) => return Ok(None),
                None => None,
            };
            let (y, stats) = matmul(acc, a, b, bias.as_deref(), Activation::None)?;
            Ok(Some((y.into_dyn(), stats)))
        }
        _ => Ok(None),
    }
}

/// `activation(A · Wᵀ + bias)` on the engine: `a` is M×K, `w` is N×K (one row per output column).
/// Returns the M×N result and the summed counters of the programs it ran.
pub fn matmul<B: Backend>(
    acc: &mut Accelerator<B>,
    a: ArrayView2<f32>,
    w: ArrayView2<f32>,
    bias: Option<&[f32]>,
    activation: Activation,
) -> Result<(Array2<f32>, RunStats), EngineError> {
    let cfg = *acc.config();
    let bs = cfg.format.block_size();
    let ((m, k), (n, kw)) = (a.dim(), w.dim());
    if k != kw || m == 0 || n == 0 || k == 0 {
        return Err(EngineError::Shape(format!("A is {m}×{k} and W is {n}×{kw}: need M, N, K > 0 and equal K")));
    }
    if bias.is_some_and(|b| b.len() != n) {
        return Err(EngineError::Shape(format!("bias has {} values for N = {n}", bias.map_or(0, <[f32]>::len))));
    }
    let kp = k.next_multiple_of(bs);
    let kb = kp / bs;
    let a_q = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &padded_rows(a, kp))?;
    // Output columns per program: the chunk's weights must fit the weight buffer, and its accumulators (two
    // row tiles of at least one row, plus the bias) the accumulator buffer.
    let by_weights = cfg.wgt_entries / kb;
    let by_acc = cfg.acc_entries / 3;
    let chunk = (by_weights.min(by_acc) / bs) * bs;
    if chunk == 0 {
        return Err(EngineError::Shape(format!("one output column of K = {k} does not fit the weight buffer")));
    }
    let mut out = Array2::zeros((m, n));
    let mut total = RunStats::default();
    for n0 in (0..n).step_by(chunk) {
        let n1 = (n0 + chunk).min(n);
        let np = (n1 - n0).next_multiple_of(bs);
        let mut wc = padded_rows(w.slice(s![n0..n1, ..]), kp);
        wc.resize(np * kp, 0.0);
        let w_q = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &wc)?;
        let bias_c = bias.map(|b| {
            let mut v = b[n0..n1].to_vec();
            v.resize(np, 0.0);
            v
        });
        let built = dense_matmul(&cfg, &a_q, &w_q, m, np, bias_c.as_deref(), activation, OutputKind::F32)?;
        acc.write_data(&built.window.bytes)?;
        let stats = acc.run(&built.program)?;
        total += stats;
        let OutputLocation::F32(at) = built.output else { unreachable!("dense_matmul was asked for f32 output") };
        let data = acc.data();
        for i in 0..m {
            for j in n0..n1 {
                let o = at as usize + 4 * (i * np + j - n0);
                out[[i, j]] = f32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
            }
        }
    }
    Ok((out, total))
}

/// A 2-D convolution on the engine: `input` is 1×C×H×W, `weight` is O×(C/group)×KH×KW (ONNX layouts).
/// Returns the 1×O×OH×OW result and the summed counters.
pub fn conv2d<B: Backend>(
    acc: &mut Accelerator<B>,
    input: ArrayView4<f32>,
    weight: ArrayView4<f32>,
    bias: Option<&[f32]>,
    conv: &Conv2d,
    activation: Activation,
) -> Result<(Array4<f32>, RunStats), EngineError> {
    let (batch, c, h, wd) = input.dim();
    let (o, cg, kh, kw) = weight.dim();
    let g = conv.group;
    let bad = |why: String| Err(EngineError::Shape(why));
    if batch != 1 {
        return bad(format!("batch {batch}: the engine runs batch 1"));
    }
    if g == 0 || c % g != 0 || o % g != 0 || cg != c / g {
        return bad(format!("{c} input and {o} output channels, weights for {cg} per group, {g} groups"));
    }
    if conv.stride.contains(&0) || conv.dilation.contains(&0) {
        return bad("stride and dilation must be positive".into());
    }
    let [pt, pl, pb, pr] = conv.pads;
    let span = |size: usize, pad: usize, k: usize, d: usize, s: usize| {
        let eff = d * (k - 1) + 1;
        (size + pad >= eff).then(|| (size + pad - eff) / s + 1)
    };
    let (Some(oh), Some(ow)) = (
        span(h, pt + pb, kh, conv.dilation[0], conv.stride[0]),
        span(wd, pl + pr, kw, conv.dilation[1], conv.stride[1]),
    ) else {
        return bad(format!("a {kh}×{kw} kernel does not fit the padded {h}×{wd} input"));
    };
    if bias.is_some_and(|b| b.len() != o) {
        return bad(format!("bias has {} values for {o} output channels", bias.map_or(0, <[f32]>::len)));
    }
    let og = o / g;
    let mut out = Array4::zeros((1, o, oh, ow));
    let mut total = RunStats::default();
    for gi in 0..g {
        // im2col: row = output pixel, column = (ky, kx, channel) so blocks run along channels.
        let k = kh * kw * cg;
        let mut cols = Array2::<f32>::zeros((oh * ow, k));
        for y in 0..oh {
            for x in 0..ow {
                let mut row = cols.row_mut(y * ow + x);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (y * conv.stride[0] + ky * conv.dilation[0]) as isize - pt as isize;
                        let ix = (x * conv.stride[1] + kx * conv.dilation[1]) as isize - pl as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                            continue;
                        }
                        for ch in 0..cg {
                            row[(ky * kw + kx) * cg + ch] = input[[0, gi * cg + ch, iy as usize, ix as usize]];
                        }
                    }
                }
            }
        }
        let mut wm = Array2::<f32>::zeros((og, k));
        for oc in 0..og {
            for ky in 0..kh {
                for kx in 0..kw {
                    for ch in 0..cg {
                        wm[[oc, (ky * kw + kx) * cg + ch]] = weight[[gi * og + oc, ch, ky, kx]];
                    }
                }
            }
        }
        let b = bias.map(|b| &b[gi * og..(gi + 1) * og]);
        let (res, stats) = matmul(acc, cols.view(), wm.view(), b, activation)?;
        total += stats;
        for oc in 0..og {
            for y in 0..oh {
                for x in 0..ow {
                    out[[0, gi * og + oc, y, x]] = res[[y * ow + x, oc]];
                }
            }
        }
    }
    Ok((out, total))
}

/// The rows of `m` flattened, each padded with zeros to `width` values.
fn padded_rows(m: ArrayView2<f32>, width: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(m.nrows() * width);
    for row in m.rows() {
        v.extend(row.iter().copied());
        v.resize(v.len() + width - row.len(), 0.0);
    }
    v
}
