//! `ksnap.toml`: the matrix of kernels, variants and suites.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ksnap_vm::kernel::build::{BuildRecipe, SourceTree};
use ksnap_vm::kernel::KernelSource;
use serde::Deserialize;

pub const CONFIG_FILE: &str = "ksnap.toml";

/// The parsed and checked `ksnap.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory holding `ksnap.toml`: the workspace root. Relative paths in the file are relative to it.
    pub root: PathBuf,
    pub kernels: BTreeMap<String, KernelSource>,
    /// Kernels outside the default run (`default = false`): they run only when named (`--kernel 7.3`).
    pub named_only: std::collections::BTreeSet<String>,
    /// `[apt] mirror`: the Debian mirror for kernels from a suite, instead of the system's.
    pub apt_mirror: Option<String>,
    /// `[selftests] source`: the Debian kernel source package the `kselftest` probes are built from.
    pub selftests: Option<SelftestsSource>,
    pub variants: BTreeMap<String, Variant>,
    pub suites: BTreeMap<String, Suite>,
}

/// Where the kernel's selftests come from: one Debian kernel source package (`package`, from `suite`, or
/// the system's apt sources), built once and run on every kernel of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestsSource {
    pub package: String,
    pub suite: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    /// The probes the suite runs, in order.
    pub probes: Vec<Probe>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub probe_timeout: Duration,
    /// Variants the suite runs under.
    pub variants: Vec<String>,
    /// Kernel command-line words the suite's cells boot with, after the variant's.
    pub cmdline: Vec<String>,
    /// Kernel config options whose values the suite's snapshots state (`CONFIG_PROC_MEM_NO_FORCE`, …).
    pub kernel_config: Vec<String>,
    /// The kernel areas the suite exercises (`proc`, `mm`, `x86`): the prefixes of upstream commit titles
    /// (`mm/gup: …`) `ksnap lock --update` lists first when it explains a kernel's move.
    pub areas: Vec<String>,
    /// Every cell of the suite boots its kernel (`fresh_boot = true`), rather than starting from the machine
    /// saved for its (kernel, variant, VM) ([`crate::session`]): for what depends on the boot itself, or on
    /// nothing having run in it yet.
    pub fresh_boot: bool,
}

/// A probe as ksnap.toml declares it, one of a suite's: a guest program that prints KTAP. Made into a file
/// it is a [`ProbeExecutable`](crate::session::ProbeExecutable); what a VM runs of it, a
/// [`ksnap_vm::ProbeSpec`]; what it printed, a [`ksnap_readers::channel::ProbeRun`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Unique in its suite; the first part of every fact key it reports.
    pub name: String,
    /// The words after the program's path in the guest (`args = ["oom"]`).
    pub args: Vec<String>,
    pub kind: ProbeKind,
}

/// Where a probe's executable comes from. Whatever the kind, it runs in the guest as a static x86-64
/// executable: the guest has no libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// A binary of a Cargo package of the workspace holding ksnap.toml (`cargo = { package = "…", bin =
    /// "…" }`), built static for x86-64 with `profile` ([`crate::session::executables::build_cargo_probes`]).
    Cargo { package: String, bin: String, profile: String },
    /// C (and assembly) sources compiled statically with `cc` (`gcc`, `musl-gcc`). `libc_package` is the
    /// Debian package of the libc it links, whose version the snapshot metadata records.
    C { sources: Vec<PathBuf>, cc: String, libc_package: Option<String> },
    /// A kernel selftest, `COLLECTION/NAME` (`mm/cow`) of `tools/testing/selftests`, built from the
    /// `[selftests]` source. Its output is kselftest TAP, read per test case ([`ksnap_readers::kselftest`]), and
    /// its failures are results, not a failed probe.
    Kselftest { test: String },
    /// A prebuilt executable of the user's project (`exe = "PATH"`, relative to ksnap.toml), taken as it is.
    Exe { path: PathBuf },
}

/// The Cargo profile a `cargo = { … }` probe is built with unless it names one.
pub const DEFAULT_CARGO_PROFILE: &str = "release";

impl Suite {
    /// Whether the suite runs kernel selftests (they need the selftests build and busybox in the guest).
    pub fn runs_selftests(&self) -> bool {
        self.probes.iter().any(|p| matches!(p.kind, ProbeKind::Kselftest { .. }))
    }
}

/// The file as written; checked and turned into [`Config`] by [`Config::from_toml`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    kernels: BTreeMap<String, RawKernel>,
    #[serde(default)]
    variants: BTreeMap<String, RawVariant>,
    #[serde(default)]
    suites: BTreeMap<String, RawSuite>,
    apt: Option<RawApt>,
    selftests: Option<RawSelftests>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelftests {
    source: RawPackage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApt {
    mirror: Option<String>,
}

/// `"PACKAGE"` (through the system's apt sources) or `{ package = "PACKAGE", suite = "bullseye" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPackage {
    System(String),
    Suite { package: String, suite: String },
}

impl RawPackage {
    fn split(self) -> (String, Option<String>) {
        match self {
            RawPackage::System(package) => (package, None),
            RawPackage::Suite { package, suite } => (package, Some(suite)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    apt: Option<RawPackage>,
    deb: Option<PathBuf>,
    bzimage: Option<PathBuf>,
    /// A Debian kernel source package (`linux-source-6.12`) to build.
    source: Option<RawPackage>,
    /// In the default run (`ksnap run`, `cargo test`); `false`: only when named with `--kernel`.
    #[serde(default = "yes")]
    default: bool,
    /// A local kernel source tree to build.
    source_tree: Option<PathBuf>,
    /// With `bzimage`: its `.config`. With `source`/`source_tree`: the Kconfig fragment(s) to build with.
    config: Option<RawPaths>,
}

/// `"path"` or `["path", …]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPaths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl RawPaths {
    fn into_vec(self) -> Vec<PathBuf> {
        match self {
            RawPaths::One(path) => vec![path],
            RawPaths::Many(paths) => paths,
        }
    }
}

impl RawKernel {
    /// The kernel's source, checked: exactly one of `apt`, `deb`, `bzimage`, `source` or `source_tree`, and
    /// `config` where it belongs; `root` is the directory of ksnap.toml, `name` names the kernel in errors.
    fn check(self, root: &Path, name: &str) -> Result<KernelSource> {
        let resolve = |p: PathBuf| relative_to(root, p);
        let config: Option<Vec<PathBuf>> = self.config.map(|c| c.into_vec().into_iter().map(resolve).collect());
        let build = |tree: SourceTree| match config.clone() {
            Some(fragments) if !fragments.is_empty() => Ok(KernelSource::Build(BuildRecipe { tree, fragments })),
            _ => Err(anyhow::anyhow!(
                "kernel `{name}` is built from source and needs `config`: the Kconfig fragment(s) applied on top \
                 of tinyconfig, e.g. config = \"vm/configs/minimal\""
            )),
        };
        let source = match (self.apt, self.deb, self.bzimage, self.source, self.source_tree) {
            (Some(package), None, None, None, None) if config.is_none() => {
                let (package, suite) = package.split();
                KernelSource::Apt { package, suite }
            }
            (None, Some(path), None, None, None) if config.is_none() => KernelSource::Deb { path: resolve(path) },
            (None, None, Some(path), None, None) => {
                let config = match config.as_deref() {
                    None => None,
                    Some([one]) => Some(one.clone()),
                    Some(_) => bail!("kernel `{name}`: a bzimage has one `config`, the .config it was built from"),
                };
                KernelSource::BzImage { path: resolve(path), config }
            }
            (None, None, None, Some(package), None) => {
                let (package, suite) = package.split();
                build(SourceTree::Apt { package, suite })?
            }
            (None, None, None, None, Some(path)) => build(SourceTree::Local { path: resolve(path) })?,
            _ => bail!(
                "kernel `{name}` needs exactly one of `apt`, `deb`, `bzimage`, `source` or `source_tree` \
                 (`config` goes with `bzimage`, `source` and `source_tree`)"
            ),
        };
        Ok(source)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    #[serde(default)]
    cmdline: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    probes: Vec<RawProbe>,
    #[serde(default = "default_memory")]
    memory_mib: u32,
    #[serde(default = "default_cpus")]
    cpus: u32,
    #[serde(default = "default_probe_timeout")]
    probe_timeout_s: u64,
    #[serde(default = "default_variants")]
    variants: Vec<String>,
    #[serde(default)]
    kernel_config: Vec<String>,
    #[serde(default)]
    areas: Vec<String>,
    #[serde(default)]
    cmdline: Vec<String>,
    #[serde(default)]
    fresh_boot: bool,
}

impl RawSuite {
    /// The suite, checked: its probes ([`RawProbe::check`], no name twice), its variants defined, its
    /// `kernel_config`, `cmdline` and sizes well formed; `name` names it in errors.
    fn check(self, root: &Path, name: &str, variants: &BTreeMap<String, Variant>) -> Result<Suite> {
        if self.probes.is_empty() {
            bail!("suite `{name}` lists no probes");
        }
        let mut probes: Vec<Probe> = Vec::new();
        for raw in self.probes {
            let probe = raw.check(root, name)?;
            if probes.iter().any(|p| p.name == probe.name) {
                bail!("suite `{name}` lists probe `{}` twice", probe.name);
            }
            probes.push(probe);
        }
        for variant in &self.variants {
            if !variants.contains_key(variant) {
                bail!("suite `{name}` names variant `{variant}`, which is not defined under [variants]");
            }
        }
        if let Some(bad) = self.kernel_config.iter().find(|o| !o.starts_with("CONFIG_")) {
            bail!("suite `{name}`: kernel_config entry `{bad}` is not a CONFIG_ option");
        }
        if let Some(bad) = self.areas.iter().find(|a| !is_area(a)) {
            bail!(
                "suite `{name}`: area {bad:?} must be one word of letters, digits, `_`, `-`, `.` or `/` (a \
                 kernel subsystem such as \"mm\" or \"proc\")"
            );
        }
        if let Some(bad) = self.cmdline.iter().find(|w| w.is_empty() || w.contains(char::is_whitespace)) {
            bail!("suite `{name}`: cmdline word {bad:?} must be one non-empty word");
        }
        if self.memory_mib < 64 || self.cpus == 0 || self.probe_timeout_s == 0 {
            bail!("suite `{name}`: memory_mib must be at least 64, cpus and probe_timeout_s at least 1");
        }
        Ok(Suite {
            name: name.to_string(),
            probes,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            probe_timeout: Duration::from_secs(self.probe_timeout_s),
            variants: self.variants,
            cmdline: self.cmdline,
            kernel_config: self.kernel_config,
            areas: self.areas,
            fresh_boot: self.fresh_boot,
        })
    }
}

/// One probe as written: its kind is whichever one of `cargo`, `exe`, `sources` or `kselftest` it has.
///
/// A struct rather than an untagged enum, so that a mistake gets a message about that field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: Option<String>,
    /// `{ package = "my-probes", bin = "jit", profile = "release" }`.
    cargo: Option<RawCargo>,
    /// `"target/x86_64-unknown-linux-gnu/release/jit-probe"`.
    exe: Option<PathBuf>,
    /// C and assembly files, with `cc` and optionally `libc_package`.
    sources: Option<Vec<PathBuf>>,
    cc: Option<String>,
    libc_package: Option<String>,
    /// `"mm/cow"`.
    kselftest: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCargo {
    package: String,
    /// The package's binary; Cargo's default binary (named after the package) when not given.
    bin: Option<String>,
    profile: Option<String>,
}

impl RawProbe {
    /// The probe, checked; `root` is the directory of ksnap.toml, `suite` names the suite in errors.
    fn check(self, root: &Path, suite: &str) -> Result<Probe> {
        let RawProbe { name, cargo, exe, sources, cc, libc_package, kselftest, args } = self;
        let given = [cargo.is_some(), exe.is_some(), sources.is_some(), kselftest.is_some()];
        let what = || {
            name.clone()
                .map_or_else(|| format!("a probe of suite `{suite}`"), |n| format!("probe `{n}` of suite `{suite}`"))
        };
        if given.iter().filter(|&&g| g).count() != 1 {
            bail!(
                "{}: give exactly one of `cargo = {{ package = \"…\", bin = \"…\" }}`, `exe = \"PATH\"`, \
                 `sources = [\"….c\"]` (with `cc`) or `kselftest = \"COLLECTION/NAME\"`",
                what()
            );
        }
        if sources.is_none() && (cc.is_some() || libc_package.is_some()) {
            bail!("{}: `cc` and `libc_package` go with `sources` (a C probe)", what());
        }
        let (default_name, kind) = if let Some(RawCargo { package, bin, profile }) = cargo {
            let bin = bin.unwrap_or_else(|| package.clone());
            let profile = profile.unwrap_or_else(|| DEFAULT_CARGO_PROFILE.to_string());
            (Some(bin.clone()), ProbeKind::Cargo { package, bin, profile })
        } else if let Some(exe) = exe {
            let file_name = exe.file_name().and_then(|n| n.to_str()).map(str::to_string);
            (file_name, ProbeKind::Exe { path: relative_to(root, exe) })
        } else if let Some(sources) = sources {
            let Some(cc) = cc else { bail!("{}: a C probe needs `cc` (\"gcc\", \"musl-gcc\")", what()) };
            if sources.is_empty() {
                bail!("{}: `sources` is empty", what());
            }
            let sources = sources.into_iter().map(|p| relative_to(root, p)).collect();
            (None, ProbeKind::C { sources, cc, libc_package })
        } else {
            let test = kselftest.expect("one kind was given");
            let Some((collection, name)) = test.split_once('/').filter(|(c, t)| {
                !c.is_empty() && !t.is_empty() && !t.contains('/') && !c.starts_with('.') && !t.starts_with('.')
            }) else {
                bail!(
                    "probe `{test}` of suite `{suite}`: a kselftest is COLLECTION/NAME, a binary of \
                     tools/testing/selftests/COLLECTION (e.g. \"mm/cow\")"
                );
            };
            check_name("selftest collection", collection)?;
            (Some(name.to_string()), ProbeKind::Kselftest { test: test.clone() })
        };
        let Some(name) = name.or(default_name) else {
            bail!("a C probe of suite `{suite}` needs a `name`");
        };
        check_name("probe", &name)?;
        check_args(suite, &name, &args)?;
        Ok(Probe { name, args, kind })
    }
}

fn yes() -> bool {
    true
}
fn default_memory() -> u32 {
    512
}
fn default_cpus() -> u32 {
    1
}
fn default_probe_timeout() -> u64 {
    60
}
fn default_variants() -> Vec<String> {
    vec!["default".into()]
}

/// Paths in ksnap.toml are relative to the directory holding it.
fn relative_to(root: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        root.join(path)
    }
}

/// An area is a commit-title prefix: `mm`, `proc`, `x86`, `fs/proc`.
fn is_area(area: &str) -> bool {
    !area.is_empty()
        && !area.starts_with('/')
        && !area.ends_with('/')
        && area.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

fn check_args(suite: &str, probe: &str, args: &[String]) -> Result<()> {
    if let Some(bad) = args.iter().find(|a| a.is_empty() || a.contains(char::is_whitespace)) {
        bail!("probe `{probe}` of suite `{suite}`: argument {bad:?} must be one non-empty word");
    }
    Ok(())
}

/// Names show up in test names (`6.12::default::env`) and snapshot file names (`env@6.12+force-never`).
fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        bail!("{kind} name `{name}` may only contain letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

impl Config {
    /// The selftest collections (`mm`, `proc`) the suites run tests of, sorted.
    pub fn selftest_collections(&self) -> Vec<String> {
        let collections: std::collections::BTreeSet<String> = self
            .suites
            .values()
            .flat_map(|suite| &suite.probes)
            .filter_map(|probe| match &probe.kind {
                ProbeKind::Kselftest { test } => test.split_once('/').map(|(c, _)| c.to_string()),
                _ => None,
            })
            .collect();
        collections.into_iter().collect()
    }

    /// Find `ksnap.toml` in `start` or its ancestors and load it.
    pub fn discover(start: &Path) -> Result<Config> {
        let found = start.ancestors().map(|dir| dir.join(CONFIG_FILE)).find(|candidate| candidate.is_file());
        match found {
            Some(path) => Config::load(&path),
            None => bail!(
                "no {CONFIG_FILE} in {} or any parent directory; run ksnap inside a ksnap checkout or pass --config",
                start.display()
            ),
        }
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let root = if root.as_os_str().is_empty() { PathBuf::from(".") } else { root };
        Config::from_toml(&text, root).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_toml(text: &str, root: PathBuf) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)?;
        let mut kernels = BTreeMap::new();
        let mut named_only = std::collections::BTreeSet::new();
        for (name, kernel) in raw.kernels {
            check_name("kernel", &name)?;
            if !kernel.default {
                named_only.insert(name.clone());
            }
            let source = kernel.check(&root, &name)?;
            kernels.insert(name, source);
        }
        let mut variants = BTreeMap::new();
        for (name, variant) in raw.variants {
            check_name("variant", &name)?;
            variants.insert(name.clone(), Variant { name, cmdline: variant.cmdline });
        }
        variants.entry("default".into()).or_insert_with(|| Variant { name: "default".into(), cmdline: vec![] });
        let mut suites = BTreeMap::new();
        for (name, suite) in raw.suites {
            check_name("suite", &name)?;
            let suite = suite.check(&root, &name, &variants)?;
            suites.insert(name, suite);
        }
        if kernels.is_empty() || suites.is_empty() {
            bail!("the matrix needs at least one [kernels.NAME] and one [suites.NAME]");
        }
        if named_only.len() == kernels.len() {
            bail!("every kernel has `default = false`: the default run would have no kernel");
        }
        let apt_mirror = raw.apt.and_then(|apt| apt.mirror);
        let selftests = raw.selftests.map(|raw| {
            let (package, suite) = raw.source.split();
            SelftestsSource { package, suite }
        });
        if let (None, Some(suite)) = (&selftests, suites.values().find(|s| s.runs_selftests())) {
            bail!(
                "suite `{}` runs kernel selftests, but ksnap.toml has no [selftests] source to build them from: add \
                 `[selftests]` with `source = {{ package = \"linux-source-7.2\", suite = \"sid\" }}`",
                suite.name
            );
        }
        Ok(Config { root, kernels, named_only, apt_mirror, selftests, variants, suites })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_matrix_loads() {
        let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(CONFIG_FILE)).unwrap();
        assert!(config.kernels.contains_key("6.1") && config.kernels.contains_key("6.12"));
        assert_eq!(config.kernels["6.1"], KernelSource::Apt { package: "linux-image-cloud-amd64".into(), suite: None });
        assert_eq!(
            config.kernels["5.10"],
            KernelSource::Apt { package: "linux-image-cloud-amd64".into(), suite: Some("bullseye".into()) }
        );
        assert!(config.named_only.contains("7.3") && !config.named_only.contains("7.2"));
        assert!(config.suites.contains_key("env"));
    }

    #[test]
    fn suites_declare_the_areas_they_exercise() {
        let toml = |areas: &str| {
            format!("[kernels.k]\nbzimage = \"/k\"\n[suites.s]\nprobes = [{{ exe = \"/p\" }}]\nareas = {areas}\n")
        };
        let config = Config::from_toml(&toml(r#"["proc", "mm", "fs/proc"]"#), PathBuf::from("/p")).unwrap();
        assert_eq!(config.suites["s"].areas, ["proc", "mm", "fs/proc"]);
        for bad in [r#"[""]"#, r#"["mm gup"]"#, r#"["mm/"]"#, r#"["/mm"]"#, r#"["mm:"]"#] {
            let err = Config::from_toml(&toml(bad), PathBuf::from("/p")).unwrap_err().to_string();
            assert!(err.contains("suite `s`: area"), "{bad}: {err}");
        }
        let repo = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(CONFIG_FILE)).unwrap();
        assert_eq!(repo.suites["proc_mem"].areas, ["proc", "mm"]);
        assert!(repo.suites["env"].areas.is_empty());
    }

    #[test]
    fn prebuilt_probes_are_relative_to_the_config() {
        let config = Config::from_toml(
            r#"
            [kernels.k]
            bzimage = "/k"
            [suites.s]
            probes = [{ name = "jit", exe = "target/jit-probe", args = ["--fast"] }, { exe = "/opt/p" }]
            "#,
            PathBuf::from("/project"),
        )
        .unwrap();
        assert_eq!(
            config.suites["s"].probes,
            [
                Probe {
                    name: "jit".into(),
                    args: vec!["--fast".into()],
                    kind: ProbeKind::Exe { path: "/project/target/jit-probe".into() }
                },
                Probe { name: "p".into(), args: vec![], kind: ProbeKind::Exe { path: "/opt/p".into() } }
            ]
        );
    }

    #[test]
    fn kernel_sources_and_defaults() {
        let config = Config::from_toml(
            r#"
            [kernels.local]
            bzimage = "k/bzImage"
            config = "/abs/config"
            [kernels.deb]
            deb = "/x.deb"
            [suites.s]
            probes = [{ exe = "p" }]
            "#,
            PathBuf::from("/repo"),
        )
        .unwrap();
        assert_eq!(
            config.kernels["local"],
            KernelSource::BzImage { path: "/repo/k/bzImage".into(), config: Some("/abs/config".into()) }
        );
        let suite = &config.suites["s"];
        assert_eq!((suite.memory_mib, suite.cpus, suite.variants.clone()), (512, 1, vec!["default".to_string()]));
    }

    #[test]
    fn kernels_built_from_source() {
        let config = Config::from_toml(
            r#"
            [kernels.minimal]
            source = "linux-source-6.12"
            config = "vm/configs/minimal"
            [kernels.no-force]
            source = "linux-source-6.12"
            config = ["vm/configs/minimal", "vm/configs/proc-mem-no-force"]
            [kernels.sid]
            source = { package = "linux-source-7.2", suite = "sid" }
            config = "vm/configs/minimal"
            default = false
            [kernels.mine]
            source_tree = "/src/linux"
            config = "/abs/fragment"
            [suites.s]
            probes = [{ exe = "p" }]
            "#,
            PathBuf::from("/repo"),
        )
        .unwrap();
        let apt = SourceTree::Apt { package: "linux-source-6.12".into(), suite: None };
        assert_eq!(
            config.kernels["minimal"],
            KernelSource::Build(BuildRecipe { tree: apt.clone(), fragments: vec!["/repo/vm/configs/minimal".into()] })
        );
        assert_eq!(
            config.kernels["no-force"],
            KernelSource::Build(BuildRecipe {
                tree: apt,
                fragments: vec!["/repo/vm/configs/minimal".into(), "/repo/vm/configs/proc-mem-no-force".into()]
            })
        );
        assert_eq!(
            config.kernels["sid"],
            KernelSource::Build(BuildRecipe {
                tree: SourceTree::Apt { package: "linux-source-7.2".into(), suite: Some("sid".into()) },
                fragments: vec!["/repo/vm/configs/minimal".into()]
            })
        );
        assert_eq!(config.named_only.iter().collect::<Vec<_>>(), ["sid"]);
        assert_eq!(
            config.kernels["mine"],
            KernelSource::Build(BuildRecipe {
                tree: SourceTree::Local { path: "/src/linux".into() },
                fragments: vec!["/abs/fragment".into()]
            })
        );
    }

    #[test]
    fn cargo_and_c_probes() {
        let config = Config::from_toml(
            r#"
            [kernels.k]
            apt = "a"
            [suites.setjmp]
            probes = [
                { cargo = { package = "my-probes", bin = "env" } },
                { name = "oom", cargo = { package = "my-probes", bin = "demand_paging", profile = "guest" }, args = ["oom"] },
                { cargo = { package = "jit" } },
                { name = "musl", sources = ["guest-tests/c/setjmp.c"], cc = "musl-gcc" },
            ]
            "#,
            PathBuf::from("/repo"),
        )
        .unwrap();
        let probes = &config.suites["setjmp"].probes;
        let cargo = |bin: &str, profile: &str| ProbeKind::Cargo {
            package: "my-probes".into(),
            bin: bin.into(),
            profile: profile.into(),
        };
        assert_eq!(probes[0], Probe { name: "env".into(), args: vec![], kind: cargo("env", "release") });
        assert_eq!(
            probes[1],
            Probe { name: "oom".into(), args: vec!["oom".into()], kind: cargo("demand_paging", "guest") }
        );
        assert_eq!(
            probes[2].kind,
            ProbeKind::Cargo { package: "jit".into(), bin: "jit".into(), profile: "release".into() },
            "Cargo's default binary is named after its package"
        );
        assert_eq!(
            probes[3],
            Probe {
                name: "musl".into(),
                args: vec![],
                kind: ProbeKind::C {
                    sources: vec!["/repo/guest-tests/c/setjmp.c".into()],
                    cc: "musl-gcc".into(),
                    libc_package: None
                }
            }
        );
    }

    #[test]
    fn kernel_selftests() {
        let config = Config::from_toml(
            r#"
            [kernels.k]
            apt = "a"
            [selftests]
            source = { package = "linux-source-7.2", suite = "sid" }
            [suites.kselftest_mm]
            probes = [{ kselftest = "mm/cow" }, { kselftest = "mm/mremap_test", args = ["-p", "42"] }]
            cmdline = ["norandmaps"]
            [suites.kselftest_proc]
            probes = [{ kselftest = "proc/read", name = "proc-read" }]
            "#,
            PathBuf::from("/repo"),
        )
        .unwrap();
        assert_eq!(
            config.selftests,
            Some(SelftestsSource { package: "linux-source-7.2".into(), suite: Some("sid".into()) })
        );
        let mm = &config.suites["kselftest_mm"];
        assert!(mm.runs_selftests() && mm.cmdline == ["norandmaps"]);
        assert_eq!(
            mm.probes[1],
            Probe {
                name: "mremap_test".into(),
                args: vec!["-p".into(), "42".into()],
                kind: ProbeKind::Kselftest { test: "mm/mremap_test".into() }
            }
        );
        assert_eq!(config.suites["kselftest_proc"].probes[0].name, "proc-read");
        assert_eq!(config.selftest_collections(), ["mm", "proc"]);

        for (text, expected) in [
            ("[suites.s]\nprobes=[{kselftest='mm/cow'}]", "no [selftests] source"),
            ("[selftests]\nsource='x'\n[suites.s]\nprobes=[{kselftest='cow'}]", "COLLECTION/NAME"),
            ("[selftests]\nsource='x'\n[suites.s]\nprobes=[{kselftest='mm/../x'}]", "COLLECTION/NAME"),
            ("[selftests]\nsource='x'\n[suites.s]\nprobes=[{kselftest='mm/cow', args=['a b']}]", "one non-empty word"),
            ("[suites.s]\nprobes=[{exe='p'}]\ncmdline=['a b']", "cmdline word"),
        ] {
            let text = format!("[kernels.a]\napt='x'\n{text}");
            let err = format!("{:#}", Config::from_toml(&text, PathBuf::from("/")).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("[kernels.a]\napt='x'\ndeb='y'\n[suites.s]\nprobes=[{exe='p'}]", "exactly one of"),
            ("[kernels.a]\nsource='x'\nsource_tree='y'\nconfig='c'\n[suites.s]\nprobes=[{exe='p'}]", "exactly one of"),
            ("[kernels.a]\napt='x'\nconfig='c'\n[suites.s]\nprobes=[{exe='p'}]", "exactly one of"),
            ("[kernels.a]\nsource='x'\n[suites.s]\nprobes=[{exe='p'}]", "built from source and needs `config`"),
            ("[kernels.a]\nsource_tree='x'\nconfig=[]\n[suites.s]\nprobes=[{exe='p'}]", "needs `config`"),
            (
                "[kernels.a]\nbzimage='x'\nconfig=['a','b']\n[suites.s]\nprobes=[{exe='p'}]",
                "a bzimage has one `config`",
            ),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p'}]\nvariants=['nope']", "variant `nope`"),
            ("[kernels.'a b']\napt='x'\n[suites.s]\nprobes=[{exe='p'}]", "may only contain"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[]", "lists no probes"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p'}]\nmemroy_mib=5", "unknown field"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=['p']", "invalid type: string"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{name='p'}]", "probe `p` of suite `s`: give exactly one of"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p', kselftest='mm/cow'}]", "give exactly one of"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p', cc='gcc'}]", "`cc` and `libc_package` go with"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{sources=['a.c'], cc='gcc'}]", "needs a `name`"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{name='c', sources=['a.c']}]", "needs `cc`"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{cargo={bin='x'}}]", "missing field `package`"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{cargo={package='x', bni='y'}}]", "unknown field `bni`"),
            ("[suites.s]\nprobes=[{exe='p'}]", "at least one"),
            ("[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p'}, {exe='p'}]", "lists probe `p` twice"),
            ("[kernels.a]\napt={package='x'}\n[suites.s]\nprobes=[{exe='p'}]", "data did not match"),
            ("[kernels.a]\napt='x'\ndefault=false\n[suites.s]\nprobes=[{exe='p'}]", "no kernel"),
            ("[apt]\nmirorr='x'\n[kernels.a]\napt='x'\n[suites.s]\nprobes=[{exe='p'}]", "unknown field"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Config::from_toml(text, PathBuf::from("/")).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
