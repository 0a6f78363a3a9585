//! Boot (or restore) one VM and watch it until it powers off, panics, misbehaves or runs out of time.
//!
//! QEMU connects to Unix sockets ksnap listens on: the console (ttyS0), the result channel (ttyS1) and,
//! when the machine is saved or restored, its monitor (QMP). A reader thread per serial port (and one
//! for QEMU's stderr) turns bytes into bounded lines and sends them here; this loop feeds the console
//! scanner and the protocol parser, sends init its plan when it says hello (after saving the machine,
//! when asked to), and moves deadlines on each protocol milestone. However the loop ends, the QEMU child
//! is killed and reaped ([`crate::children::ChildGuard`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::children::{self, ChildGuard};
use crate::error::Error;
use crate::machine::qemu::Qemu;
use crate::machine::qmp::Qmp;
use crate::machine::spec::{SavedState, Sockets, Start, VmSpec};
use crate::machine::vmstate;
use ksnap_readers::channel::{display_line, Fed, GuestReport, Milestone, ResultChannel};
use ksnap_readers::console::ConsoleScan;

/// A line longer than this is split; init never writes one (it splits long probe output itself).
const MAX_LINE: usize = 128 * 1024;
/// The result channel may carry at most this much; init relays at most 1 MiB per probe.
const MAX_RESULT_BYTES: u64 = 64 * 1024 * 1024;
/// The console kept in memory (and in the run's log); later output is counted, not kept.
const MAX_CONSOLE_BYTES: usize = 8 * 1024 * 1024;
/// QEMU's stderr kept for error messages.
const MAX_STDERR_BYTES: usize = 64 * 1024;
/// How long QEMU may take to connect its serial ports after it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait between `ksnap-done` and QEMU exiting.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(10);
/// How long saving a machine may take (a few hundred MiB written to the cache).
const SAVE_TIMEOUT: Duration = Duration::from_secs(120);

/// What happened in one VM run.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// init ran every probe and powered off.
    Completed(GuestReport),
    /// The kernel panicked.
    KernelPanic {
        /// The "Kernel panic - not syncing: …" line.
        headline: String,
        /// The console from that line on.
        lines: Vec<String>,
    },
    /// ksnap gave up waiting.
    Timeout {
        /// The milestone that did not come.
        waiting_for: WaitingFor,
        /// Time since QEMU started.
        after: Duration,
        /// The console's last lines, for the error message.
        last_console: Vec<String>,
    },
    /// QEMU itself failed (bad option, missing file, crash).
    QemuFailed {
        /// How it ended (`None` if unknown).
        status: Option<std::process::ExitStatus>,
        /// What it said on stderr (bounded).
        stderr: String,
    },
    /// The guest wrote something that is not the ksnap protocol, or stopped in the middle of it.
    MalformedOutput {
        /// What is wrong.
        reason: String,
        /// The offending line, escaped (empty when the problem is a missing line).
        line: String,
    },
}

/// What a run was waiting for when ksnap gave up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitingFor {
    /// init's hello: the kernel booting and starting init.
    Boot,
    /// init starting the next probe, or finishing.
    NextProbe,
    /// A probe's end, within its own timeout (init enforces it; this is init itself not answering).
    ProbeEnd {
        /// The probe running.
        probe: String,
        /// Its own timeout.
        timeout: Duration,
    },
    /// QEMU exiting after init said it was done.
    PowerOff,
    /// Anything: the result channel broke the protocol and the run is being stopped.
    WellFormedResults,
    /// The run's overall limit passed while waiting for the inner milestone.
    OverallLimit(Box<WaitingFor>),
}

impl std::fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitingFor::Boot => write!(f, "hello from init (boot)"),
            WaitingFor::NextProbe => write!(f, "next probe from init"),
            WaitingFor::ProbeEnd { probe, timeout } => {
                write!(f, "end of probe `{probe}` (its timeout is {} ms)", timeout.as_millis())
            }
            WaitingFor::PowerOff => write!(f, "power-off after ksnap-done"),
            WaitingFor::WellFormedResults => write!(f, "a well-formed result channel"),
            WaitingFor::OverallLimit(inner) => write!(f, "end of the run within the overall limit ({inner})"),
        }
    }
}

impl Outcome {
    /// Whether init ran every probe and powered off (whatever the probes found).
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed(_))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed(report) => write!(f, "completed ({} probes)", report.probes.len()),
            Outcome::KernelPanic { headline, .. } => write!(f, "kernel panic: {headline}"),
            Outcome::Timeout { waiting_for, after, last_console } => {
                write!(f, "timeout: no {waiting_for} after {:.1}s", after.as_secs_f64())?;
                match last_console.last() {
                    Some(last) => write!(f, "; last console line: {last}"),
                    None => write!(f, "; the console stayed silent"),
                }
            }
            Outcome::QemuFailed { status, stderr } => {
                match status {
                    Some(status) => write!(f, "QEMU failed ({status})")?,
                    None => write!(f, "QEMU failed (unknown status)")?,
                }
                match stderr.trim() {
                    "" => Ok(()),
                    stderr => write!(f, ": {stderr}"),
                }
            }
            Outcome::MalformedOutput { reason, line } if line.is_empty() => {
                write!(f, "malformed guest output: {reason}")
            }
            Outcome::MalformedOutput { reason, line } => write!(f, "malformed guest output: {reason}: `{line}`"),
        }
    }
}

/// One VM run: its outcome and what was seen on the way.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: Outcome,
    /// The whole console (up to 8 MiB), for the run's log: kernel output and init's progress lines only.
    pub console: String,
    /// Every line of probe stderr init relayed on the result channel, in order, whatever the outcome (a
    /// probe still running when the run ended included). Kept out of [`Self::console`] and of the console
    /// scanner: a probe printing `Kernel panic - not syncing` is not the kernel.
    pub probe_stderr: Vec<ProbeStderrLine>,
    /// Oops/BUG/WARNING events found on the console, whatever the outcome.
    pub console_events: Vec<ksnap_readers::console::ConsoleEvent>,
    /// Wall time from QEMU's start to its end.
    pub duration: Duration,
    /// Wall time from QEMU's start until init had its plan: the boot, or the restore (and, for a run that
    /// saved its machine, the save too). `None` if init never got there.
    pub ready_after: Option<Duration>,
    /// How much CPU QEMU got from the host, and how long it waited for one: a starved VM's results are the
    /// host's load, not the kernel's behaviour. `None` where the host kernel has no schedstat.
    pub host_cpu: Option<crate::machine::hostcpu::HostCpu>,
}

/// One line a probe wrote on stderr, and where it arrived relative to the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStderrLine {
    /// The probe that wrote it.
    pub probe: String,
    /// The line, without its newline.
    pub line: String,
    /// How many bytes of [`RunReport::console`] had arrived before it: where it goes in a merged log.
    pub console_offset: usize,
}

/// Boot (or restore, [`Start`]) `spec` and watch it. Each probe's own timeout, which init enforces, comes
/// with the plan; the host waits that long plus [`crate::Timeouts::probe_grace`] before it gives up on init.
pub fn run(qemu: &Qemu, spec: &VmSpec) -> Result<RunReport, Error> {
    run_inner(qemu, spec, None)
}

/// Called once with the state a run saved, or with why it could not save one.
pub type OnSaved<'a> = &'a mut dyn FnMut(Result<SavedState, Error>);

/// Boot `spec` like [`run`], and when init says hello, save the machine into `cache` before giving init
/// its plan: later runs of the same machine ([`vmstate::key`]) can start from that state instead of
/// booting. `on_saved` gets the state as soon as it is saved, while this run goes on with its plan, or
/// why it could not be saved; the run goes on either way. A run that is itself restored saves nothing.
pub fn run_saving(qemu: &Qemu, spec: &VmSpec, cache: &Cache, on_saved: OnSaved) -> Result<RunReport, Error> {
    if let Start::Restore(state) = &spec.start {
        on_saved(Err(Error::VmState { key: state.key.clone(), why: "a restored machine is not saved again".into() }));
        return run_inner(qemu, spec, None);
    }
    let key = vmstate::key(qemu, spec)?;
    run_inner(qemu, spec, Some(Saving { cache, qemu, key, on_saved }))
}

/// How the channel reads each probe's stdout: as its entry of the plan says.
fn formats(spec: &VmSpec) -> impl Iterator<Item = (String, crate::machine::spec::Format)> + '_ {
    spec.plan.iter().map(|p| (p.name.clone(), p.format))
}

/// A run's request to save its machine at init's hello.
struct Saving<'a> {
    cache: &'a Cache,
    qemu: &'a Qemu,
    key: String,
    on_saved: OnSaved<'a>,
}

fn run_inner(qemu: &Qemu, spec: &VmSpec, saving: Option<Saving>) -> Result<RunReport, Error> {
    let probe_timeouts: HashMap<String, Duration> = spec.plan.iter().map(|p| (p.name.clone(), p.timeout)).collect();
    let plan = ksnap_protocol::plan::framed(&spec.plan_text()?);
    let restore = open_saved_state(qemu, spec)?;
    let listening = Listening::new(saving.is_some() || restore.is_some())?;
    let (mut child, started, stderr_thread) = start_qemu(qemu, spec, listening.sockets())?;
    let (events, receiver) = mpsc::channel();

    let mut watch = Watch {
        spec,
        probe_timeouts,
        started,
        console: ConsoleScan::new(),
        console_text: String::new(),
        console_dropped: 0,
        channel: ResultChannel::new().with_formats(formats(spec)),
        probe_stderr: Vec::new(),
        result_bytes: 0,
        protocol_error: None,
        deadline: started + spec.timeouts.boot,
        waiting_for: WaitingFor::Boot,
        plan,
        plan_sender: None,
        saving: None,
        ready_after: None,
        host_error: None,
        cpu: crate::machine::hostcpu::Meter::new(child.id()),
    };
    let ending = match accept_all(&mut child, &listening.listeners())? {
        Some(streams) => match watch.connect(streams, events, restore, saving)? {
            Connected::Running => watch.watch(&mut child, &receiver)?,
            Connected::RestoreFailed { key, why } => return Err(restore_failed(&mut child, stderr_thread, key, why)),
        },
        None => Ending::Exited,
    };
    finish(watch, ending, &mut child, &receiver, stderr_thread)
}

/// The saved state `spec` starts from, and its file opened; `None` for a boot. A state saved from
/// another machine, or gone, is a VmState error, so that the caller boots.
fn open_saved_state<'s>(qemu: &Qemu, spec: &'s VmSpec) -> Result<Option<(&'s SavedState, File)>, Error> {
    match &spec.start {
        Start::Boot => Ok(None),
        Start::Restore(state) => {
            if vmstate::key(qemu, spec)? != state.key {
                return Err(Error::VmState {
                    key: state.key.clone(),
                    why: "it was saved from another machine than this VM's (kernel, initramfs, QEMU or options differ)"
                        .into(),
                });
            }
            // It may have been replaced since it was looked up: a VmState error, so that the caller boots.
            let file = File::open(&state.path).map_err(|e| Error::VmState {
                key: state.key.clone(),
                why: format!("opening {}: {e}", state.path.display()),
            })?;
            Ok(Some((state, file)))
        }
    }
}

/// The sockets QEMU connects to, listening in a temporary directory that lives as long as the run.
struct Listening {
    /// Removed, with the sockets, when the run ends.
    _dir: tempfile::TempDir,
    console: (PathBuf, UnixListener),
    results: (PathBuf, UnixListener),
    /// The monitor's, when the run saves or restores its machine.
    monitor: Option<(PathBuf, UnixListener)>,
}

impl Listening {
    fn new(uses_monitor: bool) -> Result<Listening, Error> {
        let dir = tempfile::Builder::new()
            .prefix("ksnap-vm-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory for the VM", e))?;
        let console_path = dir.path().join("console.sock");
        let results_path = dir.path().join("results.sock");
        let monitor_path = dir.path().join("monitor.sock");
        let console_listener = listen(&console_path)?;
        let results_listener = listen(&results_path)?;
        let monitor_listener = uses_monitor.then(|| listen(&monitor_path)).transpose()?;
        Ok(Listening {
            _dir: dir,
            console: (console_path, console_listener),
            results: (results_path, results_listener),
            monitor: monitor_listener.map(|listener| (monitor_path, listener)),
        })
    }

    /// The paths, for QEMU's command line.
    fn sockets(&self) -> Sockets<'_> {
        Sockets {
            console: &self.console.0,
            results: &self.results.0,
            monitor: self.monitor.as_ref().map(|(path, _)| path.as_path()),
        }
    }

    /// The listeners in the order [`accept_all`] returns their streams: console, result channel, monitor.
    fn listeners(&self) -> Vec<&UnixListener> {
        let mut listeners = vec![&self.console.1, &self.results.1];
        listeners.extend(self.monitor.as_ref().map(|(_, listener)| listener));
        listeners
    }
}

/// Start QEMU on `sockets`: the child, when it started, and the thread that keeps its stderr (bounded).
fn start_qemu(
    qemu: &Qemu,
    spec: &VmSpec,
    sockets: Sockets,
) -> Result<(ChildGuard, Instant, JoinHandle<String>), Error> {
    let mut command = Command::new(&qemu.path);
    command.args(spec.qemu_args(qemu, sockets)).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = children::spawn(&mut command).map_err(|source| Error::QemuSpawn { cause: source })?;
    let stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let stderr_thread = std::thread::spawn(move || read_bounded(stderr, MAX_STDERR_BYTES));
    Ok((child, started, stderr_thread))
}

/// How connecting a run to QEMU's streams went.
enum Connected {
    /// The guest boots, or runs on from its restored state: watch it.
    Running,
    /// QEMU did not restore the saved state `key`, for `why`.
    RestoreFailed { key: String, why: String },
}

/// The error of a restore that failed: QEMU is killed first, so that what it said on stderr is whole.
fn restore_failed(child: &mut ChildGuard, stderr_thread: JoinHandle<String>, key: String, why: String) -> Error {
    child.kill();
    if children::is_cancelled() {
        return Error::Cancelled;
    }
    let said = stderr_thread.join().unwrap_or_default();
    let why = match said.trim() {
        "" => why,
        said => format!("{why}; QEMU said: {said}"),
    };
    Error::VmState { key, why }
}

/// Once the watch has ended: QEMU killed (if it still ran), what the readers still had handled, the report.
fn finish(
    mut watch: Watch,
    ending: Ending,
    child: &mut ChildGuard,
    receiver: &mpsc::Receiver<Event>,
    stderr_thread: JoinHandle<String>,
) -> Result<RunReport, Error> {
    watch.cpu.sample();
    let status = child.try_wait().ok().flatten();
    child.kill();
    let duration = watch.started.elapsed();
    // The readers end at EOF now that QEMU is gone; take what they still had.
    while let Ok(event) = receiver.recv_timeout(Duration::from_millis(200)) {
        watch.handle(event);
    }
    let stderr = stderr_thread.join().unwrap_or_default();
    if children::is_cancelled() {
        return Err(Error::Cancelled);
    }
    watch.report(ending, status, duration, &stderr)
}

fn listen(path: &Path) -> Result<UnixListener, Error> {
    let listener = UnixListener::bind(path).map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
    listener.set_nonblocking(true).map_err(|e| Error::io("configuring a socket", e))?;
    Ok(listener)
}

/// Wait for QEMU to connect to every listener (the serial ports, the monitor), in their order. `None` if
/// QEMU exited first (a bad option, say).
fn accept_all(child: &mut ChildGuard, listeners: &[&UnixListener]) -> Result<Option<Vec<UnixStream>>, Error> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut streams: Vec<Option<UnixStream>> = listeners.iter().map(|_| None).collect();
    loop {
        for (listener, slot) in listeners.iter().zip(&mut streams) {
            if slot.is_none() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).map_err(|e| Error::io("configuring a socket", e))?;
                        *slot = Some(stream);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::io("accepting QEMU's connection", e)),
                }
            }
        }
        if streams.iter().all(Option::is_some) {
            return Ok(Some(streams.into_iter().flatten().collect()));
        }
        if child.try_wait().map_err(|e| Error::io("waiting for QEMU", e))?.is_some() {
            return Ok(None);
        }
        if children::is_cancelled() {
            return Err(Error::Cancelled);
        }
        if Instant::now() >= deadline {
            return Err(Error::io(
                "QEMU did not connect its serial ports",
                std::io::Error::new(std::io::ErrorKind::TimedOut, format!("waited {}s", CONNECT_TIMEOUT.as_secs())),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Console,
    Results,
}

/// A line from one of QEMU's serial ports. A reader thread ends at EOF by dropping its sender.
enum Event {
    Line(Stream, Vec<u8>),
}

/// Read `stream` line by line (lines capped at [`MAX_LINE`]) and send each to the run loop.
fn spawn_line_reader(stream: UnixStream, which: Stream, events: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if line.last() == Some(&b'\r') && which == Stream::Console {
                        line.pop();
                    }
                    if events.send(Event::Line(which, std::mem::take(&mut line))).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn read_bounded(stream: impl Read, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Why the watch loop stopped.
enum Ending {
    /// QEMU exited by itself.
    Exited,
    /// ksnap stopped waiting; QEMU was still running.
    GaveUp { waiting_for: WaitingFor, after: Duration },
}

struct Watch<'a, 's> {
    spec: &'a VmSpec,
    /// The plan as init reads it (header and text), sent when init says hello.
    plan: Vec<u8>,
    /// The result channel's write side.
    plan_sender: Option<UnixStream>,
    /// The save to make at init's hello, and the monitor to make it through.
    saving: Option<(Saving<'s>, Qmp)>,
    ready_after: Option<Duration>,
    /// A failure on the host side that ends the run as an error (the guest could not be resumed after saving).
    host_error: Option<Error>,
    /// QEMU's CPU time and run-queue wait, sampled while it runs.
    cpu: crate::machine::hostcpu::Meter,
    probe_timeouts: HashMap<String, Duration>,
    started: Instant,
    console: ConsoleScan,
    console_text: String,
    console_dropped: usize,
    channel: ResultChannel,
    probe_stderr: Vec<ProbeStderrLine>,
    result_bytes: u64,
    protocol_error: Option<ksnap_readers::channel::ProtocolError>,
    /// When ksnap gives up unless the next milestone arrives.
    deadline: Instant,
    waiting_for: WaitingFor,
}

impl<'s> Watch<'_, 's> {
    /// Connect the run to the streams QEMU opened (console, result channel, and the monitor if any):
    /// start their readers, then restore the saved state through the monitor, or have the save made at
    /// init's hello.
    fn connect(
        &mut self,
        mut streams: Vec<UnixStream>,
        events: mpsc::Sender<Event>,
        restore: Option<(&SavedState, File)>,
        saving: Option<Saving<'s>>,
    ) -> Result<Connected, Error> {
        let monitor = (streams.len() == 3).then(|| streams.pop().expect("three streams"));
        let results = streams.pop().expect("the result channel");
        let console = streams.pop().expect("the console");
        self.plan_sender = Some(results.try_clone().map_err(|e| Error::io("the result channel socket", e))?);
        spawn_line_reader(console, Stream::Console, events.clone());
        spawn_line_reader(results, Stream::Results, events);
        let boot_deadline = self.started + self.spec.timeouts.boot;
        let monitor = monitor.map(|stream| Qmp::handshake(stream, boot_deadline));
        match (restore, saving, monitor) {
            (Some((state, file)), _, Some(qmp)) => {
                let restored = qmp.and_then(|mut qmp| qmp.restore(&file, boot_deadline));
                if let Err(why) = restored {
                    return Ok(Connected::RestoreFailed { key: state.key.clone(), why });
                }
                // The state was saved right after init's hello: init waits for its plan.
                self.channel = ResultChannel::after_hello().with_formats(formats(self.spec));
                self.reached(Milestone::Hello);
            }
            (None, Some(saving), Some(qmp)) => match qmp {
                Ok(qmp) => self.saving = Some((saving, qmp)),
                Err(why) => (saving.on_saved)(Err(Error::VmState { key: saving.key.clone(), why })),
            },
            _ => {}
        }
        Ok(Connected::Running)
    }

    /// The run's report, once QEMU is gone and every line it sent is handled: `Err` of a failure on the
    /// host side.
    fn report(
        mut self,
        ending: Ending,
        status: Option<std::process::ExitStatus>,
        duration: Duration,
        stderr: &str,
    ) -> Result<RunReport, Error> {
        let mut console = std::mem::take(&mut self.console_text);
        if self.console_dropped > 0 {
            console.push_str(&format!("[ksnap: {} more console bytes not kept]\n", self.console_dropped));
        }
        if let Some(error) = self.host_error.take() {
            return Err(error);
        }
        let console_events = self.console.events().to_vec();
        let probe_stderr = std::mem::take(&mut self.probe_stderr);
        let ready_after = self.ready_after;
        let host_cpu = self.cpu.latest();
        let outcome = self.outcome(ending, status, stderr);
        Ok(RunReport { outcome, console, probe_stderr, console_events, duration, ready_after, host_cpu })
    }
}

impl Watch<'_, '_> {
    fn watch(&mut self, child: &mut ChildGuard, events: &mpsc::Receiver<Event>) -> Result<Ending, Error> {
        let overall = self.started + self.spec.timeouts.overall;
        loop {
            self.cpu.tick();
            if child.try_wait().map_err(|e| Error::io("waiting for QEMU", e))?.is_some() {
                return Ok(Ending::Exited);
            }
            if children::is_cancelled() {
                return Err(Error::Cancelled);
            }
            let now = Instant::now();
            if now >= overall {
                return Ok(Ending::GaveUp {
                    waiting_for: WaitingFor::OverallLimit(Box::new(self.waiting_for.clone())),
                    after: now - self.started,
                });
            }
            if now >= self.deadline {
                return Ok(Ending::GaveUp { waiting_for: self.waiting_for.clone(), after: now - self.started });
            }
            if self.host_error.is_some() {
                return Ok(Ending::GaveUp { waiting_for: self.waiting_for.clone(), after: now - self.started });
            }
            // A panicking kernel with panic=-1 reboots at once and QEMU exits; a kernel that is stuck
            // after a panic still must not be waited on until the deadline.
            if self.console.panic().is_some() {
                self.deadline = self.deadline.min(now + Duration::from_secs(2));
            }
            match events.recv_timeout(Duration::from_millis(20)) {
                Ok(event) => self.handle(event),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Both readers ended: QEMU closed its sockets, so it is exiting; try_wait will see it.
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Line(Stream::Console, line) => {
                let text = String::from_utf8_lossy(&line);
                self.console.feed_line(&text);
                if self.console_text.len() + text.len() < MAX_CONSOLE_BYTES {
                    self.console_text.push_str(&text);
                    self.console_text.push('\n');
                } else {
                    self.console_dropped += text.len() + 1;
                }
            }
            Event::Line(Stream::Results, line) => {
                self.result_bytes += line.len() as u64 + 1;
                if self.protocol_error.is_some() {
                    return;
                }
                if self.result_bytes > MAX_RESULT_BYTES {
                    self.protocol_error = Some(ksnap_readers::channel::ProtocolError {
                        reason: format!("the result channel carried more than {} MiB", MAX_RESULT_BYTES >> 20),
                        line: String::new(),
                    });
                    return;
                }
                match self.channel.feed_line(&line) {
                    Ok(Fed::Milestone(milestone)) => {
                        // init ending a probe or finishing after a panic headline shows that the kernel did
                        // not stop: that headline was user space's, and its run is judged by the rest (its
                        // facts stand if init finishes). A probe's start is left out: it can be on its way
                        // when a probe that has just started panics the kernel for real.
                        if matches!(milestone, Milestone::ProbeEnd(_) | Milestone::Done) {
                            self.console.guest_went_on();
                        }
                        self.reached(milestone)
                    }
                    Ok(Fed::Stderr { probe, line }) => {
                        self.probe_stderr.push(ProbeStderrLine { probe, line, console_offset: self.console_text.len() })
                    }
                    Ok(Fed::Other) => {}
                    Err(e) => {
                        self.protocol_error = Some(e);
                        // Nothing the guest says now can be trusted; stop soon.
                        self.deadline = Instant::now();
                        self.waiting_for = WaitingFor::WellFormedResults;
                    }
                }
            }
        }
    }

    fn reached(&mut self, milestone: Milestone) {
        let now = Instant::now();
        let grace = self.spec.timeouts.probe_grace;
        match milestone {
            Milestone::Hello => {
                if let Some((saving, qmp)) = self.saving.take() {
                    self.save(saving, qmp);
                }
                // A failed write means QEMU is going away; the loop sees it exit.
                if let Some(mut sender) = self.plan_sender.take() {
                    let _ = sender.write_all(&self.plan);
                }
                self.ready_after = Some(self.started.elapsed());
                self.deadline = Instant::now() + grace;
                self.waiting_for = WaitingFor::NextProbe;
            }
            Milestone::ProbeEnd(_) => {
                self.deadline = now + grace;
                self.waiting_for = WaitingFor::NextProbe;
            }
            Milestone::ProbeBegin(name) => {
                let own = self.probe_timeouts.get(&name).copied().unwrap_or_default();
                self.deadline = now + own + grace;
                self.waiting_for = WaitingFor::ProbeEnd { probe: name, timeout: own };
            }
            Milestone::Done => {
                self.deadline = now + POWER_OFF_TIMEOUT;
                self.waiting_for = WaitingFor::PowerOff;
            }
        }
    }

    /// Save the machine (init waits for its plan), let it run again, and tell the caller.
    fn save(&mut self, saving: Saving, mut qmp: Qmp) {
        let Saving { cache, qemu, key, on_saved } = saving;
        let deadline = Instant::now() + SAVE_TIMEOUT;
        let saved = vmstate::Staged::new(cache).and_then(|staged| {
            qmp.save(&staged.file, deadline).map_err(|why| Error::VmState { key: key.clone(), why })?;
            staged.commit(cache, &key, qemu, self.spec)
        });
        if let Err(why) = qmp.resume(deadline) {
            self.host_error = Some(Error::VmState {
                key: key.clone(),
                why: format!("the guest did not run again after saving: {why}"),
            });
        }
        on_saved(saved);
    }

    fn last_console(&self) -> Vec<String> {
        self.console.last_lines().to_vec()
    }

    fn outcome(self, ending: Ending, status: Option<std::process::ExitStatus>, stderr: &str) -> Outcome {
        // A panic explains everything after it, so it wins over any other reading. One the guest went on
        // after is no panic (`ConsoleScan::guest_went_on`).
        if let Some(panic) = self.console.panic() {
            return Outcome::KernelPanic { headline: panic.headline.clone(), lines: panic.lines.clone() };
        }
        if let Some(error) = &self.protocol_error {
            return Outcome::MalformedOutput { reason: error.reason.clone(), line: error.line.clone() };
        }
        if let Ending::GaveUp { waiting_for, after } = ending {
            return Outcome::Timeout { waiting_for, after, last_console: self.last_console() };
        }
        if !status.is_some_and(|s| s.success()) {
            return Outcome::QemuFailed { status, stderr: stderr.trim().to_string() };
        }
        if !self.channel.has_started() && self.console.last_lines().is_empty() {
            return Outcome::QemuFailed { status, stderr: "QEMU exited before the guest printed anything".into() };
        }
        if !self.channel.is_done() {
            let reason = match self.channel.current_probe() {
                Some(probe) => format!("the guest stopped while probe `{probe}` was running, before ksnap-done"),
                None if self.channel.has_started() => "the guest stopped before ksnap-done".to_string(),
                None => "the guest stopped before init said hello".to_string(),
            };
            let last = self.console.last_lines().last().cloned().unwrap_or_default();
            return Outcome::MalformedOutput { reason, line: display_line(last.as_bytes()) };
        }
        Outcome::Completed(self.channel.into_report())
    }
}
