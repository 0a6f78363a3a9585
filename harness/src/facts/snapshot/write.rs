//! What a cell's snapshot says: the facts its probes observed, one per line, and — as insta metadata,
//! outside the compared body — the environment it ran in.
//!
//! The body holds only properties of the kernel: sorted `PROBE.TEST[.KEY] = VALUE` lines. Host details,
//! timings, PIDs and addresses never enter it (probes report none; the harness adds none), so two runs
//! give the same bytes.

use crate::facts::Facts;

use crate::project::matrix::Cell;

/// `SUITE@KERNEL` for the default variant, `SUITE@KERNEL+VARIANT` otherwise; the file is `NAME.snap`.
pub fn name(cell: &Cell) -> String {
    format!("{}@{}", cell.suite, cell.column())
}

/// The compared text: every fact and test result, sorted, `KEY = VALUE`.
pub fn body(facts: &Facts) -> String {
    facts.iter().map(|(key, value)| format!("{key} = {value}\n")).collect()
}

/// Where and how the snapshot was taken (insta's `info`): shown in reviews, not compared.
#[derive(Debug, serde::Serialize)]
pub struct Environment {
    pub kernel: String,
    pub package: Option<String>,
    pub package_version: Option<String>,
    pub release: String,
    pub config_sha256: Option<String>,
    pub variant: String,
    pub cmdline: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub qemu: String,
    pub accel: String,
    pub cpu_model: String,
    /// For C probes: the compiler and the Debian version of the libc they link, by probe name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub toolchains: std::collections::BTreeMap<String, String>,
    /// For suites of kernel selftests: the source package they were built from and the toolchain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selftests: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_suite_at_kernel_plus_variant_scheme() {
        let cell = |variant: &str| Cell { kernel: "6.12".into(), variant: variant.into(), suite: "proc_mem".into() };
        assert_eq!(name(&cell("default")), "proc_mem@6.12");
        assert_eq!(name(&cell("force-never")), "proc_mem@6.12+force-never");
    }

    use ksnap_readers::channel::ProbeRun;

    #[test]
    fn body_is_sorted_key_value_lines() {
        let probes = vec![ProbeRun {
            name: "env".into(),
            end: ksnap_readers::channel::ProbeEnd::Signaled(11),
            output: vec![],
            truncated_bytes: None,
            stderr: vec![],
            stderr_truncated_bytes: None,
            reading: ksnap_readers::channel::Reading::Ktap(ksnap_readers::ktap::parse(
                "KTAP version 1\n1..2\n# fact: b = 2\n# fact: a = 1\nok 1 z\nnot ok 2 y\n",
            )),
        }];
        assert_eq!(
            body(&crate::facts::facts_of(&probes)),
            "env.(process) = killed by signal 11 (SIGSEGV)\nenv.y = not ok\nenv.z = ok\nenv.z.a = 1\nenv.z.b = 2\n"
        );
    }
}
