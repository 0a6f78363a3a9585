//! What one kernel selftest binary printed, read into per-case results.
//!
//! ksnap runs the kernel's own selftests (`tools/testing/selftests/mm`, `proc`, …) as probes, one
//! binary per probe, straight from init rather than through kselftest's runner. A binary prints
//! "TAP version 13" the way `kselftest.h` and `kselftest_harness.h` write it, which is loose: text
//! before the version line or no version line at all, messages without their newline, the case's
//! name in a `# [RUN]` line rather than on its result line, colour escapes. [`parse`] takes the
//! binary's stdout and how it ended and gives a [`SelftestReport`]: the binary's result, one
//! [`SelftestCase`] per test case under a key that stays the same across runs and kernels, and the
//! problems the parser had to work around. Like [`crate::ktap`] it rejects nothing and panics on no
//! input: the guest is untrusted.
//!
//! # What is read
//!
//! - Result lines `ok N DESCRIPTION # DIRECTIVE REASON` and `not ok …`. The directives are `SKIP`,
//!   `XFAIL`, `XPASS`, `TODO`, `ERROR` and `TIMEOUT`, in any case (`kselftest.h` itself writes
//!   `# error`); a word that merely starts like one (`# Error: …`) is not one. A `#` that starts no
//!   directive starts a comment, which is kept with the case but is neither key nor value. A result
//!   without a number takes the next one. A line that starts like a result but is not one (`ok 1abc`,
//!   `ok then`) is a problem.
//! - The plan `1..N`; `1..0 # SKIP REASON` skips the whole binary.
//! - Lines that name the case a result belongs to, its *context*: `# [RUN] NAME` (cow,
//!   ksm_functional_tests, gup_longterm, madv_populate, uffd-wp-mremap), `# Run test: NAME`
//!   (khugepaged), kselftest_harness's `#  RUN  FIXTURE.TEST ...`, and the old uffd-unit-tests'
//!   `Testing NAME... ` each name the results after them up to the next such line; `# [INFO] NAME`
//!   (mkdirty) names only the next result, and only while no line of the first kind is in force
//!   (cow prints `[INFO]` section titles between its `[RUN]` lines). Context lines before the plan
//!   are not contexts: they are what the binary detected (`[INFO] detected THP size: 2048 KiB`).
//! - The old uffd-unit-tests format, `Testing NAME... done`, `... skipped [reason: R]`, `... failed
//!   [reason: R]` (the verdict may come on a later line), as results.
//! - Output with no TAP at all (no version, plan or result line): khugepaged's older step lines,
//!   `STEP... OK` / `Fail` / `Timeout` / `Skip`, colour escapes removed, as results. In TAP output they
//!   are only diagnostics, since the TAP result of the test follows them.
//! - x86-style status lines without `#` and without TAP (the x86 and vDSO selftests): `[OK]`,
//!   `[FAIL]`, `[SKIP]` are counted, not cut into cases (a `[RUN]` may have several, their texts
//!   change with the outcome). Only `[SKIP]` lines and an exit of 0, 1 or 4 (test_shadow_stack
//!   returns 1 after `[SKIP]\tCould not enable Shadow stack`) make the binary a skip with the first
//!   one's reason; otherwise the binary is its exit and a problem says what was not split.
//! - A second `TAP version` after the plan or a result: a program the test exec'd printing TAP of
//!   its own. Its lines, up to the `# Totals:` it prints as it exits (or its first result beyond its
//!   own plan), are diagnostics of the parent's next case, so that its numbers and `[RUN]` lines do
//!   not take the parent's result away from its case.
//! - `Bail out! REASON` (`ksft_exit_fail_msg`): kept as [`SelftestReport::bail_out`] when only
//!   diagnostics follow it, and in the value of the cases it left unreported. `kselftest.h` also
//!   prints it after the last result when some failed (`Bail out! 2 out of 6 tests failed`). When
//!   results follow it, it was a forked child's exit (kselftest_harness runs every test in a child;
//!   khugepaged forks too): it is then a diagnostic of the next case and not the end.
//! - Indented result lines (TAP 14 subtests) belong to the next result line that is less indented:
//!   they become cases keyed `PARENT__SUB`; their own plans are not the binary's.
//! - Anything else — `# Totals:`, `# Planned tests != run tests`, `# PASSED: N / M`, harness
//!   `#  OK  name` lines, free text — carries no result and is ignored.
//!
//! A carriage return ends a line, as a newline does (a progress line redrawn in place is as many
//! lines as it was drawn; `\r`-only line ends are line ends). Colour escapes and control characters
//! are removed from every line first. A missing newline glues
//! two lines together (`not ok 5 Merging memory failed# [RUN] test_prctl`, `…skippedBail out!`): a
//! line is cut in front of every marker that never occurs inside a description (`# [RUN] `,
//! `# [INFO] `, `# Run test: `, `#  RUN `, `Bail out!`, `TAP version `, `# Totals: `, `# Planned
//! tests`, `# PASSED: `, `# FAILED: `), and each cut is a problem. A result glued to the result
//! before it is not cut (`ok 6` can be part of a description such as `it took 6 ms`): its case shows
//! as missing instead.
//!
//! # Keys
//!
//! A key goes into a `KEY = VALUE` snapshot line and into dotted fact keys, so it is made of
//! `[a-z0-9_-]`, at most [`MAX_KEY_LEN`] bytes ([`case_key`]): the text is masked (below), lower-cased,
//! and cut into runs of ASCII letters and digits; a single `-` between two runs stays (`wp-fork`,
//! `hugetlb-private`), any other run of other characters becomes one `_`, and the ends are trimmed. A
//! longer key keeps its first bytes and ends in `-` and 8 hex digits of the FNV-1a hash of the whole,
//! so that it stays unique and the same from run to run.
//!
//! What the key is made of, in order:
//! 1. the context, when the result has one and is its context's only result: ksm_functional_tests'
//!    `# [RUN] test_unmerge` / `ok 1 Pages were unmerged` is `test_unmerge`, mkdirty's
//!    `# [INFO] PTRACE write access` / `ok 1 SIGSEGV generated, page not modified` is
//!    `ptrace_write_access`. Such a test's description is its verdict, and it changes with the
//!    outcome (`not ok 1 write() failed`, `not ok 5 ptrace write failed`), so it must not be part of
//!    the key;
//! 2. the context and the description joined by `__` when the context has several results
//!    (madv_populate's `test_holes__madv_populate_read_with_holes_in_the_middle`), or the context
//!    alone if the description says the same or is its first words (khugepaged's `# Run test: collapse_full
//!    (khugepaged:anon)` / `ok 2 collapse_full` is `collapse_full_khugepaged_anon`);
//! 3. the description alone when there is no context (kselftest_harness names, `UFFDIO_API (with
//!    syscall)`);
//! 4. for `ok N # SKIP MESSAGE` with no description (how `ksft_test_result_skip` and
//!    `ksft_exit_skip` print), MESSAGE: under a context it is the reason (uffd-wp-mremap's `# [RUN]
//!    test_one_folio(…)` / `ok 4 # SKIP MADV_PAGEOUT did not work, is swap enabled?`), unless it repeats
//!    the context (cow's skips repeat their `[RUN]` line), when the reason is the last diagnostic line
//!    before the result. With no context MESSAGE is both name and reason; a trailing `(REASON)`
//!    not starting with a digit (uffd-unit-tests' `wp-fork-pin on anon (Possibly CONFIG_GUP_TEST
//!    missing or unprivileged)`) or a `NAME: REASON` form whose NAME is one word (mseal_test's
//!    `test_seal_discard_ro_anon_on_pkey: line:1669`) is split off as the reason, so that a case keeps
//!    its key whether it passes or is skipped. The same holds for the other directives;
//! 5. `case-N` when all of that is empty.
//!
//! A directive message that is the case's only name and its reason too (`ok 3 # SKIP hugetlb not
//! available`, no `NAME (REASON)` or `NAME: REASON` form) names no case when several results print
//! it: each of them is `case-N`, N its TAP number, so that one of them passing (and printing its
//! name) leaves the others' keys alone.
//!
//! Results whose keys are still equal are told apart by `-2`, `-3`, … in output order. That is no
//! problem for kselftest.h descriptions (mseal_test and va_high_addr_switch print the same one twice
//! by design) but is one for kselftest_harness names, which are unique, so a repeat means repeated
//! output. A result line repeated verbatim under a number already seen (a forked child flushing a copy
//! of its parent's buffered output) is counted once, with a problem; the same number with another text
//! is a problem and both are kept.
//!
//! # Masking
//!
//! Before keys and reasons are built ([`mask`]): `0x` and 5 or more hex digits, and runs of 8 or more
//! hex digits with both letters and digits, become `ADDR`; a number becomes `N` when it has 10 or more
//! digits (seeds, timestamps, addresses in decimal), follows `pid`, `tid`, `ppid`, `pgid` or `seed`
//! (after spaces, `=`, `:` or `#`), carries a time unit (`12 ms`, `3.2s`, `222374ns`, `(0.123 s)`:
//! ns, us, ms, s, sec, secs, second(s), nsec, usec, msec), follows a phrase known to print a
//! run-to-run amount (mrelease_test's `reaping a child with 1MB`), stands in a text that contains a
//! percentage (pagemap_ioctl's `Extra pages 1 (0.0%), extra thread faults 1.`, a measurement), or
//! stands in parentheses holding only numbers related by `of`, `vs` or `/` (pagemap_ioctl's `(16, 0
//! of 16)`: what the test measured, which turns into `(16, 16 of 16)` when the kernel is fixed and
//! must not move the case to another key). Other numbers are kept: `(2048 kB)`, `(22)`,
//! `size=2097152` and `line:1669` name cases.
//!
//! # Values
//!
//! [`CaseResult`]'s `Display` is the snapshot value, short, lower-case and the same from run to run:
//! `ok`, `not ok`, `skip: REASON`, `xfail: REASON`, `xpass`, `todo: REASON`, `error: REASON`,
//! `timeout`, `exit 139`, `killed by signal 11 (SIGSEGV)`, `missing: …`. A failure carries no text:
//! what a failing test prints is for a person ([`SelftestCase::diagnostics`]). Reasons are masked and
//! cut to [`MAX_REASON_CHARS`].
//!
//! The binary's result comes from how it ended: exit 0 `ok`, 1 `not ok`, 2 `xfail`, 3 `xpass`, 4
//! `skip` (with the plan's `# SKIP` reason, or else the reason of its last case if that was a skip:
//! `ksft_exit_skip` after the plan prints it as one), another code `exit N`, a signal, the timeout.
//! Output whose cases are khugepaged-style steps is the exception: that khugepaged exits with its
//! number of failed steps, so any other exit than 0 is `not ok` (exit 4 is four failures), and a
//! count that does not match the failed steps is a problem. x86-style `[SKIP]` output is the other
//! (see *What is read*).
//! A `1..0 # SKIP` plan makes exit 0 a skip too. A binary that prints nothing (all of selftests/proc)
//! has no cases and no problems: its result is all there is.
//!
//! # Cases that never reported
//!
//! Nothing planned is dropped. When the output ends inside a context with no result and planned
//! cases are missing (or, with no plan, the binary did not exit 0), the binary ended inside that case:
//! it becomes a case ([`CaseResult::NotRun`]) `missing: no result (END)`, END being `killed by signal
//! 6 (SIGABRT)`, `exit 1`, `timeout`, `bailed out: REASON`, …. Planned cases left over after that
//! become one case keyed [`MISSING_KEY`] (`missing-2` should a case of the binary be called that):
//! but a skip numbered one past the next number, as the last result of a binary that exited 4, is
//! that next case (`kselftest.h`'s `ksft_exit_skip` counted the skip twice before it was fixed:
//! `1..1` then `ok 2 # SKIP …`), not a gap and a planned case missing.
//! `missing: 11 of 26 planned (bailed out: Failed to allocate huge page)`. A context in the middle that named no result is not a case: it is a heading (cow
//! prints `[RUN] Non-anonymous memory tests in private mappings` before the cases of that section),
//! or a case whose result never came, which the plan's count then shows as missing.
//!
//! # Problems
//!
//! Sentences about the output as a whole (the snapshot's `(tap)` fact): what had to be worked around
//! or could not be read — cut glued lines, lines that look like results but are not, repeated or
//! out-of-order numbers, results beyond the plan, a second plan, an exec'd program's TAP, repeated
//! harness names, indented results with no parent, TAP output with no plan, a skip plan with a
//! failing exit, output not split into cases (x86 status lines, free text), a khugepaged exit that is
//! not its count of failed steps, cases over [`MAX_CASES`] — and what the output says that no case
//! says: `bailed out: REASON` when no `missing` value carries the reason (a bail-out before the plan,
//! or after the last case; not the `N out of M tests failed` many mm tests print after their
//! cases), and a `TAP version` with no plan and no result (nothing ran, whatever the exit). At most
//! [`MAX_PROBLEMS`] are kept, then one sentence counts the rest.
//!
//! # Bounds
//!
//! Work and memory grow linearly with the input; cases are capped at [`MAX_CASES`], keys at
//! [`MAX_KEY_LEN`], reasons at [`MAX_REASON_CHARS`], descriptions at [`MAX_DESCRIPTION_CHARS`] and a
//! case's diagnostics at [`MAX_CASE_DIAGNOSTICS`] lines.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::tap::{self, quote_shortened, Dialect, Directive, Problems, ResultLine, TapLine};
use ksnap_protocol::ProbeEnd;

/// Most problems reported one by one; the rest are counted in a final sentence.
pub const MAX_PROBLEMS: usize = tap::MAX_PROBLEMS;
/// Most cases kept, the synthetic ones ([`CaseResult::NotRun`]) included; the rest are counted in a problem.
pub const MAX_CASES: usize = 4096;
/// Longest key, in bytes (keys are ASCII).
pub const MAX_KEY_LEN: usize = 100;
/// Longest reason in a value, in characters, `…` included.
pub const MAX_REASON_CHARS: usize = 100;
/// Longest [`SelftestCase::description`] or diagnostic line, in characters, `…` included.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Most diagnostic lines kept with one case: the last ones before its result.
pub const MAX_CASE_DIAGNOSTICS: usize = 8;
/// The key of the case that stands for the planned cases no line names ([`CaseResult::NotRun`]).
pub const MISSING_KEY: &str = "missing";

/// Everything one selftest binary reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelftestReport {
    /// The whole binary's result, from how it ended (see the module docs).
    pub binary: CaseResult,
    /// Per test case, in output order, each with a key unique within the binary.
    pub cases: Vec<SelftestCase>,
    /// N from the plan `1..N`, if one was printed.
    pub plan: Option<u64>,
    /// The reason of the `Bail out!` line that ended the output (nothing but diagnostics after it),
    /// masked and shortened.
    pub bail_out: Option<String>,
    /// What the parser had to work around or could not read, and what the output says that no case
    /// says (see the module docs), one sentence each.
    pub problems: Vec<String>,
}

/// One test case of a selftest binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelftestCase {
    /// Stable, unique within the binary, `[a-z0-9_-]` (see the module docs).
    pub key: String,
    /// What its result line said; [`CaseResult::NotRun`] for a case that never reported.
    pub result: CaseResult,
    /// The TAP test number (implicit for a result printed without one); `None` for a case no result
    /// line reported and for the old uffd-unit-tests and khugepaged formats.
    pub number: Option<u64>,
    /// What the result line said (the directive's message when it has no description), masked and
    /// shortened: for a person, neither key nor value.
    pub description: String,
    /// The diagnostic lines (`# …`, without the `#`) between the previous result and this one, masked
    /// and shortened, the last [`MAX_CASE_DIAGNOSTICS`] of them, then the comment of the result line.
    pub diagnostics: Vec<String>,
}

/// The result of a case, or of the whole binary. `Display` is the snapshot value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CaseResult {
    /// `ok`; exit 0.
    Pass,
    /// `not ok`; exit 1.
    Fail,
    /// `# SKIP`; exit 4.
    Skip {
        /// The directive's reason, masked and cut to [`MAX_REASON_CHARS`]; empty if none was given.
        reason: String,
    },
    /// `# XFAIL`: failed as expected; exit 2.
    Xfail {
        /// The directive's reason, masked and cut to [`MAX_REASON_CHARS`]; empty if none was given.
        reason: String,
    },
    /// `# XPASS`: passed although expected to fail; exit 3.
    Xpass,
    /// `# TODO`: known broken.
    Todo {
        /// The directive's reason, masked and cut to [`MAX_REASON_CHARS`]; empty if none was given.
        reason: String,
    },
    /// `# ERROR`: the test could not run.
    Error {
        /// The directive's reason, masked and cut to [`MAX_REASON_CHARS`]; empty if none was given.
        reason: String,
    },
    /// `# TIMEOUT` (no duration), or init killed the binary at its timeout.
    Timeout {
        /// The binary's timeout in milliseconds when init killed it; `None` for a `# TIMEOUT` directive.
        ms: Option<u64>,
    },
    /// The binary exited with a code kselftest gives no meaning.
    Exit {
        /// The exit code: anything but kselftest's 0 to 4.
        code: i32,
    },
    /// The binary was killed by a signal.
    Signaled {
        /// The signal's number, e.g. 11 for SIGSEGV.
        signal: i32,
    },
    /// The binary could not be started (the errno init reported).
    SpawnError {
        /// The errno's name (`ENOENT`), or its number, cleaned and cut to 40 characters.
        errno: String,
    },
    /// A case that was started or planned and never reported, and why (see the module docs).
    NotRun {
        /// `no result (END)` for the case the binary ended in, `M of N planned (END)` for the unnamed rest.
        why: String,
    },
}

impl CaseResult {
    /// Whether this means something went wrong. Skips, expected failures and TODOs do not; an
    /// unexpected pass does, as in kselftest (`ksft_finished` counts only pass, xfail and skip).
    pub fn is_failure(&self) -> bool {
        !matches!(self, CaseResult::Pass | CaseResult::Skip { .. } | CaseResult::Xfail { .. } | CaseResult::Todo { .. })
    }
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use tap::with_reason;
        match self {
            CaseResult::Pass => f.write_str("ok"),
            CaseResult::Fail => f.write_str("not ok"),
            CaseResult::Skip { reason } => with_reason(f, "skip", reason),
            CaseResult::Xfail { reason } => with_reason(f, "xfail", reason),
            CaseResult::Xpass => f.write_str("xpass"),
            CaseResult::Todo { reason } => with_reason(f, "todo", reason),
            CaseResult::Error { reason } => with_reason(f, "error", reason),
            // The duration is the configured timeout, not something the kernel did.
            CaseResult::Timeout { .. } => f.write_str("timeout"),
            CaseResult::Exit { code } => write!(f, "exit {code}"),
            CaseResult::Signaled { signal } => write!(f, "{}", ProbeEnd::Signaled(*signal)),
            CaseResult::SpawnError { errno } => write!(f, "could not be started ({errno})"),
            CaseResult::NotRun { why } => write!(f, "missing: {why}"),
        }
    }
}

/// Reads what one selftest binary printed on stdout (`stdout`, one line each, decoded lossily) and how
/// it ended.
pub fn parse(stdout: &[String], end: &ProbeEnd) -> SelftestReport {
    let cleaned = split_carriage_returns(stdout);
    let mut problems = Problems::default();
    let entries = split_and_classify(&cleaned, &mut problems);
    let tap = entries.iter().any(|e| matches!(e.class, Class::Version | Class::Plan { .. } | Class::Result(_)));
    let root_indent = entries
        .iter()
        .find(|e| matches!(e.class, Class::Version | Class::Plan { .. } | Class::Result(_)))
        .map_or(0, |e| e.indent);
    let mut parser = Parser::new(problems, !tap, root_indent);
    for entry in &entries {
        parser.entry(entry);
    }
    parser.finish(end, tap)
}

/// The key [`parse`] makes of `text`: masked ([`mask`]), lower-cased, `[a-z0-9_-]`, at most
/// [`MAX_KEY_LEN`] bytes; empty when the text has no ASCII letter or digit.
pub fn case_key(text: &str) -> String {
    cap_key(normalize(&mask(text)))
}

/// `text` with what varies from run to run replaced (see the module docs): addresses and long hex by
/// `ADDR`, pids, seeds, timings, long numbers, known run-to-run amounts and the numbers of a text with
/// a percentage by `N`.
pub fn mask(text: &str) -> String {
    let bytes = text.as_bytes();
    let percent = bytes.windows(2).any(|w| w[0].is_ascii_digit() && w[1] == b'%');
    let mut out = String::with_capacity(text.len());
    // A number right after `pid`, `seed`… (only separators in between) is masked.
    let mut after_id_word = false;
    let mut i = 0;
    while i < bytes.len() {
        let at_word = bytes[i].is_ascii_alphanumeric() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if bytes[i] == b'(' {
            if let Some(end) = measurement_end(bytes, i) {
                // Only ASCII digits, spaces, `,`, `/` and letters: a str slice on character boundaries.
                for piece in text[i..end].split_inclusive(|c: char| !c.is_ascii_digit()) {
                    let digits = piece.trim_end_matches(|c: char| !c.is_ascii_digit());
                    if digits.is_empty() {
                        out.push_str(piece);
                    } else {
                        out.push('N');
                        out.push_str(&piece[digits.len()..]);
                    }
                }
                i = end;
                after_id_word = false;
                continue;
            }
        }
        if !at_word {
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            if !matches!(bytes[i], b' ' | b'=' | b':' | b'#' | b'\t') {
                after_id_word = false;
            }
            out.push_str(&text[i..i + len]);
            i += len;
            continue;
        }
        let word_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        let word = &text[i..word_end];
        if is_address(word) {
            out.push_str("ADDR");
            i = word_end;
            after_id_word = false;
            continue;
        }
        if bytes[i].is_ascii_digit() {
            let number_end = number_end(bytes, i);
            let masked = percent
                || after_id_word
                || number_end - i >= 10 && bytes[i..number_end].iter().all(u8::is_ascii_digit)
                || has_time_unit(bytes, number_end)
                || KNOWN_VARIABLE_AMOUNTS.iter().any(|phrase| out.ends_with(phrase));
            if masked {
                out.push('N');
            } else {
                out.push_str(&text[i..number_end]);
            }
            // What follows the number (a glued unit such as `ns`) is copied as it is: it does not
            // start a word.
            i = number_end;
            after_id_word = false;
            continue;
        }
        after_id_word = ["pid", "tid", "ppid", "pgid", "seed"].iter().any(|w| word.eq_ignore_ascii_case(w));
        out.push_str(word);
        i = word_end;
    }
    out
}

/// The end (after its `)`) of a measurement in parentheses starting at `start`: two or more numbers
/// related by `of`, `vs` or `/`, with nothing else than spaces and commas (pagemap_ioctl's `(16, 0 of
/// 16)`: pages found, out of pages mapped). What such a group counts is the test's result, which must
/// stay out of the key; `(2048 kB)`, `(22)` or `(size=4096, …)` name the case and are not one.
fn measurement_end(bytes: &[u8], start: usize) -> Option<usize> {
    const LONGEST: usize = 64;
    let close = start + 1 + bytes[start + 1..].iter().take(LONGEST).position(|&b| b == b')')?;
    let inside = std::str::from_utf8(&bytes[start + 1..close]).ok()?;
    let mut numbers = 0;
    let mut related = inside.contains('/');
    for word in inside.split([' ', ',', '/']).filter(|w| !w.is_empty()) {
        if word.bytes().all(|b| b.is_ascii_digit()) {
            numbers += 1;
        } else if matches!(word, "of" | "vs") {
            related = true;
        } else {
            return None;
        }
    }
    (numbers >= 2 && related).then_some(close + 1)
}

/// Phrases followed by an amount that changes from run to run although the case is the same.
/// mrelease_test retries with more memory until the reaping works: `Success reaping a child with 1MB of
/// memory allocations`, `… with 2MB …`.
const KNOWN_VARIABLE_AMOUNTS: &[&str] = &["reaping a child with "];

const TIME_UNITS: &[&str] =
    &["ns", "us", "ms", "s", "sec", "secs", "second", "seconds", "nsec", "nsecs", "usec", "usecs", "msec", "msecs"];

/// `0x` and 5+ hex digits, or 8+ hex digits with letters and digits both (`7ffff7ff4000`).
fn is_address(word: &str) -> bool {
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return hex.len() >= 5 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    word.len() >= 8
        && word.bytes().all(|b| b.is_ascii_hexdigit())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The end of the number starting at `start`: digits, then `.` and digits.
fn number_end(bytes: &[u8], start: usize) -> usize {
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int_end = start + digits(start);
    if bytes.get(int_end) == Some(&b'.') && bytes.get(int_end + 1).is_some_and(u8::is_ascii_digit) {
        int_end + 1 + digits(int_end + 1)
    } else {
        int_end
    }
}

/// Whether a time unit follows a number ending at `at`, glued (`3.2s`) or after one space (`12 ms`),
/// as a whole word.
fn has_time_unit(bytes: &[u8], at: usize) -> bool {
    let start = if bytes.get(at) == Some(&b' ') { at + 1 } else { at };
    let end = start + bytes[start.min(bytes.len())..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if end == start || bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return false;
    }
    // ASCII letters only, so this is a str slice on character boundaries.
    let unit = std::str::from_utf8(&bytes[start..end]).unwrap_or("");
    TIME_UNITS.contains(&unit)
}

/// Lower-cased runs of ASCII letters and digits; a lone `-` between two runs stays, any other gap is one `_`.
fn normalize(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    let mut gap = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if !key.is_empty() && !gap.is_empty() {
                key.push(if gap == "-" { '-' } else { '_' });
            }
            gap.clear();
            key.push(c.to_ascii_lowercase());
        } else if gap.len() < 2 {
            // Only whether the gap is exactly `-` matters.
            gap.push(c);
        }
    }
    key
}

/// `key` cut to [`MAX_KEY_LEN`] bytes, a hash of the whole at the end so that cut keys stay apart.
fn cap_key(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let hash = fnv1a(key.as_bytes());
    // Keys are ASCII: any byte index is a character boundary.
    let head = key[..MAX_KEY_LEN - 9].trim_end_matches(['_', '-']);
    format!("{head}-{:08x}", hash as u32 ^ (hash >> 32) as u32)
}

/// FNV-1a, 64 bits: small, and the same on every build (std's hasher is not promised to be).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Two keys as one: `CONTEXT__DESCRIPTION` (`__` never occurs inside a key of one text).
fn join_keys(context: &str, rest: &str) -> String {
    cap_key(format!("{context}__{rest}"))
}

/// Masked, whitespace collapsed, cut to `max` characters (the last one `…` if cut): for a reason or a
/// description.
fn tidy(text: &str, max: usize) -> String {
    let collapsed = mask(text).split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if collapsed[cut..].chars().nth(1).is_some() => format!("{}…", &collapsed[..cut]),
        _ => collapsed,
    }
}

/// Every line cut at its carriage returns, each piece cleaned ([`clean_line`]) and numbered with its
/// line. A `\r` ends what it overwrote: a progress line redrawn in place is as many lines as it was
/// drawn, and output whose lines end in `\r` alone is read line by line. The empty piece after a
/// `\r\n` ending is dropped.
fn split_carriage_returns(stdout: &[String]) -> Vec<(usize, String)> {
    let mut lines = Vec::with_capacity(stdout.len());
    for (index, line) in stdout.iter().enumerate() {
        for (piece_index, piece) in line.split('\r').enumerate() {
            if piece_index == 0 || !piece.is_empty() {
                lines.push((index + 1, clean_line(piece)));
            }
        }
    }
    lines
}

/// A line without colour escapes (`ESC [ … letter`, and other `ESC x` pairs), control characters
/// (tabs aside) and trailing whitespace.
fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next_if_eq(&'[').is_some() {
                // Parameters and intermediates, then one final byte in `@`..=`~`.
                while chars.next_if(|c| matches!(c, '\u{20}'..='\u{3f}')).is_some() {}
                chars.next_if(|c| matches!(c, '\u{40}'..='\u{7e}'));
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Markers that start a line of their own wherever they appear: none of them occurs inside a
/// description, so a line that holds one after other text lost a newline.
const GLUE_MARKERS: &[&str] = &[
    "# [RUN] ",
    "# [INFO] ",
    "# Run test: ",
    "#  RUN ",
    "Bail out!",
    "TAP version ",
    "KTAP version ",
    "# Totals: ",
    "# Planned tests != run tests",
    "# PASSED: ",
    "# FAILED: ",
];

/// One line (or one piece of a glued line) and what it is.
#[derive(Debug)]
struct Entry<'a> {
    /// Line number in the output, from 1.
    line: usize,
    indent: usize,
    /// The piece itself, for when it is only a diagnostic (an exec'd program's output).
    text: &'a str,
    class: Class<'a>,
}

#[derive(Debug)]
enum Class<'a> {
    Blank,
    Version,
    Plan {
        /// `None`: too large to read.
        count: Option<u64>,
        comment: Option<&'a str>,
    },
    Result(ResultLine<'a>),
    /// Starts like a result line but is not one: the whole line.
    NotAResult(&'a str),
    BailOut(&'a str),
    /// A context that names the results after it, up to the next one.
    Start {
        kind: StartKind,
        name: &'a str,
    },
    /// `# [INFO] NAME`.
    Info(&'a str),
    /// The old uffd-unit-tests' `Testing NAME... [VERDICT]`.
    UffdStart {
        name: &'a str,
        verdict: Option<Verdict<'a>>,
    },
    /// `done`, `skipped [reason: R]`, `failed …` on a line of its own (an old uffd-unit-tests verdict,
    /// if one is awaited).
    UffdVerdict(Verdict<'a>, &'a str),
    /// `STEP... OK|Fail|Skip`, with `#` or without: khugepaged's steps.
    Step {
        text: &'a str,
        verdict: Verdict<'a>,
        /// The whole line, for when it is a diagnostic.
        diagnostic: Option<&'a str>,
    },
    /// `OK`, `Fail: …` alone: a step verdict whose text ended the line before.
    StepVerdict(Verdict<'a>, &'a str),
    /// Summary lines that carry nothing: `# PASSED:`, harness `#  OK  name`, ….
    Summary,
    /// `# Totals: …`, which `kselftest.h` prints as a program exits: the end of an exec'd program's
    /// output too.
    Totals,
    /// An x86-style status line without `#`: `[OK]`, `[FAIL]`, `[SKIP]` and the text after it
    /// (`[RUN]`, `[INFO]`, `[WARN]` are [`Class::Text`]).
    Status(Status, &'a str),
    Diagnostic(&'a str),
    Text(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartKind {
    /// `# [RUN] NAME`
    Run,
    /// `# Run test: NAME`
    RunTest,
    /// kselftest_harness `#  RUN  NAME ...`
    Harness,
    /// `Testing NAME... `
    Uffd,
}

/// The verdict of an x86-style status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Copy)]
enum Verdict<'a> {
    Pass,
    Fail,
    Skip(&'a str),
}

/// Cuts glued lines apart and classifies every piece.
fn split_and_classify<'a>(lines: &'a [(usize, String)], problems: &mut Problems) -> Vec<Entry<'a>> {
    let mut entries = Vec::with_capacity(lines.len());
    for (number, line) in lines {
        let number = *number;
        let body = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - body.len();
        // Every marker after the first character is a cut (found once per line: linear in its length).
        let mut cuts: Vec<(usize, &str)> = GLUE_MARKERS
            .iter()
            .flat_map(|marker| body.match_indices(marker).filter(|&(at, _)| at > 0))
            // `TAP version` inside `KTAP version` is the same marker.
            .filter(|&(at, marker)| !(marker == "TAP version " && body.as_bytes()[at - 1] == b'K'))
            .collect();
        cuts.sort_unstable();
        cuts.dedup_by_key(|&mut (at, _)| at);
        let mut start = 0;
        for &(at, marker) in &cuts {
            let text = body[start..at].trim_end();
            entries.push(Entry { line: number, indent, text, class: classify(text) });
            problems.push(format!(
                "line {number}: `{}` is glued to the text before it (a missing newline); read as two lines",
                marker.trim_end()
            ));
            start = at;
        }
        let text = body[start..].trim_end();
        entries.push(Entry { line: number, indent, text, class: classify(text) });
    }
    entries
}

fn classify(body: &str) -> Class<'_> {
    match tap::lex(body, Dialect::Kselftest) {
        TapLine::Blank => return Class::Blank,
        TapLine::Version(_) => return Class::Version,
        TapLine::BailOut(reason) => return Class::BailOut(reason),
        TapLine::Hash(text) => return classify_diagnostic(text),
        TapLine::Plan { count, comment } => return Class::Plan { count, comment },
        TapLine::Result(result) => return Class::Result(result),
        TapLine::NotAResult => return Class::NotAResult(body),
        TapLine::Other => {}
    }
    if let Some(name) = body.strip_prefix("Run test: ") {
        return Class::Start { kind: StartKind::RunTest, name: name.trim() };
    }
    if let Some(rest) = body.strip_prefix("Testing ") {
        if let Some((name, verdict)) = rest.split_once("...") {
            let name = name.trim();
            if !name.is_empty() {
                return Class::UffdStart { name, verdict: uffd_verdict(verdict.trim()) };
            }
        }
    }
    if let Some(verdict) = uffd_verdict(body) {
        return Class::UffdVerdict(verdict, body);
    }
    if body.starts_with("Userfaults unit tests:") {
        return Class::Summary;
    }
    if let Some((status, text)) = parse_status(body) {
        return Class::Status(status, text);
    }
    if let Some((text, verdict)) = parse_step(body) {
        return Class::Step { text, verdict, diagnostic: None };
    }
    if let Some(verdict) = step_verdict(body) {
        return Class::StepVerdict(verdict, body);
    }
    Class::Text(body)
}

/// A line after its `#`.
fn classify_diagnostic(text: &str) -> Class<'_> {
    let trimmed = text.trim();
    if let Some(name) = trimmed.strip_prefix("[RUN]") {
        return Class::Start { kind: StartKind::Run, name: name.trim() };
    }
    if let Some(name) = trimmed.strip_prefix("[INFO]") {
        return Class::Info(name.trim());
    }
    if let Some(name) = trimmed.strip_prefix("Run test:") {
        return Class::Start { kind: StartKind::RunTest, name: name.trim() };
    }
    // kselftest_harness aligns its status words behind `#` and at least one space.
    if text.starts_with(' ') {
        if let Some(name) = trimmed.strip_prefix("RUN ").and_then(|rest| rest.strip_suffix("...")) {
            return Class::Start { kind: StartKind::Harness, name: name.trim() };
        }
        let word = trimmed.split_whitespace().next().unwrap_or("");
        if text.starts_with("  ") && matches!(word, "OK" | "FAIL" | "SKIP" | "XFAIL" | "XPASS" | "TIMEOUT") {
            return Class::Summary;
        }
    }
    if trimmed.starts_with("Totals:") {
        return Class::Totals;
    }
    let summary = ["Planned tests != run tests", "PASSED:", "FAILED:", "Starting "]
        .iter()
        .any(|prefix| trimmed.starts_with(prefix))
        || trimmed
            .ends_with("skipped test(s) detected. Consider enabling relevant config options to improve coverage.");
    if summary {
        return Class::Summary;
    }
    if let Some((step, verdict)) = parse_step(trimmed) {
        return Class::Step { text: step, verdict, diagnostic: Some(trimmed) };
    }
    Class::Diagnostic(trimmed)
}

/// x86's `[OK]\tTEXT`, `[FAIL]\tTEXT`, `[SKIP]\tTEXT` (the x86 and vDSO selftests print these without
/// `#` and without TAP).
fn parse_status(body: &str) -> Option<(Status, &str)> {
    let (word, text) = body.strip_prefix('[')?.split_once(']')?;
    let status = match word {
        "OK" => Status::Ok,
        "FAIL" => Status::Fail,
        "SKIP" => Status::Skip,
        _ => return None,
    };
    Some((status, text.trim()))
}

/// The old uffd-unit-tests' verdicts: `done`, `skipped [reason: R]`, `failed [reason: R]`.
fn uffd_verdict(text: &str) -> Option<Verdict<'_>> {
    if text == "done" {
        Some(Verdict::Pass)
    } else if let Some(rest) = text.strip_prefix("skipped") {
        (rest.is_empty() || rest.starts_with(' ')).then(|| Verdict::Skip(bracketed_reason(rest)))
    } else if let Some(rest) = text.strip_prefix("failed") {
        (rest.is_empty() || rest.starts_with(' ')).then_some(Verdict::Fail)
    } else {
        None
    }
}

/// `[reason: R]` → `R`; anything else as it is.
fn bracketed_reason(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("[reason:").and_then(|r| r.strip_suffix(']')).map_or(text, str::trim)
}

/// khugepaged's `STEP... OK` (`Fail: REASON`, `Skip`): the step's text and its verdict.
fn parse_step(text: &str) -> Option<(&str, Verdict<'_>)> {
    let dots = text.rfind("...")?;
    let verdict = step_verdict(text[dots + 3..].trim_start_matches('.').trim())?;
    let step = text[..dots].trim_end_matches('.').trim();
    (!step.is_empty()).then_some((step, verdict))
}

/// `OK`, `Fail[: REASON]`, `Skip[: REASON]`, any case.
fn step_verdict(text: &str) -> Option<Verdict<'_>> {
    let (word, reason) = match text.split_once(':') {
        Some((word, reason)) => (word.trim(), reason.trim()),
        None => (text.trim(), ""),
    };
    match word.to_ascii_lowercase().as_str() {
        "ok" if reason.is_empty() => Some(Verdict::Pass),
        // khugepaged's `fail("Timeout")` is a failed step like `fail("Fail")`.
        "fail" | "failed" | "timeout" => Some(Verdict::Fail),
        "skip" | "skipped" => Some(Verdict::Skip(reason)),
        _ => None,
    }
}

/// A context in force: the start line and how many results it named.
#[derive(Debug)]
struct Group {
    kind: StartKind,
    /// Masked.
    name: String,
    results: usize,
}

/// A result before keys are given out.
#[derive(Debug)]
struct Raw {
    number: Option<u64>,
    result: CaseResult,
    /// The start-line context it belongs to.
    group: Option<usize>,
    /// Its `[INFO]` context, masked.
    info: Option<String>,
    /// What names it when its context does not: the description, or the directive's message.
    name: String,
    description: String,
    diagnostics: Vec<String>,
    /// Indented: the index of the result it is a subtest of, once known.
    parent: Option<usize>,
    /// A khugepaged step: its text names it whatever the number of steps of its context.
    step: bool,
    /// Named only by a directive's message that is also its reason (`ok 3 # SKIP hugetlb not
    /// available`): a reason several cases may share.
    name_is_reason: bool,
}

/// An exec'd program's own TAP inside the binary's (see [`Parser::entry`]).
#[derive(Debug)]
struct ChildStream {
    plan: Option<u64>,
    results: u64,
}

/// A skip result numbered one past the next number, whose out-of-order problem waits to see whether
/// it is `ksft_exit_skip`'s last word (see [`Parser::finish`]).
#[derive(Debug)]
struct SkipOnePast {
    problem: String,
    number: u64,
    expected: u64,
    raw: usize,
}

struct Parser {
    problems: Problems,
    /// No TAP at all: khugepaged-style step lines are results.
    steps_are_results: bool,
    root_indent: usize,
    plan: Option<u64>,
    plan_line: usize,
    plan_skip: Option<String>,
    raws: Vec<Raw>,
    /// Results not kept because of [`MAX_CASES`].
    dropped: usize,
    groups: Vec<Group>,
    current: Option<usize>,
    info: Option<String>,
    /// Diagnostics since the last result, for the next one.
    diagnostics: Vec<String>,
    /// The last diagnostic since the last context or result: a skip's reason when its message only
    /// repeats the context (cow's `# MADV_PAGEOUT did not work, is swap enabled?`).
    last_diagnostic: Option<String>,
    /// Test number → hash of its first result line.
    numbers: HashMap<u64, u64>,
    last_number: Option<u64>,
    /// The latest `Bail out!`'s reason; cleared by a later result.
    bail_out: Option<String>,
    /// A `Testing NAME... ` awaiting its verdict.
    uffd_waiting: bool,
    /// Indented results waiting for their parent.
    orphans: Vec<usize>,
    /// The text of the last free-text line (a step verdict alone on a line belongs to it).
    last_text: Option<String>,
    /// A `TAP version` line was read.
    version_seen: bool,
    /// Inside an exec'd program's own TAP output.
    child: Option<ChildStream>,
    /// x86-style `[OK]`, `[FAIL]`, `[SKIP]` lines, counted in that order.
    statuses: [usize; 3],
    /// The text of the first `[SKIP]` and of the first `[FAIL]` line, shortened.
    first_skip: Option<String>,
    first_fail: Option<String>,
    /// khugepaged step results, and how many of them failed.
    step_results: usize,
    step_failures: usize,
    skip_one_past: Option<SkipOnePast>,
    /// A line of free text or a diagnostic was read.
    saw_text: bool,
}

impl Parser {
    fn new(problems: Problems, steps_are_results: bool, root_indent: usize) -> Self {
        Parser {
            problems,
            steps_are_results,
            root_indent,
            plan: None,
            plan_line: 0,
            plan_skip: None,
            raws: Vec::new(),
            dropped: 0,
            groups: Vec::new(),
            current: None,
            info: None,
            diagnostics: Vec::new(),
            last_diagnostic: None,
            numbers: HashMap::new(),
            last_number: None,
            bail_out: None,
            uffd_waiting: false,
            orphans: Vec::new(),
            last_text: None,
            version_seen: false,
            child: None,
            statuses: [0; 3],
            first_skip: None,
            first_fail: None,
            step_results: 0,
            step_failures: 0,
            skip_one_past: None,
            saw_text: false,
        }
    }

    fn entry(&mut self, entry: &Entry) {
        let line = entry.line;
        if self.in_child_stream(entry) {
            self.diagnostic(entry.text, false);
            return;
        }
        if !matches!(entry.class, Class::Text(_) | Class::StepVerdict(..) | Class::Blank) {
            self.last_text = None;
        }
        match &entry.class {
            Class::Blank | Class::Summary | Class::Totals => {}
            Class::Version => {
                if self.plan.is_some() || !self.raws.is_empty() {
                    // A test that execs a program printing TAP of its own (numbered from 1, with
                    // its own `[RUN]` lines): read as the binary's, its numbers and contexts would
                    // take the parent's next result away from its case.
                    self.problems.push(format!(
                        "line {line}: a second `TAP version` after the plan (an exec'd program's own output); its \
                         lines up to its `# Totals:` are read as diagnostics"
                    ));
                    self.child = Some(ChildStream { plan: None, results: 0 });
                    self.diagnostic(entry.text, false);
                }
                self.version_seen = true;
            }
            Class::Status(status, text) => {
                self.diagnostic(entry.text, false);
                let (slot, first) = match status {
                    Status::Ok => (0, None),
                    Status::Fail => (1, Some(&mut self.first_fail)),
                    Status::Skip => (2, Some(&mut self.first_skip)),
                };
                self.statuses[slot] += 1;
                if let Some(first) = first.filter(|f| f.is_none()) {
                    *first = Some(tidy(text, MAX_REASON_CHARS));
                }
            }
            Class::Plan { count, comment } => self.plan(line, entry.indent, *count, *comment),
            Class::Result(result) if entry.indent > self.root_indent => self.indented_result(result),
            Class::Result(result) => self.result(line, result),
            Class::NotAResult(text) => self.problems.push(format!(
                "line {line}: {} starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
                quote_shortened(text)
            )),
            Class::BailOut(reason) => {
                // If results follow, it was not the end (kselftest_harness runs each test in a child,
                // which may exit through it): then it is a diagnostic of the next case.
                self.diagnostic(&format!("Bail out! {reason}"), false);
                self.bail_out = Some(tidy(reason, MAX_REASON_CHARS));
            }
            Class::Start { kind, name } => self.start(*kind, name),
            Class::Info(name) => {
                self.diagnostic(&format!("[INFO] {name}"), false);
                if self.current.is_none() {
                    self.info = Some(mask(name));
                }
            }
            Class::UffdStart { name, verdict } => {
                self.start(StartKind::Uffd, name);
                match verdict {
                    Some(verdict) => self.verdict_result(*verdict, name, false),
                    None => self.uffd_waiting = true,
                }
            }
            Class::UffdVerdict(verdict, text) => {
                if self.uffd_waiting {
                    let name = self.current.map(|g| self.groups[g].name.clone()).unwrap_or_default();
                    self.verdict_result(*verdict, &name, false);
                } else {
                    self.text(text);
                }
            }
            Class::Step { text, verdict, diagnostic } => {
                if self.steps_are_results {
                    self.verdict_result(*verdict, text, true);
                } else if let Some(diagnostic) = diagnostic {
                    self.diagnostic(diagnostic, false);
                }
            }
            Class::StepVerdict(verdict, text) => match self.last_text.take() {
                Some(step) if self.steps_are_results => self.verdict_result(*verdict, &step, true),
                _ => self.text(text),
            },
            Class::Diagnostic(text) => {
                self.saw_text = true;
                self.diagnostic(text, true);
            }
            Class::Text(text) => {
                self.saw_text = true;
                self.text(text);
            }
        }
    }

    /// Whether `entry` belongs to an exec'd program's TAP output: everything up to the `# Totals:` it
    /// prints as it exits, or up to a result beyond its own plan if it died without one.
    fn in_child_stream(&mut self, entry: &Entry) -> bool {
        let Some(child) = &mut self.child else { return false };
        match entry.class {
            Class::Totals => {
                self.child = None;
                return true;
            }
            Class::Plan { count, .. } if child.plan.is_none() && entry.indent <= self.root_indent => {
                child.plan = count;
            }
            Class::Result(_) if child.plan.is_some_and(|plan| child.results >= plan) => {
                self.child = None;
                return false;
            }
            Class::Result(_) => child.results += 1,
            _ => {}
        }
        true
    }

    fn text(&mut self, text: &str) {
        self.last_text = Some(text.trim_end_matches('.').trim().to_owned());
    }

    fn diagnostic(&mut self, text: &str, reason_candidate: bool) {
        if text.is_empty() {
            return;
        }
        if self.diagnostics.len() == MAX_CASE_DIAGNOSTICS {
            self.diagnostics.remove(0);
        }
        self.diagnostics.push(tidy(text, MAX_DESCRIPTION_CHARS));
        if reason_candidate {
            self.last_diagnostic = Some(text.to_owned());
        }
    }

    fn plan(&mut self, line: usize, indent: usize, count: Option<u64>, comment: Option<&str>) {
        if indent > self.root_indent {
            // A subtest block's own plan.
            return;
        }
        let Some(count) = count else {
            self.problems.push(format!("line {line}: the plan's count is too large to read; ignored"));
            return;
        };
        if let Some(first) = self.plan {
            self.problems.push(format!(
                "line {line}: a second plan line (`1..{count}`); the first (`1..{first}`, line {}) is kept",
                self.plan_line
            ));
            return;
        }
        self.plan = Some(count);
        self.plan_line = line;
        if count == 0 {
            let skip = comment.and_then(|c| {
                let (word, reason) = c.split_once(char::is_whitespace).unwrap_or((c, ""));
                (Directive::of(word, Dialect::Kselftest) == Some(Directive::Skip)).then_some(reason)
            });
            self.plan_skip = skip.map(|reason| tidy(reason, MAX_REASON_CHARS));
        }
        if self.raws.is_empty() {
            // What came before the plan was the binary's set-up, not the first case's context.
            self.info = None;
            self.current = None;
            self.last_diagnostic = None;
            self.diagnostics.clear();
        }
    }

    /// A line that names the results after it. The context it ends may have named none: a heading
    /// (cow's `[RUN] Non-anonymous memory tests in private mappings`), or a case that never reported,
    /// which the plan's count shows as missing.
    fn start(&mut self, kind: StartKind, name: &str) {
        self.groups.push(Group { kind, name: mask(name), results: 0 });
        self.current = Some(self.groups.len() - 1);
        self.info = None;
        self.last_diagnostic = None;
        self.uffd_waiting = false;
    }

    /// A result from an old uffd-unit-tests verdict or a khugepaged step.
    fn verdict_result(&mut self, verdict: Verdict, name: &str, step: bool) {
        self.uffd_waiting = false;
        let result = match verdict {
            Verdict::Pass => CaseResult::Pass,
            Verdict::Fail => CaseResult::Fail,
            Verdict::Skip(reason) => CaseResult::Skip { reason: tidy(reason, MAX_REASON_CHARS) },
        };
        let group = if step { self.current } else { self.current.filter(|&g| self.groups[g].kind == StartKind::Uffd) };
        if step {
            self.step_results += 1;
            self.step_failures += usize::from(result == CaseResult::Fail);
        }
        let mut raw = self.raw(None, result, group, name, tidy(name, MAX_DESCRIPTION_CHARS));
        raw.step = step;
        self.add_result(raw);
    }

    fn result(&mut self, line: usize, result: &ResultLine) {
        // A result after it: the skip one past was not the binary's last word.
        if let Some(one_past) = self.skip_one_past.take() {
            self.problems.push(one_past.problem);
        }
        // TAP numbers a result printed without one as the next.
        let number = result.number.unwrap_or_else(|| self.last_number.map_or(1, |n| n.saturating_add(1)));
        let hash =
            fnv1a(format!("{} {} {:?} {}", result.ok, result.description, result.directive, result.text).as_bytes());
        match self.numbers.get(&number) {
            Some(&seen) if seen == hash => {
                self.problems.push(format!(
                    "line {line}: result {number} repeated verbatim (a copy of earlier output, e.g. flushed by a \
                     forked child); counted once"
                ));
                return;
            }
            Some(_) => self.problems.push(format!("line {line}: test number {number} appears twice")),
            None => {
                let expected = self.last_number.map_or(1, |n| n.saturating_add(1));
                if number != expected {
                    let problem = format!("line {line}: test {number} is out of order; expected test {expected}");
                    if number == expected.saturating_add(1)
                        && result.directive == Some(Directive::Skip)
                        && result.description.is_empty()
                    {
                        let raw = self.raws.len();
                        self.skip_one_past = Some(SkipOnePast { problem, number, expected, raw });
                    } else {
                        self.problems.push(problem);
                    }
                }
                self.numbers.insert(number, hash);
            }
        }
        self.last_number = Some(number);
        self.bail_out = None;

        let message = result.message();
        let context = self.current.map(|g| self.groups[g].name.as_str()).or(self.info.as_deref());
        let mut name_is_reason = false;
        let (name, reason) = if !result.description.is_empty() {
            (result.description.to_owned(), message.to_owned())
        } else if message.is_empty() {
            (String::new(), String::new())
        } else {
            match context {
                // The message repeats the context (cow): the reason, if any, was printed before it.
                Some(context) if case_key(message) == case_key(context) => {
                    (message.to_owned(), self.last_diagnostic.clone().unwrap_or_default())
                }
                Some(_) => (message.to_owned(), message.to_owned()),
                None => {
                    let (name, reason) = split_message(message);
                    name_is_reason = name == reason;
                    (name, reason)
                }
            }
        };
        let description = if result.description.is_empty() { message } else { result.description };
        let mut raw = self.raw(
            Some(number),
            case_result(result, tidy(&reason, MAX_REASON_CHARS)),
            self.current,
            &name,
            tidy(description, MAX_DESCRIPTION_CHARS),
        );
        raw.name_is_reason = name_is_reason;
        if result.directive.is_none() && !result.text.is_empty() {
            raw.diagnostics.push(tidy(result.text, MAX_DESCRIPTION_CHARS));
        }
        // An `[INFO]` line names this result only (and only with no other context in force).
        raw.info = if raw.group.is_none() { self.info.take() } else { None };
        if self.add_result(raw) {
            // Indented results before this one are its subtests.
            let parent = self.raws.len() - 1;
            for orphan in std::mem::take(&mut self.orphans) {
                self.raws[orphan].parent = Some(parent);
            }
        }
    }

    /// A result with the diagnostics waiting for it.
    fn raw(
        &mut self,
        number: Option<u64>,
        result: CaseResult,
        group: Option<usize>,
        name: &str,
        description: String,
    ) -> Raw {
        let diagnostics = std::mem::take(&mut self.diagnostics);
        Raw {
            number,
            result,
            group,
            info: None,
            name: mask(name),
            description,
            diagnostics,
            parent: None,
            step: false,
            name_is_reason: false,
        }
    }

    /// Keeps a result and counts it for its context; the next result starts afresh.
    fn add_result(&mut self, raw: Raw) -> bool {
        let group = raw.group;
        let kept = self.push_raw(raw);
        if let Some(group) = group.filter(|_| kept) {
            self.groups[group].results += 1;
        }
        self.info = None;
        self.last_diagnostic = None;
        kept
    }

    /// A subtest: indented deeper than the binary's own results.
    fn indented_result(&mut self, result: &ResultLine) {
        let message = result.message();
        let (name, reason) = if result.description.is_empty() { (message, "") } else { (result.description, message) };
        let raw = Raw {
            number: result.number,
            result: case_result(result, tidy(reason, MAX_REASON_CHARS)),
            group: None,
            info: None,
            name: mask(name),
            description: tidy(name, MAX_DESCRIPTION_CHARS),
            diagnostics: Vec::new(),
            parent: None,
            step: false,
            name_is_reason: false,
        };
        if self.push_raw(raw) {
            self.orphans.push(self.raws.len() - 1);
        }
    }

    /// Keeps a case unless [`MAX_CASES`] are kept (two places stay free for the cases
    /// [`Parser::finish`] adds).
    fn push_raw(&mut self, raw: Raw) -> bool {
        if self.raws.len() + 2 >= MAX_CASES {
            self.dropped += 1;
            return false;
        }
        self.raws.push(raw);
        true
    }

    fn finish(mut self, end: &ProbeEnd, tap: bool) -> SelftestReport {
        // `ksft_exit_skip` after a plan in kselftest.h before its fix counted the skip twice and
        // printed `ok N+1 # SKIP` as the binary's last line, exiting 4: that is case N, not a gap.
        if let Some(one_past) = self.skip_one_past.take() {
            let last = self.raws.get_mut(one_past.raw).filter(|raw| raw.number == Some(one_past.number));
            match last {
                Some(raw) if *end == ProbeEnd::Exited(4) && !self.numbers.contains_key(&one_past.expected) => {
                    raw.number = Some(one_past.expected);
                    if let Some(hash) = self.numbers.remove(&one_past.number) {
                        self.numbers.insert(one_past.expected, hash);
                    }
                }
                _ => self.problems.push(one_past.problem),
            }
        }
        // What ended the output: the last `Bail out!` if only diagnostics follow it, else the process.
        let bail_out = self.bail_out.take();
        let ended = match &bail_out {
            Some(reason) if reason.is_empty() => "bailed out".to_owned(),
            Some(reason) => format!("bailed out: {reason}"),
            None => end_phrase(end),
        };
        // The context in force at the end with no result: the binary ended inside that case, if cases
        // are missing (else it is a heading or a clean-up step).
        let reported = self.plan.map(|plan| self.numbers.keys().filter(|&&n| n >= 1 && n <= plan).count() as u64);
        let incomplete = match (self.plan, reported) {
            (Some(plan), Some(reported)) => reported < plan,
            _ => !matches!(end, ProbeEnd::Exited(0)),
        };
        if let Some(group) = self.current.filter(|&g| self.groups[g].results == 0 && incomplete) {
            let diagnostics = std::mem::take(&mut self.diagnostics);
            let raw = Raw {
                number: None,
                result: CaseResult::NotRun { why: format!("no result ({ended})") },
                group: Some(group),
                info: None,
                name: String::new(),
                description: String::new(),
                diagnostics,
                parent: None,
                step: false,
                name_is_reason: false,
            };
            // One of the two places [`Parser::push_raw`] keeps free.
            self.groups[group].results = 1;
            self.raws.push(raw);
        }
        if !self.orphans.is_empty() {
            self.problems.push(format!(
                "{} indented result line{} at the end belong{} to no result line; kept as cases of their own",
                self.orphans.len(),
                if self.orphans.len() == 1 { "" } else { "s" },
                if self.orphans.len() == 1 { "s" } else { "" }
            ));
        }
        let not_run = self.raws.iter().filter(|r| matches!(r.result, CaseResult::NotRun { .. })).count();
        if let (Some(plan), Some(reported)) = (self.plan, reported) {
            let beyond = self.numbers.keys().filter(|&&n| n > plan || n == 0).count();
            if beyond > 0 {
                self.problems.push(format!(
                    "{beyond} result{} numbered outside the plan (`1..{plan}`)",
                    if beyond == 1 { " is" } else { "s are" }
                ));
            }
            let missing = plan.saturating_sub(reported).saturating_sub(not_run as u64);
            if missing > 0 {
                self.raws.push(Raw {
                    number: None,
                    result: CaseResult::NotRun { why: format!("{missing} of {plan} planned ({ended})") },
                    group: None,
                    info: None,
                    name: MISSING_KEY.to_owned(),
                    description: String::new(),
                    diagnostics: Vec::new(),
                    parent: None,
                    step: false,
                    name_is_reason: false,
                });
            }
        } else if tap && !self.numbers.is_empty() {
            self.problems.push("no plan line (`1..N`): cannot tell whether every case ran".to_owned());
        }
        self.notes_on_the_whole_output(tap, bail_out.as_deref());
        if self.dropped > 0 {
            self.problems.push(format!(
                "{} more result{} beyond the first {} cases were not kept",
                self.dropped,
                if self.dropped == 1 { "" } else { "s" },
                MAX_CASES - 2
            ));
        }

        let last_skip = self.raws.iter().rev().find(|r| r.number.is_some()).and_then(|r| match &r.result {
            CaseResult::Skip { reason } => Some(reason.clone()),
            _ => None,
        });
        let mut binary = binary_result(end, self.plan_skip.as_deref(), last_skip.as_deref(), &mut self.problems);
        if let ProbeEnd::Exited(code) = *end {
            if self.step_results > 0 && code != 0 {
                // khugepaged before its TAP output exits with its number of failed steps: exit 4 is
                // four failures, not a skip.
                binary = CaseResult::Fail;
                if usize::try_from(code).ok() != Some(self.step_failures % 256) {
                    self.problems.push(format!(
                        "exit {code}, but {} of its step lines failed (khugepaged-style output exits with the \
                         number of failed steps)",
                        self.step_failures
                    ));
                }
            } else if self.only_skipped_statuses() && self.raws.is_empty() && matches!(code, 0 | 1 | 4) {
                // x86 tests print `[SKIP]\tREASON` and return 1 or 0 (test_shadow_stack: `[SKIP]
                // Could not enable Shadow stack`, then `return 1`).
                binary = CaseResult::Skip { reason: self.first_skip.clone().unwrap_or_default() };
            }
        }
        let cases = self.keys();
        SelftestReport { binary, cases, plan: self.plan, bail_out, problems: self.problems.into_vec() }
    }

    /// `[SKIP]` lines and no `[OK]` or `[FAIL]`.
    fn only_skipped_statuses(&self) -> bool {
        self.statuses[0] == 0 && self.statuses[1] == 0 && self.statuses[2] > 0
    }

    /// Sentences about the output as a whole that no case says: a `Bail out!` whose reason no
    /// `missing` value carries, a TAP stream in which nothing ran, output ksnap could not cut into
    /// cases.
    fn notes_on_the_whole_output(&mut self, tap: bool, bail_out: Option<&str>) {
        let carried = self.raws.iter().any(|raw| matches!(raw.result, CaseResult::NotRun { .. }));
        if let Some(reason) = bail_out.filter(|reason| !carried && !is_failure_count(reason)) {
            self.problems.push(match reason {
                "" => "bailed out".to_owned(),
                reason => format!("bailed out: {reason}"),
            });
        }
        if self.version_seen
            && self.plan.is_none()
            && self.numbers.is_empty()
            && self.raws.is_empty()
            && bail_out.is_none()
        {
            self.problems.push("a `TAP version` line but no plan and no result: nothing ran".to_owned());
        }
        if tap || !self.raws.is_empty() {
            return;
        }
        let [ok, fail, skip] = self.statuses;
        if ok + fail > 0 {
            let mut note = format!(
                "no TAP: {ok} `[OK]`, {fail} `[FAIL]` and {skip} `[SKIP]` line{} (x86 selftest style), not split into cases",
                if ok + fail + skip == 1 { "" } else { "s" }
            );
            if let Some(first) = &self.first_fail {
                note.push_str(&format!("; first failure: {}", quote_shortened(first)));
            }
            self.problems.push(note);
        } else if skip == 0 && self.saw_text {
            self.problems.push("no TAP and no line read as a result: the output is not split into cases".to_owned());
        }
    }

    /// Gives every result its key (see the module docs) and makes the keys unique.
    fn keys(&mut self) -> Vec<SelftestCase> {
        let base: Vec<String> = (0..self.raws.len()).map(|i| self.base_key(i)).collect();
        // A reason several cases share names none of them: told apart by order, they would all be
        // renumbered when one of them passes. Their TAP number keys them instead.
        let mut shared_reasons: HashMap<&str, usize> = HashMap::new();
        for (raw, key) in self.raws.iter().zip(&base) {
            if raw.name_is_reason && raw.group.is_none() && raw.info.is_none() && raw.parent.is_none() {
                *shared_reasons.entry(key.as_str()).or_default() += 1;
            }
        }
        let mut seen: HashSet<String> = HashSet::with_capacity(base.len());
        let mut repeats: HashMap<&str, usize> = HashMap::new();
        let mut cases = Vec::with_capacity(self.raws.len());
        for (index, raw) in std::mem::take(&mut self.raws).into_iter().enumerate() {
            let shared = raw.name_is_reason && shared_reasons.get(base[index].as_str()).is_some_and(|&n| n > 1);
            let mut key = match raw.number {
                Some(number) if shared => format!("case-{number}"),
                _ => base[index].clone(),
            };
            if seen.contains(&key) {
                let harness = raw.group.is_some_and(|g| self.groups[g].kind == StartKind::Harness);
                if harness {
                    self.problems.push(format!("the kselftest_harness test `{key}` reported more than once"));
                }
                let count = repeats.entry(base[index].as_str()).or_insert(1);
                loop {
                    *count += 1;
                    let candidate = cap_key(format!("{}-{count}", base[index]));
                    if !seen.contains(&candidate) {
                        key = candidate;
                        break;
                    }
                }
            }
            seen.insert(key.clone());
            cases.push(SelftestCase {
                key,
                result: raw.result,
                number: raw.number,
                description: raw.description,
                diagnostics: raw.diagnostics,
            });
        }
        cases
    }

    fn base_key(&self, index: usize) -> String {
        let raw = &self.raws[index];
        let own = case_key(&raw.name);
        let key = match (raw.group, &raw.info) {
            (Some(group), _) => {
                let group = &self.groups[group];
                let context = case_key(&group.name);
                // The description adds nothing to the context: absent, the same, or its first words.
                let same = own.is_empty()
                    || own == context
                    || context.strip_prefix(own.as_str()).is_some_and(|r| r.starts_with('_'));
                if (group.results <= 1 && !raw.step) || same {
                    if context.is_empty() {
                        own
                    } else {
                        context
                    }
                } else if context.is_empty() {
                    own
                } else {
                    join_keys(&context, &own)
                }
            }
            (None, Some(info)) => match case_key(info) {
                context if context.is_empty() => own,
                context => context,
            },
            (None, None) => own,
        };
        let key = match raw.parent {
            Some(parent) if parent != index => join_keys(&self.base_key(parent), &key),
            _ => key,
        };
        if key.is_empty() {
            match raw.number {
                Some(number) => format!("case-{number}"),
                None => "case".to_owned(),
            }
        } else {
            key
        }
    }
}

/// What a result line stands for, `reason` being its directive's message as a value shows it.
fn case_result(result: &ResultLine, reason: String) -> CaseResult {
    match result.directive {
        None if result.ok => CaseResult::Pass,
        None => CaseResult::Fail,
        Some(Directive::Skip) => CaseResult::Skip { reason },
        Some(Directive::Xfail) => CaseResult::Xfail { reason },
        Some(Directive::Xpass) => CaseResult::Xpass,
        Some(Directive::Todo) => CaseResult::Todo { reason },
        Some(Directive::Error) => CaseResult::Error { reason },
        Some(Directive::Timeout) => CaseResult::Timeout { ms: None },
    }
}

/// A directive's message with no description and no context: the case's name, and its reason.
/// `NAME (REASON)` (uffd-unit-tests) and `WORD: REASON` (mseal_test) are split; anything else is both.
fn split_message(message: &str) -> (String, String) {
    if let Some(open) = message.strip_suffix(')').and_then(|m| m.rfind(" (")) {
        let reason = &message[open + 2..message.len() - 1];
        let name = message[..open].trim();
        if !name.is_empty() && !reason.is_empty() && !reason.starts_with(|c: char| c.is_ascii_digit()) {
            return (name.to_owned(), reason.to_owned());
        }
    }
    if let Some((name, reason)) = message.split_once(": ") {
        if !name.is_empty() && !name.contains(char::is_whitespace) && !reason.trim().is_empty() {
            return (name.to_owned(), reason.trim().to_owned());
        }
    }
    (message.to_owned(), message.to_owned())
}

/// How the process ended, for a `missing: …` value.
/// `N out of M tests failed`: the `Bail out!` many mm tests print after their last case when some
/// failed, which their cases already say.
fn is_failure_count(reason: &str) -> bool {
    let words: Vec<&str> = reason.split_whitespace().collect();
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    matches!(words.as_slice(), [n, "out", "of", m, "tests", "failed"] if number(n) && number(m))
}

fn end_phrase(end: &ProbeEnd) -> String {
    match end {
        ProbeEnd::Exited(code) => format!("exit {code}"),
        ProbeEnd::Signaled(_) => end.to_string(),
        ProbeEnd::TimedOut(_) => "timeout".to_owned(),
        ProbeEnd::SpawnError(errno) => format!("could not be started ({})", tidy(&clean_line(errno), 40)),
    }
}

/// The binary's result from its exit (kselftest's codes), the plan's skip and its last skipped case.
fn binary_result(
    end: &ProbeEnd,
    plan_skip: Option<&str>,
    last_skip: Option<&str>,
    problems: &mut Problems,
) -> CaseResult {
    let skip = |reason: Option<&str>| CaseResult::Skip { reason: reason.unwrap_or("").to_owned() };
    match end {
        ProbeEnd::Exited(0) if plan_skip.is_some() => skip(plan_skip),
        ProbeEnd::Exited(0) => CaseResult::Pass,
        ProbeEnd::Exited(4) => skip(plan_skip.or(last_skip)),
        ProbeEnd::Exited(code) => {
            if plan_skip.is_some() {
                problems.push(format!("the plan skips the whole binary (`1..0 # SKIP`) but it exited {code}"));
            }
            match code {
                1 => CaseResult::Fail,
                2 => CaseResult::Xfail { reason: String::new() },
                3 => CaseResult::Xpass,
                code => CaseResult::Exit { code: *code },
            }
        }
        ProbeEnd::Signaled(signal) => CaseResult::Signaled { signal: *signal },
        ProbeEnd::TimedOut(after) => {
            CaseResult::Timeout { ms: Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)) }
        }
        ProbeEnd::SpawnError(errno) => CaseResult::SpawnError { errno: tidy(&clean_line(errno), 40) },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// A capture in `tests/data/kselftest/KERNEL/` with how its binary ended (PROVENANCE.md).
    struct Capture {
        kernel: &'static str,
        name: &'static str,
        text: &'static str,
        end: ProbeEnd,
    }

    macro_rules! capture {
        ($kernel:literal, $name:literal, $end:expr) => {
            Capture {
                kernel: $kernel,
                name: $name,
                text: include_str!(concat!("../tests/data/kselftest/", $kernel, "/", $name, ".stdout")),
                end: $end,
            }
        };
    }

    fn captures() -> Vec<Capture> {
        use ProbeEnd::{Exited, Signaled};
        vec![
            capture!("5.10", "mm--cow", Exited(1)),
            capture!("5.10", "mm--khugepaged", Exited(1)),
            capture!("5.10", "mm--ksm_functional_tests", Exited(4)),
            capture!("5.10", "mm--mseal_test", Exited(4)),
            capture!("5.10", "mm--split_huge_page_test", Exited(1)),
            capture!("5.10", "mm--uffd-unit-tests", Exited(0)),
            // The shell's 134: SIGABRT from a failed assert().
            capture!("5.10", "proc--proc-2-is-kthread", Signaled(libc::SIGABRT)),
            capture!("6.1", "mm--ksm_functional_tests", Exited(1)),
            capture!("6.12", "mm--cow", Exited(0)),
            capture!("6.12", "mm--guard-regions", Exited(1)),
            capture!("6.12", "mm--khugepaged", Exited(1)),
            capture!("6.12", "mm--ksm_functional_tests", Exited(0)),
            capture!("6.12", "mm--madv_populate", Exited(0)),
            capture!("6.12", "mm--mkdirty", Exited(0)),
            capture!("6.12", "mm--mremap_test", Exited(1)),
            capture!("6.12", "mm--mseal_test", Exited(0)),
            capture!("6.12", "mm--pagemap_ioctl", Exited(0)),
            capture!("6.12", "mm--soft-dirty", Exited(1)),
            capture!("6.12", "mm--uffd-unit-tests", Exited(0)),
            capture!("6.12", "mm--uffd-wp-mremap", Exited(0)),
            capture!("6.12", "proc--proc-empty-vm", Exited(1)),
            capture!("6.12", "proc--proc-pidns", Exited(1)),
            capture!("6.12", "mm--khugepaged-512m", Exited(4)),
            capture!("6.12", "mm--hugetlb-madvise-512m", Exited(0)),
            capture!("6.12", "x86--test_shadow_stack_64", Exited(1)),
            capture!("6.12", "x86--sigreturn_64", Exited(0)),
            capture!("7.2", "mm--khugepaged", Exited(1)),
            capture!("7.2", "mm--ksm_functional_tests", Exited(1)),
            capture!("7.2", "mm--mkdirty", Exited(1)),
        ]
    }

    /// Captures of outputs the kernels above do not print: a public log, and outputs reconstructed
    /// from the selftests' printf formats (PROVENANCE.md says which is which).
    fn other_captures() -> Vec<Capture> {
        use ProbeEnd::Exited;
        vec![
            capture!("lkp-2023", "x86--sigreturn_32", Exited(0)),
            capture!("reconstructed", "vDSO--vdso_test_correctness", Exited(1)),
            capture!("reconstructed", "mm--khugepaged-steps", Exited(4)),
            capture!("reconstructed", "mm--khugepaged-bail-before-plan", Exited(1)),
            capture!("reconstructed", "kselftest_h--header-then-finished", Exited(0)),
            capture!("reconstructed", "mm--hugetlb-madvise", Exited(4)),
            capture!("reconstructed", "mm--exec-child-tap", Exited(0)),
            capture!("reconstructed", "cr-only-line-ends", Exited(1)),
            capture!("reconstructed", "cr-progress", Exited(0)),
            capture!("reconstructed", "same-skip-reasons", Exited(0)),
        ]
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn capture(kernel: &str, name: &str) -> (Capture, SelftestReport) {
        let capture = captures()
            .into_iter()
            .chain(other_captures())
            .find(|c| c.kernel == kernel && c.name == name)
            .expect("a capture");
        let report = parse(&lines(capture.text), &capture.end);
        (capture, report)
    }

    fn report(kernel: &str, name: &str) -> SelftestReport {
        capture(kernel, name).1
    }

    fn parse_text(text: &str) -> SelftestReport {
        parse(&lines(text), &ProbeEnd::Exited(0))
    }

    /// `KEY = VALUE`, as the snapshot has them.
    fn values(report: &SelftestReport) -> Vec<(String, String)> {
        report.cases.iter().map(|c| (c.key.clone(), c.result.to_string())).collect()
    }

    fn value<'r>(report: &'r SelftestReport, key: &str) -> &'r CaseResult {
        &report.cases.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("no case `{key}`: {report:#?}")).result
    }

    fn keys(report: &SelftestReport) -> Vec<&str> {
        report.cases.iter().map(|c| c.key.as_str()).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn skip(reason: &str) -> CaseResult {
        CaseResult::Skip { reason: reason.into() }
    }

    fn missing(why: &str) -> CaseResult {
        CaseResult::NotRun { why: why.into() }
    }

    fn is_result_line(line: &str) -> bool {
        let rest = line.strip_prefix("not ok ").or_else(|| line.strip_prefix("ok "));
        rest.is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    }

    /// What every report must hold, whatever the input.
    fn check_invariants(report: &SelftestReport) {
        assert!(report.problems.len() <= MAX_PROBLEMS + 1, "{:?}", report.problems);
        assert!(report.cases.len() <= MAX_CASES);
        let mut seen = HashSet::new();
        for case in &report.cases {
            assert!(seen.insert(case.key.as_str()), "key `{}` twice", case.key);
            assert!(!case.key.is_empty() && case.key.len() <= MAX_KEY_LEN, "{}", case.key);
            assert!(
                case.key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')),
                "key {:?}",
                case.key
            );
            let value = case.result.to_string();
            assert!(!value.is_empty() && value.chars().count() <= 40 + MAX_REASON_CHARS * 2, "{value}");
            assert!(!value.contains(['\n', '\r']), "{value:?}");
            assert!(case.diagnostics.len() <= MAX_CASE_DIAGNOSTICS + 1);
        }
        assert!(!report.binary.to_string().is_empty());
    }

    #[test]
    fn every_capture_keeps_the_invariants_and_loses_no_result_line() {
        for capture in captures() {
            let report = parse(&lines(capture.text), &capture.end);
            let label = format!("{}/{}", capture.kernel, capture.name);
            check_invariants(&report);
            // Each result line is one case (the glued lines of 6.1 start with their result too)...
            let result_lines = capture.text.lines().filter(|l| is_result_line(l)).count();
            let reported = report.cases.iter().filter(|c| c.number.is_some()).count();
            assert_eq!(reported, result_lines, "{label}");
            // ... and the other cases are the ones that never reported.
            for case in report.cases.iter().filter(|c| c.number.is_none()) {
                assert!(matches!(case.result, CaseResult::NotRun { .. }), "{label}: {case:?}");
            }
            // Only the two captures with glued lines, and x86-style output, have something to say.
            match (capture.kernel, capture.name) {
                ("6.1", "mm--ksm_functional_tests") | ("5.10", "mm--khugepaged") | ("6.12", "x86--sigreturn_64") => {
                    assert!(!report.problems.is_empty(), "{label}")
                }
                _ => assert!(report.problems.is_empty(), "{label}: {:?}", report.problems),
            }
            assert_eq!(parse(&lines(capture.text), &capture.end), report, "{label}: deterministic");
        }
    }

    /// The two that our own /proc/self/mem probes are cross-checked against: keys from their
    /// `[INFO]`/`[RUN]` lines, never from the verdict text.
    #[test]
    fn mkdirty_keys_come_from_its_info_lines() {
        let expected = pairs(&[
            ("ptrace_write_access", "ok"),
            ("ptrace_write_access_to_thp", "ok"),
            ("page_migration", "ok"),
            ("page_migration_of_thp", "ok"),
            ("pte-mapping_a_thp", "ok"),
            ("uffdio_copy", "ok"),
        ]);
        let on_6_12 = report("6.12", "mm--mkdirty");
        assert_eq!(values(&on_6_12), expected);
        assert_eq!(on_6_12.binary, CaseResult::Pass);
        assert_eq!(on_6_12.plan, Some(6));
        assert_eq!(on_6_12.cases[0].description, "SIGSEGV generated, page not modified");

        // 7.2 cannot write through /proc/self/mem: `not ok 1 write() failed`, same keys.
        let on_7_2 = report("7.2", "mm--mkdirty");
        assert_eq!(keys(&on_7_2), keys(&on_6_12));
        assert_eq!(value(&on_7_2, "ptrace_write_access"), &CaseResult::Fail);
        assert_eq!(value(&on_7_2, "ptrace_write_access_to_thp"), &CaseResult::Fail);
        assert_eq!(value(&on_7_2, "page_migration"), &CaseResult::Pass);
        assert_eq!(on_7_2.cases[0].description, "write() failed");
        assert_eq!(on_7_2.binary, CaseResult::Fail);
        assert_eq!(on_7_2.bail_out.as_deref(), Some("2 out of 6 tests failed"));
    }

    #[test]
    fn ksm_functional_tests_keys_come_from_its_run_lines() {
        let names = [
            "test_unmerge",
            "test_unmerge_zero_pages",
            "test_unmerge_discarded",
            "test_unmerge_uffd_wp",
            "test_prot_none",
            "test_prctl",
            "test_prctl_fork",
            "test_prctl_fork_exec",
            "test_prctl_unmerge",
            "test_fork_ksm_merging_page_count",
        ];
        let on_6_12 = report("6.12", "mm--ksm_functional_tests");
        assert_eq!(values(&on_6_12), pairs(&names.map(|n| (n, "ok"))));
        assert_eq!(on_6_12.binary, CaseResult::Pass);

        // 7.2: test_prot_none writes through /proc/self/mem and fails with another description.
        let on_7_2 = report("7.2", "mm--ksm_functional_tests");
        assert_eq!(keys(&on_7_2), names);
        assert_eq!(value(&on_7_2, "test_prot_none"), &CaseResult::Fail);
        assert_eq!(on_7_2.cases[4].description, "ptrace write failed");
        assert_eq!(on_7_2.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 1);

        // 6.1: two messages without their newline glue the next `# [RUN]` to them.
        let on_6_1 = report("6.1", "mm--ksm_functional_tests");
        assert_eq!(keys(&on_6_1), names);
        assert_eq!(
            values(&on_6_1),
            pairs(&[
                ("test_unmerge", "ok"),
                ("test_unmerge_zero_pages", "not ok"),
                ("test_unmerge_discarded", "ok"),
                ("test_unmerge_uffd_wp", "not ok"),
                ("test_prot_none", "not ok"),
                ("test_prctl", "skip: PR_SET_MEMORY_MERGE not supported"),
                ("test_prctl_fork", "skip: PR_SET_MEMORY_MERGE not supported"),
                ("test_prctl_fork_exec", "skip: PR_SET_MEMORY_MERGE not supported"),
                ("test_prctl_unmerge", "skip: Merging memory skipped"),
                ("test_fork_ksm_merging_page_count", "ok"),
            ])
        );
        assert_eq!(
            on_6_1.problems,
            [
                "line 13: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
                "line 21: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
            ]
        );
        assert_eq!(on_6_1.cases[4].description, "Merging memory failed");
        assert_eq!(on_6_1.cases[4].diagnostics, ["No pages got merged"]);
        assert_eq!(on_6_1.bail_out.as_deref(), Some("3 out of 10 tests failed"));

        // 5.10 has no /proc/self/ksm_merging_pages: the binary skips after its first case.
        let on_5_10 = report("5.10", "mm--ksm_functional_tests");
        let reason = "accessing \"/proc/self/ksm_merging_pages\") failed";
        assert_eq!(on_5_10.binary, skip(reason));
        assert_eq!(
            values(&on_5_10),
            pairs(&[
                ("accessing_proc_self_ksm_merging_pages_failed", &format!("skip: {reason}")),
                (MISSING_KEY, "missing: 9 of 10 planned (exit 4)"),
            ])
        );
    }

    #[test]
    fn cow_cases_are_named_by_their_run_lines() {
        // The capture is cut after case 300 of 761 (PROVENANCE.md).
        let on_6_12 = report("6.12", "mm--cow");
        assert_eq!(on_6_12.plan, Some(761));
        assert_eq!(on_6_12.cases.len(), 301);
        assert_eq!(on_6_12.cases.last().unwrap().result, missing("461 of 761 planned (exit 0)"));
        assert_eq!(on_6_12.binary, CaseResult::Pass);
        assert_eq!(value(&on_6_12, "basic_cow_after_fork_with_base_page"), &CaseResult::Pass);
        // `ok 2 # SKIP <the [RUN] text>`: the name repeats the context; the reason is the line before.
        assert_eq!(
            value(&on_6_12, "basic_cow_after_fork_with_swapped_out_base_page"),
            &skip("MADV_PAGEOUT did not work, is swap enabled?")
        );
        assert_eq!(
            value(&on_6_12, "vmsplice_unmap_in_child_with_hugetlb_2048_kb"),
            &CaseResult::Xfail { reason: "Leak from parent into child".into() }
        );
        let skipped = on_6_12.cases.iter().filter(|c| matches!(c.result, CaseResult::Skip { .. })).count();
        assert_eq!(skipped, 102);

        let on_5_10 = report("5.10", "mm--cow");
        assert_eq!(on_5_10.cases.len(), 173);
        assert_eq!(on_5_10.binary, CaseResult::Fail);
        assert_eq!(on_5_10.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 10);
        assert_eq!(value(&on_5_10, "vmsplice_unmap_in_child_with_thp_2048_kb"), &CaseResult::Fail);
        assert_eq!(
            value(&on_5_10, "r_o-mapping_a_page_registered_as_iouring_fixed_buffer_with_base_page"),
            &CaseResult::Fail
        );
        // The section heading cow prints as a `[RUN]` line is no case.
        assert!(!keys(&on_5_10).iter().any(|k| k.contains("memory_tests")));
    }

    #[test]
    fn uffd_unit_tests_keep_their_keys_whether_they_pass_or_skip() {
        let on_6_12 = report("6.12", "mm--uffd-unit-tests");
        assert_eq!(on_6_12.cases.len(), 67);
        assert_eq!(value(&on_6_12, "uffdio_api_with_syscall"), &CaseResult::Pass);
        assert_eq!(
            value(&on_6_12, "wp-fork-pin_on_hugetlb-private"),
            &skip("Possibly CONFIG_GUP_TEST missing or unprivileged")
        );
        assert_eq!(value(&on_6_12, "mmap-changing_on_shmem"), &CaseResult::Pass);

        // 5.10: all 67 skipped, `ok N # SKIP NAME (REASON)`.
        let on_5_10 = report("5.10", "mm--uffd-unit-tests");
        assert_eq!(keys(&on_5_10), keys(&on_6_12));
        assert_eq!(value(&on_5_10, "uffdio_api_with_dev_userfaultfd"), &skip("cannot open userfaultfd handle"));
        assert_eq!(value(&on_5_10, "zeropage_on_hugetlb-private"), &skip("memory allocation failed"));
        assert_eq!(value(&on_5_10, "wp-fork-pin_on_hugetlb-private"), &skip("feature missing"));
        assert!(on_5_10.cases.iter().all(|c| matches!(c.result, CaseResult::Skip { .. })));
    }

    #[test]
    fn khugepaged_bail_outs_and_colour() {
        let on_6_12 = report("6.12", "mm--khugepaged");
        assert_eq!(on_6_12.cases.len(), 16);
        // The same description twice, told apart by `# Run test: NAME (MODE)`.
        assert_eq!(on_6_12.cases[1].key, "collapse_full_khugepaged_anon");
        assert_eq!(on_6_12.cases[2].key, "collapse_full_madvise_anon");
        assert_eq!(on_6_12.cases[0].key, "allocate_on_fault_and_split");
        assert_eq!(on_6_12.bail_out.as_deref(), Some("Failed to allocate huge page"));
        let end = on_6_12.cases.len() - 2;
        assert_eq!(
            values(&on_6_12)[end..],
            pairs(&[
                (
                    "collapse_compound_extreme_madvise_anon",
                    "missing: no result (bailed out: Failed to allocate huge page)"
                ),
                (MISSING_KEY, "missing: 11 of 26 planned (bailed out: Failed to allocate huge page)"),
            ])
        );
        // Colour escapes are gone from what is kept.
        assert_eq!(
            on_6_12.cases[0].diagnostics,
            ["Allocate huge page on fault... OK", "Split huge PMD on MADV_DONTNEED... OK"]
        );

        // 5.10: `# Allocate huge page...Bail out! madvise(MADV_COLLAPSE): Invalid argument (22)`.
        let on_5_10 = report("5.10", "mm--khugepaged");
        assert_eq!(
            on_5_10.problems,
            ["line 42: `Bail out!` is glued to the text before it (a missing newline); read as two lines"]
        );
        assert_eq!(value(&on_5_10, "collapse_full_madvise_anon"), &CaseResult::Fail);
        assert_eq!(
            value(&on_5_10, "collapse_single_pte_entry_compound_khugepaged_anon"),
            &missing("no result (bailed out: madvise(MADV_COLLAPSE): Invalid argument (22))")
        );
        assert_eq!(
            value(&on_5_10, MISSING_KEY),
            &missing("16 of 26 planned (bailed out: madvise(MADV_COLLAPSE): Invalid argument (22))")
        );

        // 7.2: a forked child bails out in the middle and the parent goes on to the end.
        let on_7_2 = report("7.2", "mm--khugepaged");
        assert_eq!(on_7_2.cases.len(), 26);
        assert_eq!(on_7_2.bail_out, None);
        let shared = on_7_2.cases.iter().find(|c| c.key == "collapse_max_ptes_shared_khugepaged_anon").unwrap();
        assert_eq!(shared.result, CaseResult::Pass);
        assert!(shared.diagnostics.iter().any(|d| d == "Bail out! Unexpected huge page"), "{shared:?}");
        assert_eq!(value(&on_7_2, "collapse_swapin_single_pte_madvise_anon"), &CaseResult::Fail);
    }

    #[test]
    fn kselftest_harness_names_are_the_keys() {
        let guard = report("6.12", "mm--guard-regions");
        assert_eq!(guard.cases.len(), 90);
        assert_eq!(guard.cases[0].key, "guard_regions_anon_basic");
        assert_eq!(guard.cases[0].result, CaseResult::Fail);
        assert_eq!(
            value(&guard, "guard_regions_anon_madvise_sequential"),
            &skip("MADV_SEQUENTIAL meaningful only for file-backed")
        );
        assert_eq!(guard.binary, CaseResult::Fail);

        let pidns = report("6.12", "proc--proc-pidns");
        assert_eq!(
            keys(&pidns),
            [
                "ns_pidns_mount_string_path",
                "ns_pidns_fsconfig_string_path",
                "ns_pidns_fsconfig_fd",
                "ns_pidns_reconfigure_remount",
                "ns_pidns_reconfigure_fsconfig_string_path",
                "ns_pidns_reconfigure_fsconfig_fd",
            ]
        );
        assert!(pidns.cases.iter().all(|c| c.result == CaseResult::Fail));
    }

    #[test]
    fn other_mm_tests() {
        // No `TAP version` line; XFAIL with the name in the directive; a random seed printed.
        let mremap = report("6.12", "mm--mremap_test");
        assert_eq!(mremap.cases.len(), 26);
        assert_eq!(
            value(&mremap, "mremap_source_and_destination_regions_overlapping"),
            &CaseResult::Xfail { reason: "mremap - Source and Destination Regions Overlapping".into() }
        );
        assert_eq!(value(&mremap, "2gb_mremap_source_pud-aligned_destination_pte-aligned"), &CaseResult::Fail);
        assert_eq!(value(&mremap, "8kb_mremap_source_pte-aligned_destination_pte-aligned"), &CaseResult::Pass);

        // A measurement in a description is masked.
        let pagemap = report("6.12", "mm--pagemap_ioctl");
        assert_eq!(pagemap.cases.len(), 118);
        assert_eq!(value(&pagemap, "transact_test_extra_pages_n_n_extra_thread_faults_n"), &CaseResult::Pass);
        assert_eq!(value(&pagemap, "sanity_tests_sd_output_buffer_can_be_0-2"), &CaseResult::Pass);

        // The same description twice by design, and `# SKIP NAME: line:N`.
        let mseal = report("6.12", "mm--mseal_test");
        assert_eq!(mseal.cases.len(), 88);
        assert_eq!(value(&mseal, "test_seal_mprotect"), &CaseResult::Pass);
        assert_eq!(value(&mseal, "test_seal_mprotect-2"), &CaseResult::Pass);
        assert_eq!(value(&mseal, "test_seal_discard_ro_anon_on_pkey-2"), &skip("line:1669"));
        // 5.10: `1..0 # SKIP reason`, exit 4.
        let mseal_5_10 = report("5.10", "mm--mseal_test");
        assert_eq!(mseal_5_10.binary, skip("sealing not supported, check CONFIG_64BIT"));
        assert_eq!(mseal_5_10.plan, Some(0));
        assert!(mseal_5_10.cases.is_empty());

        let soft_dirty = report("6.12", "mm--soft-dirty");
        assert_eq!(soft_dirty.cases.len(), 19);
        assert_eq!(soft_dirty.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 4);
        assert_eq!(value(&soft_dirty, "test_test_merge-anon_soft-dirty_after_remap_merge_1st_pg"), &CaseResult::Fail);

        // `# [RUN]` before a plan with no version line; `ok N # SKIP REASON` under its `[RUN]`.
        let wp = report("6.12", "mm--uffd-wp-mremap");
        assert_eq!(wp.cases.len(), 38);
        assert_eq!(
            value(&wp, "test_one_folio_size_4096_private_true_swapout_true_hugetlb_false"),
            &skip("MADV_PAGEOUT did not work, is swap enabled?")
        );
        assert_eq!(
            value(&wp, "test_one_folio_size_2097152_private_true_swapout_false_hugetlb_true"),
            &CaseResult::Pass
        );

        // A `[RUN]` with several results: context and description.
        let madv = report("6.12", "mm--madv_populate");
        assert_eq!(madv.cases[0].key, "test_prot_read__madv_populate_read_with_prot_read");
        assert_eq!(madv.cases[4].key, "test_holes__madv_populate_read_with_holes_in_the_middle");
        assert_eq!(madv.cases.len(), 21);

        // Bail out right after the plan.
        let split = report("5.10", "mm--split_huge_page_test");
        assert_eq!(
            values(&split),
            pairs(&[(
                MISSING_KEY,
                "missing: 62 of 62 planned (bailed out: /sys/kernel/debug/split_huge_pages open failed: No such file \
                 or directory)"
            )])
        );
    }

    #[test]
    fn proc_tests_print_nothing_and_are_their_exit() {
        let abort = report("5.10", "proc--proc-2-is-kthread");
        assert!(abort.cases.is_empty() && abort.problems.is_empty() && abort.plan.is_none());
        assert_eq!(abort.binary.to_string(), "killed by signal 6 (SIGABRT)");
        let failed = report("6.12", "proc--proc-empty-vm");
        assert!(failed.cases.is_empty() && failed.problems.is_empty());
        assert_eq!(failed.binary.to_string(), "not ok");
        let timed_out = parse(&[], &ProbeEnd::TimedOut(Duration::from_secs(300)));
        assert_eq!(timed_out.binary, CaseResult::Timeout { ms: Some(300_000) });
        assert_eq!(timed_out.binary.to_string(), "timeout");
        assert!(timed_out.cases.is_empty());
    }

    /// The same description on two kernels gives the same key; so does a case that passes on one and
    /// is skipped or fails (with another description) on the other, where the test names it elsewhere.
    #[test]
    fn keys_are_the_same_across_kernels() {
        let same_test: &[(&str, &[&str])] = &[
            ("mm--cow", &["5.10", "6.12"]),
            ("mm--khugepaged", &["5.10", "6.12", "7.2"]),
            ("mm--ksm_functional_tests", &["5.10", "6.1", "6.12", "7.2"]),
            ("mm--mkdirty", &["6.12", "7.2"]),
            ("mm--uffd-unit-tests", &["5.10", "6.12"]),
        ];
        for (name, kernels) in same_test {
            let by_text: Vec<BTreeMap<&str, String>> = kernels
                .iter()
                .map(|kernel| {
                    let (capture, report) = capture(kernel, name);
                    let texts: Vec<&str> = capture
                        .text
                        .lines()
                        .filter(|l| is_result_line(l))
                        .map(|l| {
                            l.split_once(' ')
                                .unwrap()
                                .1
                                .trim_start_matches("ok ")
                                .split_once(' ')
                                .map_or("", |(_, t)| t)
                        })
                        .collect();
                    let reported: Vec<&SelftestCase> = report.cases.iter().filter(|c| c.number.is_some()).collect();
                    assert_eq!(texts.len(), reported.len());
                    // Only texts printed once in the file: a repeated one is told apart by its context.
                    let mut map: BTreeMap<&str, Option<&str>> = BTreeMap::new();
                    for (text, case) in texts.into_iter().zip(reported) {
                        map.entry(text).and_modify(|k| *k = None).or_insert(Some(case.key.as_str()));
                    }
                    map.into_iter().filter_map(|(text, key)| Some((text, key?.to_owned()))).collect::<BTreeMap<_, _>>()
                })
                .collect();
            let mut compared = 0;
            for (a, b) in by_text.iter().zip(by_text.iter().skip(1)) {
                for (text, key) in a {
                    if let Some(other) = b.get(text) {
                        assert_eq!(key, other, "{name}: {text:?}");
                        compared += 1;
                    }
                }
            }
            // mkdirty prints one description six times, ksm_functional_tests' descriptions change with
            // the outcome and uffd-unit-tests' with the skip reason: their keys are compared whole in
            // their own tests.
            if matches!(*name, "mm--cow" | "mm--khugepaged") {
                assert!(compared > 0, "{name}");
            }
        }
    }

    // Synthetic inputs, one per quirk.

    #[test]
    fn empty_descriptions() {
        let report = parse_text("TAP version 13\n1..4\nok 1\nnot ok 2 -\nok 3 # SKIP\nok 4 #\n");
        assert_eq!(
            values(&report),
            pairs(&[("case-1", "ok"), ("case-2", "not ok"), ("case-3", "skip"), ("case-4", "ok")])
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // Under a context, the context names it.
        let report = parse_text("1..1\n# [RUN] test_thing\nok 1\n");
        assert_eq!(values(&report), pairs(&[("test_thing", "ok")]));
    }

    #[test]
    fn output_before_the_version_line_or_none() {
        let text = "page_size: 4096, mlock.soft: 8388608\n# [INFO] detected THP size: 2048 KiB\nTAP version 13\n\
                    # [INFO] detected hugetlb page size: 2048 KiB\n1..2\nok 1 first\nok 2 second\n";
        let report = parse_text(text);
        assert_eq!(values(&report), pairs(&[("first", "ok"), ("second", "ok")]));
        assert!(report.problems.is_empty());
        let without = parse_text(&text.replace("TAP version 13\n", ""));
        assert_eq!(without, report);
        // No plan at all in TAP output is a problem.
        let no_plan = parse_text("TAP version 13\nok 1 a\n");
        assert_eq!(no_plan.problems, ["no plan line (`1..N`): cannot tell whether every case ran"]);
    }

    #[test]
    fn glued_lines_are_cut() {
        let report = parse(
            &lines(
                "TAP version 13\n1..3\n# [RUN] test_a\nnot ok 1 Merging memory failed# [RUN] test_b\n\
                 ok 2 # SKIP Merging memory skippedBail out! no memory\n",
            ),
            &ProbeEnd::Exited(1),
        );
        assert_eq!(
            values(&report),
            pairs(&[
                ("test_a", "not ok"),
                ("test_b", "skip: Merging memory skipped"),
                (MISSING_KEY, "missing: 1 of 3 planned (bailed out: no memory)"),
            ])
        );
        assert_eq!(
            report.problems,
            [
                "line 4: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
                "line 5: `Bail out!` is glued to the text before it (a missing newline); read as two lines",
            ]
        );
        assert_eq!(report.bail_out.as_deref(), Some("no memory"));
        // A marker at the start of a line is the line's own; a non-ASCII start is no trouble.
        let report = parse_text("1..1\n\u{e9}# [INFO] x\nok 1 a\n");
        assert_eq!(
            report.problems,
            ["line 2: `# [INFO]` is glued to the text before it (a missing newline); read as two lines"]
        );
        let report = parse_text("1..1\nok 1 a\nxKTAP version 1\n");
        assert_eq!(
            report.problems,
            [
                "line 3: `KTAP version` is glued to the text before it (a missing newline); read as two lines",
                // A version line after the plan starts another program's TAP.
                "line 3: a second `TAP version` after the plan (an exec'd program's own output); its lines up to its \
                 `# Totals:` are read as diagnostics",
            ]
        );
        // Linear in a line's length, however many markers it holds.
        let report = parse_text(&"Bail out!# [RUN] x".repeat(20_000));
        assert_eq!(report.problems.len(), MAX_PROBLEMS + 1);
    }

    #[test]
    fn a_number_printed_twice() {
        let report = parse_text("1..3\nok 1 a\nok 2 b\nok 2 b\nnot ok 2 c\nok 3 d\n");
        assert_eq!(values(&report), pairs(&[("a", "ok"), ("b", "ok"), ("c", "not ok"), ("d", "ok")]));
        assert_eq!(
            report.problems,
            [
                "line 4: result 2 repeated verbatim (a copy of earlier output, e.g. flushed by a forked child); \
                 counted once",
                "line 5: test number 2 appears twice",
            ]
        );
        let report = parse_text("1..3\nok 1 a\nok 3 c\nok 2 b\n");
        assert_eq!(
            report.problems,
            ["line 3: test 3 is out of order; expected test 2", "line 4: test 2 is out of order; expected test 4"]
        );
        assert_eq!(report.cases.len(), 3);
    }

    #[test]
    fn planned_cases_missing_after_the_process_died() {
        let text =
            "TAP version 13\n1..5\n# [RUN] one\nok 1 x\n# [RUN] two\nok 2 x\n# [RUN] three\nok 3 x\n# [RUN] four\n";
        let report = parse(&lines(text), &ProbeEnd::Signaled(libc::SIGABRT));
        assert_eq!(
            values(&report),
            pairs(&[
                ("one", "ok"),
                ("two", "ok"),
                ("three", "ok"),
                ("four", "missing: no result (killed by signal 6 (SIGABRT))"),
                (MISSING_KEY, "missing: 1 of 5 planned (killed by signal 6 (SIGABRT))"),
            ])
        );
        assert_eq!(report.binary.to_string(), "killed by signal 6 (SIGABRT)");
        assert!(report.problems.is_empty());

        let timeout = parse(&lines("1..2\nok 1 a\n"), &ProbeEnd::TimedOut(Duration::from_millis(1500)));
        assert_eq!(value(&timeout, MISSING_KEY).to_string(), "missing: 1 of 2 planned (timeout)");
        let segv = parse(&lines("1..2\nok 1 a\n"), &ProbeEnd::Exited(139));
        assert_eq!(segv.binary.to_string(), "exit 139");
        assert_eq!(value(&segv, MISSING_KEY).to_string(), "missing: 1 of 2 planned (exit 139)");

        // A case may be called `missing` too.
        let report = parse_text("1..2\nok 1 missing\n");
        assert_eq!(keys(&report), ["missing", "missing-2"]);
        // More than planned.
        let report = parse_text("1..1\nok 1 a\nok 2 b\n");
        assert_eq!(report.problems, ["1 result is numbered outside the plan (`1..1`)"]);
        // A context left open after the plan is complete is not a missing case.
        let report = parse_text("1..1\n# [RUN] a\nok 1 a\n# [RUN] cleanup\n");
        assert_eq!(values(&report), pairs(&[("a", "ok")]));
    }

    #[test]
    fn bail_out() {
        let report = parse(&lines("1..2\nok 1 a\nBail out! no device\n# Totals: pass:1\n"), &ProbeEnd::Exited(1));
        assert_eq!(report.bail_out.as_deref(), Some("no device"));
        assert_eq!(value(&report, MISSING_KEY).to_string(), "missing: 1 of 2 planned (bailed out: no device)");
        assert!(report.problems.is_empty());
        // After the last case (`ksft_finished` with failures): the end, nothing missing.
        let report = parse(&lines("1..1\nnot ok 1 a\nBail out! 1 out of 1 tests failed\n"), &ProbeEnd::Exited(1));
        assert_eq!(values(&report), pairs(&[("a", "not ok")]));
        assert_eq!(report.bail_out.as_deref(), Some("1 out of 1 tests failed"));
        // Followed by results: a child's, a diagnostic of the next case.
        let report = parse_text("1..2\nok 1 a\nBail out!\nok 2 b\n");
        assert_eq!(report.bail_out, None);
        assert_eq!(report.cases[1].diagnostics, ["Bail out!"]);
    }

    #[test]
    fn directives_in_any_case() {
        let report = parse_text(
            "1..9\nok 1 a # skip no device\nnot ok 2 b # Xfail known\nnot ok 3 c # todo later\nok 4 d # XPASS\n\
             not ok 5 # error e failed\nnot ok 6 f # TIMEOUT\nnot ok 7 g # Error: prose\nok 8 h # SKIPPED why\n\
             ok 9 i # rcode=0\n",
        );
        assert_eq!(
            values(&report),
            pairs(&[
                ("a", "skip: no device"),
                ("b", "xfail: known"),
                ("c", "todo: later"),
                ("d", "xpass"),
                ("e_failed", "error: e failed"),
                ("f", "timeout"),
                ("g", "not ok"),
                ("h", "skip: why"),
                ("i", "ok"),
            ])
        );
        assert_eq!(report.cases[6].diagnostics, ["Error: prose"]);
        assert_eq!(report.cases[8].diagnostics, ["rcode=0"]);
        assert!(CaseResult::Xpass.is_failure() && !skip("").is_failure() && missing("x").is_failure());
    }

    #[test]
    fn skip_messages_name_the_case() {
        let report = parse_text(
            "1..6\nok 1 # SKIP UFFDIO_API (with syscall) (cannot open userfaultfd handle)\n\
             ok 2 # SKIP test_seal_x: line:12\nok 3 # SKIP Please run this test as root\n\
             ok 4 # XFAIL mremap - Source Address Misaligned (1KB-aligned)\n\
             # [RUN] test_one\nok 5 # SKIP userfaultfd not available\n\
             # [RUN] Basic COW ... with base page\n# MADV_PAGEOUT did not work\nok 6 # SKIP Basic COW ... with base page\n",
        );
        assert_eq!(
            values(&report),
            pairs(&[
                ("uffdio_api_with_syscall", "skip: cannot open userfaultfd handle"),
                ("test_seal_x", "skip: line:12"),
                ("please_run_this_test_as_root", "skip: Please run this test as root"),
                (
                    "mremap_source_address_misaligned_1kb-aligned",
                    "xfail: mremap - Source Address Misaligned (1KB-aligned)"
                ),
                ("test_one", "skip: userfaultfd not available"),
                ("basic_cow_with_base_page", "skip: MADV_PAGEOUT did not work"),
            ])
        );
    }

    #[test]
    fn whole_binary_skip() {
        let report = parse(&lines("TAP version 13\n1..0 # SKIP no sealing\n"), &ProbeEnd::Exited(4));
        assert_eq!(report.binary.to_string(), "skip: no sealing");
        assert!(report.cases.is_empty() && report.problems.is_empty());
        assert_eq!(parse(&lines("1..0 # skip no sealing\n"), &ProbeEnd::Exited(0)).binary, skip("no sealing"));
        assert_eq!(parse(&[], &ProbeEnd::Exited(4)).binary.to_string(), "skip");
        let failing = parse(&lines("1..0 # SKIP x\n"), &ProbeEnd::Exited(1));
        assert_eq!(failing.binary, CaseResult::Fail);
        assert_eq!(failing.problems, ["the plan skips the whole binary (`1..0 # SKIP`) but it exited 1"]);
    }

    #[test]
    fn binary_results() {
        let cases = [
            (ProbeEnd::Exited(0), "ok"),
            (ProbeEnd::Exited(1), "not ok"),
            (ProbeEnd::Exited(2), "xfail"),
            (ProbeEnd::Exited(3), "xpass"),
            (ProbeEnd::Exited(4), "skip"),
            (ProbeEnd::Exited(139), "exit 139"),
            (ProbeEnd::Exited(-1), "exit -1"),
            (ProbeEnd::Signaled(libc::SIGSEGV), "killed by signal 11 (SIGSEGV)"),
            (ProbeEnd::Signaled(99), "killed by signal 99 (?)"),
            (ProbeEnd::TimedOut(Duration::from_secs(u64::MAX)), "timeout"),
            (ProbeEnd::SpawnError("ENOENT\u{1b}[31m\n".into()), "could not be started (ENOENT)"),
        ];
        for (end, expected) in cases {
            assert_eq!(parse(&[], &end).binary.to_string(), expected, "{end:?}");
        }
    }

    #[test]
    fn indented_subtests() {
        let report = parse_text(
            "TAP version 14\n1..2\n# Subtest: suite\n    1..2\n    ok 1 first\n    not ok 2 second\nnot ok 1 suite\n\
             ok 2 other\n",
        );
        assert_eq!(
            values(&report),
            pairs(&[("suite__first", "ok"), ("suite__second", "not ok"), ("suite", "not ok"), ("other", "ok")])
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let orphans = parse_text("1..1\nok 1 a\n  ok 1 sub\n");
        assert_eq!(keys(&orphans), ["a", "sub"]);
        assert_eq!(
            orphans.problems,
            ["1 indented result line at the end belongs to no result line; kept as cases of their own"]
        );
        // Indentation of the whole output is not nesting.
        let indented = parse_text("  1..1\n  ok 1 a\n");
        assert_eq!(values(&indented), pairs(&[("a", "ok")]));
    }

    #[test]
    fn totals_and_summaries_are_ignored() {
        let report = parse_text(
            "TAP version 13\n1..2\n# Starting 2 tests from 1 test cases.\n#  RUN           global.a ...\n\
             #            OK  global.a\nok 1 global.a\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n\
             # Planned tests != run tests (2 != 1)\n#  RUN           global.b ...\n#      SKIP      no b\n\
             #            OK  global.b\nok 2 global.b # SKIP no b\n# PASSED: 2 / 2 tests passed.\n\
             # 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.\n\
             # Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0\n",
        );
        assert_eq!(values(&report), pairs(&[("global_a", "ok"), ("global_b", "skip: no b")]));
        assert!(report.problems.is_empty());
        assert!(report.cases[1].diagnostics.is_empty(), "{:?}", report.cases[1].diagnostics);
        // A harness test reported twice is suspicious.
        let twice = parse_text("1..2\n#  RUN  global.a ...\nok 1 global.a\n#  RUN  global.a ...\nok 2 global.a\n");
        assert_eq!(keys(&twice), ["global_a", "global_a-2"]);
        assert_eq!(twice.problems, ["the kselftest_harness test `global_a` reported more than once"]);
    }

    #[test]
    fn lines_that_only_look_like_results() {
        let report = parse_text(
            "1..1\nok 1abc\nok then\nokay\nok 99999999999999999999999 big\nok 1 real\n1..99999999999999999999\n",
        );
        assert_eq!(values(&report), pairs(&[("real", "ok")]));
        assert_eq!(
            report.problems,
            [
                "line 2: \"ok 1abc\" starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
                "line 3: \"ok then\" starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
                "line 5: \"ok 99999999999999999999999 big\" starts like a result line but is not one (`ok N \
                 DESCRIPTION`); ignored",
                "line 7: the plan's count is too large to read; ignored",
            ]
        );
        // TAP's numberless results take the next number.
        let numberless = parse_text("1..2\nok - a\nnot ok\n");
        assert_eq!(values(&numberless), pairs(&[("a", "ok"), ("case-2", "not ok")]));
        assert_eq!(numberless.cases[1].number, Some(2));
    }

    #[test]
    fn old_uffd_unit_tests_format() {
        let report = parse(
            &lines(
                "Testing UFFDIO_API (with syscall)... done\nTesting register-ioctls on anon... skipped [reason: \
                 feature missing]\nTesting zeropage on shmem... failed [reason: zeropage wrong]\n\
                 Testing move on anon... \ndone\nTesting wp-fork on hugetlb... \n",
            ),
            &ProbeEnd::Signaled(libc::SIGSEGV),
        );
        assert_eq!(
            values(&report),
            pairs(&[
                ("uffdio_api_with_syscall", "ok"),
                ("register-ioctls_on_anon", "skip: feature missing"),
                ("zeropage_on_shmem", "not ok"),
                ("move_on_anon", "ok"),
                ("wp-fork_on_hugetlb", "missing: no result (killed by signal 11 (SIGSEGV))"),
            ])
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // The verdict words alone are text unless a `Testing` line waits for one.
        assert!(parse_text("done\nfailed\n").cases.is_empty());
    }

    #[test]
    fn khugepaged_steps() {
        // In TAP output, colour-escaped step verdicts are diagnostics of the TAP result.
        let tap = parse_text("TAP version 13\n1..1\n# Allocate... \u{1b}[31mFail: Bad\u{1b}[0m\nok 1 alloc\n");
        assert_eq!(values(&tap), pairs(&[("alloc", "ok")]));
        assert_eq!(tap.cases[0].diagnostics, ["Allocate... Fail: Bad"]);
        // With no TAP at all (older khugepaged), each step is a case.
        let old = parse(
            &lines(
                "Save THP and khugepaged settings... \u{1b}[32mOK\u{1b}[0m\nAllocate huge page on fault... \
                 \u{1b}[32mOK\u{1b}[0m\nCollapse fully populated PTE table.... \u{1b}[31mFail\u{1b}[0m\n\
                 Swapout one page... \u{1b}[33mSkip: no swap\u{1b}[0m\nConstruct PTE page table full of pages\n \
                 \u{1b}[32mOK\u{1b}[0m\n",
            ),
            &ProbeEnd::Exited(1),
        );
        assert_eq!(
            values(&old),
            pairs(&[
                ("save_thp_and_khugepaged_settings", "ok"),
                ("allocate_huge_page_on_fault", "ok"),
                ("collapse_fully_populated_pte_table", "not ok"),
                ("swapout_one_page", "skip: no swap"),
                ("construct_pte_page_table_full_of_pages", "ok"),
            ])
        );
    }

    #[test]
    fn masking() {
        assert_eq!(mask("mmap() @ 0x7ffff7ff4000-0x7ffff7ff9000 p=0xffffffffffffffff"), "mmap() @ ADDR-ADDR p=ADDR");
        assert_eq!(mask("vma 7ffff7ff4000-7ffff7ff9000 flags 0x10 deadbeef"), "vma ADDR-ADDR flags 0x10 deadbeef");
        assert_eq!(mask("child pid 1234 (pid=77, tid: 8) pidfd 3 pidns"), "child pid N (pid=N, tid: N) pidfd 3 pidns");
        assert_eq!(
            mask("random seed: 1796171248, pattern_seed=42, seeds 3"),
            "random seed: N, pattern_seed=N, seeds 3"
        );
        assert_eq!(
            mask("done (0.123 s) in 12 ms, took 3.2s, 222374ns, 2 sizes, 16 kB, 5 secs"),
            "done (N s) in N ms, took Ns, Nns, 2 sizes, 16 kB, N secs"
        );
        assert_eq!(mask("at 1700000000 and 140737353920512, size=2097152"), "at N and N, size=2097152");
        assert_eq!(
            mask("transact_test Extra pages 1 (0.0%), extra thread faults 1."),
            "transact_test Extra pages N (N%), extra thread faults N."
        );
        assert_eq!(
            mask("Success reaping a child with 2MB of memory allocations"),
            "Success reaping a child with NMB of memory allocations"
        );
        assert_eq!(
            mask("8KB mremap (2048 kB) line:1669 5.10.223 é 0x"),
            "8KB mremap (2048 kB) line:1669 5.10.223 é 0x"
        );
        assert_eq!(mask(&mask("pid 12 at 0x123456")), mask("pid 12 at 0x123456"), "idempotent");
    }

    #[test]
    fn key_rule() {
        assert_eq!(
            case_key("Basic COW after fork() ... with PTE-mapped THP (16 kB)"),
            "basic_cow_after_fork_with_pte-mapped_thp_16_kb"
        );
        assert_eq!(case_key("mremap - Source"), "mremap_source");
        assert_eq!(case_key("guard_regions.anon.basic"), "guard_regions_anon_basic");
        assert_eq!(case_key("a__b--c"), "a_b_c");
        assert_eq!(case_key("  --(x)--  "), "x");
        assert_eq!(case_key("R/W longterm GUP pin"), "r_w_longterm_gup_pin");
        assert_eq!(case_key("mmap() @ 0x7ffff7ff4000 took 12 ms"), "mmap_addr_took_n_ms");
        assert_eq!(case_key("日本語"), "");
        let long = "word ".repeat(100);
        let key = case_key(&long);
        assert_eq!(key.len(), MAX_KEY_LEN);
        assert!(key.starts_with("word_word_"));
        assert_ne!(key, case_key(&format!("{long} more")), "a cut key keeps a hash of the whole");
        assert_eq!(key, case_key(&long), "and is the same every time");
    }

    #[test]
    fn caps_hold() {
        let mut text = String::from("1..100000\n");
        for n in 1..=6000 {
            text.push_str(&format!("ok {n} same\n"));
        }
        text.push_str("# [RUN] the last\n");
        let report = parse_text(&text);
        check_invariants(&report);
        assert_eq!(report.cases.len(), MAX_CASES);
        assert_eq!(report.cases[1].key, "same-2");
        assert_eq!(report.problems, ["1906 more results beyond the first 4094 cases were not kept"]);
        assert_eq!(
            values(&report)[MAX_CASES - 2..],
            pairs(&[
                ("the_last", "missing: no result (exit 0)"),
                (MISSING_KEY, "missing: 93999 of 100000 planned (exit 0)")
            ])
        );

        let many_problems: String = "1..1\n".to_owned() + &"ok x\n".repeat(500);
        let report = parse_text(&many_problems);
        assert_eq!(report.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(report.problems.last().unwrap(), "… and 436 more problems");

        let long = format!("1..1\nok 1 # SKIP {}\n", "why ".repeat(1000));
        let report = parse_text(&long);
        check_invariants(&report);
        let CaseResult::Skip { reason } = &report.cases[0].result else { panic!() };
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.ends_with('…'));
        let deep = format!("1..1\n# [RUN] {}\n{}ok 1 a\n", "x".repeat(1 << 16), "# d\n".repeat(50));
        let report = parse_text(&deep);
        check_invariants(&report);
        assert_eq!(report.cases[0].diagnostics.len(), MAX_CASE_DIAGNOSTICS);
    }

    // Outputs the kernel captures above do not show (`other_captures`).

    #[test]
    fn other_captures_keep_the_invariants() {
        for capture in other_captures() {
            let report = parse(&lines(capture.text), &capture.end);
            check_invariants(&report);
            assert_eq!(parse(&lines(capture.text), &capture.end), report, "{}: deterministic", capture.name);
        }
    }

    #[test]
    fn x86_skip_lines_are_a_skip_with_their_reason() {
        // test_shadow_stack prints `[SKIP]\tCould not enable Shadow stack` and returns 1 (a real run: qemu64
        // has no CET).
        let shstk = report("6.12", "x86--test_shadow_stack_64");
        assert_eq!(shstk.binary, skip("Could not enable Shadow stack"));
        assert!(shstk.cases.is_empty() && shstk.problems.is_empty(), "{shstk:?}");
        // A crash after the `[SKIP]` is still the crash.
        let crashed = parse(&lines("[SKIP]\tno CET\n"), &ProbeEnd::Signaled(libc::SIGSEGV));
        assert_eq!(crashed.binary, CaseResult::Signaled { signal: libc::SIGSEGV });
    }

    #[test]
    fn x86_status_lines_are_said_not_to_be_split() {
        // A real sigreturn_32 excerpt: `[OK]`, `[WARN]`, `[SKIP]`, `[RUN]` lines and no TAP.
        let sigreturn = report("lkp-2023", "x86--sigreturn_32");
        assert!(sigreturn.cases.is_empty());
        assert_eq!(sigreturn.binary, CaseResult::Pass);
        assert_eq!(
            sigreturn.problems,
            ["no TAP: 3 `[OK]`, 0 `[FAIL]` and 1 `[SKIP]` lines (x86 selftest style), not split into cases"]
        );
        // A real sigreturn_64 run on Debian 6.12: the same, longer.
        let sigreturn = report("6.12", "x86--sigreturn_64");
        assert!(sigreturn.cases.is_empty());
        assert_eq!(sigreturn.binary, CaseResult::Pass);
        assert_eq!(
            sigreturn.problems,
            ["no TAP: 12 `[OK]`, 0 `[FAIL]` and 5 `[SKIP]` lines (x86 selftest style), not split into cases"]
        );
        let vdso = report("reconstructed", "vDSO--vdso_test_correctness");
        assert_eq!(vdso.binary, CaseResult::Fail);
        assert_eq!(
            vdso.problems,
            ["no TAP: 1 `[OK]`, 1 `[FAIL]` and 0 `[SKIP]` lines (x86 selftest style), not split into cases; first \
                 failure: \"Times are out of sequence\""]
        );
        // Free text alone says so too; no output at all stays silent (all of selftests/proc).
        let text = parse(&lines("done (all tests OK)\n"), &ProbeEnd::Exited(0));
        assert_eq!(text.problems, ["no TAP and no line read as a result: the output is not split into cases"]);
    }

    #[test]
    fn khugepaged_without_thp_is_a_skip_though_its_steps_count_failures() {
        // A real run (PROVENANCE.md): in a 512 MiB guest the kernel turns THP off, and khugepaged's plan
        // skips it all with KSFT_SKIP's exit 4 — a skip, not four failed steps.
        let skipped = report("6.12", "mm--khugepaged-512m");
        assert_eq!(skipped.binary, CaseResult::Skip { reason: "Transparent Hugepages not available".into() });
        assert_eq!(skipped.plan, Some(0));
        assert!(skipped.problems.is_empty(), "{:?}", skipped.problems);
        let madvise = report("6.12", "mm--hugetlb-madvise-512m");
        assert_eq!(madvise.binary, CaseResult::Pass);
        assert_eq!(madvise.cases.len(), 1);
        assert_eq!(madvise.cases[0].result, CaseResult::Pass);
    }

    #[test]
    fn khugepaged_steps_exit_with_their_failure_count() {
        let steps = report("reconstructed", "mm--khugepaged-steps");
        // Exit 4 is four failed steps, not KSFT_SKIP.
        assert_eq!(steps.binary, CaseResult::Fail);
        assert!(steps.problems.is_empty(), "{:?}", steps.problems);
        assert_eq!(steps.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 4);
        // Under a `Run test:` line every step is `CONTEXT__STEP`, one step or several, so that a test
        // that stops after its first failed step keeps the key of that step.
        assert_eq!(
            values(&steps)[..5],
            pairs(&[
                ("save_thp_and_khugepaged_settings", "ok"),
                ("collapse_full_khugepaged_anon__collapse_multiple_fully_populated_pte_table", "not ok"),
                ("collapse_max_ptes_none_khugepaged_anon__maybe_collapse_with_max_ptes_none_exceeded", "ok"),
                ("collapse_max_ptes_none_khugepaged_anon__collapse_with_max_ptes_none_ptes_empty", "not ok"),
                ("collapse_swapin_single_pte_khugepaged_anon__swapout_one_page", "not ok"),
            ])
        );
        assert_eq!(
            value(&steps, "collapse_max_ptes_swap_khugepaged_anon__maybe_collapse_with_max_ptes_swap_exceeded"),
            &CaseResult::Fail
        );
        // A count that does not match is said.
        let odd = parse(&lines("Step one... OK\nStep two... Fail\n"), &ProbeEnd::Exited(3));
        assert_eq!(odd.binary, CaseResult::Fail);
        assert_eq!(
            odd.problems,
            ["exit 3, but 1 of its step lines failed (khugepaged-style output exits with the number of failed steps)"]
        );
        // TAP output keeps kselftest's exit codes.
        assert_eq!(
            report("5.10", "mm--ksm_functional_tests").binary,
            skip("accessing \"/proc/self/ksm_merging_pages\") failed")
        );
    }

    #[test]
    fn a_bail_out_no_case_carries_is_written() {
        let early = report("reconstructed", "mm--khugepaged-bail-before-plan");
        assert_eq!(early.binary, CaseResult::Fail);
        assert_eq!(early.bail_out.as_deref(), Some("Reading PMD pagesize failed"));
        assert_eq!(early.problems, ["bailed out: Reading PMD pagesize failed"]);
        // Carried by a `missing` value: not twice.
        assert!(report("5.10", "mm--split_huge_page_test").problems.is_empty());
        // `N out of M tests failed` only counts the failed cases.
        assert!(report("7.2", "mm--mkdirty").problems.is_empty());
        // After the last planned case, a real reason is written.
        let late = parse(&lines("1..1\nok 1 a\nBail out! cleanup failed\n"), &ProbeEnd::Exited(1));
        assert_eq!(late.problems, ["bailed out: cleanup failed"]);
    }

    #[test]
    fn a_tap_stream_in_which_nothing_ran_says_so() {
        let nothing = report("reconstructed", "kselftest_h--header-then-finished");
        assert_eq!(nothing.binary, CaseResult::Pass);
        assert!(nothing.cases.is_empty());
        assert_eq!(nothing.problems, ["a `TAP version` line but no plan and no result: nothing ran"]);
        // A whole-binary skip ran nothing on purpose.
        assert!(parse(&lines("TAP version 13\n1..0 # SKIP x\n"), &ProbeEnd::Exited(4)).problems.is_empty());
    }

    #[test]
    fn an_exec_d_programs_tap_is_not_the_binarys() {
        let exec = report("reconstructed", "mm--exec-child-tap");
        assert_eq!(values(&exec), pairs(&[("test_unmerge", "ok"), ("test_fork_exec", "ok"), ("test_last", "ok")]));
        assert_eq!(exec.cases[1].description, "fork and exec");
        assert!(exec.cases[1].diagnostics.iter().any(|d| d == "ok 3 child done"), "{:?}", exec.cases[1]);
        assert_eq!(
            exec.problems,
            ["line 6: a second `TAP version` after the plan (an exec'd program's own output); its lines up to its \
                 `# Totals:` are read as diagnostics"]
        );
        // A program that dies without its totals ends at the first result beyond its own plan.
        let died = parse_text("1..2\nok 1 a\nTAP version 13\n1..1\nok 1 child\nok 2 b\n");
        assert_eq!(values(&died), pairs(&[("a", "ok"), ("b", "ok")]));
    }

    #[test]
    fn ksft_exit_skip_one_past_the_last_number_is_that_case() {
        // kselftest.h before its fix printed `ok 2 # SKIP` for the first case of `1..1`.
        let madvise = report("reconstructed", "mm--hugetlb-madvise");
        assert_eq!(values(&madvise), pairs(&[("not_enough_free_huge_pages", "skip: have 0, need 20")]));
        assert_eq!(madvise.cases[0].number, Some(1));
        assert!(madvise.problems.is_empty(), "{:?}", madvise.problems);
        // Not the last line, or not exit 4: a gap as before.
        let gap = parse(&lines("1..3\nok 1 a\nok 3 # SKIP x\n"), &ProbeEnd::Exited(0));
        assert_eq!(gap.problems, ["line 3: test 3 is out of order; expected test 2"]);
        assert_eq!(value(&gap, MISSING_KEY), &missing("1 of 3 planned (exit 0)"));
        let followed = parse(&lines("1..3\nok 2 # SKIP x\nok 3 b\n"), &ProbeEnd::Exited(4));
        assert_eq!(followed.problems, ["line 2: test 2 is out of order; expected test 1"]);
    }

    #[test]
    fn a_carriage_return_ends_a_line() {
        let cr_only = report("reconstructed", "cr-only-line-ends");
        assert_eq!(values(&cr_only), pairs(&[("test_a", "ok"), ("test_b", "not ok"), ("test_c", "skip: third")]));
        assert!(cr_only.problems.is_empty());
        let progress = report("reconstructed", "cr-progress");
        assert_eq!(values(&progress), pairs(&[("test_progress", "ok"), ("test_after", "ok")]));
        assert!(progress.problems.is_empty());
        // A `\r\n` ending is one line end.
        assert_eq!(parse_text("1..1\r\nok 1 a\r\n"), parse_text("1..1\nok 1 a\n"));
        // An overwritten step is not one step: only what follows its last `\r` is.
        let step = parse(&lines("Scan 1/3\rScan 2/3\rCollapse... OK\n"), &ProbeEnd::Exited(0));
        assert_eq!(values(&step), pairs(&[("collapse", "ok")]));
    }

    #[test]
    fn shared_skip_reasons_key_by_number() {
        let skips = report("reconstructed", "same-skip-reasons");
        assert_eq!(keys(&skips), ["case-1", "case-2", "anon_works", "case-4", "case-5", "case-6"]);
        assert_eq!(value(&skips, "case-4"), &skip("hugetlb not available"));
        // Case 2 starts passing: only its own key changes.
        let (capture, _) = capture("reconstructed", "same-skip-reasons");
        let text = capture.text.replace("ok 2 # SKIP hugetlb not available", "ok 2 hugetlb works");
        let fixed = parse_text(&text);
        assert_eq!(keys(&fixed), ["case-1", "hugetlb_works", "anon_works", "case-4", "case-5", "case-6"]);
        // A reason printed once still names its case; descriptions repeated by design keep `-2`.
        assert_eq!(keys(&parse_text("1..1\nok 1 # SKIP Please run as root\n")), ["please_run_as_root"]);
        assert_eq!(report("6.12", "mm--mseal_test").cases.iter().filter(|c| c.key.starts_with("case-")).count(), 0);
    }

    #[test]
    fn measured_numbers_stay_out_of_keys() {
        let (capture, fixed) = capture("6.12", "mm--pagemap_ioctl");
        let key = "unpopulated_scan_test_unpopulated_ptes_reported_written_by_both_paths_n_n_of_n";
        assert_eq!(value(&fixed, key), &CaseResult::Pass);
        // The same case on a kernel that reports none of the 16 pages: `ok → not ok`, same key.
        let line = capture.text.lines().find(|l| l.contains("reported written by both paths")).unwrap();
        let broken_line = line.replacen("ok", "not ok", 1).replace("(16, 16 of 16)", "(16, 0 of 16)");
        let broken = parse(&lines(&capture.text.replace(line, &broken_line)), &capture.end);
        assert_eq!(keys(&broken), keys(&fixed));
        assert_eq!(value(&broken, key), &CaseResult::Fail);
        // Numbers that name a case stay.
        assert_eq!(
            mask("(2048 kB) (22) (size=4096, private=true) (1KB-aligned)"),
            "(2048 kB) (22) (size=4096, private=true) (1KB-aligned)"
        );
        assert_eq!(mask("took (3/4) and (1 vs 2), (16, 0 of 16)"), "took (N/N) and (N vs N), (N, N of N)");
    }

    /// Lines that look like kselftest output, in random order.
    fn kselftest_like() -> impl Strategy<Value = Vec<String>> {
        let line = prop_oneof![
            Just("TAP version 13".to_owned()),
            (0u64..4).prop_map(|n| format!("1..{n}")),
            Just("1..0 # SKIP nothing".to_owned()),
            (0u64..5, "[a-c ()#:.-]{0,8}").prop_map(|(n, d)| format!("ok {n} {d}")),
            (0u64..5, "[a-c ]{0,3}").prop_map(|(n, d)| format!("not ok {n} # SKIP {d}")),
            "[a-c ]{0,6}".prop_map(|n| format!("# [RUN] {n}")),
            "[a-c ]{0,6}".prop_map(|n| format!("# [INFO] {n}")),
            "[a-c]{0,4}".prop_map(|n| format!("#  RUN           g.{n} ...")),
            "[a-c ]{0,6}".prop_map(|n| format!("# Run test: {n}")),
            "[a-c ]{0,6}".prop_map(|n| format!("Testing {n}... ")),
            Just("done".to_owned()),
            Just("skipped [reason: x]".to_owned()),
            Just("# Step... \u{1b}[32mOK\u{1b}[0m".to_owned()),
            Just("Step... Fail: x".to_owned()),
            Just("Bail out! why".to_owned()),
            Just("# Totals: pass:1".to_owned()),
            Just("ok 1 x# [RUN] y".to_owned()),
            "\\PC{0,12}",
        ];
        let indented = ((0usize..3), line).prop_map(|(indent, line)| "  ".repeat(indent) + &line);
        prop::collection::vec(indented, 0..40)
    }

    fn any_end() -> impl Strategy<Value = ProbeEnd> {
        prop_oneof![
            (-2i32..140).prop_map(ProbeEnd::Exited),
            (0i32..70).prop_map(ProbeEnd::Signaled),
            (0u64..10_000).prop_map(|ms| ProbeEnd::TimedOut(Duration::from_millis(ms))),
            "\\PC{0,8}".prop_map(ProbeEnd::SpawnError),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC*(\n\\PC*){0,20}", end in any_end()) {
            check_invariants(&parse(&lines(&text), &end));
        }

        #[test]
        fn kselftest_like_input_keeps_the_invariants(input in kselftest_like(), end in any_end()) {
            let report = parse(&input, &end);
            check_invariants(&report);
            // One case per line at most, plus the two that stand for unreported ones.
            prop_assert!(report.cases.len() <= input.len() + 2);
        }
    }

    /// Checks every capture in `$KSNAP_KSELFTEST_CAPTURES` (`KERNEL/COLLECTION--TEST.stdout` with a
    /// `.status` of `exit N` next to it, as captured for tests/data/kselftest/). Run with
    /// `cargo test -p ksnap-vm kselftest -- --ignored` after capturing new ones.
    #[test]
    #[ignore = "reads $KSNAP_KSELFTEST_CAPTURES"]
    fn captures_in_a_directory() {
        let Ok(dir) = std::env::var("KSNAP_KSELFTEST_CAPTURES") else { return };
        let mut checked = 0;
        for kernel in std::fs::read_dir(&dir).unwrap().flatten() {
            for file in std::fs::read_dir(kernel.path()).unwrap().flatten() {
                let path = file.path();
                if path.extension().is_none_or(|e| e != "stdout") {
                    continue;
                }
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                let status = std::fs::read_to_string(path.with_extension("status")).unwrap_or_default();
                let end = match status.trim().strip_prefix("exit ").and_then(|c| c.parse().ok()) {
                    Some(134) => ProbeEnd::Signaled(libc::SIGABRT),
                    Some(143) => ProbeEnd::TimedOut(Duration::from_secs(1)),
                    Some(code) => ProbeEnd::Exited(code),
                    None => ProbeEnd::Exited(0),
                };
                let report = parse(&lines(&text), &end);
                check_invariants(&report);
                let result_lines = text.lines().filter(|l| is_result_line(l)).count();
                let reported = report.cases.iter().filter(|c| c.number.is_some()).count();
                assert_eq!(reported, result_lines, "{}", path.display());
                checked += 1;
            }
        }
        eprintln!("{checked} captures checked");
    }
}
