//! The `pipeline!` macro. Re-exported by the `pipeline` crate; depend on that one.
//!
//! A thin shell: the graph compiler is the `pipeweave-lang` crate (`pipeline_lang`), a
//! plain library the macro calls.

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
///
/// # Grammar
///
/// ```text
/// pipeline   := attribute* statement*
/// attribute  := #![distributed("name")]                split over processes (feature `nats`)
/// statement  := name options? = expression ;           bind a node
///             | name options ;                         options for a node bound before
///             | name (=> name (, name)*)+ ;            edges: each name feeds the next ones
///             | loop name => name ;                    a loop edge, back to a node feeding it
/// options    := [ option (, option)* ]
/// ```
///
/// A node with no input is a source, one with no output a sink, the rest are stages. A
/// node with several inputs zips them by lineage into a tuple, in the order the edges are
/// written, unless it is marked `merge`. A loop edge (`loop links => frontier`, where
/// `frontier` feeds `links`) may close a cycle: its target interleaves what comes round
/// with its other inputs, and the run ends once the sources are done and nothing is left in
/// the loop (see the book's "Loops").
///
/// # Options
///
/// | option | on | what it does |
/// | --- | --- | --- |
/// | `capacity(n)` | stages, sinks | its input edges hold at most `n` items (default 1024) |
/// | `workers(n)`, `workers(auto)` | stages | `n` workers, each with its own copy of the stage; `auto`: one per core |
/// | `ordered` | stages with `workers` | output in input order |
/// | `timeout(d)` | stages | an item taking longer than `d` fails with `error::TimedOut` |
/// | `retry(n)`, `retry(n, first)`, `retry(n, first, longest)` | stages | a failed item is tried up to `n` more times; pauses start at `first` (10 ms), about double per try up to `longest` (30 s), with jitter |
/// | `retry_if(predicate)` | stages with `retry` | only errors for which `predicate(&NodeError)` is true are tried again |
/// | `restarts(n)` | stages, sinks | panicking workers replaced before the run stops (default 3) |
/// | `dead_letter(node)` | stages | items that finally fail go to `node` as `Failed { item, error, node }` |
/// | `after(node, ..)` | any node | start only once the named nodes have finished |
/// | `fail_fast` | stages, sinks | the first failed item stops the run |
/// | `merge` | nodes with several inputs | interleave the inputs instead of zipping them |
///
/// Every mistake in the graph is reported at once, at the tokens it is about. Each node is
/// checked once, where it is bound: a constructor's own error (a closure of the wrong
/// shape, a producer that does not return `Ok(())`) or a value of the wrong role is one
/// error there, not repeated at the node's edges.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline_lang::expand::pipeline(input.into()).into()
}
