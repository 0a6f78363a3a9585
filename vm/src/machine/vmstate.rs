//! Saved machines: a VM saved (QEMU's migration stream, to a file) at the moment init said hello and waits
//! for its plan, so that later runs of the same machine start from there instead of booting. Every run
//! gets its own plan after the restore ([`ksnap_protocol::plan`]), so one saved boot serves every plan its
//! initramfs can run.
//!
//! A state is a cache entry `vmstate/KEY/` (`state`, the migration stream, and `state.json`, its SHA-256
//! and what went into it), written atomically like every entry. Its key ([`key`]) hashes everything that
//! went into the machine: QEMU's version and the machine's command line (accelerator, CPU, memory,
//! firmware, kernel command line), the kernel image's and the initramfs' contents, and the protocol version
//! of the init inside. A state is checked against its SHA-256 the first time a process uses it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::machine::qemu::Qemu;
use crate::machine::spec::{SavedState, VmSpec};

/// The cache kind of saved states.
const CACHE_KIND: &str = "vmstate";
/// Changes when what a key covers, or the entry's layout, changes.
const FORMAT: &str = "ksnap-vmstate 1";

/// `state.json`: the stream's hash, the machine's [`place`] and, for a person looking into the cache, what
/// it is a state of.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    sha256: String,
    bytes: u64,
    place: String,
    qemu: String,
    kernel: PathBuf,
    cmdline: String,
    memory_mib: u32,
}

/// The key of the machine `spec` describes under `qemu` (its plan and how it starts aside): a state saved
/// from one VM restores only into a VM with the same key.
pub fn key(qemu: &Qemu, spec: &VmSpec) -> Result<String, Error> {
    let hash_of = |path: &Path| {
        file_hash(path).map_err(|e| Error::io(format!("reading {} (for its saved state)", path.display()), e))
    };
    let mut material = vec![
        FORMAT.to_string(),
        format!("protocol {}", ksnap_protocol::VERSION),
        format!("qemu {} {}", qemu.path.display(), qemu.version()),
        format!("kernel {}", hash_of(&spec.kernel)?),
        format!("initramfs {}", hash_of(&spec.initramfs.path)?),
    ];
    material.extend(spec.machine_args(qemu));
    Ok(cache::sha256_bytes(material.join("\n").as_bytes())[..32].to_string())
}

/// Where a machine runs, whatever its initramfs and kernel hold: QEMU and the machine's arguments, the
/// initramfs' path left out (it names the contents). Each place keeps one state: a new one replaces the
/// others ([`Staged::commit`]), so that rebuilding probes or a kernel does not pile up states of ~100 MiB.
fn place(qemu: &Qemu, spec: &VmSpec) -> String {
    let mut material = vec![FORMAT.to_string(), qemu.path.display().to_string()];
    let mut args = spec.machine_args(qemu).into_iter();
    while let Some(arg) = args.next() {
        if arg == "-initrd" {
            args.next();
        } else {
            material.push(arg);
        }
    }
    cache::sha256_bytes(material.join("\n").as_bytes())[..32].to_string()
}

/// A file's SHA-256, hashed once per process while its size and modification time stay the same: a key is
/// asked for twice per cell (to find the state, and by the run that restores it), over a kernel and an
/// initramfs of tens of MiB.
fn file_hash(path: &Path) -> std::io::Result<String> {
    type Seen = std::collections::HashMap<(PathBuf, u64, std::time::SystemTime), String>;
    static HASHES: Mutex<Option<Seen>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let id = (path.to_path_buf(), meta.len(), meta.modified()?);
    if let Some(hash) = HASHES.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Seen::new).get(&id) {
        return Ok(hash.clone());
    }
    let hash = cache::sha256_file(path)?;
    HASHES.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Seen::new).insert(id, hash.clone());
    Ok(hash)
}

/// Keys whose state this process has checked against its SHA-256 already.
static VERIFIED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The saved state with `key`, if the cache has a whole one (checked against its SHA-256 once per process).
pub fn lookup(cache: &Cache, key: &str) -> Option<SavedState> {
    let entry = cache.entry(CACHE_KIND, key);
    let state = SavedState { key: key.to_string(), path: entry.join("state") };
    let mut verified = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    if verified.get_or_insert_with(HashSet::new).contains(key) && state.path.is_file() {
        return Some(state);
    }
    let record: Record = serde_json::from_slice(&std::fs::read(entry.join("state.json")).ok()?).ok()?;
    if cache::sha256_file(&state.path).ok()? != record.sha256 {
        return None;
    }
    verified.get_or_insert_with(HashSet::new).insert(key.to_string());
    Some(state)
}

/// Drop the state with `key` (QEMU would not restore it).
pub fn remove(cache: &Cache, key: &str) -> Result<(), Error> {
    let entry = cache.entry(CACHE_KIND, key);
    VERIFIED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).remove(key);
    match std::fs::remove_dir_all(&entry) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing the saved VM state {}", entry.display()), e))
        }
        _ => Ok(()),
    }
}

/// Where a saving QEMU writes: a staging directory of the cache, and the stream's file in it.
pub(crate) struct Staged {
    dir: tempfile::TempDir,
    /// Open for QEMU to write through (its descriptor goes to QEMU).
    pub file: std::fs::File,
}

impl Staged {
    pub fn new(cache: &Cache) -> Result<Staged, Error> {
        let dir = cache.staging_dir()?;
        let path = dir.path().join("state");
        let file = std::fs::File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Staged { dir, file })
    }

    /// Make the written stream the cache entry of `key`, and drop the other states of its [`place`] and
    /// entries that are not whole states of this format. Another process may have saved the same machine
    /// meanwhile: its entry is replaced by this one, which is as good.
    pub fn commit(self, cache: &Cache, key: &str, qemu: &Qemu, spec: &VmSpec) -> Result<SavedState, Error> {
        let place = place(qemu, spec);
        let about = (qemu.version().to_string(), spec.kernel.clone(), spec.cmdline(), spec.memory_mib);
        self.commit_at(cache, key, place, about)
    }

    fn commit_at(
        self,
        cache: &Cache,
        key: &str,
        place: String,
        (qemu, kernel, cmdline, memory_mib): (String, PathBuf, String, u32),
    ) -> Result<SavedState, Error> {
        let path = self.dir.path().join("state");
        self.file.sync_all().map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        let bytes = self.file.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?.len();
        if bytes == 0 {
            return Err(Error::VmState { key: key.into(), why: "QEMU wrote an empty state".into() });
        }
        let sha256 = cache::sha256_file(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let record = Record { sha256, bytes, place, qemu, kernel, cmdline, memory_mib };
        let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
        cache::write_atomic(&self.dir.path().join("state.json"), &json)?;
        let entry = cache.entry(CACHE_KIND, key);
        {
            let _lock = cache.lock(CACHE_KIND, key)?;
            cache.commit(self.dir, &entry)?;
        }
        VERIFIED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).insert(key.to_string());
        drop_replaced(cache, key, &record.place);
        Ok(SavedState { key: key.to_string(), path: entry.join("state") })
    }
}

/// Remove every state of `place` but `kept`, and every entry without a readable record (a state of
/// another format). Best effort: a state that cannot be removed now is tried again at the next commit. A
/// run that found a state just before it went fails to open it and boots ([`crate::machine::run`]).
fn drop_replaced(cache: &Cache, kept: &str, place: &str) {
    let Ok(entries) = std::fs::read_dir(cache.root().join(CACHE_KIND)) else { return };
    for entry in entries.flatten() {
        let key = entry.file_name().to_string_lossy().into_owned();
        if key == kept {
            continue;
        }
        let record = std::fs::read(entry.path().join("state.json")).ok();
        let record: Option<Record> = record.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if record.is_none_or(|record| record.place == place) {
            if let Ok(_lock) = cache.lock(CACHE_KIND, &key) {
                let _ = remove(cache, &key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_found_only_whole_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        assert_eq!(lookup(&cache, "k1"), None);
        let entry = cache.entry(CACHE_KIND, "k1");
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(entry.join("state"), b"QEVM stream").unwrap();
        assert_eq!(lookup(&cache, "k1"), None, "no state.json: not a whole entry");
        let record = Record {
            sha256: cache::sha256_bytes(b"QEVM stream"),
            bytes: 11,
            place: "p".into(),
            qemu: "QEMU emulator version 7.2".into(),
            kernel: "/k".into(),
            cmdline: "console=ttyS0".into(),
            memory_mib: 512,
        };
        std::fs::write(entry.join("state.json"), serde_json::to_vec(&record).unwrap()).unwrap();
        std::fs::write(entry.join("state"), b"QEVM strea!").unwrap();
        assert_eq!(lookup(&cache, "k1"), None, "a changed stream is not used");
        std::fs::write(entry.join("state"), b"QEVM stream").unwrap();
        assert_eq!(lookup(&cache, "k1").unwrap().path, entry.join("state"));
        remove(&cache, "k1").unwrap();
        assert!(!entry.exists());
        assert_eq!(lookup(&cache, "k1"), None, "removed, and forgotten as verified");
    }

    #[test]
    fn a_new_state_replaces_the_others_of_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let save = |key: &str, place: &str| {
            let mut staged = Staged::new(&cache).unwrap();
            std::io::Write::write_all(&mut staged.file, format!("QEVM {key}").as_bytes()).unwrap();
            let about = ("QEMU 10".to_string(), PathBuf::from("/k"), "console=ttyS0".to_string(), 1024);
            staged.commit_at(&cache, key, place.into(), about).unwrap()
        };
        save("a1", "a");
        save("b1", "b");
        let old_format = cache.entry(CACHE_KIND, "old");
        std::fs::create_dir_all(&old_format).unwrap();
        std::fs::write(old_format.join("state.json"), br#"{"sha256": "x", "bytes": 1}"#).unwrap();
        save("a2", "a");
        assert_eq!(lookup(&cache, "a1"), None, "replaced by a2");
        assert!(!cache.entry(CACHE_KIND, "a1").exists());
        assert!(!old_format.exists(), "an entry of another format is dropped");
        assert!(lookup(&cache, "a2").is_some());
        assert!(lookup(&cache, "b1").is_some(), "another place's state stays");
    }
}
