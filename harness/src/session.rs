//! A session: everything needed to run cells of the matrix — QEMU, the accelerator, the guest binaries,
//! the cache and the kernels resolved so far — and running one cell.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use ksnap_vm::cache::Cache;
use ksnap_vm::initramfs::{InitramfsSpec, ProbePlan};
use ksnap_vm::kernel::Kernel;
use ksnap_vm::{Accel, AccelChoice, Qemu, RunReport, Timeouts, VmSpec};

use crate::config::{Config, ProbeKind};
use crate::guest::{self, GuestBinaries};
use crate::kernels::{Kernels, LockMode};
use crate::matrix::Cell;
use crate::progress::Progress;
use crate::results::{facts_of, Facts};

pub struct Session {
    pub config: Config,
    pub qemu: Qemu,
    pub accel: Accel,
    pub cache: Cache,
    /// The matrix's kernels, pinned through ksnap.lock.
    pub kernels_locked: Kernels,
    guest: GuestBinaries,
    /// Per kernel name, the kernel once resolved. Cells run in parallel: the slot's lock makes the other
    /// cells of a kernel that is being fetched or built wait for it instead of starting on it too.
    kernels: Mutex<HashMap<String, Arc<Mutex<Option<Kernel>>>>>,
    progress: Progress,
    /// Where each cell's console log is written.
    pub log_dir: PathBuf,
}

/// One cell's run.
#[derive(Debug)]
pub struct CellRun {
    pub cell: Cell,
    pub kernel: Kernel,
    pub report: RunReport,
    pub console_log: PathBuf,
    /// The suite's `kernel_config` options with this kernel's values (`y`, `m`, a string, or `unset`;
    /// `unknown` when the kernel came without its config).
    pub kernel_config: Vec<(String, String)>,
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

    /// The cell passed: the VM completed and every probe passed.
    pub fn passed(&self) -> bool {
        match &self.report.outcome {
            ksnap_vm::Outcome::Completed(guest) => guest.probes.iter().all(|p| p.passed()),
            _ => false,
        }
    }
}

impl Session {
    /// Check for QEMU (first: it is the most likely thing to be missing), choose the accelerator, open
    /// the cache and build the guest binaries.
    ///
    /// Kernels boot exactly as `ksnap.lock` pins them; `lock` says whether a missing entry may be added.
    pub fn start(config: Config, accel: AccelChoice, progress: Progress, lock: LockMode) -> Result<Session> {
        let qemu = Qemu::locate()?;
        let accel = accel.resolve(&qemu)?;
        let cache = Cache::user_default()?;
        let kernels_locked = Kernels::open(config.clone(), cache.clone(), lock)?;
        let task = progress.start("guest binaries");
        let guest = guest::build(&config.root)?;
        task.finish("built");
        let log_dir = config.root.join("target").join("ksnap").join("logs");
        Ok(Session {
            config,
            qemu,
            accel,
            cache,
            kernels_locked,
            guest,
            kernels: Mutex::new(HashMap::new()),
            progress,
            log_dir,
        })
    }

    /// The kernel named `name` in the matrix, fetched into the cache if needed (once per session).
    pub fn kernel(&self, name: &str) -> Result<Kernel> {
        self.config.kernels.get(name).with_context(|| format!("unknown kernel `{name}`"))?;
        let slot = self.kernels.lock().unwrap().entry(name.to_string()).or_default().clone();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kernel) = slot.as_ref() {
            return Ok(kernel.clone());
        }
        let task = self.progress.start(&format!("kernel {name}"));
        let kernel = self.kernels_locked.resolve(name, &mut |step| task.step(step))?;
        task.finish(&format!("{} ({})", kernel.release, kernel.image.display()));
        *slot = Some(kernel.clone());
        Ok(kernel)
    }

    /// Run `cells` on up to `jobs` threads (one VM each: a TCG guest keeps one core busy), returning the
    /// runs in the cells' order. After a host error no new cell is started and the first error is returned.
    pub fn run_cells(&self, cells: &[Cell], jobs: usize) -> Result<Vec<CellRun>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let results: Vec<Mutex<Option<Result<CellRun>>>> = cells.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, cells.len().max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if index >= cells.len() || failed.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let run = self.run_cell(&cells[index]);
                    if run.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    *results[index].lock().unwrap() = Some(run);
                });
            }
        });
        // Cells not started after an error are `None`; the error itself comes first in order or later,
        // and `collect` returns the first `Err` it meets either way.
        results.into_iter().filter_map(|r| r.into_inner().unwrap()).collect()
    }

    /// Boot the cell's kernel with its suite's probes and return what happened. An `Err` is a problem on
    /// the host (no kernel, QEMU would not start); what happened in the guest is in the report's outcome.
    pub fn run_cell(&self, cell: &Cell) -> Result<CellRun> {
        let kernel = self.kernel(&cell.kernel)?;
        let suite = &self.config.suites[&cell.suite];
        let variant = &self.config.variants[&cell.variant];
        let probes = suite
            .probes
            .iter()
            .map(|probe| {
                let (binary, args) = match &probe.kind {
                    ProbeKind::Rust { bin, args } => (self.guest.get(bin)?, args.clone()),
                    ProbeKind::C { sources, cc, .. } => {
                        (guest::build_c_probe(&self.config.root, &suite.name, &probe.name, sources, cc)?, vec![])
                    }
                };
                Ok(ProbePlan { name: probe.name.clone(), binary, args, timeout: suite.probe_timeout })
            })
            .collect::<Result<Vec<_>>>()?;
        let initramfs = InitramfsSpec { init: self.guest.get("init")?, probes };
        let spec = VmSpec {
            kernel: kernel.image.clone(),
            initramfs: initramfs.build(&self.cache)?,
            memory_mib: suite.memory_mib,
            cpus: suite.cpus,
            accel: self.accel,
            extra_cmdline: variant.cmdline.clone(),
            init_args: vec![],
            timeouts: Timeouts {
                overall: Timeouts::default().boot + suite.probe_timeout * (suite.probes.len() as u32 + 1),
                ..Timeouts::default()
            },
        };
        let task = self.progress.start(&cell.id());
        task.step(&format!("booting {} under {}", kernel.release, self.accel));
        let report = ksnap_vm::run(&self.qemu, &spec, &initramfs.probe_timeouts())?;
        task.finish(&format!("{} in {:.1}s", report.outcome, report.duration.as_secs_f64()));
        let console_log = self.write_console_log(cell, &report)?;
        let kernel_config = suite
            .kernel_config
            .iter()
            .map(|option| {
                let value = match &kernel.config {
                    None => "unknown".to_string(),
                    Some(_) => kernel.config_value(option).unwrap_or_else(|| "unset".into()),
                };
                (option.clone(), value)
            })
            .collect();
        Ok(CellRun { cell: cell.clone(), kernel, report, console_log, kernel_config })
    }

    fn write_console_log(&self, cell: &Cell, report: &RunReport) -> Result<PathBuf> {
        let path = self.log_dir.join(format!("{}.console.log", cell.id().replace("::", "--")));
        write_file(&path, report.console.as_bytes())?;
        Ok(path)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
