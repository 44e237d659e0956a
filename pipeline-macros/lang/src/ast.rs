//! The macro's syntax: statements separated by `;`.
//!
//! ```text
//! name = <expr>;              bind a node
//! name[opt, ..] = <expr>;     bind a node with options
//! name[opt, ..];              options for a node bound outside the macro
//! a => b, c => d;             edges: a feeds b and c, which both feed d
//! loop d => a;                a loop edge: d's items go back to a, which feeds d
//! ```
//!
//! An inner attribute may come first: `#![distributed("name")]` lets the graph run split
//! over processes (see `pipeline::remote`).

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token, bracketed};

use crate::written::NodeOption;

pub struct PipelineInput {
    /// `#![distributed("name")]`: the pipeline's name on the wire.
    pub distributed: Option<syn::LitStr>,
    pub statements: Vec<Statement>,
}

pub enum Statement {
    Bind(Binding),
    Declare(Declaration),
    Edges(EdgeChain),
}

/// `name[opts] = expr`
pub struct Binding {
    pub name: Ident,
    pub options: Vec<NodeOption>,
    pub expr: Expr,
}

/// `name[opts]`: options for a node that is a local variable.
pub struct Declaration {
    pub name: Ident,
    pub options: Vec<NodeOption>,
}

/// `a, b => c => d, e`: every node of a group feeds every node of the next group.
pub struct EdgeChain {
    pub groups: Vec<Vec<Ident>>,
    /// Written `loop a => b`: the edges go back round a loop.
    pub looping: bool,
}

impl Parse for PipelineInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut distributed = None;
        for attribute in input.call(syn::Attribute::parse_inner)? {
            if !attribute.path().is_ident("distributed") || distributed.is_some() {
                return Err(syn::Error::new_spanned(
                    &attribute,
                    "expected at most one pipeline attribute: `#![distributed(\"name\")]`",
                ));
            }
            let name: syn::LitStr = attribute.parse_args().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the pipeline's name in quotes: `#![distributed(\"name\")]`",
                )
            })?;
            let value = name.value();
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(syn::Error::new(
                    name.span(),
                    "a distributed pipeline's name names NATS subjects and streams: use letters, digits, `-` and `_`",
                ));
            }
            distributed = Some(name);
        }
        let mut statements = Vec::new();
        while !input.is_empty() {
            statements.push(input.parse()?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![;]>().map_err(|e| {
                syn::Error::new(e.span(), "expected `;` between statements (after a binding `name = ...` or an edge `a => b`)")
            })?;
            while input.peek(Token![;]) {
                input.parse::<Token![;]>()?;
            }
        }
        Ok(PipelineInput {
            distributed,
            statements,
        })
    }
}

impl Parse for Statement {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![loop]) {
            let keyword: Token![loop] = input.parse()?;
            let first: Ident = input.parse().map_err(|_| {
                syn::Error::new(
                    keyword.span,
                    "expected a loop edge after `loop`: `loop links => frontier`, where `frontier` feeds `links`",
                )
            })?;
            let mut chain = parse_chain(first, input)?;
            chain.looping = true;
            return Ok(Statement::Edges(chain));
        }
        let first: Ident = input.parse().map_err(|e: syn::Error| {
            syn::Error::new(
                e.span(),
                "expected a node name: a statement is `name = <expr>`, `name[options]` or `a => b`",
            )
        })?;
        let options = if input.peek(syn::token::Bracket) {
            parse_options(input)?
        } else {
            Vec::new()
        };
        if input.peek(Token![=>]) || input.peek(Token![,]) {
            if !options.is_empty() {
                return Err(syn::Error::new(
                    options[0].span,
                    "options go on a binding (`name[opts] = ...`) or a declaration (`name[opts];`), not on an edge",
                ));
            }
            return Ok(Statement::Edges(parse_chain(first, input)?));
        }
        if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            let expr: Expr = input.parse()?;
            return Ok(Statement::Bind(Binding {
                name: first,
                options,
                expr,
            }));
        }
        if input.is_empty() || input.peek(Token![;]) {
            return Ok(Statement::Declare(Declaration {
                name: first,
                options,
            }));
        }
        Err(syn::Error::new(
            input.span(),
            format!(
                "expected one of: `=` (bind `{first}`), `=>` (an edge from `{first}`), `,`, `[options]` or `;`"
            ),
        ))
    }
}

fn parse_chain(first: Ident, input: ParseStream) -> syn::Result<EdgeChain> {
    let mut groups = vec![parse_group_rest(first, input)?];
    while input.peek(Token![=>]) {
        let arrow: Token![=>] = input.parse()?;
        let next: Ident = input
            .parse()
            .map_err(|_| syn::Error::new(arrow.spans[1], "expected a node name after `=>`"))?;
        groups.push(parse_group_rest(next, input)?);
    }
    if groups.len() < 2 {
        return Err(syn::Error::new(
            input.span(),
            "expected `=>` after the list of nodes: `a, b => c`",
        ));
    }
    Ok(EdgeChain {
        groups,
        looping: false,
    })
}

fn parse_group_rest(first: Ident, input: ParseStream) -> syn::Result<Vec<Ident>> {
    refuse_options_on_edge(&first, input)?;
    let mut group = vec![first];
    while input.peek(Token![,]) {
        let comma: Token![,] = input.parse()?;
        group.push(
            input
                .parse()
                .map_err(|_| syn::Error::new(comma.span, "expected a node name after `,`"))?,
        );
        refuse_options_on_edge(group.last().expect("just pushed"), input)?;
    }
    Ok(group)
}

/// `a => b[workers(4)] => c`: options written inside an edge, where they do not go.
fn refuse_options_on_edge(node: &Ident, input: ParseStream) -> syn::Result<()> {
    if !input.peek(syn::token::Bracket) {
        return Ok(());
    }
    let options = parse_options(input)?;
    let written = options
        .iter()
        .map(|o| match o.args {
            Some(_) => format!("{}(..)", o.name),
            None => o.name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(syn::Error::new(
        options.first().map_or(node.span(), |o| o.span),
        format!(
            "options go where `{node}` is bound (`{node}[{written}] = ...`) or in a statement of their own (`{node}[{written}];`), not on an edge"
        ),
    ))
}

fn parse_options(input: ParseStream) -> syn::Result<Vec<NodeOption>> {
    let content;
    bracketed!(content in input);
    let options = Punctuated::<NodeOption, Token![,]>::parse_terminated(&content)?;
    Ok(options.into_iter().collect())
}
