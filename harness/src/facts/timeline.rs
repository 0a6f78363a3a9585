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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
        let mut runs: Vec<ValueRun> = Vec::new();
        for (column, facts) in columns {
            let value = facts.get(key).cloned().unwrap_or_else(|| "-".into());
            match runs.last_mut() {
                Some(run) if run.value == value => run.last = column.to_string(),
                _ => runs.push(ValueRun { value, first: column.to_string(), last: column.to_string() }),
            }
        }
        if runs.len() > 1 {
            histories.push(FactHistory { suite: suite.to_string(), fact: key.clone(), runs });
        }
    }
    histories
}

impl FactHistory {
    /// `ENOSYS up to 6.1, ok from 6.12` (`in 6.12` for a value of one version, `6.1 to 6.12` between).
    pub fn sentence(&self) -> String {
        let last = self.runs.len() - 1;
        let parts: Vec<String> = self
            .runs
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
}
