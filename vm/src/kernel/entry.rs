//! Kernel cache entries: a kernel ready to boot ([`Kernel`]), and the protocol by which a producer (an
//! unpacked package, a build) turns a staging directory into a verified entry `CACHE/kernels/KEY` that
//! every later run reuses. Shared by [`crate::kernel`] (packages) and [`crate::kernel::build`] (builds).

use std::path::{Path, PathBuf};

use crate::cache::{self, Cache};
use crate::error::Error;

/// A Debian package, by name and exact version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// The Debian package name, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub name: String,
    /// Its exact Debian version, e.g. `6.1.158-1`.
    pub version: String,
}

/// A kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    /// The bzImage to boot: in the kernel's cache entry, or a local bzImage where it is.
    pub image: PathBuf,
    /// Its `.config`, if known: in the cache entry with the image, or the one given with a local bzImage.
    pub config: Option<PathBuf>,
    /// `uname -r`, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The package it came from, if any.
    pub package: Option<Package>,
    /// SHA-256 of the kernel's `.config`, if known.
    pub config_hash: Option<String>,
    /// Debian's changelog of the kernel (`changelog.gz` in its cache entry, gzip-compressed as the package
    /// ships it), if known: entries unpacked before ksnap kept it have none
    /// ([`crate::kernel::KernelSource::changelog`] fetches it then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<PathBuf>,
}

impl Kernel {
    /// The value of a `CONFIG_…` option in the kernel's config: `Some("y")`, `Some("\"str\"")`, or `None`
    /// when unset, absent or the config is unknown.
    pub fn config_value(&self, option: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.config.as_ref()?).ok()?;
        text.lines().find_map(|line| line.strip_prefix(option)?.strip_prefix('=').map(str::to_string))
    }

    /// What the kernel's config says of `option`, as a fact: its value (`y`, `m`, a string); `not set`
    /// where the config has `# CONFIG_X is not set` (Kconfig knows the option and it is off); `absent`
    /// where the config does not mention it (this kernel's Kconfig has no such option, or the option's
    /// dependencies are not met, so it cannot be set at all). `None` for a kernel without its config.
    pub fn config_setting(&self, option: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.config.as_ref()?).ok()?;
        let not_set = format!("# {option} is not set");
        let setting = text.lines().find_map(|line| {
            if line == not_set {
                return Some("not set".to_string());
            }
            line.strip_prefix(option)?.strip_prefix('=').map(str::to_string)
        });
        Some(setting.unwrap_or_else(|| "absent".to_string()))
    }
}

/// What `resolve` reports while it works (downloads take a while).
pub type StepReporter<'a> = &'a mut dyn FnMut(&str);

/// Cached metadata of an unpacked kernel (the entry's `kernel.json`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheRecord {
    kernel: Kernel,
    image_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changelog_sha256: Option<String>,
}

pub(crate) const CACHE_KIND: &str = "kernels";

/// What a producer of a cache entry leaves in the staging directory it is given.
pub(crate) struct Produced {
    /// The kernel image, directly in the staging directory.
    pub image: PathBuf,
    /// Its `.config`, directly in the staging directory, if known.
    pub config: Option<PathBuf>,
    pub release: String,
    pub package: Option<Package>,
    /// Debian's changelog (`changelog.gz`), directly in the staging directory, if the packages have one.
    pub changelog: Option<PathBuf>,
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
    let changelog_sha256 = match &produced.changelog {
        Some(c) => Some(cache::sha256_file(c).map_err(|e| Error::io("hashing the kernel's changelog", e))?),
        None => None,
    };
    let record = CacheRecord {
        image_sha256: cache::sha256_file(&produced.image).map_err(|e| Error::io("hashing the kernel", e))?,
        changelog_sha256,
        kernel: Kernel {
            image: entry.join(file_name(&produced.image)),
            config: produced.config.as_ref().map(|c| entry.join(file_name(c))),
            release: produced.release,
            package: produced.package,
            config_hash,
            changelog: produced.changelog.as_ref().map(|c| entry.join(file_name(c))),
        },
    };
    let json = serde_json::to_vec_pretty(&record).expect("kernel record serializes");
    cache::write_atomic(&staging.path().join("kernel.json"), &json)?;
    cache.commit(staging, &entry)?;
    read_valid_entry(&entry).ok_or_else(|| Error::CacheEntryUnverified { path: entry.clone() })
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
    match (&kernel.changelog, &record.changelog_sha256) {
        (Some(changelog), Some(hash)) if &cache::sha256_file(changelog).ok()? != hash => return None,
        (Some(_), None) => return None,
        _ => {}
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

    /// An entry keeps the changelog with its hash; a changed changelog makes the entry invalid, and an
    /// entry written before changelogs were kept (no changelog, no hash) is still valid.
    #[test]
    fn the_changelog_is_part_of_a_verified_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let kernel = cached_or_produce(&cache, "k_1", &mut |_| {}, |staging, _| {
            std::fs::write(staging.join("vmlinuz-r"), fake_bzimage("r")).unwrap();
            std::fs::write(staging.join("changelog.gz"), b"gz").unwrap();
            let changelog = Some(staging.join("changelog.gz"));
            Ok(Produced {
                image: staging.join("vmlinuz-r"),
                config: None,
                release: "r".into(),
                package: None,
                changelog,
            })
        })
        .unwrap();
        let entry = cache.entry(CACHE_KIND, "k_1");
        assert_eq!(kernel.changelog, Some(entry.join("changelog.gz")));
        assert_eq!(read_valid_entry(&entry), Some(kernel.clone()));
        std::fs::write(entry.join("changelog.gz"), b"changed").unwrap();
        assert_eq!(read_valid_entry(&entry), None);

        let old = CacheRecord {
            kernel: Kernel { changelog: None, ..kernel.clone() },
            image_sha256: cache::sha256_file(&kernel.image).unwrap(),
            changelog_sha256: None,
        };
        let json = serde_json::to_string(&old).unwrap();
        assert!(!json.contains("changelog"), "{json}");
        std::fs::write(entry.join("kernel.json"), json).unwrap();
        assert_eq!(read_valid_entry(&entry).unwrap().changelog, None);
    }

    #[test]
    fn config_value_reads_options() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_AB=\"x\"\n").unwrap();
        let kernel = Kernel {
            image: "/k".into(),
            config: Some(config),
            release: "r".into(),
            package: None,
            config_hash: None,
            changelog: None,
        };
        assert_eq!(kernel.config_value("CONFIG_A").as_deref(), Some("y"));
        assert_eq!(kernel.config_value("CONFIG_AB").as_deref(), Some("\"x\""));
        assert_eq!(kernel.config_value("CONFIG_B"), None);
        assert_eq!(kernel.config_setting("CONFIG_A").as_deref(), Some("y"));
        assert_eq!(kernel.config_setting("CONFIG_B").as_deref(), Some("not set"));
        assert_eq!(kernel.config_setting("CONFIG_C").as_deref(), Some("absent"));
        let without = Kernel { config: None, ..kernel };
        assert_eq!(without.config_setting("CONFIG_A"), None);
    }
}
