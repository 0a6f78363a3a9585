//! What a PID 1 needs to talk to the host: filesystems, the raw result channel, power-off.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// Mounts a filesystem of type `fstype` on `target`, creating the directory if needed.
///
/// A filesystem already mounted there (`EBUSY`) is fine: that is the state we want.
pub fn mount(fstype: &str, target: &str, flags: libc::c_ulong) -> io::Result<()> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("mount {fstype} on {target}: {e}"));
    match std::fs::DirBuilder::new().mode(0o755).create(target) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(context(e)),
        _ => {}
    }
    // These are pseudo filesystems: the source is only a label, so it is the type again.
    let source = CString::new(fstype).map_err(|e| context(e.into()))?;
    let c_target = CString::new(target).map_err(|e| context(e.into()))?;
    // SAFETY: all pointers are valid NUL-terminated strings or null (no mount data).
    let ret = unsafe { libc::mount(source.as_ptr(), c_target.as_ptr(), source.as_ptr(), flags, std::ptr::null()) };
    if ret == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
        e => Err(context(e)),
    }
}

/// Opens a serial port in raw mode at 115200 baud.
///
/// Raw mode matters: the default line discipline would turn `\n` into `\r\n`, act on control
/// characters and echo whatever the host side sends.
pub fn open_serial(path: &str) -> io::Result<File> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{path}: {e}"));
    let port = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(path).map_err(context)?;
    let fd = port.as_raw_fd();
    // SAFETY: `fd` is open for the duration of these calls; `termios` is plain data that
    // tcgetattr fills in before anything reads it.
    let ret = unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut termios) != 0 {
            -1
        } else {
            libc::cfmakeraw(&mut termios);
            // What cfsetospeed would do. The libc crate binds cfset*speed to versioned glibc
            // symbols, which a static link cannot resolve. The input speed follows the output
            // speed, as the CIBAUD bits are clear.
            termios.c_cflag = (termios.c_cflag & !libc::CBAUD) | libc::B115200;
            libc::tcsetattr(fd, libc::TCSANOW, &termios)
        }
    };
    if ret != 0 {
        return Err(context(io::Error::last_os_error()));
    }
    Ok(port)
}

/// Waits until everything written to `serial` has left the UART, syncs and powers off.
///
/// The drain is essential: whatever is still in the kernel's serial buffer at power-off is lost.
/// Returns only if powering off failed.
pub fn power_off(serial: &File) -> io::Error {
    // SAFETY: plain system calls on an open file descriptor.
    unsafe {
        if libc::tcdrain(serial.as_raw_fd()) != 0 {
            return io::Error::other(format!("tcdrain: {}", io::Error::last_os_error()));
        }
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    io::Error::other(format!("power off: {}", io::Error::last_os_error()))
}
