//! What the server's integration tests share: the real ResNet-20 (CIFAR-10) model package, real CIFAR-10 test
//! images encoded as PNG files, the expected probabilities computed without the server, TLS material and a
//! running server.
#![allow(dead_code)] // Each test file uses a different part.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runtime::compile;
use runtime::pipeline::{softmax, Pipeline};
use runtime::preprocess::PreprocessConfig;
use runtime::service::Service;
use server::{ModelConfig, Server, ServerConfig};

/// The CIFAR-10 class names, in the model's output order.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The real-data folder: `$SYSTOLE_DATA`, or `../shared/data` beside the workspace. `None` (with a SKIP
/// message) when it is missing, which CI never allows: there the folder is always present.
pub fn data_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the server crate is in the workspace");
    let dir = std::env::var_os("SYSTOLE_DATA").map(PathBuf::from).unwrap_or_else(|| root.join("../shared/data"));
    if dir.join("resnet20-cifar10.onnx").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIP: data folder {} not found (set SYSTOLE_DATA; CI always has it)", dir.display());
        None
    }
}

/// The real ResNet-20 as the package `resnet20-cifar10` for the emulated 16×16 MSFP16 engine.
pub fn resnet20_service(data: &Path) -> Service {
    let graph = runtime::onnx::load(data.join("resnet20-cifar10.onnx"), &runtime::onnx::ImportOptions { batch: 1 })
        .expect("the ONNX model imports");
    let labels = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    let pipeline = Pipeline::new("resnet20-cifar10", PreprocessConfig::cifar10(), graph, labels).expect("a pipeline");
    let compiled = compile::compile(&pipeline.graph, &arch::EngineConfig::default()).expect("it compiles");
    Service { pipeline, compiled }
}

/// Opens the emulated engine of `config`.
pub fn emu_opener(config: arch::EngineConfig) -> server::DeviceOpener {
    Arc::new(move || {
        let backend = driver::device::DeviceSpec::Emu(config).open().map_err(|e| e.to_string())?;
        driver::Accelerator::open(backend).map_err(|e| e.to_string())
    })
}

/// The first `n` real CIFAR-10 test images as PNG files' bytes, with their labels.
pub fn cifar_pngs(data: &Path, n: usize) -> Vec<(Vec<u8>, usize)> {
    let dir = data.join("cifar10-ic01");
    let labels = std::fs::read_to_string(dir.join("y_labels.csv")).expect("the labels file");
    labels
        .lines()
        .take(n)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let raw = std::fs::read(dir.join(fields[0])).expect("the image file");
            let image = image::RgbImage::from_raw(32, 32, raw).expect("32×32 RGB");
            let mut png = Vec::new();
            image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("PNG encoding");
            (png, fields[2].trim().parse().expect("a label"))
        })
        .collect()
}

/// What the server must answer for `png`: the same pipeline run directly on an emulated engine, softmax in
/// f32.
pub fn expected_probabilities(service: &Service, png: &[u8]) -> Vec<f32> {
    let mut acc = emu_opener(*service.compiled.config())().expect("an emulated engine");
    let x = service.pipeline.input(png).expect("the image preprocesses");
    let run = service.compiled.run(&mut acc, &[x]).expect("the model runs");
    let logits = run.values[0].view().into_dimensionality::<ndarray::Ix2>().expect("[1, classes]");
    softmax(logits.row(0)).into_iter().map(|p| p as f32).collect()
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as `cert.pem` and `key.pem` in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A server configuration for `service` on a free loopback port, keys re-read every 50 ms.
pub fn config(service: Service) -> ServerConfig {
    let open = emu_opener(*service.compiled.config());
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![ModelConfig { name: None, service, open }]);
    config.key_poll = Duration::from_millis(50);
    config.drain = Duration::from_secs(20);
    config
}

/// Starts a server, failing the test with the reason if it cannot.
pub async fn start(config: ServerConfig) -> Server {
    Server::start(config).await.unwrap_or_else(|e| panic!("the server does not start: {e}"))
}

/// A plain-text client of the server, with `key`.
pub async fn client(server: &Server, key: Option<&str>) -> server::client::Client {
    let target = server::client::Target {
        host: "127.0.0.1".into(),
        port: server.local_addr().port(),
        tls_ca: None,
        key: key.map(str::to_string),
    };
    server::client::Client::connect(&target).await.expect("connects")
}

/// The index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a))).unwrap_or(0)
}
