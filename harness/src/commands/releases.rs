//! `ksnap releases KERNEL`: every point release of a kernel line apt serves, to run one with
//! `ksnap run --kernel KERNEL@VERSION`.

use std::path::PathBuf;

use anyhow::Result;
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;

use crate::project::kernels::{self, Kernels, LockMode, RELEASE_AT};

use super::load_config;

/// The command line of `ksnap releases`.
#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// A kernel of ksnap.toml that comes from apt (e.g. `5.10`).
    pub kernel: String,
}

/// `ksnap releases KERNEL`: a table of PACKAGE, VERSION, SUITE and whether the release is the locked one
/// or in the cache.
pub fn releases(args: ReleasesArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let ReleasesArgs { kernel } = args;
    let config = load_config(config)?;
    let cache = Cache::user_default()?;
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let (family, releases) = kernels::releases(&config, &archives, &kernel)?;
    let source = config.kernels[&kernel].clone();
    // The lock is only read here: a release is never written to it.
    let locked = Kernels::open(config, cache.clone(), lock_mode)?.locked(&kernel).ok().flatten();
    let locked = locked.as_ref().map(|pin| pin.packages()[0].clone());
    let mut rows = vec![["PACKAGE", "VERSION", "SUITE", "NOTE"].map(String::from)];
    for release in &releases {
        let mut notes = Vec::new();
        if locked.as_ref().is_some_and(|p| p.name == release.package && p.version == release.version) {
            notes.push("locked");
        }
        let as_source = source.release(release).expect("a kernel with releases is an apt kernel");
        if as_source.cached(None, &cache).ok().flatten().is_some() {
            notes.push("cached");
        }
        rows.push([release.package.clone(), release.version.clone(), release.suite_list(), notes.join(", ")]);
    }
    for line in crate::present::text::table(&rows).lines() {
        println!("{}", line.trim_end());
    }
    println!(
        "\n{} release{} of {family} ({source}), oldest first; apt's indexes give no dates.\nRun one with \
         `ksnap run --kernel {kernel}{RELEASE_AT}VERSION`: downloaded on demand, checked and cached, never written \
         to ksnap.lock.",
        releases.len(),
        if releases.len() == 1 { "" } else { "s" }
    );
    Ok(true)
}
