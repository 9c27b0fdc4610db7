//! What every protocol handler shares: the models, the keys, the limits and the metrics.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::inputs::{parse_grpc_timeout, RequestLimits};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::ServeError;

/// The id the server gives each request: logged with everything the request causes, and returned to the
/// client in the `request_id` header (gRPC metadata) of every response, errors included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The server's shared state.
pub struct State {
    /// The served models; the first answers requests that name none.
    pub models: Vec<Arc<Model>>,
    /// The keys requests are checked against.
    pub keys: Arc<KeyStore>,
    /// What one request may carry.
    pub limits: RequestLimits,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Set when shutdown starts: readiness turns false so load balancers stop sending.
    pub draining: AtomicBool,
}

impl State {
    /// The model called `name`, or the first model when `name` is empty (TF-Serving clients leave
    /// `model_spec` unset).
    pub fn model(&self, name: &str) -> Result<&Arc<Model>, ServeError> {
        if name.is_empty() {
            return self.models.first().ok_or_else(|| ServeError::NotFound("no model is served".into()));
        }
        self.models.iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name()).collect();
            ServeError::NotFound(format!("no model '{name}' is served; the models are: {}", names.join(", ")))
        })
    }

    /// Whether the server takes inference requests: every engine worker runs and no shutdown has begun.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.models.iter().all(|m| m.ready())
    }
}

/// The deadline a gRPC request carries in its `grpc-timeout` header, counted from `start`.
pub fn grpc_deadline(metadata: &tonic::metadata::MetadataMap, start: Instant) -> Option<Instant> {
    let timeout: Duration = parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)?;
    Some(start + timeout)
}

/// The request id the middleware put in a request's extensions ("-" when there is none, as in unit tests).
pub fn request_id(extensions: &http::Extensions) -> String {
    extensions.get::<RequestId>().map_or_else(|| "-".to_string(), |r| r.0.clone())
}

/// Answers a gRPC inference call: reads its deadline and request id, runs `answer` on its message, counts it in
/// the metrics under `protocol`, logs a refusal with its id and code, and puts the request's timings in the
/// response metadata.
pub async fn answer_inference<Req, Resp, Fut>(
    state: &State,
    protocol: &'static str,
    request: tonic::Request<Req>,
    answer: impl FnOnce(Req, Option<Instant>) -> Fut,
) -> Result<tonic::Response<Resp>, tonic::Status>
where
    Fut: Future<Output = Result<(Resp, crate::Scores), ServeError>>,
{
    let start = Instant::now();
    let deadline = grpc_deadline(request.metadata(), start);
    let id = request_id(request.extensions());
    let result = answer(request.into_inner(), deadline).await;
    let code = result.as_ref().map_or_else(|e| e.grpc_code(), |_| tonic::Code::Ok);
    state.metrics.record(protocol, code, start.elapsed().as_secs_f64());
    match result {
        Ok((message, scores)) => {
            tracing::debug!(request_id = %id, protocol, images = scores.probabilities.len(), "answered");
            let mut response = tonic::Response::new(message);
            crate::timing_metadata(response.metadata_mut(), &scores);
            Ok(response)
        }
        Err(e) => {
            tracing::info!(request_id = %id, protocol, code = ?e.grpc_code(), "refused: {e}");
            Err(e.into())
        }
    }
}
