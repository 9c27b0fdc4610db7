//! The engine's configuration: every parameter that hardware and software must agree on.
//!
//! One [`EngineConfig`] value describes one engine build. The `hdl` crate generates RTL from it, the driver
//! reads it back from the engine's registers ([`crate::regs`]), the runtime's scheduler tiles layers for it,
//! and the golden model ([`crate::golden`]) executes and times programs by it.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::bfp::BfpFormat;

/// Error for a configuration that the engine cannot be built with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid engine configuration: {0}")]
pub struct ConfigError(pub String);

/// The parameters of one engine build.
///
/// Buffer sizes count *entries*: a BFP block (activation, weight and output buffers) or one `f32`
/// (accumulator buffer). Every size is addressable by the ISA's 16-bit buffer addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    /// Rows of the systolic array: reduction (K) elements consumed per pass.
    pub rows: usize,
    /// Columns of the systolic array: output channels (N) produced per pass.
    pub cols: usize,
    /// The number format of activations, weights and outputs.
    pub format: BfpFormat,
    /// Activation buffer size in BFP blocks.
    pub act_entries: usize,
    /// Weight buffer size in BFP blocks.
    pub wgt_entries: usize,
    /// Accumulator buffer size in `f32` values.
    pub acc_entries: usize,
    /// Output buffer size in BFP blocks.
    pub out_entries: usize,
    /// Target clock in MHz (for reporting latency; the cycle model does not depend on it).
    pub clock_mhz: u32,
    /// Bytes each DMA channel moves per cycle (the memory port's data width).
    pub dma_bytes_per_cycle: usize,
    /// Cycles from a DMA request to its first data beat.
    pub dma_latency: u32,
    /// Instructions each stage's queue holds between fetch and execution.
    pub queue_depth: usize,
    /// Instructions fetched from the command ring per burst.
    pub fetch_burst: usize,
    /// Pipeline latency of the accumulator adders at the array's edge, in cycles.
    pub acc_latency: u32,
    /// Pipeline latency of the post-processing unit, in cycles.
    pub post_latency: u32,
}

impl EngineConfig {
    /// A small engine for fast tests and rust-hdl simulation: 4×4 array, MSFP16.
    pub fn tiny() -> Self {
        EngineConfig {
            rows: 4,
            cols: 4,
            format: BfpFormat::MSFP16,
            act_entries: 1024,
            wgt_entries: 1024,
            acc_entries: 4096,
            out_entries: 512,
            clock_mhz: 100,
            dma_bytes_per_cycle: 16,
            dma_latency: 16,
            queue_depth: 8,
            fetch_burst: 4,
            acc_latency: 4,
            post_latency: 4,
        }
    }

    /// The smallest engine that still runs every program: `tiny` with one-instruction fetch bursts, 2-deep
    /// stage queues and a 6-cycle memory latency (on-chip memory), the logic a board around it costs least
    /// (docs/bitstreams.md: the whole engine that fits the LFE5U-85F).
    pub fn mini() -> Self {
        EngineConfig { fetch_burst: 1, queue_depth: 2, dma_latency: 6, ..Self::tiny() }
    }

    /// The default engine: 16×16 array, MSFP16, buffers sized for ResNet-50 tiles, 512-bit memory port.
    pub fn default_16x16() -> Self {
        EngineConfig {
            rows: 16,
            cols: 16,
            act_entries: 32768,
            wgt_entries: 16384,
            acc_entries: 65536,
            out_entries: 8192,
            clock_mhz: 250,
            dma_bytes_per_cycle: 64,
            dma_latency: 64,
            queue_depth: 16,
            fetch_burst: 8,
            ..Self::tiny()
        }
    }

    /// A large engine: 32×32 array, MXINT8 (block 32), for datacenter-class FPGAs.
    pub fn large_32x32() -> Self {
        EngineConfig { rows: 32, cols: 32, format: BfpFormat::MXINT8, ..Self::default_16x16() }
    }

    /// A 16×16 MSFP16 engine for a mid-size FPGA (the Lattice LFE5U-85F of docs/bitstreams.md): the 16×16
    /// array with the `tiny` preset's 128-bit memory port, and buffers sized to the 85F's 208 block RAMs of
    /// 18 kbit (WGT 16K blocks: 136, ACT 2K: 17, OUT 1K: 17, ACC 4K: 16; 22 left for a board memory) and to
    /// ResNet-50, whose widest layers need 16 columns of 4 608 weight blocks in half the weight buffer.
    pub fn ecp5() -> Self {
        EngineConfig {
            act_entries: 2048,
            wgt_entries: 16384,
            acc_entries: 4096,
            out_entries: 1024,
            ..Self::default_16x16()
        }
        .with_port_of(Self::tiny())
    }

    /// Same engine with `other`'s memory port, fetch and queue parameters (`dma_bytes_per_cycle`,
    /// `dma_latency`, `fetch_burst`, `queue_depth`) and clock.
    fn with_port_of(self, other: EngineConfig) -> Self {
        EngineConfig {
            dma_bytes_per_cycle: other.dma_bytes_per_cycle,
            dma_latency: other.dma_latency,
            fetch_burst: other.fetch_burst,
            queue_depth: other.queue_depth,
            clock_mhz: other.clock_mhz,
            ..self
        }
    }

    /// The named presets, with the names [`FromStr`] accepts.
    pub fn presets() -> [(&'static str, EngineConfig); 5] {
        [
            ("tiny", Self::tiny()),
            ("mini", Self::mini()),
            ("16x16", Self::default_16x16()),
            ("32x32", Self::large_32x32()),
            ("ecp5", Self::ecp5()),
        ]
    }

    /// The short name that [`FromStr`] parses back to exactly this configuration (`16x16-msfp16`, `tiny-mxint8`,
    /// `8x32-msfp12`), or `None` for a configuration no name describes (buffers changed by hand). Model
    /// packages and reports name engines this way.
    pub fn spec(&self) -> Option<String> {
        let presets = Self::presets();
        let bases = presets.iter().map(|(n, _)| n.to_string()).chain([format!("{}x{}", self.rows, self.cols)]);
        bases.map(|b| format!("{b}-{}", self.format)).find(|name| name.parse::<EngineConfig>().as_ref() == Ok(self))
    }

    /// Same engine with another number format.
    pub fn with_format(self, format: BfpFormat) -> Self {
        EngineConfig { format, ..self }
    }

    /// Checks every constraint the ISA and the hardware rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pow2_in = |name: &str, v: usize, lo: usize, hi: usize| {
            if v.is_power_of_two() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError(format!("{name} = {v}: must be a power of two in {lo}..={hi}")))
            }
        };
        pow2_in("rows", self.rows, 2, 128)?;
        pow2_in("cols", self.cols, 2, 128)?;
        for (name, v) in [
            ("act_entries", self.act_entries),
            ("wgt_entries", self.wgt_entries),
            ("acc_entries", self.acc_entries),
            ("out_entries", self.out_entries),
        ] {
            pow2_in(name, v, 16, 65536)?;
        }
        pow2_in("dma_bytes_per_cycle", self.dma_bytes_per_cycle, 4, 256)?;
        pow2_in("queue_depth", self.queue_depth, 2, 256)?;
        pow2_in("fetch_burst", self.fetch_burst, 1, 64)?;
        if self.dma_latency > 4095 || self.acc_latency > 255 || self.post_latency > 255 {
            return Err(ConfigError("latencies must fit their register fields (DMA ≤ 4095, others ≤ 255)".into()));
        }
        if self.clock_mhz == 0 || self.clock_mhz > 4000 {
            return Err(ConfigError(format!("clock_mhz = {}: must be 1..=4000", self.clock_mhz)));
        }
        // Re-check the format: configurations can be built field by field.
        BfpFormat::new(self.format.block_size(), self.format.mantissa_bits(), self.format.exponent_bits())
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }

    /// Multiply-accumulate units in the array.
    pub fn macs(&self) -> usize {
        self.rows * self.cols
    }

    /// Peak throughput in MAC/s at the configured clock.
    pub fn peak_macs_per_second(&self) -> f64 {
        self.macs() as f64 * self.clock_mhz as f64 * 1e6
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::default_16x16()
    }
}

impl fmt::Display for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} {} @ {} MHz (act {} blk, wgt {} blk, acc {} f32, out {} blk; DMA {} B/cycle, {} cycles latency)",
            self.rows,
            self.cols,
            self.format,
            self.clock_mhz,
            self.act_entries,
            self.wgt_entries,
            self.acc_entries,
            self.out_entries,
            self.dma_bytes_per_cycle,
            self.dma_latency
        )
    }
}

impl FromStr for EngineConfig {
    type Err = ConfigError;

    /// Parses `PRESET[-FORMAT]`, e.g. `16x16`, `tiny`, `32x32-msfp12` or `16x16-bfp16m6`, or `RxC[-FORMAT]`
    /// for any array size (other parameters from the 16×16 preset).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (base, format) = match s.split_once('-') {
            Some((b, f)) => (b, Some(f)),
            None => (s, None),
        };
        let mut cfg = match Self::presets().iter().find(|(n, _)| *n == base) {
            Some((_, c)) => *c,
            None => {
                let (r, c) = base.split_once('x').ok_or_else(|| {
                    ConfigError(format!("{s:?}: expected tiny, mini, 16x16, 32x32, ecp5 or RxC, optionally -FORMAT"))
                })?;
                let parse = |t: &str| t.parse::<usize>().map_err(|_| ConfigError(format!("{s:?}: bad array size")));
                EngineConfig { rows: parse(r)?, cols: parse(c)?, ..Self::default_16x16() }
            }
        };
        if let Some(f) = format {
            cfg.format = f.parse().map_err(|e: crate::bfp::BfpError| ConfigError(e.to_string()))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for (name, c) in EngineConfig::presets() {
            c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(name.parse::<EngineConfig>().unwrap(), c);
        }
    }

    #[test]
    fn parses_sizes_and_formats() {
        let c: EngineConfig = "8x32-msfp12".parse().unwrap();
        assert_eq!((c.rows, c.cols, c.format), (8, 32, BfpFormat::MSFP12));
        assert!("3x4".parse::<EngineConfig>().is_err());
        assert!("16x16-fp8".parse::<EngineConfig>().is_err());
        for spec in ["tiny-msfp16", "16x16-mxint8", "32x32-mxint8", "8x32-msfp12"] {
            assert_eq!(spec.parse::<EngineConfig>().unwrap().spec().as_deref(), Some(spec));
        }
        assert_eq!(EngineConfig { act_entries: 2048, ..EngineConfig::tiny() }.spec(), None);
        let bad = EngineConfig { act_entries: 100, ..EngineConfig::tiny() };
        assert!(bad.validate().unwrap_err().0.contains("act_entries"));
    }
}
