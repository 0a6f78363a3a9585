//! Unpacking a Debian kernel package (`linux-image-*.deb`) without `dpkg`.
//!
//! A `.deb` is an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`. ksnap needs
//! two files of `data.tar` (`boot/vmlinuz-RELEASE` and `boot/config-RELEASE`) and two fields of
//! the `control` file (Package, Version). Everything is streamed: the package (30 MB) is read
//! once, and only the kernel image touches the disk.
//!
//! Extraction reads the data archive to its very end even after the kernel has been found: the
//! checksums (always present in xz, present in zstd frames written with one, as the `zstd` tool
//! does by default) are only verified there, and a corrupt download must not slip through as a
//! kernel that fails to boot for no visible reason.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::DebError;

/// The first bytes of every `ar` archive, hence of every `.deb`.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
/// Kernel configs are held in memory until the kernel's release is known; a config is about
/// 300 KB, so this is plenty for all of them together.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// A compressed kernel image is 10 to 20 MB; a far bigger `boot/vmlinuz-*` is not one, and is
/// not written to disk.
const MAX_KERNEL_BYTES: u64 = 512 << 20;
/// A kernel's changelog.gz is about 1.3 MB.
const MAX_CHANGELOG_BYTES: u64 = 64 << 20;
/// A control file is a few KB.
const MAX_CONTROL_BYTES: u64 = 1 << 20;

/// What [`extract_kernel`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedKernel {
    /// `DEST/vmlinuz-RELEASE`.
    pub vmlinuz: PathBuf,
    /// `DEST/config-RELEASE`, if the package ships the config of that release.
    pub config: Option<PathBuf>,
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`: what `vmlinuz-` is followed by.
    pub release: String,
    /// `DEST/changelog.gz`, Debian's changelog of the kernel (gzip-compressed, as shipped), if a
    /// package has one.
    pub changelog: Option<PathBuf>,
}

/// The fields of a package's `control` file that ksnap records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebControl {
    pub package: String,
    pub version: String,
}

/// Extracts the kernel image and its config from the kernel package(s) `debs` into the existing
/// directory `dest`, as `vmlinuz-RELEASE` and `config-RELEASE`. Two layouts: `boot/vmlinuz-REL` and
/// `boot/config-REL` in one image package (Debian up to 6.x), or `usr/lib/modules/REL/vmlinuz` and
/// `usr/lib/modules/REL/config`, which Debian 7.x ships in two packages (`linux-binary-REL`,
/// `linux-base-REL`). Debian's changelog of the kernel (`usr/share/doc/PKG/changelog.gz`, the first
/// one found in `debs`) lands beside them as [`CHANGELOG`], still compressed.
///
/// The files appear in `dest` only after every package has been read and checked.
pub fn extract_kernel(debs: &[PathBuf], dest: &Path) -> Result<UnpackedKernel, DebError> {
    let mut vmlinuz: Option<(String, tempfile::NamedTempFile)> = None;
    let mut configs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut config_budget = MAX_CONFIG_BYTES;
    let mut changelog: Option<Vec<u8>> = None;
    for deb in debs {
        with_member(deb, "data.tar", |data, member| {
            let corrupt = |source| DebError::Corrupt { path: deb.to_owned(), member: member.to_owned(), source };
            let mut archive = tar::Archive::new(data);
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = entry.path().map_err(corrupt)?.into_owned();
                let Some(file) = kernel_file(&path) else {
                    continue;
                };
                let size = entry.size();
                match file {
                    KernelFile::Image(release) => {
                        if vmlinuz.is_none() && is_release(release) && size <= MAX_KERNEL_BYTES {
                            let release = release.to_owned();
                            let file = copy_to_temp(&mut entry, size, dest, deb, member)?;
                            vmlinuz = Some((release, file));
                        }
                    }
                    KernelFile::Config(release) => {
                        if is_release(release) && size <= config_budget {
                            config_budget -= size;
                            let release = release.to_owned();
                            let mut text = Vec::new();
                            entry.read_to_end(&mut text).map_err(corrupt)?;
                            check_length(text.len() as u64, size).map_err(corrupt)?;
                            configs.push((release, text));
                        }
                    }
                    KernelFile::Changelog => {
                        if changelog.is_none() && size <= MAX_CHANGELOG_BYTES {
                            let mut bytes = Vec::new();
                            entry.read_to_end(&mut bytes).map_err(corrupt)?;
                            check_length(bytes.len() as u64, size).map_err(corrupt)?;
                            changelog = Some(bytes);
                        }
                    }
                }
            }
            // The rest: tar's end-of-archive padding, and the compressor's checksum.
            io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(corrupt)?;
            Ok(())
        })?;
    }

    let Some((release, image)) = vmlinuz else {
        return Err(DebError::NoVmlinuz { path: debs.first().cloned().unwrap_or_default() });
    };
    let vmlinuz = dest.join(format!("vmlinuz-{release}"));
    image.persist(&vmlinuz).map_err(|e| DebError::Write { path: vmlinuz.clone(), source: e.error })?;
    let config = match configs.into_iter().find(|(r, _)| *r == release) {
        Some((_, text)) => {
            let path = dest.join(format!("config-{release}"));
            std::fs::write(&path, text).map_err(|source| DebError::Write { path: path.clone(), source })?;
            Some(path)
        }
        None => None,
    };
    let changelog = match changelog {
        Some(bytes) => {
            let path = dest.join(CHANGELOG);
            std::fs::write(&path, bytes).map_err(|source| DebError::Write { path: path.clone(), source })?;
            Some(path)
        }
        None => None,
    };
    Ok(UnpackedKernel { vmlinuz, config, release, changelog })
}

/// Unpacks the kernel source tarball of a `linux-source-X.Y` package (`usr/src/linux-source-X.Y.tar.xz`
/// inside its data archive) into the existing directory `dest`, streaming: neither the package's data
/// archive nor the tarball touches the disk, only the tree. `progress` gets the number of files unpacked
/// so far, after each one, and stops the unpacking ([`DebError::Stopped`]) by returning false. Returns
/// the tarball's name.
///
/// The tar crate refuses entries that would land outside `dest` (`..`, absolute paths, symlinked
/// parents): the tarball is input from the network.
pub fn extract_source_tarball(
    deb: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<String, DebError> {
    with_member(deb, "data.tar", |data, member| {
        let corrupt =
            |member: &str, source| DebError::Corrupt { path: deb.to_owned(), member: member.to_owned(), source };
        let mut found = None;
        let mut archive = tar::Archive::new(data);
        for entry in archive.entries().map_err(|e| corrupt(member, e))? {
            let entry = entry.map_err(|e| corrupt(member, e))?;
            let path = entry.path().map_err(|e| corrupt(member, e))?.into_owned();
            let tarball = match normal_components(&path).as_slice() {
                ["usr", "src", name] if name.starts_with("linux-source-") && name.ends_with(".tar.xz") => {
                    name.to_string()
                }
                _ => continue,
            };
            if found.is_some() || !entry.header().entry_type().is_file() {
                continue;
            }
            let mut source = tar::Archive::new(xz2::read::XzDecoder::new(entry));
            source.set_preserve_mtime(true);
            let mut files = 0u64;
            for file in source.entries().map_err(|e| corrupt(&tarball, e))? {
                let mut file = file.map_err(|e| corrupt(&tarball, e))?;
                file.unpack_in(dest).map_err(|source| DebError::Write {
                    path: dest.join(file.path().map(|p| p.into_owned()).unwrap_or_default()),
                    source,
                })?;
                files += 1;
                if !progress(files) {
                    return Err(DebError::Stopped { path: deb.to_owned() });
                }
            }
            // The xz checksum is only verified at the very end of the stream.
            io::copy(&mut source.into_inner(), &mut io::sink()).map_err(|e| corrupt(&tarball, e))?;
            found = Some(tarball);
        }
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| corrupt(member, e))?;
        found.ok_or_else(|| DebError::NoSourceTarball { path: deb.to_owned() })
    })
}

/// Reads the Package and Version fields of `deb`'s `control` file.
pub fn read_control(deb: &Path) -> Result<DebControl, DebError> {
    let text = with_member(deb, "control.tar", |control, member| {
        let corrupt = |source| DebError::Corrupt { path: deb.to_owned(), member: member.to_owned(), source };
        let mut archive = tar::Archive::new(control);
        for entry in archive.entries().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let path = entry.path().map_err(corrupt)?;
            if entry.header().entry_type().is_file() && normal_components(&path) == ["control"] {
                let mut text = Vec::new();
                entry.take(MAX_CONTROL_BYTES).read_to_end(&mut text).map_err(corrupt)?;
                return Ok(String::from_utf8_lossy(&text).into_owned());
            }
        }
        Err(DebError::InvalidControl { path: deb.to_owned(), problem: "control.tar has no `control` file" })
    })?;
    let field = |name: &'static str, problem: &'static str| {
        control_field(&text, name).ok_or_else(|| DebError::InvalidControl { path: deb.to_owned(), problem })
    };
    Ok(DebControl {
        package: field("Package", "the control file has no Package field")?,
        version: field("Version", "the control file has no Version field")?,
    })
}

/// Opens `deb`, finds the member `PREFIX[.xz|.zst]` and hands `body` a decompressing reader of
/// it, with the member's name.
fn with_member<T>(
    deb: &Path,
    prefix: &'static str,
    body: impl FnOnce(&mut dyn Read, &str) -> Result<T, DebError>,
) -> Result<T, DebError> {
    let read_error = |source| DebError::Read { path: deb.to_owned(), source };
    let mut file = BufReader::new(File::open(deb).map_err(read_error)?);
    let mut magic = [0; AR_MAGIC.len()];
    match file.read_exact(&mut magic) {
        Ok(()) if magic == *AR_MAGIC => {}
        Err(e) if e.kind() != io::ErrorKind::UnexpectedEof => return Err(read_error(e)),
        _ => return Err(DebError::NotArArchive { path: deb.to_owned() }),
    }
    file.seek(SeekFrom::Start(0)).map_err(read_error)?;

    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|source| DebError::Corrupt {
            path: deb.to_owned(),
            member: "the ar archive".to_owned(),
            source,
        })?;
        // GNU ar ends names with '/'; dpkg pads them with spaces.
        let name = String::from_utf8_lossy(entry.header().identifier());
        let name = name.trim_end().trim_end_matches('/').to_owned();
        let Some(extension) = name.strip_prefix(prefix) else {
            continue;
        };
        let size = entry.header().size();
        let member = ExactSize { inner: entry, remaining: size };
        let corrupt = |source| DebError::Corrupt { path: deb.to_owned(), member: name.clone(), source };
        let mut reader: Box<dyn Read> = match extension {
            "" => Box::new(member),
            ".xz" => Box::new(xz2::read::XzDecoder::new(member)),
            ".zst" => Box::new(zstd::Decoder::new(member).map_err(corrupt)?),
            _ if extension.starts_with('.') => {
                return Err(DebError::UnsupportedCompression { path: deb.to_owned(), member: name })
            }
            _ => continue,
        };
        return body(&mut reader, &name);
    }
    Err(DebError::MissingMember { path: deb.to_owned(), member: prefix })
}

/// A member's data, failing with `UnexpectedEof` when the file ends before the size its header
/// announced (the `ar` crate just stops, and a decompressor may take that as a clean end).
struct ExactSize<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ends {} bytes before the end of the member", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The name of the changelog in a kernel's cache entry.
pub const CHANGELOG: &str = "changelog.gz";

/// A file of a kernel package that ksnap keeps, and the release it belongs to.
enum KernelFile<'a> {
    Image(&'a str),
    Config(&'a str),
    /// `usr/share/doc/PACKAGE/changelog.gz` (or `changelog.Debian.gz`).
    Changelog,
}

/// `boot/vmlinuz-REL`, `boot/config-REL` (up to Debian 6.x), `usr/lib/modules/REL/vmlinuz`,
/// `usr/lib/modules/REL/config` (Debian 7.x), `usr/share/doc/PKG/changelog.gz`, with or without a
/// leading `./`; `None` for any other path.
fn kernel_file(path: &Path) -> Option<KernelFile<'_>> {
    match normal_components(path).as_slice() {
        ["boot", name] => {
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                Some(KernelFile::Image(release))
            } else {
                name.strip_prefix("config-").map(KernelFile::Config)
            }
        }
        ["usr", "lib", "modules", release, "vmlinuz"] => Some(KernelFile::Image(release)),
        ["usr", "lib", "modules", release, "config"] => Some(KernelFile::Config(release)),
        ["usr", "share", "doc", _, "changelog.gz" | "changelog.Debian.gz"] => Some(KernelFile::Changelog),
        _ => None,
    }
}

/// The components of `path` without `.`; empty if it has `..`, a root or non-UTF-8 names.
fn normal_components(path: &Path) -> Vec<&str> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => match name.to_str() {
                Some(name) => names.push(name),
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        }
    }
    names
}

/// A release is used in a file name in `dest`: it must be one plain, non-empty name.
fn is_release(release: &str) -> bool {
    !release.is_empty() && release != "." && release != ".." && !release.contains(['/', '\0'])
}

/// Streams the kernel image into a temporary file in `dest`, which becomes `vmlinuz-RELEASE`
/// only once the whole package has checked out.
fn copy_to_temp(
    entry: &mut impl Read,
    size: u64,
    dest: &Path,
    deb: &Path,
    member: &str,
) -> Result<tempfile::NamedTempFile, DebError> {
    let write_error = |source| DebError::Write { path: dest.to_owned(), source };
    let corrupt = |source| DebError::Corrupt { path: deb.to_owned(), member: member.to_owned(), source };
    let mut file = tempfile::Builder::new().prefix(".vmlinuz-").tempfile_in(dest).map_err(write_error)?;
    let mut buffer = vec![0; 256 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match entry.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e)),
        };
        file.write_all(&buffer[..n]).map_err(write_error)?;
        copied += n as u64;
    }
    check_length(copied, size).map_err(corrupt)?;
    file.as_file().sync_all().map_err(write_error)?;
    Ok(file)
}

/// tar's entry reader stops quietly at the end of its input; a short entry means a cut archive.
fn check_length(read: u64, expected: u64) -> io::Result<()> {
    if read == expected {
        return Ok(());
    }
    Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("a file of {expected} bytes ends after {read} bytes")))
}

/// The value of the single-line field `name` in the first paragraph of a control file. Field
/// names are case-insensitive (Debian Policy 5.1).
fn control_field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| !line.starts_with([' ', '\t']))
        .find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "6.1.0-99-cloud-amd64";
    const CONTROL: &str = "Package: linux-image-6.1.0-99-cloud-amd64\nSource: linux-signed-amd64\n\
        Version: 6.1.200-1\nArchitecture: amd64\nDescription: Linux 6.1 for x86-64 cloud\n \
        The Linux kernel 6.1 and modules for use on x86-64 cloud platforms.\n";

    /// Incompressible bytes, so that the archive is large and a cut lands inside the kernel.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn kernel_image() -> Vec<u8> {
        let mut image = b"MZ kernel image ".to_vec();
        image.extend(noise(200_000));
        image
    }

    enum Entry<'a> {
        Dir(&'a str),
        File(&'a str, Vec<u8>),
        Symlink(&'a str, &'a str),
    }

    fn tar_of(entries: Vec<Entry>) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            match entry {
                Entry::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
                Entry::File(path, data) => {
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, data.as_slice()).unwrap();
                }
                Entry::Symlink(path, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    /// The data.tar of a Debian kernel image package, in dpkg's order.
    fn kernel_data() -> Vec<u8> {
        tar_of(vec![
            Entry::Dir("./"),
            Entry::Dir("./boot/"),
            Entry::File(&format!("./boot/System.map-{RELEASE}"), b"ffffffff81000000 T _text\n".to_vec()),
            Entry::File(&format!("./boot/config-{RELEASE}"), b"CONFIG_64BIT=y\n".to_vec()),
            Entry::File(&format!("./boot/vmlinuz-{RELEASE}"), kernel_image()),
            Entry::Dir("./lib/modules/"),
            Entry::File("./usr/share/doc/linux-image/changelog.gz", noise(5_000)),
        ])
    }

    fn control_tar(control: &str) -> Vec<u8> {
        tar_of(vec![
            Entry::Dir("./"),
            Entry::File("./md5sums", b"0123 boot/vmlinuz\n".to_vec()),
            Entry::File("./control", control.as_bytes().to_vec()),
        ])
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// With a content checksum, as dpkg-deb and the zstd tool write it.
    fn zst(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn ar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut builder = ar::Builder::new(Vec::new());
        for (name, data) in members {
            let header = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
            builder.append(&header, data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn deb_xz() -> Vec<u8> {
        ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", xz(&control_tar(CONTROL))),
            ("data.tar.xz", xz(&kernel_data())),
        ])
    }

    /// Writes `bytes` as a .deb in a fresh directory; returns (dir, deb path, empty dest dir).
    fn on_disk(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("linux-image.deb");
        std::fs::write(&deb, bytes).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        (dir, deb, dest)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Debian 7.x: the image in `linux-binary-REL`, the config in `linux-base-REL`, both under
    /// `usr/lib/modules/REL/`, and an image package with neither.
    #[test]
    fn extracts_a_kernel_split_across_binary_and_base_packages() {
        const SPLIT: &str = "7.2.13+deb14-cloud-amd64";
        let deb = |data: Vec<u8>| {
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.xz", xz(&control_tar(CONTROL))),
                ("data.tar.xz", xz(&data)),
            ])
        };
        let modules = format!("./usr/lib/modules/{SPLIT}");
        let binary = deb(tar_of(vec![
            Entry::Dir("./"),
            Entry::File(&format!("{modules}/vmlinuz"), kernel_image()),
            Entry::Symlink("./usr/share/doc/linux-binary", "linux-base"),
        ]));
        let base = deb(tar_of(vec![
            Entry::File(&format!("{modules}/System.map"), b"ffffffff81000000 T _text\n".to_vec()),
            Entry::File(&format!("{modules}/config"), b"CONFIG_64BIT=y\n".to_vec()),
            Entry::File(&format!("{modules}/modules.order"), b"".to_vec()),
            Entry::File("./usr/share/doc/linux-base-7.2.13+deb14-cloud-amd64/changelog.gz", b"gz".to_vec()),
        ]));
        let image = deb(tar_of(vec![Entry::File("./usr/share/lintian/overrides/linux-image", b"".to_vec())]));
        let (dir, _, dest) = on_disk(&image);
        let paths: Vec<PathBuf> = [("image", image), ("binary", binary), ("base", base)]
            .into_iter()
            .map(|(name, bytes)| {
                let path = dir.path().join(format!("{name}.deb"));
                std::fs::write(&path, bytes).unwrap();
                path
            })
            .collect();
        let kernel = extract_kernel(&paths, &dest).unwrap();
        assert_eq!(kernel.release, SPLIT);
        assert_eq!(std::fs::read(&kernel.vmlinuz).unwrap(), kernel_image());
        assert_eq!(std::fs::read(kernel.config.unwrap()).unwrap(), b"CONFIG_64BIT=y\n");
        assert_eq!(std::fs::read(kernel.changelog.unwrap()).unwrap(), b"gz");
        assert_eq!(files_in(&dest), [CHANGELOG.to_string(), format!("config-{SPLIT}"), format!("vmlinuz-{SPLIT}")]);
        // The empty image package alone is not a kernel.
        let err = extract_kernel(&paths[..1], &dest).unwrap_err();
        assert!(matches!(err, DebError::NoVmlinuz { .. }), "{err}");
    }

    fn assert_unpacks(bytes: &[u8]) {
        let (_dir, deb, dest) = on_disk(bytes);
        let kernel = extract_kernel(&[deb.to_path_buf()], &dest).unwrap();
        assert_eq!(kernel.release, RELEASE);
        assert_eq!(kernel.vmlinuz, dest.join(format!("vmlinuz-{RELEASE}")));
        assert_eq!(kernel.config, Some(dest.join(format!("config-{RELEASE}"))));
        assert_eq!(std::fs::read(&kernel.vmlinuz).unwrap(), kernel_image());
        assert_eq!(std::fs::read(kernel.config.unwrap()).unwrap(), b"CONFIG_64BIT=y\n");
        assert_eq!(std::fs::read(kernel.changelog.unwrap()).unwrap(), noise(5_000));
        assert_eq!(files_in(&dest), [CHANGELOG.to_string(), format!("config-{RELEASE}"), format!("vmlinuz-{RELEASE}")]);
    }

    #[test]
    fn extracts_the_kernel_and_its_config_from_xz() {
        assert_unpacks(&deb_xz());
    }

    #[test]
    fn extracts_from_zstd_and_uncompressed_members() {
        let zstd_deb = ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.zst", zst(&control_tar(CONTROL))),
            ("data.tar.zst", zst(&kernel_data())),
        ]);
        assert_unpacks(&zstd_deb);
        let plain_deb = ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar", control_tar(CONTROL)),
            ("data.tar", kernel_data()),
        ]);
        assert_unpacks(&plain_deb);
    }

    #[test]
    fn reads_package_and_version_from_control() {
        for deb in [deb_xz(), ar_of(&[("control.tar.zst", zst(&control_tar(CONTROL)))])] {
            let (_dir, path, _) = on_disk(&deb);
            assert_eq!(
                read_control(&path).unwrap(),
                DebControl { package: "linux-image-6.1.0-99-cloud-amd64".into(), version: "6.1.200-1".into() }
            );
        }
    }

    #[test]
    fn control_fields_are_case_insensitive_and_continuations_skipped() {
        let text = "package: a\nDescription: x\n Version: not-this\nVERSION:  1.2 \n\nVersion: 9\n";
        assert_eq!(control_field(text, "Package").as_deref(), Some("a"));
        assert_eq!(control_field(text, "Version").as_deref(), Some("1.2"));
        assert_eq!(control_field("Package:\n", "Package"), None);
    }

    #[test]
    fn control_without_version_is_an_error() {
        let deb = ar_of(&[("control.tar.xz", xz(&control_tar("Package: linux-image-x\n")))]);
        let (_dir, path, _) = on_disk(&deb);
        let err = read_control(&path).unwrap_err();
        assert!(matches!(err, DebError::InvalidControl { .. }), "{err:?}");
        assert!(err.to_string().ends_with("the control file has no Version field"), "{err}");

        let deb = ar_of(&[("control.tar.xz", xz(&tar_of(vec![Entry::Dir("./")])))]);
        let (_dir, path, _) = on_disk(&deb);
        assert!(read_control(&path).unwrap_err().to_string().contains("has no `control` file"));
    }

    #[test]
    fn a_file_that_is_not_an_ar_archive_is_named_as_such() {
        for bytes in [&b""[..], b"!<arch", b"\x1f\x8b\x08\x00 gzip, not a deb", b"<html>404</html>"] {
            let (_dir, deb, dest) = on_disk(bytes);
            let err = extract_kernel(&[deb.to_path_buf()], &dest).unwrap_err();
            assert!(matches!(err, DebError::NotArArchive { .. }), "{bytes:?}: {err:?}");
            assert!(err.to_string().contains(&deb.display().to_string()), "{err}");
        }
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_control(&dir.path().join("nope.deb")).unwrap_err();
        assert!(matches!(err, DebError::Read { .. }), "{err:?}");
    }

    #[test]
    fn a_package_without_data_is_reported() {
        let deb = ar_of(&[("debian-binary", b"2.0\n".to_vec())]);
        let (_dir, path, dest) = on_disk(&deb);
        let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
        assert!(matches!(err, DebError::MissingMember { member: "data.tar", .. }), "{err:?}");
    }

    #[test]
    fn unsupported_compression_is_named() {
        let deb = ar_of(&[("data.tar.gz", b"\x1f\x8b\x08\x00".to_vec())]);
        let (_dir, path, dest) = on_disk(&deb);
        let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
        assert!(matches!(&err, DebError::UnsupportedCompression { member, .. } if member == "data.tar.gz"));
        assert!(err.to_string().contains("only xz (.xz), zstd (.zst) and uncompressed"), "{err}");
    }

    #[test]
    fn a_meta_package_has_no_vmlinuz() {
        let data = tar_of(vec![
            Entry::Dir("./"),
            Entry::File("./usr/share/doc/linux-image-cloud-amd64/copyright", b"GPL".to_vec()),
            // Not in boot/, or not a regular file: none of these is the kernel.
            Entry::File("./usr/lib/boot/vmlinuz-1", b"x".to_vec()),
            Entry::Symlink("./boot/vmlinuz-2", "../vmlinuz"),
            Entry::File("./boot/vmlinuz-", b"x".to_vec()),
        ]);
        let deb = ar_of(&[("data.tar.xz", xz(&data))]);
        let (_dir, path, dest) = on_disk(&deb);
        let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
        assert!(matches!(err, DebError::NoVmlinuz { .. }), "{err:?}");
        assert!(err.to_string().contains("meta-package"), "{err}");
        assert!(files_in(&dest).is_empty());
    }

    #[test]
    fn a_config_of_another_release_is_not_returned() {
        let data = tar_of(vec![
            Entry::File("boot/config-5.10.0-1-amd64", b"CONFIG_OLD=y\n".to_vec()),
            Entry::File(&format!("boot/vmlinuz-{RELEASE}"), b"MZ".to_vec()),
        ]);
        let deb = ar_of(&[("data.tar.zst", zst(&data))]);
        let (_dir, path, dest) = on_disk(&deb);
        let kernel = extract_kernel(&[path.to_path_buf()], &dest).unwrap();
        assert_eq!(kernel.config, None);
        assert_eq!(files_in(&dest), [format!("vmlinuz-{RELEASE}")]);
    }

    #[test]
    fn truncated_packages_are_errors_and_leave_nothing_behind() {
        for (name, deb) in [
            ("xz", deb_xz()),
            ("zst", ar_of(&[("data.tar.zst", zst(&kernel_data()))])),
            ("plain", ar_of(&[("data.tar", kernel_data())])),
        ] {
            let len = deb.len();
            for cut in (1..20).map(|i| len * i / 20).chain([len - 1]) {
                let (_dir, path, dest) = on_disk(&deb[..cut]);
                let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DebError::Corrupt { .. } | DebError::NotArArchive { .. } | DebError::MissingMember { .. }
                    ),
                    "{name} cut at {cut}/{len}: {err:?}"
                );
                assert!(files_in(&dest).is_empty(), "{name} cut at {cut}: {:?}", files_in(&dest));
            }
        }
    }

    #[test]
    fn a_cut_inside_the_data_member_is_reported_as_truncated() {
        let deb = deb_xz();
        let (_dir, path, dest) = on_disk(&deb[..deb.len() / 2]);
        let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
        let DebError::Corrupt { member, .. } = &err else { panic!("{err:?}") };
        assert_eq!(member, "data.tar.xz");
        assert!(err.to_string().contains("is truncated or corrupt"), "{err}");
    }

    #[test]
    fn corrupt_compressed_data_is_detected() {
        for (name, mut deb) in [("xz", deb_xz()), ("zst", ar_of(&[("data.tar.zst", zst(&kernel_data()))]))] {
            let middle = deb.len() / 2;
            for byte in &mut deb[middle..middle + 16] {
                *byte ^= 0x5a;
            }
            let (_dir, path, dest) = on_disk(&deb);
            let err = extract_kernel(&[path.to_path_buf()], &dest).unwrap_err();
            assert!(matches!(err, DebError::Corrupt { .. }), "{name}: {err:?}");
            assert!(files_in(&dest).is_empty(), "{name}");
        }
    }

    #[test]
    fn an_unwritable_destination_is_a_write_error() {
        let (dir, deb, _) = on_disk(&deb_xz());
        let err = extract_kernel(&[deb.to_path_buf()], &dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, DebError::Write { .. }), "{err:?}");
    }

    #[test]
    fn exact_size_reports_a_short_member() {
        let mut short = ExactSize { inner: &b"abc"[..], remaining: 5 };
        let mut out = Vec::new();
        let err = short.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"abc");
    }

    #[test]
    fn releases_must_be_plain_names() {
        assert!(is_release(RELEASE));
        assert!(is_release("6.12.117+deb12-cloud-amd64"));
        for bad in ["", ".", "..", "a\0b"] {
            assert!(!is_release(bad), "{bad:?}");
        }
        let file = |path: &str| match kernel_file(Path::new(path)) {
            Some(KernelFile::Image(release)) => format!("image {release}"),
            Some(KernelFile::Config(release)) => format!("config {release}"),
            Some(KernelFile::Changelog) => "changelog".into(),
            None => "-".into(),
        };
        assert_eq!(file("./boot/vmlinuz-1"), "image 1");
        assert_eq!(file("boot/config-1"), "config 1");
        assert_eq!(file("./usr/lib/modules/7.2/vmlinuz"), "image 7.2");
        assert_eq!(file("usr/lib/modules/7.2/config"), "config 7.2");
        assert_eq!(file("./usr/share/doc/linux-image-6.1.0-57-cloud-amd64/changelog.gz"), "changelog");
        assert_eq!(file("usr/share/doc/linux-base/changelog.Debian.gz"), "changelog");
        for other in [
            "/boot/vmlinuz-1",
            "boot/../boot/vmlinuz-1",
            "boot/x/vmlinuz-1",
            "usr/lib/modules/../vmlinuz",
            "boot/System.map-1",
            "usr/share/doc/changelog.gz",
            "usr/share/doc/linux/x/changelog.gz",
        ] {
            assert_eq!(file(other), "-", "{other}");
        }
    }

    /// A linux-source-X.Y package: its tarball holds `linux-source-6.12/…` and one hostile entry.
    fn source_deb(tarball: Vec<u8>) -> Vec<u8> {
        let data = tar_of(vec![
            Entry::Dir("./usr/src/"),
            Entry::File("./usr/share/doc/linux-source-6.12/copyright", b"GPL".to_vec()),
            Entry::File("./usr/src/linux-source-6.12.tar.xz", xz(&tarball)),
        ]);
        ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", xz(&control_tar(CONTROL))),
            ("data.tar.xz", xz(&data)),
        ])
    }

    fn source_tarball() -> Vec<u8> {
        let mut tarball = tar_of(vec![
            Entry::Dir("linux-source-6.12/"),
            Entry::File("linux-source-6.12/Makefile", b"VERSION = 6\n".to_vec()),
            Entry::Symlink("linux-source-6.12/link", "Makefile"),
        ]);
        // An entry that climbs out of the destination; tar::Builder refuses to write one, so its name
        // is set in the header by hand.
        let mut evil = tar::Header::new_gnu();
        evil.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        evil.set_size(4);
        evil.set_mode(0o644);
        evil.set_cksum();
        let end = tarball.len() - 1024;
        let mut entry = evil.as_bytes().to_vec();
        entry.extend(b"evil");
        entry.resize(1024, 0);
        tarball.splice(end..end, entry);
        tarball
    }

    #[test]
    fn unpacks_the_source_tarball_inside_the_destination_only() {
        let (dir, deb, dest) = on_disk(&source_deb(source_tarball()));
        let mut counts = Vec::new();
        let tarball = extract_source_tarball(&deb, &dest, &mut |n| {
            counts.push(n);
            true
        })
        .unwrap();
        assert_eq!(tarball, "linux-source-6.12.tar.xz");
        assert_eq!(files_in(&dest), ["linux-source-6.12"]);
        assert_eq!(std::fs::read(dest.join("linux-source-6.12/link")).unwrap(), b"VERSION = 6\n");
        assert!(!dir.path().join("escape").exists(), "an entry escaped the destination");
        assert_eq!(counts.last(), Some(&4));
    }

    #[test]
    fn unpacking_stops_when_asked() {
        let (_dir, deb, dest) = on_disk(&source_deb(source_tarball()));
        let err = extract_source_tarball(&deb, &dest, &mut |files| files < 2).unwrap_err();
        assert!(matches!(err, DebError::Stopped { .. }), "{err}");
    }

    #[test]
    fn a_package_without_source_tarball_is_named() {
        let (_dir, deb, dest) = on_disk(&deb_xz());
        let err = extract_source_tarball(&deb, &dest, &mut |_| true).unwrap_err();
        assert!(matches!(err, DebError::NoSourceTarball { .. }), "{err}");
        assert!(err.to_string().contains("not a Debian kernel source package"), "{err}");
    }

    #[test]
    fn a_corrupt_source_tarball_is_detected() {
        let mut tarball = xz(&source_tarball());
        let middle = tarball.len() / 2;
        tarball[middle] ^= 0xff;
        let data = tar_of(vec![Entry::File("./usr/src/linux-source-6.12.tar.xz", tarball)]);
        let deb = ar_of(&[("debian-binary", b"2.0\n".to_vec()), ("data.tar.xz", xz(&data))]);
        let (_dir, deb, dest) = on_disk(&deb);
        // The outer layer is intact: the nested tarball is what is corrupt.
        let err = extract_source_tarball(&deb, &dest, &mut |_| true).unwrap_err();
        assert!(matches!(&err, DebError::Corrupt { member, .. } if member.ends_with(".tar.xz")), "{err}");
    }
}
