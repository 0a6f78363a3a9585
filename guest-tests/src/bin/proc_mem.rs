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
//! Every experiment runs in a process of its own (see [`ksnap_probe::child::isolated`]): several of them change the
//! probe's own memory (its code, its vDSO) or may crash or hang, and a fresh copy of the address
//! space also keeps the `Anonymous:` counts of one test from depending on another.
//!
//! A result the kernel gives — an errno, a short count, a signal — is a fact and the test is `ok`; a
//! test is `not ok` only if the experiment itself could not be set up. Facts never contain
//! addresses, PIDs or timings: values are byte counts, errno and signal names, and the words read
//! back from memory that the probe itself wrote.
//!
//! A word read back is named by how it was read: `loaded_…` is a load by the process from its own
//! mapping (not through /proc), `process_vm_readv_…` a process_vm_readv of another process's (or
//! its own) memory, `proc_mem_read…` a read(2) of /proc/PID/mem.

use std::ffi::c_void;
use std::fmt::Display;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use ksnap_guest::mem::{anonymous_kb, hex, Mapping, PAGE};
use ksnap_guest::remote::{process_vm_read, process_vm_write, ptrace, Mem, Transfer, Uffd};
use ksnap_probe::child::{isolated, wait_stopped, Child, Facts};
use ksnap_probe::sys::{outcome, Errno, OK};
use ksnap_probe::{cmdline_param, Ktap};

// x86_64 only (the code-patching tests are x86 assembly), so the page size is known ([`PAGE`]).

/// What the probe writes, little-endian: it reads back as this word.
const PATTERN: [u8; 4] = [0x40, 0x41, 0x41, 0x41];

/// What the probe stores with its own stores (every byte of a page) before it reads the page
/// through /proc/self/mem: it reads back as 0x5c5c5c5c.
const STORED_BYTE: u8 = 0x5c;

/// PTRACE_POKEDATA writes a whole word: [`PATTERN`] in its low half, 0x11111111 above.
const POKE: u64 = 0x1111_1111_4141_4140;

/// An address in the kernel half of the address space (where x86_64 kernels have their text).
const KERNEL_HALF: usize = 0xffff_ffff_8100_0000;

/// How long one test may take before its process is killed (SIGALRM). Every test takes well under
/// a second even under TCG; this only stops a hang from eating the probe's whole timeout.
const TEST_TIMEOUT_S: u32 = 20;

/// How long `uffd_wp` waits for the userfault of its child (which comes within milliseconds).
const UFFD_EVENT_TIMEOUT_MS: i32 = 10_000;

type Test = fn(&mut Facts) -> Result<(), String>;

const TESTS: [(&str, Test); 17] = [
    ("setup", setup),
    ("ro_private_anon", ro_private_anon),
    ("ro_private_file", ro_private_file),
    ("ro_shared", ro_shared),
    ("shared_read", shared_read),
    ("rw_mappings", rw_mappings),
    ("prot_none", prot_none),
    ("own_code_patch", own_code_patch),
    ("own_code_int3", own_code_int3),
    ("bad_addresses", bad_addresses),
    ("read_into_hole", read_into_hole),
    ("vdso_vvar", vdso_vvar),
    ("lseek", lseek),
    ("other_writers", other_writers),
    ("pokedata_targets", pokedata_targets),
    ("mseal", mseal),
    ("uffd_wp", uffd_wp),
];

fn main() {
    let mut ktap = Ktap::begin(TESTS.len());
    let mut failed = false;
    for (name, test) in TESTS {
        let report = isolated(test, TEST_TIMEOUT_S);
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
/// CONFIG_PROC_MEM_NO_FORCE change the mode with nothing on the command line. Whether the kernel has
/// the parameter at all is looked up in /proc/kallsyms: its handler, `early_proc_mem_force_override`
/// (fs/proc/base.c, an early_param), is a function whose address the kernel keeps, so a kernel with
/// kallsyms lists it exactly when it has the parameter. A kernel without the parameter drops the word
/// without a message (init/main.c, `unknown_bootoption`: a dotted word is taken for a module's
/// parameter), so that `proc_mem.force_override=always` on 5.10 is in force only in the sense that
/// 5.10 always forces: `requested_in_force` says the kernel has no such parameter.
fn setup(facts: &mut Facts) -> Result<(), String> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page != PAGE as libc::c_long {
        return Err(format!("page size is {page}, the probe assumes {PAGE}"));
    }
    let requested = cmdline_param("proc_mem.force_override").map_err(|e| format!("/proc/cmdline: {e}"))?;
    facts.fact("force_override.requested", requested.as_deref().unwrap_or("unset"));
    let parameter = parameter_in_kernel();
    facts.fact("force_override.parameter_in_kernel", &parameter);
    facts.fact(
        "force_override.parameter_in_kernel.determined_by",
        format!("a symbol {PARAMETER_HANDLER} (fs/proc/base.c, the parameter's handler) in /proc/kallsyms"),
    );

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
            Some(word) if parameter == InKernel::No => {
                let behaves = format!("the kernel behaves as {effective}");
                format!("no: the kernel has no proc_mem.force_override ({word} requested, {behaves})")
            }
            Some(word) if word == effective => "yes".to_string(),
            Some(word) => format!("no: {word} was requested, the kernel behaves as {effective}"),
        },
    );
    Ok(())
}

/// The handler of `proc_mem.force_override=` (fs/proc/base.c), by which /proc/kallsyms tells whether
/// the kernel has the parameter.
const PARAMETER_HANDLER: &str = "early_proc_mem_force_override";

/// Whether the running kernel has the `proc_mem.force_override` parameter.
#[derive(PartialEq, Eq)]
enum InKernel {
    Yes,
    No,
    Unknown(String),
}

impl Display for InKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InKernel::Yes => write!(f, "yes"),
            InKernel::No => write!(f, "no"),
            InKernel::Unknown(why) => write!(f, "unknown: {why}"),
        }
    }
}

/// [`PARAMETER_HANDLER`] looked up in /proc/kallsyms (lines `ADDRESS TYPE NAME`; a compiler's clone
/// of the function would be `NAME.SUFFIX`). Kernels built without CONFIG_KALLSYMS (tinyconfig, so
/// ksnap's minimal builds) have no such file: unknown.
fn parameter_in_kernel() -> InKernel {
    use std::io::BufRead;
    let file = match File::open("/proc/kallsyms") {
        Ok(file) => file,
        Err(e) => return InKernel::Unknown(format!("/proc/kallsyms {}", Errno::of(&e))),
    };
    let mut any = false;
    for line in std::io::BufReader::new(file).lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => return InKernel::Unknown(format!("reading /proc/kallsyms: {}", Errno::of(&e))),
        };
        any = true;
        let name = line.split_whitespace().nth(2).unwrap_or("");
        if name == PARAMETER_HANDLER || name.strip_prefix(PARAMETER_HANDLER).is_some_and(|rest| rest.starts_with('.')) {
            return InKernel::Yes;
        }
    }
    if any {
        InKernel::No
    } else {
        InKernel::Unknown("/proc/kallsyms is empty".into())
    }
}

/// A write and whether its bytes landed: the write's result, then the word a read found there and
/// how it was read (`read_with`, as in the fact names: `loaded after`, `process_vm_readv after`).
struct ForcedWrite {
    write: Transfer,
    read_with: &'static str,
    after: String,
}

impl ForcedWrite {
    fn landed(&self) -> bool {
        self.write.is_complete() && self.after == hex(u32::from_le_bytes(PATTERN))
    }
}

impl Display for ForcedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}: {}", self.write, self.read_with, self.after)
    }
}

/// [`PATTERN`] written through /proc/self/mem into a private anonymous page mapped PROT_READ, then
/// loaded by the process.
fn forced_self_write() -> Result<ForcedWrite, String> {
    let mem = Mem::open_self()?;
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    let write = mem.write(map.addr, &PATTERN);
    Ok(ForcedWrite { write, read_with: "loaded after", after: map.word(0)? })
}

/// [`PATTERN`] written through /proc/CHILD/mem, by the child's tracer (PTRACE_SEIZE: traced and
/// running, which is all `proc_mem_foll_force` asks of a tracer), into a private anonymous page the
/// child inherited mapped PROT_READ; then read from the child with process_vm_readv.
fn forced_tracer_write() -> Result<ForcedWrite, String> {
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    let child = Child::spawn(|| loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    })?;
    let mem = Mem::open(child.pid)?;
    ptrace(libc::PTRACE_SEIZE, child.pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    let write = mem.write(map.addr, &PATTERN);
    let after = process_vm_readv_word(child.pid, map.addr);
    // Killing the child (on drop) ends the tracing too.
    drop(child);
    Ok(ForcedWrite { write, read_with: "process_vm_readv after", after })
}

/// The word at `addr` in process `pid`, read with process_vm_readv: [`hex`], or `unreadable: …` with
/// what the read did.
fn process_vm_readv_word(pid: libc::pid_t, addr: usize) -> String {
    let mut word = [0u8; 4];
    match process_vm_read(pid, addr, &mut word) {
        read if read.is_complete() => hex(u32::from_le_bytes(word)),
        read => format!("unreadable: {read}"),
    }
}

/// Case 1: a private anonymous page mapped PROT_READ. With FOLL_FORCE, `check_vma_flags` (mm/gup.c)
/// lets a write into a private (copy-on-write) mapping through, and the write lands in a new
/// anonymous page; without it, the write is refused and `mem_rw` returns EIO. `loaded_after` is the
/// process's own load from the mapping after the write.
fn ro_private_anon(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let map = Mapping::anon(PAGE, libc::PROT_READ)?;
    facts.fact("anonymous_kb_before", anonymous_kb(map.addr)?);
    facts.fact("write", mem.write(map.addr, &PATTERN));
    facts.fact("loaded_after", map.word(0)?);
    facts.fact("anonymous_kb_after", anonymous_kb(map.addr)?);
    Ok(())
}

/// Case 2: a MAP_PRIVATE PROT_READ mapping of a file opened O_RDONLY: private mappings keep
/// VM_MAYWRITE whatever the open mode (mm/mmap.c, `do_mmap`), so a forced write copies the page.
/// Every word but `file_after` (read(2) of the file) is a load by the process from a mapping.
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
    facts.fact("loaded_after", map.word(0)?);
    facts.fact("anonymous_kb_after", anonymous_kb(map.addr)?);
    facts.fact("second_mapping_after", other.word(0)?);
    facts.fact("file_after", file.word()?);
    Ok(())
}

/// Case 3: shared mappings that are not writable: a file opened O_RDONLY, the same file opened
/// O_RDWR (but mapped PROT_READ), and shared anonymous memory. None is a copy-on-write mapping
/// (`is_cow_mapping`), which FOLL_FORCE writes require. `loaded_after` is the process's own load from
/// the mapping after the write, `file_after` a read(2) of the file.
fn ro_shared(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let file = TestFile::create("ro_shared")?;
    for (key, writable) in [("file_rdonly", false), ("file_rdwr", true)] {
        let handle = file.open(writable)?;
        let map = Mapping::file(&handle, libc::PROT_READ, libc::MAP_SHARED)?;
        facts.fact(&format!("{key}.write"), mem.write(map.addr, &PATTERN));
        facts.fact(&format!("{key}.loaded_after"), map.word(0)?);
        facts.fact(&format!("{key}.file_after"), file.word()?);
    }
    let map = Mapping::guarded(PAGE, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None)?;
    facts.fact("anon.write", mem.write(map.addr, &PATTERN));
    facts.fact("anon.loaded_after", map.word(0)?);
    Ok(())
}

/// Case 3b: shared mappings the process wrote itself (stores of [`STORED_BYTE`] over the whole page,
/// then a load of the first word: `loaded_after_store`), read through /proc/self/mem: shared
/// anonymous memory and a file opened O_RDWR, both mapped PROT_READ|PROT_WRITE.
///
/// `proc_mem_read` is decided by `mem_rw` (fs/proc/base.c): `access_remote_vm` (mm/memory.c,
/// `__access_remote_vm`) gets the page with get_user_pages and copies from it, and a read of a VMA
/// with VM_READ passes `check_vma_flags` (mm/gup.c) whether or not `proc_mem_foll_force` added
/// FOLL_FORCE; a page get_user_pages refuses ends the read with EIO. `proc_mem_read_value` is the
/// word the read returned (`none` if it returned less than 4 bytes): the shmem or page-cache page the
/// stores went to, if the read sees what the process wrote.
fn shared_read(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let file = TestFile::create("shared_read")?;
    let rw = file.open(true)?;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let cases = [
        ("anon", Mapping::guarded(PAGE, prot, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None)?),
        ("file", Mapping::file(&rw, prot, libc::MAP_SHARED)?),
    ];
    for (key, mut map) in cases {
        map.fill(STORED_BYTE)?;
        facts.fact(&format!("{key}.loaded_after_store"), map.word(0)?);
        let mut word = [0u8; 4];
        let read = mem.read(map.addr, &mut word);
        facts.fact(&format!("{key}.proc_mem_read"), &read);
        let value = if read.is_complete() { hex(u32::from_le_bytes(word)) } else { "none".into() };
        facts.fact(&format!("{key}.proc_mem_read_value"), value);
    }
    Ok(())
}

/// Case 3c: new bytes ([`PATTERN`], over a page the process filled with 0x11: `loaded_before`)
/// written through /proc/self/mem into memory mapped PROT_READ|PROT_WRITE, then loaded by the process
/// (`loaded_after`): private anonymous memory, shared anonymous memory, and a file opened O_RDWR and
/// mapped MAP_SHARED (`file_after`: read(2) of the file).
///
/// `write` is decided by `mem_rw` (fs/proc/base.c) through `access_remote_vm` (mm/memory.c): with
/// FOLL_WRITE, `check_vma_flags` (mm/gup.c) looks at FOLL_FORCE only for a VMA without VM_WRITE, so a
/// writable mapping takes the write under every `proc_mem_foll_force` mode. `__access_remote_vm`
/// copies into the page get_user_pages returned (`copy_to_user_page`) and marks it dirty: for the
/// shared file mapping that is the page cache page that read(2) returns.
fn rw_mappings(facts: &mut Facts) -> Result<(), String> {
    let mem = Mem::open_self()?;
    let file = TestFile::create("rw_mappings")?;
    let rw = file.open(true)?;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let cases = [
        ("private_anon", Mapping::anon(PAGE, prot)?),
        ("shared_anon", Mapping::guarded(PAGE, prot, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None)?),
        ("shared_file", Mapping::file(&rw, prot, libc::MAP_SHARED)?),
    ];
    for (key, mut map) in cases {
        map.fill(0x11)?;
        facts.fact(&format!("{key}.loaded_before"), map.word(0)?);
        facts.fact(&format!("{key}.write"), mem.write(map.addr, &PATTERN));
        facts.fact(&format!("{key}.loaded_after"), map.word(0)?);
    }
    facts.fact("shared_file.file_after", file.word()?);
    Ok(())
}

/// Case 4: PROT_NONE private anonymous memory, read and written through /proc/self/mem, read with
/// process_vm_readv, then made readable and read directly.
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
    // process_vm_readv of the same page (this process's own: the same path as another's). It pins
    // the pages with no flag but FOLL_WRITE for a write (mm/process_vm_access.c,
    // `process_vm_rw_single_vec`), never FOLL_FORCE, and a read of a VMA without VM_READ needs
    // FOLL_FORCE in `check_vma_flags` (mm/gup.c); a page it cannot pin is EFAULT.
    let mut word = [0u8; 4];
    let read = process_vm_read(std::process::id() as libc::pid_t, map.addr, &mut word);
    facts.fact("process_vm_readv", &read);
    facts
        .fact("process_vm_readv_value", if read.is_complete() { hex(u32::from_le_bytes(word)) } else { "none".into() });
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

/// Case 8: the vDSO's data (`[vvar]`) and code (`[vdso]`) mappings, read and written one byte each.
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
    facts.fact(
        "seek_set_minus_1.libc_lseek",
        match seek(-1, libc::SEEK_SET) {
            Ok(position) => format!("returns {position}"),
            Err(errno) => format!("returns -1, errno {errno}"),
        },
    );
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
/// so every `.process_vm_readv_after` (the child's word, read from the parent with process_vm_readv)
/// shows whether that route's write landed; `process_vm_writev_self.loaded_after` and `parent_copy`
/// are loads by the parent from its own mapping. process_vm_writev never passes
/// FOLL_FORCE (mm/process_vm_access.c); PTRACE_POKEDATA always does (kernel/ptrace.c,
/// `generic_ptrace_pokedata`), whatever proc_mem.force_override says; /proc/PID/mem under `ptrace`
/// passes it only while the writer is the target's tracer (fs/proc/base.c, `proc_mem_foll_force`).
fn other_writers(facts: &mut Facts) -> Result<(), String> {
    // Into itself.
    let own = Mapping::anon(PAGE, libc::PROT_READ)?;
    facts.fact("process_vm_writev_self", process_vm_write(std::process::id() as libc::pid_t, own.addr, &PATTERN));
    facts.fact("process_vm_writev_self.loaded_after", own.word(0)?);

    // Into a child that sits in pause().
    let mut page = Mapping::anon(PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    page.fill(0x11)?;
    page.protect(libc::PROT_READ).map_err(|e| format!("mprotect(PROT_READ): {e}"))?;
    let child = Child::spawn(|| loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    })?;
    let pid = child.pid;
    let process_vm_readv_at = |offset: usize| process_vm_readv_word(pid, page.addr + offset);
    // Opened once, before any tracing: proc_mem_foll_force looks at the tracer at every read and
    // write, not at open.
    let mem = Mem::open(pid)?;

    facts.fact("proc_mem_untraced", mem.write(page.addr, &PATTERN));
    facts.fact("proc_mem_untraced.process_vm_readv_after", process_vm_readv_at(0));
    facts.fact("process_vm_writev_child", process_vm_write(pid, page.addr + 8, &PATTERN));
    facts.fact("process_vm_writev_child.process_vm_readv_after", process_vm_readv_at(8));

    // Traced (PTRACE_SEIZE) but still running.
    ptrace(libc::PTRACE_SEIZE, pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    facts.fact("proc_mem_seized_running", mem.write(page.addr + 16, &PATTERN));
    facts.fact("proc_mem_seized_running.process_vm_readv_after", process_vm_readv_at(16));
    facts.fact("pokedata_running", outcome(ptrace(libc::PTRACE_POKEDATA, pid, page.addr + 24, POKE as usize)));
    facts.fact("pokedata_running.process_vm_readv_after", process_vm_readv_at(24));

    // Traced and stopped.
    ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0).map_err(|e| format!("PTRACE_INTERRUPT: {e}"))?;
    wait_stopped(pid)?;
    facts.fact("proc_mem_seized_stopped", mem.write(page.addr + 32, &PATTERN));
    facts.fact("proc_mem_seized_stopped.process_vm_readv_after", process_vm_readv_at(32));
    facts.fact("pokedata_stopped", outcome(ptrace(libc::PTRACE_POKEDATA, pid, page.addr + 40, POKE as usize)));
    facts.fact("pokedata_stopped.process_vm_readv_after", process_vm_readv_at(40));
    ptrace(libc::PTRACE_DETACH, pid, 0, 0).map_err(|e| format!("PTRACE_DETACH: {e}"))?;
    drop(child);

    // The child's writes broke copy-on-write in the child only.
    facts.fact("parent_copy", page.word(0)?);
    Ok(())
}

/// Case 10b: PTRACE_POKEDATA by the tracer of a stopped child (PTRACE_SEIZE, PTRACE_INTERRUPT) into
/// memory that even a forced write cannot change in place: shared mappings the child inherited
/// mapped PROT_READ — a file opened O_RDONLY, the same file opened O_RDWR, shared anonymous memory —
/// and a hole where nothing is mapped.
///
/// `pokedata` is decided by `generic_ptrace_pokedata` (kernel/ptrace.c): `ptrace_access_vm` with
/// FOLL_FORCE | FOLL_WRITE whatever proc_mem.force_override says, then EIO unless all 8 bytes were
/// written. `access_remote_vm` (mm/memory.c, `__access_remote_vm`) writes nothing where
/// get_user_pages fails: for a VMA without VM_WRITE, `check_vma_flags` (mm/gup.c) lets FOLL_FORCE
/// through only into a copy-on-write (private) mapping (`is_cow_mapping`), so a shared mapping is
/// refused, VM_MAYWRITE (the O_RDWR file) or not; where no VMA is, there is no page at all.
/// `process_vm_readv_after` is the child's first word then, read from the parent with
/// process_vm_readv (the files start "abcd", 0x64636261; the anonymous page is zero); `file_after` is
/// read(2) of the file after both file pokes.
fn pokedata_targets(facts: &mut Facts) -> Result<(), String> {
    let file = TestFile::create("pokedata_targets")?;
    let (rdonly, rdwr) = (file.open(false)?, file.open(true)?);
    let targets = [
        ("shared_file_rdonly", Mapping::file(&rdonly, libc::PROT_READ, libc::MAP_SHARED)?),
        ("shared_file_rdwr", Mapping::file(&rdwr, libc::PROT_READ, libc::MAP_SHARED)?),
        ("shared_anon", Mapping::guarded(PAGE, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_ANONYMOUS, None)?),
    ];
    let mut hole = Mapping::anon(2 * PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    hole.unmap_tail(PAGE).map_err(|e| format!("munmap: {e}"))?;
    let unmapped = hole.addr + PAGE;

    // The child inherits every mapping above, and the hole.
    let child = Child::spawn(|| loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    })?;
    let pid = child.pid;
    ptrace(libc::PTRACE_SEIZE, pid, 0, 0).map_err(|e| format!("PTRACE_SEIZE: {e}"))?;
    ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0).map_err(|e| format!("PTRACE_INTERRUPT: {e}"))?;
    wait_stopped(pid)?;
    for (key, map) in &targets {
        facts.fact(&format!("{key}.pokedata"), outcome(ptrace(libc::PTRACE_POKEDATA, pid, map.addr, POKE as usize)));
        facts.fact(&format!("{key}.process_vm_readv_after"), process_vm_readv_word(pid, map.addr));
    }
    facts.fact("file_after", file.word()?);
    facts.fact("unmapped.pokedata", outcome(ptrace(libc::PTRACE_POKEDATA, pid, unmapped, POKE as usize)));
    ptrace(libc::PTRACE_DETACH, pid, 0, 0).map_err(|e| format!("PTRACE_DETACH: {e}"))?;
    drop(child);
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
        "proc_mem_write.loaded_after",
        "madvise_dontneed",
        "madvise_dontneed.loaded_after",
        "mprotect_rw",
        "munmap",
    ];
    let mem = Mem::open_self()?;
    let mut map = Mapping::anon(PAGE, libc::PROT_READ | libc::PROT_WRITE)?;
    map.fill(0x11)?;
    map.protect(libc::PROT_READ).map_err(|e| format!("mprotect(PROT_READ): {e}"))?;
    // SAFETY: mseal takes an address range and flags; it changes no memory.
    let sealed = unsafe { libc::syscall(libc::SYS_mseal, map.addr, PAGE, 0) };
    facts.fact("mseal", outcome(Errno::check(sealed)));
    if sealed != 0 {
        let reason = format!("not applicable: mseal {}", Errno::last());
        for key in AFTER_SEAL {
            facts.fact(key, &reason);
        }
        return Ok(());
    }
    facts.fact("proc_mem_write", mem.write(map.addr, &PATTERN));
    facts.fact("proc_mem_write.loaded_after", map.word(0)?);
    // SAFETY: the range is this mapping; MADV_DONTNEED may drop its contents, which later reads
    // then see as zeros.
    let advised = unsafe { libc::madvise(map.addr as *mut c_void, PAGE, libc::MADV_DONTNEED) };
    facts.fact("madvise_dontneed", outcome(Errno::check(advised.into())));
    facts.fact("madvise_dontneed.loaded_after", map.word(0)?);
    facts.fact("mprotect_rw", outcome(map.protect(libc::PROT_READ | libc::PROT_WRITE)));
    facts.fact("munmap", outcome(map.unmap_tail(0)));
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
        "proc_mem_write.loaded_after",
        "child_process_vm_writev.uffd_event",
        "unprotect",
        "child_process_vm_writev",
        "child_process_vm_writev.loaded_after",
    ];
    let not_applicable = |facts: &mut Facts, from: usize, step: &str, errno: Errno| {
        for key in &KEYS[from..] {
            facts.fact(key, format!("not applicable: {step} {errno}"));
        }
    };
    let uffd = match Uffd::open() {
        Ok(uffd) => {
            facts.fact("userfaultfd", OK);
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
        facts.fact(key, OK);
    }
    facts.fact("proc_mem_write", mem.write(map.addr, &PATTERN));
    facts.fact("proc_mem_write.loaded_after", map.word(0)?);

    // A child writes into this process with process_vm_writev; the userfault is delivered on the
    // userfaultfd, which this process then resolves by removing the write protection.
    let parent = std::process::id() as libc::pid_t;
    let addr = map.addr;
    let child = Child::spawn(move || process_vm_write(parent, addr, &PATTERN).to_string())?;
    facts.fact("child_process_vm_writev.uffd_event", uffd.next_event(UFFD_EVENT_TIMEOUT_MS));
    let unprotected = uffd.writeprotect(map.addr, PAGE, false);
    facts.fact("unprotect", outcome(unprotected));
    facts.fact("child_process_vm_writev", child.finish());
    // Loaded by this process, whose memory the child wrote.
    facts.fact("child_process_vm_writev.loaded_after", map.word(0)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Files the tests map
// ---------------------------------------------------------------------------------------------

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
