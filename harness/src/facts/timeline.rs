//! A fact's timeline: its values along an ordered axis of columns (the matrix's kernel versions for
//! `ksnap history`, a kernel line's releases for `ksnap history --releases`), as runs of equal values.

use std::collections::BTreeSet;

use crate::facts::Facts;

/// One fact's values along the version axis: runs of equal values, in version order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FactHistory {
    pub suite: String,
    pub fact: String,
    pub runs: Vec<ValueRun>,
}

/// A value held by consecutive kernel versions, `first` to `last`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ValueRun {
    /// The fact's value; `-` where the kernel's snapshot has no such fact.
    pub value: String,
    pub first: String,
    pub last: String,
}

/// Every fact of `suite` whose value changes along `columns` (a column's name and its facts, in the
/// axis' order): the kernel versions of the matrix, or the releases of a kernel line (`ksnap history
/// --releases`). A fact a column lacks has the value `-` there.
pub fn along(suite: &str, columns: &[(&str, &Facts)]) -> Vec<FactHistory> {
    let keys: BTreeSet<&String> = columns.iter().flat_map(|(_, facts)| facts.keys()).collect();
    let mut histories = Vec::new();
    for key in keys {
        let runs = runs(columns.iter().map(|(column, facts)| (*column, facts.get(key).map_or("-", String::as_str))));
        if runs.len() > 1 {
            histories.push(FactHistory { suite: suite.to_string(), fact: key.clone(), runs });
        }
    }
    histories
}

/// Values along an axis (each column's name and value, in the axis' order) as runs of equal values.
pub fn runs<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<ValueRun> {
    let mut runs: Vec<ValueRun> = Vec::new();
    for (column, value) in values {
        match runs.last_mut() {
            Some(run) if run.value == value => run.last = column.to_string(),
            _ => runs.push(ValueRun { value: value.to_string(), first: column.to_string(), last: column.to_string() }),
        }
    }
    runs
}

/// `ENOSYS up to 6.1, ok from 6.12` (`in 6.12` for a value of one version, `6.1 to 6.12` between); a
/// value held along the whole axis is just the value.
pub fn sentence(runs: &[ValueRun]) -> String {
    if let [only] = runs {
        return only.value.clone();
    }
    let last = runs.len().saturating_sub(1);
    let parts: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| match (i, run.first == run.last) {
            (0, _) => format!("{} up to {}", run.value, run.last),
            (i, _) if i == last => format!("{} from {}", run.value, run.first),
            (_, true) => format!("{} in {}", run.value, run.first),
            (_, false) => format!("{} in {} to {}", run.value, run.first, run.last),
        })
        .collect();
    parts.join(", ")
}

impl FactHistory {
    /// `ENOSYS up to 6.1, ok from 6.12`: [`sentence`].
    pub fn sentence(&self) -> String {
        sentence(&self.runs)
    }
}
