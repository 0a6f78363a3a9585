//! Just enough of QMP, QEMU's machine protocol, to save a machine to a file and to load one: a JSON object
//! per line each way, commands answered by `return` or `error`, asynchronous events in between (skipped).
//! The state file goes to QEMU as a descriptor over the socket (`getfd`, SCM_RIGHTS), so QEMU, sandboxed
//! with `spawn=deny`, opens nothing and runs nothing to read or write it.

use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A QMP message longer than this is refused: QEMU's answers to these few commands are small.
const MAX_MESSAGE: u64 = 1 << 20;
/// How often a running migration is asked how far it got.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The name under which the state file's descriptor is handed to QEMU.
const STATE_FD: &str = "ksnap-state";

/// A QMP connection in command mode.
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Read QEMU's greeting and leave capabilities negotiation, by `deadline`.
    pub fn handshake(stream: UnixStream, deadline: Instant) -> Result<Qmp, String> {
        let writer = stream.try_clone().map_err(|e| format!("the monitor socket: {e}"))?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(format!("expected QMP's greeting, got {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}), None, deadline)?;
        Ok(qmp)
    }

    /// Stop the guest and write the machine to `state`, by `deadline`; the guest stays stopped.
    pub fn save(&mut self, state: &File, deadline: Instant) -> Result<(), String> {
        self.execute("stop", json!({}), None, deadline)?;
        // The default bandwidth limit (32 MiB/s in QEMU 7.2) is for live migration over a network.
        self.execute("migrate-set-parameters", json!({ "max-bandwidth": 1u64 << 40 }), None, deadline)?;
        self.execute("getfd", json!({ "fdname": STATE_FD }), Some(state), deadline)?;
        self.execute("migrate", json!({ "uri": format!("fd:{STATE_FD}") }), None, deadline)?;
        loop {
            let info = self.execute("query-migrate", json!({}), None, deadline)?;
            match info.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    let why = info.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                    return Err(format!("QEMU could not save the machine: {why}"));
                }
                _ => wait_a_little(deadline, "saving the machine")?,
            }
        }
    }

    /// Let the guest run again.
    pub fn resume(&mut self, deadline: Instant) -> Result<(), String> {
        self.execute("cont", json!({}), None, deadline).map(drop)
    }

    /// Load the machine from `state` into a QEMU started with `-incoming defer`, and let the guest run, by
    /// `deadline`.
    pub fn restore(&mut self, state: &File, deadline: Instant) -> Result<(), String> {
        self.execute("getfd", json!({ "fdname": STATE_FD }), Some(state), deadline)?;
        self.execute("migrate-incoming", json!({ "uri": format!("fd:{STATE_FD}") }), None, deadline)?;
        loop {
            let info = self.execute("query-migrate", json!({}), None, deadline)?;
            match info.get("status").and_then(Value::as_str) {
                // The machine was saved stopped, and loads stopped.
                Some("completed") => return self.resume(deadline),
                Some("failed") | Some("cancelled") => {
                    let why = info.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                    return Err(format!("QEMU could not load the machine: {why}"));
                }
                _ => wait_a_little(deadline, "loading the machine")?,
            }
        }
    }

    /// Run `command` and return its `return` value; `fd` goes with it as SCM_RIGHTS (for `getfd`).
    fn execute(
        &mut self,
        command: &str,
        arguments: Value,
        fd: Option<&File>,
        deadline: Instant,
    ) -> Result<Value, String> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        let sent = match fd {
            None => std::io::Write::write_all(&mut self.writer, line.as_bytes()),
            Some(file) => send_with_fd(&self.writer, line.as_bytes(), file),
        };
        sent.map_err(|e| format!("sending `{command}` to QEMU's monitor: {e}"))?;
        loop {
            let message = self.read_message(deadline)?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("no description");
                return Err(format!("QEMU refused `{command}`: {desc}"));
            }
            // An event (STOP, RESUME, MIGRATION…): nothing here waits on one.
        }
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Value, String> {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        let left = left.ok_or("QEMU's monitor did not answer in time")?;
        self.reader.get_ref().set_read_timeout(Some(left)).map_err(|e| format!("the monitor socket: {e}"))?;
        let mut line = Vec::new();
        let read = (&mut self.reader).take(MAX_MESSAGE).read_until(b'\n', &mut line);
        match read {
            Ok(0) => Err("QEMU closed its monitor (it exited?)".into()),
            Ok(_) if line.last() != Some(&b'\n') => Err("an over-long or cut message from QEMU's monitor".into()),
            Ok(_) => serde_json::from_slice(&line)
                .map_err(|e| format!("a message from QEMU's monitor that is not JSON: {e}")),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err("QEMU's monitor did not answer in time".into())
            }
            Err(e) => Err(format!("reading QEMU's monitor: {e}")),
        }
    }
}

fn wait_a_little(deadline: Instant, doing: &str) -> Result<(), String> {
    if Instant::now() + POLL_INTERVAL > deadline {
        return Err(format!("QEMU took too long {doing}"));
    }
    if crate::children::is_cancelled() {
        return Err("interrupted".into());
    }
    std::thread::sleep(POLL_INTERVAL);
    Ok(())
}

/// Write `bytes` on the socket with `file`'s descriptor attached (QMP takes the descriptor with the
/// command it arrives with).
fn send_with_fd(socket: &UnixStream, bytes: &[u8], file: &File) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [file.as_raw_fd()];
    let sent = sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    // The descriptor went with the first byte; anything sendmsg did not take is plain data.
    std::io::Write::write_all(&mut &*socket, &bytes[sent..])
}
