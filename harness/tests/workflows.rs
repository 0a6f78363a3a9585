//! The GitHub Actions workflows — this repository's and the one `ksnap init` writes — checked for what
//! they promise: the cache of kernels keyed by ksnap.lock, the nextest shards covering 1..=N with the
//! same N, JUnit uploaded from where nextest's `ci` profile writes it, the report's page uploaded and its
//! summary in the job summary linking to the upload.
//! (No Actions runner here: this is what can be checked without one.)

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())).remove(0)
}

/// Every step of every job, with its job's name.
fn steps(workflow: &Yaml) -> Vec<(String, &Yaml)> {
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    jobs.iter()
        .flat_map(|(name, job)| {
            let name = name.as_str().unwrap().to_string();
            job["steps"].as_vec().expect("steps").iter().map(move |step| (name.clone(), step))
        })
        .collect()
}

fn check(workflow_file: &Path, nextest_config: &Path) {
    let workflow = load(workflow_file);
    let what = workflow_file.display();
    let steps = steps(&workflow);
    for (name, job) in workflow["jobs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let image = job["container"].as_str().or(job["container"]["image"].as_str());
        assert_eq!(image, Some("debian:12"), "{what}: job {name:?} runs in Debian 12");
        // A job that boots VMs is handed the runner's /dev/kvm where there is one, and says in the job
        // summary which accelerator its cells ran under.
        let boots = steps.iter().any(|(job, s)| {
            job == name && s["run"].as_str().is_some_and(|r| r.contains("nextest run") || r.contains("example.sh"))
        });
        if boots {
            assert_eq!(job["container"]["options"].as_str(), Some("--privileged"), "{what}: job {name:?}");
        }
        if steps.iter().any(|(job, s)| job == name && s["run"].as_str().is_some_and(|r| r.contains("nextest run"))) {
            let summary = steps.iter().any(|(job, s)| {
                job == name
                    && s["run"].as_str().is_some_and(|r| {
                        r.contains(ksnap::session::resources::ACCELERATOR_FILE) && r.contains("$GITHUB_STEP_SUMMARY")
                    })
            });
            assert!(summary, "{what}: job {name:?} puts the accelerator in the job summary");
        }
    }
    let run = |text: &str| steps.iter().filter(|(_, s)| s["run"].as_str().is_some_and(|r| r.contains(text))).count();

    // The kernel cache: saved by one job, restored by the others, always under the lock's hash.
    let caches: Vec<&Yaml> = steps
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/cache")))
        .collect();
    assert!(caches.iter().filter(|s| s["uses"].as_str() == Some("actions/cache@v4")).count() == 1, "{what}");
    for cache in &caches {
        assert_eq!(cache["with"]["key"].as_str(), Some("ksnap-kernels-${{ hashFiles('ksnap.lock') }}"), "{what}");
        assert_eq!(cache["with"]["path"].as_str(), Some("~/.cache/ksnap"), "{what}");
    }
    assert_eq!(run("kernels --fetch"), 1, "{what}: one job fills the cache");

    // The shards: `--partition hash:${{ matrix.shard }}/N` in the job whose matrix is shard: [1..=N].
    let (job, nextest) = steps
        .iter()
        .find(|(_, s)| s["run"].as_str().is_some_and(|r| r.contains("nextest run --profile ci")))
        .unwrap_or_else(|| panic!("{what}: no `cargo nextest run --profile ci` step"));
    let command = nextest["run"].as_str().unwrap();
    let count: i64 = command
        .split_once("--partition hash:${{ matrix.shard }}/")
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{what}: {command}"));
    let shards = workflow["jobs"][job.as_str()]["strategy"]["matrix"]["shard"].as_vec().expect("a shard matrix");
    assert_eq!(
        shards.iter().map(|s| s.as_i64().unwrap()).collect::<Vec<_>>(),
        (1..=count).collect::<Vec<_>>(),
        "{what}"
    );

    // JUnit: uploaded from where nextest's `ci` profile writes it.
    let nextest_toml: toml::Value = toml::from_str(&std::fs::read_to_string(nextest_config).unwrap()).unwrap();
    let junit = nextest_toml["profile"]["ci"]["junit"]["path"].as_str().expect("[profile.ci.junit] path");
    let uploaded = steps
        .iter()
        .filter(|(name, s)| name == job && s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact")))
        .map(|(_, s)| s["with"]["path"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(uploaded, [format!("target/nextest/ci/{junit}")], "{what}");

    report(&steps, &what.to_string());
}

/// The report: the page written where `ksnap report` writes it, uploaded, then the Markdown summary in
/// the job summary linking to that upload, all in one job and in that order.
fn report(steps: &[(String, &Yaml)], what: &str) {
    let at = |found: &dyn Fn(&Yaml) -> bool, step: &str| {
        steps.iter().position(|(_, s)| found(s)).unwrap_or_else(|| panic!("{what}: no step {step}"))
    };
    let runs = |text: &'static str| move |s: &Yaml| s["run"].as_str().is_some_and(|r| r.trim_end().ends_with(text));
    let page = at(&runs(" report"), "writing the page (`ksnap report`, no arguments)");
    let upload = at(
        &|s: &Yaml| {
            s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact"))
                && s["with"]["path"].as_str().is_some_and(|p| p.trim_end_matches('/') == "target/ksnap/report")
        },
        "uploading target/ksnap/report",
    );
    let id = steps[upload].1["id"].as_str().unwrap_or_else(|| panic!("{what}: the page's upload has no id"));
    let summary_run =
        format!("report --format markdown --page-url \"${{{{ steps.{id}.outputs.artifact-url }}}}\" >> \"$GITHUB_STEP_SUMMARY\"");
    let summary = at(&|s: &Yaml| s["run"].as_str().is_some_and(|r| r.contains(&summary_run)), &summary_run);
    assert!(page < upload && upload < summary, "{what}: page, upload, summary in that order");
    let jobs = [page, upload, summary].map(|i| steps[i].0.clone());
    assert!(jobs.iter().all(|j| *j == jobs[0]), "{what}: page, upload and summary in one job: {jobs:?}");
}

#[test]
fn this_repository_s_workflow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    check(&root.join(".github/workflows/ksnap.yml"), &root.join(".config/nextest.toml"));
}

#[test]
fn the_workflow_ksnap_init_writes() {
    let dir = tempfile::tempdir().unwrap();
    let source = ksnap::project::scaffold::KsnapSource::upstream();
    ksnap::project::scaffold::init(dir.path(), Some("probes"), &source).unwrap();
    check(&dir.path().join(".github/workflows/ksnap.yml"), &dir.path().join(".config/nextest.toml"));
    let workflow = std::fs::read_to_string(dir.path().join(".github/workflows/ksnap.yml")).unwrap();
    assert!(workflow.contains("cargo install --locked --git https://github.com/ksnap/ksnap ksnap"), "{workflow}");
}
