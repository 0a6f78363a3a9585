//! The plan init runs, written by the host. One probe per line, `NAME TIMEOUT_MS PATH [ARG...]`, separated
//! by single spaces; `#` starts a comment line. Words are non-empty and hold no whitespace (and so no
//! newline), so no quoting is needed.
//!
//! The host sends it on the result channel, the one way anything goes from host to guest, once init has
//! said hello: a header line `plan BYTES` ([`header`]), then exactly BYTES bytes of plan text. The plan is
//! not in the initramfs, so one booted machine, saved while init waits for its plan, can run any plan
//! whose probes its initramfs holds.

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

/// The header line before a plan of `len` bytes, without its newline: `plan LEN`.
pub fn header(len: usize) -> String {
    format!("plan {len}")
}

/// The plan's length from its header line (without the newline); a plan over [`crate::limits::PLAN_BYTES`]
/// is refused.
pub fn parse_header(line: &str) -> Result<usize, String> {
    let len = line
        .strip_prefix("plan ")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("expected `plan BYTES`, got {line:?}"))?;
    if len > crate::limits::PLAN_BYTES {
        return Err(format!("a plan of {len} bytes is over the limit of {}", crate::limits::PLAN_BYTES));
    }
    Ok(len)
}

/// What the host writes on the result channel: the header, a newline and the plan.
pub fn framed(text: &str) -> Vec<u8> {
    let mut bytes = header(text.len()).into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(text.as_bytes());
    bytes
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
    fn the_header_round_trips_and_bounds_the_plan() {
        let text = render(&[entry("env", 30_000, &["/ksnap/probes/env"])]).unwrap();
        let framed = framed(&text);
        let newline = framed.iter().position(|&b| b == b'\n').unwrap();
        let len = parse_header(std::str::from_utf8(&framed[..newline]).unwrap()).unwrap();
        assert_eq!(&framed[newline + 1..], text.as_bytes());
        assert_eq!(len, text.len());
        assert_eq!(parse_header(&header(crate::limits::PLAN_BYTES)), Ok(crate::limits::PLAN_BYTES));
        assert!(parse_header(&header(crate::limits::PLAN_BYTES + 1)).unwrap_err().contains("over the limit"));
        for bad in ["plan", "plan ", "plan -1", "plan 1 2", "plan +1", "PLAN 1", "plan 99999999999999999999999"] {
            assert!(parse_header(bad).unwrap_err().starts_with("expected `plan BYTES`"), "{bad}");
        }
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
