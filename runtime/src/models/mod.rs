//! Model architectures built directly in the graph IR from framework checkpoints (no ONNX needed).
//!
//! * [`efficientnet_lite`]: EfficientNet-Lite (Lite0) from a PyTorch state dict read by [`crate::torch`].

pub mod efficientnet_lite;
pub mod resnet50;
