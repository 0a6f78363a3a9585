//! Building the guest binaries (`guest-tests/`) as static x86_64 executables.
//!
//! They are built with the host's toolchain for `x86_64-unknown-linux-gnu` with `+crt-static` (the Rust
//! musl target is not installable here), into their own target directory so that the flag does not
//! invalidate the host build, and with `--target` given explicitly so it does not reach build scripts and
//! proc macros.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

pub const GUEST_PACKAGE: &str = "ksnap-guest";
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The Cargo profile for guest binaries (see the workspace Cargo.toml).
pub const GUEST_PROFILE: &str = "guest";

/// Where the built guest binaries are.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    dir: PathBuf,
}

impl GuestBinaries {
    /// Whether every binary of `guest-tests/src/bin/` exists and is newer than the files of the crate and
    /// of the crates it uses (protocol, init's library), the workspace manifest and the lock file: then cargo would have
    /// nothing to do.
    fn newer_than_sources(&self, root: &Path) -> bool {
        let crate_dir = root.join("guest-tests");
        let mut inputs = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
        for dir in [&crate_dir, &root.join("protocol"), &root.join("vm").join("init")] {
            collect_files(&dir.join("src"), &mut inputs);
            inputs.push(dir.join("Cargo.toml"));
        }
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(newest_input) =
            inputs.iter().map(|p| modified(p)).collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max())
        else {
            return false;
        };
        let Ok(bins) = std::fs::read_dir(crate_dir.join("src").join("bin")) else { return false };
        let outputs: Option<Vec<_>> = bins
            .flatten()
            .filter_map(|entry| Some(entry.path().file_stem()?.to_str()?.to_string()))
            .map(|bin| modified(&self.dir.join(bin)))
            .collect();
        outputs.is_some_and(|outputs| !outputs.is_empty() && outputs.iter().all(|&built| built > newest_input))
    }

    /// The binary named `name` (`init`, `env`, `fault`, …); an error naming the known ones if missing.
    pub fn get(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            bail!(
                "guest binary `{name}` does not exist: add src/bin/{name}.rs to guest-tests/ (looked in {})",
                self.dir.display()
            );
        }
        Ok(path)
    }
}

/// Build the guest binaries of the workspace at `root` (a no-op when they are up to date).
pub fn build(root: &Path) -> Result<GuestBinaries> {
    let target_dir = root.join("target").join("guest");
    let binaries = GuestBinaries { dir: target_dir.join(GUEST_TARGET).join(GUEST_PROFILE) };
    // Asking cargo costs ~0.1 s even when nothing changed, a tenth of a fast run's VM time: skip it when
    // every binary is newer than everything cargo would look at.
    if binaries.newer_than_sources(root) {
        return Ok(binaries);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--profile", GUEST_PROFILE, "--quiet", "--package", GUEST_PACKAGE, "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // The harness may itself run under `cargo test`, whose flags are not meant for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ksnap_vm::children::spawn(&mut command)
        .with_context(|| format!("running {} to build the guest binaries", cargo.to_string_lossy()))?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.child_mut().stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
    }
    let status = child.wait().context("waiting for cargo")?;
    if ksnap_vm::children::is_cancelled() {
        return Err(ksnap_vm::Error::Cancelled.into());
    }
    if !status.success() {
        bail!("building the guest binaries failed ({status}):\n{}", stderr.trim_end());
    }
    Ok(binaries)
}

/// A probe the user built (`exe = "PATH"`): it must exist and be a static x86-64 executable.
pub fn prebuilt_probe(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("probe executable {} does not exist: build it first (ksnap runs it as it is)", path.display());
    }
    ksnap_vm::elf::check_static_executable(path).map_err(|why| {
        anyhow::anyhow!(
            "probe executable {} is {why}: the guest has no libraries. Link it statically: for Rust, \
             RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --target x86_64-unknown-linux-gnu; \
             for C, gcc -static (or musl-gcc -static)",
            path.display()
        )
    })?;
    Ok(path.to_path_buf())
}

/// The static busybox the initramfs of a selftest suite carries (`KSNAP_BUSYBOX`, else `/bin/busybox`).
pub fn static_busybox() -> Result<PathBuf> {
    let path =
        std::env::var_os("KSNAP_BUSYBOX").map_or_else(|| PathBuf::from(ksnap_vm::initramfs::BUSYBOX), PathBuf::from);
    if !path.exists() {
        bail!(
            "kernel selftests need a static busybox in the guest (for `/bin/sh`), and {} does not exist: install \
             it with `apt-get install busybox-static` (scripts/setup.sh does), or set KSNAP_BUSYBOX",
            path.display()
        );
    }
    ksnap_vm::elf::check_static_executable(&path).map_err(|why| {
        anyhow::anyhow!(
            "{} is {why}: the guest has no libraries. Install Debian's `busybox-static` instead of `busybox` \
             (scripts/setup.sh does), or set KSNAP_BUSYBOX to a static busybox",
            path.display()
        )
    })?;
    Ok(path)
}

fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

/// Compile a C probe (`sources`, C and assembly) into a static executable with `cc`, under
/// `target/guest/c/SUITE/NAME`. Recompiled when a source is newer than the executable.
///
/// The compiler writes a temporary file next to the output, which is renamed into place once whole: a
/// reader (another cell packing the probe into its initramfs, another ksnap process) sees the old
/// executable or the new one, never half of one.
pub fn build_c_probe(root: &Path, suite: &str, name: &str, sources: &[PathBuf], cc: &str) -> Result<PathBuf> {
    let output = root.join("target").join("guest").join("c").join(suite).join(name);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let built = modified(&output);
    let mut stale = built.is_none();
    for source in sources {
        let changed =
            modified(source).with_context(|| format!("C probe `{name}`: cannot read {}", source.display()))?;
        stale |= built.is_some_and(|built| changed > built);
    }
    if !stale {
        return Ok(output);
    }
    let dir = output.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?
        .into_temp_path();
    let mut command = Command::new(cc);
    // -O1: probes read registers and stack slots through asm helpers; keep the code close to the source.
    command
        .args(["-static", "-O1", "-g0", "-Wall", "-Wextra", "-o"])
        .arg(&partial)
        .args(sources)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ksnap_vm::children::spawn(&mut command).with_context(|| {
        format!("running `{cc}` for C probe `{name}`: is it installed? (scripts/setup.sh installs gcc and musl-tools)")
    })?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.child_mut().stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
    }
    let status = child.wait().context("waiting for the C compiler")?;
    if ksnap_vm::children::is_cancelled() {
        return Err(ksnap_vm::Error::Cancelled.into());
    }
    if !status.success() {
        bail!("compiling C probe `{name}` with {cc} failed ({status}):\n{}", stderr.trim_end());
    }
    partial.persist(&output).with_context(|| format!("moving the built C probe to {}", output.display()))?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_prebuilt_probe_must_exist_and_be_static() {
        let missing = prebuilt_probe(Path::new("/nonexistent/probe")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/probe does not exist: build it first"), "{missing}");
        // Debian's /bin/true is a dynamically linked executable.
        let dynamic = prebuilt_probe(Path::new("/bin/true")).unwrap_err().to_string();
        assert!(dynamic.contains("is dynamically linked") && dynamic.contains("Link it statically"), "{dynamic}");
    }

    /// A compiler that writes its output in two halves, slowly, as a linker writing a large file does.
    fn slow_cc(dir: &Path) -> PathBuf {
        let cc = dir.join("slow-cc");
        let script = "#!/bin/sh\nwhile [ \"$1\" != -o ]; do shift; done\nout=$2\n\
                      head -c 4096 /dev/zero > \"$out\"; sleep 0.3; head -c 4096 /dev/zero >> \"$out\"\n";
        std::fs::write(&cc, script).unwrap();
        std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
        cc
    }

    #[test]
    fn a_c_probe_is_never_seen_half_written() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("probe.c");
        std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
        let cc = slow_cc(root.path());
        let output = root.path().join("target/guest/c/suite/probe");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut sizes = std::collections::BTreeSet::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(meta) = std::fs::metadata(&output) {
                        sizes.insert(meta.len());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                sizes
            });
            let built =
                build_c_probe(root.path(), "suite", "probe", std::slice::from_ref(&source), cc.to_str().unwrap())
                    .unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(built, output);
            let sizes = reader.join().unwrap();
            assert!(sizes.iter().all(|&size| size == 8192), "a reader saw a partial probe: sizes {sizes:?}");
        });
        let leftovers: Vec<_> =
            std::fs::read_dir(output.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("probe")], "temporary files left behind");
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs gcc (KSNAP_SKIP_VM=1)")]
    fn a_failed_compile_leaves_no_output() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("probe.c");
        std::fs::write(&source, "this is not C\n").unwrap();
        let err = build_c_probe(root.path(), "suite", "bad", &[source], "gcc").unwrap_err().to_string();
        assert!(err.contains("compiling C probe `bad` with gcc failed"), "{err}");
        let dir = root.path().join("target/guest/c/suite");
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    }
}
