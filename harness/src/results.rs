//! Turning cell runs into what a person reads: a table of cells, the facts side by side per suite, and
//! the details of anything that failed.

use std::collections::BTreeMap;
use std::fmt::Write;

use ksnap_vm::ktap::KtapTest;
use ksnap_vm::protocol::ProbeRun;
use ksnap_vm::Outcome;

use crate::session::CellRun;

/// One observed fact or test result, keyed `PROBE.TEST.KEY` (a test's own result is `PROBE.TEST`).
pub type Facts = BTreeMap<String, String>;

/// Facts of every probe of a completed run, flattened. Subtests nest with `.`.
pub fn facts_of(probes: &[ProbeRun]) -> Facts {
    let mut facts = Facts::new();
    for probe in probes {
        // How the probe itself fared is a fact too: a crash or a broken KTAP stream must show in a diff.
        if probe.end != ksnap_vm::protocol::ProbeEnd::Exited(0) {
            facts.insert(format!("{}.(process)", probe.name), probe.end.to_string());
        }
        if let Some(bytes) = probe.truncated_bytes {
            facts.insert(format!("{}.(output)", probe.name), format!("truncated, {bytes} bytes discarded"));
        }
        if !probe.ktap.problems.is_empty() {
            facts.insert(format!("{}.(ktap)", probe.name), probe.ktap.problems.join("; "));
        }
        for test in &probe.ktap.tests {
            collect_test(&format!("{}.{}", probe.name, test.name), test, &mut facts);
        }
    }
    facts
}

fn collect_test(prefix: &str, test: &KtapTest, facts: &mut Facts) {
    facts.insert(prefix.to_string(), test.result.to_string());
    for (key, value) in &test.facts {
        facts.insert(format!("{prefix}.{key}"), value.clone());
    }
    for sub in &test.subtests {
        collect_test(&format!("{prefix}.{}", sub.name), sub, facts);
    }
}

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
                format!("{}/{} passed", guest.probes.iter().filter(|p| p.passed()).count(), guest.probes.len())
            }
            _ => "-".into(),
        };
        let result = if run.passed() { "ok".to_string() } else { first_line(&run.report.outcome.to_string()) };
        rows.push([run.cell.id(), run.kernel.release.clone(), result, probes, format!("{:.1}s", run.report.duration.as_secs_f64())]);
    }
    table(&rows)
}

fn render_facts(suite: &str, runs: &[&CellRun]) -> String {
    let columns: Vec<(String, Facts)> = runs
        .iter()
        .map(|run| (run.cell.column(), run.facts()))
        .collect();
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
            for probe in guest.probes.iter().filter(|p| !p.passed()) {
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
            }
        }
        Outcome::KernelPanic { lines, .. } => {
            for line in lines.iter().take(20) {
                let _ = writeln!(out, "  {line}");
            }
        }
        other => {
            let _ = writeln!(out, "  {other}");
        }
    }
    for event in &run.report.console_events {
        let _ = writeln!(out, "  console: {}", event.headline);
    }
    let _ = writeln!(out, "  console log: {}", run.console_log.display());
    out
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
    fn facts_flatten_tests_and_subtests() {
        let probes = vec![ProbeRun {
            name: "env".into(),
            end: ksnap_vm::protocol::ProbeEnd::Exited(0),
            output: vec![],
            truncated_bytes: None,
            ktap: ksnap_vm::ktap::parse("KTAP version 1\n1..1\n# fact: bytes = 4096\nok 1 page_size\n"),
        }];
        let facts = facts_of(&probes);
        assert_eq!(facts.get("env.page_size").map(String::as_str), Some("ok"));
        assert_eq!(facts.get("env.page_size.bytes").map(String::as_str), Some("4096"));
    }
}
