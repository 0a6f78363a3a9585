//! Kconfig fragments: reading them, merging them into a `.config`, and checking that what they ask for
//! survived `make olddefconfig`.
//!
//! A fragment is a `.config` excerpt: `CONFIG_X=y`, `CONFIG_X="text"`, `CONFIG_X=0x10`, or
//! `# CONFIG_X is not set`; other `#` lines are comments. Merging replaces an option's line or appends
//! it, as the kernel's `scripts/kconfig/merge_config.sh -m` does. Kconfig then silently drops any option
//! whose dependencies are not met, which is why [`verify`] exists: a kernel that quietly lacks an option
//! the fragment asked for would produce snapshots of the wrong thing.

use std::collections::BTreeMap;

/// An option's value in a fragment or a `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `=y`, `=m`, `="text"`, `=123`: the text after `=`, verbatim.
    Set(String),
    /// `# CONFIG_X is not set` (or `=n`), or absent from a `.config`.
    Unset,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Set(value) => f.write_str(value),
            Value::Unset => f.write_str("unset"),
        }
    }
}

/// Options by name (`CONFIG_…`), as requested by one or more fragments; later fragments win.
pub type Options = BTreeMap<String, Value>;

/// An option the fragments asked for that `.config` does not have as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub option: String,
    pub requested: Value,
    pub actual: Value,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} requested {}, got {}", self.option, self.requested, self.actual)
    }
}

/// Parse one line: `Some((name, value))` for an assignment, `None` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<(String, Value)>, String> {
    let line = line.trim();
    if let Some(comment) = line.strip_prefix('#') {
        let unset = comment.trim().strip_suffix(" is not set").filter(|name| is_option_name(name));
        return Ok(unset.map(|name| (name.to_string(), Value::Unset)));
    }
    if line.is_empty() {
        return Ok(None);
    }
    let (name, value) = line.split_once('=').ok_or_else(|| format!("`{line}` is not a CONFIG_X=value line"))?;
    if !is_option_name(name) || value.is_empty() {
        return Err(format!("`{line}` is not a CONFIG_X=value line"));
    }
    let value = if value == "n" { Value::Unset } else { Value::Set(value.to_string()) };
    Ok(Some((name.to_string(), value)))
}

fn is_option_name(name: &str) -> bool {
    name.strip_prefix("CONFIG_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The options a fragment sets, added to `into` (so that a later fragment overrides an earlier one).
/// An error names the line that is neither an assignment nor a comment.
pub fn parse_fragment(text: &str, into: &mut Options) -> Result<(), String> {
    for (number, line) in text.lines().enumerate() {
        if let Some((name, value)) = parse_line(line).map_err(|e| format!("line {}: {e}", number + 1))? {
            into.insert(name, value);
        }
    }
    Ok(())
}

/// Every option of a `.config`; an option it does not mention is unset (not visible in that config).
pub fn parse_config(text: &str) -> Options {
    text.lines().filter_map(|line| parse_line(line).ok().flatten()).collect()
}

/// `config` with every option of `options` replaced or appended, in the form `.config` uses.
pub fn merge(config: &str, options: &Options) -> String {
    let mut merged: String = config
        .lines()
        .filter(|line| !matches!(parse_line(line), Ok(Some((name, _))) if options.contains_key(&name)))
        .flat_map(|line| [line, "\n"])
        .collect();
    for (name, value) in options {
        match value {
            Value::Set(value) => merged.push_str(&format!("{name}={value}\n")),
            Value::Unset => merged.push_str(&format!("# {name} is not set\n")),
        }
    }
    merged
}

/// The requested options that `config` (after `olddefconfig`) does not have as requested.
pub fn verify(config: &str, requested: &Options) -> Vec<Mismatch> {
    let actual = parse_config(config);
    requested
        .iter()
        .filter_map(|(name, wanted)| {
            let got = actual.get(name).cloned().unwrap_or(Value::Unset);
            (&got != wanted).then(|| Mismatch { option: name.clone(), requested: wanted.clone(), actual: got })
        })
        .collect()
}

/// The options in a canonical text form: what a build is keyed on, so that editing a fragment's comments
/// or order does not cause a rebuild.
pub fn canonical(options: &Options) -> String {
    merge("", options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(text: &str) -> Options {
        let mut options = Options::new();
        parse_fragment(text, &mut options).unwrap();
        options
    }

    #[test]
    fn fragments_parse_assignments_and_unset_lines() {
        let parsed = options("# a comment\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=n\n");
        assert_eq!(parsed["CONFIG_A"], Value::Set("y".into()));
        assert_eq!(parsed["CONFIG_B"], Value::Unset);
        assert_eq!(parsed["CONFIG_C"], Value::Set("\"x y\"".into()));
        assert_eq!(parsed["CONFIG_D"], Value::Unset);
        assert_eq!(parsed.len(), 4);
    }

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let mut merged = options("CONFIG_PROC_MEM_ALWAYS_FORCE=y\nCONFIG_A=y\n");
        parse_fragment("# CONFIG_PROC_MEM_ALWAYS_FORCE is not set\nCONFIG_PROC_MEM_NO_FORCE=y\n", &mut merged).unwrap();
        assert_eq!(merged["CONFIG_PROC_MEM_ALWAYS_FORCE"], Value::Unset);
        assert_eq!(merged["CONFIG_PROC_MEM_NO_FORCE"], Value::Set("y".into()));
        assert_eq!(merged["CONFIG_A"], Value::Set("y".into()));
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_fragment("CONFIG_A=y\nPROC_FS=y\n", &mut Options::new()).unwrap_err();
        assert!(err.starts_with("line 2: `PROC_FS=y`"), "{err}");
        assert!(parse_fragment("CONFIG_A=\n", &mut Options::new()).is_err());
    }

    #[test]
    fn merge_replaces_and_appends() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n";
        let merged = merge(config, &options("CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=1\n"));
        assert_eq!(merged, "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=1\n");
    }

    #[test]
    fn verify_lists_dropped_and_changed_options() {
        let requested = options("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\nCONFIG_E=4\n");
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_E=2\n";
        let problems: Vec<String> = verify(config, &requested).iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["CONFIG_B requested y, got unset", "CONFIG_C requested unset, got y", "CONFIG_E requested 4, got 2"]
        );
    }

    #[test]
    fn canonical_ignores_comments_and_order() {
        assert_eq!(
            canonical(&options("# x\nCONFIG_B=y\nCONFIG_A=y\n")),
            canonical(&options("CONFIG_A=y\nCONFIG_B=y\n"))
        );
    }
}
