//! What one VM is ([`VmSpec`]): kernel, initramfs, plan, how it starts, the machine, and QEMU's command
//! line as a pure function of it ([`VmSpec::qemu_args`]), so that it can be unit-tested and printed;
//! running it is [`crate::machine::run::run()`]'s job. Saved machines ([`crate::machine::vmstate`]) are keyed
//! by it and restored through [`Start::Restore`]: the types are here so that neither depends on the other's
//! module for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ksnap_readers::channel::Format;

use crate::error::Error;
use crate::machine::initramfs::ProbeFile;
use crate::machine::qemu::{Accel, Qemu, CPU_MODEL};

/// Kernel command-line words every run gets. Each earns its place:
/// - `console=ttyS0`: the console is the first serial port; the result channel is the second.
/// - `panic=-1`: reboot at once on panic, which `-no-reboot` turns into QEMU exiting.
/// - `loglevel=5`: print warnings and worse (WARN splats, OOM kills), but not the info chatter that costs
///   boot time on an emulated serial port.
/// - `console_msg_format=syslog`: start every console line with its record's `<PRI>` (facility × 8 +
///   level), so that the console scanner tells the kernel's own messages (facility 0) from records user
///   space wrote to `/dev/kmsg` (never facility 0), see [`ksnap_readers::console`]. Every kernel since 4.16 has it
///   (kernel/printk/printk.c, under `CONFIG_PRINTK` alone); an older one ignores the word.
pub const BASE_CMDLINE: &[&str] = &["console=ttyS0", "panic=-1", "loglevel=5", "console_msg_format=syslog"];

/// Everything needed to run one VM, as [`crate::machine::run::run()`] takes it. [`crate::Vm`] builds one with defaults.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The kernel image (bzImage/vmlinuz) QEMU boots with `-kernel`.
    pub kernel: PathBuf,
    /// The initramfs (`-initrd`): init and the probes a plan can run.
    pub initramfs: crate::machine::initramfs::Initramfs,
    /// What init runs, in order: probes of the initramfs, sent to init when it says hello.
    pub plan: Vec<PlanEntry>,
    /// Whether the machine boots or starts from a saved state.
    pub start: Start,
    /// Guest memory (`-m`).
    pub memory_mib: u32,
    /// Virtual CPUs (`-smp`).
    pub cpus: u32,
    /// TCG or KVM, already resolved ([`crate::AccelChoice::resolve`]).
    pub accel: Accel,
    /// Appended to [`BASE_CMDLINE`] (a variant's parameters, for instance).
    pub extra_cmdline: Vec<String>,
    /// Words after `--` on the kernel command line; the kernel passes them to init as its arguments.
    pub init_args: Vec<String>,
    /// When the host gives up on the guest.
    pub timeouts: Timeouts,
}

/// One probe a [`crate::Vm`] runs: its executable on the host (packed into the initramfs as a
/// [`ProbeFile`]) and its entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Unique within a run; `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// The static binary on the host.
    pub binary: PathBuf,
    /// Its arguments in the guest (words: no whitespace).
    pub args: Vec<String>,
    /// init kills the probe after this long.
    pub timeout: Duration,
    /// How its stdout is read: KTAP, or a kernel selftest's TAP.
    pub format: Format,
}

impl From<&ProbeSpec> for ProbeFile {
    fn from(probe: &ProbeSpec) -> ProbeFile {
        ProbeFile { name: probe.name.clone(), binary: probe.binary.clone() }
    }
}

/// One probe of a plan: a probe of the initramfs, its arguments and its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// The probe's name in the initramfs (`/ksnap/probes/NAME`); also its name in the results.
    pub name: String,
    /// Its arguments in the guest (words: no whitespace).
    pub args: Vec<String>,
    /// init kills the probe after this long; the host waits that long plus
    /// [`Timeouts::probe_grace`] for its end.
    pub timeout: Duration,
    /// How the host reads its stdout (not sent to init).
    pub format: Format,
}

/// A machine saved when init was waiting for its plan, ready to restore ([`Start::Restore`]); made by
/// [`crate::machine::vmstate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// What the machine was made of, hashed ([`crate::machine::vmstate::key`]).
    pub key: String,
    /// The migration stream, in the cache.
    pub path: PathBuf,
}

/// How a VM starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The kernel boots.
    Boot,
    /// QEMU loads a machine saved when init was waiting for its plan ([`crate::machine::vmstate`]), and init gets
    /// this spec's plan. The state must have been saved from a VM of this very spec, plan aside: its key
    /// ([`crate::machine::vmstate::key`]) says so.
    Restore(SavedState),
}

/// The Unix sockets ksnap listens on and QEMU connects to at start-up, before the guest runs.
#[derive(Debug, Clone, Copy)]
pub struct Sockets<'a> {
    /// The console, ttyS0.
    pub console: &'a Path,
    /// The result channel, ttyS1.
    pub results: &'a Path,
    /// QEMU's machine protocol (QMP), when the run saves or restores the machine.
    pub monitor: Option<&'a Path>,
}

/// When ksnap gives up on a guest. Per-probe timeouts are enforced by the guest's init (and again by
/// the host, with [`Timeouts::probe_grace`] added, in case init itself stops responding).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From QEMU's start until init says hello on the result channel.
    pub boot: Duration,
    /// Added to a probe's own timeout before the host stops waiting for its `probe-end`.
    pub probe_grace: Duration,
    /// The whole run, whatever happens.
    pub overall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            boot: Duration::from_secs(60),
            probe_grace: Duration::from_secs(10),
            overall: Duration::from_secs(600),
        }
    }
}

impl VmSpec {
    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let mut words: Vec<&str> = BASE_CMDLINE.to_vec();
        words.extend(self.extra_cmdline.iter().map(String::as_str));
        if !self.init_args.is_empty() {
            words.push("--");
            words.extend(self.init_args.iter().map(String::as_str));
        }
        words.join(" ")
    }

    /// The plan's text (format: [`ksnap_protocol::plan`]). Every probe must be in the initramfs.
    pub fn plan_text(&self) -> Result<String, Error> {
        let mut entries = Vec::new();
        for probe in &self.plan {
            if !self.initramfs.probes.contains(&probe.name) {
                return Err(Error::InvalidPlan(format!("probe {}: not in the initramfs", probe.name)));
            }
            entries.push(ksnap_protocol::plan::Entry {
                name: probe.name.clone(),
                timeout_ms: probe.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                argv: std::iter::once(ksnap_protocol::paths::probe(&probe.name))
                    .chain(probe.args.iter().cloned())
                    .collect(),
            });
        }
        ksnap_protocol::plan::render(&entries).map_err(Error::InvalidPlan)
    }

    /// QEMU's arguments: the machine ([`VmSpec::machine_args`]), then the sockets QEMU connects to, then,
    /// for a restore, `-incoming defer` (the state comes through the monitor).
    pub fn qemu_args(&self, qemu: &Qemu, sockets: Sockets) -> Vec<String> {
        let mut args = self.machine_args(qemu);
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&["-chardev", &format!("socket,id=console,path={}", sockets.console.display())]);
        push(&["-serial", "chardev:console"]);
        push(&["-chardev", &format!("socket,id=results,path={}", sockets.results.display())]);
        push(&["-serial", "chardev:results"]);
        if let Some(monitor) = sockets.monitor {
            push(&["-chardev", &format!("socket,id=monitor,path={}", monitor.display())]);
            push(&["-mon", "chardev=monitor,mode=control"]);
        }
        if let Start::Restore(_) = self.start {
            push(&["-incoming", "defer"]);
        }
        args
    }

    /// The machine QEMU emulates, without the sockets it talks on: what a saved state must match (the two
    /// serial ports come after it in [`VmSpec::qemu_args`], and are part of the machine too).
    pub fn machine_args(&self, qemu: &Qemu) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&["-machine", "pc", "-accel", &self.accel.to_string(), "-cpu", CPU_MODEL]);
        push(&["-m", &format!("{}M", self.memory_mib), "-smp", &self.cpus.to_string()]);
        // No default devices, no network, no display, no user config, no host files but kernel + initramfs.
        push(&["-nodefaults", "-no-user-config", "-display", "none", "-net", "none", "-no-reboot"]);
        // QEMU may not open files or spawn anything after start-up.
        push(&["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]);
        // Threads named after their job (`CPU 0/TCG`): the host CPU a VM got is its vCPU threads' (hostcpu).
        push(&["-name", "ksnap,debug-threads=on"]);
        if let Some(qboot) = qemu.qboot() {
            push(&["-bios", &qboot.display().to_string()]);
        }
        push(&["-kernel", &self.kernel.display().to_string(), "-initrd", &self.initramfs.path.display().to_string()]);
        push(&["-append", &self.cmdline()]);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            kernel: "/k/vmlinuz".into(),
            initramfs: crate::machine::initramfs::Initramfs { path: "/k/initrd".into(), probes: vec!["env".into()] },
            plan: vec![PlanEntry {
                name: "env".into(),
                args: vec!["--all".into()],
                timeout: Duration::from_secs(30),
                format: Format::Ktap,
            }],
            start: Start::Boot,
            memory_mib: 512,
            cpus: 1,
            accel: Accel::Tcg,
            extra_cmdline: vec!["proc_mem.force_override=never".into()],
            init_args: vec![],
            timeouts: Timeouts::default(),
        }
    }

    fn qemu() -> Qemu {
        Qemu::at("/nonexistent/bin/qemu-system-x86_64".into())
    }

    #[test]
    fn cmdline_appends_variant_and_init_args() {
        let mut spec = spec();
        assert_eq!(
            spec.cmdline(),
            "console=ttyS0 panic=-1 loglevel=5 console_msg_format=syslog proc_mem.force_override=never"
        );
        spec.init_args = vec!["init-exit".into()];
        assert!(spec.cmdline().ends_with("proc_mem.force_override=never -- init-exit"));
    }

    #[test]
    fn qemu_args_pin_cpu_and_isolate_the_guest() {
        let sockets = Sockets { console: Path::new("/t/con.sock"), results: Path::new("/t/res.sock"), monitor: None };
        let args = spec().qemu_args(&qemu(), sockets);
        let joined = args.join(" ");
        assert!(joined.starts_with("-machine pc -accel tcg -cpu qemu64 -m 512M -smp 1 "), "{joined}");
        for expected in ["-nodefaults", "-net none", "-no-reboot", "-sandbox on,", "-display none", "debug-threads=on"]
        {
            assert!(joined.contains(expected), "missing {expected}: {joined}");
        }
        // Console first (ttyS0), results second (ttyS1): the guest relies on this order.
        let console = joined.find("chardev:console").unwrap();
        let results = joined.find("chardev:results").unwrap();
        assert!(console < results);
        assert!(joined.contains("socket,id=results,path=/t/res.sock"));
        let machine = spec().machine_args(&qemu());
        assert_eq!(machine.last().unwrap(), &spec().cmdline());
        assert_eq!(args[..machine.len()], machine[..], "the machine first, then its sockets");
        assert!(!joined.contains("-mon") && !joined.contains("-incoming"), "{joined}");
        // This fake QEMU has no firmware directory, so no -bios.
        assert!(!joined.contains("-bios"));
    }

    #[test]
    fn a_restore_takes_its_state_through_the_monitor() {
        let mut spec = spec();
        spec.start = Start::Restore(SavedState { key: "k".into(), path: "/c/state".into() });
        let monitor = Some(Path::new("/t/qmp.sock"));
        let sockets = Sockets { console: Path::new("/t/con.sock"), results: Path::new("/t/res.sock"), monitor };
        let joined = spec.qemu_args(&qemu(), sockets).join(" ");
        assert!(joined.ends_with("-mon chardev=monitor,mode=control -incoming defer"), "{joined}");
        assert!(joined.contains("-chardev socket,id=monitor,path=/t/qmp.sock"), "{joined}");
    }

    #[test]
    fn the_plan_names_probes_of_the_initramfs() {
        let mut spec = spec();
        assert_eq!(spec.plan_text().unwrap(), "# NAME TIMEOUT_MS PATH [ARG...]\nenv 30000 /ksnap/probes/env --all\n");
        spec.plan[0].args = vec!["two words".into()];
        assert!(spec.plan_text().unwrap_err().to_string().contains("argument \"two words\""));
        spec.plan[0].name = "other".into();
        assert!(spec.plan_text().unwrap_err().to_string().contains("probe other: not in the initramfs"));
    }
}
