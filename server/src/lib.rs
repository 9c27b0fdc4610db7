//! The systole inference web service: TF-Serving's Predict API (what the Azure ML accelerated-models clients
//! speak) and KServe v2 (gRPC and REST), on one port, with TLS, primary and secondary keys, dynamic batching,
//! bounded queues, deadlines, graceful shutdown and Prometheus metrics.
//!
//! [`Server::start`] takes model packages ([`runtime::service::Service`]) and a way to open a device for each
//! (the emulated engine, a simulated one, a real card), and serves until [`Server::shutdown`].
//!
//! | module | what it does |
//! |---|---|
//! | [`model`] | a served model: preprocessing and the engine worker with its bounded, batching queue |
//! | [`tfserving`] | `tensorflow.serving.PredictionService/Predict` |
//! | [`kserve`] | `inference.GRPCInferenceService` |
//! | [`rest`] | KServe's REST binding, health and `/metrics` |
//! | [`keys`] | the keys file, constant-time checks, rotation without restart |
//! | [`http`] | TCP and TLS, HTTP/1.1 and HTTP/2 on one port, the key check, request ids, graceful shutdown |
//! | [`inputs`] | request tensors to model inputs, and the request limits |
//! | [`metrics`] | the Prometheus metrics |
//! | [`client`] | a Rust Predict client (`systole score`, the tests, the load benchmark) |
//!
//! docs/serving.md is the user's guide.

pub mod client;
pub mod error;
pub mod http;
pub mod inputs;
pub mod keys;
pub mod kserve;
pub mod metrics;
pub mod model;
pub mod proto;
pub mod rest;
pub mod state;
pub mod tfserving;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use error::ServeError;
pub use inputs::RequestLimits;
pub use keys::{KeyStore, Keys};
pub use model::{BatchConfig, DeviceOpener, Input, Model, Scores};

use crate::metrics::Metrics;
use crate::state::State;

/// The response header with the wall time, in microseconds, the engine worker spent on the request.
pub const ENGINE_TIME_HEADER: &str = "x-systole-engine-us";
/// The response header with the wall time, in microseconds, from the request's arrival at the server (after
/// TLS and HTTP framing) to its response: the server's whole share of the latency.
pub const SERVER_TIME_HEADER: &str = "x-systole-server-us";
/// The response header with the wall time, in microseconds, spent decoding and preprocessing its images.
pub const PREPROCESS_TIME_HEADER: &str = "x-systole-preprocess-us";
/// The response header with the wall time, in microseconds, the request waited in the engine worker's queue.
pub const QUEUE_TIME_HEADER: &str = "x-systole-queue-us";

/// One model to serve.
pub struct ModelConfig {
    /// Its name in requests; the package's name when `None`.
    pub name: Option<String>,
    /// The loaded package.
    pub service: runtime::service::Service,
    /// Opens the device its engine worker runs on.
    pub open: DeviceOpener,
}

/// Everything [`Server::start`] needs.
pub struct ServerConfig {
    /// Where to listen (port 0: any free port; [`Server::local_addr`] tells which).
    pub addr: SocketAddr,
    /// The models; the first answers requests that name none.
    pub models: Vec<ModelConfig>,
    /// The PEM certificate chain and private key; `None` serves plain text (anyone can listen in).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The keys file; `None` accepts every request (anyone can call the service).
    pub keys: Option<PathBuf>,
    /// How engine workers group requests.
    pub batching: BatchConfig,
    /// What one request may carry.
    pub limits: RequestLimits,
    /// Longest shutdown waits for requests in flight.
    pub drain: Duration,
    /// How often the keys file is checked for a change.
    pub key_poll: Duration,
}

impl ServerConfig {
    /// A configuration with the defaults: no TLS, no keys, default batching and limits, 30 s drain, keys
    /// re-read every second.
    pub fn new(addr: SocketAddr, models: Vec<ModelConfig>) -> ServerConfig {
        ServerConfig {
            addr,
            models,
            tls: None,
            keys: None,
            batching: BatchConfig::default(),
            limits: RequestLimits::default(),
            drain: Duration::from_secs(30),
            key_poll: Duration::from_secs(1),
        }
    }
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Loads the keys and the TLS identity, starts an engine worker per model (opening its device), binds
    /// the address and starts serving. Fails, saying why, when any of these cannot be done.
    pub async fn start(config: ServerConfig) -> Result<Server, String> {
        if config.models.is_empty() {
            return Err("no model to serve".into());
        }
        let keys = Arc::new(match &config.keys {
            Some(path) => KeyStore::from_file(path)?,
            None => KeyStore::open(),
        });
        let tls = match &config.tls {
            Some((cert, key)) => Some(http::tls_config(cert, key)?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let mut models: Vec<Arc<Model>> = Vec::new();
        for m in config.models {
            let name = m.name.unwrap_or_else(|| m.service.pipeline.name.clone());
            if models.iter().any(|other| other.name() == name) {
                return Err(format!("two models are called '{name}': name them apart"));
            }
            let (batching, limits, metrics) = (config.batching, config.limits.decode_limits(), metrics.clone());
            let model =
                tokio::task::spawn_blocking(move || Model::start(name, m.service, m.open, batching, limits, metrics))
                    .await
                    .map_err(|e| format!("starting an engine worker: {e}"))??;
            models.push(Arc::new(model));
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("listening on {}: {e}", config.addr))?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(State {
            models,
            keys: keys.clone(),
            limits: config.limits,
            metrics: metrics.clone(),
            draining: false.into(),
        });
        keys.watch(config.key_poll, metrics.key_reloads.clone());
        let app = router(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let drain = config.drain;
        let task = tokio::spawn(http::serve(
            listener,
            tls.clone(),
            app,
            metrics,
            async move {
                let _ = stopped.await;
            },
            drain,
        ));
        Ok(Server { local_addr, tls: tls.is_some(), state, stop: Some(stop), task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether it serves TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Whether requests need a key.
    pub fn authenticated(&self) -> bool {
        self.state.keys.enabled()
    }

    /// The served models' names, the default first.
    pub fn model_names(&self) -> Vec<String> {
        self.state.models.iter().map(|m| m.name().to_string()).collect()
    }

    /// Stops taking connections, reports not-ready, lets requests in flight finish, and returns when they
    /// have (or the drain time has passed). The engine workers stop when the last request is done.
    pub async fn shutdown(mut self) {
        self.state.draining.store(true, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Every route: the gRPC services and the REST routes, behind the key check and request ids.
fn router(state: Arc<State>) -> axum::Router {
    use proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
    use proto::tensorflow::serving::prediction_service_server::PredictionServiceServer;
    let limit = state.limits.max_message_bytes;
    let grpc = tonic::service::Routes::new(
        PredictionServiceServer::new(tfserving::TfServing::new(state.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        GrpcInferenceServiceServer::new(kserve::KServe::new(state.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .into_axum_router();
    grpc.merge(rest::router(state.clone()))
        .fallback(http::unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state, http::gate))
}

/// Puts the request's engine and preprocessing times in gRPC response metadata.
pub(crate) fn timing_metadata(metadata: &mut tonic::metadata::MetadataMap, scores: &Scores) {
    for (name, value) in timing_headers(scores) {
        if let (Some(name), Ok(value)) = (name, tonic::metadata::MetadataValue::try_from(value.as_bytes())) {
            metadata.insert(
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()).expect("a valid key"),
                value,
            );
        }
    }
}

/// The request's engine and preprocessing times as HTTP headers.
pub(crate) fn timing_headers(scores: &Scores) -> ::http::HeaderMap {
    let mut headers = ::http::HeaderMap::new();
    headers.insert(ENGINE_TIME_HEADER, (scores.engine_time.as_micros() as u64).into());
    headers.insert(PREPROCESS_TIME_HEADER, (scores.preprocess_time.as_micros() as u64).into());
    headers.insert(QUEUE_TIME_HEADER, (scores.queue_time.as_micros() as u64).into());
    headers
}
