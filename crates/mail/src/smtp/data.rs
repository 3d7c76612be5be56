//! The DATA reader: message bytes in, the message (dot-unstuffed, CRLF line ends) out.
//!
//! Written here rather than taken from smtp-proto's `DataReceiver` because the end-of-data
//! rule is a security boundary: only `CRLF . CRLF` ends a message. A bare LF never does
//! (SMTP smuggling: `\n.\n`, `\n.\r\n` and `\r\n.\n` are data), and lines ending in a bare
//! LF are stored with CRLF, so the next hop (which gets the message dot-stuffed) sees no
//! end-of-data either. Postfix calls this `smtpd_forbid_bare_newline = normalize`. A bare
//! CR inside a line becomes CRLF as well: some receivers end lines at a CR, and `\r.\r`
//! must reach them dot-stuffed, never as an end of data.

/// Longest line RFC 5322 allows, without its CRLF.
pub const MAX_LINE: usize = 998;

/// Why a message that was read to its end is refused anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataProblem {
    TooBig { limit: u64 },
    LineTooLong { line: usize },
}

/// Reads one message, possibly over many `feed` calls.
#[derive(Debug)]
pub struct DataReader {
    message: Vec<u8>,
    /// Bytes of the line being read (without its terminator).
    line: Vec<u8>,
    /// Whether the line before the current one ended in CRLF (the start of DATA counts).
    after_crlf: bool,
    lines: usize,
    /// The last byte of the current line was CR (kept apart: an over-long line's tail is dropped).
    ends_in_cr: bool,
    limit: u64,
    problem: Option<DataProblem>,
}

/// What one `feed` found.
#[derive(Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// Needs more bytes; all input was consumed.
    More,
    /// The message ended; `consumed` bytes of the input belonged to it.
    Done { consumed: usize },
}

impl DataReader {
    pub fn new(limit: u64) -> DataReader {
        DataReader {
            message: Vec::new(),
            line: Vec::new(),
            after_crlf: true,
            lines: 0,
            ends_in_cr: false,
            limit,
            problem: None,
        }
    }

    pub fn feed(&mut self, input: &[u8]) -> DataOutcome {
        let mut pos = 0;
        while pos < input.len() {
            let Some(lf) = memchr(b'\n', &input[pos..]) else {
                self.push_partial(&input[pos..]);
                return DataOutcome::More;
            };
            self.push_partial(&input[pos..pos + lf]);
            pos += lf + 1;
            let crlf = self.ends_in_cr;
            if crlf && self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            self.ends_in_cr = false;
            if crlf && self.after_crlf && self.line == b"." {
                return DataOutcome::Done { consumed: pos };
            }
            self.finish_line();
            self.after_crlf = crlf;
        }
        DataOutcome::More
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.ends_in_cr = last == b'\r';
        }
        // Keep a line's bytes only up to a bound: a line with no LF at all must not grow
        // memory past the size limit.
        let room = (MAX_LINE + 2).saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room {
            self.note_long_line();
        }
        // Count dropped bytes towards the size too.
        self.count(bytes.len().saturating_sub(room) as u64);
    }

    fn note_long_line(&mut self) {
        if self.problem.is_none() {
            self.problem = Some(DataProblem::LineTooLong {
                line: self.lines + 1,
            });
        }
    }

    fn count(&mut self, extra: u64) {
        if extra > 0 && self.problem.is_none() && self.message.len() as u64 + extra > self.limit {
            self.problem = Some(DataProblem::TooBig { limit: self.limit });
        }
    }

    fn finish_line(&mut self) {
        // Transparency (RFC 5321 4.5.2): a leading dot after CRLF was added by the client.
        let skip = usize::from(self.after_crlf && self.line.first() == Some(&b'.'));
        if self.line.len() - skip > MAX_LINE {
            self.note_long_line();
        }
        let line = &self.line[skip..];
        if self.problem.is_none() {
            if (self.message.len() + line.len() + 2) as u64 > self.limit {
                self.problem = Some(DataProblem::TooBig { limit: self.limit });
                self.message = Vec::new();
            } else {
                for (i, part) in line.split(|&b| b == b'\r').enumerate() {
                    if i > 0 {
                        self.message.extend_from_slice(b"\r\n");
                    }
                    self.message.extend_from_slice(part);
                }
                self.message.extend_from_slice(b"\r\n");
            }
        }
        self.line.clear();
        self.lines += 1;
    }

    /// The message, or why it is refused.
    pub fn finish(self) -> Result<Vec<u8>, DataProblem> {
        match self.problem {
            Some(p) => Err(p),
            None => Ok(self.message),
        }
    }
}

pub(crate) fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// The message as sent on the wire after DATA: dot-stuffed, CRLF line ends, with the final
/// `.` line. Bare LFs (from a message read from a file) become CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                at_line_start = true;
                continue;
            }
            b'\n' | b'\r' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Result<Vec<u8>, DataProblem>, Option<usize>) {
        let mut r = DataReader::new(1 << 20);
        match r.feed(input) {
            DataOutcome::Done { consumed } => (r.finish(), Some(consumed)),
            DataOutcome::More => (r.finish(), None),
        }
    }

    #[test]
    fn crlf_dot_crlf_ends_and_unstuffs() {
        let (msg, end) = read_all(b"Subject: x\r\n\r\n..hidden\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(msg.unwrap(), b"Subject: x\r\n\r\n.hidden\r\nbody\r\n");
        assert_eq!(
            end,
            Some(b"Subject: x\r\n\r\n..hidden\r\nbody\r\n.\r\n".len())
        );
    }

    #[test]
    fn bare_lf_never_ends_a_message() {
        for smuggle in [
            &b"a\r\nb\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r\nb\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\nb\r\n.\nMAIL FROM:<x@y>\r\n",
        ] {
            let (_, end) = read_all(smuggle);
            assert_eq!(
                end,
                None,
                "{:?} ended the message",
                String::from_utf8_lossy(smuggle)
            );
        }
        let mut r = DataReader::new(1 << 20);
        assert_eq!(r.feed(b"a\nb\n.\nc\r\n"), DataOutcome::More);
        assert!(matches!(r.feed(b".\r\n"), DataOutcome::Done { .. }));
        // The smuggled "." line stays data and is stored with CRLF, so dot-stuffing on
        // relay turns it into "..".
        let msg = r.finish().unwrap();
        assert_eq!(msg, b"a\r\nb\r\n.\r\nc\r\n");
        assert!(dot_stuff(&msg).starts_with(b"a\r\nb\r\n..\r\nc\r\n"));
    }

    #[test]
    fn split_anywhere_gives_the_same_message() {
        let input = b"l1\r\n..l2\r\nl3\r\n.\r\n";
        for cut in 0..input.len() {
            let mut r = DataReader::new(1 << 20);
            let first = r.feed(&input[..cut]);
            assert_eq!(first, DataOutcome::More, "cut {cut}");
            assert_eq!(
                r.feed(&input[cut..]),
                DataOutcome::Done {
                    consumed: input.len() - cut
                }
            );
            assert_eq!(r.finish().unwrap(), b"l1\r\n.l2\r\nl3\r\n");
        }
    }

    #[test]
    fn long_lines_and_big_messages_are_refused_after_the_end() {
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        let (msg, end) = read_all(&long);
        assert_eq!(msg, Err(DataProblem::LineTooLong { line: 1 }));
        assert!(end.is_some());

        let mut r = DataReader::new(10);
        assert!(matches!(
            r.feed(b"0123456789abc\r\n.\r\n"),
            DataOutcome::Done { .. }
        ));
        assert_eq!(r.finish(), Err(DataProblem::TooBig { limit: 10 }));

        // A line with no LF at all: memory stays bounded.
        let mut r = DataReader::new(1 << 20);
        for _ in 0..1000 {
            r.feed(&[b'y'; 4096]);
        }
        assert!(r.line.len() <= MAX_LINE + 2);
    }

    #[test]
    fn bare_cr_becomes_a_line_end() {
        let mut reader = DataReader::new(1000);
        let input = b"a\r.\rb\r\n.\r\n";
        assert_eq!(
            reader.feed(input),
            DataOutcome::Done {
                consumed: input.len()
            }
        );
        let message = reader.finish().unwrap();
        assert_eq!(message, b"a\r\n.\r\nb\r\n");
        assert_eq!(dot_stuff(&message), b"a\r\n..\r\nb\r\n.\r\n");
    }

    #[test]
    fn dot_stuffing_round_trips() {
        let msg = b"a\r\n.b\r\n.\r\nlast";
        let wire = dot_stuff(msg);
        assert_eq!(wire, b"a\r\n..b\r\n..\r\nlast\r\n.\r\n");
        let mut r = DataReader::new(1 << 20);
        assert!(matches!(r.feed(&wire), DataOutcome::Done { .. }));
        assert_eq!(r.finish().unwrap(), b"a\r\n.b\r\n.\r\nlast\r\n");
    }
}
