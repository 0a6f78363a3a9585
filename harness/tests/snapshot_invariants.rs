//! Claims that span snapshots, checked on the committed files (no VM needed).

use std::path::Path;

use ksnap::facts::snapshot::{read, SnapshotFile};

fn snapshots(suite: &str) -> Vec<SnapshotFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    let all = read::read_dir(&dir).unwrap();
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
        let diff = ksnap::present::diff::compare(&first.column, &column(first), &other.column, &column(other));
        assert!(!diff.differs(), "setjmp differs between kernels beyond case 7:\n{}", diff.to_text(usize::MAX));
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

/// The kernel has the `proc_mem.force_override` parameter (its handler is in /proc/kallsyms) exactly where
/// its config has a CONFIG_PROC_MEM_* choice, both added by the same change (fs/proc/base.c,
/// security/Kconfig); where it has not (5.10), a request is reported as not in force, whatever the mode
/// the kernel happens to be in. Kernels without kallsyms (the minimal builds) say `unknown`.
#[test]
fn proc_mem_force_override_parameter_exactly_where_its_config_is() {
    let mut seen = std::collections::BTreeSet::new();
    for snapshot in snapshots("proc_mem") {
        let fact =
            |key: &str| snapshot.facts.get(key).cloned().unwrap_or_else(|| panic!("{}: no {key}", snapshot.column));
        let configured = ["ALWAYS_FORCE", "FORCE_PTRACE", "NO_FORCE"]
            .iter()
            .any(|option| fact(&format!("(config).CONFIG_PROC_MEM_{option}")) == "y");
        let parameter = fact("proc_mem.setup.force_override.parameter_in_kernel");
        if parameter.starts_with("unknown: ") {
            continue;
        }
        assert_eq!(parameter, if configured { "yes" } else { "no" }, "{}", snapshot.column);
        let requested = fact("proc_mem.setup.force_override.requested");
        let in_force = fact("proc_mem.setup.force_override.requested_in_force");
        if parameter == "no" && requested != "unset" {
            let expected = "no: the kernel has no proc_mem.force_override";
            assert!(in_force.starts_with(expected), "{}: requested_in_force = {in_force}", snapshot.column);
        }
        seen.insert((parameter, requested != "unset"));
    }
    for claim in [("yes", true), ("no", true)] {
        assert!(seen.contains(&(claim.0.to_string(), claim.1)), "no snapshot shows {claim:?}: {seen:?}");
    }
}

/// What no /proc/PID/mem mode can change: PTRACE_POKEDATA passes FOLL_FORCE itself (kernel/ptrace.c,
/// `generic_ptrace_pokedata`), process_vm_readv never does (mm/process_vm_access.c), and neither a read of
/// readable memory nor a write into writable memory through /proc/self/mem looks at FOLL_FORCE
/// (mm/gup.c, `check_vma_flags`). These facts are the same in every variant of a kernel.
#[test]
fn proc_mem_facts_that_force_override_cannot_change_are_the_same_in_every_variant() {
    const PREFIXES: [&str; 5] = [
        "proc_mem.pokedata_targets.",
        "proc_mem.other_writers.pokedata_stopped",
        "proc_mem.prot_none.process_vm_readv",
        "proc_mem.shared_read.",
        "proc_mem.rw_mappings.",
    ];
    let mut by_kernel: std::collections::BTreeMap<String, Vec<SnapshotFile>> = Default::default();
    for snapshot in snapshots("proc_mem") {
        let kernel = snapshot.column.split('+').next().unwrap().to_string();
        by_kernel.entry(kernel).or_default().push(snapshot);
    }
    let mut compared = 0;
    for (kernel, variants) in &by_kernel {
        let unaffected = |s: &SnapshotFile| -> Vec<(String, String)> {
            s.facts
                .iter()
                .filter(|(key, _)| PREFIXES.iter().any(|prefix| key.starts_with(prefix)))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        };
        let first = unaffected(&variants[0]);
        for prefix in PREFIXES {
            assert!(first.iter().any(|(key, _)| key.starts_with(prefix)), "{kernel}: no {prefix}… facts");
        }
        for other in &variants[1..] {
            assert_eq!(unaffected(other), first, "{} vs {}", other.column, variants[0].column);
            compared += 1;
        }
    }
    assert!(compared > 0, "no kernel has proc_mem snapshots of two variants");
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

/// The kernel's own selftests agree with our proc_mem suite. mm/mkdirty's `PTRACE write access` cases and
/// mm/ksm_functional_tests' `test_prot_none` write into read-only (PROT_READ, PROT_NONE) private anonymous
/// memory through /proc/self/mem, FOLL_FORCE: they must pass exactly where proc_mem's forced write into a
/// PROT_READ private anonymous page lands, and fail at that write (their own verdicts `write() failed`,
/// `ptrace write failed`) everywhere else — on every kernel and variant both suites ran on.
#[test]
fn selftests_force_writes_through_proc_self_mem_exactly_where_proc_mem_does() {
    let proc_mem: std::collections::BTreeMap<String, SnapshotFile> =
        snapshots("proc_mem").into_iter().map(|s| (s.column.clone(), s)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for selftests in snapshots("kselftest_mm_proc_mem") {
        let column = &selftests.column;
        let ours =
            proc_mem.get(column).unwrap_or_else(|| panic!("kselftest_mm_proc_mem ran on {column}, proc_mem did not"));
        let write = &ours.facts["proc_mem.ro_private_anon.write"];
        let forced = write.starts_with("ok");
        let fact = |key: &str| selftests.facts.get(key).map(String::as_str);
        for case in ["mkdirty.ptrace_write_access", "mkdirty.ptrace_write_access_to_thp"] {
            let expected = if forced { "ok" } else { "not ok: write() failed" };
            assert_eq!(fact(case), Some(expected), "{column}: {case}, where proc_mem's forced write gave {write}");
        }
        // KSM must first merge the PROT_NONE pages (not on 6.1, not in kernels without KSM): only a case
        // that got as far as the write says anything about it.
        let prot_none = fact("ksm_functional_tests.test_prot_none");
        if let Some(value) = prot_none.filter(|v| *v != "not ok: Merging memory failed") {
            let expected = if forced { "ok" } else { "not ok: ptrace write failed" };
            assert_eq!(value, expected, "{column}: test_prot_none, where proc_mem's forced write gave {write}");
            seen.insert(("ksm", forced));
        }
        seen.insert(("mkdirty", forced));
    }
    // The claim is tested both ways, by both selftests.
    for claim in [("mkdirty", true), ("mkdirty", false), ("ksm", true), ("ksm", false)] {
        assert!(seen.contains(&claim), "no snapshot shows {claim:?}: {seen:?}");
    }
}

/// cargo-insta (review, accept, reject, pending-snapshots, test) looks for snapshots only inside package
/// directories: the snapshots directory must stay a workspace member, with nothing in it to build or test.
#[test]
fn cargo_insta_finds_the_snapshots_a_workspace_member_holds_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stub = root.join("snapshots").join("Cargo.toml");
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(stub.as_path()))
        .unwrap_or_else(|| panic!("no workspace member at {}", stub.display()));
    let targets = package["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "the stub has one target, its empty lib: {targets:?}");
    assert_eq!(targets[0]["test"], false, "and it has no tests");
    assert!(metadata["workspace_members"].as_array().unwrap().contains(&package["id"]));
}
