//! What a kernel build needs from the host and runs on it: the programs and headers it needs (and the
//! Debian packages that provide them), `make` as a child process with its output logged and followed,
//! progress reports read from kbuild's output, and the output of short commands such as `gcc --version`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kernel::entry::StepReporter;

/// Only x86_64 guests are booted (`qemu-system-x86_64`, `-cpu qemu64`).
const ARCH: &str = "ARCH=x86_64";
/// Lines of `make` output an error message shows.
const ERROR_TAIL_LINES: usize = 30;
/// How often the build reports progress: often enough to show it moving, seldom enough that plain
/// progress lines (CI logs) stay readable through a build of several minutes.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The host programs a build runs; the tests substitute a fake `make`.
pub(super) struct Host<'a> {
    pub(super) make: &'a str,
    pub(super) prerequisites: &'a [Prerequisite],
    /// Compile through ccache, its cache under `CACHE/ccache/`: a first build in an object tree finds the
    /// objects earlier trees compiled.
    pub(super) ccache: bool,
    /// The programs whose `--version` is part of an object tree's key.
    pub(super) toolchain: &'a [&'a str],
}

pub(super) const HOST: Host<'static> =
    Host { make: "make", prerequisites: &ALWAYS, ccache: true, toolchain: &["gcc", "ld"] };

/// Something a build needs from the host, and the Debian package that provides it.
pub(crate) struct Prerequisite {
    pub(crate) need: Need,
    pub(crate) package: &'static str,
}

pub(crate) enum Need {
    /// A program on PATH.
    Program(&'static str),
    /// A C header the compiler finds.
    Header(&'static str),
}

/// What every x86_64 `tinyconfig` build needs: make and a C toolchain, flex and bison for Kconfig's
/// parser, bc for the timer constants (kernel/time/timeconst.bc), libelf for objtool (which x86_64
/// always builds: HAVE_STATIC_CALL_INLINE and HAVE_UACCESS_VALIDATION select it).
const ALWAYS: [Prerequisite; 9] = [
    Prerequisite { need: Need::Program("make"), package: "make" },
    Prerequisite { need: Need::Program("ccache"), package: "ccache" },
    Prerequisite { need: Need::Program("gcc"), package: "gcc" },
    Prerequisite { need: Need::Program("ld"), package: "binutils" },
    Prerequisite { need: Need::Header("stdlib.h"), package: "libc6-dev" },
    Prerequisite { need: Need::Program("flex"), package: "flex" },
    Prerequisite { need: Need::Program("bison"), package: "bison" },
    Prerequisite { need: Need::Program("bc"), package: "bc" },
    Prerequisite { need: Need::Header("gelf.h"), package: "libelf-dev" },
];

/// What some options of the final `.config` add: the kernel image's compressor, the signing tools'
/// OpenSSL, BTF's pahole.
pub(super) const BY_OPTION: [(&str, Prerequisite); 9] = [
    ("CONFIG_KERNEL_GZIP", Prerequisite { need: Need::Program("gzip"), package: "gzip" }),
    ("CONFIG_KERNEL_BZIP2", Prerequisite { need: Need::Program("bzip2"), package: "bzip2" }),
    ("CONFIG_KERNEL_LZMA", Prerequisite { need: Need::Program("lzma"), package: "xz-utils" }),
    ("CONFIG_KERNEL_XZ", Prerequisite { need: Need::Program("xz"), package: "xz-utils" }),
    ("CONFIG_KERNEL_LZO", Prerequisite { need: Need::Program("lzop"), package: "lzop" }),
    ("CONFIG_KERNEL_LZ4", Prerequisite { need: Need::Program("lz4"), package: "lz4" }),
    ("CONFIG_KERNEL_ZSTD", Prerequisite { need: Need::Program("zstd"), package: "zstd" }),
    ("CONFIG_SYSTEM_TRUSTED_KEYRING", Prerequisite { need: Need::Header("openssl/opensslv.h"), package: "libssl-dev" }),
    ("CONFIG_DEBUG_INFO_BTF", Prerequisite { need: Need::Program("pahole"), package: "pahole" }),
];

/// Fail, naming the packages to install, if any prerequisite of a kernel build is missing.
pub(super) fn check_prerequisites<'a>(prerequisites: impl Iterator<Item = &'a Prerequisite>) -> Result<(), Error> {
    match missing_prerequisites(prerequisites) {
        Some((missing, packages)) => Err(Error::BuildToolsMissing { missing, packages }),
        None => Ok(()),
    }
}

/// The prerequisites not found (`make, <numa.h>`) and the packages to install for them (`make
/// libnuma-dev`), if any.
pub(crate) fn missing_prerequisites<'a>(
    prerequisites: impl Iterator<Item = &'a Prerequisite>,
) -> Option<(String, String)> {
    let mut missing: Vec<String> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for prerequisite in prerequisites {
        let (found, what) = match prerequisite.need {
            Need::Program(name) => (find_program(name), name.to_string()),
            Need::Header(name) => (header_exists(name), format!("<{name}>")),
        };
        if !found {
            missing.push(what);
            if !packages.contains(&prerequisite.package) {
                packages.push(prerequisite.package);
            }
        }
    }
    (!missing.is_empty()).then(|| (missing.join(", "), packages.join(" ")))
}

fn find_program(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Whether the host C compiler finds `<header>` (asked of gcc itself: it knows its include path).
fn header_exists(header: &str) -> bool {
    let mut command = Command::new("gcc");
    command
        .args(["-E", "-x", "c", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Through crate::children like every child: none outlives ksnap.
    let Ok(mut child) = crate::children::spawn(&mut command) else {
        return false;
    };
    let wrote = child.child_mut().stdin.take().is_some_and(|mut stdin| writeln!(stdin, "#include <{header}>").is_ok());
    child.wait().is_ok_and(|status| status.success()) && wrote
}

/// The stdout of a short command that succeeded (run in the C locale, through [`crate::children`]).
pub(crate) fn capture(command: &mut Command) -> Option<String> {
    command.env("LC_ALL", "C").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = crate::children::spawn(command).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.child_mut().stdout.take()?, &mut text).ok()?;
    child.wait().ok()?.success().then_some(text)
}

/// `make` in a source tree, building into `out`, its output appended to a log file. Kernel builds run
/// kbuild targets ([`Make::run`]); the selftests build ([`crate::kernel::selftests`]) also runs other Makefiles of
/// the tree ([`Make::run_in`]), into the same log.
pub(crate) struct Make {
    program: String,
    tree: PathBuf,
    out: PathBuf,
    log_path: PathBuf,
    log: std::fs::File,
    /// What `uname -v` shows instead of the build time, so that a rebuild is the same kernel.
    stamp: String,
    /// ccache's directory and base directory, when kbuild compiles through it ([`Make::use_ccache`]).
    ccache: Option<(PathBuf, PathBuf)>,
}

impl Make {
    pub(crate) fn new(program: &str, tree: &Path, out: &Path, log_path: &Path, stamp: &str) -> Result<Make, Error> {
        // make runs in the tree, so O= must not be relative to where ksnap runs.
        let absolute =
            |p: &Path| std::path::absolute(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e));
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let log =
            std::fs::File::create(log_path).map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
        Ok(Make {
            program: program.into(),
            tree: absolute(tree)?,
            out: absolute(out)?,
            log_path: log_path.to_path_buf(),
            log,
            stamp: stamp.into(),
            ccache: None,
        })
    }

    /// Have kbuild's compiler be `ccache gcc`, with its cache in `dir`. Paths under `base` are hashed
    /// relative to the build directory (`CCACHE_BASEDIR`), so that two builds in different temporary
    /// directories of the same cache share objects; the build directory itself is left out of the hash
    /// (`CCACHE_NOHASHDIR`): it only reaches the objects through debug information, which a bzImage does
    /// not carry. The kernel built is the same as without ccache.
    ///
    /// ccache runs in its depend mode (`CCACHE_DEPEND`): it hashes the headers kbuild's `-Wp,-MMD` lists
    /// instead of running the preprocessor on every miss. A first build, all misses, is where a first run
    /// waits: the 6.12-minimal build took 341 s through ccache's default mode, 263 s in depend mode and 240 s
    /// without ccache (2 cores, side by side); again from an empty object tree, depend mode's hits made it 30 s
    /// (README, "The first run on a fresh machine").
    pub(crate) fn use_ccache(&mut self, dir: &Path, base: &Path) {
        self.ccache = Some((dir.to_path_buf(), base.to_path_buf()));
    }

    /// Run kbuild's `make TARGETS` (`-C TREE O=OUT ARCH=x86_64`), feeding each line of its output (stdout
    /// and stderr, interleaved as written) to `on_line`. A failure carries the last lines of the output.
    pub(crate) fn run(&mut self, targets: &[&str], on_line: &mut dyn FnMut(&str)) -> Result<(), Error> {
        let mut command = Command::new(&self.program);
        command.arg("-C").arg(&self.tree).arg(format!("O={}", self.out.display())).arg(ARCH).args(targets);
        if let Some((dir, base)) = &self.ccache {
            command
                .arg("CC=ccache gcc")
                .env("CCACHE_DIR", dir)
                .env("CCACHE_BASEDIR", base)
                .env("CCACHE_NOHASHDIR", "1")
                .env("CCACHE_DEPEND", "1");
        }
        self.follow(format!("make {}", targets.join(" ")), command, on_line)
    }

    /// Run `make -C DIR ARGS`: no `O=` or `ARCH=` added, the environment cleaned as for kbuild and of
    /// `env_remove` too. Output and failures as for [`Make::run`]; the step is named `make ARGS`.
    pub(crate) fn run_in(
        &mut self,
        dir: &Path,
        args: &[String],
        env_remove: &[&str],
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        let mut command = Command::new(&self.program);
        command.arg("-C").arg(dir).args(args);
        for name in env_remove {
            command.env_remove(name);
        }
        self.follow(format!("make {}", args.join(" ")), command, on_line)
    }

    fn follow(&mut self, step: String, mut command: Command, on_line: &mut dyn FnMut(&str)) -> Result<(), Error> {
        let _ = writeln!(self.log, "### {step}");
        let (reader, writer) = nix::unistd::pipe().map_err(|e| Error::io("creating a pipe", e.into()))?;
        let writer_for_stderr = writer.try_clone().map_err(|e| Error::io("creating a pipe", e))?;
        command
            // A reproducible `uname -v` (`#1 SMP …`) and build banner, whatever the machine and time.
            .env("KBUILD_BUILD_VERSION", "1")
            .env("KBUILD_BUILD_TIMESTAMP", &self.stamp)
            .env("KBUILD_BUILD_USER", "ksnap")
            .env("KBUILD_BUILD_HOST", "ksnap")
            .env("LC_ALL", "C")
            // Settings from the user's environment that would change what is built, or where.
            .env_remove("KBUILD_OUTPUT")
            .env_remove("KCONFIG_CONFIG")
            .env_remove("KCONFIG_ALLCONFIG")
            .env_remove("CROSS_COMPILE")
            .env_remove("LLVM")
            .env_remove("MAKEFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_for_stderr));
        let mut child = crate::children::spawn(&mut command).map_err(|e| match crate::children::is_cancelled() {
            true => Error::Cancelled,
            false => Error::io(format!("starting {}", self.program), e),
        })?;
        // `command` holds the pipe's write end: once it is dropped, the read end sees EOF when make and
        // everything it started are done.
        drop(command);
        let mut tail: VecDeque<String> = VecDeque::with_capacity(ERROR_TAIL_LINES);
        for line in BufReader::new(std::fs::File::from(reader)).split(b'\n') {
            let line = line.map_err(|e| Error::io("reading the output of make", e))?;
            let line = String::from_utf8_lossy(&line);
            let _ = writeln!(self.log, "{line}");
            on_line(&line);
            if tail.len() == ERROR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.into_owned());
        }
        let status = child.wait().map_err(|e| Error::io("waiting for make", e))?;
        if crate::children::is_cancelled() {
            return Err(Error::Cancelled);
        }
        if !status.success() {
            return Err(Error::BuildFailed {
                step,
                status: status.to_string(),
                log: self.log_path.clone(),
                tail: Vec::from(tail).join("\n"),
            });
        }
        Ok(())
    }
}

/// Lets a progress report through every [`PROGRESS_INTERVAL`].
pub(super) struct Throttle {
    last: Instant,
}

impl Throttle {
    pub(super) fn new() -> Throttle {
        Throttle { last: Instant::now() }
    }

    pub(super) fn ready(&mut self) -> bool {
        let ready = self.last.elapsed() >= PROGRESS_INTERVAL;
        if ready {
            self.last = Instant::now();
        }
        ready
    }
}

/// Turns the build's `  CC      mm/memory.o` lines into occasional progress reports: `WHAT: N files
/// compiled, CC mm/memory.o`.
pub(crate) struct BuildProgress<'a> {
    report: StepReporter<'a>,
    what: String,
    compiled: usize,
    throttle: Throttle,
}

impl<'a> BuildProgress<'a> {
    /// Reports `what` (`building bzImage`) at once, then every [`PROGRESS_INTERVAL`] with the count.
    pub(crate) fn new(report: StepReporter<'a>, what: &str) -> Self {
        report(what);
        BuildProgress { report, what: what.to_string(), compiled: 0, throttle: Throttle::new() }
    }

    pub(crate) fn line(&mut self, line: &str) {
        let Some((tool, file)) = kbuild_step(line) else { return };
        if tool == "CC" || tool == "AS" {
            self.compiled += 1;
        }
        // Linking is the last long step: always say so.
        let linking = tool == "LD" && file == "vmlinux";
        if self.throttle.ready() || linking {
            (self.report)(&format!("{}: {} files compiled, {tool} {file}", self.what, self.compiled));
        }
    }
}

/// `("CC", "mm/memory.o")` for a kbuild quiet-mode line `  CC      mm/memory.o`.
fn kbuild_step(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("  ")?;
    let (tool, file) = rest.split_once(' ')?;
    let file = file.trim();
    let is_tool = !tool.is_empty() && tool.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    (is_tool && !file.is_empty()).then_some((tool, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbuild_lines_are_recognised() {
        assert_eq!(kbuild_step("  CC      mm/memory.o"), Some(("CC", "mm/memory.o")));
        assert_eq!(kbuild_step("  LD      vmlinux"), Some(("LD", "vmlinux")));
        assert_eq!(kbuild_step("  HOSTCC  scripts/kconfig/conf.o"), Some(("HOSTCC", "scripts/kconfig/conf.o")));
        assert_eq!(kbuild_step("make[1]: Entering directory '/x'"), None);
        assert_eq!(kbuild_step("mm/memory.c:12: warning: unused variable"), None);
        assert_eq!(kbuild_step("  "), None);
    }

    #[test]
    fn progress_counts_compiled_files_and_reports_linking() {
        let mut reports = Vec::new();
        {
            let mut report = |step: &str| reports.push(step.to_string());
            let mut progress = BuildProgress::new(&mut report, "building bzImage");
            progress.line("  CC      a.o");
            progress.line("  AS      b.o");
            progress.line("  AR      built-in.a");
            progress.line("  LD      vmlinux");
        }
        assert_eq!(reports, ["building bzImage", "building bzImage: 2 files compiled, LD vmlinux"]);
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs a C toolchain (KSNAP_SKIP_VM=1)")]
    fn missing_prerequisites_name_their_packages() {
        let needs = [
            Prerequisite { need: Need::Program("ksnap-no-such-program"), package: "pkg-a" },
            Prerequisite { need: Need::Program("sh"), package: "dash" },
            Prerequisite { need: Need::Header("ksnap/no-such-header.h"), package: "pkg-b" },
        ];
        let err = check_prerequisites(needs.iter()).unwrap_err().to_string();
        assert!(err.contains("ksnap-no-such-program, <ksnap/no-such-header.h>"), "{err}");
        assert!(err.contains("apt-get install pkg-a pkg-b"), "{err}");
        assert!(header_exists("stdlib.h"), "libc6-dev is needed to build guest binaries anyway");
    }
}
