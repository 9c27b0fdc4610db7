//! Exporting the array as Verilog: the header, Verilator's lint and a Yosys synthesis.
//!
//! The tool tests skip with a message when `verilator` or `yosys` is missing, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1` (set by `scripts/test.sh`, which installs them), where a missing tool fails.
//! `SYSTOLE_HDL_SYNTH_CONFIGS=16x16,32x32` lints and synthesises more configurations (slow: minutes).

mod common;

use std::path::Path;
use std::process::Command;

use arch::EngineConfig;
use common::{scratch_dir, tool};
use hdl::export::{export_verilog, top_module_name, verilator_waivers, GENERATOR_VERSION};
use hdl::HdlError;

/// The configurations the tool tests run: `tiny` (4×4) always, more from `SYSTOLE_HDL_SYNTH_CONFIGS`.
fn tool_configs() -> Vec<EngineConfig> {
    let extra = std::env::var("SYSTOLE_HDL_SYNTH_CONFIGS").unwrap_or_default();
    std::iter::once(EngineConfig::tiny())
        .chain(extra.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().expect("a configuration")))
        .collect()
}

fn write_verilog(dir: &Path, cfg: &EngineConfig) -> (String, std::path::PathBuf) {
    let top = top_module_name(cfg);
    let path = dir.join(format!("{top}.v"));
    let start = std::time::Instant::now();
    let text = export_verilog(cfg).expect("export");
    std::fs::write(&path, &text).expect("write the Verilog");
    println!("{top}: {} lines of Verilog in {:.1?}", text.lines().count(), start.elapsed());
    (top, path)
}

#[test]
fn header_records_the_configuration_and_generator_and_the_top_module_is_named() {
    for cfg in [EngineConfig::tiny(), "8x8-msfp12".parse().unwrap(), "2x2-bfp8m3e5".parse().unwrap()] {
        let v = export_verilog(&cfg).expect("export");
        let top = top_module_name(&cfg);
        assert_eq!(top, format!("systole_array_{}x{}_{}", cfg.rows, cfg.cols, cfg.format));
        let header: Vec<&str> = v.lines().take_while(|l| l.starts_with("//")).collect();
        let text = header.join("\n");
        assert!(text.contains(&format!("systole hdl {GENERATOR_VERSION}")), "{text}");
        assert!(text.contains(&cfg.spec().expect("a named configuration")), "{text}");
        assert!(text.contains(&cfg.to_string()), "{text}");
        assert!(text.contains(&format!("{} rows x {} columns; format {}", cfg.rows, cfg.cols, cfg.format)), "{text}");
        assert!(v.contains(&format!("\nmodule {top}(clock,")), "the top module carries the readable name");
        assert!(!v.contains("module top("), "rust-hdl's default name `top` is gone");
        let modules = v.lines().filter(|l| l.starts_with("module ")).count();
        let named = v.lines().filter(|l| l.starts_with(&format!("module {top}"))).count();
        assert_eq!(modules, named, "every module is prefixed with the top's name");
        // One PE module per array cell, each with a multiplier.
        let pes =
            v.lines().filter(|l| l.starts_with(&format!("module {top}$pes$")) && l.contains("(clock,a_in")).count();
        assert_eq!(pes, cfg.rows * cfg.cols);
    }
}

#[test]
fn unsupported_configurations_are_reported_not_generated() {
    match export_verilog(&"8x32".parse().unwrap()) {
        Err(HdlError::Unsupported(why)) => assert!(why.contains("8x32"), "{why}"),
        other => panic!("8x32 is not stamped out: {other:?}"),
    }
    let mut bad = EngineConfig::tiny();
    bad.rows = 3;
    assert!(matches!(export_verilog(&bad), Err(HdlError::Config(_))));
}

#[test]
fn verilator_lint_passes_with_the_documented_waivers() {
    let Some(verilator) = tool("verilator") else { return };
    let dir = scratch_dir("lint");
    let waivers = dir.join("hdl-waivers.vlt");
    std::fs::write(&waivers, verilator_waivers()).expect("write the waivers");
    for cfg in tool_configs() {
        let (top, path) = write_verilog(&dir, &cfg);
        let start = std::time::Instant::now();
        let out = Command::new(&verilator)
            .args(["--lint-only", "-Wall", "--top-module", &top])
            .arg(&waivers)
            .arg(&path)
            .output()
            .expect("run verilator");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "verilator --lint-only -Wall failed on {top}:\n{log}");
        println!("{top}: verilator --lint-only -Wall clean in {:.1?}", start.elapsed());
    }
}

/// Cell counts read from Yosys's `stat` output.
#[derive(Debug, Default)]
struct SynthStats {
    cells: u64,
    flip_flops: u64,
    latches: u64,
    multipliers: u64,
}

/// The value of the last `Number of cells:` line and the sum of the counts of cell types matching `pick`.
fn parse_stat(stat: &str, pick: impl Fn(&str) -> bool) -> (u64, u64) {
    let mut cells = 0;
    let mut picked = 0;
    for line in stat.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Number"), Some("of")) if line.contains("cells:") => {
                cells = line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a cell count");
                picked = 0; // the last module's section counts (the design is flattened: there is one)
            }
            (Some(kind), Some(n)) if kind.starts_with('$') && pick(kind) => {
                picked += n.parse::<u64>().expect("a count")
            }
            _ => {}
        }
    }
    (cells, picked)
}

#[test]
fn yosys_synthesises_the_array() {
    let Some(yosys) = tool("yosys") else { return };
    let dir = scratch_dir("synth");
    for cfg in tool_configs() {
        let (top, path) = write_verilog(&dir, &cfg);
        let coarse = dir.join(format!("{top}.coarse.txt"));
        let fine = dir.join(format!("{top}.stat.txt"));
        // Multipliers are counted before techmapping (generic `synth` turns them into gates), everything else
        // after a full `synth` of the flattened design.
        let script = format!(
            "read_verilog {v}; hierarchy -top {top}; proc; flatten; opt -fast; wreduce; tee -q -o {c} stat; \
             synth -top {top}; tee -q -o {f} stat",
            v = path.display(),
            c = coarse.display(),
            f = fine.display()
        );
        let start = std::time::Instant::now();
        let out = Command::new(&yosys).args(["-q", "-p", &script]).output().expect("run yosys");
        assert!(out.status.success(), "yosys failed on {top}:\n{}", String::from_utf8_lossy(&out.stderr));
        let coarse = std::fs::read_to_string(coarse).expect("coarse stat");
        let fine = std::fs::read_to_string(fine).expect("stat");
        let (_, multipliers) = parse_stat(&coarse, |k| k == "$mul" || k.starts_with("$_MUL") || k == "$macc");
        let (cells, flip_flops) = parse_stat(&fine, |k| k.contains("DFF"));
        let (_, latches) = parse_stat(&fine, |k| k.contains("DLATCH"));
        let s = SynthStats { cells, flip_flops, latches, multipliers };
        println!("{top}: yosys synth in {:.1?}: {s:?}", start.elapsed());
        assert_eq!(s.multipliers, (cfg.rows * cfg.cols) as u64, "one multiplier per PE");
        assert_eq!(s.latches, 0, "no latches");
        assert!(s.flip_flops > 0 && s.cells > s.flip_flops, "{s:?}");
    }
}
