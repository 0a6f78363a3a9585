//! The [`Session`] and what it holds: QEMU, the accelerator, the cache, the pinned kernels, the probes'
//! executables, and the slots of what is made once (kernels, selftests) or saved once (machines).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::selftests::{Selftests, SelftestsRecipe};
use ksnap_vm::kernel::Kernel;
use ksnap_vm::{Accel, AccelChoice, Qemu};

use crate::progress::Progress;
use crate::project::config::Config;
use crate::project::kernels::{Kernels, LockMode};
use crate::project::matrix::Cell;

use super::executables::{self, ProbeExecutable};
use super::machine::{machine_of, Machine, MachineSlot};
use super::once::OnceSlot;

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
    pub(super) resolved_kernels: Mutex<HashMap<String, Arc<OnceSlot<Kernel>>>>,
    /// The kernel selftests, once built (the first cell that runs one builds them; the others wait).
    pub(super) selftests: OnceSlot<Arc<Selftests>>,
    /// Per machine ([`Machine::id`]), what is known of its saved state ([`SavedMachine`](super::machine::SavedMachine)). Locked
    /// while the first cell boots and saves it, so the others wait for the state instead of booting too.
    machines: Mutex<HashMap<String, Arc<MachineSlot>>>,
    /// Boot every cell, never saving or restoring a machine (`ksnap run --boot-every-cell`).
    pub boot_every_cell: bool,
    /// Held shared by every cell's run and exclusively by a run that must have the host to itself
    /// ([`Session::run_cell_alone`]): the retry of a cell whose VM was starved.
    pub(super) alone: RwLock<()>,
    pub(super) progress: Progress,
    /// Where each cell's console log is written.
    pub log_dir: PathBuf,
}

impl Session {
    /// Check for QEMU (first: it is the most likely thing to be missing), choose the accelerator, open
    /// the cache and make every probe's executable.
    ///
    /// Kernels boot exactly as `ksnap.lock` pins them; `lock_mode` says whether a missing entry may be added.
    pub fn start(config: Config, accel: AccelChoice, progress: Progress, lock_mode: LockMode) -> Result<Session> {
        let qemu = Qemu::locate()?;
        let resolved = accel.resolve(&qemu)?;
        let accel = resolved.accel;
        let cache = Cache::user_default()?;
        let kernels = Kernels::open(config.clone(), cache.clone(), lock_mode)?;
        let task = progress.start("probes");
        let probe_executables = executables::build_all(&config)?;
        task.finish("built");
        let log_dir = config.root.join("target").join("ksnap").join("logs");
        record_accelerator(&config.root, &resolved)?;
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

    /// Debian's changelog of kernel `name` (`kernel`, as [`Session::kernel`] made it), read as `ksnap lock
    /// --update` reads one (downloaded again for a cache entry made before ksnap kept changelogs): `None`
    /// when it has none.
    pub fn changelog(&self, name: &str, kernel: &Kernel) -> Result<Option<String>> {
        let source = self.config.kernels.get(name).with_context(|| format!("unknown kernel `{name}`"))?;
        let (cache, archives) = (&self.kernels.cache, &self.kernels.archives);
        // The pin (an apt query) matters only when the cache entry has no changelog to read.
        let pin = if kernel.changelog.is_some() { None } else { source.pin(archives).ok().flatten() };
        let mut report = |step: &str| eprintln!("ksnap: {name}: {step}");
        Ok(source.changelog(pin.as_ref(), kernel, cache, archives, &mut report)?)
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

    /// The machine `cell` runs in ([`machine_of`]), or `None` if its suite boots fresh.
    pub fn machine(&self, cell: &Cell) -> Option<Machine> {
        machine_of(&self.config, cell)
    }

    /// The slot of machine `id`, made on first use.
    pub(super) fn machine_slot(&self, id: &str) -> Arc<MachineSlot> {
        self.machines.lock().unwrap().entry(id.to_string()).or_default().clone()
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

/// Where every session records the accelerator it resolved, and why: a CI step puts it in the job summary
/// (under `cargo test` the cells' output is not shown).
pub const ACCELERATOR_FILE: &str = "target/ksnap/accelerator.txt";

/// Write [`ACCELERATOR_FILE`] under the project's `root`: `kvm (a test guest runs under KVM)`, `tcg (KVM
/// not used: cannot open /dev/kvm: …)`. Written whole and renamed into place: sessions of parallel test
/// processes write it at once.
fn record_accelerator(root: &std::path::Path, resolved: &ksnap_vm::Resolved) -> Result<()> {
    let path = root.join(ACCELERATOR_FILE);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut file =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, format!("{resolved}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(&path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
