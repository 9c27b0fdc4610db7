//! Memory-mapped registers: the only way this crate touches a BAR.

use memmap2::{MmapOptions, MmapRaw};

use super::VfioError;

/// A memory-mapped register window (a PCI BAR) accessed with single, volatile, 32-bit reads and writes.
///
/// Every access is checked: an offset that is not 4-byte aligned or runs past the end is an error
/// ([`VfioError::Mmio`]), never a panic or an access outside the mapping. `Mmio` only hands out values, never
/// references into the mapping, so no Rust reference ever aliases device memory.
#[derive(Debug)]
pub struct Mmio {
    map: MmapRaw,
}

impl Mmio {
    /// Wraps a mapping. The mapping must be of device (or ordinary) memory that stays mapped as long as the
    /// `MmapRaw` lives, which `MmapRaw` guarantees.
    pub(crate) fn new(map: MmapRaw) -> Self {
        Mmio { map }
    }

    /// A register window over `len` bytes of zeroed ordinary memory: behaves like a BAR whose registers
    /// simply hold what is written. For tests of code that drives registers.
    pub fn anonymous(len: usize) -> Result<Self, VfioError> {
        if len == 0 {
            return Err(VfioError::Region { region: "anonymous".into(), reason: "length 0".into() });
        }
        let map = MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|source| VfioError::Io { op: format!("map {len} bytes of anonymous memory"), source })?;
        Ok(Mmio { map: MmapRaw::from(map) })
    }

    /// The window's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the window is empty (never, for a mapped BAR).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The byte index of the 32-bit register at `offset`, after checking alignment and bounds.
    fn index(&self, offset: u64) -> Result<usize, VfioError> {
        let err = VfioError::Mmio { offset, len: self.len() };
        if !offset.is_multiple_of(4) {
            return Err(err);
        }
        let start = usize::try_from(offset).map_err(|_| VfioError::Mmio { offset, len: self.len() })?;
        match start.checked_add(4) {
            Some(end) if end <= self.len() => Ok(start),
            _ => Err(err),
        }
    }

    /// Reads the 32-bit register at byte `offset`.
    pub fn read32(&self, offset: u64) -> Result<u32, VfioError> {
        let i = self.index(offset)?;
        // SAFETY: `index` checked that `i..i + 4` lies inside the mapping, which stays mapped while `self.map`
        // lives; `i` is a multiple of 4 and the mapping starts page-aligned, so the pointer is aligned for u32.
        // The access is volatile, so it is performed exactly once, as a single 32-bit load, as MMIO requires.
        // No Rust reference to this memory exists.
        let v = unsafe { self.map.as_ptr().add(i).cast::<u32>().read_volatile() };
        Ok(u32::from_le(v))
    }

    /// Writes the 32-bit register at byte `offset`.
    pub fn write32(&self, offset: u64, value: u32) -> Result<(), VfioError> {
        let i = self.index(offset)?;
        // SAFETY: as in `read32`: in bounds, aligned, volatile, a single 32-bit store, and no reference aliases
        // the mapping. Writing through a shared `&self` is fine because the memory is never borrowed as a Rust
        // value; `MmapRaw` hands out a raw mutable pointer for exactly this.
        unsafe { self.map.as_mut_ptr().add(i).cast::<u32>().write_volatile(value.to_le()) };
        Ok(())
    }
}
