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
    /// The board top level: the engine, its on-chip memory and the UART host bridge (115 200 baud from a
    /// 25 MHz clock, 64 KiB), what bitstreams/ecp5/ulx3s_top.v wraps (tiny and ecp5 configurations).
    Board,
}

impl From<PartArg> for Part {
    fn from(p: PartArg) -> Part {
        match p {
            PartArg::Engine => Part::Engine,
            PartArg::Array => Part::Array,
            PartArg::Board => Part::Board(hdl::export::BoardParams::default()),
        }
    }
}

/// Runs the command.
pub fn export(args: &ExportArgs) -> Result<()> {
    let cfg = args.config;
    let part = Part::from(args.part);
    let verilog = hdl::export::export_verilog_on_large_stack(&cfg, part)
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

/// Arguments of `systole hdl synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The device: ecp5-85f (bitstream for the ULX3S's LFE5U-85F) or xcu250 (Alveo U250 resource estimate).
    #[arg(long, value_name = "DEVICE", default_value = "ecp5-85f")]
    pub target: bitstreams::Device,
    /// The engine configuration to build.
    #[arg(long, value_name = "CFG", default_value = "tiny", help = crate::CONFIG_HELP)]
    pub config: EngineConfig,
    /// The engine clock to constrain and check, MHz (ECP5; default: the configuration's clock).
    #[arg(long, value_name = "MHZ")]
    pub clock_mhz: Option<f64>,
    /// The directory for the Verilog, the netlist, every tool's log, the bitstream and the reports.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// What goes on the device: the board top (ECP5: engine, memory, UART bridge, a bitstream that runs
    /// programs; xcu250: the whole engine) or the configuration's systolic array (ECP5: in a timing harness,
    /// the compute core's resources and Fmax; xcu250: alone).
    #[arg(long, value_enum, default_value_t = SynthPart::Board)]
    pub part: SynthPart,
    /// On-chip memory for the engine's DMA on the ECP5 board, KiB (a power of two up to 64; the `ecp5`
    /// configuration's buffers leave room for 32).
    #[arg(long, value_name = "KIB", default_value_t = 64)]
    pub memory_kib: usize,
    /// nextpnr's placement seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Skip projecting ResNet-50's batch-1 latency (compiling it and counting its cycles takes seconds).
    #[arg(long)]
    pub no_projection: bool,
    /// Map LUTs with ABC9 (timing-driven, synth_ecp5's default: better Fmax) instead of the classic ABC
    /// (several times faster on the engine).
    #[arg(long)]
    pub abc9: bool,
    /// Exit non-zero unless the design fits the device and (ECP5) meets its clock.
    #[arg(long)]
    pub check: bool,
}

/// The `--part` values of `systole hdl synth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SynthPart {
    /// The board top level around the whole engine (on the xcu250: the engine).
    Board,
    /// The systolic array (on the ECP5: in a timing harness).
    Array,
}

/// Runs `systole hdl synth`: the flow with a progress line per step, then the report.
pub fn synth(args: &SynthArgs) -> Result<()> {
    let cfg = args.config;
    let target_mhz = args.clock_mhz.unwrap_or(cfg.clock_mhz as f64);
    let mut spinner: Option<indicatif::ProgressBar> = None;
    let mut progress = |event: bitstreams::Event| match event {
        bitstreams::Event::Started(step) => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix}: {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(step.describe());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            spinner = Some(bar);
        }
        bitstreams::Event::Output(_, line) => {
            if let Some(bar) = &spinner {
                bar.set_message(line);
            }
        }
        bitstreams::Event::Finished(step, took) => {
            if let Some(bar) = spinner.take() {
                bar.finish_and_clear();
            }
            eprintln!("{}: done in {took:.1?}", step.describe());
        }
    };
    let mut report = match args.target {
        bitstreams::Device::Ecp5_85F => {
            let mut opts = bitstreams::ecp5::Ecp5Options::new(cfg, target_mhz, &args.out);
            opts.seed = args.seed;
            opts.memory_bytes = args.memory_kib << 10;
            opts.design = match args.part {
                SynthPart::Board => bitstreams::ecp5::Ecp5Design::Board,
                SynthPart::Array => bitstreams::ecp5::Ecp5Design::ArrayHarness,
            };
            if args.abc9 {
                opts.lut_mapper = bitstreams::ecp5::LutMapper::Abc9;
            }
            bitstreams::ecp5::build(&opts, &mut progress)?
        }
        device @ bitstreams::Device::AlveoU250 => {
            let design = match args.part {
                SynthPart::Board => bitstreams::xilinx::XilinxDesign::Engine,
                SynthPart::Array => bitstreams::xilinx::XilinxDesign::Array,
            };
            bitstreams::xilinx::estimate(&cfg, device, design, &args.out, &mut progress)?
        }
    };
    if !args.no_projection {
        let clock = report.fmax_mhz().unwrap_or(target_mhz);
        match resnet50_cycles(&cfg) {
            Ok(cycles) => {
                report.projection = Some(bitstreams::report::Projection::new("ResNet-50 v1.5, batch 1", cycles, clock))
            }
            Err(e) => report.notes.push(format!("no ResNet-50 projection: {e:#}")),
        }
        report.write(&args.out)?;
    }
    print!("{}", report.summary());
    println!("reports: {0}/report.json, {0}/report.txt", args.out.display());
    if args.check {
        anyhow::ensure!(report.fits, "the design does not fit {}", report.device);
        anyhow::ensure!(report.meets_timing != Some(false), "the design does not meet its {target_mhz} MHz clock");
    }
    Ok(())
}

/// ResNet-50 v1.5's engine cycles for one image on `cfg`, by the golden model (the emulated engine runs the
/// compiled network; cycles depend on the topology only, so synthetic weights count the same).
fn resnet50_cycles(cfg: &EngineConfig) -> Result<u64> {
    use runtime::models::resnet50;
    let graph = resnet50::resnet50_synthetic(0, 1)?;
    let compiled = runtime::compile::compile(&graph, cfg)?;
    let mut device = crate::device::open_with(&driver::device::DeviceSpec::Emu(*cfg), &sim::SimOptions::default())?;
    let x = ndarray::ArrayD::zeros(vec![1, 3, 224, 224]);
    let run = compiled.run(&mut device, std::slice::from_ref(&x))?;
    Ok(run.steps.iter().map(|s| s.stats.counters.cycles).sum())
}
