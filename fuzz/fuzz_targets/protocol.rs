//! The result-channel parser takes any bytes without panicking: garbage is a protocol error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut channel = ksnap_vm::protocol::ResultChannel::new();
    for line in data.split(|&b| b == b'\n') {
        if channel.feed(line).is_err() {
            break;
        }
    }
    let _ = channel.into_report();
});
