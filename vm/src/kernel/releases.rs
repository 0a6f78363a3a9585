//! The releases of a kernel line: every point release of its image package family an apt configuration
//! serves ([`Release`]), in Debian version order ([`compare_versions`], dpkg's algorithm).
//!
//! A kernel line is named by a package (`linux-image-cloud-amd64` in bullseye, `linux-image-6.12-cloud-amd64`)
//! that apt resolves to a real image package, `linux-image-ABI-FLAVOUR` (`linux-image-5.10.0-30-cloud-amd64`,
//! `linux-image-6.12.57+deb12-cloud-amd64`). Its *family* ([`Family`]) is every image package of the same
//! flavour whose ABI starts with the same `MAJOR.MINOR`: each ABI bump is a new package name, each with
//! its own versions. Apt's indexes give no dates, so a release has none.

use std::cmp::Ordering;

/// One point release of a kernel line: an image package at one version, and the suites serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The image package, e.g. `linux-image-5.10.0-30-cloud-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `5.10.218-1`.
    pub version: String,
    /// The suites serving it, as apt names them (`bullseye`, `bullseye-security`), in apt's order.
    pub suites: Vec<String>,
}

impl Release {
    /// The suites, comma-separated.
    pub fn suite_list(&self) -> String {
        self.suites.join(",")
    }
}

/// The image packages of one kernel line: `linux-image-MAJOR.MINOR…-FLAVOUR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// `MAJOR.MINOR`, e.g. `5.10`.
    pub line: String,
    /// What follows the ABI, e.g. `cloud-amd64`.
    pub flavour: String,
}

impl Family {
    /// The family of a real image package (`linux-image-5.10.0-30-cloud-amd64` → 5.10, `cloud-amd64`);
    /// `None` for a name that is no versioned image package (a metapackage such as
    /// `linux-image-cloud-amd64` or `linux-image-6.12-cloud-amd64`).
    pub fn of(image: &str) -> Option<Family> {
        let (abi, flavour) = split_image_name(image)?;
        let mut parts = abi.split(['.', '-', '+', '~']);
        let (major, minor) = (parts.next()?, parts.next()?);
        if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) || !minor.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        // A metapackage's "ABI" is just MAJOR.MINOR (linux-image-6.12-cloud-amd64).
        parts.next()?;
        Some(Family { line: format!("{major}.{minor}"), flavour: flavour.to_string() })
    }

    /// Whether `package` is an image package of this family.
    pub fn contains(&self, package: &str) -> bool {
        Family::of(package).as_ref() == Some(self)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "linux-image-{}*-{}", self.line, self.flavour)
    }
}

/// `linux-image-ABI-FLAVOUR` → (ABI, FLAVOUR): the flavour starts at the first `-` followed by a letter.
fn split_image_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("linux-image-")?;
    let bytes = rest.as_bytes();
    let at = (1..bytes.len()).find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_alphabetic())?;
    let (abi, flavour) = (&rest[..at - 1], &rest[at..]);
    (!abi.is_empty() && abi.as_bytes()[0].is_ascii_digit()).then_some((abi, flavour))
}

/// `apt-cache madison` output (`NAME | VERSION | URI SUITE/COMPONENT ARCH Packages`) as (name, version,
/// suite) rows; lines that are no binary package index's (`Sources`) are skipped.
pub fn parse_madison(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let columns: Vec<&str> = line.split('|').map(str::trim).collect();
            let [name, version, archive] = columns.as_slice() else { return None };
            if !archive.ends_with("Packages") {
                return None;
            }
            let suite = archive.split_whitespace().nth(1)?;
            Some((name.to_string(), version.to_string(), suite.split('/').next().unwrap_or(suite).to_string()))
        })
        .collect()
}

/// The releases of `family` among (name, version, suite) rows: one per (package, version) with every
/// suite serving it, sorted by [`compare_versions`] (then by package name).
pub fn from_rows(rows: &[(String, String, String)], family: &Family) -> Vec<Release> {
    let mut releases: Vec<Release> = Vec::new();
    for (name, version, suite) in rows.iter().filter(|(name, _, _)| family.contains(name)) {
        match releases.iter_mut().find(|r| r.package == *name && r.version == *version) {
            Some(release) if !release.suites.contains(suite) => release.suites.push(suite.clone()),
            Some(_) => {}
            None => {
                releases.push(Release { package: name.clone(), version: version.clone(), suites: vec![suite.clone()] })
            }
        }
    }
    releases.sort_by(|a, b| compare_versions(&a.version, &b.version).then_with(|| a.package.cmp(&b.package)));
    releases
}

/// The releases nearest to `version` (by Debian version order), at most `count`: for "not served, did you
/// mean".
pub fn nearest<'a>(releases: &'a [Release], version: &str, count: usize) -> Vec<&'a Release> {
    let at = releases.partition_point(|r| compare_versions(&r.version, version) == Ordering::Less);
    let start = at.saturating_sub(count / 2).min(releases.len().saturating_sub(count));
    releases[start..(start + count).min(releases.len())].iter().collect()
}

/// Compare two Debian versions as dpkg does (`[EPOCH:]UPSTREAM[-REVISION]`; `~` sorts before anything,
/// even the end; digits compare as numbers). `5.10.9-1 < 5.10.10-1`, `6.12.1~rc1 < 6.12.1`, `1:1.0 > 2.0`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb).then_with(|| compare_part(ua, ub)).then_with(|| compare_part(ra, rb))
}

/// (epoch, upstream, revision); a missing epoch is 0, a missing revision empty.
fn split_version(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.chars().all(|c| c.is_ascii_digit()) => (epoch.parse().unwrap_or(0), rest),
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's `verrevcmp`: alternately a non-digit run (by [`order`]) and a digit run (as a number).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        while a.first().is_some_and(|c| !c.is_ascii_digit()) || b.first().is_some_and(|c| !c.is_ascii_digit()) {
            let (ca, cb) = (order(a.first().copied()), order(b.first().copied()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            a = &a[1.min(a.len())..];
            b = &b[1.min(b.len())..];
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let number = |s: &[u8]| {
            let s = &s[s.iter().take_while(|c| **c == b'0').count()..];
            (s.len(), s.to_vec())
        };
        // Compare without leading zeros: longer is larger, then lexically (arbitrary length, no overflow).
        let ordering = number(&a[..na]).cmp(&number(&b[..nb]));
        if ordering != Ordering::Equal {
            return ordering;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

/// dpkg's character weight in a non-digit run: `~` below the end, the end below letters, letters below
/// everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_order_as_dpkg_does() {
        let less = [
            ("5.10.9-1", "5.10.10-1"),
            ("5.10.218-1", "5.10.223-1"),
            ("5.10.223-1", "5.10.251-5"),
            ("5.10.251-5", "5.10.262-1"),
            ("6.12.1~rc1-1", "6.12.1-1"),
            ("6.12.1~~-1", "6.12.1~-1"),
            ("6.12.118-1~deb12u1", "6.12.118-1"),
            ("6.1.0-47", "6.1.0-57"),
            ("2.0", "1:1.0"),
            ("1.0", "1.0-1"),
            ("1.0a", "1.0+"),
            ("1.0", "1.0a"),
            ("1.01", "1.2"),
            ("1.0-1", "1.0-1.1"),
            ("99999999999999999999999", "100000000000000000000000"),
        ];
        for (a, b) in less {
            assert_eq!(compare_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare_versions(b, a), Ordering::Greater, "{b} > {a}");
        }
        for (a, b) in [("1.0", "1.0"), ("0:1.0", "1.0"), ("1.00", "1.0"), ("1.0-01", "1.0-1")] {
            assert_eq!(compare_versions(a, b), Ordering::Equal, "{a} = {b}");
        }
    }

    #[test]
    fn image_packages_name_their_family() {
        let cloud = |line: &str| Some(Family { line: line.into(), flavour: "cloud-amd64".into() });
        assert_eq!(Family::of("linux-image-5.10.0-30-cloud-amd64"), cloud("5.10"));
        assert_eq!(Family::of("linux-image-6.1.0-47-cloud-amd64"), cloud("6.1"));
        assert_eq!(Family::of("linux-image-6.12.57+deb12-cloud-amd64"), cloud("6.12"));
        assert_eq!(Family::of("linux-image-6.12.48+deb13-cloud-amd64"), cloud("6.12"));
        assert_eq!(Family::of("linux-image-7.2.13+deb14-cloud-amd64"), cloud("7.2"));
        assert_eq!(Family::of("linux-image-5.10.0-30-cloud-amd64-dbg").unwrap().flavour, "cloud-amd64-dbg");
        for metapackage in ["linux-image-cloud-amd64", "linux-image-6.12-cloud-amd64", "linux-image-amd64", "bash"] {
            assert_eq!(Family::of(metapackage), None, "{metapackage}");
        }
        let family = Family::of("linux-image-6.1.0-47-cloud-amd64").unwrap();
        assert!(family.contains("linux-image-6.1.0-57-cloud-amd64"));
        assert!(!family.contains("linux-image-6.12.57+deb12-cloud-amd64"));
        assert!(!family.contains("linux-image-6.1.0-57-amd64"));
        assert!(!family.contains("linux-image-6.1.0-57-cloud-amd64-unsigned"));
        assert_eq!(family.to_string(), "linux-image-6.1*-cloud-amd64");
    }

    #[test]
    fn madison_output_becomes_sorted_releases() {
        let text = "\
linux-image-5.10.0-32-cloud-amd64 | 5.10.223-1 | http://m.example/debian bullseye/main amd64 Packages
linux-image-5.10.0-35-cloud-amd64 | 5.10.237-1 | http://s.example/debian-security bullseye-security/main amd64 Packages
linux-image-5.10.0-9-cloud-amd64 | 5.10.70-1 | http://m.example/debian bullseye/main amd64 Packages
linux-image-5.10.0-32-cloud-amd64 | 5.10.223-1 | http://s.example/debian-security bullseye-security/main amd64 Packages
linux-image-5.10.0-32-cloud-amd64-dbg | 5.10.223-1 | http://m.example/debian bullseye/main amd64 Packages
linux-image-cloud-amd64 | 5.10.223-1 | http://m.example/debian bullseye/main amd64 Packages
linux-image-5.10.0-32-cloud-amd64 | 5.10.223-1 | http://m.example/debian bullseye/main Sources
";
        let family = Family::of("linux-image-5.10.0-30-cloud-amd64").unwrap();
        let releases = from_rows(&parse_madison(text), &family);
        let rows: Vec<(String, String, String)> =
            releases.iter().map(|r| (r.package.clone(), r.version.clone(), r.suite_list())).collect();
        assert_eq!(
            rows,
            [
                ("linux-image-5.10.0-9-cloud-amd64".into(), "5.10.70-1".into(), "bullseye".into()),
                ("linux-image-5.10.0-32-cloud-amd64".into(), "5.10.223-1".into(), "bullseye,bullseye-security".into()),
                ("linux-image-5.10.0-35-cloud-amd64".into(), "5.10.237-1".into(), "bullseye-security".into()),
            ]
        );
        let near: Vec<&str> = nearest(&releases, "5.10.230-1", 2).iter().map(|r| r.version.as_str()).collect();
        assert_eq!(near, ["5.10.223-1", "5.10.237-1"]);
        let near: Vec<&str> = nearest(&releases, "9.9", 2).iter().map(|r| r.version.as_str()).collect();
        assert_eq!(near, ["5.10.223-1", "5.10.237-1"]);
        assert!(nearest(&[], "1", 3).is_empty());
    }
}
