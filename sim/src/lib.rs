//! Verilator co-simulation of the exported engine.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace so that the layout is fixed from
//! the start; it is filled by issue 5. It deliberately exports nothing, so nothing can depend on
//! behaviour that does not exist.
