//! Generates the ONNX protobuf types (`onnx.rs` in `OUT_DIR`) from the vendored `proto/onnx.proto` with
//! prost-build. protoc comes from `protoc-bin-vendored`, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&["proto/onnx.proto"], &["proto/"])?;
    Ok(())
}
