//! Kernels: where they come from ([`KernelSource`]) and what ksnap knows once one is resolved
//! ([`Kernel`]).
//!
//! An apt package is resolved through the system's apt sources: a metapackage such as
//! `linux-image-cloud-amd64` is followed to the real image package it depends on, which is fetched with
//! `apt-get download` and unpacked in Rust ([`crate::deb`]) into the cache, keyed by package and version.
//! A kernel built from source ([`crate::build`]) lands in the same kind of cache entry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::build::BuildRecipe;
use crate::cache::{self, Cache};
use crate::error::Error;

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// An apt package: a real image package or a metapackage that depends on one.
    Apt { package: String },
    /// A local `.deb` of a kernel image package.
    Deb { path: PathBuf },
    /// A local bzImage, optionally with the `.config` it was built from.
    BzImage { path: PathBuf, config: Option<PathBuf> },
    /// Built here from kernel source and Kconfig fragments.
    Build(BuildRecipe),
}

impl std::fmt::Display for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSource::Apt { package } => write!(f, "apt package {package}"),
            KernelSource::Deb { path } => write!(f, "{}", path.display()),
            KernelSource::BzImage { path, .. } => write!(f, "{}", path.display()),
            KernelSource::Build(recipe) => write!(f, "{recipe}"),
        }
    }
}

/// A Debian package, by name and exact version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// A kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    pub image: PathBuf,
    pub config: Option<PathBuf>,
    /// `uname -r`, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The package it came from, if any.
    pub package: Option<Package>,
    /// SHA-256 of the kernel's `.config`, if known.
    pub config_hash: Option<String>,
}

impl Kernel {
    /// The value of a `CONFIG_…` option in the kernel's config: `Some("y")`, `Some("\"str\"")`, or `None`
    /// when unset, absent or the config is unknown.
    pub fn config_value(&self, option: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.config.as_ref()?).ok()?;
        text.lines().find_map(|line| line.strip_prefix(option)?.strip_prefix('=').map(str::to_string))
    }
}

/// What `resolve` reports while it works (downloads take a while).
pub type StepReporter<'a> = &'a mut dyn FnMut(&str);

/// Cached metadata of an unpacked kernel (the entry's `kernel.json`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheRecord {
    kernel: Kernel,
    image_sha256: String,
}

pub(crate) const CACHE_KIND: &str = "kernels";

impl KernelSource {
    /// The package this source names, resolved through apt to the real image (or source) package (no
    /// download).
    pub fn resolve_package(&self, cache: &Cache) -> Result<Option<Package>, Error> {
        match self {
            KernelSource::Apt { package } => resolve_apt(cache, package).map(Some),
            KernelSource::Build(recipe) => recipe.source_package(cache),
            _ => Ok(None),
        }
    }

    /// Make the kernel available locally, fetching and unpacking it into `cache` if needed.
    pub fn resolve(&self, cache: &Cache, report: StepReporter) -> Result<Kernel, Error> {
        match self {
            KernelSource::Apt { package } => {
                let package = resolve_apt(cache, package)?;
                let key = format!("{}_{}", package.name, package.version);
                cached_or_produce(cache, &key, report, |staging, report| {
                    report(&format!("downloading {} {}", package.name, package.version));
                    let download =
                        tempfile::tempdir_in(staging).map_err(|e| Error::io("creating a download directory", e))?;
                    let deb = apt_download(&package, download.path())?;
                    unpack_deb(&deb, staging, Some(package.clone()), report)
                })
            }
            KernelSource::Deb { path } => cached_or_produce(cache, &deb_key(path)?, report, |staging, report| {
                let control = crate::deb::read_control(path)?;
                unpack_deb(path, staging, Some(Package { name: control.package, version: control.version }), report)
            }),
            KernelSource::BzImage { path, config } => {
                let release = bzimage_release(path)?;
                let config_hash = match config {
                    Some(config) => {
                        Some(cache::sha256_file(config).map_err(|e| Error::io(format!("reading {}", config.display()), e))?)
                    }
                    None => None,
                };
                Ok(Kernel { image: path.clone(), config: config.clone(), release, package: None, config_hash })
            }
            KernelSource::Build(recipe) => recipe.resolve(cache, report),
        }
    }

    /// The kernel, if it can be had without downloading or unpacking anything: a valid cache entry, or
    /// a local bzImage. Never fetches.
    pub fn cached(&self, cache: &Cache) -> Result<Option<Kernel>, Error> {
        match self {
            KernelSource::Apt { package } => {
                let package = resolve_apt(cache, package)?;
                Ok(read_valid_entry(&cache.entry(CACHE_KIND, &format!("{}_{}", package.name, package.version))))
            }
            KernelSource::Deb { path } => Ok(read_valid_entry(&cache.entry(CACHE_KIND, &deb_key(path)?))),
            KernelSource::BzImage { .. } => self.resolve(cache, &mut |_| {}).map(Some),
            KernelSource::Build(recipe) => recipe.cached(cache),
        }
    }
}

/// A local `.deb` is cached under its content hash: a rebuilt package with the same name is a new kernel.
fn deb_key(path: &Path) -> Result<String, Error> {
    let digest = cache::sha256_file(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(format!("deb-{}", &digest[..16]))
}

/// What a producer of a cache entry leaves in the staging directory it is given.
pub(crate) struct Produced {
    /// The kernel image, directly in the staging directory.
    pub image: PathBuf,
    /// Its `.config`, directly in the staging directory, if known.
    pub config: Option<PathBuf>,
    pub release: String,
    pub package: Option<Package>,
}

/// Reuse the valid cache entry `kernels/KEY`, or make it: `produce` writes the kernel into a staging
/// directory, which becomes the entry once `kernel.json` records its hashes. Runs under the key's lock, so
/// two ksnap processes never produce the same entry twice (the second waits and reuses the first's).
pub(crate) fn cached_or_produce(
    cache: &Cache,
    key: &str,
    report: StepReporter,
    produce: impl FnOnce(&Path, StepReporter) -> Result<Produced, Error>,
) -> Result<Kernel, Error> {
    let entry = cache.entry(CACHE_KIND, key);
    if let Some(kernel) = read_valid_entry(&entry) {
        return Ok(kernel);
    }
    let _lock = cache.lock(CACHE_KIND, key)?;
    // Another process may have made it while we waited for the lock.
    if let Some(kernel) = read_valid_entry(&entry) {
        return Ok(kernel);
    }
    if entry.exists() {
        report(&format!("cache entry {} is incomplete or corrupt; fetching it again", entry.display()));
    }
    let staging = cache.staging_dir()?;
    let produced = produce(staging.path(), report)?;
    let config_hash = match &produced.config {
        Some(c) => Some(cache::sha256_file(c).map_err(|e| Error::io("hashing the kernel config", e))?),
        None => None,
    };
    let record = CacheRecord {
        image_sha256: cache::sha256_file(&produced.image).map_err(|e| Error::io("hashing the kernel", e))?,
        kernel: Kernel {
            image: entry.join(file_name(&produced.image)),
            config: produced.config.as_ref().map(|c| entry.join(file_name(c))),
            release: produced.release,
            package: produced.package,
            config_hash,
        },
    };
    let json = serde_json::to_vec_pretty(&record).expect("kernel record serializes");
    cache::write_atomic(&staging.path().join("kernel.json"), &json)?;
    cache.commit(staging, &entry)?;
    read_valid_entry(&entry).ok_or_else(|| {
        Error::io(format!("verifying {}", entry.display()), std::io::Error::other("the entry just written does not verify"))
    })
}

/// Unpack a kernel image package into `staging` (which must end up holding nothing else).
fn unpack_deb(deb: &Path, staging: &Path, package: Option<Package>, report: StepReporter) -> Result<Produced, Error> {
    report("unpacking kernel");
    let unpacked = crate::deb::extract_kernel(deb, staging)?;
    Ok(Produced { image: unpacked.vmlinuz, config: unpacked.config, release: unpacked.release, package })
}

fn file_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().expect("extracted files have names")
}

/// The kernel recorded in a cache entry, if the entry is whole and its files match their hashes.
pub(crate) fn read_valid_entry(entry: &Path) -> Option<Kernel> {
    let record: CacheRecord = serde_json::from_slice(&std::fs::read(entry.join("kernel.json")).ok()?).ok()?;
    let kernel = record.kernel;
    if cache::sha256_file(&kernel.image).ok()? != record.image_sha256 {
        return None;
    }
    if let (Some(config), Some(hash)) = (&kernel.config, &kernel.config_hash) {
        if &cache::sha256_file(config).ok()? != hash {
            return None;
        }
    }
    Some(kernel)
}

/// Follow a (meta)package to the real image package, with the candidate version apt would install.
///
/// `apt-cache` re-reads every package list on each call (about 0.5 s here, where apt keeps no binary
/// cache), so the answer is memoised in the cache, valid while apt's lists and sources are unchanged.
pub(crate) fn resolve_apt(cache: &Cache, name: &str) -> Result<Package, Error> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Memo {
        apt_state: String,
        package: Package,
    }
    let memo_path = cache.entry("apt-resolved", name).with_extension("json");
    let apt_state = apt_state_fingerprint();
    let memo: Option<Memo> = std::fs::read(&memo_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(memo) = memo.filter(|m| Some(&m.apt_state) == apt_state.as_ref()) {
        return Ok(memo.package);
    }
    let package = resolve_apt_uncached(name)?;
    if let Some(apt_state) = apt_state {
        let memo = Memo { apt_state, package: package.clone() };
        // A memo that cannot be written only costs time on the next run.
        let _ = cache::write_atomic(&memo_path, &serde_json::to_vec(&memo).expect("memo serializes"));
    }
    Ok(package)
}

/// Changes whenever `apt-get update` or an edit of the apt configuration could change what a package
/// name resolves to: names, sizes and modification times of the package lists and of /etc/apt.
fn apt_state_fingerprint() -> Option<String> {
    let mut state = String::new();
    for dir in ["/var/lib/apt/lists", "/etc/apt", "/etc/apt/sources.list.d", "/etc/apt/preferences.d"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<(String, u64, i64, i64)> = entries
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                use std::os::unix::fs::MetadataExt;
                Some((entry.path().display().to_string(), meta.size(), meta.mtime(), meta.mtime_nsec()))
            })
            .collect();
        files.sort();
        for file in files {
            state.push_str(&format!("{file:?}\n"));
        }
    }
    (!state.is_empty()).then(|| cache::sha256_bytes(state.as_bytes()))
}

fn resolve_apt_uncached(name: &str) -> Result<Package, Error> {
    let mut name = name.to_string();
    // linux-image-cloud-amd64 → linux-image-6.1.0-56-cloud-amd64, linux-source → linux-source-6.1: one
    // hop in Debian; allow a few.
    for _ in 0..4 {
        let fields = apt_show(&name)?;
        let field = |key: &str| {
            fields.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string()))
        };
        let version = field("Version").ok_or_else(|| Error::UnknownPackage {
            package: name.clone(),
            detail: "apt-cache show printed no Version".into(),
        })?;
        let image_dependency = field("Depends").and_then(|depends| {
            depends
                .split(',')
                .map(|alt| alt.split('|').next().unwrap_or("").trim())
                .map(|dep| dep.split([' ', '(']).next().unwrap_or("").to_string())
                .find(|dep| dep.starts_with("linux-image-") || dep.starts_with("linux-source-"))
        });
        match image_dependency {
            Some(next) => name = next,
            None => return Ok(Package { name, version }),
        }
    }
    Err(Error::UnknownPackage { package: name, detail: "too many levels of metapackages".into() })
}

/// `apt-cache show` for the candidate version of `name`.
fn apt_show(name: &str) -> Result<String, Error> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(Error::UnknownPackage { package: name.into(), detail: "not a valid Debian package name".into() });
    }
    let output = Command::new("apt-cache")
        .args(["show", "--no-all-versions", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::AptFailed { command: format!("apt-cache show {name}"), stderr: e.to_string() })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || stdout.trim().is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::UnknownPackage { package: name.into(), detail: if stderr.is_empty() { "no such package".into() } else { stderr } });
    }
    Ok(stdout)
}

/// `apt-get download NAME=VERSION` into `dir`; the path of the `.deb`.
pub(crate) fn apt_download(package: &Package, dir: &Path) -> Result<PathBuf, Error> {
    let spec = format!("{}={}", package.name, package.version);
    let mut command = Command::new("apt-get");
    // As root, apt drops privileges to `_apt`, which cannot write our private directory.
    command
        .args(["download", "-q", "-o", "APT::Sandbox::User=root", &spec])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = crate::children::spawn(&mut command).map_err(|e| match crate::children::is_cancelled() {
        true => Error::Cancelled,
        false => Error::AptFailed { command: format!("apt-get download {spec}"), stderr: e.to_string() },
    })?;
    let stderr = child.child_mut().stderr.take().map(|mut s| {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut text);
        text
    });
    let status = child.wait().map_err(|e| Error::io("waiting for apt-get", e))?;
    if crate::children::is_cancelled() {
        return Err(Error::Cancelled);
    }
    let stderr = stderr.unwrap_or_default();
    if !status.success() {
        return Err(Error::AptFailed { command: format!("apt-get download {spec}"), stderr: stderr.trim().to_string() });
    }
    let deb = std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing the download directory", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    deb.ok_or_else(|| Error::AptFailed { command: format!("apt-get download {spec}"), stderr: "no .deb was written".into() })
}

/// Check that `path` is an x86 bzImage and read its release string from the setup header
/// (Documentation/arch/x86/boot.rst: boot_flag 0xAA55 at 0x1FE, "HdrS" at 0x202, kernel_version at 0x20E).
pub fn bzimage_release(path: &Path) -> Result<String, Error> {
    let not_a_kernel = |why: &str| Error::NotAKernel { path: path.to_path_buf(), why: why.to_string() };
    let mut header = vec![0u8; 64 * 1024];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let len = read_up_to(&mut file, &mut header).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    header.truncate(len);
    if header.len() < 0x210 {
        return Err(not_a_kernel("too short"));
    }
    if header[0x1FE..0x200] != [0x55, 0xAA] || &header[0x202..0x206] != b"HdrS" {
        return Err(not_a_kernel("no Linux boot-protocol header (HdrS)"));
    }
    let offset = u16::from_le_bytes([header[0x20E], header[0x20F]]) as usize + 0x200;
    let version = header
        .get(offset..)
        .and_then(|rest| rest.split(|&b| b == 0).next())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .ok_or_else(|| not_a_kernel("kernel_version points outside the header"))?;
    version.split_whitespace().next().map(str::to_string).ok_or_else(|| not_a_kernel("empty kernel_version"))
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bzimage(version: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&(0x300u16).to_le_bytes());
        image[0x500..0x500 + version.len()].copy_from_slice(version.as_bytes());
        image
    }

    #[test]
    fn bzimage_release_reads_the_setup_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bzImage");
        std::fs::write(&path, fake_bzimage("6.12.0-ksnap (root@host) #1 SMP")).unwrap();
        assert_eq!(bzimage_release(&path).unwrap(), "6.12.0-ksnap");
    }

    #[test]
    fn a_text_file_is_not_a_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello\n".repeat(200)).unwrap();
        let err = bzimage_release(&path).unwrap_err();
        assert!(err.to_string().contains("is not a bootable x86 kernel image: no Linux boot-protocol header"), "{err}");
    }

    #[test]
    fn config_value_reads_options() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_AB=\"x\"\n").unwrap();
        let kernel =
            Kernel { image: "/k".into(), config: Some(config), release: "r".into(), package: None, config_hash: None };
        assert_eq!(kernel.config_value("CONFIG_A").as_deref(), Some("y"));
        assert_eq!(kernel.config_value("CONFIG_AB").as_deref(), Some("\"x\""));
        assert_eq!(kernel.config_value("CONFIG_B"), None);
    }

    #[test]
    fn invalid_package_names_are_rejected_before_apt() {
        let err = resolve_apt_uncached("linux image; rm -rf").unwrap_err();
        assert!(err.to_string().contains("not a valid Debian package name"), "{err}");
    }
}
