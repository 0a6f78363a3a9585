//! `ksnap history --releases LINE`: the suites run on every release of a kernel line apt serves, each
//! fact's timeline along the releases, and under each change the newer release's likeliest changelog
//! entries. The results go to a file the user keeps (never snapshots/), which shards of a CI job merge.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::AccelChoice;

use crate::facts::sweep::{steps, Observed, Shard, SweepFile};
use crate::progress::Progress;
use crate::project::config::Config;
use crate::project::kernels::{self, LockMode};
use crate::project::matrix::{self, Selection};
use crate::session::Session;

use super::load_config;

/// How many changelog entries each step names.
const LIKELIEST: usize = 5;

/// What `ksnap history --releases` was asked.
pub struct SweepRequest {
    pub line: String,
    pub suites: Vec<String>,
    pub variant: Option<String>,
    pub out: Option<PathBuf>,
    pub shard: Option<Shard>,
    pub jobs: Option<usize>,
    pub accel: AccelChoice,
}

/// Run the sweep, write its results file and print the timeline. True when at least two releases ran.
pub fn sweep(request: SweepRequest, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let mut config = load_config(config)?;
    let variant = request.variant.clone().unwrap_or_else(|| "default".into());
    // Unknown kernel, suite or variant, or no suite under the variant: refused before apt is asked.
    let selection = Selection {
        kernels: vec![request.line.clone()],
        variants: vec![variant.clone()],
        suites: request.suites.clone(),
    };
    let suites: Vec<String> = matrix::cells(&config, &selection)?.into_iter().map(|cell| cell.suite).collect();
    let cache = Cache::user_default()?;
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let (family, releases) = kernels::releases(&config, &archives, &request.line)?;
    if releases.len() < 2 {
        bail!(
            "kernel `{}`: apt serves {} release{} of {family}: a timeline needs two (`ksnap releases {}`)",
            request.line,
            releases.len(),
            if releases.len() == 1 { "" } else { "s" },
            request.line
        );
    }
    let mut names = Vec::new();
    for release in &releases {
        names.push(kernels::add_release(&mut config, &request.line, release)?);
    }
    let chosen: Vec<usize> = (0..releases.len()).filter(|&i| request.shard.is_none_or(|s| s.selects(i))).collect();
    let out = request
        .out
        .clone()
        .unwrap_or_else(|| default_out(&config, &request.line, &variant, &request.suites, request.shard));
    let cells = cells_of(&chosen, &names, &variant, &suites);
    eprintln!(
        "ksnap: {} of {} releases of {family} ({} … {}){}, variant {variant}, suite{} {}",
        chosen.len(),
        releases.len(),
        releases[0].version,
        releases[releases.len() - 1].version,
        request.shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        if suites.len() == 1 { "" } else { "s" },
        suites.join(", ")
    );
    let mut session = Session::start(config, request.accel, Progress::detect(), lock_mode)?;
    // A release that runs one cell boots it: a machine saved for other cells would never be restored.
    session.boot_every_cell = suites.len() == 1;
    let jobs = request.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let results = session.run_cells(&cells, jobs);
    let mut file = SweepFile {
        line: request.line.clone(),
        variant: variant.clone(),
        releases: releases.iter().map(|r| r.version.clone()).collect(),
        shard: request.shard.map(|s| s.to_string()),
        results: Default::default(),
    };
    record_results(&mut file, &results);
    file.write(&out)?;
    let ran = print_timeline(&file, &session);
    println!("\nresults: {}", out.display());
    if !results.not_started.is_empty() {
        bail!("{} cells not started (interrupted); the results file holds those that ran", results.not_started.len());
    }
    if ran < 2 && request.shard.is_none() {
        eprintln!("ksnap: {ran} release{} observed: no timeline", if ran == 1 { "" } else { "s" });
        return Ok(false);
    }
    Ok(true)
}

/// The cells of a sweep: every suite on each chosen release (`names` are the releases' kernel names).
fn cells_of(chosen: &[usize], names: &[String], variant: &str, suites: &[String]) -> Vec<matrix::Cell> {
    chosen
        .iter()
        .flat_map(|&i| {
            suites.iter().map(move |suite| matrix::Cell {
                kernel: names[i].clone(),
                variant: variant.to_string(),
                suite: suite.clone(),
            })
        })
        .collect()
}

/// What each cell gave, by release and suite: its facts, or why it has none (its guest did not complete,
/// or the host could not run it).
fn record_results(file: &mut SweepFile, results: &crate::session::CellResults) {
    let version_of = |kernel: &str| kernel.split_once(kernels::RELEASE_AT).map_or(kernel, |(_, v)| v).to_string();
    let mut record = |cell: &matrix::Cell, observed: Observed| {
        file.results.entry(version_of(&cell.kernel)).or_default().insert(cell.suite.clone(), observed);
    };
    for run in &results.runs {
        let observed = if run.report.outcome.is_completed() {
            Observed::Facts(run.facts())
        } else {
            Observed::Skipped(run.report.outcome.to_string())
        };
        record(&run.cell, observed);
    }
    for (cell, error) in &results.errors {
        record(cell, Observed::Skipped(format!("{error:#}")));
    }
}

/// Where a sweep's results go without `--out`: under the project's target/, which git ignores, named by
/// the line, the variant and the suites asked for (`6.12-default-proc_mem.json`), so that sweeps of
/// other suites do not overwrite each other.
fn default_out(config: &Config, line: &str, variant: &str, suites: &[String], shard: Option<Shard>) -> PathBuf {
    let suites: String = suites.iter().map(|suite| format!("-{suite}")).collect();
    let shard = shard.map(|s| format!(".shard-{}-of-{}", s.number, s.count)).unwrap_or_default();
    config.root.join("target/ksnap/sweeps").join(format!("{line}-{variant}{suites}{shard}.json"))
}

/// Where merged shards go without `--out`: the first shard's name without its `.shard-K-of-N`.
fn merged_out(first: &Path) -> Option<PathBuf> {
    let name = first.file_name()?.to_str()?.strip_suffix(".json")?;
    let (whole, shard) = name.rsplit_once(".shard-")?;
    shard.split_once("-of-")?;
    Some(first.with_file_name(format!("{whole}.json")))
}

/// `ksnap history --merge FILE...`: the shards' results files as one, written to `out` (default: the
/// whole sweep's default file), and its timeline printed. True when at least two releases observed.
pub fn merge(
    files: &[PathBuf],
    out: Option<PathBuf>,
    accel: AccelChoice,
    config: Option<PathBuf>,
    lock_mode: LockMode,
) -> Result<bool> {
    let file = SweepFile::merge(files.iter().map(|path| SweepFile::read(path)).collect::<Result<_>>()?)?;
    let mut config = load_config(config)?;
    let out = out
        .or_else(|| files.first().and_then(|first| merged_out(first)))
        .unwrap_or_else(|| default_out(&config, &file.line, &file.variant, &[], None));
    file.write(&out)?;
    // The changelogs are read from the newer releases' packages: the releases made kernels as for a run.
    let cache = Cache::user_default()?;
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let (_, releases) = kernels::releases(&config, &archives, &file.line)?;
    for release in releases.iter().filter(|r| file.releases.contains(&r.version)) {
        kernels::add_release(&mut config, &file.line, release)?;
    }
    let session = Session::start(config, accel, Progress::detect(), lock_mode)?;
    let ran = print_timeline(&file, &session);
    println!("\nresults: {}", out.display());
    Ok(ran >= 2)
}

/// The releases, those skipped (named, with why), each fact's timeline and, under each step, the newer
/// release's likeliest changelog entries. Returns how many releases observed a suite.
fn print_timeline(file: &SweepFile, session: &Session) -> usize {
    let ran: Vec<&String> = file
        .releases
        .iter()
        .filter(|r| file.results.get(*r).is_some_and(|s| s.values().any(|o| matches!(o, Observed::Facts(_)))))
        .collect();
    println!(
        "releases of {} (variant {}): {} of {} observed: {}",
        file.line,
        file.variant,
        ran.len(),
        file.releases.len(),
        ran.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" → ")
    );
    for (release, suite, why) in file.skipped() {
        // `kernel `5.10@5.10.257-1` (release …): why`: the release is named already.
        let why = why.strip_prefix("kernel `").and_then(|rest| rest.split_once("): ")).map_or(why, |(_, why)| why);
        println!("  skipped {release} ({suite}): {}", crate::present::text::shorten(why, 400));
    }
    let missing = file.missing();
    if !missing.is_empty() {
        println!("  not in this shard: {}", missing.join(", "));
    }
    let timeline = file.timeline();
    if timeline.is_empty() {
        println!("\nno fact of {} changes along these releases", file.suites().join(", "));
    } else {
        let width = crate::present::text::output_width();
        let mut suite = "";
        for history in &timeline {
            if history.suite != suite {
                suite = &history.suite;
                println!("\nsuite {suite}");
            }
            print!("{}", crate::present::text::hanging(&format!("{}: {}", history.fact, history.sentence()), width));
        }
    }
    let steps = steps(&timeline, &file.releases);
    if !steps.is_empty() {
        println!("\nstep by step, with the likeliest changes of the newer release's changelog:");
    }
    for step in steps {
        let shown: Vec<&str> = step.facts.iter().take(3).map(String::as_str).collect();
        let more = step.facts.len().saturating_sub(shown.len());
        println!(
            "{} → {}: {} fact{} ({}{})",
            step.old,
            step.new,
            step.facts.len(),
            if step.facts.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if more > 0 { format!(", {more} more") } else { String::new() }
        );
        let hints = crate::present::moves::hint_words(step.facts.iter().map(String::as_str));
        let new_name = format!("{}{}{}", file.line, kernels::RELEASE_AT, step.new);
        let changelog = session.kernel(&new_name).and_then(|kernel| session.changelog(&new_name, &kernel));
        match changelog {
            Ok(Some(text)) => {
                let parsed = ksnap_vm::kernel::changelog::parse(&text);
                let entries = ksnap_vm::kernel::changelog::since(&parsed, &step.old);
                let likeliest = crate::present::moves::likeliest(&entries, &hints, LIKELIEST);
                if likeliest.is_empty() {
                    println!("    (no changelog entry shares a word with these facts)");
                }
                for line in likeliest {
                    println!("    {}", crate::present::text::shorten(&line, 96));
                }
            }
            Ok(None) => println!("    (no changelog for {})", step.new),
            Err(e) => println!("    (cannot read the changelog: {e:#})"),
        }
    }
    ran.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_named_by_line_variant_and_suites_and_merged_shards_lose_their_shard() {
        let config = Config::from_toml("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p'}]\n", "/p".into()).unwrap();
        let shard = Some(Shard { number: 1, count: 2 });
        let suites = ["proc_mem".to_string()];
        let sharded = default_out(&config, "6.12", "default", &suites, shard);
        assert_eq!(sharded, Path::new("/p/target/ksnap/sweeps/6.12-default-proc_mem.shard-1-of-2.json"));
        assert_eq!(
            default_out(&config, "6.12", "default", &[], None),
            Path::new("/p/target/ksnap/sweeps/6.12-default.json")
        );
        assert_eq!(merged_out(&sharded).unwrap(), Path::new("/p/target/ksnap/sweeps/6.12-default-proc_mem.json"));
        assert_eq!(merged_out(Path::new("mine.json")), None);
    }
}
