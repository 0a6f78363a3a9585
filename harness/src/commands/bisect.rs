//! `ksnap bisect FACT --kernel LINE`: the two adjacent point releases of a kernel line between which a
//! fact (or any fact of a suite) changes, found by booting about log2(N) of the releases apt serves, and
//! why: the changelog entries between them (those in the suite's `areas` first) and their config
//! difference.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::releases::{nearest, Release};
use ksnap_vm::AccelChoice;

use crate::facts::bisect::{suggest, BisectReport, Observation, Outcome, Search, Watched};
use crate::facts::snapshot;
use crate::progress::Progress;
use crate::project::config::Config;
use crate::project::kernels::{self, LockMode};
use crate::project::matrix::Cell;
use crate::session::Session;

use super::{load_config, PrintFormat};

/// How many changes the "likeliest first" list names.
const LIKELIEST: usize = 5;

/// The command line of `ksnap bisect`.
#[derive(Debug, clap::Args)]
pub struct BisectArgs {
    /// A fact key as snapshots have it (`proc_mem.write_ro_private.result`), or a suite's name to watch
    /// all of its facts.
    pub fact: String,
    /// The kernel line of ksnap.toml whose releases are searched (an apt kernel: `ksnap releases LINE`
    /// lists them).
    #[arg(long, value_name = "LINE")]
    pub kernel: String,
    /// The variant the suite runs under.
    #[arg(long, default_value = "default")]
    pub variant: String,
    /// The suite that observes FACT (default: the suite with FACT's probe).
    #[arg(long)]
    pub suite: Option<String>,
    /// The oldest release to consider, a Debian version (default: the oldest apt serves).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,
    /// The newest release to consider (default: the newest apt serves).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PrintFormat,
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: AccelChoice,
}

/// `ksnap bisect`: true when it found the change, or there was none between the ends.
pub fn bisect(args: BisectArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let mut config = load_config(config)?;
    // What needs no apt is checked first.
    let (watched, suite) = watched(&config, &args)?;
    config.variants.get(&args.variant).with_context(|| format!("unknown variant `{}`", args.variant))?;
    let cache = Cache::user_default()?;
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let (family, releases) = kernels::releases(&config, &archives, &args.kernel)?;
    let releases = between(&releases, &args, &family.to_string())?;
    let mut names = Vec::new();
    for release in releases {
        names.push(kernels::add_release(&mut config, &args.kernel, release)?);
    }
    let interests: Vec<_> =
        crate::present::moves::interests(&config).into_iter().filter(|interest| interest.name == suite).collect();
    let mut session = Session::start(config, args.accel, Progress::detect(), lock_mode)?;
    // Each release runs one cell: a machine saved for its other cells would never be restored.
    session.boot_every_cell = true;
    let cell =
        |index: usize| Cell { kernel: names[index].clone(), variant: args.variant.clone(), suite: suite.clone() };
    let versions: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
    let width = crate::present::text::output_width();
    eprintln!(
        "ksnap: bisecting `{}` over {} releases of {family} ({} … {}), suite {suite}, variant {}",
        watched.name(),
        versions.len(),
        versions[0],
        versions[versions.len() - 1],
        args.variant
    );
    let report = run_search(&session, &versions, &names, watched, &cell, width)?;
    let why = match report.outcome {
        Outcome::NothingToBisect => Vec::new(),
        Outcome::Found | Outcome::Narrowed => {
            let (old, new) = (report.old.index, report.new.index);
            let keys = std::iter::once(report.watched.name()).chain(report.changes.iter().map(|c| c.key.as_str()));
            let hints = crate::present::moves::hint_words(keys);
            let ends = ((names[old].as_str(), versions[old]), (names[new].as_str(), versions[new]));
            why(&session, ends, &interests, &hints)
        }
    };
    print_report(&report, &why, versions[report.new.index], args.format, width);
    Ok(true)
}

/// The search itself: each step one cell, with a progress line. Kernels the next step may need are
/// fetched (at nice 19) while a VM runs: both possible midpoints, and the neighbour tried if this one
/// fails to boot. `Session::kernel` makes each once.
fn run_search(
    session: &Session,
    versions: &[&str],
    names: &[String],
    watched: Watched,
    cell: &dyn Fn(usize) -> Cell,
    width: usize,
) -> Result<BisectReport> {
    let mut search = Search::new(versions, watched).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut number = 0;
    std::thread::scope(|scope| -> Result<()> {
        while let Some(index) = search.next() {
            for next in search.may_need_after(index) {
                let name = &names[next];
                scope.spawn(move || {
                    crate::session::schedule::yield_cpu_to_vms();
                    let _ = session.kernel(name);
                });
            }
            let observation = observe(session, &cell(index));
            number += 1;
            let step = search.record(index, observation).map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("{}", crate::present::bisect::step_line(number, &step, width));
        }
        Ok(())
    })?;
    Ok(search.report().expect("the search is over"))
}

/// The report and the explanation, as text (`new` is the newer end's version) or JSON.
fn print_report(report: &BisectReport, why: &[String], new: &str, format: PrintFormat, width: usize) {
    match format {
        PrintFormat::Json => {
            println!("{}", serde_json::json!({ "bisect": report, "why": why }));
        }
        PrintFormat::Text | PrintFormat::Markdown => {
            print!("{}", crate::present::bisect::text(report, width));
            if !why.is_empty() {
                println!("\nwhy, from {new}'s changelog and the two kernels' configs:");
                for line in why {
                    println!("{line}");
                }
            }
        }
    }
}

/// The releases from `--from` to `--to` (both served), at least two.
fn between<'r>(releases: &'r [Release], args: &BisectArgs, family: &str) -> Result<&'r [Release]> {
    let position = |version: &Option<String>, default: usize| -> Result<usize> {
        let Some(version) = version else { return Ok(default) };
        releases.iter().position(|r| &r.version == version).with_context(|| {
            let near: Vec<&str> = nearest(releases, version, 5).iter().map(|r| r.version.as_str()).collect();
            format!(
                "apt serves no release {version} of {family}; the nearest are {} (`ksnap releases {}` lists all)",
                near.join(", "),
                args.kernel
            )
        })
    };
    let from = position(&args.from, 0)?;
    let to = position(&args.to, releases.len().saturating_sub(1))?;
    if to <= from {
        bail!(
            "kernel `{}`: {} release{} of {family} between the ends given: bisecting needs two, oldest first \
             (`ksnap releases {}` lists them)",
            args.kernel,
            (to + 1).saturating_sub(from),
            if to + 1 == from + 1 { "" } else { "s" },
            args.kernel
        );
    }
    Ok(&releases[from..=to])
}

/// What is watched and which suite observes it: FACT is a suite, or a fact of the suite named by
/// `--suite`, or of the suite with FACT's probe. An unknown fact is refused before anything boots, with
/// the nearest keys the committed snapshots know.
fn watched(config: &Config, args: &BisectArgs) -> Result<(Watched, String)> {
    if config.suites.contains_key(&args.fact) {
        return Ok((Watched::Suite(args.fact.clone()), args.fact.clone()));
    }
    let probe = args.fact.split('.').next().unwrap_or_default();
    let suite = match &args.suite {
        Some(suite) if config.suites.contains_key(suite) => Some(suite.clone()),
        Some(suite) => bail!("unknown suite `{suite}`"),
        None => config.suites.values().find(|s| s.probes.iter().any(|p| p.name == probe)).map(|s| s.name.clone()),
    };
    let known = known_facts(config, suite.as_deref());
    match suite {
        Some(suite) if known.is_empty() || known.iter().any(|k| k == &args.fact) => {
            Ok((Watched::Fact(args.fact.clone()), suite))
        }
        _ => {
            let suggestions = suggest(&args.fact, known.iter().map(String::as_str));
            bail!(
                "no fact `{}` in the committed snapshots{}{}",
                args.fact,
                if suggestions.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean: {}", suggestions.join(", "))
                },
                ". A suite's name watches all of its facts; --suite names the suite of a fact no snapshot has yet"
            )
        }
    }
}

/// Every fact key the committed snapshots hold (of `suite`, when given).
fn known_facts(config: &Config, suite: Option<&str>) -> Vec<String> {
    let snapshots = snapshot::read::read_dir(&snapshot::dir(&config.root)).unwrap_or_default();
    let mut keys: Vec<String> = snapshots
        .iter()
        .filter(|s| suite.is_none_or(|suite| s.suite == suite))
        .flat_map(|s| s.facts.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// One candidate observed: its cell's facts, or why it cannot say (no kernel, no boot, a panic).
fn observe(session: &Session, cell: &Cell) -> Observation {
    match session.run_cell(cell) {
        Err(e) => Observation::Skip(format!("{e:#}")),
        Ok(run) if !run.report.outcome.is_completed() => Observation::Skip(run.report.outcome.to_string()),
        Ok(run) => Observation::Facts(run.facts()),
    }
}

/// The changelog entries between the two ends and their configs' difference, as `ksnap lock --update`
/// explains a move; a line saying why not when it cannot.
fn why(
    session: &Session,
    ((old_name, old_version), (new_name, new_version)): ((&str, &str), (&str, &str)),
    interests: &[crate::present::moves::SuiteInterest],
    hints: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let explained = || -> Result<Vec<String>> {
        let (old, new) = (session.kernel(old_name)?, session.kernel(new_name)?);
        let changelog = session.changelog(new_name, &new)?;
        let mut lines = Vec::new();
        if let Some(text) = &changelog {
            let entries = ksnap_vm::kernel::changelog::parse(text);
            let between = ksnap_vm::kernel::changelog::since(&entries, old_version);
            let likeliest = crate::present::moves::likeliest(&between, hints, LIKELIEST);
            if !likeliest.is_empty() {
                lines.push("  likeliest first (titles sharing the most words with the facts that changed):".into());
                lines.extend(likeliest.iter().map(|line| format!("    {}", crate::present::text::shorten(line, 96))));
            }
        }
        let explanation =
            crate::present::moves::explanation(&old, old_version, &new, new_version, changelog.as_deref(), interests);
        lines.extend(explanation);
        Ok(lines)
    };
    explained().unwrap_or_else(|e| vec![format!("  (cannot explain the change: {e:#})")])
}
