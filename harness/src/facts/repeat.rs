//! Finding flakes before they are snapshotted: the same cell run several times (restored from its saved
//! machine, or booted) must observe the same facts. `ksnap run --repeat N` and `KSNAP_REPEAT=N cargo test`
//! use this.

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::Facts;
use crate::project::matrix::Cell;

/// A fact whose value differed between runs of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flake {
    pub cell: Cell,
    pub key: String,
    /// Each value seen and in how many runs, most frequent first; `(absent)` for runs without the key.
    pub values: Vec<(String, usize)>,
}

/// What shows that a run had no such fact.
pub const ABSENT: &str = "(absent)";

/// The facts that differ between `runs` (the facts of each run of `cell`), in key order.
pub fn flakes(cell: &Cell, runs: &[Facts]) -> Vec<Flake> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|facts| facts.keys()).collect();
    let mut found = Vec::new();
    for key in keys {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for facts in runs {
            *counts.entry(facts.get(key).map_or(ABSENT, String::as_str)).or_default() += 1;
        }
        if counts.len() > 1 {
            let mut values: Vec<(String, usize)> = counts.into_iter().map(|(v, n)| (v.to_string(), n)).collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            found.push(Flake { cell: cell.clone(), key: key.clone(), values });
        }
    }
    found
}

/// `CELL KEY: VALUE (N of M runs) | VALUE (…)`, one line per flake; a line saying so when there is none.
pub fn render(flakes: &[Flake], runs: usize) -> String {
    if flakes.is_empty() {
        return format!("every fact was the same in all {runs} runs of each cell\n");
    }
    let mut out = format!("{} facts differed between {runs} runs of the same cell:\n", flakes.len());
    for flake in flakes {
        let values: Vec<String> =
            flake.values.iter().map(|(value, n)| format!("{value} ({n} of {runs} runs)")).collect();
        out.push_str(&format!("  {} {}: {}\n", flake.cell, flake.key, values.join(" | ")));
    }
    out
}

/// `KSNAP_REPEAT`: how many times `cargo test` runs each cell (default 1).
pub fn from_env() -> Result<usize, String> {
    match std::env::var("KSNAP_REPEAT") {
        Err(_) => Ok(1),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("KSNAP_REPEAT={text:?}: expected a number of runs, at least 1")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reports_each_fact_that_moved_with_its_values_and_counts() {
        let cell = Cell { kernel: "6.1".into(), variant: "default".into(), suite: "demand_paging".into() };
        let runs = [
            facts(&[("a", "1"), ("b", "x"), ("c", "same")]),
            facts(&[("a", "1"), ("b", "y"), ("c", "same")]),
            facts(&[("a", "2"), ("c", "same")]),
        ];
        let found = flakes(&cell, &runs);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].key, "a");
        assert_eq!(found[0].values, [("1".to_string(), 2), ("2".to_string(), 1)]);
        assert_eq!(found[1].values, [(ABSENT.to_string(), 1), ("x".to_string(), 1), ("y".to_string(), 1)]);
        let text = render(&found, 3);
        assert!(text.contains("6.1::default::demand_paging a: 1 (2 of 3 runs) | 2 (1 of 3 runs)"), "{text}");
        assert!(render(&[], 3).starts_with("every fact was the same in all 3 runs"));
        assert!(flakes(&cell, &runs[2..]).is_empty());
    }
}
