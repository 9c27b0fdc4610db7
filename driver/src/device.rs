//! Choosing a device by name: `emu`, `emu:CONFIG`, `vfio:PCI-ADDRESS` (the `--device` of the command line).

use std::fmt;
use std::str::FromStr;

use arch::config::EngineConfig;

use crate::{Backend, DriverError, EmuBackend};

/// The DMA window the driver gives an engine: room for ResNet-50's weights and activations plus the ring.
pub const EMU_WINDOW_BYTES: usize = 256 << 20;

/// A device the user named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The emulated engine (golden model, fast kernel) with this configuration.
    Emu(EngineConfig),
    /// A real engine bound to vfio-pci at this PCI address (`0000:01:00.0`).
    Vfio(String),
}

impl FromStr for DeviceSpec {
    type Err = String;

    /// Parses `emu` (the 16×16 MSFP16 engine), `emu:CONFIG` (any `EngineConfig` string, e.g. `emu:tiny`) or
    /// `vfio:DDDD:BB:DD.F`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').map_or((s, None), |(k, r)| (k, Some(r)));
        match (kind, rest) {
            ("emu", None) => Ok(DeviceSpec::Emu(EngineConfig::default())),
            ("emu", Some(cfg)) => cfg.parse().map(DeviceSpec::Emu).map_err(|e| e.to_string()),
            ("vfio", Some(addr)) if is_pci_address(addr) => Ok(DeviceSpec::Vfio(addr.to_string())),
            ("vfio", _) => Err(format!("{s:?}: expected vfio:DDDD:BB:DD.F, e.g. vfio:0000:01:00.0")),
            _ => Err(format!("{s:?}: expected emu, emu:CONFIG or vfio:PCI-ADDRESS")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Emu(cfg) => write!(f, "emu:{}x{}-{}", cfg.rows, cfg.cols, cfg.format),
            DeviceSpec::Vfio(addr) => write!(f, "vfio:{addr}"),
        }
    }
}

/// True for a PCI address in the `domain:bus:device.function` form sysfs uses (`0000:01:00.0`).
pub fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '.']).collect();
    let hex = |p: &str, len: usize| p.len() == len && p.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4 && hex(parts[0], 4) && hex(parts[1], 2) && hex(parts[2], 2) && hex(parts[3], 1)
}

impl DeviceSpec {
    /// Opens the backend for this device.
    pub fn open(&self) -> Result<Box<dyn Backend>, DriverError> {
        match self {
            DeviceSpec::Emu(cfg) => Ok(Box::new(EmuBackend::new(*cfg, EMU_WINDOW_BYTES)?)),
            DeviceSpec::Vfio(addr) => Ok(Box::new(crate::vfio::VfioBackend::open(addr, EMU_WINDOW_BYTES)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("emu".parse(), Ok(DeviceSpec::Emu(EngineConfig::default())));
        assert_eq!("emu:tiny".parse(), Ok(DeviceSpec::Emu(EngineConfig::tiny())));
        assert_eq!("vfio:0000:01:00.0".parse(), Ok(DeviceSpec::Vfio("0000:01:00.0".into())));
        for bad in ["", "fpga", "emu:3x3", "vfio:1:0:0", "vfio", "vfio:0000:01:00.x"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        assert_eq!(DeviceSpec::Emu(EngineConfig::tiny()).to_string(), "emu:4x4-msfp16");
    }
}
