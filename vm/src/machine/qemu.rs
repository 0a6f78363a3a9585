//! Finding QEMU, choosing an accelerator, and building its command line from typed options.
//!
//! The command line is a pure function of [`VmSpec`] (see [`VmSpec::qemu_args`]) so it can be unit-tested
//! and printed; running it is [`crate::machine::run::run()`]'s job.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Error;

/// The QEMU system emulator ksnap drives.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The `qemu-system-x86_64` executable.
    pub path: PathBuf,
    /// Asked for only when needed: `--version` costs a QEMU start (~70 ms), a tenth of a fast run's
    /// overhead budget.
    version: OnceLock<String>,
}

/// The program [`Qemu::locate`] looks for on `PATH`.
pub const QEMU_PROGRAM: &str = "qemu-system-x86_64";

impl Qemu {
    /// `$KSNAP_QEMU` if set, else `qemu-system-x86_64` on `PATH`.
    pub fn locate() -> Result<Qemu, Error> {
        let path = match std::env::var_os("KSNAP_QEMU") {
            Some(explicit) => PathBuf::from(explicit),
            None => find_in_path(QEMU_PROGRAM).ok_or(Error::QemuNotFound { looked_for: QEMU_PROGRAM.into() })?,
        };
        if !path.is_file() {
            return Err(Error::QemuNotFound { looked_for: path.display().to_string() });
        }
        Ok(Qemu { path, version: OnceLock::new() })
    }

    /// First line of `qemu-system-x86_64 --version`, e.g. `QEMU emulator version 7.2.22 (Debian …)`, or
    /// what went wrong asking for it.
    pub fn version(&self) -> &str {
        self.version.get_or_init(|| match Command::new(&self.path).arg("--version").stdin(Stdio::null()).output() {
            Ok(output) if output.status.success() => {
                String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").trim().to_string()
            }
            Ok(output) => format!("unknown (--version: {})", output.status),
            Err(e) => format!("unknown (--version: {e})"),
        })
    }

    /// qboot, if this QEMU ships it (`PREFIX/share/qemu/qboot.rom` beside `PREFIX/bin/qemu-system-x86_64`,
    /// as Debian installs it): it boots `-kernel` faster than SeaBIOS (measured on Debian 6.1 and 6.12
    /// cloud kernels under TCG: 1.77 s vs 2.11 s and 2.54 s vs 2.79 s to power-off).
    pub fn qboot(&self) -> Option<PathBuf> {
        let binary = self.path.canonicalize().ok()?;
        let qboot = binary.parent()?.parent()?.join("share/qemu/qboot.rom");
        qboot.is_file().then_some(qboot)
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
}

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's own emulator: works everywhere, slower.
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the user asked for: a specific accelerator, or the fastest one that works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM where a test guest really runs under it (see [`AccelChoice::resolve`]), else TCG.
    #[default]
    Auto,
    /// KVM, or an error if it does not work here.
    Kvm,
    /// TCG.
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!("unknown accelerator `{other}`: expected auto, kvm or tcg")),
        }
    }
}

/// A 64 KiB firmware image that enters long mode and exits QEMU through isa-debug-exit (status 3).
/// Source and rebuild instructions: `vm/firmware/kvm-probe.S`.
const KVM_PROBE_ROM: &[u8] = include_bytes!("../../firmware/kvm-probe.rom");
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl AccelChoice {
    /// Resolve `auto` by *functionally* checking KVM: /dev/kvm can exist and accept KVM_CREATE_VM on a
    /// host where a guest then hangs, so ksnap boots a small test firmware (`KVM_PROBE_ROM`) under KVM and uses KVM only if it
    /// reaches long mode within `KVM_PROBE_TIMEOUT`. The answer is remembered for the process.
    pub fn resolve(self, qemu: &Qemu) -> Result<Accel, Error> {
        match self {
            AccelChoice::Tcg => Ok(Accel::Tcg),
            AccelChoice::Kvm => match kvm_works(qemu)? {
                KvmCheck::Works => Ok(Accel::Kvm),
                KvmCheck::Broken(why) => Err(Error::KvmUnusable { why }),
            },
            AccelChoice::Auto => {
                static AUTO: OnceLock<Accel> = OnceLock::new();
                if let Some(accel) = AUTO.get() {
                    return Ok(*accel);
                }
                let accel = match kvm_works(qemu)? {
                    KvmCheck::Works => Accel::Kvm,
                    KvmCheck::Broken(_) => Accel::Tcg,
                };
                Ok(*AUTO.get_or_init(|| accel))
            }
        }
    }
}

enum KvmCheck {
    Works,
    Broken(String),
}

fn kvm_works(qemu: &Qemu) -> Result<KvmCheck, Error> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Ok(KvmCheck::Broken(format!("cannot open /dev/kvm: {e}")));
    }
    boot_probe_rom(qemu, Accel::Kvm)
}

/// Boot [`KVM_PROBE_ROM`] under `accel` and say whether it reached long mode in time.
fn boot_probe_rom(qemu: &Qemu, accel: Accel) -> Result<KvmCheck, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let rom = dir.path().join("kvm-probe.rom");
    std::fs::write(&rom, KVM_PROBE_ROM).map_err(|e| Error::io("writing the KVM probe firmware", e))?;
    let mut command = Command::new(&qemu.path);
    command
        .args(["-machine", "pc", "-accel", &accel.to_string(), "-cpu", CPU_MODEL, "-m", "16"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1", "-bios"])
        .arg(&rom)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = crate::children::spawn(&mut command).map_err(|e| Error::QemuSpawn { cause: e })?;
    let deadline = std::time::Instant::now() + KVM_PROBE_TIMEOUT;
    loop {
        let status = child.try_wait().map_err(|e| Error::io("waiting for QEMU", e))?;
        if let Some(status) = status {
            // isa-debug-exit turns the value 1 written by the probe into exit status (1 << 1) | 1.
            return Ok(if status.code() == Some(3) {
                KvmCheck::Works
            } else {
                KvmCheck::Broken(format!("the probe guest under {accel} ended with {status}"))
            });
        }
        if crate::children::is_cancelled() {
            return Err(Error::Cancelled);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(KvmCheck::Broken(format!(
                "a guest under {accel} did not reach long mode within {}s (it hangs on this host)",
                KVM_PROBE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The CPU model every guest gets, whatever the host: results must not depend on the host CPU.
pub const CPU_MODEL: &str = "qemu64";

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
    pub plan: Vec<PlannedProbe>,
    /// Whether the machine boots or starts from a saved state.
    pub start: Start,
    /// Guest memory (`-m`).
    pub memory_mib: u32,
    /// Virtual CPUs (`-smp`).
    pub cpus: u32,
    /// TCG or KVM, already resolved ([`AccelChoice::resolve`]).
    pub accel: Accel,
    /// Appended to [`BASE_CMDLINE`] (a variant's parameters, for instance).
    pub extra_cmdline: Vec<String>,
    /// Words after `--` on the kernel command line; the kernel passes them to init as its arguments.
    pub init_args: Vec<String>,
    /// When the host gives up on the guest.
    pub timeouts: Timeouts,
}

/// One probe of a plan: a probe of the initramfs, its arguments and its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProbe {
    /// The probe's name in the initramfs (`/ksnap/probes/NAME`); also its name in the results.
    pub name: String,
    /// Its arguments in the guest (words: no whitespace).
    pub args: Vec<String>,
    /// init kills the probe after this long; the host waits that long plus
    /// [`Timeouts::probe_grace`] for its end.
    pub timeout: Duration,
}

/// How a VM starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The kernel boots.
    Boot,
    /// QEMU loads a machine saved when init was waiting for its plan ([`crate::machine::vmstate`]), and init gets
    /// this spec's plan. The state must have been saved from a VM of this very spec, plan aside: its key
    /// ([`crate::machine::vmstate::key`]) says so.
    Restore(crate::machine::vmstate::SavedState),
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
            plan: vec![PlannedProbe {
                name: "env".into(),
                args: vec!["--all".into()],
                timeout: Duration::from_secs(30),
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
        Qemu { path: "/nonexistent/bin/qemu-system-x86_64".into(), version: OnceLock::new() }
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
        spec.start = Start::Restore(crate::machine::vmstate::SavedState { key: "k".into(), path: "/c/state".into() });
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

    #[test]
    fn accel_choice_parses() {
        assert_eq!("auto".parse::<AccelChoice>(), Ok(AccelChoice::Auto));
        assert_eq!("tcg".parse::<AccelChoice>(), Ok(AccelChoice::Tcg));
        assert!("hvf".parse::<AccelChoice>().unwrap_err().contains("auto, kvm or tcg"));
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs binutils (KSNAP_SKIP_VM=1)")]
    fn committed_kvm_probe_rom_matches_its_source() {
        // Only where binutils is installed; the build of guest binaries needs it anyway.
        let dir = tempfile::tempdir().unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/firmware/kvm-probe.S");
        let obj = dir.path().join("p.o");
        let rom = dir.path().join("p.rom");
        let assembled = Command::new("as").args(["--64", "-o"]).arg(&obj).arg(src).status();
        if !matches!(assembled, Ok(s) if s.success()) {
            panic!("`as` (binutils) is needed to check firmware/kvm-probe.rom");
        }
        assert!(Command::new("objcopy").args(["-O", "binary"]).arg(&obj).arg(&rom).status().unwrap().success());
        assert_eq!(std::fs::read(rom).unwrap(), KVM_PROBE_ROM, "rebuild kvm-probe.rom as its header says");
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs QEMU (KSNAP_SKIP_VM=1)")]
    fn tcg_runs_the_kvm_probe_rom_to_completion() {
        // The probe firmware itself must be right, or auto would wrongly reject a working KVM.
        let qemu = Qemu::locate().expect("qemu-system-x86_64 is needed: run scripts/setup.sh");
        assert!(matches!(boot_probe_rom(&qemu, Accel::Tcg).unwrap(), KvmCheck::Works));
    }
}
