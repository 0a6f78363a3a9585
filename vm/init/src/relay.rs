//! How init turns a probe's output stream into protocol lines: split at newlines, lines longer than
//! `max_line` cut into pieces, at most `cap` bytes relayed and the rest counted. Pure, so it is tested on
//! the host; init feeds it what it reads from a probe's pipe.

/// The line splitter of one stream.
#[derive(Debug)]
pub struct Lines {
    /// Bytes relayed at most; the rest is counted in `discarded`.
    cap: u64,
    max_line: usize,
    /// The current line, not yet relayed: at most `max_line` bytes plus one read.
    line: Vec<u8>,
    pub relayed: u64,
    pub discarded: u64,
}

impl Lines {
    pub fn new(cap: u64, max_line: usize) -> Lines {
        Lines { cap, max_line, line: Vec::new(), relayed: 0, discarded: 0 }
    }

    /// Feeds bytes read from the stream; `emit` gets each complete line (without its newline) and
    /// each `max_line` piece of a longer one.
    pub fn feed<E>(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let room = usize::try_from(self.cap - self.relayed).unwrap_or(usize::MAX);
        let (kept, dropped) = data.split_at(data.len().min(room));
        self.relayed += kept.len() as u64;
        self.discarded += dropped.len() as u64;
        for piece in kept.split_inclusive(|&b| b == b'\n') {
            let (text, complete) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            self.line.extend_from_slice(text);
            // Strictly longer: a line of exactly `max_line` bytes is still relayed whole.
            while self.line.len() > self.max_line {
                emit(&self.line[..self.max_line])?;
                self.line.drain(..self.max_line);
            }
            if complete {
                emit(&self.line)?;
                self.line.clear();
            }
        }
        Ok(())
    }

    /// The stream ended: relays a last line that had no newline.
    pub fn finish<E>(&mut self, emit: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if !self.line.is_empty() {
            emit(&self.line)?;
            self.line.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &mut Lines, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut emit = |line: &[u8]| -> Result<(), ()> {
            out.push(String::from_utf8_lossy(line).into_owned());
            Ok(())
        };
        for chunk in chunks {
            lines.feed(chunk, &mut emit).unwrap();
        }
        lines.finish(&mut emit).unwrap();
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_a_last_partial_line_is_kept() {
        let mut lines = Lines::new(1 << 20, 64);
        assert_eq!(run(&mut lines, &[b"ok 1 a\nok ", b"2 b\n\n", b"tail"]), ["ok 1 a", "ok 2 b", "", "tail"]);
        assert_eq!((lines.relayed, lines.discarded), (19, 0));
    }

    #[test]
    fn long_lines_are_cut_and_output_over_the_cap_is_counted() {
        let mut lines = Lines::new(12, 4);
        assert_eq!(run(&mut lines, &[b"abcd\nefghij\nklmnop"]), ["abcd", "efgh", "ij"]);
        assert_eq!((lines.relayed, lines.discarded), (12, 6));
    }
}
