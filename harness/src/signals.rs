//! SIGINT/SIGTERM: stop every child (QEMU first of all), let the main flow unwind so temporary
//! directories are removed, and exit with the conventional status (130 / 143).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// How long the main flow gets to unwind after an interrupt before the process exits regardless.
const UNWIND_GRACE: Duration = Duration::from_secs(5);

/// Install the handler (once, early in `main`).
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            RECEIVED.store(signal, Ordering::SeqCst);
            ksnap_vm::children::cancel_all();
            std::thread::sleep(UNWIND_GRACE);
            std::process::exit(exit_status(signal));
        }
    });
    Ok(())
}

/// The signal that interrupted ksnap, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// 128 + signal number, as shells report a process killed by that signal.
pub fn exit_status(signal: i32) -> i32 {
    128 + signal
}
