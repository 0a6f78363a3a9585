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
    /// The binary named `name` (`init`, `env`, `fault`, …); an error naming the known ones if missing.
    pub fn get(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            bail!("guest binary `{name}` does not exist: add src/bin/{name}.rs to guest-tests/ (looked in {})", self.dir.display());
        }
        Ok(path)
    }
}

/// Build the guest binaries of the workspace at `root` (a no-op when they are up to date).
pub fn build(root: &Path) -> Result<GuestBinaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("guest");
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
    Ok(GuestBinaries { dir: target_dir.join(GUEST_TARGET).join(GUEST_PROFILE) })
}

/// Compile a C probe (`sources`, C and assembly) into a static executable with `cc`, under
/// `target/guest/c/SUITE/NAME`. Recompiled when a source is newer than the executable.
pub fn build_c_probe(root: &Path, suite: &str, name: &str, sources: &[PathBuf], cc: &str) -> Result<PathBuf> {
    let output = root.join("target").join("guest").join("c").join(suite).join(name);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let built = modified(&output);
    let mut stale = built.is_none();
    for source in sources {
        let changed = modified(source).with_context(|| format!("C probe `{name}`: cannot read {}", source.display()))?;
        stale |= built.is_some_and(|built| changed > built);
    }
    if !stale {
        return Ok(output);
    }
    std::fs::create_dir_all(output.parent().expect("has a parent"))?;
    let mut command = Command::new(cc);
    // -O1: probes read registers and stack slots through asm helpers; keep the code close to the source.
    command
        .args(["-static", "-O1", "-g0", "-Wall", "-Wextra", "-o"])
        .arg(&output)
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
    if !status.success() {
        let _ = std::fs::remove_file(&output);
        bail!("compiling C probe `{name}` with {cc} failed ({status}):\n{}", stderr.trim_end());
    }
    Ok(output)
}
