//! Memory: the page sizes, mappings ([`Mapping`]), touching pages, and what the kernel says about
//! them — /proc/self/smaps entries ([`SmapsEntry`]), /proc/meminfo, the THP knobs.
//!
//! The probes are x86_64 only, so the page sizes are known. The smaps and status parsers allocate
//! nothing (demand_paging reads those files between two samples, where nothing may be allocated).

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::AsRawFd;

use ksnap_probe::sys::{read_text, Errno};

/// The base page size on x86_64.
pub const PAGE: usize = 4096;
/// The size of a PMD mapping, and of a THP, on x86_64.
pub const HUGE: usize = 2 << 20;

/// Transparent hugepages' sysfs directory (absent from kernels without CONFIG_TRANSPARENT_HUGEPAGE).
pub const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

/// An anonymous or file mapping, unmapped (all of it) on drop.
///
/// [`Mapping::guarded`] mappings are of their own VMA: they sit between two guard pages of shared
/// anonymous memory, which the kernel never merges with another mapping (each is its own shmem
/// object), so `Anonymous:` in their smaps entry counts exactly their own pages.
pub struct Mapping {
    pub addr: usize,
    /// The part still mapped, from `addr`.
    len: usize,
    prot: libc::c_int,
    /// The whole reservation of a guarded mapping (start, length), guard pages included.
    reservation: Option<(usize, usize)>,
}

impl Mapping {
    /// A guarded private anonymous mapping.
    pub fn anon(len: usize, prot: libc::c_int) -> Result<Mapping, String> {
        Self::guarded(len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, None)
    }

    /// A guarded one-page mapping of `file`.
    pub fn file(file: &File, prot: libc::c_int, flags: libc::c_int) -> Result<Mapping, String> {
        Self::guarded(PAGE, prot, flags, Some(file))
    }

    /// A mapping between two guard pages, checked to be a VMA of its own.
    pub fn guarded(len: usize, prot: libc::c_int, flags: libc::c_int, file: Option<&File>) -> Result<Mapping, String> {
        let reserved = len + 2 * PAGE;
        let shared_anon = libc::MAP_SHARED | libc::MAP_ANONYMOUS;
        // SAFETY: a new mapping at an address of the kernel's choosing; it overlaps nothing.
        let reservation = unsafe { libc::mmap(std::ptr::null_mut(), reserved, libc::PROT_NONE, shared_anon, -1, 0) };
        if reservation == libc::MAP_FAILED {
            return Err(format!("mmap (reservation): {}", Errno::last()));
        }
        let reservation = reservation as usize;
        let fd = file.map_or(-1, |f| f.as_raw_fd());
        // SAFETY: MAP_FIXED replaces the middle of the reservation, which nothing else uses.
        let addr =
            unsafe { libc::mmap((reservation + PAGE) as *mut c_void, len, prot, flags | libc::MAP_FIXED, fd, 0) };
        let map = Mapping { addr: reservation + PAGE, len, prot, reservation: Some((reservation, reserved)) };
        if addr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", Errno::last()));
        }
        // Check the promise of the guard pages.
        let (start, end) = vma_bounds(map.addr)?;
        if (start, end) != (map.addr, map.addr + len) {
            return Err("the new mapping shares its VMA with a neighbour".into());
        }
        Ok(map)
    }

    /// A private anonymous mapping exactly at `addr`, failing rather than replacing anything
    /// already there (`MAP_FIXED_NOREPLACE`).
    pub fn fixed(addr: usize, len: usize, prot: libc::c_int, flags: libc::c_int) -> Result<Self, String> {
        let flags = flags | libc::MAP_FIXED_NOREPLACE;
        let map =
            Self::private_anon(addr, len, prot, flags).map_err(|e| format!("mmap {len:#x} bytes at {addr:#x}: {e}"))?;
        // Kernels before 4.17 take MAP_FIXED_NOREPLACE for a hint and may map elsewhere.
        if map.addr != addr {
            return Err(format!("mmap at {addr:#x} mapped at {:#x}", map.addr));
        }
        Ok(map)
    }

    /// A private anonymous mapping wherever the kernel chooses.
    pub fn anywhere(len: usize, prot: libc::c_int, flags: libc::c_int) -> Result<Self, Errno> {
        Self::private_anon(0, len, prot, flags)
    }

    fn private_anon(addr: usize, len: usize, prot: libc::c_int, flags: libc::c_int) -> Result<Self, Errno> {
        let flags = flags | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a new anonymous mapping; MAP_FIXED_NOREPLACE never replaces an existing one, and
        // without it `addr` is only a hint.
        let ptr = unsafe { libc::mmap(addr as *mut c_void, len, prot, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping { addr: ptr as usize, len, prot, reservation: None })
    }

    pub fn protect(&mut self, prot: libc::c_int) -> Result<(), Errno> {
        // SAFETY: changes the protection of this mapping only, which no Rust reference points into;
        // `word` and `fill` check `prot`.
        if unsafe { libc::mprotect(self.addr as *mut c_void, self.len, prot) } != 0 {
            return Err(Errno::last());
        }
        self.prot = prot;
        Ok(())
    }

    pub fn advise(&self, advice: libc::c_int) -> Result<(), String> {
        // SAFETY: the range is this mapping; no Rust reference points into it.
        if unsafe { libc::madvise(self.addr as *mut c_void, self.len, advice) } != 0 {
            return Err(format!("madvise({advice}): {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Unmaps the mapping from `offset` on (all of it for 0), leaving a hole up to the guard page.
    pub fn unmap_tail(&mut self, offset: usize) -> Result<(), Errno> {
        // SAFETY: the range is the end of this mapping; nothing refers to it (`len` shrinks below).
        if unsafe { libc::munmap((self.addr + offset) as *mut c_void, self.len - offset) } != 0 {
            return Err(Errno::last());
        }
        self.len = offset;
        Ok(())
    }

    /// Unmaps now, reporting failure (drop ignores it).
    pub fn unmap(mut self) -> Result<(), String> {
        self.unmap_tail(0).map_err(|e| format!("munmap: {e}"))
    }

    /// Fills the whole mapping with `byte` (it must be writable).
    pub fn fill(&mut self, byte: u8) -> Result<(), String> {
        if self.prot & libc::PROT_WRITE == 0 {
            return Err("fill: mapping not writable".into());
        }
        // SAFETY: `len` bytes from `addr` are mapped writable (checked above).
        unsafe { std::ptr::write_bytes(self.addr as *mut u8, byte, self.len) };
        Ok(())
    }

    /// The 32-bit word at `offset`, read directly (not through /proc), in [`hex`].
    pub fn word(&self, offset: usize) -> Result<String, String> {
        if self.prot & libc::PROT_READ == 0 || offset + 4 > self.len {
            return Err(format!("word at {offset}: not readable"));
        }
        // SAFETY: the four bytes are inside the mapped part, which is readable (checked above).
        // Volatile: the kernel may have changed them behind the compiler's back.
        let value = unsafe { std::ptr::read_volatile((self.addr + offset) as *const u32) };
        Ok(hex(value))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let (start, len) = self.reservation.unwrap_or((self.addr, self.len));
        if len > 0 {
            // SAFETY: the range belongs to this value. A sealed page makes this fail (mseal): the
            // pages then stay until the process exits.
            unsafe { libc::munmap(start as *mut c_void, len) };
        }
    }
}

/// A 32-bit word as facts show it: `0x41414140`.
pub fn hex(word: u32) -> String {
    format!("{word:#010x}")
}

/// Reads one byte at `base`, `base + stride`, … (`count` bytes).
pub fn read_bytes(base: usize, stride: usize, count: usize) {
    for i in 0..count {
        // SAFETY: callers pass a range inside a readable mapping of their own. Volatile, so that
        // every read happens: the fault is the point.
        unsafe { std::ptr::read_volatile((base + i * stride) as *const u8) };
    }
}

/// Writes 1 at `base`, `base + stride`, … (`count` bytes). Not 0: Linux 6.12 may split a THP whose
/// subpages are all zero-filled (mm/huge_memory.c `thp_underused`) under memory pressure.
pub fn write_bytes(base: usize, stride: usize, count: usize) {
    for i in 0..count {
        // SAFETY: callers pass a range inside a writable mapping of their own, which no Rust
        // reference points into.
        unsafe { std::ptr::write_volatile((base + i * stride) as *mut u8, 1) };
    }
}

// ---------------------------------------------------------------------------------------------
// What /proc says
// ---------------------------------------------------------------------------------------------

/// One entry of /proc/PID/smaps: a header line `START-END PERMS …` and its `Name:   N kB` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmapsEntry<'a> {
    pub start: usize,
    pub end: usize,
    /// The field lines, up to the next header.
    fields: &'a [u8],
}

impl<'a> SmapsEntry<'a> {
    /// The first entry of `smaps` whose range (start, end) `wanted` accepts. Allocates nothing.
    pub fn find(smaps: &'a [u8], wanted: impl Fn(usize, usize) -> bool) -> Option<Self> {
        let mut found: Option<(usize, usize, usize)> = None;
        let mut offset = 0;
        for line in smaps.split(|&b| b == b'\n') {
            let line_start = offset;
            offset += line.len() + 1;
            let Some((start, end)) = smaps_range(line) else {
                continue;
            };
            if let Some((start, end, from)) = found {
                return Some(SmapsEntry { start, end, fields: &smaps[from..line_start] });
            }
            if wanted(start, end) {
                found = Some((start, end, offset.min(smaps.len())));
            }
        }
        found.map(|(start, end, from)| SmapsEntry { start, end, fields: &smaps[from..] })
    }

    /// The entry of the mapping that contains `addr`.
    pub fn containing(smaps: &'a [u8], addr: usize) -> Option<Self> {
        Self::find(smaps, |start, end| (start..end).contains(&addr))
    }

    /// The entry of the mapping that starts at `addr`.
    pub fn starting_at(smaps: &'a [u8], addr: usize) -> Option<Self> {
        Self::find(smaps, |start, _| start == addr)
    }

    /// The value of field `name` (with its colon: `Anonymous:`), in kB.
    pub fn kb(&self, name: &str) -> Option<i64> {
        field_kb(self.fields, name)
    }
}

/// `START-END` of a smaps header line (lower-case hex), or `None` for a field line.
fn smaps_range(line: &[u8]) -> Option<(usize, usize)> {
    let range = line.split(|&b| b == b' ').next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    Some((hex_number(&range[..dash])?, hex_number(&range[dash + 1..])?))
}

fn hex_number(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        let digit = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | usize::from(digit))
    })
}

/// The value of the first `NAME:   N kB` line of `text` (/proc/self/status, /proc/meminfo, a smaps
/// entry), `name` with its colon. Allocates nothing.
pub fn field_kb(text: &[u8], name: &str) -> Option<i64> {
    text.split(|&b| b == b'\n').find_map(|line| kb_value(line.strip_prefix(name.as_bytes())?))
}

/// `   1234 kB` → 1234.
fn kb_value(rest: &[u8]) -> Option<i64> {
    let rest = rest.trim_ascii().strip_suffix(b" kB")?.trim_ascii();
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    rest.iter().try_fold(0i64, |n, &d| n.checked_mul(10)?.checked_add(i64::from(d - b'0')))
}

/// `what` of the smaps entry of this process's mapping that contains `addr`.
fn own_smaps<T>(addr: usize, what: impl FnOnce(&SmapsEntry) -> Result<T, String>) -> Result<T, String> {
    let smaps = std::fs::read("/proc/self/smaps").map_err(|e| format!("/proc/self/smaps: {e}"))?;
    let entry = SmapsEntry::containing(&smaps, addr).ok_or("address not in /proc/self/smaps")?;
    what(&entry)
}

/// The bounds of this process's VMA that contains `addr`.
pub fn vma_bounds(addr: usize) -> Result<(usize, usize), String> {
    own_smaps(addr, |entry| Ok((entry.start, entry.end)))
}

/// `Anonymous:` of this process's VMA that contains `addr`, in kB: the pages of it that are private
/// anonymous copies (what copy-on-write produces).
pub fn anonymous_kb(addr: usize) -> Result<u64, String> {
    own_smaps(addr, |entry| {
        entry.kb("Anonymous:").map(|kb| kb as u64).ok_or_else(|| "smaps: no Anonymous: line in kB".into())
    })
}

/// The value in kB of a `NAME:   N kB` line of /proc/meminfo (`name` with its colon).
pub fn meminfo_kb(name: &str) -> Result<u64, String> {
    let meminfo = read_text("/proc/meminfo")?;
    field_kb(meminfo.as_bytes(), name).map(|kb| kb as u64).ok_or_else(|| format!("/proc/meminfo: no {name} line in kB"))
}

pub fn mem_total_kb() -> Result<u64, String> {
    meminfo_kb("MemTotal:")
}

/// This process's minor page faults so far (getrusage).
pub fn minor_faults() -> Result<i64, String> {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    Ok(usage.ru_minflt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00400000-00401000 r--p 00000000 00:02 12  /init
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
AnonHugePages:         0 kB
VmFlags: rd mr mw me
7e0000000000-7e0000400000 rw-p 00000000 00:00 0 
Size:               4096 kB
Rss:                2048 kB
Anonymous:          2048 kB
AnonHugePages:      2048 kB
VmFlags: rd wr mr mw me ac
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Size:                  4 kB
Rss:                   0 kB
VmFlags: ex
";

    #[test]
    fn smaps_entries() {
        let smaps = SMAPS.as_bytes();
        let entry = SmapsEntry::containing(smaps, 0x7e00_0000_1234).unwrap();
        assert_eq!((entry.start, entry.end), (0x7e00_0000_0000, 0x7e00_0040_0000));
        assert_eq!(entry.kb("Rss:"), Some(2048));
        assert_eq!(entry.kb("AnonHugePages:"), Some(2048));
        assert_eq!(entry.kb("Swap:"), None);
        assert_eq!(SmapsEntry::starting_at(smaps, 0x7e00_0000_0000), Some(entry));
        assert_eq!(SmapsEntry::starting_at(smaps, 0x7e00_0000_1000), None);
        assert_eq!(SmapsEntry::containing(smaps, 0x7e00_0040_0000), None, "end is exclusive");

        let first = SmapsEntry::starting_at(smaps, 0x40_0000).unwrap();
        assert_eq!(first.kb("Rss:"), Some(4), "not the next entry's");
        let last = SmapsEntry::containing(smaps, 0xffff_ffff_ff60_0000).unwrap();
        assert_eq!((last.kb("Rss:"), last.kb("Anonymous:")), (Some(0), None));
        assert_eq!(SmapsEntry::containing(b"", 0), None);
    }

    #[test]
    fn smaps_headers() {
        assert_eq!(smaps_range(b"00400000-00401000 r--p 0 00:02 12 /init"), Some((0x40_0000, 0x40_1000)));
        assert_eq!(smaps_range(b"Rss:                   4 kB"), None);
        assert_eq!(smaps_range(b"VmFlags: rd wr"), None);
        assert_eq!(smaps_range(b"0-"), None);
        assert_eq!(smaps_range(b"10000000000000000-1 x"), None, "over 64 bits");
    }

    #[test]
    fn kb_fields() {
        let meminfo = b"MemTotal:         991492 kB\nMemFree:          900000 kB\nHugePages_Total:       0\n";
        assert_eq!(field_kb(meminfo, "MemTotal:"), Some(991_492));
        assert_eq!(field_kb(meminfo, "MemFree:"), Some(900_000));
        assert_eq!(field_kb(meminfo, "HugePages_Total:"), None, "not in kB");
        assert_eq!(field_kb(meminfo, "SwapTotal:"), None);
        assert_eq!(field_kb(b"VmPTE:\t      48 kB\n", "VmPTE:"), Some(48));
        assert_eq!(field_kb(b"X: -1 kB\n", "X:"), None);
        assert_eq!(field_kb(b"X: 99999999999999999999 kB\n", "X:"), None, "overflow");
        assert_eq!(field_kb(b"X: 1 2 kB\n", "X:"), None);
    }

    #[test]
    fn hex_words() {
        assert_eq!(hex(0x4141_4140), "0x41414140");
        assert_eq!(hex(0x11), "0x00000011");
    }
}
