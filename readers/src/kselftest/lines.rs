//! kselftest's lines: carriage returns and colour escapes removed, glued lines cut apart, each piece
//! classified — the shared TAP lexer ([`crate::tap`], lenient) first, then what kselftest's binaries
//! print beside TAP (`# [RUN]` contexts, uffd-unit-tests' and khugepaged's verdicts, x86 status lines).

use crate::tap::{self, Dialect, Problems, ResultLine, TapLine};

/// Every line cut at its carriage returns, each piece cleaned ([`clean_line`]) and numbered with its
/// line. A `\r` ends what it overwrote: a progress line redrawn in place is as many lines as it was
/// drawn, and output whose lines end in `\r` alone is read line by line. The empty piece after a
/// `\r\n` ending is dropped.
pub(super) fn split_carriage_returns(stdout: &[String]) -> Vec<(usize, String)> {
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
pub(super) fn clean_line(line: &str) -> String {
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
pub(super) const GLUE_MARKERS: &[&str] = &[
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
pub(super) struct Entry<'a> {
    /// Line number in the output, from 1.
    pub(super) line: usize,
    pub(super) indent: usize,
    /// The piece itself, for when it is only a diagnostic (an exec'd program's output).
    pub(super) text: &'a str,
    pub(super) class: Class<'a>,
}

#[derive(Debug)]
pub(super) enum Class<'a> {
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
pub(super) enum StartKind {
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
pub(super) enum Status {
    Ok,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Verdict<'a> {
    Pass,
    Fail,
    Skip(&'a str),
}

/// Cuts glued lines apart and classifies every piece.
pub(super) fn split_and_classify<'a>(lines: &'a [(usize, String)], problems: &mut Problems) -> Vec<Entry<'a>> {
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

pub(super) fn classify(body: &str) -> Class<'_> {
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
pub(super) fn classify_diagnostic(text: &str) -> Class<'_> {
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
pub(super) fn parse_status(body: &str) -> Option<(Status, &str)> {
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
pub(super) fn uffd_verdict(text: &str) -> Option<Verdict<'_>> {
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
pub(super) fn bracketed_reason(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("[reason:").and_then(|r| r.strip_suffix(']')).map_or(text, str::trim)
}

/// khugepaged's `STEP... OK` (`Fail: REASON`, `Skip`): the step's text and its verdict.
pub(super) fn parse_step(text: &str) -> Option<(&str, Verdict<'_>)> {
    let dots = text.rfind("...")?;
    let verdict = step_verdict(text[dots + 3..].trim_start_matches('.').trim())?;
    let step = text[..dots].trim_end_matches('.').trim();
    (!step.is_empty()).then_some((step, verdict))
}

/// `OK`, `Fail[: REASON]`, `Skip[: REASON]`, any case.
pub(super) fn step_verdict(text: &str) -> Option<Verdict<'_>> {
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
