//! ResNet-50 from ONNX onto the engine, validated against an f32 reference path.
//!
//! Layers, data flowing one way (in the style of sonos/tract):
//!
//! * [`onnx`]: import an ONNX `ModelProto` (prost types generated from the vendored `onnx.proto`),
//!   constant-fold its shape arithmetic and fold BatchNormalization into convolutions;
//! * [`graph`]: the typed graph IR the importer produces: values with static shapes, constants as f32
//!   arrays, nodes as an enum of supported operators with parsed attributes;
//! * [`reference`](mod@reference): the f32 reference path, a readable ndarray interpreter of that graph;
//! * [`error`]: the error types of import and execution;
//! * [`engine`]: one layer on the engine ([`engine::DenseLayer`], [`engine::ConvLayer`] by host im2col),
//!   weights quantized once, each run one program through the driver;
//! * [`compile`]: which nodes become engine layers, with bias, residual add and ReLU/ReLU6 fused into POST,
//!   the rest on the host with the reason; [`compile::CompiledModel::compare`] measures every layer against
//!   the reference path, and [`report`] prints and draws that;
//! * [`pipeline`]: preprocessing, network and class names that fit together; [`package`] (the checksummed
//!   container) and [`service`] (what goes in it) make it one model file;
//! * [`preprocess`]: decoding, resizing, cropping and normalising images into NCHW tensors;
//! * [`torch`]: a strict reader of PyTorch checkpoints (zip and legacy formats; allow-listed pickle globals
//!   only), and [`models`]: networks built in code (EfficientNet-Lite0 from a state dict, ResNet-50 with
//!   synthetic weights);
//! * [`datasets`]: loaders of the real test data (CIFAR-10 images).
//!
//! See `docs/runtime.md` for the compiler's rules and the package format.

pub mod compile;
pub mod datasets;
pub mod engine;
pub mod error;
pub mod graph;
pub mod models;
pub mod onnx;
pub mod package;
pub mod pipeline;
pub mod preprocess;
pub mod reference;
pub mod report;
pub mod service;
pub mod torch;
