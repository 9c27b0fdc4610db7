//! Turning a decoded `ModelProto` into a [`Graph`]: resolving static shapes, folding constants (the
//! `Shape → Gather → Unsqueeze → Concat → Reshape` chains exporters emit, `Constant`, `ConstantOfShape`,
//! `Cast`, pads and slice bounds), folding BatchNormalization into the preceding convolution, and parsing
//! each supported operator's attributes into an [`Op`].

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};

use super::fold;
use super::proto::tensor_proto::DataType;
use super::proto::{type_proto, AttributeProto, ModelProto, NodeProto};
use super::tensor::{dtype_name, tensor_from_proto, ConstTensor};
use crate::error::ImportError;
use crate::graph::{ConvAttrs, Graph, Node, Op, PoolAttrs, ValueId};

/// Options of the import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The size given to a symbolic (named or missing) batch dimension (axis 0) of the graph inputs.
    /// Concrete input dimensions are kept as the model states them.
    pub batch: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { batch: 1 }
    }
}

/// A name of the ONNX graph during import: a constant (folded or not yet needed at runtime) or a value of
/// the IR graph.
#[derive(Debug, Clone)]
enum Sym {
    Const(ConstTensor),
    Val(ValueId),
}

/// Imports a decoded model. See [`crate::onnx`] for what is supported.
pub fn import_model(model: &ModelProto, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let g = model.graph.as_ref().ok_or_else(|| ImportError::Invalid("the model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or_else(|| ImportError::Invalid("the model imports no version of the default ONNX opset".into()))?;

    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &g.output {
        *uses.entry(o.name()).or_default() += 1;
    }

    let mut imp = Importer { graph: Graph::default(), env: HashMap::new(), materialized: HashMap::new(), opset };
    for t in &g.initializer {
        let name = t.name().to_string();
        let c = tensor_from_proto(t, &format!("initializer '{name}'"))?;
        imp.env.insert(name, Sym::Const(c));
    }
    for vi in &g.input {
        let name = vi.name();
        if imp.env.contains_key(name) {
            continue; // an input with an initializer (IR < 4 style): treated as the constant it defaults to
        }
        let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(tt)) => tt,
            _ => return Err(ImportError::Invalid(format!("input '{name}' is not a tensor"))),
        };
        let et = tt.elem_type.unwrap_or(0);
        if et != DataType::Float as i32 {
            return Err(ImportError::UnsupportedDataType { context: format!("input '{name}'"), dtype: dtype_name(et) });
        }
        let dims = &tt.shape.as_ref().ok_or_else(|| ImportError::Invalid(format!("input '{name}' has no shape")))?.dim;
        let mut shape = Vec::with_capacity(dims.len());
        for (axis, d) in dims.iter().enumerate() {
            use super::proto::tensor_shape_proto::dimension::Value as D;
            match &d.value {
                Some(D::DimValue(v)) if *v >= 0 => shape.push(*v as usize),
                _ if axis == 0 => shape.push(opts.batch),
                other => {
                    return Err(ImportError::Invalid(format!(
                        "input '{name}' has dimension {other:?} on axis {axis}; only the batch axis may be symbolic"
                    )))
                }
            }
        }
        let id = imp.graph.add_value(name, shape, None);
        imp.graph.inputs.push(id);
        imp.env.insert(name.to_string(), Sym::Val(id));
    }

    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for (index, node) in g.node.iter().enumerate() {
        let name = match node.name() {
            "" => format!("#{index}"),
            n => n.to_string(),
        };
        let cx = Ctx { node, name, op: node.op_type().to_string() };
        let domain = node.domain();
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(ImportError::UnsupportedOp { node: cx.name, op: cx.op, domain: domain.to_string() });
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        for i in &node.input {
            if i.is_empty() {
                inputs.push(None);
            } else {
                let s = imp.env.get(i).ok_or_else(|| {
                    ImportError::Invalid(format!("node '{}' uses '{i}', which is not defined before it", cx.name))
                })?;
                inputs.push(Some(s.clone()));
            }
        }
        let before = imp.graph.nodes.len();
        let result = imp.node(&cx, &inputs, &uses, &producer)?;
        let out_name = node.output.first().ok_or_else(|| cx.bad("has no output"))?;
        if let Sym::Val(id) = result {
            if imp.graph.nodes.len() > before {
                producer.insert(id, imp.graph.nodes.len() - 1);
            }
        }
        imp.env.insert(out_name.clone(), result);
    }

    for o in &g.output {
        let name = o.name();
        let sym = imp
            .env
            .get(name)
            .cloned()
            .ok_or_else(|| ImportError::Invalid(format!("graph output '{name}' is not produced by any node")))?;
        let id = imp.value_of(&sym, name, &format!("graph output '{name}'"))?;
        imp.graph.outputs.push(id);
    }
    Ok(imp.graph)
}

/// The node being imported, for attribute access and error messages.
struct Ctx<'a> {
    node: &'a NodeProto,
    name: String,
    op: String,
}

impl Ctx<'_> {
    fn unsupported(&self, what: impl Into<String>) -> ImportError {
        ImportError::Unsupported { node: self.name.clone(), op: self.op.clone(), what: what.into() }
    }
    fn bad(&self, detail: impl Into<String>) -> ImportError {
        ImportError::BadNode { node: self.name.clone(), op: self.op.clone(), detail: detail.into() }
    }
    /// Refuses any attribute not in `known`: an attribute we ignore could change the result.
    fn check_attrs(&self, known: &[&str]) -> Result<(), ImportError> {
        match self.node.attribute.iter().find(|a| !known.contains(&a.name())) {
            Some(a) => Err(self.unsupported(format!("attribute '{}'", a.name()))),
            None => Ok(()),
        }
    }
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.attr(name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
    }
    /// Non-negative integers of an attribute, with a default if absent.
    fn usizes(&self, name: &str, default: Vec<usize>) -> Result<Vec<usize>, ImportError> {
        match self.ints(name) {
            None => Ok(default),
            Some(v) => v
                .iter()
                .map(|&x| usize::try_from(x).map_err(|_| self.unsupported(format!("{name} = {v:?} (negative)"))))
                .collect(),
        }
    }
    /// Accepts only a single output (the ones that exist for training or indices are not supported).
    fn single_output(&self) -> Result<(), ImportError> {
        if self.node.output.iter().filter(|o| !o.is_empty()).count() > 1 {
            return Err(self.unsupported(format!("{} outputs (only the first is supported)", self.node.output.len())));
        }
        Ok(())
    }
}

struct Importer {
    graph: Graph,
    env: HashMap<String, Sym>,
    materialized: HashMap<String, ValueId>,
    opset: i64,
}

fn i64s(c: &ConstTensor, cx: &Ctx, what: &str) -> Result<Vec<i64>, ImportError> {
    match c {
        ConstTensor::I64(a) => Ok(a.iter().copied().collect()),
        ConstTensor::F32(_) => Err(cx.bad(format!("{what} must be an integer tensor"))),
    }
}

fn scalar_f32(c: &ConstTensor, cx: &Ctx, what: &str) -> Result<f32, ImportError> {
    match c {
        ConstTensor::F32(a) if a.len() == 1 => Ok(a.iter().copied().next().unwrap_or_default()),
        _ => Err(cx.unsupported(format!(
            "{what} of type {} and shape {:?} (a float scalar is needed)",
            c.dtype_name(),
            c.shape()
        ))),
    }
}

/// Applies a shape-generic function to either kind of constant.
macro_rules! map_const {
    ($c:expr, |$a:ident| $e:expr) => {
        match $c {
            ConstTensor::F32($a) => ConstTensor::F32($e),
            ConstTensor::I64($a) => ConstTensor::I64($e),
        }
    };
}

impl Importer {
    fn shape_of(&self, s: &Sym) -> Vec<usize> {
        match s {
            Sym::Const(c) => c.shape().to_vec(),
            Sym::Val(id) => self.graph.values[*id].shape.clone(),
        }
    }

    /// The IR value of a name, turning a float constant into a constant value (once per name).
    fn value_of(&mut self, s: &Sym, name: &str, context: &str) -> Result<ValueId, ImportError> {
        match s {
            Sym::Val(id) => Ok(*id),
            Sym::Const(ConstTensor::F32(a)) => {
                if let Some(&id) = self.materialized.get(name) {
                    return Ok(id);
                }
                let id = self.graph.add_value(name, a.shape().to_vec(), Some(a.clone()));
                self.materialized.insert(name.to_string(), id);
                Ok(id)
            }
            Sym::Const(c) => Err(ImportError::UnsupportedDataType {
                context: format!("{context}: integer tensor '{name}' used as runtime data"),
                dtype: c.dtype_name().into(),
            }),
        }
    }

    /// Adds a runtime node, computing and checking its output shape.
    fn emit(&mut self, cx: &Ctx, op: Op, inputs: Vec<ValueId>) -> Result<Sym, ImportError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| self.graph.values[i].shape.as_slice()).collect();
        let shape = op.output_shape(&shapes).map_err(|e| cx.bad(e))?;
        let out_name = cx.node.output.first().cloned().unwrap_or_else(|| cx.name.clone());
        let output = self.graph.add_value(out_name, shape, None);
        self.graph.nodes.push(Node { name: cx.name.clone(), op, inputs, output });
        Ok(Sym::Val(output))
    }

    fn node(
        &mut self,
        cx: &Ctx,
        inputs: &[Option<Sym>],
        uses: &HashMap<&str, usize>,
        producer: &HashMap<ValueId, usize>,
    ) -> Result<Sym, ImportError> {
        let opset = self.opset;
        let names = &cx.node.input;
        // Required input `i`.
        let req = |i: usize| -> Result<&Sym, ImportError> {
            inputs.get(i).and_then(|s| s.as_ref()).ok_or_else(|| cx.bad(format!("missing input {i}")))
        };
        // Constant input `i` (None if absent), an error if it is only known at runtime.
        let konst = |i: usize| -> Result<Option<&ConstTensor>, ImportError> {
            match inputs.get(i) {
                None | Some(None) => Ok(None),
                Some(Some(Sym::Const(c))) => Ok(Some(c)),
                Some(Some(Sym::Val(_))) => Err(cx.unsupported(format!(
                    "input '{}' (position {i}) computed at runtime; it must be a constant",
                    names[i]
                ))),
            }
        };
        let all_const = inputs.iter().flatten().all(|s| matches!(s, Sym::Const(_)));
        cx.single_output()?;
        match cx.op.as_str() {
            "Constant" => {
                cx.check_attrs(&["value", "value_float", "value_floats", "value_int", "value_ints"])?;
                let a = cx.node.attribute.first().ok_or_else(|| cx.bad("has no value"))?;
                let c = match a.name() {
                    "value" => {
                        tensor_from_proto(a.t.as_ref().ok_or_else(|| cx.bad("value is not a tensor"))?, &cx.name)?
                    }
                    "value_float" => ConstTensor::F32(ArrayD::from_elem(IxDyn(&[]), a.f.unwrap_or_default())),
                    "value_floats" => ConstTensor::F32(ndarray::Array1::from(a.floats.clone()).into_dyn()),
                    "value_int" => ConstTensor::I64(ArrayD::from_elem(IxDyn(&[]), a.i.unwrap_or_default())),
                    _ => ConstTensor::I64(ndarray::Array1::from(a.ints.clone()).into_dyn()),
                };
                Ok(Sym::Const(c))
            }
            "Identity" | "Dropout" => {
                cx.check_attrs(&["ratio", "seed", "is_test"])?;
                if cx.op == "Dropout" && inputs.iter().skip(2).flatten().next().is_some() {
                    if let Some(ConstTensor::I64(t)) = konst(2)? {
                        if t.iter().any(|&v| v != 0) {
                            return Err(cx.unsupported("training_mode = true"));
                        }
                    } else {
                        return Err(cx.unsupported("training_mode input that is not a constant false"));
                    }
                }
                Ok(req(0)?.clone())
            }
            "Shape" => {
                cx.check_attrs(&["start", "end"])?;
                let shape = self.shape_of(req(0)?);
                let r = shape.len() as i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (clampi(cx.int("start", 0)), clampi(cx.int("end", r)));
                let dims: Vec<i64> = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
                Ok(Sym::Const(ConstTensor::I64(ndarray::Array1::from(dims).into_dyn())))
            }
            "ConstantOfShape" => {
                cx.check_attrs(&["value"])?;
                let shape = konst(0)?.ok_or_else(|| cx.bad("missing shape"))?;
                let shape: Vec<usize> = i64s(shape, cx, "shape")?
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| cx.bad("negative dimension")))
                    .collect::<Result<_, _>>()?;
                let value = match cx.attr("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_from_proto(t, &cx.name)?,
                    None => ConstTensor::F32(ArrayD::zeros(IxDyn(&[1]))),
                };
                Ok(Sym::Const(match value {
                    ConstTensor::F32(v) => {
                        ConstTensor::F32(ArrayD::from_elem(IxDyn(&shape), v.iter().copied().next().unwrap_or(0.0)))
                    }
                    ConstTensor::I64(v) => {
                        ConstTensor::I64(ArrayD::from_elem(IxDyn(&shape), v.iter().copied().next().unwrap_or(0)))
                    }
                }))
            }
            "Cast" => {
                cx.check_attrs(&["to", "saturate", "round_mode"])?;
                let to = cx.int("to", 0) as i32;
                match req(0)? {
                    Sym::Val(id) if to == DataType::Float as i32 => Ok(Sym::Val(*id)),
                    Sym::Val(_) => Err(cx.unsupported(format!("cast of runtime data to {}", dtype_name(to)))),
                    Sym::Const(c) => {
                        if to == DataType::Float as i32 {
                            Ok(Sym::Const(ConstTensor::F32(match c {
                                ConstTensor::F32(a) => a.clone(),
                                ConstTensor::I64(a) => a.mapv(|v| v as f32),
                            })))
                        } else if to == DataType::Int64 as i32 || to == DataType::Int32 as i32 {
                            Ok(Sym::Const(ConstTensor::I64(match c {
                                ConstTensor::F32(a) => a.mapv(|v| v as i64),
                                ConstTensor::I64(a) => a.clone(),
                            })))
                        } else {
                            Err(cx.unsupported(format!("cast to {}", dtype_name(to))))
                        }
                    }
                }
            }
            "Gather" => {
                cx.check_attrs(&["axis"])?;
                let data = konst(0)?.ok_or_else(|| cx.bad("missing data"))?;
                let idx = konst(1)?.ok_or_else(|| cx.bad("missing indices"))?;
                let ConstTensor::I64(idx) = idx else { return Err(cx.bad("indices must be integers")) };
                let ax = fold::axis(cx.int("axis", 0), data.shape().len()).map_err(|e| cx.bad(e))?;
                Ok(Sym::Const(match data {
                    ConstTensor::F32(a) => ConstTensor::F32(fold::gather(a, idx, ax).map_err(|e| cx.bad(e))?),
                    ConstTensor::I64(a) => ConstTensor::I64(fold::gather(a, idx, ax).map_err(|e| cx.bad(e))?),
                }))
            }
            "Unsqueeze" | "Squeeze" | "Flatten" | "Reshape" => {
                let x = req(0)?.clone();
                let in_shape = self.shape_of(&x);
                let shape = match cx.op.as_str() {
                    "Flatten" => {
                        cx.check_attrs(&["axis"])?;
                        let r = in_shape.len() as i64;
                        let a = cx.int("axis", 1);
                        let a = if a < 0 { a + r } else { a };
                        if !(0..=r).contains(&a) {
                            return Err(cx.bad(format!("axis {a} out of range")));
                        }
                        let a = a as usize;
                        vec![in_shape[..a].iter().product(), in_shape[a..].iter().product()]
                    }
                    "Reshape" => {
                        cx.check_attrs(&["allowzero", "shape"])?;
                        let spec = if opset < 5 {
                            cx.ints("shape").ok_or_else(|| cx.bad("missing shape"))?
                        } else {
                            i64s(konst(1)?.ok_or_else(|| cx.bad("missing shape"))?, cx, "shape")?
                        };
                        fold::reshape_shape(&in_shape, &spec, cx.int("allowzero", 0) != 0).map_err(|e| cx.bad(e))?
                    }
                    op => {
                        cx.check_attrs(&["axes"])?;
                        let axes = if opset < 13 {
                            cx.ints("axes")
                        } else {
                            konst(1)?.map(|c| i64s(c, cx, "axes")).transpose()?
                        };
                        if op == "Unsqueeze" {
                            let axes = axes.ok_or_else(|| cx.bad("missing axes"))?;
                            let rank = in_shape.len() + axes.len();
                            let mut ax: Vec<usize> = axes
                                .iter()
                                .map(|&a| fold::axis(a, rank))
                                .collect::<Result<_, _>>()
                                .map_err(|e| cx.bad(e))?;
                            ax.sort_unstable();
                            if ax.windows(2).any(|w| w[0] == w[1]) {
                                return Err(cx.bad(format!("repeated axes {axes:?}")));
                            }
                            let mut it = in_shape.iter();
                            (0..rank).map(|i| if ax.contains(&i) { 1 } else { *it.next().unwrap_or(&1) }).collect()
                        } else {
                            let ax: Vec<usize> = match axes {
                                Some(a) => a
                                    .iter()
                                    .map(|&a| fold::axis(a, in_shape.len()))
                                    .collect::<Result<_, _>>()
                                    .map_err(|e| cx.bad(e))?,
                                None => (0..in_shape.len()).filter(|&i| in_shape[i] == 1).collect(),
                            };
                            if ax.iter().any(|&a| in_shape[a] != 1) {
                                return Err(cx.bad(format!("cannot squeeze axes {ax:?} of {in_shape:?}")));
                            }
                            in_shape.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, &d)| d).collect()
                        }
                    }
                };
                match x {
                    Sym::Const(c) => {
                        Ok(Sym::Const(map_const!(&c, |a| fold::reshape(a, &shape).map_err(|e| cx.bad(e))?)))
                    }
                    Sym::Val(id) => self.emit(cx, Op::Reshape { shape }, vec![id]),
                }
            }
            "Transpose" => {
                cx.check_attrs(&["perm"])?;
                let x = req(0)?.clone();
                let rank = self.shape_of(&x).len();
                let perm = cx.usizes("perm", (0..rank).rev().collect())?;
                match x {
                    Sym::Const(c) => {
                        Op::Transpose { perm: perm.clone() }.output_shape(&[c.shape()]).map_err(|e| cx.bad(e))?;
                        Ok(Sym::Const(map_const!(&c, |a| fold::transpose(a, &perm))))
                    }
                    Sym::Val(id) => self.emit(cx, Op::Transpose { perm }, vec![id]),
                }
            }
            "Slice" => {
                cx.check_attrs(if opset < 10 { &["starts", "ends", "axes"] } else { &[] })?;
                let x = req(0)?.clone();
                let shape = self.shape_of(&x);
                let ranges = if opset < 10 {
                    let s = cx.ints("starts").ok_or_else(|| cx.bad("missing starts"))?;
                    let e = cx.ints("ends").ok_or_else(|| cx.bad("missing ends"))?;
                    fold::slice_ranges(&shape, &s, &e, cx.ints("axes").as_deref(), None)
                } else {
                    let get = |i: usize, what: &str| konst(i)?.map(|c| i64s(c, cx, what)).transpose();
                    let s = get(1, "starts")?.ok_or_else(|| cx.bad("missing starts"))?;
                    let e = get(2, "ends")?.ok_or_else(|| cx.bad("missing ends"))?;
                    fold::slice_ranges(&shape, &s, &e, get(3, "axes")?.as_deref(), get(4, "steps")?.as_deref())
                }
                .map_err(|e| cx.bad(e))?;
                match x {
                    Sym::Const(c) => Ok(Sym::Const(map_const!(&c, |a| fold::slice(a, &ranges)))),
                    Sym::Val(id) => self.emit(cx, Op::Slice { ranges }, vec![id]),
                }
            }
            "Concat" => {
                cx.check_attrs(&["axis"])?;
                let syms: Vec<&Sym> = inputs.iter().flatten().collect();
                let first = syms.first().ok_or_else(|| cx.bad("no inputs"))?;
                let rank = self.shape_of(first).len();
                let axis = fold::axis(cx.attr("axis").and_then(|a| a.i).ok_or_else(|| cx.bad("missing axis"))?, rank)
                    .map_err(|e| cx.bad(e))?;
                if all_const {
                    let consts: Vec<&ConstTensor> =
                        syms.iter().filter_map(|s| if let Sym::Const(c) = s { Some(c) } else { None }).collect();
                    let shapes: Vec<&[usize]> = consts.iter().map(|c| c.shape()).collect();
                    Op::Concat { axis }.output_shape(&shapes).map_err(|e| cx.bad(e))?;
                    if let Some(f) = consts
                        .iter()
                        .map(|c| if let ConstTensor::F32(a) = c { Some(a) } else { None })
                        .collect::<Option<Vec<_>>>()
                    {
                        return Ok(Sym::Const(ConstTensor::F32(fold::concat(&f, axis).map_err(|e| cx.bad(e))?)));
                    }
                    if let Some(i) = consts
                        .iter()
                        .map(|c| if let ConstTensor::I64(a) = c { Some(a) } else { None })
                        .collect::<Option<Vec<_>>>()
                    {
                        return Ok(Sym::Const(ConstTensor::I64(fold::concat(&i, axis).map_err(|e| cx.bad(e))?)));
                    }
                    return Err(cx.unsupported("concatenation of float and integer tensors"));
                }
                let mut ids = Vec::new();
                for (i, s) in inputs.iter().enumerate() {
                    if let Some(s) = s {
                        ids.push(self.value_of(s, &names[i], &cx.name)?);
                    }
                }
                self.emit(cx, Op::Concat { axis }, ids)
            }
            "Relu" => {
                cx.check_attrs(&[])?;
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, Op::Relu, vec![x])
            }
            "Clip" => {
                let (min, max) = if opset < 11 {
                    cx.check_attrs(&["min", "max"])?;
                    (cx.float("min", f32::NEG_INFINITY), cx.float("max", f32::INFINITY))
                } else {
                    cx.check_attrs(&[])?;
                    let min = konst(1)?.map(|c| scalar_f32(c, cx, "min")).transpose()?;
                    let max = konst(2)?.map(|c| scalar_f32(c, cx, "max")).transpose()?;
                    (min.unwrap_or(f32::NEG_INFINITY), max.unwrap_or(f32::INFINITY))
                };
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, Op::Clip { min, max }, vec![x])
            }
            "Add" | "Sum" => {
                cx.check_attrs(&["broadcast", "axis"])?;
                if cx.attr("axis").is_some() {
                    return Err(cx.unsupported("legacy broadcast with 'axis'"));
                }
                let syms: Vec<(usize, &Sym)> =
                    inputs.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s))).collect();
                if cx.op == "Add" && syms.len() != 2 {
                    return Err(cx.bad("Add needs two inputs"));
                }
                if let [(_, Sym::Const(ConstTensor::I64(a))), (_, Sym::Const(ConstTensor::I64(b)))] = syms.as_slice() {
                    let shape = crate::graph::broadcast_shapes(a.shape(), b.shape()).map_err(|e| cx.bad(e))?;
                    let (a, b) = (a.broadcast(IxDyn(&shape)), b.broadcast(IxDyn(&shape)));
                    if let (Some(a), Some(b)) = (a, b) {
                        return Ok(Sym::Const(ConstTensor::I64(&a + &b)));
                    }
                }
                let (first, rest) = syms.split_first().ok_or_else(|| cx.bad("no inputs"))?;
                let mut acc = self.value_of(first.1, &names[first.0], &cx.name)?;
                if rest.is_empty() {
                    return Ok(Sym::Val(acc));
                }
                let mut out = Sym::Val(acc);
                for (k, (i, s)) in rest.iter().enumerate() {
                    let v = self.value_of(s, &names[*i], &cx.name)?;
                    let sub = Ctx {
                        node: cx.node,
                        name: if k == 0 { cx.name.clone() } else { format!("{}/{k}", cx.name) },
                        op: cx.op.clone(),
                    };
                    out = self.emit(&sub, Op::Add, vec![acc, v])?;
                    if let Sym::Val(id) = out {
                        acc = id;
                    }
                }
                Ok(out)
            }
            "Conv" => {
                cx.check_attrs(&["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])?;
                let w_shape = self.shape_of(req(1)?);
                let sr = w_shape.len().saturating_sub(2);
                if !(1..=2).contains(&sr) {
                    return Err(cx.unsupported(format!(
                        "convolution with {sr} spatial axes (weight {w_shape:?}); 1-D and 2-D are supported"
                    )));
                }
                let kernel = cx.usizes("kernel_shape", w_shape[2..].to_vec())?;
                let x_shape = self.shape_of(req(0)?);
                let (strides, dilations, pads_begin, pads_end) = self.window(cx, &x_shape, &kernel)?;
                let group = usize::try_from(cx.int("group", 1)).map_err(|_| cx.unsupported("negative group"))?;
                let mut ids = Vec::new();
                for (i, s) in inputs.iter().enumerate().take(3) {
                    if let Some(s) = s {
                        ids.push(self.value_of(s, &names[i], &cx.name)?);
                    }
                }
                self.emit(cx, Op::Conv(ConvAttrs { kernel, strides, dilations, pads_begin, pads_end, group }), ids)
            }
            "MaxPool" | "AveragePool" => {
                cx.check_attrs(&[
                    "auto_pad",
                    "ceil_mode",
                    "count_include_pad",
                    "dilations",
                    "kernel_shape",
                    "pads",
                    "strides",
                    "storage_order",
                ])?;
                if cx.int("storage_order", 0) != 0 {
                    return Err(cx.unsupported("storage_order = 1"));
                }
                let x_shape = self.shape_of(req(0)?);
                let kernel = cx.usizes("kernel_shape", vec![])?;
                if !(1..=2).contains(&kernel.len()) || kernel.len() + 2 != x_shape.len() {
                    return Err(cx.unsupported(format!(
                        "pooling with kernel {kernel:?} on input {x_shape:?}; 1-D and 2-D are supported"
                    )));
                }
                let (strides, dilations, pads_begin, pads_end) = self.window(cx, &x_shape, &kernel)?;
                let pool = PoolAttrs {
                    kernel,
                    strides,
                    dilations,
                    pads_begin,
                    pads_end,
                    ceil_mode: cx.int("ceil_mode", 0) != 0,
                };
                let op = if cx.op == "MaxPool" {
                    Op::MaxPool(pool)
                } else {
                    Op::AveragePool { pool, count_include_pad: cx.int("count_include_pad", 0) != 0 }
                };
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, op, vec![x])
            }
            "GlobalAveragePool" => {
                cx.check_attrs(&[])?;
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, Op::GlobalAveragePool, vec![x])
            }
            "BatchNormalization" => {
                cx.check_attrs(&["epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"])?;
                if cx.int("training_mode", 0) != 0 {
                    return Err(cx.unsupported("training_mode = 1"));
                }
                if cx.int("spatial", 1) != 1 {
                    return Err(cx.unsupported("spatial = 0"));
                }
                let epsilon = cx.float("epsilon", 1e-5);
                if let Some(folded) = self.fold_batchnorm(cx, inputs, epsilon, uses, producer)? {
                    return Ok(folded);
                }
                let mut ids = Vec::new();
                for (i, name) in names.iter().enumerate().take(5) {
                    ids.push(self.value_of(req(i)?, name, &cx.name)?);
                }
                if ids.len() != 5 {
                    return Err(cx.bad("needs 5 inputs"));
                }
                self.emit(cx, Op::BatchNorm { epsilon }, ids)
            }
            "Gemm" => {
                cx.check_attrs(&["alpha", "beta", "transA", "transB", "broadcast"])?;
                let mut ids = Vec::new();
                for (i, s) in inputs.iter().enumerate().take(3) {
                    if let Some(s) = s {
                        ids.push(self.value_of(s, &names[i], &cx.name)?);
                    }
                }
                let op = Op::Gemm {
                    alpha: cx.float("alpha", 1.0),
                    beta: cx.float("beta", 1.0),
                    trans_a: cx.int("transA", 0) != 0,
                    trans_b: cx.int("transB", 0) != 0,
                };
                self.emit(cx, op, ids)
            }
            "MatMul" => {
                cx.check_attrs(&[])?;
                let a = self.value_of(req(0)?, &names[0], &cx.name)?;
                let b = self.value_of(req(1)?, &names[1], &cx.name)?;
                self.emit(cx, Op::MatMul, vec![a, b])
            }
            "Pad" => {
                let x_shape = self.shape_of(req(0)?);
                let rank = x_shape.len();
                let (pads, value, axes) = if opset < 11 {
                    cx.check_attrs(&["mode", "pads", "paddings", "value"])?;
                    let pads = cx.ints("pads").or_else(|| cx.ints("paddings")).ok_or_else(|| cx.bad("missing pads"))?;
                    (pads, cx.float("value", 0.0), None)
                } else {
                    cx.check_attrs(&["mode"])?;
                    let pads = i64s(konst(1)?.ok_or_else(|| cx.bad("missing pads"))?, cx, "pads")?;
                    let value = konst(2)?.map(|c| scalar_f32(c, cx, "constant_value")).transpose()?.unwrap_or(0.0);
                    let axes = konst(3)?.map(|c| i64s(c, cx, "axes")).transpose()?;
                    (pads, value, axes)
                };
                let mode = cx.string("mode").unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(cx.unsupported(format!("mode = '{mode}' (only 'constant')")));
                }
                let axes: Vec<usize> = match axes {
                    Some(a) => {
                        a.iter().map(|&a| fold::axis(a, rank)).collect::<Result<_, _>>().map_err(|e| cx.bad(e))?
                    }
                    None => (0..rank).collect(),
                };
                if pads.len() != 2 * axes.len() {
                    return Err(cx.bad(format!("pads {pads:?} do not match {} axes", axes.len())));
                }
                if pads.iter().any(|&p| p < 0) {
                    return Err(cx.unsupported(format!("negative pads {pads:?}")));
                }
                let (mut pads_begin, mut pads_end) = (vec![0; rank], vec![0; rank]);
                for (k, &a) in axes.iter().enumerate() {
                    pads_begin[a] = pads[k] as usize;
                    pads_end[a] = pads[k + axes.len()] as usize;
                }
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, Op::Pad { pads_begin, pads_end, value }, vec![x])
            }
            "Softmax" => {
                cx.check_attrs(&["axis"])?;
                let rank = self.shape_of(req(0)?).len();
                let coerce_2d = opset < 13;
                let axis = fold::axis(cx.int("axis", if coerce_2d { 1 } else { -1 }), rank).map_err(|e| cx.bad(e))?;
                let x = self.value_of(req(0)?, &names[0], &cx.name)?;
                self.emit(cx, Op::Softmax { axis, coerce_2d }, vec![x])
            }
            _ => Err(ImportError::UnsupportedOp {
                node: cx.name.clone(),
                op: cx.op.clone(),
                domain: cx.node.domain().to_string(),
            }),
        }
    }

    /// Strides, dilations and begin/end pads of a convolution or pooling window, with `auto_pad` resolved.
    #[allow(clippy::type_complexity)]
    fn window(
        &self,
        cx: &Ctx,
        x_shape: &[usize],
        kernel: &[usize],
    ) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>), ImportError> {
        let sr = kernel.len();
        if x_shape.len() != sr + 2 {
            return Err(cx.bad(format!("input {x_shape:?} does not have {sr} spatial axes")));
        }
        let strides = cx.usizes("strides", vec![1; sr])?;
        let dilations = cx.usizes("dilations", vec![1; sr])?;
        let pads = cx.usizes("pads", vec![0; 2 * sr])?;
        if strides.len() != sr || dilations.len() != sr || pads.len() != 2 * sr {
            return Err(cx.bad(format!(
                "strides {strides:?}, dilations {dilations:?} or pads {pads:?} do not match {sr} spatial axes"
            )));
        }
        if strides.contains(&0) || dilations.contains(&0) {
            return Err(cx.bad("zero stride or dilation"));
        }
        let auto_pad = cx.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        let (mut begin, mut end) = (pads[..sr].to_vec(), pads[sr..].to_vec());
        match auto_pad.as_str() {
            "NOTSET" => {}
            "VALID" => {
                begin = vec![0; sr];
                end = vec![0; sr];
            }
            "SAME_UPPER" | "SAME_LOWER" => {
                for i in 0..sr {
                    let input = x_shape[2 + i];
                    let out = input.div_ceil(strides[i]);
                    let span = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + span).saturating_sub(input);
                    let small = total / 2;
                    (begin[i], end[i]) =
                        if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                }
            }
            other => return Err(cx.unsupported(format!("auto_pad = '{other}'"))),
        }
        Ok((strides, dilations, begin, end))
    }

    /// Folds an inference BatchNormalization into the convolution producing its input, if that convolution's
    /// output feeds only this node and all parameters are constants. Returns the convolution's (renamed)
    /// output, or `None` if the BN must stay a separate operator.
    fn fold_batchnorm(
        &mut self,
        cx: &Ctx,
        inputs: &[Option<Sym>],
        epsilon: f32,
        uses: &HashMap<&str, usize>,
        producer: &HashMap<ValueId, usize>,
    ) -> Result<Option<Sym>, ImportError> {
        let Some(Some(Sym::Val(x))) = inputs.first() else { return Ok(None) };
        let Some(&node_index) = producer.get(x) else { return Ok(None) };
        if uses.get(cx.node.input[0].as_str()).copied() != Some(1) {
            return Ok(None);
        }
        let mut params = Vec::new();
        for i in 1..5 {
            match inputs.get(i) {
                Some(Some(Sym::Const(ConstTensor::F32(a)))) if a.ndim() == 1 => params.push(a.clone()),
                _ => return Ok(None),
            }
        }
        let conv = &self.graph.nodes[node_index];
        if !matches!(conv.op, Op::Conv(_)) {
            return Ok(None);
        }
        let Some(w) = self.graph.values[conv.inputs[1]].constant.clone() else { return Ok(None) };
        let m = w.shape()[0];
        if params.iter().any(|p| p.len() != m) {
            return Err(cx.bad(format!("parameters do not match the {m} channels of the convolution")));
        }
        let bias = match conv.inputs.get(2) {
            Some(&b) => match &self.graph.values[b].constant {
                Some(b) => b.clone(),
                None => return Ok(None),
            },
            None => ArrayD::zeros(IxDyn(&[m])),
        };
        let (scale, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let s: Vec<f32> = (0..m).map(|c| scale[c] / (var[c] + epsilon).sqrt()).collect();
        let mut w2 = w;
        for (c, mut filter) in w2.outer_iter_mut().enumerate() {
            filter.mapv_inplace(|v| v * s[c]);
        }
        let b2 = ArrayD::from_shape_fn(IxDyn(&[m]), |i| (bias[i[0]] - mean[i[0]]) * s[i[0]] + beta[i[0]]);
        let base = self.graph.values[*x].name.clone();
        let w_id = self.graph.add_value(format!("{base}/folded_weight"), w2.shape().to_vec(), Some(w2));
        let b_id = self.graph.add_value(format!("{base}/folded_bias"), vec![m], Some(b2));
        let conv = &mut self.graph.nodes[node_index];
        conv.inputs.truncate(1);
        conv.inputs.extend([w_id, b_id]);
        if let Some(out) = cx.node.output.first() {
            self.graph.values[*x].name = out.clone();
        }
        Ok(Some(Sym::Val(*x)))
    }
}
