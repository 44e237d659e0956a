//! A node's options as written in the macro's input: parsed, checked against their
//! descriptors in [`OPTIONS`], and turned into calls on the
//! runtime's `NodeConfig`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

use crate::errors::Errors;
use crate::options::{Args, Descriptor, Given, OPTIONS, Options, Written, descriptor, known};
use crate::typo::nearest;

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
        target
            .written
            .insert(descriptor.name, Written { span, given });
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
