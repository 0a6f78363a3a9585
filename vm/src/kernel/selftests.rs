//! The kernel's selftests (`tools/testing/selftests`) built from a Debian kernel source package, statically
//! (a guest has no dynamic loader and no libraries), and cached like kernels.
//!
//! The steps, all under the cache lock of the build's key:
//! 1. the source: the unpacked source package kernel builds use too (`sources/PACKAGE_VERSION`, see
//!    [`crate::kernel::build`]), downloaded and unpacked if it is not there yet;
//! 2. `make O=OUT ARCH=x86_64 -jN headers` in it: the UAPI headers the tests compile against, into OUT;
//! 3. a working copy of the tree, in the staging directory: `tools/` copied, every other top-level entry
//!    a symlink into the source. Building out of tree is not enough: some selftest Makefiles write into
//!    their own directory whatever `OUTPUT=` says (mm's `check_config.sh` writes `local_config.mk` and
//!    `local_config.h` there), and the source must stay clean for the kernel builds that share it;
//! 4. `make -C COPY/tools/testing/selftests O=OUT TARGETS="mm proc" USERLDFLAGS=-static -jN -k`: the
//!    stock Makefiles, each collection into `OUT/kselftest/COLLECTION` (kselftest's own out-of-tree
//!    layout, with `-isystem OUT/usr/include`); `-k` so that a program that does not build does not cost
//!    the others. `CFLAGS=` is not passed: on the command line it would replace the Makefiles' include
//!    flags;
//! 5. what each collection's Makefile says it builds (`TEST_GEN_PROGS`, `TEST_GEN_PROGS_EXTENDED`,
//!    `TEST_GEN_FILES`, `TEST_CUSTOM_PROGS`, read by make itself through a one-rule makefile of ksnap's)
//!    against what is there: statically linked x86-64 executables are kept, as `COLLECTION/NAME`; a
//!    program that did not build, or that its Makefile linked dynamically (mm's `protection_keys_64` and
//!    `pkey_sighandler_tests_64` ignore `USERLDFLAGS`), is recorded with why; scripts and data are left
//!    out (a guest runs the binaries, not kselftest's runner).
//!
//! The entry `CACHE/selftests/KEY/` holds the binaries and `selftests.json` (the source, collections,
//! toolchain, each binary's SHA-256, what was not built and why). Every read checks the hashes, and a
//! damaged entry is built again. The key is the source package and version, the sorted collections, the
//! toolchain (`gcc --version` and the Debian versions of the libc and of the libraries the tests link
//! statically) and a recipe version (`RECIPE`): a toolchain upgrade is a rebuild. The full output of
//! `make` is kept in `CACHE/build-logs/selftests-KEY.log`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::kernel::apt::{Archives, PinnedPackage};
use crate::kernel::build;
use crate::kernel::build::host::{self, capture, BuildProgress, Make, Need, Prerequisite};
use crate::kernel::entry::{Package, StepReporter};

/// Which selftests to build: collections of `tools/testing/selftests` (`mm`, `proc`, `filesystems/epoll`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestsRecipe {
    /// Directories under `tools/testing/selftests`, as asked for; sorted and deduplicated when built.
    pub collections: Vec<String>,
}

/// Selftests built into the cache: every static binary by test name (`mm/cow`), and what did not build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selftests {
    /// The cache entry.
    pub dir: PathBuf,
    /// The source package they were built from.
    pub source: Package,
    /// The collections built, sorted.
    pub collections: Vec<String>,
    /// What built them: `gcc (Debian 12.2.0-14+deb12u1) 12.2.0, libc6-dev 2.36-9+deb12u14, …`.
    pub toolchain: String,
    /// Every statically linked x86-64 executable the build produced, by test name (`mm/cow`).
    pub built: BTreeMap<String, PathBuf>,
    not_built: Vec<(String, String)>,
    log: PathBuf,
}

impl Selftests {
    /// The static binary of test `test` (`mm/cow`); an error naming the build log when it did not build
    /// (and why: it did not compile, or was not linked statically), or when no collection built has it.
    pub fn binary(&self, test: &str) -> Result<PathBuf, Error> {
        if let Some(path) = self.built.get(test) {
            return Ok(path.clone());
        }
        let not_built = |name: &str| self.not_built.iter().find(|(n, _)| n == name).map(|(_, why)| why.clone());
        let unknown = |why: String| Error::UnknownSelftest { test: test.to_string(), why };
        if let Some(why) = not_built(test) {
            return Err(Error::SelftestNotBuilt { test: test.to_string(), why, log: self.log.clone() });
        }
        let collection = self
            .collections
            .iter()
            .filter(|c| test.strip_prefix(c.as_str()).is_some_and(|rest| rest.starts_with('/')))
            .max_by_key(|c| c.len());
        let Some(collection) = collection else {
            let built = match self.collections.is_empty() {
                true => "none".to_string(),
                false => self.collections.join(", "),
            };
            return Err(unknown(format!("its collection is not among those built (built: {built})")));
        };
        // The whole collection is recorded as not built when its Makefile could not even be read.
        if let Some(why) = not_built(collection) {
            return Err(Error::SelftestNotBuilt { test: test.to_string(), why, log: self.log.clone() });
        }
        Err(unknown(format!(
            "the Makefile of collection {collection} in {} {} builds no program of that name",
            self.source.name, self.source.version
        )))
    }

    /// The programs the Makefiles build that are not usable here, with why: `("mm/protection_keys_64",
    /// "not a static x86-64 executable: dynamically linked …")`.
    pub fn not_built(&self) -> &[(String, String)] {
        &self.not_built
    }

    /// The full output of the build that made this entry.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

/// Part of every selftests build's cache key: change it when the way selftests are built changes.
const RECIPE: &str = "ksnap selftests build 1: make ARCH=x86_64 headers; tools/ copied; \
                      make -C tools/testing/selftests TARGETS=… USERLDFLAGS=-static -k; static x86-64 executables";
const CACHE_KIND: &str = "selftests";
/// The record of an entry, written last.
const RECORD: &str = "selftests.json";
const SELFTESTS: &str = "tools/testing/selftests";
/// The only top-level directory of the source the working copy copies (see the module documentation).
const COPIED: &str = "tools";
/// The Debian packages whose versions are part of the toolchain, besides gcc: the libc, and the libraries
/// mm's tests link (libnuma, libcap, liburing) — statically, so their code is in the binaries.
const TOOLCHAIN_PACKAGES: [&str; 4] = ["libc6-dev", "libnuma-dev", "libcap-dev", "liburing-dev"];
/// What the selftests build needs: make and a C toolchain, and the headers (and, with them, the static
/// libraries) the mm tests use. Without liburing, mm's Makefile quietly builds `cow` and `gup_longterm`
/// without their io_uring cases; here its absence is an error, not a different build.
const PREREQUISITES: [Prerequisite; 7] = [
    Prerequisite { need: Need::Program("make"), package: "make" },
    Prerequisite { need: Need::Program("gcc"), package: "gcc" },
    Prerequisite { need: Need::Program("ld"), package: "binutils" },
    Prerequisite { need: Need::Header("stdlib.h"), package: "libc6-dev" },
    Prerequisite { need: Need::Header("numa.h"), package: "libnuma-dev" },
    Prerequisite { need: Need::Header("sys/capability.h"), package: "libcap-dev" },
    Prerequisite { need: Need::Header("liburing.h"), package: "liburing-dev" },
];
/// Variables the selftests' Makefiles read from the environment, which would change what is built or
/// where (on top of what [`Make`] always removes).
const ENV_REMOVE: &[&str] = &[
    "ARCH",
    "CC",
    "CFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "LDLIBS",
    "USERCFLAGS",
    "USERLDFLAGS",
    "KHDR_INCLUDES",
    "BUILD",
    "OUTPUT",
    "O",
    "TARGETS",
    "SKIP_TARGETS",
    "FORCE_TARGETS",
    "INSTALL_PATH",
    "KSFT_INSTALL_PATH",
    "V",
];
/// The one-rule makefile read after a collection's own, to have make print what the collection builds.
const LIST_MAKEFILE: &str = "ksnap-list:\n\t@echo 'ksnap-programs:' $(TEST_GEN_PROGS) $(TEST_GEN_PROGS_EXTENDED) \
                             $(TEST_GEN_FILES) $(TEST_CUSTOM_PROGS)\n";
const LIST_MARKER: &str = "ksnap-programs:";

/// The host programs a build runs; the tests substitute a fake `make` and toolchain.
struct Host<'a> {
    make: &'a str,
    prerequisites: &'a [Prerequisite],
    toolchain: &'a dyn Fn() -> String,
}

const HOST: Host<'static> = Host { make: "make", prerequisites: &PREREQUISITES, toolchain: &host_toolchain };

/// The cache record of a selftests build (`selftests.json`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    recipe: String,
    source: Package,
    collections: Vec<String>,
    toolchain: String,
    /// Each binary's SHA-256, by test name: the binary is the entry's file of that name.
    built: BTreeMap<String, String>,
    not_built: Vec<NotBuilt>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct NotBuilt {
    test: String,
    why: String,
}

impl SelftestsRecipe {
    /// The selftests built from `source` (the pinned source package, found through apt in `suite`: `None`
    /// for the system's apt sources), built (or downloaded, unpacked and built) into the cache if they are
    /// not there yet.
    pub fn resolve(
        &self,
        source: &PinnedPackage,
        suite: Option<&str>,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Selftests, Error> {
        self.resolve_on(&HOST, source, suite, cache, archives, report)
    }

    /// The selftests, if they are already built from `source`. Never downloads or builds.
    pub fn cached(&self, source: &Package, cache: &Cache) -> Result<Option<Selftests>, Error> {
        self.cached_on(&HOST, source, cache)
    }

    /// The cache key of this build from `source` with this host's toolchain.
    pub fn key(&self, source: &Package) -> Result<String, Error> {
        self.key_on(&HOST, source)
    }

    fn key_on(&self, host: &Host, source: &Package) -> Result<String, Error> {
        Ok(key(source, &self.checked_collections(source)?, &(host.toolchain)()))
    }

    fn cached_on(&self, host: &Host, source: &Package, cache: &Cache) -> Result<Option<Selftests>, Error> {
        let key = self.key_on(host, source)?;
        Ok(read_valid_entry(&cache.entry(CACHE_KIND, &key), &log_path(cache, &key)))
    }

    fn resolve_on(
        &self,
        host: &Host,
        source: &PinnedPackage,
        suite: Option<&str>,
        cache: &Cache,
        archives: &Archives,
        report: StepReporter,
    ) -> Result<Selftests, Error> {
        let package = source.package();
        let collections = self.checked_collections(&package)?;
        let toolchain = (host.toolchain)();
        let key = key(&package, &collections, &toolchain);
        let entry = cache.entry(CACHE_KIND, &key);
        let log = log_path(cache, &key);
        if let Some(selftests) = read_valid_entry(&entry, &log) {
            return Ok(selftests);
        }
        let _lock = cache.lock(CACHE_KIND, &key)?;
        // Another process may have built it while we waited for the lock.
        if let Some(selftests) = read_valid_entry(&entry, &log) {
            return Ok(selftests);
        }
        if entry.exists() {
            report(&format!("cache entry {} is incomplete or corrupt; building it again", entry.display()));
        }
        if let Some((missing, packages)) = host::missing_prerequisites(host.prerequisites.iter()) {
            return Err(Error::SelftestsToolsMissing { missing, packages });
        }
        let tree = build::unpacked_source(cache, archives, suite, source, report)?;
        let staging = cache.staging_dir()?;
        let job = BuildJob { make: host.make, tree: &tree, source: &package, collections: &collections, log: &log };
        let outcome = build_into(&job, staging.path(), report)?;
        let record = Record {
            recipe: RECIPE.to_string(),
            source: package,
            collections,
            toolchain,
            built: outcome.built,
            not_built: outcome.not_built.into_iter().map(|(test, why)| NotBuilt { test, why }).collect(),
        };
        let json = serde_json::to_vec_pretty(&record).expect("selftests record serializes");
        cache::write_atomic(&staging.path().join(RECORD), &json)?;
        cache.commit(staging, &entry)?;
        read_valid_entry(&entry, &log).ok_or_else(|| Error::CacheEntryUnverified { path: entry.clone() })
    }

    /// The collections, sorted and each once, after checking that each is a plain relative path (it
    /// becomes a `make -C` directory and a directory of the cache entry).
    fn checked_collections(&self, source: &Package) -> Result<Vec<String>, Error> {
        let invalid = |collection: &str, why: &str| Error::NoSuchSelftests {
            collection: collection.to_string(),
            source_package: format!("{} {}", source.name, source.version),
            why: why.to_string(),
        };
        if self.collections.is_empty() {
            return Err(invalid("(none)", "no collection was asked for"));
        }
        for collection in &self.collections {
            let plain = collection.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            });
            if !plain {
                return Err(invalid(collection, "a collection is a directory of tools/testing/selftests (`mm`)"));
            }
        }
        let sorted: BTreeSet<&String> = self.collections.iter().collect();
        Ok(sorted.into_iter().cloned().collect())
    }
}

fn key(source: &Package, collections: &[String], toolchain: &str) -> String {
    let hash = cache::sha256_bytes(format!("{RECIPE}\n{}\n{toolchain}", collections.join(" ")).as_bytes());
    format!("{}_{}+selftests-{}", source.name, source.version, &hash[..16])
}

fn log_path(cache: &Cache, key: &str) -> PathBuf {
    cache.root().join("build-logs").join(format!("selftests-{key}.log"))
}

/// The selftests recorded in an entry, if the entry is whole and every binary matches its hash.
fn read_valid_entry(entry: &Path, log: &Path) -> Option<Selftests> {
    let record: Record = serde_json::from_slice(&std::fs::read(entry.join(RECORD)).ok()?).ok()?;
    if record.recipe != RECIPE {
        return None;
    }
    let mut built = BTreeMap::new();
    for (test, sha256) in &record.built {
        // Test names become paths: a record naming `../x` is not one ksnap wrote.
        if !is_plain_relative(test) {
            return None;
        }
        let path = entry.join(test);
        if &cache::sha256_file(&path).ok()? != sha256 {
            return None;
        }
        built.insert(test.clone(), path);
    }
    Some(Selftests {
        dir: entry.to_path_buf(),
        source: record.source,
        collections: record.collections,
        toolchain: record.toolchain,
        built,
        not_built: record.not_built.into_iter().map(|n| (n.test, n.why)).collect(),
        log: log.to_path_buf(),
    })
}

fn is_plain_relative(name: &str) -> bool {
    !name.is_empty() && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
}

/// What a build left in the staging directory: the binaries kept (name → SHA-256) and the rest, with why.
struct Outcome {
    built: BTreeMap<String, String>,
    not_built: Vec<(String, String)>,
}

/// What one selftests build builds: `collections` of the source `tree` (of the package `source`), with the
/// `make` program `make`, its output logged to `log`.
struct BuildJob<'a> {
    make: &'a str,
    tree: &'a Path,
    source: &'a Package,
    collections: &'a [String],
    log: &'a Path,
}

/// Build the job's collections and copy the static binaries into `staging` as `COLLECTION/NAME` (see the
/// module documentation for the steps). The build itself happens in a directory inside `staging`, removed
/// before returning; nothing is written into the job's tree.
fn build_into(job: &BuildJob, staging: &Path, report: StepReporter) -> Result<Outcome, Error> {
    let tree = std::path::absolute(job.tree).map_err(|e| Error::io(format!("resolving {}", job.tree.display()), e))?;
    check_collections_exist(&tree, job.source, job.collections)?;
    let dirs = BuildDirs::create(staging)?;
    let jobs = format!("-j{}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let stamp = format!("{} {}", job.source.name, job.source.version);
    let mut make = Make::new(job.make, &tree, &dirs.out, job.log, &stamp)?;

    report("make headers");
    make.run(&[&jobs, "headers"], &mut |_| {})?;

    working_copy(&tree, &dirs.copy)?;
    let (failed, build_error) = dirs.compile(&mut make, job.collections, &jobs, report)?;
    let mut not_built: Vec<(String, String)> = Vec::new();
    let expected = dirs.expected_programs(&mut make, job.collections, &mut not_built)?;
    let built = dirs.keep_static_executables(job.collections, &expected, &failed, staging, &mut not_built)?;
    if built.is_empty() {
        if let Some(error) = build_error {
            return Err(error);
        }
    }
    not_built.sort();
    dirs.work.close().map_err(|e| Error::io("removing the build directory", e))?;
    Ok(Outcome { built, not_built })
}

/// Fail, naming the collection, if a collection has no Makefile in `tree`.
fn check_collections_exist(tree: &Path, source: &Package, collections: &[String]) -> Result<(), Error> {
    for collection in collections {
        let makefile = format!("{SELFTESTS}/{collection}/Makefile");
        if !tree.join(&makefile).is_file() {
            return Err(Error::NoSuchSelftests {
                collection: collection.clone(),
                source_package: format!("{} {}", source.name, source.version),
                why: format!("it has no {makefile}"),
            });
        }
    }
    Ok(())
}

/// The directories of one build, inside the staging directory: kbuild's `O=` directory, the working copy
/// of the source and, in them, the selftests' Makefiles and what they build.
struct BuildDirs {
    /// Removed when the build is done; dropped (and removed) with it when the build fails.
    work: tempfile::TempDir,
    /// `work`'s path, absolute.
    path: PathBuf,
    /// kbuild's `O=` directory.
    out: PathBuf,
    /// The working copy of the source ([`working_copy`]).
    copy: PathBuf,
    /// `tools/testing/selftests` in the working copy.
    selftests: PathBuf,
    /// Where the selftests' Makefiles build into: `OUT/kselftest/COLLECTION/…`.
    kselftest: PathBuf,
}

impl BuildDirs {
    fn create(staging: &Path) -> Result<BuildDirs, Error> {
        // A leading dot: no collection is called that, so it cannot meet a collection's directory.
        let work = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(staging)
            .map_err(|e| Error::io("creating the build directory", e))?;
        let path = std::path::absolute(work.path()).map_err(|e| Error::io("resolving the build directory", e))?;
        let out = path.join("out");
        let copy = path.join("src");
        std::fs::create_dir(&out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
        let selftests = copy.join(SELFTESTS);
        let kselftest = out.join("kselftest");
        Ok(BuildDirs { work, path, out, copy, selftests, kselftest })
    }

    /// `make -k` of the collections: the tests whose build make said failed, and make's own error if it
    /// failed (an error only if nothing was built, decided once the programs are accounted for).
    fn compile(
        &self,
        make: &mut Make,
        collections: &[String],
        jobs: &str,
        report: StepReporter,
    ) -> Result<(BTreeSet<String>, Option<Error>), Error> {
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let built_some = {
            let mut progress = BuildProgress::new(report, &format!("building selftests {}", collections.join(" ")));
            let args = [
                format!("O={}", self.out.display()),
                format!("TARGETS={}", collections.join(" ")),
                "USERLDFLAGS=-static".to_string(),
                jobs.to_string(),
                "-k".to_string(),
            ];
            make.run_in(&self.selftests, &args, ENV_REMOVE, &mut |line| {
                progress.line(line);
                if let Some(test) = failed_target(line).and_then(|target| test_name(&self.kselftest, target)) {
                    failed.insert(test);
                }
            })
        };
        // make's status says little: a collection fails when one of its programs does, and the top Makefile
        // only when every collection failed. Programs are accounted for one by one below; only a build that
        // made nothing is an error.
        let build_error = match built_some {
            Ok(()) => None,
            Err(e @ Error::BuildFailed { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        Ok((failed, build_error))
    }

    /// The tests the collections' Makefiles say they build (`COLLECTION/NAME`); a collection whose
    /// Makefile could not be read goes into `not_built`.
    fn expected_programs(
        &self,
        make: &mut Make,
        collections: &[String],
        not_built: &mut Vec<(String, String)>,
    ) -> Result<BTreeSet<String>, Error> {
        let list = self.path.join("ksnap-list.mk");
        std::fs::write(&list, LIST_MAKEFILE).map_err(|e| Error::io(format!("writing {}", list.display()), e))?;
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for collection in collections {
            let programs = match self.listed_programs(make, &list, collection) {
                Ok(programs) => programs,
                Err(Error::BuildFailed { step, .. }) => {
                    not_built.push((collection.clone(), format!("its Makefile could not be read (`{step}` failed)")));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for program in programs {
                // Names a Makefile adds after including lib.mk are not prefixed with $(OUTPUT).
                let name = match Path::new(&program).is_absolute() {
                    true => test_name(&self.kselftest, &program),
                    false => Some(format!("{collection}/{program}")),
                };
                if let Some(name) = name.filter(|name| is_plain_relative(name)) {
                    expected.insert(name);
                }
            }
        }
        Ok(expected)
    }

    /// The programs `collection`'s Makefile builds, as it prints them through the makefile `list`.
    fn listed_programs(&self, make: &mut Make, list: &Path, collection: &str) -> Result<Vec<String>, Error> {
        let output = self.kselftest.join(collection);
        // As the top Makefile runs each collection's (`make OUTPUT=… -C COLLECTION O=…`).
        let args = [
            "-s".to_string(),
            "--no-print-directory".to_string(),
            "-f".to_string(),
            "Makefile".to_string(),
            "-f".to_string(),
            list.display().to_string(),
            format!("OUTPUT={}", output.display()),
            format!("O={}", self.out.display()),
            "USERLDFLAGS=-static".to_string(),
            "ksnap-list".to_string(),
        ];
        let mut programs: Vec<String> = Vec::new();
        make.run_in(&self.selftests.join(collection), &args, ENV_REMOVE, &mut |line| {
            if let Some(words) = line.strip_prefix(LIST_MARKER) {
                programs.extend(words.split_whitespace().map(str::to_string));
            }
        })?;
        Ok(programs)
    }

    /// Copy every static x86-64 executable the build made (expected or not) into `staging`; the
    /// expected tests that are not one go into `not_built`, with why (`failed`: the tests make said
    /// failed). The binaries kept, name → SHA-256.
    fn keep_static_executables(
        &self,
        collections: &[String],
        expected: &BTreeSet<String>,
        failed: &BTreeSet<String>,
        staging: &Path,
        not_built: &mut Vec<(String, String)>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let kselftest = &self.kselftest;
        let mut present: BTreeSet<String> = BTreeSet::new();
        for collection in collections {
            list_files(kselftest, &kselftest.join(collection), &mut present)
                .map_err(|e| Error::io(format!("listing {}", kselftest.join(collection).display()), e))?;
        }
        let mut built = BTreeMap::new();
        for name in expected.union(&present) {
            let path = kselftest.join(name);
            let is_expected = expected.contains(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    // Scripts and data files: not something a guest runs as a test binary.
                    if !is_elf(&path) {
                        continue;
                    }
                    match crate::kernel::elf::check_static_executable(&path) {
                        Ok(()) => {
                            built.insert(name.clone(), keep(&path, staging, name)?);
                        }
                        Err(why) if is_expected => {
                            not_built.push((name.clone(), format!("not a static x86-64 executable: {why}")))
                        }
                        // An intermediate file (an object) the Makefile does not list as a program.
                        Err(_) => {}
                    }
                }
                Ok(meta) if meta.is_dir() => {}
                _ if is_expected => {
                    let why = match failed.contains(name) {
                        true => "it did not compile or link (make failed on it)",
                        false => "it was not built (make did not get to it: something it needs failed)",
                    };
                    not_built.push((name.clone(), why.to_string()));
                }
                _ => {}
            }
        }
        Ok(built)
    }
}

/// Copy the binary at `path` into `staging` as `name`; its SHA-256.
fn keep(path: &Path, staging: &Path, name: &str) -> Result<String, Error> {
    let kept = staging.join(name);
    if let Some(dir) = kept.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::copy(path, &kept).map_err(|e| Error::io(format!("copying {name}"), e))?;
    cache::sha256_file(&kept).map_err(|e| Error::io(format!("hashing {name}"), e))
}

/// The target of a make error line, `make[1]: *** [../lib.mk:225: /out/kselftest/mm/cow] Error 1` →
/// `/out/kselftest/mm/cow` (GNU make ≥ 4.3 names the rule's file and line; older makes only the target).
fn failed_target(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("*** [")?;
    let (inside, _) = rest.rsplit_once("] Error")?;
    Some(inside.rsplit_once(": ").map_or(inside, |(_, target)| target))
}

/// `mm/cow` for `KSELFTEST/mm/cow`; `None` for a path elsewhere.
fn test_name(kselftest: &Path, path: &str) -> Option<String> {
    let relative = Path::new(path).strip_prefix(kselftest).ok()?;
    let name = relative.to_str()?.to_string();
    is_plain_relative(&name).then_some(name)
}

/// Every regular file under `dir`, as a name relative to `root`.
fn list_files(root: &Path, dir: &Path, names: &mut BTreeSet<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A collection that built nothing has no directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(root, &entry.path(), names)?;
        } else if kind.is_file() {
            if let Some(name) = entry.path().strip_prefix(root).ok().and_then(|p| p.to_str()) {
                names.insert(name.to_string());
            }
        }
    }
    Ok(())
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// The tree the selftests are built in, at `copy`: `tools/` copied from `tree`, every other top-level entry
/// a symlink to `tree`'s (absolute). The Makefiles find the kernel's files through `../../..` and read
/// them through the symlinks; what they write into their own directories lands in the copy.
fn working_copy(tree: &Path, copy: &Path) -> Result<(), Error> {
    let io = |what: &str, path: &Path, e| Error::io(format!("{what} {}", path.display()), e);
    std::fs::create_dir(copy).map_err(|e| io("creating", copy, e))?;
    for entry in std::fs::read_dir(tree).map_err(|e| io("listing", tree, e))? {
        let name = entry.map_err(|e| io("listing", tree, e))?.file_name();
        let (from, to) = (tree.join(&name), copy.join(&name));
        if name == COPIED {
            copy_tree(&from, &to).map_err(|e| io("copying", &from, e))?;
        } else {
            std::os::unix::fs::symlink(&from, &to).map_err(|e| io("linking", &to, e))?;
        }
    }
    Ok(())
}

/// Copy a directory tree: files with their permissions and modification times (make compares those: a
/// generated file shipped in the tarball must stay newer than its source), symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&source, &dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &dest)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &dest)?;
            let modified = entry.metadata()?.modified()?;
            std::fs::File::open(&dest)?.set_modified(modified)?;
        }
    }
    Ok(())
}

/// This host's toolchain as the cache key and the snapshots see it: the first line of `gcc --version`
/// (it names the Debian revision) and the installed versions of [`TOOLCHAIN_PACKAGES`] (`absent` if not).
fn host_toolchain() -> String {
    let gcc = capture(Command::new("gcc").arg("--version"))
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| "gcc absent".to_string());
    let mut parts = vec![gcc];
    for package in TOOLCHAIN_PACKAGES {
        let version =
            capture(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Status} ${Version}\n", package]))
                // One line per architecture of a multi-arch package; a removed one keeps its config files.
                .and_then(|text| text.lines().find_map(|line| line.strip_prefix("installed ").map(str::to_string)));
        parts.push(format!("{package} {}", version.as_deref().unwrap_or("absent")));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_error_lines_name_their_target() {
        let line = "make[1]: *** [../lib.mk:225: /o/kselftest/mm/cow] Error 1";
        assert_eq!(failed_target(line), Some("/o/kselftest/mm/cow"));
        assert_eq!(failed_target("make: *** [/o/kselftest/proc/read] Error 2"), Some("/o/kselftest/proc/read"));
        assert_eq!(failed_target("make[1]: Target 'all' not remade because of errors."), None);
        let kselftest = Path::new("/o/kselftest");
        assert_eq!(test_name(kselftest, "/o/kselftest/mm/cow").as_deref(), Some("mm/cow"));
        assert_eq!(test_name(kselftest, "/o/kselftest/filesystems/epoll/x").as_deref(), Some("filesystems/epoll/x"));
        assert_eq!(test_name(kselftest, "/elsewhere/cow"), None);
        assert_eq!(test_name(kselftest, "all"), None);
    }

    #[test]
    fn the_key_follows_source_collections_and_toolchain() {
        let source = Package { name: "linux-source-7.2".into(), version: "7.2.13-1".into() };
        let recipe =
            |collections: &[&str]| SelftestsRecipe { collections: collections.iter().map(|c| c.to_string()).collect() };
        let key_of = |recipe: &SelftestsRecipe, source: &Package, toolchain: &str| {
            key(source, &recipe.checked_collections(source).unwrap(), toolchain)
        };
        let first = key_of(&recipe(&["mm", "proc"]), &source, "gcc 12");
        assert!(first.starts_with("linux-source-7.2_7.2.13-1+selftests-"), "{first}");
        assert_eq!(
            key_of(&recipe(&["proc", "mm", "proc"]), &source, "gcc 12"),
            first,
            "order and repeats do not matter"
        );
        assert_ne!(key_of(&recipe(&["mm"]), &source, "gcc 12"), first);
        assert_ne!(key_of(&recipe(&["mm", "proc"]), &source, "gcc 13"), first);
        let newer = Package { version: "7.2.14-1".into(), ..source.clone() };
        assert_ne!(key_of(&recipe(&["mm", "proc"]), &newer, "gcc 12"), first);
        for bad in ["", "../mm", "/mm", "mm/", ".git", "mm proc", "mm//x"] {
            let err = recipe(&[bad]).checked_collections(&source).unwrap_err().to_string();
            assert!(err.contains("a collection is a directory of tools/testing/selftests"), "{bad}: {err}");
        }
        let err = recipe(&[]).checked_collections(&source).unwrap_err().to_string();
        assert!(err.contains("no collection was asked for"), "{err}");
        assert!(recipe(&["filesystems/epoll"]).checked_collections(&source).is_ok());
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs gcc and dpkg (KSNAP_SKIP_VM=1)")]
    fn the_toolchain_names_gcc_and_the_libraries() {
        let toolchain = host_toolchain();
        assert!(toolchain.starts_with("gcc "), "{toolchain}");
        for package in TOOLCHAIN_PACKAGES {
            assert!(toolchain.contains(&format!(", {package} ")), "{toolchain}");
        }
        assert!(!toolchain.contains("libc6-dev absent"), "libc6-dev is needed to build guest binaries anyway");
    }

    /// An ELF header (and program headers of `segments` types) as a linker would write for x86-64.
    fn fake_elf(e_type: u16, segments: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56 * segments.len()];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[16..18].copy_from_slice(&e_type.to_le_bytes());
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (index, kind) in segments.iter().enumerate() {
            bytes[64 + 56 * index..][..4].copy_from_slice(&kind.to_le_bytes());
        }
        bytes
    }

    /// A fake `make` that does what the kernel's and kselftest's Makefiles do, in miniature. `headers`
    /// installs headers into `O=` (fails if the tree has BREAK_HEADERS); the selftests build writes
    /// `local_config.mk` into each collection's directory (as mm's does), and per collection: `mm`
    /// builds `cow` (static), `dynamic_64` (dynamically linked), fails on `broken`, writes a script and
    /// an object file; `proc` builds `self`; `empty` builds nothing and fails. `ksnap-list` prints what
    /// each collection's Makefile lists (mm also `never`, which nothing builds).
    const FAKE_MAKE: &str = r#"#!/bin/sh
prev=
for arg in "$@"; do
  case "$prev" in -C) dir="$arg" ;; esac
  case "$arg" in
  O=*) out="${arg#O=}" ;;
  OUTPUT=*) output="${arg#OUTPUT=}" ;;
  TARGETS=*) targets="${arg#TARGETS=}" ;;
  esac
  prev="$arg"
done
case " $* " in
*" headers "*)
  case " $* " in *" ARCH=x86_64 "*) ;; *) echo "no ARCH=x86_64" >&2; exit 2 ;; esac
  if [ -e "$dir/BREAK_HEADERS" ]; then echo "scripts/unifdef.c:1: error: broken on purpose" >&2; exit 2; fi
  mkdir -p "$out/usr/include/linux"
  echo "  HDRINST usr/include/linux/mman.h"
  touch "$out/usr/include/linux/mman.h"
  exit 0 ;;
*" ksnap-list "*)
  case "$(basename "$dir")" in
  mm) echo "ksnap-programs: $output/cow $output/dynamic_64 $output/broken $output/never" ;;
  proc) echo "ksnap-programs: $output/self" ;;
  esac
  exit 0 ;;
esac
case " $* " in *" USERLDFLAGS=-static "*" -k "*) ;; *) echo "not a static -k build: $*" >&2; exit 2 ;; esac
[ -e "$out/usr/include/linux/mman.h" ] || { echo "no headers" >&2; exit 2; }
echo build >> "DIR/builds"
sleep 0.2
ret=1
for coll in $targets; do
  o="$out/kselftest/$coll"
  mkdir -p "$o"
  echo "IOURING_EXTRA_LIBS = -luring" > "$dir/$coll/local_config.mk"
  status=0
  case "$coll" in
  mm)
    echo "  CC       cow"; cp "DIR/static" "$o/cow"
    echo "  CC       dynamic_64"; cp "DIR/dynamic" "$o/dynamic_64"
    echo "  CC       broken"; echo "broken.c:1:2: error: broken on purpose" >&2
    echo "make[1]: *** [../lib.mk:225: $o/broken] Error 1"
    cp "DIR/script" "$o/run_vmtests.sh"
    cp "DIR/object" "$o/vm_util.o"
    status=2 ;;
  proc) echo "  CC       self"; cp "DIR/static" "$o/self" ;;
  empty) echo "empty.c:1:2: error: nothing builds" >&2; status=2 ;;
  esac
  ret=$((ret * status))
done
exit $ret
"#;

    struct Fixture {
        dir: tempfile::TempDir,
        cache: Cache,
        tree: PathBuf,
        make: String,
        source: PinnedPackage,
    }

    fn fixture() -> Fixture {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let source = PinnedPackage {
            name: "linux-source-7.2".into(),
            version: "7.2.13-1".into(),
            sha256: "0".repeat(64),
            suite: "sid".into(),
        };
        // The unpacked source entry, as build::unpacked_source leaves it: no apt is asked.
        let entry = cache.entry("sources", "linux-source-7.2_7.2.13-1");
        let tree = entry.join("linux-source-7.2");
        for collection in ["mm", "proc", "empty"] {
            let dir = tree.join(SELFTESTS).join(collection);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("Makefile"), "include ../lib.mk\n").unwrap();
        }
        std::fs::create_dir_all(tree.join("arch/x86")).unwrap();
        std::fs::create_dir_all(tree.join("scripts/kconfig")).unwrap();
        std::fs::write(tree.join("arch/x86/Kconfig"), "").unwrap();
        std::fs::write(tree.join("Makefile"), "VERSION = 7\n").unwrap();
        std::fs::write(tree.join(SELFTESTS).join("Makefile"), "TARGETS += mm\n").unwrap();
        std::fs::write(
            entry.join("source.json"),
            r#"{"package": {"name": "linux-source-7.2", "version": "7.2.13-1"}, "tree": "linux-source-7.2"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("static"), fake_elf(2, &[1])).unwrap();
        std::fs::write(dir.path().join("dynamic"), fake_elf(3, &[6, 3, 1])).unwrap();
        std::fs::write(dir.path().join("object"), fake_elf(1, &[])).unwrap();
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
        let make = dir.path().join("make");
        std::fs::write(&make, FAKE_MAKE.replace("DIR", &dir.path().display().to_string())).unwrap();
        std::fs::set_permissions(&make, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fixture { cache, tree, make: make.display().to_string(), source, dir }
    }

    fn recipe(collections: &[&str]) -> SelftestsRecipe {
        SelftestsRecipe { collections: collections.iter().map(|c| c.to_string()).collect() }
    }

    fn fake_toolchain() -> String {
        "gcc (fake) 1.0, libc6-dev 1".to_string()
    }

    impl Fixture {
        fn host(&self) -> Host<'_> {
            Host { make: &self.make, prerequisites: &[], toolchain: &fake_toolchain }
        }

        fn build(&self, recipe: &SelftestsRecipe, report: StepReporter) -> Result<Selftests, Error> {
            let archives = Archives::new(&self.cache, None);
            recipe.resolve_on(&self.host(), &self.source, Some("sid"), &self.cache, &archives, report)
        }

        fn cached(&self, recipe: &SelftestsRecipe) -> Option<Selftests> {
            recipe.cached_on(&self.host(), &self.source.package(), &self.cache).unwrap()
        }

        fn builds(&self) -> usize {
            std::fs::read_to_string(self.dir.path().join("builds")).map_or(0, |text| text.lines().count())
        }

        fn staging_left(&self) -> usize {
            std::fs::read_dir(self.cache.root().join("tmp")).unwrap().count()
        }
    }

    /// Every path under `root` with its size and modification time.
    fn listing(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    dirs.push(entry.path());
                }
                found.push(format!("{} {} {:?}", entry.path().display(), meta.len(), meta.modified().unwrap()));
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_build_keeps_the_static_binaries_and_says_why_the_others_are_missing() {
        let fixture = fixture();
        let before = listing(&fixture.tree);
        let recipe = recipe(&["proc", "mm"]);
        assert!(fixture.cached(&recipe).is_none());
        let mut steps = Vec::new();
        let selftests = fixture.build(&recipe, &mut |step| steps.push(step.to_string())).unwrap();
        assert_eq!(steps, ["make headers", "building selftests mm proc"]);
        assert_eq!(selftests.collections, ["mm", "proc"]);
        assert_eq!(selftests.source, fixture.source.package());
        assert_eq!(selftests.toolchain, fake_toolchain());
        assert_eq!(selftests.built.keys().collect::<Vec<_>>(), ["mm/cow", "proc/self"]);
        let cow = selftests.binary("mm/cow").unwrap();
        assert_eq!(cow, selftests.dir.join("mm/cow"));
        assert!(cow.starts_with(fixture.cache.root().join("selftests")), "{}", cow.display());
        assert_eq!(std::fs::read(&cow).unwrap(), fake_elf(2, &[1]));
        let not_built: Vec<(&str, &str)> =
            selftests.not_built().iter().map(|(name, why)| (name.as_str(), why.as_str())).collect();
        assert_eq!(
            not_built,
            [
                ("mm/broken", "it did not compile or link (make failed on it)"),
                ("mm/dynamic_64", "not a static x86-64 executable: dynamically linked (it needs a dynamic loader)"),
                ("mm/never", "it was not built (make did not get to it: something it needs failed)"),
            ]
        );
        assert!(!selftests.dir.join("mm/run_vmtests.sh").exists(), "scripts are not kept");
        assert!(!selftests.dir.join("mm/vm_util.o").exists(), "objects are not kept");

        let err = selftests.binary("mm/broken").unwrap_err().to_string();
        assert!(err.starts_with("selftest `mm/broken` was not built: it did not compile or link"), "{err}");
        assert!(err.contains(&format!("{}", selftests.log().display())), "{err}");
        let log = std::fs::read_to_string(selftests.log()).unwrap();
        assert!(log.contains("### make -j") && log.contains("broken.c:1:2: error: broken on purpose"), "{log}");
        let err = selftests.binary("net/socket").unwrap_err().to_string();
        assert!(err.contains("its collection is not among those built (built: mm, proc)"), "{err}");
        let err = selftests.binary("mm/nonesuch").unwrap_err().to_string();
        assert!(err.contains("collection mm in linux-source-7.2 7.2.13-1 builds no program of that name"), "{err}");

        assert_eq!(listing(&fixture.tree), before, "the build wrote into the source tree");
        assert_eq!(fixture.staging_left(), 0, "staging left behind");
        let mut entry_files: Vec<String> = std::fs::read_dir(&selftests.dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entry_files.sort();
        assert_eq!(entry_files, ["mm", "proc", "selftests.json"], "the entry holds only binaries and the record");

        assert_eq!(fixture.build(&recipe, &mut |_| panic!("a cached build reports nothing")).unwrap(), selftests);
        assert_eq!(fixture.cached(&recipe), Some(selftests));
        assert_eq!(fixture.builds(), 1, "cached selftests are not built again");
    }

    #[test]
    fn a_damaged_entry_is_built_again() {
        let fixture = fixture();
        let recipe = recipe(&["mm"]);
        let selftests = fixture.build(&recipe, &mut |_| {}).unwrap();
        let cow = selftests.binary("mm/cow").unwrap();
        let mut bytes = std::fs::read(&cow).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&cow, &bytes).unwrap();
        assert!(fixture.cached(&recipe).is_none(), "a damaged entry must not count as cached");
        let mut steps = Vec::new();
        let again = fixture.build(&recipe, &mut |step| steps.push(step.to_string())).unwrap();
        assert!(steps[0].contains("is incomplete or corrupt; building it again"), "{steps:?}");
        assert_eq!(again, selftests);
        assert_eq!(std::fs::read(&cow).unwrap(), fake_elf(2, &[1]));
        assert_eq!(fixture.builds(), 2);
    }

    #[test]
    fn a_failed_headers_step_shows_the_end_of_its_output() {
        let fixture = fixture();
        std::fs::write(fixture.tree.join("BREAK_HEADERS"), "").unwrap();
        let err = fixture.build(&recipe(&["mm"]), &mut |_| {}).unwrap_err();
        let Error::BuildFailed { step, log, tail, .. } = &err else { panic!("{err}") };
        assert!(step.starts_with("make -j") && step.ends_with(" headers"), "{step}");
        assert!(tail.ends_with("scripts/unifdef.c:1: error: broken on purpose"), "{tail}");
        assert!(log.starts_with(fixture.cache.root().join("build-logs")), "{}", log.display());
        assert!(log.file_name().unwrap().to_string_lossy().starts_with("selftests-linux-source-7.2_7.2.13-1+"));
        assert!(fixture.cached(&recipe(&["mm"])).is_none(), "a failed build is not cached");
        assert_eq!(fixture.staging_left(), 0, "staging left behind");
    }

    #[test]
    fn a_build_that_makes_nothing_fails() {
        let fixture = fixture();
        let err = fixture.build(&recipe(&["empty"]), &mut |_| {}).unwrap_err();
        let Error::BuildFailed { step, tail, .. } = &err else { panic!("{err}") };
        assert!(step.contains("TARGETS=empty USERLDFLAGS=-static"), "{step}");
        assert!(tail.contains("empty.c:1:2: error: nothing builds"), "{tail}");
        assert_eq!(fixture.staging_left(), 0, "staging left behind");
    }

    #[test]
    fn an_unknown_collection_is_named_before_anything_is_built() {
        let fixture = fixture();
        let err = fixture.build(&recipe(&["mm", "nosuch"]), &mut |_| {}).unwrap_err().to_string();
        let why = "no selftests collection `nosuch` in linux-source-7.2 7.2.13-1: it has no \
                   tools/testing/selftests/nosuch/Makefile";
        assert!(err.contains(why), "{err}");
        assert_eq!(fixture.builds(), 0);
    }

    #[test]
    fn missing_prerequisites_name_their_packages() {
        let fixture = fixture();
        let needs = [Prerequisite { need: Need::Program("ksnap-no-such-program"), package: "pkg-a" }];
        let host = Host { prerequisites: &needs, ..fixture.host() };
        let archives = Archives::new(&fixture.cache, None);
        let err = recipe(&["mm"])
            .resolve_on(&host, &fixture.source, None, &fixture.cache, &archives, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("building the kernel selftests needs ksnap-no-such-program"), "{err}");
        assert!(err.contains("apt-get install pkg-a"), "{err}");
    }

    #[test]
    fn two_builders_of_the_same_selftests_build_them_once() {
        let fixture = std::sync::Arc::new(fixture());
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let builders: Vec<_> = (0..2)
            .map(|_| {
                let (fixture, start) = (fixture.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    fixture.build(&recipe(&["mm", "proc"]), &mut |_| {}).unwrap()
                })
            })
            .collect();
        let built: Vec<Selftests> = builders.into_iter().map(|b| b.join().unwrap()).collect();
        assert_eq!(built[0], built[1]);
        assert_eq!(fixture.builds(), 1, "the second builder must wait for the first and reuse its entry");
    }

    #[test]
    fn the_working_copy_copies_tools_and_links_the_rest() {
        let fixture = fixture();
        let copy = fixture.dir.path().join("copy");
        working_copy(&fixture.tree, &copy).unwrap();
        assert!(std::fs::symlink_metadata(copy.join("Makefile")).unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(copy.join("arch")).unwrap().file_type().is_symlink());
        let tools = std::fs::symlink_metadata(copy.join("tools")).unwrap();
        assert!(tools.is_dir() && !tools.file_type().is_symlink());
        let makefile = format!("{SELFTESTS}/mm/Makefile");
        let (original, copied) = (fixture.tree.join(&makefile), copy.join(&makefile));
        assert_eq!(std::fs::read(&copied).unwrap(), std::fs::read(&original).unwrap());
        let mtime = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
        assert_eq!(mtime(&copied), mtime(&original), "make compares modification times");
    }
}
