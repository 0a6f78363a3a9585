//! `ksnap lock`: write ksnap.lock, pinning the kernels not pinned yet (or, with `--update`, again).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ksnap_vm::kernel::{Kernel, Pin};

use crate::present::moves;
use crate::project::kernels::{Kernels, LockMode};

use super::load_config;

/// The command line of `ksnap lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Re-resolve these kernels (all, if none is named) to what apt serves now, and print each move.
    #[arg(long, num_args = 0.., value_name = "KERNEL")]
    pub update: Option<Vec<String>>,
    /// Print only the moves. Without it, under each kernel that moves: the changes Debian's changelog
    /// lists between the two versions (those in the suites' `areas` first) and the kernel config's
    /// difference, for which both kernels are fetched into the cache.
    #[arg(long)]
    pub no_explain: bool,
}

/// `ksnap lock [--update [KERNEL…]]`.
pub fn lock(args: LockArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let LockArgs { update, no_explain } = args;
    let config = load_config(config)?;
    if lock_mode == LockMode::Frozen {
        anyhow::bail!("`ksnap lock` writes ksnap.lock, which --locked (or CI) forbids");
    }
    let kernels = Kernels::open(config, ksnap_vm::cache::Cache::user_default()?, lock_mode)?;
    let all = update.as_ref().is_some_and(Vec::is_empty);
    let named = update.unwrap_or_default();
    let moves = kernels.lock(&named, all, &mut |note| eprintln!("ksnap: {note}"))?;
    for change in &moves {
        println!("{change}");
        if no_explain {
            continue;
        }
        let Some((Some(old), new)) = &change.pins else { continue };
        if old.packages()[0] == new.packages()[0] {
            continue;
        }
        match explain(&kernels, &change.kernel, old, new) {
            Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
            Err(e) => println!("  (cannot explain this move: {e:#})"),
        }
    }
    if moves.is_empty() {
        println!("ksnap.lock is up to date");
    }
    Ok(true)
}

/// What changed between kernel `name`'s `old` and `new` pins, as [`moves`] prints it. Both kernels are
/// made available in the cache (fetched if they are not there: the new one will be booted anyway).
fn explain(kernels: &Kernels, name: &str, old: &Pin, new: &Pin) -> Result<Vec<String>> {
    let (Pin::Apt { .. }, Pin::Apt { .. }) = (old, new) else {
        return Ok(vec!["  (a kernel built from source: its move is not explained)".to_string()]);
    };
    let source = kernels.config.kernels.get(name).context("the kernel is not in ksnap.toml")?;
    let mut report = |step: &str| eprintln!("ksnap: {name}: {step}");
    let fetch = |pin: &Pin, which: &str, report: &mut dyn FnMut(&str)| -> Result<Kernel> {
        if let Some(kernel) = source.cached(Some(pin), &kernels.cache)? {
            return Ok(kernel);
        }
        report(&format!("fetching the {which} kernel ({pin}) to explain the move"));
        Ok(source.resolve(Some(pin), &kernels.cache, &kernels.archives, report)?)
    };
    let new_kernel = fetch(new, "new", &mut report)?;
    let old_kernel = fetch(old, "old", &mut report)?;
    let changelog = source.changelog(Some(new), &new_kernel, &kernels.cache, &kernels.archives, &mut report)?;
    let (from, to) = (&old.packages()[0].version, &new.packages()[0].version);
    let suites = moves::interests(&kernels.config);
    Ok(moves::explanation(&old_kernel, from, &new_kernel, to, changelog.as_deref(), &suites))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_refuses_to_write_a_frozen_lock() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("ksnap.toml");
        std::fs::write(&toml, "[kernels.k]\napt = \"x\"\n[suites.s]\nprobes = [{ exe = \"p\" }]\n").unwrap();
        let err =
            lock(LockArgs { update: None, no_explain: false }, Some(toml), LockMode::Frozen).unwrap_err().to_string();
        assert!(err.contains("which --locked (or CI) forbids"), "{err}");
        assert!(!dir.path().join("ksnap.lock").exists());
    }
}
