//! What a bisection watches ([`Watched`]), sees of a candidate ([`Observation`]) and finds
//! ([`BisectReport`]), and why it may find nothing ([`BisectError`]).

use serde::Serialize;

pub(super) use crate::facts::fact_changes;
pub use crate::facts::FactChange;
use crate::facts::Facts;

/// What is watched: one fact (`PROBE.TEST.KEY`), or a whole suite, whose "value" is all of its facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Watched {
    Fact(String),
    Suite(String),
}

/// What observing one candidate gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The suite's facts on that candidate (all of them, not only the watched one: the report lists the
    /// other facts that changed in the same step).
    Facts(Facts),
    /// The candidate could not be observed, and why: it failed to boot, its package is gone (404) …
    Skip(String),
}

/// Written where a watched fact is missing from a candidate's facts.
pub const ABSENT: &str = "(absent)";

impl Watched {
    /// The part of `facts` that is watched: the fact alone (nothing when absent), or all of them.
    pub(super) fn project(&self, facts: &Facts) -> Facts {
        match self {
            Watched::Fact(key) => facts.get_key_value(key).map(|(k, v)| (k.clone(), v.clone())).into_iter().collect(),
            Watched::Suite(_) => facts.clone(),
        }
    }

    /// The watched value as a person reads it in a progress line: the fact's value, or a suite's count.
    pub fn show(&self, facts: &Facts) -> String {
        match self {
            Watched::Fact(key) => facts.get(key).cloned().unwrap_or_else(|| ABSENT.to_string()),
            Watched::Suite(_) => format!("{} facts", facts.len()),
        }
    }

    /// The fact or suite name, as the user wrote it.
    pub fn name(&self) -> &str {
        match self {
            Watched::Fact(name) | Watched::Suite(name) => name,
        }
    }
}

/// How a bisection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `old` and `new` are adjacent candidates: the change is between them.
    Found,
    /// Every candidate between `old` and `new` was skipped: the change is somewhere in that range.
    Narrowed,
    /// Both ends have the same watched value.
    NothingToBisect,
}

/// One end of the change: a candidate and what was watched there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End {
    /// Its position in the candidates given, so that the caller can get its own `T` back.
    pub index: usize,
    pub candidate: String,
    /// The watched fact's value there; `None` when the fact is absent, or when a suite is watched.
    pub value: Option<String>,
    /// How many facts the suite had there.
    pub facts: usize,
}

/// A candidate that could not be observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub index: usize,
    pub candidate: String,
    pub why: String,
}

/// What a bisection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BisectReport {
    pub watched: Watched,
    pub outcome: Outcome,
    /// The last candidate with the old value (the first candidate when there is nothing to bisect).
    pub old: End,
    /// The first candidate with a new value (the last candidate when there is nothing to bisect).
    pub new: End,
    /// Candidates between `old` and `new` that could not be observed: why the change is a range.
    pub skipped_between: Vec<Skipped>,
    /// Every candidate that could not be observed, in candidate order.
    pub skipped: Vec<Skipped>,
    /// How many candidates were observed (skipped ones included: each cost a try).
    pub observations: usize,
    pub candidates: usize,
    /// Every fact that differs between `old` and `new` but the watched one (for a suite: every fact).
    pub changes: Vec<FactChange>,
    /// An observed value was neither end's: the fact takes more than two values along the candidates,
    /// so the change found may be one of several.
    pub more_than_two_values: bool,
}

/// Why there is no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BisectError {
    /// Bisecting needs two ends.
    TooFewCandidates(usize),
    /// An end could not be observed: there is nothing to compare the others with.
    EndSkipped { candidate: String, why: String },
    /// Neither end has the fact: most likely a typo, answered with the nearest known keys.
    UnknownFact { fact: String, suggestions: Vec<String> },
}

impl std::fmt::Display for BisectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BisectError::TooFewCandidates(n) => write!(f, "bisecting needs at least 2 candidates, got {n}"),
            BisectError::EndSkipped { candidate, why } => {
                write!(f, "cannot bisect: the end {candidate} could not be observed ({why}); pick another end")
            }
            BisectError::UnknownFact { fact, suggestions } if suggestions.is_empty() => {
                write!(f, "no fact {fact} at either end")
            }
            BisectError::UnknownFact { fact, suggestions } => {
                write!(f, "no fact {fact} at either end; did you mean {}?", suggestions.join(", "))
            }
        }
    }
}

impl std::error::Error for BisectError {}
