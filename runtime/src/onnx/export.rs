//! ONNX export: writing a [`Graph`] as an ONNX `ModelProto`, the inverse of the importer.
//!
//! The exported model has IR version 8 (9 for opset 19–20, 10 for opset 21), imports the default domain at
//! the requested opset ([`DEFAULT_OPSET`] = 17 unless told otherwise; [`SUPPORTED_OPSETS`]), declares its
//! inputs and outputs with their static shapes (float32), stores every constant as a float32 initializer
//! (`raw_data`, little-endian) and writes one node per IR node:
//!
//! | IR | ONNX |
//! |---|---|
//! | `Conv` | `Conv` (`kernel_shape`, `strides`, `dilations`, `pads`, `group`) |
//! | `BatchNorm` | `BatchNormalization` (`epsilon`) |
//! | `Relu`, `Add`, `MatMul`, `GlobalAveragePool` | the same |
//! | `Clip` | `Clip` with scalar `min`/`max` initializers (an infinite bound is left out) |
//! | `MaxPool` | `MaxPool` (`kernel_shape`, `strides`, `pads`, `dilations`, `ceil_mode`) |
//! | `AveragePool` | `AveragePool` (as MaxPool plus `count_include_pad`; dilations only from opset 19) |
//! | `Gemm` | `Gemm` (`alpha`, `beta`, `transA`, `transB`) |
//! | `Reshape` | `Reshape` with an int64 shape initializer (`allowzero = 1` if the shape has a 0) |
//! | `Transpose` | `Transpose` (`perm`) |
//! | `Pad` | `Pad` (constant mode) with int64 `pads` and a scalar `constant_value` initializer |
//! | `Slice` | `Slice` with int64 `starts`, `ends`, `axes`, `steps` initializers |
//! | `Concat` | `Concat` (`axis`) |
//! | `Softmax` | `Softmax` (`axis`); opset-12 semantics over the last axis are the same; otherwise `Reshape` to 2-D, `Softmax`, `Reshape` back |
//!
//! Importing the exported bytes gives back a graph that computes bit-identically (the same operators with the
//! same attributes and the same f32 constants). Tensor names are the graph's value names, made unique (an
//! imported `Sum` of three inputs, for instance, gives two values of one name) by appending `#<id>`; node
//! names are the graph's. A graph output that no node produces (an input or a constant) is written through an
//! `Identity` node. What ONNX at the requested opset cannot express is an [`ExportError`] naming the node.

use std::collections::HashSet;

use ndarray::ArrayD;
use prost::Message;
use thiserror::Error;

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use crate::graph::{Graph, Node, Op, PoolAttrs, SliceRange, ValueId};

/// The opset written unless another is asked for (the opset of the project's real models).
pub const DEFAULT_OPSET: i64 = 17;

/// The default-domain opsets the exporter can write: from 13 (Softmax's per-axis semantics, `Clip` and
/// `Pad` bounds as inputs) to 21.
pub const SUPPORTED_OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// The `producer_name` written into exported models.
pub const PRODUCER_NAME: &str = "systole";

/// Why a graph could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The requested opset is outside [`SUPPORTED_OPSETS`].
    #[error("opset {0} is not supported for export (supported: 13 to 21)")]
    Opset(i64),
    /// A node that ONNX at the requested opset cannot express.
    #[error("node '{node}' ({op}) cannot be exported: {reason}")]
    Unsupported {
        /// The node's name.
        node: String,
        /// The IR operator.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// The graph itself is inconsistent (a value id out of range, a constant whose data does not match its
    /// shape, an input that is a constant, …).
    #[error("invalid graph: {0}")]
    Invalid(String),
}

/// Exports `graph` as an ONNX model of the default domain at `opset`, serialized to protobuf bytes.
pub fn export_model(graph: &Graph, opset: i64) -> Result<Vec<u8>, ExportError> {
    Ok(export_proto(graph, opset)?.encode_to_vec())
}

/// Exports `graph` as an ONNX `ModelProto` of the default domain at `opset` (see the module documentation).
pub fn export_proto(graph: &Graph, opset: i64) -> Result<ModelProto, ExportError> {
    if !SUPPORTED_OPSETS.contains(&opset) {
        return Err(ExportError::Opset(opset));
    }
    let mut ex = Exporter::new(graph, opset)?;
    for node in &graph.nodes {
        ex.node(node)?;
    }
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    let mut written: HashSet<ValueId> = HashSet::new();
    let produced: HashSet<ValueId> = graph.nodes.iter().map(|n| n.output).collect();
    for &o in &graph.outputs {
        let name = if produced.contains(&o) && written.insert(o) {
            ex.names[o].clone()
        } else {
            // An output that is an input or a constant, or an output listed twice: through an Identity.
            let input = ex.use_value(o, "graph output")?;
            let name = ex.fresh(&format!("{}/output", graph.values[o].name));
            ex.nodes.push(make_node("Identity", &format!("{name}/identity"), vec![input], name.clone(), vec![]));
            name
        };
        outputs.push(value_info(&name, &graph.values[o].shape));
    }
    let inputs = graph.inputs.iter().map(|&i| value_info(&ex.names[i], &graph.values[i].shape)).collect();
    let ir_version = match opset {
        ..=18 => 8,
        19..=20 => 9,
        _ => 10,
    };
    Ok(ModelProto {
        ir_version: Some(ir_version),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        producer_name: Some(PRODUCER_NAME.into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(GraphProto {
            node: ex.nodes,
            name: Some("systole".into()),
            initializer: ex.initializers,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    })
}

struct Exporter<'a> {
    graph: &'a Graph,
    opset: i64,
    /// The unique ONNX name of each value.
    names: Vec<String>,
    used: HashSet<String>,
    /// Which constants have been written as initializers.
    initialized: Vec<bool>,
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
}

impl<'a> Exporter<'a> {
    fn new(graph: &'a Graph, opset: i64) -> Result<Self, ExportError> {
        let n = graph.values.len();
        let mut ex = Exporter {
            graph,
            opset,
            names: vec![String::new(); n],
            used: HashSet::new(),
            initialized: vec![false; n],
            initializers: Vec::new(),
            nodes: Vec::new(),
        };
        let in_range = |ids: &[ValueId], what: &str| match ids.iter().find(|&&i| i >= n) {
            Some(i) => Err(ExportError::Invalid(format!("{what} refers to value {i}, the graph has {n}"))),
            None => Ok(()),
        };
        in_range(&graph.inputs, "an input")?;
        in_range(&graph.outputs, "an output")?;
        for node in &graph.nodes {
            in_range(&node.inputs, &format!("node '{}'", node.name))?;
            in_range(&[node.output], &format!("node '{}'", node.name))?;
        }
        if let Some(&i) = graph.inputs.iter().find(|&&i| graph.values[i].constant.is_some()) {
            return Err(ExportError::Invalid(format!("input '{}' is a constant", graph.values[i].name)));
        }
        // Topological order: every node reads inputs, constants or outputs of earlier nodes.
        let mut defined: Vec<bool> = graph.values.iter().map(|v| v.constant.is_some()).collect();
        for &i in &graph.inputs {
            defined[i] = true;
        }
        for node in &graph.nodes {
            if let Some(&i) = node.inputs.iter().find(|&&i| !defined[i]) {
                return Err(ExportError::Invalid(format!(
                    "node '{}' reads '{}' before any node computes it",
                    node.name, graph.values[i].name
                )));
            }
            defined[node.output] = true;
        }
        // Inputs keep their names first, then node outputs, then constants.
        let order = graph.inputs.iter().copied().chain(graph.nodes.iter().map(|n| n.output)).chain(0..n);
        for id in order {
            if ex.names[id].is_empty() {
                let base =
                    if graph.values[id].name.is_empty() { format!("value{id}") } else { graph.values[id].name.clone() };
                ex.names[id] = if ex.used.insert(base.clone()) { base } else { ex.fresh(&format!("{base}#{id}")) };
            }
        }
        Ok(ex)
    }

    /// A name not used yet, starting from `base`.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}.{k}");
            k += 1;
        }
        name
    }

    /// The ONNX name of value `id` as a node input, writing it as an initializer first if it is a constant.
    fn use_value(&mut self, id: ValueId, context: &str) -> Result<String, ExportError> {
        let v = &self.graph.values[id];
        if let Some(c) = &v.constant {
            if !self.initialized[id] {
                if c.shape() != v.shape.as_slice() {
                    return Err(ExportError::Invalid(format!(
                        "{context}: constant '{}' has data of shape {:?}, declared {:?}",
                        v.name,
                        c.shape(),
                        v.shape
                    )));
                }
                self.initializers.push(float_tensor(&self.names[id], c));
                self.initialized[id] = true;
            }
        }
        Ok(self.names[id].clone())
    }

    /// Adds an int64 initializer (shape parameters) under a fresh name derived from `base`.
    fn int_constant(&mut self, base: &str, data: &[i64]) -> String {
        let name = self.fresh(base);
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.clone()),
            raw_data: Some(raw),
            ..Default::default()
        });
        name
    }

    /// Adds a float32 scalar initializer under a fresh name derived from `base`.
    fn scalar_constant(&mut self, base: &str, value: f32) -> String {
        let name = self.fresh(base);
        self.initializers.push(TensorProto {
            dims: vec![],
            data_type: Some(DataType::Float as i32),
            name: Some(name.clone()),
            raw_data: Some(value.to_le_bytes().to_vec()),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, node: &Node) -> Result<(), ExportError> {
        let unsupported =
            |reason: String| ExportError::Unsupported { node: node.name.clone(), op: node.op.name(), reason };
        let mut inputs = Vec::with_capacity(node.inputs.len() + 4);
        for &i in &node.inputs {
            inputs.push(self.use_value(i, &format!("node '{}'", node.name))?);
        }
        let output = self.names[node.output].clone();
        // The node must be consistent (arity, shapes): everything below relies on it.
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| self.graph.values[i].shape.as_slice()).collect();
        let declared = &self.graph.values[node.output].shape;
        match node.op.output_shape(&shapes) {
            Ok(s) if s == *declared => {}
            Ok(s) => {
                return Err(ExportError::Invalid(format!(
                    "node '{}' computes shape {s:?}, its output is declared {declared:?}",
                    node.name
                )))
            }
            Err(e) => return Err(ExportError::Invalid(format!("node '{}' ({}): {e}", node.name, node.op.name()))),
        }
        let in_shape = shapes.first().map(|s| s.to_vec()).unwrap_or_default();
        let (op_type, attrs): (&str, Vec<AttributeProto>) = match &node.op {
            Op::Conv(a) => (
                "Conv",
                vec![
                    ints("kernel_shape", &a.kernel),
                    ints("strides", &a.strides),
                    ints("dilations", &a.dilations),
                    ints("pads", &[a.pads_begin.as_slice(), a.pads_end.as_slice()].concat()),
                    int("group", a.group as i64),
                ],
            ),
            Op::BatchNorm { epsilon } => ("BatchNormalization", vec![float("epsilon", *epsilon)]),
            Op::Relu => ("Relu", vec![]),
            Op::Clip { min, max } => {
                if min.is_nan() || max.is_nan() {
                    return Err(unsupported(format!("bounds {min}, {max}")));
                }
                // A bound that is the default (-inf for min, +inf for max) is left out.
                let name = node.name.clone();
                let lo = *min != f32::NEG_INFINITY;
                let hi = *max != f32::INFINITY;
                inputs.push(if lo { self.scalar_constant(&format!("{name}/min"), *min) } else { String::new() });
                if hi {
                    inputs.push(self.scalar_constant(&format!("{name}/max"), *max));
                }
                while inputs.last().is_some_and(|s| s.is_empty()) {
                    inputs.pop();
                }
                ("Clip", vec![])
            }
            Op::MaxPool(p) => ("MaxPool", pool_attrs(p, true)),
            Op::AveragePool { pool, count_include_pad } => {
                if self.opset < 19 && pool.dilations.iter().any(|&d| d != 1) {
                    return Err(unsupported(format!(
                        "dilations {:?}: AveragePool has dilations only from opset 19 (exporting opset {})",
                        pool.dilations, self.opset
                    )));
                }
                // Before opset 19 AveragePool has no `dilations` attribute (all are 1 here, checked above).
                let mut attrs = pool_attrs(pool, self.opset >= 19);
                attrs.push(int("count_include_pad", i64::from(*count_include_pad)));
                ("AveragePool", attrs)
            }
            Op::GlobalAveragePool => ("GlobalAveragePool", vec![]),
            Op::Add => ("Add", vec![]),
            Op::Gemm { alpha, beta, trans_a, trans_b } => (
                "Gemm",
                vec![
                    float("alpha", *alpha),
                    float("beta", *beta),
                    int("transA", i64::from(*trans_a)),
                    int("transB", i64::from(*trans_b)),
                ],
            ),
            Op::MatMul => ("MatMul", vec![]),
            Op::Reshape { shape } => {
                let mut attrs = vec![];
                if shape.contains(&0) {
                    if self.opset < 14 {
                        return Err(unsupported(format!("shape {shape:?} has a 0, which needs allowzero (opset 14)")));
                    }
                    attrs.push(int("allowzero", 1));
                }
                let dims = to_i64(shape);
                inputs.push(self.int_constant(&format!("{}/shape", node.name), &dims));
                ("Reshape", attrs)
            }
            Op::Transpose { perm } => ("Transpose", vec![ints("perm", perm)]),
            Op::Pad { pads_begin, pads_end, value } => {
                let pads = to_i64(&[pads_begin.as_slice(), pads_end.as_slice()].concat());
                inputs.push(self.int_constant(&format!("{}/pads", node.name), &pads));
                inputs.push(self.scalar_constant(&format!("{}/value", node.name), *value));
                ("Pad", vec![string("mode", "constant")])
            }
            Op::Slice { ranges } => {
                let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
                for (axis, (r, &d)) in ranges.iter().zip(&in_shape).enumerate() {
                    let (s, e) = slice_bounds(r, d).map_err(unsupported)?;
                    starts.push(s);
                    ends.push(e);
                    axes.push(axis as i64);
                    steps.push(r.step as i64);
                }
                let n = node.name.clone();
                inputs.push(self.int_constant(&format!("{n}/starts"), &starts));
                inputs.push(self.int_constant(&format!("{n}/ends"), &ends));
                inputs.push(self.int_constant(&format!("{n}/axes"), &axes));
                inputs.push(self.int_constant(&format!("{n}/steps"), &steps));
                ("Slice", vec![])
            }
            Op::Concat { axis } => ("Concat", vec![int("axis", *axis as i64)]),
            Op::Softmax { axis, coerce_2d } => {
                // Over the last axis, both semantics agree.
                if !*coerce_2d || *axis + 1 == in_shape.len() {
                    ("Softmax", vec![int("axis", *axis as i64)])
                } else {
                    // Opset < 13 semantics: rows of the input flattened to 2-D at `axis`.
                    let shape = in_shape;
                    let rows: usize = shape[..*axis].iter().product();
                    let cols: usize = shape[*axis..].iter().product();
                    let flat_shape = self.int_constant(&format!("{}/flat_shape", node.name), &to_i64(&[rows, cols]));
                    let flat = self.fresh(&format!("{}/flat", node.name));
                    let soft = self.fresh(&format!("{}/rows", node.name));
                    let back = self.int_constant(&format!("{}/shape", node.name), &to_i64(&shape));
                    let x = inputs[0].clone();
                    self.nodes.push(make_node(
                        "Reshape",
                        &format!("{}/flatten", node.name),
                        vec![x, flat_shape],
                        flat.clone(),
                        vec![],
                    ));
                    self.nodes.push(make_node("Softmax", &node.name, vec![flat], soft.clone(), vec![int("axis", 1)]));
                    self.nodes.push(make_node(
                        "Reshape",
                        &format!("{}/unflatten", node.name),
                        vec![soft, back],
                        output,
                        vec![],
                    ));
                    return Ok(());
                }
            }
        };
        self.nodes.push(make_node(op_type, &node.name, inputs, output, attrs));
        Ok(())
    }
}

/// The attributes of a pooling window, with or without `dilations`.
fn pool_attrs(p: &PoolAttrs, dilations: bool) -> Vec<AttributeProto> {
    let mut attrs = vec![
        ints("kernel_shape", &p.kernel),
        ints("strides", &p.strides),
        ints("pads", &[p.pads_begin.as_slice(), p.pads_end.as_slice()].concat()),
        int("ceil_mode", i64::from(p.ceil_mode)),
    ];
    if dilations {
        attrs.push(ints("dilations", &p.dilations));
    }
    attrs
}

/// ONNX `starts`/`ends` selecting exactly `r` on an axis of size `dim` (the importer's inverse).
fn slice_bounds(r: &SliceRange, dim: usize) -> Result<(i64, i64), String> {
    if r.step == 0 {
        return Err("step 0".into());
    }
    if r.len == 0 {
        return Ok((0, 0));
    }
    let (start, len, step) = (r.start as i64, r.len as i64, r.step as i64);
    let last = start + (len - 1) * step;
    if r.start >= dim || last < 0 || last >= dim as i64 {
        return Err(format!("range {r:?} is out of bounds for an axis of {dim}"));
    }
    // One past the last selected element; for a backward slice ending at index 0 that is "before the
    // beginning", which ONNX spells as an index below -dim (an end of -1 would mean the last element).
    let end = last + step.signum();
    let end = if end < 0 { -(dim as i64) - 1 } else { end };
    Ok((start, end))
}

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn make_node(op: &str, name: &str, input: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input,
        output: vec![output],
        name: Some(name.to_string()),
        op_type: Some(op.to_string()),
        domain: Some(String::new()),
        attribute,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: to_i64(v),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A float32 initializer with little-endian `raw_data`, in row-major order.
fn float_tensor(name: &str, a: &ArrayD<f32>) -> TensorProto {
    TensorProto {
        dims: a.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        name: Some(name.to_string()),
        raw_data: Some(a.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A float32 tensor's `ValueInfoProto` with a static shape.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), denotation: None })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_bounds_invert_the_importer() {
        for dim in 1..6usize {
            for step in [-3isize, -2, -1, 1, 2, 3] {
                for start in 0..dim {
                    let max_len =
                        if step > 0 { (dim - start).div_ceil(step as usize) } else { start / (-step) as usize + 1 };
                    for len in 0..=max_len {
                        let r = SliceRange { start, step, len };
                        let (s, e) = slice_bounds(&r, dim).expect("in bounds");
                        let back = crate::onnx::fold::slice_ranges(&[dim], &[s], &[e], None, Some(&[step as i64]))
                            .expect("importer accepts");
                        let want = if len == 0 { SliceRange { start: 0, ..r } } else { r };
                        assert_eq!(back[0], want, "dim {dim}, range {r:?} -> ({s}, {e})");
                    }
                }
            }
        }
        assert!(slice_bounds(&SliceRange { start: 3, step: 1, len: 2 }, 4).is_err());
    }

    #[test]
    fn opsets_outside_the_supported_range_are_errors() {
        assert!(matches!(export_proto(&Graph::default(), 12), Err(ExportError::Opset(12))));
        assert!(matches!(export_proto(&Graph::default(), 22), Err(ExportError::Opset(22))));
        assert!(export_proto(&Graph::default(), DEFAULT_OPSET).is_ok());
    }
}
