//! `ksnap history`: since which kernel. Along the kernel-version axis of the default variant (the
//! committed snapshots of kernels named by a version, `5.10` → `6.1` → `6.12` → `7.2`), each fact whose
//! value changes and the version where each value appears: `proc_mem.mseal.mseal: ENOSYS up to 6.1, ok
//! from 6.12` — the machine-checked form of the hand-kept "kernel feature by version" tables.
//!
//! Kernels whose names are not versions (`6.12-minimal`, a local build) and variants are left out: they
//! are not points on that axis.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::facts::snapshot::read::SnapshotFile;
use crate::facts::timeline::{along, FactHistory};

/// `6.12` → `[6, 12]`; `None` for a name that is not a version.
fn version(kernel: &str) -> Option<Vec<u64>> {
    kernel.split('.').map(|part| part.parse().ok()).collect()
}

/// The kernel versions of the axis, in order, and every fact that changes along it (of `suites`, or all
/// suites when empty). Suites with snapshots of fewer than two versions have no history.
pub fn compute(snapshots: &[SnapshotFile], suites: &[String]) -> (Vec<String>, Vec<FactHistory>) {
    let mut axis: BTreeSet<(Vec<u64>, String)> = BTreeSet::new();
    let mut by_suite: BTreeMap<&str, Vec<(Vec<u64>, &SnapshotFile)>> = BTreeMap::new();
    for snapshot in snapshots {
        if snapshot.column.contains('+') || !(suites.is_empty() || suites.contains(&snapshot.suite)) {
            continue;
        }
        let Some(v) = version(&snapshot.column) else { continue };
        axis.insert((v.clone(), snapshot.column.clone()));
        by_suite.entry(&snapshot.suite).or_default().push((v, snapshot));
    }
    let mut histories = Vec::new();
    for (suite, mut columns) in by_suite {
        if columns.len() < 2 {
            continue;
        }
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        let columns: Vec<(&str, &crate::facts::Facts)> =
            columns.iter().map(|(_, s)| (s.column.as_str(), &s.facts)).collect();
        histories.extend(along(suite, &columns));
    }
    (axis.into_iter().map(|(_, name)| name).collect(), histories)
}

/// Per suite, one line per changing fact.
pub fn text(axis: &[String], histories: &[FactHistory]) -> String {
    let mut out = format!("kernel versions: {}\n", axis.join(" → "));
    let mut suite = "";
    for history in histories {
        if history.suite != suite {
            suite = &history.suite;
            let _ = write!(out, "\nsuite {suite}\n");
        }
        let _ = writeln!(out, "{}: {}", history.fact, history.sentence());
    }
    if histories.is_empty() {
        out.push_str("no fact changes along these versions\n");
    }
    out
}

/// The same as Markdown: a list per suite.
pub fn markdown(axis: &[String], histories: &[FactHistory]) -> String {
    let mut out = format!("# Since which kernel\n\nKernel versions: {}\n", axis.join(" → "));
    let mut suite = "";
    for history in histories {
        if history.suite != suite {
            suite = &history.suite;
            let _ = write!(out, "\n## {}\n\n", crate::present::text::md(suite));
        }
        let _ = writeln!(
            out,
            "- `{}`: {}",
            crate::present::text::md(&history.fact),
            crate::present::text::md(&history.sentence())
        );
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
            // Not on the axis: a variant, and a kernel that is no version.
            snapshot("p", "6.12+force-never", &[("p.mseal", "EPERM")]),
            snapshot("p", "6.12-minimal", &[("p.mseal", "EPERM")]),
            // One version only: no history.
            snapshot("q", "6.1", &[("q.x", "1")]),
        ];
        let (axis, histories) = compute(&snapshots, &[]);
        assert_eq!(axis, ["5.10", "6.1", "6.12", "7.2"]);
        let sentences: Vec<(String, String)> = histories.iter().map(|h| (h.fact.clone(), h.sentence())).collect();
        assert_eq!(
            sentences,
            [
                ("p.back".to_string(), "a up to 5.10, b in 6.1, a from 6.12".to_string()),
                ("p.mseal".to_string(), "ENOSYS up to 6.1, ok from 6.12".to_string()),
                ("p.new".to_string(), "- up to 6.12, y from 7.2".to_string()),
            ]
        );
        let text = text(&axis, &histories);
        assert!(text.starts_with("kernel versions: 5.10 → 6.1 → 6.12 → 7.2\n\nsuite p\np.back: "), "{text}");
        assert!(markdown(&axis, &histories).contains("- `p.mseal`: ENOSYS up to 6.1, ok from 6.12\n"));
        assert!(compute(&snapshots, &["q".to_string()]).1.is_empty());
    }

    #[test]
    fn a_value_held_by_several_middle_versions_says_from_to() {
        let snapshots = vec![
            snapshot("p", "5.10", &[("k", "a")]),
            snapshot("p", "6.1", &[("k", "b")]),
            snapshot("p", "6.6", &[("k", "b")]),
            snapshot("p", "7.2", &[("k", "c")]),
        ];
        assert_eq!(compute(&snapshots, &[]).1[0].sentence(), "a up to 5.10, b in 6.1 to 6.6, c from 7.2");
    }
}
