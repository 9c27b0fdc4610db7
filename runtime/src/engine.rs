//! Layers on the engine: matrix products and convolutions lowered to engine programs and run on a device.
//!
//! A layer's weights are quantized once, when it is prepared ([`DenseLayer::new`], [`ConvLayer::new`]):
//! the reduction axis K is padded with zeros to whole blocks, and the output columns N with zero weight
//! columns to whole blocks (their outputs are dropped). Running a layer quantizes only its input (and
//! residual), builds one [`arch::program::matmul`] program (column chunks and row tiles double-buffered so
//! loads overlap compute), and runs it through the driver on any backend. Bias, residual add and ReLU/ReLU6 run fused in the engine's
//! POST stage; results come back as `f32`.
//!
//! A convolution is lowered to a matrix product by host im2col: one row per output pixel, the reduction
//! axis ordered (kernel row, kernel column, input channel) so that BFP blocks run along channels. Grouped
//! convolutions run group by group. [`crate::compile`] decides which graph nodes become engine layers.

use arch::bfp::{BfpError, BfpTensor, Rounding};
use arch::config::EngineConfig;
use arch::isa::Activation;
use arch::program::{self, Matmul, OutputKind, OutputLocation, ProgramError};
use driver::{Accelerator, Backend, DriverError, RunStats};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
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

/// A matrix product `act(A · Wᵀ + bias [+ residual])` prepared for one engine: weights quantized once, the
/// output columns padded with zero weights to whole blocks.
#[derive(Clone, Debug)]
pub struct DenseLayer {
    config: EngineConfig,
    k: usize,
    n: usize,
    /// One row of `K/bs` blocks per output column, `N` padded to whole blocks.
    weights: BfpTensor,
    /// The bias, zero-padded like the columns.
    bias: Option<Vec<f32>>,
    activation: Activation,
}

impl DenseLayer {
    /// Quantizes `w` (N×K, one row per output column) and the optional bias (N values) for `config`'s engine.
    pub fn new(
        config: &EngineConfig,
        w: ArrayView2<f32>,
        bias: Option<&[f32]>,
        activation: Activation,
    ) -> Result<Self, EngineError> {
        let bs = config.format.block_size();
        let (n, k) = w.dim();
        if n == 0 || k == 0 {
            return Err(EngineError::Shape(format!("W is {n}×{k}: need N, K > 0")));
        }
        if bias.is_some_and(|b| b.len() != n) {
            return Err(EngineError::Shape(format!("bias has {} values for N = {n}", bias.map_or(0, <[f32]>::len))));
        }
        let (kp, np) = (k.next_multiple_of(bs), n.next_multiple_of(bs));
        let mut wp = padded_rows(w, kp);
        wp.resize(np * kp, 0.0);
        let weights = BfpTensor::quantize(config.format, Rounding::NearestEven, &wp)?;
        let bias = bias.map(|b| {
            let mut v = b.to_vec();
            v.resize(np, 0.0);
            v
        });
        Ok(DenseLayer { config: *config, k, n, weights, bias, activation })
    }

    /// The reduction length K (before padding).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The output columns N (before padding).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The quantized weights: one row of `K/bs` blocks per output column, N padded to whole blocks.
    pub fn weights(&self) -> &BfpTensor {
        &self.weights
    }

    /// Replaces the quantized weights with `weights` (e.g. read from a model package), which must have the
    /// engine's format and the same number of blocks.
    pub fn set_weights(&mut self, weights: BfpTensor) -> Result<(), String> {
        if weights.format() != self.config.format || weights.num_blocks() != self.weights.num_blocks() {
            return Err(format!(
                "{} blocks of {}, the layer needs {} blocks of {}",
                weights.num_blocks(),
                weights.format(),
                self.weights.num_blocks(),
                self.config.format
            ));
        }
        self.weights = weights;
        Ok(())
    }

    /// The activation POST applies.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Runs `act(A · Wᵀ + bias + residual)` on the engine behind `acc` as one program: `a` is M×K,
    /// `residual` (if any) M×N. Returns the M×N result and the program's counters.
    pub fn run<B: Backend>(
        &self,
        acc: &mut Accelerator<B>,
        a: ArrayView2<f32>,
        residual: Option<ArrayView2<f32>>,
    ) -> Result<(Array2<f32>, RunStats), EngineError> {
        let cfg = *acc.config();
        if cfg != self.config {
            return Err(EngineError::Shape(format!("the layer was prepared for {}, the device is {cfg}", self.config)));
        }
        let bs = cfg.format.block_size();
        let (m, k) = a.dim();
        if k != self.k || m == 0 {
            return Err(EngineError::Shape(format!("A is {m}×{k}, the layer needs M > 0 rows of K = {}", self.k)));
        }
        let np = self.n.next_multiple_of(bs);
        let res_q = match &residual {
            Some(r) if r.dim() != (m, self.n) => {
                return Err(EngineError::Shape(format!("residual is {:?}, the output is {m}×{}", r.dim(), self.n)));
            }
            Some(r) => Some(BfpTensor::quantize(cfg.format, Rounding::NearestEven, &padded_rows(r.view(), np))?),
            None => None,
        };
        let a_q = BfpTensor::quantize(cfg.format, Rounding::NearestEven, &padded_rows(a, k.next_multiple_of(bs)))?;
        let spec = Matmul {
            a: &a_q,
            w: &self.weights,
            m,
            n: np,
            bias: self.bias.as_deref(),
            residual: res_q.as_ref(),
            activation: self.activation,
            output: OutputKind::F32,
        };
        let built = program::matmul(&cfg, &spec)?;
        acc.write_data(&built.window.bytes)?;
        let stats = acc.run(&built.program)?;
        let OutputLocation::F32(at) = built.output else { unreachable!("the program was built for f32 output") };
        let data = acc.data();
        let mut out = Array2::zeros((m, self.n));
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let base = at as usize + 4 * i * np;
            for (j, o) in row.iter_mut().enumerate() {
                let b = base + 4 * j;
                *o = f32::from_le_bytes(data[b..b + 4].try_into().expect("4 bytes"));
            }
        }
        Ok((out, stats))
    }
}

/// A 2-D convolution prepared for one engine: per group, a [`DenseLayer`] over the im2col matrix.
#[derive(Clone, Debug)]
pub struct ConvLayer {
    geometry: Conv2d,
    /// Weight shape O×(C/group)×KH×KW.
    weight_shape: [usize; 4],
    groups: Vec<DenseLayer>,
}

impl ConvLayer {
    /// Quantizes `weight` (O×(C/group)×KH×KW, ONNX layout) and the optional bias for `config`'s engine.
    pub fn new(
        config: &EngineConfig,
        weight: ArrayView4<f32>,
        bias: Option<&[f32]>,
        geometry: &Conv2d,
        activation: Activation,
    ) -> Result<Self, EngineError> {
        let (o, cg, kh, kw) = weight.dim();
        let g = geometry.group;
        if g == 0 || o % g != 0 || o == 0 || cg == 0 || kh == 0 || kw == 0 {
            return Err(EngineError::Shape(format!("weights {:?} for {g} groups", weight.dim())));
        }
        if geometry.stride.contains(&0) || geometry.dilation.contains(&0) {
            return Err(EngineError::Shape("stride and dilation must be positive".into()));
        }
        if bias.is_some_and(|b| b.len() != o) {
            return Err(EngineError::Shape(format!(
                "bias has {} values for {o} output channels",
                bias.map_or(0, <[f32]>::len)
            )));
        }
        let og = o / g;
        let mut groups = Vec::with_capacity(g);
        for gi in 0..g {
            // One row per output channel, columns ordered (ky, kx, channel) as im2col orders them.
            let wm = Array2::from_shape_fn((og, kh * kw * cg), |(oc, col)| {
                let (kyx, ch) = (col / cg, col % cg);
                weight[[gi * og + oc, ch, kyx / kw, kyx % kw]]
            });
            let b = bias.map(|b| &b[gi * og..(gi + 1) * og]);
            groups.push(DenseLayer::new(config, wm.view(), b, activation)?);
        }
        Ok(ConvLayer { geometry: *geometry, weight_shape: [o, cg, kh, kw], groups })
    }

    /// The convolution's geometry.
    pub fn geometry(&self) -> &Conv2d {
        &self.geometry
    }

    /// Kernel height and width.
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight_shape[2], self.weight_shape[3]]
    }

    /// The matrix product of each group.
    pub fn groups(&self) -> &[DenseLayer] {
        &self.groups
    }

    /// The matrix products, to replace their weights ([`DenseLayer::set_weights`]).
    pub fn groups_mut(&mut self) -> &mut [DenseLayer] {
        &mut self.groups
    }

    /// Output height and width for an input of `h`×`w`, or why the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), EngineError> {
        let [_, _, kh, kw] = self.weight_shape;
        let c = &self.geometry;
        let [pt, pl, pb, pr] = c.pads;
        let span = |size: usize, pad: usize, k: usize, d: usize, s: usize| {
            let eff = d * (k - 1) + 1;
            (size + pad >= eff).then(|| (size + pad - eff) / s + 1)
        };
        match (span(h, pt + pb, kh, c.dilation[0], c.stride[0]), span(w, pl + pr, kw, c.dilation[1], c.stride[1])) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err(EngineError::Shape(format!("a {kh}×{kw} kernel does not fit the padded {h}×{w} input"))),
        }
    }

    /// Runs the convolution on `input` (1×C×H×W) with an optional `residual` (1×O×OH×OW) added before the
    /// activation. Returns the 1×O×OH×OW result and the summed counters.
    pub fn run<B: Backend>(
        &self,
        acc: &mut Accelerator<B>,
        input: ArrayView4<f32>,
        residual: Option<ArrayView4<f32>>,
    ) -> Result<(Array4<f32>, RunStats), EngineError> {
        let (batch, c, h, wd) = input.dim();
        let [o, cg, kh, kw] = self.weight_shape;
        let g = self.groups.len();
        if batch != 1 {
            return Err(EngineError::Shape(format!("batch {batch}: the engine runs batch 1")));
        }
        if c != cg * g {
            return Err(EngineError::Shape(format!("input has {c} channels, the layer needs {g}×{cg}")));
        }
        let (oh, ow) = self.output_size(h, wd)?;
        if let Some(r) = &residual {
            if r.dim() != (1, o, oh, ow) {
                return Err(EngineError::Shape(format!(
                    "residual is {:?}, the output is [1, {o}, {oh}, {ow}]",
                    r.dim()
                )));
            }
        }
        let conv = &self.geometry;
        let [pt, pl, _, _] = conv.pads;
        let og = o / g;
        let mut out = Array4::zeros((1, o, oh, ow));
        let mut total = RunStats::default();
        for (gi, layer) in self.groups.iter().enumerate() {
            // im2col: row = output pixel, column = (ky, kx, channel) so blocks run along channels.
            let mut cols = Array2::<f32>::zeros((oh * ow, kh * kw * cg));
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
            // The residual in the same layout as the result: one row per output pixel.
            let res = residual
                .as_ref()
                .map(|r| Array2::from_shape_fn((oh * ow, og), |(p, oc)| r[[0, gi * og + oc, p / ow, p % ow]]));
            let (res_out, stats) = layer.run(acc, cols.view(), res.as_ref().map(|r| r.view()))?;
            total += stats;
            for oc in 0..og {
                for y in 0..oh {
                    for x in 0..ow {
                        out[[0, gi * og + oc, y, x]] = res_out[[y * ow + x, oc]];
                    }
                }
            }
        }
        Ok((out, total))
    }
}

/// `activation(A · Wᵀ + bias)` on the engine: `a` is M×K, `w` is N×K (one row per output column).
/// Prepares a [`DenseLayer`] for this one call; returns the M×N result and the summed counters.
pub fn matmul<B: Backend>(
    acc: &mut Accelerator<B>,
    a: ArrayView2<f32>,
    w: ArrayView2<f32>,
    bias: Option<&[f32]>,
    activation: Activation,
) -> Result<(Array2<f32>, RunStats), EngineError> {
    if a.ncols() != w.ncols() {
        return Err(EngineError::Shape(format!(
            "A is {}×{} and W is {}×{}: need equal K",
            a.nrows(),
            a.ncols(),
            w.nrows(),
            w.ncols()
        )));
    }
    let cfg = *acc.config();
    DenseLayer::new(&cfg, w, bias, activation)?.run(acc, a, None)
}

/// A 2-D convolution on the engine: `input` is 1×C×H×W, `weight` is O×(C/group)×KH×KW (ONNX layouts).
/// Prepares a [`ConvLayer`] for this one call; returns the 1×O×OH×OW result and the summed counters.
pub fn conv2d<B: Backend>(
    acc: &mut Accelerator<B>,
    input: ArrayView4<f32>,
    weight: ArrayView4<f32>,
    bias: Option<&[f32]>,
    conv: &Conv2d,
    activation: Activation,
) -> Result<(Array4<f32>, RunStats), EngineError> {
    let cfg = *acc.config();
    ConvLayer::new(&cfg, weight, bias, conv, activation)?.run(acc, input, None)
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
