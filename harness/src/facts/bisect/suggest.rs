//! The nearest known fact keys for one no snapshot has: `did you mean proc_mem.mseal.mseal?`.
//!
//! A key is near when it starts with what was typed, contains it, or is a few edits from it. Keys are
//! long and dotted (`PROBE.TEST.KEY`) while what people type is often a part of one (`mseal`) or a key
//! with a typo in one part, so the edit distance is also taken against the known key's leading and
//! trailing parts with as many dots as the typed one.

/// How many suggestions at most.
pub const MAX_SUGGESTIONS: usize = 5;

/// The best keys of `known` for the unknown `typed`, best first, at most [`MAX_SUGGESTIONS`]: those
/// starting with it, then those containing it, then those within a few edits (a quarter of its length,
/// at least two: a swap of two letters is two), nearest first; ties in key order.
pub fn suggest<'k>(typed: &str, known: impl IntoIterator<Item = &'k str>) -> Vec<String> {
    let typed_lower = typed.to_lowercase();
    let allowed = (typed.chars().count() / 4).max(2);
    let mut ranked: Vec<(u8, usize, &str)> = known
        .into_iter()
        .filter(|key| *key != typed)
        .filter_map(|key| {
            let key_lower = key.to_lowercase();
            if key_lower.starts_with(&typed_lower) {
                return Some((0, key.len() - typed.len(), key));
            }
            if key_lower.contains(&typed_lower) {
                return Some((1, key.len() - typed.len(), key));
            }
            let distance = distance_to_parts(&typed_lower, &key_lower);
            (distance <= allowed).then_some((2, distance, key))
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.2 == b.2);
    ranked.into_iter().take(MAX_SUGGESTIONS).map(|(_, _, key)| key.to_string()).collect()
}

/// The least edit distance between `typed` and `key`, or `key`'s first or last parts with as many dots
/// as `typed`.
fn distance_to_parts(typed: &str, key: &str) -> usize {
    let dots = typed.matches('.').count();
    let parts: Vec<&str> = key.split('.').collect();
    let mut candidates = vec![key.to_string()];
    if dots + 1 < parts.len() {
        candidates.push(parts[..=dots].join("."));
        candidates.push(parts[parts.len() - dots - 1..].join("."));
    }
    candidates.iter().map(|c| edit_distance(typed, c)).min().unwrap_or(usize::MAX)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &[
        "proc_mem.mseal",
        "proc_mem.mseal.mseal",
        "proc_mem.mseal.errno",
        "proc_mem.thp.enabled",
        "env.page_size",
        "env.page_size.bytes",
        "demand_paging.fault.minor",
    ];

    fn known() -> impl Iterator<Item = &'static str> {
        KNOWN.iter().copied()
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("mseal", "msael"), 2);
        assert_eq!(edit_distance("été", "ete"), 2, "by characters, not bytes");
    }

    #[test]
    fn prefixes_come_first_then_substrings() {
        assert_eq!(
            suggest("proc_mem.mseal.m", known()),
            ["proc_mem.mseal.mseal", "proc_mem.mseal"],
            "the one key it starts, then one two edits away"
        );
        assert_eq!(suggest("mseal", known()), ["proc_mem.mseal", "proc_mem.mseal.errno", "proc_mem.mseal.mseal"]);
        assert_eq!(suggest("env.page", known()), ["env.page_size", "env.page_size.bytes"]);
    }

    #[test]
    fn a_typo_in_one_part_finds_the_key_by_its_leading_parts() {
        assert_eq!(
            suggest("proc_mem.msael", known()),
            ["proc_mem.mseal", "proc_mem.mseal.errno", "proc_mem.mseal.mseal"]
        );
        assert_eq!(suggest("env.pagesize.bytes", known()), ["env.page_size.bytes"]);
        assert_eq!(suggest("fault.minr", known()), ["demand_paging.fault.minor"], "trailing parts too");
    }

    #[test]
    fn case_is_ignored_and_nothing_near_gives_nothing() {
        assert_eq!(suggest("ENV.PAGE_SIZE.BYTES", known()), ["env.page_size.bytes"]);
        assert!(suggest("completely.unrelated", known()).is_empty());
        assert!(suggest("x", std::iter::empty()).is_empty());
    }

    #[test]
    fn at_most_five_and_duplicates_once() {
        let many: Vec<String> = (0..9).map(|i| format!("p.case{i}")).collect();
        let keys = many.iter().map(String::as_str).chain(many.iter().map(String::as_str));
        let suggestions = suggest("p.case", keys);
        assert_eq!(suggestions, ["p.case0", "p.case1", "p.case2", "p.case3", "p.case4"]);
    }
}
