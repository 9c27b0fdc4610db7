//! The open flow to an ECP5 bitstream: the ULX3S board top, yosys `synth_ecp5`, nextpnr-ecp5, ecppack.
//!
//! # What is built
//! The board module of `hdl::board` (the engine, its on-chip memory and the UART host bridge) inside
//! `bitstreams/ecp5/ulx3s_top.v` (PLL, reset, pins), constrained by `bitstreams/ecp5/ulx3s.lpf`. The PLL is
//! written by ecppll for the target clock from the board's 25 MHz oscillator.
//!
//! # Multipliers and the device's DSPs
//! The LFE5U-85F has 156 MULT18X18D; a 16×16 array has 256 multipliers. Synthesis runs in two parts so the
//! flow can choose: the design is elaborated, flattened and width-reduced (each PE's product is 8×8 bits
//! after `wreduce`), the multipliers are listed, and those beyond the device's DSP budget are marked as soft
//! multipliers (`$__soft_mul`), which `synth_ecp5` builds from LUTs instead of DSPs. The report says how
//! many went where.
//!
//! # Timing
//! nextpnr is run with `--timing-allow-fail`, so a design that misses its clock is still routed and packed;
//! the report's clocks and [`crate::Report::meets_timing`] say whether it met it, and the caller decides.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arch::EngineConfig;

use crate::device::Device;
use crate::report::{self, Bitstream, MultiplierSplit, Report, StepTime};
use crate::tools::{self, Tool};
use crate::{Event, FlowError, Progress, Step};

/// The ULX3S pin-level top (PLL, reset, pins) around the board module.
pub const ULX3S_TOP_V: &str = include_str!("../ecp5/ulx3s_top.v");
/// The ULX3S pin constraints.
pub const ULX3S_LPF: &str = include_str!("../ecp5/ulx3s.lpf");
/// The ULX3S's oscillator, MHz.
pub const BOARD_OSCILLATOR_MHZ: f64 = 25.0;
/// The host serial line's rate (the FTDI bridge runs 3 Mbaud; 115 200 is what every terminal offers).
pub const UART_BAUD: u32 = 115_200;

/// What to build.
#[derive(Clone, Debug)]
pub struct Ecp5Options {
    /// The engine configuration.
    pub config: EngineConfig,
    /// The device (an ECP5).
    pub device: Device,
    /// The engine clock to constrain and reach, MHz.
    pub target_mhz: f64,
    /// Where every file goes (created if missing).
    pub out_dir: PathBuf,
    /// nextpnr's placement seed.
    pub seed: u32,
    /// Bytes of on-chip board memory for the engine's DMA.
    pub memory_bytes: usize,
    /// How yosys maps logic to LUTs.
    pub lut_mapper: LutMapper,
    /// What goes on the device.
    pub design: Ecp5Design,
}

/// What the ECP5 flow puts on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ecp5Design {
    /// The board top (`hdl::board`: engine, memory, UART bridge) in `ulx3s_top.v`: a bitstream that runs
    /// programs.
    #[default]
    Board,
    /// The engine's systolic array (with its accumulator adders) in a timing harness ([`crate::harness`]):
    /// the compute core's resources and Fmax on the device.
    ArrayHarness,
}

/// How yosys maps logic to LUTs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LutMapper {
    /// The classic ABC (`abc -lut 4:7`): not timing-driven, but it mapped the tiny engine in about 3 of the
    /// 7 minutes of its synthesis where ABC9 had not finished after 15 (YoWASP's WebAssembly yosys).
    #[default]
    Abc,
    /// ABC9, what `synth_ecp5` runs: timing-driven with the carry chains' and DSPs' delays (better Fmax).
    Abc9,
}

impl Ecp5Options {
    /// The options for `config` on the 85F at `target_mhz`, writing into `out_dir`.
    pub fn new(config: EngineConfig, target_mhz: f64, out_dir: impl Into<PathBuf>) -> Self {
        Ecp5Options {
            config,
            device: Device::Ecp5_85F,
            target_mhz,
            out_dir: out_dir.into(),
            seed: 1,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            lut_mapper: LutMapper::default(),
            design: Ecp5Design::default(),
        }
    }
}

/// The board memory the flow gives the engine by default: 64 KiB (32 of the 85F's 208 block RAMs).
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 10;

/// The files of a build, in `out_dir`.
#[derive(Clone, Debug)]
pub struct Ecp5Files {
    /// The board module's Verilog.
    pub board_v: PathBuf,
    /// The netlist after synthesis.
    pub netlist: PathBuf,
    /// nextpnr's JSON report.
    pub nextpnr_report: PathBuf,
    /// The bitstream.
    pub bitstream: PathBuf,
}

impl Ecp5Files {
    fn in_dir(dir: &Path) -> Self {
        Ecp5Files {
            board_v: dir.join("board.v"),
            netlist: dir.join("synth.json"),
            nextpnr_report: dir.join("nextpnr-report.json"),
            bitstream: dir.join("ulx3s.bit"),
        }
    }
}

/// Runs the whole flow and returns its report (also written as `report.json` and `report.txt` in
/// `out_dir`). A design whose synthesized resources exceed the device is reported with `fits: false` and a
/// note saying which resource, without placement; one that misses its clock is reported with
/// `meets_timing: Some(false)`. A tool that fails is an error ([`FlowError::ToolFailed`], with its log's end).
pub fn build(opts: &Ecp5Options, progress: Progress) -> Result<Report, FlowError> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir).map_err(FlowError::io(format!("creating {}", dir.display())))?;
    let files = Ecp5Files::in_dir(dir);
    let mut steps = Vec::new();
    let mut generated = Generated { measured: String::new(), board_module: String::new() };
    timed(&mut steps, Step::Generate, progress, &mut |p| {
        generated = generate(opts, &files, p)?;
        Ok(())
    })?;
    let mut split = MultiplierSplit { total: 0, in_dsp: 0, in_luts: 0 };
    timed(&mut steps, Step::Synthesize, progress, &mut |p| {
        split = synthesize(opts, &generated.board_module, &files, p)?;
        Ok(())
    })?;
    let stat =
        std::fs::read_to_string(dir.join("yosys-stat.json")).map_err(FlowError::io("reading yosys's statistics"))?;
    let synthesized = report::parse_ecp5_stat(&stat, opts.device)?;
    let mut tools = Vec::new();
    for tool in [Tool::Yosys, Tool::NextpnrEcp5] {
        tools.push((tool.command(), tool.version()?));
    }
    // The report as synthesis leaves it; placement, timing and the bitstream fill in the rest.
    let mut report = Report {
        flow: "ecp5".into(),
        device: opts.device.name().into(),
        part: opts.device.part().into(),
        config: opts.config.spec().unwrap_or_else(|| opts.config.to_string()),
        top: format!("ulx3s_top around {}", generated.measured),
        fits: false,
        meets_timing: None,
        resources: synthesized,
        clocks: Vec::new(),
        multipliers: Some(split),
        bitstream: None,
        projection: None,
        tools,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    if let Some(short) = report.resources.iter().find(|r| !r.fits()) {
        // Placement cannot succeed: say so with synthesis's counts instead of waiting for nextpnr to fail.
        let why = format!(
            "does not fit: synthesis needs {} {} where the device has {}; placement was not attempted",
            short.used,
            short.kind.label(),
            short.available.unwrap_or(0)
        );
        report.notes.push(why);
        report.steps = steps;
        report.write(dir)?;
        return Ok(report);
    }
    timed(&mut steps, Step::PlaceAndRoute, progress, &mut |p| place_and_route(opts, &files, p))?;
    timed(&mut steps, Step::Pack, progress, &mut |p| {
        let args = vec!["--compress".to_string(), "board.config".into(), file_name(&files.bitstream)];
        tools::run(Tool::Ecppack, &args, dir, &dir.join("ecppack.log"), Step::Pack, p)
    })?;

    let nextpnr_json = std::fs::read_to_string(&files.nextpnr_report)
        .map_err(FlowError::io(format!("reading {}", files.nextpnr_report.display())))?;
    let (resources, clocks) = report::parse_nextpnr_report(&nextpnr_json, opts.device)?;
    let bytes = std::fs::metadata(&files.bitstream)
        .map_err(FlowError::io(format!("reading {}", files.bitstream.display())))?
        .len();
    report.fits = resources.iter().all(|r| r.fits());
    report.meets_timing = Some(!clocks.is_empty() && clocks.iter().all(|c| c.met()));
    report.resources = resources;
    report.clocks = clocks;
    report.bitstream = Some(Bitstream { path: files.bitstream.clone(), bytes });
    report.steps = steps;
    report.notes.push(match opts.design {
        Ecp5Design::Board => format!(
            "the engine clock comes from the 25 MHz oscillator through an EHXPLLL (ecppll); the host bridge runs \
             {UART_BAUD} baud on the FTDI serial port; {} KiB of on-chip memory serve the engine's DMA",
            opts.memory_bytes >> 10
        ),
        Ecp5Design::ArrayHarness => "the configuration's systolic array with its accumulator adders in a timing \
             harness (inputs from a scan chain, outputs XOR-folded to a pin): the compute core's resources and \
             Fmax, not a runnable engine"
            .to_string(),
    });
    report.write(dir)?;
    Ok(report)
}

/// Runs `f` as `step`: tells `progress` when it starts and ends, and records its wall time in `steps`.
fn timed(
    steps: &mut Vec<StepTime>,
    step: Step,
    progress: Progress,
    f: &mut dyn FnMut(Progress) -> Result<(), FlowError>,
) -> Result<(), FlowError> {
    progress(Event::Started(step));
    let t = Instant::now();
    f(&mut *progress)?;
    let elapsed = t.elapsed();
    progress(Event::Finished(step, elapsed));
    steps.push(StepTime { step, seconds: elapsed.as_secs_f64() });
    Ok(())
}

/// Writes the board's Verilog, the pin-level top, the constraints and the PLL; returns the board module's
/// name.
/// The generated design: the module measured (named in the report) and the board module `ulx3s_top.v` wraps
/// (the same for a board; the harness around it for an array).
struct Generated {
    measured: String,
    board_module: String,
}

fn generate(opts: &Ecp5Options, files: &Ecp5Files, progress: Progress) -> Result<Generated, FlowError> {
    let dir = &opts.out_dir;
    let (top, verilog, board_module) = match opts.design {
        Ecp5Design::Board => {
            let clocks_per_bit = (opts.target_mhz * 1e6 / UART_BAUD as f64).round() as u32;
            let board = hdl::export::BoardParams { clocks_per_bit, memory_bytes: opts.memory_bytes };
            let part = hdl::export::Part::Board(board);
            let top = hdl::export::top_module_name(&opts.config, part);
            let verilog = hdl::export::export_verilog_on_large_stack(&opts.config, part)
                .map_err(|e| FlowError::Generate(e.to_string()))?;
            (top.clone(), verilog, top)
        }
        Ecp5Design::ArrayHarness => {
            let part = hdl::export::Part::Array;
            let top = hdl::export::top_module_name(&opts.config, part);
            let verilog = hdl::export::export_verilog_on_large_stack(&opts.config, part)
                .map_err(|e| FlowError::Generate(e.to_string()))?;
            let ports = crate::harness::module_ports(&verilog, &top)?;
            let harness = crate::harness::harness_verilog(&top, &ports);
            (top, format!("{verilog}\n{harness}"), crate::harness::HARNESS_MODULE.to_string())
        }
    };
    crate::write_file(&files.board_v, &verilog)?;
    crate::write_file(&dir.join("ulx3s_top.v"), ULX3S_TOP_V)?;
    crate::write_file(&dir.join("ulx3s.lpf"), ULX3S_LPF)?;
    let args: Vec<String> = vec![
        "-n".into(),
        "systole_pll".into(),
        "-i".into(),
        format!("{BOARD_OSCILLATOR_MHZ}"),
        "-o".into(),
        format!("{}", opts.target_mhz),
        "-f".into(),
        "pll.v".into(),
    ];
    tools::run(Tool::Ecppll, &args, dir, &dir.join("ecppll.log"), Step::Generate, progress)?;
    Ok(Generated { measured: top, board_module })
}

/// The two yosys runs (see the module documentation); returns how the multipliers were split.
fn synthesize(
    opts: &Ecp5Options,
    board_module: &str,
    files: &Ecp5Files,
    progress: Progress,
) -> Result<MultiplierSplit, FlowError> {
    let dir = &opts.out_dir;
    let read = format!("read_verilog -DSYSTOLE_BOARD={board_module} {} ulx3s_top.v pll.v", file_name(&files.board_v));
    let elaborate = format!(
        "{read}\nsynth_ecp5 -top ulx3s_top -run begin:coarse\nproc\nflatten\nopt_expr\nopt_clean\n\
         opt -nodffe -nosdff\nwreduce\nopt_clean\ntee -q -o multipliers.il dump t:$mul\nwrite_rtlil elaborated.il\n"
    );
    crate::write_file(&dir.join("elaborate.ys"), &elaborate)?;
    run_yosys(dir, "elaborate.ys", "yosys-elaborate.log", progress)?;

    let dumped = std::fs::read_to_string(dir.join("multipliers.il"))
        .map_err(FlowError::io("reading the multipliers yosys listed"))?;
    let multipliers = parse_multipliers(&dumped)?;
    let budget = opts.device.dsp_budget().unwrap_or(u64::MAX);
    let soft: Vec<&Multiplier> = choose_soft_multipliers(&multipliers, budget);
    let soft: Vec<String> = soft.iter().map(|m| format!("ulx3s_top/{}", m.name)).collect();
    crate::write_file(&dir.join("soft-multipliers.sel"), &soft.iter().map(|s| format!("{s}\n")).collect::<String>())?;
    let mark_soft = if soft.is_empty() {
        String::new()
    } else {
        "select -read soft-multipliers.sel\nchtype -set $__soft_mul %\nselect -clear\n".to_string()
    };
    // LUT mapping: ABC9 (timing-driven, what synth_ecp5 runs) or the classic ABC, several times faster on
    // the engine's netlist (see LutMapper).
    let map_luts = match opts.lut_mapper {
        LutMapper::Abc9 => "synth_ecp5 -top ulx3s_top -run map_luts:map_cells\n".to_string(),
        LutMapper::Abc => "techmap -map +/lattice/latches_map.v\nabc -lut 4:7 -dress\nclean\n".to_string(),
    };
    let synth = format!(
        "read_rtlil elaborated.il\n{mark_soft}synth_ecp5 -top ulx3s_top -run coarse:map_luts\n{map_luts}\
         synth_ecp5 -top ulx3s_top -run map_cells: -json {}\ntee -o yosys-stat.txt stat\n\
         tee -q -o yosys-stat.json stat -json\n",
        file_name(&files.netlist)
    );
    crate::write_file(&dir.join("synth.ys"), &synth)?;
    run_yosys(dir, "synth.ys", "yosys-synth.log", progress)?;
    let total = multipliers.len() as u64;
    let in_luts = soft.len() as u64;
    Ok(MultiplierSplit { total, in_dsp: total - in_luts, in_luts })
}

fn run_yosys(dir: &Path, script: &str, log: &str, progress: Progress) -> Result<(), FlowError> {
    let args = vec!["-q".to_string(), "-s".into(), script.into()];
    tools::run(Tool::Yosys, &args, dir, &dir.join(log), Step::Synthesize, progress)
}

fn place_and_route(opts: &Ecp5Options, files: &Ecp5Files, progress: Progress) -> Result<(), FlowError> {
    let dir = &opts.out_dir;
    let (size, package, speed) = match opts.device {
        Device::Ecp5_85F => ("--85k", "CABGA381", "6"),
        other => {
            return Err(FlowError::Generate(format!("{other} is not an ECP5: the ECP5 flow cannot place for it")));
        }
    };
    let args: Vec<String> = [
        size,
        "--package",
        package,
        "--speed",
        speed,
        "--json",
        &file_name(&files.netlist),
        "--lpf",
        "ulx3s.lpf",
        "--textcfg",
        "board.config",
        "--report",
        &file_name(&files.nextpnr_report),
        "--freq",
        &format!("{}", opts.target_mhz),
        "--timing-allow-fail",
        "--seed",
        &opts.seed.to_string(),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    tools::run(Tool::NextpnrEcp5, &args, dir, &dir.join("nextpnr.log"), Step::PlaceAndRoute, progress)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A multiplier of the elaborated design: its cell name and operand widths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multiplier {
    /// The `$mul` cell's name in the flattened top module.
    pub name: String,
    /// Width of operand A.
    pub a_width: u32,
    /// Width of operand B.
    pub b_width: u32,
}

impl Multiplier {
    /// The MULT18X18D blocks yosys's `mul2dsp` builds it from (18-bit slices of each operand).
    pub fn dsp_blocks(&self) -> u64 {
        u64::from(self.a_width.div_ceil(18)) * u64::from(self.b_width.div_ceil(18))
    }

    /// Partial-product bits, what a LUT multiplier's size grows with.
    pub fn lut_cost(&self) -> u64 {
        u64::from(self.a_width) * u64::from(self.b_width)
    }
}

/// Reads the `$mul` cells of an RTLIL dump (`dump t:$mul`).
pub fn parse_multipliers(rtlil: &str) -> Result<Vec<Multiplier>, FlowError> {
    let bad = |why: String| FlowError::Parse { what: "yosys's list of multipliers".into(), why };
    let mut out = Vec::new();
    let mut lines = rtlil.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("cell $mul ") else { continue };
        let (mut a_width, mut b_width) = (None, None);
        for param in lines.by_ref() {
            let param = param.trim();
            if param == "end" {
                break;
            }
            let width = |p: &str| param.strip_prefix(p).and_then(|w| w.trim().parse::<u32>().ok());
            a_width = a_width.or(width("parameter \\A_WIDTH"));
            b_width = b_width.or(width("parameter \\B_WIDTH"));
        }
        match (a_width, b_width) {
            (Some(a_width), Some(b_width)) => out.push(Multiplier { name: name.trim().to_string(), a_width, b_width }),
            _ => return Err(bad(format!("{name}: no A_WIDTH or B_WIDTH"))),
        }
    }
    Ok(out)
}

/// The multipliers to build from LUTs so the rest fit `budget` DSP blocks: DSPs go first to the
/// multipliers that would cost the most LUTs per DSP block (wide address arithmetic before 8×8 products),
/// then by name in natural order (the array's first PEs first).
pub fn choose_soft_multipliers(multipliers: &[Multiplier], budget: u64) -> Vec<&Multiplier> {
    let mut order: Vec<&Multiplier> = multipliers.iter().collect();
    order.sort_by(|a, b| {
        let per_dsp = |m: &Multiplier| m.lut_cost() as f64 / m.dsp_blocks() as f64;
        per_dsp(b).total_cmp(&per_dsp(a)).then_with(|| natural_order(&a.name, &b.name))
    });
    let mut left = budget;
    let mut soft = Vec::new();
    for m in order {
        if m.dsp_blocks() <= left {
            left -= m.dsp_blocks();
        } else {
            soft.push(m);
        }
    }
    soft
}

/// Orders names with embedded numbers by value (`pes$2` before `pes$10`), so the DSP budget goes to the
/// array's first PEs in index order.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db { xa.len().cmp(&xb.len()).then_with(|| xa.cmp(xb)) } else { xa.cmp(xb) };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_multipliers_get_dsps_first_and_the_rest_go_to_luts() {
        let dump = "  attribute \\src \"x\"\n  cell $mul $flatten\\seq.$mul$1\n    parameter \\A_SIGNED 0\n    \
                    parameter \\A_WIDTH 64\n    parameter \\B_WIDTH 16\n    parameter \\Y_WIDTH 80\n  end\n";
        let mut muls = parse_multipliers(dump).unwrap();
        assert_eq!(muls, vec![Multiplier { name: "$flatten\\seq.$mul$1".into(), a_width: 64, b_width: 16 }]);
        assert_eq!(muls[0].dsp_blocks(), 4);
        for i in 0..4 {
            muls.push(Multiplier { name: format!("pes${i}.m"), a_width: 8, b_width: 8 });
        }
        let soft: Vec<&str> = choose_soft_multipliers(&muls, 6).iter().map(|m| m.name.as_str()).collect();
        assert_eq!(soft, ["pes$2.m", "pes$3.m"], "4 blocks for the wide one, 2 for the first PEs");
        assert!(choose_soft_multipliers(&muls, 8).is_empty());
        assert!(parse_multipliers("  cell $mul x\n  end\n").is_err());
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec!["top/pes$10.m", "top/pes$2.m", "top/pes$1.m", "top/edge$0.m"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["top/edge$0.m", "top/pes$1.m", "top/pes$2.m", "top/pes$10.m"]);
    }
}
