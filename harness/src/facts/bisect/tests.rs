//! The search against fake observers: a sequence of values per candidate, some candidates skipped.

use std::collections::BTreeSet;

use super::*;
use crate::facts::Facts;

const FACT: &str = "p.t.k";

/// Candidates named `r0`, `r1`, … whose watched fact has `values[i]` (absent for `None`); `skips` are
/// indices that cannot be observed. Every candidate also has `p.t.index` (changes at every step) and
/// `p.t.same`.
struct Fake {
    values: Vec<Option<String>>,
    skips: BTreeSet<usize>,
}

impl Fake {
    fn new(values: &[&str]) -> Self {
        Fake { values: values.iter().map(|v| Some(v.to_string())).collect(), skips: BTreeSet::new() }
    }

    fn skipping(mut self, skips: impl IntoIterator<Item = usize>) -> Self {
        self.skips.extend(skips);
        self
    }

    fn candidates(&self) -> Vec<String> {
        (0..self.values.len()).map(|i| format!("r{i}")).collect()
    }

    fn observe(&self, candidate: &String) -> Observation {
        let i: usize = candidate[1..].parse().unwrap();
        if self.skips.contains(&i) {
            return Observation::Skip(format!("{candidate} failed to boot"));
        }
        let mut facts = Facts::new();
        facts.insert("p.t.index".into(), i.to_string());
        facts.insert("p.t.same".into(), "1".into());
        if let Some(value) = &self.values[i] {
            facts.insert(FACT.into(), value.clone());
        }
        Observation::Facts(facts)
    }

    fn bisect(&self, watched: Watched) -> (Result<BisectReport, BisectError>, Vec<usize>) {
        let candidates = self.candidates();
        let mut order = vec![];
        let result = bisect(&candidates, watched, |c| self.observe(c), |step| order.push(step.index));
        (result, order)
    }
}

fn fact() -> Watched {
    Watched::Fact(FACT.into())
}

fn ceil_log2(n: usize) -> usize {
    (usize::BITS - (n - 1).leading_zeros()) as usize
}

#[test]
fn a_single_change_is_found_at_every_position_in_about_log2_observations() {
    for n in 2..=40 {
        for first_new in 1..n {
            let values: Vec<&str> = (0..n).map(|i| if i < first_new { "ENOSYS" } else { "ok" }).collect();
            let (report, order) = Fake::new(&values).bisect(fact());
            let report = report.unwrap();
            assert_eq!(report.outcome, Outcome::Found, "n={n} first_new={first_new}");
            assert_eq!((report.old.index, report.new.index), (first_new - 1, first_new), "n={n}");
            assert_eq!(report.old.value.as_deref(), Some("ENOSYS"));
            assert_eq!(report.new.value.as_deref(), Some("ok"));
            assert_eq!(report.new.candidate, format!("r{first_new}"));
            assert!(report.observations <= ceil_log2(n) + 2, "n={n} first_new={first_new}: {order:?}");
            assert_eq!(report.observations, order.len());
            assert_eq!(&order[..2], [0, n - 1], "both ends first");
            assert!(report.skipped.is_empty() && !report.more_than_two_values);
        }
    }
}

#[test]
fn the_other_facts_of_the_step_are_listed_and_the_watched_one_is_not() {
    let (report, _) = Fake::new(&["a", "a", "b", "b"]).bisect(fact());
    let report = report.unwrap();
    assert_eq!(report.changes, [FactChange { key: "p.t.index".into(), old: Some("1".into()), new: Some("2".into()) }]);
}

#[test]
fn a_fact_that_appears_is_a_change_from_absent() {
    let mut fake = Fake::new(&["x", "x", "x", "x", "x"]);
    fake.values[0] = None;
    fake.values[1] = None;
    let report = fake.bisect(fact()).0.unwrap();
    assert_eq!((report.old.index, report.old.value.clone()), (1, None));
    assert_eq!(report.new.value.as_deref(), Some("x"));
}

#[test]
fn a_skipped_middle_is_stepped_over_by_a_neighbour() {
    let values = ["a", "a", "a", "a", "a", "a", "b", "b", "b"];
    let (report, order) = Fake::new(&values).skipping([4]).bisect(fact());
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::Found);
    assert_eq!((report.old.index, report.new.index), (5, 6), "{order:?}");
    assert_eq!(order[2..4], [4, 3], "the middle is tried first, then its nearest neighbour");
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped_between.is_empty());
}

#[test]
fn a_skipped_candidate_next_to_the_change_leaves_a_range() {
    // The change is at 5 and 5 cannot be observed: last old is 4, first new known is 6.
    let values = ["a", "a", "a", "a", "a", "b", "b", "b", "b"];
    let (report, order) = Fake::new(&values).skipping([5]).bisect(fact());
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::Narrowed, "{order:?}");
    assert_eq!((report.old.index, report.new.index), (4, 6));
    assert_eq!(report.skipped_between.iter().map(|s| s.candidate.as_str()).collect::<Vec<_>>(), ["r5"]);
    assert_eq!(report.skipped_between[0].why, "r5 failed to boot");
}

#[test]
fn several_adjacent_skips_are_stepped_over() {
    for first_new in 1..20 {
        let values: Vec<&str> = (0..20).map(|i| if i < first_new { "a" } else { "b" }).collect();
        let skips = 8..=12;
        let report = Fake::new(&values).skipping(skips.clone()).bisect(fact()).0.unwrap();
        let (old, new) = (report.old.index, report.new.index);
        assert!(old < first_new && first_new <= new, "first_new={first_new}: {old}..{new}");
        if new == old + 1 {
            assert_eq!(report.outcome, Outcome::Found);
        } else {
            assert_eq!(report.outcome, Outcome::Narrowed);
            let between: Vec<usize> = report.skipped_between.iter().map(|s| s.index).collect();
            assert_eq!(between, (old + 1..new).collect::<Vec<_>>(), "all between are named skips");
            assert!(between.iter().all(|i| skips.contains(i)));
        }
    }
}

#[test]
fn everything_between_the_ends_skipped_gives_the_whole_range() {
    let (report, order) = Fake::new(&["a", "a", "b", "b", "b", "c"]).skipping(1..5).bisect(fact());
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::Narrowed);
    assert_eq!((report.old.index, report.new.index), (0, 5));
    assert_eq!(report.skipped_between.len(), 4);
    assert_eq!(report.observations, 6, "each skip cost a try: {order:?}");
}

#[test]
fn ends_that_agree_leave_nothing_to_bisect() {
    let fake = Fake::new(&["a", "b", "a"]);
    let candidates = fake.candidates();
    let mut sides = vec![];
    bisect(&candidates, fact(), |c| fake.observe(c), |step| sides.push(step.seen.clone())).unwrap();
    let old_a = StepSeen::Value { shown: "a".into(), side: Side::Old };
    assert_eq!(sides, [old_a.clone(), old_a], "the last end has the old value too");
    let (report, order) = fake.bisect(fact());
    let report = report.unwrap();
    assert_eq!(report.outcome, Outcome::NothingToBisect);
    assert_eq!(order, [0, 2], "only the ends are observed");
    assert_eq!((report.old.index, report.new.index), (0, 2));
    assert_eq!(report.changes.len(), 1, "p.t.index differs between the ends, the watched fact does not");
}

#[test]
fn a_flip_flopping_fact_gives_a_real_change() {
    let patterns: [&[&str]; 4] = [
        &["a", "b", "a", "b", "a", "b", "a", "b"],
        &["a", "a", "b", "b", "a", "a", "b", "b", "a", "b"],
        &["a", "b", "b", "b", "b", "b", "a", "a", "a", "b"],
        &["a", "a", "a", "a", "a", "a", "b", "a", "a", "a", "a", "b"],
    ];
    for values in patterns {
        let report = Fake::new(values).bisect(fact()).0.unwrap();
        assert_eq!(report.outcome, Outcome::Found);
        let (old, new) = (report.old.index, report.new.index);
        assert_eq!(new, old + 1, "{values:?}");
        assert_eq!(values[old], values[0], "{values:?}: the pair leaves the first end's value");
        assert_ne!(values[new], values[0], "{values:?}");
    }
}

#[test]
fn a_third_value_is_noticed() {
    let report = Fake::new(&["a", "a", "b", "b", "c", "c", "c"]).bisect(fact()).0.unwrap();
    assert_eq!((report.old.index, report.new.index), (1, 2));
    assert!(report.more_than_two_values, "b is neither a nor c");
    assert_eq!(report.new.value.as_deref(), Some("b"));
}

#[test]
fn a_skipped_end_is_an_error_naming_it() {
    for skip in [0, 4] {
        let (result, _) = Fake::new(&["a", "a", "b", "b", "b"]).skipping([skip]).bisect(fact());
        let err = result.unwrap_err();
        assert_eq!(
            err,
            BisectError::EndSkipped { candidate: format!("r{skip}"), why: format!("r{skip} failed to boot") }
        );
        assert!(err.to_string().contains(&format!("r{skip}")), "{err}");
    }
}

#[test]
fn too_few_candidates_is_an_error() {
    let one = ["r0".to_string()];
    assert_eq!(Search::new(&one, fact()).unwrap_err(), BisectError::TooFewCandidates(1));
}

#[test]
fn a_fact_neither_end_has_is_unknown_with_suggestions() {
    let (result, order) = Fake::new(&["a", "b", "b"]).bisect(Watched::Fact("p.t.indx".into()));
    assert_eq!(order, [0], "stops at the second end, before reporting a step");
    match result.unwrap_err() {
        BisectError::UnknownFact { fact, suggestions } => {
            assert_eq!(fact, "p.t.indx");
            assert_eq!(suggestions, ["p.t.index"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_suite_changes_where_any_of_its_facts_first_changes() {
    let mut fake = Fake::new(&["a"; 12]);
    fake.values[7..].iter_mut().for_each(|v| *v = Some("b".into()));
    // p.t.index differs everywhere: watched as a suite, the first step already changes.
    let report = fake.bisect(Watched::Suite("p".into())).0.unwrap();
    assert_eq!((report.old.index, report.new.index), (0, 1));
    assert_eq!(report.old.value, None);
    assert_eq!(report.changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["p.t.index"]);
}

#[test]
fn a_suite_change_lists_every_fact_of_the_step() {
    let candidates: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let observe = |c: &String| {
        let i: usize = c[1..].parse().unwrap();
        let mut facts = Facts::new();
        facts.insert("p.a".into(), if i < 6 { "1" } else { "2" }.into());
        facts.insert("p.b".into(), if i < 6 { "x" } else { "y" }.into());
        facts.insert("p.c".into(), "same".into());
        Observation::Facts(facts)
    };
    let report = bisect(&candidates, Watched::Suite("p".into()), observe, |_| {}).unwrap();
    assert_eq!((report.old.index, report.new.index), (5, 6));
    assert_eq!(report.changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["p.a", "p.b"]);
}

#[test]
fn the_step_after_is_always_among_those_announced_for_prefetching() {
    for n in 2..=25 {
        for first_new in 1..n {
            for skip in [None, Some(n / 2), Some(first_new), Some(n / 2 + 1)] {
                let values: Vec<&str> = (0..n).map(|i| if i < first_new { "a" } else { "b" }).collect();
                let skips: Vec<usize> = skip.filter(|&s| s != 0 && s != n - 1).into_iter().collect();
                let fake = Fake::new(&values).skipping(skips.clone());
                let candidates = fake.candidates();
                let mut search = Search::new(&candidates, fact()).unwrap();
                while let Some(index) = search.next() {
                    let announced = search.may_need_after(index);
                    let step = search.record(index, fake.observe(&candidates[index])).unwrap();
                    if let Some(next) = search.next() {
                        assert!(announced.contains(&next), "n={n} at {index}: {next} not in {announced:?}");
                    }
                    assert!(announced.len() <= 3, "{announced:?}");
                    assert!(step.steps_left_estimate <= step.remaining);
                }
                assert!(search.report().is_some());
            }
        }
    }
}

#[test]
fn steps_count_down_what_is_left() {
    let values: Vec<&str> = (0..17).map(|i| if i < 3 { "a" } else { "b" }).collect();
    let fake = Fake::new(&values);
    let candidates = fake.candidates();
    let mut steps = vec![];
    bisect(&candidates, fact(), |c| fake.observe(c), |s| steps.push((s.remaining, s.steps_left_estimate))).unwrap();
    assert_eq!(steps[0], (15, 4), "after the first end: 15 between, 4 halvings");
    assert_eq!(steps.last(), Some(&(0, 0)));
    assert!(steps.windows(2).all(|w| w[1].0 <= w[0].0));
}

#[test]
fn the_report_serializes_with_its_outcome() {
    let report = Fake::new(&["a", "b"]).bisect(fact()).0.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["outcome"], "found");
    assert_eq!(json["watched"]["fact"], FACT);
    assert_eq!(json["new"]["value"], "b");
}
