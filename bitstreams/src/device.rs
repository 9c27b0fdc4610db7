//! The devices the flows target: what each offers and how the tools name it.

use std::fmt;
use std::str::FromStr;

/// A kind of resource, in the units hardware engineers count (the same across families, so reports compare).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Look-up tables (ECP5: LUT4; UltraScale+: LUT6, counted as CLB LUTs).
    Lut,
    /// Flip-flops.
    FlipFlop,
    /// Hard multipliers (ECP5: MULT18X18D; UltraScale+: DSP48E2).
    Dsp,
    /// Block RAMs (ECP5: DP16KD, 18 kbit; UltraScale+: RAMB36E2, 36 kbit, two RAMB18E2 counted as one).
    BlockRam,
    /// UltraRAM blocks (UltraScale+ only, 288 kbit).
    UltraRam,
    /// User I/O pins.
    Io,
    /// PLLs.
    Pll,
}

impl ResourceKind {
    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Lut => "LUTs",
            ResourceKind::FlipFlop => "flip-flops",
            ResourceKind::Dsp => "DSP multipliers",
            ResourceKind::BlockRam => "block RAMs",
            ResourceKind::UltraRam => "UltraRAMs",
            ResourceKind::Io => "I/O pins",
            ResourceKind::Pll => "PLLs",
        }
    }
}

/// A device a flow targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Lattice ECP5 LFE5U-85F, speed grade 6, CABGA381: the ULX3S's FPGA (and the ECP5 evaluation board's
    /// 85F). Open flow to a bitstream ([`crate::ecp5`]).
    Ecp5_85F,
    /// AMD/Xilinx Virtex UltraScale+ XCU250 (the Alveo U250): yosys estimate only ([`crate::xilinx`]).
    AlveoU250,
}

impl Device {
    /// Every device, for `--help` and errors.
    pub const ALL: [Device; 2] = [Device::Ecp5_85F, Device::AlveoU250];

    /// The name on the command line and in reports (`ecp5-85f`, `xcu250`).
    pub fn name(self) -> &'static str {
        match self {
            Device::Ecp5_85F => "ecp5-85f",
            Device::AlveoU250 => "xcu250",
        }
    }

    /// The vendor's part number.
    pub fn part(self) -> &'static str {
        match self {
            Device::Ecp5_85F => "LFE5U-85F-6BG381C",
            Device::AlveoU250 => "xcu250-figd2104-2L-e",
        }
    }

    /// What the device has of each resource the reports count (from the vendors' data sheets: ECP5 family
    /// data sheet FPGA-DS-02012 table 1.1; UltraScale+ product tables DS962 for the XCU250).
    pub fn available(self, kind: ResourceKind) -> Option<u64> {
        use ResourceKind::*;
        match (self, kind) {
            (Device::Ecp5_85F, Lut) => Some(83_640),
            (Device::Ecp5_85F, FlipFlop) => Some(83_640),
            (Device::Ecp5_85F, Dsp) => Some(156),
            (Device::Ecp5_85F, BlockRam) => Some(208),
            (Device::Ecp5_85F, Io) => Some(197),
            (Device::Ecp5_85F, Pll) => Some(4),
            (Device::Ecp5_85F, UltraRam) => None,
            (Device::AlveoU250, Lut) => Some(1_728_000),
            (Device::AlveoU250, FlipFlop) => Some(3_456_000),
            (Device::AlveoU250, Dsp) => Some(12_288),
            (Device::AlveoU250, BlockRam) => Some(2_688),
            (Device::AlveoU250, UltraRam) => Some(1_280),
            (Device::AlveoU250, Io) => Some(676),
            (Device::AlveoU250, Pll) => Some(48),
        }
    }

    /// The hard multipliers the synthesis may use, or `None` for no limit given to the tools.
    pub fn dsp_budget(self) -> Option<u64> {
        match self {
            Device::Ecp5_85F => self.available(ResourceKind::Dsp),
            Device::AlveoU250 => None,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Device {
    type Err = String;

    /// Parses a device's [`Device::name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Device::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<_> = Device::ALL.iter().map(|d| d.name()).collect();
            format!("unknown target {s:?}: expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for d in Device::ALL {
            assert_eq!(d.name().parse::<Device>(), Ok(d));
        }
        let err = "ecp5-12f".parse::<Device>().unwrap_err();
        assert!(err.contains("ecp5-85f") && err.contains("xcu250"), "{err}");
    }
}
