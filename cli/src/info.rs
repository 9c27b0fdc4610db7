//! `systole arch info`: an engine configuration, its number format and its configuration registers.

use std::fmt::Write as _;

use anyhow::{ensure, Result};
use arch::regs;
use arch::{BfpFormat, EngineConfig};

use crate::InfoArgs;

/// Prints the report for `args` to standard output.
pub fn run(args: &InfoArgs) -> Result<()> {
    print!("{}", report(&args.config)?);
    Ok(())
}

/// Formats a peak rate in the largest fitting unit (e.g. `64.00 GMAC/s`).
pub fn rate(per_second: f64, unit: &str) -> String {
    let (scale, prefix) = if per_second >= 1e12 {
        (1e12, "T")
    } else if per_second >= 1e9 {
        (1e9, "G")
    } else if per_second >= 1e6 {
        (1e6, "M")
    } else {
        (1.0, "")
    };
    format!("{:.2} {prefix}{unit}", per_second / scale)
}

/// The whole `arch info` report.
pub fn report(cfg: &EngineConfig) -> Result<String> {
    let mut s = String::new();
    let f = cfg.format;
    let block_bytes = f.mantissa_bytes() + 1;
    writeln!(s, "engine configuration: {cfg}")?;
    let kib = |entries: usize, bytes: usize| (entries * bytes) as f64 / 1024.0;
    let rows = [
        ("rows", cfg.rows.to_string(), "systolic array rows: reduction (K) elements per pass"),
        ("cols", cfg.cols.to_string(), "systolic array columns: output channels (N) per pass"),
        ("format", f.to_string(), "number format of activations, weights and outputs"),
        (
            "act_entries",
            format!("{} blocks ({:.0} KiB)", cfg.act_entries, kib(cfg.act_entries, block_bytes)),
            "activation buffer",
        ),
        (
            "wgt_entries",
            format!("{} blocks ({:.0} KiB)", cfg.wgt_entries, kib(cfg.wgt_entries, block_bytes)),
            "weight buffer",
        ),
        ("acc_entries", format!("{} f32 ({:.0} KiB)", cfg.acc_entries, kib(cfg.acc_entries, 4)), "accumulator buffer"),
        (
            "out_entries",
            format!("{} blocks ({:.0} KiB)", cfg.out_entries, kib(cfg.out_entries, block_bytes)),
            "output buffer",
        ),
        ("clock_mhz", format!("{} MHz", cfg.clock_mhz), "target clock"),
        (
            "dma_bytes_per_cycle",
            format!("{} B/cycle", cfg.dma_bytes_per_cycle),
            "memory port width of each DMA channel",
        ),
        ("dma_latency", format!("{} cycles", cfg.dma_latency), "DMA request to first data beat"),
        ("queue_depth", format!("{} instructions", cfg.queue_depth), "per-stage instruction queue"),
        ("fetch_burst", format!("{} instructions", cfg.fetch_burst), "instructions per fetch burst"),
        ("acc_latency", format!("{} cycles", cfg.acc_latency), "accumulator adder pipeline"),
        ("post_latency", format!("{} cycles", cfg.post_latency), "post-processing pipeline"),
    ];
    for (name, value, meaning) in rows {
        writeln!(s, "  {name:<22}{value:<24}{meaning}")?;
    }
    writeln!(s, "  {:<22}{}", "MACs", cfg.macs())?;
    writeln!(
        s,
        "  {:<22}{} ({} MAC/s)",
        "peak",
        rate(cfg.peak_macs_per_second(), "MAC/s"),
        cfg.peak_macs_per_second()
    )?;
    writeln!(s)?;
    s.push_str(&format_report(&f));
    writeln!(s)?;
    s.push_str(&registers_report(cfg)?);
    Ok(s)
}

/// The BFP format section.
pub fn format_report(f: &BfpFormat) -> String {
    let mut s = String::new();
    let line = |s: &mut String, name: &str, value: String| {
        s.push_str(&format!("  {name:<22}{value}\n"));
    };
    s.push_str(&format!("BFP format: {f}\n"));
    line(&mut s, "block size", format!("{} elements share one exponent", f.block_size()));
    line(
        &mut s,
        "mantissa bits",
        format!(
            "{} (sign included; {} fraction bits: element = mantissa * 2^(E - {}))",
            f.mantissa_bits(),
            f.fraction_bits(),
            f.fraction_bits()
        ),
    );
    line(
        &mut s,
        "mantissa range",
        format!(
            "{}..={} (code {} is accepted, never produced)",
            -f.max_mantissa(),
            f.max_mantissa(),
            f.min_mantissa_code()
        ),
    );
    line(&mut s, "exponent bits", f.exponent_bits().to_string());
    line(&mut s, "exponent bias", f.exponent_bias().to_string());
    let top_code = (1u32 << f.exponent_bits()) - 1;
    line(
        &mut s,
        "exponent range",
        format!(
            "E in {}..={} (codes 0..={}; code {top_code:#x} reserved)",
            f.min_exponent(),
            f.max_exponent(),
            top_code - 1
        ),
    );
    line(&mut s, "container bits", format!("{} per mantissa in memory", f.container_bits()));
    line(
        &mut s,
        "bytes per block",
        format!(
            "{} ({} mantissa bytes + 1 exponent byte; {:.2} bits per element)",
            f.mantissa_bytes() + 1,
            f.mantissa_bytes(),
            (f.mantissa_bytes() + 1) as f64 * 8.0 / f.block_size() as f64
        ),
    );
    s
}

/// The BAR0 configuration registers section, checked to decode back to the same configuration.
pub fn registers_report(cfg: &EngineConfig) -> Result<String> {
    let mut s = String::new();
    let values = regs::encode_config(cfg);
    writeln!(s, "BAR0 configuration registers (read-only):")?;
    for (offset, value) in values {
        let name = regs::ALL.iter().find(|r| r.offset == offset).map_or("?", |r| r.name);
        writeln!(s, "  {offset:#05x}  {name:<18}{value:#010x}  ({value})")?;
    }
    let read = |off: u32| values.iter().find(|(o, _)| *o == off).map_or(0, |(_, v)| *v);
    let decoded = regs::decode_config(read)?;
    ensure!(decoded == *cfg, "the configuration registers decode to {decoded}, not to {cfg}");
    writeln!(s, "  (these decode back to the same configuration)")?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_reports() {
        for (name, cfg) in EngineConfig::presets() {
            let r = report(&cfg).unwrap();
            assert!(r.contains(&cfg.format.to_string()), "{name}");
            assert!(r.contains("CONFIG_ARRAY"), "{name}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate(64e9, "MAC/s"), "64.00 GMAC/s");
        assert_eq!(rate(1.6e6, "MAC/s"), "1.60 MMAC/s");
    }
}
