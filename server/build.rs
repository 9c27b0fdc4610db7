//! Generates the gRPC services and messages from the vendored proto files (`proto/`): TF-Serving's
//! `PredictionService` and KServe v2's `GRPCInferenceService`, server and client sides (the client side serves
//! `systole score`, the tests and the load benchmark). protoc comes from `protoc-bin-vendored`, so nothing
//! has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &["proto/tensorflow_serving/apis/prediction_service.proto", "proto/kserve/grpc_service.proto"],
        &["proto"],
    )?;
    Ok(())
}
