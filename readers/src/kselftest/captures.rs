//! The capture table: real (and reconstructed) outputs of kernel selftests under
//! `readers/tests/data/kselftest/`, with how each binary ended.

use ksnap_protocol::ProbeEnd;

/// A capture in `tests/data/kselftest/KERNEL/` with how its binary ended (PROVENANCE.md).
pub(super) struct Capture {
    pub(super) kernel: &'static str,
    pub(super) name: &'static str,
    pub(super) text: &'static str,
    pub(super) end: ProbeEnd,
}

macro_rules! capture {
    ($kernel:literal, $name:literal, $end:expr) => {
        Capture {
            kernel: $kernel,
            name: $name,
            text: include_str!(concat!("../../tests/data/kselftest/", $kernel, "/", $name, ".stdout")),
            end: $end,
        }
    };
}

pub(super) fn captures() -> Vec<Capture> {
    use ProbeEnd::{Exited, Signaled};
    vec![
        capture!("5.10", "mm--cow", Exited(1)),
        capture!("5.10", "mm--khugepaged", Exited(1)),
        capture!("5.10", "mm--ksm_functional_tests", Exited(4)),
        capture!("5.10", "mm--mseal_test", Exited(4)),
        capture!("5.10", "mm--split_huge_page_test", Exited(1)),
        capture!("5.10", "mm--uffd-unit-tests", Exited(0)),
        // The shell's 134: SIGABRT from a failed assert().
        capture!("5.10", "proc--proc-2-is-kthread", Signaled(libc::SIGABRT)),
        capture!("6.1", "mm--ksm_functional_tests", Exited(1)),
        capture!("6.12", "mm--cow", Exited(0)),
        capture!("6.12", "mm--guard-regions", Exited(1)),
        capture!("6.12", "mm--khugepaged", Exited(1)),
        capture!("6.12", "mm--ksm_functional_tests", Exited(0)),
        capture!("6.12", "mm--madv_populate", Exited(0)),
        capture!("6.12", "mm--mkdirty", Exited(0)),
        capture!("6.12", "mm--mremap_test", Exited(1)),
        capture!("6.12", "mm--mseal_test", Exited(0)),
        capture!("6.12", "mm--pagemap_ioctl", Exited(0)),
        capture!("6.12", "mm--soft-dirty", Exited(1)),
        capture!("6.12", "mm--uffd-unit-tests", Exited(0)),
        capture!("6.12", "mm--uffd-wp-mremap", Exited(0)),
        capture!("6.12", "proc--proc-empty-vm", Exited(1)),
        capture!("6.12", "proc--proc-pidns", Exited(1)),
        capture!("6.12", "mm--khugepaged-512m", Exited(4)),
        capture!("6.12", "mm--hugetlb-madvise-512m", Exited(0)),
        capture!("6.12", "x86--test_shadow_stack_64", Exited(1)),
        capture!("6.12", "x86--sigreturn_64", Exited(0)),
        capture!("7.2", "mm--khugepaged", Exited(1)),
        capture!("7.2", "mm--ksm_functional_tests", Exited(1)),
        capture!("7.2", "mm--mkdirty", Exited(1)),
    ]
}

/// Captures of outputs the kernels above do not print: a public log, and outputs reconstructed
/// from the selftests' printf formats (PROVENANCE.md says which is which).
pub(super) fn other_captures() -> Vec<Capture> {
    use ProbeEnd::Exited;
    vec![
        capture!("lkp-2023", "x86--sigreturn_32", Exited(0)),
        capture!("reconstructed", "vDSO--vdso_test_correctness", Exited(1)),
        capture!("reconstructed", "mm--khugepaged-steps", Exited(4)),
        capture!("reconstructed", "mm--khugepaged-bail-before-plan", Exited(1)),
        capture!("reconstructed", "kselftest_h--header-then-finished", Exited(0)),
        capture!("reconstructed", "mm--hugetlb-madvise", Exited(4)),
        capture!("reconstructed", "mm--exec-child-tap", Exited(0)),
        capture!("reconstructed", "cr-only-line-ends", Exited(1)),
        capture!("reconstructed", "cr-progress", Exited(0)),
        capture!("reconstructed", "same-skip-reasons", Exited(0)),
    ]
}
