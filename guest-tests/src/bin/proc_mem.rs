//! Probe for suite `proc_mem`: what a write through `/proc/PID/mem` does where the page tables say
//! the memory is not writable, and how the other ways of writing into a process compare.
//!
//! A `/proc/PID/mem` access walks the target's page tables with `access_remote_vm()`. Unless the
//! kernel says otherwise it passes FOLL_FORCE, which lets a write break copy-on-write in a private
//! mapping that is not writable (mm/gup.c, `check_vma_flags`). Linux 6.12 and the stable kernels
//! (Debian's 6.1.192 among them) added `proc_mem.force_override=always|ptrace|never` and
//! CONFIG_PROC_MEM_*, which decide when FOLL_FORCE is passed (fs/proc/base.c, `proc_mem_foll_force`);
//! older kernels (Debian's 5.10.223) always pass it and ignore the parameter, and after 6.12 the
//! upstream default (security/Kconfig) moved from ALWAYS_FORCE to FORCE_PTRACE (Debian's 7.2). So
//! `setup` states both the word on the command line and the mode the kernel is observed to be in.
//! The suite runs under each setting; the facts say what happened, never what should have. Where a
//! case cannot be set up on a kernel (no mseal, no userfaultfd), its facts say `not applicable: …`
//! rather than describe some other case.
//!
//! Every experiment runs in a process of its own (see [`isolated`]): several of them change the
//! probe's own memory (its code, its vDSO) or may crash or hang, and a fresh copy of the address
//! space also keeps the `Anonymous:` counts of one test from depending on another.
//!
//! A result the kernel gives — an errno, a short count, a signal — is a fact and the test is `ok`; a
//! test is `not ok` only if the experiment itself could not be set up. Facts never contain
//! addresses, PIDs or timings: values are byte counts, errno and signal names, and the words read
//! back from memory that the probe itself wrote.

use std::ffi::c_void;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use ksnap_guest::{cmdline_param, errno_name, signal_name, Ktap};

/// x86_64 only (the code-patching tests are x86 assembly), so the page size is known.
const PAGE: usize = 4096;

/// What the probe writes, little-endian: it reads back as this word.
const PATTERN: [u8; 4] = [0x40, 0x41, 0x41, 0x41];

/// An address in the kernel half of the address space (where x86_64 kernels have their text).
const KERNEL_HALF: usize = 0xffff_ffff_8100_0000;

/// How long one test may take before its process is killed (SIGALRM). Every test takes well under
/// a second even under TCG; this only stops a hang from eating the probe's whole timeout.
const TEST_TIMEOUT_S: u32 = 20;

/// How long `uffd_wp` waits for the userfault of its child (which comes within milliseconds).
const UFFD_EVENT_TIMEOUT_MS: i32 = 10_000;

type Test = fn(&mut Facts) -> Result<(), String>;

const TESTS: [(&str, Test); 14] = [
    ("setup", setup),
    ("ro_private_anon", ro_private_anon),
    ("ro_private_file", ro_private_file),
    ("ro_shared", ro_shared),
    ("prot_none", prot_none),
    ("own_code_patch", own_code_patch),
    ("own_code_int3", own_code_int3),
    ("bad_addresses", bad_addresses),
    ("read_into_hole", read_into_hole),
    ("vdso_vvar", vdso_vvar),
    ("lseek", lseek),
    ("other_writers", other_writers),
    ("mseal", mseal),
    ("uffd_wp", uffd_wp),
];

fn main() {
    let mut ktap = Ktap::begin(TESTS.len());
    let mut failed = false;
    for (name, test) in TESTS {
        let report = isolated(test);
        for (key, value) in &report.facts {
            ktap.fact(key, value);
        }
        failed |= !ktap.report(name, &report.result);
    }
    std::process::exit(i32::from(failed));
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// The setting under test: the word the kernel command line gives (`requested`), and the mode the
/// kernel is really in (`effective`), found by trying the two writes that tell the modes apart
/// (fs/proc/base.c, `proc_mem_foll_force`): under `always` every /proc/PID/mem write is forced, so
/// one through /proc/self/mem into PROT_READ private memory lands; under `ptrace` only the
/// target's tracer's is, so that one fails and a tracer's lands; under `never` neither does.
///
/// The word alone says nothing of the mode: a kernel without the parameter (before 6.12 and its
/// stable backports: Debian's 5.10.223 has none) ignores it, and CONFIG_PROC_MEM_FORCE_PTRACE or
/// CONFIG_PROC_MEM_NO_FORCE change the mode with nothing on the command line.
fn setup(facts: &mut Facts) -> Result<(), String> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page != PAGE as libc::c_long {
        return Err(format!("page size is {page}, the probe assumes {PAGE}"));
    }
    let requested = cmdline_param("proc_mem.force_override").map_err(|e| format!("/proc/cmdline: {e}"))?;
    facts.fact("force_override.requested", requested.as_deref().unwrap_or("unset"));

    let self_write = forced_self_write()?;
    let tracer_write = forced_tracer_write()?;
    facts.fact("force_override.self_write", &self_write);
    facts.fact("force_override.tracer_write", &tracer_write);
    let effective = match (self_write.landed(), tracer_write.landed()) {
        (true, true) => "always",
        (false, true) => "ptrace",
        (false, false) => "never",
        // No mode of proc_mem_foll_force forces a write for anyone but not for the tracer.
        (true, false) => "none of always|ptrace|never",
    };
    facts.fact("force_override.effective", effective);
    facts.fact(
        "force_override.effective.determined_by",
        "writes into PROT_READ private anonymous memory: always if one through /proc/self/mem lands, \
         else ptrace if one by the target's tracer through /proc/PID/mem lands, else never",
    );
    facts.fact(
        "force_override.requested_in_force",
        match requested.as_deref() {
            None => "nothing requested".to_string(),
            Some(word) if word == effective => "yes".to_string(),
            Some(word) => format!("no: {word} was requested, the kernel behaves as {effective}"),
        },
    );
    Ok(())
}

/// A write and whether its bytes landed: the write's result, then what a read found there.
struct ForcedWrite {
    write: Transfer,
    readback: String,
}

impl ForcedWrite {
    fn landed(&self) -> bool {
        self.write.is_complete() && self.readback == hex(u32::from_le_bytes(PATTERN))
    }
}

impl Display for ForcedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, readback {}", self.write, self.readback)
    }
}

/// [`PATTERN`] written through /proc/self/mem into a private anonymous page mapped PROT_READ.
fn forced_self_write() -> Result<ForcedWrite, String> {
    let mem = Mem::open_self()?;
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    let write = mem.write(map.addr, &PATTERN);
    Ok(ForcedWrite { write, readback: map.word(0)? })
}

/// [`PATTERN`] written through /proc/CHILD/mem, by the child's tracer (PTRACE_SEIZE: traced and
/// running, which is all `proc_mem_foll_force` asks of a tracer), into a private anonymous page the
/// child inherited mapped PROT_READ.
fn forced_tracer_write() -> Result<ForcedWrite, String> {
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    let child = Child::spawn(|| loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    })?;
    let mem = Mem::open(child.pid)?;
    ptrace(libc::PTRACE_SEIZE, child.pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    let write = mem.write(map.addr, &PATTERN);
    let mut word = [0u8; 4];
    let readback = match process_vm_read(child.pid, map.addr, &mut word) {
        Ok(()) => hex(u32::from_le_bytes(word)),
        Err(e) => format!("unreadable: {e}"),
    };
    // Killing the child (on drop) ends the tracing too.
    drop(child);
    Ok(ForcedWrite { write, readback })
}

/// Case 1: a private anonymous page mapped PROT_READ. With FOLL_FORCE, `check_vma_flags` (mm/gup.c)
/// lets a write into a private (copy-on-write) mapping through, and the write lands in a new
/// anonymous page; without it, the write is refused and `mem_rw` returns EIO.
fn ro_private_anon(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    facts.fact("anonymous_kb_before", anonymous_kb(map.addr)?);
    facts.fact("write", mem.write(map.addr, &PATTERN));
    facts.fact("readback", map.word(0)?);
    facts.fact("anonymous_kb_after", anonymous_kb(map.addr)?);
    Ok(())
}

/// Case 2: a MAP_PRIVATE PROT_READ mapping of a file opened O_RDONLY: private mappings keep
/// VM_MAYWRITE whatever the open mode (mm/mmap.c, `do_mmap`), so a forced write copies the page.
fn ro_private_file(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let file = TestFile::create("ro_private_file")?;
    let ro = file.open(false)?;
    let map = Mapping::file(&ro, libc::PROT_READ, libc::MAP_PRIVATE)?;
    // A second private mapping of the same file, made (and faulted in) before the write.
    let other = Mapping::file(&ro, libc::PROT_READ, libc::MAP_PRIVATE)?;
    facts.fact("before", map.word(0)?);
    facts.fact("second_mapping_before", other.word(0)?);
    facts.fact("anonymous_kb_before", anonymous_kb(map.addr)?);
    facts.fact("write", mem.write(map.addr, &PATTERN));
    facts.fact("readback", map.word(0)?);
    facts.fact("anonymous_kb_after", anonymous_kb(map.addr)?);
    facts.fact("second_mapping_after", other.word(0)?);
    facts.fact("file_after", file.word()?);
    Ok(())
}

/// Case 3: shared mappings that are not writable: a file opened O_RDONLY, the same file opened
/// O_RDWR (but mapped PROT_READ), and shared anonymous memory. None is a copy-on-write mapping
/// (`is_cow_mapping`), which FOLL_FORCE writes require.
fn ro_shared(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let file = TestFile::create("ro_shared")?;
    for (key, writable) in [("file_rdonly", false), ("file_rdwr", true)] {
        let handle = file.open(writable)?;
        let map = Mapping::file(&handle, libc::PROT_READ, libc::MAP_SHARED)?;
        facts.fact(&format!("{key}.write"), mem.write(map.addr, &PATTERN));
        facts.fact(&format!("{key}.readback"), map.word(0)?);
        facts.fact(&format!("{key}.file_after"), file.word()?);
    }
    let map = Mapping::new(PAGE, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None)?;
    facts.fact("anon.write", mem.write(map.addr, &PATTERN));
    facts.fact("anon.readback", map.word(0)?);
    Ok(())
}

/// Case 4: PROT_NONE private anonymous memory, read and written through /proc/self/mem, then made
/// readable and read directly.
fn prot_none(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(PAGE, libc::PROT_NONE)?;
    let mut word = [0u8; 4];
    let read = mem.read(map.addr, &mut word);
    facts.fact("read", &read);
    // Present in every variant, so that the snapshots of all cells have the same keys.
    facts.fact("read_value", if read.is_complete() { hex(u32::from_le_bytes(word)) } else { "none".into() });
    facts.fact("anonymous_kb_after_read", anonymous_kb(map.addr)?);
    facts.fact("write", mem.write(map.addr, &PATTERN));
    facts.fact("anonymous_kb_after_write", anonymous_kb(map.addr)?);
    map.protect(libc::PROT_READ).map_err(|e| format!("mprotect(PROT_READ): {e}"))?;
    facts.fact("direct_read_after_mprotect", map.word(0)?);
    Ok(())
}

// Two tiny functions in the probe's own text: the targets of the code-patching tests. Written in
// assembly so that their bytes are known (`mov eax, imm32` is B8 followed by the immediate) and the
// compiler cannot inline or fold a call to them.
core::arch::global_asm!(
    ".pushsection .text",
    ".p2align 6",
    ".globl ksnap_proc_mem_returns_1",
    ".type ksnap_proc_mem_returns_1, @function",
    "ksnap_proc_mem_returns_1:",
    "    mov eax, 1",
    "    ret",
    ".size ksnap_proc_mem_returns_1, . - ksnap_proc_mem_returns_1",
    ".p2align 6",
    ".globl ksnap_proc_mem_returns_7",
    ".type ksnap_proc_mem_returns_7, @function",
    "ksnap_proc_mem_returns_7:",
    "    mov eax, 7",
    "    ret",
    ".size ksnap_proc_mem_returns_7, . - ksnap_proc_mem_returns_7",
    ".popsection",
);

extern "C" {
    fn ksnap_proc_mem_returns_1() -> u32;
    fn ksnap_proc_mem_returns_7() -> u32;
}

/// The address of an assembly function above, after checking that it starts with `mov eax, imm`.
fn code_address(function: unsafe extern "C" fn() -> u32, imm: u8) -> Result<usize, String> {
    let addr = function as usize;
    // SAFETY: `addr` is the start of a function of 6 bytes in the executable's text, which is mapped
    // readable for the life of the process.
    let bytes = unsafe { std::ptr::read_volatile(addr as *const [u8; 6]) };
    if bytes != [0xb8, imm, 0, 0, 0, 0xc3] {
        return Err(format!("unexpected code bytes {bytes:02x?} (mov eax, {imm}; ret expected)"));
    }
    Ok(addr)
}

/// Case 5a: patch the immediate of `mov eax, 1` in the probe's own code to 42 and call it; the
/// executable file must not change.
fn own_code_patch(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let addr = code_address(ksnap_proc_mem_returns_1, 1)?;
    let exe_before = std::fs::read("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    facts.fact("text_anonymous_kb_before", anonymous_kb(addr)?);
    facts.fact("write", mem.write(addr + 1, &[42]));
    // SAFETY: the function is `mov eax, imm32; ret` whatever the immediate is; the write changed at
    // most that one byte of it.
    facts.fact("call", format!("returned {}", unsafe { ksnap_proc_mem_returns_1() }));
    facts.fact("text_anonymous_kb_after", anonymous_kb(addr)?);
    let exe_after = std::fs::read("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    facts.fact("exe_file", if exe_after == exe_before { "unchanged" } else { "changed" });
    Ok(())
}

/// Case 5b: write an int3 (0xCC) over the first byte of a function, then call it in a child.
fn own_code_int3(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let addr = code_address(ksnap_proc_mem_returns_7, 7)?;
    facts.fact("write", mem.write(addr, &[0xcc]));
    // The child inherits the patched (or not) text; if the breakpoint is there, it dies of it.
    // SAFETY: the function is either intact or starts with int3, which traps before running
    // anything else.
    let child = Child::spawn(|| format!("returned {}", unsafe { ksnap_proc_mem_returns_7() }))?;
    facts.fact("call_in_child", child.finish());
    Ok(())
}

/// Case 6: addresses where nothing is mapped: a hole just unmapped, address 0, and an address in
/// the kernel half (reached with lseek + read/write, and tried with pread/pwrite too).
fn bad_addresses(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(2 * PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    map.unmap_tail(PAGE).map_err(|e| format!("munmap: {e}"))?;
    let hole = map.addr + PAGE;
    let mut buf = [0u8; 8];
    for (key, addr) in [("unmapped", hole), ("null", 0), ("kernel", KERNEL_HALF)] {
        facts.fact(&format!("{key}.read"), mem.read(addr, &mut buf));
        facts.fact(&format!("{key}.write"), mem.write(addr, &buf));
    }
    facts.fact("kernel.pread", Transfer::of(mem.file.read_at(&mut buf, KERNEL_HALF as u64), buf.len()));
    facts.fact("kernel.pwrite", Transfer::of(mem.file.write_at(&buf, KERNEL_HALF as u64), buf.len()));
    Ok(())
}

/// Case 7: a read (and a write) that starts in a mapping and runs into the hole after it, then a
/// read that starts in the hole.
fn read_into_hole(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(2 * PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    map.fill(0x5a)?;
    map.unmap_tail(PAGE).map_err(|e| format!("munmap: {e}"))?;
    let mut buf = vec![0u8; 2 * PAGE];
    facts.fact("read_across", mem.read(map.addr, &mut buf));
    facts.fact("write_across", mem.write(map.addr, &buf));
    facts.fact("read_at_hole", mem.read(map.addr + PAGE, &mut buf));
    Ok(())
}

/// Case 8: the vDSO's data ([vvar]) and code ([vdso]) mappings, read and written one byte each.
fn vdso_vvar(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| format!("/proc/self/maps: {e}"))?;
    for name in ["vvar", "vdso"] {
        let start = maps
            .lines()
            .find(|line| line.ends_with(&format!(" [{name}]")))
            .and_then(|line| line.split('-').next())
            .and_then(|start| usize::from_str_radix(start, 16).ok())
            .ok_or_else(|| format!("no [{name}] mapping in /proc/self/maps"))?;
        // [vvar] is VM_PFNMAP: it has no struct pages, so no anonymous ones either; only [vdso]'s
        // count says something.
        let count_anonymous = name == "vdso";
        if count_anonymous {
            facts.fact(&format!("{name}.anonymous_kb_before"), anonymous_kb(start)?);
        }
        let mut byte = [0u8];
        facts.fact(&format!("{name}.read"), mem.read(start, &mut byte));
        // Write back the byte just read, so that a write that succeeds changes no content (if the
        // read failed, byte is 0: the write is reported either way, and this process is discarded).
        facts.fact(&format!("{name}.write"), mem.write(start, &byte));
        if count_anonymous {
            facts.fact(&format!("{name}.anonymous_kb_after"), anonymous_kb(start)?);
        }
    }
    Ok(())
}

/// Case 9: lseek on /proc/self/mem (fs/proc/base.c, `mem_lseek`: SEEK_SET and SEEK_CUR only, any
/// 64-bit position, returned as the syscall's value).
fn lseek(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let seek = |offset: i64, whence: libc::c_int| -> Result<i64, Errno> {
        // SAFETY: lseek on a file descriptor this function owns.
        match unsafe { libc::lseek(mem.file.as_raw_fd(), offset, whence) } {
            -1 => Err(Errno::last()),
            position => Ok(position),
        }
    };
    let show = |result: Result<i64, Errno>| match result {
        Ok(position) => position.to_string(),
        Err(errno) => errno.to_string(),
    };
    facts.fact("seek_set_4096", show(seek(4096, libc::SEEK_SET)));
    facts.fact("seek_cur_plus_16", show(seek(16, libc::SEEK_CUR)));
    facts.fact("seek_end_0", show(seek(0, libc::SEEK_END)));
    facts.fact("seek_data_0", show(seek(0, libc::SEEK_DATA)));
    // An offset in the kernel half is negative as an off_t: reported as whether the position
    // returned is the offset asked for, not as the number.
    let high = KERNEL_HALF as i64;
    facts.fact(
        "seek_set_kernel_half",
        match seek(high, libc::SEEK_SET) {
            Ok(position) if position == high => "returns the offset".to_string(),
            Ok(_) => "returns another position".to_string(),
            Err(errno) => errno.to_string(),
        },
    );
    // Offset -1: mem_lseek sets the position to -1 and returns it, and -1 is also how a failure
    // with EPERM (1) comes back from the syscall, so libc's lseek reports errno EPERM. The raw
    // return value cannot tell the two apart either; the next SEEK_CUR of +1 can: it returns 0
    // only from position -1.
    let fd = mem.file.as_raw_fd();
    let raw = raw_lseek(fd, -1, libc::SEEK_SET);
    facts.fact("seek_set_minus_1.raw_return", raw);
    let after = raw_lseek(fd, 1, libc::SEEK_CUR);
    facts.fact("seek_set_minus_1.then_seek_cur_plus_1.raw_return", after);
    facts.fact(
        "seek_set_minus_1",
        match (raw, after) {
            (-1, 0) => "position set to -1 and returned".to_string(),
            (errno @ -4095..=-1, _) => format!("failed: {}", Errno(-errno as i32)),
            (position, _) => format!("position {position}"),
        },
    );
    facts.fact("seek_set_minus_1.libc_lseek", match seek(-1, libc::SEEK_SET) {
        Ok(position) => format!("returns {position}"),
        Err(errno) => format!("returns -1, errno {errno}"),
    });
    Ok(())
}

/// lseek(2) without libc: the kernel's return value as it is, a position or -errno (libc's lseek
/// and syscall(3) both turn -4095..-1 into -1 and errno).
fn raw_lseek(fd: libc::c_int, offset: i64, whence: libc::c_int) -> i64 {
    let ret: i64;
    // SAFETY: the lseek system call reads no memory of this process; syscall clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_lseek => ret,
            in("rdi") i64::from(fd),
            in("rsi") offset,
            in("rdx") i64::from(whence),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Case 10: the same read-only write by the other routes: process_vm_writev (to itself and to a
/// child), PTRACE_POKEDATA, and /proc/CHILD/mem with and without tracing the child.
///
/// Each route writes [`PATTERN`] at its own offset of a page filled with 0x11 and mapped PROT_READ,
/// so every `.readback` shows whether that route's write landed. process_vm_writev never passes
/// FOLL_FORCE (mm/process_vm_access.c); PTRACE_POKEDATA always does (kernel/ptrace.c,
/// `generic_ptrace_pokedata`), whatever proc_mem.force_override says; /proc/PID/mem under `ptrace`
/// passes it only while the writer is the target's tracer (fs/proc/base.c, `proc_mem_foll_force`).
fn other_writers(facts: &mut Facts) -> Result<(), String> {
    // Into itself.
    let own = Mapping::anon(PAGE, libc::PROT_READ)?;
    facts.fact("process_vm_writev_self", process_vm_write(std::process::id() as libc::pid_t, own.addr, &PATTERN));
    facts.fact("process_vm_writev_self.readback", own.word(0)?);

    // Into a child that sits in pause().
    let mut page = Mapping::anon(PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    page.fill(0x11)?;
    page.protect(libc::PROT_READ).map_err(|e| format!("mprotect(PROT_READ): {e}"))?;
    let child = Child::spawn(|| loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    })?;
    let pid = child.pid;
    let readback = |offset: usize| -> String {
        let mut word = [0u8; 4];
        match process_vm_read(pid, page.addr + offset, &mut word) {
            Ok(()) => hex(u32::from_le_bytes(word)),
            Err(e) => format!("unreadable: {e}"),
        }
    };
    // Opened once, before any tracing: proc_mem_foll_force looks at the tracer at every read and
    // write, not at open.
    let mem = Mem::open(pid)?;

    facts.fact("proc_mem_untraced", mem.write(page.addr, &PATTERN));
    facts.fact("proc_mem_untraced.readback", readback(0));
    facts.fact("process_vm_writev_child", process_vm_write(pid, page.addr + 8, &PATTERN));
    facts.fact("process_vm_writev_child.readback", readback(8));

    // Traced (PTRACE_SEIZE) but still running.
    ptrace(libc::PTRACE_SEIZE, pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    facts.fact("proc_mem_seized_running", mem.write(page.addr + 16, &PATTERN));
    facts.fact("proc_mem_seized_running.readback", readback(16));
    let poke = u64::from(u32::from_le_bytes(PATTERN)) | 0x1111_1111_0000_0000;
    facts.fact("pokedata_running", done(ptrace(libc::PTRACE_POKEDATA, pid, page.addr + 24, poke as usize)));
    facts.fact("pokedata_running.readback", readback(24));

    // Traced and stopped.
    ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0).map_err(|e| format!("PTRACE_INTERRUPT: {e}"))?;
    wait_stopped(pid)?;
    facts.fact("proc_mem_seized_stopped", mem.write(page.addr + 32, &PATTERN));
    facts.fact("proc_mem_seized_stopped.readback", readback(32));
    facts.fact("pokedata_stopped", done(ptrace(libc::PTRACE_POKEDATA, pid, page.addr + 40, poke as usize)));
    facts.fact("pokedata_stopped.readback", readback(40));
    ptrace(libc::PTRACE_DETACH, pid, 0, 0).map_err(|e| format!("PTRACE_DETACH: {e}"))?;
    drop(child);

    // The child's writes broke copy-on-write in the child only.
    facts.fact("parent_copy", page.word(0)?);
    Ok(())
}

/// Case 11: mseal (Linux 6.10) on a read-only page, then what may still be done to it. The seal is
/// checked by mprotect, munmap and the discarding madvise calls (mm/vma.h `can_modify_vma`,
/// mm/mseal.c `can_modify_vma_madv`), not by get_user_pages.
///
/// Where mseal fails (ENOSYS before 6.10) there is no sealed page to try anything on: every other
/// fact then says so, rather than describe what an unsealed page allows.
fn mseal(facts: &mut Facts) -> Result<(), String> {
    const AFTER_SEAL: [&str; 6] = [
        "proc_mem_write",
        "proc_mem_write.readback",
        "madvise_dontneed",
        "madvise_dontneed.readback",
        "mprotect_rw",
        "munmap",
    ];
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    map.fill(0x11)?;
    map.protect(libc::PROT_READ).map_err(|e| format!("mprotect(PROT_READ): {e}"))?;
    // SAFETY: mseal takes an address range and flags; it changes no memory.
    let sealed = unsafe { libc::syscall(libc::SYS_mseal, map.addr, PAGE, 0) };
    facts.fact("mseal", status(sealed));
    if sealed != 0 {
        let reason = format!("not applicable: mseal {}", Errno::last());
        for key in AFTER_SEAL {
            facts.fact(key, &reason);
        }
        return Ok(());
    }
    facts.fact("proc_mem_write", mem.write(map.addr, &PATTERN));
    facts.fact("proc_mem_write.readback", map.word(0)?);
    // SAFETY: the range is this mapping; MADV_DONTNEED may drop its contents, which later reads
    // then see as zeros.
    let advised = unsafe { libc::madvise(map.addr as *mut c_void, PAGE, libc::MADV_DONTNEED) };
    facts.fact("madvise_dontneed", status(advised.into()));
    facts.fact("madvise_dontneed.readback", map.word(0)?);
    facts.fact("mprotect_rw", done(map.protect(libc::PROT_READ | libc::PROT_WRITE)));
    facts.fact("munmap", done(map.unmap_tail(0)));
    Ok(())
}

/// Case 12: a write through /proc/self/mem into a range write-protected with userfaultfd, and, for
/// comparison, a process_vm_writev into the same range from a child. The difference is whether the
/// fault may wait for the userfaultfd's reader (FAULT_FLAG_ALLOW_RETRY, fs/userfaultfd.c
/// `handle_userfault`): access_remote_vm's faults may not, process_vm_writev's may.
fn uffd_wp(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    // Populated first: a write-protect applies to the page-table entries that exist.
    map.fill(0x5a)?;
    // Every key after the step that failed, so that each kernel's snapshot has them all.
    const KEYS: [&str; 9] = [
        "api",
        "register_wp",
        "writeprotect",
        "proc_mem_write",
        "proc_mem_write.readback",
        "child_process_vm_writev.uffd_event",
        "unprotect",
        "child_process_vm_writev",
        "child_process_vm_writev.readback",
    ];
    let not_applicable = |facts: &mut Facts, from: usize, step: &str, errno: Errno| {
        for key in &KEYS[from..] {
            facts.fact(key, format!("not applicable: {step} {errno}"));
        }
    };
    let uffd = match Uffd::open() {
        Ok(uffd) => {
            facts.fact("userfaultfd", "ok");
            uffd
        }
        Err(errno) => {
            facts.fact("userfaultfd", errno);
            not_applicable(facts, 0, "userfaultfd", errno);
            return Ok(());
        }
    };
    // Each step needs the one before: the first one refused ends the test (the refusal is the result).
    type Step<'a> = (&'a str, &'a dyn Fn() -> Result<(), Errno>);
    let steps: [Step; 3] = [
        ("api", &|| uffd.api()),
        ("register_wp", &|| uffd.register_wp(map.addr, PAGE)),
        ("writeprotect", &|| uffd.writeprotect(map.addr, PAGE, true)),
    ];
    for (i, (key, step)) in steps.into_iter().enumerate() {
        if let Err(errno) = step() {
            facts.fact(key, errno);
            not_applicable(facts, i + 1, key, errno);
            return Ok(());
        }
        facts.fact(key, "ok");
    }
    facts.fact("proc_mem_write", mem.write(map.addr, &PATTERN));
    facts.fact("proc_mem_write.readback", map.word(0)?);

    // A child writes into this process with process_vm_writev; the userfault is delivered on the
    // userfaultfd, which this process then resolves by removing the write protection.
    let parent = std::process::id() as libc::pid_t;
    let addr = map.addr;
    let child = Child::spawn(move || process_vm_write(parent, addr, &PATTERN).to_string())?;
    facts.fact("child_process_vm_writev.uffd_event", uffd.next_event(UFFD_EVENT_TIMEOUT_MS));
    let unprotected = uffd.writeprotect(map.addr, PAGE, false);
    facts.fact("unprotect", done(unprotected));
    facts.fact("child_process_vm_writev", child.finish());
    facts.fact("child_process_vm_writev.readback", map.word(0)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running each test in its own process
// ---------------------------------------------------------------------------------------------

/// What a test process reported.
struct Report {
    facts: Vec<(String, String)>,
    result: Result<(), String>,
}

/// The facts of a test, sent to the probe's main process as they are found, so that those found
/// before a crash are kept. One line each: `fact\tKEY\tVALUE`, then `ok` or `not ok\tREASON`.
struct Facts {
    pipe: File,
}

impl Facts {
    fn fact(&mut self, key: &str, value: impl Display) {
        self.line(&format!("fact\t{key}\t{}", one_line(&value.to_string())));
    }

    fn line(&mut self, line: &str) {
        // A failed write means the main process is gone: nobody is left to tell.
        let _ = self.pipe.write_all(format!("{line}\n").as_bytes());
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ")
}

/// Runs `test` in a child process and collects what it reported.
fn isolated(test: Test) -> Report {
    let child = fork_with_pipe(|pipe| {
        // SAFETY: alarm has no preconditions; its default action ends this process.
        unsafe { libc::alarm(TEST_TIMEOUT_S) };
        let mut facts = Facts { pipe };
        match test(&mut facts) {
            Ok(()) => facts.line("ok"),
            Err(reason) => facts.line(&format!("not ok\t{}", one_line(&reason))),
        }
    });
    let (pid, mut pipe) = match child {
        Ok(child) => child,
        Err(e) => return Report { facts: vec![], result: Err(e) },
    };
    let mut text = String::new();
    let read = pipe.read_to_string(&mut text);
    let end = wait(pid);
    let mut report = Report { facts: vec![], result: Err(String::new()) };
    let mut ended = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, '\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("fact"), Some(key), Some(value)) => report.facts.push((key.into(), value.into())),
            (Some("ok"), None, None) => ended = Some(Ok(())),
            (Some("not ok"), Some(reason), None) => ended = Some(Err(reason.to_string())),
            _ => ended = Some(Err(format!("garbled report line {line:?}"))),
        }
    }
    report.result = match (ended, read) {
        (_, Err(e)) => Err(format!("reading the test's report: {e}")),
        (Some(result), _) => result,
        (None, _) if end == "killed by SIGALRM" => Err(format!("no result after {TEST_TIMEOUT_S} s")),
        (None, _) => Err(format!("the test process ended early: {end}")),
    };
    report
}

/// Forks; the child runs `body` with the write end of a pipe and exits 0 when it returns. Returns
/// the child's PID and the read end.
fn fork_with_pipe(body: impl FnOnce(File)) -> Result<(libc::pid_t, File), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two file descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", Errno::last()));
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read_end, write_end) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the probe is single-threaded, so the child can go on using the allocator and std.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", Errno::last())),
        0 => {
            drop(read_end);
            // A child that outlived its parent would hold the pipe of the parent's own report open,
            // and the main process would wait for it. The getppid check closes the race of a parent
            // that died before prctl.
            // SAFETY: prctl(PR_SET_PDEATHSIG), getppid and _exit have no memory-safety preconditions.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            // Nothing this process does should leave a core file in the guest's root.
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: setrlimit reads the struct it is given.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
            body(write_end);
            // SAFETY: _exit ends this process without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        pid => Ok((pid, read_end)),
    }
}

/// How a child ended: `exited N` or `killed by SIGNAME`.
fn wait(pid: libc::pid_t) -> String {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer it is given.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if rc == pid {
            break;
        }
        if rc == -1 && Errno::last().0 != libc::EINTR {
            return format!("waitpid: {}", Errno::last());
        }
    }
    if libc::WIFSIGNALED(status) {
        format!("killed by {}", signal_name(libc::WTERMSIG(status)))
    } else {
        format!("exited {}", libc::WEXITSTATUS(status))
    }
}

/// A helper child process that replies with one line of text. Killed and reaped on drop.
struct Child {
    pid: libc::pid_t,
    reply: Option<File>,
}

impl Child {
    fn spawn(body: impl FnOnce() -> String) -> Result<Child, String> {
        let (pid, reply) = fork_with_pipe(|mut pipe| {
            let text = body();
            let _ = pipe.write_all(text.as_bytes());
        })?;
        Ok(Child { pid, reply: Some(reply) })
    }

    /// Waits for the child to end: its reply, or how it ended if it did not get to reply.
    fn finish(mut self) -> String {
        let mut text = String::new();
        if let Some(mut reply) = self.reply.take() {
            let _ = reply.read_to_string(&mut text);
        }
        let end = wait(self.pid);
        self.pid = 0;
        if end == "exited 0" && !text.is_empty() {
            text
        } else {
            end
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: kill and waitpid on this process's own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            wait(self.pid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/mem and the other ways into a process
// ---------------------------------------------------------------------------------------------

/// An open /proc/PID/mem.
struct Mem {
    file: File,
}

impl Mem {
    fn open_self() -> Result<Mem, String> {
        Self::open_path("/proc/self/mem", "/proc/self/mem")
    }

    fn open(pid: libc::pid_t) -> Result<Mem, String> {
        // A failure reason is shown too: it names no PID.
        Self::open_path(&format!("/proc/{pid}/mem"), "/proc/PID/mem")
    }

    fn open_path(path: &str, label: &str) -> Result<Mem, String> {
        let file = File::options().read(true).write(true).open(path);
        Ok(Mem { file: file.map_err(|e| format!("opening {label}: {e}"))? })
    }

    /// Reads at `addr`: lseek there, then read(2). Not pread(2), which refuses offsets of 2^63 and
    /// up (negative as a loff_t) with EINVAL before /proc/PID/mem sees them (fs/read_write.c,
    /// `ksys_pread64`): the kernel half of the address space is up there.
    fn read(&self, addr: usize, buf: &mut [u8]) -> Transfer {
        match self.seek(addr) {
            Ok(()) => Transfer::of((&self.file).read(buf), buf.len()),
            Err(errno) => Transfer::Failed(errno),
        }
    }

    fn write(&self, addr: usize, data: &[u8]) -> Transfer {
        match self.seek(addr) {
            Ok(()) => Transfer::of((&self.file).write(data), data.len()),
            Err(errno) => Transfer::Failed(errno),
        }
    }

    /// `mem_lseek` returns the new position, which for an address in the kernel half is a large
    /// negative number: fine, as long as it is not in -4095..-1, where it would read as an errno.
    fn seek(&self, addr: usize) -> Result<(), Errno> {
        // SAFETY: lseek on a file descriptor this value owns.
        match unsafe { libc::lseek(self.file.as_raw_fd(), addr as i64, libc::SEEK_SET) } {
            position if position == addr as i64 => Ok(()),
            _ => Err(Errno::last()),
        }
    }
}

/// What a read or write did: all of it, part of it, or an errno.
enum Transfer {
    Done { count: usize, asked: usize },
    Failed(Errno),
}

impl Transfer {
    fn of(result: io::Result<usize>, asked: usize) -> Transfer {
        match result {
            Ok(count) => Transfer::Done { count, asked },
            Err(e) => Transfer::Failed(Errno(e.raw_os_error().unwrap_or(0))),
        }
    }

    fn is_complete(&self) -> bool {
        matches!(self, Transfer::Done { count, asked } if count == asked)
    }
}

impl Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Transfer::Done { count: 1, asked: 1 } => write!(f, "ok 1 byte"),
            Transfer::Done { count, asked } if count == asked => write!(f, "ok {count} bytes"),
            Transfer::Done { count, asked } => write!(f, "short {count} of {asked} bytes"),
            Transfer::Failed(errno) => write!(f, "{errno}"),
        }
    }
}

fn process_vm_write(pid: libc::pid_t, addr: usize, data: &[u8]) -> Transfer {
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

fn process_vm_read(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> Result<(), Errno> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut c_void, iov_len: buf.len() };
    // SAFETY: the local iovec describes `buf`, which is writable for its whole length.
    let rc = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    match rc {
        n if n == buf.len() as isize => Ok(()),
        -1 => Err(Errno::last()),
        _ => Err(Errno(libc::EIO)),
    }
}

/// ptrace with integer arguments; errno on failure. (PEEK requests are not used: their result
/// cannot be told from -1 this way.)
fn ptrace(request: libc::c_uint, pid: libc::pid_t, addr: usize, data: usize) -> Result<(), Errno> {
    // SAFETY: the requests used here (SEIZE, INTERRUPT, POKEDATA, DETACH) read no memory of this
    // process through `addr` or `data`.
    match unsafe { libc::ptrace(request, pid, addr as *mut c_void, data as *mut c_void) } {
        -1 => Err(Errno::last()),
        _ => Ok(()),
    }
}

/// `ok`, or the errno name.
fn done(result: Result<(), Errno>) -> String {
    result.map_or_else(|e| e.to_string(), |()| "ok".to_string())
}

/// Waits for a traced child to stop (after PTRACE_INTERRUPT).
fn wait_stopped(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into the integer it is given.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    if rc != pid || !libc::WIFSTOPPED(status) {
        return Err(format!("the traced child did not stop (waitpid {rc}, status {status:#x})"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Memory the tests map
// ---------------------------------------------------------------------------------------------

/// A mapping of its own VMA: it sits between two guard pages of shared anonymous memory, which
/// the kernel never merges with another mapping (each is its own shmem object), so `Anonymous:` in
/// its smaps entry counts exactly its own pages. The whole reservation is unmapped on drop.
struct Mapping {
    reservation: usize,
    reserved: usize,
    addr: usize,
    /// The part still mapped, from `addr`.
    len: usize,
    prot: libc::c_int,
}

impl Mapping {
    fn anon(len: usize, prot: libc::c_int) -> Result<Mapping, String> {
        Self::new(len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, None)
    }

    fn file(file: &File, prot: libc::c_int, flags: libc::c_int) -> Result<Mapping, String> {
        Self::new(PAGE, prot, flags, Some(file))
    }

    fn new(len: usize, prot: libc::c_int, flags: libc::c_int, file: Option<&File>) -> Result<Mapping, String> {
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
        let addr = unsafe {
            libc::mmap((reservation + PAGE) as *mut c_void, len, prot, flags | libc::MAP_FIXED, fd, 0)
        };
        let map = Mapping { reservation, reserved, addr: reservation + PAGE, len, prot };
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

    fn protect(&mut self, prot: libc::c_int) -> Result<(), Errno> {
        // SAFETY: changes the protection of this mapping only; `word` and `fill` check `prot`.
        if unsafe { libc::mprotect(self.addr as *mut c_void, self.len, prot) } != 0 {
            return Err(Errno::last());
        }
        self.prot = prot;
        Ok(())
    }

    /// Unmaps the mapping from `offset` on (all of it for 0), leaving a hole up to the guard page.
    fn unmap_tail(&mut self, offset: usize) -> Result<(), Errno> {
        // SAFETY: the range is the end of this mapping; nothing refers to it (`len` shrinks below).
        if unsafe { libc::munmap((self.addr + offset) as *mut c_void, self.len - offset) } != 0 {
            return Err(Errno::last());
        }
        self.len = offset;
        Ok(())
    }

    /// Fills the whole mapping with `byte` (it must be writable).
    fn fill(&mut self, byte: u8) -> Result<(), String> {
        if self.prot & libc::PROT_WRITE == 0 {
            return Err("fill: mapping not writable".into());
        }
        // SAFETY: `len` bytes from `addr` are mapped writable (checked above).
        unsafe { std::ptr::write_bytes(self.addr as *mut u8, byte, self.len) };
        Ok(())
    }

    /// The 32-bit word at `offset`, read directly (not through /proc), in hex.
    fn word(&self, offset: usize) -> Result<String, String> {
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
        // SAFETY: the reservation belongs to this value. A sealed page makes this fail (mseal):
        // the pages then stay until the test process exits, which is soon.
        unsafe { libc::munmap(self.reservation as *mut c_void, self.reserved) };
    }
}

fn hex(word: u32) -> String {
    format!("{word:#010x}")
}

/// The smaps entry (header line and fields) of the VMA containing `addr`.
fn smaps_entry(addr: usize) -> Result<(usize, usize, String), String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| format!("/proc/self/smaps: {e}"))?;
    let mut current: Option<(usize, usize)> = None;
    let mut body = String::new();
    for line in smaps.lines() {
        // Header lines start with `START-END `; field lines with `Name:`.
        let range = line.split_once(' ').and_then(|(range, _)| range.split_once('-'));
        let bounds = range.and_then(|(s, e)| Some((usize::from_str_radix(s, 16).ok()?, usize::from_str_radix(e, 16).ok()?)));
        if let Some((start, end)) = bounds {
            if let Some((s, e)) = current {
                return Ok((s, e, body));
            }
            if (start..end).contains(&addr) {
                current = Some((start, end));
            }
        } else if current.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    current.map(|(s, e)| (s, e, body)).ok_or_else(|| "address not in /proc/self/smaps".into())
}

fn vma_bounds(addr: usize) -> Result<(usize, usize), String> {
    smaps_entry(addr).map(|(start, end, _)| (start, end))
}

/// `Anonymous:` of the VMA containing `addr`, in kB: the pages of it that are private anonymous
/// copies (what copy-on-write produces).
fn anonymous_kb(addr: usize) -> Result<u64, String> {
    let (_, _, body) = smaps_entry(addr)?;
    body.lines()
        .find_map(|line| line.strip_prefix("Anonymous:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse().ok())
        .ok_or_else(|| "smaps: no Anonymous: line in kB".into())
}

/// A one-page file in /tmp (a tmpfs) that starts with "abcd" (the word 0x64636261).
struct TestFile {
    path: String,
}

impl TestFile {
    fn create(name: &str) -> Result<TestFile, String> {
        let path = format!("/tmp/proc_mem.{name}");
        let mut content = vec![0u8; PAGE];
        content[..4].copy_from_slice(b"abcd");
        std::fs::write(&path, content).map_err(|e| format!("{path}: {e}"))?;
        Ok(TestFile { path })
    }

    fn open(&self, writable: bool) -> Result<File, String> {
        File::options().read(true).write(writable).open(&self.path).map_err(|e| format!("{}: {e}", self.path))
    }

    /// The first word of the file, read with read(2) (not through a mapping).
    fn word(&self) -> Result<String, String> {
        let mut word = [0u8; 4];
        self.open(false)?.read_exact(&mut word).map_err(|e| format!("{}: {e}", self.path))?;
        Ok(hex(u32::from_le_bytes(word)))
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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

struct Uffd {
    file: File,
}

impl Uffd {
    fn open() -> Result<Uffd, Errno> {
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

    fn api(&self) -> Result<(), Errno> {
        self.ioctl(UFFDIO_API, &mut UffdioApi { api: UFFD_API, ..Default::default() })
    }

    fn register_wp(&self, addr: usize, len: usize) -> Result<(), Errno> {
        let range = UffdioRange { start: addr as u64, len: len as u64 };
        self.ioctl(UFFDIO_REGISTER, &mut UffdioRegister { range, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 })
    }

    fn writeprotect(&self, addr: usize, len: usize, protect: bool) -> Result<(), Errno> {
        let range = UffdioRange { start: addr as u64, len: len as u64 };
        let mode = if protect { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 };
        self.ioctl(UFFDIO_WRITEPROTECT, &mut UffdioWriteprotect { range, mode })
    }

    /// The next event, described without its address; `none after N ms` if none comes.
    fn next_event(&self, timeout_ms: i32) -> String {
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
}

// ---------------------------------------------------------------------------------------------
// errno and signal names
// ---------------------------------------------------------------------------------------------

/// An errno value, displayed as its name (`EIO`), or `errno N` if it is not in the table.
#[derive(Clone, Copy)]
struct Errno(i32);

impl Errno {
    fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
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

/// `ok` for a syscall's return value of 0 or more, else (-1) the errno name.
fn status(rc: i64) -> String {
    if rc >= 0 {
        "ok".to_string()
    } else {
        Errno::last().to_string()
    }
}

