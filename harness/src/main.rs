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
        "\n{} cells, {} passed, {} failed (accelerator {})",
        runs.len(),
        runs.len() - failed,
        failed,
        session.accel,
    );
    Ok(failed == 0)
}

/// `ksnap kernels`: true unless a kernel could not be resolved or fetched.
fn kernels(config: Option<PathBuf>, fetch: bool) -> Result<bool> {
    let config = load_config(config)?;
    let cache = ksnap_vm::cache::Cache::user_default()?;
    let progress = Progress::detect();
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (name, source) in &config.kernels {
        let kernel = if fetch {
            let task = progress.start(&format!("kernel {name}"));
            let kernel = source.resolve(&cache, &mut |step| task.step(step));
            task.finish(if kernel.is_ok() { "ready" } else { "failed" });
            kernel.map(Some)
        } else {
            source.cached(&cache)
        };
        let row = match kernel {
            Ok(Some(kernel)) => {
                let (package, version) = kernel.package.map_or((source.to_string(), "-".into()), |p| (p.name, p.version));
                let config = kernel.config_hash.map_or("-".into(), |h| h[..12].to_string());
                [name.clone(), package, version, kernel.release, config, kernel.image.display().to_string()]
            }
            Ok(None) => match source.resolve_package(&cache) {
                Ok(Some(p)) => [name.clone(), p.name, p.version, "-".into(), "-".into(), "not cached: ksnap kernels --fetch".into()],
                Ok(None) => [name.clone(), source.to_string(), "-".into(), "-".into(), "-".into(), "not unpacked: ksnap kernels --fetch".into()],
                Err(e) => {
                    all_ok = false;
                    [name.clone(), source.to_string(), "-".into(), "-".into(), "-".into(), format!("error: {e}")]
                }
            },
            Err(e) => {
                all_ok = false;
                [name.clone(), source.to_string(), "-".into(), "-".into(), "-".into(), format!("error: {e}")]
            }
        };
        rows.push(row);
    }
    let header = ["NAME", "PACKAGE", "VERSION", "RELEASE", "CONFIG", "IMAGE"].map(String::from);
    print!("{}", ksnap::results::table(&[&[header][..], &rows].concat()));
    Ok(all_ok)
}
