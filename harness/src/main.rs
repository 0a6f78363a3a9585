//! `ksnap`: snapshot how Linux kernels behave. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ksnap::config::Config;
use ksnap::matrix::{self, Selection};
use ksnap::progress::Progress;
use ksnap::session::Session;
use ksnap_vm::AccelChoice;

#[derive(Parser)]
#[command(name = "ksnap", version, about = "Boot kernels under QEMU, probe their behaviour, compare the results")]
struct Cli {
    /// The matrix file (default: ksnap.toml in this directory or a parent).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
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
    },
    /// List the matrix's kernels: resolved package, release and cache state.
    Kernels {
        /// Download and unpack every kernel that is not cached yet.
        #[arg(long)]
        fetch: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ksnap::signals::install() {
        eprintln!("ksnap: warning: cannot handle interrupts ({e}); Ctrl-C may leave QEMU running");
    }
    let result = match cli.command {
        Command::Run { kernels, suites, variants, accel } => {
            run(cli.config, Selection { kernels, variants, suites }, accel)
        }
        Command::Kernels { fetch } => kernels(cli.config, fetch),
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

fn load_config(path: Option<PathBuf>) -> Result<Config> {
    match path {
        Some(path) => Config::load(&path),
        None => Config::discover(&std::env::current_dir().context("reading the current directory")?),
    }
}

/// `ksnap run`: true when every cell passed.
fn run(config: Option<PathBuf>, selection: Selection, accel: AccelChoice) -> Result<bool> {
    let config = load_config(config)?;
    let cells = matrix::cells(&config, &selection)?;
    let session = Session::start(config, accel, Progress::detect())?;
    let mut runs = Vec::new();
    for cell in &cells {
        runs.push(session.run_cell(cell)?);
    }
    print!("{}", ksnap::results::render(&runs));
    let failed = runs.iter().filter(|r| !r.passed()).count();
    println!(
        "\n{} cells, {} passed, {} failed (accelerator {}, {})",
        runs.len(),
        runs.len() - failed,
        failed,
        session.accel,
        session.qemu.version
    );
    Ok(failed == 0)
}

/// `ksnap kernels`: true unless a kernel could not be resolved or fetched.
fn kernels(config: Option<PathBuf>, fetch: bool) -> Result<bool> {
    let config = load_config(config)?;
    let cache = ksnap_vm::cache::Cache::user_default()?;
    let progress = Progress::detect();
    let mut all_ok = true;
    println!("{:<10} {:<44} {:<24} {}", "NAME", "PACKAGE", "VERSION", "CACHED");
    for (name, source) in &config.kernels {
        let state = if fetch {
            let task = progress.start(&format!("kernel {name}"));
            let kernel = source.resolve(&cache, &mut |step| task.step(step));
            task.finish(if kernel.is_ok() { "ready" } else { "failed" });
            kernel.map(Some)
        } else {
            source.cached(&cache)
        };
        match state {
            Ok(kernel) => {
                let package = match (&kernel, source.resolve_package()) {
                    (Some(k), _) if k.package.is_some() => k.package.clone(),
                    (_, Ok(package)) => package,
                    (_, Err(e)) => {
                        all_ok = false;
                        println!("{name:<10} {e}");
                        continue;
                    }
                };
                let (package_name, version) =
                    package.map(|p| (p.name, p.version)).unwrap_or_else(|| (source.to_string(), "-".into()));
                let cached = match kernel {
                    Some(k) => format!("yes, release {}", k.release),
                    None => "no (ksnap kernels --fetch)".into(),
                };
                println!("{name:<10} {package_name:<44} {version:<24} {cached}");
            }
            Err(e) => {
                all_ok = false;
                println!("{name:<10} error: {e}");
            }
        }
    }
    Ok(all_ok)
}
