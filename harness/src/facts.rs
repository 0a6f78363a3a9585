//! Facts: what a run observed, flattened to `PROBE.TEST.KEY = VALUE` — the body of a snapshot and the
//! unit every comparison (diff, report, history, flakes) works on.

use std::collections::BTreeMap;

use ksnap_vm::ktap::KtapTest;
use ksnap_vm::protocol::ProbeRun;

/// One observed fact or test result, keyed `PROBE.TEST.KEY` (a test's own result is `PROBE.TEST`).
pub type Facts = BTreeMap<String, String>;

/// Facts of every probe of a completed run, flattened. Subtests nest with `.`.
pub fn facts_of(probes: &[ProbeRun]) -> Facts {
    let mut facts = Facts::new();
    for probe in probes {
        // How the probe itself fared is a fact too: a crash or a broken KTAP stream must show in a diff.
        if probe.end != ksnap_vm::protocol::ProbeEnd::Exited(0) {
            facts.insert(format!("{}.(process)", probe.name), probe.end.to_string());
        }
        if let Some(bytes) = probe.truncated_bytes {
            facts.insert(format!("{}.(output)", probe.name), format!("truncated, {bytes} bytes discarded"));
        }
        if !probe.ktap.problems.is_empty() {
            facts.insert(format!("{}.(ktap)", probe.name), probe.ktap.problems.join("; "));
        }
        for test in &probe.ktap.tests {
            collect_test(&format!("{}.{}", probe.name, test.name), test, &mut facts);
        }
    }
    facts
}

fn collect_test(prefix: &str, test: &KtapTest, facts: &mut Facts) {
    facts.insert(prefix.to_string(), test.result.to_string());
    for (key, value) in &test.facts {
        facts.insert(format!("{prefix}.{key}"), value.clone());
    }
    for sub in &test.subtests {
        collect_test(&format!("{prefix}.{}", sub.name), sub, facts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_flatten_tests_and_subtests() {
        let probes = vec![ProbeRun {
            name: "env".into(),
            end: ksnap_vm::protocol::ProbeEnd::Exited(0),
            output: vec![],
            truncated_bytes: None,
            stderr: vec!["# fact: forged = 1".into(), "not ok 2 forged".into()],
            stderr_truncated_bytes: Some(7),
            ktap: ksnap_vm::ktap::parse("KTAP version 1\n1..1\n# fact: bytes = 4096\nok 1 page_size\n"),
        }];
        let facts = facts_of(&probes);
        assert_eq!(facts.get("env.page_size").map(String::as_str), Some("ok"));
        assert_eq!(facts.get("env.page_size.bytes").map(String::as_str), Some("4096"));
        assert_eq!(facts.len(), 2, "stderr is no fact, nor is its truncation: {facts:#?}");
    }
}
