//! Telling the user what ksnap is doing: an indicatif spinner on a terminal, plain lines otherwise
//! (CI logs, pipes), so long steps — downloads, builds, boots — never look like a hang.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Cells run in parallel, so on a terminal every step gets its own line in a `MultiProgress`.
#[derive(Debug, Clone)]
pub struct Progress {
    terminal: Option<MultiProgress>,
}

/// One long step in progress.
pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    pub fn detect() -> Progress {
        Progress { terminal: std::io::stderr().is_terminal().then(MultiProgress::new) }
    }

    /// Plain lines only.
    pub fn plain() -> Progress {
        Progress { terminal: None }
    }

    pub fn start(&self, label: &str) -> Task {
        let bar = if let Some(terminal) = &self.terminal {
            let bar = terminal.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]").expect("valid template"),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            eprintln!("{label} …");
            None
        };
        Task { bar, label: label.to_string() }
    }
}

impl Task {
    /// What the step is doing now.
    pub fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => eprintln!("{}: {message}", self.label),
        }
    }

    /// The step is over; `summary` says how it went.
    pub fn finish(self, summary: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(summary.to_string()),
            None => eprintln!("{}: {summary}", self.label),
        }
    }
}
