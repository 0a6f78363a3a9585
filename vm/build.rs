//! Two jobs.
//!
//! 1. Build ksnap's init (`init/`, the `ksnap-init` crate) as a static x86-64 executable and leave it in
//!    `OUT_DIR/init`, which `initramfs.rs` embeds: the library owns the PID 1 it boots, so that a `ksnap`
//!    installed anywhere (`cargo install --path harness`) needs no checkout to boot a guest. A nested
//!    cargo, with its own target directory (no lock shared with the outer build), the workspace's `guest`
//!    profile and `-C target-feature=+crt-static`.
//! 2. `KSNAP_SKIP_VM=1` turns the tests that need QEMU, apt, root or a C toolchain into ignored tests
//!    (`#[cfg_attr(skip_vm, ignore = "…")]`): reported as ignored, never passed silently. CI leaves it
//!    unset, so there they run, and fail loudly when a prerequisite is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=KSNAP_SKIP_VM");
    println!("cargo::rustc-check-cfg=cfg(skip_vm)");
    if std::env::var("KSNAP_SKIP_VM").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=skip_vm");
    }
    build_init();
}

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn build_init() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for input in ["init/src", "init/Cargo.toml", "../protocol/src", "../protocol/Cargo.toml"] {
        println!("cargo::rerun-if-changed={}", manifest_dir.join(input).display());
    }
    let target_dir = out_dir.join("init-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--bin", "init", "--profile", "guest", "--target", TARGET])
        .arg("--manifest-path")
        .arg(manifest_dir.join("init/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // What the outer build was given is not meant for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = command.status().expect("running cargo to build ksnap's init");
    assert!(status.success(), "building ksnap's init (vm/init) failed: {status}");
    let built = target_dir.join(TARGET).join("guest").join("init");
    copy(&built, &out_dir.join("init"));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
