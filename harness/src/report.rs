//! `ksnap report`: the whole matrix at a glance, from the committed snapshots — a self-contained HTML page
//! (no network, no external assets) or Markdown for a CI job summary.
//!
//! The page is built with maud, which escapes every interpolated value: facts come from guest output and
//! are untrusted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::diff::md;
use crate::facts::Facts;
use crate::snapfile::SnapshotFile;

/// One suite's matrix: rows are facts, columns are kernel[+variant].
pub struct SuiteMatrix<'a> {
    pub suite: &'a str,
    pub columns: Vec<&'a SnapshotFile>,
    pub keys: Vec<&'a str>,
}

impl SuiteMatrix<'_> {
    fn value(&self, column: usize, key: &str) -> Option<&str> {
        self.columns[column].facts.get(key).map(String::as_str)
    }

    /// Which cells of a row to highlight: those that differ from a value more than half the columns agree
    /// on; when no value has such a majority (two columns that differ, say), every cell of the row.
    fn highlighted(&self, key: &str) -> Vec<bool> {
        let values: Vec<Option<&str>> = (0..self.columns.len()).map(|c| self.value(c, key)).collect();
        let mut counts: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for value in &values {
            *counts.entry(*value).or_default() += 1;
        }
        let majority = counts.into_iter().find(|(_, n)| 2 * n > values.len()).map(|(v, _)| v);
        // Without a majority the values cannot all be equal, so every cell is highlighted.
        values.iter().map(|v| majority.is_none_or(|m| *v != m)).collect()
    }

    fn row_differs(&self, key: &str) -> bool {
        let first = self.value(0, key);
        (1..self.columns.len()).any(|c| self.value(c, key) != first)
    }
}

/// Results of a kernel selftest suite in one column, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SelftestTotals {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub xfail: usize,
    /// Everything else: xpass, timeouts, crashes, planned cases that never reported.
    pub other: usize,
}

impl SelftestTotals {
    /// The totals of one column's facts: each test case of a binary (`PROBE.CASE`), or the binary's own
    /// result (`PROBE`) when it reports no cases (all of selftests/proc).
    pub fn of(facts: &Facts) -> SelftestTotals {
        let mut totals = SelftestTotals::default();
        let is_case = |key: &str| key.split_once('.').is_some_and(|(_, case)| !case.starts_with('('));
        for (key, value) in facts {
            if key.starts_with('(') {
                continue;
            }
            let counted = match key.split_once('.') {
                Some(_) => is_case(key),
                // A binary's own result counts only if none of its cases do.
                None => !facts
                    .range(format!("{key}.")..)
                    .take_while(|(k, _)| k.starts_with(&format!("{key}.")))
                    .any(|(k, _)| is_case(k)),
            };
            if !counted {
                continue;
            }
            match value.split(':').next().unwrap_or_default() {
                "ok" => totals.pass += 1,
                "not ok" => totals.fail += 1,
                "skip" => totals.skip += 1,
                "xfail" => totals.xfail += 1,
                _ => totals.other += 1,
            }
        }
        totals
    }

    /// The rows of the report's totals table.
    fn rows(&self) -> [(&'static str, usize); 5] {
        [("pass", self.pass), ("fail", self.fail), ("skip", self.skip), ("xfail", self.xfail), ("other", self.other)]
    }
}

/// Whether the suite's snapshots are of kernel selftests (their metadata names the selftests' build).
fn is_selftest_suite(m: &SuiteMatrix) -> bool {
    m.columns.iter().any(|c| c.environment.contains_key("selftests"))
}

/// Group snapshots into one matrix per suite (columns sorted by kernel, then variant). In a selftest
/// suite the cases whose result differs across columns come first.
pub fn matrices(snapshots: &[SnapshotFile]) -> Vec<SuiteMatrix<'_>> {
    let suites: BTreeSet<&str> = snapshots.iter().map(|s| s.suite.as_str()).collect();
    suites
        .into_iter()
        .map(|suite| {
            let mut columns: Vec<&SnapshotFile> = snapshots.iter().filter(|s| s.suite == suite).collect();
            columns.sort_by_key(|s| column_order(&s.column));
            let keys: BTreeSet<&str> = columns.iter().flat_map(|s| s.facts.keys().map(String::as_str)).collect();
            let mut matrix = SuiteMatrix { suite, columns, keys: keys.into_iter().collect() };
            if is_selftest_suite(&matrix) {
                // A stable sort: each group stays in key order.
                let mut keys = std::mem::take(&mut matrix.keys);
                keys.sort_by_key(|key| !matrix.row_differs(key));
                matrix.keys = keys;
            }
            matrix
        })
        .collect()
}

/// `6.1` < `6.1+force-never` < `6.12`: numeric kernel versions, the default variant first.
fn column_order(column: &str) -> (Vec<u64>, String, String) {
    let (kernel, variant) = column.split_once('+').unwrap_or((column, ""));
    let numbers = kernel.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    (numbers, kernel.to_string(), variant.to_string())
}

/// A curve in a suite's facts: `PROBE.TEST.curve.X.METRIC = Y` (X the touched count, Y in kB), drawn as
/// one line per column and metric.
#[derive(Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

pub fn curves<'a>(columns: impl IntoIterator<Item = (&'a str, &'a Facts)>) -> Vec<Curve> {
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (column, facts) in columns {
        for (key, value) in facts {
            let parts: Vec<&str> = key.split('.').collect();
            let Some(at) = parts.iter().rposition(|p| *p == "curve") else { continue };
            let (Some(x), Some(metric), Ok(y)) = (parts.get(at + 1), parts.get(at + 2), value.parse::<f64>()) else {
                continue;
            };
            let Ok(x) = x.parse::<f64>() else { continue };
            curves.entry(format!("{column} {metric}")).or_default().push((x, y));
        }
    }
    curves
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Curve { label, points }
        })
        .collect()
}

const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// A standalone SVG file of `curves`.
pub fn svg_file(curves: &[Curve], x_label: &str, y_label: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", plot(curves, x_label, y_label).into_string())
}

/// An SVG line plot of `curves` (x: touched regions, y: kB).
pub fn plot(curves: &[Curve], x_label: &str, y_label: &str) -> Markup {
    let (width, height, margin) = (720.0, 360.0, 60.0);
    let max_x = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).fold(1.0, f64::max);
    let max_y = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).fold(1.0, f64::max);
    let sx = |x: f64| margin + x / max_x * (width - 2.0 * margin);
    let sy = |y: f64| height - margin - y / max_y * (height - 2.0 * margin);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height + 20.0 * curves.len() as f64)
            viewBox=(format!("0 0 {width} {}", height + 20.0 * curves.len() as f64)) {
            rect x="0" y="0" width="100%" height="100%" fill="white" {}
            line x1=(margin) y1=(height - margin) x2=(width - margin) y2=(height - margin) stroke="black" {}
            line x1=(margin) y1=(margin) x2=(margin) y2=(height - margin) stroke="black" {}
            text x=(width / 2.0) y=(height - 20.0) text-anchor="middle" font-size="13" { (x_label) }
            text x="14" y=(height / 2.0) text-anchor="middle" font-size="13"
                transform=(format!("rotate(-90 14 {})", height / 2.0)) { (y_label) }
            text x=(margin) y=(height - margin + 16.0) text-anchor="middle" font-size="11" { "0" }
            text x=(width - margin) y=(height - margin + 16.0) text-anchor="middle" font-size="11" { (max_x) }
            text x=(margin - 6.0) y=(margin + 4.0) text-anchor="end" font-size="11" { (max_y) }
            @for (i, curve) in curves.iter().enumerate() {
                @let color = PALETTE[i % PALETTE.len()];
                // Curves often coincide across kernels; dashes keep a second metric visible on top.
                @let dash = if i % 2 == 1 { "6 4" } else { "none" };
                polyline fill="none" stroke=(color) stroke-width="2" stroke-dasharray=(dash)
                    points=(curve.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect::<Vec<_>>().join(" ")) {}
                rect x=(margin) y=(height + 20.0 * i as f64 - 10.0) width="14" height="4" fill=(color) {}
                text x=(margin + 20.0) y=(height + 20.0 * i as f64 - 4.0) font-size="12" { (curve.label) }
            }
        }
    }
}

/// The environment lines shown per column.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("package", "package"),
    ("package_version", "version"),
    ("release", "release"),
    ("config_sha256", "config SHA-256"),
    ("cmdline", "command line"),
    ("memory_mib", "memory (MiB)"),
    ("qemu", "QEMU"),
    ("accel", "accelerator"),
    ("cpu_model", "CPU model"),
];

/// The HTML page. `snapshot_links` is the path from the page's directory to the snapshots directory.
pub fn html(snapshots: &[SnapshotFile], snapshot_links: &Path) -> String {
    let matrices = matrices(snapshots);
    let (axis, histories) = crate::history::compute(snapshots, &[]);
    let history_suites: BTreeSet<&str> = histories.iter().map(|h| h.suite.as_str()).collect();
    let link = |s: &SnapshotFile| snapshot_links.join(s.path.file_name().unwrap_or_default()).display().to_string();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "ksnap: kernel behaviour matrix" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "ksnap: kernel behaviour matrix" }
                p.note { "From the committed snapshots. Each cell is what a probe observed on that kernel; "
                    "cells that differ from the rest of their row are highlighted. Column headers link to the snapshot file." }
                nav { "Suites: " @for m in &matrices { a href=(format!("#suite-{}", m.suite)) { (m.suite) } " " } }
                section id="history" {
                    h2 { "Since which kernel" }
                    p.note { "Along the kernel versions of the default variant (" (axis.join(" → ")) "): each fact whose value changes, and the version where each value appears." }
                    @for suite in &history_suites {
                        @let changes: Vec<&crate::history::FactHistory> = histories.iter().filter(|h| h.suite == *suite).collect();
                        details {
                            summary { code { (suite) } ": " (changes.len()) " facts change" }
                            ul { @for h in &changes { li { code { (h.fact) } ": " (h.sentence()) } } }
                        }
                    }
                }
                @for m in &matrices {
                    section id=(format!("suite-{}", m.suite)) {
                        h2 { "Suite " code { (m.suite) } }
                        @let differing = m.keys.iter().filter(|k| m.row_differs(k)).count();
                        p.note { (m.keys.len()) " facts, " (differing) " differ across columns." }
                        @if is_selftest_suite(m) {
                            h3 { "Selftest results" }
                            p.note { "Per column: test cases (or, for a binary that reports none, the binary) by result. "
                                "The cases that differ across columns are listed first in the table below." }
                            table.env {
                                tr { th {} @for c in &m.columns { th { (c.column) } } }
                                @let totals: Vec<SelftestTotals> = m.columns.iter().map(|c| SelftestTotals::of(&c.facts)).collect();
                                @for (row, (label, _)) in SelftestTotals::default().rows().iter().enumerate() {
                                    tr { th { (label) } @for t in &totals { td { (t.rows()[row].1) } } }
                                }
                            }
                        }
                        table.matrix {
                            thead {
                                tr {
                                    th { "fact" }
                                    @for c in &m.columns { th { a href=(link(c)) title="snapshot file" { (c.column) } } }
                                }
                            }
                            tbody {
                                @for (row, key) in m.keys.iter().enumerate() {
                                    @let highlighted = m.highlighted(key);
                                    @let anchor = format!("{}-{row}", m.suite);
                                    tr id=(anchor) class=[m.row_differs(key).then_some("differs")] {
                                        th { a href=(format!("#{anchor}")) { (key) } }
                                        @for (i, c) in m.columns.iter().enumerate() {
                                            @let value = m.value(i, key);
                                            td class=[highlighted[i].then_some("diff")] title=(c.column) {
                                                (value.unwrap_or("—"))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @let curves = curves(m.columns.iter().map(|c| (c.column.as_str(), &c.facts)));
                        @if !curves.is_empty() {
                            h3 { "Curves" }
                            (plot(&curves, "touched regions", "kB"))
                        }
                        h3 { "Environment" }
                        table.env {
                            tr { th {} @for c in &m.columns { th { (c.column) } } }
                            @for (key, label) in ENVIRONMENT {
                                tr { th { (label) } @for c in &m.columns { td { (c.environment.get(*key).map(String::as_str).unwrap_or("—")) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.note { color: #555; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; font-size: 13px; }
thead th { background: #f0f0f0; position: sticky; top: 0; }
table.matrix tbody th { font-family: ui-monospace, monospace; font-weight: normal; white-space: nowrap; }
table.matrix td { font-family: ui-monospace, monospace; max-width: 28em; overflow-wrap: anywhere; }
tr.differs th { border-left: 4px solid #e0a000; }
td.diff { background: #ffe9a8; font-weight: bold; }
th a { color: inherit; text-decoration: none; } thead th a { color: #0645ad; text-decoration: underline; }
";

/// The same matrix as Markdown (for a CI job summary): one table per suite, rows that differ marked ≠.
pub fn markdown(snapshots: &[SnapshotFile]) -> String {
    let mut out = String::from("# ksnap: kernel behaviour matrix\n\n");
    let (axis, histories) = crate::history::compute(snapshots, &[]);
    let _ = write!(out, "## Since which kernel\n\nAlong {}, the facts that change:\n\n", axis.join(" → "));
    let suites: BTreeSet<&str> = histories.iter().map(|h| h.suite.as_str()).collect();
    for suite in suites {
        let changes: Vec<_> = histories.iter().filter(|h| h.suite == suite).collect();
        let _ = write!(out, "<details><summary>{} ({} facts)</summary>\n\n", md(suite), changes.len());
        for h in changes {
            let _ = writeln!(out, "- `{}`: {}", md(&h.fact), md(&h.sentence()));
        }
        out.push_str("\n</details>\n\n");
    }
    for m in matrices(snapshots) {
        let _ = write!(out, "## {}\n\n", m.suite);
        if is_selftest_suite(&m) {
            out.push_str("Selftest results per column (pass / fail / skip / xfail / other):\n\n|");
            for c in &m.columns {
                let _ = write!(out, " {} |", md(&c.column));
            }
            let _ = write!(out, "\n|{}\n|", "---|".repeat(m.columns.len()));
            for c in &m.columns {
                let t = SelftestTotals::of(&c.facts);
                let _ = write!(out, " {} / {} / {} / {} / {} |", t.pass, t.fail, t.skip, t.xfail, t.other);
            }
            out.push_str("\n\n");
        }
        out.push_str("|  | fact |");
        for c in &m.columns {
            let _ = write!(out, " {} |", md(&c.column));
        }
        let _ = write!(out, "\n|---|---|{}\n", "---|".repeat(m.columns.len()));
        for key in &m.keys {
            let _ = write!(out, "| {} | `{}` |", if m.row_differs(key) { "≠" } else { "" }, md(key));
            for i in 0..m.columns.len() {
                let _ = write!(out, " {} |", md(m.value(i, key).unwrap_or("—")));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// `to` relative to directory `from` (both absolute), for links that survive moving the checkout.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to_parts[common..] {
        path.push(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(suite: &str, column: &str, facts: &[(&str, &str)]) -> SnapshotFile {
        SnapshotFile {
            path: PathBuf::from(format!("/repo/snapshots/{suite}@{column}.snap")),
            suite: suite.into(),
            column: column.into(),
            environment: [("release".to_string(), format!("r-{column}"))].into_iter().collect(),
            facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn selftest_suites_count_results_and_put_differing_cases_first() {
        let mut old = snapshot(
            "kselftest_mm",
            "5.10",
            &[
                ("(config).CONFIG_KSM", "y"),
                ("mkdirty", "not ok"),
                ("mkdirty.a_case", "ok"),
                ("mkdirty.b_case", "not ok"),
                ("mkdirty.(tap)", "a problem"),
                ("mseal_test", "skip: mseal not supported"),
                ("proc-pid-vm", "timeout"),
            ],
        );
        old.environment.insert("selftests".into(), "linux-source-7.2 7.2.13-1, gcc 12".into());
        let totals = SelftestTotals::of(&old.facts);
        // The binary results of mkdirty (it has cases), the config and the parse note are not counted.
        assert_eq!(totals, SelftestTotals { pass: 1, fail: 1, skip: 1, xfail: 0, other: 1 });
        let mut new = old.clone();
        new.column = "6.12".into();
        new.facts.insert("mkdirty.b_case".into(), "ok".into());
        new.facts.insert("mkdirty".into(), "ok".into());
        let snaps = vec![new, old];
        let m = &matrices(&snaps)[0];
        assert_eq!(m.keys[..2], ["mkdirty", "mkdirty.b_case"], "{:?}", m.keys);
        assert!(html(&snaps, Path::new("s")).contains("Selftest results"));
        assert!(markdown(&snaps).contains("| 1 / 1 / 1 / 0 / 1 |"), "{}", markdown(&snaps));
    }

    #[test]
    fn columns_sort_by_kernel_version_then_variant() {
        let snaps = vec![
            snapshot("s", "6.12", &[]),
            snapshot("s", "6.1+force-never", &[]),
            snapshot("s", "6.1", &[]),
            snapshot("s", "6.12+force-never", &[]),
        ];
        let order: Vec<&str> = matrices(&snaps)[0].columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(order, ["6.1", "6.1+force-never", "6.12", "6.12+force-never"]);
    }

    #[test]
    fn html_escapes_guest_values_and_marks_differences() {
        let snaps = vec![
            snapshot("s", "6.1", &[("p.t.k", "<script>alert(1)</script>"), ("p.t.same", "1")]),
            snapshot("s", "6.12", &[("p.t.k", "fine"), ("p.t.same", "1")]),
            snapshot("s", "6.13", &[("p.t.k", "fine"), ("p.t.same", "1")]),
        ];
        let page = html(&snaps, Path::new("../../snapshots"));
        assert!(!page.contains("<script>alert"), "unescaped guest value");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(page.matches("class=\"diff\"").count(), 1, "only the odd cell out is highlighted");
        let two = html(&snaps[..2], Path::new("s"));
        assert_eq!(two.matches("class=\"diff\"").count(), 2, "with no majority, both cells are");
        assert!(page.contains("href=\"../../snapshots/s@6.1.snap\""));
        // Self-contained: no scripts, stylesheets or images from anywhere.
        for external in ["<script", "<link", "src="] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }

    #[test]
    fn curves_become_an_svg_plot() {
        let snaps = [snapshot(
            "dp",
            "6.1",
            &[("dp.curve.curve.0000.vmpte_kb", "0"), ("dp.curve.curve.0256.vmpte_kb", "1024"), ("dp.curve.x", "ok")],
        )];
        let found = curves(snaps.iter().map(|s| (s.column.as_str(), &s.facts)));
        assert_eq!(found, vec![Curve { label: "6.1 vmpte_kb".into(), points: vec![(0.0, 0.0), (256.0, 1024.0)] }]);
        let svg = plot(&found, "touched", "kB").into_string();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn markdown_marks_rows_that_differ() {
        let snaps = vec![snapshot("s", "a", &[("k", "1"), ("j", "x")]), snapshot("s", "b", &[("k", "2"), ("j", "x")])];
        let text = markdown(&snaps);
        assert!(text.contains("| ≠ | `k` | 1 | 2 |"), "{text}");
        assert!(text.contains("|  | `j` | x | x |"), "{text}");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/r/target/ksnap/report"), Path::new("/r/snapshots")),
            PathBuf::from("../../../snapshots")
        );
        assert_eq!(relative_path(Path::new("/r"), Path::new("/r/snapshots")), PathBuf::from("snapshots"));
    }
}
