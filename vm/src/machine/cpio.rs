//! A deterministic writer for newc ("070701") cpio archives, the format the kernel unpacks as its
//! initramfs.
//!
//! The archive is cached by the hash of its bytes, so the same tree must always produce the same
//! bytes: entries are emitted sorted by path, every timestamp is 0, every owner is root, and inode
//! numbers are assigned in emission order. Nothing about the host (umask, clock, directory
//! iteration order) leaks into the output.
//!
//! Byte order of paths puts every directory before its contents (a parent path is a prefix of
//! its children's), which the kernel's unpacker needs: it does not create missing parents.

use std::collections::BTreeMap;

use crate::error::CpioError;

/// Longest path the kernel's initramfs unpacker accepts, terminating NUL included (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Permission bits a caller may set: rwx for user/group/other plus setuid, setgid and sticky.
const PERMISSION_BITS: u32 = 0o7777;

/// File type bits of `st_mode`, as the kernel's unpacker reads them.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Mode of directories created implicitly as parents of other entries.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Symlinks carry no meaningful permissions on Linux; `ln -s` creates them 0777.
const SYMLINK_MODE: u32 = 0o777;

const NEWC_MAGIC: &str = "070701";
const HEADER_LEN: usize = 110;
const TRAILER_NAME: &str = "TRAILER!!!";

/// What a path in the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EntryKind {
    /// `explicit` is false for parents created on the fly; an explicit `add_dir` may then still
    /// choose their mode.
    Directory {
        mode: u32,
        explicit: bool,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
}

impl EntryKind {
    fn st_mode(&self) -> u32 {
        match self {
            EntryKind::Directory { mode, .. } => S_IFDIR | mode,
            EntryKind::File { mode, .. } => S_IFREG | mode,
            EntryKind::Symlink { .. } => S_IFLNK | SYMLINK_MODE,
        }
    }

    /// The bytes stored after the header: file contents, or the target of a symlink.
    fn body(&self) -> &[u8] {
        match self {
            EntryKind::Directory { .. } => &[],
            EntryKind::File { data, .. } => data,
            EntryKind::Symlink { target } => target.as_bytes(),
        }
    }

    fn nlink(&self) -> u32 {
        match self {
            EntryKind::Directory { .. } => 2,
            _ => 1,
        }
    }
}

/// Builds an initramfs in memory, then writes it out as a newc cpio archive.
///
/// Paths may be given with or without a leading `/`; they are stored without it, as the kernel
/// expects (`init`, `ksnap/probes/NAME`).
#[derive(Debug, Default, Clone)]
pub struct CpioBuilder {
    entries: BTreeMap<String, EntryKind>,
}

impl CpioBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory with the permission bits `mode` (e.g. `0o755`).
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        check_mode(&path, mode)?;
        self.insert(path, EntryKind::Directory { mode, explicit: true })
    }

    /// Adds a regular file with the permission bits `mode` (e.g. `0o755` for an executable).
    pub fn add_file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        check_mode(&path, mode)?;
        let data = data.into();
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::FileTooLarge { path, size: data.len() });
        }
        self.insert(path, EntryKind::File { mode, data })
    }

    /// Adds a symbolic link at `path` pointing to `target`, which is stored verbatim (it may be
    /// relative or absolute and need not exist).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        let reason = if target.is_empty() {
            Some("it is empty")
        } else if target.contains('\0') {
            Some("it contains a NUL byte")
        } else if target.len() >= PATH_MAX {
            Some("it is longer than PATH_MAX")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CpioError::InvalidSymlinkTarget { path, target: target.to_owned(), reason });
        }
        self.insert(path, EntryKind::Symlink { target: target.to_owned() })
    }

    /// The archive: every entry in path order, then the trailer.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            write_entry(&mut out, ino, entry.st_mode(), entry.nlink(), path, entry.body());
        }
        write_entry(&mut out, 0, 0, 1, TRAILER_NAME, &[]);
        out
    }

    /// Adds `new` at `path` and the missing parent directories, or changes nothing on error.
    fn insert(&mut self, path: String, new: EntryKind) -> Result<&mut Self, CpioError> {
        let parents: Vec<&str> = path.match_indices('/').map(|(slash, _)| &path[..slash]).collect();
        let blocking = parents.iter().find(|parent| {
            self.entries.get(**parent).is_some_and(|entry| !matches!(entry, EntryKind::Directory { .. }))
        });
        if let Some(parent) = blocking {
            return Err(CpioError::ParentNotDirectory { path: path.clone(), parent: (*parent).to_owned() });
        }
        match (self.entries.get(&path), &new) {
            (None, _) => {}
            (Some(existing), _) if *existing == new => return Ok(self),
            // A parent made up earlier takes the mode the caller now asks for.
            (Some(EntryKind::Directory { explicit: false, .. }), EntryKind::Directory { .. }) => {}
            (Some(_), _) => return Err(CpioError::Conflict { path }),
        }
        for parent in parents {
            let implicit = EntryKind::Directory { mode: IMPLICIT_DIR_MODE, explicit: false };
            self.entries.entry(parent.to_owned()).or_insert(implicit);
        }
        self.entries.insert(path, new);
        Ok(self)
    }
}

/// Turns `/a/b` or `a/b` into `a/b`, rejecting anything that is not a plain path below the root.
fn normalize(path: &str) -> Result<String, CpioError> {
    let invalid = |reason| CpioError::InvalidPath { path: path.to_owned(), reason };
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return Err(invalid("it names no file (the root directory always exists)"));
    }
    if relative.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    if relative.len() >= PATH_MAX {
        return Err(invalid("it is longer than PATH_MAX"));
    }
    for component in relative.split('/') {
        match component {
            "" => return Err(invalid("it has an empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(invalid("it contains a `.` or `..` component")),
            _ => {}
        }
    }
    Ok(relative.to_owned())
}

fn check_mode(path: &str, mode: u32) -> Result<(), CpioError> {
    if mode & !PERMISSION_BITS != 0 {
        return Err(CpioError::InvalidMode { path: path.to_owned(), mode });
    }
    Ok(())
}

/// Appends one newc header, the NUL-terminated name and the body, each padded to 4 bytes.
fn write_entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, body: &[u8]) {
    // Both were checked when the entry was added: names are shorter than PATH_MAX, bodies
    // shorter than 4 GiB.
    let name_size = u32::try_from(name.len() + 1).expect("path length checked on insert");
    let file_size = u32::try_from(body.len()).expect("body size checked on insert");
    // Owner, group, mtime and device numbers are always 0; `check` is only used by "070702".
    let header = format!(
        "{NEWC_MAGIC}{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{file_size:08X}\
         {dev_major:08X}{dev_minor:08X}{rdev_major:08X}{rdev_minor:08X}{name_size:08X}{check:08X}",
        uid = 0,
        gid = 0,
        mtime = 0,
        dev_major = 0,
        dev_minor = 0,
        rdev_major = 0,
        rdev_minor = 0,
        check = 0,
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(padding(HEADER_LEN + name.len() + 1));
    out.extend_from_slice(body);
    out.extend_from_slice(padding(body.len()));
}

/// The zero bytes that bring `len` up to a multiple of 4.
fn padding(len: usize) -> &'static [u8] {
    &[0; 3][..(4 - len % 4) % 4]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    fn sample() -> CpioBuilder {
        let mut b = CpioBuilder::new();
        b.add_file("/init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
        b.add_file("ksnap/plan", 0o644, "probe 1000 /ksnap/probes/probe\n").unwrap();
        b.add_file("ksnap/probes/probe", 0o755, vec![0x7f, b'E', b'L', b'F']).unwrap();
        b.add_dir("dev", 0o755).unwrap();
        b.add_dir("tmp", 0o1777).unwrap();
        b.add_symlink("bin/sh", "/init").unwrap();
        b.add_file("empty", 0o600, Vec::new()).unwrap();
        b
    }

    /// Runs the system `cpio` with `args`, feeding it `archive`; returns stdout.
    fn run_cpio(args: &[&str], dir: &Path, archive: &[u8]) -> String {
        let mut child = Command::new("cpio")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cpio tool is installed (apt-get install cpio)");
        child.stdin.take().unwrap().write_all(archive).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "cpio {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn list(archive: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        run_cpio(&["-t", "--quiet"], dir.path(), archive).lines().map(str::to_owned).collect()
    }

    /// Extracts `archive` with `cpio -i -d` and checks every entry against `builder`.
    fn assert_extracts_identically(builder: &CpioBuilder) {
        let dir = tempfile::tempdir().unwrap();
        run_cpio(&["-i", "-d", "--quiet", "--no-absolute-filenames"], dir.path(), &builder.clone().finish());
        for (path, entry) in &builder.entries {
            let on_disk = dir.path().join(path);
            let meta = std::fs::symlink_metadata(&on_disk).unwrap_or_else(|e| panic!("{path} was not extracted: {e}"));
            match entry {
                EntryKind::Directory { mode, .. } => {
                    assert!(meta.is_dir(), "{path} is not a directory");
                    assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
                }
                EntryKind::File { mode, data } => {
                    assert!(meta.is_file(), "{path} is not a file");
                    assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
                    assert_eq!(&std::fs::read(&on_disk).unwrap(), data, "contents of {path}");
                }
                EntryKind::Symlink { target } => {
                    assert!(meta.file_type().is_symlink(), "{path} is not a symlink");
                    assert_eq!(std::fs::read_link(&on_disk).unwrap(), Path::new(target));
                }
            }
        }
    }

    #[test]
    fn cpio_lists_entries_in_path_order_with_implicit_parents() {
        assert_eq!(
            list(&sample().finish()),
            [
                "bin",
                "bin/sh",
                "dev",
                "empty",
                "init",
                "ksnap",
                "ksnap/plan",
                "ksnap/probes",
                "ksnap/probes/probe",
                "tmp"
            ]
        );
    }

    #[test]
    fn cpio_extracts_identical_contents_and_modes() {
        assert_extracts_identically(&sample());
    }

    #[test]
    fn same_input_gives_same_bytes_whatever_the_insertion_order() {
        let mut reversed = CpioBuilder::new();
        reversed.add_file("empty", 0o600, Vec::new()).unwrap();
        reversed.add_symlink("/bin/sh", "/init").unwrap();
        reversed.add_dir("tmp", 0o1777).unwrap();
        reversed.add_dir("dev", 0o755).unwrap();
        reversed.add_file("ksnap/probes/probe", 0o755, vec![0x7f, b'E', b'L', b'F']).unwrap();
        reversed.add_file("ksnap/plan", 0o644, "probe 1000 /ksnap/probes/probe\n").unwrap();
        reversed.add_file("init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
        assert_eq!(sample().finish(), reversed.finish());
        assert_eq!(sample().finish(), sample().finish());
    }

    /// The 13 numeric fields of the newc header at the start of `bytes`.
    fn header_fields(bytes: &[u8]) -> Vec<u32> {
        assert_eq!(&bytes[..6], b"070701");
        bytes[6..HEADER_LEN]
            .chunks(8)
            .map(|hex| u32::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn header_fields_are_fixed_and_inodes_sequential() {
        let mut b = CpioBuilder::new();
        b.add_file("a", 0o644, b"xyz".to_vec()).unwrap();
        b.add_dir("b", 0o700).unwrap();
        let bytes = b.finish();
        // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check.
        assert_eq!(header_fields(&bytes), [1, 0o100644, 0, 0, 1, 0, 3, 0, 0, 0, 0, 2, 0]);
        // Header and "a\0" make 112 bytes, already aligned; the 3 data bytes get 1 byte of padding.
        assert_eq!(&bytes[HEADER_LEN..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
        assert_eq!(header_fields(&bytes[116..]), [2, 0o40700, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0]);
        let trailer = &bytes[116 + 112..];
        assert_eq!(header_fields(trailer), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]);
        assert_eq!(&trailer[HEADER_LEN..], b"TRAILER!!!\0\0\0\0");
    }

    #[test]
    fn explicit_mode_wins_over_implicit_parent() {
        let mut b = CpioBuilder::new();
        b.add_file("etc/secret/key", 0o600, b"k".to_vec()).unwrap();
        b.add_dir("etc/secret", 0o700).unwrap();
        assert_eq!(b.entries["etc"], EntryKind::Directory { mode: 0o755, explicit: false });
        assert_eq!(b.entries["etc/secret"], EntryKind::Directory { mode: 0o700, explicit: true });
        assert_extracts_identically(&b);
    }

    #[test]
    fn adding_the_same_entry_twice_is_fine() {
        let mut b = sample();
        b.add_file("init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
        b.add_dir("/tmp", 0o1777).unwrap();
        b.add_symlink("bin/sh", "/init").unwrap();
        assert_eq!(b.finish(), sample().finish());
    }

    #[test]
    fn rejects_conflicting_duplicates() {
        let mut b = sample();
        let conflict = |path: &str| CpioError::Conflict { path: path.to_owned() };
        assert_eq!(b.add_file("init", 0o755, b"other".to_vec()).unwrap_err(), conflict("init"));
        assert_eq!(b.add_file("init", 0o644, b"#!/bin/sh\n".to_vec()).unwrap_err(), conflict("init"));
        assert_eq!(b.add_dir("tmp", 0o755).unwrap_err(), conflict("tmp"));
        assert_eq!(b.add_dir("init", 0o755).unwrap_err(), conflict("init"));
        assert_eq!(b.add_symlink("bin/sh", "/other").unwrap_err(), conflict("bin/sh"));
        assert_eq!(b.add_file("ksnap", 0o644, Vec::new()).unwrap_err(), conflict("ksnap"));
        assert_eq!(b.finish(), sample().finish(), "failed adds change nothing");
    }

    #[test]
    fn rejects_children_of_files_and_symlinks() {
        let mut b = sample();
        let before = b.entries.clone();
        assert_eq!(
            b.add_file("init/x", 0o644, Vec::new()).unwrap_err(),
            CpioError::ParentNotDirectory { path: "init/x".into(), parent: "init".into() }
        );
        assert!(matches!(b.add_dir("bin/sh/x/y", 0o755), Err(CpioError::ParentNotDirectory { .. })));
        assert_eq!(b.entries, before, "a failed add changes nothing");
    }

    #[test]
    fn rejects_invalid_paths() {
        for path in ["", "/", "//", "a//b", "a/", "..", "../etc", "a/../b", "./a", "a/.", "a\0b"] {
            let err = CpioBuilder::new().add_file(path, 0o644, Vec::new()).unwrap_err();
            assert!(matches!(err, CpioError::InvalidPath { .. }), "{path:?} gave {err:?}");
        }
        let long = "a/".repeat(PATH_MAX / 2) + "b";
        assert!(matches!(CpioBuilder::new().add_dir(&long, 0o755), Err(CpioError::InvalidPath { .. })));
    }

    #[test]
    fn rejects_invalid_modes_and_targets() {
        let mut b = CpioBuilder::new();
        assert_eq!(
            b.add_file("x", 0o100644, Vec::new()).unwrap_err(),
            CpioError::InvalidMode { path: "x".into(), mode: 0o100644 }
        );
        assert!(matches!(b.add_symlink("l", ""), Err(CpioError::InvalidSymlinkTarget { .. })));
        assert!(matches!(b.add_symlink("l", "a\0b"), Err(CpioError::InvalidSymlinkTarget { .. })));
        assert!(b.entries.is_empty(), "failed adds leave nothing behind");
    }

    #[test]
    fn error_messages_name_the_path_and_the_fix() {
        let err = CpioBuilder::new().add_dir("a/../b", 0o755).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid initramfs path \"a/../b\": it contains a `.` or `..` component; use a \
             relative or absolute path made of plain names separated by single slashes"
        );
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let bytes = CpioBuilder::new().finish();
        assert_eq!(bytes.len(), 124);
        assert!(list(&bytes).is_empty());
    }

    /// A random tree: names from a small alphabet so that paths collide and nest often.
    fn tree_strategy() -> impl Strategy<Value = CpioBuilder> {
        let name = "[a-c.-]{1,3}".prop_filter("not . or ..", |n| n != "." && n != "..");
        let path = prop::collection::vec(name, 1..4).prop_map(|parts| parts.join("/"));
        let entry = prop_oneof![
            (0u32..=0o7777).prop_map(|mode| (mode | 0o700, None, None)),
            (0u32..=0o7777, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(mode, data)| (
                mode & 0o777 | 0o600,
                Some(data),
                None
            )),
            "[a-z/.]{1,20}".prop_map(|target| (0, None, Some(target))),
        ];
        prop::collection::vec((path, entry), 0..24).prop_map(|entries| {
            let mut b = CpioBuilder::new();
            for (path, (mode, data, target)) in entries {
                // Conflicts are expected with random paths: the first entry wins.
                let _ = match (data, target) {
                    (Some(data), _) => b.add_file(&path, mode, data),
                    (None, Some(target)) => b.add_symlink(&path, &target),
                    (None, None) => b.add_dir(&path, mode),
                };
            }
            b
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_trees_round_trip_through_cpio(builder in tree_strategy()) {
            let bytes = builder.clone().finish();
            let names = list(&bytes);
            let expected: Vec<String> = builder.entries.keys().cloned().collect();
            prop_assert_eq!(&names, &expected);
            prop_assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
            let unique: BTreeSet<_> = names.iter().collect();
            prop_assert_eq!(unique.len(), names.len());
            assert_extracts_identically(&builder);
            prop_assert_eq!(bytes, builder.finish());
        }
    }
}
