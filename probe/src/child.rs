//! Child processes: forking one with a pipe back to the parent, waiting for it, saying how it ended
//! ([`ChildEnd`]: the one spelling every probe and the host use), running a test in a process of its
//! own and collecting the facts it reports ([`isolated`]), and sending plain data through a pipe
//! ([`Plain`]).

use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Write};

use crate::signal_name;
use crate::sys::{pipe, Errno};

/// How a child process ended, from its wait status.
///
/// Displayed as the host shows how a probe ended (readers/src/channel.rs, `ProbeEnd`), and as C probes
/// write it (`ktap_child_end` in guest-tests/c/ktap.h): `exited N`, `killed by signal N (SIGNAME)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}

impl ChildEnd {
    /// From a wait status of a child that ended (not one that stopped).
    pub fn of_status(status: libc::c_int) -> ChildEnd {
        if libc::WIFSIGNALED(status) {
            ChildEnd::Signaled(libc::WTERMSIG(status))
        } else {
            ChildEnd::Exited(libc::WEXITSTATUS(status))
        }
    }

    pub fn exit_code(self) -> Option<i32> {
        match self {
            ChildEnd::Exited(code) => Some(code),
            ChildEnd::Signaled(_) => None,
        }
    }
}

impl Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ChildEnd::Exited(code) => write!(f, "exited {code}"),
            ChildEnd::Signaled(signal) => {
                write!(f, "killed by signal {signal} ({})", signal_name(signal).unwrap_or("?"))
            }
        }
    }
}

/// Waits for child `pid` (traced or not: `__WALL`) to end.
pub fn wait(pid: libc::pid_t) -> Result<ChildEnd, String> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer it is given.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } == pid {
            return Ok(ChildEnd::of_status(status));
        }
        let errno = Errno::last();
        if errno.0 != libc::EINTR {
            return Err(format!("waitpid: {errno}"));
        }
    }
}

/// Waits for a traced child to stop (after PTRACE_INTERRUPT).
pub fn wait_stopped(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into the integer it is given.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    if rc != pid || !libc::WIFSTOPPED(status) {
        return Err(format!("the traced child did not stop (waitpid {rc}, status {status:#x})"));
    }
    Ok(())
}

/// Forks; the child runs `body` with the write end of a pipe and exits with the code it returns.
/// Returns the child's PID and the read end.
///
/// The child dies with its parent (`PR_SET_PDEATHSIG`: a child that outlived its parent would hold
/// open the pipe of the parent's own report) and leaves no core file in the guest's root.
pub fn fork_with_pipe(body: impl FnOnce(File) -> i32) -> Result<(libc::pid_t, File), String> {
    let (read_end, write_end) = pipe()?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: probes are single-threaded, so the child can go on using the allocator and std.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", Errno::last())),
        0 => {
            drop(read_end);
            // The getppid check closes the race of a parent that died before prctl.
            // SAFETY: prctl(PR_SET_PDEATHSIG), getppid and _exit have no memory-safety preconditions.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: setrlimit reads the struct it is given.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
            let code = body(write_end);
            // SAFETY: _exit skips the parent's atexit handlers and buffers, as a forked child must.
            unsafe { libc::_exit(code) }
        }
        pid => Ok((pid, read_end)),
    }
}

/// Runs `body` in a forked child (see [`fork_with_pipe`]), which exits with the code it returns.
/// Returns everything the child wrote to the pipe it is given, and how it ended.
pub fn in_child(body: impl FnOnce(&File) -> i32) -> Result<(Vec<u8>, ChildEnd), String> {
    let (pid, mut pipe) = fork_with_pipe(|pipe| body(&pipe))?;
    let mut bytes = Vec::new();
    let read = pipe.read_to_end(&mut bytes).map_err(|e| format!("pipe: {e}"));
    let end = wait(pid)?;
    read?;
    Ok((bytes, end))
}

/// A helper child process that replies with one line of text. Killed and reaped on drop.
pub struct Child {
    pub pid: libc::pid_t,
    reply: Option<File>,
}

impl Child {
    pub fn spawn(body: impl FnOnce() -> String) -> Result<Child, String> {
        let (pid, reply) = fork_with_pipe(|mut pipe| {
            let text = body();
            let _ = pipe.write_all(text.as_bytes());
            0
        })?;
        Ok(Child { pid, reply: Some(reply) })
    }

    /// Waits for the child to end: its reply, or how it ended if it did not get to reply.
    pub fn finish(mut self) -> String {
        let mut text = String::new();
        if let Some(mut reply) = self.reply.take() {
            let _ = reply.read_to_string(&mut text);
        }
        let end = wait(self.pid);
        self.pid = 0;
        match end {
            Ok(ChildEnd::Exited(0)) if !text.is_empty() => text,
            Ok(end) => end.to_string(),
            Err(e) => e,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: kill and waitpid on this process's own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = wait(self.pid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A test in a process of its own
// ---------------------------------------------------------------------------------------------

/// What a test process reported.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub facts: Vec<(String, String)>,
    pub result: Result<(), String>,
}

/// The facts of a test, sent to the probe's main process as they are found, so that those found
/// before a crash are kept. One line each: `fact\tKEY\tVALUE`, then `ok` or `not ok\tREASON`.
pub struct Facts {
    pipe: File,
}

impl Facts {
    pub fn fact(&mut self, key: &str, value: impl Display) {
        self.line(&format!("fact\t{key}\t{}", one_field(&value.to_string())));
    }

    fn line(&mut self, line: &str) {
        // A failed write means the main process is gone: nobody is left to tell.
        let _ = self.pipe.write_all(format!("{line}\n").as_bytes());
    }
}

/// A value made one field of one line of the report.
fn one_field(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ")
}

/// Runs `test` in a child process that SIGALRM ends after `timeout_s`, and collects what it reported.
pub fn isolated(test: impl FnOnce(&mut Facts) -> Result<(), String>, timeout_s: u32) -> Report {
    let child = fork_with_pipe(|pipe| {
        // SAFETY: alarm has no preconditions; its default action ends this process.
        unsafe { libc::alarm(timeout_s) };
        let mut facts = Facts { pipe };
        match test(&mut facts) {
            Ok(()) => facts.line("ok"),
            Err(reason) => facts.line(&format!("not ok\t{}", one_field(&reason))),
        }
        0
    });
    let (pid, mut pipe) = match child {
        Ok(child) => child,
        Err(e) => return Report { facts: vec![], result: Err(e) },
    };
    let mut text = String::new();
    let read = pipe.read_to_string(&mut text);
    let end = wait(pid);
    let (facts, ended) = parse_report(&text);
    let result = match (ended, read, end) {
        (_, Err(e), _) => Err(format!("reading the test's report: {e}")),
        (Some(result), _, _) => result,
        (None, _, Ok(ChildEnd::Signaled(libc::SIGALRM))) => Err(format!("no result after {timeout_s} s")),
        (None, _, Ok(end)) => Err(format!("the test process ended early: {end}")),
        (None, _, Err(e)) => Err(format!("the test process ended early: {e}")),
    };
    Report { facts, result }
}

/// A test's result line, if its report got that far.
type Ended = Option<Result<(), String>>;

/// The facts of a report and its result line (the last one counts).
fn parse_report(text: &str) -> (Vec<(String, String)>, Ended) {
    let mut facts = vec![];
    let mut ended = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, '\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("fact"), Some(key), Some(value)) => facts.push((key.into(), value.into())),
            (Some("ok"), None, None) => ended = Some(Ok(())),
            (Some("not ok"), Some(reason), None) => ended = Some(Err(reason.to_string())),
            _ => ended = Some(Err(format!("garbled report line {line:?}"))),
        }
    }
    (facts, ended)
}

// ---------------------------------------------------------------------------------------------
// Plain data through a pipe
// ---------------------------------------------------------------------------------------------

/// Plain data that can be sent through a pipe as its bytes.
///
/// # Safety
///
/// Implementors have no padding and are valid for every bit pattern: integers, arrays of them and
/// `#[repr(C)]` structs of equal-sized integers.
pub unsafe trait Plain: Copy + Default {}

// SAFETY: arrays of integers.
unsafe impl<const N: usize> Plain for [i32; N] where [i32; N]: Default {}

pub fn as_bytes<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so every byte is initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast(), size_of::<T>()) }
}

pub fn as_bytes_mut<T: Plain>(value: &mut T) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; and any bytes written make a valid `T`.
    unsafe { std::slice::from_raw_parts_mut((value as *mut T).cast(), size_of::<T>()) }
}

/// The value whose bytes are `bytes`, if they are exactly as many as a `T` has.
pub fn from_bytes<T: Plain>(bytes: &[u8]) -> Option<T> {
    let mut value = T::default();
    let target = as_bytes_mut(&mut value);
    if bytes.len() != target.len() {
        return None;
    }
    target.copy_from_slice(bytes);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_child_ended_reads_as_the_host_writes_it() {
        assert_eq!(ChildEnd::Exited(0).to_string(), "exited 0");
        assert_eq!(ChildEnd::Exited(2).to_string(), "exited 2");
        assert_eq!(ChildEnd::Signaled(libc::SIGSEGV).to_string(), "killed by signal 11 (SIGSEGV)");
        assert_eq!(ChildEnd::Signaled(libc::SIGKILL).to_string(), "killed by signal 9 (SIGKILL)");
        assert_eq!(ChildEnd::Signaled(64).to_string(), "killed by signal 64 (?)");
    }

    #[test]
    fn wait_statuses() {
        // Linux's encoding: exit code in bits 8-15; a signal in bits 0-6 (bit 7: core dumped).
        assert_eq!(ChildEnd::of_status(3 << 8), ChildEnd::Exited(3));
        assert_eq!(ChildEnd::of_status(libc::SIGTRAP), ChildEnd::Signaled(libc::SIGTRAP));
        assert_eq!(ChildEnd::of_status(0x80 | libc::SIGSEGV), ChildEnd::Signaled(libc::SIGSEGV));
        assert_eq!(ChildEnd::Exited(3).exit_code(), Some(3));
        assert_eq!(ChildEnd::Signaled(9).exit_code(), None);
    }

    #[test]
    fn reports() {
        let (facts, ended) = parse_report("fact\ta\t1\nfact\tb.c\tx y\tz\nok\n");
        assert_eq!(facts, [("a".into(), "1".into()), ("b.c".into(), "x y\tz".into())]);
        assert_eq!(ended, Some(Ok(())));
        assert_eq!(parse_report("not ok\tmmap: ENOMEM\n").1, Some(Err("mmap: ENOMEM".into())));
        assert_eq!(parse_report("fact\ta\t1\n").1, None, "crashed before its result");
        assert_eq!(parse_report("ok\nwhat\n").1, Some(Err("garbled report line \"what\"".into())));
        assert_eq!(one_field("a\tb\nc"), "a b c");
    }

    #[test]
    fn plain_round_trip() {
        let value: [i32; 3] = [1, -2, 3];
        assert_eq!(as_bytes(&value).len(), 12);
        assert_eq!(from_bytes::<[i32; 3]>(as_bytes(&value)), Some(value));
        assert_eq!(from_bytes::<[i32; 3]>(&[0; 11]), None);
    }

    #[test]
    fn a_child_reports_through_its_pipe() {
        let (bytes, end) = in_child(|pipe| {
            crate::sys::write_all(pipe, b"hello");
            7
        })
        .unwrap();
        assert_eq!((bytes.as_slice(), end), (&b"hello"[..], ChildEnd::Exited(7)));
    }
}
