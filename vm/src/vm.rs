//! [`Vm`], the front door: a kernel and the probes to run in it, with defaults for everything else.

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::Cache;
use crate::initramfs::{InitramfsSpec, ProbePlan};
use crate::qemu::{Accel, Qemu, Timeouts, VmSpec};
use crate::run::RunReport;
use crate::Error;

/// One VM to boot: a kernel, the probes ksnap's init runs in it, and how the machine looks.
///
/// ```no_run
/// # fn main() -> Result<(), ksnap_vm::Error> {
/// use std::time::Duration;
///
/// let qemu = ksnap_vm::Qemu::locate()?;
/// let cache = ksnap_vm::cache::Cache::user_default()?;
/// let report = ksnap_vm::Vm::new("/boot/vmlinuz-6.1.0-57-cloud-amd64")
///     .probe("hello", "target/hello", Duration::from_secs(30))
///     .run(&qemu, &cache)?;
/// println!("{}", report.outcome);
/// # Ok(())
/// # }
/// ```
///
/// Defaults: 512 MiB, one CPU, TCG (emulation: works everywhere; [`crate::AccelChoice`] finds out whether
/// KVM really runs a guest), the base command line ([`crate::qemu::BASE_CMDLINE`]), ksnap's own init, and
/// an overall deadline of the boot timeout plus every probe's timeout and grace.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: PathBuf,
    probes: Vec<ProbePlan>,
    busybox: Option<PathBuf>,
    memory_mib: u32,
    cpus: u32,
    accel: Accel,
    cmdline: Vec<String>,
    timeouts: Timeouts,
    overall: Option<Duration>,
}

impl Vm {
    /// A VM booting the kernel image at `kernel` (a bzImage, as Debian's `/boot/vmlinuz-*`).
    pub fn new(kernel: impl Into<PathBuf>) -> Vm {
        Vm {
            kernel: kernel.into(),
            probes: Vec::new(),
            busybox: None,
            memory_mib: 512,
            cpus: 1,
            accel: Accel::Tcg,
            cmdline: Vec::new(),
            timeouts: Timeouts::default(),
            overall: None,
        }
    }

    /// Run the static executable `binary` as probe `name` (letters, digits, `_.-`), killed after `timeout`.
    pub fn probe(self, name: &str, binary: impl Into<PathBuf>, timeout: Duration) -> Vm {
        self.probe_plan(ProbePlan { name: name.into(), binary: binary.into(), args: vec![], timeout })
    }

    /// Run a probe with arguments; probes run in the order they are added.
    pub fn probe_plan(mut self, probe: ProbePlan) -> Vm {
        self.probes.push(probe);
        self
    }

    /// Put a static busybox in the guest as `/bin/busybox` and `/bin/sh` & co (kernel selftests need them).
    pub fn busybox(mut self, busybox: impl Into<PathBuf>) -> Vm {
        self.busybox = Some(busybox.into());
        self
    }

    /// Guest memory in MiB (default 512).
    pub fn memory_mib(mut self, memory_mib: u32) -> Vm {
        self.memory_mib = memory_mib;
        self
    }

    /// Virtual CPUs (default 1: under TCG each one is a host thread).
    pub fn cpus(mut self, cpus: u32) -> Vm {
        self.cpus = cpus;
        self
    }

    /// The accelerator (default TCG).
    pub fn accel(mut self, accel: Accel) -> Vm {
        self.accel = accel;
        self
    }

    /// Kernel command-line words after the base ones (`proc_mem.force_override=never`).
    pub fn cmdline<S: Into<String>>(mut self, words: impl IntoIterator<Item = S>) -> Vm {
        self.cmdline.extend(words.into_iter().map(Into::into));
        self
    }

    /// How long the boot may take, and the grace after a probe's own timeout.
    pub fn timeouts(mut self, boot: Duration, probe_grace: Duration) -> Vm {
        self.timeouts.boot = boot;
        self.timeouts.probe_grace = probe_grace;
        self
    }

    /// A deadline for the whole run instead of the one computed from the probes' timeouts.
    pub fn overall_timeout(mut self, overall: Duration) -> Vm {
        self.overall = Some(overall);
        self
    }

    /// Pack the initramfs into `cache` and describe the VM, for [`fn@crate::run`] (or to look at its command line).
    pub fn spec(&self, cache: &Cache) -> Result<VmSpec, Error> {
        let initramfs =
            InitramfsSpec { init: None, probes: self.probes.clone(), busybox: self.busybox.clone() }.build(cache)?;
        let probes: Duration = self.probes.iter().map(|p| p.timeout + self.timeouts.probe_grace).sum();
        let overall = self.overall.unwrap_or(self.timeouts.boot + probes + self.timeouts.probe_grace);
        Ok(VmSpec {
            kernel: self.kernel.clone(),
            initramfs,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            accel: self.accel,
            extra_cmdline: self.cmdline.clone(),
            init_args: vec![],
            timeouts: Timeouts { overall, ..self.timeouts },
        })
    }

    /// Boot it with `qemu` and watch it to the end: what happened in the guest is the report's
    /// [`crate::Outcome`]; an `Err` is a problem on the host (the kernel is not there, QEMU would not start).
    pub fn run(&self, qemu: &Qemu, cache: &Cache) -> Result<RunReport, Error> {
        crate::run(qemu, &self.spec(cache)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_overall_deadline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p"), b"\x7fELF").unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let vm = Vm::new("/k/bzImage")
            .probe("a", dir.path().join("p"), Duration::from_secs(30))
            .probe("b", dir.path().join("p"), Duration::from_secs(5))
            .cmdline(["norandmaps"]);
        let spec = vm.spec(&cache).unwrap();
        assert_eq!((spec.memory_mib, spec.cpus, spec.accel), (512, 1, Accel::Tcg));
        assert_eq!(spec.extra_cmdline, ["norandmaps"]);
        assert_eq!(spec.initramfs.probe_timeouts["b"], Duration::from_secs(5));
        // 60 s boot + (30 + 10) + (5 + 10) + 10.
        assert_eq!(spec.timeouts.overall, Duration::from_secs(125));
        let fixed = vm.overall_timeout(Duration::from_secs(7)).spec(&cache).unwrap();
        assert_eq!(fixed.timeouts.overall, Duration::from_secs(7));
    }

    #[test]
    fn a_missing_probe_is_a_host_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let err = Vm::new("/k").probe("p", "/nonexistent/p", Duration::from_secs(1)).spec(&cache).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/p"), "{err}");
    }
}
