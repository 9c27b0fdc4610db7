//! Real hardware through Linux VFIO: a PCI device driven from user space, with the IOMMU keeping its DMA
//! inside buffers this process maps for it.
//!
//! The pieces, from the bottom up:
//!
//! * [`Sysfs`] and [`PciAddress`]: what sysfs says about PCI devices (IDs, driver, IOMMU group), the checks
//!   that a device can be opened, each failure explained, and [`scan`] to list candidate devices by ID;
//! * [`VfioPciDevice`]: a device opened through VFIO (container, group and device file, built on the
//!   `vfio-ioctls` crate): PCI config space, bus mastering, [`Mmio`] BAR mappings, [`DmaBuffer`]s at chosen
//!   IOVAs, and MSI/MSI-X interrupts delivered through an eventfd;
//! * [`VfioBackend`]: a systole engine behind [`crate::backend::Backend`], built from the above.
//!
//! # Preparing a device
//! The device must be bound to vfio-pci and the IOMMU must be on. As root:
//!
//! ```text
//! modprobe vfio-pci
//! echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override
//! echo 0000:01:00.0 > /sys/bus/pci/devices/0000:01:00.0/driver/unbind   # if it has a driver
//! echo 0000:01:00.0 > /sys/bus/pci/drivers_probe
//! ```
//!
//! A user other than root needs the group file (`/dev/vfio/N`) and a locked-memory limit (`ulimit -l`) that
//! covers the DMA buffers.
//!
//! # Which devices are engines
//! A systole bitstream's PCIe block sets the PCI vendor and device IDs the engine shows. No IDs are assigned
//! yet; when a bitstream assigns them they belong in `docs/architecture.md` next to the register map, and
//! `systole device list` passes them to [`scan`]. Until then [`scan`] takes the IDs to look for, and the
//! engine is identified for certain by its `ID` register (`arch::regs::ID_MAGIC`) once opened.
//!
//! # Testing
//! `scripts/qemu-vfio-test.sh` boots a Linux kernel in QEMU with an emulated IOMMU and QEMU's `edu` teaching
//! device, binds it to vfio-pci and runs `vfio-edu-selftest` (`driver/src/bin/vfio-edu-selftest.rs`), which
//! exercises every piece here for real: config space, bus mastering, BAR0 registers, DMA in both directions
//! through the IOMMU, and MSI. `driver/tests/qemu_vfio.rs` runs it when `SYSTOLE_QEMU_TESTS=1`.

mod backend;
mod device;
mod dma;
mod error;
mod mmio;
mod sysfs;

pub use backend::{VfioBackend, WINDOW_IOVA};
pub use device::{InterruptKind, RegionInfo, VfioPciDevice, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY};
pub use dma::{page_size, DmaBuffer};
pub use error::VfioError;
pub use mmio::Mmio;
pub use sysfs::{parse_hex_id, PciAddress, PciDeviceInfo, Sysfs, VFIO_PCI_DRIVER};

/// Lists the PCI devices whose (vendor, device) ID pair is one of `ids`, with their driver and IOMMU group,
/// sorted by address (see [`Sysfs::scan`]).
pub fn scan(ids: &[(u16, u16)]) -> Result<Vec<PciDeviceInfo>, VfioError> {
    Sysfs::new().scan(ids)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;

    #[test]
    fn mmio_reads_back_writes_in_bounds() {
        let m = Mmio::anonymous(4096).unwrap();
        assert_eq!(m.len(), 4096);
        m.write32(0, 0xdead_beef).unwrap();
        m.write32(4092, 0x1234_5678).unwrap();
        assert_eq!(m.read32(0).unwrap(), 0xdead_beef);
        assert_eq!(m.read32(4092).unwrap(), 0x1234_5678);
        assert_eq!(m.read32(4).unwrap(), 0);
    }

    #[test]
    fn mmio_rejects_unaligned_and_out_of_bounds() {
        let m = Mmio::anonymous(4096).unwrap();
        for offset in [1u64, 2, 3, 4094, 4096, 4100, 1 << 40, u64::MAX, u64::MAX - 3] {
            match m.read32(offset) {
                Err(VfioError::Mmio { offset: o, len: 4096 }) => assert_eq!(o, offset),
                other => panic!("read at {offset:#x}: {other:?}"),
            }
            assert!(matches!(m.write32(offset, 1), Err(VfioError::Mmio { .. })), "write at {offset:#x}");
        }
        let msg = m.read32(4096).unwrap_err().to_string();
        assert!(msg.contains("0x1000") && msg.contains("aligned"), "{msg}");
        assert!(Mmio::anonymous(0).is_err());
    }

    #[test]
    fn pci_addresses_are_parsed_and_normalised() {
        assert_eq!(PciAddress::parse("0000:00:04.0").unwrap().as_str(), "0000:00:04.0");
        assert_eq!(PciAddress::parse("00:1F.3").unwrap().as_str(), "0000:00:1f.3");
        assert_eq!(PciAddress::parse(" 10000:3:0.7 ").map(|a| a.to_string()).ok(), None);
        assert_eq!(PciAddress::parse("1:3:0.7").unwrap().as_str(), "0001:03:00.7");
        for bad in ["", "0000:00:04", "0000:00:20.0", "0000:00:04.8", "0000:000:04.0", "zz:00.0", "0000:00:04.0.1"] {
            assert!(matches!(PciAddress::parse(bad), Err(VfioError::InvalidAddress { .. })), "{bad:?}");
        }
    }

    #[test]
    fn hex_ids_are_parsed() {
        assert_eq!(parse_hex_id("0x1234\n"), Some(0x1234));
        assert_eq!(parse_hex_id("11e8"), Some(0x11e8));
        assert_eq!(parse_hex_id("0x"), None);
        assert_eq!(parse_hex_id("0x12345"), None);
        assert_eq!(parse_hex_id("edu"), None);
    }

    /// Builds a fake sysfs device: `root/devices/ADDR` with IDs, linked from `root/bus/pci/devices/ADDR`,
    /// optionally with a driver link and an IOMMU group link (and the group's `devices` entry).
    fn fake_device(root: &Path, addr: &str, ids: (u16, u16), driver: Option<&str>, group: Option<u32>) {
        let real = root.join("devices/pci0000:00").join(addr);
        fs::create_dir_all(&real).unwrap();
        fs::write(real.join("vendor"), format!("{:#06x}\n", ids.0)).unwrap();
        fs::write(real.join("device"), format!("{:#06x}\n", ids.1)).unwrap();
        if let Some(d) = driver {
            let dir = root.join("bus/pci/drivers").join(d);
            fs::create_dir_all(&dir).unwrap();
            symlink(&dir, real.join("driver")).unwrap();
        }
        if let Some(g) = group {
            let dir = root.join("kernel/iommu_groups").join(g.to_string());
            fs::create_dir_all(dir.join("devices")).unwrap();
            symlink(&dir, real.join("iommu_group")).unwrap();
            symlink(&real, dir.join("devices").join(addr)).unwrap();
        }
        let bus = root.join("bus/pci/devices");
        fs::create_dir_all(&bus).unwrap();
        symlink(&real, bus.join(addr)).unwrap();
    }

    fn fake_sysfs() -> (tempfile::TempDir, Sysfs) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fake_device(root, "0000:00:04.0", (0x1234, 0x11e8), Some("vfio-pci"), Some(3));
        fake_device(root, "0000:00:05.0", (0x1234, 0x11e8), Some("edu_driver"), Some(4));
        fake_device(root, "0000:00:06.0", (0x1234, 0x11e8), None, Some(5));
        fake_device(root, "0000:00:07.0", (0x1234, 0x11e8), Some("vfio-pci"), None);
        fake_device(root, "0000:00:01.0", (0x8086, 0x100e), Some("e1000"), Some(5));
        fake_device(root, "0000:00:1f.0", (0x8086, 0x2918), Some("lpc_ich"), Some(0));
        let sysfs = Sysfs::at(root);
        (dir, sysfs)
    }

    fn addr(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    #[test]
    fn sysfs_reports_ids_drivers_and_groups() {
        let (_dir, sysfs) = fake_sysfs();
        let info = sysfs.device_info(&addr("0000:00:04.0")).unwrap();
        assert_eq!((info.vendor, info.device), (0x1234, 0x11e8));
        assert_eq!(info.driver.as_deref(), Some("vfio-pci"));
        assert_eq!(info.iommu_group, Some(3));
        assert!(info.is_ready_for_vfio());
        let other = sysfs.device_info(&addr("0000:00:05.0")).unwrap();
        assert_eq!(other.driver.as_deref(), Some("edu_driver"));
        assert!(!other.is_ready_for_vfio());
        assert_eq!(sysfs.device_info(&addr("0000:00:06.0")).unwrap().driver, None);
        assert_eq!(sysfs.device_info(&addr("0000:00:07.0")).unwrap().iommu_group, None);
        assert_eq!(sysfs.group_devices(5).unwrap(), vec![addr("0000:00:01.0"), addr("0000:00:06.0")]);
        assert!(matches!(sysfs.device_info(&addr("0000:09:00.0")), Err(VfioError::NoSuchDevice { .. })));
    }

    #[test]
    fn scan_finds_devices_by_id_in_address_order() {
        let (_dir, sysfs) = fake_sysfs();
        let found: Vec<String> =
            sysfs.scan(&[(0x1234, 0x11e8)]).unwrap().into_iter().map(|d| d.address.to_string()).collect();
        assert_eq!(found, ["0000:00:04.0", "0000:00:05.0", "0000:00:06.0", "0000:00:07.0"]);
        let intel = sysfs.scan(&[(0x8086, 0x2918), (0x8086, 0x100e)]).unwrap();
        assert_eq!(intel.len(), 2);
        assert!(sysfs.scan(&[(0x10ee, 0x9038)]).unwrap().is_empty());
        // No PCI bus at all is an empty list, not an error.
        let empty = tempfile::tempdir().unwrap();
        assert!(Sysfs::at(empty.path()).scan(&[(0x1234, 0x11e8)]).unwrap().is_empty());
    }

    #[test]
    fn check_ready_explains_every_obstacle() {
        let (_dir, sysfs) = fake_sysfs();
        assert_eq!(sysfs.check_ready(&addr("0000:00:04.0")).unwrap(), 3);

        let e = sysfs.check_ready(&addr("0000:00:05.0")).unwrap_err();
        assert!(matches!(&e, VfioError::BoundToOtherDriver { driver, .. } if driver == "edu_driver"), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("edu_driver") && msg.contains("driver_override") && msg.contains("drivers_probe"),
            "{msg}"
        );

        let e = sysfs.check_ready(&addr("0000:00:06.0")).unwrap_err();
        assert!(matches!(e, VfioError::NotBound { .. }), "{e:?}");
        assert!(e.to_string().contains("echo vfio-pci > /sys/bus/pci/devices/0000:00:06.0/driver_override"));

        let e = sysfs.check_ready(&addr("0000:00:07.0")).unwrap_err();
        assert!(matches!(e, VfioError::NoIommuGroup { .. }), "{e:?}");
        assert!(e.to_string().contains("intel_iommu=on"));

        let e = sysfs.check_ready(&addr("0000:0a:00.0")).unwrap_err();
        assert!(matches!(e, VfioError::NoSuchDevice { .. }), "{e:?}");
        assert!(e.to_string().contains("lspci"));
    }

    #[test]
    fn group_blockers_name_the_devices_bound_elsewhere() {
        let (_dir, sysfs) = fake_sysfs();
        let b = sysfs.group_blockers(5, &addr("0000:00:06.0"));
        assert_eq!(b, "0000:00:01.0 is bound to e1000");
        let none = sysfs.group_blockers(3, &addr("0000:00:04.0"));
        assert!(none.starts_with("no device"), "{none}");
        let e = VfioError::GroupNotViable { group: 5, others: b };
        assert!(e.to_string().contains("e1000"));
    }

    #[test]
    fn opening_without_vfio_reports_the_sysfs_obstacle_first() {
        let (_dir, sysfs) = fake_sysfs();
        assert!(matches!(VfioPciDevice::open_in(&sysfs, "0000:00:05.0"), Err(VfioError::BoundToOtherDriver { .. })));
        assert!(matches!(VfioPciDevice::open_in(&sysfs, "nonsense"), Err(VfioError::InvalidAddress { .. })));
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }
}
