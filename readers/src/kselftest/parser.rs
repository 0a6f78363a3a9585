//! The tree builder: classified lines ([`super::lines`]) → cases with their contexts, numbers and
//! diagnostics, the binary's result from how it ended, then the keys ([`super::keys`]).

use std::collections::{HashMap, HashSet};

use ksnap_protocol::ProbeEnd;

use super::keys::{cap_key, case_key, fnv1a, join_keys, mask, tidy};
use super::lines::{clean_line, Class, Entry, StartKind, Status, Verdict};
use super::report::{
    CaseResult, SelftestCase, SelftestReport, MAX_CASES, MAX_CASE_DIAGNOSTICS, MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS,
    MISSING_KEY,
};
use crate::tap::{quote_shortened, Dialect, Directive, Problems, ResultLine};

/// A context in force: the start line and how many results it named.
#[derive(Debug)]
pub(super) struct Group {
    kind: StartKind,
    /// Masked.
    name: String,
    results: usize,
}

/// A result before keys are given out.
#[derive(Debug)]
pub(super) struct Raw {
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
pub(super) struct ChildStream {
    plan: Option<u64>,
    results: u64,
}

/// A skip result numbered one past the next number, whose out-of-order problem waits to see whether
/// it is `ksft_exit_skip`'s last word (see [`Parser::finish`]).
#[derive(Debug)]
pub(super) struct SkipOnePast {
    problem: String,
    number: u64,
    expected: u64,
    raw: usize,
}

pub(super) struct Parser {
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
    pub(super) fn new(problems: Problems, steps_are_results: bool, root_indent: usize) -> Self {
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

    pub(super) fn entry(&mut self, entry: &Entry) {
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
            Class::Version => self.version(line, entry.text),
            Class::Status(status, text) => self.status(entry.text, *status, text),
            Class::Plan { count, comment } => self.plan(line, entry.indent, *count, *comment),
            Class::Result(result) if entry.indent > self.root_indent => self.indented_result(result),
            Class::Result(result) => self.result(line, result),
            Class::NotAResult(text) => self.problems.push(format!(
                "line {line}: {} starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
                quote_shortened(text)
            )),
            Class::BailOut(reason) => self.bail_out_line(reason),
            Class::Start { kind, name } => self.start(*kind, name),
            Class::Info(name) => self.info_line(name),
            Class::UffdStart { name, verdict } => self.uffd_start(name, *verdict),
            Class::UffdVerdict(verdict, text) => self.uffd_verdict(*verdict, text),
            Class::Step { text, verdict, diagnostic } => self.step(text, *verdict, *diagnostic),
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

    /// A `TAP version` line; after the plan or a result, the start of an exec'd program's own TAP.
    fn version(&mut self, line: usize, text: &str) {
        if self.plan.is_some() || !self.raws.is_empty() {
            // A test that execs a program printing TAP of its own (numbered from 1, with
            // its own `[RUN]` lines): read as the binary's, its numbers and contexts would
            // take the parent's next result away from its case.
            self.problems.push(format!(
                "line {line}: a second `TAP version` after the plan (an exec'd program's own output); its \
                 lines up to its `# Totals:` are read as diagnostics"
            ));
            self.child = Some(ChildStream { plan: None, results: 0 });
            self.diagnostic(text, false);
        }
        self.version_seen = true;
    }

    /// An x86-style `[OK]`, `[FAIL]` or `[SKIP]` line (`line` whole, `text` after the status): counted,
    /// and the first failure's and skip's texts kept.
    fn status(&mut self, line: &str, status: Status, text: &str) {
        self.diagnostic(line, false);
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

    fn bail_out_line(&mut self, reason: &str) {
        // If results follow, it was not the end (kselftest_harness runs each test in a child,
        // which may exit through it): then it is a diagnostic of the next case.
        self.diagnostic(&format!("Bail out! {reason}"), false);
        self.bail_out = Some(tidy(reason, MAX_REASON_CHARS));
    }

    /// `# [INFO] NAME`: the next result's context while no start line is in force.
    fn info_line(&mut self, name: &str) {
        self.diagnostic(&format!("[INFO] {name}"), false);
        if self.current.is_none() {
            self.info = Some(mask(name));
        }
    }

    /// The old uffd-unit-tests' `Testing NAME... `, with its verdict when it came on the same line.
    fn uffd_start(&mut self, name: &str, verdict: Option<Verdict>) {
        self.start(StartKind::Uffd, name);
        match verdict {
            Some(verdict) => self.verdict_result(verdict, name, false),
            None => self.uffd_waiting = true,
        }
    }

    /// A uffd-unit-tests verdict alone on its line: the result of the `Testing NAME... ` awaiting one,
    /// else free text.
    fn uffd_verdict(&mut self, verdict: Verdict, text: &str) {
        if self.uffd_waiting {
            let name = self.current.map(|g| self.groups[g].name.clone()).unwrap_or_default();
            self.verdict_result(verdict, &name, false);
        } else {
            self.text(text);
        }
    }

    /// A khugepaged step line: a result in output with no TAP, else at most a diagnostic.
    fn step(&mut self, text: &str, verdict: Verdict, diagnostic: Option<&str>) {
        if self.steps_are_results {
            self.verdict_result(verdict, text, true);
        } else if let Some(diagnostic) = diagnostic {
            self.diagnostic(diagnostic, false);
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
        let Some(number) = self.number(line, result) else { return };
        self.last_number = Some(number);
        self.bail_out = None;

        let message = result.message();
        let (name, reason, name_is_reason) = self.name_and_reason(result, message);
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

    /// The TAP number of a result line, its own or the next, checked against those seen (problems for
    /// repeats and gaps); `None` for a line repeating a result verbatim, which is counted once.
    fn number(&mut self, line: usize, result: &ResultLine) -> Option<u64> {
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
                return None;
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
        Some(number)
    }

    /// What names a result line's case and what its value's reason is (`message` being its directive's
    /// message), and whether the name is only that reason (see [`Raw::name_is_reason`]).
    fn name_and_reason(&self, result: &ResultLine, message: &str) -> (String, String, bool) {
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
        (name, reason, name_is_reason)
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

    pub(super) fn finish(mut self, end: &ProbeEnd, tap: bool) -> SelftestReport {
        self.settle_skip_one_past(end);
        // What ended the output: the last `Bail out!` if only diagnostics follow it, else the process.
        let bail_out = self.bail_out.take();
        let ended = match &bail_out {
            Some(reason) if reason.is_empty() => "bailed out".to_owned(),
            Some(reason) => format!("bailed out: {reason}"),
            None => end_phrase(end),
        };
        let reported = self.plan.map(|plan| self.numbers.keys().filter(|&&n| n >= 1 && n <= plan).count() as u64);
        self.case_ended_inside(end, reported, &ended);
        if !self.orphans.is_empty() {
            self.problems.push(format!(
                "{} indented result line{} at the end belong{} to no result line; kept as cases of their own",
                self.orphans.len(),
                if self.orphans.len() == 1 { "" } else { "s" },
                if self.orphans.len() == 1 { "s" } else { "" }
            ));
        }
        self.planned_cases_missing(tap, reported, &ended);
        self.notes_on_the_whole_output(tap, bail_out.as_deref());
        if self.dropped > 0 {
            self.problems.push(format!(
                "{} more result{} beyond the first {} cases were not kept",
                self.dropped,
                if self.dropped == 1 { "" } else { "s" },
                MAX_CASES - 2
            ));
        }
        let binary = self.binary(end);
        let cases = self.keys();
        SelftestReport { binary, cases, plan: self.plan, bail_out, problems: self.problems.into_vec() }
    }

    /// A skip one past the next number as the binary's last result: the next case when the binary
    /// exited 4, else the out-of-order result its problem says.
    fn settle_skip_one_past(&mut self, end: &ProbeEnd) {
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
    }

    /// The case the binary ended inside, if any (`reported` being how many planned numbers reported,
    /// `ended` how the output ended): a [`CaseResult::NotRun`] case for the context in force.
    fn case_ended_inside(&mut self, end: &ProbeEnd, reported: Option<u64>, ended: &str) {
        // The context in force at the end with no result: the binary ended inside that case, if cases
        // are missing (else it is a heading or a clean-up step).
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
    }

    /// Held against the plan: results numbered outside it, and the planned cases no line reported as
    /// one [`MISSING_KEY`] case; with no plan, a problem for TAP results.
    fn planned_cases_missing(&mut self, tap: bool, reported: Option<u64>, ended: &str) {
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
    }

    /// The binary's result from how it ended ([`binary_result`]), but for khugepaged-style step output
    /// and x86-style `[SKIP]` lines.
    fn binary(&mut self, end: &ProbeEnd) -> CaseResult {
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
        binary
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
pub(super) fn case_result(result: &ResultLine, reason: String) -> CaseResult {
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
pub(super) fn split_message(message: &str) -> (String, String) {
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
pub(super) fn is_failure_count(reason: &str) -> bool {
    let words: Vec<&str> = reason.split_whitespace().collect();
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    matches!(words.as_slice(), [n, "out", "of", m, "tests", "failed"] if number(n) && number(m))
}

pub(super) fn end_phrase(end: &ProbeEnd) -> String {
    match end {
        ProbeEnd::Exited(code) => format!("exit {code}"),
        ProbeEnd::Signaled(_) => end.to_string(),
        ProbeEnd::TimedOut(_) => "timeout".to_owned(),
        ProbeEnd::SpawnError(errno) => format!("could not be started ({})", tidy(&clean_line(errno), 40)),
    }
}

/// The binary's result from its exit (kselftest's codes), the plan's skip and its last skipped case.
pub(super) fn binary_result(
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
