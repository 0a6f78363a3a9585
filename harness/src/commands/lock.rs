//! `ksnap lock`: write ksnap.lock, pinning the kernels not pinned yet (or, with `--update`, again).

use std::path::PathBuf;

use anyhow::Result;

use crate::project::kernels::{Kernels, LockMode};

use super::load_config;

/// The command line of `ksnap lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Re-resolve these kernels (all, if none is named) to what apt serves now, and print each move.
    #[arg(long, num_args = 0.., value_name = "KERNEL")]
    pub update: Option<Vec<String>>,
}

/// `ksnap lock [--update [KERNEL…]]`.
pub fn lock(args: LockArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let LockArgs { update } = args;
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
        let err = lock(LockArgs { update: None }, Some(toml), LockMode::Frozen).unwrap_err().to_string();
        assert!(err.contains("which --locked (or CI) forbids"), "{err}");
        assert!(!dir.path().join("ksnap.lock").exists());
    }
}
