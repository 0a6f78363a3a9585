//! The commands behind `ksnap`'s subcommands ([`Command`]), a file each: its command line as a clap
//! `Args` struct and one function, returning whether the command succeeded (`Ok(false)`: it ran and
//! found a failure, exit status 1; `Err`: it could not run, exit 2). `main.rs` only parses the command
//! line and calls these. `ksnap shell` returns an exit status instead: its guest command's.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::project::config::Config;

pub mod bisect;
pub mod diff;
pub mod history;
pub mod init;
pub mod kernels;
pub mod lock;
pub mod releases;
pub mod report;
pub mod run;
pub mod shell;
pub mod sweep;

/// `ksnap`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run suites on kernels and print the results.
    Run(run::RunArgs),
    /// The two adjacent releases of a kernel line between which a fact (or a suite's facts) changes, and
    /// why: the changelog entries between them (the suite's `areas` first) and their config difference.
    Bisect(bisect::BisectArgs),
    /// Show which observed facts differ between two columns of the matrix, suite by suite.
    ///
    /// A and B are `KERNEL` or `KERNEL+VARIANT` (e.g. `6.1 6.12`, `6.12 6.12+force-never`). Exit status: 0
    /// when they agree, 1 when they differ, 2 on error.
    Diff(diff::DiffArgs),
    /// The whole matrix from the committed snapshots: an HTML page, or Markdown for a CI job summary.
    Report(report::ReportArgs),
    /// How the kernels differ: per suite, each fact whose value differs in the committed snapshots, along
    /// the kernel versions (5.10 → 6.1 → 6.12 → 7.2) under the default variant, then the variants and the
    /// kernels built from a version that differ. With `--releases LINE`: along every release of a kernel
    /// line apt serves, run now.
    History(history::HistoryArgs),
    /// A cell's guest for a person: a shell on its console (Ctrl-D or `exit` powers it off), or with
    /// `-- CMD ARGS…` one command, its output and exit status passed through; `--gdb` for QEMU's gdb stub.
    Shell(shell::ShellArgs),
    /// List the matrix's kernels: locked package, release and cache state, and newer versions apt has.
    Kernels(kernels::KernelsArgs),
    /// List every point release of an apt kernel's line apt serves (its suite and the suite's -updates and
    /// -security), in Debian version order; `ksnap run --kernel KERNEL@VERSION` runs one.
    Releases(releases::ReleasesArgs),
    /// Start a project of your own in DIR: ksnap.toml, an example probe, the `cargo test` entry point,
    /// snapshots/, a GitHub Actions workflow.
    Init(init::InitArgs),
    /// Write ksnap.lock: pin every kernel of ksnap.toml that is not pinned yet (or whose entry is stale).
    Lock(lock::LockArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
/// How `ksnap diff`, `ksnap history` and `ksnap bisect` print.
pub enum PrintFormat {
    Text,
    Markdown,
    Json,
}

/// ksnap.toml at `path`, or found in this directory or a parent.
pub fn load_config(path: Option<PathBuf>) -> Result<Config> {
    match path {
        Some(path) => Config::load(&path),
        None => Config::discover(&std::env::current_dir().context("reading the current directory")?),
    }
}
