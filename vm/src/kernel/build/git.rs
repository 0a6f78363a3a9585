//! Kernels built from the commits of a local git repository, for `ksnap bisect --tree`.
//!
//! The user's repository is only read. Each commit is checked out into ksnap's own clone of it,
//! `CACHE/checkouts/KEY/tree` (one per repository path, `git clone --shared`: its objects are the
//! repository's, through git's alternates, so a commit made after the clone is found too). Going from one
//! commit to another rewrites only the files that differ, with new times, so the build in the clone's
//! object tree is kbuild's incremental build: a bisect step after a small change recompiles a few files
//! and relinks. A built kernel's cache key is its commit and the options of its fragments, so a commit
//! built once is never built again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::kernel::entry::StepReporter;

/// The cache kind of ksnap's clones of local repositories.
const CHECKOUTS: &str = "checkouts";
/// The files every kernel tree ksnap can build has (checked in the commits, not in a work tree).
const KERNEL_FILES: [&str; 3] = ["Makefile", "arch/x86/Kconfig", "scripts/kconfig/Makefile"];

/// A local git repository holding a kernel, opened for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitTree {
    /// The repository's top directory (or, for a bare repository, its git directory).
    pub path: PathBuf,
}

/// One commit of a [`GitTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full object name.
    pub id: String,
    /// Its parents' object names.
    pub parents: Vec<String>,
    /// The first line of its message.
    pub subject: String,
}

impl Commit {
    /// The first 12 hex digits, as kernel developers write a commit (`Fixes: 0123456789ab (…)`).
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

impl std::fmt::Display for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.short(), self.subject)
    }
}

impl GitTree {
    /// The repository at `path`. A work tree with uncommitted changes is refused: only commits are
    /// built, and changes nobody committed would silently not be part of any of them.
    pub fn open(path: &Path) -> Result<GitTree, Error> {
        let refuse = |why: String| Error::GitTree { path: path.to_path_buf(), why };
        if !path.is_dir() {
            return Err(refuse("no such directory".into()));
        }
        let probe = GitTree { path: path.to_path_buf() };
        let bare = probe.git(&["rev-parse", "--is-bare-repository"]).map_err(|e| match e {
            Error::GitTree { why, .. } => refuse(format!("not a git repository ({why})")),
            other => other,
        })?;
        if bare.trim() == "true" {
            return Ok(probe);
        }
        let top = PathBuf::from(probe.git(&["rev-parse", "--show-toplevel"])?.trim());
        let tree = GitTree { path: top };
        let changed = tree.git(&["status", "--porcelain", "--untracked-files=no"])?;
        let changed: Vec<&str> = changed.lines().map(|l| l.get(3..).unwrap_or(l)).collect();
        if !changed.is_empty() {
            let shown: Vec<&str> = changed.iter().take(5).copied().collect();
            return Err(refuse(format!(
                "it has uncommitted changes ({}{}): commit or stash them first; ksnap builds commits, each in a \
                 checkout of its own, and never touches this tree",
                shown.join(", "),
                if changed.len() > shown.len() {
                    format!(" and {} more", changed.len() - shown.len())
                } else {
                    String::new()
                }
            )));
        }
        Ok(tree)
    }

    /// The commit `rev` names (a hash, a tag, a branch, `HEAD~3` …), checked to hold a kernel tree.
    pub fn commit(&self, rev: &str) -> Result<Commit, Error> {
        let spec = format!("{rev}^{{commit}}");
        let id = self
            .git(&["rev-parse", "--verify", "--quiet", "--end-of-options", &spec])
            .map_err(|_| Error::GitTree { path: self.path.clone(), why: format!("no commit `{rev}` in it") })?;
        let commit = self.describe(id.trim())?;
        for file in KERNEL_FILES {
            if self.git(&["cat-file", "-e", &format!("{}:{file}", commit.id)]).is_err() {
                return Err(Error::GitTree {
                    path: self.path.clone(),
                    why: format!("commit {} has no {file}: not a Linux kernel tree", commit.short()),
                });
            }
        }
        Ok(commit)
    }

    /// `good`, then every commit after it up to `bad`, oldest first: the commits that descend from `good`
    /// and are ancestors of `bad` (`git rev-list --ancestry-path`), in topological order.
    pub fn range(&self, good: &Commit, bad: &Commit) -> Result<Vec<Commit>, Error> {
        if self.git(&["merge-base", "--is-ancestor", &good.id, &bad.id]).is_err() {
            return Err(Error::GitTree {
                path: self.path.clone(),
                why: format!(
                    "--good {} is not an ancestor of --bad {}: the older commit goes with --good",
                    good.short(),
                    bad.short()
                ),
            });
        }
        let ids = self.git(&[
            "rev-list",
            "--reverse",
            "--topo-order",
            "--ancestry-path",
            &format!("{}..{}", good.id, bad.id),
        ])?;
        let mut commits = vec![good.clone()];
        for id in ids.lines() {
            commits.push(self.describe(id.trim())?);
        }
        Ok(commits)
    }

    fn describe(&self, id: &str) -> Result<Commit, Error> {
        let line = self.git(&["log", "-1", "--format=%H%x00%P%x00%s", id])?;
        let mut fields = line.trim_end_matches('\n').splitn(3, '\0');
        let (id, parents, subject) =
            (fields.next().unwrap_or(id), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        Ok(Commit {
            id: id.to_string(),
            parents: parents.split_whitespace().map(String::from).collect(),
            subject: subject.to_string(),
        })
    }

    /// Run git in the repository; its stdout, or its stderr as the error.
    fn git(&self, args: &[&str]) -> Result<String, Error> {
        run_git(Command::new("git").arg("-C").arg(&self.path).args(args)).map_err(|why| refused(&self.path, why))
    }
}

/// The error for `path`, or [`Error::Cancelled`] when git failed because ksnap is being interrupted.
fn refused(path: &Path, why: String) -> Error {
    if crate::children::is_cancelled() {
        return Error::Cancelled;
    }
    Error::GitTree { path: path.to_path_buf(), why }
}

/// ksnap's checkout of a repository at one commit, held (under the checkout's lock) for one build.
pub(super) struct Checkout {
    /// The checked-out tree: the build's source.
    pub tree: PathBuf,
    _lock: cache::CacheLock,
}

/// Check `commit` of `repo` out into ksnap's clone of it, cloning first if there is none.
pub(super) fn check_out(cache: &Cache, repo: &Path, commit: &str, report: StepReporter) -> Result<Checkout, Error> {
    let key = checkout_key(repo)?;
    let lock = cache.lock_reporting(CHECKOUTS, &key, &mut || {
        report("waiting for another build from this repository to finish with its checkout")
    })?;
    let tree = cache.entry(CHECKOUTS, &key).join("tree");
    let fail = |why: String| refused(repo, why);
    let in_tree = |args: &[&str]| run_git(Command::new("git").arg("-C").arg(&tree).args(args));
    // A clone interrupted half-way has no usable HEAD: start it again.
    if tree.exists() && in_tree(&["rev-parse", "--git-dir"]).is_err() {
        std::fs::remove_dir_all(&tree).map_err(|e| Error::io(format!("removing {}", tree.display()), e))?;
    }
    if !tree.exists() {
        report(&format!("cloning {} into ksnap's cache (shared objects: nothing is copied)", repo.display()));
        std::fs::create_dir_all(tree.parent().expect("an entry has a parent"))
            .map_err(|e| Error::io(format!("creating {}", tree.display()), e))?;
        run_git(Command::new("git").args(["clone", "--quiet", "--shared", "--no-checkout"]).arg(repo).arg(&tree))
            .map_err(|why| fail(format!("cloning it into {}: {why}", tree.display())))?;
    }
    let first =
        in_tree(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).is_err() || !tree.join("Makefile").exists();
    report(&format!(
        "checking out {}{}",
        &commit[..commit.len().min(12)],
        if first { " (the first checkout writes every file)" } else { "" }
    ));
    in_tree(&["-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", commit, "--"])
        .map_err(|why| fail(format!("checking out {commit} in {}: {why}", tree.display())))?;
    // Builds are out of tree, so nothing should be here; a user's experiment in the clone would be built.
    in_tree(&["clean", "-ffdxq"]).map_err(|why| fail(format!("cleaning {}: {why}", tree.display())))?;
    Ok(Checkout { tree, _lock: lock })
}

/// One clone per repository: keyed by its absolute path.
fn checkout_key(repo: &Path) -> Result<String, Error> {
    let path = std::path::absolute(repo).map_err(|e| Error::io(format!("resolving {}", repo.display()), e))?;
    Ok(cache::sha256_bytes(path.as_os_str().as_encoded_bytes())[..16].to_string())
}

/// Run a git command (through [`crate::children`], so that an interrupt stops it); its stdout, or why
/// it failed.
fn run_git(command: &mut Command) -> Result<String, String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("LC_ALL", "C");
    let mut child = crate::children::spawn(command).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "git is not installed (apt-get install git)".to_string(),
        _ => e.to_string(),
    })?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;

    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with a fake kernel tree (just the files [`GitTree::commit`] checks) and `commits`
    /// commits on top of the first, each changing `file` to its number.
    fn repository(commits: usize) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let output = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        for file in KERNEL_FILES {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        std::fs::write(dir.path().join("file"), "0").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "commit 0"]);
        let mut ids = vec![git(&["rev-parse", "HEAD"])];
        for n in 1..=commits {
            std::fs::write(dir.path().join("file"), n.to_string()).unwrap();
            git(&["commit", "-qam", &format!("commit {n}")]);
            ids.push(git(&["rev-parse", "HEAD"]));
        }
        (dir, ids)
    }

    #[test]
    fn a_range_is_the_good_commit_then_every_later_one_up_to_bad() {
        let (dir, ids) = repository(3);
        let tree = GitTree::open(dir.path()).unwrap();
        let (good, bad) = (tree.commit("HEAD~3").unwrap(), tree.commit("HEAD").unwrap());
        let range = tree.range(&good, &bad).unwrap();
        assert_eq!(range.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids);
        assert_eq!(range[2].subject, "commit 2");
        assert_eq!(range[2].parents, vec![ids[1].clone()]);
        assert_eq!(range[2].short(), &ids[2][..12]);
    }

    #[test]
    fn what_cannot_be_bisected_is_named() {
        let (dir, _) = repository(1);
        let tree = GitTree::open(dir.path()).unwrap();
        fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
            match result {
                Err(Error::GitTree { why, .. }) => why,
                other => panic!("not refused: {other:?}"),
            }
        }
        assert!(refused(tree.commit("no-such-rev")).contains("no commit `no-such-rev`"));
        let (good, bad) = (tree.commit("HEAD~1").unwrap(), tree.commit("HEAD").unwrap());
        assert!(refused(tree.range(&bad, &good)).contains("is not an ancestor of --bad"));

        std::fs::write(dir.path().join("file"), "edited").unwrap();
        assert!(refused(GitTree::open(dir.path())).contains("uncommitted changes (file)"));
        let plain = tempfile::tempdir().unwrap();
        assert!(refused(GitTree::open(plain.path())).contains("not a git repository"));

        let (other, _) = repository(0);
        std::fs::remove_file(other.path().join("arch/x86/Kconfig")).unwrap();
        let committed = Command::new("git")
            .arg("-C")
            .arg(other.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "no x86"])
            .status()
            .unwrap();
        assert!(committed.success());
        let tree = GitTree::open(other.path()).unwrap();
        assert!(refused(tree.commit("HEAD")).contains("has no arch/x86/Kconfig: not a Linux kernel tree"));
    }

    /// ksnap's checkout follows the commits asked for, rewrites only the files that differ (kbuild's
    /// incremental build depends on the others keeping their times), and never touches the repository.
    #[test]
    fn a_checkout_moves_between_commits_rewriting_only_what_differs() {
        let (dir, ids) = repository(2);
        let cache = Cache::at(tempfile::tempdir().unwrap().keep()).unwrap();
        let head_before = std::fs::read_to_string(dir.path().join(".git/HEAD")).unwrap();
        let mut steps = Vec::new();
        let checkout = check_out(&cache, dir.path(), &ids[1], &mut |s| steps.push(s.to_string())).unwrap();
        let tree = checkout.tree.clone();
        assert_eq!(std::fs::read_to_string(tree.join("file")).unwrap(), "1");
        assert!(steps.iter().any(|s| s.starts_with("cloning")), "{steps:?}");
        let makefile_time = std::fs::metadata(tree.join("Makefile")).unwrap().modified().unwrap();
        drop(checkout);

        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut steps = Vec::new();
        let checkout = check_out(&cache, dir.path(), &ids[2], &mut |s| steps.push(s.to_string())).unwrap();
        assert_eq!(checkout.tree, tree);
        assert_eq!(std::fs::read_to_string(tree.join("file")).unwrap(), "2");
        assert!(!steps.iter().any(|s| s.starts_with("cloning")), "cloned again: {steps:?}");
        assert_eq!(std::fs::metadata(tree.join("Makefile")).unwrap().modified().unwrap(), makefile_time);
        assert_eq!(std::fs::read_to_string(dir.path().join(".git/HEAD")).unwrap(), head_before);
        assert_eq!(std::fs::read_to_string(dir.path().join("file")).unwrap(), "2", "the repository's tree changed");
        std::fs::remove_dir_all(cache.root()).unwrap();
    }
}
