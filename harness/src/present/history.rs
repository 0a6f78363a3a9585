//! How the kernels differ, as history, in a few screens: per suite, each group of facts with the same
//! [`History`] on one line, `NAME (N cases): SENTENCE`, wrapped to the width (never cut: a value is never
//! cut away). `ksnap history` prints it from the committed snapshots, `ksnap run` from what ran.
//!
//! Invariant: with [`Fold::Screen`], a suite longer than [`SCREEN_LINES`] is told as its counts per
//! kernel and its largest groups, and the output names where the rest is.

use std::fmt::Write;

use crate::facts::history::{groups, Axis, Column, Group, History, DEFAULT_VARIANT};
use crate::facts::snapshot::read::SnapshotFile;
use crate::present::text::hanging;

/// Lines a suite may take before [`Fold::Screen`] summarises it.
pub const SCREEN_LINES: usize = 30;
/// Groups a summarised suite shows.
const LARGEST_GROUPS: usize = 6;
/// How long a group's name may list its facts' names (`p.{a,b}.write`) in a summary (`…` stands for a
/// longer list).
const LISTED_IN_SUMMARY: usize = 48;
/// The same in a whole list or on a page.
pub const LISTED_IN_WHOLE: usize = 400;

/// One suite's facts with their histories.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteHistory {
    pub suite: String,
    pub axis: Axis,
    /// The variants the suite ran under, the default first.
    pub variants: Vec<String>,
    pub groups: Vec<Group>,
}

impl SuiteHistory {
    /// The histories of a suite's columns: of the facts that change (every fact with `all`).
    pub fn of(suite: &str, columns: &[Column], all: bool) -> SuiteHistory {
        let (axis, groups) = groups(suite, columns, all);
        let mut variants: Vec<String> = columns.iter().map(|c| c.variant.to_string()).collect();
        variants.sort_by(|a, b| (a != DEFAULT_VARIANT, a).cmp(&(b != DEFAULT_VARIANT, b)));
        variants.dedup();
        SuiteHistory { suite: suite.to_string(), axis, variants, groups }
    }

    /// How many facts the groups hold.
    pub fn facts(&self) -> usize {
        self.groups.iter().map(|g| g.facts.len()).sum()
    }
}

/// Per suite, from the committed snapshots (of `suites`, or every suite when empty).
pub fn of_snapshots(snapshots: &[SnapshotFile], suites: &[String]) -> Vec<SuiteHistory> {
    let mut names: Vec<&str> = snapshots.iter().map(|s| s.suite.as_str()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|suite| suites.is_empty() || suites.iter().any(|s| s == suite))
        .map(|suite| {
            let columns: Vec<Column> = snapshots
                .iter()
                .filter(|s| s.suite == suite)
                .map(|s| {
                    let (kernel, variant) = s.column.split_once('+').unwrap_or((&s.column, DEFAULT_VARIANT));
                    Column { kernel, variant, facts: &s.facts }
                })
                .collect();
            SuiteHistory::of(suite, &columns, false)
        })
        .collect()
}

/// How much of a long suite is printed.
#[derive(Clone, Copy)]
pub enum Fold<'a> {
    /// Every group.
    Whole,
    /// A suite over [`SCREEN_LINES`] as its counts and largest groups, ending with `more`: where the rest
    /// is (`ksnap history --suite S`), given the suite.
    Screen { more: &'a dyn Fn(&str) -> String },
}

/// The histories as text for a terminal `width` wide: a header naming the axis, then per suite its groups.
pub fn text(histories: &[SuiteHistory], fold: Fold, width: usize) -> String {
    let mut out = header(histories, width);
    for suite in histories.iter().filter(|s| !s.groups.is_empty()) {
        out.push('\n');
        let whole = suite_text(suite, width);
        match fold {
            Fold::Screen { more } if whole.lines().count() > SCREEN_LINES => out.push_str(&summary(suite, more, width)),
            _ => out.push_str(&whole),
        }
    }
    if histories.iter().all(|s| s.groups.is_empty()) {
        out.push_str("no fact differs between these kernels and variants\n");
    }
    out
}

/// `kernel versions: 5.10 → 6.1 → …`, the kernels off the axis and how they are told.
fn header(histories: &[SuiteHistory], width: usize) -> String {
    let axis =
        Axis::of(histories.iter().flat_map(|s| s.axis.versions.iter().chain(&s.axis.others)).map(String::as_str));
    let mut line = format!("kernel versions: {}", axis.versions.join(" → "));
    if !axis.others.is_empty() {
        let _ = write!(
            line,
            "; told where they differ from the version they are built from: {} (K*: K under every variant it ran)",
            axis.others.join(", ")
        );
    }
    hanging(&line, width)
}

/// `suite NAME (variants …)` and a line per group.
fn suite_text(suite: &SuiteHistory, width: usize) -> String {
    let mut out = hanging(&suite_title(suite), width);
    for group in &suite.groups {
        out.push_str(&group_line(group, LISTED_IN_WHOLE, width));
    }
    out
}

fn suite_title(suite: &SuiteHistory) -> String {
    match suite.variants.as_slice() {
        [_] => format!("suite {}", suite.suite),
        variants => format!("suite {} (variants {})", suite.suite, variants.join(", ")),
    }
}

/// `NAME (N cases): SENTENCE`, wrapped.
fn group_line(group: &Group, max_listed: usize, width: usize) -> String {
    let cases = match group.facts.len() {
        1 => String::new(),
        n => format!(" ({n} cases)"),
    };
    hanging(&format!("{}{cases}: {}", group.name(max_listed), group.history.sentence()), width)
}

/// A suite too long for the screen: how many facts change where, and its largest groups.
fn summary(suite: &SuiteHistory, more: &dyn Fn(&str) -> String, width: usize) -> String {
    let mut out = hanging(
        &format!("{}: {} facts differ, in {} groups", suite_title(suite), suite.facts(), suite.groups.len()),
        width,
    );
    let counts: Vec<String> = changes_per_kernel(suite).into_iter().map(|(at, n)| format!("{at} {n}")).collect();
    out.push_str(&hanging(&format!("  facts that change, per kernel: {}", counts.join(", ")), width));
    let mut largest: Vec<&Group> = suite.groups.iter().collect();
    largest.sort_by_key(|g| std::cmp::Reverse(g.facts.len()));
    largest.truncate(LARGEST_GROUPS);
    out.push_str(&hanging(&format!("  the {} largest groups:", largest.len()), width));
    for group in largest {
        out.push_str(&hanging(&format!("  {}", group_line(group, LISTED_IN_SUMMARY, usize::MAX).trim_end()), width));
    }
    out.push_str(&hanging(&format!("  {} lists all {}", more(&suite.suite), suite.groups.len()), width));
    out
}

/// Per kernel, how many facts have another value there: along the axis than on the version before (`6.1
/// (from 5.10) 120`), off it than on its base, and per variant than under the default.
fn changes_per_kernel(suite: &SuiteHistory) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut count = |at: String, n: usize| match counts.iter_mut().find(|(a, _)| *a == at) {
        Some((_, total)) => *total += n,
        None => counts.push((at, n)),
    };
    for pair in suite.axis.versions.windows(2) {
        let n: usize = suite
            .groups
            .iter()
            .filter(|g| changes_between(&g.history, &pair[0], &pair[1]))
            .map(|g| g.facts.len())
            .sum();
        count(format!("{} (from {})", pair[1], pair[0]), n);
    }
    for group in &suite.groups {
        // Each kernel and variant counts a fact once, however many of its columns tell it.
        let mut places: Vec<String> = Vec::new();
        for exception in &group.history.others {
            for column in &exception.columns {
                places.push(column.trim_end_matches('*').split('+').next().unwrap_or(column).to_string());
            }
        }
        for track in &group.history.variants {
            places.extend(track.variants.iter().map(|variant| format!("+{variant}")));
        }
        places.sort();
        places.dedup();
        for place in places {
            count(place, group.facts.len());
        }
    }
    counts
}

/// Whether the main track's value changes from version `a` to version `b`.
fn changes_between(history: &History, a: &str, b: &str) -> bool {
    history.main.runs.windows(2).any(|w| w[0].last == a && w[1].first == b)
}

/// The same as Markdown: per suite a list of groups.
pub fn markdown(histories: &[SuiteHistory]) -> String {
    let md = crate::present::text::md;
    let mut out = String::from("# How the kernels differ\n");
    for suite in histories.iter().filter(|s| !s.groups.is_empty()) {
        let _ = write!(out, "\n## {}\n\n", md(&suite_title(suite)));
        for group in &suite.groups {
            let cases = if group.facts.len() > 1 { format!(" ({} cases)", group.facts.len()) } else { String::new() };
            let _ = writeln!(out, "- `{}`{cases}: {}", md(&group.name(LISTED_IN_WHOLE)), md(&group.history.sentence()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn snapshot(suite: &str, column: &str, facts: &[(&str, &str)]) -> SnapshotFile {
        SnapshotFile {
            path: PathBuf::from(format!("/s/{suite}@{column}.snap")),
            suite: suite.into(),
            column: column.into(),
            environment: Default::default(),
            facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn changes_are_found_in_version_order_and_told_as_sentences() {
        let snapshots = vec![
            snapshot("p", "6.12", &[("p.mseal", "ok"), ("p.same", "1"), ("p.back", "a")]),
            snapshot("p", "5.10", &[("p.mseal", "ENOSYS"), ("p.same", "1"), ("p.back", "a")]),
            snapshot("p", "7.2", &[("p.mseal", "ok"), ("p.same", "1"), ("p.back", "a"), ("p.new", "y")]),
            snapshot("p", "6.1", &[("p.mseal", "ENOSYS"), ("p.same", "1"), ("p.back", "b")]),
            snapshot("p", "6.12+force-never", &[("p.mseal", "ok"), ("p.same", "2"), ("p.back", "a")]),
            snapshot("p", "6.12-minimal", &[("p.mseal", "EPERM"), ("p.same", "1"), ("p.back", "a")]),
            snapshot("q", "6.1", &[("q.x", "1")]),
        ];
        let histories = of_snapshots(&snapshots, &[]);
        assert_eq!(histories[0].axis.versions, ["5.10", "6.1", "6.12", "7.2"]);
        let text = text(&histories, Fold::Whole, 100);
        assert_eq!(
            text,
            "kernel versions: 5.10 → 6.1 → 6.12 → 7.2; told where they differ from the version they are built\n    \
             from: 6.12-minimal (K*: K under every variant it ran)\n\
             \nsuite p (variants default, force-never)\n\
             p.back: a up to 5.10, b in 6.1, a from 6.12\n\
             p.mseal: ENOSYS up to 6.1, ok from 6.12; 6.12-minimal: EPERM\n\
             p.new: - up to 6.12, y from 7.2\n\
             p.same: 1; force-never: 2\n"
        );
        assert!(markdown(&histories).contains("- `p.mseal`: ENOSYS up to 6.1, ok from 6.12; 6.12-minimal: EPERM\n"));
        assert!(of_snapshots(&snapshots, &["q".to_string()])[0].groups.is_empty());
    }

    #[test]
    fn a_long_suite_is_summarised_and_names_the_command_for_the_rest() {
        let mut old = Vec::new();
        let mut new = Vec::new();
        for i in 0..(SCREEN_LINES + 5) {
            old.push((format!("t{i}.case"), "skip".to_string()));
            new.push((format!("t{i}.case"), if i % 2 == 0 { "ok" } else { "fail" }.to_string()));
        }
        fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
            v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
        }
        let snapshots = vec![snapshot("k", "6.1", &pairs(&old)), snapshot("k", "6.12", &pairs(&new))];
        let histories = of_snapshots(&snapshots, &[]);
        let text = text(&histories, Fold::Screen { more: &|s| format!("`ksnap history --suite {s}`") }, 100);
        assert!(text.contains("suite k: 35 facts differ, in 35 groups\n"), "{text}");
        assert!(text.contains("  facts that change, per kernel: 6.12 (from 6.1) 35\n"), "{text}");
        assert!(text.ends_with("  `ksnap history --suite k` lists all 35\n"), "{text}");
        assert!(text.lines().count() < 15, "{text}");
    }
}
