//! ResNet-50 from ONNX onto the engine, validated against an f32 reference path.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace so that the layout is fixed from
//! the start; it is filled by issue 3. It deliberately exports nothing, so nothing can depend on
//! behaviour that does not exist.
