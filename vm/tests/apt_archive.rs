//! Kernels from a Debian suite through ksnap's private apt configuration, against a local archive
//! (`file:` URI, no network): metapackage resolution, the Debian 7.x split into `linux-binary-*` and
//! `linux-base-*`, pinned downloads, SHA-256 checks and versions the archive no longer serves.
//!
//! The fixture packages are built with `dpkg-deb`, which every Debian system has.

use std::path::Path;
use std::process::Command;

use ksnap_vm::cache::{self, Cache};
use ksnap_vm::kernel::apt::{Archives, Mirror};
use ksnap_vm::kernel::{KernelSource, Pin};
use ksnap_vm::Error;

const SUITE: &str = "testsuite";
const SPLIT_RELEASE: &str = "7.2.13+deb14-cloud-amd64";
const OLD_RELEASE: &str = "5.10.0-32-cloud-amd64";

struct Package {
    name: &'static str,
    version: &'static str,
    depends: &'static str,
    /// (path inside the package, contents)
    files: Vec<(String, Vec<u8>)>,
}

/// Builds `package` with dpkg-deb into `pool`; its Packages stanza.
fn build(pool: &Path, package: &Package) -> String {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("DEBIAN")).unwrap();
    let depends = if package.depends.is_empty() { String::new() } else { format!("Depends: {}\n", package.depends) };
    let control = format!(
        "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: ksnap tests <t@example.invalid>\n{depends}\
         Description: fixture\n",
        package.name, package.version
    );
    std::fs::write(root.path().join("DEBIAN/control"), &control).unwrap();
    for (path, bytes) in &package.files {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let file = format!("{}_{}_amd64.deb", package.name, package.version);
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(root.path())
        .arg(pool.join(&file))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("dpkg-deb runs");
    assert!(status.success());
    let deb = pool.join(&file);
    let size = std::fs::metadata(&deb).unwrap().len();
    let sha256 = cache::sha256_file(&deb).unwrap();
    format!("{control}Filename: pool/{file}\nSize: {size}\nSHA256: {sha256}\n\n")
}

/// A local Debian archive with one suite holding a 7.x-style split kernel behind the metapackage
/// `linux-image-cloud-amd64`, and a 5.x-style image package behind `linux-image-old-cloud-amd64`.
fn archive() -> (tempfile::TempDir, Mirror) {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let index = dir.path().join(format!("dists/{SUITE}/main/binary-amd64"));
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::create_dir_all(&index).unwrap();
    let modules = format!("usr/lib/modules/{SPLIT_RELEASE}");
    let packages = [
        Package {
            name: "linux-image-cloud-amd64",
            version: "7.2.13-1",
            depends: "linux-image-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)",
            files: vec![],
        },
        Package {
            name: "linux-image-7.2.13+deb14-cloud-amd64",
            version: "7.2.13-1",
            depends: "dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), \
                      linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)",
            files: vec![("usr/share/lintian/overrides/linux-image".into(), b"".to_vec())],
        },
        Package {
            name: "linux-binary-7.2.13+deb14-cloud-amd64",
            version: "7.2.13-1",
            depends: "",
            files: vec![(format!("{modules}/vmlinuz"), b"split kernel image".to_vec())],
        },
        Package {
            name: "linux-base-7.2.13+deb14-cloud-amd64",
            version: "7.2.13-1",
            depends: "",
            files: vec![
                (format!("{modules}/config"), b"CONFIG_SPLIT=y\n".to_vec()),
                (format!("{modules}/System.map"), b"ffffffff81000000 T _text\n".to_vec()),
            ],
        },
        Package {
            name: "linux-image-old-cloud-amd64",
            version: "5.10.223-1",
            depends: "linux-image-5.10.0-32-cloud-amd64",
            files: vec![],
        },
        Package {
            name: "linux-image-5.10.0-32-cloud-amd64",
            version: "5.10.223-1",
            depends: "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
            files: vec![
                (format!("boot/vmlinuz-{OLD_RELEASE}"), b"old kernel image".to_vec()),
                (format!("boot/config-{OLD_RELEASE}"), b"CONFIG_OLD=y\n".to_vec()),
            ],
        },
    ];
    let stanzas: String = packages.iter().map(|p| build(&pool, p)).collect();
    std::fs::write(index.join("Packages"), stanzas).unwrap();
    let mirror = Mirror { uri: format!("file:{}", dir.path().display()), signed_by: None };
    (dir, mirror)
}

fn source(package: &str) -> KernelSource {
    KernelSource::Apt { package: package.into(), suite: Some(SUITE.into()) }
}

fn setup() -> (tempfile::TempDir, tempfile::TempDir, Cache, Archives) {
    let (archive_dir, mirror) = archive();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(cache_dir.path().to_path_buf()).unwrap();
    let archives = Archives::with_mirror(&cache, mirror);
    (archive_dir, cache_dir, cache, archives)
}

fn names(pin: &Pin) -> Vec<String> {
    pin.packages().iter().map(|p| format!("{} {} {}", p.name, p.version, p.suite)).collect()
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_split_kernel_is_pinned_to_all_its_packages_and_unpacked_from_them() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let source = source("linux-image-cloud-amd64");
    let pin = source.pin(&archives).unwrap().unwrap();
    assert_eq!(
        names(&pin),
        [
            "linux-image-7.2.13+deb14-cloud-amd64 7.2.13-1 testsuite",
            "linux-binary-7.2.13+deb14-cloud-amd64 7.2.13-1 testsuite",
            "linux-base-7.2.13+deb14-cloud-amd64 7.2.13-1 testsuite",
        ]
    );
    assert!(pin.packages().iter().all(|p| p.sha256.len() == 64), "{pin:?}");
    assert_eq!(source.cached(Some(&pin), &cache).unwrap(), None);

    let kernel = source.resolve(Some(&pin), &cache, &archives, &mut |_| {}).unwrap();
    assert_eq!(kernel.release, SPLIT_RELEASE);
    assert_eq!(std::fs::read(&kernel.image).unwrap(), b"split kernel image");
    assert_eq!(kernel.config_value("CONFIG_SPLIT").as_deref(), Some("y"));
    assert_eq!(kernel.package.as_ref().map(|p| p.name.as_str()), Some("linux-image-7.2.13+deb14-cloud-amd64"));
    assert_eq!(source.cached(Some(&pin), &cache).unwrap(), Some(kernel));
    // The private configuration lives in the cache, not in /etc/apt.
    assert!(cache.root().join("apt").join(SUITE).join("sources.list").is_file());
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn an_image_package_with_boot_files_is_pinned_alone() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let source = source("linux-image-old-cloud-amd64");
    let pin = source.pin(&archives).unwrap().unwrap();
    assert_eq!(names(&pin), ["linux-image-5.10.0-32-cloud-amd64 5.10.223-1 testsuite"]);
    let kernel = source.resolve(Some(&pin), &cache, &archives, &mut |_| {}).unwrap();
    assert_eq!((kernel.release.as_str(), kernel.config_value("CONFIG_OLD").as_deref()), (OLD_RELEASE, Some("y")));
}

fn nothing_cached(cache: &Cache) {
    let kernels = std::fs::read_dir(cache.root().join("kernels")).map(|d| d.count()).unwrap_or(0);
    let staging = std::fs::read_dir(cache.root().join("tmp")).unwrap().count();
    assert_eq!((kernels, staging), (0, 0), "nothing may be cached or left behind");
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_download_that_does_not_match_its_pinned_sha256_is_refused_and_not_cached() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let source = source("linux-image-cloud-amd64");
    let Some(Pin::Apt { mut packages }) = source.pin(&archives).unwrap() else { panic!("an apt pin") };
    packages[1].sha256 = "0".repeat(64);
    let err = source.resolve(Some(&Pin::Apt { packages }), &cache, &archives, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("linux-binary-7.2.13+deb14-cloud-amd64 7.2.13-1") && message.contains(&"0".repeat(64)),
        "{message}"
    );
    nothing_cached(&cache);
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_version_the_archive_no_longer_serves_is_named() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let source = source("linux-image-old-cloud-amd64");
    let Some(Pin::Apt { mut packages }) = source.pin(&archives).unwrap() else { panic!("an apt pin") };
    packages[0].version = "5.10.200-1".into();
    let err = source.resolve(Some(&Pin::Apt { packages }), &cache, &archives, &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::PackageGone { .. }), "{message}");
    assert!(message.contains("linux-image-5.10.0-32-cloud-amd64=5.10.200-1") && message.contains(SUITE), "{message}");
    nothing_cached(&cache);
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_cached_kernel_needs_no_archive() {
    let (archive, _cache_dir, cache, archives) = setup();
    let source = source("linux-image-old-cloud-amd64");
    let pin = source.pin(&archives).unwrap().unwrap();
    let kernel = source.resolve(Some(&pin), &cache, &archives, &mut |_| {}).unwrap();
    drop(archive);
    // Offline (the archive is gone): the pinned kernel comes from the cache.
    let again = source.resolve(Some(&pin), &cache, &Archives::new(&cache, None), &mut |_| {}).unwrap();
    assert_eq!(again, kernel);
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn unknown_packages_name_the_suite() {
    let (_archive, _cache_dir, _cache, archives) = setup();
    let err = source("linux-image-no-such").pin(&archives).unwrap_err().to_string();
    assert!(err.contains("linux-image-no-such") && err.contains(SUITE), "{err}");
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_kernel_line_lists_its_releases_and_one_resolves_exactly_with_its_split_parts() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let (family, releases) = source("linux-image-cloud-amd64").releases(&archives).unwrap();
    assert_eq!(family.to_string(), "linux-image-7.2*-cloud-amd64");
    let rows: Vec<String> =
        releases.iter().map(|r| format!("{} {} {}", r.package, r.version, r.suite_list())).collect();
    assert_eq!(rows, ["linux-image-7.2.13+deb14-cloud-amd64 7.2.13-1 testsuite"]);
    let release = source("linux-image-cloud-amd64").release(&releases[0]).unwrap();
    assert!(!release.is_pinned(), "a release is not written to ksnap.lock");
    assert_eq!(release.cached(None, &cache).unwrap(), None);
    let kernel = release.resolve(None, &cache, &archives, &mut |_| {}).unwrap();
    assert_eq!(
        (kernel.release.as_str(), std::fs::read(&kernel.image).unwrap()),
        (SPLIT_RELEASE, b"split kernel image".to_vec())
    );
    assert_eq!(release.cached(None, &cache).unwrap(), Some(kernel));
    let (family, releases) = source("linux-image-old-cloud-amd64").releases(&archives).unwrap();
    assert_eq!((family.line.as_str(), releases.len()), ("5.10", 1));
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_release_whose_deb_is_gone_from_the_pool_is_named_and_not_cached() {
    let (archive, _cache_dir, cache, archives) = setup();
    let (_, releases) = source("linux-image-old-cloud-amd64").releases(&archives).unwrap();
    std::fs::remove_file(archive.path().join("pool/linux-image-5.10.0-32-cloud-amd64_5.10.223-1_amd64.deb")).unwrap();
    let release = source("linux-image-old-cloud-amd64").release(&releases[0]).unwrap();
    let err = release.resolve(None, &cache, &archives, &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ReleaseNotServed { .. }), "{message}");
    assert!(message.contains("linux-image-5.10.0-32-cloud-amd64=5.10.223-1 is listed by apt"), "{message}");
    nothing_cached(&cache);
}

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and dpkg-deb (KSNAP_SKIP_VM=1)")]
fn a_version_not_in_the_index_is_not_pinned() {
    let (_archive, _cache_dir, cache, archives) = setup();
    let release = KernelSource::Release {
        package: "linux-image-5.10.0-32-cloud-amd64".into(),
        version: "5.10.1-1".into(),
        suite: Some(SUITE.into()),
    };
    let err = release.resolve(None, &cache, &archives, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("linux-image-5.10.0-32-cloud-amd64=5.10.1-1"), "{err}");
    nothing_cached(&cache);
}
