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
        let kernel = ready_kernel(&kernels, &progress, fetch, name);
        all_ok &= kernel.is_ok();
        let pin = kernels.locked(name).ok().flatten();
        rows.push(kernel_row(name, source, pin.as_ref(), kernel));
        let Some(pin) = pin else { continue };
        newer.extend(newer_than_lock(&kernels, name, &pin));
    }
    // --fetch readies everything the matrix downloads or builds, the kernel selftests too: a CI job that
    // fills the cache for later ones (the workflow `ksnap init` writes) leaves nothing to fetch.
    let mut selftests = None;
    if fetch && kernels.config.suites.values().any(|s| s.runs_selftests()) {
        let (built, line) = fetch_selftests(&kernels, &progress);
        all_ok &= built;
        selftests = Some(line);
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

/// Kernel `name` as far as `ksnap kernels` readies it, its progress shown: with `fetch` resolved
/// (downloaded, unpacked or built), else pinned and looked up in the cache (`None`: not there yet).
fn ready_kernel(
    kernels: &Kernels,
    progress: &Progress,
    fetch: bool,
    name: &str,
) -> Result<Option<ksnap_vm::kernel::Kernel>> {
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
    kernel
}

/// A kernel's row of the table: NAME, PACKAGE, VERSION, RELEASE, CONFIG, IMAGE. `pin`: what ksnap.lock
/// pins it to; `kernel`: [`ready_kernel`].
fn kernel_row(
    name: &str,
    source: &ksnap_vm::kernel::KernelSource,
    pin: Option<&ksnap_vm::kernel::Pin>,
    kernel: Result<Option<ksnap_vm::kernel::Kernel>>,
) -> [String; 6] {
    // The package and version columns say what the lock pins; a local kernel shows its file.
    let (package, version) = pin
        .map_or((source.to_string(), "-".into()), |p| (p.packages()[0].name.clone(), p.packages()[0].version.clone()));
    match kernel {
        Ok(Some(kernel)) => {
            let config = kernel.config_hash.map_or("-".into(), |h| h[..12].to_string());
            [name.to_string(), package, version, kernel.release, config, kernel.image.display().to_string()]
        }
        Ok(None) => [name.to_string(), package, version, "-".into(), "-".into(), not_ready(source).into()],
        Err(e) => [name.to_string(), package, version, "-".into(), "-".into(), format!("error: {e:#}")],
    }
}

/// The line under "newer than ksnap.lock" for a locked kernel: the version apt has today when it is not
/// the locked one, or why apt could not say; `None` when the lock is current.
fn newer_than_lock(kernels: &Kernels, name: &str, pin: &ksnap_vm::kernel::Pin) -> Option<String> {
    match kernels.newer(name, pin) {
        Ok(Some(today)) => Some(format!("  {name}: {today} (locked: {pin}); `ksnap lock --update {name}` moves it")),
        Ok(None) => None,
        Err(e) => Some(format!("  {name}: cannot ask apt for newer versions: {e:#}")),
    }
}

/// Build the kernel selftests (`--fetch`), progress shown: whether they built, and the line that says
/// what was built or why not.
fn fetch_selftests(kernels: &Kernels, progress: &Progress) -> (bool, String) {
    let task = progress.start("kernel selftests");
    let built =
        crate::session::resources::build_selftests(&kernels.config, kernels, &kernels.cache, &mut |s| task.step(s));
    task.finish(if built.is_ok() { "ready" } else { "failed" });
    let line = match &built {
        Ok(built) => format!("kernel selftests: {} {}, {}", built.source.name, built.source.version, built.toolchain),
        Err(e) => format!("kernel selftests: error: {e:#}"),
    };
    (built.is_ok(), line)
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
