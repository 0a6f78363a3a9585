//! A session: everything needed to run cells of the matrix — QEMU, the accelerator, the guest binaries,
//! the cache and the kernels resolved so far — and running one cell.
//!
//! **Boot once per machine.** Cells whose VMs are the same apart from the plan — one kernel, the same
//! memory, CPUs and kernel command line (variant and suite words) — share a *machine*: its initramfs holds
//! the probes of every suite of ksnap.toml that runs on it (so it is the same whichever cells are
//! selected), the first of its cells boots it and saves it when init waits for its plan
//! ([`ksnap_vm::run_saving`]), and every later cell, in this run or any later one, restores that state
//! and sends its own plan ([`ksnap_vm::machine::vmstate`]). A suite with `fresh_boot = true` always boots. Two
//! suites of a machine with probes of one name but different executables cannot share an initramfs: the
//! later one (in ksnap.toml's order) gets a machine of its own.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::selftests::{Selftests, SelftestsRecipe};
use ksnap_vm::kernel::{Kernel, KernelSource};
use ksnap_vm::machine::spec::ProbeSpec;
use ksnap_vm::machine::spec::SavedState;
use ksnap_vm::machine::vmstate;
use ksnap_vm::{Accel, AccelChoice, Qemu, RunReport, Start, Vm};

use crate::config::{Config, ProbeKind};
use crate::facts::{facts_of, Facts};
use crate::guest;
use crate::kernels::{Kernels, LockMode};
use crate::matrix::Cell;
use crate::progress::Progress;

pub struct Session {
    pub config: Config,
    pub qemu: Qemu,
    pub accel: Accel,
    pub cache: Cache,
    /// The matrix's kernels, pinned through ksnap.lock.
    pub kernels_locked: Kernels,
    /// The executable of every probe that is not a kernel selftest, by (suite, probe): built (Cargo, C) or
    /// checked (`exe`) once when the session starts; cells running in parallel only ever read them.
    probe_binaries: HashMap<(String, String), ProbeBinary>,
    /// Per kernel name, the kernel once resolved. Cells run in parallel: the slot's lock makes the other
    /// cells of a kernel that is being fetched or built wait for it instead of starting on it too.
    /// A kernel that could not be had keeps its error, so its other cells fail at once with it.
    kernels: Mutex<HashMap<String, Arc<KernelSlot>>>,
    /// The kernel selftests, once built (the first cell that runs one builds them; the others wait).
    selftests: Mutex<Option<Result<Arc<Selftests>, String>>>,
    /// Per machine ([`Machine::id`]), its saved state once known: `Some(Some(state))` to restore,
    /// `Some(None)` when it could not be saved (its cells boot). Locked while the first cell boots and
    /// saves it, so the others wait for the state instead of booting too.
    machines: Mutex<HashMap<String, Arc<MachineSlot>>>,
    /// Boot every cell, never saving or restoring a machine (`ksnap run --boot-every-cell`).
    pub boot_every_cell: bool,
    /// Held shared by every cell's run and exclusively by a run that must have the host to itself
    /// ([`Session::run_cell_alone`]): the retry of a cell whose VM was starved.
    alone: RwLock<()>,
    progress: Progress,
    /// Where each cell's console log is written.
    pub log_dir: PathBuf,
}

type MachineSlot = Mutex<Option<Option<SavedState>>>;

/// The VM a cell runs in, apart from its plan: what cells share when they restore one saved boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The kernel, memory, CPUs, command line and member suites, as one string: the session's key for it.
    pub id: String,
    /// The suites whose probes its initramfs holds, in ksnap.toml's order.
    pub suites: Vec<String>,
}

/// How a cell's VM started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Booted (a `fresh_boot` suite, `--boot-every-cell`, or a machine that could not be saved).
    Booted,
    /// Booted, and saved for the machine's other cells.
    BootedAndSaved,
    /// Restored from the machine's saved state.
    Restored,
}

/// A probe's executable, ready to be packed into an initramfs.
#[derive(Debug, Clone)]
pub struct ProbeBinary {
    /// The static executable on the host.
    pub path: PathBuf,
    /// For a prebuilt (`exe`) probe, the SHA-256 of its bytes: all the snapshot metadata can say of it.
    pub sha256: Option<String>,
}

/// Whether a slot that is filled once (a kernel, the selftests) is filled: not while it is being filled.
/// A slot whose filler panicked counts as filled: the cell's own attempt says what is wrong.
fn decided<T>(slot: &Mutex<Option<T>>) -> bool {
    match slot.try_lock() {
        Ok(value) => value.is_some(),
        Err(std::sync::TryLockError::WouldBlock) => false,
        Err(std::sync::TryLockError::Poisoned(_)) => true,
    }
}

/// One kernel of a session: not resolved yet, resolved, or failed (with its error, kept).
type KernelSlot = Mutex<Option<Result<Kernel, String>>>;

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

/// One cell's run.
#[derive(Debug)]
pub struct CellRun {
    pub cell: Cell,
    pub kernel: Kernel,
    pub report: RunReport,
    pub console_log: PathBuf,
    /// The suite's `kernel_config` options with this kernel's values (`y`, `m`, a string, `not set`, or
    /// `absent` from the config: see [`Kernel::config_setting`]; `unknown` when the kernel came without its
    /// config).
    pub kernel_config: Vec<(String, String)>,
    /// Whether the VM booted or was restored.
    pub started: Started,
}

/// A VM whose vCPUs waited for a CPU for more than this part of the time they wanted one, and for at least
/// [`STARVED_MIN_WAIT`] in all, was starved: what it measured may be the host's load (README, "A starved VM",
/// has the measurements this comes from).
pub const STARVED_ABOVE: f64 = 0.15;
/// A VM that waited less than this in all was not slowed down enough to matter, whatever the share (a short
/// cell's few samples make its share noisy: a 0.4 s cell on an idle host read 26 %, 0.1 s). Beside CPU hogs
/// the shortest cells of the matrix (demand_paging, restored: 2 s) wait 0.7 s and more.
pub const STARVED_MIN_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether a VM that got `cpu` from the host was starved ([`STARVED_ABOVE`], [`STARVED_MIN_WAIT`]).
pub fn is_starved(cpu: &ksnap_vm::machine::hostcpu::HostCpu) -> bool {
    cpu.waited_share() > STARVED_ABOVE && cpu.waited >= STARVED_MIN_WAIT
}

impl CellRun {
    /// Every fact of the run: what the probes observed, and the suite's kernel config options as
    /// `(config).CONFIG_…`.
    pub fn facts(&self) -> Facts {
        let mut facts = match &self.report.outcome {
            ksnap_vm::Outcome::Completed(guest) => facts_of(&guest.probes),
            _ => Facts::new(),
        };
        for (option, value) in &self.kernel_config {
            facts.insert(format!("(config).{option}"), value.clone());
        }
        facts
    }

    /// The cell passed: the VM completed and every probe passed — a kernel selftest by running at all:
    /// what its cases found (failures included) is a result for the snapshot, not a broken cell.
    pub fn passed(&self) -> bool {
        match &self.report.outcome {
            ksnap_vm::Outcome::Completed(guest) => guest.probes.iter().all(|p| p.passed()),
            _ => false,
        }
    }

    /// Whether the cell's VM was starved of CPU by other work on the host ([`is_starved`]).
    pub fn starved(&self) -> bool {
        self.report.host_cpu.as_ref().is_some_and(is_starved)
    }

    /// Whether one probe of the cell passed: a kernel selftest when its binary's result is a pass (exit 0).
    pub fn probe_passed(&self, probe: &ksnap_readers::channel::ProbeRun) -> bool {
        probe.binary_passed()
    }
}

/// Lower the calling thread, and every process it starts from now on (make, the compilers, apt-get), to
/// the lowest priority, nice 19. Under TCG a guest runs only as fast as its vCPU thread gets a core: a kernel
/// build at the VMs' priority beside two VMs on two cores made the kselftest_mm cells of 6.12 take twice as
/// long, and uffd-unit-tests time out or fail (README, "The first run on a fresh machine"). Making kernels
/// ready must not change what the VMs measure; on an idle machine, the niceness costs nothing.
fn yield_cpu_to_vms() {
    // SAFETY: gettid and setpriority are plain system calls. On Linux a PRIO_PROCESS priority given a thread
    // id is that thread's own, and a child inherits the nice value of the thread that forks it. Lowering
    // one's own priority needs no privilege; should it fail all the same, the builds run as before.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
}

impl Session {
    /// Check for QEMU (first: it is the most likely thing to be missing), choose the accelerator, open
    /// the cache and make every probe's executable.
    ///
    /// Kernels boot exactly as `ksnap.lock` pins them; `lock` says whether a missing entry may be added.
    pub fn start(config: Config, accel: AccelChoice, progress: Progress, lock: LockMode) -> Result<Session> {
        let qemu = Qemu::locate()?;
        let accel = accel.resolve(&qemu)?;
        let cache = Cache::user_default()?;
        let kernels_locked = Kernels::open(config.clone(), cache.clone(), lock)?;
        let task = progress.start("probes");
        let probe_binaries = build_probes(&config)?;
        task.finish("built");
        let log_dir = config.root.join("target").join("ksnap").join("logs");
        Ok(Session {
            config,
            qemu,
            accel,
            cache,
            kernels_locked,
            probe_binaries,
            kernels: Mutex::new(HashMap::new()),
            selftests: Mutex::new(None),
            machines: Mutex::new(HashMap::new()),
            boot_every_cell: false,
            alone: RwLock::new(()),
            progress,
            log_dir,
        })
    }

    /// The kernel named `name` in the matrix, fetched into the cache if needed (once per session).
    pub fn kernel(&self, name: &str) -> Result<Kernel> {
        self.config.kernels.get(name).with_context(|| format!("unknown kernel `{name}`"))?;
        let slot = self.kernels.lock().unwrap().entry(name.to_string()).or_default().clone();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(Ok(kernel)) => return Ok(kernel.clone()),
            Some(Err(error)) => anyhow::bail!("{error}"),
            None => {}
        }
        let task = self.progress.start(&format!("kernel {name}"));
        match self.kernels_locked.resolve(name, &mut |step| task.step(step)) {
            Ok(kernel) => {
                task.finish(&format!("{} ({})", kernel.release, kernel.image.display()));
                *slot = Some(Ok(kernel.clone()));
                Ok(kernel)
            }
            Err(error) => {
                task.finish("failed");
                // An interrupt is not the kernel's fault: the next attempt may succeed.
                if !ksnap_vm::children::is_cancelled() {
                    *slot = Some(Err(format!("{error:#}")));
                }
                Err(error)
            }
        }
    }

    /// The kernel selftests of ksnap.toml's `[selftests]` source, built into the cache if needed (once
    /// per session): every collection any suite uses, in one build.
    pub fn selftests(&self) -> Result<Arc<Selftests>> {
        let mut slot = self.selftests.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(Ok(selftests)) => return Ok(selftests.clone()),
            Some(Err(error)) => anyhow::bail!("{error}"),
            None => {}
        }
        let task = self.progress.start("kernel selftests");
        let result =
            build_selftests(&self.config, &self.kernels_locked, &self.cache, &mut |step| task.step(step)).map(Arc::new);
        match result {
            Ok(selftests) => {
                task.finish(&format!("{} {}", selftests.source.name, selftests.source.version));
                *slot = Some(Ok(selftests.clone()));
                Ok(selftests)
            }
            Err(error) => {
                task.finish("failed");
                if !ksnap_vm::children::is_cancelled() {
                    *slot = Some(Err(format!("{error:#}")));
                }
                Err(error)
            }
        }
    }

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
        let started: Vec<std::sync::atomic::AtomicBool> = cells.iter().map(|_| Default::default()).collect();
        let results: Vec<Mutex<Option<Result<CellRun>>>> = cells.iter().map(|_| Mutex::new(None)).collect();
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
                        .filter(|&i| self.is_ready(&cells[i]))
                        .find(|&i| !started[i].swap(true, std::sync::atomic::Ordering::SeqCst));
                    match claimed {
                        Some(index) => *results[index].lock().unwrap() = Some(self.run_cell(&cells[index])),
                        // Everything left waits for a download or a build.
                        None => std::thread::sleep(std::time::Duration::from_millis(100)),
                    }
                });
            }
        });
        let mut outcome = CellResults::default();
        for (cell, result) in cells.iter().zip(results) {
            match result.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(run)) => outcome.runs.push(run),
                Some(Err(error)) => outcome.errors.push((cell.clone(), error)),
                None => outcome.not_started.push(cell.clone()),
            }
        }
        outcome
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
        let needs_selftests = cells.iter().any(|cell| self.needs_selftests(cell));
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
    fn is_ready(&self, cell: &Cell) -> bool {
        // A kernel the matrix does not have is "ready": its run fails at once, saying so.
        let kernel_ready = !self.config.kernels.contains_key(&cell.kernel)
            || self.kernels.lock().unwrap().get(&cell.kernel).cloned().is_some_and(|slot| decided(&slot));
        let selftests_ready = !self.needs_selftests(cell) || decided(&self.selftests);
        let machine_ready = match self.machine(cell) {
            Some(machine) if !self.boot_every_cell => self.machine_slot(&machine.id).try_lock().is_ok(),
            _ => true,
        };
        kernel_ready && selftests_ready && machine_ready
    }

    /// Whether the cell's initramfs holds kernel selftests: its suite's, or its machine's other suites'.
    fn needs_selftests(&self, cell: &Cell) -> bool {
        let suites = match self.machine(cell) {
            Some(machine) => machine.suites,
            None => vec![cell.suite.clone()],
        };
        suites.iter().any(|suite| self.config.suites[suite].runs_selftests())
    }

    /// The machine `cell` runs in, or `None` if its suite boots fresh. Its suites are those of ksnap.toml
    /// that run with the same memory, CPUs and command line (under any of their variants) and boot from
    /// saved states, the cell's own first; a suite with a probe whose name another member already has for
    /// a different executable is left out.
    pub fn machine(&self, cell: &Cell) -> Option<Machine> {
        let config = &self.config;
        let own = config.suites.get(&cell.suite)?;
        if own.fresh_boot {
            return None;
        }
        let cmdline_of = |variant: &str, suite: &crate::config::Suite| -> Option<Vec<String>> {
            Some(config.variants.get(variant)?.cmdline.iter().chain(&suite.cmdline).cloned().collect())
        };
        let cmdline = cmdline_of(&cell.variant, own)?;
        let mut members: Vec<&crate::config::Suite> = vec![own];
        let candidates = config.suites.values().filter(|s| s.name != own.name && !s.fresh_boot);
        for suite in candidates.filter(|s| (s.memory_mib, s.cpus) == (own.memory_mib, own.cpus)) {
            let same_machine = suite.variants.iter().any(|v| cmdline_of(v, suite).as_ref() == Some(&cmdline));
            let clashes = suite.probes.iter().any(|probe| {
                members.iter().flat_map(|m| &m.probes).any(|p| p.name == probe.name && p.kind != probe.kind)
            });
            if same_machine && !clashes {
                members.push(suite);
            }
        }
        let mut suites: Vec<String> = members.iter().map(|s| s.name.clone()).collect();
        suites.sort_by_key(|name| config.suites.keys().position(|k| k == name));
        let id = format!(
            "{} {}M {}cpu [{}] {{{}}}",
            cell.kernel,
            own.memory_mib,
            own.cpus,
            cmdline.join(" "),
            suites.join(" ")
        );
        Some(Machine { id, suites })
    }

    fn machine_slot(&self, id: &str) -> Arc<MachineSlot> {
        self.machines.lock().unwrap().entry(id.to_string()).or_default().clone()
    }

    /// Run the cell's suite on its kernel — restored from its machine's saved state, or booted (and saved
    /// for the machine's other cells) — and return what happened. An `Err` is a problem on the host (no
    /// kernel, QEMU would not start); what happened in the guest is in the report's outcome.
    pub fn run_cell(&self, cell: &Cell) -> Result<CellRun> {
        let kernel = self.kernel(&cell.kernel)?;
        let _shared = self.alone.read().unwrap_or_else(|e| e.into_inner());
        self.run_cell_with(cell, kernel)
    }

    /// [`Session::run_cell`] with no other VM of this session running beside it: it waits for the running
    /// cells to end, and the others wait for it. For the retry of a cell whose VM was starved.
    pub fn run_cell_alone(&self, cell: &Cell) -> Result<CellRun> {
        let kernel = self.kernel(&cell.kernel)?;
        let _exclusive = self.alone.write().unwrap_or_else(|e| e.into_inner());
        self.run_cell_with(cell, kernel)
    }

    fn run_cell_with(&self, cell: &Cell, kernel: Kernel) -> Result<CellRun> {
        let suite = &self.config.suites[&cell.suite];
        let variant = &self.config.variants[&cell.variant];
        let machine = self.machine(cell).filter(|_| !self.boot_every_cell);
        let binary = |suite: &str, probe: &crate::config::Probe| -> Result<PathBuf> {
            Ok(match &probe.kind {
                ProbeKind::Kselftest { test } => self.selftests()?.binary(test)?,
                _ => self.probe_binary(suite, &probe.name).path.clone(),
            })
        };
        let mut vm = Vm::new(&kernel.image)
            .memory_mib(suite.memory_mib)
            .cpus(suite.cpus)
            .accel(self.accel)
            .cmdline(variant.cmdline.iter().chain(&suite.cmdline).cloned());
        for probe in &suite.probes {
            vm = vm.probe_spec(ProbeSpec {
                name: probe.name.clone(),
                binary: binary(&suite.name, probe)?,
                args: probe.args.clone(),
                timeout: suite.probe_timeout,
                format: match probe.kind {
                    ProbeKind::Kselftest { .. } => ksnap_vm::Format::Kselftest,
                    _ => ksnap_vm::Format::Ktap,
                },
            });
        }
        let members = machine.as_ref().map_or_else(|| vec![suite.name.clone()], |m| m.suites.clone());
        for member in &members {
            for probe in &self.config.suites[member].probes {
                vm = vm.pack(&probe.name, binary(member, probe)?);
            }
        }
        if members.iter().any(|member| self.config.suites[member].runs_selftests()) {
            vm = vm.busybox(guest::static_busybox()?);
        }
        let mut spec = vm.spec(&self.cache)?;
        let task = self.progress.start(&cell.id());
        let (report, started) = match machine {
            None => {
                task.step(&format!("booting {} under {}", kernel.release, self.accel));
                (ksnap_vm::run(&self.qemu, &spec)?, Started::Booted)
            }
            Some(machine) => self.run_on_machine(&machine, &mut spec, &|step| task.step(step))?,
        };
        let how = match started {
            Started::Booted => "",
            Started::BootedAndSaved => ", saved",
            Started::Restored => ", restored",
        };
        let ready =
            report.ready_after.map_or_else(String::new, |t| format!(", init ready after {:.2}s", t.as_secs_f64()));
        let starved = match report.host_cpu {
            Some(cpu) if is_starved(&cpu) => format!(", STARVED: QEMU {cpu}"),
            Some(cpu) => format!(", QEMU {cpu}"),
            None => String::new(),
        };
        task.finish(&format!("{} in {:.1}s{how}{ready}{starved}", report.outcome, report.duration.as_secs_f64()));
        let console_log = self.write_console_log(cell, &report)?;
        let kernel_config = suite
            .kernel_config
            .iter()
            .map(|option| (option.clone(), kernel.config_setting(option).unwrap_or_else(|| "unknown".into())))
            .collect();
        Ok(CellRun { cell: cell.clone(), kernel, report, console_log, kernel_config, started })
    }

    /// Run `spec` on its machine: restore the machine's saved state, or boot it and save it (the first cell
    /// of the machine, while the others wait), or boot it when it could not be saved.
    fn run_on_machine(
        &self,
        machine: &Machine,
        spec: &mut ksnap_vm::VmSpec,
        step: &dyn Fn(&str),
    ) -> Result<(RunReport, Started)> {
        let slot = self.machine_slot(&machine.id);
        let mut known = slot.lock().unwrap_or_else(|e| e.into_inner());
        if known.is_none() {
            let key = vmstate::key(&self.qemu, spec)?;
            if let Some(state) = vmstate::lookup(&self.cache, &key) {
                *known = Some(Some(state));
            }
        }
        match known.clone() {
            Some(Some(state)) => {
                drop(known);
                step(&format!("restoring its saved machine ({})", state.key));
                spec.start = Start::Restore(state.clone());
                match ksnap_vm::run(&self.qemu, spec) {
                    Ok(report) => Ok((report, Started::Restored)),
                    Err(ksnap_vm::Error::VmState { why, .. }) => {
                        // Keyed and verified, and still refused: drop it, and boot this machine's cells.
                        step(&format!("the saved machine would not restore ({why}); booting"));
                        vmstate::remove(&self.cache, &state.key)?;
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(None);
                        spec.start = Start::Boot;
                        Ok((ksnap_vm::run(&self.qemu, spec)?, Started::Booted))
                    }
                    Err(other) => Err(other.into()),
                }
            }
            Some(None) => {
                drop(known);
                step("booting (its machine could not be saved)");
                Ok((ksnap_vm::run(&self.qemu, spec)?, Started::Booted))
            }
            None => {
                step("booting, to save its machine for the others");
                let mut holder = Some(known);
                let mut saved_ok = false;
                let report = ksnap_vm::run_saving(&self.qemu, spec, &self.cache, &mut |saved| {
                    if let Err(error) = &saved {
                        step(&format!("not saved: {error}"));
                    }
                    saved_ok = saved.is_ok();
                    if let Some(mut known) = holder.take() {
                        *known = Some(saved.ok());
                    }
                });
                // A VM that never reached init's hello saved nothing and decided nothing: the next cell
                // of the machine tries again (dropping `holder` unlocks the slot, still undecided).
                drop(holder);
                Ok((report?, if saved_ok { Started::BootedAndSaved } else { Started::Booted }))
            }
        }
    }

    /// The executable of probe `probe` of suite `suite` (not a kernel selftest), made when the session started.
    pub fn probe_binary(&self, suite: &str, probe: &str) -> &ProbeBinary {
        &self.probe_binaries[&(suite.to_string(), probe.to_string())]
    }

    fn write_console_log(&self, cell: &Cell, report: &RunReport) -> Result<PathBuf> {
        let path = self.log_dir.join(format!("{}.console.log", cell.id().replace("::", "--")));
        // The console with each line of probe stderr marked where it arrived (probe stderr is not kernel output).
        write_file(&path, crate::console_log::console_log(report).as_bytes())?;
        Ok(path)
    }
}

/// The kernel selftests of ksnap.toml's `[selftests]` source, built into the cache if needed: every
/// collection any suite uses, in one build.
pub fn build_selftests(
    config: &Config,
    kernels: &Kernels,
    cache: &Cache,
    step: &mut dyn FnMut(&str),
) -> Result<Selftests> {
    let source = kernels
        .selftests_pin(step)?
        .context("a suite runs kernel selftests, but ksnap.toml has no [selftests] source to build them from")?;
    let recipe = SelftestsRecipe { collections: config.selftest_collections() };
    let suite = config.selftests.as_ref().and_then(|s| s.suite.as_deref());
    recipe
        .resolve(&source, suite, cache, &kernels.archives, step)
        .with_context(|| format!("building the kernel selftests from {source}"))
}

/// Every probe's executable that is not a kernel selftest, by (suite, probe): Cargo binaries built with
/// one cargo invocation per (package, profile), C probes compiled, prebuilt executables checked.
fn build_probes(config: &Config) -> Result<HashMap<(String, String), ProbeBinary>> {
    let mut binaries = HashMap::new();
    // (package, profile) → the (suite, probe, bin) built from it.
    type Wanted<'a> = Vec<(&'a str, &'a str, &'a str)>;
    let mut cargo_builds: BTreeMap<(&str, &str), Wanted> = BTreeMap::new();
    for suite in config.suites.values() {
        for probe in &suite.probes {
            let key = (suite.name.clone(), probe.name.clone());
            let binary = match &probe.kind {
                ProbeKind::Cargo { package, bin, profile } => {
                    cargo_builds.entry((package, profile)).or_default().push((&suite.name, &probe.name, bin));
                    continue;
                }
                ProbeKind::C { sources, cc, .. } => ProbeBinary {
                    path: guest::build_c_probe(&config.root, &suite.name, &probe.name, sources, cc)?,
                    sha256: None,
                },
                ProbeKind::Exe { path } => {
                    let path = guest::prebuilt_probe(path)?;
                    let sha256 = ksnap_vm::cache::sha256_file(&path)
                        .with_context(|| format!("reading probe executable {}", path.display()))?;
                    ProbeBinary { path, sha256: Some(sha256) }
                }
                ProbeKind::Kselftest { .. } => continue,
            };
            binaries.insert(key, binary);
        }
    }
    for ((package, profile), probes) in cargo_builds {
        let mut bins: Vec<&str> = probes.iter().map(|&(_, _, bin)| bin).collect();
        bins.sort_unstable();
        bins.dedup();
        let built = guest::build_cargo_probes(&config.root, package, profile, &bins)?;
        for (suite, probe, bin) in probes {
            binaries
                .insert((suite.to_string(), probe.to_string()), ProbeBinary { path: built[bin].clone(), sha256: None });
        }
    }
    Ok(binaries)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_decided_once_filled_and_not_while_being_filled() {
        let slot: Mutex<Option<Result<u32, String>>> = Mutex::new(None);
        assert!(!decided(&slot));
        {
            let _filling = slot.lock().unwrap();
            assert!(!decided(&slot), "locked by its filler: not decided yet");
        }
        *slot.lock().unwrap() = Some(Err("no such kernel".into()));
        assert!(decided(&slot), "a failure is decided too: the cell reports it");
        let poisoned: Mutex<Option<u32>> = Mutex::new(None);
        let _ = std::panic::catch_unwind(|| {
            let _guard = poisoned.lock().unwrap();
            panic!("the build panicked");
        });
        assert!(decided(&poisoned), "a panicked filler must not leave cells waiting forever");
    }

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
