//! `ksnap run`: run suites on kernels and print the results.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ksnap_vm::AccelChoice;

use crate::present::results::{FactsShown, View};
use crate::progress::Progress;
use crate::project::kernels::{LockMode, RELEASE_AT};
use crate::project::matrix::{self, Selection};
use crate::session::Session;

use super::load_config;

/// The command line of `ksnap run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Only this kernel (repeatable). Default: every kernel in ksnap.toml. `KERNEL@VERSION` (e.g.
    /// `5.10@5.10.251-5`) is one release of an apt kernel's line (`ksnap releases KERNEL` lists them):
    /// downloaded and cached as any kernel, never written to ksnap.lock.
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

/// `ksnap run`: true when every cell passed (every run of it, with `--repeat`, with the same facts) and
/// no cell's facts differ from its committed snapshot (a cell without one is named, and does not fail).
pub fn run(args: RunArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let RunArgs { kernels, suites, variants, accel, jobs, repeat, boot_every_cell, facts } = args;
    let view = View::detect(facts);
    let selection = Selection { kernels, variants, suites };
    let repeat = usize::from(repeat);
    let mut config = load_config(config)?;
    crate::project::kernels::add_releases(&mut config, &selection.kernels, &ksnap_vm::cache::Cache::user_default()?)?;
    let cells = matrix::cells(&config, &selection)?;
    let mut session = Session::start(config, accel, Progress::detect(), lock_mode)?;
    session.boot_every_cell = boot_every_cell;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let work: Vec<matrix::Cell> = cells.iter().flat_map(|cell| std::iter::repeat_n(cell.clone(), repeat)).collect();
    let results = session.run_cells(&work, jobs);
    let runs = Runs::of(results.runs);
    // Every suite's history whole, where a suite too long for the screen is summarised from.
    let facts = runs.shown_facts();
    let whole = session.log_dir.parent().unwrap_or(&session.log_dir).join("history.txt");
    std::fs::write(&whole, crate::present::results::whole_history(&runs.shown, &facts, view.width))
        .with_context(|| format!("writing {}", whole.display()))?;
    let here = std::env::current_dir().unwrap_or_default();
    let whole_shown = whole.strip_prefix(&here).unwrap_or(&whole).display().to_string();
    let more = |_: &str| whole_shown.clone();
    print!("{}", crate::present::results::render(&runs.shown, &facts, view, &more));
    for path in write_plots(&session, &runs.shown)? {
        let path = path.strip_prefix(&here).unwrap_or(&path).display().to_string();
        print!("{}", crate::present::text::hanging(&format!("plot: {path}"), view.width));
    }
    print_totals(&runs, session.accel, view.width);
    let matching = print_snapshot_answer(&session, &runs)?;
    let flakes = if repeat > 1 { repeat_flakes(&runs, repeat, boot_every_cell) } else { Vec::new() };
    // What could not run at all comes last, after everything that did: a late error hides nothing.
    bail_on_cells_not_run(&results.errors, &results.not_started, work.len())?;
    Ok(runs.failed == 0 && flakes.is_empty() && matching)
}

/// Whether the kernels still behave as the committed snapshots say: each passed cell's facts against its
/// snapshot (a release, `LINE@VERSION`, has none by design and is not compared). Printed; true when no
/// compared cell differs. Writes nothing.
fn print_snapshot_answer(session: &Session, runs: &Runs) -> Result<bool> {
    let dir = crate::facts::snapshot::dir(&session.config.root);
    let mut answers = Vec::new();
    for run in runs.shown.iter().filter(|run| run.passed()) {
        // The shown run's facts are the first of its cell's, flattened once by `Runs::of`.
        let Some(facts) = runs.facts_of.get(&run.cell).and_then(|facts| facts.first()) else { continue };
        if run.cell.kernel.contains(RELEASE_AT) {
            continue;
        }
        answers.push(crate::facts::snapshot::compare::against(&dir, &run.cell, facts)?);
    }
    let failed = runs.shown.iter().filter(|run| !run.passed()).count();
    if answers.is_empty() && failed == 0 {
        return Ok(true);
    }
    let shown = format!("{}/", dir.strip_prefix(&session.config.root).unwrap_or(&dir).display());
    let width = crate::present::text::output_width();
    print!("{}", crate::present::snapshots::answer(&answers, failed, &shown, width));
    Ok(!answers.iter().any(|a| matches!(a.agreement, crate::facts::snapshot::compare::Agreement::Differs(_))))
}

/// The runs of a `ksnap run`, a cell's repeats gathered.
struct Runs {
    /// The first run of each cell: the one shown.
    shown: Vec<crate::session::CellRun>,
    /// Every run's facts, by cell.
    facts_of: std::collections::BTreeMap<matrix::Cell, Vec<crate::facts::Facts>>,
    /// Runs (of any cell, any repeat) that did not pass.
    failed: usize,
    /// Runs whose VM was starved of CPU.
    starved: usize,
}

impl Runs {
    /// The facts of each shown run, in order: its cell's first, flattened once by [`Runs::of`].
    fn shown_facts(&self) -> Vec<&crate::facts::Facts> {
        self.shown.iter().map(|run| &self.facts_of[&run.cell][0]).collect()
    }

    fn of(results: Vec<crate::session::CellRun>) -> Runs {
        // The first run of each cell is the one shown; every run counts for passing and for flakes.
        let mut runs = Runs { shown: Vec::new(), facts_of: Default::default(), failed: 0, starved: 0 };
        for run in results {
            runs.failed += usize::from(!run.passed());
            runs.starved += usize::from(run.starved());
            let facts = runs.facts_of.entry(run.cell.clone()).or_default();
            facts.push(run.facts());
            if facts.len() == 1 {
                runs.shown.push(run);
            }
        }
        runs
    }
}

/// The closing lines: how many cells passed, and how many runs were starved of CPU (if any were).
fn print_totals(runs: &Runs, accel: ksnap_vm::Accel, width: usize) {
    let failed = runs.shown.iter().filter(|r| !r.passed()).count();
    let cells = match runs.shown.len() {
        1 => "1 cell".to_string(),
        n => format!("{n} cells"),
    };
    println!("\n{cells}, {} passed, {} failed (accelerator {accel})", runs.shown.len() - failed, failed);
    if runs.starved > 0 {
        let starved = format!(
            "{} cell runs were STARVED: their VMs waited for a CPU over {:.0}% of the time they wanted \
             one, {:.2}s or more (other work on this machine); what they measured may be the host's load, not \
             the kernel",
            runs.starved,
            crate::session::STARVED_ABOVE * 100.0,
            crate::session::STARVED_MIN_WAIT.as_secs_f64()
        );
        print!("{}", crate::present::text::wrap(&starved, width));
    }
}

/// With `--repeat`: print how many runs failed and each fact whose value differed between runs of a
/// cell, and return those flakes.
fn repeat_flakes(runs: &Runs, repeat: usize, boot_every_cell: bool) -> Vec<crate::facts::repeat::Flake> {
    let mut flakes = Vec::new();
    for (cell, facts) in &runs.facts_of {
        flakes.extend(crate::facts::repeat::flakes(cell, facts));
    }
    let how = if boot_every_cell { "each booted" } else { "restored from saved machines where possible" };
    println!(
        "\n--repeat {repeat} ({how}): {} of {} runs failed",
        runs.failed,
        runs.facts_of.values().map(Vec::len).sum::<usize>()
    );
    print!("{}", crate::facts::repeat::render(&flakes, repeat));
    flakes
}

/// The cells that could not run (a host-side error) or were not started, each said on stderr, and then
/// an error; nothing when every cell ran. `work`: how many cell runs there were.
fn bail_on_cells_not_run(
    errors: &[(matrix::Cell, anyhow::Error)],
    not_started: &[matrix::Cell],
    work: usize,
) -> Result<()> {
    if !errors.is_empty() || !not_started.is_empty() {
        for (cell, error) in errors {
            eprintln!("ksnap: {cell} could not run: {error:#}");
        }
        if !not_started.is_empty() {
            eprintln!("ksnap: {} cells not started", not_started.len());
        }
        anyhow::bail!("{} of {} cell runs could not run (see above)", errors.len() + not_started.len(), work);
    }
    Ok(())
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
