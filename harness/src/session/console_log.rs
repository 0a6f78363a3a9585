//! The console log file of a run (`target/ksnap/logs/CELL.console.log`).

use std::fmt::Write;

use ksnap_vm::RunReport;

/// The text of a run's console log: the kernel console, with each line a probe wrote on stderr put where
/// it arrived and marked, so that no one mistakes it for the kernel's.
pub fn console_log(report: &RunReport) -> String {
    if report.probe_stderr.is_empty() {
        return report.console.clone();
    }
    let stderr_bytes: usize = report.probe_stderr.iter().map(|l| l.probe.len() + l.line.len() + 32).sum();
    let mut log = String::with_capacity(report.console.len() + stderr_bytes + 200);
    log.push_str(
        "[ksnap: a line `[ksnap: stderr of probe NAME] …` is that probe's stderr, relayed by init on the result \
         channel, not kernel output; all other lines are the console (ttyS0)]\n",
    );
    let mut written = 0;
    for line in &report.probe_stderr {
        // Offsets are at line boundaries of the console; clamp in case the console was cut short.
        let mut offset = line.console_offset.clamp(written, report.console.len());
        while !report.console.is_char_boundary(offset) {
            offset += 1;
        }
        log.push_str(&report.console[written..offset]);
        written = offset;
        let _ = writeln!(log, "[ksnap: stderr of probe {}] {}", line.probe, line.line);
    }
    log.push_str(&report.console[written..]);
    log
}
