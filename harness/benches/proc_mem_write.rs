//! How fast one process can write into another's memory, by the three routes the `proc_mem` suite
//! compares: `pwrite` on /proc/PID/mem, `process_vm_writev`, and `PTRACE_POKEDATA` (8 bytes per
//! call), for transfers of 8 B, 4 KiB and 1 MiB.
//!
//! The target is a forked child that sits stopped under ptrace for the whole run: POKEDATA needs a
//! stopped tracee, and writing into the same stopped process by all three routes keeps the
//! comparison fair. The destination is the child's copy of a page-aligned buffer both processes got
//! from the fork; the first writes break copy-on-write in the child, which the warm-up absorbs, so
//! the measurements are of writes into pages the child already owns.
//!
//! Run with `cargo bench -p ksnap --bench proc_mem_write` (Linux, and ptrace must be allowed: a
//! parent may trace its child under Yama's default scope). It takes well under two minutes.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};

const PAGE: usize = 4096;
const SIZES: [(usize, &str); 3] = [(8, "8B"), (4 << 10, "4KiB"), (1 << 20, "1MiB")];

#[derive(Clone)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

/// A child process stopped under ptrace; killed and reaped on drop.
struct StoppedChild {
    pid: libc::pid_t,
}

impl StoppedChild {
    fn spawn() -> io::Result<StoppedChild> {
        // SAFETY: the child calls only async-signal-safe functions (prctl, pause), so forking is
        // sound even if the benchmark process had other threads.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            0 => {
                // SAFETY: as above. The child ends by SIGKILL: from drop, or through
                // PR_SET_PDEATHSIG if the benchmark dies first.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                loop {
                    // SAFETY: as above.
                    unsafe { libc::pause() };
                }
            }
            _ => {}
        }
        let child = StoppedChild { pid };
        // SEIZE + INTERRUPT rather than ATTACH: no SIGSTOP is queued that would have to be dealt
        // with later.
        child.ptrace(libc::PTRACE_SEIZE, 0, 0)?;
        child.ptrace(libc::PTRACE_INTERRUPT, 0, 0)?;
        let mut status = 0;
        // SAFETY: waitpid writes the status into the integer it is given.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } != pid || !libc::WIFSTOPPED(status) {
            return Err(io::Error::other("the traced child did not stop"));
        }
        Ok(child)
    }

    fn ptrace(&self, request: libc::c_uint, addr: usize, data: usize) -> io::Result<()> {
        // SAFETY: SEIZE, INTERRUPT and POKEDATA read no memory of this process through `addr` or
        // `data`: they are a remote address and a value.
        match unsafe { libc::ptrace(request, self.pid, addr as *mut c_void, data as *mut c_void) } {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        }
    }
}

impl Drop for StoppedChild {
    fn drop(&mut self) {
        // SAFETY: kill and reap this process's own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), libc::__WALL);
        }
    }
}

fn proc_pid_mem(mem: &File, addr: usize, data: &[u8]) {
    let written = mem.write_at(data, addr as u64).expect("pwrite /proc/PID/mem");
    assert_eq!(written, data.len(), "short write to /proc/PID/mem");
}

fn process_vm_writev(pid: libc::pid_t, addr: usize, data: &[u8]) {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut c_void, iov_len: data.len() };
    // SAFETY: the local iovec describes `data`, which the kernel only reads; the remote address is
    // checked by the kernel against the child's mappings.
    let written = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    assert_eq!(written, data.len() as isize, "process_vm_writev: {}", io::Error::last_os_error());
}

fn pokedata(child: &StoppedChild, addr: usize, data: &[u8]) {
    for (i, word) in data.chunks_exact(8).enumerate() {
        let word = u64::from_ne_bytes(word.try_into().expect("8-byte chunk"));
        child.ptrace(libc::PTRACE_POKEDATA, addr + 8 * i, word as usize).expect("PTRACE_POKEDATA");
    }
}

fn write_into_child(c: &mut Criterion) {
    let largest = SIZES.iter().map(|&(size, _)| size).max().unwrap_or(PAGE);
    // The child gets its own copy of this buffer at the same address; page-aligned, so that a 4 KiB
    // write touches one page, not two.
    let target = vec![Page([0; PAGE]); largest / PAGE];
    let addr = target.as_ptr() as usize;
    let source: Vec<u8> = (0..largest).map(|i| i as u8).collect();

    let child = StoppedChild::spawn().expect("starting the target child (is ptrace allowed?)");
    let mem = File::options()
        .write(true)
        .open(format!("/proc/{}/mem", child.pid))
        .expect("opening /proc/PID/mem of the child");

    for (size, label) in SIZES {
        let data = &source[..size];
        let mut group = c.benchmark_group(format!("write_into_child/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        // Flat: every sample runs the same number of iterations, so the slowest case (1 MiB by
        // POKEDATA, 131072 system calls) does not make criterion's linear ramp take minutes.
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::from_parameter("proc_pid_mem_pwrite"), |b| {
            b.iter(|| proc_pid_mem(&mem, addr, data))
        });
        group.bench_function(BenchmarkId::from_parameter("process_vm_writev"), |b| {
            b.iter(|| process_vm_writev(child.pid, addr, data))
        });
        group.bench_function(BenchmarkId::from_parameter("ptrace_pokedata"), |b| {
            b.iter(|| pokedata(&child, addr, data))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = write_into_child
}
criterion_main!(benches);
