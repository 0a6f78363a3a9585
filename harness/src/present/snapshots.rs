//! `ksnap run`'s answer against the committed snapshots: every cell matches, or which facts of which
//! cells do not (old → new), which cells have no snapshot yet, and how to review. Fitted to a terminal:
//! a few facts per cell and a few cells, the rest counted; values cut with a marker, never wrapped.

use std::fmt::Write;

use crate::facts::snapshot::compare::{Agreement, CellAnswer};
use crate::facts::FactChange;
use crate::present::text::{shorten, wrap, MAX_VALUE_CHARS};

/// Differing cells shown in full; the rest are counted.
const MAX_CELLS: usize = 8;
/// Differing facts shown per cell; the rest are counted.
const MAX_FACTS: usize = 4;
/// Written for a fact absent on one side.
const ABSENT: &str = "(absent)";

/// The answer: one line when every cell matches; else the counts, the differing cells with their
/// facts, the cells without a snapshot, and how to review. `failed` cells were not compared.
pub fn answer(answers: &[CellAnswer], failed: usize, dir: &str, width: usize) -> String {
    let differing: Vec<(&CellAnswer, &Vec<FactChange>)> = answers
        .iter()
        .filter_map(|a| match &a.agreement {
            Agreement::Differs(changes) => Some((a, changes)),
            _ => None,
        })
        .collect();
    let missing: Vec<&CellAnswer> = answers.iter().filter(|a| a.agreement == Agreement::NoSnapshot).collect();
    let matching = answers.len() - differing.len() - missing.len();
    let not_compared = match failed {
        0 => String::new(),
        _ => format!("; {} not compared", counted(failed, "failed cell", "failed cells")),
    };
    let mut out = String::new();
    if differing.is_empty() && missing.is_empty() {
        let all = match matching {
            1 => "the cell matches".to_string(),
            n => format!("all {n} cells match"),
        };
        out.push_str(&wrap(&format!("snapshots: {all} {dir}{not_compared}"), width));
        return out;
    }
    out.push_str(&wrap(
        &format!(
            "snapshots: {} {dir}, {}, {}{not_compared}",
            counted(matching, "cell matches", "cells match"),
            counted(differing.len(), "differs", "differ"),
            counted(missing.len(), "has none yet", "have none yet"),
        ),
        width,
    ));
    for (answer, changes) in differing.iter().take(MAX_CELLS) {
        let facts = counted(changes.len(), "fact differs", "facts differ");
        let cell = format!("  {} on {} ({facts}, old → new):", answer.cell.suite, answer.cell.column());
        let _ = writeln!(out, "{}", shorten(&cell, width));
        for change in changes.iter().take(MAX_FACTS) {
            out.push_str(&fact_line(change, width));
        }
        if changes.len() > MAX_FACTS {
            let more = format!("… and {} more: `ksnap diff --fresh` lists them", changes.len() - MAX_FACTS);
            out.push_str(&indented(4, &more, width));
        }
    }
    if differing.len() > MAX_CELLS {
        let _ = writeln!(out, "  … and {} more cells that differ", differing.len() - MAX_CELLS);
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|a| format!("{}@{}", a.cell.suite, a.cell.column())).collect();
        out.push_str(&indented(2, &format!("no snapshot yet: {}", names.join(", ")), width));
    }
    out.push_str(&wrap(
        "To review: `cargo test` records the differences as pending snapshots, and `cargo insta review` \
         accepts or rejects each; `ksnap diff --fresh A B` compares two columns as they run now.",
        width,
    ));
    out
}

/// `N thing` or `N things`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `prose` wrapped to `width` after `indent` spaces on every line.
fn indented(indent: usize, prose: &str, width: usize) -> String {
    let pad = " ".repeat(indent);
    wrap(prose, width.saturating_sub(indent)).lines().map(|line| format!("{pad}{line}\n")).collect()
}

/// `    KEY: OLD → NEW` on one line when it fits, else the values on a line of their own under the key:
/// a value is cut (with a marker) to fit, never cut away.
fn fact_line(change: &FactChange, width: usize) -> String {
    let value = |v: &Option<String>, max: usize| shorten(v.as_deref().unwrap_or(ABSENT), max);
    let one = format!(
        "    {}: {} → {}",
        change.key,
        value(&change.old, MAX_VALUE_CHARS),
        value(&change.new, MAX_VALUE_CHARS)
    );
    if one.chars().count() <= width {
        return format!("{one}\n");
    }
    // Six columns of indent and three of arrow; what is left is shared by the two values.
    let each = (width.saturating_sub(9) / 2).clamp(4, MAX_VALUE_CHARS);
    format!(
        "{}\n      {} → {}\n",
        shorten(&format!("    {}:", change.key), width),
        value(&change.old, each),
        value(&change.new, each)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::matrix::Cell;

    fn answer_of(kernel: &str, agreement: Agreement) -> CellAnswer {
        let cell = Cell { kernel: kernel.into(), variant: "default".into(), suite: "proc_mem".into() };
        CellAnswer { cell, snapshot: format!("snapshots/proc_mem@{kernel}.snap").into(), agreement }
    }

    fn change(key: &str, old: Option<&str>, new: Option<&str>) -> FactChange {
        FactChange { key: key.into(), old: old.map(String::from), new: new.map(String::from) }
    }

    #[test]
    fn every_cell_matching_is_one_line() {
        let answers = [answer_of("6.1", Agreement::Matches), answer_of("7.2", Agreement::Matches)];
        assert_eq!(answer(&answers, 0, "snapshots/", 100), "snapshots: all 2 cells match snapshots/\n");
        assert_eq!(
            answer(&answers, 1, "snapshots/", 100),
            "snapshots: all 2 cells match snapshots/; 1 failed cell not compared\n"
        );
    }

    #[test]
    fn differing_facts_are_listed_old_to_new_and_the_rest_counted_within_the_width() {
        let changes: Vec<FactChange> = [change("proc_mem.new_case", None, Some("ok"))]
            .into_iter()
            .chain(
                (0..6).map(|i| change(&format!("proc_mem.case{i}.write"), Some("ok 4 bytes"), Some(&"E".repeat(60)))),
            )
            .collect();
        let answers = [
            answer_of("6.1", Agreement::Matches),
            answer_of("7.2", Agreement::Differs(changes)),
            answer_of("7.3", Agreement::NoSnapshot),
        ];
        let text = answer(&answers, 0, "snapshots/", 60);
        assert!(text.starts_with("snapshots: 1 cell matches snapshots/, 1 differs, 1 has none\nyet\n"), "{text}");
        assert!(text.contains("  proc_mem on 7.2 (7 facts differ, old → new):\n"), "{text}");
        let one = [answer_of("7.2", Agreement::Differs(vec![change("proc_mem.a", Some("1"), Some("2"))]))];
        assert!(answer(&one, 0, "snapshots/", 100).contains("  proc_mem on 7.2 (1 fact differs, old → new):\n"));
        assert!(text.contains("    proc_mem.case0.write:\n      ok 4 bytes → EEEE"), "{text}");
        assert!(text.contains("    … and 3 more"), "{text}");
        assert!(answer(&answers, 0, "snapshots/", 100).contains("    proc_mem.new_case: (absent) → ok\n"));
        assert!(text.contains("  no snapshot yet: proc_mem@7.3\n"), "{text}");
        assert!(text.contains("`cargo insta review`"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
        // Every listed fact carries a value on both sides of the arrow.
        for values in text.lines().filter(|l| l.contains(" → ") && l.starts_with("    ")) {
            let values = values.split_once(": ").map_or(values, |(_, v)| v).trim();
            let (old, new) = values.split_once(" → ").unwrap();
            assert!(!old.is_empty() && !new.is_empty(), "{values}");
        }
    }
}
