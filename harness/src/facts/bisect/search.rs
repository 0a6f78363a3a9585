//! The binary search, as a state machine the caller drives ([`Search`]: which candidate next, which ones
//! the step after may need, record what was seen) or in one call ([`bisect`]). The caller drives it so
//! that it can fetch the kernels of both possible next midpoints while a VM runs the current one.
//!
//! Like `git bisect`: both ends are observed first; then the candidate nearest the middle of the range
//! left, one nearest to it when the middle is skipped; until the range has no candidate left between
//! its ends that could still be observed.

use std::fmt::Display;

use super::report::{fact_changes, BisectError, BisectReport, End, Observation, Outcome, Skipped, Watched};
use crate::facts::Facts;

/// Which side of the change an observed candidate is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The watched value is the first end's.
    Old,
    /// It is not.
    New,
}

/// What one step saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepSeen {
    /// The watched value, shown ([`Watched::show`]), and its side.
    Value {
        shown: String,
        side: Side,
    },
    Skipped(String),
}

/// One observation, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'c, T> {
    pub index: usize,
    pub candidate: &'c T,
    pub seen: StepSeen,
    /// Candidates still between the two ends found so far that could be observed.
    pub remaining: usize,
    /// About how many more observations the search needs (more if some are skipped).
    pub steps_left_estimate: usize,
}

#[derive(Debug, Clone)]
enum Seen {
    NotYet,
    Facts(Facts),
    Skipped(String),
}

/// A bisection in progress over `candidates` (oldest first).
#[derive(Debug)]
pub struct Search<'c, T> {
    candidates: &'c [T],
    watched: Watched,
    seen: Vec<Seen>,
    /// The last candidate known to have the old value, and the first known to have another. Until both
    /// ends are observed, the ends themselves.
    old: usize,
    new: usize,
    observations: usize,
    more_than_two_values: bool,
}

impl<'c, T: Display> Search<'c, T> {
    pub fn new(candidates: &'c [T], watched: Watched) -> Result<Self, BisectError> {
        if candidates.len() < 2 {
            return Err(BisectError::TooFewCandidates(candidates.len()));
        }
        Ok(Search {
            candidates,
            watched,
            seen: vec![Seen::NotYet; candidates.len()],
            old: 0,
            new: candidates.len() - 1,
            observations: 0,
            more_than_two_values: false,
        })
    }

    fn facts_at(&self, index: usize) -> Option<&Facts> {
        match &self.seen[index] {
            Seen::Facts(facts) => Some(facts),
            _ => None,
        }
    }

    fn ends_observed(&self) -> bool {
        self.facts_at(0).is_some() && self.facts_at(self.candidates.len() - 1).is_some()
    }

    fn ends_agree(&self) -> bool {
        match (self.facts_at(0), self.facts_at(self.candidates.len() - 1)) {
            (Some(first), Some(last)) => self.watched.project(first) == self.watched.project(last),
            _ => false,
        }
    }

    /// The candidate to observe next, or `None` when the search is over ([`Search::report`]).
    pub fn next(&self) -> Option<usize> {
        let last = self.candidates.len() - 1;
        match (&self.seen[0], &self.seen[last]) {
            (Seen::NotYet, _) => Some(0),
            (_, Seen::NotYet) => Some(last),
            (Seen::Facts(_), Seen::Facts(_)) if !self.ends_agree() => self.pick(self.old, self.new),
            _ => None,
        }
    }

    /// The candidates the step after observing `index` may need, so the caller can fetch them while
    /// `index` runs: the next middle if `index` has the old value, the one if it has a new value, and
    /// the neighbour tried if it is skipped; most likely first.
    pub fn may_need_after(&self, index: usize) -> Vec<usize> {
        let last = self.candidates.len() - 1;
        let after: Vec<Option<usize>> = match (&self.seen[0], &self.seen[last]) {
            (Seen::NotYet, Seen::NotYet) if index == 0 => vec![Some(last)],
            (Seen::NotYet, _) | (_, Seen::NotYet) => vec![self.pick(0, last)],
            _ if index <= self.old || index >= self.new => vec![],
            _ => vec![
                self.pick(self.old, index),
                self.pick(index, self.new),
                self.pick_except(self.old, self.new, Some(index)),
            ],
        };
        let mut unique: Vec<usize> = vec![];
        for candidate in after.into_iter().flatten() {
            if !unique.contains(&candidate) {
                unique.push(candidate);
            }
        }
        unique
    }

    /// The candidate strictly between `old` and `new` nearest their middle that was not tried yet.
    fn pick(&self, old: usize, new: usize) -> Option<usize> {
        self.pick_except(old, new, None)
    }

    fn pick_except(&self, old: usize, new: usize, except: Option<usize>) -> Option<usize> {
        let middle = (old + new) / 2;
        (old + 1..new)
            .filter(|&i| matches!(self.seen[i], Seen::NotYet) && Some(i) != except)
            .min_by_key(|&i| (i.abs_diff(middle), i))
    }

    fn remaining(&self) -> usize {
        (self.old + 1..self.new).filter(|&i| matches!(self.seen[i], Seen::NotYet)).count()
    }

    /// Takes what observing `index` gave. An end that is skipped is an error; so is a watched fact
    /// neither end has.
    pub fn record(&mut self, index: usize, observation: Observation) -> Result<Step<'c, T>, BisectError> {
        let last = self.candidates.len() - 1;
        self.observations += 1;
        let is_end = index == 0 || index == last;
        self.seen[index] = match observation {
            Observation::Skip(why) if is_end => {
                return Err(BisectError::EndSkipped { candidate: self.candidates[index].to_string(), why })
            }
            Observation::Skip(why) => Seen::Skipped(why),
            Observation::Facts(facts) => Seen::Facts(facts),
        };
        if self.ends_observed() && is_end {
            self.check_fact_is_known()?;
        }
        let seen = match &self.seen[index] {
            Seen::Skipped(why) => StepSeen::Skipped(why.clone()),
            Seen::Facts(facts) => {
                let side = self.side_of(index, facts);
                StepSeen::Value { shown: self.watched.show(facts), side }
            }
            Seen::NotYet => unreachable!("just recorded"),
        };
        if let StepSeen::Value { side, .. } = &seen {
            if !is_end {
                self.narrow(index, *side);
            }
        }
        let remaining = if self.ends_observed() && self.ends_agree() { 0 } else { self.remaining() };
        let steps_left_estimate = (usize::BITS - remaining.leading_zeros()) as usize;
        Ok(Step { index, candidate: &self.candidates[index], seen, remaining, steps_left_estimate })
    }

    fn side_of(&self, index: usize, facts: &Facts) -> Side {
        let first = self.facts_at(0).map(|first| self.watched.project(first));
        if index == 0 || first == Some(self.watched.project(facts)) {
            Side::Old
        } else {
            Side::New
        }
    }

    fn narrow(&mut self, index: usize, side: Side) {
        match side {
            Side::Old => self.old = index,
            Side::New => {
                let last = self.facts_at(self.candidates.len() - 1).map(|f| self.watched.project(f));
                let here = self.facts_at(index).map(|f| self.watched.project(f));
                self.more_than_two_values |= here != last;
                self.new = index;
            }
        }
    }

    fn check_fact_is_known(&self) -> Result<(), BisectError> {
        let Watched::Fact(fact) = &self.watched else { return Ok(()) };
        let ends = [self.facts_at(0), self.facts_at(self.candidates.len() - 1)];
        let ends: Vec<&Facts> = ends.into_iter().flatten().collect();
        if ends.iter().any(|facts| facts.contains_key(fact)) {
            return Ok(());
        }
        let known: Vec<&str> = ends.iter().flat_map(|facts| facts.keys().map(String::as_str)).collect();
        Err(BisectError::UnknownFact { fact: fact.clone(), suggestions: super::suggest::suggest(fact, known) })
    }

    /// What was found, once [`Search::next`] is `None`; `None` before.
    pub fn report(&self) -> Option<BisectReport> {
        if self.next().is_some() || !self.ends_observed() {
            return None;
        }
        let outcome = if self.ends_agree() {
            Outcome::NothingToBisect
        } else if (self.old + 1..self.new).any(|i| matches!(self.seen[i], Seen::Skipped(_))) {
            Outcome::Narrowed
        } else {
            Outcome::Found
        };
        let skipped: Vec<Skipped> = (0..self.candidates.len())
            .filter_map(|index| match &self.seen[index] {
                Seen::Skipped(why) => {
                    Some(Skipped { index, candidate: self.candidates[index].to_string(), why: why.clone() })
                }
                _ => None,
            })
            .collect();
        let (old_facts, new_facts) = (self.facts_at(self.old)?, self.facts_at(self.new)?);
        let except = match &self.watched {
            Watched::Fact(key) => Some(key.as_str()),
            Watched::Suite(_) => None,
        };
        Some(BisectReport {
            watched: self.watched.clone(),
            outcome,
            old: self.end(self.old, old_facts),
            new: self.end(self.new, new_facts),
            skipped_between: skipped.iter().filter(|s| self.old < s.index && s.index < self.new).cloned().collect(),
            skipped,
            observations: self.observations,
            candidates: self.candidates.len(),
            changes: fact_changes(old_facts, new_facts, except),
            more_than_two_values: self.more_than_two_values,
        })
    }

    fn end(&self, index: usize, facts: &Facts) -> End {
        let value = match &self.watched {
            Watched::Fact(key) => facts.get(key).cloned(),
            Watched::Suite(_) => None,
        };
        End { index, candidate: self.candidates[index].to_string(), value, facts: facts.len() }
    }
}

/// Bisects `candidates` (oldest first) in one call: `observe` boots or reads a candidate, `on_step` hears
/// of each observation (a progress line).
pub fn bisect<'c, T: Display>(
    candidates: &'c [T],
    watched: Watched,
    mut observe: impl FnMut(&T) -> Observation,
    mut on_step: impl FnMut(&Step<'c, T>),
) -> Result<BisectReport, BisectError> {
    let mut search = Search::new(candidates, watched)?;
    while let Some(index) = search.next() {
        let step = search.record(index, observe(&candidates[index]))?;
        on_step(&step);
    }
    Ok(search.report().expect("the search is over"))
}
