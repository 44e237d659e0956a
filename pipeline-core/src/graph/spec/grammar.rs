//! The two small languages inside a spec's strings: edges in the macro's grammar
//! (`"inp => rev, out"`) and node options as the macro writes them (`"retry(3, 50ms)"`).
//! Each mistake says where in its string it is (a byte offset), so the error can point at
//! the spec's line and column.

use std::time::Duration;

use pipeline_lang::options::{Args, descriptor, known};
use pipeline_lang::typo::nearest;

use crate::spec::OptionArg;

/// A mistake inside one string, at a byte offset into it.
#[derive(Debug, PartialEq)]
pub(super) struct Slip {
    pub at: usize,
    pub message: String,
}

fn slip(at: usize, message: impl Into<String>) -> Slip {
    Slip {
        at,
        message: message.into(),
    }
}

/// A node's name as written in an edge, and where.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NameAt {
    pub name: String,
    pub at: usize,
}

#[derive(Debug, PartialEq)]
enum Token {
    Name(String),
    Arrow,
    Comma,
    Semi,
    /// `[`: options written on an edge.
    Bracket,
    Other(char),
}

fn tokens(text: &str) -> Vec<(usize, Token)> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            ';' => Token::Semi,
            '[' => Token::Bracket,
            '=' if chars.peek().is_some_and(|&(_, next)| next == '>') => {
                chars.next();
                Token::Arrow
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut name = String::from(c);
                while let Some(&(_, next)) = chars.peek() {
                    if !(next.is_alphanumeric() || next == '_') {
                        break;
                    }
                    name.push(next);
                    chars.next();
                }
                Token::Name(name)
            }
            other => Token::Other(other),
        };
        out.push((at, token));
    }
    out
}

/// One statement of edges: groups of nodes, every node of a group feeding every node of
/// the next; written `loop a => b`, they are loop edges.
#[derive(Debug, PartialEq)]
pub(super) struct Statement {
    pub groups: Vec<Vec<NameAt>>,
    pub looping: bool,
}

/// Parses `a, b => c => d, e; loop d => a`.
pub(super) fn edges(text: &str) -> Result<Vec<Statement>, Slip> {
    let tokens = tokens(text);
    let mut statements = Vec::new();
    for statement in tokens.split(|(_, token)| *token == Token::Semi) {
        let Some((first, _)) = statement.first() else {
            continue;
        };
        let (looping, rest) = match statement {
            [(_, Token::Name(keyword)), rest @ ..] if keyword == "loop" && !rest.is_empty() => {
                (true, rest)
            }
            _ => (false, statement),
        };
        let end = tokens
            .iter()
            .map(|(at, _)| *at)
            .find(|&at| at > statement.last().map_or(*first, |(at, _)| *at))
            .unwrap_or(text.len());
        statements.push(Statement {
            groups: groups(rest, end)?,
            looping,
        });
    }
    if statements.is_empty() {
        return Err(slip(0, "an empty edge: write `a => b`"));
    }
    Ok(statements)
}

/// The groups of one statement's tokens, which end at byte `end`.
fn groups(tokens: &[(usize, Token)], end: usize) -> Result<Vec<Vec<NameAt>>, Slip> {
    let mut groups: Vec<Vec<NameAt>> = vec![Vec::new()];
    // What may come next: a name (at the start, after `,` or `=>`) or a separator; and the
    // separator last read, for errors.
    let mut want_name = true;
    let mut after = "at the start";
    for (at, token) in tokens.iter().map(|(at, t)| (*at, t)) {
        match (token, want_name) {
            (Token::Name(name), true) => {
                groups.last_mut().expect("one group at least").push(NameAt {
                    name: name.clone(),
                    at,
                });
                want_name = false;
            }
            (Token::Comma, false) => (want_name, after) = (true, "after `,`"),
            (Token::Arrow, false) => {
                groups.push(Vec::new());
                (want_name, after) = (true, "after `=>`");
            }
            (Token::Bracket, false) => {
                let node = &groups
                    .last()
                    .expect("one group")
                    .last()
                    .expect("a name")
                    .name;
                return Err(slip(
                    at,
                    format!(
                        "options go in the node's table (`[nodes.{node}]`, `options = [..]`), not on an edge"
                    ),
                ));
            }
            (Token::Name(name), false) => {
                return Err(slip(
                    at,
                    format!("expected `=>`, `,` or `;` before `{name}`"),
                ));
            }
            (token, true) => {
                return Err(slip(
                    at,
                    format!("expected a node name {after}, found {}", describe(token)),
                ));
            }
            (token, false) => {
                return Err(slip(
                    at,
                    format!("expected `=>`, `,` or `;`, found {}", describe(token)),
                ));
            }
        }
    }
    if want_name {
        return Err(slip(end, "expected a node name at the end"));
    }
    if groups.len() < 2 {
        return Err(slip(
            end,
            "expected `=>` after the list of nodes: `a, b => c`",
        ));
    }
    Ok(groups)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(name) => format!("`{name}`"),
        Token::Arrow => "`=>`".to_string(),
        Token::Comma => "`,`".to_string(),
        Token::Semi => "`;`".to_string(),
        Token::Bracket => "`[`".to_string(),
        Token::Other(c) => format!("`{c}`"),
    }
}

/// An option as written: its name and its arguments, checked against the option table.
#[derive(Debug, PartialEq)]
pub(super) struct OptionText {
    pub name: &'static str,
    pub args: Vec<OptionArg>,
}

/// Parses `workers(4)`, `ordered`, `retry(3, 50ms, 5s)`, `dead_letter(rejects)`.
pub(super) fn option(text: &str) -> Result<OptionText, Slip> {
    let trimmed = text.trim_end();
    let start = text.len() - text.trim_start().len();
    let (name, args_at) = match trimmed.find('(') {
        Some(open) => (&trimmed[start..open], Some(open)),
        None => (&trimmed[start..], None),
    };
    let name = name.trim_end();
    let Some(d) = descriptor(name) else {
        let hint = match nearest(name, pipeline_lang::options::OPTIONS.iter().map(|d| d.name)) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("the options are {}", known()),
        };
        return Err(slip(start, format!("there is no option `{name}`: {hint}")));
    };
    let form = d.forms.join("` or `");
    let args = match args_at {
        None => Vec::new(),
        Some(open) => {
            let Some(inner) = trimmed[open + 1..].strip_suffix(')') else {
                return Err(slip(open, format!("`(` without its `)`: write `{form}`")));
            };
            let mut args = Vec::new();
            let mut offset = open + 1;
            for part in inner.split(',') {
                let at = offset + (part.len() - part.trim_start().len());
                offset += part.len() + 1;
                let part = part.trim();
                if part.is_empty() {
                    return Err(slip(at, format!("an empty argument: write `{form}`")));
                }
                args.push(arg(part).map_err(|message| slip(at, message))?);
            }
            args
        }
    };
    let fits = match d.args {
        Args::None => args.is_empty() && args_at.is_none(),
        Args::One | Args::Node => args.len() == 1,
        Args::UpToThree => (1..=3).contains(&args.len()),
        Args::Nodes => !args.is_empty(),
    };
    if !fits {
        return Err(slip(
            start,
            format!("`{name}` is written `{form}`, for example `{}`", d.example),
        ));
    }
    Ok(OptionText { name: d.name, args })
}

/// `4`, `500ms`, `1.5s`, `rejects`.
fn arg(text: &str) -> Result<OptionArg, String> {
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    if digits == 0 {
        return if text.chars().all(|c| c.is_alphanumeric() || c == '_') {
            Ok(OptionArg::Node(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a number, a duration or a node's name"
            ))
        };
    }
    let (number, unit) = text.split_at(digits);
    if unit.is_empty() {
        return number
            .parse()
            .map(OptionArg::Count)
            .map_err(|_| format!("`{text}` is not a whole number"));
    }
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "`{other}` is not a unit of time: use `ns`, `us`, `ms`, `s`, `min` or `h`"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    Duration::try_from_secs_f64(value * scale)
        .map(OptionArg::Duration)
        .map_err(|_| format!("`{text}` is not a duration this runtime can wait"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(statements: &[Statement]) -> Vec<Vec<Vec<&str>>> {
        statements
            .iter()
            .map(|s| {
                s.groups
                    .iter()
                    .map(|g| g.iter().map(|n| n.name.as_str()).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn edges_read_as_the_macro_writes_them() {
        let parsed = edges("inp => rev, out; rev => out").unwrap();
        assert_eq!(
            names(&parsed),
            [
                vec![vec!["inp"], vec!["rev", "out"]],
                vec![vec!["rev"], vec!["out"]]
            ]
        );
        assert_eq!(parsed[0].groups[1][1].at, 12);
        assert!(!parsed[0].looping);
        let chain = edges("a, b => c => d;").unwrap();
        assert_eq!(names(&chain), [vec![vec!["a", "b"], vec!["c"], vec!["d"]]]);
        let looped = edges("s => a => b; loop b => a").unwrap();
        assert_eq!(
            looped.iter().map(|s| s.looping).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(names(&looped)[1], [vec!["b"], vec!["a"]]);
        // `loop` is a node's name where no statement starts.
        assert_eq!(names(&edges("s => loop").unwrap())[0][1], ["loop"]);
    }

    #[test]
    fn edge_mistakes_say_where() {
        let cases = [
            ("inp rev", 4, "expected `=>`, `,` or `;` before `rev`"),
            ("inp =>", 6, "expected a node name at the end"),
            (
                "inp => , out",
                7,
                "expected a node name after `=>`, found `,`",
            ),
            (
                "inp",
                3,
                "expected `=>` after the list of nodes: `a, b => c`",
            ),
            ("", 0, "an empty edge: write `a => b`"),
            (
                "inp => rev[workers(4)]",
                10,
                "options go in the node's table",
            ),
            ("inp -> rev", 4, "expected `=>`, `,` or `;`, found `-`"),
        ];
        for (text, at, start) in cases {
            let slip = edges(text).unwrap_err();
            assert_eq!(slip.at, at, "{text}: {}", slip.message);
            assert!(slip.message.starts_with(start), "{text}: {}", slip.message);
        }
    }

    #[test]
    fn options_read_as_the_macro_writes_them() {
        let retry = option("retry(3, 50ms, 1.5s)").unwrap();
        assert_eq!(retry.name, "retry");
        assert_eq!(
            retry.args,
            [
                OptionArg::Count(3),
                OptionArg::Duration(Duration::from_millis(50)),
                OptionArg::Duration(Duration::from_millis(1500)),
            ]
        );
        assert_eq!(option(" ordered ").unwrap().args, []);
        assert_eq!(
            option("after(a, b)").unwrap().args,
            [OptionArg::Node("a".into()), OptionArg::Node("b".into())]
        );
    }

    #[test]
    fn option_mistakes_say_what_and_where() {
        let cases = [
            (
                "wokers(4)",
                0,
                "there is no option `wokers`: did you mean `workers`?",
            ),
            (
                "workers",
                0,
                "`workers` is written `workers(n)` or `workers(auto)`, for example `workers(4)`",
            ),
            ("ordered(2)", 0, "`ordered` is written `ordered`"),
            ("workers(4", 7, "`(` without its `)`"),
            ("timeout(5 parsecs)", 8, "`parsecs` is not a unit of time"),
            ("retry(3,)", 8, "an empty argument"),
        ];
        for (text, at, start) in cases {
            let slip = option(text).unwrap_err();
            assert_eq!(slip.at, at, "{text}: {}", slip.message);
            assert!(slip.message.starts_with(start), "{text}: {}", slip.message);
        }
    }
}
