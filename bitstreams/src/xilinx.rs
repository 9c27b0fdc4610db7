//! A resource estimate for AMD/Xilinx UltraScale+ by yosys `synth_xilinx -family xcup`.
//!
//! The Alveo cards the original service ran on are UltraScale+ parts; their bitstreams need Vivado and the
//! XDMA PCIe IP (the non-project flow in `bitstreams/xilinx/`, not run here). What can be measured with open
//! tools is the engine's own cost after technology mapping: LUTs, flip-flops, DSP48E2s, block RAMs. The design
//! is flattened first (`-flatten`: a 16×16 engine took 399 s without it, 30 s with it). There is no placement,
//! so there is no Fmax: the report says so, and latency is projected at the configuration's own clock.

use std::path::PathBuf;
use std::time::Instant;

use arch::EngineConfig;

use crate::device::{Device, ResourceKind};
use crate::report::{Report, Resource, StepTime};
use crate::tools::{self, Tool};
use crate::{Event, FlowError, Progress, Step};

/// The primitives of each kind in a `synth_xilinx` netlist, with their weight (two RAMB18E2 make one
/// RAMB36E2's worth).
const XCUP_PRIMITIVES: &[(ResourceKind, &[(&str, f64)])] = &[
    (
        ResourceKind::Lut,
        &[
            ("LUT1", 1.0),
            ("LUT2", 1.0),
            ("LUT3", 1.0),
            ("LUT4", 1.0),
            ("LUT5", 1.0),
            ("LUT6", 1.0),
            ("RAM32M", 4.0),
            ("RAM64M", 4.0),
            ("RAM32X1D", 2.0),
            ("RAM64X1D", 2.0),
            ("SRL16E", 1.0),
            ("SRLC32E", 1.0),
        ],
    ),
    (ResourceKind::FlipFlop, &[("FDRE", 1.0), ("FDSE", 1.0), ("FDCE", 1.0), ("FDPE", 1.0)]),
    (ResourceKind::Dsp, &[("DSP48E2", 1.0)]),
    (ResourceKind::BlockRam, &[("RAMB36E2", 1.0), ("RAMB18E2", 0.5)]),
    (ResourceKind::UltraRam, &[("URAM288", 1.0)]),
];

/// What the estimate synthesizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XilinxDesign {
    /// The whole engine (`hdl::export::Part::Engine`): what sits behind the XDMA IP on the card.
    #[default]
    Engine,
    /// The configuration's systolic array with its accumulator adders (`hdl::export::Part::Array`): the compute
    /// core alone, far quicker to synthesize.
    Array,
}

/// Synthesizes `design` of `config` for `device` (an UltraScale+ part) in `out_dir` and returns the estimate
/// (also written as `report.json` and `report.txt`).
pub fn estimate(
    config: &EngineConfig,
    device: Device,
    design: XilinxDesign,
    out_dir: impl Into<PathBuf>,
    progress: Progress,
) -> Result<Report, FlowError> {
    let dir: PathBuf = out_dir.into();
    std::fs::create_dir_all(&dir).map_err(FlowError::io(format!("creating {}", dir.display())))?;
    let mut steps = Vec::new();

    progress(Event::Started(Step::Generate));
    let t = Instant::now();
    let part = match design {
        XilinxDesign::Engine => hdl::export::Part::Engine,
        XilinxDesign::Array => hdl::export::Part::Array,
    };
    let top = hdl::export::top_module_name(config, part);
    let verilog =
        hdl::export::export_verilog_on_large_stack(config, part).map_err(|e| FlowError::Generate(e.to_string()))?;
    crate::write_file(&dir.join("engine.v"), &verilog)?;
    progress(Event::Finished(Step::Generate, t.elapsed()));
    steps.push(StepTime { step: Step::Generate, seconds: t.elapsed().as_secs_f64() });

    progress(Event::Started(Step::Synthesize));
    let t = Instant::now();
    let script = format!(
        "read_verilog engine.v\nsynth_xilinx -family xcup -flatten -top {top}\ntee -q -o yosys-stat.json stat -json\n\
         tee -o yosys-stat.txt stat\n"
    );
    crate::write_file(&dir.join("synth_xilinx.ys"), &script)?;
    let args = vec!["-q".to_string(), "-s".into(), "synth_xilinx.ys".into()];
    tools::run(Tool::Yosys, &args, &dir, &dir.join("yosys-synth.log"), Step::Synthesize, progress)?;
    progress(Event::Finished(Step::Synthesize, t.elapsed()));
    steps.push(StepTime { step: Step::Synthesize, seconds: t.elapsed().as_secs_f64() });

    let stat =
        std::fs::read_to_string(dir.join("yosys-stat.json")).map_err(FlowError::io("reading yosys's statistics"))?;
    let resources = parse_stat(&stat, device)?;
    let report = Report {
        flow: "xilinx-estimate".into(),
        device: device.name().into(),
        part: device.part().into(),
        config: config.spec().unwrap_or_else(|| config.to_string()),
        top,
        fits: resources.iter().all(|r| r.fits()),
        meets_timing: None,
        resources,
        clocks: Vec::new(),
        multipliers: None,
        bitstream: None,
        projection: None,
        tools: vec![(Tool::Yosys.command(), Tool::Yosys.version()?)],
        steps,
        notes: vec![format!(
            "yosys synth_xilinx estimate of {} (no XDMA, no placement); Vivado's mapping differs (it packs \
             registers into DSP48E2s and may infer UltraRAM)",
            match design {
                XilinxDesign::Engine => "the engine alone",
                XilinxDesign::Array => "the systolic array with its accumulator adders alone",
            }
        )],
    };
    report.write(&dir)?;
    Ok(report)
}

/// Counts the resources of a `synth_xilinx` netlist in yosys's `stat -json` output.
pub fn parse_stat(json: &str, device: Device) -> Result<Vec<Resource>, FlowError> {
    crate::report::resources_from_yosys_stat(json, device, XCUP_PRIMITIVES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_counts_luts_flip_flops_dsps_and_block_ram() {
        let json = r#"{"design": {"num_cells_by_type": {"LUT2": 10, "LUT6": 5, "RAM64M": 2, "FDRE": 7, "FDSE": 1,
            "DSP48E2": 3, "RAMB36E2": 2, "RAMB18E2": 3, "CARRY8": 4}}}"#;
        let r = parse_stat(json, Device::AlveoU250).unwrap();
        let used = |k: ResourceKind| r.iter().find(|x| x.kind == k).unwrap().used;
        assert_eq!(used(ResourceKind::Lut), 23);
        assert_eq!(used(ResourceKind::FlipFlop), 8);
        assert_eq!(used(ResourceKind::Dsp), 3);
        assert_eq!(used(ResourceKind::BlockRam), 4, "2 RAMB36 and 3 RAMB18 (1.5 RAMB36) round up to 4");
        assert_eq!(used(ResourceKind::UltraRam), 0);
        assert!(parse_stat("{}", Device::AlveoU250).is_err());
    }
}
