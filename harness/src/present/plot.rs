//! Plots of the curves a suite records (`PROBE.TEST.curve.X.METRIC = Y`): small multiples, one panel per
//! metric, one line per group of columns whose curves are identical, and a note when all of them coincide
//! (as they mostly do: 18 demand_paging columns draw two distinct curves).
//!
//! SVG built with maud, which escapes every label: column names and metrics come from snapshots.

use std::collections::BTreeMap;

use maud::{html, Markup};

use crate::facts::Facts;

/// One column's curve of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub column: String,
    pub metric: String,
    pub points: Vec<(f64, f64)>,
}

/// Every curve in the facts of `columns`, by metric, then in column order.
pub fn curves<'a>(columns: impl IntoIterator<Item = (&'a str, &'a Facts)>) -> Vec<Curve> {
    let mut found: Vec<Curve> = Vec::new();
    for (column, facts) in columns {
        let mut by_metric: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for (key, value) in facts {
            let parts: Vec<&str> = key.split('.').collect();
            let Some(at) = parts.iter().rposition(|p| *p == "curve") else { continue };
            let (Some(x), Some(metric), Ok(y)) = (parts.get(at + 1), parts.get(at + 2), value.parse::<f64>()) else {
                continue;
            };
            let Ok(x) = x.parse::<f64>() else { continue };
            by_metric.entry(metric).or_default().push((x, y));
        }
        for (metric, mut points) in by_metric {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            found.push(Curve { column: column.to_string(), metric: metric.to_string(), points });
        }
    }
    // A stable sort: columns keep their order within a metric.
    found.sort_by(|a, b| a.metric.cmp(&b.metric));
    found
}

/// One metric's panel: the distinct curves, each with the columns that drew it.
#[derive(Debug, PartialEq)]
pub struct Panel {
    pub metric: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, PartialEq)]
pub struct Line {
    pub columns: Vec<String>,
    pub points: Vec<(f64, f64)>,
}

/// Group `curves` into a panel per metric, columns with identical points on one line.
pub fn panels(curves: &[Curve]) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for curve in curves {
        if panels.last().is_none_or(|p| p.metric != curve.metric) {
            panels.push(Panel { metric: curve.metric.clone(), lines: Vec::new() });
        }
        let panel = panels.last_mut().expect("pushed above");
        match panel.lines.iter_mut().find(|line| line.points == curve.points) {
            Some(line) => line.columns.push(curve.column.clone()),
            None => panel.lines.push(Line { columns: vec![curve.column.clone()], points: curve.points.clone() }),
        }
    }
    panels
}

impl Panel {
    /// `vmpte_kb` → `vmpte_kb (kB)`: the metric as the facts name it, with its unit where the name says.
    fn y_label(&self) -> String {
        match self.metric.rsplit_once('_') {
            Some((_, "kb")) => format!("{} (kB)", self.metric),
            Some((_, "mb")) => format!("{} (MB)", self.metric),
            Some((_, "pages")) => format!("{} (pages)", self.metric),
            _ => self.metric.clone(),
        }
    }

    /// What the legend says: each line's columns, or that they all coincide.
    fn legend(&self) -> Vec<String> {
        if let [line] = &self.lines[..] {
            let n = line.columns.len();
            return vec![if n == 1 { line.columns[0].clone() } else { format!("all {n} columns coincide") }];
        }
        self.lines.iter().map(|line| line.columns.join(" ")).collect()
    }
}

const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// Size of one panel's plot area and margins, in px.
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const LEGEND_LINE: f64 = 16.0;
/// Legend lines longer than this are cut (the full list is in the line's tooltip).
const LEGEND_CHARS: usize = 58;

/// A panel's height with a legend of `legend_lines` lines.
fn panel_height(legend_lines: usize) -> f64 {
    HEIGHT + LEGEND_LINE * legend_lines as f64 + 12.0
}

/// The step of the vertical axis's 4 intervals: the smallest of 1, 2, 2.5, 5 × 10^k (k ≥ 0: the values
/// are counts and kB) that reaches `max`; 1 when every value is 0.
fn y_step(max: f64) -> f64 {
    let raw = max / 4.0;
    let mut scale = 1.0;
    loop {
        for m in [1.0, 2.0, 2.5, 5.0] {
            if m * scale >= raw {
                return m * scale;
            }
        }
        scale *= 10.0;
    }
}

/// A number for an axis tick: no trailing `.0`.
fn tick(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// One panel as an SVG element, `x_label` naming the horizontal axis.
pub fn panel_svg(panel: &Panel, x_label: &str) -> Markup {
    let points = || panel.lines.iter().flat_map(|l| l.points.iter());
    let max_x = points().map(|p| p.0).fold(1.0, f64::max);
    let step = y_step(points().map(|p| p.1).fold(0.0, f64::max));
    let max_y = 4.0 * step;
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let sx = |x: f64| x0 + x / max_x * (x1 - x0);
    let sy = |y: f64| y0 - y / max_y * (y0 - y1);
    let legend = panel.legend();
    let height = panel_height(legend.len());
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height) viewBox=(format!("0 0 {WIDTH} {height}"))
            font-family="sans-serif" {
            title { (panel.metric) }
            rect x="0" y="0" width="100%" height="100%" fill="white" {}
            text x=(x0) y="16" font-size="13" font-weight="bold" { (panel.metric) }
            @for i in 0..=4 {
                @let y = step * f64::from(i);
                line x1=(x0) y1=(sy(y)) x2=(x1) y2=(sy(y)) stroke="#e4e4e4" {}
                text x=(x0 - 5.0) y=(sy(y) + 4.0) text-anchor="end" font-size="11" { (tick(y)) }
            }
            @for i in 0..=4 {
                @let x = max_x * f64::from(i) / 4.0;
                text x=(sx(x)) y=(y0 + 15.0) text-anchor="middle" font-size="11" { (tick(x)) }
            }
            line x1=(x0) y1=(y0) x2=(x1) y2=(y0) stroke="black" {}
            line x1=(x0) y1=(y0) x2=(x0) y2=(y1) stroke="black" {}
            text x=((x0 + x1) / 2.0) y=(y0 + 34.0) text-anchor="middle" font-size="12" { (x_label) }
            text x="14" y=((y0 + y1) / 2.0) text-anchor="middle" font-size="12"
                transform=(format!("rotate(-90 14 {})", (y0 + y1) / 2.0)) { (panel.y_label()) }
            @for (i, line) in panel.lines.iter().enumerate() {
                @let color = PALETTE[i % PALETTE.len()];
                // Later lines dashed, so one that runs along another stays visible.
                @let dash = if i == 0 { "none" } else { "6 4" };
                polyline fill="none" stroke=(color) stroke-width="2" stroke-dasharray=(dash)
                    points=(line.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect::<Vec<_>>().join(" ")) {
                    title { (line.columns.join(" ")) }
                }
            }
            @for (i, text) in legend.iter().enumerate() {
                @let y = HEIGHT + 12.0 + LEGEND_LINE * i as f64;
                rect x=(x0) y=(y - 9.0) width="14" height="4" fill=(PALETTE[i % PALETTE.len()]) {}
                text x=(x0 + 20.0) y=(y - 4.0) font-size="12" {
                    title { (text) }
                    (crate::present::text::shorten(text, LEGEND_CHARS))
                }
            }
        }
    }
}

/// A standalone SVG file of every panel of `curves`, side by side.
pub fn svg_file(curves: &[Curve], x_label: &str) -> String {
    let panels = panels(curves);
    let height = panels.iter().map(|panel| panel_height(panel.legend().len())).fold(0.0, f64::max);
    let width = WIDTH * panels.len() as f64;
    let svg = html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) {
            @for (i, panel) in panels.iter().enumerate() {
                g transform=(format!("translate({} 0)", WIDTH * i as f64)) { (panel_svg(panel, x_label)) }
            }
        }
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", svg.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn curves_are_read_from_facts_and_grouped_into_panels_per_metric() {
        let a = facts(&[
            ("dp.curve.0000.vmpte_kb", "0"),
            ("dp.curve.0256.vmpte_kb", "1024"),
            ("dp.curve.0000.rss_kb", "0"),
            ("dp.curve.0256.rss_kb", "0"),
            ("dp.curve.mapped_as", "zero_page"),
        ]);
        let mut b = a.clone();
        b.insert("dp.curve.0256.rss_kb".into(), "512".into());
        let c = a.clone();
        let found = curves([("6.1", &a), ("6.12", &b), ("7.2", &c)]);
        assert_eq!(found.len(), 6, "{found:?}");
        assert_eq!(
            found[0],
            Curve { column: "6.1".into(), metric: "rss_kb".into(), points: vec![(0.0, 0.0), (256.0, 0.0)] }
        );
        let panels = panels(&found);
        assert_eq!(panels.len(), 2);
        assert_eq!(panels[0].metric, "rss_kb");
        let columns: Vec<&Vec<String>> = panels[0].lines.iter().map(|l| &l.columns).collect();
        assert_eq!(columns, [&vec!["6.1".to_string(), "7.2".into()], &vec!["6.12".to_string()]]);
        assert_eq!(panels[0].legend(), ["6.1 7.2", "6.12"]);
        assert_eq!(panels[1].legend(), ["all 3 columns coincide"]);
        assert_eq!(panels[1].y_label(), "vmpte_kb (kB)");
    }

    #[test]
    fn the_vertical_axis_has_round_steps() {
        assert_eq!(y_step(0.0), 1.0);
        assert_eq!(y_step(4.0), 1.0);
        assert_eq!(y_step(5.0), 2.0);
        assert_eq!(y_step(16420.0), 5000.0);
        assert_eq!(y_step(8.0), 2.0);
        assert_eq!(y_step(9.0), 2.5);
    }

    #[test]
    fn a_panel_is_an_svg_with_axes_labels_and_one_polyline_per_distinct_curve() {
        let a = facts(&[("p.curve.0.m_kb", "0"), ("p.curve.4.m_kb", "8")]);
        let b = facts(&[("p.curve.0.m_kb", "0"), ("p.curve.4.m_kb", "2")]);
        let found = curves([("<x>", &a), ("y", &b)]);
        let svg = panel_svg(&panels(&found)[0], "touches").into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(">touches<") && svg.contains(">m_kb (kB)<"), "{svg}");
        assert!(svg.contains("&lt;x&gt;") && !svg.contains("<x>"), "labels are escaped: {svg}");
        assert!(svg.contains(">6<") && svg.contains(">8<"), "y axis 0, 2 … 8: {svg}");
        let file = svg_file(&found, "touches");
        assert!(file.starts_with("<?xml") && file.contains("translate(0 0)"), "{file}");
    }
}
