//! The matrix as `cargo test` trials, for this repository and any crate with a `ksnap.toml`: one trial per
//! (kernel, variant, suite) cell, named `KERNEL::VARIANT::SUITE`, each asserting the cell's facts against
//! `snapshots/SUITE@KERNEL[+VARIANT].snap` next to ksnap.toml. A test target with `harness = false` and
//!
//! ```text
//! fn main() {
//!     ksnap::testing::main()
//! }
//! ```
//!
//! is the whole entry point.
//!
//! - `cargo test --test NAME -- 6.12::` runs one kernel's cells; `-- --list` lists them; nextest runs and
//!   shards them like any test (`cargo nextest run --partition hash:1/2`).
//! - A guest that panics, hangs or breaks the protocol, or a host problem (no QEMU, no kernel), fails the
//!   trial with that error; it is never written as a snapshot.
//! - Without QEMU the trials fail, saying what to install; `KSNAP_SKIP_VM=1` marks them ignored instead.
//! - Cells restore their machine's saved state when they can ([`crate::session`]);
//!   `KSNAP_BOOT_EVERY_CELL=1` boots every one.
//! - `KSNAP_REPEAT=N` runs each cell N times (restored like any run; booted too with
//!   `KSNAP_BOOT_EVERY_CELL=1`) and fails a trial whose facts differ between runs.
//! - A cell whose VM was starved of CPU by other work on the host ([`crate::session::CellRun::starved`]) and whose facts
//!   differ from its snapshot runs again once, alone; starved again, the trial fails saying so, never with
//!   a snapshot diff: what a starved VM measured is the host's load.
//! - insta decides what a mismatch does: under `CI=true` nothing is written and the diff fails the trial;
//!   locally a `.snap.new` is written for `cargo insta review`.

use std::path::PathBuf;
use std::sync::OnceLock;

use ksnap_vm::{AccelChoice, Outcome};
use libtest_mimic::{Arguments, Failed, Trial};

use crate::facts::snapshot::{self, write};
use crate::progress::Progress;
use crate::project::config::Config;
use crate::project::kernels::LockMode;
use crate::project::matrix::{self, Cell, Selection};
use crate::session::Session;

/// Run the matrix of the `ksnap.toml` found from the test's package directory upwards as libtest trials,
/// with the command line libtest takes (filters, `--list`, `--ignored`, …), and exit.
pub fn main() -> ! {
    let args = Arguments::from_args();
    // Ctrl-C or a CI job's SIGTERM ends the VMs and kernel builds, as it does for `ksnap run`.
    if let Err(e) = crate::signals::install() {
        eprintln!("ksnap: warning: cannot handle interrupts ({e}); Ctrl-C may leave QEMU running");
    }
    // Cargo and nextest set CARGO_MANIFEST_DIR when they run a test binary: the package under test, not ksnap.
    let start = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let config = Config::discover(&start).unwrap_or_else(|e| panic!("{e:#}"));
    // insta names files relative to the workspace it finds from its caller's manifest, which is ksnap's own
    // when ksnap is a dependency: point it at the project instead.
    if std::env::var_os("INSTA_WORKSPACE_ROOT").is_none() {
        std::env::set_var("INSTA_WORKSPACE_ROOT", &config.root);
    }
    let cells = matrix::cells(&config, &Selection::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let skip = std::env::var("KSNAP_SKIP_VM").is_ok_and(|v| v == "1");
    // Started by the first trial that runs, not when nextest merely lists the trials.
    let session: &'static OnceLock<Result<Session, String>> = Box::leak(Box::new(OnceLock::new()));
    // The kernels (and selftests) of the trials that will run are made ready beside them, from the first
    // trial on, as `ksnap run` does: a trial of a kernel still building waits only for that kernel.
    let selected: &'static [Cell] = Box::leak(cells.iter().filter(|c| is_selected(&args, &c.id())).cloned().collect());
    let preparing: &'static std::sync::Once = Box::leak(Box::new(std::sync::Once::new()));
    let trials = cells
        .into_iter()
        .map(|cell| {
            let config = config.clone();
            Trial::test(cell.id(), move || {
                let session = session.get_or_init(|| {
                    let mut session =
                        Session::start(config, AccelChoice::Auto, Progress::plain(), LockMode::detect(false))
                            .map_err(|e| format!("{e:#}"))?;
                    session.boot_every_cell = std::env::var("KSNAP_BOOT_EVERY_CELL").is_ok_and(|v| v == "1");
                    crate::facts::repeat::from_env()?;
                    Ok(session)
                });
                match session {
                    Ok(session) => {
                        preparing.call_once(|| drop(std::thread::spawn(move || session.prepare(selected))));
                        check_cell(session, &cell)
                    }
                    Err(e) => Err(format!(
                        "{e}\nVM trials need QEMU (`apt-get install qemu-system-x86`; in ksnap's repository \
                         scripts/setup.sh installs everything) and the kernels (`ksnap kernels --fetch`), or set \
                         KSNAP_SKIP_VM=1 to mark them ignored"
                    )
                    .into()),
                }
            })
            .with_ignored_flag(skip)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Whether libtest runs the trial `name` under `args`' filter and skips (`--exact` included).
fn is_selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| if args.exact { name == pattern } else { name.contains(pattern) };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|skip| matches(skip))
}

/// One trial: run the cell (KSNAP_REPEAT times), refuse a guest or kernel in trouble, compare the snapshot.
fn check_cell(session: &Session, cell: &Cell) -> Result<(), Failed> {
    let runs = crate::facts::repeat::from_env()?;
    let run = session.run_cell(cell).map_err(|e| format!("{cell}: {e:#}"))?;
    // KSNAP_REPEAT=N: run the cell N-1 more times; any fact that moves fails the trial before its
    // snapshot is compared (or written).
    if runs > 1 {
        check_repeats(session, cell, &run, runs)?;
    }
    let run = retry_if_starved(session, cell, run)?;
    refuse_trouble(cell, &run)?;
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot::dir(&session.config.root));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!(
        "Facts suite `{}` observed on kernel `{}` (variant `{}`)",
        cell.suite, cell.kernel, cell.variant
    ));
    settings.set_info(&session.environment(cell, &run.kernel));
    let body = write::body(&run.facts());
    settings.bind(|| insta::assert_snapshot!(write::name(cell), body));
    Ok(())
}

/// Run the cell `runs` - 1 more times after `first`: an error when a run fails or a fact's value differs
/// between runs.
fn check_repeats(session: &Session, cell: &Cell, first: &crate::session::CellRun, runs: usize) -> Result<(), Failed> {
    let mut facts = vec![first.facts()];
    for _ in 1..runs {
        let again = session.run_cell(cell).map_err(|e| format!("{cell}: {e:#}"))?;
        if !again.passed() {
            return Err(format!("{cell}: a repeated run failed: {}", again.report.outcome).into());
        }
        facts.push(again.facts());
    }
    let flakes = crate::facts::repeat::flakes(cell, &facts);
    if !flakes.is_empty() {
        return Err(crate::facts::repeat::render(&flakes, runs).into());
    }
    Ok(())
}

/// `run`, or when its VM was starved and its facts differ from the committed snapshot, the cell run again
/// alone; starved again with facts that still differ, an error.
fn retry_if_starved(
    session: &Session,
    cell: &Cell,
    mut run: crate::session::CellRun,
) -> Result<crate::session::CellRun, Failed> {
    let committed = snapshot::dir(&session.config.root).join(format!("{}.snap", write::name(cell)));
    let differs = |run: &crate::session::CellRun| {
        crate::facts::snapshot::read::read(&committed).is_ok_and(|snapshot| snapshot.facts != run.facts())
    };
    if run.starved() && differs(&run) {
        let cpu = run.report.host_cpu.map(|cpu| cpu.to_string()).unwrap_or_default();
        eprintln!(
            "{cell}: its VM was starved (QEMU {cpu}) and its facts differ from its snapshot: running it again alone"
        );
        run = session.run_cell_alone(cell).map_err(|e| format!("{cell}: {e:#}"))?;
        if run.starved() && differs(&run) {
            let cpu = run.report.host_cpu.map(|cpu| cpu.to_string()).unwrap_or_default();
            return Err(format!(
                "{cell}: its VM was starved of CPU twice (on the retry alone: QEMU {cpu}), and its facts differ \
                 from its snapshot: what a starved VM measures is the host's load, not the kernel. Run it again \
                 on a machine with a free core per VM."
            )
            .into());
        }
        eprintln!("{cell}: retried alone{}", if run.starved() { " (starved again, but its facts match)" } else { "" });
    }
    Ok(run)
}

/// An error when the guest did not complete, or the kernel logged trouble (anything but an OOM kill).
fn refuse_trouble(cell: &Cell, run: &crate::session::CellRun) -> Result<(), Failed> {
    let Outcome::Completed(_) = &run.report.outcome else {
        return Err(format!("{cell}: {} (console log: {})", run.report.outcome, run.console_log.display()).into());
    };
    // A kernel that oopses, BUGs or WARNs under a suite needs a person, not a snapshot. OOM kills are
    // left to the suites, which provoke them on purpose and record them as facts.
    let trouble: Vec<&str> = run
        .report
        .console_events
        .iter()
        .filter(|e| e.kind != ksnap_readers::console::EventKind::OutOfMemory)
        .map(|e| e.headline.as_str())
        .collect();
    if !trouble.is_empty() {
        return Err(format!("{cell}: the kernel logged {}", trouble.join("; ")).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_prepared_are_those_of_the_trials_libtest_runs() {
        let args = |words: &[&str]| Arguments::from_iter(std::iter::once("matrix").chain(words.iter().copied()));
        assert!(is_selected(&args(&[]), "6.1::default::env"));
        assert!(is_selected(&args(&["6.1::"]), "6.1::default::env"));
        assert!(!is_selected(&args(&["6.12::"]), "6.1::default::env"));
        assert!(!is_selected(&args(&["--exact", "6.1::default"]), "6.1::default::env"));
        assert!(is_selected(&args(&["--exact", "6.1::default::env"]), "6.1::default::env"));
        assert!(!is_selected(&args(&["--skip", "::env"]), "6.1::default::env"));
    }
}
