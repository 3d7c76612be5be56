//! The FastCGI wire format (FastCGI 1.0 specification), sans IO: a request encoded into one
//! buffer, answer records decoded from a buffer.
//!
//! Written here rather than taken from the `fastcgi-client` crate (used before): that crate
//! writes every record with its own write, keeps the parameters in a `HashMap` of owned
//! strings and ties the answer stream to a borrow of the connection, which cost Serval about
//! 100 µs of CPU per PHP request (7x nginx) and kept it from handing a streamed body to hyper.
//! Here the parameters are encoded once straight from the request, the request is one write,
//! and the answer's STDOUT records are zero-copy slices of the read buffer.

use bytes::{Buf as _, Bytes, BytesMut};

const VERSION: u8 = 1;
const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const RESPONDER: u16 = 1;
const KEEP_CONN: u8 = 1;
/// The request id Serval uses: one request at a time per connection (php-fpm multiplexes none).
const REQUEST_ID: u16 = 1;
const HEADER_LEN: usize = 8;
const MAX_CONTENT: usize = 65535;

/// CGI parameters as FastCGI name-value pairs, encoded as they are added.
#[derive(Debug, Default)]
pub struct Params {
    encoded: Vec<u8>,
}

impl Params {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            encoded: Vec::with_capacity(bytes),
        }
    }

    pub fn push(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        push_length(&mut self.encoded, name.len());
        push_length(&mut self.encoded, value.len());
        self.encoded.extend_from_slice(name);
        self.encoded.extend_from_slice(value);
    }

    /// `HTTP_<NAME>` for a request header (uppercase, `-` as `_`), its values joined by ", ".
    pub fn push_header<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a [u8]>) {
        let values: Vec<&[u8]> = values.collect();
        let value_len =
            values.iter().map(|v| v.len()).sum::<usize>() + 2 * values.len().saturating_sub(1);
        push_length(&mut self.encoded, 5 + name.len());
        push_length(&mut self.encoded, value_len);
        self.encoded.extend_from_slice(b"HTTP_");
        self.encoded.extend(name.bytes().map(|b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        }));
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.encoded.extend_from_slice(b", ");
            }
            self.encoded.extend_from_slice(v);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }
}

/// Lengths under 128 take one byte, others four with the top bit set.
fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        let len = (len.min(0x7fff_ffff) as u32) | 0x8000_0000;
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, content_len: usize) {
    let len = content_len as u16;
    let id = REQUEST_ID.to_be_bytes();
    let l = len.to_be_bytes();
    out.extend_from_slice(&[VERSION, kind, id[0], id[1], l[0], l[1], 0, 0]);
}

/// A stream (PARAMS or STDIN) as records of at most 64 KiB, then its empty closing record.
fn push_stream(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        push_header(out, kind, chunk.len());
        out.extend_from_slice(chunk);
    }
    push_header(out, kind, 0);
}

/// A whole responder request: BEGIN_REQUEST, the parameters, the body on STDIN.
/// `keep_conn` asks the app to leave the connection open after answering.
pub fn encode_request(params: &Params, stdin: &[u8], keep_conn: bool) -> Vec<u8> {
    let records = 4 + params.encoded.len() / MAX_CONTENT + stdin.len() / MAX_CONTENT;
    let mut out =
        Vec::with_capacity(HEADER_LEN * (records + 2) + params.encoded.len() + stdin.len());
    push_header(&mut out, BEGIN_REQUEST, 8);
    let role = RESPONDER.to_be_bytes();
    out.extend_from_slice(&[role[0], role[1], if keep_conn { KEEP_CONN } else { 0 }]);
    out.extend_from_slice(&[0; 5]);
    push_stream(&mut out, PARAMS, &params.encoded);
    push_stream(&mut out, STDIN, stdin);
    out
}

/// One record of the app's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The request is finished; `protocol_status` 0 is a completed request.
    End {
        app_status: u32,
        protocol_status: u8,
    },
}

/// Why the answer bytes are not FastCGI.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("FastCGI record version {0} (expected 1)")]
    Version(u8),
    #[error("FastCGI record for request {0} (this connection carries request 1)")]
    RequestId(u16),
    #[error("END_REQUEST record with {0} content bytes (expected 8)")]
    ShortEnd(usize),
}

/// Takes the next complete record off the front of `buf`; `Ok(None)` when more bytes are
/// needed. Record types a responder never sends (management records) are skipped.
pub fn next_record(buf: &mut BytesMut) -> Result<Option<Record>, WireError> {
    loop {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let version = buf[0];
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let kind = buf[1];
        let id = u16::from_be_bytes([buf[2], buf[3]]);
        let content_len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        let padding = usize::from(buf[6]);
        if buf.len() < HEADER_LEN + content_len + padding {
            // Room for the whole record, so the next read completes it.
            buf.reserve(HEADER_LEN + content_len + padding - buf.len());
            return Ok(None);
        }
        // id 0 is a management record (FCGI_GET_VALUES_RESULT and the like).
        if id != REQUEST_ID && id != 0 {
            return Err(WireError::RequestId(id));
        }
        buf.advance(HEADER_LEN);
        let content = buf.split_to(content_len);
        buf.advance(padding);
        if id == 0 {
            continue;
        }
        match kind {
            STDOUT => return Ok(Some(Record::Stdout(content.freeze()))),
            STDERR => return Ok(Some(Record::Stderr(content.freeze()))),
            END_REQUEST => {
                if content_len < 8 {
                    return Err(WireError::ShortEnd(content_len));
                }
                return Ok(Some(Record::End {
                    app_status: u32::from_be_bytes([
                        content[0], content[1], content[2], content[3],
                    ]),
                    protocol_status: content[4],
                }));
            }
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
        let mut v = vec![VERSION, kind];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&(content.len() as u16).to_be_bytes());
        v.extend_from_slice(&[padding, 0]);
        v.extend_from_slice(content);
        v.extend(std::iter::repeat_n(0, usize::from(padding)));
        v
    }

    #[test]
    fn params_use_short_and_long_lengths() {
        let mut p = Params::default();
        p.push("A", "bc");
        let long = "x".repeat(200);
        p.push("LONG", &long);
        assert_eq!(&p.as_bytes()[..5], &[1, 2, b'A', b'b', b'c']);
        assert_eq!(&p.as_bytes()[5..10], &[4, 0x80, 0, 0, 200]);
        assert_eq!(p.as_bytes().len(), 5 + 5 + 4 + 200);
    }

    #[test]
    fn headers_become_http_params_with_values_joined() {
        let mut p = Params::default();
        p.push_header("x-forwarded-for", [&b"a"[..], &b"b"[..]].into_iter());
        assert_eq!(p.as_bytes(), b"\x14\x04HTTP_X_FORWARDED_FORa, b");
    }

    #[test]
    fn requests_split_streams_into_64k_records_and_close_them() {
        let mut p = Params::default();
        p.push("K", "v");
        let body = vec![7u8; 70_000];
        let wire = encode_request(&p, &body, true);
        // BEGIN_REQUEST with the responder role and KEEP_CONN.
        assert_eq!(&wire[..8], &[1, BEGIN_REQUEST, 0, 1, 0, 8, 0, 0]);
        assert_eq!(&wire[8..11], &[0, 1, KEEP_CONN]);
        let mut rest = &wire[16..];
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
            seen.push((rest[1], len));
            rest = &rest[8 + len..];
        }
        assert_eq!(
            seen,
            vec![
                (PARAMS, 4),
                (PARAMS, 0),
                (STDIN, 65535),
                (STDIN, 70_000 - 65535),
                (STDIN, 0)
            ]
        );
        assert_eq!(encode_request(&p, b"", false)[10], 0);
    }

    #[test]
    fn records_decode_across_partial_reads_with_padding() {
        let mut wire = record(STDOUT, 1, b"Status: 200\r\n\r\nhi", 6);
        wire.extend(record(10, 0, b"mgmt", 0));
        wire.extend(record(STDERR, 1, b"warn", 4));
        wire.extend(record(END_REQUEST, 1, &[0, 0, 0, 3, 0, 0, 0, 0], 0));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(r) = next_record(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(
            got,
            vec![
                Record::Stdout(Bytes::from_static(b"Status: 200\r\n\r\nhi")),
                Record::Stderr(Bytes::from_static(b"warn")),
                Record::End {
                    app_status: 3,
                    protocol_status: 0
                }
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn foreign_bytes_are_errors() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert_eq!(next_record(&mut buf), Err(WireError::Version(b'H')));
        let mut buf = BytesMut::from(&record(STDOUT, 2, b"x", 0)[..]);
        assert_eq!(next_record(&mut buf), Err(WireError::RequestId(2)));
        let mut buf = BytesMut::from(&record(END_REQUEST, 1, b"x", 0)[..]);
        assert_eq!(next_record(&mut buf), Err(WireError::ShortEnd(1)));
    }
}
