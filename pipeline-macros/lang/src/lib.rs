//! The graph compiler behind `pipeline!`, as a plain library: what the macro crate calls,
//! unit-tested without expanding a macro (as Hydro's `dfir_lang` serves `dfir_macro`).
//!
//! The input is parsed into a syntax tree that keeps the user's spans ([`ast`]; node
//! options are described once, in [`options`]), turned into a graph and checked
//! ([`graph`]); the nodes that may run in one pass are planned ([`fusion`]), then it is
//! expanded into typed wiring ([`expand`]). Every mistake found is collected ([`errors`])
//! and reported at once; code is still emitted so that the user sees those errors and not
//! a flood of follow-on ones.

pub mod ast;
pub mod errors;
pub mod expand;
pub mod fusion;
pub mod graph;
pub mod options;
pub mod role;
