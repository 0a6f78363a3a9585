//! Making a suite's probes into guest executables: Cargo binaries and C sources built static for x86-64,
//! prebuilt executables checked ([`build_all`] makes every probe's [`ProbeExecutable`]), and the static
//! busybox of selftest suites.
//!
//! Cargo probes are built with the host's toolchain for `x86_64-unknown-linux-gnu` with `+crt-static` (the
//! Rust musl target is not installable here), into their own target directory (`target/guest`) so that
//! the flag does not invalidate the host build, and with `--target` given explicitly so that it does not
//! reach build scripts and proc macros.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::project::config::{Config, ProbeKind};

/// The target guest binaries are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Where probes are built, under the directory of ksnap.toml.
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("guest")
}

/// Build binaries `bins` of Cargo package `package` (of the workspace holding `root`) with `profile`, as
/// static x86-64 executables: one cargo invocation, a no-op when they are up to date. Returns each
/// binary's path, as cargo reports it.
pub fn build_cargo_probes(
    root: &Path,
    package: &str,
    profile: &str,
    bins: &[&str],
) -> Result<BTreeMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--profile", profile, "--package", package, "--target", GUEST_TARGET])
        .args(["--message-format", "json-render-diagnostics", "--quiet"])
        .args(bins.iter().flat_map(|bin| ["--bin", bin]))
        .arg("--target-dir")
        .arg(target_dir(root))
        .current_dir(root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // The harness may itself run under `cargo test`, whose flags are not meant for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("building {} of Cargo package `{package}` (profile `{profile}`)", bins.join(", "));
    let mut child = ksnap_vm::children::spawn(&mut command)
        .with_context(|| format!("{what}: running {}", cargo.to_string_lossy()))?;
    // Both pipes at once: cargo blocks on whichever one fills.
    let stderr = child.child_mut().stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).ok();
            text
        })
    });
    let mut stdout = String::new();
    if let Some(mut pipe) = child.child_mut().stdout.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stdout).ok();
    }
    let stderr = stderr.and_then(|reader| reader.join().ok()).unwrap_or_default();
    let status = child.wait().context("waiting for cargo")?;
    if ksnap_vm::children::is_cancelled() {
        return Err(ksnap_vm::Error::Cancelled.into());
    }
    if !status.success() {
        bail!("{what} failed ({status}):\n{}", stderr.trim_end());
    }
    let built = executables(&stdout, bins);
    if let Some(missing) = bins.iter().find(|bin| !built.contains_key(**bin)) {
        bail!("{what}: cargo succeeded but reported no executable for `{missing}`");
    }
    Ok(built)
}

/// The executables of `bins` among cargo's JSON messages (`compiler-artifact` lines with an `executable`).
fn executables(messages: &str, bins: &[&str]) -> BTreeMap<String, PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin")))
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?;
            let executable = message["executable"].as_str()?;
            bins.contains(&name).then(|| (name.to_string(), PathBuf::from(executable)))
        })
        .collect()
}

/// A probe the user built (`exe = "PATH"`): it must exist and be a static x86-64 executable.
pub fn prebuilt_probe(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("probe executable {} does not exist: build it first (ksnap runs it as it is)", path.display());
    }
    ksnap_vm::kernel::elf::check_static_executable(path).map_err(|why| {
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
    let path = std::env::var_os("KSNAP_BUSYBOX")
        .map_or_else(|| PathBuf::from(ksnap_vm::machine::initramfs::BUSYBOX), PathBuf::from);
    if !path.exists() {
        bail!(
            "kernel selftests need a static busybox in the guest (for `/bin/sh`), and {} does not exist: install \
             it with `apt-get install busybox-static` (scripts/setup.sh does), or set KSNAP_BUSYBOX",
            path.display()
        );
    }
    ksnap_vm::kernel::elf::check_static_executable(&path).map_err(|why| {
        anyhow::anyhow!(
            "{} is {why}: the guest has no libraries. Install Debian's `busybox-static` instead of `busybox` \
             (scripts/setup.sh does), or set KSNAP_BUSYBOX to a static busybox",
            path.display()
        )
    })?;
    Ok(path)
}

/// Compile a C probe (`sources`, C and assembly) into a static executable with `cc`, under
/// `target/guest/c/SUITE/NAME`. Recompiled when a source is newer than the executable.
///
/// The compiler writes a temporary file next to the output, which is renamed into place once whole: a
/// reader (another cell packing the probe into its initramfs, another ksnap process) sees the old
/// executable or the new one, never half of one.
pub fn build_c_probe(root: &Path, suite: &str, name: &str, sources: &[PathBuf], cc: &str) -> Result<PathBuf> {
    let output = target_dir(root).join("c").join(suite).join(name);
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

/// A probe's executable, ready to be packed into an initramfs.
#[derive(Debug, Clone)]
pub struct ProbeExecutable {
    /// The static executable on the host.
    pub path: PathBuf,
    /// For a prebuilt (`exe`) probe, the SHA-256 of its bytes: all the snapshot metadata can say of it.
    pub sha256: Option<String>,
}

/// Every probe's executable that is not a kernel selftest, by (suite, probe): Cargo binaries built with
/// one cargo invocation per (package, profile), C probes compiled, prebuilt executables checked.
pub fn build_all(config: &Config) -> Result<HashMap<(String, String), ProbeExecutable>> {
    let mut binaries = HashMap::new();
    // (package, profile) → the (suite, probe, bin) built from it.
    type Wanted<'a> = Vec<(&'a str, &'a str, &'a str)>;
    let mut cargo_builds: BTreeMap<(&str, &str), Wanted> = BTreeMap::new();
    for suite in config.suites.values() {
        for probe in &suite.probes {
            let key = (suite.name.clone(), probe.name.clone());
            let binary = match &probe.kind {
                ProbeKind::Cargo { package, bin, profile } => {
                    cargo_builds.entry((package, profile)).or_default().push((&suite.name, &probe.name, bin));
                    continue;
                }
                ProbeKind::C { sources, cc, .. } => ProbeExecutable {
                    path: build_c_probe(&config.root, &suite.name, &probe.name, sources, cc)?,
                    sha256: None,
                },
                ProbeKind::Exe { path } => {
                    let path = prebuilt_probe(path)?;
                    let sha256 = ksnap_vm::cache::sha256_file(&path)
                        .with_context(|| format!("reading probe executable {}", path.display()))?;
                    ProbeExecutable { path, sha256: Some(sha256) }
                }
                ProbeKind::Kselftest { .. } => continue,
            };
            binaries.insert(key, binary);
        }
    }
    for ((package, profile), probes) in cargo_builds {
        let mut bins: Vec<&str> = probes.iter().map(|&(_, _, bin)| bin).collect();
        bins.sort_unstable();
        bins.dedup();
        let built = build_cargo_probes(&config.root, package, profile, &bins)?;
        for (suite, probe, bin) in probes {
            binaries.insert(
                (suite.to_string(), probe.to_string()),
                ProbeExecutable { path: built[bin].clone(), sha256: None },
            );
        }
    }
    Ok(binaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn cargo_reports_the_executables() {
        let messages = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ksnap_probe"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"env"},"executable":"/t/guest/x86_64-unknown-linux-gnu/guest/env"}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"fault"},"executable":"/t/fault"}
{"reason":"build-finished","success":true}
not json"#;
        let built = executables(messages, &["env"]);
        assert_eq!(built, BTreeMap::from([("env".into(), "/t/guest/x86_64-unknown-linux-gnu/guest/env".into())]));
    }

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
