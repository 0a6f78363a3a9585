//! Reading the kernel console (ttyS0): panics, oopses, BUGs, WARNINGs and the last lines printed.
//!
//! Lines are matched against the exact formats the kernel prints (`WARNING: CPU: 0 PID: 1 at
//! ...`, `BUG: kernel NULL pointer dereference, ...`, `Kernel panic - not syncing: ...`), at the
//! start of the message, so that a line that merely mentions a WARNING is not mistaken for the
//! kernel's.
//!
//! Who wrote a line: ksnap boots with `console_msg_format=syslog` (`ksnap_vm::machine::spec::BASE_CMDLINE`), so
//! the kernel starts every line of every record with its syslog priority, `<PRI>` = facility × 8 +
//! level, before the timestamp. The kernel's own messages have facility 0 (`LOG_KERN`); a record
//! user space writes to `/dev/kmsg` never does (`devkmsg_write` turns facility 0 into `LOG_USER`). A
//! line with another facility is therefore user space talking in the kernel's words: kept among the
//! last lines, never a panic or an event. A line without a priority is read by its format alone until
//! the first line with one (the boot stub's lines before printk starts; a kernel older than 4.16, which
//! cannot print one); after it, such a line is user space's (init's own lines, anything else written to
//! `/dev/console`): the kernel prefixes every line once it does one. A probe's stdout and stderr never
//! reach the console (init relays both on the result channel); a probe that writes a `<0>` line of its
//! own to `/dev/console` on purpose can still fool the scanner, so a panic is only believed while the
//! guest does not go on ([`ConsoleScan::guest_went_on`]).
//!
//! The console is untrusted: every line kept is cut to [`MAX_LINE_BYTES`], and the number of
//! events, of context lines per event and of panic lines are all capped.

use serde::Serialize;

/// Longest line kept; longer ones are cut (classification still sees the whole line).
pub const MAX_LINE_BYTES: usize = 512;
/// Most events kept; later ones are only counted ([`ConsoleScan::dropped_events`]).
pub const MAX_EVENTS: usize = 32;
/// Lines kept after an event's headline. An x86 oops with registers and a short call trace fits.
pub const MAX_CONTEXT_LINES: usize = 48;
/// Lines kept of a panic, its first line included.
pub const MAX_PANIC_LINES: usize = 96;
/// Non-empty lines remembered for "what happened last".
pub const LAST_LINES: usize = 40;

const PANIC_PREFIX: &str = "Kernel panic - not syncing: ";
const PANIC_END: &str = "---[ end Kernel panic";
const TRACE_END: &str = "---[ end trace";

/// What kind of trouble the kernel reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// `BUG: ...` or `kernel BUG at FILE:LINE!`: the kernel detected a bug in itself.
    Bug,
    /// `Oops: ...`, `general protection fault ...`, `Unable to handle kernel ...`: a fault in the
    /// kernel, which killed the task that ran into it.
    Oops,
    /// `WARNING: CPU: N PID: N at FILE:LINE FUNCTION`: a `WARN()` fired; the kernel went on.
    Warning,
    /// A soft or hard lockup, an RCU stall or a task blocked for minutes.
    Stall,
    /// The OOM killer killed a process, or found nothing to kill.
    OutOfMemory,
    /// A report from a sanitizer: KASAN, KFENCE, KCSAN, KMSAN or UBSAN.
    Sanitizer,
}

/// One event, as the kernel printed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleEvent {
    /// What kind of trouble the headline reports.
    pub kind: EventKind,
    /// The line that identified the event, without its printk prefix (priority, timestamp).
    pub headline: String,
    /// The lines after it (registers, call trace...) up to the `---[ end trace` marker, the next
    /// event, a panic or [`MAX_CONTEXT_LINES`].
    pub context: Vec<String>,
}

/// A kernel panic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelPanic {
    /// The reason after "Kernel panic - not syncing: ", e.g. "Attempted to kill init!
    /// exitcode=0x00000000".
    pub headline: String,
    /// From the "Kernel panic" line to the `---[ end Kernel panic` marker (which a kernel booted
    /// with `panic=-1` reboots before printing) or [`MAX_PANIC_LINES`].
    pub lines: Vec<String>,
}

/// Classifies console lines as they arrive. Feed it every line with [`ConsoleScan::feed_line`].
#[derive(Debug, Default)]
pub struct ConsoleScan {
    /// The first panic the guest did not outlive (see [`ConsoleScan::guest_went_on`]).
    panic: Option<KernelPanic>,
    /// The panic is still collecting its lines.
    in_panic: bool,
    events: Vec<ConsoleEvent>,
    /// The last event is still collecting context.
    in_event: bool,
    dropped_events: usize,
    /// The last non-empty lines; trimmed back to [`LAST_LINES`] whenever it reaches twice that,
    /// so that it can be handed out as a slice.
    last: Vec<String>,
    /// A line with a `<PRI>` prefix has been seen: this kernel prints one on every line of every record,
    /// so from now on a line without one is not the kernel's (user space wrote it to `/dev/console`).
    kernel_prefixes: bool,
}

impl ConsoleScan {
    /// A scanner that has seen no line yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one console line (without its `\n`), as decoded from the guest.
    pub fn feed_line(&mut self, raw: &str) {
        let (priority, line) = split_printk_prefix(raw.trim_end());
        // Only the kernel's own lines (and lines that do not say who wrote them) start or end a panic
        // or an event; a record user space wrote to /dev/kmsg is just a line, kept like any other.
        self.kernel_prefixes |= priority.is_some();
        let from_user_space = match priority {
            Some(priority) => !priority.is_kernel(),
            None => self.kernel_prefixes,
        };
        if !line.trim().is_empty() {
            if self.last.len() >= 2 * LAST_LINES {
                self.last.drain(..LAST_LINES);
            }
            self.last.push(cut(line));
        }

        if self.in_panic {
            let panic = self.panic.as_mut().expect("in_panic implies a panic");
            panic.lines.push(cut(line));
            let ended = !from_user_space && line.starts_with(PANIC_END);
            self.in_panic = panic.lines.len() < MAX_PANIC_LINES && !ended;
        }

        let headline = if from_user_space { None } else { classify(line) };
        match headline {
            Some(Headline::Panic(reason)) => {
                self.in_event = false;
                if self.panic.is_none() {
                    self.panic = Some(KernelPanic { headline: cut(reason), lines: vec![cut(line)] });
                    self.in_panic = true;
                }
            }
            Some(Headline::Event(kind)) if !self.continues_open_event(kind) => {
                if self.events.len() < MAX_EVENTS {
                    let headline = cut(line);
                    self.events.push(ConsoleEvent { kind, headline, context: Vec::new() });
                    self.in_event = true;
                } else {
                    self.dropped_events += 1;
                    self.in_event = false;
                }
            }
            Some(Headline::Event(_)) | None if self.in_event => {
                let event = self.events.last_mut().expect("in_event implies an event");
                event.context.push(cut(line));
                let ended = !from_user_space && line.starts_with(TRACE_END);
                self.in_event = event.context.len() < MAX_CONTEXT_LINES && !ended;
            }
            Some(Headline::Event(_)) | None => {}
        }
    }

    /// The first kernel panic, if there was one and the guest did not go on after it.
    pub fn panic(&self) -> Option<&KernelPanic> {
        self.panic.as_ref()
    }

    /// The guest's init reported progress after every line fed so far (on the result channel: a
    /// probe's end, `ksnap-done`): a panic seen before it did not stop the kernel, which a panic does
    /// (interrupts off, the other CPUs stopped, a reboot or a halt). So that panic headline was not
    /// the kernel's (user space wrote it to `/dev/console`, or to `/dev/kmsg` on a kernel too old to
    /// print who wrote a line); it is forgotten, and a later panic is caught again.
    pub fn guest_went_on(&mut self) {
        self.panic = None;
        self.in_panic = false;
    }

    /// Oops/BUG/WARNING and similar events, in order, at most [`MAX_EVENTS`].
    pub fn events(&self) -> &[ConsoleEvent] {
        &self.events
    }

    /// Events seen after [`MAX_EVENTS`] were kept.
    pub fn dropped_events(&self) -> usize {
        self.dropped_events
    }

    /// The last non-empty lines, oldest first, at most [`LAST_LINES`], without printk prefixes (priority,
    /// timestamp), as a person reads them.
    pub fn last_lines(&self) -> &[String] {
        &self.last[self.last.len().saturating_sub(LAST_LINES)..]
    }

    /// An oops right after a BUG line is the same incident: x86 prints `BUG: kernel NULL pointer
    /// dereference` and then `Oops: 0000 [#1] ...`, and `kernel BUG at ...!` is followed by
    /// `Oops: invalid opcode` (or `invalid opcode:` before 6.9).
    fn continues_open_event(&self, kind: EventKind) -> bool {
        let open = self.events.last().filter(|_| self.in_event);
        kind == EventKind::Oops && open.is_some_and(|event| matches!(event.kind, EventKind::Bug | EventKind::Oops))
    }
}

/// A line that starts something.
#[derive(Debug)]
enum Headline<'a> {
    Panic(&'a str),
    Event(EventKind),
}

/// How an oops begins: x86 since 6.9 prefixes every `die()` with "Oops: "; older x86 kernels
/// start with the trap's name; arm and arm64 say "Unable to handle kernel ..." or "Internal
/// error: Oops".
const OOPS_PREFIXES: &[&str] =
    &["Oops: ", "general protection fault", "invalid opcode: ", "Unable to handle kernel ", "Internal error: Oops"];

/// The sanitizers that report through `BUG: NAME: ...` (UBSAN has its own `UBSAN: ` prefix).
const SANITIZER_BUGS: &[&str] = &["KASAN:", "KFENCE:", "KCSAN:", "KMSAN:"];

const OUT_OF_MEMORY_PREFIXES: &[&str] =
    &["Out of memory: ", "Out of memory and no killable processes", "Memory cgroup out of memory: "];

/// Recognizes the first line of a panic or an event, by the kernel's own formats.
fn classify(line: &str) -> Option<Headline<'_>> {
    if let Some(reason) = line.strip_prefix(PANIC_PREFIX) {
        return Some(Headline::Panic(reason));
    }
    let starts_with_any = |prefixes: &[&str]| prefixes.iter().any(|p| line.starts_with(p));
    // The soft lockup detector prints "watchdog: BUG: soft lockup", before 4.x "BUG: soft lockup".
    let after_watchdog = line.strip_prefix("watchdog: ").unwrap_or(line);
    let kind = if let Some(rest) = line.strip_prefix("WARNING: ") {
        if !is_warning(rest) {
            return None;
        }
        EventKind::Warning
    } else if let Some(bug) = after_watchdog.strip_prefix("BUG: ") {
        if bug.starts_with("soft lockup") || bug.starts_with("workqueue lockup") {
            EventKind::Stall
        } else if SANITIZER_BUGS.iter().any(|s| bug.starts_with(s)) {
            EventKind::Sanitizer
        } else {
            EventKind::Bug
        }
    } else if line.starts_with("kernel BUG at ") {
        EventKind::Bug
    } else if line.starts_with("UBSAN: ") {
        EventKind::Sanitizer
    } else if starts_with_any(OOPS_PREFIXES) {
        EventKind::Oops
    } else if is_stall(line) {
        EventKind::Stall
    } else if starts_with_any(OUT_OF_MEMORY_PREFIXES) {
        EventKind::OutOfMemory
    } else {
        return None;
    };
    Some(Headline::Event(kind))
}

/// What follows "WARNING: " in `__warn()`: "CPU: 0 PID: 1 at ..." on every kernel ksnap boots,
/// or the shorter "FILE:LINE at ..." and "at ..." proposed upstream in 2025 (the latter is also
/// what 2.6 printed).
fn is_warning(rest: &str) -> bool {
    if let Some(cpu) = rest.strip_prefix("CPU: ") {
        return split_number(cpu).and_then(|(_, after)| after.strip_prefix(" PID: ")).and_then(split_number).is_some();
    }
    if rest.starts_with("at ") {
        return true;
    }
    let Some((location, after)) = rest.split_once(' ') else {
        return false;
    };
    let Some((file, line)) = location.rsplit_once(':') else {
        return false;
    };
    !file.is_empty() && split_number(line).is_some_and(|(_, tail)| tail.is_empty()) && after.starts_with("at ")
}

/// Hung tasks, RCU stalls and hard lockups (soft lockups are matched with the other `BUG:`s).
fn is_stall(line: &str) -> bool {
    if let Some(task) = line.strip_prefix("INFO: task ") {
        return task.contains(" blocked for more than ");
    }
    let rcu = line.strip_prefix("rcu: ").unwrap_or(line);
    if let Some(info) = rcu.strip_prefix("INFO: rcu") {
        // "rcu_preempt detected stalls on CPUs/tasks:", "rcu_sched self-detected stall on CPU"
        return info.contains("detected stall");
    }
    let watchdog = line.strip_prefix("NMI watchdog: ").unwrap_or(line);
    watchdog.starts_with("Watchdog detected hard LOCKUP")
}

/// Splits leading ASCII digits off `text`; `None` if there are none.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| text.split_at(digits))
}

/// A record's syslog priority, as printk prints it with `console_msg_format=syslog`: facility × 8 +
/// level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Priority(u16);

impl Priority {
    /// Whether the record is the kernel's own: facility 0, `LOG_KERN`, which `/dev/kmsg` never gives
    /// a record user space writes (kernel/printk/printk.c, `devkmsg_write`).
    fn is_kernel(self) -> bool {
        self.0 >> 3 == 0
    }
}

/// Splits what printk puts before the message off a console line: the `<PRI>` syslog priority of
/// `console_msg_format=syslog` (also what `dmesg -r` prints), the `[    1.234567]` timestamp and the
/// `[    T1]` caller id of `CONFIG_PRINTK_CALLER`, each optional, in that order.
fn split_printk_prefix(line: &str) -> (Option<Priority>, &str) {
    // The kernel prints facility (8 bits) × 8 + level: at most 2047.
    let is_priority = |inner: &str| inner.len() <= 4 && inner.bytes().all(|b| b.is_ascii_digit());
    let (priority, mut rest) = match bracketed(line, '<', '>', is_priority) {
        Some(after) => {
            let digits = &line[1..line.len() - after.len() - 1];
            (digits.trim().parse().ok().map(Priority), after)
        }
        None => (None, line),
    };
    let mut stamped = false;
    if let Some(after_time) = bracketed(rest, '[', ']', is_timestamp) {
        rest = after_time;
        stamped = true;
    }
    if let Some(after_caller) = bracketed(rest, '[', ']', is_caller_id) {
        rest = after_caller;
        stamped = true;
    }
    if stamped {
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    (priority, rest)
}

/// If `text` starts with `open`...`close` (short, as printk prefixes are) and the trimmed inside
/// passes `valid`, the text after it.
fn bracketed(text: &str, open: char, close: char, valid: impl Fn(&str) -> bool) -> Option<&str> {
    let inner_and_rest = text.strip_prefix(open)?;
    let end = inner_and_rest.get(..24).unwrap_or(inner_and_rest).find(close)?;
    let inner = inner_and_rest[..end].trim();
    (!inner.is_empty() && valid(inner)).then(|| &inner_and_rest[end + close.len_utf8()..])
}

/// `1.234567`: seconds since boot.
fn is_timestamp(inner: &str) -> bool {
    let Some((secs, micros)) = inner.split_once('.') else {
        return false;
    };
    [secs, micros].iter().all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `T123` (task) or `C1` (CPU).
fn is_caller_id(inner: &str) -> bool {
    inner.strip_prefix(['T', 'C']).is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// `line` as kept: at most [`MAX_LINE_BYTES`], cut on a character boundary, marked when cut.
fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.to_owned();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Scans a real console capture; `tests/data/README.md` says where each comes from.
    macro_rules! scan {
        ($name:literal) => {{
            let mut scan = ConsoleScan::new();
            for line in include_str!(concat!("../tests/data/console/", $name)).lines() {
                scan.feed_line(line);
            }
            scan
        }};
    }

    fn scan_lines(lines: &[&str]) -> ConsoleScan {
        let mut scan = ConsoleScan::new();
        for line in lines {
            scan.feed_line(line);
        }
        scan
    }

    fn kind_of(line: &str) -> Option<EventKind> {
        match classify(line) {
            Some(Headline::Event(kind)) => Some(kind),
            _ => None,
        }
    }

    #[test]
    fn debian_6_1_init_exits() {
        let scan = scan!("debian-6.1-init-exit.log");
        let panic = scan.panic().expect("a panic");
        assert_eq!(panic.headline, "Attempted to kill init! exitcode=0x00000000");
        assert_eq!(panic.lines[0], "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000");
        assert_eq!(panic.lines[1], "CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2");
        assert!(panic.lines.contains(&" dump_stack_lvl+0x44/0x5c".to_owned()), "{:#?}", panic.lines);
        assert!(panic.lines.last().unwrap().starts_with("Kernel Offset: 0x1de00000"));
        assert!(scan.events().is_empty(), "{:#?}", scan.events());
        assert!(scan.last_lines().contains(&"hello from init".to_owned()));
        assert_eq!(scan.last_lines().last(), panic.lines.last());
    }

    #[test]
    fn debian_6_12_sysrq_crash() {
        let scan = scan!("debian-6.12-sysrq-crash.log");
        let panic = scan.panic().expect("a panic");
        assert_eq!(panic.headline, "sysrq triggered crash");
        assert!(panic.lines[1].starts_with("CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.117"));
        assert!(panic.lines.contains(&"RIP: 0033:0x47b7a0".to_owned()));
        assert!(scan.events().is_empty(), "{:#?}", scan.events());
        assert!(scan.last_lines().contains(&"sysrq: Trigger a crash".to_owned()));
    }

    #[test]
    fn warning_then_panic_on_warn_with_caller_ids() {
        let scan = scan!("syzbot-6.9-warning-panic-on-warn.log");
        let [warning] = scan.events() else { panic!("{:#?}", scan.events()) };
        assert_eq!(warning.kind, EventKind::Warning);
        assert_eq!(warning.headline, "WARNING: CPU: 1 PID: 1 at lib/refcount.c:31 refcount_warn_saturate+0xfa/0x1d0");
        assert_eq!(warning.context[0], "Modules linked in:");
        assert!(warning.context.contains(&"RIP: 0010:refcount_warn_saturate+0xfa/0x1d0".to_owned()));
        assert_eq!(warning.context.last().unwrap(), " </TASK>", "the panic ends the warning");
        let panic = scan.panic().expect("panic_on_warn");
        assert_eq!(panic.headline, "kernel: panic_on_warn set ...");
        assert_eq!(panic.lines.last().unwrap(), "Rebooting in 86400 seconds..");
    }

    #[test]
    fn null_pointer_bug_and_its_oops_are_one_event() {
        let scan = scan!("zfs-5.17-null-deref-oops.log");
        let [bug] = scan.events() else { panic!("{:#?}", scan.events()) };
        assert_eq!(bug.kind, EventKind::Bug);
        assert_eq!(bug.headline, "BUG: kernel NULL pointer dereference, address: 0000000000000020");
        assert_eq!(bug.context[0], "#PF: supervisor read access in kernel mode");
        assert_eq!(bug.context[3], "Oops: 0000 [#1] PREEMPT SMP PTI");
        assert!(bug.context.contains(&"RIP: 0010:zap_leaf_lookup+0x4d/0x170 [zfs]".to_owned()));
        assert!(scan.panic().is_none());
    }

    #[test]
    fn kernel_bug_context_ends_at_the_trace_end_marker() {
        let scan = scan!("netdev-6.10-kernel-bug.log");
        let [bug] = scan.events() else { panic!("{:#?}", scan.events()) };
        assert_eq!(bug.kind, EventKind::Bug);
        assert_eq!(bug.headline, "kernel BUG at arch/x86/kernel/jump_label.c:73!");
        assert_eq!(bug.context[0], "Oops: invalid opcode: 0000 [#1] PREEMPT SMP KASAN NOPTI");
        assert_eq!(bug.context.last().unwrap(), "---[ end trace 0000000000000000 ]---");
        assert_eq!(scan.last_lines().last().unwrap(), "RIP: 0010:__jump_label_patch+0x2f6/0x350");
    }

    #[test]
    fn userspace_lookalikes_are_not_kernel_events() {
        let scan = scan_lines(&[
            "ksnap: WARNING is a word",
            "WARNING: this is userspace talking",
            "WARNING: CPU: lots PID: many",
            "warning: CPU: 0 PID: 1 at x.c:1 f",
            "BUGS: none",
            "my Oops: here",
            "error: Kernel panic - not syncing: quoted",
            "[    1.000000] WARNING: the thing",
            "Out of memory? no",
            "INFO: task list printed",
        ]);
        assert!(scan.events().is_empty(), "{:#?}", scan.events());
        assert!(scan.panic().is_none());
        assert_eq!(scan.last_lines().len(), 10);
    }

    #[test]
    fn kernel_formats_are_classified() {
        use EventKind::*;
        let cases = [
            ("WARNING: CPU: 3 PID: 4242 at mm/page_alloc.c:4545 __alloc_pages+0x2c4/0x340", Some(Warning)),
            ("WARNING: kernel/sched/core.c:123 at foo+0x1/0x2, CPU#0: init/1", Some(Warning)),
            ("WARNING: at kernel/foo.c:12 bar()", Some(Warning)),
            ("BUG: unable to handle page fault for address: ffffc90000a3f000", Some(Bug)),
            ("BUG: scheduling while atomic: swapper/0/0/0x00000002", Some(Bug)),
            ("kernel BUG at mm/slub.c:4417!", Some(Bug)),
            ("Oops: general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] PREEMPT SMP KASAN NOPTI", Some(Oops)),
            ("general protection fault: 0000 [#1] SMP PTI", Some(Oops)),
            ("invalid opcode: 0000 [#1] SMP NOPTI", Some(Oops)),
            ("Unable to handle kernel paging request at virtual address dead000000000108", Some(Oops)),
            ("Internal error: Oops: 17 [#2] ARM", Some(Oops)),
            ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]", Some(Stall)),
            ("BUG: soft lockup - CPU#1 stuck for 61s! [kworker/1:1:32]", Some(Stall)),
            ("BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!", Some(Stall)),
            ("INFO: task kworker/0:1:12 blocked for more than 120 seconds.", Some(Stall)),
            ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", Some(Stall)),
            ("INFO: rcu_sched self-detected stall on CPU", Some(Stall)),
            ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", Some(Stall)),
            ("Out of memory: Killed process 1234 (probe) total-vm:1048576kB, anon-rss:1000000kB", Some(OutOfMemory)),
            ("Out of memory and no killable processes...", Some(OutOfMemory)),
            ("Memory cgroup out of memory: Killed process 99 (x)", Some(OutOfMemory)),
            ("BUG: KASAN: slab-use-after-free in kfree+0x1/0x2", Some(Sanitizer)),
            ("BUG: KFENCE: out-of-bounds read in test+0x1/0x2", Some(Sanitizer)),
            ("UBSAN: array-index-out-of-bounds in fs/foo.c:12:34", Some(Sanitizer)),
            ("------------[ cut here ]------------", None),
            ("RIP: 0010:refcount_warn_saturate+0xfa/0x1d0", None),
            ("watchdog: watchdog0: watchdog did not stop!", None),
        ];
        for (line, kind) in cases {
            assert_eq!(kind_of(line), kind, "{line}");
        }
    }

    #[test]
    fn printk_prefixes_are_stripped() {
        let cases = [
            ("[    1.234567] Run /init as init process", None, "Run /init as init process"),
            ("[ 3846.639479]  dump_stack+0x1/0x2", None, " dump_stack+0x1/0x2"),
            ("<4>[    7.727704] WARNING: CPU: 1 PID: 1 at x.c:1 f", Some(4), "WARNING: CPU: 1 PID: 1 at x.c:1 f"),
            ("<14>[    7.727704] hello", Some(14), "hello"),
            ("<0>Kernel panic - not syncing: no timestamp", Some(0), "Kernel panic - not syncing: no timestamp"),
            ("<2047>[    1.000000][    T1] x", Some(2047), "x"),
            ("<6>[    T1] caller id only", Some(6), "caller id only"),
            ("[    8.119694][    T1] refcount_t: x", None, "refcount_t: x"),
            ("[   12.000000][   C3] NMI backtrace", None, "NMI backtrace"),
            ("<12345>[    1.000000] five digits", None, "<12345>[    1.000000] five digits"),
            ("<-1>[    1.000000] x", None, "<-1>[    1.000000] x"),
            ("<>[    1.000000] x", None, "<>[    1.000000] x"),
            ("<4 x", None, "<4 x"),
            ("[] not a timestamp", None, "[] not a timestamp"),
            ("[1.x] nope", None, "[1.x] nope"),
            ("[    1.0]", None, ""),
            ("plain", None, "plain"),
            ("[", None, "["),
            ("<", None, "<"),
            (
                "[\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}]",
                None,
                "[\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}]",
            ),
        ];
        for (raw, priority, message) in cases {
            assert_eq!(split_printk_prefix(raw), (priority.map(Priority), message), "{raw:?}");
        }
    }

    #[test]
    fn the_kernel_is_facility_0_and_user_space_any_other() {
        // What `echo '<0>…' > /dev/kmsg` prints: the kernel made the facility LOG_USER (1), level 0 stays.
        assert!(Priority(0).is_kernel() && Priority(7).is_kernel());
        assert!(!Priority(8).is_kernel() && !Priority(14).is_kernel() && !Priority(2047).is_kernel());
    }

    #[test]
    fn a_kernel_panic_at_facility_0_is_caught() {
        let scan = scan_lines(&[
            "<0>[    5.100000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000",
            "<4>[    5.100001] CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.117 #1",
            "<0>[    5.100002] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000 ]---",
        ]);
        let panic = scan.panic().expect("a panic");
        assert_eq!(panic.headline, "Attempted to kill init! exitcode=0x00000000");
        assert_eq!(panic.lines.len(), 3);
        assert_eq!(panic.lines[1], "CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.117 #1");
        assert_eq!(scan.last_lines()[0], "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000");
    }

    #[test]
    fn user_space_records_in_the_kernels_words_are_only_lines() {
        // What `fault kmsg-forgery` writes to /dev/kmsg, as the console shows it: `<0>` became `<8>`.
        let forged = [
            "<8>[    3.000000] Kernel panic - not syncing: forged",
            "<12>[    3.000001] WARNING: CPU: 0 PID: 1 at mm/forged.c:1 forged+0x0/0x10",
            "<8>[    3.000002] Oops: general protection fault, probably for non-canonical address 0xdead000000000000: 0000 [#1] SMP",
            "<11>[    3.000003] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "<11>[    3.000004] Out of memory: Killed process 1 (forged) total-vm:0kB",
            "<9>[    3.000005] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [forged:1]",
            "<14>[    3.000006] UBSAN: array-index-out-of-bounds in forged.c:1:1",
        ];
        let scan = scan_lines(&forged);
        assert!(scan.panic().is_none(), "{:#?}", scan.panic());
        assert!(scan.events().is_empty(), "{:#?}", scan.events());
        // Shown to people as they were written, without the prefix.
        assert_eq!(scan.last_lines()[0], "Kernel panic - not syncing: forged");
        assert_eq!(scan.last_lines().len(), forged.len());
    }

    #[test]
    fn user_space_cannot_end_a_kernel_event_or_panic() {
        let scan = scan_lines(&[
            "<4>[    1.000000] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            "<12>[    1.000001] ---[ end trace 0000000000000000 ]---",
            "<4>[    1.000002] RIP: 0010:f+0x1/0x2",
            "<4>[    1.000003] ---[ end trace 0000000000000000 ]---",
            "<4>[    1.000004] after the trace",
            "<0>[    2.000000] Kernel panic - not syncing: Fatal exception",
            "<8>[    2.000001] ---[ end Kernel panic - not syncing: Fatal exception ]---",
            "<0>[    2.000002] Kernel Offset: disabled",
        ]);
        let [warning] = scan.events() else { panic!("{:#?}", scan.events()) };
        assert_eq!(
            warning.context,
            ["---[ end trace 0000000000000000 ]---", "RIP: 0010:f+0x1/0x2", "---[ end trace 0000000000000000 ]---"]
        );
        assert_eq!(scan.panic().unwrap().lines.last().unwrap(), "Kernel Offset: disabled");
    }

    #[test]
    fn continuation_lines_of_a_kernel_event_each_carry_the_priority() {
        // With console_msg_format=syslog every line of a multi-line record, and every record of a
        // splat, starts with its own `<PRI>`; the context reads as without it. A line without one
        // (init writing to /dev/console meanwhile) is still part of what followed the headline.
        let scan = scan_lines(&[
            "<1>[    4.000000] BUG: kernel NULL pointer dereference, address: 0000000000000020",
            "<1>[    4.000001] #PF: supervisor read access in kernel mode",
            "<4>[    4.000002] Oops: 0000 [#1] PREEMPT SMP PTI",
            "ksnap-init: running probe p",
            "<4>[    4.000003] Call Trace:",
            "<4>[    4.000004]  <TASK>",
        ]);
        let [bug] = scan.events() else { panic!("{:#?}", scan.events()) };
        assert_eq!(bug.kind, EventKind::Bug);
        assert_eq!(bug.headline, "BUG: kernel NULL pointer dereference, address: 0000000000000020");
        assert_eq!(
            bug.context,
            [
                "#PF: supervisor read access in kernel mode",
                "Oops: 0000 [#1] PREEMPT SMP PTI",
                "ksnap-init: running probe p",
                "Call Trace:",
                " <TASK>"
            ]
        );
    }

    #[test]
    fn lines_without_a_priority_are_read_by_their_format_alone() {
        // init's own lines and a kernel that does not print priorities, as before.
        let scan = scan_lines(&[
            "ksnap-init: probe spoof: exited 0",
            "[    1.000000] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            "Kernel panic - not syncing: no prefix",
        ]);
        assert_eq!(scan.events().len(), 1);
        assert_eq!(scan.panic().unwrap().headline, "no prefix");
        assert_eq!(scan.last_lines()[0], "ksnap-init: probe spoof: exited 0");
    }

    #[test]
    fn a_panic_the_guest_went_on_after_is_forgotten_and_a_later_one_caught() {
        let mut scan = scan_lines(&["Kernel panic - not syncing: written to /dev/console", "still collecting"]);
        assert!(scan.panic().is_some());
        scan.guest_went_on();
        assert!(scan.panic().is_none());
        scan.feed_line("ksnap-init: probe spoof: exited 0");
        scan.feed_line("<0>[    9.000000] Kernel panic - not syncing: the real one");
        scan.feed_line("<4>[    9.000001] Kernel Offset: disabled");
        let panic = scan.panic().expect("the later panic");
        assert_eq!(panic.headline, "the real one");
        assert_eq!(panic.lines, ["Kernel panic - not syncing: the real one", "Kernel Offset: disabled"]);
        // Progress reported before a panic says nothing about it.
        let mut scan = ConsoleScan::new();
        scan.guest_went_on();
        scan.feed_line("<0>[    9.000000] Kernel panic - not syncing: after the progress");
        assert!(scan.panic().is_some());
    }

    #[test]
    fn carriage_returns_from_the_serial_port_are_dropped() {
        let scan = scan_lines(&["[    1.5] Kernel panic - not syncing: VFS: Unable to mount root fs\r", "\r"]);
        assert_eq!(scan.panic().unwrap().headline, "VFS: Unable to mount root fs");
        assert_eq!(scan.last_lines(), ["Kernel panic - not syncing: VFS: Unable to mount root fs"]);
    }

    #[test]
    fn panic_collection_stops_at_the_end_marker_and_keeps_the_first_panic() {
        let scan = scan_lines(&[
            "Kernel panic - not syncing: Fatal exception",
            "Kernel Offset: disabled",
            "---[ end Kernel panic - not syncing: Fatal exception ]---",
            "after the end",
            "Kernel panic - not syncing: a second one",
        ]);
        let panic = scan.panic().unwrap();
        assert_eq!(panic.headline, "Fatal exception");
        assert_eq!(panic.lines.len(), 3);
    }

    #[test]
    fn an_oops_after_a_warning_is_a_new_event() {
        let scan = scan_lines(&[
            "WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            "Modules linked in:",
            "Oops: 0000 [#1] SMP",
            "RIP: 0010:g+0x3/0x4",
        ]);
        let kinds: Vec<_> = scan.events().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Warning, EventKind::Oops]);
        assert_eq!(scan.events()[1].context, ["RIP: 0010:g+0x3/0x4"]);
    }

    #[test]
    fn everything_kept_is_bounded() {
        let mut scan = ConsoleScan::new();
        for i in 0..1000 {
            scan.feed_line(&format!("[ {i}.000000] WARNING: CPU: 0 PID: {i} at a.c:1 f+0x1/0x2"));
            for _ in 0..100 {
                scan.feed_line(" frame+0x1/0x2");
            }
        }
        assert_eq!(scan.events().len(), MAX_EVENTS);
        assert_eq!(scan.dropped_events(), 1000 - MAX_EVENTS);
        assert!(scan.events().iter().all(|e| e.context.len() == MAX_CONTEXT_LINES));
        assert_eq!(scan.last_lines().len(), LAST_LINES);

        scan.feed_line("Kernel panic - not syncing: now");
        let long = "é".repeat(1 << 16);
        for _ in 0..MAX_PANIC_LINES + 10 {
            scan.feed_line(&long);
        }
        let panic = scan.panic().unwrap();
        assert_eq!(panic.lines.len(), MAX_PANIC_LINES);
        let kept = &panic.lines[1];
        assert!(kept.len() <= MAX_LINE_BYTES + '…'.len_utf8() && kept.ends_with('…'));
        assert!(scan.last_lines().iter().all(|l| l.len() <= MAX_LINE_BYTES + 3));
        assert!(scan.last.len() < 2 * LAST_LINES);
    }

    proptest! {
        // Generating arbitrary Unicode is slow in debug builds; 64 cases of 200 lines suffice.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_panics_and_stays_bounded(lines in prop::collection::vec("\\PC{0,80}", 0..200)) {
            let mut scan = ConsoleScan::new();
            for line in &lines {
                scan.feed_line(line);
            }
            prop_assert!(scan.events().len() <= MAX_EVENTS);
            prop_assert!(scan.last_lines().len() <= LAST_LINES);
            prop_assert!(scan.panic().map_or(0, |p| p.lines.len()) <= MAX_PANIC_LINES);
        }
    }
}
