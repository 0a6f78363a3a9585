//! The commands behind `ksnap`'s subcommands, one function each, returning whether the command
//! succeeded (`Ok(false)`: it ran and found a failure, exit status 1; `Err`: it could not run, exit 2).
//! `main.rs` only parses the command line and calls these.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ksnap_vm::AccelChoice;

use crate::config::Config;
use crate::kernels::{Kernels, LockMode};
use crate::matrix::{self, Selection};
use crate::progress::Progress;
use crate::session::Session;

#[derive(Clone, Copy, clap::ValueEnum)]
/// How `ksnap diff` prints.
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
/// What `ksnap report` writes.
pub enum ReportFormat {
    Html,
    Markdown,
}

/// ksnap.toml at `path`, or found in this directory or a parent.
pub fn load_config(path: Option<PathBuf>) -> Result<Config> {
    match path {
        Some(path) => Config::load(&path),
        None => Config::discover(&std::env::current_dir().context("reading the current directory")?),
    }
}

/// How `ksnap run` starts each cell's VM.
#[derive(Debug, Clone, Copy)]
pub struct Boots {
    /// Runs per cell (`--repeat`), each restored from the cell's saved machine unless `boot_every_cell`.
    pub repeat: usize,
    /// Boot every run instead of restoring saved machines (`--boot-every-cell`).
    pub boot_every_cell: bool,
}

/// `ksnap run`: true when every cell passed (every run of it, with `--repeat`, with the same facts).
pub fn run(
    config: Option<PathBuf>,
    lock: LockMode,
    selection: Selection,
    accel: AccelChoice,
    jobs: Option<usize>,
    boots: Boots,
    view: crate::results::View,
) -> Result<bool> {
    let config = load_config(config)?;
    let cells = matrix::cells(&config, &selection)?;
    let mut session = Session::start(config, accel, Progress::detect(), lock)?;
    session.boot_every_cell = boots.boot_every_cell;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let work: Vec<matrix::Cell> =
        cells.iter().flat_map(|cell| std::iter::repeat_n(cell.clone(), boots.repeat)).collect();
    let results = session.run_cells(&work, jobs);
    // The first run of each cell is the one shown; every run counts for passing and for flakes.
    let mut runs: Vec<crate::session::CellRun> = Vec::new();
    let mut runs_of: std::collections::BTreeMap<matrix::Cell, Vec<crate::facts::Facts>> = Default::default();
    let mut failed_runs = 0;
    let mut starved_runs = 0;
    for run in results.runs {
        failed_runs += usize::from(!run.passed());
        starved_runs += usize::from(run.starved());
        let facts = runs_of.entry(run.cell.clone()).or_default();
        facts.push(run.facts());
        if facts.len() == 1 {
            runs.push(run);
        }
    }
    print!("{}", crate::results::render(&runs, view));
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
    if starved_runs > 0 {
        println!(
            "{starved_runs} cell runs were STARVED: their VMs waited for a CPU over {:.0}% of the time they wanted \
             one, {:.2}s or more (other work on this machine); what they measured may be the host's load, not \
             the kernel",
            crate::session::STARVED_ABOVE * 100.0,
            crate::session::STARVED_MIN_WAIT.as_secs_f64()
        );
    }
    let mut flakes = Vec::new();
    let repeat = boots.repeat;
    if repeat > 1 {
        for (cell, facts) in &runs_of {
            flakes.extend(crate::repeat::flakes(cell, facts));
        }
        let how = if boots.boot_every_cell { "each booted" } else { "restored from saved machines where possible" };
        println!(
            "\n--repeat {repeat} ({how}): {failed_runs} of {} runs failed",
            runs_of.values().map(Vec::len).sum::<usize>()
        );
        print!("{}", crate::repeat::render(&flakes, repeat));
    }
    // What could not run at all comes last, after everything that did: a late error hides nothing.
    if !results.errors.is_empty() || !results.not_started.is_empty() {
        for (cell, error) in &results.errors {
            eprintln!("ksnap: {cell} could not run: {error:#}");
        }
        if !results.not_started.is_empty() {
            eprintln!("ksnap: {} cells not started", results.not_started.len());
        }
        anyhow::bail!(
            "{} of {} cell runs could not run (see above)",
            results.errors.len() + results.not_started.len(),
            work.len()
        );
    }
    Ok(failed_runs == 0 && flakes.is_empty())
}

/// For each suite whose facts hold curves (`….curve.X.METRIC`), an SVG plot of them, one line per
/// kernel/variant and metric, next to the run's logs.
fn write_plots(session: &Session, runs: &[crate::session::CellRun]) -> Result<Vec<PathBuf>> {
    let mut by_suite: std::collections::BTreeMap<&str, Vec<(String, crate::facts::Facts)>> = Default::default();
    for run in runs {
        by_suite.entry(&run.cell.suite).or_default().push((run.cell.column(), run.facts()));
    }
    let mut written = Vec::new();
    for (suite, columns) in by_suite {
        let curves = crate::plot::curves(columns.iter().map(|(c, f)| (c.as_str(), f)));
        if curves.is_empty() {
            continue;
        }
        let path = session.log_dir.parent().unwrap_or(&session.log_dir).join(format!("{suite}-curves.svg"));
        std::fs::write(&path, crate::plot::svg_file(&curves, crate::report::CURVE_X_LABEL))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `ksnap diff`: true when the two columns agree.
#[allow(clippy::too_many_arguments)]
pub fn diff(
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
        let snapshots = crate::snapfile::read_dir(&crate::snapshot::dir(&config.root))?;
        let mut columns = crate::snapfile::columns(&snapshots);
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
    let diff = crate::diff::compare(a, &column_a, b, &column_b);
    match format {
        Format::Text => print!("{}", diff.to_text(crate::results::output_width())),
        Format::Markdown => print!("{}", diff.to_markdown()),
        Format::Json => println!("{}", diff.to_json()),
    }
    Ok(!diff.differs())
}

/// Run every (selected) suite that runs under the column's variant on its kernel, now.
fn fresh_column(session: &Session, column: &str, suites: &[String]) -> Result<crate::diff::Column> {
    let (kernel, variant) = column.split_once('+').unwrap_or((column, "default"));
    let selection = Selection { kernels: vec![kernel.into()], variants: vec![variant.into()], suites: suites.to_vec() };
    let mut facts = crate::diff::Column::new();
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
pub fn report(config: Option<PathBuf>, out: &std::path::Path, format: ReportFormat) -> Result<bool> {
    let config = load_config(config)?;
    let snapshots_dir = crate::snapshot::dir(&config.root);
    let snapshots = crate::snapfile::read_dir(&snapshots_dir)?;
    match format {
        ReportFormat::Markdown => print!("{}", crate::report::markdown(&snapshots)),
        ReportFormat::Html => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let out = out.canonicalize()?;
            let links = crate::report::relative_path(&out, &snapshots_dir.canonicalize()?);
            let page = out.join("index.html");
            std::fs::write(&page, crate::report::html(&snapshots, &links))
                .with_context(|| format!("writing {}", page.display()))?;
            println!("{}", page.display());
        }
    }
    Ok(true)
}

/// `ksnap history`: per suite, each fact that changes along the kernel versions of the default variant,
/// and the version where each value appears (from the committed snapshots).
pub fn history(config: Option<PathBuf>, suites: &[String], format: Format) -> Result<bool> {
    let config = load_config(config)?;
    for suite in suites {
        if !config.suites.contains_key(suite) {
            let known: Vec<&String> = config.suites.keys().collect();
            anyhow::bail!(
                "unknown suite `{suite}`; ksnap.toml defines: {}",
                known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let snapshots = crate::snapfile::read_dir(&crate::snapshot::dir(&config.root))?;
    let (axis, histories) = crate::history::compute(&snapshots, suites);
    match format {
        Format::Text => print!("{}", crate::history::text(&axis, &histories)),
        Format::Markdown => print!("{}", crate::history::markdown(&axis, &histories)),
        Format::Json => {
            let json = serde_json::json!({ "kernel_versions": axis, "facts": histories });
            println!("{}", serde_json::to_string_pretty(&json)?);
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
pub fn kernels(config: Option<PathBuf>, lock: LockMode, fetch: bool) -> Result<bool> {
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
            false => kernels.pin(name, &mut |step| task.step(step)).and_then(|_| kernels.cached(name)),
        };
        task.finish(match &kernel {
            Ok(Some(_)) => "ready",
            Ok(None) => "not cached",
            Err(_) => "failed",
        });
        let pin = kernels.locked(name).ok().flatten();
        // The package and version columns say what the lock pins; a local kernel shows its file.
        let (package, version) = pin.as_ref().map_or((source.to_string(), "-".into()), |p| {
            (p.packages()[0].name.clone(), p.packages()[0].version.clone())
        });
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
        let Some(pin) = pin else { continue };
        match kernels.newer(name, &pin) {
            Ok(Some(today)) => {
                newer.push(format!("  {name}: {today} (locked: {pin}); `ksnap lock --update {name}` moves it"))
            }
            Ok(None) => {}
            Err(e) => newer.push(format!("  {name}: cannot ask apt for newer versions: {e:#}")),
        }
    }
    // --fetch readies everything the matrix downloads or builds, the kernel selftests too: a CI job that
    // fills the cache for later ones (the workflow `ksnap init` writes) leaves nothing to fetch.
    let mut selftests = None;
    if fetch && kernels.config.suites.values().any(|s| s.runs_selftests()) {
        let task = progress.start("kernel selftests");
        let built = crate::session::build_selftests(&kernels.config, &kernels, &kernels.cache, &mut |s| task.step(s));
        task.finish(if built.is_ok() { "ready" } else { "failed" });
        all_ok &= built.is_ok();
        selftests = Some(match built {
            Ok(built) => {
                format!("kernel selftests: {} {}, {}", built.source.name, built.source.version, built.toolchain)
            }
            Err(e) => format!("kernel selftests: error: {e:#}"),
        });
    }
    let header = ["NAME", "PACKAGE", "VERSION", "RELEASE", "CONFIG", "IMAGE"].map(String::from);
    print!("{}", crate::results::table(&[&[header][..], &rows].concat()));
    if let Some(selftests) = selftests {
        println!("{selftests}");
    }
    if !newer.is_empty() {
        println!("\nnewer than ksnap.lock:\n{}", newer.join("\n"));
    }
    Ok(all_ok)
}

/// `ksnap init [DIR]`: write the project, list its files and say what comes next.
pub fn init(dir: &std::path::Path, name: Option<&str>, ksnap_path: Option<PathBuf>) -> Result<bool> {
    use crate::scaffold::KsnapSource;
    let source = match ksnap_path {
        Some(path) => {
            let path = std::fs::canonicalize(&path).with_context(|| format!("--ksnap-path {}", path.display()))?;
            if !path.join("harness").join("Cargo.toml").is_file() || !path.join("probe").join("Cargo.toml").is_file() {
                bail!("--ksnap-path {}: not a checkout of ksnap's repository (no harness/ and probe/)", path.display());
            }
            KsnapSource::Checkout(path)
        }
        None => KsnapSource::upstream(),
    };
    let written = crate::scaffold::init(dir, name, &source)?;
    for path in &written {
        println!("  wrote {}", path.display());
    }
    println!(
        "\nnext, in {}:\n  ksnap lock          pin the kernels (ksnap.lock: commit it)\n  ksnap run           \
         boot them and print what the probe saw\n  cargo test          the same as tests, writing snapshots/*.snap.new\n  \
         cargo insta review  read and accept them, then commit snapshots/",
        dir.display()
    );
    Ok(true)
}

/// `ksnap lock [--update [KERNEL…]]`.
pub fn lock_file(config: Option<PathBuf>, lock: LockMode, update: Option<Vec<String>>) -> Result<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_refuses_to_write_a_frozen_lock() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("ksnap.toml");
        std::fs::write(&toml, "[kernels.k]\napt = \"x\"\n[suites.s]\nprobes = [{ exe = \"p\" }]\n").unwrap();
        let err = lock_file(Some(toml), LockMode::Frozen, None).unwrap_err().to_string();
        assert!(err.contains("which --locked (or CI) forbids"), "{err}");
        assert!(!dir.path().join("ksnap.lock").exists());
    }

    #[test]
    fn a_kernel_not_ready_says_how_to_get_it() {
        let apt = ksnap_vm::kernel::KernelSource::Apt { package: "p".into(), suite: None };
        assert_eq!(not_ready(&apt), "not cached: ksnap kernels --fetch");
    }
}
