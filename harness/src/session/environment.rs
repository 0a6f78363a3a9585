//! The environment a cell ran in, as its snapshot's metadata says it ([`Environment`]): what the session
//! knows (QEMU, the accelerator, the selftests' source, prebuilt probes' hashes) and the host's packages.

use crate::facts::snapshot::write::Environment;
use crate::project::config::ProbeKind;
use crate::project::matrix::Cell;
use crate::session::Session;

impl Session {
    /// The environment `cell` ran in on `kernel`, for its snapshot's metadata.
    pub fn environment(&self, cell: &Cell, kernel: &ksnap_vm::kernel::Kernel) -> Environment {
        let session = self;
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
