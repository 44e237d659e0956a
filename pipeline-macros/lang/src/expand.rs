//! Turns a checked graph into wiring code.
//!
//! Everything the code names goes through `::pipeline::__private`. Calls that carry a type
//! check are emitted with the span of the user's tokens (the edge, or the node's name), and
//! pass marker types named after the nodes, so the compiler's message names them too.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use crate::ast::PipelineInput;
use crate::check::Structure;
use crate::graph::{FanIn, Graph, Role};

/// The most stages one chain names; the runtime's `fuse::chain::CHAIN_MAX` is the same.
const CHAIN_MAX: usize = 24;
/// The most branches one fork names; the runtime's `fuse::fork::FORK_MAX` is the same.
const FORK_MAX: usize = 4;

pub fn pipeline(input: TokenStream) -> TokenStream {
    let parsed: PipelineInput = match syn::parse2(input) {
        Ok(parsed) => parsed,
        Err(error) => return fallback(error),
    };
    match Graph::build(parsed, Span::call_site()) {
        Ok(graph) => expand(&graph),
        Err(errors) => fallback(errors),
    }
}

/// The errors, plus a value of the right type so the code around the macro still checks.
fn fallback(errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! {{
        #errors
        ::pipeline::__private::Builder::new().build()
    }}
}

struct Names {
    builder: Ident,
    markers: Ident,
}

fn hidden(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The input sender(s) and inlet of node `n`.
fn tx(n: usize, slot: usize) -> Ident {
    hidden(&format!("__pipeline_tx_{n}_{slot}"))
}
fn inlet(n: usize) -> Ident {
    hidden(&format!("__pipeline_inlet_{n}"))
}
fn outlet(n: usize) -> Ident {
    hidden(&format!("__pipeline_outlet_{n}"))
}
fn dead_letter_outlet(n: usize) -> Ident {
    hidden(&format!("__pipeline_dead_letter_{n}"))
}
fn config(n: usize) -> Ident {
    hidden(&format!("__pipeline_config_{n}"))
}

pub fn expand(graph: &Graph) -> TokenStream {
    let names = Names {
        builder: hidden("__pipeline_builder"),
        markers: hidden("__pipeline_nodes"),
    };
    let Names { builder, markers } = &names;
    let private = quote!(::pipeline::__private);

    // The user's own identifiers, so raw ones (`r#type`) stay valid.
    let marker_types = graph.nodes.iter().map(|node| &node.ident);
    let bindings = graph.nodes.iter().filter_map(|node| {
        let (ident, expr) = (&node.ident, node.expr.as_ref()?);
        Some(quote!(let #ident = #expr;))
    });

    // Each node checked once, where it is bound (see `wiring::node`), on its name.
    let checks = graph.nodes.iter().map(|node| {
        let ident = &node.ident;
        let marker = marker(markers, ident);
        let check = match node.role() {
            Role::Source => "checked_source",
            Role::Stage => "checked_stage",
            Role::Sink => "checked_sink",
        };
        let check = Ident::new(check, ident.span());
        quote_spanned!(ident.span()=> let #ident = #ident.#check::<#marker>();)
    });

    // Each node's `NodeConfig`, from its options as the table describes them.
    let configs = graph.nodes.iter().enumerate().map(|(n, node)| {
        let calls = node.options.written.iter().filter_map(|(name, written)| {
            Some(crate::options::descriptor(name)?.config_calls(written))
        });
        let config = config(n);
        quote!(let #config = #private::NodeConfig::new() #(#calls)*;)
    });

    let inputs = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| !node.inputs.is_empty())
        .map(|(n, node)| {
            let ident = &node.ident;
            let config = config(n);
            let capacity = quote!(#config.edge_capacity());
            let inlet = inlet(n);
            match graph.fan_in(n) {
                FanIn::Single => {
                    let tx = tx(n, 0);
                    quote!(let (#tx, #inlet) = #private::single_input(&#ident, #capacity);)
                }
                FanIn::Merge => {
                    let tx = tx(n, 0);
                    quote!(let (#tx, #inlet) = #private::merge_input(&#ident, #capacity);)
                }
                FanIn::Loop => {
                    // One sender for the edges from outside the loop, one for the loop edges.
                    let (outside, around) = (tx(n, 0), tx(n, 1));
                    quote!(let (#outside, #around, #inlet) = #private::loop_input(&#ident, #capacity);)
                }
                FanIn::Zip => {
                    let k = node.inputs.len();
                    let zip_input = format_ident!("zip_input_{}", k, span = ident.span());
                    let txs = (0..k).map(|slot| tx(n, slot));
                    let marker = marker_at(markers, &node.ident, ident.span());
                    // Every token of the call sits on the node's name, so a wrong input type is
                    // reported there and not on the whole macro.
                    let cap = Ident::new(
                        "__pipeline_capacity",
                        Span::mixed_site().located_at(ident.span()),
                    );
                    let call = quote_spanned!(ident.span()=>
                        ::pipeline::__private::Zipping(&#ident).#zip_input::<#marker>(#cap)
                    );
                    quote! {
                        let #cap = #capacity;
                        let ((#(#txs,)*), #inlet) = #call;
                    }
                }
            }
        });

    let connect = |e: usize, dead_letter: bool| -> TokenStream {
        let edge = &graph.edges[e];
        let (node, target) = (&graph.nodes[edge.from], &graph.nodes[edge.to]);
        let sender = slot_sender(graph, e);
        let from_marker = marker(markers, &node.ident);
        let to_marker = marker(markers, &target.ident);
        let (from, to) = (&node.ident, &target.ident);
        // Errors point at the method's name: it carries the edge target's span.
        let method = Ident::new(
            if dead_letter {
                "connect_dead_letter"
            } else if graph.fan_in(edge.to) == FanIn::Zip {
                "connect_zipped"
            } else {
                "connect"
            },
            edge.to_ident.span(),
        );
        // The call's first tokens sit on the edge's source, its last on its target, so
        // a type error underlines the whole `from => to`.
        let new = quote_spanned!(edge.from_ident.span()=> ::pipeline::__private::Edge::new(&#from, &#to, #sender));
        let connect = quote_spanned!(edge.to_ident.span()=> .#method::<#from_marker, #to_marker>());
        if graph.distributed.is_none() || dead_letter {
            return quote!(#new #connect);
        }
        // The edge may cross to another process: its items must travel as bytes.
        let (from_name, to_name) = (&node.name, &target.name);
        let across = quote_spanned!(edge.to_ident.span()=> ::pipeline::__private::across::<#from_marker, #to_marker, _>);
        quote!(#across(&mut #builder, #from_name, #to_name, #new #connect))
    };
    // The nodes of a chain, by their variables, so the runtime knows their types.
    let chain_hint = |nodes: &[usize]| {
        if nodes.is_empty() {
            return quote!(#private::end_of_chain());
        }
        let function = format_ident!("chain{}", nodes.len());
        let stages = nodes.iter().map(|&m| &graph.nodes[m].ident);
        quote!(#private::#function(#(&#stages),*))
    };
    let chain_pieces = graph.chain_pieces(CHAIN_MAX);
    let outlets = graph.nodes.iter().enumerate().filter(|(_, node)| !node.outputs.is_empty()).map(|(n, node)| {
        let connections = node.outputs.iter().map(|&e| connect(e, false));
        let outlet = outlet(n);
        if node.outputs.len() == 1 {
            let single = quote!(#private::single_output(#(#connections)*));
            let chain = if graph.distributed.is_none() { chain_pieces.get(&n).cloned().unwrap_or_default() } else { Vec::new() };
            if chain.is_empty() {
                return quote!(let #outlet = #single;);
            }
            let hint = chain_hint(&chain);
            quote!(let #outlet = #private::chained(#single, #hint);)
        } else {
            let first_edge = &graph.edges[node.outputs[0]];
            let name_marker = marker(markers, &node.ident);
            let fan_out = quote_spanned!(first_edge.from_ident.span()=> #private::fan_out::<#name_marker, _>);
            let fan_out = quote!(#fan_out(#private::vec![#(#connections),*]));
            let fork = if graph.distributed.is_none() { graph.fork_after(n, FORK_MAX, CHAIN_MAX) } else { None };
            let Some(fork) = fork else {
                return quote!(let #outlet = #fan_out;);
            };
            // The branches in the order of the zip's inputs, each with the edge it starts on.
            let branches = fork.branches.iter().map(|branch| {
                let (target, chain) = (branch.target, chain_hint(&branch.stages));
                quote!(#private::branch::<#target, _>(#chain))
            });
            let join = chain_hint(&fork.join);
            let fork_of = format_ident!("fork{}", fork.branches.len());
            quote!(let #outlet = #private::forked(#fan_out, #private::#fork_of(#(#branches,)* #join));)
        }
    });
    let dead_letter_outlets = graph.nodes.iter().enumerate().filter_map(|(n, node)| {
        let connection = connect(node.dead_letter?, true);
        let outlet = dead_letter_outlet(n);
        Some(quote!(let #outlet = #private::single_output(#connection);))
    });
    // Each merge edge got a clone of the merge's sender; the original goes, so the channel
    // closes once every edge into it has.
    let merge_senders = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|&(n, _)| matches!(graph.fan_in(n), FanIn::Merge | FanIn::Loop))
        .map(|(n, _)| {
            let senders = if graph.fan_in(n) == FanIn::Loop { 2 } else { 1 };
            let txs = (0..senders).map(|slot| tx(n, slot));
            quote!(#(::core::mem::drop(#txs);)*)
        });

    let edges = graph.edges.iter().enumerate().map(|(e, edge)| {
        let (from, to) = (&graph.nodes[edge.from].name, &graph.nodes[edge.to].name);
        if graph.nodes[edge.from].dead_letter == Some(e) {
            quote!(#builder.dead_letter_edge(#from, #to);)
        } else {
            quote!(#builder.edge(#from, #to);)
        }
    });

    let adds = graph.nodes.iter().enumerate().map(|(n, node)| {
        let ident = &node.ident;
        let name = &node.name;
        let options = config(n);
        // The error wiring borrows the node, so it is made before the node moves into the
        // builder. Each `Clone` check is a call of its own whose every token sits on its
        // option, with the same hygiene (a span joined across two would stretch over the
        // whole macro), so that an error lands on the option.
        let policy = Ident::new("__pipeline_policy", Span::mixed_site());
        let at = |span: Span| Ident::new("__pipeline_policy", Span::mixed_site().located_at(span));
        let with_retry = node.options.span("retry").map(|span| {
            let here = at(span);
            let marker = marker_at(markers, ident, span);
            let call = quote_spanned!(span=> ::pipeline::__private::with_retry::<#marker, _>());
            quote!(let #policy = #call(#here);)
        });
        let with_dead_letter = node
            .options
            .span("dead_letter")
            .filter(|_| node.dead_letter.is_some())
            .map(|span| {
                let span = &span;
                let outlet = Ident::new(
                    &dead_letter_outlet(n).to_string(),
                    Span::mixed_site().located_at(*span),
                );
                let here = at(*span);
                let marker = marker_at(markers, ident, *span);
                let call =
                    quote_spanned!(*span=> ::pipeline::__private::with_dead_letter::<#marker, _>());
                quote!(let #policy = #call(#here, #outlet);)
            });
        let make_policy = quote! {
            let #policy = #private::error_wiring(&#ident);
            #with_retry
            #with_dead_letter
        };
        let (inlet, outlet) = (inlet(n), outlet(n));
        match node.role() {
            Role::Source => {
                let add = quote_spanned!(ident.span()=> ::pipeline::__private::add_source::<_>);
                quote!(#add(&mut #builder, #name, #ident, #outlet, #options);)
            }
            Role::Stage => match node.options.span("workers") {
                None => {
                    let add = quote_spanned!(ident.span()=> ::pipeline::__private::add_stage::<_, _>);
                    quote! {
                        #make_policy
                        #add(&mut #builder, #name, #ident, #inlet, #outlet, #options, #policy);
                    }
                }
                Some(span) => {
                    // The `Clone` that workers require is checked by a call all of whose
                    // tokens sit on `workers`, so that its error points there.
                    let node_here = Ident::new(&ident.to_string(), ident.span().located_at(span));
                    let marker = marker_at(markers, ident, span);
                    let check = quote_spanned!(span=> ::pipeline::__private::copy_for_workers::<#marker, _>(&#node_here));
                    let copy = Ident::new("__pipeline_copy", Span::mixed_site());
                    let add = quote_spanned!(ident.span()=> ::pipeline::__private::add_stage_with_workers::<_, _>);
                    quote! {
                        #make_policy
                        let #copy = #check;
                        #add(&mut #builder, #name, #ident, #copy, #inlet, #outlet, #options, #policy);
                    }
                }
            },
            Role::Sink => {
                let add = quote_spanned!(ident.span()=> ::pipeline::__private::add_sink::<_, _>);
                quote!(#add(&mut #builder, #name, #ident, #inlet, #options);)
            }
        }
    });

    let new_builder = match &graph.distributed {
        Some(name) => {
            let call =
                quote_spanned!(name.span()=> ::pipeline::__private::distributed_builder::<()>);
            quote!(#call(#name))
        }
        None => quote!(#private::Builder::new()),
    };
    quote! {{
        #[allow(non_camel_case_types, dead_code)]
        mod #markers {
            #(pub enum #marker_types {})*
        }
        #(#bindings)*
        #[allow(unused_imports)]
        use ::pipeline::__private::methods::*;
        #(#checks)*
        let mut #builder = #new_builder;
        #(#configs)*
        #(#inputs)*
        #(#outlets)*
        #(#dead_letter_outlets)*
        #(#merge_senders)*
        #(#edges)*
        #(#adds)*
        #builder.build()
    }}
}

/// The sender of the input slot that edge `e` feeds.
fn slot_sender(graph: &Graph, e: usize) -> TokenStream {
    let edge = &graph.edges[e];
    let target = &graph.nodes[edge.to];
    match graph.fan_in(edge.to) {
        FanIn::Zip => {
            let slot = target.inputs.iter().position(|&i| i == e).unwrap_or(0);
            let tx = tx(edge.to, slot);
            quote!(#tx)
        }
        FanIn::Single => {
            let tx = tx(edge.to, 0);
            quote!(#tx)
        }
        FanIn::Merge => {
            let tx = tx(edge.to, 0);
            quote!(::core::clone::Clone::clone(&#tx))
        }
        FanIn::Loop => {
            let tx = tx(edge.to, usize::from(edge.looping));
            quote!(::core::clone::Clone::clone(&#tx))
        }
    }
}

fn marker(markers: &Ident, node: &Ident) -> TokenStream {
    quote!(#markers::#node)
}

/// The marker type of `node`, every token located at `span` (an option), so that a call
/// naming it does not stretch from the macro's start to the option.
/// (Items resolve alike from the call site and the mixed site, so the path keeps resolving.)
fn marker_at(markers: &Ident, node: &Ident, span: Span) -> TokenStream {
    let markers = Ident::new(&markers.to_string(), span);
    let mut node = node.clone();
    node.set_span(node.span().located_at(span));
    quote_spanned!(span=> #markers::#node)
}

#[cfg(test)]
mod snapshots {
    use quote::quote;

    /// The expansion of a macro call, pretty-printed as it would sit in a function.
    fn expanded(input: proc_macro2::TokenStream) -> String {
        let expr = super::pipeline(input);
        let file: syn::File =
            syn::parse2(quote!(fn expanded() { let pipeline = #expr; })).expect("expansion parses");
        prettyplease::unparse(&file)
    }

    macro_rules! snapshot {
        ($name:literal, $($input:tt)*) => {
            insta::with_settings!({ snapshot_path => "../../../tests/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
                insta::assert_snapshot!($name, expanded(quote!($($input)*)));
            });
        };
    }

    #[test]
    fn linear_chain() {
        snapshot!("linear_chain",
            nums = source::iter(0..10u32);
            double = stage::map(|n: u32| n * 2);
            out = sink::for_each(|n: u32| println!("{n}"));
            nums => double => out;
        );
    }

    #[test]
    fn chain_of_maps_names_its_stages_to_the_outlets_before_them() {
        snapshot!("chain_of_maps",
            nums = source::iter(0..10u32);
            inc = stage::map(|n: u32| n + 1);
            double = stage::map(|n: u32| n * 2);
            half = stage::map(|n: u32| n / 2);
            out = sink::for_each(|n: u32| println!("{n}"));
            nums => inc => double => half => out;
        );
    }

    #[test]
    fn seed_graph_fan_out_and_zip() {
        snapshot!("seed_graph_fan_out_and_zip",
            inp = source::iter(words);
            rev = stage::map(|s: String| s.chars().rev().collect::<String>());
            out = pairs.sink();
            inp => rev, out;
            rev => out;
        );
    }

    #[test]
    fn merge_with_options_and_local_nodes() {
        snapshot!("merge_with_options_and_local_nodes",
            out[capacity(16), fail_fast];
            a = source::iter(0..3u8);
            b; out[merge];
            a, b => out;
        );
    }

    #[test]
    fn errors_become_compile_errors_and_a_fallback_value() {
        snapshot!("errors_fallback",
            a = source::iter(0..3u8);
            a => b => a;
            c[bogus] = stage::map(|n: u8| n);
        );
    }
}
