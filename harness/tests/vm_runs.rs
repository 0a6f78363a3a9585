//! Integration tests that boot real kernels under QEMU (TCG): the `env` suite on both default kernels, and
//! each failure mode with the exact outcome and message the user sees.
//!
//! They need QEMU and apt access to the Debian kernel packages (`scripts/setup.sh`); without them they
//! fail with a message saying what to install — never a silent pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ksnap::config::Config;
use ksnap::guest::{self, GuestBinaries};
use ksnap::kernels::LockMode;
use ksnap::matrix::Cell;
use ksnap::progress::Progress;
use ksnap::session::Session;
use ksnap_vm::initramfs::{InitramfsSpec, ProbePlan};
use ksnap_vm::protocol::ProbeEnd;
use ksnap_vm::{AccelChoice, Outcome, Qemu, Timeouts, VmSpec};

mod common;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn qemu() -> Qemu {
    Qemu::locate().unwrap_or_else(|e| panic!("VM tests need QEMU: {e}"))
}

fn guest() -> &'static GuestBinaries {
    static GUEST: OnceLock<GuestBinaries> = OnceLock::new();
    GUEST.get_or_init(|| guest::build(&workspace_root()).expect("building the guest binaries"))
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let config = Config::discover(&workspace_root()).unwrap();
        Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false)).unwrap_or_else(|e| panic!("VM tests: {e:#}"))
    })
}

fn env_on(kernel: &str) {
    let cell = Cell { kernel: kernel.into(), variant: "default".into(), suite: "env".into() };
    let run = session().run_cell(&cell).unwrap_or_else(|e| panic!("{cell}: {e:#}"));
    let Outcome::Completed(guest) = &run.report.outcome else {
        panic!("{cell}: {} (console log: {})", run.report.outcome, run.console_log.display())
    };
    assert!(run.passed(), "{cell}: {:#?}", guest.probes);
    let facts = ksnap::results::facts_of(&guest.probes);
    // The release the guest reports is the one the host unpacked: the pipeline ran *this* kernel.
    assert_eq!(facts.get("env.uname.release"), Some(&run.kernel.release), "{facts:#?}");
    assert_eq!(facts.get("env.page_size.bytes").map(String::as_str), Some("4096"));
    assert_eq!(facts.get("env.uname.machine").map(String::as_str), Some("x86_64"));
    assert!(run.report.console_events.is_empty(), "{:#?}", run.report.console_events);
}

#[test]
fn env_suite_runs_on_debian_6_1() {
    env_on("6.1");
}

#[test]
fn env_suite_runs_on_debian_6_12() {
    env_on("6.12");
}

/// A VM of the 6.12 kernel with `init` as /init (its arguments after `--`) and `probes` in the plan,
/// and the probes' timeouts.
fn vm(init: &str, init_args: &[&str], probes: Vec<ProbePlan>, timeouts: Timeouts) -> (VmSpec, HashMap<String, Duration>) {
    let session = session();
    let kernel = session.kernel("6.12").unwrap();
    let initramfs = InitramfsSpec { init: guest().get(init).unwrap(), probes };
    let spec = VmSpec {
        kernel: kernel.image,
        initramfs: initramfs.build(&session.cache).unwrap(),
        memory_mib: 256,
        cpus: 1,
        accel: session.accel,
        extra_cmdline: vec![],
        init_args: init_args.iter().map(|s| s.to_string()).collect(),
        timeouts,
    };
    (spec, initramfs.probe_timeouts())
}

fn boot(init: &str, init_args: &[&str], probes: Vec<ProbePlan>, timeouts: Timeouts) -> ksnap_vm::RunReport {
    let (spec, probe_timeouts) = vm(init, init_args, probes, timeouts);
    ksnap_vm::run(&session().qemu, &spec, &probe_timeouts).unwrap()
}

fn fault_probe(name: &str, args: &[&str], timeout: Duration) -> ProbePlan {
    ProbePlan {
        name: name.into(),
        binary: guest().get("fault").unwrap(),
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

#[test]
fn init_exiting_is_a_kernel_panic() {
    let report = boot("fault", &["init-exit"], vec![], Timeouts::default());
    let Outcome::KernelPanic { headline, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(headline.contains("Attempted to kill init"), "{headline}");
    assert!(report.outcome.to_string().starts_with("kernel panic: "), "{}", report.outcome);
}

#[test]
fn crashing_and_hanging_probes_are_results_not_failures_of_the_run() {
    let probes = vec![
        fault_probe("hang", &["hang"], Duration::from_secs(2)),
        fault_probe("segv", &["segv"], Duration::from_secs(20)),
        fault_probe("forker", &["fork-hang"], Duration::from_secs(20)),
        ProbePlan {
            name: "env".into(),
            binary: guest().get("env").unwrap(),
            args: vec![],
            timeout: Duration::from_secs(20),
        },
    ];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}", report.outcome) };
    let ends: Vec<(&str, &ProbeEnd)> = guest.probes.iter().map(|p| (p.name.as_str(), &p.end)).collect();
    assert_eq!(
        ends,
        [
            ("hang", &ProbeEnd::TimedOut(Duration::from_secs(2))),
            ("segv", &ProbeEnd::Signaled(libc::SIGSEGV)),
            ("forker", &ProbeEnd::Exited(0)),
            ("env", &ProbeEnd::Exited(0)),
        ]
    );
    assert!(!guest.probes[0].passed() && !guest.probes[1].passed());
    assert!(guest.probes[2].passed(), "a probe whose child lingers still passes: {:#?}", guest.probes[2]);
    assert!(guest.probes[3].passed(), "the probe after the faults still runs: {:#?}", guest.probes[3]);
}

#[test]
fn a_hung_init_trips_the_boot_watchdog() {
    let timeouts = Timeouts { boot: Duration::from_secs(15), ..Timeouts::default() };
    let report = boot("fault", &["init-hang"], vec![], timeouts);
    let Outcome::Timeout { waiting_for, after, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert_eq!(waiting_for, "hello from init (boot)");
    assert!(*after >= Duration::from_secs(15) && *after < Duration::from_secs(30), "{after:?}");
}

#[test]
fn garbage_on_the_result_channel_is_malformed_output() {
    let report = boot("fault", &["init-garbage"], vec![], Timeouts::default());
    let Outcome::MalformedOutput { reason, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(reason.contains("expected ksnap-init first") || reason.contains("not UTF-8"), "{reason}");
}

#[test]
fn an_unknown_kernel_package_says_so() {
    let source = ksnap_vm::kernel::KernelSource::Apt { package: "linux-image-ksnap-no-such-kernel".into(), suite: None };
    let cache = &session().cache;
    let err = source.resolve(None, cache, &ksnap_vm::apt::Archives::new(cache, None), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().starts_with("kernel package `linux-image-ksnap-no-such-kernel` is not known to apt"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_kernel_is_rejected_before_booting() {
    let toml = r#"
        [kernels.bogus]
        bzimage = "README.md"
        [suites.env]
        probes = ["env"]
    "#;
    let config = Config::from_toml(toml, workspace_root()).unwrap();
    let session = Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false)).unwrap();
    let cell = Cell { kernel: "bogus".into(), variant: "default".into(), suite: "env".into() };
    let err = format!("{:#}", session.run_cell(&cell).unwrap_err());
    assert!(err.contains("README.md is not a bootable x86 kernel image: no Linux boot-protocol header"), "{err}");
}

#[test]
fn qemu_is_checked() {
    // Keep the test honest: QEMU really is here, so the CLI test below is about PATH only.
    let found = qemu();
    assert!(found.version().starts_with("QEMU emulator version"), "{}", found.version());
}

#[test]
fn a_flooding_probe_is_truncated_and_host_memory_stays_bounded() {
    let probes = vec![fault_probe("flood", &["flood", "300000000"], Duration::from_secs(120))];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}", report.outcome) };
    let flood = &guest.probes[0];
    assert_eq!(flood.end, ProbeEnd::Exited(0));
    // init relays 1 MiB and counts the rest; the host keeps only what was relayed.
    assert_eq!(flood.truncated_bytes, Some(300_000_000 - (1 << 20)));
    let kept: usize = flood.output.iter().map(|l| l.len() + 1).sum();
    assert!(kept <= 1 << 20, "host kept {kept} bytes");
    assert!(!flood.passed());
    let facts = ksnap::results::facts_of(&guest.probes);
    assert_eq!(facts["flood.(output)"], "truncated, 298951424 bytes discarded");
}

#[test]
fn hostile_probe_output_is_kept_lossily_and_lying_ktap_is_caught() {
    let probes = vec![
        fault_probe("garbage", &["garbage"], Duration::from_secs(20)),
        fault_probe("liar", &["ktap-lie"], Duration::from_secs(20)),
    ];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}", report.outcome) };
    let garbage = &guest.probes[0];
    assert_eq!(garbage.end, ProbeEnd::Exited(0));
    let text = garbage.output.join("\n");
    assert!(text.contains('\u{fffd}') && text.contains('\0') && text.contains('\u{1b}'), "{text:?}");
    // Forged protocol lines arrive as probe output, not as control lines.
    assert!(garbage.output.iter().any(|l| l.contains("ksnap-done")));
    assert!(!garbage.passed(), "garbage is no complete KTAP document");
    let liar = &guest.probes[1];
    assert!(!liar.passed());
    let problems = liar.ktap.problems.join("\n");
    for expected in ["plan says 5 tests but 2 results", "appears twice", "ended without its test's result line"] {
        assert!(problems.contains(expected), "no `{expected}` problem in:\n{problems}");
    }
}

#[test]
fn qemu_killed_from_outside_is_a_qemu_failure() {
    // A probe name no other test uses makes this VM's initramfs, and so its command line, unique.
    let probes = vec![fault_probe("victim", &["hang"], Duration::from_secs(300))];
    let (spec, probe_timeouts) = vm("init", &[], probes, Timeouts::default());
    let initramfs = spec.initramfs.display().to_string();
    let runner = std::thread::spawn(move || ksnap_vm::run(&session().qemu, &spec, &probe_timeouts).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let victim = loop {
        let found = common::qemu_children(std::process::id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&initramfs))
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "QEMU never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling the QEMU this test started.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let report = runner.join().unwrap();
    let Outcome::QemuFailed { status, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(status.contains("signal: 9"), "{status}");
}

#[test]
fn a_panic_during_boot_is_reported() {
    // No init in the initramfs at that path: the kernel falls back to mounting a root device, finds
    // none, and panics before any user space runs.
    let (mut spec, probe_timeouts) = vm("init", &[], vec![], Timeouts::default());
    spec.extra_cmdline = vec!["rdinit=/ksnap-no-such-init".into()];
    let report = ksnap_vm::run(&session().qemu, &spec, &probe_timeouts).unwrap();
    let Outcome::KernelPanic { headline, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(headline.contains("Unable to mount root fs"), "{headline}");
}

#[test]
fn kernel_warnings_and_oom_kills_are_collected_from_the_console() {
    let probes = vec![
        fault_probe("warn", &["kmsg-warn"], Duration::from_secs(20)),
        fault_probe("hog", &["oom"], Duration::from_secs(120)),
    ];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}", report.outcome) };
    assert_eq!(guest.probes[0].end, ProbeEnd::Exited(0));
    assert_eq!(guest.probes[1].end, ProbeEnd::Signaled(libc::SIGKILL), "the OOM killer kills with SIGKILL");
    let kinds: Vec<_> = report.console_events.iter().map(|e| (e.kind, e.headline.as_str())).collect();
    use ksnap_vm::console::EventKind;
    assert!(
        kinds.iter().any(|(k, h)| *k == EventKind::Warning && h.contains("at mm/ksnap_fault.c:1")),
        "{kinds:#?}"
    );
    // The probe runs as /ksnap/probes/hog, so that is its comm.
    assert!(kinds.iter().any(|(k, h)| *k == EventKind::OutOfMemory && h.contains("(hog)")), "{kinds:#?}");
}
