//! The systolic BFP engine in rust-hdl, exported to Verilog.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace so that the layout is fixed from
//! the start; it is filled by issue 4. It deliberately exports nothing, so nothing can depend on
//! behaviour that does not exist.
