//! Turns a checked graph into wiring code.
//!
//! Everything the code names goes through `::pipeline::__private`. Calls that carry a type
//! check are emitted with the span of the user's tokens (the edge, or the node's name), and
//! pass marker types named after the nodes, so the compiler's message names them too.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use crate::ast::PipelineInput;
use crate::graph::{FanIn, Graph, Role};

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

    let inputs = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| !node.inputs.is_empty())
        .map(|(n, node)| {
            let ident = &node.ident;
            let capacity = match &node.options.capacity {
                Some(capacity) => quote!(#capacity),
                None => quote!(#private::DEFAULT_CAPACITY),
            };
            let inlet = inlet(n);
            match node.fan_in() {
                FanIn::Single => {
                    let tx = tx(n, 0);
                    quote!(let (#tx, #inlet) = #private::single_input(&#ident, #capacity);)
                }
                FanIn::Merge => {
                    let tx = tx(n, 0);
                    quote!(let (#tx, #inlet) = #private::merge_input(&#ident, #capacity);)
                }
                FanIn::Zip => {
                    let k = node.inputs.len();
                    let zip_input = format_ident!("zip_input_{}", k, span = ident.span());
                    let txs = (0..k).map(|slot| tx(n, slot));
                    let holes = (0..k).map(|_| quote!(_));
                    let marker = marker(markers, &node.ident);
                    // Every token of the call sits on the node's name, so a wrong input type is
                    // reported there and not on the whole macro.
                    let cap = Ident::new(
                        "__pipeline_capacity",
                        Span::mixed_site().located_at(ident.span()),
                    );
                    let call = quote_spanned!(ident.span()=>
                        ::pipeline::__private::#zip_input::<#marker, _, #(#holes),*>(&#ident, #cap)
                    );
                    quote! {
                        let #cap = #capacity;
                        let ((#(#txs,)*), #inlet) = #call;
                    }
                }
            }
        });

    let outlets = graph.nodes.iter().enumerate().filter(|(_, node)| !node.outputs.is_empty()).map(|(n, node)| {
        let connections = node.outputs.iter().map(|&e| {
            let edge = &graph.edges[e];
            let target = &graph.nodes[edge.to];
            let slot = target.inputs.iter().position(|&i| i == e).unwrap_or(0);
            let sender = match target.fan_in() {
                FanIn::Zip => {
                    let tx = tx(edge.to, slot);
                    quote!(#tx)
                }
                FanIn::Single => {
                    let tx = tx(edge.to, 0);
                    quote!(#tx)
                }
                // Every edge but the last gets a clone, so the channel closes when all end.
                FanIn::Merge if slot + 1 < target.inputs.len() => {
                    let tx = tx(edge.to, 0);
                    quote!(::core::clone::Clone::clone(&#tx))
                }
                FanIn::Merge => {
                    let tx = tx(edge.to, 0);
                    quote!(#tx)
                }
            };
            let from_marker = marker(markers, &graph.nodes[edge.from].ident);
            let to_marker = marker(markers, &target.ident);
            let (from, to) = (&node.ident, &target.ident);
            // The call's first tokens sit on the edge's source, its last on its target, so
            // a type error underlines the whole `from => to`.
            let new = quote_spanned!(edge.from_ident.span()=> ::pipeline::__private::Edge::new(&#from, &#to, #sender));
            let connect = quote_spanned!(edge.to_ident.span()=> .connect::<#from_marker, #to_marker>());
            quote!(#new #connect)
        });
        let outlet = outlet(n);
        if node.outputs.len() == 1 {
            quote!(let #outlet = #private::single_output(#(#connections)*);)
        } else {
            let first_edge = &graph.edges[node.outputs[0]];
            let name_marker = marker(markers, &node.ident);
            let fan_out = quote_spanned!(first_edge.from_ident.span()=> #private::fan_out::<#name_marker, _>);
            quote!(let #outlet = #fan_out(#private::vec![#(#connections),*]);)
        }
    });

    let dependencies = graph.nodes.iter().flat_map(|node| {
        let waiting = &node.name;
        node.options.after.iter().map(move |first| {
            let first = first.to_string();
            let first = first.strip_prefix("r#").unwrap_or(&first).to_string();
            quote!(#builder.after(#waiting, #first);)
        })
    });
    let edges = graph.edges.iter().map(|edge| {
        let (from, to) = (&graph.nodes[edge.from].name, &graph.nodes[edge.to].name);
        quote!(#builder.edge(#from, #to);)
    });

    let adds = graph.nodes.iter().enumerate().map(|(n, node)| {
        let ident = &node.ident;
        let name = &node.name;
        let marker = marker(markers, ident);
        let fan_in = match node.fan_in() {
            FanIn::Single => quote!(#private::FanIn::Single),
            FanIn::Zip => quote!(#private::FanIn::Zip),
            FanIn::Merge => quote!(#private::FanIn::Merge),
        };
        let fail_fast = node.options.fail_fast;
        let timeout = match &node.options.timeout {
            Some((limit, _)) => quote!(::core::option::Option::Some(#limit)),
            None => quote!(::core::option::Option::None),
        };
        let restarts = match &node.options.restarts {
            Some((count, _)) => quote!(::core::option::Option::Some(#count)),
            None => quote!(::core::option::Option::None),
        };
        let options = quote!(#private::NodeOptions { fail_fast: #fail_fast, timeout: #timeout, restarts: #restarts });
        // The retry policy borrows the node, so it is made before the node moves into the
        // builder; spanned at `retry`, whose `Clone` requirement it checks.
        let retry_policy = Ident::new("__pipeline_retry", Span::mixed_site());
        let make_retry = match &node.options.retry {
            Some((attempts, backoff, span)) => {
                let backoff = match backoff {
                    Some(backoff) => quote!(#backoff),
                    None => quote!(#private::DEFAULT_BACKOFF),
                };
                let retry = quote_spanned!(*span=> ::pipeline::__private::retry::<#marker, _>(&#ident, #attempts, #backoff));
                quote!(let #retry_policy = #retry;)
            }
            None => quote!(let #retry_policy = #private::no_retry(&#ident);),
        };
        let (inlet, outlet) = (inlet(n), outlet(n));
        match node.role() {
            Role::Source => {
                let add = quote_spanned!(ident.span()=> #private::add_source::<#marker, _>);
                quote!(#add(&mut #builder, #name, #ident, #outlet);)
            }
            Role::Stage => match &node.options.workers {
                None => {
                    let add = quote_spanned!(ident.span()=> #private::add_stage::<#marker, _, _>);
                    quote! {
                        #make_retry
                        #add(&mut #builder, #name, #ident, #fan_in, #inlet, #outlet, #options, #retry_policy);
                    }
                }
                Some((count, span)) => {
                    // Spanned at `workers`: the `Clone` it requires is that option's doing.
                    let ordered = node.options.ordered.is_some();
                    let add = quote_spanned!(*span=> #private::add_stage_with_workers::<#marker, _, _>);
                    let workers = quote!(#private::Workers { count: #count, ordered: #ordered });
                    quote! {
                        #make_retry
                        #add(&mut #builder, #name, #ident, #workers, #fan_in, #inlet, #outlet, #options, #retry_policy);
                    }
                }
            },
            Role::Sink => {
                let add = quote_spanned!(ident.span()=> #private::add_sink::<#marker, _, _>);
                quote!(#add(&mut #builder, #name, #ident, #fan_in, #inlet, #options);)
            }
        }
    });

    quote! {{
        #[allow(non_camel_case_types, dead_code)]
        mod #markers {
            #(pub enum #marker_types {})*
        }
        #(#bindings)*
        let mut #builder = #private::Builder::new();
        #(#inputs)*
        #(#outlets)*
        #(#edges)*
        #(#dependencies)*
        #(#adds)*
        #builder.build()
    }}
}

fn marker(markers: &Ident, node: &Ident) -> TokenStream {
    quote!(#markers::#node)
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
            insta::with_settings!({ snapshot_path => "../../tests/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
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
