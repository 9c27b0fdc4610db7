//! [`VfioBackend`]: a real systole engine behind the [`Backend`] trait.

use std::time::Duration;

use arch::regs::BAR0_SIZE;

use super::device::VfioPciDevice;
use super::dma::DmaBuffer;
use super::mmio::Mmio;
use super::VfioError;
use crate::backend::Backend;
use crate::DriverError;

/// The IOVA at which [`VfioBackend`] maps its DMA window: 4 GiB, clear of the low addresses that platforms
/// reserve (e.g. the x86 MSI range at 0xfee0_0000) and within every IOMMU's 39-bit or wider address space.
pub const WINDOW_IOVA: u64 = 0x1_0000_0000;

/// A systole engine reached through VFIO: BAR0 registers through [`Mmio`], one [`DmaBuffer`] as the DMA
/// window at [`WINDOW_IOVA`], and MSI (or MSI-X) for [`Backend::wait_interrupt`].
///
/// This is a thin layer over the VFIO pieces, which the QEMU test (`scripts/qemu-vfio-test.sh`) exercises
/// against a real kernel; it does not check the engine's identity, which the `Accelerator` does.
#[derive(Debug)]
pub struct VfioBackend {
    // Dropped in this order: the BAR mapping and the window before the device that they belong to.
    bar0: Mmio,
    window: DmaBuffer,
    device: VfioPciDevice,
    name: String,
}

impl VfioBackend {
    /// Opens the engine at PCI `address` (bound to vfio-pci) with a DMA window of `window_len` bytes (rounded up
    /// to whole pages): enables bus mastering, maps BAR0, maps the window at [`WINDOW_IOVA`] and enables
    /// interrupts.
    pub fn open(address: &str, window_len: usize) -> Result<Self, VfioError> {
        let mut device = VfioPciDevice::open(address)?;
        device.enable_bus_master()?;
        let bar0 = device.map_bar(0)?;
        if bar0.len() < BAR0_SIZE as usize {
            return Err(VfioError::Region {
                region: "BAR0".into(),
                reason: format!(
                    "it has {:#x} bytes but a systole engine's register map needs {BAR0_SIZE:#x}: is this a systole \
                     engine?",
                    bar0.len()
                ),
            });
        }
        let window = device.alloc_dma(window_len, WINDOW_IOVA)?;
        device.enable_interrupts()?;
        let name = format!("vfio {}", device.address());
        Ok(VfioBackend { bar0, window, device, name })
    }

    /// The underlying device.
    pub fn device(&self) -> &VfioPciDevice {
        &self.device
    }
}

fn mmio_error(e: VfioError, offset: u32) -> DriverError {
    match e {
        VfioError::Mmio { .. } => DriverError::Register { offset },
        other => DriverError::Vfio(other),
    }
}

impl Backend for VfioBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read32(&mut self, offset: u32) -> Result<u32, DriverError> {
        self.bar0.read32(u64::from(offset)).map_err(|e| mmio_error(e, offset))
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), DriverError> {
        self.bar0.write32(u64::from(offset), value).map_err(|e| mmio_error(e, offset))
    }

    fn window(&mut self) -> &mut [u8] {
        self.window.as_mut_slice()
    }

    fn window_device_address(&self) -> u64 {
        self.window.iova()
    }

    fn wait_interrupt(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        self.device.wait_interrupt(timeout).map_err(DriverError::Vfio)
    }
}
