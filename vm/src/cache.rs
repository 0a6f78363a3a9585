//! ksnap's on-disk cache (`$XDG_CACHE_HOME/ksnap`, else `~/.cache/ksnap`).
//!
//! Entries are directories that appear atomically: they are built in a temporary directory inside the
//! cache and renamed into place, so a reader sees a whole entry or none. Each entry records the SHA-256 of
//! its files; an entry whose files no longer match (a crash mid-write on a filesystem without ordered
//! renames, a disk error, someone's editor) is detected and rebuilt. A per-entry `flock` makes two ksnap
//! processes that want the same entry build it once.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// How often a wait for another process's cache lock checks whether it was interrupted.
const LOCK_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// ksnap's cache, by its root directory: entries at `KIND/KEY` (`kernels/…`), locks in `locks/`, staging in `tmp/`.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// An exclusive lock on one cache key, held until dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// The user's cache: `$XDG_CACHE_HOME/ksnap` or `$HOME/.cache/ksnap`.
    pub fn user_default() -> Result<Cache, Error> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        Cache::at(base.join("ksnap"))
    }

    /// A cache rooted at `root` (created if missing).
    pub fn at(root: PathBuf) -> Result<Cache, Error> {
        fs::create_dir_all(root.join("tmp"))
            .map_err(|source| Error::CacheUnusable { path: root.clone(), cause: source })?;
        Ok(Cache { root })
    }

    /// The cache's root directory (e.g. `~/.cache/ksnap`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the entry `kind/key` lives (it may not exist yet).
    pub fn entry(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(sanitize(key))
    }

    /// Take the exclusive lock for `kind/key`, waiting for another ksnap process that holds it.
    pub fn lock(&self, kind: &str, key: &str) -> Result<CacheLock, Error> {
        self.lock_reporting(kind, key, &mut || {})
    }

    /// [`Cache::lock`], calling `on_wait` once if another holder makes it wait.
    pub fn lock_reporting(&self, kind: &str, key: &str, on_wait: &mut dyn FnMut()) -> Result<CacheLock, Error> {
        let mut waited = false;
        let dir = self.root.join("locks").join(kind);
        fs::create_dir_all(&dir).map_err(|source| Error::CacheUnusable { path: dir.clone(), cause: source })?;
        let path = dir.join(format!("{}.lock", sanitize(key)));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::CacheUnusable { path: path.clone(), cause: source })?;
        // Polled, not a blocking flock: the signal handlers are installed with SA_RESTART, so a blocking
        // flock would sleep through Ctrl-C until the other process let go.
        loop {
            if crate::children::is_cancelled() {
                return Err(Error::Cancelled);
            }
            // SAFETY: flock on a valid, owned descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(CacheLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => {
                    if !std::mem::replace(&mut waited, true) {
                        on_wait();
                    }
                    std::thread::sleep(LOCK_POLL_INTERVAL)
                }
                _ => return Err(Error::io(format!("locking {}", path.display()), err)),
            }
        }
    }

    /// A fresh temporary directory inside the cache (same filesystem, so it can be renamed into place).
    pub fn staging_dir(&self) -> Result<tempfile::TempDir, Error> {
        tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(self.root.join("tmp"))
            .map_err(|source| Error::CacheUnusable { path: self.root.join("tmp"), cause: source })
    }

    /// Move a fully written staging directory to `entry`, replacing a stale one.
    pub fn commit(&self, staging: tempfile::TempDir, entry: &Path) -> Result<(), Error> {
        if let Some(parent) = entry.parent() {
            fs::create_dir_all(parent)
                .map_err(|source| Error::CacheUnusable { path: parent.to_path_buf(), cause: source })?;
        }
        if entry.exists() {
            fs::remove_dir_all(entry).map_err(|e| Error::io(format!("removing stale {}", entry.display()), e))?;
        }
        let staged = staging.keep();
        fs::rename(&staged, entry).map_err(|e| Error::io(format!("moving {} into place", entry.display()), e))
    }
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| Error::CacheUnusable { path: dir.to_path_buf(), cause: source })?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| Error::CacheUnusable { path: dir.to_path_buf(), cause: source })?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tmp.persist(path).map_err(|e| Error::io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cache keys come from package names and versions (`6.12.117-1~deb12u1`): keep them one path component.
fn sanitize(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || "+-_.~".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_an_entry_atomically() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().join("c")).unwrap();
        let entry = cache.entry("kernels", "linux-image-x_1.0~a/b");
        assert!(entry.ends_with("kernels/linux-image-x_1.0~a_b"));
        for content in ["old", "new"] {
            let staging = cache.staging_dir().unwrap();
            fs::write(staging.path().join("f"), content).unwrap();
            cache.commit(staging, &entry).unwrap();
        }
        assert_eq!(fs::read_to_string(entry.join("f")).unwrap(), "new");
        assert_eq!(fs::read_dir(root.path().join("c/tmp")).unwrap().count(), 0, "staging left behind");
    }

    #[test]
    fn write_atomic_and_hash() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b.txt");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(sha256_bytes(b"abc"), sha256_file(&path).unwrap());
    }

    #[test]
    fn unwritable_cache_says_so() {
        let err = Cache::at(PathBuf::from("/proc/ksnap-cache")).unwrap_err();
        assert!(err.to_string().contains("/proc/ksnap-cache is not usable"), "{err}");
    }
}
