//! `ksnap bisect FACT --kernel LINE`: the two adjacent point releases of a kernel line between which a
//! fact (or any fact of a suite) changes, found by booting about log2(N) of the releases apt serves, and
//! why: the changelog entries between them (those in the suite's `areas` first) and their config
//! difference. `ksnap bisect FACT --tree PATH --good REV --bad REV --kconfig FRAGMENT`: the same search
//! over the commits of a local kernel git repository, each built (incrementally, in one checkout of
//! ksnap's) from tinyconfig and the fragments; why: the first new commit itself.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::build::git::{Commit, GitTree};
use ksnap_vm::kernel::releases::{nearest, Release};
use ksnap_vm::AccelChoice;

use crate::facts::bisect::{suggest, BisectReport, Observation, Outcome, Search, Watched};
use crate::facts::snapshot;
use crate::present::bisect::Along;
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
#[command(group(clap::ArgGroup::new("candidates").required(true).args(["kernel", "tree"])))]
pub struct BisectArgs {
    /// A fact key as snapshots have it (`proc_mem.write_ro_private.result`), or a suite's name to watch
    /// all of its facts.
    pub fact: String,
    /// The kernel line of ksnap.toml whose releases are searched (an apt kernel: `ksnap releases LINE`
    /// lists them).
    #[arg(long, value_name = "LINE")]
    pub kernel: Option<String>,
    /// A local kernel git repository whose commits from --good to --bad are searched, each built from
    /// tinyconfig and --kconfig. It is only read: ksnap checks commits out into a clone in its cache.
    #[arg(long, value_name = "PATH", requires_all = ["good", "bad", "kconfig"])]
    pub tree: Option<PathBuf>,
    /// With --tree: a commit with the old behaviour (a hash, tag or branch).
    #[arg(long, value_name = "REV", requires = "tree")]
    pub good: Option<String>,
    /// With --tree: a later commit with the new behaviour.
    #[arg(long, value_name = "REV", requires = "tree")]
    pub bad: Option<String>,
    /// With --tree: a Kconfig fragment merged on top of tinyconfig; repeat it for more, later ones win
    /// (ksnap's own vm/configs/minimal boots its probes).
    #[arg(long, value_name = "FRAGMENT", requires = "tree")]
    pub kconfig: Vec<PathBuf>,
    /// The variant the suite runs under.
    #[arg(long, default_value = "default")]
    pub variant: String,
    /// The suite that observes FACT (default: the suite with FACT's probe).
    #[arg(long)]
    pub suite: Option<String>,
    /// The oldest release to consider, a Debian version (default: the oldest apt serves).
    #[arg(long, value_name = "VERSION", conflicts_with = "tree")]
    pub from: Option<String>,
    /// The newest release to consider (default: the newest apt serves).
    #[arg(long, value_name = "VERSION", conflicts_with = "tree")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PrintFormat,
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: AccelChoice,
}

/// `ksnap bisect`: true when it found the change, or there was none between the ends.
pub fn bisect(args: BisectArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let mut config = load_config(config)?;
    // What needs no apt, git or VM is checked first.
    let (watched, suite) = watched(&config, &args)?;
    config.variants.get(&args.variant).with_context(|| format!("unknown variant `{}`", args.variant))?;
    let candidates = match (&args.kernel, &args.tree) {
        (Some(line), _) => releases(&mut config, &args, line)?,
        (None, Some(path)) => commits(&mut config, &args, path)?,
        (None, None) => bail!("name what to search: --kernel LINE (its releases) or --tree PATH (its commits)"),
    };
    let interests: Vec<_> =
        crate::present::moves::interests(&config).into_iter().filter(|interest| interest.name == suite).collect();
    let mut session = Session::start(config, args.accel, Progress::detect(), lock_mode)?;
    // Each candidate runs one cell: a machine saved for its other cells would never be restored.
    session.boot_every_cell = true;
    let names = &candidates.names;
    let cell =
        |index: usize| Cell { kernel: names[index].clone(), variant: args.variant.clone(), suite: suite.clone() };
    let labels: Vec<&str> = candidates.labels.iter().map(String::as_str).collect();
    let width = crate::present::text::output_width();
    eprintln!(
        "ksnap: bisecting `{}` over {} {} ({} … {}), suite {suite}, variant {}",
        watched.name(),
        labels.len(),
        candidates.what,
        labels[0],
        labels[labels.len() - 1],
        args.variant
    );
    let report = run_search(&session, &labels, names, watched, &cell, candidates.prefetch(), width)?;
    let (old, new) = (report.old.index, report.new.index);
    let why = match (report.outcome, &candidates.origin) {
        (Outcome::NothingToBisect, _) => Vec::new(),
        (_, Origin::Releases) => {
            let keys = std::iter::once(report.watched.name()).chain(report.changes.iter().map(|c| c.key.as_str()));
            let hints = crate::present::moves::hint_words(keys);
            let ends = ((names[old].as_str(), labels[old]), (names[new].as_str(), labels[new]));
            why(&session, ends, &interests, &hints)
        }
        (_, Origin::Commits { tree, commits }) => {
            let kernels = (session.kernel(&names[old]), session.kernel(&names[new]));
            commit_why(tree, (&commits[old], &commits[new]), new - old, kernels, &interests, width)
        }
    };
    let heading = match &candidates.origin {
        Origin::Releases => format!("why, from {}'s changelog and the two kernels' configs:", labels[new]),
        Origin::Commits { .. } => "why: the first new commit, and the two builds' configs:".to_string(),
    };
    let along = match &candidates.origin {
        Origin::Releases => Along::Releases,
        Origin::Commits { .. } => Along::Commits,
    };
    print_report(&report, along, &why, &heading, args.format, width);
    Ok(true)
}

/// What is searched: kernels of the config, oldest first, and where they come from.
struct Candidates {
    /// The kernels' names in the config.
    names: Vec<String>,
    /// How the report names each: a Debian version, or a commit's short id.
    labels: Vec<String>,
    /// What they are, for the first line (`releases of linux-image-5.10…`).
    what: String,
    origin: Origin,
}

enum Origin {
    /// Releases apt serves, explained by the newer one's changelog.
    Releases,
    /// Commits of a local repository, each a build.
    Commits { tree: GitTree, commits: Vec<Commit> },
}

impl Candidates {
    /// Whether the kernels the next step may need are fetched while a VM runs: downloads yes; builds no,
    /// since they share one checkout and would only queue behind each other, building kernels never booted.
    fn prefetch(&self) -> bool {
        matches!(self.origin, Origin::Releases)
    }
}

/// The releases of `line` from `--from` to `--to`, made kernels of `config`.
fn releases(config: &mut Config, args: &BisectArgs, line: &str) -> Result<Candidates> {
    let cache = Cache::user_default()?;
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let (family, releases) = kernels::releases(config, &archives, line)?;
    let releases = between(&releases, args, line, &family.to_string())?;
    let mut names = Vec::new();
    for release in releases {
        names.push(kernels::add_release(config, line, release)?);
    }
    Ok(Candidates {
        names,
        labels: releases.iter().map(|r| r.version.clone()).collect(),
        what: format!("releases of {family}"),
        origin: Origin::Releases,
    })
}

/// The commits of the repository at `path` from `--good` to `--bad`, made kernels of `config`.
fn commits(config: &mut Config, args: &BisectArgs, path: &std::path::Path) -> Result<Candidates> {
    let fragments = args
        .kconfig
        .iter()
        .map(|fragment| {
            std::path::absolute(fragment)
                .ok()
                .filter(|path| path.is_file())
                .with_context(|| format!("--kconfig {}: no such file", fragment.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let tree = GitTree::open(path)?;
    let (good, bad) = (
        args.good.as_deref().expect("clap: --tree requires --good"),
        args.bad.as_deref().expect("clap: --tree requires --bad"),
    );
    let (good, bad) = (tree.commit(good)?, tree.commit(bad)?);
    let commits = tree.range(&good, &bad)?;
    if commits.len() < 2 {
        bail!("--good and --bad are the same commit ({}): nothing lies between them", good.short());
    }
    let names = commits.iter().map(|commit| kernels::add_commit(config, &tree.path, commit, &fragments)).collect();
    Ok(Candidates {
        names,
        labels: commits.iter().map(|c| c.short().to_string()).collect(),
        what: format!("commits of {}", tree.path.display()),
        origin: Origin::Commits { tree, commits },
    })
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
    prefetch: bool,
    width: usize,
) -> Result<BisectReport> {
    let mut search = Search::new(versions, watched).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut number = 0;
    std::thread::scope(|scope| -> Result<()> {
        while let Some(index) = search.next() {
            for next in search.may_need_after(index).into_iter().filter(|_| prefetch) {
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

/// The report and the explanation (under `heading`), as text or JSON.
fn print_report(report: &BisectReport, along: Along, why: &[String], heading: &str, format: PrintFormat, width: usize) {
    match format {
        PrintFormat::Json => {
            println!("{}", serde_json::json!({ "bisect": report, "why": why }));
        }
        PrintFormat::Text | PrintFormat::Markdown => {
            print!("{}", crate::present::bisect::text(report, along, width));
            if !why.is_empty() {
                println!("\n{heading}");
                for line in why {
                    println!("{line}");
                }
            }
        }
    }
}

/// The releases from `--from` to `--to` (both served), at least two.
fn between<'r>(releases: &'r [Release], args: &BisectArgs, line: &str, family: &str) -> Result<&'r [Release]> {
    let position = |version: &Option<String>, default: usize| -> Result<usize> {
        let Some(version) = version else { return Ok(default) };
        releases.iter().position(|r| &r.version == version).with_context(|| {
            let near: Vec<&str> = nearest(releases, version, 5).iter().map(|r| r.version.as_str()).collect();
            format!(
                "apt serves no release {version} of {family}; the nearest are {} (`ksnap releases {}` lists all)",
                near.join(", "),
                line
            )
        })
    };
    let from = position(&args.from, 0)?;
    let to = position(&args.to, releases.len().saturating_sub(1))?;
    if to <= from {
        bail!(
            "kernel `{}`: {} release{} of {family} between the ends given: bisecting needs two, oldest first \
             (`ksnap releases {}` lists them)",
            line,
            (to + 1).saturating_sub(from),
            if to + 1 == from + 1 { "" } else { "s" },
            line
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

/// Why, for commits: the first new commit, whether the last old one is its parent, and the two builds'
/// configs. `apart` is how many commits separate the two (more than one: the ones between were skipped).
fn commit_why(
    tree: &GitTree,
    (old, new): (&Commit, &Commit),
    apart: usize,
    (old_kernel, new_kernel): (Result<ksnap_vm::kernel::Kernel>, Result<ksnap_vm::kernel::Kernel>),
    interests: &[crate::present::moves::SuiteInterest],
    width: usize,
) -> Vec<String> {
    let shorten = |line: String| crate::present::text::shorten(&line, width);
    let git = format!("git -C {}", tree.path.display());
    let mut lines = vec![shorten(format!("  first new commit: {new}"))];
    // Commands are printed whole, to be copied, however long the repository's path.
    let (said, command) = if apart > 1 {
        (
            "  the change is one of the commits in between, which could not be observed:".to_string(),
            format!("{git} log --oneline {}..{}", old.short(), new.short()),
        )
    } else if new.parents.contains(&old.id) {
        (
            format!("  its parent {} is the last old commit; the change:", old.short()),
            format!("{git} show {}", new.short()),
        )
    } else {
        (
            format!(
                "  the last old commit, {}, is not its parent (the range has merges, searched in topological \
                 order); the commits between:",
                old.short()
            ),
            format!("{git} log --oneline {}..{}", old.short(), new.short()),
        )
    };
    lines.push(shorten(said));
    lines.push(format!("    {command}"));
    match (old_kernel, new_kernel) {
        (Ok(old), Ok(new)) => lines.extend(crate::present::moves::config_explanation(&old, &new, interests)),
        (Err(e), _) | (_, Err(e)) => lines.push(format!("  (cannot compare the configs: {e:#})")),
    }
    lines
}
