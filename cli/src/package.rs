//! `systole package`: write a model package (the seed's service definition) that `systole classify --model`
//! and the server load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use arch::EngineConfig;
use clap::Args;
use runtime::{compile, service};

use crate::classify::{load_model, ModelArgs};

/// Arguments of `systole package`.
#[derive(Debug, Args)]
pub struct PackageArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The engine the weights are quantized for.
    #[arg(long, default_value = "16x16", help = crate::CONFIG_HELP)]
    pub config: EngineConfig,
    /// The package's name (default: the model's).
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the package (conventionally .systole).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs the command.
pub fn run(args: &PackageArgs) -> Result<()> {
    let loaded = load_model(&args.model)?;
    let mut pipeline = loaded.pipeline;
    if let Some(name) = &args.name {
        pipeline.name = name.clone();
    }
    let compiled = compile::compile(&pipeline.graph, &args.config).context("compiling for the engine")?;
    service::write(&args.output, &pipeline, &compiled)
        .with_context(|| format!("writing the package {}", args.output.display()))?;
    let engine_layers = compiled.steps().iter().filter(|s| s.on_engine()).count();
    let bytes = std::fs::metadata(&args.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: package '{}' for a {} engine: {} classes, {} of {} steps on the engine, {:.1} MB",
        args.output.display(),
        pipeline.name,
        args.config.spec().unwrap_or_else(|| args.config.to_string()),
        pipeline.labels.len(),
        engine_layers,
        compiled.steps().len(),
        bytes as f64 / 1e6
    );
    Ok(())
}
