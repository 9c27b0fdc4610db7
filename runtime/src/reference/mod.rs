//! The f32 reference path: a plain ndarray interpreter of a [`Graph`].
//!
//! It is the yardstick the engine's quantized results are measured against, so it favours being obviously
//! right: each operator family is one small file, convolutions are im2col plus a matrix product (ndarray's
//! `dot`), everything else is direct loops or ndarray operations. Intermediate values are dropped as soon
//! as their last consumer has run.

mod conv;
mod elementwise;
mod layout;
mod linalg;
mod pool;

use ndarray::ArrayD;

use crate::error::RuntimeError;
use crate::graph::{Graph, Node, Op, ValueId};

/// Runs the graph on its inputs (in [`Graph::inputs`] order) and returns its outputs (in
/// [`Graph::outputs`] order).
pub fn run(graph: &Graph, inputs: &[ArrayD<f32>]) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
    run_values(graph, inputs, &graph.outputs)
}

/// Runs the graph and returns the requested values (any value of the graph: outputs, intermediate
/// activations, constants), in the order requested.
pub fn run_values(graph: &Graph, inputs: &[ArrayD<f32>], wanted: &[ValueId]) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
    run_values_with(graph, inputs, wanted, |node, args| eval(&node.op, args))
}

/// Runs the graph with `eval_node` computing each node from its inputs, and returns the requested values.
/// The reference path passes [`eval`]; other paths pass their own evaluator (see [`walk`]).
pub fn run_values_with(
    graph: &Graph,
    inputs: &[ArrayD<f32>],
    wanted: &[ValueId],
    eval_node: impl FnMut(&Node, &[&ArrayD<f32>]) -> Result<ArrayD<f32>, String>,
) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
    walk(graph, &graph.nodes, inputs, wanted, eval_node)
}

/// One unit of work of a graph walk: reads some values of the graph and writes one. A graph's own
/// [`Node`]s are steps; so are a compiled model's fused engine layers ([`crate::compile::Step`]).
pub trait WalkStep {
    /// The values it reads (graph inputs, constants, or outputs of earlier steps).
    fn inputs(&self) -> &[ValueId];
    /// The value it writes.
    fn output(&self) -> ValueId;
    /// Its name, for errors.
    fn name(&self) -> &str;
    /// What it computes, for errors (an operator name, or fused operators joined by `+`).
    fn kind(&self) -> String;
}

impl WalkStep for Node {
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
        self.op.name().into()
    }
}

/// The one graph walker: runs `steps` (in topological order over `graph`'s values) with `eval_step`
/// computing each step's output from its inputs, checks every output against the shape the graph declares,
/// frees intermediate values after their last use, and returns the requested values in the order requested.
pub fn walk<S: WalkStep>(
    graph: &Graph,
    steps: &[S],
    inputs: &[ArrayD<f32>],
    wanted: &[ValueId],
    mut eval_step: impl FnMut(&S, &[&ArrayD<f32>]) -> Result<ArrayD<f32>, String>,
) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
    if inputs.len() != graph.inputs.len() {
        return Err(RuntimeError::InputCount { expected: graph.inputs.len(), got: inputs.len() });
    }
    if let Some(&bad) = wanted.iter().find(|&&w| w >= graph.values.len()) {
        return Err(RuntimeError::NoSuchValue(bad));
    }
    let mut slots: Vec<Option<ArrayD<f32>>> = vec![None; graph.values.len()];
    for (&id, x) in graph.inputs.iter().zip(inputs) {
        let v = &graph.values[id];
        if x.shape() != v.shape.as_slice() {
            return Err(RuntimeError::InputShape {
                name: v.name.clone(),
                expected: v.shape.clone(),
                got: x.shape().to_vec(),
            });
        }
        slots[id] = Some(x.clone());
    }
    // The last step using each value; values never used again are freed, except the wanted ones.
    let mut last_use = vec![usize::MAX; graph.values.len()];
    for (i, step) in steps.iter().enumerate() {
        for &v in step.inputs() {
            last_use[v] = i;
        }
    }
    for &w in wanted {
        last_use[w] = usize::MAX;
    }
    for (i, step) in steps.iter().enumerate() {
        let fail = |detail: String| RuntimeError::Node { node: step.name().into(), op: step.kind(), detail };
        let mut args = Vec::with_capacity(step.inputs().len());
        for &v in step.inputs() {
            let a = match &graph.values[v].constant {
                Some(c) => c,
                None => slots[v]
                    .as_ref()
                    .ok_or_else(|| fail(format!("input '{}' is not computed", graph.values[v].name)))?,
            };
            args.push(a);
        }
        let out = eval_step(step, &args).map_err(fail)?;
        let expected = &graph.values[step.output()].shape;
        if out.shape() != expected.as_slice() {
            return Err(fail(format!("computed shape {:?}, the graph says {expected:?}", out.shape())));
        }
        slots[step.output()] = Some(out);
        for &v in step.inputs() {
            if last_use[v] == i {
                slots[v] = None;
            }
        }
    }
    wanted
        .iter()
        .map(|&w| {
            let v = &graph.values[w];
            v.constant.clone().or_else(|| slots[w].clone()).ok_or_else(|| RuntimeError::Node {
                node: v.name.clone(),
                op: "output".into(),
                detail: "value was not computed".into(),
            })
        })
        .collect()
}

/// Evaluates one operator on its inputs.
pub fn eval(op: &Op, x: &[&ArrayD<f32>]) -> Result<ArrayD<f32>, String> {
    let need = |n: usize| if x.len() >= n { Ok(()) } else { Err(format!("needs {n} inputs, got {}", x.len())) };
    need(1)?;
    match op {
        Op::Conv(a) => {
            need(2)?;
            conv::conv(x[0], x[1], x.get(2).copied(), a)
        }
        Op::BatchNorm { epsilon } => {
            need(5)?;
            elementwise::batch_norm(x[0], x[1], x[2], x[3], x[4], *epsilon)
        }
        Op::Relu => Ok(x[0].mapv(|v| v.max(0.0))),
        Op::Clip { min, max } => Ok(x[0].mapv(|v| v.max(*min).min(*max))),
        Op::MaxPool(p) => pool::max_pool(x[0], p),
        Op::AveragePool { pool, count_include_pad } => pool::average_pool(x[0], pool, *count_include_pad),
        Op::GlobalAveragePool => pool::global_average_pool(x[0]),
        Op::Add => {
            need(2)?;
            elementwise::add(x[0], x[1])
        }
        Op::Gemm { alpha, beta, trans_a, trans_b } => {
            need(2)?;
            linalg::gemm(x[0], x[1], x.get(2).copied(), *alpha, *beta, *trans_a, *trans_b)
        }
        Op::MatMul => {
            need(2)?;
            linalg::matmul(x[0], x[1])
        }
        Op::Reshape { shape } => layout::reshape(x[0], shape),
        Op::Transpose { perm } => Ok(layout::transpose(x[0], perm)),
        Op::Pad { pads_begin, pads_end, value } => layout::pad(x[0], pads_begin, pads_end, *value),
        Op::Slice { ranges } => Ok(layout::slice(x[0], ranges)),
        Op::Concat { axis } => layout::concat(x, *axis),
        Op::Softmax { axis, coerce_2d } => elementwise::softmax(x[0], *axis, *coerce_2d),
    }
}
