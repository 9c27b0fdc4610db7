//! The BAR0 register map: how a driver discovers, programs and observes an engine.
//!
//! All registers are 32 bits wide, little-endian, at 4-byte aligned offsets, accessed with single 32-bit
//! reads and writes. 64-bit quantities are split into `_LO`/`_HI` pairs; reading `_LO` latches `_HI`, so the
//! pair reads consistently. Unlisted offsets read as zero and ignore writes.
//!
//! # Submitting work
//! The driver writes one program (32-byte instructions, [`crate::isa`], ending with its only FINISH) into a
//! ring of `CQ_SIZE` slots at `CQ_BASE` in the DMA window, then writes the index one past the FINISH to
//! `DOORBELL`. The engine fetches from `CQ_HEAD` up to that tail (wrapping at `CQ_SIZE`) and executes; when the
//! FINISH completes, `CQ_HEAD` equals the tail and the engine sets `IRQ_STATUS.DONE` (raising an interrupt if
//! enabled). One program is in flight at a time: a doorbell written while `STATUS.BUSY` is ignored. On an error
//! the engine stops, sets `STATUS.ERROR`, `ERROR_CODE`, `ERROR_PC` and `IRQ_STATUS.ERROR`; only `CTRL.RESET`
//! clears an error.

use crate::config::EngineConfig;

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u32 = 0x1000;

/// The value of [`ID`]: ASCII "SYST".
pub const ID_MAGIC: u32 = 0x5359_5354;

/// The register-map and ISA version this crate describes: major.minor.patch as `major<<16 | minor<<8 | patch`.
/// A driver refuses an engine whose major version differs.
pub const VERSION: u32 = 1 << 16;

/// One register: name, byte offset, access and meaning, as documented in `docs/architecture.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Register {
    /// Name as written in the documentation.
    pub name: &'static str,
    /// Byte offset in BAR0.
    pub offset: u32,
    /// Access: "RO" read-only, "RW" read-write, "WO" write-only, "W1C" write one to clear.
    pub access: &'static str,
}

macro_rules! registers {
    ($($(#[$doc:meta])* $name:ident = $off:expr, $access:expr;)*) => {
        $( $(#[$doc])* pub const $name: u32 = $off; )*
        /// Every register, in offset order: the single source of the register map.
        pub const ALL: &[Register] = &[ $( Register { name: stringify!($name), offset: $off, access: $access } ),* ];
    };
}

registers! {
    /// Identity: [`ID_MAGIC`].
    ID = 0x000, "RO";
    /// Version: [`VERSION`].
    VERSION_REG = 0x004, "RO";
    /// Array and format: rows[7:0] (log2), cols[15:8] (log2), block_size[23:16], mantissa_bits[27:24],
    /// exponent_bits[31:28].
    CONFIG_ARRAY = 0x008, "RO";
    /// Buffer sizes, log2 of entries: act[7:0], wgt[15:8], acc[23:16], out[31:24].
    CONFIG_BUFFERS = 0x00C, "RO";
    /// Memory: dma_bytes_per_cycle (log2)[7:0], dma_latency[19:8], fetch_burst (log2)[23:20],
    /// queue_depth (log2)[27:24].
    CONFIG_MEMORY = 0x010, "RO";
    /// Pipeline: acc_latency[7:0], post_latency[15:8].
    CONFIG_PIPELINE = 0x014, "RO";
    /// Clock in MHz.
    CONFIG_CLOCK_MHZ = 0x018, "RO";
    /// Control: bit 0 RESET (self-clearing: aborts work, clears buffers' state machines, errors, tokens,
    /// counters and CQ_HEAD).
    CTRL = 0x020, "WO";
    /// Status: bit 0 BUSY, bit 1 IDLE (BUSY clear and no error), bit 2 ERROR.
    STATUS = 0x024, "RO";
    /// Error code (see [`ErrorCode`]); 0 when there is no error.
    ERROR_CODE = 0x028, "RO";
    /// Index of the instruction that failed, counted from the `CQ_HEAD` of its doorbell (its program index).
    ERROR_PC = 0x02C, "RO";
    /// Interrupt enable: bit 0 DONE, bit 1 ERROR.
    IRQ_ENABLE = 0x030, "RW";
    /// Interrupt status: bit 0 DONE, bit 1 ERROR; write 1 to clear.
    IRQ_STATUS = 0x034, "W1C";
    /// IOVA of the DMA window, low half. Instruction addresses are byte offsets in this window.
    DMA_BASE_LO = 0x040, "RW";
    /// IOVA of the DMA window, high half.
    DMA_BASE_HI = 0x044, "RW";
    /// Size of the DMA window in bytes; accesses beyond it fail with `DmaOutOfBounds`.
    DMA_SIZE = 0x048, "RW";
    /// Byte offset of the command ring in the DMA window (32-byte aligned; otherwise the doorbell fails with
    /// `IllegalInstruction`).
    CQ_BASE = 0x050, "RW";
    /// Ring size in instructions (a power of two).
    CQ_SIZE = 0x054, "RW";
    /// Index of the next instruction the engine will fetch.
    CQ_HEAD = 0x058, "RO";
    /// Write the new tail (index one past the last valid instruction) to start fetching; reads the tail.
    DOORBELL = 0x05C, "RW";
    /// Busy cycles since reset, low half.
    CYCLES_LO = 0x100, "RO";
    /// Busy cycles since reset, high half.
    CYCLES_HI = 0x104, "RO";
    /// Instructions retired, low half.
    INSTRUCTIONS_LO = 0x108, "RO";
    /// Instructions retired, high half.
    INSTRUCTIONS_HI = 0x10C, "RO";
    /// Useful multiply-accumulates (element products) performed by GEMM, low half.
    MACS_LO = 0x110, "RO";
    /// Useful multiply-accumulates, high half.
    MACS_HI = 0x114, "RO";
    /// Bytes read by LOAD, low half.
    LOAD_BYTES_LO = 0x118, "RO";
    /// Bytes read by LOAD, high half.
    LOAD_BYTES_HI = 0x11C, "RO";
    /// Bytes written by STORE, low half.
    STORE_BYTES_LO = 0x120, "RO";
    /// Bytes written by STORE, high half.
    STORE_BYTES_HI = 0x124, "RO";
    /// Cycles the load stage was executing, low half.
    LOAD_BUSY_LO = 0x128, "RO";
    /// Cycles the load stage was executing, high half.
    LOAD_BUSY_HI = 0x12C, "RO";
    /// Cycles the compute stage was executing, low half.
    COMPUTE_BUSY_LO = 0x130, "RO";
    /// Cycles the compute stage was executing, high half.
    COMPUTE_BUSY_HI = 0x134, "RO";
    /// Cycles the store stage was executing, low half.
    STORE_BUSY_LO = 0x138, "RO";
    /// Cycles the store stage was executing, high half.
    STORE_BUSY_HI = 0x13C, "RO";
    /// Accumulator additions that saturated at ±f32::MAX (32-bit, sticky at 0xFFFFFFFF).
    SATURATIONS = 0x140, "RO";
}

/// `CTRL` bit: reset the engine.
pub const CTRL_RESET: u32 = 1 << 0;
/// `STATUS` bit: executing a program.
pub const STATUS_BUSY: u32 = 1 << 0;
/// `STATUS` bit: idle without error.
pub const STATUS_IDLE: u32 = 1 << 1;
/// `STATUS` bit: stopped on an error.
pub const STATUS_ERROR: u32 = 1 << 2;
/// `IRQ_ENABLE`/`IRQ_STATUS` bit: a FINISH completed.
pub const IRQ_DONE: u32 = 1 << 0;
/// `IRQ_ENABLE`/`IRQ_STATUS` bit: the engine stopped on an error.
pub const IRQ_ERROR: u32 = 1 << 1;

/// The engine's error codes (`ERROR_CODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// An instruction failed to decode (unknown opcode, reserved bits, bad field).
    IllegalInstruction = 1,
    /// A buffer address computed by an instruction is beyond the buffer.
    BufferOutOfRange = 2,
    /// A DMA access falls outside the DMA window.
    DmaOutOfBounds = 3,
    /// A pop has no matching earlier push (the program would deadlock).
    TokenUnderflow = 4,
    /// A token counter exceeded its capacity.
    TokenOverflow = 5,
    /// Tokens remained unconsumed at FINISH.
    UnbalancedTokens = 6,
    /// LOAD read a NaN or infinity into the accumulator buffer.
    NonFiniteInput = 7,
    /// A block in a BFP buffer holds a reserved exponent code.
    BadExponent = 8,
    /// POST's quantizer saw a non-finite value (cannot happen with saturating accumulators; reserved).
    Internal = 15,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::IllegalInstruction,
        ErrorCode::BufferOutOfRange,
        ErrorCode::DmaOutOfBounds,
        ErrorCode::TokenUnderflow,
        ErrorCode::TokenOverflow,
        ErrorCode::UnbalancedTokens,
        ErrorCode::NonFiniteInput,
        ErrorCode::BadExponent,
        ErrorCode::Internal,
    ];

    /// Decodes an `ERROR_CODE` value.
    pub fn from_u32(v: u32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| *c as u32 == v)
    }
}

/// Token counters are this many bits wide: at most `2^16 − 1` tokens may be outstanding on one queue.
pub const TOKEN_COUNTER_BITS: u32 = 16;

/// The values of the read-only configuration registers for an engine, in offset order
/// (`CONFIG_ARRAY` .. `CONFIG_CLOCK_MHZ`). The hardware drives them; the driver decodes them with
/// [`decode_config`].
pub fn encode_config(c: &EngineConfig) -> [(u32, u32); 5] {
    let lg = |v: usize| v.trailing_zeros();
    [
        (
            CONFIG_ARRAY,
            lg(c.rows)
                | lg(c.cols) << 8
                | (c.format.block_size() as u32) << 16
                | c.format.mantissa_bits() << 24
                | c.format.exponent_bits() << 28,
        ),
        (
            CONFIG_BUFFERS,
            lg(c.act_entries) | lg(c.wgt_entries) << 8 | lg(c.acc_entries) << 16 | lg(c.out_entries) << 24,
        ),
        (
            CONFIG_MEMORY,
            lg(c.dma_bytes_per_cycle) | c.dma_latency << 8 | lg(c.fetch_burst) << 20 | lg(c.queue_depth) << 24,
        ),
        (CONFIG_PIPELINE, c.acc_latency | c.post_latency << 8),
        (CONFIG_CLOCK_MHZ, c.clock_mhz),
    ]
}

/// Rebuilds an engine's configuration from its configuration registers, read with `read(offset)`.
pub fn decode_config(read: impl Fn(u32) -> u32) -> Result<EngineConfig, crate::config::ConfigError> {
    let arr = read(CONFIG_ARRAY);
    let buf = read(CONFIG_BUFFERS);
    let mem = read(CONFIG_MEMORY);
    let pipe = read(CONFIG_PIPELINE);
    let p2 = |v: u32| 1usize << (v & 0x1f);
    let format = crate::bfp::BfpFormat::new(((arr >> 16) & 0xff) as usize, (arr >> 24) & 0xf, (arr >> 28) & 0xf)
        .map_err(|e| crate::config::ConfigError(e.to_string()))?;
    let cfg = EngineConfig {
        rows: p2(arr & 0xff),
        cols: p2((arr >> 8) & 0xff),
        format,
        act_entries: p2(buf & 0xff),
        wgt_entries: p2((buf >> 8) & 0xff),
        acc_entries: p2((buf >> 16) & 0xff),
        out_entries: p2((buf >> 24) & 0xff),
        clock_mhz: read(CONFIG_CLOCK_MHZ),
        dma_bytes_per_cycle: p2(mem & 0xff),
        dma_latency: (mem >> 8) & 0xfff,
        fetch_burst: p2((mem >> 20) & 0xf),
        queue_depth: p2((mem >> 24) & 0xf),
        acc_latency: pipe & 0xff,
        post_latency: (pipe >> 8) & 0xff,
    };
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_unique_aligned_and_inside_bar0() {
        let mut seen = std::collections::HashSet::new();
        for r in ALL {
            assert_eq!(r.offset % 4, 0, "{}", r.name);
            assert!(r.offset < BAR0_SIZE, "{}", r.name);
            assert!(seen.insert(r.offset), "{} reuses {:#x}", r.name, r.offset);
        }
    }

    #[test]
    fn configuration_round_trips_through_registers() {
        for (_, cfg) in EngineConfig::presets() {
            let regs = encode_config(&cfg);
            let read = |off: u32| regs.iter().find(|(o, _)| *o == off).map(|(_, v)| *v).unwrap_or(0);
            assert_eq!(decode_config(read).unwrap(), cfg);
        }
    }

    #[test]
    fn error_codes_decode() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(c as u32), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(0), None);
    }
}
