//! What a cell's snapshot says: the facts its probes observed, one per line, and — as insta metadata,
//! outside the compared body — the environment it ran in.
//!
//! The body holds only properties of the kernel: sorted `PROBE.TEST[.KEY] = VALUE` lines. Host details,
//! timings, PIDs and addresses never enter it (probes report none; the harness adds none), so two runs
//! give the same bytes.

use crate::facts::Facts;

use crate::project::config::ProbeKind;
use crate::project::matrix::Cell;
use crate::session::Session;

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

impl Environment {
    pub fn of(session: &Session, cell: &Cell, kernel: &ksnap_vm::kernel::Kernel) -> Environment {
        let suite = &session.config.suites[&cell.suite];
        let variant = &session.config.variants[&cell.variant];
        let mut cmdline: Vec<&str> = ksnap_vm::machine::spec::BASE_CMDLINE.to_vec();
        cmdline.extend(variant.cmdline.iter().chain(&suite.cmdline).map(String::as_str));
        let selftests = match suite.runs_selftests() {
            // The cell ran, so the selftests were built: this only reads the session's copy.
            true => {
                session.selftests().ok().map(|s| format!("{} {}, {}", s.source.name, s.source.version, s.toolchain))
            }
            false => None,
        };
        Environment {
            kernel: cell.kernel.clone(),
            package: kernel.package.as_ref().map(|p| p.name.clone()),
            package_version: kernel.package.as_ref().map(|p| p.version.clone()),
            release: kernel.release.clone(),
            config_sha256: kernel.config_hash.clone(),
            variant: cell.variant.clone(),
            cmdline: cmdline.join(" "),
            memory_mib: suite.memory_mib,
            cpus: suite.cpus,
            qemu: session.qemu.version().to_string(),
            accel: session.accel.to_string(),
            cpu_model: ksnap_vm::machine::qemu::CPU_MODEL.to_string(),
            toolchains: suite
                .probes
                .iter()
                .filter_map(|probe| match &probe.kind {
                    ProbeKind::C { cc, libc_package, .. } => {
                        let libc = libc_package.as_deref().map(|p| format!(", {p} {}", package_version(p)));
                        Some((probe.name.clone(), format!("{cc}{}", libc.unwrap_or_default())))
                    }
                    // A prebuilt probe is known only by its bytes.
                    ProbeKind::Exe { .. } => session
                        .probe_executable(&suite.name, &probe.name)
                        .sha256
                        .as_ref()
                        .map(|sha256| (probe.name.clone(), format!("sha256 {sha256}"))),
                    ProbeKind::Cargo { .. } | ProbeKind::Kselftest { .. } => None,
                })
                .collect(),
            selftests,
        }
    }
}

/// The installed version of a Debian package, as dpkg knows it.
fn package_version(package: &str) -> String {
    let output = std::process::Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]).output();
    match output {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => "(not installed)".into(),
    }
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
