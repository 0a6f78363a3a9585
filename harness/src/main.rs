//! `ksnap`: snapshot how Linux kernels behave. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ksnap::commands::{self, Format, ReportFormat};
use ksnap::kernels::LockMode;
use ksnap::matrix::Selection;
use ksnap_vm::AccelChoice;

#[derive(Parser)]
#[command(name = "ksnap", version, about = "Boot kernels under QEMU, probe their behaviour, compare the results")]
struct Cli {
    /// The matrix file (default: ksnap.toml in this directory or a parent).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Refuse to change ksnap.lock: a kernel missing from it, or a stale entry, is an error (the default
    /// when CI is set).
    #[arg(long, global = true)]
    locked: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run suites on kernels and print the results.
    Run {
        /// Only this kernel (repeatable). Default: every kernel in ksnap.toml.
        #[arg(long = "kernel", value_name = "NAME")]
        kernels: Vec<String>,
        /// Only this suite (repeatable).
        #[arg(long = "suite", value_name = "NAME")]
        suites: Vec<String>,
        /// Only this variant (repeatable).
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Accelerator: `auto` uses KVM only where a test guest really runs under it.
        #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
        accel: AccelChoice,
        /// VMs at once (default: the number of CPUs).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Run every cell N times and report each fact whose value differed between runs (exit 1 if any
        /// did): flakes found before they are snapshotted. Runs restore the cell's saved machine as any run
        /// does (as `cargo test` runs them); with --boot-every-cell each run boots.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        repeat: u16,
        /// Boot every cell's VM instead of restoring the machine its kernel and VM share, saved when init was
        /// ready (with --repeat: flakes that come from the boot, which a saved state would hide).
        #[arg(long)]
        boot_every_cell: bool,
        /// Which facts to print per suite: those that differ across the columns that ran, or all.
        #[arg(long, value_enum, default_value = "differing")]
        facts: ksnap::results::FactsShown,
    },
    /// Show which observed facts differ between two columns of the matrix, suite by suite.
    ///
    /// A and B are `KERNEL` or `KERNEL+VARIANT` (e.g. `6.1 6.12`, `6.12 6.12+force-never`). Exit status: 0
    /// when they agree, 1 when they differ, 2 on error.
    Diff {
        a: String,
        b: String,
        /// Only this suite (repeatable).
        #[arg(long = "suite", value_name = "NAME")]
        suites: Vec<String>,
        /// Run both now instead of reading the committed snapshots.
        #[arg(long)]
        fresh: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Accelerator for --fresh.
        #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
        accel: AccelChoice,
    },
    /// The whole matrix from the committed snapshots: an HTML page, or Markdown for a CI job summary.
    Report {
        /// Directory for index.html.
        #[arg(short, long, default_value = "target/ksnap/report")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
    },
    /// Since which kernel: per suite, each fact whose value changes along the kernel versions of the
    /// default variant (5.10 → 6.1 → 6.12 → 7.2), and the version where each value appears.
    History {
        /// Only this suite (repeatable).
        #[arg(long = "suite", value_name = "NAME")]
        suites: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// List the matrix's kernels: locked package, release and cache state, and newer versions apt has.
    Kernels {
        /// Download and unpack (or build) every kernel that is not cached yet, and build the kernel
        /// selftests if a suite runs them.
        #[arg(long)]
        fetch: bool,
    },
    /// Start a project of your own in DIR: ksnap.toml, an example probe, the `cargo test` entry point,
    /// snapshots/, a GitHub Actions workflow.
    Init {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The crate's (and its suite's) name. Default: the directory's name.
        #[arg(long)]
        name: Option<String>,
        /// Take ksnap's crates from this checkout of its repository (path dependencies) instead of git.
        #[arg(long, value_name = "CHECKOUT")]
        ksnap_path: Option<PathBuf>,
    },
    /// Write ksnap.lock: pin every kernel of ksnap.toml that is not pinned yet (or whose entry is stale).
    Lock {
        /// Re-resolve these kernels (all, if none is named) to what apt serves now, and print each move.
        #[arg(long, num_args = 0.., value_name = "KERNEL")]
        update: Option<Vec<String>>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ksnap::signals::install() {
        eprintln!("ksnap: warning: cannot handle interrupts ({e}); Ctrl-C may leave QEMU running");
    }
    let lock = LockMode::detect(cli.locked);
    let result = match cli.command {
        Command::Run { kernels, suites, variants, accel, jobs, repeat, boot_every_cell, facts } => {
            let view = ksnap::results::View::detect(facts);
            let selection = Selection { kernels, variants, suites };
            let boots = commands::Boots { repeat: repeat.into(), boot_every_cell };
            commands::run(cli.config, lock, selection, accel, jobs, boots, view)
        }
        Command::Kernels { fetch } => commands::kernels(cli.config, lock, fetch),
        Command::Lock { update } => commands::lock_file(cli.config, lock, update),
        Command::Init { dir, name, ksnap_path } => commands::init(&dir, name.as_deref(), ksnap_path),
        Command::Diff { a, b, suites, fresh, format, accel } => {
            commands::diff(cli.config, lock, &a, &b, &suites, fresh, format, accel)
        }
        Command::Report { out, format } => commands::report(cli.config, &out, format),
        Command::History { suites, format } => commands::history(cli.config, &suites, format),
    };
    if let Some(signal) = ksnap::signals::received() {
        eprintln!("ksnap: interrupted; every VM was stopped");
        return ExitCode::from(ksnap::signals::exit_status(signal) as u8);
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ksnap: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
