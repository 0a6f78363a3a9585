//! The guest↔host protocol of ksnap, written once: the guest's init (`guest-tests/src/bin/init.rs`)
//! writes it, the host (`ksnap_readers::channel`, `ksnap_vm::machine::initramfs`) reads and writes its side of it.
//!
//! - **The plan** ([`plan`]): which probes to run, each with its timeout and arguments; the host sends it on
//!   the result channel when init has said hello, and init reads it there.
//! - **The result channel** ([`ControlLine`], [`STDOUT_MARKER`], [`STDERR_MARKER`]): the guest's second
//!   serial port, written only by init, one whole line per write. A line is either a control line or a
//!   line a probe wrote, behind its stream's marker (`| ` stdout, `! ` stderr), so that nothing a probe
//!   writes can pass for a control line:
//!
//! ```text
//! ksnap-init 3
//!                                  (the host sends `plan BYTES` and the plan)
//! probe-begin env
//! | KTAP version 1
//! ! a line of stderr
//! probe-end env exit=0
//! probe-note env truncated=1234
//! summary probes=1 exited0=1 failed=0
//! ksnap-done
//! ```
//!
//! - **Paths and limits** ([`paths`], [`limits`]) both sides rely on, and the **errno and signal names**
//!   ([`errno_name`], [`signal_name`]) that make facts and outcomes read the same on every machine.

use std::fmt;
use std::time::Duration;

pub mod plan;

/// The protocol version init announces and the host requires. Version 2 added probe stderr
/// (`! LINE`, `stderr-truncated=`); version 3 moved the plan from the initramfs to the result channel.
pub const VERSION: &str = "3";

/// The word on the kernel command line (after `--`, so init gets it as its argument) that makes init give
/// a person a shell on the console (`ksnap shell`) instead of saying hello and running a plan: `/bin/sh`
/// (busybox) with the console as its controlling terminal; when it exits, the guest powers off.
pub const SHELL_ARG: &str = "shell";

/// Marks a relayed line of a probe's stdout: `| LINE` (a bare `|` is an empty line).
pub const STDOUT_MARKER: u8 = b'|';
/// Marks a relayed line of a probe's stderr: `! LINE`.
pub const STDERR_MARKER: u8 = b'!';

/// Where things are inside the guest.
pub mod paths {
    /// Where the probes are, and the directory each runs in (kselftest's runner runs a test in its
    /// directory; some exec `./NAME`).
    pub const PROBE_DIR: &str = "/ksnap/probes";
    /// The result channel: the guest's second serial port (the first is the console).
    pub const RESULT_CHANNEL: &str = "/dev/ttyS1";

    /// The path of probe `name` in the guest.
    pub fn probe(name: &str) -> String {
        format!("{PROBE_DIR}/{name}")
    }
}

/// What init relays of a probe, at most.
pub mod limits {
    /// Bytes of one probe's stdout relayed; the rest is discarded and counted (`probe-note … truncated=N`).
    pub const STDOUT_BYTES: u64 = 1 << 20;
    /// Bytes of one probe's stderr relayed (`probe-note … stderr-truncated=N`).
    pub const STDERR_BYTES: u64 = 256 << 10;
    /// Bytes of one relayed line; a longer line is relayed in pieces of this size.
    pub const LINE_BYTES: usize = 64 << 10;
    /// Bytes of a plan init accepts.
    pub const PLAN_BYTES: usize = 1 << 20;
}

/// How a probe ended, as init saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEnd {
    Exited(i32),
    Signaled(i32),
    /// init killed it at its timeout.
    TimedOut(Duration),
    /// It could not be started: the errno's name (or number, when it has none here).
    SpawnError(String),
}

impl ProbeEnd {
    /// A probe that could not be started with `errno`.
    pub fn spawn_error(errno: i32) -> ProbeEnd {
        ProbeEnd::SpawnError(errno_name(errno).map_or_else(|| errno.to_string(), str::to_string))
    }

    /// The tail of its `probe-end` line: `exit=0`, `signal=11`, `timeout=30000` (ms), `spawn-error=ENOENT`.
    pub fn wire(&self) -> String {
        match self {
            ProbeEnd::Exited(code) => format!("exit={code}"),
            ProbeEnd::Signaled(signal) => format!("signal={signal}"),
            ProbeEnd::TimedOut(after) => format!("timeout={}", after.as_millis()),
            ProbeEnd::SpawnError(errno) => format!("spawn-error={errno}"),
        }
    }

    /// The inverse of [`ProbeEnd::wire`].
    pub fn parse_wire(text: &str) -> Option<ProbeEnd> {
        let (key, value) = text.split_once('=')?;
        match key {
            "exit" => value.parse().ok().map(ProbeEnd::Exited),
            "signal" => value.parse().ok().map(ProbeEnd::Signaled),
            "timeout" => value.parse().ok().map(|ms| ProbeEnd::TimedOut(Duration::from_millis(ms))),
            "spawn-error" if is_word(value) => Some(ProbeEnd::SpawnError(value.to_string())),
            _ => None,
        }
    }
}

/// For a person: `exited 0`, `killed by signal 11 (SIGSEGV)`, `timed out after 30000 ms`,
/// `could not be started (ENOENT)`.
impl fmt::Display for ProbeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeEnd::Exited(code) => write!(f, "exited {code}"),
            ProbeEnd::Signaled(signal) => {
                write!(f, "killed by signal {signal} ({})", signal_name(*signal).unwrap_or("?"))
            }
            ProbeEnd::TimedOut(after) => write!(f, "timed out after {} ms", after.as_millis()),
            ProbeEnd::SpawnError(errno) => write!(f, "could not be started ({errno})"),
        }
    }
}

/// A note on a probe that init sends after its `probe-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeNote {
    /// Bytes of stdout discarded beyond [`limits::STDOUT_BYTES`].
    Truncated(u64),
    /// Bytes of stderr discarded beyond [`limits::STDERR_BYTES`].
    StderrTruncated(u64),
}

/// A control line of the result channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlLine {
    /// `ksnap-init VERSION`: init is up and waits for its plan; always the first line.
    Hello { version: String },
    /// `probe-begin NAME`: the probe's output follows, until its `probe-end`.
    ProbeBegin { name: String },
    /// `probe-end NAME HOW` (HOW: [`ProbeEnd::wire`]).
    ProbeEnd { name: String, end: ProbeEnd },
    /// `probe-note NAME truncated=N` or `… stderr-truncated=N`, right after that probe's `probe-end`.
    ProbeNote { name: String, note: ProbeNote },
    /// `summary probes=N exited0=N failed=N`, after the last probe.
    Summary { probes: usize, exited0: usize },
    /// `ksnap-done`: the last line; init powers the guest off.
    Done,
}

/// Why a line is not a control line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    UnknownProbeEnd,
    UnknownProbeNote,
    NotAControlLine,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::UnknownProbeEnd => "unknown probe-end status",
            ParseError::UnknownProbeNote => "unknown probe-note",
            ParseError::NotAControlLine => "not a line of the ksnap guest protocol",
        })
    }
}

impl std::error::Error for ParseError {}

/// A probe name, errno name or version as the protocol carries it: non-empty, no whitespace.
fn is_word(text: &str) -> bool {
    !text.is_empty() && !text.contains(char::is_whitespace)
}

impl ControlLine {
    /// Parse a line (without its `\n`) that is not a relayed probe line.
    pub fn parse(line: &str) -> Result<ControlLine, ParseError> {
        let words: Vec<&str> = line.split(' ').collect();
        let name = |word: &str| is_word(word).then(|| word.to_string()).ok_or(ParseError::NotAControlLine);
        match words.as_slice() {
            ["ksnap-init", version @ ..] => Ok(ControlLine::Hello { version: version.join(" ") }),
            ["probe-begin", probe] => Ok(ControlLine::ProbeBegin { name: name(probe)? }),
            ["probe-end", probe, how] => {
                let end = ProbeEnd::parse_wire(how).ok_or(ParseError::UnknownProbeEnd)?;
                Ok(ControlLine::ProbeEnd { name: name(probe)?, end })
            }
            ["probe-note", probe, note] => {
                let note = match note.split_once('=') {
                    Some(("truncated", bytes)) => bytes.parse().map(ProbeNote::Truncated),
                    Some(("stderr-truncated", bytes)) => bytes.parse().map(ProbeNote::StderrTruncated),
                    _ => return Err(ParseError::UnknownProbeNote),
                };
                Ok(ControlLine::ProbeNote { name: name(probe)?, note: note.map_err(|_| ParseError::UnknownProbeNote)? })
            }
            ["summary", probes, exited0, failed] => {
                let count = |word: &str, key: &str| {
                    word.strip_prefix(key).and_then(|n| n.parse::<usize>().ok()).ok_or(ParseError::NotAControlLine)
                };
                let (probes, exited0) = (count(probes, "probes=")?, count(exited0, "exited0=")?);
                if Some(count(failed, "failed=")?) != probes.checked_sub(exited0) {
                    return Err(ParseError::NotAControlLine);
                }
                Ok(ControlLine::Summary { probes, exited0 })
            }
            ["ksnap-done"] => Ok(ControlLine::Done),
            _ => Err(ParseError::NotAControlLine),
        }
    }
}

/// The line as init writes it (without the `\n`).
impl fmt::Display for ControlLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlLine::Hello { version } => write!(f, "ksnap-init {version}"),
            ControlLine::ProbeBegin { name } => write!(f, "probe-begin {name}"),
            ControlLine::ProbeEnd { name, end } => write!(f, "probe-end {name} {}", end.wire()),
            ControlLine::ProbeNote { name, note: ProbeNote::Truncated(bytes) } => {
                write!(f, "probe-note {name} truncated={bytes}")
            }
            ControlLine::ProbeNote { name, note: ProbeNote::StderrTruncated(bytes) } => {
                write!(f, "probe-note {name} stderr-truncated={bytes}")
            }
            ControlLine::Summary { probes, exited0 } => {
                write!(f, "summary probes={probes} exited0={exited0} failed={}", probes - exited0)
            }
            ControlLine::Done => f.write_str("ksnap-done"),
        }
    }
}

/// The relayed bytes of a probe line behind `marker` (`| LINE`, or a bare `|` for an empty line).
pub fn relayed(line: &[u8], marker: u8) -> Option<&[u8]> {
    match line {
        [first, b' ', rest @ ..] if *first == marker => Some(rest),
        [first] if *first == marker => Some(&[]),
        _ => None,
    }
}

/// `(number, "NAME")` for each name given, with the number it has on x86-64 Linux.
macro_rules! names {
    ($value:expr, $($number:literal $name:ident),* $(,)?) => {
        match $value {
            $($number => Some(stringify!($name)),)*
            _ => None,
        }
    };
}

/// The symbolic name of an errno value on x86-64 Linux (`5` → `EIO`), for facts that must read the same
/// on every machine.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    names!(errno,
        1 EPERM, 2 ENOENT, 3 ESRCH, 4 EINTR, 5 EIO, 6 ENXIO, 7 E2BIG, 8 ENOEXEC, 9 EBADF, 10 ECHILD,
        11 EAGAIN, 12 ENOMEM, 13 EACCES, 14 EFAULT, 16 EBUSY, 17 EEXIST, 18 EXDEV, 19 ENODEV, 20 ENOTDIR,
        21 EISDIR, 22 EINVAL, 23 ENFILE, 24 EMFILE, 25 ENOTTY, 26 ETXTBSY, 27 EFBIG, 28 ENOSPC, 29 ESPIPE,
        30 EROFS, 32 EPIPE, 34 ERANGE, 36 ENAMETOOLONG, 38 ENOSYS, 40 ELOOP, 75 EOVERFLOW, 80 ELIBBAD,
        95 EOPNOTSUPP, 110 ETIMEDOUT, 133 EHWPOISON,
    )
}

/// The symbolic name of a signal on x86-64 Linux (`11` → `SIGSEGV`), if it has one.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    names!(signal,
        1 SIGHUP, 2 SIGINT, 3 SIGQUIT, 4 SIGILL, 5 SIGTRAP, 6 SIGABRT, 7 SIGBUS, 8 SIGFPE, 9 SIGKILL,
        10 SIGUSR1, 11 SIGSEGV, 12 SIGUSR2, 13 SIGPIPE, 14 SIGALRM, 15 SIGTERM, 16 SIGSTKFLT, 17 SIGCHLD,
        18 SIGCONT, 19 SIGSTOP, 20 SIGTSTP, 21 SIGTTIN, 22 SIGTTOU, 23 SIGURG, 24 SIGXCPU, 25 SIGXFSZ,
        26 SIGVTALRM, 27 SIGPROF, 28 SIGWINCH, 29 SIGIO, 30 SIGPWR, 31 SIGSYS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind_of_line() -> Vec<ControlLine> {
        vec![
            ControlLine::Hello { version: VERSION.into() },
            ControlLine::ProbeBegin { name: "mm.cow-1".into() },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::Exited(0) },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::Exited(-1) },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::Signaled(11) },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::TimedOut(Duration::from_millis(30_000)) },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::spawn_error(2) },
            ControlLine::ProbeEnd { name: "p".into(), end: ProbeEnd::spawn_error(4095) },
            ControlLine::ProbeNote { name: "p".into(), note: ProbeNote::Truncated(1234) },
            ControlLine::ProbeNote { name: "p".into(), note: ProbeNote::StderrTruncated(99) },
            ControlLine::Summary { probes: 3, exited0: 2 },
            ControlLine::Done,
        ]
    }

    #[test]
    fn every_control_line_round_trips() {
        for line in every_kind_of_line() {
            let text = line.to_string();
            assert_eq!(ControlLine::parse(&text), Ok(line.clone()), "{text}");
            assert!(!text.contains('\n') && relayed(text.as_bytes(), STDOUT_MARKER).is_none(), "{text}");
        }
    }

    #[test]
    fn lines_as_written() {
        let written: Vec<String> = every_kind_of_line().iter().map(ToString::to_string).collect();
        assert_eq!(
            written,
            [
                "ksnap-init 3",
                "probe-begin mm.cow-1",
                "probe-end p exit=0",
                "probe-end p exit=-1",
                "probe-end p signal=11",
                "probe-end p timeout=30000",
                "probe-end p spawn-error=ENOENT",
                "probe-end p spawn-error=4095",
                "probe-note p truncated=1234",
                "probe-note p stderr-truncated=99",
                "summary probes=3 exited0=2 failed=1",
                "ksnap-done",
            ]
        );
    }

    #[test]
    fn what_is_not_a_control_line() {
        use ParseError::*;
        for (line, error) in [
            ("probe-end p exit=x", UnknownProbeEnd),
            ("probe-end p crashed", UnknownProbeEnd),
            ("probe-end p spawn-error=", UnknownProbeEnd),
            ("probe-note p truncated=-1", UnknownProbeNote),
            ("probe-note p dropped=1", UnknownProbeNote),
            ("probe-begin", NotAControlLine),
            ("probe-begin a b", NotAControlLine),
            ("probe-begin ", NotAControlLine),
            ("summary probes=3 exited0=2 failed=0", NotAControlLine),
            ("summary probes=1 exited0=2 failed=0", NotAControlLine),
            ("ksnap-done now", NotAControlLine),
            ("KTAP version 1", NotAControlLine),
            ("", NotAControlLine),
        ] {
            assert_eq!(ControlLine::parse(line), Err(error), "{line:?}");
        }
    }

    #[test]
    fn relayed_lines_carry_their_bytes() {
        assert_eq!(relayed(b"| ok 1 x", STDOUT_MARKER), Some(&b"ok 1 x"[..]));
        assert_eq!(relayed(b"|", STDOUT_MARKER), Some(&b""[..]));
        assert_eq!(relayed(b"! warn", STDERR_MARKER), Some(&b"warn"[..]));
        assert_eq!(relayed(b"|x", STDOUT_MARKER), None);
        assert_eq!(relayed(b"! warn", STDOUT_MARKER), None);
    }

    #[test]
    fn probe_ends_read_for_a_person() {
        assert_eq!(ProbeEnd::Signaled(5).to_string(), "killed by signal 5 (SIGTRAP)");
        assert_eq!(ProbeEnd::Signaled(64).to_string(), "killed by signal 64 (?)");
        assert_eq!(ProbeEnd::spawn_error(8).to_string(), "could not be started (ENOEXEC)");
        assert_eq!(ProbeEnd::TimedOut(Duration::from_secs(2)).to_string(), "timed out after 2000 ms");
    }

    #[test]
    fn names_match_the_c_library() {
        let errnos = [
            (libc::E2BIG, "E2BIG"),
            (libc::EACCES, "EACCES"),
            (libc::EAGAIN, "EAGAIN"),
            (libc::EBADF, "EBADF"),
            (libc::EBUSY, "EBUSY"),
            (libc::ECHILD, "ECHILD"),
            (libc::EEXIST, "EEXIST"),
            (libc::EFAULT, "EFAULT"),
            (libc::EFBIG, "EFBIG"),
            (libc::EHWPOISON, "EHWPOISON"),
            (libc::EINTR, "EINTR"),
            (libc::EINVAL, "EINVAL"),
            (libc::EIO, "EIO"),
            (libc::EISDIR, "EISDIR"),
            (libc::ELIBBAD, "ELIBBAD"),
            (libc::ELOOP, "ELOOP"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENAMETOOLONG, "ENAMETOOLONG"),
            (libc::ENFILE, "ENFILE"),
            (libc::ENODEV, "ENODEV"),
            (libc::ENOENT, "ENOENT"),
            (libc::ENOEXEC, "ENOEXEC"),
            (libc::ENOMEM, "ENOMEM"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::ENOTDIR, "ENOTDIR"),
            (libc::ENOTTY, "ENOTTY"),
            (libc::ENXIO, "ENXIO"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::EOVERFLOW, "EOVERFLOW"),
            (libc::EPERM, "EPERM"),
            (libc::EPIPE, "EPIPE"),
            (libc::ERANGE, "ERANGE"),
            (libc::EROFS, "EROFS"),
            (libc::ESPIPE, "ESPIPE"),
            (libc::ESRCH, "ESRCH"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
            (libc::ETXTBSY, "ETXTBSY"),
            (libc::EXDEV, "EXDEV"),
        ];
        for (errno, name) in errnos {
            assert_eq!(errno_name(errno), Some(name), "{errno}");
        }
        assert_eq!((0..4096).filter(|&e| errno_name(e).is_some()).count(), errnos.len());
        let signals = [
            (libc::SIGABRT, "SIGABRT"),
            (libc::SIGALRM, "SIGALRM"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGCHLD, "SIGCHLD"),
            (libc::SIGCONT, "SIGCONT"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGHUP, "SIGHUP"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGINT, "SIGINT"),
            (libc::SIGIO, "SIGIO"),
            (libc::SIGKILL, "SIGKILL"),
            (libc::SIGPIPE, "SIGPIPE"),
            (libc::SIGPROF, "SIGPROF"),
            (libc::SIGPWR, "SIGPWR"),
            (libc::SIGQUIT, "SIGQUIT"),
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGSTKFLT, "SIGSTKFLT"),
            (libc::SIGSTOP, "SIGSTOP"),
            (libc::SIGSYS, "SIGSYS"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGTRAP, "SIGTRAP"),
            (libc::SIGTSTP, "SIGTSTP"),
            (libc::SIGTTIN, "SIGTTIN"),
            (libc::SIGTTOU, "SIGTTOU"),
            (libc::SIGURG, "SIGURG"),
            (libc::SIGUSR1, "SIGUSR1"),
            (libc::SIGUSR2, "SIGUSR2"),
            (libc::SIGVTALRM, "SIGVTALRM"),
            (libc::SIGWINCH, "SIGWINCH"),
            (libc::SIGXCPU, "SIGXCPU"),
            (libc::SIGXFSZ, "SIGXFSZ"),
        ];
        for (signal, name) in signals {
            assert_eq!(signal_name(signal), Some(name), "{signal}");
        }
        assert_eq!((0..65).filter(|&s| signal_name(s).is_some()).count(), signals.len());
    }
}
