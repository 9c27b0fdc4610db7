//! What Linux tells about PCI devices in sysfs: addresses, IDs, drivers and IOMMU groups.
//!
//! Everything goes through [`Sysfs`], which is rooted at `/sys` in real use and at a directory of fake files
//! in tests.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::VfioError;

/// The name of the vfio-pci driver as sysfs shows it.
pub const VFIO_PCI_DRIVER: &str = "vfio-pci";

/// A PCI address, `domain:bus:device.function`, normalised to `0000:01:00.0` form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress(String);

impl PciAddress {
    /// Parses `DDDD:BB:DD.F` or `BB:DD.F` (domain 0), hexadecimal, either case.
    pub fn parse(text: &str) -> Result<Self, VfioError> {
        let bad = || VfioError::InvalidAddress { address: text.to_string() };
        let t = text.trim();
        let parts: Vec<&str> = t.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0000", *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let hex = |s: &str, max_len: usize| -> Option<u32> {
            if s.is_empty() || s.len() > max_len || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(s, 16).ok()
        };
        let domain = hex(domain, 4).ok_or_else(bad)?;
        let bus = hex(bus, 2).ok_or_else(bad)?;
        let dev = hex(dev, 2).filter(|d| *d < 32).ok_or_else(bad)?;
        let func = hex(func, 1).filter(|f| *f < 8).ok_or_else(bad)?;
        Ok(PciAddress(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}")))
    }

    /// The address as text, e.g. `0000:01:00.0`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One PCI device as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDeviceInfo {
    /// Its address.
    pub address: PciAddress,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// The driver it is bound to, if any (e.g. `vfio-pci`).
    pub driver: Option<String>,
    /// Its IOMMU group, if the IOMMU is on.
    pub iommu_group: Option<u32>,
}

impl PciDeviceInfo {
    /// Whether the device is ready for [`super::VfioPciDevice::open`]: bound to vfio-pci and in an IOMMU group.
    pub fn is_ready_for_vfio(&self) -> bool {
        self.driver.as_deref() == Some(VFIO_PCI_DRIVER) && self.iommu_group.is_some()
    }
}

/// A view of sysfs rooted at some directory (normally `/sys`).
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new()
    }
}

/// Parses a sysfs ID file such as `vendor` (`0x1234\n`).
pub fn parse_hex_id(text: &str) -> Option<u16> {
    let t = text.trim();
    let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    if digits.is_empty() {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

impl Sysfs {
    /// The real sysfs at `/sys`.
    pub fn new() -> Self {
        Sysfs { root: PathBuf::from("/sys") }
    }

    /// A sysfs tree rooted elsewhere (tests build fake trees).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// `/sys/bus/pci/devices`.
    pub fn pci_devices_dir(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// `/sys/bus/pci/devices/ADDR`.
    pub fn device_dir(&self, address: &PciAddress) -> PathBuf {
        self.pci_devices_dir().join(address.as_str())
    }

    /// The name of the last component a symlink points to, or `None` when the link does not exist.
    fn link_name(path: &Path) -> Result<Option<String>, VfioError> {
        match fs::read_link(path) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VfioError::Io { op: format!("read the link {}", path.display()), source }),
        }
    }

    fn read_id(&self, address: &PciAddress, file: &str) -> Result<u16, VfioError> {
        let path = self.device_dir(address).join(file);
        let text = fs::read_to_string(&path)
            .map_err(|source| VfioError::Io { op: format!("read {}", path.display()), source })?;
        parse_hex_id(&text).ok_or_else(|| VfioError::Io {
            op: format!("parse {}", path.display()),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("not a 16-bit hex ID: {:?}", text.trim())),
        })
    }

    /// The driver a device is bound to (the `driver` link), or `None`.
    pub fn driver(&self, address: &PciAddress) -> Result<Option<String>, VfioError> {
        Self::link_name(&self.device_dir(address).join("driver"))
    }

    /// The IOMMU group of a device (the `iommu_group` link), or `None` when it has none.
    pub fn iommu_group(&self, address: &PciAddress) -> Result<Option<u32>, VfioError> {
        let path = self.device_dir(address).join("iommu_group");
        match Self::link_name(&path)? {
            None => Ok(None),
            Some(name) => name.parse::<u32>().map(Some).map_err(|_| VfioError::Io {
                op: format!("read the IOMMU group from {}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, format!("`{name}` is not a group number")),
            }),
        }
    }

    /// The devices in IOMMU group `group` (`/sys/kernel/iommu_groups/N/devices`), sorted.
    pub fn group_devices(&self, group: u32) -> Result<Vec<PciAddress>, VfioError> {
        let dir = self.root.join("kernel/iommu_groups").join(group.to_string()).join("devices");
        let entries =
            fs::read_dir(&dir).map_err(|source| VfioError::Io { op: format!("list {}", dir.display()), source })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| VfioError::Io { op: format!("list {}", dir.display()), source })?;
            if let Ok(a) = PciAddress::parse(&entry.file_name().to_string_lossy()) {
                out.push(a);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Everything sysfs says about one device.
    pub fn device_info(&self, address: &PciAddress) -> Result<PciDeviceInfo, VfioError> {
        let dir = self.device_dir(address);
        if !dir.exists() {
            return Err(VfioError::NoSuchDevice { address: address.to_string(), path: dir });
        }
        Ok(PciDeviceInfo {
            address: address.clone(),
            vendor: self.read_id(address, "vendor")?,
            device: self.read_id(address, "device")?,
            driver: self.driver(address)?,
            iommu_group: self.iommu_group(address)?,
        })
    }

    /// Lists the PCI devices whose (vendor, device) ID pair is one of `ids`, sorted by address. Devices whose
    /// sysfs entries cannot be read are skipped. A machine without PCI (no `/sys/bus/pci/devices`) has none.
    pub fn scan(&self, ids: &[(u16, u16)]) -> Result<Vec<PciDeviceInfo>, VfioError> {
        let dir = self.pci_devices_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(VfioError::Io { op: format!("list {}", dir.display()), source }),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Ok(address) = PciAddress::parse(&entry.file_name().to_string_lossy()) else { continue };
            let Ok(info) = self.device_info(&address) else { continue };
            if ids.contains(&(info.vendor, info.device)) {
                found.push(info);
            }
        }
        found.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(found)
    }

    /// Checks, before any VFIO call, that `address` can be opened through VFIO, and returns its IOMMU group.
    /// Each failure says how to fix it.
    pub fn check_ready(&self, address: &PciAddress) -> Result<u32, VfioError> {
        let dir = self.device_dir(address);
        if !dir.exists() {
            return Err(VfioError::NoSuchDevice { address: address.to_string(), path: dir });
        }
        let group =
            self.iommu_group(address)?.ok_or_else(|| VfioError::NoIommuGroup { address: address.to_string() })?;
        match self.driver(address)? {
            Some(d) if d == VFIO_PCI_DRIVER => Ok(group),
            Some(driver) => Err(VfioError::BoundToOtherDriver { address: address.to_string(), driver }),
            None => Err(VfioError::NotBound { address: address.to_string() }),
        }
    }

    /// Describes the devices of `group` (other than `address`) that make the group not viable: those bound
    /// to a driver other than vfio-pci (pci-stub is accepted too, as the kernel does).
    pub fn group_blockers(&self, group: u32, address: &PciAddress) -> String {
        let devices = match self.group_devices(group) {
            Ok(d) => d,
            Err(e) => return format!("its devices could not be listed ({e})"),
        };
        let mut blockers = Vec::new();
        for other in devices.iter().filter(|d| *d != address) {
            match self.driver(other) {
                Ok(Some(d)) if d == VFIO_PCI_DRIVER || d == "pci-stub" => {}
                Ok(Some(d)) => blockers.push(format!("{other} is bound to {d}")),
                Ok(None) => {}
                Err(e) => blockers.push(format!("{other} ({e})")),
            }
        }
        if blockers.is_empty() {
            "no device of the group is bound to another driver (a bridge or a hot-unplug may be in progress)"
                .to_string()
        } else {
            blockers.join(", ")
        }
    }
}
