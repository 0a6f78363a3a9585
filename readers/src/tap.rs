//! The TAP line lexer under both tree builders: [`crate::ktap`] (strict, as KTAP spells it) and
//! [`crate::kselftest`] (lenient, as `kselftest.h` prints it). It classifies one line — version, plan,
//! result, `Bail out!`, a `#` line, anything else — and knows nothing of blocks, facts or cases; each
//! parser refines the `#` lines and the other lines its own way.
//!
//! # The leniency switch
//!
//! [`Dialect::Kselftest`] accepts what KTAP does not:
//!
//! - a result without a number (`ok - name`, `ok # SKIP …`: TAP numbers it as the next), any blanks
//!   between `ok` and the number, and `ok` alone;
//! - a line that starts like a result but is not one (`ok 1abc`, `ok then`, a number too large to
//!   read) is [`TapLine::NotAResult`], which kselftest reports as a problem (KTAP: [`TapLine::Other`]);
//! - a `#` starts the directive or comment only at the start of the text or after a blank (`ok 1
//!   C#` is a description), and a lone `-` is no description;
//! - directive words in any case, with `XPASS`, and `skipped`/`skipping` as `SKIP` (Test::Harness
//!   accepts them). KTAP matches capitals only, so that prose such as `# Error: no such file` stays a
//!   diagnostic.

/// Most problems reported one by one; the rest are counted in a final sentence.
pub(crate) const MAX_PROBLEMS: usize = 64;

/// Which parser reads the line, and so how lenient the lexer is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// KTAP and TAP 13/14 as the spec spells them.
    Ktap,
    /// kselftest's looser TAP.
    Kselftest,
}

/// A TAP directive: the word after a result line's `#` that overrides `ok`/`not ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    /// `SKIP`: not run.
    Skip,
    /// `TODO`: known broken, not counted as a failure.
    Todo,
    /// `XFAIL`: failed as expected.
    Xfail,
    /// `XPASS`: passed although expected to fail (kselftest only).
    Xpass,
    /// `TIMEOUT`.
    Timeout,
    /// `ERROR`: the test could not run.
    Error,
}

impl Directive {
    /// The directive `word` stands for in `dialect`, if any.
    pub(crate) fn of(word: &str, dialect: Dialect) -> Option<Directive> {
        match dialect {
            Dialect::Ktap => Some(match word {
                "SKIP" => Directive::Skip,
                "TODO" => Directive::Todo,
                "XFAIL" => Directive::Xfail,
                "TIMEOUT" => Directive::Timeout,
                "ERROR" => Directive::Error,
                _ => return None,
            }),
            Dialect::Kselftest => {
                let lower = word.to_ascii_lowercase();
                Some(match lower.as_str() {
                    "todo" => Directive::Todo,
                    "xfail" => Directive::Xfail,
                    "xpass" => Directive::Xpass,
                    "error" => Directive::Error,
                    "timeout" => Directive::Timeout,
                    skip if skip.starts_with("skip") && skip.bytes().all(|b| b.is_ascii_alphabetic()) => {
                        Directive::Skip
                    }
                    _ => return None,
                })
            }
        }
    }

    /// `text`'s first word as a directive, and the rest trimmed.
    pub(crate) fn split(text: &str, dialect: Dialect) -> Option<(Directive, &str)> {
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        Some((Directive::of(word, dialect)?, rest.trim()))
    }
}

/// How a result reads with its reason, in tables and snapshots: `word`, or `word: reason`.
pub(crate) fn with_reason(f: &mut std::fmt::Formatter<'_>, word: &str, reason: &str) -> std::fmt::Result {
    match reason {
        "" => f.write_str(word),
        reason => write!(f, "{word}: {reason}"),
    }
}

/// One line, by its TAP meaning.
#[derive(Debug)]
pub(crate) enum TapLine<'a> {
    Blank,
    /// `KTAP version N` or `TAP version N`: the whole line.
    Version(&'a str),
    /// `1..N`, optionally followed by `# comment`.
    Plan {
        /// `None`: too large to read.
        count: Option<u64>,
        /// After the `#`, trimmed.
        comment: Option<&'a str>,
    },
    Result(ResultLine<'a>),
    /// Starts like a result line but is not one ([`Dialect::Kselftest`] only).
    NotAResult,
    /// `Bail out!` and the reason after it, trimmed.
    BailOut(&'a str),
    /// A line starting `#`: the text after it, untrimmed.
    Hash(&'a str),
    /// Anything else (for the parser to read further, or ignore).
    Other,
}

/// `ok N [- ]DESCRIPTION [# DIRECTIVE TEXT]` or `not ok …`.
#[derive(Debug)]
pub(crate) struct ResultLine<'a> {
    pub ok: bool,
    /// Always `Some` in [`Dialect::Ktap`].
    pub number: Option<u64>,
    /// Trimmed, without a leading `- `.
    pub description: &'a str,
    pub directive: Option<Directive>,
    /// The directive's text (after its word), or the whole comment when there is no directive; trimmed.
    pub text: &'a str,
}

impl<'a> ResultLine<'a> {
    /// The directive's message; empty when there is no directive (the text is then a comment).
    pub fn message(&self) -> &'a str {
        if self.directive.is_some() {
            self.text
        } else {
            ""
        }
    }
}

/// Classifies `body`: one line without its indentation and trailing blanks.
pub(crate) fn lex(body: &str, dialect: Dialect) -> TapLine<'_> {
    if body.is_empty() {
        return TapLine::Blank;
    }
    if let Some(version) = body.strip_prefix("KTAP version ").or_else(|| body.strip_prefix("TAP version ")) {
        if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
            return TapLine::Version(body);
        }
    }
    if let Some(reason) = body.strip_prefix("Bail out!") {
        return TapLine::BailOut(reason.trim());
    }
    if let Some(text) = body.strip_prefix('#') {
        return TapLine::Hash(text);
    }
    if let Some(plan) = parse_plan(body) {
        return plan;
    }
    parse_result(body, dialect).unwrap_or(TapLine::Other)
}

/// `1..N`, optionally followed by `# comment` (TAP's `1..0 # SKIP reason`).
fn parse_plan(body: &str) -> Option<TapLine<'_>> {
    let rest = body.strip_prefix("1..")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let tail = rest[digits..].trim_start();
    let comment = match tail.strip_prefix('#') {
        Some(comment) => Some(comment.trim()),
        None if tail.is_empty() => None,
        None => return None,
    };
    Some(TapLine::Plan { count: rest[..digits].parse().ok(), comment })
}

/// A result line, [`TapLine::NotAResult`], or `None` for a line that is not one at all.
fn parse_result(body: &str, dialect: Dialect) -> Option<TapLine<'_>> {
    let lenient = dialect == Dialect::Kselftest;
    let (ok, rest) = match body.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, body.strip_prefix("ok")?),
    };
    let rest = if lenient {
        // `okay`, `ok.`: prose, not a result.
        if !(rest.is_empty() || rest.starts_with([' ', '\t', '#'])) {
            return None;
        }
        rest.trim_start()
    } else {
        rest.strip_prefix(' ')?
    };
    let not_a_result = || lenient.then_some(TapLine::NotAResult);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = if digits == 0 {
        // TAP allows results without numbers; a word there is prose that happens to start with `ok`.
        if !lenient {
            return None;
        }
        if !(rest.is_empty() || rest.starts_with(['-', '#'])) {
            return not_a_result();
        }
        (None, rest)
    } else {
        let after = &rest[digits..];
        match rest[..digits].parse::<u64>() {
            Ok(number) if after.is_empty() || after.starts_with([' ', '\t', '#']) => (Some(number), after),
            _ => return not_a_result(),
        }
    };
    // KTAP: the first `#` starts the directive; kselftest: a `#` at the start or after a blank.
    let hash = if lenient {
        rest.char_indices().find(|&(at, c)| c == '#' && (at == 0 || rest[..at].ends_with(char::is_whitespace)))
    } else {
        rest.char_indices().find(|&(_, c)| c == '#')
    };
    let (description, tail) = match hash {
        Some((at, _)) => (&rest[..at], Some(rest[at + 1..].trim())),
        None => (rest, None),
    };
    let description = description.trim();
    let description = description.strip_prefix("- ").unwrap_or(description).trim_start();
    let description = if lenient && description == "-" { "" } else { description };
    let (directive, text) = match tail.map(|tail| (tail, Directive::split(tail, dialect))) {
        Some((_, Some((directive, text)))) => (Some(directive), text),
        Some((tail, None)) => (None, tail),
        None => (None, ""),
    };
    Some(TapLine::Result(ResultLine { ok, number, description, directive, text }))
}

/// `line` quoted and escaped (`"…"`, as Rust's `{:?}` does), cut to its first 100 characters: for a
/// problem that shows guest text.
pub(crate) fn quote_shortened(line: &str) -> String {
    const MAX: usize = 100;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &line[..cut]),
        None => format!("{line:?}"),
    }
}

/// The problem list, capped at [`MAX_PROBLEMS`].
#[derive(Debug, Default)]
pub(crate) struct Problems {
    kept: Vec<String>,
    dropped: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, problem: String) {
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(problem);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn into_vec(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.kept.push(format!("… and {} more problems", self.dropped));
        }
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a line reads in each dialect, in short: `result N "DESCRIPTION" DIRECTIVE "TEXT"`, `not a
    /// result`, `other`, ….
    fn read(line: &str, dialect: Dialect) -> String {
        match lex(line, dialect) {
            TapLine::Result(r) => format!(
                "{} {:?} {:?} {:?} {:?}",
                if r.ok { "ok" } else { "not ok" },
                r.number,
                r.description,
                r.directive,
                r.text
            ),
            TapLine::Plan { count, comment } => format!("plan {count:?} {comment:?}"),
            TapLine::NotAResult => "not a result".to_owned(),
            TapLine::Other => "other".to_owned(),
            TapLine::Hash(text) => format!("hash {text:?}"),
            TapLine::BailOut(reason) => format!("bail out {reason:?}"),
            TapLine::Version(_) => "version".to_owned(),
            TapLine::Blank => "blank".to_owned(),
        }
    }

    /// The leniency switch, line by line: what both read alike, and every difference.
    #[test]
    fn the_dialects_differ_only_where_kselftest_is_lenient() {
        let table: &[(&str, &str, &str)] = &[
            ("ok 1 - a # SKIP why", r#"ok Some(1) "a" Some(Skip) "why""#, r#"ok Some(1) "a" Some(Skip) "why""#),
            (
                "not ok 2 b # Error: prose",
                r#"not ok Some(2) "b" None "Error: prose""#,
                r#"not ok Some(2) "b" None "Error: prose""#,
            ),
            ("ok 3 c # skip lower", r#"ok Some(3) "c" None "skip lower""#, r#"ok Some(3) "c" Some(Skip) "lower""#),
            ("ok 4 d # XPASS", r#"ok Some(4) "d" None "XPASS""#, r#"ok Some(4) "d" Some(Xpass) """#),
            ("ok 5 C# too", r#"ok Some(5) "C" None "too""#, r#"ok Some(5) "C# too" None """#),
            ("ok 6 -", r#"ok Some(6) "-" None """#, r#"ok Some(6) "" None """#),
            ("ok # SKIP no number", "other", r#"ok None "" Some(Skip) "no number""#),
            ("ok  7 two blanks", "other", r#"ok Some(7) "two blanks" None """#),
            ("ok", "other", r#"ok None "" None """#),
            ("ok 1abc", "other", "not a result"),
            ("ok then", "other", "not a result"),
            ("ok 99999999999999999999999 big", "other", "not a result"),
            ("okay", "other", "other"),
            ("1..99999999999999999999999", "plan None None", "plan None None"),
            ("1..0 # SKIP all", r#"plan Some(0) Some("SKIP all")"#, r#"plan Some(0) Some("SKIP all")"#),
            ("1..x", "other", "other"),
            ("# Subtest: s", r#"hash " Subtest: s""#, r#"hash " Subtest: s""#),
            ("Bail out! gone", r#"bail out "gone""#, r#"bail out "gone""#),
            ("KTAP version 1", "version", "version"),
            ("TAP version x", "other", "other"),
        ];
        for &(line, ktap, kselftest) in table {
            assert_eq!(read(line, Dialect::Ktap), ktap, "KTAP: {line:?}");
            assert_eq!(read(line, Dialect::Kselftest), kselftest, "kselftest: {line:?}");
        }
    }
}
