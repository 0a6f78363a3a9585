//! `ksnap shell` as a person and a script meet it, on the 6.12-minimal kernel (it boots in about half a
//! second under TCG): one command with its output and exit status passed through, and an interactive
//! shell driven through a pseudo-terminal. No QEMU outlives either.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

mod common;

fn ksnap() -> Command {
    let mut command = Command::cargo_bin("ksnap").unwrap();
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    command
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_command_in_the_guest_gives_its_output_and_exit_status() {
    let output = ksnap().args(["shell", "6.12-minimal", "--", "cat", "/proc/sys/kernel/osrelease"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "6.12.117-ksnap-minimal\n", "{stderr}");
    // The cell's variant is on the guest's command line; a failing command's stderr and status pass through.
    let output = ksnap()
        .args(["shell", "6.12-minimal", "--variant", "force-never", "--suite", "proc_mem", "--"])
        .args(["grep", "-c", "proc_mem.force_override=never", "/proc/cmdline"])
        .output()
        .unwrap();
    assert_eq!((output.status.code(), output.stdout.as_slice()), (Some(0), b"1\n".as_slice()));
    let output = ksnap().args(["shell", "6.12-minimal", "--", "ls", "/nonexistent"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ls: /nonexistent: No such file or directory"));
}

#[test]
fn a_shell_refuses_what_it_cannot_do_before_anything_boots() {
    let output = ksnap().args(["shell", "6.12-minimal"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a terminal on stdin"));
    let output = ksnap().args(["shell", "6.12-minimal", "--", "echo", "two words"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"two words\": the guest's plan carries words"));
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn an_interactive_shell_on_a_terminal_powers_off_on_exit() {
    let (master, slave) = pty();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = ksnap();
    command.args(["shell", "6.12-minimal", "--gdb", &port.to_string()]);
    command.stdin(Stdio::from(slave.try_clone().unwrap()));
    command.stdout(Stdio::from(slave.try_clone().unwrap()));
    command.stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe; the pseudo-terminal becomes ksnap's controlling
    // terminal, as a person's terminal is.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut terminal = std::fs::File::from(master);
    let mut seen = String::new();
    expect(&mut terminal, &mut seen, "guest:/# ");
    terminal.write_all(b"echo ok-$((40+2)); cat /proc/sys/kernel/osrelease\r").unwrap();
    expect(&mut terminal, &mut seen, "ok-42");
    expect(&mut terminal, &mut seen, "6.12.117-ksnap-minimal");
    assert!(!common::qemu_children(child.id()).is_empty(), "the guest runs under ksnap");
    assert!(seen.contains(&format!("gdb -ex 'target remote localhost:{port}'")), "{seen}");
    gdb_stub_answers(port);
    terminal.write_all(b"exit\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ksnap shell did not end after `exit`:\n{seen}");
        // Keep the terminal drained, as a person's is.
        drain(&mut terminal, &mut seen);
    };
    assert!(status.success(), "{status}:\n{seen}");
    assert!(common::qemu_children(child.id()).is_empty());
}

/// QEMU's gdb stub on `port` answers gdb's remote protocol: why the guest stopped (`?`), then it detaches
/// (`D`) and the guest runs on.
fn gdb_stub_answers(port: u16) {
    let mut stub = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stub.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = |packet: &str| -> String {
        let sum = packet.bytes().fold(0u8, |sum, b| sum.wrapping_add(b));
        stub.write_all(format!("${packet}#{sum:02x}").as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8];
        // `+` acknowledges; the reply is `$…#CS`.
        while !(reply.contains(&b'$') && reply.len() >= 3 && reply[reply.len() - 3] == b'#') {
            stub.read_exact(&mut byte).unwrap();
            reply.push(byte[0]);
        }
        stub.write_all(b"+").unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    };
    let stopped = answer("?");
    assert!(stopped.contains("$T") || stopped.contains("$S"), "{stopped}");
    assert!(answer("D").contains("$OK"));
}

/// A pseudo-terminal: its master and slave ends.
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two fds; the name, settings and size pointers may be null.
    let ok =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(ok, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two open fds nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// What the terminal has to read now (within 100 ms), into `seen`.
fn drain(terminal: &mut std::fs::File, seen: &mut String) {
    let mut fds = [libc::pollfd { fd: terminal.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } > 0 {
        let mut buf = [0u8; 4096];
        if let Ok(n) = terminal.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

/// Read the terminal into `seen` until it contains `text` (60 s at most).
fn expect(terminal: &mut std::fs::File, seen: &mut String, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while !seen.contains(text) {
        assert!(Instant::now() < deadline, "no {text:?} on the terminal:\n{seen}");
        let mut fds = [libc::pollfd { fd: terminal.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } <= 0 {
            continue;
        }
        match terminal.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the terminal closed before {text:?}:\n{seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}
