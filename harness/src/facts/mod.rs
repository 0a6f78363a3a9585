//! Facts: what a run observed, flattened to `PROBE.TEST.KEY = VALUE` — the body of a snapshot and the
//! unit every comparison (diff, report, history, flakes) works on. The folder holds what is done with
//! them: the snapshot a cell's facts are written to and read back from ([`snapshot`]), and the flakes
//! between repeated runs ([`repeat`]), the columns snapshots are compared by ([`mod@column`]), and the
//! release where a fact changes, found by bisecting ([`bisect`]).

use std::collections::BTreeMap;

use ksnap_readers::channel::{ProbeRun, Reading};
use ksnap_readers::kselftest::SelftestReport;
use ksnap_readers::ktap::KtapTest;

pub mod bisect;
pub mod column;
pub mod history;
pub mod repeat;
pub mod snapshot;
pub mod sweep;
pub mod timeline;

/// One observed fact or test result, keyed `PROBE.TEST.KEY` (a test's own result is `PROBE.TEST`).
pub type Facts = BTreeMap<String, String>;

/// A fact whose value differs between two sets of facts (two bisection candidates; a snapshot and a run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FactChange {
    pub key: String,
    /// `None`: the fact is absent on that side.
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Every fact that differs between `old` and `new`, in key order, but `except`.
pub fn fact_changes(old: &Facts, new: &Facts, except: Option<&str>) -> Vec<FactChange> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).filter(|k| Some(k.as_str()) != except).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| FactChange { key: k.clone(), old: old.get(k).cloned(), new: new.get(k).cloned() })
        .collect()
}

/// Facts of every probe of a completed run, flattened. Subtests nest with `.`. A probe read as a kernel
/// selftest ([`Reading::Kselftest`]) has one fact for the binary (`PROBE = ok`, from its exit status) and
/// one per test case (`PROBE.CASE = …`), read by [`ksnap_readers::kselftest`].
pub fn facts_of(probes: &[ProbeRun]) -> Facts {
    let mut facts = Facts::new();
    for probe in probes {
        let doc = match &probe.reading {
            Reading::Kselftest(report) => {
                selftest_facts(probe, report, &mut facts);
                continue;
            }
            Reading::Ktap(doc) => doc,
        };
        // How the probe itself fared is a fact too: a crash or a broken KTAP stream must show in a diff.
        if probe.end != ksnap_readers::channel::ProbeEnd::Exited(0) {
            facts.insert(format!("{}.(process)", probe.name), probe.end.to_string());
        }
        if let Some(bytes) = probe.truncated_bytes {
            facts.insert(format!("{}.(output)", probe.name), format!("truncated, {bytes} bytes discarded"));
        }
        if !doc.problems.is_empty() {
            facts.insert(format!("{}.(ktap)", probe.name), doc.problems.join("; "));
        }
        for test in &doc.tests {
            collect_test(&format!("{}.{}", probe.name, test.name), test, &mut facts);
        }
    }
    facts
}

fn selftest_facts(probe: &ProbeRun, report: &SelftestReport, facts: &mut Facts) {
    facts.insert(probe.name.clone(), report.binary.to_string());
    if let Some(bytes) = probe.truncated_bytes {
        facts.insert(format!("{}.(output)", probe.name), format!("truncated, {bytes} bytes discarded"));
    }
    if !report.problems.is_empty() {
        facts.insert(format!("{}.(tap)", probe.name), report.problems.join("; "));
    }
    for case in &report.cases {
        facts.insert(format!("{}.{}", probe.name, case.key), case_value(case));
    }
}

/// A case's value. A failure named by its context line (`# [INFO] PTRACE write access`) says what its
/// description said (`not ok: write() failed`): such a test prints a fixed verdict per way of failing,
/// which tells a failure of the thing tested from one of the test's setup.
fn case_value(case: &ksnap_readers::kselftest::SelftestCase) -> String {
    let verdict = &case.description;
    let named_by_context = !verdict.is_empty() && !case.key.contains(&ksnap_readers::kselftest::case_key(verdict));
    match &case.result {
        ksnap_readers::kselftest::CaseResult::Fail if named_by_context => format!("not ok: {verdict}"),
        result => result.to_string(),
    }
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
    fn selftest_failures_named_by_their_context_keep_their_verdict() {
        let stdout =
            "TAP version 13\n1..2\n# [INFO] PTRACE write access\nnot ok 1 write() failed\nnot ok 2 Test soft-dirty\n";
        let probes = vec![ProbeRun {
            name: "mkdirty".into(),
            end: ksnap_readers::channel::ProbeEnd::Exited(1),
            output: stdout.lines().map(String::from).collect(),
            truncated_bytes: None,
            stderr: vec![],
            stderr_truncated_bytes: None,
            reading: ksnap_readers::channel::Format::Kselftest.read(
                &stdout.lines().map(String::from).collect::<Vec<_>>(),
                &ksnap_readers::channel::ProbeEnd::Exited(1),
            ),
        }];
        let facts = facts_of(&probes);
        let facts: Vec<(&str, &str)> = facts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            facts,
            [
                ("mkdirty", "not ok"),
                ("mkdirty.ptrace_write_access", "not ok: write() failed"),
                ("mkdirty.test_soft-dirty", "not ok")
            ]
        );
    }

    #[test]
    fn facts_flatten_tests_and_subtests() {
        let probes = vec![ProbeRun {
            name: "env".into(),
            end: ksnap_readers::channel::ProbeEnd::Exited(0),
            output: vec![],
            truncated_bytes: None,
            stderr: vec!["# fact: forged = 1".into(), "not ok 2 forged".into()],
            stderr_truncated_bytes: Some(7),
            reading: Reading::Ktap(ksnap_readers::ktap::parse(
                "KTAP version 1\n1..1\n# fact: bytes = 4096\nok 1 page_size\n",
            )),
        }];
        let facts = facts_of(&probes);
        assert_eq!(facts.get("env.page_size").map(String::as_str), Some("ok"));
        assert_eq!(facts.get("env.page_size.bytes").map(String::as_str), Some("4096"));
        assert_eq!(facts.len(), 2, "stderr is no fact, nor is its truncation: {facts:#?}");
    }
}
