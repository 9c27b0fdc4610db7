//! Builds the verilated engine models (feature `verilator`): exports each model's Verilog through the `hdl`
//! crate, runs `verilator --cc` on it, instantiates `csrc/shim.cpp` for it and compiles everything, with
//! Verilator's runtime, into one static library with the `cc` crate. Writes `models.rs` (the table of models
//! and their C entry points) into `OUT_DIR`.
//!
//! Models: the engine presets listed in `SYSTOLE_SIM_MODELS` (comma-separated, default `tiny,16x16`). Nothing is
//! copied by hand: the Verilog is regenerated whenever the `hdl` crate changes.

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
        /// The preset's name (`tiny`, `16x16`, `32x32`).
        preset: String,
        /// Its configuration.
        cfg: EngineConfig,
        /// The C symbol prefix of its shim (`systole_sim_tiny`).
        symbol: String,
    }

    fn models() -> Vec<Model> {
        let list = std::env::var("SYSTOLE_SIM_MODELS").unwrap_or_else(|_| "tiny,16x16".into());
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|preset| {
                let cfg: EngineConfig = preset.parse().unwrap_or_else(|e| panic!("SYSTOLE_SIM_MODELS: {preset}: {e}"));
                let symbol = format!("systole_sim_{}", preset.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
                Model { preset: preset.to_string(), cfg, symbol }
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
        let root = verilator_root();
        let include = root.join("include");
        let waivers = out.join("hdl-waivers.vlt");
        std::fs::write(&waivers, verilator_waivers()).expect("write waivers");
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++17")
            .opt_level(2)
            .include(&include)
            .include(include.join("vltstd"))
            .flag_if_supported("-Wno-unused-parameter")
            .flag_if_supported("-Wno-unused-variable")
            .flag_if_supported("-Wno-sign-compare")
            .flag_if_supported("-Wno-shadow")
            .warnings(false);
        let mut table = String::from("/// The models this build verilated.\npub(crate) const MODELS: &[Model] = &[\n");
        let mut externs = String::new();
        for m in models() {
            let top = top_module_name(&m.cfg, Part::Engine);
            let dir = out.join(&m.symbol);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("model directory");
            let verilog = dir.join(format!("{top}.v"));
            std::fs::write(&verilog, export(m.cfg)).expect("write the Verilog");
            let prefix = format!("V{}", m.symbol);
            let status = Command::new("verilator")
                .args(["--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal"])
                .args(["--prefix", &prefix, "--top-module", &top, "-Mdir"])
                .arg(&dir)
                .arg(&waivers)
                .arg(&verilog)
                .status()
                .expect("run verilator");
            assert!(status.success(), "verilator --cc failed on {}", verilog.display());
            let words = m.cfg.dma_bytes_per_cycle / 4;
            let shim = include_str!("csrc/shim.cpp")
                .replace("@PREFIX@", &prefix)
                .replace("@NAME@", &m.symbol)
                .replace("@WORDS@", &words.to_string());
            let shim_path = dir.join(format!("{}_shim.cpp", m.symbol));
            std::fs::write(&shim_path, shim).expect("write the shim");
            build.file(&shim_path).include(&dir);
            let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("read the model directory")
                .map(|e| e.expect("entry").path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "cpp")
                        && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
                .collect();
            sources.sort();
            build.files(sources);
            externs.push_str(&format!(
                "    fn {s}_new(latency: u32) -> *mut c_void;\n    fn {s}_delete(sim: *mut c_void);\n    fn \
                 {s}_set_memory(sim: *mut c_void, bytes: *mut u8, len: u64, iova_base: u64);\n    fn \
                 {s}_bar_write(sim: *mut c_void, offset: u32, value: u32);\n    fn {s}_bar_read(sim: *mut c_void, \
                 offset: u32) -> u32;\n    fn {s}_run(sim: *mut c_void, max_cycles: u64) -> u64;\n    fn \
                 {s}_irq(sim: *mut c_void) -> u8;\n    fn {s}_cycle(sim: *mut c_void) -> u64;\n    fn \
                 {s}_faults(sim: *mut c_void) -> u64;\n",
                s = m.symbol
            ));
            table.push_str(&format!(
                "    Model {{ preset: {p:?}, top: {top:?}, new: {s}_new, delete: {s}_delete, set_memory: \
                 {s}_set_memory, bar_write: {s}_bar_write, bar_read: {s}_bar_read, run: {s}_run, irq: {s}_irq, \
                 cycle: {s}_cycle, faults: {s}_faults }},\n",
                p = m.preset,
                s = m.symbol
            ));
        }
        table.push_str("];\n");
        // Verilator's runtime, once for all models.
        build.file(include.join("verilated.cpp")).file(include.join("verilated_threads.cpp"));
        build.compile("systole_verilated");
        let rs = format!("extern \"C\" {{\n{externs}}}\n\n{table}");
        std::fs::write(out.join("models.rs"), rs).expect("write models.rs");
    }
}
