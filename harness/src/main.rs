//! `ksnap`: snapshot how Linux kernels behave. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ksnap::config::Config;
use ksnap::kernels::{Kernels, LockMode};
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
    /// Refuse to change ksnap.lock: a kernel missing from it, or a stale entry, is an error (the default
    /// when CI is set).
    #[arg(long, global = true)]
    locked: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Markdown,
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
    /// List the matrix's kernels: locked package, release and cache state, and newer versions apt has.
    Kernels {
        /// Download and unpack (or build) every kernel that is not cached yet.
        #[arg(long)]
        fetch: bool,
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
        Command::Run { kernels, suites, variants, accel, jobs } => {
            run(cli.config, lock, Selection { kernels, variants, suites }, accel, jobs)
        }
        Command::Kernels { fetch } => kernels(cli.config, lock, fetch),
        Command::Lock { update } => lock_file(cli.config, lock, update),
        Command::Diff { a, b, suites, fresh, format, accel } => {
            diff(cli.config, lock, &a, &b, &suites, fresh, format, accel)
        }
        Command::Report { out, format } => report(cli.config, &out, format),
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
fn run(config: Option<PathBuf>, lock: LockMode, selection: Selection, accel: AccelChoice, jobs: Option<usize>) -> Result<bool> {
    let config = load_config(config)?;
    let cells = matrix::cells(&config, &selection)?;
    let session = Session::start(config, accel, Progress::detect(), lock)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runs = session.run_cells(&cells, jobs)?;
    print!("{}", ksnap::results::render(&runs));
    for path in write_plots(&session, &runs)? {
        println!("plot: {}", path.display());
    }
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

/// For each suite whose facts hold curves (`….curve.X.METRIC`), an SVG plot of them, one line per
/// kernel/variant and metric, next to the run's logs.
fn write_plots(session: &Session, runs: &[ksnap::session::CellRun]) -> Result<Vec<PathBuf>> {
    let mut by_suite: std::collections::BTreeMap<&str, Vec<(String, ksnap::results::Facts)>> = Default::default();
    for run in runs {
        by_suite.entry(&run.cell.suite).or_default().push((run.cell.column(), run.facts()));
    }
    let mut written = Vec::new();
    for (suite, columns) in by_suite {
        let curves = ksnap::report::curves(columns.iter().map(|(c, f)| (c.as_str(), f)));
        if curves.is_empty() {
            continue;
        }
        let path = session.log_dir.parent().unwrap_or(&session.log_dir).join(format!("{suite}-curves.svg"));
        std::fs::write(&path, ksnap::report::svg_file(&curves, "touched regions", "kB"))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `ksnap diff`: true when the two columns agree.
#[allow(clippy::too_many_arguments)]
fn diff(
    config: Option<PathBuf>,
    lock: LockMode,
    a: &str,
    b: &str,
    suites: &[String],
    fresh: bool,
    format: Format,
    accel: AccelChoice,
) -> Result<bool> {
    let config = load_config(config)?;
    let (column_a, column_b) = if fresh {
        let session = Session::start(config.clone(), accel, Progress::detect(), lock)?;
        (fresh_column(&session, a, suites)?, fresh_column(&session, b, suites)?)
    } else {
        let snapshots = ksnap::snapfile::read_dir(&ksnap::snapshot::dir(&config.root))?;
        let mut columns = ksnap::snapfile::columns(&snapshots);
        let known: Vec<String> = columns.keys().cloned().collect();
        let mut take = |name: &str| {
            let mut column = columns.remove(name).with_context(|| {
                format!("no snapshots for `{name}` in snapshots/; columns with snapshots: {}", known.join(", "))
            })?;
            column.retain(|suite, _| suites.is_empty() || suites.contains(suite));
            anyhow::Ok(column)
        };
        let column_a = take(a)?;
        let column_b = if a == b { column_a.clone() } else { take(b)? };
        (column_a, column_b)
    };
    let diff = ksnap::diff::compare(a, &column_a, b, &column_b);
    match format {
        Format::Text => print!("{}", diff.to_text()),
        Format::Markdown => print!("{}", diff.to_markdown()),
        Format::Json => println!("{}", diff.to_json()),
    }
    Ok(!diff.differs())
}

/// Run every (selected) suite that runs under the column's variant on its kernel, now.
fn fresh_column(session: &Session, column: &str, suites: &[String]) -> Result<ksnap::diff::Column> {
    let (kernel, variant) = column.split_once('+').unwrap_or((column, "default"));
    let selection = Selection { kernels: vec![kernel.into()], variants: vec![variant.into()], suites: suites.to_vec() };
    let mut facts = ksnap::diff::Column::new();
    for cell in matrix::cells(&session.config, &selection)? {
        let run = session.run_cell(&cell)?;
        if !run.report.outcome.is_completed() {
            anyhow::bail!("{cell}: {} (console log: {})", run.report.outcome, run.console_log.display());
        }
        facts.insert(cell.suite.clone(), run.facts());
    }
    Ok(facts)
}

/// `ksnap report`.
fn report(config: Option<PathBuf>, out: &std::path::Path, format: ReportFormat) -> Result<bool> {
    let config = load_config(config)?;
    let snapshots_dir = ksnap::snapshot::dir(&config.root);
    let snapshots = ksnap::snapfile::read_dir(&snapshots_dir)?;
    match format {
        ReportFormat::Markdown => print!("{}", ksnap::report::markdown(&snapshots)),
        ReportFormat::Html => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let out = out.canonicalize()?;
            let links = ksnap::report::relative_path(&out, &snapshots_dir.canonicalize()?);
            let page = out.join("index.html");
            std::fs::write(&page, ksnap::report::html(&snapshots, &links))
                .with_context(|| format!("writing {}", page.display()))?;
            println!("{}", page.display());
        }
    }
    Ok(true)
}

/// What the IMAGE column says of a kernel that is not in the cache yet.
fn not_ready(source: &ksnap_vm::kernel::KernelSource) -> &'static str {
    match source {
        ksnap_vm::kernel::KernelSource::Build(_) => "not built: ksnap kernels --fetch (builds it, minutes)",
        ksnap_vm::kernel::KernelSource::Deb { .. } => "not unpacked: ksnap kernels --fetch",
        _ => "not cached: ksnap kernels --fetch",
    }
}

/// `ksnap kernels`: true unless a kernel could not be resolved or fetched.
fn kernels(config: Option<PathBuf>, lock: LockMode, fetch: bool) -> Result<bool> {
    let config = load_config(config)?;
    let kernels = Kernels::open(config, ksnap_vm::cache::Cache::user_default()?, lock)?;
    let progress = Progress::detect();
    let mut rows = Vec::new();
    let mut newer = Vec::new();
    let mut all_ok = true;
    for (name, source) in &kernels.config.kernels {
        let task = progress.start(&format!("kernel {name}"));
        let kernel = match fetch {
            true => kernels.resolve(name, &mut |step| task.step(step)).map(Some),
            false => kernels.pin(name, &mut |step| task.step(step)).and_then(|_| kernels.cached(name).map(|(_, k)| k)),
        };
        task.finish(match &kernel {
            Ok(Some(_)) => "ready",
            Ok(None) => "not cached",
            Err(_) => "failed",
        });
        let pin = kernels.cached(name).ok().and_then(|(pin, _)| pin);
        // The package and version columns say what the lock pins; a local kernel shows its file.
        let (package, version) =
            pin.as_ref().map_or((source.to_string(), "-".into()), |p| (p.packages()[0].name.clone(), p.packages()[0].version.clone()));
        let row = match kernel {
            Ok(Some(kernel)) => {
                let config = kernel.config_hash.map_or("-".into(), |h| h[..12].to_string());
                [name.clone(), package, version, kernel.release, config, kernel.image.display().to_string()]
            }
            Ok(None) => [name.clone(), package, version, "-".into(), "-".into(), not_ready(source).into()],
            Err(e) => {
                all_ok = false;
                [name.clone(), package, version, "-".into(), "-".into(), format!("error: {e:#}")]
            }
        };
        rows.push(row);
        match kernels.newer(name) {
            Ok(Some(today)) => newer.push(format!(
                "  {name}: {today} (locked: {}); `ksnap lock --update {name}` moves it",
                pin.map_or("-".into(), |p| p.to_string())
            )),
            Ok(None) => {}
            Err(e) => newer.push(format!("  {name}: cannot ask apt for newer versions: {e:#}")),
        }
    }
    let header = ["NAME", "PACKAGE", "VERSION", "RELEASE", "CONFIG", "IMAGE"].map(String::from);
    print!("{}", ksnap::results::table(&[&[header][..], &rows].concat()));
    if !newer.is_empty() {
        println!("\nnewer than ksnap.lock:\n{}", newer.join("\n"));
    }
    Ok(all_ok)
}

/// `ksnap lock [--update [KERNEL…]]`.
fn lock_file(config: Option<PathBuf>, lock: LockMode, update: Option<Vec<String>>) -> Result<bool> {
    let config = load_config(config)?;
    if lock == LockMode::Frozen {
        anyhow::bail!("`ksnap lock` writes ksnap.lock, which --locked (or CI) forbids");
    }
    let kernels = Kernels::open(config, ksnap_vm::cache::Cache::user_default()?, lock)?;
    let all = update.as_ref().is_some_and(Vec::is_empty);
    let named = update.unwrap_or_default();
    let moves = kernels.lock(&named, all, &mut |note| eprintln!("ksnap: {note}"))?;
    for change in &moves {
        println!("{change}");
    }
    if moves.is_empty() {
        println!("ksnap.lock is up to date");
    }
    Ok(true)
}
