//! The result-channel parser takes any bytes without panicking: garbage is a protocol error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A probe called `selftest` is read as a kernel selftest, any other as KTAP: both readers run.
    let formats = [("selftest".to_owned(), ksnap_readers::channel::Format::Kselftest)];
    let mut channel = ksnap_readers::channel::ResultChannel::new().with_formats(formats);
    for line in data.split(|&b| b == b'\n') {
        match channel.feed_line(line) {
            Err(_) => break,
            // A stderr line is kept as the probe's, never as a control line or KTAP.
            Ok(ksnap_readers::channel::Fed::Stderr { probe, .. }) => {
                assert_eq!(channel.current_probe(), Some(probe.as_str()))
            }
            Ok(_) => {}
        }
    }
    let _ = channel.into_report();
});
