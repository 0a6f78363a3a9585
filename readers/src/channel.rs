//! The host side of the guest protocol: turns the result channel's lines into a [`GuestReport`].
//!
//! The lines themselves are [`ksnap_protocol`]'s, shared with init; this is the state machine around
//! them. Only `init` writes control lines and it writes them whole, so the parser is strict about them:
//! anything unexpected makes the run's output malformed. Probe output — stdout behind `| `, stderr behind `! ` — is untrusted bytes, decoded lossily;
//! stdout is read once, as the probe's end comes, in the probe's [`Format`] (declared with
//! [`ResultChannel::with_formats`]; KTAP unless said otherwise) into its [`Reading`]; stderr is kept as
//! it is (diagnostics for a person, never KTAP).

use std::collections::HashMap;

use crate::kselftest::{self, CaseResult, SelftestReport};
use crate::ktap::{self, KtapDocument};

pub use ksnap_protocol::ProbeEnd;
use ksnap_protocol::{ControlLine, ParseError, ProbeNote, STDERR_MARKER, STDOUT_MARKER};

/// One probe's run in the guest.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    /// The probe's name, from its `probe-begin` line.
    pub name: String,
    /// How it ended, as init reported in its `probe-end` line.
    pub end: ProbeEnd,
    /// Its stdout, line by line, lossily decoded.
    pub output: Vec<String>,
    /// Bytes init discarded because the probe wrote more than the relay limit.
    pub truncated_bytes: Option<u64>,
    /// Its stderr, line by line, lossily decoded: diagnostics for a person. It is neither KTAP nor
    /// kernel output, and no fact comes from it.
    pub stderr: Vec<String>,
    /// Bytes of stderr init discarded because the probe wrote more than the stderr limit.
    pub stderr_truncated_bytes: Option<u64>,
    /// Its stdout read in its format, leniently: what is wrong is in the reading's `problems`.
    pub reading: Reading,
}

/// How a probe's stdout is read: its kind's output format. It travels with the probe's entry of the
/// plan, so that each probe's output is read exactly once, in its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// KTAP ([`crate::ktap`]): what ksnap's own probes write.
    #[default]
    Ktap,
    /// A kernel selftest's looser TAP, per test case ([`crate::kselftest`]).
    Kselftest,
}

impl Format {
    /// Reads a probe's stdout (one line each, decoded lossily), which ended as `end`.
    pub fn read(self, output: &[String], end: &ProbeEnd) -> Reading {
        match self {
            Format::Ktap => Reading::Ktap(ktap::parse(&output.join("\n"))),
            Format::Kselftest => Reading::Kselftest(kselftest::parse(output, end)),
        }
    }
}

/// A probe's stdout, read in its [`Format`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A KTAP document: its tests, their results and facts.
    Ktap(KtapDocument),
    /// A selftest binary's cases and its result.
    Kselftest(SelftestReport),
}

impl ProbeRun {
    /// Whether the probe passed, as its kind decides. A KTAP probe ran to its end and reported a
    /// complete document with no failures: one that crashed, hung or wrote a truncated stream has not
    /// passed, whatever results it printed. A kernel selftest passes by running at all (it could be
    /// started): what its cases found, failures included, is a result, not a broken probe.
    pub fn passed(&self) -> bool {
        match &self.reading {
            Reading::Ktap(doc) => {
                self.end == ProbeEnd::Exited(0)
                    && self.truncated_bytes.is_none()
                    && doc.complete
                    && doc.problems.is_empty()
                    && !doc.any_failed()
            }
            Reading::Kselftest(_) => !matches!(self.end, ProbeEnd::SpawnError(_)),
        }
    }

    /// Whether the probe's binary passed, for a person's summary: a KTAP probe as [`ProbeRun::passed`], a
    /// kernel selftest when its binary's result is a pass (exit 0).
    pub fn binary_passed(&self) -> bool {
        match &self.reading {
            Reading::Ktap(_) => self.passed(),
            Reading::Kselftest(report) => report.binary == CaseResult::Pass,
        }
    }

    /// Its KTAP document, if it was read as KTAP.
    pub fn ktap(&self) -> Option<&KtapDocument> {
        match &self.reading {
            Reading::Ktap(doc) => Some(doc),
            Reading::Kselftest(_) => None,
        }
    }
}

/// Everything the guest reported on its result channel.
#[derive(Debug, Clone, Default)]
pub struct GuestReport {
    /// Every probe that ended (its `probe-end` came), in the order they ran.
    pub probes: Vec<ProbeRun>,
    /// init's `summary` line, as written.
    pub summary: Option<String>,
}

/// A milestone the run loop uses to move its deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Milestone {
    /// `ksnap-init VERSION`, with the version this host speaks: init is up.
    Hello,
    /// `probe-begin NAME`: the named probe started.
    ProbeBegin(String),
    /// `probe-end NAME …`: the named probe ended.
    ProbeEnd(String),
    /// `ksnap-done`: init is finished and powers the guest off.
    Done,
}

/// The guest broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// Which rule the line broke, e.g. `probe output outside any probe`.
    pub reason: String,
    /// The offending line, escaped and shortened for display.
    pub line: String,
}

pub use ksnap_protocol::VERSION;

/// An incremental parser: feed it lines as they arrive.
#[derive(Debug, Default)]
pub struct ResultChannel {
    state: State,
    report: GuestReport,
    current: Option<OpenProbe>,
    /// Each probe's format by name; a probe not named here is KTAP.
    formats: HashMap<String, Format>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    AwaitingHello,
    Running,
    Done,
}

#[derive(Debug)]
struct OpenProbe {
    name: String,
    output: Vec<String>,
    stderr: Vec<String>,
}

/// What one result-channel line was, when it was not a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// A control line that moved the run on.
    Milestone(Milestone),
    /// One line of the running probe's stderr, as kept (lossily decoded).
    Stderr {
        /// The name of the probe that wrote it.
        probe: String,
        /// The line, without its `! ` marker, lossily decoded.
        line: String,
    },
    /// Anything else: probe stdout, a note, the summary.
    Other,
}

impl ResultChannel {
    /// A parser waiting for init's `ksnap-init` line.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser for a machine restored from a state saved right after init's hello
    /// (`ksnap_vm::machine::vmstate`): the hello was said, in the boot that saved it.
    pub fn after_hello() -> Self {
        ResultChannel { state: State::Running, ..Self::default() }
    }

    /// The same parser, reading each named probe's stdout in its format (a probe not named is KTAP).
    pub fn with_formats(mut self, formats: impl IntoIterator<Item = (String, Format)>) -> Self {
        self.formats.extend(formats);
        self
    }

    /// Whether init said `ksnap-done`.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether init said hello.
    pub fn has_started(&self) -> bool {
        self.state != State::AwaitingHello
    }

    /// The probe running now, if any.
    pub fn current_probe(&self) -> Option<&str> {
        self.current.as_ref().map(|p| p.name.as_str())
    }

    /// Feed one line (without its `\n`); returns the milestone it reached, if any.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Milestone>, ProtocolError> {
        Ok(match self.feed_line(line)? {
            Fed::Milestone(milestone) => Some(milestone),
            Fed::Stderr { .. } | Fed::Other => None,
        })
    }

    /// Feed one line (without its `\n`), saying what it was: a milestone, a line of probe stderr (for
    /// the run's log), or anything else.
    pub fn feed_line(&mut self, line: &[u8]) -> Result<Fed, ProtocolError> {
        self.fed(line).map_err(|reason| ProtocolError { reason, line: display_line(line) })
    }

    /// What `line` was, or which rule of the protocol it broke.
    fn fed(&mut self, line: &[u8]) -> Result<Fed, String> {
        if self.state == State::Done {
            return fail("output after ksnap-done");
        }
        if let Some(relayed) = ksnap_protocol::relayed(line, STDOUT_MARKER) {
            return match self.current.as_mut() {
                Some(probe) => {
                    probe.output.push(String::from_utf8_lossy(relayed).into_owned());
                    Ok(Fed::Other)
                }
                None => fail("probe output outside any probe"),
            };
        }
        if let Some(relayed) = ksnap_protocol::relayed(line, STDERR_MARKER) {
            return match self.current.as_mut() {
                Some(probe) => {
                    let text = String::from_utf8_lossy(relayed).into_owned();
                    probe.stderr.push(text.clone());
                    Ok(Fed::Stderr { probe: probe.name.clone(), line: text })
                }
                None => fail("probe stderr outside any probe"),
            };
        }
        let Ok(text) = std::str::from_utf8(line) else { return fail("control line is not UTF-8") };
        let control = ControlLine::parse(text);
        if self.state == State::AwaitingHello {
            return self.hello(control);
        }
        match control {
            Ok(control) => self.control(control, text),
            Err(error) => fail(&error.to_string()),
        }
    }

    /// The first control line, which must be init's hello in this host's version.
    fn hello(&mut self, control: Result<ControlLine, ParseError>) -> Result<Fed, String> {
        match control {
            Ok(ControlLine::Hello { version }) if version == VERSION => {
                self.state = State::Running;
                milestone(Milestone::Hello)
            }
            Ok(ControlLine::Hello { .. }) => fail(&format!(
                "unsupported protocol version (expected ksnap-init {VERSION}): guest-tests and ksnap differ"
            )),
            _ => fail("expected ksnap-init first"),
        }
    }

    /// A control line after the hello (`text` as written).
    fn control(&mut self, control: ControlLine, text: &str) -> Result<Fed, String> {
        match control {
            ControlLine::ProbeBegin { name } => {
                if self.current.is_some() {
                    return fail("probe-begin while another probe is running");
                }
                self.current = Some(OpenProbe { name: name.clone(), output: Vec::new(), stderr: Vec::new() });
                milestone(Milestone::ProbeBegin(name))
            }
            ControlLine::ProbeEnd { name, end } => self.probe_end(name, end),
            ControlLine::ProbeNote { name, note } => self.probe_note(&name, note),
            ControlLine::Summary { .. } if self.current.is_none() => {
                self.report.summary = Some(text.to_string());
                Ok(Fed::Other)
            }
            ControlLine::Done if self.current.is_none() => {
                self.state = State::Done;
                milestone(Milestone::Done)
            }
            ControlLine::Hello { .. } | ControlLine::Summary { .. } | ControlLine::Done => {
                fail("not a line of the ksnap guest protocol")
            }
        }
    }

    /// `probe-end NAME …`: the running probe's stdout read in its format, the probe kept in the report.
    fn probe_end(&mut self, name: String, end: ProbeEnd) -> Result<Fed, String> {
        let Some(open) = self.current.take_if(|p| p.name == name) else {
            return fail("probe-end for a probe that is not running");
        };
        let format = self.formats.get(&open.name).copied().unwrap_or_default();
        let reading = format.read(&open.output, &end);
        self.report.probes.push(ProbeRun {
            name: open.name,
            end,
            output: open.output,
            truncated_bytes: None,
            stderr: open.stderr,
            stderr_truncated_bytes: None,
            reading,
        });
        milestone(Milestone::ProbeEnd(name))
    }

    /// `probe-note NAME …`: what init discarded of the probe that just ended, said once.
    fn probe_note(&mut self, name: &str, note: ProbeNote) -> Result<Fed, String> {
        let Some(last) = self.report.probes.last_mut().filter(|last| last.name == name && self.current.is_none())
        else {
            return fail("probe-note that does not follow its probe-end");
        };
        let (slot, bytes) = match note {
            ProbeNote::Truncated(bytes) => (&mut last.truncated_bytes, bytes),
            ProbeNote::StderrTruncated(bytes) => (&mut last.stderr_truncated_bytes, bytes),
        };
        if slot.is_some() {
            return fail("probe-note repeated");
        }
        *slot = Some(bytes);
        Ok(Fed::Other)
    }

    /// The report so far. A probe still open (the guest stopped mid-probe) is not included.
    pub fn into_report(self) -> GuestReport {
        self.report
    }
}

/// A line that broke the protocol, and the rule it broke.
fn fail(reason: &str) -> Result<Fed, String> {
    Err(reason.to_string())
}

/// A control line that moved the run on.
fn milestone(milestone: Milestone) -> Result<Fed, String> {
    Ok(Fed::Milestone(milestone))
}

/// Render untrusted bytes for an error message: printable ASCII as is, the rest escaped, at most 120 chars.
pub fn display_line(line: &[u8]) -> String {
    let mut shown: String =
        line.iter().take(120).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if line.len() > 120 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn feed_all(channel: &mut ResultChannel, text: &[u8]) -> Result<Vec<Milestone>, ProtocolError> {
        let mut milestones = Vec::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            milestones.extend(channel.feed(line)?);
        }
        Ok(milestones)
    }

    const GOOD: &[u8] = b"ksnap-init 3
probe-begin env
| KTAP version 1
! env: starting
| 1..1
| # fact: page_size = 4096
| ok 1 page_size
probe-end env exit=0
probe-begin crasher
| KTAP version 1
probe-end crasher signal=11
probe-begin flood
| x
probe-end flood exit=0
probe-note flood truncated=1234
probe-note flood stderr-truncated=99
summary probes=3 exited0=2 failed=1
ksnap-done
";

    /// Each probe is read once, in the format declared for it; a kernel selftest passes by having run,
    /// and its binary passed only with exit 0.
    #[test]
    fn each_probe_is_read_in_its_format() {
        let mut channel = ResultChannel::after_hello().with_formats([("cow".to_owned(), Format::Kselftest)]);
        let text = b"probe-begin cow\n| TAP version 13\n| 1..1\n| not ok 1 wp\nprobe-end cow exit=1\n\
                     probe-begin env\n| 1..1\n| ok 1 t\nprobe-end env exit=0\n";
        feed_all(&mut channel, text).unwrap();
        let report = channel.into_report();
        let [cow, env] = &report.probes[..] else { panic!("{report:#?}") };
        let Reading::Kselftest(selftest) = &cow.reading else { panic!("{cow:#?}") };
        assert_eq!(selftest.binary, CaseResult::Fail);
        assert_eq!(selftest.cases[0].key, "wp");
        assert!(cow.ktap().is_none());
        assert!(cow.passed() && !cow.binary_passed());
        assert!(env.ktap().is_some_and(|doc| doc.tests.len() == 1));
        assert!(env.passed() && env.binary_passed());
    }

    #[test]
    fn parses_a_complete_run() {
        let mut channel = ResultChannel::new();
        let milestones = feed_all(&mut channel, GOOD).unwrap();
        assert_eq!(milestones.first(), Some(&Milestone::Hello));
        assert_eq!(milestones.last(), Some(&Milestone::Done));
        assert!(channel.is_done());
        let report = channel.into_report();
        assert_eq!(report.probes.len(), 3);
        let env = &report.probes[0];
        assert_eq!(env.end, ProbeEnd::Exited(0));
        assert_eq!(env.output.len(), 4);
        assert_eq!(env.stderr, ["env: starting"]);
        assert!(env.passed());
        assert_eq!(report.probes[1].end, ProbeEnd::Signaled(11));
        assert!(!report.probes[1].passed());
        assert!(report.probes[1].stderr.is_empty());
        assert_eq!(report.probes[2].truncated_bytes, Some(1234));
        assert_eq!(report.probes[2].stderr_truncated_bytes, Some(99));
        assert!(!report.probes[2].passed(), "a truncated probe has not passed");
        assert_eq!(report.summary.as_deref(), Some("summary probes=3 exited0=2 failed=1"));
    }

    #[test]
    fn relayed_output_may_be_any_bytes() {
        let mut channel = ResultChannel::new();
        feed_all(&mut channel, b"ksnap-init 3\nprobe-begin p\n").unwrap();
        channel.feed(b"| \xff\x00\x1b[2J").unwrap();
        channel.feed(b"|").unwrap();
        channel.feed(b"probe-end p timeout=2000").unwrap();
        let report = channel.into_report();
        assert_eq!(report.probes[0].output, vec!["\u{fffd}\u{0}\u{1b}[2J".to_string(), String::new()]);
        assert_eq!(report.probes[0].end, ProbeEnd::TimedOut(Duration::from_millis(2000)));
    }

    #[test]
    fn a_restored_machine_starts_after_the_hello() {
        let mut channel = ResultChannel::after_hello();
        assert!(channel.has_started());
        let input = b"probe-begin p\n| KTAP version 1\n| 1..0\nprobe-end p exit=0\nsummary probes=1 exited0=1 failed=0\nksnap-done\n";
        feed_all(&mut channel, input).unwrap();
        assert!(channel.is_done());
        assert!(feed_all(&mut ResultChannel::after_hello(), b"ksnap-init 3\n").is_err(), "a second hello");
    }

    #[test]
    fn rejects_lines_init_would_never_write() {
        let cases: &[(&[u8], &str)] = &[
            (b"garbage", "expected ksnap-init first"),
            (b"ksnap-init 2", "unsupported protocol version (expected ksnap-init 3)"),
            (b"ksnap-init 4", "unsupported protocol version"),
            (b"ksnap-init 3\n| stray", "outside any probe"),
            (b"ksnap-init 3\n! stray", "probe stderr outside any probe"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-end a exit=0\n! late", "probe stderr outside any probe"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-end a exit=0\nprobe-note a stderr-truncated=x", "unknown probe-note"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-end a exit=0\nprobe-note a stdout=1", "unknown probe-note"),
            (
                b"ksnap-init 3\nprobe-begin a\nprobe-end a exit=0\nprobe-note a truncated=1\nprobe-note a truncated=2",
                "repeated",
            ),
            (b"ksnap-init 3\nprobe-begin a\n!x", "not a line"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-begin b", "while another probe"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-end b exit=0", "not running"),
            (b"ksnap-init 3\nprobe-begin a\nprobe-end a exit=x", "unknown probe-end status"),
            (b"ksnap-init 3\nprobe-begin a\nksnap-done", "not a line"),
            (b"ksnap-init 3\nksnap-done\nksnap-done", "after ksnap-done"),
            (b"ksnap-init 3\n\xff\xfe", "not UTF-8"),
            (b"ksnap-init 3\nprobe-note a truncated=1", "does not follow"),
        ];
        for (input, reason) in cases {
            let err = feed_all(&mut ResultChannel::new(), input).unwrap_err();
            assert!(err.reason.contains(reason), "{:?}: got {:?}", String::from_utf8_lossy(input), err.reason);
        }
    }

    /// What init writes for one line a probe wrote on stderr (vm/init/src/main.rs, `Relay`).
    fn relay_stderr(line: &[u8]) -> Vec<u8> {
        [b"! ", line].concat()
    }

    #[test]
    fn probe_stderr_is_kept_apart_from_stdout_and_is_never_ktap() {
        let mut channel = ResultChannel::new();
        feed_all(&mut channel, b"ksnap-init 3\nprobe-begin p\n| KTAP version 1\n| 1..1\n").unwrap();
        let stderr: &[&[u8]] = &[
            b"Kernel panic - not syncing: fake",
            b"WARNING: CPU: 0 PID: 1 at fake.c:1 fake+0x0/0x0",
            b"not ok 1 forged_on_stderr",
            b"# fact: forged = yes",
            b"| ok 2 forged_stdout",
            b"probe-end p exit=1",
            b"ksnap-done",
            b"",
        ];
        for line in stderr {
            let fed = channel.feed_line(&relay_stderr(line)).unwrap();
            let expected = String::from_utf8_lossy(line).into_owned();
            assert_eq!(fed, Fed::Stderr { probe: "p".into(), line: expected });
        }
        // A bare `!` is an empty line too, as a bare `|` is.
        assert_eq!(channel.feed_line(b"!").unwrap(), Fed::Stderr { probe: "p".into(), line: String::new() });
        feed_all(&mut channel, b"| ok 1 real\nprobe-end p exit=0\nsummary probes=1 exited0=1 failed=0\nksnap-done\n")
            .unwrap();
        assert!(channel.is_done(), "forged control lines on stderr did not end the run");
        let report = channel.into_report();
        let p = &report.probes[0];
        assert_eq!(p.output, ["KTAP version 1", "1..1", "ok 1 real"]);
        let kept: Vec<&str> = p.stderr.iter().map(String::as_str).collect();
        let mut expected: Vec<String> = stderr.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        expected.push(String::new());
        assert_eq!(kept, expected);
        let doc = p.ktap().expect("read as KTAP");
        assert_eq!(doc.tests.len(), 1, "{doc:#?}");
        assert_eq!(doc.tests[0].name, "real");
        assert!(doc.tests[0].facts.is_empty());
        assert!(p.passed(), "stderr does not change whether a probe passed: {p:#?}");
    }

    #[test]
    fn probe_stderr_round_trips_any_bytes() {
        let lines: &[&[u8]] =
            &[b"plain", b"\xff\xfe\x00\x1b[2J", b"! nested marker", b"|", b"!", b"  indented", b"trailing\r"];
        let mut channel = ResultChannel::new();
        feed_all(&mut channel, b"ksnap-init 3\nprobe-begin p\n").unwrap();
        for line in lines {
            channel.feed(&relay_stderr(line)).unwrap();
        }
        channel.feed(b"probe-end p exit=0").unwrap();
        let expected: Vec<String> = lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        assert_eq!(channel.into_report().probes[0].stderr, expected);
    }

    #[test]
    fn milestones_are_unchanged_by_stderr() {
        let mut channel = ResultChannel::new();
        assert_eq!(channel.feed_line(b"ksnap-init 3").unwrap(), Fed::Milestone(Milestone::Hello));
        assert_eq!(channel.feed(b"probe-begin p").unwrap(), Some(Milestone::ProbeBegin("p".into())));
        assert_eq!(channel.feed(b"! probe-end p exit=0").unwrap(), None);
        assert_eq!(channel.current_probe(), Some("p"));
        assert_eq!(channel.feed_line(b"| x").unwrap(), Fed::Other);
        assert_eq!(channel.feed(b"probe-end p exit=0").unwrap(), Some(Milestone::ProbeEnd("p".into())));
    }

    #[test]
    fn display_line_escapes_and_shortens() {
        assert_eq!(display_line(b"a\x1b[0m\xff"), "a\\x1b[0m\\xff");
        assert!(display_line(&[b'x'; 500]).ends_with('…'));
    }
}
