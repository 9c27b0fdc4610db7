//! A PCI device opened through VFIO: config space, BARs, DMA buffers and interrupts.

use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapOptions;
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_BASE, VFIO_PCI_BAR5_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    VFIO_TYPE,
};
use vfio_ioctls::{VfioContainer, VfioDevice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::dma::DmaBuffer;
use super::mmio::Mmio;
use super::sysfs::{PciAddress, Sysfs};
use super::VfioError;

/// Offset of the PCI command register in config space.
pub const PCI_COMMAND: u64 = 0x04;
/// Command register bit: respond to memory-space accesses (BARs).
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// Command register bit: bus master, i.e. the device may issue DMA (and MSI writes).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;

vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE as u32, VFIO_BASE + 8);

/// Where a VFIO region lives in the device file and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// The VFIO region index (0–5 BARs, 6 ROM, 7 config space).
    pub index: u32,
    /// Size in bytes (0 when the BAR is not implemented).
    pub size: u64,
    /// Offset of the region in the device file, for pread/pwrite/mmap.
    pub offset: u64,
    /// `VFIO_REGION_INFO_FLAG_*` bits.
    pub flags: u32,
}

impl RegionInfo {
    /// Whether the region may be memory-mapped.
    pub fn mappable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0
    }
}

/// Which interrupt mechanism is enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// Message-signalled interrupts.
    Msi,
    /// MSI-X.
    MsiX,
}

/// A PCI device opened through VFIO.
///
/// Opening creates a VFIO container (an IOMMU domain), adds the device's IOMMU group to it and gets the
/// device file. Every DMA buffer allocated from it is mapped into that domain. Drop order is fixed by the
/// field order: interrupts are disabled in `Drop`, then the device is closed, then the container.
pub struct VfioPciDevice {
    address: PciAddress,
    group: u32,
    irq: Option<(InterruptKind, EventFd)>,
    device: VfioDevice,
    container: Arc<VfioContainer>,
}

impl std::fmt::Debug for VfioPciDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioPciDevice")
            .field("address", &self.address)
            .field("group", &self.group)
            .field("irq", &self.irq.as_ref().map(|(k, _)| *k))
            .finish()
    }
}

fn map_open_error(e: vfio_ioctls::VfioError, sysfs: &Sysfs, address: &PciAddress, group: u32) -> VfioError {
    use vfio_ioctls::VfioError as E;
    let group_path = std::path::PathBuf::from(format!("/dev/vfio/{group}"));
    match e {
        E::OpenContainer(source) if source.kind() == io::ErrorKind::PermissionDenied => {
            VfioError::PermissionDenied { path: "/dev/vfio/vfio".into() }
        }
        E::OpenContainer(source) => VfioError::VfioUnavailable { source },
        E::OpenGroup(source, _) => match source.kind() {
            io::ErrorKind::PermissionDenied => VfioError::PermissionDenied { path: group_path },
            io::ErrorKind::NotFound => VfioError::GroupMissing { path: group_path },
            _ if source.raw_os_error() == Some(libc::EBUSY) => VfioError::GroupBusy { group },
            _ => VfioError::Io { op: format!("open {}", group_path.display()), source },
        },
        E::GroupViable => VfioError::GroupNotViable { group, others: sysfs.group_blockers(group, address) },
        E::ContainerSetIOMMU(ref errno) if errno.errno() == libc::EPERM => VfioError::NoInterruptRemapping,
        E::GroupSetContainer => VfioError::GroupBusy { group },
        other => VfioError::Vfio { op: "open the device", source: other },
    }
}

impl VfioPciDevice {
    /// Opens the PCI device at `address` (e.g. `0000:01:00.0`), which must be bound to vfio-pci.
    pub fn open(address: &str) -> Result<Self, VfioError> {
        Self::open_in(&Sysfs::new(), address)
    }

    /// Like [`VfioPciDevice::open`] with sysfs at another root, for tests of the checks made before any VFIO
    /// call (the `/dev/vfio` files are always the real ones).
    pub(crate) fn open_in(sysfs: &Sysfs, address: &str) -> Result<Self, VfioError> {
        let address = PciAddress::parse(address)?;
        let group = sysfs.check_ready(&address)?;
        let container = Arc::new(VfioContainer::new(None).map_err(|e| map_open_error(e, sysfs, &address, group))?);
        let device = VfioDevice::new(&sysfs.device_dir(&address), container.clone(), false)
            .map_err(|e| map_open_error(e, sysfs, &address, group))?;
        Ok(VfioPciDevice { address, group, irq: None, device, container })
    }

    /// The device's PCI address.
    pub fn address(&self) -> &PciAddress {
        &self.address
    }

    /// The device's IOMMU group.
    pub fn iommu_group(&self) -> u32 {
        self.group
    }

    /// Asks the kernel where region `index` is (`VFIO_DEVICE_GET_REGION_INFO`).
    pub fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        let mut info = vfio_region_info {
            argsz: std::mem::size_of::<vfio_region_info>() as u32,
            flags: 0,
            index,
            cap_offset: 0,
            size: 0,
            offset: 0,
        };
        // SAFETY: VFIO_DEVICE_GET_REGION_INFO reads and writes exactly one `vfio_region_info`, whose size we
        // pass in `argsz`; `info` is a valid, exclusively borrowed instance that outlives the call, and the fd
        // is the open VFIO device. (If capabilities exist, the kernel only reports their size in `argsz`; it
        // never writes past the `argsz` we gave.)
        let ret =
            unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ref(&self.device, VFIO_DEVICE_GET_REGION_INFO(), &mut info) };
        if ret < 0 {
            return Err(VfioError::Io {
                op: format!("get information about VFIO region {index}"),
                source: io::Error::last_os_error(),
            });
        }
        Ok(RegionInfo { index, size: info.size, offset: info.offset, flags: info.flags })
    }

    fn config_region(&self) -> Result<RegionInfo, VfioError> {
        let r = self.region_info(VFIO_PCI_CONFIG_REGION_INDEX)?;
        if r.size < 64 || r.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) == 0 {
            return Err(VfioError::Region {
                region: "config space".into(),
                reason: format!("size {:#x}, flags {:#x}", r.size, r.flags),
            });
        }
        Ok(r)
    }

    fn config_range(&self, offset: u64, len: usize) -> Result<u64, VfioError> {
        let r = self.config_region()?;
        match (offset.checked_add(len as u64), r.offset.checked_add(offset)) {
            (Some(end), Some(pos)) if end <= r.size => Ok(pos),
            _ => Err(VfioError::Region {
                region: "config space".into(),
                reason: format!("access of {len} bytes at {offset:#x} is beyond its {:#x} bytes", r.size),
            }),
        }
    }

    /// Reads `buf.len()` bytes of PCI config space at `offset`; a short read is an error.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        let pos = self.config_range(offset, buf.len())?;
        let pos = libc::off_t::try_from(pos).map_err(|_| VfioError::Region {
            region: "config space".into(),
            reason: format!("file offset {pos:#x} is out of range"),
        })?;
        // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes for the duration of the
        // call, and pread writes at most that many bytes into it.
        let n = unsafe { libc::pread(self.device.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), pos) };
        if n < 0 || n as usize != buf.len() {
            let source = if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::new(io::ErrorKind::UnexpectedEof, format!("read {n} of {} bytes", buf.len()))
            };
            return Err(VfioError::Io { op: format!("read PCI config space at {offset:#x}"), source });
        }
        Ok(())
    }

    /// Writes `data` to PCI config space at `offset`; a short write is an error.
    pub fn config_write(&self, offset: u64, data: &[u8]) -> Result<(), VfioError> {
        let pos = self.config_range(offset, data.len())?;
        let pos = libc::off_t::try_from(pos).map_err(|_| VfioError::Region {
            region: "config space".into(),
            reason: format!("file offset {pos:#x} is out of range"),
        })?;
        // SAFETY: `data` is a valid buffer of `data.len()` bytes for the duration of the call; pwrite only
        // reads from it.
        let n = unsafe { libc::pwrite(self.device.as_raw_fd(), data.as_ptr().cast(), data.len(), pos) };
        if n < 0 || n as usize != data.len() {
            let source = if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::new(io::ErrorKind::WriteZero, format!("wrote {n} of {} bytes", data.len()))
            };
            return Err(VfioError::Io { op: format!("write PCI config space at {offset:#x}"), source });
        }
        Ok(())
    }

    /// Reads a little-endian 16-bit config register.
    pub fn config_read16(&self, offset: u64) -> Result<u16, VfioError> {
        let mut b = [0u8; 2];
        self.config_read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian 32-bit config register.
    pub fn config_read32(&self, offset: u64) -> Result<u32, VfioError> {
        let mut b = [0u8; 4];
        self.config_read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian 16-bit config register.
    pub fn config_write16(&self, offset: u64, value: u16) -> Result<(), VfioError> {
        self.config_write(offset, &value.to_le_bytes())
    }

    /// The (vendor, device) IDs from config space.
    pub fn ids(&self) -> Result<(u16, u16), VfioError> {
        Ok((self.config_read16(0)?, self.config_read16(2)?))
    }

    /// Lets the device master the bus (issue DMA and MSI writes) and decode memory accesses: sets bits 2 and 1
    /// of the command register (vfio-pci leaves bus mastering off), then reads the register back to check.
    pub fn enable_bus_master(&self) -> Result<(), VfioError> {
        let cmd = self.config_read16(PCI_COMMAND)?;
        let want = cmd | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
        if want != cmd {
            self.config_write16(PCI_COMMAND, want)?;
        }
        let now = self.config_read16(PCI_COMMAND)?;
        if now & (PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY) != PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY {
            return Err(VfioError::Region {
                region: "config space".into(),
                reason: format!("the command register reads {now:#06x} after setting bus master and memory enable"),
            });
        }
        Ok(())
    }

    /// Maps BAR `index` (0–5) for register access.
    ///
    /// Keep the returned [`Mmio`] no longer than the device: a live mapping keeps the device file open, so
    /// the group is released only when the process exits.
    pub fn map_bar(&self, index: u32) -> Result<Mmio, VfioError> {
        let name = format!("BAR{index}");
        if index > VFIO_PCI_BAR5_REGION_INDEX {
            return Err(VfioError::Region { region: name, reason: "a PCI device has BARs 0 to 5 only".into() });
        }
        let r = self.region_info(index)?;
        if r.size == 0 {
            return Err(VfioError::Region { region: name, reason: "the device does not implement it".into() });
        }
        if !r.mappable() {
            return Err(VfioError::Region {
                region: name,
                reason: format!(
                    "it cannot be memory-mapped (flags {:#x}): it may be an I/O-port BAR, or smaller than a page on \
                     an old kernel",
                    r.flags
                ),
            });
        }
        let len = usize::try_from(r.size).map_err(|_| VfioError::Region {
            region: name.clone(),
            reason: format!("size {:#x} is too large", r.size),
        })?;
        let map = MmapOptions::new()
            .offset(r.offset)
            .len(len)
            .map_raw(self.device.as_raw_fd())
            .map_err(|source| VfioError::Io { op: format!("map {name} of {}", self.address), source })?;
        Ok(Mmio::new(map))
    }

    /// Allocates a DMA buffer of `len` bytes (rounded up to pages) that the device reaches at `iova`
    /// (page-aligned, and within the device's DMA addressing range). Unmapped when dropped.
    pub fn alloc_dma(&self, len: usize, iova: u64) -> Result<DmaBuffer, VfioError> {
        DmaBuffer::new(self.container.clone(), len, iova)
    }

    /// Routes the device's first interrupt vector to an eventfd: MSI if the device has it, else MSI-X.
    /// Call [`VfioPciDevice::enable_bus_master`] too: MSI messages are bus-master writes.
    pub fn enable_interrupts(&mut self) -> Result<InterruptKind, VfioError> {
        if let Some((kind, _)) = &self.irq {
            return Ok(*kind);
        }
        let has = |index| self.device.get_irq_info(index).map(|i| i.count > 0).unwrap_or(false);
        let (kind, index) = if has(VFIO_PCI_MSI_IRQ_INDEX) {
            (InterruptKind::Msi, VFIO_PCI_MSI_IRQ_INDEX)
        } else if has(VFIO_PCI_MSIX_IRQ_INDEX) {
            (InterruptKind::MsiX, VFIO_PCI_MSIX_IRQ_INDEX)
        } else {
            return Err(VfioError::NoInterrupts {
                reason: "its config space has neither an MSI nor an MSI-X capability".into(),
            });
        };
        let fd = EventFd::new(EFD_NONBLOCK)
            .map_err(|source| VfioError::Io { op: "create an eventfd for interrupts".into(), source })?;
        self.device.enable_irq(index, vec![&fd]).map_err(|source| VfioError::Vfio {
            op: if kind == InterruptKind::Msi { "enable MSI" } else { "enable MSI-X" },
            source,
        })?;
        self.irq = Some((kind, fd));
        Ok(kind)
    }

    /// Waits until the device raises an interrupt or `timeout` passes: `Ok(true)` on an interrupt (all
    /// interrupts that arrived since the last call are consumed), `Ok(false)` on timeout.
    pub fn wait_interrupt(&self, timeout: Duration) -> Result<bool, VfioError> {
        let (_, fd) = self.irq.as_ref().ok_or(VfioError::InterruptsNotEnabled)?;
        // A timeout too large to add to the clock waits for ever.
        let deadline = Instant::now().checked_add(timeout);
        let expired = || deadline.is_some_and(|d| Instant::now() >= d);
        loop {
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            // Round up so that a sub-millisecond remainder still waits rather than spinning.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one valid, exclusively borrowed pollfd and we pass a count of 1.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(VfioError::Io { op: "wait for an interrupt".into(), source: e });
            }
            if n == 0 {
                if expired() {
                    return Ok(false);
                }
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                return Err(VfioError::Io {
                    op: "wait for an interrupt".into(),
                    source: io::Error::other(format!("poll reported events {:#x} on the eventfd", pfd.revents)),
                });
            }
            match fd.read() {
                Ok(_) => return Ok(true),
                // Another reader consumed it between poll and read: keep waiting.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(source) => return Err(VfioError::Io { op: "read the interrupt eventfd".into(), source }),
            }
        }
    }

    /// Routes interrupts away from the eventfd again (also done on drop).
    pub fn disable_interrupts(&mut self) -> Result<(), VfioError> {
        if let Some((kind, fd)) = self.irq.take() {
            let index = if kind == InterruptKind::Msi { VFIO_PCI_MSI_IRQ_INDEX } else { VFIO_PCI_MSIX_IRQ_INDEX };
            if let Err(source) = self.device.disable_irq(index) {
                self.irq = Some((kind, fd));
                return Err(VfioError::Vfio { op: "disable interrupts", source });
            }
        }
        Ok(())
    }
}

impl Drop for VfioPciDevice {
    fn drop(&mut self) {
        // Nothing can be reported from a destructor; closing the device disables its interrupts anyway.
        let _ = self.disable_interrupts();
    }
}
