//! The plan init runs: [`crate::paths::PLAN`] in the initramfs, written by the host. One probe per line,
//! `NAME TIMEOUT_MS PATH [ARG...]`, separated by single spaces; `#` starts a comment line. Words are
//! non-empty and hold no whitespace (and so no newline), so no quoting is needed.

use std::fmt::Write;

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// init kills the probe (its whole process group) after this long.
    pub timeout_ms: u64,
    /// PATH followed by the arguments; PATH is also the program's `argv[0]`.
    pub argv: Vec<String>,
}

/// A word the plan can carry: non-empty, no whitespace, no NUL (an `execve` argument is a C string).
pub fn is_word(word: &str) -> bool {
    !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || c == '\0')
}

/// The plan's text; an error names the probe whose name or argument is not a [word](is_word).
pub fn render(entries: &[Entry]) -> Result<String, String> {
    let mut text = String::from("# NAME TIMEOUT_MS PATH [ARG...]\n");
    for entry in entries {
        if !is_word(&entry.name) {
            return Err(format!("probe name {:?}: empty, or holds whitespace or NUL", entry.name));
        }
        match entry.argv.iter().find(|word| !is_word(word)) {
            Some(word) => {
                return Err(format!("probe {}: argument {word:?}: empty, or holds whitespace or NUL", entry.name))
            }
            None if entry.argv.is_empty() => return Err(format!("probe {}: no program", entry.name)),
            None => {}
        }
        let _ = writeln!(text, "{} {} {}", entry.name, entry.timeout_ms, entry.argv.join(" "));
    }
    Ok(text)
}

/// The entries of a plan, in order; an error names the line (`line N: …`).
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut plan = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("line {}: {what}", index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let (Some(name), Some(timeout)) = (words.next(), words.next()) else {
            return Err(bad("expected NAME TIMEOUT_MS PATH [ARG...]"));
        };
        let timeout_ms = timeout.parse().map_err(|_| bad(&format!("bad timeout {timeout:?}")))?;
        let argv: Vec<String> = words.map(str::to_string).collect();
        if argv.is_empty() {
            return Err(bad("expected NAME TIMEOUT_MS PATH [ARG...]"));
        }
        if argv.iter().any(|word| word.contains('\0')) {
            return Err(bad("NUL byte"));
        }
        plan.push(Entry { name: name.to_owned(), timeout_ms, argv });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, timeout_ms: u64, argv: &[&str]) -> Entry {
        Entry { name: name.into(), timeout_ms, argv: argv.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn a_plan_round_trips() {
        let entries = vec![
            entry("env", 30_000, &["/ksnap/probes/env"]),
            entry("mm.cow", 60_000, &["/ksnap/probes/mm.cow", "-p", "42", "--x=y"]),
        ];
        let text = render(&entries).unwrap();
        assert_eq!(
            text,
            "# NAME TIMEOUT_MS PATH [ARG...]\nenv 30000 /ksnap/probes/env\nmm.cow 60000 /ksnap/probes/mm.cow -p 42 --x=y\n"
        );
        assert_eq!(parse(&text).unwrap(), entries);
        assert_eq!(parse(&render(&[]).unwrap()).unwrap(), []);
    }

    #[test]
    fn what_a_plan_cannot_carry_is_refused_when_written() {
        assert!(render(&[entry("a b", 1, &["/p"])]).unwrap_err().contains("probe name \"a b\""));
        assert!(render(&[entry("a", 1, &["/p", "two words"])]).unwrap_err().contains("argument \"two words\""));
        assert!(render(&[entry("a", 1, &["/p", ""])]).is_err());
        assert!(render(&[entry("a", 1, &["/p", "nul\0"])]).is_err());
        assert!(render(&[entry("a", 1, &[])]).unwrap_err().contains("no program"));
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(parse("a 1 /p\nb\n").unwrap_err(), "line 2: expected NAME TIMEOUT_MS PATH [ARG...]");
        assert_eq!(parse("a x /p\n").unwrap_err(), "line 1: bad timeout \"x\"");
        assert_eq!(parse("a 1\n").unwrap_err(), "line 1: expected NAME TIMEOUT_MS PATH [ARG...]");
        assert_eq!(parse("a 1 /p\0\n").unwrap_err(), "line 1: NUL byte");
        let plan = parse("# c\n\n  oom 300000 /ksnap/probes/dp oom  fast\n").unwrap();
        assert_eq!(plan, [entry("oom", 300_000, &["/ksnap/probes/dp", "oom", "fast"])]);
    }
}
