//! The gRPC web service (TF-Serving Predict, KServe v2) with TLS and keys.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace so that the layout is fixed from
//! the start; it is filled by issue 7. It deliberately exports nothing, so nothing can depend on
//! behaviour that does not exist.
