//! Choosing a device by name: `emu`, `emu:CONFIG`, `vfio:PCI-ADDRESS`, `verilator:MODEL`, `rust-hdl:CONFIG` (the
//! `--device` of the command line). The driver opens the first two; the simulated engines live in the `sim`
//! crate (`sim::open_device` opens every kind).

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
    /// The engine's RTL under Verilator: a model of the `sim` crate's build (`16x16`, `16x16+t2`, `tiny+trace`).
    Verilator(String),
    /// The engine's circuit in rust-hdl's simulator, for a configuration with a stamped engine (`tiny`, `16x16`).
    RustHdl(EngineConfig),
}

impl FromStr for DeviceSpec {
    type Err = String;

    /// Parses `emu` (the 16×16 MSFP16 engine), `emu:CONFIG` (any `EngineConfig` string, e.g. `emu:tiny`),
    /// `vfio:DDDD:BB:DD.F`, `verilator[:MODEL]` (default `16x16`) or `rust-hdl[:CONFIG]` (default `tiny`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').map_or((s, None), |(k, r)| (k, Some(r)));
        match (kind, rest) {
            ("emu", None) => Ok(DeviceSpec::Emu(EngineConfig::default())),
            ("emu", Some(cfg)) => cfg.parse().map(DeviceSpec::Emu).map_err(|e| e.to_string()),
            ("vfio", Some(addr)) if is_pci_address(addr) => Ok(DeviceSpec::Vfio(addr.to_string())),
            ("vfio", _) => Err(format!("{s:?}: expected vfio:DDDD:BB:DD.F, e.g. vfio:0000:01:00.0")),
            ("verilator", None) => Ok(DeviceSpec::Verilator("16x16".into())),
            ("verilator", Some(model)) => {
                let preset = model.split('+').next().unwrap_or_default();
                preset.parse::<EngineConfig>().map_err(|e| format!("{s:?}: {e}"))?;
                Ok(DeviceSpec::Verilator(model.to_string()))
            }
            ("rust-hdl", None) => Ok(DeviceSpec::RustHdl(EngineConfig::tiny())),
            ("rust-hdl", Some(cfg)) => cfg.parse().map(DeviceSpec::RustHdl).map_err(|e| e.to_string()),
            _ => Err(format!("{s:?}: expected emu, emu:CONFIG, vfio:PCI-ADDRESS, verilator:MODEL or rust-hdl:CONFIG")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Emu(cfg) => write!(f, "emu:{}x{}-{}", cfg.rows, cfg.cols, cfg.format),
            DeviceSpec::Vfio(addr) => write!(f, "vfio:{addr}"),
            DeviceSpec::Verilator(model) => write!(f, "verilator:{model}"),
            DeviceSpec::RustHdl(cfg) => write!(f, "rust-hdl:{}x{}-{}", cfg.rows, cfg.cols, cfg.format),
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
    /// Whether this is a simulated engine (Verilator or rust-hdl): thousands of times slower than the hardware
    /// it models, so callers wait longer and show progress.
    pub fn is_simulated(&self) -> bool {
        matches!(self, DeviceSpec::Verilator(_) | DeviceSpec::RustHdl(_))
    }

    /// Opens the backend for this device: the emulated and the real engines; a simulated one (opened by
    /// `sim::open_device`) is [`DriverError::Unavailable`] here.
    pub fn open(&self) -> Result<Box<dyn Backend>, DriverError> {
        match self {
            DeviceSpec::Emu(cfg) => Ok(Box::new(EmuBackend::new(*cfg, EMU_WINDOW_BYTES)?)),
            DeviceSpec::Vfio(addr) => Ok(Box::new(crate::vfio::VfioBackend::open(addr, EMU_WINDOW_BYTES)?)),
            DeviceSpec::Verilator(_) | DeviceSpec::RustHdl(_) => Err(DriverError::Unavailable(format!(
                "{self} is a simulated engine: open it with the sim crate (sim::open_device)"
            ))),
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
        assert_eq!("verilator".parse(), Ok(DeviceSpec::Verilator("16x16".into())));
        assert_eq!("verilator:tiny+trace".parse(), Ok(DeviceSpec::Verilator("tiny+trace".into())));
        assert_eq!("rust-hdl:tiny".parse(), Ok(DeviceSpec::RustHdl(EngineConfig::tiny())));
        for bad in ["verilator:3x3", "rust-hdl:fast"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        assert!(matches!(DeviceSpec::RustHdl(EngineConfig::tiny()).open(), Err(DriverError::Unavailable(_))));
        assert!(
            DeviceSpec::Verilator("tiny".into()).is_simulated()
                && !DeviceSpec::Emu(EngineConfig::tiny()).is_simulated()
        );
    }
}
