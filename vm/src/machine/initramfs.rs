//! The guest's initramfs: `/init`, the probes under `/ksnap/probes/`, and, when asked for, a static busybox
//! as `/bin/busybox` with the few applets kernel selftests call (`/bin/sh` for `system()`, `cat`, `true`,
//! `sleep`). The plan is not in it: the host sends it when init is up ([`ksnap_protocol::plan`]), so one
//! initramfs serves every plan of the probes it holds. The archive is deterministic, so it is stored in the
//! cache under its content hash and a rerun with the same binaries reuses it.

use std::path::{Path, PathBuf};

use ksnap_protocol::paths;

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::machine::cpio::CpioBuilder;

/// A probe's executable in the initramfs, at `/ksnap/probes/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFile {
    /// `[A-Za-z0-9_.-]+`, unique within the initramfs.
    pub name: String,
    /// The static binary on the host.
    pub binary: PathBuf,
}

/// What goes into an initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsSpec {
    /// Becomes `/init`: `None` for ksnap's own init ([`KSNAP_INIT`]), or a stand-in (the failure-mode
    /// tests boot `fault` as PID 1).
    pub init: Option<PathBuf>,
    /// The probes a plan can run, each under `/ksnap/probes/NAME`.
    pub probes: Vec<ProbeFile>,
    /// A static busybox to install as `/bin/busybox` with [`BUSYBOX_APPLETS`] linked to it.
    pub busybox: Option<PathBuf>,
}

/// ksnap's init (`vm/init`), a static x86-64 executable built with this library and embedded in it: it
/// runs the plan's probes and speaks [`ksnap_protocol`] on the result channel.
pub const KSNAP_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/init"));

/// The busybox applets the initramfs links, under `/bin`: what the kernel selftests run call (`system()`
/// runs `/bin/sh -c`; mm tests `cat` their maps on failure; some exec `true` or `sleep`).
pub const BUSYBOX_APPLETS: &[&str] = &["sh", "cat", "true", "false", "sleep", "echo", "ls"];

/// Where a static busybox usually is (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// A built initramfs: the archive in the cache, and the names of the probes it holds (what a plan can run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initramfs {
    /// The cpio archive, under the cache's `initramfs/` (named by its content hash).
    pub path: PathBuf,
    /// The probes under `/ksnap/probes/`, by name.
    pub probes: Vec<String>,
}

impl InitramfsSpec {
    /// The archive's bytes.
    pub fn to_cpio(&self) -> Result<Vec<u8>, Error> {
        let mut seen = std::collections::HashSet::new();
        for probe in &self.probes {
            let valid =
                !probe.name.is_empty() && probe.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid || !seen.insert(&probe.name) {
                return Err(Error::InvalidProbe {
                    probe: probe.name.clone(),
                    why: "the name is invalid (letters, digits, `_.-`) or repeated".into(),
                });
            }
        }
        let read = |path: &Path| std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e));
        let mut archive = CpioBuilder::new();
        let init = match &self.init {
            None => KSNAP_INIT.to_vec(),
            Some(path) => read(path)?,
        };
        archive.add_file("init", 0o755, init)?;
        for dir in ["proc", "sys", "dev", "tmp"] {
            archive.add_dir(dir, 0o755)?;
        }
        for probe in &self.probes {
            archive.add_file(&paths::probe(&probe.name)[1..], 0o755, read(&probe.binary)?)?;
        }
        if let Some(busybox) = &self.busybox {
            archive.add_dir("bin", 0o755)?;
            archive.add_file("bin/busybox", 0o755, read(busybox)?)?;
            for applet in BUSYBOX_APPLETS {
                archive.add_symlink(&format!("bin/{applet}"), "busybox")?;
            }
        }
        Ok(archive.finish())
    }

    /// Write the archive into the cache (once per distinct content).
    pub fn build(&self, cache: &Cache) -> Result<Initramfs, Error> {
        let bytes = self.to_cpio()?;
        let path = cache.root().join("initramfs").join(format!("{}.cpio", &cache::sha256_bytes(&bytes)[..32]));
        if !path.exists() {
            cache::write_atomic(&path, &bytes)?;
        }
        Ok(Initramfs { path, probes: self.probes.iter().map(|p| p.name.clone()).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> InitramfsSpec {
        std::fs::write(dir.join("init"), b"\x7fELF init").unwrap();
        std::fs::write(dir.join("env"), b"\x7fELF env").unwrap();
        InitramfsSpec {
            init: Some(dir.join("init")),
            probes: vec![ProbeFile { name: "env".into(), binary: dir.join("env") }],
            busybox: None,
        }
    }

    #[test]
    fn same_inputs_same_archive_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let first = spec(dir.path()).build(&cache).unwrap();
        let second = spec(dir.path()).build(&cache).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.probes, ["env"]);
        let listing =
            std::process::Command::new("cpio").args(["-t", "--quiet", "-F"]).arg(&first.path).output().unwrap();
        let names = String::from_utf8(listing.stdout).unwrap();
        for expected in ["init", "ksnap/probes/env", "proc", "dev"] {
            assert!(names.lines().any(|l| l == expected), "{expected} missing from:\n{names}");
        }
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs cpio (KSNAP_SKIP_VM=1)")]
    fn busybox_comes_with_its_applets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("busybox"), b"\x7fELF busybox").unwrap();
        let mut with = spec(dir.path());
        with.busybox = Some(dir.path().join("busybox"));
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let listing = std::process::Command::new("cpio")
            .args(["-tv", "--quiet", "-F"])
            .arg(with.build(&cache).unwrap().path)
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert!(listing.lines().any(|l| l.ends_with(" bin/busybox")), "{listing}");
        assert!(listing.lines().any(|l| l.ends_with(" bin/sh -> busybox")), "{listing}");
        let without = spec(dir.path()).to_cpio().unwrap();
        assert!(!without.windows(11).any(|w| w == b"bin/busybox"));
    }

    #[test]
    fn rejects_bad_probe_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = spec(dir.path());
        bad.probes[0].name = "../x".into();
        assert!(bad.to_cpio().unwrap_err().to_string().contains("is invalid (letters, digits, `_.-`) or repeated"));
    }

    #[test]
    fn the_embedded_init_is_a_static_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init");
        std::fs::write(&path, KSNAP_INIT).unwrap();
        assert_eq!(crate::kernel::elf::check_static_executable(&path), Ok(()));
        let mut with_embedded = spec(dir.path());
        with_embedded.init = None;
        let archive = with_embedded.to_cpio().unwrap();
        assert!(archive.windows(KSNAP_INIT.len().min(4096)).any(|w| w == &KSNAP_INIT[..w.len()]));
    }
}
