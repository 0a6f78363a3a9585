//! The parser's tests: the captures ([`super::captures`]) first, then one synthetic input per quirk.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::captures::{captures, other_captures, Capture};
use super::*;

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn capture(kernel: &str, name: &str) -> (Capture, SelftestReport) {
    let capture = captures()
        .into_iter()
        .chain(other_captures())
        .find(|c| c.kernel == kernel && c.name == name)
        .expect("a capture");
    let report = parse(&lines(capture.text), &capture.end);
    (capture, report)
}

fn report(kernel: &str, name: &str) -> SelftestReport {
    capture(kernel, name).1
}

fn parse_text(text: &str) -> SelftestReport {
    parse(&lines(text), &ProbeEnd::Exited(0))
}

/// `KEY = VALUE`, as the snapshot has them.
fn values(report: &SelftestReport) -> Vec<(String, String)> {
    report.cases.iter().map(|c| (c.key.clone(), c.result.to_string())).collect()
}

fn value<'r>(report: &'r SelftestReport, key: &str) -> &'r CaseResult {
    &report.cases.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("no case `{key}`: {report:#?}")).result
}

fn keys(report: &SelftestReport) -> Vec<&str> {
    report.cases.iter().map(|c| c.key.as_str()).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn skip(reason: &str) -> CaseResult {
    CaseResult::Skip { reason: reason.into() }
}

fn missing(why: &str) -> CaseResult {
    CaseResult::NotRun { why: why.into() }
}

fn is_result_line(line: &str) -> bool {
    let rest = line.strip_prefix("not ok ").or_else(|| line.strip_prefix("ok "));
    rest.is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// What every report must hold, whatever the input.
fn check_invariants(report: &SelftestReport) {
    assert!(report.problems.len() <= MAX_PROBLEMS + 1, "{:?}", report.problems);
    assert!(report.cases.len() <= MAX_CASES);
    let mut seen = HashSet::new();
    for case in &report.cases {
        assert!(seen.insert(case.key.as_str()), "key `{}` twice", case.key);
        assert!(!case.key.is_empty() && case.key.len() <= MAX_KEY_LEN, "{}", case.key);
        assert!(case.key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')), "key {:?}", case.key);
        let value = case.result.to_string();
        assert!(!value.is_empty() && value.chars().count() <= 40 + MAX_REASON_CHARS * 2, "{value}");
        assert!(!value.contains(['\n', '\r']), "{value:?}");
        assert!(case.diagnostics.len() <= MAX_CASE_DIAGNOSTICS + 1);
    }
    assert!(!report.binary.to_string().is_empty());
}

#[test]
fn every_capture_keeps_the_invariants_and_loses_no_result_line() {
    for capture in captures() {
        let report = parse(&lines(capture.text), &capture.end);
        let label = format!("{}/{}", capture.kernel, capture.name);
        check_invariants(&report);
        // Each result line is one case (the glued lines of 6.1 start with their result too)...
        let result_lines = capture.text.lines().filter(|l| is_result_line(l)).count();
        let reported = report.cases.iter().filter(|c| c.number.is_some()).count();
        assert_eq!(reported, result_lines, "{label}");
        // ... and the other cases are the ones that never reported.
        for case in report.cases.iter().filter(|c| c.number.is_none()) {
            assert!(matches!(case.result, CaseResult::NotRun { .. }), "{label}: {case:?}");
        }
        // Only the two captures with glued lines, and x86-style output, have something to say.
        match (capture.kernel, capture.name) {
            ("6.1", "mm--ksm_functional_tests") | ("5.10", "mm--khugepaged") | ("6.12", "x86--sigreturn_64") => {
                assert!(!report.problems.is_empty(), "{label}")
            }
            _ => assert!(report.problems.is_empty(), "{label}: {:?}", report.problems),
        }
        assert_eq!(parse(&lines(capture.text), &capture.end), report, "{label}: deterministic");
    }
}

/// The two that our own /proc/self/mem probes are cross-checked against: keys from their
/// `[INFO]`/`[RUN]` lines, never from the verdict text.
#[test]
fn mkdirty_keys_come_from_its_info_lines() {
    let expected = pairs(&[
        ("ptrace_write_access", "ok"),
        ("ptrace_write_access_to_thp", "ok"),
        ("page_migration", "ok"),
        ("page_migration_of_thp", "ok"),
        ("pte-mapping_a_thp", "ok"),
        ("uffdio_copy", "ok"),
    ]);
    let on_6_12 = report("6.12", "mm--mkdirty");
    assert_eq!(values(&on_6_12), expected);
    assert_eq!(on_6_12.binary, CaseResult::Pass);
    assert_eq!(on_6_12.plan, Some(6));
    assert_eq!(on_6_12.cases[0].description, "SIGSEGV generated, page not modified");

    // 7.2 cannot write through /proc/self/mem: `not ok 1 write() failed`, same keys.
    let on_7_2 = report("7.2", "mm--mkdirty");
    assert_eq!(keys(&on_7_2), keys(&on_6_12));
    assert_eq!(value(&on_7_2, "ptrace_write_access"), &CaseResult::Fail);
    assert_eq!(value(&on_7_2, "ptrace_write_access_to_thp"), &CaseResult::Fail);
    assert_eq!(value(&on_7_2, "page_migration"), &CaseResult::Pass);
    assert_eq!(on_7_2.cases[0].description, "write() failed");
    assert_eq!(on_7_2.binary, CaseResult::Fail);
    assert_eq!(on_7_2.bail_out.as_deref(), Some("2 out of 6 tests failed"));
}

#[test]
fn ksm_functional_tests_keys_come_from_its_run_lines() {
    let names = [
        "test_unmerge",
        "test_unmerge_zero_pages",
        "test_unmerge_discarded",
        "test_unmerge_uffd_wp",
        "test_prot_none",
        "test_prctl",
        "test_prctl_fork",
        "test_prctl_fork_exec",
        "test_prctl_unmerge",
        "test_fork_ksm_merging_page_count",
    ];
    let on_6_12 = report("6.12", "mm--ksm_functional_tests");
    assert_eq!(values(&on_6_12), pairs(&names.map(|n| (n, "ok"))));
    assert_eq!(on_6_12.binary, CaseResult::Pass);

    // 7.2: test_prot_none writes through /proc/self/mem and fails with another description.
    let on_7_2 = report("7.2", "mm--ksm_functional_tests");
    assert_eq!(keys(&on_7_2), names);
    assert_eq!(value(&on_7_2, "test_prot_none"), &CaseResult::Fail);
    assert_eq!(on_7_2.cases[4].description, "ptrace write failed");
    assert_eq!(on_7_2.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 1);

    // 6.1: two messages without their newline glue the next `# [RUN]` to them.
    let on_6_1 = report("6.1", "mm--ksm_functional_tests");
    assert_eq!(keys(&on_6_1), names);
    assert_eq!(
        values(&on_6_1),
        pairs(&[
            ("test_unmerge", "ok"),
            ("test_unmerge_zero_pages", "not ok"),
            ("test_unmerge_discarded", "ok"),
            ("test_unmerge_uffd_wp", "not ok"),
            ("test_prot_none", "not ok"),
            ("test_prctl", "skip: PR_SET_MEMORY_MERGE not supported"),
            ("test_prctl_fork", "skip: PR_SET_MEMORY_MERGE not supported"),
            ("test_prctl_fork_exec", "skip: PR_SET_MEMORY_MERGE not supported"),
            ("test_prctl_unmerge", "skip: Merging memory skipped"),
            ("test_fork_ksm_merging_page_count", "ok"),
        ])
    );
    assert_eq!(
        on_6_1.problems,
        [
            "line 13: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
            "line 21: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
        ]
    );
    assert_eq!(on_6_1.cases[4].description, "Merging memory failed");
    assert_eq!(on_6_1.cases[4].diagnostics, ["No pages got merged"]);
    assert_eq!(on_6_1.bail_out.as_deref(), Some("3 out of 10 tests failed"));

    // 5.10 has no /proc/self/ksm_merging_pages: the binary skips after its first case.
    let on_5_10 = report("5.10", "mm--ksm_functional_tests");
    let reason = "accessing \"/proc/self/ksm_merging_pages\") failed";
    assert_eq!(on_5_10.binary, skip(reason));
    assert_eq!(
        values(&on_5_10),
        pairs(&[
            ("accessing_proc_self_ksm_merging_pages_failed", &format!("skip: {reason}")),
            (MISSING_KEY, "missing: 9 of 10 planned (exit 4)"),
        ])
    );
}

#[test]
fn cow_cases_are_named_by_their_run_lines() {
    // The capture is cut after case 300 of 761 (PROVENANCE.md).
    let on_6_12 = report("6.12", "mm--cow");
    assert_eq!(on_6_12.plan, Some(761));
    assert_eq!(on_6_12.cases.len(), 301);
    assert_eq!(on_6_12.cases.last().unwrap().result, missing("461 of 761 planned (exit 0)"));
    assert_eq!(on_6_12.binary, CaseResult::Pass);
    assert_eq!(value(&on_6_12, "basic_cow_after_fork_with_base_page"), &CaseResult::Pass);
    // `ok 2 # SKIP <the [RUN] text>`: the name repeats the context; the reason is the line before.
    assert_eq!(
        value(&on_6_12, "basic_cow_after_fork_with_swapped_out_base_page"),
        &skip("MADV_PAGEOUT did not work, is swap enabled?")
    );
    assert_eq!(
        value(&on_6_12, "vmsplice_unmap_in_child_with_hugetlb_2048_kb"),
        &CaseResult::Xfail { reason: "Leak from parent into child".into() }
    );
    let skipped = on_6_12.cases.iter().filter(|c| matches!(c.result, CaseResult::Skip { .. })).count();
    assert_eq!(skipped, 102);

    let on_5_10 = report("5.10", "mm--cow");
    assert_eq!(on_5_10.cases.len(), 173);
    assert_eq!(on_5_10.binary, CaseResult::Fail);
    assert_eq!(on_5_10.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 10);
    assert_eq!(value(&on_5_10, "vmsplice_unmap_in_child_with_thp_2048_kb"), &CaseResult::Fail);
    assert_eq!(
        value(&on_5_10, "r_o-mapping_a_page_registered_as_iouring_fixed_buffer_with_base_page"),
        &CaseResult::Fail
    );
    // The section heading cow prints as a `[RUN]` line is no case.
    assert!(!keys(&on_5_10).iter().any(|k| k.contains("memory_tests")));
}

#[test]
fn uffd_unit_tests_keep_their_keys_whether_they_pass_or_skip() {
    let on_6_12 = report("6.12", "mm--uffd-unit-tests");
    assert_eq!(on_6_12.cases.len(), 67);
    assert_eq!(value(&on_6_12, "uffdio_api_with_syscall"), &CaseResult::Pass);
    assert_eq!(
        value(&on_6_12, "wp-fork-pin_on_hugetlb-private"),
        &skip("Possibly CONFIG_GUP_TEST missing or unprivileged")
    );
    assert_eq!(value(&on_6_12, "mmap-changing_on_shmem"), &CaseResult::Pass);

    // 5.10: all 67 skipped, `ok N # SKIP NAME (REASON)`.
    let on_5_10 = report("5.10", "mm--uffd-unit-tests");
    assert_eq!(keys(&on_5_10), keys(&on_6_12));
    assert_eq!(value(&on_5_10, "uffdio_api_with_dev_userfaultfd"), &skip("cannot open userfaultfd handle"));
    assert_eq!(value(&on_5_10, "zeropage_on_hugetlb-private"), &skip("memory allocation failed"));
    assert_eq!(value(&on_5_10, "wp-fork-pin_on_hugetlb-private"), &skip("feature missing"));
    assert!(on_5_10.cases.iter().all(|c| matches!(c.result, CaseResult::Skip { .. })));
}

#[test]
fn khugepaged_bail_outs_and_colour() {
    let on_6_12 = report("6.12", "mm--khugepaged");
    assert_eq!(on_6_12.cases.len(), 16);
    // The same description twice, told apart by `# Run test: NAME (MODE)`.
    assert_eq!(on_6_12.cases[1].key, "collapse_full_khugepaged_anon");
    assert_eq!(on_6_12.cases[2].key, "collapse_full_madvise_anon");
    assert_eq!(on_6_12.cases[0].key, "allocate_on_fault_and_split");
    assert_eq!(on_6_12.bail_out.as_deref(), Some("Failed to allocate huge page"));
    let end = on_6_12.cases.len() - 2;
    assert_eq!(
        values(&on_6_12)[end..],
        pairs(&[
            ("collapse_compound_extreme_madvise_anon", "missing: no result (bailed out: Failed to allocate huge page)"),
            (MISSING_KEY, "missing: 11 of 26 planned (bailed out: Failed to allocate huge page)"),
        ])
    );
    // Colour escapes are gone from what is kept.
    assert_eq!(
        on_6_12.cases[0].diagnostics,
        ["Allocate huge page on fault... OK", "Split huge PMD on MADV_DONTNEED... OK"]
    );

    // 5.10: `# Allocate huge page...Bail out! madvise(MADV_COLLAPSE): Invalid argument (22)`.
    let on_5_10 = report("5.10", "mm--khugepaged");
    assert_eq!(
        on_5_10.problems,
        ["line 42: `Bail out!` is glued to the text before it (a missing newline); read as two lines"]
    );
    assert_eq!(value(&on_5_10, "collapse_full_madvise_anon"), &CaseResult::Fail);
    assert_eq!(
        value(&on_5_10, "collapse_single_pte_entry_compound_khugepaged_anon"),
        &missing("no result (bailed out: madvise(MADV_COLLAPSE): Invalid argument (22))")
    );
    assert_eq!(
        value(&on_5_10, MISSING_KEY),
        &missing("16 of 26 planned (bailed out: madvise(MADV_COLLAPSE): Invalid argument (22))")
    );

    // 7.2: a forked child bails out in the middle and the parent goes on to the end.
    let on_7_2 = report("7.2", "mm--khugepaged");
    assert_eq!(on_7_2.cases.len(), 26);
    assert_eq!(on_7_2.bail_out, None);
    let shared = on_7_2.cases.iter().find(|c| c.key == "collapse_max_ptes_shared_khugepaged_anon").unwrap();
    assert_eq!(shared.result, CaseResult::Pass);
    assert!(shared.diagnostics.iter().any(|d| d == "Bail out! Unexpected huge page"), "{shared:?}");
    assert_eq!(value(&on_7_2, "collapse_swapin_single_pte_madvise_anon"), &CaseResult::Fail);
}

#[test]
fn kselftest_harness_names_are_the_keys() {
    let guard = report("6.12", "mm--guard-regions");
    assert_eq!(guard.cases.len(), 90);
    assert_eq!(guard.cases[0].key, "guard_regions_anon_basic");
    assert_eq!(guard.cases[0].result, CaseResult::Fail);
    assert_eq!(
        value(&guard, "guard_regions_anon_madvise_sequential"),
        &skip("MADV_SEQUENTIAL meaningful only for file-backed")
    );
    assert_eq!(guard.binary, CaseResult::Fail);

    let pidns = report("6.12", "proc--proc-pidns");
    assert_eq!(
        keys(&pidns),
        [
            "ns_pidns_mount_string_path",
            "ns_pidns_fsconfig_string_path",
            "ns_pidns_fsconfig_fd",
            "ns_pidns_reconfigure_remount",
            "ns_pidns_reconfigure_fsconfig_string_path",
            "ns_pidns_reconfigure_fsconfig_fd",
        ]
    );
    assert!(pidns.cases.iter().all(|c| c.result == CaseResult::Fail));
}

#[test]
fn other_mm_tests() {
    // No `TAP version` line; XFAIL with the name in the directive; a random seed printed.
    let mremap = report("6.12", "mm--mremap_test");
    assert_eq!(mremap.cases.len(), 26);
    assert_eq!(
        value(&mremap, "mremap_source_and_destination_regions_overlapping"),
        &CaseResult::Xfail { reason: "mremap - Source and Destination Regions Overlapping".into() }
    );
    assert_eq!(value(&mremap, "2gb_mremap_source_pud-aligned_destination_pte-aligned"), &CaseResult::Fail);
    assert_eq!(value(&mremap, "8kb_mremap_source_pte-aligned_destination_pte-aligned"), &CaseResult::Pass);

    // A measurement in a description is masked.
    let pagemap = report("6.12", "mm--pagemap_ioctl");
    assert_eq!(pagemap.cases.len(), 118);
    assert_eq!(value(&pagemap, "transact_test_extra_pages_n_n_extra_thread_faults_n"), &CaseResult::Pass);
    assert_eq!(value(&pagemap, "sanity_tests_sd_output_buffer_can_be_0-2"), &CaseResult::Pass);

    // The same description twice by design, and `# SKIP NAME: line:N`.
    let mseal = report("6.12", "mm--mseal_test");
    assert_eq!(mseal.cases.len(), 88);
    assert_eq!(value(&mseal, "test_seal_mprotect"), &CaseResult::Pass);
    assert_eq!(value(&mseal, "test_seal_mprotect-2"), &CaseResult::Pass);
    assert_eq!(value(&mseal, "test_seal_discard_ro_anon_on_pkey-2"), &skip("line:1669"));
    // 5.10: `1..0 # SKIP reason`, exit 4.
    let mseal_5_10 = report("5.10", "mm--mseal_test");
    assert_eq!(mseal_5_10.binary, skip("sealing not supported, check CONFIG_64BIT"));
    assert_eq!(mseal_5_10.plan, Some(0));
    assert!(mseal_5_10.cases.is_empty());

    let soft_dirty = report("6.12", "mm--soft-dirty");
    assert_eq!(soft_dirty.cases.len(), 19);
    assert_eq!(soft_dirty.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 4);
    assert_eq!(value(&soft_dirty, "test_test_merge-anon_soft-dirty_after_remap_merge_1st_pg"), &CaseResult::Fail);

    // `# [RUN]` before a plan with no version line; `ok N # SKIP REASON` under its `[RUN]`.
    let wp = report("6.12", "mm--uffd-wp-mremap");
    assert_eq!(wp.cases.len(), 38);
    assert_eq!(
        value(&wp, "test_one_folio_size_4096_private_true_swapout_true_hugetlb_false"),
        &skip("MADV_PAGEOUT did not work, is swap enabled?")
    );
    assert_eq!(value(&wp, "test_one_folio_size_2097152_private_true_swapout_false_hugetlb_true"), &CaseResult::Pass);

    // A `[RUN]` with several results: context and description.
    let madv = report("6.12", "mm--madv_populate");
    assert_eq!(madv.cases[0].key, "test_prot_read__madv_populate_read_with_prot_read");
    assert_eq!(madv.cases[4].key, "test_holes__madv_populate_read_with_holes_in_the_middle");
    assert_eq!(madv.cases.len(), 21);

    // Bail out right after the plan.
    let split = report("5.10", "mm--split_huge_page_test");
    assert_eq!(
        values(&split),
        pairs(&[(
            MISSING_KEY,
            "missing: 62 of 62 planned (bailed out: /sys/kernel/debug/split_huge_pages open failed: No such file \
             or directory)"
        )])
    );
}

#[test]
fn proc_tests_print_nothing_and_are_their_exit() {
    let abort = report("5.10", "proc--proc-2-is-kthread");
    assert!(abort.cases.is_empty() && abort.problems.is_empty() && abort.plan.is_none());
    assert_eq!(abort.binary.to_string(), "killed by signal 6 (SIGABRT)");
    let failed = report("6.12", "proc--proc-empty-vm");
    assert!(failed.cases.is_empty() && failed.problems.is_empty());
    assert_eq!(failed.binary.to_string(), "not ok");
    let timed_out = parse(&[], &ProbeEnd::TimedOut(Duration::from_secs(300)));
    assert_eq!(timed_out.binary, CaseResult::Timeout { ms: Some(300_000) });
    assert_eq!(timed_out.binary.to_string(), "timeout");
    assert!(timed_out.cases.is_empty());
}

/// The same description on two kernels gives the same key; so does a case that passes on one and
/// is skipped or fails (with another description) on the other, where the test names it elsewhere.
#[test]
fn keys_are_the_same_across_kernels() {
    let same_test: &[(&str, &[&str])] = &[
        ("mm--cow", &["5.10", "6.12"]),
        ("mm--khugepaged", &["5.10", "6.12", "7.2"]),
        ("mm--ksm_functional_tests", &["5.10", "6.1", "6.12", "7.2"]),
        ("mm--mkdirty", &["6.12", "7.2"]),
        ("mm--uffd-unit-tests", &["5.10", "6.12"]),
    ];
    for (name, kernels) in same_test {
        let by_text: Vec<BTreeMap<&str, String>> = kernels
            .iter()
            .map(|kernel| {
                let (capture, report) = capture(kernel, name);
                let texts: Vec<&str> = capture
                    .text
                    .lines()
                    .filter(|l| is_result_line(l))
                    .map(|l| {
                        l.split_once(' ').unwrap().1.trim_start_matches("ok ").split_once(' ').map_or("", |(_, t)| t)
                    })
                    .collect();
                let reported: Vec<&SelftestCase> = report.cases.iter().filter(|c| c.number.is_some()).collect();
                assert_eq!(texts.len(), reported.len());
                // Only texts printed once in the file: a repeated one is told apart by its context.
                let mut map: BTreeMap<&str, Option<&str>> = BTreeMap::new();
                for (text, case) in texts.into_iter().zip(reported) {
                    map.entry(text).and_modify(|k| *k = None).or_insert(Some(case.key.as_str()));
                }
                map.into_iter().filter_map(|(text, key)| Some((text, key?.to_owned()))).collect::<BTreeMap<_, _>>()
            })
            .collect();
        let mut compared = 0;
        for (a, b) in by_text.iter().zip(by_text.iter().skip(1)) {
            for (text, key) in a {
                if let Some(other) = b.get(text) {
                    assert_eq!(key, other, "{name}: {text:?}");
                    compared += 1;
                }
            }
        }
        // mkdirty prints one description six times, ksm_functional_tests' descriptions change with
        // the outcome and uffd-unit-tests' with the skip reason: their keys are compared whole in
        // their own tests.
        if matches!(*name, "mm--cow" | "mm--khugepaged") {
            assert!(compared > 0, "{name}");
        }
    }
}

// Synthetic inputs, one per quirk.

#[test]
fn empty_descriptions() {
    let report = parse_text("TAP version 13\n1..4\nok 1\nnot ok 2 -\nok 3 # SKIP\nok 4 #\n");
    assert_eq!(values(&report), pairs(&[("case-1", "ok"), ("case-2", "not ok"), ("case-3", "skip"), ("case-4", "ok")]));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Under a context, the context names it.
    let report = parse_text("1..1\n# [RUN] test_thing\nok 1\n");
    assert_eq!(values(&report), pairs(&[("test_thing", "ok")]));
}

#[test]
fn output_before_the_version_line_or_none() {
    let text = "page_size: 4096, mlock.soft: 8388608\n# [INFO] detected THP size: 2048 KiB\nTAP version 13\n\
                # [INFO] detected hugetlb page size: 2048 KiB\n1..2\nok 1 first\nok 2 second\n";
    let report = parse_text(text);
    assert_eq!(values(&report), pairs(&[("first", "ok"), ("second", "ok")]));
    assert!(report.problems.is_empty());
    let without = parse_text(&text.replace("TAP version 13\n", ""));
    assert_eq!(without, report);
    // No plan at all in TAP output is a problem.
    let no_plan = parse_text("TAP version 13\nok 1 a\n");
    assert_eq!(no_plan.problems, ["no plan line (`1..N`): cannot tell whether every case ran"]);
}

#[test]
fn glued_lines_are_cut() {
    let report = parse(
        &lines(
            "TAP version 13\n1..3\n# [RUN] test_a\nnot ok 1 Merging memory failed# [RUN] test_b\n\
             ok 2 # SKIP Merging memory skippedBail out! no memory\n",
        ),
        &ProbeEnd::Exited(1),
    );
    assert_eq!(
        values(&report),
        pairs(&[
            ("test_a", "not ok"),
            ("test_b", "skip: Merging memory skipped"),
            (MISSING_KEY, "missing: 1 of 3 planned (bailed out: no memory)"),
        ])
    );
    assert_eq!(
        report.problems,
        [
            "line 4: `# [RUN]` is glued to the text before it (a missing newline); read as two lines",
            "line 5: `Bail out!` is glued to the text before it (a missing newline); read as two lines",
        ]
    );
    assert_eq!(report.bail_out.as_deref(), Some("no memory"));
    // A marker at the start of a line is the line's own; a non-ASCII start is no trouble.
    let report = parse_text("1..1\n\u{e9}# [INFO] x\nok 1 a\n");
    assert_eq!(
        report.problems,
        ["line 2: `# [INFO]` is glued to the text before it (a missing newline); read as two lines"]
    );
    let report = parse_text("1..1\nok 1 a\nxKTAP version 1\n");
    assert_eq!(
        report.problems,
        [
            "line 3: `KTAP version` is glued to the text before it (a missing newline); read as two lines",
            // A version line after the plan starts another program's TAP.
            "line 3: a second `TAP version` after the plan (an exec'd program's own output); its lines up to its \
             `# Totals:` are read as diagnostics",
        ]
    );
    // Linear in a line's length, however many markers it holds.
    let report = parse_text(&"Bail out!# [RUN] x".repeat(20_000));
    assert_eq!(report.problems.len(), MAX_PROBLEMS + 1);
}

#[test]
fn a_number_printed_twice() {
    let report = parse_text("1..3\nok 1 a\nok 2 b\nok 2 b\nnot ok 2 c\nok 3 d\n");
    assert_eq!(values(&report), pairs(&[("a", "ok"), ("b", "ok"), ("c", "not ok"), ("d", "ok")]));
    assert_eq!(
        report.problems,
        [
            "line 4: result 2 repeated verbatim (a copy of earlier output, e.g. flushed by a forked child); \
             counted once",
            "line 5: test number 2 appears twice",
        ]
    );
    let report = parse_text("1..3\nok 1 a\nok 3 c\nok 2 b\n");
    assert_eq!(
        report.problems,
        ["line 3: test 3 is out of order; expected test 2", "line 4: test 2 is out of order; expected test 4"]
    );
    assert_eq!(report.cases.len(), 3);
}

#[test]
fn planned_cases_missing_after_the_process_died() {
    let text = "TAP version 13\n1..5\n# [RUN] one\nok 1 x\n# [RUN] two\nok 2 x\n# [RUN] three\nok 3 x\n# [RUN] four\n";
    let report = parse(&lines(text), &ProbeEnd::Signaled(libc::SIGABRT));
    assert_eq!(
        values(&report),
        pairs(&[
            ("one", "ok"),
            ("two", "ok"),
            ("three", "ok"),
            ("four", "missing: no result (killed by signal 6 (SIGABRT))"),
            (MISSING_KEY, "missing: 1 of 5 planned (killed by signal 6 (SIGABRT))"),
        ])
    );
    assert_eq!(report.binary.to_string(), "killed by signal 6 (SIGABRT)");
    assert!(report.problems.is_empty());

    let timeout = parse(&lines("1..2\nok 1 a\n"), &ProbeEnd::TimedOut(Duration::from_millis(1500)));
    assert_eq!(value(&timeout, MISSING_KEY).to_string(), "missing: 1 of 2 planned (timeout)");
    let segv = parse(&lines("1..2\nok 1 a\n"), &ProbeEnd::Exited(139));
    assert_eq!(segv.binary.to_string(), "exit 139");
    assert_eq!(value(&segv, MISSING_KEY).to_string(), "missing: 1 of 2 planned (exit 139)");

    // A case may be called `missing` too.
    let report = parse_text("1..2\nok 1 missing\n");
    assert_eq!(keys(&report), ["missing", "missing-2"]);
    // More than planned.
    let report = parse_text("1..1\nok 1 a\nok 2 b\n");
    assert_eq!(report.problems, ["1 result is numbered outside the plan (`1..1`)"]);
    // A context left open after the plan is complete is not a missing case.
    let report = parse_text("1..1\n# [RUN] a\nok 1 a\n# [RUN] cleanup\n");
    assert_eq!(values(&report), pairs(&[("a", "ok")]));
}

#[test]
fn bail_out() {
    let report = parse(&lines("1..2\nok 1 a\nBail out! no device\n# Totals: pass:1\n"), &ProbeEnd::Exited(1));
    assert_eq!(report.bail_out.as_deref(), Some("no device"));
    assert_eq!(value(&report, MISSING_KEY).to_string(), "missing: 1 of 2 planned (bailed out: no device)");
    assert!(report.problems.is_empty());
    // After the last case (`ksft_finished` with failures): the end, nothing missing.
    let report = parse(&lines("1..1\nnot ok 1 a\nBail out! 1 out of 1 tests failed\n"), &ProbeEnd::Exited(1));
    assert_eq!(values(&report), pairs(&[("a", "not ok")]));
    assert_eq!(report.bail_out.as_deref(), Some("1 out of 1 tests failed"));
    // Followed by results: a child's, a diagnostic of the next case.
    let report = parse_text("1..2\nok 1 a\nBail out!\nok 2 b\n");
    assert_eq!(report.bail_out, None);
    assert_eq!(report.cases[1].diagnostics, ["Bail out!"]);
}

#[test]
fn directives_in_any_case() {
    let report = parse_text(
        "1..9\nok 1 a # skip no device\nnot ok 2 b # Xfail known\nnot ok 3 c # todo later\nok 4 d # XPASS\n\
         not ok 5 # error e failed\nnot ok 6 f # TIMEOUT\nnot ok 7 g # Error: prose\nok 8 h # SKIPPED why\n\
         ok 9 i # rcode=0\n",
    );
    assert_eq!(
        values(&report),
        pairs(&[
            ("a", "skip: no device"),
            ("b", "xfail: known"),
            ("c", "todo: later"),
            ("d", "xpass"),
            ("e_failed", "error: e failed"),
            ("f", "timeout"),
            ("g", "not ok"),
            ("h", "skip: why"),
            ("i", "ok"),
        ])
    );
    assert_eq!(report.cases[6].diagnostics, ["Error: prose"]);
    assert_eq!(report.cases[8].diagnostics, ["rcode=0"]);
    assert!(CaseResult::Xpass.is_failure() && !skip("").is_failure() && missing("x").is_failure());
}

#[test]
fn skip_messages_name_the_case() {
    let report = parse_text(
        "1..6\nok 1 # SKIP UFFDIO_API (with syscall) (cannot open userfaultfd handle)\n\
         ok 2 # SKIP test_seal_x: line:12\nok 3 # SKIP Please run this test as root\n\
         ok 4 # XFAIL mremap - Source Address Misaligned (1KB-aligned)\n\
         # [RUN] test_one\nok 5 # SKIP userfaultfd not available\n\
         # [RUN] Basic COW ... with base page\n# MADV_PAGEOUT did not work\nok 6 # SKIP Basic COW ... with base page\n",
    );
    assert_eq!(
        values(&report),
        pairs(&[
            ("uffdio_api_with_syscall", "skip: cannot open userfaultfd handle"),
            ("test_seal_x", "skip: line:12"),
            ("please_run_this_test_as_root", "skip: Please run this test as root"),
            ("mremap_source_address_misaligned_1kb-aligned", "xfail: mremap - Source Address Misaligned (1KB-aligned)"),
            ("test_one", "skip: userfaultfd not available"),
            ("basic_cow_with_base_page", "skip: MADV_PAGEOUT did not work"),
        ])
    );
}

#[test]
fn whole_binary_skip() {
    let report = parse(&lines("TAP version 13\n1..0 # SKIP no sealing\n"), &ProbeEnd::Exited(4));
    assert_eq!(report.binary.to_string(), "skip: no sealing");
    assert!(report.cases.is_empty() && report.problems.is_empty());
    assert_eq!(parse(&lines("1..0 # skip no sealing\n"), &ProbeEnd::Exited(0)).binary, skip("no sealing"));
    assert_eq!(parse(&[], &ProbeEnd::Exited(4)).binary.to_string(), "skip");
    let failing = parse(&lines("1..0 # SKIP x\n"), &ProbeEnd::Exited(1));
    assert_eq!(failing.binary, CaseResult::Fail);
    assert_eq!(failing.problems, ["the plan skips the whole binary (`1..0 # SKIP`) but it exited 1"]);
}

#[test]
fn binary_results() {
    let cases = [
        (ProbeEnd::Exited(0), "ok"),
        (ProbeEnd::Exited(1), "not ok"),
        (ProbeEnd::Exited(2), "xfail"),
        (ProbeEnd::Exited(3), "xpass"),
        (ProbeEnd::Exited(4), "skip"),
        (ProbeEnd::Exited(139), "exit 139"),
        (ProbeEnd::Exited(-1), "exit -1"),
        (ProbeEnd::Signaled(libc::SIGSEGV), "killed by signal 11 (SIGSEGV)"),
        (ProbeEnd::Signaled(99), "killed by signal 99 (?)"),
        (ProbeEnd::TimedOut(Duration::from_secs(u64::MAX)), "timeout"),
        (ProbeEnd::SpawnError("ENOENT\u{1b}[31m\n".into()), "could not be started (ENOENT)"),
    ];
    for (end, expected) in cases {
        assert_eq!(parse(&[], &end).binary.to_string(), expected, "{end:?}");
    }
}

#[test]
fn indented_subtests() {
    let report = parse_text(
        "TAP version 14\n1..2\n# Subtest: suite\n    1..2\n    ok 1 first\n    not ok 2 second\nnot ok 1 suite\n\
         ok 2 other\n",
    );
    assert_eq!(
        values(&report),
        pairs(&[("suite__first", "ok"), ("suite__second", "not ok"), ("suite", "not ok"), ("other", "ok")])
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let orphans = parse_text("1..1\nok 1 a\n  ok 1 sub\n");
    assert_eq!(keys(&orphans), ["a", "sub"]);
    assert_eq!(
        orphans.problems,
        ["1 indented result line at the end belongs to no result line; kept as cases of their own"]
    );
    // Indentation of the whole output is not nesting.
    let indented = parse_text("  1..1\n  ok 1 a\n");
    assert_eq!(values(&indented), pairs(&[("a", "ok")]));
}

#[test]
fn totals_and_summaries_are_ignored() {
    let report = parse_text(
        "TAP version 13\n1..2\n# Starting 2 tests from 1 test cases.\n#  RUN           global.a ...\n\
         #            OK  global.a\nok 1 global.a\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n\
         # Planned tests != run tests (2 != 1)\n#  RUN           global.b ...\n#      SKIP      no b\n\
         #            OK  global.b\nok 2 global.b # SKIP no b\n# PASSED: 2 / 2 tests passed.\n\
         # 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.\n\
         # Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0\n",
    );
    assert_eq!(values(&report), pairs(&[("global_a", "ok"), ("global_b", "skip: no b")]));
    assert!(report.problems.is_empty());
    assert!(report.cases[1].diagnostics.is_empty(), "{:?}", report.cases[1].diagnostics);
    // A harness test reported twice is suspicious.
    let twice = parse_text("1..2\n#  RUN  global.a ...\nok 1 global.a\n#  RUN  global.a ...\nok 2 global.a\n");
    assert_eq!(keys(&twice), ["global_a", "global_a-2"]);
    assert_eq!(twice.problems, ["the kselftest_harness test `global_a` reported more than once"]);
}

#[test]
fn lines_that_only_look_like_results() {
    let report = parse_text(
        "1..1\nok 1abc\nok then\nokay\nok 99999999999999999999999 big\nok 1 real\n1..99999999999999999999\n",
    );
    assert_eq!(values(&report), pairs(&[("real", "ok")]));
    assert_eq!(
        report.problems,
        [
            "line 2: \"ok 1abc\" starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
            "line 3: \"ok then\" starts like a result line but is not one (`ok N DESCRIPTION`); ignored",
            "line 5: \"ok 99999999999999999999999 big\" starts like a result line but is not one (`ok N \
             DESCRIPTION`); ignored",
            "line 7: the plan's count is too large to read; ignored",
        ]
    );
    // TAP's numberless results take the next number.
    let numberless = parse_text("1..2\nok - a\nnot ok\n");
    assert_eq!(values(&numberless), pairs(&[("a", "ok"), ("case-2", "not ok")]));
    assert_eq!(numberless.cases[1].number, Some(2));
}

#[test]
fn old_uffd_unit_tests_format() {
    let report = parse(
        &lines(
            "Testing UFFDIO_API (with syscall)... done\nTesting register-ioctls on anon... skipped [reason: \
             feature missing]\nTesting zeropage on shmem... failed [reason: zeropage wrong]\n\
             Testing move on anon... \ndone\nTesting wp-fork on hugetlb... \n",
        ),
        &ProbeEnd::Signaled(libc::SIGSEGV),
    );
    assert_eq!(
        values(&report),
        pairs(&[
            ("uffdio_api_with_syscall", "ok"),
            ("register-ioctls_on_anon", "skip: feature missing"),
            ("zeropage_on_shmem", "not ok"),
            ("move_on_anon", "ok"),
            ("wp-fork_on_hugetlb", "missing: no result (killed by signal 11 (SIGSEGV))"),
        ])
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // The verdict words alone are text unless a `Testing` line waits for one.
    assert!(parse_text("done\nfailed\n").cases.is_empty());
}

#[test]
fn khugepaged_steps() {
    // In TAP output, colour-escaped step verdicts are diagnostics of the TAP result.
    let tap = parse_text("TAP version 13\n1..1\n# Allocate... \u{1b}[31mFail: Bad\u{1b}[0m\nok 1 alloc\n");
    assert_eq!(values(&tap), pairs(&[("alloc", "ok")]));
    assert_eq!(tap.cases[0].diagnostics, ["Allocate... Fail: Bad"]);
    // With no TAP at all (older khugepaged), each step is a case.
    let old = parse(
        &lines(
            "Save THP and khugepaged settings... \u{1b}[32mOK\u{1b}[0m\nAllocate huge page on fault... \
             \u{1b}[32mOK\u{1b}[0m\nCollapse fully populated PTE table.... \u{1b}[31mFail\u{1b}[0m\n\
             Swapout one page... \u{1b}[33mSkip: no swap\u{1b}[0m\nConstruct PTE page table full of pages\n \
             \u{1b}[32mOK\u{1b}[0m\n",
        ),
        &ProbeEnd::Exited(1),
    );
    assert_eq!(
        values(&old),
        pairs(&[
            ("save_thp_and_khugepaged_settings", "ok"),
            ("allocate_huge_page_on_fault", "ok"),
            ("collapse_fully_populated_pte_table", "not ok"),
            ("swapout_one_page", "skip: no swap"),
            ("construct_pte_page_table_full_of_pages", "ok"),
        ])
    );
}

#[test]
fn masking() {
    assert_eq!(mask("mmap() @ 0x7ffff7ff4000-0x7ffff7ff9000 p=0xffffffffffffffff"), "mmap() @ ADDR-ADDR p=ADDR");
    assert_eq!(mask("vma 7ffff7ff4000-7ffff7ff9000 flags 0x10 deadbeef"), "vma ADDR-ADDR flags 0x10 deadbeef");
    assert_eq!(mask("child pid 1234 (pid=77, tid: 8) pidfd 3 pidns"), "child pid N (pid=N, tid: N) pidfd 3 pidns");
    assert_eq!(mask("random seed: 1796171248, pattern_seed=42, seeds 3"), "random seed: N, pattern_seed=N, seeds 3");
    assert_eq!(
        mask("done (0.123 s) in 12 ms, took 3.2s, 222374ns, 2 sizes, 16 kB, 5 secs"),
        "done (N s) in N ms, took Ns, Nns, 2 sizes, 16 kB, N secs"
    );
    assert_eq!(mask("at 1700000000 and 140737353920512, size=2097152"), "at N and N, size=2097152");
    assert_eq!(
        mask("transact_test Extra pages 1 (0.0%), extra thread faults 1."),
        "transact_test Extra pages N (N%), extra thread faults N."
    );
    assert_eq!(
        mask("Success reaping a child with 2MB of memory allocations"),
        "Success reaping a child with NMB of memory allocations"
    );
    assert_eq!(mask("8KB mremap (2048 kB) line:1669 5.10.223 é 0x"), "8KB mremap (2048 kB) line:1669 5.10.223 é 0x");
    assert_eq!(mask(&mask("pid 12 at 0x123456")), mask("pid 12 at 0x123456"), "idempotent");
}

#[test]
fn key_rule() {
    assert_eq!(
        case_key("Basic COW after fork() ... with PTE-mapped THP (16 kB)"),
        "basic_cow_after_fork_with_pte-mapped_thp_16_kb"
    );
    assert_eq!(case_key("mremap - Source"), "mremap_source");
    assert_eq!(case_key("guard_regions.anon.basic"), "guard_regions_anon_basic");
    assert_eq!(case_key("a__b--c"), "a_b_c");
    assert_eq!(case_key("  --(x)--  "), "x");
    assert_eq!(case_key("R/W longterm GUP pin"), "r_w_longterm_gup_pin");
    assert_eq!(case_key("mmap() @ 0x7ffff7ff4000 took 12 ms"), "mmap_addr_took_n_ms");
    assert_eq!(case_key("日本語"), "");
    let long = "word ".repeat(100);
    let key = case_key(&long);
    assert_eq!(key.len(), MAX_KEY_LEN);
    assert!(key.starts_with("word_word_"));
    assert_ne!(key, case_key(&format!("{long} more")), "a cut key keeps a hash of the whole");
    assert_eq!(key, case_key(&long), "and is the same every time");
}

#[test]
fn caps_hold() {
    let mut text = String::from("1..100000\n");
    for n in 1..=6000 {
        text.push_str(&format!("ok {n} same\n"));
    }
    text.push_str("# [RUN] the last\n");
    let report = parse_text(&text);
    check_invariants(&report);
    assert_eq!(report.cases.len(), MAX_CASES);
    assert_eq!(report.cases[1].key, "same-2");
    assert_eq!(report.problems, ["1906 more results beyond the first 4094 cases were not kept"]);
    assert_eq!(
        values(&report)[MAX_CASES - 2..],
        pairs(&[
            ("the_last", "missing: no result (exit 0)"),
            (MISSING_KEY, "missing: 93999 of 100000 planned (exit 0)")
        ])
    );

    let many_problems: String = "1..1\n".to_owned() + &"ok x\n".repeat(500);
    let report = parse_text(&many_problems);
    assert_eq!(report.problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(report.problems.last().unwrap(), "… and 436 more problems");

    let long = format!("1..1\nok 1 # SKIP {}\n", "why ".repeat(1000));
    let report = parse_text(&long);
    check_invariants(&report);
    let CaseResult::Skip { reason } = &report.cases[0].result else { panic!() };
    assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
    assert!(reason.ends_with('…'));
    let deep = format!("1..1\n# [RUN] {}\n{}ok 1 a\n", "x".repeat(1 << 16), "# d\n".repeat(50));
    let report = parse_text(&deep);
    check_invariants(&report);
    assert_eq!(report.cases[0].diagnostics.len(), MAX_CASE_DIAGNOSTICS);
}

// Outputs the kernel captures above do not show (`other_captures`).

#[test]
fn other_captures_keep_the_invariants() {
    for capture in other_captures() {
        let report = parse(&lines(capture.text), &capture.end);
        check_invariants(&report);
        assert_eq!(parse(&lines(capture.text), &capture.end), report, "{}: deterministic", capture.name);
    }
}

#[test]
fn x86_skip_lines_are_a_skip_with_their_reason() {
    // test_shadow_stack prints `[SKIP]\tCould not enable Shadow stack` and returns 1 (a real run: qemu64
    // has no CET).
    let shstk = report("6.12", "x86--test_shadow_stack_64");
    assert_eq!(shstk.binary, skip("Could not enable Shadow stack"));
    assert!(shstk.cases.is_empty() && shstk.problems.is_empty(), "{shstk:?}");
    // A crash after the `[SKIP]` is still the crash.
    let crashed = parse(&lines("[SKIP]\tno CET\n"), &ProbeEnd::Signaled(libc::SIGSEGV));
    assert_eq!(crashed.binary, CaseResult::Signaled { signal: libc::SIGSEGV });
}

#[test]
fn x86_status_lines_are_said_not_to_be_split() {
    // A real sigreturn_32 excerpt: `[OK]`, `[WARN]`, `[SKIP]`, `[RUN]` lines and no TAP.
    let sigreturn = report("lkp-2023", "x86--sigreturn_32");
    assert!(sigreturn.cases.is_empty());
    assert_eq!(sigreturn.binary, CaseResult::Pass);
    assert_eq!(
        sigreturn.problems,
        ["no TAP: 3 `[OK]`, 0 `[FAIL]` and 1 `[SKIP]` lines (x86 selftest style), not split into cases"]
    );
    // A real sigreturn_64 run on Debian 6.12: the same, longer.
    let sigreturn = report("6.12", "x86--sigreturn_64");
    assert!(sigreturn.cases.is_empty());
    assert_eq!(sigreturn.binary, CaseResult::Pass);
    assert_eq!(
        sigreturn.problems,
        ["no TAP: 12 `[OK]`, 0 `[FAIL]` and 5 `[SKIP]` lines (x86 selftest style), not split into cases"]
    );
    let vdso = report("reconstructed", "vDSO--vdso_test_correctness");
    assert_eq!(vdso.binary, CaseResult::Fail);
    assert_eq!(
        vdso.problems,
        ["no TAP: 1 `[OK]`, 1 `[FAIL]` and 0 `[SKIP]` lines (x86 selftest style), not split into cases; first \
             failure: \"Times are out of sequence\""]
    );
    // Free text alone says so too; no output at all stays silent (all of selftests/proc).
    let text = parse(&lines("done (all tests OK)\n"), &ProbeEnd::Exited(0));
    assert_eq!(text.problems, ["no TAP and no line read as a result: the output is not split into cases"]);
}

#[test]
fn khugepaged_without_thp_is_a_skip_though_its_steps_count_failures() {
    // A real run (PROVENANCE.md): in a 512 MiB guest the kernel turns THP off, and khugepaged's plan
    // skips it all with KSFT_SKIP's exit 4 — a skip, not four failed steps.
    let skipped = report("6.12", "mm--khugepaged-512m");
    assert_eq!(skipped.binary, CaseResult::Skip { reason: "Transparent Hugepages not available".into() });
    assert_eq!(skipped.plan, Some(0));
    assert!(skipped.problems.is_empty(), "{:?}", skipped.problems);
    let madvise = report("6.12", "mm--hugetlb-madvise-512m");
    assert_eq!(madvise.binary, CaseResult::Pass);
    assert_eq!(madvise.cases.len(), 1);
    assert_eq!(madvise.cases[0].result, CaseResult::Pass);
}

#[test]
fn khugepaged_steps_exit_with_their_failure_count() {
    let steps = report("reconstructed", "mm--khugepaged-steps");
    // Exit 4 is four failed steps, not KSFT_SKIP.
    assert_eq!(steps.binary, CaseResult::Fail);
    assert!(steps.problems.is_empty(), "{:?}", steps.problems);
    assert_eq!(steps.cases.iter().filter(|c| c.result == CaseResult::Fail).count(), 4);
    // Under a `Run test:` line every step is `CONTEXT__STEP`, one step or several, so that a test
    // that stops after its first failed step keeps the key of that step.
    assert_eq!(
        values(&steps)[..5],
        pairs(&[
            ("save_thp_and_khugepaged_settings", "ok"),
            ("collapse_full_khugepaged_anon__collapse_multiple_fully_populated_pte_table", "not ok"),
            ("collapse_max_ptes_none_khugepaged_anon__maybe_collapse_with_max_ptes_none_exceeded", "ok"),
            ("collapse_max_ptes_none_khugepaged_anon__collapse_with_max_ptes_none_ptes_empty", "not ok"),
            ("collapse_swapin_single_pte_khugepaged_anon__swapout_one_page", "not ok"),
        ])
    );
    assert_eq!(
        value(&steps, "collapse_max_ptes_swap_khugepaged_anon__maybe_collapse_with_max_ptes_swap_exceeded"),
        &CaseResult::Fail
    );
    // A count that does not match is said.
    let odd = parse(&lines("Step one... OK\nStep two... Fail\n"), &ProbeEnd::Exited(3));
    assert_eq!(odd.binary, CaseResult::Fail);
    assert_eq!(
        odd.problems,
        ["exit 3, but 1 of its step lines failed (khugepaged-style output exits with the number of failed steps)"]
    );
    // TAP output keeps kselftest's exit codes.
    assert_eq!(
        report("5.10", "mm--ksm_functional_tests").binary,
        skip("accessing \"/proc/self/ksm_merging_pages\") failed")
    );
}

#[test]
fn a_bail_out_no_case_carries_is_written() {
    let early = report("reconstructed", "mm--khugepaged-bail-before-plan");
    assert_eq!(early.binary, CaseResult::Fail);
    assert_eq!(early.bail_out.as_deref(), Some("Reading PMD pagesize failed"));
    assert_eq!(early.problems, ["bailed out: Reading PMD pagesize failed"]);
    // Carried by a `missing` value: not twice.
    assert!(report("5.10", "mm--split_huge_page_test").problems.is_empty());
    // `N out of M tests failed` only counts the failed cases.
    assert!(report("7.2", "mm--mkdirty").problems.is_empty());
    // After the last planned case, a real reason is written.
    let late = parse(&lines("1..1\nok 1 a\nBail out! cleanup failed\n"), &ProbeEnd::Exited(1));
    assert_eq!(late.problems, ["bailed out: cleanup failed"]);
}

#[test]
fn a_tap_stream_in_which_nothing_ran_says_so() {
    let nothing = report("reconstructed", "kselftest_h--header-then-finished");
    assert_eq!(nothing.binary, CaseResult::Pass);
    assert!(nothing.cases.is_empty());
    assert_eq!(nothing.problems, ["a `TAP version` line but no plan and no result: nothing ran"]);
    // A whole-binary skip ran nothing on purpose.
    assert!(parse(&lines("TAP version 13\n1..0 # SKIP x\n"), &ProbeEnd::Exited(4)).problems.is_empty());
}

#[test]
fn an_exec_d_programs_tap_is_not_the_binarys() {
    let exec = report("reconstructed", "mm--exec-child-tap");
    assert_eq!(values(&exec), pairs(&[("test_unmerge", "ok"), ("test_fork_exec", "ok"), ("test_last", "ok")]));
    assert_eq!(exec.cases[1].description, "fork and exec");
    assert!(exec.cases[1].diagnostics.iter().any(|d| d == "ok 3 child done"), "{:?}", exec.cases[1]);
    assert_eq!(
        exec.problems,
        ["line 6: a second `TAP version` after the plan (an exec'd program's own output); its lines up to its \
             `# Totals:` are read as diagnostics"]
    );
    // A program that dies without its totals ends at the first result beyond its own plan.
    let died = parse_text("1..2\nok 1 a\nTAP version 13\n1..1\nok 1 child\nok 2 b\n");
    assert_eq!(values(&died), pairs(&[("a", "ok"), ("b", "ok")]));
}

#[test]
fn ksft_exit_skip_one_past_the_last_number_is_that_case() {
    // kselftest.h before its fix printed `ok 2 # SKIP` for the first case of `1..1`.
    let madvise = report("reconstructed", "mm--hugetlb-madvise");
    assert_eq!(values(&madvise), pairs(&[("not_enough_free_huge_pages", "skip: have 0, need 20")]));
    assert_eq!(madvise.cases[0].number, Some(1));
    assert!(madvise.problems.is_empty(), "{:?}", madvise.problems);
    // Not the last line, or not exit 4: a gap as before.
    let gap = parse(&lines("1..3\nok 1 a\nok 3 # SKIP x\n"), &ProbeEnd::Exited(0));
    assert_eq!(gap.problems, ["line 3: test 3 is out of order; expected test 2"]);
    assert_eq!(value(&gap, MISSING_KEY), &missing("1 of 3 planned (exit 0)"));
    let followed = parse(&lines("1..3\nok 2 # SKIP x\nok 3 b\n"), &ProbeEnd::Exited(4));
    assert_eq!(followed.problems, ["line 2: test 2 is out of order; expected test 1"]);
}

#[test]
fn a_carriage_return_ends_a_line() {
    let cr_only = report("reconstructed", "cr-only-line-ends");
    assert_eq!(values(&cr_only), pairs(&[("test_a", "ok"), ("test_b", "not ok"), ("test_c", "skip: third")]));
    assert!(cr_only.problems.is_empty());
    let progress = report("reconstructed", "cr-progress");
    assert_eq!(values(&progress), pairs(&[("test_progress", "ok"), ("test_after", "ok")]));
    assert!(progress.problems.is_empty());
    // A `\r\n` ending is one line end.
    assert_eq!(parse_text("1..1\r\nok 1 a\r\n"), parse_text("1..1\nok 1 a\n"));
    // An overwritten step is not one step: only what follows its last `\r` is.
    let step = parse(&lines("Scan 1/3\rScan 2/3\rCollapse... OK\n"), &ProbeEnd::Exited(0));
    assert_eq!(values(&step), pairs(&[("collapse", "ok")]));
}

#[test]
fn shared_skip_reasons_key_by_number() {
    let skips = report("reconstructed", "same-skip-reasons");
    assert_eq!(keys(&skips), ["case-1", "case-2", "anon_works", "case-4", "case-5", "case-6"]);
    assert_eq!(value(&skips, "case-4"), &skip("hugetlb not available"));
    // Case 2 starts passing: only its own key changes.
    let (capture, _) = capture("reconstructed", "same-skip-reasons");
    let text = capture.text.replace("ok 2 # SKIP hugetlb not available", "ok 2 hugetlb works");
    let fixed = parse_text(&text);
    assert_eq!(keys(&fixed), ["case-1", "hugetlb_works", "anon_works", "case-4", "case-5", "case-6"]);
    // A reason printed once still names its case; descriptions repeated by design keep `-2`.
    assert_eq!(keys(&parse_text("1..1\nok 1 # SKIP Please run as root\n")), ["please_run_as_root"]);
    assert_eq!(report("6.12", "mm--mseal_test").cases.iter().filter(|c| c.key.starts_with("case-")).count(), 0);
}

#[test]
fn measured_numbers_stay_out_of_keys() {
    let (capture, fixed) = capture("6.12", "mm--pagemap_ioctl");
    let key = "unpopulated_scan_test_unpopulated_ptes_reported_written_by_both_paths_n_n_of_n";
    assert_eq!(value(&fixed, key), &CaseResult::Pass);
    // The same case on a kernel that reports none of the 16 pages: `ok → not ok`, same key.
    let line = capture.text.lines().find(|l| l.contains("reported written by both paths")).unwrap();
    let broken_line = line.replacen("ok", "not ok", 1).replace("(16, 16 of 16)", "(16, 0 of 16)");
    let broken = parse(&lines(&capture.text.replace(line, &broken_line)), &capture.end);
    assert_eq!(keys(&broken), keys(&fixed));
    assert_eq!(value(&broken, key), &CaseResult::Fail);
    // Numbers that name a case stay.
    assert_eq!(
        mask("(2048 kB) (22) (size=4096, private=true) (1KB-aligned)"),
        "(2048 kB) (22) (size=4096, private=true) (1KB-aligned)"
    );
    assert_eq!(mask("took (3/4) and (1 vs 2), (16, 0 of 16)"), "took (N/N) and (N vs N), (N, N of N)");
}

/// Lines that look like kselftest output, in random order.
fn kselftest_like() -> impl Strategy<Value = Vec<String>> {
    let line = prop_oneof![
        Just("TAP version 13".to_owned()),
        (0u64..4).prop_map(|n| format!("1..{n}")),
        Just("1..0 # SKIP nothing".to_owned()),
        (0u64..5, "[a-c ()#:.-]{0,8}").prop_map(|(n, d)| format!("ok {n} {d}")),
        (0u64..5, "[a-c ]{0,3}").prop_map(|(n, d)| format!("not ok {n} # SKIP {d}")),
        "[a-c ]{0,6}".prop_map(|n| format!("# [RUN] {n}")),
        "[a-c ]{0,6}".prop_map(|n| format!("# [INFO] {n}")),
        "[a-c]{0,4}".prop_map(|n| format!("#  RUN           g.{n} ...")),
        "[a-c ]{0,6}".prop_map(|n| format!("# Run test: {n}")),
        "[a-c ]{0,6}".prop_map(|n| format!("Testing {n}... ")),
        Just("done".to_owned()),
        Just("skipped [reason: x]".to_owned()),
        Just("# Step... \u{1b}[32mOK\u{1b}[0m".to_owned()),
        Just("Step... Fail: x".to_owned()),
        Just("Bail out! why".to_owned()),
        Just("# Totals: pass:1".to_owned()),
        Just("ok 1 x# [RUN] y".to_owned()),
        "\\PC{0,12}",
    ];
    let indented = ((0usize..3), line).prop_map(|(indent, line)| "  ".repeat(indent) + &line);
    prop::collection::vec(indented, 0..40)
}

fn any_end() -> impl Strategy<Value = ProbeEnd> {
    prop_oneof![
        (-2i32..140).prop_map(ProbeEnd::Exited),
        (0i32..70).prop_map(ProbeEnd::Signaled),
        (0u64..10_000).prop_map(|ms| ProbeEnd::TimedOut(Duration::from_millis(ms))),
        "\\PC{0,8}".prop_map(ProbeEnd::SpawnError),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC*(\n\\PC*){0,20}", end in any_end()) {
        check_invariants(&parse(&lines(&text), &end));
    }

    #[test]
    fn kselftest_like_input_keeps_the_invariants(input in kselftest_like(), end in any_end()) {
        let report = parse(&input, &end);
        check_invariants(&report);
        // One case per line at most, plus the two that stand for unreported ones.
        prop_assert!(report.cases.len() <= input.len() + 2);
    }
}

/// Checks every capture in `$KSNAP_KSELFTEST_CAPTURES` (`KERNEL/COLLECTION--TEST.stdout` with a
/// `.status` of `exit N` next to it, as captured for tests/data/kselftest/). Run with
/// `cargo test -p ksnap-vm kselftest -- --ignored` after capturing new ones.
#[test]
#[ignore = "reads $KSNAP_KSELFTEST_CAPTURES"]
fn captures_in_a_directory() {
    let Ok(dir) = std::env::var("KSNAP_KSELFTEST_CAPTURES") else { return };
    let mut checked = 0;
    for kernel in std::fs::read_dir(&dir).unwrap().flatten() {
        for file in std::fs::read_dir(kernel.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "stdout") {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let status = std::fs::read_to_string(path.with_extension("status")).unwrap_or_default();
            let end = match status.trim().strip_prefix("exit ").and_then(|c| c.parse().ok()) {
                Some(134) => ProbeEnd::Signaled(libc::SIGABRT),
                Some(143) => ProbeEnd::TimedOut(Duration::from_secs(1)),
                Some(code) => ProbeEnd::Exited(code),
                None => ProbeEnd::Exited(0),
            };
            let report = parse(&lines(&text), &end);
            check_invariants(&report);
            let result_lines = text.lines().filter(|l| is_result_line(l)).count();
            let reported = report.cases.iter().filter(|c| c.number.is_some()).count();
            assert_eq!(reported, result_lines, "{}", path.display());
            checked += 1;
        }
    }
    eprintln!("{checked} captures checked");
}
