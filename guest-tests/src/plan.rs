//! The plan init runs (`/ksnap/plan` in the initramfs, written by the host's `vm::initramfs`): one probe
//! per line, `NAME TIMEOUT_MS PATH [ARG...]`, space-separated; `#` starts a comment line.

use std::ffi::CString;

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub timeout_ms: u64,
    /// PATH followed by the arguments; PATH is also the program's `argv[0]`.
    pub argv: Vec<CString>,
}

/// The probes of a plan, in order; an error names the line (`line N: …`).
pub fn parse(text: &str) -> Result<Vec<Probe>, String> {
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
        let argv: Vec<CString> = words.map(CString::new).collect::<Result<_, _>>().map_err(|_| bad("NUL byte"))?;
        if argv.is_empty() {
            return Err(bad("expected NAME TIMEOUT_MS PATH [ARG...]"));
        }
        plan.push(Probe { name: name.to_owned(), timeout_ms, argv });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probes_with_arguments_and_skips_comments() {
        let plan =
            parse("# ksnap plan\n\nenv 30000 /ksnap/probes/env\noom 300000 /ksnap/probes/dp oom  fast\n").unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!((plan[0].name.as_str(), plan[0].timeout_ms), ("env", 30000));
        let argv: Vec<&str> = plan[1].argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(argv, ["/ksnap/probes/dp", "oom", "fast"]);
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(parse("a 1 /p\nb\n").unwrap_err(), "line 2: expected NAME TIMEOUT_MS PATH [ARG...]");
        assert_eq!(parse("a x /p\n").unwrap_err(), "line 1: bad timeout \"x\"");
        assert_eq!(parse("a 1\n").unwrap_err(), "line 1: expected NAME TIMEOUT_MS PATH [ARG...]");
    }
}
