//! The VFIO layer's errors: each says what went wrong and what the user can do about it.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// How to hand a device to vfio-pci, shown in several messages. `{a}` is the PCI address.
fn bind_howto(a: &str) -> String {
    format!(
        "as root: `modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/{a}/driver_override; \
         [ -e /sys/bus/pci/devices/{a}/driver ] && echo {a} > /sys/bus/pci/devices/{a}/driver/unbind; \
         echo {a} > /sys/bus/pci/drivers_probe`"
    )
}

/// Everything that can go wrong while finding, opening and driving a PCI device through VFIO.
#[derive(Debug, Error)]
pub enum VfioError {
    /// The PCI address is not of the form `DDDD:BB:DD.F` (or `BB:DD.F`).
    #[error("`{address}` is not a PCI address: write it as DOMAIN:BUS:DEVICE.FUNCTION in hex, e.g. 0000:01:00.0 (see `lspci -D`)")]
    InvalidAddress {
        /// What was given.
        address: String,
    },
    /// No device at that address.
    #[error("there is no PCI device {address} ({path} does not exist): list devices with `lspci -D`")]
    NoSuchDevice {
        /// The PCI address.
        address: String,
        /// The sysfs directory that is missing.
        path: PathBuf,
    },
    /// The device belongs to no IOMMU group: the IOMMU is off or absent.
    #[error(
        "PCI device {address} is in no IOMMU group, so VFIO cannot isolate it: enable VT-d/AMD-Vi in the \
         firmware and boot Linux with `intel_iommu=on` (Intel) or `amd_iommu=on iommu=pt` (AMD), then check \
         that /sys/kernel/iommu_groups is not empty"
    )]
    NoIommuGroup {
        /// The PCI address.
        address: String,
    },
    /// The device is bound to a driver other than vfio-pci.
    #[error(
        "PCI device {address} is bound to the `{driver}` driver, not vfio-pci: hand it to vfio-pci, {}",
        bind_howto(address)
    )]
    BoundToOtherDriver {
        /// The PCI address.
        address: String,
        /// The driver it is bound to.
        driver: String,
    },
    /// The device is bound to no driver at all.
    #[error("PCI device {address} is bound to no driver: bind it to vfio-pci, {}", bind_howto(address))]
    NotBound {
        /// The PCI address.
        address: String,
    },
    /// `/dev/vfio/vfio` does not exist: the VFIO modules are not loaded.
    #[error("cannot open /dev/vfio/vfio ({source}): load VFIO with `modprobe vfio-pci` (as root)")]
    VfioUnavailable {
        /// What opening it returned.
        #[source]
        source: io::Error,
    },
    /// A VFIO device file cannot be opened for lack of permission.
    #[error(
        "permission denied opening {}: run as root, or give your user the file (`chown $USER {}`) and a \
         locked-memory limit large enough for the DMA buffers (`ulimit -l`)",
        path.display(), path.display()
    )]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// The group's device file is missing although the device is bound to vfio-pci.
    #[error("the VFIO group file {} does not exist: check that vfio-pci is loaded and bound to the device", path.display())]
    GroupMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The group is open already: in another process (a VM, another driver instance) or elsewhere in this one.
    #[error(
        "IOMMU group {group} is already open, by another process (a VM, another driver instance) or elsewhere in \
         this one: close it there first (`fuser -v /dev/vfio/{group}` shows who holds it)"
    )]
    GroupBusy {
        /// The group number.
        group: u32,
    },
    /// Some device of the group is bound to a host driver, so the group cannot be handed to user space.
    #[error(
        "IOMMU group {group} is not viable: every device in it must be bound to vfio-pci or to no driver, \
         but {others}; bind those to vfio-pci too (the same way), or move the card to a slot with its own group"
    )]
    GroupNotViable {
        /// The group number.
        group: u32,
        /// The offending devices and their drivers, as text (e.g. `0000:00:1f.3 is bound to snd_hda_intel`).
        others: String,
    },
    /// The platform lacks interrupt remapping, which vfio_iommu_type1 requires by default.
    #[error(
        "VFIO refused to set up the IOMMU (operation not permitted), most likely because the platform has no \
         interrupt remapping: enable it in the firmware, or accept the risk with \
         `modprobe vfio_iommu_type1 allow_unsafe_interrupts=1`"
    )]
    NoInterruptRemapping,
    /// A VFIO operation failed (the wrapped error says which ioctl).
    #[error("VFIO failed to {op}: {source}")]
    Vfio {
        /// What the driver was doing, e.g. `open the device`.
        op: &'static str,
        /// The error from the VFIO wrapper.
        #[source]
        source: vfio_ioctls::VfioError,
    },
    /// A system call or file access failed.
    #[error("failed to {op}: {source}")]
    Io {
        /// What the driver was doing, e.g. `read PCI config space at 0x4`.
        op: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A device region (BAR, config space) is missing or unusable.
    #[error("device region {region} is unusable: {reason}")]
    Region {
        /// Which region, e.g. `BAR0`.
        region: String,
        /// Why.
        reason: String,
    },
    /// A register access outside the mapped BAR or not 4-byte aligned.
    #[error("register access at {offset:#x} is outside the {len:#x}-byte BAR or not 4-byte aligned")]
    Mmio {
        /// The offending byte offset.
        offset: u64,
        /// The mapping's length in bytes.
        len: usize,
    },
    /// A DMA buffer could not be set up (bad size or IOVA).
    #[error("invalid DMA buffer request: {reason}")]
    DmaRequest {
        /// Why the request is invalid.
        reason: String,
    },
    /// The IOMMU refused to map a DMA buffer.
    #[error("cannot map {len:#x} bytes for DMA at IOVA {iova:#x}: {source}{}", dma_hint(source))]
    DmaMap {
        /// The IOVA asked for.
        iova: u64,
        /// The buffer's length.
        len: usize,
        /// The error from the VFIO wrapper.
        #[source]
        source: vfio_ioctls::VfioError,
    },
    /// An access to a DMA buffer outside the buffer.
    #[error("DMA buffer access of {len} bytes at offset {offset:#x} is outside the {size:#x}-byte buffer")]
    DmaBounds {
        /// The offset asked for.
        offset: usize,
        /// The length asked for.
        len: usize,
        /// The buffer's size.
        size: usize,
    },
    /// The device offers no interrupt this driver can use.
    #[error("the device offers no MSI or MSI-X interrupt through VFIO: {reason}")]
    NoInterrupts {
        /// What was found.
        reason: String,
    },
    /// [`super::VfioPciDevice::wait_interrupt`] was called before interrupts were enabled.
    #[error("interrupts are not enabled: call enable_interrupts first")]
    InterruptsNotEnabled,
}

fn dma_hint(source: &vfio_ioctls::VfioError) -> &'static str {
    if let vfio_ioctls::VfioError::IommuDmaMap(e) = source {
        match e.errno() {
            libc::ENOMEM => {
                return " (raise the locked-memory limit: `ulimit -l`, or LimitMEMLOCK= for a service)";
            }
            libc::EEXIST => return " (the IOVA range overlaps a buffer that is already mapped)",
            libc::EINVAL => {
                return " (the IOVA or size is not page-aligned, or lies outside the IOMMU's address range)";
            }
            libc::EPERM | libc::EACCES => return " (not permitted: run as root or raise `ulimit -l`)",
            _ => {}
        }
    }
    ""
}
