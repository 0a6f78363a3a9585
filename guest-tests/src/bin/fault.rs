//! `fault MODE [ARG]`: misbehaves on purpose, for the host's failure-mode tests.
//!
//! As a probe:
//!   hang           sleep forever
//!   segv           die of a real SIGSEGV
//!   fork-hang      leave a child sleeping forever with stdout open, print a passing KTAP, exit 0
//!   flood BYTES    write BYTES bytes of lines of `x`
//!   garbage        write invalid UTF-8, NULs, terminal escapes and forged protocol lines, exit 0
//!   ktap-lie       KTAP that lies: plan 1..5 with 2 results, a duplicate number, a subtest never closed
//!   kmsg-forgery   write a kernel panic (at level 0), Oops, BUG and WARNING line to /dev/kmsg, report a
//!                  fact on stdout, exit 0: user space's records, which the kernel marks as such
//!   console-forgery
//!                  write a kernel panic line to /dev/console, report a fact on stdout, exit 0: the
//!                  console shows it as the kernel would, and the guest goes on
//!   fake-kernel-events
//!                  print a kernel panic, WARNING, Oops and BUG line, KTAP and forged protocol lines on
//!                  stderr, a passing KTAP on stdout, exit 0: none of it is the kernel's, nor KTAP
//!   oom            allocate and touch memory until the OOM killer ends it
//!
//! As PID 1 (the kernel passes the words after `--` on its command line to init):
//!   init-exit      exit at once, so that the kernel panics
//!   init-hang      sleep forever without a word
//!   init-garbage   write bytes that are not the protocol on the result channel, then power off

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::exit;
use std::time::Duration;

use ksnap_init::pid1;
use ksnap_probe::Ktap;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["hang"] | ["init-hang"] => sleep_forever(),
        ["segv"] => segv(),
        ["fork-hang"] => fork_hang(),
        ["flood", bytes] => match bytes.parse() {
            Ok(bytes) => flood(bytes),
            Err(_) => fail(&format!("flood: bad byte count {bytes:?}")),
        },
        ["garbage"] => garbage(),
        ["ktap-lie"] => ktap_lie(),
        ["kmsg-forgery"] => kmsg_forgery(),
        ["console-forgery"] => console_forgery(),
        ["fake-kernel-events"] => fake_kernel_events(),
        ["oom"] => oom(),
        ["init-exit"] => exit(0),
        ["init-garbage"] => init_garbage(),
        _ => fail(&format!("unknown mode {args:?}")),
    }
}

/// Written raw, not with the KTAP writer, which would not tell these lies.
fn ktap_lie() {
    let lies = "KTAP version 1\n1..5\nok 1 first\nok 1 first_again\n  KTAP version 1\n  1..3\n  ok 1 inner\n";
    print!("{lies}");
    std::io::stdout().flush().ok();
}

/// Records in the exact formats the host's console scanner looks for, each at the level the kernel
/// prints it (`<0>` asks for facility 0, `LOG_KERN`, which /dev/kmsg turns into `LOG_USER`). They reach
/// the console word for word, but they are user space's: no panic, no console event.
const KMSG_FORGERIES: &[&str] = &[
    "<0>Kernel panic - not syncing: forged",
    "<4>Oops: general protection fault, probably for non-canonical address 0xdead000000000000: 0000 [#1] SMP",
    "<1>BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "<4>WARNING: CPU: 0 PID: 1 at mm/ksnap_fault.c:1 ksnap_fault+0x0/0x10",
];

fn kmsg_forgery() {
    // One write is one record; one open file is rate-limited only past 10 records in 5 s.
    let written = std::fs::OpenOptions::new().write(true).open("/dev/kmsg").and_then(|mut kmsg| {
        KMSG_FORGERIES.iter().try_for_each(|record| kmsg.write_all(format!("{record}\n").as_bytes()))
    });
    if let Err(e) = written {
        fail(&format!("/dev/kmsg: {e}"));
    }
    let mut ktap = Ktap::begin(1);
    ktap.fact("records", KMSG_FORGERIES.len());
    ktap.ok("kmsg_forgery");
}

/// A line written to the console's tty is user space's, but nothing on it says so (init's own lines
/// arrive the same way): the host can only see that the guest went on after it.
const CONSOLE_FORGERY: &str = "Kernel panic - not syncing: forged on /dev/console";

fn console_forgery() {
    let written = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
        .and_then(|mut console| console.write_all(format!("{CONSOLE_FORGERY}\n").as_bytes()));
    if let Err(e) = written {
        fail(&format!("/dev/console: {e}"));
    }
    let mut ktap = Ktap::begin(1);
    ktap.fact("written", "yes");
    ktap.ok("console_forgery");
}

/// Lines in the exact formats the host's console scanner looks for, written where a probe's stderr
/// goes. They must stay probe output: no panic, no console event, no KTAP result, no control line.
const FAKE_KERNEL_EVENTS: &[&str] = &[
    "Kernel panic - not syncing: fake",
    "WARNING: CPU: 0 PID: 1 at fake.c:1 fake+0x0/0x0",
    "Oops: general protection fault, probably for non-canonical address 0xdead000000000000: 0000 [#1] SMP",
    "BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "Out of memory: Killed process 1 (fake) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0",
    "---[ end Kernel panic - not syncing: fake ]---",
    "not ok 1 forged_on_stderr",
    "# fact: forged = yes",
    "probe-end fake exit=1",
    "ksnap-done",
];

fn fake_kernel_events() {
    let mut err = std::io::stderr().lock();
    for line in FAKE_KERNEL_EVENTS {
        if writeln!(err, "{line}").and_then(|()| err.flush()).is_err() {
            exit(1);
        }
    }
    // A last line without a newline.
    let _ = write!(err, "fault: fake kernel events written");
    drop(err);
    Ktap::begin(1).ok("fake_kernel_events");
}

/// Touch fresh memory, 1 MiB at a time, until the OOM killer steps in.
fn oom() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("fault: {message}");
    exit(1)
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn segv() -> ! {
    // black_box hides the null from the optimiser, which may otherwise compile the store to
    // something other than a store (a trap instruction, say, which would be SIGILL).
    let null = std::hint::black_box(std::ptr::null_mut::<u8>());
    // SAFETY: not safe at all, on purpose: this store is the fault.
    unsafe { std::ptr::write_volatile(null, 1) };
    fail("writing through a null pointer did not fault")
}

fn fork_hang() {
    // SAFETY: single-threaded; the child only sleeps.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => sleep_forever(),
        _ => Ktap::begin(1).ok("fork_hang"),
    }
}

fn flood(mut bytes: u64) {
    // 64-byte lines, so that a 64 KiB block holds whole lines and every block ends with a newline.
    let mut block = [b'x'; 64 << 10];
    for line_end in block.iter_mut().skip(63).step_by(64) {
        *line_end = b'\n';
    }
    let mut out = std::io::stdout().lock();
    while bytes > 0 {
        let n = block.len().min(usize::try_from(bytes).unwrap_or(usize::MAX));
        if let Err(e) = out.write_all(&block[..n]) {
            fail(&format!("flood: {e}"));
        }
        bytes -= n as u64;
    }
    if let Err(e) = out.flush() {
        fail(&format!("flood: {e}"));
    }
}

fn garbage() {
    const GARBAGE: &[&[u8]] = &[
        b"invalid UTF-8: \xff\xfe \xc3\x28 \xe2\x82 \xf0\x9f\x92 \xed\xa0\x80\n",
        b"NUL bytes: \0\0\0 in the middle\0\n",
        b"\x1b[2J\x1b[H\x1b[31mscreen cleared, text red\x1b[0m\n",
        // Window title (OSC), full terminal reset, cursor position query.
        b"\x1b]0;window title\x07\x1bc\x1b[6n carriage\rreturn\r\n",
        // Forged control lines: init must relay them behind `| ` like any other output.
        b"probe-end garbage exit=0\nsummary probes=0 exited0=0 failed=0\nksnap-done\n",
        b"a last line without a newline \xff",
    ];
    let mut out = std::io::stdout().lock();
    for chunk in GARBAGE {
        if let Err(e) = out.write_all(chunk).and_then(|()| out.flush()) {
            fail(&format!("garbage: {e}"));
        }
    }
}

fn init_garbage() -> ! {
    if let Err(e) = pid1::mount("devtmpfs", "/dev", libc::MS_NOSUID) {
        fail(&e.to_string());
    }
    let mut channel = match pid1::open_serial("/dev/ttyS1") {
        Ok(channel) => channel,
        Err(e) => fail(&e.to_string()),
    };
    // xorshift64 with a fixed seed: reproducible bytes, with newlines now and then.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    if let Err(e) = channel.write_all(&bytes) {
        fail(&format!("/dev/ttyS1: {e}"));
    }
    fail(&pid1::power_off(&channel).to_string())
}
