//! Machines: cells whose VMs are the same apart from the plan boot once, save the machine, and restore it
//! (see the [`session`](super) module's "Boot once per machine").

use std::sync::Mutex;

use anyhow::Result;
use ksnap_vm::cache::Cache;
use ksnap_vm::machine::spec::SavedState;
use ksnap_vm::machine::vmstate;
use ksnap_vm::{Qemu, RunReport, Start};

use crate::project::config::{Config, Suite};
use crate::project::matrix::Cell;

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

/// What a session knows of a machine's saved state.
#[derive(Debug, Clone, Default)]
pub enum SavedMachine {
    /// Not known yet: the first cell of the machine looks in the cache, or boots it and saves it.
    #[default]
    Unknown,
    /// Saved: its cells restore it.
    Saved(SavedState),
    /// It could not be saved (or would not restore): its cells boot.
    NotSaved,
}

/// One machine of a session: locked while its first cell boots and saves it.
pub type MachineSlot = Mutex<SavedMachine>;

/// The machine `cell` runs in, or `None` if its suite boots fresh. Its suites are those of ksnap.toml
/// that run with the same memory, CPUs and command line (under any of their variants) and boot from
/// saved states, the cell's own first; a suite with a probe whose name another member already has for
/// a different executable is left out.
pub fn machine_of(config: &Config, cell: &Cell) -> Option<Machine> {
    let own = config.suites.get(&cell.suite)?;
    if own.fresh_boot {
        return None;
    }
    let cmdline_of = |variant: &str, suite: &Suite| -> Option<Vec<String>> {
        Some(config.variants.get(variant)?.cmdline.iter().chain(&suite.cmdline).cloned().collect())
    };
    let cmdline = cmdline_of(&cell.variant, own)?;
    let mut members: Vec<&Suite> = vec![own];
    let candidates = config.suites.values().filter(|s| s.name != own.name && !s.fresh_boot);
    for suite in candidates.filter(|s| (s.memory_mib, s.cpus) == (own.memory_mib, own.cpus)) {
        let same_machine = suite.variants.iter().any(|v| cmdline_of(v, suite).as_ref() == Some(&cmdline));
        let clashes = suite
            .probes
            .iter()
            .any(|probe| members.iter().flat_map(|m| &m.probes).any(|p| p.name == probe.name && p.kind != probe.kind));
        if same_machine && !clashes {
            members.push(suite);
        }
    }
    let mut suites: Vec<String> = members.iter().map(|s| s.name.clone()).collect();
    suites.sort_by_key(|name| config.suites.keys().position(|k| k == name));
    let id =
        format!("{} {}M {}cpu [{}] {{{}}}", cell.kernel, own.memory_mib, own.cpus, cmdline.join(" "), suites.join(" "));
    Some(Machine { id, suites })
}

/// Run `spec` on the machine of `slot`: restore the machine's saved state, or boot it and save it (the first cell
/// of the machine, while the others wait), or boot it when it could not be saved.
pub fn run_on_machine(
    qemu: &Qemu,
    cache: &Cache,
    slot: &MachineSlot,
    spec: &mut ksnap_vm::VmSpec,
    step: &dyn Fn(&str),
) -> Result<(RunReport, Started)> {
    let mut known = slot.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*known, SavedMachine::Unknown) {
        let key = vmstate::key(qemu, spec)?;
        if let Some(state) = vmstate::lookup(cache, &key) {
            *known = SavedMachine::Saved(state);
        }
    }
    match known.clone() {
        SavedMachine::Saved(state) => {
            drop(known);
            step(&format!("restoring its saved machine ({})", state.key));
            spec.start = Start::Restore(state.clone());
            match ksnap_vm::run(qemu, spec) {
                Ok(report) => Ok((report, Started::Restored)),
                Err(ksnap_vm::Error::VmState { why, .. }) => {
                    // Keyed and verified, and still refused: drop it, and boot this machine's cells.
                    step(&format!("the saved machine would not restore ({why}); booting"));
                    vmstate::remove(cache, &state.key)?;
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = SavedMachine::NotSaved;
                    spec.start = Start::Boot;
                    Ok((ksnap_vm::run(qemu, spec)?, Started::Booted))
                }
                Err(other) => Err(other.into()),
            }
        }
        SavedMachine::NotSaved => {
            drop(known);
            step("booting (its machine could not be saved)");
            Ok((ksnap_vm::run(qemu, spec)?, Started::Booted))
        }
        SavedMachine::Unknown => {
            step("booting, to save its machine for the others");
            let mut holder = Some(known);
            let mut saved_ok = false;
            let report = ksnap_vm::run_saving(qemu, spec, cache, &mut |saved| {
                if let Err(error) = &saved {
                    step(&format!("not saved: {error}"));
                }
                saved_ok = saved.is_ok();
                if let Some(mut known) = holder.take() {
                    *known = saved.ok().map_or(SavedMachine::NotSaved, SavedMachine::Saved);
                }
            });
            // A VM that never reached init's hello saved nothing and decided nothing: the next cell
            // of the machine tries again (dropping `holder` unlocks the slot, still undecided).
            drop(holder);
            Ok((report?, if saved_ok { Started::BootedAndSaved } else { Started::Booted }))
        }
    }
}
