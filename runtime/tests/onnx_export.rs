//! ONNX export (`runtime::onnx::export`): import → export → import computes bit-identically on the real
//! models, onnxruntime accepts the exported models and agrees with the reference path, every operator of the
//! IR round-trips, and what ONNX cannot express is an error naming the node.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::graph::{ConvAttrs, Graph, Node, Op, PoolAttrs, SliceRange, ValueId};
use runtime::models::resnet50::resnet50_synthetic;
use runtime::onnx::export::{export_model, ExportError, DEFAULT_OPSET};
use runtime::onnx::{self, ImportOptions};
use runtime::reference;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.gen_range(-1.0f32..1.0))
}

fn random_inputs(g: &Graph, seed: u64) -> Vec<ArrayD<f32>> {
    g.inputs.iter().enumerate().map(|(k, &i)| random(&g.values[i].shape, seed + k as u64)).collect()
}

fn bits(outputs: &[ArrayD<f32>]) -> Vec<Vec<u32>> {
    outputs.iter().map(|a| a.iter().map(|v| v.to_bits()).collect()).collect()
}

/// Exports `g`, imports the bytes again, and checks that the new graph has the same operators and computes
/// bit-identically on a random input. Returns the bytes.
fn round_trip(what: &str, g: &Graph) -> Vec<u8> {
    let t = Instant::now();
    let bytes = export_model(g, DEFAULT_OPSET).unwrap_or_else(|e| panic!("{what}: export: {e}"));
    let back =
        onnx::import_bytes(&bytes, &ImportOptions::default()).unwrap_or_else(|e| panic!("{what}: re-import: {e}"));
    let ops = |g: &Graph| g.nodes.iter().map(|n| n.op.clone()).collect::<Vec<_>>();
    assert_eq!(ops(&back), ops(g), "{what}: operators differ after the round trip");
    let shapes = |g: &Graph, ids: &[ValueId]| ids.iter().map(|&i| g.values[i].shape.clone()).collect::<Vec<_>>();
    assert_eq!(shapes(&back, &back.inputs), shapes(g, &g.inputs));
    assert_eq!(shapes(&back, &back.outputs), shapes(g, &g.outputs));
    let x = random_inputs(g, 7);
    let want = reference::run(g, &x).unwrap_or_else(|e| panic!("{what}: run: {e}"));
    let got = reference::run(&back, &x).unwrap_or_else(|e| panic!("{what}: run re-imported: {e}"));
    assert!(bits(&got) == bits(&want), "{what}: outputs differ after the round trip");
    eprintln!("{what}: {} bytes, {} nodes, round trip bit-identical ({:?})", bytes.len(), g.nodes.len(), t.elapsed());
    bytes
}

#[test]
fn real_models_round_trip_bit_identically() {
    let Some(data) = common::data_dir() else { return };
    for (file, batch) in [("resnet20-cifar10.onnx", 2), ("efficientnet-lite0-imagenet.onnx", 1)] {
        let g = onnx::load(data.join(file), &ImportOptions { batch }).expect("import");
        round_trip(file, &g);
    }
}

/// Runs an ONNX model in onnxruntime after `onnx.checker.check_model(full_check=True)`: reads each input from
/// a raw little-endian f32 file (shapes from the model), writes output `i` to `<prefix><i>.raw`, prints the
/// number of outputs.
const ORT_RUN: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
model, prefix, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
onnx.checker.check_model(onnx.load(model), full_check=True)
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feed = {}
for i, path in zip(s.get_inputs(), inputs):
    feed[i.name] = np.fromfile(path, dtype="<f4").reshape(i.shape)
ys = s.run(None, feed)
for k, y in enumerate(ys):
    np.asarray(y, dtype="<f4").tofile(f"{prefix}{k}.raw")
print(len(ys))
"#;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("systole-export-{}-{name}", std::process::id()))
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read raw")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Exports `g`, runs it in onnxruntime on a random input and returns the largest relative error of its
/// outputs against the reference path (`|a − b| / max(|b|, 1e-2·peak)`, as the EfficientNet test measures),
/// or `None` if python/onnxruntime are not available.
fn onnxruntime_error(what: &str, g: &Graph, bytes: &[u8]) -> Option<f32> {
    let model = temp(&format!("{what}.onnx"));
    std::fs::write(&model, bytes).expect("write model");
    let x = random_inputs(g, 11);
    let mut paths = Vec::new();
    for (k, a) in x.iter().enumerate() {
        let p = temp(&format!("{what}-x{k}.raw"));
        std::fs::write(&p, a.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write input");
        paths.push(p.to_string_lossy().into_owned());
    }
    let prefix = temp(&format!("{what}-y")).to_string_lossy().into_owned();
    let mut args = vec![model.to_string_lossy().into_owned(), prefix.clone()];
    args.extend(paths.iter().cloned());
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let t = Instant::now();
    let count = common::python(ORT_RUN, &args);
    let ort_time = t.elapsed();
    let _ = std::fs::remove_file(&model);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    let count: usize = count?.parse().expect("output count");
    let t = Instant::now();
    let want = reference::run(g, &x).expect("reference run");
    let ref_time = t.elapsed();
    assert_eq!(count, want.len(), "{what}: number of outputs");
    let mut worst = 0.0f32;
    for (k, w) in want.iter().enumerate() {
        let path = PathBuf::from(format!("{prefix}{k}.raw"));
        let ort = read_f32(&path);
        let _ = std::fs::remove_file(&path);
        let ours: Vec<f32> = w.iter().copied().collect();
        assert_eq!(ort.len(), ours.len(), "{what}: size of output {k}");
        let peak = ort.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let rel = common::max_rel_err(&ours, &ort, (1e-2 * peak).max(f32::MIN_POSITIVE));
        eprintln!("{what}: output {k} {:?}: max rel err vs onnxruntime {rel:e} (peak {peak})", w.shape());
        worst = worst.max(rel);
    }
    eprintln!("{what}: onnxruntime {ort_time:?} (incl. python start and checker), reference {ref_time:?}");
    Some(worst)
}

#[test]
fn onnxruntime_runs_exported_models() {
    if let Some(data) = common::data_dir() {
        let g = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: 2 }).expect("import");
        let bytes = export_model(&g, DEFAULT_OPSET).expect("export");
        if let Some(rel) = onnxruntime_error("resnet20", &g, &bytes) {
            assert!(rel <= 1e-4, "resnet20: max relative error {rel}");
        }
    }
    let t = Instant::now();
    let g = resnet50_synthetic(0, 1).expect("build");
    let bytes = export_model(&g, DEFAULT_OPSET).expect("export");
    eprintln!("resnet50: built and exported {} bytes in {:?}", bytes.len(), t.elapsed());
    if let Some(rel) = onnxruntime_error("resnet50", &g, &bytes) {
        assert!(rel <= 1e-4, "resnet50: max relative error {rel}");
    }
}

/// Adds a node to a hand-built graph, with its output shape computed by the IR.
fn add(g: &mut Graph, name: &str, op: Op, inputs: Vec<ValueId>) -> ValueId {
    let shapes: Vec<&[usize]> = inputs.iter().map(|&i| g.values[i].shape.as_slice()).collect();
    let shape = op.output_shape(&shapes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let output = g.add_value(name, shape, None);
    g.nodes.push(Node { name: name.into(), op, inputs, output });
    output
}

fn constant(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueId {
    g.add_value(name, shape.to_vec(), Some(random(shape, seed)))
}

fn pool(kernel: usize, stride: usize, pad: usize, dilation: usize, ceil_mode: bool) -> PoolAttrs {
    PoolAttrs {
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        dilations: vec![dilation; 2],
        pads_begin: vec![pad; 2],
        pads_end: vec![pad; 2],
        ceil_mode,
    }
}

/// A small graph using every operator of the IR, with awkward attributes: unfolded BatchNorm, grouped and
/// dilated convolution, one-sided Clip bounds, ceil-mode pooling, asymmetric Pad, backward Slice, transposed
/// Gemm, both Softmax semantics, a second input and an input passed straight through as an output.
fn every_op_graph() -> Graph {
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 4, 8, 8], None);
    let y = g.add_value("y", vec![4, 7], None);
    g.inputs = vec![x, y];
    let bn: Vec<ValueId> = (0..4).map(|k| constant(&mut g, &format!("bn.p{k}"), &[4], 100 + k)).collect();
    let var = g.add_value("bn.var", vec![4], Some(ArrayD::from_elem(IxDyn(&[4]), 0.7)));
    let h = add(&mut g, "bn", Op::BatchNorm { epsilon: 1e-3 }, vec![x, bn[0], bn[1], bn[2], var]);
    let h = add(&mut g, "relu", Op::Relu, vec![h]);
    let (w, b) = (constant(&mut g, "conv.w", &[6, 2, 3, 3], 1), constant(&mut g, "conv.b", &[6], 2));
    let conv = ConvAttrs {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![2, 2],
        pads_begin: vec![2, 1],
        pads_end: vec![2, 3],
        group: 2,
    };
    let c = add(&mut g, "conv", Op::Conv(conv), vec![h, w, b]);
    let c = add(&mut g, "relu6", Op::Clip { min: 0.0, max: 6.0 }, vec![c]);
    let c = add(&mut g, "floor", Op::Clip { min: -0.25, max: f32::INFINITY }, vec![c]);
    let c = add(&mut g, "ceiling", Op::Clip { min: f32::NEG_INFINITY, max: 1.5 }, vec![c]);
    let m = add(&mut g, "maxpool", Op::MaxPool(pool(3, 2, 0, 1, true)), vec![c]);
    let a =
        add(&mut g, "avgpool", Op::AveragePool { pool: pool(3, 2, 1, 1, false), count_include_pad: false }, vec![c]);
    let s = add(&mut g, "sum", Op::Add, vec![m, a]);
    let p =
        add(&mut g, "pad", Op::Pad { pads_begin: vec![0, 0, 1, 0], pads_end: vec![0, 1, 0, 2], value: 0.5 }, vec![s]);
    let ranges = vec![
        SliceRange { start: 0, step: 1, len: 1 },
        SliceRange { start: 6, step: -2, len: 4 },
        SliceRange { start: 4, step: -1, len: 5 },
        SliceRange { start: 1, step: 2, len: 3 },
    ];
    let sl = add(&mut g, "slice", Op::Slice { ranges }, vec![p]);
    let cat = add(&mut g, "concat", Op::Concat { axis: 1 }, vec![sl, sl]);
    let t = add(&mut g, "transpose", Op::Transpose { perm: vec![0, 2, 3, 1] }, vec![cat]);
    let r = add(&mut g, "reshape", Op::Reshape { shape: vec![15, 8] }, vec![t]);
    let mw = constant(&mut g, "matmul.w", &[8, 4], 3);
    let mm = add(&mut g, "matmul", Op::MatMul, vec![r, mw]);
    let (gb, gc) = (constant(&mut g, "gemm.b", &[15, 7], 4), constant(&mut g, "gemm.c", &[7], 5));
    let gemm = Op::Gemm { alpha: 0.5, beta: 2.0, trans_a: true, trans_b: false };
    let ge = add(&mut g, "gemm", gemm, vec![mm, gb, gc]);
    let ge = add(&mut g, "plus_y", Op::Add, vec![ge, y]);
    let sm = add(&mut g, "softmax", Op::Softmax { axis: 1, coerce_2d: false }, vec![ge]);
    let gap = add(&mut g, "gap", Op::GlobalAveragePool, vec![s]);
    let r3 = add(&mut g, "to3d", Op::Reshape { shape: vec![1, 6, 1] }, vec![gap]);
    let old = add(&mut g, "softmax_v12", Op::Softmax { axis: 1, coerce_2d: true }, vec![r3]);
    g.outputs = vec![sm, old, gap, y];
    g
}

#[test]
fn every_operator_exports_and_runs_in_onnxruntime() {
    let g = every_op_graph();
    let names: std::collections::HashSet<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(names.len(), 16, "the graph covers every operator of the IR: {names:?}");
    let bytes = export_model(&g, DEFAULT_OPSET).expect("export");
    let back = onnx::import_bytes(&bytes, &ImportOptions::default()).expect("re-import");
    // The opset-12 softmax over the middle axis becomes Reshape, Softmax, Reshape; everything else is 1:1.
    let ops = |g: &Graph| g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>();
    let mut want = ops(&g);
    let at = want.len() - 1;
    want.splice(at..=at, ["Reshape", "Softmax", "Reshape"]);
    assert_eq!(ops(&back), want);
    let x = random_inputs(&g, 3);
    let a = reference::run(&g, &x).expect("run");
    let b = reference::run(&back, &x).expect("run re-imported");
    assert_eq!(a.len(), 4);
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a.shape(), b.shape());
        let err = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(err <= 1e-6, "output {k}: max abs difference {err}");
    }
    assert_eq!(a[3], x[1], "an input passed through as an output");
    if let Some(rel) = onnxruntime_error("every-op", &g, &bytes) {
        assert!(rel <= 1e-4, "max relative error {rel}");
    }
}

#[test]
fn inexpressible_nodes_are_errors_naming_the_node() {
    // AveragePool has dilations only from opset 19.
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 2, 9, 9], None);
    g.inputs.push(x);
    let op = Op::AveragePool { pool: pool(3, 1, 0, 2, false), count_include_pad: true };
    let out = add(&mut g, "dilated_pool", op, vec![x]);
    g.outputs.push(out);
    match export_model(&g, 17) {
        Err(e @ ExportError::Unsupported { .. }) => assert!(e.to_string().contains("'dilated_pool'"), "{e}"),
        other => panic!("expected an error, got {:?}", other.map(|b| b.len())),
    }
    let bytes = export_model(&g, 19).expect("opset 19 has dilated AveragePool");
    let back = onnx::import_bytes(&bytes, &ImportOptions::default()).expect("re-import");
    assert_eq!(back.nodes[0].op, g.nodes[0].op);

    // A NaN clip bound has no ONNX meaning the importer would give back.
    let mut g = Graph::default();
    let x = g.add_value("x", vec![3], None);
    g.inputs.push(x);
    let out = add(&mut g, "nan_clip", Op::Clip { min: f32::NAN, max: 1.0 }, vec![x]);
    g.outputs.push(out);
    assert!(matches!(export_model(&g, 17), Err(ExportError::Unsupported { node, .. }) if node == "nan_clip"));

    // An inconsistent graph is refused, not exported wrongly.
    let mut g = Graph::default();
    let x = g.add_value("x", vec![3], None);
    let y = g.add_value("y", vec![4], None);
    g.inputs.push(x);
    g.nodes.push(Node { name: "bad".into(), op: Op::Relu, inputs: vec![x], output: y });
    g.outputs.push(y);
    assert!(matches!(export_model(&g, 17), Err(ExportError::Invalid(_))));
    // So is a node reading a value no earlier node computes.
    let mut g = Graph::default();
    let x = g.add_value("x", vec![3], None);
    let (a, b) = (g.add_value("a", vec![3], None), g.add_value("b", vec![3], None));
    g.inputs.push(x);
    g.nodes.push(Node { name: "first".into(), op: Op::Relu, inputs: vec![b], output: a });
    g.nodes.push(Node { name: "second".into(), op: Op::Relu, inputs: vec![x], output: b });
    g.outputs.push(a);
    assert!(matches!(export_model(&g, 17), Err(ExportError::Invalid(m)) if m.contains("'first'")));
    assert!(matches!(export_model(&g, 11), Err(ExportError::Opset(11))));
}
