//! A run as one self-contained HTML page: the graph laid out and coloured by utilisation,
//! the table beside it, the verdict above. No script, no external file: it can be mailed,
//! attached to a ticket or archived as a CI artifact and still read the same.

use std::fmt::Write;

use crate::picture::svg::heat_hex;
use crate::report::RunReport;
use crate::run::Pipeline;
use crate::table::{Grid, grid, summary};

impl RunReport {
    /// The run's graph as SVG: boxes coloured by utilisation (green idle, yellow half busy,
    /// red saturated), counts in every box, the bottleneck outlined in red.
    pub fn svg(&self) -> String {
        self.drawing().svg()
    }

    /// A self-contained HTML page of the run: verdict, picture and table.
    ///
    /// ```no_run
    /// # async fn demo(pipeline: pipeline::Pipeline) -> Result<(), Box<dyn std::error::Error>> {
    /// let report = pipeline.run().await?;
    /// std::fs::write("run.html", report.html())?;
    /// # Ok(()) }
    /// ```
    pub fn html(&self) -> String {
        let mut page = String::new();
        let lines = summary(self);
        let (facts, findings) = lines.split_at(2.min(lines.len()));
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Pipeline run: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>Pipeline run</h1>\n",
            escape(&facts.join("; "))
        );
        for finding in findings {
            let class = if finding.starts_with("bottleneck") {
                "verdict"
            } else {
                "warning"
            };
            let _ = writeln!(page, "<p class=\"{class}\">{}</p>", escape(finding));
        }
        page.push_str("<div class=\"side-by-side\">\n<figure>\n");
        page.push_str(&self.svg());
        page.push_str("\n<figcaption>");
        page.push_str(&legend());
        page.push_str("</figcaption>\n</figure>\n<div>\n");
        page.push_str(&table(self));
        for fact in facts {
            let _ = writeln!(page, "<p>{}</p>", escape(fact));
        }
        page.push_str(&errors(self));
        page.push_str("</div>\n</div>\n</body>\n</html>\n");
        page
    }
}

impl Pipeline {
    /// The declared graph as SVG, laid out without running anything.
    pub fn svg(&self) -> String {
        self.drawing().svg()
    }
}

fn table(report: &RunReport) -> String {
    let Grid { headers, rows } = grid(report);
    let bottleneck = report.verdict().map(|v| v.bottleneck);
    let mut html = String::from("<table>\n<thead><tr>");
    for header in &headers {
        let _ = write!(html, "<th>{}</th>", escape(header));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (row, node) in rows.iter().zip(&report.nodes) {
        let class = if bottleneck.as_deref() == Some(node.name.as_str()) {
            " class=\"bottleneck\""
        } else {
            ""
        };
        let _ = write!(html, "<tr{class}>");
        for (c, cell) in row.iter().enumerate() {
            // The busy cell carries the colour its box has in the picture.
            if headers[c] == "busy" {
                let fill = heat_hex(node.utilisation(report.elapsed));
                let _ = write!(
                    html,
                    "<td style=\"background:{fill}\">{}</td>",
                    escape(cell)
                );
            } else {
                let _ = write!(html, "<td>{}</td>", escape(cell));
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

fn legend() -> String {
    let mut html = String::from("busy share of the run: ");
    for (share, label) in [(0.0, "idle"), (0.5, "half"), (1.0, "saturated")] {
        let _ = write!(
            html,
            "<span class=\"swatch\" style=\"background:{}\"></span>{label} ",
            heat_hex(share)
        );
    }
    html.push_str("; the bottleneck has a red border");
    html
}

/// The first error messages of each node that kept any.
fn errors(report: &RunReport) -> String {
    const SHOWN: usize = 5;
    let mut html = String::new();
    for node in report.nodes.iter().filter(|n| !n.errors.is_empty()) {
        let _ = write!(
            html,
            "<details><summary>{} errors in <code>{}</code>: {}</summary><ul>",
            node.failed.max(node.errors.len() as u64),
            escape(&node.name),
            escape(&crate::table::kinds(&node.error_kinds))
        );
        for error in node.errors.iter().take(SHOWN) {
            let _ = write!(html, "<li><code>{}</code></li>", escape(error));
        }
        html.push_str("</ul></details>\n");
    }
    html
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
.verdict { font-size: 1.1em; padding: .6em 1em; border-left: 6px solid #cc2222; background: #fdf0ee; }
.warning { padding: .4em 1em; border-left: 6px solid #d9a400; background: #fdf8e6; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .85em; color: #555; }
figure svg text[class] { font-family: system-ui, sans-serif; }
.swatch { display: inline-block; width: 1em; height: 1em; margin: 0 .3em; vertical-align: middle; border: 1px solid #999; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
tr.bottleneck td:first-child { font-weight: bold; color: #cc2222; }
";

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_error_messages_is_shown_not_interpreted() {
        assert_eq!(
            escape("<script>\"a\" & b</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; b&lt;/script&gt;"
        );
    }
}
