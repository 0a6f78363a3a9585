//! The apt client: looking packages up and downloading them, through the system's apt configuration or
//! through ksnap's own configuration for one Debian suite.
//!
//! A kernel from another Debian release (`apt = { package = "…", suite = "bullseye" }`) is fetched with a
//! private apt configuration under the cache (`CACHE/apt/SUITE/`): a `sources.list` naming the Debian
//! mirror the system already uses (read from its `sources.list`, `sources.list.d/*.list` and deb822
//! `*.sources`) with just that suite, and apt's own lists and caches next to it. The system's apt state is
//! never touched: every apt command gets `-o Dir::…` options pointing into that directory. Such a
//! configuration runs `apt-get update` on first use and when asked ([`Apt::update`]).
//!
//! Resolution ([`Apt::pin`]) turns a package name into the exact packages a kernel is made of, with
//! their versions and the SHA-256 the archive's index gives for each `.deb`: a metapackage
//! (`linux-image-cloud-amd64`) is followed to the real image package, and from Debian 7.x on, the image
//! package is almost empty and depends on `linux-binary-REL` (the vmlinuz) and `linux-base-REL` (its
//! config), which are pinned too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::kernel::entry::Package;
use crate::kernel::releases::{self, Family, Release};

mod run;
use run::{require_space, run_apt};

/// Room `apt-get update` needs for one suite's lists and their downloads in flight. Stored compressed
/// (as Docker's Debian images configure apt: `Acquire::GzipIndexes`), a release's main lists with its
/// companions take about 18 MiB and sid's 23 MiB; stored plainly, as on most hosts, about three times that.
const LISTS_ROOM: u64 = 192 << 20;

/// The keyring Debian ships (package `debian-archive-keyring`), for mirrors whose entry names none.
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// What the lock and snapshots call packages found through the system's own apt configuration.
pub const SYSTEM: &str = "system";

/// A package as pinned: exactly which `.deb`, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedPackage {
    /// The Debian package name, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub name: String,
    /// Its exact Debian version, as `apt-cache show` printed it.
    pub version: String,
    /// Hex SHA-256 of the `.deb`, from the archive's index; every download is checked against it.
    pub sha256: String,
    /// The apt suite it was found in (`bookworm-security`, `sid`, …).
    pub suite: String,
}

impl PinnedPackage {
    /// Just the name and version.
    pub fn package(&self) -> Package {
        Package { name: self.name.clone(), version: self.version.clone() }
    }
}

impl std::fmt::Display for PinnedPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// A Debian mirror as a sources entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The archive's base URI (`http://MIRROR/debian`, as the system's sources name it; a `file:` URI for
    /// a local archive).
    pub uri: String,
    /// `signed-by`: the keyring that verifies it. `None` only for a trusted local test archive.
    pub signed_by: Option<String>,
}

/// One `deb` entry of an apt sources file: one-line (`deb [opts] URI SUITE COMPONENT…`) or deb822.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// The archive's URI, as written.
    pub uri: String,
    /// The suites it serves: one for a one-line entry, the `Suites:` field of a deb822 stanza.
    pub suites: Vec<String>,
    /// The `signed-by` keyring path, if one is named (an inline deb822 key is dropped).
    pub signed_by: Option<String>,
}

/// Every enabled `deb` entry of the apt configuration under `etc_apt` (`/etc/apt`): `sources.list`,
/// `sources.list.d/*.list` and `sources.list.d/*.sources`, in apt's order. Unreadable files are skipped.
pub fn read_sources(etc_apt: &Path) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    if let Ok(text) = std::fs::read_to_string(etc_apt.join("sources.list")) {
        entries.extend(parse_one_line(&text));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        match file.extension().and_then(|e| e.to_str()) {
            Some("list") => entries.extend(parse_one_line(&text)),
            Some("sources") => entries.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    entries
}

/// `deb [signed-by=/k.gpg arch=amd64] http://mirror/debian bookworm main contrib`; `deb-src` and
/// comments are skipped.
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else { continue };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(options) = rest.strip_prefix('[') {
            let Some((options, after)) = options.split_once(']') else { continue };
            signed_by = options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by=").or_else(|| o.strip_prefix("Signed-By=")))
                .map(str::to_string);
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        entries.push(SourceEntry { uri: uri.to_string(), suites: vec![suite.to_string()], signed_by });
    }
    entries
}

/// deb822 stanzas (`Types: deb`, `URIs:`, `Suites:`, `Signed-By:`, `Enabled: no`), separated by blank
/// lines. An inline (multi-line) Signed-By key is not a path ksnap can pass on, so it is dropped and the
/// Debian keyring used instead.
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    let mut stanzas: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines() {
        match line.trim().is_empty() {
            true => stanzas.push(Vec::new()),
            false => stanzas.last_mut().expect("never empty").push(line),
        }
    }
    for stanza in stanzas {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation line (an inline key): not a one-line value.
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let words = |name: &str| field(name).map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        if !words("types").unwrap_or_default().iter().any(|t| t == "deb") {
            continue;
        }
        if field("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let signed_by = field("signed-by").filter(|v| !v.is_empty() && !v.contains('\n'));
        for uri in words("uris").unwrap_or_default() {
            entries.push(SourceEntry {
                uri,
                suites: words("suites").unwrap_or_default(),
                signed_by: signed_by.clone(),
            });
        }
    }
    entries
}

/// Debian's codenames and aliases, which tell a Debian mirror from any other apt repository (Ubuntu's,
/// a vendor's).
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "experimental",
    "unstable",
    "testing",
    "stable",
    "oldstable",
    "oldoldstable",
];

fn debian_base_suite(suite: &str) -> Option<&str> {
    let base = suite.split(['-', '/']).next().unwrap_or(suite);
    DEBIAN_SUITES.contains(&base).then_some(base)
}

fn is_security_suite(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// The Debian mirror to fetch `suite` from: `override_uri` if given (the security archive for a
/// `-security` suite is then the override's URI with `-security` appended, Debian's own layout), else
/// the first entry of the system's sources that serves Debian suites of the same kind (security or not).
pub fn mirror_for(entries: &[SourceEntry], suite: &str, override_uri: Option<&str>) -> Result<Mirror, Error> {
    let security = is_security_suite(suite);
    let system = entries
        .iter()
        .find(|e| e.suites.iter().any(|s| debian_base_suite(s).is_some() && is_security_suite(s) == security));
    if let Some(uri) = override_uri {
        let uri = uri.trim_end_matches('/');
        let uri = match (security, system) {
            (true, Some(entry)) => entry.uri.clone(),
            (true, None) => format!("{uri}-security"),
            (false, _) => uri.to_string(),
        };
        return Ok(Mirror { uri, signed_by: Some(DEBIAN_KEYRING.into()) });
    }
    match system {
        Some(entry) => Ok(Mirror {
            uri: entry.uri.trim_end_matches('/').to_string(),
            signed_by: Some(entry.signed_by.clone().unwrap_or_else(|| DEBIAN_KEYRING.into())),
        }),
        None => Err(Error::NoDebianMirror { suite: suite.to_string() }),
    }
}

/// How ksnap finds its Debian mirror and where it keeps its private apt configurations.
#[derive(Debug)]
pub struct Archives {
    root: PathBuf,
    etc_apt: PathBuf,
    mirror: Option<String>,
    /// A mirror given outright (tests: a local `file:` archive), bypassing the system's sources.
    fixed: Option<Mirror>,
    opened: Mutex<Vec<(Option<String>, Arc<Apt>)>>,
}

impl Archives {
    /// Private configurations under `cache`, the mirror from `mirror` (ksnap.toml's `[apt] mirror`), else
    /// `KSNAP_DEBIAN_MIRROR`, else the system's apt sources.
    pub fn new(cache: &Cache, mirror: Option<String>) -> Archives {
        let mirror = mirror.or_else(|| std::env::var("KSNAP_DEBIAN_MIRROR").ok().filter(|m| !m.is_empty()));
        Archives {
            root: cache.root().join("apt"),
            etc_apt: PathBuf::from("/etc/apt"),
            mirror,
            fixed: None,
            opened: Mutex::new(Vec::new()),
        }
    }

    /// Every suite served by `mirror`, whatever the system's sources say (tests and local archives).
    pub fn with_mirror(cache: &Cache, mirror: Mirror) -> Archives {
        Archives { fixed: Some(mirror), ..Archives::new(cache, None) }
    }

    /// The apt configuration for `suite`: the system's for `None`, ksnap's own for a suite (created, and
    /// updated if it has never been or if its sources changed, on first use). A Debian release's own
    /// configuration also lists its `-updates` and `-security` companions ([`companions`]).
    pub fn apt(&self, suite: Option<&str>) -> Result<Arc<Apt>, Error> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, apt)) = opened.iter().find(|(s, _)| s.as_deref() == suite) {
            return Ok(apt.clone());
        }
        let apt = match suite {
            None => Apt { private: None },
            Some(suite) => {
                check_suite_name(suite)?;
                let lines = match &self.fixed {
                    // A local archive serves exactly the suites it has.
                    Some(mirror) => vec![(mirror.clone(), suite.to_string())],
                    None => {
                        let entries = read_sources(&self.etc_apt);
                        let mut lines = vec![(mirror_for(&entries, suite, self.mirror.as_deref())?, suite.to_string())];
                        for companion in companions(suite) {
                            // No security archive known: that companion is left out, not an error.
                            if let Ok(mirror) = mirror_for(&entries, &companion, self.mirror.as_deref()) {
                                lines.push((mirror, companion));
                            }
                        }
                        lines
                    }
                };
                let private = Private::create(&self.root.join(suite), suite, &lines)?;
                Apt { private: Some(private) }
            }
        };
        let apt = Arc::new(apt);
        if !apt.has_lists() {
            apt.update()?;
        }
        opened.push((suite.map(str::to_string), apt.clone()));
        Ok(apt)
    }
}

/// The suites that carry a Debian release's point releases besides the release itself: `SUITE-updates`
/// and `SUITE-security`. None for a suite that is itself one of those, or for sid, unstable and
/// experimental, which have none.
pub fn companions(suite: &str) -> Vec<String> {
    if suite.contains(['-', '/']) || ["sid", "unstable", "experimental"].contains(&suite) {
        return Vec::new();
    }
    vec![format!("{suite}-updates"), format!("{suite}-security")]
}

/// The `sources.list` of a private configuration for `suite`: one `deb` line per (mirror, suite).
pub fn sources_list(suite: &str, lines: &[(Mirror, String)]) -> String {
    let mut list =
        format!("# Written by ksnap: the Debian suite {suite}, for kernels only. The system's apt is not touched.\n");
    for (mirror, line_suite) in lines {
        let options = match &mirror.signed_by {
            Some(keyring) => format!("[signed-by={keyring}]"),
            None => "[trusted=yes]".to_string(),
        };
        list.push_str(&format!("deb {options} {} {line_suite} main\n", mirror.uri));
    }
    list
}

fn check_suite_name(suite: &str) -> Result<(), Error> {
    let ok = !suite.is_empty() && suite.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSuite { suite: suite.into() })
    }
}

/// ksnap's own apt configuration for one suite: `DIR/sources.list`, `DIR/lists`, `DIR/cache`.
#[derive(Debug)]
struct Private {
    dir: PathBuf,
    suite: String,
    /// Whether apt is told to prefer `suite` (`APT::Default-Release`): when companions are listed. (apt
    /// refuses it for an archive without a `Release` file, such as a local test archive.)
    prefer_suite: bool,
}

impl Private {
    fn create(dir: &Path, suite: &str, lines: &[(Mirror, String)]) -> Result<Private, Error> {
        for sub in ["lists/partial", "cache", "parts"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|source| Error::CacheUnusable { path: dir.join(sub), cause: source })?;
        }
        let list = sources_list(suite, lines);
        let path = dir.join("sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(list.as_str()) {
            cache::write_atomic(&path, list.as_bytes())?;
            // Lists fetched for other sources are not this configuration's: update again.
            let _ = std::fs::remove_file(dir.join("updated"));
        }
        Ok(Private { dir: dir.to_path_buf(), suite: suite.to_string(), prefer_suite: lines.len() > 1 })
    }
}

/// One apt configuration: the system's, or ksnap's own for a suite.
#[derive(Debug)]
pub struct Apt {
    private: Option<Private>,
}

/// The fields of one package version (`apt-cache show`).
#[derive(Debug, Clone)]
pub struct Fields {
    text: String,
}

impl Fields {
    /// The value of field `name` (case-insensitive), trimmed; only its first line for a multi-line field.
    pub fn get(&self, name: &str) -> Option<String> {
        self.text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }

    /// The names in `Depends`, first alternative of each, with an exact `(= VERSION)` where given.
    pub fn depends(&self) -> Vec<(String, Option<String>)> {
        let Some(depends) = self.get("Depends") else { return Vec::new() };
        depends
            .split(',')
            .map(|alternatives| alternatives.split('|').next().unwrap_or("").trim())
            .filter(|dep| !dep.is_empty())
            .map(|dep| {
                let name = dep.split([' ', '(']).next().unwrap_or("").to_string();
                let exact = dep
                    .split_once('(')
                    .and_then(|(_, c)| c.trim_end_matches(')').trim().strip_prefix('='))
                    .map(|v| v.trim().to_string());
                (name, exact)
            })
            .collect()
    }
}

impl Apt {
    /// `system`, or the suite of a private configuration.
    pub fn label(&self) -> &str {
        self.private.as_ref().map_or(SYSTEM, |p| p.suite.as_str())
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        if let Some(private) = &self.private {
            let dir = &private.dir;
            let option = |name: &str, value: &Path| format!("{name}={}", value.display());
            for (name, value) in [
                ("Dir::Etc::SourceList", dir.join("sources.list")),
                ("Dir::Etc::SourceParts", dir.join("parts")),
                ("Dir::Etc::Preferences", dir.join("parts/none")),
                ("Dir::Etc::PreferencesParts", dir.join("parts")),
                ("Dir::State::Lists", dir.join("lists")),
                ("Dir::Cache", dir.join("cache")),
                ("Dir::Cache::Archives", dir.join("cache")),
                // No installed packages: what the system has installed is not what a kernel resolves to.
                ("Dir::State::status", PathBuf::from("/dev/null")),
            ] {
                command.arg("-o").arg(option(name, &value));
            }
            // The suite itself first: a metapackage resolves as it did before the companions were listed
            // (ksnap.lock's pins move only with the suite); the companions serve exact versions (releases).
            if private.prefer_suite {
                command.arg("-o").arg(format!("APT::Default-Release={}", private.suite));
            }
            // Only the package index: no translations or AppStream metadata.
            command.args(["-o", "Acquire::Languages=none"]);
            for target in ["DEP-11", "DEP-11-icons", "DEP-11-icons-small", "DEP-11-icons-hidpi"] {
                command.arg("-o").arg(format!("Acquire::IndexTargets::deb::{target}::DefaultEnabled=false"));
            }
        }
        // As root, apt drops privileges to `_apt`, which cannot write ksnap's directories.
        command.args(["-o", "APT::Sandbox::User=root"]);
        command.stdin(Stdio::null()).env("LC_ALL", "C");
        command
    }

    /// Where this configuration's apt keeps its state: the private directory, or the system's cache.
    fn state_dir(&self) -> PathBuf {
        self.private.as_ref().map_or_else(|| PathBuf::from("/var/cache/apt"), |p| p.dir.clone())
    }

    fn has_lists(&self) -> bool {
        match &self.private {
            None => true,
            Some(private) => private.dir.join("updated").exists(),
        }
    }

    /// `apt-get update` for a private configuration. The system's lists are the system's business: for
    /// it this does nothing.
    pub fn update(&self) -> Result<(), Error> {
        let Some(private) = &self.private else { return Ok(()) };
        let mut command = self.command("apt-get");
        command.args(["update", "-q"]);
        require_space(&private.dir, LISTS_ROOM, &format!("apt's package lists for {}", private.suite))?;
        run_apt(&mut command, "apt-get update", &private.dir)?;
        cache::write_atomic(&private.dir.join("updated"), b"")
    }

    /// The fields of `name` at `version`, or of the version apt would install (`None`).
    pub fn show(&self, name: &str, version: Option<&str>) -> Result<Fields, Error> {
        check_package_name(name)?;
        let spec = match version {
            Some(version) => format!("{name}={version}"),
            None => name.to_string(),
        };
        let mut command = self.command("apt-cache");
        command.args(["show", "--no-all-versions", &spec]);
        let text =
            run_apt(&mut command, &format!("apt-cache show {spec}"), &self.state_dir()).map_err(|e| match e {
                Error::AptFailed { stderr, .. } => Error::UnknownPackage {
                    package: spec.clone(),
                    detail: format!(
                        "{} ({})",
                        if stderr.is_empty() { "no such package" } else { &stderr },
                        self.label()
                    ),
                },
                other => other,
            })?;
        if text.trim().is_empty() {
            return Err(Error::UnknownPackage { package: spec, detail: format!("no such package ({})", self.label()) });
        }
        Ok(Fields { text })
    }

    /// The suite `name` `version` is served from (`bookworm-security`), from `apt-cache madison`; a private
    /// configuration's own suite when that serves it.
    fn origin_suite(&self, name: &str, version: &str) -> Result<String, Error> {
        let rows = self.madison(&[name.to_string()])?;
        let suites: Vec<String> =
            rows.into_iter().filter(|(n, v, _)| n == name && v == version).map(|(_, _, suite)| suite).collect();
        let own = self.private.as_ref().map(|p| p.suite.clone());
        Ok(match own {
            Some(own) if suites.is_empty() || suites.contains(&own) => own,
            _ => suites.into_iter().next().unwrap_or_else(|| SYSTEM.to_string()),
        })
    }

    /// `apt-cache madison NAMES`: (name, version, suite) for every version of each package in a `Packages`
    /// index, in apt's order.
    fn madison(&self, names: &[String]) -> Result<Vec<(String, String, String)>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = self.command("apt-cache");
        command.arg("madison").args(names);
        Ok(releases::parse_madison(&run_apt(&mut command, "apt-cache madison", &self.state_dir())?))
    }

    fn pinned(&self, name: &str, version: Option<&str>) -> Result<(PinnedPackage, Fields), Error> {
        let fields = self.show(name, version)?;
        let missing = |field: &str| Error::UnknownPackage {
            package: name.into(),
            detail: format!("apt-cache show printed no {field}"),
        };
        let version = fields.get("Version").ok_or_else(|| missing("Version"))?;
        let sha256 = fields.get("SHA256").ok_or_else(|| missing("SHA256"))?;
        let suite = self.origin_suite(name, &version)?;
        Ok((PinnedPackage { name: name.to_string(), version, sha256, suite }, fields))
    }

    /// The packages `name` stands for today: a metapackage is followed to the real image (or source)
    /// package; an image package split into `linux-binary-*` + `linux-base-*` brings those too. The first
    /// package is the one that names the kernel.
    pub fn pin(&self, name: &str) -> Result<Vec<PinnedPackage>, Error> {
        let mut name = name.to_string();
        // linux-image-cloud-amd64 → linux-image-6.1.0-56-cloud-amd64: one hop in Debian; allow a few.
        for _ in 0..4 {
            let (package, fields) = self.pinned(&name, None)?;
            let depends = fields.depends();
            let next =
                depends.iter().find(|(dep, _)| dep.starts_with("linux-image-") || dep.starts_with("linux-source-"));
            if let Some((next, _)) = next {
                name = next.clone();
                continue;
            }
            return self.with_parts(package, &fields);
        }
        Err(Error::UnknownPackage { package: name, detail: "too many levels of metapackages".into() })
    }

    /// Exactly image package `name` at `version` (a release), with its `linux-binary-*` and `linux-base-*`
    /// parts if it is split, each with the SHA-256 the archive's index gives.
    pub fn pin_exact(&self, name: &str, version: &str) -> Result<Vec<PinnedPackage>, Error> {
        let (package, fields) = self.pinned(name, Some(version))?;
        self.with_parts(package, &fields)
    }

    /// `image` and the parts its `Depends` names (Debian 7.x's `linux-binary-*`, `linux-base-*`).
    fn with_parts(&self, image: PinnedPackage, fields: &Fields) -> Result<Vec<PinnedPackage>, Error> {
        let depends = fields.depends();
        let mut packages = vec![image];
        for prefix in ["linux-binary-", "linux-base-"] {
            if let Some((part, exact)) = depends.iter().find(|(dep, _)| dep.starts_with(prefix)) {
                packages.push(self.pinned(part, exact.as_deref())?.0);
            }
        }
        Ok(packages)
    }

    /// Every release of `family` this configuration serves (every image package of the family, each at
    /// every version), in Debian version order.
    pub fn releases(&self, family: &Family) -> Result<Vec<Release>, Error> {
        let mut command = self.command("apt-cache");
        command.args(["pkgnames", "linux-image-"]);
        let names = run_apt(&mut command, "apt-cache pkgnames linux-image-", &self.state_dir())?;
        let mut names: Vec<String> =
            names.lines().map(str::trim).filter(|n| family.contains(n)).map(String::from).collect();
        names.sort();
        names.dedup();
        Ok(releases::from_rows(&self.madison(&names)?, family))
    }

    /// Download exactly `packages` into `dir` and check each against its pinned SHA-256. Returns the
    /// `.deb`s in the order given. A version the archive no longer serves is [`Error::PackageGone`].
    pub fn download(&self, packages: &[PinnedPackage], dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let specs: Vec<String> = packages.iter().map(|p| format!("{}={}", p.name, p.version)).collect();
        let mut command = self.command("apt-get");
        command.args(["download", "-q"]).args(&specs).current_dir(dir);
        let what = format!("apt-get download {}", specs.join(" "));
        match run_apt(&mut command, &what, dir) {
            Ok(_) => {}
            Err(Error::AptFailed { stderr, .. })
                if stderr.contains("not found")
                    || stderr.contains("Not Found")
                    || stderr.contains("Unable to locate") =>
            {
                return Err(Error::PackageGone {
                    packages: specs.join(" "),
                    suite: self.label().to_string(),
                    detail: stderr,
                });
            }
            Err(e) => return Err(e),
        }
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("listing the download directory", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        packages
            .iter()
            .map(|package| {
                // apt names the file NAME_VERSION_ARCH.deb, with the version's `:` escaped as `%3a`.
                let prefix = format!("{}_{}_", package.name, package.version.replace(':', "%3a"));
                let deb = files
                    .iter()
                    .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
                    .ok_or_else(|| Error::AptFailed {
                        command: what.clone(),
                        stderr: format!("no {prefix}*.deb was written"),
                    })?;
                let actual = cache::sha256_file(deb).map_err(|e| Error::io(format!("reading {}", deb.display()), e))?;
                if actual != package.sha256 {
                    return Err(Error::ChecksumMismatch {
                        package: package.to_string(),
                        expected: package.sha256.clone(),
                        actual,
                    });
                }
                Ok(deb.clone())
            })
            .collect()
    }
}

fn check_package_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(Error::UnknownPackage { package: name.into(), detail: "not a valid Debian package name".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_sources() {
        let text = "# comment\n\
                    deb http://m.example/debian bookworm main contrib\n\
                    deb-src http://m.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://s.example/debian-security bookworm-security main # tail\n\
                    #deb http://off.example/debian sid main\n";
        assert_eq!(
            parse_one_line(text),
            vec![
                SourceEntry { uri: "http://m.example/debian".into(), suites: vec!["bookworm".into()], signed_by: None },
                SourceEntry {
                    uri: "http://s.example/debian-security".into(),
                    suites: vec!["bookworm-security".into()],
                    signed_by: Some("/k.gpg".into())
                },
            ]
        );
    }

    #[test]
    fn deb822_sources() {
        let text = "Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
                    Types: deb\nURIs: http://off.example/debian\nSuites: sid\nEnabled: no\n\n\
                    Types: deb-src\nURIs: http://src.example/debian\nSuites: sid\n\n\
                    Types: deb\nURIs: http://inline.example/debian\nSuites: trixie\nSigned-By:\n -----BEGIN PGP\n .\n";
        let entries = parse_deb822(text);
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(entries[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(entries[0].signed_by.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
        assert_eq!(entries[1].uri, "http://s.example/debian-security");
        assert_eq!((entries[2].uri.as_str(), entries[2].signed_by.as_deref()), ("http://inline.example/debian", None));
    }

    #[test]
    fn sources_are_read_from_every_format_under_etc_apt() {
        let etc = tempfile::tempdir().unwrap();
        std::fs::create_dir(etc.path().join("sources.list.d")).unwrap();
        std::fs::write(etc.path().join("sources.list"), "deb http://a.example/debian bullseye main\n").unwrap();
        std::fs::write(etc.path().join("sources.list.d/b.list"), "deb http://b.example/debian sid main\n").unwrap();
        std::fs::write(
            etc.path().join("sources.list.d/c.sources"),
            "Types: deb\nURIs: http://c.example/debian\nSuites: trixie\n",
        )
        .unwrap();
        std::fs::write(etc.path().join("sources.list.d/d.list.disabled"), "deb http://d.example/debian sid main\n")
            .unwrap();
        let uris: Vec<String> = read_sources(etc.path()).into_iter().map(|e| e.uri).collect();
        assert_eq!(uris, ["http://a.example/debian", "http://b.example/debian", "http://c.example/debian"]);
    }

    fn entries() -> Vec<SourceEntry> {
        let mut entries = parse_one_line("deb https://vendor.example/apt cloud-sdk-bookworm main\n");
        entries.extend(parse_deb822(
            "Types: deb\nURIs: http://m.example/debian/\nSuites: bookworm bookworm-updates\n\n\
             Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nSigned-By: /s.gpg\n",
        ));
        entries
    }

    #[test]
    fn the_mirror_of_a_suite_is_the_system_debian_mirror_of_its_kind() {
        let main = mirror_for(&entries(), "bullseye", None).unwrap();
        assert_eq!(main, Mirror { uri: "http://m.example/debian".into(), signed_by: Some(DEBIAN_KEYRING.into()) });
        let security = mirror_for(&entries(), "bullseye-security", None).unwrap();
        assert_eq!(
            security,
            Mirror { uri: "http://s.example/debian-security".into(), signed_by: Some("/s.gpg".into()) }
        );
        let overridden = mirror_for(&entries(), "sid", Some("http://o.example/debian/")).unwrap();
        assert_eq!(overridden.uri, "http://o.example/debian");
        assert_eq!(
            mirror_for(&[], "sid-security", Some("http://o.example/debian")).unwrap().uri,
            "http://o.example/debian-security"
        );
    }

    #[test]
    fn a_system_without_a_debian_mirror_is_told_how_to_name_one() {
        let ubuntu =
            parse_one_line("deb http://u.example/ubuntu jammy main\ndeb http://u.example/ubuntu jammy-security main\n");
        let err = mirror_for(&ubuntu, "bullseye", None).unwrap_err().to_string();
        assert!(err.contains("KSNAP_DEBIAN_MIRROR") && err.contains("[apt] mirror"), "{err}");
    }

    #[test]
    fn depends_keeps_first_alternatives_and_exact_versions() {
        let fields = Fields {
            text: "Package: linux-image-7.2.13+deb14-cloud-amd64\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2), \
                   linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\n"
                .into(),
        };
        assert_eq!(
            fields.depends(),
            vec![
                ("dracut".to_string(), None),
                ("linux-base-7.2.13+deb14-cloud-amd64".to_string(), Some("7.2.13-1".to_string())),
                ("linux-binary-7.2.13+deb14-cloud-amd64".to_string(), Some("7.2.13-1".to_string())),
            ]
        );
    }

    #[test]
    fn a_private_configuration_lists_its_suite_and_companions() {
        assert_eq!(companions("bullseye"), ["bullseye-updates", "bullseye-security"]);
        for none in ["sid", "experimental", "unstable", "bookworm-backports", "bullseye-security"] {
            assert!(companions(none).is_empty(), "{none}");
        }
        let main = mirror_for(&entries(), "bullseye", None).unwrap();
        let security = mirror_for(&entries(), "bullseye-security", None).unwrap();
        let list = sources_list(
            "bullseye",
            &[
                (main.clone(), "bullseye".into()),
                (main, "bullseye-updates".into()),
                (security, "bullseye-security".into()),
            ],
        );
        let k = DEBIAN_KEYRING;
        assert_eq!(
            list,
            format!(
                "# Written by ksnap: the Debian suite bullseye, for kernels only. The system's apt is not touched.\n\
                 deb [signed-by={k}] http://m.example/debian bullseye main\n\
                 deb [signed-by={k}] http://m.example/debian bullseye-updates main\n\
                 deb [signed-by=/s.gpg] http://s.example/debian-security bullseye-security main\n"
            )
        );
        let local = Mirror { uri: "file:/archive".into(), signed_by: None };
        assert_eq!(
            sources_list("sid", &[(local, "sid".into())]).lines().nth(1),
            Some("deb [trusted=yes] file:/archive sid main")
        );
    }

    /// An existing private configuration whose sources change (the companions added) is updated again.
    #[test]
    fn changed_sources_drop_the_updated_mark() {
        let dir = tempfile::tempdir().unwrap();
        let main = Mirror { uri: "file:/a".into(), signed_by: None };
        Private::create(dir.path(), "bullseye", &[(main.clone(), "bullseye".into())]).unwrap();
        std::fs::write(dir.path().join("updated"), "").unwrap();
        Private::create(dir.path(), "bullseye", &[(main.clone(), "bullseye".into())]).unwrap();
        assert!(dir.path().join("updated").exists(), "same sources: no new update");
        Private::create(
            dir.path(),
            "bullseye",
            &[(main.clone(), "bullseye".into()), (main, "bullseye-updates".into())],
        )
        .unwrap();
        assert!(!dir.path().join("updated").exists(), "new sources: updated again");
        assert!(std::fs::read_to_string(dir.path().join("sources.list")).unwrap().contains("bullseye-updates main"));
    }

    #[test]
    fn invalid_names_are_rejected_before_apt() {
        let err = Apt { private: None }.show("linux image; rm -rf", None).unwrap_err();
        assert!(err.to_string().contains("not a valid Debian package name"), "{err}");
        let err = check_suite_name("../etc").unwrap_err().to_string();
        assert!(err.starts_with("`../etc` is not a valid Debian suite name"), "{err}");
    }
}
