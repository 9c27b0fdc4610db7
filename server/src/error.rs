//! What can go wrong with a request, as one type that each protocol maps to its own status codes.

use thiserror::Error;

/// Why a request failed. Each variant is one status class: gRPC code, HTTP status and metrics label.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// The request itself is wrong: a corrupt image, an empty or mis-shaped tensor, an unsupported dtype.
    /// Clients must not retry it (the Azure Python client retries every other code five times).
    #[error("{0}")]
    InvalidArgument(String),
    /// No such model is served.
    #[error("{0}")]
    NotFound(String),
    /// The key is wrong or missing.
    #[error("{0}")]
    Unauthenticated(String),
    /// The queue is full, or the request exceeds a size limit: back-pressure, retry later or send less.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request's deadline passed before its result was ready.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server is shutting down or the engine is gone.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the server or the engine (a device error, a bug): logged with the request id.
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The gRPC status code.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ServeError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            ServeError::NotFound(_) => tonic::Code::NotFound,
            ServeError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            ServeError::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            ServeError::DeadlineExceeded(_) => tonic::Code::DeadlineExceeded,
            ServeError::Unavailable(_) => tonic::Code::Unavailable,
            ServeError::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The HTTP status of the REST API.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ServeError::InvalidArgument(_) => S::BAD_REQUEST,
            ServeError::NotFound(_) => S::NOT_FOUND,
            ServeError::Unauthenticated(_) => S::UNAUTHORIZED,
            ServeError::ResourceExhausted(_) => S::TOO_MANY_REQUESTS,
            ServeError::DeadlineExceeded(_) => S::GATEWAY_TIMEOUT,
            ServeError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            ServeError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status with this error's message.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), self.to_string())
    }
}

impl From<ServeError> for tonic::Status {
    fn from(e: ServeError) -> Self {
        e.to_status()
    }
}
