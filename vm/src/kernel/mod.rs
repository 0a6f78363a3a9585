//! Kernels: where they come from ([`KernelSource`]), what they are pinned to ([`Pin`], one entry of
//! `ksnap.lock`), and what ksnap knows once one is resolved ([`Kernel`]).
//!
//! An apt kernel is pinned to exact packages ([`crate::kernel::apt::Apt::pin`]: a metapackage such as
//! `linux-image-cloud-amd64` followed to the real image package, and from Debian 7.x on its
//! `linux-binary-*` and `linux-base-*` parts), fetched with `apt-get download NAME=VERSION`, checked
//! against the pinned SHA-256 and unpacked in Rust (the private `deb` module) into the cache, keyed by the image
//! package and version. A kernel built from source ([`crate::kernel::build`]) is pinned to its source package
//! and build key, and lands in the same kind of cache entry.

pub mod apt;
pub mod build;
pub mod changelog;
pub mod config_diff;
pub(crate) mod deb;
pub mod elf;
mod entry;
pub mod releases;
pub mod selftests;

use std::path::{Path, PathBuf};

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::kernel::apt::{Archives, PinnedPackage};
use crate::kernel::build::BuildRecipe;
pub use crate::kernel::entry::{bzimage_release, Kernel, Package, StepReporter};
use crate::kernel::entry::{cached_or_produce, read_valid_entry, Produced, CACHE_KIND};
use crate::kernel::releases::{Family, Release};

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// An apt package (a real image package or a metapackage that depends on one), from the system's apt
    /// sources (`suite: None`) or from one Debian suite through ksnap's own apt configuration.
    Apt {
        /// The package name asked for, e.g. `linux-image-cloud-amd64`.
        package: String,
        /// The Debian suite to fetch it from; `None` for the system's apt sources.
        suite: Option<String>,
    },
    /// A local `.deb` of a kernel image package.
    Deb {
        /// The `.deb` file; it is unpacked into the cache, keyed by its content hash.
        path: PathBuf,
    },
    /// A local bzImage, optionally with the `.config` it was built from.
    BzImage {
        /// The bzImage, booted where it is (not copied into the cache).
        path: PathBuf,
        /// Its `.config`, if given.
        config: Option<PathBuf>,
    },
    /// Built here from kernel source and Kconfig fragments.
    Build(BuildRecipe),
    /// One release of a kernel line ([`crate::kernel::releases`]): an exact image package and version,
    /// through the system's apt (`suite: None`) or ksnap's own configuration for a suite and its
    /// companions. Not pinned in `ksnap.lock`: the name and version are the pin, the SHA-256 the
    /// archive's index gives today.
    Release {
        /// The image package, e.g. `linux-image-5.10.0-30-cloud-amd64`.
        package: String,
        /// Its exact Debian version, e.g. `5.10.218-1`.
        version: String,
        /// The apt configuration serving it: `None` for the system's, else the kernel line's suite.
        suite: Option<String>,
    },
}

impl std::fmt::Display for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSource::Apt { package, suite: None } => write!(f, "apt package {package}"),
            KernelSource::Apt { package, suite: Some(suite) } => write!(f, "apt package {package} from {suite}"),
            KernelSource::Deb { path } => write!(f, "{}", path.display()),
            KernelSource::BzImage { path, .. } => write!(f, "{}", path.display()),
            KernelSource::Build(recipe) => write!(f, "{recipe}"),
            KernelSource::Release { package, version, suite: None } => write!(f, "release {package} {version}"),
            KernelSource::Release { package, version, suite: Some(suite) } => {
                write!(f, "release {package} {version} from {suite} and its companions")
            }
        }
    }
}

/// What a kernel is pinned to: exactly which packages it is made of. Local kernels (a `.deb`, a bzImage,
/// a source tree) are not pinned: they are what the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// An apt kernel's packages; the first names the kernel (the image package).
    Apt {
        /// The image package, then its `linux-binary-*` and `linux-base-*` parts if it is split.
        packages: Vec<PinnedPackage>,
    },
    /// A kernel built from a source package: that package, and the build's cache key (source version and
    /// the options of the fragments).
    Build {
        /// The kernel source package (`linux-source-6.12`) at its pinned version.
        source: PinnedPackage,
        /// The build's cache key, `NAME_VERSION+build-HASH` ([`BuildRecipe::key`]).
        key: String,
    },
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

    /// What this source resolves to through apt today (no download): the lock entry it would get (a
    /// release: its exact packages, which the lock never gets). `None` for a local kernel.
    pub fn pin(&self, archives: &Archives) -> Result<Option<Pin>, Error> {
        if let KernelSource::Release { package, version, suite } = self {
            // Its own pin, exact: not one ksnap.lock keeps.
            return Ok(Some(Pin::Apt { packages: archives.apt(suite.as_deref())?.pin_exact(package, version)? }));
        }
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

    /// The kernel line this apt source follows and every release of it apt serves (the suite and its
    /// companions for a suite, the system's sources otherwise), in Debian version order. No download.
    pub fn releases(&self, archives: &Archives) -> Result<(Family, Vec<Release>), Error> {
        let KernelSource::Apt { package, suite } = self else {
            return Err(Error::NoReleases { kernel: self.to_string(), why: "only apt kernels have releases".into() });
        };
        let apt = archives.apt(suite.as_deref())?;
        let image = apt.pin(package)?.remove(0).name;
        let family = Family::of(&image).ok_or_else(|| Error::NoReleases {
            kernel: self.to_string(),
            why: format!("it resolves to {image}, which is no linux-image-MAJOR.MINOR…-FLAVOUR package"),
        })?;
        let releases = apt.releases(&family)?;
        Ok((family, releases))
    }

    /// Release `version` of this apt kernel line, as a source of its own (not pinned in `ksnap.lock`).
    pub fn release(&self, release: &Release) -> Option<KernelSource> {
        match self {
            KernelSource::Apt { suite, .. } => Some(KernelSource::Release {
                package: release.package.clone(),
                version: release.version.clone(),
                suite: suite.clone(),
            }),
            _ => None,
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
    pub fn resolve(
        &self,
        pin: Option<&Pin>,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Kernel, Error> {
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
            KernelSource::Release { package, version, suite } => {
                let key = format!("{package}_{version}");
                cached_or_produce(cache, &key, report, |staging, report| {
                    let apt = archives.apt(suite.as_deref())?;
                    report(&format!("pinning {package} {version}"));
                    let packages = apt.pin_exact(package, version)?;
                    let names: Vec<String> = packages.iter().map(ToString::to_string).collect();
                    report(&format!("downloading {}", names.join(", ")));
                    let download =
                        tempfile::tempdir_in(staging).map_err(|e| Error::io("creating a download directory", e))?;
                    let debs = apt.download(&packages, download.path()).map_err(|e| match e {
                        Error::PackageGone { packages, suite, detail } => {
                            Error::ReleaseNotServed { packages, suite, detail }
                        }
                        other => other,
                    })?;
                    unpack_debs(&debs, staging, Some(packages[0].package()), report)
                })
            }
            KernelSource::Deb { path } => cached_or_produce(cache, &deb_key(path)?, report, |staging, report| {
                let control = crate::kernel::deb::read_control(path)?;
                let package = Package { name: control.package, version: control.version };
                unpack_debs(std::slice::from_ref(path), staging, Some(package), report)
            }),
            KernelSource::BzImage { path, config } => local_bzimage(path, config.as_deref()),
            // A local tree is not pinned: it is what the files say.
            KernelSource::Build(recipe) if recipe.apt_request().is_none() => {
                recipe.resolve(None, cache, archives, report)
            }
            KernelSource::Build(recipe) => {
                let source = match self.pin_or_resolve(pin, archives)? {
                    Pin::Build { source, .. } => source,
                    Pin::Apt { .. } => unreachable!("a build is pinned to its source package"),
                };
                recipe.resolve(Some(&source), cache, archives, report)
            }
        }
    }

    /// Debian's changelog of `kernel` (this source's, resolved as `pin`), as text: the one kept in its
    /// cache entry, or, for an entry unpacked before ksnap kept changelogs, read from its pinned packages,
    /// downloaded again (`report` says so) and not kept. `None` when the kernel has none (a local bzImage
    /// or a build).
    pub fn changelog(
        &self,
        pin: Option<&Pin>,
        kernel: &Kernel,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Option<String>, Error> {
        if let Some(path) = &kernel.changelog {
            let text = changelog::read_gz(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            return Ok(Some(text));
        }
        let suite = match self {
            KernelSource::Apt { suite, .. } | KernelSource::Release { suite, .. } => suite,
            _ => return Ok(None),
        };
        let Some(Pin::Apt { packages }) = pin else { return Ok(None) };
        let names: Vec<String> = packages.iter().map(ToString::to_string).collect();
        report(&format!("downloading {} again for its changelog (its cache entry has none)", names.join(", ")));
        let staging = cache.staging_dir()?;
        let debs = archives.apt(suite.as_deref())?.download(packages, staging.path())?;
        let unpacked = tempfile::tempdir_in(staging.path()).map_err(|e| Error::io("creating a directory", e))?;
        let kernel = crate::kernel::deb::extract_kernel(&debs, unpacked.path())?;
        match kernel.changelog {
            Some(path) => {
                let text =
                    changelog::read_gz(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                Ok(Some(text))
            }
            None => Ok(None),
        }
    }

    /// `pin` if given (and of the right kind), else what apt resolves this source to now.
    fn pin_or_resolve(&self, pin: Option<&Pin>, archives: &Archives) -> Result<Pin, Error> {
        match pin {
            Some(pin @ Pin::Apt { packages }) if matches!(self, KernelSource::Apt { .. }) && !packages.is_empty() => {
                Ok(pin.clone())
            }
            Some(pin @ Pin::Build { .. }) if matches!(self, KernelSource::Build(_)) => Ok(pin.clone()),
            _ => self.pin(archives)?.ok_or_else(|| Error::NothingToPin { kernel: self.to_string() }),
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
            (KernelSource::Release { package, version, .. }, _) => {
                Ok(read_valid_entry(&cache.entry(CACHE_KIND, &format!("{package}_{version}"))))
            }
            (KernelSource::BzImage { path, config }, _) => local_bzimage(path, config.as_deref()).map(Some),
            (KernelSource::Build(recipe), Some(Pin::Build { source, .. })) => {
                recipe.cached(Some(&source.package()), cache)
            }
            (KernelSource::Build(recipe), None) if recipe.apt_request().is_none() => recipe.cached(None, cache),
            _ => Ok(None),
        }
    }
}

/// A bzImage on this machine is used where it is.
fn local_bzimage(path: &Path, config: Option<&Path>) -> Result<Kernel, Error> {
    let release = bzimage_release(path)?;
    let config_hash = match config {
        Some(config) => {
            Some(cache::sha256_file(config).map_err(|e| Error::io(format!("reading {}", config.display()), e))?)
        }
        None => None,
    };
    Ok(Kernel {
        image: path.to_path_buf(),
        config: config.map(Path::to_path_buf),
        release,
        package: None,
        config_hash,
        changelog: None,
    })
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

/// Unpack a kernel from its packages into `staging` (which must end up holding nothing else): one image
/// package, or an image split into `linux-binary-*` and `linux-base-*`.
fn unpack_debs(
    debs: &[PathBuf],
    staging: &Path,
    package: Option<Package>,
    report: StepReporter,
) -> Result<Produced, Error> {
    report("unpacking kernel");
    let unpacked = crate::kernel::deb::extract_kernel(debs, staging)?;
    Ok(Produced {
        image: unpacked.vmlinuz,
        config: unpacked.config,
        release: unpacked.release,
        package,
        changelog: unpacked.changelog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::build::SourceTree;

    /// A kernel built from a local tree is not pinned and never asks apt: it goes straight to the build,
    /// whose own checks speak (here: the directory is no kernel tree).
    #[test]
    fn a_local_tree_build_is_not_pinned_and_goes_to_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let fragment = dir.path().join("fragment");
        std::fs::write(&fragment, "CONFIG_A=y\n").unwrap();
        let source = KernelSource::Build(BuildRecipe {
            tree: SourceTree::Local { path: dir.path().to_path_buf() },
            fragments: vec![fragment],
        });
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let archives = Archives::new(&cache, None);
        assert!(!source.is_pinned());
        assert_eq!(source.pin(&archives).unwrap(), None);
        let err = source.resolve(None, &cache, &archives, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("is not a Linux source tree: it has no Makefile"), "{err}");
    }
}
