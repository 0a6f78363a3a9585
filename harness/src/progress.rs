//! Telling the user what ksnap is doing, so long steps — downloads, builds, boots — never look like a hang.
//! On a terminal, one line that updates: cells done of all, what runs and what is being readied, and the
//! time left once it can be known; a kernel or the probes readied stay as a line above it. Otherwise (CI
//! logs, pipes) plain lines, a cell's last one with its count.
//!
//! Invariant: on a terminal the status line is gone once nothing is in progress, before results print.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes: a status line on a terminal, plain lines otherwise.
#[derive(Debug, Clone)]
pub struct Progress {
    terminal: Option<Arc<Mutex<Status>>>,
    /// Cells finished and expected (plain lines count them too).
    cells: Arc<Mutex<CellCount>>,
}

#[derive(Debug, Default)]
struct CellCount {
    done: usize,
    total: usize,
    /// When the first cell of this count started.
    first_started: Option<Instant>,
}

/// The terminal's status line and what it tells.
#[derive(Debug, Default)]
struct Status {
    bar: Option<ProgressBar>,
    /// Steps in progress: id, label, whether it is a cell, what it is doing now.
    active: Vec<(u64, String, bool, String)>,
    next_id: u64,
}

/// One long step in progress.
pub struct Task {
    progress: Progress,
    id: u64,
    label: String,
    cell: bool,
}

impl Progress {
    /// A status line when stderr is a terminal, plain lines otherwise.
    pub fn detect() -> Progress {
        let terminal = std::io::stderr().is_terminal().then(Default::default);
        Progress { terminal, cells: Default::default() }
    }

    /// Plain lines only.
    pub fn plain() -> Progress {
        Progress { terminal: None, cells: Default::default() }
    }

    /// `total` cells are about to run: counted from 0.
    pub fn expect_cells(&self, total: usize) {
        *self.cells.lock().unwrap_or_else(|e| e.into_inner()) = CellCount { total, ..Default::default() };
    }

    /// A step that readies something (a kernel, the probes, the selftests).
    pub fn start(&self, label: &str) -> Task {
        self.begin(label, false)
    }

    /// A cell's run: counted among the cells done when it finishes.
    pub fn start_cell(&self, label: &str) -> Task {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.first_started.get_or_insert_with(Instant::now);
        drop(cells);
        self.begin(label, true)
    }

    fn begin(&self, label: &str, cell: bool) -> Task {
        let id = match &self.terminal {
            Some(status) => {
                let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
                status.next_id += 1;
                let id = status.next_id;
                status.active.push((id, label.to_string(), cell, String::new()));
                let line = self.line(&status.active);
                let bar = status.bar.get_or_insert_with(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(ProgressStyle::with_template("{spinner} {wide_msg}").expect("valid template"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(line);
                id
            }
            None => {
                eprintln!("{label} …");
                0
            }
        };
        Task { progress: self.clone(), id, label: label.to_string(), cell }
    }

    /// The status line: `cells 12/102, about 3 min left · 2 running: 6.1::default::env: restoring ·
    /// kernel 6.12-minimal: building` (cut to the terminal's width from the end).
    fn line(&self, active: &[(u64, String, bool, String)]) -> String {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let mut parts = Vec::new();
        if cells.total > 0 {
            let mut count = format!("cells {}/{}", cells.done, cells.total);
            // Known only when nothing is being readied: a download or a build holds cells back for as
            // long as it takes.
            if let (Some(started), true, 1..) = (cells.first_started, active.iter().all(|a| a.2), cells.done) {
                let left = started.elapsed().mul_f64(cells.total.saturating_sub(cells.done) as f64 / cells.done as f64);
                if cells.done < cells.total {
                    count.push_str(&format!(", about {} left", minutes(left)));
                }
            }
            parts.push(count);
        }
        let doing = |label: &str, message: &str| match message {
            "" => label.to_string(),
            message => format!("{label}: {message}"),
        };
        let running: Vec<&(u64, String, bool, String)> = active.iter().filter(|a| a.2).collect();
        if let Some((_, label, _, message)) = running.first() {
            parts.push(format!("{} running: {}", running.len(), doing(label, message)));
        }
        parts.extend(active.iter().filter(|a| !a.2).map(|(_, label, _, message)| doing(label, message)));
        parts.join(" · ")
    }
}

/// `40 s`, `3 min`.
fn minutes(time: Duration) -> String {
    match time.as_secs() {
        s if s < 90 => format!("{} s", s.max(1)),
        s => format!("{} min", (s + 30) / 60),
    }
}

impl Task {
    /// What the step is doing now.
    pub fn step(&self, message: &str) {
        match &self.progress.terminal {
            Some(status) => {
                let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = status.active.iter_mut().find(|a| a.0 == self.id) {
                    entry.3 = message.to_string();
                }
                let line = self.progress.line(&status.active);
                if let Some(bar) = &status.bar {
                    bar.set_message(line);
                }
            }
            None => eprintln!("{}: {message}", self.label),
        }
    }

    /// The step is over; `summary` says how it went.
    pub fn finish(self, summary: &str) {
        let count = self.cell.then(|| {
            let mut cells = self.progress.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.done += 1;
            match cells.total {
                0 => String::new(),
                total => format!(" [{}/{total}]", cells.done),
            }
        });
        let Some(status) = &self.progress.terminal else {
            eprintln!("{}: {summary}{}", self.label, count.unwrap_or_default());
            return;
        };
        let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
        status.active.retain(|a| a.0 != self.id);
        let line = self.progress.line(&status.active);
        let Some(bar) = &status.bar else { return };
        // What was readied stays above the status line; a cell's end is in the count.
        if !self.cell {
            bar.println(format!("{}: {summary}", self.label));
        }
        bar.set_message(line);
        if status.active.is_empty() {
            bar.finish_and_clear();
            status.bar = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_cells_and_says_the_time_left_once_nothing_is_readied() {
        let progress = Progress { terminal: Some(Default::default()), cells: Default::default() };
        progress.expect_cells(4);
        progress.cells.lock().unwrap().first_started = Some(Instant::now() - Duration::from_secs(60));
        progress.cells.lock().unwrap().done = 2;
        let active = vec![
            (1, "6.1::default::env".to_string(), true, "restoring".to_string()),
            (2, "kernel 6.12-minimal".to_string(), false, "building".to_string()),
        ];
        assert_eq!(
            progress.line(&active),
            "cells 2/4 · 1 running: 6.1::default::env: restoring · kernel 6.12-minimal: building"
        );
        let line = progress.line(&active[..1]);
        assert!(
            line.starts_with("cells 2/4, about ")
                && line.ends_with(" s left · 1 running: 6.1::default::env: restoring"),
            "{line}"
        );
        assert!(!line.contains(" 0 s"), "{line}");
        assert_eq!(minutes(Duration::from_secs(200)), "3 min");
    }
}
