//! `ksnap bisect --tree`, end to end: down to the commit, in a throwaway git repository made from
//! `linux-source-6.12` (the source package of the matrix's `6.12-minimal` kernel, as ksnap.lock pins it)
//! with three commits on top. The middle one makes fs/proc/base.c default to never forcing writes through
//! /proc/PID/mem, which a proc_mem probe sees: an untraced write into a read-only mapping goes from
//! `ok 4 bytes` to `EIO`. Each commit is built from tinyconfig and `vm/configs/minimal`, incrementally,
//! in one checkout of ksnap's (CACHE/checkouts/).
//!
//! The repository is made once, under Cargo's `target/tmp`, with fixed names and dates: its commits have
//! the same ids every time, so a later run finds their kernels in the cache and only boots them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use assert_cmd::cargo::CommandCargoExt;
use ksnap::project::config::Config;
use ksnap::project::lockfile::Lockfile;
use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::Pin;

const FACT: &str = "proc_mem.other_writers.proc_mem_untraced";
const CHANGE: &str = "proc: never force writes through /proc/PID/mem unless asked to";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `git --git-dir=REPO ARGS…` with fixed names and dates; its stdout.
fn git(repo: &Path, args: &[&str], work_tree: Option<&Path>, stdin: Option<&str>) -> String {
    let mut command = Command::new("git");
    command.arg(format!("--git-dir={}", repo.display()));
    if let Some(tree) = work_tree {
        command.arg(format!("--work-tree={}", tree.display())).current_dir(tree);
    }
    for (name, value) in [
        ("GIT_AUTHOR_NAME", "ksnap test"),
        ("GIT_AUTHOR_EMAIL", "test@ksnap.invalid"),
        ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
        ("GIT_COMMITTER_NAME", "ksnap test"),
        ("GIT_COMMITTER_EMAIL", "test@ksnap.invalid"),
        ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
    ] {
        command.env(name, value);
    }
    let mut child = command
        .args(["-c", "core.compression=1", "-c", "core.looseCompression=1"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A commit on top of HEAD that changes one file of the tree with `edit`; made with git's plumbing, so
/// that the unpacked source in the cache is never written.
fn commit_change(repo: &Path, path: &str, edit: impl Fn(&str) -> String, message: &str) -> String {
    let old = git(repo, &["show", &format!("HEAD:{path}")], None, None);
    let new = edit(&old);
    assert_ne!(old, new, "the edit of {path} changed nothing");
    let blob = git(repo, &["hash-object", "-w", "--stdin"], None, Some(&format!("{new}\n")));
    git(repo, &["update-index", "--cacheinfo", &format!("100644,{blob},{path}")], None, None);
    let tree = git(repo, &["write-tree"], None, None);
    let commit = git(repo, &["commit-tree", &tree, "-p", "HEAD", "-m", message], None, None);
    git(repo, &["update-ref", "HEAD", &commit], None, None);
    commit
}

/// The throwaway repository: made once from `source` (the unpacked source package), reused after.
fn repository(source: &Path, version: &str) -> (PathBuf, Vec<String>) {
    let repo = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bisect-tree").join("linux-6.12.git");
    let made = repo.join("ksnap-test-made");
    let recipe = format!("linux-source-6.12 {version}; 3 commits, version 1\n");
    if std::fs::read_to_string(&made).ok().as_deref() != Some(recipe.as_str()) {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "--bare"], None, None);
        // -f: Debian's .gitignore in the source package ignores everything at the top level.
        git(&repo, &["add", "-A", "-f", "."], Some(source), None);
        git(
            &repo,
            &["commit", "-q", "-m", &format!("linux-source-6.12 {version}, as Debian ships it")],
            Some(source),
            None,
        );
        commit_change(
            &repo,
            "README",
            |text| format!("{text}\nThis tree is a ksnap test's."),
            "README: say whose tree this is",
        );
        commit_change(
            &repo,
            "fs/proc/base.c",
            |text| text.replacen("\tPROC_MEM_FORCE_ALWAYS;\n", "\tPROC_MEM_FORCE_NEVER;\n", 1),
            CHANGE,
        );
        commit_change(
            &repo,
            "mm/memory.c",
            |text| format!("// A comment, so that this commit recompiles a file.\n{text}"),
            "mm: a comment",
        );
        std::fs::write(&made, &recipe).unwrap();
        eprintln!("made the repository in {:.0?}", started.elapsed());
    }
    let ids = git(&repo, &["rev-list", "--reverse", "HEAD~3..HEAD"], None, None);
    (repo, ids.lines().map(String::from).collect())
}

/// The unpacked `linux-source-6.12` that ksnap.lock pins for `6.12-minimal`, from the cache (downloaded
/// and unpacked into it if needed), and its version.
fn source_package() -> (PathBuf, String) {
    let root = workspace();
    let config = Config::load(&root.join("ksnap.toml")).unwrap();
    let lock = Lockfile::read(&root.join("ksnap.lock")).unwrap();
    let Pin::Build { source, .. } = lock.get("6.12-minimal").expect("ksnap.lock pins 6.12-minimal").pin() else {
        panic!("6.12-minimal is not a build in ksnap.lock");
    };
    let cache = Cache::user_default().unwrap();
    let archives = Archives::new(&cache, config.apt_mirror.clone());
    let tree =
        ksnap_vm::kernel::build::unpacked_source(&cache, &archives, None, &source, &mut |step| eprintln!("{step}"))
            .unwrap();
    (tree, source.version)
}

#[test]
#[cfg_attr(skip_vm, ignore = "builds and boots kernels (KSNAP_SKIP_VM=1)")]
fn bisect_finds_the_commit_that_changes_a_fact() {
    let (source, version) = source_package();
    let (repo, commits) = repository(&source, &version);
    let refs_before = git(&repo, &["show-ref"], None, None);
    let started = Instant::now();
    let output = Command::cargo_bin("ksnap")
        .unwrap()
        .current_dir(workspace())
        .args(["bisect", FACT, "--tree"])
        .arg(&repo)
        .args(["--good", "HEAD~3", "--bad", "HEAD", "--kconfig", "vm/configs/minimal", "--format", "json"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    eprintln!("ksnap bisect --tree took {:.0?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let report = &json["bisect"];
    let short = |id: &String| id[..12].to_string();
    assert_eq!(report["outcome"], "found", "{json:#}");
    assert_eq!(report["old"]["candidate"], short(&commits[0]), "{json:#}");
    assert_eq!(report["new"]["candidate"], short(&commits[1]), "{json:#}");
    assert_eq!(report["old"]["value"], "ok 4 bytes", "{json:#}");
    assert_eq!(report["new"]["value"], "EIO", "{json:#}");
    // Four kernels: both ends, then one commit on each side of the middle.
    assert_eq!(report["observations"], 4, "{json:#}");
    let why: Vec<&str> = json["why"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let first_new = format!("first new commit: {} {CHANGE}", short(&commits[1]));
    assert!(why.iter().any(|l| l.contains(&first_new)), "{why:#?}");
    assert!(why.iter().any(|l| l.contains(&format!("its parent {} is the last old commit", short(&commits[0])))));
    assert!(why.iter().any(|l| l.ends_with(&format!(" show {}", short(&commits[1])))), "{why:#?}");
    assert!(why.iter().any(|l| l.contains("config: no option differs")), "{why:#?}");
    // The repository is only read.
    assert_eq!(git(&repo, &["show-ref"], None, None), refs_before);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"], None, None), commits[2]);
}
