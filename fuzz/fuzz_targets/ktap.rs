//! The KTAP parser takes any probe output without panicking (bytes decoded lossily, as the host does).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let doc = ksnap_readers::ktap::parse(&String::from_utf8_lossy(data));
    // The caps hold whatever the input: problems are bounded, results render.
    assert!(doc.problems.len() <= ksnap_readers::ktap::MAX_PROBLEMS + 1);
    for test in &doc.tests {
        let _ = test.result.to_string();
    }
});
