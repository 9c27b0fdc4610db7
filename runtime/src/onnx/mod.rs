//! ONNX import: decode a `ModelProto` (prost types generated from the vendored `onnx.proto`) and turn it
//! into the typed [`crate::graph::Graph`].
//!
//! Supported operators (default domain, any opset whose semantics for these are implemented):
//! Conv (1-D/2-D, strides, pads, `auto_pad`, dilations, groups incl. depthwise), BatchNormalization
//! (inference; folded into the preceding Conv when that Conv's output feeds only it), Relu, Clip (ReLU6;
//! bounds as attributes before opset 11, as constant inputs after), MaxPool, AveragePool (1-D/2-D, pads,
//! `ceil_mode`, dilations, `count_include_pad`), GlobalAveragePool, Add, Sum, Gemm, MatMul, Flatten,
//! Reshape, Squeeze, Unsqueeze, Transpose, Pad (constant mode), Slice, Concat, Softmax, Identity and
//! inference Dropout. Shape arithmetic is constant-folded at import: Constant, Shape, Gather, Cast,
//! ConstantOfShape and the data-movement ops above on constants (including int64 tensors).
//!
//! Graph inputs must be float32; a symbolic batch axis gets [`ImportOptions::batch`]. Anything else —
//! another operator, a non-constant shape parameter, an unsupported attribute value or data type — is an
//! [`ImportError`] naming the node and operator.
//!
//! [`export`] writes a graph back to ONNX (opset 17 by default), so that models built in code or compiled
//! into a package run in onnxruntime too.

pub mod export;
pub mod fold;
pub mod import;
pub mod proto;
pub mod tensor;

use prost::Message;

pub use export::{export_model, ExportError};
pub use import::{import_model, ImportOptions};
pub use tensor::{tensor_from_proto, ConstTensor};

use crate::error::ImportError;
use crate::graph::Graph;

/// Decodes an ONNX model from its protobuf bytes (without importing it).
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, ImportError> {
    proto::ModelProto::decode(bytes).map_err(|source| ImportError::Decode { what: "ModelProto", source })
}

/// Decodes a single `TensorProto` (the format of the ONNX backend tests' `input_*.pb`/`output_*.pb`).
pub fn decode_tensor(bytes: &[u8]) -> Result<ConstTensor, ImportError> {
    let t = proto::TensorProto::decode(bytes).map_err(|source| ImportError::Decode { what: "TensorProto", source })?;
    tensor_from_proto(&t, &format!("tensor '{}'", t.name()))
}

/// Imports an ONNX model from its protobuf bytes.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Graph, ImportError> {
    import_model(&decode_model(bytes)?, opts)
}

/// Reads and imports an ONNX model file.
pub fn load(path: impl AsRef<std::path::Path>, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io { path: path.display().to_string(), source })?;
    import_bytes(&bytes, opts)
}
