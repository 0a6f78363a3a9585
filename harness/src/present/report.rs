//! `ksnap report`: the whole matrix at a glance, from the committed snapshots — a self-contained HTML page
//! (no network, no external assets) or Markdown for a CI job summary.
//!
//! The page is built with maud, which escapes every interpolated value: facts come from guest output and
//! are untrusted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::facts::history::{fold_names, Axis, Column, DEFAULT_VARIANT};
use crate::facts::snapshot::read::SnapshotFile;
use crate::facts::Facts;
use crate::present::history::SuiteHistory;
use crate::present::text::md;

/// One suite's matrix: rows are facts, columns are kernel[+variant].
pub struct SuiteMatrix<'a> {
    pub suite: &'a str,
    pub columns: Vec<&'a SnapshotFile>,
    pub keys: Vec<&'a str>,
}

impl<'a> SuiteMatrix<'a> {
    fn value(&self, column: usize, key: &str) -> Option<&str> {
        self.columns[column].facts.get(key).map(String::as_str)
    }

    /// Column `i`'s kernel and variant: `6.12-minimal+thp-never` → (`6.12-minimal`, `thp-never`).
    fn kernel_and_variant(&self, i: usize) -> (&'a str, &'a str) {
        let column = self.columns[i].column.as_str();
        column.split_once('+').unwrap_or((column, DEFAULT_VARIANT))
    }

    /// For each column, the column its values are held against: on the axis, the nearest earlier kernel
    /// version under the same variant (`6.1+thp-never` for `6.12+thp-never`); off it (`6.12-minimal`), its
    /// base kernel under the same variant. `None` for the first kernel, or with nothing to hold against.
    fn previous_columns(&self) -> Vec<Option<usize>> {
        let axis = Axis::of((0..self.columns.len()).map(|i| self.kernel_and_variant(i).0));
        let find = |kernel: &str, variant: &str| {
            (0..self.columns.len()).find(|&i| self.kernel_and_variant(i) == (kernel, variant))
        };
        (0..self.columns.len())
            .map(|i| {
                let (kernel, variant) = self.kernel_and_variant(i);
                match axis.versions.iter().position(|v| v == kernel) {
                    Some(at) => axis.versions[..at].iter().rev().find_map(|earlier| find(earlier, variant)),
                    None => axis.base(kernel).and_then(|base| find(base, variant)),
                }
            })
            .collect()
    }

    /// Which cells of a row to highlight: where the value changes along the kernels, those whose value
    /// differs from their [`previous_columns`](Self::previous_columns) cell's. A change is marked once,
    /// where it happens, not on every column on one side of it.
    fn changed(&self, key: &str, previous: &[Option<usize>]) -> Vec<bool> {
        previous.iter().enumerate().map(|(i, p)| p.is_some_and(|p| self.value(p, key) != self.value(i, key))).collect()
    }

    fn row_differs(&self, key: &str) -> bool {
        let first = self.value(0, key);
        (1..self.columns.len()).any(|c| self.value(c, key) != first)
    }

    /// The facts shown in full (those that differ across columns; all of them for a single column) and
    /// those the same in every column, each in key order.
    fn differing_and_same(&self) -> (Vec<&'a str>, Vec<&'a str>) {
        if self.columns.len() < 2 {
            return (self.keys.clone(), Vec::new());
        }
        self.keys.iter().partition(|key| self.row_differs(key))
    }

    /// The rows of the table of facts that differ: the facts of one [`Group`](crate::facts::history::Group)
    /// (one probe, the same history) with the same value in every column share a row, in the order of
    /// their first fact.
    fn differing_rows(&self, differing: &[&'a str]) -> Vec<FactRow<'a>> {
        let columns: Vec<Column> = (0..self.columns.len())
            .map(|i| {
                let (kernel, variant) = self.kernel_and_variant(i);
                Column { kernel, variant, facts: &self.columns[i].facts }
            })
            .collect();
        let history = SuiteHistory::of(self.suite, &columns, false);
        let group_of: BTreeMap<&str, usize> = (history.groups.iter().enumerate())
            .flat_map(|(i, g)| g.facts.iter().map(move |f| (f.as_str(), i)))
            .collect();
        // A fact outside every group (a value `-` beside a missing one reads as no change) keeps a row of
        // its own; so does one whose values differ from its group's.
        let mut rows: Vec<FactRow> = Vec::new();
        let mut row_of: BTreeMap<RowIdentity, usize> = BTreeMap::new();
        for &key in differing {
            let values: Vec<Option<&str>> = (0..self.columns.len()).map(|i| self.value(i, key)).collect();
            let group = group_of.get(key).copied().ok_or(key);
            match row_of.get(&(group, values.clone())) {
                Some(&row) => rows[row].facts.push(key),
                None => {
                    row_of.insert((group, values), rows.len());
                    rows.push(FactRow { facts: vec![key] });
                }
            }
        }
        rows
    }
}

/// What facts sharing a row have in common: their group (or, outside every group, the one fact) and their
/// value in each column.
type RowIdentity<'a> = (Result<usize, &'a str>, Vec<Option<&'a str>>);

/// Facts with the same value in every column, shown as one row.
struct FactRow<'a> {
    facts: Vec<&'a str>,
}

impl FactRow<'_> {
    /// `cow.…_thp_{16..1024}_kb (196 cases)`, the one fact's name, at most about [`HTML_FACT_CHARS`].
    fn name(&self) -> String {
        let names: Vec<String> = self.facts.iter().map(|f| f.to_string()).collect();
        match self.facts.len() {
            1 => fact_name(self.facts[0]),
            n => format!("{} ({n} cases)", fact_name(&fold_names(&names, HTML_FACT_CHARS / 2))),
        }
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

/// Group snapshots into one matrix per suite (columns sorted by kernel, then variant).
pub fn matrices(snapshots: &[SnapshotFile]) -> Vec<SuiteMatrix<'_>> {
    let suites: BTreeSet<&str> = snapshots.iter().map(|s| s.suite.as_str()).collect();
    suites
        .into_iter()
        .map(|suite| {
            let mut columns: Vec<&SnapshotFile> = snapshots.iter().filter(|s| s.suite == suite).collect();
            columns.sort_by_key(|s| column_order(&s.column));
            let keys: BTreeSet<&str> = columns.iter().flat_map(|s| s.facts.keys().map(String::as_str)).collect();
            SuiteMatrix { suite, columns, keys: keys.into_iter().collect() }
        })
        .collect()
}

/// `6.1` < `6.1+force-never` < `6.12`: numeric kernel versions, the default variant first.
fn column_order(column: &str) -> (Vec<u64>, String, String) {
    let (kernel, variant) = column.split_once('+').unwrap_or((column, ""));
    let numbers = kernel.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    (numbers, kernel.to_string(), variant.to_string())
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

/// Longest value shown in a cell of the page; longer ones are cut with `…`, the whole value on hover.
const HTML_VALUE_CHARS: usize = 32;

/// A suite's columns as the header shows them: consecutive columns of one kernel, each with its variant.
fn kernel_groups<'a>(columns: &[&'a SnapshotFile]) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for column in columns {
        let (kernel, variant) = column.column.split_once('+').unwrap_or((&column.column, "default"));
        match groups.last_mut() {
            Some((k, variants)) if *k == kernel => variants.push(variant),
            _ => groups.push((kernel, vec![variant])),
        }
    }
    groups
}

/// The header of a table with a column per snapshot: a kernel row and, when some kernel has variants,
/// a variant row under it. `link` makes each column's name a link to its snapshot file.
fn column_header(m: &SuiteMatrix, first: &str, link: Option<&dyn Fn(&SnapshotFile) -> String>) -> Markup {
    let groups = kernel_groups(&m.columns);
    let variants = groups.iter().any(|(_, v)| v.len() > 1 || v[0] != "default");
    let mut index = 0;
    let mut cells: Vec<(&SnapshotFile, &str, bool)> = Vec::new();
    for (_, group) in &groups {
        for (i, variant) in group.iter().enumerate() {
            cells.push((m.columns[index], variant, i == 0));
            index += 1;
        }
    }
    let name = |c: &SnapshotFile, text: &str| match link {
        Some(link) => html! { a href=(link(c)) title=(format!("{}: snapshot file", c.column)) { (text) } },
        None => html! { (text) },
    };
    html! {
        thead {
            tr {
                th.corner rowspan=[variants.then_some(2)] { (first) }
                @for (i, (kernel, group)) in groups.iter().enumerate() {
                    @let c = cells.iter().filter(|c| c.2).nth(i).map(|c| c.0);
                    th.kernel colspan=[(group.len() > 1).then_some(group.len())] {
                        @if variants { (kernel) } @else if let Some(c) = c { (name(c, kernel)) }
                    }
                }
            }
            @if variants {
                tr { @for (c, variant, first) in &cells { th class=(if *first { "variant group" } else { "variant" }) { (name(c, variant)) } } }
            }
        }
    }
}

/// A value cell: shortened to [`HTML_VALUE_CHARS`] with the whole value (and its column) on hover.
fn value_cell(column: &str, value: Option<&str>, first_of_kernel: bool, highlighted: bool) -> Markup {
    let text = value.unwrap_or("—");
    let classes: Vec<&str> =
        [first_of_kernel.then_some("group"), highlighted.then_some("diff")].into_iter().flatten().collect();
    html! {
        td class=[(!classes.is_empty()).then(|| classes.join(" "))] title=(format!("{column}: {text}")) {
            (crate::present::text::shorten(text, HTML_VALUE_CHARS))
        }
    }
}

/// Longest fact name shown in a table's (sticky) first column.
const HTML_FACT_CHARS: usize = 60;

/// A fact's name for the first column, at most [`HTML_FACT_CHARS`]: a longer one loses its middle, since
/// both ends tell cases apart (`cow.basic_cow_after_fork_…_mremap_ed_thp_1024_kb`); the row's tooltip has it whole.
fn fact_name(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= HTML_FACT_CHARS {
        return key.to_string();
    }
    let head = HTML_FACT_CHARS / 3;
    let tail = HTML_FACT_CHARS - head - 1;
    format!("{}…{}", chars[..head].iter().collect::<String>(), chars[chars.len() - tail..].iter().collect::<String>())
}

/// For each column, whether it is the first of its kernel (a rule is drawn to its left).
fn group_starts(m: &SuiteMatrix) -> Vec<bool> {
    kernel_groups(&m.columns).iter().flat_map(|(_, v)| (0..v.len()).map(|i| i == 0)).collect()
}

/// The HTML page. `snapshot_links` is the path from the page's directory to the snapshots directory.
pub fn html(snapshots: &[SnapshotFile], snapshot_links: &Path) -> String {
    let matrices = matrices(snapshots);
    let link = |s: &SnapshotFile| snapshot_links.join(s.path.file_name().unwrap_or_default()).display().to_string();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "ksnap: kernel behaviour matrix" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "ksnap: kernel behaviour matrix" }
                p.note { "From the committed snapshots. Each cell is what a probe observed on that kernel; "
                    "a highlighted cell has another value than the kernel before it: the previous version under the same variant "
                    "(6.12+thp-never against 6.1+thp-never) or, for a kernel built from a version (6.12-minimal), that version under the same variant; "
                    "the first kernel is never highlighted. Facts with the same values in every column share a row (hover its name for them); "
                    "hover a cell for its whole value. Column headers link to the snapshot files." }
                nav { "Suites: " @for m in &matrices { a href=(format!("#suite-{}", m.suite)) { (m.suite) } " " } }
                (history_section(snapshots))
                @for m in &matrices { (suite_section(m, &link)) }
            }
        }
    };
    page.into_string()
}

/// How long a group's name in the page's history may list its facts' names (`p.{a,b}.write`); the names
/// are on hover.
const HTML_LISTED_CHARS: usize = 100;

/// Since which kernel: per suite, collapsed, each group of facts with the same history on a line.
fn history_section(snapshots: &[SnapshotFile]) -> Markup {
    let histories = crate::present::history::of_snapshots(snapshots, &[]);
    let axis = Axis::of(snapshots.iter().map(|s| s.column.split('+').next().unwrap_or_default()));
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    html! {
        section id="history" {
            h2 { "Since which kernel" }
            p.note { "Along the kernel versions (" (axis.versions.join(" → ")) ") under the default variant, then what other variants and the kernels built from a version ("
                (axis.others.join(", ")) ") do differently: each fact that differs, facts with the same history together (hover a name for them)." }
            @for suite in histories.iter().filter(|s| !s.groups.is_empty()) {
                details {
                    summary { code { (suite.suite) } ": " (plural(suite.facts(), "fact differs", "facts differ")) ", in " (plural(suite.groups.len(), "group", "groups")) }
                    ul.history { @for g in &suite.groups {
                        li {
                            code title=[(g.facts.len() > 1).then(|| g.facts.join("\n"))] { (g.name(HTML_LISTED_CHARS)) }
                            @if g.facts.len() > 1 { " (" (g.facts.len()) " cases)" } ": " (g.history.sentence())
                        }
                    } }
                }
            }
        }
    }
}

/// One suite: totals (selftest suites), the facts that differ, the identical ones collapsed, the curves,
/// the environment.
fn suite_section(m: &SuiteMatrix, link: &dyn Fn(&SnapshotFile) -> String) -> Markup {
    let (differing, same) = m.differing_and_same();
    let rows = m.differing_rows(&differing);
    let starts = group_starts(m);
    let curves = crate::present::plot::curves(m.columns.iter().map(|c| (c.column.as_str(), &c.facts)));
    html! {
        section id=(format!("suite-{}", m.suite)) {
            h2 { "Suite " code { (m.suite) } }
            p.note {
                @if m.columns.len() > 1 {
                    (m.keys.len()) " facts in " (m.columns.len()) " columns: " (differing.len()) " differ across columns (in " (rows.len()) " rows: facts with the same values share one), "
                    (same.len()) " are the same in every column (collapsed below)."
                } @else { (m.keys.len()) " facts, in one column." }
            }
            @if is_selftest_suite(m) { (selftest_totals(m, &starts)) }
            @if !rows.is_empty() { (differing_facts(m, &rows, &starts, link)) }
            @if !same.is_empty() { (same_facts(m, &same)) }
            @if !curves.is_empty() {
                h3 { "Curves" }
                div.plots { @for panel in crate::present::plot::panels(&curves) { (crate::present::plot::panel_svg(&panel, CURVE_X_LABEL)) } }
            }
            (environment(m, &starts))
        }
    }
}

/// A selftest suite's results per column, by kind. `starts`: [`group_starts`].
fn selftest_totals(m: &SuiteMatrix, starts: &[bool]) -> Markup {
    html! {
        h3 { "Selftest results" }
        p.note { "Per column: test cases (or, for a binary that reports none, the binary) by result." }
        @let totals: Vec<SelftestTotals> = m.columns.iter().map(|c| SelftestTotals::of(&c.facts)).collect();
        div.scroll {
            table {
                (column_header(m, "result", None))
                tbody {
                    @for (row, (label, _)) in SelftestTotals::default().rows().iter().enumerate() {
                        tr { th { (label) } @for (i, t) in totals.iter().enumerate() { td.num class=[starts[i].then_some("group")] { (t.rows()[row].1) } } }
                    }
                }
            }
        }
    }
}

/// The facts shown in full, facts with equal values in every column on one row (their names on hover),
/// each row with an anchor, the cells where a value changes along the kernels highlighted.
fn differing_facts(
    m: &SuiteMatrix,
    rows: &[FactRow],
    starts: &[bool],
    link: &dyn Fn(&SnapshotFile) -> String,
) -> Markup {
    let previous = m.previous_columns();
    html! {
        h3 { @if m.columns.len() > 1 { "Facts that differ" } @else { "Facts" } }
        div.scroll.tall {
            table.matrix {
                (column_header(m, "fact", Some(link)))
                tbody {
                    @for row in rows {
                        @let key = row.facts[0];
                        @let changed = m.changed(key, &previous);
                        @let anchor = format!("{}.{key}", m.suite);
                        tr id=(anchor) {
                            th title=(row.facts.join("\n")) { a href=(format!("#{anchor}")) { (row.name()) } }
                            @for (i, c) in m.columns.iter().enumerate() {
                                (value_cell(&c.column, m.value(i, key), starts[i], changed[i]))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The facts the same in every column, collapsed: a row each with its one value.
fn same_facts(m: &SuiteMatrix, same: &[&str]) -> Markup {
    html! {
        details {
            summary { (same_in_every_column(same.len())) }
            div.scroll.tall {
                table.matrix {
                    thead { tr { th.corner { "fact" } th { "value in every column" } } }
                    tbody {
                        @for key in same {
                            tr { th title=(key) { (fact_name(key)) } (value_cell("every column", m.value(0, key), false, false)) }
                        }
                    }
                }
            }
        }
    }
}

/// The [`ENVIRONMENT`] lines of each column.
fn environment(m: &SuiteMatrix, starts: &[bool]) -> Markup {
    html! {
        h3 { "Environment" }
        div.scroll {
            table {
                (column_header(m, "", None))
                tbody {
                    @for (key, label) in ENVIRONMENT {
                        tr {
                            th { (label) }
                            @for (i, c) in m.columns.iter().enumerate() {
                                (value_cell(&c.column, c.environment.get(*key).map(String::as_str), starts[i], false))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the x of a curve counts (`PROBE.TEST.curve.X.METRIC`): demand_paging's read touches, one per 2 MiB.
pub const CURVE_X_LABEL: &str = "read touches (one per 2 MiB)";

// Tables scroll inside their own box (`.scroll`), so the page never grows wider than the window; the
// header row and the fact column stay in view while it scrolls. Values never wrap: long ones are cut.
const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: 0.3em; }
.note { color: #555; }
ul.history { overflow-wrap: break-word; }
.scroll { overflow: auto; max-width: 100%; width: max-content; border: 1px solid #ccc; margin: 0.3em 0 1.2em; }
.scroll.tall { max-height: 75vh; }
table { border-collapse: separate; border-spacing: 0; }
th, td { border-right: 1px solid #e2e2e2; border-bottom: 1px solid #e2e2e2; padding: 2px 8px; text-align: left;
  vertical-align: top; font-size: 13px; white-space: nowrap; }
td { font-family: ui-monospace, monospace; } td.num { text-align: right; }
.group { border-left: 2px solid #999; }
thead { position: sticky; top: 0; z-index: 2; }
thead th { background: #f0f0f0; }
thead th.kernel { text-align: center; border-left: 2px solid #999; }
tbody th, th.corner { position: sticky; left: 0; z-index: 1; background: #fafafa; }
th.corner { z-index: 3; }
table.matrix tbody th { font-family: ui-monospace, monospace; font-weight: normal; }
td.diff { background: #ffe9a8; font-weight: bold; }
th a { color: inherit; text-decoration: none; } thead th a { color: #0645ad; text-decoration: underline; }
summary { cursor: pointer; margin: 0.3em 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots svg { border: 1px solid #ddd; }
";

/// `1 fact is the same in every column`, `N facts are …`.
fn same_in_every_column(n: usize) -> String {
    format!("{n} {} the same in every column", if n == 1 { "fact is" } else { "facts are" })
}

/// Where the Markdown summary says the whole page is.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    /// Published there (CI's artifact).
    Url(&'a str),
    /// Where `ksnap report` writes it, for a summary read where no URL is known.
    Written(&'a Path),
}

/// Groups of a suite's history the Markdown summary lists (the largest, when there are more); the page
/// has them all.
const MARKDOWN_GROUPS: usize = 10;
/// How long a group's name in the summary may list its facts' names (`p.{a,b}.write`).
const MARKDOWN_LISTED: usize = 48;
/// Longest history sentence in the summary, cut with `…`; the page has it whole.
const MARKDOWN_SENTENCE_CHARS: usize = 300;

/// The matrix summarised as Markdown for a CI job summary, which GitHub caps at 1 MiB: a link to the
/// whole page, then per suite its counts, the selftest totals per column and its history (the largest
/// groups). Invariant: its size grows with suites × (groups shown + columns), never with facts × columns.
pub fn markdown(snapshots: &[SnapshotFile], page: Page) -> String {
    let mut out = String::from("# ksnap: kernel behaviour matrix\n\n");
    let whole = "every fact in every column, the curves and the environment";
    let _ = match page {
        Page::Url(url) => writeln!(out, "A summary of [the whole matrix]({}): {whole}.\n", link_target(url)),
        Page::Written(path) => writeln!(
            out,
            "A summary of the whole matrix ({whole}): `ksnap report` writes it to `{}`; in CI, the run's \
             `ksnap-report` artifact.\n",
            md(&path.display().to_string())
        ),
    };
    let axis = Axis::of(snapshots.iter().map(|s| s.column.split('+').next().unwrap_or_default()));
    let _ = write!(out, "Kernel versions: {}", md(&axis.versions.join(" → ")));
    if !axis.others.is_empty() {
        let _ = write!(out, "; built from a version, told where they differ from it: {}", md(&axis.others.join(", ")));
    }
    out.push_str(".\n");
    let histories = crate::present::history::of_snapshots(snapshots, &[]);
    for m in matrices(snapshots) {
        let history = histories.iter().find(|h| h.suite == m.suite);
        out.push_str(&suite_markdown(&m, history));
    }
    out
}

/// A selftest suite's results per column, a row each.
fn selftest_totals_markdown(m: &SuiteMatrix) -> String {
    let mut out =
        String::from("| selftest results | pass | fail | skip | xfail | other |\n|---|---|---|---|---|---|\n");
    for c in &m.columns {
        let t = SelftestTotals::of(&c.facts);
        let (pass, fail, skip, xfail, other) = (t.pass, t.fail, t.skip, t.xfail, t.other);
        let _ = writeln!(out, "| {} | {pass} | {fail} | {skip} | {xfail} | {other} |", md(&c.column));
    }
    out.push('\n');
    out
}

/// A link's target as Markdown reads it whole: no space or parenthesis to end it early.
fn link_target(url: &str) -> String {
    url.replace(' ', "%20").replace('(', "%28").replace(')', "%29").replace('<', "%3C").replace('>', "%3E")
}

/// One suite in the summary: its counts, selftest totals per column, and its history.
fn suite_markdown(m: &SuiteMatrix, history: Option<&SuiteHistory>) -> String {
    let (differing, same) = m.differing_and_same();
    let mut out = format!("\n## {}\n\n", md(m.suite));
    let groups = history.map_or(&[][..], |h| h.groups.as_slice());
    let _ = writeln!(
        out,
        "{} facts in {} columns: {} differ, in {} groups of facts with the same history; {}.\n",
        m.keys.len(),
        m.columns.len(),
        differing.len(),
        groups.len(),
        same_in_every_column(same.len())
    );
    if is_selftest_suite(m) {
        out.push_str(&selftest_totals_markdown(m));
    }
    let mut shown: Vec<&crate::facts::history::Group> = groups.iter().collect();
    if shown.len() > MARKDOWN_GROUPS {
        shown.sort_by_key(|g| std::cmp::Reverse(g.facts.len()));
        shown.truncate(MARKDOWN_GROUPS);
        let _ = writeln!(out, "The {MARKDOWN_GROUPS} largest of {} groups:\n", groups.len());
    }
    for g in &shown {
        let cases = if g.facts.len() > 1 { format!(" ({} cases)", g.facts.len()) } else { String::new() };
        let sentence = crate::present::text::shorten(&g.history.sentence(), MARKDOWN_SENTENCE_CHARS);
        let _ = writeln!(out, "- `{}`{cases}: {}", md(&g.name(MARKDOWN_LISTED)), md(&sentence));
    }
    let rest: usize = groups.len() - shown.len();
    if rest > 0 {
        let facts: usize =
            groups.iter().map(|g| g.facts.len()).sum::<usize>() - shown.iter().map(|g| g.facts.len()).sum::<usize>();
        let _ = writeln!(out, "- and {rest} more groups ({facts} facts): on the page");
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
        let (differing, same) = m.differing_and_same();
        assert_eq!(differing, ["mkdirty", "mkdirty.b_case"]);
        assert_eq!(same.len(), 5);
        assert!(html(&snaps, Path::new("s")).contains("Selftest results"));
        let summary = markdown(&snaps, Page::Url("https://example.org/run/1"));
        assert!(summary.contains("| 5.10 | 1 | 1 | 1 | 0 | 1 |\n"), "{summary}");
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
    fn html_escapes_guest_values_and_marks_where_a_value_changes() {
        let snaps = vec![
            snapshot("s", "6.1", &[("p.t.k", "<script>alert(1)</script>"), ("p.t.same", "1")]),
            snapshot("s", "6.12", &[("p.t.k", "fine"), ("p.t.same", "1")]),
            snapshot("s", "6.13", &[("p.t.k", "fine"), ("p.t.same", "1")]),
        ];
        let page = html(&snaps, Path::new("../../snapshots"));
        assert!(!page.contains("<script>alert"), "unescaped guest value");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(page.matches("diff\" title=").count(), 1, "only the kernel where the value changes is highlighted");
        assert!(page.contains("class=\"group diff\" title=\"6.12: fine\""), "{page}");
        assert!(page.contains("href=\"../../snapshots/s@6.1.snap\""));
        // Self-contained: no scripts, stylesheets or images from anywhere.
        for external in ["<script", "<link", "src="] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }

    #[test]
    fn a_change_is_marked_once_per_variant_where_it_happens_not_on_the_old_majority() {
        // 12 of 18 columns are old kernels saying `never`: the majority, and yet not the news.
        let mut snaps = Vec::new();
        for kernel in ["4.19", "5.4", "5.10", "6.1", "6.12", "7.2"] {
            let value = if kernel == "6.12" || kernel == "7.2" { "always" } else { "never" };
            for suffix in ["", "+thp-always", "+thp-never"] {
                snaps.push(snapshot("s", &format!("{kernel}{suffix}"), &[("p.thp", value)]));
            }
        }
        snaps.push(snapshot("s", "6.12-minimal", &[("p.thp", "never")]));
        snaps.push(snapshot("s", "6.12-minimal+thp-never", &[("p.thp", "always")]));
        let m = &matrices(&snaps)[0];
        let changed = m.changed("p.thp", &m.previous_columns());
        let marked: Vec<&str> =
            (0..m.columns.len()).filter(|&i| changed[i]).map(|i| m.columns[i].column.as_str()).collect();
        assert_eq!(marked, ["6.12", "6.12+thp-always", "6.12+thp-never", "6.12-minimal"]);
        let page = html(&snaps, Path::new("s"));
        assert_eq!(page.matches("diff\" title=").count(), 4, "{page}");
    }

    #[test]
    fn facts_of_one_history_share_a_row_named_by_their_folded_names() {
        let snaps = vec![
            snapshot("s", "6.1", &[("cow.a_thp_16_kb", "ok"), ("cow.a_thp_64_kb", "ok"), ("cow.b", "x")]),
            snapshot("s", "6.12", &[("cow.a_thp_16_kb", "fail"), ("cow.a_thp_64_kb", "fail"), ("cow.b", "y")]),
        ];
        let page = html(&snaps, Path::new("s"));
        assert!(page.contains("<th title=\"cow.a_thp_16_kb\ncow.a_thp_64_kb\">"), "{page}");
        assert!(page.contains(">cow.a_thp_{16..64}_kb (2 cases)</a>"), "{page}");
        assert!(page.contains("3 differ across columns (in 2 rows"), "{page}");
    }

    #[test]
    fn markdown_summarises_each_suite_and_links_to_the_page() {
        let snaps = vec![
            snapshot("s", "6.1", &[("p.k", "1"), ("p.j", "x"), ("p.w", "<b>")]),
            snapshot("s", "6.12", &[("p.k", "2"), ("p.j", "x"), ("p.w", "ok")]),
        ];
        let text = markdown(&snaps, Page::Url("https://example.org/a (b)"));
        assert!(text.contains("[the whole matrix](https://example.org/a%20%28b%29)"), "{text}");
        assert!(text.contains("\n## s\n\n3 facts in 2 columns: 2 differ, in 2 groups"), "{text}");
        assert!(text.contains("1 fact is the same in every column"), "{text}");
        assert!(text.contains("- `p.w`: &lt;b&gt; up to 6.1, ok from 6.12\n"), "{text}");
        let local = markdown(&snaps, Page::Written(Path::new("target/ksnap/report/index.html")));
        assert!(local.contains("writes it to `target/ksnap/report/index.html`"), "{local}");
    }

    /// A matrix of `facts` facts, each with a history of its own, in `columns` columns.
    fn wide_matrix(facts: usize, columns: usize) -> Vec<SnapshotFile> {
        (0..columns)
            .map(|c| {
                let values: Vec<(String, String)> =
                    (0..facts).map(|f| (format!("p{f}.case"), format!("{}", (f + c) % 3))).collect();
                let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                snapshot("s", &format!("6.{c}"), &pairs)
            })
            .collect()
    }

    #[test]
    fn the_markdown_summary_grows_with_columns_not_with_facts_times_columns() {
        let size = |facts, columns| markdown(&wide_matrix(facts, columns), Page::Url("u")).len();
        let small = size(20, 4);
        assert!(size(200, 4) < small * 3 / 2, "{} vs {small}: more facts, the same groups shown", size(200, 4));
        assert!(size(200, 40) < small * 10, "{} vs {small}: not per fact × column", size(200, 40));
    }

    #[test]
    fn variants_are_grouped_under_their_kernel_and_identical_facts_collapsed() {
        let long = "x".repeat(HTML_VALUE_CHARS + 10);
        let snaps = vec![
            snapshot("s", "6.12+thp-never", &[("k", "2"), ("same", "1")]),
            snapshot("s", "6.1", &[("k", &long), ("same", "1")]),
            snapshot("s", "6.12", &[("k", "1"), ("same", "1")]),
            snapshot("s", "6.12-minimal", &[("k", "1"), ("same", "1")]),
        ];
        let m = &matrices(&snaps)[0];
        assert_eq!(
            kernel_groups(&m.columns),
            [("6.1", vec!["default"]), ("6.12", vec!["default", "thp-never"]), ("6.12-minimal", vec!["default"])]
        );
        assert_eq!(group_starts(m), [true, true, false, true]);
        let page = html(&snaps, Path::new("s"));
        assert!(page.contains("<th class=\"kernel\" colspan=\"2\">6.12</th>"), "{page}");
        assert!(page.contains("<th class=\"corner\" rowspan=\"2\">fact</th>"), "{page}");
        // One class attribute: a second one would be ignored, and with it the rule left of a kernel.
        assert!(page.contains("<th class=\"variant group\"><a href=\"s/s@6.12.snap\""), "{page}");
        // A long value is cut in the cell and whole on hover.
        let cut = format!("{}…", "x".repeat(HTML_VALUE_CHARS - 1));
        assert!(page.contains(&format!("title=\"6.1: {long}\">{cut}</td>")), "{page}");
        assert!(page.contains("<summary>1 fact is the same in every column</summary>"), "{page}");
        // Without variants, one header row.
        let plain = html(&snaps[1..3], Path::new("s"));
        assert!(!plain.contains("rowspan"), "{plain}");
    }

    #[test]
    fn long_fact_names_lose_their_middle() {
        let key = "cow.basic_cow_after_fork_with_mprotect_optimization_with_partially_mremap_ed_thp_1024_kb";
        let name = fact_name(key);
        assert_eq!(name.chars().count(), HTML_FACT_CHARS);
        assert!(
            name.starts_with("cow.basic_cow_after_") && name.ends_with("partially_mremap_ed_thp_1024_kb"),
            "{name}"
        );
        assert_eq!(fact_name("proc_mem.mseal.mseal"), "proc_mem.mseal.mseal");
        let page =
            html(&[snapshot("s", "6.1", &[(key, "ok")]), snapshot("s", "6.12", &[(key, "skip")])], Path::new("s"));
        assert!(page.contains(&format!("<th title=\"{key}\">")) && page.contains(&name), "{page}");
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
