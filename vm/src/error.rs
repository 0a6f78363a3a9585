//! Errors of the host side: things that stop ksnap from running a guest at all. What happens *inside*
//! a guest (panic, hang, malformed output) is not an error but an [`crate::Outcome`].

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "QEMU not found ({looked_for}). Install it with `apt-get install qemu-system-x86` \
         (or run scripts/setup.sh), or set KSNAP_QEMU to a qemu-system-x86_64 binary"
    )]
    QemuNotFound { looked_for: String },

    // The cause is in the message, not a `#[source]`: a caller printing the chain (`{:#}`) would show
    // it twice. The same for the other variants that carry an I/O error.
    #[error("could not start QEMU: {cause}")]
    QemuSpawn { cause: std::io::Error },

    #[error("--accel kvm was requested but KVM does not work here: {why}. Use --accel tcg (or auto)")]
    KvmUnusable { why: String },

    #[error("kernel package `{package}` is not known to apt ({detail}). Check the name with `apt-cache policy {package}`; run `apt-get update` if the package lists are stale")]
    UnknownPackage { package: String, detail: String },

    #[error(
        "no Debian mirror for suite `{suite}` in the system's apt sources (/etc/apt/sources.list, \
         sources.list.d/*.list, *.sources). Name one: set KSNAP_DEBIAN_MIRROR=URI, or `[apt] mirror = \"URI\"` \
         in ksnap.toml, to the URI of a Debian archive (the `…/debian` of a Debian mirror)"
    )]
    NoDebianMirror { suite: String },

    #[error(
        "{package} was downloaded with SHA-256 {actual}, but ksnap.lock pins {expected}: the archive serves a \
         different file under the same version. Nothing was cached"
    )]
    ChecksumMismatch { package: String, expected: String, actual: String },

    #[error(
        "{packages} (pinned in ksnap.lock) is no longer served by apt ({suite}) and is not in ksnap's cache \
         (apt said: {detail})"
    )]
    PackageGone { packages: String, suite: String, detail: String },

    #[error("`{command}` failed: {stderr}")]
    AptFailed { command: String, stderr: String },

    #[error("{path} is not a bootable x86 kernel image: {why}")]
    NotAKernel { path: PathBuf, why: String },

    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),

    #[error("config fragment {path}: {why}", path = path.display())]
    ConfigFragment { path: PathBuf, why: String },

    #[error(
        "the kernel's .config does not have what {fragments} asks for:\n{mismatches}\nKconfig drops an \
         option whose dependencies are not met: look each one up (`make menuconfig`, then `/` and its name \
         shows what it depends on) and add what it needs to the fragment"
    )]
    ConfigMismatch { fragments: String, mismatches: String },

    #[error(
        "building a kernel from source needs {missing}, not found on this system. Install with \
         `apt-get install {packages}`"
    )]
    BuildToolsMissing { missing: String, packages: String },

    #[error(
        "building the kernel selftests needs {missing}, not found on this system. Install with \
         `apt-get install {packages}`"
    )]
    SelftestsToolsMissing { missing: String, packages: String },

    #[error("there is no selftests collection `{collection}` in {source_package}: {why}")]
    NoSuchSelftests { collection: String, source_package: String, why: String },

    #[error("selftest `{test}` was not built: {why}. The build's output is in {log}", log = log.display())]
    SelftestNotBuilt { test: String, why: String, log: PathBuf },

    #[error("there is no selftest `{test}`: {why}")]
    UnknownSelftest { test: String, why: String },

    #[error("{path} is not a Linux source tree: {why}", path = path.display())]
    NotASourceTree { path: PathBuf, why: String },

    #[error("`{step}` failed ({status}); the whole output is in {log}. Its last lines:\n{tail}", log = log.display())]
    BuildFailed { step: String, status: String, log: PathBuf, tail: String },

    #[error("the ksnap cache at {path} is not usable: {cause}. Set XDG_CACHE_HOME to a writable directory", path = path.display())]
    CacheUnusable { path: PathBuf, cause: std::io::Error },

    #[error("the cache entry {path} does not verify right after it was written (a disk or filesystem problem?)", path = path.display())]
    CacheEntryUnverified { path: PathBuf },

    #[error("probe `{probe}`: {why}")]
    InvalidProbe { probe: String, why: String },

    #[error("initramfs: {0}")]
    Initramfs(#[from] crate::cpio::CpioError),

    #[error("{context}: {cause}")]
    Io { context: String, cause: std::io::Error },

    #[error("interrupted")]
    Cancelled,
}

impl Error {
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io { context: context.into(), cause }
    }
}
