//! Real non-Rust clients against the server over loopback with TLS on a self-signed certificate:
//!
//! - `clients/tf_predict.py`: Python `grpcio` with stubs generated from the TF-Serving protos, sending what the
//!   Azure ML accelerated-models client sends (a DT_STRING `images` tensor, `authorization` bare or as a
//!   bearer token, the service-route header, and trust through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`);
//! - `clients/triton.py`: `tritonclient` over KServe v2 gRPC and REST.
//!
//! Each script prints one JSON line per case; the assertions are here. The packages come from
//! `clients/requirements.txt`, which the test command installs; elsewhere, without them, these tests skip
//! unless `SYSTOLE_REQUIRE_PYTHON_CLIENTS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Whether the Python packages are installed (panics when they must be and are not).
fn python_clients_available() -> bool {
    let probe =
        Command::new("python3").args(["-c", "import grpc_tools, tritonclient.grpc, tritonclient.http"]).output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = probe.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(
            std::env::var_os("SYSTOLE_REQUIRE_PYTHON_CLIENTS").is_none(),
            "SYSTOLE_REQUIRE_PYTHON_CLIENTS is set and the Python clients cannot run: {why}"
        );
        eprintln!("SKIP: the Python clients' packages are missing (pip install -r server/tests/clients/requirements.txt): {why}");
    }
    ok
}

/// Runs a client script and returns its JSON lines, keyed by case.
async fn run(script: &str, args: Vec<String>, env: Vec<(&'static str, PathBuf)>) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("python3");
        command.arg(&path).args(&args).env_remove("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{script}: {e}: {l}"))).collect()
}

/// The result of `case`.
fn case<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results.iter().find(|r| r["case"] == name).unwrap_or_else(|| panic!("no result for case {name}: {results:?}"))
}

/// Asserts that `case` ended with `code` and, for an error, carries a request id when `with_id`.
fn expect_code(results: &[Value], name: &str, code: &str, with_id: bool) {
    let r = case(results, name);
    assert_eq!(r["code"], code, "case {name}: {r}");
    if with_id && code != "OK" {
        assert!(r["request_id"].as_str().is_some_and(|id| id.len() == 16), "case {name} has no request_id: {r}");
    }
}

/// The test's server: ResNet-20 behind TLS and keys, the images as PNG files, and their expected classes.
struct Setup {
    server: server::Server,
    dir: tempfile::TempDir,
    cert: PathBuf,
    keys: server::Keys,
    images: Vec<String>,
    top1: Vec<usize>,
}

async fn setup(data: &Path) -> Setup {
    let service = common::resnet20_service(data);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed(dir.path());
    let keys = server::Keys::generate();
    keys.write(&dir.path().join("keys.txt")).unwrap();
    let mut images = Vec::new();
    let mut top1 = Vec::new();
    for (i, (png, _)) in common::cifar_pngs(data, 4).into_iter().enumerate() {
        top1.push(common::argmax(&common::expected_probabilities(&service, &png)));
        let path = dir.path().join(format!("image{i}.png"));
        std::fs::write(&path, png).unwrap();
        images.push(path.to_string_lossy().into_owned());
    }
    let mut config = common::config(service);
    config.tls = Some((cert.clone(), key));
    config.keys = Some(dir.path().join("keys.txt"));
    let server = common::start(config).await;
    Setup { server, dir, cert, keys, images, top1 }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_python_client_with_primary_secondary_wrong_and_no_key() {
    let Some(data) = common::data_dir() else { return };
    if !python_clients_available() {
        return;
    }
    let s = setup(&data).await;
    let target = format!("127.0.0.1:{}", s.server.local_addr().port());
    let cert = s.cert.to_string_lossy().into_owned();
    let base = [vec!["--target".into(), target.clone(), "--ca".into(), cert.clone()]];

    // The primary key, bare (the C# and Go clients' way): every case.
    let mut a = [base[0].clone(), args(&["--key", &s.keys.primary])].concat();
    a.extend(s.images.iter().cloned());
    let results = run("tf_predict.py", a, vec![]).await;
    expect_code(&results, "images", "OK", true);
    let images = case(&results, "images");
    assert_eq!(images["shape"], serde_json::json!([4, 10]));
    assert_eq!(images["top1"], serde_json::json!(s.top1), "the Python client sees the engine's classes");
    for sum in images["sums"].as_array().unwrap() {
        assert!((sum.as_f64().unwrap() - 1.0).abs() < 1e-4, "softmax rows sum to 1: {images}");
    }
    expect_code(&results, "float_content", "OK", true);
    expect_code(&results, "float_val", "OK", true);
    assert_eq!(case(&results, "float_content")["top1"], case(&results, "float_val")["top1"]);
    for bad in ["corrupt_image", "empty_tensor", "wrong_dtype"] {
        expect_code(&results, bad, "INVALID_ARGUMENT", true);
    }
    expect_code(&results, "oversized", "RESOURCE_EXHAUSTED", true);
    expect_code(&results, "unimplemented", "UNIMPLEMENTED", true);

    // The secondary key as a bearer token (the Python client's way), trusting the certificate through
    // GRPC_DEFAULT_SSL_ROOTS_FILE_PATH as the Azure client is told to.
    let mut a = args(&["--target", &target, "--tls", "--key", &s.keys.secondary, "--bearer", "--case", "images"]);
    a.push(s.images[0].clone());
    let results = run("tf_predict.py", a, vec![("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", s.cert.clone())]).await;
    expect_code(&results, "images", "OK", true);
    assert_eq!(case(&results, "images")["top1"], serde_json::json!([s.top1[0]]));

    // A wrong key and no key.
    for key in [Some("0123456789abcdef0123456789abcdef"), None] {
        let mut a = [base[0].clone(), args(&["--case", "images"])].concat();
        if let Some(k) = key {
            a.extend(args(&["--key", k]));
        }
        a.push(s.images[0].clone());
        let results = run("tf_predict.py", a, vec![]).await;
        expect_code(&results, "images", "UNAUTHENTICATED", true);
    }

    // After all that, the server still serves.
    let mut a = [base[0].clone(), args(&["--key", &s.keys.primary, "--case", "images"])].concat();
    a.push(s.images[1].clone());
    expect_code(&run("tf_predict.py", a, vec![]).await, "images", "OK", true);
    s.server.shutdown().await;
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_over_kserve_grpc_and_rest() {
    let Some(data) = common::data_dir() else { return };
    if !python_clients_available() {
        return;
    }
    let s = setup(&data).await;
    let url = format!("127.0.0.1:{}", s.server.local_addr().port());
    let cert = s.cert.to_string_lossy().into_owned();
    for (protocol, ok_codes) in
        [("grpc", ["INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED"]), ("http", ["400", "404", "401"])]
    {
        let [invalid, not_found, unauthenticated] = ok_codes;
        let mut a = args(&["--url", &url, "--protocol", protocol, "--ca", &cert, "--key", &s.keys.primary]);
        a.extend(s.images.iter().cloned());
        let results = run("triton.py", a, vec![]).await;
        for health in ["live", "ready", "model_ready"] {
            expect_code(&results, health, "OK", false);
            assert_eq!(case(&results, health)["value"], true, "{protocol} {health}");
        }
        expect_code(&results, "metadata", "OK", false);
        let metadata = &case(&results, "metadata")["value"];
        assert_eq!(metadata["model"]["name"], "resnet20-cifar10", "{protocol}: {metadata}");
        expect_code(&results, "infer_bytes", "OK", false);
        assert_eq!(case(&results, "infer_bytes")["top1"], serde_json::json!(s.top1), "{protocol}");
        expect_code(&results, "infer_fp32", "OK", false);
        expect_code(&results, "corrupt_image", invalid, false);
        expect_code(&results, "unknown_model", not_found, false);
        if protocol == "http" {
            expect_code(&results, "infer_fp32_json", "OK", false);
            assert_eq!(case(&results, "infer_fp32_json")["top1"], case(&results, "infer_fp32")["top1"]);
            // tritonclient base64-encodes BYTES in JSON; KServe's JSON BYTES are the strings themselves, which
            // are not an image: a clear refusal (images go in the binary extension).
            expect_code(&results, "infer_bytes_json", invalid, false);
        }
        // Without a key: health answers (probes have no key), inference is refused.
        let mut a =
            args(&["--url", &url, "--protocol", protocol, "--ca", &cert, "--case", "live", "--case", "infer_bytes"]);
        a.push(s.images[0].clone());
        let results = run("triton.py", a, vec![]).await;
        expect_code(&results, "live", "OK", false);
        expect_code(&results, "infer_bytes", unauthenticated, false);
    }
    s.server.shutdown().await;
}
