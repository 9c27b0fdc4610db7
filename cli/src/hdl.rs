//! `systole hdl export`: write the engine's Verilog for a configuration (and the Verilator lint waivers it
//! needs), for hardware engineers to simulate, lint and synthesise with their own tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arch::EngineConfig;
use clap::{Args, ValueEnum};
use hdl::export::Part;

/// Arguments of `systole hdl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The engine configuration to generate.
    #[arg(long, value_name = "CFG", default_value = "16x16", help = crate::CONFIG_HELP)]
    pub config: EngineConfig,
    /// What to export: the whole engine (BAR0, memory channels, buffers, units and array; tiny, 8x8, 16x16
    /// and 32x32) or the systolic array alone (any stamped array shape).
    #[arg(long, value_enum, default_value_t = PartArg::Engine)]
    pub part: PartArg,
    /// Where to write the Verilog (conventionally .v).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also write the Verilator lint waivers the Verilog needs (a .vlt control file; each waiver is
    /// justified inside it).
    #[arg(long, value_name = "FILE")]
    pub waivers: Option<PathBuf>,
}

/// The `--part` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    /// The whole engine.
    Engine,
    /// The systolic array with its accumulator adders.
    Array,
}

impl From<PartArg> for Part {
    fn from(p: PartArg) -> Part {
        match p {
            PartArg::Engine => Part::Engine,
            PartArg::Array => Part::Array,
        }
    }
}

/// Stack for generating large arrays: rust-hdl builds deep recursive structures (a 32×32 array needs more
/// than the 8 MiB of the main thread in unoptimised builds).
const GENERATOR_STACK_BYTES: usize = 256 << 20;

/// Runs the command.
pub fn export(args: &ExportArgs) -> Result<()> {
    let cfg = args.config;
    let part = Part::from(args.part);
    let verilog = std::thread::Builder::new()
        .name("hdl-export".into())
        .stack_size(GENERATOR_STACK_BYTES)
        .spawn(move || hdl::export::export_verilog(&cfg, part))
        .context("starting the generator thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the Verilog generator panicked"))?
        .with_context(|| format!("generating the {} Verilog for {}", part.name(), describe(&cfg)))?;
    write(&args.output, &verilog)?;
    if let Some(path) = &args.waivers {
        write(path, hdl::export::verilator_waivers())?;
    }
    println!(
        "{}: top module {} for {} ({} lines, generator {})",
        args.output.display(),
        hdl::export::top_module_name(&cfg, part),
        describe(&cfg),
        verilog.lines().count(),
        hdl::export::GENERATOR_VERSION
    );
    Ok(())
}

fn describe(cfg: &EngineConfig) -> String {
    cfg.spec().unwrap_or_else(|| cfg.to_string())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
