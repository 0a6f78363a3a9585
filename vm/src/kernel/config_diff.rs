//! What changed between two kernel configs (`.config` files): options added, removed and changed.
//!
//! An option is *set* (`CONFIG_X=y`, `=m`, `="text"`, `=0x10`) or *not set* (`# CONFIG_X is not set`:
//! Kconfig knows it and it is off). An option a config does not mention at all is absent from it — a
//! new option of the newer kernel, or one whose dependencies are not met.

use std::collections::BTreeMap;

/// One option's difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only the new config mentions it: its setting there.
    Added(String),
    /// Only the old config mentions it: its setting there.
    Removed(String),
    /// Both mention it, differently: the old setting, then the new.
    Changed(String, String),
}

/// The setting of `# CONFIG_X is not set`.
pub const NOT_SET: &str = "is not set";

/// Every option a config mentions, with its setting (the value, or [`NOT_SET`]).
pub fn settings(text: &str) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(option) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
            if option.starts_with("CONFIG_") && !option.contains(char::is_whitespace) {
                options.insert(option.to_string(), NOT_SET.to_string());
            }
        } else if let Some((option, value)) = line.split_once('=') {
            if option.starts_with("CONFIG_") && !option.contains(char::is_whitespace) {
                options.insert(option.to_string(), value.to_string());
            }
        }
    }
    options
}

/// The options whose settings differ between the configs `old` and `new`, by option name.
pub fn diff(old: &str, new: &str) -> BTreeMap<String, Change> {
    let (old, mut new) = (settings(old), settings(new));
    let mut changes = BTreeMap::new();
    for (option, before) in old {
        match new.remove(&option) {
            None => {
                changes.insert(option, Change::Removed(before));
            }
            Some(after) if after != before => {
                changes.insert(option, Change::Changed(before, after));
            }
            Some(_) => {}
        }
    }
    changes.extend(new.into_iter().map(|(option, after)| (option, Change::Added(after))));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_values_and_not_set_lines() {
        let text = "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_A=y\nCONFIG_S=\"a=b\"\n\
                    # CONFIG_B is not set\n# General setup\nCONFIG_H=0x10\nnot a line\n";
        let settings = settings(text);
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("CONFIG_A", "y"), ("CONFIG_B", NOT_SET), ("CONFIG_H", "0x10"), ("CONFIG_S", "\"a=b\"")]);
    }

    #[test]
    fn diff_names_added_removed_and_changed_options() {
        let old = "CONFIG_SAME=y\nCONFIG_GONE=m\nCONFIG_MOD=m\n# CONFIG_OFF is not set\nCONFIG_NUM=1\n";
        let new = "CONFIG_SAME=y\nCONFIG_MOD=y\nCONFIG_OFF=y\nCONFIG_NEW=y\n# CONFIG_NEWOFF is not set\nCONFIG_NUM=1\n";
        let changes = diff(old, new);
        let expected = [
            ("CONFIG_GONE", Change::Removed("m".into())),
            ("CONFIG_MOD", Change::Changed("m".into(), "y".into())),
            ("CONFIG_NEW", Change::Added("y".into())),
            ("CONFIG_NEWOFF", Change::Added(NOT_SET.into())),
            ("CONFIG_OFF", Change::Changed(NOT_SET.into(), "y".into())),
        ];
        assert_eq!(changes, expected.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        assert!(diff(old, old).is_empty());
    }
}
