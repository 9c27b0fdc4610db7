//! Error types of the runtime: [`ImportError`] for everything that can go wrong turning an ONNX file into
//! a [`crate::graph::Graph`], [`RuntimeError`] for running a graph.
//!
//! Every unsupported operator, attribute value or data type is an error that names the node and the
//! operator, so that a model we cannot run faithfully is refused rather than answered wrongly.

use thiserror::Error;

/// Why an ONNX model could not be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf message (truncated, corrupt or not ONNX at all).
    #[error("not a valid ONNX protobuf ({what}): {source}")]
    Decode {
        /// Which message was being decoded (e.g. "ModelProto").
        what: &'static str,
        /// prost's description of the problem.
        source: prost::DecodeError,
    },
    /// The model is structurally invalid (no graph, undefined names, inconsistent tensors, …).
    #[error("invalid model: {0}")]
    Invalid(String),
    /// An operator the runtime does not implement.
    #[error("node '{node}': unsupported operator {op} (domain '{domain}')")]
    UnsupportedOp {
        /// Name of the node (or a generated `#index` if it has none).
        node: String,
        /// The ONNX operator type.
        op: String,
        /// The operator's domain ("" is the default ONNX domain).
        domain: String,
    },
    /// A supported operator used with an attribute value (or input form) the runtime does not implement.
    #[error("node '{node}' ({op}): unsupported {what}")]
    Unsupported {
        /// Name of the node.
        node: String,
        /// The ONNX operator type.
        op: String,
        /// What exactly is not supported, with the offending value.
        what: String,
    },
    /// An element type the runtime does not support (the reference path computes in f32).
    #[error("{context}: unsupported element type {dtype}")]
    UnsupportedDataType {
        /// Where the tensor appears (node, input or initializer name).
        context: String,
        /// The ONNX data type name.
        dtype: String,
    },
    /// A node's inputs or attributes have inconsistent shapes or values.
    #[error("node '{node}' ({op}): {detail}")]
    BadNode {
        /// Name of the node.
        node: String,
        /// The ONNX operator type.
        op: String,
        /// What is wrong.
        detail: String,
    },
}

/// Why a graph could not be run.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The number of input tensors differs from the graph's inputs.
    #[error("the graph has {expected} inputs, {got} were given")]
    InputCount {
        /// Number of graph inputs.
        expected: usize,
        /// Number of tensors given.
        got: usize,
    },
    /// An input tensor does not have the shape the graph was imported for.
    #[error("input '{name}' has shape {got:?}, the graph expects {expected:?}")]
    InputShape {
        /// Input name.
        name: String,
        /// Shape the graph was imported with.
        expected: Vec<usize>,
        /// Shape given.
        got: Vec<usize>,
    },
    /// A requested value does not exist in the graph.
    #[error("no value with id {0} in the graph")]
    NoSuchValue(usize),
    /// The model was compiled for another engine configuration than the device has.
    #[error("the model is compiled for a {compiled} engine, the device is {device}")]
    WrongEngine {
        /// The configuration the weights are quantized for.
        compiled: String,
        /// The device's configuration.
        device: String,
    },
    /// An operator failed (an inconsistency the importer should have caught; never a silent wrong answer).
    #[error("node '{node}' ({op}): {detail}")]
    Node {
        /// Name of the node.
        node: String,
        /// Operator name.
        op: String,
        /// What went wrong.
        detail: String,
    },
}
