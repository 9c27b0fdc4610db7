//! Builds the verilated engine models (feature `verilator`): exports each model's Verilog through the `hdl`
//! crate, runs `verilator --cc` on it, instantiates `csrc/shim.cpp` for it and compiles everything, with
//! Verilator's runtime, into one static library with the `cc` crate. Writes `models.rs` (the table of models
//! and their C entry points) into `OUT_DIR`.
//!
//! Models: the entries of `SYSTOLE_SIM_MODELS` (comma-separated, default `tiny+trace,8x8,16x16`; set but empty:
//! none, and no C++ is compiled). An entry is an engine
//! configuration (`tiny`, `8x8`, `16x16`, `32x32`) with optional variants: `+tN` verilates it multi-threaded
//! (`--threads N`), `+trace` with waveform support (`--trace`, VCD). Nothing is copied by hand: the Verilog is
//! regenerated whenever the `hdl` crate changes.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-env-changed=SYSTOLE_SIM_MODELS");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    #[cfg(feature = "verilator")]
    verilated::build(&out);
    #[cfg(not(feature = "verilator"))]
    std::fs::write(
        out.join("models.rs"),
        "/// No models: built without the `verilator` feature.\npub(crate) const MODELS: &[Model] = &[];\n",
    )
    .expect("write models.rs");
}

#[cfg(feature = "verilator")]
mod verilated {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use arch::EngineConfig;
    use hdl::export::{export_verilog, top_module_name, verilator_waivers, Part};

    /// One model to build.
    struct Model {
        /// The entry's name (`tiny+trace`, `16x16+t2`).
        name: String,
        /// The engine configuration's name (`tiny`, `16x16`).
        preset: String,
        /// Its configuration.
        cfg: EngineConfig,
        /// Threads of Verilator's model (`--threads`; 1: single-threaded).
        threads: u32,
        /// Built with waveform tracing (`--trace`).
        trace: bool,
        /// The C symbol prefix of its shim (`systole_sim_tiny_trace`).
        symbol: String,
    }

    fn models() -> Vec<Model> {
        let list = std::env::var("SYSTOLE_SIM_MODELS").unwrap_or_else(|_| "tiny+trace,8x8,16x16".into());
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                let mut parts = name.split('+');
                let preset = parts.next().unwrap_or_default();
                let cfg: EngineConfig = preset.parse().unwrap_or_else(|e| panic!("SYSTOLE_SIM_MODELS: {name}: {e}"));
                let (mut threads, mut trace) = (1, false);
                for variant in parts {
                    match variant {
                        "trace" => trace = true,
                        t => {
                            threads =
                                t.strip_prefix('t').and_then(|n| n.parse().ok()).filter(|&n| n >= 1).unwrap_or_else(
                                    || {
                                        panic!(
                                        "SYSTOLE_SIM_MODELS: {name}: unknown variant `+{t}` (expected +tN or +trace)"
                                    )
                                    },
                                )
                        }
                    }
                }
                let symbol = format!("systole_sim_{}", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
                Model { name: name.to_string(), preset: preset.to_string(), cfg, threads, trace, symbol }
            })
            .collect()
    }

    fn verilator_root() -> PathBuf {
        let out = Command::new("verilator").arg("--getenv").arg("VERILATOR_ROOT").output().unwrap_or_else(|e| {
            panic!(
                "the `verilator` feature needs Verilator (5.x) on PATH: {e}. Install it (Debian: apt-get install \
                 verilator) or build without the feature"
            )
        });
        assert!(out.status.success(), "verilator --getenv VERILATOR_ROOT failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8").trim())
    }

    fn export(cfg: EngineConfig) -> String {
        // The generator recurses deeply on large engines: give it a large stack.
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || export_verilog(&cfg, Part::Engine))
            .expect("generator thread")
            .join()
            .expect("the generator panicked")
            .unwrap_or_else(|e| panic!("exporting the engine: {e}"))
    }

    pub fn build(out: &Path) {
        let models = models();
        if models.is_empty() {
            // `SYSTOLE_SIM_MODELS=` (empty): the feature's Rust code without any model, e.g. for a lint that
            // need not spend minutes compiling C++ (scripts/test.sh's clippy step).
            std::fs::write(
                out.join("models.rs"),
                "/// No models: SYSTOLE_SIM_MODELS is empty.\npub(crate) const MODELS: &[Model] = &[];\n",
            )
            .expect("write models.rs");
            return;
        }
        let root = verilator_root();
        let include = root.join("include");
        let waivers = out.join("hdl-waivers.vlt");
        std::fs::write(&waivers, verilator_waivers()).expect("write waivers");
        // Two compilations: the code that runs every cycle at -O2, Verilator's once-only code (`__Slow` files:
        // construction, initial values) at -O1, which halves its compile time and costs nothing at run time.
        let new_build = |opt: u32| {
            let mut b = cc::Build::new();
            b.cpp(true)
                .std("c++17")
                .opt_level(opt)
                .debug(false) // debug information of the generated C++ triples its compile time; nobody steps it
                .include(&include)
                .include(include.join("vltstd"))
                .flag_if_supported("-Wno-unused-parameter")
                .flag_if_supported("-Wno-unused-variable")
                .flag_if_supported("-Wno-sign-compare")
                .flag_if_supported("-Wno-shadow")
                .warnings(false);
            b
        };
        let (mut build, mut slow) = (new_build(2), new_build(1));
        let mut any_trace = false;
        let mut table = String::from("/// The models this build verilated.\npub(crate) const MODELS: &[Model] = &[\n");
        let mut externs = String::new();
        for m in models {
            let top = top_module_name(&m.cfg, Part::Engine);
            let dir = out.join(&m.symbol);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("model directory");
            let verilog = dir.join(format!("{top}.v"));
            std::fs::write(&verilog, export(m.cfg)).expect("write the Verilog");
            let prefix = format!("V{}", m.symbol);
            let mut verilator = Command::new("verilator");
            verilator
                .args(["--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal"])
                .args(["--prefix", &prefix, "--top-module", &top]);
            if m.threads > 1 {
                verilator.args(["--threads", &m.threads.to_string()]);
            }
            if m.trace {
                verilator.arg("--trace");
                any_trace = true;
            }
            let status = verilator.arg("-Mdir").arg(&dir).arg(&waivers).arg(&verilog).status().expect("run verilator");
            assert!(status.success(), "verilator --cc failed on {}", verilog.display());
            let words = m.cfg.dma_bytes_per_cycle / 4;
            let shim = include_str!("csrc/shim.cpp")
                .replace("@PREFIX@", &prefix)
                .replace("@NAME@", &m.symbol)
                .replace("@WORDS@", &words.to_string())
                .replace("@THREADS@", &m.threads.to_string())
                .replace("@TRACE@", if m.trace { "1" } else { "0" });
            let shim_path = dir.join(format!("{}_shim.cpp", m.symbol));
            std::fs::write(&shim_path, shim).expect("write the shim");
            build.file(&shim_path).include(&dir);
            slow.include(&dir);
            let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("read the model directory")
                .map(|e| e.expect("entry").path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "cpp")
                        && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
                .collect();
            sources.sort();
            let is_slow = |p: &PathBuf| p.file_stem().is_some_and(|n| n.to_string_lossy().ends_with("__Slow"));
            let (slow_sources, fast_sources): (Vec<PathBuf>, Vec<PathBuf>) = sources.into_iter().partition(is_slow);
            build.files(fast_sources);
            slow.files(slow_sources);
            externs.push_str(&format!(
                "    fn {s}_new(latency: u32) -> *mut c_void;\n    fn {s}_delete(sim: *mut c_void);\n    fn \
                 {s}_set_memory(sim: *mut c_void, bytes: *mut u8, len: u64, iova_base: u64);\n    fn \
                 {s}_bar_write(sim: *mut c_void, offset: u32, value: u32);\n    fn {s}_bar_read(sim: *mut c_void, \
                 offset: u32) -> u32;\n    fn {s}_run(sim: *mut c_void, max_cycles: u64) -> u64;\n    fn \
                 {s}_irq(sim: *mut c_void) -> u8;\n    fn {s}_cycle(sim: *mut c_void) -> u64;\n    fn \
                 {s}_faults(sim: *mut c_void) -> u64;\n    fn {s}_trace(sim: *mut c_void, path: *const c_char, \
                 from: u64, to: u64) -> i32;\n    fn {s}_instruction_events(sim: *mut c_void, out: *mut u64, \
                 capacity: u64) -> u64;\n",
                s = m.symbol
            ));
            table.push_str(&format!(
                "    Model {{ name: {n:?}, preset: {p:?}, top: {top:?}, threads: {t}, trace: {tr}, new: {s}_new, delete: {s}_delete, set_memory: \
                 {s}_set_memory, bar_write: {s}_bar_write, bar_read: {s}_bar_read, run: {s}_run, irq: {s}_irq, \
                 cycle: {s}_cycle, faults: {s}_faults, trace_to: {s}_trace, instruction_events: \
                 {s}_instruction_events }},\n",
                n = m.name,
                p = m.preset,
                t = m.threads,
                tr = m.trace,
                s = m.symbol
            ));
        }
        table.push_str("];\n");
        // Verilator's runtime, once for all models.
        build.file(include.join("verilated.cpp")).file(include.join("verilated_threads.cpp"));
        if any_trace {
            build.file(include.join("verilated_vcd_c.cpp"));
        }
        build.objects(slow.compile_intermediates());
        build.compile("systole_verilated");
        let rs = format!("extern \"C\" {{\n{externs}}}\n\n{table}");
        std::fs::write(out.join("models.rs"), rs).expect("write models.rs");
    }
}
