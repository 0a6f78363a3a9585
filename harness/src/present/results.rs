//! Turning cell runs into what a person reads: a line per kernel, how the kernels differ as history
//! ([`crate::present::history`]: per suite, facts with the same history on one line, a suite longer than
//! a screen summarised), fitted to the terminal, and the details of anything that failed.

use std::collections::BTreeMap;
use std::fmt::Write;

use ksnap_readers::channel::Reading;
use ksnap_vm::{Outcome, RunReport};

use crate::facts::history::Column;
use crate::facts::Facts;
use crate::present::history::{Fold, SuiteHistory};
use crate::present::text::hanging;
use crate::present::text::{output_width, table};
use crate::session::CellRun;

/// Which facts `ksnap run` prints per suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FactsShown {
    /// The facts whose values differ between the cells that ran, folded (all of them for one cell).
    Differing,
    /// Every fact, every suite whole.
    All,
}

/// How the facts are laid out.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub facts: FactsShown,
    /// The terminal's width in characters.
    pub width: usize,
}

impl View {
    /// The facts asked for, at the [`output_width`].
    pub fn detect(facts: FactsShown) -> View {
        View { facts, width: output_width() }
    }
}

/// One kernel's cells in a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelRow {
    pub kernel: String,
    pub release: String,
    pub cells: usize,
    pub passed: usize,
    pub probes: usize,
    pub probes_passed: usize,
    pub seconds: f64,
}

/// The kernels' lines, the history of the suites' facts (`facts`: each run's, in order; `more`: where a
/// summarised suite's rest is), and each failure's details.
pub fn render(runs: &[CellRun], facts: &[&Facts], view: View, more: &dyn Fn(&str) -> String) -> String {
    let mut out = kernel_table(&kernel_rows(runs));
    let fold = match view.facts {
        FactsShown::All => Fold::Whole,
        FactsShown::Differing => Fold::Screen { more },
    };
    out.push('\n');
    out.push_str(&facts_text(&columns_of(runs, facts), view.facts == FactsShown::All, fold, view.width));
    for run in runs.iter().filter(|r| !r.passed()) {
        out.push('\n');
        out.push_str(&render_failure(run));
    }
    out
}

/// The history of every suite's differing facts, none summarised: what [`render`]'s `more` points to.
pub fn whole_history(runs: &[CellRun], facts: &[&Facts], width: usize) -> String {
    facts_text(&columns_of(runs, facts), false, Fold::Whole, width)
}

/// Each run's suite and column.
fn columns_of<'a>(runs: &'a [CellRun], facts: &[&'a Facts]) -> Vec<(&'a str, Column<'a>)> {
    runs.iter()
        .zip(facts)
        .map(|(run, facts)| {
            (run.cell.suite.as_str(), Column { kernel: &run.cell.kernel, variant: &run.cell.variant, facts })
        })
        .collect()
}

/// Per kernel: its release, its cells and probes passed, the time its cells took.
fn kernel_rows(runs: &[CellRun]) -> Vec<KernelRow> {
    let mut rows: Vec<KernelRow> = Vec::new();
    for run in runs {
        let i = match rows.iter().position(|r| r.kernel == run.cell.kernel) {
            Some(i) => i,
            None => {
                rows.push(KernelRow {
                    kernel: run.cell.kernel.clone(),
                    release: run.kernel.release.clone(),
                    ..KernelRow::default()
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.cells += 1;
        row.passed += usize::from(run.passed());
        if let Outcome::Completed(guest) = &run.report.outcome {
            row.probes += guest.probes.len();
            row.probes_passed += guest.probes.iter().filter(|p| run.probe_passed(p)).count();
        }
        row.seconds += run.report.duration.as_secs_f64();
    }
    rows
}

/// `KERNEL  RELEASE  CELLS  PROBES  TIME`, a line per kernel.
pub fn kernel_table(rows: &[KernelRow]) -> String {
    let mut table_rows = vec![[
        "KERNEL".to_string(),
        "RELEASE".into(),
        "CELLS PASSED".into(),
        "PROBES PASSED".into(),
        "CELL TIME".into(),
    ]];
    for row in rows {
        table_rows.push([
            row.kernel.clone(),
            row.release.clone(),
            format!("{}/{}", row.passed, row.cells),
            format!("{}/{}", row.probes_passed, row.probes),
            format!("{:.1}s", row.seconds),
        ]);
    }
    table(&table_rows)
}

/// The facts of `columns` (each with its suite): per suite with more than one column, the history of
/// the facts that differ (of every fact with `all`), folded as `fold` says; a suite of one column, its
/// facts one by one.
pub fn facts_text(columns: &[(&str, Column)], all: bool, fold: Fold, width: usize) -> String {
    let mut suites: BTreeMap<&str, Vec<Column>> = BTreeMap::new();
    for (suite, column) in columns {
        suites.entry(suite).or_default().push(*column);
    }
    let mut histories = Vec::new();
    let mut out = String::new();
    for (suite, columns) in &suites {
        match columns.as_slice() {
            [one] => out.push_str(&one_column(suite, one, width)),
            columns => histories.push(SuiteHistory::of(suite, columns, all)),
        }
    }
    if !histories.is_empty() {
        let history = crate::present::history::text(&histories, fold, width);
        out = if out.is_empty() { history } else { format!("{history}\n{out}") };
    }
    out
}

/// A suite that ran in one column: each fact and its value.
fn one_column(suite: &str, column: &Column, width: usize) -> String {
    let mut out = hanging(&format!("suite {suite} on {} ({} facts)", column.name(), column.facts.len()), width);
    for (key, value) in column.facts {
        out.push_str(&hanging(&format!("{key}: {value}"), width));
    }
    out
}

/// One failed test (a KTAP test, or a selftest's case) of a failure's details, with its diagnostics.
fn render_failed_test(out: &mut String, result: &dyn std::fmt::Display, name: &str, diagnostics: &[String]) {
    let _ = writeln!(out, "    {result}: {name}");
    for line in diagnostics {
        let _ = writeln!(out, "      {line}");
    }
}

/// What was wrong in a failed probe's reading, from the reading that made its facts: KTAP, or a selftest's
/// TAP per case.
fn render_reading(out: &mut String, reading: &Reading) {
    match reading {
        Reading::Ktap(doc) => {
            for problem in &doc.problems {
                let _ = writeln!(out, "    KTAP: {problem}");
            }
            for test in doc.tests.iter().filter(|t| t.result.is_failure()) {
                render_failed_test(out, &test.result, &test.name, &test.diagnostics);
            }
        }
        Reading::Kselftest(report) => {
            let _ = writeln!(out, "    binary: {}", report.binary);
            for problem in &report.problems {
                let _ = writeln!(out, "    TAP: {problem}");
            }
            for case in report.cases.iter().filter(|c| c.result.is_failure()) {
                render_failed_test(out, &case.result, &case.key, &case.diagnostics);
            }
        }
    }
}

fn render_failure(run: &CellRun) -> String {
    let mut out = format!("FAILED {} ({})\n", run.cell.id(), run.kernel.release);
    match &run.report.outcome {
        Outcome::Completed(guest) => {
            for probe in guest.probes.iter().filter(|p| !run.probe_passed(p)) {
                let _ = writeln!(out, "  probe {}: {}", probe.name, probe.end);
                if let Some(bytes) = probe.truncated_bytes {
                    let _ = writeln!(out, "    output truncated: {bytes} bytes discarded");
                }
                render_reading(&mut out, &probe.reading);
                render_stderr(&mut out, "    ", probe.stderr.iter().map(String::as_str), probe.stderr_truncated_bytes);
            }
        }
        Outcome::KernelPanic { lines, .. } => {
            for line in lines.iter().take(20) {
                let _ = writeln!(out, "  {line}");
            }
            render_last_probe_stderr(&mut out, &run.report);
        }
        other => {
            let _ = writeln!(out, "  {other}");
            render_last_probe_stderr(&mut out, &run.report);
        }
    }
    for event in &run.report.console_events {
        let _ = writeln!(out, "  console: {}", event.headline);
    }
    let _ = writeln!(out, "  console log: {}", run.console_log.display());
    out
}

/// Lines of probe stderr shown in a failure's details; the console log has them all.
const STDERR_SHOWN: usize = 10;

/// The last lines of a probe's stderr, marked as such: it is the probe talking, not the kernel.
fn render_stderr<'a>(
    out: &mut String,
    indent: &str,
    lines: impl ExactSizeIterator<Item = &'a str>,
    truncated: Option<u64>,
) {
    let skipped = lines.len().saturating_sub(STDERR_SHOWN);
    if skipped > 0 {
        let _ = writeln!(out, "{indent}probe stderr: ({skipped} earlier lines in the console log)");
    }
    for line in lines.skip(skipped) {
        let _ = writeln!(out, "{indent}probe stderr: {}", escape_controls(line));
    }
    if let Some(bytes) = truncated {
        let _ = writeln!(out, "{indent}probe stderr truncated: {bytes} bytes discarded");
    }
}

/// When the run did not complete: the stderr of the probe that was running last, if it wrote any.
fn render_last_probe_stderr(out: &mut String, report: &RunReport) {
    let Some(last) = report.probe_stderr.last() else { return };
    let lines: Vec<&str> =
        report.probe_stderr.iter().filter(|l| l.probe == last.probe).map(|l| l.line.as_str()).collect();
    let _ = writeln!(out, "  last probe to write on stderr: {}", last.probe);
    render_stderr(out, "    ", lines.into_iter(), None);
}

/// Guest bytes for a terminal: control characters (escape sequences included) shown escaped.
fn escape_controls(line: &str) -> String {
    line.chars()
        .flat_map(|c| if c.is_control() && c != '\t' { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn facts_are_told_as_history_and_a_single_column_whole() {
        let (a, b, c) = (
            facts(&[("p.same", "1"), ("p.zero", "huge")]),
            facts(&[("p.same", "1"), ("p.zero", "huge")]),
            facts(&[("p.same", "1"), ("p.zero", "zero")]),
        );
        let columns = [
            ("p", Column { kernel: "6.1", variant: "default", facts: &a }),
            ("p", Column { kernel: "6.12", variant: "default", facts: &b }),
            ("p", Column { kernel: "6.1", variant: "thp-never", facts: &c }),
            ("q", Column { kernel: "6.1", variant: "default", facts: &a }),
        ];
        let more = |s: &str| format!("see {s}");
        let out = facts_text(&columns, false, Fold::Screen { more: &more }, 100);
        assert_eq!(
            out,
            "kernel versions: 6.1 → 6.12\n\nsuite p (variants default, thp-never)\np.zero: huge; thp-never: zero\n\n\
             suite q on 6.1 (2 facts)\np.same: 1\np.zero: huge\n"
        );
        let all = facts_text(&columns, true, Fold::Whole, 100);
        assert!(all.contains("\np.same: 1\n"), "{all}");
    }

    #[test]
    fn kernels_are_a_line_each() {
        let row = KernelRow {
            kernel: "6.1".into(),
            release: "6.1.0-1".into(),
            cells: 3,
            passed: 2,
            probes: 9,
            probes_passed: 8,
            seconds: 12.34,
        };
        assert_eq!(
            kernel_table(&[row]),
            "KERNEL  RELEASE  CELLS PASSED  PROBES PASSED  CELL TIME\n6.1     6.1.0-1  2/3           8/9            12.3s\n"
        );
    }

    #[test]
    fn the_console_log_marks_probe_stderr_where_it_arrived() {
        use ksnap_vm::machine::run::ProbeStderrLine;
        let console = "kernel: booting\nksnap-init: running probe p\nkernel: later\n".to_string();
        let at = console.find("kernel: later").unwrap();
        let report = RunReport {
            outcome: Outcome::MalformedOutput { reason: "test".into(), line: String::new() },
            console,
            probe_stderr: vec![
                ProbeStderrLine {
                    probe: "p".into(),
                    line: "Kernel panic - not syncing: fake".into(),
                    console_offset: at,
                },
                ProbeStderrLine { probe: "p".into(), line: "second".into(), console_offset: usize::MAX },
            ],
            console_events: vec![],
            duration: std::time::Duration::ZERO,
            host_cpu: None,
            ready_after: None,
        };
        let log = crate::session::console_log::console_log(&report);
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].starts_with("[ksnap: a line `[ksnap: stderr of probe NAME]"), "{log}");
        assert_eq!(
            &lines[1..],
            [
                "kernel: booting",
                "ksnap-init: running probe p",
                "[ksnap: stderr of probe p] Kernel panic - not syncing: fake",
                "kernel: later",
                "[ksnap: stderr of probe p] second",
            ]
        );
        let mut out = String::new();
        render_last_probe_stderr(&mut out, &report);
        assert!(out.contains("last probe to write on stderr: p\n"), "{out}");
        assert!(out.contains("    probe stderr: Kernel panic - not syncing: fake\n"), "{out}");
    }

    #[test]
    fn a_failed_selftest_is_detailed_from_the_reading_that_made_its_facts() {
        let output: Vec<String> =
            ["TAP version 13", "1..2", "ok 1 first", "# cannot map", "not ok 2 second"].map(String::from).to_vec();
        let reading =
            ksnap_readers::channel::Format::Kselftest.read(&output, &ksnap_readers::channel::ProbeEnd::Exited(1));
        let mut out = String::new();
        render_reading(&mut out, &reading);
        assert_eq!(out, "    binary: not ok\n    not ok: second\n      cannot map\n");
        let reading = ksnap_readers::channel::Format::Ktap.read(&output, &ksnap_readers::channel::ProbeEnd::Exited(1));
        let mut out = String::new();
        render_reading(&mut out, &reading);
        assert!(out.contains("    not ok: second\n"), "{out}");
    }

    #[test]
    fn failure_details_show_the_last_stderr_lines_escaped() {
        let mut out = String::new();
        let lines: Vec<String> = (0..12).map(|i| format!("line {i}")).chain(["\u{1b}[2J".to_string()]).collect();
        render_stderr(&mut out, "  ", lines.iter().map(String::as_str), Some(5));
        assert!(
            out.starts_with("  probe stderr: (3 earlier lines in the console log)\n  probe stderr: line 3\n"),
            "{out}"
        );
        assert!(out.contains("  probe stderr: \\u{1b}[2J\n"), "{out}");
        assert!(out.ends_with("  probe stderr truncated: 5 bytes discarded\n"), "{out}");
    }
}
