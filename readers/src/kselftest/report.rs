//! What [`parse`](super::parse) gives: the report of one selftest binary, its cases, their results,
//! and the bounds every reader of kselftest keeps (the rules are the module docs of [`crate::kselftest`]).

use std::fmt;

use serde::Serialize;

use crate::tap;
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
