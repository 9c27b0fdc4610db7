//! The listener: TCP, optional TLS (rustls, offering HTTP/2 and HTTP/1.1 by ALPN), HTTP/1.1 and HTTP/2 on one
//! port, the key check and request ids in front of every route, and graceful shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as Extract};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::state::{RequestId, State};

/// Paths served without a key: health (load balancers and Kubernetes probes call them) and metrics.
pub const PUBLIC_PATHS: &[&str] = &[
    "/v2/health/live",
    "/v2/health/ready",
    "/metrics",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
];

/// The response header (gRPC metadata) carrying the request id.
pub const REQUEST_ID_HEADER: &str = "request_id";

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A rustls server configuration from a PEM certificate chain (the server's certificate first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1), offering HTTP/2 and HTTP/1.1.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("reading the certificate chain {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The middleware in front of every route: gives the request an id, checks its key (except on
/// [`PUBLIC_PATHS`]), and puts the id in the response's `request_id` header, errors included, with the time
/// the server took in [`crate::SERVER_TIME_HEADER`].
pub async fn gate(Extract(state): Extract<Arc<State>>, mut request: Request, next: Next) -> Response {
    let arrived = std::time::Instant::now();
    let id = format!("{:016x}", rand::random::<u64>());
    request.extensions_mut().insert(RequestId(id.clone()));
    let path = request.uri().path().to_string();
    let grpc = is_grpc(&request);
    let mut response = if PUBLIC_PATHS.contains(&path.as_str()) {
        next.run(request).await
    } else {
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        match state.keys.check(header) {
            Ok(()) => next.run(request).await,
            Err(e) => {
                tracing::info!(request_id = %id, path, "refused: {e}");
                let protocol = if !grpc {
                    "kserve-rest"
                } else if path.starts_with("/tensorflow") {
                    "tfserving"
                } else {
                    "kserve-grpc"
                };
                state.metrics.record(protocol, e.grpc_code(), 0.0);
                if grpc {
                    e.to_status().into_http()
                } else {
                    crate::rest::error_response(&e)
                }
            }
        }
    };
    if grpc {
        too_large_is_resource_exhausted(&mut response);
    }
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response.headers_mut().insert(crate::SERVER_TIME_HEADER, (arrived.elapsed().as_micros() as u64).into());
    response
}

/// The answer to a path no route serves: UNIMPLEMENTED for a gRPC call (an unknown service or method), 404
/// with a JSON error otherwise.
pub async fn unknown_route(request: Request) -> Response {
    let path = request.uri().path().to_string();
    if is_grpc(&request) {
        tonic::Status::unimplemented(format!("{path} is not a method this server implements")).into_http()
    } else {
        let error = format!("no route {path}: see /v2, /v2/models/{{model}}, /v2/health/ready, /metrics");
        crate::rest::error_response(&crate::ServeError::NotFound(error))
    }
}

/// Whether a request is a gRPC call (its content type is `application/grpc…`).
fn is_grpc(request: &Request) -> bool {
    request.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Rewrites tonic's answer to an oversized request message, OUT_OF_RANGE, to RESOURCE_EXHAUSTED: the code gRPC
/// specifies for it and the one other servers (and the Azure clients' retry rules) use.
fn too_large_is_resource_exhausted(response: &mut Response) {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = headers.get("grpc-message").is_some_and(|v| v.to_str().unwrap_or("").contains("too%20large"));
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

/// Serves `app` on `listener` (through TLS when `tls` is given) until `shutdown` completes, then stops
/// accepting, lets requests in flight finish (at most `drain`), and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, acceptor, watcher, metrics) =
            (app.clone(), builder.clone(), acceptor.clone(), graceful.watcher(), metrics.clone());
        tokio::spawn(async move {
            metrics.connections.inc();
            let service = TowerToHyperService::new(app);
            let served = match acceptor {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        watcher
                            .watch(builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned())
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, "TLS handshake failed: {e}");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        Ok(())
                    }
                },
                None => {
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            metrics.connections.dec();
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {drain:?}: closing their connections");
    }
}
