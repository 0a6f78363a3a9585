//! The kselftest reader takes any selftest output without panicking (bytes decoded lossily and split
//! into lines, as the host relays them), whatever way the binary ended, and keeps its bounds.
#![no_main]

use std::collections::HashSet;
use std::time::Duration;

use ksnap_readers::kselftest::{self, MAX_CASES, MAX_KEY_LEN, MAX_PROBLEMS};
use ksnap_readers::channel::ProbeEnd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    // The way it ended from the input's length, so that the seeds stay plain captures.
    let end = match data.len() % 5 {
        0 => ProbeEnd::Exited(0),
        1 => ProbeEnd::Exited(1),
        2 => ProbeEnd::Exited(4),
        3 => ProbeEnd::Signaled(11),
        _ => ProbeEnd::TimedOut(Duration::from_millis(data.len() as u64)),
    };
    let report = kselftest::parse(&lines, &end);
    assert!(report.problems.len() <= MAX_PROBLEMS + 1);
    assert!(report.cases.len() <= MAX_CASES);
    let _ = report.binary.to_string();
    let mut keys = HashSet::new();
    for case in &report.cases {
        assert!(keys.insert(case.key.as_str()), "duplicate key {}", case.key);
        assert!(!case.key.is_empty() && case.key.len() <= MAX_KEY_LEN);
        assert!(case.key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')));
        let value = case.result.to_string();
        assert!(!value.contains(['\n', '\r']));
    }
});
