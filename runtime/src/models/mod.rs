//! Model architectures built directly in the graph IR from framework checkpoints (no ONNX needed).
//!
//! * [`efficientnet_lite`]: EfficientNet-Lite (Lite0) from a PyTorch state dict read by [`crate::torch`];
//! * [`resnet50`]: ResNet-50 v1.5 (and smaller bottleneck ResNets) with deterministic synthetic weights.

pub mod efficientnet_lite;
pub mod resnet50;
