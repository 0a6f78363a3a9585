//! How the kernels of a matrix differ, fact by fact, told as history: along the kernel versions
//! (`5.10` → `6.1` → `6.12` → `7.2`) under the default variant, then what the other variants and the
//! kernels off that axis (`6.12-minimal`, a local build, a release `6.1@…`) do differently, and facts
//! with the same history folded into one group. `ksnap history` tells it from the committed snapshots,
//! `ksnap run` from what it just ran, `ksnap report` on its page.
//!
//! Invariant: every value of every column is in a fact's [`History`]: a column whose value is not told
//! explicitly has the value of the main track or of its base kernel, as the history's sentence says.

use std::collections::BTreeMap;

use crate::facts::timeline::{runs, sentence, ValueRun};
use crate::facts::Facts;

/// The variant a matrix always has, whose track is told first.
pub const DEFAULT_VARIANT: &str = "default";

/// One column of a suite's matrix: a kernel under a variant, and what it observed.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub kernel: &'a str,
    pub variant: &'a str,
    pub facts: &'a Facts,
}

impl Column<'_> {
    /// `6.12`, `6.12+thp-never`: the name snapshots and reports give a column.
    pub fn name(&self) -> String {
        if self.variant == DEFAULT_VARIANT {
            self.kernel.to_string()
        } else {
            format!("{}+{}", self.kernel, self.variant)
        }
    }
}

/// The kernels of a matrix: the axis, kernels named by a version in version order, and the others, each
/// told against the axis kernel it is built from (its base: `6.12` for `6.12-minimal` and `6.12@6.12.9-1`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Axis {
    pub versions: Vec<String>,
    pub others: Vec<String>,
}

/// `6.12` → `[6, 12]`; `None` for a name that is not a version.
fn version(kernel: &str) -> Option<Vec<u64>> {
    kernel.split('.').map(|part| part.parse().ok()).collect()
}

impl Axis {
    /// The axis of these kernels. With no kernel named by a version, every kernel is on the axis, in the
    /// order given.
    pub fn of<'a>(kernels: impl IntoIterator<Item = &'a str>) -> Axis {
        let mut versions: Vec<(Vec<u64>, String)> = Vec::new();
        let mut others: Vec<String> = Vec::new();
        for kernel in kernels {
            if versions.iter().any(|(_, k)| k == kernel) || others.iter().any(|k| k == kernel) {
                continue;
            }
            match version(kernel) {
                Some(v) => versions.push((v, kernel.to_string())),
                None => others.push(kernel.to_string()),
            }
        }
        versions.sort();
        if versions.is_empty() {
            return Axis { versions: others, others: Vec::new() };
        }
        others.sort();
        Axis { versions: versions.into_iter().map(|(_, k)| k).collect(), others }
    }

    /// The axis kernel `kernel` is built from: the longest axis version it starts with, followed by `-`,
    /// `@` or `+`.
    pub fn base(&self, kernel: &str) -> Option<&str> {
        self.versions
            .iter()
            .filter(|v| kernel.strip_prefix(v.as_str()).is_some_and(|rest| rest.starts_with(['-', '@', '+'])))
            .max_by_key(|v| v.len())
            .map(String::as_str)
    }
}

/// A fact's values across a suite's matrix, told along the axis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct History {
    /// The main track: the default variant's values along the axis (the first variant's when the
    /// default did not run).
    pub main: Track,
    /// The other variants whose values along the axis differ from the main track's, those with equal
    /// values together.
    pub variants: Vec<Track>,
    /// The columns of kernels off the axis whose value differs from their base kernel's under the same
    /// variant (from the main track's last value when there is no base), by value.
    pub others: Vec<Exception>,
}

/// Variants and their values along the axis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Track {
    pub variants: Vec<String>,
    pub runs: Vec<ValueRun>,
}

/// Columns off the axis and the value they share.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Exception {
    /// Column names; `K*` for every column of kernel `K` when it ran under more than one variant.
    pub columns: Vec<String>,
    pub value: String,
}

impl History {
    /// Whether the fact has more than one value in the matrix.
    pub fn changes(&self) -> bool {
        self.main.runs.len() > 1 || !self.variants.is_empty() || !self.others.is_empty()
    }

    /// `ENOSYS up to 6.1, ok from 6.12; force-never: EPERM; 6.12-no-force: EPERM` — the main track (named
    /// when it is not the default variant's and others follow), then each exception.
    pub fn sentence(&self) -> String {
        let mut parts = Vec::new();
        let named = self.main.variants.iter().all(|v| v != DEFAULT_VARIANT) && !self.variants.is_empty();
        parts.push(match named {
            true => format!("{}: {}", self.main.variants.join(", "), sentence(&self.main.runs)),
            false => sentence(&self.main.runs),
        });
        for track in &self.variants {
            parts.push(format!("{}: {}", track.variants.join(", "), sentence(&track.runs)));
        }
        for exception in &self.others {
            parts.push(format!("{}: {}", exception.columns.join(", "), exception.value));
        }
        parts.join("; ")
    }
}

/// Facts of one suite with the same history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub suite: String,
    /// The facts, in key order.
    pub facts: Vec<String>,
    pub history: History,
}

impl Group {
    /// The facts' names folded into one: `cow.…_thp_{16..1024}_kb`, `p.{a,b}.write`, or the one fact's
    /// name; names listed up to `max_listed` characters.
    pub fn name(&self, max_listed: usize) -> String {
        fold_names(&self.facts, max_listed)
    }
}

/// Every fact of a suite's matrix with its history: those whose value changes somewhere in the matrix, or
/// every fact with `all`. Facts of one probe (the first part of their key) with the same history are
/// one group; groups in the order of their first fact.
pub fn groups(suite: &str, columns: &[Column], all: bool) -> (Axis, Vec<Group>) {
    let axis = Axis::of(columns.iter().map(|c| c.kernel));
    let mut keys: Vec<&String> = columns.iter().flat_map(|c| c.facts.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut by_history: BTreeMap<(&str, History), usize> = BTreeMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for key in keys {
        let history = history_of(&axis, columns, key);
        if !all && !history.changes() {
            continue;
        }
        let probe = key.split('.').next().unwrap_or(key);
        match by_history.get(&(probe, history.clone())) {
            Some(&i) => groups[i].facts.push(key.clone()),
            None => {
                by_history.insert((probe, history.clone()), groups.len());
                groups.push(Group { suite: suite.to_string(), facts: vec![key.clone()], history });
            }
        }
    }
    (axis, groups)
}

/// One fact's [`History`] across `columns`.
fn history_of(axis: &Axis, columns: &[Column], key: &str) -> History {
    let value = |c: &Column| c.facts.get(key).map_or("-", String::as_str).to_string();
    let mut variants: Vec<&str> = columns.iter().map(|c| c.variant).collect();
    variants.sort_by_key(|v| (*v != DEFAULT_VARIANT, *v));
    variants.dedup();
    // `variant`'s values along the axis, on the kernels `on` ran on (`variant` itself, or the main track
    // compared with a variant that did not run everywhere).
    let along = |variant: &str, on: &str| -> Vec<ValueRun> {
        let column = |kernel: &str, variant: &str| columns.iter().find(|c| c.kernel == kernel && c.variant == variant);
        let values: Vec<(&str, String)> = axis
            .versions
            .iter()
            .filter(|k| column(k, on).is_some())
            .filter_map(|k| column(k, variant).map(|c| (k.as_str(), value(c))))
            .collect();
        runs(values.iter().map(|(k, v)| (*k, v.as_str())))
    };
    let main = Track { variants: vec![variants[0].to_string()], runs: along(variants[0], variants[0]) };
    let mut tracks: Vec<Track> = Vec::new();
    for variant in &variants[1..] {
        let runs = along(variant, variant);
        if runs == along(variants[0], variant) {
            continue;
        }
        match tracks.iter_mut().find(|t| t.runs == runs) {
            Some(t) => t.variants.push(variant.to_string()),
            None => tracks.push(Track { variants: vec![variant.to_string()], runs }),
        }
    }
    History { others: exceptions(axis, columns, key, &main), main, variants: tracks }
}

/// The columns off the axis whose value differs from their base kernel's under the same variant, by value.
fn exceptions(axis: &Axis, columns: &[Column], key: &str, main: &Track) -> Vec<Exception> {
    let value = |c: &Column| c.facts.get(key).map_or("-", String::as_str).to_string();
    let newest = main.runs.last().map(|r| r.value.clone());
    let mut by_value: BTreeMap<String, Vec<&Column>> = BTreeMap::new();
    for column in columns.iter().filter(|c| axis.others.iter().any(|k| k == c.kernel)) {
        let base = axis
            .base(column.kernel)
            .and_then(|base| columns.iter().find(|c| c.kernel == base && c.variant == column.variant).map(value));
        let v = value(column);
        if base.or_else(|| newest.clone()).as_ref() != Some(&v) {
            by_value.entry(v).or_default().push(column);
        }
    }
    by_value
        .into_iter()
        .map(|(value, listed)| {
            let mut names: Vec<String> = Vec::new();
            for column in &listed {
                let of_kernel = columns.iter().filter(|c| c.kernel == column.kernel).count();
                let listed_of_kernel = listed.iter().filter(|c| c.kernel == column.kernel).count();
                let name = match (of_kernel, listed_of_kernel == of_kernel) {
                    (2.., true) => format!("{}*", column.kernel),
                    _ => column.name(),
                };
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Exception { columns: names, value }
        })
        .collect()
}

/// Names folded into one: the one name; else their common start and end around `{16..1024}` when the
/// parts between are numbers (`…` before them when the text before the numbers differs); else the
/// `.`-separated parts they differ in listed, `pre.{a,b.c}.post`, when the list is at most `max_listed`
/// characters; else around `…`.
pub fn fold_names(names: &[String], max_listed: usize) -> String {
    let [first, rest @ ..] = names else { return String::new() };
    if rest.is_empty() {
        return first.clone();
    }
    let chars: Vec<Vec<char>> = names.iter().map(|n| n.chars().collect()).collect();
    let shortest = chars.iter().map(Vec::len).min().unwrap_or(0);
    let mut prefix = (0..shortest).take_while(|&i| chars.iter().all(|c| c[i] == chars[0][i])).count();
    let mut suffix = (0..shortest - prefix)
        .take_while(|&i| chars.iter().all(|c| c[c.len() - 1 - i] == chars[0][chars[0].len() - 1 - i]))
        .count();
    // A number is folded whole: `_{16..1024}_`, not `_1{6..024}_`.
    while prefix > 0 && chars[0][prefix - 1].is_ascii_digit() {
        prefix -= 1;
    }
    while suffix > 0 && chars[0][chars[0].len() - suffix].is_ascii_digit() {
        suffix -= 1;
    }
    let middles: Vec<String> = chars.iter().map(|c| c[prefix..c.len() - suffix].iter().collect()).collect();
    let numbered: Option<Vec<(&str, u64)>> = middles
        .iter()
        .map(|m| {
            let digits = m.len() - m.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let (text, number) = m.split_at(m.len() - digits);
            number.parse().ok().map(|n| (text, n))
        })
        .collect();
    if let Some(numbered) = numbered {
        let min = numbered.iter().map(|(_, n)| *n).min().unwrap_or(0);
        let max = numbered.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let texts: Vec<&str> = numbered.iter().map(|(t, _)| *t).collect();
        let common = common_end(&texts);
        let elided = if texts.iter().all(|t| t.len() == common.len()) { "" } else { "…" };
        let range = if min == max { min.to_string() } else { format!("{{{min}..{max}}}") };
        let start: String = chars[0][..prefix].iter().collect();
        let end: String = chars[0][chars[0].len() - suffix..].iter().collect();
        return format!("{start}{elided}{common}{range}{end}");
    }
    if let Some(listed) = parts_listed(names, max_listed) {
        return listed;
    }
    // Cut at a separator, so that the `…` stands for whole words.
    let is_separator = |c: Option<&char>| c.is_none_or(|c| matches!(c, '.' | '_' | '-'));
    while prefix > 0 && !is_separator(chars[0].get(prefix - 1)) && !chars.iter().all(|c| is_separator(c.get(prefix))) {
        prefix -= 1;
    }
    let before_end = |c: &Vec<char>, suffix: usize| c.len().checked_sub(suffix + 1).map(|i| c[i]);
    while suffix > 0
        && !is_separator(chars[0].get(chars[0].len() - suffix))
        && !chars.iter().all(|c| is_separator(before_end(c, suffix).as_ref()))
    {
        suffix -= 1;
    }
    let start: String = chars[0][..prefix].iter().collect();
    let end: String = chars[0][chars[0].len() - suffix..].iter().collect();
    format!("{start}…{end}")
}

/// `pre.{a,b.c}.post`: the `.`-separated parts all names start and end with around the rest of each,
/// listed, when the list is at most `max_listed` characters long.
fn parts_listed(names: &[String], max_listed: usize) -> Option<String> {
    let parts: Vec<Vec<&str>> = names.iter().map(|n| n.split('.').collect()).collect();
    let shortest = parts.iter().map(Vec::len).min().unwrap_or(0);
    let start = (0..shortest).take_while(|&i| parts.iter().all(|p| p[i] == parts[0][i])).count();
    let end = (0..shortest - start)
        .take_while(|&i| parts.iter().all(|p| p[p.len() - 1 - i] == parts[0][parts[0].len() - 1 - i]))
        .count();
    let listed: Vec<String> = parts.iter().map(|p| p[start..p.len() - end].join(".")).collect();
    if listed.iter().any(String::is_empty) {
        return None;
    }
    let list = format!("{{{}}}", listed.join(","));
    if list.chars().count() > max_listed {
        return None;
    }
    let mut folded: Vec<&str> = parts[0][..start].to_vec();
    folded.push(&list);
    folded.extend(&parts[0][parts[0].len() - end..]);
    Some(folded.join("."))
}

/// The longest end all `texts` share.
fn common_end<'a>(texts: &[&'a str]) -> &'a str {
    let Some(first) = texts.first() else { return "" };
    let start = first
        .char_indices()
        .rev()
        .take_while(|(i, _)| texts.iter().all(|t| t.ends_with(&first[*i..])))
        .last()
        .map_or(first.len(), |(i, _)| i);
    &first[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn names_fold_around_numbers_or_an_ellipsis() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(fold_names(&names(&["a.b"]), 48), "a.b");
        assert_eq!(
            fold_names(&names(&["cow.x_thp_16_kb", "cow.x_thp_1024_kb", "cow.x_thp_128_kb"]), 48),
            "cow.x_thp_{16..1024}_kb"
        );
        assert_eq!(fold_names(&names(&["cow.a_thp_16_kb", "cow.bb_thp_1024_kb"]), 48), "cow.…_thp_{16..1024}_kb");
        assert_eq!(fold_names(&names(&["cow.one", "cow.two"]), 48), "cow.{one,two}");
        assert_eq!(fold_names(&names(&["p.anon.write", "p.file_private.write"]), 48), "p.{anon,file_private}.write");
        let long = names(&["p.a_long_name_of_a_case.x", "p.another_long_name.x", "p.a_third_one_too_long.x"]);
        assert_eq!(fold_names(&long, 48), "p.….x");
        assert_eq!(fold_names(&long, 100), "p.{a_long_name_of_a_case,another_long_name,a_third_one_too_long}.x");
        assert_eq!(fold_names(&names(&["p.a.x.w", "p.b.w"]), 48), "p.{a.x,b}.w");
        assert_eq!(fold_names(&names(&["p.populate_rw.a", "p.populate_ro.b"]), 48), "p.{populate_rw.a,populate_ro.b}");
        assert_eq!(fold_names(&names(&["guard", "guard.x", "guard.y"]), 48), "guard…");
        assert_eq!(fold_names(&names(&["p.a1", "p.b1"]), 48), "p.…1");
    }

    #[test]
    fn the_axis_orders_versions_and_finds_each_other_kernels_base() {
        let axis = Axis::of(["6.12", "5.10", "6.12-minimal", "7.2", "6.12", "6.1@6.1.9-1", "local"]);
        assert_eq!(axis.versions, ["5.10", "6.12", "7.2"]);
        assert_eq!(axis.others, ["6.12-minimal", "6.1@6.1.9-1", "local"]);
        assert_eq!(axis.base("6.12-minimal"), Some("6.12"));
        assert_eq!(axis.base("6.1@6.1.9-1"), None);
        assert_eq!(axis.base("local"), None);
        assert_eq!(Axis::of(["b", "a"]).versions, ["b", "a"]);
    }

    #[test]
    fn a_history_tells_the_main_track_then_variants_and_other_kernels_that_differ() {
        let old = facts(&[("p.w", "ok"), ("p.same", "1"), ("p.x", "a")]);
        let new = facts(&[("p.w", "EPERM"), ("p.same", "1"), ("p.x", "a")]);
        let never = facts(&[("p.w", "EPERM"), ("p.same", "1"), ("p.x", "a")]);
        let minimal = facts(&[("p.w", "EIO"), ("p.same", "1"), ("p.x", "a")]);
        let columns = [
            Column { kernel: "6.1", variant: "default", facts: &old },
            Column { kernel: "7.2", variant: "default", facts: &new },
            Column { kernel: "6.1", variant: "force-never", facts: &never },
            Column { kernel: "7.2", variant: "force-never", facts: &never },
            Column { kernel: "7.2-minimal", variant: "default", facts: &minimal },
            Column { kernel: "7.2-minimal", variant: "force-never", facts: &minimal },
        ];
        let (axis, groups) = groups("p", &columns, false);
        assert_eq!(axis.versions, ["6.1", "7.2"]);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].facts, ["p.w"]);
        assert_eq!(groups[0].history.sentence(), "ok up to 6.1, EPERM from 7.2; force-never: EPERM; 7.2-minimal*: EIO");
        // Every fact, the constant ones folded by probe.
        let (_, all) = super::groups("p", &columns, true);
        let told: Vec<(String, String)> = all.iter().map(|g| (g.name(48), g.history.sentence())).collect();
        assert_eq!(told[0], ("p.same".to_string(), "1".to_string()));
        assert_eq!(told[2], ("p.x".to_string(), "a".to_string()));
    }
}
