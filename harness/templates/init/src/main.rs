//! A probe: a static program ksnap runs inside the guest kernel. It prints KTAP on stdout, and each
//! `ktap.fact(KEY, VALUE)` becomes a line of the cell's snapshot (`{name}.TEST.KEY = VALUE`). Replace these
//! two experiments with your own; add more probes as more binaries, listed in ksnap.toml.

use std::os::unix::fs::FileExt;

use ksnap_probe::sys::{read_knob, selected, Errno, NOT_APPLICABLE_ENOENT, OK};
use ksnap_probe::Ktap;

fn main() {
    let mut ktap = Ktap::begin(2);
    punch_through(&mut ktap);
    transparent_hugepages(&mut ktap);
}

/// A write through /proc/self/mem into this process's own read-only page: FOLL_FORCE lets it through
/// (what JITs and debuggers rely on), unless the kernel forbids it (`proc_mem.force_override=never`).
fn punch_through(ktap: &mut Ktap) {
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let page = unsafe {
        libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if page == libc::MAP_FAILED {
        ktap.not_ok("punch_through", &format!("mmap: {}", Errno::last()));
        return;
    }
    let written = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .and_then(|mem| mem.write_at(b"A", page as u64));
    ktap.fact("write", written.map_or_else(|e| Errno::of(&e).to_string(), |_| OK.to_string()));
    // SAFETY: the page is mapped readable.
    ktap.fact("byte_after", format!("{:#04x}", unsafe { *page.cast::<u8>() }));
    ktap.ok("punch_through");
}

/// The kernel's transparent huge page mode, as this boot has it.
fn transparent_hugepages(ktap: &mut Ktap) {
    match read_knob("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(Some(text)) => ktap.fact("enabled", selected(&text).unwrap_or("unreadable")),
        Ok(None) => ktap.fact("enabled", NOT_APPLICABLE_ENOENT),
        Err(e) => return ktap.not_ok("thp", &e),
    }
    ktap.ok("thp");
}
