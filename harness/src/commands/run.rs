//! `ksnap run`: run suites on kernels and print the results.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ksnap_vm::AccelChoice;

use crate::present::results::{FactsShown, View};
use crate::progress::Progress;
use crate::project::kernels::LockMode;
use crate::project::matrix::{self, Selection};
use crate::session::Session;

use super::load_config;

/// The command line of `ksnap run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Only this kernel (repeatable). Default: every kernel in ksnap.toml.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// Only this suite (repeatable).
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    /// Only this variant (repeatable).
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,
    /// Accelerator: `auto` uses KVM only where a test guest really runs under it.
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: AccelChoice,
    /// VMs at once (default: the number of CPUs).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Run every cell N times and report each fact whose value differed between runs (exit 1 if any
    /// did): flakes found before they are snapshotted. Runs restore the cell's saved machine as any run
    /// does (as `cargo test` runs them); with --boot-every-cell each run boots.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub repeat: u16,
    /// Boot every cell's VM instead of restoring the machine its kernel and VM share, saved when init was
    /// ready (with --repeat: flakes that come from the boot, which a saved state would hide).
    #[arg(long)]
    pub boot_every_cell: bool,
    /// Which facts to print per suite: those that differ across the columns that ran, or all.
    #[arg(long, value_enum, default_value = "differing")]
    pub facts: FactsShown,
}

/// `ksnap run`: true when every cell passed (every run of it, with `--repeat`, with the same facts).
pub fn run(args: RunArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let RunArgs { kernels, suites, variants, accel, jobs, repeat, boot_every_cell, facts } = args;
    let view = View::detect(facts);
    let selection = Selection { kernels, variants, suites };
    let repeat = usize::from(repeat);
    let config = load_config(config)?;
    let cells = matrix::cells(&config, &selection)?;
    let mut session = Session::start(config, accel, Progress::detect(), lock_mode)?;
    session.boot_every_cell = boot_every_cell;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let work: Vec<matrix::Cell> = cells.iter().flat_map(|cell| std::iter::repeat_n(cell.clone(), repeat)).collect();
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
    print!("{}", crate::present::results::render(&runs, view));
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
    if repeat > 1 {
        for (cell, facts) in &runs_of {
            flakes.extend(crate::facts::repeat::flakes(cell, facts));
        }
        let how = if boot_every_cell { "each booted" } else { "restored from saved machines where possible" };
        println!(
            "\n--repeat {repeat} ({how}): {failed_runs} of {} runs failed",
            runs_of.values().map(Vec::len).sum::<usize>()
        );
        print!("{}", crate::facts::repeat::render(&flakes, repeat));
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
        let curves = crate::present::plot::curves(columns.iter().map(|(c, f)| (c.as_str(), f)));
        if curves.is_empty() {
            continue;
        }
        let path = session.log_dir.parent().unwrap_or(&session.log_dir).join(format!("{suite}-curves.svg"));
        std::fs::write(&path, crate::present::plot::svg_file(&curves, crate::present::report::CURVE_X_LABEL))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
