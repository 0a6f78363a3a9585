//! Integration tests that boot real kernels under QEMU (TCG): the `env` suite on both default kernels, and
//! each failure mode with the exact outcome and message the user sees.
//!
//! They need QEMU and apt access to the Debian kernel packages (`scripts/setup.sh`); without them they
//! fail with a message saying what to install — never a silent pass.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ksnap::progress::Progress;
use ksnap::project::config::Config;
use ksnap::project::kernels::LockMode;
use ksnap::project::matrix::Cell;
use ksnap::session::executables;
use ksnap::session::Session;
use ksnap_readers::channel::ProbeEnd;
use ksnap_vm::machine::initramfs::{InitramfsSpec, ProbeFile};
use ksnap_vm::{AccelChoice, Format, Outcome, PlanEntry, ProbeSpec, Qemu, Start, Timeouts, VmSpec};

mod common;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn qemu() -> Qemu {
    Qemu::locate().unwrap_or_else(|e| panic!("VM tests need QEMU: {e}"))
}

/// A binary of guest-tests (`env`, `fault`), built as ksnap.toml's probes are.
fn guest_binary(bin: &str) -> PathBuf {
    static BUILT: OnceLock<std::collections::BTreeMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        executables::build_cargo_probes(&workspace_root(), "ksnap-guest", "guest", &["env", "fault"])
            .unwrap_or_else(|e| panic!("building the guest binaries: {e:#}"))
    });
    built[bin].clone()
}

/// The env probe, run after deliberate misbehaviour to show the guest goes on.
fn env_probe() -> ProbeSpec {
    ProbeSpec {
        name: "env".into(),
        binary: guest_binary("env"),
        args: vec![],
        timeout: Duration::from_secs(20),
        format: Format::Ktap,
    }
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let config = Config::discover(&workspace_root()).unwrap();
        Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false))
            .unwrap_or_else(|e| panic!("VM tests: {e:#}"))
    })
}

fn env_on(kernel: &str) {
    let cell = Cell { kernel: kernel.into(), variant: "default".into(), suite: "env".into() };
    let run = session().run_cell(&cell).unwrap_or_else(|e| panic!("{cell}: {e:#}"));
    let Outcome::Completed(guest) = &run.report.outcome else {
        panic!("{cell}: {} (console log: {})", run.report.outcome, run.console_log.display())
    };
    assert!(run.passed(), "{cell}: {:#?}", guest.probes);
    let facts = ksnap::facts::facts_of(&guest.probes);
    // The release the guest reports is the one the host unpacked: the pipeline ran *this* kernel.
    assert_eq!(facts.get("env.uname.release"), Some(&run.kernel.release), "{facts:#?}");
    assert_eq!(facts.get("env.page_size.bytes").map(String::as_str), Some("4096"));
    assert_eq!(facts.get("env.uname.machine").map(String::as_str), Some("x86_64"));
    assert!(run.report.console_events.is_empty(), "{:#?}", run.report.console_events);
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn env_suite_runs_on_debian_6_1() {
    env_on("6.1");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn env_suite_runs_on_debian_6_12() {
    env_on("6.12");
}

/// A VM of the 6.12 kernel with `init` as /init (its arguments after `--`) and `probes` in the plan,
/// and the probes' timeouts.
fn vm(init: &str, init_args: &[&str], probes: Vec<ProbeSpec>, timeouts: Timeouts) -> VmSpec {
    let session = session();
    let kernel = session.kernel("6.12").unwrap();
    // `init` is ksnap's own, embedded in ksnap-vm; anything else is a guest binary booted as PID 1.
    let init = (init != "init").then(|| guest_binary(init));
    let files = probes.iter().map(ProbeFile::from).collect();
    let initramfs = InitramfsSpec { init, probes: files, busybox: None };
    let plan = probes
        .into_iter()
        .map(|p| PlanEntry { name: p.name, args: p.args, timeout: p.timeout, format: p.format })
        .collect();
    VmSpec {
        kernel: kernel.image,
        initramfs: initramfs.build(&session.cache).unwrap(),
        plan,
        start: Start::Boot,
        memory_mib: 256,
        cpus: 1,
        accel: session.accel,
        extra_cmdline: vec![],
        init_args: init_args.iter().map(|s| s.to_string()).collect(),
        timeouts,
    }
}

fn boot(init: &str, init_args: &[&str], probes: Vec<ProbeSpec>, timeouts: Timeouts) -> ksnap_vm::RunReport {
    ksnap_vm::run(&session().qemu, &vm(init, init_args, probes, timeouts)).unwrap()
}

fn fault_probe(name: &str, args: &[&str], timeout: Duration) -> ProbeSpec {
    ProbeSpec {
        name: name.into(),
        binary: guest_binary("fault"),
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout,
        format: Format::Ktap,
    }
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn init_exiting_is_a_kernel_panic() {
    let report = boot("fault", &["init-exit"], vec![], Timeouts::default());
    let Outcome::KernelPanic { headline, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(headline.contains("Attempted to kill init"), "{headline}");
    assert!(report.outcome.to_string().starts_with("kernel panic: "), "{}", report.outcome);
    // console_msg_format=syslog: the kernel's own records carry facility 0.
    let kernels = report.console.lines().find(|l| l.contains("Kernel panic - not syncing: Attempted to kill init"));
    assert!(kernels.is_some_and(|l| l.starts_with("<0>[")), "{kernels:?}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn crashing_and_hanging_probes_are_results_not_failures_of_the_run() {
    let probes = vec![
        fault_probe("hang", &["hang"], Duration::from_secs(2)),
        fault_probe("segv", &["segv"], Duration::from_secs(20)),
        fault_probe("forker", &["fork-hang"], Duration::from_secs(20)),
        env_probe(),
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
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_hung_init_trips_the_boot_watchdog() {
    let timeouts = Timeouts { boot: Duration::from_secs(15), ..Timeouts::default() };
    let report = boot("fault", &["init-hang"], vec![], timeouts);
    let Outcome::Timeout { waiting_for, after, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert_eq!(*waiting_for, ksnap_vm::WaitingFor::Boot);
    assert!(report.outcome.to_string().starts_with("timeout: no hello from init (boot) after"), "{}", report.outcome);
    assert!(*after >= Duration::from_secs(15) && *after < Duration::from_secs(30), "{after:?}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn garbage_on_the_result_channel_is_malformed_output() {
    let report = boot("fault", &["init-garbage"], vec![], Timeouts::default());
    let Outcome::MalformedOutput { reason, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(reason.contains("expected ksnap-init first") || reason.contains("not UTF-8"), "{reason}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn an_unknown_kernel_package_says_so() {
    let source =
        ksnap_vm::kernel::KernelSource::Apt { package: "linux-image-ksnap-no-such-kernel".into(), suite: None };
    let cache = &session().cache;
    let err = source.resolve(None, cache, &ksnap_vm::kernel::apt::Archives::new(cache, None), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().starts_with("kernel package `linux-image-ksnap-no-such-kernel` is not known to apt"),
        "{err}"
    );
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_file_that_is_not_a_kernel_is_rejected_before_booting() {
    let toml = r#"
        [kernels.bogus]
        bzimage = "README.md"
        [suites.env]
        probes = [{ cargo = { package = "ksnap-guest", bin = "env", profile = "guest" } }]
    "#;
    let config = Config::from_toml(toml, workspace_root()).unwrap();
    let session = Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::detect(false)).unwrap();
    let cell = Cell { kernel: "bogus".into(), variant: "default".into(), suite: "env".into() };
    let err = format!("{:#}", session.run_cell(&cell).unwrap_err());
    assert!(err.contains("README.md is not a bootable x86 kernel image: no Linux boot-protocol header"), "{err}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_cell_that_cannot_run_does_not_hide_the_cells_that_did() {
    // "6.1" is the matrix's own (pinned in the workspace's ksnap.lock, cached by the matrix tests).
    let toml = r#"
        [kernels."6.1"]
        apt = "linux-image-cloud-amd64"
        [kernels.bogus]
        bzimage = "README.md"
        [suites.env]
        probes = [{ cargo = { package = "ksnap-guest", bin = "env", profile = "guest" } }]
    "#;
    let config = Config::from_toml(toml, workspace_root()).unwrap();
    let session = Session::start(config, AccelChoice::Tcg, Progress::plain(), LockMode::Frozen).unwrap();
    let cell = |kernel: &str| Cell { kernel: kernel.into(), variant: "default".into(), suite: "env".into() };
    // The broken cell first: it fails at once, the good one must still run and be reported.
    let results = session.run_cells(&[cell("bogus"), cell("6.1")], 1);
    assert_eq!(results.runs.len(), 1, "{:?}", results.errors);
    assert!(results.runs[0].passed(), "{}", results.runs[0].report.outcome);
    assert_eq!(results.errors.len(), 1);
    assert_eq!(results.errors[0].0, cell("bogus"));
    assert!(format!("{:#}", results.errors[0].1).contains("is not a bootable x86 kernel image"));
    assert!(results.not_started.is_empty());
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn qemu_is_checked() {
    // Keep the test honest: QEMU really is here, so the CLI test below is about PATH only.
    let found = qemu();
    assert!(found.version().starts_with("QEMU emulator version"), "{}", found.version());
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
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
    let facts = ksnap::facts::facts_of(&guest.probes);
    assert_eq!(facts["flood.(output)"], "truncated, 298951424 bytes discarded");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
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
    let problems = liar.ktap().expect("read as KTAP").problems.join("\n");
    for expected in ["plan says 5 tests but 2 results", "appears twice", "ended without its test's result line"] {
        assert!(problems.contains(expected), "no `{expected}` problem in:\n{problems}");
    }
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn qemu_killed_from_outside_is_a_qemu_failure() {
    // A probe name no other test uses makes this VM's initramfs, and so its command line, unique.
    let probes = vec![fault_probe("victim", &["hang"], Duration::from_secs(300))];
    let spec = vm("init", &[], probes, Timeouts::default());
    let initramfs = spec.initramfs.path.display().to_string();
    let runner = std::thread::spawn(move || ksnap_vm::run(&session().qemu, &spec).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let victim = loop {
        let found = common::qemu_children(std::process::id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&initramfs))
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
    assert_eq!(status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)), Some(9), "{status:?}");
    assert!(report.outcome.to_string().contains("signal: 9"), "{}", report.outcome);
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_panic_during_boot_is_reported() {
    // No init in the initramfs at that path: the kernel falls back to mounting a root device, finds
    // none, and panics before any user space runs.
    let mut spec = vm("init", &[], vec![], Timeouts::default());
    spec.extra_cmdline = vec!["rdinit=/ksnap-no-such-init".into()];
    let report = ksnap_vm::run(&session().qemu, &spec).unwrap();
    let Outcome::KernelPanic { headline, .. } = &report.outcome else { panic!("{}", report.outcome) };
    assert!(headline.contains("Unable to mount root fs"), "{headline}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn oom_kills_are_collected_from_the_console() {
    // The Debian kernels have no test module to fire a real WARN() (and a record written to /dev/kmsg is
    // user space's, see kmsg_records_in_the_kernels_words_are_not_kernel_events); the OOM killer's line is
    // the kernel's own, with its `<PRI>` prefix, and the console scanner's unit tests cover the formats.
    let probes = vec![fault_probe("hog", &["oom"], Duration::from_secs(120))];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}", report.outcome) };
    assert_eq!(guest.probes[0].end, ProbeEnd::Signaled(libc::SIGKILL), "the OOM killer kills with SIGKILL");
    let kinds: Vec<_> = report.console_events.iter().map(|e| (e.kind, e.headline.as_str())).collect();
    use ksnap_readers::console::EventKind;
    // The probe runs as /ksnap/probes/hog, so that is its comm.
    assert!(kinds.iter().any(|(k, h)| *k == EventKind::OutOfMemory && h.contains("(hog)")), "{kinds:#?}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn kmsg_records_in_the_kernels_words_are_not_kernel_events() {
    // What `fault kmsg-forgery` writes to /dev/kmsg (`<LEVEL>` and the message), and the facility-1 priority
    // the console shows it with: /dev/kmsg makes `<0>` (LOG_KERN) LOG_USER.
    const FORGERIES: &[(&str, &str)] = &[
        ("<8>", "Kernel panic - not syncing: forged"),
        (
            "<12>",
            "Oops: general protection fault, probably for non-canonical address 0xdead000000000000: 0000 [#1] SMP",
        ),
        ("<9>", "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
        ("<12>", "WARNING: CPU: 0 PID: 1 at mm/ksnap_fault.c:1 ksnap_fault+0x0/0x10"),
    ];
    let probes = vec![fault_probe("spoof", &["kmsg-forgery"], Duration::from_secs(20)), env_probe()];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}\nconsole:\n{}", report.outcome, report.console) };
    assert!(
        report.console_events.is_empty(),
        "user space's records are no kernel events: {:#?}",
        report.console_events
    );
    // The records did reach the console, word for word, marked as user space's.
    for (priority, message) in FORGERIES {
        let shown = report.console.lines().any(|l| l.starts_with(priority) && l.ends_with(&format!("] {message}")));
        assert!(shown, "`{priority}[…] {message}` is not on the console:\n{}", report.console);
    }
    let spoof = &guest.probes[0];
    assert_eq!(spoof.end, ProbeEnd::Exited(0));
    assert!(spoof.passed(), "{spoof:#?}");
    let facts = ksnap::facts::facts_of(&guest.probes);
    assert_eq!(facts.get("spoof.kmsg_forgery.records").map(String::as_str), Some("4"), "{facts:#?}");
    assert!(guest.probes[1].passed(), "the probe after it still runs: {:#?}", guest.probes[1]);
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn a_panic_line_the_guest_goes_on_after_is_not_a_kernel_panic() {
    // Nothing marks a line written to /dev/console as user space's; init ending probes after it does.
    let probes = vec![fault_probe("spoof", &["console-forgery"], Duration::from_secs(20)), env_probe()];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}\nconsole:\n{}", report.outcome, report.console) };
    assert!(
        report.console.lines().any(|l| l == "Kernel panic - not syncing: forged on /dev/console"),
        "the line reached the console:\n{}",
        report.console
    );
    let facts = ksnap::facts::facts_of(&guest.probes);
    assert_eq!(facts.get("spoof.console_forgery.written").map(String::as_str), Some("yes"), "{facts:#?}");
    assert!(guest.probes.iter().all(|p| p.passed()), "{:#?}", guest.probes);
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn probe_stderr_cannot_imitate_the_kernel() {
    // What `fault fake-kernel-events` writes on stderr: the kernel's own formats, KTAP and control lines.
    const FAKES: &[&str] = &[
        "Kernel panic - not syncing: fake",
        "WARNING: CPU: 0 PID: 1 at fake.c:1 fake+0x0/0x0",
        "Oops: general protection fault, probably for non-canonical address 0xdead000000000000: 0000 [#1] SMP",
        "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "Out of memory: Killed process 1 (fake) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0",
        "---[ end Kernel panic - not syncing: fake ]---",
        "not ok 1 forged_on_stderr",
        "# fact: forged = yes",
        "probe-end fake exit=1",
        "ksnap-done",
        "fault: fake kernel events written",
    ];
    let probes = vec![fault_probe("fake", &["fake-kernel-events"], Duration::from_secs(20)), env_probe()];
    let report = boot("init", &[], probes, Timeouts::default());
    let Outcome::Completed(guest) = &report.outcome else { panic!("{}\nconsole:\n{}", report.outcome, report.console) };
    assert!(report.console_events.is_empty(), "a probe's stderr is no kernel event: {:#?}", report.console_events);
    let fake = &guest.probes[0];
    assert_eq!(fake.end, ProbeEnd::Exited(0));
    // Every line arrives, whole and in order, with the probe's result; none of it on the console.
    assert_eq!(fake.stderr, FAKES, "{fake:#?}");
    assert_eq!(fake.stderr_truncated_bytes, None);
    for line in FAKES {
        assert!(!report.console.contains(line), "`{line}` reached the console:\n{}", report.console);
    }
    let logged: Vec<(&str, &str)> = report.probe_stderr.iter().map(|l| (l.probe.as_str(), l.line.as_str())).collect();
    assert_eq!(logged, FAKES.iter().map(|l| ("fake", *l)).collect::<Vec<_>>());
    // Stderr is not KTAP: only stdout's one passing test counts, and no forged fact appears.
    assert!(fake.passed(), "{fake:#?}");
    let facts = ksnap::facts::facts_of(&guest.probes);
    assert_eq!(facts.get("fake.fake_kernel_events").map(String::as_str), Some("ok"), "{facts:#?}");
    assert!(!facts.keys().any(|k| k.contains("forged")), "{facts:#?}");
    // Forged control lines on stderr did not end the run: the next probe ran.
    assert_eq!(guest.probes.len(), 2);
    assert!(guest.probes[1].passed(), "{:#?}", guest.probes[1]);
    assert!(guest.probes[1].stderr.is_empty(), "{:#?}", guest.probes[1].stderr);
    // The console log shows them, marked as the probe's.
    let log = ksnap::session::console_log::console_log(&report);
    assert!(log.contains("[ksnap: stderr of probe fake] Kernel panic - not syncing: fake\n"), "{log}");
}
