//! Plain text for a terminal or a Markdown page: aligned tables, values cut to a width in a table (never
//! wrapped there), lines wrapped with a hanging indent where a value must stay whole, the width to fit,
//! Markdown escapes. Shared by every view, so that the commands which only read the
//! committed snapshots need nothing of a session.

use std::fmt::Write;

/// Longest value shown in a table cell; longer ones are cut with [`CUT`].
pub const MAX_VALUE_CHARS: usize = 40;
/// Marks a value shortened for the terminal (the snapshot and the report have it whole).
pub const CUT: char = '…';
/// The width assumed when the output is not a terminal and `COLUMNS` is not set.
const DEFAULT_WIDTH: usize = 100;

/// The width to fit text output to: `COLUMNS` if set, else the width of the terminal on stdout, else 100.
pub fn output_width() -> usize {
    let from_env = std::env::var("COLUMNS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&w| w > 0);
    from_env.or_else(terminal_width).unwrap_or(DEFAULT_WIDTH)
}

fn terminal_width() -> Option<usize> {
    // SAFETY: a winsize is plain integers, for which all zeroes is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer; when stdout is not a terminal it fails
    // and writes nothing.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// `text` cut to at most `max` characters, the last being [`CUT`]: never wrapped, never cut silently.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push(CUT);
    short
}

/// The width [`table`] gives `rows`.
pub fn table_width<R: AsRef<[String]>>(rows: &[R]) -> usize {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.as_ref().get(i)).map(|cell| cell.chars().count()).max().unwrap_or(0));
    widths.sum::<usize>() + 2 * columns.saturating_sub(1)
}

/// Left-aligned columns separated by two spaces.
pub fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let width = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0; width];
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells = row.as_ref();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

/// Facts with a value on each of two sides (`(fact, a's value, b's value)`), fitted to `width`: a table
/// headed `title  a  b` when it fits, else `title` and a block per fact (`  a: value` / `  b: value`).
/// Values are cut with [`CUT`], never wrapped.
pub fn two_sides(title: &str, a: &str, b: &str, facts: &[(String, String, String)], width: usize) -> String {
    let mut rows = vec![[title.to_string(), a.to_string(), b.to_string()]];
    rows.extend(
        facts.iter().map(|(k, va, vb)| [k.clone(), shorten(va, MAX_VALUE_CHARS), shorten(vb, MAX_VALUE_CHARS)]),
    );
    if table_width(&rows) <= width {
        return table(&rows);
    }
    let mut out = format!("{}\n", shorten(title, width));
    for (key, va, vb) in facts {
        let _ = writeln!(out, "{}", shorten(key, width));
        let _ = writeln!(out, "{}", shorten(&format!("  {a}: {va}"), width));
        let _ = writeln!(out, "{}", shorten(&format!("  {b}: {vb}"), width));
    }
    out
}

/// Escape a value for a Markdown table cell (guest output is untrusted: no HTML, no broken tables).
pub fn md(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| match c {
            '|' => "\\|".chars().collect::<Vec<_>>(),
            '<' => "&lt;".chars().collect(),
            '>' => "&gt;".chars().collect(),
            '&' => "&amp;".chars().collect(),
            '`' => "\\`".chars().collect(),
            '\n' | '\r' => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// `text` on lines of at most `width` characters: broken at spaces, the lines after the first indented
/// four spaces more than it (a continuation is never mistaken for a new line), a word longer than a line
/// broken where it must be.
pub fn hanging(text: &str, width: usize) -> String {
    let lead = text.len() - text.trim_start_matches(' ').len();
    let indent = " ".repeat(lead + 4);
    let width = width.max(indent.len() + 8);
    let mut out = String::new();
    let mut line = " ".repeat(lead);
    // Characters on the line, and whether a word is on it yet.
    let (mut line_chars, mut has_word) = (lead, false);
    for word in text[lead..].split(' ') {
        let chars = word.chars().count();
        if has_word && line_chars + 1 + chars > width {
            out.push_str(&line);
            out.push('\n');
            (line, line_chars) = (indent.clone(), indent.len());
        } else if has_word {
            line.push(' ');
            line_chars += 1;
        }
        has_word = true;
        for c in word.chars() {
            if line_chars == width {
                out.push_str(&line);
                out.push('\n');
                (line, line_chars) = (indent.clone(), indent.len());
            }
            line.push(c);
            line_chars += 1;
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Our own sentences, wrapped at spaces to `width` (values are cut instead: a wrapped value could not be
/// told from two). A command in backquotes stays on one line, to be copied whole.
pub fn wrap(prose: &str, width: usize) -> String {
    let mut words: Vec<String> = vec![];
    let mut in_command = false;
    for word in prose.split(' ') {
        match words.last_mut() {
            Some(last) if in_command => *last = format!("{last} {word}"),
            _ => words.push(word.to_string()),
        }
        in_command ^= word.matches('`').count() % 2 == 1;
    }
    let mut out = String::new();
    let mut line_chars = 0;
    for word in &words {
        let chars = word.chars().count();
        if line_chars > 0 && line_chars + 1 + chars > width {
            out.push('\n');
            line_chars = 0;
        } else if line_chars > 0 {
            out.push(' ');
            line_chars += 1;
        }
        out.push_str(word);
        line_chars += chars;
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_the_width_and_a_long_word_is_broken_never_cut() {
        let long = format!("{}: {} then more", "n".repeat(30), "v".repeat(25));
        let out = hanging(&long, 20);
        assert!(out.lines().all(|l| l.chars().count() <= 20), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("    ")), "{out}");
        assert_eq!(out.chars().filter(|c| *c == 'v').count(), 25, "{out}");
        assert_eq!(hanging("a b", 100), "a b\n");
        assert_eq!(hanging("  aaaa bbbbbbbb", 14), "  aaaa\n      bbbbbbbb\n");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["a".to_string(), "bb".into()], vec!["ccc".into(), "d".into()]];
        assert_eq!(table(&rows), "a    bb\nccc  d\n");
    }
}
