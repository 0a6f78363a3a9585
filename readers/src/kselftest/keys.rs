//! Masking and keys: what varies from run to run masked out of a text ([`mask`]), a text made a key
//! ([`case_key`]), and descriptions and reasons tidied for a value (see the module docs of
//! [`crate::kselftest`], *Keys* and *Masking*).

use super::report::MAX_KEY_LEN;

/// The key [`parse`](super::parse) makes of `text`: masked ([`mask`]), lower-cased, `[a-z0-9_-]`, at most
/// [`MAX_KEY_LEN`] bytes; empty when the text has no ASCII letter or digit.
pub fn case_key(text: &str) -> String {
    cap_key(normalize(&mask(text)))
}

/// `text` with what varies from run to run replaced (see the module docs): addresses and long hex by
/// `ADDR`, pids, seeds, timings, long numbers, known run-to-run amounts and the numbers of a text with
/// a percentage by `N`.
pub fn mask(text: &str) -> String {
    let bytes = text.as_bytes();
    let percent = bytes.windows(2).any(|w| w[0].is_ascii_digit() && w[1] == b'%');
    let mut out = String::with_capacity(text.len());
    // A number right after `pid`, `seed`… (only separators in between) is masked.
    let mut after_id_word = false;
    let mut i = 0;
    while i < bytes.len() {
        let at_word = bytes[i].is_ascii_alphanumeric() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if bytes[i] == b'(' {
            if let Some(end) = measurement_end(bytes, i) {
                // Only ASCII digits, spaces, `,`, `/` and letters: a str slice on character boundaries.
                for piece in text[i..end].split_inclusive(|c: char| !c.is_ascii_digit()) {
                    let digits = piece.trim_end_matches(|c: char| !c.is_ascii_digit());
                    if digits.is_empty() {
                        out.push_str(piece);
                    } else {
                        out.push('N');
                        out.push_str(&piece[digits.len()..]);
                    }
                }
                i = end;
                after_id_word = false;
                continue;
            }
        }
        if !at_word {
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            if !matches!(bytes[i], b' ' | b'=' | b':' | b'#' | b'\t') {
                after_id_word = false;
            }
            out.push_str(&text[i..i + len]);
            i += len;
            continue;
        }
        let word_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        let word = &text[i..word_end];
        if is_address(word) {
            out.push_str("ADDR");
            i = word_end;
            after_id_word = false;
            continue;
        }
        if bytes[i].is_ascii_digit() {
            let number_end = number_end(bytes, i);
            let masked = percent
                || after_id_word
                || number_end - i >= 10 && bytes[i..number_end].iter().all(u8::is_ascii_digit)
                || has_time_unit(bytes, number_end)
                || KNOWN_VARIABLE_AMOUNTS.iter().any(|phrase| out.ends_with(phrase));
            if masked {
                out.push('N');
            } else {
                out.push_str(&text[i..number_end]);
            }
            // What follows the number (a glued unit such as `ns`) is copied as it is: it does not
            // start a word.
            i = number_end;
            after_id_word = false;
            continue;
        }
        after_id_word = ["pid", "tid", "ppid", "pgid", "seed"].iter().any(|w| word.eq_ignore_ascii_case(w));
        out.push_str(word);
        i = word_end;
    }
    out
}

/// The end (after its `)`) of a measurement in parentheses starting at `start`: two or more numbers
/// related by `of`, `vs` or `/`, with nothing else than spaces and commas (pagemap_ioctl's `(16, 0 of
/// 16)`: pages found, out of pages mapped). What such a group counts is the test's result, which must
/// stay out of the key; `(2048 kB)`, `(22)` or `(size=4096, …)` name the case and are not one.
pub(super) fn measurement_end(bytes: &[u8], start: usize) -> Option<usize> {
    const LONGEST: usize = 64;
    let close = start + 1 + bytes[start + 1..].iter().take(LONGEST).position(|&b| b == b')')?;
    let inside = std::str::from_utf8(&bytes[start + 1..close]).ok()?;
    let mut numbers = 0;
    let mut related = inside.contains('/');
    for word in inside.split([' ', ',', '/']).filter(|w| !w.is_empty()) {
        if word.bytes().all(|b| b.is_ascii_digit()) {
            numbers += 1;
        } else if matches!(word, "of" | "vs") {
            related = true;
        } else {
            return None;
        }
    }
    (numbers >= 2 && related).then_some(close + 1)
}

/// Phrases followed by an amount that changes from run to run although the case is the same.
/// mrelease_test retries with more memory until the reaping works: `Success reaping a child with 1MB of
/// memory allocations`, `… with 2MB …`.
pub(super) const KNOWN_VARIABLE_AMOUNTS: &[&str] = &["reaping a child with "];

pub(super) const TIME_UNITS: &[&str] =
    &["ns", "us", "ms", "s", "sec", "secs", "second", "seconds", "nsec", "nsecs", "usec", "usecs", "msec", "msecs"];

/// `0x` and 5+ hex digits, or 8+ hex digits with letters and digits both (`7ffff7ff4000`).
pub(super) fn is_address(word: &str) -> bool {
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return hex.len() >= 5 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    word.len() >= 8
        && word.bytes().all(|b| b.is_ascii_hexdigit())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The end of the number starting at `start`: digits, then `.` and digits.
pub(super) fn number_end(bytes: &[u8], start: usize) -> usize {
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int_end = start + digits(start);
    if bytes.get(int_end) == Some(&b'.') && bytes.get(int_end + 1).is_some_and(u8::is_ascii_digit) {
        int_end + 1 + digits(int_end + 1)
    } else {
        int_end
    }
}

/// Whether a time unit follows a number ending at `at`, glued (`3.2s`) or after one space (`12 ms`),
/// as a whole word.
pub(super) fn has_time_unit(bytes: &[u8], at: usize) -> bool {
    let start = if bytes.get(at) == Some(&b' ') { at + 1 } else { at };
    let end = start + bytes[start.min(bytes.len())..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if end == start || bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return false;
    }
    // ASCII letters only, so this is a str slice on character boundaries.
    let unit = std::str::from_utf8(&bytes[start..end]).unwrap_or("");
    TIME_UNITS.contains(&unit)
}

/// Lower-cased runs of ASCII letters and digits; a lone `-` between two runs stays, any other gap is one `_`.
pub(super) fn normalize(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    let mut gap = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if !key.is_empty() && !gap.is_empty() {
                key.push(if gap == "-" { '-' } else { '_' });
            }
            gap.clear();
            key.push(c.to_ascii_lowercase());
        } else if gap.len() < 2 {
            // Only whether the gap is exactly `-` matters.
            gap.push(c);
        }
    }
    key
}

/// `key` cut to [`MAX_KEY_LEN`] bytes, a hash of the whole at the end so that cut keys stay apart.
pub(super) fn cap_key(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let hash = fnv1a(key.as_bytes());
    // Keys are ASCII: any byte index is a character boundary.
    let head = key[..MAX_KEY_LEN - 9].trim_end_matches(['_', '-']);
    format!("{head}-{:08x}", hash as u32 ^ (hash >> 32) as u32)
}

/// FNV-1a, 64 bits: small, and the same on every build (std's hasher is not promised to be).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Two keys as one: `CONTEXT__DESCRIPTION` (`__` never occurs inside a key of one text).
pub(super) fn join_keys(context: &str, rest: &str) -> String {
    cap_key(format!("{context}__{rest}"))
}

/// Masked, whitespace collapsed, cut to `max` characters (the last one `…` if cut): for a reason or a
/// description.
pub(super) fn tidy(text: &str, max: usize) -> String {
    let collapsed = mask(text).split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if collapsed[cut..].chars().nth(1).is_some() => format!("{}…", &collapsed[..cut]),
        _ => collapsed,
    }
}
