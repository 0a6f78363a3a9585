//! Every child process ksnap starts (QEMU, apt-get, cargo) is registered here, so that an interrupt can
//! end them all and no QEMU ever outlives ksnap.
//!
//! Three layers make that true:
//! 1. [`ChildGuard`] kills and reaps its child when dropped (normal return, `?`, panic unwinding).
//! 2. [`cancel_all`] — called by the harness's signal thread on SIGINT/SIGTERM — marks the process as
//!    cancelled and kills every registered child; the code waiting on a child then sees it die, checks
//!    [`is_cancelled`] and returns [`crate::Error::Cancelled`], unwinding normally so temp dirs are removed.
//! 3. Children get `PR_SET_PDEATHSIG(SIGKILL)`, so even a SIGKILLed ksnap takes its VMs with it.
//!
//! Each child leads a process group of its own, and killing it kills that group: what the child started
//! goes with it (a kernel build's sub-makes and compilers, which would otherwise go on writing into an
//! object tree the next build has emptied).

use std::collections::HashSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static RUNNING: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Whether [`cancel_all`] has been called in this process.
pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Kill every registered child and make every later [`spawn`] fail. Safe to call from any thread (not
/// from a signal handler: it takes a lock).
pub fn cancel_all() {
    CANCELLED.store(true, Ordering::SeqCst);
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for &pid in running.iter().flatten() {
        kill_group(pid);
    }
}

/// SIGKILL to the process group that child `pid` leads ([`spawn`] makes every child one), and to the child
/// itself should it have left it.
fn kill_group(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// A registered child: killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    finished: bool,
}

/// Spawn `command` as a registered child that dies with ksnap.
///
/// The child dies when the *thread* that spawned it exits (that is how PR_SET_PDEATHSIG works), so spawn
/// from the thread that waits for it.
pub fn spawn(command: &mut Command) -> io::Result<ChildGuard> {
    if is_cancelled() {
        return Err(io::Error::new(io::ErrorKind::Interrupted, "ksnap was interrupted"));
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.process_group(0);
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let child = command.spawn()?;
    running.get_or_insert_with(HashSet::new).insert(child.id());
    drop(running);
    // A cancel that raced with the spawn must still reach this child.
    if is_cancelled() {
        kill_group(child.id());
    }
    Ok(ChildGuard { child, finished: false })
}

impl ChildGuard {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The [`Child`] itself, e.g. to take its pipes. Wait through the guard, so that the child is unregistered.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Non-blocking: the exit status once the child has ended.
    pub fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.finish();
        }
        Ok(status)
    }

    /// Block until the child ends.
    pub fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        self.finish();
        Ok(status)
    }

    /// Block until the child ends, reading its piped stdout and stderr to the end (on threads of their
    /// own, so that a child filling one pipe while ksnap waits on the other never blocks).
    pub fn wait_with_output(&mut self) -> io::Result<std::process::Output> {
        fn read_all(pipe: Option<impl io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        }
        let stdout = read_all(self.child.stdout.take());
        let stderr = read_all(self.child.stderr.take());
        let status = self.wait()?;
        Ok(std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Kill the child (if still running) and what it started, and reap it.
    pub fn kill(&mut self) {
        if !self.finished {
            kill_group(self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = running.as_mut() {
            set.remove(&self.child.id());
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_kills_the_child() {
        let guard = spawn(Command::new("sleep").arg("100")).unwrap();
        let pid = guard.id() as libc::pid_t;
        drop(guard);
        // SAFETY: signal 0 only checks existence. The pid was reaped, so it no longer exists (pid reuse
        // within this instant is not a practical concern).
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "child {pid} survived its guard");
    }

    #[test]
    fn dropping_the_guard_kills_what_the_child_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 100 & echo $! > {}; wait", pidfile.display());
        let guard = spawn(Command::new("sh").args(["-c", &script])).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let grandchild: libc::pid_t = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|t| t.trim().parse().ok()) {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "the shell never started its child");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        drop(guard);
        // The grandchild was SIGKILLed; once its new parent reaps it, it is gone. A zombie still answers
        // kill(0), so look at its state.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).ok();
            let running =
                state.as_deref().and_then(|s| s.rsplit_once(") ")).is_some_and(|(_, rest)| !rest.starts_with('Z'));
            if !running {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "grandchild {grandchild} survived the guard");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
