//! Probe for suite `demand_paging`: what the kernel allocates, and when, for anonymous memory.
//!
//! `mmap` reserves nothing: the kernel allocates on first touch. A read of untouched anonymous memory
//! maps the shared zero page (or, with THP, the huge zero page); a write allocates a page (or a
//! 2 MiB THP). Page tables are memory too (`VmPTE`), and the OOM killer counts them: a process can be
//! OOM-killed while its RSS is almost nothing.
//!
//! Usage: `demand_paging` runs every case but the OOM experiment; `demand_paging oom` runs only the
//! OOM experiment. Both begin with the `setup` test. The OOM experiment needs a VM of its own: where
//! it ends depends on what ran before it in the same boot (see [`oom`]).
//!
//! # How the numbers are made deterministic
//!
//! - Every case maps its memory with `MAP_FIXED_NOREPLACE` at [`CASE_BASE`], which is aligned to
//!   512 GiB: a mapping there starts in an empty top-level page-table slot, so the page tables it
//!   needs (one PUD table, PMD tables, PTE tables) do not depend on ASLR, and `munmap` at the end of
//!   each case frees them all again (`free_pgtables`: no other mapping shares them).
//! - Facts are differences between two samples ([`Sample`]) of `/proc/self/status` (RssAnon, VmPTE),
//!   `getrusage` minor faults and the mapping's `/proc/self/smaps` entry. Nothing is allocated between
//!   two samples: /proc files are read with raw read(2) into one buffer that is allocated and touched
//!   up front, and facts are printed only after the last sample of a case.
//! - Linux 6.1 counts RSS changes of the current task in a per-task cache that it folds into the
//!   `mm` counters only every 64 faults (`SPLIT_RSS_COUNTING`, mm/memory.c `check_sync_rss_stat`), and
//!   /proc/self/status reads the `mm` counters only. Before every sample the probe makes the kernel
//!   fold the cache in ([`Meter::sync_rss`]), so RssAnon is exact on 6.1 too.
//!
//! Sizes are in kB, as /proc prints them; `*_kb` facts of a step are that step's change.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use ksnap_guest::kmsg::{Kmsg, OomInvocation, OomKill};
use ksnap_guest::mem::{
    field_kb, mem_total_kb, meminfo_kb, minor_faults, read_bytes, write_bytes, Mapping, SmapsEntry, HUGE, PAGE, THP_DIR,
};
use ksnap_probe::child::{as_bytes, as_bytes_mut, fork_with_pipe, from_bytes, in_child, wait, Plain};
use ksnap_probe::sys::{
    open, outcome, pread_u64, read_exact, read_file, read_knob, read_text, selected, write_all, write_text, Errno,
    SysctlRestore, NOT_APPLICABLE_ENOENT,
};
use ksnap_probe::Ktap;

const GIB: usize = 1 << 30;

/// Where every case maps its memory: aligned to 512 GiB, the span of one top-level (PGD) entry, and
/// below where the kernel places mappings without an address (mmap_base is at least 0x7eff_f000_0000
/// even with the largest ASLR offset, 2^28 pages below the stack gap).
const CASE_BASE: usize = 0x7e00_0000_0000;
/// The OOM experiment's 1 TiB mapping: 1 TiB-aligned, clear of [`CASE_BASE`] and of mmap_base.
const OOM_BASE: usize = 0x7c00_0000_0000;
/// The page [`Meter::sync_rss`] zaps: in a top-level slot of its own, so that it never shares a page
/// table with a case's mapping (which would then not free that table at munmap).
const SCRATCH_ADDR: usize = 0x7a00_0000_0000;

const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;
const RO: libc::c_int = libc::PROT_READ;

/// Pages touched by the small cases: just under 4 MiB, so two PTE tables.
const SMALL_PAGES: usize = 1000;

type Test = fn(&mut Ktap, &mut Meter) -> Result<(), String>;

const MAIN_TESTS: [(&str, Test); 15] = [
    ("setup", setup),
    ("write_touch", write_touch),
    ("read_then_write", read_then_write),
    ("read_then_write_thp", read_then_write_thp),
    ("dontneed_munmap", dontneed_munmap),
    ("sparse_read_thp", |k, m| sparse_read(k, m, Thp::Allowed)),
    ("sparse_read_nohugepage", |k, m| sparse_read(k, m, Thp::NoHugePage)),
    ("sparse_write_thp", |k, m| sparse_write(k, m, Thp::Allowed)),
    ("sparse_write_nohugepage", |k, m| sparse_write(k, m, Thp::NoHugePage)),
    ("populate_rw", |k, m| populate(k, m, RW)),
    ("populate_ro", |k, m| populate(k, m, RO)),
    ("overcommit", overcommit),
    ("alignment", alignment),
    ("mthp", mthp),
    ("curve", curve),
];

const OOM_TESTS: [(&str, Test); 2] = [("setup", setup), ("oom", oom)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tests: &[(&str, Test)] = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => &MAIN_TESTS,
        ["oom"] => &OOM_TESTS,
        _ => {
            eprintln!("usage: demand_paging [oom]");
            std::process::exit(2);
        }
    };

    let mut ktap = Ktap::begin(tests.len());
    let mut meter = match Meter::new() {
        Ok(meter) => meter,
        Err(reason) => {
            for (name, _) in tests {
                ktap.not_ok(name, &reason);
            }
            std::process::exit(1);
        }
    };
    let mut failed = false;
    for (name, test) in tests {
        let start = Instant::now();
        let result = guarded(name, *test, &mut ktap, &mut meter);
        // Timings go to the console log, not into the snapshot.
        eprintln!("demand_paging: {name}: {} ms", start.elapsed().as_millis());
        failed |= !ktap.report(name, &result);
    }
    std::process::exit(i32::from(failed));
}

/// How many times a case runs at most while khugepaged keeps collapsing memory during it.
const ATTEMPTS: u32 = 3;

/// Runs one case; runs it again (its facts dropped) if khugepaged collapsed memory while it ran.
///
/// `setup` pauses khugepaged and limits it to ranges without empty or zero-page PTEs, yet it still
/// collapsed read_then_write_thp's range between the sample after its last write and the check of what
/// maps it (6.12-minimal with THP=always, twice in three full matrix runs on restored machines). One way it
/// can, in 6.12's mm/khugepaged.c: `khugepaged_do_scan` sleeps in the middle of a pass when it cannot
/// allocate a huge page (`khugepaged_alloc_sleep`, TASK_INTERRUPTIBLE on `khugepaged_wait`, so the thread
/// looks paused to `setup`), and once woken (any `wake_up_interruptible(&khugepaged_wait)`, or its 60 s)
/// finishes that pass; and a range whose 512 PTEs were all just written has nothing that
/// `max_ptes_none = 0` refuses. When khugepaged runs is the host's timing, not the behaviour under test,
/// and the kernel counts every collapse it makes (`khugepaged/pages_collapsed`): a case during which that
/// count moved measured khugepaged, and runs again (the retry is on the probe's stderr, in the console log).
fn guarded(name: &str, test: Test, ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    if name == "setup" {
        return test(ktap, meter);
    }
    let mut attempt = 1;
    loop {
        let before = khugepaged_collapses()?;
        ktap.hold();
        let result = test(ktap, meter);
        let after = khugepaged_collapses()?;
        if before == after {
            ktap.release();
            return result;
        }
        let (before, after) = (before.unwrap_or(0), after.unwrap_or(0));
        eprintln!("demand_paging: {name}: khugepaged collapsed memory during attempt {attempt} (pages_collapsed {before} -> {after})");
        if attempt == ATTEMPTS {
            ktap.discard();
            return Err(format!("khugepaged collapsed memory during each of {ATTEMPTS} attempts, although paused"));
        }
        ktap.discard();
        attempt += 1;
    }
}

/// khugepaged's count of collapsed huge pages (mm/khugepaged.c `pages_collapsed_show`), `None` without THP.
fn khugepaged_collapses() -> Result<Option<u64>, String> {
    let path = format!("{THP_DIR}/khugepaged/pages_collapsed");
    match read_knob(&path)? {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| format!("{path}: not a number: {text:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/// The settings every other result depends on, as the guest actually ran with them, and a check
/// that the measurement itself moves nothing.
fn setup(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    // A kernel without CONFIG_TRANSPARENT_HUGEPAGE has no THP_DIR at all: say so rather than fail.
    for name in ["enabled", "defrag"] {
        let path = format!("{THP_DIR}/{name}");
        let value = match read_knob(&path)? {
            None => NOT_APPLICABLE_ENOENT.to_owned(),
            Some(text) => selected(&text).ok_or_else(|| format!("{path}: {text:?}"))?.to_owned(),
        };
        ktap.fact(&format!("thp.{name}"), value);
    }
    ktap.fact(
        "thp.use_zero_page",
        read_knob(&format!("{THP_DIR}/use_zero_page"))?
            .map_or(NOT_APPLICABLE_ENOENT.to_owned(), |t| t.trim().to_owned()),
    );
    // Rounded down to MiB: MemTotal moves by a page between boots of the same kernel (see env).
    ktap.fact("mem_total_mib", mem_total_kb()? / 1024);
    ktap.fact("overcommit_memory", read_text(OVERCOMMIT)?.trim());
    // The reserve below which the page allocator wakes reclaim and, failing that, the OOM killer.
    // With THP enabled khugepaged raises it (mm/khugepaged.c set_recommended_min_free_kbytes), which
    // moves where the OOM experiment ends. Rounded down to MiB: without THP it is
    // int_sqrt(16 × free kB), which can move with the free memory of a boot.
    let min_free_kb: u64 = read_text(MIN_FREE)?.trim().parse().map_err(|_| format!("{MIN_FREE}: not a number"))?;
    ktap.fact("min_free_mib", min_free_kb / 1024);

    // khugepaged collapses 4 KiB pages into a THP in the background, on its own schedule: with
    // THP=always it sometimes collapsed read_then_write_thp's range in the middle of the writes (seen on
    // 6.1+thp-always: 15 faults and anon_thp instead of 512 faults and 4 KiB pages). Its timing is not
    // the kernel's behaviour under test, so it sleeps while the probe runs: writing scan_sleep_millisecs
    // makes it run one pass now (mm/khugepaged.c scan_sleep_millisecs_store) and then wait a day. That
    // pass must be over before the first measurement, and a fixed pause was not enough on a loaded host
    // (seen: 6.12-no-force, the region collapsed after its 512 writes): wait until the thread has gone
    // back to sleep, which its count of voluntary context switches shows. The thread runs only while
    // THP is enabled (start_stop_khugepaged); without it there is nothing to wait for.
    let khugepaged = format!("{THP_DIR}/khugepaged/scan_sleep_millisecs");
    if std::path::Path::new(&khugepaged).exists() {
        let thread = kernel_thread("khugepaged");
        let sleeps = |pid: u32| -> Result<(u64, bool), String> {
            let status = read_text(&format!("/proc/{pid}/status"))?;
            let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
            let switches =
                field("voluntary_ctxt_switches:").and_then(|v| v.parse().ok()).ok_or("no voluntary_ctxt_switches")?;
            Ok((switches, field("State:").is_some_and(|state| state.starts_with('S'))))
        };
        let before = thread.map(sleeps).transpose()?;
        // Pausing is not enough alone (seen: 6.1+thp-always, 1 boot in 6 collapsed read_then_write_thp's
        // range mid-writes, 105 faults instead of 512, with khugepaged paused): it also wakes when a new mm
        // registers (mm/khugepaged.c __khugepaged_enter). With max_ptes_none 0 it collapses no range that
        // still has an empty or zero-page PTE (hpage_collapse_scan_pmd), so none while a case writes one.
        write_text(&format!("{THP_DIR}/khugepaged/max_ptes_none"), "0")?;
        write_text(&khugepaged, "86400000")?;
        if let (Some(pid), Some((switches, _))) = (thread, before) {
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let (now, asleep) = sleeps(pid)?;
                if now > switches && asleep {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("khugepaged did not go back to sleep within 30 s of being paused".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        ktap.fact("khugepaged", "paused (scan_sleep_millisecs 86400000, max_ptes_none 0)");
    } else {
        ktap.fact("khugepaged", NOT_APPLICABLE_ENOENT);
    }

    // Two samples with nothing in between must differ in nothing, or no delta below means anything.
    let first = meter.sample(CASE_BASE)?;
    let second = meter.sample(CASE_BASE)?;
    report(ktap, "null_step", &first, &second);
    Ok(())
}

/// Case 1: write one byte to each of 1000 pages of a fresh mapping, with 4 KiB pages forced.
fn write_touch(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let before_map = meter.sample(CASE_BASE)?;
    let map = Mapping::fixed(CASE_BASE, SMALL_PAGES * PAGE, RW, 0)?;
    map.advise(libc::MADV_NOHUGEPAGE)?;
    let mapped = meter.sample(map.addr)?;
    write_bytes(map.addr, PAGE, SMALL_PAGES);
    let written = meter.sample(map.addr)?;
    let mapped_as = meter.mapped_as(map.addr)?;

    report(ktap, "map", &before_map, &mapped);
    report(ktap, "write", &mapped, &written);
    ktap.fact("write.first_page_mapped_as", mapped_as);
    Ok(())
}

/// Case 2: read 1000 pages (zero page), then write the same pages (copy-on-write from the zero
/// page), with 4 KiB pages forced.
fn read_then_write(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let map = Mapping::fixed(CASE_BASE, SMALL_PAGES * PAGE, RW, 0)?;
    map.advise(libc::MADV_NOHUGEPAGE)?;
    read_write_steps(ktap, meter, &map, SMALL_PAGES)
}

/// Case 2 with THP allowed (the sysfs policy decides): one 2 MiB-aligned 2 MiB mapping, every page
/// read, then every page written.
fn read_then_write_thp(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let map = Mapping::fixed(CASE_BASE, HUGE, RW, 0)?;
    read_write_steps(ktap, meter, &map, HUGE / PAGE)
}

fn read_write_steps(ktap: &mut Ktap, meter: &mut Meter, map: &Mapping, pages: usize) -> Result<(), String> {
    let start = meter.sample(map.addr)?;
    read_bytes(map.addr, PAGE, pages);
    let read = meter.sample(map.addr)?;
    let read_as = meter.mapped_as(map.addr)?;
    write_bytes(map.addr, PAGE, pages);
    let written = meter.sample(map.addr)?;
    let written_as = meter.mapped_as(map.addr)?;

    report(ktap, "read", &start, &read);
    ktap.fact("read.first_page_mapped_as", read_as);
    report(ktap, "write", &read, &written);
    ktap.fact("write.first_page_mapped_as", written_as);
    Ok(())
}

/// Case 3: write 1000 pages as in case 1, drop them with MADV_DONTNEED, then munmap.
fn dontneed_munmap(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let map = Mapping::fixed(CASE_BASE, SMALL_PAGES * PAGE, RW, 0)?;
    map.advise(libc::MADV_NOHUGEPAGE)?;
    let start = meter.sample(map.addr)?;
    write_bytes(map.addr, PAGE, SMALL_PAGES);
    let written = meter.sample(map.addr)?;
    map.advise(libc::MADV_DONTNEED)?;
    let dropped = meter.sample(map.addr)?;
    let addr = map.addr;
    map.unmap()?;
    let unmapped = meter.sample(addr)?;

    report(ktap, "write", &start, &written);
    report(ktap, "dontneed", &written, &dropped);
    report(ktap, "munmap", &dropped, &unmapped);
    Ok(())
}

/// Whether a case leaves THP to the sysfs policy or forbids it for its mapping.
#[derive(Clone, Copy)]
enum Thp {
    Allowed,
    NoHugePage,
}

const SPARSE_READ_LEN: usize = 64 * GIB;
const SPARSE_READ_TOUCHES: usize = 1024;

/// Case 4: a 64 GiB read-only MAP_NORESERVE mapping, one byte read every 2 MiB, 1024 times: page
/// tables grow, RSS does not.
fn sparse_read(ktap: &mut Ktap, meter: &mut Meter, thp: Thp) -> Result<(), String> {
    let map = Mapping::fixed(CASE_BASE, SPARSE_READ_LEN, RO, libc::MAP_NORESERVE)?;
    if let Thp::NoHugePage = thp {
        map.advise(libc::MADV_NOHUGEPAGE)?;
    }
    let start = meter.sample(map.addr)?;
    read_bytes(map.addr, HUGE, SPARSE_READ_TOUCHES);
    let read = meter.sample(map.addr)?;
    let mapped_as = meter.mapped_as(map.addr)?;

    report(ktap, "read", &start, &read);
    ktap.fact("read.first_page_mapped_as", mapped_as);
    Ok(())
}

const SPARSE_WRITE_TOUCHES: usize = 64;

/// Case 5: one byte written every 2 MiB of a 2 MiB-aligned 128 MiB mapping, 64 times.
fn sparse_write(ktap: &mut Ktap, meter: &mut Meter, thp: Thp) -> Result<(), String> {
    let map = Mapping::fixed(CASE_BASE, SPARSE_WRITE_TOUCHES * HUGE, RW, 0)?;
    if let Thp::NoHugePage = thp {
        map.advise(libc::MADV_NOHUGEPAGE)?;
    }
    let start = meter.sample(map.addr)?;
    write_bytes(map.addr, HUGE, SPARSE_WRITE_TOUCHES);
    let written = meter.sample(map.addr)?;
    let mapped_as = meter.mapped_as(map.addr)?;

    report(ktap, "write", &start, &written);
    ktap.fact("write.first_page_mapped_as", mapped_as);
    Ok(())
}

const POPULATE_LEN: usize = 16 << 20;

/// Case 6: MAP_POPULATE of 16 MiB (2 MiB-aligned): the kernel faults the whole mapping in at mmap
/// time, through get_user_pages, with write faults only for a writable mapping.
fn populate(ktap: &mut Ktap, meter: &mut Meter, prot: libc::c_int) -> Result<(), String> {
    let start = meter.sample(CASE_BASE)?;
    let map = Mapping::fixed(CASE_BASE, POPULATE_LEN, prot, libc::MAP_POPULATE)?;
    let populated = meter.sample(map.addr)?;
    let mapped_as = meter.mapped_as(map.addr)?;

    report(ktap, "populate", &start, &populated);
    ktap.fact("populate.first_page_mapped_as", mapped_as);
    Ok(())
}

const OVERCOMMIT: &str = "/proc/sys/vm/overcommit_memory";
const MIN_FREE: &str = "/proc/sys/vm/min_free_kbytes";

/// What each overcommit experiment tries, in the order of [`OvercommitResults`].
const OVERCOMMIT_EXPERIMENTS: [&str; 5] =
    ["private_rw", "private_rw_noreserve", "private_ro", "private_ro.mprotect_rw", "private_ro_noreserve.mprotect_rw"];
/// 0 for success, else the errno (-1: not tried), per experiment.
type OvercommitResults = [i32; 5];

/// Case 7: which mappings of 4 × MemTotal each vm.overcommit_memory mode lets through
/// (mm/util.c `__vm_enough_memory`), each mode in a fresh process so that no charge of an earlier
/// experiment counts against a later one.
fn overcommit(ktap: &mut Ktap, _meter: &mut Meter) -> Result<(), String> {
    let len = 4 * mem_total_kb()? as usize * 1024;
    ktap.fact("len", "4 x MemTotal");
    let restore = SysctlRestore::save(OVERCOMMIT)?;
    for mode in ["0", "1", "2"] {
        write_text(OVERCOMMIT, mode)?;
        let (bytes, status) = in_child(|pipe| {
            let results = overcommit_experiments(len);
            write_all(pipe, as_bytes(&results));
            0
        })?;
        let results: OvercommitResults = match (status.exit_code(), from_bytes(&bytes)) {
            (Some(0), Some(results)) => results,
            _ => return Err(format!("mode {mode}: the child {status}")),
        };
        for (name, errno) in OVERCOMMIT_EXPERIMENTS.iter().zip(results) {
            let result = match errno {
                -1 => "not tried".to_string(),
                errno => outcome(Errno::from_code(errno)),
            };
            ktap.fact(&format!("mode{mode}.{name}"), result);
        }
    }
    restore.restore()
}

/// Runs in the forked child; only system calls.
fn overcommit_experiments(len: usize) -> OvercommitResults {
    let map = |prot, flags| match Mapping::anywhere(len, prot, flags) {
        Ok(map) => (0, Some(map)),
        Err(Errno(errno)) => (errno, None),
    };
    let mprotect_rw = |map: Option<Mapping>| match map {
        Some(mut map) => map.protect(RW).err().map_or(0, |Errno(errno)| errno),
        // The read-only mapping itself failed: report that instead.
        None => -1,
    };
    // `_` drops the mapping at once: a charged mapping must not count against the next experiment.
    let (rw, _) = map(RW, 0);
    let (rw_noreserve, _) = map(RW, libc::MAP_NORESERVE);
    let (ro, ro_map) = map(RO, 0);
    let (_, ro_noreserve_map) = map(RO, libc::MAP_NORESERVE);
    [rw, rw_noreserve, ro, mprotect_rw(ro_map), mprotect_rw(ro_noreserve_map)]
}

/// Case 8: does the kernel place a large anonymous mapping (no address hint) on a 2 MiB boundary?
/// Asked for a length that is a multiple of 2 MiB and one that is not.
fn alignment(ktap: &mut Ktap, _meter: &mut Meter) -> Result<(), String> {
    for (key, len) in [("len_4096kb", 4 << 20), ("len_4100kb", (4 << 20) + PAGE)] {
        ktap.fact(&format!("{key}.aligned_2m"), yes_no(both_aligned(len)?));
    }
    Ok(())
}

/// Maps `len` twice with a one-page mapping in between and says whether both are 2 MiB-aligned.
///
/// One mapping could be aligned by chance (mmap_base is random, page-granular). The kernel places
/// mappings top-down, each just below the last: the page in between makes the second one start
/// `len` + 4 KiB below the first, so unless the kernel aligns on purpose the two cannot both be
/// aligned.
fn both_aligned(len: usize) -> Result<bool, String> {
    let first = Mapping::anywhere(len, RW, 0).map_err(|e| format!("mmap {len}: {e}"))?;
    // PROT_NONE so that it cannot merge with either neighbour.
    let _spacer = Mapping::anywhere(PAGE, libc::PROT_NONE, 0).map_err(|e| format!("mmap: {e}"))?;
    let second = Mapping::anywhere(len, RW, 0).map_err(|e| format!("mmap {len}: {e}"))?;
    Ok(first.addr % HUGE == 0 && second.addr % HUGE == 0)
}

/// Case 8, continued: the per-size ("multi-size THP") knobs, /sys/kernel/mm/transparent_hugepage/
/// `hugepages-<size>kB` (Linux 6.8, mm/huge_memory.c `thpsize_create`), and the `enabled` setting of
/// those that have one.
///
/// Kernels before 6.8 have no such directory: every fact is then `not applicable: ENOENT`, not a
/// count of 0, which would read as an interface with no sizes. A size directory without `enabled`
/// is one anonymous memory cannot use (6.12: order 1, 8 kB, is in THP_ORDERS_ALL_FILE_DEFAULT but not
/// in THP_ORDERS_ALL_ANON, so it gets the file/shmem attributes only): its `enabled` is
/// `not applicable: ENOENT` too.
fn mthp(ktap: &mut Ktap, _meter: &mut Meter) -> Result<(), String> {
    let entries = match std::fs::read_dir(THP_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ktap.fact("count", NOT_APPLICABLE_ENOENT);
            ktap.fact("sizes_kb", NOT_APPLICABLE_ENOENT);
            return Ok(());
        }
        Err(e) => return Err(format!("{THP_DIR}: {e}")),
    };
    let mut sizes_kb = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| format!("{THP_DIR}: {e}"))?.file_name();
        let size = name.to_str().and_then(|n| n.strip_prefix("hugepages-")?.strip_suffix("kB"));
        if let Some(size) = size {
            sizes_kb.push(size.parse::<u64>().map_err(|_| format!("{THP_DIR}: {name:?}"))?);
        }
    }
    if sizes_kb.is_empty() {
        // The sysfs interface is not there (before 6.8), as opposed to there with no sizes.
        ktap.fact("count", NOT_APPLICABLE_ENOENT);
        ktap.fact("sizes_kb", NOT_APPLICABLE_ENOENT);
        return Ok(());
    }
    sizes_kb.sort_unstable();
    ktap.fact("count", sizes_kb.len());
    let list: Vec<String> = sizes_kb.iter().map(u64::to_string).collect();
    ktap.fact("sizes_kb", list.join(" "));
    for size in sizes_kb {
        let path = format!("{THP_DIR}/hugepages-{size}kB/enabled");
        let value = match read_knob(&path)? {
            None => NOT_APPLICABLE_ENOENT.to_owned(),
            Some(text) => selected(&text).ok_or_else(|| format!("{path}: {text:?}"))?.to_owned(),
        };
        ktap.fact(&format!("size_{size:04}kb.enabled"), value);
    }
    Ok(())
}

const CURVE_STEP: usize = 256;
const CURVE_POINTS: usize = 17;

/// Case 10: VmPTE and RssAnon after 0, 256, … 4096 sparse read touches (one per 2 MiB) of a
/// read-only MAP_NORESERVE mapping, THP left to the sysfs policy: the OOM experiment in miniature.
fn curve(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let touches = CURVE_STEP * (CURVE_POINTS - 1);
    let start = meter.status()?;
    let map = Mapping::fixed(CASE_BASE, touches * HUGE, RO, libc::MAP_NORESERVE)?;
    let mut points = [Status::default(); CURVE_POINTS];
    for (i, point) in points.iter_mut().enumerate() {
        if i > 0 {
            read_bytes(map.addr + (i - 1) * CURVE_STEP * HUGE, HUGE, CURVE_STEP);
        }
        *point = meter.status()?;
    }
    let mapped_as = meter.mapped_as(map.addr)?;

    ktap.fact("first_page_mapped_as", mapped_as);
    for (i, point) in points.iter().enumerate() {
        let touches = i * CURVE_STEP;
        ktap.fact(&format!("{touches:04}.vmpte_kb"), point.vmpte_kb - start.vmpte_kb);
        ktap.fact(&format!("{touches:04}.rss_anon_kb"), point.rss_anon_kb - start.rss_anon_kb);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Case 9: the OOM experiment
// ---------------------------------------------------------------------------------------------

const OOM_LEN: usize = 1 << 40;
/// The child reports after every this many touches (1 GiB of address space, 2 MiB of PTE tables).
const OOM_REPORT_EVERY: usize = 512;

/// What the OOM child sends its parent after every [`OOM_REPORT_EVERY`] touches.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct OomReport {
    touches: u64,
    vmpte_kb: u64,
    rss_anon_kb: u64,
    /// Index into [`MAPPED_AS`] of what the first touch mapped.
    mapped_as: u64,
}

/// Case 9: a child reads one byte every 2 MiB of a 1 TiB read-only MAP_NORESERVE mapping until the
/// OOM killer ends it. Every read maps only a zero page (RSS stays flat) but needs a 4 KiB page
/// table (a PTE table, or the table deposited for a huge zero PMD), so page tables fill memory.
///
/// How far page tables grow before the kill is not exact. Freed pages wait on per-CPU free lists,
/// which count as used and may hold tens of MB (their limit follows the zone's low watermark, which
/// THP raises); the allocator drains them only after reclaim made progress (mm/page_alloc.c
/// `__alloc_pages_direct_reclaim`), which here it never does. So the kill comes with however much
/// those lists hold at the time: over 1 GiB, between boots of the same cell, page tables reached
/// 91% to 97% of MemTotal; after the other cases of this probe in the same boot (freed THPs on the
/// lists), down to 86%. Sizes are therefore stated coarsely, with the rule in the `rounding` fact:
/// page-table sizes as the quarter of MemTotal they reached (`75..100` is at least 75%), RSS
/// figures rounded down to MiB (they are far below 1 MiB; the exact kB depend on the probe binary,
/// and on 6.12 the kill line's on per-CPU counter slack). Exact values go to the console log.
fn oom(ktap: &mut Ktap, meter: &mut Meter) -> Result<(), String> {
    let mem_total_kb = mem_total_kb()?;
    let swap_total_kb = meminfo_kb("SwapTotal:")?;
    // The probe must outlive its child, and init is never an OOM victim (oom_unkillable_task):
    // with -1000 here and +1000 in the child, the child is the only candidate (oom_badness).
    write_text("/proc/self/oom_score_adj", "-1000")?;
    let kmsg = Kmsg::open_at_end()?;

    let start = Instant::now();
    // The child only makes system calls.
    let (pid, pipe_r) = fork_with_pipe(|pipe_w| oom_child(meter, &pipe_w))?;
    // The child's reports, until it dies and the pipe reaches EOF: the last one is what it saw
    // last. Fixed-size records of less than PIPE_BUF bytes are written and read whole.
    let (mut last, mut previous) = (None, None);
    let mut record = OomReport::default();
    while read_exact(&pipe_r, as_bytes_mut(&mut record))? {
        previous = last.replace(record);
    }
    let end = wait(pid)?;
    let elapsed = start.elapsed();
    let records = kmsg.read_new()?;

    let (Some(last), Some(previous)) = (last, previous) else {
        return Err(format!("the child sent under two reports; it {end}"));
    };
    eprintln!(
        "demand_paging: oom: child ended after {} ms; last report: {} touches, VmPTE {} kB, \
         RssAnon {} kB; MemTotal {mem_total_kb} kB",
        elapsed.as_millis(),
        last.touches,
        last.vmpte_kb,
        last.rss_anon_kb
    );
    let pct_of_mem_total = |kb: u64| {
        let quarter = kb * 4 / mem_total_kb;
        format!("{}..{}", quarter * 25, quarter * 25 + 25)
    };
    ktap.fact(
        "rounding",
        "*_pct_of_mem_total: the quarter of MemTotal reached (A..B: at least A%, under B%); \
         kill.badness_computed_from_kill_line.*_pct: the tenth of the oom_badness score that the kill line's \
         figures give (A..B likewise); \
         *_mib: rounded down",
    );
    ktap.fact("child.end", end);
    ktap.fact("child.first_touch_mapped_as", MAPPED_AS.get(last.mapped_as as usize).copied().unwrap_or("?"));
    // Exact: 512 PTE tables (or deposited tables) and one PMD table per 512 touches.
    ktap.fact("child.vmpte_kb_per_512_touches", last.vmpte_kb - previous.vmpte_kb);
    ktap.fact("child.last_report.vmpte_pct_of_mem_total", pct_of_mem_total(last.vmpte_kb));
    ktap.fact("child.last_report.rss_anon_mib", last.rss_anon_kb / 1024);

    match records.iter().find_map(|r| OomInvocation::parse(r)) {
        Some(invoked) => {
            ktap.fact("invoked.by", invoked.comm);
            // Not the allocation's gfp mask or order: which allocation finds memory exhausted first
            // is a race between the child's page-table allocations (GFP_PGTABLE_USER, plus
            // __GFP_COMP from 6.5's pagetable_alloc) and whatever else the kernel allocates at that
            // moment — seen once on 6.12-minimal+thp-never: a slab page, GFP_KERNEL|__GFP_COMP. The
            // console log keeps the kernel's line.
        }
        None => ktap.fact("invoked", "no 'invoked oom-killer' line"),
    }
    match records.iter().find_map(|r| OomKill::parse(r)) {
        Some(kill) => {
            eprintln!("demand_paging: oom: exact kill line: {}", kill.line);
            let rss_kb = kill.anon_rss_kb + kill.file_rss_kb + kill.shmem_rss_kb;
            ktap.fact("kill.comm", kill.comm);
            ktap.fact("kill.total_vm_gib", kill.total_vm_kb >> 20);
            ktap.fact("kill.anon_rss_mib", kill.anon_rss_kb / 1024);
            ktap.fact("kill.file_rss_mib", kill.file_rss_kb / 1024);
            ktap.fact("kill.shmem_rss_mib", kill.shmem_rss_kb / 1024);
            ktap.fact("kill.uid", kill.uid);
            ktap.fact("kill.pgtables_pct_of_mem_total", pct_of_mem_total(kill.pgtables_kb));
            // The page tables' share of RSS + page tables, the part of oom_badness's score that
            // memory use makes, in whole percent (rounded down). Not the share of the score: that
            // has the oom_score_adj term too (below).
            ktap.fact("kill.pgtables_pct_of_rss_plus_pgtables", kill.pgtables_kb * 100 / (kill.pgtables_kb + rss_kb));
            match Badness::of(&kill, mem_total_kb, swap_total_kb) {
                Ok(badness) => {
                    eprintln!(
                        "demand_paging: oom: badness {} pages = rss {} + pgtables {} + adj term {} \
                         (totalpages {})",
                        badness.total(),
                        badness.rss,
                        badness.pgtables,
                        badness.adj_term,
                        badness.totalpages
                    );
                    let tenth = |part: i64| {
                        let tenths = part * 10 / badness.total();
                        format!("{}..{}", tenths * 10, tenths * 10 + 10)
                    };
                    ktap.fact("kill.badness_computed_from_kill_line.pgtables_pct", tenth(badness.pgtables));
                    ktap.fact("kill.badness_computed_from_kill_line.oom_score_adj_pct", tenth(badness.adj_term));
                    ktap.fact("kill.badness_computed_from_kill_line.rss_pct", tenth(badness.rss));
                }
                Err(why) => ktap.fact("kill.badness_computed_from_kill_line", why),
            }
            ktap.fact("kill.oom_score_adj", kill.oom_score_adj);
        }
        None => ktap.fact("kill", "no 'Out of memory: Killed process' line"),
    }
    Ok(())
}

/// The child's side of the OOM experiment; returns its exit code if it is not killed.
fn oom_child(meter: &mut Meter, pipe: &File) -> i32 {
    let fail = |what: &str| {
        eprintln!("demand_paging: oom child: {what}");
        2
    };
    if let Err(e) = write_text("/proc/self/oom_score_adj", "1000") {
        return fail(&e);
    }
    let map = match Mapping::fixed(OOM_BASE, OOM_LEN, RO, libc::MAP_NORESERVE) {
        Ok(map) => map,
        Err(e) => return fail(&e),
    };
    let mut report = OomReport::default();
    for i in 0..OOM_LEN / HUGE {
        read_bytes(map.addr + i * HUGE, HUGE, 1);
        if i == 0 {
            let kind = meter.mapped_as(map.addr).unwrap_or("?");
            report.mapped_as = MAPPED_AS.iter().position(|&k| k == kind).unwrap_or(usize::MAX) as u64;
        }
        if (i + 1) % OOM_REPORT_EVERY == 0 {
            // Not a full sample: smaps would walk every PTE table of the mapping each time.
            let status = match meter.status() {
                Ok(status) => status,
                Err(e) => return fail(&e),
            };
            report.touches = (i + 1) as u64;
            report.vmpte_kb = status.vmpte_kb as u64;
            report.rss_anon_kb = status.rss_anon_kb as u64;
            write_all(pipe, as_bytes(&report));
        }
    }
    // Read the whole terabyte without being killed: the parent reports the exit code.
    0
}

/// The pid of the kernel thread named `comm`, if it runs.
fn kernel_thread(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (name.trim_end() == comm).then_some(pid)
    })
}

/// The victim's oom_badness score (mm/oom_kill.c), in pages, rebuilt from its kill line. The
/// formula is the same from 5.10 to 7.3:
///
/// ```text
/// points = rss + swap entries + mm_pgtables_bytes / PAGE_SIZE
/// points += oom_score_adj * (totalpages / 1000)
/// ```
///
/// where rss is file + anon + shmem pages (`get_mm_rss`; 7.x sums the per-CPU counters exactly,
/// `get_mm_rss_sum`), `mm_pgtables_bytes` counts PTE, PMD and PUD tables (and tables deposited for
/// huge PMDs) alike since 4.15, and, for a global OOM (`constrained_alloc`, CONSTRAINT_NONE),
/// totalpages = totalram_pages + total_swap_pages, which /proc/meminfo shows as MemTotal and
/// SwapTotal. The adj term divides before it multiplies, so it is a whole number of thousands of
/// pages. At oom_score_adj 1000 it is about totalpages: about half the score, as much as page tables
/// filling memory add. The kill line does not show swap entries: with swap configured the score is
/// not computable from it.
struct Badness {
    rss: i64,
    pgtables: i64,
    adj_term: i64,
    totalpages: i64,
}

impl Badness {
    fn of(kill: &OomKill, mem_total_kb: u64, swap_total_kb: u64) -> Result<Self, String> {
        if swap_total_kb != 0 {
            return Err("not computable: SwapTotal is not 0, and the kill line shows no swap entries".into());
        }
        let pages = |kb: u64| (kb / 4) as i64;
        let totalpages = pages(mem_total_kb) + pages(swap_total_kb);
        let badness = Badness {
            rss: pages(kill.anon_rss_kb + kill.file_rss_kb + kill.shmem_rss_kb),
            pgtables: pages(kill.pgtables_kb),
            adj_term: kill.oom_score_adj * (totalpages / 1000),
            totalpages,
        };
        if badness.total() <= 0 || badness.adj_term < 0 {
            return Err(format!("not computable: score {} with oom_score_adj {}", badness.total(), kill.oom_score_adj));
        }
        Ok(badness)
    }

    fn total(&self) -> i64 {
        self.rss + self.pgtables + self.adj_term
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

/// One reading of the counters a case looks at.
#[derive(Clone, Copy, Default)]
struct Sample {
    minflt: i64,
    rss_anon_kb: i64,
    vmpte_kb: i64,
    /// The mapping's /proc/self/smaps entry; all zero when there is no mapping at its address.
    smaps: SmapsCounts,
}

/// The part of a [`Sample`] that /proc/self/status gives.
#[derive(Clone, Copy, Default)]
struct Status {
    rss_anon_kb: i64,
    vmpte_kb: i64,
}

/// The part of a [`Sample`] that the mapping's /proc/self/smaps entry gives.
#[derive(Clone, Copy, Default)]
struct SmapsCounts {
    rss_kb: i64,
    anonymous_kb: i64,
    anon_huge_kb: i64,
}

/// Prints the change from `before` to `after` as facts named `STEP.*`.
fn report(ktap: &mut Ktap, step: &str, before: &Sample, after: &Sample) {
    let deltas = [
        ("minflt", after.minflt - before.minflt),
        ("rss_anon_kb", after.rss_anon_kb - before.rss_anon_kb),
        ("vmpte_kb", after.vmpte_kb - before.vmpte_kb),
        ("smaps_rss_kb", after.smaps.rss_kb - before.smaps.rss_kb),
        ("smaps_anonymous_kb", after.smaps.anonymous_kb - before.smaps.anonymous_kb),
        ("smaps_anon_huge_kb", after.smaps.anon_huge_kb - before.smaps.anon_huge_kb),
    ];
    for (name, delta) in deltas {
        ktap.fact(&format!("{step}.{name}"), delta);
    }
}

/// Takes [`Sample`]s and classifies pages, without allocating.
struct Meter {
    /// Holds one /proc file at a time; allocated and touched once, so that reading into it never
    /// faults.
    buf: Vec<u8>,
    /// The page [`Meter::sync_rss`] zaps. Never unmapped.
    scratch: Mapping,
    kpageflags: OwnedFd,
}

impl Meter {
    fn new() -> Result<Self, String> {
        let mut buf = vec![0u8; 256 << 10];
        // vec! of zeros may come from calloc's fresh, untouched mmap: write every page now.
        buf.fill(1);
        std::hint::black_box(&mut buf);

        let scratch = Mapping::fixed(SCRATCH_ADDR, PAGE, RW, 0)?;
        // The first write allocates the page tables down to the PTE table, which stay after the
        // page itself is zapped: sync_rss needs a PTE table to walk (see there).
        write_bytes(scratch.addr, PAGE, 1);
        scratch.advise(libc::MADV_DONTNEED)?;

        let meter = Meter { buf, scratch, kpageflags: open(c"/proc/kpageflags", libc::O_RDONLY)? };
        Ok(meter)
    }

    /// Folds Linux 6.1's per-task RSS cache into the mm's counters.
    ///
    /// 6.1 (`SPLIT_RSS_COUNTING`) adds faults to `current->rss_stat` and folds that into the mm's
    /// counters every 64 faults, which is all /proc/self/status shows. Unmapping pages folds it
    /// too: `zap_pte_range` ends with `add_mm_rss_vec`, which calls `sync_mm_rss`. MADV_DONTNEED of
    /// the scratch page runs `zap_pte_range` over its (empty) PTE table without a fault or any
    /// other change. 6.2 and later count in per-CPU counters that /proc sums; this is a no-op there.
    fn sync_rss(&self) -> Result<(), String> {
        self.scratch.advise(libc::MADV_DONTNEED)
    }

    /// Reads every counter; `region` is the start address of the mapping whose smaps entry counts.
    fn sample(&mut self, region: usize) -> Result<Sample, String> {
        let Status { rss_anon_kb, vmpte_kb } = self.status()?;
        let n = read_file(c"/proc/self/smaps", &mut self.buf)?;
        let smaps = smaps_counts(&self.buf[..n], region)?;
        // Last, so that anything the reads above might fault in would show (they fault nothing).
        let minflt = minor_faults()?;
        Ok(Sample { minflt, rss_anon_kb, vmpte_kb, smaps })
    }

    /// RssAnon and VmPTE only. Much cheaper than [`Meter::sample`] for a mapping with many page
    /// tables: smaps walks every PTE of the mapping.
    fn status(&mut self) -> Result<Status, String> {
        self.sync_rss()?;
        let n = read_file(c"/proc/self/status", &mut self.buf)?;
        let status = &self.buf[..n];
        Ok(Status { rss_anon_kb: status_kb(status, "RssAnon:")?, vmpte_kb: status_kb(status, "VmPTE:")? })
    }

    /// What the page table maps at `addr`: one of [`MAPPED_AS`], from /proc/self/pagemap (is it
    /// present, which PFN) and /proc/kpageflags (what that page is; fs/proc/page.c
    /// `stable_page_flags` marks both the zero page and the huge zero page ZERO_PAGE, and the
    /// latter and anonymous THPs THP).
    fn mapped_as(&self, addr: usize) -> Result<&'static str, String> {
        const PRESENT: u64 = 1 << 63;
        const PFN_MASK: u64 = (1 << 55) - 1;
        const KPF_ANON: u64 = 1 << 12;
        const KPF_THP: u64 = 1 << 22;
        const KPF_ZERO_PAGE: u64 = 1 << 24;

        // Opened for each question: an open pagemap stays bound to the mm it was opened for, and
        // the OOM child asks about its own. PFNs are shown to CAP_SYS_ADMIN only
        // (fs/proc/task_mmu.c `pagemap_open`): the probe runs as root.
        let pagemap = open(c"/proc/self/pagemap", libc::O_RDONLY)?;
        let entry = pread_u64(&pagemap, (addr / PAGE * 8) as u64, "/proc/self/pagemap")?;
        if entry & PRESENT == 0 {
            return Ok("not_present");
        }
        let pfn = entry & PFN_MASK;
        if pfn == 0 {
            return Err("/proc/self/pagemap shows no PFNs (no CAP_SYS_ADMIN?)".into());
        }
        let flags = pread_u64(&self.kpageflags, pfn * 8, "/proc/kpageflags")?;
        Ok(match (flags & KPF_ZERO_PAGE != 0, flags & KPF_THP != 0, flags & KPF_ANON != 0) {
            (true, true, _) => "huge_zero_page",
            (true, false, _) => "zero_page",
            (false, true, true) => "anon_thp",
            (false, false, true) => "anon_page",
            _ => "other",
        })
    }
}

/// Every answer of [`Meter::mapped_as`], so that the OOM child can send one as a number.
const MAPPED_AS: [&str; 7] = ["not_present", "huge_zero_page", "zero_page", "anon_thp", "anon_page", "other", "?"];

/// The value in kB of a `NAME:   N kB` line of /proc/self/status.
fn status_kb(status: &[u8], name: &str) -> Result<i64, String> {
    field_kb(status, name).ok_or_else(|| format!("/proc/self/status: no {name} line in kB"))
}

/// The counters of the smaps entry of the mapping that starts at `start`, or zeros if there is none.
fn smaps_counts(smaps: &[u8], start: usize) -> Result<SmapsCounts, String> {
    let Some(entry) = SmapsEntry::starting_at(smaps, start) else {
        return Ok(SmapsCounts::default());
    };
    match (entry.kb("Rss:"), entry.kb("Anonymous:"), entry.kb("AnonHugePages:")) {
        (Some(rss_kb), Some(anonymous_kb), Some(anon_huge_kb)) => {
            Ok(SmapsCounts { rss_kb, anonymous_kb, anon_huge_kb })
        }
        _ => Err("/proc/self/smaps: entry without Rss, Anonymous and AnonHugePages in kB".into()),
    }
}

// SAFETY: #[repr(C)], four u64.
unsafe impl Plain for OomReport {}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
