//! What `ksnap lock --update` prints under each kernel it moves, so that whoever reviews the snapshot
//! changes that follow knows where to look: the changes Debian's changelog lists between the locked and
//! the new version — first those in the areas the suites exercise (`areas` in ksnap.toml), with the suites
//! named, then how many others there are — and the kernel config's difference, the options the suites
//! state (`kernel_config`) first.
//!
//! A change is in area `AREA` when its title's prefix (before the first `:`, without Debian's `[arch]`
//! tags) is `AREA` or starts with `AREA/` (`mm/gup: …` is in `mm`), also behind one of the source
//! directories people sometimes write first: `fs/`, `arch/`, `kernel/`, `drivers/` (`fs/proc: …` is in
//! `proc`, `arch/x86: …` in `x86`). A prefix with several subsystems (`mm, slab: …`) is in each.

use std::collections::{BTreeMap, BTreeSet};

use ksnap_vm::kernel::changelog::{self, Entry};
use ksnap_vm::kernel::config_diff::{self, Change};
use ksnap_vm::kernel::Kernel;

use crate::project::config::Config;

/// Lines wider than this are avoided: titles are cut, suites go on a line of their own.
const WIDTH: usize = 100;
/// At most this many config options are listed; the rest are counted.
const MAX_CONFIG_LINES: usize = 40;

/// A suite, as far as the explanation cares: its name, its areas and the options it states.
#[derive(Debug, Clone)]
pub struct SuiteInterest {
    pub name: String,
    pub areas: Vec<String>,
    pub kernel_config: Vec<String>,
}

/// The subsystems a change's title names: its prefix before the first `:`, split at `,`, with Debian's
/// `[amd64]`-style tags dropped. Empty for a title without a prefix (`Revert "…"`, `Update config`).
pub fn title_subsystems(title: &str) -> Vec<&str> {
    let mut title = title.trim_start();
    while let Some(rest) = title.strip_prefix('[').and_then(|t| t.split_once(']')).map(|(_, rest)| rest.trim_start()) {
        title = rest;
    }
    let Some((prefix, _)) = title.split_once(':') else { return Vec::new() };
    prefix
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace) && !p.contains(['"', '(']))
        .collect()
}

/// Whether a change titled `title` is in `area` (see the module's documentation).
pub fn in_area(title: &str, area: &str) -> bool {
    title_subsystems(title).into_iter().any(|subsystem| {
        let matches = |s: &str| s == area || s.strip_prefix(area).is_some_and(|rest| rest.starts_with('/'));
        matches(subsystem)
            || ["fs/", "arch/", "kernel/", "drivers/"]
                .iter()
                .any(|dir| subsystem.strip_prefix(dir).is_some_and(matches))
    })
}

/// The suites' areas that take in a change titled `title`, sorted.
fn areas_of<'a>(title: &str, areas: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<&'a str> {
    areas.keys().copied().filter(|area| in_area(title, area)).collect()
}

/// Words of fact keys that say nothing about a change (`proc_mem.setup.result`: `setup`, `result`).
const PLAIN_WORDS: &[&str] = &["setup", "result", "after", "before", "value", "write", "read", "with", "from"];

/// The words a change's title is matched with: the parts of `keys` (split at `.`, `_`, `-`, `(`, `)`),
/// four letters or more, lower-case, without the plainest ones.
pub fn hint_words<'k>(keys: impl IntoIterator<Item = &'k str>) -> BTreeSet<String> {
    keys.into_iter()
        .flat_map(|key| key.split(|c: char| !c.is_ascii_alphanumeric()))
        .map(str::to_ascii_lowercase)
        .filter(|word| word.len() >= 4 && !PLAIN_WORDS.contains(&word.as_str()))
        .collect()
}

/// The `count` changes of `entries` (newest first) whose titles share the most words with `hints` — a
/// word counts when one starts with the other's first four letters (`forcing` and `force`) — best first,
/// ties newest first, each as `VERSION: TITLE`; changes sharing no word are left out. A ranking for a
/// person to start from: a change's title may name nothing a probe measures.
pub fn likeliest(entries: &[&Entry], hints: &BTreeSet<String>, count: usize) -> Vec<String> {
    let stem = |word: &str| word.chars().take(4).collect::<String>();
    let stems: BTreeSet<String> = hints.iter().map(|h| stem(h)).collect();
    let mut scored: Vec<(usize, usize, String)> = Vec::new();
    for entry in entries {
        for change in &entry.changes {
            let words: BTreeSet<String> = change
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.len() >= 4)
                .map(|w| stem(&w.to_ascii_lowercase()))
                .collect();
            let shared = words.intersection(&stems).count();
            if shared > 0 {
                scored.push((shared, scored.len(), format!("{}: {change}", entry.kernel_version())));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(count).map(|(_, _, line)| line).collect()
}

/// The changelog part: `entries` (newest first) between `old` and `new`; the suites of each area that
/// has changes; those changes grouped by Debian version, each tagged with its areas; then the number of
/// the others.
pub fn changelog_lines(entries: &[&Entry], old: &str, new: &str, suites: &[SuiteInterest]) -> Vec<String> {
    let mut areas: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for suite in suites {
        for area in &suite.areas {
            areas.entry(area.as_str()).or_default().push(suite.name.as_str());
        }
    }
    let total: usize = entries.iter().map(|e| e.changes.len()).sum();
    let releases = match entries.len() {
        1 => "1 Debian release".to_string(),
        n => format!("{n} Debian releases"),
    };
    let mut body = Vec::new();
    let mut touched = BTreeSet::new();
    let mut matching = 0;
    for entry in entries {
        let matched: Vec<(&String, Vec<&str>)> = entry
            .changes
            .iter()
            .map(|change| (change, areas_of(change, &areas)))
            .filter(|(_, areas)| !areas.is_empty())
            .collect();
        if matched.is_empty() {
            continue;
        }
        body.push(format!("    {}:", entry.kernel_version()));
        for (change, names) in matched {
            matching += 1;
            touched.extend(names.iter().copied());
            let tag = format!("  [{}]", names.join(", "));
            let room = WIDTH - tag.chars().count();
            body.push(format!("{}{tag}", cut(&format!("      {change}"), room)));
        }
    }
    let others = total - matching;
    let mut lines =
        vec![format!("  changelog {old} → {new}: {releases}, {total} changes, {matching} in the suites' areas")];
    for area in &touched {
        lines.extend(wrap(&format!("    [{area}] exercised by"), &areas[area], "      "));
    }
    lines.extend(body);
    if areas.is_empty() {
        lines.push("    (no suite declares `areas` in ksnap.toml: none of the changes is singled out)".to_string());
    } else if others > 0 {
        let all: BTreeSet<&str> = areas.keys().copied().collect();
        lines.push(format!("    {} not in any suite's areas ({})", plural(others, "other change"), join(&all)));
    }
    lines
}

/// The config part: the options that differ, those a suite states first (with the suite), at most
/// 40 of them.
pub fn config_lines(changes: &BTreeMap<String, Change>, suites: &[SuiteInterest]) -> Vec<String> {
    let count = |f: fn(&Change) -> bool| changes.values().filter(|c| f(c)).count();
    let (added, removed, changed) = (
        count(|c| matches!(c, Change::Added(_))),
        count(|c| matches!(c, Change::Removed(_))),
        count(|c| matches!(c, Change::Changed(..))),
    );
    if changes.is_empty() {
        return vec!["  config: no option differs".to_string()];
    }
    let mut lines = vec![format!("  config: {} added, {removed} removed, {changed} changed", plural(added, "option"))];
    let stated_by = |option: &str| -> Vec<&str> {
        suites.iter().filter(|s| s.kernel_config.iter().any(|o| o == option)).map(|s| s.name.as_str()).collect()
    };
    let mut ordered: Vec<(&String, &Change, Vec<&str>)> =
        changes.iter().map(|(option, change)| (option, change, stated_by(option))).collect();
    ordered.sort_by_key(|(_, _, suites)| suites.is_empty());
    for (option, change, names) in ordered.iter().take(MAX_CONFIG_LINES) {
        let text = match change {
            Change::Added(value) => format!("    + {}", setting(option, value)),
            Change::Removed(value) => format!("    - {}", setting(option, value)),
            Change::Changed(before, after) => format!("    ~ {option}: {} → {}", short(before), short(after)),
        };
        if names.is_empty() {
            lines.push(cut(&text, WIDTH));
        } else {
            lines.push(cut(&format!("{text}  [stated by {}]", names.join(", ")), WIDTH));
        }
    }
    if ordered.len() > MAX_CONFIG_LINES {
        lines.push(format!("    … and {} more", ordered.len() - MAX_CONFIG_LINES));
    }
    lines
}

fn setting(option: &str, value: &str) -> String {
    if value == ksnap_vm::kernel::config_diff::NOT_SET {
        format!("# {option} is not set")
    } else {
        format!("{option}={value}")
    }
}

fn short(value: &str) -> &str {
    if value == ksnap_vm::kernel::config_diff::NOT_SET {
        "not set"
    } else {
        value
    }
}

/// `1 change`, `2 changes`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn join(items: &BTreeSet<&str>) -> String {
    items.iter().copied().collect::<Vec<_>>().join(", ")
}

/// `head` and then `items`, comma-separated, on lines of at most [`WIDTH`] characters, the next ones
/// starting with `indent`.
fn wrap(head: &str, items: &[&str], indent: &str) -> Vec<String> {
    let mut lines = vec![head.to_string()];
    for (i, item) in items.iter().enumerate() {
        let word = if i + 1 < items.len() { format!("{item},") } else { item.to_string() };
        let last = lines.last_mut().expect("lines start with the head");
        if last.chars().count() + 1 + word.chars().count() <= WIDTH || last.trim().is_empty() {
            last.push(' ');
            last.push_str(&word);
        } else {
            lines.push(format!("{indent}{word}"));
        }
    }
    lines
}

/// `line` cut to `width` characters, ending with `…` when cut.
fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// The suites' areas and stated options.
pub fn interests(config: &Config) -> Vec<SuiteInterest> {
    config
        .suites
        .values()
        .map(|suite| SuiteInterest {
            name: suite.name.clone(),
            areas: suite.areas.clone(),
            kernel_config: suite.kernel_config.clone(),
        })
        .collect()
}

/// The lines explaining a move from `old_kernel` (Debian version `from`) to `new_kernel` (`to`), given the
/// new kernel's changelog (which holds every older entry too).
pub fn explanation(
    old_kernel: &Kernel,
    from: &str,
    new_kernel: &Kernel,
    to: &str,
    changelog: Option<&str>,
    suites: &[SuiteInterest],
) -> Vec<String> {
    let mut lines = match changelog {
        Some(text) => {
            let entries = changelog::parse(text);
            let selected = changelog::since(&entries, from);
            if selected.is_empty() {
                vec![format!("  changelog: no entry after {from} up to {to}")]
            } else {
                changelog_lines(&selected, from, to, suites)
            }
        }
        None => vec![format!("  changelog: none in the packages of {to}")],
    };
    lines.extend(config_explanation(old_kernel, new_kernel, suites));
    lines
}

/// How two kernels' configs differ ([`config_lines`]), or that one of them has none.
pub fn config_explanation(old_kernel: &Kernel, new_kernel: &Kernel, suites: &[SuiteInterest]) -> Vec<String> {
    let read = |kernel: &Kernel| kernel.config.as_ref().and_then(|path| std::fs::read_to_string(path).ok());
    match (read(old_kernel), read(new_kernel)) {
        (Some(before), Some(after)) => config_lines(&config_diff::diff(&before, &after), suites),
        _ => vec!["  config: not known for both kernels".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_likeliest_changes_share_the_most_words_with_the_facts_that_changed() {
        let entry = |version: &str, changes: &[&str]| Entry {
            source: "linux".into(),
            version: version.into(),
            signs: None,
            changes: changes.iter().map(|c| c.to_string()).collect(),
        };
        let newer = entry("5.10.237-1", &["proc: fix UAF in proc_get_inode()", "net: fix a leak"]);
        let older = entry("5.10.234-1", &["proc: add config & param to block forcing mem writes"]);
        let hints = hint_words(["proc_mem.setup.force_override.parameter_in_kernel", "proc_mem.prot_none.write"]);
        assert!(hints.contains("force") && !hints.contains("setup") && !hints.contains("write"), "{hints:?}");
        assert_eq!(
            likeliest(&[&newer, &older], &hints, 5),
            [
                "5.10.234-1: proc: add config & param to block forcing mem writes",
                "5.10.237-1: proc: fix UAF in proc_get_inode()"
            ]
        );
    }

    /// Two kernels as their cache entries have them (a config each), the new one's changelog the real
    /// excerpt of vm/tests/data/changelog.
    #[test]
    fn a_move_is_explained_by_the_changelog_between_the_versions_and_the_config_difference() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = |release: &str, config: &str| {
            let path = dir.path().join(format!("config-{release}"));
            std::fs::write(&path, config).unwrap();
            Kernel {
                image: dir.path().join(format!("vmlinuz-{release}")),
                config: Some(path),
                release: release.into(),
                package: None,
                config_hash: None,
                changelog: None,
            }
        };
        let old = kernel("6.1.0-40-cloud-amd64", "CONFIG_SMB=m\n# CONFIG_PROC_MEM_NO_FORCE is not set\n");
        let new = kernel("6.1.0-57-cloud-amd64", "CONFIG_SMB=y\n# CONFIG_PROC_MEM_NO_FORCE is not set\n");
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm/tests/data/changelog/linux-6.1-excerpt"),
        )
        .unwrap();
        let suites = [SuiteInterest {
            name: "fs_suite".into(),
            areas: vec!["ext4".into(), "ptrace".into()],
            kernel_config: vec!["CONFIG_PROC_MEM_NO_FORCE".into()],
        }];
        let (from, to) = ("6.1.170-3", "6.1.192-3");
        let lines = explanation(&old, from, &new, to, Some(&text), &suites);
        assert_eq!(
            lines,
            [
                // 136: the items of the five entries above 6.1.170-3, less group headings (`New upstream
                // stable update:`, `Backport changes in … from 6.12.y:`) and the signing line.
                "  changelog 6.1.170-3 → 6.1.192-3: 5 Debian releases, 136 changes, 3 in the suites' areas",
                "    [ext4] exercised by fs_suite",
                "    [ptrace] exercised by fs_suite",
                "    6.1.192-2:",
                "      ext4: fix NULL folio dereference in mballoc (Closes: #1154101)  [ext4]",
                "    6.1.177-1:",
                "      ext4: add bounds check for inline data length in ext4_read_inline_page  [ext4]",
                "    6.1.172-1:",
                "      ptrace: slightly saner 'get_dumpable()' logic  [ptrace]",
                "    133 other changes not in any suite's areas (ext4, ptrace)",
                "  config: 0 options added, 0 removed, 1 changed",
                "    ~ CONFIG_SMB: m → y",
            ]
        );
        let lines = explanation(&old, to, &new, from, None, &suites);
        assert_eq!(lines[0], "  changelog: none in the packages of 6.1.170-3");
        let lines = explanation(&old, to, &new, from, Some(&text), &suites);
        assert_eq!(lines[0], "  changelog: no entry after 6.1.192-3 up to 6.1.170-3");
    }
    use ksnap_vm::kernel::changelog;

    fn suites() -> Vec<SuiteInterest> {
        let suite = |name: &str, areas: &[&str], config: &[&str]| SuiteInterest {
            name: name.into(),
            areas: areas.iter().map(|a| a.to_string()).collect(),
            kernel_config: config.iter().map(|a| a.to_string()).collect(),
        };
        vec![
            suite("proc_mem", &["proc", "mm"], &["CONFIG_PROC_MEM_NO_FORCE"]),
            suite("setjmp", &["x86"], &[]),
            suite("env", &[], &[]),
        ]
    }

    #[test]
    fn areas_match_title_prefixes() {
        assert!(in_area("mm/gup: fix", "mm"));
        assert!(in_area("mm: fix", "mm"));
        assert!(in_area("mm, slab: fix", "mm") && in_area("mm, slab: fix", "slab"));
        assert!(in_area("proc: add config & param to block forcing mem writes", "proc"));
        assert!(in_area("fs/proc: fix", "proc") && in_area("fs/proc/task_mmu: fix", "proc"));
        assert!(in_area("[amd64] x86/CPU/AMD: Add X86_FEATURE_ZEN1", "x86"));
        assert!(in_area("arch/x86: fix", "x86"));
        assert!(in_area("mm/gup: fix", "mm/gup") && !in_area("mm/gup: fix", "mm/hugetlb"));
        assert!(!in_area("mmc: core: fix", "mm"), "a longer word is another subsystem");
        assert!(!in_area("drm/mm: fix", "mm"), "drm's own mm is drm's");
        assert!(!in_area("net: skbuff: mm: x", "mm"), "only the first prefix counts");
        assert!(!in_area("Revert \"mm: fix\"", "mm"));
        assert!(!in_area("Update config for the proc change", "proc"));
        assert!(!in_area("fs: fix", "proc"));
        assert_eq!(title_subsystems("[arm*] [arm64] drm/v3d: x"), ["drm/v3d"]);
    }

    #[test]
    fn long_lists_wrap() {
        let names: Vec<String> = (0..12).map(|i| format!("suite_number_{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let lines = wrap("    [mm] exercised by", &names, "      ");
        assert!(lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= WIDTH), "{lines:?}");
        assert!(lines[1].starts_with("      suite_number_"), "{lines:?}");
        assert_eq!(lines.join(" ").split_whitespace().filter(|w| w.starts_with("suite")).count(), 12);
    }

    #[test]
    fn the_changelog_part_lists_the_suites_areas_first_and_counts_the_rest() {
        let text = "linux (6.1.200-1) bookworm-security; urgency=high\n\n  * New upstream stable update:\n\
                    \x20   https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.1.200\n\
                    \x20   - proc: add config & param to block forcing mem writes\n\
                    \x20   - mm/gup: a very long title that goes on and on and on so that the suites cannot be \
                    on its line\n\
                    \x20   - net: one\n    - [amd64] x86/bugs: two\n\n -- A <a@b>  Mon, 1 Jan 2024\n\n\
                    linux (6.1.199-1) bookworm-security; urgency=high\n\n  * ext4: three\n\n -- A <a@b>  Mon, 1 Jan 2024\n";
        let entries = changelog::parse(text);
        let selected = changelog::since(&entries, "6.1.198-1");
        let lines = changelog_lines(&selected, "6.1.198-1", "6.1.200-1", &suites());
        assert_eq!(
            lines,
            [
                "  changelog 6.1.198-1 → 6.1.200-1: 2 Debian releases, 5 changes, 3 in the suites' areas",
                "    [mm] exercised by proc_mem",
                "    [proc] exercised by proc_mem",
                "    [x86] exercised by setjmp",
                "    6.1.200-1:",
                "      proc: add config & param to block forcing mem writes  [proc]",
                "      mm/gup: a very long title that goes on and on and on so that the suites cannot be on it…  [mm]",
                "      [amd64] x86/bugs: two  [x86]",
                "    2 other changes not in any suite's areas (mm, proc, x86)",
            ]
        );
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
        let none = changelog_lines(&selected, "a", "b", &suites()[2..]);
        assert_eq!(none[1], "    (no suite declares `areas` in ksnap.toml: none of the changes is singled out)");
    }

    #[test]
    fn the_config_part_puts_stated_options_first() {
        let changes = ksnap_vm::kernel::config_diff::diff(
            "CONFIG_A=m\nCONFIG_GONE=y\n# CONFIG_PROC_MEM_NO_FORCE is not set\n",
            "CONFIG_A=y\nCONFIG_NEW=y\nCONFIG_PROC_MEM_NO_FORCE=y\n",
        );
        assert_eq!(
            config_lines(&changes, &suites()),
            [
                "  config: 1 option added, 1 removed, 2 changed",
                "    ~ CONFIG_PROC_MEM_NO_FORCE: not set → y  [stated by proc_mem]",
                "    ~ CONFIG_A: m → y",
                "    - CONFIG_GONE=y",
                "    + CONFIG_NEW=y",
            ]
        );
        assert_eq!(config_lines(&BTreeMap::new(), &suites()), ["  config: no option differs"]);
        let many: BTreeMap<String, Change> =
            (0..50).map(|i| (format!("CONFIG_{i:02}"), Change::Added("y".into()))).collect();
        let lines = config_lines(&many, &[]);
        assert_eq!(lines.len(), 1 + MAX_CONFIG_LINES + 1);
        assert_eq!(lines.last().unwrap(), "    … and 10 more");
    }
}
