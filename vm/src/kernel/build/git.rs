//! Kernels built from the commits of a local git repository, for `ksnap bisect --tree`.
//!
//! The user's repository is only read. Each commit is checked out into ksnap's own clone of it,
//! `CACHE/checkouts/KEY/tree` (one per repository path, `git clone --shared`: its objects are the
//! repository's, through git's alternates, so a commit made after the clone is found too; a clone that
//! cannot see a commit, its repository replaced at the same path, is made again). Going from one
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
    /// The repository at `path` (its work tree, any directory in it, or a bare repository). Refused: a
    /// work tree with uncommitted changes (only commits are built, and changes nobody committed would
    /// silently be part of none of them) and a shallow clone (its history stops short).
    pub fn open(path: &Path) -> Result<GitTree, Error> {
        let refuse = |why: String| Error::GitTree { path: path.to_path_buf(), why };
        let path = std::fs::canonicalize(path).map_err(|e| refuse(format!("cannot be opened: {e}")))?;
        let probe = GitTree { path: path.clone() };
        let facts = probe
            .git(&["rev-parse", "--is-bare-repository", "--is-inside-git-dir", "--is-shallow-repository"])
            .map_err(|e| match e {
                Error::GitTree { why, .. } => refuse(format!("not a git repository ({why})")),
                other => other,
            })?;
        let facts: Vec<&str> = facts.lines().map(str::trim).collect();
        let tree = match facts.as_slice() {
            [_, _, "true"] => {
                return Err(refuse(
                    "it is a shallow clone, whose history stops short: `git fetch --unshallow` first".into(),
                ))
            }
            ["true", ..] => {
                let dir = probe.git(&["rev-parse", "--absolute-git-dir"])?;
                return Ok(GitTree { path: PathBuf::from(dir.trim()) });
            }
            [_, "true", _] => {
                return Err(refuse("it is a repository's git directory: give its work tree instead".into()))
            }
            _ => GitTree { path: PathBuf::from(probe.git(&["rev-parse", "--show-toplevel"])?.trim()) },
        };
        // --no-optional-locks: a status that refreshed the index would take the repository's index.lock.
        let changed = tree.git(&["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])?;
        let changed: Vec<&str> = changed.lines().map(|l| l.get(3..).unwrap_or(l)).collect();
        if !changed.is_empty() {
            let shown: Vec<&str> = changed.iter().take(5).copied().collect();
            let more = changed.len() - shown.len();
            return Err(refuse(format!(
                "it has uncommitted changes ({}{}): commit or stash them first; ksnap builds commits, each in a \
                 checkout of its own, and never touches this tree",
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )));
        }
        Ok(tree)
    }

    /// The commit `rev` names (a hash, a tag, a branch, `HEAD~3` …), checked to hold a kernel tree.
    pub fn commit(&self, rev: &str) -> Result<Commit, Error> {
        let refuse = |why: String| refused(&self.path, why);
        if rev.starts_with('-') || rev.is_empty() {
            return Err(refuse(format!("`{rev}` is not a revision")));
        }
        let id = self
            .git(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
            .map_err(|_| refuse(format!("no commit `{rev}` in it")))?;
        let commit = self.log(&["-1", id.trim()])?.pop().ok_or_else(|| refuse(format!("no commit `{rev}` in it")))?;
        let files =
            self.git(&["ls-tree", "-r", "--name-only", &commit.id, "--", "Makefile", "arch/x86", "scripts/kconfig"])?;
        if let Some(missing) = KERNEL_FILES.iter().find(|file| !files.lines().any(|line| line == **file)) {
            return Err(refuse(format!("commit {} has no {missing}: not a Linux kernel tree", commit.short())));
        }
        Ok(commit)
    }

    /// `good`, then every commit after it up to `bad`, oldest first: the commits that descend from `good`
    /// and are ancestors of `bad` (`git log --ancestry-path`), in topological order.
    pub fn range(&self, good: &Commit, bad: &Commit) -> Result<Vec<Commit>, Error> {
        let base = self.git(&["merge-base", &good.id, &bad.id]).unwrap_or_default();
        if base.trim() != good.id {
            return Err(refused(
                &self.path,
                format!(
                    "--good {} is not an ancestor of --bad {}: the older commit goes with --good",
                    good.short(),
                    bad.short()
                ),
            ));
        }
        let mut commits = vec![good.clone()];
        commits.extend(self.log(&[
            "--reverse",
            "--topo-order",
            "--ancestry-path",
            &format!("{}..{}", good.id, bad.id),
        ])?);
        Ok(commits)
    }

    /// The commits `git log ARGS` lists, in its order.
    fn log(&self, args: &[&str]) -> Result<Vec<Commit>, Error> {
        // --no-show-signature: a user's log.showSignature would put gpg's lines before each record.
        let mut command = vec!["log", "--no-show-signature", "--format=%H%x00%P%x00%s%x00"];
        command.extend_from_slice(args);
        let text = self.git(&command)?;
        let fields: Vec<&str> = text.split('\0').collect();
        Ok(fields
            .chunks_exact(3)
            .map(|record| Commit {
                id: record[0].trim().to_string(),
                parents: record[1].split_whitespace().map(String::from).collect(),
                subject: record[2].to_string(),
            })
            .collect())
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

/// Check `commit` of `repo` out into ksnap's clone of it, cloning first if there is none, or if the one
/// there cannot see the commit (its repository was replaced at the same path).
pub(super) fn check_out(cache: &Cache, repo: &Path, commit: &str, report: StepReporter) -> Result<Checkout, Error> {
    // One clone per repository, keyed by its path (as `GitTree::open` resolved it).
    let key = super::path_key(repo)?;
    let lock = cache.lock_reporting(CHECKOUTS, &key, &mut || {
        report("waiting for another build from this repository to finish with its checkout")
    })?;
    let tree = cache.entry(CHECKOUTS, &key).join("tree");
    let fail = |why: String| refused(repo, why);
    // Always the clone's own git directory, never one found above it or named by the environment.
    let in_tree = |args: &[&str]| {
        let mut command = Command::new("git");
        command
            .arg(format!("--git-dir={}", tree.join(".git").display()))
            .arg(format!("--work-tree={}", tree.display()));
        run_git(command.current_dir(&tree).args(args))
    };
    let has_commit = |commit: &str| in_tree(&["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok();
    if tree.exists() && !has_commit(commit) {
        std::fs::remove_dir_all(&tree).map_err(|e| Error::io(format!("removing {}", tree.display()), e))?;
    }
    if !tree.exists() {
        clone(cache, repo, &tree, report).map_err(fail)?;
        if !has_commit(commit) {
            return Err(fail(format!("its clone in {} has no commit {commit}", tree.display())));
        }
    }
    let first = !tree.join("Makefile").exists();
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

/// `git clone --shared --no-checkout REPO`, into a staging directory first, so that an interrupted clone
/// never stands where a clone is expected.
fn clone(cache: &Cache, repo: &Path, tree: &Path, report: StepReporter) -> Result<(), String> {
    report(&format!("cloning {} into ksnap's cache (shared objects: nothing is copied)", repo.display()));
    let staging = cache.staging_dir().map_err(|e| e.to_string())?;
    let staged = staging.path().join("tree");
    run_git(Command::new("git").args(["clone", "--quiet", "--shared", "--no-checkout"]).arg(repo).arg(&staged))?;
    std::fs::create_dir_all(tree.parent().expect("an entry has a parent")).map_err(|e| e.to_string())?;
    std::fs::rename(&staged, tree).map_err(|e| format!("moving the clone to {}: {e}", tree.display()))
}

/// Run a git command (through [`crate::children`], so that an interrupt stops it); its stdout, or why
/// it failed. Git's environment variables are dropped: set by a hook ksnap runs under, `GIT_DIR` or
/// `GIT_WORK_TREE` would point every command, the clone's checkout and clean too, at the user's repository.
fn run_git(command: &mut Command) -> Result<String, String> {
    for name in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    ] {
        command.env_remove(name);
    }
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
        // From any directory of the work tree, and from a bare clone.
        let tree = GitTree::open(&dir.path().join("arch/x86")).unwrap();
        assert_eq!(tree.path, std::fs::canonicalize(dir.path()).unwrap());
        let (good, bad) = (tree.commit("HEAD~3").unwrap(), tree.commit("HEAD").unwrap());
        let range = tree.range(&good, &bad).unwrap();
        assert_eq!(range.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids);
        let bare = tempfile::tempdir().unwrap();
        let cloned =
            Command::new("git").args(["clone", "-q", "--bare"]).arg(dir.path()).arg(bare.path().join("b.git")).status();
        assert!(cloned.unwrap().success());
        let bare = GitTree::open(&bare.path().join("b.git")).unwrap();
        let (good, bad) = (bare.commit(&ids[0]).unwrap(), bare.commit(&ids[3]).unwrap());
        assert_eq!(bare.range(&good, &bad).unwrap(), range);
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
        assert!(refused(GitTree::open(&dir.path().join(".git"))).contains("give its work tree instead"));
        assert!(refused(tree.commit("--all")).contains("`--all` is not a revision"));
        let shallow = plain.path().join("shallow");
        let cloned = Command::new("git")
            .args(["clone", "-q", "--depth", "1"])
            .arg(format!("file://{}", dir.path().display()))
            .arg(&shallow)
            .status()
            .unwrap();
        assert!(cloned.success());
        assert!(refused(GitTree::open(&shallow)).contains("shallow clone"));

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
