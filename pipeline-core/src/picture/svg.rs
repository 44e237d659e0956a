//! The graph as an SVG picture, laid out by `layout-rs` (a Sugiyama-style layered layout,
//! like Graphviz's `dot`, in pure Rust) so that no external program is needed.
//!
//! After a run each box is filled by its node's utilisation, from pale green (idle) through
//! yellow to red (busy all the time), and the bottleneck gets a thick red border.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::Drawing;
use crate::spec::Role;

const FONT_SIZE: usize = 14;

impl Drawing<'_> {
    /// An `<svg>` element, without an XML declaration, ready to embed in HTML.
    pub(crate) fn svg(&self) -> String {
        let mut graph = VisualGraph::new(Orientation::LeftToRight);
        let handles: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let role = match node.role {
                    Role::Source => "source",
                    Role::Stage => "stage",
                    Role::Sink => "sink",
                };
                let label = std::iter::once(format!("{} ({role})", node.name))
                    .chain(node.details.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("\n");
                let shape = ShapeKind::new_box(&label);
                let fill = node.utilisation.map_or(Color::fast("white"), heat);
                let (line_color, line_width) = if node.highlighted {
                    (Color::fast("#cc2222"), 4)
                } else {
                    (Color::fast("#333333"), 1)
                };
                // Sources and sinks get rounded corners: the ends of the graph.
                let rounded = if node.role == Role::Stage { 0 } else { 12 };
                let look = StyleAttr::new(line_color, line_width, Some(fill), rounded, FONT_SIZE);
                let text = get_shape_size(Orientation::LeftToRight, &shape, FONT_SIZE, false);
                // A little air around the text reads better than the library's tight fit.
                let size = Point::new(text.x + 24.0, text.y + 12.0);
                graph.add_node(Element::create(shape, look, Orientation::LeftToRight, size))
            })
            .collect();
        for (i, (from, to)) in self.edges.iter().enumerate() {
            let label = self.edge_label(i).unwrap_or_default();
            graph.add_edge(
                arrow(&label, LineStyleKind::Normal),
                handles[self.index(from)],
                handles[self.index(to)],
            );
        }
        for (from, to) in &self.dead_letter_edges {
            graph.add_edge(
                arrow("failed", LineStyleKind::Dashed),
                handles[self.index(from)],
                handles[self.index(to)],
            );
        }
        let mut writer = SVGWriter::new();
        graph.do_it(false, false, false, &mut writer);
        let svg = writer.finalize();
        // The writer sizes the picture by text length along the wrong axis, leaving a tall
        // blank area; the laid-out boxes say how big it really is.
        let (mut width, mut height) = (0.0_f64, 0.0_f64);
        for node in graph.iter_nodes() {
            let (_, bottom_right) = graph.pos(node).bbox(false);
            width = width.max(bottom_right.x);
            height = height.max(bottom_right.y);
        }
        let (width, height) = (width.ceil() + 10.0, height.ceil() + 10.0);
        // The declaration is only allowed at the start of a file, not inside HTML.
        let body = svg.find("<svg").map_or(svg.as_str(), |start| &svg[start..]);
        let body = body.split_once('>').map_or(body, |(_, rest)| rest);
        format!(
            "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
             xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">{body}"
        )
    }
}

fn arrow(label: &str, style: LineStyleKind) -> Arrow {
    // One font size throughout: the writer keeps its styles in a hash map, and one entry keeps
    // the output the same from run to run.
    let look = StyleAttr::new(Color::fast("#555555"), 2, None, 0, FONT_SIZE);
    Arrow::new(
        LineEndKind::None,
        LineEndKind::Arrow,
        style,
        label,
        &look,
        &None,
        &None,
    )
}

/// Colour for a utilisation from 0 to 1: pale green, yellow at one half, red when saturated.
pub(crate) fn heat(utilisation: f64) -> Color {
    Color::fast(&heat_hex(utilisation))
}

pub(crate) fn heat_hex(utilisation: f64) -> String {
    const IDLE: [f64; 3] = [0xe3 as f64, 0xf4 as f64, 0xe1 as f64];
    const HALF: [f64; 3] = [0xff as f64, 0xf0 as f64, 0xa8 as f64];
    const FULL: [f64; 3] = [0xf4 as f64, 0x9a as f64, 0x8e as f64];
    let u = utilisation.clamp(0.0, 1.0);
    let (from, to, t) = if u < 0.5 {
        (IDLE, HALF, u * 2.0)
    } else {
        (HALF, FULL, (u - 0.5) * 2.0)
    };
    let channel = |c: usize| (from[c] + (to[c] - from[c]) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", channel(0), channel(1), channel(2))
}

#[cfg(test)]
mod tests {
    use super::heat_hex;

    #[test]
    fn idle_nodes_are_green_half_busy_yellow_saturated_red() {
        assert_eq!(heat_hex(0.0), "#e3f4e1");
        assert_eq!(heat_hex(0.5), "#fff0a8");
        assert_eq!(heat_hex(1.0), "#f49a8e");
        assert_eq!(heat_hex(7.0), heat_hex(1.0));
    }
}
