//! The matrix's kernels: pinned through `ksnap.lock`, fetched (or built) into the cache.
//!
//! Every pinned kernel boots exactly its locked packages. A kernel not in the lock yet (or whose entry no
//! longer matches ksnap.toml) is resolved through apt and written to the lock, unless the lock is
//! *frozen* (`--locked`, or `CI` set, as cargo's `--locked`): then that is an error saying what to run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::{Archives, PinnedPackage};
use ksnap_vm::kernel::build::git::Commit;
use ksnap_vm::kernel::build::{BuildRecipe, SourceTree};
use ksnap_vm::kernel::releases::{Family, Release};
use ksnap_vm::kernel::{Kernel, KernelSource, Pin};

use crate::project::config::Config;
use crate::project::lockfile::{LockedSelftests, Lockfile, Lookup, LOCK_FILE};

/// The name `ksnap lock --update` knows the selftests' source package by.
pub const SELFTESTS: &str = "selftests";

/// Whether a missing or stale lock entry may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Resolve and add what is missing (a developer's run).
    Update,
    /// Refuse (`--locked`, CI).
    Frozen,
}

impl LockMode {
    /// `Frozen` when asked (`--locked`) or when the `CI` variable says this is CI (as insta decides).
    pub fn detect(locked: bool) -> LockMode {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if locked || ci {
            LockMode::Frozen
        } else {
            LockMode::Update
        }
    }
}

/// A kernel move made by `ksnap lock --update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub kernel: String,
    pub from: Option<String>,
    pub to: String,
    /// The kernel's pins before and after (`None` for the selftests' source, and `old` for an added kernel).
    pub pins: Option<(Option<Pin>, Pin)>,
}

impl std::fmt::Display for Move {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            Some(from) if *from == self.to => write!(f, "{}: {} (unchanged)", self.kernel, self.to),
            Some(from) => write!(f, "{}: {from} → {}", self.kernel, self.to),
            None => write!(f, "{}: {} (added)", self.kernel, self.to),
        }
    }
}

pub struct Kernels {
    pub config: Config,
    pub cache: Cache,
    pub archives: Archives,
    mode: LockMode,
    path: PathBuf,
    lock: Mutex<Lockfile>,
}

impl Kernels {
    pub fn open(config: Config, cache: Cache, mode: LockMode) -> Result<Kernels> {
        let path = config.root.join(LOCK_FILE);
        let lock = Lockfile::read(&path)?;
        let archives = Archives::new(&cache, config.apt_mirror.clone());
        Ok(Kernels { config, cache, archives, mode, path, lock: Mutex::new(lock) })
    }

    fn source(&self, name: &str) -> Result<&KernelSource> {
        self.config.kernels.get(name).ok_or_else(|| anyhow!("unknown kernel `{name}`"))
    }

    /// The pin kernel `name` boots (`None` for a local kernel), adding it to the lock if it is missing or
    /// stale and the lock may be written. `note` hears about a lock entry being written.
    pub fn pin(&self, name: &str, note: &mut dyn FnMut(&str)) -> Result<Option<Pin>> {
        let source = self.source(name)?;
        if !source.is_pinned() {
            return Ok(None);
        }
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let why = match lock.lookup(name, source)? {
            Lookup::Pinned(pin) => return Ok(Some(pin)),
            Lookup::Missing => format!("kernel `{name}` is not in {LOCK_FILE}"),
            Lookup::Stale(why) => format!("the {LOCK_FILE} entry of kernel `{name}` is stale: {why}"),
        };
        if self.mode == LockMode::Frozen {
            bail!(
                "{why}, and the lock may not be changed here (--locked, or CI is set). Run `ksnap lock` (or \
                 `ksnap lock --update {name}`) and commit {LOCK_FILE}"
            );
        }
        let pin = source.pin(&self.archives)?.expect("a pinned source resolves to a pin");
        lock.set(name, source, &pin);
        lock.write(&self.path)?;
        note(&format!("{LOCK_FILE}: locked {name} to {pin} ({why})"));
        Ok(Some(pin))
    }

    /// The pinned source package of the kernel selftests (`[selftests]` in ksnap.toml), adding it to the
    /// lock if it is missing or stale and the lock may be written. `None` when ksnap.toml has none.
    pub fn selftests_pin(&self, note: &mut dyn FnMut(&str)) -> Result<Option<PinnedPackage>> {
        let Some(wanted) = &self.config.selftests else { return Ok(None) };
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let why = match &lock.selftests {
            Some(entry) => match entry.lookup(wanted) {
                Ok(package) => return Ok(Some(package.clone())),
                Err(why) => format!("the {LOCK_FILE} entry of the selftests is stale: {why}"),
            },
            None => format!("the selftests' source is not in {LOCK_FILE}"),
        };
        if self.mode == LockMode::Frozen {
            bail!(
                "{why}, and the lock may not be changed here (--locked, or CI is set). Run `ksnap lock` (or \
                 `ksnap lock --update {SELFTESTS}`) and commit {LOCK_FILE}"
            );
        }
        let package = self.pin_selftests_source()?;
        lock.selftests = Some(LockedSelftests {
            source: wanted.package.clone(),
            suite: wanted.suite.clone(),
            package: package.clone(),
        });
        lock.write(&self.path)?;
        note(&format!("{LOCK_FILE}: locked the selftests to {package} ({why})"));
        Ok(Some(package))
    }

    /// What apt serves today for the selftests' source package.
    fn pin_selftests_source(&self) -> Result<PinnedPackage> {
        let wanted = self.config.selftests.as_ref().expect("called with [selftests]");
        let mut packages = self.archives.apt(wanted.suite.as_deref())?.pin(&wanted.package)?;
        packages.truncate(1);
        packages.pop().ok_or_else(|| anyhow!("apt resolved {} to no package", wanted.package))
    }

    /// Kernel `name`, exactly as locked, fetched or built into the cache if needed.
    pub fn resolve(&self, name: &str, report: &mut dyn FnMut(&str)) -> Result<Kernel> {
        let source = self.source(name)?;
        let pin = self.pin(name, report)?;
        source.resolve(pin.as_ref(), &self.cache, &self.archives, report).map_err(|e| explain(name, source, e))
    }

    /// The lock entry of kernel `name`, if it has a current one (never resolves, never writes).
    pub fn locked(&self, name: &str) -> Result<Option<Pin>> {
        let source = self.source(name)?;
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match lock.lookup(name, source)? {
            Lookup::Pinned(pin) => Some(pin),
            Lookup::Missing | Lookup::Stale(_) => None,
        })
    }

    /// Kernel `name` if it is in the cache as locked (never fetches, never writes the lock: a pinned
    /// kernel with no current lock entry is not cached).
    pub fn cached(&self, name: &str) -> Result<Option<Kernel>> {
        let source = self.source(name)?;
        let pin = self.locked(name)?;
        if pin.is_none() && source.is_pinned() {
            return Ok(None);
        }
        source.cached(pin.as_ref(), &self.cache).map_err(|e| explain(name, source, e))
    }

    /// What apt resolves kernel `name` to today, if that differs from its lock entry `locked`
    /// (`ksnap kernels`).
    pub fn newer(&self, name: &str, locked: &Pin) -> Result<Option<Pin>> {
        let source = self.source(name)?;
        let today = source.pin(&self.archives).map_err(|e| explain(name, source, e))?;
        Ok(today.filter(|today| today.packages()[0] != locked.packages()[0]))
    }

    /// `ksnap lock [--update [KERNEL…]]`: re-resolve `update` (all pinned kernels when `all`), add what
    /// is missing or stale, drop entries of kernels ksnap.toml no longer has, write the file. Private apt
    /// configurations of the kernels re-resolved are refreshed first (`apt-get update`).
    pub fn lock(&self, update: &[String], all: bool, note: &mut dyn FnMut(&str)) -> Result<Vec<Move>> {
        for name in update.iter().filter(|name| *name != SELFTESTS || self.config.selftests.is_none()) {
            self.source(name)?;
        }
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut refreshed = BTreeSet::new();
        let mut moves = Vec::new();
        for (name, source) in &self.config.kernels {
            let Some((_, suite)) = source.apt_request() else { continue };
            let wanted = all || update.contains(name);
            let current = lock.lookup(name, source)?;
            if !wanted && matches!(current, Lookup::Pinned(_)) {
                continue;
            }
            if wanted && refreshed.insert(suite.map(str::to_string)) {
                if let Some(suite) = suite {
                    note(&format!("apt-get update ({suite})"));
                }
                self.archives.apt(suite)?.update()?;
            }
            let pin = source.pin(&self.archives).map_err(|e| explain(name, source, e))?.expect("pinned source");
            let old = lock.get(name).map(|entry| entry.pin());
            let from = old.as_ref().map(ToString::to_string);
            moves.push(Move { kernel: name.clone(), from, to: pin.to_string(), pins: Some((old, pin.clone())) });
            lock.set(name, source, &pin);
        }
        if let Some(wanted) = &self.config.selftests {
            let current = lock.selftests.as_ref().and_then(|entry| entry.lookup(wanted).ok().cloned());
            let wanted_update = all || update.iter().any(|name| name == SELFTESTS);
            if wanted_update || current.is_none() {
                if wanted_update && refreshed.insert(wanted.suite.clone()) {
                    if let Some(suite) = &wanted.suite {
                        note(&format!("apt-get update ({suite})"));
                    }
                    self.archives.apt(wanted.suite.as_deref())?.update()?;
                }
                let package = self.pin_selftests_source().context("pinning the selftests' source package")?;
                let from = lock.selftests.as_ref().map(|entry| entry.package.to_string());
                moves.push(Move { kernel: SELFTESTS.into(), from, to: package.to_string(), pins: None });
                lock.selftests =
                    Some(LockedSelftests { source: wanted.package.clone(), suite: wanted.suite.clone(), package });
            }
        } else if lock.selftests.take().is_some() {
            note("selftests: removed (no [selftests] in ksnap.toml)");
        }
        for gone in lock.retain(|name| self.config.kernels.get(name).is_some_and(KernelSource::is_pinned)) {
            note(&format!("{gone}: removed (no longer in ksnap.toml)"));
        }
        lock.write(&self.path)?;
        Ok(moves)
    }
}

/// The separator of a release's name: `LINE@VERSION` (`5.10@5.10.251-5`).
pub const RELEASE_AT: char = '@';

/// Kernel line `line` of `config` (a kernel of ksnap.toml) and every release of it apt serves, in Debian
/// version order. Asks apt (a private configuration is created and updated if needed); downloads no kernel.
pub fn releases(config: &Config, archives: &Archives, line: &str) -> Result<(Family, Vec<Release>)> {
    let source = known_kernel(config, line)?;
    source.releases(archives).map_err(|e| anyhow!("kernel `{line}`: {e}"))
}

fn known_kernel<'a>(config: &'a Config, name: &str) -> Result<&'a KernelSource> {
    config.kernels.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.kernels.keys().map(String::as_str).collect();
        anyhow!("unknown kernel `{name}`; ksnap.toml defines: {}", known.join(", "))
    })
}

/// Every `LINE@VERSION` among `names` made a kernel of `config` of its own, named so: that release of
/// kernel line LINE ([`KernelSource::Release`]), outside the default run and never written to
/// ksnap.lock. Other names are left alone. A version apt does not serve is an error naming the nearest
/// ones it does.
pub fn add_releases(config: &mut Config, names: &[String], cache: &Cache) -> Result<()> {
    let wanted: Vec<(&str, &str)> = names.iter().filter_map(|name| name.split_once(RELEASE_AT)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let archives = Archives::new(cache, config.apt_mirror.clone());
    for (line, version) in wanted {
        let source = known_kernel(config, line)?;
        if !matches!(source, KernelSource::Apt { .. }) {
            bail!("kernel `{line}` ({source}) is not an apt kernel: only apt kernels have releases (`{line}@…`)");
        }
        let (family, releases) = releases(config, &archives, line)?;
        let Some(release) = releases.iter().find(|r| r.version == version) else {
            let near: Vec<String> =
                ksnap_vm::kernel::releases::nearest(&releases, version, 5).iter().map(|r| r.version.clone()).collect();
            bail!(
                "kernel `{line}`: apt serves no release {version} of {family}; the nearest are {}. `ksnap releases \
                 {line}` lists them all",
                if near.is_empty() { "none (it serves none)".to_string() } else { near.join(", ") }
            );
        };
        let release = release.clone();
        add_release(config, line, &release)?;
    }
    Ok(())
}

/// Release `release` of apt kernel `line` made a kernel of `config`, named `LINE@VERSION`: outside the
/// default run, and never written to ksnap.lock. Returns its name.
pub fn add_release(config: &mut Config, line: &str, release: &Release) -> Result<String> {
    let source = known_kernel(config, line)?.release(release).with_context(|| {
        format!("kernel `{line}` is not an apt kernel: only apt kernels have releases (`{line}@…`)")
    })?;
    let name = format!("{line}{RELEASE_AT}{}", release.version);
    config.named_only.insert(name.clone());
    config.kernels.insert(name.clone(), source);
    Ok(name)
}

/// Commit `commit` of the git repository `repo`, built from tinyconfig and `fragments`, made a kernel of
/// `config` named `commit-SHORT`: outside the default run, and never written to ksnap.lock (the commit
/// is its own pin). Returns its name.
pub fn add_commit(config: &mut Config, repo: &Path, commit: &Commit, fragments: &[PathBuf]) -> String {
    let name = format!("commit-{}", commit.short());
    let tree = SourceTree::Git { repo: repo.to_path_buf(), commit: commit.id.clone() };
    config.named_only.insert(name.clone());
    config.kernels.insert(name.clone(), KernelSource::Build(BuildRecipe { tree, fragments: fragments.to_vec() }));
    name
}

/// A kernel error, with what to do about it where ksnap knows better than the library.
fn explain(name: &str, source: &KernelSource, error: ksnap_vm::Error) -> anyhow::Error {
    let advice = match &error {
        ksnap_vm::Error::ReleaseNotServed { .. } => {
            let line = name.split(RELEASE_AT).next().unwrap_or(name);
            format!(
                ". The archive lists this release but no longer serves it: pick another from `ksnap releases {line}`"
            )
        }
        ksnap_vm::Error::PackageGone { .. } | ksnap_vm::Error::ChecksumMismatch { .. } => {
            format!(". Re-pin it with `ksnap lock --update {name}`, then review the snapshot changes")
        }
        _ => String::new(),
    };
    anyhow!("kernel `{name}` ({source}): {error}{advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        let text = "[kernels.a]\napt='x'\n[selftests]\nsource={ package='linux-source-7.2', suite='sid' }\n\
                    [suites.s]\nprobes=[{ kselftest='mm/cow' }]\n";
        Config::from_toml(text, dir.to_path_buf()).unwrap()
    }

    #[test]
    fn a_frozen_lock_without_the_selftests_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let kernels = Kernels::open(config(dir.path()), cache, LockMode::Frozen).unwrap();
        let err = kernels.selftests_pin(&mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("the selftests' source is not in ksnap.lock"), "{err}");
        assert!(err.contains("ksnap lock --update selftests"), "{err}");
    }

    #[test]
    fn a_frozen_lock_with_another_source_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lockfile::default();
        lock.selftests = Some(LockedSelftests {
            source: "linux-source-6.12".into(),
            suite: None,
            package: PinnedPackage {
                name: "linux-source-6.12".into(),
                version: "6.12.117-1".into(),
                sha256: "ab".repeat(32),
                suite: "bookworm".into(),
            },
        });
        lock.write(&dir.path().join(LOCK_FILE)).unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let kernels = Kernels::open(config(dir.path()), cache, LockMode::Frozen).unwrap();
        let err = kernels.selftests_pin(&mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("is stale: ksnap.toml asks for source package linux-source-7.2 from sid"), "{err}");
    }
}
