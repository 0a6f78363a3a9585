//! Into another process's memory (or this one's, the way a debugger would): /proc/PID/mem
//! ([`Mem`]), process_vm_readv/writev, ptrace, and userfaultfd ([`Uffd`]); what a read or write did
//! ([`Transfer`]).

use std::ffi::c_void;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use ksnap_probe::sys::{Errno, OK};

/// An open /proc/PID/mem.
pub struct Mem {
    pub file: File,
}

impl Mem {
    pub fn open_self() -> Result<Mem, String> {
        Self::open_path("/proc/self/mem", "/proc/self/mem")
    }

    pub fn open(pid: libc::pid_t) -> Result<Mem, String> {
        // A failure reason is shown too: it names no PID.
        Self::open_path(&format!("/proc/{pid}/mem"), "/proc/PID/mem")
    }

    pub fn open_path(path: &str, label: &str) -> Result<Mem, String> {
        let file = File::options().read(true).write(true).open(path);
        Ok(Mem { file: file.map_err(|e| format!("opening {label}: {e}"))? })
    }

    /// Reads at `addr`: lseek there, then read(2). Not pread(2), which refuses offsets of 2^63 and
    /// up (negative as a loff_t) with EINVAL before /proc/PID/mem sees them (fs/read_write.c,
    /// `ksys_pread64`): the kernel half of the address space is up there.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> Transfer {
        match self.seek(addr) {
            Ok(()) => Transfer::of((&self.file).read(buf), buf.len()),
            Err(errno) => Transfer::Failed(errno),
        }
    }

    pub fn write(&self, addr: usize, data: &[u8]) -> Transfer {
        match self.seek(addr) {
            Ok(()) => Transfer::of((&self.file).write(data), data.len()),
            Err(errno) => Transfer::Failed(errno),
        }
    }

    /// `mem_lseek` returns the new position, which for an address in the kernel half is a large
    /// negative number: fine, as long as it is not in -4095..-1, where it would read as an errno.
    pub fn seek(&self, addr: usize) -> Result<(), Errno> {
        // SAFETY: lseek on a file descriptor this value owns.
        match unsafe { libc::lseek(self.file.as_raw_fd(), addr as i64, libc::SEEK_SET) } {
            position if position == addr as i64 => Ok(()),
            _ => Err(Errno::last()),
        }
    }
}

/// What a read or write did: all of it, part of it, or an errno. Displayed `ok 4 bytes`,
/// `short 2 of 4 bytes` or the errno's name.
pub enum Transfer {
    Done { count: usize, asked: usize },
    Failed(Errno),
}

impl Transfer {
    pub fn of(result: io::Result<usize>, asked: usize) -> Transfer {
        match result {
            Ok(count) => Transfer::Done { count, asked },
            Err(e) => Transfer::Failed(Errno::of(&e)),
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self, Transfer::Done { count, asked } if count == asked)
    }
}

impl Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Transfer::Done { count: 1, asked: 1 } => write!(f, "{OK} 1 byte"),
            Transfer::Done { count, asked } if count == asked => write!(f, "{OK} {count} bytes"),
            Transfer::Done { count, asked } => write!(f, "short {count} of {asked} bytes"),
            Transfer::Failed(errno) => write!(f, "{errno}"),
        }
    }
}

pub fn process_vm_write(pid: libc::pid_t, addr: usize, data: &[u8]) -> Transfer {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut c_void, iov_len: data.len() };
    // SAFETY: the local iovec describes `data`, which the kernel only reads; the remote one is an
    // address in the other process, which the kernel checks.
    let rc = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if rc < 0 {
        Transfer::Failed(Errno::last())
    } else {
        Transfer::Done { count: rc as usize, asked: data.len() }
    }
}

/// process_vm_readv of `buf.len()` bytes at `addr` in `pid`, as a [`Transfer`]: all of it, a short
/// count, or the errno (a failure to pin the first page is EFAULT: mm/process_vm_access.c,
/// `process_vm_rw_single_vec`).
pub fn process_vm_read(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> Transfer {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut c_void, iov_len: buf.len() };
    // SAFETY: the local iovec describes `buf`, which is writable for its whole length.
    let rc = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if rc < 0 {
        Transfer::Failed(Errno::last())
    } else {
        Transfer::Done { count: rc as usize, asked: buf.len() }
    }
}

/// ptrace with integer arguments; errno on failure. (PEEK requests are not used: their result
/// cannot be told from -1 this way.)
pub fn ptrace(request: libc::c_uint, pid: libc::pid_t, addr: usize, data: usize) -> Result<(), Errno> {
    // SAFETY: the requests used here (SEIZE, INTERRUPT, POKEDATA, DETACH) read no memory of this
    // process through `addr` or `data`.
    match unsafe { libc::ptrace(request, pid, addr as *mut c_void, data as *mut c_void) } {
        -1 => Err(Errno::last()),
        _ => Ok(()),
    }
}
// ---------------------------------------------------------------------------------------------
// userfaultfd (include/uapi/linux/userfaultfd.h; the libc crate has none of it)
// ---------------------------------------------------------------------------------------------

const UFFD_API: u64 = 0xaa;
/// _IOWR(0xAA, 0x3F, struct uffdio_api), _IOWR(0xAA, 0x00, struct uffdio_register),
/// _IOWR(0xAA, 0x06, struct uffdio_writeprotect).
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
const UFFD_PAGEFAULT_FLAG_WP: u64 = 1 << 1;

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

/// struct uffd_msg as a page fault fills it: event, then (at offset 8) flags and address.
#[repr(C)]
#[derive(Default)]
struct UffdMsg {
    event: u8,
    reserved: [u8; 7],
    flags: u64,
    address: u64,
    rest: u64,
}

pub struct Uffd {
    file: File,
}

impl Uffd {
    pub fn open() -> Result<Uffd, Errno> {
        // SAFETY: userfaultfd takes flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the descriptor was just created and is owned by nothing else.
        Ok(Uffd { file: unsafe { File::from_raw_fd(fd as libc::c_int) } })
    }

    fn ioctl<T>(&self, request: libc::c_ulong, arg: &mut T) -> Result<(), Errno> {
        // SAFETY: every request used here reads and writes the one struct passed, whose layout is
        // the kernel's.
        match unsafe { libc::ioctl(self.file.as_raw_fd(), request, arg as *mut T) } {
            -1 => Err(Errno::last()),
            _ => Ok(()),
        }
    }

    pub fn api(&self) -> Result<(), Errno> {
        self.ioctl(UFFDIO_API, &mut UffdioApi { api: UFFD_API, ..Default::default() })
    }

    pub fn register_wp(&self, addr: usize, len: usize) -> Result<(), Errno> {
        let range = UffdioRange { start: addr as u64, len: len as u64 };
        self.ioctl(UFFDIO_REGISTER, &mut UffdioRegister { range, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 })
    }

    pub fn writeprotect(&self, addr: usize, len: usize, protect: bool) -> Result<(), Errno> {
        let range = UffdioRange { start: addr as u64, len: len as u64 };
        let mode = if protect { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 };
        self.ioctl(UFFDIO_WRITEPROTECT, &mut UffdioWriteprotect { range, mode })
    }

    /// The next event, described without its address; `none after N ms` if none comes.
    pub fn next_event(&self, timeout_ms: i32) -> String {
        let mut poll = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll reads and writes the one pollfd given.
        match unsafe { libc::poll(&mut poll, 1, timeout_ms) } {
            -1 => return format!("poll: {}", Errno::last()),
            0 => return format!("none after {timeout_ms} ms"),
            _ => {}
        }
        let mut msg = UffdMsg::default();
        // SAFETY: UffdMsg is plain data of the kernel's 32-byte uffd_msg; read fills it.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut((&mut msg as *mut UffdMsg).cast::<u8>(), std::mem::size_of::<UffdMsg>())
        };
        if let Err(e) = (&self.file).read_exact(bytes) {
            return format!("read: {e}");
        }
        describe(&msg)
    }
}

/// An event without its address: `pagefault write|wp`, `pagefault read`, `event 0x13`.
fn describe(msg: &UffdMsg) -> String {
    if msg.event != UFFD_EVENT_PAGEFAULT {
        return format!("event {:#x}", msg.event);
    }
    let mut flags = vec![];
    if msg.flags & UFFD_PAGEFAULT_FLAG_WRITE != 0 {
        flags.push("write");
    }
    if msg.flags & UFFD_PAGEFAULT_FLAG_WP != 0 {
        flags.push("wp");
    }
    format!("pagefault {}", if flags.is_empty() { "read".to_string() } else { flags.join("|") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers() {
        let done = |count, asked| Transfer::Done { count, asked }.to_string();
        assert_eq!(done(1, 1), "ok 1 byte");
        assert_eq!(done(4, 4), "ok 4 bytes");
        assert_eq!(done(4096, 8192), "short 4096 of 8192 bytes");
        assert_eq!(Transfer::Failed(Errno(libc::EIO)).to_string(), "EIO");
        assert_eq!(Transfer::of(Ok(0), 0).to_string(), "ok 0 bytes");
        assert_eq!(Transfer::of(Err(io::Error::from_raw_os_error(libc::EFAULT)), 8).to_string(), "EFAULT");
        assert!(Transfer::of(Ok(8), 8).is_complete());
        assert!(!Transfer::of(Ok(7), 8).is_complete());
    }

    #[test]
    fn uffd_messages() {
        assert_eq!(size_of::<UffdMsg>(), 32, "the kernel's struct uffd_msg");
        let fault = |flags| describe(&UffdMsg { event: UFFD_EVENT_PAGEFAULT, flags, ..Default::default() });
        assert_eq!(fault(0), "pagefault read");
        assert_eq!(fault(UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP), "pagefault write|wp");
        assert_eq!(describe(&UffdMsg { event: 0x13, ..Default::default() }), "event 0x13");
    }
}
