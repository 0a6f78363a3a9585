//! Probe for suite `env`: records the basic facts of the guest (kernel, page size, THP, command
//! line, memory, CPUs). It is also the simplest end-to-end check that the whole pipeline works.
//!
//! Something that cannot be read is a `not ok` with the reason; the probe then exits 1.

use std::io;

use ksnap_guest::mem::{mem_total_kb, THP_DIR};
use ksnap_probe::sys::{read_text, selected};
use ksnap_probe::{cmdline_param, Ktap};

type Test = fn(&mut Ktap) -> Result<(), String>;

const TESTS: [(&str, Test); 6] = [
    ("uname", uname),
    ("page_size", page_size),
    ("thp", thp),
    ("cmdline", cmdline),
    ("memory", memory),
    ("cpus", cpus),
];

fn main() {
    let mut ktap = Ktap::begin(TESTS.len());
    let mut failed = false;
    for (name, test) in TESTS {
        let outcome = test(&mut ktap);
        failed |= !ktap.report(name, &outcome);
    }
    std::process::exit(i32::from(failed));
}

fn uname(ktap: &mut Ktap) -> Result<(), String> {
    // SAFETY: utsname is plain data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(format!("uname: {}", io::Error::last_os_error()));
    }
    ktap.fact("release", c_field(&uts.release));
    ktap.fact("version", c_field(&uts.version));
    ktap.fact("machine", c_field(&uts.machine));
    Ok(())
}

/// A NUL-terminated string in a fixed-size field of a C struct.
fn c_field(field: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = field.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn page_size(ktap: &mut Ktap) -> Result<(), String> {
    // SAFETY: sysconf has no memory-safety preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        -1 => Err(format!("sysconf: {}", io::Error::last_os_error())),
        size => {
            ktap.fact("bytes", size);
            Ok(())
        }
    }
}

fn thp(ktap: &mut Ktap) -> Result<(), String> {
    type Parse = fn(&str) -> Option<&str>;
    const FILES: [(&str, Parse); 3] = [("enabled", selected), ("defrag", selected), ("use_zero_page", number)];
    // Each fact is named after its sysfs file.
    for (key, parse) in FILES {
        let path = format!("{THP_DIR}/{key}");
        match std::fs::read_to_string(&path) {
            // Kernels built without transparent hugepages have no such files: a fact, not a failure.
            Err(e) if e.kind() == io::ErrorKind::NotFound => ktap.fact(key, "absent"),
            Err(e) => return Err(format!("{path}: {e}")),
            Ok(text) => match parse(&text) {
                Some(value) => ktap.fact(key, value),
                None => return Err(format!("{path}: unexpected content {text:?}")),
            },
        }
    }
    Ok(())
}

fn number(text: &str) -> Option<&str> {
    let text = text.trim();
    text.parse::<u64>().ok().map(|_| text)
}

fn cmdline(ktap: &mut Ktap) -> Result<(), String> {
    const PARAMS: [&str; 3] = ["proc_mem.force_override", "transparent_hugepage", "mitigations"];
    for name in PARAMS {
        let value = cmdline_param(name).map_err(|e| format!("/proc/cmdline: {e}"))?;
        ktap.fact(name, value.as_deref().unwrap_or("unset"));
    }
    Ok(())
}

fn memory(ktap: &mut Ktap) -> Result<(), String> {
    let total = mem_total_kb()?;
    // Rounded down to MiB: MemTotal moves by a page from one boot of the same kernel to the next (seen
    // on 6.12 in about one boot in ten: 991492 vs 991488 kB; early boot reservations are not identical
    // on every boot, KASLR being the likely cause). The MiB figure keeps what matters: how much of the
    // VM's memory the kernel leaves to the system.
    ktap.fact("mem_total_mib", total / 1024);
    Ok(())
}

/// The CPUs the kernel has online (`online`: how many, counted from the list in sysfs).
fn cpus(ktap: &mut Ktap) -> Result<(), String> {
    const ONLINE: &str = "/sys/devices/system/cpu/online";
    let online = read_text(ONLINE)?;
    let count = count_cpus(&online).ok_or_else(|| format!("{ONLINE}: cannot parse {online:?}"))?;
    ktap.fact("online", count);
    Ok(())
}

/// The number of CPUs in a kernel CPU list such as `0-3,6,8-9`.
fn count_cpus(list: &str) -> Option<u64> {
    list.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((first, last)) => {
                let first: u64 = first.parse().ok()?;
                last.parse::<u64>().ok()?.checked_sub(first).map(|n| n + 1)
            }
            None => range.parse::<u64>().ok().map(|_| 1),
        })
        .sum()
}
