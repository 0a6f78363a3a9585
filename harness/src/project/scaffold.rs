//! `ksnap init [DIR]`: a project of one's own, ready to run — a ksnap.toml with the default kernels, an
//! example probe (a binary of the new crate, written with `ksnap-probe`), the `cargo test` entry point
//! ([`crate::testing::main`]), a snapshots directory cargo-insta finds (it is inside the package), the
//! nextest configuration and a GitHub Actions workflow.
//!
//! The files are templates in `harness/templates/init/`, built into the binary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the new project's ksnap crates come from.
#[derive(Debug, Clone)]
pub enum KsnapSource {
    /// ksnap's git repository (what a user without a checkout has).
    Git(String),
    /// A checkout of ksnap's repository on this machine: path dependencies.
    Checkout(PathBuf),
}

impl KsnapSource {
    /// ksnap's own repository, as its Cargo.toml declares it.
    pub fn upstream() -> KsnapSource {
        KsnapSource::Git(env!("CARGO_PKG_REPOSITORY").to_string())
    }

    /// The dependency on the package in directory `dir` of ksnap's repository, as a TOML inline table
    /// (cargo finds a package of a git repository by its name).
    fn dependency(&self, dir: &str) -> String {
        match self {
            KsnapSource::Git(url) => format!("{{ git = {url:?} }}"),
            KsnapSource::Checkout(root) => format!("{{ path = {:?} }}", root.join(dir).display().to_string()),
        }
    }

    /// The arguments of `cargo install --locked` that install the `ksnap` command.
    fn install_args(&self) -> String {
        match self {
            KsnapSource::Git(url) => format!("--git {url} ksnap"),
            KsnapSource::Checkout(root) => format!("--path {}", root.join("harness").display()),
        }
    }
}

/// (path in the new project, template text).
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../templates/init/Cargo.toml.in")),
    ("ksnap.toml", include_str!("../../templates/init/ksnap.toml")),
    ("src/main.rs", include_str!("../../templates/init/src/main.rs")),
    ("tests/ksnap.rs", include_str!("../../templates/init/tests/ksnap.rs")),
    ("snapshots/README.md", include_str!("../../templates/init/snapshots/README.md")),
    (".config/nextest.toml", include_str!("../../templates/init/config/nextest.toml")),
    (".github/workflows/ksnap.yml", include_str!("../../templates/init/github/workflows/ksnap.yml")),
    (".gitignore", include_str!("../../templates/init/gitignore")),
];

/// Write the project into `dir` (created if missing), its package named `name` (default: the directory's
/// name). Nothing is written if any of its files already exists: they are listed in the error.
pub fn init(dir: &Path, name: Option<&str>, source: &KsnapSource) -> Result<Vec<PathBuf>> {
    let dir_name = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = match name {
        Some(name) => name.to_string(),
        None => package_name(dir_name.file_name().and_then(|n| n.to_str()).unwrap_or("")),
    };
    if !is_package_name(&name) {
        bail!(
            "`{name}` cannot name the new crate and its suite: give one with --name (letters, digits, `-` and \
             `_`, starting with a letter)"
        );
    }
    let existing: Vec<String> =
        TEMPLATES.iter().map(|(path, _)| *path).filter(|path| dir.join(path).exists()).map(String::from).collect();
    if !existing.is_empty() {
        bail!(
            "{} already has {}: nothing was written. Run `ksnap init` in a new or empty directory",
            dir.display(),
            existing.join(", ")
        );
    }
    let mut written = Vec::new();
    for (path, template) in TEMPLATES {
        let text = template
            .replace("{name}", &name)
            .replace("{ksnap_probe}", &source.dependency("probe"))
            .replace("{ksnap}", &source.dependency("harness"))
            .replace("{ksnap_install}", &source.install_args());
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .with_context(|| format!("creating {}", path.parent().unwrap().display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A directory name made into a crate name: lowercase, other characters `-`.
fn package_name(dir_name: &str) -> String {
    dir_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// A name Cargo accepts for a package and ksnap for a suite and a probe.
fn is_package_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_written_whole_and_its_ksnap_toml_loads() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("My Probes");
        let source = KsnapSource::Checkout("/src/ksnap".into());
        let written = init(&project, None, &source).unwrap();
        assert_eq!(written.len(), TEMPLATES.len());
        let config = crate::project::config::Config::discover(&project).unwrap();
        let suite = &config.suites["my-probes"];
        assert_eq!(
            suite.probes[0].kind,
            crate::project::config::ProbeKind::Cargo {
                package: "my-probes".into(),
                bin: "my-probes".into(),
                profile: "release".into()
            }
        );
        assert_eq!(suite.variants, ["default", "force-never"]);
        assert_eq!(config.kernels.keys().collect::<Vec<_>>(), ["5.10", "6.1", "6.12", "7.2"]);
        let manifest: toml::Value =
            toml::from_str(&std::fs::read_to_string(project.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-probes"));
        assert_eq!(manifest["dependencies"]["ksnap-probe"]["path"].as_str(), Some("/src/ksnap/probe"));
        assert_eq!(manifest["dev-dependencies"]["ksnap"]["path"].as_str(), Some("/src/ksnap/harness"));
        assert_eq!(manifest["test"][0]["harness"].as_bool(), Some(false));
        let workflow = std::fs::read_to_string(project.join(".github/workflows/ksnap.yml")).unwrap();
        assert!(workflow.contains("cargo install --locked --path /src/ksnap/harness"), "{workflow}");
        assert!(!TEMPLATES.iter().any(|(path, _)| {
            let text = std::fs::read_to_string(project.join(path)).unwrap();
            ["{name}", "{ksnap}", "{ksnap_probe}", "{ksnap_install}"].iter().any(|p| text.contains(p))
        }));
    }

    #[test]
    fn git_dependencies_name_the_repository() {
        let source = KsnapSource::Git("https://example.org/ksnap".into());
        assert_eq!(source.dependency("harness"), r#"{ git = "https://example.org/ksnap" }"#);
        assert_eq!(source.install_args(), "--git https://example.org/ksnap ksnap");
    }

    #[test]
    fn nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        let err = init(dir.path(), Some("p"), &KsnapSource::upstream()).unwrap_err().to_string();
        assert!(err.contains("already has Cargo.toml: nothing was written"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = init(dir.path(), Some("9lives"), &KsnapSource::upstream()).unwrap_err().to_string();
        assert!(err.contains("give one with --name"), "{err}");
    }
}
