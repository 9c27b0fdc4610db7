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
//! * [`engine`]: matrix products and convolutions lowered to engine programs and run on a device through the
//!   driver (host im2col for now), with the other operators on the reference path;
//! * [`preprocess`]: decoding, resizing, cropping and normalising images into NCHW tensors;
//! * [`torch`]: a strict reader of PyTorch checkpoints (zip and legacy formats; allow-listed pickle globals
//!   only), and [`models`]: architectures built from such state dicts (EfficientNet-Lite0);
//! * [`datasets`]: loaders of the real test data (CIFAR-10 images).
//!
//! Still to come (issue 3): weights quantized once, implicit GEMM with fused bias/residual/activation on the
//! engine, the model package, `systole classify`, and ResNet-50 at speed.

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
