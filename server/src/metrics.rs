//! The server's Prometheus metrics, served at `/metrics` in the text exposition format.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the server keeps, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by protocol (`tfserving`, `kserve-grpc`, `kserve-rest`) and status code name.
    pub requests: IntCounterVec,
    /// Whole-request latency in seconds as the server sees it (decode to encode), by protocol.
    pub latency: HistogramVec,
    /// Images per batch the engine worker ran.
    pub batch_size: Histogram,
    /// Requests waiting for an engine worker, by model.
    pub queue_depth: IntGaugeVec,
    /// Images scored, by model.
    pub images: IntCounterVec,
    /// Wall-clock seconds the engine workers spent running models, by model: its rate is the engine
    /// utilisation (1.0 = always busy).
    pub engine_busy_seconds: prometheus::CounterVec,
    /// Engine clock cycles the runs took (the device's cycle counter), by model.
    pub engine_cycles: IntCounterVec,
    /// Keys-file rotations taken into force.
    pub key_reloads: IntCounter,
    /// Connections open.
    pub connections: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("systole".into()), None).expect("a valid prefix");
        let latency_buckets = prometheus::exponential_buckets(50e-6, 2.0, 18).expect("valid buckets");
        let batch_buckets = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new("requests_total", "Requests answered, by protocol and status code"),
                &["protocol", "code"],
            )
            .expect("valid metric"),
            latency: HistogramVec::new(
                HistogramOpts::new("request_duration_seconds", "Request latency inside the server")
                    .buckets(latency_buckets),
                &["protocol"],
            )
            .expect("valid metric"),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("batch_size_images", "Images per batch run by an engine worker")
                    .buckets(batch_buckets),
            )
            .expect("valid metric"),
            queue_depth: IntGaugeVec::new(
                Opts::new("queue_depth", "Requests waiting for the engine, by model"),
                &["model"],
            )
            .expect("valid metric"),
            images: IntCounterVec::new(Opts::new("images_total", "Images scored, by model"), &["model"])
                .expect("valid metric"),
            engine_busy_seconds: prometheus::CounterVec::new(
                Opts::new(
                    "engine_busy_seconds_total",
                    "Seconds the engine worker spent running the model (rate = utilisation)",
                ),
                &["model"],
            )
            .expect("valid metric"),
            engine_cycles: IntCounterVec::new(
                Opts::new("engine_cycles_total", "Engine clock cycles of the runs, by model"),
                &["model"],
            )
            .expect("valid metric"),
            key_reloads: IntCounter::new("key_reloads_total", "Keys-file rotations taken into force")
                .expect("valid metric"),
            connections: IntGauge::new("connections", "Connections open").expect("valid metric"),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(m.requests.clone()),
            Box::new(m.latency.clone()),
            Box::new(m.batch_size.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.images.clone()),
            Box::new(m.engine_busy_seconds.clone()),
            Box::new(m.engine_cycles.clone()),
            Box::new(m.key_reloads.clone()),
            Box::new(m.connections.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("each metric is registered once");
        }
        m
    }

    /// Counts one answered request and its latency.
    pub fn record(&self, protocol: &str, code: tonic::Code, seconds: f64) {
        self.requests.with_label_values(&[protocol, code_name(code)]).inc();
        self.latency.with_label_values(&[protocol]).observe(seconds);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encoding to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The canonical upper-case name of a gRPC code (`OK`, `INVALID_ARGUMENT`, …), as clients print it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
