//! Where things are in a spec's text, so that every error points at its line and column,
//! and the errors themselves.
//!
//! Both formats are read through serde, which keeps no positions; the places are found
//! again in the text: a node's table (`[nodes.rev]` in TOML, `"rev":` in JSON), a string
//! of `edges` or `options` as written between its quotes. A spec's strings have no escapes
//! in practice (names, `=>`, options), so the text between the quotes is the value.

/// One mistake in a spec: where (1-based line and column, when known) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecError {
    /// The line, from 1.
    pub line: Option<usize>,
    /// The column on that line, in characters, from 1.
    pub column: Option<usize>,
    /// What is wrong, naming the nodes, registry names and types involved.
    pub message: String,
}

/// Every mistake found in a spec, in the order of the file where known; displayed one per
/// line as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors {
    /// The file the spec was read from, if any.
    pub file: Option<String>,
    /// The mistakes.
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    /// The mistakes.
    pub fn iter(&self) -> impl Iterator<Item = &SpecError> {
        self.errors.iter()
    }
}

impl std::fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.errors.len();
        let file = self.file.as_deref().unwrap_or("the spec");
        writeln!(
            f,
            "{file} has {n} mistake{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            match (error.line, error.column) {
                (Some(line), Some(column)) => {
                    writeln!(f, "{file}:{line}:{column}: {}", error.message)?
                }
                (Some(line), None) => writeln!(f, "{file}:{line}: {}", error.message)?,
                _ => writeln!(f, "{file}: {}", error.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A spec's text, searched for the places errors point at.
pub(super) struct Text<'a>(pub &'a str);

impl Text<'_> {
    /// A mistake at byte `at` of the text (`None`: the spec as a whole).
    pub(super) fn error(&self, at: Option<usize>, message: impl Into<String>) -> SpecError {
        let (line, column) = match at {
            Some(at) => {
                let (line, column) = self.line_column(at);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        SpecError {
            line,
            column,
            message: message.into(),
        }
    }

    /// The 1-based line and column (in characters) of byte `at`.
    pub(super) fn line_column(&self, at: usize) -> (usize, usize) {
        let before = &self.0[..at.min(self.0.len())];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |n| n + 1);
        (line, before[start..].chars().count() + 1)
    }

    /// The byte at the start of line `line` (1-based), column `column`.
    pub(super) fn at_line(&self, line: usize, column: usize) -> usize {
        let start: usize = self
            .0
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let rest = &self.0[start.min(self.0.len())..];
        start
            + rest
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i)
    }

    /// Where node `name`'s table begins: `[nodes.name]`, `[nodes."name"]`, `name = {` inside
    /// `[nodes]`, or `"name":` in JSON.
    pub(super) fn node(&self, name: &str) -> Option<usize> {
        let patterns = [
            format!("[nodes.{name}]"),
            format!("[nodes.\"{name}\"]"),
            format!("\"{name}\":"),
            format!("\"{name}\" :"),
        ];
        let found = patterns.iter().find_map(|p| self.0.find(p.as_str()));
        found.or_else(|| {
            // `name = { use = .. }` at the start of a line, below `[nodes]`.
            let nodes = self.0.find("[nodes]")?;
            let mut offset = nodes;
            for line in self.0[nodes..].split_inclusive('\n') {
                let key = line.trim_start();
                let rest = key.strip_prefix(name).unwrap_or_default();
                if !rest.is_empty() && rest.trim_start().starts_with('=') {
                    return Some(offset + (line.len() - key.len()));
                }
                offset += line.len();
            }
            None
        })
    }

    /// Where `key` is written inside node `name`'s table (`use`, `args`, `options`), or the
    /// table itself.
    pub(super) fn node_key(&self, name: &str, key: &str) -> Option<usize> {
        let node = self.node(name)?;
        let end = self.next_table(node);
        let within = &self.0[node..end];
        [format!("\"{key}\""), format!("{key} ="), format!("{key}=")]
            .iter()
            .find_map(|p| within.find(p.as_str()))
            .map(|i| node + i)
            .or(Some(node))
    }

    /// The byte just inside the quotes of string `value`, searched from byte `from` (the
    /// first one if `from` is `None`).
    pub(super) fn string(&self, value: &str, from: Option<usize>) -> Option<usize> {
        let from = from.unwrap_or(0).min(self.0.len());
        for quote in ['"', '\''] {
            let quoted = format!("{quote}{value}{quote}");
            if let Some(i) = self.0[from..].find(quoted.as_str()) {
                return Some(from + i + 1);
            }
        }
        None
    }

    /// Where the table that begins at `at` ends: the next TOML table header, or the text's end.
    fn next_table(&self, at: usize) -> usize {
        let after = at + 1;
        self.0[after.min(self.0.len())..]
            .find("\n[")
            .map_or(self.0.len(), |i| after + i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "edges = [\"inp => rev\"]\n\n[nodes.inp]\nuse = \"uuids\"\n[nodes.rev]\nuse = \"reverse\"\noptions = [\"workers(4)\"]\n";

    #[test]
    fn finds_nodes_keys_and_strings() {
        let text = Text(TOML);
        assert_eq!(text.line_column(text.node("rev").unwrap()), (5, 1));
        assert_eq!(
            text.line_column(text.node_key("rev", "options").unwrap()),
            (7, 1)
        );
        assert_eq!(
            text.line_column(text.node_key("inp", "use").unwrap()),
            (4, 1)
        );
        assert_eq!(
            text.line_column(text.string("inp => rev", None).unwrap()),
            (1, 11)
        );
        let json = Text("{\n  \"nodes\": {\n    \"rev\": {\"use\": \"reverse\"}\n  }\n}");
        assert_eq!(json.line_column(json.node("rev").unwrap()), (3, 5));
        let inline = Text("[nodes]\ninp = { use = \"uuids\" }\n");
        assert_eq!(inline.line_column(inline.node("inp").unwrap()), (2, 1));
        assert_eq!(text.at_line(5, 3), TOML.find("[nodes.rev]").unwrap() + 2);
    }

    #[test]
    fn displays_one_line_per_mistake() {
        let text = Text(TOML);
        let errors = SpecErrors {
            file: Some("seeds.toml".into()),
            errors: vec![
                text.error(text.node("rev"), "bad"),
                text.error(None, "worse"),
            ],
        };
        assert_eq!(
            errors.to_string(),
            "seeds.toml has 2 mistakes:\nseeds.toml:5:1: bad\nseeds.toml: worse\n"
        );
    }
}
