//! Running one cell: its VM, restored from its machine or booted, and what the run gives — [`CellRun`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ksnap_vm::kernel::Kernel;
use ksnap_vm::machine::spec::ProbeSpec;
use ksnap_vm::{RunReport, Vm};

use crate::facts::{facts_of, Facts};
use crate::project::config::{Probe, ProbeKind};
use crate::project::matrix::Cell;

use super::executables;
use super::machine::{run_on_machine, Machine, Started};
use super::resources::Session;

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

impl Session {
    /// Run the cell's suite on its kernel — restored from its machine's saved state, or booted (and saved
    /// for the machine's other cells) — and return what happened. An `Err` is a problem on the host (no
    /// kernel, QEMU would not start); what happened in the guest is in the report's outcome.
    pub fn run_cell(&self, cell: &Cell) -> Result<CellRun> {
        self.run_cell_in(cell, self.machine(cell))
    }

    /// [`Session::run_cell`] in `machine`, the cell's as [`Session::machine`] says, computed by the caller.
    pub(super) fn run_cell_in(&self, cell: &Cell, machine: Option<Machine>) -> Result<CellRun> {
        let kernel = self.kernel(&cell.kernel)?;
        let _shared = self.alone.read().unwrap_or_else(|e| e.into_inner());
        self.run_cell_with(cell, kernel, machine)
    }

    /// [`Session::run_cell`] with no other VM of this session running beside it: it waits for the running
    /// cells to end, and the others wait for it. For the retry of a cell whose VM was starved.
    pub fn run_cell_alone(&self, cell: &Cell) -> Result<CellRun> {
        let kernel = self.kernel(&cell.kernel)?;
        let _exclusive = self.alone.write().unwrap_or_else(|e| e.into_inner());
        self.run_cell_with(cell, kernel, self.machine(cell))
    }

    fn run_cell_with(&self, cell: &Cell, kernel: Kernel, machine: Option<Machine>) -> Result<CellRun> {
        let suite = &self.config.suites[&cell.suite];
        let variant = &self.config.variants[&cell.variant];
        let machine = machine.filter(|_| !self.boot_every_cell);
        let vm = self.vm_of(suite, variant, &kernel, machine.as_ref())?;
        let mut spec = vm.spec(&self.cache)?;
        let task = self.progress.start_cell(&cell.id());
        let (report, started) = match machine {
            None => {
                task.step(&format!("booting {} under {}", kernel.release, self.accel));
                (ksnap_vm::run(&self.qemu, &spec)?, Started::Booted)
            }
            Some(machine) => {
                let slot = self.machine_slot(&machine.id);
                run_on_machine(&self.qemu, &self.cache, &slot, &mut spec, &|step| task.step(step))?
            }
        };
        task.finish(&run_summary(&report, started));
        let console_log = self.write_console_log(cell, &report)?;
        let kernel_config = suite
            .kernel_config
            .iter()
            .map(|option| (option.clone(), kernel.config_setting(option).unwrap_or_else(|| "unknown".into())))
            .collect();
        Ok(CellRun { cell: cell.clone(), kernel, report, console_log, kernel_config, started })
    }

    /// The VM of a cell of `suite` and `variant` on `kernel`: the suite's probes planned, and packed beside
    /// them the probes of every suite that shares `machine` (so that its saved state serves them all), and
    /// busybox when one of those runs kernel selftests.
    fn vm_of(
        &self,
        suite: &crate::project::config::Suite,
        variant: &crate::project::config::Variant,
        kernel: &Kernel,
        machine: Option<&Machine>,
    ) -> Result<Vm> {
        let binary = |suite: &str, probe: &Probe| self.probe_binary(suite, probe);
        let mut vm = self.machine_of_cell(suite, variant, kernel);
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
        let members = machine.map_or_else(|| vec![suite.name.clone()], |m| m.suites.clone());
        for member in &members {
            for probe in &self.config.suites[member].probes {
                vm = vm.pack(&probe.name, binary(member, probe)?);
            }
        }
        if members.iter().any(|member| self.config.suites[member].runs_selftests()) {
            vm = vm.busybox(executables::static_busybox()?);
        }
        Ok(vm)
    }

    /// The VM of a cell's kernel, variant and suite, without probes: its kernel, command line, memory,
    /// CPUs and accelerator.
    fn machine_of_cell(
        &self,
        suite: &crate::project::config::Suite,
        variant: &crate::project::config::Variant,
        kernel: &Kernel,
    ) -> Vm {
        Vm::new(&kernel.image)
            .memory_mib(suite.memory_mib)
            .cpus(suite.cpus)
            .accel(self.accel)
            .cmdline(variant.cmdline.iter().chain(&suite.cmdline).cloned())
    }

    /// The guest's executable of a probe of `suite`: built by this session, or a kernel selftest.
    fn probe_binary(&self, suite: &str, probe: &Probe) -> Result<PathBuf> {
        Ok(match &probe.kind {
            ProbeKind::Kselftest { test } => self.selftests()?.binary(test)?,
            _ => self.probe_executable(suite, &probe.name).path.clone(),
        })
    }

    /// The guest of `cell` for a person (`ksnap shell`): the cell's kernel, command line, memory and
    /// CPUs, its suite's probes in `/ksnap/probes` (packed, not run) and busybox. Returns the kernel too.
    pub fn guest_of(&self, cell: &Cell) -> Result<(Kernel, Vm)> {
        let kernel = self.kernel(&cell.kernel)?;
        let suite = &self.config.suites[&cell.suite];
        let mut vm = self.machine_of_cell(suite, &self.config.variants[&cell.variant], &kernel);
        for probe in &suite.probes {
            vm = vm.pack(&probe.name, self.probe_binary(&suite.name, probe)?);
        }
        Ok((kernel, vm.busybox(executables::static_busybox()?)))
    }

    fn write_console_log(&self, cell: &Cell, report: &RunReport) -> Result<PathBuf> {
        let path = self.log_dir.join(format!("{}.console.log", cell.id().replace("::", "--")));
        // The console with each line of probe stderr marked where it arrived (probe stderr is not kernel output).
        write_file(&path, crate::session::console_log::console_log(report).as_bytes())?;
        Ok(path)
    }
}

/// The line a cell's progress ends with: the outcome, how long it took, how the VM started, when init was
/// ready, and the CPU QEMU got from the host (STARVED when it was).
fn run_summary(report: &RunReport, started: Started) -> String {
    let how = match started {
        Started::Booted => "",
        Started::BootedAndSaved => ", saved",
        Started::Restored => ", restored",
    };
    let ready = report.ready_after.map_or_else(String::new, |t| format!(", init ready after {:.2}s", t.as_secs_f64()));
    let starved = match report.host_cpu {
        Some(cpu) if is_starved(&cpu) => format!(", STARVED: QEMU {cpu}"),
        Some(cpu) => format!(", QEMU {cpu}"),
        None => String::new(),
    };
    format!("{} in {:.1}s{how}{ready}{starved}", report.outcome, report.duration.as_secs_f64())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
