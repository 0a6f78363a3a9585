//! Claims that span snapshots, checked on the committed files (no VM needed).

use std::path::Path;

use ksnap::snapfile::{self, SnapshotFile};

fn snapshots(suite: &str) -> Vec<SnapshotFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    let all = snapfile::read_dir(&dir).unwrap();
    let picked: Vec<SnapshotFile> = all.into_iter().filter(|s| s.suite == suite).collect();
    assert!(picked.len() >= 2, "suite {suite} needs snapshots of at least two kernels");
    picked
}

/// setjmp/longjmp live in libc: everything the suite observes must be the same on every kernel, except
/// the kernel's own side (shadow stacks, case 7) and the config lines that explain it.
#[test]
fn setjmp_facts_are_identical_across_kernels_except_the_kernel_side() {
    let snapshots = snapshots("setjmp");
    let libc_only = |s: &SnapshotFile| {
        let mut facts = s.facts.clone();
        facts.retain(|key, _| !key.starts_with("(config).") && !key.contains(".kernel_shadow_stack"));
        facts
    };
    let first = &snapshots[0];
    for other in &snapshots[1..] {
        let column = |s: &SnapshotFile| [("setjmp".to_string(), libc_only(s))].into_iter().collect();
        let diff = ksnap::diff::compare(&first.column, &column(first), &other.column, &column(other));
        assert!(!diff.differs(), "setjmp differs between kernels beyond case 7:\n{}", diff.to_text());
    }
}
