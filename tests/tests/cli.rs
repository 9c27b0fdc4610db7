//! Drives the built `systole` binary as a user would and checks what it prints and how it exits.
//!
//! # Finding the binary
//! Cargo sets `CARGO_BIN_EXE_<name>` only for the integration tests of the package that owns the binary,
//! and `cli` is a binary-only package, so this package can neither use that variable nor depend on `cli`.
//! A path guessed under `target/` is not safe either: `cargo test` builds `cli`'s test harness, not the
//! plain `systole` executable, so a guessed file may be missing or, worse, stale.
//!
//! So the first test that needs the binary asks cargo to build it: `cargo build -p cli --bin systole
//! --message-format=json` with the cargo that runs these tests (`$CARGO`), in the same profile family
//! (`--release` when this test was built without debug assertions), and takes the executable's path from
//! cargo's `compiler-artifact` message. That always tests the current sources, honours `CARGO_TARGET_DIR`
//! and cargo configuration, and happens once per test process (the result is cached in a `OnceLock`).
//! Cargo releases its build lock before it runs test binaries, so the nested build does not deadlock.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root (this package lives in `<root>/tests`).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests package is inside the workspace")
}

/// Builds `systole` (once per process) and returns the path of the executable.
fn systole_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args([
            "build",
            "--package",
            "cli",
            "--bin",
            "systole",
            "--message-format=json-render-diagnostics",
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("running cargo to build systole");
        assert!(out.status.success(), "cargo build -p cli failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).expect("cargo prints UTF-8 JSON");
        let exe = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "systole")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no executable for the systole binary");
        assert!(exe.is_file(), "{} does not exist", exe.display());
        exe
    })
}

/// Runs `systole` with `args`.
fn systole(args: &[&str]) -> Output {
    Command::new(systole_bin()).args(args).output().expect("running systole")
}

/// Runs `systole` with `args`, asserts it succeeded, and returns its standard output.
fn systole_ok(args: &[&str]) -> String {
    let out = systole(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systole {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout
}

/// Runs `systole` with `args`, asserts it failed cleanly (non-zero exit, no panic), and returns its standard
/// error.
fn systole_err(args: &[&str]) -> String {
    let out = systole(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "systole {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(out.status.code(), Some(101), "exit code 101 is Rust's panic code: {stderr}");
    assert!(!stderr.contains("panicked"), "systole {args:?} panicked:\n{stderr}");
    assert!(stderr.contains("error"), "no error message for {args:?}:\n{stderr}");
    stderr
}

/// The SQNR the demo reports, in dB.
fn sqnr(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SQNR"))
        .unwrap_or_else(|| panic!("no SQNR line in:\n{stdout}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the SQNR in {line:?}"))
}

/// A layer small enough for the unoptimised test build: M = 8, K = 64, N = 32.
const SMALL_LAYER: [&str; 6] = ["--m", "8", "--k", "64", "--n", "32"];

/// Runs `systole arch demo` on [`SMALL_LAYER`] with `config` and `extra` arguments; returns its output.
fn demo(config: &str, extra: &[&str]) -> String {
    let mut args = vec!["arch", "demo", "--config", config];
    args.extend(SMALL_LAYER);
    args.extend(extra);
    systole_ok(&args)
}

#[test]
fn demo_runs_and_both_kernels_agree_to_the_bit() {
    let out = demo("tiny", &[]);
    assert!(out.contains("bit-identical"), "{out}");
    for expected in ["cycles", "MAC utilisation", "latency", "LOAD", "GEMM", "max abs error"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let db = sqnr(&out);
    assert!(db > 30.0, "MSFP16 should give more than 30 dB, got {db}");
    // Starting from the reference kernel checks the fast one the other way round.
    let out = demo("tiny", &["--kernel", "reference", "--activation", "none"]);
    assert!(out.contains("reference vs fast: bit-identical"), "{out}");
}

#[test]
fn fewer_mantissa_bits_give_lower_sqnr() {
    let msfp16 = sqnr(&demo("tiny", &[]));
    let msfp12 = sqnr(&demo("tiny-msfp12", &[]));
    assert!(msfp12 < msfp16, "MSFP12 ({msfp12} dB) should be less accurate than MSFP16 ({msfp16} dB)");
    // Three magnitude bits still carry the signal.
    assert!(msfp12 > 10.0, "MSFP12 gave only {msfp12} dB");
}

#[test]
fn demo_is_deterministic_for_a_seed() {
    let a = demo("tiny", &["--seed", "42"]);
    assert_eq!(a, demo("tiny", &["--seed", "42"]));
    assert_ne!(sqnr(&a), sqnr(&demo("tiny", &["--seed", "43"])));
}

#[test]
fn info_describes_the_configuration() {
    let out = systole_ok(&["arch", "info", "--config", "16x16"]);
    for expected in ["16x16", "msfp16", "block size", "exponent bias", "CONFIG_ARRAY", "64.00 GMAC/s"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let out = systole_ok(&["arch", "info", "--config", "32x32-msfp12"]);
    assert!(out.contains("32x32 msfp12"), "{out}");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let err = systole_err(&["arch", "demo", "--k", "30"]);
    assert!(err.contains("multiple of the block size 16"), "{err}");
    let err = systole_err(&["arch", "demo", "--config", "3x3"]);
    assert!(err.contains("3x3") && err.contains("power of two"), "{err}");
    let err = systole_err(&["arch", "info", "--config", "16x16-fp8"]);
    assert!(err.contains("fp8"), "{err}");
    let err = systole_err(&["arch", "demo", "--n", "8"]);
    assert!(err.contains("N must be a positive multiple"), "{err}");
    let err = systole_err(&["arch", "demo", "--m", "0"]);
    assert!(err.contains("M must be at least 1"), "{err}");
    // Errors from the arch crate's program builder come through with their message.
    let err = systole_err(&["arch", "demo", "--config", "tiny", "--m", "1", "--k", "1024", "--n", "64"]);
    assert!(err.contains("weight buffer holds 1024"), "{err}");
}

#[test]
fn only_implemented_commands_exist() {
    let err = systole_err(&["bitstream"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["score", "--help"],
        &["keys", "generate", "--help"],
        &["arch", "--help"],
        &["arch", "info", "--help"],
        &["arch", "demo", "--help"],
        &["classify", "--help"],
        &["hdl", "export", "--help"],
    ] {
        let out = systole_ok(args);
        assert!(out.contains("Usage: systole"), "{out}");
    }
}

#[test]
fn hdl_export_writes_verilog_with_its_configuration_and_waivers() {
    let dir = tempfile::tempdir().unwrap();
    let (v, vlt) = (dir.path().join("tiny.v"), dir.path().join("waivers.vlt"));
    let out = systole_ok(&[
        "hdl",
        "export",
        "--config",
        "tiny",
        "-o",
        v.to_str().unwrap(),
        "--waivers",
        vlt.to_str().unwrap(),
    ]);
    assert!(out.contains("systole_engine_4x4_msfp16"), "{out}");
    let verilog = std::fs::read_to_string(&v).unwrap();
    assert!(verilog.contains("module systole_engine_4x4_msfp16"), "the top module is named for the configuration");
    assert!(verilog.contains("bar$rd_data") && verilog.contains("load_dma$rd_req_valid"), "the engine's ports");
    assert!(verilog.starts_with("//"), "the file starts with its header");
    assert!(verilog.contains("tiny") || verilog.contains("4x4"), "the header records the configuration");
    assert!(std::fs::read_to_string(&vlt).unwrap().contains("lint_off"), "the waivers are a Verilator control file");
    // The array alone, for a shape the whole engine is not built for.
    let array = dir.path().join("array.v");
    let out =
        systole_ok(&["hdl", "export", "--config", "8x8-msfp12", "--part", "array", "-o", array.to_str().unwrap()]);
    assert!(out.contains("systole_array_8x8_msfp12"), "{out}");
    let err = systole_err(&["hdl", "export", "--config", "8x8-msfp12", "-o", array.to_str().unwrap()]);
    assert!(err.contains("engine_top!"), "the engine is refused with what to add: {err}");
    // An array size that is not stamped out is refused with what to do about it, and writes nothing.
    let missing = dir.path().join("no.v");
    let err = systole_err(&["hdl", "export", "--config", "4x8", "-o", missing.to_str().unwrap()]);
    assert!(err.contains("STAMPED") && !missing.exists(), "{err}");
}

#[test]
fn device_selftest_passes_on_the_emulated_engine() {
    for device in ["emu:tiny", "emu:8x8-msfp12"] {
        let out = systole_ok(&["device", "selftest", "--device", device]);
        assert!(out.contains("0 differ from the golden model"), "{out}");
        assert!(out.contains("result       PASS"), "{out}");
    }
    let out = systole_ok(&["device", "info", "--device", "emu:32x32"]);
    assert!(out.contains("32x32") && out.contains("mxint8") && out.contains("0x53595354"), "{out}");
    let out = systole_ok(&["device", "list"]);
    assert!(out.starts_with("emu") && out.contains("rust-hdl:CONFIG"), "{out}");
}

/// A simulated engine as a device of the command line: the engine's circuit in rust-hdl's simulator
/// (`rust-hdl:tiny`, no external tool needed) identifies itself through BAR0 as the hardware would. The
/// Verilator models are driven through the same `sim::open_device` by the sim crate's tests.
#[test]
fn device_info_reaches_the_simulated_circuit() {
    let out = systole_ok(&["device", "info", "--device", "rust-hdl:tiny"]);
    assert!(out.contains("rust-hdl:tiny") && out.contains("0x53595354") && out.contains("4x4"), "{out}");
}

#[test]
fn unreachable_devices_fail_with_a_clear_message() {
    let err = systole_err(&["device", "info", "--device", "fpga0"]);
    assert!(err.contains("expected emu, emu:CONFIG, vfio:PCI-ADDRESS, verilator:MODEL or rust-hdl:CONFIG"), "{err}");
    // A Verilator model this build does not have: the message names the ones it has and how to build it.
    let err = systole_err(&["device", "info", "--device", "verilator:64x64"]);
    assert!(err.contains("no Verilator model `64x64`") && err.contains("SYSTOLE_SIM_MODELS=64x64"), "{err}");
    // No such PCI device on this machine: the driver says so and nothing panics.
    let err = systole_err(&["device", "selftest", "--device", "vfio:0000:ff:1f.7"]);
    assert!(err.contains("0000:ff:1f.7"), "{err}");
    let err = systole_err(&["device", "list", "--pci-id", "12345"]);
    assert!(err.contains("VENDOR:DEVICE"), "{err}");
}

/// The real-data folder: `$SYSTOLE_DATA`, or `../shared/data` beside the workspace root.
fn data_dir() -> Option<PathBuf> {
    let dir =
        std::env::var_os("SYSTOLE_DATA").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: data folder {} not found (set SYSTOLE_DATA; CI always has it)", dir.display());
        None
    }
}

#[test]
fn classify_finds_the_macaw_on_the_engine_and_in_f32() {
    let Some(data) = data_dir() else { return };
    let fetched = Command::new(workspace_root().join("scripts/fetch-demo-assets.sh")).output().expect("fetch script");
    if fetched.status.code() == Some(2) {
        eprintln!("SKIP: python3 with pip is unavailable to fetch the weights (CI has it)");
        return;
    }
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    let assets: Vec<String> = String::from_utf8_lossy(&fetched.stdout).lines().map(str::to_string).collect();
    let photo = data.join("imagenet-photos/parrot.jpg");
    let out = systole_ok(&[
        "classify",
        photo.to_str().unwrap(),
        &assets[2],
        "--weights",
        &assets[0],
        "--labels",
        &assets[1],
        "--device",
        "emu:16x16",
    ]);
    let first_rank: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("1. ")).collect();
    assert!(first_rank[0].matches("macaw").count() == 2, "{out}");
    assert!(first_rank[1].matches("espresso").count() == 2, "{out}");
    assert_eq!(out.matches("top-1 agrees").count(), 2, "{out}");
    // A corrupt image is a clear error and the others are still classified.
    let bad = std::env::temp_dir().join("systole-corrupt.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let out = systole(&[
        "classify",
        bad.to_str().unwrap(),
        photo.to_str().unwrap(),
        "--weights",
        &assets[0],
        "--labels",
        &assets[1],
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("systole-corrupt.jpg") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("macaw"));
}

/// `systole package` writes a model package from an ONNX classifier; `systole classify --model` runs it with
/// the packaged engine weights and draws the per-layer report; a device of another configuration, or class
/// names given twice, are clear errors.
#[test]
fn package_then_classify_with_a_report() {
    let Some(data) = data_dir() else { return };
    let dir = std::env::temp_dir().join(format!("systole-cli-package-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let package = dir.join("effnet.systole");
    let (onnx, labels) = (
        data.join("efficientnet-lite0-imagenet.onnx"),
        data.join("imagenet-photos/classification_classes_ILSVRC2012.txt"),
    );
    let out = systole_ok(&[
        "package",
        "--model",
        onnx.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--preprocess",
        "efficientnet-lite0",
        "--config",
        "16x16",
        "--name",
        "effnet-lite0",
        "-o",
        package.to_str().unwrap(),
    ]);
    assert!(
        out.contains("package 'effnet-lite0'") && out.contains("16x16-msfp16") && out.contains("1000 classes"),
        "{out}"
    );

    let photo = data.join("imagenet-photos/hot_dog.jpg");
    let report = dir.join("layers.html");
    let timeline = dir.join("timeline.csv");
    let out = systole_ok(&[
        "classify",
        "--model",
        package.to_str().unwrap(),
        photo.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--timeline",
        timeline.to_str().unwrap(),
    ]);
    // The timeline: one row per instruction, every program ending with FINISH at its last cycle, and the
    // per-opcode summary printed.
    let csv = std::fs::read_to_string(&timeline).expect("timeline written");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("program,instruction,opcode,dispatch,start,end,cycles"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let finishes: Vec<&Vec<&str>> = rows.iter().filter(|r| r[2] == "FINISH").collect();
    assert!(finishes.len() > 10, "a program per layer step or more: {}", finishes.len());
    for r in &rows {
        let n: Vec<u64> = r[3..].iter().map(|x| x.parse().expect("a cycle number")).collect();
        assert!(n[0] <= n[1] && n[1] < n[2] && n[3] == n[2] - n[1], "{r:?}");
    }
    for op in ["LOAD", "GEMM", "POST", "STORE"] {
        assert!(rows.iter().any(|r| r[2] == op), "{op} in the timeline");
    }
    assert!(out.contains("instructions: LOAD") && out.contains("timeline of"), "{out}");
    let first_rank = out.lines().find(|l| l.trim_start().starts_with("1. ")).unwrap_or_default();
    assert_eq!(first_rank.matches("hotdog").count(), 2, "{out}");
    assert!(out.contains("utilisation") && out.contains("SQNR dB") && out.contains("grouped convolution"), "{out}");
    let html = std::fs::read_to_string(&report).expect("report written");
    assert!(html.contains("<svg") && html.contains("_conv_stem"), "the page draws the layers");

    // The package's weights are quantized for 16x16-msfp16: another engine is refused, saying what to do.
    let err = systole_err(&[
        "classify",
        "--model",
        package.to_str().unwrap(),
        photo.to_str().unwrap(),
        "--backend",
        "emu:32x32",
    ]);
    assert!(err.contains("--config 32x32-mxint8"), "{err}");
    let err = systole_err(&[
        "classify",
        "--model",
        package.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        photo.to_str().unwrap(),
    ]);
    assert!(err.contains("drop --labels"), "{err}");
    // An ONNX model whose input the preprocessing cannot make (ResNet-20 takes 32×32 images) is refused.
    let resnet20 = data.join("resnet20-cifar10.onnx");
    let err = systole_err(&[
        "classify",
        "--model",
        resnet20.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        photo.to_str().unwrap(),
    ]);
    assert!(err.contains("[1, 3, 32, 32]") && err.contains("preprocessing makes [1, 3, 224, 224]"), "{err}");
    // A damaged package is refused before anything runs.
    let bytes = std::fs::read(&package).unwrap();
    let cut = dir.join("cut.systole");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = systole_err(&["classify", "--model", cut.to_str().unwrap(), photo.to_str().unwrap()]);
    assert!(err.contains("cut.systole") && !err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running `systole serve`, stopped (SIGTERM) when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Served {
    /// Starts `systole serve ARGS --port 0` and waits for its `listening on` line.
    fn start(args: &[&str]) -> Served {
        use std::io::BufRead;
        let mut child = Command::new(systole_bin())
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting systole serve");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("systole serve ended before listening").unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().expect("a port");
            }
        };
        // Keep reading standard output so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Served { child, port }
    }

    /// Sends SIGTERM, waits, and returns whether it exited cleanly and its standard error.
    fn stop(mut self) -> (bool, String) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exited = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (exited.success(), stderr)
    }
}

/// `systole package` of the real ResNet-20, `systole keys`, `systole serve` with TLS and keys, and
/// `systole score` of real CIFAR-10 photos through it; a wrong key is refused; SIGTERM stops it cleanly; and
/// a server without TLS or keys says so loudly.
#[test]
fn serve_and_score_real_photos_over_tls_with_keys() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
    std::fs::write(path("labels.txt"), classes.join("\n")).unwrap();
    let onnx = data.join("resnet20-cifar10.onnx");
    systole_ok(&[
        "package",
        "--model",
        onnx.to_str().unwrap(),
        "--labels",
        &path("labels.txt"),
        "--preprocess",
        "cifar10",
        "--name",
        "resnet20",
        "-o",
        &path("r20.systole"),
    ]);
    // Keys: generated, never overwritten, one replaced at a time.
    systole_ok(&["keys", "generate", &path("keys.txt")]);
    assert!(systole_err(&["keys", "generate", &path("keys.txt")]).contains("exists"));
    let read_keys = || {
        let text = std::fs::read_to_string(path("keys.txt")).unwrap();
        text.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>()
    };
    let before = read_keys();
    systole_ok(&["keys", "regenerate", "--which", "secondary", &path("keys.txt")]);
    let keys = read_keys();
    assert!(keys[0] == before[0] && keys[1] != before[1], "{before:?} → {keys:?}");
    // Photos: the first three real CIFAR-10 test images as PNG files.
    let labels = std::fs::read_to_string(data.join("cifar10-ic01/y_labels.csv")).unwrap();
    let mut photos = Vec::new();
    for line in labels.lines().take(3) {
        let file = line.split(',').next().unwrap();
        let raw = std::fs::read(data.join("cifar10-ic01").join(file)).unwrap();
        let png = path(&file.replace(".bin", ".png"));
        image::RgbImage::from_raw(32, 32, raw).unwrap().save(&png).unwrap();
        photos.push(png);
    }
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(path("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(path("key.pem"), certified.signing_key.serialize_pem()).unwrap();

    let served = Served::start(&[
        "--package",
        &path("r20.systole"),
        "--keys",
        &path("keys.txt"),
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("key.pem"),
    ]);
    let (port, cert, labels) = (served.port.to_string(), path("cert.pem"), path("labels.txt"));
    let score = |key: &str| {
        let mut args = vec!["score", "--host", "localhost", "--port", &port, "--tls-ca", &cert];
        args.extend(["--key", key, "--labels", &labels]);
        args.extend(photos.iter().map(String::as_str));
        systole(&args)
    };
    let out = score(&keys[1]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("  1. class ").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("  5. class ").count(), 3, "top-5 for each photo: {stdout}");
    assert!(stdout.contains("horse"), "the lippizaner is a horse: {stdout}");
    let refused = score("not-the-key-at-all-0000");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("Unauthenticated") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let (clean, stderr) = served.stop();
    assert!(clean, "SIGTERM stops the server cleanly: {stderr}");
    assert!(!stderr.contains("TLS is OFF") && !stderr.contains("ANYONE"), "{stderr}");

    // Without TLS and keys the server warns on standard error.
    let open = Served::start(&["--package", &path("r20.systole")]);
    let (clean, stderr) = open.stop();
    assert!(clean && stderr.contains("TLS is OFF") && stderr.contains("ANYONE"), "{stderr}");
}
