//! Kernels: where they come from ([`KernelSource`]), what they are pinned to ([`Pin`], one entry of
//! `ksnap.lock`), and what ksnap knows once one is resolved ([`Kernel`]).
//!
//! An apt kernel is pinned to exact packages ([`crate::apt::Apt::pin`]: a metapackage such as
//! `linux-image-cloud-amd64` followed to the real image package, and from Debian 7.x on its
//! `linux-binary-*` and `linux-base-*` parts), fetched with `apt-get download NAME=VERSION`, checked
//! against the pinned SHA-256 and unpacked in Rust ([`crate::deb`]) into the cache, keyed by the image
//! package and version. A kernel built from source ([`crate::build`]) is pinned to its source package
//! and build key, and lands in the same kind of cache entry.

use std::path::{Path, PathBuf};

use crate::apt::{Archives, PinnedPackage};
use crate::build::BuildRecipe;
use crate::cache::{self, Cache};
use crate::error::Error;

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// An apt package (a real image package or a metapackage that depends on one), from the system's apt
    /// sources (`suite: None`) or from one Debian suite through ksnap's own apt configuration.
    Apt { package: String, suite: Option<String> },
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
            KernelSource::Apt { package, suite: None } => write!(f, "apt package {package}"),
            KernelSource::Apt { package, suite: Some(suite) } => write!(f, "apt package {package} from {suite}"),
            KernelSource::Deb { path } => write!(f, "{}", path.display()),
            KernelSource::BzImage { path, .. } => write!(f, "{}", path.display()),
            KernelSource::Build(recipe) => write!(f, "{recipe}"),
        }
    }
}

/// What a kernel is pinned to: exactly which packages it is made of. Local kernels (a `.deb`, a bzImage,
/// a source tree) are not pinned: they are what the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// An apt kernel's packages; the first names the kernel (the image package).
    Apt { packages: Vec<PinnedPackage> },
    /// A kernel built from a source package: that package, and the build's cache key (source version and
    /// the options of the fragments).
    Build { source: PinnedPackage, key: String },
}

impl Pin {
    /// Every package of the pin, the one naming the kernel first.
    pub fn packages(&self) -> Vec<&PinnedPackage> {
        match self {
            Pin::Apt { packages } => packages.iter().collect(),
            Pin::Build { source, .. } => vec![source],
        }
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::Apt { packages } => match packages.first() {
                Some(first) => write!(f, "{first}"),
                None => write!(f, "no packages"),
            },
            Pin::Build { source, .. } => write!(f, "{source}"),
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
    /// Whether this source is pinned in `ksnap.lock` (apt kernels and builds of a source package).
    pub fn is_pinned(&self) -> bool {
        self.apt_request().is_some()
    }

    /// The apt package this source asks for and the suite it asks for it from (`None`: the system's
    /// sources), if any.
    pub fn apt_request(&self) -> Option<(&str, Option<&str>)> {
        match self {
            KernelSource::Apt { package, suite } => Some((package, suite.as_deref())),
            KernelSource::Build(recipe) => recipe.apt_request(),
            _ => None,
        }
    }

    /// What this source resolves to through apt today (no download): the lock entry it would get.
    /// `None` for a local kernel.
    pub fn pin(&self, archives: &Archives) -> Result<Option<Pin>, Error> {
        let Some((package, suite)) = self.apt_request() else { return Ok(None) };
        let mut packages = archives.apt(suite)?.pin(package)?;
        match self {
            KernelSource::Build(recipe) => {
                packages.truncate(1);
                let source = packages.remove(0);
                let key = recipe.key(Some(&source.package()))?;
                Ok(Some(Pin::Build { source, key }))
            }
            _ => Ok(Some(Pin::Apt { packages })),
        }
    }

    /// Whether `pin` still describes this source: for a build, the fragments' options are still the ones
    /// its key was made from.
    pub fn pin_is_current(&self, pin: &Pin) -> Result<bool, Error> {
        match (self, pin) {
            (KernelSource::Apt { .. }, Pin::Apt { packages }) => Ok(!packages.is_empty()),
            (KernelSource::Build(recipe), Pin::Build { source, key }) => {
                Ok(recipe.key(Some(&source.package()))? == *key)
            }
            _ => Ok(false),
        }
    }

    /// Make the kernel available locally, fetching and unpacking (or building) it into `cache` if needed:
    /// exactly `pin`'s packages, or, without a pin, what apt resolves the source to today.
    pub fn resolve(&self, pin: Option<&Pin>, cache: &Cache, archives: &Archives, report: StepReporter) -> Result<Kernel, Error> {
        match self {
            KernelSource::Apt { suite, .. } => {
                let packages = match self.pin_or_resolve(pin, archives)? {
                    Pin::Apt { packages } => packages,
                    Pin::Build { .. } => unreachable!("an apt kernel is pinned to packages"),
                };
                cached_or_produce(cache, &entry_key(&packages[0]), report, |staging, report| {
                    let apt = archives.apt(suite.as_deref())?;
                    let names: Vec<String> = packages.iter().map(ToString::to_string).collect();
                    report(&format!("downloading {}", names.join(", ")));
                    let download =
                        tempfile::tempdir_in(staging).map_err(|e| Error::io("creating a download directory", e))?;
                    let debs = apt.download(&packages, download.path())?;
                    unpack_debs(&debs, staging, Some(packages[0].package()), report)
                })
            }
            KernelSource::Deb { path } => cached_or_produce(cache, &deb_key(path)?, report, |staging, report| {
                let control = crate::deb::read_control(path)?;
                let package = Package { name: control.package, version: control.version };
                unpack_debs(std::slice::from_ref(path), staging, Some(package), report)
            }),
            KernelSource::BzImage { path, config } => local_bzimage(path, config.as_deref()),
            KernelSource::Build(recipe) => {
                let source = match self.pin_or_resolve(pin, archives)? {
                    Pin::Build { source, .. } => Some(source),
                    Pin::Apt { .. } => unreachable!("a build is pinned to its source package"),
                };
                recipe.resolve(source.as_ref(), cache, archives, report)
            }
        }
    }

    /// `pin` if given (and of the right kind), else what apt resolves this source to now.
    fn pin_or_resolve(&self, pin: Option<&Pin>, archives: &Archives) -> Result<Pin, Error> {
        match pin {
            Some(pin @ Pin::Apt { packages }) if matches!(self, KernelSource::Apt { .. }) && !packages.is_empty() => {
                Ok(pin.clone())
            }
            Some(pin @ Pin::Build { .. }) if matches!(self, KernelSource::Build(_)) => Ok(pin.clone()),
            _ => self.pin(archives)?.ok_or_else(|| Error::UnknownPackage {
                package: self.to_string(),
                detail: "nothing to resolve".into(),
            }),
        }
    }

    /// The kernel, if it can be had without downloading, unpacking or building anything: a valid cache
    /// entry for `pin`, or a local bzImage. Never fetches. A pinned source without a pin is not cached.
    pub fn cached(&self, pin: Option<&Pin>, cache: &Cache) -> Result<Option<Kernel>, Error> {
        match (self, pin) {
            (KernelSource::Apt { .. }, Some(Pin::Apt { packages })) if !packages.is_empty() => {
                Ok(read_valid_entry(&cache.entry(CACHE_KIND, &entry_key(&packages[0]))))
            }
            (KernelSource::Deb { path }, _) => Ok(read_valid_entry(&cache.entry(CACHE_KIND, &deb_key(path)?))),
            (KernelSource::BzImage { path, config }, _) => local_bzimage(path, config.as_deref()).map(Some),
            (KernelSource::Build(recipe), Some(Pin::Build { source, .. })) => recipe.cached(Some(&source.package()), cache),
            (KernelSource::Build(recipe), None) if recipe.apt_request().is_none() => recipe.cached(None, cache),
            _ => Ok(None),
        }
    }
}

/// A bzImage on this machine is used where it is.
fn local_bzimage(path: &Path, config: Option<&Path>) -> Result<Kernel, Error> {
    let release = bzimage_release(path)?;
    let config_hash = match config {
        Some(config) => Some(cache::sha256_file(config).map_err(|e| Error::io(format!("reading {}", config.display()), e))?),
        None => None,
    };
    Ok(Kernel { image: path.to_path_buf(), config: config.map(Path::to_path_buf), release, package: None, config_hash })
}

/// An apt kernel's cache entry is named after its image package and version.
fn entry_key(image: &PinnedPackage) -> String {
    format!("{}_{}", image.name, image.version)
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

/// Unpack a kernel from its packages into `staging` (which must end up holding nothing else): one image
/// package, or an image split into `linux-binary-*` and `linux-base-*`.
fn unpack_debs(debs: &[PathBuf], staging: &Path, package: Option<Package>, report: StepReporter) -> Result<Produced, Error> {
    report("unpacking kernel");
    let unpacked = crate::deb::extract_kernel(debs, staging)?;
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
}
