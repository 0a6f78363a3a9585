//! Errors of the host side: things that stop ksnap from running a guest at all. What happens *inside*
//! a guest (panic, hang, malformed output) is not an error but an [`crate::Outcome`].
//!
//! The two detailed errors [`Error`] wraps, of unpacking a `.deb` (`kernel::deb`) and of packing an
//! initramfs (`machine::cpio`), are here too. Invariant: the shared modules (`cache`, `children`, `error`)
//! import neither subsystem, so that `kernel/` and `machine/` stand on them and not on each other.

use std::io;
use std::path::PathBuf;

/// Why ksnap could not run a guest: QEMU, KVM, a kernel, the selftests or the cache are not what they must be.
///
/// The variants go by subsystem, as the folders do: the machine (QEMU, KVM, the initramfs, saved states),
/// then kernels (apt, images and packages, builds from source, selftests), then what all share (the
/// cache, any other I/O, an interrupt).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The machine (machine/): QEMU, KVM, the initramfs and its plan, saved states.
    /// No QEMU to run: `qemu-system-x86_64` is not on `PATH`, or `KSNAP_QEMU` names no file.
    #[error(
        "QEMU not found ({looked_for}). Install it with `apt-get install qemu-system-x86` \
         (or run scripts/setup.sh), or set KSNAP_QEMU to a qemu-system-x86_64 binary"
    )]
    QemuNotFound {
        /// The program name searched for on `PATH`, or the `KSNAP_QEMU` path that is not a file.
        looked_for: String,
    },

    // The cause is in the message, not a `#[source]`: a caller printing the chain (`{:#}`) would show
    // it twice. The same for the other variants that carry an I/O error.
    /// The QEMU process could not be spawned (or ksnap was interrupted before it was).
    #[error("could not start QEMU: {cause}")]
    QemuSpawn {
        /// Why the spawn failed.
        cause: std::io::Error,
    },

    /// `--accel kvm` was asked for, but the KVM check (booting a test firmware under KVM) failed.
    #[error("--accel kvm was requested but KVM does not work here: {why}. Use --accel tcg (or auto)")]
    KvmUnusable {
        /// What the check saw: `/dev/kvm` cannot be opened, the test guest ended wrong or hung, ….
        why: String,
    },

    /// A probe cannot go into the initramfs: its name is invalid or repeated, or its arguments or the
    /// plan cannot be written.
    #[error("probe `{probe}`: {why}")]
    InvalidProbe {
        /// The probe's name.
        probe: String,
        /// What is wrong.
        why: String,
    },

    /// The probes cannot be written as a plan (an argument with whitespace, say): the message names the probe.
    #[error("the guest's plan: {0}")]
    InvalidPlan(String),

    /// The initramfs archive could not be built: an entry's path, mode or symlink target is invalid, or two
    /// entries conflict.
    #[error("initramfs: {0}")]
    Initramfs(#[from] CpioError),

    /// A machine could not be saved, or a saved one could not be restored: QEMU refused the state, the
    /// monitor broke off, or it took too long. The run that was saving goes on booted; a state that would
    /// not restore should be dropped ([`crate::machine::vmstate::remove`]) and the cell booted instead.
    #[error("saved VM state {key}: {why}")]
    VmState {
        /// The state's key ([`crate::machine::vmstate::key`]).
        key: String,
        /// What went wrong.
        why: String,
    },

    // Kernels through apt (kernel/apt/, and the pins of kernel/mod.rs).
    /// apt cannot resolve a package (no such package, an invalid name, no `Version` or `SHA256` field, too
    /// many metapackage hops).
    #[error("kernel package `{package}` is not known to apt ({detail}). Check the name with `apt-cache policy {package}`; run `apt-get update` if the package lists are stale")]
    UnknownPackage {
        /// What was asked for: a package name (`NAME=VERSION` with a version).
        package: String,
        /// What went wrong: `no such package (bookworm)`, `not a valid Debian package name`, ….
        detail: String,
    },

    /// A Debian suite name (`suite = "…"` in ksnap.toml) that cannot be one: it would end up in a path and
    /// in apt's sources.
    #[error("`{suite}` is not a valid Debian suite name (letters, digits, `-` and `.`: bullseye, trixie, sid, bookworm-security…)")]
    InvalidSuite {
        /// The name as given.
        suite: String,
    },

    /// A kernel source that is a local file (`deb`, `bzimage`) has no pin: only apt and source kernels are
    /// locked.
    #[error("kernel `{kernel}` is a local file: there is nothing to pin or resolve through apt")]
    NothingToPin {
        /// The kernel source, as ksnap.toml describes it.
        kernel: String,
    },

    /// Releases were asked of a kernel that is not an apt kernel line (a local file, a build), or whose
    /// package resolves to no versioned image package (`linux-image-MAJOR.MINOR…-FLAVOUR`).
    #[error("{kernel} has no releases to list: {why}")]
    NoReleases {
        /// The kernel source, as ksnap.toml describes it.
        kernel: String,
        /// Why not.
        why: String,
    },

    /// A Debian suite was asked for, no mirror was configured, and the system's apt sources name no Debian
    /// mirror of that kind (security or not).
    #[error(
        "no Debian mirror for suite `{suite}` in the system's apt sources (/etc/apt/sources.list, \
         sources.list.d/*.list, *.sources). Name one: set KSNAP_DEBIAN_MIRROR=URI, or `[apt] mirror = \"URI\"` \
         in ksnap.toml, to the URI of a Debian archive (the `…/debian` of a Debian mirror)"
    )]
    NoDebianMirror {
        /// The suite asked for, e.g. `bullseye` or `bookworm-security`.
        suite: String,
    },

    /// A downloaded `.deb` does not have the SHA-256 that `ksnap.lock` pins for it.
    #[error(
        "{package} was downloaded with SHA-256 {actual}, but ksnap.lock pins {expected}: the archive serves a \
         different file under the same version. Nothing was cached"
    )]
    ChecksumMismatch {
        /// The package, as `NAME VERSION`.
        package: String,
        /// The pinned SHA-256, hex.
        expected: String,
        /// The SHA-256 of the file apt downloaded, hex.
        actual: String,
    },

    /// `apt-get download` no longer finds a pinned version (the archive dropped it), and it is not cached.
    #[error(
        "{packages} (pinned in ksnap.lock) is no longer served by apt ({suite}) and is not in ksnap's cache \
         (apt said: {detail})"
    )]
    PackageGone {
        /// The packages asked for, as space-separated `NAME=VERSION`.
        packages: String,
        /// The apt configuration asked: `system` or the Debian suite.
        suite: String,
        /// apt's stderr.
        detail: String,
    },

    /// A release (not a locked kernel) apt's index lists, whose `.deb` the archive does not serve (a 404
    /// from the pool).
    #[error("{packages} is listed by apt ({suite}) but could not be downloaded (apt said: {detail})")]
    ReleaseNotServed {
        /// The packages asked for, as space-separated `NAME=VERSION`.
        packages: String,
        /// The apt configuration asked: `system` or the Debian suite.
        suite: String,
        /// apt's stderr.
        detail: String,
    },

    /// An apt command could not be started, failed, or did not write the `.deb` it was asked for.
    #[error("`{command}` failed: {stderr}")]
    AptFailed {
        /// The command, for display (`apt-get download NAME=VERSION …`), without ksnap's `-o` options.
        command: String,
        /// Its stderr without apt's `W:` warnings, trimmed; or why it could not start, or which `.deb` is missing.
        stderr: String,
    },

    /// An apt command neither printed nor wrote anything for a while and was stopped (kernel/apt/run.rs).
    #[error("`{command}` made no progress for {seconds} s and was stopped: {why}")]
    AptStalled {
        /// The command, for display, as in [`Error::AptFailed`].
        command: String,
        /// How long it was silent.
        seconds: u64,
        /// The likely cause and what to do: the directory it writes is (nearly) full, or the network.
        why: String,
    },

    /// The filesystem an apt command would fill has too little room for it; apt was not started.
    #[error("not enough free space in {dir} for {what}: about {needed_mib} MiB needed, {free_mib} MiB free; \
             free some space there, or set XDG_CACHE_HOME to a directory on a larger filesystem", dir = dir.display())]
    NoSpace {
        /// The directory apt would write.
        dir: PathBuf,
        /// What it would write there (`apt's package lists for bullseye`).
        what: String,
        /// About how much it needs.
        needed_mib: u64,
        /// How much the filesystem has.
        free_mib: u64,
    },

    // Kernel images and packages (kernel/entry.rs, kernel/deb.rs).
    /// A file meant to be a bzImage is not one: too short, no `HdrS` boot-protocol header, or no release string.
    #[error("{path} is not a bootable x86 kernel image: {why}")]
    NotAKernel {
        /// The supposed bzImage.
        path: PathBuf,
        /// What is wrong with its setup header.
        why: String,
    },

    /// A kernel `.deb` or source package could not be read or unpacked.
    #[error(transparent)]
    Deb(#[from] DebError),

    // Kernels built from source (kernel/build/); NotASourceTree and BuildFailed serve the selftests too.
    /// A Kconfig fragment cannot be read or has a line that is not an option setting.
    #[error("config fragment {path}: {why}", path = path.display())]
    ConfigFragment {
        /// The fragment file.
        path: PathBuf,
        /// The read error, or the offending line and what is wrong with it.
        why: String,
    },

    /// After `make olddefconfig`, the kernel's `.config` lacks options the fragments set (Kconfig dropped
    /// them): nothing was compiled.
    #[error(
        "the kernel's .config does not have what {fragments} asks for:\n{mismatches}\nKconfig drops an \
         option whose dependencies are not met: look each one up (`make menuconfig`, then `/` and its name \
         shows what it depends on) and add what it needs to the fragment"
    )]
    ConfigMismatch {
        /// The fragments' file names, joined with ` + `.
        fragments: String,
        /// One indented line per option: what was requested and what the `.config` has.
        mismatches: String,
    },

    /// A kernel build needs programs or C headers this host lacks.
    #[error(
        "building a kernel from source needs {missing}, not found on this system. Install with \
         `apt-get install {packages}`"
    )]
    BuildToolsMissing {
        /// What is missing, comma-separated: program names and `<header.h>`s.
        missing: String,
        /// The Debian packages that provide them, space-separated (for `apt-get install`).
        packages: String,
    },

    // Kernel selftests (kernel/selftests.rs).
    /// A selftests build needs programs or C headers (of the libraries the tests link) this host lacks.
    #[error(
        "building the kernel selftests needs {missing}, not found on this system. Install with \
         `apt-get install {packages}`"
    )]
    SelftestsToolsMissing {
        /// What is missing, comma-separated: program names and `<header.h>`s.
        missing: String,
        /// The Debian packages that provide them, space-separated (for `apt-get install`).
        packages: String,
    },

    /// A selftests collection asked for is not a plain directory name, none was asked for, or the source
    /// has no Makefile for it.
    #[error("there is no selftests collection `{collection}` in {source_package}: {why}")]
    NoSuchSelftests {
        /// The collection as asked for (`mm`, `filesystems/epoll`), or `(none)`.
        collection: String,
        /// The kernel source package, as `NAME VERSION`.
        source_package: String,
        /// What is wrong with it.
        why: String,
    },

    /// A selftest its collection's Makefile names did not build into a usable binary.
    #[error("selftest `{test}` was not built: {why}. The build's output is in {log}", log = log.display())]
    SelftestNotBuilt {
        /// The test, as `COLLECTION/NAME` (`mm/cow`).
        test: String,
        /// Why: it did not compile, is not a static x86-64 executable, or its Makefile could not be read.
        why: String,
        /// The selftests build's log, `CACHE/build-logs/selftests-KEY.log`.
        log: PathBuf,
    },

    /// A selftest was asked for that no built collection has.
    #[error("there is no selftest `{test}`: {why}")]
    UnknownSelftest {
        /// The test as asked for (`mm/cow`).
        test: String,
        /// Why it is unknown, e.g. its collection was not built or does not build it.
        why: String,
    },

    /// A git repository that `ksnap bisect --tree` cannot use, or a git command on it that failed.
    #[error("git tree {path}: {why}", path = path.display())]
    GitTree {
        /// The repository given.
        path: PathBuf,
        /// What is wrong (not a repository, uncommitted changes, no such commit, not a kernel) or what git said.
        why: String,
    },

    /// A local source tree, or an unpacked source package, does not look like a Linux kernel tree.
    #[error("{path} is not a Linux source tree: {why}", path = path.display())]
    NotASourceTree {
        /// The directory checked, or the source tarball that does not hold exactly one top-level directory.
        path: PathBuf,
        /// What it lacks (`it has no Makefile`), or what is wrong with the unpacked tarball.
        why: String,
    },

    /// A `make` step of a kernel or selftests build exited unsuccessfully.
    #[error("`{step}` failed ({status}); the whole output is in {log}. Its last lines:\n{tail}", log = log.display())]
    BuildFailed {
        /// The step, as `make ARGS` (`make -j8 bzImage`).
        step: String,
        /// How make ended, as [`std::process::ExitStatus`] displays it.
        status: String,
        /// The build's full log, under `CACHE/build-logs/`.
        log: PathBuf,
        /// The last lines of make's output (at most 30), newline-separated.
        tail: String,
    },

    // Shared by all: the cache, any other I/O, an interrupt.
    /// A directory or temporary file could not be created where ksnap writes (the cache, or the directory
    /// of a file written atomically).
    #[error("the ksnap cache at {path} is not usable: {cause}. Set XDG_CACHE_HOME to a writable directory", path = path.display())]
    CacheUnusable {
        /// The directory (or lock file) that could not be created or written.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },

    /// A cache entry just committed does not read back as valid (its files do not match their hashes).
    #[error("the cache entry {path} does not verify right after it was written (a disk or filesystem problem?)", path = path.display())]
    CacheEntryUnverified {
        /// The entry's directory, `CACHE/KIND/KEY`.
        path: PathBuf,
    },

    /// Any other I/O error on the host.
    #[error("{context}: {cause}")]
    Io {
        /// What ksnap was doing, e.g. `reading /path/to/bzImage`.
        context: String,
        /// The I/O error.
        cause: std::io::Error,
    },

    /// ksnap was interrupted ([`crate::children::cancel_all`], on SIGINT or SIGTERM) and gave up what it was doing.
    #[error("interrupted")]
    Cancelled,
}

impl Error {
    /// An [`Error::Io`] saying what was being done when `cause` happened.
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io { context: context.into(), cause }
    }
}

/// Why a `.deb` could not be read. Every message names the package file.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("{} is not a .deb package: it does not start with the ar archive signature `!<arch>`", path.display())]
    NotArArchive { path: PathBuf },

    #[error(
        "{} has no {member}.* member: it is not a Debian binary package, or it is truncated",
        path.display()
    )]
    MissingMember { path: PathBuf, member: &'static str },

    #[error(
        "{}: member {member} uses a compression ksnap cannot read; only xz (.xz), zstd (.zst) and \
         uncompressed members are supported",
        path.display()
    )]
    UnsupportedCompression { path: PathBuf, member: String },

    #[error("{} is truncated or corrupt: reading {member} failed: {source}", path.display())]
    Corrupt { path: PathBuf, member: String, source: io::Error },

    #[error(
        "{} contains no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz: it is not a kernel image package \
         (a meta-package such as linux-image-amd64 only depends on one; from Debian 7.x the image is in \
         linux-binary-*)",
        path.display()
    )]
    NoVmlinuz { path: PathBuf },

    #[error(
        "{} contains no usr/src/linux-source-*.tar.xz: it is not a Debian kernel source package \
         (linux-source-X.Y)",
        path.display()
    )]
    NoSourceTarball { path: PathBuf },

    #[error("unpacking {} was stopped", path.display())]
    Stopped { path: PathBuf },

    #[error("{}: {problem}", path.display())]
    InvalidControl { path: PathBuf, problem: &'static str },

    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Why an entry cannot be added to the archive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error(
        "invalid initramfs path {path:?}: {reason}; use a relative or absolute path made of \
         plain names separated by single slashes"
    )]
    InvalidPath { path: String, reason: &'static str },

    #[error("invalid mode {mode:#o} for initramfs entry {path:?}: only permission bits (0o7777) may be set")]
    InvalidMode { path: String, mode: u32 },

    #[error("initramfs entry {path:?} was added twice with different contents; add each path once")]
    Conflict { path: String },

    #[error("cannot add {path:?} to the initramfs: its parent {parent:?} is not a directory")]
    ParentNotDirectory { path: String, parent: String },

    #[error("initramfs file {path:?} is {size} bytes, more than the 4 GiB a newc cpio entry can hold")]
    FileTooLarge { path: String, size: usize },

    #[error("invalid symlink target {target:?} for initramfs entry {path:?}: {reason}")]
    InvalidSymlinkTarget { path: String, target: String, reason: &'static str },
}
