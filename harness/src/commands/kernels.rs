//! `ksnap kernels`: the matrix's kernels, their locked packages and cache state, and newer versions.

use std::path::PathBuf;

use anyhow::Result;

use crate::progress::Progress;
use crate::project::kernels::{Kernels, LockMode};

use super::load_config;

/// The command line of `ksnap kernels`.
#[derive(Debug, clap::Args)]
pub struct KernelsArgs {
    /// Download and unpack (or build) every kernel that is not cached yet, and build the kernel
    /// selftests if a suite runs them.
    #[arg(long)]
    pub fetch: bool,
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
pub fn kernels(args: KernelsArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let KernelsArgs { fetch } = args;
    let config = load_config(config)?;
    let kernels = Kernels::open(config, ksnap_vm::cache::Cache::user_default()?, lock_mode)?;
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
        let built = crate::session::resources::build_selftests(&kernels.config, &kernels, &kernels.cache, &mut |s| {
            task.step(s)
        });
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
    print!("{}", crate::present::text::table(&[&[header][..], &rows].concat()));
    if let Some(selftests) = selftests {
        println!("{selftests}");
    }
    if !newer.is_empty() {
        println!("\nnewer than ksnap.lock:\n{}", newer.join("\n"));
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_not_ready_says_how_to_get_it() {
        let apt = ksnap_vm::kernel::KernelSource::Apt { package: "p".into(), suite: None };
        assert_eq!(not_ready(&apt), "not cached: ksnap kernels --fetch");
    }
}
