//! Running one apt command to its end: both pipes read, and the command stopped once it stalls.
//!
//! apt ends a dead network connection by itself (`Acquire::http::Timeout`), but not every hang is the
//! network's: apt 2.6's `apt-get update` waits forever once a write into its lists fails with ENOSPC
//! (reproduced on a 16 MiB tmpfs: "Write error … No space left on device", then nothing, for as long as
//! one waits). So a command that neither prints nor writes a byte for [`STALL`] is stopped, and the error
//! says how much room its directory has left.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;

/// How long an apt command may go without output and without a byte more in the directory it writes.
/// apt prints a line per index and per package, and a download grows its file all along: two minutes of
/// neither is a hang, not a slow mirror.
pub(super) const STALL: Duration = Duration::from_secs(120);

/// Below this much free space, a stall is put down to the full disk rather than to the network.
const LOW_SPACE: u64 = 64 << 20;

/// How often the watch looks at the command's output and directory.
const POLL: Duration = Duration::from_millis(100);

/// Run an apt command to its end; its stdout. Both pipes are read to the end (threads), so a chatty apt
/// never blocks on a full pipe. `writes` is the directory the command fills (lists, `.deb`s): its growth
/// counts as progress, and it is the directory a stall's error names.
pub(super) fn run_apt(command: &mut Command, what: &str, writes: &Path) -> Result<String, Error> {
    run_watched(command, what, writes, STALL)
}

fn run_watched(command: &mut Command, what: &str, writes: &Path, stall: Duration) -> Result<String, Error> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let failed = |stderr: String| Error::AptFailed { command: what.to_string(), stderr };
    let mut child = crate::children::spawn(command).map_err(|e| match crate::children::is_cancelled() {
        true => Error::Cancelled,
        false => failed(e.to_string()),
    })?;
    let output = Arc::new(AtomicU64::new(0));
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut chunk = [0u8; 8192];
            if let Some(mut pipe) = pipe {
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    bytes.extend_from_slice(&chunk[..n]);
                    output.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(child.child_mut().stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.child_mut().stderr.take().map(|p| Box::new(p) as _));
    let mut progress = (output.load(Ordering::Relaxed), bytes_under(writes));
    let mut since = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::io(format!("waiting for {what}"), e))? {
            break status;
        }
        std::thread::sleep(POLL);
        let now = (output.load(Ordering::Relaxed), bytes_under(writes));
        if now != progress {
            (progress, since) = (now, Instant::now());
        } else if since.elapsed() >= stall {
            // Killing the child closes its pipes, so the readers end.
            child.kill();
            let _ = (stdout.join(), stderr.join());
            return Err(Error::AptStalled {
                command: what.to_string(),
                seconds: stall.as_secs(),
                why: why_stalled(writes),
            });
        }
    };
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    if crate::children::is_cancelled() {
        return Err(Error::Cancelled);
    }
    if !status.success() {
        // apt's warnings (`W:`) say nothing about why it failed; its errors (`E:`) do.
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("W:")).collect();
        return Err(failed(errors.join("\n").trim().to_string()));
    }
    Ok(stdout)
}

/// Refuse to start filling `dir` with `what` when its filesystem has less than `needed` bytes free: apt
/// would fill it and hang ([`STALL`] would end it, but only after two minutes and with less to say).
pub(super) fn require_space(dir: &Path, needed: u64, what: &str) -> Result<(), Error> {
    match free_bytes(dir) {
        Some(free) if free < needed => Err(Error::NoSpace {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            needed_mib: needed >> 20,
            free_mib: free >> 20,
        }),
        _ => Ok(()),
    }
}

/// Why a command in `dir` may have stalled, for the error.
fn why_stalled(dir: &Path) -> String {
    match free_bytes(dir) {
        Some(free) if free < LOW_SPACE => format!(
            "{} has {} MiB free, and apt hangs when its disk fills: free some space there, or set \
             XDG_CACHE_HOME to a directory on a larger filesystem",
            dir.display(),
            free >> 20
        ),
        _ => "neither the network nor apt answered: check that the Debian mirror in the system's apt \
              sources is reachable (`apt-get update`), then run it again"
            .to_string(),
    }
}

/// Bytes available to an unprivileged user on the filesystem holding `dir`; `None` if it cannot be asked.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// The size of every file under `dir`, recursively; what cannot be read counts as nothing.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// apt prints progress on stdout and errors on stderr; a command that fills a pipe's buffer (64 KiB)
    /// on either must not block forever because nobody reads it.
    #[test]
    fn a_chatty_command_does_not_block_on_a_full_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "head -c 1000000 /dev/zero; head -c 200000 /dev/zero >&2; echo done"]);
        let (sender, receiver) = std::sync::mpsc::channel();
        let writes = dir.path().to_path_buf();
        std::thread::spawn(move || sender.send(run_apt(&mut command, "chatty", &writes).map(|out| out.len())));
        let result = receiver.recv_timeout(Duration::from_secs(20)).expect("run_apt blocked on a full pipe");
        assert_eq!(result.unwrap(), 1_000_005);
        let mut failing = Command::new("sh");
        failing.args([
            "-c",
            "head -c 100000 /dev/zero; echo 'W: a warning' >&2; echo 'E: Version not found' >&2; exit 100",
        ]);
        let err = run_apt(&mut failing, "failing", dir.path()).unwrap_err().to_string();
        assert_eq!(err, "`failing` failed: E: Version not found");
    }

    /// A command silent for longer than the stall limit is stopped, with an error saying so; one that
    /// keeps writing into its directory, however quietly, is not.
    #[test]
    fn a_silent_command_is_stopped_and_a_writing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut silent = Command::new("sleep");
        silent.arg("30");
        let err = run_watched(&mut silent, "apt-get update", dir.path(), Duration::from_secs(1)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "the stalled command was not stopped");
        assert!(matches!(err, Error::AptStalled { seconds: 1, .. }), "{err:?}");
        assert!(err.to_string().starts_with("`apt-get update` made no progress for 1 s"), "{err}");

        let file = dir.path().join("growing");
        let script = format!("for i in 1 2 3 4 5 6; do echo x >> {}; sleep 0.5; done", file.display());
        let mut writing = Command::new("sh");
        writing.args(["-c", &script]);
        run_watched(&mut writing, "apt-get download", dir.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap().len(), 12);
    }

    #[test]
    fn too_little_space_is_refused_before_apt_starts() {
        let dir = tempfile::tempdir().unwrap();
        require_space(dir.path(), 1, "lists").unwrap();
        let err = require_space(dir.path(), u64::MAX, "apt's package lists for bullseye").unwrap_err().to_string();
        assert!(err.starts_with("not enough free space in "), "{err}");
        assert!(err.contains("for apt's package lists for bullseye"), "{err}");
    }
}
