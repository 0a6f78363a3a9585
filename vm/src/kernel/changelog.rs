//! A Debian kernel changelog (`usr/share/doc/PACKAGE/changelog.gz` in a `linux-image-*` package), read
//! tolerantly: its entries by version, and in each the changes it lists — upstream stable commit titles
//! (`    - mm/gup: …` under `  * New upstream stable update:`) and Debian's own fixes (`  * proc: …`).
//!
//! What `ksnap lock --update` shows when it moves a kernel is [`since`]: the entries of the new kernel's
//! changelog after the locked version.
//!
//! ```text
//! linux (6.1.174-1) bookworm-security; urgency=high
//!
//!   * New upstream stable update:
//!     https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.1.174
//!     - net: skbuff: preserve shared-frag marker during coalescing
//!       (CVE-2026-46300)
//!
//!   [ Salvatore Bonaccorso ]
//!   * smb: client: reject userspace cifs.spnego descriptions
//!
//!  -- Salvatore Bonaccorso <carnil@debian.org>  Tue, 26 May 2026 23:29:19 +0200
//! ```
//!
//! A signed image's changelog starts with an entry of `linux-signed-ARCH` (`6.1.192+3`) that says
//! `Sign kernel from linux 6.1.192-3` (a backport's: `… from linux-6.12 6.12.118-1~deb12u1`): that entry
//! stands for the version it signs.

use std::cmp::Ordering;
use std::io::Read;
use std::path::Path;

use crate::kernel::releases::compare_versions;

/// A changelog is a few MB of text; anything far bigger is not one.
const MAX_CHANGELOG_BYTES: u64 = 64 << 20;

/// One entry of a changelog: one upload of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The source package, e.g. `linux` or `linux-signed-amd64`.
    pub source: String,
    /// The entry's version, e.g. `6.1.174-1`.
    pub version: String,
    /// The `linux` version a `linux-signed-*` entry signs (`Sign kernel from linux VERSION`).
    pub signs: Option<String>,
    /// The changes it lists, in order, each on one line (continuation lines joined).
    pub changes: Vec<String>,
}

impl Entry {
    /// The version of the kernel this entry describes: the signed one for a `linux-signed-*` entry.
    pub fn kernel_version(&self) -> &str {
        self.signs.as_deref().unwrap_or(&self.version)
    }
}

/// The entries of a changelog, newest first as written. Lines that fit no rule are skipped: a
/// changelog is prose, and a line this reader does not understand must not hide the others.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    // The item being read, and the indentation of its marker: deeper lines continue it.
    let mut open: Option<usize> = None;
    for line in text.lines() {
        if let Some(entry) = heading(line) {
            entries.push(entry);
            open = None;
            continue;
        }
        let Some(entry) = entries.last_mut() else { continue };
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || line.starts_with(" -- ") || trimmed.starts_with('[') && trimmed.ends_with(']') {
            open = None;
            continue;
        }
        let item = ["* ", "- ", "+ "].iter().find_map(|marker| trimmed.strip_prefix(marker));
        match item {
            Some(text) if indent >= 2 => {
                let text = text.trim();
                if let Some(version) = signed_version(text) {
                    entry.signs = Some(version.to_string());
                    open = None;
                } else if trimmed.starts_with("* ") && text.ends_with(':') && !text.contains(": ") {
                    // A group's heading (`New upstream stable update:`), not a change.
                    open = None;
                } else {
                    entry.changes.push(text.to_string());
                    open = Some(indent);
                }
            }
            _ if trimmed.starts_with("http://") || trimmed.starts_with("https://") => open = None,
            _ => match (open, entry.changes.last_mut()) {
                (Some(marker), Some(change)) if indent > marker => {
                    change.push(' ');
                    change.push_str(trimmed.trim_end());
                }
                _ => open = None,
            },
        }
    }
    entries
}

/// The version in `Sign kernel from linux 6.1.192-3` (or `… from linux-6.12 6.12.118-1~deb12u1`).
fn signed_version(item: &str) -> Option<&str> {
    let rest = item.strip_prefix("Sign kernel from ")?;
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [source, version] if source.starts_with("linux") => Some(version),
        _ => None,
    }
}

/// `SOURCE (VERSION) DISTRIBUTIONS; urgency=…`, at the start of a line.
fn heading(line: &str) -> Option<Entry> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (source, rest) = line.split_once(" (")?;
    let (version, rest) = rest.split_once(')')?;
    if source.is_empty() || source.contains(char::is_whitespace) || !rest.contains(';') {
        return None;
    }
    Some(Entry { source: source.to_string(), version: version.to_string(), signs: None, changes: Vec::new() })
}

/// The entries that describe what changed since version `old`, newest first: in the changelog of the
/// newer kernel, the entries above the first one (a `linux-signed-*` entry by the version it signs)
/// whose version is `old` or older in Debian's order. Found by position rather than by comparing every
/// version with the new one: a backport's changelog interleaves `linux (6.12.118-1) trixie` with
/// `linux-6.12 (6.12.118-1~deb12u1) bookworm`, and `6.12.118-1` sorts after `6.12.118-1~deb12u1` though
/// the backport holds it. Versions compare as dpkg does ([`compare_versions`]); nothing is selected when
/// `old` is newer than every entry (a move back).
pub fn since<'a>(entries: &'a [Entry], old: &str) -> Vec<&'a Entry> {
    entries.iter().take_while(|entry| compare_versions(entry.kernel_version(), old) == Ordering::Greater).collect()
}

/// The text of a gzip-compressed changelog file (`changelog.gz`), bounded.
pub fn read_gz(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(file).take(MAX_CHANGELOG_BYTES).read_to_end(&mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excerpt() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/changelog/linux-6.1-excerpt");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn reads_the_entries_of_a_real_changelog() {
        let entries = parse(&excerpt());
        let versions: Vec<(&str, &str)> = entries.iter().map(|e| (e.source.as_str(), e.version.as_str())).collect();
        assert_eq!(
            versions,
            [
                ("linux-signed-amd64", "6.1.192+3"),
                ("linux", "6.1.192-2"),
                ("linux", "6.1.177-1"),
                ("linux", "6.1.174-1"),
                ("linux", "6.1.172-1"),
                ("linux", "6.1.170-3"),
                ("linux", "6.1.170-2"),
            ]
        );
        assert_eq!(entries[0].signs.as_deref(), Some("6.1.192-3"));
        assert_eq!(entries[0].kernel_version(), "6.1.192-3");
        assert_eq!(entries[0].changes, ["nfsd: preflight SEQUENCE replies before accepting a slot (CVE-2026-99362)"]);
        // Upstream titles under the stable update, continuation lines joined, URLs and the group
        // heading left out, Debian's own fixes after the `[ Author ]` line.
        assert_eq!(
            entries[3].changes,
            [
                "[amd64] x86/CPU/AMD: Add ZenX generations flags",
                "[amd64] x86/CPU/AMD: Call the spectral chicken in the Zen2 init function",
                "[amd64] x86/CPU/AMD: Rename init_amd_zn() to init_amd_zen_common()",
                "[amd64] x86/CPU/AMD: Add X86_FEATURE_ZEN1",
                "[amd64] x86/CPU/AMD: Prevent improper isolation of shared resources in Zen2's op cache",
                "net: skbuff: preserve shared-frag marker during coalescing (CVE-2026-46300)",
                "net: skbuff: propagate shared-frag marker through frag-transfer helpers (CVE-2026-43503)",
                "smb: client: reject userspace cifs.spnego descriptions",
            ]
        );
        assert!(entries[4].changes == ["ptrace: slightly saner 'get_dumpable()' logic"], "{:?}", entries[4]);
        assert_eq!(
            entries[6].changes[4],
            "Revert \"wifi: cfg80211: stop NAN and P2P in cfg80211_leave\" (Closes: #1135599)"
        );
        let upstream = &entries[2].changes;
        assert!(upstream.len() > 100, "{}", upstream.len());
        assert!(upstream.iter().all(|c| !c.starts_with("http") && !c.contains("  ")), "{upstream:?}");
    }

    #[test]
    fn selects_the_entries_since_the_old_version() {
        let entries = parse(&excerpt());
        let versions =
            |old| -> Vec<String> { since(&entries, old).iter().map(|e| e.kernel_version().to_string()).collect() };
        assert_eq!(versions("6.1.170-3"), ["6.1.192-3", "6.1.192-2", "6.1.177-1", "6.1.174-1", "6.1.172-1"]);
        // The signed entry stands for 6.1.192-3 (its own 6.1.192+3 sorts after it).
        assert_eq!(versions("6.1.192-2"), ["6.1.192-3"]);
        assert_eq!(versions("6.1.177-1"), ["6.1.192-3", "6.1.192-2"]);
        // A version between two entries: the older entry is not part of the move.
        assert_eq!(versions("6.1.175-1"), ["6.1.192-3", "6.1.192-2", "6.1.177-1"]);
        assert_eq!(versions("6.1.170-1").len(), 7);
        assert!(versions("6.1.192-3").is_empty());
        assert!(versions("6.1.200-1").is_empty(), "a move back lists nothing");
        assert!(versions("not a version!").is_empty());
    }

    /// As in linux-image-6.12.118+deb12-cloud-amd64 6.12.118-1~deb12u1 (bookworm-security): the backport's
    /// entries interleaved with trixie's, which sort after them.
    #[test]
    fn a_backport_changelog_is_cut_where_the_old_version_is() {
        let entry = |heading: &str, item: &str| {
            format!("{heading}; urgency=high\n\n  * {item}\n\n -- A <a@b>  Mon, 1 Jan 2024\n\n")
        };
        let text = [
            entry(
                "linux-signed-6.12-amd64 (6.12.118+1~deb12u1) bookworm-security",
                "Sign kernel from linux-6.12 6.12.118-1~deb12u1",
            ),
            entry("linux (6.12.118-1) trixie-security", "mm: new"),
            entry("linux-6.12 (6.12.117-1~deb12u1) bookworm-security", "Rebuild for bookworm"),
            entry("linux (6.12.117-1) trixie-security", "mm: old"),
        ]
        .concat();
        let entries = parse(&text);
        assert_eq!(entries[0].kernel_version(), "6.12.118-1~deb12u1");
        let selected: Vec<&str> = since(&entries, "6.12.117-1~deb12u1").iter().map(|e| e.kernel_version()).collect();
        assert_eq!(selected, ["6.12.118-1~deb12u1", "6.12.118-1"]);
        assert_eq!(signed_version("Sign kernel from linux 6.1.192-3"), Some("6.1.192-3"));
        assert_eq!(signed_version("Sign kernel from the moon"), None);
    }

    #[test]
    fn nested_items_and_stray_lines() {
        let text = "garbage before the first entry\n  * not in any entry\n\
                    linux (7.2.13-1) unstable; urgency=medium\n\n  * New upstream stable update:\n\
                    \x20   - [arm64] Mitigate TLBI errata (CVE-1):\n      + cputype: Add X\n\
                    \x20     + errata: Mitigate Y\n        on Z\n\
                    \x20   - mm/gup: fix\n\nstray text\n -- A <a@b>  Mon, 1 Jan 2024\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].changes,
            ["[arm64] Mitigate TLBI errata (CVE-1):", "cputype: Add X", "errata: Mitigate Y on Z", "mm/gup: fix"]
        );
        assert!(parse("").is_empty());
        assert!(parse("linux 6.1 no parentheses\n(x) y\n").is_empty());
    }

    #[test]
    fn reads_a_gzip_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changelog.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(excerpt().as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert_eq!(read_gz(&path).unwrap(), excerpt());
        std::fs::write(&path, b"not gzip").unwrap();
        assert!(read_gz(&path).is_err());
    }
}
