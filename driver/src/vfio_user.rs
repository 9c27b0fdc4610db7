//! The engine over **vfio-user**: a device server for [`EngineModel`] and a client [`Backend`] that talks to it.
//!
//! vfio-user is the protocol QEMU's `vfio-user-pci` device and SPDK use to put a PCI device in another process:
//! every register access is a message over a Unix socket, the client shares its memory with the device by
//! passing file descriptors (`DMA_MAP`), and the device raises interrupts by writing to eventfds the client
//! registered (`SET_IRQS`). Both ends here use the `vfio_user` crate from rust-vmm, so the register, DMA and
//! interrupt protocol of `arch::regs` runs end to end through a real transport:
//!
//! * [`serve_engine`] exposes an [`EngineModel`] as a PCI device on a socket: config space ([`PCI_VENDOR_ID`],
//!   [`PCI_DEVICE_ID`], class "processing accelerator", one 32-bit memory BAR, an MSI capability), BAR0 of
//!   [`arch::regs::BAR0_SIZE`] bytes backed by the model's register file (32-bit accesses only), DMA into the
//!   client's shared memory, and one interrupt (MSI or INTx) through the client's eventfd.
//! * [`VfioUserBackend`] connects to such a server (or any vfio-user server of a systole engine): it allocates
//!   the DMA window as shared memory (a memfd), maps it into the device at an IOVA, turns BAR0 reads and writes
//!   into region messages and waits for interrupts on an eventfd.
//!
//! ```no_run
//! use arch::config::EngineConfig;
//! use driver::model::EngineModel;
//! use driver::vfio_user::{serve_engine, VfioUserBackend};
//! use driver::Accelerator;
//!
//! # fn main() -> Result<(), driver::DriverError> {
//! let server = serve_engine("/tmp/systole.sock", EngineModel::new(EngineConfig::tiny())?)?;
//! let mut acc = Accelerator::open(VfioUserBackend::connect("/tmp/systole.sock", 4 << 20)?)?;
//! # let program = [];
//! acc.run(&program)?;
//! drop(acc);
//! server.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! Sharing memory: the server touches the client's window only while it handles a doorbell write, and the
//! client is blocked waiting for that write's reply the whole time, so the two sides never access the window
//! concurrently when the client is this backend (or any client that does not write the window while a doorbell
//! is outstanding).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::vfio_user::{Client, DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion};
use arch::regs;
use memmap2::{MmapMut, MmapOptions};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_MASK,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vmm_sys_util::eventfd::EventFd;

use crate::backend::Backend;
use crate::model::EngineModel;
use crate::DriverError;

/// PCI vendor ID the vfio-user engine reports. A **placeholder** ("SY"), not an ID assigned to this project:
/// the PCIe core of a real bitstream will define the engine's IDs, and this constant will follow them.
pub const PCI_VENDOR_ID: u16 = 0x5359;

/// PCI device ID the vfio-user engine reports. A **placeholder** ("ST") until a bitstream defines the real one.
pub const PCI_DEVICE_ID: u16 = 0x5354;

/// PCI class code (class, subclass, programming interface) the engine reports: `0x12_00_00`, "processing
/// accelerator".
pub const PCI_CLASS_CODE: u32 = 0x12_0000;

/// The IOVA at which [`VfioUserBackend::connect`] maps the DMA window into the device.
pub const DEFAULT_IOVA: u64 = 0x1_0000_0000;

/// Size of the device's PCI configuration space (conventional PCI).
pub const CONFIG_SPACE_SIZE: usize = 256;

/// Config-space offsets and bits used here (PCI Local Bus Specification, type 0 header).
mod pci {
    pub const VENDOR_ID: usize = 0x00;
    pub const DEVICE_ID: usize = 0x02;
    pub const COMMAND: usize = 0x04;
    pub const STATUS: usize = 0x06;
    pub const REVISION: usize = 0x08;
    pub const CLASS_CODE: usize = 0x09;
    pub const HEADER_TYPE: usize = 0x0E;
    pub const BAR0: usize = 0x10;
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
    pub const SUBSYSTEM_ID: usize = 0x2E;
    pub const CAPABILITIES: usize = 0x34;
    pub const INTERRUPT_LINE: usize = 0x3C;
    pub const INTERRUPT_PIN: usize = 0x3D;
    /// Where the MSI capability lives.
    pub const MSI: usize = 0x40;
    pub const CAP_ID_MSI: u8 = 0x05;
    /// MSI message control: bit 0 enable, bits 6:4 multiple message enable, bit 7 64-bit capable.
    pub const MSI_CONTROL_64BIT: u16 = 1 << 7;

    pub const COMMAND_MEMORY: u16 = 1 << 1;
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    pub const STATUS_CAPABILITIES: u16 = 1 << 4;
}

/// The engine's PCI configuration space: values and which bits software may write.
#[derive(Debug, Clone)]
struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_SIZE],
    writable: [u8; CONFIG_SPACE_SIZE],
}

impl ConfigSpace {
    fn new() -> Self {
        let mut c = ConfigSpace { bytes: [0; CONFIG_SPACE_SIZE], writable: [0; CONFIG_SPACE_SIZE] };
        c.put(pci::VENDOR_ID, &PCI_VENDOR_ID.to_le_bytes());
        c.put(pci::DEVICE_ID, &PCI_DEVICE_ID.to_le_bytes());
        c.allow(
            pci::COMMAND,
            &(pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER | pci::COMMAND_INTX_DISABLE).to_le_bytes(),
        );
        c.put(pci::STATUS, &pci::STATUS_CAPABILITIES.to_le_bytes());
        c.put(pci::REVISION, &[(regs::VERSION >> 16) as u8]);
        c.put(pci::CLASS_CODE, &PCI_CLASS_CODE.to_le_bytes()[..3]);
        c.put(pci::HEADER_TYPE, &[0]);
        // BAR0: 32-bit, non-prefetchable memory. Only the address bits above the BAR's size are writable, so
        // writing all ones reads back the size mask, as BAR sizing expects.
        c.allow(pci::BAR0, &(!(regs::BAR0_SIZE - 1)).to_le_bytes());
        c.put(pci::SUBSYSTEM_VENDOR_ID, &PCI_VENDOR_ID.to_le_bytes());
        c.put(pci::SUBSYSTEM_ID, &PCI_DEVICE_ID.to_le_bytes());
        c.put(pci::CAPABILITIES, &[pci::MSI as u8]);
        c.allow(pci::INTERRUPT_LINE, &[0xff]);
        c.put(pci::INTERRUPT_PIN, &[1]); // INTA#
                                         // MSI capability: one vector, 64-bit addresses; enable, address and data are writable.
        c.put(pci::MSI, &[pci::CAP_ID_MSI, 0]);
        c.put(pci::MSI + 2, &pci::MSI_CONTROL_64BIT.to_le_bytes());
        c.allow(pci::MSI + 2, &0x0071u16.to_le_bytes());
        c.allow(pci::MSI + 4, &0xffff_fffcu32.to_le_bytes());
        c.allow(pci::MSI + 8, &u32::MAX.to_le_bytes());
        c.allow(pci::MSI + 12, &u16::MAX.to_le_bytes());
        c
    }

    fn put(&mut self, offset: usize, value: &[u8]) {
        self.bytes[offset..offset + value.len()].copy_from_slice(value);
    }

    fn allow(&mut self, offset: usize, mask: &[u8]) {
        self.writable[offset..offset + mask.len()].copy_from_slice(mask);
    }

    fn range(offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= CONFIG_SPACE_SIZE)
            .ok_or_else(|| {
                invalid(format!("config space access of {len} bytes at {offset:#x} is beyond its 256 bytes"))
            })
    }

    fn read(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        let r = Self::range(offset, data.len())?;
        data.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = Self::range(offset, data.len())?;
        for ((byte, mask), new) in self.bytes[r.clone()].iter_mut().zip(&self.writable[r]).zip(data) {
            *byte = (*byte & !mask) | (new & mask);
        }
        Ok(())
    }

    fn command(&self) -> u16 {
        u16::from_le_bytes([self.bytes[pci::COMMAND], self.bytes[pci::COMMAND + 1]])
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn unsupported(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, message.to_string())
}

/// One `DMA_MAP`ping of client memory.
#[derive(Debug)]
struct DmaMapping {
    iova: u64,
    size: u64,
    /// The client's memory, mapped into this process; `None` for a read-only mapping, which the engine cannot
    /// use (it writes results into its window), so it is tracked only to keep the address map consistent.
    memory: Option<MmapMut>,
}

/// The device side: the server calls this for every message that concerns the device.
#[derive(Debug)]
struct EngineDevice {
    model: EngineModel,
    config: ConfigSpace,
    maps: Vec<DmaMapping>,
    /// The eventfd registered for each interrupt index (INTx, MSI).
    irqs: [Option<File>; 2],
    intx_masked: bool,
}

impl EngineDevice {
    fn new(model: EngineModel) -> Self {
        EngineDevice { model, config: ConfigSpace::new(), maps: Vec::new(), irqs: [None, None], intx_masked: false }
    }

    /// The client went away: its memory and eventfds are no longer ours to use. The engine keeps its state, as
    /// hardware would; the next client's driver resets it.
    fn disconnect(&mut self) {
        self.maps.clear();
        self.irqs = [None, None];
        self.intx_masked = false;
    }

    fn check_register(offset: u64, len: usize) -> io::Result<u32> {
        match u32::try_from(offset) {
            Ok(o) if len == 4 && o.is_multiple_of(4) && o < regs::BAR0_SIZE => Ok(o),
            _ => Err(invalid(format!(
                "BAR0 access of {len} bytes at {offset:#x}: the engine's registers take aligned 32-bit accesses only"
            ))),
        }
    }

    /// The DMA window as the engine sees it: the mapped memory from `DMA_BASE`, at most `DMA_SIZE` bytes, within
    /// one mapping. Whatever part of the window is not mapped is missing from the slice, so the engine reports
    /// `DmaOutOfBounds` when it gets there, as hardware behind an IOMMU faults.
    fn window(maps: &mut [DmaMapping], base: u64, size: u32) -> &mut [u8] {
        for m in maps {
            let Some(memory) = m.memory.as_mut() else { continue };
            if base < m.iova || base - m.iova >= m.size {
                continue;
            }
            let start = (base - m.iova) as usize;
            let end = start.saturating_add(size as usize).min(memory.len());
            return &mut memory[start..end];
        }
        &mut []
    }

    fn bar0_write(&mut self, offset: u32, value: u32) {
        let before = self.model.interrupt_pending();
        if offset == regs::DOORBELL {
            let read = |model: &mut EngineModel, r| model.read32(r).unwrap_or(0);
            let base = read(&mut self.model, regs::DMA_BASE_LO) as u64
                | (read(&mut self.model, regs::DMA_BASE_HI) as u64) << 32;
            let size = read(&mut self.model, regs::DMA_SIZE);
            let memory = Self::window(&mut self.maps, base, size);
            self.model.write32(offset, value, memory);
        } else {
            self.model.write32(offset, value, &mut []);
        }
        if !before && self.model.interrupt_pending() {
            self.raise_interrupt();
        }
    }

    /// Signals the interrupt: through MSI if the client registered an eventfd for it, otherwise INTx.
    fn raise_interrupt(&mut self) {
        let intx_enabled = !self.intx_masked && self.config.command() & pci::COMMAND_INTX_DISABLE == 0;
        let target = match &self.irqs {
            [_, Some(msi)] => Some(msi),
            [Some(intx), None] if intx_enabled => Some(intx),
            _ => None,
        };
        if let Some(mut eventfd) = target {
            // An eventfd only fails a write when its counter would overflow, i.e. when the client has ignored
            // 2^64 − 2 interrupts; there is nothing better to do then than to drop this one.
            let _ = eventfd.write_all(&1u64.to_ne_bytes());
        }
    }
}

impl ServerBackend for EngineDevice {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), io::Error> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(offset, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                let offset = Self::check_register(offset, data.len())?;
                let value = self.model.read32(offset).ok_or_else(|| invalid(format!("no register at {offset:#x}")))?;
                data.copy_from_slice(&value.to_le_bytes());
                Ok(())
            }
            _ => Err(invalid(format!("region {region} is not implemented by the systole engine"))),
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.write(offset, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                let offset = Self::check_register(offset, data.len())?;
                let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.bar0_write(offset, value);
                Ok(())
            }
            _ => Err(invalid(format!("region {region} is not implemented by the systole engine"))),
        }
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> Result<(), io::Error> {
        let Some(file) = fd else {
            return Err(unsupported("DMA through messages is not supported: map memory with a file descriptor"));
        };
        let end = address.checked_add(size).filter(|_| size > 0);
        let Some(end) = end else {
            return Err(invalid(format!("DMA mapping of {size} bytes at {address:#x} is empty or wraps")));
        };
        if self.maps.iter().any(|m| address < m.iova + m.size && m.iova < end) {
            return Err(invalid(format!("DMA mapping {address:#x}..{end:#x} overlaps an existing mapping")));
        }
        let len = usize::try_from(size).map_err(|_| invalid(format!("DMA mapping of {size} bytes is too large")))?;
        // Mapping past the end of the file would make the engine's first access there a SIGBUS.
        let file_len = file.metadata()?.len();
        if offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(invalid(format!(
                "DMA mapping of {size} bytes at file offset {offset:#x} runs past the end of its {file_len}-byte file"
            )));
        }
        let memory = if flags.contains(DmaMapFlags::READ_WRITE) {
            // SAFETY: the file is memory the client shares with the device for DMA, which is what a mapping is
            // for. The client does not touch it while the engine runs (see the module documentation: the engine
            // only accesses it inside a doorbell write, which the client waits for), and the mapping is owned by
            // this `DmaMapping`, so no slice of it outlives the unmap.
            Some(unsafe { MmapOptions::new().offset(offset).len(len).map_mut(&file)? })
        } else {
            None
        };
        self.maps.push(DmaMapping { iova: address, size, memory });
        Ok(())
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> Result<(), io::Error> {
        if flags.contains(DmaUnmapFlags::GET_DIRTY_PAGE_INFO) {
            return Err(unsupported("dirty page tracking is not supported"));
        }
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            self.maps.clear();
            return Ok(());
        }
        match self.maps.iter().position(|m| m.iova == address && m.size == size) {
            Some(i) => {
                self.maps.remove(i);
                Ok(())
            }
            None => Err(invalid(format!("no DMA mapping of {size} bytes at {address:#x} to unmap"))),
        }
    }

    fn reset(&mut self) -> Result<(), io::Error> {
        self.model.write32(regs::CTRL, regs::CTRL_RESET, &mut []);
        self.intx_masked = false;
        Ok(())
    }

    fn set_irqs(&mut self, index: u32, flags: u32, start: u32, count: u32, fds: Vec<File>) -> Result<(), io::Error> {
        let vectors = if index < 2 { 1 } else { 0 };
        if start.checked_add(count).is_none_or(|end| end > vectors) {
            return Err(invalid(format!("interrupt index {index} has {vectors} vectors, not {start}+{count}")));
        }
        let slot = index as usize;
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        match flags & VFIO_IRQ_SET_ACTION_TYPE_MASK {
            VFIO_IRQ_SET_ACTION_TRIGGER => match data {
                _ if count == 0 => {
                    if let Some(irq) = self.irqs.get_mut(slot) {
                        *irq = None;
                    }
                    Ok(())
                }
                VFIO_IRQ_SET_DATA_EVENTFD => {
                    let mut fds = fds.into_iter();
                    match (fds.next(), fds.next()) {
                        (Some(fd), None) => {
                            self.irqs[slot] = Some(fd);
                            Ok(())
                        }
                        _ => Err(invalid("pass exactly one eventfd per interrupt vector".into())),
                    }
                }
                VFIO_IRQ_SET_DATA_NONE => {
                    // A loopback trigger, for testing the interrupt path.
                    if let Some(mut eventfd) = self.irqs[slot].as_ref() {
                        eventfd.write_all(&1u64.to_ne_bytes())?;
                    }
                    Ok(())
                }
                _ => Err(unsupported("interrupt data other than eventfds is not supported")),
            },
            action @ (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK)
                if index == VFIO_PCI_INTX_IRQ_INDEX && data == VFIO_IRQ_SET_DATA_NONE =>
            {
                self.intx_masked = action == VFIO_IRQ_SET_ACTION_MASK;
                Ok(())
            }
            _ => Err(unsupported("only triggering through eventfds, and masking INTx, are supported")),
        }
    }
}

/// The regions the server announces: BAR0 and config space; the other PCI regions are empty.
fn server_regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let (size, flags) = match index {
                VFIO_PCI_BAR0_REGION_INDEX => {
                    (regs::BAR0_SIZE as u64, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
                }
                VFIO_PCI_CONFIG_REGION_INDEX => {
                    (CONFIG_SPACE_SIZE as u64, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
                }
                _ => (0, 0),
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    flags,
                    index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

/// The interrupts the server announces: one INTx and one MSI vector; MSI-X, error and request have none.
fn server_irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            let (flags, count) = match index {
                VFIO_PCI_INTX_IRQ_INDEX => (VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE, 1),
                VFIO_PCI_MSI_IRQ_INDEX => (VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1),
                _ => (VFIO_IRQ_INFO_EVENTFD, 0),
            };
            IrqInfo { index, flags, count }
        })
        .collect()
}

/// How long [`ServerHandle::stop`] waits for the server thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server thread hands back when it ends.
struct ServerExit {
    model: EngineModel,
    error: Option<String>,
}

/// A running vfio-user engine server (see [`serve_engine`]). It serves one client at a time, one after another,
/// until [`ServerHandle::stop`] (or drop) stops it. A client that sends malformed messages loses its connection;
/// the server goes on with the next client.
pub struct ServerHandle {
    path: PathBuf,
    /// A second handle on the listening socket, to shut it down and to recognise its connections.
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ServerExit>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("path", &self.path).field("running", &self.is_running()).finish()
    }
}

/// Serves `model` as a vfio-user PCI device on a new Unix socket at `socket_path`, from a thread of this
/// process. The socket exists when this returns, so clients may connect at once. Fails if the path exists.
pub fn serve_engine(socket_path: impl AsRef<Path>, model: EngineModel) -> Result<ServerHandle, DriverError> {
    let path = socket_path.as_ref().to_path_buf();
    let shown = path.display();
    if path.exists() {
        return Err(DriverError::VfioUser(format!(
            "cannot serve on {shown}: the path exists; remove it if no server is using it, or choose another path"
        )));
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        DriverError::VfioUser(format!(
            "cannot create the socket {shown}: {e}; check that its directory exists and is writable"
        ))
    })?;
    let cleanup = |e: io::Error| {
        let _ = std::fs::remove_file(&path);
        DriverError::VfioUser(format!("cannot start the server on {shown}: {e}"))
    };
    let control = listener.try_clone().map_err(cleanup)?;
    let server = Server::from_owned_fd(OwnedFd::from(listener), true, server_irqs(), server_regions());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let device = EngineDevice::new(model);
    let thread = std::thread::Builder::new()
        .name("vfio-user engine".into())
        .spawn(move || serve(&server, device, &flag))
        .map_err(cleanup)?;
    Ok(ServerHandle { path, listener: control, stop, thread: Some(thread) })
}

/// The server thread: one client after another until stopped.
fn serve(server: &Server, mut device: EngineDevice, stop: &AtomicBool) -> ServerExit {
    let mut error = None;
    while !stop.load(Ordering::SeqCst) {
        let result = panic::catch_unwind(AssertUnwindSafe(|| server.run(&mut device)));
        device.disconnect();
        // Accepting failed: the socket was shut down by `stop`, or is broken. Any other outcome means the client
        // hung up, or its connection broke on a malformed message (the crate panics on some, e.g. a short version
        // message, before the device sees anything; the unwinding closed the connection): serve the next client.
        if let Ok(Err(e @ ::vfio_user::Error::SocketAccept(_))) = result {
            if !stop.load(Ordering::SeqCst) {
                error = Some(format!("the server stopped: {e}"));
            }
            break;
        }
    }
    ServerExit { model: device.model, error }
}

impl ServerHandle {
    /// The socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// True until the server stops (by [`ServerHandle::stop`] or a fatal error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the server: closes the socket and any client's connection (the client's next access fails with
    /// [`DriverError::VfioUser`]), removes the socket file, and returns the engine with its final state.
    pub fn stop(mut self) -> Result<EngineModel, DriverError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<EngineModel, DriverError> {
        let Some(thread) = self.thread.take() else {
            return Err(DriverError::VfioUser("the server was already stopped".into()));
        };
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutdown(2) on a socket this handle owns; it changes only the socket's state (a blocked
        // accept(2) returns EINVAL), never memory.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() {
            shutdown_connections(&self.path, self.listener.as_raw_fd());
            if Instant::now() > deadline {
                let _ = std::fs::remove_file(&self.path);
                return Err(DriverError::VfioUser(format!(
                    "the server on {} did not stop within {STOP_TIMEOUT:?}; its thread is left behind",
                    self.path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::fs::remove_file(&self.path);
        let exit =
            thread.join().map_err(|_| DriverError::VfioUser("the server thread panicked (see stderr)".into()))?;
        match exit.error {
            Some(e) => Err(DriverError::VfioUser(format!("{e} (socket {})", self.path.display()))),
            None => Ok(exit.model),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Shuts down every connection the server accepted on the socket at `path`.
///
/// The `vfio_user` crate's `Server::run` keeps the accepted connection to itself and returns only when the
/// client hangs up, so the only way to end a connection from outside is to find the connected socket among this
/// process's file descriptors: an accepted Unix socket has the listener's address as its own name, and is not
/// listening. Shutting it down makes the server's next receive see end-of-file, and the client's next request
/// fail.
fn shutdown_connections(path: &Path, listener: RawFd) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return };
    let name = path.as_os_str().as_bytes();
    for entry in fds.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else { continue };
        if fd != listener && socket_name(fd).as_deref() == Some(name) && !is_listening(fd) {
            // SAFETY: shutdown(2) only changes a socket's state; `fd` was just checked to be one of this server's
            // connections (if it has been closed and reused meanwhile, the call fails or hits another connection
            // of the same server, which is being stopped anyway).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}

/// The path a Unix socket is bound to (for an accepted connection: its listener's), if `fd` is one.
fn socket_name(fd: RawFd) -> Option<Vec<u8>> {
    // SAFETY: `sockaddr_un` is plain old data, for which all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a writable buffer of `len` bytes, which getsockname(2) does not exceed; `fd` may be any
    // integer (the call fails on anything but a socket).
    let rc = unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_un).cast(), &mut len) };
    if rc != 0 || addr.sun_family != libc::AF_UNIX as libc::sa_family_t {
        return None;
    }
    let path_len = (len as usize).saturating_sub(std::mem::offset_of!(libc::sockaddr_un, sun_path));
    Some(addr.sun_path.iter().take(path_len).map(|&c| c as u8).take_while(|&b| b != 0).collect())
}

/// True if `fd` is a listening socket.
fn is_listening(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is a writable `c_int` and `len` its size, as SO_ACCEPTCONN requires.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&mut value as *mut libc::c_int).cast(), &mut len)
    };
    rc == 0 && value != 0
}

/// A systole engine behind a vfio-user socket: BAR0 through region messages, the DMA window in shared memory
/// mapped into the device, and the interrupt through an eventfd.
pub struct VfioUserBackend {
    client: Client,
    socket: PathBuf,
    ids: (u16, u16),
    /// The DMA window: a memfd shared with the device, mapped here.
    window: MmapMut,
    window_len: usize,
    iova: u64,
    irq: EventFd,
    interrupts: u64,
}

impl std::fmt::Debug for VfioUserBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioUserBackend")
            .field("socket", &self.socket)
            .field("ids", &self.ids)
            .field("window_len", &self.window_len)
            .field("iova", &self.iova)
            .finish()
    }
}

/// Turns a protocol error into the driver's error, saying what the user can do about it.
fn protocol_error(socket: &Path, doing: &str, e: ::vfio_user::Error) -> DriverError {
    use ::vfio_user::Error as E;
    let hint = match &e {
        E::Connect(_) => "check that a vfio-user server of a systole engine is listening on that socket",
        E::StreamRead(_) | E::StreamWrite(_) | E::SendWithFd(_) | E::ReceiveWithFd(_) | E::StreamShutdown(_) => {
            "the device server closed the connection: check that it is still running (and its log), then reopen \
             the device"
        }
        E::NotPciDevice => "the server does not expose a PCI device: is it a systole engine server?",
        _ => "the server answered something this driver does not understand: is it a systole engine server?",
    };
    DriverError::VfioUser(format!("{doing} (server socket {}): {e}; {hint}", socket.display()))
}

fn os_error(doing: &str, e: io::Error) -> DriverError {
    DriverError::VfioUser(format!("{doing}: {e}"))
}

impl VfioUserBackend {
    /// Connects to the vfio-user server at `socket_path` and gives the device a DMA window of `window_bytes`
    /// bytes of shared memory at [`DEFAULT_IOVA`].
    pub fn connect(socket_path: impl AsRef<Path>, window_bytes: usize) -> Result<Self, DriverError> {
        Self::connect_at(socket_path, window_bytes, DEFAULT_IOVA)
    }

    /// Like [`VfioUserBackend::connect`], with the window at the device address `iova`.
    pub fn connect_at(socket_path: impl AsRef<Path>, window_bytes: usize, iova: u64) -> Result<Self, DriverError> {
        let socket = socket_path.as_ref().to_path_buf();
        if window_bytes == 0 {
            return Err(DriverError::WindowTooSmall { need: 1, have: 0 });
        }
        // The crate's client panics on some malformed replies (e.g. a short version message); a server that
        // sends them is an error of that server, not of this process.
        let mut client = panic::catch_unwind(|| Client::new(&socket))
            .map_err(|_| {
                DriverError::VfioUser(format!(
                    "the server at {} sent a malformed reply while connecting; is it a vfio-user server?",
                    socket.display()
                ))
            })?
            .map_err(|e| protocol_error(&socket, "cannot connect", e))?;

        let bar0 = client.region(VFIO_PCI_BAR0_REGION_INDEX).map_or(0, |r| r.size);
        let config = client.region(VFIO_PCI_CONFIG_REGION_INDEX).map_or(0, |r| r.size);
        if bar0 < regs::BAR0_SIZE as u64 || config < 0x40 {
            return Err(DriverError::VfioUser(format!(
                "the device at {} has a BAR0 of {bar0} bytes and {config} bytes of config space, not a systole \
                 engine's {} and 256: point the driver at an engine's socket",
                socket.display(),
                regs::BAR0_SIZE
            )));
        }
        let mut id = [0u8; 4];
        client
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::VENDOR_ID as u64, &mut id)
            .map_err(|e| protocol_error(&socket, "cannot read the PCI IDs", e))?;
        let ids = (u16::from_le_bytes([id[0], id[1]]), u16::from_le_bytes([id[2], id[3]]));
        // Enable memory decoding and bus mastering (DMA), as a PCI driver does.
        let mut command = [0u8; 2];
        client
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::COMMAND as u64, &mut command)
            .map_err(|e| protocol_error(&socket, "cannot read the PCI command register", e))?;
        let command = u16::from_le_bytes(command) | pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER;
        client
            .region_write(VFIO_PCI_CONFIG_REGION_INDEX, pci::COMMAND as u64, &command.to_le_bytes())
            .map_err(|e| protocol_error(&socket, "cannot enable the device", e))?;

        // The DMA window: shared memory the device maps through the file descriptor, in whole pages.
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        let mapped = window_bytes.div_ceil(page).checked_mul(page);
        let mapped = mapped.filter(|&m| iova.checked_add(m as u64).is_some()).ok_or_else(|| {
            DriverError::VfioUser(format!("a DMA window of {window_bytes} bytes at IOVA {iova:#x} does not fit"))
        })?;
        let memory = memfd("systole-dma-window").map_err(|e| os_error("cannot create the DMA window's memfd", e))?;
        memory.set_len(mapped as u64).map_err(|e| os_error("cannot size the DMA window", e))?;
        seal_size(&memory).map_err(|e| os_error("cannot seal the DMA window's size", e))?;
        // SAFETY: the memfd is new and private to this backend and the device; the device writes it only while
        // handling a doorbell write, during which this backend waits for the reply and holds no slice of it
        // (`window` borrows `self` mutably, as `write32` does).
        let window = unsafe { MmapOptions::new().len(mapped).map_mut(&memory) }
            .map_err(|e| os_error("cannot map the DMA window", e))?;
        client
            .dma_map(0, iova, mapped as u64, memory.as_raw_fd())
            .map_err(|e| protocol_error(&socket, "cannot map the DMA window into the device", e))?;

        let irq = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
            .map_err(|e| os_error("cannot create the interrupt eventfd", e))?;
        client
            .set_irqs(
                VFIO_PCI_MSI_IRQ_INDEX,
                VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                0,
                1,
                &[irq.as_raw_fd()],
            )
            .map_err(|e| protocol_error(&socket, "cannot register the interrupt", e))?;

        Ok(VfioUserBackend { client, socket, ids, window, window_len: window_bytes, iova, irq, interrupts: 0 })
    }

    /// The device's PCI (vendor, device) IDs, read from its config space.
    pub fn pci_ids(&self) -> (u16, u16) {
        self.ids
    }

    /// The socket this backend is connected to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Interrupts received so far (signals consumed from the eventfd by [`Backend::wait_interrupt`]).
    pub fn interrupts(&self) -> u64 {
        self.interrupts
    }

    fn check(offset: u32) -> Result<u64, DriverError> {
        if offset < regs::BAR0_SIZE && offset.is_multiple_of(4) {
            Ok(offset as u64)
        } else {
            Err(DriverError::Register { offset })
        }
    }
}

/// A new memfd (anonymous shared memory that can be passed to another process).
fn memfd(name: &str) -> io::Result<File> {
    let name = std::ffi::CString::new(name).map_err(|e| invalid(e.to_string()))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this descriptor, which nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Fixes a memfd's size for good, so that neither side can shrink it under the other's mapping (which would
/// turn the other side's next access into a SIGBUS).
fn seal_size(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl(F_ADD_SEALS) on a descriptor this function borrows; it takes an integer argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Backend for VfioUserBackend {
    fn name(&self) -> String {
        format!("vfio-user {} ({:04x}:{:04x})", self.socket.display(), self.ids.0, self.ids.1)
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        let at = Self::check(offset)?;
        let mut data = [0u8; 4];
        self.client
            .region_read(VFIO_PCI_BAR0_REGION_INDEX, at, &mut data)
            .map_err(|e| protocol_error(&self.socket, &format!("cannot read BAR0 register {offset:#x}"), e))?;
        Ok(u32::from_le_bytes(data))
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        let at = Self::check(offset)?;
        self.client
            .region_write(VFIO_PCI_BAR0_REGION_INDEX, at, &value.to_le_bytes())
            .map_err(|e| protocol_error(&self.socket, &format!("cannot write BAR0 register {offset:#x}"), e))
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.window[..self.window_len]
    }

    fn window_device_address(&self) -> u64 {
        self.iova
    }

    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.irq.read() {
                Ok(n) => {
                    self.interrupts += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(os_error("cannot read the interrupt eventfd", e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd { fd: self.irq.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `pfd` is one valid pollfd and the count says one.
            if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(os_error("cannot wait for the interrupt eventfd", e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arch::config::EngineConfig;

    use super::*;

    fn device() -> EngineDevice {
        EngineDevice::new(EngineModel::new(EngineConfig::tiny()).unwrap())
    }

    #[test]
    fn bar0_takes_aligned_32_bit_accesses_only() {
        let mut d = device();
        let mut word = [0u8; 4];
        d.region_read(VFIO_PCI_BAR0_REGION_INDEX, regs::ID as u64, &mut word).unwrap();
        assert_eq!(u32::from_le_bytes(word), regs::ID_MAGIC);
        let err = d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut [0; 2]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("32-bit"), "{err}");
        assert!(d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut [0; 8]).is_err());
        assert!(d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 2, &mut word).is_err());
        assert!(d.region_read(VFIO_PCI_BAR0_REGION_INDEX, regs::BAR0_SIZE as u64, &mut word).is_err());
        assert!(d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 1 << 40, &mut word).is_err());
        assert!(d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::CTRL as u64, &[1]).is_err());
        assert!(d.region_write(VFIO_PCI_BAR0_REGION_INDEX, 6, &[0; 4]).is_err());
        assert!(d.region_read(3, 0, &mut word).is_err(), "BAR3 does not exist");
    }

    #[test]
    fn config_space_identifies_the_engine_and_sizes_bar0() {
        let mut d = device();
        let mut id = [0u8; 4];
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut id).unwrap();
        assert_eq!(id, [0x59, 0x53, 0x54, 0x53]);
        let mut class = [0u8; 4];
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::REVISION as u64, &mut class).unwrap();
        assert_eq!(u32::from_le_bytes(class) >> 8, PCI_CLASS_CODE);
        // BAR sizing: write all ones, read back the size mask (memory BAR, 32-bit, non-prefetchable).
        d.region_write(VFIO_PCI_CONFIG_REGION_INDEX, pci::BAR0 as u64, &[0xff; 4]).unwrap();
        let mut bar = [0u8; 4];
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::BAR0 as u64, &mut bar).unwrap();
        assert_eq!(u32::from_le_bytes(bar), !(regs::BAR0_SIZE - 1));
        // Read-only fields ignore writes; byte accesses work.
        d.region_write(VFIO_PCI_CONFIG_REGION_INDEX, 0, &[0, 0]).unwrap();
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut id[..1]).unwrap();
        assert_eq!(id[0], 0x59);
        // The capability list leads to MSI.
        let mut cap = [0u8; 2];
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::CAPABILITIES as u64, &mut cap[..1]).unwrap();
        d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, cap[0] as u64, &mut cap).unwrap();
        assert_eq!(cap, [pci::CAP_ID_MSI, 0]);
        assert!(d.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 255, &mut cap).is_err());
    }

    /// An eventfd, and a `File` on the same eventfd to hand to the device as the client's message would.
    fn eventfd() -> (EventFd, File) {
        use std::os::fd::IntoRawFd;
        let efd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let fd = efd.try_clone().unwrap().into_raw_fd();
        // SAFETY: `into_raw_fd` gave up ownership of this new descriptor.
        (efd, unsafe { File::from_raw_fd(fd) })
    }

    /// Rings a doorbell with nothing mapped: the engine stops with `DmaOutOfBounds`, raising ERROR.
    fn fail(d: &mut EngineDevice) {
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::CTRL as u64, &regs::CTRL_RESET.to_le_bytes()).unwrap();
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::IRQ_ENABLE as u64, &regs::IRQ_ERROR.to_le_bytes()).unwrap();
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::CQ_SIZE as u64, &64u32.to_le_bytes()).unwrap();
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::DOORBELL as u64, &1u32.to_le_bytes()).unwrap();
        assert!(d.model.interrupt_pending());
    }

    #[test]
    fn intx_delivers_when_no_msi_is_registered_and_can_be_masked() {
        let mut d = device();
        let (intx, file) = eventfd();
        let trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        d.set_irqs(VFIO_PCI_INTX_IRQ_INDEX, trigger, 0, 1, vec![file]).unwrap();
        fail(&mut d);
        assert_eq!(intx.read().unwrap(), 1);
        let mask = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK;
        d.set_irqs(VFIO_PCI_INTX_IRQ_INDEX, mask, 0, 1, vec![]).unwrap();
        fail(&mut d);
        assert!(intx.read().is_err(), "masked");
        let unmask = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
        d.set_irqs(VFIO_PCI_INTX_IRQ_INDEX, unmask, 0, 1, vec![]).unwrap();
        // MSI takes precedence once registered.
        let (msi, file) = eventfd();
        d.set_irqs(VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, 1, vec![file]).unwrap();
        fail(&mut d);
        assert_eq!(msi.read().unwrap(), 1);
        assert!(intx.read().is_err());
        // Loopback trigger, and refusals.
        d.set_irqs(VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, vec![]).unwrap();
        assert_eq!(msi.read().unwrap(), 1);
        assert!(d.set_irqs(VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, 2, vec![]).is_err());
        assert!(d.set_irqs(2, trigger, 0, 1, vec![]).is_err(), "no MSI-X vectors");
        d.set_irqs(2, trigger, 0, 0, vec![]).unwrap();
        // Disabling MSI falls back to INTx.
        d.set_irqs(VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, 0, vec![]).unwrap();
        fail(&mut d);
        assert_eq!(intx.read().unwrap(), 1);
    }

    #[test]
    fn dma_mappings_must_not_overlap_and_unmap_exactly() {
        let mut d = device();
        let file = memfd("test").unwrap();
        file.set_len(8192).unwrap();
        d.dma_map(DmaMapFlags::READ_WRITE, 0, 0x1000, 8192, Some(file.try_clone().unwrap())).unwrap();
        assert!(d.dma_map(DmaMapFlags::READ_WRITE, 0, 0x2000, 4096, Some(file.try_clone().unwrap())).is_err());
        assert!(d.dma_map(DmaMapFlags::READ_WRITE, 0, 0x9000, 4096, None).is_err());
        let err = d.dma_map(DmaMapFlags::READ_WRITE, 4096, 0x9000, 8192, Some(file.try_clone().unwrap())).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
        assert_eq!(EngineDevice::window(&mut d.maps, 0x2000, 100).len(), 100);
        assert_eq!(EngineDevice::window(&mut d.maps, 0x2000, 1 << 20).len(), 8192 - 0x1000);
        assert_eq!(EngineDevice::window(&mut d.maps, 0x0, 100).len(), 0);
        assert!(d.dma_unmap(DmaUnmapFlags::empty(), 0x1000, 4096).is_err());
        d.dma_unmap(DmaUnmapFlags::empty(), 0x1000, 8192).unwrap();
        assert!(d.maps.is_empty());
    }
}
