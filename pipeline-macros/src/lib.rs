//! The `pipeline!` macro. Re-exported by the `pipeline` crate; depend on that one.
//!
//! The input is parsed into a syntax tree that keeps the user's spans ([`ast`]), turned into
//! a graph and checked ([`graph`]), then expanded into typed wiring ([`expand`]). Every
//! mistake found is reported at once; code is still emitted so that the user sees those
//! errors and not a flood of follow-on ones.

mod ast;
mod expand;
mod graph;

use proc_macro::TokenStream;

/// Compiles a graph of nodes into a runnable, statically typed pipeline.
///
/// ```text
/// pipeline! {
///     inp = source::iter(words);                       // bind a node
///     rev = stage::map(|s: String| s.chars().rev().collect::<String>());
///     out[capacity(64)] = sink::for_each(|(a, b): (String, String)| println!("{a} {b}"));
///     inp => rev, out;                                  // inp feeds rev and out
///     rev => out;                                       // out zips (inp, rev) by lineage
/// }
/// ```
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    expand::pipeline(input.into()).into()
}
