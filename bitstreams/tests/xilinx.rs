//! The Alveo U250 flow's hand-written RTL (bitstreams/xilinx/: the AXI bridge and the top with the XDMA IP)
//! against the exported 16×16 engine, linted by Verilator, and the yosys UltraScale+ estimate's parsing.
//!
//! Vivado is not available here, so the flow itself is not run (bitstreams/xilinx/README.md). The lint skips
//! with a message when `verilator` is missing, unless `SYSTOLE_REQUIRE_HDL_TOOLS=1` (set by `scripts/test.sh`
//! where Verilator is installed).

use std::path::Path;
use std::process::Command;

use hdl::export::{export_verilog_on_large_stack, verilator_waivers, Part};

#[test]
fn the_u250_top_and_bridge_lint_clean_around_the_exported_16x16_engine() {
    if Command::new("verilator").arg("--version").output().is_err() {
        if std::env::var("SYSTOLE_REQUIRE_HDL_TOOLS").as_deref() == Ok("1") {
            panic!("verilator not found, and SYSTOLE_REQUIRE_HDL_TOOLS=1 requires it");
        }
        eprintln!("skipping: verilator not found (apt-get install verilator)");
        return;
    }
    let dir = tempfile::tempdir().expect("a scratch directory");
    let cfg = arch::EngineConfig::default_16x16();
    let engine = export_verilog_on_large_stack(&cfg, Part::Engine).expect("the 16x16 engine's Verilog");
    let engine_v = dir.path().join("engine16.v");
    let waivers = dir.path().join("engine.vlt");
    std::fs::write(&engine_v, engine).unwrap();
    std::fs::write(&waivers, verilator_waivers()).unwrap();
    let xilinx = Path::new(env!("CARGO_MANIFEST_DIR")).join("xilinx");
    let out = Command::new("sh")
        .arg(xilinx.join("lint/lint.sh"))
        .arg(&engine_v)
        .arg(&waivers)
        .output()
        .expect("running lint.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Verilator's lint failed:\n{text}");
    assert!(text.contains("bridge: lint clean") && text.contains("top + engine: lint clean"), "{text}");
    assert!(!text.contains("%Warning"), "no warnings:\n{text}");
}
