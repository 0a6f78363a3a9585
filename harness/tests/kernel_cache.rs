//! The kernel cache under stress: corruption, concurrency, an unwritable directory, a full disk.
//! These fetch the 6.12 cloud kernel package (about 35 MB) through apt, into private caches.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::{Kernel, KernelSource, Pin};

fn source() -> KernelSource {
    KernelSource::Apt { package: "linux-image-6.12-cloud-amd64".into(), suite: None }
}

/// The kernel, fetched into `cache` exactly as pinned.
fn resolve(cache: &Cache, pin: &Pin, report: &mut dyn FnMut(&str)) -> Kernel {
    source().resolve(Some(pin), cache, &Archives::new(cache, None), report).unwrap()
}

fn pin(cache: &Cache) -> Pin {
    source().pin(&Archives::new(cache, None)).unwrap().unwrap()
}

#[test]
#[cfg_attr(skip_vm, ignore = "fetches a kernel through apt (KSNAP_SKIP_VM=1)")]
fn a_corrupt_cache_entry_is_detected_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path().to_path_buf()).unwrap();
    let pin = pin(&cache);
    let kernel = resolve(&cache, &pin, &mut |_| {});
    // Flip a byte in the middle of the cached kernel.
    let mut image = std::fs::read(&kernel.image).unwrap();
    let middle = image.len() / 2;
    image[middle] ^= 0xff;
    std::fs::write(&kernel.image, &image).unwrap();
    assert!(source().cached(Some(&pin), &cache).unwrap().is_none(), "a corrupt entry must not count as cached");

    let mut steps = Vec::new();
    let again = resolve(&cache, &pin, &mut |step| steps.push(step.to_string()));
    assert!(steps.iter().any(|s| s.contains("is incomplete or corrupt; fetching it again")), "{steps:?}");
    assert_eq!(again, kernel);
    assert_ne!(std::fs::read(&again.image).unwrap()[middle], image[middle], "the image was not replaced");
}

#[test]
#[cfg_attr(skip_vm, ignore = "fetches a kernel through apt (KSNAP_SKIP_VM=1)")]
fn two_processes_fetching_the_same_kernel_download_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let start = Arc::new(Barrier::new(2));
    let fetchers: Vec<_> = (0..2)
        .map(|_| {
            let (root, start) = (root.clone(), start.clone());
            std::thread::spawn(move || {
                let cache = Cache::at(root).unwrap();
                let mut downloads = 0;
                start.wait();
                let pin = pin(&cache);
                let kernel =
                    resolve(&cache, &pin, &mut |step| downloads += usize::from(step.starts_with("downloading")));
                (kernel, downloads)
            })
        })
        .collect();
    let results: Vec<_> = fetchers.into_iter().map(|f| f.join().unwrap()).collect();
    assert_eq!(results[0].0, results[1].0);
    assert_eq!(results[0].1 + results[1].1, 1, "the second fetcher must wait for the first and reuse its entry");
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0, "staging directories left behind");
}

/// `ksnap kernels --fetch` with its cache under `cache_home`. It fails the test, rather than hang it, if
/// ksnap has not ended after ten minutes (every step of a fetch that fails must fail, not wait).
fn ksnap_kernels(cache_home: &Path) -> std::process::Output {
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    let mut child = Command::cargo_bin("ksnap")
        .unwrap()
        .args(["kernels", "--fetch"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .env("XDG_CACHE_HOME", cache_home)
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`ksnap kernels --fetch` was still running after 10 minutes:\n{}", read_all(stdout));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output { status, stdout: read_all(stdout).into_bytes(), stderr: read_all(stderr).into_bytes() }
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn an_unusable_cache_directory_is_named() {
    let output = ksnap_kernels(Path::new("/proc/ksnap-no-such-dir"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the ksnap cache at /proc/ksnap-no-such-dir/ksnap is not usable"), "{stderr}");
    assert!(stderr.contains("Set XDG_CACHE_HOME to a writable directory"), "{stderr}");
    assert_eq!(stderr.matches("(os error").count(), 1, "the cause is printed once: {stderr}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "fetches a kernel through apt (KSNAP_SKIP_VM=1)")]
fn a_full_disk_while_fetching_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB: room for the cache's bookkeeping, not for a 35 MB kernel package.
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "ksnap-test"]).arg(dir.path()).status();
    assert!(matches!(mounted, Ok(s) if s.success()), "this test mounts a small tmpfs and needs root");
    let output = ksnap_kernels(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let leftovers = std::fs::read_dir(dir.path().join("ksnap/tmp")).map(|d| d.count()).unwrap_or(0);
    Command::new("umount").arg(dir.path()).status().unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("No space left on device") || stdout.contains("not enough free space"), "{stdout}");
    assert_eq!(leftovers, 0, "a failed fetch left its staging directory behind");
}
