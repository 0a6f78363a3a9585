//! `ksnap.lock`: for every pinned kernel of `ksnap.toml` (apt kernels and builds of a source package),
//! exactly what it resolved to. Written by ksnap, committed, read by every run: what the matrix boots
//! moves only when someone runs `ksnap lock --update` and commits the result, never because Debian
//! published a new kernel.
//!
//! ```toml
//! version = 1
//!
//! [[kernel]]
//! name = "5.10"
//! apt = "linux-image-cloud-amd64"
//! suite = "bullseye"
//!
//! [[kernel.package]]
//! name = "linux-image-5.10.0-32-cloud-amd64"
//! version = "5.10.223-1"
//! sha256 = "…"
//! suite = "bullseye"
//! ```
//!
//! An entry records what `ksnap.toml` asked for (`apt` or `source`, and `suite`; none: the system's apt
//! sources) next to what that resolved to, so an entry that no longer matches the file is detected as
//! stale; a build's entry also records its cache key (`build`), which changes with its fragments.
//!
//! The source package the kernel selftests are built from (`[selftests]` in ksnap.toml) is pinned the
//! same way, in a `[selftests]` table with its `package`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ksnap_vm::kernel::apt::PinnedPackage;
use ksnap_vm::kernel::{KernelSource, Pin};
use serde::{Deserialize, Serialize};

use crate::project::config::SelftestsSource;

pub const LOCK_FILE: &str = "ksnap.lock";
const VERSION: u32 = 1;
const HEADER: &str = "# ksnap.lock: the exact packages each kernel of ksnap.toml boots, written by ksnap.\n\
# Commit it. `ksnap lock --update [KERNEL…]` moves kernels to what apt serves now; review the snapshot\n\
# changes the next `cargo test` shows, then commit both.\n\n";

/// One kernel's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedKernel {
    pub name: String,
    /// The apt package ksnap.toml names (apt kernels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<String>,
    /// The source package ksnap.toml names (kernels built from source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Debian suite ksnap.toml names; absent: the system's apt sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// A build's cache key: source package and version, and the hash of the fragments' options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The packages, the one naming the kernel first.
    #[serde(rename = "package")]
    pub packages: Vec<PinnedPackage>,
}

/// What the lock says of one kernel of ksnap.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Pinned, and the entry matches ksnap.toml.
    Pinned(Pin),
    /// No entry.
    Missing,
    /// An entry that no longer matches ksnap.toml: why.
    Stale(String),
}

/// The entry of the selftests' source package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSelftests {
    /// The source package ksnap.toml names.
    pub source: String,
    /// The Debian suite ksnap.toml names; absent: the system's apt sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    pub package: PinnedPackage,
}

impl LockedSelftests {
    /// The pinned package, if this entry is for what ksnap.toml asks for; otherwise why not.
    pub fn lookup(&self, wanted: &SelftestsSource) -> std::result::Result<&PinnedPackage, String> {
        if self.source == wanted.package && self.suite == wanted.suite {
            return Ok(&self.package);
        }
        let from = |suite: &Option<String>| suite.clone().unwrap_or_else(|| "the system's apt sources".into());
        Err(format!(
            "ksnap.toml asks for source package {} from {}, ksnap.lock has {} from {}",
            wanted.package,
            from(&wanted.suite),
            self.source,
            from(&self.suite)
        ))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lockfile {
    kernels: BTreeMap<String, LockedKernel>,
    /// The selftests' source package, when ksnap.toml has `[selftests]`.
    pub selftests: Option<LockedSelftests>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLockfile {
    version: u32,
    #[serde(default, rename = "kernel")]
    kernels: Vec<LockedKernel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selftests: Option<LockedSelftests>,
}

impl Lockfile {
    /// The lock file at `path`; an empty lock if there is none.
    pub fn read(path: &Path) -> Result<Lockfile> {
        match std::fs::read_to_string(path) {
            Ok(text) => Lockfile::parse(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lockfile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn parse(text: &str) -> Result<Lockfile> {
        let raw: RawLockfile = toml::from_str(text)?;
        if raw.version != VERSION {
            bail!("lock file version {} is not one this ksnap reads (it reads {VERSION}); update ksnap", raw.version);
        }
        let mut kernels = BTreeMap::new();
        for kernel in raw.kernels {
            if kernel.packages.is_empty() {
                bail!("kernel `{}` is locked to no package", kernel.name);
            }
            if let Some(old) = kernels.insert(kernel.name.clone(), kernel) {
                bail!("kernel `{}` is locked twice", old.name);
            }
        }
        Ok(Lockfile { kernels, selftests: raw.selftests })
    }

    /// The file's text: a header, then the kernels in name order.
    pub fn to_toml(&self) -> String {
        let raw = RawLockfile {
            version: VERSION,
            kernels: self.kernels.values().cloned().collect(),
            selftests: self.selftests.clone(),
        };
        format!("{HEADER}{}", toml::to_string(&raw).expect("a lock file serializes"))
    }

    /// Write the file atomically (a temporary file next to it, renamed over it): a reader never sees half.
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing {}: cannot create a file in {}", path.display(), dir.display()))?;
        std::io::Write::write_all(&mut file, self.to_toml().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        file.persist(path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&LockedKernel> {
        self.kernels.get(name)
    }

    /// What the lock says of kernel `name`, which ksnap.toml defines as `source`.
    pub fn lookup(&self, name: &str, source: &KernelSource) -> Result<Lookup> {
        let Some(entry) = self.kernels.get(name) else { return Ok(Lookup::Missing) };
        let wanted = LockedKernel::request(name, source);
        let (asked, locked) = (wanted.describe_request(), entry.describe_request());
        if asked != locked {
            return Ok(Lookup::Stale(format!("ksnap.toml asks for {asked}, ksnap.lock has {locked}")));
        }
        let pin = entry.pin();
        if !source.pin_is_current(&pin)? {
            return Ok(Lookup::Stale("its config fragments changed since it was locked".into()));
        }
        Ok(Lookup::Pinned(pin))
    }

    /// Record that kernel `name` (ksnap.toml's `source`) is pinned to `pin`.
    pub fn set(&mut self, name: &str, source: &KernelSource, pin: &Pin) {
        let mut entry = LockedKernel::request(name, source);
        match pin {
            Pin::Apt { packages } => entry.packages = packages.clone(),
            Pin::Build { source, key } => {
                entry.packages = vec![source.clone()];
                entry.build = Some(key.clone());
            }
        }
        self.kernels.insert(name.to_string(), entry);
    }

    /// Drop the entries of kernels ksnap.toml no longer defines; their names.
    pub fn retain(&mut self, defined: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.kernels.keys().filter(|name| !defined(name)).cloned().collect();
        for name in &gone {
            self.kernels.remove(name);
        }
        gone
    }
}

impl LockedKernel {
    /// An entry with what `source` asks for and nothing resolved yet.
    fn request(name: &str, source: &KernelSource) -> LockedKernel {
        let (package, suite) =
            source.apt_request().map_or((None, None), |(p, s)| (Some(p.to_string()), s.map(str::to_string)));
        let is_build = matches!(source, KernelSource::Build(_));
        LockedKernel {
            name: name.to_string(),
            apt: package.clone().filter(|_| !is_build),
            source: package.filter(|_| is_build),
            suite,
            build: None,
            packages: Vec::new(),
        }
    }

    fn describe_request(&self) -> String {
        let what = match (&self.apt, &self.source) {
            (Some(apt), _) => format!("apt package {apt}"),
            (None, Some(source)) => format!("source package {source}"),
            (None, None) => "nothing".to_string(),
        };
        format!("{what} from {}", self.suite.as_deref().unwrap_or("the system's apt sources"))
    }

    pub fn pin(&self) -> Pin {
        match &self.build {
            Some(key) => Pin::Build { source: self.packages[0].clone(), key: key.clone() },
            None => Pin::Apt { packages: self.packages.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksnap_vm::kernel::build::{BuildRecipe, SourceTree};

    fn package(name: &str, version: &str) -> PinnedPackage {
        PinnedPackage { name: name.into(), version: version.into(), sha256: "ab".repeat(32), suite: "bullseye".into() }
    }

    fn bullseye() -> KernelSource {
        KernelSource::Apt { package: "linux-image-cloud-amd64".into(), suite: Some("bullseye".into()) }
    }

    #[test]
    fn a_lock_that_cannot_be_written_says_where() {
        let err = format!("{:#}", Lockfile::default().write(Path::new("/nonexistent/project/ksnap.lock")).unwrap_err());
        assert!(
            err.contains("writing /nonexistent/project/ksnap.lock: cannot create a file in /nonexistent/project"),
            "{err}"
        );
        assert!(!err.contains("XDG_CACHE_HOME"), "not the cache's fault: {err}");
    }

    #[test]
    fn written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fragment = dir.path().join("minimal");
        std::fs::write(&fragment, "CONFIG_A=y\n").unwrap();
        let build = KernelSource::Build(BuildRecipe {
            tree: SourceTree::Apt { package: "linux-source-6.12".into(), suite: None },
            fragments: vec![fragment],
        });
        let source_package = package("linux-source-6.12", "6.12.117-1~deb12u1");
        let key = match &build {
            KernelSource::Build(recipe) => recipe.key(Some(&source_package.package())).unwrap(),
            _ => unreachable!(),
        };
        let mut lock = Lockfile::default();
        let split = Pin::Apt {
            packages: vec![
                package("linux-image-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
                package("linux-binary-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
                package("linux-base-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
            ],
        };
        lock.set("7.2", &bullseye(), &split);
        let build_pin = Pin::Build { source: source_package, key };
        lock.set("6.12-minimal", &build, &build_pin);
        lock.selftests = Some(LockedSelftests {
            source: "linux-source-7.2".into(),
            suite: Some("sid".into()),
            package: package("linux-source-7.2", "7.2.13-1"),
        });
        let text = lock.to_toml();
        assert!(text.starts_with("# ksnap.lock"), "{text}");
        assert!(text.contains("[[kernel.package]]") && text.contains("name = \"7.2\""), "{text}");
        let read = Lockfile::parse(&text).unwrap();
        assert_eq!(read, lock);
        assert_eq!(read.lookup("7.2", &bullseye()).unwrap(), Lookup::Pinned(split));
        assert_eq!(read.lookup("6.12-minimal", &build).unwrap(), Lookup::Pinned(build_pin));
        assert_eq!(read.lookup("5.10", &bullseye()).unwrap(), Lookup::Missing);
        let selftests = read.selftests.as_ref().unwrap();
        let wanted = SelftestsSource { package: "linux-source-7.2".into(), suite: Some("sid".into()) };
        assert_eq!(selftests.lookup(&wanted).unwrap().version, "7.2.13-1");
        let other = SelftestsSource { package: "linux-source-7.2".into(), suite: None };
        assert!(selftests.lookup(&other).unwrap_err().contains("from the system's apt sources"));
        // Entries sort by name: the file is stable whatever order kernels were added in.
        assert!(text.find("6.12-minimal").unwrap() < text.find("\"7.2\"").unwrap());
    }

    #[test]
    fn an_entry_that_no_longer_matches_ksnap_toml_is_stale() {
        let mut lock = Lockfile::default();
        lock.set(
            "5.10",
            &bullseye(),
            &Pin::Apt { packages: vec![package("linux-image-5.10.0-32-cloud-amd64", "5.10.223-1")] },
        );
        let sid = KernelSource::Apt { package: "linux-image-cloud-amd64".into(), suite: Some("sid".into()) };
        let Lookup::Stale(why) = lock.lookup("5.10", &sid).unwrap() else { panic!("not stale") };
        assert!(why.contains("from sid") && why.contains("from bullseye"), "{why}");

        let dir = tempfile::tempdir().unwrap();
        let fragment = dir.path().join("minimal");
        std::fs::write(&fragment, "CONFIG_A=y\n").unwrap();
        let recipe = BuildRecipe {
            tree: SourceTree::Apt { package: "linux-source-6.12".into(), suite: None },
            fragments: vec![fragment.clone()],
        };
        let source = package("linux-source-6.12", "6.12.117-1");
        let pin = Pin::Build { source: source.clone(), key: recipe.key(Some(&source.package())).unwrap() };
        let build = KernelSource::Build(recipe);
        lock.set("min", &build, &pin);
        assert_eq!(lock.lookup("min", &build).unwrap(), Lookup::Pinned(pin));
        std::fs::write(&fragment, "CONFIG_A=y\nCONFIG_B=y\n").unwrap();
        assert!(matches!(lock.lookup("min", &build).unwrap(), Lookup::Stale(why) if why.contains("fragments changed")));
    }

    #[test]
    fn malformed_lock_files_are_named() {
        for (text, expected) in [
            ("version = 2\n", "lock file version 2"),
            ("version = 1\n[[kernel]]\nname = \"a\"\napt = \"x\"\npackage = []\n", "locked to no package"),
            ("version = 1\n[[kernel]]\nname = \"a\"\napt = \"x\"\nflavour = 1\npackage = []\n", "unknown field"),
            ("[[kernel]]\nname = \"a\"\npackage = []\n", "missing field `version`"),
        ] {
            let err = format!("{:#}", Lockfile::parse(text).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
        let twice = "version = 1\n[[kernel]]\nname = \"a\"\napt = \"x\"\n[[kernel.package]]\nname = \"p\"\nversion = \"1\"\nsha256 = \"s\"\nsuite = \"x\"\n";
        let err = Lockfile::parse(&format!("{twice}{}", &twice["version = 1\n".len()..])).unwrap_err().to_string();
        assert!(err.contains("locked twice"), "{err}");
    }

    #[test]
    fn retain_drops_kernels_no_longer_defined() {
        let mut lock = Lockfile::default();
        lock.set("5.10", &bullseye(), &Pin::Apt { packages: vec![package("a", "1")] });
        lock.set("old", &bullseye(), &Pin::Apt { packages: vec![package("b", "1")] });
        assert_eq!(lock.retain(|name| name == "5.10"), ["old"]);
        assert!(lock.get("old").is_none() && lock.get("5.10").is_some());
    }
}
