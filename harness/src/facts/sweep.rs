//! A sweep: suites run on every release of a kernel line (`ksnap history --releases LINE`). Its results
//! file ([`SweepFile`], JSON) is the user's, kept outside snapshots/: per release and suite the facts, or
//! why the release could not say. A CI job may run one shard of the releases ([`Shard`]); the shards'
//! files merge ([`SweepFile::merge`]) into the whole sweep.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Facts;
use crate::facts::timeline::{along, FactHistory};

/// What one suite observed on one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    Facts(Facts),
    /// Why the release could not run the suite (not served any more, no boot, a panic).
    Skipped(String),
}

/// The results file of a sweep (or of one shard of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepFile {
    /// The kernel line of ksnap.toml (`5.10`).
    pub line: String,
    pub variant: String,
    /// Every release of the line apt served, in Debian version order: the sweep's axis, shards or not.
    pub releases: Vec<String>,
    /// The shard this file holds (`2/3`); `None` for the whole sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Per release that ran (or was tried), per suite, what it observed.
    pub results: BTreeMap<String, BTreeMap<String, Observed>>,
}

impl SweepFile {
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<SweepFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a ksnap sweep results file", path.display()))
    }

    /// The shards' files as one: they must be of the same line, variant and releases.
    pub fn merge(files: Vec<SweepFile>) -> Result<SweepFile> {
        let mut files = files.into_iter();
        let Some(mut merged) = files.next() else { bail!("no sweep file to merge") };
        for file in files {
            if (&file.line, &file.variant, &file.releases) != (&merged.line, &merged.variant, &merged.releases) {
                bail!(
                    "cannot merge a sweep of {} ({}) over {} releases with one of {} ({}) over {}: not the same sweep",
                    file.line,
                    file.variant,
                    file.releases.len(),
                    merged.line,
                    merged.variant,
                    merged.releases.len()
                );
            }
            merged.results.extend(file.results);
        }
        merged.shard = None;
        Ok(merged)
    }

    /// The suites observed on any release, in name order.
    pub fn suites(&self) -> Vec<&str> {
        let mut suites: Vec<&str> = self.results.values().flat_map(|r| r.keys().map(String::as_str)).collect();
        suites.sort();
        suites.dedup();
        suites
    }

    /// Every (release, suite, why) that could not run, in release order.
    pub fn skipped(&self) -> Vec<(&str, &str, &str)> {
        self.in_order()
            .flat_map(|(release, suites)| {
                suites.iter().filter_map(move |(suite, observed)| match observed {
                    Observed::Skipped(why) => Some((release, suite.as_str(), why.as_str())),
                    Observed::Facts(_) => None,
                })
            })
            .collect()
    }

    /// The releases not in the file (another shard's, or not run), in order.
    pub fn missing(&self) -> Vec<&str> {
        self.releases.iter().filter(|r| !self.results.contains_key(*r)).map(String::as_str).collect()
    }

    /// Each fact whose value changes along the releases that observed its suite (skipped releases are
    /// no points of the timeline).
    pub fn timeline(&self) -> Vec<FactHistory> {
        let mut histories = Vec::new();
        for suite in self.suites() {
            let columns: Vec<(&str, &Facts)> = self
                .in_order()
                .filter_map(|(release, suites)| match suites.get(suite) {
                    Some(Observed::Facts(facts)) => Some((release, facts)),
                    _ => None,
                })
                .collect();
            histories.extend(along(suite, &columns));
        }
        histories
    }

    /// The results in the releases' order (the map's keys are sorted as strings, not as versions).
    fn in_order(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, Observed>)> {
        self.releases.iter().filter_map(|r| self.results.get(r).map(|suites| (r.as_str(), suites)))
    }
}

/// One step of a timeline: from release `old` to `new` (adjacent among those that ran), the facts whose
/// value changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub old: String,
    pub new: String,
    pub facts: Vec<String>,
}

/// The timeline's changes gathered by step, in the releases' order.
pub fn steps(histories: &[FactHistory], releases: &[String]) -> Vec<Step> {
    let mut by_pair: BTreeMap<(usize, usize), Step> = BTreeMap::new();
    let position = |release: &str| releases.iter().position(|r| r == release).unwrap_or(usize::MAX);
    for history in histories {
        for pair in history.runs.windows(2) {
            let (old, new) = (&pair[0].last, &pair[1].first);
            by_pair
                .entry((position(old), position(new)))
                .or_insert_with(|| Step { old: old.clone(), new: new.clone(), facts: Vec::new() })
                .facts
                .push(history.fact.clone());
        }
    }
    by_pair.into_values().collect()
}

/// Shard K of N (`--shard K/N`, 1 ≤ K ≤ N): the releases whose index (from 0, oldest first) modulo N is
/// K-1, so that every shard gets old and new releases alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// K, from 1.
    pub number: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is no shard: K/N with 1 ≤ K ≤ N, e.g. 1/3");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (number, count): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if number == 0 || number > count {
            return Err(bad());
        }
        Ok(Shard { number, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.number, self.count)
    }
}

impl Shard {
    pub fn selects(&self, index: usize) -> bool {
        index % self.count == self.number - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Observed {
        Observed::Facts(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn sweep(results: Vec<(&str, Observed)>) -> SweepFile {
        // Releases whose string order is not their version order: 5.10.9-1 before 5.10.10-1.
        let releases = ["5.10.9-1", "5.10.10-1", "5.10.11-1", "5.10.12-1"].map(String::from).to_vec();
        SweepFile {
            line: "5.10".into(),
            variant: "default".into(),
            releases,
            shard: None,
            results: results
                .into_iter()
                .map(|(release, observed)| (release.to_string(), BTreeMap::from([("p".to_string(), observed)])))
                .collect(),
        }
    }

    #[test]
    fn the_timeline_follows_the_releases_order_and_skipped_releases_are_no_points_of_it() {
        let file = sweep(vec![
            ("5.10.9-1", facts(&[("p.a", "no"), ("p.b", "1")])),
            ("5.10.10-1", Observed::Skipped("no boot".into())),
            ("5.10.11-1", facts(&[("p.a", "yes"), ("p.b", "1")])),
            ("5.10.12-1", facts(&[("p.a", "yes"), ("p.b", "2")])),
        ]);
        let timeline = file.timeline();
        let sentences: Vec<String> = timeline.iter().map(|h| format!("{}: {}", h.fact, h.sentence())).collect();
        assert_eq!(
            sentences,
            ["p.a: no up to 5.10.9-1, yes from 5.10.11-1", "p.b: 1 up to 5.10.11-1, 2 from 5.10.12-1"]
        );
        let steps = steps(&timeline, &file.releases);
        assert_eq!(
            steps,
            [
                Step { old: "5.10.9-1".into(), new: "5.10.11-1".into(), facts: vec!["p.a".into()] },
                Step { old: "5.10.11-1".into(), new: "5.10.12-1".into(), facts: vec!["p.b".into()] },
            ]
        );
        assert_eq!(file.skipped(), [("5.10.10-1", "p", "no boot")]);
        assert!(file.missing().is_empty());
    }

    #[test]
    fn shards_split_the_releases_by_index_and_bad_ones_are_refused() {
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!((0..8).filter(|&i| shard.selects(i)).collect::<Vec<_>>(), [1, 4, 7]);
        assert_eq!(shard.to_string(), "2/3");
        // Every release in exactly one shard.
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        assert!((0..10).all(|i| shards.iter().filter(|s| s.selects(i)).count() == 1));
        for bad in ["0/3", "4/3", "1", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("K/N"), "{bad}");
        }
    }

    #[test]
    fn a_results_file_reads_back_as_written_and_shards_merge() {
        let dir = tempfile::tempdir().unwrap();
        let mut one = sweep(vec![("5.10.9-1", facts(&[("p.a", "no")])), ("5.10.11-1", facts(&[("p.a", "yes")]))]);
        one.shard = Some("1/2".into());
        let mut two =
            sweep(vec![("5.10.10-1", Observed::Skipped("404".into())), ("5.10.12-1", facts(&[("p.a", "no")]))]);
        two.shard = Some("2/2".into());
        let path = dir.path().join("sweeps/5.10-default.shard-1-of-2.json");
        one.write(&path).unwrap();
        assert_eq!(SweepFile::read(&path).unwrap(), one);
        assert_eq!(one.missing(), ["5.10.10-1", "5.10.12-1"]);
        let merged = SweepFile::merge(vec![one.clone(), two]).unwrap();
        assert!(merged.missing().is_empty() && merged.shard.is_none());
        assert_eq!(merged.timeline()[0].sentence(), "no up to 5.10.9-1, yes in 5.10.11-1, no from 5.10.12-1");
        let mut other = one.clone();
        other.variant = "force-never".into();
        assert!(SweepFile::merge(vec![one, other]).unwrap_err().to_string().contains("not the same sweep"));
        std::fs::write(dir.path().join("x.json"), "{}").unwrap();
        assert!(SweepFile::read(&dir.path().join("x.json")).is_err());
    }
}
