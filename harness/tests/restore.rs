//! Saved machines in real VMs: a cell restored from its machine's saved state says exactly what the same
//! cell booted says, and a state QEMU will not load is an error naming it, with no QEMU left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ksnap::progress::Progress;
use ksnap::project::config::Config;
use ksnap::project::kernels::LockMode;
use ksnap::project::matrix::Cell;
use ksnap::session::{Session, Started};
use ksnap_vm::machine::spec::SavedState;
use ksnap_vm::{AccelChoice, Outcome, Start, Vm};

mod common;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The tests count this process's QEMU children: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn session(boot_every_cell: bool) -> Session {
    let config = Config::discover(&workspace_root()).unwrap();
    let mut session = Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false))
        .unwrap_or_else(|e| panic!("VM tests: {e:#}"));
    session.boot_every_cell = boot_every_cell;
    session
}

fn snapshot_of(session: &Session, cell: &Cell) -> (String, Started) {
    let run = session.run_cell(cell).unwrap_or_else(|e| panic!("{cell}: {e:#}"));
    assert!(run.passed(), "{cell}: {} (console log: {})", run.report.outcome, run.console_log.display());
    (ksnap::facts::snapshot::write::body(&run.facts()), run.started)
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots VMs (KSNAP_SKIP_VM=1)")]
fn a_restored_cell_says_what_a_booted_one_says() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cells: Vec<Cell> = ["proc_mem", "env"]
        .iter()
        .map(|suite| Cell { kernel: "6.1".into(), variant: "default".into(), suite: suite.to_string() })
        .collect();
    let booting = session(true);
    let restoring = session(false);
    assert_eq!(restoring.machine(&cells[0]), restoring.machine(&cells[1]), "one machine for both cells");
    for cell in &cells {
        let (booted, how) = snapshot_of(&booting, cell);
        assert_eq!(how, Started::Booted, "{cell}: --boot-every-cell boots");
        // The first cell of the machine may boot and save it (a cache without its state) or restore it; the
        // second time, it is restored.
        let (first, _) = snapshot_of(&restoring, cell);
        let (restored, how) = snapshot_of(&restoring, cell);
        assert_eq!(how, Started::Restored, "{cell}");
        assert_eq!(restored, booted, "{cell}: restored and booted snapshots differ");
        assert_eq!(first, booted, "{cell}");
    }
    assert_eq!(common::qemu_children(std::process::id()), Vec::<u32>::new(), "a QEMU outlived its run");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots VMs (KSNAP_SKIP_VM=1)")]
fn a_state_qemu_will_not_load_or_of_another_machine_is_an_error() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = session(false);
    let kernel = session.kernel("6.1").unwrap();
    let busybox = ksnap::session::executables::static_busybox().unwrap();
    let vm = Vm::new(&kernel.image).probe("true", &busybox, Duration::from_secs(10)).accel(session.accel);
    let mut spec = vm.spec(&session.cache).unwrap();
    let key = ksnap_vm::machine::vmstate::key(&session.qemu, &spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("state");
    std::fs::write(&garbage, b"QEVM\0\0\0\x03 not a machine").unwrap();
    spec.start = Start::Restore(SavedState { key: key.clone(), path: garbage.clone() });
    let err = ksnap_vm::run(&session.qemu, &spec).unwrap_err().to_string();
    assert!(err.starts_with(&format!("saved VM state {key}: ")), "{err}");
    assert_eq!(common::qemu_children(std::process::id()), Vec::<u32>::new(), "the refused QEMU is gone");

    let mut other = vm.memory_mib(256).spec(&session.cache).unwrap();
    other.start = Start::Restore(SavedState { key, path: garbage });
    let err = ksnap_vm::run(&session.qemu, &other).unwrap_err().to_string();
    assert!(err.contains("it was saved from another machine"), "{err}");
    spec.start = Start::Boot;
    let report = ksnap_vm::run(&session.qemu, &spec).unwrap();
    assert!(matches!(report.outcome, Outcome::Completed(_)), "{}", report.outcome);
}
