//! Compiling a graph for one engine: which nodes run on the engine, fused how, and with weights quantized once.
//!
//! [`compile`] walks the graph once and groups nodes into [`Step`]s:
//!
//! * an ungrouped 2-D `Conv`, or a `Gemm` of the form `A · Bᵀ + c` with constant `B` and `c`, becomes an
//!   engine layer ([`ConvLayer`] / [`DenseLayer`]: its weights and bias quantized to the engine's format
//!   here, once per model);
//! * the layer absorbs what the engine's POST stage can do after it: an `Add` of another tensor of the same
//!   shape (a residual connection), then a `Relu` or a `Clip(0, 6)` (ReLU6) — each only when the layer's
//!   output has no other consumer, so no intermediate value that anything else reads is skipped;
//! * every other node is a host step on the f32 reference path, with the reason it is not on the engine.
//!
//! A fused step runs where its last node stood in the graph's order, so the residual (often computed by a
//! shortcut branch after the main branch's first convolution) is ready. [`CompiledModel::run`] executes the
//! steps with the same walker as the reference path ([`reference::walk`]) and reports each step's engine
//! counters; [`CompiledModel::compare`] measures each step's output against the f32 reference (SQNR and
//! max abs error) for the run report.

use std::time::{Duration, Instant};

use arch::bfp::BfpTensor;
use arch::config::EngineConfig;
use arch::isa::Activation;
use driver::{Accelerator, Backend, RunStats};
use ndarray::{ArrayD, Axis, Ix2, Ix4};

use crate::engine::{Conv2d, ConvLayer, DenseLayer, EngineError};
use crate::error::RuntimeError;
use crate::graph::{Graph, Op, ValueId};
use crate::reference::{self, WalkStep};
use crate::report::{LayerRow, RunSummary};

/// One unit of a compiled model: an engine layer (possibly fused) or a host operator.
#[derive(Clone, Debug)]
pub struct Step {
    /// The name of its first node.
    pub name: String,
    /// The operators it covers, e.g. `["Conv", "Add", "Relu"]`.
    pub ops: Vec<&'static str>,
    /// Indices of the graph nodes it covers, in graph order.
    pub nodes: Vec<usize>,
    /// The values it reads: for an engine layer its input and then its residual (if fused).
    pub inputs: Vec<ValueId>,
    /// The value it writes (the last covered node's output).
    pub output: ValueId,
    /// Multiply-accumulates per run (all batch items), 0 for operators without products.
    pub macs: u64,
    /// What runs.
    pub kind: StepKind,
}

/// How a step runs.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// A convolution on the engine, with the residual (if fused) added in POST.
    Conv {
        /// The prepared layer (weights quantized, activation fused).
        layer: ConvLayer,
        /// Whether `inputs[1]` is added before the activation.
        residual: bool,
    },
    /// A matrix product on the engine.
    Dense {
        /// The prepared layer.
        layer: DenseLayer,
        /// Whether `inputs[1]` is added before the activation.
        residual: bool,
    },
    /// An operator on the host's f32 reference path.
    Host {
        /// The operator.
        op: Op,
        /// Why it is not on the engine.
        reason: String,
    },
}

impl Step {
    /// Whether the step runs on the engine.
    pub fn on_engine(&self) -> bool {
        !matches!(self.kind, StepKind::Host { .. })
    }

    /// The covered operators joined by `+`, e.g. `Conv+Add+Relu`.
    pub fn label(&self) -> String {
        self.ops.join("+")
    }
}

impl WalkStep for Step {
    fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }
    fn output(&self) -> ValueId {
        self.output
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> String {
        self.label()
    }
}

/// A graph compiled for one engine configuration.
#[derive(Clone, Debug)]
pub struct CompiledModel {
    graph: Graph,
    config: EngineConfig,
    steps: Vec<Step>,
}

/// What one step of a run cost.
#[derive(Clone, Debug, Default)]
pub struct StepRun {
    /// Engine counters summed over the step's programs (zero for host steps).
    pub stats: RunStats,
    /// Host wall time of the whole step (quantizing, building programs, running them, or the host operator).
    pub wall: Duration,
}

/// The result of running a compiled model.
#[derive(Clone, Debug)]
pub struct Run {
    /// The requested values (the graph outputs for [`CompiledModel::run`]).
    pub values: Vec<ArrayD<f32>>,
    /// One entry per step, in step order.
    pub steps: Vec<StepRun>,
}

/// A run on the engine beside the f32 reference run of the same inputs ([`CompiledModel::compare`]).
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The engine run: graph outputs and step costs.
    pub engine: Run,
    /// The f32 reference path's graph outputs.
    pub reference: Vec<ArrayD<f32>>,
    /// One report row per step, with its error against the reference.
    pub rows: Vec<LayerRow>,
}

/// Compiles `graph` for the engine `config` describes: fuses layers, quantizes their weights, and places the
/// rest on the host. Fails only if a layer that should fit the engine cannot be prepared (a bug in the
/// graph, such as NaN weights).
pub fn compile(graph: &Graph, config: &EngineConfig) -> Result<CompiledModel, RuntimeError> {
    let mut consumers = vec![Vec::new(); graph.values.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for &v in &node.inputs {
            consumers[v].push(i);
        }
    }
    let is_output = |v: ValueId| graph.outputs.contains(&v);
    // The sole consumer of `v`, if nothing else (no other node, no graph output) reads it.
    let sole_consumer = |v: ValueId, absorbed: &[bool]| match consumers[v].as_slice() {
        [only] if !is_output(v) && !absorbed[*only] => Some(*only),
        _ => None,
    };
    let mut absorbed = vec![false; graph.nodes.len()];
    let mut fused_at: Vec<Option<Step>> = vec![None; graph.nodes.len()];
    let mut host_steps: Vec<Option<Step>> = vec![None; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if absorbed[i] {
            continue;
        }
        let shape_of = |v: ValueId| graph.values[v].shape.as_slice();
        let fail = |e: EngineError| RuntimeError::Node {
            node: node.name.clone(),
            op: node.op.name().into(),
            detail: format!("preparing the engine layer: {e}"),
        };
        let host = |reason: String| Step {
            name: node.name.clone(),
            ops: vec![node.op.name()],
            nodes: vec![i],
            inputs: node.inputs.clone(),
            output: node.output,
            macs: node_macs(graph, i),
            kind: StepKind::Host { op: node.op.clone(), reason },
        };
        let Some(lowering) = engine_lowering(graph, i) else {
            host_steps[i] = Some(host(host_reason(graph, i, config)));
            continue;
        };
        // Fuse what POST can do after the product: a residual add, then ReLU or ReLU6.
        // A node already fused into an earlier layer (an Add whose other operand is this layer's output: two
        // branches meeting) is not fused again; this layer's output becomes that layer's residual.
        let mut nodes = vec![i];
        let mut ops = vec![node.op.name()];
        let mut out = node.output;
        let mut residual = None;
        if let Some(j) = sole_consumer(out, &absorbed) {
            let add = &graph.nodes[j];
            if matches!(add.op, Op::Add) && add.inputs.len() == 2 {
                let other = if add.inputs[0] == out { add.inputs[1] } else { add.inputs[0] };
                if other != out && graph.values[other].constant.is_none() && shape_of(other) == shape_of(out) {
                    residual = Some(other);
                    nodes.push(j);
                    ops.push("Add");
                    out = add.output;
                }
            }
        }
        let mut activation = Activation::None;
        if let Some(j) = sole_consumer(out, &absorbed) {
            let act = match graph.nodes[j].op {
                Op::Relu => Some(Activation::Relu),
                Op::Clip { min, max } if min == 0.0 && max == 6.0 => Some(Activation::Relu6),
                _ => None,
            };
            if let Some(a) = act {
                activation = a;
                nodes.push(j);
                ops.push(graph.nodes[j].op.name());
                out = graph.nodes[j].output;
            }
        }
        let constant = |k: usize| node.inputs.get(k).and_then(|&v| graph.values[v].constant.as_ref());
        let weights = constant(1).expect("engine_lowering checked the weights are constant");
        let bias: Option<Vec<f32>> = constant(2).map(|b| b.iter().copied().collect());
        let kind = match lowering {
            Lowering::Conv(geometry) => {
                let w = weights.view().into_dimensionality::<Ix4>().expect("engine_lowering checked the rank");
                let layer = ConvLayer::new(config, w, bias.as_deref(), &geometry, activation).map_err(fail)?;
                StepKind::Conv { layer, residual: residual.is_some() }
            }
            Lowering::Dense => {
                let w = weights.view().into_dimensionality::<Ix2>().expect("engine_lowering checked the rank");
                let layer = DenseLayer::new(config, w, bias.as_deref(), activation).map_err(fail)?;
                StepKind::Dense { layer, residual: residual.is_some() }
            }
        };
        let mut inputs = vec![node.inputs[0]];
        inputs.extend(residual);
        let last = *nodes.last().expect("at least the product");
        for &n in &nodes {
            absorbed[n] = true;
        }
        fused_at[last] =
            Some(Step { name: node.name.clone(), ops, nodes, inputs, output: out, macs: node_macs(graph, i), kind });
    }
    let steps = fused_at.into_iter().zip(host_steps).filter_map(|(fused, host)| fused.or(host)).collect();
    Ok(CompiledModel { graph: graph.clone(), config: *config, steps })
}

/// How a node is lowered to the engine.
enum Lowering {
    /// An ungrouped 2-D convolution.
    Conv(Conv2d),
    /// `A · Bᵀ + c`.
    Dense,
}

/// Whether node `i` has an engine lowering: constant weights (and bias), supported form and shapes.
fn engine_lowering(graph: &Graph, i: usize) -> Option<Lowering> {
    let node = &graph.nodes[i];
    let value = |k: usize| node.inputs.get(k).map(|&v| &graph.values[v]);
    let weights_constant = value(1).is_some_and(|w| w.constant.is_some());
    let bias_ok = value(2).is_none_or(|b| b.constant.is_some());
    if !weights_constant || !bias_ok || value(0).is_none_or(|x| x.constant.is_some()) {
        return None;
    }
    match &node.op {
        Op::Conv(a) if a.kernel.len() == 2 && a.group == 1 && value(0)?.shape.len() == 4 => {
            Some(Lowering::Conv(Conv2d {
                stride: [a.strides[0], a.strides[1]],
                pads: [a.pads_begin[0], a.pads_begin[1], a.pads_end[0], a.pads_end[1]],
                dilation: [a.dilations[0], a.dilations[1]],
                group: 1,
            }))
        }
        Op::Gemm { alpha, beta, trans_a: false, trans_b: true }
            if *alpha == 1.0
                && *beta == 1.0
                && value(0)?.shape.len() == 2
                && value(1)?.shape.len() == 2
                && value(2).is_none_or(|c| c.shape.iter().product::<usize>() == value(1).map_or(0, |w| w.shape[0])) =>
        {
            Some(Lowering::Dense)
        }
        _ => None,
    }
}

/// Why node `i` runs on the host of an engine with `config`.
fn host_reason(graph: &Graph, i: usize, config: &EngineConfig) -> String {
    let node = &graph.nodes[i];
    let constant = |k: usize| node.inputs.get(k).is_some_and(|&v| graph.values[v].constant.is_some());
    match &node.op {
        Op::Conv(_) | Op::Gemm { .. } if !constant(1) => "its weights are computed at run time, not constants".into(),
        Op::Conv(a) if a.kernel.len() != 2 => "only 2-D convolutions are lowered to the engine".into(),
        Op::Conv(a) if a.group > 1 => format!(
            "grouped convolution ({} groups): lowered group by group it would use {} of the array's {} columns; \
             the engine has no depthwise unit",
            a.group,
            node.inputs.get(1).map_or(1, |&w| graph.values[w].shape[0] / a.group).min(config.cols),
            config.cols
        ),
        Op::Gemm { .. } => "only Gemm with alpha = beta = 1, A untransposed, B transposed is lowered".into(),
        Op::MatMul => "MatMul is not lowered (Gemm is)".into(),
        Op::Add | Op::Relu | Op::Clip { .. } => format!(
            "element-wise: POST fuses {} only directly after an engine layer whose output nothing else reads",
            node.op.name()
        ),
        Op::MaxPool(_) | Op::AveragePool { .. } | Op::GlobalAveragePool => {
            "pooling: the engine has no pooling unit (cheap on the host)".into()
        }
        Op::Softmax { .. } | Op::BatchNorm { .. } => "element-wise normalisation: the host computes it in f32".into(),
        _ => "data movement: no arithmetic for the engine".into(),
    }
}

/// Multiply-accumulates of node `i` (products only; 0 for other operators).
fn node_macs(graph: &Graph, i: usize) -> u64 {
    let node = &graph.nodes[i];
    let shape = |k: usize| node.inputs.get(k).map(|&v| graph.values[v].shape.as_slice()).unwrap_or(&[]);
    let out: u64 = graph.values[node.output].shape.iter().product::<usize>() as u64;
    match &node.op {
        // Every output element is a dot product over (C/group)·kernel.
        Op::Conv(_) => out * shape(1).iter().skip(1).product::<usize>() as u64,
        Op::Gemm { trans_a, .. } => {
            let a = shape(0);
            let k = if *trans_a { a.first() } else { a.last() };
            out * k.copied().unwrap_or(0) as u64
        }
        Op::MatMul => out * shape(0).last().copied().unwrap_or(0) as u64,
        _ => 0,
    }
}

impl CompiledModel {
    /// The graph it was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The engine configuration its weights are quantized for.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The steps, in execution order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Runs the model on the engine behind `acc` (host steps on the reference path) and returns the graph
    /// outputs with each step's costs. A batch runs one item at a time (the engine runs batch 1).
    pub fn run<B: Backend>(&self, acc: &mut Accelerator<B>, inputs: &[ArrayD<f32>]) -> Result<Run, RuntimeError> {
        self.run_values(acc, inputs, &self.graph.outputs)
    }

    /// Like [`run`](Self::run), returning the requested values (e.g. every step's output, for
    /// [`compare`](Self::compare)).
    pub fn run_values<B: Backend>(
        &self,
        acc: &mut Accelerator<B>,
        inputs: &[ArrayD<f32>],
        wanted: &[ValueId],
    ) -> Result<Run, RuntimeError> {
        if *acc.config() != self.config {
            return Err(RuntimeError::WrongEngine {
                compiled: self.config.to_string(),
                device: acc.config().to_string(),
            });
        }
        let mut runs = Vec::with_capacity(self.steps.len());
        let values = reference::walk(&self.graph, &self.steps, inputs, wanted, |step, args| {
            let t0 = Instant::now();
            let (out, stats) = run_step(acc, step, args)?;
            runs.push(StepRun { stats, wall: t0.elapsed() });
            Ok(out)
        })?;
        Ok(Run { values, steps: runs })
    }

    /// The quantized weights of every engine step, in step order: the step's name and one tensor per
    /// matrix product (one per convolution group).
    pub fn engine_weights(&self) -> Vec<(&str, Vec<&BfpTensor>)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Conv { layer, .. } => {
                    Some((s.name.as_str(), layer.groups().iter().map(DenseLayer::weights).collect()))
                }
                StepKind::Dense { layer, .. } => Some((s.name.as_str(), vec![layer.weights()])),
                StepKind::Host { .. } => None,
            })
            .collect()
    }

    /// Installs stored weights (as [`engine_weights`](Self::engine_weights) lists them) in place of the
    /// compiled ones. The steps must match one for one, by name, tensor count, format and size.
    pub fn set_engine_weights(&mut self, stored: Vec<(String, Vec<BfpTensor>)>) -> Result<(), String> {
        let engine_steps = self.steps.iter().filter(|s| s.on_engine()).count();
        if stored.len() != engine_steps {
            return Err(format!("{} stored layers, the compiled model has {engine_steps} engine layers", stored.len()));
        }
        let steps = self.steps.iter_mut().filter(|s| s.on_engine());
        for (step, (name, tensors)) in steps.zip(stored) {
            if step.name != name {
                return Err(format!("stored layer '{name}' where the compiled model has '{}'", step.name));
            }
            let layers: Vec<&mut DenseLayer> = match &mut step.kind {
                StepKind::Conv { layer, .. } => layer.groups_mut().iter_mut().collect(),
                StepKind::Dense { layer, .. } => vec![layer],
                StepKind::Host { .. } => unreachable!("filtered to engine steps"),
            };
            if layers.len() != tensors.len() {
                return Err(format!("layer '{name}': {} stored tensors for {} groups", tensors.len(), layers.len()));
            }
            for (layer, t) in layers.into_iter().zip(tensors) {
                layer.set_weights(t).map_err(|e| format!("layer '{name}': {e}"))?;
            }
        }
        Ok(())
    }

    /// The output value of every step, in step order.
    pub fn step_outputs(&self) -> Vec<ValueId> {
        self.steps.iter().map(|s| s.output).collect()
    }

    /// Runs the model on the engine and on the f32 reference path and returns one report row per step: where it
    /// ran, its MACs, modelled cycles and utilisation, and its output's SQNR and max abs error against the
    /// f32 reference (errors accumulate from the input on: this is what the engine's answer is worth).
    pub fn compare<B: Backend>(
        &self,
        acc: &mut Accelerator<B>,
        inputs: &[ArrayD<f32>],
    ) -> Result<Comparison, RuntimeError> {
        let mut wanted = self.graph.outputs.clone();
        wanted.extend(self.step_outputs());
        let mut run = self.run_values(acc, inputs, &wanted)?;
        let mut reference = reference::run_values(&self.graph, inputs, &wanted)?;
        let skip = self.graph.outputs.len();
        let rows = self
            .steps
            .iter()
            .zip(&run.steps)
            .zip(run.values[skip..].iter().zip(&reference[skip..]))
            .map(|((step, cost), (got, want))| {
                let (sqnr, max_abs) = error_stats(want, got);
                self.row(step, cost, Some(sqnr), Some(max_abs))
            })
            .collect();
        run.values.truncate(skip);
        reference.truncate(skip);
        Ok(Comparison { engine: run, reference, rows })
    }

    /// The totals of a run for the report's header: cycles and MACs of the rows, engine and host step
    /// counts, and the engine's clock and peak MACs per cycle.
    pub fn summary(&self, title: &str, rows: &[LayerRow]) -> RunSummary {
        RunSummary::from_rows(
            title,
            self.config.spec().unwrap_or_else(|| self.config.to_string()),
            self.config.clock_mhz as f64,
            self.config.macs() as u64,
            rows,
        )
    }

    /// The report row of one step (errors given by the caller, if measured).
    pub fn row(&self, step: &Step, cost: &StepRun, sqnr_db: Option<f64>, max_abs_err: Option<f32>) -> LayerRow {
        let c = &cost.stats.counters;
        let note = match &step.kind {
            StepKind::Host { reason, .. } => reason.clone(),
            StepKind::Conv { layer, .. } => {
                let g = layer.groups().first();
                let [kh, kw] = layer.kernel();
                format!(
                    "{kh}×{kw}/{} K={} N={}",
                    layer.geometry().stride[0],
                    g.map_or(0, DenseLayer::k),
                    g.map_or(0, DenseLayer::n)
                )
            }
            StepKind::Dense { layer, .. } => format!("K={} N={}", layer.k(), layer.n()),
        };
        LayerRow {
            name: step.name.clone(),
            op: step.label(),
            engine: step.on_engine(),
            note,
            macs: step.macs,
            cycles: c.cycles,
            utilisation: step
                .on_engine()
                .then(|| step.macs as f64 / (c.cycles.max(1) as f64 * self.config.macs() as f64)),
            sqnr_db,
            max_abs_err,
        }
    }
}

/// Runs one step on its inputs: engine layers item by item through the device, host steps on the reference
/// path.
fn run_step<B: Backend>(
    acc: &mut Accelerator<B>,
    step: &Step,
    args: &[&ArrayD<f32>],
) -> Result<(ArrayD<f32>, RunStats), String> {
    let shape_err = |e: ndarray::ShapeError| e.to_string();
    let mut total = RunStats::default();
    let out = match &step.kind {
        StepKind::Host { op, .. } => reference::eval(op, args)?,
        StepKind::Conv { layer, residual } => {
            let x = args[0].view().into_dimensionality::<Ix4>().map_err(shape_err)?;
            let r =
                if *residual { Some(args[1].view().into_dimensionality::<Ix4>().map_err(shape_err)?) } else { None };
            let mut items = Vec::with_capacity(x.len_of(Axis(0)));
            for b in 0..x.len_of(Axis(0)) {
                let xi = x.slice_axis(Axis(0), (b..b + 1).into());
                let ri = r.as_ref().map(|r| r.slice_axis(Axis(0), (b..b + 1).into()));
                let (y, stats) = layer.run(acc, xi, ri).map_err(|e| e.to_string())?;
                total += stats;
                items.push(y);
            }
            let views: Vec<_> = items.iter().map(|y| y.view()).collect();
            ndarray::concatenate(Axis(0), &views).map_err(shape_err)?.into_dyn()
        }
        StepKind::Dense { layer, residual } => {
            let a = args[0].view().into_dimensionality::<Ix2>().map_err(shape_err)?;
            let r =
                if *residual { Some(args[1].view().into_dimensionality::<Ix2>().map_err(shape_err)?) } else { None };
            let (y, stats) = layer.run(acc, a, r).map_err(|e| e.to_string())?;
            total += stats;
            y.into_dyn()
        }
    };
    Ok((out, total))
}

/// SQNR (dB) of `got` against `reference`, and the max abs error. An exact match has infinite SQNR.
pub fn error_stats(reference: &ArrayD<f32>, got: &ArrayD<f32>) -> (f64, f32) {
    let mut signal = 0.0f64;
    let mut noise = 0.0f64;
    let mut max_abs = 0.0f32;
    for (&r, &g) in reference.iter().zip(got) {
        signal += (r as f64).powi(2);
        noise += (r as f64 - g as f64).powi(2);
        max_abs = max_abs.max((r - g).abs());
    }
    let sqnr = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
    (sqnr, max_abs)
}
