//! A Rust client of the service's TF-Serving Predict API, as the Azure clients call it: one DT_STRING tensor
//! `images` of image files, the key in `authorization`. `systole score`, the tests and the load benchmark use
//! it.

use std::path::Path;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use crate::proto::tensorflow::serving::PredictRequest;
use crate::proto::tensorflow::{tensor_shape_proto, DataType, TensorProto, TensorShapeProto};
use crate::tfserving::OUTPUT_NAME;

/// Where and how to reach the service.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The PEM certificate to trust (the server's self-signed certificate or its CA); `None`: plain text.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The key to send, if any.
    pub key: Option<String>,
}

/// A connected Predict client.
#[derive(Clone)]
pub struct Client {
    inner: PredictionServiceClient<Channel>,
    key: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Option<Duration>,
}

/// The answer to one Predict call.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// Softmax probabilities, one row per image.
    pub probabilities: Vec<Vec<f32>>,
    /// The server's engine time for the request (its `x-systole-engine-us` header).
    pub engine_time: Option<Duration>,
    /// The server's preprocessing time for the request.
    pub preprocess_time: Option<Duration>,
    /// The server's whole time for the request, arrival to response (its `x-systole-server-us` header).
    pub server_time: Option<Duration>,
    /// The time the request waited in the server's engine queue (its `x-systole-queue-us` header).
    pub queue_time: Option<Duration>,
}

impl Client {
    /// Connects to `target` (TLS when it names a certificate to trust).
    pub async fn connect(target: &Target) -> Result<Client, String> {
        let scheme = if target.tls_ca.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}:{}", target.host, target.port);
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(|e| format!("{url}: {e}"))?;
        if let Some(ca) = &target.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
            let tls =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)).domain_name(target.host.clone());
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS set-up: {e}"))?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connecting to {url}: {}", error_chain(&e)))?;
        let inner = PredictionServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut client = Client { inner, key: None, timeout: None };
        client.set_key(target.key.as_deref())?;
        Ok(client)
    }

    /// Sends `key` from now on (`None`: no key).
    pub fn set_key(&mut self, key: Option<&str>) -> Result<(), String> {
        self.key = key
            .map(|k| MetadataValue::try_from(k).map_err(|_| "the key is not a valid header value".to_string()))
            .transpose()?;
        Ok(())
    }

    /// Gives each request this deadline from now on (sent as `grpc-timeout`; `None`: no deadline).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Scores image files (their bytes) in one request.
    pub async fn predict(&mut self, images: Vec<Vec<u8>>) -> Result<Prediction, tonic::Status> {
        let n = images.len() as i64;
        let tensor = TensorProto {
            dtype: DataType::DtString as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![tensor_shape_proto::Dim { size: n, name: String::new() }],
                unknown_rank: false,
            }),
            string_val: images,
            ..Default::default()
        };
        let mut request = tonic::Request::new(PredictRequest {
            inputs: [("images".to_string(), tensor)].into(),
            ..Default::default()
        });
        if let Some(key) = &self.key {
            request.metadata_mut().insert("authorization", key.clone());
        }
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        let response = self.inner.predict(request).await?;
        let micros = |name: &str| {
            response
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse().ok())
                .map(Duration::from_micros)
        };
        let (engine_time, preprocess_time, server_time, queue_time) = (
            micros(crate::ENGINE_TIME_HEADER),
            micros(crate::PREPROCESS_TIME_HEADER),
            micros(crate::SERVER_TIME_HEADER),
            micros(crate::QUEUE_TIME_HEADER),
        );
        let output = response
            .into_inner()
            .outputs
            .remove(OUTPUT_NAME)
            .ok_or_else(|| tonic::Status::internal(format!("the response has no '{OUTPUT_NAME}' output")))?;
        let dims: Vec<i64> = output.tensor_shape.map_or_else(Vec::new, |s| s.dim.iter().map(|d| d.size).collect());
        let [rows, classes] = dims[..] else {
            return Err(tonic::Status::internal(format!("the output's shape is {dims:?}, not [N, classes]")));
        };
        if rows != n || (rows * classes) as usize != output.float_val.len() {
            return Err(tonic::Status::internal("the output's shape does not match its values or the request"));
        }
        let probabilities = output.float_val.chunks(classes.max(1) as usize).map(<[f32]>::to_vec).collect();
        Ok(Prediction { probabilities, engine_time, preprocess_time, server_time, queue_time })
    }
}

/// Reads image files for [`Client::predict`].
pub fn read_images(paths: &[impl AsRef<Path>]) -> Result<Vec<Vec<u8>>, String> {
    paths
        .iter()
        .map(|p| std::fs::read(p.as_ref()).map_err(|e| format!("reading {}: {e}", p.as_ref().display())))
        .collect()
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
