//! Node options (`name[workers(4), retry(3)] = ..`), each described once in [`OPTIONS`]:
//! its arguments, the nodes it fits, what it does and an example. Parsing, the checks, the
//! error messages, "did you mean", and the option table in `pipeline!`'s documentation and
//! the book all come from that table (a test keeps the two tables in step with it).
//!
//! Adding an option: a descriptor here (by default it sets the runtime's `NodeConfig`
//! through the method of its own name), then the field and method on `NodeConfig` and the
//! executor that obeys it. The macro reads options as written ([`Options`]), so it needs
//! nothing more.
//!
//! The table is plain data, which the runtime's graph builder reads too; what reads the
//! macro's syntax (the `syntax` feature) is in [`crate::written`].

#[cfg(feature = "syntax")]
pub use syntax::{Config, Given, Options, Written};
#[cfg(feature = "syntax")]
use {
    quote::{quote, quote_spanned},
    syn::Ident,
};

/// What the macro keeps of an option as written, and how it becomes runtime calls; the
/// parsing itself is in [`crate::written`].
#[cfg(feature = "syntax")]
mod syntax {
    use std::collections::BTreeMap;

    use proc_macro2::{Span, TokenStream};
    use quote::quote;
    use syn::{Expr, Ident};

    use super::Descriptor;

    /// The options of one node as written, by name: where each was written (errors about it
    /// point there) and its arguments. Everything the macro needs of an option is read from
    /// here; it keeps no second copy.
    #[derive(Default)]
    pub struct Options {
        pub written: BTreeMap<&'static str, Written>,
    }

    impl Options {
        /// Whether option `name` is written.
        pub fn has(&self, name: &str) -> bool {
            self.written.contains_key(name)
        }

        /// Where option `name` is written, if it is.
        pub fn span(&self, name: &str) -> Option<Span> {
            self.written.get(name).map(|w| w.span)
        }

        /// The nodes option `name` names (`dead_letter(node)`, `after(a, b)`).
        pub fn nodes(&self, name: &str) -> &[Ident] {
            match self.written.get(name).map(|w| &w.given) {
                Some(Given::Nodes(nodes)) => nodes,
                _ => &[],
            }
        }
    }

    /// One option as written on a node: where, and its arguments.
    #[derive(Clone)]
    pub struct Written {
        pub span: Span,
        pub given: Given,
    }

    /// The arguments as written, checked against [`Args`](super::Args).
    #[derive(Clone)]
    pub enum Given {
        None,
        Exprs(Vec<Expr>),
        Nodes(Vec<Ident>),
    }

    /// How an option becomes calls on the node's `NodeConfig`.
    #[derive(Clone, Copy)]
    pub enum Config {
        /// `.name(args..)`, the option's own name and arguments.
        SameName,
        /// Calls of its own, from the arguments as written.
        Calls(fn(&[Expr], Span) -> TokenStream),
    }

    impl Descriptor {
        /// The calls on a `NodeConfig` that set this option as `given`.
        pub fn config_calls(&self, written: &Written) -> TokenStream {
            let method = Ident::new(self.name, written.span);
            match (&self.config, &written.given) {
                (Config::Calls(calls), Given::Exprs(args)) => calls(args, written.span),
                (Config::Calls(calls), _) => calls(&[], written.span),
                (Config::SameName, Given::None) => quote!(.#method()),
                (Config::SameName, Given::Exprs(args)) => quote!(.#method(#(#args),*)),
                (Config::SameName, Given::Nodes(nodes)) => {
                    let names = nodes.iter().map(|node| {
                        let name = node.to_string();
                        name.strip_prefix("r#").unwrap_or(&name).to_string()
                    });
                    quote!(#(.#method(#names))*)
                }
            }
        }
    }
}

/// The nodes an option fits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fits {
    Stages,
    StagesAndSinks,
    /// Any node with more than one input.
    SeveralInputs,
    AnyNode,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Fits {
    /// As the documentation's table says it.
    pub fn doc(self) -> &'static str {
        match self {
            Fits::Stages => "stages",
            Fits::StagesAndSinks => "stages, sinks",
            Fits::SeveralInputs => "nodes with several inputs",
            Fits::AnyNode => "any node",
        }
    }
}

/// The arguments an option takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Args {
    None,
    One,
    /// One, two or three.
    UpToThree,
    /// One node name.
    Node,
    /// One or more node names.
    Nodes,
}

/// One node option, described once.
pub struct Descriptor {
    pub name: &'static str,
    /// How it is written, for the documentation and for errors about its arguments.
    pub forms: &'static [&'static str],
    pub args: Args,
    pub fits: Fits,
    /// Another option it needs beside it, if any.
    pub needs: Option<&'static str>,
    /// Why a literal `0` as its argument is refused, if it is.
    pub refuses_zero: Option<&'static str>,
    /// What to do instead, said when it is written on a node it does not fit.
    pub instead: &'static str,
    /// What it does, in a few words: errors say it when it is misplaced.
    pub purpose: &'static str,
    /// What it does, for the documentation's table (which a test checks against this).
    #[cfg_attr(not(test), allow(dead_code))]
    pub doc: &'static str,
    /// How it is used, for errors about its arguments.
    pub example: &'static str,
    /// How it sets the runtime's `NodeConfig`: the method of the same name, called with
    /// the arguments as written (node names as strings, once per node), unless it says
    /// otherwise.
    #[cfg(feature = "syntax")]
    pub config: Config,
}

/// Every node option. The order is the documentation's.
pub static OPTIONS: &[Descriptor] = &[
    Descriptor {
        name: "capacity",
        forms: &["capacity(n)"],
        args: Args::One,
        fits: Fits::StagesAndSinks,
        needs: None,
        refuses_zero: Some(
            "`capacity(0)` would block forever: an edge must hold at least one item",
        ),
        instead: ", with no input edges; set it on the node it feeds",
        purpose: "bounds a node's input edges",
        doc: "its input edges hold at most `n` items (default 1024)",
        example: "capacity(64)",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "workers",
        forms: &["workers(n)", "workers(auto)"],
        args: Args::One,
        fits: Fits::Stages,
        needs: None,
        refuses_zero: Some(
            "`workers(0)` would never process anything: a stage needs at least one worker",
        ),
        instead: "",
        purpose: "runs a stage on several workers",
        doc: "`n` workers, each with its own copy of the stage; `auto`: one per core",
        example: "workers(4)",
        #[cfg(feature = "syntax")]
        config: Config::Calls(|args, span| {
            let arg = &args[0];
            match arg {
                syn::Expr::Path(path) if path.path.is_ident("auto") => {
                    let method = Ident::new("workers_auto", span);
                    quote!(.#method())
                }
                _ => {
                    let method = Ident::new("workers", span);
                    quote!(.#method(#arg))
                }
            }
        }),
    },
    Descriptor {
        name: "ordered",
        forms: &["ordered"],
        args: Args::None,
        fits: Fits::Stages,
        needs: Some("workers"),
        refuses_zero: None,
        instead: "",
        purpose: "keeps the outputs of several workers in input order",
        doc: "output in input order",
        example: "ordered",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "timeout",
        forms: &["timeout(d)"],
        args: Args::One,
        fits: Fits::Stages,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "limits how long a stage takes per item",
        doc: "an item taking longer than `d` fails with `error::TimedOut`",
        example: "timeout(Duration::from_millis(500))",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "retry",
        forms: &["retry(n)", "retry(n, first)", "retry(n, first, longest)"],
        args: Args::UpToThree,
        fits: Fits::Stages,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "tries a stage's failed items again",
        doc: "a failed item is tried up to `n` more times; pauses start at `first` (10 ms), about double per try up to `longest` (30 s), with jitter",
        example: "retry(3, Duration::from_millis(50), Duration::from_secs(5))",
        #[cfg(feature = "syntax")]
        config: Config::Calls(|args, span| {
            let (retry, pauses) = (Ident::new("retry", span), Ident::new("retry_pauses", span));
            let attempts = &args[0];
            let first = match args.get(1) {
                Some(first) => quote!(#first),
                None => quote_spanned!(span=> ::pipeline::__private::DEFAULT_BACKOFF),
            };
            let longest = match args.get(2) {
                Some(longest) => quote!(#longest),
                None => quote_spanned!(span=> ::pipeline::__private::DEFAULT_LONGEST_PAUSE),
            };
            quote!(.#retry(#attempts).#pauses(#first, #longest))
        }),
    },
    Descriptor {
        name: "retry_if",
        forms: &["retry_if(predicate)"],
        args: Args::One,
        fits: Fits::Stages,
        needs: Some("retry"),
        refuses_zero: None,
        instead: "",
        purpose: "says which errors `retry` tries again",
        doc: "only errors for which `predicate(&NodeError)` is true are tried again",
        example: "retry_if(|e| !e.is::<NotFound>())",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "restarts",
        forms: &["restarts(n)"],
        args: Args::One,
        fits: Fits::StagesAndSinks,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "sets how often a panicking worker is replaced",
        doc: "panicking workers replaced before the run stops (default 3)",
        example: "restarts(5)",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "dead_letter",
        forms: &["dead_letter(node)"],
        args: Args::Node,
        fits: Fits::Stages,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "routes a stage's failed items",
        doc: "items that finally fail go to `node` as `Failed { item, error, node }`",
        example: "dead_letter(rejects)",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "after",
        forms: &["after(node, ..)"],
        args: Args::Nodes,
        fits: Fits::AnyNode,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "makes a node wait for others to finish",
        doc: "start only once the named nodes have finished",
        example: "after(index, cache)",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "fail_fast",
        forms: &["fail_fast"],
        args: Args::None,
        fits: Fits::StagesAndSinks,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "stops the run at a node's first failed item",
        doc: "the first failed item stops the run",
        example: "fail_fast",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
    Descriptor {
        name: "merge",
        forms: &["merge"],
        args: Args::None,
        fits: Fits::SeveralInputs,
        needs: None,
        refuses_zero: None,
        instead: "",
        purpose: "interleaves several inputs",
        doc: "interleave the inputs instead of zipping them",
        example: "merge",
        #[cfg(feature = "syntax")]
        config: Config::SameName,
    },
];

/// The descriptor of the option `name`.
pub fn descriptor(name: &str) -> Option<&'static Descriptor> {
    OPTIONS.iter().find(|d| d.name == name)
}

/// Every form of every option, for errors that list them.
pub fn known() -> String {
    OPTIONS
        .iter()
        .flat_map(|d| d.forms)
        .map(|form| format!("`{form}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The documentation's option table, one row per option: `pipeline!`'s rustdoc and the
/// book show it, and a test keeps them in step.
#[cfg(test)]
pub fn doc_table() -> String {
    let mut table = String::from("| option | on | what it does |\n| --- | --- | --- |\n");
    for d in OPTIONS {
        let forms: Vec<String> = d.forms.iter().map(|f| format!("`{f}`")).collect();
        let fits = match d.needs {
            Some(needed) => format!("{} with `{needed}`", d.fits.doc()),
            None => d.fits.doc().to_string(),
        };
        table.push_str(&format!("| {} | {fits} | {} |\n", forms.join(", "), d.doc));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the first Markdown table in `text` that follows `heading`.
    fn table_after(text: &str, heading: &str, prefix: &str) -> String {
        let start = text.find(heading).expect("the heading is there");
        text[start..]
            .lines()
            .map(|line| {
                let line = line.trim_start();
                line.strip_prefix(prefix).unwrap_or(line).trim()
            })
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn the_macros_documentation_shows_the_table() {
        let doc = table_after(include_str!("../../src/lib.rs"), "/// # Options", "///");
        assert_eq!(doc, doc_table(), "pipeline!'s rustdoc option table");
    }

    #[test]
    fn the_book_shows_the_table() {
        let book = table_after(
            include_str!("../../../book/src/execution.md"),
            "| option |",
            "",
        );
        assert_eq!(
            book,
            doc_table(),
            "the option table in book/src/execution.md"
        );
    }

    #[test]
    fn every_option_has_one_descriptor_and_an_example_of_its_own_name() {
        for (i, d) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[i + 1..].iter().all(|other| other.name != d.name),
                "`{}` is described twice",
                d.name
            );
            assert!(d.example.starts_with(d.name), "{}", d.example);
            assert!(d.forms.iter().all(|f| f.starts_with(d.name)));
            assert!(d.needs.is_none_or(|n| descriptor(n).is_some()));
        }
    }
}
