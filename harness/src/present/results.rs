//! Turning cell runs into what a person reads: a table of cells, per suite the facts that differ across
//! the columns that ran (or all of them), fitted to the terminal, and the details of anything that failed.

use std::collections::BTreeMap;
use std::fmt::Write;

use ksnap_readers::channel::Reading;
use ksnap_vm::{Outcome, RunReport};

use crate::facts::Facts;
use crate::present::text::{output_width, shorten, table, table_width, MAX_VALUE_CHARS};
use crate::session::CellRun;

/// Which facts `ksnap run` prints per suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FactsShown {
    /// Only the facts whose values differ across the columns that ran (all of them for one column).
    Differing,
    /// Every fact.
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

pub fn render(runs: &[CellRun], view: View) -> String {
    let mut out = String::new();
    out.push_str(&render_cells(runs));
    let mut suites: BTreeMap<&str, Vec<&CellRun>> = BTreeMap::new();
    for run in runs {
        suites.entry(&run.cell.suite).or_default().push(run);
    }
    for (suite, runs) in suites {
        let columns: Vec<(String, Facts)> = runs.iter().map(|run| (run.cell.column(), run.facts())).collect();
        out.push('\n');
        out.push_str(&render_facts(suite, &columns, view));
    }
    let failures: Vec<&CellRun> = runs.iter().filter(|r| !r.passed()).collect();
    for run in failures {
        out.push('\n');
        out.push_str(&render_failure(run));
    }
    out
}

fn render_cells(runs: &[CellRun]) -> String {
    let mut rows = vec![["CELL".to_string(), "KERNEL".into(), "RESULT".into(), "PROBES".into(), "TIME".into()]];
    for run in runs {
        let probes = match &run.report.outcome {
            Outcome::Completed(guest) => {
                format!("{}/{} passed", guest.probes.iter().filter(|p| run.probe_passed(p)).count(), guest.probes.len())
            }
            _ => "-".into(),
        };
        let result = if run.passed() { "ok".to_string() } else { first_line(&run.report.outcome.to_string()) };
        rows.push([
            run.cell.id(),
            run.kernel.release.clone(),
            result,
            probes,
            format!("{:.1}s", run.report.duration.as_secs_f64()),
        ]);
    }
    table(&rows)
}

/// One suite's facts, a column per cell: those that differ (or all, per `view`), then how many agree.
/// As a table when it fits `view.width`; otherwise one block per fact with its columns grouped by value.
fn render_facts(suite: &str, columns: &[(String, Facts)], view: View) -> String {
    let mut keys: Vec<&String> = columns.iter().flat_map(|(_, facts)| facts.keys()).collect();
    keys.sort();
    keys.dedup();
    let value = |facts: &Facts, key: &str| facts.get(key).cloned().unwrap_or_else(|| "-".into());
    let differs = |key: &str| columns.iter().any(|(_, facts)| value(facts, key) != value(&columns[0].1, key));
    let shown: Vec<&String> = match view.facts {
        FactsShown::All => keys.clone(),
        // With one column nothing can differ: its facts are the answer.
        FactsShown::Differing if columns.len() < 2 => keys.clone(),
        FactsShown::Differing => keys.iter().copied().filter(|key| differs(key)).collect(),
    };
    let agreeing = keys.len() - keys.iter().filter(|key| differs(key)).count();
    let mut header = vec![format!("suite {suite}")];
    header.extend(columns.iter().map(|(name, _)| name.clone()));
    let mut rows = vec![header];
    for key in &shown {
        let mut row = vec![key.to_string()];
        row.extend(columns.iter().map(|(_, facts)| shorten(&value(facts, key), MAX_VALUE_CHARS)));
        rows.push(row);
    }
    let mut out =
        if table_width(&rows) <= view.width { table(&rows) } else { blocks(suite, columns, &shown, view.width) };
    if columns.len() > 1 && view.facts == FactsShown::Differing && agreeing > 0 {
        let noun = if agreeing == 1 { "fact is" } else { "facts are" };
        let line = format!("{agreeing} more {noun} the same in every column (`--facts all` shows them)");
        let _ = writeln!(out, "{}", shorten(&line, view.width));
    }
    out
}

/// Facts one by one, each column's value grouped with the columns that have the same one:
/// `  6.1 6.12: huge_zero_page` / `  6.1+thp-never: zero_page`. Every line fits `width`.
fn blocks(suite: &str, columns: &[(String, Facts)], keys: &[&String], width: usize) -> String {
    let mut out = format!("suite {suite}\n");
    for key in keys {
        let _ = writeln!(out, "{}", shorten(key, width));
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for (column, facts) in columns {
            let value = facts.get(*key).cloned().unwrap_or_else(|| "-".into());
            match groups.iter_mut().find(|(v, _)| *v == value) {
                Some((_, names)) => names.push(column),
                None => groups.push((value, vec![column])),
            }
        }
        for (value, names) in groups {
            let line = format!("  {}: {value}", names.join(" "));
            let _ = writeln!(out, "{}", shorten(&line, width));
        }
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

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, facts: &[(&str, &str)]) -> (String, Facts) {
        (name.to_string(), facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn columns() -> Vec<(String, Facts)> {
        vec![
            column("6.1", &[("p.same", "1"), ("p.zero", "huge_zero_page"), ("p.only_here", "x")]),
            column("6.12", &[("p.same", "1"), ("p.zero", "huge_zero_page")]),
            column("6.1+thp-never", &[("p.same", "1"), ("p.zero", "zero_page")]),
        ]
    }

    #[test]
    fn only_differing_facts_are_shown_and_the_rest_counted() {
        let view = View { facts: FactsShown::Differing, width: 100 };
        let out = render_facts("p", &columns(), view);
        assert_eq!(
            out,
            "suite p      6.1             6.12            6.1+thp-never\n\
             p.only_here  x               -               -\n\
             p.zero       huge_zero_page  huge_zero_page  zero_page\n\
             1 more fact is the same in every column (`--facts all` shows them)\n"
        );
        let all = render_facts("p", &columns(), View { facts: FactsShown::All, width: 100 });
        assert!(all.contains("p.same ") && !all.contains("the same in every"), "{all}");
        // One column: nothing to compare, everything shown.
        let one = render_facts("p", &columns()[..1], view);
        assert!(one.contains("p.same") && one.contains("p.zero") && !one.contains("the same in every"), "{one}");
    }

    #[test]
    fn a_table_too_wide_becomes_blocks_grouped_by_value() {
        let view = View { facts: FactsShown::Differing, width: 40 };
        let out = render_facts("p", &columns(), view);
        assert_eq!(
            out,
            "suite p\np.only_here\n  6.1: x\n  6.12 6.1+thp-never: -\np.zero\n  6.1 6.12: huge_zero_page\n\
             \x20 6.1+thp-never: zero_page\n1 more fact is the same in every column…\n"
        );
        assert!(out.lines().all(|line| line.chars().count() <= 40), "{out}");
    }

    #[test]
    fn long_values_are_cut_with_a_marker_never_wrapped() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abcd", 4), "abcd");
        let long = "v".repeat(90);
        let cols = vec![column("a", &[("k", &long)]), column("b", &[("k", "short")])];
        let out = render_facts("s", &cols, View { facts: FactsShown::Differing, width: 200 });
        let row = out.lines().nth(1).unwrap();
        assert!(row.contains(&format!("{}…", "v".repeat(MAX_VALUE_CHARS - 1))), "{out}");
        let narrow = render_facts("s", &cols, View { facts: FactsShown::Differing, width: 30 });
        assert!(narrow.lines().all(|l| l.chars().count() <= 30) && narrow.contains('…'), "{narrow}");
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
