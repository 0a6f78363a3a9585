//! A cell's facts held against its committed snapshot: what `ksnap run` answers after its cells, the
//! question a regression tester runs it for (does every kernel still behave as recorded?). Nothing is
//! written: recording is `cargo test`'s and `cargo insta review`'s.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::facts::{fact_changes, FactChange, Facts};
use crate::project::matrix::Cell;

use super::{read, write};

/// How one cell's facts stand against its committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    Matches,
    /// The facts that differ: `old` the snapshot's value, `new` this run's.
    Differs(Vec<FactChange>),
    /// No `snapshots/NAME.snap` for this cell yet.
    NoSnapshot,
}

/// One cell's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellAnswer {
    pub cell: Cell,
    /// Its snapshot file (which may not exist).
    pub snapshot: PathBuf,
    pub agreement: Agreement,
}

/// `facts`, as `cell` gave them now, against the snapshot of `cell` in `dir`.
pub fn against(dir: &Path, cell: &Cell, facts: &Facts) -> Result<CellAnswer> {
    let snapshot = dir.join(format!("{}.snap", write::name(cell)));
    let agreement = if snapshot.exists() {
        let changes = fact_changes(&read::read(&snapshot)?.facts, facts, None);
        if changes.is_empty() {
            Agreement::Matches
        } else {
            Agreement::Differs(changes)
        }
    } else {
        Agreement::NoSnapshot
    };
    Ok(CellAnswer { cell: cell.clone(), snapshot, agreement })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_matches_differs_from_or_has_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let cell = Cell { kernel: "6.1".into(), variant: "thp-never".into(), suite: "s".into() };
        let facts: Facts = [("s.a".to_string(), "1".to_string()), ("s.b".to_string(), "x".to_string())].into();
        assert_eq!(against(dir.path(), &cell, &facts).unwrap().agreement, Agreement::NoSnapshot);
        let path = dir.path().join("s@6.1+thp-never.snap");
        std::fs::write(&path, format!("---\nsource: x\n---\n{}", write::body(&facts))).unwrap();
        let answer = against(dir.path(), &cell, &facts).unwrap();
        assert_eq!((answer.snapshot, answer.agreement), (path.clone(), Agreement::Matches));
        let mut now = facts.clone();
        now.insert("s.a".into(), "2".into());
        now.remove("s.b");
        let Agreement::Differs(changes) = against(dir.path(), &cell, &now).unwrap().agreement else { panic!() };
        assert_eq!(
            changes,
            [
                FactChange { key: "s.a".into(), old: Some("1".into()), new: Some("2".into()) },
                FactChange { key: "s.b".into(), old: Some("x".into()), new: None },
            ]
        );
    }
}
