//! Running many cells side by side: VM slots that take the first cell whose kernel (and selftests, and
//! saved machine) are ready, and the threads that make those ready beside them.

use std::sync::Mutex;

use anyhow::Result;
use ksnap_vm::kernel::KernelSource;

use crate::project::matrix::Cell;

use super::cell::CellRun;
use super::machine::Machine;
use super::resources::Session;

/// What [`Session::run_cells`] did, in the cells' order.
#[derive(Debug, Default)]
pub struct CellResults {
    /// Cells that ran (passed or not: see [`CellRun::passed`]).
    pub runs: Vec<CellRun>,
    /// Cells that could not run because of a problem on the host.
    pub errors: Vec<(Cell, anyhow::Error)>,
    /// Cells not started (interrupted).
    pub not_started: Vec<Cell>,
}

/// Lower the calling thread, and every process it starts from now on (make, the compilers, apt-get), to
/// the lowest priority, nice 19. Under TCG a guest runs only as fast as its vCPU thread gets a core: a kernel
/// build at the VMs' priority beside two VMs on two cores made the kselftest_mm cells of 6.12 take twice as
/// long, and uffd-unit-tests time out or fail (README, "The first run on a fresh machine"). Making kernels
/// ready must not change what the VMs measure; on an idle machine, the niceness costs nothing.
pub(crate) fn yield_cpu_to_vms() {
    // SAFETY: gettid and setpriority are plain system calls. On Linux a PRIO_PROCESS priority given a thread
    // id is that thread's own, and a child inherits the nice value of the thread that forks it. Lowering
    // one's own priority needs no privilege; should it fail all the same, the builds run as before.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
}

impl Session {
    /// Run `cells` on up to `jobs` threads (one VM each: a TCG guest keeps one core busy). Every cell is
    /// run; one whose host side fails (its kernel cannot be fetched, QEMU will not start) is reported with
    /// its error, and the others still run and are reported: a late failure never hides finished work.
    ///
    /// What the cells need is made ready beside them, not in their VM slots: one thread downloads the
    /// packaged kernels, another builds the kernel selftests and then the source kernels one after the
    /// other (in turn: a build of a source builds on the object tree of the one before). A VM
    /// slot takes the first cell, in order, whose kernel (and selftests) are ready, so cells of downloaded
    /// kernels run while kernels are still building.
    pub fn run_cells(&self, cells: &[Cell], jobs: usize) -> CellResults {
        self.progress.expect_cells(cells.len());
        let started: Vec<std::sync::atomic::AtomicBool> = cells.iter().map(|_| Default::default()).collect();
        let results: Vec<Mutex<Option<Result<CellRun>>>> = cells.iter().map(|_| Mutex::new(None)).collect();
        // A pure function of the config and the cell: computed once here, not at every poll below.
        let machines: Vec<Option<Machine>> = cells.iter().map(|cell| self.machine(cell)).collect();
        std::thread::scope(|scope| {
            scope.spawn(|| self.prepare(cells));
            for _ in 0..jobs.clamp(1, cells.len().max(1)) {
                scope.spawn(|| loop {
                    // After Ctrl-C no new VM is started.
                    if ksnap_vm::children::is_cancelled() {
                        break;
                    }
                    let unstarted =
                        || (0..cells.len()).filter(|&i| !started[i].load(std::sync::atomic::Ordering::SeqCst));
                    if unstarted().next().is_none() {
                        break;
                    }
                    let claimed = unstarted()
                        .filter(|&i| self.is_ready(&cells[i], machines[i].as_ref()))
                        .find(|&i| !started[i].swap(true, std::sync::atomic::Ordering::SeqCst));
                    match claimed {
                        Some(index) => {
                            let run = self.run_cell_in(&cells[index], machines[index].clone());
                            *results[index].lock().unwrap() = Some(run);
                        }
                        // Everything left waits for a download or a build.
                        None => std::thread::sleep(std::time::Duration::from_millis(100)),
                    }
                });
            }
        });
        let mut done = CellResults::default();
        for (cell, result) in cells.iter().zip(results) {
            match result.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(run)) => done.runs.push(run),
                Some(Err(error)) => done.errors.push((cell.clone(), error)),
                None => done.not_started.push(cell.clone()),
            }
        }
        done
    }

    /// Make ready what `cells` need, as [`Session::run_cells`] does beside its VM slots (and the `cargo test`
    /// trials beside theirs): one thread downloads the packaged kernels, another builds the kernel selftests
    /// and then the source kernels one after the other (in turn: a build of a source builds on the object
    /// tree of the one before). Errors stay in the kernel's (or the selftests') slot, for its cells
    /// to report. Returns when both are done.
    pub fn prepare(&self, cells: &[Cell]) {
        let mut kernels: Vec<&str> = Vec::new();
        for cell in cells {
            if !kernels.contains(&cell.kernel.as_str()) {
                kernels.push(&cell.kernel);
            }
        }
        let built = |name: &&str| matches!(self.config.kernels.get(*name), Some(KernelSource::Build(_)));
        let (to_build, to_fetch): (Vec<&str>, Vec<&str>) = kernels.into_iter().partition(built);
        let needs_selftests = cells.iter().any(|cell| self.needs_selftests(cell, self.machine(cell).as_ref()));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                yield_cpu_to_vms();
                to_fetch.iter().for_each(|name| drop(self.kernel(name)))
            });
            scope.spawn(|| {
                yield_cpu_to_vms();
                if needs_selftests {
                    drop(self.selftests());
                }
                to_build.iter().for_each(|name| drop(self.kernel(name)));
            });
        });
    }

    /// Whether what `cell` needs has been made ready (or has failed, which its run reports): its kernel,
    /// the selftests if its machine holds any, and its machine's saved state unless another cell is booting
    /// it to save it. Never waits.
    fn is_ready(&self, cell: &Cell, machine: Option<&Machine>) -> bool {
        // A kernel the matrix does not have is "ready": its run fails at once, saying so.
        let kernel_ready = !self.config.kernels.contains_key(&cell.kernel)
            || self.resolved_kernels.lock().unwrap().get(&cell.kernel).is_some_and(|slot| slot.is_decided());
        let selftests_ready = !self.needs_selftests(cell, machine) || self.selftests.is_decided();
        let machine_ready = match machine {
            Some(machine) if !self.boot_every_cell => self.machine_slot(&machine.id).try_lock().is_ok(),
            _ => true,
        };
        kernel_ready && selftests_ready && machine_ready
    }

    /// Whether the cell's initramfs holds kernel selftests: its suite's, or its machine's other suites'.
    fn needs_selftests(&self, cell: &Cell, machine: Option<&Machine>) -> bool {
        let suites = match machine {
            Some(machine) => machine.suites.clone(),
            None => vec![cell.suite.clone()],
        };
        suites.iter().any(|suite| self.config.suites[suite].runs_selftests())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preparing_thread_and_what_it_starts_run_at_nice_19_and_the_others_do_not() {
        // The nice value (field 19 of /proc/PID/stat) of a process the thread starts.
        let child_nice = || {
            let out = std::process::Command::new("sh").args(["-c", "cat /proc/$$/stat"]).output().unwrap();
            let stat = String::from_utf8(out.stdout).unwrap();
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name.split(' ').nth(16).unwrap().parse::<i32>().unwrap()
        };
        let before = child_nice();
        assert_ne!(before, 19, "the test needs a process that does not already run at nice 19");
        let in_thread = std::thread::spawn(move || {
            yield_cpu_to_vms();
            child_nice()
        })
        .join()
        .unwrap();
        assert_eq!(in_thread, 19);
        assert_eq!(child_nice(), before, "only the preparing thread yields, not the VM slots");
    }
}
