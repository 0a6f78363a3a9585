//! A lenient parser for KTAP, the kernel's dialect of TAP
//! (<https://docs.kernel.org/dev-tools/ktap.html>), as probes print it on stdout.
//!
//! It also reads the TAP 13/14 that kselftest and older KUnit print. Like the kernel's own
//! `kunit_parser.py` it never rejects input: lines it does not understand are counted and skipped,
//! and everything that looks wrong (no plan, a wrong count, numbers out of order, a block that
//! never ended) becomes a sentence in [`KtapDocument::problems`].
//!
//! Each line is classified by the TAP line lexer it shares with [`crate::kselftest`] (`tap.rs`, in its
//! strict dialect: capital directives only, a number on every result line); this module reads the `#`
//! lines KTAP gives a meaning (`# Subtest:`, `# fact:`) and builds the tree of blocks.
//!
//! # Nesting
//!
//! A nested block holds the subtests of the test whose result line ends it. It starts with a
//! version line, a `# Subtest: NAME` line or a plan, and is normally indented (2 spaces in KTAP,
//! 4 in TAP 14, a tab in old KUnit). The rules, in order:
//!
//! - a version, `# Subtest:` or plan line indented deeper than the current block opens a nested
//!   block; so does a version or `# Subtest:` line at the same indentation once the current block
//!   has content;
//! - any of those lines (or a result line) indented less than the current block ends it;
//! - a block at the same indentation as its parent (unindented nesting) is ended by a result line
//!   naming it (`# Subtest: x` … `ok 3 x`) or by the first result line after its plan is full.
//!
//! Diagnostic lines never open or end a block, since the spec lets them sit at any indentation.
//! kselftest's runner prints each test's own TAP behind `# `: those lines are diagnostics too.
//!
//! # Facts and diagnostics
//!
//! Diagnostic lines (`# ...`) and facts (`# fact: KEY = VALUE`) belong to the next result line of
//! the same block. A `# fact:` line that is not a fact (a key outside `[a-z0-9_.-]`, no ` = `) is a
//! problem, not a diagnostic only: the fact it meant would otherwise vanish without a trace, and a
//! probe with a problem has not passed. Those still waiting when a block ends move up to its parent's next result (the
//! parent's own result is the next one); those left at the end of the document are the document's
//! [`KtapDocument::diagnostics`].
//!
//! # Bounds
//!
//! The output grows linearly with the input, nesting is capped at [`MAX_DEPTH`] and the list of
//! problems at [`MAX_PROBLEMS`]; no input can make the parser panic.

use std::collections::HashSet;

use serde::Serialize;

use crate::tap::{self, quote_shortened, Dialect, Directive, Problems, TapLine};

/// Deepest nesting kept; deeper blocks are read as part of the block at this depth.
pub const MAX_DEPTH: usize = 16;
/// Most problems reported one by one; the rest are counted in a final sentence.
pub const MAX_PROBLEMS: usize = tap::MAX_PROBLEMS;

/// A parsed KTAP (or TAP) document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KtapDocument {
    /// The top level's version line, e.g. `KTAP version 1` or `TAP version 13`.
    pub version: Option<String>,
    /// N from the top-level plan line `1..N`.
    pub plan: Option<u64>,
    /// The top-level results, in order, each with its subtests.
    pub tests: Vec<KtapTest>,
    /// Diagnostic lines after the last top-level result.
    pub diagnostics: Vec<String>,
    /// What is wrong with the document, one sentence each, in the order found.
    pub problems: Vec<String>,
    /// Lines that are not KTAP (blank lines aside). The spec allows them; they carry no results.
    pub ignored_lines: usize,
    /// The top-level plan is present and met, and every nested block ended with its result line.
    pub complete: bool,
}

impl KtapDocument {
    /// Whether any test, at any depth, failed or has no result.
    pub fn any_failed(&self) -> bool {
        fn failed(test: &KtapTest) -> bool {
            test.result.is_failure() || test.subtests.iter().any(failed)
        }
        self.tests.iter().any(failed)
    }
}

/// One result line, with what preceded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KtapTest {
    /// The number on the result line, as printed (a wrong one is a problem, not corrected).
    pub number: u64,
    /// The description, without a leading `- ` (TAP style).
    pub name: String,
    /// `ok`/`not ok`, or the directive that overrides it; [`KtapResult::Missing`] if the line never came.
    pub result: KtapResult,
    /// `# fact: KEY = VALUE` lines, in order.
    pub facts: Vec<(String, String)>,
    /// Other diagnostic lines (without the `#`), then the diagnostic text of the result line
    /// itself when it carries no directive (`not ok 3 open # ENOENT`).
    pub diagnostics: Vec<String>,
    /// The results of the nested block this result line ended, in order.
    pub subtests: Vec<KtapTest>,
}

/// The outcome of a test: `ok`/`not ok`, or the directive that overrides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum KtapResult {
    /// `ok` without a directive: passed.
    Ok,
    /// `not ok` without a directive: failed.
    NotOk,
    /// `# SKIP reason`, with either `ok` or `not ok`.
    Skip {
        /// The text after `SKIP`, trimmed; may be empty.
        reason: String,
    },
    /// `# TODO reason`: known broken, not counted as a failure.
    Todo {
        /// The text after `TODO`, trimmed; may be empty.
        reason: String,
    },
    /// `# XFAIL reason`: failed as expected.
    Xfail {
        /// The text after `XFAIL`, trimmed; may be empty.
        reason: String,
    },
    /// `# TIMEOUT detail`.
    Timeout {
        /// The text after `TIMEOUT`, trimmed; may be empty.
        detail: String,
    },
    /// `# ERROR detail`: the test could not run.
    Error {
        /// The text after `ERROR`, trimmed; may be empty.
        detail: String,
    },
    /// The test's subtests began but its result line never came: it crashed, or its output was cut.
    Missing,
}

impl KtapResult {
    /// Whether this result means the test did not pass (skips and expected failures do not count).
    pub fn is_failure(&self) -> bool {
        matches!(self, KtapResult::NotOk | KtapResult::Timeout { .. } | KtapResult::Error { .. } | KtapResult::Missing)
    }
}

/// How results read in tables and snapshots: `ok`, `not ok`, `skip: reason`, `todo: reason`, … (a
/// reason is spelt as [`crate::kselftest::CaseResult`] spells it).
impl std::fmt::Display for KtapResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (word, detail) = match self {
            KtapResult::Ok => ("ok", ""),
            KtapResult::NotOk => ("not ok", ""),
            KtapResult::Skip { reason } => ("skip", reason.as_str()),
            KtapResult::Todo { reason } => ("todo", reason.as_str()),
            KtapResult::Xfail { reason } => ("xfail", reason.as_str()),
            KtapResult::Timeout { detail } => ("timeout", detail.as_str()),
            KtapResult::Error { detail } => ("error", detail.as_str()),
            KtapResult::Missing => ("missing (no result line)", ""),
        };
        tap::with_reason(f, word, detail)
    }
}

/// Parses `text`, which the caller has already decoded (lossily) from the guest's bytes.
pub fn parse(text: &str) -> KtapDocument {
    let root_indent = text
        .lines()
        .find_map(|line| {
            let (indent, body) = split_indent(line);
            classify(body).is_structural().then_some(indent)
        })
        .unwrap_or(0);
    let mut parser = Parser::new(root_indent);
    for (index, line) in text.lines().enumerate() {
        parser.line(index + 1, line);
    }
    parser.finish(!text.trim().is_empty())
}

/// One line, by its meaning.
#[derive(Debug)]
enum Line<'a> {
    Version(&'a str),
    SubtestHeader(&'a str),
    Plan {
        count: u64,
        comment: Option<&'a str>,
    },
    Result(ResultLine<'a>),
    BailOut(&'a str),
    Fact {
        key: &'a str,
        value: &'a str,
    },
    /// A line starting `# fact:` that is not `KEY = VALUE`: the whole line.
    MalformedFact(&'a str),
    Diagnostic(&'a str),
    Blank,
    Unknown,
}

impl Line<'_> {
    /// Lines that shape the document (as opposed to diagnostics and noise).
    fn is_structural(&self) -> bool {
        matches!(self, Line::Version(_) | Line::SubtestHeader(_) | Line::Plan { .. } | Line::Result(_))
    }
}

/// A result line as KTAP reads it: the lexer's, with its number (KTAP requires one).
#[derive(Debug)]
struct ResultLine<'a> {
    ok: bool,
    number: u64,
    name: &'a str,
    directive: Option<Directive>,
    /// The directive's text, or the diagnostic text when there is no directive.
    text: &'a str,
}

fn split_indent(line: &str) -> (usize, &str) {
    let body = line.trim_start_matches([' ', '\t']);
    (line.len() - body.len(), body.trim_end())
}

/// The lexer's reading ([`tap::lex`], strict), with the `#` lines KTAP gives a meaning of its own.
fn classify(body: &str) -> Line<'_> {
    match tap::lex(body, Dialect::Ktap) {
        TapLine::Blank => Line::Blank,
        TapLine::Version(version) => Line::Version(version),
        TapLine::Plan { count: Some(count), comment } => Line::Plan { count, comment },
        TapLine::Result(tap::ResultLine { ok, number: Some(number), description, directive, text }) => {
            Line::Result(ResultLine { ok, number, name: description, directive, text })
        }
        TapLine::BailOut(reason) => Line::BailOut(reason),
        TapLine::Hash(text) => {
            if let Some(name) = text.strip_prefix(" Subtest:") {
                Line::SubtestHeader(name.trim())
            } else if let Some(rest) = text.strip_prefix(" fact:") {
                parse_fact(rest).unwrap_or(Line::MalformedFact(body))
            } else {
                Line::Diagnostic(text.trim())
            }
        }
        TapLine::Plan { count: None, .. } | TapLine::Result(_) | TapLine::NotAResult | TapLine::Other => Line::Unknown,
    }
}

/// `KEY = VALUE` with KEY made of `[a-z0-9_.-]`.
fn parse_fact(rest: &str) -> Option<Line<'_>> {
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty() && key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    valid.then(|| Line::Fact { key, value: value.trim() })
}

/// The result a result line stands for, and its diagnostic text if that is not a directive.
///
/// Directives are matched in capitals only, as KTAP spells them: a free-form reason such as
/// `not ok 2 open # Error: no such file` must stay a failure with a diagnostic.
fn interpret(result: &ResultLine) -> (KtapResult, Option<String>) {
    let reason = result.text.to_owned();
    let outcome = match result.directive {
        Some(Directive::Skip) => KtapResult::Skip { reason },
        Some(Directive::Todo) => KtapResult::Todo { reason },
        Some(Directive::Xfail) => KtapResult::Xfail { reason },
        Some(Directive::Timeout) => KtapResult::Timeout { detail: reason },
        Some(Directive::Error) => KtapResult::Error { detail: reason },
        // `XPASS` is no KTAP directive (the strict lexer never reads one).
        None | Some(Directive::Xpass) => {
            let plain = if result.ok { KtapResult::Ok } else { KtapResult::NotOk };
            return (plain, (!result.text.is_empty()).then_some(reason));
        }
    };
    (outcome, None)
}

/// Facts and diagnostics waiting for the next result line of their block.
#[derive(Debug, Default)]
struct Pending {
    facts: Vec<(String, String)>,
    diagnostics: Vec<String>,
}

impl Pending {
    fn append(&mut self, later: Pending) {
        self.facts.extend(later.facts);
        self.diagnostics.extend(later.diagnostics);
    }
}

/// A block of sibling tests: the document's top level, or the subtests of one test.
#[derive(Debug)]
struct Block {
    indent: usize,
    /// At its parent's indentation, so indentation cannot end it (see the module docs).
    flat: bool,
    /// Line number of the line that opened it (0 for the top level).
    opened_at: usize,
    version: Option<String>,
    /// From `# Subtest: NAME`.
    name: Option<String>,
    plan: Option<u64>,
    tests: Vec<KtapTest>,
    numbers_seen: HashSet<u64>,
    last_number: Option<u64>,
    pending: Pending,
}

impl Block {
    fn new(indent: usize, flat: bool, opened_at: usize) -> Self {
        Block {
            indent,
            flat,
            opened_at,
            version: None,
            name: None,
            plan: None,
            tests: Vec::new(),
            numbers_seen: HashSet::new(),
            last_number: None,
            pending: Pending::default(),
        }
    }

    /// Nothing but (possibly) a header line has been read into it yet.
    fn is_fresh(&self) -> bool {
        self.plan.is_none() && self.tests.is_empty()
    }

    /// How problems refer to this block.
    fn label(&self) -> String {
        match (&self.name, self.opened_at) {
            (_, 0) => "the top level".to_owned(),
            (Some(name), line) => format!("the subtests of `{name}` (from line {line})"),
            (None, line) => format!("the nested block from line {line}"),
        }
    }

    /// Whether the result line `result` at this block's indentation is its parent's result
    /// rather than one of its own tests (only asked of flat blocks).
    fn is_ended_by(&self, result: &ResultLine) -> bool {
        let named = self.name.as_deref().is_some_and(|name| name == result.name);
        let full = self.plan.is_some_and(|plan| self.tests.len() as u64 >= plan);
        named || full
    }

    fn check_plan(&self, problems: &mut Problems) {
        let results = self.tests.iter().filter(|t| t.result != KtapResult::Missing).count();
        if let Some(plan) = self.plan.filter(|&plan| plan != results as u64) {
            problems.push(format!(
                "{}: the plan says {plan} test{} but {results} result{} {} found",
                self.label(),
                plural(plan),
                plural(results as u64),
                if results == 1 { "was" } else { "were" },
            ));
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

struct Parser {
    /// `stack[0]` is the top level and is never popped; the last block is the current one.
    stack: Vec<Block>,
    problems: Problems,
    ignored_lines: usize,
    /// Some block ended without the result line of the test it belongs to.
    unfinished: bool,
    depth_exceeded: bool,
}

impl Parser {
    fn new(root_indent: usize) -> Self {
        Parser {
            stack: vec![Block::new(root_indent, false, 0)],
            problems: Problems::default(),
            ignored_lines: 0,
            unfinished: false,
            depth_exceeded: false,
        }
    }

    fn top(&mut self) -> &mut Block {
        self.stack.last_mut().expect("the top level is never popped")
    }

    /// Reads line `number` (counting from 1).
    fn line(&mut self, number: usize, line: &str) {
        let (indent, body) = split_indent(line);
        match classify(body) {
            Line::Version(version) => {
                self.abandon_deeper(indent, number);
                let top = self.top();
                let joins = top.indent == indent && top.is_fresh() && top.version.is_none();
                if joins {
                    top.version = Some(version.to_owned());
                } else if let Some(block) = self.open_block(indent, number) {
                    block.version = Some(version.to_owned());
                }
            }
            Line::SubtestHeader(name) => {
                self.abandon_deeper(indent, number);
                let top = self.top();
                // The top level has no name; `# Subtest:` there starts a block.
                let joins = top.opened_at != 0 && top.indent == indent && top.is_fresh() && top.name.is_none();
                if joins {
                    top.name = Some(name.to_owned());
                } else if let Some(block) = self.open_block(indent, number) {
                    block.name = Some(name.to_owned());
                }
            }
            Line::Plan { count, comment } => {
                self.abandon_deeper(indent, number);
                if indent > self.top().indent && self.open_block(indent, number).is_none() {
                    return;
                }
                let block = self.stack.last_mut().expect("the top level is never popped");
                if let Some(comment) = comment.filter(|c| !c.is_empty()) {
                    block.pending.diagnostics.push(comment.to_owned());
                }
                if block.plan.is_none() {
                    // TAP allows the plan after the results too.
                    block.plan = Some(count);
                } else {
                    let problem = format!("line {number}: a second plan line in {}; ignored", block.label());
                    self.problems.push(problem);
                }
            }
            Line::Result(result) => self.result(number, indent, &result),
            Line::BailOut(reason) => self.problems.push(format!("line {number}: the test bailed out: {reason}")),
            Line::Fact { key, value } => self.top().pending.facts.push((key.to_owned(), value.to_owned())),
            Line::MalformedFact(line) => {
                self.problems.push(format!(
                    "line {number}: malformed fact line {}: a fact is `# fact: KEY = VALUE` with KEY of \
                     [a-z0-9_.-]",
                    quote_shortened(line)
                ));
                // Also where it stood, as any other diagnostic.
                let text = line.strip_prefix('#').unwrap_or(line).trim();
                self.top().pending.diagnostics.push(text.to_owned());
            }
            Line::Diagnostic(text) => self.top().pending.diagnostics.push(text.to_owned()),
            Line::Blank => {}
            Line::Unknown => self.ignored_lines += 1,
        }
    }

    /// A result line: it may end nested blocks (which become its subtests), then it is a test of
    /// the current block, with the facts and diagnostics waiting there.
    fn result(&mut self, number: usize, indent: usize, result: &ResultLine) {
        let mut subtests = self.close_deeper(indent, number);
        if subtests.is_none() {
            let top = self.top();
            if top.flat && top.indent == indent && top.is_ended_by(result) {
                subtests = self.stack.pop();
            }
        }
        let subtests = match subtests {
            Some(block) => {
                block.check_plan(&mut self.problems);
                self.top().pending.append(block.pending);
                block.tests
            }
            None => Vec::new(),
        };

        let problems = &mut self.problems;
        let block = self.stack.last_mut().expect("the top level is never popped");
        let expected = block.last_number.map_or(1, |n| n.saturating_add(1));
        if !block.numbers_seen.insert(result.number) {
            problems.push(format!("line {number}: test number {} appears twice in {}", result.number, block.label()));
        } else if result.number != expected {
            problems.push(format!(
                "line {number}: test {} is out of order in {}; expected test {expected}",
                result.number,
                block.label()
            ));
        }
        block.last_number = Some(result.number);

        let (outcome, note) = interpret(result);
        let Pending { facts, mut diagnostics } = std::mem::take(&mut block.pending);
        diagnostics.extend(note);
        block.tests.push(KtapTest {
            number: result.number,
            name: result.name.to_owned(),
            result: outcome,
            facts,
            diagnostics,
            subtests,
        });
    }

    /// Opens a nested block inside the current one, unless nesting is already at [`MAX_DEPTH`].
    fn open_block(&mut self, indent: usize, number: usize) -> Option<&mut Block> {
        if self.stack.len() > MAX_DEPTH {
            if !self.depth_exceeded {
                self.depth_exceeded = true;
                self.problems.push(format!(
                    "line {number}: nesting deeper than {MAX_DEPTH} levels; deeper headers and \
                     plans are ignored"
                ));
            }
            self.ignored_lines += 1;
            return None;
        }
        let flat = indent <= self.top().indent;
        self.stack.push(Block::new(indent, flat, number));
        self.stack.last_mut()
    }

    /// Ends the blocks indented deeper than `indent` (a line at line `number` is), none of which
    /// got its result line.
    fn abandon_deeper(&mut self, indent: usize, number: usize) {
        if let Some(block) = self.close_deeper(indent, number) {
            self.abandon(block, Some(number));
        }
    }

    /// Ends the blocks indented deeper than `indent` and returns the outermost one, whose fate
    /// the caller decides; the ones inside it are recorded as missing results.
    fn close_deeper(&mut self, indent: usize, number: usize) -> Option<Block> {
        let mut closed = None;
        while self.stack.len() > 1 && self.top().indent > indent {
            if let Some(inner) = closed.take() {
                self.abandon(inner, Some(number));
            }
            closed = self.stack.pop();
        }
        closed
    }

    /// Records a block that ended without its result line (at line `ended_at`, or at the end of
    /// the output) as a test with a missing result.
    fn abandon(&mut self, block: Block, ended_at: Option<usize>) {
        self.unfinished = true;
        let reason = match ended_at {
            Some(line) => format!("line {line} is less indented"),
            None => "the output stops inside it".to_owned(),
        };
        self.problems.push(format!(
            "{} ended without its test's result line ({reason}): the test crashed or its \
             output was cut",
            block.label(),
        ));
        let parent = self.top();
        parent.pending.append(block.pending);
        let Pending { facts, diagnostics } = std::mem::take(&mut parent.pending);
        let test = KtapTest {
            number: parent.last_number.map_or(1, |n| n.saturating_add(1)),
            name: block.name.unwrap_or_default(),
            result: KtapResult::Missing,
            facts,
            diagnostics,
            subtests: block.tests,
        };
        parent.tests.push(test);
    }

    fn finish(mut self, had_text: bool) -> KtapDocument {
        while self.stack.len() > 1 {
            let block = self.stack.pop().expect("more than one block");
            self.abandon(block, None);
        }
        let root = self.stack.pop().expect("the top level is never popped");
        for (key, _) in &root.pending.facts {
            self.problems.push(format!("fact `{key}` comes after the last result line and belongs to no test"));
        }
        let results = root.tests.iter().filter(|t| t.result != KtapResult::Missing).count() as u64;
        match root.plan {
            None if !had_text => self.problems.push("no KTAP output".to_owned()),
            None => self.problems.push("no plan line (`1..N`): cannot tell whether every test ran".to_owned()),
            Some(_) => root.check_plan(&mut self.problems),
        }
        KtapDocument {
            complete: root.plan == Some(results) && !self.unfinished,
            version: root.version,
            plan: root.plan,
            tests: root.tests,
            diagnostics: root.pending.diagnostics,
            problems: self.problems.into_vec(),
            ignored_lines: self.ignored_lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Real outputs, from the kernel's own KUnit parser tests, the KTAP spec and a KUnit patch
    /// thread; `tests/data/README.md` says where each comes from.
    macro_rules! sample {
        ($name:literal) => {
            parse(include_str!(concat!("../tests/data/ktap/", $name)))
        };
    }

    fn names(tests: &[KtapTest]) -> Vec<&str> {
        tests.iter().map(|t| t.name.as_str()).collect()
    }

    fn skip(reason: &str) -> KtapResult {
        KtapResult::Skip { reason: reason.into() }
    }

    fn assert_clean(doc: &KtapDocument) {
        assert!(doc.problems.is_empty(), "{:#?}", doc.problems);
        assert!(doc.complete, "{doc:#?}");
    }

    #[test]
    fn probe_output_with_facts() {
        // What guest-tests' `Ktap` writer prints.
        let doc = parse(
            "KTAP version 1\n1..3\n# fact: page_size = 4096\n# fact: thp.enabled = [always] madvise never\n\
             ok 1 page_size\n# reading /proc/cmdline\nnot ok 2 cmdline # open: No such file or directory\n\
             ok 3 thp # SKIP not built in\n",
        );
        assert_clean(&doc);
        assert_eq!(doc.version.as_deref(), Some("KTAP version 1"));
        assert_eq!(doc.plan, Some(3));
        let [page_size, cmdline, thp] = &doc.tests[..] else { panic!("{doc:#?}") };
        assert_eq!(page_size.number, 1);
        assert_eq!(page_size.result, KtapResult::Ok);
        assert_eq!(
            page_size.facts,
            [
                ("page_size".to_owned(), "4096".to_owned()),
                ("thp.enabled".to_owned(), "[always] madvise never".to_owned())
            ]
        );
        assert!(page_size.diagnostics.is_empty());
        assert_eq!(cmdline.result, KtapResult::NotOk);
        assert_eq!(cmdline.diagnostics, ["reading /proc/cmdline", "open: No such file or directory"]);
        assert!(cmdline.facts.is_empty());
        assert_eq!(thp.result, skip("not built in"));
        assert!(doc.any_failed());
    }

    #[test]
    fn kselftest_runner_output() {
        let doc = sample!("kselftest-membarrier.tap");
        assert_clean(&doc);
        assert_eq!(doc.version.as_deref(), Some("TAP version 13"));
        assert_eq!(
            names(&doc.tests),
            [
                "selftests: membarrier: membarrier_test_single_thread",
                "selftests: membarrier: membarrier_test_multi_thread"
            ]
        );
        // The runner prefixes each test's own TAP with "# ": per the spec, those are diagnostics.
        let first = &doc.tests[0];
        assert_eq!(first.diagnostics[0], "selftests: membarrier: membarrier_test_single_thread");
        assert_eq!(first.diagnostics[1], "TAP version 13");
        assert_eq!(first.diagnostics.len(), 5);
        assert!(first.subtests.is_empty());
        assert!(!doc.any_failed());
    }

    #[test]
    fn old_kunit_tap14_with_tabs_and_stray_lines() {
        let doc = sample!("kunit-tap14-tabs.tap");
        assert_clean(&doc);
        assert_eq!(doc.ignored_lines, 5, "init_suite and `kunit ...: all tests passed` lines");
        assert_eq!(names(&doc.tests), ["sysctl_test", "example"]);
        let sysctl = &doc.tests[0];
        assert_eq!(
            names(&sysctl.subtests),
            [
                "sysctl_test_dointvec_null_tbl_data",
                "example",
                "sysctl_test_dointvec_table_len_is_zero",
                "sysctl_test_dointvec_table_read_but_position_set"
            ]
        );
        let nested = &sysctl.subtests[1];
        assert_eq!(names(&nested.subtests), ["example_simple_test", "example_mock_test"]);
        assert_eq!(
            nested.subtests[0].diagnostics,
            ["example_simple_test: initializing", "example_simple_test: example_simple_test passed"]
        );
        assert_eq!(doc.tests[1].subtests.len(), 2);
    }

    #[test]
    fn kunit_skip_with_four_space_indentation() {
        let doc = sample!("kunit-skip.tap");
        assert_clean(&doc);
        assert_eq!(names(&doc.tests), ["string-stream-test", "example"]);
        assert_eq!(doc.tests[0].subtests.len(), 3);
        let skipped = &doc.tests[1].subtests[1];
        assert_eq!(skipped.name, "example_skip_test");
        assert_eq!(skipped.result, skip("this test should be skipped"));
        assert_eq!(skipped.diagnostics, ["example_skip_test: initializing"]);
        assert!(!doc.any_failed());
    }

    #[test]
    fn a_nested_block_belongs_to_the_result_that_ends_it() {
        let doc = sample!("kunit-failure-nested.tap");
        assert_clean(&doc);
        assert_eq!(names(&doc.tests), ["subtest 1", "subtest 2"]);
        assert!(doc.tests[0].subtests.is_empty());
        assert_eq!(names(&doc.tests[1].subtests), ["subsubtest 1"]);
        assert_eq!(doc.tests[1].subtests[0].result, KtapResult::NotOk);
        assert!(doc.any_failed());
    }

    #[test]
    fn kunit_suite_without_plan() {
        let doc = sample!("kunit-missing-plan.tap");
        assert_eq!(doc.plan, None);
        assert!(!doc.complete);
        assert_eq!(doc.problems, ["no plan line (`1..N`): cannot tell whether every test ran"]);
        assert_eq!(names(&doc.tests), ["sysctl_test", "example"]);
        assert_eq!(doc.tests[0].subtests.len(), 2, "a nested block may have no plan");
    }

    #[test]
    fn the_example_of_the_ktap_spec() {
        let doc = sample!("ktap-spec-example.ktap");
        assert_clean(&doc);
        let [main] = &doc.tests[..] else { panic!("{doc:#?}") };
        assert_eq!(main.name, "main_test");
        assert_eq!(main.result, KtapResult::NotOk);
        assert_eq!(names(&main.subtests), ["example_test_1", "example_test_2", "example_test_3"]);
        let [one, two, three] = &main.subtests[..] else { unreachable!() };
        assert_eq!(one.subtests[0].diagnostics, ["test_1: initializing test_1"]);
        assert_eq!(two.subtests[0].result, skip("test_1 skipped"));
        assert_eq!(two.result, KtapResult::Ok);
        assert_eq!(three.subtests[1].diagnostics, ["test_2: FAIL"]);
        assert_eq!(three.subtests[1].result, KtapResult::NotOk);
    }

    #[test]
    fn modern_kunit_with_misaligned_diagnostics() {
        let doc = sample!("kunit-params.ktap");
        assert_clean(&doc);
        let [example] = &doc.tests[..] else { panic!("{doc:#?}") };
        assert_eq!(example.name, "example");
        assert_eq!(
            example.diagnostics,
            ["example: initializing suite", "example: exiting suite", "Totals: pass:2 fail:0 skip:2 total:4"]
        );
        let [params] = &example.subtests[..] else { panic!("{example:#?}") };
        assert_eq!(params.name, "example_params_test");
        assert_eq!(
            params.diagnostics,
            ["module: kunit_example_test", "example_params_test: pass:2 fail:0 skip:2 total:4"]
        );
        assert_eq!(
            names(&params.subtests),
            ["example value 3", "example value 2", "example value 1", "example value 0"]
        );
        assert_eq!(params.subtests[0].result, skip("unsupported param value 3"));
        assert_eq!(
            params.subtests[0].diagnostics,
            ["example_params_test: initializing", "example_params_test: cleaning up"]
        );
        assert!(!doc.any_failed());
    }

    #[test]
    fn unindented_subtest_blocks_end_by_name_or_full_plan() {
        let doc = parse(
            "TAP version 14\n1..2\n# Subtest: alpha\nok 1 a1\nok 2 a2\nok 1 alpha\n\
             KTAP version 1\n1..1\nnot ok 1 b1\nnot ok 2 beta\n",
        );
        assert_clean(&doc);
        assert_eq!(names(&doc.tests), ["alpha", "beta"]);
        assert_eq!(names(&doc.tests[0].subtests), ["a1", "a2"]);
        assert_eq!(names(&doc.tests[1].subtests), ["b1"]);
    }

    #[test]
    fn directives() {
        let doc = parse(
            "1..8\nok 1 a # TODO not yet\nnot ok 2 b # XFAIL known\nnot ok 3 c # TIMEOUT 30 seconds\n\
             not ok 4 d # ERROR no device\nok 5 e # skip lowercase is prose\nnot ok 6 f # Error: prose too\n\
             ok 7 check return code # rcode=0\nnot ok 8 g # SKIP\n",
        );
        assert_clean(&doc);
        let results: Vec<_> = doc.tests.iter().map(|t| t.result.clone()).collect();
        assert_eq!(
            results,
            [
                KtapResult::Todo { reason: "not yet".into() },
                KtapResult::Xfail { reason: "known".into() },
                KtapResult::Timeout { detail: "30 seconds".into() },
                KtapResult::Error { detail: "no device".into() },
                KtapResult::Ok,
                KtapResult::NotOk,
                KtapResult::Ok,
                skip(""),
            ]
        );
        assert_eq!(doc.tests[4].diagnostics, ["skip lowercase is prose"]);
        assert_eq!(doc.tests[5].diagnostics, ["Error: prose too"]);
        assert_eq!(doc.tests[6].diagnostics, ["rcode=0"]);
        assert!(!KtapResult::Todo { reason: String::new() }.is_failure());
        assert!(!KtapResult::Xfail { reason: String::new() }.is_failure());
        assert!(KtapResult::Timeout { detail: String::new() }.is_failure());
        assert!(KtapResult::Missing.is_failure());
    }

    /// A reason is spelt as in kselftest's values: `skip: reason`.
    #[test]
    fn results_display_their_reason_after_a_colon() {
        let shown: Vec<String> = [
            KtapResult::Ok,
            skip("no device"),
            skip(""),
            KtapResult::Timeout { detail: "30 seconds".into() },
            KtapResult::Missing,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(shown, ["ok", "skip: no device", "skip", "timeout: 30 seconds", "missing (no result line)"]);
    }

    #[test]
    fn result_line_forms() {
        let doc = parse("1..4\nok 1\nok 2 - dashed name\nnot ok 3 spaced   out  \nok 4 # SKIP\nok x\nok 1abc\nok 99999999999999999999999 big\nok\n");
        assert_clean(&doc);
        assert_eq!(names(&doc.tests), ["", "dashed name", "spaced   out", ""]);
        assert_eq!(doc.ignored_lines, 4);
    }

    #[test]
    fn plan_problems() {
        let short = parse("KTAP version 1\n1..5\nok 1 a\nok 2 b\n");
        assert!(!short.complete);
        assert_eq!(short.problems, ["the top level: the plan says 5 tests but 2 results were found"]);

        let long = parse("1..1\nok 1 a\nok 2 b\n");
        assert_eq!(long.problems, ["the top level: the plan says 1 test but 2 results were found"]);

        let trailing = parse("ok 1 a\nok 2 b\n1..2\n");
        assert_clean(&trailing);

        let twice = parse("1..1\n1..2\nok 1 a\n");
        assert_eq!(twice.problems, ["line 2: a second plan line in the top level; ignored"]);
        assert_eq!(twice.plan, Some(1));

        let skip_all = parse("TAP version 13\n1..0 # SKIP no such device\n");
        assert_clean(&skip_all);
        assert_eq!(skip_all.diagnostics, ["SKIP no such device"]);

        let nested = parse("1..1\n  KTAP version 1\n  # Subtest: s\n  1..3\n  ok 1 x\nok 1 s\n");
        assert_eq!(
            nested.problems,
            ["the subtests of `s` (from line 2): the plan says 3 tests but 1 result was found"]
        );
        assert!(nested.complete, "the top level is complete; the nested problem is reported");
    }

    #[test]
    fn numbering_problems() {
        let doc = parse("1..4\nok 1 a\nok 1 again\nok 3 c\nok 2 b\n");
        assert_eq!(
            doc.problems,
            [
                "line 3: test number 1 appears twice in the top level",
                "line 4: test 3 is out of order in the top level; expected test 2",
                "line 5: test 2 is out of order in the top level; expected test 4",
            ]
        );
        assert_eq!(doc.tests.len(), 4, "every result is kept");
        assert!(doc.complete, "the count matches the plan");
    }

    #[test]
    fn output_cut_inside_a_nested_block() {
        let doc = parse("KTAP version 1\n1..2\n# fact: k = v\n  KTAP version 1\n  # Subtest: suite\n  1..3\n  ok 1 first\n  # almost\n");
        assert!(!doc.complete);
        assert_eq!(
            doc.problems,
            [
                "the subtests of `suite` (from line 4) ended without its test's result line (the \
                 output stops inside it): the test crashed or its output was cut",
                "the top level: the plan says 2 tests but 0 results were found",
            ]
        );
        let [suite] = &doc.tests[..] else { panic!("{doc:#?}") };
        assert_eq!(suite.result, KtapResult::Missing);
        assert_eq!(suite.name, "suite");
        assert_eq!(suite.number, 1);
        assert_eq!(suite.facts, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(suite.diagnostics, ["almost"]);
        assert_eq!(names(&suite.subtests), ["first"]);
        assert!(doc.any_failed());
    }

    #[test]
    fn a_result_two_levels_up_abandons_the_inner_block() {
        let doc = parse("1..1\n  1..1\n    1..1\n    ok 1 deep\nok 1 top\n");
        assert!(!doc.complete);
        assert_eq!(
            doc.problems,
            [
                "the nested block from line 3 ended without its test's result line (line 5 is \
                 less indented): the test crashed or its output was cut",
                "the nested block from line 2: the plan says 1 test but 0 results were found",
            ]
        );
        let top = &doc.tests[0];
        assert_eq!(top.name, "top");
        assert_eq!(top.subtests[0].result, KtapResult::Missing);
        assert_eq!(names(&top.subtests[0].subtests), ["deep"]);
    }

    #[test]
    fn empty_and_garbage_input() {
        assert_eq!(parse("").problems, ["no KTAP output"]);
        assert_eq!(parse("\n \n").problems, ["no KTAP output"]);
        let garbage = parse("Segmentation fault\n\u{fffd}\u{fffd}\n");
        assert_eq!(garbage.ignored_lines, 2);
        assert_eq!(garbage.problems, ["no plan line (`1..N`): cannot tell whether every test ran"]);
        assert!(garbage.tests.is_empty());
    }

    #[test]
    fn bail_out_and_stray_facts() {
        let doc = parse("1..2\nok 1 a\nBail out! no memory\n# fact: late = 1\n");
        assert_eq!(
            doc.problems,
            [
                "line 3: the test bailed out: no memory",
                "fact `late` comes after the last result line and belongs to no test",
                "the top level: the plan says 2 tests but 1 result was found",
            ]
        );
    }

    #[test]
    fn fact_syntax() {
        let doc =
            parse("1..1\n# fact: a.b-c_1=x = y\n# fact: Bad Key = v\n# fact: novalue\n# fact:   empty =\nok 1 t\n");
        let test = &doc.tests[0];
        assert_eq!(test.facts, [("a.b-c_1".to_owned(), "x = y".to_owned()), ("empty".to_owned(), String::new())]);
        assert_eq!(test.diagnostics, ["fact: Bad Key = v", "fact: novalue"]);
    }

    /// A mistyped key must not just vanish from the facts: the document has a problem, so the probe
    /// has not passed (`ProbeRun::passed`) and the problem shows as the probe's `(ktap)` fact.
    #[test]
    fn a_malformed_fact_line_is_a_problem() {
        let doc =
            parse("KTAP version 1\n1..2\n# fact: good = 1\n# fact: Mem_Total = 2\nok 1 a\n# fact:nothing\nok 2 b\n");
        assert!(doc.complete);
        assert_eq!(
            doc.problems,
            [
                "line 4: malformed fact line \"# fact: Mem_Total = 2\": a fact is `# fact: KEY = VALUE` with KEY \
                 of [a-z0-9_.-]",
                "line 6: malformed fact line \"# fact:nothing\": a fact is `# fact: KEY = VALUE` with KEY of \
                 [a-z0-9_.-]",
            ]
        );
        assert_eq!(doc.tests[0].facts, [("good".to_owned(), "1".to_owned())]);
        assert_eq!(doc.tests[0].diagnostics, ["fact: Mem_Total = 2"]);
        assert_eq!(doc.tests[1].diagnostics, ["fact:nothing"]);
        assert!(!doc.any_failed(), "the results themselves are as printed");

        let long = format!("1..1\n# fact: K{} = \u{1b}\nok 1 t\n", "x".repeat(200));
        let problem = &parse(&long).problems[0];
        assert!(problem.starts_with("line 2: malformed fact line \"# fact: Kxxx"), "{problem}");
        assert!(problem.contains("xxx\"…: a fact is"), "cut to 100 characters: {problem}");
        let escaped = parse("1..1\n# fact: \u{1b}[31m = red\nok 1 t\n");
        assert!(escaped.problems[0].contains("\"# fact: \\u{1b}[31m = red\""), "{:?}", escaped.problems);
    }

    #[test]
    fn crlf_line_ends() {
        let doc = parse("KTAP version 1\r\n1..1\r\n# fact: k = v\r\nok 1 t # SKIP why\r\n");
        assert_clean(&doc);
        assert_eq!(doc.tests[0].facts, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(doc.tests[0].result, skip("why"));
    }

    #[test]
    fn nesting_is_capped() {
        let mut text = String::from("KTAP version 1\n1..1\n");
        for depth in 1..1000 {
            text.push_str(&" ".repeat(depth));
            text.push_str("KTAP version 1\n");
        }
        text.push_str(&" ".repeat(1000));
        text.push_str("ok 1 bottom\n");
        let doc = parse(&text);
        fn depth(tests: &[KtapTest]) -> usize {
            tests.iter().map(|t| 1 + depth(&t.subtests)).max().unwrap_or(0)
        }
        assert!(depth(&doc.tests) <= MAX_DEPTH + 1, "depth {}", depth(&doc.tests));
        assert!(doc.problems.iter().any(|p| p.contains("nesting deeper than 16 levels")));
        assert!(!doc.complete);
    }

    #[test]
    fn problems_are_capped() {
        let text = "1..1\n".to_owned() + &"ok 1 same\n".repeat(1000);
        let doc = parse(&text);
        assert_eq!(doc.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(doc.problems.last().unwrap(), "… and 936 more problems");
    }

    #[test]
    fn a_very_long_line_is_kept_whole() {
        let name = "x".repeat(1 << 20);
        let doc = parse(&format!("1..1\nok 1 {name}\n"));
        assert_clean(&doc);
        assert_eq!(doc.tests[0].name.len(), 1 << 20);
    }

    /// Lines that look like KTAP, at random indentation, in random order.
    fn ktap_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("KTAP version 1".to_owned()),
            Just("TAP version 14".to_owned()),
            (0u64..4).prop_map(|n| format!("1..{n}")),
            (0u64..5, "[a-c ]{0,4}").prop_map(|(n, name)| format!("ok {n} {name}")),
            (0u64..5).prop_map(|n| format!("not ok {n} t # SKIP")),
            "[a-c]{0,3}".prop_map(|name| format!("# Subtest: {name}")),
            Just("# fact: k = v".to_owned()),
            Just("# diagnostic".to_owned()),
            Just("Bail out!".to_owned()),
            "\\PC{0,12}",
        ];
        let indented = ((0usize..10), line).prop_map(|(indent, line)| " ".repeat(indent) + &line);
        prop::collection::vec(indented, 0..60).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC*(\n\\PC*){0,20}") {
            let doc = parse(&text);
            prop_assert!(doc.problems.len() <= MAX_PROBLEMS + 1);
        }

        #[test]
        fn ktap_like_input_keeps_the_invariants(text in ktap_like()) {
            let doc = parse(&text);
            prop_assert!(doc.problems.len() <= MAX_PROBLEMS + 1);
            if doc.complete {
                let results = doc.tests.iter().filter(|t| t.result != KtapResult::Missing).count();
                prop_assert_eq!(doc.plan, Some(results as u64));
            }
            let lines = text.lines().count();
            fn count(tests: &[KtapTest]) -> usize {
                tests.iter().map(|t| 1 + count(&t.subtests)).sum()
            }
            prop_assert!(count(&doc.tests) <= lines, "one test per line at most");
        }
    }
}
