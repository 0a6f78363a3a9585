//! `ksnap lock`: write ksnap.lock, pinning the kernels not pinned yet (or, with `--update`, again).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ksnap_vm::kernel::{changelog, config_diff, Kernel, Pin};

use crate::present::moves::{self, SuiteInterest};
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
    Ok(explanation(&old_kernel, old, &new_kernel, new, changelog.as_deref(), &interests(kernels)))
}

/// The suites' areas and stated options.
fn interests(kernels: &Kernels) -> Vec<SuiteInterest> {
    kernels
        .config
        .suites
        .values()
        .map(|suite| SuiteInterest {
            name: suite.name.clone(),
            areas: suite.areas.clone(),
            kernel_config: suite.kernel_config.clone(),
        })
        .collect()
}

/// The lines explaining a move from `old` to `new`, given the new kernel's changelog.
fn explanation(
    old_kernel: &Kernel,
    old: &Pin,
    new_kernel: &Kernel,
    new: &Pin,
    changelog: Option<&str>,
    suites: &[SuiteInterest],
) -> Vec<String> {
    let (from, to) = (&old.packages()[0].version, &new.packages()[0].version);
    let mut lines = match changelog {
        Some(text) => {
            let entries = changelog::parse(text);
            let selected = changelog::since(&entries, from);
            if selected.is_empty() {
                vec![format!("  changelog: no entry after {from} up to {to}")]
            } else {
                moves::changelog_lines(&selected, from, to, suites)
            }
        }
        None => vec![format!("  changelog: none in the packages of {new}")],
    };
    let read = |kernel: &Kernel| kernel.config.as_ref().and_then(|path| std::fs::read_to_string(path).ok());
    match (read(old_kernel), read(new_kernel)) {
        (Some(before), Some(after)) => {
            lines.extend(moves::config_lines(&config_diff::diff(&before, &after), suites));
        }
        _ => lines.push("  config: not known for both kernels".to_string()),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin::Apt {
            packages: vec![ksnap_vm::kernel::apt::PinnedPackage {
                name: name.into(),
                version: version.into(),
                sha256: "ab".repeat(32),
                suite: "bookworm-security".into(),
            }],
        }
    }

    /// Two kernels as their cache entries have them (a config each), the new one's changelog the real
    /// excerpt of vm/tests/data/changelog.
    #[test]
    fn a_move_is_explained_by_the_changelog_between_the_versions_and_the_config_difference() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = |release: &str, config: &str| {
            let path = dir.path().join(format!("config-{release}"));
            std::fs::write(&path, config).unwrap();
            Kernel {
                image: dir.path().join(format!("vmlinuz-{release}")),
                config: Some(path),
                release: release.into(),
                package: None,
                config_hash: None,
                changelog: None,
            }
        };
        let old = kernel("6.1.0-40-cloud-amd64", "CONFIG_SMB=m\n# CONFIG_PROC_MEM_NO_FORCE is not set\n");
        let new = kernel("6.1.0-57-cloud-amd64", "CONFIG_SMB=y\n# CONFIG_PROC_MEM_NO_FORCE is not set\n");
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm/tests/data/changelog/linux-6.1-excerpt"),
        )
        .unwrap();
        let suites = [SuiteInterest {
            name: "fs_suite".into(),
            areas: vec!["ext4".into(), "ptrace".into()],
            kernel_config: vec!["CONFIG_PROC_MEM_NO_FORCE".into()],
        }];
        let (from, to) = (
            pin("linux-image-6.1.0-40-cloud-amd64", "6.1.170-3"),
            pin("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3"),
        );
        let lines = explanation(&old, &from, &new, &to, Some(&text), &suites);
        assert_eq!(
            lines,
            [
                // 136: the items of the five entries above 6.1.170-3, less group headings (`New upstream
                // stable update:`, `Backport changes in … from 6.12.y:`) and the signing line.
                "  changelog 6.1.170-3 → 6.1.192-3: 5 Debian releases, 136 changes, 3 in the suites' areas",
                "    [ext4] exercised by fs_suite",
                "    [ptrace] exercised by fs_suite",
                "    6.1.192-2:",
                "      ext4: fix NULL folio dereference in mballoc (Closes: #1154101)  [ext4]",
                "    6.1.177-1:",
                "      ext4: add bounds check for inline data length in ext4_read_inline_page  [ext4]",
                "    6.1.172-1:",
                "      ptrace: slightly saner 'get_dumpable()' logic  [ptrace]",
                "    133 other changes not in any suite's areas (ext4, ptrace)",
                "  config: 0 options added, 0 removed, 1 changed",
                "    ~ CONFIG_SMB: m → y",
            ]
        );
        let lines = explanation(&old, &to, &new, &from, None, &suites);
        assert_eq!(lines[0], "  changelog: none in the packages of linux-image-6.1.0-40-cloud-amd64 6.1.170-3");
        let lines = explanation(&old, &to, &new, &from, Some(&text), &suites);
        assert_eq!(lines[0], "  changelog: no entry after 6.1.192-3 up to 6.1.170-3");
    }

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
