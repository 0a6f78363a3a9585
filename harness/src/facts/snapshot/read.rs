//! Reading committed snapshots back: `snapshots/SUITE@COLUMN.snap` → the facts and the environment, so
//! that `ksnap diff` and `ksnap report` work on a checkout with no VM at all.
//!
//! The format is insta's: a `---` line, a YAML header (ksnap writes its environment under `info:`), a
//! `---` line, then the body, which ksnap writes as sorted `KEY = VALUE` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::facts::Facts;

/// One snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub suite: String,
    /// `KERNEL` or `KERNEL+VARIANT`.
    pub column: String,
    /// The `info:` map of the header, flattened to strings (package, release, qemu, accel, …).
    pub environment: BTreeMap<String, String>,
    pub facts: Facts,
}

/// Every snapshot in `dir`, sorted by suite then column.
pub fn read_dir(dir: &Path) -> Result<Vec<SnapshotFile>> {
    let mut snapshots = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "snap") {
            snapshots.push(read(&path)?);
        }
    }
    snapshots.sort_by(|a, b| (&a.suite, &a.column).cmp(&(&b.suite, &b.column)));
    Ok(snapshots)
}

/// The snapshots grouped as columns: column name → suite → facts.
pub fn columns(snapshots: &[SnapshotFile]) -> BTreeMap<String, crate::facts::column::Column> {
    let mut columns: BTreeMap<String, crate::facts::column::Column> = BTreeMap::new();
    for snapshot in snapshots {
        columns.entry(snapshot.column.clone()).or_default().insert(snapshot.suite.clone(), snapshot.facts.clone());
    }
    columns
}

pub fn read(path: &Path) -> Result<SnapshotFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let Some((suite, column)) = stem.split_once('@') else {
        bail!("{}: snapshot names are SUITE@KERNEL[+VARIANT].snap", path.display());
    };
    let (environment, facts) = parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(SnapshotFile { path: path.to_path_buf(), suite: suite.into(), column: column.into(), environment, facts })
}

fn parse(text: &str) -> Result<(BTreeMap<String, String>, Facts)> {
    let mut parts = text.splitn(3, "---\n");
    let (Some(""), Some(header), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("not an insta snapshot (expected a header between two `---` lines)");
    };
    let mut environment = BTreeMap::new();
    let mut in_info = false;
    for line in header.lines() {
        if !line.starts_with(' ') {
            in_info = line == "info:";
            continue;
        }
        // ksnap's info is a flat map: two-space indented `key: value` lines.
        if let (true, Some((key, value))) = (in_info, line.trim_start().split_once(": ")) {
            if !line.starts_with("   ") {
                environment.insert(key.to_string(), unquote(value));
            }
        }
    }
    let mut facts = Facts::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once(" = ") else { bail!("body line is not `KEY = VALUE`: {line}") };
        facts.insert(key.to_string(), value.to_string());
    }
    Ok((environment, facts))
}

/// A YAML scalar as insta writes it: plain, or double-quoted with backslash escapes.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP: &str = r#"---
source: harness/src/testing.rs
description: "Facts suite `env` observed on kernel `6.1` (variant `default`)"
info:
  kernel: "6.1"
  package: linux-image-6.1.0-56-cloud-amd64
  qemu: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
  toolchains:
    musl: musl-gcc
---
env.page_size = ok
env.page_size.bytes = 4096
env.uname.version = #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)
"#;

    #[test]
    fn parses_header_info_and_body() {
        let (environment, facts) = parse(SNAP).unwrap();
        assert_eq!(environment["kernel"], "6.1");
        assert_eq!(environment["qemu"], "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
        assert!(!environment.contains_key("musl"), "nested maps are not flattened into the top level");
        assert_eq!(facts["env.page_size.bytes"], "4096");
        assert_eq!(facts["env.uname.version"], "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)");
    }

    #[test]
    fn reads_the_committed_snapshots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
        let snapshots = read_dir(&dir).unwrap();
        let env61 = snapshots.iter().find(|s| s.suite == "env" && s.column == "6.1").expect("env@6.1.snap");
        assert_eq!(env61.facts["env.page_size.bytes"], "4096");
        assert_eq!(env61.environment["release"], "6.1.0-56-cloud-amd64");
    }

    #[test]
    fn rejects_what_is_not_a_snapshot() {
        assert!(parse("hello").is_err());
        assert!(parse("---\nx: 1\n---\nno equals sign\n").is_err());
        assert_eq!(unquote(r#""a \"b\" \\ c""#), r#"a "b" \ c"#);
    }
}
