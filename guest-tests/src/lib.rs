//! Code shared by the guest binaries: the KTAP writer every probe uses ([`Ktap`]), and the few
//! system calls a stand-in PID 1 needs ([`pid1`]), used by `init` and by `fault`'s init modes.

pub mod pid1;

use std::fmt::{Arguments, Display};
use std::io::Write;

/// Writes a KTAP document to stdout, numbering the results itself.
///
/// Every line is flushed as soon as it is written: a probe may crash or be killed at any point, and
/// what it printed up to then must already be in the pipe to `init`.
///
/// Test names and fact keys are chosen by the probe's author, so they are only checked in debug
/// builds; reasons and fact values may come from the system and are made single-line here.
pub struct Ktap {
    next: usize,
}

impl Ktap {
    /// Prints the header and the plan: `plan` result lines will follow.
    pub fn begin(plan: usize) -> Self {
        emit(format_args!("KTAP version 1"));
        emit(format_args!("1..{plan}"));
        Ktap { next: 1 }
    }

    /// Prints `# fact: KEY = VALUE`, which belongs to the test whose result line comes next.
    pub fn fact(&mut self, key: &str, value: impl Display) {
        debug_assert!(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-')),
            "invalid fact key {key:?}"
        );
        emit(format_args!(
            "# fact: {key} = {}",
            one_line(&value.to_string())
        ));
    }

    pub fn ok(&mut self, name: &str) {
        self.result("ok", name, format_args!(""));
    }

    /// `ok` or `not ok` from a test's outcome; whether it passed.
    pub fn report(&mut self, name: &str, outcome: &Result<(), String>) -> bool {
        match outcome {
            Ok(()) => self.ok(name),
            Err(reason) => self.not_ok(name, reason),
        }
        outcome.is_ok()
    }

    /// `not ok N NAME # REASON`: KTAP allows diagnostic text after the `#` of a result line.
    pub fn not_ok(&mut self, name: &str, reason: &str) {
        self.result("not ok", name, format_args!(" # {}", one_line(reason)));
    }

    pub fn skip(&mut self, name: &str, reason: &str) {
        self.result("ok", name, format_args!(" # SKIP {}", one_line(reason)));
    }

    fn result(&mut self, status: &str, name: &str, directive: Arguments) {
        debug_assert!(
            !name.is_empty() && !name.contains(['#', '\n', '\r']),
            "invalid test name {name:?}"
        );
        emit(format_args!("{status} {} {name}{directive}", self.next));
        self.next += 1;
    }
}

/// KTAP is line-based: a value or reason spanning lines would corrupt the document.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn emit(line: Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        // With stdout gone the probe can report nothing; the panic message at least reaches
        // the console through stderr.
        panic!("ktap: cannot write to stdout: {e}");
    }
}

/// `libc::NAME => "NAME"` for each name given.
macro_rules! name_of {
    ($value:expr, $($name:ident),* $(,)?) => {
        match $value {
            $(libc::$name => Some(stringify!($name)),)*
            _ => None,
        }
    };
}

/// The symbolic name of an errno value (`EIO`), for facts that must read the same on every machine.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    name_of!(
        errno, EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, ENOEXEC, EBADF, ECHILD, EAGAIN, ENOMEM,
        EACCES, EFAULT, EBUSY, EEXIST, EXDEV, ENODEV, ENOTDIR, EISDIR, EINVAL, ENFILE, EMFILE, ENOTTY,
        ETXTBSY, EFBIG, ENOSPC, ESPIPE, EROFS, EPIPE, ERANGE, ENAMETOOLONG, ELOOP, ELIBBAD, ENOSYS,
        EOVERFLOW, EOPNOTSUPP, ETIMEDOUT, EHWPOISON,
    )
}

/// The symbolic name of a signal (`SIGSEGV`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    let name = name_of!(
        signal, SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1,
        SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP,
        SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS,
    );
    name.map_or_else(|| format!("signal {signal}"), str::to_string)
}

/// The value of kernel parameter `name` (`proc_mem.force_override`) on the running kernel's command line:
/// the last occurrence before `--` (the kernel acts on each in turn, so the last wins; words after `--` are
/// init's arguments). `None` when it is not given.
pub fn cmdline_param(name: &str) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string("/proc/cmdline")?;
    let value = text
        .split_ascii_whitespace()
        .take_while(|&word| word != "--")
        .filter_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .last();
    Ok(value.map(str::to_string))
}
