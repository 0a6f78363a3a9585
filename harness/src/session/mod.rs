//! A session ([`Session`]): everything needed to run cells of the matrix — QEMU, the accelerator, the
//! probes' executables, the cache and the kernels resolved so far — and running them: [`cell`] runs one,
//! [`schedule`] runs many side by side and makes ready what they need, [`machine`] groups cells into
//! machines that boot once, [`once`] holds what is made once per session (a kernel, the selftests), and
//! [`executables`] builds the probes into guest executables.
//!
//! **Boot once per machine.** Cells whose VMs are the same apart from the plan — one kernel, the same
//! memory, CPUs and kernel command line (variant and suite words) — share a *machine*: its initramfs holds
//! the probes of every suite of ksnap.toml that runs on it (so it is the same whichever cells are
//! selected), the first of its cells boots it and saves it when init waits for its plan
//! ([`ksnap_vm::run_saving`]), and every later cell, in this run or any later one, restores that state
//! and sends its own plan ([`ksnap_vm::machine::vmstate`]). A suite with `fresh_boot = true` always boots. Two
//! suites of a machine with probes of one name but different executables cannot share an initramfs: the
//! later one (in ksnap.toml's order) gets a machine of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::selftests::{Selftests, SelftestsRecipe};
use ksnap_vm::kernel::Kernel;
use ksnap_vm::{Accel, AccelChoice, Qemu};

use crate::present::progress::Progress;
use crate::project::config::Config;
use crate::project::kernels::{Kernels, LockMode};

pub mod cell;
pub mod executables;
pub mod machine;
pub mod once;
pub mod schedule;

pub use cell::{is_starved, CellRun, Started, STARVED_ABOVE, STARVED_MIN_WAIT};
pub use executables::ProbeExecutable;
pub use machine::Machine;
pub use schedule::CellResults;

use machine::MachineSlot;
use once::OnceSlot;

/// Everything one run of `ksnap` (or of the `cargo test` trials) needs to run cells of its matrix, shared by
/// the threads that run them side by side.
pub struct Session {
    pub config: Config,
    pub qemu: Qemu,
    pub accel: Accel,
    pub cache: Cache,
    /// The matrix's kernels, pinned through ksnap.lock.
    pub kernels: Kernels,
    /// The executable of every probe that is not a kernel selftest, by (suite, probe): built (Cargo, C) or
    /// checked (`exe`) once when the session starts; cells running in parallel only ever read them.
    probe_executables: HashMap<(String, String), ProbeExecutable>,
    /// Per kernel name, the kernel once resolved. Cells run in parallel: the slot makes the other cells of
    /// a kernel that is being fetched or built wait for it instead of starting on it too. A kernel that
    /// could not be had keeps its error, so its other cells fail at once with it.
    resolved_kernels: Mutex<HashMap<String, Arc<OnceSlot<Kernel>>>>,
    /// The kernel selftests, once built (the first cell that runs one builds them; the others wait).
    selftests: OnceSlot<Arc<Selftests>>,
    /// Per machine ([`Machine::id`]), what is known of its saved state ([`machine::SavedMachine`]). Locked
    /// while the first cell boots and saves it, so the others wait for the state instead of booting too.
    machines: Mutex<HashMap<String, Arc<MachineSlot>>>,
    /// Boot every cell, never saving or restoring a machine (`ksnap run --boot-every-cell`).
    pub boot_every_cell: bool,
    /// Held shared by every cell's run and exclusively by a run that must have the host to itself
    /// ([`Session::run_cell_alone`]): the retry of a cell whose VM was starved.
    alone: RwLock<()>,
    progress: Progress,
    /// Where each cell's console log is written.
    pub log_dir: std::path::PathBuf,
}

impl Session {
    /// Check for QEMU (first: it is the most likely thing to be missing), choose the accelerator, open
    /// the cache and make every probe's executable.
    ///
    /// Kernels boot exactly as `ksnap.lock` pins them; `lock_mode` says whether a missing entry may be added.
    pub fn start(config: Config, accel: AccelChoice, progress: Progress, lock_mode: LockMode) -> Result<Session> {
        let qemu = Qemu::locate()?;
        let accel = accel.resolve(&qemu)?;
        let cache = Cache::user_default()?;
        let kernels = Kernels::open(config.clone(), cache.clone(), lock_mode)?;
        let task = progress.start("probes");
        let probe_executables = executables::build_all(&config)?;
        task.finish("built");
        let log_dir = config.root.join("target").join("ksnap").join("logs");
        Ok(Session {
            config,
            qemu,
            accel,
            cache,
            kernels,
            probe_executables,
            resolved_kernels: Mutex::new(HashMap::new()),
            selftests: OnceSlot::new(),
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
        let slot = self.resolved_kernels.lock().unwrap().entry(name.to_string()).or_default().clone();
        slot.get_or_make(|| {
            let task = self.progress.start(&format!("kernel {name}"));
            let resolved = self.kernels.resolve(name, &mut |step| task.step(step));
            match &resolved {
                Ok(kernel) => task.finish(&format!("{} ({})", kernel.release, kernel.image.display())),
                Err(_) => task.finish("failed"),
            }
            resolved
        })
    }

    /// The kernel selftests of ksnap.toml's `[selftests]` source, built into the cache if needed (once
    /// per session): every collection any suite uses, in one build.
    pub fn selftests(&self) -> Result<Arc<Selftests>> {
        self.selftests.get_or_make(|| {
            let task = self.progress.start("kernel selftests");
            let built = build_selftests(&self.config, &self.kernels, &self.cache, &mut |step| task.step(step));
            match &built {
                Ok(selftests) => task.finish(&format!("{} {}", selftests.source.name, selftests.source.version)),
                Err(_) => task.finish("failed"),
            }
            built.map(Arc::new)
        })
    }

    /// The executable of probe `probe` of suite `suite` (not a kernel selftest), made when the session started.
    pub fn probe_executable(&self, suite: &str, probe: &str) -> &ProbeExecutable {
        &self.probe_executables[&(suite.to_string(), probe.to_string())]
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
