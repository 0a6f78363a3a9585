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

/// The kernel's answer to the shadow-stack calls does not depend on the libc that asked.
#[test]
fn setjmp_kernel_side_is_the_same_for_musl_and_glibc() {
    for snapshot in snapshots("setjmp") {
        let kernel_side = |libc: &str| -> Vec<(String, String)> {
            let prefix = format!("{libc}.kernel_shadow_stack");
            snapshot
                .facts
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_string(), v.clone())))
                .collect()
        };
        assert!(!kernel_side("musl").is_empty(), "{}: no kernel_shadow_stack facts", snapshot.column);
        assert_eq!(kernel_side("musl"), kernel_side("glibc"), "{}", snapshot.column);
    }
}

/// The /proc/PID/mem mode in force follows from the kernel's config and command line
/// (fs/proc/base.c, `proc_mem_foll_force` and `early_proc_mem_force_override`): the requested mode where
/// the kernel has the parameter; without a request, the CONFIG_PROC_MEM_* default; on a kernel with no
/// such code at all (5.10), always — whatever was requested.
#[test]
fn proc_mem_effective_mode_follows_config_and_command_line() {
    let mut seen = std::collections::BTreeSet::new();
    for snapshot in snapshots("proc_mem") {
        let fact =
            |key: &str| snapshot.facts.get(key).cloned().unwrap_or_else(|| panic!("{}: no {key}", snapshot.column));
        let configured = [("ALWAYS_FORCE", "always"), ("FORCE_PTRACE", "ptrace"), ("NO_FORCE", "never")]
            .into_iter()
            .find(|(option, _)| fact(&format!("(config).CONFIG_PROC_MEM_{option}")) == "y")
            .map(|(_, mode)| mode);
        let requested = fact("proc_mem.setup.force_override.requested");
        let expected = match (configured, requested.as_str()) {
            (None, _) => "always",
            (Some(default), "unset") => default,
            (Some(_), requested) => requested,
        };
        assert_eq!(fact("proc_mem.setup.force_override.effective"), expected, "{}", snapshot.column);
        seen.insert((configured.is_some(), expected.to_string()));
    }
    // The claim is tested on kernels with and without the parameter, and in every mode.
    assert!(seen.contains(&(false, "always".into())), "{seen:?}");
    for mode in ["always", "ptrace", "never"] {
        assert!(seen.contains(&(true, mode.into())), "{seen:?}");
    }
}

/// Where mseal(2) does not exist, nothing else the mseal case reports describes a sealed page.
#[test]
fn proc_mem_without_mseal_every_mseal_fact_is_not_applicable() {
    let mut without = 0;
    for snapshot in snapshots("proc_mem") {
        if snapshot.facts.get("proc_mem.mseal.mseal").map(String::as_str) != Some("ENOSYS") {
            continue;
        }
        without += 1;
        let mseal =
            snapshot.facts.range("proc_mem.mseal.".to_string()..).take_while(|(k, _)| k.starts_with("proc_mem.mseal."));
        for (key, value) in mseal.filter(|(k, _)| *k != "proc_mem.mseal.mseal") {
            assert!(value.starts_with("not applicable:"), "{}: {key} = {value}", snapshot.column);
        }
    }
    assert!(without > 0, "no kernel without mseal in the snapshots");
}
