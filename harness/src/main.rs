//! `ksnap`: snapshot how Linux kernels behave. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ksnap::commands::{self, Command};
use ksnap::project::kernels::LockMode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ksnap::signals::install() {
        eprintln!("ksnap: warning: cannot handle interrupts ({e}); Ctrl-C may leave QEMU running");
    }
    let lock_mode = LockMode::detect(cli.locked);
    let status = |ok: bool| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args, cli.config, lock_mode).map(status),
        Command::Kernels(args) => commands::kernels::kernels(args, cli.config, lock_mode).map(status),
        Command::Releases(args) => commands::releases::releases(args, cli.config, lock_mode).map(status),
        Command::Lock(args) => commands::lock::lock(args, cli.config, lock_mode).map(status),
        Command::Init(args) => commands::init::init(args).map(status),
        Command::Bisect(args) => commands::bisect::bisect(args, cli.config, lock_mode).map(status),
        Command::Diff(args) => commands::diff::diff(args, cli.config, lock_mode).map(status),
        Command::Report(args) => commands::report::report(args, cli.config).map(status),
        Command::History(args) => commands::history::history(args, cli.config, lock_mode).map(status),
        Command::Shell(args) => commands::shell::shell(args, cli.config, lock_mode).map(ExitCode::from),
    };
    if let Some(signal) = ksnap::signals::received() {
        eprintln!("ksnap: interrupted; every VM was stopped");
        return ExitCode::from(ksnap::signals::exit_status(signal) as u8);
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ksnap: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
