//! Writes ResNet-50 v1.5 with deterministic synthetic weights (`runtime::models::resnet50`) to an ONNX file,
//! for onnxruntime and other tools to run the same network as systole (benchmarks, cross-checks).
//!
//! ```text
//! cargo run --release -p runtime --example export_resnet50 -- OUT.onnx [--seed N] [--batch N] [--opset N]
//! ```
//!
//! Defaults: seed 0, batch 1, opset 17. The model's input is `x [batch, 3, 224, 224]` (float32, a
//! normalised image), its output `logits [batch, 1000]`; the same seed always gives the same weights.

use std::process::ExitCode;
use std::time::Instant;

use runtime::models::resnet50::resnet50_synthetic;
use runtime::onnx::export::{export_model, DEFAULT_OPSET};

const USAGE: &str = "usage: export_resnet50 OUT.onnx [--seed N] [--batch N] [--opset N]";

struct Args {
    out: String,
    seed: u64,
    batch: usize,
    opset: i64,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args { out: String::new(), seed: 0, batch: 1, opset: DEFAULT_OPSET };
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--seed" => args.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--batch" => args.batch = value("--batch")?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--opset" => args.opset = value("--opset")?.parse().map_err(|e| format!("--opset: {e}"))?,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if args.out.is_empty() => args.out = s.to_string(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if args.out.is_empty() {
        return Err("missing the output file".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t = Instant::now();
    let result = resnet50_synthetic(args.seed, args.batch)
        .map_err(|e| format!("building ResNet-50: {e}"))
        .and_then(|g| export_model(&g, args.opset).map_err(|e| format!("exporting: {e}")))
        .and_then(|bytes| {
            std::fs::write(&args.out, &bytes).map_err(|e| format!("writing {}: {e}", args.out))?;
            Ok(bytes.len())
        });
    match result {
        Ok(size) => {
            println!(
                "wrote {} ({size} bytes): ResNet-50 v1.5, synthetic weights of seed {}, batch {}, opset {}, in {:.2?}",
                args.out,
                args.seed,
                args.batch,
                args.opset,
                t.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
