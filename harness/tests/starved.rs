//! A VM starved of CPU by other work on the host is recognised as starved: what it measures is the host's
//! load, not the kernel (a kselftest case that times out, a case that goes missing).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ksnap::progress::Progress;
use ksnap::project::config::Config;
use ksnap::project::kernels::LockMode;
use ksnap::project::matrix::Cell;
use ksnap::session::Session;
use ksnap_vm::AccelChoice;

mod common;

#[test]
#[cfg_attr(skip_vm, ignore = "boots VMs (KSNAP_SKIP_VM=1)")]
fn a_kselftest_cell_beside_cpu_hogs_at_the_vms_priority_is_starved_and_alone_it_is_not() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let config = Config::discover(root).unwrap();
    let session = Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false))
        .unwrap_or_else(|e| panic!("VM tests: {e:#}"));
    let cell = Cell { kernel: "6.1".into(), variant: "default".into(), suite: "kselftest_proc".into() };

    // One busy thread per core, at this process's priority, which the VMs have too.
    let stop = AtomicBool::new(false);
    let hogged = std::thread::scope(|scope| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..cores {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let run = session.run_cell(&cell);
        stop.store(true, Ordering::Relaxed);
        run.unwrap_or_else(|e| panic!("{cell}: {e:#}"))
    });
    let cpu = hogged.report.host_cpu.expect("the host has schedstat");
    assert!(hogged.starved(), "{cell} beside CPU hogs: QEMU {cpu}, not starved by is_starved");

    let alone = session.run_cell_alone(&cell).unwrap_or_else(|e| panic!("{cell}: {e:#}"));
    let alone_cpu = alone.report.host_cpu.expect("the host has schedstat");
    assert!(!alone.starved(), "{cell} alone: QEMU {alone_cpu}, starved (is the host busy?)");
    assert_eq!(common::qemu_children(std::process::id()), Vec::<u32>::new(), "a QEMU outlived its run");
}
