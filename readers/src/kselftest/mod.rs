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
//! The code: TAP lines are classified by the lexer shared with [`crate::ktap`] (`tap.rs`, in its lenient
//! dialect); `report.rs` holds what a reading gives (the report, its cases, their results) and its
//! bounds, `lines.rs` cleans and cuts lines and reads what binaries print beside TAP, `keys.rs` masks
//! texts and makes keys, `parser.rs` builds the cases, `tests.rs` tests it all on the capture table of
//! `captures.rs`.
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

#[cfg(test)]
mod captures;
mod keys;
mod lines;
mod parser;
mod report;
#[cfg(test)]
mod tests;

use crate::tap::Problems;
use ksnap_protocol::ProbeEnd;

pub use keys::{case_key, mask};
use lines::{split_and_classify, split_carriage_returns, Class};
use parser::Parser;
pub use report::{
    CaseResult, SelftestCase, SelftestReport, MAX_CASES, MAX_CASE_DIAGNOSTICS, MAX_DESCRIPTION_CHARS, MAX_KEY_LEN,
    MAX_PROBLEMS, MAX_REASON_CHARS, MISSING_KEY,
};

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
