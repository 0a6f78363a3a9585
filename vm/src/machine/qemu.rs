//! Finding QEMU and choosing an accelerator (the functional KVM check). What QEMU is asked to run is
//! [`crate::machine::spec`]'s.

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

/// The CPU model every guest gets, whatever the host: results must not depend on the host CPU.
pub const CPU_MODEL: &str = "qemu64";

/// The program [`Qemu::locate`] looks for on `PATH`.
pub const QEMU_PROGRAM: &str = "qemu-system-x86_64";

impl Qemu {
    /// A QEMU at `path`, for tests that build command lines without running it.
    #[cfg(test)]
    pub(crate) fn at(path: PathBuf) -> Qemu {
        Qemu { path, version: OnceLock::new() }
    }

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
    pub fn resolve(self, qemu: &Qemu) -> Result<Resolved, Error> {
        match self {
            AccelChoice::Tcg => Ok(Resolved { accel: Accel::Tcg, why: "asked for".into() }),
            AccelChoice::Kvm => match kvm_works(qemu)? {
                KvmCheck::Works => Ok(Resolved { accel: Accel::Kvm, why: "asked for; a test guest runs".into() }),
                KvmCheck::Broken(why) => Err(Error::KvmUnusable { why }),
            },
            AccelChoice::Auto => {
                static AUTO: OnceLock<Resolved> = OnceLock::new();
                if let Some(resolved) = AUTO.get() {
                    return Ok(resolved.clone());
                }
                let resolved = match kvm_works(qemu)? {
                    KvmCheck::Works => Resolved { accel: Accel::Kvm, why: "a test guest runs under KVM".into() },
                    KvmCheck::Broken(why) => Resolved { accel: Accel::Tcg, why: format!("KVM not used: {why}") },
                };
                Ok(AUTO.get_or_init(|| resolved).clone())
            }
        }
    }
}

/// The accelerator a choice came to, and why: `kvm` because a test guest runs under it, `tcg` because it
/// was asked for or because KVM does not work here (`cannot open /dev/kvm: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The accelerator the guests run under.
    pub accel: Accel,
    /// Why that one, in words.
    pub why: String,
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.accel, self.why)
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

#[cfg(test)]
mod tests {
    use super::*;

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
