//! `ksnap shell`: a cell's guest for a person — an interactive shell on its console, or one command run
//! in it (`-- CMD ARGS…`) with its stdout, stderr and exit status passed through, for scripts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ksnap_readers::channel::ProbeEnd;
use ksnap_vm::machine::spec::ProbeSpec;
use ksnap_vm::{AccelChoice, Outcome};

use crate::progress::Progress;
use crate::project::kernels::LockMode;
use crate::project::matrix::{self, Selection};
use crate::session::Session;

use super::load_config;

/// The command line of `ksnap shell`.
#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The cell's kernel: a kernel of ksnap.toml, or `LINE@VERSION` (one release of an apt kernel's line).
    pub kernel: String,
    /// The cell's variant: its kernel command-line words.
    #[arg(long, default_value = "default")]
    pub variant: String,
    /// The cell's suite: its memory, CPUs and command line, and its probes in /ksnap/probes (default: the
    /// first suite of ksnap.toml that runs under the variant).
    #[arg(long)]
    pub suite: Option<String>,
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: AccelChoice,
    /// QEMU's gdb stub on localhost:PORT (default 1234), the kernel booted with `nokaslr`; the command to
    /// attach is printed.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "1234", conflicts_with = "command")]
    pub gdb: Option<u16>,
    /// With a command: how long it may run in the guest, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// Run this in the guest instead of a shell (busybox's `sh` finds it on PATH: busybox applets, then
    /// /ksnap/probes) and exit with its status. Arguments are words: the guest's plan carries no
    /// whitespace.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `ksnap shell`: the exit status to end with — the command's (128 + N for a signal), or 0 when the
/// interactive guest powered off.
pub fn shell(args: ShellArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<u8> {
    let ShellArgs { kernel, variant, suite, accel, gdb, timeout, command } = args;
    if command.is_empty() && !std::io::stdin().is_terminal() {
        bail!("`ksnap shell` without a command needs a terminal on stdin; run one command with `ksnap shell KERNEL -- CMD ARGS…`");
    }
    if let Some(word) = command.iter().find(|word| word.is_empty() || word.contains(char::is_whitespace)) {
        bail!("{word:?}: the guest's plan carries words without whitespace; put a longer command in a script in the guest");
    }
    let mut config = load_config(config)?;
    let cache = ksnap_vm::cache::Cache::user_default()?;
    crate::project::kernels::add_releases(&mut config, std::slice::from_ref(&kernel), &cache)?;
    let selection = Selection { kernels: vec![kernel], variants: vec![variant], suites: suite.into_iter().collect() };
    let cell = matrix::cells(&config, &selection)?.into_iter().next().context("no cell of that kernel and variant")?;
    let session = Session::start(config, accel, Progress::detect(), lock_mode)?;
    let (kernel, vm) = session.guest_of(&cell)?;
    let vm = if gdb.is_some() { vm.cmdline(["nokaslr"]) } else { vm };
    if let Some(port) = gdb {
        eprintln!("ksnap: QEMU's gdb stub listens on localhost:{port}; the kernel boots with nokaslr. Attach with");
        eprintln!("  gdb -ex 'target remote localhost:{port}' {}", symbols_hint(&kernel));
    }
    if command.is_empty() {
        let spec = vm.spec(&session.cache)?;
        eprintln!("ksnap: {cell} ({}), booting a shell; `exit` or Ctrl-D powers it off", kernel.release);
        let status = ksnap_vm::machine::shell::interactive(&session.qemu, &spec, gdb)?;
        return Ok(if status.success() { 0 } else { 1 });
    }
    run_command(&session, vm, command, Duration::from_secs(timeout))
}

/// Run `command` as the guest's one probe (busybox: `sh -c '"$@"' sh CMD ARGS…`), its output passed
/// through, and give its exit status.
fn run_command(session: &Session, vm: ksnap_vm::Vm, command: Vec<String>, timeout: Duration) -> Result<u8> {
    let args = ["sh", "-c", "\"$@\"", "sh"].into_iter().map(String::from).chain(command).collect();
    let busybox = crate::session::executables::static_busybox()?;
    let probe = ProbeSpec { name: "busybox".into(), binary: busybox, args, timeout, format: ksnap_vm::Format::Ktap };
    let report = vm.probe_spec(probe).run(&session.qemu, &session.cache)?;
    let Outcome::Completed(guest) = &report.outcome else {
        bail!("the guest did not run the command: {}", report.outcome);
    };
    let run = guest.probes.first().context("the guest ran no command")?;
    let mut stdout = std::io::stdout().lock();
    for line in &run.output {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()?;
    for line in &run.stderr {
        eprintln!("{line}");
    }
    for (what, bytes) in [("stdout", run.truncated_bytes), ("stderr", run.stderr_truncated_bytes)] {
        if let Some(bytes) = bytes {
            eprintln!("ksnap: the command's {what} was cut: {bytes} bytes more than init relays");
        }
    }
    match run.end {
        ProbeEnd::Exited(code) => Ok(u8::try_from(code).unwrap_or(u8::MAX)),
        ProbeEnd::Signaled(signal) => Ok(u8::try_from(128 + signal).unwrap_or(u8::MAX)),
        ref end => bail!("the command did not end by itself: {end}"),
    }
}

/// What to give gdb for this kernel's symbols: Debian's images carry none (their `-dbg` package has
/// vmlinux under /usr/lib/debug/boot), nor does a bzImage.
fn symbols_hint(kernel: &ksnap_vm::kernel::Kernel) -> String {
    match &kernel.package {
        Some(package) if package.name.starts_with("linux-image-") || package.name.starts_with("linux-binary-") => {
            format!(
                "/usr/lib/debug/boot/vmlinux-{} (Debian ships it in {}-dbg, version {})",
                kernel.release, package.name, package.version
            )
        }
        _ => "VMLINUX (for a kernel ksnap built: `vmlinux` in its object tree, ~/.cache/ksnap/objects/*/tree, \
              is the last kernel built from that source)"
            .into(),
    }
}
