//! A session ([`Session`]): everything needed to run cells of the matrix — QEMU, the accelerator, the
//! probes' executables, the cache and the kernels resolved so far — and running them: [`cell`] runs one,
//! [`schedule`] runs many side by side and makes ready what they need, [`machine`] groups cells into
//! machines that boot once, [`once`] holds what is made once per session (a kernel, the selftests),
//! [`executables`] builds the probes into guest executables, [`console_log`] writes a run's log file,
//! [`environment`] says what a snapshot's metadata records, and [`resources`] holds the [`Session`] itself.
//!
//! **Boot once per machine.** Cells whose VMs are the same apart from the plan — one kernel, the same
//! memory, CPUs and kernel command line (variant and suite words) — share a *machine*: its initramfs holds
//! the probes of every suite of ksnap.toml that runs on it (so it is the same whichever cells are
//! selected), the first of its cells boots it and saves it when init waits for its plan
//! ([`ksnap_vm::run_saving`]), and every later cell, in this run or any later one, restores that state
//! and sends its own plan ([`ksnap_vm::machine::vmstate`]). A suite with `fresh_boot = true` always boots. Two
//! suites of a machine with probes of one name but different executables cannot share an initramfs: the
//! later one (in ksnap.toml's order) gets a machine of its own.

pub mod cell;
pub mod console_log;
pub mod environment;
pub mod executables;
pub mod machine;
pub mod once;
pub mod resources;
pub mod schedule;

pub use cell::{is_starved, CellRun, STARVED_ABOVE, STARVED_MIN_WAIT};
pub use executables::ProbeExecutable;
pub use machine::{Machine, Started};
pub use resources::Session;
pub use schedule::CellResults;
