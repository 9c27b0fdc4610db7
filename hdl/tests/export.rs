//! Exporting the engine and the array as Verilog: the header, Verilator's lint and a Yosys synthesis.
//!
//! The tool tests skip with a message when `verilator` or `yosys` is missing, unless
//! `SYSTOLE_REQUIRE_HDL_TOOLS=1` (set by `scripts/test.sh`, which installs them), where a missing tool fails.
//! `SYSTOLE_HDL_LINT_CONFIGS=16x16,32x32` lints more configurations (seconds each) and
//! `SYSTOLE_HDL_SYNTH_CONFIGS=16x16,32x32` synthesises more engines (minutes each, concurrently); `scripts/test.sh`
//! sets both. `SYSTOLE_HDL_SYNTH_ARRAY_CONFIGS` adds arrays to the flattened array synthesis (8 minutes for
//! 16×16; the engines' synthesis already covers their arrays).

mod common;

use std::path::Path;
use std::process::Command;

use arch::EngineConfig;
use common::{scratch_dir, tool};
use hdl::export::{export_verilog, export_verilog_on_large_stack, top_module_name, Part, GENERATOR_VERSION};
use hdl::HdlError;

/// The configurations a tool test runs: `tiny` (4×4) always, more from the environment variable `var`
/// (comma-separated: `SYSTOLE_HDL_LINT_CONFIGS` for Verilator's lint, `SYSTOLE_HDL_SYNTH_CONFIGS` and
/// `SYSTOLE_HDL_SYNTH_ARRAY_CONFIGS` for Yosys).
fn tool_configs(var: &str) -> Vec<EngineConfig> {
    let extra = std::env::var(var).unwrap_or_default();
    std::iter::once(EngineConfig::tiny())
        .chain(extra.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().expect("a configuration")))
        .collect()
}

fn write_verilog(dir: &Path, cfg: &EngineConfig, part: Part) -> (String, std::path::PathBuf) {
    let top = top_module_name(cfg, part);
    let path = dir.join(format!("{top}.v"));
    let start = std::time::Instant::now();
    let text = export_verilog_on_large_stack(cfg, part).expect("export");
    std::fs::write(&path, &text).expect("write the Verilog");
    println!("{top}: {} lines of Verilog in {:.1?}", text.lines().count(), start.elapsed());
    (top, path)
}

#[test]
fn header_records_the_configuration_and_generator_and_the_top_module_is_named() {
    for cfg in [EngineConfig::tiny(), "8x8-msfp12".parse().unwrap(), "2x2-bfp8m3e5".parse().unwrap()] {
        let v = export_verilog(&cfg, Part::Array).expect("export");
        let top = top_module_name(&cfg, Part::Array);
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
        // One PE module, instantiated once per array cell.
        let pe_modules: Vec<&str> =
            v.lines().filter(|l| l.starts_with(&format!("module {top}$pes$")) && l.contains("(clock,a_in")).collect();
        assert_eq!(pe_modules.len(), 1, "identical PEs share one module: {pe_modules:?}");
        let pe = pe_modules[0]["module ".len()..].split('(').next().unwrap();
        let instances = v.lines().filter(|l| l.trim_start().starts_with(&format!("{pe} pes$"))).count();
        assert_eq!(instances, cfg.rows * cfg.cols, "one PE instance per array cell");
    }
}

/// A module of rust-hdl's shape: a name, a body, and sub-module instantiations `(module, instance)`.
fn module(name: &str, body: &str, children: &[(&str, &str)]) -> String {
    let mut m = format!("module {name}(clock);\n    input wire clock;\n    {body}\n");
    for (module, instance) in children {
        m.push_str(&format!("    {module} {instance}(\n        .clock(clock)\n    );\n"));
    }
    m.push_str(&format!("endmodule // {name}\n\n\n"));
    m
}

#[test]
fn identical_modules_are_shared_bottom_up_and_different_ones_kept() {
    // top has two sub-trees a and b whose leaves are identical (a$x, b$x), and a third c whose leaf differs.
    let v = [
        module("top", "", &[("top$a", "a"), ("top$b", "b"), ("top$c", "c")]),
        module("top$a", "wire w;", &[("top$a$x", "x")]),
        module("top$a$x", "reg q;", &[]),
        module("top$b", "wire w;", &[("top$b$x", "x")]),
        module("top$b$x", "reg q;", &[]),
        module("top$c", "wire w;", &[("top$c$x", "x")]),
        module("top$c$x", "reg r;", &[]),
    ]
    .concat();
    let shared = hdl::export::share_identical_modules(&v);
    let names: Vec<&str> = shared.lines().filter_map(|l| l.strip_prefix("module ")).collect();
    assert_eq!(names, ["top(clock);", "top$a(clock);", "top$a$x(clock);", "top$c(clock);", "top$c$x(clock);"]);
    assert!(shared.contains("    top$a b(\n"), "b instantiates the module it shares with a:\n{shared}");
    assert!(shared.contains("    top$c c(\n") && shared.contains("    top$c$x x(\n"), "{shared}");
    assert!(!shared.contains("top$b"), "{shared}");
    // Sharing twice changes nothing; text that is not rust-hdl's is returned as it is.
    assert_eq!(hdl::export::share_identical_modules(&shared), shared);
    assert_eq!(hdl::export::share_identical_modules("module m(a);\n"), "module m(a);\n");
}

#[test]
fn the_engine_exports_with_its_ports_and_buffers_in_the_header() {
    let cfg = EngineConfig::tiny();
    let v = export_verilog_on_large_stack(&cfg, Part::Engine).expect("export");
    let top = top_module_name(&cfg, Part::Engine);
    assert_eq!(top, "systole_engine_4x4_msfp16");
    let header: Vec<&str> = v.lines().take_while(|l| l.starts_with("//")).collect();
    let text = header.join("\n");
    assert!(text.contains(&format!("systole hdl {GENERATOR_VERSION}")) && text.contains("tiny"), "{text}");
    assert!(text.contains("ACT 1024, WGT 1024, ACC 4096, OUT 512"), "{text}");
    let ports = v.lines().find(|l| l.starts_with(&format!("module {top}("))).expect("the top module");
    for port in ["bar$wr_en", "bar$rd_data", "irq", "fetch$rd_req_addr", "load_dma$rd_beat_data", "store_dma$wr_data"] {
        assert!(ports.contains(port), "the engine has port {port}: {ports}");
    }
    let modules = v.lines().filter(|l| l.starts_with("module ")).count();
    let named = v.lines().filter(|l| l.starts_with(&format!("module {top}"))).count();
    assert_eq!(modules, named, "every module is prefixed with the top's name");
}

#[test]
fn unsupported_configurations_are_reported_not_generated() {
    match export_verilog(&"8x32".parse().unwrap(), Part::Array) {
        Err(HdlError::Unsupported(why)) => assert!(why.contains("8x32"), "{why}"),
        other => panic!("8x32 is not stamped out: {other:?}"),
    }
    // The 16×16 array exists, but no engine type is stamped for 4-bit mantissas.
    match export_verilog(&"16x16-msfp12".parse().unwrap(), Part::Engine) {
        Err(HdlError::Unsupported(why)) => assert!(why.contains("engine_top!"), "{why}"),
        other => panic!("no 16x16-msfp12 engine: {other:?}"),
    }
    let mut bad = EngineConfig::tiny();
    bad.rows = 3;
    assert!(matches!(export_verilog(&bad, Part::Array), Err(HdlError::Config(_))));
}

#[test]
fn verilator_lint_passes_with_the_documented_waivers() {
    let Some(verilator) = tool("verilator") else { return };
    let dir = scratch_dir("lint");
    let configs = tool_configs("SYSTOLE_HDL_LINT_CONFIGS");
    for (cfg, part) in configs.into_iter().flat_map(|c| [(c, Part::Array), (c, Part::Engine)]) {
        let top = top_module_name(&cfg, part);
        let verilog = export_verilog_on_large_stack(&cfg, part).expect("export");
        println!("{top}: {} lines of Verilog", verilog.lines().count());
        common::verilator_lint(&verilator, &dir, &top, &verilog);
    }
}

/// Cell counts read from Yosys's `stat` output.
#[derive(Debug, Default)]
struct SynthStats {
    cells: u64,
    flip_flops: u64,
    latches: u64,
    multipliers: u64,
    memories: u64,
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
    for cfg in tool_configs("SYSTOLE_HDL_SYNTH_ARRAY_CONFIGS") {
        let (top, path) = write_verilog(&dir, &cfg, Part::Array);
        // Multipliers are counted before techmapping (generic `synth` turns them into gates), everything else
        // after a full `synth` of the flattened design.
        let start = std::time::Instant::now();
        let (coarse, fine) =
            run_yosys(&yosys, &dir, &top, &path, "proc; flatten; opt -fast; wreduce", &format!("synth -top {top}"));
        let (_, multipliers) = parse_stat(&coarse, |k| k == "$mul" || k.starts_with("$_MUL") || k == "$macc");
        let (cells, flip_flops) = parse_stat(&fine, |k| k.contains("DFF"));
        let (_, latches) = parse_stat(&fine, |k| k.contains("DLATCH"));
        let s = SynthStats { cells, flip_flops, latches, multipliers, memories: 0 };
        println!("{top}: yosys synth in {:.1?}: {s:?}", start.elapsed());
        assert_eq!(s.multipliers, (cfg.rows * cfg.cols) as u64, "one multiplier per PE");
        assert_eq!(s.latches, 0, "no latches");
        assert!(s.flip_flops > 0 && s.cells > s.flip_flops, "{s:?}");
    }
}

/// The block memories the engine's buffers must infer: ACT, WGT and OUT as an exponent plane and `bs`
/// mantissa planes in `Q` banks each, ACC in `A` banks, and (when a block spans several passes, `R < bs`) the
/// GEMM unit's carry store in `C` banks.
fn expected_memories(cfg: &EngineConfig) -> u64 {
    let lanes = hdl::buffer::BufferLanes::for_config(cfg);
    let bs = cfg.format.block_size();
    let carry = if cfg.rows < bs { cfg.cols } else { 0 };
    (3 * (1 + bs) * lanes.q + lanes.a + carry) as u64
}

/// Synthesises the engine of `cfg` hierarchically (each distinct module once), prints its statistics and
/// checks them.
fn synthesise_engine(yosys: &Path, dir: &Path, cfg: &EngineConfig) {
    let (top, path) = write_verilog(dir, cfg, Part::Engine);
    // Yosys's generic `synth` up to its fine stage (memories inferred, kept as `$mem_v2`: a vendor flow maps
    // them to block RAM), then the fine stage without `memory_map` (which would turn the buffers into
    // flip-flops) and without its extra `opt` passes over the gate netlist (which cost 40 % of the 16×16's
    // time for 2 % fewer cells): techmap to gates and ABC.
    let start = std::time::Instant::now();
    let (coarse, fine) =
        run_yosys(yosys, dir, &top, &path, &format!("synth -top {top} -run :fine"), "techmap; abc -fast; opt_clean");
    let (_, multipliers) = parse_hierarchy_stat(&coarse, |k| k == "$mul" || k == "$macc");
    let (cells, flip_flops) = parse_hierarchy_stat(&fine, |k| k.contains("DFF"));
    let (_, latches) = parse_hierarchy_stat(&fine, |k| k.contains("DLATCH"));
    let (_, memories) = parse_hierarchy_stat(&fine, |k| k.starts_with("$mem"));
    let s = SynthStats { cells, flip_flops, latches, multipliers, memories };
    println!("{top}: yosys synth in {:.1?}: {s:?}", start.elapsed());
    assert_eq!(s.memories, expected_memories(cfg), "{top}: every buffer bank is inferred as a memory: {s:?}");
    assert!(s.multipliers >= (cfg.rows * cfg.cols) as u64, "{top}: at least one multiplier per PE: {s:?}");
    assert_eq!(s.latches, 0, "{top}: no latches");
    assert!(s.flip_flops > 0 && s.cells > s.flip_flops, "{top}: {s:?}");
}

#[test]
fn yosys_synthesises_the_engine_with_block_memories() {
    let Some(yosys) = tool("yosys") else { return };
    let dir = scratch_dir("synth-engine");
    // One Yosys process per configuration, all at once: the large engines take minutes each.
    let configs = tool_configs("SYSTOLE_HDL_SYNTH_CONFIGS");
    std::thread::scope(|scope| {
        let runs: Vec<_> = configs.iter().map(|cfg| scope.spawn(|| synthesise_engine(&yosys, &dir, cfg))).collect();
        for run in runs {
            if let Err(panic) = run.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// Runs Yosys on `path`: reads it, elaborates `top`, runs `coarse`, records `stat`, runs `fine`, records
/// `stat` again; returns both `stat` reports (files beside the Verilog).
fn run_yosys(yosys: &Path, dir: &Path, top: &str, path: &Path, coarse: &str, fine: &str) -> (String, String) {
    let (c, f) = (dir.join(format!("{top}.coarse.txt")), dir.join(format!("{top}.stat.txt")));
    let script = format!(
        "read_verilog {v}; hierarchy -top {top}; {coarse}; tee -q -o {c} stat; {fine}; tee -q -o {f} stat",
        v = path.display(),
        c = c.display(),
        f = f.display()
    );
    let out = Command::new(yosys).args(["-q", "-p", &script]).output().expect("run yosys");
    assert!(out.status.success(), "yosys failed on {top}:\n{}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read_to_string(c).expect("coarse stat"), std::fs::read_to_string(f).expect("stat"))
}

/// [`parse_stat`] over the totals of a hierarchical `stat` (the section after `=== design hierarchy ===`).
fn parse_hierarchy_stat(stat: &str, pick: impl Fn(&str) -> bool) -> (u64, u64) {
    let totals = stat.split("=== design hierarchy ===").nth(1).unwrap_or(stat);
    parse_stat(totals, pick)
}
