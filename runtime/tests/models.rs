//! Whole-model tests of import + f32 reference path on real models: ResNet-20 on 200 real CIFAR-10 images,
//! the ONNX wheel's light ResNet-50, and EfficientNet-Lite0 against onnxruntime.

mod common;

use std::time::Instant;

use ndarray::{ArrayD, Axis, IxDyn};
use runtime::datasets;
use runtime::onnx::{self, ConstTensor, ImportOptions};
use runtime::reference;

#[test]
fn resnet20_cifar10_gets_180_of_200() {
    let Some(data) = common::data_dir() else { return };
    let t = Instant::now();
    let (x, labels) = datasets::cifar10_ic01(&data.join("cifar10-ic01")).expect("CIFAR-10 images");
    assert_eq!(labels.len(), 200);
    let graph = onnx::load(data.join("resnet20-cifar10.onnx"), &ImportOptions { batch: labels.len() }).expect("import");
    eprintln!("resnet20 ops: {:?}", graph.op_counts());
    let t_run = Instant::now();
    let out = reference::run(&graph, &[x.into_dyn()]).expect("run");
    let run_time = t_run.elapsed();
    let logits = &out[0];
    assert_eq!(logits.shape(), &[200, 10]);
    let correct = logits
        .outer_iter()
        .zip(&labels)
        .filter(|(l, label)| {
            let best = l.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            best.0 == **label
        })
        .count();
    eprintln!("resnet20: {correct}/200 correct; run {run_time:?}, total {:?}", t.elapsed());
    assert_eq!(correct, 180, "onnxruntime gets 180/200");
}

/// Deterministic input of the ONNX backend runner for the light models (`generate_dummy_data` with
/// `random=False`): `arange(n).reshape(shape) / n`.
fn light_input(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| (i as f64 / n as f64) as f32).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape")
}

/// onnxruntime's value of a named intermediate tensor of an ONNX model on an input of ones-ramp, via python.
const ORT_INTERMEDIATE: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
model, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
m = onnx.load(model)
m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
inits = {i.name for i in m.graph.initializer}
inp = [i for i in m.graph.input if i.name not in inits][0]
shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
n = int(np.prod(shape))
x = (np.arange(n).reshape(shape) / n).astype(np.float32)
s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
y = s.run([name], {inp.name: x})[0].astype(np.float32)
y.tofile(out)
print(y.size)
"#;

#[test]
fn light_resnet50_matches_reference_output() {
    let Some(dir) = common::onnx_dir() else { return };
    let dir = dir.join("backend/test/data/light");
    let model = dir.join("light_resnet50.onnx");
    let t = Instant::now();
    let graph = onnx::load(&model, &ImportOptions::default()).expect("import");
    eprintln!("light_resnet50 ops: {:?}", graph.op_counts());
    let bytes = std::fs::read(dir.join("light_resnet50_output_0.pb")).expect("reference output");
    let ConstTensor::F32(expected) = onnx::decode_tensor(&bytes).expect("decode") else { panic!("float output") };
    let input = light_input(&graph.values[graph.inputs[0]].shape);
    // The model's weights are constant per layer, so its softmax output is uniform; the pre-pooling
    // activation (which still varies in space) is compared with onnxruntime as well, below.
    let probe = "r171";
    let probe_id = graph.find(probe).expect("probe value");
    let t_run = Instant::now();
    let out = reference::run_values(&graph, &[input], &[graph.outputs[0], probe_id]).expect("run");
    let run_time = t_run.elapsed();
    assert_eq!(out[0].shape(), expected.shape());
    let got: Vec<f32> = out[0].iter().copied().collect();
    let want: Vec<f32> = expected.iter().copied().collect();
    let abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("light_resnet50: output max abs err {abs:e}; run {run_time:?}, total {:?}", t.elapsed());
    assert!(abs <= 1e-6, "max abs error {abs}");

    let tmp = std::env::temp_dir().join(format!("systole-light-{}.raw", std::process::id()));
    let Some(_) = common::python(ORT_INTERMEDIATE, &[&model.to_string_lossy(), probe, &tmp.to_string_lossy()]) else {
        return;
    };
    let ort = read_f32(&tmp);
    let _ = std::fs::remove_file(&tmp);
    let ours: Vec<f32> = out[1].iter().copied().collect();
    assert_eq!(ours.len(), ort.len());
    let rel = common::max_rel_err(&ours, &ort, 1e-3 * ort.iter().fold(0.0f32, |m, v| m.max(v.abs())));
    eprintln!("light_resnet50: '{probe}' {:?} max rel err vs onnxruntime {rel:e}", out[1].shape());
    assert!(rel <= 1e-4, "max rel error {rel}");
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read raw")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Preprocesses a photo as the data README says (PIL, bilinear), runs onnxruntime on it, writes both.
const ORT_EFFICIENTNET: &str = r#"
import sys, numpy as np, onnxruntime as ort
from PIL import Image
model, photo, x_out, y_out = sys.argv[1:5]
img = Image.open(photo).convert("RGB")
w, h = img.size
s = 256 / min(w, h)
img = img.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
w, h = img.size
l, t = (w - 224) // 2, (h - 224) // 2
a = np.asarray(img.crop((l, t, l + 224, t + 224)), dtype=np.float32)
mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
std = np.array([0.229, 0.224, 0.225], np.float32) * 255
x = ((a - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
x.tofile(x_out)
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
y = s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float32)
y.tofile(y_out)
print(int(y.argmax()))
"#;

#[test]
fn efficientnet_lite0_matches_onnxruntime() {
    let Some(data) = common::data_dir() else { return };
    let model = data.join("efficientnet-lite0-imagenet.onnx");
    let photo = data.join("imagenet-photos/parrot.jpg");
    let tmp = std::env::temp_dir();
    let (x_path, y_path) = (
        tmp.join(format!("systole-effnet-x-{}.raw", std::process::id())),
        tmp.join(format!("systole-effnet-y-{}.raw", std::process::id())),
    );
    let args =
        [&*model.to_string_lossy(), &*photo.to_string_lossy(), &*x_path.to_string_lossy(), &*y_path.to_string_lossy()]
            .map(|s| s.to_string());
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let Some(ort_top1) = common::python(ORT_EFFICIENTNET, &args) else { return };
    let x = read_f32(&x_path);
    let ort = read_f32(&y_path);
    let _ = (std::fs::remove_file(&x_path), std::fs::remove_file(&y_path));
    let t = Instant::now();
    let graph = onnx::load(&model, &ImportOptions::default()).expect("import");
    eprintln!("efficientnet ops: {:?}", graph.op_counts());
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 3, 224, 224]), x).expect("input");
    let t_run = Instant::now();
    let out = reference::run(&graph, &[x]).expect("run");
    let run_time = t_run.elapsed();
    let ours: Vec<f32> = out[0].iter().copied().collect();
    assert_eq!(ours.len(), 1000);
    let peak = ort.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let rel = common::max_rel_err(&ours, &ort, 1e-2 * peak);
    let pure_rel = common::max_rel_err(&ours, &ort, f32::MIN_POSITIVE);
    let abs = ours.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("efficientnet-lite0: max abs err {abs:e}, max plain rel err {pure_rel:e}, peak |logit| {peak}");
    let top1 = out[0].iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
    eprintln!(
        "efficientnet-lite0 on parrot.jpg: top-1 {top1} (onnxruntime {ort_top1}), max rel err {rel:e} \
         (|logit| floor {:e}); run {run_time:?}, total {:?}",
        1e-2 * peak,
        t.elapsed()
    );
    assert_eq!(top1.to_string(), ort_top1);
    assert!(rel <= 1e-4, "max relative error {rel}");
    let _ = Axis(0);
}
