//! A guest for a person (`ksnap shell`): the machine of a [`VmSpec`] booted with init's shell mode
//! ([`ksnap_protocol::SHELL_ARG`]), its console on this process's terminal, optionally QEMU's gdb stub.
//! The probe runs, the result channel and the console scan of [`crate::machine::run`] are not involved: the
//! person reads the console.
//!
//! Invariant: QEMU is a [`crate::children`] child: it never outlives the caller.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};

use crate::error::Error;
use crate::machine::qemu::Qemu;
use crate::machine::spec::VmSpec;

/// Boot `spec`'s machine with a shell on its console, wired to this terminal (QEMU puts the terminal in
/// raw mode and gives it back; Ctrl-C goes to the guest), and wait for the guest to power off. `gdb`:
/// the TCP port on localhost for QEMU's gdb stub.
pub fn interactive(qemu: &Qemu, spec: &VmSpec, gdb: Option<u16>) -> Result<ExitStatus, Error> {
    let mut command = Command::new(&qemu.path);
    command.args(shell_args(qemu, spec, gdb));
    // QEMU runs in a process group of its own (children::spawn), which a terminal treats as background:
    // it would stop QEMU as soon as it set the terminal up. So QEMU makes its group the terminal's
    // foreground before it starts, and ksnap takes the terminal back (and its settings, should QEMU die
    // without restoring them) when QEMU is gone.
    // SAFETY: signal and tcsetpgrp are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            foreground(libc::getpgrp());
            Ok(())
        });
    }
    let saved = terminal_settings();
    let mut child = crate::children::spawn(&mut command).map_err(|e| Error::QemuSpawn { cause: e })?;
    let status = child.wait().map_err(|e| Error::io("waiting for QEMU", e));
    // SAFETY: getpgrp has no preconditions.
    foreground(unsafe { libc::getpgrp() });
    if let Some(settings) = saved {
        // SAFETY: settings tcgetattr filled in, on the terminal it came from.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &settings) };
    }
    status
}

/// Make process group `group` the foreground of the terminal on stdin, SIGTTOU ignored meanwhile (a
/// background process may not do it otherwise). Nothing when stdin is no terminal.
fn foreground(group: libc::pid_t) {
    // SAFETY: plain system calls on fd 0; the old disposition is put back.
    unsafe {
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(libc::STDIN_FILENO, group);
        libc::signal(libc::SIGTTOU, old);
    }
}

/// The settings of the terminal on stdin, if it is one.
fn terminal_settings() -> Option<libc::termios> {
    // SAFETY: termios is plain data, filled in by tcgetattr before it is read.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(libc::STDIN_FILENO, &mut settings) == 0).then_some(settings)
    }
}

/// QEMU's arguments for [`interactive`]: the machine with init's shell mode, the console on stdio, the
/// result channel's port present (init's other modes need it) but connected to nothing.
pub fn shell_args(qemu: &Qemu, spec: &VmSpec, gdb: Option<u16>) -> Vec<String> {
    let mut spec = spec.clone();
    spec.init_args = vec![ksnap_protocol::SHELL_ARG.to_string()];
    let mut args = spec.machine_args(qemu);
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console", "-serial", "null"]);
    if let Some(port) = gdb {
        push(&["-gdb", &format!("tcp:127.0.0.1:{port}")]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_this_terminal_and_init_gives_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p"), b"\x7fELF").unwrap();
        let cache = crate::cache::Cache::at(dir.path().join("cache")).unwrap();
        let spec =
            crate::Vm::new("/k/bzImage").pack("p", dir.path().join("p")).cmdline(["nokaslr"]).spec(&cache).unwrap();
        let qemu = Qemu::at("/nonexistent/qemu-system-x86_64".into());
        let joined = shell_args(&qemu, &spec, Some(1234)).join(" ");
        assert!(
            joined.contains(" nokaslr -- shell -chardev stdio,id=console,signal=off -serial chardev:console"),
            "{joined}"
        );
        assert!(joined.ends_with("-serial null -gdb tcp:127.0.0.1:1234"), "{joined}");
        assert!(!shell_args(&qemu, &spec, None).join(" ").contains("-gdb"));
    }
}
