//! KServe v2's REST binding, health and metrics over HTTP (the same port as gRPC).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/health/live` | 200 while the process serves |
//! | `GET /v2/health/ready` | 200 when every engine worker runs and no shutdown has begun, else 503 |
//! | `GET /v2` | server metadata |
//! | `GET /v2/models/{m}` | model metadata |
//! | `GET /v2/models/{m}/ready` | 200 or 503 |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | inference, JSON or with the binary tensor extension |
//! | `GET /metrics` | Prometheus text format |
//!
//! The binary tensor extension: the body starts with a JSON header of `Inference-Header-Content-Length`
//! bytes; tensors whose `parameters.binary_data_size` is set follow it in order. A response is binary when
//! the request asks for it (`parameters.binary_data_output`, or `binary_data` on the requested output).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::kserve::{self, TensorData, OUTPUT_NAME, SERVER_NAME};
use crate::state::{request_id, State};
use crate::ServeError;

/// The header giving the length of the JSON part of a binary-extension body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The REST routes over the shared state.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { (StatusCode::OK, Json(json!({"live": true}))) }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_version))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// An error as the protocol answers it: its HTTP status and `{"error": message}`.
pub fn error_response(e: &ServeError) -> Response {
    (e.http_status(), Json(json!({ "error": e.to_string() }))).into_response()
}

async fn server_ready(Extract(state): Extract<Arc<State>>) -> Response {
    let ready = state.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready }))).into_response()
}

async fn server_metadata() -> Json<Value> {
    Json(json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}))
}

async fn model_metadata(Extract(state): Extract<Arc<State>>, Path(model): Path<String>) -> Response {
    match state.model(&model) {
        Ok(m) => {
            let (inputs, outputs) = kserve::model_metadata(m);
            Json(json!({"name": m.name(), "versions": ["1"], "platform": SERVER_NAME, "inputs": inputs, "outputs": outputs}))
                .into_response()
        }
        Err(e) => error_response(&e),
    }
}

async fn model_ready(Extract(state): Extract<Arc<State>>, Path(model): Path<String>) -> Response {
    match state.model(&model) {
        Ok(m) if m.ready() => (StatusCode::OK, Json(json!({"name": m.name(), "ready": true}))).into_response(),
        Ok(m) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"name": m.name(), "ready": false}))).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn infer_version(
    state: Extract<Arc<State>>,
    Path((model, _version)): Path<(String, String)>,
    extensions: http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer(state, Path(model), extensions, headers, body).await
}

async fn infer(
    Extract(state): Extract<Arc<State>>,
    Path(model): Path<String>,
    extensions: http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let start = Instant::now();
    let result = answer(&state, &model, &headers, body).await;
    let code = result.as_ref().map_or_else(|e| e.grpc_code(), |_| tonic::Code::Ok);
    state.metrics.record("kserve-rest", code, start.elapsed().as_secs_f64());
    match result {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(request_id = %request_id(&extensions), status = %e.http_status(), "infer refused: {e}");
            error_response(&e)
        }
    }
}

/// The request's JSON header and the binary data after it.
fn split_body(headers: &HeaderMap, body: Bytes) -> Result<(Value, Bytes), ServeError> {
    let bad = |why: String| ServeError::InvalidArgument(why);
    let json_len = match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad(format!("{HEADER_LENGTH} is not a number")))?;
            if n > body.len() {
                return Err(bad(format!("{HEADER_LENGTH} is {n} and the body has {} bytes", body.len())));
            }
            n
        }
        None => body.len(),
    };
    let header: Value =
        serde_json::from_slice(&body[..json_len]).map_err(|e| bad(format!("the request is not valid JSON: {e}")))?;
    Ok((header, body.slice(json_len..)))
}

/// Flattens a JSON array (nested to any depth) of numbers.
fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> Result<(), ServeError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten_numbers(i, out)),
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        other => Err(ServeError::InvalidArgument(format!("FP32 data holds {other}, not a number"))),
    }
}

/// Flattens a JSON array of strings (BYTES in JSON form).
fn flatten_strings(v: &Value, out: &mut Vec<Bytes>) -> Result<(), ServeError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten_strings(i, out)),
        Value::String(s) => {
            out.push(Bytes::from(s.clone().into_bytes()));
            Ok(())
        }
        other => Err(ServeError::InvalidArgument(format!("BYTES data holds {other}, not a string"))),
    }
}

async fn answer(state: &State, model_name: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, ServeError> {
    let bad = |why: String| ServeError::InvalidArgument(why);
    let model = state.model(model_name)?;
    let (header, binary) = split_body(headers, body)?;
    let tensors =
        header.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("the request has no 'inputs' list".into()))?;
    let [tensor] = tensors.as_slice() else {
        return Err(bad(format!("a request has exactly one input tensor; this one has {}", tensors.len())));
    };
    let name = tensor.get("name").and_then(Value::as_str).unwrap_or("");
    let datatype =
        tensor.get("datatype").and_then(Value::as_str).ok_or_else(|| bad(format!("input '{name}' has no datatype")))?;
    let shape: Vec<i64> = tensor
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(Value::as_i64).collect())
        .ok_or_else(|| bad(format!("input '{name}' has no shape of integers")))?;
    let binary_size = tensor.pointer("/parameters/binary_data_size").and_then(Value::as_u64);
    let data = match (binary_size, datatype) {
        (Some(size), _) if size as usize != binary.len() => {
            return Err(bad(format!(
                "input '{name}' declares {size} binary bytes and {} follow the JSON",
                binary.len()
            )))
        }
        (Some(_), "BYTES") => TensorData::Bytes(crate::inputs::split_length_prefixed(&binary)?),
        (Some(_), _) => TensorData::Fp32(crate::inputs::f32_from_le_bytes(&binary)?),
        (None, dtype) => {
            let data =
                tensor.get("data").ok_or_else(|| bad(format!("input '{name}' has neither data nor binary data")))?;
            if dtype == "BYTES" {
                let mut out = Vec::new();
                flatten_strings(data, &mut out)?;
                TensorData::Bytes(out)
            } else {
                let mut out = Vec::new();
                flatten_numbers(data, &mut out)?;
                TensorData::Fp32(out)
            }
        }
    };
    let batch = kserve::to_inputs(model, datatype, &shape, data, &state.limits)
        .map_err(|e| bad(format!("input '{name}': {e}")))?;
    let scores = model.infer(batch, None).await?;
    let wants_binary = header.pointer("/parameters/binary_data_output").and_then(Value::as_bool).unwrap_or(false)
        || header.get("outputs").and_then(Value::as_array).is_some_and(|outs| {
            outs.iter().any(|o| o.pointer("/parameters/binary_data").and_then(Value::as_bool) == Some(true))
        });
    let rows = scores.probabilities.len();
    let out_shape = json!([rows, model.classes()]);
    let mut output = json!({"name": OUTPUT_NAME, "datatype": "FP32", "shape": out_shape});
    let mut response = json!({"model_name": model.name(), "model_version": "1", "outputs": []});
    if let Some(id) = header.get("id") {
        response["id"] = id.clone();
    }
    let timing = crate::timing_headers(&scores);
    if wants_binary {
        let raw = kserve::probabilities_le_bytes(&scores.probabilities);
        output["parameters"] = json!({"binary_data_size": raw.len()});
        response["outputs"] = json!([output]);
        let mut body = serde_json::to_vec(&response).expect("JSON values serialise");
        let json_len = body.len();
        body.extend_from_slice(&raw);
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(HEADER_LENGTH, json_len.into());
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
        r.headers_mut().extend(timing);
        Ok(r)
    } else {
        output["data"] = json!(scores.probabilities.concat());
        response["outputs"] = json!([output]);
        let mut r = Json(response).into_response();
        r.headers_mut().extend(timing);
        Ok(r)
    }
}
