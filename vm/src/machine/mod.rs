//! [`Vm`], the front door: a kernel and the probes to run in it, with defaults for everything else.

pub(crate) mod cpio;
pub mod hostcpu;
pub mod initramfs;
pub mod qemu;
mod qmp;
pub mod run;
pub mod shell;
pub mod spec;
pub mod vmstate;

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::Cache;
use crate::machine::initramfs::{InitramfsSpec, ProbeFile};
use crate::machine::qemu::{Accel, Qemu};
use crate::machine::run::RunReport;
use crate::machine::spec::{Format, PlanEntry, ProbeSpec, Start, Timeouts, VmSpec};
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
/// KVM really runs a guest), the base command line ([`crate::machine::spec::BASE_CMDLINE`]), ksnap's own init, and
/// an overall deadline of the boot timeout plus every probe's timeout and grace.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: PathBuf,
    probes: Vec<ProbeSpec>,
    /// Probes in the initramfs that the plan does not run (for a saved state's later plans).
    packed: Vec<ProbeFile>,
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
            packed: Vec::new(),
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
        self.probe_spec(ProbeSpec {
            name: name.into(),
            binary: binary.into(),
            args: vec![],
            timeout,
            format: Format::Ktap,
        })
    }

    /// Run a probe with arguments; probes run in the order they are added.
    pub fn probe_spec(mut self, probe: ProbeSpec) -> Vm {
        self.probes.push(probe);
        self
    }

    /// Put the static executable `binary` in the initramfs as probe `name` without running it: a machine
    /// saved from this VM ([`run::run_saving`]) can run it, after a restore, with a plan of its own.
    pub fn pack(mut self, name: &str, binary: impl Into<PathBuf>) -> Vm {
        self.packed.push(ProbeFile { name: name.into(), binary: binary.into() });
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

    /// Pack the initramfs into `cache` and describe the VM, for [`crate::machine::run::run()`] (or to look at its command
    /// line). It boots; set the spec's [`VmSpec::start`] to restore a saved state instead.
    pub fn spec(&self, cache: &Cache) -> Result<VmSpec, Error> {
        let mut files: Vec<ProbeFile> = self.probes.iter().map(ProbeFile::from).collect();
        // A probe packed and planned both is one file; the initramfs refuses two files of one name.
        for file in &self.packed {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let initramfs = InitramfsSpec { init: None, probes: files, busybox: self.busybox.clone() }.build(cache)?;
        let plan = self
            .probes
            .iter()
            .map(|p| PlanEntry { name: p.name.clone(), args: p.args.clone(), timeout: p.timeout, format: p.format })
            .collect();
        let probes: Duration = self.probes.iter().map(|p| p.timeout + self.timeouts.probe_grace).sum();
        let overall = self.overall.unwrap_or(self.timeouts.boot + probes + self.timeouts.probe_grace);
        Ok(VmSpec {
            kernel: self.kernel.clone(),
            initramfs,
            plan,
            start: Start::Boot,
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
        run::run(qemu, &self.spec(cache)?)
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
        assert_eq!(spec.initramfs.probes, ["a", "b"]);
        assert_eq!(
            spec.plan[1],
            PlanEntry { name: "b".into(), args: vec![], timeout: Duration::from_secs(5), format: Format::Ktap }
        );
        assert_eq!(spec.start, Start::Boot);
        // 60 s boot + (30 + 10) + (5 + 10) + 10.
        assert_eq!(spec.timeouts.overall, Duration::from_secs(125));
        let fixed = vm.overall_timeout(Duration::from_secs(7)).spec(&cache).unwrap();
        assert_eq!(fixed.timeouts.overall, Duration::from_secs(7));
    }

    #[test]
    fn packed_probes_are_in_the_initramfs_but_not_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p"), b"\x7fELF").unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let probe = |vm: Vm, name: &str| vm.probe(name, dir.path().join("p"), Duration::from_secs(1));
        let packing = |vm: Vm| vm.pack("z", dir.path().join("p")).pack("a", dir.path().join("p"));
        let one = probe(packing(Vm::new("/k")), "a").spec(&cache).unwrap();
        assert_eq!(one.initramfs.probes, ["a", "z"]);
        assert_eq!(one.plan.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a"]);
        // Another plan over the same probes: the same initramfs, so one saved machine serves both.
        let other = probe(packing(Vm::new("/k")), "z").spec(&cache).unwrap();
        assert_eq!(other.initramfs, one.initramfs);
    }

    #[test]
    fn a_missing_probe_is_a_host_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let err = Vm::new("/k").probe("p", "/nonexistent/p", Duration::from_secs(1)).spec(&cache).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/p"), "{err}");
    }
}
