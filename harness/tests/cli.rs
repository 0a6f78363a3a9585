//! The `ksnap` command as a user meets it: errors, exit statuses, interrupts.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

mod common;
use common::qemu_children;

fn ksnap() -> Command {
    let mut command = Command::cargo_bin("ksnap").unwrap();
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    command.env_remove("KSNAP_QEMU");
    command
}

#[test]
fn missing_qemu_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let output = ksnap().args(["run", "--suite", "env"]).env("PATH", empty.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "ksnap: error: QEMU not found (qemu-system-x86_64). Install it with `apt-get install qemu-system-x86`"
        ),
        "{stderr}"
    );
}

#[test]
fn unknown_names_list_the_known_ones() {
    let output = ksnap().args(["run", "--suite", "nope"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("unknown suite `nope`; ksnap.toml defines: demand_paging, demand_paging_oom, env"),
        "{stderr}"
    );
}

#[test]
fn history_tells_since_which_kernel_from_the_committed_snapshots() {
    let output = ksnap().args(["history", "--suite", "proc_mem"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("kernel versions: 5.10 → 6.1 → 6.12 → 7.2;"), "{stdout}");
    assert!(stdout.contains("\nproc_mem.mseal.mseal: ENOSYS up to 6.1, ok from 6.12\n"), "{stdout}");
    // A variant's and a kernel off the axis' values, where they differ.
    assert!(stdout.contains("\nproc_mem.setup.force_override.requested: unset; force-always: always;"), "{stdout}");
    let json = ksnap().args(["history", "--suite", "proc_mem", "--format", "json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let suites = json["suites"].as_array().unwrap();
    assert!(suites.len() == 1 && suites[0]["suite"] == "proc_mem", "{json}");
    assert!(suites[0]["groups"].as_array().is_some_and(|g| g.iter().all(|g| g["facts"].as_array().is_some())));
    let output = ksnap().args(["history", "--suite", "nope"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown suite `nope`"));
}

#[test]
fn bisect_refuses_what_it_cannot_search_before_anything_boots() {
    // A typo in the fact: the nearest keys of the committed snapshots, before apt is asked anything.
    let output = ksnap()
        .args(["bisect", "proc_mem.setup.force_overide.parameter_in_kernel", "--kernel", "5.10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no fact `proc_mem.setup.force_overide.parameter_in_kernel`"), "{stderr}");
    assert!(stderr.contains("did you mean: proc_mem.setup.force_override.parameter_in_kernel"), "{stderr}");
    // A kernel built from source has no releases.
    let output = ksnap().args(["bisect", "proc_mem", "--kernel", "6.12-minimal"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only apt kernels have releases"));
    let output = ksnap().args(["bisect", "proc_mem", "--kernel", "5.10", "--variant", "nope"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown variant `nope`"));
}

#[test]
fn bisect_over_a_git_tree_refuses_what_it_cannot_build_before_anything_builds() {
    let stderr_of = |tree: &Path, extra: &[&str]| {
        let output = ksnap()
            .args(["bisect", "proc_mem", "--tree"])
            .arg(tree)
            .args(["--good", "HEAD~1", "--bad", "HEAD"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let minimal = ["--kconfig", "vm/configs/minimal"];
    // Without --kconfig, clap names what is missing; a fragment that is not there is named.
    assert!(stderr_of(Path::new("/tmp"), &[]).contains("--kconfig <FRAGMENT>"));
    assert!(stderr_of(Path::new("/tmp"), &["--kconfig", "no/such/fragment"])
        .contains("--kconfig no/such/fragment: no such file"));
    let plain = tempfile::tempdir().unwrap();
    assert!(stderr_of(plain.path(), &minimal).contains("not a git repository"));
    // A repository that holds no kernel, and one with uncommitted changes.
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .arg("-C")
            .arg(plain.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(plain.path().join("README"), "not a kernel").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-qm", "one"]);
    git(&["commit", "-q", "--allow-empty", "-m", "two"]);
    assert!(stderr_of(plain.path(), &minimal).contains("has no Makefile: not a Linux kernel tree"));
    std::fs::write(plain.path().join("README"), "edited").unwrap();
    let stderr = stderr_of(plain.path(), &minimal);
    assert!(stderr.contains("it has uncommitted changes (README): commit or stash them first"), "{stderr}");
    // --from and --to are for releases.
    let output = ksnap().args(["bisect", "proc_mem", "--tree", "/tmp", "--from", "1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be used with"));
}

#[test]
fn a_sweep_refuses_what_it_cannot_run_before_anything_boots() {
    // A kernel built from source has no releases; an unknown suite, variant or kernel, and a bad shard,
    // are refused before apt is asked.
    let stderr_of = |args: &[&str]| {
        let output = ksnap().arg("history").args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = stderr_of(&["--releases", "6.12-minimal", "--suite", "proc_mem"]);
    assert!(stderr.contains("only apt kernels have releases"), "{stderr}");
    assert!(stderr_of(&["--releases", "nope"]).contains("unknown kernel `nope`"));
    assert!(stderr_of(&["--releases", "5.10", "--suite", "nope"]).contains("unknown suite `nope`"));
    assert!(stderr_of(&["--releases", "5.10", "--variant", "nope"]).contains("unknown variant `nope`"));
    let stderr = stderr_of(&["--releases", "5.10", "--shard", "4/3"]);
    assert!(stderr.contains("`4/3` is no shard: K/N with 1 ≤ K ≤ N"), "{stderr}");
    // The sweep's options need --releases.
    assert!(stderr_of(&["--shard", "1/2"]).contains("--releases"));
    // Merging: files of different sweeps are refused.
    let dir = tempfile::tempdir().unwrap();
    let shard = |variant: &str| {
        let path = dir.path().join(format!("{variant}.json"));
        let json = format!(r#"{{"line": "5.10", "variant": "{variant}", "releases": ["a", "b"], "results": {{}}}}"#);
        std::fs::write(&path, json).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (one, two) = (shard("default"), shard("force-never"));
    assert!(stderr_of(&["--merge", &one, &two]).contains("not the same sweep"));
    assert!(stderr_of(&["--merge", "/nonexistent.json"]).contains("reading /nonexistent.json"));
}

#[test]
fn bad_accelerator_is_a_usage_error() {
    let output = ksnap().args(["run", "--accel", "hvf"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected auto, kvm or tcg"));
}

fn interrupt_mid_run(signal: i32, expected_status: i32) {
    // A private TMPDIR shows whether ksnap removed its temporary directories (the VM's sockets).
    let tmp = tempfile::tempdir().unwrap();
    let mut child = ksnap()
        .args(["run", "--kernel", "6.12", "--suite", "env", "--accel", "tcg"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let qemu = loop {
        let found = qemu_children(child.id());
        if let Some(&pid) = found.first() {
            break pid;
        }
        assert!(child.try_wait().unwrap().is_none(), "ksnap ended before starting QEMU");
        assert!(Instant::now() < deadline, "ksnap never started QEMU");
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::into_raw(status) >> 8, expected_status, "{status:?}");
    assert!(!Path::new(&format!("/proc/{qemu}")).exists(), "QEMU {qemu} outlived ksnap");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn sigint_stops_qemu_and_exits_130() {
    interrupt_mid_run(libc::SIGINT, 130);
}

#[test]
#[cfg_attr(skip_vm, ignore = "boots a VM (KSNAP_SKIP_VM=1)")]
fn sigterm_stops_qemu_and_exits_143() {
    interrupt_mid_run(libc::SIGTERM, 143);
}

#[test]
fn diff_exits_like_diff_and_reads_committed_snapshots() {
    let differ = ksnap().args(["diff", "6.1", "6.12", "--suite", "env"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&differ.stdout);
    assert_eq!(differ.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("env.uname.release") && stdout.contains("6.1.0-56-cloud-amd64"), "{stdout}");
    let same = ksnap().args(["diff", "6.12", "6.12"]).output().unwrap();
    assert_eq!(same.status.code(), Some(0));
    let json = ksnap().args(["diff", "6.1", "6.12", "--format", "json"]).output().unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["a"], "6.1");
    let unknown = ksnap().args(["diff", "6.1", "9.9"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no snapshots for `9.9`"));
}

#[test]
fn report_writes_a_self_contained_page() {
    let out = tempfile::tempdir().unwrap();
    let output = ksnap().args(["report", "-o"]).arg(out.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("Suite <code>env</code>"));
    let markdown =
        ksnap().args(["report", "--format", "markdown", "--page-url", "https://example.org/p"]).output().unwrap();
    let summary = String::from_utf8_lossy(&markdown.stdout);
    assert!(summary.contains("## env") && summary.contains("(https://example.org/p)"), "{summary}");
    // A summary, far under GitHub's 1 MiB cap for a job summary, with room for the matrix to grow.
    assert!(summary.len() < 100_000, "{} bytes", summary.len());
}

/// A matrix in a scratch directory: a kernel from a Debian suite, and `lock` as ksnap.lock.
fn scratch_matrix(lock: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[kernels.old]\napt = { package = \"linux-image-cloud-amd64\", suite = \"bullseye\" }\n\
                [suites.env]\nprobes = [{ exe = \"probe\" }]\n";
    std::fs::write(dir.path().join("ksnap.toml"), toml).unwrap();
    if let Some(lock) = lock {
        std::fs::write(dir.path().join("ksnap.lock"), lock).unwrap();
    }
    dir
}

#[test]
fn under_ci_a_kernel_missing_from_the_lock_is_an_error_that_says_what_to_run() {
    let dir = scratch_matrix(None);
    for (ci, flag) in [("true", None), ("", Some("--locked"))] {
        let mut command = ksnap();
        command.current_dir(dir.path()).env("CI", ci).env("XDG_CACHE_HOME", dir.path().join("cache")).arg("kernels");
        command.args(flag);
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("kernel `old` is not in ksnap.lock"), "{stdout}");
        assert!(stdout.contains("Run `ksnap lock` (or `ksnap lock --update old`) and commit ksnap.lock"), "{stdout}");
    }
    assert!(!dir.path().join("ksnap.lock").exists(), "a frozen lock is never written");
    let output = ksnap().current_dir(dir.path()).env("CI", "true").arg("lock").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`ksnap lock` writes ksnap.lock, which --locked (or CI) forbids"), "{stderr}");
}

#[test]
fn under_ci_a_stale_lock_entry_is_an_error() {
    let lock = "version = 1\n[[kernel]]\nname = \"old\"\napt = \"linux-image-cloud-amd64\"\n\
                [[kernel.package]]\nname = \"linux-image-5.10.0-32-cloud-amd64\"\nversion = \"5.10.223-1\"\n\
                sha256 = \"00\"\nsuite = \"bullseye\"\n";
    let dir = scratch_matrix(Some(lock));
    let output = ksnap()
        .current_dir(dir.path())
        .env("CI", "true")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .arg("kernels")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the ksnap.lock entry of kernel `old` is stale: ksnap.toml asks for apt package linux-image-cloud-amd64 from bullseye, ksnap.lock has apt package linux-image-cloud-amd64 from the system's apt sources"),
        "{stdout}"
    );
}

/// Another ksnap process holds the cache lock of a kernel (it is downloading it): Ctrl-C must stop the
/// wait at once, not when the other process lets go (or after the hard-exit grace).
#[test]
fn ctrl_c_while_waiting_for_another_process_cache_lock_exits_promptly() {
    use std::os::unix::io::AsRawFd;
    let cache_home = tempfile::tempdir().unwrap();
    let locks = cache_home.path().join("ksnap/locks/kernels");
    std::fs::create_dir_all(&locks).unwrap();
    // The first kernel `ksnap kernels --fetch` fetches, as ksnap.lock pins it.
    let lock = std::fs::File::create(locks.join("linux-image-5.10.0-32-cloud-amd64_5.10.223-1.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; held until the end of the test.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut child = ksnap()
        .args(["kernels", "--fetch"])
        .env("XDG_CACHE_HOME", cache_home.path())
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "ksnap should be waiting for the lock");
    let sent = Instant::now();
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(took < Duration::from_secs(2), "the wait ignored Ctrl-C for {took:?}");
}

/// A matrix with one local kernel (a bzImage need not exist to be named) and no apt kernel.
fn local_kernel_matrix() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[kernels.mine]\nbzimage = \"bzImage\"\n[suites.env]\nprobes = [{ exe = \"probe\" }]\n";
    std::fs::write(dir.path().join("ksnap.toml"), toml).unwrap();
    dir
}

#[test]
fn releases_of_an_unknown_or_local_kernel_say_which_kernels_have_them() {
    let output = ksnap().args(["releases", "nope"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ksnap: error: unknown kernel `nope`; ksnap.toml defines: 5.10, 6.1, 6.12"), "{stderr}");

    let dir = local_kernel_matrix();
    let output = ksnap().args(["releases", "mine"]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no releases to list: only apt kernels have releases"), "{stderr}");
}

#[test]
fn a_release_of_an_unknown_or_local_kernel_is_refused_before_anything_runs() {
    let output = ksnap().args(["run", "--kernel", "nope@5.10.1-1", "--suite", "env"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ksnap: error: unknown kernel `nope`; ksnap.toml defines: 5.10"), "{stderr}");

    let dir = local_kernel_matrix();
    let output =
        ksnap().args(["run", "--kernel", "mine@1.0-1", "--suite", "env"]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not an apt kernel: only apt kernels have releases (`mine@…`)"), "{stderr}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and the system's Debian mirror (KSNAP_SKIP_VM=1)")]
fn a_release_apt_does_not_serve_names_the_nearest_ones() {
    let dir = scratch_matrix(None);
    let output =
        ksnap().args(["run", "--kernel", "old@5.10.220-1", "--suite", "env"]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("apt serves no release 5.10.220-1 of linux-image-5.10*-cloud-amd64"), "{stderr}");
    assert!(stderr.contains("5.10.218-1, 5.10.223-1") && stderr.contains("`ksnap releases old`"), "{stderr}");
    assert!(!dir.path().join("ksnap.lock").exists(), "a release is never written to ksnap.lock");
}
