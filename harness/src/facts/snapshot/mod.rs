//! A cell's snapshot, `snapshots/SUITE@COLUMN.snap`: [`write`](mod@write) says what one holds and writes it (through
//! insta), [`read`](mod@read) reads the committed ones back for the commands that compare them, and
//! [`compare`] holds a run's facts against them.

use std::path::{Path, PathBuf};

pub mod compare;
pub mod read;
pub mod write;

pub use read::SnapshotFile;

/// The directory of committed snapshots.
pub fn dir(root: &Path) -> PathBuf {
    root.join("snapshots")
}
