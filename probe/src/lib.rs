//! Write a ksnap probe in Rust. A probe is a static executable that ksnap's init runs in the guest; what
//! it prints on stdout is KTAP, and its observations are facts (`# fact: KEY = VALUE`), which become the
//! lines of the cell's snapshot. This crate is the writer ([`Ktap`]) and the helpers a probe builds its
//! experiments from: errno and signal names that read the same on every machine, system calls and
//! /proc or sysfs files ([`sys`]), child processes and how they ended ([`child`]), the kernel command
//! line ([`cmdline_param`]).
//!
//! ```no_run
//! use ksnap_probe::Ktap;
//!
//! let mut ktap = Ktap::begin(1);
//! let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
//! ktap.fact("thp.enabled", thp.as_deref().unwrap_or("absent").trim());
//! ktap.ok("thp");
//! ```
//!
//! Build it for the guest as ksnap does for a `cargo = { … }` probe: static, for x86-64
//! (`RUSTFLAGS="-C target-feature=+crt-static" cargo build --target x86_64-unknown-linux-gnu`). Use it
//! as a path or git dependency (`ksnap-probe = { git = "…" }`); it depends only on `libc` and the
//! dependency-free `ksnap-protocol`.
//!
//! What is pure (parsers, formatting) has unit tests that run on the host: `cargo test -p ksnap-probe`.

pub mod child;
pub mod sys;

use std::fmt::{Arguments, Display};
use std::io::Write;

/// Writes a KTAP document to stdout, numbering the results itself.
///
/// Every line is flushed as soon as it is written: a probe may crash or be killed at any point, and
/// what it printed up to then must already be in the pipe to `init`.
///
/// Test names and fact keys are chosen by the probe's author: a bad one is a bug in the probe, and
/// panics (which aborts, in the guest profile) in every build, so that it cannot vanish from a
/// snapshot. Reasons and fact values may come from the system and are made single-line here.
pub struct Ktap {
    next: usize,
    /// Facts written since [`Ktap::hold`], not printed yet.
    held: Option<Vec<String>>,
}

impl Ktap {
    /// Prints the header and the plan: `plan` result lines will follow.
    pub fn begin(plan: usize) -> Self {
        emit(format_args!("KTAP version 1"));
        emit(format_args!("1..{plan}"));
        Ktap { next: 1, held: None }
    }

    /// Keeps the facts written from now on instead of printing them, until [`Ktap::release`] prints them
    /// or [`Ktap::discard`] drops them: for a probe that runs a test again when something that is not the
    /// behaviour under test disturbed it (and so trades the flush-at-once guarantee for that test's facts).
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Prints the facts held since [`Ktap::hold`], in order, and prints facts at once again.
    pub fn release(&mut self) {
        for line in self.held.take().unwrap_or_default() {
            emit(format_args!("{line}"));
        }
    }

    /// Drops the facts held since [`Ktap::hold`], and prints facts at once again.
    pub fn discard(&mut self) {
        self.held = None;
    }

    /// Prints `# fact: KEY = VALUE`, which belongs to the test whose result line comes next.
    ///
    /// # Panics
    ///
    /// If `key` is not a valid fact key (see [`check_fact_key`]), before anything is written.
    pub fn fact(&mut self, key: &str, value: impl Display) {
        if let Err(why) = check_fact_key(key) {
            panic!("ktap: {why}");
        }
        let line = format!("# fact: {key} = {}", one_line(&value.to_string()));
        match &mut self.held {
            Some(held) => held.push(line),
            None => emit(format_args!("{line}")),
        }
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
        // A result ends its test: facts still held belong to it.
        self.release();
        if name.is_empty() || name.contains(['#', '\n', '\r']) {
            panic!("ktap: invalid test name {name:?}");
        }
        emit(format_args!("{status} {} {name}{directive}", self.next));
        self.next += 1;
    }
}

/// Longest fact key, as the C writer (`guest-tests/c/ktap.h`) allows.
pub const MAX_FACT_KEY: usize = 120;

/// A fact key is 1 to [`MAX_FACT_KEY`] bytes of `[a-z0-9_.-]`: what the host's parser (readers/src/ktap.rs)
/// reads as a fact. Anything else would reach the host as a malformed fact line.
pub fn check_fact_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_FACT_KEY
        && key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid fact key {key:?} (1 to {MAX_FACT_KEY} bytes of [a-z0-9_.-])"))
    }
}

/// KTAP is line-based: a value or reason spanning lines would corrupt the document.
pub fn one_line(text: &str) -> String {
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

/// Errno and signal names (`EIO`, `SIGSEGV`) for facts that must read the same on every machine: the
/// protocol's tables, so that probes, init and the host name them alike.
pub use ksnap_protocol::{errno_name, signal_name};

/// The value of kernel parameter `name` (`proc_mem.force_override`) on the running kernel's command line:
/// the last occurrence before `--` (the kernel acts on each in turn, so the last wins; words after `--` are
/// init's arguments). `None` when it is not given.
pub fn cmdline_param(name: &str) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string("/proc/cmdline")?;
    Ok(param_of(&text, name).map(str::to_string))
}

/// [`cmdline_param`] on the text of a command line.
fn param_of<'a>(cmdline: &'a str, name: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .take_while(|&word| word != "--")
        .filter_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_keys() {
        for key in ["a", "a.b-c_1", "size_0064kb.enabled", &"k".repeat(MAX_FACT_KEY)] {
            assert_eq!(check_fact_key(key), Ok(()), "{key:?}");
        }
        for key in ["", "Bad", "a b", "a=b", "a\n", "ключ", "a#", &"k".repeat(MAX_FACT_KEY + 1)] {
            assert!(check_fact_key(key).is_err(), "{key:?}");
        }
    }

    /// The guest profile has no debug assertions: the check must not be one.
    #[test]
    #[should_panic(expected = "ktap: invalid fact key \"mistyped Key\"")]
    fn a_bad_fact_key_panics_in_every_build() {
        // Not `begin`: nothing is written before the check fails.
        let mut ktap = Ktap { next: 1, held: None };
        ktap.fact("mistyped Key", 1);
    }

    #[test]
    #[should_panic(expected = "ktap: invalid test name")]
    fn a_bad_test_name_panics_in_every_build() {
        Ktap { next: 1, held: None }.ok("a # b");
    }

    #[test]
    fn held_facts_wait_and_discarded_ones_are_never_printed() {
        let mut ktap = Ktap { next: 1, held: None };
        ktap.hold();
        ktap.fact("a", "first attempt");
        assert_eq!(ktap.held.as_deref(), Some(&["# fact: a = first attempt".to_string()][..]));
        ktap.discard();
        assert_eq!(ktap.held, None);
        ktap.hold();
        ktap.hold();
        ktap.fact("a", 1);
        ktap.fact("b", 2);
        assert_eq!(ktap.held.as_ref().map(Vec::len), Some(2), "a second hold keeps what the first held");
    }

    #[test]
    fn values_are_made_single_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }

    #[test]
    fn names() {
        assert_eq!(errno_name(libc::EIO), Some("EIO"));
        assert_eq!(errno_name(0), None);
    }

    #[test]
    fn cmdline_params() {
        let cmdline = "console=ttyS0 proc_mem.force_override=never x proc_mem.force_override=ptrace -- \
                       proc_mem.force_override=always\n";
        assert_eq!(param_of(cmdline, "proc_mem.force_override"), Some("ptrace"));
        assert_eq!(param_of(cmdline, "console"), Some("ttyS0"));
        assert_eq!(param_of(cmdline, "x"), None, "a flag has no value");
        assert_eq!(param_of(cmdline, "proc_mem"), None);
        assert_eq!(param_of(cmdline, "mitigations"), None);
    }
}
