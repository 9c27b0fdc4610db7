//! TF-Serving's `PredictionService.Predict`, as the Azure ML accelerated-models clients call it.
//!
//! The Python client (`azureml-accel-models`) sends `inputs["images"]`, a DT_STRING tensor of shape `[1]`
//! holding an image file; the C# client sends N images in one such tensor, or floats in `float_val`; the
//! numpy path sends floats in `tensor_content`. `model_spec` is never set. The answer is
//! `outputs["output_alias"]`: DT_FLOAT `[N, classes]` softmax probabilities in `float_val` (the C# client
//! reads only that field).

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::inputs;
use crate::model::{Input, Scores};
use crate::proto::tensorflow::serving::prediction_service_server::PredictionService;
use crate::proto::tensorflow::serving::{ModelSpec, PredictRequest, PredictResponse};
use crate::proto::tensorflow::{tensor_shape_proto, DataType, TensorProto, TensorShapeProto};
use crate::state::State;
use crate::ServeError;

/// The output key the Azure clients read.
pub const OUTPUT_NAME: &str = "output_alias";

/// The Predict service over the shared state.
pub struct TfServing {
    state: Arc<State>,
}

impl TfServing {
    /// The service.
    pub fn new(state: Arc<State>) -> TfServing {
        TfServing { state }
    }
}

#[tonic::async_trait]
impl PredictionService for TfServing {
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        crate::state::answer_inference(&self.state, "tfserving", request, |r, deadline| self.answer(r, deadline)).await
    }
}

impl TfServing {
    async fn answer(
        &self,
        request: PredictRequest,
        deadline: Option<Instant>,
    ) -> Result<(PredictResponse, Scores), ServeError> {
        let name = request.model_spec.as_ref().map_or("", |s| s.name.as_str());
        let model = self.state.model(name)?;
        let mut tensors = request.inputs.into_iter();
        let (Some((key, tensor)), None) = (tensors.next(), tensors.next()) else {
            return Err(ServeError::InvalidArgument(
                "a request has exactly one input tensor (the Azure clients call it 'images')".into(),
            ));
        };
        let batch = to_inputs(tensor, model.input_shape(), &self.state.limits)
            .map_err(|e| ServeError::InvalidArgument(format!("input '{key}': {e}")))?;
        let scores = model.infer(batch, deadline).await?;
        let classes = model.classes();
        let output = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(shape(&[scores.probabilities.len() as i64, classes as i64])),
            float_val: scores.probabilities.concat(),
            ..Default::default()
        };
        let response = PredictResponse {
            model_spec: Some(ModelSpec { name: model.name().to_string(), ..Default::default() }),
            outputs: [(OUTPUT_NAME.to_string(), output)].into(),
        };
        Ok((response, scores))
    }
}

/// A TensorShapeProto of the given dimensions.
fn shape(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims.iter().map(|&size| tensor_shape_proto::Dim { size, name: String::new() }).collect(),
        unknown_rank: false,
    }
}

/// A request tensor's images: DT_STRING of image files, or DT_FLOAT preprocessed (in `tensor_content` or
/// `float_val`).
fn to_inputs(tensor: TensorProto, input: [usize; 4], limits: &inputs::RequestLimits) -> Result<Vec<Input>, ServeError> {
    let dims: Vec<i64> = tensor.tensor_shape.as_ref().map_or_else(Vec::new, |s| s.dim.iter().map(|d| d.size).collect());
    match DataType::try_from(tensor.dtype) {
        Ok(DataType::DtString) => {
            inputs::images(tensor.string_val.into_iter().map(bytes::Bytes::from).collect(), &dims, limits)
        }
        Ok(DataType::DtFloat) => {
            let values = if tensor.tensor_content.is_empty() {
                tensor.float_val
            } else {
                inputs::f32_from_le_bytes(&tensor.tensor_content)?
            };
            inputs::tensors(values, &dims, input, limits)
        }
        Ok(other) => Err(ServeError::InvalidArgument(format!(
            "dtype {} is not accepted: send DT_STRING image files or DT_FLOAT preprocessed images",
            other.as_str_name()
        ))),
        Err(_) => Err(ServeError::InvalidArgument(format!("dtype {} is not a TensorFlow dtype", tensor.dtype))),
    }
}
