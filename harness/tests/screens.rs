//! The main answers fit a few screens: `ksnap history` and what `ksnap run` prints of the whole default
//! matrix, rendered from the committed snapshots (no VM), at most [`MAX_LINES`] lines, no line wider than
//! the terminal, and every fact line carrying its whole history (a value is never cut away).

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use ksnap::facts::history::Column;
use ksnap::facts::snapshot::read::{read_dir, SnapshotFile};
use ksnap::present::history::{of_snapshots, Fold, SuiteHistory};
use ksnap::present::results::{facts_text, kernel_table, KernelRow};

/// The budget the issue set for the main job's answer: about two screens.
const MAX_LINES: usize = 150;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn snapshots() -> Vec<SnapshotFile> {
    let snapshots = read_dir(&root().join("snapshots")).unwrap();
    assert!(snapshots.len() > 90, "the committed matrix: {} snapshots", snapshots.len());
    snapshots
}

/// Lines wider than `width`, in characters.
fn too_wide(text: &str, width: usize) -> Vec<&str> {
    text.lines().filter(|line| line.chars().count() > width).collect()
}

/// Each group shown has its whole sentence in the text: compared without whitespace, as lines wrap.
fn assert_every_shown_group_has_its_whole_history(text: &str, histories: &[SuiteHistory]) {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut shown = 0;
    for suite in histories {
        for group in &suite.groups {
            let sentence: String = group.history.sentence().chars().filter(|c| !c.is_whitespace()).collect();
            let name = group.name(ksnap::present::history::LISTED_IN_WHOLE);
            let short = group.name(48);
            let listed = [name, short].iter().any(|name| {
                let name: String = name.chars().filter(|c| !c.is_whitespace()).collect();
                squeezed.contains(&name) && squeezed.contains(&format!(":{sentence}"))
            });
            shown += usize::from(listed);
        }
    }
    assert!(shown > 40, "{shown} groups found whole in:\n{text}");
    // A line that names a fact or group carries a value after its `: ` (its continuations joined).
    let mut joined: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix("    "), joined.last_mut()) {
            (Some(rest), Some(last)) if !last.starts_with(' ') => last.push_str(rest),
            _ => joined.push(line.to_string()),
        }
    }
    for line in joined.iter().filter(|l| !l.starts_with(' ') && !l.starts_with("suite ") && !l.starts_with("kernel ")) {
        if line.is_empty() {
            continue;
        }
        let (_, value) = line.split_once(": ").unwrap_or_else(|| panic!("a fact line without a value: {line:?}"));
        assert!(!value.trim().is_empty(), "a fact line without a value: {line:?}");
    }
}

#[test]
fn ksnap_history_of_the_committed_matrix_fits_two_screens() {
    let snapshots = snapshots();
    for width in [100, 80] {
        let output = Command::cargo_bin("ksnap")
            .unwrap()
            .current_dir(root())
            .env("COLUMNS", width.to_string())
            .arg("history")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(too_wide(&text, width).is_empty(), "wider than {width}: {:#?}", too_wide(&text, width));
        if width == 100 {
            assert!(text.lines().count() <= MAX_LINES, "{} lines:\n{text}", text.lines().count());
        }
        assert_every_shown_group_has_its_whole_history(&text, &of_snapshots(&snapshots, &[]));
        // A summarised suite names the command with the rest.
        assert!(text.contains("`ksnap history --suite kselftest_mm` lists all"), "{text}");
    }
}

#[test]
fn ksnap_run_of_the_whole_matrix_fits_two_screens() {
    let snapshots = snapshots();
    let mut rows: Vec<KernelRow> = Vec::new();
    let mut columns: Vec<(&str, Column)> = Vec::new();
    for s in &snapshots {
        let (kernel, variant) = s.column.split_once('+').unwrap_or((&s.column, "default"));
        columns.push((&s.suite, Column { kernel, variant, facts: &s.facts }));
        if !rows.iter().any(|r| r.kernel == kernel) {
            let release = s.environment.get("release").cloned().unwrap_or_default();
            rows.push(KernelRow { kernel: kernel.to_string(), release, ..KernelRow::default() });
        }
        let row = rows.iter_mut().find(|r| r.kernel == kernel).unwrap();
        (row.cells, row.passed) = (row.cells + 1, row.passed + 1);
    }
    let more = |_: &str| "target/ksnap/history.txt".to_string();
    let width = 100;
    let facts = facts_text(&columns, false, Fold::Screen { more: &more }, width);
    // As `ksnap run` prints them: the kernels, the facts, the totals and the answer against snapshots/.
    let text = format!(
        "{}\n{facts}\n102 cells, 102 passed, 0 failed (accelerator tcg)\nsnapshots: all 102 cells match snapshots/\n",
        kernel_table(&rows),
    );
    assert!(too_wide(&text, width).is_empty(), "{:#?}", too_wide(&text, width));
    assert!(text.lines().count() <= MAX_LINES, "{} lines:\n{text}", text.lines().count());
    assert_every_shown_group_has_its_whole_history(&facts, &of_snapshots(&snapshots, &[]));
    println!("{text}");
}
