//! The graph compiler behind `pipeline!`, as a plain library: what the macro crate calls,
//! unit-tested without expanding a macro (as Hydro's `dfir_lang` serves `dfir_macro`).
//!
//! The input is parsed into a syntax tree that keeps the user's spans ([`ast`]; node
//! options are described once, in [`options`]), turned into a graph ([`graph`]) and
//! checked ([`check`]); the nodes that may run in one pass are planned ([`fusion`]), then
//! it is expanded into typed wiring ([`expand`]). Every mistake found is collected
//! ([`errors`]) and reported at once; code is still emitted so that the user sees those
//! errors and not a flood of follow-on ones.
//!
//! Without the default `syntax` feature only the plain parts build (the option table, the
//! structural checks, roles, "did you mean"): the runtime's graph builder uses them for
//! graphs made at run time, so both front ends check a graph with the same code.

pub mod check;
pub mod options;
pub mod role;
pub mod typo;

#[cfg(feature = "syntax")]
pub mod ast;
#[cfg(feature = "syntax")]
pub mod errors;
#[cfg(feature = "syntax")]
pub mod expand;
#[cfg(feature = "syntax")]
pub mod fusion;
#[cfg(feature = "syntax")]
pub mod graph;
#[cfg(feature = "syntax")]
pub mod written;
