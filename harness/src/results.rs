//! Turning cell runs into what a person reads: a table of cells, the facts side by side per suite, and
//! the details of anything that failed.

use std::collections::BTreeMap;
use std::fmt::Write;

use ksnap_vm::{Outcome, RunReport};

use crate::facts::Facts;
use crate::session::CellRun;

/// The whole report `ksnap run` prints.
pub fn render(runs: &[CellRun]) -> String {
    let mut out = String::new();
    out.push_str(&render_cells(runs));
    let mut suites: BTreeMap<&str, Vec<&CellRun>> = BTreeMap::new();
    for run in runs {
        suites.entry(&run.cell.suite).or_default().push(run);
    }
    for (suite, runs) in suites {
        out.push('\n');
        out.push_str(&render_facts(suite, &runs));
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

fn render_facts(suite: &str, runs: &[&CellRun]) -> String {
    let columns: Vec<(String, Facts)> = runs.iter().map(|run| (run.cell.column(), run.facts())).collect();
    let mut keys: Vec<&String> = columns.iter().flat_map(|(_, facts)| facts.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut header = vec![format!("suite {suite}")];
    header.extend(columns.iter().map(|(name, _)| name.clone()));
    let mut rows = vec![header];
    for key in keys {
        let mut row = vec![key.clone()];
        row.extend(columns.iter().map(|(_, facts)| facts.get(key).cloned().unwrap_or_else(|| "-".into())));
        rows.push(row);
    }
    table(&rows)
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
                for problem in &probe.ktap.problems {
                    let _ = writeln!(out, "    KTAP: {problem}");
                }
                for test in probe.ktap.tests.iter().filter(|t| t.result.is_failure()) {
                    let _ = writeln!(out, "    {}: {}", test.result, test.name);
                    for line in &test.diagnostics {
                        let _ = writeln!(out, "      {line}");
                    }
                }
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

/// Left-aligned columns separated by two spaces.
pub fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let width = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0; width];
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells = row.as_ref();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["a".to_string(), "bb".into()], vec!["ccc".into(), "d".into()]];
        assert_eq!(table(&rows), "a    bb\nccc  d\n");
    }

    #[test]
    fn the_console_log_marks_probe_stderr_where_it_arrived() {
        use ksnap_vm::run::ProbeStderrLine;
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
        };
        let log = crate::console_log::console_log(&report);
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
