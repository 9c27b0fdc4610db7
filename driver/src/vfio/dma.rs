//! DMA buffers: host memory a device reads and writes, mapped into its IOMMU domain at a chosen IOVA.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use vfio_ioctls::VfioContainer;

use super::VfioError;

/// The page size DMA buffers and IOVAs are aligned to.
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(ps).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
}

/// A page-aligned buffer of anonymous host memory that the device reaches at [`DmaBuffer::iova`].
///
/// Created by [`super::VfioPciDevice::alloc_dma`]; the IOMMU mapping is removed when the buffer is dropped,
/// before the memory is freed. The device may read and write the memory at any time while it is mapped, so
/// the buffer is accessed with [`DmaBuffer::read`] and [`DmaBuffer::write`], which copy with volatile
/// accesses; [`DmaBuffer::as_mut_slice`] lends it as a slice for code that knows the device is idle.
pub struct DmaBuffer {
    // Field order matters only for clarity: `Drop` unmaps the IOVA range before `map` is freed.
    map: MmapRaw,
    iova: u64,
    container: Arc<VfioContainer>,
}

impl std::fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaBuffer").field("iova", &format_args!("{:#x}", self.iova)).field("len", &self.len()).finish()
    }
}

impl DmaBuffer {
    /// Allocates `len` bytes (rounded up to whole pages) and maps them for DMA at `iova` in `container`.
    pub(crate) fn new(container: Arc<VfioContainer>, len: usize, iova: u64) -> Result<Self, VfioError> {
        let page = page_size();
        if len == 0 {
            return Err(VfioError::DmaRequest { reason: "a DMA buffer cannot be empty".into() });
        }
        let len = len
            .checked_next_multiple_of(page)
            .ok_or_else(|| VfioError::DmaRequest { reason: format!("{len} bytes is too large") })?;
        if !iova.is_multiple_of(page as u64) {
            return Err(VfioError::DmaRequest {
                reason: format!("IOVA {iova:#x} is not aligned to the {page}-byte page size"),
            });
        }
        if iova.checked_add(len as u64).is_none() {
            return Err(VfioError::DmaRequest { reason: format!("IOVA {iova:#x} + {len:#x} bytes overflows") });
        }
        let map = MmapOptions::new()
            .len(len)
            .populate()
            .map_anon()
            .map_err(|source| VfioError::Io { op: format!("allocate {len} bytes for a DMA buffer"), source })?;
        let map = MmapRaw::from(map);
        // SAFETY: `map` is a fresh private anonymous mapping of `len` bytes that this buffer owns. From here on
        // it is only touched through raw pointers (volatile copies in `read`/`write`), or lent as a slice by
        // `as_mut_slice` under the contract documented there; it is unmapped from the IOMMU in `Drop` before
        // the memory is freed (or, if this call fails, it was never mapped). This is the contract
        // `vfio_dma_map` asks for.
        unsafe { container.vfio_dma_map(iova, len, map.as_mut_ptr()) }.map_err(|source| VfioError::DmaMap {
            iova,
            len,
            source,
        })?;
        Ok(DmaBuffer { map, iova, container })
    }

    /// The address the device uses for byte 0 of the buffer.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The buffer's length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the buffer is empty (never).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), VfioError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(VfioError::DmaBounds { offset, len, size: self.len() }),
        }
    }

    /// Copies `data` into the buffer at byte `offset`, then fences, so that a doorbell written afterwards
    /// sees the data.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), VfioError> {
        self.check(offset, data.len())?;
        let base = self.map.as_mut_ptr();
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `check` proved `offset + i < len`, so the byte is inside the live mapping. The store is
            // volatile and through a raw pointer: the device may access this memory concurrently, so no Rust
            // reference to it is formed.
            unsafe { base.add(offset + i).write_volatile(*b) };
        }
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Copies `out.len()` bytes from byte `offset` of the buffer into `out`, after a fence, so that data the
    /// device wrote before signalling completion is seen.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), VfioError> {
        self.check(offset, out.len())?;
        fence(Ordering::SeqCst);
        let base = self.map.as_ptr();
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as in `write`: in bounds of the live mapping, volatile, raw pointer only.
            *b = unsafe { base.add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Fills the whole buffer with `byte`.
    pub fn fill(&self, byte: u8) {
        let base = self.map.as_mut_ptr();
        for i in 0..self.len() {
            // SAFETY: `i < len`, inside the live mapping; volatile raw-pointer store as in `write`.
            unsafe { base.add(i).write_volatile(byte) };
        }
        fence(Ordering::SeqCst);
    }

    /// Lends the buffer as an ordinary byte slice.
    ///
    /// Contract: use it only while the device does not access the buffer (no DMA in flight), which is how the
    /// systole driver works: it fills the window, rings the doorbell, and looks at the window again only after
    /// the engine reports completion. The `&mut self` borrow ends before the driver can ring a doorbell
    /// through the same backend.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        fence(Ordering::SeqCst);
        // SAFETY: the mapping is `len` bytes of initialised (zero-filled at creation) memory, valid and
        // page-aligned for as long as `self` lives, and `&mut self` makes this the only slice of it in this
        // process. The device is not accessing it under the contract stated above.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr(), self.map.len()) }
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // Remove the IOMMU mapping before `map` is freed, so the device can never reach freed memory. This
        // fails only when the container has already lost its IOMMU (its last group was released), in which
        // case the kernel has removed every mapping already; there is nothing else to do in a destructor.
        let _ = self.container.vfio_dma_unmap(self.iova, self.map.len());
    }
}
