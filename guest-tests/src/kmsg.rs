//! The kernel log: /dev/kmsg read from a point on ([`Kmsg`]), and the OOM killer's lines in it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use ksnap_probe::sys::open;

/// /dev/kmsg, read from where the log ended when it was opened.
pub struct Kmsg {
    fd: OwnedFd,
}

impl Kmsg {
    pub fn open_at_end() -> Result<Self, String> {
        let fd = open(c"/dev/kmsg", libc::O_RDONLY | libc::O_NONBLOCK)?;
        // SAFETY: plain system call on an open fd.
        if unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_END) } < 0 {
            return Err(format!("/dev/kmsg: seek to end: {}", io::Error::last_os_error()));
        }
        Ok(Kmsg { fd })
    }

    /// The message text of every record logged since, until there are none left.
    pub fn read_new(&self) -> Result<Vec<String>, String> {
        let mut records = Vec::new();
        // One record per read(2); the kernel caps a record's text at 1024 bytes (PRINTK_MESSAGE_MAX
        // plus the prefix), so this always fits.
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(records),
                    Some(libc::EINTR) => continue,
                    // Records were overwritten before we read them; reading goes on after the gap.
                    Some(libc::EPIPE) => continue,
                    _ => return Err(format!("/dev/kmsg: {}", io::Error::last_os_error())),
                }
            }
            // `PRIORITY,SEQ,TIMESTAMP,FLAGS;TEXT\n` then optional ` KEY=VALUE` lines.
            let record = String::from_utf8_lossy(&buf[..n as usize]);
            if let Some((_, text)) = record.split_once(';') {
                records.push(text.lines().next().unwrap_or("").to_owned());
            }
        }
    }
}

/// The first lines of the kernel's OOM report (mm/oom_kill.c `dump_header`):
/// `COMM invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=1000`.
pub struct OomInvocation<'a> {
    pub comm: &'a str,
}

impl<'a> OomInvocation<'a> {
    pub fn parse(line: &'a str) -> Option<Self> {
        let (comm, rest) = line.split_once(" invoked oom-killer: ")?;
        rest.strip_prefix("gfp_mask=")?;
        Some(OomInvocation { comm })
    }
}

/// `Out of memory: Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB,
/// shmem-rss:NkB, UID:N pgtables:NkB oom_score_adj:N` (mm/oom_kill.c `__oom_kill_process`).
pub struct OomKill<'a> {
    pub line: &'a str,
    pub comm: &'a str,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub uid: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i64,
}

impl<'a> OomKill<'a> {
    pub fn parse(line: &'a str) -> Option<Self> {
        let rest = line.strip_prefix("Out of memory: Killed process ")?;
        let (_pid, rest) = rest.split_once(" (")?;
        let (comm, rest) = rest.split_once(") ")?;
        let field = |name: &str| -> Option<&'a str> {
            rest.split([' ', ',']).find_map(|word| word.strip_prefix(name)?.strip_prefix(':'))
        };
        let kb = |name: &str| field(name)?.strip_suffix("kB")?.parse().ok();
        Some(OomKill {
            line,
            comm,
            total_vm_kb: kb("total-vm")?,
            anon_rss_kb: kb("anon-rss")?,
            file_rss_kb: kb("file-rss")?,
            shmem_rss_kb: kb("shmem-rss")?,
            uid: field("UID")?.parse().ok()?,
            pgtables_kb: kb("pgtables")?,
            oom_score_adj: field("oom_score_adj")?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_lines() {
        let invoked = "demand_paging invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=1000";
        assert_eq!(OomInvocation::parse(invoked).map(|i| i.comm), Some("demand_paging"));
        assert!(OomInvocation::parse("demand_paging invoked oom-killer: nothing").is_none());

        let line = "Out of memory: Killed process 93 (demand_paging) total-vm:1073745444kB, \
                    anon-rss:12kB, file-rss:760kB, shmem-rss:0kB, UID:0 pgtables:929864kB oom_score_adj:1000";
        let kill = OomKill::parse(line).unwrap();
        assert_eq!(kill.line, line);
        assert_eq!(kill.comm, "demand_paging");
        assert_eq!(
            (kill.total_vm_kb, kill.anon_rss_kb, kill.file_rss_kb, kill.shmem_rss_kb),
            (1_073_745_444, 12, 760, 0)
        );
        assert_eq!((kill.uid, kill.pgtables_kb, kill.oom_score_adj), (0, 929_864, 1000));
        let negative = line.replace("oom_score_adj:1000", "oom_score_adj:-17");
        assert_eq!(OomKill::parse(&negative).map(|k| k.oom_score_adj), Some(-17));
        assert!(OomKill::parse(&line.replace("pgtables:929864kB ", "")).is_none());
        assert!(OomKill::parse("Out of memory: Killed process 93").is_none());
    }
}
