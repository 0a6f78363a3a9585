//! System calls and files, the way probes use them: errno values shown by name, "no error" spelled
//! [`OK`], files read whole without allocating, sysfs and procfs knobs.

use std::ffi::CStr;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::errno_name;

/// How a fact says that a call succeeded. A count that comes with the success follows it
/// (`ok 4 bytes`, as guest-tests' `remote::Transfer` does).
pub const OK: &str = "ok";

/// The value of a fact about a knob (a sysfs or procfs file) that this kernel does not have.
pub const NOT_APPLICABLE_ENOENT: &str = "not applicable: ENOENT";

/// An errno value, displayed as its name (`EIO`), or `errno N` if it is not in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's errno.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// A system call's return value: 0 or more is success, anything else failure with [`Errno::last`].
    pub fn check(rc: i64) -> Result<(), Errno> {
        if rc >= 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }

    /// An errno value carried as a plain number (through a pipe, an exit code): 0 is success.
    pub fn from_code(code: i32) -> Result<(), Errno> {
        match code {
            0 => Ok(()),
            errno => Err(Errno(errno)),
        }
    }

    /// The errno value of an I/O error (0 if it has none).
    pub fn of(error: &io::Error) -> Errno {
        Errno(error.raw_os_error().unwrap_or(0))
    }
}

impl Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match errno_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// [`OK`], or the errno's name: the value of a fact about a call that returns nothing else.
pub fn outcome(result: Result<(), Errno>) -> String {
    result.map_or_else(|errno| errno.to_string(), |()| OK.to_string())
}

/// open(2) with O_CLOEXEC; the error names the path.
pub fn open(path: &CStr, flags: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("{}: {}", path.to_string_lossy(), io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a whole file into `buf` with open/read/close, allocating nothing; returns its length.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Result<usize, String> {
    let fd = open(path, libc::O_RDONLY)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(format!("{}: larger than {} bytes", path.to_string_lossy(), buf.len()));
        }
        let rest = &mut buf[len..];
        // SAFETY: `rest` is valid for writes of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => return Ok(len),
            1.. => len += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(format!("{}: {}", path.to_string_lossy(), io::Error::last_os_error())),
        }
    }
}

/// The 8 bytes at `offset` of `fd` as a native-endian u64 (pagemap, kpageflags).
pub fn pread_u64(fd: &OwnedFd, offset: u64, what: &str) -> Result<u64, String> {
    let mut value = [0u8; 8];
    // SAFETY: `value` is valid for writes of 8 bytes.
    let n = unsafe { libc::pread(fd.as_raw_fd(), value.as_mut_ptr().cast(), 8, offset as libc::off_t) };
    if n != 8 {
        return Err(format!("{what} at {offset:#x}: {}", io::Error::last_os_error()));
    }
    Ok(u64::from_ne_bytes(value))
}

pub fn read_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

pub fn write_text(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {text:?} to {path}: {e}"))
}

/// A knob's text, or `None` if the file does not exist on this kernel (ENOENT); other errors are
/// errors.
pub fn read_knob(path: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

/// The selected value of a sysfs choice such as `always [madvise] never`.
pub fn selected(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once('[')?;
    let (value, _) = rest.split_once(']')?;
    Some(value)
}

/// Puts a sysctl back to the value it had when saved.
pub struct SysctlRestore {
    path: &'static str,
    original: String,
}

impl SysctlRestore {
    pub fn save(path: &'static str) -> Result<Self, String> {
        Ok(SysctlRestore { path, original: read_text(path)?.trim().to_owned() })
    }

    /// Restores, reporting failure (drop, on an early return, ignores it).
    pub fn restore(self) -> Result<(), String> {
        let this = std::mem::ManuallyDrop::new(self);
        write_text(this.path, &this.original)
    }
}

impl Drop for SysctlRestore {
    fn drop(&mut self) {
        let _ = write_text(self.path, &self.original);
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> Result<(File, File), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", Errno::last()));
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Writes all of `bytes` with write(2), ignoring errors: for children, which have nobody to tell.
pub fn write_all(file: &File, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(file.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Fills `buf` from `file`; false at EOF before the first byte (a partial record is an error).
pub fn read_exact(file: &File, buf: &mut [u8]) -> Result<bool, String> {
    let mut len = 0;
    while len < buf.len() {
        match (&*file).read(&mut buf[len..]) {
            Ok(0) if len == 0 => return Ok(false),
            Ok(0) => return Err("pipe: a partial record".into()),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("pipe: {e}")),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display_and_outcomes() {
        assert_eq!(Errno(libc::EIO).to_string(), "EIO");
        assert_eq!(Errno(4000).to_string(), "errno 4000");
        assert_eq!(outcome(Ok(())), "ok");
        assert_eq!(outcome(Err(Errno(libc::EPERM))), "EPERM");
        assert_eq!(Errno::from_code(0), Ok(()));
        assert_eq!(Errno::from_code(libc::ENOMEM), Err(Errno(libc::ENOMEM)));
        assert_eq!(Errno::check(0), Ok(()));
        assert_eq!(Errno::check(7), Ok(()));
    }

    #[test]
    fn sysfs_choices() {
        assert_eq!(selected("always [madvise] never\n"), Some("madvise"));
        assert_eq!(selected("[always] inherit madvise never"), Some("always"));
        assert_eq!(selected("1\n"), None);
        assert_eq!(selected("never [oops"), None);
    }

    #[test]
    fn records_through_a_pipe() {
        let (r, w) = pipe().unwrap();
        write_all(&w, b"abcdefg");
        drop(w);
        let mut buf = [0u8; 4];
        assert_eq!(read_exact(&r, &mut buf), Ok(true));
        assert_eq!(&buf, b"abcd");
        assert_eq!(read_exact(&r, &mut buf), Err("pipe: a partial record".into()));
        assert_eq!(read_exact(&r, &mut buf), Ok(false));
    }
}
