//! Writing the hardware as Verilog.
//!
//! rust-hdl names the top module `top` and every sub-module after its instance path (`top$pes$3$prod`, one
//! module per instance). [`export_verilog`] checks the circuit as rust-hdl's own `generate_verilog` does, but
//! visits it under a readable top-level name (`systole_engine_16x16_msfp16`), so every module name starts with
//! it, and prepends a header recording the configuration and the generator's version.
//!
//! Identical instances share one module: rust-hdl writes one module per instance (a 16×16 engine: 4 582
//! modules, 206k lines), [`share_identical_modules`] keeps one module per distinct circuit (103 modules, 51k
//! lines), so Verilator and Yosys elaborate each circuit once and a reader finds one PE, not 256.
//!
//! Two parts can be exported ([`Part`]): the whole **engine** ([`crate::engine`]: BAR0, memory channels,
//! buffers, units and array), for the configurations it is stamped for, and the **array** alone (the compute
//! core with its accumulator adders), for any stamped array shape.

use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::array::{
    ArrayGeometry, SystolicArray, SystolicArray16x16, SystolicArray16x16Seg8, SystolicArray2x2, SystolicArray32x32,
    SystolicArray32x32Seg16, SystolicArray32x32Seg8, SystolicArray4x4, SystolicArray8x8,
};
use crate::HdlError;

/// The version of this generator (the `hdl` crate's version), written into every exported file.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which part of the hardware to export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Part {
    /// The whole engine ([`crate::engine::build_engine`]): what a board or the `sim` crate instantiates.
    #[default]
    Engine,
    /// The systolic array with its edge cells and accumulator adders ([`build_array`]).
    Array,
    /// The board top level ([`crate::board::build_board`]): the engine with its memory on chip and the UART
    /// host bridge, built with these parameters; ports `clock`, `reset`, `uart_rx`, `uart_tx`, `irq`.
    Board(BoardParams),
}

/// The parameters of an exported board ([`Part::Board`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardParams {
    /// The UART's clock cycles per bit (the board clock divided by the baud rate).
    pub clocks_per_bit: u32,
    /// Bytes of on-chip memory for the engine's DMA.
    pub memory_bytes: usize,
}

impl Default for BoardParams {
    /// [`crate::board::DEFAULT_CLOCKS_PER_BIT`] (115 200 baud from 25 MHz) and
    /// [`crate::board::DEFAULT_MEMORY_BYTES`].
    fn default() -> Self {
        BoardParams {
            clocks_per_bit: crate::board::DEFAULT_CLOCKS_PER_BIT,
            memory_bytes: crate::board::DEFAULT_MEMORY_BYTES,
        }
    }
}

impl Part {
    /// The part's name in module names and on the command line (`engine`, `array`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Engine => "engine",
            Part::Array => "array",
            Part::Board(_) => "board",
        }
    }
}

/// The name of the top module exported for a configuration: `systole_<part>_<R>x<C>_<format>`.
pub fn top_module_name(cfg: &EngineConfig, part: Part) -> String {
    format!("systole_{}_{}x{}_{}", part.name(), cfg.rows, cfg.cols, cfg.format)
}

/// Builds the array (its edge cells and accumulator adders included) for a configuration, boxed.
///
/// The compute core only; [`crate::engine::build_engine`] builds the whole engine around it.
pub fn build_array(cfg: &EngineConfig) -> Result<Box<dyn SystolicArray>, HdlError> {
    let g = ArrayGeometry::for_config(cfg)?;
    macro_rules! with_m {
        ($ty:ident) => {
            match g.mantissa_bits {
                2 => $ty::<2>::new(g) as Box<dyn SystolicArray>,
                3 => $ty::<3>::new(g),
                4 => $ty::<4>::new(g),
                5 => $ty::<5>::new(g),
                6 => $ty::<6>::new(g),
                7 => $ty::<7>::new(g),
                _ => $ty::<8>::new(g),
            }
        };
    }
    Ok(match (g.cols, g.segment) {
        (2, 2) => with_m!(SystolicArray2x2),
        (4, 4) => with_m!(SystolicArray4x4),
        (8, 8) => with_m!(SystolicArray8x8),
        (16, 16) => with_m!(SystolicArray16x16),
        (16, 8) => with_m!(SystolicArray16x16Seg8),
        (32, 32) => with_m!(SystolicArray32x32),
        (32, 16) => with_m!(SystolicArray32x32Seg16),
        (32, 8) => with_m!(SystolicArray32x32Seg8),
        (c, s) => unreachable!("ArrayGeometry::for_config accepted an unstamped {c} columns, {s}-row segments"),
    })
}

/// The header comment of an exported file: configuration, derived geometry, generator and interface timing.
pub fn header(cfg: &EngineConfig, g: &ArrayGeometry, part: Part) -> String {
    let mut h = String::new();
    let mut line = |s: String| {
        h.push_str("// ");
        h.push_str(&s);
        h.push('\n');
    };
    let what = match part {
        Part::Engine => {
            "the systole BFP inference engine (BAR0 registers, fetch/decode, LOAD/GEMM/POST/STORE \
                         units, on-chip buffers, weight-stationary systolic array)"
        }
        Part::Array => "the systole weight-stationary BFP systolic array with its accumulator adders",
        Part::Board(_) => "the systole engine on a board: on-chip memory, UART host bridge (arch::bridge) and engine",
    };
    line(format!("{}: {what}.", top_module_name(cfg, part)));
    line(format!("Generated by systole hdl {GENERATOR_VERSION} (rust-hdl 0.46). Do not edit: regenerate."));
    line(format!("Configuration: {} ({})", cfg.spec().unwrap_or_else(|| "custom".into()), cfg));
    line(format!(
        "Array: {} rows x {} columns; format {} (block {}, mantissa {} bits, exponent {} bits, bias {}, fraction bits {})",
        g.rows,
        g.cols,
        cfg.format,
        g.block_size,
        g.mantissa_bits,
        cfg.format.exponent_bits(),
        g.exponent_bias,
        g.fraction_bits
    ));
    line(format!(
        "Segments: {} per column of {} rows; accumulator adder latency {} cycles; acc_out[c] = row + {} + c cycles",
        g.groups,
        g.segment,
        g.acc_latency,
        g.rows + 1 + g.acc_latency
    ));
    match part {
        Part::Engine => {
            line(format!(
                "Buffers (entries): ACT {}, WGT {}, ACC {}, OUT {}; DMA beats of {} bytes, latency {}; queues {} deep",
                cfg.act_entries,
                cfg.wgt_entries,
                cfg.acc_entries,
                cfg.out_entries,
                cfg.dma_bytes_per_cycle,
                cfg.dma_latency,
                cfg.queue_depth
            ));
            line(
                "Ports: BAR0 (bar_*, irq; register map: docs/architecture.md), memory channels fetch, load_dma and"
                    .into(),
            );
            line(
                "store_dma (protocol: docs/hardware.md, \"The memory port\"). Timing: arch::timing (cycle model)."
                    .into(),
            );
        }
        Part::Array => {
            line("Interface timing and semantics: docs/hardware.md and the hdl crate's array module.".into())
        }
        Part::Board(board) => {
            line(format!(
                "Board: UART 8N1 at {} clocks per bit, {} bytes of memory at IOVA 0 (DMA_BASE = 0); engine buffers \
                 ACT {}, WGT {}, ACC {}, OUT {}",
                board.clocks_per_bit,
                board.memory_bytes,
                cfg.act_entries,
                cfg.wgt_entries,
                cfg.acc_entries,
                cfg.out_entries
            ));
            line(
                "Ports: clock, reset (synchronous, active high), uart_rx, uart_tx (idle high), irq. Protocol: arch::bridge; \
                 docs/hardware.md \"Board top level\"."
                    .into(),
            );
        }
    }
    h
}

/// Verilog text of `uut` with `top` as the top module's name (and the prefix of every sub-module's name).
///
/// Connects the circuit and runs rust-hdl's checks (open inputs, logic loops, writes to inputs) first, as
/// `generate_verilog` does, but returns their failure instead of panicking.
pub fn verilog_of(uut: &mut dyn Block, top: &str) -> Result<String, HdlError> {
    uut.connect_all();
    check_all(uut).map_err(|e| HdlError::Check(format!("{e:?}")))?;
    let mut defines = ModuleDefines::default();
    uut.accept(top, &mut defines);
    Ok(share_identical_modules(&defines.defines()))
}

/// `verilog` (rust-hdl's output: one module per instance) with identical modules merged into one.
///
/// Two modules are identical when their text is, once each sub-module instantiation names the shared module
/// and the module's own name is left aside; the first in the file gives the shared one its name (e.g.
/// `…$array$pes$0` for every PE). Works bottom-up through the hierarchy, so whole identical sub-trees merge.
/// Text outside modules is kept, before them; the order of the remaining modules is rust-hdl's.
pub fn share_identical_modules(verilog: &str) -> String {
    use std::collections::HashMap;

    /// One `module NAME(…); … endmodule // NAME` block of rust-hdl's output.
    struct Module<'a> {
        name: &'a str,
        text: &'a str,
    }
    let mut preamble = String::new();
    let mut modules: Vec<Module> = Vec::new();
    let mut rest = verilog;
    let module_start = |text: &str| {
        if text.starts_with("module ") {
            Some(0)
        } else {
            text.find("\nmodule ").map(|i| i + 1)
        }
    };
    while let Some(start) = module_start(rest) {
        // Between modules rust-hdl writes blank lines only; keep any other text (before all the modules).
        if !rest[..start].trim().is_empty() {
            preamble.push_str(&rest[..start]);
        }
        let from = &rest[start..];
        let name_end = from.find('(').unwrap_or(from.len());
        let name = &from["module ".len()..name_end];
        let end_marker = format!("endmodule // {name}\n");
        let Some(end) = from.find(&end_marker).map(|i| i + end_marker.len()) else {
            // Not rust-hdl's shape: leave the text as it is.
            return verilog.to_string();
        };
        modules.push(Module { name, text: &from[..end] });
        rest = &from[end..];
    }
    preamble.push_str(rest.trim_end());
    let index: HashMap<&str, usize> = modules.iter().enumerate().map(|(i, m)| (m.name, i)).collect();

    /// The module text with instantiations of sub-modules renamed through `shared`.
    fn renamed(text: &str, index: &HashMap<&str, usize>, shared: &dyn Fn(usize) -> String) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim_start();
            let instance_of = trimmed
                .strip_suffix("(\n")
                .and_then(|l| l.split_once(' '))
                .and_then(|(module, _)| index.get(module).map(|&i| (module, i)));
            match instance_of {
                Some((module, i)) => {
                    let indent = &line[..line.len() - trimmed.len()];
                    out.push_str(indent);
                    out.push_str(&shared(i));
                    out.push_str(&trimmed[module.len()..]);
                }
                None => out.push_str(line),
            }
        }
        out
    }

    // shared[i]: the index of the module that module i merges into. Children come after their parents in
    // rust-hdl's output, so resolve them on demand (memoised, depth = the hierarchy's).
    let mut shared: Vec<Option<usize>> = vec![None; modules.len()];
    let mut by_text: HashMap<String, usize> = HashMap::new();
    fn resolve(
        i: usize,
        modules: &[Module],
        index: &HashMap<&str, usize>,
        shared: &mut Vec<Option<usize>>,
        by_text: &mut HashMap<String, usize>,
    ) -> usize {
        if let Some(s) = shared[i] {
            return s;
        }
        // Resolve the children first, then key this module by its text with children renamed and its own
        // name blanked.
        for line in modules[i].text.lines() {
            if let Some((module, _)) = line.trim_start().strip_suffix('(').and_then(|l| l.split_once(' ')) {
                if let Some(&c) = index.get(module) {
                    resolve(c, modules, index, shared, by_text);
                }
            }
        }
        let resolved: &Vec<Option<usize>> = shared;
        let name_of = |c: usize| modules[resolved[c].expect("children resolved first")].name.to_string();
        let own = modules[i].name;
        let key = renamed(modules[i].text, index, &name_of)
            .replacen(&format!("module {own}("), "module (", 1)
            .replacen(&format!("endmodule // {own}\n"), "endmodule\n", 1);
        let s = *by_text.entry(key).or_insert(i);
        shared[i] = Some(s);
        s
    }
    for i in 0..modules.len() {
        resolve(i, &modules, &index, &mut shared, &mut by_text);
    }
    let name_of = |c: usize| modules[shared[c].expect("resolved")].name.to_string();
    let mut out = preamble;
    for (i, m) in modules.iter().enumerate() {
        if shared[i] == Some(i) {
            out.push('\n');
            out.push_str(&renamed(m.text, &index, &name_of));
        }
    }
    out
}

/// `part` of `cfg` as one Verilog file whose top module is [`top_module_name`], with a header recording the
/// configuration and [`GENERATOR_VERSION`].
pub fn export_verilog(cfg: &EngineConfig, part: Part) -> Result<String, HdlError> {
    let g = ArrayGeometry::for_config(cfg)?;
    let top = top_module_name(cfg, part);
    let body = match part {
        Part::Engine => verilog_of(crate::engine::build_engine(cfg)?.as_mut(), &top)?,
        Part::Array => verilog_of(build_array(cfg)?.as_mut(), &top)?,
        Part::Board(board) => {
            verilog_of(crate::board::build_board(cfg, board.clocks_per_bit, board.memory_bytes)?.as_mut(), &top)?
        }
    };
    Ok(format!("{}{}", header(cfg, &g, part), body))
}

/// A Verilator control file with the lint waivers the exported Verilog needs, each with its reason.
///
/// Pass it to Verilator beside the Verilog: `verilator --lint-only -Wall waivers.vlt design.v`.
pub fn verilator_waivers() -> &'static str {
    include_str!("verilator_waivers.vlt")
}

/// Stack for generating large designs: rust-hdl builds deep recursive structures (a 32×32 engine needs more
/// than the 8 MiB of a main thread in unoptimised builds).
pub const GENERATOR_STACK_BYTES: usize = 256 << 20;

/// Runs `generate` on a thread with a [`GENERATOR_STACK_BYTES`] stack and returns its result: how command
/// lines and flows call the generators ([`export_verilog`], the board's export) without overflowing their
/// own stack.
pub fn on_generator_stack<T: Send + 'static>(
    generate: impl FnOnce() -> Result<T, HdlError> + Send + 'static,
) -> Result<T, HdlError> {
    std::thread::Builder::new()
        .name("hdl-generate".into())
        .stack_size(GENERATOR_STACK_BYTES)
        .spawn(generate)
        .map_err(|e| HdlError::Unsupported(format!("starting the generator thread: {e}")))?
        .join()
        .map_err(|_| HdlError::Check("the Verilog generator panicked".into()))?
}

/// [`export_verilog`] on a thread with a large stack ([`on_generator_stack`]).
pub fn export_verilog_on_large_stack(cfg: &EngineConfig, part: Part) -> Result<String, HdlError> {
    let cfg = *cfg;
    on_generator_stack(move || export_verilog(&cfg, part))
}
