//! Helpers shared by the runtime's integration tests: locating the real test data (`SYSTOLE_DATA`) and the
//! files of the installed `onnx` Python wheel, and running small Python snippets.
//!
//! CI (scripts/test.sh) always installs `onnx==1.18.0` (the last release whose wheel ships the backend node
//! tests) and `onnxruntime`, and always has the data folder; on a machine without them the tests that need
//! them print why they skip.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The real-data folder: `$SYSTOLE_DATA`, or `../shared/data` beside the workspace root.
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SYSTOLE_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: data folder {} not found (set SYSTOLE_DATA; CI always has it)", dir.display());
        None
    }
}

/// Runs `python3 -c code args…` and returns its stdout, or `None` (with a printed reason) if it fails.
pub fn python(code: &str, args: &[&str]) -> Option<String> {
    match Command::new("python3").arg("-c").arg(code).args(args).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(out) => {
            eprintln!("SKIP: python3 failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        Err(e) => {
            eprintln!("SKIP: cannot run python3 ({e}); CI installs python3 with onnx and onnxruntime");
            None
        }
    }
}

/// The directory of the installed `onnx` Python package.
pub fn onnx_dir() -> Option<PathBuf> {
    python("import onnx, os; print(os.path.dirname(onnx.__file__))", &[]).map(PathBuf::from)
}

/// Largest `|a - b| / max(|b|, floor)` over two equally long sequences.
pub fn max_rel_err(a: &[f32], b: &[f32], floor: f32) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(floor)).fold(0.0, f32::max)
}
