//! `init`: PID 1 of the ksnap guest.
//!
//! Says hello on the result channel (`/dev/ttyS1`), reads the plan the host sends back on it, runs the
//! plan's probes one after the other, each in its own process group and with its own deadline, relays
//! their stdout and stderr on the result channel, then powers off. The host may save the machine while
//! init waits for its plan and start later runs from there, each with a plan of its own. The plan's format, the result channel's lines, the paths and the limits are those of
//! the `ksnap_protocol` crate, which the host reads them with.
//!
//! Human-readable progress goes to the console (init's own stderr, ttyS0): when a run hangs, the host
//! shows the last `ksnap-init:` line as what last happened. A probe's stderr never reaches the console,
//! which the host scans for kernel panics and warnings: a probe must not be able to fake one. If the
//! guest cannot even be set up (filesystems, result channel, plan), init exits with status 1: the
//! kernel then panics with "Attempted to kill init", which the host reports together with the console.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ksnap_init::pid1;
use ksnap_init::relay::Lines;
use ksnap_protocol::paths::{PROBE_DIR, RESULT_CHANNEL};
use ksnap_protocol::{
    limits, plan, ControlLine, ProbeEnd, ProbeNote, SHELL_ARG, STDERR_MARKER, STDOUT_MARKER, VERSION,
};

/// How long to keep reading a probe's stdout once it is gone, for output still in the pipe.
const DRAIN_TIME: Duration = Duration::from_millis(200);

macro_rules! log {
    ($($arg:tt)*) => { eprintln!("ksnap-init: {}", format_args!($($arg)*)) };
}

fn main() {
    if let Err(e) = run() {
        log!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    mount_filesystems()?;
    if std::env::args().skip(1).any(|arg| arg == SHELL_ARG) {
        return shell();
    }
    let mut channel = Channel { port: pid1::open_serial(RESULT_CHANNEL)?, buf: Vec::new() };
    channel.control(ControlLine::Hello { version: VERSION.into() })?;
    log!("waiting for the plan");
    let plan = read_plan(&channel.port)?;
    let child_events = ChildEvents::new()?;

    let mut exited0 = 0;
    for probe in &plan {
        log!("running probe {}", probe.name);
        channel.control(ControlLine::ProbeBegin { name: probe.name.clone() })?;
        let end = run_probe(probe, &mut channel, &child_events)?;
        log!("probe {}: {end}", probe.name);
        if end == ProbeEnd::Exited(0) {
            exited0 += 1;
        }
        reap_orphans();
    }
    channel.control(ControlLine::Summary { probes: plan.len(), exited0 })?;
    channel.control(ControlLine::Done)?;
    log!("all probes done, powering off");
    Err(pid1::power_off(&channel.port))
}

/// `ksnap shell`: busybox's shell on the console (`/dev/ttyS0`, its controlling terminal, in its own
/// session) for a person, in `/` with the probes on PATH; the guest powers off when it exits.
fn shell() -> io::Result<()> {
    const CONSOLE: &str = "/dev/ttyS0";
    log!("a shell on the console; `exit` or Ctrl-D powers the guest off");
    let console = std::fs::OpenOptions::new().read(true).write(true).open(CONSOLE)?;
    // SAFETY: fork in a single-threaded init; the child only makes system calls before exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: system calls on an open fd and NUL-terminated strings; argv and envp end in null.
        unsafe {
            let fd = console.as_raw_fd();
            let ready = libc::setsid() >= 0
                && libc::ioctl(fd, libc::TIOCSCTTY, 0) == 0
                && libc::dup2(fd, 0) == 0
                && libc::dup2(fd, 1) == 1
                && libc::dup2(fd, 2) == 2
                && libc::chdir(c"/".as_ptr()) == 0;
            if ready {
                let argv = [c"sh".as_ptr(), std::ptr::null()];
                let envp = [
                    c"PATH=/bin:/ksnap/probes".as_ptr(),
                    c"HOME=/".as_ptr(),
                    c"TERM=vt100".as_ptr(),
                    c"PS1=guest:\\w# ".as_ptr(),
                    std::ptr::null(),
                ];
                libc::execve(c"/bin/sh".as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            libc::_exit(127)
        }
    }
    // Reap whatever the shell leaves behind until the shell itself is gone.
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status through a valid pointer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == pid || (reaped < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
            break;
        }
    }
    log!("the shell exited, powering off");
    Err(pid1::power_off(&console))
}

fn mount_filesystems() -> io::Result<()> {
    use libc::{MS_NODEV, MS_NOEXEC, MS_NOSUID};
    pid1::mount("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)?;
    pid1::mount("sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC)?;
    pid1::mount("devtmpfs", "/dev", MS_NOSUID)?;
    ensure_std_fds();
    pid1::mount("tmpfs", "/tmp", MS_NOSUID | MS_NODEV)?;
    // POSIX shared memory (shm_open) and the kernel selftests that use it expect a tmpfs here.
    pid1::mount("tmpfs", "/dev/shm", MS_NOSUID | MS_NODEV)
}

/// Makes sure fds 0-2 are open.
///
/// The kernel opens the console as init's fds 0-2, but only if the initramfs has `/dev/console`.
/// If they were free, the pipes made for a probe could get those numbers, and `dup2` onto its own
/// number in the child would leave the close-on-exec flag set: the probe would start without stdout.
fn ensure_std_fds() {
    loop {
        // SAFETY: opening a path given as a NUL-terminated literal.
        let fd = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        if fd > 2 {
            // SAFETY: `fd` was just opened and is not used anywhere else.
            unsafe { libc::close(fd) };
        }
        if !(0..=2).contains(&fd) {
            return;
        }
    }
}

/// The result channel: every write is one whole protocol line.
struct Channel {
    port: File,
    buf: Vec<u8>,
}

impl Channel {
    fn control(&mut self, line: ControlLine) -> io::Result<()> {
        self.buf.clear();
        write!(self.buf, "{line}")?;
        self.send()
    }

    /// Relays one line (or piece of a line) of probe output behind its stream's marker (`| ` for
    /// stdout, `! ` for stderr), so that it can never be mistaken for a control line.
    fn relay(&mut self, marker: u8, bytes: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[marker, b' ']);
        self.buf.extend_from_slice(bytes);
        self.send()
    }

    fn send(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        // write_all retries after EINTR and partial writes.
        self.port.write_all(&self.buf).map_err(|e| io::Error::new(e.kind(), format!("{RESULT_CHANNEL}: {e}")))
    }
}

/// One probe of the plan, its argv ready for execve.
struct Probe {
    name: String,
    timeout_ms: u64,
    argv: Vec<CString>,
}

/// Reads the plan the host sends on the result channel: `plan BYTES`, a newline, BYTES of plan text
/// (format: [`ksnap_protocol::plan`]).
fn read_plan(mut port: &File) -> io::Result<Vec<Probe>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, format!("the plan from the host: {what}"));
    // The header is short; byte by byte, so as not to read into the plan.
    let mut header = Vec::new();
    let mut byte = [0u8];
    while header.len() <= 64 {
        port.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
        header.push(byte[0]);
    }
    let len = plan::parse_header(&String::from_utf8_lossy(&header)).map_err(bad)?;
    let mut text = vec![0; len];
    port.read_exact(&mut text)?;
    let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    let entries = plan::parse(&text).map_err(bad)?;
    Ok(entries
        .into_iter()
        .map(|entry| Probe {
            name: entry.name,
            timeout_ms: entry.timeout_ms,
            // The plan's parser refuses NUL bytes.
            argv: entry.argv.into_iter().map(|word| CString::new(word).expect("no NUL in a plan word")).collect(),
        })
        .collect())
}

/// Runs one probe to its end and reports it on the result channel. A failure to start the probe
/// is part of the report; errors returned are fatal to init (result channel, waitpid).
fn run_probe(probe: &Probe, channel: &mut Channel, child_events: &ChildEvents) -> io::Result<ProbeEnd> {
    let (pid, stdout, stderr) = match spawn(probe) {
        Ok(running) => running,
        Err(errno) => {
            let end = ProbeEnd::spawn_error(errno);
            channel.control(ControlLine::ProbeEnd { name: probe.name.clone(), end: end.clone() })?;
            return Ok(end);
        }
    };

    let deadline = Instant::now() + Duration::from_millis(probe.timeout_ms);
    let mut relays = [
        Relay::new(stdout, STDOUT_MARKER, limits::STDOUT_BYTES),
        Relay::new(stderr, STDERR_MARKER, limits::STDERR_BYTES),
    ];
    let status = loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break None;
        };
        let mut fds = [poll_fd(child_events.fd.as_raw_fd()), relays[0].poll_fd(), relays[1].poll_fd()];
        poll(&mut fds, left)?;
        for (relay, fd) in relays.iter_mut().zip(&fds[1..]) {
            if fd.revents != 0 {
                relay.read(channel)?;
            }
        }
        if fds[0].revents != 0 {
            child_events.clear();
            if let Some(status) = wait(pid, libc::WNOHANG)? {
                break Some(status);
            }
        }
    };

    if status.is_none() {
        log!("probe {} timed out after {} ms, killing it", probe.name, probe.timeout_ms);
    }
    // The probe is gone or overdue. Kill its whole process group: anything it forked could hold
    // its stdout open and keep running into the next probe. (Once the probe has exited, the group
    // may well be empty already; ESRCH is fine.)
    // SAFETY: plain system call.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let end = match status {
        Some(status) => end_of(status),
        None => {
            wait(pid, 0)?;
            ProbeEnd::TimedOut(Duration::from_millis(probe.timeout_ms))
        }
    };
    drain(&mut relays, channel)?;
    for relay in &mut relays {
        relay.finish(channel)?;
    }
    channel.control(ControlLine::ProbeEnd { name: probe.name.clone(), end: end.clone() })?;
    let notes: [fn(u64) -> ProbeNote; 2] = [ProbeNote::Truncated, ProbeNote::StderrTruncated];
    for (relay, note) in relays.iter().zip(notes) {
        if relay.lines.discarded > 0 {
            channel.control(ControlLine::ProbeNote { name: probe.name.clone(), note: note(relay.lines.discarded) })?;
        }
    }
    Ok(end)
}

fn end_of(status: libc::c_int) -> ProbeEnd {
    if libc::WIFSIGNALED(status) {
        ProbeEnd::Signaled(libc::WTERMSIG(status))
    } else {
        ProbeEnd::Exited(libc::WEXITSTATUS(status))
    }
}

/// Starts a probe with stdin on /dev/null and stdout and stderr on pipes, in a process group of its
/// own. Returns its pid and the read ends of the pipes, or the errno of what kept it from starting.
fn spawn(probe: &Probe) -> Result<(libc::pid_t, File, File), i32> {
    let errno = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    // Everything the child needs is prepared here: between fork and exec it only makes system calls.
    let mut argv: Vec<*const libc::c_char> = probe.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let probe_dir = CString::new(PROBE_DIR).expect("a path without NUL");
    let devnull = File::open("/dev/null").map_err(errno)?;
    // All pipes are close-on-exec. The child's dup2 onto fds 1 and 2 makes copies without that
    // flag; the exec-error pipe closes on a successful exec, which is how the parent learns of it.
    let (stdout_r, stdout_w) = pipe().map_err(errno)?;
    let (stderr_r, stderr_w) = pipe().map_err(errno)?;
    let (error_r, error_w) = pipe().map_err(errno)?;

    // SAFETY: init is single-threaded, so the child may do anything; it only makes system calls.
    match unsafe { libc::fork() } {
        -1 => Err(errno(io::Error::last_os_error())),
        0 => exec_child(&argv, &probe_dir, &devnull, [&stdout_w, &stderr_w, &error_w]),
        pid => {
            drop(error_w);
            // Only the child may hold the write ends, or the pipes would never reach EOF.
            drop((stdout_w, stderr_w));
            let mut report = Vec::new();
            // EOF (nothing read) means the exec succeeded. Waiting for it also guarantees the child
            // has called setpgid before the parent may kill its group.
            (&error_r).read_to_end(&mut report).map_err(errno)?;
            match <[u8; 4]>::try_from(report.as_slice()) {
                Err(_) => Ok((pid, stdout_r, stderr_r)),
                Ok(bytes) => {
                    wait(pid, 0).map_err(errno)?;
                    Err(i32::from_ne_bytes(bytes))
                }
            }
        }
    }
}

/// The child's side of `spawn`: set up, exec, or report errno on `errors` and exit 127.
fn exec_child(argv: &[*const libc::c_char], dir: &CString, stdin: &File, [stdout, stderr, errors]: [&File; 3]) -> ! {
    // SAFETY: system calls on open fds and valid NUL-terminated strings; `argv` is null-terminated.
    unsafe {
        let mut no_signals: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut no_signals);
        let ready = libc::setpgid(0, 0) == 0
            && libc::dup2(stdin.as_raw_fd(), 0) == 0
            && libc::dup2(stdout.as_raw_fd(), 1) == 1
            && libc::dup2(stderr.as_raw_fd(), 2) == 2
            // The probe's own directory, as kselftest's runner does: some selftests exec themselves or
            // open companion files by relative path (`./ksm_functional_tests`).
            && libc::chdir(dir.as_ptr()) == 0
            // The signal mask and ignored signals survive exec. Undo init's: SIGCHLD is blocked for
            // the signalfd, and the Rust runtime ignores SIGPIPE.
            && libc::sigprocmask(libc::SIG_SETMASK, &no_signals, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR;
        if ready {
            // A fixed environment, not whatever the kernel gave init: PATH finds the guest's busybox
            // applets (`/bin/sh` for selftests that call system()), if the initramfs has them.
            let envp = [c"PATH=/bin".as_ptr(), c"HOME=/".as_ptr(), std::ptr::null()];
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
        }
        let errno = *libc::__errno_location();
        libc::write(errors.as_raw_fd(), std::ptr::addr_of!(errno).cast(), size_of_val(&errno));
        libc::_exit(127)
    }
}

fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]).into(), OwnedFd::from_raw_fd(fds[1]).into()) })
}

/// Turns one of a probe's output streams into protocol lines behind a marker (`| LINE` for stdout,
/// `! LINE` for stderr), within bounded memory and output.
struct Relay {
    pipe: File,
    marker: u8,
    /// False once the pipe is at EOF.
    open: bool,
    lines: Lines,
}

impl Relay {
    fn new(pipe: File, marker: u8, cap: u64) -> Self {
        Relay { pipe, marker, open: true, lines: Lines::new(cap, limits::LINE_BYTES) }
    }

    /// The pipe to poll; poll skips negative fds, so a pipe at EOF is left out.
    fn poll_fd(&self) -> libc::pollfd {
        poll_fd(if self.open { self.pipe.as_raw_fd() } else { -1 })
    }

    /// Reads and relays what is available on the pipe; notes EOF.
    fn read(&mut self, channel: &mut Channel) -> io::Result<()> {
        let mut buf = [0; 64 << 10];
        let n = loop {
            match (&self.pipe).read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read?,
            }
        };
        self.feed(&buf[..n], channel)?;
        self.open = n > 0;
        Ok(())
    }

    fn feed(&mut self, data: &[u8], channel: &mut Channel) -> io::Result<()> {
        let marker = self.marker;
        self.lines.feed(data, &mut |line| channel.relay(marker, line))
    }

    /// Relays a last line that had no newline.
    fn finish(&mut self, channel: &mut Channel) -> io::Result<()> {
        let marker = self.marker;
        self.lines.finish(&mut |line| channel.relay(marker, line))
    }
}

/// Reads what is left in the pipes after the probe is gone, until EOF or for DRAIN_TIME at most:
/// a process that escaped the probe's group could keep a pipe open forever.
fn drain(relays: &mut [Relay; 2], channel: &mut Channel) -> io::Result<()> {
    let deadline = Instant::now() + DRAIN_TIME;
    while relays.iter().any(|r| r.open) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        let mut fds = [relays[0].poll_fd(), relays[1].poll_fd()];
        if poll(&mut fds, left)? == 0 {
            break;
        }
        for (relay, fd) in relays.iter_mut().zip(&fds) {
            if fd.revents != 0 {
                relay.read(channel)?;
            }
        }
    }
    Ok(())
}

/// A signalfd that becomes readable when a child exits.
///
/// It lets `poll` notice the probe's exit even while something it forked keeps its stdout open.
/// SIGCHLD has to be blocked for that, before the first fork; `exec_child` unblocks it again.
struct ChildEvents {
    fd: File,
}

impl ChildEvents {
    fn new() -> io::Result<Self> {
        // SAFETY: `mask` is initialised by sigemptyset before use; signalfd returns a new fd.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            libc::sigaddset(&mut mask, libc::SIGCHLD);
            if libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ChildEvents { fd: OwnedFd::from_raw_fd(fd).into() })
        }
    }

    /// Consumes the pending SIGCHLD. Several exits merge into one pending signal, so after a
    /// wake-up the caller checks on its child with waitpid rather than counting signals.
    fn clear(&self) {
        let mut info = [0u8; size_of::<libc::signalfd_siginfo>()];
        // Nonblocking: nothing pending (EAGAIN) is fine, there is nothing to clear.
        let _ = (&self.fd).read(&mut info);
    }
}

fn poll_fd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// Polls until an fd is ready or `timeout` has passed; returns how many fds are ready.
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    // Rounded up, so as not to spin through the last fraction of a millisecond.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid slice of pollfd for the duration of the call.
    match unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) } {
        -1 => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            e => Err(e),
        },
        ready => Ok(ready as usize),
    }
}

/// waitpid for one child; with WNOHANG, `None` means it is still running.
fn wait(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            -1 => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                e => return Err(io::Error::new(e.kind(), format!("waitpid {pid}: {e}"))),
            },
            _ => return Ok(Some(status)),
        }
    }
}

/// As PID 1, init inherits every orphaned process; reap the ones that have exited. Only called
/// between probes, when this cannot take the status of a probe init is still waiting for.
fn reap_orphans() {
    // SAFETY: waitpid without a status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}
