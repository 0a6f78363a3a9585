//! The console scanner takes any kernel console output without panicking and keeps bounded state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scan = ksnap_readers::console::ConsoleScan::new();
    for line in data.split(|&b| b == b'\n') {
        scan.feed_line(&String::from_utf8_lossy(line));
    }
    let _ = (scan.panic(), scan.events().len(), scan.last_lines().len());
});
