//! What a flow measured, as JSON (`report.json`) and as a summary for people (`report.txt`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::device::{Device, ResourceKind};
use crate::{FlowError, Step};

/// The use of one kind of resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resource {
    /// What is counted.
    pub kind: ResourceKind,
    /// The primitive(s) counted, as the tools name them (`TRELLIS_COMB`, `DSP48E2`).
    pub primitive: String,
    /// How many the design uses.
    pub used: u64,
    /// How many the device has.
    pub available: Option<u64>,
}

impl Resource {
    /// `used` as a percentage of `available`.
    pub fn percent(&self) -> Option<f64> {
        self.available.filter(|&a| a > 0).map(|a| 100.0 * self.used as f64 / a as f64)
    }

    /// Whether the device has enough (unknown availability counts as enough).
    pub fn fits(&self) -> bool {
        self.available.is_none_or(|a| self.used <= a)
    }
}

/// One clock's timing after routing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClockTiming {
    /// The clock net.
    pub clock: String,
    /// The highest frequency the routed design runs at (static timing analysis).
    pub achieved_mhz: f64,
    /// The frequency it is constrained to.
    pub target_mhz: f64,
}

impl ClockTiming {
    /// Whether the clock meets its target.
    pub fn met(&self) -> bool {
        self.achieved_mhz >= self.target_mhz
    }
}

/// How the design's multipliers were implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MultiplierSplit {
    /// Multipliers in the design after width reduction.
    pub total: u64,
    /// Those mapped to hard DSP multipliers.
    pub in_dsp: u64,
    /// Those built from LUTs because the device has too few DSPs.
    pub in_luts: u64,
}

/// The projected latency of a network at the measured clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Projection {
    /// The network and batch.
    pub model: String,
    /// Engine cycles for one inference, by the golden model's cycle count.
    pub cycles: u64,
    /// The clock the latency is projected at (the lowest achieved Fmax, or the estimate's assumed clock).
    pub clock_mhz: f64,
    /// `cycles / clock`, in milliseconds.
    pub latency_ms: f64,
}

impl Projection {
    /// The projection of `cycles` at `clock_mhz`.
    pub fn new(model: impl Into<String>, cycles: u64, clock_mhz: f64) -> Self {
        Projection { model: model.into(), cycles, clock_mhz, latency_ms: cycles as f64 / (clock_mhz * 1e3) }
    }
}

/// One step's wall time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepTime {
    /// The step.
    pub step: Step,
    /// Seconds it took.
    pub seconds: f64,
}

/// The bitstream written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bitstream {
    /// Where.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// Everything a flow measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The flow (`ecp5` to a bitstream, `xilinx-estimate`).
    pub flow: String,
    /// The device's name.
    pub device: String,
    /// The vendor's part number.
    pub part: String,
    /// The engine configuration (its short name, or its description).
    pub config: String,
    /// The top module synthesized.
    pub top: String,
    /// Resources used against the device.
    pub resources: Vec<Resource>,
    /// Timing per clock (empty for an estimate: no placement, no timing).
    pub clocks: Vec<ClockTiming>,
    /// How multipliers were implemented, where the flow chose.
    pub multipliers: Option<MultiplierSplit>,
    /// The design fits the device.
    pub fits: bool,
    /// Every clock meets its target (`None` when timing was not analysed).
    pub meets_timing: Option<bool>,
    /// The bitstream, when one was written.
    pub bitstream: Option<Bitstream>,
    /// Projected network latency, when the caller added it.
    pub projection: Option<Projection>,
    /// Tool name and version lines.
    pub tools: Vec<(String, String)>,
    /// Wall time of each step.
    pub steps: Vec<StepTime>,
    /// Remarks a reader needs (assumptions, what was not done).
    pub notes: Vec<String>,
}

impl Report {
    /// The lowest achieved clock, the one the whole design runs at.
    pub fn fmax_mhz(&self) -> Option<f64> {
        self.clocks.iter().map(|c| c.achieved_mhz).min_by(f64::total_cmp)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// The summary for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "systole {} report: {} on {} ({}), top module {}",
            self.flow, self.config, self.device, self.part, self.top
        );
        let _ = writeln!(s, "\n{:<18} {:>10} {:>11} {:>7}", "resource", "used", "available", "use");
        for r in &self.resources {
            let available = r.available.map_or("?".to_string(), |a| a.to_string());
            let percent = r.percent().map_or(String::new(), |p| format!("{p:.1} %"));
            let _ = writeln!(
                s,
                "{:<18} {:>10} {:>11} {:>7}  ({})",
                r.kind.label(),
                r.used,
                available,
                percent,
                r.primitive
            );
        }
        if let Some(m) = self.multipliers {
            let _ = writeln!(s, "multipliers: {} in all, {} in DSPs, {} in LUTs", m.total, m.in_dsp, m.in_luts);
        }
        if !self.clocks.is_empty() {
            let _ = writeln!(s, "\n{:<34} {:>12} {:>12}", "clock", "Fmax", "target");
            for c in &self.clocks {
                let verdict = if c.met() { "met" } else { "NOT MET" };
                let _ = writeln!(s, "{:<34} {:>8.1} MHz {:>8.1} MHz  {verdict}", c.clock, c.achieved_mhz, c.target_mhz);
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "fits the device: {}", if self.fits { "yes" } else { "NO" });
        match self.meets_timing {
            Some(met) => {
                let _ = writeln!(s, "timing: {}", if met { "met" } else { "NOT MET" });
            }
            None => {
                let _ = writeln!(s, "timing: not analysed (synthesis estimate: no placement or routing)");
            }
        }
        if let Some(b) = &self.bitstream {
            let _ = writeln!(s, "bitstream: {} ({} bytes)", b.path.display(), b.bytes);
        }
        if let Some(p) = &self.projection {
            let _ = writeln!(
                s,
                "{}: {} cycles (golden model) = {:.1} ms at {:.1} MHz",
                p.model, p.cycles, p.latency_ms, p.clock_mhz
            );
        }
        let steps: Vec<String> =
            self.steps.iter().map(|t| format!("{} {:.1} s", t.step.describe(), t.seconds)).collect();
        let _ = writeln!(s, "steps: {}", steps.join(", "));
        for (tool, version) in &self.tools {
            let _ = writeln!(s, "tool: {tool}: {version}");
        }
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }

    /// Writes `report.json` and `report.txt` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), FlowError> {
        let json = dir.join("report.json");
        let text = dir.join("report.txt");
        crate::write_file(&json, &self.to_json())?;
        crate::write_file(&text, &self.summary())?;
        Ok((json, text))
    }
}

/// The primitives nextpnr-ecp5 counts for each kind of resource (its bel types).
const ECP5_PRIMITIVES: [(ResourceKind, &str); 6] = [
    (ResourceKind::Lut, "TRELLIS_COMB"),
    (ResourceKind::FlipFlop, "TRELLIS_FF"),
    (ResourceKind::Dsp, "MULT18X18D"),
    (ResourceKind::BlockRam, "DP16KD"),
    (ResourceKind::Io, "TRELLIS_IO"),
    (ResourceKind::Pll, "EHXPLLL"),
];

/// Reads the resources and clocks of a nextpnr-ecp5 report (`--report`): `utilization` maps bel types to
/// `used`/`available`, `fmax` maps clock nets to `achieved`/`constraint` MHz.
pub fn parse_nextpnr_report(json: &str, device: Device) -> Result<(Vec<Resource>, Vec<ClockTiming>), FlowError> {
    let bad = |why: String| FlowError::Parse { what: "nextpnr's report".into(), why };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let utilization = v.get("utilization").and_then(|u| u.as_object()).ok_or_else(|| bad("no utilization".into()))?;
    let mut resources = Vec::new();
    for (kind, bel) in ECP5_PRIMITIVES {
        let entry = utilization.get(bel);
        let used = entry.and_then(|e| e.get("used")).and_then(|u| u.as_u64()).unwrap_or(0);
        let available = entry.and_then(|e| e.get("available")).and_then(|a| a.as_u64()).or(device.available(kind));
        resources.push(Resource { kind, primitive: bel.to_string(), used, available });
    }
    let fmax = v.get("fmax").and_then(|f| f.as_object()).ok_or_else(|| bad("no fmax".into()))?;
    let mut clocks = Vec::new();
    for (net, t) in fmax {
        let number = |key: &str| t.get(key).and_then(|x| x.as_f64()).ok_or_else(|| bad(format!("{net}: no {key}")));
        clocks.push(ClockTiming {
            clock: net.clone(),
            achieved_mhz: number("achieved")?,
            target_mhz: number("constraint")?,
        });
    }
    Ok((resources, clocks))
}

/// The primitives of a `synth_ecp5` netlist counted for each kind of resource, with the logic cells (nextpnr's
/// `TRELLIS_COMB`) each takes: a CCU2C carry cell is two, a 16×4 distributed RAM four (two LUTs of data, two
/// of the write port).
const ECP5_NETLIST_PRIMITIVES: &[(ResourceKind, &[(&str, f64)])] = &[
    (ResourceKind::Lut, &[("LUT4", 1.0), ("CCU2C", 2.0), ("TRELLIS_DPR16X4", 4.0)]),
    (ResourceKind::FlipFlop, &[("TRELLIS_FF", 1.0)]),
    (ResourceKind::Dsp, &[("MULT18X18D", 1.0)]),
    (ResourceKind::BlockRam, &[("DP16KD", 1.0)]),
    (ResourceKind::Pll, &[("EHXPLLL", 1.0)]),
];

/// The resources of a `synth_ecp5` netlist from yosys's `stat -json` (its `design` totals), in nextpnr's units,
/// so a design too big for the device is known before placement.
pub fn parse_ecp5_stat(json: &str, device: Device) -> Result<Vec<Resource>, FlowError> {
    resources_from_yosys_stat(json, device, ECP5_NETLIST_PRIMITIVES)
}

/// Counts the resources of a netlist in yosys's `stat -json` output (its `design` totals, which cover the
/// hierarchy): for each kind the device has, the sum of its primitives' cell counts times their weights
/// (how many of the kind's units one cell takes), rounded up. The ECP5 and UltraScale+ flows each pass their
/// table of primitives.
pub fn resources_from_yosys_stat(
    json: &str,
    device: Device,
    primitives: &[(ResourceKind, &[(&str, f64)])],
) -> Result<Vec<Resource>, FlowError> {
    let bad = |why: &str| FlowError::Parse { what: "yosys's statistics".into(), why: why.into() };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let cells = v
        .get("design")
        .and_then(|d| d.get("num_cells_by_type"))
        .and_then(|c| c.as_object())
        .ok_or_else(|| bad("no design.num_cells_by_type"))?;
    Ok(primitives
        .iter()
        .filter(|(kind, _)| device.available(*kind).is_some())
        .map(|(kind, cell_types)| {
            let used: f64 = cell_types
                .iter()
                .map(|(name, weight)| cells.get(*name).and_then(|n| n.as_u64()).unwrap_or(0) as f64 * weight)
                .sum();
            Resource {
                kind: *kind,
                primitive: cell_types.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("+"),
                used: used.ceil() as u64,
                available: device.available(*kind),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nextpnr_report_gives_resources_and_clocks() {
        let json = r#"{"utilization": {"TRELLIS_COMB": {"used": 4100, "available": 83640},
            "DP16KD": {"used": 210, "available": 208}, "MULT18X18D": {"used": 16, "available": 156}},
            "fmax": {"$glbnet$clock": {"achieved": 92.5, "constraint": 75.0}}}"#;
        let (resources, clocks) = parse_nextpnr_report(json, Device::Ecp5_85F).unwrap();
        let lut = &resources[0];
        assert_eq!((lut.kind, lut.used, lut.available), (ResourceKind::Lut, 4100, Some(83_640)));
        assert!((lut.percent().unwrap() - 4.902).abs() < 1e-3);
        let bram = resources.iter().find(|r| r.kind == ResourceKind::BlockRam).unwrap();
        assert!(!bram.fits(), "210 of 208 block RAMs do not fit");
        let ff = resources.iter().find(|r| r.kind == ResourceKind::FlipFlop).unwrap();
        assert_eq!((ff.used, ff.available), (0, Some(83_640)), "absent primitives are unused, sized from the device");
        assert_eq!(clocks, vec![ClockTiming { clock: "$glbnet$clock".into(), achieved_mhz: 92.5, target_mhz: 75.0 }]);
        assert!(clocks[0].met());
        assert!(parse_nextpnr_report("{}", Device::Ecp5_85F).is_err());
        assert!(parse_nextpnr_report("not json", Device::Ecp5_85F).is_err());
    }

    #[test]
    fn an_ecp5_netlist_counts_carry_cells_as_two_logic_cells() {
        let json = r#"{"design": {"num_cells_by_type": {"LUT4": 90000, "CCU2C": 10, "TRELLIS_FF": 5,
            "MULT18X18D": 160, "DP16KD": 3}}}"#;
        let r = parse_ecp5_stat(json, Device::Ecp5_85F).unwrap();
        let get = |k: ResourceKind| r.iter().find(|x| x.kind == k).unwrap();
        assert_eq!(get(ResourceKind::Lut).used, 90_020);
        assert!(!get(ResourceKind::Lut).fits() && !get(ResourceKind::Dsp).fits() && get(ResourceKind::BlockRam).fits());
        assert_eq!(get(ResourceKind::Pll).used, 0);
    }

    #[test]
    fn the_projection_divides_cycles_by_the_clock() {
        let p = Projection::new("ResNet-50", 17_845_562, 100.0);
        assert!((p.latency_ms - 178.45562).abs() < 1e-9);
    }
}
