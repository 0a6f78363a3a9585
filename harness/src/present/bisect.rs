//! `ksnap bisect`: what a bisection found ([`text`], [`json`]) and a line per step while it runs
//! ([`step_line`]). The search itself is [`crate::facts::bisect`].

use std::fmt::{Display, Write};

use crate::facts::bisect::{BisectReport, End, FactChange, Outcome, Side, Step, StepSeen, Watched, ABSENT};
use crate::present::text::{shorten, two_sides, wrap, MAX_VALUE_CHARS};

/// What was searched: it decides how to look further than one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Along {
    /// A kernel line's releases (`--kernel`).
    Releases,
    /// A git repository's commits (`--tree`).
    Commits,
}

/// Said after every change found: binary search sees one change, not every one.
pub const ONE_OF_SEVERAL: &str = "Binary search finds one change; if the fact changes more than once along \
these releases, `ksnap history --releases` shows every one.";

/// Said when the ends agree: a change and its undoing between them are not seen.
pub const CHANGE_AND_BACK: &str = "A fact that changes and changes back between the ends is not seen by \
bisecting; `ksnap history --releases` shows every release.";

/// [`ONE_OF_SEVERAL`], for commits.
pub const ONE_OF_SEVERAL_COMMITS: &str = "Binary search finds one change; if the fact changes more than once \
between these commits, bisecting the range before or after this change (--good, --bad) finds another.";

/// [`CHANGE_AND_BACK`], for commits.
pub const CHANGE_AND_BACK_COMMITS: &str = "A fact that changes and changes back between the ends is not seen \
by bisecting; bisect a narrower range (--good, --bad) to look inside.";

/// Said when an observed value was neither end's.
pub const MORE_THAN_TWO_VALUES: &str =
    "The fact took more than two values along the way: this change is one of several.";

/// One progress line: `[3] 6.1.40: ENOSYS (old); 9 left, about 4 more`.
pub fn step_line<T: Display>(number: usize, step: &Step<'_, T>, width: usize) -> String {
    let seen = match &step.seen {
        StepSeen::Value { shown, side: Side::Old } => format!("{} (old)", shorten(shown, MAX_VALUE_CHARS)),
        StepSeen::Value { shown, side: Side::New } => format!("{} (new)", shorten(shown, MAX_VALUE_CHARS)),
        StepSeen::Skipped(why) => format!("skipped: {why}"),
    };
    let left = match step.remaining {
        0 => "done".to_string(),
        n => format!("{n} left, about {} more", step.steps_left_estimate),
    };
    shorten(&format!("[{number}] {}: {seen}; {left}", step.candidate), width)
}

/// The watched value at an end, as a person reads it.
fn value_of(watched: &Watched, end: &End) -> String {
    match watched {
        Watched::Fact(_) => end.value.clone().unwrap_or_else(|| ABSENT.to_string()),
        Watched::Suite(_) => format!("{} facts", end.facts),
    }
}

/// What was found, fitted to `width` columns (values cut, never wrapped).
pub fn text(report: &BisectReport, along: Along, width: usize) -> String {
    let watched = match &report.watched {
        Watched::Fact(fact) => fact.clone(),
        Watched::Suite(suite) => format!("suite {suite}"),
    };
    let (old, new) = (&report.old, &report.new);
    let (old_value, new_value) = (value_of(&report.watched, old), value_of(&report.watched, new));
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{}", shorten(&text, width));
    };
    match report.outcome {
        Outcome::NothingToBisect => {
            line(format!(
                "{watched}: the same at both ends ({} and {}): nothing to bisect",
                old.candidate, new.candidate
            ));
            if let Watched::Fact(_) = report.watched {
                line(format!("  value: {}", shorten(&old_value, MAX_VALUE_CHARS)));
            }
        }
        Outcome::Found => line(format!("{watched} changed between {} and {}", old.candidate, new.candidate)),
        Outcome::Narrowed => line(format!(
            "{watched} changed somewhere between {} and {}: the {} between could not be observed",
            old.candidate,
            new.candidate,
            report.skipped_between.len()
        )),
    }
    if report.outcome != Outcome::NothingToBisect {
        line(format!("  last with the old value:  {}  {}", old.candidate, shorten(&old_value, MAX_VALUE_CHARS)));
        line(format!("  first with a new value:   {}  {}", new.candidate, shorten(&new_value, MAX_VALUE_CHARS)));
    }
    for skipped in &report.skipped_between {
        line(format!("  not observed: {}: {}", skipped.candidate, skipped.why));
    }
    let skipped = match report.skipped.len() {
        0 => String::new(),
        n => format!(", {n} of them skipped"),
    };
    line(format!("{} of {} candidates observed{skipped}", report.observations, report.candidates));
    if !report.changes.is_empty() {
        let label = match (&report.watched, report.outcome) {
            (_, Outcome::NothingToBisect) => "Other facts that differ between the ends",
            (Watched::Fact(_), _) => "Other facts that changed in that step",
            (Watched::Suite(_), _) => "The facts that changed in that step",
        };
        out.push('\n');
        out.push_str(&shorten(&format!("{label} ({}):", report.changes.len()), width));
        out.push('\n');
        out.push_str(&two_sides("fact", &old.candidate, &new.candidate, &change_rows(&report.changes), width));
    }
    out.push('\n');
    if report.more_than_two_values {
        out.push_str(&wrap(MORE_THAN_TWO_VALUES, width));
    }
    let further = match (report.outcome == Outcome::NothingToBisect, along) {
        (true, Along::Releases) => CHANGE_AND_BACK,
        (false, Along::Releases) => ONE_OF_SEVERAL,
        (true, Along::Commits) => CHANGE_AND_BACK_COMMITS,
        (false, Along::Commits) => ONE_OF_SEVERAL_COMMITS,
    };
    out.push_str(&wrap(further, width));
    out
}

fn change_rows(changes: &[FactChange]) -> Vec<(String, String, String)> {
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| ABSENT.to_string());
    changes.iter().map(|c| (c.key.clone(), shown(&c.old), shown(&c.new))).collect()
}

/// The report as JSON, for scripts (`--format json`).
pub fn json(report: &BisectReport) -> String {
    serde_json::to_string_pretty(report).expect("a bisect report serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::bisect::{bisect, Observation};
    use crate::facts::Facts;

    /// Releases `6.1.0` … `6.1.N-1`; `p.mseal` is `ENOSYS` before `first_new`, `ok` from it; `p.pages`
    /// changes in the same step; `skips` fail to boot.
    fn report(n: usize, first_new: usize, skips: &[usize], watched: Watched) -> BisectReport {
        let releases: Vec<String> = (0..n).map(|i| format!("6.1.{i}")).collect();
        let observe = |release: &String| {
            let i: usize = release.rsplit('.').next().unwrap().parse().unwrap();
            if skips.contains(&i) {
                return Observation::Skip("failed to boot".into());
            }
            let mut facts = Facts::new();
            facts.insert("p.mseal".into(), if i < first_new { "ENOSYS" } else { "ok" }.into());
            facts.insert("p.pages".into(), if i < first_new { "4" } else { "8" }.into());
            Observation::Facts(facts)
        };
        bisect(&releases, watched, observe, |_| {}).unwrap()
    }

    #[test]
    fn a_change_names_both_ends_and_the_other_facts_of_the_step() {
        let text = text(&report(40, 23, &[19], Watched::Fact("p.mseal".into())), Along::Releases, 100);
        assert!(text.starts_with("p.mseal changed between 6.1.22 and 6.1.23\n"), "{text}");
        assert!(text.contains("  last with the old value:  6.1.22  ENOSYS\n  first with a new value:   6.1.23  ok\n"));
        assert!(text.contains("candidates observed, 1 of them skipped\n"), "{text}");
        assert!(
            text.contains("Other facts that changed in that step (1):\nfact     6.1.22  6.1.23\np.pages  4       8\n")
        );
        assert!(text.ends_with("\n`ksnap history --releases` shows every one.\n"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn a_range_names_the_skipped_releases_in_it() {
        let text = text(&report(10, 5, &[4, 5], Watched::Fact("p.mseal".into())), Along::Releases, 100);
        assert!(text.starts_with("p.mseal changed somewhere between 6.1.3 and 6.1.6: the 2 between could"), "{text}");
        assert!(text.contains("  not observed: 6.1.4: failed to boot\n  not observed: 6.1.5: failed to boot\n"));
    }

    #[test]
    fn agreeing_ends_say_there_is_nothing_to_bisect() {
        let text = text(&report(10, 10, &[], Watched::Fact("p.mseal".into())), Along::Releases, 100);
        assert!(text.starts_with("p.mseal: the same at both ends (6.1.0 and 6.1.9): nothing to bisect\n"));
        assert!(text.contains("  value: ENOSYS\n"), "{text}");
        assert!(text.ends_with(&wrap(CHANGE_AND_BACK, 100)), "{text}");
    }

    #[test]
    fn a_suite_lists_every_fact_that_changed_and_fits_a_narrow_terminal() {
        let report = report(8, 3, &[], Watched::Suite("p".into()));
        let wide = text(&report, Along::Releases, 100);
        assert!(
            wide.contains("The facts that changed in that step (2):\nfact     6.1.2   6.1.3\np.mseal  ENOSYS  ok\n")
        );
        let narrow = text(&report, Along::Releases, 20);
        let too_long = |l: &&str| l.chars().count() > 20 && !l.starts_with('`');
        assert!(narrow.lines().filter(too_long).count() == 0, "only a command is kept whole: {narrow}");
        assert!(narrow.contains("p.mseal\n  6.1.2: ENOSYS\n  6.1.3: ok\n"), "{narrow}");
    }

    #[test]
    fn prose_wraps_at_spaces() {
        assert_eq!(wrap("one two three four", 9), "one two\nthree\nfour\n");
        assert_eq!(wrap("unbreakable-word x", 4), "unbreakable-word\nx\n");
        assert_eq!(wrap("run `ksnap history --releases` now", 12), "run\n`ksnap history --releases`\nnow\n");
    }

    #[test]
    fn json_has_the_outcome_and_both_ends() {
        let json = json(&report(5, 2, &[], Watched::Fact("p.mseal".into())));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["outcome"], "found");
        assert_eq!(value["old"]["candidate"], "6.1.1");
        assert_eq!(value["new"]["value"], "ok");
        assert_eq!(value["changes"][0]["key"], "p.pages");
    }

    #[test]
    fn a_step_line_says_the_side_and_what_is_left() {
        let releases: Vec<String> = (0..17).map(|i| format!("6.1.{i}")).collect();
        let mut lines = vec![];
        let observe = |r: &String| {
            let i: usize = r.rsplit('.').next().unwrap().parse().unwrap();
            if i == 8 {
                return Observation::Skip("404".into());
            }
            let mut facts = Facts::new();
            facts.insert("k".into(), if i < 3 { "a" } else { "b" }.into());
            Observation::Facts(facts)
        };
        bisect(&releases, Watched::Fact("k".into()), observe, |step| lines.push(step_line(lines.len() + 1, step, 100)))
            .unwrap();
        assert_eq!(lines[0], "[1] 6.1.0: a (old); 15 left, about 4 more");
        assert_eq!(lines[2], "[3] 6.1.8: skipped: 404; 14 left, about 4 more");
        assert!(lines.last().unwrap().ends_with("; done"), "{lines:?}");
    }
}
