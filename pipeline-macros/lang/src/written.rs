//! A node's options as written in the macro's input: parsed, checked against their
//! descriptors in [`OPTIONS`], and turned into calls on the
//! runtime's `NodeConfig`.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

use crate::errors::Errors;
use crate::options::{Args, Descriptor, OPTIONS, descriptor, known};
use crate::typo::nearest;

/// What the options of one node say, after parsing. Each value comes with where its option
/// was written, so that errors about it (a missing `Clone`, a misplaced option) point there.
#[derive(Default)]
pub struct Options {
    pub capacity: Option<Expr>,
    pub workers: Option<(Expr, Span)>,
    pub ordered: Option<Span>,
    /// A `Duration` expression.
    pub timeout: Option<(Expr, Span)>,
    pub retry: Option<RetryOption>,
    /// The predicate on errors.
    pub retry_if: Option<(Expr, Span)>,
    pub restarts: Option<(Expr, Span)>,
    /// The node failed items go to.
    pub dead_letter: Option<(Ident, Span)>,
    /// Nodes that must finish before this one starts.
    pub after: Vec<Ident>,
    pub merge: bool,
    pub fail_fast: bool,
    /// Each option as written, by name, for the node's configuration.
    pub written: BTreeMap<&'static str, Written>,
}

/// One option as written on a node: where, and its arguments.
#[derive(Clone)]
pub struct Written {
    pub span: Span,
    pub given: Given,
}

/// `retry(attempts)`, `retry(attempts, first_pause)` or `retry(attempts, first, longest)`.
pub struct RetryOption {
    pub attempts: Expr,
    pub first: Option<Expr>,
    pub longest: Option<Expr>,
    /// Where `retry` was written.
    pub span: Span,
}

/// The arguments as written, checked against [`Args`].
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

pub(crate) fn one(given: Given) -> Expr {
    match given {
        Given::Exprs(mut args) => args.remove(0),
        _ => unreachable!("checked against `Args::One`"),
    }
}

pub(crate) fn nodes(given: Given) -> Vec<Ident> {
    match given {
        Given::Nodes(nodes) => nodes,
        _ => unreachable!("checked against `Args::Node(s)`"),
    }
}

/// One option as written: `capacity(64)`, `retry(3, backoff)`, `merge`.
pub struct NodeOption {
    pub name: Ident,
    /// The parenthesised arguments, if any: `capacity(64)`, `retry(3, backoff)`.
    pub args: Option<Vec<Expr>>,
    pub span: Span,
}

impl Parse for NodeOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected a node option, one of: {}",
                    crate::options::known()
                ),
            )
        })?;
        let args = if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let args = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            Some(args.into_iter().collect())
        } else {
            None
        };
        let span = name.span();
        Ok(NodeOption { name, args, span })
    }
}

/// Reads a node's options into `node.options`, reporting every mistake in them.
pub fn apply(node: &str, target: &mut Options, options: Vec<NodeOption>, errors: &mut Errors) {
    for option in options {
        let key = option.name.to_string();
        let span = option.span;
        let Some(descriptor) = descriptor(&key) else {
            let names = OPTIONS.iter().map(|d| d.name);
            let message = match nearest(&key, names) {
                Some(near) => format!(
                    "unknown node option `{key}`: did you mean `{near}`? The options are {}",
                    known()
                ),
                None => format!("unknown node option `{key}`; expected one of: {}", known()),
            };
            errors.push(span, message);
            continue;
        };
        if target.written.contains_key(descriptor.name) {
            errors.push(span, format!("option `{key}` is given twice for `{node}`"));
            continue;
        }
        let Some(given) = arguments(descriptor, option.args.unwrap_or_default(), span, errors)
        else {
            continue;
        };
        target.written.insert(
            descriptor.name,
            Written {
                span,
                given: given.clone(),
            },
        );
        (descriptor.set)(target, given, span);
    }
}

/// The arguments of an option, if they are what it takes.
fn arguments(
    descriptor: &Descriptor,
    args: Vec<Expr>,
    span: Span,
    errors: &mut Errors,
) -> Option<Given> {
    let name = descriptor.name;
    let forms = || {
        descriptor
            .forms
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match descriptor.args {
        Args::None if args.is_empty() => Some(Given::None),
        Args::None => {
            errors.push(span, format!("`{name}` takes no argument"));
            None
        }
        Args::One if args.len() == 1 => {
            if let Some(message) = descriptor
                .refuses_zero
                .filter(|_| is_literal_zero(&args[0]))
            {
                errors.push(args[0].span(), message);
                return None;
            }
            Some(Given::Exprs(args))
        }
        Args::One => {
            errors.push(
                span,
                format!("`{name}` takes one argument: `{}`", descriptor.example),
            );
            None
        }
        Args::UpToThree if (1..=3).contains(&args.len()) => Some(Given::Exprs(args)),
        Args::UpToThree => {
            errors.push(
                span,
                format!(
                    "`{name}` takes the number of extra attempts and, optionally, the first and the longest pause: {}, such as `{}`",
                    forms(),
                    descriptor.example
                ),
            );
            None
        }
        Args::Node | Args::Nodes => {
            let single = descriptor.args == Args::Node;
            if args.is_empty() || (single && args.len() > 1) {
                let what = if single {
                    "the node that receives failed items"
                } else {
                    "the nodes to wait for"
                };
                errors.push(
                    span,
                    format!("`{name}` names {what}: `{}`", descriptor.example),
                );
                return None;
            }
            let mut idents = Vec::new();
            for arg in args {
                match &arg {
                    Expr::Path(path) if path.path.get_ident().is_some() => {
                        idents.extend(path.path.get_ident().cloned());
                    }
                    other => errors.push(
                        other.span(),
                        format!("`{name}` takes node names: `{}`", descriptor.example),
                    ),
                }
            }
            (!idents.is_empty()).then_some(Given::Nodes(idents))
        }
    }
}

fn is_literal_zero(expr: &Expr) -> bool {
    matches!(expr, Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(n), .. }) if n.base10_parse::<u64>().ok() == Some(0))
}
