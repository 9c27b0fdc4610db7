//! Malformed or unsupported models give clear errors naming what is wrong, never a panic or a wrong
//! answer.

use prost::Message;
use runtime::error::ImportError;
use runtime::onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use runtime::onnx::{self, ImportOptions};
use runtime::reference;

fn value_info(name: &str, dtype: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: vec![0.5; n as usize],
        ..Default::default()
    }
}

/// A one-conv model: x [1,3,8,8] → Conv(w [4,3,3,3], pads 1) → Relu → y.
fn conv_model() -> ModelProto {
    let mut conv = node("Conv", "conv0", &["x", "w"], "c");
    conv.attribute.push(AttributeProto {
        name: Some("pads".into()),
        ints: vec![1, 1, 1, 1],
        r#type: Some(7),
        ..Default::default()
    });
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            node: vec![conv, node("Relu", "relu0", &["c"], "y")],
            initializer: vec![weight("w", &[4, 3, 3, 3])],
            input: vec![value_info("x", DataType::Float, &[1, 3, 8, 8])],
            output: vec![value_info("y", DataType::Float, &[1, 4, 8, 8])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_valid_model_imports_and_runs() {
    let g = onnx::import_bytes(&conv_model().encode_to_vec(), &ImportOptions::default()).expect("import");
    let y = reference::run(&g, &[ndarray::ArrayD::ones(ndarray::IxDyn(&[1, 3, 8, 8]))]).expect("run");
    // Interior pixel: 27 taps of 0.5 * 1.
    assert_eq!(y[0][[0, 0, 4, 4]], 13.5);
    // Corner: 2x2 window inside, 3 channels: 12 taps.
    assert_eq!(y[0][[0, 0, 0, 0]], 6.0);
    // Wrong input shape at runtime is an error, not a panic.
    assert!(reference::run(&g, &[ndarray::ArrayD::ones(ndarray::IxDyn(&[1, 3, 9, 8]))]).is_err());
}

#[test]
fn truncated_and_non_onnx_bytes_are_decode_errors() {
    let bytes = conv_model().encode_to_vec();
    let err = onnx::import_bytes(&bytes[..bytes.len() / 2], &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Decode { .. }), "{err}");
    let err = onnx::import_bytes(b"\xff\xff\xff\xff this is not ONNX", &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Decode { .. }), "{err}");
    let err = onnx::import_bytes(b"", &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no graph"), "{err}");
    let err = onnx::load("/nonexistent/model.onnx", &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Io { .. }), "{err}");
}

#[test]
fn unsupported_operator_names_node_and_operator() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().node[1].op_type = Some("LeakyRelu".into());
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::UnsupportedOp { .. }), "{msg}");
    assert!(msg.contains("relu0") && msg.contains("LeakyRelu"), "{msg}");
}

#[test]
fn unsupported_attribute_value_and_unknown_attribute_are_refused() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().node[0].attribute.push(AttributeProto {
        name: Some("auto_pad".into()),
        s: Some(b"FOO".to_vec()),
        r#type: Some(3),
        ..Default::default()
    });
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("conv0") && err.to_string().contains("auto_pad"), "{err}");
    let mut m = conv_model();
    m.graph.as_mut().unwrap().node[1].attribute.push(AttributeProto {
        name: Some("mystery".into()),
        i: Some(1),
        r#type: Some(2),
        ..Default::default()
    });
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("mystery"), "{err}");
}

#[test]
fn unsupported_dtype_is_refused() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().input[0] = value_info("x", DataType::Double, &[1, 3, 8, 8]);
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::UnsupportedDataType { .. }), "{err}");
    assert!(err.to_string().contains("DOUBLE"), "{err}");
}

#[test]
fn missing_initializer_and_shape_mismatch_are_errors() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer.clear();
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("'w'") && err.to_string().contains("conv0"), "{err}");

    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0] = weight("w", &[4, 5, 3, 3]);
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::BadNode { .. }), "{err}");

    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0].float_data.pop();
    let err = onnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Invalid(_)), "{err}");
}

#[test]
fn uint8_node_test_is_refused_with_a_clear_error() {
    // One of the excluded ONNX backend cases (see onnx_node_tests.rs), checked for its message.
    let Ok(out) = std::process::Command::new("python3")
        .args(["-c", "import onnx, os; print(os.path.dirname(onnx.__file__))"])
        .output()
    else {
        eprintln!("SKIP: python3 not available (CI installs it with onnx==1.18.0)");
        return;
    };
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        .join("backend/test/data/node/test_add_uint8/model.onnx");
    let Ok(bytes) = std::fs::read(&dir) else {
        eprintln!("SKIP: {} not found (CI installs onnx==1.18.0)", dir.display());
        return;
    };
    let err = onnx::import_bytes(&bytes, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::UnsupportedDataType { .. }), "{err}");
    assert!(err.to_string().contains("UINT8"), "{err}");
}
