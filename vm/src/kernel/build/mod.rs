//! Kernels built from source: a Debian kernel source package (`linux-source-6.12`, fetched through apt)
//! or a local tree, configured as `make tinyconfig` plus Kconfig fragments, built as a bzImage and cached
//! like the packaged kernels.
//!
//! The steps, all under the cache lock of the kernel's key:
//! 1. the source: the package is downloaded and its tarball unpacked in Rust into its own cache entry
//!    (`sources/PACKAGE_VERSION`, kept for builds with other fragments); a local tree is used where it is;
//!    a commit of a local git repository is checked out into ksnap's own clone of it ([`git`]);
//! 2. `make tinyconfig`, the fragments merged into `.config` (the private `kconfig` module), `make olddefconfig`,
//!    and a check that every option the fragments ask for survived (Kconfig silently drops an option
//!    whose dependencies are missing);
//! 3. `make -jN bzImage` in the source's object tree (below), compiling through ccache (`CACHE/ccache/`);
//!    the image and the final `.config` become the cache entry.
//!
//! Builds are out of tree (`O=`): the source is never written to. Each source (package and version, or a
//! local tree's path) with one compiler keeps one object tree, `CACHE/objects/KEY/tree`, the `O=`
//! directory of its last build, so that a build with other fragments is kbuild's own incremental build
//! after a config change: fixdep's per-file dependencies on `CONFIG_` options recompile only the files that
//! use an option that changed, and the rest is linking. Builds of one source take the tree's lock in turn.
//! A tree is trusted only if the build that last used it finished (`CACHE/objects/KEY/complete`); any
//! other is emptied first, since an interrupted compiler can leave an object newer than its source. ccache
//! serves a first build of a tree from objects of earlier ones (another version, a tree emptied).
//!
//! An entry is keyed by the source (package and version, or a fingerprint of the tree) and a hash of the
//! options the fragments set, so a fragment's comments can be edited without a rebuild. The full output of
//! `make` is kept in `CACHE/build-logs/KEY.log`.
//!
//! What the build needs from the host and runs on it (prerequisites, `make`, progress reports) is the
//! `host` module.

pub mod git;
pub(crate) mod host;
mod kconfig;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::kernel::apt::{Archives, PinnedPackage};
use crate::kernel::entry::{self, Kernel, Package, Produced, StepReporter};
use host::{capture, check_prerequisites, BuildProgress, Host, Make, Throttle, BY_OPTION, HOST};
use kconfig::Options;

/// A kernel to build: a source tree, configured from `make tinyconfig` plus Kconfig fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecipe {
    /// Where the kernel source comes from.
    pub tree: SourceTree,
    /// Merged in order on top of `tinyconfig`: a later fragment overrides an earlier one.
    pub fragments: Vec<PathBuf>,
}

/// Where the kernel source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceTree {
    /// A Debian kernel source package such as `linux-source-6.12`, fetched through apt: the system's
    /// sources (`suite: None`) or one Debian suite.
    Apt {
        /// The source package's name, e.g. `linux-source-6.12`.
        package: String,
        /// The Debian suite to fetch it from; `None` for the system's apt sources.
        suite: Option<String>,
    },
    /// A kernel source tree on this machine. It must be clean (`make mrproper`): the build is out of tree.
    Local {
        /// The tree's top directory, the one with the kernel's top-level `Makefile`.
        path: PathBuf,
    },
    /// One commit of a local git repository, checked out into ksnap's own clone of it ([`git`]).
    Git {
        /// The repository (only read).
        repo: PathBuf,
        /// The commit's full object name.
        commit: String,
    },
}

impl std::fmt::Display for BuildRecipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tree {
            SourceTree::Apt { package, suite: None } => write!(f, "source package {package}")?,
            SourceTree::Apt { package, suite: Some(suite) } => write!(f, "source package {package} from {suite}")?,
            SourceTree::Local { path } => write!(f, "source tree {}", path.display())?,
            SourceTree::Git { repo, commit } => {
                write!(f, "commit {} of {}", &commit[..commit.len().min(12)], repo.display())?
            }
        }
        write!(f, " with config {}", fragment_names(&self.fragments))
    }
}

fn fragment_names(fragments: &[PathBuf]) -> String {
    let names: Vec<String> = fragments
        .iter()
        .map(|path| path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()))
        .collect();
    names.join(" + ")
}

/// Part of every build's cache key: change it when the way kernels are built changes, so that kernels
/// built the old way are not taken for kernels built the new way.
const RECIPE: &str = "ksnap kernel build 1: make ARCH=x86_64 tinyconfig, fragments, olddefconfig, bzImage";
const SOURCES: &str = "sources";
/// The cache kind of object trees, one per (source, compiler).
const OBJECTS: &str = "objects";
/// In an object tree's entry: kbuild's `O=` directory, and the marker that the last build in it finished.
const OBJECT_TREE: &str = "tree";
const OBJECT_TREE_COMPLETE: &str = "complete";

/// A recipe with everything its cache key depends on resolved.
struct Plan<'a> {
    recipe: &'a BuildRecipe,
    origin: Origin<'a>,
    options: Options,
    key: String,
}

enum Origin<'a> {
    /// The pinned source package, and the archives to fetch it from.
    Apt {
        source: PinnedPackage,
        archives: &'a Archives,
    },
    Local {
        path: PathBuf,
    },
    Git {
        repo: PathBuf,
        commit: String,
    },
}

impl BuildRecipe {
    /// The kernel built from `source` (the pinned source package; `None` for a local tree), built (or
    /// downloaded, unpacked and built) into the cache if it is not there yet.
    pub fn resolve(
        &self,
        source: Option<&PinnedPackage>,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Kernel, Error> {
        self.resolve_on(&HOST, source, cache, archives, report)
    }

    fn resolve_on(
        &self,
        host: &Host,
        source: Option<&PinnedPackage>,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Kernel, Error> {
        let origin = match (&self.tree, source) {
            (SourceTree::Apt { .. }, Some(source)) => Origin::Apt { source: source.clone(), archives },
            (SourceTree::Local { path }, _) => Origin::Local { path: path.clone() },
            (SourceTree::Git { repo, commit }, _) => Origin::Git { repo: repo.clone(), commit: commit.clone() },
            (SourceTree::Apt { package, .. }, None) => return Err(unpinned(package)),
        };
        let plan = self.plan(origin)?;
        entry::cached_or_produce(cache, &plan.key, report, |staging, report| plan.build(host, cache, staging, report))
    }

    /// The kernel, if it is already built from `source` (`None` for a local tree). Never downloads or
    /// builds.
    pub fn cached(&self, source: Option<&Package>, cache: &Cache) -> Result<Option<Kernel>, Error> {
        Ok(entry::read_valid_entry(&cache.entry(entry::CACHE_KIND, &self.key(source)?)))
    }

    /// The source package this recipe asks for and its suite, if it builds one.
    pub fn apt_request(&self) -> Option<(&str, Option<&str>)> {
        match &self.tree {
            SourceTree::Apt { package, suite } => Some((package, suite.as_deref())),
            SourceTree::Local { .. } | SourceTree::Git { .. } => None,
        }
    }

    /// The cache key of this build from `source`: the source package and version (or a fingerprint of the
    /// local tree) and a hash of the options the fragments set.
    pub fn key(&self, source: Option<&Package>) -> Result<String, Error> {
        let options = read_fragments(&self.fragments)?;
        self.key_with(source, &options)
    }

    fn key_with(&self, source: Option<&Package>, options: &Options) -> Result<String, Error> {
        let recipe_hash = cache::sha256_bytes(format!("{RECIPE}\n{}", kconfig::canonical(options)).as_bytes());
        let source_key = match (&self.tree, source) {
            (SourceTree::Apt { .. }, Some(package)) => format!("{}_{}", package.name, package.version),
            (SourceTree::Apt { package, .. }, None) => return Err(unpinned(package)),
            (SourceTree::Local { path }, _) => {
                check_source_tree(path)?;
                let fingerprint = tree_fingerprint(path)
                    .map_err(|e| Error::io(format!("reading the source tree {}", path.display()), e))?;
                format!("tree-{}", &fingerprint[..16])
            }
            (SourceTree::Git { commit, .. }, _) => format!("git-{}", &commit[..commit.len().min(16)]),
        };
        Ok(format!("{source_key}+build-{}", &recipe_hash[..16]))
    }

    fn plan<'a>(&'a self, origin: Origin<'a>) -> Result<Plan<'a>, Error> {
        let options = read_fragments(&self.fragments)?;
        let package = match &origin {
            Origin::Apt { source, .. } => Some(source.package()),
            Origin::Local { .. } | Origin::Git { .. } => None,
        };
        let key = self.key_with(package.as_ref(), &options)?;
        Ok(Plan { recipe: self, origin, options, key })
    }
}

/// A build of a source package asked for without the package's pinned version.
fn unpinned(package: &str) -> Error {
    Error::UnknownPackage { package: package.to_string(), detail: "the build has no pinned source version".into() }
}

/// Every option the fragments set; a later fragment overrides an earlier one.
fn read_fragments(fragments: &[PathBuf]) -> Result<Options, Error> {
    let mut options = Options::new();
    for path in fragments {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::ConfigFragment { path: path.clone(), why: e.to_string() })?;
        kconfig::parse_fragment(&text, &mut options)
            .map_err(|why| Error::ConfigFragment { path: path.clone(), why })?;
    }
    Ok(options)
}

impl Plan<'_> {
    /// Build the kernel into `staging` (see the module documentation for the steps).
    fn build(&self, host: &Host, cache: &Cache, staging: &Path, report: StepReporter) -> Result<Produced, Error> {
        check_prerequisites(host.prerequisites.iter())?;
        // A checkout stays at its commit (under its lock) until the build is over.
        let (tree, package, _checkout) = match &self.origin {
            Origin::Apt { source, archives } => {
                let suite = self.recipe.apt_request().and_then(|(_, suite)| suite);
                (unpacked_source(cache, archives, suite, source, report)?, Some(source.package()), None)
            }
            Origin::Local { path } => (path.clone(), None, None),
            Origin::Git { repo, commit } => {
                let checkout = git::check_out(cache, repo, commit, report)?;
                (checkout.tree.clone(), None, Some(checkout))
            }
        };
        let objects = ObjectTree::take(cache, &self.object_tree_key(host)?, report)?;
        let out = objects.dir();
        let log = cache.root().join("build-logs").join(format!("{}.log", self.key));
        let stamp = match (&package, &self.origin) {
            (Some(p), _) => format!("{} {}", p.name, p.version),
            (None, Origin::Git { commit, .. }) => format!("commit {commit}"),
            (None, _) => "local source tree".to_string(),
        };
        let mut make = Make::new(host.make, &tree, out, &log, &stamp)?;
        if host.ccache {
            make.use_ccache(&cache.root().join("ccache"), cache.root());
        }

        report(&format!("configuring: tinyconfig + {}", fragment_names(&self.recipe.fragments)));
        make.run(&["tinyconfig"], &mut |_| {})?;
        let config_path = out.join(".config");
        let read_config =
            || std::fs::read_to_string(&config_path).map_err(|e| Error::io("reading the kernel .config", e));
        let merged = kconfig::merge(&read_config()?, &self.options);
        std::fs::write(&config_path, merged).map_err(|e| Error::io("writing the kernel .config", e))?;
        make.run(&["olddefconfig"], &mut |_| {})?;
        let config = read_config()?;
        let mismatches = kconfig::verify(&config, &self.options);
        if !mismatches.is_empty() {
            let list: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
            return Err(Error::ConfigMismatch {
                fragments: fragment_names(&self.recipe.fragments),
                mismatches: list.join("\n"),
            });
        }
        let options = kconfig::parse_config(&config);
        let enabled = |option: &str| matches!(options.get(option), Some(kconfig::Value::Set(v)) if v == "y");
        check_prerequisites(BY_OPTION.iter().filter(|(option, _)| enabled(option)).map(|(_, needed)| needed))?;

        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut progress = BuildProgress::new(report, "building bzImage");
        make.run(&[&format!("-j{jobs}"), "bzImage"], &mut |line| progress.line(line))?;

        let release = std::fs::read_to_string(out.join("include/config/kernel.release"))
            .map_err(|e| Error::io("reading the built kernel's release", e))?
            .trim()
            .to_string();
        let image = staging.join(format!("vmlinuz-{release}"));
        let config = staging.join(format!("config-{release}"));
        std::fs::copy(out.join("arch/x86/boot/bzImage"), &image)
            .map_err(|e| Error::io("copying the built bzImage", e))?;
        std::fs::copy(&config_path, &config).map_err(|e| Error::io("copying the kernel .config", e))?;
        entry::bzimage_release(&image)?;
        objects.finished()?;
        Ok(Produced { image, config: Some(config), release, package, changelog: None })
    }

    /// The key of this build's object tree: the source (package and version, or a local tree's path:
    /// kbuild follows the tree's edits by their times), the recipe, and the compiler and linker
    /// (`gcc --version`, `ld --version`), so that objects of another toolchain are never linked in.
    fn object_tree_key(&self, host: &Host) -> Result<String, Error> {
        let source = match &self.origin {
            Origin::Apt { source, .. } => format!("{}_{}", source.package().name, source.package().version),
            Origin::Local { path } => format!("tree-{}", path_key(path)?),
            // One object tree per repository, next to its one checkout: each step builds on the last.
            Origin::Git { repo, .. } => format!("git-{}", path_key(repo)?),
        };
        let mut toolchain = String::from(RECIPE);
        for program in host.toolchain {
            let version = capture(Command::new(program).arg("--version")).ok_or_else(|| {
                Error::io(format!("running {program} --version"), std::io::Error::other("it did not succeed"))
            })?;
            toolchain.push_str(&version);
        }
        Ok(format!("{source}+objects-{}", &cache::sha256_bytes(toolchain.as_bytes())[..16]))
    }
}

/// A directory's part of a cache key: a hash of its absolute path.
fn path_key(path: &Path) -> Result<String, Error> {
    let path = std::path::absolute(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
    Ok(cache::sha256_bytes(path.as_os_str().as_encoded_bytes())[..16].to_string())
}

/// The object tree of one (source, toolchain), held under its lock for one build.
struct ObjectTree {
    entry: PathBuf,
    tree: PathBuf,
    _lock: cache::CacheLock,
}

impl ObjectTree {
    /// Wait for the tree's lock, empty the tree unless the build that last used it finished, and mark it
    /// in use until [`ObjectTree::finished`].
    fn take(cache: &Cache, key: &str, report: StepReporter) -> Result<ObjectTree, Error> {
        let lock = cache.lock_reporting(OBJECTS, key, &mut || {
            report("waiting for another build of this source to finish with its object tree")
        })?;
        let entry = cache.entry(OBJECTS, key);
        let tree = entry.join(OBJECT_TREE);
        let complete = entry.join(OBJECT_TREE_COMPLETE);
        let io = |what: &str, path: &Path, e| Error::io(format!("{what} {}", path.display()), e);
        if complete.exists() {
            std::fs::remove_file(&complete).map_err(|e| io("removing", &complete, e))?;
        } else if tree.exists() {
            report("emptying an object tree whose last build did not finish");
            std::fs::remove_dir_all(&tree).map_err(|e| io("removing", &tree, e))?;
        }
        std::fs::create_dir_all(&tree).map_err(|e| io("creating", &tree, e))?;
        Ok(ObjectTree { entry, tree, _lock: lock })
    }

    /// kbuild's `O=` directory.
    fn dir(&self) -> &Path {
        &self.tree
    }

    /// The build finished: the next one may build on what is in the tree.
    fn finished(self) -> Result<(), Error> {
        cache::write_atomic(&self.entry.join(OBJECT_TREE_COMPLETE), b"")
    }
}

/// The unpacked source of a kernel source package, from the cache or downloaded and unpacked into it
/// (from `suite`: `None` for the system's apt sources). Builds must never write into it: kernel builds
/// and the selftests build share it, out of tree.
pub fn unpacked_source(
    cache: &Cache,
    archives: &Archives,
    suite: Option<&str>,
    pinned: &PinnedPackage,
    report: StepReporter,
) -> Result<PathBuf, Error> {
    let package = &pinned.package();
    let key = format!("{}_{}", package.name, package.version);
    let entry = cache.entry(SOURCES, &key);
    if let Some(tree) = read_source_entry(&entry) {
        return Ok(tree);
    }
    let _lock = cache.lock(SOURCES, &key)?;
    if let Some(tree) = read_source_entry(&entry) {
        return Ok(tree);
    }
    let staging = cache.staging_dir()?;
    let download = cache.staging_dir()?;
    report(&format!("downloading {} {}", package.name, package.version));
    let deb = archives.apt(suite)?.download(std::slice::from_ref(pinned), download.path())?.remove(0);
    report(&format!("unpacking {}", package.name));
    let mut throttle = Throttle::new();
    let tarball = crate::kernel::deb::extract_source_tarball(&deb, staging.path(), &mut |files| {
        if throttle.ready() {
            report(&format!("unpacking {}: {files} files", package.name));
        }
        // An interrupt must not wait for 90,000 files: the staging directory is removed on the way out.
        !crate::children::is_cancelled()
    })
    .map_err(|e| if crate::children::is_cancelled() { Error::Cancelled } else { e.into() })?;
    drop(download);
    // The tarball holds one directory, `linux-source-6.12/`.
    let mut dirs = std::fs::read_dir(staging.path())
        .map_err(|e| Error::io("listing the unpacked source", e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
    let (Some(dir), None) = (dirs.next(), dirs.next()) else {
        return Err(Error::NotASourceTree {
            path: PathBuf::from(&tarball),
            why: "it does not hold exactly one top-level directory".into(),
        });
    };
    let record = SourceRecord { package: package.clone(), tree: dir.file_name().to_string_lossy().into_owned() };
    check_source_tree(&staging.path().join(&record.tree))?;
    let json = serde_json::to_vec_pretty(&record).expect("source record serializes");
    cache::write_atomic(&staging.path().join(SOURCE_RECORD), &json)?;
    cache.commit(staging, &entry)?;
    read_source_entry(&entry).ok_or_else(|| Error::CacheEntryUnverified { path: entry.clone() })
}

/// The record of an unpacked source package (`sources/KEY/source.json`), written last.
#[derive(serde::Serialize, serde::Deserialize)]
struct SourceRecord {
    package: Package,
    /// The tree's directory in the entry.
    tree: String,
}

const SOURCE_RECORD: &str = "source.json";

/// The tree of a whole source entry. The tree is not hashed (1.5 GB, 90,000 files): entries appear by
/// an atomic rename after the record is written, and the build itself would notice a damaged tree.
fn read_source_entry(entry: &Path) -> Option<PathBuf> {
    let record: SourceRecord = serde_json::from_slice(&std::fs::read(entry.join(SOURCE_RECORD)).ok()?).ok()?;
    let tree = entry.join(record.tree);
    tree.join("Makefile").is_file().then_some(tree)
}

fn check_source_tree(path: &Path) -> Result<(), Error> {
    let missing = ["Makefile", "arch/x86/Kconfig", "scripts/kconfig"].into_iter().find(|p| !path.join(p).exists());
    match missing {
        Some(file) => Err(Error::NotASourceTree { path: path.to_path_buf(), why: format!("it has no {file}") }),
        None => Ok(()),
    }
}

/// Identifies the state of a local tree without reading it all: every file's path, size and
/// modification time (`.git` aside). Editing a file, or checking out another commit, changes it.
fn tree_fingerprint(root: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                if entry.file_name() != ".git" {
                    dirs.push(entry.path());
                }
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            files.push(format!("{relative}\0{}\0{}.{}\n", meta.size(), meta.mtime(), meta.mtime_nsec()));
        }
    }
    files.sort();
    Ok(cache::sha256_bytes(files.concat().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_follows_the_options_not_the_comments() {
        let Fixture { dir, cache, tree, .. } = fixture();
        let _ = &cache;
        let fragment = dir.path().join("minimal");
        let recipe = BuildRecipe { tree: SourceTree::Local { path: tree.clone() }, fragments: vec![fragment.clone()] };
        let key = |text: &str| {
            std::fs::write(&fragment, text).unwrap();
            recipe.key(None).unwrap()
        };
        let first = key("CONFIG_A=y\n");
        assert!(first.starts_with("tree-") && first.contains("+build-"), "{first}");
        assert_eq!(key("# why A\nCONFIG_A=y\n"), first);
        assert_ne!(key("CONFIG_A=y\nCONFIG_B=y\n"), first);
        std::fs::write(&fragment, "CONFIG_A=y\n").unwrap();
        std::fs::write(tree.join("Makefile"), "VERSION = 7\n").unwrap();
        assert_ne!(recipe.key(None).unwrap(), first, "an edited tree is another kernel");
        assert!(recipe.cached(None, &cache).unwrap().is_none());
    }

    #[test]
    fn fragment_and_tree_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let fragment = dir.path().join("frag");
        std::fs::write(&fragment, "CONFIG_A=y\nPROC_FS=y\n").unwrap();
        let recipe = BuildRecipe { tree: SourceTree::Local { path: dir.path().into() }, fragments: vec![fragment] };
        let err = recipe.key(None).err().unwrap().to_string();
        assert!(err.contains("frag: line 2: `PROC_FS=y`"), "{err}");
        let recipe = BuildRecipe { fragments: vec![], ..recipe };
        let err = recipe.key(None).err().unwrap().to_string();
        assert!(err.contains("is not a Linux source tree: it has no Makefile"), "{err}");
    }

    /// A source tree and a fake `make` that does what kbuild does, in miniature: `tinyconfig` writes a
    /// `.config`, `olddefconfig` drops CONFIG_NEEDS_DEP (as Kconfig drops an option whose dependencies
    /// are not met), `bzImage` "compiles" and writes an image, recording each run as `build` (an empty
    /// object tree) or `incremental` (one it compiled in before), and fails when the config has
    /// CONFIG_BREAK_BUILD=y.
    struct Fixture {
        dir: tempfile::TempDir,
        cache: Cache,
        tree: PathBuf,
        make: String,
    }

    const FAKE_MAKE: &str = r#"#!/bin/sh
for arg in "$@"; do case "$arg" in O=*) out="${arg#O=}" ;; esac; done
case " $* " in
*" ARCH=x86_64 "*) ;;
*) echo "no ARCH=x86_64" >&2; exit 2 ;;
esac
case " $* " in
*" tinyconfig "*) printf 'CONFIG_64BIT=y\n# CONFIG_A is not set\n' > "$out/.config" ;;
*" olddefconfig "*) grep -v '^CONFIG_NEEDS_DEP=' "$out/.config" > "$out/.config.new"; mv "$out/.config.new" "$out/.config" ;;
*" bzImage "*)
  if [ -e "$out/compiled" ]; then echo incremental >> "DIR/builds"; else echo build >> "DIR/builds"; fi
  touch "$out/compiled"
  echo "  CC      init/main.o"
  sleep 0.2
  if grep -q '^CONFIG_BREAK_BUILD=y' "$out/.config"; then echo "init/main.c:1: error: broken on purpose" >&2; exit 2; fi
  mkdir -p "$out/arch/x86/boot" "$out/include/config"
  cp "DIR/bzImage" "$out/arch/x86/boot/bzImage"
  echo 6.12.0-test > "$out/include/config/kernel.release" ;;
esac
"#;

    fn fixture() -> Fixture {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let tree = dir.path().join("linux");
        for path in ["arch/x86", "scripts/kconfig"] {
            std::fs::create_dir_all(tree.join(path)).unwrap();
        }
        std::fs::write(tree.join("Makefile"), "VERSION = 6\n").unwrap();
        std::fs::write(tree.join("arch/x86/Kconfig"), "").unwrap();
        let mut image = vec![0u8; 0x1000];
        image[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&(0x300u16).to_le_bytes());
        image[0x500..0x50B].copy_from_slice(b"6.12.0-test");
        std::fs::write(dir.path().join("bzImage"), image).unwrap();
        let make = dir.path().join("make");
        std::fs::write(&make, FAKE_MAKE.replace("DIR", &dir.path().display().to_string())).unwrap();
        std::fs::set_permissions(&make, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fixture { cache, tree, make: make.display().to_string(), dir }
    }

    impl Fixture {
        fn recipe(&self, fragment: &str) -> BuildRecipe {
            let path = self.dir.path().join("fragment");
            std::fs::write(&path, fragment).unwrap();
            BuildRecipe { tree: SourceTree::Local { path: self.tree.clone() }, fragments: vec![path] }
        }

        fn build(&self, recipe: &BuildRecipe) -> Result<Kernel, Error> {
            let host = Host { make: &self.make, prerequisites: &[], ccache: false, toolchain: &[] };
            recipe.resolve_on(&host, None, &self.cache, &Archives::new(&self.cache, None), &mut |_| {})
        }

        fn builds(&self) -> usize {
            self.build_kinds().len()
        }

        /// `build` or `incremental` for each run of `make bzImage`.
        fn build_kinds(&self) -> Vec<String> {
            let text = std::fs::read_to_string(self.dir.path().join("builds")).unwrap_or_default();
            text.lines().map(str::to_string).collect()
        }
    }

    #[test]
    fn a_build_is_cached_with_its_config() {
        let fixture = fixture();
        let recipe = fixture.recipe("CONFIG_A=y\n");
        assert!(recipe.cached(None, &fixture.cache).unwrap().is_none());
        let kernel = fixture.build(&recipe).unwrap();
        assert_eq!(kernel.release, "6.12.0-test");
        assert_eq!(kernel.package, None);
        assert_eq!(kernel.config_value("CONFIG_A").as_deref(), Some("y"));
        assert_eq!(kernel.config_value("CONFIG_64BIT").as_deref(), Some("y"));
        assert!(kernel.image.starts_with(fixture.cache.root().join("kernels")), "{}", kernel.image.display());
        assert_eq!(fixture.build(&recipe).unwrap(), kernel);
        assert_eq!(recipe.cached(None, &fixture.cache).unwrap(), Some(kernel));
        assert_eq!(fixture.builds(), 1, "a cached kernel is not built again");
        assert!(!fixture.tree.join(".config").exists(), "the build wrote into the source tree");
        assert_eq!(std::fs::read_dir(fixture.cache.root().join("tmp")).unwrap().count(), 0, "staging left behind");
    }

    #[test]
    fn an_option_kconfig_drops_fails_the_build_with_the_list() {
        let fixture = fixture();
        let err = fixture.build(&fixture.recipe("CONFIG_A=y\nCONFIG_NEEDS_DEP=y\n")).unwrap_err().to_string();
        assert!(
            err.contains("does not have what fragment asks for:\n  CONFIG_NEEDS_DEP requested y, got unset\n"),
            "{err}"
        );
        assert!(!err.contains("CONFIG_A "), "{err}");
        assert_eq!(fixture.builds(), 0, "nothing is compiled with a config that lacks an option");
    }

    #[test]
    fn a_failed_build_shows_the_end_of_its_output() {
        let fixture = fixture();
        let recipe = fixture.recipe("CONFIG_BREAK_BUILD=y\n");
        let err = fixture.build(&recipe).unwrap_err();
        let Error::BuildFailed { step, log, tail, .. } = &err else { panic!("{err}") };
        assert!(step.starts_with("make -j") && step.ends_with(" bzImage"), "{step}");
        assert!(tail.ends_with("init/main.c:1: error: broken on purpose"), "{tail}");
        assert!(std::fs::read_to_string(log).unwrap().contains("### make tinyconfig"));
        assert!(recipe.cached(None, &fixture.cache).unwrap().is_none(), "a failed build is not cached");
        assert_eq!(std::fs::read_dir(fixture.cache.root().join("tmp")).unwrap().count(), 0, "staging left behind");
    }

    #[test]
    fn builds_of_one_source_share_its_object_tree_unless_the_last_one_failed() {
        let fixture = fixture();
        let first = fixture.build(&fixture.recipe("CONFIG_A=y\n")).unwrap();
        let second = fixture.build(&fixture.recipe("CONFIG_B=y\n")).unwrap();
        assert_eq!(second.config_value("CONFIG_A"), None, "the second build has its own config");
        assert_eq!(first.config_value("CONFIG_A").as_deref(), Some("y"));
        assert_eq!(fixture.build_kinds(), ["build", "incremental"]);
        fixture.build(&fixture.recipe("CONFIG_BREAK_BUILD=y\n")).unwrap_err();
        fixture.build(&fixture.recipe("CONFIG_C=y\n")).unwrap();
        assert_eq!(
            fixture.build_kinds(),
            ["build", "incremental", "incremental", "build"],
            "a build after one that failed starts from an empty tree"
        );
        assert!(!fixture.tree.join("compiled").exists(), "the build wrote into the source tree");
    }

    #[test]
    fn two_builders_of_the_same_kernel_build_it_once() {
        let fixture = std::sync::Arc::new(fixture());
        let recipe = fixture.recipe("CONFIG_A=y\n");
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let builders: Vec<_> = (0..2)
            .map(|_| {
                let (fixture, recipe, start) = (fixture.clone(), recipe.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    fixture.build(&recipe).unwrap()
                })
            })
            .collect();
        let kernels: Vec<Kernel> = builders.into_iter().map(|b| b.join().unwrap()).collect();
        assert_eq!(kernels[0], kernels[1]);
        assert_eq!(fixture.builds(), 1, "the second builder must wait for the first and reuse its kernel");
    }
}
