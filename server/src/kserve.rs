//! KServe v2, the Open Inference Protocol, over gRPC (`inference.GRPCInferenceService`): health, metadata
//! and `ModelInfer`. The REST binding of the same protocol is in [`crate::rest`]; both call the functions
//! here for what a model takes and returns.
//!
//! A model takes one input: BYTES of shape `[N]` (image files; in `raw_input_contents` each element is a
//! 4-byte little-endian length then its bytes), or FP32 `[N, 3, H, W]` preprocessed images. It returns one
//! output, [`OUTPUT_NAME`]: FP32 `[N, classes]` softmax probabilities, in `raw_output_contents` as Triton does.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tonic::{Request, Response, Status};

use crate::inputs;
use crate::model::{Input, Model};
use crate::proto::inference::grpc_inference_service_server::GrpcInferenceService;
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::model_metadata_response::TensorMetadata;
use crate::proto::inference::*;
use crate::state::State;
use crate::ServeError;

/// The output every model returns.
pub const OUTPUT_NAME: &str = "probabilities";
/// The name the metadata gives the input (requests may use any name).
pub const INPUT_NAME: &str = "images";
/// The server's name in metadata.
pub const SERVER_NAME: &str = "systole";

/// One tensor's name, datatype and shape (-1: any size), as metadata lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// KServe datatype (`BYTES`, `FP32`).
    pub datatype: String,
    /// Dimensions; -1 for the batch.
    pub shape: Vec<i64>,
}

/// A model's metadata: its inputs (image files, or the preprocessed tensor) and its output.
pub fn model_metadata(model: &Model) -> (Vec<TensorInfo>, Vec<TensorInfo>) {
    let [_, c, h, w] = model.input_shape();
    let info = |name: &str, datatype: &str, shape: Vec<i64>| TensorInfo {
        name: name.to_string(),
        datatype: datatype.to_string(),
        shape,
    };
    (
        vec![info(INPUT_NAME, "BYTES", vec![-1]), info("preprocessed", "FP32", vec![-1, c as i64, h as i64, w as i64])],
        vec![info(OUTPUT_NAME, "FP32", vec![-1, model.classes() as i64])],
    )
}

/// The data of one request tensor, as it arrived.
pub enum TensorData {
    /// BYTES elements (image files).
    Bytes(Vec<Bytes>),
    /// FP32 values.
    Fp32(Vec<f32>),
}

/// A request tensor's inputs. `datatype` is checked against the data: BYTES or FP32 only.
pub fn to_inputs(
    model: &Model,
    datatype: &str,
    shape: &[i64],
    data: TensorData,
    limits: &inputs::RequestLimits,
) -> Result<Vec<Input>, ServeError> {
    match (datatype, data) {
        ("BYTES", TensorData::Bytes(elements)) => inputs::images(elements, shape, limits),
        ("FP32", TensorData::Fp32(values)) => inputs::tensors(values, shape, model.input_shape(), limits),
        (other, _) => Err(ServeError::InvalidArgument(format!(
            "datatype {other} is not accepted: send BYTES image files or FP32 preprocessed images"
        ))),
    }
}

/// The raw little-endian bytes of the probabilities, row after row.
pub fn probabilities_le_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter().flatten().flat_map(|p| p.to_le_bytes()).collect()
}

/// The KServe gRPC service over the shared state.
pub struct KServe {
    state: Arc<State>,
}

impl KServe {
    /// The service.
    pub fn new(state: Arc<State>) -> KServe {
        KServe { state }
    }

    /// Counts a non-inference call and passes its result on.
    fn counted<T>(&self, start: Instant, result: Result<T, ServeError>) -> Result<Response<T>, Status> {
        let code = result.as_ref().map_or_else(|e| e.grpc_code(), |_| tonic::Code::Ok);
        self.state.metrics.record("kserve-grpc", code, start.elapsed().as_secs_f64());
        result.map(Response::new).map_err(Status::from)
    }

    async fn infer(
        &self,
        request: ModelInferRequest,
        deadline: Option<Instant>,
    ) -> Result<(ModelInferResponse, crate::model::Scores), ServeError> {
        let model = self.state.model(&request.model_name)?;
        let [tensor] = request.inputs.as_slice() else {
            return Err(ServeError::InvalidArgument(format!(
                "a request has exactly one input tensor; this one has {}",
                request.inputs.len()
            )));
        };
        let raw = request.raw_input_contents.first().map(|r| Bytes::from(r.clone()));
        let contents = tensor.contents.clone().unwrap_or_default();
        let data = match (tensor.datatype.as_str(), raw) {
            ("BYTES", Some(raw)) => TensorData::Bytes(inputs::split_length_prefixed(&raw)?),
            ("BYTES", None) => TensorData::Bytes(contents.bytes_contents.into_iter().map(Bytes::from).collect()),
            (_, Some(raw)) => TensorData::Fp32(inputs::f32_from_le_bytes(&raw)?),
            (_, None) => TensorData::Fp32(contents.fp32_contents),
        };
        let batch = to_inputs(model, &tensor.datatype, &tensor.shape, data, &self.state.limits)
            .map_err(|e| ServeError::InvalidArgument(format!("input '{}': {e}", tensor.name)))?;
        let scores = model.infer(batch, deadline).await?;
        let response = ModelInferResponse {
            model_name: model.name().to_string(),
            model_version: "1".into(),
            id: request.id,
            outputs: vec![InferOutputTensor {
                name: OUTPUT_NAME.into(),
                datatype: "FP32".into(),
                shape: vec![scores.probabilities.len() as i64, model.classes() as i64],
                ..Default::default()
            }],
            raw_output_contents: vec![probabilities_le_bytes(&scores.probabilities)],
            ..Default::default()
        };
        Ok((response, scores))
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for KServe {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        self.counted(Instant::now(), Ok(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        self.counted(Instant::now(), Ok(ServerReadyResponse { ready: self.state.ready() }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let start = Instant::now();
        let result = self.state.model(&request.get_ref().name).map(|m| ModelReadyResponse { ready: m.ready() });
        self.counted(start, result)
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        let response = ServerMetadataResponse {
            name: SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        };
        self.counted(Instant::now(), Ok(response))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let start = Instant::now();
        let result = self.state.model(&request.get_ref().name).map(|model| {
            let (inputs, outputs) = model_metadata(model);
            let convert = |t: TensorInfo| TensorMetadata { name: t.name, datatype: t.datatype, shape: t.shape };
            ModelMetadataResponse {
                name: model.name().to_string(),
                versions: vec!["1".into()],
                platform: SERVER_NAME.into(),
                inputs: inputs.into_iter().map(convert).collect(),
                outputs: outputs.into_iter().map(convert).collect(),
            }
        });
        self.counted(start, result)
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        crate::state::answer_inference(&self.state, "kserve-grpc", request, |r, deadline| self.infer(r, deadline)).await
    }
}
