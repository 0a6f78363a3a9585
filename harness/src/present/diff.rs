//! `ksnap diff A B`: which observed facts differ between two columns of the matrix (`6.1` vs `6.12`,
//! `6.12` vs `6.12+force-never`), suite by suite.

use std::fmt::Write;

use serde::Serialize;

use crate::facts::column::Column;
use crate::facts::Facts;
use crate::present::text::{md, shorten, two_sides};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub suites: Vec<SuiteDiff>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SuiteDiff {
    pub suite: String,
    /// `Some("a")`/`Some("b")` when only that side has the suite at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_on: Option<String>,
    /// (fact, value on A, value on B) where both have the fact and the values differ.
    pub changed: Vec<(String, String, String)>,
    pub only_a: Vec<(String, String)>,
    pub only_b: Vec<(String, String)>,
    /// Facts both sides agree on.
    pub same: usize,
}

impl SuiteDiff {
    fn differs(&self) -> bool {
        self.only_on.is_some() || !self.changed.is_empty() || !self.only_a.is_empty() || !self.only_b.is_empty()
    }
}

/// Compare two columns.
pub fn compare(a_name: &str, a: &Column, b_name: &str, b: &Column) -> Diff {
    let mut suites: Vec<&String> = a.keys().chain(b.keys()).collect();
    suites.sort();
    suites.dedup();
    let suites = suites
        .into_iter()
        .map(|suite| {
            let empty = Facts::new();
            let (fa, fb) = (a.get(suite).unwrap_or(&empty), b.get(suite).unwrap_or(&empty));
            let only_on = match (a.contains_key(suite), b.contains_key(suite)) {
                (true, false) => Some(a_name.to_string()),
                (false, true) => Some(b_name.to_string()),
                _ => None,
            };
            let mut diff =
                SuiteDiff { suite: suite.clone(), only_on, changed: vec![], only_a: vec![], only_b: vec![], same: 0 };
            if diff.only_on.is_none() {
                for (key, va) in fa {
                    match fb.get(key) {
                        Some(vb) if vb == va => diff.same += 1,
                        Some(vb) => diff.changed.push((key.clone(), va.clone(), vb.clone())),
                        None => diff.only_a.push((key.clone(), va.clone())),
                    }
                }
                diff.only_b =
                    fb.iter().filter(|(k, _)| !fa.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            }
            diff
        })
        .collect();
    Diff { a: a_name.to_string(), b: b_name.to_string(), suites }
}

impl Diff {
    /// Whether anything differs (the exit status of `ksnap diff` says so, like diff(1)).
    pub fn differs(&self) -> bool {
        self.suites.iter().any(SuiteDiff::differs)
    }

    /// The differing facts of each suite, fitted to `width` characters: a table when it fits, else one
    /// block per fact (`  A: value` / `  B: value`). Values are cut with a marker, never wrapped.
    pub fn to_text(&self, width: usize) -> String {
        let mut out = String::new();
        for suite in &self.suites {
            if let Some(side) = &suite.only_on {
                let _ = writeln!(out, "{}\n", shorten(&format!("suite {}: only on {side}", suite.suite), width));
                continue;
            }
            if !suite.differs() {
                let _ = writeln!(out, "suite {}: same ({} facts)\n", suite.suite, suite.same);
                continue;
            }
            let absent = || "(absent)".to_string();
            let facts: Vec<(String, String, String)> = (suite.changed.iter().cloned())
                .chain(suite.only_a.iter().map(|(k, a)| (k.clone(), a.clone(), absent())))
                .chain(suite.only_b.iter().map(|(k, b)| (k.clone(), absent(), b.clone())))
                .collect();
            out.push_str(&two_sides(&format!("suite {}", suite.suite), &self.a, &self.b, &facts, width));
            let _ = writeln!(out, "({} facts the same)\n", suite.same);
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("## ksnap diff: `{}` vs `{}`\n\n", self.a, self.b);
        for suite in &self.suites {
            let _ = write!(out, "### {}\n\n", suite.suite);
            if let Some(side) = &suite.only_on {
                let _ = write!(out, "Only on `{side}`.\n\n");
                continue;
            }
            if !suite.differs() {
                let _ = write!(out, "Same ({} facts).\n\n", suite.same);
                continue;
            }
            let _ = writeln!(out, "| fact | {} | {} |\n|---|---|---|", md(&self.a), md(&self.b));
            for (k, a, b) in &suite.changed {
                let _ = writeln!(out, "| `{}` | {} | {} |", md(k), md(a), md(b));
            }
            for (k, a) in &suite.only_a {
                let _ = writeln!(out, "| `{}` | {} | *(absent)* |", md(k), md(a));
            }
            for (k, b) in &suite.only_b {
                let _ = writeln!(out, "| `{}` | *(absent)* | {} |", md(k), md(b));
            }
            let _ = write!(out, "\n{} facts the same.\n\n", suite.same);
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a diff serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(suites: &[(&str, &[(&str, &str)])]) -> Column {
        suites
            .iter()
            .map(|(suite, facts)| {
                (suite.to_string(), facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
            })
            .collect()
    }

    #[test]
    fn finds_changed_and_one_sided_facts() {
        let a = column(&[("env", &[("x", "1"), ("y", "2"), ("gone", "g")]), ("old", &[("o", "1")])]);
        let b = column(&[("env", &[("x", "1"), ("y", "3"), ("new", "n")])]);
        let diff = compare("6.1", &a, "6.12", &b);
        assert!(diff.differs());
        let env = &diff.suites[0];
        assert_eq!(env.changed, vec![("y".into(), "2".into(), "3".into())]);
        assert_eq!(env.only_a, vec![("gone".into(), "g".into())]);
        assert_eq!(env.only_b, vec![("new".into(), "n".into())]);
        assert_eq!(env.same, 1);
        assert_eq!(diff.suites[1].only_on.as_deref(), Some("6.1"));
        let text = diff.to_text(100);
        assert!(text.contains("suite env  6.1       6.12\ny          2         3\n"), "{text}");
        assert!(text.contains("suite old: only on 6.1"), "{text}");
        // Too narrow for the table: a block per fact, every line within the width.
        let narrow = diff.to_text(20);
        assert!(narrow.contains("suite env\ny\n  6.1: 2\n  6.12: 3\ngone\n  6.1: g\n  6.12: (absent)\n"), "{narrow}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 20), "{narrow}");
        assert!(diff.to_json().contains("\"changed\""));
    }

    #[test]
    fn identical_columns_do_not_differ() {
        let a = column(&[("env", &[("x", "1")])]);
        assert!(!compare("a", &a, "b", &a).differs());
    }

    #[test]
    fn markdown_escapes_untrusted_values() {
        let a = column(&[("s", &[("k", "a|b<script>")])]);
        let b = column(&[("s", &[("k", "`x`\nnewline")])]);
        let markdown = compare("a", &a, "b", &b).to_markdown();
        assert!(markdown.contains("| `k` | a\\|b&lt;script&gt; | \\`x\\` newline |"), "{markdown}");
    }
}
