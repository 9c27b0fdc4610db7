//! What the inference server costs on top of the engine: throughput and latency of the real ResNet-20
//! (CIFAR-10) served over gRPC (TF-Serving Predict, plain text on loopback) on the emulated 16×16 MSFP16
//! engine, against the same compiled model run directly on the same emulated engine, in one process and one
//! run, so the ratios hold on a shared, noisy machine.
//!
//! ```text
//! cargo bench -p server --bench serving
//! SYSTOLE_BENCH_SECS=10 SYSTOLE_BENCH_CLIENTS=32 cargo bench -p server --bench serving
//! ```
//!
//! The model is `$SYSTOLE_DATA/resnet20-cifar10.onnx` and the requests carry real CIFAR-10 test images
//! (`$SYSTOLE_DATA/cifar10-ic01/*.bin`, encoded to PNG once, one image per request); `SYSTOLE_DATA` defaults to
//! `../shared/data` beside the workspace. Without them the bench prints a SKIP line and exits successfully.
//! Each row runs for `SYSTOLE_BENCH_SECS` seconds (default 3) after one untimed warm-up request per client;
//! the concurrent rows use `SYSTOLE_BENCH_CLIENTS` clients (default 16), each on its own connection with one
//! request in flight at a time.
//!
//! Rows:
//! * `engine alone`: `compiled.run` in a loop on an emulated engine, on an input preprocessed once: the bound.
//! * `batch 1, 1 client`: a server with no batching (max batch 1, no delay), sequential requests.
//! * `batch 1, N clients`: the same server, N concurrent clients.
//! * `dynamic batching (8, 2 ms), N clients`: batches of up to 8 images gathered for at most 2 ms.
//!
//! Columns:
//! * `requests`, `wall s`: timed requests completed, and the wall time they took.
//! * `img/s`, `× engine`: throughput, and its ratio to the `engine alone` row's.
//! * `lat p50/p99 ms`: latency seen by the client (for `engine alone`: one `compiled.run`).
//! * `engine p50 ms`: the server's own engine time per request (its `x-systole-engine-us` header).
//! * `busy %`: the share of the row's wall time the engine was running (the sum of engine times over the
//!   wall time). Measured within the row, it is the ratio to quote when the machine is busy and the
//!   `engine alone` row ran at a different speed.
//! * `queue p50 ms`: time waiting in the engine worker's queue (`x-systole-queue-us`): behind other clients'
//!   requests, or for a batch to fill.
//! * `ovh p50/p99 µs`: the server's own overhead per request = the server's time (arrival to response,
//!   `x-systole-server-us`) − engine time − preprocessing time − queue time: routing, the key check,
//!   protobuf, and the hand-offs to and from the engine worker. The issue's goal is p50 ≤ 50 µs.
//! * `rtt−srv p50 µs`: client latency − the server's time: the client's gRPC stack, HTTP/2 and loopback TCP.

// The integration tests' model package, images and emulated engine: one definition for tests and bench.
#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime::service::Service;
use server::client::{Client, Target};
use server::{BatchConfig, ModelConfig, Server, ServerConfig};

/// How many distinct test images the clients cycle through.
const IMAGES: usize = 8;

/// What the environment may override.
struct Settings {
    /// How long each row runs.
    secs: Duration,
    /// Concurrent clients of the concurrent rows.
    clients: usize,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let secs: f64 = env_or("SYSTOLE_BENCH_SECS", 3.0)?;
        let clients: usize = env_or("SYSTOLE_BENCH_CLIENTS", 16)?;
        if !(secs > 0.0 && secs.is_finite()) || clients == 0 {
            return Err("SYSTOLE_BENCH_SECS and SYSTOLE_BENCH_CLIENTS must be positive".into());
        }
        Ok(Settings { secs: Duration::from_secs_f64(secs), clients })
    }
}

/// The environment variable `name` parsed, or `default` when it is unset.
fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}={v:?} is not a valid value")),
        Err(_) => Ok(default),
    }
}

/// One timed request.
struct Sample {
    /// Wall time seen by the caller.
    latency: Duration,
    /// The engine's share of it.
    engine: Duration,
    /// The preprocessing's share of it.
    preprocess: Duration,
    /// The server's whole share of it (arrival to response, as the server measures it).
    server: Duration,
    /// The time it waited in the engine queue (behind other requests, or for its batch to fill).
    queue: Duration,
}

impl Sample {
    /// What the server added besides the engine, preprocessing and queueing: routing, the key check,
    /// protobuf, and the hand-offs to and from the engine worker.
    fn overhead(&self) -> Duration {
        self.server.saturating_sub(self.engine + self.preprocess + self.queue)
    }

    /// What lay outside the server: the client's gRPC stack, HTTP/2 framing and loopback TCP.
    fn transport(&self) -> Duration {
        self.latency.saturating_sub(self.server)
    }
}

/// Durations, sorted, for percentiles.
struct Distribution(Vec<Duration>);

impl Distribution {
    fn new(mut v: Vec<Duration>) -> Distribution {
        v.sort();
        Distribution(v)
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1).
    fn at(&self, q: f64) -> Duration {
        let rank = (self.0.len() as f64 * q).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

/// One row of the table.
struct Row {
    name: String,
    requests: usize,
    wall: Duration,
    latency: Distribution,
    engine: Distribution,
    queue: Distribution,
    /// The engine time of all its requests.
    engine_total: Duration,
    /// `None` for the engine alone, which has no serving overhead.
    overhead: Option<Distribution>,
    /// Client and transport time; `None` for the engine alone.
    transport: Option<Distribution>,
}

impl Row {
    fn new(name: String, wall: Duration, samples: &[Sample], served: bool) -> Row {
        let of = |f: fn(&Sample) -> Duration| Distribution::new(samples.iter().map(f).collect());
        Row {
            name,
            requests: samples.len(),
            wall,
            latency: of(|s| s.latency),
            engine: of(|s| s.engine),
            queue: of(|s| s.queue),
            engine_total: samples.iter().map(|s| s.engine).sum(),
            overhead: served.then(|| of(Sample::overhead)),
            transport: served.then(|| of(Sample::transport)),
        }
    }

    /// Images per second (one image per request).
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    /// The share of the wall time the engine was running, in percent.
    fn busy(&self) -> f64 {
        100.0 * self.engine_total.as_secs_f64() / self.wall.as_secs_f64()
    }
}

const HEADER: &str = "scenario                                 requests  wall s    img/s  × engine  lat p50 ms  lat p99 ms  engine p50 ms  busy %  queue p50 ms  ovh p50 µs  ovh p99 µs  rtt−srv p50 µs";

/// Prints `row`, its throughput as a ratio of `baseline`'s.
fn print_row(row: &Row, baseline: f64) {
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let us = |d: Option<Duration>| d.map_or("-".to_string(), |d| d.as_micros().to_string());
    let ovh = |q: f64| us(row.overhead.as_ref().map(|o| o.at(q)));
    println!(
        "{:<40} {:>9} {:>7.2} {:>8.1} {:>9.3} {:>11} {:>11} {:>14} {:>7.1} {:>13} {:>11} {:>11} {:>15}",
        row.name,
        row.requests,
        row.wall.as_secs_f64(),
        row.throughput(),
        row.throughput() / baseline,
        ms(row.latency.at(0.5)),
        ms(row.latency.at(0.99)),
        ms(row.engine.at(0.5)),
        row.busy(),
        ms(row.queue.at(0.5)),
        ovh(0.5),
        ovh(0.99),
        us(row.transport.as_ref().map(|t| t.at(0.5))),
    );
}

/// The compiled model run directly on an emulated engine for `secs`, on `png` preprocessed once.
fn engine_alone(service: &Service, png: &[u8], secs: Duration) -> Result<Row, String> {
    let mut acc = common::emu_opener(*service.compiled.config())()?;
    let input = service.pipeline.input(png).map_err(|e| format!("preprocessing: {e}"))?;
    let mut run = || -> Result<Duration, String> {
        let t = Instant::now();
        service.compiled.run(&mut acc, std::slice::from_ref(&input)).map_err(|e| format!("engine run: {e}"))?;
        Ok(t.elapsed())
    };
    run()?; // warm-up
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = run()?;
        samples.push(Sample { latency: t, engine: t, preprocess: Duration::ZERO, server: t, queue: Duration::ZERO });
    }
    Ok(Row::new("engine alone (compiled.run)".into(), start.elapsed(), &samples, false))
}

/// A served configuration: how many clients, and how the server batches.
struct Scenario {
    name: String,
    clients: usize,
    batching: BatchConfig,
}

fn scenarios(clients: usize) -> Vec<Scenario> {
    let unbatched = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, ..BatchConfig::default() };
    let dynamic = BatchConfig { max_batch: 8, max_delay: Duration::from_millis(2), ..BatchConfig::default() };
    vec![
        Scenario { name: "batch 1, 1 client".into(), clients: 1, batching: unbatched },
        Scenario { name: format!("batch 1, {clients} clients"), clients, batching: unbatched },
        Scenario { name: format!("dynamic batching (8, 2 ms), {clients} clients"), clients, batching: dynamic },
    ]
}

/// Starts a server for `scenario` on a free loopback port, drives it for `secs`, stops it.
async fn serve(
    service: &Service,
    scenario: &Scenario,
    images: &Arc<Vec<Vec<u8>>>,
    secs: Duration,
) -> Result<Row, String> {
    let open = common::emu_opener(*service.compiled.config());
    let model = ModelConfig { name: None, service: service.clone(), open };
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), vec![model]);
    config.batching = scenario.batching;
    config.drain = Duration::from_secs(1);
    let server = Server::start(config).await?;
    let driven = drive(server.local_addr().port(), scenario.clients, images, secs).await;
    server.shutdown().await;
    let (wall, samples) = driven?;
    Ok(Row::new(scenario.name.clone(), wall, &samples, true))
}

/// Connects `clients` clients and warms each up with one request, then has each send requests one after the
/// other for `secs`. Returns the wall time and every timed request.
async fn drive(
    port: u16,
    clients: usize,
    images: &Arc<Vec<Vec<u8>>>,
    secs: Duration,
) -> Result<(Duration, Vec<Sample>), String> {
    let target = Target { host: "127.0.0.1".into(), port, tls_ca: None, key: None };
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut client = Client::connect(&target).await?;
        timed_predict(&mut client, &images[0]).await?;
        connected.push(client);
    }
    let start = Instant::now();
    let until = start + secs;
    let tasks: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(k, client)| tokio::spawn(client_loop(client, images.clone(), k, until)))
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.map_err(|e| format!("client task: {e}"))??);
    }
    Ok((start.elapsed(), samples))
}

/// Sends requests one after the other until `until`, cycling through `images` from the `first`.
async fn client_loop(
    mut client: Client,
    images: Arc<Vec<Vec<u8>>>,
    first: usize,
    until: Instant,
) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for i in first.. {
        if Instant::now() >= until {
            break;
        }
        samples.push(timed_predict(&mut client, &images[i % images.len()]).await?);
    }
    Ok(samples)
}

/// One Predict request of one image, timed, with the server's own engine and preprocessing times.
async fn timed_predict(client: &mut Client, png: &[u8]) -> Result<Sample, String> {
    let request = vec![png.to_vec()];
    let t = Instant::now();
    let prediction = client.predict(request).await.map_err(|s| format!("predict: {s}"))?;
    let latency = t.elapsed();
    let header = |d: Option<Duration>| d.ok_or_else(|| "the response has no timing headers".to_string());
    Ok(Sample {
        latency,
        engine: header(prediction.engine_time)?,
        preprocess: header(prediction.preprocess_time)?,
        server: header(prediction.server_time)?,
        queue: header(prediction.queue_time)?,
    })
}

fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let Some(data) = common::data_dir() else { return Ok(()) };
    let service = common::resnet20_service(&data);
    let images = Arc::new(common::cifar_pngs(&data, IMAGES).into_iter().map(|(png, _)| png).collect::<Vec<_>>());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "resnet20-cifar10 on emu:{} ({} cores, {:.1} s per row, one {}-byte PNG per request)",
        service.compiled.config().spec().unwrap_or_else(|| service.compiled.config().to_string()),
        cores,
        settings.secs.as_secs_f64(),
        images[0].len()
    );

    let baseline = engine_alone(&service, &images[0], settings.secs)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let served = scenarios(settings.clients)
        .iter()
        .map(|s| runtime.block_on(serve(&service, s, &images, settings.secs)))
        .collect::<Result<Vec<Row>, String>>()?;

    println!("{HEADER}");
    for row in std::iter::once(&baseline).chain(&served) {
        print_row(row, baseline.throughput());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("serving bench: {e}");
        std::process::exit(1);
    }
}
